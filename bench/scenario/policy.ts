/**
 * A scenario's switchover policy: what the management side (heca's engine)
 * does during a migration. The engine asks it once when `migrate` has been
 * accepted and then on every tick (each query-migrate of the source), and
 * carries out the actions it returns; it never decides by itself whether to
 * switch to post-copy or to give up. The policies hold no QMP connection
 * and no clock: they are pure decisions on what the engine observed.
 *
 *   precopy             cancel a pre-copy still active after the timeout ("not converged")
 *   postcopy (mgmt)     migrate-start-postcopy right after migrate
 *   hybrid (mgmt)       migrate-start-postcopy once pre-copy has run T s
 *   postcopy/hybrid (qemu)  nothing: heca's parameters make QEMU switch itself
 */
import type { MigrateSetParameters, MigrationStatus } from '../../tools/qmp/types.ts';
import type { ScenarioParams } from '../results/schema.ts';

/** What the engine saw at a tick. */
export interface Tick {
  /** ms since `migrate` was issued. */
  elapsedMs: number;
  /** The source's query-migrate status. */
  status: MigrationStatus | undefined;
  /** ms since `migrate` when the source switched to post-copy; undefined before. */
  postcopyAtMs?: number;
}

export type Action =
  | { kind: 'start-postcopy'; why: string }
  | { kind: 'cancel'; why: string };

export interface MigrationPolicy {
  /** Needs the postcopy-ram capability on both sides. */
  readonly postcopy: boolean;
  /** heca's parameters for the source's QEMU (postcopy-switchover, ...); undefined for upstream scenarios. */
  readonly qemuParameters: MigrateSetParameters | undefined;
  /** What to do once `migrate` was accepted. */
  start(): Action[];
  /** What to do now; called about every 200 ms while the migration runs. */
  tick(t: Tick): Action[];
}

/**
 * heca's migration parameters a scenario sets on the source: QEMU switches to
 * post-copy by itself (postcopy-switchover, postcopy-deadline), and a
 * converged pre-copy switches through post-copy (postcopy-on-convergence).
 * Undefined for the upstream scenarios.
 */
export function hecaParameters(sc: ScenarioParams): MigrateSetParameters | undefined {
  if (sc.mode === 'precopy') return undefined;
  const p: MigrateSetParameters = {};
  if (sc.switchover === 'qemu') {
    Object.assign(p, sc.mode === 'hybrid'
      ? { 'postcopy-deadline': (sc.switch_after_s ?? 0) * 1000, 'postcopy-switchover': 'deadline' }
      : { 'postcopy-switchover': 'immediate' });
  }
  if (sc.postcopy_on_convergence) p['postcopy-on-convergence'] = true;
  return Object.keys(p).length ? p : undefined;
}

/** Pre-copy only: cancel it when it is still active after `timeoutS` ("not converged" is a result). */
function precopy(timeoutS: number): MigrationPolicy {
  let cancelled = false;
  return {
    postcopy: false,
    qemuParameters: undefined,
    start: () => [],
    tick: (t) => {
      if (cancelled || t.status !== 'active' || t.elapsedMs < timeoutS * 1000) return [];
      cancelled = true;
      return [{ kind: 'cancel', why: `no convergence after ${timeoutS} s` }];
    },
  };
}

/** The management side switches to post-copy after `afterS` seconds of pre-copy (0: right after migrate). */
function managementSwitch(afterS: number, params: MigrateSetParameters | undefined): MigrationPolicy {
  let switched = false;
  const now = (why: string): Action[] => {
    switched = true;
    return [{ kind: 'start-postcopy', why }];
  };
  return {
    postcopy: true,
    qemuParameters: params,
    start: () => (afterS === 0 ? now('post-copy from the start') : []),
    tick: (t) => (!switched && t.status === 'active' && t.elapsedMs >= afterS * 1000 ? now(`${afterS} s of pre-copy`) : []),
  };
}

/** QEMU switches by itself (heca's postcopy-switchover): the management side only watches. */
function qemuSwitch(params: MigrateSetParameters | undefined): MigrationPolicy {
  return { postcopy: true, qemuParameters: params, start: () => [], tick: () => [] };
}

/** The policy of a scenario: a fresh one per run (it remembers what it did). */
export function policyFor(sc: ScenarioParams): MigrationPolicy {
  const params = hecaParameters(sc);
  if (sc.mode === 'precopy') return precopy(sc.converge_timeout_s);
  if (sc.switchover === 'qemu') return qemuSwitch(params);
  return managementSwitch(sc.mode === 'postcopy' ? 0 : sc.switch_after_s ?? 0, params);
}
