/**
 * A QMP client over a unix socket: greeting, capability negotiation, commands
 * matched to replies by id (so several can be in flight), typed errors, event
 * listeners and waits, timeouts everywhere.
 *
 *   const qmp = await QmpClient.connect('/tmp/vm/qmp.sock', { retryUntilMs: 30_000 });
 *   const info = await qmp.execute('query-migrate');      // typed MigrationInfo
 *   const off = qmp.on('STOP', (e) => ...);               // returns an unsubscribe
 *   await qmp.waitEvent('RESUME', { timeoutMs: 5000 });
 *   await qmp.close();
 *
 * Out-of-band: connect with `{ oob: true }` to negotiate the `oob` capability
 * when QEMU offers it; `executeOob` then sends `exec-oob`, which QEMU's
 * monitor I/O thread runs at once, without the big QEMU lock (migrate-recover
 * on a destination whose vCPU holds the lock waiting for a page).
 *
 * --verbose (or HECA_QMP_TRACE=1) logs every line sent and received.
 */
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { debug, isVerbose } from '../core/log.ts';
import { connectRetrying, SocketConnectError } from '../core/sockaddr.ts';
import { QmpCommandError, QmpConnectError, QmpDisconnectedError, QmpNegotiationError, QmpTimeoutError } from './errors.ts';
import type { ArgsOf, QmpCommandName, QmpEvent, QmpGreeting, ReturnOf } from './types.ts';

export interface ConnectOptions {
  /** Time allowed for the greeting and qmp_capabilities together (default 10 s). */
  timeoutMs?: number;
  /** Keep retrying a missing or refusing socket until this many ms have passed (default 0: one try). */
  retryUntilMs?: number;
  /** Default time allowed for each command's reply (default 60 s). */
  commandTimeoutMs?: number;
  /** Negotiate out-of-band execution when the greeting offers it (default false). */
  oob?: boolean;
}

export type EventListener = (e: QmpEvent) => void;

interface Pending {
  command: string;
  args: Record<string, unknown> | undefined;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

const MAX_EVENTS = 1000;
const RETRY_EVERY_MS = 100;

function trace(dir: '>' | '<', line: string): void {
  if (process.env.HECA_QMP_TRACE === '1') process.stderr.write(`qmp ${dir} ${line}\n`);
  else if (isVerbose()) debug(`qmp ${dir} ${line}`);
}

/** Open the socket, retrying ENOENT/ECONNREFUSED until the deadline. */
async function openSocket(path: string, retryUntilMs: number): Promise<Socket> {
  try {
    return await connectRetrying(path, { retryUntilMs, everyMs: RETRY_EVERY_MS });
  } catch (e) {
    if (!(e instanceof SocketConnectError)) throw e;
    const why = e.code === 'ENOENT' ? 'ENOENT: the socket does not exist (QEMU has not created it yet, or was started without it)'
      : e.code === 'ECONNREFUSED' ? 'ECONNREFUSED: nothing is listening on it (QEMU exited, or has not started listening yet)'
      : e.message;
    throw new QmpConnectError(path, e.code, retryUntilMs > 0 ? `${why}, still after ${retryUntilMs} ms of retrying` : why, e.cause);
  }
}

/** {QMP: {version: {qemu: {major, minor, micro}, package}, capabilities: [...]}}, checked as far as we read it. */
function isGreeting(m: Record<string, unknown>): m is QmpGreeting & Record<string, unknown> {
  const qmp = m.QMP as { version?: { qemu?: Record<string, unknown> }; capabilities?: unknown } | null | undefined;
  const v = qmp?.version?.qemu;
  return typeof qmp === 'object' && qmp !== null && Array.isArray(qmp.capabilities) &&
    typeof v === 'object' && v !== null && ['major', 'minor', 'micro'].every((k) => typeof v[k] === 'number');
}

export class QmpClient {
  readonly path: string;
  /** The greeting QEMU sent. Set once connect() resolved. */
  greeting!: QmpGreeting;
  /** The last MAX_EVENTS events received, oldest first. */
  readonly events: QmpEvent[] = [];
  /** Settles (never rejects) when the connection has closed, for whatever reason. */
  readonly closed: Promise<void>;

