/**
 * The CPUs of an L1 host that stopped answering (bench/testbed/nested/l1-cpus.ts),
 * from a real `info registers -a` of such a host: both CPUs looping in the
 * page-fault entry, their last faults on kernel text (asm_exc_page_fault
 * itself, bsearch).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeCpus, guestHoldsHostState, parseCpus, symbolizer } from '../../bench/testbed/nested/l1-cpus.ts';
import { repoRoot } from '../../tools/core/paths.ts';

const text = readFileSync(join(repoRoot, 'tests', 'fixtures', 'l1-registers-pagefault-loop.txt'), 'utf8');
const map = join(mkdtempSync(join(tmpdir(), 'heca-l1-cpus-')), 'System.map');
writeFileSync(map, ['ffffffff81284540 T bsearch', 'ffffffff81600aa0 T asm_exc_page_fault', 'ffffffff81600ad0 T asm_exc_int3', 'ffffffff81700000 D some_data'].join('\n'));

test('every CPU of the dump, with its mode, RIP, CR2 and CR3', () => {
  const cpus = parseCpus(text);
  assert.is(cpus.length, 2);
  assert.equal(cpus.map((c) => c.cpu), [0, 1]);
  assert.equal(cpus.map((c) => c.cpl), [0, 0]);
  assert.is(cpus[0]!.rip, 0xffffffff81600aa0n);
  assert.is(cpus[0]!.cr2, 0xffffffff81600aa0n);
  assert.is(cpus[0]!.cr3, 0x1018a1000n);
  assert.not.ok(cpus[0]!.halted);
});

test('a host whose CPUs all fault on the code they execute is called dead, by symbol', () => {
  const lines = describeCpus(parseCpus(text), symbolizer(map));
  assert.match(lines[0]!, 'CPU#0: running in kernel mode, RIP=ffffffff81600aa0 (asm_exc_page_fault+0x0) CR2=ffffffff81600aa0 (asm_exc_page_fault+0x0)');
  assert.match(lines.at(-1)!, 'the host is dead, not slow');
});

test('a host merely busy, or idle, is not called dead', () => {
  // One CPU's last fault on a user address: a busy host, maybe a slow one.
  const busy = text.replace(/CR2=ffffffff81600aa0/, 'CR2=00007f6df9494004');
  assert.not.match(describeCpus(parseCpus(busy), symbolizer(map)).join('\n'), 'dead');
  const halted = text.replaceAll('HLT=0', 'HLT=1');
  assert.not.match(describeCpus(parseCpus(halted), () => '').join('\n'), 'dead');
  assert.equal(describeCpus([], () => ''), []);
});

test("an L2 guest left with its L1 host's state (seen on the nested testbed) is said to be a testbed failure", () => {
  // Both dumps from one run (bench-20 hybrid10-rdma r3, 2026-11-27): the destination guest hung
  // with the L1 kernel's RIP after VMRUN and an L1 CR3; the source guest, its own state.
  const hostState = readFileSync(join(repoRoot, 'tests', 'fixtures', 'l2-registers-host-state.txt'), 'utf8');
  const own = readFileSync(join(repoRoot, 'tests', 'fixtures', 'l2-registers-own.txt'), 'utf8');
  const l1 = join(mkdtempSync(join(tmpdir(), 'heca-l1-map-')), 'System.map');
  writeFileSync(l1, ['ffffffff8152f980 t svm_vcpu_enter_exit', 'ffffffff8152f9b0 T __svm_vcpu_run', 'ffffffff8152fba0 t __rdgsbase_inactive'].join('\n'));
  const why = guestHoldsHostState(hostState, 256, symbolizer(l1));
  assert.ok(why);
  assert.match(why, "CR3 0x1058cd000 lies beyond its 256 MiB of RAM and RIP 0xffffffff8152fa4c is the L1 host kernel's __svm_vcpu_run+0x9c");
  assert.match(why, 'a testbed failure, not the migration');
  assert.is(guestHoldsHostState(own, 256, symbolizer(l1)), undefined, "the source guest's own state");
  // Without the L1 symbols, CR3 alone says it; a guest with more RAM than that CR3 is not accused.
  assert.not.match(guestHoldsHostState(hostState, 256, () => '')!, 'RIP');
  assert.is(guestHoldsHostState(hostState, 8192, () => ''), undefined);
  assert.is(guestHoldsHostState('', 256, () => ''), undefined);
});

test('without a System.map the addresses stay bare; far from any symbol they are not named', () => {
  assert.is(symbolizer(undefined)(0xffffffff81600aa0n), '');
  assert.is(symbolizer(map)(0xffffffff90000000n), '');
  assert.is(symbolizer(map)(0xffffffff81600ad4n), 'asm_exc_int3+0x4');
});

test.run();
