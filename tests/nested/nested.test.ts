/**
 * The nested testbed on this machine: two L1 hosts booted from the heca
 * kernel with the machine's root over 9p, nested KVM in both, Soft-RoCE rxe0
 * ACTIVE on the dgram link between them, the agent protocol (output, exit
 * status, timeouts, background processes), boot failures (a panic: console
 * tail; a hang: booted again, then given up; no rxe: named), one L2 post-copy
 * migration A -> B with the integrity check, and nothing left behind. Needs
 * the L1 kernel, which make test builds (make test-nested runs this alone).
 *
 *   node --import tsx tests/nested/nested.test.ts
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/core/errors.ts';
import { l1HostQemu, qemuBinary } from '../../tools/core/paths.ts';
import { runOnce, type RunContext } from '../../bench/engine/run-once.ts';
import { ensureGuestImage, guestAppend } from '../../bench/guest/image.ts';
import { AgentError } from '../../bench/testbed/nested/l1-agent.ts';
import type { WorkloadParams } from '../../bench/results/schema.ts';
import { parseScenarios } from '../../bench/scenario/catalog.ts';
import { makeWorkload } from '../../bench/scenario/workloads.ts';
import { coreDumpOf, coresDir } from '../../bench/testbed/nested/cores.ts';
import { L1BootError, L1Host } from '../../bench/testbed/nested/l1-host.ts';
import { runInL1 } from './l1-run.ts';
import { A_ADDR, B_ADDR, l1KernelPath, NestedTestbed, NESTED_OWNER_DIR } from '../../bench/testbed/nested/testbed.ts';

const dir = mkdtempSync(join(tmpdir(), 'heca-nested-'));
let bed: NestedTestbed | undefined;

const l1Qemus = (id: string): number[] => {
  const pids: number[] = [];
  for (const p of readdirPids()) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`\0heca-${id}-`)) pids.push(p);
    } catch {
      /* gone */
    }
  }
  return pids;
};
function readdirPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

test('a missing kernel is reported with the build command', async () => {
  try {
    await NestedTestbed.create({ link: 'unlimited', dir: join(dir, 'nokernel'), kernel: join(dir, 'no-bzImage') });
    assert.unreachable('created without a kernel');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as HecaError).fix ?? '', 'tools/build.ts --kernel');
  }
});

test('a host that cannot boot fails with its console tail, and its QEMU is gone', async () => {
  // A kernel command line whose init does not exist: the kernel panics, QEMU (-no-reboot) exits.
  const d = join(dir, 'badinit');
  mkdirSync(d, { recursive: true });
  const t0 = Date.now();
  try {
    await L1Host.boot(l1HostQemu(), {
      name: 'heca-badinit-a', dir: d, kernel: l1KernelPath(), accel: 'tcg', memMib: 512, cpus: 1,
      link: { mac: '52:54:00:4e:00:09', addr: '10.214.9.1/24', localPort: 40999, remotePort: 40998 },
      sharedDir: d, repo: join(dir, 'no-such-checkout'),
    }, { bootTimeoutMs: 120_000 });
    assert.unreachable('booted without init');
  } catch (e) {
    assert.instance(e, HecaError);
    const err = e as HecaError;
    assert.match(err.message, 'heca-badinit-a did not come up');
    assert.match(err.details ?? '', /Kernel panic|No working init|init/i, 'the console tail says why');
  }
  assert.ok(Date.now() - t0 < 120_000);
  assert.equal(l1Qemus('badinit'), []);
});