  private readonly sock: Socket;
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Map<string, Set<EventListener>>();
  private closeReason: string | undefined;
  private markClosed!: () => void;
  private onGreeting: ((g: QmpGreeting) => void) | undefined;
  private onBadGreeting: ((why: string) => void) | undefined;
  private commandTimeoutMs: number;
  private oob = false;

  private constructor(path: string, sock: Socket, commandTimeoutMs: number) {
    this.path = path;
    this.sock = sock;
    this.commandTimeoutMs = commandTimeoutMs;
    this.closed = new Promise((r) => {
      this.markClosed = r;
    });
    sock.on('data', (chunk: Buffer) => this.feed(this.decoder.write(chunk)));
    sock.on('error', (e) => {
      this.closeReason ??= `socket error: ${e.message}`;
    });
    sock.on('close', () => this.onClose());
  }

  static async connect(path: string, opts: ConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const sock = await openSocket(path, opts.retryUntilMs ?? 0);
    const c = new QmpClient(path, sock, opts.commandTimeoutMs ?? 60_000);
    const deadline = Date.now() + timeoutMs;
    try {
      c.greeting = await c.awaitGreeting(timeoutMs);
      const oob = opts.oob === true && c.greeting.QMP.capabilities.includes('oob');
      await c.executeRaw('qmp_capabilities', oob ? { enable: ['oob'] } : undefined, { timeoutMs: Math.max(1, deadline - Date.now()) }).catch((e: unknown) => {
        if (e instanceof QmpCommandError) throw new QmpNegotiationError(path, `qmp_capabilities was refused: ${e.errorClass}: ${e.desc}`);
        if (e instanceof QmpTimeoutError) throw new QmpTimeoutError('qmp_capabilities', timeoutMs, path);
        throw e;
      });
      c.oob = oob;
      return c;
    } catch (e) {
      // No goodbye to a peer that may never read it: drop the socket now.
      c.closeReason ??= 'negotiation failed';
      c.sock.destroy();
      await c.closed;
      throw e;
    }
  }

  /** QEMU's version as "major.minor.micro". */
  get version(): string {
    const v = this.greeting.QMP.version.qemu;
    return `${v.major}.${v.minor}.${v.micro}`;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined && this.sock.destroyed;
  }

  /** Run a command from the typed schema. */
  execute<K extends QmpCommandName>(cmd: K, ...rest: ArgsOf<K> extends undefined ? [args?: undefined, opts?: { timeoutMs?: number }] : [args: ArgsOf<K>, opts?: { timeoutMs?: number }]): Promise<ReturnOf<K>> {
    const [args, opts] = rest;
    return this.executeRaw(cmd, args as Record<string, unknown> | undefined, opts) as Promise<ReturnOf<K>>;
  }

  /** Out-of-band execution was negotiated (connect with `oob: true`, and QEMU offered it). */
  get oobEnabled(): boolean {
    return this.oob;
  }

