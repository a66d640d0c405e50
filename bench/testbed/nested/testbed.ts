/**
 * Two L1 test hosts, A and B, on one machine: each a QEMU at L0 (l1-host.ts),
 * joined by `-netdev dgram` over loopback UDP ports chosen here, with an
 * address, optional tc shaping (the same profiles as the local testbed) and a
 * Soft-RoCE device on the link NIC, checked ACTIVE (rxe.ts). L2 guests run in them
 * under nested KVM.
 *
 *   heca-<id>-a [link0 10.214.0.1/24, rxe0] ==dgram== [link0 10.214.0.2/24, rxe0] heca-<id>-b
 *
 * Every testbed takes a lease (lease.ts) before it starts anything: its owner
 * record in /run/heca/nested/ names the L1 QEMUs, so NestedTestbed.cleanupStale()
 * can stop what a killed run left, and Ctrl-C or a crash powers them off.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil, within } from '../../../tools/core/poll.ts';
import { HecaError } from '../../../tools/core/errors.ts';
import { info, warn } from '../../../tools/core/log.ts';
import { buildDir, l1HostQemu } from '../../../tools/core/paths.ts';
import { chooseL1Accel, freePorts } from '../host.ts';
import { LEASE_ID_RE, reapStale, takeLease, type Lease, type LeaseBook } from '../lease.ts';
import type { Spawned } from '../../../tools/core/exec.ts';
import { tcpAddr } from '../../../tools/core/sockaddr.ts';
import type { RunTestbed } from '../types.ts';
import { cutLink, restoreLink, type EndExec } from '../cut.ts';
import { localThreads, threadsArgv } from '../threads.ts';
import { CORE_WAIT_MS, coreDumpOf, findCore, L1_CORE_PATTERN, type CoreDump } from './cores.ts';
import { describeCpus, guestHoldsHostState, parseCpus, symbolizer } from './l1-cpus.ts';
import type { AgentExecResult, AgentExit } from './l1-agent.ts';
import { L1Host, type BootHang } from './l1-host.ts';
import { readAsyncPfTrace, startAsyncPfTrace, stopAsyncPfTrace } from './kvm-trace.ts';
import { readRdmaCounters, repairRxe, setUpRxe, waitRxeActive, type RdmaCounters, type RxeState } from './rxe.ts';
export type { RxeState } from './rxe.ts';
import { describeLink, linkProfile, mtuArgs, shapingArgs } from '../links.ts';
import type { LinkProfileName } from '../../results/schema.ts';

export const NESTED_OWNER_DIR = '/run/heca/nested';
export const A_ADDR = '10.214.0.1';
export const B_ADDR = '10.214.0.2';
const PREFIX = 24;

export interface NestedOptions {
  link: LinkProfileName;
  /** L0 directory for the hosts' logs and the directory shared with them. */
  dir: string;
  accel?: { accel: 'tcg' | 'kvm'; reason: string };
  /** Per L1 host (default 3072 MiB, 2 CPUs). */
  memMib?: number;
  cpus?: number;
  /** Per boot attempt (default 90 s; a normal boot takes 15-20 s here). */
  bootTimeoutMs?: number;
  /** Boot attempts per host when one hangs or its QEMU crashes (default 3). */
  bootAttempts?: number;
  kernel?: string;
  /** More L1 kernel command-line arguments, for both hosts. */
  kernelArgs?: string[];
  id?: string;
  /** L0 directory mounted at the same path in both hosts (default DIR/shared). */
  sharedDir?: string;
}

/** Ports in each L1 host that an L2 QEMU's QMP monitor and control channel listen on. */
export const L2_PORTS = { qmp: 5101, ctl: 5102 } as const;

export interface HostFacts {
  name: string;
  /** From the start of the attempt that came up to its agent's first answer. */
  boot_ms: number;
  /** Attempts given up (hung, or QEMU crashed) before it; none normally. */
  boot_hangs: BootHang[];
  kernel: string;
  /** /dev/kvm present and the vendor module's nested parameter on. */
  nested_kvm: boolean;
  nested_kvm_detail: string;
  rxe: RxeState;
}

export function l1KernelPath(): string {
  return join(buildDir(), 'kernel', 'bzImage');
}