test('a host that hangs at boot is booted again, then given up with every console kept', async () => {
  // A boot timeout shorter than the kernel's way to init stands in for a hang.
  const d = join(dir, 'hang');
  mkdirSync(d, { recursive: true });
  try {
    await L1Host.bootRetrying(l1HostQemu(), {
      name: 'heca-hang-a', dir: d, kernel: l1KernelPath(), accel: 'tcg', memMib: 512, cpus: 1,
      link: { mac: '52:54:00:4e:00:0a', addr: '10.214.9.2/24', localPort: 40997, remotePort: 40996 },
      sharedDir: d,
    }, { bootTimeoutMs: 2500, attempts: 2 });
    assert.unreachable('came up within 2.5 s');
  } catch (e) {
    assert.instance(e, L1BootError);
    const err = e as L1BootError;
    assert.is(err.kind, 'hung');
    assert.match(err.message, 'heca-hang-a did not come up in 2 attempts');
    assert.match(err.why, /attempt 1: no answer after \d+ s; attempt 2: no answer after \d+ s/);
    for (const n of [1, 2]) {
      assert.ok(existsSync(join(d, `console.hung-${n}.log`)), `console of attempt ${n} kept`);
      assert.ok(existsSync(join(d, `qemu.hung-${n}.log`)), `QEMU log of attempt ${n} kept`);
    }
    assert.match(readFileSync(join(d, 'console.hung-1.log'), 'utf8'), 'Linux version', 'the kept console is the boot\'s');
  }
  assert.equal(l1Qemus('hang'), []);
});

test('a host whose QEMU dies at boot is booted again; the crash is on record', async () => {
  // Under TCG the emulator itself has died at boot (an iotlb_to_section assertion, SIGABRT).
  // Stand-in: SIGKILL the first QEMU as soon as it runs (no core file).
  const d = join(dir, 'crash');
  mkdirSync(d, { recursive: true });
  let killed = 0;
  const killer = (async () => {
    for (let i = 0; i < 600 && !killed; i++) {
      const [pid] = l1Qemus('crash');
      if (pid) {
        await sleep(500);
        process.kill(pid, 'SIGKILL');
        killed = pid;
      } else await sleep(50);
    }
  })();
  const h = await L1Host.bootRetrying(l1HostQemu(), {
    name: 'heca-crash-a', dir: d, kernel: l1KernelPath(), accel: 'tcg', memMib: 1024, cpus: 1,
    link: { mac: '52:54:00:4e:00:0b', addr: '10.214.9.3/24', localPort: 40995, remotePort: 40994 },
    sharedDir: d,
  }, { bootTimeoutMs: 90_000, attempts: 2 });
  try {
    await killer;
    assert.ok(killed, 'the first QEMU was killed');
    assert.is(h.hangs.length, 1);
    const [first] = h.hangs;
    assert.is(first!.kind, 'crashed');
    assert.match(first!.qemu_log, 'qemu.crashed-1.log');
    assert.ok(existsSync(first!.console) && existsSync(first!.qemu_log), 'both logs of the crashed attempt kept');
    assert.ok(h.proc.pid !== killed, 'a second QEMU came up');
  } finally {
    await h.shutdown();
  }
  assert.equal(l1Qemus('crash'), []);
});

test('a host without Soft-RoCE: the error names the missing piece, and both hosts are gone', async () => {
  // rxe's init is skipped at boot, as in a kernel built without CONFIG_RDMA_RXE.
  try {
    const b = await NestedTestbed.create({ link: 'unlimited', dir: join(dir, 'norxe'), memMib: 1024, kernelArgs: ['initcall_blacklist=rxe_module_init'], id: 'norxe' });
    await b.destroy();
    assert.unreachable('came up without rxe');
  } catch (e) {
    assert.instance(e, HecaError);
    const err = e as HecaError;
    assert.match(err.message, 'cannot create the Soft-RoCE device rxe0 on link0');
    assert.match(err.fix ?? '', 'CONFIG_RDMA_RXE=y');
  }
  assert.equal(l1Qemus('norxe'), []);
  assert.not.ok(existsSync(join(NESTED_OWNER_DIR, 'norxe.json')), 'owner record removed');
});

