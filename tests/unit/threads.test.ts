/**
 * The thread report a failed run leaves (bench/testbed/threads.ts): one
 * line per thread with its name and state, read from /proc, for a real
 * process with several threads (this one: node has its worker threads).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { localThreads } from '../../bench/testbed/threads.ts';

test('every thread of a process is listed with its name and state', async () => {
  const text = await localThreads(process.pid);
  const heads = text.split('\n').filter((l) => l && !l.startsWith(' '));
  const tids = readdirSync(`/proc/${process.pid}/task`);
  assert.ok(tids.length > 1, 'node runs several threads');
  // Threads may come and go between the two reads; the main one is always there.
  assert.ok(Math.abs(heads.length - tids.length) <= 2, `${heads.length} lines for ${tids.length} threads:\n${text}`);
  const main = heads.find((l) => l.startsWith(`${process.pid} `));
  assert.ok(main, `no line for the main thread:\n${text}`);
  assert.match(main!, /^\d+ \S.*: [RSDTtZXI] \(\w[\w ]*\) wchan=\S* cpu=\d+\+\d+$/);
});

test('a process that is gone is said to be gone, not an error', async () => {
  assert.match(await localThreads(2 ** 22 + 17), /^no process \d+/);
});

test.run();
