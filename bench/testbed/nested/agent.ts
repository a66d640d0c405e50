/**
 * The command agent of a heca L1 test host. l1-init starts it as
 *
 *   node --import tsx agent.ts /dev/vportNpM
 *
 * on the virtio-serial port named "heca.agent", whose other end is a unix
 * socket of the L1 QEMU at L0 (bench/testbed/nested/l1-agent.ts talks to it).
 *
 * Protocol: one JSON object per line each way. Requests carry an `id` the
 * reply repeats; the agent answers in any order.
 *
 *   > {"id":1,"op":"hello"}
 *   < {"id":1,"ok":true,"hostname":"heca-a","kernel":"6.12.117","uptime_s":2.1}
 *   > {"id":2,"op":"exec","argv":["ip","-j","addr"],"timeoutMs":10000}
 *   < {"id":2,"ok":true,"exitCode":0,"signal":null,"timedOut":false,"stdout":"...","stderr":"","durationMs":12}
 *   > {"id":3,"op":"spawn","argv":["qemu-system-x86_64","..."],"logFile":"/shared/a/qemu.log"}
 *   < {"id":3,"ok":true,"pid":812}
 *   < {"event":"exit","pid":812,"exitCode":0,"signal":null}        (whenever it ends)
 *   > {"id":4,"op":"kill","pid":812,"signal":"SIGTERM"}
 *   < {"id":4,"ok":true,"wasRunning":true}
 *   > {"id":5,"op":"poweroff"}
 *   < {"id":5,"ok":true}                                           (then the host powers off)
 *
 * A request the agent cannot carry out gets {"id":N,"ok":false,"error":"..."}.
 * A line that is not JSON is answered with {"id":null,"ok":false,...}. Only
 * Node's own modules are used: the agent starts from the host's root over 9p.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, openSync, read, readFileSync, writeFileSync } from 'node:fs';
import { hostname, release, uptime } from 'node:os';
import { StringDecoder } from 'node:string_decoder';

const MAX_OUTPUT = 8 * 1024 * 1024;
const port = process.argv[2];
if (!port) {
  process.stderr.write('usage: agent.ts /dev/vportNpM\n');
  process.exit(2);
}

// A virtio-serial port can be open only once (a second open is EBUSY): one
// read-write descriptor serves both directions.
const fd = openSync(port, 'r+');
const out = createWriteStream('', { fd, autoClose: false });
out.on('error', (e) => {
  process.stderr.write(`agent: writing ${port}: ${e.message}\n`);
  process.exit(1);
});
const send = (o: Record<string, unknown>): void => void out.write(`${JSON.stringify(o)}\n`);
const children = new Map<number, ChildProcess>();

type Req = { id: number | string; op: string; [k: string]: unknown };

function strArray(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string')) throw new Error(`${what} must be a non-empty array of strings`);
  return v as string[];
}

function envOf(v: unknown): NodeJS.ProcessEnv {
  if (v === undefined) return process.env;
  if (typeof v !== 'object' || v === null || !Object.values(v).every((s) => typeof s === 'string')) throw new Error('env must be an object of strings');
  return { ...process.env, ...(v as Record<string, string>) };
}

function exec(r: Req): void {
  const argv = strArray(r.argv, 'argv');
  const timeoutMs = typeof r.timeoutMs === 'number' && r.timeoutMs > 0 ? r.timeoutMs : 0;
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: typeof r.cwd === 'string' ? r.cwd : '/',
    env: envOf(r.env),
    stdio: [typeof r.input === 'string' ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const bufs = { stdout: '', stderr: '' };
  let truncated = false;
  for (const name of ['stdout', 'stderr'] as const) {
    child[name]?.setEncoding('utf8');
    child[name]?.on('data', (s: string) => {
      if (bufs[name].length + s.length > MAX_OUTPUT) truncated = true;
      else bufs[name] += s;
    });
  }
  if (typeof r.input === 'string') child.stdin?.end(r.input);
  let timedOut = false;
  const timer = timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs)
    : undefined;
  let replied = false;
  child.on('error', (e) => {
    clearTimeout(timer);
    if (replied) return;
    replied = true;
    send({ id: r.id, ok: false, error: `cannot run ${argv[0]}: ${e.message}`, code: (e as NodeJS.ErrnoException).code ?? null });
  });
  child.on('close', (code, signal) => {
    clearTimeout(timer);
    if (replied) return;
    replied = true;
    send({ id: r.id, ok: true, exitCode: code ?? -1, signal, timedOut, truncated, stdout: bufs.stdout, stderr: bufs.stderr, durationMs: Date.now() - started });
  });
}

function spawnBg(r: Req): void {
  const argv = strArray(r.argv, 'argv');
  if (typeof r.logFile !== 'string') throw new Error('logFile must be a path');
  const logFd = openSync(r.logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: typeof r.cwd === 'string' ? r.cwd : '/',
    env: envOf(r.env),
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  child.on('error', (e) => {
    send({ id: r.id, ok: false, error: `cannot run ${argv[0]}: ${e.message}`, code: (e as NodeJS.ErrnoException).code ?? null });
  });
  child.on('spawn', () => {
    children.set(child.pid!, child);
    send({ id: r.id, ok: true, pid: child.pid });
  });
  child.on('exit', (code, signal) => {
    if (child.pid !== undefined && children.delete(child.pid)) send({ event: 'exit', pid: child.pid, exitCode: code ?? -1, signal });
  });
}

function kill(r: Req): void {
  if (typeof r.pid !== 'number') throw new Error('pid must be a number');
  const sig = typeof r.signal === 'string' ? (r.signal as NodeJS.Signals) : 'SIGTERM';
  const c = children.get(r.pid);
  send({ id: r.id, ok: true, wasRunning: c ? c.kill(sig) : false });
}

function hello(r: Req): void {
  let up = uptime();
  try {
    up = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  } catch {
    /* os.uptime() will do */
  }
  send({ id: r.id, ok: true, hostname: hostname(), kernel: release(), uptime_s: up, pid: process.pid });
}

