/**
 * QEMU's own migration qtests, built from the patched tree (make build), run
 * against the patched qemu-system-x86_64: heca's postcopy-switchover and
 * statistics tests, the preempt-wait tests, and the upstream post-copy tests
 * next to them, which must keep passing. Each qtest path is one test here, so
 * a failure names it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../tools/core/exec.ts';
import { qemuBuildTree, qtestWrapperPath, tapProblems, writeQtestWrapper } from '../../tools/build/qtest.ts';

const bdir = qemuBuildTree();
const binary = join(bdir, 'tests', 'qtest', 'migration-test');
/* QEMU of the build directory with the packaged firmware (tools/build/qtest.ts). */
const qemu = qtestWrapperPath();

/**
 * The paths heca adds (the switchover modes with preempt and recovery,
 * on-convergence on and off, a destination without postcopy-ram, the
 * parameters, the preempt wait that must not hang; RDMA pull's set-up
 * checks, which need no RDMA device and one of them none at all) and the
 * upstream post-copy tests that share their code. Most are in QEMU's full
 * set (--full), not its smoke set. RDMA pull itself runs in an L1 host:
 * tests/nested/qtest-rdma.test.ts.
 */
const PATHS = [
  '/x86_64/migration/postcopy/switchover/invalid',
  '/x86_64/migration/postcopy/switchover/global',
  '/x86_64/migration/postcopy/switchover/immediate/plain',
  '/x86_64/migration/postcopy/switchover/immediate/preempt',
  '/x86_64/migration/postcopy/switchover/immediate/recovery',
  '/x86_64/migration/postcopy/switchover/immediate/preempt-recovery',
  '/x86_64/migration/postcopy/switchover/deadline/plain',
  '/x86_64/migration/postcopy/switchover/deadline/cancel',
  '/x86_64/migration/postcopy/switchover/deadline/change',
  '/x86_64/migration/postcopy/switchover/converge/on',
  '/x86_64/migration/postcopy/switchover/converge/off',
  '/x86_64/migration/postcopy/switchover/dest-without-postcopy',
  '/x86_64/migration/postcopy/preempt/unanswered/cancel',
  '/x86_64/migration/postcopy/preempt/unanswered/close',
  '/x86_64/migration/postcopy/plain',
  '/x86_64/migration/postcopy/preempt/plain',
  '/x86_64/migration/postcopy/recovery/plain',
  '/x86_64/migration/postcopy/preempt/recovery/plain',
  '/x86_64/migration/postcopy/rdma-setup/capabilities',
  '/x86_64/migration/postcopy/rdma-setup/channels',
  '/x86_64/migration/postcopy/rdma-setup/parameters',
  '/x86_64/migration/postcopy/rdma-setup/no-device',
  '/x86_64/migration/postcopy/rdma-setup/memlock',
  '/x86_64/migration/postcopy/rdma-setup/destination-only',
];

/*
 * Most of a path's time is its precopy pass, paced by the test's 3 MB/s
 * bandwidth limit, not the CPU: the paths run QTEST_JOBS at a time (default
 * 3), each in its own process, temporary directory and sockets.
 */
const JOBS = Math.max(1, Number.parseInt(process.env.QTEST_JOBS ?? '3', 10) || 1);

interface PathRun {
  exitCode: number | undefined;
  out: string;
  seconds: number;
}

/** Never rejects: a path that could not run is a failed path, reported by its own test. */
async function runPath(p: string): Promise<PathRun> {
  const t = Date.now();
  try {
    const r = await run(binary, ['--full', '-p', p], {
      env: { QTEST_QEMU_BINARY: qemu, QTEST_QEMU_IMG: '' },
      allowFail: true,
      timeoutMs: 10 * 60_000,
    });
    return { exitCode: r.exitCode, out: `${r.stdout}\n${r.stderr}`, seconds: (Date.now() - t) / 1000 };
  } catch (e) {
    return { exitCode: undefined, out: e instanceof Error ? e.message : String(e), seconds: (Date.now() - t) / 1000 };
  }
}

/** Starts every path, at most `jobs` at once; one promise per path, in order. */
function runAll(paths: string[], jobs: number): Map<string, Promise<PathRun>> {
  const waiting = [...paths];
  const slots: Array<() => void> = [];
  let running = 0;
  const acquire = (): Promise<void> =>
    running < jobs ? (running++, Promise.resolve()) : new Promise<void>((resolve) => slots.push(resolve));
  const release = (): void => {
    const next = slots.shift();
    if (next) next();
    else running--;
  };
  return new Map(waiting.map((p) => [p, acquire().then(() => runPath(p)).finally(release)]));
}

let runs: Map<string, Promise<PathRun>> = new Map();

test.before(async () => {
  assert.ok(existsSync(join(bdir, 'build.ninja')), `no QEMU build directory at ${bdir}: run make build`);
  // Incremental: nothing to do after make build, seconds after a change.
  await run('ninja', ['-C', bdir, 'tests/qtest/migration-test', 'qemu-system-x86_64'], { timeoutMs: 30 * 60_000 });
  writeQtestWrapper(bdir, qemu);
  console.log(`  running ${PATHS.length} paths, ${JOBS} at a time (QTEST_JOBS)`);
  runs = runAll(PATHS, JOBS);
});

test('migration-test lists every path this suite runs', async () => {
  const r = await run(binary, ['--full', '-l'], { env: { QTEST_QEMU_BINARY: qemu }, timeoutMs: 60_000 });
  for (const p of PATHS) assert.match(r.stdout, p, `${p} is registered`);
});

for (const p of PATHS) {
  test(`qtest ${p}`, async () => {
    const r = await runs.get(p)!;
    console.log(`  ${p}: exit ${r.exitCode} in ${r.seconds.toFixed(1)} s`);
    // Exit 0, an "ok" for the path, no "not ok", no "# SKIP".
    const problems = tapProblems(r, p);
    assert.ok(!problems.length, `${p} failed: ${problems.join('; ')}\n${r.out.slice(-3000)}`);
  });
}

test.run();
