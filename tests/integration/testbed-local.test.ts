/**
 * The local testbed on the real kernel: namespaces, veth, shaping measured
 * with a bounded TCP transfer, wire counters, teardown on destroy, on a
 * signal and on a crash, and removal of what a killed run left behind.
 * Needs root (skipped otherwise). Every wait is bounded.
 *
 *   node --import tsx tests/integration/testbed-local.test.ts
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/core/errors.ts';
import { run, spawnLogged, type Spawned } from '../../tools/core/exec.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { probeLinkSupport } from '../../bench/testbed/links.ts';
import { DST_ADDR, LocalTestbed, OWNER_DIR, SRC_ADDR, testbedNames } from '../../bench/testbed/local/testbed.ts';

const isRoot = process.getuid?.() === 0;
const T = isRoot ? test : test.skip;
if (!isRoot) process.stderr.write('testbed-local: not root, skipping (namespaces and tc need root)\n');

const tmp = mkdtempSync(join(tmpdir(), 'heca-testbed-'));
const usedIds = new Set<string>();
let bed: LocalTestbed | undefined;

const netnsList = async (): Promise<string[]> => {
  const out = (await run('ip', ['-j', 'netns', 'list'], { timeoutMs: 10_000 })).stdout.trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
};
const ourNetns = async (id: string) => (await netnsList()).filter((n) => n.startsWith(`heca-${id}-`));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function within<X>(p: Promise<X>, ms: number, what: string): Promise<X> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function mustBed(): LocalTestbed {
  if (!bed) throw new Error('no testbed: the create test failed');
  return bed;
}

T('create: two namespaces joined by a veth, tbf on both ends, owner recorded', async () => {
  bed = await within(LocalTestbed.create({ link: 'lan1g' }), 30_000, 'create');
  usedIds.add(bed.id);
  const n = testbedNames(bed.id);
  assert.equal((await ourNetns(bed.id)).sort(), [n.dst, n.src]);
  assert.is(bed.src.addr, SRC_ADDR);
  assert.is(bed.dst.addr, DST_ADDR);
  for (const h of [bed.src, bed.dst]) {
    const q = JSON.parse((await run('tc', ['-n', h.netns, '-j', 'qdisc', 'show', 'dev', h.dev], { timeoutMs: 10_000 })).stdout) as { kind: string; root?: boolean }[];
    assert.ok(q.some((x) => x.kind === 'tbf' && x.root), `${h.netns}: ${JSON.stringify(q)}`);
    const lo = (await h.exec('ip', ['-j', 'link', 'show', 'dev', 'lo'], { timeoutMs: 10_000 })).stdout;
    assert.match(lo, '"UP"', `lo up in ${h.netns}`);
  }
  // The veth lives only inside the namespaces.
  assert.not.match((await run('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 })).stdout, n.srcDev);
  const owner = JSON.parse(readFileSync(join(OWNER_DIR, `${bed.id}.json`), 'utf8')) as { pid: number; netns: string[] };
  assert.is(owner.pid, process.pid);
  assert.equal(owner.netns, [n.src, n.dst]);
});

T('the two ends ping each other', async () => {
  const b = mustBed();
  for (const [from, to] of [[b.src, b.dst], [b.dst, b.src]] as const) {
    const r = await from.exec('busybox', ['ping', '-c', '2', '-W', '2', to.addr], { timeoutMs: 15_000, allowFail: true });
    assert.is(r.exitCode, 0, `${from.role} -> ${to.addr}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, '2 packets received');
  }
});

T('an address of the other end is not reachable from the host namespace', async () => {
  const r = await run('busybox', ['ping', '-c', '1', '-W', '1', DST_ADDR], { timeoutMs: 10_000, allowFail: true });
  assert.is.not(r.exitCode, 0, 'the testbed must not be routed from the host');
});

T('wire counters: tx grows by what src sends, rx by the ACKs', async () => {
  const b = mustBed();
  const N = 20_000_000;
  const w0 = await b.wireBytes();
  const r = await b.measureThroughput({ bytes: N, timeoutMs: 20_000 });
  const w1 = await b.wireBytes();
  const tx = w1.tx - w0.tx;
  const rx = w1.rx - w0.rx;
  assert.is(r.bytes, N);
  // GSO: the veth counts a 64 KiB segment's headers once, so tx is just above the payload.
  assert.ok(tx >= N && tx < N * 1.06, `tx ${tx} for ${N} payload bytes`);
  assert.ok(rx > 0 && rx < N * 0.05, `rx ${rx} (ACKs) for ${N} payload bytes`);
  const back0 = await b.wireBytes();
  await b.measureThroughput({ bytes: N, from: 'dst', timeoutMs: 20_000 });
  const back1 = await b.wireBytes();
  assert.ok(back1.rx - back0.rx >= N, `rx ${back1.rx - back0.rx} when dst sends ${N}`);
});

T('lan1g limits a TCP transfer to about 1 Gbit/s, both ways', async () => {
  const b = mustBed();
  for (const from of ['src', 'dst'] as const) {
    const r = await b.measureThroughput({ bytes: 120_000_000, from, timeoutMs: 15_000 });
    process.stdout.write(`\n    lan1g ${from}->: ${(r.bitPerS / 1e6).toFixed(0)} Mbit/s goodput (${r.seconds.toFixed(2)} s)\n`);
    // 1 Gbit/s L2 is ~956 Mbit/s of TCP payload at MTU 1500.
    assert.ok(r.bitPerS < 1.0e9, `${from}: ${r.bitPerS} bit/s is above the shaped rate`);
    assert.ok(r.bitPerS > 0.8e9, `${from}: ${r.bitPerS} bit/s is far below the shaped rate`);
  }
});

T('unlimited is unshaped and faster than lan1g; lan10g is tbf at 10 Gbit/s', async () => {
  const un = await within(LocalTestbed.create({ link: 'unlimited' }), 30_000, 'create unlimited');
  usedIds.add(un.id);
  try {
    const q = (await run('tc', ['-n', un.src.netns, 'qdisc', 'show', 'dev', un.src.dev], { timeoutMs: 10_000 })).stdout;
    assert.not.match(q, 'tbf');
    const r = await un.measureThroughput({ bytes: 600_000_000, timeoutMs: 20_000 });
    process.stdout.write(`\n    unlimited: ${(r.bitPerS / 1e6).toFixed(0)} Mbit/s\n`);
    assert.ok(r.bitPerS > 1.5e9, `unlimited gave only ${r.bitPerS} bit/s`);
  } finally {
    await un.destroy();
  }
  const ten = await within(LocalTestbed.create({ link: 'lan10g' }), 30_000, 'create lan10g');
  usedIds.add(ten.id);
  try {
    for (const h of [ten.src, ten.dst]) {
      const q = JSON.parse((await run('tc', ['-n', h.netns, '-j', 'qdisc', 'show', 'dev', h.dev], { timeoutMs: 10_000 })).stdout) as { kind: string; options?: { rate?: number } }[];
      const tbf = q.find((x) => x.kind === 'tbf');
      assert.ok(tbf, JSON.stringify(q));
      // iproute2 prints the rate in bytes/s.
      assert.is(tbf?.options?.rate, 1.25e9, JSON.stringify(tbf));
    }
    const r = await ten.measureThroughput({ bytes: 1_000_000_000, timeoutMs: 20_000 });
    process.stdout.write(`    lan10g: ${(r.bitPerS / 1e6).toFixed(0)} Mbit/s (the host may not reach 10 Gbit/s)\n`);
    assert.ok(r.bitPerS < 1.0e10, `${r.bitPerS} bit/s is above the shaped rate`);
  } finally {
    await ten.destroy();
  }
});

T('wan works, or fails up front naming netem and the kernel, creating nothing', async () => {
  const support = await probeLinkSupport();
  const before = (await netnsList()).filter((n) => n.startsWith('heca-'));
  if (support.wan.ok) {
    const w = await LocalTestbed.create({ link: 'wan' });
    usedIds.add(w.id);
    try {
      const q = (await run('tc', ['-n', w.src.netns, 'qdisc', 'show', 'dev', w.src.dev], { timeoutMs: 10_000 })).stdout;
      assert.match(q, 'netem');
      const p = await w.src.exec('busybox', ['ping', '-c', '3', '-W', '2', w.dst.addr], { timeoutMs: 15_000 });
      const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(p.stdout)?.[1]);
      assert.ok(avg >= 19 && avg < 40, `RTT ${avg} ms`);
    } finally {
      await w.destroy();
    }
    return;
  }
  try {
    await LocalTestbed.create({ link: 'wan', id: 'wantest' });
    assert.unreachable('wan was set up without netem');
  } catch (e) {
    assert.instance(e, HecaError);
    const err = e as HecaError;
    assert.match(err.why, 'netem');
    assert.match(err.why, release());
    assert.match(err.fix ?? '', 'lan1g');
  }
  assert.equal((await netnsList()).filter((n) => n.startsWith('heca-')), before);
  assert.not.ok(existsSync(join(OWNER_DIR, 'wantest.json')));
});

T('destroy removes both namespaces and the owner record, and is idempotent', async () => {
  const b = mustBed();
  const logFile = join(tmp, 'sleeper.log');
  const sleeper = b.dst.spawn('sleep', ['600'], { logFile });
  await sleep(200);
  assert.equal((await run('ip', ['netns', 'pids', b.dst.netns], { timeoutMs: 10_000 })).stdout.trim(), String(sleeper.pid));
  await within(Promise.all([b.destroy(), b.destroy()]), 20_000, 'destroy');
  await within(b.destroy(), 5000, 'destroy again');
  assert.equal(await ourNetns(b.id), []);
  assert.not.ok(existsSync(join(OWNER_DIR, `${b.id}.json`)));
  const ex = await within(sleeper.exited, 5000, 'the spawned process to end');
  assert.ok(ex.signal === 'SIGTERM' || ex.exitCode !== 0, JSON.stringify(ex));
  bed = undefined;
});

/* A child process that creates a testbed, prints "ready <id>", then waits, or crashes. */
const childFile = join(tmp, 'child.mts');
writeFileSync(
  childFile,
  `import { LocalTestbed } from ${JSON.stringify(join(repoRoot, 'bench', 'testbed', 'local', 'testbed.ts'))};
const bed = await LocalTestbed.create({ link: 'lan1g' });
console.log('ready ' + bed.id);
if (process.argv[2] === 'throw') setTimeout(() => { throw new Error('boom'); }, 100);
else setInterval(() => {}, 1000);
`,
);

