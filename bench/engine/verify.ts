/**
 * Phase 5, verify: the guest checks every page of its arena on the side that
 * runs it after the migration (the destination, or the source when pre-copy
 * was cancelled). A single bad page fails the run; a guest reset fails it at
 * once, naming the side and the reason.
 */
import { warn } from '../../tools/core/log.ts';
import type { Vm } from '../guest/vm.ts';
import type { Migration } from './arrange.ts';
import type { RunHooks } from './run.ts';

export async function verify(m: Migration, running: Vm, side: 'src' | 'dst', hooks?: RunHooks): Promise<void> {
  const rec = m.run.rec;
  await hooks?.beforeCheck?.(running, side);
  if (m.reset) await m.resetSeen; // rejects once the registers are saved
  await running.guard(Promise.race([running.channel.waitFor('tick', { timeoutMs: 120_000 }), m.resetSeen]), 'waiting for the guest to run');
  // The slow page writes since `migrate` (the source counted until then): a write that faults in post-copy is one.
  if (side === 'dst' && rec.guest.slow_before) {
    rec.guest.slow_migrating = await running.guard(running.channel.slowWrites({ timeoutMs: 10_000 }), 'asking the guest for its slow writes').catch((e: unknown) => {
      warn(`  ${m.run.label}: the guest did not report its slow writes after the migration (${(e as Error).message}); the report's fault path table will lack this run`);
      return undefined;
    });
  }
  const chk = await running.guard(Promise.race([running.channel.check({ timeoutMs: 300_000 }), m.resetSeen]), 'the integrity check');
  rec.integrity = { ok: chk.bad_pages === 0 && chk.pages_checked > 0, pages_checked: chk.pages_checked, bad_pages: chk.bad_pages, first_bad: chk.first_bad };
  const dest = rec.destinations?.[0];
  if (side === 'dst' && dest) dest.integrity = rec.integrity;
  if (!rec.integrity.ok) {
    rec.status = 'failed';
    rec.reason = `integrity check failed: ${chk.bad_pages} bad page(s) of ${chk.pages_checked} (first: ${chk.first_bad.slice(0, 8).join(', ')})`;
  }
}
