/**
 * npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
 * npx tsx bench/compare.ts --schema
 *
 * Puts the scenarios of several bench/run.ts results side by side: a summary
 * table, ratios to a baseline, charts, OUT/compare.md. RESULT is a
 * result.json or the directory holding one; each is validated against the
 * result schema. Runs are paired by repeat only within one invocation; across
 * invocations ratios divide medians, and results from different environments
 * (accelerator, QEMU and its patch series, kernels, link, CPUs, testbed) are
 * compared with a warning. --schema prints the result format as JSON Schema
 * (bench/results/result.schema.json).
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { info, warn } from '../tools/core/log.ts';
import { comparisonTable } from './report/console.ts';
import { writeComparison } from './report/comparison.ts';
import { columnsOf, compareColumns, defaultBaseline, environmentDifferences } from './results/compare.ts';
import { loadResult, resultJsonSchema } from './results/io.ts';

const usage = `  npx tsx bench/compare.ts RESULT [RESULT...] [--out DIR] [--baseline NAME|N]
  npx tsx bench/compare.ts --schema
    RESULT           a result.json written by bench/run.ts, or its directory
    --out DIR        where compare.md and charts go (default results/compare-<time>)
    --baseline B     the scenario the ratios divide by: its label or its 1-based column
                     (default: the first scenario with a completed run)
    --schema         print the JSON Schema of result.json and exit`;

main(async () => {
  const { values, positionals } = parseFlags(process.argv.slice(2), { out: { type: 'string' }, baseline: { type: 'string' }, schema: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, usage, true);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  if (values.schema) return void process.stdout.write(resultJsonSchema());
  if (positionals.length === 0) throw new UsageError('no result given', { why: 'compare needs at least one result.json', fix: `usage:\n${usage}` });
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

  mkdirSync(out, { recursive: true });
  const charts = await writeComparison({ loaded, columns, differences, comparison, base }, out);
  process.stdout.write(comparisonTable(labels, columns.map((c) => c.scenario)));
  info(`wrote ${join(out, 'compare.md')} and ${Object.keys(charts).length} charts`);
});
