/** What the hang watch's report (tests/nested/hang-watch.sh) says about a hung test program. */

/** Where a hung qtest was, and the sentence that says so. */
export interface HangStage {
  /**
   * boot: the source guest never wrote to its serial port, so the migration
   * had not started (an L2 firmware stall of nested virtualisation on TCG);
   * migration: it hung in or after the migration; unknown: the report has
   * no serial lines.
   */
  stage: 'boot' | 'migration' | 'unknown';
  text: string;
}

/** Where a hung qtest was, from the watch's report (tests/nested/hang-watch.sh). */
export function hangStage(out: string): HangStage {
  const src = /src_serial: (\d+) bytes/.exec(out);
  const dst = /dest_serial: (\d+) bytes/.exec(out);
  if (!src) return { stage: 'unknown', text: 'stage unknown (no serial output found)' };
  if (src[1] === '0') return { stage: 'boot', text: 'before the migration: the source guest never booted (an L2 firmware stall, not the migration)' };
  if (dst && dst[1] === '0') return { stage: 'migration', text: 'during or after the migration: the destination guest never wrote to its serial port' };
  return { stage: 'migration', text: 'during or after the migration: both guests wrote to their serial ports' };
}

/**
 * Whether a hung program's L2 vCPU runs with its host's state: the watch
 * resolves each guest RIP it reports against the L1 kernel's symbols, and a
 * vCPU of a KVM selftest (or a qtest's QEMU) at an address of the L1 kernel
 * — `__svm_vcpu_run`, just past its VMRUN — was given L1's own registers
 * when the L0 emulator (TCG's nested SVM) entered it: the guest then loops
 * on page faults at that address for ever. A failure of the testbed, which
 * nothing the program does can cause — unless a fault is also waiting on a
 * userfaultfd (its fdinfo's total after 2 s) or a thread sleeps in
 * handle_userfault: then the hang may be ours, and this says nothing (the guests of the selftests and the
 * qtests never run at such addresses; a Linux L2 guest would, so this is
 * not for the bench's). The sentence that says so, or
 * undefined when the report shows no such vCPU.
 */
export function l2RunsHostState(out: string): string | undefined {
  if (!/^HUNG:/m.test(out)) return undefined;
  // A fault still waiting, or a thread asleep in one, may be what hangs (a lost wake-up of ours): not the testbed's, whatever else a vCPU does.
  const waiting = [...out.matchAll(/userfaultfd \(fd \d+\): pending \S+ then \d+, total \S+ then (\d+)/g)].some((m) => Number(m[1]) > 0);
  if (waiting || /handle_userfault/.test(out)) return undefined;
  const exit = /^-- (\d+) ([^:]+): vcpu (\d+) reason (\S+) rip (0x[0-9a-f]+) \(L1 kernel: ([^)]+)\)$/m.exec(out);
  if (exit) {
    const [, n, , vcpu, reason, rip, sym] = exit;
    return `its vCPU ${vcpu} runs at ${rip}, an address of the L1 kernel (${sym}): the L0 emulator's nested SVM gave it its host's registers (${n} ${reason} exits in 1 s there)`;
  }
  // Only without the exit trace: with it, a vCPU looping at an L1 address would have shown there.
  const insn = /^== no KVM tracepoints here/m.test(out) ? /^-- the last emulated instruction is at ([0-9a-fx]+): in the L1 kernel, (\S+)/m.exec(out) : null;
  if (insn) return `KVM last emulated an instruction of its guest at ${insn[1]}, an address of the L1 kernel (${insn[2]}): the L0 emulator's nested SVM gave the vCPU its host's registers`;
  return undefined;
}
