/**
 * Apply a series to a source tree (tools/source/tree.ts) with `git am`, one
 * patch at a time, so that a failure names the patch and the failing files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError, tail } from '../core/errors.ts';
import { isDryRun } from '../core/exec.ts';
import { info } from '../core/log.ts';
import { BASE_TAG, git } from '../source/tree.ts';
import type { Series } from './series.ts';

export interface ApplyFailure {
  patch: string;
  files: string[];
  output: string;
}

/** Parse `git am` output for the failing patch's files. */
export function parseAmFailure(output: string): { files: string[]; subject: string | undefined } {
  const files = new Set<string>();
  for (const m of output.matchAll(/^error: (?:patch failed: )?([^\s:]+)(?::\d+)?(?:: (?:patch does not apply|No such file or directory|already exists in (?:working directory|index)|does not exist in index))?$/gm)) {
    const f = m[1]!;
    if (!/^(patch|could|Did|sha1|repository|Failed)$/.test(f)) files.add(f);
  }
  const subject = /^Patch failed at \d+ (.*)$/m.exec(output)?.[1];
  return { files: [...files], subject };
}

/**
 * Reset `tree` to its base and apply the series with `git am`, one patch at a
 * time so that a failure names the patch file. Loses nothing: commits on top
 * of the base that are not the series are saved on a branch first.
 */
export async function applySeries(tree: string, series: Series): Promise<string> {
  if (isDryRun()) {
    for (const p of series.patches) await git(tree, ['am', '--keep-cr', p.path]);
    return '(dry-run)';
  }
  if (existsSync(join(tree, '.git', 'rebase-apply'))) await git(tree, ['am', '--abort'], { allowFail: true });
  const head = (await git(tree, ['rev-parse', 'HEAD'])).stdout.trim();
  const base = (await git(tree, ['rev-parse', `${BASE_TAG}^{commit}`])).stdout.trim();
  const dirty = (await git(tree, ['status', '--porcelain', '--untracked-files=no'])).stdout.trim();
  if (head !== base || dirty) {
    const branch = `heca-saved-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`;
    if (dirty) await git(tree, ['stash', 'push', '-q', '-m', `heca: saved before applying series (${branch})`]);
    await git(tree, ['branch', '-f', branch, head]);
    info(`saved the tree's previous state as branch ${branch}${dirty ? ' (uncommitted changes: git stash list)' : ''}`);
  }
  await git(tree, ['checkout', '-q', '-B', 'heca', base]);
  await git(tree, ['reset', '-q', '--hard', base]);
  for (const p of series.patches) {
    const r = await git(tree, ['am', '--keep-cr', '--whitespace=nowarn', p.path], { allowFail: true });
    if (r.exitCode !== 0) {
      const out = `${r.stdout}${r.stderr}`;
      const { files } = parseAmFailure(out);
      await git(tree, ['am', '--abort'], { allowFail: true });
      throw new HecaError(`patch ${p.name} does not apply${files.length ? ` (${files.join(', ')})` : ''}`, {
        why: `git am failed on ${p.path} against ${series.base ?? 'the base tree'}${files.length ? `; failing file${files.length > 1 ? 's' : ''}: ${files.join(', ')}` : ''}`,
        fix: `rebase the series onto the new base in ${tree} (git am -3 ${p.path}), fix the conflict, then re-export it with: npx tsx tools/patches.ts export`,
        details: tail(out, 15),
      });
    }
  }
  return (await git(tree, ['rev-parse', 'HEAD'])).stdout.trim();
}