async function startChild(mode: 'wait' | 'throw'): Promise<{ child: Spawned; id: string; log: string }> {
  const log = join(tmp, `child-${mode}-${Date.now()}.log`);
  const child = spawnLogged(process.execPath, ['--import', 'tsx', childFile, mode], { logFile: log, cwd: repoRoot });
  const end = Date.now() + 30_000;
  for (;;) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const m = /^ready (\w+)$/m.exec(text);
    if (m?.[1]) {
      usedIds.add(m[1]);
      return { child, id: m[1], log };
    }
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`child did not set up a testbed within 30 s:\n${text}`);
    }
    await sleep(100);
  }
}

T('SIGTERM to a process with a testbed destroys it before the process exits', async () => {
  const { child, id, log } = await startChild('wait');
  assert.is((await ourNetns(id)).length, 2);
  child.kill('SIGTERM');
  const ex = await within(child.exited, 30_000, 'the child to exit');
  assert.is(ex.exitCode, 143, readFileSync(log, 'utf8'));
  assert.equal(await ourNetns(id), []);
  assert.not.ok(existsSync(join(OWNER_DIR, `${id}.json`)));
});

T('an uncaught error destroys the testbed, and exits 70 (a bug)', async () => {
  const { child, id, log } = await startChild('throw');
  const ex = await within(child.exited, 30_000, 'the child to crash');
  const out = readFileSync(log, 'utf8');
  assert.is(ex.exitCode, 70, out);
  assert.match(out, 'boom');
  assert.equal(await ourNetns(id), []);
});