/** The L1 kernel's symbols (tools/build/kernel.ts builds in kernel/build). */
export function l1SystemMapPath(): string {
  return join(buildDir(), 'kernel', 'build', 'System.map');
}

/** The L1 kernel's symbols (System.map read once). */
let l1Sym: ((a: bigint) => string) | undefined;
function l1Symbols(): (a: bigint) => string {
  l1Sym ??= symbolizer(l1SystemMapPath());
  return l1Sym;
}

/** What a nested testbed's owner record names, besides its owner: its L1 QEMUs. */
interface NestedHolds {
  /** The L1 QEMUs' -name: found by it in /proc when stale (also while they were still booting). */
  names: string[];
  /** Their pids, once up. */
  qemu_pids: number[];
}

const LEASES: LeaseBook = { dir: NESTED_OWNER_DIR, kind: 'nested testbed' };

export class NestedTestbed {
  private destroying: Promise<void> | undefined;
  private lease: Lease<NestedHolds> | undefined;

  private constructor(
    readonly id: string,
    readonly link: LinkProfileName,
    readonly dir: string,
    /** Same path at L0 and in both hosts. */
    readonly sharedDir: string,
    readonly accel: { accel: 'tcg' | 'kvm'; reason: string },
    readonly a: L1Host,
    readonly b: L1Host,
    readonly facts: { a: HostFacts; b: HostFacts },
    /** Wall time from the first QEMU's start to both hosts up, rxe ACTIVE. */
    readonly upMs: number,
  ) {}

  get hosts(): [L1Host, L1Host] {
    return [this.a, this.b];
  }

  static async create(opts: NestedOptions): Promise<NestedTestbed> {
    const kernel = opts.kernel ?? l1KernelPath();
    if (!existsSync(kernel)) {
      throw new HecaError('the L1 host kernel is not built', { why: `${kernel} does not exist`, fix: 'build it with: npx tsx tools/build.ts --kernel   (cold: about 11 min of CPU time, under 6 min on two idle cores)' });
    }
    const qemu = l1HostQemu();
    const id = opts.id ?? randomBytes(4).toString('hex').slice(0, 7);
    if (!LEASE_ID_RE.test(id)) throw new HecaError(`bad testbed id ${id}`, { why: 'ids are 1-12 lower-case letters or digits' });
    await NestedTestbed.cleanupStale();
    const accel = opts.accel ?? chooseL1Accel();
    const started = Date.now();
    const [pa, pb] = await freePorts('udp', 2);
    const fwd = await freePorts('tcp', 4);
    const forwards = (i: number) => [{ hostPort: fwd[i]!, guestPort: L2_PORTS.qmp }, { hostPort: fwd[i + 1]!, guestPort: L2_PORTS.ctl }];
    const shared = opts.sharedDir ?? join(opts.dir, 'shared');
    const mk = (which: 'a' | 'b') => {
      const dir = join(opts.dir, which);
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    mkdirSync(shared, { recursive: true });
    const common = { kernel, kernelArgs: opts.kernelArgs, accel: accel.accel, memMib: opts.memMib ?? 3072, cpus: opts.cpus ?? 2, sharedDir: shared };
    const cfgA = { ...common, name: `heca-${id}-a`, dir: mk('a'), link: { mac: '52:54:00:4e:00:01', addr: `${A_ADDR}/${PREFIX}`, localPort: pa!, remotePort: pb! }, mgmt: { mac: '52:54:00:4e:01:01', forwards: forwards(0) } };
    const cfgB = { ...common, name: `heca-${id}-b`, dir: mk('b'), link: { mac: '52:54:00:4e:00:02', addr: `${B_ADDR}/${PREFIX}`, localPort: pb!, remotePort: pa! }, mgmt: { mac: '52:54:00:4e:01:02', forwards: forwards(2) } };

    // Whatever is up is powered off on Ctrl-C or a crash, from the first boot on.
    const up: L1Host[] = [];
    const powerOff = () => Promise.all(up.map((h) => h.shutdown().catch(() => undefined)));
    const lease: Lease<NestedHolds> = takeLease<NestedHolds>(LEASES, id, { names: [cfgA.name, cfgB.name], qemu_pids: [] }, async () => {
      await powerOff();
      lease.release();
    });
    const bootTimeoutMs = opts.bootTimeoutMs ?? 90_000;
    const attempts = opts.bootAttempts ?? 3;
    info(`booting L1 hosts ${cfgA.name} and ${cfgB.name} (${accel.accel}, ${common.memMib} MiB, ${common.cpus} CPUs each; link ports ${pa}<->${pb})`);
    const boot = async (cfg: typeof cfgA) => {
      const h = await L1Host.bootRetrying(qemu, cfg, { bootTimeoutMs, attempts });
      up.push(h);
      lease.update({ qemu_pids: up.map((x) => x.proc.pid) });
      return h;
    };
    const settled = await Promise.allSettled([boot(cfgA), boot(cfgB)]);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      await powerOff();
      lease.release();
      throw (failed as PromiseRejectedResult).reason;
    }
    const [a, b] = settled.map((s) => (s as PromiseFulfilledResult<L1Host>).value) as [L1Host, L1Host];
    try {
      const [fa, fb] = await Promise.all([setUpHost(a, opts.link), setUpHost(b, opts.link)]);
      await a.agent.exec(['busybox', 'ping', '-c', '2', '-W', '5', B_ADDR], { timeoutMs: 20_000 }).catch((e: unknown) => {
        throw new HecaError(`L1 host ${a.name} cannot reach ${b.name} over the link`, { why: (e as Error).message, fix: `check the dgram ports ${pa}/${pb} and both console logs in ${opts.dir}` });
      });
      const bed = new NestedTestbed(id, opts.link, opts.dir, shared, accel, a, b, { a: fa, b: fb }, Date.now() - started);
      bed.lease = lease;
      info(`nested testbed ${id} up in ${(bed.upMs / 1000).toFixed(1)} s: ${describeLink(opts.link)}; rxe0 ${fa.rxe.state}/${fb.rxe.state}; nested KVM ${fa.nested_kvm && fb.nested_kvm ? 'yes' : 'NO'}`);
      return bed;
    } catch (e) {
      await powerOff();
      lease.release();
      throw e;
    }
  }

