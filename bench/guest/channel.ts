/**
 * Host side of the guest's control channel: the workload's JSON lines on the
 * guest's second serial port, which QEMU exposes as a unix socket
 * (`-chardev socket,id=ctl,path=P,server=on,wait=off -serial chardev:ctl`).
 *
 * One channel per QEMU: in a migration the host keeps the source's channel
 * and connects a second one to the destination's socket (before or after the
 * switch); each records what its QEMU's guest said. Lines that are not a JSON
 * object with a string `t` (kernel noise, the tail of a line cut by the
 * switch) are counted and skipped.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { HecaError } from '../../tools/core/errors.ts';
import { debug } from '../../tools/core/log.ts';
import { connectRetrying, isTcpAddr, SocketConnectError } from '../../tools/core/sockaddr.ts';
import type { SlowWrites } from '../results/schema.ts';

export interface ReadyMessage {
  t: 'ready';
  pages: number;
  page_size: number;
  arena_mib: number;
  ws_mib: number;
  /** The working set is pages [ws_first_page, pages). */
  ws_first_page: number;
  pattern: string;
  rate: number;
  interval_ms: number;
  seed: number;
  /** Writer threads, and the CPUs the guest has online (absent from a workload before threads). */
  threads?: number;
  cpus?: number;
  /** Time the workload took to stamp the arena. */
  stamp_ms: number;
  /** Guest CLOCK_MONOTONIC (~ time since boot) when it got ready. */
  ms: number;
}
export interface TickMessage {
  t: 'tick';
  seq: number;
  /** Guest CLOCK_MONOTONIC, ms. */
  ms: number;
  /** Length of this interval as the guest measured it. */
  interval_ms: number;
  ops: number;
  max_stall_us: number;
  /** heca.threads > 1: each writer's ops in this interval (their sum is ops), and each one's longest gap. */
  threads?: number[];
  stalls_us?: number[];
}
export interface CheckResult {
  pages_checked: number;
  bad_pages: number;
  /** Up to 16 bad page indices, ascending. */
  first_bad: number[];
  /** How long the guest took to verify the arena. */
  ms?: number;
}
export interface CheckMessage extends CheckResult {
  t: 'check';
}
export interface WhereMessage {
  t: 'where';
  page: number;
  /** Guest-physical address of the page. */
  gpa: number;
}
export interface SlowMessage {
  t: 'slow';
  /** Guest CLOCK_MONOTONIC, ms, now and at the previous `slow` (or ready). */
  ms: number;
  since_ms: number;
  /** Page writes in between. */
  ops: number;
  /** [lower bound ns, count] of the page writes that took 65.5 µs or more, quarter-octave buckets by duration. */
  writes: Array<[number, number]>;
}
export interface ByeMessage {
  t: 'bye';
}
export interface ErrorMessage {
  t: 'error';
  msg: string;
  /** Set when the workload exits because of it (bad kernel parameters). */
  fatal?: boolean;
}
export type GuestMessage = ReadyMessage | TickMessage | CheckMessage | WhereMessage | SlowMessage | ByeMessage | ErrorMessage;
export type GuestMessageType = GuestMessage['t'];
export type MessageOf<T extends GuestMessageType> = Extract<GuestMessage, { t: T }>;

export interface Received<M extends GuestMessage = GuestMessage> {
  msg: M;
  /** Host wall clock when the line arrived (Date.now()). */
  hostTime: number;
  /** Host monotonic clock when the line arrived (performance.now()). */
  hostMono: number;
}

export interface WaitOptions<T extends GuestMessageType> {
  timeoutMs: number;
  predicate?: (m: MessageOf<T>) => boolean;
  /**
   * Index into `messages` to search from. Default 0: a message that already
   * arrived counts. Pass `channel.messages.length` to wait for a new one.
   */
  since?: number;
}

/** Longest line kept while waiting for its newline (the workload's are < 1 KiB). */
const MAX_LINE = 64 * 1024;

/**
 * Parse one line from the guest. Leading noise before the object is skipped;
 * anything that is not an object with a string `t` is undefined.
 */
export function parseGuestLine(line: string): GuestMessage | undefined {
  let s = line.trim();
  if (!s) return undefined;
  if (!s.startsWith('{')) {
    const i = s.indexOf('{"t":');
    if (i < 0) return undefined;
    s = s.slice(i);
  }
  try {
    const v: unknown = JSON.parse(s);
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { t?: unknown }).t === 'string') return v as GuestMessage;
  } catch {
    /* garbage */
  }
  return undefined;
}

