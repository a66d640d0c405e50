/**
 * Real migrations with the patched QEMU on the local testbed (two network
 * namespaces, a 1 Gbit/s veth), driven by the same engine bench/run.ts uses:
 *   - pre-copy and post-copy complete and every guest page checks out;
 *   - a page corrupted on the destination after migration fails the run, and
 *     the post-mortem (both guests' RAM compared) names it;
 *   - a destination QEMU killed mid-migration fails the run with its log,
 *     and leaves no QEMU, namespace or veth behind.
 * Needs root (namespaces) and a built QEMU (make build).
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runOnce, type RunContext, type RunHooks } from '../../bench/engine/run-once.ts';
import { ensureGuestImage, guestAppend } from '../../bench/guest/image.ts';
import type { PostcopyLatency, RunRecord, WorkloadParams } from '../../bench/results/schema.ts';
import { parseScenarios } from '../../bench/scenario/catalog.ts';
import { makeWorkload } from '../../bench/scenario/workloads.ts';
import { qemuBinary } from '../../tools/core/paths.ts';
import type { PostMortem } from '../../bench/engine/postmortem.ts';
import { leftovers } from '../helpers.ts';

const MEM_MIB = 256;
const out = mkdtempSync(join(tmpdir(), 'heca-migrate-'));
let base: Omit<RunContext, 'hooks' | 'memDir'>;

test.before(async () => {
  const qemu = qemuBinary();
  assert.ok(existsSync(qemu), `QEMU not built at ${qemu}: run make build`);
  const guest = await ensureGuestImage();
  base = {
    qemu,
    accel: 'tcg',
    link: 'lan1g',
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: (w: WorkloadParams) => guestAppend({ arena_mib: w.arena_mib, ws_mib: w.working_set_mib, rate: w.write_rate, pattern: w.pattern }),
    outDir: out,
    warmupS: 1,
    port: 4444,
  };
});

async function migrate(scenario: string, workload: string, extra: { hooks?: RunHooks; memDir?: string; finishTimeoutS?: number } = {}): Promise<RunRecord> {
  const [sc] = parseScenarios(scenario, 60);
  const t = Date.now();
  const rec = await runOnce({ ...base, ...extra }, sc!, makeWorkload(workload, MEM_MIB), 1);
  const mib = (n: number) => (n / 1048576).toFixed(1);
  console.log(`  ${scenario}/${workload}: ${rec.status} in ${((Date.now() - t) / 1000).toFixed(1)} s wall; total_time_ms=${rec.total_time_ms} downtime_ms=${rec.downtime_ms} ` +
    `precopy=${mib(rec.bytes.precopy)}MiB postcopy=${mib(rec.bytes.postcopy)}MiB wire=${mib(rec.bytes.wire)}MiB postcopy_requests=${rec.pages.postcopy_requests} ` +
    `pages_checked=${rec.integrity.pages_checked} bad_pages=${rec.integrity.bad_pages} downtime_host_ms=${rec.downtime_host_ms} max_stall_ms=${rec.guest.max_stall_ms}${rec.reason ? ` reason=${rec.reason}` : ''}`);
  return rec;
}

const arenaPages = makeWorkload('light', MEM_MIB).arena_mib * 256;

function assertClean(rec: RunRecord): void {
  assert.is(rec.status, 'completed', rec.reason);
  assert.ok(rec.integrity.ok, 'integrity ok');
  assert.is(rec.integrity.pages_checked, arenaPages, 'every arena page checked');
  assert.is(rec.integrity.bad_pages, 0);
  assert.ok(rec.total_time_ms !== null && rec.total_time_ms > 0);
  // The guest RAM crossed the veth: at least the arena's stamped pages.
  assert.ok(rec.bytes.wire > arenaPages * 4096, `wire ${rec.bytes.wire} B covers the ${arenaPages} stamped pages`);
  assert.ok(rec.guest.ops_timeline.some((s) => s.side === 'dst' && s.ops > 0), 'the guest runs on the destination');
}

/** The destination's post-copy statistics of a run that placed pages in post-copy (heca's QEMU: with its extensions). */
function assertPostcopyLatency(rec: RunRecord): PostcopyLatency {
  const p = rec.postcopy_latency;
  assert.ok(p, 'the destination reports postcopy-latency and postcopy-latency-dist (the engine enables postcopy-blocktime)');
  console.log(`  postcopy_latency: ${JSON.stringify(p)}`);
  assert.is(p.latency_dist.length, 24, 'postcopy-latency-dist has 24 buckets');
  assert.is(p.latency_dist.reduce((a, b) => a + b, 0), p.faults, 'each fault in the distribution once');
  assert.ok(p.faults > 0, 'the guest faulted on pages still on the source');
  assert.ok(p.latency_mean_ns > 0, `mean latency ${p.latency_mean_ns} ns`);
  assert.ok(p.latency_max_ns !== null && p.latency_max_ns >= p.latency_mean_ns, `max latency ${p.latency_max_ns} ns (heca) is at least the mean`);
  assert.ok(p.vcpu_latency_ns.length > 0, 'a latency per vCPU');
  assert.ok(p.demand_pages !== null && p.background_pages !== null, 'heca reports pages on demand and in background');
  assert.ok(p.demand_pages + p.background_pages > 0, 'pages were placed during post-copy');
  return p;
}

