/**
 * The engine: one migration of the heca guest from a source QEMU to a
 * destination QEMU on the local testbed, driven through QMP the way a
 * management layer drives upstream QEMU, ending with the guest's page-by-page
 * integrity check. Produces one RunRecord; never leaves a QEMU, namespace or
 * veth behind.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pollUntil } from '../../tools/core/poll.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { debug, info, warn } from '../../tools/core/log.ts';
import type { MigrateSetParameters, MigrationInfo, QmpEvent } from '../../tools/qmp/types.ts';
import { onCleanup } from '../testbed/cleanup.ts';
import type { GuestMessage } from '../guest/channel.ts';
import type { LinkProfileName, OpsSample, PhaseMark, PostcopyLatency, RunRecord, ScenarioParams, WorkloadParams } from '../results/schema.ts';
import { QmpCommandError } from '../../tools/qmp/errors.ts';
import { localRunTestbed } from '../testbed/local/testbed.ts';
import type { RunTestbed } from '../testbed/types.ts';
import { logTail, Vm, type VmConfig } from '../guest/vm.ts';

export interface RunContext {
  qemu: string;
  accel: 'tcg' | 'kvm';
  link: LinkProfileName;
  kernel: string;
  initrd: string;
  /** Builds the kernel command line for a workload. */
  append: (w: WorkloadParams) => string;
  outDir: string;
  /** Seconds of guest activity recorded before `migrate`. */
  warmupS: number;
  /** Migration port on the destination. */
  port: number;
  /**
   * Back guest RAM with shared files in this directory (e.g. /dev/shm) instead
   * of anonymous memory; they are removed after the run. Tests use it to reach
   * into guest memory from the host.
   */
  memDir?: string;
  /** Called at fixed points of a run; tests use them to inject faults. */
  hooks?: RunHooks;
  /** Where the two QEMUs run (default: a fresh local testbed per run, shaped to `link`). */
  testbed?: () => Promise<RunTestbed>;
}

export interface RunHooks {
  /** Right after `migrate` was accepted (and, for post-copy, the switch was asked for). */
  migrating?: (src: Vm, dst: Vm) => Promise<void> | void;
  /** After the migration ended, before the integrity check, on the VM that runs the guest. */
  beforeCheck?: (running: Vm, side: 'src' | 'dst') => Promise<void> | void;
}

const POLL_MS = 200;
const FINISH_TIMEOUT_MS = 10 * 60_000;

