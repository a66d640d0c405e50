/**
 * The one place heca runs external commands, in two ways:
 *
 *   run() / probe()   a command that runs to completion: git, tar, configure,
 *                     ninja, make, apt-get, ip, tc... Through zx's `$`, which
 *                     quotes every argument (arguments are always an array,
 *                     never a shell string built by concatenation). inDir()
 *                     runs a block of them in a directory (zx's `within`),
 *                     retrying() repeats a flaky step (zx's `retry`).
 *   spawnLogged()     a long-lived, supervised process (a QEMU, an L1 host):
 *                     execa, its output appended to a log file, stopped
 *                     gracefully or killed, and killed if heca exits.
 *
 * `--dry-run` prints what run() would run instead of running it (read-only
 * probes still run: they pass `probe: true`); `--verbose` echoes every
 * command. A failure becomes a HecaError naming the command, its exit status
 * and the tail of its output.
 */
import { createWriteStream, openSync } from 'node:fs';
import { execa } from 'execa';
import { $, retry, within, type ProcessPromise } from 'zx';
import { HecaError, tail } from './errors.ts';
import { debug, isVerbose } from './log.ts';

let dryRun = false;
export function setDryRun(on: boolean): void {
  dryRun = on;
}
export function isDryRun(): boolean {
  return dryRun;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Read-only command whose answer is needed to plan: runs even in dry-run. */
  probe?: boolean;
  /** Kill after this many ms (SIGTERM, then SIGKILL 5 s later). */
  timeoutMs?: number;
  /** Data written to stdin. */
  input?: string;
  /** Called with every line of stdout and stderr as it arrives (progress). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Do not throw on a non-zero exit; the caller looks at `exitCode`. */
  allowFail?: boolean;
  /** What to tell the user if it fails. */
  fix?: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Quote for display only (never executed through a shell). */
export function showCommand(cmd: string, args: readonly string[]): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [cmd, ...args].map(q).join(' ');
}

/** Commands not found by the shell zx runs them through: exit 127 and its "not found" message. */
function notFound(exitCode: number | null, stderr: string): boolean {
  return exitCode === 127 && /command not found|No such file or directory|not found/.test(stderr);
}

export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const cwd = opts.cwd ?? $.cwd;
  const shown = showCommand(cmd, args);
  if (dryRun && !opts.probe) {
    process.stdout.write(`${cwd ? `(cd ${cwd} && ` : ''}${shown}${cwd ? ')' : ''}\n`);
    return { exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
  }
  if (isVerbose()) debug(`$ ${shown}${cwd ? `   (in ${cwd})` : ''}`);
  const start = Date.now();
  const child = $({
    cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    ...(opts.input === undefined ? {} : { input: opts.input }),
    nothrow: true,
    quiet: true,
    verbose: false,
  })`${cmd} ${[...args]}`;
  if (opts.onLine) attachLines(child, opts.onLine);
  // Past the deadline: SIGTERM (to the command and its children), SIGKILL 5 s later.
  let timedOut = false;
  const timers: NodeJS.Timeout[] = [];
  if (opts.timeoutMs !== undefined) {
    timers.push(setTimeout(() => {
      timedOut = true;
      void child.kill('SIGTERM');
      timers.push(setTimeout(() => void child.kill('SIGKILL'), 5000));
    }, opts.timeoutMs));
  }
  const r = await child;
  for (const t of timers) clearTimeout(t);
  const res: RunResult = {
    exitCode: r.exitCode ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    durationMs: Date.now() - start,
  };
  if ((timedOut || r.exitCode !== 0) && !opts.allowFail) {
    const missing = notFound(r.exitCode, r.stderr);
    const why = timedOut
      ? `it did not finish within ${opts.timeoutMs} ms and was killed`
      : missing
        ? `${cmd} is not installed or not on PATH`
        : r.signal
          ? `it was killed by ${r.signal}`
          : `it exited with status ${r.exitCode}`;
    throw new HecaError(`command failed: ${shown}`, {
      why,
      fix: opts.fix ?? (missing ? 'run tools/setup-host.sh as root' : undefined),
      details: tail(r.stdall || `${res.stdout}${res.stderr}`, 25),
    });
  }
  return res;
}

/**
 * Run `fn` with `dir` as the working directory of every run() in it that
 * names none (zx's `within`: the directory holds for this async call chain
 * only, not for the rest of the process).
 */
export function inDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return within(async () => {
    $.cwd = dir;
    return fn();
  }) as Promise<T>;
}

/** Try `fn` up to `attempts` times, `delayMs` apart (zx's `retry`): for steps that fail for passing reasons (a mirror, the network). */
export async function retrying<T>(attempts: number, delayMs: number, fn: () => Promise<T>): Promise<T> {
  return await retry(attempts, delayMs, fn);
}

function attachLines(child: ProcessPromise, onLine: NonNullable<RunOptions['onLine']>): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i), name);
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => {
      if (buf) onLine(buf, name);
    });
  }
}

/** Output of a read-only probe, trimmed; runs even in dry-run. */
export async function probe(cmd: string, args: readonly string[], opts: Omit<RunOptions, 'probe'> = {}): Promise<string> {
  const r = await run(cmd, args, { ...opts, probe: true });
  return r.stdout.trim();
}

export interface Spawned {
  pid: number;
  /** Resolves when the process exits, with its exit code (or -1 when killed by a signal). */
  exited: Promise<{ exitCode: number; signal: string | undefined }>;
  kill(signal?: NodeJS.Signals): void;
  /** Stop gracefully: SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Start a long-running process (a QEMU, say) whose output is appended to a log file.
 * Not affected by dry-run: callers that spawn decide that themselves.
 */
export function spawnLogged(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; logFile: string; env?: Record<string, string | undefined> },
): Spawned {
  debug(`$ ${showCommand(cmd, args)} > ${opts.logFile}`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
  // The log file's descriptor goes to the process itself (no pipe through heca):
  // what it wrote is in the file by the time it exits, and it keeps logging if we stall.
  const log = createWriteStream(opts.logFile, { fd: openSync(opts.logFile, 'a') });
  const child = execa(cmd, [...args], {
    cwd: opts.cwd ?? process.cwd(),
    env,
    stdin: 'ignore',
    stdout: log,
    stderr: log,
    reject: false,
    // Supervised here: stop() escalates, and live processes die with heca (below).
    cleanup: false,
    forceKillAfterDelay: false,
  });
  log.destroy();
  live.add(child);
  let done = false;
  const exited = new Promise<{ exitCode: number; signal: string | undefined }>((res) => {
    child.once('exit', (code, signal) => res({ exitCode: code ?? -1, signal: signal ?? undefined }));
    child.once('error', () => res({ exitCode: -1, signal: undefined }));
  }).then((e) => {
    done = true;
    live.delete(child);
    return e;
  });
  return {
    pid: child.pid ?? -1,
    exited,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!done) child.kill(signal);
    },
    stop: async (graceMs = 5000) => {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Processes started by spawnLogged and still running: killed if we exit. */
const live = new Set<{ kill(signal: NodeJS.Signals): boolean }>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
