/**
 * Phases 2 and 3, migrate and observe: issue `migrate`, then poll the
 * source's query-migrate until the migration ends, asking the scenario's
 * policy what to do at every tick and doing it (switch to post-copy, cancel).
 * Every reply is kept in the run's record (progress) and a line about once a
 * second says how it goes. A completed migration is observed to its end on
 * the destination too. The scenario's faults are injected when they are due
 * (fault.ts: a cut, and the recovery an operator would drive).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HecaError } from '../../tools/core/errors.ts';
import { info, Progress, warn } from '../../tools/core/log.ts';
import { pollUntil } from '../../tools/core/poll.ts';
import type { MigrationInfo } from '../../tools/qmp/types.ts';
import type { ProgressSample } from '../results/schema.ts';
import type { Action } from '../scenario/policy.ts';
import type { Migration } from './arrange.ts';
import { cutAndRecover, type RecoveryTimeouts } from './fault.ts';
import { mark } from './run.ts';
import type { Side } from './side.ts';
import type { RdmaCounterPair } from '../testbed/nested/rxe.ts';

export const POLL_MS = 200;
export const FINISH_TIMEOUT_MS = 10 * 60_000;

/** How the migration ended, as observed. */
export interface Outcome {
  /** The source's last query-migrate. */
  final: MigrationInfo;
  /** The last reply that had RAM figures (a cancelled migration reports none). */
  lastWithRam: MigrationInfo;
  /** The link's counters when the source had finished. */
  wire: { tx: number; rx: number };
  /** The RDMA devices' counters then, when the testbed has them. */
  rdma?: RdmaCounterPair;
}

/**
 * Both RDMA devices' counters, if the testbed has devices on the link; a
 * device that cannot be read costs the run its RDMA counters, nothing else.
 */
async function rdmaCounters(m: Migration): Promise<RdmaCounterPair | undefined> {
  if (!m.link.rdmaCounters) return undefined;
  try {
    return await m.link.rdmaCounters();
  } catch (e) {
    warn(`  ${m.run.label}: no RDMA counters for this run: ${(e as Error).message}`);
    return undefined;
  }
}

const mib = (n: number | undefined) => `${((n ?? 0) / 1048576).toFixed(1)} MiB`;

/** One query-migrate reply as a history sample. */
export function progressSample(i: MigrationInfo, tMs: number): ProgressSample {
  const r = i.ram;
  return {
    t_ms: tMs,
    status: i.status ?? 'none',
    transferred: r?.transferred ?? 0,
    remaining: r?.remaining ?? 0,
    dirty_rate: r?.['dirty-pages-rate'] ?? 0,
    postcopy_requests: r?.['postcopy-requests'] ?? 0,
    mbps: r?.mbps ?? 0,
  };
}

/** "active, 120.3 MiB sent, 87.2 MiB left, 12000 dirty pages/s, 0 post-copy requests". */
export function progressText(p: ProgressSample): string {
  return `${p.status}, ${mib(p.transferred)} sent, ${mib(p.remaining)} left, ${Math.round(p.dirty_rate)} dirty pages/s, ${p.postcopy_requests} post-copy requests`;
}

async function act(m: Migration, actions: Action[]): Promise<void> {
  for (const a of actions) {
    if (a.kind === 'start-postcopy') {
      await m.src.qmp.execute('migrate-start-postcopy');
    } else {
      m.cancelled = true;
      info(`  ${m.run.label}: ${a.why}: cancelling`);
      mark(m.run, 'cancel');
      await m.src.qmp.execute('migrate_cancel');
    }
  }
}

/** Phase 2: `migrate`, and what the policy does right after it. */
export async function startMigration(m: Migration): Promise<void> {
  // The guest's slow page writes until now; those of the migration are asked of the destination at its end (verify.ts).
  const vm = m.run.src;
  m.run.rec.guest.slow_before = vm && await m.src.guard(vm.channel.slowWrites({ timeoutMs: 5000 }), 'asking the guest for its slow writes').catch((e: unknown) => {
    warn(`  ${m.run.label}: the guest did not report its slow writes before migrate (${(e as Error).message}); the report's fault path table will lack this run`);
    return undefined;
  });
  m.wire0 = await m.link.wireBytes();
  m.rdma0 = await rdmaCounters(m);
  if (m.link.asyncPfTrace) {
    m.asyncPfTracing = await m.link.asyncPfTrace.start().then(() => true, (e: unknown) => {
      warn(`  ${m.run.label}: no count of KVM's async page faults for this run: ${(e as Error).message}`);
      return false;
    });
  }
  m.run.t0 = Date.now();
  mark(m.run, 'migrate');
  try {
    await m.src.qmp.execute('migrate', { uri: m.uri });
    await act(m, m.policy.start());
  } catch (e) {
    await stopAsyncPfTrace(m);
    throw e;
  }
}