  /**
   * The hosts whose agent does not run `true` within `timeoutMs`, each with
   * what L0 sees of it (silentHostReport): an L1 host that died with a run.
   */
  async silentHosts(timeoutMs = 10_000): Promise<Array<{ name: string; report: string }>> {
    const answers = await Promise.all(this.hosts.map(async (h) => {
      try {
        const r = await h.agent.exec(['true'], { timeoutMs, allowFail: true });
        if (!r.timedOut) return undefined;
      } catch {
        // no answer: reported below
      }
      return { name: h.name, report: await silentHostReport(h) };
    }));
    return answers.filter((x): x is { name: string; report: string } => x !== undefined);
  }

  /** Run a command to completion in host A or B (see AgentClient.exec). */
  exec(on: 'a' | 'b', argv: readonly string[], opts: Parameters<L1Host['agent']['exec']>[1]): Promise<AgentExecResult> {
    return (on === 'a' ? this.a : this.b).agent.exec(argv, opts);
  }

  /** L0 address ("tcp:127.0.0.1:PORT") forwarded to `guestPort` in host A or B. */
  forwarded(on: 'a' | 'b', guestPort: number): string {
    const h = on === 'a' ? this.a : this.b;
    const f = h.config.mgmt?.forwards.find((x) => x.guestPort === guestPort);
    if (!f) throw new HecaError(`no port forward to ${guestPort} in ${h.name}`, { why: 'the L1 host was started without it' });
    return tcpAddr('127.0.0.1', f.hostPort);
  }

  /** Bytes on A's end of the link (tx = A → B). */
  async wireBytes(): Promise<{ tx: number; rx: number }> {
    const r = await this.a.agent.exec(['cat', '/sys/class/net/link0/statistics/tx_bytes', '/sys/class/net/link0/statistics/rx_bytes'], { timeoutMs: 10_000 });
    const [tx, rx] = r.stdout.trim().split('\n').map(Number);
    return { tx: tx!, rx: rx! };
  }

