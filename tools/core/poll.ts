/**
 * Poll until a condition holds, bounded by a deadline: the one loop behind
 * "wait until the link is up / the port listens / rxe is ACTIVE / the
 * migration finished".
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  timeoutMs: number;
  everyMs: number;
  /** The error thrown at the deadline; `elapsedMs` is how long it polled. */
  timeout: (elapsedMs: number) => Error;
}

/**
 * Call `probe` until it returns something other than undefined, and return
 * that; `probe` is always called at least once, and once more at the
 * deadline is not guaranteed. An error thrown by `probe` ends the wait.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined> | T | undefined, opts: PollOptions): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    const elapsed = Date.now() - started;
    if (elapsed >= opts.timeoutMs) throw opts.timeout(elapsed);
    await sleep(Math.min(opts.everyMs, opts.timeoutMs - elapsed));
  }
}

/** `p`'s value if it settles within `ms`, else undefined (`p` goes on; its timer does not keep the process up). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
  } finally {
    ac.abort();
  }
}