export async function runOnce(ctx: RunContext, sc: ScenarioParams, w: WorkloadParams, repeat: number): Promise<RunRecord> {
  const logsRel = join('logs', `${sc.name}-r${repeat}`);
  const logs = join(ctx.outDir, logsRel);
  rmSync(logs, { recursive: true, force: true });
  mkdirSync(join(logs, 'src'), { recursive: true });
  mkdirSync(join(logs, 'dst'), { recursive: true });

  const rec: RunRecord = {
    repeat,
    status: 'failed',
    total_time_ms: null,
    downtime_ms: null,
    setup_time_ms: null,
    bytes: { precopy: 0, downtime: 0, postcopy: 0, wire: 0, ram_transferred: 0 },
    pages: { normal: 0, zero: 0, postcopy_requests: 0, dirty_sync_count: 0 },
    guest: { max_stall_ms: null, max_gap_host_ms: null, ops_timeline: [] },
    integrity: { ok: false, pages_checked: 0, bad_pages: 0 },
    phases: [],
    logs_dir: logsRel,
  };

  let bed: RunTestbed | undefined;
  let src: Vm | undefined;
  let dst: Vm | undefined;
  const memFiles: string[] = [];
  const teardown = async () => {
    await Promise.allSettled([src?.stop(), dst?.stop()]);
    await bed?.destroy();
    for (const f of memFiles) rmSync(f, { force: true });
  };
  const unregister = onCleanup(teardown);
  let t0 = 0;
  try {
    bed = await (ctx.testbed ?? (() => localRunTestbed(ctx.link)))();
    const base: Omit<VmConfig, 'name' | 'dir'> = {
      accel: ctx.accel,
      memMib: w.mem_mib,
      kernel: ctx.kernel,
      initrd: ctx.initrd,
      append: ctx.append(w),
    };
    const theBed = bed;
    const memFile = (side: string) => (ctx.memDir ? { memFile: join(ctx.memDir, `heca-${process.pid}-${sc.name}-r${repeat}-${side}.ram`) } : {});
    const dstCfg: VmConfig = { ...base, name: 'heca-dst', dir: join(logs, 'dst'), incoming: true, ...memFile('dst'), ...theBed.vmExtra('dst') };
    const srcCfg: VmConfig = { ...base, name: 'heca-src', dir: join(logs, 'src'), ...memFile('src'), ...theBed.vmExtra('src') };
    memFiles.push(...[dstCfg.memFile, srcCfg.memFile].filter((f): f is string => f !== undefined));
    dst = await Vm.start(ctx.qemu, dstCfg, theBed.spawn('dst'));
    src = await Vm.start(ctx.qemu, srcCfg, theBed.spawn('src'));
    const S = src;
    const D = dst;

    info(`  ${sc.name} r${repeat}: booting the guest (${w.mem_mib} MiB, ${w.name})`);
    const ready = await S.guard(S.channel.waitFor('ready', { timeoutMs: 180_000 }), 'guest boot');
    debug(`guest ready: ${JSON.stringify(ready)}`);
    await S.guard(sleep(ctx.warmupS * 1000), 'warm-up');

    const postcopy = sc.mode !== 'precopy';
    const caps = [
      { capability: 'postcopy-ram', state: postcopy },
      { capability: 'events', state: true },
    ];
    for (const vm of [S, D]) {
      await vm.qmp.execute('migrate-set-capabilities', { capabilities: caps });
      // The link, not QEMU's default rate limit, must be the bottleneck.
      await vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 * 1024 * 1024 });
    }
    // The destination's post-copy latency statistics (upstream's gate, heca's QEMU too).
    const latencyStats = postcopy && (await enableBlocktime(D, ctx.qemu));
    const qemuSwitch = sc.mode !== 'precopy' && sc.switchover === 'qemu';
    await setSwitchover(S, sc);
    const uri = `tcp:${bed.dstAddr}:${ctx.port}`;
    await D.qmp.execute('migrate-incoming', { uri });

    const mark = (name: PhaseMark['name']) => rec.phases.push({ at_ms: Date.now() - t0, name });
    let stopUs: number | undefined;
    let resumeUs: number | undefined;
    const us = (e: QmpEvent) => e.timestamp.seconds * 1e6 + e.timestamp.microseconds;
    // QMP timestamps come from each QEMU's host clock: one clock on the local
    // testbed; on the nested one A's and B's clocks differ, so time the events
    // as they arrive here instead (adds the forwarding jitter, ~1 ms).
    const sameClock = bed.kind === 'local';
    const nowUs = () => Math.round(performance.timeOrigin * 1000 + performance.now() * 1000);
    S.qmp.on('STOP', (e) => {
      stopUs ??= sameClock ? us(e) : nowUs();
      mark('stop');
    });
    D.qmp.on('RESUME', (e) => {
      resumeUs ??= sameClock ? us(e) : nowUs();
      mark('resume-dest');
    });
    // A guest reset (a triple fault, a panic with reboot) loses the workload's
    // state: the run fails, with the side and QEMU's reason, never a timeout.
    // The VMs run with -action reboot=shutdown,shutdown=pause: QEMU reports
    // SHUTDOWN and keeps the guest frozen, so its registers are saved first.
    let reset: string | undefined;
    let onReset: (why: string) => void = () => {};
    const resetSeen = new Promise<never>((_, rej) => {
      onReset = (why) => rej(new HecaError(why, { why: 'the guest lost its state: its workload restarted or stopped, so the pages cannot be checked', fix: `see the console logs and registers in ${logs}` }));
    });
    resetSeen.catch(() => undefined);
    for (const [vm, side, dir] of [[S, 'source', 'src'], [D, 'destination', 'dst']] as const) {
      const seen = (e: QmpEvent): void => {
        const d = e.data as { guest?: boolean; reason?: string } | undefined;
        // Our own stop (quit, SIGTERM at teardown) is not the guest's doing.
        if (reset || (e.event === 'SHUTDOWN' && (d?.reason === 'host-qmp-quit' || d?.reason === 'host-signal'))) return;
        const when = t0 ? `${((Date.now() - t0) / 1000).toFixed(1)} s after migrate` : 'before migrate';
        reset = `the guest was ${e.event === 'RESET' ? 'reset' : 'reset or powered off'} on the ${side} ${when} (${e.event}, reason: ${d?.reason ?? 'unknown'})`;
        void saveRegisters(vm, join(logs, dir, 'registers.txt')).then((regs) => onReset(`${reset}${regs ? `; CPU then: ${regs}` : ''}`));
      };
      vm.qmp.on('RESET', seen);
      vm.qmp.on('SHUTDOWN', seen);
    }
    // The switch as the source made it, whoever asked for it.
    S.qmp.on('MIGRATION', (e) => {
      if (e.data?.status === 'postcopy-active') mark('postcopy-switch');
    });

    const wire0 = await bed.wireBytes();
    t0 = Date.now();
    mark('migrate');
    await S.qmp.execute('migrate', { uri });
    if (sc.mode === 'postcopy' && !qemuSwitch) await S.qmp.execute('migrate-start-postcopy');
    await ctx.hooks?.migrating?.(S, D);

    // Drive the migration: poll the source until it ends.
    let last: MigrationInfo = await S.qmp.execute('query-migrate');
    let switched = sc.mode === 'postcopy' || qemuSwitch;
    let cancelled = false;
    // A cancelled migration reports no RAM figures: keep the last that did.
    let lastWithRam: MigrationInfo = last;
    for (;;) {
      if (S.exited || (D.exited && !cancelled)) throw new HecaError(`QEMU ${S.exited ? 'source' : 'destination'} exited mid-migration`, { why: 'see the log tails', details: `source:\n${tailOf(S)}\ndestination:\n${tailOf(D)}`, fix: `full logs in ${logs}` });
      const st = last.status;
      if (st === 'completed' || st === 'failed' || st === 'cancelled') break;
      const elapsed = Date.now() - t0;
      if (sc.mode === 'hybrid' && !switched && st === 'active' && elapsed >= (sc.switch_after_s ?? 0) * 1000) {
        await S.qmp.execute('migrate-start-postcopy');
        switched = true;
      }
      if (sc.mode === 'precopy' && !cancelled && st === 'active' && elapsed >= sc.converge_timeout_s * 1000) {
        cancelled = true;
        info(`  ${sc.name} r${repeat}: no convergence after ${sc.converge_timeout_s} s: cancelling`);
        await S.qmp.execute('migrate_cancel');
      }
      if (elapsed > FINISH_TIMEOUT_MS) throw new HecaError(`migration still ${st} after ${FINISH_TIMEOUT_MS / 1000} s`, { why: 'it made no end', fix: `see ${logs}` });
      await sleep(POLL_MS);
      last = await S.guard(S.qmp.execute('query-migrate'), 'migration');
      if (last.ram) lastWithRam = last;
    }
    const wire1 = await bed.wireBytes();
    rec.query_migrate = last;
    fillFromInfo(rec, last.ram ? last : { ...last, ram: lastWithRam.ram });
    rec.bytes.wire = wire1.tx - wire0.tx + (wire1.rx - wire0.rx);

    let checkVm: Vm;
    if (last.status === 'completed') {
      mark('completed');
      // Post-copy: the destination finishes when the last page has arrived.
      await D.guard(waitDestDone(D), 'the end of the incoming migration');
      if (resumeUs === undefined) await D.qmp.waitEvent('RESUME', { timeoutMs: 10_000 }).catch(() => undefined);
      rec.downtime_host_ms = stopUs !== undefined && resumeUs !== undefined ? Math.round((resumeUs - stopUs) / 100) / 10 : null;
      const latency = latencyStats ? postcopyLatency(await D.qmp.execute('query-migrate')) : undefined;
      if (latency) rec.postcopy_latency = latency;
      checkVm = D;
      rec.status = 'completed';
    } else if (last.status === 'cancelled') {
      rec.status = 'not-converged';
      rec.reason = `pre-copy did not converge within ${sc.converge_timeout_s} s (${fmtBytes(lastWithRam.ram?.remaining ?? 0)} still dirty, ${fmtBytes(lastWithRam.ram?.transferred ?? 0)} sent)`;
      checkVm = S; // the guest goes on running on the source
    } else {
      mark('failed');
      rec.reason = `migration failed: ${last['error-desc'] ?? 'no error description'}`;
      throw new HecaError(rec.reason, { why: 'QEMU reported status failed', details: `source:\n${tailOf(S)}\ndestination:\n${tailOf(D)}` });
    }

    // The integrity check: every page of the arena, on the side now running the guest.
    await ctx.hooks?.beforeCheck?.(checkVm, checkVm === D ? 'dst' : 'src');
    if (reset) await resetSeen; // rejects once the registers are saved
    await checkVm.guard(Promise.race([checkVm.channel.waitFor('tick', { timeoutMs: 120_000 }), resetSeen]), 'waiting for the guest to run');
    const chk = await checkVm.guard(Promise.race([checkVm.channel.check({ timeoutMs: 300_000 }), resetSeen]), 'the integrity check');
    rec.integrity = { ok: chk.bad_pages === 0 && chk.pages_checked > 0, pages_checked: chk.pages_checked, bad_pages: chk.bad_pages, first_bad: chk.first_bad };
    if (!rec.integrity.ok) {
      rec.status = 'failed';
      rec.reason = `integrity check failed: ${chk.bad_pages} bad page(s) of ${chk.pages_checked} (first: ${chk.first_bad.slice(0, 8).join(', ')})`;
    }
  } catch (e) {
    rec.status = 'failed';
    rec.reason = e instanceof HecaError ? `${e.message}: ${e.why}` : String(e);
    const details = e instanceof HecaError && e.details ? `\n${e.details}` : '';
    // Where the guests were: a guest that hung at boot or stopped answering says more by its registers.
    const cpus: string[] = [];
    for (const [vm, dir] of [[src, 'src'], [dst, 'dst']] as const) {
      const file = join(logs, dir, 'registers.txt');
      if (vm && !vm.exited && !existsSync(file)) {
        const regs = await saveRegisters(vm, file);
        if (regs) cpus.push(`${dir} CPU: ${regs} (${file})`);
      }
    }
    writeFileSync(join(logs, 'error.txt'), `${rec.reason}${details}\n${cpus.map((l) => `${l}\n`).join('')}`);
  } finally {
    if (src && dst) collectTimeline(rec, src, dst, t0);
    else if (src) collectTimeline(rec, src, undefined, t0);
    writeFileSync(join(logs, 'guest-src.jsonl'), (src?.channel.messages ?? []).map((m) => JSON.stringify(m)).join('\n'));
    writeFileSync(join(logs, 'guest-dst.jsonl'), (dst?.channel.messages ?? []).map((m) => JSON.stringify(m)).join('\n'));
    await teardown();
    unregister();
  }
  debug(`run record: ${JSON.stringify({ ...rec, guest: { ...rec.guest, ops_timeline: rec.guest.ops_timeline.length } })}`);
  return rec;
}