T('cleanupStale removes a killed run\'s testbed and keeps a live one', async () => {
  const live = await within(LocalTestbed.create({ link: 'unlimited' }), 30_000, 'create');
  usedIds.add(live.id);
  try {
    const { child, id } = await startChild('wait');
    // A process left inside the stale namespace, as an orphaned QEMU would be.
    const stray = spawnLogged('ip', ['netns', 'exec', testbedNames(id).dst, 'sleep', '600'], { logFile: join(tmp, 'stray.log') });
    child.kill('SIGKILL');
    await within(child.exited, 10_000, 'the killed child');
    assert.is((await ourNetns(id)).length, 2, 'SIGKILL leaves the testbed behind');
    assert.ok(existsSync(join(OWNER_DIR, `${id}.json`)));
    const removed = await within(LocalTestbed.cleanupStale(), 30_000, 'cleanupStale');
    assert.ok(removed.includes(id), `removed ${removed.join(',')}`);
    assert.not.ok(removed.includes(live.id));
    assert.equal(await ourNetns(id), []);
    assert.not.ok(existsSync(join(OWNER_DIR, `${id}.json`)));
    assert.is((await ourNetns(live.id)).length, 2, 'the live testbed is kept');
    await within(stray.exited, 10_000, 'the stray process to be stopped');
    assert.equal(await within(LocalTestbed.cleanupStale(), 30_000, 'cleanupStale again'), []);
  } finally {
    await live.destroy();
  }
});

T('nothing of this run is left behind', async () => {
  const left = (await netnsList()).filter((n) => [...usedIds].some((id) => n.startsWith(`heca-${id}-`)));
  assert.equal(left, []);
  for (const id of usedIds) assert.not.ok(existsSync(join(OWNER_DIR, `${id}.json`)), id);
  rmSync(tmp, { recursive: true, force: true });
});

test.after(async () => {
  await bed?.destroy();
});

test.run();
