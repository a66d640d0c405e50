/**
 * A fake pair of QEMUs for unit tests of the engine's migration phases: two
 * QMP servers on unix sockets that speak the real protocol (greeting,
 * qmp_capabilities, commands answered by id, errors with a class and a
 * description, timestamped events), so the real QmpClient connects to them,
 * and a migration model behind them that behaves as QEMU does as far as the
 * engine can tell:
 *
 *   - `migrate` goes to active; RAM is sent at a fixed rate, and the guest
 *     dirties it faster than that unless `convergesAfterMs` is set;
 *   - migrate-start-postcopy needs the postcopy-ram capability (QEMU's own
 *     error otherwise), stops the source (STOP), goes postcopy-active
 *     (MIGRATION event), resumes the destination (RESUME) and completes
 *     `postcopyMs` later;
 *   - heca's parameters (postcopy-switchover immediate|deadline with
 *     postcopy-deadline, postcopy-on-convergence) make it switch by itself;
 *     with `upstream: true` they are refused as upstream QEMU refuses them;
 *   - migrate_cancel goes through cancelling to cancelled, whose
 *     query-migrate has no RAM figures;
 *   - a converged pre-copy without on-convergence ends in stop-and-copy;
 *   - the QMP monitors negotiate out-of-band execution (`exec-oob`);
 *   - `cut()` (a cut link) pauses post-copy on both sides (postcopy-paused,
 *     MIGRATION events); the paused destination answers no ordinary command
 *     until it has recovered, as a QEMU whose vCPU holds the big lock waiting
 *     for a page (only exec-oob gets through); migrate-recover (out of band)
 *     then `migrate` with resume: true bring post-copy back, unless
 *     `recoverFails` says why the destination refuses;
 *   - series 2's postcopy-rdma-pull capability and its parameters, refused
 *     with `upstream: true`, and a `postcopy-rdma` member in query-migrate.
 *
 * Every command is logged with the time since `migrate`, for the tests to check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeOptions {
  /** A pre-copy pass that converges this many ms after migrate (default: never). */
  convergesAfterMs?: number;
  /** From the switch to post-copy to completed (default 300). */
  postcopyMs?: number;
  /** Refuse heca's parameters, as upstream QEMU does. */
  upstream?: boolean;
  /** Refuse these parameters as unknown (a QEMU of an earlier heca series). */
  refuse?: string[];
  /** RAM bytes sent per second (default 100 MiB). */
  bytesPerS?: number;
  /** After a cut: the destination refuses migrate-recover with this error (rdma pull has no recovery yet). */
  recoverFails?: string;
  /** After a cut: ms until each side reports postcopy-paused (default 30). */
  pauseAfterMs?: number;
  /** After a cut only this side pauses (rdma pull's idle main channel: the source never learns). */
  pauseOnly?: 'src' | 'dst';
}

export interface LoggedCommand {
  side: 'src' | 'dst';
  command: string;
  args: Record<string, unknown> | undefined;
  /** ms since the fake received `migrate` (-1 before it). */
  atMs: number;
  /** When, Date.now(): to compare with times the engine took on its own clock. */
  at: number;
  /** Sent with exec-oob. */
  oob?: boolean;
}

type Status = 'none' | 'setup' | 'active' | 'postcopy-active' | 'postcopy-paused' | 'postcopy-recover-setup' | 'postcopy-recover' | 'completed' | 'cancelling' | 'cancelled' | 'failed';

type Request = { execute?: string; 'exec-oob'?: string; arguments?: Record<string, unknown>; id?: unknown };

class QmpError extends Error {
  constructor(readonly cls: string, desc: string) {
    super(desc);
  }
}

const RAM_TOTAL = 256 * 1048576;

/** One QMP server: the protocol; the commands go to `handle`. */
class FakeQmpServer {
  readonly server: Server;
  private readonly conns = new Set<Socket>();

  /** Ordinary commands wait here while set (a vCPU holds the big lock); exec-oob does not. */
  private held: (() => void)[] | undefined;
  /** Connections that negotiated out-of-band execution. */
  private readonly oob = new Set<Socket>();

  constructor(readonly path: string, private readonly handle: (cmd: string, args: Record<string, unknown> | undefined, oob: boolean) => unknown) {
    this.server = createServer((s) => this.accept(s));
  }