/**
 * heca's migration parameters a scenario sets on the source: QEMU switches to
 * post-copy by itself (postcopy-switchover, postcopy-deadline), and a
 * converged pre-copy switches through post-copy (postcopy-on-convergence).
 * Undefined for the upstream scenarios.
 */
export function hecaParameters(sc: ScenarioParams): MigrateSetParameters | undefined {
  if (sc.mode === 'precopy') return undefined;
  const p: MigrateSetParameters = {};
  if (sc.switchover === 'qemu') {
    Object.assign(p, sc.mode === 'hybrid'
      ? { 'postcopy-deadline': (sc.switch_after_s ?? 0) * 1000, 'postcopy-switchover': 'deadline' }
      : { 'postcopy-switchover': 'immediate' });
  }
  if (sc.postcopy_on_convergence) p['postcopy-on-convergence'] = true;
  return Object.keys(p).length ? p : undefined;
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

/** Set heca's parameters of the scenario, if any (hecaParameters); a QEMU without them fails the run up front. */
async function setSwitchover(S: Vm, sc: ScenarioParams): Promise<void> {
  const params = hecaParameters(sc);
  if (!params) return;
  try {
    await S.qmp.execute('migrate-set-parameters', params);
  } catch (e) {
    const missing = e instanceof QmpCommandError ? missingHecaParameter(e.desc) : undefined;
    if (e instanceof QmpCommandError && missing) {
      throw new HecaError(`scenario ${sc.name} needs heca's QEMU patches`, {
        why: `this QEMU has no ${missing} parameter (${e.desc})`,
        fix: 'build the patched QEMU (make build) or unset $HECA_QEMU; upstream-only scenarios: precopy, postcopy, mgmt-hybrid10, mgmt-hybrid60',
      });
    }
    throw e;
  }
}

const refusedBlocktime = new Set<string>();

/**
 * Enable the destination's postcopy-blocktime capability, the gate of its
 * post-copy latency statistics. A QEMU that refuses it is no failure: the run
 * records no latency (said once per QEMU binary).
 */
async function enableBlocktime(D: Vm, qemu: string): Promise<boolean> {
  try {
    await D.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-blocktime', state: true }] });
    return true;
  } catch (e) {
    if (!(e instanceof QmpCommandError)) throw e;
    if (!refusedBlocktime.has(qemu)) warn(`the destination QEMU refuses capability postcopy-blocktime (${e.desc}): no post-copy fault latency is recorded`);
    refusedBlocktime.add(qemu);
    return false;
  }
}

/**
 * The destination's post-copy statistics in result.json's shape, from its
 * query-migrate: upstream QEMU 10.1's members (present with the
 * postcopy-blocktime capability) and heca's three (null when absent).
 * Undefined when there is no latency distribution: the gate is off, post-copy
 * never started, or the QEMU predates these statistics.
 */
export function postcopyLatency(i: MigrationInfo): PostcopyLatency | undefined {
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map((x) => num(x) ?? 0) : []);
  const dist = i['postcopy-latency-dist'];
  const mean = num(i['postcopy-latency']);
  if (!Array.isArray(dist) || mean === null) return undefined;
  const latency_dist = nums(dist);
  return {
    faults: latency_dist.reduce((a, b) => a + b, 0),
    latency_mean_ns: mean,
    latency_max_ns: num(i['postcopy-latency-max']),
    latency_dist,
    vcpu_latency_ns: nums(i['postcopy-vcpu-latency']),
    non_vcpu_latency_ns: num(i['postcopy-non-vcpu-latency']) ?? 0,
    demand_pages: num(i['postcopy-demand-pages']),
    background_pages: num(i['postcopy-background-pages']),
    blocktime_ms: num(i['postcopy-blocktime']) ?? 0,
    vcpu_blocktime_ms: nums(i['postcopy-vcpu-blocktime']),
  };
}