export class GuestChannel {
  /** Everything the guest said on this channel, in order. */
  readonly messages: Received[] = [];
  /** Lines skipped as garbage, and the last few of them (for error messages). */
  garbageLines = 0;
  readonly garbageSample: string[] = [];
  private buf = '';
  private closedWhy: string | undefined;
  private readonly listeners = new Set<(r: Received | undefined) => void>();

  private constructor(
    readonly path: string,
    private readonly sock: Socket,
  ) {
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('error', (e) => this.onClose(`socket error: ${e.message}`));
    sock.on('close', () => this.onClose('QEMU closed the socket'));
  }

  /**
   * Connect to QEMU's control socket, retrying until it exists and accepts
   * (QEMU creates it shortly after it starts).
   */
  static async connect(path: string, opts: { timeoutMs?: number } = {}): Promise<GuestChannel> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (!isTcpAddr(path) && Buffer.byteLength(path) > 107) {
      throw new HecaError(`guest control socket path is too long (${Buffer.byteLength(path)} bytes)`, { why: `unix socket paths are limited to 107 bytes: ${path}`, fix: 'use a shorter run directory' });
    }
    try {
      const sock = await connectRetrying(path, { retryUntilMs: timeoutMs, everyMs: 50 });
      debug(`guest channel: connected to ${path}`);
      return new GuestChannel(path, sock);
    } catch (e) {
      if (!(e instanceof SocketConnectError)) throw e;
      throw new HecaError(`cannot connect to the guest control socket ${path}`, {
        why: `it did not accept a connection within ${timeoutMs} ms (last error: ${e.message})`,
        fix: 'check that QEMU runs with -chardev socket,id=ctl,path=...,server=on,wait=off -serial chardev:ctl, and its log',
      });
    }
  }

  get closed(): boolean {
    return this.closedWhy !== undefined;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.onLine(line);
    }
    if (this.buf.length > MAX_LINE) {
      this.garbage(`${this.buf.slice(0, 80)}... (${this.buf.length} bytes without a newline)`);
      this.buf = '';
    }
  }

  private onLine(line: string): void {
    const msg = parseGuestLine(line);
    if (!msg) {
      if (line.trim()) this.garbage(line);
      return;
    }
    const r: Received = { msg, hostTime: Date.now(), hostMono: performance.now() };
    this.messages.push(r);
    for (const l of [...this.listeners]) l(r);
  }

  private garbage(line: string): void {
    this.garbageLines++;
    this.garbageSample.push(line.slice(0, 200));
    if (this.garbageSample.length > 5) this.garbageSample.shift();
    debug(`guest channel ${this.path}: skipped ${JSON.stringify(line.slice(0, 200))}`);
  }

  private onClose(why: string): void {
    if (this.closedWhy !== undefined) return;
    this.closedWhy = why;
    if (this.buf.trim()) this.onLine(this.buf);
    this.buf = '';
    for (const l of [...this.listeners]) l(undefined);
  }

  /** Call `fn` for every message from now on (and once with undefined when the channel closes). */
  on(fn: (r: Received | undefined) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The last message of type `t`, if any arrived. */
  last<T extends GuestMessageType>(t: T): Received<MessageOf<T>> | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const r = this.messages[i]!;
      if (r.msg.t === t) return r as Received<MessageOf<T>>;
    }
    return undefined;
  }

  /**
   * The first message of type `t` (matching `predicate`) from index `since`
   * on; waits for it up to `timeoutMs`. Rejects on timeout, when the channel
   * closes, or when the workload reports a fatal error (it then exits).
   */
  waitFor<T extends GuestMessageType>(t: T, opts: WaitOptions<T>): Promise<MessageOf<T>> {
    return this.waitReceived(t, opts).then((r) => r.msg);
  }

  /** Like waitFor, with the host receive times. */
  waitReceived<T extends GuestMessageType>(t: T, opts: WaitOptions<T>): Promise<Received<MessageOf<T>>> {
    const match = (r: Received): r is Received<MessageOf<T>> => r.msg.t === t && (!opts.predicate || opts.predicate(r.msg as MessageOf<T>));
    for (let i = opts.since ?? 0; i < this.messages.length; i++) {
      const r = this.messages[i]!;
      if (match(r)) return Promise.resolve(r);
      if (r.msg.t === 'error' && r.msg.fatal) return Promise.reject(GuestChannel.fatalError(r.msg));
    }
    return this.waitNew(`a "${t}" message`, opts.timeoutMs, (r) => {
      if (match(r)) return r;
      if (r.msg.t === 'error' && r.msg.fatal) throw GuestChannel.fatalError(r.msg);
      return undefined;
    });
  }

  /** Wait for the first new message `pick` returns a value for. */
  private waitNew<R>(what: string, timeoutMs: number, pick: (r: Received) => R | undefined): Promise<R> {
    if (this.closedWhy !== undefined) return Promise.reject(this.closedError(what));
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(this.timeoutError(what, timeoutMs));
      }, timeoutMs);
      const off = this.on((r) => {
        if (r === undefined) {
          clearTimeout(timer);
          off();
          reject(this.closedError(what));
          return;
        }
        let v: R | undefined;
        try {
          v = pick(r);
        } catch (e) {
          clearTimeout(timer);
          off();
          reject(e);
          return;
        }
        if (v !== undefined) {
          clearTimeout(timer);
          off();
          resolve(v);
        }
      });
    });
  }

  private static fatalError(m: ErrorMessage): HecaError {
    return new HecaError('the guest workload stopped with an error', { why: m.msg, fix: 'check the heca.* parameters on the kernel command line (guestAppend)' });
  }

  private closedError(what: string): HecaError {
    return new HecaError(`the guest control channel ${this.path} closed while waiting for ${what}`, {
      why: this.closedWhy ?? 'closed',
      fix: 'QEMU probably exited: see its log and the guest console log',
      details: this.recentDetails(),
    });
  }

  private timeoutError(what: string, timeoutMs: number): HecaError {
    return new HecaError(`the guest did not send ${what} within ${(timeoutMs / 1000).toFixed(1)} s`, {
      why: this.messages.length ? `it sent ${this.messages.length} message(s); the last is shown below` : 'it sent nothing on the control channel (still booting, or the workload did not start)',
      fix: 'see the guest console log (console.log next to the socket) and the QEMU log',
      details: this.recentDetails(),
    });
  }

  private recentDetails(): string {
    const lines = this.messages.slice(-3).map((r) => JSON.stringify(r.msg));
    if (this.garbageLines) lines.push(`${this.garbageLines} garbage line(s), last: ${JSON.stringify(this.garbageSample.at(-1) ?? '')}`);
    return lines.join('\n');
  }

  /** Send one command line (`check`, `where 12`, `quit`). */
  send(cmd: string): void {
    if (/[\r\n]/.test(cmd)) throw new HecaError(`guest command ${JSON.stringify(cmd)} has a line break`, { why: 'the workload reads one command per line' });
    if (this.closedWhy !== undefined) throw this.closedError(`sending "${cmd}"`);
    this.sock.write(`${cmd}\n`);
  }

  /**
   * Send `cmd` and wait for its reply of type `t`; an `error` from the guest
   * after the command rejects with the guest's message.
   */
  private async request<T extends GuestMessageType>(cmd: string, t: T, timeoutMs: number, predicate?: (m: MessageOf<T>) => boolean): Promise<MessageOf<T>> {
    const p = this.waitNew(`the reply to "${cmd}"`, timeoutMs, (r) => {
      if (r.msg.t === 'error') {
        throw new HecaError(`the guest refused "${cmd}"`, { why: r.msg.msg });
      }
      if (r.msg.t === t && (!predicate || predicate(r.msg as MessageOf<T>))) return r.msg as MessageOf<T>;
      return undefined;
    });
    this.send(cmd);
    return p;
  }

  /**
   * Stop the writes and verify every page of the arena in the guest. The
   * guest resumes writing afterwards.
   */
  async check(opts: { timeoutMs: number }): Promise<CheckResult> {
    const m = await this.request('check', 'check', opts.timeoutMs);
    return { pages_checked: m.pages_checked, bad_pages: m.bad_pages, first_bad: m.first_bad, ...(m.ms === undefined ? {} : { ms: m.ms }) };
  }

  /** Guest-physical address of arena page `page`. */
  async where(page: number, opts: { timeoutMs?: number } = {}): Promise<number> {
    if (!Number.isInteger(page) || page < 0) throw new HecaError(`where ${page}: not a page index`, { why: 'it must be a whole number >= 0' });
    const m = await this.request(`where ${page}`, 'where', opts.timeoutMs ?? 10_000, (w) => w.page === page);
    return m.gpa;
  }

  /** The page writes that took 65.5 µs or more since the last call (or the workload's start); counting restarts. */
  async slowWrites(opts: { timeoutMs?: number } = {}): Promise<SlowWrites> {
    const m = await this.request('slow', 'slow', opts.timeoutMs ?? 10_000);
    return { span_ms: m.ms - m.since_ms, ops: m.ops, buckets: m.writes };
  }

  /** Ask the workload to exit (the guest then powers off); resolves on its `bye`. */
  async quit(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.request('quit', 'bye', opts.timeoutMs ?? 10_000);
  }

  close(): void {
    this.onClose('closed by the host');
    this.sock.destroy();
  }
}