function poweroff(r: Req): void {
  for (const c of children.values()) c.kill('SIGKILL');
  send({ id: r.id, ok: true });
  // Let the reply leave, then power off without init's help (sysrq 'o').
  out.end(() => writeFileSync('/proc/sysrq-trigger', 'o'));
}

const ops: Record<string, (r: Req) => void> = { hello, exec, spawn: spawnBg, kill, poweroff };

function handle(line: string): void {
  let r: Req;
  try {
    const v: unknown = JSON.parse(line);
    if (typeof v !== 'object' || v === null || !('id' in v) || !('op' in v)) throw new Error('a request is an object with id and op');
    r = v as Req;
  } catch (e) {
    send({ id: null, ok: false, error: `bad request: ${(e as Error).message}: ${line.slice(0, 200)}` });
    return;
  }
  const op = ops[r.op];
  if (!op) {
    send({ id: r.id, ok: false, error: `unknown op ${JSON.stringify(r.op)}; the ops are ${Object.keys(ops).join(', ')}` });
    return;
  }
  try {
    op(r);
  } catch (e) {
    send({ id: r.id, ok: false, error: (e as Error).message });
  }
}

/*
 * Read with plain blocking reads (in libuv's thread pool). virtio-serial reads
 * return 0 while nobody is connected at the host end: then wait a little and
 * read again, so a host that connects late, or reconnects, is served.
 */
const decoder = new StringDecoder('utf8');
const chunk = Buffer.alloc(64 * 1024);
let buf = '';
function readMore(): void {
  read(fd, chunk, 0, chunk.length, null, (err, n) => {
    if (err) {
      process.stderr.write(`agent: reading ${port}: ${err.message}\n`);
      process.exit(1);
    }
    if (n === 0) {
      setTimeout(readMore, 50);
      return;
    }
    buf += decoder.write(chunk.subarray(0, n));
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) handle(line);
    }
    readMore();
  });
}
readMore();
