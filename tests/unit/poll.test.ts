import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pollUntil, within } from '../../tools/core/poll.ts';

test('returns the first defined value, polling at the given pace', async () => {
  let calls = 0;
  const t0 = Date.now();
  const v = await pollUntil(() => (++calls === 3 ? 'ready' : undefined), { timeoutMs: 5000, everyMs: 20, timeout: () => new Error('late') });
  assert.is(v, 'ready');
  assert.is(calls, 3);
  assert.ok(Date.now() - t0 >= 35, 'two waits of 20 ms between three calls');
});

test('a falsy value other than undefined counts as done', async () => {
  assert.is(await pollUntil(() => 0, { timeoutMs: 100, everyMs: 10, timeout: () => new Error('late') }), 0);
  assert.is(await pollUntil(async () => false, { timeoutMs: 100, everyMs: 10, timeout: () => new Error('late') }), false);
});

test('throws the caller\'s error at the deadline, with the time it polled', async () => {
  let calls = 0;
  const t0 = Date.now();
  try {
    await pollUntil(() => void calls++, { timeoutMs: 120, everyMs: 30, timeout: (ms) => new Error(`not up after ${ms} ms`) });
    assert.unreachable('should have timed out');
  } catch (e) {
    assert.match((e as Error).message, /^not up after \d+ ms$/);
    const took = Date.now() - t0;
    assert.ok(took >= 120 && took < 1000, `took ${took} ms`);
    assert.ok(calls >= 3 && calls <= 6, `${calls} calls`);
  }
});

test('an error from the probe ends the wait at once', async () => {
  let calls = 0;
  try {
    await pollUntil(() => {
      calls++;
      throw new Error('probe broke');
    }, { timeoutMs: 5000, everyMs: 10, timeout: () => new Error('late') });
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.is((e as Error).message, 'probe broke');
    assert.is(calls, 1);
  }
});

test('within: the value of what settles in time, undefined for what does not', async () => {
  assert.is(await within(Promise.resolve(7), 1000), 7);
  const t0 = Date.now();
  assert.is(await within(new Promise<number>(() => undefined), 50), undefined);
  assert.ok(Date.now() - t0 < 1000, 'gave up at its bound');
  const err = await within(Promise.reject(new Error('no')), 1000).then(() => undefined, (e: Error) => e);
  assert.is(err?.message, 'no', 'a rejection is passed on');
});

test.run();
