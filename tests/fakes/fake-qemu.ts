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
 *   - a converged pre-copy without on-convergence ends in stop-and-copy.
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
  /** RAM bytes sent per second (default 100 MiB). */
  bytesPerS?: number;
}

export interface LoggedCommand {
  side: 'src' | 'dst';
  command: string;
  args: Record<string, unknown> | undefined;
  /** ms since `migrate` (negative before it). */
  atMs: number;
}

type Status = 'none' | 'setup' | 'active' | 'postcopy-active' | 'completed' | 'cancelling' | 'cancelled';

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

  constructor(readonly path: string, private readonly handle: (cmd: string, args: Record<string, unknown> | undefined) => unknown) {
    this.server = createServer((s) => this.accept(s));
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
        if (line.trim()) this.request(s, JSON.parse(line) as { execute: string; arguments?: Record<string, unknown>; id?: unknown });
      }
    });
  }

  private request(s: Socket, req: { execute: string; arguments?: Record<string, unknown>; id?: unknown }): void {
    let reply: Record<string, unknown>;
    try {
      reply = { return: req.execute === 'qmp_capabilities' ? {} : this.handle(req.execute, req.arguments) ?? {} };
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
  private timer: NodeJS.Timeout | undefined;
  /** RAM figures at the last moment they were reported (a cancelled migration keeps none). */
  private sent = 0;

  constructor(private readonly o: FakeOptions = {}) {
    this.src = new FakeQmpServer(join(this.dir, 'src.sock'), (c, a) => this.command('src', c, a));
    this.dst = new FakeQmpServer(join(this.dir, 'dst.sock'), (c, a) => this.command('dst', c, a));
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

  private command(side: 'src' | 'dst', cmd: string, args: Record<string, unknown> | undefined): unknown {
    this.log.push({ side, command: cmd, args, atMs: this.t0 ? Date.now() - this.t0 : -1 });
    switch (cmd) {
      case 'migrate-set-capabilities':
        for (const c of (args?.capabilities ?? []) as { capability: string; state: boolean }[]) this.caps[side].set(c.capability, c.state);
        return {};
      case 'migrate-set-parameters': {
        const heca = Object.keys(args ?? {}).find((k) => k.startsWith('postcopy-'));
        if (heca && this.o.upstream) throw new QmpError('GenericError', `Parameter '${heca}' is unexpected`);
        if (side === 'src') Object.assign(this.params, args);
        return {};
      }
      case 'migrate-incoming':
        this.dstStatus = 'setup';
        return {};
      case 'migrate':
        return this.migrate();
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
    } else if (this.status === 'postcopy-active' && this.switchedAt !== undefined && t - this.switchedAt >= (this.o.postcopyMs ?? 300)) {
      this.complete();
    }
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

  private srcInfo(): Record<string, unknown> {
    if (this.status === 'none') return {};
    if (this.status === 'cancelled' || this.status === 'cancelling') return { status: this.status };
    const postcopyBytes = this.switchedAt === undefined ? 0 : RAM_TOTAL / 2;
    const done = this.status === 'completed';
    return {
      status: this.status,
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
    return { status: this.dstStatus, ...stats };
  }
}
