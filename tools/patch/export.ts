/**
 * Export a developer's commits in a source tree as the numbered series in
 * qemu-patches/ or kernel-patches/: the patch files, `series`, `BASE`, and a
 * cover letter from the branch description. The previous patch files are
 * moved to the build directory, never deleted.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../core/errors.ts';
import { inDir, isDryRun, probe, run } from '../core/exec.ts';
import { info, warn } from '../core/log.ts';
import { buildDir } from '../core/paths.ts';

const SERIES_HEADER = (kind: string) =>
  `# heca ${kind} series, applied in order with git am onto the base in BASE.\n# Export from a developer tree with: npx tsx tools/patches.ts export --${kind === 'Linux' ? 'kernel' : 'qemu'}\n`;

export async function exportSeries(kind: 'qemu' | 'linux', tree: string, dir: string, base: string): Promise<void> {
  if (!existsSync(join(tree, '.git'))) {
    throw new HecaError(`${tree} is not a git tree`, { why: 'export reads the commits of a git tree', fix: `make the tree with: npx tsx tools/build.ts ${kind === 'linux' ? '--kernel' : '--qemu'}, commit your work there, or pass --tree DIR` });
  }
  // Every git command below runs in the tree.
  const { count, sourceStamp, out } = await inDir(tree, async () => {
    const baseId = await probe('git', ['rev-parse', '--verify', `${base}^{commit}`]).catch(() => '');
    if (!baseId) throw new HecaError(`no base ${base} in ${tree}`, { why: 'export needs the commit the series starts from', fix: 'pass --base REF (a tag, branch or commit of the tree)' });
    const count = Number(await probe('git', ['rev-list', '--count', `${baseId}..HEAD`]));
    const dirty = await probe('git', ['status', '--porcelain', '--untracked-files=no']);
    if (dirty) warn(`${tree} has uncommitted changes: they are not part of the exported series`);
    const sourceStamp = existsSync(join(tree, '.git', 'heca-source')) ? readFileSync(join(tree, '.git', 'heca-source'), 'utf8').split(' ').slice(0, 2).join(' ') : `${kind} ${await probe('git', ['describe', '--always', baseId])}`;

    const out = join(buildDir(), 'export', `${kind}-${Date.now()}`);
    if (count > 0) {
      const branch = await probe('git', ['rev-parse', '--abbrev-ref', 'HEAD']);
      const desc = await probe('git', ['config', `branch.${branch}.description`], { allowFail: true });
      if (!desc.trim()) {
        throw new HecaError('the branch has no description for the cover letter', {
          why: `format-patch takes the cover letter from branch ${branch}'s description, and it is empty`,
          fix: `in ${tree}: git branch --edit-description   (first line: the series title; then what it does and how it was tested)`,
        });
      }
      await run('git', ['format-patch', '-q', '--cover-letter', '--cover-from-description=subject', '--no-signature', '--thread=shallow', '-o', out, `${baseId}..HEAD`]);
    }
    return { count, sourceStamp, out };
  });
  if (isDryRun()) return;
  // Keep what was there: the old patch files move to the build directory, never get deleted.
  const old = readdirSync(dir).filter((f) => f.endsWith('.patch'));
  if (old.length) {
    const backup = join(buildDir(), 'patches-backup', `${kind}-${Date.now()}`);
    mkdirSync(backup, { recursive: true });
    for (const f of old) renameSync(join(dir, f), join(backup, f));
    info(`moved the ${old.length} previous patch file(s) to ${backup}`);
  }
  const fresh = count > 0 ? readdirSync(out).filter((f) => f.endsWith('.patch')).sort() : [];
  for (const f of fresh) renameSync(join(out, f), join(dir, f));
  const names = fresh.filter((f) => !f.startsWith('0000-'));
  writeFileSync(join(dir, 'series'), SERIES_HEADER(kind === 'linux' ? 'Linux' : 'QEMU') + names.map((n) => `${n}\n`).join(''));
  writeFileSync(join(dir, 'BASE'), `${sourceStamp}\n`);
  info(`exported ${names.length} patch(es)${names.length ? ' and a cover letter' : ''} to ${dir} (base: ${sourceStamp})`);
}
