/**
 * Did a result get worse than a baseline beyond what the machine's noise
 * explains? (bench/compare.ts --fail-on-regression; make nightly.)
 *
 * The rule, per scenario (matched by id: equal ids are the same experiment)
 * and per judged metric (REGRESSION_METRICS: total time, downtime STOP→RESUME,
 * bytes on the wire, mean post-copy fault latency; for all of them higher is
 * worse), over the completed runs of each side:
 *
 *   spread     = max − min of that side's runs
 *   regression ⇔ new median − old median > max(old spread, new spread)
 *
 * A difference no larger than the wider of the two spreads is what repeats
 * of one invocation already differ by, so it is not called a regression. A
 * metric is judged only when both sides have at least MIN_RUNS completed
 * runs with a value (one run has no spread); it is absent (no post-copy, an
 * upstream QEMU without the statistics) on either side: not judged. A
 * scenario that completed at least one run in the baseline and none now has
 * regressed whatever its metrics. Results from different set-ups (COMPARABLE:
 * accelerator, L1 accelerator, testbed, link, host CPUs; per scenario the
 * workload and guest RAM) are not judged at all: their absolute figures do
 * not compare. The QEMU build and the kernels may differ: catching what they
 * change is the point.
 */
import type { BenchResult, Environment, ScenarioResult } from './schema.ts';
import { median, METRICS } from './stats.ts';

/** The metrics judged, each "higher is worse". */
export const REGRESSION_METRICS = ['total_time_ms', 'downtime_host_ms', 'wire_bytes', 'postcopy_latency_mean_us'] as const;
export type RegressionMetric = (typeof REGRESSION_METRICS)[number];

/** Fewer completed runs than this on either side: the metric is not judged (no spread to judge by). */
export const MIN_RUNS = 2;

/** What must be equal for absolute figures of two results to compare. */
const COMPARABLE: [string, (e: Environment) => unknown][] = [
  ['accel', (e) => e.accel],
  ['l1 accel', (e) => e.nested?.l1_accel ?? '-'],
  ['testbed', (e) => e.testbed],
  ['link', (e) => e.link],
  ['host_cpus', (e) => e.host_cpus],
];

/** One side of one metric: over the completed runs that have a value. */
export interface Sample {
  median: number;
  min: number;
  max: number;
  /** max − min */
  spread: number;
  n: number;
}

export interface MetricCheck {
  metric: RegressionMetric | 'completed_runs';
  label: string;
  old: Sample | null;
  new: Sample | null;
  /** new median − old median */
  delta: number | null;
  /** max(old spread, new spread): a larger delta is a regression */
  allowed: number | null;
  /** ok: the completed-runs check passed */
  verdict: 'regressed' | 'improved' | 'within-spread' | 'ok' | 'not-judged';
  /** Why it was not judged, or what the completed-runs check saw. */
  note?: string;
}

export interface ScenarioCheck {
  name: string;
  id: string;
  /** compared; new: not in the baseline; gone: in the baseline only; not-comparable: another workload or guest RAM */
  status: 'compared' | 'new' | 'gone' | 'not-comparable';
  note?: string;
  checks: MetricCheck[];
}

export interface RegressionReport {
  /** The rule, as a sentence, for reports. */
  rule: string;
  /** False when the set-ups differ: then nothing is judged. */
  comparable: boolean;
  /** The set-up facts that differ, "accel: tcg vs kvm". */
  differences: string[];
  scenarios: ScenarioCheck[];
  /** Every regressed check, with its scenario. */
  regressions: (MetricCheck & { scenario: string; id: string })[];
}

export const REGRESSION_RULE = `a metric regressed when its new median exceeds the old median by more than max(old spread, new spread), spread = max − min of the completed runs; judged for ${REGRESSION_METRICS.map((m) => METRICS[m]!.label).join(', ')} (higher is worse), when both sides have at least ${MIN_RUNS} completed runs; a scenario that completed runs before and none now has regressed`;

