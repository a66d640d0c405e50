/**
 * make nightly's steps (bench/nightly/nightly.ts) with the benchmark replaced
 * by a fake that writes a fixture result, and the real bench/compare.ts
 * --fail-on-regression: the first night, the previous night that ended well
 * as the baseline (not a regressed, failed or unfinished one), a regression
 * failing the night with its numbers, a failed benchmark still compared, a
 * given baseline checked before the benchmark; and the scenario list from the
 * catalog.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { benchArgs, runNightly, type NightlyDeps, type NightlyPlan } from '../../bench/nightly/nightly.ts';
import { nightStamp, previousNight, readNightly, type NightlyRecord } from '../../bench/results/nightly.ts';
import type { BenchResult, ScenarioParams } from '../../bench/results/schema.ts';
import { summarize } from '../../bench/results/stats.ts';
import { nightlyScenarios, scenarioId, SCENARIOS } from '../../bench/scenario/catalog.ts';
import { run, type RunOptions } from '../../tools/core/exec.ts';
import { fixtureEnv, fixtureResult, fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';
import { rejectionOf } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'heca-nightly-'));

/** A night's result: postcopy with these total times (ms), started at `at`. */
function night(totals: number[], at: string): BenchResult {
  const s = fixtureScenario('postcopy', 'postcopy', totals.map((t, i) => fixtureRun(i + 1, { total: t })));
  s.summary = summarize(s.runs, MEM_MIB);
  return fixtureResult([s], fixtureEnv({ started_at: at }));
}

interface Call { script: string; args: string[] }

/** The fake benchmark writes `result` (unless undefined) and exits `exit`; bench/compare.ts runs for real. */
function deps(result: BenchResult | undefined, exit = 0, calls: Call[] = []): NightlyDeps {
  return {
    now: () => new Date('2026-11-27T02:17:00Z'),
    run: async (cmd: string, args: readonly string[], opts: RunOptions) => {
      const script = args.find((a) => a.endsWith('.ts'))!;
      const rest = args.slice(args.indexOf(script) + 1);
      calls.push({ script: script.replace(/.*\/(bench\/)/, '$1'), args: rest });
      if (script.endsWith('bench/run.ts')) {
        const out = rest[rest.indexOf('--out') + 1]!;
        if (result) writeFileSync(join(out, 'result.json'), JSON.stringify(result));
        return { exitCode: exit, stdout: '', stderr: '', durationMs: 1 };
      }
      return run(cmd, args, { ...opts, onLine: undefined });
    },
  };
}

function plan(name: string, baseline: NightlyPlan['baseline'] = 'auto'): NightlyPlan {
  return { out: join(root, name), root, scenarios: ['postcopy'], repeat: 5, baseline, benchArgs: ['--mem', '256'] };
}

const nightly = (name: string): NightlyRecord => readNightly(join(root, name))!;

test('the first night: the benchmark on the nested testbed, nothing to compare, a night that may be a baseline', async () => {
  const calls: Call[] = [];
  const rec = await runNightly(plan('n1'), deps(night([1000, 1100, 1200, 1300, 1400], '2026-11-25T02:17:00Z'), 0, calls));
  assert.equal(calls.map((c) => c.script), ['bench/run.ts']);
  assert.equal(calls[0]!.args, ['--testbed', 'nested', '--scenario', 'postcopy', '--repeat', '5', '--out', join(root, 'n1'), '--mem', '256']);
  assert.equal({ verdict: rec.verdict, ok: rec.ok, baseline: rec.baseline }, { verdict: 'no-baseline', ok: true, baseline: null });
  assert.equal(nightly('n1'), rec, 'OUT/nightly.json');
});

test('the next night is compared with the previous one by bench/compare.ts --fail-on-regression, and passes within the spread', async () => {
  const calls: Call[] = [];
  const rec = await runNightly(plan('n2'), deps(night([1100, 1200, 1300, 1400, 1500], '2026-11-26T02:17:00Z'), 0, calls));
  assert.equal(calls.map((c) => c.script), ['bench/run.ts', 'bench/compare.ts']);
  assert.equal(calls[1]!.args, ['--fail-on-regression', join(root, 'n1', 'result.json'), join(root, 'n2', 'result.json'), '--out', join(root, 'n2', 'compare')]);
  assert.equal({ verdict: rec.verdict, ok: rec.ok, baseline: rec.baseline }, { verdict: 'passed', ok: true, baseline: { path: join(root, 'n1', 'result.json'), chosen: 'previous night' } });
  assert.ok(existsSync(join(root, 'n2', 'compare', 'compare.md')));
});

test('a regression fails the night, naming scenario, metric, medians and spreads; that night is never a baseline', async () => {
  const e = await rejectionOf(runNightly(plan('n3'), deps(night([1900, 2000, 2100, 2200, 2300], '2026-11-27T02:17:00Z'))));
  assert.is(e.message, 'the night failed: 1 regression(s) beyond the measured spread');
  assert.match(e.why, 'regression: postcopy (postcopy-immediate), total time: median 1.30 s (spread 400 ms, 5 runs) in the baseline, 2.10 s (spread 400 ms, 5 runs) now: +800 ms, more than the larger spread 400 ms');
  const rec = nightly('n3');
  assert.equal({ verdict: rec.verdict, ok: rec.ok, compare_exit: rec.compare_exit }, { verdict: 'regressed', ok: false, compare_exit: 1 });
  assert.is(rec.baseline?.path, join(root, 'n2', 'result.json'));
  // The next night is compared with n2 again, not with the regressed n3: still red until fixed.
  const { found, skipped } = previousNight(root, join(root, 'n4'));
  assert.is(found?.dir, join(root, 'n2'));
  assert.ok(skipped.includes('n3: regressed'), skipped.join('; '));
});

