/**
 * npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
 *
 * Puts the scenarios of several bench/run.ts results side by side: a summary
 * table, ratios to a baseline, charts, OUT/compare.md. RESULT is a
 * result.json or the directory holding one. Results from different
 * environments are compared by their medians only, with a warning: absolute
 * times mean something only within one run.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { HecaError } from '../tools/core/errors.ts';
import { info, warn } from '../tools/core/log.ts';
import { writeCharts } from './report/charts.ts';
import { mdTable, problems, ratioTable, summaryTable } from './report/format.ts';
import { environmentTable } from './report/report.ts';
import { RESULT_SCHEMA_VERSION, type BenchResult, type Comparison, type Environment, type ScenarioResult } from './results/schema.ts';
import { baselineIndex, compareScenarios } from './results/stats.ts';

const usage = `  npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
    RESULT           a result.json written by bench/run.ts, or its directory
    --out DIR        where compare.md and charts go (default results/compare-<time>)
    --baseline B     the scenario the ratios divide by: its label or its 1-based column
                     (default: the first scenario with a completed run)`;

/** Read and validate one result file; every problem names the path. */
export function loadResult(arg: string): { path: string; result: BenchResult } {
  let path = resolve(arg);
  if (existsSync(path) && statSync(path).isDirectory()) path = join(path, 'result.json');
  if (!existsSync(path)) throw new HecaError(`no result at ${arg}`, { why: `${path} does not exist`, fix: 'pass a result.json written by bench/run.ts, or the --out directory of a run' });
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new HecaError(`${path} is not valid JSON`, { why: (e as Error).message, fix: 'was the run interrupted while writing it? rerun bench/run.ts' });
  }
  const r = data as Partial<BenchResult>;
  if (typeof r !== 'object' || r === null || r.schema !== RESULT_SCHEMA_VERSION || !Array.isArray(r.scenarios) || !r.environment) {
    throw new HecaError(`${path} is not a heca result (schema ${RESULT_SCHEMA_VERSION})`, {
      why: `its schema is ${JSON.stringify(r?.schema)}, and it needs "environment" and "scenarios"`,
      fix: 'pass a result.json written by this version of bench/run.ts',
    });
  }
  return { path, result: r as BenchResult };
}

const ENV_KEYS: (keyof Environment)[] = ['accel', 'qemu_version', 'kernel_version', 'link', 'host_cpus', 'testbed'];

/** Environment keys whose values differ between results. */
export function environmentDifferences(envs: Environment[]): string[] {
  return ENV_KEYS.filter((k) => new Set(envs.map((e) => JSON.stringify(e[k]))).size > 1).map((k) => `${k}: ${envs.map((e) => String(e[k])).join(' vs ')}`);
}

/** Ratios of medians, for results that cannot be paired by repeat. */
function medianRatios(scenarios: ScenarioResult[], base: number): Comparison {
  const b = scenarios[base]!;
  const cmp: Comparison = { baseline: b.scenario.id, ratios: {}, pairs: {} };
  for (const s of scenarios) {
    if (s === b) continue;
    const row: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(s.summary)) {
      const bv = b.summary[k]?.median;
      row[k] = v.median !== null && typeof bv === 'number' && bv !== 0 ? v.median / bv : null;
    }
    cmp.ratios[s.scenario.id] = row;
    cmp.pairs![s.scenario.id] = 0;
  }
  return cmp;
}

