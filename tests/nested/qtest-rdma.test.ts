/**
 * heca's RDMA tests, run for real. The machine has no RDMA; one L1 host of the
 * nested testbed does: it boots the heca kernel the way the testbed boots
 * them (L0's root over 9p, so the QEMU build directory is at the same path in
 * it), gets the Soft-RoCE device rxe0 on link0 (bench/testbed/nested/rxe.ts),
 * and runs, with QTEST_RDMA_ADDR=<link0's address> and QTEST_RDMA_NETDEV=link0
 * (rdma/link-down takes it down; it is brought up again after every program):
 *   - the verbs test, tests/unit/test-postcopy-rdma-verbs (series 2);
 *   - every path of tests/qtest/migration-test --full whose name contains
 *     /postcopy/rdma/, one `migration-test --full -p PATH` each, QEMU through
 *     the firmware wrapper (tools/build/qtest.ts).
 * One test per program or path, so a failure names it; each must exit 0 with
 * an "ok", no "not ok" and no "# SKIP": a skipped RDMA test is a failure here,
 * since CI must show them executed. A build without any of them fails: the
 * series is not applied or not built. Their output is shown as they run and
 * kept in the shared directory.
 *
 *   node --import tsx tests/nested/qtest-rdma.test.ts
 *   HECA_RDMA_TEST_BUILD_DIR=DIR    the programs of another QEMU build directory
 *                                   (not under /tmp: L1 has a tmpfs there)
 *   HECA_SKIP_RDMA_TESTS=1          skip them (a laptop without nested virtualisation)
 *   HECA_RDMA_QTESTS=all            the held-back paths too (see HELD_BACK)
 *   HECA_RDMA_QTESTS=NAME[,NAME]    only the paths ending in /NAME, held back or not,
 *                                   and the verbs test only if one NAME is "verbs":
 *                                   to chase one
 *   HECA_RDMA_QTEST_REPEAT=N        each path N times (a hang that comes once in 10)
 *   HECA_RDMA_QTEST_CONTROL=PATH[,PATH]
 *                                   also these migration-test paths without RDMA, named
 *                                   in full (e.g. /x86_64/migration/postcopy/switchover/
 *                                   immediate/plain), in the same host under the same
 *                                   watch: a control that tells the testbed's failures
 *                                   from the pull's
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError, tail } from '../../tools/core/errors.ts';
import { run } from '../../tools/core/exec.ts';
import { l1HostQemu, qemuBinary, repoRoot } from '../../tools/core/paths.ts';
import { qemuBuildTree, qtestWrapperPath, tapProblems, writeQtestWrapper } from '../../tools/build/qtest.ts';
import { chooseL1Accel, freePorts, HOST_RESERVE_MIB, memAvailableMib, QEMU_OVERHEAD_MIB } from '../../bench/testbed/host.ts';
import { deathReport, L1_TMPFS_DIRS, L1Host } from '../../bench/testbed/nested/l1-host.ts';
import { repairRxe, setUpRxe } from '../../bench/testbed/nested/rxe.ts';
import { l1KernelPath } from '../../bench/testbed/nested/testbed.ts';
import { hostDied, runInL1, type L1Run } from './l1-run.ts';
import { hangStage, l2RunsHostState } from './hang-report.ts';

const VERBS = 'tests/unit/test-postcopy-rdma-verbs';
const MIGRATION_TEST = 'tests/qtest/migration-test';
const RDMA_PATH = '/postcopy/rdma/';

/*
 * Paths that make test does not run unless HECA_RDMA_QTESTS=all, each with
 * why; it says so every time. rdma/link-down was held back until its two
 * problems were found (rxe0's GSI queue pair left in ERR, now repaired by
 * runProgram(); a qtest waiting for a STOP that never came, now failing at
 * once) and runs again. The postcopy-recovery paths (rdma/recover,
 * recover-dst-pause, recover-fallback) pass when their host survives, but
 * the L1 host died under them in 6 of about 16 runs (a silent reset or a
 * kernel oops, memory corrupted; KASAN catches no culprit), against about
 * 1 in 25 runs of the other paths at the time (a later make test lost two
 * hosts under rdma/immediate). Root cause unknown (issue #12). rdma/recover
 * runs again: on 2026-11-27 it passed 6 of 6 times in L1 hosts run by
 * heca's QEMU and 4 of 5 under Debian's 7.2 (one L2 guest never booted),
 * no host lost; the other two stay held back until they have such a
 * record.
 */
