import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestChannel, parseGuestLine } from '../../bench/guest/channel.ts';
import { guestAppend, parseAptShow, parseKernelDepends } from '../../bench/guest/image.ts';
import { errorOf, rejectionOf as rejection } from '../helpers.ts';



test('guestAppend: console, init and every workload parameter, with defaults', () => {
  const a = guestAppend({ arena_mib: 128 });
  const words = a.split(' ');
  for (const w of ['console=ttyS0', 'quiet', 'rdinit=/init', 'heca.arena_mib=128', 'heca.ws_mib=128', 'heca.rate=0', 'heca.pattern=random', 'heca.interval_ms=100', 'heca.seed=1']) {
    assert.ok(words.includes(w), `${w} in ${a}`);
  }
  const b = guestAppend({ arena_mib: 400, ws_mib: 100, rate: 2000, pattern: 'hotcold', interval_ms: 50, seed: 7 }).split(' ');
  for (const w of ['heca.arena_mib=400', 'heca.ws_mib=100', 'heca.rate=2000', 'heca.pattern=hotcold', 'heca.interval_ms=50', 'heca.seed=7']) assert.ok(b.includes(w), w);
  assert.ok(guestAppend({ arena_mib: 8, ws_mib: 8 }).includes('heca.ws_mib=8'), 'ws == arena is fine');
  assert.not.match(a, 'heca.threads', 'one writer: the command line as before threads');
  assert.ok(guestAppend({ arena_mib: 8, threads: 4 }).split(' ').includes('heca.threads=4'));
  assert.match(errorOf(() => guestAppend({ arena_mib: 8, threads: 0 })).message, 'threads=0');
  assert.match(errorOf(() => guestAppend({ arena_mib: 8, threads: 65 })).message, 'threads=65');
});

test('guestAppend rejects what the workload would refuse', () => {
  const ws = errorOf(() => guestAppend({ arena_mib: 64, ws_mib: 65 }));
  assert.match(ws.message, 'working set 65 MiB is larger than its arena 64 MiB');
  assert.ok(ws.fix);
  assert.match(errorOf(() => guestAppend({ arena_mib: 0 })).message, 'arena_mib=0');
  assert.match(errorOf(() => guestAppend({ arena_mib: 1.5 })).message, 'arena_mib=1.5');
  assert.match(errorOf(() => guestAppend({ arena_mib: 64, ws_mib: 0 })).message, 'ws_mib=0');
  assert.match(errorOf(() => guestAppend({ arena_mib: 64, rate: -1 })).message, 'rate=-1');
  assert.match(errorOf(() => guestAppend({ arena_mib: 64, interval_ms: 0 })).message, 'interval_ms=0');
  assert.match(errorOf(() => guestAppend({ arena_mib: 64, rate: Number.NaN })).message, 'rate=NaN');
  const pat = errorOf(() => guestAppend({ arena_mib: 64, pattern: 'zigzag' as 'random' }));
  assert.match(pat.message, 'zigzag');
  assert.match(pat.why, 'sequential, random, hotcold');
});

test('the real kernel package is read from apt-cache depends', () => {
  assert.is(parseKernelDepends('linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n'), 'linux-image-6.1.0-56-cloud-amd64');
  assert.is(parseKernelDepends('linux-image-cloud-amd64\n |Depends: linux-image-6.12.95+bpo-cloud-amd64\n  Depends: linux-image-6.12.95+bpo-cloud-amd64-unsigned\n'), 'linux-image-6.12.95+bpo-cloud-amd64');
  assert.is(parseKernelDepends('linux-image-cloud-amd64\n  Depends: initramfs-tools\n'), undefined);
  assert.is(parseKernelDepends(''), undefined);
});

test('apt-cache show: the first stanza only', () => {
  const f = parseAptShow('Package: linux-image-6.1.0-56-cloud-amd64\nVersion: 6.1.192-2\nSHA256: abc\nDescription: x\n continued\n\nPackage: other\nVersion: 1\n');
  assert.is(f.Package, 'linux-image-6.1.0-56-cloud-amd64');
  assert.is(f.Version, '6.1.192-2');
  assert.is(f.SHA256, 'abc');
});