test('a failed benchmark with a result is still compared, and fails the night; without a result nothing is compared', async () => {
  const calls: Call[] = [];
  const e = await rejectionOf(runNightly(plan('n4'), deps(night([1100, 1200, 1300, 1400, 1500], '2026-11-28T02:17:00Z'), 1, calls)));
  assert.match(e.message, 'the night failed: the benchmark failed (bench/run.ts exited 1');
  assert.equal(calls.map((c) => c.script), ['bench/run.ts', 'bench/compare.ts']);
  assert.equal({ verdict: nightly('n4').verdict, bench: nightly('n4').bench_exit, cmp: nightly('n4').compare_exit }, { verdict: 'failed', bench: 1, cmp: 0 });
  const calls2: Call[] = [];
  const e2 = await rejectionOf(runNightly(plan('n5'), deps(undefined, 1, calls2)));
  assert.match(e2.why, `no ${join(root, 'n5', 'result.json')} to compare`);
  assert.equal(calls2.map((c) => c.script), ['bench/run.ts']);
  // Neither failed night, nor a directory without nightly.json, nor an unfinished one, is a baseline.
  mkdirSync(join(root, 'stray'), { recursive: true });
  writeFileSync(join(root, 'stray', 'result.json'), JSON.stringify(night([1, 2], '2030-01-01T00:00:00Z')));
  mkdirSync(join(root, 'unfinished'), { recursive: true });
  writeFileSync(join(root, 'unfinished', 'nightly.json'), JSON.stringify({ verdict: 'running', ok: false }));
  const { found, skipped } = previousNight(root, join(root, 'n6'));
  assert.is(found?.dir, join(root, 'n2'));
  assert.ok(['n4: failed', 'n5: failed', 'stray: no nightly.json', 'unfinished: running'].every((s) => skipped.includes(s)), skipped.join('; '));
});

test('a given baseline is checked before the benchmark; none compares nothing', async () => {
  const calls: Call[] = [];
  const e = await rejectionOf(runNightly(plan('n6', { path: join(root, 'nope') }), deps(night([1000, 1100], '2026-11-29T00:00:00Z'), 0, calls)));
  assert.match(e.message, 'no result at');
  assert.is(calls.length, 0, 'nothing ran');
  const given = await runNightly(plan('n7', { path: join(root, 'n1') }), deps(night([1000, 1100, 1200, 1300, 1400], '2026-11-29T00:00:00Z')));
  assert.equal(given.baseline, { path: join(root, 'n1', 'result.json'), chosen: 'given' });
  assert.is(given.verdict, 'passed');
  const calls2: Call[] = [];
  const none = await runNightly(plan('n8', 'none'), deps(night([9000, 9100], '2026-11-30T00:00:00Z'), 0, calls2));
  assert.equal({ verdict: none.verdict, ok: none.ok }, { verdict: 'no-baseline', ok: true });
  assert.equal(calls2.map((c) => c.script), ['bench/run.ts']);
});

test('a set-up that differs from the baseline: not compared, and the night ends well', async () => {
  const other = night([9000, 9100, 9200], '2026-12-01T00:00:00Z');
  other.environment.host_cpus = 8;
  const rec = await runNightly(plan('n9', { path: join(root, 'n1') }), deps(other));
  assert.equal({ verdict: rec.verdict, ok: rec.ok }, { verdict: 'not-comparable', ok: true });
  assert.equal(rec.why, ['host_cpus: 2 in the baseline, 8 now']);
});

test('the nightly runs every scenario of the catalog: every policy × transport, a new transport included', () => {
  assert.equal(nightlyScenarios(), SCENARIOS.map((s) => s.name));
  const combo = (s: ScenarioParams) => `${s.mode}/${s.switchover ?? 'mgmt'}/${s.transport ?? 'tcp'}`;
  const covered = (names: string[], cat: readonly ScenarioParams[]) => new Set(names.map((n) => combo(cat.find((s) => s.name === n)!)));
  assert.equal(covered(nightlyScenarios(), SCENARIOS), new Set(SCENARIOS.map(combo)));
  // A catalog with another transport: its scenarios join without a change to the nightly.
  const rdma = { ...SCENARIOS[1]!, name: 'postcopy-rdma', transport: 'rdma' as 'tcp' };
  const withRdma = [...SCENARIOS, { ...rdma, id: scenarioId(rdma) }];
  assert.equal(covered(nightlyScenarios(withRdma), withRdma), new Set(withRdma.map(combo)));
  assert.ok(covered(nightlyScenarios(withRdma), withRdma).has('postcopy/mgmt/rdma'));
  assert.equal(benchArgs({ ...plan('x'), scenarios: nightlyScenarios(), benchArgs: [] }).slice(0, 4), ['--testbed', 'nested', '--scenario', SCENARIOS.map((s) => s.name).join(',')]);
});

test('a night is named by its UTC start, to the minute, so names sort by time', () => {
  assert.is(nightStamp(new Date('2026-11-27T02:17:45.123Z')), '2026-11-27T02-17Z');
  assert.ok(nightStamp(new Date('2026-11-27T23:59:00Z')) < nightStamp(new Date('2026-11-28T00:00:00Z')));
  assert.ok(existsSync(join(root, 'n1', 'nightly.json')) && readFileSync(join(root, 'n1', 'nightly.json'), 'utf8').endsWith('}\n'));
});

test.run();
