/**
 * The L2 guest on a real QEMU (TCG): it boots to `ready`, writes pages, its
 * integrity check passes on an untouched arena and finds pages the host
 * corrupted from outside through a shared RAM file, and it refuses bad
 * parameters clearly. Prints the boot time, ops/s and check duration.
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureGuestImage, guestAppend, type GuestImage } from '../../bench/guest/image.ts';
import { GuestChannel, type TickMessage } from '../../bench/guest/channel.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { spawnLogged, type Spawned } from '../../tools/core/exec.ts';
import { firmwareDirs, qemuBinary } from '../../tools/core/paths.ts';

const MEM_MIB = 256;
const ARENA_MIB = 128;
const PAGES = (ARENA_MIB * 1024 * 1024) / 4096;
const BOOT_TIMEOUT_MS = 180_000;

let image: GuestImage;
const tmp = mkdtempSync(join(tmpdir(), 'heca-guest-'));
const live: Guest[] = [];

interface Guest {
  dir: string;
  proc: Spawned;
  channel: GuestChannel;
  startedAt: number;
  memFile?: string;
}

async function boot(name: string, append: string, memFile?: string, smp = 1): Promise<Guest> {
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const args = [
    '-machine', memFile ? 'pc,memory-backend=mem0' : 'pc',
    ...(memFile ? ['-object', `memory-backend-file,id=mem0,size=${MEM_MIB}M,mem-path=${memFile},share=on`] : []),
    '-accel', 'tcg,thread=multi', '-cpu', 'max', '-m', String(MEM_MIB), '-smp', String(smp),
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-kernel', image.kernel, '-initrd', image.initrd, '-append', append,
    '-chardev', `file,id=con,path=${join(dir, 'console.log')}`, '-serial', 'chardev:con',
    '-chardev', `socket,id=ctl,path=${join(dir, 'ctl.sock')},server=on,wait=off`, '-serial', 'chardev:ctl',
    ...firmwareDirs.filter((d) => existsSync(d)).flatMap((d) => ['-L', d]),
  ];
  const startedAt = performance.now();
  const proc = spawnLogged(qemuBinary(), args, { logFile: join(dir, 'qemu.log') });
  try {
    const channel = await Promise.race([
      GuestChannel.connect(join(dir, 'ctl.sock'), { timeoutMs: 30_000 }),
      proc.exited.then((e) => {
        throw new Error(`QEMU exited with ${e.exitCode} before its socket came up: see ${dir}/qemu.log`);
      }),
    ]);
    const g: Guest = { dir, proc, channel, startedAt, ...(memFile ? { memFile } : {}) };
    live.push(g);
    return g;
  } catch (e) {
    await proc.stop(2000);
    throw e;
  }
}

async function shutdown(g: Guest): Promise<void> {
  g.channel.close();
  await g.proc.stop(3000);
  if (g.memFile) rmSync(g.memFile, { force: true });
  live.splice(live.indexOf(g), 1);
}

/** QEMU's exit, or 'timeout' after `ms` (the timer does not keep the process alive). */
async function exitWithin(g: Guest, ms: number): Promise<{ exitCode: number; signal: string | undefined } | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([g.proc.exited, t]);
  } finally {
    clearTimeout(timer);
  }
}

const opsPerSecond = (ticks: TickMessage[]) => (1000 * ticks.reduce((a, t) => a + t.ops, 0)) / ticks.reduce((a, t) => a + t.interval_ms, 0);

test.before(async () => {
  image = await ensureGuestImage();
});

test.after(async () => {
  for (const g of [...live]) await shutdown(g);
  rmSync(tmp, { recursive: true, force: true });
});