test('pre-copy of a converging guest completes and every page checks out', async () => {
  const rec = await migrate('precopy', 'light');
  assertClean(rec);
  assert.is(rec.bytes.postcopy, 0, 'no post-copy bytes in pre-copy');
  assert.is(rec.pages.postcopy_requests, 0);
  assert.is(rec.postcopy_latency, undefined, 'no post-copy statistics without post-copy');
  assert.ok(rec.downtime_ms !== null);
  assert.ok(rec.phases.some((p) => p.name === 'stop'), 'the source stopped');
});

test('post-copy right after migrate completes and every page checks out', async () => {
  const rec = await migrate('postcopy', 'write-heavy');
  assertClean(rec);
  assert.ok(rec.bytes.postcopy > 0, 'pages were sent after the switch');
  assert.ok(rec.phases.some((p) => p.name === 'postcopy-switch'));
  assert.ok(rec.phases.some((p) => p.name === 'resume-dest'), 'the destination resumed');
  assert.ok(typeof rec.downtime_host_ms === 'number' && rec.downtime_host_ms > 0, `host-observed downtime ${rec.downtime_host_ms}`);
  assertPostcopyLatency(rec);
});

test('heca full post-copy: QEMU switches by itself, no pre-copy pass, post-copy latency recorded', async () => {
  const rec = await migrate('full', 'write-heavy');
  assertClean(rec);
  assert.ok(rec.bytes.precopy < 64 * 1024, `precopy bytes ${rec.bytes.precopy}: protocol overhead only`);
  assert.ok(rec.phases.some((p) => p.name === 'postcopy-switch'), 'the source went to postcopy-active');
  const p = assertPostcopyLatency(rec);
  assert.ok(p.background_pages! > 0, 'no pre-copy pass: the background stream sent pages');
});

test('heca hybrid (postcopy-on-convergence): a pre-copy that converges switches through post-copy, not stop-and-copy', async () => {
  const rec = await migrate('hybrid60', 'light');
  assertClean(rec);
  assert.ok(rec.total_time_ms !== null && rec.total_time_ms < 60_000, 'converged long before the deadline');
  assert.ok(rec.phases.some((p) => p.name === 'postcopy-switch'), 'switched to post-copy');
  assert.ok(rec.postcopy_latency, 'post-copy started: the destination reports its statistics');
});

test('a page corrupted on the destination after migration fails the run', async () => {
  const PAGE = 100; // outside the light workload's working set (the top quarter): never rewritten
  let gpa = -1;
  const rec = await migrate('precopy', 'light', {
    memDir: '/dev/shm',
    hooks: {
      beforeCheck: async (vm, side) => {
        assert.is(side, 'dst');
        const file = vm.config.memFile;
        assert.ok(file, 'destination RAM is file-backed');
        gpa = await vm.channel.where(PAGE, { timeoutMs: 30_000 });
        const fd = openSync(file, 'r+');
        try {
          const hdr = Buffer.alloc(8);
          readSync(fd, hdr, 0, 8, gpa);
          assert.is(hdr.toString('latin1'), 'EGAPACEH', 'the page header is where the guest says');
          writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, gpa + 1024);
        } finally {
          closeSync(fd);
        }
      },
    },
  });
  assert.ok(gpa >= 0);
  assert.is(rec.status, 'failed');
  assert.not.ok(rec.integrity.ok);
  assert.is(rec.integrity.bad_pages, 1);
  assert.equal(rec.integrity.first_bad, [PAGE]);
  assert.match(rec.reason ?? '', 'integrity check failed');
  // The post-mortem compared both guests' RAM and found that page, where the guest said, and only it.
  assert.match(rec.reason ?? '', `post-mortem: `);
  const pm = JSON.parse(readFileSync(join(out, rec.logs_dir, 'postmortem.json'), 'utf8')) as PostMortem;
  assert.equal(pm.torn.map((t) => [t.idx, t.gpa]), [[PAGE, gpa]], JSON.stringify(pm.torn));
  assert.is(pm.torn[0]!.gen, 0, 'outside the working set: stamped once, generation 0');
  assert.equal([pm.stale, pm.lost], [[], []]);
  assert.is(pm.arena_pages, arenaPages, 'every arena page found in the source RAM by its stamp');
  assert.not.ok(existsSync(join(out, rec.logs_dir, 'postmortem-dst.ram')), 'RAM dumps removed');
  assert.not.ok(existsSync(join('/dev/shm', `heca-${process.pid}-precopy-r1-dst.ram`)), 'RAM files removed');
});

