/**
 * The policy loop: the scenario's policy decides, the engine's migrate,
 * observe and collect phases carry it out over QMP. The policies alone
 * (pure), then the phases against a fake QEMU pair that speaks QMP on unix
 * sockets (tests/fakes/fake-qemu.ts) through the real QmpClient: the
 * management side's hybrid switch, the pre-copy cancel and its
 * not-converged record, QEMU switching by itself with heca's parameters,
 * and an upstream QEMU refusing them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ScenarioParams } from '../../bench/results/schema.ts';
import { parseScenarios, scenarioId, SCENARIOS } from '../../bench/scenario/catalog.ts';
import { policyFor } from '../../bench/scenario/policy.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { migrateWithFake } from '../fakes/engine.ts';
import type { FakeOptions } from '../fakes/fake-qemu.ts';

const named = (name: string): ScenarioParams => SCENARIOS.find((s) => s.name === name)!;
/** A scenario with its switch after `s` seconds instead of 10 or 60, its id derived again. */
function after(name: string, s: number): ScenarioParams {
  const sc = { ...named(name), switch_after_s: s };
  return { ...sc, id: scenarioId(sc) };
}

test('policies alone: who switches or cancels, when, and only once', () => {
  const hyb = policyFor(named('mgmt-hybrid10'));
  assert.ok(hyb.postcopy);
  assert.equal(hyb.start(), []);
  assert.equal(hyb.tick({ elapsedMs: 9_999, status: 'active' }), []);
  assert.equal(hyb.tick({ elapsedMs: 10_000, status: 'setup' }), [], 'not before pre-copy runs');
  assert.equal(hyb.tick({ elapsedMs: 10_000, status: 'active' }).map((a) => a.kind), ['start-postcopy']);
  assert.equal(hyb.tick({ elapsedMs: 10_200, status: 'active' }), [], 'once');
  assert.equal(policyFor(named('postcopy')).start().map((a) => a.kind), ['start-postcopy'], 'upstream post-copy: right after migrate');
  const pre = policyFor(parseScenarios('precopy', 30)[0]!);
  assert.not.ok(pre.postcopy);
  assert.equal(pre.tick({ elapsedMs: 29_999, status: 'active' }), []);
  assert.equal(pre.tick({ elapsedMs: 30_000, status: 'active' }), [{ kind: 'cancel', why: 'no convergence after 30 s' }]);
  assert.equal(pre.tick({ elapsedMs: 30_200, status: 'active' }), [], 'once');
  for (const n of ['full', 'hybrid10', 'hybrid60']) {
    const q = policyFor(named(n));
    assert.equal([...q.start(), ...q.tick({ elapsedMs: 1e9, status: 'active' })], [], `${n}: QEMU switches by itself`);
    assert.ok(q.qemuParameters?.['postcopy-switchover'], n);
  }
});

/** One migration of `sc` through the engine's phases against a fake QEMU pair. */
const migrate = (sc: ScenarioParams, o: FakeOptions = {}) => migrateWithFake(sc, o);

test('management-side hybrid: migrate-start-postcopy once, after the switch time, never before; the record follows', async () => {
  const { fake, run, where, error } = await migrate(after('mgmt-hybrid10', 1));
  assert.is(error, undefined, String(error));
  const caps = fake.log.filter((c) => c.command === 'migrate-set-capabilities' && c.side === 'src')[0]!.args;
  assert.equal(caps, { capabilities: [{ capability: 'postcopy-ram', state: true }, { capability: 'events', state: true }] });
  const switches = fake.log.filter((c) => c.command === 'migrate-start-postcopy');
  assert.is(switches.length, 1, fake.commands().join('\n'));
  assert.ok(switches[0]!.atMs >= 1000 && switches[0]!.atMs < 1500, `switched at ${switches[0]!.atMs} ms`);
  assert.not.ok(fake.commands().includes('src migrate-set-parameters') && fake.log.some((c) => c.args?.['postcopy-switchover']), 'no heca parameter for an upstream scenario');
  const rec = run.rec;
  assert.is(where, 'dst');
  assert.is(rec.status, 'completed');
  assert.equal(rec.phases.map((p) => p.name).filter((n) => n !== 'resume-dest'), ['migrate', 'stop', 'postcopy-switch', 'completed']);
  assert.ok(rec.phases.some((p) => p.name === 'resume-dest'));
  assert.ok(typeof rec.downtime_host_ms === 'number' && rec.downtime_host_ms >= 0 && rec.downtime_host_ms < 100, `STOP→RESUME ${rec.downtime_host_ms}`);
  assert.is(rec.postcopy_latency?.faults, 7, 'the engine enabled postcopy-blocktime and read the destination');
  assert.equal(rec.destinations?.map((d) => [d.name, d.downtime_host_ms, d.postcopy_latency?.faults]), [['dst', rec.downtime_host_ms, 7]]);
  assert.is(rec.bytes.postcopy, 128 * 1048576);
  assert.is(rec.bytes.wire, 1_000_000, 'link counters from migrate to the end');
  const statuses = [...new Set(rec.progress?.map((p) => p.status))];
  assert.equal(statuses, ['active', 'postcopy-active', 'completed'], 'the query-migrate history is kept');
});

