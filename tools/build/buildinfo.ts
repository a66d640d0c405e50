/** BUILD-INFO.json: what a build was made from, and the fingerprint that decides whether to rebuild. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { sha256 } from '../core/hash.ts';
import type { Series } from '../patch/series.ts';

export interface BuildInfo {
  component: 'qemu' | 'linux';
  fingerprint: string;
  version: string;
  debian_version: string;
  source: { kind: 'debian' | 'developer-tree'; files: { name: string; sha256: string }[]; tree: string; base_commit: string; head_commit: string };
  series: { dir: string; base: string | null; sha256: string; patches: { name: string; sha256: string }[] };
  flags: string[];
  output: string;
  started_at: string;
  duration_ms: number;
  /** Compiler steps ninja/make ran: 0 on a no-op rebuild. */
  steps_run: number;
  host: { cpus: number; kernel: string };
}

export function fingerprint(parts: unknown): string {
  return sha256(JSON.stringify(parts));
}

export function readBuildInfo(path: string): BuildInfo | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as BuildInfo;
  } catch {
    return undefined;
  }
}

/** What a finished build of QEMU or Linux knows about itself; recordBuild adds the rest. */
export interface FinishedBuild {
  component: BuildInfo['component'];
  fingerprint: string;
  version: string;
  debianVersion: string;
  source: BuildInfo['source'];
  /** The series applied; undefined for a developer's own tree, built as it is. */
  series: Series | undefined;
  flags: string[];
  output: string;
  /** Date.now() when the build began. */
  startedMs: number;
  steps: number;
}

/** The BUILD-INFO.json of a finished build (its duration runs until now and the host is this one), written to `path`. */
export function recordBuild(path: string, b: FinishedBuild): BuildInfo {
  const bi: BuildInfo = {
    component: b.component,
    fingerprint: b.fingerprint,
    version: b.version,
    debian_version: b.debianVersion,
    source: b.source,
    series: b.series
      ? { dir: b.series.dir, base: b.series.base ?? null, sha256: b.series.sha256, patches: b.series.patches.map((p) => ({ name: p.name, sha256: p.sha256 })) }
      : { dir: b.source.tree, base: null, sha256: '', patches: [] },
    flags: b.flags,
    output: b.output,
    started_at: new Date(b.startedMs).toISOString(),
    duration_ms: Date.now() - b.startedMs,
    steps_run: b.steps,
    host: { cpus: cpus().length, kernel: release() },
  };
  writeFileSync(path, `${JSON.stringify(bi, null, 2)}\n`);
  return bi;
}
