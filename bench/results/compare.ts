/**
 * Putting the scenarios of several results side by side (bench/compare.ts):
 * one column per scenario of each result, the environments checked for what
 * makes absolute figures incomparable, and ratios to a baseline column.
 *
 * Pairing rule: runs are paired by repeat only within one invocation, where
 * repeat r of every scenario ran interleaved, at the same moment of a noisy
 * machine. Across invocations, even in the same environment, there is no such
 * pairing: ratios divide medians.
 */
import { basename, dirname, join, relative } from 'node:path';
import type { BenchResult, Comparison, Environment, ScenarioResult } from './schema.ts';
import { baselineIndex, medianRatios, pairedRatios } from './stats.ts';

export interface Column {
  /** The scenario, its id made unique across results, its logs_dir relative to the comparison's directory. */
  scenario: ScenarioResult;
  label: string;
  /** Index of the result (invocation) it comes from. */
  source: number;
}

/**
 * One column per scenario of each result, in order. Labels are the scenario
 * names, with the result's directory added where names collide; ids get
 * "@dir" likewise, so the same scenario of two results never merges.
 */
export function columnsOf(loaded: { path: string; result: BenchResult }[], outDir: string): Column[] {
  const raw = loaded.flatMap(({ path, result }, source) => result.scenarios.map((s) => ({
    s: { ...s, runs: s.runs.map((r) => ({ ...r, logs_dir: relative(outDir, join(dirname(path), r.logs_dir)) })) },
    dir: basename(dirname(path)),
    source,
  })));
  const names = raw.map((c) => c.s.scenario.name);
  return raw.map((c) => {
    const n = c.s.scenario.name;
    const clash = names.indexOf(n) !== names.lastIndexOf(n);
    const label = clash ? `${n} (${c.dir})` : n;
    return { scenario: { ...c.s, scenario: { ...c.s.scenario, id: clash ? `${c.s.scenario.id}@${c.dir}` : c.s.scenario.id } }, label, source: c.source };
  });
}

/** What decides whether absolute figures of two results can be compared, as label → value. */
const ENV_FACTS: [string, (e: Environment) => unknown][] = [
  ['accel', (e) => e.accel],
  ['qemu_version', (e) => e.qemu_version],
  ['qemu series', (e) => {
    const b = e.qemu_build;
    if (!b) return 'unknown';
    if (b.origin === 'HECA_QEMU') return `none: HECA_QEMU binary ${b.sha256.slice(0, 12)}`;
    return `${b.series_sha256 ? b.series_sha256.slice(0, 12) : 'empty'} (${b.version})`;
  }],
  ['kernel_version', (e) => e.kernel_version],
  ['guest_kernel', (e) => e.guest_kernel],
  ['link', (e) => e.link],
  ['host_cpus', (e) => e.host_cpus],
  ['testbed', (e) => e.testbed],
];

/** The environment facts whose values differ between results, as "fact: a vs b". */
export function environmentDifferences(envs: Environment[]): string[] {
  return ENV_FACTS.flatMap(([label, get]) => {
    const values = envs.map((e) => String(get(e)));
    return new Set(values).size > 1 ? [`${label}: ${values.join(' vs ')}`] : [];
  });
}

/**
 * Every column against column `base`: paired by repeat when both come from
 * the same invocation, else the ratio of their medians (no spread, 0 pairs).
 */
export function compareColumns(cols: Column[], base: number): Comparison {
  const b = cols[base];
  if (!b) throw new RangeError(`no column ${base}`);
  const cmp: Comparison = { baseline: b.scenario.scenario.id, ratios: {}, spread: {}, pairs: {} };
  for (const c of cols) {
    if (c === b) continue;
    const id = c.scenario.scenario.id;
    if (c.source === b.source) {
      const p = pairedRatios(c.scenario, b.scenario);
      cmp.ratios[id] = p.ratios;
      cmp.spread![id] = p.spread;
      cmp.pairs![id] = p.pairs;
    } else {
      cmp.ratios[id] = medianRatios(c.scenario, b.scenario);
      cmp.pairs![id] = 0;
    }
  }
  return cmp;
}

/** The default baseline column: the first with a completed run. */
export function defaultBaseline(cols: Column[]): number {
  return baselineIndex(cols.map((c) => c.scenario));
}
