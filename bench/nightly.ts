/**
 * npx tsx bench/nightly.ts [--out DIR] [--repeat N] [--scenario LIST] [--baseline auto|none|RESULT]
 *                          [-- BENCH_FLAG...]
 *
 * `make nightly`: the nested-testbed benchmark of every scenario of the
 * catalog, 5 repeats, into results/nightly/<UTC date and time>; then
 * bench/compare.ts --fail-on-regression against the previous night beside it
 * that ended well (or the baseline given), and OUT/nightly.json with the verdict.
 * Exits non-zero on a failed benchmark or a regression beyond the measured
 * spread. bench/nightly/nightly.ts has the steps.
 */
import { dirname, join, resolve } from 'node:path';
import { intFlag, main, parseFlags } from '../tools/core/cli.ts';
import { info } from '../tools/core/log.ts';
import { runNightly } from './nightly/nightly.ts';
import { nightStamp } from './results/nightly.ts';
import { REGRESSION_RULE } from './results/regression.ts';
import { nightlyScenarios, parseScenarios } from './scenario/catalog.ts';

const usage = `  npx tsx bench/nightly.ts [options] [-- BENCH_FLAG...]        (make nightly)
    --out DIR          this night's directory (default results/nightly/<UTC date>T<hh-mm>Z)
    --repeat N         repeats of every scenario (default 5)
    --scenario LIST    comma-separated scenario names (default: every scenario of the catalog)
    --baseline B       auto (default): the newest earlier night beside OUT (results/nightly/)
                       that ended well (its nightly.json ok: benchmark completed, no
                       regression); none: do not compare; or a result.json / its directory
    -- BENCH_FLAG...   more bench/run.ts flags (--link, --mem, --workload...)

  Runs bench/run.ts --testbed nested, then bench/compare.ts --fail-on-regression
  BASELINE OUT --out OUT/compare, and writes OUT/nightly.json. Exits non-zero if the
  benchmark failed or a scenario regressed beyond the measured spread:
${`${REGRESSION_RULE}.`.replace(/(.{1,86})(\s+|$)/g, '  $1\n').trimEnd()}`;

main(async () => {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const { values } = parseFlags(dash >= 0 ? argv.slice(0, dash) : argv, {
    out: { type: 'string' },
    repeat: { type: 'string' },
    scenario: { type: 'string' },
    baseline: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  const out = resolve(values.out ?? join('results', 'nightly', nightStamp(new Date())));
  const names = !values.scenario || values.scenario === 'all' ? nightlyScenarios() : parseScenarios(values.scenario).map((s) => s.name);
  const b = values.baseline ?? 'auto';
  const rec = await runNightly({
    out,
    root: dirname(out),
    scenarios: names,
    repeat: intFlag('repeat', values.repeat, 1, 100) ?? 5,
    baseline: b === 'auto' || b === 'none' ? b : { path: b },
    benchArgs: dash >= 0 ? argv.slice(dash + 1) : [],
  });
  info(`night ${rec.verdict}${rec.baseline ? ` against ${rec.baseline.path}` : ''}`);
});
