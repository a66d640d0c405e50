/**
 * The nights of `make nightly` on disk: each night's OUT directory holds the
 * benchmark's result.json and report, compare/ (the comparison with the
 * baseline) and nightly.json (this record: what ran, against what, and the
 * verdict). The baseline of a night, unless one is given, is the newest
 * earlier night under the same root that ended well (`ok`): a night whose
 * check found a regression, or whose benchmark failed, never becomes a
 * baseline, so a regression stays visible until it is fixed or accepted
 * (a night run with no baseline), instead of vanishing the next night.
 */
import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadResult } from './io.ts';

/**
 * passed: compared with a baseline, no regression; no-baseline: nothing to
 * compare with (the first night, or none asked for); not-comparable: the
 * baseline's set-up differs, nothing judged; regressed: the check found one;
 * failed: the benchmark or the comparison failed; running: not finished
 * (an interrupted night keeps this).
 */
export type NightlyVerdict = 'passed' | 'no-baseline' | 'not-comparable' | 'regressed' | 'failed' | 'running';

export const NIGHT_OK: readonly NightlyVerdict[] = ['passed', 'no-baseline', 'not-comparable'];

export interface NightlyRecord {
  verdict: NightlyVerdict;
  /** The verdict is one of NIGHT_OK: this night may be a later night's baseline. */
  ok: boolean;
  started_at: string;
  finished_at?: string;
  scenarios: string[];
  repeat: number;
  /** The bench/run.ts command line (arguments after the script). */
  bench_args: string[];
  bench_exit?: number;
  /** The result compared with, and how it was chosen; null: none. */
  baseline: { path: string; chosen: 'given' | 'previous night' } | null;
  compare_exit?: number;
  /** One line per regression (bench/report/regression.ts). */
  regressions?: string[];
  /** Why the verdict is failed (the failed steps) or not-comparable (the set-up facts that differ). */
  why?: string[];
}

export const NIGHTLY_FILE = 'nightly.json';

/** Write OUT/nightly.json (atomically: a reader never sees half a file). */
export function writeNightly(out: string, rec: NightlyRecord): void {
  const path = join(out, NIGHTLY_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(rec, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** OUT/nightly.json, or undefined when there is none or it is not one. */
export function readNightly(out: string): NightlyRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(out, NIGHTLY_FILE), 'utf8')) as Partial<NightlyRecord>;
    return typeof rec.verdict === 'string' && typeof rec.ok === 'boolean' ? (rec as NightlyRecord) : undefined;
  } catch {
    return undefined;
  }
}

export interface PreviousNight {
  /** The night's directory. */
  dir: string;
  started_at: string;
}

/**
 * The newest night under `root` other than `exclude` (today's OUT) that ended
 * well and has a valid result.json, by the time its benchmark started.
 * `skipped` says why other directories were passed over.
 */
export function previousNight(root: string, exclude: string): { found?: PreviousNight; skipped: string[] } {
  const skipped: string[] = [];
  if (!existsSync(root)) return { skipped };
  const candidates: PreviousNight[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = resolve(root, name);
    if (dir === resolve(exclude) || !statSync(dir).isDirectory()) continue;
    const rec = readNightly(dir);
    if (!rec) {
      skipped.push(`${name}: no ${NIGHTLY_FILE}`);
      continue;
    }
    if (!rec.ok) {
      skipped.push(`${name}: ${rec.verdict}`);
      continue;
    }
    try {
      const { result } = loadResult(dir);
      candidates.push({ dir, started_at: result.environment.started_at });
    } catch (e) {
      skipped.push(`${name}: ${(e as Error).message}`);
    }
  }
  candidates.sort((a, b) => b.started_at.localeCompare(a.started_at));
  return { found: candidates[0], skipped };
}

/** The default OUT of a night: <root>/2026-11-27T02-17Z (UTC, to the minute; sorts by time). */
export function nightStamp(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace(':', '-')}Z`;
}