test('both hosts boot; nested KVM; rxe0 ACTIVE on both ends of the link', async () => {
  bed = await NestedTestbed.create({ link: 'unlimited', dir: join(dir, 'bed'), memMib: 2048 });
  for (const f of [bed.facts.a, bed.facts.b]) {
    assert.ok(f.nested_kvm, `${f.name}: nested KVM (${f.nested_kvm_detail})`);
    assert.is(f.rxe.state, 'ACTIVE');
    assert.is(f.rxe.netdev, 'link0');
    assert.match(f.kernel, /^6\.12\./);
  }
  assert.ok(existsSync(join(NESTED_OWNER_DIR, `${bed.id}.json`)), 'owner record');
  assert.is(l1Qemus(bed.id).length, 2);
});

test('commands: output, exit status, environment, stdin, and the shared directory', async () => {
  assert.ok(bed);
  const r = await bed.exec('b', ['ip', '-j', 'addr', 'show', 'link0'], { timeoutMs: 20_000 });
  assert.match(r.stdout, B_ADDR);
  const f = await bed.exec('a', ['sh', '-c', 'echo out; echo err >&2; exit 7'], { timeoutMs: 20_000, allowFail: true });
  assert.equal([f.exitCode, f.stdout, f.stderr], [7, 'out\n', 'err\n']);
  try {
    await bed.exec('a', ['false'], { timeoutMs: 20_000 });
    assert.unreachable('a failing command resolved');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as Error).message, 'command failed: false');
  }
  const env = await bed.exec('a', ['sh', '-c', 'printf %s "$HECA_X"; cat'], { timeoutMs: 20_000, env: { HECA_X: 'x y' }, input: 'from stdin' });
  assert.is(env.stdout, 'x yfrom stdin');
  try {
    await bed.exec('a', ['no-such-command-heca'], { timeoutMs: 20_000 });
    assert.unreachable('a missing command resolved');
  } catch (e) {
    assert.instance(e, AgentError);
    assert.match((e as Error).message, 'running no-such-command-heca');
    assert.match((e as AgentError).why, 'ENOENT');
  }
  // The shared directory is the same path at L0 and in L1.
  const shared = join(bed.dir, 'shared');
  writeFileSync(join(shared, 'from-l0'), 'hello L1');
  assert.is((await bed.exec('b', ['cat', join(shared, 'from-l0')], { timeoutMs: 20_000 })).stdout, 'hello L1');
  await bed.exec('a', ['sh', '-c', 'echo hello L0 > "$1"', 'sh', join(shared, 'from-l1')], { timeoutMs: 20_000 });
  assert.is(readFileSync(join(shared, 'from-l1'), 'utf8'), 'hello L0\n');
});

test('a command that hangs is killed at its timeout; the agent goes on', async () => {
  assert.ok(bed);
  const t0 = Date.now();
  const r = await bed.exec('a', ['sleep', '600'], { timeoutMs: 2000, allowFail: true });
  assert.ok(r.timedOut);
  assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  assert.is((await bed.exec('a', ['echo', 'still here'], { timeoutMs: 20_000 })).stdout, 'still here\n');
});

test('background processes: spawn, exit event, kill', async () => {
  assert.ok(bed);
  const log = join(bed.dir, 'shared', 'bg.log');
  const short = await bed.a.agent.spawn(['sh', '-c', 'echo started; exit 3'], { logFile: log });
  assert.equal(await short.exited, { pid: short.pid, exitCode: 3, signal: null });
  assert.match(readFileSync(log, 'utf8'), 'started');
  const long = await bed.b.agent.spawn(['sleep', '600'], { logFile: log });
  assert.ok(await bed.b.agent.kill(long.pid, 'SIGTERM'));
  const e = await long.exited;
  assert.is(e.signal, 'SIGTERM');
  assert.not.ok(await bed.b.agent.kill(long.pid), 'already gone');
});

