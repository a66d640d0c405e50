/**
 * Configure, build and install QEMU (x86_64-softmmu with RDMA and slirp),
 * with ccache, from a heca-managed tree (pristine Debian source + series) or a
 * developer's own tree. Rebuilds only when sources, series or flags changed.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readBuildInfo, recordBuild, fingerprint, type BuildInfo } from './buildinfo.ts';
import { HecaError } from '../core/errors.ts';
import { isDryRun, probe, run } from '../core/exec.ts';
import { applySeries } from '../patch/apply.ts';
import { BASE_TAG, ensureBaseTree, sourceStamp, treeState } from '../source/tree.ts';
import { info, Progress } from '../core/log.ts';
import { buildDir, qemuInstallDir, qemuPatchesDir } from '../core/paths.ts';
import { readSeries } from '../patch/series.ts';
import { resolveQemuSource } from '../source/sources.ts';

/**
 * Bump when the way heca builds changes, so old builds are redone. 3: a tree
 * with series 2's verbs test builds it too (qemuTargets); a build of such a
 * tree made before would otherwise count as up to date without it.
 */
const RECIPE = 3;

/**
 * What heca runs: the emulator, the migration qtests `make test` runs
 * against it, and the one generated file `meson install` installs besides the
 * emulator. Not ninja's default target, which adds ~900 steps of unit tests
 * and helpers nothing here uses (2,568 steps against 1,664).
 */
export const QEMU_TARGETS = ['qemu-system-x86_64', 'tests/qtest/migration-test', 'trace/trace-events-all'];

/**
 * Targets built only when the tree has their source: series 2 adds the verbs
 * test that tests/nested/qtest-rdma.test.ts runs in an L1 host; a tree
 * without series 2 has no such target, and asking ninja for it would fail.
 */
export const OPTIONAL_QEMU_TARGETS: readonly { target: string; source: string }[] = [
  { target: 'tests/unit/test-postcopy-rdma-verbs', source: 'tests/unit/test-postcopy-rdma-verbs.c' },
];

/** The ninja targets for the QEMU tree `tree`: QEMU_TARGETS, and each optional one whose source it has. */
export function qemuTargets(tree: string, has: (path: string) => boolean = existsSync): string[] {
  return [...QEMU_TARGETS, ...OPTIONAL_QEMU_TARGETS.filter((o) => has(join(tree, o.source))).map((o) => o.target)];
}

export function qemuConfigureFlags(prefix: string): string[] {
  return [
    `--prefix=${prefix}`,
    '--target-list=x86_64-softmmu',
    '--python=/usr/bin/python3',
    '--without-default-features',
    '--disable-download',
    '--disable-install-blobs',
    '--disable-docs',
    '--disable-werror',
    '--enable-kvm',
    '--enable-tcg',
    '--enable-rdma',
    '--enable-slirp',
    // virtio-9p: the nested testbed's L1 hosts boot with the machine's root over 9p.
    '--enable-virtfs',
    '--enable-attr',
  ];
}

/**
 * QEMU's configure writes the compiler into meson's native file, so meson's own
 * ccache detection never applies: put Debian's ccache wrappers first on PATH.
 */
export function ccacheEnv(): Record<string, string> {
  const wrappers = '/usr/lib/ccache';
  return existsSync(wrappers) ? { PATH: `${wrappers}:${process.env.PATH ?? '/usr/bin:/bin'}` } : {};
}

export interface QemuBuildOptions {
  /** A developer's own QEMU tree: built as it is, no series applied. */
  srcDir?: string;
  jobs: number;
  force?: boolean;
  /** Stop once the tree holds the source with the series applied. */
  treeOnly?: boolean;
}

export interface QemuBuildResult {
  binary: string;
  info: BuildInfo | undefined;
  upToDate: boolean;
}

/** Parse "[123/4567] Compiling C object ..." from ninja. */
export function parseNinjaProgress(line: string): { done: number; total: number; what: string } | undefined {
  const m = /^\[(\d+)\/(\d+)\] (.*)$/.exec(line);
  return m ? { done: Number(m[1]), total: Number(m[2]), what: m[3]! } : undefined;
}