/**
 * Save `info registers` of a frozen guest to `file` and return the line that
 * says most (RIP, CR0/2/3/4, EFER), or '' when QEMU cannot answer in 5 s.
 */
async function saveRegisters(vm: Vm, file: string): Promise<string> {
  try {
    const text = await Promise.race([
      vm.qmp.execute('human-monitor-command', { 'command-line': 'info registers' }),
      sleep(5000).then(() => undefined),
    ]);
    if (typeof text !== 'string') return '';
    writeFileSync(file, text);
    return registerSummary(text);
  } catch (e) {
    debug(`registers of ${vm.config.name}: ${(e as Error).message}`);
    return '';
  }
}

/** "RIP=... CR0=... CR2=... CR3=... CR4=... EFER=..." from QEMU's `info registers` (EIP outside long mode). */
export function registerSummary(text: string): string {
  const pick = (name: string): string[] => {
    const v = new RegExp(`\\b${name}=([0-9a-fA-F]+)`).exec(text)?.[1];
    return v ? [`${name}=${v}`] : [];
  };
  const ip = pick('RIP');
  return [...(ip.length ? ip : pick('EIP')), ...['CR0', 'CR2', 'CR3', 'CR4', 'EFER'].flatMap(pick)].join(' ');
}

function tailOf(vm: Vm | undefined): string {
  return vm ? logTail(vm.logFile, 15) : '(not started)';
}

