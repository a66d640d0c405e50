/**
 * The L2 guest every migration benchmark and test boots: Debian's cloud
 * kernel plus a tiny initramfs (busybox + bench/guest/init + the static
 * bench/guest/workload.c). Built into `buildDir()/guest/` and cached:
 *
 *   guest/initrd.cpio.gz, guest/GUEST-INFO.json     rebuilt when workload.c,
 *       init, busybox or the compiler change (a content hash decides)
 *   guest/kernel/<package>_<version>/vmlinuz, config, KERNEL-INFO.json
 *       the kernel of the current dependency of linux-image-cloud-amd64,
 *       downloaded once per Debian version
 *
 * The workload is configured on the kernel command line (`guestAppend`).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, lutimesSync, writeFileSync, copyFileSync, chmodSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseConfig, unmetOptions } from '../../tools/build/kconfig.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { isDryRun, probe, run } from '../../tools/core/exec.ts';
import { sha256, sha256FileSync } from '../../tools/core/hash.ts';
import { debug, info, warn } from '../../tools/core/log.ts';
import { buildDir, repoRoot } from '../../tools/core/paths.ts';

/** Bump when the way the initramfs is assembled changes. */
const RECIPE = 1;
const META_PACKAGE = 'linux-image-cloud-amd64';
const BUSYBOX = '/bin/busybox';
/** What /init runs, as busybox applet links. */
const APPLETS: Record<string, string[]> = { bin: ['sh', 'mount', 'cat', 'echo'], sbin: ['poweroff'] };
/** Kernel options the guest cannot run without. */
const REQUIRED_CONFIG = new Map([
  ['CONFIG_SERIAL_8250', 'y'],
  ['CONFIG_SERIAL_8250_CONSOLE', 'y'],
  ['CONFIG_BLK_DEV_INITRD', 'y'],
  ['CONFIG_RD_GZIP', 'y'],
  ['CONFIG_DEVTMPFS', 'y'],
  ['CONFIG_PROC_PAGE_MONITOR', 'y'],
]);

export const PATTERNS = ['sequential', 'random', 'hotcold'] as const;
export type Pattern = (typeof PATTERNS)[number];

export interface GuestParams {
  /** Memory the workload owns and stamps, MiB. */
  arena_mib: number;
  /** Part of the arena written (its last ws_mib MiB), MiB; default = arena. */
  ws_mib?: number;
  /** Page writes per second, 0 = flat out (default 0). */
  rate?: number;
  /** Default 'random'. */
  pattern?: Pattern;
  /** Tick period in ms (default 100). */
  interval_ms?: number;
  /** PRNG seed (default 1). */
  seed?: number;
  /** Writer threads, each on its own slice of the working set (default 1). */
  threads?: number;
}

export interface GuestImage {
  /** vmlinuz to pass to -kernel. */
  kernel: string;
  /** gzip'd newc cpio to pass to -initrd. */
  initrd: string;
  /** e.g. "6.1.0-56-cloud-amd64 (Debian 6.1.192-2)". */
  kernelVersion: string;
  /** The real package behind linux-image-cloud-amd64, e.g. linux-image-6.1.0-56-cloud-amd64. */
  kernelPackage: string;
  /** Its Debian version, e.g. 6.1.192-2. */
  kernelDebVersion: string;
  /** sha256 of bench/guest/workload.c (the source the workload was built from). */
  workloadSha256: string;
  initrdSha256: string;
  /** False when everything came from the cache. */
  rebuilt: boolean;
}

// ---------------------------------------------------------------- the command line

function wholeNumber(name: string, v: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new HecaError(`guest parameter ${name}=${v} is not valid`, { why: `it must be a whole number from ${min} to ${max}` });
  }
  return v;
}

/**
 * The kernel command line for the guest: console on ttyS0, the workload's
 * parameters as heca.*. Throws a HecaError for parameters the workload would
 * refuse (it would power the guest off instead of reaching `ready`).
 */
