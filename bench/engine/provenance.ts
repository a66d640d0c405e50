/**
 * Where the QEMU of a run came from, for the result's environment: a binary
 * named by $HECA_QEMU is recorded as that binary (its path, hash and
 * version), never as heca's build; heca's build by its BUILD-INFO.json (the
 * source version and the patch series) and the binary's hash.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256File } from '../../tools/core/hash.ts';
import { warn } from '../../tools/core/log.ts';
import { buildDir, qemuOverride } from '../../tools/core/paths.ts';
import type { QemuBuild } from '../results/schema.ts';

/** `version` is the binary's --version line. */
export async function qemuProvenance(qemu: string, version: string, buildInfo = join(buildDir(), 'qemu', 'BUILD-INFO.json')): Promise<QemuBuild | undefined> {
  const sha256 = await sha256File(qemu);
  if (qemuOverride()) return { origin: 'HECA_QEMU', path: qemu, sha256, version };
  if (!existsSync(buildInfo)) {
    warn(`${buildInfo} is missing; the result will name the QEMU binary only`);
    return undefined;
  }
  try {
    const bi = JSON.parse(readFileSync(buildInfo, 'utf8')) as { debian_version: string; series: { sha256: string; patches: { name: string }[] } };
    return { origin: 'heca-build', version: bi.debian_version, series_sha256: bi.series.sha256, patches: bi.series.patches.map((x) => x.name), path: qemu, sha256 };
  } catch {
    warn(`${buildInfo} is unreadable; the result will not name the QEMU build`);
    return undefined;
  }
}
