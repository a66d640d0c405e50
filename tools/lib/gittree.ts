/**
 * A source tree kept as a git repository: the unpacked pristine source is the
 * base commit (tagged `heca-base`), the series is applied on top with `git am`.
 * Developers work in this tree and export their commits back into a series.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError, tail } from './errors.ts';
import { isDryRun, probe, run } from './exec.ts';
import { info } from './log.ts';
import type { Series } from './series.ts';
import { unpackSource, type ResolvedSource } from './sources.ts';

export const BASE_TAG = 'heca-base';
const IDENT = ['-c', 'user.name=heca', '-c', 'user.email=heca@localhost', '-c', 'commit.gpgsign=false', '-c', 'gc.auto=0'];

function git(tree: string, args: string[], opts: { allowFail?: boolean; probe?: boolean } = {}) {
  return run('git', [...IDENT, ...args], { cwd: tree, allowFail: opts.allowFail, probe: opts.probe, timeoutMs: 30 * 60_000 });
}

/** What a tree was made from, kept in .git/heca-source. */
function readStamp(tree: string): string | undefined {
  const f = join(tree, '.git', 'heca-source');
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
}

export function sourceStamp(src: ResolvedSource): string {
  return `${src.component} ${src.debianVersion} ${src.files.map((f) => f.sha256).join(',')}`;
}

/**
 * Make sure `tree` holds `src` as a git tree with a base commit. Returns the
 * base commit id. An existing tree from another source version is moved aside,
 * never deleted (it may hold a developer's work).
 */
export async function ensureBaseTree(src: ResolvedSource, tree: string): Promise<string> {
  const stamp = sourceStamp(src);
  if (existsSync(join(tree, '.git')) && readStamp(tree) === stamp) {
    return (await git(tree, ['rev-parse', `${BASE_TAG}^{commit}`], { probe: true })).stdout.trim();
  }
  if (existsSync(tree)) {
    const aside = `${tree}.old-${Date.now()}`;
    info(`${tree} holds another source version: moving it to ${aside}`);
    await run('mv', [tree, aside]);
  }
  info(`unpacking ${src.component} ${src.debianVersion} into ${tree}`);
  await unpackSource(src, tree);
  if (isDryRun()) return '(dry-run)';
  await git(tree, ['init', '-q', '-b', 'heca']);
  writeFileSync(join(tree, '.git', 'heca-source'), `${stamp}\n`);
  await git(tree, ['add', '-A', '-f', '.']);
  await git(tree, ['commit', '-q', '--no-verify', '-m', `${src.component} ${src.debianVersion} (heca base)`, '-m', src.files.map((f) => `${f.sha256}  ${f.name}`).join('\n')]);
  await git(tree, ['tag', '-f', BASE_TAG]);
  return (await git(tree, ['rev-parse', 'HEAD'])).stdout.trim();
}

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

/** HEAD and a hash of uncommitted changes, for a developer's own tree. */
export async function treeState(tree: string): Promise<{ head: string; describe: string; dirty: boolean }> {
  const head = await probe('git', ['rev-parse', 'HEAD'], { cwd: tree });
  const describe = await probe('git', ['describe', '--always', '--dirty', '--tags'], { cwd: tree });
  const dirty = (await probe('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: tree })).length > 0;
  return { head, describe, dirty };
}