  /**
   * The engine's view for one run: the source QEMU in A, the destination in B,
   * their monitors on TCP ports reached through the port forwards. destroy()
   * stops what the run started in the hosts; the hosts stay up for the next run.
   */
  runTestbed(): RunTestbed {
    const started: Spawned[] = [];
    const procs: Array<{ role: 'src' | 'dst'; host: string; pid: number; cmd: string; proc: Spawned }> = [];
    const hostOf = (role: 'src' | 'dst') => (role === 'src' ? this.a : this.b);
    const ends = { src: { dev: 'link0', addr: A_ADDR }, dst: { dev: 'link0', addr: B_ADDR } };
    let cut = false;
    let wasCut = false;
    const exec: EndExec = (on, argv) => hostOf(on).agent.exec(argv, { timeoutMs: 10_000, allowFail: true });
    return {
      kind: 'nested',
      srcAddr: A_ADDR,
      dstAddr: B_ADDR,
      vmExtra: (role) => {
        const on = role === 'src' ? 'a' : 'b';
        return {
          accel: 'kvm',
          tcp: { listen: { host: '0.0.0.0', qmpPort: L2_PORTS.qmp, ctlPort: L2_PORTS.ctl }, qmp: this.forwarded(on, L2_PORTS.qmp), ctl: this.forwarded(on, L2_PORTS.ctl) },
        };
      },
      spawn: (role) => async (cmd, args, logFile) => {
        const h = hostOf(role);
        const p = await h.agent.spawn([cmd, ...args], { logFile });
        const s = agentSpawned(h, p);
        started.push(s);
        procs.push({ role, host: h.name, pid: p.pid, cmd, proc: s });
        await waitListening(h, [L2_PORTS.qmp, L2_PORTS.ctl], 60_000, s);
        return s;
      },
      threads: async (role, pid) => {
        const h = hostOf(role);
        try {
          const r = await h.agent.exec(threadsArgv(pid), { timeoutMs: 20_000, allowFail: true });
          if (!r.timedOut) return r.stdout + r.stderr;
        } catch (e) {
          warn(`L1 host ${h.name}: reading the threads of QEMU ${pid}: ${(e as Error).message}`);
        }
        // The host itself does not answer: what its own QEMU (here, at L0) does, and where its CPUs are.
        return `L1 host ${h.name} did not answer within 20 s; ${await silentHostReport(h)}`;
      },
      coreDumps: async () => {
        const found = await Promise.all(procs.map(async (p) => {
          // A core is complete once its process has exited (the kernel writes it before): wait for that, a while.
          const exit = await within(p.proc.exited, CORE_WAIT_MS);
          if (exit === undefined) {
            const c = findCore(this.sharedDir, p.host, p.pid);
            return c ? { role: p.role, host: p.host, pid: p.pid, file: c.file, summary: `a core from thread "${c.thread}" still being written ${CORE_WAIT_MS / 1000} s after the run: not read`, backtrace: '' } : undefined;
          }
          return exit.signal ? coreDumpOf(this.sharedDir, p.role, p.host, p.pid, p.cmd) : undefined;
        }));
        return found.filter((c): c is CoreDump => c !== undefined);
      },
      explainGuestCpu: (registers, guestMemMib) => guestHoldsHostState(registers, guestMemMib, l1Symbols()),
      wireBytes: () => this.wireBytes(),
      rdmaCounters: async () => ({ src: await readRdmaCounters(this.a.agent), dst: await readRdmaCounters(this.b.agent) }),
      asyncPfTrace: { start: () => startAsyncPfTrace(this.b.agent), read: () => readAsyncPfTrace(this.b.agent), stop: () => stopAsyncPfTrace(this.b.agent) },
      cutLink: () => {
        cut = wasCut = true;
        return cutLink(exec, ends);
      },
      restoreLink: async (o) => {
        await restoreLink(exec, ends);
        cut = false;
        // rxe follows link0: the rdma transport needs it ACTIVE again (a warning when it stays down).
        if (o?.rdma) await Promise.all(this.hosts.map((h) => waitRxeActive(h.agent, 'rxe0', 'link0', 15_000).catch((e: unknown) => warn(String((e as Error).message)))));
      },
      destroy: async () => {
        await Promise.all(started.map((s) => s.stop(3000)));
        // The hosts stay up for the next run: never leave them with the link cut.
        if (cut) await restoreLink(exec, ends).then(() => (cut = false), (e: unknown) => warn(`restoring link0 after the run: ${String(e)}`));
        // A cut can leave rxe0 unable to connect (its GSI queue pair in ERR): replace it now that no QEMU uses it.
        if (wasCut) {
          await Promise.all(this.hosts.map(async (h) => {
            const r = await repairRxe(h.agent).catch((e: unknown) => warn(`L1 host ${h.name}: checking rxe0 after the cut: ${(e as Error).message}`));
            if (r?.recreated) info(`L1 host ${h.name}: rxe0's GSI queue pair was in ERR after the cut: rxe0 re-created`);
          }));
        }
      },
    };
  }