  /** Hold every ordinary command from now on, until release(). */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const h = this.held ?? [];
    this.held = undefined;
    for (const f of h) f();
  }

  listen(): Promise<void> {
    return new Promise((res) => this.server.listen(this.path, res));
  }

  private accept(s: Socket): void {
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => undefined);
    s.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 10, minor: 0, micro: 13 }, package: 'fake' }, capabilities: ['oob'] } })}\n`);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) this.request(s, JSON.parse(line) as Request);
      }
    });
  }

  private request(s: Socket, req: Request): void {
    const oob = req['exec-oob'] !== undefined;
    const cmd = req['exec-oob'] ?? req.execute ?? '';
    if (!oob && this.held && cmd !== 'qmp_capabilities') {
      this.held.push(() => this.request(s, req));
      return;
    }
    let reply: Record<string, unknown>;
    try {
      if (oob && !this.oob.has(s)) throw new QmpError('GenericError', 'QMP input member \'exec-oob\' is unexpected');
      if (cmd === 'qmp_capabilities') {
        if ((req.arguments?.enable as string[] | undefined)?.includes('oob')) this.oob.add(s);
        reply = { return: {} };
      } else {
        reply = { return: this.handle(cmd, req.arguments, oob) ?? {} };
      }
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
      reply = { error: { class: e.cls, desc: e.message } };
    }
    s.write(`${JSON.stringify({ ...reply, id: req.id })}\n`);
  }

  emit(event: string, data?: Record<string, unknown>): void {
    const now = Date.now();
    const msg = { event, ...(data ? { data } : {}), timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 } };
    for (const c of this.conns) c.write(`${JSON.stringify(msg)}\n`);
  }

  async close(): Promise<void> {
    this.held = undefined;
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export class FakeMigration {
  readonly dir = mkdtempSync(join(tmpdir(), 'heca-fakeqmp-'));
  readonly log: LoggedCommand[] = [];
  readonly src: FakeQmpServer;
  readonly dst: FakeQmpServer;
  status: Status = 'none';
  private dstStatus: Status = 'none';
  private t0 = 0;
  private switchedAt: number | undefined;
  private readonly caps = { src: new Map<string, boolean>(), dst: new Map<string, boolean>() };
  private params: Record<string, unknown> = {};
  /** The destination's parameters (the rdma address must be there before migrate-incoming). */
  readonly dstParams: Record<string, unknown> = {};
  private recoverUri: string | undefined;
  /** ms paused so far: post-copy ends that much later. */
  private pausedMs = 0;
  private pausedAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** RAM figures at the last moment they were reported (a cancelled migration keeps none). */
  private sent = 0;

  constructor(private readonly o: FakeOptions = {}) {
    this.src = new FakeQmpServer(join(this.dir, 'src.sock'), (c, a, oob) => this.command('src', c, a, oob));
    this.dst = new FakeQmpServer(join(this.dir, 'dst.sock'), (c, a, oob) => this.command('dst', c, a, oob));
  }

  async start(): Promise<this> {
    await Promise.all([this.src.listen(), this.dst.listen()]);
    return this;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([this.src.close(), this.dst.close()]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Commands received, as "src migrate" lines, in order. */
  commands(): string[] {
    return this.log.map((c) => `${c.side} ${c.command}`);
  }

  at(side: 'src' | 'dst', command: string): LoggedCommand | undefined {
    return this.log.find((c) => c.side === side && c.command === command);
  }

  private now(): number {
    return this.t0 ? Date.now() - this.t0 : 0;
  }

  private command(side: 'src' | 'dst', cmd: string, args: Record<string, unknown> | undefined, oob = false): unknown {
    const at = Date.now();
    this.log.push({ side, command: cmd, args, atMs: this.t0 ? at - this.t0 : -1, at, ...(oob ? { oob } : {}) });
    switch (cmd) {
      case 'migrate-set-capabilities': {
        const caps = (args?.capabilities ?? []) as { capability: string; state: boolean }[];
        const rdma = caps.find((c) => c.capability === 'postcopy-rdma-pull' && c.state);
        if (rdma && this.o.upstream) throw new QmpError('GenericError', "Invalid parameter 'postcopy-rdma-pull'");
        if (rdma && !caps.find((c) => c.capability === 'postcopy-ram' && c.state)) throw new QmpError('GenericError', "Capability 'postcopy-rdma-pull' requires capability 'postcopy-ram'");
        if (rdma && caps.find((c) => c.capability === 'postcopy-preempt' && c.state)) throw new QmpError('GenericError', "Capability 'postcopy-rdma-pull' is not compatible with capability 'postcopy-preempt'");
        for (const c of caps) this.caps[side].set(c.capability, c.state);
        return {};
      }
      case 'migrate-set-parameters': {
        const heca = Object.keys(args ?? {}).find((k) => k.startsWith('postcopy-'));
        if (heca && this.o.upstream) throw new QmpError('GenericError', `Parameter '${heca}' is unexpected`);
        const unknown = Object.keys(args ?? {}).find((k) => this.o.refuse?.includes(k));
        if (unknown) throw new QmpError('GenericError', `Parameter '${unknown}' is unexpected`);
        if (side === 'src') Object.assign(this.params, args);
        else Object.assign(this.dstParams, args);
        return {};
      }
      case 'migrate-incoming':
        this.dstStatus = 'setup';
        return {};
      case 'migrate':
        if (args?.resume === true) return this.resume(String(args.uri));
        return this.migrate();
      case 'migrate-recover':
        if (this.dstStatus !== 'postcopy-paused') throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
        if (this.o.recoverFails) throw new QmpError('GenericError', this.o.recoverFails);
        this.recoverUri = String(args?.uri);
        this.dstStatus = 'postcopy-recover-setup';
        this.dst.emit('MIGRATION', { status: 'postcopy-recover-setup' });
        return {};
      case 'migrate-start-postcopy':
        if (!this.caps.src.get('postcopy-ram')) throw new QmpError('GenericError', 'Enable postcopy with migrate-set-capabilities before the start of migration');
        if (this.status !== 'active') throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
        this.switchToPostcopy();
        return {};
      case 'migrate_cancel':
        if (this.status === 'active') {
          this.status = 'cancelling';
          this.src.emit('MIGRATION', { status: 'cancelling' });
          setTimeout(() => {
            this.status = 'cancelled';
            this.src.emit('MIGRATION', { status: 'cancelled' });
          }, 50);
        }
        return {};
      case 'query-migrate':
        this.advance();
        return side === 'src' ? this.srcInfo() : this.dstInfo();
      case 'human-monitor-command':
        return 'RIP=ffffffff81000000 CR0=80050033 CR2=0 CR3=1000 CR4=370ef0 EFER=d01\n';
      default:
        throw new QmpError('CommandNotFound', `The command ${cmd} has not been found`);
    }
  }

  private migrate(): unknown {
    this.t0 = Date.now();
    this.log.at(-1)!.atMs = 0;
    this.status = 'active';
    this.dstStatus = 'active';
    this.src.emit('MIGRATION', { status: 'setup' });
    this.src.emit('MIGRATION', { status: 'active' });
    this.timer = setInterval(() => this.advance(), 20);
    if (this.params['postcopy-switchover'] === 'immediate') setTimeout(() => this.switchToPostcopy(), 10);
    return {};
  }

  /** Time-driven transitions: the deadline, convergence, the end of post-copy. */
  private advance(): void {
    const t = this.now();
    if (this.status === 'active' || this.status === 'postcopy-active') this.sent = Math.round((t / 1000) * (this.o.bytesPerS ?? 100 * 1048576));
    if (this.status === 'active') {
      if (this.params['postcopy-switchover'] === 'deadline' && t >= Number(this.params['postcopy-deadline'])) return this.switchToPostcopy();
      if (this.o.convergesAfterMs !== undefined && t >= this.o.convergesAfterMs) {
        if (this.params['postcopy-on-convergence'] === true) return this.switchToPostcopy();
        // Stop-and-copy.
        this.src.emit('STOP');
        this.complete();
      }
    } else if (this.status === 'postcopy-active' && this.switchedAt !== undefined && t - this.switchedAt - this.pausedMs >= (this.o.postcopyMs ?? 300)) {
      this.complete();
    }
  }

  /**
   * The link is cut: post-copy pauses on both sides (ms later); the
   * destination then holds every ordinary command until it has recovered.
   * Before post-copy a cut changes nothing the engine can see here.
   */
  cut(): void {
    if (this.status !== 'postcopy-active') return;
    const after = this.o.pauseAfterMs ?? 30;
    this.dst.hold();
    if (this.o.pauseOnly !== 'dst') {
      setTimeout(() => {
        this.status = 'postcopy-paused';
        this.pausedAt = this.now();
        this.src.emit('MIGRATION', { status: 'postcopy-paused' });
      }, after);
    }
    if (this.o.pauseOnly !== 'src') {
      setTimeout(() => {
        this.dstStatus = 'postcopy-paused';
        this.dst.emit('MIGRATION', { status: 'postcopy-paused' });
      }, after + 5);
    }
  }

  private resume(uri: string): unknown {
    if (this.status !== 'postcopy-paused') throw new QmpError('GenericError', "Cannot resume if there is no paused migration");
    if (this.dstStatus !== 'postcopy-recover-setup' || uri !== this.recoverUri) throw new QmpError('GenericError', `Failed to connect to '${uri}': Connection refused`);
    this.status = 'postcopy-recover';
    this.src.emit('MIGRATION', { status: 'postcopy-recover-setup' });
    this.src.emit('MIGRATION', { status: 'postcopy-recover' });
    setTimeout(() => {
      this.pausedMs += this.now() - (this.pausedAt ?? this.now());
      this.status = 'postcopy-active';
      this.dstStatus = 'postcopy-active';
      this.src.emit('MIGRATION', { status: 'postcopy-active' });
      this.dst.emit('MIGRATION', { status: 'postcopy-active' });
      this.dst.release();
    }, 20);
    return {};
  }

  private switchToPostcopy(): void {
    if (this.status !== 'active') return;
    this.switchedAt = this.now();
    this.src.emit('STOP');
    this.status = 'postcopy-active';
    this.src.emit('MIGRATION', { status: 'postcopy-active' });
    setTimeout(() => this.dst.emit('RESUME'), 3);
  }

  private complete(): void {
    const postcopy = this.switchedAt !== undefined;
    this.status = 'completed';
    this.dstStatus = 'completed';
    clearInterval(this.timer);
    this.src.emit('MIGRATION', { status: 'completed' });
    if (!postcopy) setTimeout(() => this.dst.emit('RESUME'), 3);
  }

  /** What series 2 may report with postcopy-rdma-pull (made up: the engine records it verbatim). */
  private rdmaInfo(side: 'src' | 'dst'): Record<string, unknown> {
    if (!this.caps[side].get('postcopy-rdma-pull') || this.switchedAt === undefined) return {};
    // With postcopy-rdma-engine=kernel the destination reports its kernel's resolver too.
    const kernel = this.dstParams['postcopy-rdma-engine'] === 'kernel' ? { kernel: { attached: false, 'attach-time': 21, faults: 40, declined: 0, pages: 52, failed: 0, found: 30, unread: 12, 'read-latency': 290000 } } : {};
    return { 'postcopy-rdma': side === 'src' ? { source: { 'registration-time': 12, pulled: true } } : { destination: { 'demand-pages': 7, 'read-latency-dist': [0, 0, 0, 0, 0, 0, 0, 0, 0, 7], ...kernel } } };
  }

  private srcInfo(): Record<string, unknown> {
    if (this.status === 'none') return {};
    if (this.status === 'cancelled' || this.status === 'cancelling') return { status: this.status };
    const postcopyBytes = this.switchedAt === undefined ? 0 : RAM_TOTAL / 2;
    const done = this.status === 'completed';
    return {
      status: this.status,
      ...this.rdmaInfo('src'),
      'setup-time': 1,
      ...(done ? { 'total-time': this.now(), downtime: this.switchedAt === undefined ? 20 : 2 } : {}),
      ram: {
        transferred: this.sent + postcopyBytes,
        remaining: done ? 0 : RAM_TOTAL / 3,
        total: RAM_TOTAL,
        duplicate: 100,
        normal: Math.round(this.sent / 4096),
        'normal-bytes': this.sent,
        'dirty-pages-rate': this.o.convergesAfterMs === undefined ? 30_000 : 100,
        mbps: 800,
        'dirty-sync-count': 3,
        'postcopy-requests': this.switchedAt === undefined ? 0 : 7,
        'page-size': 4096,
        'multifd-bytes': 0,
        'pages-per-second': 25_000,
        'precopy-bytes': this.sent,
        'downtime-bytes': 0,
        'postcopy-bytes': postcopyBytes,
        'dirty-sync-missed-zero-copy': 0,
      },
    };
  }

  private dstInfo(): Record<string, unknown> {
    const stats = this.caps.dst.get('postcopy-blocktime') && this.switchedAt !== undefined
      ? { 'postcopy-latency': 900_000, 'postcopy-latency-dist': [0, 0, 0, 0, 0, 0, 0, 0, 0, 7, ...Array<number>(14).fill(0)], 'postcopy-vcpu-latency': [900_000], 'postcopy-blocktime': 4, 'postcopy-vcpu-blocktime': [4] }
      : {};
    return { status: this.dstStatus, ...stats, ...this.rdmaInfo('dst') };
  }
}