/** KVM's trace events off without counting them (the migration failed, was cancelled, or the engine threw). */
export async function stopAsyncPfTrace(m: Migration): Promise<void> {
  if (!m.asyncPfTracing || !m.link.asyncPfTrace) return;
  m.asyncPfTracing = false;
  await m.link.asyncPfTrace.stop().catch((e: unknown) => warn(`  ${m.run.label}: KVM's trace events could not be turned off: ${(e as Error).message}`));
}

function exitedError(m: Migration, which: Side): HecaError {
  return new HecaError(`QEMU ${which.name} exited mid-migration`, { why: 'see the log tails', details: `source:\n${m.src.logTail()}\ndestination:\n${m.dst.logTail()}`, fix: `full logs in ${m.run.logs}` });
}

/** Phase 3: poll until the migration has ended on the source (and, when it completed, on the destination). */
export async function observe(m: Migration, opts: { pollMs?: number; finishTimeoutMs?: number; recovery?: RecoveryTimeouts } = {}): Promise<Outcome> {
  try {
    return await observeUntilEnd(m, opts);
  } finally {
    // Not counted (the migration failed, was cancelled, or this threw): the events go off all the same.
    await stopAsyncPfTrace(m);
  }
}

async function observeUntilEnd(m: Migration, opts: { pollMs?: number; finishTimeoutMs?: number; recovery?: RecoveryTimeouts }): Promise<Outcome> {
  const { run, src, dst } = m;
  const pollMs = opts.pollMs ?? POLL_MS;
  const finishMs = opts.finishTimeoutMs ?? FINISH_TIMEOUT_MS;
  const history = run.rec.progress ?? (run.rec.progress = []);
  const line = new Progress(`  ${run.label}`, 1000);
  let last: MigrationInfo = await src.qmp.execute('query-migrate');
  let lastWithRam = last;
  for (;;) {
    if (src.exited || (dst.exited && !m.cancelled)) throw exitedError(m, src.exited ? src : dst);
    const elapsed = Date.now() - run.t0;
    const sample = progressSample(last, elapsed);
    const st = last.status;
    const ended = st === 'completed' || st === 'failed' || st === 'cancelled';
    if (last.ram) history.push(sample);
    if (ended) break;
    if (last.ram) line.update(progressText(sample));
    const tick = { elapsedMs: elapsed, status: st, postcopyAtMs: run.rec.phases.find((p) => p.name === 'postcopy-switch')?.at_ms };
    await act(m, m.policy.tick(tick));
    // A fault that is due: injected, and the recovery driven, before the next poll.
    for (const f of m.faults.tick(tick)) await cutAndRecover(m, f, opts.recovery);
    if (elapsed > finishMs) throw new HecaError(`migration still ${st} after ${finishMs / 1000} s`, { why: 'it made no end', fix: `see ${run.logs}` });
    await sleep(pollMs);
    last = await src.guard(src.qmp.execute('query-migrate'), 'migration');
    if (last.ram) lastWithRam = last;
  }
  line.done(`${last.status} after ${((Date.now() - run.t0) / 1000).toFixed(1)} s, ${mib(lastWithRam.ram?.transferred)} sent`);
  const wire = await m.link.wireBytes();
  const rdma = m.rdma0 ? await rdmaCounters(m) : undefined;
  if (last.status === 'completed') {
    mark(run, 'completed');
    // Post-copy: the destination finishes when the last page has arrived.
    await dst.guard(waitDestDone(dst, pollMs, finishMs), 'the end of the incoming migration');
    if (m.events.resumeUs === undefined) await dst.qmp.waitEvent('RESUME', { timeoutMs: 10_000 }).catch(() => undefined);
    if (m.asyncPfTracing && m.link.asyncPfTrace) {
      m.asyncPfTracing = false;
      run.rec.async_pf = await m.link.asyncPfTrace.read().catch((e: unknown) => {
        warn(`  ${run.label}: no count of KVM's async page faults for this run: ${(e as Error).message}`);
        return undefined;
      });
    }
  }
  return { final: last, lastWithRam, wire, rdma };
}

async function waitDestDone(d: Side, everyMs: number, timeoutMs: number): Promise<void> {
  let status = '?';
  await pollUntil(async () => {
    const i: MigrationInfo = await d.qmp.execute('query-migrate');
    status = i.status ?? '?';
    if (i.status === 'failed') throw new HecaError('the destination reports the incoming migration failed', { why: i['error-desc'] ?? 'no description', details: d.logTail() });
    return i.status === 'completed' ? true : undefined;
  }, {
    timeoutMs,
    everyMs,
    timeout: () => new HecaError('the destination did not finish the incoming migration', { why: `still ${status} after ${timeoutMs / 1000} s` }),
  });
}
