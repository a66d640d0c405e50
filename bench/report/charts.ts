/**
 * PNG charts of a benchmark result (chartjs-node-canvas): migration time and
 * downtime per scenario, bytes by phase against the guest RAM, wire/RAM
 * overhead, pages, and the guest's throughput over time with the migration
 * phases marked and the RAM still to send. Bars are medians; every run is
 * also drawn as a point, so the spread shows. Downtime is the host-measured
 * one (source STOP → destination RESUME). A scenario whose pre-copy never
 * converged is shown with what it cost until it was cancelled, its bars grey
 * and its label saying "did not converge (cancelled at N s)"; such runs are
 * red crosses wherever they appear. Absolute figures only mean something
 * within one run: the subtitle names the environment.
 *
 * chartSpecs() builds every chart's configuration from the result (pure, what
 * the tests look at); writeCharts() renders them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChartConfiguration, ChartDataset, Plugin } from 'chart.js';
import { ChartJSNodeCanvas } from 'chartjs-node-canvas';
import type { Environment, RunRecord, ScenarioResult } from '../results/schema.ts';
import { latencyCdf, median } from '../results/stats.ts';

const W = 960;
const H = 540;
const MIB = 1048576;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const PHASE_COLORS: Record<string, string> = {
  migrate: '#555555',
  'postcopy-switch': '#d62728',
  stop: '#9467bd',
  'resume-dest': '#2ca02c',
  completed: '#1f77b4',
  cancel: '#7f7f7f',
  failed: '#000000',
  cut: '#e377c2',
  paused: '#e377c2',
  'link-restored': '#8c564b',
  recover: '#8c564b',
  resumed: '#2ca02c',
};
/** Bars of a scenario that never converged. */
const NOT_CONVERGED = '#bbbbbb';

export interface ChartInput {
  /** Column label per scenario (names may collide across compared results). */
  labels: string[];
  scenarios: ScenarioResult[];
  /** Subtitle: the environment the numbers come from. */
  subtitle: string;
}

let canvas: ChartJSNodeCanvas | undefined;
function renderer(): ChartJSNodeCanvas {
  canvas ??= new ChartJSNodeCanvas({ width: W, height: H, backgroundColour: 'white' });
  return canvas;
}

export function envSubtitle(env: Environment): string {
  return `${env.accel.toUpperCase()}, QEMU ${env.qemu_version.replace(/^QEMU emulator version /, '')}, link ${env.link_desc}, ${env.host_cpus} host CPUs`;
}

function title(text: string, subtitle: string) {
  return { title: { display: true, text, font: { size: 16 } }, subtitle: { display: true, text: subtitle } };
}

