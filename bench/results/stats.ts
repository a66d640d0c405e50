/**
 * Statistics over runs: per-scenario summaries (median, min, max over the
 * completed runs) and ratios of each scenario to a baseline, paired by
 * repeat (repeats are interleaved, so run r of every scenario saw the same
 * moment of a noisy machine).
 */
import { progressRatio } from './progress.ts';
import type { Comparison, RunRecord, ScenarioResult, SlowWrites, Summary } from './schema.ts';

export function median(xs: readonly number[]): number | null {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile (q in [0,1]); null for no data. */
export function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * A quantile of the remote fault latency, µs, from postcopy-latency-dist
 * (element N counts faults in [2^N, 2^(N+1)) µs; element 0 also those under
 * 1 µs): the bucket that holds it, interpolated geometrically inside it, so
 * it is an estimate within that factor-2 bucket. Null without faults.
 */
export function distQuantileUs(dist: readonly number[], q: number): number | null {
  const total = dist.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const target = q * total;
  let before = 0;
  for (let i = 0; i < dist.length; i++) {
    const c = dist[i] ?? 0;
    if (c > 0 && before + c >= target) {
      const lo = i === 0 ? 0.5 : 2 ** i;
      const hi = 2 ** (i + 1);
      return lo * (hi / lo) ** Math.min(1, Math.max(0, (target - before) / c));
    }
    before += c;
  }
  return 2 ** dist.length;
}

/** The median remote fault latency of a run, µs (distQuantileUs); null without post-copy statistics. */
export function faultLatencyP50Us(r: RunRecord): number | null {
  return r.postcopy_latency?.faults ? distQuantileUs(r.postcopy_latency.latency_dist, 0.5) : null;
}

/** The metrics summarized and compared, each read from one run. */
export const METRICS: Readonly<Record<string, { label: string; unit: 'ms' | 'us' | 'bytes' | 'ratio' | 'count'; get: (r: RunRecord, memMib: number) => number | null | undefined }>> = {
  total_time_ms: { label: 'total time', unit: 'ms', get: (r) => r.total_time_ms },
  downtime_ms: { label: 'downtime (QEMU)', unit: 'ms', get: (r) => r.downtime_ms },
  downtime_host_ms: { label: 'downtime (STOP→RESUME)', unit: 'ms', get: (r) => r.downtime_host_ms },
  setup_time_ms: { label: 'setup time', unit: 'ms', get: (r) => r.setup_time_ms },
  wire_bytes: { label: 'bytes on the wire', unit: 'bytes', get: (r) => r.bytes.wire },
  wire_over_ram: { label: 'wire / guest RAM', unit: 'ratio', get: (r, mem) => (mem > 0 ? r.bytes.wire / (mem * 1048576) : null) },
  precopy_bytes: { label: 'pre-copy bytes', unit: 'bytes', get: (r) => r.bytes.precopy },
  downtime_bytes: { label: 'downtime bytes', unit: 'bytes', get: (r) => r.bytes.downtime },
  postcopy_bytes: { label: 'post-copy bytes', unit: 'bytes', get: (r) => r.bytes.postcopy },
  ram_transferred_bytes: { label: 'RAM bytes sent', unit: 'bytes', get: (r) => r.bytes.ram_transferred },
  pages_normal: { label: 'normal pages', unit: 'count', get: (r) => r.pages.normal },
  postcopy_requests: { label: 'post-copy requests', unit: 'count', get: (r) => r.pages.postcopy_requests },
  max_stall_ms: { label: 'guest max stall', unit: 'ms', get: (r) => r.guest.max_stall_ms },
  postcopy_progress: { label: 'guest page writes in post-copy ÷ before', unit: 'ratio', get: progressRatio },
  // The destination's post-copy statistics (postcopy_latency): QEMU counts in ns, shown in µs.
  postcopy_faults: { label: 'post-copy remote faults (dst)', unit: 'count', get: (r) => r.postcopy_latency?.faults },
  postcopy_latency_mean_us: { label: 'post-copy fault latency, mean', unit: 'us', get: (r) => (r.postcopy_latency?.faults ? r.postcopy_latency.latency_mean_ns / 1000 : null) },
  postcopy_latency_p50_us: { label: 'post-copy fault latency, median (from the distribution)', unit: 'us', get: faultLatencyP50Us },
  postcopy_latency_max_us: { label: 'post-copy fault latency, max', unit: 'us', get: (r) => (r.postcopy_latency?.faults && r.postcopy_latency.latency_max_ns !== null ? r.postcopy_latency.latency_max_ns / 1000 : null) },
  postcopy_blocktime_ms: { label: 'post-copy blocktime (all vCPUs blocked)', unit: 'ms', get: (r) => r.postcopy_latency?.blocktime_ms },
  postcopy_demand_pages: { label: 'post-copy pages on demand', unit: 'count', get: (r) => r.postcopy_latency?.demand_pages },
  postcopy_background_pages: { label: 'post-copy pages in background', unit: 'count', get: (r) => r.postcopy_latency?.background_pages },
};

/**
 * Latency CDF from summed postcopy-latency-dist distributions (element N:
 * faults in [2^N, 2^(N+1)) µs): [2^(N+1) µs, fraction of faults below it].
 */
export function latencyCdf(dists: readonly (readonly number[])[]): [number, number][] {
  const len = Math.max(0, ...dists.map((h) => h.length));
  const sum = Array.from({ length: len }, (_, i) => dists.reduce((a, h) => a + (h[i] ?? 0), 0));
  const total = sum.reduce((a, b) => a + b, 0);
  if (total === 0) return [];
  let acc = 0;
  return sum.map((c, i) => {
    acc += c;
    return [2 ** (i + 1), acc / total] as [number, number];
  });
}

function stat(values: number[]): Summary[string] {
  if (values.length === 0) return { median: null, min: null, max: null, n: 0 };
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

function count(n: number): Summary[string] {
  return { median: n, min: n, max: n, n: 1 };
}

/** Summary over the completed runs, plus run counts by status. */
export function summarize(runs: readonly RunRecord[], memMib: number): Summary {
  const done = runs.filter((r) => r.status === 'completed');
  const out: Summary = {
    runs: count(runs.length),
    completed: count(done.length),
    not_converged: count(runs.filter((r) => r.status === 'not-converged').length),
    failed: count(runs.filter((r) => r.status === 'failed').length),
  };
  for (const [name, m] of Object.entries(METRICS)) {
    const vals = done.map((r) => m.get(r, memMib)).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    out[name] = stat(vals);
  }
  return out;
}

/** One scenario against the baseline: ratios per metric, their spread, and how many repeats paired. */
export interface PairRatios {
  ratios: Record<string, number | null>;
  spread: Record<string, [number, number] | null>;
  pairs: number;
}

/**
 * `s` against `base`, runs paired by repeat: for every metric, the ratio
 * s/base of runs with the same repeat number (both completed), then the
 * median and the range of those ratios. Only for runs of one invocation,
 * where repeat r of every scenario ran at the same moment of a noisy machine.
 */
export function pairedRatios(s: ScenarioResult, base: ScenarioResult): PairRatios {
  const out: PairRatios = { ratios: {}, spread: {}, pairs: 0 };
  for (const [name, m] of Object.entries(METRICS)) {
    const rs: number[] = [];
    for (const r of s.runs) {
      const b = base.runs.find((x) => x.repeat === r.repeat);
      if (!b || r.status !== 'completed' || b.status !== 'completed') continue;
      const v = m.get(r, s.workload.mem_mib);
      const bv = m.get(b, base.workload.mem_mib);
      if (typeof v === 'number' && typeof bv === 'number' && bv !== 0) rs.push(v / bv);
    }
    out.ratios[name] = median(rs);
    out.spread[name] = rs.length ? [Math.min(...rs), Math.max(...rs)] : null;
    out.pairs = Math.max(out.pairs, rs.length);
  }
  return out;
}

/** `s` against `base` by their medians: for runs of different invocations, which cannot be paired. */
export function medianRatios(s: ScenarioResult, base: ScenarioResult): Record<string, number | null> {
  const row: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(s.summary)) {
    const bv = base.summary[k]?.median;
    row[k] = v.median !== null && typeof bv === 'number' && bv !== 0 ? v.median / bv : null;
  }
  return row;
}

/** Every scenario of one invocation against the baseline, paired by repeat (pairedRatios). */
export function compareScenarios(scenarios: readonly ScenarioResult[], baselineIndex: number): Comparison {
  const base = scenarios[baselineIndex];
  if (!base) throw new RangeError(`no scenario at index ${baselineIndex}`);
  const cmp: Comparison = { baseline: base.scenario.id, ratios: {}, spread: {}, pairs: {} };
  for (const s of scenarios) {
    if (s === base) continue;
    const p = pairedRatios(s, base);
    cmp.ratios[s.scenario.id] = p.ratios;
    cmp.spread![s.scenario.id] = p.spread;
    cmp.pairs![s.scenario.id] = p.pairs;
  }
  return cmp;
}

/** The baseline for ratios: the first scenario with a completed run (pre-copy may not converge). */
export function baselineIndex(scenarios: readonly ScenarioResult[]): number {
  const i = scenarios.findIndex((s) => s.runs.some((r) => r.status === 'completed'));
  return i < 0 ? 0 : i;
}

/**
 * A quantile of the guest's slow page writes (SlowWrites.buckets: [lower
 * bound ns, count], quarter-octave buckets by duration), µs, counting only
 * buckets from `fromNs` up: the bucket that holds it, interpolated
 * geometrically up to the next bucket's bound. Null without such writes.
 */
export function slowQuantileUs(buckets: readonly (readonly [number, number])[], q: number, fromNs = 0): number | null {
  const kept = buckets.filter(([lo]) => lo >= fromNs).sort((a, b) => a[0] - b[0]);
  const total = kept.reduce((a, [, n]) => a + n, 0);
  if (!total) return null;
  const want = q * total;
  let seen = 0;
  for (const [lo, n] of kept) {
    if (seen + n >= want && n > 0) {
      // The next bucket's bound: a quarter octave up (5/4, 6/5, 7/6 or 8/7 of this one).
      const quarter = lo / 2 ** Math.floor(Math.log2(lo)) * 4;
      const hi = lo * (Math.round(quarter) + 1) / Math.round(quarter);
      return (lo * (hi / lo) ** ((want - seen) / n)) / 1000;
    }
    seen += n;
  }
  return kept.at(-1)![0] / 1000;
}

/**
 * The slow page writes a migration added to the guest's: per bucket, those
 * seen while migrating less those the guest had before at the same rate per
 * unit of time (timer interrupts, the host's own scheduling), never below 0.
 * What is left is, mostly, writes that waited for a page fault. (An
 * approximation: noise that struck a write that also faulted lands in a
 * longer bucket, and is still subtracted from its own.)
 */
export function addedSlowWrites(before: SlowWrites, during: SlowWrites): [number, number][] {
  const scale = before.span_ms > 0 ? during.span_ms / before.span_ms : 0;
  const base = new Map(before.buckets.map(([lo, n]) => [lo, n] as const));
  return during.buckets
    .map(([lo, n]): [number, number] => [lo, Math.max(0, Math.round(n - (base.get(lo) ?? 0) * scale))])
    .filter(([, n]) => n > 0);
}
