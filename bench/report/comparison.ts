/**
 * OUT/compare.md and the table bench/compare.ts prints: the scenarios of
 * several results side by side (bench/results/compare.ts makes the columns
 * and the ratios), failures first, a warning when the environments differ;
 * with a regression check (bench/compare.ts --fail-on-regression) its section
 * comes next, and OUT/regression.json holds the check as data.
 */
import { writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { Column } from '../results/compare.ts';
import type { RegressionReport } from '../results/regression.ts';
import type { BenchResult, Comparison } from '../results/schema.ts';
import { writeCharts } from './charts.ts';
import { mdTable, problems, ratioTable, summaryTable } from './format.ts';
import { regressionMarkdown } from './regression.ts';
import { environmentTable } from './report.ts';

export interface ComparisonInput {
  loaded: { path: string; result: BenchResult }[];
  columns: Column[];
  /** Environment facts that differ between the results ("link: lan1g vs wan"). */
  differences: string[];
  comparison: Comparison | undefined;
  base: number;
  /** The first result against the second (bench/results/regression.ts). */
  regression?: RegressionReport;
}

/** Charts under OUT/charts and OUT/compare.md; returns the chart files. */
export async function writeComparison(inp: ComparisonInput, out: string): Promise<Record<string, string>> {
  const labels = inp.columns.map((c) => c.label);
  const scenarios = inp.columns.map((c) => c.scenario);
  const first = inp.loaded[0]!.result.environment;
  const subtitle = inp.differences.length ? 'environments DIFFER: compare with care' : `${first.accel.toUpperCase()}, link ${first.link_desc}`;
  const charts = await writeCharts({ labels, scenarios, subtitle }, join(out, 'charts'));

  const md: string[] = [`# heca comparison: ${labels.join(', ')}`, ''];
  const bad = problems(labels, scenarios);
  if (bad.length) md.push('## ⚠ Failures\n', ...bad.map((b) => `- ${b}`), '');
  if (inp.regression) {
    md.push(regressionMarkdown(inp.regression));
    writeFileSync(join(out, 'regression.json'), `${JSON.stringify(inp.regression, null, 2)}\n`);
  }
  if (inp.differences.length) {
    md.push('## ⚠ The environments differ\n', 'Absolute times are only comparable within one run; ratios below divide medians of different runs, not paired repeats.\n', ...inp.differences.map((d) => `- ${d}`), '');
  } else if (inp.loaded.length > 1) {
    md.push('The results share one environment. Runs are paired by repeat only within one invocation; between results of different invocations the ratios divide medians.\n');
  }
  md.push('## Sources\n', mdTable(['result', 'scenarios', 'started'], inp.loaded.map(({ path, result }) => [relative(out, path), result.scenarios.map((s) => s.scenario.name).join(', '), result.environment.started_at])), '');
  md.push('## Environment\n', environmentTable(first), '');
  md.push('## Summary\n', summaryTable(labels, scenarios), '');
  if (inp.comparison) md.push(`## Ratios to ${labels[inp.base]}\n`, ratioTable(labels, scenarios, inp.comparison), '');
  md.push('## Charts\n', ...Object.values(charts).map((p) => `![${basename(p)}](${relative(out, p)})`), '');
  writeFileSync(join(out, 'compare.md'), `${md.join('\n')}\n`);
  return charts;
}