const RECOVERY_WHY = 'the L1 host died under the recovery paths in 6 of ~16 runs, cause unknown (#12)';
const HELD_BACK: { path: string; why: string }[] = ['/rdma/recover-dst-pause', '/rdma/recover-fallback'].map((path) => ({ path, why: RECOVERY_WHY }));
const ADDR = '10.214.8.1';
const MEM_MIB = 3072;
/** Per program; a qtest path takes 1-2 min in a TCG L1 (the design's estimate), a hung one is cut here. */
const PROGRAM_TIMEOUT_MS = 20 * 60_000;
/* A program still running after this long is shown and ended (tests/nested/hang-watch.sh). */
const HANG_SECONDS = Number(process.env.HECA_QTEST_HANG_SECONDS ?? 360);
const WATCH = join(repoRoot, 'tests', 'nested', 'hang-watch.sh');
/** Runs a program may have after L2 boot stalls (hangs before the migration); see runProgram(). */
const BOOT_STALL_RETRIES = 3;

const override = process.env.HECA_RDMA_TEST_BUILD_DIR;
const qbuild = override ? resolve(override) : qemuBuildTree();
let work: { dir: string; shared: string } | undefined;
/** The L1 host's logs, and the directory it shares with L0 at the same path: made when first needed. */
function workDir(): { dir: string; shared: string } {
  if (!work) {
    const dir = mkdtempSync(join(tmpdir(), 'heca-qtest-rdma-'));
    work = { dir, shared: join(dir, 'shared') };
    mkdirSync(work.shared, { recursive: true });
  }
  return work;
}
/* heca's own build: the wrapper the qtest suite at L0 uses too; another build: one of its own, in the shared directory. */
const wrapper = (): string => (override ? join(workDir().shared, 'qtest-bin', 'qemu-system-x86_64') : qtestWrapperPath());
/** The RDMA device's network device: a test may take it down (rdma/link-down), never for good. */
const NETDEV = 'link0';
const env = (): Record<string, string> => ({ QTEST_RDMA_ADDR: ADDR, QTEST_RDMA_NETDEV: NETDEV, QTEST_QEMU_BINARY: wrapper(), QTEST_QEMU_IMG: '' });

/**
 * Fail the test with `text`, shown once: uvu prints an error's message, then
 * its stack from the first line break on, which would repeat a message of
 * several lines.
 */
function failWith(text: string): never {
  const e = new Error(text);
  e.stack = `Error: ${text.split('\n')[0]}\n${(new Error().stack ?? '').split('\n').slice(2).join('\n')}`;
  throw e;
}

/** Fail the test with what failed, why and what to do (a HecaError's three parts). */
const fail = (e: unknown): never => failWith(e instanceof HecaError ? e.format() : e instanceof Error ? e.message : String(e));

/** What the build directory holds: the verbs test (built, or only in the tree), the RDMA qtest paths. */
interface Plan {
  verbs: 'built' | 'source-only' | 'absent';
  /** The RDMA paths. */
  paths: string[];
  /** Every path migration-test lists. */
  all: string[];
  /** What stops the programs from being found at all. */
  error?: unknown;
}

/** The source tree of a QEMU build directory (configure links its Makefile there). */
function sourceTree(bdir: string): string | undefined {
  try {
    return dirname(realpathSync(join(bdir, 'Makefile')));
  } catch {
    return undefined;
  }
}

