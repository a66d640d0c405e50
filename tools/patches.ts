/**
 * npx tsx tools/patches.ts export (--qemu|--kernel) [--tree DIR] [--base REF] [--dry-run]
 * npx tsx tools/patches.ts check  (--qemu|--kernel) [--tree DIR] [--build-each]
 *
 * export: turns the developer's commits in the git tree (default: the tree
 *   tools/build.ts made, build/src/{qemu,linux}) since the heca base into the
 *   numbered series in qemu-patches/ or kernel-patches/, with `series`, `BASE`
 *   and a cover letter from the branch description (git branch --edit-description).
 * check: runs the tree's own scripts/checkpatch.pl on every patch of the series
 *   and checks each one's form; --build-each applies the patches one at a time
 *   and builds after each, so the series stays bisectable.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildQemu } from './lib/build-qemu.ts';
import { buildKernel } from './lib/build-kernel.ts';
import { main, parseFlags, UsageError } from './lib/cli.ts';
import { HecaError } from './lib/errors.ts';
import { isDryRun, probe, run, setDryRun } from './lib/exec.ts';
import { applySeries, BASE_TAG } from './lib/gittree.ts';
import { info, setVerbose, warn } from './lib/log.ts';
import { checkPatch } from './lib/patch-check.ts';
import { buildDir, kernelPatchesDir, qemuPatchesDir } from './lib/paths.ts';
import { readSeries, type Series } from './lib/series.ts';

const usage = `  npx tsx tools/patches.ts export (--qemu|--kernel) [--tree DIR] [--base REF] [--dry-run] [--verbose]
  npx tsx tools/patches.ts check  (--qemu|--kernel) [--tree DIR] [--build-each] [--verbose]`;

const SERIES_HEADER = (kind: string) =>
  `# heca ${kind} series, applied in order with git am onto the base in BASE.\n# Export from a developer tree with: npx tsx tools/patches.ts export --${kind === 'Linux' ? 'kernel' : 'qemu'}\n`;

main(async () => {
  const [sub, ...rest] = process.argv.slice(2);
  if (sub !== 'export' && sub !== 'check') throw new UsageError(sub ? `unknown subcommand ${sub}` : 'no subcommand', { why: 'the subcommands are export and check', fix: `usage:\n${usage}` });
  const { values } = parseFlags(rest, {
    qemu: { type: 'boolean' },
    kernel: { type: 'boolean' },
    tree: { type: 'string' },
    base: { type: 'string' },
    'build-each': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    verbose: { type: 'boolean' },
  }, usage);
  if (values.qemu === values.kernel) throw new UsageError('say which series: --qemu or --kernel', { why: 'exactly one of them is needed', fix: `usage:\n${usage}` });
  setDryRun(values['dry-run'] === true);
  setVerbose(values.verbose === true);
  const kind = values.kernel ? 'linux' : 'qemu';
  const dir = kind === 'linux' ? kernelPatchesDir() : qemuPatchesDir();
  const tree = values.tree ?? join(buildDir(), 'src', kind);
  if (sub === 'export') await exportSeries(kind, tree, dir, values.base ?? BASE_TAG);
  else await checkSeries(kind, tree, readSeries(dir), values['build-each'] === true);
});

async function exportSeries(kind: 'qemu' | 'linux', tree: string, dir: string, base: string): Promise<void> {
  if (!existsSync(join(tree, '.git'))) {
    throw new HecaError(`${tree} is not a git tree`, { why: 'export reads the commits of a git tree', fix: `make the tree with: npx tsx tools/build.ts ${kind === 'linux' ? '--kernel' : '--qemu'}, commit your work there, or pass --tree DIR` });
  }
  const baseId = await probe('git', ['rev-parse', '--verify', `${base}^{commit}`], { cwd: tree }).catch(() => '');
  if (!baseId) throw new HecaError(`no base ${base} in ${tree}`, { why: 'export needs the commit the series starts from', fix: 'pass --base REF (a tag, branch or commit of the tree)' });
  const count = Number(await probe('git', ['rev-list', '--count', `${baseId}..HEAD`], { cwd: tree }));
  const dirty = await probe('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: tree });
  if (dirty) warn(`${tree} has uncommitted changes: they are not part of the exported series`);
  const sourceStamp = existsSync(join(tree, '.git', 'heca-source')) ? readFileSync(join(tree, '.git', 'heca-source'), 'utf8').split(' ').slice(0, 2).join(' ') : `${kind} ${await probe('git', ['describe', '--always', baseId], { cwd: tree })}`;

  const out = join(buildDir(), 'export', `${kind}-${Date.now()}`);
  if (count > 0) {
    const branch = await probe('git', ['rev-parse', '--abbrev-ref', 'HEAD'], { cwd: tree });
    const desc = await probe('git', ['config', `branch.${branch}.description`], { cwd: tree, allowFail: true });
    if (!desc.trim()) {
      throw new HecaError('the branch has no description for the cover letter', {
        why: `format-patch takes the cover letter from branch ${branch}'s description, and it is empty`,
        fix: `in ${tree}: git branch --edit-description   (first line: the series title; then what it does and how it was tested)`,
      });
    }
    await run('git', ['format-patch', '-q', '--cover-letter', '--cover-from-description=subject', '--no-signature', '--thread=shallow', '-o', out, `${baseId}..HEAD`], { cwd: tree });
  }
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

async function checkSeries(kind: 'qemu' | 'linux', tree: string, series: Series, buildEach: boolean): Promise<void> {
  if (series.patches.length === 0) {
    info(`the ${kind} series in ${series.dir} is empty: nothing to check`);
    return;
  }
  if (!existsSync(join(tree, 'scripts', 'checkpatch.pl'))) {
    throw new HecaError(`no scripts/checkpatch.pl in ${tree}`, { why: 'the check runs the tree\'s own checkpatch', fix: `make the tree with: npx tsx tools/build.ts ${kind === 'linux' ? '--kernel' : '--qemu'}, or pass --tree DIR` });
  }
  const cover = readdirSync(series.dir).find((f) => f.startsWith('0000-cover-letter'));
  let failed = 0;
  if (!cover) {
    failed++;
    process.stdout.write(`FAIL cover letter: no 0000-cover-letter.patch in ${series.dir}\n`);
  } else if (/\*\*\* (SUBJECT|BLURB) HERE \*\*\*/.test(readFileSync(join(series.dir, cover), 'utf8'))) {
    failed++;
    process.stdout.write(`FAIL ${cover}: still the format-patch template (*** SUBJECT HERE ***)\n`);
  }
  for (const p of series.patches) {
    const r = await checkPatch(tree, p.path, p.name, kind);
    if (r.problems.length) failed++;
    process.stdout.write(`${r.problems.length ? 'FAIL' : 'ok  '} ${p.name}\n`);
    for (const pr of r.problems) process.stdout.write(`     - ${pr}\n`);
    if (r.checkpatch.exitCode !== 0) process.stdout.write(r.checkpatch.output.split('\n').map((l) => `     | ${l}\n`).join(''));
  }
  if (buildEach) {
    for (let i = 1; i <= series.patches.length; i++) {
      const upto: Series = { ...series, patches: series.patches.slice(0, i) };
      info(`building with patches 1..${i} (${series.patches[i - 1]!.name})`);
      await applySeries(tree, upto);
      try {
        if (kind === 'qemu') await buildQemu({ srcDir: tree, jobs: 2 });
        else await buildKernel({ srcDir: tree, jobs: 2 });
        process.stdout.write(`ok   builds with ${series.patches[i - 1]!.name}\n`);
      } catch (e) {
        failed++;
        process.stdout.write(`FAIL does not build with ${series.patches[i - 1]!.name}\n`);
        if (e instanceof HecaError) process.stdout.write(`${e.format()}\n`);
        break;
      }
    }
  }
  if (failed) throw new HecaError(`${failed} problem(s) in the ${kind} series`, { why: 'see the FAIL lines above', fix: 'fix the commits in the tree, then re-export with tools/patches.ts export' });
  process.stdout.write(`${series.patches.length} patch(es) pass\n`);
}