test('pre-copy that does not converge: migrate_cancel once at the timeout, recorded as not converged with its cost', async () => {
  const { fake, run, where, error } = await migrate(parseScenarios('precopy', 1)[0]!);
  assert.is(error, undefined, String(error));
  const cancels = fake.log.filter((c) => c.command === 'migrate_cancel');
  assert.is(cancels.length, 1, fake.commands().join('\n'));
  assert.ok(cancels[0]!.atMs >= 1000 && cancels[0]!.atMs < 1500, `cancelled at ${cancels[0]!.atMs} ms`);
  assert.not.ok(fake.commands().includes('src migrate-start-postcopy'));
  const rec = run.rec;
  assert.is(where, 'src', 'the guest goes on on the source');
  assert.is(rec.status, 'not-converged');
  assert.match(rec.reason ?? '', /^pre-copy did not converge within 1 s \(85\.3 MiB still dirty, \d+\.\d MiB sent\)$/);
  assert.ok(rec.bytes.precopy > 50 * 1048576, `what it cost until then: ${rec.bytes.precopy} B (the cancelled reply has no RAM figures)`);
  const cancel = rec.phases.find((p) => p.name === 'cancel');
  assert.ok(cancel && cancel.at_ms >= 1000 && cancel.at_ms < 1500, JSON.stringify(rec.phases));
  assert.is(rec.postcopy_latency, undefined);
  assert.ok((rec.progress?.length ?? 0) >= 10, `${rec.progress?.length} samples`);
  assert.is(rec.progress?.at(-1)?.status, 'active', 'the last sample with RAM figures');
});

test('KVM\'s async page faults: counted after a completed migration, the trace turned off uncounted after a cancelled one', async () => {
  const completed: string[] = [];
  const done = await migrateWithFake(after('mgmt-hybrid10', 1), {}, { asyncPf: completed });
  assert.is(done.error, undefined, String(done.error));
  assert.equal(completed, ['start', 'read']);
  assert.equal(done.run.rec.async_pf, { tried: 10, repeated: 1, queued: 8, told: 7, halted: 2 });
  const cancelled: string[] = [];
  const pre = await migrateWithFake(parseScenarios('precopy', 1)[0]!, {}, { asyncPf: cancelled });
  assert.is(pre.run.rec.status, 'not-converged');
  assert.equal(cancelled, ['start', 'stop'], 'the events go off: the next run\'s host is not left tracing');
  assert.is(pre.run.rec.async_pf, undefined);
});

test('pre-copy that converges: no cancel, no switch, stop-and-copy', async () => {
  const { fake, run, error } = await migrate(parseScenarios('precopy', 5)[0]!, { convergesAfterMs: 300 });
  assert.is(error, undefined, String(error));
  assert.not.ok(fake.commands().some((c) => c.endsWith('migrate_cancel') || c.endsWith('migrate-start-postcopy')), fake.commands().join('\n'));
  assert.is(run.rec.status, 'completed');
  assert.equal(run.rec.phases.map((p) => p.name).filter((n) => n === 'stop' || n === 'postcopy-switch'), ['stop']);
});

test('heca: QEMU switches by itself with the scenario\'s parameters; the engine sends no switch', async () => {
  const full = await migrate(named('full'));
  assert.is(full.error, undefined, String(full.error));
  assert.equal(full.fake.at('src', 'migrate-set-parameters') && full.fake.log.filter((c) => c.command === 'migrate-set-parameters' && c.side === 'src').map((c) => c.args), [{ 'max-bandwidth': 100 * 1024 ** 3 }, { 'postcopy-switchover': 'immediate' }]);
  assert.not.ok(full.fake.commands().includes('src migrate-start-postcopy'));
  assert.is(full.run.rec.status, 'completed');
  assert.ok(full.run.rec.phases.some((p) => p.name === 'postcopy-switch'));
  const hyb = await migrate(after('hybrid10', 1));
  assert.is(hyb.error, undefined, String(hyb.error));
  assert.ok(hyb.fake.log.some((c) => c.args?.['postcopy-switchover'] === 'deadline' && c.args['postcopy-deadline'] === 1000 && c.args['postcopy-on-convergence'] === true));
  assert.not.ok(hyb.fake.commands().includes('src migrate-start-postcopy'));
  const sw = hyb.run.rec.phases.find((p) => p.name === 'postcopy-switch');
  assert.ok(sw && sw.at_ms >= 1000, `QEMU switched at its deadline: ${JSON.stringify(hyb.run.rec.phases)}`);
});

test('a heca scenario on an upstream QEMU fails before migrate, naming the parameter and the fix', async () => {
  const { fake, error } = await migrate(named('hybrid10'), { upstream: true });
  assert.instance(error, HecaError);
  const e = error as HecaError;
  assert.is(e.message, 'scenario hybrid10 needs heca\'s QEMU patches');
  assert.match(e.why, "this QEMU has no postcopy-deadline parameter (Parameter 'postcopy-deadline' is unexpected)");
  assert.match(e.fix ?? '', 'make build');
  assert.not.ok(fake.commands().includes('src migrate'), 'nothing migrated');
});

test.run();