const completed = (s: ScenarioResult) => s.runs.filter((r) => r.status === 'completed');
const notConverged = (s: ScenarioResult) => s.runs.filter((r) => r.status === 'not-converged');
const num = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Seconds after migrate at which a not-converged run was cancelled (version 1 results: the scenario's timeout). */
export function cancelledAtS(r: RunRecord, s: ScenarioResult): number {
  const c = r.phases.find((p) => p.name === 'cancel');
  return c ? c.at_ms / 1000 : s.scenario.converge_timeout_s;
}

/** A scenario that has no completed run but runs that did not converge: shown by what those cost. */
export function neverConverged(s: ScenarioResult): boolean {
  return completed(s).length === 0 && notConverged(s).length > 0;
}

/** The runs a scenario's bars are the medians of: the completed ones, or those that did not converge if none completed. */
const shown = (s: ScenarioResult) => (neverConverged(s) ? notConverged(s) : completed(s));

/** "did not converge (cancelled at 120 s)", for a scenario shown by runs that did not converge. */
export function notConvergedNote(s: ScenarioResult): string {
  const at = median(notConverged(s).map((r) => cancelledAtS(r, s))) ?? s.scenario.converge_timeout_s;
  return `did not converge (cancelled at ${Math.round(at)} s)`;
}

/** The category axis: the scenario labels, and under the name of one that never converged, that it did not. */
function categoryAxis(inp: ChartInput, extra: Record<string, unknown> = {}) {
  const lines = inp.scenarios.map((s, i) => (neverConverged(s) ? [inp.labels[i]!, notConvergedNote(s)] : inp.labels[i]!));
  return { ...extra, ticks: { callback: (_value: unknown, index: number) => lines[index] } };
}

type BarDataset = ChartDataset<'bar' | 'line', (number | null | { x: string; y: number })[]>;

/**
 * Median bars plus one point per run, for one metric: completed runs black
 * dots, runs that did not converge red crosses (their value is what they
 * cost until cancelled, see `get`). A scenario without completed runs gets a
 * grey bar, the median of its runs that did not converge.
 */
function barsWithRuns(inp: ChartInput, label: string, get: (r: RunRecord, s: ScenarioResult) => number | null | undefined, color: string): BarDataset[] {
  const medianOf = (s: ScenarioResult) => median(shown(s).map((r) => get(r, s)).filter(num));
  const points = (runs: (s: ScenarioResult) => RunRecord[]) => inp.scenarios.flatMap((s, i) => runs(s).map((r) => get(r, s)).filter(num).map((y) => ({ x: inp.labels[i]!, y })));
  const sets: BarDataset[] = [
    { type: 'bar', label: `${label} (median)`, data: inp.scenarios.map((s) => (neverConverged(s) ? null : medianOf(s))), backgroundColor: `${color}99`, borderColor: color, borderWidth: 1, grouped: false },
  ];
  if (inp.scenarios.some(neverConverged)) {
    sets.push({ type: 'bar', label: 'did not converge: until cancelled (median)', data: inp.scenarios.map((s) => (neverConverged(s) ? medianOf(s) : null)), backgroundColor: NOT_CONVERGED, borderColor: '#7f7f7f', borderWidth: 1, grouped: false });
  }
  sets.push({ type: 'line', label: `${label} (each run)`, data: points(completed), showLine: false, pointRadius: 4, pointBackgroundColor: '#000000', borderColor: '#000000' });
  const nc = points(notConverged);
  if (nc.length) sets.push({ type: 'line', label: 'did not converge (each run)', data: nc, showLine: false, pointStyle: 'crossRot', pointRadius: 7, borderWidth: 2, borderColor: '#d62728', pointBorderColor: '#d62728' });
  return sets;
}

function barConfig(inp: ChartInput, text: string, yTitle: string, datasets: BarDataset[], extraPlugins: Plugin[] = []): ChartConfiguration {
  return {
    type: 'bar',
    data: { labels: inp.labels, datasets: datasets as ChartDataset<'bar'>[] },
    options: {
      plugins: { ...title(text, inp.subtitle), legend: { position: 'bottom' } },
      scales: { x: categoryAxis(inp), y: { beginAtZero: true, title: { display: true, text: yTitle } } },
    },
    plugins: extraPlugins,
  } as ChartConfiguration;
}

/** A horizontal reference line at y = value on the y scale. */
function hline(value: number, label: string): Plugin {
  return {
    id: `hline-${label}`,
    afterDatasetsDraw(chart) {
      const y = chart.scales.y?.getPixelForValue(value);
      if (y === undefined) return;
      const { ctx, chartArea } = chart;
      ctx.save();
      ctx.strokeStyle = '#d62728';
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(chartArea.left, y);
      ctx.lineTo(chartArea.right, y);
      ctx.stroke();
      ctx.fillStyle = '#d62728';
      ctx.fillText(label, chartArea.left + 4, y - 4);
      ctx.restore();
    },
  };
}

/** Vertical labelled lines at the phase marks (x in seconds). */
function phaseLines(marks: { at_s: number; name: string }[]): Plugin {
  return {
    id: 'phases',
    afterDatasetsDraw(chart) {
      const { ctx, chartArea } = chart;
      const x = chart.scales.x;
      if (!x) return;
      ctx.save();
      marks.forEach((m, i) => {
        const px = x.getPixelForValue(m.at_s);
        if (px < chartArea.left || px > chartArea.right) return;
        ctx.strokeStyle = PHASE_COLORS[m.name] ?? '#000000';
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(px, chartArea.top);
        ctx.lineTo(px, chartArea.bottom);
        ctx.stroke();
        ctx.fillStyle = ctx.strokeStyle;
        const left = px > chartArea.right - 160;
        ctx.textAlign = left ? 'right' : 'left';
        ctx.fillText(`${m.name} ${m.at_s.toFixed(1)}s`, left ? px - 3 : px + 3, chartArea.top + 12 + (i % 6) * 12);
      });
      ctx.restore();
    },
  };
}

/** One chart: its key in the report, its file under charts/, its Chart.js configuration. */
export interface ChartSpec {
  key: string;
  file: string;
  config: ChartConfiguration;
}

/** A chart as PNG. */
export function renderChart(cfg: ChartConfiguration): Promise<Buffer> {
  return renderer().renderToBuffer(cfg, 'image/png');
}

export function fileSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** The run to show a timeline for: the completed run with the median total time, else the first run. */
export function representativeRun(s: ScenarioResult): RunRecord | undefined {
  const done = completed(s).filter((r) => num(r.total_time_ms)).sort((a, b) => a.total_time_ms! - b.total_time_ms!);
  return done[Math.floor((done.length - 1) / 2)] ?? s.runs[0];
}

/** Write every chart into `dir`; returns chart key → file path. */
export async function writeCharts(inp: ChartInput, dir: string): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const c of chartSpecs(inp)) {
    const path = join(dir, c.file);
    writeFileSync(path, await renderChart(c.config));
    out[c.key] = path;
  }
  return out;
}

