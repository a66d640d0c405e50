/**
 * The fault path of a run (bench/engine/fault-path.ts): medians of the
 * destination QEMU's per-fault trace lines; and the guest's slow page
 * writes read as a distribution (slowQuantileUs), on buckets made by the
 * guest workload's own C (tests/fixtures/workload-slow.c compiles it in).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { faultPath } from '../../bench/engine/fault-path.ts';
import { parseGuestLine, type SlowMessage } from '../../bench/guest/channel.ts';
import { slowQuantileUs } from '../../bench/results/stats.ts';
import { repoRoot } from '../../tools/core/paths.ts';

const line = (post: number, read: number, place: number, off = 0x1000) =>
  `4242@1795801164.123456:postcopy_rdma_dst_demand_placed pc.ram offset 0x${off.toString(16)}: READ posted ${post} ns after the fault, completed in ${read} ns, placed ${place} ns after`;

test('medians of each stage over the traced faults; other lines ignored', () => {
  const log = [
    'qemu-system-x86_64: warning: something else',
    line(10_000, 1_000_000, 50_000),
    '4242@1795801164.2:postcopy_rdma_dst_fault pc.ram offset 0x2000 slot 3',
    line(30_000, 3_000_000, 70_000, 0x3000),
    line(20_000, 2_000_000, 60_000, 0x5000),
  ].join('\n');
  const p = faultPath(log);
  assert.equal(p, { faults: 3, to_post_us: 20, read_us: 2000, to_place_us: 60, total_us: 2080, read_share: 2_000_000 / 2_080_000 });
});

test('no traced fault: no fault path', () => {
  assert.is(faultPath('4242@1.0:postcopy_rdma_dst_start \n'), undefined);
});

const workloadSlow = (() => {
  const bin = join(mkdtempSync(join(tmpdir(), 'heca-slow-')), 'workload-slow');
  const cc = spawnSync('gcc', ['-O2', '-o', bin, join(repoRoot, 'tests', 'fixtures', 'workload-slow.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr}`);
  return (ns: number[]) => {
    const r = spawnSync(bin, ns.map(String), { encoding: 'utf8' });
    const m = parseGuestLine(r.stdout);
    if (!m || m.t !== 'slow') throw new Error(`workload-slow said: ${r.stdout}${r.stderr}`);
    return m as SlowMessage;
  };
})();

test('the workload puts every write of 65.5 µs or more in the quarter-octave bucket that holds it', () => {
  const ns = [-5, 1000, 65_535, 65_536, 81_919, 81_920, 1_000_000, 4_000_000, 4_194_304, 123_456_789, 99_999_999_999];
  const m = workloadSlow(ns);
  assert.is(m.ops, ns.length);
  const counted = m.writes.reduce((a, [, n]) => a + n, 0);
  assert.is(counted, ns.filter((x) => x >= 65_536).length, 'shorter writes are not counted; a negative time neither');
  const los = m.writes.map(([lo]) => lo);
  for (const x of ns.filter((v) => v >= 65_536 && v < 60_129_542_144)) {
    const lo = Math.max(...los.filter((l) => l <= x));
    const q = Math.round((lo / 2 ** Math.floor(Math.log2(lo))) * 4);
    assert.ok(x < (lo * (q + 1)) / q, `${x} ns is not in the bucket from ${lo}`);
  }
  assert.equal(m.writes.find(([lo]) => lo === 65_536), [65_536, 2]);
  assert.equal(m.writes.at(-1), [60_129_542_144, 1], 'the last bucket holds everything longer');
});

test('quantiles of the slow writes: within the bucket that holds them, above a floor', () => {
  // 100 writes of ~1 ms (bucket [917504, 1048576) ns), 100 of ~4 ms ([3670016, 4194304)).
  const m = workloadSlow([...Array(100).fill(1_000_000), ...Array(100).fill(4_000_000), 70_000]);
  const p25 = slowQuantileUs(m.writes, 0.25, 200_000)!;
  assert.ok(p25 >= 917.504 && p25 < 1048.576, String(p25));
  const p75 = slowQuantileUs(m.writes, 0.75, 200_000)!;
  assert.ok(p75 >= 3670.016 && p75 < 4194.304, String(p75));
  assert.ok(slowQuantileUs(m.writes, 0.001)! < 81.92, 'without a floor the 70 µs write counts');
  assert.is(slowQuantileUs(m.writes, 0.5, 10_000_000), null);
});

test.run();
