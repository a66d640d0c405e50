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
import { join } from 'node:path';
import { buildKernel } from './build/kernel.ts';
import { buildQemu } from './build/qemu.ts';
import { main, parseFlags, UsageError } from './core/cli.ts';
import { setDryRun } from './core/exec.ts';
import { setVerbose } from './core/log.ts';
import { buildDir, kernelPatchesDir, qemuPatchesDir } from './core/paths.ts';
import { checkSeries } from './patch/check.ts';
import { exportSeries } from './patch/export.ts';
import { readSeries } from './patch/series.ts';
import { BASE_TAG } from './source/tree.ts';

const usage = `  npx tsx tools/patches.ts export (--qemu|--kernel) [--tree DIR] [--base REF] [--dry-run] [--verbose]
  npx tsx tools/patches.ts check  (--qemu|--kernel) [--tree DIR] [--build-each] [--verbose]`;

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
  else {
    const build = (t: string) => (kind === 'qemu' ? buildQemu({ srcDir: t, jobs: 2 }) : buildKernel({ srcDir: t, jobs: 2, partialSeries: true })).then(() => undefined);
    await checkSeries(kind, tree, readSeries(dir), values['build-each'] === true ? build : undefined);
  }
});