test('guest lines: JSON objects with a string t; noise is skipped', () => {
  assert.equal(parseGuestLine('{"t":"tick","seq":1,"ops":5}'), { t: 'tick', seq: 1, ops: 5 });
  assert.equal(parseGuestLine('\u0000\u00ff{"t":"bye"}\r'), { t: 'bye' }, 'noise before the object');
  assert.is(parseGuestLine('"ms":12.5,"ops":3}'), undefined, 'the tail of a cut line');
  assert.is(parseGuestLine('{"t":"tick","seq":'), undefined, 'the head of a cut line');
  assert.is(parseGuestLine('[1,2]'), undefined);
  assert.is(parseGuestLine('{"x":1}'), undefined);
  assert.is(parseGuestLine('{"t":3}'), undefined);
  assert.is(parseGuestLine('[    2.5] serial8250: too much work'), undefined);
  assert.is(parseGuestLine(''), undefined);
});

test('the channel over a unix socket: split lines, garbage, waits, replies, close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'heca-chan-'));
  const path = join(dir, 'ctl.sock');
  let peer: Socket | undefined;
  const received: string[] = [];
  const server = createServer((s) => {
    peer = s;
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      for (const cmd of d.split('\n').filter(Boolean)) {
        received.push(cmd);
        if (cmd === 'check') s.write('{"t":"check","pages_checked":10,"bad_pages":1,"first_bad":[3],"ms":1.5}\n');
        else if (cmd === 'where 2') s.write('{"t":"where","page":2,"gpa":8192}\n');
        else s.write(`{"t":"error","msg":"unknown command: ${cmd}"}\n`);
      }
    });
  });
  // The channel retries until the socket exists.
  const connecting = GuestChannel.connect(path, { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 200));
  await new Promise<void>((r) => server.listen(path, r));
  const ch = await connecting;
  try {
    while (!peer) await new Promise((r) => setTimeout(r, 10));
    const p = peer;
    p.write('"ops":3,"max_stall_us":1}\n{"t":"rea');
    await new Promise((r) => setTimeout(r, 30));
    p.write('dy","pages":10}\r\nkernel noise\n{"t":"tick","seq":0,"ops":1}\n{"t":"tick","seq":1,"ops":2}\n');
    const ready = await ch.waitFor('ready', { timeoutMs: 2000 });
    assert.is(ready.pages, 10);
    const t1 = await ch.waitFor('tick', { timeoutMs: 2000, predicate: (t) => t.seq === 1 });
    assert.is(t1.ops, 2);
    assert.is(ch.garbageLines, 2);
    assert.is(ch.messages.length, 3);
    assert.ok(ch.messages.every((m) => m.hostTime > 0 && m.hostMono > 0));
    // `since` skips what already arrived.
    const next = ch.waitFor('tick', { timeoutMs: 2000, since: ch.messages.length });
    p.write('{"t":"tick","seq":2,"ops":0}\n');
    assert.is((await next).seq, 2);
    const late = await rejection(ch.waitFor('bye', { timeoutMs: 100 }));
    assert.match(late.message, 'did not send a "bye" message within 0.1 s');
    assert.equal(await ch.check({ timeoutMs: 2000 }), { pages_checked: 10, bad_pages: 1, first_bad: [3], ms: 1.5 });
    assert.is(await ch.where(2), 8192);
    const refused = await rejection(ch.where(9));
    assert.match(refused.why, 'unknown command: where 9');
    assert.throws(() => ch.send('check\nquit'), /line break/);
    assert.equal(received, ['check', 'where 2', 'where 9']);
    const pending = ch.waitFor('bye', { timeoutMs: 5000 });
    p.destroy();
    const closed = await rejection(pending);
    assert.match(closed.message, 'closed while waiting');
    assert.ok(ch.closed);
  } finally {
    ch.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a fatal error from the workload ends the wait for ready', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'heca-chan-'));
  const path = join(dir, 'ctl.sock');
  const server = createServer((s) => s.write('{"t":"error","fatal":true,"msg":"heca.ws_mib=9 must be 1..arena_mib (8)"}\n'));
  await new Promise<void>((r) => server.listen(path, r));
  const ch = await GuestChannel.connect(path, { timeoutMs: 2000 });
  try {
    const e = await rejection(ch.waitFor('ready', { timeoutMs: 5000 }));
    assert.match(e.why, 'heca.ws_mib=9');
    // And again once it is in the record.
    const again = await rejection(ch.waitFor('ready', { timeoutMs: 5000 }));
    assert.match(again.why, 'heca.ws_mib=9');
  } finally {
    ch.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a socket path too long for unix sockets is refused clearly', async () => {
  const e = await rejection(GuestChannel.connect(`/tmp/${'x'.repeat(120)}/ctl.sock`, { timeoutMs: 100 }));
  assert.match(e.message, 'too long');
});

test.run();