  /** Power both hosts off; idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      await Promise.all([this.a.shutdown(), this.b.shutdown()]);
      this.lease?.release();
    })();
    return this.destroying;
  }

  /** Stop the L1 QEMUs of testbeds whose owner process is gone. Returns their ids. */
  static async cleanupStale(): Promise<string[]> {
    return reapStale<NestedHolds>(LEASES, async (id, rec) => {
      for (const pid of rec ? qemusNamed(rec.names) : []) {
        warn(`stopping the L1 QEMU ${pid} left by nested testbed ${id}`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
    });
  }
}

/** Pids of the processes run with `-name N` for one of `names` (the L1 QEMUs of one testbed). */
function qemusNamed(names: string[]): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (names.some((n) => cmd.includes(`\0-name\0${n}\0`))) pids.push(Number(p));
  }
  return pids;
}

/** Shaping, the rxe device, and what the host can do: nested KVM. */
async function setUpHost(h: L1Host, link: LinkProfileName): Promise<HostFacts> {
  const x = (argv: string[], timeoutMs = 20_000) => h.agent.exec(argv, { timeoutMs });
  const mtu = mtuArgs(link, 'link0');
  if (mtu.length) await x(['ip', ...mtu]);
  for (const a of shapingArgs(link, 'link0')) await x(['tc', ...a]);
  const kvm = await h.agent.exec(['test', '-c', '/dev/kvm'], { timeoutMs: 10_000, allowFail: true });
  let nested = false;
  let detail = kvm.exitCode === 0 ? '' : 'no /dev/kvm in L1';
  if (kvm.exitCode === 0) {
    for (const mod of ['kvm_amd', 'kvm_intel']) {
      const r = await h.agent.exec(['cat', `/sys/module/${mod}/parameters/nested`], { timeoutMs: 10_000, allowFail: true });
      if (r.exitCode === 0) {
        nested = ['1', 'Y'].includes(r.stdout.trim());
        detail = `${mod}.nested=${r.stdout.trim()}`;
        break;
      }
    }
    if (!detail) detail = '/dev/kvm but neither kvm_amd nor kvm_intel is loaded (the CPU lacks SVM/VMX?)';
  }
  const rxe = await setUpRxe(h.agent);
  if (mtu.length) await checkRdmaMtu(h, linkProfile(link).mtu);
  await checkCorePattern(h);
  return { name: h.name, boot_ms: h.bootMs, boot_hangs: h.hangs, kernel: h.hello.kernel, nested_kvm: nested, nested_kvm_detail: detail, rxe };
}

/** rxe0 takes its MTU from link0's: with jumbo frames it must offer RoCE's largest, 4096; a warning otherwise. */
async function checkRdmaMtu(h: L1Host, linkMtu: number): Promise<void> {
  const r = await h.agent.exec(['ibv_devinfo', '-d', 'rxe0'], { timeoutMs: 20_000, allowFail: true });
  const active = /active_mtu:\s*(\d+)/.exec(r.stdout)?.[1];
  if (active !== '4096') warn(`L1 host ${h.name}: link0 has MTU ${linkMtu}, but rxe0's active MTU is ${active ?? `unknown (ibv_devinfo exited ${r.exitCode})`}, not 4096: RDMA traffic keeps small packets`);
}

