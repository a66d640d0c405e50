/**
 * A patch series directory (`qemu-patches/`, `kernel-patches/`): a `series`
 * file naming the patches in order (quilt style: one file a line, # comments),
 * the `BASE` the series was made against, and a cover letter.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../core/errors.ts';
import { sha256, sha256FileSync } from '../core/hash.ts';

export interface SeriesPatch {
  name: string;
  path: string;
  sha256: string;
}

export interface Series {
  dir: string;
  patches: SeriesPatch[];
  /** The base version recorded with the series, if any. */
  base: string | undefined;
  /** One hash over the names and contents of all patches, in order. */
  sha256: string;
}

export function parseSeriesFile(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l.length > 0)
    .map((l) => l.split(/\s+/)[0]!);
}

export function readSeries(dir: string): Series {
  const seriesFile = join(dir, 'series');
  if (!existsSync(seriesFile)) {
    throw new HecaError(`no series file in ${dir}`, {
      why: `${seriesFile} does not exist`,
      fix: `create it (it may be empty), or export a series with: npx tsx tools/patches.ts export`,
    });
  }
  const names = parseSeriesFile(readFileSync(seriesFile, 'utf8'));
  const seen = new Set<string>();
  const patches = names.map((name) => {
    if (seen.has(name)) throw new HecaError(`${seriesFile} names ${name} twice`, { why: 'a patch can only be applied once', fix: 'remove the duplicate line' });
    seen.add(name);
    const path = join(dir, name);
    if (!existsSync(path)) {
      throw new HecaError(`patch ${name} is listed in ${seriesFile} but missing`, { why: `${path} does not exist`, fix: 'add the file or remove its line from series' });
    }
    return { name, path, sha256: sha256FileSync(path) };
  });
  const baseFile = join(dir, 'BASE');
  const base = existsSync(baseFile) ? readFileSync(baseFile, 'utf8').trim() || undefined : undefined;
  return { dir, patches, base, sha256: sha256(patches.map((p) => `${p.name} ${p.sha256}\n`).join('')) };
}