async function waitDestDone(d: Vm): Promise<void> {
  let status = '?';
  await pollUntil(async () => {
    const i: MigrationInfo = await d.qmp.execute('query-migrate');
    status = i.status ?? '?';
    if (i.status === 'failed') throw new HecaError('the destination reports the incoming migration failed', { why: i['error-desc'] ?? 'no description', details: logTail(d.logFile) });
    return i.status === 'completed' ? true : undefined;
  }, {
    timeoutMs: FINISH_TIMEOUT_MS,
    everyMs: POLL_MS,
    timeout: () => new HecaError('the destination did not finish the incoming migration', { why: `still ${status} after ${FINISH_TIMEOUT_MS / 1000} s` }),
  });
}

export function fillFromInfo(rec: RunRecord, i: MigrationInfo): void {
  rec.total_time_ms = i['total-time'] ?? null;
  rec.downtime_ms = i.downtime ?? null;
  rec.setup_time_ms = i['setup-time'] ?? null;
  const r = i.ram;
  if (r) {
    rec.bytes.precopy = r['precopy-bytes'] ?? 0;
    rec.bytes.downtime = r['downtime-bytes'] ?? 0;
    rec.bytes.postcopy = r['postcopy-bytes'] ?? 0;
    rec.bytes.ram_transferred = r.transferred ?? 0;
    rec.pages.normal = r.normal ?? 0;
    rec.pages.zero = r.duplicate ?? 0;
    rec.pages.postcopy_requests = r['postcopy-requests'] ?? 0;
    rec.pages.dirty_sync_count = r['dirty-sync-count'] ?? 0;
  }
}