/** The configuration of every chart of `inp`, in the report's order. */
export function chartSpecs(inp: ChartInput): ChartSpec[] {
  const out: ChartSpec[] = [];
  const add = (key: string, file: string, config: ChartConfiguration) => out.push({ key, file, config });
  // A run that did not converge took until its cancel; QEMU gives it no total time.
  const timeS = (r: RunRecord, s: ScenarioResult) => (r.status === 'not-converged' ? cancelledAtS(r, s) : num(r.total_time_ms) ? r.total_time_ms / 1000 : null);
  add('time', 'migration-time.png', barConfig(inp, 'Total migration time (did not converge: time until cancelled)', 'seconds', barsWithRuns(inp, 'total time', timeS, COLORS[0]!)));
  add('downtime', 'downtime.png', barConfig(inp, 'Downtime: source STOP → destination RESUME (host-measured)', 'milliseconds', barsWithRuns(inp, 'downtime STOP→RESUME', (r) => r.downtime_host_ms, COLORS[3]!)));

  const ramMib = Math.max(...inp.scenarios.map((s) => s.workload.mem_mib));
  const phase = (label: string, get: (r: RunRecord) => number, color: string): ChartDataset<'bar', (number | null)[]> => ({
    label, stack: 'ram', backgroundColor: color,
    data: inp.scenarios.map((s) => median(shown(s).map((r) => get(r) / MIB))),
  });
  add('bytes', 'bytes.png', {
    type: 'bar',
    data: {
      labels: inp.labels,
      datasets: [
        phase('pre-copy', (r) => r.bytes.precopy, COLORS[0]!),
        phase('while stopped', (r) => r.bytes.downtime, COLORS[3]!),
        phase('post-copy', (r) => r.bytes.postcopy, COLORS[2]!),
        { label: 'on the wire (link, both ways)', stack: 'wire', backgroundColor: COLORS[7]!, data: inp.scenarios.map((s) => median(shown(s).map((r) => r.bytes.wire / MIB))) },
      ],
    },
    options: {
      plugins: { ...title('Bytes sent, by migration phase (medians; did not converge: until cancelled)', inp.subtitle), legend: { position: 'bottom' } },
      scales: { x: categoryAxis(inp, { stacked: true }), y: { stacked: true, beginAtZero: true, title: { display: true, text: 'MiB' } } },
    },
    plugins: [hline(ramMib, `guest RAM ${ramMib} MiB`)],
  } as ChartConfiguration);
  add('overhead', 'wire-over-ram.png', barConfig(inp, 'Network overhead: bytes on the wire ÷ guest RAM', 'ratio', barsWithRuns(inp, 'wire / RAM', (r, s) => r.bytes.wire / (s.workload.mem_mib * MIB), COLORS[1]!), [hline(1, '1.0 = each byte of RAM once')]));
  const pages = (label: string, get: (r: RunRecord) => number, color: string): ChartDataset<'bar', (number | null)[]> => ({
    label, backgroundColor: color, data: inp.scenarios.map((s) => median(shown(s).map(get))),
  });
  add('pages', 'pages.png', {
    type: 'bar',
    data: { labels: inp.labels, datasets: [pages('normal pages sent', (r) => r.pages.normal, COLORS[0]!), pages('zero pages', (r) => r.pages.zero, COLORS[7]!), pages('post-copy page requests', (r) => r.pages.postcopy_requests, COLORS[3]!)] },
    options: {
      plugins: { ...title('Pages (medians)', inp.subtitle), legend: { position: 'bottom' } },
      scales: { x: categoryAxis(inp), y: { type: 'logarithmic', title: { display: true, text: 'pages (log scale)' } } },
    },
  } as ChartConfiguration);

  // The destination's post-copy statistics (postcopy_latency): any QEMU with upstream 10.1's, heca's pages split.
  const withFaults = inp.scenarios.map((s, i) => ({ s, label: inp.labels[i]!, runs: completed(s).filter((r) => (r.postcopy_latency?.faults ?? 0) > 0) })).filter((x) => x.runs.length);
  if (withFaults.length) {
    add('faultCdf', 'fault-latency-cdf.png', {
      type: 'line',
      data: {
        datasets: withFaults.map((x, j) => ({
          label: `${x.label} (${x.runs.reduce((a, r) => a + r.postcopy_latency!.faults, 0)} faults, ${x.runs.length} runs)`,
          data: latencyCdf(x.runs.map((r) => r.postcopy_latency!.latency_dist)).map(([x0, y]) => ({ x: x0, y })),
          borderColor: COLORS[j % COLORS.length], backgroundColor: COLORS[j % COLORS.length], stepped: 'before', pointRadius: 2,
        })),
      },
      options: {
        parsing: false,
        plugins: { ...title('Post-copy remote fault latency, CDF (destination; fault → page placed)', inp.subtitle), legend: { position: 'bottom' } },
        scales: { x: { type: 'logarithmic', title: { display: true, text: 'latency < µs (power-of-two buckets of postcopy-latency-dist)' } }, y: { min: 0, max: 1, title: { display: true, text: 'fraction of faults' } } },
      },
    } as ChartConfiguration);
  }
  const demand = (r: RunRecord) => r.postcopy_latency?.demand_pages;
  const background = (r: RunRecord) => r.postcopy_latency?.background_pages;
  if (inp.scenarios.some((s) => completed(s).some((r) => num(demand(r)) || num(background(r))))) {
    const split = (label: string, get: (r: RunRecord) => number | null | undefined, color: string): ChartDataset<'bar', (number | null)[]> => ({
      label, stack: 'pages', backgroundColor: color,
      data: inp.scenarios.map((s) => median(completed(s).map(get).filter(num))),
    });
    add('demand', 'postcopy-pages.png', {
      type: 'bar',
      data: { labels: inp.labels, datasets: [split('on demand (requested by a fault)', demand, COLORS[3]!), split('background stream', background, COLORS[2]!)] },
      options: {
        plugins: { ...title('Pages placed during post-copy: on demand vs background (medians)', inp.subtitle), legend: { position: 'bottom' } },
        scales: { x: categoryAxis(inp, { stacked: true }), y: { stacked: true, beginAtZero: true, title: { display: true, text: 'pages' } } },
      },
    } as ChartConfiguration);
  }

  for (const [i, s] of inp.scenarios.entries()) {
    const r = representativeRun(s);
    if (!r || r.guest.ops_timeline.length === 0) continue;
    const series = (side: 'src' | 'dst', color: string): ChartDataset<'line', { x: number; y: number }[]> => ({
      label: `guest on the ${side === 'src' ? 'source' : 'destination'} (page writes/s)`,
      data: r.guest.ops_timeline.filter((t) => t.side === side && t.interval_ms > 0).map((t) => ({ x: t.t_ms / 1000, y: (t.ops * 1000) / t.interval_ms })),
      borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 1.5,
    });
    // The source's query-migrate history (version 2 results): what was still to send, on the right axis.
    const history = r.progress ?? [];
    const remaining: ChartDataset<'line', { x: number; y: number }[]>[] = history.length
      ? [{ label: 'RAM still to send (MiB, query-migrate)', data: history.map((p) => ({ x: p.t_ms / 1000, y: p.remaining / MIB })), yAxisID: 'y1', borderColor: COLORS[1]!, backgroundColor: COLORS[1]!, borderDash: [5, 3], pointRadius: 0, borderWidth: 1.5 }]
      : [];
    const label = inp.labels[i]!;
    const status = r.status === 'not-converged' ? notConvergedNote(s) : r.status;
    add(`timeline:${label}`, `timeline-${fileSafe(label)}.png`, {
      type: 'line',
      data: { datasets: [series('src', COLORS[0]!), series('dst', COLORS[2]!), ...remaining] },
      options: {
        parsing: false,
        plugins: { ...title(`Guest page writes/s during ${label} (run ${r.repeat}, ${status})`, inp.subtitle), legend: { position: 'bottom' } },
        scales: {
          x: { type: 'linear', suggestedMax: Math.max(0, ...r.phases.map((p) => p.at_ms / 1000)) + 1, title: { display: true, text: 's since migrate' } },
          y: { beginAtZero: true, title: { display: true, text: 'page writes / s' } },
          ...(history.length ? { y1: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'MiB still to send' } } } : {}),
        },
      },
      plugins: [phaseLines(r.phases.map((p) => ({ at_s: p.at_ms / 1000, name: p.name })))],
    } as ChartConfiguration);
  }
  return out;
}
