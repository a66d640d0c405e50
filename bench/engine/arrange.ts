/**
 * Phase 1, arrange: the two QEMUs up with the guest running its workload
 * (startHosts), then both QEMUs set for the scenario's migration and watched
 * (prepareMigration): capabilities, heca's parameters, the destination's
 * post-copy statistics, migrate-incoming, and the events the run records
 * (STOP, RESUME, the switch, a guest reset).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { HecaError } from '../../tools/core/errors.ts';
import { debug, info, warn } from '../../tools/core/log.ts';
import { QmpCommandError } from '../../tools/qmp/errors.ts';
import type { QmpEvent } from '../../tools/qmp/types.ts';
import { Vm, type VmConfig } from '../guest/vm.ts';
import { faultPlan, type FaultPlan } from '../scenario/faults.ts';
import type { MigrationPolicy } from '../scenario/policy.ts';
import { missingTransportFeature, transportSetup, type TransportSetup } from '../scenario/transport.ts';
import { localRunTestbed } from '../testbed/local/testbed.ts';
import type { RunTestbed } from '../testbed/types.ts';
import { mark, type Run } from './run.ts';
import { guestResetReason, saveRegisters, sideOf, type Side } from './side.ts';
import type { RdmaCounterPair } from '../testbed/nested/rxe.ts';

/** Start the testbed and both QEMUs (recorded in `run` for the teardown), boot the guest, let it warm up. */
export async function startHosts(run: Run): Promise<{ src: Vm; dst: Vm; bed: RunTestbed }> {
  const { ctx, sc, w, repeat, logs } = run;
  const bed = await (ctx.testbed ?? (() => localRunTestbed(ctx.link)))();
  run.bed = bed;
  const base: Omit<VmConfig, 'name' | 'dir'> = { accel: ctx.accel, memMib: w.mem_mib, vcpus: w.vcpus ?? 1, kernel: ctx.kernel, initrd: ctx.initrd, append: ctx.append(w), ...(ctx.qemuTrace?.length ? { trace: ctx.qemuTrace } : {}), ...(sc.qemu_globals?.length ? { globals: sc.qemu_globals } : {}) };
  const memFile = (side: string) => (ctx.memDir ? { memFile: join(ctx.memDir, `heca-${process.pid}-${sc.name}-r${repeat}-${side}.ram`) } : {});
  const dstCfg: VmConfig = { ...base, name: 'heca-dst', dir: join(logs, 'dst'), incoming: true, ...memFile('dst'), ...bed.vmExtra('dst') };
  const srcCfg: VmConfig = { ...base, name: 'heca-src', dir: join(logs, 'src'), ...memFile('src'), ...bed.vmExtra('src') };
  run.memFiles.push(...[dstCfg.memFile, srcCfg.memFile].filter((f): f is string => f !== undefined));
  const dst = await Vm.start(ctx.qemu, dstCfg, bed.spawn('dst'));
  run.dst = dst;
  const src = await Vm.start(ctx.qemu, srcCfg, bed.spawn('src'));
  run.src = src;
  info(`  ${run.label}: booting the guest (${w.mem_mib} MiB, ${w.name})`);
  // A reset before `migrate` (-action reboot=shutdown,shutdown=pause freezes
  // the guest) is said as such: it involves no migration at all.
  let offs: Array<() => void> = [];
  let resetEvent = false; // set at once: the rejection waits for the registers
  const resetAtBoot = new Promise<never>((_, rej) => {
    const seen = (e: QmpEvent): void => {
      const reason = guestResetReason(e);
      if (resetEvent || reason === undefined) return;
      resetEvent = true;
      const file = join(logs, 'src', 'registers.txt');
      void saveRegisters(sideOf(src, 'source'), file).then((regs) => rej(new HecaError(
        `the guest was reset or powered off on the source before migrate (${e.event}, reason: ${reason})${regs ? `; CPU then: ${regs}` : ''}`,
        { why: 'no migration was involved: the guest failed while it booted or stamped its arena', fix: `see the console log and registers in ${join(logs, 'src')}` })));
    };
    offs = [src.qmp.on('RESET', seen), src.qmp.on('SHUTDOWN', seen)];
  });
  resetAtBoot.catch(() => undefined);
  try {
    await ctx.hooks?.booting?.(src);
    const ready = await src.guard(Promise.race([src.channel.waitFor('ready', { timeoutMs: 180_000 }), resetAtBoot]), 'guest boot');
    debug(`guest ready: ${JSON.stringify(ready)}`);
    await src.guard(Promise.race([sleep(ctx.warmupS * 1000), resetAtBoot]), 'warm-up');
    // A reset in the last moments of the warm-up: its registers are being saved.
    if (resetEvent) await resetAtBoot;
  } finally {
    for (const off of offs) off();
  }
  return { src, dst, bed };
}

