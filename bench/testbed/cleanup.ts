/**
 * Process-wide cleanup of things that outlive a process if left alone (network
 * namespaces, QEMUs): `onCleanup(fn)` registers, the returned function
 * unregisters once the owner has cleaned up itself (the normal path).
 *
 * Whatever is still registered runs (last registered first, each once, errors
 * only warned about) when:
 *   - SIGINT, SIGTERM or SIGHUP arrives: the async cleanups finish, then the
 *     process exits 128+signal. A second signal during the cleanup exits at once.
 *   - an exception escapes (or a rejection goes unhandled): printed, cleaned
 *     up, exit 1 for a HecaError, 70 for anything else (a bug), like cli.ts.
 *   - the event loop drains (beforeExit).
 * `process.exit()` allows no async work: remaining cleanups are then only
 * reported; owners should record enough for a later run to remove leftovers
 * (LocalTestbed.cleanupStale() does).
 */
import { constants } from 'node:os';
import { HecaError } from '../../tools/core/errors.ts';
import { info, warn } from '../../tools/core/log.ts';

export type CleanupFn = () => void | Promise<void>;

interface Entry {
  fn: CleanupFn;
  label: string;
}

const entries: Entry[] = [];
let installed = false;
let signalled: NodeJS.Signals | undefined;

/** Total time all cleanups get on a signal or crash before the process exits anyway. */
export const CLEANUP_TIMEOUT_MS = 30_000;

/** Register `fn` to run if the process ends before it is unregistered. Returns the unregister function. */
export function onCleanup(fn: CleanupFn, label = 'cleanup'): () => void {
  install();
  const e: Entry = { fn, label };
  entries.push(e);
  return () => {
    const i = entries.indexOf(e);
    if (i >= 0) entries.splice(i, 1);
  };
}

/** Whether a signal arrived and the process is cleaning up before it exits: start nothing new. */
export function cleaningUp(): boolean {
  return signalled !== undefined;
}

/** Labels of what is still registered, oldest first. */
export function pendingCleanups(): string[] {
  return entries.map((e) => e.label);
}

/**
 * Run and unregister everything registered, newest first, one at a time. A
 * cleanup that throws is warned about and the rest still run. Bounded by
 * `timeoutMs` overall: what has not finished by then is abandoned.
 */
export async function runCleanups(timeoutMs = CLEANUP_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((res) => {
    timer = setTimeout(() => res('timeout'), timeoutMs);
  });
  const all = (async () => {
    for (let e = entries.pop(); e; e = entries.pop()) {
      try {
        await e.fn();
      } catch (err) {
        warn(`cleanup "${e.label}" failed: ${err instanceof HecaError ? err.format() : String((err as Error)?.message ?? err)}`);
      }
    }
  })();
  const r = await Promise.race([all.then(() => 'done' as const), deadline]);
  clearTimeout(timer);
  if (r === 'timeout') warn(`cleanup did not finish within ${timeoutMs / 1000} s; left: ${pendingCleanups().join(', ') || 'the one in progress'}`);
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void onSignal(sig));
  process.on('uncaughtException', (err) => void onCrash(err));
  process.on('beforeExit', () => {
    if (entries.length) void runCleanups();
  });
  process.on('exit', () => {
    if (entries.length) warn(`exiting without cleaning up: ${pendingCleanups().join(', ')} (a later run removes the leftovers)`);
  });
}

async function onSignal(sig: NodeJS.Signals): Promise<void> {
  const code = 128 + (constants.signals[sig] ?? 0);
  if (signalled) {
    warn(`${sig} again: exiting without finishing the cleanup`);
    process.exit(code);
  }
  signalled = sig;
  if (entries.length) info(`${sig}: cleaning up (${pendingCleanups().join(', ')})`);
  await runCleanups();
  process.exit(code);
}

let crashed = false;
async function onCrash(err: unknown): Promise<void> {
  if (crashed) {
    // A second crash while cleaning up: do not loop.
    process.stderr.write(`internal error during cleanup: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(70);
  }
  crashed = true;
  if (err instanceof HecaError) process.stderr.write(`${err.format()}\n`);
  else process.stderr.write(`internal error (a bug in heca): ${(err as Error)?.stack ?? String(err)}\n`);
  await runCleanups();
  process.exit(err instanceof HecaError ? 1 : 70);
}
