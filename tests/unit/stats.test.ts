/** Medians, summaries over completed runs, and ratios paired by repeat. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { baselineIndex, compareScenarios, latencyCdf, median, quantile, summarize } from '../../bench/results/stats.ts';
import { postcopyLatency } from '../../bench/engine/collect.ts';
import { registerSummary } from '../../bench/engine/side.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import type { MigrationInfo } from '../../tools/qmp/types.ts';
import { fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';

test('median and quantile: odd, even, empty, unsorted', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([]), null);
  assert.is(median([7]), 7);
  assert.is(quantile([10, 20, 30, 40, 50], 0), 10);
  assert.is(quantile([10, 20, 30, 40, 50], 1), 50);
  assert.is(quantile([10, 20, 30, 40, 50], 0.25), 20);
});

test('summarize uses completed runs only and counts statuses', () => {
  const runs = [
    fixtureRun(1, { total: 3000 }),
    fixtureRun(2, { total: 1000 }),
    fixtureRun(3, { total: 2000, wire: 512 * 1048576 }),
    fixtureRun(4, { status: 'not-converged', total: null }),
    fixtureRun(5, { status: 'failed', total: 99999, reason: 'boom' }),
  ];
  const s = summarize(runs, MEM_MIB);
  assert.equal(s.total_time_ms, { median: 2000, min: 1000, max: 3000, n: 3 });
  assert.is(s.runs?.median, 5);
  assert.is(s.completed?.median, 3);
  assert.is(s.not_converged?.median, 1);
  assert.is(s.failed?.median, 1);
  assert.is(s.wire_over_ram?.median, 1, 'wire 256 MiB over 256 MiB RAM');
  assert.is(s.wire_over_ram?.max, 2);
  assert.is(s.downtime_host_ms?.median, 15);
});

test('summarize with no completed run gives nulls, not zeros', () => {
  const s = summarize([fixtureRun(1, { status: 'failed', total: null })], MEM_MIB);
  assert.equal(s.total_time_ms, { median: null, min: null, max: null, n: 0 });
  assert.is(s.completed?.median, 0);
});

test('ratios pair runs by repeat and skip pairs where either did not complete', () => {
  const base = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1, { total: 1000 }), fixtureRun(2, { total: 2000 }), fixtureRun(3, { total: 4000 })]);
  const other = fixtureScenario('hybrid10', 'hybrid', [fixtureRun(1, { total: 3000 }), fixtureRun(2, { total: 2000 }), fixtureRun(3, { status: 'failed', total: 1 })]);
  base.summary = summarize(base.runs, MEM_MIB);
  other.summary = summarize(other.runs, MEM_MIB);
  const c = compareScenarios([base, other], 0);
  assert.is(c.baseline, 'postcopy-immediate');
  assert.is(c.ratios['hybrid-mgmt-switch10s']?.total_time_ms, 2, 'median of 3 and 1');
  assert.equal(c.spread?.['hybrid-mgmt-switch10s']?.total_time_ms, [1, 3]);
  assert.is(c.pairs?.['hybrid-mgmt-switch10s'], 2);
  assert.is(c.ratios['hybrid-mgmt-switch10s']?.downtime_bytes, null, 'baseline 0: no ratio');
  assert.not.ok('postcopy-immediate' in c.ratios, 'no ratio of the baseline to itself');
});

test('the baseline is the first scenario that completed a run', () => {
  const pre = fixtureScenario('precopy', 'precopy', [fixtureRun(1, { status: 'not-converged', total: null })]);
  const post = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1)]);
  assert.is(baselineIndex([pre, post]), 1);
  assert.is(baselineIndex([post, pre]), 0);
  assert.is(baselineIndex([pre]), 0);
  assert.throws(() => compareScenarios([pre], 3), /no scenario/);
});

test('post-copy fault latency: mean and max in µs from ns, heca-only figures absent with upstream QEMU, CDF from summed distributions', () => {
  const s = summarize([fixtureRun(1), fixtureRun(2)], MEM_MIB);
  assert.is(s.postcopy_faults?.median, 12);
  assert.is(s.postcopy_latency_mean_us?.median, 900);
  assert.is(s.postcopy_latency_max_us?.median, 3000);
  assert.is(s.postcopy_blocktime_ms?.median, 11);
  assert.is(s.postcopy_demand_pages?.median, 12);
  assert.is(s.postcopy_background_pages?.median, 30000);
  const up = summarize([fixtureRun(1, { upstream: true }), fixtureRun(2, { noLatency: true })], MEM_MIB);
  assert.equal(up.postcopy_latency_mean_us, { median: 900, min: 900, max: 900, n: 1 }, 'upstream QEMU: the mean, from the one run that has it');
  assert.is(up.postcopy_latency_max_us?.n, 0, 'no max without heca');
  assert.is(up.postcopy_demand_pages?.n, 0);
  assert.is(up.postcopy_background_pages?.n, 0);
  const none = fixtureRun(3);
  none.postcopy_latency = { ...none.postcopy_latency!, faults: 0, latency_mean_ns: 0, latency_max_ns: 0, latency_dist: Array<number>(24).fill(0) };
  const z = summarize([none], MEM_MIB);
  assert.is(z.postcopy_faults?.median, 0);
  assert.is(z.postcopy_latency_mean_us?.n, 0, 'no fault: no latency, not 0 µs');
  assert.is(z.postcopy_latency_max_us?.n, 0);
  assert.equal(latencyCdf([[1, 0, 3], [0, 0, 0, 4]]), [[2, 0.125], [4, 0.125], [8, 0.5], [16, 1]]);
  assert.equal(latencyCdf([[0, 0]]), [], 'no faults: no curve');
});

test('postcopyLatency: upstream 10.1 members, with and without heca\'s, absent when the gate is off', () => {
  const dist = [2, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 1, ...Array<number>(12).fill(0)];
  // A destination query-migrate of upstream QEMU 10.1 with the postcopy-blocktime capability.
  const upstream: MigrationInfo = {
    status: 'completed',
    'postcopy-blocktime': 7,
    'postcopy-vcpu-blocktime': [5, 7],
    'postcopy-latency': 1_250_000,
    'postcopy-latency-dist': dist,
    'postcopy-vcpu-latency': [1_000_000, 1_600_000],
    'postcopy-non-vcpu-latency': 400,
  };
  assert.equal(postcopyLatency(upstream), {
    faults: 8,
    latency_mean_ns: 1_250_000,
    latency_max_ns: null,
    latency_dist: dist,
    vcpu_latency_ns: [1_000_000, 1_600_000],
    non_vcpu_latency_ns: 400,
    demand_pages: null,
    background_pages: null,
    blocktime_ms: 7,
    vcpu_blocktime_ms: [5, 7],
  });
  const heca = postcopyLatency({ ...upstream, 'postcopy-latency-max': 2_500_000, 'postcopy-demand-pages': 6, 'postcopy-background-pages': 65000 });
  assert.is(heca?.faults, 8, 'the sum of postcopy-latency-dist');
  assert.is(heca?.latency_max_ns, 2_500_000);
  assert.is(heca?.demand_pages, 6);
  assert.is(heca?.background_pages, 65000);
  // The gate off (or post-copy never started): none of the members.
  assert.is(postcopyLatency({ status: 'completed' }), undefined);
  // Before QEMU 10.1, without heca's patches: blocktime only.
  assert.is(postcopyLatency({ status: 'completed', 'postcopy-blocktime': 3, 'postcopy-vcpu-blocktime': [3] }), undefined);
});

test('registerSummary: the CPU line a failed run reports from `info registers`', () => {
  // A real QEMU 10 `info registers` of a CPU at reset (real mode: EIP, not RIP).
  const real = readFileSync(join(repoRoot, 'tests', 'fixtures', 'info-registers-realmode.txt'), 'utf8');
  assert.is(registerSummary(real), 'EIP=0000fff0 CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000 EFER=0000000000000000');
  const long = 'RAX=0 RBX=1\nRIP=ffffffff81a3b2c1 RFL=00000246 [---Z-P-] CPL=0\nCR0=80050033 CR2=00007f1234567000 CR3=0000000004a0e000 CR4=00350ef0\nEFER=0000000000000d01\n';
  assert.is(registerSummary(long), 'RIP=ffffffff81a3b2c1 CR0=80050033 CR2=00007f1234567000 CR3=0000000004a0e000 CR4=00350ef0 EFER=0000000000000d01');
  assert.is(registerSummary('not registers'), '');
});

test.run();
