/**
 * Pinned sources: QEMU 10.0.y from Debian's source package, Linux 6.12.y from
 * `linux-source-6.12`. The newest available version of each series is resolved
 * at build time (pinned versions leave the archive when superseded), and its
 * exact version and checksums are recorded in every build.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareDebVersions, upstreamVersion } from './debver.ts';
import { HecaError } from '../core/errors.ts';
import { isDryRun, probe, retrying, run } from '../core/exec.ts';
import { sha256File } from '../core/hash.ts';
import { info } from '../core/log.ts';
import { downloadDir } from '../core/paths.ts';

export interface SourceFile {
  name: string;
  sha256: string;
}

export interface ResolvedSource {
  component: 'qemu' | 'linux';
  /** Debian package version, e.g. 1:10.0.13+ds-0+deb13u1. */
  debianVersion: string;
  /** Upstream version, e.g. 10.0.13. */
  version: string;
  files: SourceFile[];
  /** Unpack this into a tree: a .dsc (dpkg-source -x) or a tarball. */
  unpack: { kind: 'dsc'; path: string } | { kind: 'tar'; path: string; topDir: string };
}

export const QEMU_SERIES = '10.0';
export const LINUX_SERIES = '6.12';

const setupFix = 'run tools/setup-host.sh as root (it adds the deb-src entry for trixie and installs linux-source-6.12)';

/** Pick the newest version of `series` (e.g. "10.0") among Debian versions. */
export function newestInSeries(versions: string[], series: string): string | undefined {
  const re = new RegExp(`^(\\d+:)?${series.replace('.', '\\.')}\\.\\d+([+~-]|$)`);
  return versions.filter((v) => re.test(v)).sort(compareDebVersions).at(-1);
}

/** Versions listed by `apt-cache showsrc PKG`. */
export function parseShowsrcVersions(out: string): string[] {
  return [...out.matchAll(/^Version: (\S+)$/gm)].map((m) => m[1]!);
}

export async function resolveQemuSource(): Promise<ResolvedSource> {
  const out = await probe('apt-cache', ['showsrc', 'qemu'], { allowFail: true });
  const versions = parseShowsrcVersions(out);
  const v = newestInSeries(versions, QEMU_SERIES);
  if (!v) {
    throw new HecaError(`no QEMU ${QEMU_SERIES}.y source package found`, {
      why: versions.length
        ? `apt-cache showsrc qemu lists only: ${versions.join(', ')}`
        : 'apt-cache showsrc qemu lists nothing: there is no deb-src entry for a suite with QEMU 10.0 (trixie)',
      fix: setupFix,
    });
  }
  const dl = join(downloadDir(), 'qemu');
  mkdirSync(dl, { recursive: true });
  const noEpoch = v.replace(/^\d+:/, '');
  const dsc = join(dl, `qemu_${noEpoch}.dsc`);
  if (!existsSync(dsc)) {
    info(`downloading QEMU source ${v}`);
    // A mirror that drops the connection now and then should not fail a build: three tries.
    await retrying(3, 10_000, () => run('apt-get', ['source', '--download-only', `qemu=${v}`], {
      cwd: dl,
      timeoutMs: 30 * 60_000,
      fix: `check that apt can reach the archive (apt-get update), then rerun; ${setupFix}`,
    }));
  }
  return {
    component: 'qemu',
    debianVersion: v,
    version: upstreamVersion(v),
    files: await dscFiles(dsc),
    unpack: { kind: 'dsc', path: dsc },
  };
}

/** The files a .dsc names, checked against the sha256 it records. */
async function dscFiles(dsc: string): Promise<SourceFile[]> {
  if (!existsSync(dsc)) return []; // dry-run: nothing downloaded
  const text = readFileSync(dsc, 'utf8');
  const block = /^Checksums-Sha256:\n((?: .*\n)+)/m.exec(text);
  if (!block) throw new HecaError(`${dsc} has no Checksums-Sha256 field`, { why: 'not a Debian source control file', fix: `delete ${dsc} and rerun` });
  const dir = dsc.slice(0, dsc.lastIndexOf('/'));
  const files: SourceFile[] = [{ name: dsc.slice(dir.length + 1), sha256: await sha256File(dsc) }];
  for (const line of block[1]!.trim().split('\n')) {
    const [sum, , name] = line.trim().split(/\s+/);
    const got = await sha256File(join(dir, name!));
    if (got !== sum) {
      throw new HecaError(`checksum mismatch for ${name}`, { why: `the .dsc says ${sum}, the file has ${got}`, fix: `delete ${dir} and rerun to download again` });
    }
    files.push({ name: name!, sha256: sum! });
  }
  return files;
}

const LINUX_PKG = `linux-source-${LINUX_SERIES}`;

export async function resolveLinuxSource(): Promise<ResolvedSource> {
  const policy = await probe('apt-cache', ['policy', LINUX_PKG], { allowFail: true });
  const installed = /Installed: (\S+)/.exec(policy)?.[1];
  const candidate = /Candidate: (\S+)/.exec(policy)?.[1];
  if (!candidate || candidate === '(none)') {
    throw new HecaError(`${LINUX_PKG} is not available`, { why: 'apt-cache policy shows no candidate', fix: setupFix });
  }
  if (installed !== candidate) {
    if (process.getuid?.() !== 0) {
      throw new HecaError(`${LINUX_PKG} ${candidate} is not installed (have: ${installed ?? 'none'})`, {
        why: 'installing a Debian package needs root',
        fix: `sudo apt-get install ${LINUX_PKG}   (or run tools/setup-host.sh as root)`,
      });
    }
    info(`installing ${LINUX_PKG} ${candidate} (was: ${installed ?? 'none'})`);
    await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', `${LINUX_PKG}=${candidate}`], {
      env: { DEBIAN_FRONTEND: 'noninteractive' },
      timeoutMs: 30 * 60_000,
    });
  }
  const tarball = `/usr/src/${LINUX_PKG}.tar.xz`;
  const files = existsSync(tarball) ? [{ name: `${LINUX_PKG}.tar.xz`, sha256: await sha256File(tarball) }] : [];
  // Debian's version 6.12.117-1~deb12u1 → upstream 6.12.117.
  return {
    component: 'linux',
    debianVersion: candidate,
    version: upstreamVersion(candidate),
    files,
    unpack: { kind: 'tar', path: tarball, topDir: LINUX_PKG },
  };
}

/** Unpack a resolved source into `dest` (which must not exist). */
export async function unpackSource(src: ResolvedSource, dest: string): Promise<void> {
  const parent = dest.slice(0, dest.lastIndexOf('/'));
  if (!isDryRun()) mkdirSync(parent, { recursive: true });
  if (src.unpack.kind === 'dsc') {
    // dpkg-source applies Debian's quilt series, which the build needs.
    await run('dpkg-source', ['--no-check', '-x', src.unpack.path, dest], { timeoutMs: 20 * 60_000 });
    return;
  }
  const tmp = `${dest}.unpack`;
  await run('rm', ['-rf', tmp]);
  mkdirSync(tmp, { recursive: true });
  await run('tar', ['-xf', src.unpack.path, '-C', tmp], { timeoutMs: 20 * 60_000 });
  const inner = existsSync(tmp) ? readdirSync(tmp) : [src.unpack.topDir];
  if (inner.length !== 1) throw new HecaError(`unexpected layout in ${src.unpack.path}`, { why: `expected one top directory, found: ${inner.join(', ')}` });
  await run('mv', [join(tmp, inner[0]!), dest], { cwd: parent });
  await run('rm', ['-rf', tmp]);
}
