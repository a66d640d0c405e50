/**
 * One QEMU running the heca guest: its command line, its process, its QMP
 * connection and its guest control channel. Files live in `dir`:
 * qemu.log, console.log, qmp.sock, ctl.sock. QemuProcess, what it shares
 * with the nested testbed's L1 hosts (also QEMUs heca starts), and the
 * helpers for a QEMU's exit are here too.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HecaError, tail } from '../../tools/core/errors.ts';
import type { Spawned } from '../../tools/core/exec.ts';
import { firmwareDirs } from '../../tools/core/paths.ts';
import { QmpClient } from '../../tools/qmp/client.ts';
import { UsageError } from '../../tools/core/cli.ts';
import { GuestChannel } from './channel.ts';

export interface VmConfig {
  name: string;
  dir: string;
  accel: 'tcg' | 'kvm';
  memMib: number;
  /** vCPUs (-smp; default 1). */
  vcpus?: number;
  kernel: string;
  initrd: string;
  append: string;
  /** Wait for an incoming migration (`-incoming defer`). */
  incoming?: boolean;
  /** Back guest RAM by this shared file (e.g. in /dev/shm) so the host can read and write it. */
  memFile?: string;
  /**
   * QMP and the control channel on TCP ports instead of unix sockets in `dir`
   * (a QEMU inside an L1 test host): QEMU listens on `listen`, heca connects
   * to `qmp` / `ctl` ("tcp:HOST:PORT", a port forward to them).
   */
  tcp?: { listen: { host: string; qmpPort: number; ctlPort: number }; qmp: string; ctl: string };
  /** QEMU trace events to enable (-trace PATTERN each); their output goes to QEMU's log. */
  trace?: readonly string[];
  /** DRIVER.PROPERTY=VALUE, each as -global (a scenario's variant). */
  globals?: readonly string[];
}

/** Where heca connects to the QMP monitor and the control channel of this VM. */
export function vmSockets(c: VmConfig): { qmp: string; ctl: string } {
  return c.tcp ? { qmp: c.tcp.qmp, ctl: c.tcp.ctl } : { qmp: join(c.dir, 'qmp.sock'), ctl: join(c.dir, 'ctl.sock') };
}

export function vmArgs(c: VmConfig): string[] {
  const backend = c.memFile
    ? `memory-backend-file,id=mem0,size=${c.memMib}M,mem-path=${c.memFile},share=on`
    : `memory-backend-ram,id=mem0,size=${c.memMib}M`;
  return [
    // Named threads (CPU 0/KVM, live_migration, postcopy/fault...) in ps and in a failed run's thread report.
    '-name', `${c.name},debug-threads=on`,
    // A QEMU that crashes dumps its own memory, not the guest's (the nested testbed keeps cores).
    '-machine', 'pc,memory-backend=mem0,dump-guest-core=off',
    '-object', backend,
    '-accel', c.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu', c.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(c.vcpus ?? 1),
    '-m', `${c.memMib}M`,
    '-nodefaults', '-no-user-config', '-display', 'none',
    // A guest reset (a triple fault, a reboot) or power-off freezes the VM as
    // it is instead of booting it again: the run fails with its registers.
    '-action', 'reboot=shutdown,shutdown=pause',
    '-kernel', c.kernel,
    '-initrd', c.initrd,
    '-append', c.append,
    '-chardev', `file,id=con,path=${join(c.dir, 'console.log')}`,
    '-serial', 'chardev:con',
    '-chardev', c.tcp
      ? `socket,id=ctl,host=${c.tcp.listen.host},port=${c.tcp.listen.ctlPort},server=on,wait=off,nodelay=on`
      : `socket,id=ctl,path=${join(c.dir, 'ctl.sock')},server=on,wait=off`,
    '-serial', 'chardev:ctl',
    '-qmp', c.tcp ? `tcp:${c.tcp.listen.host}:${c.tcp.listen.qmpPort},server=on,wait=off,nodelay=on` : `unix:${join(c.dir, 'qmp.sock')},server=on,wait=off`,
    ...firmwareDirs.filter((d) => existsSync(d)).flatMap((d) => ['-L', d]),
    ...(c.incoming ? ['-incoming', 'defer'] : []),
    ...(c.trace ?? []).flatMap((t) => ['-trace', t]),
    ...(c.globals ?? []).flatMap((g) => ['-global', g]),
  ];
}

/** Starts QEMU; may be async (in an L1 host it resolves once QEMU listens on its ports). */
export type Spawner = (cmd: string, args: string[], logFile: string) => Spawned | Promise<Spawned>;

export type ExitInfo = { exitCode: number; signal: string | undefined };