/** The sample of `metric` over the completed runs of `s`; null when no run has a value. */
export function sampleOf(s: ScenarioResult, metric: RegressionMetric): Sample | null {
  const m = METRICS[metric]!;
  const values = s.runs
    .filter((r) => r.status === 'completed')
    .map((r) => m.get(r, s.workload.mem_mib))
    .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (values.length === 0) return null;
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: median(values)!, min, max, spread: max - min, n: values.length };
}

/** The rule itself, for one metric of one scenario. */
export function judge(metric: RegressionMetric, old: Sample | null, now: Sample | null): MetricCheck {
  const base = { metric, label: METRICS[metric]!.label, old, new: now };
  if (!old || !now) return { ...base, delta: null, allowed: null, verdict: 'not-judged', note: `not measured ${!old && !now ? 'on either side' : !old ? 'in the baseline' : 'now'}` };
  const delta = now.median - old.median;
  const allowed = Math.max(old.spread, now.spread);
  if (old.n < MIN_RUNS || now.n < MIN_RUNS) return { ...base, delta, allowed, verdict: 'not-judged', note: `fewer than ${MIN_RUNS} completed runs (baseline ${old.n}, now ${now.n}): no spread to judge by` };
  const verdict = delta > allowed ? 'regressed' : -delta > allowed ? 'improved' : 'within-spread';
  return { ...base, delta, allowed, verdict };
}

const completed = (s: ScenarioResult) => s.runs.filter((r) => r.status === 'completed').length;

function checkScenario(old: ScenarioResult, now: ScenarioResult): ScenarioCheck {
  const head = { name: now.scenario.name, id: now.scenario.id };
  const ow = old.workload;
  const nw = now.workload;
  if (ow.name !== nw.name || ow.mem_mib !== nw.mem_mib) {
    return { ...head, status: 'not-comparable', note: `workload ${ow.name} ${ow.mem_mib} MiB in the baseline, ${nw.name} ${nw.mem_mib} MiB now`, checks: [] };
  }
  const before = completed(old);
  const after = completed(now);
  const runs: MetricCheck = {
    metric: 'completed_runs',
    label: 'completed runs',
    old: null,
    new: null,
    delta: after - before,
    allowed: null,
    verdict: before === 0 ? 'not-judged' : after === 0 ? 'regressed' : 'ok',
    note: `${before} of ${old.runs.length} in the baseline, ${after} of ${now.runs.length} now${before > 0 && after === 0 ? ': none completed' : ''}`,
  };
  return { ...head, status: 'compared', checks: [runs, ...REGRESSION_METRICS.map((m) => judge(m, sampleOf(old, m), sampleOf(now, m)))] };
}

/** `now` against `baseline`, scenario by scenario (by id), by the rule above. */
export function checkRegressions(baseline: BenchResult, now: BenchResult): RegressionReport {
  const differences = COMPARABLE.flatMap(([label, get]) => {
    const a = String(get(baseline.environment));
    const b = String(get(now.environment));
    return a === b ? [] : [`${label}: ${a} in the baseline, ${b} now`];
  });
  const report: RegressionReport = { rule: REGRESSION_RULE, comparable: differences.length === 0, differences, scenarios: [], regressions: [] };
  if (!report.comparable) return report;
  for (const s of now.scenarios) {
    const old = baseline.scenarios.find((o) => o.scenario.id === s.scenario.id);
    report.scenarios.push(old ? checkScenario(old, s) : { name: s.scenario.name, id: s.scenario.id, status: 'new', note: 'not in the baseline', checks: [] });
  }
  for (const o of baseline.scenarios) {
    if (!now.scenarios.some((s) => s.scenario.id === o.scenario.id)) report.scenarios.push({ name: o.scenario.name, id: o.scenario.id, status: 'gone', note: 'in the baseline only', checks: [] });
  }
  report.regressions = report.scenarios.flatMap((s) => s.checks.filter((c) => c.verdict === 'regressed').map((c) => ({ ...c, scenario: s.name, id: s.id })));
  return report;
}