async function plan(): Promise<Plan> {
  const p: Plan = { verbs: 'absent', paths: [], all: [] };
  const hidden = L1_TMPFS_DIRS.find((d) => qbuild === d || qbuild.startsWith(`${d}/`));
  if (hidden) {
    p.error = new HecaError(`the QEMU build directory ${qbuild} is not seen in the L1 host`, { why: `the L1 host mounts a tmpfs on ${hidden} (bench/testbed/nested/l1-init)`, fix: 'build it elsewhere (HECA_RDMA_TEST_BUILD_DIR)' });
    return p;
  }
  if (!existsSync(join(qbuild, 'build.ninja'))) {
    p.error = new HecaError(`no QEMU build directory at ${qbuild}`, { why: 'it has no build.ninja', fix: override ? 'point HECA_RDMA_TEST_BUILD_DIR at a configured QEMU build directory' : 'make build' });
    return p;
  }
  const src = sourceTree(qbuild);
  p.verbs = existsSync(join(qbuild, VERBS)) ? 'built' : src && existsSync(join(src, `${VERBS}.c`)) ? 'source-only' : 'absent';
  if (existsSync(join(qbuild, MIGRATION_TEST))) {
    try {
      writeQtestWrapper(qbuild, wrapper());
      const r = await run(join(qbuild, MIGRATION_TEST), ['--full', '-l'], { env: env(), timeoutMs: 180_000 });
      p.all = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/'));
      p.paths = p.all.filter((l) => l.includes(RDMA_PATH));
    } catch (e) {
      p.error = e;
    }
  }
  return p;
}

/** The tree has the verbs test's source, the build directory not the program. */
const verbsNotBuilt = (): HecaError =>
  new HecaError(`the QEMU build lacks ${VERBS}`, { why: `its tree ${sourceTree(qbuild)} has ${VERBS}.c, ${qbuild} has no ${VERBS}`, fix: `build it: make build   (or ninja -C ${qbuild} ${VERBS})` });

let host: L1Host | undefined;
const timings: string[] = [];
let hostsBooted = 0;
let hostDeaths = 0;