main(async () => {
  const { values, positionals } = parseFlags(process.argv.slice(2), { out: { type: 'string' }, baseline: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, usage, true);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  if (positionals.length === 0) throw new UsageError('no result given', { why: 'compare needs at least one result.json', fix: `usage:\n${usage}` });
  const loaded = positionals.map(loadResult);

  // Side by side; labels stay unique across results (scenario name, plus the run directory if names collide).
  const out = resolve(values.out ?? join('results', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  // Log directories are relative to their result; make them relative to OUT.
  const rebase = (s: ScenarioResult, path: string): ScenarioResult => ({ ...s, runs: s.runs.map((r) => ({ ...r, logs_dir: relative(out, join(dirname(path), r.logs_dir)) })) });
  const cols = loaded.flatMap(({ path, result }) => result.scenarios.map((s) => ({ s: rebase(s, path), dir: basename(dirname(path)), env: result.environment })));
  const names = cols.map((c) => c.s.scenario.name);
  const labels = cols.map((c, i) => (names.indexOf(c.s.scenario.name) !== names.lastIndexOf(c.s.scenario.name) || names.indexOf(c.s.scenario.name) !== i ? `${c.s.scenario.name} (${c.dir})` : c.s.scenario.name));
  // Unique ids as well: the same scenario id from two results must not merge.
  const scenarios = cols.map((c, i) => ({ ...c.s, scenario: { ...c.s.scenario, id: labels[i] !== c.s.scenario.name ? `${c.s.scenario.id}@${c.dir}` : c.s.scenario.id } }));

  let base = baselineIndex(scenarios);
  if (values.baseline !== undefined) {
    const byLabel = labels.indexOf(values.baseline);
    const n = Number(values.baseline);
    base = byLabel >= 0 ? byLabel : Number.isInteger(n) && n >= 1 && n <= labels.length ? n - 1 : -1;
    if (base < 0) throw new UsageError(`--baseline ${values.baseline} is not one of the columns`, { why: `the columns are: ${labels.map((l, i) => `${i + 1}=${l}`).join(', ')}`, fix: 'give a label or a 1-based column number' });
  }

  const diffs = environmentDifferences(loaded.map((l) => l.result.environment));
  const sameRun = loaded.length === 1;
  const cmp = scenarios.length > 1 ? (sameRun || diffs.length === 0 ? compareScenarios(scenarios, base) : medianRatios(scenarios, base)) : undefined;

  mkdirSync(out, { recursive: true });
  const subtitle = diffs.length ? 'environments DIFFER: compare with care' : `${loaded[0]!.result.environment.accel.toUpperCase()}, link ${loaded[0]!.result.environment.link_desc}`;
  const charts = await writeCharts({ labels, scenarios, subtitle }, join(out, 'charts'));

  const md: string[] = [`# heca comparison: ${labels.join(', ')}`, ''];
  const bad = problems(labels, scenarios);
  if (bad.length) md.push('## ⚠ Failures\n', ...bad.map((b) => `- ${b}`), '');
  if (diffs.length) {
    md.push('## ⚠ The environments differ\n', 'Absolute times are only comparable within one run; ratios below divide medians of different runs, not paired repeats.\n', ...diffs.map((d) => `- ${d}`), '');
    warn(`the results come from different environments (${diffs.join('; ')}): absolute times are not comparable; ratios use medians`);
  } else if (!sameRun) {
    md.push('The results share one environment; runs are paired by repeat number across results.\n');
  }
  md.push('## Sources\n', mdTable(['result', 'scenarios', 'started'], loaded.map(({ path, result }) => [relative(out, path), result.scenarios.map((s) => s.scenario.name).join(', '), result.environment.started_at])), '');
  md.push('## Environment\n', environmentTable(loaded[0]!.result.environment), '');
  md.push('## Summary\n', summaryTable(labels, scenarios), '');
  if (cmp) md.push(`## Ratios to ${labels[base]}\n`, ratioTable(labels, scenarios, cmp), '');
  md.push('## Charts\n', ...Object.values(charts).map((p) => `![${basename(p)}](${relative(out, p)})`), '');
  writeFileSync(join(out, 'compare.md'), `${md.join('\n')}\n`);

  // A short table on stdout.
  const s = (k: string, sc: ScenarioResult) => sc.summary[k]?.median;
  const w = Math.max(...labels.map((l) => l.length), 8);
  process.stdout.write(`${'scenario'.padEnd(w)}  completed  total(s)  downtime(ms)  wire/RAM  fault mean(us)\n`);
  scenarios.forEach((sc, i) => {
    const f = (v: number | null | undefined, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '-');
    process.stdout.write(`${labels[i]!.padEnd(w)}  ${`${sc.summary.completed?.median ?? 0}/${sc.runs.length}`.padStart(9)}  ${f((s('total_time_ms', sc) ?? NaN) / 1000, 1).padStart(8)}  ${f(s('downtime_host_ms', sc) ?? s('downtime_ms', sc), 0).padStart(12)}  ${f(s('wire_over_ram', sc), 2).padStart(8)}  ${f(s('postcopy_latency_mean_us', sc), 0).padStart(14)}\n`);
  });
  info(`wrote ${join(out, 'compare.md')} and ${Object.keys(charts).length} charts`);
});
