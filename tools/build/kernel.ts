/**
 * Configure and build the Linux 6.12 kernel heca boots as its L1 test hosts:
 * `make allnoconfig` with the fragments in kernel-patches/config/ as
 * KCONFIG_ALLCONFIG (what the hosts need and nothing else), bzImage out, with
 * ccache, and the kernel selftests the hosts run (kselftests.ts). Rebuilds
 * only when sources, series or config changed.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fingerprint, readBuildInfo, recordBuild, type BuildInfo } from './buildinfo.ts';
import { HecaError } from '../core/errors.ts';
import { isDryRun, run } from '../core/exec.ts';
import { applySeries } from '../patch/apply.ts';
import { ensureBaseTree, sourceStamp, treeState } from '../source/tree.ts';
import { sha256FileSync } from '../core/hash.ts';
import { info, Progress } from '../core/log.ts';
import { buildDir, kernelPatchesDir } from '../core/paths.ts';
import { readSeries } from '../patch/series.ts';
import { resolveLinuxSource } from '../source/sources.ts';
import { parseConfig, unmetOptions } from './kconfig.ts';
import { buildKselftests, KSELFTESTS, kselftestPath } from './kselftests.ts';

// 2: allnoconfig + fragments instead of defconfig + kvm_guest.config + fragments.
// 3: and the selftests the L1 hosts run (kselftests.ts).
const RECIPE = 3;

export interface KernelBuildOptions {
  srcDir?: string;
  jobs: number;
  force?: boolean;
  /** Stop once the tree holds the source with the series applied. */
  treeOnly?: boolean;
  /**
   * The tree has only the first patches of the series (tools/patches.ts
   * check --build-each): a fragment option no Kconfig file of the tree
   * defines yet (a later patch adds it) is said, not an error.
   */
  partialSeries?: boolean;
}

export function configFragments(): string[] {
  const dir = join(kernelPatchesDir(), 'config');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.config'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * The fragments as one KCONFIG_ALLCONFIG file, in order (a later fragment's
 * value for an option wins, as with merge_config.sh).
 */
export function allConfigText(fragments: { name: string; text: string }[]): string {
  return fragments.map((f) => `# ---- ${f.name}\n${f.text.endsWith('\n') ? f.text : `${f.text}\n`}`).join('');
}

/** The options among `names` (without CONFIG_) that no Kconfig file of the tree defines. */
async function undefinedOptions(tree: string, names: string[]): Promise<Set<string>> {
  const r = await run('grep', ['-rhoE', '--include=Kconfig*', `^(menu)?config (${names.join('|')})$`, tree], { allowFail: true, probe: true });
  const defined = new Set(r.stdout.split('\n').map((l) => l.replace(/^(menu)?config /, '').trim()).filter(Boolean));
  return new Set(names.filter((n) => !defined.has(n)));
}

