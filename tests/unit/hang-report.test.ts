/** Where a hung RDMA qtest was, from the hang watch's report (tests/nested/hang-report.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hangStage, l2RunsHostState } from '../../tests/nested/hang-report.ts';

// Lines as tests/nested/hang-watch.sh writes them (a real report of a hung rdma/link-down run).
const report = (src: number, dst: number): string => [
  'HUNG: /work/main/build/qemu/build/tests/qtest/migration-test --full -p /x86_64/migration/postcopy/rdma/link-down has not finished after 200 s; what it is doing:',
  `/tmp/migration-test-O6EJZ3/src_serial: ${src} bytes, ends with: ${src ? ' A B B' : ''}`,
  `/tmp/migration-test-O6EJZ3/dest_serial: ${dst} bytes, ends with: `,
  '== pid 1994: /work/main/build/qemu/build/qemu-system-x86_64 -L /usr/share/seabios',
].join('\n');

test('a source guest that never wrote to its serial port never booted: the hang came before the migration', () => {
  const h = hangStage(report(0, 0));
  assert.is(h.stage, 'boot');
  assert.match(h.text, /^before the migration: the source guest never booted/);
});

test('a source guest that wrote: the hang is the migration\'s, and whether the destination ever wrote is said', () => {
  const silent = hangStage(report(3, 0));
  const both = hangStage(report(3, 5));
  assert.equal([silent.stage, both.stage], ['migration', 'migration']);
  assert.match(silent.text, /^during or after the migration: the destination guest never wrote/);
  assert.match(both.text, /^during or after the migration: both guests wrote/);
});

test('a report without the serial lines: unknown', () => {
  const h = hangStage('HUNG: x has not finished after 200 s');
  assert.is(h.stage, 'unknown');
  assert.match(h.text, /^stage unknown/);
});

// From a hung demand_paging_test (kselftests.test.ts, 2026-11-28): vCPU 1 looping on NPF exits at L1's own RIP.
const dpHang = [
  'HUNG: /work/main/build/kernel/selftests/kvm/demand_paging_test -u MISSING -v 2 -b 64M -R 10.214.9.1 has not finished after 60 s; what it is doing:',
  '-- demand_paging_t-217     [001] .....   111.516623: kvm_emulate_insn: 0:ffffffff815cc85c: (prot64)',
  '-- the last emulated instruction is at ffffffff815cc85c: in the L1 kernel, __svm_vcpu_run+0x9c (the L2 vCPU holds its host\'s RIP)',
  '== KVM exits in 1 s, by thread, reason and guest RIP (count first)',
  '-- 21186 demand_paging_t-217: vcpu 1 reason npf rip 0xffffffff815cc85c (L1 kernel: __svm_vcpu_run+0x9c)',
  '== program\'s userfaultfd (fd 10): pending 0 then 0, total 0 then 0 (2 s apart)',
];

test('a hung program whose vCPU runs at an L1 kernel address: its host\'s state, said with the vCPU, RIP and symbol', () => {
  const why = l2RunsHostState(dpHang.join('\n'));
  assert.ok(why);
  assert.match(why, /^its vCPU 1 runs at 0xffffffff815cc85c, an address of the L1 kernel \(__svm_vcpu_run\+0x9c\)/);
  assert.match(why, /21186 npf exits in 1 s/);
});

test('without the exit trace, the last emulated instruction in the L1 kernel says the same; with it, it says nothing alone', () => {
  const noTrace = dpHang.filter((l) => !l.includes('vcpu 1 reason') && !l.startsWith('== KVM exits')).concat('== no KVM tracepoints here (a kernel without tracing, or tracefs not mounted)');
  assert.match(l2RunsHostState(noTrace.join('\n')) ?? '', /^KVM last emulated an instruction of its guest at ffffffff815cc85c, an address of the L1 kernel \(__svm_vcpu_run\+0x9c\)/);
  assert.is(l2RunsHostState(dpHang.filter((l) => !l.includes('vcpu 1 reason')).join('\n')), undefined, 'the exits were traced and none was at an L1 address');
});

test('a fault still waiting on the userfaultfd, or a thread asleep in handle_userfault: maybe our hang, never the testbed\'s', () => {
  const waiting = dpHang.map((l) => l.replace('total 0 then 0', 'total 0 then 1'));
  assert.is(l2RunsHostState(waiting.join('\n')), undefined);
  const asleep = [...dpHang, '-- demand_paging_t (handle_userfault): [<0>] handle_userfault+0x3a1/0x6b0 [<0>] do_user_addr_fault+0x1b4/0x6b0'];
  assert.is(l2RunsHostState(asleep.join('\n')), undefined);
});

test('a hung program whose vCPU runs its own code, or a report that is no hang: not the testbed\'s', () => {
  const own = ['HUNG: x has not finished after 60 s', '-- 900 demand_paging_t-217: vcpu 0 reason npf rip 0x401a2c'].join('\n');
  assert.is(l2RunsHostState(own), undefined);
  assert.is(l2RunsHostState(dpHang.slice(1).join('\n')), undefined);
});

test.run();
