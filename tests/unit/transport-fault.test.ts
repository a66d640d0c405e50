/**
 * Issue #12's bench pieces: the transport as a dimension of a scenario (ids,
 * names, the crossing of --scenario with --transport, the refusal of rdma
 * where there is no RDMA), the fault spec and when it is due, what each
 * transport sets on both QEMUs; then, against the fake QEMU pair, the rdma
 * set-up on both sides, a cut with the recovery driven out of band, a
 * recovery QEMU refuses (rdma pull today: a clear failure, no hang), and a
 * fault that never came due.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../tools/core/cli.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { parseScenarios, scenarioId, SCENARIOS, POLICIES, DEFAULT_SCENARIOS } from '../../bench/scenario/catalog.ts';
import { faultPlan, faultText, parseFault, parseFaults } from '../../bench/scenario/faults.ts';
import { parseTransports, refuseOnTestbed, refuseWithoutRxe, selectScenarios } from '../../bench/scenario/select.ts';
import { missingTransportFeature, transportSetup } from '../../bench/scenario/transport.ts';
import { cutCommands, establishedTo, restoreCommands } from '../../bench/testbed/cut.ts';
import { errorOf } from '../helpers.ts';
import { migrateWithFake } from '../fakes/engine.ts';

const pick = (arg: string, o: Parameters<typeof selectScenarios>[1] = {}) => selectScenarios(arg, o).scenarios;

test('scenario ids carry the transport; tcp adds nothing, so older ids stay', () => {
  const [full, fullRdma] = pick('full', { transports: ['tcp', 'rdma'] });
  assert.equal([full!.name, full!.id, full!.transport], ['full', 'postcopy-qemu-immediate', 'tcp']);
  assert.equal([fullRdma!.name, fullRdma!.id, fullRdma!.transport], ['full-rdma', 'postcopy-qemu-immediate-rdma', 'rdma']);
  const [pp] = pick('postcopy-preempt');
  assert.equal([pp!.name, pp!.id, pp!.mode, pp!.switchover, pp!.transport], ['postcopy-preempt', 'postcopy-immediate-preempt', 'postcopy', undefined, 'preempt'], 'the upstream baseline');
  assert.is(scenarioId({ mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, postcopy_on_convergence: true, converge_timeout_s: 0, transport: 'rdma' }), 'hybrid-qemu-deadline10s-on-convergence-rdma');
  const ids = SCENARIOS.map((s) => s.id);
  assert.is(new Set(ids).size, ids.length, 'unique');
  assert.equal(new Set(SCENARIOS.map((s) => s.name)).size, SCENARIOS.length);
  assert.equal(SCENARIOS.filter((s) => s.transport === 'tcp'), [...POLICIES], 'the policies over tcp come first, as they were');
  assert.equal(DEFAULT_SCENARIOS, POLICIES.map((s) => s.name), 'make bench (local testbed) compares the policies over tcp');
  assert.not.ok(SCENARIOS.some((s) => s.mode === 'precopy' && s.transport !== 'tcp'), 'no pre-copy over a post-copy transport');
  assert.is(SCENARIOS.filter((s) => s.transport === 'rdma').length, POLICIES.length - 1);
});

test('--transport crosses the policies, policy by policy; pre-copy only over tcp, said once', () => {
  const sel = selectScenarios('precopy,full,hybrid10', { transports: ['tcp', 'rdma'] });
  assert.equal(sel.scenarios.map((s) => s.name), ['precopy', 'full', 'full-rdma', 'hybrid10', 'hybrid10-rdma']);
  assert.equal(sel.skipped.length, 1);
  assert.match(sel.skipped[0]!, /^precopy over rdma: precopy has no post-copy phase/);
  assert.equal(pick('full', { transports: ['rdma'] }).map((s) => s.name), ['full-rdma']);
  assert.instance(errorOf(() => selectScenarios('precopy', { transports: ['rdma'] })), UsageError);
  const named = errorOf(() => selectScenarios('full-rdma', { transports: ['tcp'] }));
  assert.match(named.message, 'already names its transport');
  assert.match(named.fix ?? '', '--scenario full --transport tcp');
  assert.equal(parseTransports('tcp, rdma'), ['tcp', 'rdma']);
  assert.match(errorOf(() => parseTransports('infiniband')).why, 'tcp, preempt, rdma');
  assert.match(errorOf(() => parseTransports('tcp,tcp')).message, 'twice');
  assert.equal(pick('full'), pick('full', {}), 'no --transport: the names as given');
});

test('rdma is refused up front off the nested testbed, saying why; and without rxe0 ACTIVE', () => {
  const sc = pick('full', { transports: ['tcp', 'rdma'] });
  const e = errorOf(() => refuseOnTestbed(sc, 'local'));
  assert.instance(e, UsageError);
  assert.is(e.message, 'scenario full-rdma cannot run on the local testbed');
  assert.match(e.why, 'needs --testbed nested');
  assert.match(e.why, 'L0) has no RDMA');
  assert.match(e.why, 'rxe0');
  refuseOnTestbed(sc, 'nested');
  refuseOnTestbed(pick('full,postcopy-preempt'), 'local');
  const down = errorOf(() => refuseWithoutRxe(sc, [{ name: 'heca-x-a', rxe_state: 'ACTIVE' }, { name: 'heca-x-b', rxe_state: 'DOWN' }]));
  assert.match(down.why, 'heca-x-b: rxe0 DOWN');
  refuseWithoutRxe(pick('full'), [{ name: 'b', rxe_state: 'DOWN' }]);
});

test('a fault is data: parsed, written back the same, part of the id and the name', () => {
  const f = parseFault('cut@postcopy+2s:3s');
  assert.equal(f, { kind: 'cut', after: 'postcopy', at_s: 2, duration_s: 3 });
  assert.is(faultText(f), 'cut@postcopy+2s:3s');
  assert.is(faultText(parseFault('cut@migrate+0.5s:1.5s')), 'cut@migrate+0.5s:1.5s');
  assert.equal(parseFaults(undefined), []);
  for (const bad of ['cut', 'cut@postcopy+2s', 'cut@later+2s:3s', 'flood@postcopy+1s:1s', 'cut@postcopy+2s:0s']) assert.instance(errorOf(() => parseFault(bad)), UsageError, bad);
  const [tcp, rdma] = pick('full', { transports: ['tcp', 'rdma'], faults: [f] });
  assert.equal([tcp!.name, tcp!.id], ['full-cut', 'postcopy-qemu-immediate-fault-cut@postcopy+2s:3s']);
  assert.equal([rdma!.name, rdma!.id], ['full-rdma-cut', 'postcopy-qemu-immediate-rdma-fault-cut@postcopy+2s:3s']);
  assert.equal(tcp!.faults, [f]);
  assert.is.not(scenarioId({ ...tcp!, faults: [parseFault('cut@postcopy+2s:4s')] }), tcp!.id, 'its duration changes the experiment');
  assert.match(errorOf(() => selectScenarios('precopy', { faults: [f] })).why, 'never starts post-copy');
});

test('fault plan: due once, counted from the start of post-copy, only while migrating', () => {
  const plan = faultPlan({ faults: [parseFault('cut@postcopy+2s:3s')] });
  assert.equal(plan.tick({ elapsedMs: 5000, status: 'active' }), [], 'post-copy has not started');
  assert.equal(plan.tick({ elapsedMs: 5000, status: 'postcopy-active', postcopyAtMs: 3500 }), []);
  const due = plan.tick({ elapsedMs: 5500, status: 'postcopy-active', postcopyAtMs: 3500 });
  assert.equal(due.map((a) => [a.kind, a.durationMs]), [['cut', 3000]]);
  assert.equal(plan.tick({ elapsedMs: 9000, status: 'postcopy-active', postcopyAtMs: 3500 }), [], 'once');
  assert.equal(plan.pending(), []);
  const late = faultPlan({ faults: [parseFault('cut@migrate+1s:1s')] });
  assert.equal(late.tick({ elapsedMs: 2000, status: 'completed' }), [], 'not after the end');
  assert.is(late.pending().length, 1);
});

test('what each transport sets on both sides; the refusals told apart', () => {
  assert.equal(transportSetup('tcp', '10.214.0.2').capabilities, []);
  assert.equal(transportSetup('preempt', '10.214.0.2').capabilities, [{ capability: 'postcopy-preempt', state: true }]);
  const r = transportSetup('rdma', '10.214.0.2');
  assert.equal(r.capabilities, [{ capability: 'postcopy-rdma-pull', state: true }]);
  assert.equal(r.parameters.source, { 'postcopy-rdma-address': '10.214.0.2', 'postcopy-rdma-port': 0 });
  assert.equal(r.parameters.destination, r.parameters.source, 'the destination listens where the source connects');
  assert.is(missingTransportFeature("Invalid parameter 'postcopy-rdma-pull'"), 'postcopy-rdma-pull');
  assert.is(missingTransportFeature("Parameter 'postcopy-rdma-address' is unexpected"), 'postcopy-rdma-address');
  assert.is(missingTransportFeature("Capability 'postcopy-rdma-pull' is not compatible with capability 'postcopy-preempt'"), undefined, 'a conflict is not a missing feature');
  // rdma-kernel: rdma, and the kernel engine on the destination only (the source's QEMU never reads it).
  const k = transportSetup('rdma-kernel', '10.214.0.2');
  assert.equal(k.capabilities, r.capabilities);
  assert.equal(k.parameters.source, r.parameters.source);
  assert.equal(k.parameters.destination, { ...r.parameters.source, 'postcopy-rdma-engine': 'kernel' });
  assert.match(k.needs, 'postcopy-rdma-engine');
  assert.match(k.needs, 'CONFIG_USERFAULTFD_RDMA_RESOLVER');
  assert.is(missingTransportFeature("Parameter 'postcopy-rdma-engine' is unexpected"), 'postcopy-rdma-engine');
});

test('rdma-kernel: a transport of its own in names, ids and the catalog; refused off the nested testbed, and without rxe0', () => {
  const [full, user, kernel] = pick('full', { transports: ['tcp', 'rdma', 'rdma-kernel'] });
  assert.equal([kernel!.name, kernel!.id, kernel!.transport], ['full-rdma-kernel', 'postcopy-qemu-immediate-rdma-kernel', 'rdma-kernel']);
  assert.not.equal(kernel!.id, user!.id);
  assert.match(kernel!.description, "postcopy-rdma-engine=kernel");
  assert.is(full!.transport, 'tcp');
  assert.ok(SCENARIOS.some((s) => s.name === 'hybrid60-rdma-kernel'), 'in the catalog, so in the nightly');
  assert.is(parseScenarios('full-rdma-kernel')[0]!.transport, 'rdma-kernel');
  const named = errorOf(() => selectScenarios('full-rdma-kernel', { transports: ['tcp'] }));
  assert.match(named.fix ?? '', '--scenario full --transport tcp');
  const e = errorOf(() => refuseOnTestbed([kernel!], 'local'));
  assert.is(e.message, 'scenario full-rdma-kernel cannot run on the local testbed');
  assert.match(e.why, 'the rdma-kernel transport needs --testbed nested');
  assert.match(e.why, 'heca kernel');
  refuseOnTestbed([kernel!], 'nested');
  assert.match(errorOf(() => refuseWithoutRxe([kernel!], [{ name: 'heca-x-a', rxe_state: 'DOWN' }])).why, 'heca-x-a: rxe0 DOWN');
});

test('cut commands: each end kills its connections to the other (ss -K, idle ones too), then the link goes down', () => {
  const ends = { src: { dev: 'hsx', addr: '10.213.0.1' }, dst: { dev: 'hdx', addr: '10.213.0.2' } };
  const cut = cutCommands(ends);
  assert.equal(cut.reset.map((c) => `${c.on}: ${c.argv.join(' ')}`), ['src: ss -K dst 10.213.0.2', 'dst: ss -K dst 10.213.0.1']);
  assert.equal(cut.down.map((c) => `${c.on}: ${c.argv.join(' ')}`), ['src: ip link set dev hsx down', 'dst: ip link set dev hdx down']);
  assert.equal(restoreCommands(ends).map((c) => c.argv.join(' ')), ['ip link set dev hsx up', 'ip link set dev hdx up']);
  assert.is(establishedTo('0 0 10.214.0.1:48000 10.214.0.2:4444\n0 0 10.0.2.15:22 10.0.2.2:5000\n', '10.214.0.2'), 1);
});

test('fake QEMU: rdma sets the capability with postcopy-ram and the address on both sides, the destination before migrate-incoming; postcopy-rdma recorded verbatim', async () => {
  const [sc] = pick('full', { transports: ['rdma'] });
  const { fake, run, error } = await migrateWithFake(sc!);
  assert.is(error, undefined, String(error));
  for (const side of ['src', 'dst'] as const) {
    const caps = fake.log.find((c) => c.side === side && c.command === 'migrate-set-capabilities')!.args!.capabilities as { capability: string; state: boolean }[];
    assert.equal(caps.filter((c) => c.state).map((c) => c.capability), ['postcopy-ram', 'events', 'postcopy-rdma-pull'], side);
    assert.ok(fake.log.some((c) => c.side === side && c.command === 'migrate-set-parameters' && c.args?.['postcopy-rdma-address'] === '10.213.0.2'), side);
  }
  const cmds = fake.commands();
  assert.ok(cmds.lastIndexOf('dst migrate-set-parameters') < cmds.indexOf('dst migrate-incoming'));
  assert.is(run.rec.status, 'completed');
  assert.equal(run.rec.postcopy_rdma, { source: { source: { 'registration-time': 12, pulled: true } }, destination: { destination: { 'demand-pages': 7, 'read-latency-dist': [0, 0, 0, 0, 0, 0, 0, 0, 0, 7] } } });
  const tcp = await migrateWithFake(pick('full')[0]!);
  assert.is(tcp.run.rec.postcopy_rdma, undefined, 'nothing when QEMU reports nothing');
});

test('fake QEMU: a QEMU without postcopy-rdma-pull fails the rdma scenario before migrate, naming it', async () => {
  const { fake, error } = await migrateWithFake(pick('full', { transports: ['rdma'] })[0]!, { upstream: true });
  assert.instance(error, HecaError);
  assert.is((error as HecaError).message, "scenario full-rdma needs heca's series 2 QEMU patches (capability postcopy-rdma-pull)");
  assert.match((error as HecaError).why, "the source QEMU refuses postcopy-rdma-pull: Invalid parameter 'postcopy-rdma-pull'");
  assert.not.ok(fake.commands().includes('src migrate'));
});

test('fake QEMU: rdma-kernel asks the destination for the kernel engine before migrate-incoming, the source never; its kernel member recorded', async () => {
  const [sc] = pick('full', { transports: ['rdma-kernel'] });
  const { fake, run, error } = await migrateWithFake(sc!);
  assert.is(error, undefined, String(error));
  const engine = fake.log.filter((c) => c.command === 'migrate-set-parameters' && c.args?.['postcopy-rdma-engine'] !== undefined);
  assert.equal(engine.map((c) => [c.side, c.args!['postcopy-rdma-engine']]), [['dst', 'kernel']]);
  const cmds = fake.commands();
  assert.ok(cmds.lastIndexOf('dst migrate-set-parameters') < cmds.indexOf('dst migrate-incoming'));
  assert.is(run.rec.status, 'completed');
  const dst = (run.rec.postcopy_rdma?.destination as { destination: { kernel?: { faults: number } } }).destination;
  assert.is(dst.kernel?.faults, 40, "the kernel's counters recorded verbatim");
});

test('fake QEMU: a QEMU of series 2 without postcopy-rdma-engine fails the rdma-kernel scenario before migrate, naming it', async () => {
  const { fake, error } = await migrateWithFake(pick('full', { transports: ['rdma-kernel'] })[0]!, { refuse: ['postcopy-rdma-engine'] });
  assert.instance(error, HecaError);
  assert.match((error as HecaError).message, /^scenario full-rdma-kernel needs heca's QEMU patches 19-20/);
  assert.is((error as HecaError).why, "the destination QEMU refuses postcopy-rdma-engine: Parameter 'postcopy-rdma-engine' is unexpected");
  assert.not.ok(fake.commands().includes('src migrate'));
});

test('fake QEMU: TCP + cut: both sides pause, link back after its time, migrate-recover out of band, migrate resume, completed', async () => {
  const [sc] = pick('full', { faults: [parseFault('cut@postcopy+0.3s:0.6s')] });
  const { fake, run, error, link } = await migrateWithFake(sc!, { postcopyMs: 1500 });
  assert.is(error, undefined, String(error));
  const rec = run.rec;
  assert.is(rec.status, 'completed');
  const sw = rec.phases.find((p) => p.name === 'postcopy-switch')!.at_ms;
  assert.ok(link.cutAtMs! - sw >= 300 && link.cutAtMs! - sw < 500, `cut ${link.cutAtMs! - sw} ms after the switch`);
  assert.ok(link.restoredAtMs! - link.cutAtMs! >= 590, `down for ${link.restoredAtMs! - link.cutAtMs!} ms`);
  const r = rec.recovery!;
  assert.is(r.outcome, 'recovered');
  assert.is(r.fault, 'cut@postcopy+0.3s:0.6s');
  assert.ok(r.time_to_pause_ms !== null && r.time_to_pause_ms >= 30 && r.time_to_pause_ms < 300, `paused after ${r.time_to_pause_ms} ms`);
  assert.ok(r.time_paused_ms !== null && r.time_paused_ms >= 500, `paused for ${r.time_paused_ms} ms (the link was down 600 ms)`);
  assert.ok(r.paused_at_ms.source !== null && r.paused_at_ms.destination !== null);
  const recover = fake.log.find((c) => c.command === 'migrate-recover')!;
  assert.equal([recover.side, recover.oob, recover.args], ['dst', true, { uri: 'tcp:10.213.0.2:4445' }], 'out of band, on a new port');
  // On one clock: the fake counts from when it received migrate, the engine from just before it sent it.
  assert.ok(recover.at >= link.restoredAt!, 'after the link is back');
  const resume = fake.log.find((c) => c.command === 'migrate' && c.args?.resume === true)!;
  assert.equal([resume.side, resume.args], ['src', { uri: 'tcp:10.213.0.2:4445', resume: true }]);
  assert.ok(resume.atMs >= recover.atMs);
  const dstInBand = fake.log.filter((c) => c.side === 'dst' && !c.oob && c.atMs >= link.cutAtMs! && c.atMs < resume.atMs + 20);
  assert.equal(dstInBand, [], 'nothing ordinary asked of the paused destination');
  const order = rec.phases.map((p) => p.name).filter((n) => ['postcopy-switch', 'cut', 'paused', 'link-restored', 'recover', 'resumed', 'completed'].includes(n));
  assert.equal(order, ['postcopy-switch', 'cut', 'paused', 'link-restored', 'recover', 'resumed', 'completed'], 'the switch marked once, the recovery in order');
  assert.ok(r.down_at_ms !== null && r.down_at_ms !== undefined && r.down_at_ms >= r.cut_at_ms!, 'when the link went down');
  assert.ok(r.restored_at_ms! - r.down_at_ms >= 590, `down for ${r.restored_at_ms! - r.down_at_ms} ms: the cut's duration counts from the link going down`);
});

test('fake QEMU: rdma + cut when the destination cannot recover: the run fails at once, saying so, the link restored', async () => {
  const [sc] = pick('full', { transports: ['rdma'], faults: [parseFault('cut@postcopy+0.2s:0.3s')] });
  const t0 = Date.now();
  const { run, error, link } = await migrateWithFake(sc!, { postcopyMs: 5000, recoverFails: 'postcopy-rdma-pull: recovery is not supported' });
  assert.ok(Date.now() - t0 < 5000, `no hang: ${Date.now() - t0} ms`);
  assert.instance(error, HecaError);
  assert.match((error as HecaError).message, 'no recovery from cut@postcopy+0.2s:0.3s: the destination refused migrate-recover');
  assert.match((error as HecaError).message, 'recovery is not supported');
  assert.match((error as HecaError).why, 'over rdma');
  assert.is(run.rec.recovery?.outcome, 'failed');
  assert.match(run.rec.recovery?.reason ?? '', 'recovery is not supported');
  assert.ok(link.restoredAtMs !== undefined, 'the link is back');
});

test('fake QEMU: a side that never pauses fails the run at the bound, naming it', async () => {
  const [sc] = pick('full', { faults: [parseFault('cut@postcopy+0.2s:0.2s')] });
  const { run, error } = await migrateWithFake(sc!, { postcopyMs: 5000, pauseAfterMs: 10_000 }, { pauseMs: 500 });
  assert.instance(error, HecaError);
  assert.match((error as HecaError).message, 'the source did not report postcopy-paused within 0.5 s; the destination did not report postcopy-paused within 0.5 s');
  assert.is(run.rec.recovery?.outcome, 'failed');
});

test('fake QEMU: only the destination pauses: the failure says which side did what', async () => {
  const [sc] = pick('full', { transports: ['rdma'], faults: [parseFault('cut@postcopy+0.2s:0.2s')] });
  const { run, error } = await migrateWithFake(sc!, { postcopyMs: 5000, pauseOnly: 'dst' }, { pauseMs: 600 });
  assert.instance(error, HecaError);
  assert.match((error as HecaError).message, /the source did not report postcopy-paused within 0\.6 s; the destination paused \d+ ms after the cut/);
  assert.ok(run.rec.recovery?.paused_at_ms.destination !== null && run.rec.recovery?.paused_at_ms.source === null);
});

test('fake QEMU: a cut that fails (ss -K refused) restores the link and fails the run, saying so', async () => {
  const [sc] = pick('full', { faults: [parseFault('cut@postcopy+0.2s:0.2s')] });
  const { run, error, link } = await migrateWithFake(sc!, { postcopyMs: 3000 }, { cutFails: 'ss: SOCK_DESTROY answers: Operation not supported' });
  assert.instance(error, HecaError);
  assert.match((error as HecaError).message, 'no recovery from cut@postcopy+0.2s:0.2s: the cut itself failed: ss: SOCK_DESTROY answers: Operation not supported');
  assert.ok(link.restoredAtMs !== undefined, 'restored');
  assert.is(run.rec.recovery?.outcome, 'failed');
});

test('fake QEMU: a fault never due before the end is recorded as not injected and fails the run', async () => {
  const [sc] = pick('full', { faults: [parseFault('cut@postcopy+5s:1s')] });
  const { run, error } = await migrateWithFake(sc!, { postcopyMs: 200 });
  assert.is(error, undefined, String(error));
  assert.is(run.rec.recovery?.outcome, 'not-injected');
  assert.is(run.rec.status, 'failed');
  assert.match(run.rec.reason ?? '', /^fault not injected: the migration completed \d+\.\d s after post-copy started, before cut@postcopy\+5s:1s was due/);
});

test.run();
