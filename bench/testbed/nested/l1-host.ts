/**
 * One L1 test host: a QEMU at L0 booting the heca-built kernel with the
 * machine's own root read-only over 9p (virtme-style), a shared directory,
 * one NIC on the link to the other host (-netdev dgram), and the command
 * agent on a virtio-serial port. bench/testbed/nested/l1-init is its PID 1.
 *
 * Files at L0, in `dir`: qemu.log, console.log, qmp.sock, agent.sock.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HecaError } from '../../../tools/core/errors.ts';
import { spawnLogged, type Spawned } from '../../../tools/core/exec.ts';
import { debug, warn } from '../../../tools/core/log.ts';
import { firmwareDirs, repoRoot } from '../../../tools/core/paths.ts';
import { pollUntil } from '../../../tools/core/poll.ts';
import { QmpClient } from '../../../tools/qmp/client.ts';
import { AgentClient, type AgentHello } from './l1-agent.ts';
import { exitText, logTail, QemuProcess, rejectOnExit } from '../../guest/vm.ts';

export interface L1LinkEnd {
  mac: string;
  /** Address with prefix, e.g. 10.214.0.1/24. */
  addr: string;
  /** UDP ports on 127.0.0.1: this host sends from `localPort` to `remotePort`. */
  localPort: number;
  remotePort: number;
}

export interface L1Config {
  /** Host name, also QEMU's -name (heca-a, heca-b). */
  name: string;
  /** L0 directory for its logs and sockets. */
  dir: string;
  kernel: string;
  accel: 'tcg' | 'kvm';
  memMib: number;
  cpus: number;
  link: L1LinkEnd;
  /** L0 directory mounted at the same path in L1, writable (results, logs of L2 QEMUs). */
  sharedDir: string;
  /** The heca checkout (its node_modules and the agent). Default: this one. */
  repo?: string;
  /** More kernel command-line arguments (e.g. initcall_blacklist=rxe_module_init: a host without Soft-RoCE). */
  kernelArgs?: string[];
  /** A management NIC (user networking, isolated) forwarding 127.0.0.1:hostPort at L0 to guestPort in L1. */
  mgmt?: { mac: string; forwards: { hostPort: number; guestPort: number }[] };
}

export const L1_INIT = 'bench/testbed/nested/l1-init';

/**
 * Where l1-init mounts a tmpfs: what L0 has under these is not seen in L1 (the
 * heca checkout and the shared directory excepted, which it mounts again).
 */
export const L1_TMPFS_DIRS = ['/run', '/tmp', '/var/tmp', '/var/log', '/var/lib', '/var/cache', '/root', '/mnt'];

/**
 * The TSC frequency in kHz that every L1 host is told (tsc_early_khz=), from
 * this machine's /proc/cpuinfo, or undefined. Under TCG an L1's TSC counts at
 * this machine's rate, but each L1 calibrates it early against its emulated
 * PIT and gets a slightly different figure (2596.134 and 2596.152 MHz for
 * 2596.140), which KVM in L1 keeps as the L2 guests' TSC rate; a guest
 * migrated from A to B then runs on a TSC of another rate ("TSC frequency
 * mismatch ... TSC scaling unavailable" in the destination's log). The same
 * figure on both hosts removes that difference from the testbed.
 */
export function l0TscKhz(cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')): number | undefined {
  const mhz = /^cpu MHz\s*:\s*([0-9]+(?:\.[0-9]+)?)$/m.exec(cpuinfo)?.[1];
  const khz = mhz ? Math.round(Number(mhz) * 1000) : 0;
  return khz > 100_000 ? khz : undefined;
}