export async function buildKernel(opts: KernelBuildOptions): Promise<{ bzImage: string; upToDate: boolean }> {
  const started = Date.now();
  const root = join(buildDir(), 'kernel');
  const bdir = join(root, 'build');
  const out = join(root, 'bzImage');
  const infoPath = join(root, 'BUILD-INFO.json');
  mkdirSync(bdir, { recursive: true });
  const frags = configFragments();
  const fragHashes = frags.map((f) => `${f.slice(f.lastIndexOf('/') + 1)} ${sha256FileSync(f)}`);
  const series = readSeries(kernelPatchesDir());

  let tree: string;
  let src: BuildInfo['source'];
  let version: string;
  let debianVersion: string;
  let fp: string | undefined;
  if (opts.srcDir) {
    tree = resolve(opts.srcDir);
    if (!existsSync(join(tree, 'Kbuild')) || !existsSync(join(tree, 'scripts', 'kconfig'))) {
      throw new HecaError(`${tree} is not a Linux source tree`, { why: 'it has no Kbuild file or scripts/kconfig', fix: 'pass the top directory of a Linux checkout to --kernel-src' });
    }
    const st = await treeState(tree);
    version = st.describe;
    debianVersion = st.describe;
    src = { kind: 'developer-tree', files: [], tree, base_commit: '', head_commit: st.head };
  } else {
    const s = await resolveLinuxSource();
    version = s.version;
    debianVersion = s.debianVersion;
    fp = fingerprint({ RECIPE, src: sourceStamp(s), series: series.sha256, fragHashes });
    const prev = readBuildInfo(infoPath);
    const selftestsThere = KSELFTESTS.every((t) => existsSync(kselftestPath(root, t)));
    if (!opts.force && !opts.treeOnly && prev?.fingerprint === fp && existsSync(out) && selftestsThere) {
      info(`Linux ${s.debianVersion} with ${series.patches.length} patch(es) is up to date (${out})`);
      return { bzImage: out, upToDate: true };
    }
    tree = join(buildDir(), 'src', 'linux');
    const base = await ensureBaseTree(s, tree);
    const head = await applySeries(tree, series);
    src = { kind: 'debian', files: s.files, tree, base_commit: base, head_commit: head };
    if (opts.treeOnly) {
      info(`the Linux tree is ready in ${tree} (${series.patches.length} patch(es) applied)`);
      return { bzImage: out, upToDate: false };
    }
  }

  const make = (args: string[], extra: Parameters<typeof run>[2] = {}) =>
    run('make', ['-C', tree, `O=${bdir}`, 'ARCH=x86_64', 'CC=ccache gcc', 'HOSTCC=ccache gcc', ...args], { timeoutMs: 150 * 60_000, ...extra });

  if (!frags.length) {
    throw new HecaError('no kernel config fragments', { why: `${join(kernelPatchesDir(), 'config')} has no *.config file`, fix: 'the L1 kernel is allnoconfig + those fragments: restore kernel-patches/config/heca.config' });
  }
  // Everything off but what the fragments ask for (and what that selects or
  // hides behind EXPERT with a default): the L1 hosts' needs, minus DRM, sound, USB...
  info(`configuring Linux: allnoconfig + ${frags.length} fragment(s)`);
  const allconfig = join(bdir, 'heca.allconfig');
  writeFileSync(allconfig, allConfigText(frags.map((f) => ({ name: f.slice(f.lastIndexOf('/') + 1), text: readFileSync(f, 'utf8') }))));
  await make([`KCONFIG_ALLCONFIG=${allconfig}`, 'allnoconfig']);
  if (!isDryRun()) {
    const final = parseConfig(readFileSync(join(bdir, '.config'), 'utf8'));
    let unmet = frags.flatMap((f) => unmetOptions(parseConfig(readFileSync(f, 'utf8')), final).map((u) => `${f.slice(f.lastIndexOf('/') + 1)}: ${u}`));
    if (unmet.length && opts.partialSeries) {
      const undefinedHere = await undefinedOptions(tree, unmet.map((u) => /CONFIG_(\w+)=/.exec(u)![1]!));
      const later = unmet.filter((u) => undefinedHere.has(/CONFIG_(\w+)=/.exec(u)![1]!));
      if (later.length) info(`not in this tree yet (a later patch adds them): ${later.join(', ')}`);
      unmet = unmet.filter((u) => !later.includes(u));
    }
    if (unmet.length) {
      throw new HecaError('the kernel config does not have what the fragments ask for', {
        why: 'Kconfig dropped these options (a dependency is missing, or the option does not exist in this version)',
        fix: 'add the missing dependencies to the fragment in kernel-patches/config/',
        details: unmet.join('\n'),
      });
    }
  }

  const progress = new Progress('building Linux');
  let steps = 0;
  await make([`-j${opts.jobs}`, 'bzImage'], {
    onLine: (line) => {
      const m = /^\s+(CC|LD|AR|AS|GEN|HOSTCC)\s+(.*)$/.exec(line);
      if (m) {
        steps++;
        progress.update(`${steps} step(s), ${m[1]} ${m[2]}`);
      }
    },
    fix: 'see the compiler error above',
  });
  progress.done(`${steps} step(s) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  await buildKselftests(tree, bdir, root);
  if (isDryRun()) return { bzImage: out, upToDate: false };
  copyFileSync(join(bdir, 'arch', 'x86', 'boot', 'bzImage'), out);
  recordBuild(infoPath, {
    component: 'linux',
    fingerprint: fp ?? fingerprint({ RECIPE, head: src.head_commit, t: Date.now() }),
    version,
    debianVersion,
    source: src,
    series: opts.srcDir ? undefined : series,
    flags: fragHashes,
    output: out,
    startedMs: started,
    steps,
  });
  info(`built Linux ${version} → ${out}`);
  return { bzImage: out, upToDate: false };
}
