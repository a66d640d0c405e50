/**
 * The guest's progress during post-copy (issue #13), from a run's record:
 * page writes per second while the guest ran on the destination in
 * post-copy (from resume-dest to completed) against before `migrate` on the
 * source (the warm-up), for the whole guest and for each writer thread, and
 * the post-copy ticks in which a writer, or every writer, did nothing.
 * The report's table (bench/report/progress.ts) and the compared metric
 * `postcopy_progress` (stats.ts) read it.
 */
import type { OpsSample, RunRecord } from './schema.ts';

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

/** Page writes per second in post-copy ÷ before migrate; null where postcopyProgress has nothing or nothing was written before. */
export function progressRatio(r: RunRecord): number | null {
  const p = postcopyProgress(r);
  return p && p.before > 0 ? p.during / p.before : null;
}
