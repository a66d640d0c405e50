/**
 * A cut fault and the recovery after it, driven as an operator would
 * (observe.ts calls it when the scenario's fault plan says it is due):
 *
 *   1. the testbed cuts the link: its TCP connections reset, the link down;
 *   2. wait until both sides report postcopy-paused (MIGRATION events: the
 *      destination is never asked anything while paused — a vCPU waiting for
 *      a page may hold the big lock, and an ordinary command would hang);
 *   3. the link back up once it has been down for the cut's duration;
 *   4. migrate-recover on the destination, out of band (exec-oob), on a new
 *      port; then `migrate` with resume: true on the source;
 *   5. wait until the source is back in postcopy-active (or completed).
 *
 * Every wait is bounded. The run's `recovery` records the times and the
 * outcome; a migration that does not come back fails the run with the step
 * where it stopped, and the link is always restored first.
 */
import { HecaError } from '../../tools/core/errors.ts';
import { info, warn } from '../../tools/core/log.ts';
import { QmpError } from '../../tools/qmp/errors.ts';
import type { QmpEvent } from '../../tools/qmp/types.ts';
import type { Recovery } from '../results/schema.ts';
import { faultText, type FaultAction } from '../scenario/faults.ts';
import { overRdma } from '../scenario/catalog.ts';
import type { Migration } from './arrange.ts';
import { mark } from './run.ts';
import type { Side } from './side.ts';

export interface RecoveryTimeouts {
  /** From the cut to both sides paused (default 60 s). */
  pauseMs?: number;
  /** From migrate resume to postcopy-active again (default 120 s). */
  resumeMs?: number;
}

const status = (e: QmpEvent) => (e.data as { status?: string } | undefined)?.status;

/**
 * The next MIGRATION event on `side` whose status is one of `want` (or
 * failed): resolves with that status, or with 'timeout' / 'closed'. Listens
 * from the call on: call it before what causes the event.
 */
function nextStatus(side: Side, want: string[], timeoutMs: number): { result: Promise<string>; cancel: () => void } {
  let off = () => {};
  let timer: NodeJS.Timeout | undefined;
  const result = new Promise<string>((resolve) => {
    off = side.qmp.on('MIGRATION', (e) => {
      const st = status(e);
      if (st && (want.includes(st) || st === 'failed')) resolve(st);
    });
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    void side.qmp.closed.then(() => resolve('closed'));
  }).finally(() => {
    off();
    clearTimeout(timer);
  });
  return { result, cancel: () => off() };
}

/** "the source: its migration failed (...)" and the like, for a reason. */
async function whyNot(side: Side, st: string, what: string, ms: number): Promise<string> {
  if (st === 'timeout') return `the ${side.name} did not report ${what} within ${ms / 1000} s`;
  if (st === 'closed') return `the ${side.name} QEMU closed its monitor (exited?) before ${what}`;
  // Only the source is asked: a paused destination may not answer ordinary commands.
  const desc = side.name === 'source' ? await side.qmp.execute('query-migrate', undefined, { timeoutMs: 5000 }).then((i) => i['error-desc'], () => undefined) : undefined;
  return `the ${side.name}'s migration went ${st} instead of ${what}${desc ? ` (${desc})` : ''}`;
}