/** Boot an L1 host with rxe0 ACTIVE on link0 (the first, or one that replaces a host that died). */
async function bootHost(): Promise<void> {
  const need = MEM_MIB + QEMU_OVERHEAD_MIB + HOST_RESERVE_MIB;
  const have = memAvailableMib();
  if (have < need) fail(new HecaError(`not enough memory for an L1 host of ${MEM_MIB} MiB`, { why: `it needs ${need} MiB with QEMU's overhead and the host's reserve; ${have} MiB are available`, fix: 'stop other testbeds or builds on this machine, then rerun' }));
  if (!existsSync(l1KernelPath())) fail(new HecaError('the L1 host kernel is not built', { why: `${l1KernelPath()} does not exist`, fix: 'build it: make build-kernel   (npx tsx tools/build.ts --kernel)' }));
  const [lp, rp] = await freePorts('udp', 2);
  const accel = chooseL1Accel().accel;
  const n = hostsBooted++;
  const dir = n ? join(workDir().dir, `host${n}`) : workDir().dir;
  mkdirSync(dir, { recursive: true });
  host = await L1Host.bootRetrying(l1HostQemu(), {
    name: 'heca-rdmaqt-a', dir, kernel: l1KernelPath(), accel, memMib: MEM_MIB, cpus: 2,
    link: { mac: '52:54:00:4e:00:31', addr: `${ADDR}/24`, localPort: lp!, remotePort: rp! },
    sharedDir: workDir().shared,
  }, { bootTimeoutMs: 90_000, attempts: 3 });
  const t = Date.now();
  const rxe = await setUpRxe(host.agent);
  const line = `${host.name}${n ? ` (#${n + 1})` : ''} up in ${(host.bootMs / 1000).toFixed(1)} s (${accel}, ${MEM_MIB} MiB, 2 CPUs${host.hangs.length ? `, ${host.hangs.length} boot(s) hung first` : ''}); ${rxe.dev} ${rxe.state} on ${rxe.netdev} in ${((Date.now() - t) / 1000).toFixed(1)} s`;
  console.log(`  ${line}`);
  timings.push(line);
}


/** Run one program in the L1 host; its output streams here and stays in the shared directory. */
/** Host deaths a program may meet and still pass on the next fresh host (each one is reported). */
const HOST_DEATHS_PER_PROGRAM = 2;

async function runProgram(name: string, argv: string[], expect?: string): Promise<void> {
  if (!host) {
    // The previous program lost its last host: this one gets a fresh one.
    await bootHost();
  }
  assert.ok(host, 'the L1 host is up (see the first failure)');
  const logFile = join(workDir().shared, `${name.replace(/^\/+/, '').replace(/[^\w.-]+/g, '_')}.log`);
  console.log(`  ${name}: running in ${host.name} (log ${logFile})`);
  // The program under the hang watch, in host h, its output shown and kept in `log`.
  const runIn = (h: L1Host, log: string): Promise<L1Run> =>
    runInL1(h, [WATCH, String(HANG_SECONDS), ...argv], { logFile: log, env: env(), cwd: '/tmp', timeoutMs: PROGRAM_TIMEOUT_MS, onLine: (l) => console.log(`    | ${l}`) });
  let r = await runIn(host, logFile);
  /*
   * A program that hangs is shown (kernel stacks, CPU times, serial output,
   * guest RAM compared, above) and run once more. A hang before the migration
   * (the source guest never booted: an L2 firmware stall of nested
   * virtualisation under TCG, which has come twice in a row in one host)
   * is the testbed's: it may be run up to BOOT_STALL_RETRIES times, on a
   * fresh L1 host from the second stall on. A second hang during or after
   * the migration, or any failure, fails the test.
   */
  for (let hangs = 1, stalls = 0; r.exitCode === 124 && /^HUNG: /m.test(r.out); hangs++) {
    const { stage: where, text: hung } = hangStage(r.out);
    const hostState = l2RunsHostState(r.out);
    const stage = hostState ? `${hung}; ${hostState}` : hung;
    const stall = where === 'boot';
    stalls += stall ? 1 : 0;
    if (stall ? stalls > BOOT_STALL_RETRIES : hangs - stalls > 1) break;
    const fresh = stall && stalls > 1;
    console.log(`  ${name}: HUNG after ${HANG_SECONDS} s, ${stage} (what it was doing is above and in ${logFile}); running it again${fresh ? ' on a fresh L1 host' : ''}`);
    timings.push(`${name}: HUNG, ${stage}, ${r.seconds.toFixed(1)} s`);
    if (fresh) {
      await host.shutdown().catch(() => undefined);
      host = undefined;
      await bootHost();
      assert.ok(host, 'a fresh L1 host is up');
    } else {
      await host.agent.exec(['ip', 'link', 'set', 'dev', NETDEV, 'up'], { timeoutMs: 20_000 });
      // The hung run may have left rxe0 deaf (its GSI queue pair in ERR after the link went down): the
      // retry needs it whole, or it fails on a connection timeout that says nothing about the hang.
      const fixed = await repairRxe(host.agent, { netdev: NETDEV });
      if (fixed.recreated) {
        console.log(`  ${name}: rxe0's GSI queue pair was left in ERR by the hung run: rxe0 re-created before the retry`);
        timings.push(`${name}: rxe0 re-created before the retry (GSI queue pair in ERR)`);
      }
    }
    r = await runIn(host, `${logFile}.retry${hangs}`);
  }
  for (let deaths = 1; hostDied(r); deaths++) {
    /*
     * The L1 host itself died (its kernel's memory corrupted: issue #12's
     * dying hosts, seen with and without RDMA, root cause unknown): say so
     * with the kernel's last words, and run the program again on a fresh
     * host, up to HOST_DEATHS_PER_PROGRAM times. Any failure there, or one
     * death more, fails the test; the next program gets a fresh host.
     */
    const dead = host;
    let consoleText = '';
    try {
      consoleText = readFileSync(dead.consoleLog, 'utf8');
    } catch {
      /* no console log */
    }
    const words = deathReport(consoleText) ?? 'nothing on its console';
    const retry = deaths <= HOST_DEATHS_PER_PROGRAM;
    console.log(`  ${name}: THE L1 HOST DIED under it (death ${deaths} for it): ${r.error}\n  its console:\n${words.replace(/^/gm, '    | ')}\n  ${retry ? 'running it again on a fresh host' : 'giving up'}`);
    timings.push(`${name}: the L1 host died (${words.split('\n')[0]?.trim()}), ${r.seconds.toFixed(1)} s${retry ? '; rerun on a fresh host' : ''}`);
    hostDeaths++;
    await dead.shutdown().catch(() => undefined);
    host = undefined;
    if (!retry) failWith(`${name}: the L1 host died under it ${deaths} times in a row (issue #12); the last one's console:\n${words}`);
    await bootHost();
    assert.ok(host, 'a fresh L1 host is up');
    r = await runIn(host, `${logFile}.host${deaths + 1}`);
  }
  assert.ok(host, 'the L1 host is up');
  // A test that takes the link down brings it up again, unless it died first: the next one needs it.
  await host.agent.exec(['ip', 'link', 'set', 'dev', NETDEV, 'up'], { timeoutMs: 20_000 });
  // And a device whose connection manager went deaf while the link was down is replaced (see repairRxe).
  const fix = await repairRxe(host.agent, { netdev: NETDEV });
  if (fix.recreated) {
    console.log(`  ${name}: rxe0's GSI queue pair was left in ERR (it connects no more): rxe0 re-created`);
    timings.push(`${name}: rxe0 re-created after it (GSI queue pair in ERR)`);
  }
  const verdict = r.error ?? `exit ${r.exitCode}`;
  console.log(`  ${name}: ${verdict} in ${r.seconds.toFixed(1)} s`);
  timings.push(`${name}: ${verdict}, ${r.seconds.toFixed(1)} s`);
  const problems = tapProblems(r, expect).map((p) => (p === 'it did not finish' && r.error ? r.error : p));
  if (problems.length) failWith(`${name} failed in the L1 host: ${problems.join('; ')}\n--- its last lines (all of them: ${logFile}):\n${tail(r.out, 30)}`);
}

/**
 * HECA_RDMA_QTESTS=NAME,...: only these paths; HECA_RDMA_QTEST_REPEAT=N: each
 * N times; HECA_RDMA_QTEST_CONTROL=PATH,...: these non-RDMA paths as well.
 */
function selection(): { chosen: string[] | undefined; repeat: number; controls: string[] } {
  const sel = process.env.HECA_RDMA_QTESTS;
  const chosen = sel && sel !== 'all' ? sel.split(',').map((x) => x.trim().replace(/^\/+/, '')).filter(Boolean) : undefined;
  const rep = process.env.HECA_RDMA_QTEST_REPEAT ?? '1';
  const repeat = Number(rep);
  if (!Number.isInteger(repeat) || repeat < 1) fail(new HecaError(`HECA_RDMA_QTEST_REPEAT=${rep} is not a count`, { why: 'it says how many times each path runs', fix: 'give a whole number of 1 or more' }));
  const controls = (process.env.HECA_RDMA_QTEST_CONTROL ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  return { chosen, repeat, controls };
}
const { chosen, repeat, controls } = selection();

if (process.env.HECA_SKIP_RDMA_TESTS === '1') {
  console.log('  HECA_SKIP_RDMA_TESTS=1: the RDMA tests in an L1 host are skipped (CI must not set it)');
  test.skip('heca\'s RDMA tests in an L1 host', () => undefined);
} else {
  const p = await plan();
  if (p.error !== undefined) {
    test('the RDMA tests can be found in the QEMU build', () => fail(p.error));
  } else if (p.verbs === 'source-only' && !p.paths.length) {
    test(`verbs test ${VERBS}`, () => fail(verbsNotBuilt()));
  } else if (p.verbs === 'absent' && !p.paths.length) {
    test('the QEMU build has heca\'s RDMA tests', () => fail(new HecaError('the QEMU build lacks the RDMA tests', {
      why: `${qbuild} has no ${VERBS}, and ${MIGRATION_TEST} --full -l lists no path with ${RDMA_PATH}${existsSync(join(qbuild, MIGRATION_TEST)) ? '' : ` (there is no ${MIGRATION_TEST} either)`}`,
      fix: 'apply series 2 (qemu-patches/) and build: make build',
    })));
  } else {
    console.log(`  ${qbuild}: ${p.verbs === 'absent' ? 'no verbs test' : VERBS}, ${p.paths.length} RDMA qtest path(s)`);
    const unknown = (chosen ?? []).filter((c) => c !== 'verbs' && !p.paths.some((x) => x.endsWith(`/${c}`)));
    if (unknown.length) fail(new HecaError(`HECA_RDMA_QTESTS names no RDMA qtest path: ${unknown.join(', ')}`, { why: `the paths are ${p.paths.join(', ')}`, fix: 'name them by their last part, e.g. HECA_RDMA_QTESTS=immediate,link-down' }));
    const notListed = controls.filter((c) => !p.all.includes(c));
    if (notListed.length) fail(new HecaError(`HECA_RDMA_QTEST_CONTROL names no migration-test path: ${notListed.join(', ')}`, { why: `${MIGRATION_TEST} --full -l lists no such path`, fix: 'name each in full, as the list gives it, e.g. /x86_64/migration/postcopy/switchover/immediate/plain' }));

    test('one L1 host boots on the heca kernel, with rxe0 ACTIVE on link0', bootHost);

    if (existsSync(join(qbuild, MIGRATION_TEST))) {
      test('migration-test lists the same RDMA paths in the L1 host as at L0', async () => {
        assert.ok(host, 'the L1 host is up (see the first failure)');
        const r = await host.agent.exec([join(qbuild, MIGRATION_TEST), '--full', '-l'], { env: env(), cwd: '/tmp', timeoutMs: 300_000 });
        const inL1 = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/') && l.includes(RDMA_PATH));
        const onlyL1 = inL1.filter((x) => !p.paths.includes(x));
        const onlyL0 = p.paths.filter((x) => !inL1.includes(x));
        const differ = [...(onlyL1.length ? [`only in L1, so not run: ${onlyL1.join(', ')}`] : []), ...(onlyL0.length ? [`only at L0: ${onlyL0.join(', ')}`] : [])];
        if (differ.length) failWith(`migration-test lists other RDMA paths in the L1 host than at L0, where this suite finds the paths to run (no RDMA device there): ${differ.join('; ')}\nfix: register the RDMA paths whether or not a device is present (they skip without one)`);
      });
    }

    if (p.verbs !== 'absent' && (!chosen || chosen.includes('verbs'))) {
      test(`verbs test ${VERBS}`, async () => {
        if (p.verbs === 'source-only') fail(verbsNotBuilt());
        await runProgram(VERBS, [join(qbuild, VERBS), '--tap']);
      });
    }

    const toRun: { path: string; control: boolean }[] = [];
    for (const path of p.paths.filter((x) => !chosen || chosen.some((c) => x.endsWith(`/${c}`)))) {
      const held = HELD_BACK.find((h) => path.endsWith(h.path));
      if (held && !chosen && process.env.HECA_RDMA_QTESTS !== 'all') {
        console.log(`  NOT RUN by default: ${path}: ${held.why} (HECA_RDMA_QTESTS=all runs it)`);
        continue;
      }
      toRun.push({ path, control: false });
    }
    // The controls run under the same watch in the same host; repeats interleave the paths run by run.
    toRun.push(...controls.map((path) => ({ path, control: true })));
    for (let i = 1; i <= repeat; i++) {
      for (const { path, control } of toRun) {
        const name = `${control ? 'control ' : ''}${path}${repeat > 1 ? ` (${i}/${repeat})` : ''}`;
        test(`qtest ${name}`, async () => {
          await runProgram(name, [join(qbuild, MIGRATION_TEST), '--full', '-p', path], path);
        });
      }
    }

    test.after(async () => {
      await host?.shutdown();
      if (timings.length) console.log(`  timings:\n${timings.map((t) => `    ${t}`).join('\n')}`);
      if (hostDeaths) console.log(`  L1 HOSTS DIED under the programs ${hostDeaths} time(s) in this run (issue #12: memory corruption in the L1 kernel, cause unknown)`);
    });
  }
}

test.run();
