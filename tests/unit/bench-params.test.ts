import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseAccel, parseAccel } from '../../bench/engine/accel.ts';
import { checkMemory, memAvailableMib } from '../../bench/testbed/host.ts';
import { parseScenarios, scenarioId, SCENARIOS, type ScenarioSpec } from '../../bench/scenario/catalog.ts';
import { GUEST_OVERHEAD_MIB, makeWorkload } from '../../bench/scenario/workloads.ts';
import { parseTracePatterns, vmArgs } from '../../bench/guest/vm.ts';
import { missingHecaParameter } from '../../bench/engine/arrange.ts';
import { hecaParameters } from '../../bench/scenario/policy.ts';
import { errorOf } from '../helpers.ts';


test('scenario ids: the known ones, unique, unchanged since results were first written', () => {
  const ids = SCENARIOS.map((s) => s.id);
  assert.is(new Set(ids).size, ids.length);
  const tcp = SCENARIOS.filter((s) => s.transport === 'tcp');
  assert.is(scenarioId({ mode: 'hybrid', switch_after_s: 60, converge_timeout_s: 0 }), 'hybrid-mgmt-switch60s');
  assert.is(scenarioId({ mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, converge_timeout_s: 0 }), 'hybrid-qemu-deadline10s');
  assert.is(scenarioId({ mode: 'postcopy', switchover: 'qemu', converge_timeout_s: 0 }), 'postcopy-qemu-immediate');
  assert.is(scenarioId({ mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, postcopy_on_convergence: true, converge_timeout_s: 0 }), 'hybrid-qemu-deadline10s-on-convergence', 'on-convergence changes the experiment');
  assert.equal(tcp.map((s) => s.id), [
    'precopy-timeout120s', 'postcopy-immediate', 'postcopy-qemu-immediate', 'hybrid-qemu-deadline10s-on-convergence',
    'hybrid-qemu-deadline60s-on-convergence', 'hybrid-mgmt-switch10s', 'hybrid-mgmt-switch60s',
  ]);
  assert.equal(tcp.map((s) => s.name), ['precopy', 'postcopy', 'full', 'hybrid10', 'hybrid60', 'mgmt-hybrid10', 'mgmt-hybrid60']);
  for (const t of ['preempt', 'rdma']) {
    assert.equal(SCENARIOS.filter((s) => s.transport === t).map((s) => s.id), tcp.filter((s) => s.mode !== 'precopy').map((s) => `${s.id}-${t}`), `the policies over ${t}`);
  }
  const [p] = parseScenarios('precopy', 30);
  assert.is(p!.id, 'precopy-timeout30s', 'a changed parameter changes the id');
});

test('every dimension of a scenario changes its id; defaults (TCP, no fault) add nothing', () => {
  const base: ScenarioSpec = { mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, postcopy_on_convergence: true, converge_timeout_s: 0 };
  const id = scenarioId(base);
  assert.is(id, 'hybrid-qemu-deadline10s-on-convergence');
  const variants: [string, ScenarioSpec][] = [
    ['mode', { ...base, mode: 'postcopy' }],
    ['switchover', { ...base, switchover: 'mgmt' }],
    ['switch_after_s', { ...base, switch_after_s: 11 }],
    ['postcopy_on_convergence', { ...base, postcopy_on_convergence: false }],
    ['faults', { ...base, faults: [{ kind: 'link-down', at_s: 2 }] }],
  ];
  for (const [dim, v] of variants) assert.is.not(scenarioId(v), id, `${dim} changes the experiment`);
  assert.is(scenarioId({ ...base, faults: [{ kind: 'link-down', at_s: 2 }] }), `${id}-fault-link-down2s`);
  assert.is.not(scenarioId({ mode: 'precopy', converge_timeout_s: 60 }), scenarioId({ mode: 'precopy', converge_timeout_s: 120 }), 'the pre-copy timeout');
  assert.is(scenarioId({ ...base, transport: 'tcp', faults: [] }), id, 'defaults spelled out: the same id');
  for (const s of SCENARIOS) assert.equal([s.transport === undefined, s.faults], [false, []], `${s.name} says what it runs over`);
});

test('heca parameters: hybridT switches by deadline and through post-copy on convergence; full by itself; upstream ones none', () => {
  const of = (name: string) => hecaParameters(SCENARIOS.find((s) => s.name === name)!);
  assert.equal(of('hybrid10'), { 'postcopy-deadline': 10_000, 'postcopy-switchover': 'deadline', 'postcopy-on-convergence': true });
  assert.equal(of('hybrid60'), { 'postcopy-deadline': 60_000, 'postcopy-switchover': 'deadline', 'postcopy-on-convergence': true });
  assert.equal(of('full'), { 'postcopy-switchover': 'immediate' });
  for (const n of ['precopy', 'postcopy', 'mgmt-hybrid10', 'mgmt-hybrid60']) assert.is(of(n), undefined, n);
  for (const n of ['hybrid10', 'hybrid60']) assert.match(SCENARIOS.find((s) => s.name === n)!.description, 'through post-copy as soon as pre-copy converges, never stop-and-copy');
});

