/**
 * npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
 * npx tsx bench/compare.ts --fail-on-regression BASELINE RESULT [--out DIR]
 * npx tsx bench/compare.ts --schema
 *
 * Puts the scenarios of several bench/run.ts results side by side: a summary
 * table, ratios to a baseline, charts, OUT/compare.md. RESULT is a
 * result.json or the directory holding one; each is validated against the
 * result schema. Runs are paired by repeat only within one invocation; across
 * invocations ratios divide medians, and results from different environments
 * (accelerator, QEMU and its patch series, kernels, link, CPUs, testbed) are
 * compared with a warning. --fail-on-regression judges RESULT against
 * BASELINE by the rule of bench/results/regression.ts (printed by --help) and
 * exits 1 naming every regression. --schema prints the result format as JSON
 * Schema (bench/results/result.schema.json).
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { HecaError } from '../tools/core/errors.ts';
import { info, warn } from '../tools/core/log.ts';
import { comparisonTable } from './report/console.ts';
import { writeComparison } from './report/comparison.ts';
import { regressionLine, regressionVerdict } from './report/regression.ts';
import { columnsOf, compareColumns, defaultBaseline, environmentDifferences } from './results/compare.ts';
import { loadResult, resultJsonSchema } from './results/io.ts';
import { checkRegressions, MIN_RUNS, REGRESSION_METRICS } from './results/regression.ts';
import { METRICS } from './results/stats.ts';

const usage = `  npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
  npx tsx bench/compare.ts --fail-on-regression BASELINE RESULT [--out DIR]
  npx tsx bench/compare.ts --schema
    RESULT           a result.json written by bench/run.ts, or its directory
    --out DIR        where compare.md and charts go (default results/compare-<time>)
    --baseline B     the scenario the ratios divide by: its label or its 1-based column
                     (default: the first scenario with a completed run)
    --fail-on-regression
                     judge RESULT against BASELINE (an earlier result.json) and exit 1
                     if any scenario regressed beyond the measured spread (below);
                     the check is also written to compare.md and OUT/regression.json
    --schema         print the JSON Schema of result.json and exit

  Regression beyond the measured spread: scenarios are matched by id; for each of
  ${REGRESSION_METRICS.map((m) => METRICS[m]!.label).join(', ')}
  (higher is worse), over the completed runs of each side,
    spread = max - min,  regressed if  new median - old median > max(old spread, new spread).
  Judged only when both sides have at least ${MIN_RUNS} completed runs with a value. A scenario
  that completed runs in the baseline and none now has regressed. Results of different
  set-ups (accelerator, L1 accelerator, testbed, link, host CPUs; a scenario's workload
  or guest RAM) are not judged; the QEMU build and the kernels may differ.`;

main(async () => {
  const { values, positionals } = parseFlags(process.argv.slice(2), { out: { type: 'string' }, baseline: { type: 'string' }, 'fail-on-regression': { type: 'boolean' }, schema: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, usage, true);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  if (values.schema) return void process.stdout.write(resultJsonSchema());
  if (positionals.length === 0) throw new UsageError('no result given', { why: 'compare needs at least one result.json', fix: `usage:\n${usage}` });
  const gate = values['fail-on-regression'] === true;
  if (gate && positionals.length !== 2) throw new UsageError(`--fail-on-regression takes two results, not ${positionals.length}`, { why: 'it judges one result (the second) against a baseline (the first)', fix: `usage:\n${usage}` });
  if (gate && values.baseline !== undefined) throw new UsageError('--baseline does not go with --fail-on-regression', { why: 'the regression check compares each scenario with itself in the baseline result, not with another column', fix: 'drop --baseline' });
  const loaded = positionals.map(loadResult);

  const out = resolve(values.out ?? join('results', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const columns = columnsOf(loaded, out);
  const labels = columns.map((c) => c.label);
  let base = defaultBaseline(columns);
  if (values.baseline !== undefined) {
    const byLabel = labels.indexOf(values.baseline);
    const n = Number(values.baseline);
    base = byLabel >= 0 ? byLabel : Number.isInteger(n) && n >= 1 && n <= labels.length ? n - 1 : -1;
    if (base < 0) throw new UsageError(`--baseline ${values.baseline} is not one of the columns`, { why: `the columns are: ${labels.map((l, i) => `${i + 1}=${l}`).join(', ')}`, fix: 'give a label or a 1-based column number' });
  }
  const differences = environmentDifferences(loaded.map((l) => l.result.environment));
  if (differences.length) warn(`the results come from different environments (${differences.join('; ')}): absolute times are not comparable; ratios use medians`);
  const comparison = columns.length > 1 ? compareColumns(columns, base) : undefined;
  const regression = gate ? checkRegressions(loaded[0]!.result, loaded[1]!.result) : undefined;

  mkdirSync(out, { recursive: true });
  const charts = await writeComparison({ loaded, columns, differences, comparison, base, regression }, out);
  process.stdout.write(comparisonTable(labels, columns.map((c) => c.scenario)));
  info(`wrote ${join(out, 'compare.md')} and ${Object.keys(charts).length} charts`);
  if (!regression) return;
  if (!regression.comparable) return void warn(`regression check: ${regressionVerdict(regression)}`);
  if (regression.regressions.length === 0) return void info(`regression check: ${regressionVerdict(regression)}`);
  throw new HecaError(`${regressionVerdict(regression)} (${loaded[1]!.path} against ${loaded[0]!.path})`, {
    why: regression.regressions.map(regressionLine).join('\n       '),
    fix: `every scenario and metric judged: ${join(out, 'compare.md')}; the logs of each run are linked from the results' report.md`,
  });
});
