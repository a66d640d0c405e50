/**
 * L0 end of an L1 test host's command agent (bench/testbed/nested/agent.ts): JSON
 * lines over the unix socket QEMU gives the virtio-serial port "heca.agent".
 * Requests carry ids, so commands run concurrently; every wait has a timeout.
 *
 *   const a = await AgentClient.connect(sock, { retryUntilMs: 30_000 });
 *   await a.hello({ timeoutMs: 120_000 });          // the host has booted
 *   const r = await a.exec(['rdma', 'link', 'show'], { timeoutMs: 10_000 });
 */
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { HecaError, tail } from '../../../tools/core/errors.ts';
import { debug } from '../../../tools/core/log.ts';
import { connectRetrying, SocketConnectError } from '../../../tools/core/sockaddr.ts';

export interface AgentExecResult {
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface AgentHello {
  hostname: string;
  kernel: string;
  uptime_s: number;
  pid: number;
}

export interface AgentExit {
  pid: number;
  exitCode: number;
  signal: string | null;
}

interface Pending {
  op: string;
  what: string;
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Something the agent was asked did not happen: the reason says why. */
export class AgentError extends HecaError {
  constructor(host: string, what: string, why: string, fix?: string) {
    super(`${host}: ${what}`, { why, ...(fix === undefined ? {} : { fix }) });
    this.name = 'AgentError';
  }
}

const RETRY_EVERY_MS = 100;

export class AgentClient {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly exitWaiters = new Map<number, (e: AgentExit) => void>();
  private readonly exits = new Map<number, AgentExit>();
  private closeReason: string | undefined;

  private constructor(
    /** Names the host in errors ("L1 host heca-a"). */
    readonly host: string,
    private readonly sock: Socket,
  ) {
    sock.on('data', (c: Buffer) => this.feed(this.decoder.write(c)));
    sock.on('error', (e) => {
      this.closeReason ??= `socket error: ${e.message}`;
    });
    sock.on('close', () => {
      this.closeReason ??= 'the agent socket closed (the L1 QEMU exited?)';
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new AgentError(this.host, p.what, this.closeReason, 'see the host\'s console log'));
      }
    });
  }

  /** Connect to the socket, retrying while it does not exist yet or refuses. */
  static async connect(path: string, opts: { host: string; retryUntilMs?: number }): Promise<AgentClient> {
    try {
      return new AgentClient(opts.host, await connectRetrying(path, { retryUntilMs: opts.retryUntilMs ?? 0, everyMs: RETRY_EVERY_MS }));
    } catch (e) {
      if (!(e instanceof SocketConnectError)) throw e;
      throw new AgentError(opts.host, `cannot connect to the agent socket ${path}`, e.message, 'the L1 QEMU is not running or was started without the heca.agent port');
    }
  }

  /** Wait until the agent answers: the L1 host has booted and runs it. */
  async hello(opts: { timeoutMs: number }): Promise<AgentHello> {
    return (await this.request('hello', {}, opts.timeoutMs, 'waiting for the agent to answer (boot)')) as unknown as AgentHello;
  }

  /**
   * Run a command in the L1 host to completion. A non-zero exit is an error
   * (with the output's tail) unless `allowFail`; a command that cannot start
   * always is. The agent kills it after `timeoutMs`.
   */
  async exec(argv: readonly string[], opts: { timeoutMs: number; cwd?: string; env?: Record<string, string>; input?: string; allowFail?: boolean }): Promise<AgentExecResult> {
    const shown = argv.join(' ');
    const r = (await this.request('exec', { argv, timeoutMs: opts.timeoutMs, cwd: opts.cwd, env: opts.env, input: opts.input }, opts.timeoutMs + 10_000, `running ${shown}`)) as unknown as AgentExecResult;
    if (!opts.allowFail && (r.exitCode !== 0 || r.timedOut)) {
      const why = r.timedOut ? `it did not finish within ${opts.timeoutMs} ms and was killed` : r.signal ? `it was killed by ${r.signal}` : `it exited with status ${r.exitCode}`;
      throw new HecaError(`${this.host}: command failed: ${shown}`, { why, details: tail(`${r.stdout}${r.stderr}`, 25) });
    }
    return r;
  }

  /** Start a long-running process in the L1 host, its output appended to `logFile` (a path in L1). */
  async spawn(argv: readonly string[], opts: { logFile: string; cwd?: string; env?: Record<string, string> }): Promise<{ pid: number; exited: Promise<AgentExit> }> {
    const r = await this.request('spawn', { argv, logFile: opts.logFile, cwd: opts.cwd, env: opts.env }, 30_000, `starting ${argv[0]}`);
    const pid = r.pid as number;
    const exited = new Promise<AgentExit>((resolve) => {
      const known = this.exits.get(pid);
      if (known) resolve(known);
      else this.exitWaiters.set(pid, resolve);
    });
    return { pid, exited };
  }

  /** Signal a process spawn() started; false if it had already exited. */
  async kill(pid: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
    const r = await this.request('kill', { pid, signal }, 10_000, `killing ${pid}`);
    return r.wasRunning === true;
  }

  /** Ask the host to power off (its processes are killed first). Resolves once the agent confirmed. */
  async poweroff(): Promise<void> {
    await this.request('poweroff', {}, 10_000, 'powering off');
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  close(): void {
    this.closeReason ??= 'closed by this client';
    this.sock.destroy();
  }

  private request(op: string, args: Record<string, unknown>, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    if (this.closeReason !== undefined) return Promise.reject(new AgentError(this.host, what, this.closeReason));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentError(this.host, what, `no answer from the agent within ${timeoutMs} ms`, 'the host may be hung or very slow: see its console log'));
      }, timeoutMs);
      this.pending.set(id, { op, what, resolve, reject, timer });
      const clean = Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined));
      this.sock.write(`${JSON.stringify({ id, op, ...clean })}\n`);
    });
  }

  private feed(text: string): void {
    this.buf += text;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.handle(line);
    }
  }

  private handle(line: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      debug(`${this.host} agent: not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (m.event === 'exit') {
      const e: AgentExit = { pid: m.pid as number, exitCode: m.exitCode as number, signal: (m.signal as string | null) ?? null };
      const w = this.exitWaiters.get(e.pid);
      if (w) {
        this.exitWaiters.delete(e.pid);
        w(e);
      } else this.exits.set(e.pid, e);
      return;
    }
    const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
    if (!p) {
      debug(`${this.host} agent: unexpected message: ${line.slice(0, 200)}`);
      return;
    }
    this.pending.delete(m.id as number);
    clearTimeout(p.timer);
    if (m.ok === true) p.resolve(m);
    else p.reject(new AgentError(this.host, p.what, String(m.error ?? 'the agent refused')));
  }
}
