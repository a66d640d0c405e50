/**
 * Where the CPUs of an L1 host that stopped answering are, from its QEMU's
 * `info registers -a` (QMP at L0 answers whatever the host's kernel does):
 * per CPU its privilege level, RIP and CR2, by symbol when the L1 kernel's
 * System.map is at hand, and whether it is halted. A host whose CPUs all
 * run in the kernel and last faulted on an address in the kernel's own text
 * (CR2 in the kernel image: the page-fault handler then faults too, over
 * and over) has lost its kernel mappings: its memory is corrupt and it is
 * dead, not slow. Seen on the nested testbed's destination host during
 * post-copy (issue #12's notes); saying so at once saves a post-mortem.
 */
import { existsSync, readFileSync } from 'node:fs';

export interface L1Cpu {
  cpu: number;
  cpl: number;
  halted: boolean;
  rip: bigint;
  cr2: bigint;
  cr3: bigint;
}

/** The CPUs in `info registers -a` output. */
export function parseCpus(text: string): L1Cpu[] {
  const cpus: L1Cpu[] = [];
  for (const block of text.split(/^CPU#/m).slice(1)) {
    const hex = (name: string): bigint => {
      const v = new RegExp(`\\b${name}=([0-9a-fA-F]+)`).exec(block)?.[1];
      return v === undefined ? -1n : BigInt(`0x${v}`);
    };
    const cpl = Number(/\bCPL=(\d)/.exec(block)?.[1] ?? -1);
    cpus.push({ cpu: Number(/^(\d+)/.exec(block)?.[1] ?? cpus.length), cpl, halted: /\bHLT=1\b/.test(block), rip: hex('RIP'), cr2: hex('CR2'), cr3: hex('CR3') });
  }
  return cpus;
}

/** A System.map as a sorted symbol table: address → "symbol+0xoff". */
export function symbolizer(systemMap: string | undefined): (a: bigint) => string {
  if (!systemMap || !existsSync(systemMap)) return () => '';
  const syms = readFileSync(systemMap, 'utf8').split('\n').flatMap((l) => {
    const [a, t, n] = l.split(' ');
    return a && n && /^[tTwW]$/.test(t ?? '') ? [{ a: BigInt(`0x${a}`), n }] : [];
  }).sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : 0));
  return (a) => {
    let lo = 0;
    let hi = syms.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (syms[mid]!.a <= a) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (best < 0 || a - syms[best]!.a > 0x100000n) return '';
    return `${syms[best]!.n}+0x${(a - syms[best]!.a).toString(16)}`;
  };
}

/** x86-64 Linux maps its image here (and modules above, up to the fixmap). */
const KERNEL_TEXT = 0xffffffff80000000n;
const KERNEL_TEXT_END = 0xffffffffc0000000n;

/** One line per CPU and, when it is one, the verdict that the host's kernel is dead. */
export function describeCpus(cpus: L1Cpu[], sym: (a: bigint) => string): string[] {
  const hex = (v: bigint) => v.toString(16).padStart(16, '0');
  const named = (v: bigint) => (sym(v) ? `${hex(v)} (${sym(v)})` : hex(v));
  const lines = cpus.map((c) => `CPU#${c.cpu}: ${c.halted ? 'halted' : 'running'} in ${c.cpl === 0 ? 'kernel' : 'user'} mode, RIP=${named(c.rip)} CR2=${named(c.cr2)} CR3=${hex(c.cr3)}`);
  if (cpus.length && cpus.every((c) => c.cpl === 0 && !c.halted && c.cr2 >= KERNEL_TEXT && c.cr2 < KERNEL_TEXT_END)) {
    lines.push('every CPU faults on the kernel\'s own code (CR2 in the kernel image): the host\'s kernel mappings are gone, its memory is corrupt — the host is dead, not slow');
  }
  return lines;
}

/**
 * An L2 guest's CPU (its QEMU's `info registers`) that holds its L1 host's
 * state instead of its own: CR3 beyond the guest's RAM cannot be the
 * guest's page tables. Seen on the nested testbed (issue #12's notes): the
 * L2 vCPU left at RIP = the L1 kernel's __svm_vcpu_run+0x9c, the instruction
 * after VMRUN, with the L1 process's CR3 — the world switch of nested SVM,
 * emulated by TCG at L0, stored the host's state as the guest's. Says so
 * (with RIP by the L1 kernel's symbols when it is there), or undefined.
 */
export function guestHoldsHostState(text: string, guestMemMib: number, l1Sym: (a: bigint) => string): string | undefined {
  const cpu = parseCpus(text)[0];
  if (!cpu || cpu.cr3 < 0n) return undefined;
  const ram = BigInt(guestMemMib) << 20n;
  if ((cpu.cr3 & ~0xfffn) < ram) return undefined;
  const where = l1Sym(cpu.rip);
  return `the guest's CPU holds its L1 host's state, not its own: CR3 0x${cpu.cr3.toString(16)} lies beyond its ${guestMemMib} MiB of RAM` +
    `${where ? ` and RIP 0x${cpu.rip.toString(16)} is the L1 host kernel's ${where}` : ''}: nested SVM's world switch (emulated by TCG at L0) stored host state as the guest's — a testbed failure, not the migration's`;
}