/**
 * A QEMU heca started and its QMP connection: whether it has exited, known
 * without waiting, and how to quit it. The guest's Vm and the nested
 * testbed's L1 hosts are both one.
 */
export class QemuProcess {
  private exitInfo: ExitInfo | undefined;

  protected constructor(
    readonly proc: Spawned,
    readonly qmp: QmpClient,
  ) {
    void proc.exited.then((e) => {
      this.exitInfo = e;
    });
  }

  /** Set when QEMU has exited. */
  get exited(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /** Ask QEMU to quit over QMP (3 s at most) unless it has exited, close QMP, then stop the process (SIGTERM, SIGKILL). */
  protected async quit(): Promise<void> {
    if (!this.exitInfo) await Promise.race([this.qmp.execute('quit').catch(() => undefined), sleep(3000)]);
    await this.qmp.close().catch(() => undefined);
    await this.proc.stop(3000);
  }
}

export class Vm extends QemuProcess {
  private constructor(
    readonly config: VmConfig,
    proc: Spawned,
    qmp: QmpClient,
    readonly channel: GuestChannel,
  ) {
    super(proc, qmp);
  }

  get logFile(): string {
    return join(this.config.dir, 'qemu.log');
  }

  /**
   * Start QEMU through `spawn` (e.g. inside a network namespace) and connect
   * QMP, out-of-band capable (migrate-recover on a paused destination), and
   * the channel.
   */
  static async start(qemu: string, c: VmConfig, spawn: Spawner): Promise<Vm> {
    const proc = await spawn(qemu, vmArgs(c), join(c.dir, 'qemu.log'));
    const died = rejectOnExit(proc, (e) => new HecaError(`QEMU ${c.name} exited while starting (${exitText(e)})`, {
      why: 'see its log below',
      details: logTail(join(c.dir, 'qemu.log')),
      fix: `full log: ${join(c.dir, 'qemu.log')}`,
    }));
    try {
      const socks = vmSockets(c);
      const qmp = await Promise.race([QmpClient.connect(socks.qmp, { timeoutMs: 10_000, retryUntilMs: 30_000, oob: true }), died]);
      const channel = await Promise.race([GuestChannel.connect(socks.ctl, { timeoutMs: 30_000 }), died]);
      return new Vm(c, proc, qmp, channel);
    } catch (e) {
      await proc.stop(2000);
      throw e;
    }
  }

  /** Rejects with the log tail if QEMU exits before `p` settles. */
  async guard<T>(p: Promise<T>, what: string): Promise<T> {
    return Promise.race([p, rejectOnExit(this.proc, (e) => new HecaError(`QEMU ${this.config.name} exited during ${what} (${exitText(e)})`, {
      why: 'see its log below',
      details: logTail(this.logFile),
      fix: `full logs in ${this.config.dir}`,
    }))]);
  }

  async stop(): Promise<void> {
    this.channel.close();
    await this.quit();
  }
}

export function exitText(e: ExitInfo): string {
  return `status ${e.exitCode}${e.signal ? `, ${e.signal}` : ''}`;
}

/**
 * A promise that rejects with `error(exit)` once `proc` exits, to race
 * against what must happen while it runs. Never an unhandled rejection:
 * it only matters to the races it is in.
 */
export function rejectOnExit(proc: Spawned, error: (e: ExitInfo) => Error): Promise<never> {
  const died = proc.exited.then((e) => {
    throw error(e);
  });
  died.catch(() => undefined);
  return died;
}

export function logTail(path: string, n = 20): string {
  try {
    return tail(readFileSync(path, 'utf8'), n) || '(empty log)';
  } catch {
    return `(no log at ${path})`;
  }
}

/**
 * --qemu-trace: comma-separated QEMU trace event names or patterns
 * (`postcopy_rdma_*`); nothing else, so that no other -trace option (a file,
 * an events list) can ride along.
 */
export function parseTracePatterns(text: string | undefined): string[] {
  if (text === undefined) return [];
  const patterns = text.split(',').map((p) => p.trim());
  const bad = patterns.filter((p) => !/^[A-Za-z0-9_*?]+$/.test(p));
  if (bad.length) {
    throw new UsageError(`--qemu-trace ${JSON.stringify(text)} is not a list of trace events`, {
      why: `${bad.map((b) => JSON.stringify(b)).join(', ')}: a trace event name or pattern has letters, digits, _ and * or ? only`,
      fix: 'name the events, e.g. --qemu-trace postcopy_rdma_dst_verified,postcopy_rdma_dst_backoff (qemu-system-x86_64 -trace help lists them)',
    });
  }
  return patterns;
}