test('a QEMU without one of heca\'s parameters is told apart from other refusals', () => {
  assert.is(missingHecaParameter("Parameter 'postcopy-on-convergence' is unexpected"), 'postcopy-on-convergence', 'a heca build from before the parameter');
  assert.is(missingHecaParameter("Parameter 'postcopy-switchover' is unexpected"), 'postcopy-switchover', 'upstream QEMU');
  assert.is(missingHecaParameter("Parameter 'postcopy-deadline' is unexpected"), 'postcopy-deadline');
  assert.is(missingHecaParameter("Parameter 'max-bandwidth' is unexpected"), undefined);
  assert.is(missingHecaParameter("Parameter 'postcopy-switchover' does not accept value 'sometimes'"), undefined);
});

test('unknown scenario lists the ones that exist', () => {
  const e = errorOf(() => parseScenarios('precopy,hybrid99'));
  assert.match(e.message, 'hybrid99');
  for (const s of SCENARIOS) assert.match(e.fix ?? '', s.name);
  assert.match(errorOf(() => parseScenarios('postcopy,postcopy')).message, 'twice');
  assert.equal(parseScenarios('postcopy,hybrid10').map((s) => s.name), ['postcopy', 'hybrid10']);
});

test('workloads derive sizes from --mem and reject nonsense', () => {
  const w = makeWorkload('light', 512);
  assert.is(w.arena_mib, 512 - GUEST_OVERHEAD_MIB);
  assert.ok(w.working_set_mib < w.arena_mib);
  assert.match(errorOf(() => makeWorkload('nope', 512)).fix ?? '', 'write-heavy');
  assert.match(errorOf(() => makeWorkload('light', 64)).message, 'too small');
});

test('memory larger than the host can give is refused before anything starts', () => {
  const e = errorOf(() => checkMemory(8192, 10_000));
  assert.match(e.message, '--mem 8192');
  assert.match(e.fix ?? '', '--mem ');
  checkMemory(512, 10_000);
  assert.is(memAvailableMib('MemTotal: 100 kB\nMemAvailable:    2097152 kB\n'), 2048);
});

test('accelerator names are checked', () => {
  assert.is(parseAccel('tcg'), 'tcg');
  assert.match(errorOf(() => parseAccel('hvf')).fix ?? '', 'auto');
});

test('--accel auto boots a probe guest under KVM and follows its verdict; tcg and kvm do not probe', async () => {
  let probes = 0;
  const probe = (ok: boolean) => async () => {
    probes++;
    return { ok, detail: ok ? 'ready after 2.0 s' : 'QEMU exited while starting' };
  };
  const noKvm = { devKvm: false, pvm: false };
  const kvm = { devKvm: true, pvm: false };
  assert.equal(await chooseAccel('auto', probe(true), noKvm), { accel: 'tcg', reason: 'no /dev/kvm on this host' });
  assert.is(probes, 0, 'no /dev/kvm: no probe');
  assert.equal(await chooseAccel('auto', probe(true), kvm), { accel: 'kvm', reason: 'a probe guest booted under KVM (ready after 2.0 s)' });
  assert.equal(await chooseAccel('auto', probe(false), { devKvm: true, pvm: true }), { accel: 'tcg', reason: 'a probe guest did not boot under KVM (QEMU exited while starting); kvm_pvm is loaded: this /dev/kvm is a paravirtual KVM' });
  assert.is(probes, 2);
  assert.equal(await chooseAccel('tcg', probe(true), kvm), { accel: 'tcg', reason: 'requested with --accel tcg' });
  assert.equal(await chooseAccel('kvm', probe(false), kvm), { accel: 'kvm', reason: 'requested with --accel kvm (no probe)' });
  assert.is(probes, 2, '--accel tcg|kvm never probe');
  await chooseAccel('kvm', probe(true), noKvm).then(() => assert.unreachable('kvm without /dev/kvm'), (e: Error) => assert.match(e.message, '--accel kvm but there is no /dev/kvm'));
});

test('QEMU command line: incoming, shared memory file, two serial ports', () => {
  const a = vmArgs({ name: 'x', dir: '/d', accel: 'tcg', memMib: 256, kernel: 'k', initrd: 'i', append: 'a b', incoming: true, memFile: '/dev/shm/m' });
  const s = a.join(' ');
  assert.match(s, '-incoming defer');
  assert.match(s, 'memory-backend-file,id=mem0,size=256M,mem-path=/dev/shm/m,share=on');
  assert.is(a.filter((x) => x === '-serial').length, 2);
  assert.ok(a.includes('a b'), 'the kernel command line stays one argument');
  assert.not.match(vmArgs({ name: 'x', dir: '/d', accel: 'tcg', memMib: 256, kernel: 'k', initrd: 'i', append: '' }).join(' '), '-incoming');
  assert.not.ok(a.includes('-trace'), 'no tracing unless asked');
});

test('--qemu-trace: event names or patterns, each its own -trace; anything else is refused', () => {
  assert.equal(parseTracePatterns(undefined), []);
  const t = parseTracePatterns('postcopy_rdma_dst_verified, postcopy_rdma_*');
  assert.equal(t, ['postcopy_rdma_dst_verified', 'postcopy_rdma_*']);
  const a = vmArgs({ name: 'x', dir: '/d', accel: 'kvm', memMib: 256, kernel: 'k', initrd: 'i', append: '', trace: t });
  assert.equal(a.slice(-4), ['-trace', 'postcopy_rdma_dst_verified', '-trace', 'postcopy_rdma_*']);
  for (const bad of ['', 'a,,b', 'file=/etc/passwd', 'enable=x', 'x y']) {
    assert.throws(() => parseTracePatterns(bad), (e: Error) => /is not a list of trace events/.test(e.message), bad);
  }
});

test.run();
