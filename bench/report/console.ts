/**
 * What the command lines print on the terminal: one line per run as it ends,
 * and the table bench/compare.ts ends with. Downtime is the host-measured
 * one (source STOP → destination RESUME); QEMU's own figure only where it
 * says so.
 */
import type { RunRecord, ScenarioResult } from '../results/schema.ts';

const fixed = (v: number | null | undefined, digits: number): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

/** "completed, total 2.1 s, downtime 3.6 ms (STOP→RESUME; QEMU says 1995 ms), wire 228 MiB, integrity 0 bad / 40960 pages". */
export function runLine(r: RunRecord): string {
  const t = r.total_time_ms === null ? '-' : `${(r.total_time_ms / 1000).toFixed(1)} s`;
  const integ = r.integrity.pages_checked ? `${r.integrity.bad_pages} bad / ${r.integrity.pages_checked} pages` : 'not checked';
  const host = typeof r.downtime_host_ms === 'number' ? `${r.downtime_host_ms} ms (STOP→RESUME${r.downtime_ms === null ? '' : `; QEMU says ${r.downtime_ms} ms`})` : '- (no STOP→RESUME)';
  return `${r.status}, total ${t}, downtime ${host}, wire ${(r.bytes.wire / 1048576).toFixed(0)} MiB, integrity ${integ}${r.reason ? ` (${r.reason})` : ''}`;
}

/** The comparison as a plain table: completed runs, median total time, downtime STOP→RESUME, wire/RAM, fault latency. */
export function comparisonTable(labels: string[], scenarios: ScenarioResult[]): string {
  const med = (k: string, sc: ScenarioResult) => sc.summary[k]?.median;
  const w = Math.max(...labels.map((l) => l.length), 8);
  const lines = [`${'scenario'.padEnd(w)}  completed  total(s)  downtime STOP→RESUME(ms)  wire/RAM  fault mean(us)`];
  scenarios.forEach((sc, i) => {
    const total = med('total_time_ms', sc);
    lines.push(`${labels[i]!.padEnd(w)}  ${`${sc.summary.completed?.median ?? 0}/${sc.runs.length}`.padStart(9)}  ${fixed(typeof total === 'number' ? total / 1000 : null, 1).padStart(8)}  ${fixed(med('downtime_host_ms', sc), 1).padStart(24)}  ${fixed(med('wire_over_ram', sc), 2).padStart(8)}  ${fixed(med('postcopy_latency_mean_us', sc), 0).padStart(14)}`);
  });
  return `${lines.join('\n')}\n`;
}
