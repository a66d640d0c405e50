/**
 * bench/testbed/lease.ts, the owner records and stale reaping both testbeds
 * use: a record is written before anything is created, names the owner and
 * what it holds, registers the teardown for Ctrl-C, and is reaped once its
 * owner is gone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pendingCleanups } from '../../bench/testbed/cleanup.ts';
import { procStart } from '../../bench/testbed/host.ts';
import { ownerAlive, reapStale, takeLease, type LeaseBook, type OwnerRecord } from '../../bench/testbed/lease.ts';

interface Holds {
  netns: string[];
}

const book = (): LeaseBook => ({ dir: mkdtempSync(join(tmpdir(), 'heca-lease-')), kind: 'test bed' });
const read = (b: LeaseBook, id: string) => JSON.parse(readFileSync(join(b.dir, `${id}.json`), 'utf8')) as OwnerRecord<Holds>;

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

test('takeLease records owner and holdings, registers the teardown; update and release', () => {
  const b = book();
  const lease = takeLease<Holds>(b, 'abc1', { netns: ['heca-abc1-src'] }, () => undefined);
  const rec = read(b, 'abc1');
  assert.is(rec.pid, process.pid);
  assert.is(rec.pid_start, procStart(process.pid));
  assert.equal(rec.netns, ['heca-abc1-src']);
  assert.ok(pendingCleanups().includes('test bed abc1'), 'Ctrl-C would tear it down');
  lease.update({ netns: ['heca-abc1-src', 'heca-abc1-dst'] });
  assert.equal(read(b, 'abc1').netns, ['heca-abc1-src', 'heca-abc1-dst']);
  lease.release();
  assert.not.ok(existsSync(join(b.dir, 'abc1.json')));
  assert.not.ok(pendingCleanups().includes('test bed abc1'));
  lease.release();
  assert.throws(() => takeLease(b, 'Bad/Id', { netns: [] }, () => undefined), /lease id/);
});

test('ownerAlive: this process yes; a dead pid or a reused one (other start time) no', () => {
  assert.ok(ownerAlive({ pid: process.pid, pid_start: procStart(process.pid) }));
  assert.not.ok(ownerAlive({ pid: deadPid(), pid_start: null }));
  assert.not.ok(ownerAlive({ pid: process.pid, pid_start: '1' }), 'same pid, another process');
});

test('reapStale hands stale and unreadable records to the reaper, leaves live ones, keeps one whose reaper failed', async () => {
  const b = book();
  const live = takeLease<Holds>(b, 'live', { netns: ['heca-live-src'] }, () => undefined);
  const stale: OwnerRecord<Holds> = { id: 'gone', pid: deadPid(), pid_start: '1', created_at: '', netns: ['heca-gone-src'] };
  writeFileSync(join(b.dir, 'gone.json'), JSON.stringify(stale));
  writeFileSync(join(b.dir, 'junk.json'), '{"pid": ');
  writeFileSync(join(b.dir, 'stuck.json'), JSON.stringify({ ...stale, id: 'stuck' }));
  const seen: string[] = [];
  const reaped = await reapStale<Holds>(b, async (id, rec) => {
    if (id === 'stuck') throw new Error('cannot remove it yet');
    seen.push(`${id}:${rec?.netns.join(',') ?? 'unreadable'}`);
  }).catch((e: Error) => e);
  assert.instance(reaped, Error, 'the failing reaper is reported');
  assert.equal(seen.sort(), ['gone:heca-gone-src', 'junk:unreadable']);
  assert.not.ok(existsSync(join(b.dir, 'gone.json')));
  assert.not.ok(existsSync(join(b.dir, 'junk.json')));
  assert.ok(existsSync(join(b.dir, 'stuck.json')), 'kept for the next try');
  assert.ok(existsSync(join(b.dir, 'live.json')), 'a live owner keeps its record');
  assert.equal(await reapStale<Holds>(b, async () => undefined), ['stuck']);
  live.release();
});

test.run();
