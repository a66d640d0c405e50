/**
 * The regression rule of make nightly (bench/results/regression.ts), on
 * hand-made results with known medians and spreads: new median − old median
 * > max(old spread, new spread) is a regression, for total time, downtime
 * STOP→RESUME, wire bytes and fault latency; and bench/compare.ts
 * --fail-on-regression as a user runs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkRegressions, judge, REGRESSION_METRICS, sampleOf } from '../../bench/results/regression.ts';
import type { BenchResult, RunRecord, ScenarioResult } from '../../bench/results/schema.ts';
import { summarize } from '../../bench/results/stats.ts';
import { regressionLine } from '../../bench/report/regression.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { fixtureEnv, fixtureResult, fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';

type RunOpts = Parameters<typeof fixtureRun>[1];

/** A scenario whose runs have these totals (ms), other metrics as the fixture has them unless `o` says. */
function scenario(totals: (number | null)[], o: (i: number) => RunOpts = () => ({}), name: 'postcopy' | 'precopy' | 'full' = 'postcopy'): ScenarioResult {
  const runs = totals.map((t, i) => fixtureRun(i + 1, { total: t, ...o(i) }));
  const s = fixtureScenario(name, name === 'precopy' ? 'precopy' : 'postcopy', runs, name === 'full' ? { switchover: 'qemu' } : {});
  s.summary = summarize(s.runs, MEM_MIB);
  return s;
}

const result = (...s: ScenarioResult[]): BenchResult => fixtureResult(s);
const checkOf = (r: ReturnType<typeof checkRegressions>, metric: string, name = 'postcopy') => r.scenarios.find((s) => s.name === name)!.checks.find((c) => c.metric === metric)!;

// Baseline total times: median 1200, spread 400.
const OLD = [1000, 1100, 1200, 1300, 1400];

test('a median worse by more than both spreads is a regression, named with both medians and spreads', () => {
  const r = checkRegressions(result(scenario(OLD)), result(scenario([1700, 1750, 1800, 1850, 1900])));
  assert.ok(r.comparable);
  const c = checkOf(r, 'total_time_ms');
  assert.equal({ verdict: c.verdict, delta: c.delta, allowed: c.allowed }, { verdict: 'regressed', delta: 600, allowed: 400 });
  assert.equal(c.old, { median: 1200, min: 1000, max: 1400, spread: 400, n: 5 });
  assert.equal(c.new, { median: 1800, min: 1700, max: 1900, spread: 200, n: 5 });
  assert.is(checkOf(r, 'completed_runs').verdict, 'ok');
  assert.is(r.regressions.length, 1);
  assert.is(regressionLine(r.regressions[0]!), 'postcopy (postcopy-immediate), total time: median 1.20 s (spread 400 ms, 5 runs) in the baseline, 1.80 s (spread 200 ms, 5 runs) now: +600 ms, more than the larger spread 400 ms');
});

test('worse by exactly the larger spread is not a regression; one unit more is', () => {
  const edge = checkRegressions(result(scenario(OLD)), result(scenario([1500, 1550, 1600, 1650, 1700])));
  assert.is(checkOf(edge, 'total_time_ms').delta, 400);
  assert.is(checkOf(edge, 'total_time_ms').verdict, 'within-spread');
  assert.is(edge.regressions.length, 0);
  const over = checkRegressions(result(scenario(OLD)), result(scenario([1501, 1551, 1601, 1651, 1701])));
  assert.is(checkOf(over, 'total_time_ms').verdict, 'regressed');
});

test('the allowance is the larger of the two spreads: a noisier new result widens it', () => {
  // Old: median 1050, spread 100. New: median 1400, spread 800. The median moved by
  // 350, beyond the old spread but within the new one: not a regression.
  const r = checkRegressions(result(scenario([1000, 1025, 1050, 1075, 1100])), result(scenario([1000, 1200, 1400, 1600, 1800])));
  const c = checkOf(r, 'total_time_ms');
  assert.equal({ delta: c.delta, allowed: c.allowed, verdict: c.verdict }, { delta: 350, allowed: 800, verdict: 'within-spread' });
  // And the other way round: a noisy baseline widens it too.
  const r2 = checkRegressions(result(scenario([1000, 1200, 1400, 1600, 1800])), result(scenario([1700, 1710, 1720, 1730, 1740])));
  assert.equal({ delta: checkOf(r2, 'total_time_ms').delta, verdict: checkOf(r2, 'total_time_ms').verdict }, { delta: 320, verdict: 'within-spread' });
});

test('better beyond the spread is an improvement, not a regression (higher is worse)', () => {
  const r = checkRegressions(result(scenario(OLD)), result(scenario([500, 550, 600, 650, 700])));
  assert.is(checkOf(r, 'total_time_ms').verdict, 'improved');
  assert.is(r.regressions.length, 0);
});