export async function buildQemu(opts: QemuBuildOptions): Promise<QemuBuildResult> {
  const started = Date.now();
  const root = join(buildDir(), 'qemu');
  const prefix = qemuInstallDir();
  const bdir = join(root, 'build');
  const infoPath = join(root, 'BUILD-INFO.json');
  const binary = join(prefix, 'bin', 'qemu-system-x86_64');
  const flags = qemuConfigureFlags(prefix);
  mkdirSync(root, { recursive: true });

  let tree: string;
  let srcInfo: BuildInfo['source'];
  let version: string;
  let debianVersion: string;
  const series = readSeries(qemuPatchesDir());
  let fp: string | undefined;

  if (opts.srcDir) {
    tree = resolve(opts.srcDir);
    if (!existsSync(join(tree, 'configure')) || !existsSync(join(tree, 'VERSION'))) {
      throw new HecaError(`${tree} is not a QEMU source tree`, { why: 'it has no configure or VERSION file', fix: 'pass the top directory of a QEMU checkout to --qemu-src' });
    }
    const st = await treeState(tree);
    version = readFileSync(join(tree, 'VERSION'), 'utf8').trim();
    debianVersion = st.describe;
    srcInfo = { kind: 'developer-tree', files: [], tree, base_commit: '', head_commit: st.head };
  } else {
    const src = await resolveQemuSource();
    version = src.version;
    debianVersion = src.debianVersion;
    if (series.base && !series.base.includes(src.debianVersion)) {
      info(`note: the series was made against ${series.base}; building on ${src.debianVersion}`);
    }
    fp = fingerprint({ RECIPE, src: sourceStamp(src), series: series.sha256, flags });
    const prev = readBuildInfo(infoPath);
    if (!opts.force && !opts.treeOnly && prev?.fingerprint === fp && existsSync(binary)) {
      info(`QEMU ${src.debianVersion} with ${series.patches.length} patch(es) is up to date (${binary})`);
      return { binary, info: prev, upToDate: true };
    }
    tree = join(buildDir(), 'src', 'qemu');
    const base = await ensureBaseTree(src, tree);
    const head = await applySeries(tree, series);
    if (series.patches.length) info(`applied ${series.patches.length} patch(es) from ${series.dir}`);
    srcInfo = { kind: 'debian', files: src.files, tree, base_commit: base, head_commit: head };
    if (opts.treeOnly) {
      info(`the QEMU tree is ready in ${tree} (base ${BASE_TAG}, ${series.patches.length} patch(es) applied)`);
      return { binary, info: undefined, upToDate: false };
    }
  }

  // Configure when the build directory is new or was configured with other flags.
  const cfgStamp = join(bdir, 'heca-configure-flags');
  const cfgWanted = JSON.stringify({ tree, flags });
  const cfgHave = existsSync(cfgStamp) ? readFileSync(cfgStamp, 'utf8') : '';
  if (!existsSync(join(bdir, 'build.ninja')) || cfgHave !== cfgWanted) {
    info(`configuring QEMU in ${bdir}${cfgHave ? ' (source tree or flags changed: starting from a clean build directory; ccache keeps it quick)' : ''}`);
    await run('rm', ['-rf', bdir]);
    mkdirSync(bdir, { recursive: true });
    await run(join(tree, 'configure'), flags, {
      cwd: bdir,
      env: ccacheEnv(),
      timeoutMs: 20 * 60_000,
      fix: 'a missing build dependency is the usual cause: run tools/setup-host.sh as root, then rerun',
    });
    if (!isDryRun()) writeFileSync(cfgStamp, cfgWanted);
  }

  const progress = new Progress('building QEMU');
  let steps = 0;
  await run('ninja', ['-C', bdir, `-j${opts.jobs}`, ...qemuTargets(tree)], {
    env: ccacheEnv(),
    timeoutMs: 120 * 60_000,
    onLine: (line) => {
      const p = parseNinjaProgress(line);
      if (p) {
        steps++;
        progress.update(`${p.done}/${p.total} (${Math.round((100 * p.done) / p.total)}%) ${p.what}`);
      }
    },
    fix: 'see the compiler error above; for a patch of yours, fix it in the tree and re-export the series',
  });
  progress.done(steps ? `${steps} step(s) in ${((Date.now() - started) / 1000).toFixed(0)} s` : 'nothing to rebuild');
  // `ninja install` would build the default target first: install what was built.
  await run(join(bdir, 'pyvenv', 'bin', 'meson'), ['install', '-C', bdir, '--no-rebuild', '--quiet'], { timeoutMs: 20 * 60_000 });
  if (isDryRun()) return { binary, info: undefined, upToDate: false };

  const bi = recordBuild(infoPath, {
    component: 'qemu',
    fingerprint: fp ?? fingerprint({ RECIPE, tree: srcInfo.head_commit, t: Date.now() }),
    version,
    debianVersion,
    source: srcInfo,
    series: opts.srcDir ? undefined : series,
    flags,
    output: binary,
    startedMs: started,
    steps,
  });
  const v = await probe(binary, ['--version']);
  info(`built ${v.split('\n')[0]} → ${binary}`);
  return { binary, info: bi, upToDate: false };
}
