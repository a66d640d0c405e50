/** BUILD-INFO.json: what a build was made from, and the fingerprint that decides whether to rebuild. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { sha256 } from '../core/hash.ts';

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

export function writeBuildInfo(path: string, bi: BuildInfo): void {
  writeFileSync(path, `${JSON.stringify(bi, null, 2)}\n`);
}
