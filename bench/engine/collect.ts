/**
 * Phase 4, collect: fill the run's record from what was observed (the
 * source's final query-migrate, the link's counters, the event times, the
 * destination's post-copy statistics) and decide the run's status; and, at
 * the end of every run, the guest's own timeline from its progress lines.
 */
import { HecaError } from '../../tools/core/errors.ts';
import type { MigrationInfo } from '../../tools/qmp/types.ts';
import type { Destination, OpsSample, PostcopyLatency, RunRecord } from '../results/schema.ts';
import type { GuestMessage, Received } from '../guest/channel.ts';
import type { Migration } from './arrange.ts';
import type { Outcome } from './observe.ts';
import { faultText } from '../scenario/faults.ts';
import { mark } from './run.ts';
import { counterDelta } from '../testbed/nested/rxe.ts';

/**
 * Record what the migration did; returns where the guest runs now ('dst'
 * when it completed, 'src' when it was cancelled). A failed migration
 * throws, its figures recorded.
 */
export async function collect(m: Migration, o: Outcome): Promise<'src' | 'dst'> {
  const { rec, sc } = m.run;
  rec.query_migrate = o.final;
  fillFromInfo(rec, o.final.ram ? o.final : { ...o.final, ram: o.lastWithRam.ram });
  rec.bytes.wire = o.wire.tx - m.wire0.tx + (o.wire.rx - m.wire0.rx);
  if (m.rdma0 && o.rdma) rec.rdma_counters = { source: counterDelta(m.rdma0.src, o.rdma.src), destination: counterDelta(m.rdma0.dst, o.rdma.dst) };
  const dest: Destination = { name: 'dst', downtime_host_ms: null };
  rec.destinations = [dest];
  recordRdma(rec, 'source', o.final['postcopy-rdma']);
  if (o.final.status === 'completed') {
    const { stopUs, resumeUs } = m.events;
    rec.downtime_host_ms = stopUs !== undefined && resumeUs !== undefined ? Math.round((resumeUs - stopUs) / 100) / 10 : null;
    dest.downtime_host_ms = rec.downtime_host_ms;
    // The incoming migration has completed (observe waited): the destination answers.
    const dstInfo = await m.dst.qmp.execute('query-migrate');
    recordRdma(rec, 'destination', dstInfo['postcopy-rdma']);
    const latency = m.latencyStats ? postcopyLatency(dstInfo) : undefined;
    if (latency) rec.postcopy_latency = dest.postcopy_latency = latency;
    rec.status = 'completed';
    notInjected(m);
    return 'dst';
  }
  if (o.final.status === 'cancelled') {
    rec.status = 'not-converged';
    rec.reason = `pre-copy did not converge within ${sc.converge_timeout_s} s (${fmtBytes(o.lastWithRam.ram?.remaining ?? 0)} still dirty, ${fmtBytes(o.lastWithRam.ram?.transferred ?? 0)} sent)`;
    return 'src'; // the guest goes on running on the source
  }
  mark(m.run, 'failed');
  rec.reason = `migration failed: ${o.final['error-desc'] ?? 'no error description'}`;
  throw new HecaError(rec.reason, { why: 'QEMU reported status failed', details: `source:\n${m.src.logTail()}\ndestination:\n${m.dst.logTail()}` });
}

/** The `postcopy-rdma` member of one side's query-migrate, verbatim, when QEMU reports one. */
export function recordRdma(rec: RunRecord, side: 'source' | 'destination', member: unknown): void {
  if (member === undefined || member === null) return;
  rec.postcopy_rdma = { ...rec.postcopy_rdma, [side]: member };
}

/** Faults never due before the migration completed: recorded as not injected (the run then fails, see failIfNotInjected). */
function notInjected(m: Migration): void {
  const pending = m.faults.pending();
  if (pending.length === 0) return;
  const sw = m.run.rec.phases.find((p) => p.name === 'postcopy-switch')?.at_ms;
  const done = m.run.rec.phases.find((p) => p.name === 'completed')?.at_ms;
  const when = sw !== undefined && done !== undefined ? `${((done - sw) / 1000).toFixed(1)} s after post-copy started` : 'before it was due';
  m.run.rec.recovery = {
    fault: pending.map(faultText).join(', '),
    outcome: 'not-injected',
    reason: `the migration completed ${when}, before ${pending.map(faultText).join(', ')} was due: use a slower --link or more --mem`,
    cut_at_ms: null,
    restored_at_ms: null,
    paused_at_ms: { source: null, destination: null },
    time_to_pause_ms: null,
    time_paused_ms: null,
    resumed_at_ms: null,
  };
}

/** A run whose fault was never injected is not the experiment asked for: it fails, after its pages were checked. */
export function failIfNotInjected(rec: RunRecord): void {
  if (rec.recovery?.outcome !== 'not-injected' || rec.status !== 'completed') return;
  rec.status = 'failed';
  rec.reason = `fault not injected: ${rec.recovery.reason}`;
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

/** Ticks from both sides, relative to `migrate` at `t0` (0: it never came), plus the stall figures. */
export function collectTimeline(rec: RunRecord, sides: { side: 'src' | 'dst'; messages: readonly Received[] }[], t0: number): void {
  const samples: OpsSample[] = [];
  const hostTimes: number[] = [];
  for (const { side, messages } of sides) {
    for (const m of messages) {
      if (m.msg.t !== 'tick') continue;
      const tick = m.msg as GuestMessage & { ops: number; interval_ms: number; max_stall_us: number; threads?: unknown };
      const threads = Array.isArray(tick.threads) && tick.threads.every((n) => typeof n === 'number') ? { threads: tick.threads as number[] } : {};
      samples.push({ t_ms: m.hostTime - t0, ops: tick.ops, interval_ms: tick.interval_ms, max_stall_ms: tick.max_stall_us / 1000, side, ...threads });
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
