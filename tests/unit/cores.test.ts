/**
 * Core dumps of the nested testbed (bench/testbed/nested/cores.ts): the file
 * l1-init's core_pattern names, and the line a run's reason gets from gdb's
 * reading of it. The fixture is gdb's real output for a real core: a thread
 * named "mig/dst/rdmabg" that called a null function pointer
 * (tests/fixtures/gdb-core-null-call.txt).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { coreDumpOf, coreSummary, coresDir, findCore } from '../../bench/testbed/nested/cores.ts';
import { repoRoot } from '../../tools/core/paths.ts';

const gdbText = readFileSync(join(repoRoot, 'tests', 'fixtures', 'gdb-core-null-call.txt'), 'utf8');

test('the summary names the signal, the thread, its LWP and its top frames, the crashing one first', () => {
  const s = coreSummary(gdbText, 'mig/dst/rdmabg');
  assert.ok(s.startsWith('SIGSEGV in thread "mig/dst/rdmabg" (LWP 4293): #0 0x0000000000000000 in ?? () <- #1 0x000055555555516e in pull_worker (arg=0x0) at crash.c:10'), s);
  // The other thread's frames (main, pthread_join) are not the crash's.
  assert.not.match(s, /main \(\)|futex/);
  assert.is(s.split(' <- ').length, 3);
});

test('a process of one thread: its frames once, not the frame gdb shows on loading the core again', () => {
  const one = readFileSync(join(repoRoot, 'tests', 'fixtures', 'gdb-core-single-thread.txt'), 'utf8');
  assert.is(coreSummary(one, 'one'), 'SIGSEGV in thread "one" (LWP 15002): #0 0x0000000000000000 in ?? () <- #1 0x0000555555555136 in main () at one.c:3');
});

test('without a thread name, the LWP; without gdb\'s signal line or markers, said so', () => {
  assert.match(coreSummary(gdbText), /^SIGSEGV in LWP 4293: #0 /);
  assert.is(coreSummary('#0  0x1 in f ()\n'), 'an unknown signal in an unknown thread');
});

test('the core of a host\'s pid is found by l1-init\'s name, the newest if the pid came back, "!" read as "/"', () => {
  const shared = mkdtempSync(join(tmpdir(), 'heca-cores-'));
  assert.is(findCore(shared, 'heca-x-b', 285), undefined, 'no cores directory yet');
  mkdirSync(coresDir(shared));
  for (const n of ['core.heca-x-b.285.1700000000.qemu-system-x86', 'core.heca-x-b.285.1700000100.mig!dst!rdmabg', 'core.heca-x-b.2851.1700000200.other', 'core.heca-x-a.285.1700000300.other', 'core.heca-x-b.285.notatime.x']) {
    writeFileSync(join(coresDir(shared), n), '');
  }
  const c = findCore(shared, 'heca-x-b', 285);
  assert.equal(c, { file: join(coresDir(shared), 'core.heca-x-b.285.1700000100.mig!dst!rdmabg'), thread: 'mig/dst/rdmabg' });
  assert.is(findCore(shared, 'heca-x-b', 28), undefined);
  assert.is(findCore(shared, 'heca-x-a', 285)?.thread, 'other');
});

test('a core gdb cannot read is still reported, with gdb\'s complaint', async () => {
  const shared = mkdtempSync(join(tmpdir(), 'heca-cores-'));
  mkdirSync(coresDir(shared));
  writeFileSync(join(coresDir(shared), 'core.h.7.1700000000.vcpu'), 'not an ELF core');
  const d = await coreDumpOf(shared, 'dst', 'h', 7, '/bin/true');
  assert.ok(d);
  assert.is(d.role, 'dst');
  assert.match(d.summary, /^a core from thread "vcpu" that gdb could not read \(/);
  assert.is(await coreDumpOf(shared, 'dst', 'h', 8, '/bin/true'), undefined);
});

test.run();
