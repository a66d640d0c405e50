/**
 * PNG charts of a benchmark result (chartjs-node-canvas): migration time and
 * downtime per scenario, bytes by phase against the guest RAM, wire/RAM
 * overhead, pages, and the guest's throughput over time with the migration
 * phases marked. Bars are medians; every run is also drawn as a point, so the
 * spread shows. Absolute figures only mean something within one run: the
 * subtitle names the environment.
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
  failed: '#000000',
};

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
const num = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** Median bars plus one point per completed run, for one metric. */
function barsWithRuns(inp: ChartInput, label: string, get: (r: RunRecord, s: ScenarioResult) => number | null | undefined, color: string): ChartDataset<'bar' | 'line', (number | null | { x: string; y: number })[]>[] {
  const medians = inp.scenarios.map((s) => median(completed(s).map((r) => get(r, s)).filter(num)));
  const points = inp.scenarios.flatMap((s, i) => completed(s).map((r) => get(r, s)).filter(num).map((y) => ({ x: inp.labels[i]!, y })));
  return [
    { type: 'bar', label: `${label} (median)`, data: medians, backgroundColor: `${color}99`, borderColor: color, borderWidth: 1 },
    { type: 'line', label: `${label} (each run)`, data: points, showLine: false, pointRadius: 4, pointBackgroundColor: '#000000', borderColor: '#000000' },
  ];
}

