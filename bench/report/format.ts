/** Human units and Markdown tables, shared by the report and compare commands. */
import type { Comparison, RunRecord, ScenarioResult, Summary } from '../results/schema.ts';
import { METRICS } from '../results/stats.ts';

export function formatBytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (a >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (a >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

export function formatMs(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  if (Math.abs(n) >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;
}

/** Microseconds: µs below 1 ms, else as formatMs. */
export function formatUs(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1000) return formatMs(n / 1000);
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} µs`;
}

export function formatRatio(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? `${n.toFixed(2)}×` : '–';
}

export function formatMetric(metric: string, v: number | null | undefined): string {
  const unit = METRICS[metric]?.unit;
  if (unit === 'ms') return formatMs(v);
  if (unit === 'us') return formatUs(v);
  if (unit === 'bytes') return formatBytes(v);
  if (unit === 'ratio') return typeof v === 'number' ? v.toFixed(3) : '–';
  return typeof v === 'number' ? String(Math.round(v)) : '–';
}

/** "median [min–max]" of one summary entry. */
export function formatStat(metric: string, s: Summary[string] | undefined): string {
  if (!s || s.n === 0 || s.median === null) return '–';
  if (s.n === 1 || s.min === s.max) return formatMetric(metric, s.median);
  return `${formatMetric(metric, s.median)} [${formatMetric(metric, s.min)}–${formatMetric(metric, s.max)}]`;
}

export function mdTable(head: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** Metrics × scenarios, each cell "median [min–max]"; plus run counts. */
export function summaryTable(labels: string[], scenarios: ScenarioResult[]): string {
  const rows: string[][] = [
    ['runs: completed / not converged / failed', ...scenarios.map((s) => `${s.summary.completed?.median ?? 0} / ${s.summary.not_converged?.median ?? 0} / ${s.summary.failed?.median ?? 0}`)],
  ];
  for (const [name, m] of Object.entries(METRICS)) rows.push([m.label, ...scenarios.map((s) => formatStat(name, s.summary[name]))]);
  return mdTable(['metric (completed runs: median [min–max])', ...labels], rows);
}

/** Ratios of each scenario to the baseline, "median [min–max] (n pairs)". */
export function ratioTable(labels: string[], scenarios: ScenarioResult[], cmp: Comparison): string {
  const others = scenarios.map((s, i) => ({ s, label: labels[i]! })).filter((x) => x.s.scenario.id !== cmp.baseline);
  const rows = Object.entries(METRICS).map(([name, m]) => [
    m.label,
    ...others.map(({ s }) => {
      const med = cmp.ratios[s.scenario.id]?.[name];
      const sp = cmp.spread?.[s.scenario.id]?.[name];
      return med === null || med === undefined ? '–' : `${formatRatio(med)}${sp && sp[0] !== sp[1] ? ` [${formatRatio(sp[0])}–${formatRatio(sp[1])}]` : ''}`;
    }),
  ]);
  rows.unshift(['repeats paired (both completed)', ...others.map(({ s }) => String(cmp.pairs?.[s.scenario.id] ?? '?'))]);
  return mdTable([`metric ÷ ${cmp.baseline}`, ...others.map((o) => o.label)], rows);
}

/** A run's post-copy remote faults on the destination: "count, mean …, max …" ('–': not reported). */
export function faultsCell(r: RunRecord): string {
  const p = r.postcopy_latency;
  if (!p) return '–';
  if (p.faults === 0) return '0';
  return `${p.faults}, mean ${formatUs(p.latency_mean_ns / 1000)}${p.latency_max_ns === null ? '' : `, max ${formatUs(p.latency_max_ns / 1000)}`}`;
}

export function runLine(r: RunRecord): string[] {
  const integ = r.integrity.pages_checked ? `${r.integrity.ok ? 'ok' : '**BAD**'}: ${r.integrity.bad_pages} bad / ${r.integrity.pages_checked}` : 'not checked';
  return [String(r.repeat), r.status, formatMs(r.total_time_ms), formatMs(r.downtime_host_ms ?? null), formatMs(r.downtime_ms), formatBytes(r.bytes.wire), formatMs(r.guest.max_stall_ms), faultsCell(r), integ, r.reason ?? '', `[logs](${r.logs_dir})`];
}

export const RUN_HEAD = ['repeat', 'status', 'total', 'downtime STOP→RESUME', 'downtime (QEMU)', 'wire', 'max stall', 'post-copy faults (dst)', 'integrity', 'reason', 'logs'];

/** Runs that failed or lost pages: these are failures, listed first in a report. */
export function problems(labels: string[], scenarios: ScenarioResult[]): string[] {
  const out: string[] = [];
  scenarios.forEach((s, i) => {
    for (const r of s.runs) {
      if (r.integrity.pages_checked > 0 && !r.integrity.ok) {
        out.push(`**${labels[i]} run ${r.repeat}: integrity check FAILED** — ${r.integrity.bad_pages} bad page(s) of ${r.integrity.pages_checked}${r.integrity.first_bad?.length ? ` (first: ${r.integrity.first_bad.slice(0, 8).join(', ')})` : ''}; logs: ${r.logs_dir}`);
      } else if (r.status === 'failed') {
        out.push(`**${labels[i]} run ${r.repeat} failed**: ${r.reason ?? 'no reason recorded'}; logs: ${r.logs_dir}`);
      }
    }
  });
  return out;
}