/** What the later phases need of the testbed: where the destination listens, whose clock times events, the link's counters, a cut. */
export type MigrationLink = Pick<RunTestbed, 'kind' | 'dstAddr' | 'wireBytes' | 'rdmaCounters' | 'asyncPfTrace' | 'cutLink' | 'restoreLink'>;

/** A migration set up and watched: everything the migrate, observe and collect phases share. */
export interface Migration {
  readonly run: Run;
  readonly policy: MigrationPolicy;
  readonly src: Side;
  readonly dst: Side;
  readonly link: MigrationLink;
  readonly uri: string;
  /** The destination reports post-copy latency statistics (postcopy-blocktime accepted). */
  readonly latencyStats: boolean;
  /** STOP on the source and RESUME on the destination, µs (one clock, see prepareMigration). */
  readonly events: { stopUs?: number; resumeUs?: number };
  /** Set when the guest was reset or powered off: why. */
  reset: string | undefined;
  /** Rejects, once the registers are saved, when the guest was reset. */
  readonly resetSeen: Promise<never>;
  /** The link's counters when `migrate` was issued. */
  wire0: { tx: number; rx: number };
  /** Each side's RDMA device counters then (a testbed with RDMA devices on the link). */
  rdma0?: RdmaCounterPair;
  /** The destination's async page fault trace runs (started at migrate). */
  asyncPfTracing?: boolean;
  /** The policy had the migration cancelled. */
  cancelled: boolean;
  /** What the scenario's transport set on both sides. */
  readonly transport: TransportSetup;
  /** When the scenario's faults are due. */
  readonly faults: FaultPlan;
  /** Faults injected so far (each recovery listens on its own port). */
  injected: number;
}

/**
 * The heca parameter a QEMU says it does not have, from its error to
 * migrate-set-parameters ("Parameter 'postcopy-on-convergence' is
 * unexpected"); undefined for any other error.
 */
export function missingHecaParameter(desc: string): string | undefined {
  const name = /postcopy-(switchover|deadline|on-convergence)/.exec(desc)?.[0];
  return name && /unexpected|not found|invalid parameter/i.test(desc) ? name : undefined;
}

const refusedBlocktime = new Set<string>();

/**
 * Enable the destination's postcopy-blocktime capability, the gate of its
 * post-copy latency statistics. A QEMU that refuses it is no failure: the run
 * records no latency (said once per QEMU binary).
 */
async function enableBlocktime(dst: Side, qemu: string): Promise<boolean> {
  try {
    await dst.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-blocktime', state: true }] });
    return true;
  } catch (e) {
    if (!(e instanceof QmpCommandError)) throw e;
    if (!refusedBlocktime.has(qemu)) warn(`the destination QEMU refuses capability postcopy-blocktime (${e.desc}): no post-copy fault latency is recorded`);
    refusedBlocktime.add(qemu);
    return false;
  }
}

/** Set heca's parameters of the scenario, if any; a QEMU without them fails the run up front. */
async function setHecaParameters(src: Side, run: Run, policy: MigrationPolicy): Promise<void> {
  const params = policy.qemuParameters;
  if (!params) return;
  try {
    await src.qmp.execute('migrate-set-parameters', params);
  } catch (e) {
    const missing = e instanceof QmpCommandError ? missingHecaParameter(e.desc) : undefined;
    if (e instanceof QmpCommandError && missing) {
      throw new HecaError(`scenario ${run.sc.name} needs heca's QEMU patches`, {
        why: `this QEMU has no ${missing} parameter (${e.desc})`,
        fix: 'build the patched QEMU (make build) or unset $HECA_QEMU; upstream-only scenarios: precopy, postcopy, mgmt-hybrid10, mgmt-hybrid60',
      });
    }
    throw e;
  }
}

/** A transport's capability or parameter refused: a QEMU without it fails the run up front, naming it. */
async function transportStep<T>(run: Run, t: TransportSetup, side: Side, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const missing = e instanceof QmpCommandError ? missingTransportFeature(e.desc) : undefined;
    if (e instanceof QmpCommandError && missing) {
      throw new HecaError(`scenario ${run.sc.name} needs ${t.needs}`, {
        why: `the ${side.name} QEMU refuses ${missing}: ${e.desc}`,
        fix: 'build the QEMU with the series that has it (npx tsx tools/build.ts), or drop the scenario',
      });
    }
    throw e;
  }
}