function barConfig(inp: ChartInput, text: string, yTitle: string, datasets: ChartDataset<'bar' | 'line', (number | null | { x: string; y: number })[]>[], extraPlugins: Plugin[] = []): ChartConfiguration {
  return {
    type: 'bar',
    data: { labels: inp.labels, datasets: datasets as ChartDataset<'bar'>[] },
    options: {
      plugins: { ...title(text, inp.subtitle), legend: { position: 'bottom' } },
      scales: { y: { beginAtZero: true, title: { display: true, text: yTitle } } },
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

async function write(dir: string, file: string, cfg: ChartConfiguration): Promise<string> {
  const path = join(dir, file);
  writeFileSync(path, await renderer().renderToBuffer(cfg, 'image/png'));
  return path;
}

export function fileSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** The run to show a timeline for: the completed run with the median total time, else the first run. */
export function representativeRun(s: ScenarioResult): RunRecord | undefined {
  const done = completed(s).filter((r) => num(r.total_time_ms)).sort((a, b) => a.total_time_ms! - b.total_time_ms!);
  return done[Math.floor((done.length - 1) / 2)] ?? s.runs[0];
}

/** Write every chart into `dir`; returns chart name → file path. */
export async function writeCharts(inp: ChartInput, dir: string): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  out.time = await write(dir, 'migration-time.png', barConfig(inp, 'Total migration time', 'seconds', barsWithRuns(inp, 'total time', (r) => (num(r.total_time_ms) ? r.total_time_ms / 1000 : null), COLORS[0]!)));
  out.downtime = await write(dir, 'downtime.png', barConfig(inp, 'Downtime: source STOP → destination RESUME', 'milliseconds', barsWithRuns(inp, 'downtime', (r) => r.downtime_host_ms ?? r.downtime_ms, COLORS[3]!)));

  const ramMib = Math.max(...inp.scenarios.map((s) => s.workload.mem_mib));
  const phase = (label: string, get: (r: RunRecord) => number, color: string): ChartDataset<'bar', (number | null)[]> => ({
    label, stack: 'ram', backgroundColor: color,
    data: inp.scenarios.map((s) => median(completed(s).map((r) => get(r) / MIB))),
  });
  out.bytes = await write(dir, 'bytes.png', {
    type: 'bar',
    data: {
      labels: inp.labels,
      datasets: [
        phase('pre-copy', (r) => r.bytes.precopy, COLORS[0]!),
        phase('while stopped', (r) => r.bytes.downtime, COLORS[3]!),
        phase('post-copy', (r) => r.bytes.postcopy, COLORS[2]!),
        { label: 'on the wire (veth, both ways)', stack: 'wire', backgroundColor: COLORS[7]!, data: inp.scenarios.map((s) => median(completed(s).map((r) => r.bytes.wire / MIB))) },
      ],
    },
    options: {
      plugins: { ...title('Bytes sent, by migration phase (medians)', inp.subtitle), legend: { position: 'bottom' } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: 'MiB' } } },
    },
    plugins: [hline(ramMib, `guest RAM ${ramMib} MiB`)],
  } as ChartConfiguration);
  out.overhead = await write(dir, 'wire-over-ram.png', barConfig(inp, 'Network overhead: bytes on the wire ÷ guest RAM', 'ratio', barsWithRuns(inp, 'wire / RAM', (r, s) => r.bytes.wire / (s.workload.mem_mib * MIB), COLORS[1]!), [hline(1, '1.0 = each byte of RAM once')]));
  const pages = (label: string, get: (r: RunRecord) => number, color: string): ChartDataset<'bar', (number | null)[]> => ({
    label, backgroundColor: color, data: inp.scenarios.map((s) => median(completed(s).map(get))),
  });
  out.pages = await write(dir, 'pages.png', {
    type: 'bar',
    data: { labels: inp.labels, datasets: [pages('normal pages sent', (r) => r.pages.normal, COLORS[0]!), pages('zero pages', (r) => r.pages.zero, COLORS[7]!), pages('post-copy page requests', (r) => r.pages.postcopy_requests, COLORS[3]!)] },
    options: {
      plugins: { ...title('Pages (medians)', inp.subtitle), legend: { position: 'bottom' } },
      scales: { y: { type: 'logarithmic', title: { display: true, text: 'pages (log scale)' } } },
    },
  } as ChartConfiguration);

  // The destination's post-copy statistics (postcopy_latency): any QEMU with upstream 10.1's, heca's pages split.
  const withFaults = inp.scenarios.map((s, i) => ({ s, label: inp.labels[i]!, runs: completed(s).filter((r) => (r.postcopy_latency?.faults ?? 0) > 0) })).filter((x) => x.runs.length);
  if (withFaults.length) {
    out.faultCdf = await write(dir, 'fault-latency-cdf.png', {
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
    out.demand = await write(dir, 'postcopy-pages.png', {
      type: 'bar',
      data: { labels: inp.labels, datasets: [split('on demand (requested by a fault)', demand, COLORS[3]!), split('background stream', background, COLORS[2]!)] },
      options: {
        plugins: { ...title('Pages placed during post-copy: on demand vs background (medians)', inp.subtitle), legend: { position: 'bottom' } },
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: 'pages' } } },
      },
    } as ChartConfiguration);
  }

  for (const [i, s] of inp.scenarios.entries()) {
    const r = representativeRun(s);
    if (!r || r.guest.ops_timeline.length === 0) continue;
    const series = (side: 'src' | 'dst', color: string): ChartDataset<'line', { x: number; y: number }[]> => ({
      label: `guest on the ${side === 'src' ? 'source' : 'destination'}`,
      data: r.guest.ops_timeline.filter((t) => t.side === side && t.interval_ms > 0).map((t) => ({ x: t.t_ms / 1000, y: (t.ops * 1000) / t.interval_ms })),
      borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 1.5,
    });
    const label = inp.labels[i]!;
    out[`timeline:${label}`] = await write(dir, `timeline-${fileSafe(label)}.png`, {
      type: 'line',
      data: { datasets: [series('src', COLORS[0]!), series('dst', COLORS[2]!)] },
      options: {
        parsing: false,
        plugins: { ...title(`Guest page writes/s during ${label} (run ${r.repeat}, ${r.status})`, inp.subtitle), legend: { position: 'bottom' } },
        scales: { x: { type: 'linear', suggestedMax: Math.max(0, ...r.phases.map((p) => p.at_ms / 1000)) + 1, title: { display: true, text: 's since migrate' } }, y: { beginAtZero: true, title: { display: true, text: 'page writes / s' } } },
      },
      plugins: [phaseLines(r.phases.map((p) => ({ at_s: p.at_ms / 1000, name: p.name })))],
    } as ChartConfiguration);
  }
  return out;
}