test('downtime STOP→RESUME, wire bytes and fault latency are judged by the same rule', () => {
  const MiB = 1048576;
  // Baseline: downtime_host 15..19 ms (median 17, spread 4), wire 256..260 MiB, latency 900..940 µs.
  const old = scenario(OLD, (i) => ({ downtime: 10 + i, wire: (256 + i) * MiB, latencyNs: 900_000 + i * 10_000 }));
  // Now: downtime 25..26 ms (median 25.5: +8.5 > 4), wire 262..266 MiB (+6 MiB > 4 MiB), latency 950..990 µs (+50 > 40).
  const now = scenario(OLD, (i) => ({ downtime: 20 + i / 4, wire: (262 + i) * MiB, latencyNs: 950_000 + i * 10_000 }));
  const r = checkRegressions(result(old), result(now));
  assert.equal(r.regressions.map((x) => x.metric).sort(), ['downtime_host_ms', 'postcopy_latency_mean_us', 'wire_bytes']);
  assert.equal({ d: checkOf(r, 'downtime_host_ms').delta, a: checkOf(r, 'downtime_host_ms').allowed }, { d: 8.5, a: 4 });
  assert.equal({ d: checkOf(r, 'wire_bytes').delta, a: checkOf(r, 'wire_bytes').allowed }, { d: 6 * MiB, a: 4 * MiB });
  assert.equal({ d: checkOf(r, 'postcopy_latency_mean_us').delta, a: checkOf(r, 'postcopy_latency_mean_us').allowed }, { d: 50, a: 40 });
  assert.is(checkOf(r, 'total_time_ms').verdict, 'within-spread');
  assert.match(regressionLine(r.regressions.find((x) => x.metric === 'wire_bytes')!), 'bytes on the wire: median 258.0 MiB (spread 4.0 MiB, 5 runs) in the baseline, 264.0 MiB (spread 4.0 MiB, 5 runs) now: +6.0 MiB, more than the larger spread 4.0 MiB');
});

test('only the four judged metrics count: QEMU\'s own downtime may grow without a regression', () => {
  assert.equal([...REGRESSION_METRICS], ['total_time_ms', 'downtime_host_ms', 'wire_bytes', 'postcopy_latency_mean_us']);
  const r = checkRegressions(result(scenario(OLD)), result(scenario(OLD, () => ({ downtime: 10 }))));
  assert.is(r.regressions.length, 0);
});

test('not judged: fewer than 2 completed runs, a metric absent on one side', () => {
  const one = checkRegressions(result(scenario([1000])), result(scenario([9000])));
  assert.is(checkOf(one, 'total_time_ms').verdict, 'not-judged');
  assert.match(checkOf(one, 'total_time_ms').note!, 'fewer than 2 completed runs (baseline 1, now 1)');
  assert.is(one.regressions.length, 0);
  // No post-copy statistics in the baseline (an upstream QEMU before 10.1, say).
  const lat = checkRegressions(result(scenario(OLD, () => ({ noLatency: true }))), result(scenario(OLD, () => ({ latencyNs: 9_000_000 }))));
  assert.is(checkOf(lat, 'postcopy_latency_mean_us').verdict, 'not-judged');
  assert.is(checkOf(lat, 'postcopy_latency_mean_us').note, 'not measured in the baseline');
  // Runs that did not complete are left out of the samples.
  const s = scenario([1000, 1100, null, 1200], (i) => (i === 2 ? { status: 'not-converged' as RunRecord['status'] } : {}));
  assert.equal(sampleOf(s, 'total_time_ms'), { median: 1100, min: 1000, max: 1200, spread: 200, n: 3 });
  assert.equal(judge('total_time_ms', null, null).note, 'not measured on either side');
});

test('a scenario that completed runs before and none now has regressed; one that never completed is not judged', () => {
  const nc = (i: number): RunOpts => ({ status: 'not-converged', reason: `cancelled ${i}` });
  const lost = checkRegressions(result(scenario(OLD)), result(scenario([null, null, null, null, null], nc)));
  assert.equal(lost.regressions.map((x) => x.metric), ['completed_runs']);
  assert.match(regressionLine(lost.regressions[0]!), 'postcopy (postcopy-immediate), completed runs: 5 of 5 in the baseline, 0 of 5 now: none completed');
  const never = checkRegressions(result(scenario([null, null], nc, 'precopy')), result(scenario([null, null], nc, 'precopy')));
  assert.is(never.regressions.length, 0);
  assert.is(checkOf(never, 'completed_runs', 'precopy').verdict, 'not-judged');
  assert.is(checkOf(never, 'total_time_ms', 'precopy').verdict, 'not-judged');
});

