/**
 * QEMU's test programs (tools/build/qtest.ts): the qtests' firmware wrapper
 * and the verdict on a GLib test program's TAP output, where a skip is a
 * failure. The outputs are GLib's (check-qdict, migration-test) as they print.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../tools/core/exec.ts';
import { parseTap, qtestWrapperText, tapProblems, writeQtestWrapper } from '../../tools/build/qtest.ts';
import { errorOf } from '../helpers.ts';

const PASS = `# random seed: R02Se4305ed88c5ad147b3216b1f02e2e006
1..2
# Start of public tests
ok 1 /public/new
ok 2 /public/put_obj
# End of public tests
`;

test('a run that exited 0 with only "ok" lines passes', () => {
  assert.equal(tapProblems({ exitCode: 0, out: PASS }), []);
  assert.equal(tapProblems({ exitCode: 0, out: PASS }, '/public/new'), []);
  assert.equal(parseTap(PASS).tests.map((t) => [t.ok, t.num, t.name]), [[true, 1, '/public/new'], [true, 2, '/public/put_obj']]);
});

test('a non-zero exit, a "not ok", a missing expected test fail, each named', () => {
  assert.equal(tapProblems({ exitCode: 1, out: PASS }), ['it exited with status 1']);
  assert.equal(tapProblems({ exitCode: undefined, out: PASS }), ['it did not finish']);
  const bad = `${PASS}not ok 3 /public/get\n`;
  assert.equal(tapProblems({ exitCode: 1, out: bad }), ['it exited with status 1', 'not ok 3 /public/get']);
  assert.equal(tapProblems({ exitCode: 0, out: PASS }, '/public/gone'), ['no "ok" line for /public/gone']);
  assert.equal(tapProblems({ exitCode: 0, out: PASS }, '/public'), ['no "ok" line for /public'], 'a prefix is not the test');
});

test('a skip is a failure: a skipped test, a skipped plan, a "# SKIP" anywhere', () => {
  const one = `1..2\nok 1 /x86_64/migration/postcopy/rdma/plain # SKIP QTEST_RDMA_ADDR is not set\nok 2 /x86_64/migration/postcopy/rdma/zero\n`;
  assert.equal(tapProblems({ exitCode: 0, out: one }), ['skipped: /x86_64/migration/postcopy/rdma/plain (QTEST_RDMA_ADDR is not set)']);
  assert.equal(parseTap(one).tests[0]!.directive, { kind: 'SKIP', reason: 'QTEST_RDMA_ADDR is not set' });
  const all = `# random seed: x\n1..1\nok 1 /x86_64/migration/postcopy/rdma/plain # SKIP\n`;
  assert.equal(tapProblems({ exitCode: 0, out: all }), ['skipped: /x86_64/migration/postcopy/rdma/plain (no reason given)', 'no test passed (no "ok" line without a directive)']);
  assert.equal(tapProblems({ exitCode: 0, out: '1..0 # SKIP no RDMA device\n' }), ['skipped as a whole (1..0 # SKIP no RDMA device)', 'no test passed (no "ok" line without a directive)']);
  assert.equal(tapProblems({ exitCode: 0, out: `${PASS}# SKIP something odd\n` }), ['a skip: # SKIP something odd']);
});

test('output with no TAP test line (a crash before the first test) fails', () => {
  const crash = '**\nERROR:../tests/qtest/libqtest.c:550:qtest_connect: assertion failed: (s->fd >= 0 && s->qmp_fd >= 0)\n';
  assert.equal(tapProblems({ exitCode: 134, out: crash }), ['it exited with status 134', 'no test passed (no "ok" line without a directive)']);
});

test('indented subtest lines and "ok N - name" are read too', () => {
  assert.equal(parseTap('    ok 1 - /a/b\n    not ok 2 /a/c\n').tests.map((t) => [t.ok, t.name]), [[true, '/a/b'], [false, '/a/c']]);
});

test('the wrapper runs the build\'s emulator by its real path, with -L for each firmware directory', async () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-qtest-'));
  const real = join(d, 'real-build');
  mkdirSync(real);
  const emu = join(real, 'qemu-system-x86_64');
  writeFileSync(emu, '#!/bin/sh\necho "$0" "$@"\n');
  chmodSync(emu, 0o755);
  symlinkSync(real, join(d, 'linked-build'));
  const wrapper = join(d, 'qtest-bin', 'qemu-system-x86_64');
  assert.is(writeQtestWrapper(join(d, 'linked-build'), wrapper), wrapper);
  const text = readFileSync(wrapper, 'utf8');
  assert.match(text, `exec ${emu} `, 'the real path, not the symlink it was found through');
  assert.not.match(text, 'linked-build');
  const r = await run(wrapper, ['-machine', 'none'], { timeoutMs: 10_000 });
  assert.match(r.stdout.trim(), new RegExp(`^${emu} (-L \\S+ )*-machine none$`));
  // The same text again: the file is left as it is (a qtest may be running it).
  const ino = statSync(wrapper).ino;
  writeQtestWrapper(join(d, 'linked-build'), wrapper);
  assert.is(statSync(wrapper).ino, ino);
  assert.not.ok(existsSync(`${wrapper}.tmp-${process.pid}`));
});

test('the wrapper quotes paths for the shell', () => {
  assert.is(qtestWrapperText('/a b/qemu-system-x86_64', ['/fw\'s']).split('\n')[2], `exec '/a b/qemu-system-x86_64' -L '/fw'\\''s' "$@"`);
});

test('a build directory without the emulator is refused, with the build command', () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-qtest-'));
  const e = errorOf(() => writeQtestWrapper(d, join(d, 'w', 'qemu-system-x86_64')));
  assert.match(e.message, `no qemu-system-x86_64 in the QEMU build directory ${d}`);
  assert.match(e.fix ?? '', 'make build');
});

test.run();