test('a process that crashes in a host leaves its core in the shared directory; L0 reads it with gdb', async () => {
  assert.ok(bed);
  const p = await bed.b.agent.spawn(['/usr/bin/sleep', '600'], { logFile: join(bed.dir, 'shared', 'crash.log') });
  assert.ok(await bed.b.agent.kill(p.pid, 'SIGSEGV'));
  assert.is((await p.exited).signal, 'SIGSEGV');
  const c = await coreDumpOf(bed.sharedDir, 'dst', bed.b.name, p.pid, '/usr/bin/sleep');
  assert.ok(c, `no core.${bed.b.name}.${p.pid}.* in ${coresDir(bed.sharedDir)}: ${existsSync(coresDir(bed.sharedDir)) ? readdirSync(coresDir(bed.sharedDir)).join(', ') : 'no such directory'}`);
  console.log(`  ${c.summary}`);
  assert.match(c.summary, /^SIGSEGV in thread "sleep" \(LWP \d+\): #0 /);
  assert.match(c.backtrace, /Core was generated by `\/usr\/bin\/sleep 600'/);
  rmSync(c.file);
});

test('a host that stops answering while a program runs in it is given up, with what its QEMU does at L0', async () => {
  assert.ok(bed);
  const host = bed.b;
  const t0 = Date.now();
  const run = runInL1(host, ['sleep', '600'], { logFile: join(bed.sharedDir, 'frozen.log'), timeoutMs: 300_000, aliveMs: 10_000 });
  await sleep(2000);
  await host.qmp.execute('stop'); // the host's CPUs stop: as frozen as a host gets, and it can go on afterwards
  try {
    const r = await run;
    const secs = (Date.now() - t0) / 1000;
    console.log(`  given up after ${secs.toFixed(1)} s: ${r.error?.split('\n')[0]}`);
    assert.is(r.exitCode, undefined);
    assert.match(r.error ?? '', `the L1 host ${host.name} stopped answering`);
    assert.match(r.error ?? '', /\d+ CPU 0\/TCG: [RS] /, 'the L1 QEMU\'s threads, by name, with their states');
    // Where its CPUs were, symbolized with the L1 kernel's System.map; a stopped host is not called dead.
    assert.match(r.error ?? '', /^ {2}CPU#0: (running|halted) in (kernel|user) mode, RIP=[0-9a-f]{16}/m);
    assert.not.match(r.error ?? '', 'the host is dead');
    assert.ok(secs < 60, `within a minute (${secs} s)`);
    // The bench's check between runs (a new testbed when a host died): B is named, A is not.
    const silent = await bed.silentHosts(5000);
    assert.equal(silent.map((h) => h.name), [host.name]);
    assert.match(silent[0]!.report, /\d+ CPU 0\/TCG: [RS] /);
  } finally {
    await host.qmp.execute('cont');
  }
  assert.is((await bed.exec('b', ['echo', 'back'], { timeoutMs: 30_000 })).stdout, 'back\n');
  assert.equal(await bed.silentHosts(10_000), [], 'both answer again');
  await bed.exec('b', ['pkill', '-x', 'sleep'], { timeoutMs: 10_000, allowFail: true });
});

test('hosts reach each other over the link', async () => {
  assert.ok(bed);
  const r = await bed.exec('b', ['busybox', 'ping', '-c', '3', '-W', '5', A_ADDR], { timeoutMs: 30_000 });
  assert.match(r.stdout, '3 packets received');
});

test('one L2 post-copy migration A -> B under nested KVM passes the integrity check', async () => {
  assert.ok(bed);
  let theBed = bed;
  const guest = await ensureGuestImage();
  const ctx: RunContext = {
    qemu: qemuBinary(),
    accel: 'kvm',
    link: 'unlimited',
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: (w: WorkloadParams) => guestAppend({ arena_mib: w.arena_mib, ws_mib: w.working_set_mib, rate: w.write_rate, pattern: w.pattern }),
    // The run directory is in the shared directory: the L2 QEMUs in A and B write their logs there.
    outDir: join(theBed.sharedDir, 'run'),
    warmupS: 1,
    port: 4444,
    testbed: async () => theBed.runTestbed(),
  };
  const errorText = (r: { logs_dir: string }) => {
    const f = join(ctx.outDir, r.logs_dir, 'error.txt');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  const [sc] = parseScenarios('postcopy', 60);
  const w = makeWorkload('write-heavy', 256);
  const t0 = Date.now();
  let rec = await runOnce(ctx, sc!, w, 1);
  // An L2 guest that never came up (about 1 boot in 50 under nested KVM in a TCG L1 here)
  // is not a migration result: boot it once more. A failure after `migrate` is never retried.
  if (rec.status === 'failed' && !rec.phases.some((p) => p.name === 'migrate')) {
    console.log(`  the L2 guest did not come up before the migration (${rec.reason}); running it once more`);
    rec = await runOnce(ctx, sc!, w, 2);
  }
  // An L1 host whose kernel died (its CPUs fault on its own code: memory corrupt, seen on the
  // destination host during post-copy under TCG, issue #12's notes) is not a migration result
  // either: say so loudly, and migrate once more between two fresh hosts.
  if (rec.status === 'failed' && errorText(rec).includes('the host is dead, not slow')) {
    console.log(`  AN L1 HOST DIED during the migration (${rec.reason}):\n${errorText(rec).replace(/^/gm, '    | ')}  migrating once more between two fresh hosts`);
    await theBed.destroy();
    bed = theBed = await NestedTestbed.create({ link: 'unlimited', dir: join(dir, 'bed2'), memMib: 2048 });
    ctx.outDir = join(theBed.sharedDir, 'run');
    rec = await runOnce(ctx, sc!, w, 3);
  }
  console.log(`  nested postcopy/write-heavy 256 MiB: ${rec.status} in ${((Date.now() - t0) / 1000).toFixed(1)} s wall; total_time_ms=${rec.total_time_ms} ` +
    `downtime_host_ms=${rec.downtime_host_ms} wire=${(rec.bytes.wire / 1048576).toFixed(1)}MiB postcopy_requests=${rec.pages.postcopy_requests} ` +
    `pages_checked=${rec.integrity.pages_checked} bad_pages=${rec.integrity.bad_pages}${rec.reason ? ` reason=${rec.reason}` : ''}`);
  if (rec.status !== 'completed') {
    // What the run left for a post-mortem: the reason, the guests' CPUs, every QEMU thread's wait.
    const err = join(ctx.outDir, rec.logs_dir, 'error.txt');
    if (existsSync(err)) console.log(readFileSync(err, 'utf8').replace(/^/gm, '    | '));
  }
  assert.is(rec.status, 'completed', rec.reason);
  assert.ok(rec.integrity.ok);
  assert.is(rec.integrity.pages_checked, w.arena_mib * 256);
  assert.is(rec.integrity.bad_pages, 0);
  assert.ok(rec.bytes.postcopy > 0, 'pages came by post-copy');
  assert.ok(rec.pages.postcopy_requests > 0, 'the destination asked for pages');
  assert.ok(rec.bytes.wire >= rec.bytes.postcopy, 'the link carried them');
  // Nothing of the run is left in the hosts.
  for (const on of ['a', 'b'] as const) {
    const ps = await theBed.exec(on, ['ps', '-eo', 'comm'], { timeoutMs: 10_000 });
    assert.not.match(ps.stdout, 'qemu-system', `no L2 QEMU left in ${on}`);
  }
});

test('destroy powers both hosts off and leaves nothing behind', async () => {
  assert.ok(bed);
  const id = bed.id;
  await bed.destroy();
  await bed.destroy();
  assert.equal(l1Qemus(id), []);
  assert.not.ok(existsSync(join(NESTED_OWNER_DIR, `${id}.json`)));
  bed = undefined;
});

test.after(async () => {
  await bed?.destroy();
});

test.run();