test('a guest reset on the destination after migration fails the run at once, naming it, with its registers', async () => {
  const t0 = Date.now();
  const rec = await migrate('postcopy', 'light', {
    hooks: {
      beforeCheck: async (running, side) => {
        assert.is(side, 'dst');
        // The check would otherwise be sent to a guest that is frozen.
        const frozen = running.qmp.waitEvent('SHUTDOWN', { timeoutMs: 10_000 });
        await running.qmp.execute('system_reset');
        await frozen;
      },
    },
  });
  assert.is(rec.status, 'failed');
  // -action reboot=shutdown,shutdown=pause: the reset freezes the guest, QEMU says SHUTDOWN.
  assert.match(rec.reason ?? '', 'the guest was reset or powered off on the destination');
  assert.match(rec.reason ?? '', '(SHUTDOWN, reason: host-qmp-system-reset)');
  assert.match(rec.reason ?? '', /CPU then: RIP=[0-9a-f]+ CR0=[0-9a-f]+ CR2=[0-9a-f]+ CR3=[0-9a-f]+ CR4=[0-9a-f]+ EFER=[0-9a-f]+/);
  assert.match(readFileSync(join(out, rec.logs_dir, 'dst', 'registers.txt'), 'utf8'), /RAX=[0-9a-f]+/);
  // The post-mortem: nothing stale, lost or torn after a post-copy that placed every page.
  // (A page the workload was rewriting when the reset froze it is said apart, not counted as torn.)
  assert.match(rec.reason ?? '', /post-mortem: \d+ of 65536 pages differ; of the \d+ arena pages: 0 stale, 0 lost, 0 torn[; ]/);
  assert.ok(Date.now() - t0 < 90_000, 'no wait for a check reply that cannot come');
});

test('a guest reset while it boots fails the run at once, saying no migration was involved', async () => {
  const t0 = Date.now();
  const rec = await migrate('postcopy', 'light', {
    hooks: {
      booting: async (src) => {
        await sleep(1500); // the guest's ready takes longer under TCG
        await src.qmp.execute('system_reset');
      },
    },
  });
  assert.is(rec.status, 'failed');
  assert.match(rec.reason ?? '', 'the guest was reset or powered off on the source before migrate (SHUTDOWN, reason: host-qmp-system-reset); CPU then: ');
  assert.match(rec.reason ?? '', 'no migration was involved');
  assert.ok(!rec.phases.some((p) => p.name === 'migrate'), 'no migrate issued');
  assert.ok(Date.now() - t0 < 60_000, 'no wait for a ready message that cannot come');
});

test('a destination QEMU killed mid-migration fails the run and leaves nothing behind', async () => {
  const rec = await migrate('postcopy', 'write-heavy', {
    hooks: {
      migrating: async (_src, dst) => {
        await new Promise((r) => setTimeout(r, 300));
        dst.proc.kill('SIGKILL');
      },
    },
  });
  assert.is(rec.status, 'failed');
  assert.match(rec.reason ?? '', /exited|failed/);
  const err = readFileSync(join(out, rec.logs_dir, 'error.txt'), 'utf8');
  assert.ok(err.length > 0, 'the failure is written to the run logs');
  assert.equal(await leftovers(), [], 'no QEMU, namespace, veth or owner record left');
});

test('a post-copy that makes no end fails at its finish timeout, leaving what every QEMU thread waits for', async () => {
  // A destination frozen (SIGSTOP) after the switch: the source sends until its socket is full and waits.
  const rec = await migrate('postcopy', 'write-heavy', {
    finishTimeoutS: 8,
    hooks: {
      migrating: async (_src, dst) => {
        await new Promise((r) => setTimeout(r, 300));
        dst.proc.kill('SIGSTOP');
      },
    },
  });
  assert.is(rec.status, 'failed');
  assert.match(rec.reason ?? '', /after 8 s: it made no end/);
  const err = readFileSync(join(out, rec.logs_dir, 'error.txt'), 'utf8');
  console.log(err.replace(/^/gm, '    | '));
  // The source's threads by name (debug-threads), its migration thread (mig/src/main) among them; the kernel stacks beside.
  assert.match(err, /^src threads \(kernel stacks in .*threads\.txt\):$/m);
  assert.match(err, /^ {2}\d+ mig\/src\/main: [RSD] /m);
  assert.match(err, /^ {2}\d+ CPU 0\/TCG: /m);
  assert.match(readFileSync(join(out, rec.logs_dir, 'src', 'threads.txt'), 'utf8'), /^ {4}\[<0>\] /m);
  // The frozen destination: every thread stopped, and its monitor silent.
  const dst = err.split('\n').filter((l) => /^ {2}\d+ /.test(l) && err.indexOf(l) > err.indexOf('dst threads'));
  assert.ok(dst.length > 2 && dst.every((l) => / T \(stopped\)/.test(l)), dst.join('\n'));
  assert.match(err, /^dst query-migrate: no answer/m);
  assert.equal(await leftovers(), [], 'no QEMU, namespace, veth or owner record left');
});

test.run();