test('the guest boots to ready, writes pages, and its check passes', async () => {
  const g = await boot('plain', guestAppend({ arena_mib: ARENA_MIB }));
  try {
    const ready = await g.channel.waitFor('ready', { timeoutMs: BOOT_TIMEOUT_MS });
    const bootMs = performance.now() - g.startedAt;
    assert.is(ready.pages, PAGES);
    assert.is(ready.page_size, 4096);
    assert.is(ready.pattern, 'random');
    const since = g.channel.messages.length;
    await g.channel.waitFor('tick', { timeoutMs: 30_000, since, predicate: (t) => t.seq >= 10 });
    const ticks = g.channel.messages.slice(since).flatMap((r) => (r.msg.t === 'tick' ? [r.msg] : []));
    assert.ok(ticks.length >= 5, `${ticks.length} ticks`);
    assert.ok(ticks.every((t) => t.ops > 0), `every tick has ops: ${ticks.map((t) => t.ops).join(',')}`);
    for (let i = 1; i < ticks.length; i++) assert.is(ticks[i]!.seq, ticks[i - 1]!.seq + 1, 'ticks are numbered without gaps');
    const t0 = performance.now();
    const chk = await g.channel.check({ timeoutMs: 120_000 });
    const checkMs = performance.now() - t0;
    assert.equal({ ...chk, ms: 0 }, { pages_checked: PAGES, bad_pages: 0, first_bad: [], ms: 0 });
    // The guest keeps writing after the check.
    await g.channel.waitFor('tick', { timeoutMs: 10_000, since: g.channel.messages.length, predicate: (t) => t.ops > 0 });
    const gpa = await g.channel.where(0);
    assert.ok(gpa % 4096 === 0 && gpa > 0 && gpa < MEM_MIB * 1024 * 1024, `gpa ${gpa}`);
    try {
      await g.channel.where(PAGES);
      assert.unreachable('where beyond the arena accepted');
    } catch (e) {
      assert.instance(e, HecaError);
      assert.match((e as HecaError).why, 'not in 0..');
    }
    process.stdout.write(
      `    boot to ready ${(bootMs / 1000).toFixed(2)} s (guest: ${(ready.ms / 1000).toFixed(2)} s since boot, stamping ${ready.stamp_ms.toFixed(0)} ms); ` +
        `${Math.round(opsPerSecond(ticks))} page writes/s flat out (max stall ${Math.max(...ticks.map((t) => t.max_stall_us))} us); ` +
        `check of ${chk.pages_checked} pages ${chk.ms?.toFixed(0)} ms in the guest, ${checkMs.toFixed(0)} ms round trip\n`,
    );
    // quit: the workload says bye, /init powers the guest off, QEMU exits.
    await g.channel.quit({ timeoutMs: 10_000 });
    const exit = await exitWithin(g, 30_000);
    assert.equal(exit, { exitCode: 0, signal: undefined }, 'QEMU exits when the guest powers off');
  } finally {
    await shutdown(g);
  }
});

test('pages the host corrupts through the shared RAM file are found by check', async () => {
  const memFile = join('/dev/shm', `heca-guest-test-${process.pid}-${Date.now()}`);
  // Working set = the upper half of the arena, so pages 100 and 101 are
  // never rewritten by the guest and the corruption stays.
  const g = await boot('corrupt', guestAppend({ arena_mib: ARENA_MIB, ws_mib: ARENA_MIB / 2, pattern: 'random' }), memFile);
  try {
    const ready = await g.channel.waitFor('ready', { timeoutMs: BOOT_TIMEOUT_MS });
    assert.is(ready.ws_first_page, PAGES / 2);
    await g.channel.waitFor('tick', { timeoutMs: 30_000, predicate: (t) => t.ops > 0 });
    const fd = openSync(memFile, 'r+');
    try {
      const gpas: number[] = [];
      for (const page of [100, 101]) {
        const gpa = await g.channel.where(page);
        assert.ok(gpa + 4096 <= MEM_MIB * 1024 * 1024 && gpa < 3 * 1024 ** 3, `gpa ${gpa} is RAM below 3 GiB`);
        // `where` names the right frame: the page's header is there.
        const hdr = Buffer.alloc(16);
        readSync(fd, hdr, 0, 16, gpa);
        assert.is(hdr.toString('latin1', 0, 8), 'EGAPACEH', `page ${page} header magic at gpa ${gpa}`);
        assert.is(hdr.readBigUInt64LE(8), BigInt(page));
        gpas.push(gpa);
      }
      const junk = Buffer.alloc(16, 0xa5);
      writeSync(fd, junk, 0, 16, gpas[0]!); // page 100: its header
      writeSync(fd, junk, 0, 16, gpas[1]! + 2048); // page 101: the middle of its content
    } finally {
      closeSync(fd);
    }
    const chk = await g.channel.check({ timeoutMs: 120_000 });
    assert.is(chk.pages_checked, PAGES);
    assert.ok(chk.bad_pages >= 1);
    assert.ok(chk.first_bad.includes(100), `first_bad ${chk.first_bad.join(',')}`);
    assert.equal(chk.first_bad, [100, 101], 'exactly the two corrupted pages');
    assert.is(chk.bad_pages, 2);
  } finally {
    await shutdown(g);
  }
});

