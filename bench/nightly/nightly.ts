/**
 * `make nightly`'s steps, each one of the project's own commands run to
 * completion (tools/core/exec.ts, zx):
 *
 *   1. choose the baseline: the one given, none, or the newest earlier night
 *      beside OUT that ended well (bench/results/nightly.ts);
 *      a given one is loaded (validated) now, not after hours of benchmark;
 *   2. bench/run.ts --testbed nested, every scenario of the catalog, N repeats,
 *      into OUT (result.json, report.md, charts/, logs/);
 *   3. if there is a baseline and a result: bench/compare.ts
 *      --fail-on-regression BASELINE OUT --out OUT/compare;
 *   4. OUT/nightly.json: what ran, against what, the verdict; a failed
 *      benchmark, a failed comparison or a regression is an error naming it.
 *
 * The comparison runs even when some benchmark runs failed (their report is
 * written all the same), so a bad night shows both.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { HecaError } from '../../tools/core/errors.ts';
import { run, type RunOptions, type RunResult } from '../../tools/core/exec.ts';
import { info, warn } from '../../tools/core/log.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { loadResult } from '../results/io.ts';
import { NIGHT_OK, previousNight, writeNightly, type NightlyRecord } from '../results/nightly.ts';
import type { RegressionReport } from '../results/regression.ts';
import { regressionLine } from '../report/regression.ts';

export interface NightlyPlan {
  /** This night's directory. */
  out: string;
  /** Where earlier nights are looked for: OUT's parent (results/nightly). */
  root: string;
  scenarios: string[];
  repeat: number;
  /** auto: the previous night that ended well; none; or a result.json (or its directory). */
  baseline: 'auto' | 'none' | { path: string };
  /** More bench/run.ts flags (--link, --mem, --workload...). */
  benchArgs: string[];
}

export interface NightlyDeps {
  run: (cmd: string, args: readonly string[], opts: RunOptions) => Promise<RunResult>;
  now: () => Date;
}

const defaults: NightlyDeps = { run, now: () => new Date() };

/** A TypeScript command of the project, with the node that runs us. */
function tsx(script: string, args: string[]): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', join(repoRoot, script), ...args]];
}

/** The bench/run.ts arguments of a night. */
export function benchArgs(p: NightlyPlan): string[] {
  return ['--testbed', 'nested', '--scenario', p.scenarios.join(','), '--repeat', String(p.repeat), '--out', p.out, ...p.benchArgs];
}

/** Step 1: the baseline, or null; and how it was chosen. */
export function chooseBaseline(p: NightlyPlan): NightlyRecord['baseline'] {
  if (p.baseline === 'none') return null;
  if (p.baseline !== 'auto') return { path: loadResult(p.baseline.path).path, chosen: 'given' };
  const { found, skipped } = previousNight(p.root, p.out);
  for (const s of skipped) info(`not a baseline: ${s}`);
  return found ? { path: join(found.dir, 'result.json'), chosen: 'previous night' } : null;
}

export async function runNightly(p: NightlyPlan, deps: NightlyDeps = defaults): Promise<NightlyRecord> {
  const out = resolve(p.out);
  mkdirSync(out, { recursive: true });
  const baseline = chooseBaseline(p);
  const rec: NightlyRecord = { verdict: 'running', ok: false, started_at: deps.now().toISOString(), scenarios: p.scenarios, repeat: p.repeat, bench_args: benchArgs(p), baseline };
  writeNightly(out, rec);
  if (baseline) info(`baseline (${baseline.chosen}): ${relative(process.cwd(), baseline.path) || baseline.path}`);
  else info(p.baseline === 'none' ? 'no baseline asked for: this night is not compared' : `no earlier night under ${p.root} ended well: this night is not compared (the first night?)`);

  const stream: RunOptions = { allowFail: true, onLine: (l, s) => (s === 'stdout' ? process.stdout : process.stderr).write(`${l}\n`) };
  info(`benchmark: ${p.scenarios.length} scenario(s) × ${p.repeat} repeat(s) on the nested testbed into ${out}`);
  const bench = await deps.run(...tsx('bench/run.ts', rec.bench_args), stream);
  rec.bench_exit = bench.exitCode;
  const why: string[] = [];
  if (bench.exitCode !== 0) why.push(`the benchmark failed (bench/run.ts exited ${bench.exitCode}; its error is above, logs under ${join(out, 'logs')})`);
  const haveResult = existsSync(join(out, 'result.json'));

  let regression: RegressionReport | undefined;
  if (baseline && haveResult) {
    const cmpDir = join(out, 'compare');
    const cmp = await deps.run(...tsx('bench/compare.ts', ['--fail-on-regression', baseline.path, join(out, 'result.json'), '--out', cmpDir]), stream);
    rec.compare_exit = cmp.exitCode;
    const file = join(cmpDir, 'regression.json');
    if (existsSync(file)) regression = JSON.parse(readFileSync(file, 'utf8')) as RegressionReport;
    if (cmp.exitCode !== 0 && !regression?.regressions.length) why.push(`the comparison failed (bench/compare.ts exited ${cmp.exitCode}; its error is above)`);
  } else if (baseline) {
    why.push(`no ${join(out, 'result.json')} to compare`);
  }
  if (regression) rec.regressions = regression.regressions.map(regressionLine);
  if (regression && !regression.comparable) warn(`not compared with the baseline: the set-ups differ (${regression.differences.join('; ')})`);

  rec.verdict = why.length ? 'failed' : rec.regressions?.length ? 'regressed' : !baseline ? 'no-baseline' : regression && !regression.comparable ? 'not-comparable' : 'passed';
  rec.ok = NIGHT_OK.includes(rec.verdict);
  rec.why = [...why, ...(regression && !regression.comparable ? regression.differences : [])];
  if (rec.why.length === 0) delete rec.why;
  rec.finished_at = deps.now().toISOString();
  writeNightly(out, rec);
  if (!rec.ok) {
    const lines = [...why, ...(rec.regressions ?? []).map((l) => `regression: ${l}`)];
    throw new HecaError(`the night failed: ${rec.verdict === 'regressed' && why.length === 0 ? `${rec.regressions!.length} regression(s) beyond the measured spread` : why[0]}`, {
      why: lines.join('\n       '),
      fix: `${join(out, 'report.md')}${regression ? ` and ${join(out, 'compare', 'compare.md')}` : ''}; the record is ${join(out, 'nightly.json')}`,
    });
  }
  return rec;
}
