/**
 * The guest's progress in post-copy: page writes per second on the
 * destination between its resume and the end against the warm-up on the
 * source, per writer thread, and the intervals in which a writer (or all)
 * did nothing; the workload preset with threads on vCPUs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { progressTable } from '../../bench/report/progress.ts';
import { postcopyProgress, progressRatio } from '../../bench/results/progress.ts';
import type { OpsSample, RunRecord } from '../../bench/results/schema.ts';
import { compareScenarios, summarize } from '../../bench/results/stats.ts';
import { makeWorkload } from '../../bench/scenario/workloads.ts';
import { asyncPfCounts, parseTraceCounts } from '../../bench/testbed/nested/kvm-trace.ts';
import { fixtureResult, fixtureRun, fixtureScenario } from '../fixtures/results.ts';

const tick = (t_ms: number, side: 'src' | 'dst', threads: number[]): OpsSample => ({ t_ms, ops: threads.reduce((a, n) => a + n, 0), interval_ms: 100, max_stall_ms: 1, side, threads });

function threaded(during: number[][]): RunRecord {
  const r = fixtureRun(1);
  r.phases = [{ at_ms: 0, name: 'migrate' }, { at_ms: 400, name: 'postcopy-switch' }, { at_ms: 450, name: 'stop' }, { at_ms: 520, name: 'resume-dest' }, { at_ms: 1500, name: 'completed' }];
  r.guest.ops_timeline = [
    tick(-200, 'src', [100, 100, 100, 100]),
    tick(-100, 'src', [100, 100, 100, 100]),
    tick(0, 'src', [90, 90, 90, 90]),
    // Straddles the resume: not wholly in post-copy.
    tick(600, 'dst', [0, 0, 0, 0]),
    ...during.map((t, i) => tick(700 + 100 * i, 'dst', t)),
    // After the end.
    tick(1600, 'dst', [1, 1, 1, 1]),
  ];
  return r;
}

test('progress in post-copy against before, per writer; idle intervals counted', () => {
  const r = threaded([[80, 0, 100, 100], [80, 40, 100, 100], [0, 0, 0, 0], [80, 40, 100, 100]]);
  const p = postcopyProgress(r)!;
  assert.is(p.before, 4000);
  assert.is(p.during, (280 + 320 + 0 + 320) * 10 / 4);
  assert.equal(p.threadsBefore, [1000, 1000, 1000, 1000]);
  assert.equal(p.threadsDuring, [600, 200, 750, 750]);
  assert.equal([p.ticks, p.someIdle, p.allIdle], [4, 2, 1]);
  const row = progressTable(fixtureResult([fixtureScenario('full-rdma-kernel', 'postcopy', [r], { switchover: 'qemu', transport: 'rdma-kernel' })]))!.split('\n')[2]!;
  assert.is(row, '| full-rdma-kernel | 1 | rdma-kernel | 4 | 4000/s | 2300/s | 0.57× | 0.20× – 0.75× | 2 / 1 of 4 | – |');
  r.async_pf = asyncPfCounts(parseTraceCounts('kvm_try_async_get_page 120\nkvm_async_pf_not_present 100\nkvm_apic_accept_irq 90\nkvm_async_pf_repeated_fault 4\n'));
  assert.equal(r.async_pf, { tried: 120, repeated: 4, queued: 100, told: 90, halted: 14 });
  const withApf = progressTable(fixtureResult([fixtureScenario('full-rdma-kernel', 'postcopy', [r], { switchover: 'qemu', transport: 'rdma-kernel' })]))!.split('\n')[2]!;
  assert.match(withApf, /\| 120 \/ 90 \/ 14 \|$/);
});

test('KVM trace counts: page-ready interrupts never exceed the work queued; nothing counted is zero', () => {
  assert.equal(parseTraceCounts('kvm_try_async_get_page 3\nnoise\nkvm_apic_accept_irq 7\n'), { kvm_try_async_get_page: 3, kvm_apic_accept_irq: 7 });
  assert.equal(asyncPfCounts({ kvm_async_pf_not_present: 5, kvm_apic_accept_irq: 7 }), { tried: 0, repeated: 0, queued: 5, told: 5, halted: 0 });
  assert.equal(asyncPfCounts({}), { tried: 0, repeated: 0, queued: 0, told: 0, halted: 0 });
});

test('a one-writer guest has a row too; a run without post-copy on the destination has none', () => {
  const one = fixtureRun(1);
  one.phases = [...one.phases, { at_ms: 300, name: 'postcopy-switch' }];
  const p = postcopyProgress(one)!;
  // The fixture: 50000 ops before migrate; in post-copy only the tick at 700 ms (600's interval began before the resume at 520).
  assert.equal([p.before, p.during, p.threadsBefore, p.ticks, p.someIdle], [500000, 300000, [], 1, 0]);
  assert.is(postcopyProgress(fixtureRun(1)), undefined, 'no post-copy switch: pre-copy');
  assert.is(postcopyProgress({ ...threaded([[1, 1, 1, 1]]), status: 'failed' }), undefined, 'a failed run: its guest may not have run on');
  const failed = threaded([[1, 1, 1, 1]]);
  failed.phases = failed.phases.filter((x) => x.name !== 'completed');
  assert.is(postcopyProgress(failed), undefined);
  assert.is(progressTable(fixtureResult([fixtureScenario('precopy', 'precopy', [fixtureRun(1)])])), undefined);
});

test('the threads workload: 4 writers on 2 vCPUs, the whole arena, mostly their hot tenth, flat out', () => {
  const w = makeWorkload('threads', 512);
  assert.equal([w.threads, w.vcpus, w.write_rate, w.pattern, w.working_set_mib, w.arena_mib], [4, 2, 0, 'hotcold', 416, 416]);
  assert.not.ok('threads' in makeWorkload('write-heavy', 512), 'one-writer workloads record no threads');
});

test('the threads-paced workload: the same writers at 6000 page writes/s in all', () => {
  const w = makeWorkload('threads-paced', 512);
  assert.equal([w.threads, w.vcpus, w.write_rate, w.pattern, w.working_set_mib], [4, 2, 6000, 'hotcold', 416]);
});

test('progress is a compared metric: a scenario against its async-PF-off variant, paired by repeat', () => {
  const apf = [threaded([[80, 40, 100, 100]]), threaded([[100, 100, 100, 100]])];
  const noapf = [threaded([[40, 20, 50, 50]]), threaded([[50, 50, 50, 50]])];
  noapf[1]!.repeat = 2;
  apf[1]!.repeat = 2;
  assert.is(progressRatio(apf[0]!), 3200 / 4000);
  const base = fixtureScenario('full-rdma-kernel+noapf', 'postcopy', noapf, { switchover: 'qemu', transport: 'rdma-kernel' });
  const s = fixtureScenario('full-rdma-kernel', 'postcopy', apf, { switchover: 'qemu', transport: 'rdma-kernel' });
  const cmp = compareScenarios([base, s], 0);
  assert.is(cmp.ratios[s.scenario.id]!.postcopy_progress, 2);
  assert.equal(cmp.spread![s.scenario.id]!.postcopy_progress, [2, 2]);
  assert.is(summarize(s.runs, 512).postcopy_progress!.median, (0.8 + 1) / 2);
  assert.is(progressRatio(fixtureRun(1)), null, 'pre-copy: none');
});

test.run();