test('writer threads on 2 vCPUs: each writes its slice, ticks say who did what, check stops them all and finds a corrupted page', async () => {
  const memFile = join('/dev/shm', `heca-guest-test-${process.pid}-${Date.now()}-threads`);
  const g = await boot('threads', guestAppend({ arena_mib: ARENA_MIB, ws_mib: ARENA_MIB / 2, threads: 3 }), memFile, 2);
  try {
    const ready = await g.channel.waitFor('ready', { timeoutMs: BOOT_TIMEOUT_MS });
    assert.equal([ready.threads, ready.cpus], [3, 2]);
    const since = g.channel.messages.length;
    await g.channel.waitFor('tick', { timeoutMs: 30_000, since, predicate: (t) => t.seq >= 10 });
    const ticks = g.channel.messages.slice(since).flatMap((r) => (r.msg.t === 'tick' ? [r.msg] : []));
    for (const t of ticks) {
      assert.is(t.threads?.length, 3, 'every tick has each writer\'s ops');
      assert.is(t.threads!.reduce((a, n) => a + n, 0), t.ops, 'they add up to the tick\'s ops');
      assert.is(t.stalls_us?.length, 3);
      assert.is(Math.max(...t.stalls_us!), t.max_stall_us);
    }
    const each = [0, 1, 2].map((i) => ticks.reduce((a, t) => a + t.threads![i]!, 0));
    assert.ok(each.every((n) => n > 0), `every writer writes: ${each.join(', ')}`);
    // Page 100 is below the working set: no writer rewrites it.
    const gpa = await g.channel.where(100);
    const fd = openSync(memFile, 'r+');
    try {
      writeSync(fd, Buffer.alloc(16, 0xa5), 0, 16, gpa + 1024);
    } finally {
      closeSync(fd);
    }
    // While three writers rewrite pages flat out: a check that did not stop them would see torn pages.
    for (let i = 0; i < 3; i++) {
      const chk = await g.channel.check({ timeoutMs: 120_000 });
      assert.equal([chk.pages_checked, chk.bad_pages, chk.first_bad], [PAGES, 1, [100]], `check ${i + 1}`);
    }
    await g.channel.waitFor('tick', { timeoutMs: 10_000, since: g.channel.messages.length, predicate: (t) => t.threads!.every((n) => n > 0) });
    process.stdout.write(`    3 writers on 2 vCPUs: ${Math.round(opsPerSecond(ticks))} page writes/s (${each.join(' + ')} in ${ticks.length} ticks)\n`);
  } finally {
    await shutdown(g);
  }
});

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ, 100 on Linux
}

test('paced writer threads keep their rate, each its share, and sleep between writes: the vCPUs stay idle', async () => {
  const g = await boot('paced', guestAppend({ arena_mib: ARENA_MIB, ws_mib: ARENA_MIB / 2, threads: 3, rate: 600 }), undefined, 2);
  try {
    const ready = await g.channel.waitFor('ready', { timeoutMs: BOOT_TIMEOUT_MS });
    assert.equal([ready.threads, ready.rate], [3, 600]);
    // The first ticks after ready: the boot's leftovers settle.
    await g.channel.waitFor('tick', { timeoutMs: 30_000, since: g.channel.messages.length, predicate: (t) => t.seq >= 5 });
    const since = g.channel.messages.length;
    const cpu0 = cpuSeconds(g.proc.pid);
    const t0 = performance.now();
    await g.channel.waitFor('tick', { timeoutMs: 30_000, since, predicate: (t) => t.seq >= 35 });
    const cores = (cpuSeconds(g.proc.pid) - cpu0) / ((performance.now() - t0) / 1000);
    const ticks = g.channel.messages.slice(since).flatMap((r) => (r.msg.t === 'tick' ? [r.msg] : []));
    const rate = opsPerSecond(ticks);
    const secs = ticks.reduce((a, t) => a + t.interval_ms, 0) / 1000;
    const each = [0, 1, 2].map((i) => ticks.reduce((a, t) => a + t.threads![i]!, 0) / secs);
    process.stdout.write(`    3 paced writers at 600/s on 2 vCPUs: ${rate.toFixed(0)} page writes/s (${each.map((n) => n.toFixed(0)).join(' + ')}), QEMU busy ${cores.toFixed(2)} cores\n`);
    assert.ok(rate > 540 && rate < 660, `600 page writes/s, within 10 %: ${rate.toFixed(0)}`);
    assert.ok(each.every((n) => n > 160 && n < 240), `200/s each, within 20 %: ${each.map((n) => n.toFixed(0)).join(', ')}`);
    // Sleeping writers: 0.15 cores here; spinning the last ms before each write (5 ms apart): 0.69; waking every ms: 0.44.
    assert.ok(cores < 0.35, `QEMU used ${cores.toFixed(2)} cores: the writers do not sleep between writes`);
  } finally {
    await shutdown(g);
  }
});

test('a workload parameter the guest refuses fails the wait for ready with its message', async () => {
  const append = guestAppend({ arena_mib: 16 }).replace('heca.ws_mib=16', 'heca.ws_mib=32');
  const g = await boot('badparam', append);
  try {
    try {
      await g.channel.waitFor('ready', { timeoutMs: BOOT_TIMEOUT_MS });
      assert.unreachable('ready despite ws > arena');
    } catch (e) {
      assert.instance(e, HecaError);
      assert.match((e as HecaError).why, 'heca.ws_mib=32 must be 1..arena_mib (16)');
    }
    const exit = await exitWithin(g, 30_000);
    assert.equal(exit, { exitCode: 0, signal: undefined }, 'the guest powers off');
  } finally {
    await shutdown(g);
  }
});

test.run();
