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
import type { BenchResult, OpsSample, RunRecord } from '../results/schema.ts';
import { formatRatio, mdTable } from './format.ts';

export interface PostcopyProgress {
  /** Page writes per second before migrate (source), and in post-copy (destination). */
  before: number;
  during: number;
  /** Per writer thread, the same (empty for a one-writer workload). */
  threadsBefore: number[];
  threadsDuring: number[];
  /** Post-copy ticks; of them, those where some writer did nothing, and where every writer did nothing. */
  ticks: number;
  someIdle: number;
  allIdle: number;
}

const rate = (xs: readonly OpsSample[], ops: (s: OpsSample) => number): number => {
  const ms = xs.reduce((a, s) => a + s.interval_ms, 0);
  return ms > 0 ? (1000 * xs.reduce((a, s) => a + ops(s), 0)) / ms : 0;
};

/** The run's progress in post-copy against before; undefined when it did not complete, had no post-copy on the destination or no warm-up. */
export function postcopyProgress(r: RunRecord): PostcopyProgress | undefined {
  if (r.status !== 'completed') return undefined;
  const at = (name: string) => r.phases.find((p) => p.name === name)?.at_ms;
  const resumed = at('resume-dest');
  const done = at('completed');
  if (resumed === undefined || done === undefined || !r.phases.some((p) => p.name === 'postcopy-switch')) return undefined;
  const before = r.guest.ops_timeline.filter((s) => s.side === 'src' && s.t_ms < 0);
  // A tick is received at the end of its interval: those wholly inside post-copy.
  const during = r.guest.ops_timeline.filter((s) => s.side === 'dst' && s.t_ms - s.interval_ms >= resumed && s.t_ms <= done);
  if (before.length === 0 || during.length === 0) return undefined;
  const n = Math.max(0, ...[...before, ...during].map((s) => s.threads?.length ?? 0));
  const threads = Array.from({ length: n }, (_, i) => i);
  return {
    before: rate(before, (s) => s.ops),
    during: rate(during, (s) => s.ops),
    threadsBefore: threads.map((i) => rate(before, (s) => s.threads?.[i] ?? 0)),
    threadsDuring: threads.map((i) => rate(during, (s) => s.threads?.[i] ?? 0)),
    ticks: during.length,
    someIdle: during.filter((s) => (s.threads ?? [s.ops]).some((x) => x === 0)).length,
    allIdle: during.filter((s) => s.ops === 0).length,
  };
}

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
