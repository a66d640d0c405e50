/**
 * Faults a scenario injects, as data: `--fault cut@postcopy+2s:3s` is the
 * link between the hosts going down and its connections reset for 3 s, 2 s
 * after post-copy started. The text is also the fault's part of the scenario
 * id, so the same fault always gives the same id. What the engine does about
 * a fault (injects it, then drives the recovery as an operator would) is in
 * bench/engine/fault.ts; when it is due is decided here (faultPlan), from what
 * the engine observed, as the policies decide the switch.
 */
import { UsageError } from '../../tools/core/cli.ts';
import type { FaultSpec, ScenarioParams } from '../results/schema.ts';
import type { Tick } from './policy.ts';

export const FAULT_KINDS = ['cut'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const FAULT_RE = /^([a-z][a-z-]*)@(migrate|postcopy)\+(\d+(?:\.\d+)?)s:(\d+(?:\.\d+)?)s$/;

const FAULT_HELP = 'KIND@WHEN+Ns:Ds: KIND cut (the link down and its connections reset), WHEN migrate or postcopy (what N counts from), D how long, e.g. cut@postcopy+2s:3s';

/** `cut@postcopy+2s:3s` → its spec; anything else is a usage error saying the form. */
export function parseFault(text: string): FaultSpec {
  const m = FAULT_RE.exec(text.trim());
  if (!m) throw new UsageError(`cannot read the fault "${text}"`, { why: `a fault is ${FAULT_HELP}`, fix: '--fault cut@postcopy+2s:3s' });
  const [, kind, after, at, dur] = m as unknown as [string, string, 'migrate' | 'postcopy', string, string];
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(`unknown fault "${kind}"`, { why: `the faults are: ${FAULT_KINDS.join(', ')}`, fix: `a fault is ${FAULT_HELP}` });
  }
  const duration = Number(dur);
  if (duration <= 0) throw new UsageError(`the fault "${text}" lasts no time`, { why: 'a cut of 0 s cuts nothing', fix: 'give a duration above 0, e.g. :3s' });
  return { kind, after, at_s: Number(at), duration_s: duration };
}

/** Comma-separated faults, injected together in every run; none for an empty or missing list. */
export function parseFaults(arg: string | undefined): FaultSpec[] {
  return (arg ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(parseFault);
}

/** The fault as written on the command line: `cut@postcopy+2s:3s`; a version 2 fault (kind, at_s) as it was: `link-down2s`. */
export function faultText(f: FaultSpec): string {
  if (f.after === undefined && f.duration_s === undefined) return `${f.kind}${f.at_s === undefined ? '' : `${f.at_s}s`}`;
  return `${f.kind}@${f.after ?? 'migrate'}+${f.at_s ?? 0}s:${f.duration_s ?? 0}s`;
}

/** What the engine is asked to do when a fault is due. */
export interface FaultAction {
  kind: 'cut';
  fault: FaultSpec;
  /** How long the link stays down, ms. */
  durationMs: number;
  why: string;
}

/**
 * When each fault of a scenario is due: asked at every tick of the engine
 * (with the time post-copy started, once it has), it returns each fault once,
 * when its time has come. Pure: no clock, no QMP. Faults that were never due
 * when the migration ended are `pending()`.
 */
export interface FaultPlan {
  tick(t: Tick): FaultAction[];
  /** Faults not injected (yet). */
  pending(): FaultSpec[];
}

export function faultPlan(sc: Pick<ScenarioParams, 'faults'>): FaultPlan {
  const todo = [...(sc.faults ?? [])];
  return {
    tick: (t) => {
      const due: FaultAction[] = [];
      for (const f of [...todo]) {
        const from = f.after === 'postcopy' ? t.postcopyAtMs : 0;
        if (from === undefined || t.elapsedMs < from + (f.at_s ?? 0) * 1000) continue;
        // Only while the migration runs: a cut after the end tests nothing.
        if (t.status !== 'active' && t.status !== 'postcopy-active') continue;
        todo.splice(todo.indexOf(f), 1);
        due.push({ kind: 'cut', fault: f, durationMs: (f.duration_s ?? 0) * 1000, why: `${faultText(f)} is due` });
      }
      return due;
    },
    pending: () => [...todo],
  };
}
