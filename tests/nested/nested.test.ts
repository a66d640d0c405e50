/**
 * The nested testbed on this machine: two L1 hosts booted from the heca
 * kernel with the machine's root over 9p, nested KVM in both, Soft-RoCE rxe0
 * ACTIVE on the dgram link between them, the agent protocol (output, exit
 * status, timeouts, background processes), a boot failure reported with the
 * console, and nothing left behind. Needs the L1 kernel: make test-nested
 * builds it and runs this suite (not in make test yet: an L1 boot hangs now
 * and then under TCG).
 * (An L2 migration between the hosts is bench/run.ts --testbed nested; it is
 * not part of make test yet: in 1 of 13 such runs the L2 guest was reset on
 * the destination after the migration, cause not found yet.)
 *
 *   node --import tsx tests/nested/nested.test.ts
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/lib/errors.ts';
import { qemuBinary } from '../../tools/lib/paths.ts';
import { AgentError } from '../../bench/lib/l1-agent.ts';
import { L1Host } from '../../bench/lib/l1-host.ts';
import { A_ADDR, B_ADDR, l1KernelPath, NestedTestbed, NESTED_OWNER_DIR } from '../../bench/lib/testbed-nested.ts';

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
    await L1Host.boot(qemuBinary(), {
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

test('hosts reach each other over the link', async () => {
  assert.ok(bed);
  const r = await bed.exec('b', ['busybox', 'ping', '-c', '3', '-W', '5', A_ADDR], { timeoutMs: 30_000 });
  assert.match(r.stdout, '3 packets received');
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
