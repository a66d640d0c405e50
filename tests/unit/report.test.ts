/** Units, tables, and a report written from a result with a failed and a corrupted run. */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { faultsCell, formatBytes, formatMs, formatStat, formatUs, mdTable } from '../../bench/report/format.ts';
import { createCanvas, loadImage } from 'canvas';
import type { ChartConfiguration } from 'chart.js';
import { chartSpecs, renderChart, type ChartSpec } from '../../bench/report/charts.ts';
import { environmentTable, writeReport } from '../../bench/report/report.ts';
import { baselineIndex, compareScenarios, summarize } from '../../bench/results/stats.ts';
import { fixtureEnv, fixtureResult, fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';

test('human units', () => {
  assert.is(formatBytes(512), '512 B');
  assert.is(formatBytes(1536), '1.5 KiB');
  assert.is(formatBytes(256 * 1048576), '256.0 MiB');
  assert.is(formatBytes(3 * 1024 ** 3), '3.00 GiB');
  assert.is(formatBytes(null), '–');
  assert.is(formatMs(4.25), '4.3 ms');
  assert.is(formatMs(219), '219 ms');
  assert.is(formatMs(2133), '2.13 s');
  assert.is(formatMs(61_500), '61.5 s');
  assert.is(formatMs(undefined), '–');
  assert.is(formatUs(4.25), '4.3 µs');
  assert.is(formatUs(900), '900 µs');
  assert.is(formatUs(3000), '3.0 ms');
  assert.is(formatStat('postcopy_latency_mean_us', { median: 45.6, min: 30, max: 1500, n: 3 }), '46 µs [30 µs–1.5 ms]');
  assert.is(formatStat('total_time_ms', { median: 2000, min: 1500, max: 3000, n: 3 }), '2.00 s [1.50 s–3.00 s]');
  assert.is(formatStat('total_time_ms', { median: null, min: null, max: null, n: 0 }), '–');
});

test('a run\'s post-copy faults: count, mean, and max with heca\'s QEMU only', () => {
  assert.is(faultsCell(fixtureRun(1)), '12, mean 900 µs, max 3.0 ms');
  assert.is(faultsCell(fixtureRun(1, { upstream: true })), '12, mean 900 µs');
  assert.is(faultsCell(fixtureRun(1, { noLatency: true })), '–');
});

test('the environment names a post-copy bandwidth limit when the invocation set one', () => {
  assert.match(environmentTable(fixtureEnv({ postcopy_bandwidth_bytes_s: 2_000_000 })), '| post-copy bandwidth | 2.0 MB/s: max-postcopy-bandwidth on every source (--postcopy-bandwidth) |');
  assert.not.match(environmentTable(fixtureEnv()), 'post-copy bandwidth');
});

test('tables escape pipes', () => {
  assert.is(mdTable(['a', 'b'], [['x|y', 'z']]), '| a | b |\n|---|---|\n| x\\|y | z |');
});

test('the report puts failures first and draws every chart', async () => {
  const pre = fixtureScenario('precopy', 'precopy', [fixtureRun(1, { status: 'not-converged', total: null }), fixtureRun(2, { status: 'not-converged', total: null })]);
  const post = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1, { total: 2000 }), fixtureRun(2, { status: 'failed', bad: 3, reason: 'integrity check failed: 3 bad page(s)' })]);
  const hyb = fixtureScenario('hybrid10', 'hybrid', [fixtureRun(1, { total: 12000 }), fixtureRun(2, { status: 'failed', total: null, reason: 'QEMU destination exited mid-migration' })], { switchover: 'qemu', postcopy_on_convergence: true });
  const scenarios = [pre, post, hyb];
  for (const s of scenarios) s.summary = summarize(s.runs, MEM_MIB);
  const result = { ...fixtureResult(scenarios), comparison: compareScenarios(scenarios, baselineIndex(scenarios)) };
  const out = mkdtempSync(join(tmpdir(), 'heca-report-'));
  const path = await writeReport(result, out);
  const md = readFileSync(path, 'utf8');
  const failures = md.indexOf('## ⚠ Failures');
  assert.ok(failures > 0 && failures < md.indexOf('## Environment'), 'failures come before everything else');
  assert.match(md, 'postcopy run 2: integrity check FAILED** — 3 bad page(s) of 40960 (first: 7)');
  assert.match(md, 'hybrid10 run 2 failed**: QEMU destination exited mid-migration');
  assert.match(md, '## Ratios to postcopy-immediate');
  assert.match(md, '| total time | – | 6.00× |', 'precopy has no completed pair; hybrid10 r1 12 s vs 2 s');
  assert.match(md, '0 / 2 / 0', 'precopy: none completed, two not converged');
  assert.match(md, '| hybrid10 | hybrid-qemu-deadline10s-on-convergence | switch through post-copy (postcopy-on-convergence) |', 'heca hybrid: convergence switches through post-copy');
  assert.match(md, '| precopy | precopy-timeout120s | stop-and-copy |');
  assert.match(md, '| postcopy | postcopy-immediate | – (post-copy from the start) |');
  const charts = readdirSync(join(out, 'charts')).sort();
  assert.equal(charts, ['bytes.png', 'downtime.png', 'fault-latency-cdf.png', 'migration-time.png', 'pages.png', 'postcopy-pages.png', 'timeline-hybrid10.png', 'timeline-postcopy.png', 'timeline-precopy.png', 'wire-over-ram.png']);
  for (const c of charts) {
    const buf = readFileSync(join(out, 'charts', c));
    assert.equal([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${c} is a PNG`);
    assert.match(md, `(charts/${c})`, `${c} is linked from the report`);
  }
});

/** A result whose pre-copy never converged (cancelled at 15 s), next to a post-copy that completed. */
function withNotConverged() {
  const cancelled = (repeat: number) => ({ ...fixtureRun(repeat, { status: 'not-converged', total: null, wire: 1700 * 1048576 }), phases: [{ at_ms: 0, name: 'migrate' as const }, { at_ms: 15_000 + repeat, name: 'cancel' as const }] });
  const pre = fixtureScenario('precopy', 'precopy', [cancelled(1), cancelled(2)]);
  const post = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1, { total: 2000 }), fixtureRun(2, { total: 4000 })]);
  for (const s of [pre, post]) s.summary = summarize(s.runs, MEM_MIB);
  return { labels: ['precopy', 'postcopy'], scenarios: [pre, post], subtitle: 'fixture' };
}

const dataOf = (spec: ChartSpec | undefined, label: string) => spec?.config.data.datasets.find((d) => d.label === label)?.data;
const tick = (spec: ChartSpec | undefined, i: number) => (spec?.config.options?.scales?.x?.ticks as { callback: (v: unknown, i: number) => unknown }).callback(undefined, i);

test('charts show a pre-copy that never converged, marked, with what it cost until cancelled; downtime is STOP→RESUME', () => {
  const specs = chartSpecs(withNotConverged());
  const by = (key: string) => specs.find((c) => c.key === key);
  for (const key of ['time', 'downtime', 'bytes', 'overhead', 'pages']) {
    assert.equal(tick(by(key), 0), ['precopy', 'did not converge (cancelled at 15 s)'], `${key}: marked under its name`);
    assert.is(tick(by(key), 1), 'postcopy');
  }
  assert.equal(dataOf(by('time'), 'did not converge: until cancelled (median)'), [15.0015, null], 'time until cancelled');
  assert.equal(dataOf(by('time'), 'total time (median)'), [null, 3]);
  assert.equal(dataOf(by('time'), 'did not converge (each run)'), [{ x: 'precopy', y: 15.001 }, { x: 'precopy', y: 15.002 }]);
  assert.equal(dataOf(by('bytes'), 'pre-copy'), [100, 100], 'the bytes it sent until then are drawn');
  assert.equal(dataOf(by('bytes'), 'on the wire (link, both ways)'), [1700, 256]);
  assert.equal(dataOf(by('overhead'), 'did not converge: until cancelled (median)'), [1700 / MEM_MIB, null]);
  assert.equal(dataOf(by('downtime'), 'downtime STOP→RESUME (median)'), [null, 15], 'the host-measured downtime (fixtures: QEMU says 10 ms)');
  assert.match(String(by('downtime')?.config.options?.plugins?.title?.text), 'STOP → destination RESUME (host-measured)');
  assert.match(String(by('timeline:precopy')?.config.options?.plugins?.title?.text), 'did not converge (cancelled at 15 s)');
});

test('the timeline charts the query-migrate history when the run has one', () => {
  const inp = withNotConverged();
  inp.scenarios[1]!.runs[0]!.progress = [0, 200, 400].map((t, i) => ({ t_ms: t, status: 'active', transferred: i * 1048576, remaining: (3 - i) * 1048576, dirty_rate: 1000, postcopy_requests: 0, mbps: 800 }));
  const tl = chartSpecs(inp).find((c) => c.key === 'timeline:postcopy');
  assert.equal(dataOf(tl, 'RAM still to send (MiB, query-migrate)'), [{ x: 0, y: 3 }, { x: 0.2, y: 2 }, { x: 0.4, y: 1 }]);
  assert.is(chartSpecs(inp).find((c) => c.key === 'timeline:precopy')?.config.data.datasets.length, 2, 'no history, no line');
});

/** Pixels with colour in them (not white, grey or black): what the data draws, and the legend's swatches. */
async function colouredPixels(png: Buffer): Promise<number> {
  const img = await loadImage(png);
  const ctx = createCanvas(img.width, img.height).getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, img.width, img.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) if (Math.max(px[i]!, px[i + 1]!, px[i + 2]!) - Math.min(px[i]!, px[i + 1]!, px[i + 2]!) > 40) n++;
  return n;
}

test('every chart draws its data: more coloured pixels than the same chart with its data taken out', async () => {
  const inp = withNotConverged();
  const specs = chartSpecs(inp);
  const empty = chartSpecs(inp).map((c) => ({ ...c.config, data: { ...c.config.data, datasets: c.config.data.datasets.map((d) => ({ ...d, data: [] })) } }) as ChartConfiguration);
  assert.equal(specs.map((c) => c.key), ['time', 'downtime', 'bytes', 'overhead', 'pages', 'faultCdf', 'demand', 'timeline:precopy', 'timeline:postcopy']);
  for (const [i, c] of specs.entries()) {
    const full = await colouredPixels(await renderChart(c.config));
    const none = await colouredPixels(await renderChart(empty[i]!));
    assert.ok(full - none > 300, `${c.file}: ${full} coloured pixels with data, ${none} without`);
  }
});

test('upstream QEMU\'s statistics: the fault latency CDF, no demand/background chart; without statistics neither', async () => {
  const up = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1, { upstream: true }), fixtureRun(2, { noLatency: true })]);
  up.summary = summarize(up.runs, MEM_MIB);
  const out = mkdtempSync(join(tmpdir(), 'heca-report-'));
  const md = readFileSync(await writeReport(fixtureResult([up]), out), 'utf8');
  const charts = readdirSync(join(out, 'charts'));
  assert.ok(charts.includes('fault-latency-cdf.png'));
  assert.not.ok(charts.includes('postcopy-pages.png'), 'no heca page counts: no chart');
  assert.match(md, '| post-copy fault latency, mean | 900 µs |');
  assert.match(md, '| post-copy fault latency, max | – |');
  const none = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1, { noLatency: true })]);
  none.summary = summarize(none.runs, MEM_MIB);
  const out2 = mkdtempSync(join(tmpdir(), 'heca-report-'));
  await writeReport(fixtureResult([none]), out2);
  const charts2 = readdirSync(join(out2, 'charts'));
  assert.not.ok(charts2.includes('fault-latency-cdf.png') || charts2.includes('postcopy-pages.png'));
});

test.run();
