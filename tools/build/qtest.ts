/**
 * QEMU's own test programs in a QEMU build directory: the qtests' firmware
 * wrapper, and what a GLib test program's TAP output says.
 *
 * Debian's source drops the firmware blobs (+ds), so the QEMU in the build
 * directory finds no BIOS. The qtests run it through a wrapper of the same
 * name (they derive the target from it) that adds the packaged firmware:
 *
 *   QTEST_QEMU_BINARY=$(writeQtestWrapper(bdir, qtestWrapperPath())) migration-test ...
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HecaError } from '../core/errors.ts';
import { buildDir, firmwareDirs } from '../core/paths.ts';

/** heca's QEMU build directory (configure/ninja): build/qemu/build. */
export const qemuBuildTree = (): string => join(buildDir(), 'qemu', 'build');

/** Where the qtest suites keep the wrapper for heca's own build. */
export const qtestWrapperPath = (): string => join(buildDir(), 'qemu', 'qtest-bin', 'qemu-system-x86_64');

/** Quote for /bin/sh. */
const sh = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The wrapper's text: exec the build's emulator, by its real path, with -L for each firmware directory that exists. */
export function qtestWrapperText(emulator: string, fwDirs: readonly string[]): string {
  return `#!/bin/sh\n# written by heca (tools/build/qtest.ts): QEMU of a build directory with the packaged firmware\nexec ${[sh(emulator), ...fwDirs.flatMap((d) => ['-L', sh(d)])].join(' ')} "$@"\n`;
}

/**
 * Write (or leave, when it already says the same) `wrapper` for the
 * qemu-system-x86_64 in `qemuBuild`, and return its path. The emulator is
 * named by its real path, so the wrapper works whichever checkout or symlink
 * wrote it; it is replaced by a rename, never seen half-written by a qtest
 * that runs it meanwhile.
 */
export function writeQtestWrapper(qemuBuild: string, wrapper: string): string {
  const built = join(qemuBuild, 'qemu-system-x86_64');
  if (!existsSync(built)) {
    throw new HecaError(`no qemu-system-x86_64 in the QEMU build directory ${qemuBuild}`, { why: `${built} does not exist`, fix: 'build QEMU: make build   (npx tsx tools/build.ts)' });
  }
  const text = qtestWrapperText(realpathSync(built), firmwareDirs.filter((d) => existsSync(d)));
  if (existsSync(wrapper) && readFileSync(wrapper, 'utf8') === text) return wrapper;
  mkdirSync(dirname(wrapper), { recursive: true });
  const tmp = `${wrapper}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  chmodSync(tmp, 0o755);
  renameSync(tmp, wrapper);
  return wrapper;
}

/** One test line of TAP output: `ok 3 /path`, `not ok 4 /path`, `ok 5 /path # SKIP why`. */
export interface TapLine {
  ok: boolean;
  num: number;
  name: string;
  /** `# SKIP` (or `# TODO`) and its reason. */
  directive?: { kind: 'SKIP' | 'TODO'; reason: string };
}

/** The test lines of a GLib test program's TAP output (GLib indents subtests' lines). */
export function parseTap(out: string): { tests: TapLine[]; planSkip: string | undefined; otherSkips: string[] } {
  const tests: TapLine[] = [];
  let planSkip: string | undefined;
  const otherSkips: string[] = [];
  for (const raw of out.split('\n')) {
    const line = raw.trim();
    const plan = /^1\.\.0\s*#\s*SKIP\b\s*(.*)$/i.exec(line);
    if (plan) planSkip = plan[1]!.trim();
    const m = /^(not )?ok (\d+)(?: -)? ?(.*?)(?:\s+#\s*(SKIP|TODO)\b\s*(.*))?$/i.exec(line);
    if (!m) {
      if (!plan && /#\s*SKIP\b/i.test(line)) otherSkips.push(line);
      continue;
    }
    const t: TapLine = { ok: !m[1], num: Number(m[2]), name: m[3]!.trim() };
    if (m[4]) t.directive = { kind: m[4].toUpperCase() as 'SKIP' | 'TODO', reason: m[5]!.trim() };
    tests.push(t);
  }
  return { tests, planSkip, otherSkips };
}

/**
 * What makes a test program's run a failure when every test must run and
 * pass (CI, where a skip means the thing was not tested): a non-zero exit,
 * no passing test, a `not ok`, a `# SKIP` (of a test, of the whole plan, or
 * on any other line), and, when `expect` is given, no `ok` for that test
 * name. Empty: it passed.
 */
export function tapProblems(run: { exitCode: number | undefined; out: string }, expect?: string): string[] {
  const { tests, planSkip, otherSkips } = parseTap(run.out);
  const problems: string[] = [];
  if (run.exitCode !== 0) problems.push(run.exitCode === undefined ? 'it did not finish' : `it exited with status ${run.exitCode}`);
  for (const t of tests.filter((x) => !x.ok)) problems.push(`not ok ${t.num} ${t.name}`);
  for (const t of tests.filter((x) => x.directive?.kind === 'SKIP')) problems.push(`skipped: ${t.name || `test ${t.num}`} (${t.directive!.reason || 'no reason given'})`);
  if (planSkip !== undefined) problems.push(`skipped as a whole (1..0 # SKIP ${planSkip})`);
  for (const l of otherSkips) problems.push(`a skip: ${l}`);
  const passed = tests.filter((x) => x.ok && !x.directive);
  if (!passed.length) problems.push('no test passed (no "ok" line without a directive)');
  else if (expect !== undefined && !passed.some((x) => x.name === expect)) problems.push(`no "ok" line for ${expect}`);
  return problems;
}
