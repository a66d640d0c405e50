/**
 * npx tsx tools/build.ts [--qemu] [--kernel] [--qemu-src DIR] [--kernel-src DIR]
 *                        [--jobs N] [--tree-only] [--force] [--dry-run] [--verbose]
 *
 * Fetches the pinned sources (newest QEMU 10.0.y Debian source package, newest
 * linux-source-6.12), applies qemu-patches/ and kernel-patches/ with git am,
 * and builds with ccache. Writes BUILD-INFO.json next to each build.
 */
import { cpus } from 'node:os';
import { parseFlags, intFlag, main } from './core/cli.ts';
import { setDryRun } from './core/exec.ts';
import { setVerbose } from './core/log.ts';
import { buildQemu } from './build/qemu.ts';
import { buildKernel } from './build/kernel.ts';

const usage = `  npx tsx tools/build.ts [--qemu] [--kernel] [--qemu-src DIR] [--kernel-src DIR] [--jobs N] [--force] [--dry-run] [--verbose]
    --qemu            build QEMU (the default when neither --qemu nor --kernel is given)
    --kernel          build the Linux 6.12 kernel (bzImage) from kernel-patches/config/*.config
    --qemu-src DIR    build this QEMU tree as it is instead of the Debian source + qemu-patches/
    --kernel-src DIR  build this Linux tree as it is instead of linux-source-6.12 + kernel-patches/
    --jobs N          parallel jobs (default: number of CPUs)
    --tree-only       fetch, unpack and apply the series into build/src/{qemu,linux}, then stop
    --force           rebuild even when nothing changed
    --dry-run         print the commands instead of running them
    --verbose         echo every command`;

main(async () => {
  const { values } = parseFlags(process.argv.slice(2), {
    qemu: { type: 'boolean' },
    kernel: { type: 'boolean' },
    'qemu-src': { type: 'string' },
    'kernel-src': { type: 'string' },
    jobs: { type: 'string' },
    force: { type: 'boolean' },
    'tree-only': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  setDryRun(values['dry-run'] === true);
  setVerbose(values.verbose === true);
  const jobs = intFlag('jobs', values.jobs, 1, 256) ?? cpus().length;
  const wantKernel = values.kernel === true || values['kernel-src'] !== undefined;
  const wantQemu = values.qemu === true || values['qemu-src'] !== undefined || !wantKernel;
  if (wantQemu) await buildQemu({ srcDir: values['qemu-src'], jobs, force: values.force, treeOnly: values['tree-only'] });
  if (wantKernel) await buildKernel({ srcDir: values['kernel-src'], jobs, force: values.force, treeOnly: values['tree-only'] });
});
