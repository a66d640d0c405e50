/**
 * A source tree kept as a git repository: the unpacked pristine source is the
 * base commit (tagged `heca-base`); tools/patch/apply.ts applies the series on
 * top with `git am`. Developers work in this tree and export their commits
 * back into a series.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDryRun, probe, run } from '../core/exec.ts';
import { info } from '../core/log.ts';
import { unpackSource, type ResolvedSource } from './sources.ts';

export const BASE_TAG = 'heca-base';
const IDENT = ['-c', 'user.name=heca', '-c', 'user.email=heca@localhost', '-c', 'commit.gpgsign=false', '-c', 'gc.auto=0'];

export function git(tree: string, args: string[], opts: { allowFail?: boolean; probe?: boolean } = {}) {
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

/** HEAD, `git describe` and whether there are uncommitted changes, for a developer's own tree (which may not be a git checkout at all). */
export async function treeState(tree: string): Promise<{ head: string; describe: string; dirty: boolean }> {
  if (!existsSync(join(tree, '.git'))) return { head: 'none', describe: 'not a git tree', dirty: true };
  const head = await probe('git', ['rev-parse', 'HEAD'], { cwd: tree });
  const describe = await probe('git', ['describe', '--always', '--dirty', '--tags'], { cwd: tree });
  const dirty = (await probe('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: tree })).length > 0;
  return { head, describe, dirty };
}