/** `tscKhz`: the rate to pass (null: none; default: l0TscKhz()). */
export function l1KernelArgs(c: L1Config, opts: { tscKhz?: number | null } = {}): string {
  const repo = c.repo ?? repoRoot;
  const tscKhz = opts.tscKhz === undefined ? l0TscKhz() : opts.tscKhz;
  return [
    'console=ttyS0', 'panic=-1', 'mitigations=off', 'tsc=reliable',
    // Under TCG only: with KVM at L0 the L1 kernel takes the rate from the hypervisor.
    ...(tscKhz && c.accel !== 'kvm' ? [`tsc_early_khz=${tscKhz}`] : []),
    'root=/dev/root', 'rootfstype=9p', 'rootflags=version=9p2000.L,trans=virtio,access=any,msize=512000,cache=loose', 'ro',
    `init=${join(repo, L1_INIT)}`,
    `heca_name=${c.name}`, `heca_mac=${c.link.mac}`, `heca_addr=${c.link.addr}`, `heca_repo=${repo}`, `heca_shared=${c.sharedDir}`,
    ...(c.mgmt ? [`heca_mgmt_mac=${c.mgmt.mac}`] : []),
    ...(c.kernelArgs ?? []),
  ].join(' ');
}

export function l1Args(c: L1Config): string[] {
  const l = c.link;
  return [
    '-name', `${c.name},debug-threads=on`,
    '-machine', 'q35',
    '-accel', c.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    // TCG's "max" CPU has SVM: the L1 kernel's kvm_amd runs L2 guests (nested KVM).
    '-cpu', c.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(c.cpus),
    '-m', `${c.memMib}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', c.kernel,
    '-append', l1KernelArgs(c),
    '-fsdev', 'local,id=root,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=root,mount_tag=/dev/root',
    '-fsdev', `local,id=shared,path=${c.sharedDir},security_model=none,multidevs=remap`,
    '-device', 'virtio-9p-pci,fsdev=shared,mount_tag=heca.shared',
    '-netdev', `dgram,id=link,local.type=inet,local.host=127.0.0.1,local.port=${l.localPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${l.remotePort}`,
    '-device', `virtio-net-pci,netdev=link,mac=${l.mac}`,
    ...(c.mgmt
      ? [
          '-netdev', ['user,id=mgmt,restrict=on', ...c.mgmt.forwards.map((f) => `hostfwd=tcp:127.0.0.1:${f.hostPort}-10.0.2.15:${f.guestPort}`)].join(','),
          '-device', `virtio-net-pci,netdev=mgmt,mac=${c.mgmt.mac}`,
        ]
      : []),
    '-device', 'virtio-serial-pci',
    '-chardev', `socket,id=agent,path=${join(c.dir, 'agent.sock')},server=on,wait=off`,
    '-device', 'virtserialport,chardev=agent,name=heca.agent',
    '-chardev', `file,id=con,path=${join(c.dir, 'console.log')}`,
    '-serial', 'chardev:con',
    '-qmp', `unix:${join(c.dir, 'qmp.sock')},server=on,wait=off`,
    ...firmwareDirs.filter((d) => existsSync(d)).flatMap((d) => ['-L', d]),
  ];
}

/** Console lines of a kernel that is stuck: an RCU stall, a lockup, a hung task. */
const STALL_RE = [/timer wakeup didn't happen/, /rcu_\w+ detected stalls/, /soft lockup/, /blocked for more than \d+ seconds/];

/** The console line that best says why a boot hung (a panic, an RCU stall, a lockup), if any. */
export function hangSign(consoleText: string): string | undefined {
  return signIn(consoleText, [/Kernel panic/, ...STALL_RE]);
}

/** The console line of a stall (not a panic: QEMU exits on its own then), if any. */
export function stallSign(consoleText: string): string | undefined {
  return signIn(consoleText, STALL_RE);
}

/**
 * A kernel's own report of its death, from its console: the first Oops, BUG,
 * general protection fault or panic line and the 11 lines after it (the
 * faulting function, registers, the start of the call trace), timestamps kept.
 */
export function deathReport(consoleText: string): string | undefined {
  const lines = consoleText.split('\n');
  const i = lines.findIndex((l) => /\]\s*(Oops|BUG|Kernel panic|general protection fault)\b/.test(l));
  return i < 0 ? undefined : lines.slice(i, i + 12).join('\n');
}

function signIn(consoleText: string, re: RegExp[]): string | undefined {
  const lines = consoleText.split('\n');
  for (const r of re) {
    const l = lines.find((x) => r.test(x));
    if (l) return l.replace(/^\[\s*[\d.]+\]\s*/, '').trim();
  }
  return undefined;
}

/**
 * An L1 host that did not come up. `hung`: QEMU runs but the kernel stalled or
 * the agent did not answer in time (a lost timer interrupt under TCG has done
 * this); `crashed`: QEMU itself died by a signal (a TCG assertion has done
 * this); booting again helps both. `exited`: QEMU ended by itself (a panic
 * with -no-reboot, a bad command line): it would again.
 */
export class L1BootError extends HecaError {
  constructor(
    readonly host: string,
    readonly kind: BootFailure,
    readonly afterMs: number,
    /** The line that says why: hangSign() of its console, or QEMU's last words when it crashed. */
    readonly sign: string | undefined,
    what: string,
    opts: { why: string; fix?: string; details?: string },
  ) {
    super(what, opts);
    this.name = 'L1BootError';
  }
}

export type BootFailure = 'hung' | 'crashed' | 'exited';

/** A boot attempt that hung or crashed and was given up, before the one that came up. */
export interface BootHang {
  kind: 'hung' | 'crashed';
  after_ms: number;
  /** The line that says why (see L1BootError.sign), or null. */
  sign: string | null;
  /** Its console log and QEMU log, kept beside the host's. */
  console: string;
  qemu_log: string;
}

export class L1Host extends QemuProcess {
  /** Attempts that hung or crashed before this boot (bootRetrying). */
  hangs: BootHang[] = [];

  private constructor(
    readonly config: L1Config,
    proc: Spawned,
    qmp: QmpClient,
    readonly agent: AgentClient,
    /** What the agent said when the host came up. */
    readonly hello: AgentHello,
    /** From QEMU's start to the agent's first answer. */
    readonly bootMs: number,
  ) {
    super(proc, qmp);
  }

  get name(): string {
    return this.config.name;
  }

  get consoleLog(): string {
    return join(this.config.dir, 'console.log');
  }

  /** Start the QEMU and wait until the agent in L1 answers (boot done), within `bootTimeoutMs`. */
  static async boot(qemu: string, c: L1Config, opts: { bootTimeoutMs: number }): Promise<L1Host> {
    const started = Date.now();
    const proc = spawnLogged(qemu, l1Args(c), { logFile: join(c.dir, 'qemu.log') });
    const failed = (kind: BootFailure, what: string, why: string): L1BootError => {
      const sign = kind === 'crashed' ? lastLine(readText(join(c.dir, 'qemu.log'))) : hangSign(readText(join(c.dir, 'console.log')));
      return new L1BootError(c.name, kind, Date.now() - started, sign, `L1 host ${c.name} did not come up: ${what}`, {
        why: sign && kind !== 'exited' ? `${why}; ${kind === 'crashed' ? 'QEMU' : 'its console'} says: ${sign}` : why,
        fix: `console log: ${join(c.dir, 'console.log')}, QEMU log: ${join(c.dir, 'qemu.log')}`,
        details: `console (last lines):\n${logTail(join(c.dir, 'console.log'), 25)}\nqemu.log:\n${logTail(join(c.dir, 'qemu.log'), 5)}`,
      });
    };
    const died = rejectOnExit(proc, (e) => e.signal
      ? failed('crashed', `QEMU crashed (${exitText(e)})`, 'the emulator itself failed')
      : failed('exited', `QEMU exited (${exitText(e)})`, 'the kernel panicked, init failed, or QEMU refused its command line: see below'));
    let qmp: QmpClient | undefined;
    let agent: AgentClient | undefined;
    try {
      qmp = await Promise.race([QmpClient.connect(join(c.dir, 'qmp.sock'), { retryUntilMs: 30_000 }), died]);
      agent = await Promise.race([AgentClient.connect(join(c.dir, 'agent.sock'), { host: `L1 host ${c.name}`, retryUntilMs: 10_000 }), died]);
      const left = Math.max(1000, opts.bootTimeoutMs - (Date.now() - started));
      // A kernel that reports a stall on its console has hung: no need to wait out the timeout.
      let booted = false;
      const stalled = pollUntil(() => (booted ? null : stallSign(readText(join(c.dir, 'console.log')))), { timeoutMs: left + 5000, everyMs: 1000, timeout: () => new Error('stall watch ended') })
        .then((sign) => {
          if (sign) throw failed('hung', `its kernel stalled after ${Math.round((Date.now() - started) / 1000)} s`, 'the console reports a stall');
          return undefined as never;
        });
      stalled.catch(() => undefined);
      const hello = await Promise.race([
        agent.hello({ timeoutMs: left }).catch(async (e: unknown) => {
          // The agent's socket closes when QEMU goes away: let QEMU's exit tell why.
          await Promise.race([proc.exited, sleep(3000)]);
          throw failed('hung', `no answer from its agent within ${Math.round(opts.bootTimeoutMs / 1000)} s`, `the boot hung or is very slow (${(e as Error).message})`);
        }),
        died,
        stalled,
      ]).finally(() => {
        booted = true;
      });
      const bootMs = Date.now() - started;
      debug(`L1 host ${c.name} up in ${bootMs} ms (kernel ${hello.kernel})`);
      return new L1Host(c, proc, qmp, agent, hello, bootMs);
    } catch (e) {
      agent?.close();
      await qmp?.close().catch(() => undefined);
      await proc.stop(2000);
      throw e;
    }
  }

  /**
   * boot(), and boot again (up to `attempts` in all) when an attempt hangs or
   * QEMU crashes; each such attempt's console and QEMU log are kept as
   * console.<hung|crashed>-N.log and qemu.<hung|crashed>-N.log and listed in
   * the host's `hangs`. A QEMU that exits by itself is not retried.
   */
  static async bootRetrying(qemu: string, c: L1Config, opts: { bootTimeoutMs: number; attempts: number }): Promise<L1Host> {
    const hangs: BootHang[] = [];
    for (let i = 1; ; i++) {
      try {
        const h = await L1Host.boot(qemu, c, opts);
        h.hangs = hangs;
        return h;
      } catch (e) {
        if (!(e instanceof L1BootError) || e.kind === 'exited') throw e;
        const keep = (name: string): string => {
          const kept = join(c.dir, `${name}.${e.kind}-${i}.log`);
          if (existsSync(join(c.dir, `${name}.log`))) renameSync(join(c.dir, `${name}.log`), kept);
          return kept;
        };
        const kind = e.kind;
        hangs.push({ kind, after_ms: e.afterMs, sign: e.sign ?? null, console: keep('console'), qemu_log: keep('qemu') });
        const said = (h: BootHang): string => `${h.kind === 'hung' ? 'no answer' : 'QEMU crashed'} after ${Math.round(h.after_ms / 1000)} s${h.sign ? ` (${h.sign})` : ''}`;
        if (i >= opts.attempts) {
          throw new L1BootError(c.name, kind, e.afterMs, e.sign, `L1 host ${c.name} did not come up in ${i} attempts`, {
            why: hangs.map((h, n) => `attempt ${n + 1}: ${said(h)}`).join('; '),
            fix: `consoles: ${hangs.map((h) => h.console).join(', ')}; QEMU logs: ${hangs.map((h) => h.qemu_log).join(', ')}`,
            details: e.details,
          });
        }
        warn(`L1 host ${c.name} ${kind} at boot (attempt ${i} of ${opts.attempts}: ${said(hangs[hangs.length - 1]!)}); logs kept as ${hangs[hangs.length - 1]!.console}; booting it again`);
      }
    }
  }

  /** Power off through the agent; QMP quit, then SIGKILL, if that does not end QEMU in time. Idempotent. */
  async shutdown(): Promise<void> {
    if (!this.exited && !this.agent.isClosed) {
      await this.agent.poweroff().catch((e: unknown) => debug(`${this.name}: poweroff: ${(e as Error).message}`));
      await Promise.race([this.proc.exited, sleep(10_000)]);
    }
    this.agent.close();
    await this.quit();
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The last non-empty line of a log (a QEMU's last words before it died). */
function lastLine(text: string): string | undefined {
  return text.trimEnd().split('\n').pop()?.trim() || undefined;
}