/** Ticks from both sides, relative to `migrate`, plus the stall figures. */
export function collectTimeline(rec: RunRecord, src: Vm, dst: Vm | undefined, t0: number): void {
  const samples: OpsSample[] = [];
  const hostTimes: number[] = [];
  for (const [side, vm] of [['src', src], ['dst', dst]] as const) {
    for (const m of vm?.channel.messages ?? []) {
      if (m.msg.t !== 'tick') continue;
      const tick = m.msg as GuestMessage & { ops: number; interval_ms: number; max_stall_us: number };
      samples.push({ t_ms: m.hostTime - t0, ops: tick.ops, interval_ms: tick.interval_ms, max_stall_ms: tick.max_stall_us / 1000, side });
      if (t0 && m.hostTime >= t0) hostTimes.push(m.hostTime);
    }
  }
  samples.sort((a, b) => a.t_ms - b.t_ms);
  rec.guest.ops_timeline = t0 ? samples : [];
  const during = samples.filter((s) => s.t_ms >= 0);
  rec.guest.max_stall_ms = during.length ? Math.max(...during.map((s) => s.max_stall_ms)) : null;
  hostTimes.sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < hostTimes.length; i++) gap = Math.max(gap, hostTimes[i]! - hostTimes[i - 1]!);
  rec.guest.max_gap_host_ms = hostTimes.length > 1 ? gap : null;
}

function fmtBytes(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