/** A host whose crashing processes would leave no core for L0 to read (cores.ts) is named once, with what to do. */
async function checkCorePattern(h: L1Host): Promise<void> {
  const r = await h.agent.exec(['cat', '/proc/sys/kernel/core_pattern'], { timeoutMs: 10_000, allowFail: true });
  const got = r.exitCode === 0 ? r.stdout.trim() : `unreadable (${r.stderr.trim() || `cat exited ${r.exitCode}`})`;
  if (got !== L1_CORE_PATTERN) {
    warn(`L1 host ${h.name}: core_pattern is ${JSON.stringify(got)}, not ${JSON.stringify(L1_CORE_PATTERN)}: an L2 QEMU that crashes leaves no core for L0 to read; the host's console says why (bench/testbed/nested/l1-init sets it; the L1 kernel needs CONFIG_COREDUMP=y: npx tsx tools/build.ts --kernel)`);
  }
}

/** What an L1 host that does not answer is doing, seen from L0: where its CPUs are, and its QEMU's threads. */
export async function silentHostReport(h: L1Host): Promise<string> {
  const cpus = (await l1CpuLines(h)).map((l) => `  ${l}\n`).join('');
  return `its CPUs:\n${cpus}its QEMU (pid ${h.proc.pid}, at L0):\n${await localThreads(h.proc.pid)}`;
}

/** Where the CPUs of an L1 host are, from its QEMU's monitor at L0; symbols from the L1 kernel's System.map. */
export async function l1CpuLines(h: L1Host): Promise<string[]> {
  try {
    const text = await h.qmp.execute('human-monitor-command', { 'command-line': 'info registers -a' }, { timeoutMs: 5000 });
    return describeCpus(parseCpus(text), symbolizer(l1SystemMapPath()));
  } catch (e) {
    return [`(its monitor did not answer: ${(e as Error).message})`];
  }
}

/** A process the agent started, as exec.ts's Spawned (stop = SIGTERM, then SIGKILL). */
function agentSpawned(h: L1Host, p: { pid: number; exited: Promise<AgentExit> }): Spawned {
  let done = false;
  const exited = p.exited.then((e) => {
    done = true;
    return { exitCode: e.exitCode, signal: e.signal ?? undefined };
  });
  const signal = (sig: NodeJS.Signals) => h.agent.kill(p.pid, sig).catch(() => false);
  return {
    pid: p.pid,
    exited,
    kill: (sig: NodeJS.Signals = 'SIGTERM') => {
      if (!done) void signal(sig);
    },
    stop: async (graceMs = 5000) => {
      if (done || h.agent.isClosed) return;
      await signal('SIGTERM');
      if (await within(exited, graceMs) || done) return;
      // A process writing its core ignores SIGTERM, and SIGKILL would cut the core short: let it finish.
      if (await dumpingCore(h, p.pid)) {
        await within(exited, CORE_WAIT_MS);
        if (done) return;
      }
      await signal('SIGKILL');
      await within(exited, 5000);
    },
  };
}

/** Whether process `pid` in host `h` is writing its core dump now (CoreDumping: 1 in its status). */
async function dumpingCore(h: L1Host, pid: number): Promise<boolean> {
  const r = await h.agent.exec(['cat', `/proc/${pid}/status`], { timeoutMs: 10_000, allowFail: true }).catch(() => undefined);
  return r?.exitCode === 0 && /^CoreDumping:\s*1\s*$/m.test(r.stdout);
}

/** Wait until TCP `ports` listen in the host (user networking accepts at L0 before they do). */
async function waitListening(h: L1Host, ports: number[], timeoutMs: number, proc: Spawned): Promise<void> {
  let gone = false;
  void proc.exited.then(() => (gone = true));
  await pollUntil(async () => {
    const r = await h.agent.exec(['ss', '-Hltn'], { timeoutMs: 10_000, allowFail: true });
    const listening = new Set([...r.stdout.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
    // Gone: the caller sees the exit (and its log) when it connects.
    return ports.every((p) => listening.has(p)) || gone ? true : undefined;
  }, {
    timeoutMs,
    everyMs: 200,
    timeout: (ms) => new HecaError(`${h.name}: QEMU does not listen on ${ports.join(', ')}`, { why: `not within ${ms} ms of its start`, fix: 'see its log in the run directory' }),
  });
}
