/**
 * Where things live. Everything generated goes under the build directory
 * (default `<repo>/build`, or $HECA_BUILD_DIR), never into the source tree.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HecaError } from './errors.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function buildDir(): string {
  return resolve(process.env.HECA_BUILD_DIR ?? join(repoRoot, 'build'));
}

/** Downloaded sources; shared between build directories ($HECA_DL_DIR). */
export function downloadDir(): string {
  return resolve(process.env.HECA_DL_DIR ?? join(buildDir(), 'dl'));
}

export const qemuPatchesDir = (): string => resolve(process.env.HECA_QEMU_PATCHES ?? join(repoRoot, 'qemu-patches'));
export const kernelPatchesDir = (): string => resolve(process.env.HECA_KERNEL_PATCHES ?? join(repoRoot, 'kernel-patches'));

/** Install prefix of the heca-built QEMU. */
export const qemuInstallDir = (): string => join(buildDir(), 'qemu', 'install');

/** Firmware search path for -L (Debian's seabios and qemu-system-data). */
export const firmwareDirs = ['/usr/share/seabios', '/usr/share/qemu', '/usr/lib/ipxe/qemu'];

/** $HECA_QEMU, when it names the QEMU to use instead of heca's build. */
export function qemuOverride(): string | undefined {
  return process.env.HECA_QEMU || undefined;
}

/**
 * The QEMU binary every run and test uses: $HECA_QEMU if set, else the
 * heca-built one. Throws with the build command when there is none.
 */
export function qemuBinary(): string {
  const env = qemuOverride();
  if (env) {
    if (!existsSync(env)) throw new HecaError(`HECA_QEMU=${env} does not exist`, { why: 'the variable names no file', fix: 'unset HECA_QEMU or point it at a qemu-system-x86_64' });
    return env;
  }
  const bin = join(qemuInstallDir(), 'bin', 'qemu-system-x86_64');
  if (!existsSync(bin)) {
    throw new HecaError('no heca-built QEMU found', {
      why: `${bin} does not exist`,
      fix: 'build it with: npx tsx tools/build.ts   (or set HECA_QEMU to a qemu-system-x86_64)',
    });
  }
  return bin;
}

/**
 * The QEMU that runs the nested testbed's L1 hosts (their hypervisor, at
 * L0): $HECA_L1_QEMU if set, else qemuBinary(). The QEMU under test is the
 * one inside them; the L1 hosts are infrastructure, and running them on
 * another QEMU (Debian's, another TCG) tells that QEMU's bugs from ours.
 */
export function l1HostQemu(): string {
  const env = process.env.HECA_L1_QEMU;
  if (env) {
    if (!existsSync(env)) throw new HecaError(`HECA_L1_QEMU=${env} does not exist`, { why: 'the variable names no file', fix: 'unset HECA_L1_QEMU or point it at a qemu-system-x86_64 (e.g. /usr/bin/qemu-system-x86_64 from Debian\'s qemu-system-x86)' });
    return env;
  }
  return qemuBinary();
}
