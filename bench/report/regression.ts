/**
 * The regression check (bench/results/regression.ts) in words: one line per
 * regression for the terminal and the error, and a section of compare.md
 * with every scenario and metric judged.
 */
import type { MetricCheck, RegressionReport, Sample } from '../results/regression.ts';
import { formatMetric, mdTable } from './format.ts';

const fmt = (c: MetricCheck, v: number | null | undefined) => formatMetric(c.metric, v);
const signed = (c: MetricCheck, v: number) => `${v < 0 ? '−' : '+'}${fmt(c, Math.abs(v))}`;

function side(c: MetricCheck, s: Sample | null): string {
  return s ? `${fmt(c, s.median)} (spread ${fmt(c, s.spread)}, ${s.n} run${s.n === 1 ? '' : 's'})` : '–';
}

/**
 * "postcopy (postcopy-immediate), total time: median 1.20 s (spread 400 ms, 5 runs)
 * in the baseline, 1.80 s (spread 200 ms, 5 runs) now: +600 ms, more than the
 * larger spread 400 ms".
 */
export function regressionLine(r: RegressionReport['regressions'][number]): string {
  const where = `${r.scenario} (${r.id}), ${r.label}`;
  if (r.metric === 'completed_runs') return `${where}: ${r.note}`;
  return `${where}: median ${side(r, r.old)} in the baseline, ${side(r, r.new)} now: ${signed(r, r.delta!)}, more than the larger spread ${fmt(r, r.allowed)}`;
}

/** The one-line verdict. */
export function regressionVerdict(rep: RegressionReport): string {
  if (!rep.comparable) return `not judged: the set-ups differ (${rep.differences.join('; ')})`;
  const judged = rep.scenarios.reduce((n, s) => n + s.checks.filter((c) => c.metric !== 'completed_runs' && c.verdict !== 'not-judged').length, 0);
  return rep.regressions.length
    ? `${rep.regressions.length} regression(s) beyond the measured spread`
    : `no regression beyond the measured spread (${judged} metric(s) judged over ${rep.scenarios.filter((s) => s.status === 'compared').length} scenario(s))`;
}

const VERDICT: Record<MetricCheck['verdict'], string> = { regressed: '**REGRESSED**', improved: 'improved', 'within-spread': 'within spread', ok: 'ok', 'not-judged': 'not judged' };

/** compare.md's section: the rule, the verdict, then every scenario's checks. */
export function regressionMarkdown(rep: RegressionReport): string {
  const md = ['## Regression check (baseline: the first result)\n', `Rule: ${rep.rule}.\n`, `**Verdict: ${regressionVerdict(rep)}.**\n`];
  if (rep.regressions.length) md.push(...rep.regressions.map((r) => `- ${regressionLine(r)}`), '');
  if (!rep.comparable) return md.join('\n');
  const rows = rep.scenarios.flatMap((s) => (s.checks.length === 0
    ? [[`${s.name} (${s.id})`, '–', '–', '–', '–', '–', `not judged: ${s.note}`]]
    : s.checks.map((c) => [
      `${s.name} (${s.id})`, c.label, side(c, c.old), side(c, c.new),
      c.delta === null ? '–' : c.metric === 'completed_runs' ? String(c.delta) : signed(c, c.delta),
      c.allowed === null ? '–' : fmt(c, c.allowed),
      `${VERDICT[c.verdict]}${c.note ? `: ${c.note}` : ''}`,
    ])));
  md.push(mdTable(['scenario', 'metric', 'baseline median (spread, runs)', 'now median (spread, runs)', 'change', 'allowed (larger spread)', 'verdict'], rows), '');
  return md.join('\n');
}
