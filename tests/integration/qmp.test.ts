/**
 * The QMP client against a real QEMU (the one make build installs): greeting,
 * negotiation, concurrent commands, typed errors, events, timeouts, and what
 * happens when QEMU stops answering or dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firmwareDirs, qemuBinary } from '../../tools/core/paths.ts';
import { QmpClient } from '../../tools/qmp/client.ts';
import { QmpCommandError, QmpConnectError, QmpDisconnectedError, QmpError, QmpNegotiationError, QmpTimeoutError } from '../../tools/qmp/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'heca-qmp-'));
const procs: ChildProcess[] = [];
let n = 0;

function startQemu(machine = 'none'): { proc: ChildProcess; sock: string; exited: Promise<void> } {
  const sock = join(dir, `qmp-${n++}.sock`);
  const proc = spawn(qemuBinary(), ['-machine', machine, '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`,
    ...firmwareDirs.filter((d) => existsSync(d)).flatMap((d) => ['-L', d])], { stdio: ['ignore', 'inherit', 'inherit'] });
  procs.push(proc);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, sock, exited };
}

async function expectReject<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T, what: string): Promise<T> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, cls, `${what}: got ${String(e)}`);
    assert.instance(e, QmpError);
    return e as T;
  }
  assert.unreachable(`${what} resolved`);
  throw new Error('unreachable');
}

test.before(() => {
  assert.ok(existsSync(qemuBinary()), `QEMU not built at ${qemuBinary()}: run make build`);
});

test.after(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('out of band: negotiated on request, exec-oob beside ordinary commands; refused when not negotiated', async () => {
  const q = startQemu();
  const plain = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    assert.not.ok(plain.oobEnabled);
    const e = await expectReject(plain.executeOob('migrate-recover', { uri: 'tcp:127.0.0.1:1' }), QmpNegotiationError, 'oob without negotiation');
    assert.match(e.why, 'connect with { oob: true }');
  } finally {
    await plain.close();
  }
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000, oob: true });
  try {
    assert.ok(c.oobEnabled, `QEMU offers ${c.greeting.QMP.capabilities.join(', ')}`);
    // Both kinds on one connection: each reply finds its command.
    const [status, r] = await Promise.all([c.execute('query-status'), c.executeOob('migrate-recover', { uri: 'tcp:127.0.0.1:1' }).then(() => undefined, (e: unknown) => e)]);
    assert.is(status.status, 'prelaunch');
    assert.instance(r, QmpCommandError, String(r));
    // migrate-recover is allowed out of band; outside a paused incoming migration QEMU refuses it, saying why.
    assert.match((r as QmpCommandError).desc, /recover|incoming|postcopy/i);
  } finally {
    await c.close();
  }
});

test('greeting, negotiation and concurrent commands matched by id', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    assert.match(c.version, /^10\.0\.\d+$/);
    assert.ok(Array.isArray(c.greeting.QMP.capabilities));
    const [ver, status, caps, mig] = await Promise.all([
      c.execute('query-version'),
      c.execute('query-status'),
      c.execute('query-migrate-capabilities'),
      c.execute('query-migrate'),
    ]);
    assert.is(`${ver.qemu.major}.${ver.qemu.minor}.${ver.qemu.micro}`, c.version);
    assert.is(status.running, false, '-S: not running');
    assert.ok(caps.some((x) => x.capability === 'postcopy-ram'));
    assert.equal(mig, {}, 'no migration yet');
  } finally {
    await c.close();
  }
});

test('a reply spanning many socket chunks is framed right, among concurrent small ones', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    const [schema, st, ver] = await Promise.all([c.executeRaw('query-qmp-schema'), c.execute('query-status'), c.execute('query-version')]);
    assert.ok(Array.isArray(schema) && schema.length > 500, 'the whole schema');
    assert.ok(JSON.stringify(schema).length > 100_000, 'bigger than one read');
    assert.ok((schema as { name: string }[]).some((e) => e.name === 'query-migrate'));
    assert.is(st.status, 'prelaunch');
    assert.is(ver.qemu.major, 10);
  } finally {
    await c.close();
  }
});

test('command errors carry class and description; the client goes on working', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    const nf = await expectReject(c.executeRaw('heca-no-such-command'), QmpCommandError, 'unknown command');
    assert.is(nf.errorClass, 'CommandNotFound');
    assert.is(nf.command, 'heca-no-such-command');
    const ge = await expectReject(c.execute('migrate-set-parameters', { 'downtime-limit': 999_999_999 }), QmpCommandError, 'bad parameter');
    assert.is(ge.errorClass, 'GenericError');
    assert.match(ge.desc, /downtime/i);
    assert.match(ge.message, 'migrate-set-parameters');
    const st = await c.execute('query-status');
    assert.is(st.status, 'prelaunch');
  } finally {
    await c.close();
  }
});

test('events reach listeners and waitEvent; waitEvent times out', async () => {
  const q = startQemu('pc');
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    const seen: string[] = [];
    const offAll = c.on('*', (e) => seen.push(e.event));
    const off = c.on('RESUME', () => {
      throw new Error('a throwing listener must not break the reader');
    });
    const resumed = c.waitEvent('RESUME', { timeoutMs: 10_000 });
    await c.execute('cont');
    const r = await resumed;
    assert.is(r.event, 'RESUME');
    assert.ok(r.timestamp.seconds > 0);
    off();
    const stopped = c.waitEvent('STOP', { timeoutMs: 10_000 });
    await c.execute('stop');
    await stopped;
    assert.equal(seen.filter((e) => e === 'RESUME' || e === 'STOP'), ['RESUME', 'STOP']);
    offAll();
    assert.ok(c.events.some((e) => e.event === 'STOP'));
    const t = await expectReject(c.waitEvent('SHUTDOWN', { timeoutMs: 300 }), QmpTimeoutError, 'waitEvent');
    assert.is(t.command, 'event SHUTDOWN');
  } finally {
    await c.close();
  }
});

test('a stopped QEMU times a command out, and the client recovers when it continues', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    q.proc.kill('SIGSTOP');
    const t0 = Date.now();
    const t = await expectReject(c.execute('query-status', undefined, { timeoutMs: 500 }), QmpTimeoutError, 'stopped QEMU');
    assert.ok(Date.now() - t0 < 2000, 'timed out in time');
    assert.is(t.command, 'query-status');
    assert.is(t.timeoutMs, 500);
    q.proc.kill('SIGCONT');
    // The late reply to the timed-out command is dropped, not given to the next one.
    const v = await c.execute('query-version', undefined, { timeoutMs: 10_000 });
    assert.is(v.qemu.major, 10);
    assert.is((await c.execute('query-status')).status, 'prelaunch');
  } finally {
    q.proc.kill('SIGCONT');
    await c.close();
  }
});

test('a killed QEMU disconnects the pending command and event wait', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    q.proc.kill('SIGSTOP');
    const pending = c.execute('query-migrate');
    const waiting = c.waitEvent('STOP', { timeoutMs: 30_000 });
    q.proc.kill('SIGKILL');
    const d = await expectReject(pending, QmpDisconnectedError, 'killed QEMU');
    assert.is(d.command, 'query-migrate');
    assert.match(d.message, 'query-migrate');
    await expectReject(waiting, QmpDisconnectedError, 'event wait on a killed QEMU');
    await c.closed;
    assert.ok(c.isClosed);
    await expectReject(c.execute('query-status'), QmpDisconnectedError, 'command after close');
  } finally {
    await c.close();
  }
});

test('close() rejects what is pending and is idempotent', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    q.proc.kill('SIGSTOP');
    const pending = c.execute('query-status');
    const waiting = c.waitEvent('RESUME', { timeoutMs: 30_000 });
    await Promise.all([c.close(), c.close()]);
    const d = await expectReject(pending, QmpDisconnectedError, 'command pending at close');
    assert.is(d.command, 'query-status');
    await expectReject(waiting, QmpDisconnectedError, 'event wait pending at close');
    assert.ok(c.isClosed);
    await c.close();
  } finally {
    q.proc.kill('SIGCONT');
  }
});

test('connect: missing socket fails fast; retrying waits for a late QEMU', async () => {
  const missing = join(dir, 'nothing.sock');
  const t0 = Date.now();
  const e = await expectReject(QmpClient.connect(missing), QmpConnectError, 'missing socket');
  assert.is(e.code, 'ENOENT');
  assert.ok(Date.now() - t0 < 2000);
  await expectReject(QmpClient.connect(missing, { retryUntilMs: 500 }), QmpConnectError, 'missing socket with retries');
  // QEMU starts 1 s after the client begins to try.
  const sock = join(dir, `qmp-${n}.sock`);
  setTimeout(() => startQemu(), 1000);
  const c = await QmpClient.connect(sock, { retryUntilMs: 30_000 });
  assert.match(c.version, /^10\./);
  await c.close();
});

test('a peer that does not speak QMP fails negotiation within the timeout', async () => {
  const silentPath = join(dir, 'silent.sock');
  const garbagePath = join(dir, 'garbage.sock');
  const jsonPath = join(dir, 'json.sock');
  const servers: Server[] = [
    createServer(() => undefined).listen(silentPath),
    createServer((s) => s.write('login: \r\n')).listen(garbagePath),
    createServer((s) => s.write('{"QMP": {"capabilities": []}}\n')).listen(jsonPath),
  ];
  try {
    const t0 = Date.now();
    const t = await expectReject(QmpClient.connect(silentPath, { timeoutMs: 400 }), QmpTimeoutError, 'silent peer');
    assert.ok(Date.now() - t0 < 1000, `gave up after ${Date.now() - t0} ms`);
    assert.is(t.command, 'greeting');
    assert.is(t.timeoutMs, 400);
    const g = await expectReject(QmpClient.connect(garbagePath, { timeoutMs: 2000 }), QmpNegotiationError, 'garbage peer');
    assert.match(g.why, 'not JSON');
    const j = await expectReject(QmpClient.connect(jsonPath, { timeoutMs: 2000 }), QmpNegotiationError, 'JSON that is no greeting');
    assert.match(j.why, 'not a QMP greeting');
  } finally {
    for (const s of servers) s.close();
  }
});

test('QEMU serves one QMP client per socket: a second one gets no greeting', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  try {
    const t0 = Date.now();
    const t = await expectReject(QmpClient.connect(q.sock, { timeoutMs: 500 }), QmpTimeoutError, 'second client');
    assert.ok(Date.now() - t0 < 1500, `gave up after ${Date.now() - t0} ms`);
    assert.is(t.command, 'greeting');
    assert.match(t.why, 'another client');
    assert.is((await c.execute('query-status')).status, 'prelaunch', 'the first client is unaffected');
  } finally {
    await c.close();
  }
});

test('HECA_QMP_TRACE=1 logs every line sent and received', async () => {
  const q = startQemu();
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.env.HECA_QMP_TRACE = '1';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
    await c.execute('query-status');
    await c.close();
  } finally {
    process.stderr.write = write;
    delete process.env.HECA_QMP_TRACE;
  }
  const text = lines.join('');
  assert.match(text, /< \{"QMP": /, 'the greeting');
  assert.match(text, /> \{"execute":"qmp_capabilities","id":"heca-\d+"\}/, 'negotiation, with an id');
  assert.match(text, /> \{"execute":"query-status","id":"heca-\d+"\}/);
  assert.match(text, /< \{"return": \{"status": "prelaunch"/);
});

test('quit resolves and the connection closes; close() is idempotent', async () => {
  const q = startQemu();
  const c = await QmpClient.connect(q.sock, { retryUntilMs: 20_000 });
  await c.execute('quit');
  await c.closed;
  await q.exited;
  await c.close();
  await c.close();
  assert.ok(c.isClosed);
});

test.run();
