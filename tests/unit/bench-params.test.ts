import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/lib/errors.ts';
import { parseAccel } from '../../bench/lib/accel.ts';
import { checkMemory, memAvailableMib } from '../../bench/lib/host.ts';
import { parseScenarios, scenarioId, SCENARIOS } from '../../bench/lib/scenarios.ts';
import { GUEST_OVERHEAD_MIB, makeWorkload } from '../../bench/lib/workloads.ts';
import { vmArgs } from '../../bench/lib/vm.ts';
import { errorOf } from '../helpers.ts';


test('scenario ids derive from parameters and are unique', () => {
  const ids = SCENARIOS.map((s) => s.id);
  assert.is(new Set(ids).size, ids.length);
  for (const s of SCENARIOS) assert.is(s.id, scenarioId(s));
  assert.is(scenarioId({ mode: 'hybrid', switch_after_s: 60, converge_timeout_s: 0 }), 'hybrid-mgmt-switch60s');
  assert.is(scenarioId({ mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, converge_timeout_s: 0 }), 'hybrid-qemu-deadline10s');
  assert.is(scenarioId({ mode: 'postcopy', switchover: 'qemu', converge_timeout_s: 0 }), 'postcopy-qemu-immediate');
  assert.equal(SCENARIOS.map((s) => s.name), ['precopy', 'postcopy', 'full', 'hybrid10', 'hybrid60', 'mgmt-hybrid10', 'mgmt-hybrid60']);
  const [p] = parseScenarios('precopy', 30);
  assert.is(p!.id, 'precopy-timeout30s', 'a changed parameter changes the id');
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

test('QEMU command line: incoming, shared memory file, two serial ports', () => {
  const a = vmArgs({ name: 'x', dir: '/d', accel: 'tcg', memMib: 256, kernel: 'k', initrd: 'i', append: 'a b', incoming: true, memFile: '/dev/shm/m' });
  const s = a.join(' ');
  assert.match(s, '-incoming defer');
  assert.match(s, 'memory-backend-file,id=mem0,size=256M,mem-path=/dev/shm/m,share=on');
  assert.is(a.filter((x) => x === '-serial').length, 2);
  assert.ok(a.includes('a b'), 'the kernel command line stays one argument');
  assert.not.match(vmArgs({ name: 'x', dir: '/d', accel: 'tcg', memMib: 256, kernel: 'k', initrd: 'i', append: '' }).join(' '), '-incoming');
});

test.run();