test('scenarios are matched by id; new and gone ones are listed, not judged', () => {
  const r = checkRegressions(result(scenario(OLD), scenario(OLD, undefined, 'precopy')), result(scenario([9000, 9100]), scenario(OLD, undefined, 'full')));
  assert.equal(r.scenarios.map((s) => `${s.name}:${s.status}`), ['postcopy:compared', 'full:new', 'precopy:gone']);
  assert.is(r.regressions.length, 1);
});

test('different set-ups are not judged; another QEMU build or kernel is', () => {
  const slow = scenario([9000, 9100, 9200]);
  const r = checkRegressions(fixtureResult([scenario(OLD)]), fixtureResult([slow], fixtureEnv({ accel: 'kvm', host_cpus: 8 })));
  assert.not.ok(r.comparable);
  assert.equal(r.differences, ['accel: tcg in the baseline, kvm now', 'host_cpus: 2 in the baseline, 8 now']);
  assert.is(r.regressions.length, 0);
  const q = checkRegressions(fixtureResult([scenario(OLD)]), fixtureResult([slow], fixtureEnv({ qemu_version: 'QEMU 10.0.14', kernel_version: '6.12.60' })));
  assert.ok(q.comparable);
  assert.is(q.regressions.length, 1);
  // Another guest RAM: that scenario is not judged.
  const big = { ...slow, workload: { ...slow.workload, mem_mib: 1024 } };
  const w = checkRegressions(fixtureResult([scenario(OLD)]), fixtureResult([big]));
  assert.equal(w.scenarios.map((s) => s.status), ['not-comparable']);
  assert.is(w.regressions.length, 0);
});

// bench/compare.ts --fail-on-regression, as a user runs it.
const tmp = mkdtempSync(join(tmpdir(), 'heca-regression-'));
function write(dir: string, r: BenchResult): string {
  mkdirSync(join(tmp, dir), { recursive: true });
  writeFileSync(join(tmp, dir, 'result.json'), JSON.stringify(r));
  return join(tmp, dir);
}
function compare(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'compare.ts'), ...args], { cwd: repoRoot, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('compare --fail-on-regression: exit 1 naming scenario, metric, medians and spreads; exit 0 within the spread', () => {
  const old = write('old', result(scenario(OLD)));
  const worse = write('worse', result(scenario([1700, 1750, 1800, 1850, 1900])));
  const out = join(tmp, 'cmp-worse');
  const r = compare('--fail-on-regression', old, worse, '--out', out);
  assert.is(r.code, 1, r.err);
  assert.match(r.err, 'error: 1 regression(s) beyond the measured spread');
  assert.match(r.err, 'postcopy (postcopy-immediate), total time: median 1.20 s (spread 400 ms, 5 runs) in the baseline, 1.80 s (spread 200 ms, 5 runs) now: +600 ms, more than the larger spread 400 ms');
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '## Regression check');
  assert.match(md, '**Verdict: 1 regression(s) beyond the measured spread.**');
  assert.match(md, '| postcopy (postcopy-immediate) | total time | 1.20 s (spread 400 ms, 5 runs) | 1.80 s (spread 200 ms, 5 runs) | +600 ms | 400 ms | **REGRESSED** |');
  const json = JSON.parse(readFileSync(join(out, 'regression.json'), 'utf8')) as { regressions: unknown[] };
  assert.is(json.regressions.length, 1);

  const ok = compare('--fail-on-regression', old, write('same', result(scenario([1100, 1200, 1300, 1400, 1500]))), '--out', join(tmp, 'cmp-ok'));
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.err, 'regression check: no regression beyond the measured spread (4 metric(s) judged over 1 scenario(s))');
});

test('compare --fail-on-regression: different set-ups warn and pass; usage errors; --help states the rule', () => {
  const old = write('old2', result(scenario(OLD)));
  const kvm = write('kvm', fixtureResult([scenario([9000, 9100])], fixtureEnv({ accel: 'kvm' })));
  const r = compare('--fail-on-regression', old, kvm, '--out', join(tmp, 'cmp-env'));
  assert.is(r.code, 0, r.err);
  assert.match(r.err, 'warning: regression check: not judged: the set-ups differ (accel: tcg in the baseline, kvm now)');
  assert.is(compare('--fail-on-regression', old).code, 2);
  assert.is(compare('--fail-on-regression', old, kvm, old).code, 2);
  assert.match(compare('--fail-on-regression', old, kvm, '--baseline', '1').err, '--baseline does not go with --fail-on-regression');
  const help = compare('--help');
  assert.is(help.code, 0);
  assert.match(help.out, 'regressed if  new median - old median > max(old spread, new spread)');
  assert.match(help.out, 'total time, downtime (STOP→RESUME), bytes on the wire, post-copy fault latency, mean');
});

test.run();
