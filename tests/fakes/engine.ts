/**
 * One migration through the engine's phases (arrange, migrate/observe,
 * collect) against the fake QEMU pair (fake-qemu.ts), through the real
 * QmpClient with out-of-band execution negotiated, as Vm.start does. The
 * link's cut and restore reach the fake, and are logged with the commands.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareMigration, type Migration } from '../../bench/engine/arrange.ts';
import { collect, failIfNotInjected } from '../../bench/engine/collect.ts';
import { observe, startMigration } from '../../bench/engine/observe.ts';
import { newRun, type Run, type RunContext } from '../../bench/engine/run.ts';
import type { Side } from '../../bench/engine/side.ts';
import type { ScenarioParams } from '../../bench/results/schema.ts';
import { policyFor } from '../../bench/scenario/policy.ts';
import { makeWorkload } from '../../bench/scenario/workloads.ts';
import { QmpClient } from '../../tools/qmp/client.ts';
import { FakeMigration, type FakeOptions } from './fake-qemu.ts';

export interface Migrated {
  fake: FakeMigration;
  run: Run;
  m: Migration | undefined;
  where: 'src' | 'dst' | undefined;
  error: unknown;
  /** ms since migrate (the engine's run.t0) when the link was cut and restored; restoredAt: Date.now() then. */
  link: { cutAtMs?: number; restoredAtMs?: number; restoredAt?: number };
}

/**
 * t.asyncPf: the link traces KVM's async page faults (as the nested
 * testbed's does), each call to its start, read and stop logged there.
 */
export async function migrateWithFake(sc: ScenarioParams, o: FakeOptions = {}, t: { finishTimeoutMs?: number; pauseMs?: number; resumeMs?: number; cutFails?: string; asyncPf?: string[] } = {}): Promise<Migrated> {
  const fake = await new FakeMigration(o).start();
  const ctx: RunContext = { qemu: 'fake-qemu', accel: 'tcg', link: 'lan1g', kernel: '', initrd: '', append: () => '', outDir: mkdtempSync(join(tmpdir(), 'heca-policy-')), warmupS: 0, port: 4444 };
  const run = newRun(ctx, sc, makeWorkload('write-heavy', 256), 1);
  const qmps = await Promise.all([QmpClient.connect(fake.src.path, { oob: true }), QmpClient.connect(fake.dst.path, { oob: true })]);
  const side = (qmp: QmpClient, name: Side['name']): Side => ({ name, qmp, exited: undefined, guard: (p) => p, logTail: () => '(fake)' });
  let wire = 0;
  const r: Migrated = { fake, run, m: undefined, where: undefined, error: undefined, link: {} };
  const link = {
    kind: 'local' as const,
    dstAddr: '10.213.0.2',
    wireBytes: async () => ({ tx: (wire += 1_000_000), rx: 1000 }),
    cutLink: async () => {
      r.link.cutAtMs = Date.now() - run.t0;
      if (t.cutFails) throw new Error(t.cutFails);
      fake.cut();
      return { left: 0, downAt: Date.now() };
    },
    restoreLink: async () => {
      r.link.restoredAt = Date.now();
      r.link.restoredAtMs = r.link.restoredAt - run.t0;
    },
    ...(t.asyncPf ? {
      asyncPfTrace: {
        start: async () => void t.asyncPf!.push('start'),
        read: async () => {
          t.asyncPf!.push('read');
          return { tried: 10, repeated: 1, queued: 8, told: 7, halted: 2 };
        },
        stop: async () => void t.asyncPf!.push('stop'),
      },
    } : {}),
  };
  try {
    r.m = await prepareMigration(run, policyFor(sc), side(qmps[0], 'source'), side(qmps[1], 'destination'), link);
    await startMigration(r.m);
    const outcome = await observe(r.m, { pollMs: 50, finishTimeoutMs: t.finishTimeoutMs ?? 20_000, recovery: { pauseMs: t.pauseMs, resumeMs: t.resumeMs } });
    r.where = await collect(r.m, outcome);
    failIfNotInjected(run.rec);
  } catch (e) {
    r.error = e;
  } finally {
    await Promise.all(qmps.map((q) => q.close()));
    await fake.close();
  }
  return r;
}