/** Inject the cut `a` into the running migration `m` and drive the recovery; throws (the run fails) if it does not recover. */
export async function cutAndRecover(m: Migration, a: FaultAction, t: RecoveryTimeouts = {}): Promise<void> {
  const { run, src, dst } = m;
  const pauseMs = t.pauseMs ?? 60_000;
  const resumeMs = t.resumeMs ?? 120_000;
  const since = () => Date.now() - run.t0;
  const rec: Recovery = {
    fault: faultText(a.fault),
    outcome: 'failed',
    cut_at_ms: null,
    down_at_ms: null,
    restored_at_ms: null,
    paused_at_ms: { source: null, destination: null },
    time_to_pause_ms: null,
    time_paused_ms: null,
    resumed_at_ms: null,
  };
  run.rec.recovery = rec;
  const fail = (reason: string, details?: string): HecaError => {
    rec.outcome = 'failed';
    rec.reason = reason;
    return new HecaError(`no recovery from ${rec.fault}: ${reason}`, { why: `post-copy over ${run.sc.transport ?? 'tcp'} did not come back after the cut`, details, fix: `see the QEMU logs in ${run.logs}` });
  };
  m.injected += 1;

  // 1. Cut, listening for the pauses first.
  const paused = { src: nextStatus(src, ['postcopy-paused'], pauseMs), dst: nextStatus(dst, ['postcopy-paused'], pauseMs) };
  for (const [k, side] of [['source', paused.src], ['destination', paused.dst]] as const) {
    void side.result.then((st) => {
      if (st === 'postcopy-paused') rec.paused_at_ms[k] = since();
    });
  }
  info(`  ${run.label}: ${a.why}: cutting the link for ${a.durationMs / 1000} s`);
  mark(run, 'cut');
  rec.cut_at_ms = since();
  let done;
  try {
    done = await m.link.cutLink();
  } catch (e) {
    // Half a cut (rules in, link still up or down): undo it before the run fails.
    await m.link.restoreLink().catch((r: unknown) => warn(`  ${run.label}: restoring the link after a failed cut: ${String(r)}`));
    throw fail(`the cut itself failed: ${e instanceof HecaError ? `${e.message}: ${e.why}` : e instanceof Error ? e.message : String(e)}`);
  }
  rec.down_at_ms = done.downAt - run.t0;
  if (done.left > 0) warn(`  ${run.label}: ${done.left} connection(s) over the link were still established when it went down`);

  // 3. The link back when it has been down the cut's time, whatever happens meanwhile.
  const restored = (async () => {
    const wait = done.downAt + a.durationMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await m.link.restoreLink({ rdma: overRdma(run.sc.transport) });
    rec.restored_at_ms = since();
    mark(run, 'link-restored');
  })();
  restored.catch(() => undefined);

  // 2. Both sides paused.
  const [s, d] = await Promise.all([paused.src.result, paused.dst.result]);
  await restored;
  if (s !== 'postcopy-paused' || d !== 'postcopy-paused') {
    // Say what each side did: one paused and the other not tells where recovery is missing.
    const each = await Promise.all(([[src, s, 'source'], [dst, d, 'destination']] as const).map(async ([side, st, k]) =>
      st === 'postcopy-paused' ? `the ${side.name} paused ${rec.paused_at_ms[k]! - rec.cut_at_ms!} ms after the cut` : whyNot(side, st, 'postcopy-paused', pauseMs)));
    throw fail(each.join('; '), `source:\n${src.logTail()}\ndestination:\n${dst.logTail()}`);
  }
  const pausedAt = Math.max(rec.paused_at_ms.source ?? 0, rec.paused_at_ms.destination ?? 0);
  rec.time_to_pause_ms = pausedAt - rec.cut_at_ms;
  // Marked when both had paused, which was before the link came back.
  run.rec.phases.push({ at_ms: pausedAt, name: 'paused' });
  run.rec.phases.sort((x, y) => x.at_ms - y.at_ms);
  info(`  ${run.label}: both sides paused ${rec.time_to_pause_ms} ms after the cut; recovering`);

  // 4. migrate-recover out of band on a new port, then resume from the source.
  const port = run.ctx.port + m.injected;
  const uri = `tcp:${m.link.dstAddr}:${port}`;
  mark(run, 'recover');
  try {
    await dst.guard(dst.qmp.executeOob('migrate-recover', { uri }, { timeoutMs: 30_000 }), 'migrate-recover');
  } catch (e) {
    throw fail(`the destination refused migrate-recover: ${e instanceof QmpError ? `${e.message}: ${e.why}` : String(e)}`, dst.logTail());
  }
  const back = nextStatus(src, ['postcopy-active', 'completed'], resumeMs);
  try {
    await src.qmp.execute('migrate', { uri, resume: true }, { timeoutMs: 30_000 });
  } catch (e) {
    back.cancel();
    throw fail(`the source refused migrate resume: ${e instanceof QmpError ? `${e.message}: ${e.why}` : String(e)}`, src.logTail());
  }

  // 5. Post-copy again.
  const b = await back.result;
  if (b !== 'postcopy-active' && b !== 'completed') throw fail(await whyNot(src, b, 'postcopy-active after migrate resume', resumeMs), `source:\n${src.logTail()}\ndestination:\n${dst.logTail()}`);
  rec.resumed_at_ms = since();
  rec.time_paused_ms = rec.resumed_at_ms - pausedAt;
  rec.outcome = 'recovered';
  mark(run, 'resumed');
  info(`  ${run.label}: recovered: post-copy again ${rec.time_paused_ms} ms after the pause`);
}
