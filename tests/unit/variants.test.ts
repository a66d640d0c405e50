/**
 * --variant: every scenario also run with QEMU globals on both QEMUs, in the
 * same repeats (an x- switch measured against the default in one
 * invocation): parsing and its refusals, names and ids, the crossing, the
 * QEMU command line, and which tcp run an rdma variant is compared with.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../tools/core/cli.ts';
import { vmArgs } from '../../bench/guest/vm.ts';
import { tcpCounterpart } from '../../bench/report/transport.ts';
import { selectScenarios } from '../../bench/scenario/select.ts';
import { parseVariant, parseVariants, withVariant } from '../../bench/scenario/variants.ts';
import type { ScenarioResult } from '../../bench/results/schema.ts';
import { errorOf } from '../helpers.ts';

const FLOOR = 'migration.x-postcopy-rdma-bg-floor=65536';
const NOCAP = 'migration.x-postcopy-rdma-bg-cap=off';

test('a variant is NAME:GLOBAL[:GLOBAL...], several comma-separated', () => {
  assert.equal(parseVariant(`floor64k:${FLOOR}`), { name: 'floor64k', globals: [FLOOR] });
  assert.equal(parseVariant(`both:${FLOOR}:${NOCAP}`), { name: 'both', globals: [FLOOR, NOCAP] });
  assert.equal(parseVariants(` a:${FLOOR}, b:${NOCAP} `).map((v) => v.name), ['a', 'b']);
  assert.equal(parseVariant(`nocap@rdma:${NOCAP}`), { name: 'nocap', globals: [NOCAP], transport: 'rdma' });
  assert.equal(parseVariants(undefined), []);
  assert.equal(parseVariants(''), []);
});

test('bad variants are refused, saying the form', () => {
  for (const bad of ['floor64k', 'Floor:migration.x=1', `v@udp:${FLOOR}`, `v@rdma@tcp:${FLOOR}`, `@rdma:${FLOOR}`, 'a b:migration.x=1', `:${FLOOR}`, 'v:migration=1', 'v:migration.x=', 'v:migration.x=a b', `v:${FLOOR}:${FLOOR}`]) {
    const e = errorOf(() => parseVariant(bad));
    assert.instance(e, UsageError, bad);
  }
  assert.match(String(errorOf(() => parseVariant('floor64k'))), 'sets nothing');
  assert.match((errorOf(() => parseVariant(`v@udp:${FLOOR}`)) as UsageError).why, 'not a transport');
  assert.match(String(errorOf(() => parseVariants(`a:${FLOOR},a:${NOCAP}`))), 'given twice');
});

test('each scenario runs as it is, then with each variant; the globals are part of the id', () => {
  const sel = selectScenarios('full,hybrid10', { transports: ['tcp', 'rdma'], variants: parseVariants(`floor64k:${FLOOR},nocap:${NOCAP}`) }).scenarios;
  assert.equal(sel.map((s) => s.name), [
    'full', 'full+floor64k', 'full+nocap', 'full-rdma', 'full-rdma+floor64k', 'full-rdma+nocap',
    'hybrid10', 'hybrid10+floor64k', 'hybrid10+nocap', 'hybrid10-rdma', 'hybrid10-rdma+floor64k', 'hybrid10-rdma+nocap',
  ]);
  const byName = new Map(sel.map((s) => [s.name, s]));
  assert.is(byName.get('full-rdma')!.qemu_globals, undefined, 'the base is untouched');
  assert.is(byName.get('full-rdma+floor64k')!.id, `postcopy-qemu-immediate-rdma-global-${FLOOR}`);
  assert.equal(byName.get('full-rdma+nocap')!.qemu_globals, [NOCAP]);
  assert.match(byName.get('full-rdma+nocap')!.description, `-global ${NOCAP}`);
  assert.is(new Set(sel.map((s) => s.id)).size, sel.length, 'ids unique');
  // The id names the experiment, not the label, nor the order the globals were given in.
  const base = byName.get('full-rdma')!;
  assert.is(withVariant(base, parseVariant(`x:${FLOOR}:${NOCAP}`)).id, withVariant(base, parseVariant(`y:${NOCAP}:${FLOOR}`)).id);
  assert.is.not(withVariant(base, parseVariant(`x:${FLOOR}`)).id, withVariant(base, parseVariant(`x:${NOCAP}`)).id);
  // NAME@TRANSPORT: only the scenarios over that transport get the variant.
  const only = selectScenarios('full', { transports: ['tcp', 'preempt', 'rdma'], variants: parseVariants(`nocap@rdma:${NOCAP},floor64k:${FLOOR}`) }).scenarios;
  assert.equal(only.map((s) => s.name), ['full', 'full+floor64k', 'full-preempt', 'full-preempt+floor64k', 'full-rdma', 'full-rdma+nocap', 'full-rdma+floor64k']);
  // Faults and variants together: faults first in the name, as in the id.
  const cut = selectScenarios('full', { transports: ['rdma'], faults: [{ kind: 'cut', after: 'postcopy', at_s: 2, duration_s: 3 }], variants: parseVariants(`nocap:${NOCAP}`) }).scenarios;
  assert.equal(cut.map((s) => s.name), ['full-rdma-cut', 'full-rdma-cut+nocap']);
  assert.is(cut[1]!.id, `postcopy-qemu-immediate-rdma-fault-cut@postcopy+2s:3s-global-${NOCAP}`);
});

test('the globals reach both QEMUs as -global', () => {
  const c = { name: 'x', dir: '/d', accel: 'tcg' as const, memMib: 256, kernel: 'k', initrd: 'i', append: '' };
  const a = vmArgs({ ...c, globals: [FLOOR, NOCAP] });
  const i = a.indexOf('-global');
  assert.equal(a.slice(i, i + 4), ['-global', FLOOR, '-global', NOCAP]);
  assert.not.ok(vmArgs(c).includes('-global'));
});

test('an rdma variant is compared with the tcp run of the same variant, else with plain tcp', () => {
  const sel = selectScenarios('full', { transports: ['tcp', 'rdma'], variants: parseVariants(`nocap:${NOCAP}`) }).scenarios;
  const res = sel.map((scenario) => ({ scenario, runs: [], summary: {} }) as unknown as ScenarioResult);
  const [tcp, tcpNocap, rdma, rdmaNocap] = res;
  assert.is(tcpCounterpart(res, rdma!), tcp);
  assert.is(tcpCounterpart(res, rdmaNocap!), tcpNocap);
  const onlyPlainTcp = [tcp!, rdma!, rdmaNocap!];
  assert.is(tcpCounterpart(onlyPlainTcp, rdmaNocap!), tcp);
  assert.is(tcpCounterpart(res, tcp!), undefined);
});

test.run();