export function guestAppend(p: GuestParams): string {
  const arena = wholeNumber('arena_mib', p.arena_mib, 1, 1 << 20)!;
  const ws = wholeNumber('ws_mib', p.ws_mib, 1, 1 << 20) ?? arena;
  if (ws > arena) {
    throw new HecaError(`guest working set ${ws} MiB is larger than its arena ${arena} MiB`, { why: 'the workload writes inside its arena only', fix: 'make ws_mib <= arena_mib' });
  }
  const rate = wholeNumber('rate', p.rate, 0, 100_000_000) ?? 0;
  const interval = wholeNumber('interval_ms', p.interval_ms, 1, 60_000) ?? 100;
  const seed = wholeNumber('seed', p.seed, 0, Number.MAX_SAFE_INTEGER) ?? 1;
  const threads = wholeNumber('threads', p.threads, 1, 64) ?? 1;
  if (threads > ws * 256) {
    throw new HecaError(`guest threads=${threads} is more than the ${ws * 256} pages of the working set`, { why: 'each writer thread owns a slice of at least one page', fix: 'fewer threads, or a larger working set' });
  }
  const pattern = p.pattern ?? 'random';
  if (!(PATTERNS as readonly string[]).includes(pattern)) {
    throw new HecaError(`guest pattern "${String(pattern)}" is not valid`, { why: `the workload knows ${PATTERNS.join(', ')}` });
  }
  return [
    'console=ttyS0',
    'quiet',
    'rdinit=/init',
    // Only the two ports QEMU has; no probing for more.
    '8250.nr_uarts=2',
    // QEMU 10's -cpu max offers LA57: 4-level paging halves TCG's page-walk
    // cost (boot to ready 4.4 -> 3.4 s, flat-out writes 285k -> 560k pages/s).
    'no5lvl',
    // The workload's syscalls and faults: flat-out writes 390k -> 560k pages/s under TCG.
    'mitigations=off',
    // No clocksource watchdog that could demote the TSC mid-run (the workload
    // reads CLOCK_MONOTONIC per op: through the vDSO only with the TSC).
    'tsc=reliable',
    `heca.arena_mib=${arena}`,
    `heca.ws_mib=${ws}`,
    `heca.rate=${rate}`,
    `heca.pattern=${pattern}`,
    `heca.interval_ms=${interval}`,
    `heca.seed=${seed}`,
    // Only when there are several: the command line of a one-writer guest stays as it was.
    ...(threads > 1 ? [`heca.threads=${threads}`] : []),
  ].join(' ');
}

// ---------------------------------------------------------------- kernel package