export async function prepareMigration(run: Run, policy: MigrationPolicy, src: Side, dst: Side, link: MigrationLink): Promise<Migration> {
  const transport = transportSetup(run.sc.transport ?? 'tcp', link.dstAddr);
  const caps = [
    { capability: 'postcopy-ram', state: policy.postcopy },
    { capability: 'events', state: true },
    ...transport.capabilities,
  ];
  for (const side of [src, dst]) {
    await transportStep(run, transport, side, side.qmp.execute('migrate-set-capabilities', { capabilities: caps }));
    // The link, not QEMU's default rate limit, must be the bottleneck.
    await side.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 * 1024 * 1024 });
    // --postcopy-bandwidth: post-copy's background held back (the source forwards it to an RDMA pull).
    if (side === src && run.ctx.postcopyBandwidth !== undefined) await side.qmp.execute('migrate-set-parameters', { 'max-postcopy-bandwidth': run.ctx.postcopyBandwidth });
    const own = side === src ? transport.parameters.source : transport.parameters.destination;
    if (Object.keys(own).length) await transportStep(run, transport, side, side.qmp.execute('migrate-set-parameters', own));
  }
  // The destination's post-copy latency statistics (upstream's gate, heca's QEMU too).
  const latencyStats = policy.postcopy && (await enableBlocktime(dst, run.ctx.qemu));
  await setHecaParameters(src, run, policy);
  const uri = `tcp:${link.dstAddr}:${run.ctx.port}`;
  await dst.qmp.execute('migrate-incoming', { uri });

  let onReset: (why: string) => void = () => {};
  const resetSeen = new Promise<never>((_, rej) => {
    onReset = (why) => rej(new HecaError(why, { why: 'the guest lost its state: its workload restarted or stopped, so the pages cannot be checked', fix: `see the console logs and registers in ${run.logs}` }));
  });
  resetSeen.catch(() => undefined);
  const m: Migration = { run, policy, src, dst, link, uri, latencyStats, events: {}, reset: undefined, resetSeen, wire0: { tx: 0, rx: 0 }, cancelled: false, transport, faults: faultPlan(run.sc), injected: 0 };

  const us = (e: QmpEvent) => e.timestamp.seconds * 1e6 + e.timestamp.microseconds;
  // QMP timestamps come from each QEMU's host clock: one clock on the local
  // testbed; on the nested one A's and B's clocks differ, so time the events
  // as they arrive here instead (adds the forwarding jitter, ~1 ms).
  const sameClock = link.kind === 'local';
  const nowUs = () => Math.round(performance.timeOrigin * 1000 + performance.now() * 1000);
  src.qmp.on('STOP', (e) => {
    m.events.stopUs ??= sameClock ? us(e) : nowUs();
    mark(run, 'stop');
  });
  dst.qmp.on('RESUME', (e) => {
    m.events.resumeUs ??= sameClock ? us(e) : nowUs();
    mark(run, 'resume-dest');
  });
  // A guest reset (a triple fault, a panic with reboot) loses the workload's
  // state: the run fails, with the side and QEMU's reason, never a timeout.
  // The VMs run with -action reboot=shutdown,shutdown=pause: QEMU reports
  // SHUTDOWN and keeps the guest frozen, so its registers are saved first.
  for (const [side, dir] of [[src, 'src'], [dst, 'dst']] as const) {
    const seen = (e: QmpEvent): void => {
      // Our own stop (quit, SIGTERM at teardown) is not the guest's doing.
      const reason = guestResetReason(e);
      if (m.reset || reason === undefined) return;
      const when = run.t0 ? `${((Date.now() - run.t0) / 1000).toFixed(1)} s after migrate` : 'before migrate';
      m.reset = `the guest was ${e.event === 'RESET' ? 'reset' : 'reset or powered off'} on the ${side.name} ${when} (${e.event}, reason: ${reason})`;
      const why = m.reset;
      void saveRegisters(side, join(run.logs, dir, 'registers.txt')).then((regs) => onReset(`${why}${regs ? `; CPU then: ${regs}` : ''}`));
    };
    side.qmp.on('RESET', seen);
    side.qmp.on('SHUTDOWN', seen);
  }
  // The switch as the source made it, whoever asked for it.
  // Once: a recovered post-copy goes postcopy-active again (fault.ts marks that 'resumed').
  src.qmp.on('MIGRATION', (e) => {
    if (e.data?.status === 'postcopy-active' && !run.rec.phases.some((p) => p.name === 'postcopy-switch')) mark(run, 'postcopy-switch');
  });
  return m;
}
