/**
 * The guest's progress during post-copy (issue #13): page writes per second
 * while the guest ran on the destination in post-copy (from resume-dest to
 * completed) against before `migrate` on the source (the warm-up), for the
 * whole guest and for each writer thread of a multi-threaded workload, and
 * how often a writer — or every writer at once — did nothing for a whole
 * tick interval (a vCPU stopped by a page fault stops its thread; with async
 * page faults the other threads on it go on), beside what KVM on the
 * destination did with the faults (the nested testbed): told the guest
 * (asynchronous) or halted the vCPU until the page came.
 */
import { postcopyProgress } from '../results/progress.ts';
import type { BenchResult } from '../results/schema.ts';
import { formatRatio, mdTable } from './format.ts';

const perS = (n: number) => `${Math.round(n)}/s`;

/** One row per run with post-copy on the destination; undefined when none has one. */
export function progressTable(result: BenchResult): string | undefined {
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    for (const r of s.runs) {
      const p = postcopyProgress(r);
      if (!p) continue;
      const ratios = p.threadsBefore.map((b, i) => (b > 0 ? p.threadsDuring[i]! / b : null)).filter((x): x is number => x !== null);
      rows.push([
        s.scenario.name, String(r.repeat), s.scenario.transport ?? 'tcp', String(Math.max(1, p.threadsBefore.length)),
        perS(p.before), perS(p.during), formatRatio(p.before > 0 ? p.during / p.before : null),
        ratios.length ? `${formatRatio(Math.min(...ratios))} – ${formatRatio(Math.max(...ratios))}` : '–',
        `${p.someIdle} / ${p.allIdle} of ${p.ticks}`,
        r.async_pf ? `${r.async_pf.tried} / ${r.async_pf.told} / ${r.async_pf.halted}` : '–',
      ]);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'transport', 'writers', 'page writes before migrate', 'in post-copy', 'post-copy ÷ before', 'per writer: slowest – fastest', 'post-copy ticks with a writer idle / all idle', 'KVM async PF: tried / told the guest / vCPU halted'], rows);
}