/** The real kernel package in `apt-cache depends linux-image-cloud-amd64` output. */
export function parseKernelDepends(out: string): string | undefined {
  for (const line of out.split('\n')) {
    const m = /^\s*\|?(?:Pre)?Depends:\s*<?(linux-image-\d[\w.+-]*)>?\s*$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** Fields of the first stanza of `apt-cache show --no-all-versions`. */
export function parseAptShow(out: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const line of out.split('\n')) {
    if (line.trim() === '') {
      if (Object.keys(f).length) break;
      continue;
    }
    const m = /^([\w-]+):\s?(.*)$/.exec(line);
    if (m) f[m[1]!] = m[2]!;
  }
  return f;
}

interface KernelInfo {
  package: string;
  version: string;
  deb_sha256: string;
  release: string;
  vmlinuz_sha256: string;
  fetched_at: string;
}

async function resolveKernelPackage(): Promise<{ pkg: string; version: string; sha256: string } | undefined> {
  const dep = await run('apt-cache', ['depends', META_PACKAGE], { probe: true, allowFail: true });
  const pkg = dep.exitCode === 0 ? parseKernelDepends(dep.stdout) : undefined;
  if (!pkg) return undefined;
  const show = parseAptShow(await probe('apt-cache', ['show', '--no-all-versions', pkg]));
  if (!show.Version) return undefined;
  return { pkg, version: show.Version, sha256: show.SHA256 ?? '' };
}

function cachedKernels(root: string): { dir: string; info: KernelInfo }[] {
  if (!existsSync(root)) return [];
  const out: { dir: string; info: KernelInfo }[] = [];
  for (const d of readdirSync(root)) {
    const infoPath = join(root, d, 'KERNEL-INFO.json');
    if (!existsSync(infoPath) || !existsSync(join(root, d, 'vmlinuz'))) continue;
    try {
      out.push({ dir: join(root, d), info: JSON.parse(readFileSync(infoPath, 'utf8')) as KernelInfo });
    } catch {
      /* a half-written entry: ignore */
    }
  }
  return out.sort((a, b) => b.info.fetched_at.localeCompare(a.info.fetched_at));
}

async function ensureKernel(root: string): Promise<{ dir: string; info: KernelInfo; fetched: boolean }> {
  const want = await resolveKernelPackage();
  if (!want) {
    const have = cachedKernels(root)[0];
    if (have) {
      warn(`apt-cache cannot resolve ${META_PACKAGE}: using the cached guest kernel ${have.info.package} ${have.info.version}`);
      return { ...have, fetched: false };
    }
    throw new HecaError(`cannot find the guest kernel package ${META_PACKAGE}`, {
      why: `apt-cache depends ${META_PACKAGE} names no linux-image-<version> package`,
      fix: 'run apt-get update (the Debian archive must be in the apt sources); tools/setup-host.sh sets them up',
    });
  }
  const dir = join(root, `${want.pkg}_${want.version}`);
  const infoPath = join(dir, 'KERNEL-INFO.json');
  if (existsSync(infoPath) && existsSync(join(dir, 'vmlinuz'))) {
    const ki = JSON.parse(readFileSync(infoPath, 'utf8')) as KernelInfo;
    return { dir, info: ki, fetched: false };
  }
  info(`guest kernel: downloading ${want.pkg} ${want.version}`);
  mkdirSync(root, { recursive: true });
  const tmp = mkdtempSync(join(root, '.fetch-'));
  try {
    // apt drops privileges to _apt for downloads; let it write here.
    chmodSync(tmp, 0o777);
    await run('apt-get', ['download', '-q', `${want.pkg}=${want.version}`], {
      cwd: tmp,
      timeoutMs: 10 * 60_000,
      fix: 'check the network to the Debian archive; apt-get update may be needed',
    });
    if (isDryRun()) return { dir, info: { package: want.pkg, version: want.version, deb_sha256: want.sha256, release: want.pkg.replace(/^linux-image-/, ''), vmlinuz_sha256: '', fetched_at: '' }, fetched: true };
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new HecaError(`apt-get download ${want.pkg} left no .deb`, { why: `nothing ending in .deb in ${tmp}` });
    const debSha = sha256FileSync(join(tmp, deb));
    if (want.sha256 && debSha !== want.sha256) {
      throw new HecaError(`${deb} does not match the archive's checksum`, { why: `sha256 ${debSha}, apt-cache says ${want.sha256}`, fix: 'apt-get update and retry' });
    }
    const x = join(tmp, 'x');
    await run('dpkg-deb', ['-x', join(tmp, deb), x]);
    const boot = join(x, 'boot');
    const files = existsSync(boot) ? readdirSync(boot) : [];
    const vmlinuz = files.find((f) => f.startsWith('vmlinuz-'));
    const config = files.find((f) => f.startsWith('config-'));
    if (!vmlinuz || !config) {
      throw new HecaError(`${want.pkg} has no /boot/vmlinuz-* and /boot/config-*`, { why: `its /boot holds: ${files.join(', ') || 'nothing'}`, fix: `${META_PACKAGE} may have changed shape; see dpkg-deb -c ${deb}` });
    }
    const unmet = unmetOptions(REQUIRED_CONFIG, parseConfig(readFileSync(join(boot, config), 'utf8')));
    if (unmet.length) {
      throw new HecaError(`the guest kernel ${want.pkg} ${want.version} cannot run the heca guest`, {
        why: `its config lacks: ${unmet.join(', ')} (the console and the control channel are the 8250 serial ports; /init is in an initramfs)`,
        fix: `use a kernel with these built in: this is Debian's ${META_PACKAGE}; if Debian changed it, point the guest at another flavour in bench/guest/image.ts`,
      });
    }
    const stage = join(tmp, 'out');
    mkdirSync(stage);
    copyFileSync(join(boot, vmlinuz), join(stage, 'vmlinuz'));
    copyFileSync(join(boot, config), join(stage, 'config'));
    const ki: KernelInfo = {
      package: want.pkg,
      version: want.version,
      deb_sha256: debSha,
      release: vmlinuz.slice('vmlinuz-'.length),
      vmlinuz_sha256: sha256FileSync(join(stage, 'vmlinuz')),
      fetched_at: new Date().toISOString(),
    };
    writeFileSync(join(stage, 'KERNEL-INFO.json'), `${JSON.stringify(ki, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(stage, dir);
    return { dir, info: ki, fetched: true };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- initramfs

interface GuestInfo {
  recipe: number;
  key: string;
  inputs: Record<string, string>;
  workload_sha256: string;
  initrd_sha256: string;
  built_at: string;
}

/** Everything the initramfs is made from, hashed: a change to any of it rebuilds. */
async function initrdInputs(): Promise<Record<string, string>> {
  const src = join(repoRoot, 'bench', 'guest');
  if (!existsSync(BUSYBOX)) {
    throw new HecaError(`${BUSYBOX} is missing`, { why: 'the guest initramfs is made of busybox-static', fix: 'run tools/setup-host.sh as root (or apt-get install busybox-static)' });
  }
  const gcc = await run('gcc', ['-dumpfullversion'], { probe: true, fix: 'run tools/setup-host.sh as root (build-essential)' });
  return {
    recipe: String(RECIPE),
    'workload.c': sha256FileSync(join(src, 'workload.c')),
    init: sha256FileSync(join(src, 'init')),
    busybox: sha256FileSync(BUSYBOX),
    gcc: gcc.stdout.trim(),
  };
}

async function buildInitrd(root: string, key: string, inputs: Record<string, string>): Promise<GuestInfo> {
  const src = join(repoRoot, 'bench', 'guest');
  const tmp = mkdtempSync(join(root, '.initrd-'));
  try {
    const tree = join(tmp, 'tree');
    for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(tree, d), { recursive: true });
    const workloadBin = join(tree, 'workload');
    const cc = await run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-o', workloadBin, join(src, 'workload.c')], {
      fix: 'the guest workload (bench/guest/workload.c) must compile with gcc -static -O2 -Wall -Wextra',
    });
    if (cc.stderr.trim()) warn(`bench/guest/workload.c compiles with warnings:\n${cc.stderr.trimEnd()}`);
    if (isDryRun()) return { recipe: RECIPE, key, inputs, workload_sha256: inputs['workload.c'] ?? '', initrd_sha256: '', built_at: '' };
    copyFileSync(BUSYBOX, join(tree, 'bin', 'busybox'));
    chmodSync(join(tree, 'bin', 'busybox'), 0o755);
    copyFileSync(join(src, 'init'), join(tree, 'init'));
    chmodSync(join(tree, 'init'), 0o755);
    const list = ['.', './bin', './sbin', './proc', './sys', './dev', './tmp', './init', './workload', './bin/busybox'];
    for (const [dir, applets] of Object.entries(APPLETS)) {
      for (const a of applets) {
        symlinkSync(dir === 'bin' ? 'busybox' : '../bin/busybox', join(tree, dir, a));
        list.push(`./${dir}/${a}`);
      }
    }
    // Same inputs, same bytes: fixed times (cpio --reproducible fixes inode numbers).
    const epoch = new Date(0);
    for (const p of list) lutimesSync(join(tree, p), epoch, epoch);
    const cpio = join(tmp, 'initrd.cpio');
    await run('cpio', ['--create', '--format=newc', '--owner=0:0', '--reproducible', '--quiet', `--file=${cpio}`], {
      cwd: tree,
      input: `${list.join('\n')}\n`,
      fix: 'run tools/setup-host.sh as root (cpio)',
    });
    const gz = gzipSync(readFileSync(cpio), { level: 9 });
    const out = join(root, 'initrd.cpio.gz');
    writeFileSync(join(tmp, 'initrd.cpio.gz'), gz);
    renameSync(join(tmp, 'initrd.cpio.gz'), out);
    return { recipe: RECIPE, key, inputs, workload_sha256: inputs['workload.c'] ?? '', initrd_sha256: sha256(gz), built_at: new Date().toISOString() };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The guest kernel and initramfs, built or fetched when missing or stale.
 * In --dry-run, prints what it would run and returns the planned paths.
 */
export async function ensureGuestImage(opts: { force?: boolean } = {}): Promise<GuestImage> {
  const root = join(buildDir(), 'guest');
  mkdirSync(root, { recursive: true });
  const kernel = await ensureKernel(join(root, 'kernel'));

  const inputs = await initrdInputs();
  const key = sha256(JSON.stringify(inputs));
  const infoPath = join(root, 'GUEST-INFO.json');
  const initrd = join(root, 'initrd.cpio.gz');
  let gi: GuestInfo | undefined;
  try {
    gi = JSON.parse(readFileSync(infoPath, 'utf8')) as GuestInfo;
  } catch {
    gi = undefined;
  }
  let rebuilt = kernel.fetched;
  if (opts.force || !gi || gi.key !== key || !existsSync(initrd) || sha256FileSync(initrd) !== gi.initrd_sha256) {
    info(`guest initramfs: building (${opts.force ? 'forced' : gi ? 'inputs changed' : 'none yet'})`);
    gi = await buildInitrd(root, key, inputs);
    if (!isDryRun()) writeFileSync(infoPath, `${JSON.stringify(gi, null, 2)}\n`);
    rebuilt = true;
  } else {
    debug(`guest initramfs up to date (${key.slice(0, 12)})`);
  }
  return {
    kernel: join(kernel.dir, 'vmlinuz'),
    initrd,
    kernelVersion: `${kernel.info.release} (Debian ${kernel.info.version})`,
    kernelPackage: kernel.info.package,
    kernelDebVersion: kernel.info.version,
    workloadSha256: gi.workload_sha256,
    initrdSha256: gi.initrd_sha256,
    rebuilt,
  };
}
