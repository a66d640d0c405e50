/**
 * The report's transport and fault sections: the median fault latency from
 * the log2 distribution, beside the link probe and the same policy over tcp
 * of the same repeat; the recovery of each run with a fault; the warning for
 * an rdma run whose pages did not travel by RDMA READ; what the kernel's
 * resolver did in an rdma-kernel run, against rdma's guest of the same repeat.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatUs } from '../../bench/report/format.ts';
import type { LinkProbes, RunRecord } from '../../bench/results/schema.ts';
import { distQuantileUs, faultLatencyP50Us, summarize } from '../../bench/results/stats.ts';
import { faultLatencyTable, faultPathTable, kernelEngineTable, kernelIdle, notPulled, rdmaLinkTable, recoveryTable, tcpCounterpart, transportWarnings } from '../../bench/report/transport.ts';
import { fixtureEnv, fixtureResult, fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';

const probes: LinkProbes = {
  ib_read_lat: { bytes: 4096, iterations: 1000, t_min_us: 500, t_max_us: 9000, t_typical_us: 700, t_avg_us: 900, t_stdev_us: 300, p99_us: 5000, p999_us: 9000 },
  ib_read_bw: { bytes: 4096, iterations: 1000, bw_peak_mb_s: 10, bw_avg_mb_s: 9, msg_rate_mpps: 0.002, unit: 'MB/sec' },
  tcp_lat_us: 325, tcp_rr_us: 650, tcp_bw_bytes_s: 66e6, tools: 'fixture',
};
const nested = { l1_accel: 'tcg', l1_kernel: '6.12', up_ms: 20000, hosts: [], link_probes: probes };

test('the median fault latency from postcopy-latency-dist: in its bucket, interpolated geometrically', () => {
  assert.is(distQuantileUs([], 0.5), null);
  assert.is(distQuantileUs([0, 0, 0], 0.5), null);
  // 10 faults in [512, 1024) µs: the median is half-way (geometrically) through the bucket.
  assert.ok(Math.abs(distQuantileUs([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], 0.5)! - 512 * Math.SQRT2) < 1e-9);
  // The fixture: 10 in [512, 1024), 1 in [1, 2) ms, 1 in [2, 4) ms: the median is in the first bucket.
  const p50 = faultLatencyP50Us(fixtureRun(1))!;
  assert.ok(p50 >= 512 && p50 < 1024, String(p50));
  assert.ok(distQuantileUs([0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 1], 1)! <= 4096);
  assert.is(faultLatencyP50Us(fixtureRun(1, { noLatency: true })), null);
  assert.ok(summarize([fixtureRun(1)], MEM_MIB).postcopy_latency_p50_us?.median === p50, 'a summary metric');
});

function slower(repeat: number, factor: number): RunRecord {
  const r = fixtureRun(repeat);
  r.postcopy_latency = { ...r.postcopy_latency!, latency_dist: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10 * factor, 1, 1] };
  return r;
}

test('per run: fault latency beside the link probe and the same policy over tcp of the same repeat', () => {
  const tcp = fixtureScenario('full', 'postcopy', [fixtureRun(1), fixtureRun(2)], { switchover: 'qemu', transport: 'tcp' });
  const rdma = fixtureScenario('full-rdma', 'postcopy', [slower(1, 1), { ...slower(2, 1), postcopy_rdma: { destination: { destination: { 'read-latency-dist': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4] } } } }], { switchover: 'qemu', transport: 'rdma' });
  const other = fixtureScenario('postcopy-rdma', 'postcopy', [fixtureRun(1)], { transport: 'rdma' });
  const result = fixtureResult([tcp, rdma, other], fixtureEnv({ testbed: 'nested', nested }));
  assert.is(tcpCounterpart(result.scenarios, rdma), tcp);
  assert.is(tcpCounterpart(result.scenarios, other), undefined, 'another policy is no counterpart');
  const table = faultLatencyTable(result)!;
  const rows = table.split('\n').slice(2);
  assert.is(rows.length, 5);
  assert.match(table, '÷ RDMA READ 4 KiB typical (700 µs)');
  // The 6th of 12 faults, 6/10 into [2048, 4096) µs against 6/10 into [512, 1024): 4×; against the probe 2048·2^0.6/700.
  assert.match(rows[2]!, `| full-rdma | 1 | rdma | 12 | 3.1 ms | ${(2048 * 2 ** 0.6 / 700).toFixed(2)}× | 4.00× (full: 776 µs) | – | – |`);
  assert.match(rows[3]!, '| destination | 1.4 ms |', 'the READ latency when postcopy-rdma has a distribution');
  assert.match(rows[4]!, /\| postcopy-rdma \| 1 \| rdma \| .* \|  \| – \| – \| [\d.]+% \|$/);
  assert.is(faultLatencyTable(fixtureResult([fixtureScenario('precopy', 'precopy', [fixtureRun(1, { noLatency: true })])])), undefined);
  const local = faultLatencyTable(fixtureResult([tcp]))!;
  assert.match(local.split('\n')[2]!, '| full | 1 | tcp | 12 | 776 µs | – |', 'no probe off the nested testbed');
});

test('on a link with a delay of its own (wan): the fault against its round trip; the share of pages the background brought', () => {
  const tcp = fixtureScenario('full', 'postcopy', [fixtureRun(1), fixtureRun(2, { upstream: true })], { switchover: 'qemu', transport: 'tcp' });
  const wan = faultLatencyTable(fixtureResult([tcp], fixtureEnv({ testbed: 'nested', nested, link: 'wan', link_rtt_ms: 20 })))!;
  const [head, , row1, row2] = wan.split('\n');
  assert.match(head!, '| ÷ link RTT (20 ms) | post-copy pages that came in the background |');
  // p50 776 µs (the fixture's distribution) over 20 ms; 30000 of 30012 pages in the background.
  assert.match(row1!, `| ${(512 * 2 ** 0.6 / 20000).toFixed(2)}× | 99.96% |`);
  assert.match(row1!, /\| 0\.04× \| 99\.96% \|$/);
  assert.match(row2!, /\| – \|$/, 'upstream QEMU reports no demand/background split');
  const lan = faultLatencyTable(fixtureResult([tcp], fixtureEnv({ testbed: 'nested', nested })))!;
  assert.not.match(lan, 'link RTT', 'no RTT column on a link without a delay of its own');
});

test('recovery per run with a fault; the warning when an rdma run shows no pull', () => {
  const cut = [{ kind: 'cut', after: 'postcopy' as const, at_s: 2, duration_s: 3 }];
  const ok: RunRecord = { ...fixtureRun(1), recovery: { fault: 'cut@postcopy+2s:3s', outcome: 'recovered', cut_at_ms: 2500, restored_at_ms: 5500, paused_at_ms: { source: 2600, destination: 2650 }, time_to_pause_ms: 150, time_paused_ms: 3300, resumed_at_ms: 5950 } };
  const bad: RunRecord = { ...fixtureRun(1, { status: 'failed', reason: 'no recovery' }), recovery: { ...ok.recovery!, outcome: 'failed', reason: 'the destination refused migrate-recover: not supported', time_paused_ms: null, resumed_at_ms: null } };
  const result = fixtureResult([
    fixtureScenario('full-cut', 'postcopy', [ok], { switchover: 'qemu', faults: cut }),
    fixtureScenario('full-rdma-cut', 'postcopy', [bad], { switchover: 'qemu', transport: 'rdma', faults: cut }),
    fixtureScenario('full', 'postcopy', [fixtureRun(1)], { switchover: 'qemu' }),
  ]);
  const rows = recoveryTable(result)!.split('\n').slice(2);
  assert.equal(rows, [
    '| full-cut | 1 | tcp | cut@postcopy+2s:3s | recovered | 150 ms | 3.30 s | 0 bad / 40960 | |',
    '| full-rdma-cut | 1 | rdma | cut@postcopy+2s:3s | failed | 150 ms | – | not checked | the destination refused migrate-recover: not supported |',
  ].map((r) => r.replace('| |', '|  |')));
  assert.is(recoveryTable(fixtureResult([fixtureScenario('full', 'postcopy', [fixtureRun(1)])])), undefined);
  const rdma = fixtureScenario('full-rdma', 'postcopy', [fixtureRun(1), { ...fixtureRun(2), postcopy_rdma: { source: {} } }, { ...fixtureRun(3), bytes: { ...fixtureRun(3).bytes, postcopy: 1024 } }], { switchover: 'qemu', transport: 'rdma' });
  assert.equal(rdma.runs.map((r) => notPulled(rdma.scenario, r)), [true, false, false], 'pages over the channel and no postcopy-rdma; reported; no pages');
  const w = transportWarnings(fixtureResult([rdma]));
  assert.is(w.length, 1);
  assert.match(w[0]!, 'full-rdma run 1: no RDMA pull seen');
  assert.match(w[0]!, '50.0 MiB of pages');
});


test('RDMA pull on the link: READ latency, back-offs, wire per byte read, pages zeroed and the devices\' retransmissions', () => {
  const withPull: RunRecord = {
    ...fixtureRun(1),
    postcopy_rdma: { destination: { destination: { 'read-latency-dist': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4], 'read-latency-min': 900_000, 'background-backoffs': 7, 'bytes-read': 1000, 'zero-pages': 300 } } },
    rdma_counters: { source: { duplicate_request: 12, out_of_seq_request: 3, sent_pkts: 900 }, destination: { rcvd_seq_err: 5, completer_retry_err: 2, retry_exceeded_err: 0 } },
  };
  withPull.bytes = { ...withPull.bytes, wire: 1500 };
  const rdma = fixtureScenario('full-rdma', 'postcopy', [withPull, fixtureRun(2)], { switchover: 'qemu', transport: 'rdma' });
  const tcp = fixtureScenario('full', 'postcopy', [{ ...fixtureRun(1), rdma_counters: { source: {}, destination: {} } }], { switchover: 'qemu', transport: 'tcp' });
  const table = rdmaLinkTable(fixtureResult([tcp, rdma]))!;
  const rows = table.split('\n').slice(2);
  assert.is(rows.length, 1, 'rdma runs with pull figures or counters only');
  assert.is(rows[0], '| full-rdma | 1 | 1.4 ms | 900 µs | 7 | 1.50× | 300 | 12 | 3 | 5 | 2 | 0 |');
  const older = fixtureScenario('full-rdma', 'postcopy', [{ ...fixtureRun(1), postcopy_rdma: { destination: { destination: {} } } }], { switchover: 'qemu', transport: 'rdma' });
  assert.is(rdmaLinkTable(fixtureResult([older]))!.split('\n')[2], '| full-rdma | 1 | – | – | – | – | – | – | – | – | – | – |', 'a QEMU or testbed without them: dashes');
  assert.is(rdmaLinkTable(fixtureResult([tcp])), undefined);
});
test('where a fault\'s time goes: the slow writes the migration added in the guest, QEMU\'s latency and its traced stages', () => {
  // 10 s before migrate: 50 writes of 4 ms (timer noise); 5 s migrating: 25 of them (the same rate) and 12 of ~2 ms.
  const withSlow = (r: RunRecord, traced: boolean): RunRecord => ({
    ...r,
    guest: { ...r.guest, slow_before: { span_ms: 10_000, ops: 1e6, buckets: [[4_194_304, 50]] }, slow_migrating: { span_ms: 5000, ops: 1e5, buckets: [[1_835_008, 12], [4_194_304, 25]] } },
    ...(traced ? { fault_path: { faults: 11, to_post_us: 15, read_us: 1200, to_place_us: 40, total_us: 1260, read_share: 0.95 } } : {}),
  });
  const tcp = fixtureScenario('full', 'postcopy', [withSlow(fixtureRun(1), false), fixtureRun(2)], { switchover: 'qemu', transport: 'tcp' });
  const rdma = fixtureScenario('full-rdma', 'postcopy', [withSlow(fixtureRun(1), true)], { switchover: 'qemu', transport: 'rdma' });
  const rows = faultPathTable(fixtureResult([tcp, rdma]))!.split('\n').slice(2);
  assert.is(rows.length, 2, 'a run without slow writes has no row');
  // 12 writes added (the 25 at 4 ms are the guest's own rate); their median, half-way into [1835008, 2097152) ns.
  const mid = (1835.008 * (8 / 7) ** (6 / 12));
  assert.match(rows[0]!, `| full | 1 | tcp | 12 | 12 | ${formatUs(mid)} | 776 µs | – | – | – | – | – | – |`, 'no difference without the trace');
  assert.match(rows[1]!, `| full-rdma | 1 | rdma | 12 | 12 | ${formatUs(mid)} | 776 µs | 11 | 15 µs | 1.2 ms | 40 µs | 1.3 ms | ${formatUs(mid - 1260)} |`);
  assert.is(faultPathTable(fixtureResult([fixtureScenario('full', 'postcopy', [fixtureRun(1)])])), undefined);
});

test('the kernel\'s RDMA resolver per rdma-kernel run: its counters, QEMU\'s share, the guest\'s fault against rdma of the same repeat; a run it took no part in warned', () => {
  // The guest's slow writes: rdma's 12 of ~2 ms, rdma-kernel's 12 of ~0.5 ms (the guest's own 25 of 4 ms subtracted).
  const slow = (r: RunRecord, lo: number): RunRecord => ({
    ...r,
    guest: { ...r.guest, slow_before: { span_ms: 10_000, ops: 1e6, buckets: [[4_194_304, 50]] }, slow_migrating: { span_ms: 5000, ops: 1e5, buckets: [[lo, 12], [4_194_304, 25]] } },
  });
  // 40 READs timed: 30 in [256, 512) µs, 10 in [512, 1024): the median 2/3 into the first bucket.
  const dist = [...Array(8).fill(0), 30, 10];
  const kernel = (faults: number, extra: Record<string, unknown> = {}) => ({ destination: { destination: { 'demand-pages': 3, kernel: { attached: false, 'attach-time': 21, faults, declined: 2, pages: faults + 5, failed: 0, found: 9, unread: 4, 'read-latency': 290_000, 'read-latency-dist': dist, 'install-latency': 12_000, ...extra } } } });
  const user = fixtureScenario('full-rdma', 'postcopy', [slow(fixtureRun(1), 1_835_008), slow(fixtureRun(2), 1_835_008)], { switchover: 'qemu', transport: 'rdma' });
  const rk = fixtureScenario('full-rdma-kernel', 'postcopy', [
    { ...slow(fixtureRun(1), 458_752), postcopy_rdma: kernel(40) },
    { ...slow(fixtureRun(2), 458_752), postcopy_rdma: kernel(0, { pages: 0, 'attach-time': 0, error: 'connecting to 10.213.0.1: timed out' }) },
    { ...fixtureRun(3), postcopy_rdma: { destination: { destination: { 'demand-pages': 3 } } } },
  ], { switchover: 'qemu', transport: 'rdma-kernel' });
  const result = fixtureResult([user, rk]);
  const rows = kernelEngineTable(result)!.split('\n').slice(2);
  assert.is(rows.length, 3);
  const g = (lo: number) => (lo / 1000) * (8 / 7) ** (6 / 12);
  const p50 = 256 * 2 ** (20 / 30);
  assert.is(rows[0], `| full-rdma-kernel | 1 | yes, in 21 ms | 40 | 45 | 2 | 0 | 9 | 4 | 290 µs / ${formatUs(p50)} | 12 µs | 3 | ${formatUs(g(458.752 * 1000))} | ${formatUs(g(458.752 * 1000) - p50 - 12)} | 0.25× (full-rdma: ${formatUs(g(1_835_008))}) |`);
  assert.match(rows[1]!, '| full-rdma-kernel | 2 | no: connecting to 10.213.0.1: timed out | 0 | 0 |');
  // A QEMU before the kernel's distribution and install time: the mean only, no rest.
  const older = kernelEngineTable(fixtureResult([user, fixtureScenario('full-rdma-kernel', 'postcopy', [{ ...slow(fixtureRun(1), 458_752), postcopy_rdma: kernel(40, { 'read-latency-dist': undefined, 'install-latency': undefined }) }], { switchover: 'qemu', transport: 'rdma-kernel' })]))!.split('\n')[2]!;
  assert.match(older, `| 290 µs / – | – | 3 | ${formatUs(g(458.752 * 1000))} | – |`);
  // A READ median above the guest's: the estimates leave nothing, and nothing is shown.
  const slowRead = kernelEngineTable(fixtureResult([user, fixtureScenario('full-rdma-kernel', 'postcopy', [{ ...slow(fixtureRun(1), 458_752), postcopy_rdma: kernel(40, { 'read-latency-dist': [...Array(10).fill(0), 40] }) }], { switchover: 'qemu', transport: 'rdma-kernel' })]))!.split('\n')[2]!;
  assert.match(slowRead, `| 12 µs | 3 | ${formatUs(g(458.752 * 1000))} | – |`);
  assert.match(rows[2]!, /\| full-rdma-kernel \| 3 \| not reported \| – \| – \|/);
  assert.not.ok(kernelIdle(rk.scenario, rk.runs[0]!));
  assert.ok(kernelIdle(rk.scenario, rk.runs[1]!));
  assert.ok(kernelIdle(rk.scenario, rk.runs[2]!));
  assert.not.ok(kernelIdle(user.scenario, user.runs[0]!), 'rdma runs are no concern of it');
  const warned = transportWarnings(result).filter((w) => w.includes('resolved no fault'));
  assert.is(warned.length, 2);
  assert.match(warned[0]!, "full-rdma-kernel run 2: the kernel's RDMA resolver resolved no fault** — attaching it failed: connecting to 10.213.0.1: timed out");
  assert.match(warned[1]!, 'QEMU reported no `kernel` member');
  assert.is(kernelEngineTable(fixtureResult([user])), undefined);
  // With the link probe (a 4 KiB READ: 700 µs typical): only slow writes from 700 µs up can be faults. rdma's ~2 ms stay;
  // rdma-kernel's ~0.5 ms do not, so it has none, and no rest, no ratio.
  const probed = kernelEngineTable(fixtureResult([user, rk], fixtureEnv({ testbed: 'nested', nested })))!.split('\n');
  assert.match(probed[0]!, '| guest: slow write p50 (those ≥ 700 µs) |');
  assert.match(probed[2]!, `| 12 µs | 3 | – | – | – (full-rdma: ${formatUs(g(1_835_008))}) |`);
});

test.run();