  /**
   * Run a command out of band (`exec-oob`): QEMU runs it in its monitor I/O
   * thread, ahead of queued commands and without the big lock. Only commands
   * QEMU allows out of band (migrate-recover, migrate-pause, x-oob-test).
   */
  executeOob(cmd: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<unknown> {
    if (!this.oob) {
      return Promise.reject(new QmpNegotiationError(this.path, `cannot send ${cmd} out of band: out-of-band execution was not negotiated (${this.greeting.QMP.capabilities.includes('oob') ? 'connect with { oob: true }' : 'this monitor does not offer it'})`));
    }
    return this.send('exec-oob', cmd, args, opts);
  }

  /** Run any command; the reply is not typed. */
  executeRaw(cmd: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<unknown> {
    return this.send('execute', cmd, args, opts);
  }

  private send(how: 'execute' | 'exec-oob', cmd: string, args: Record<string, unknown> | undefined, opts: { timeoutMs?: number }): Promise<unknown> {
    if (this.closeReason !== undefined) return Promise.reject(new QmpDisconnectedError(cmd, this.path, this.closeReason));
    const id = `heca-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      const p: Pending = { command: cmd, args, resolve, reject, timer: undefined };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new QmpTimeoutError(cmd, timeoutMs, this.path));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      const line = JSON.stringify(args === undefined ? { [how]: cmd, id } : { [how]: cmd, arguments: args, id });
      trace('>', line);
      this.sock.write(`${line}\n`);
    });
  }

  /** Call `fn` for every event named `name` ('*' for all). Returns the unsubscribe function. */
  on(name: string, fn: EventListener): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  /** The next event named `name` (matching `predicate`) received from now on. */
  waitEvent(name: string, opts: { timeoutMs: number; predicate?: (e: QmpEvent) => boolean }): Promise<QmpEvent> {
    const what = `event ${name}`;
    if (this.closeReason !== undefined) return Promise.reject(new QmpDisconnectedError(what, this.path, this.closeReason));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        off();
        offClose();
      };
      const off = this.on(name, (e) => {
        if (opts.predicate && !opts.predicate(e)) return;
        done();
        resolve(e);
      });
      const offClose = this.on('\0close', () => {
        done();
        reject(new QmpDisconnectedError(what, this.path, this.closeReason ?? 'closed'));
      });
      const timer = setTimeout(() => {
        done();
        reject(new QmpTimeoutError(what, opts.timeoutMs, this.path));
      }, opts.timeoutMs);
    });
  }

  /** Close the connection; pending commands and waits reject. Idempotent. */
  async close(): Promise<void> {
    if (!this.sock.destroyed) {
      this.closeReason ??= 'closed by this client';
      this.sock.end();
      const t = setTimeout(() => this.sock.destroy(), 1000);
      await this.closed;
      clearTimeout(t);
    }
    await this.closed;
  }

  private awaitGreeting(timeoutMs: number): Promise<QmpGreeting> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onGreeting = this.onBadGreeting = undefined;
        reject(new QmpTimeoutError('greeting', timeoutMs, this.path));
      }, timeoutMs);
      this.onGreeting = (g) => {
        clearTimeout(timer);
        this.onGreeting = this.onBadGreeting = undefined;
        resolve(g);
      };
      this.onBadGreeting = (why) => {
        clearTimeout(timer);
        this.onGreeting = this.onBadGreeting = undefined;
        reject(new QmpNegotiationError(this.path, why));
      };
    });
  }

  private feed(text: string): void {
    this.buf += text;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.handleLine(line);
    }
    if (this.onBadGreeting && this.buf.length > 64 * 1024) this.onBadGreeting('more than 64 KiB without a line end: not a QMP peer');
  }

  private handleLine(line: string): void {
    trace('<', line);
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      if (this.onBadGreeting) this.onBadGreeting(`it sent something that is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
      else debug(`qmp ${this.path}: ignoring a line that is not JSON: ${line.slice(0, 200)}`);
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.onBadGreeting?.(`it sent ${JSON.stringify(msg)}, not a JSON object`);
      return;
    }
    const m = msg as Record<string, unknown>;
    if (this.onGreeting) {
      if (isGreeting(m)) this.onGreeting(m);
      else this.onBadGreeting?.(`its first message is not a QMP greeting: ${line.slice(0, 120)}`);
      return;
    }
    if (typeof m.event === 'string') {
      this.dispatch(m as unknown as QmpEvent);
      return;
    }
    const id = typeof m.id === 'string' ? m.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) {
      debug(`qmp ${this.path}: reply nobody waits for (timed out?): ${line.slice(0, 200)}`);
      return;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in m) {
      const err = (m.error ?? {}) as { class?: string; desc?: string };
      p.reject(new QmpCommandError(p.command, err.class ?? 'UnknownError', err.desc ?? JSON.stringify(m.error), p.args));
    } else {
      p.resolve(m.return);
    }
  }

  private dispatch(e: QmpEvent): void {
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    for (const key of [e.event, '*']) {
      for (const fn of [...(this.listeners.get(key) ?? [])]) {
        try {
          fn(e);
        } catch (err) {
          debug(`qmp ${this.path}: a listener for ${e.event} threw: ${String(err)}`);
        }
      }
    }
  }

  private onClose(): void {
    this.closeReason ??= 'QEMU closed the connection';
    this.onBadGreeting?.('the connection closed before a greeting arrived');
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      // QEMU may close the socket before replying to quit: that is success.
      if (p.command === 'quit') p.resolve({});
      else p.reject(new QmpDisconnectedError(p.command, this.path, this.closeReason));
    }
    for (const fn of [...(this.listeners.get('\0close') ?? [])]) fn({ event: '\0close', timestamp: { seconds: 0, microseconds: 0 } });
    this.markClosed();
  }
}
