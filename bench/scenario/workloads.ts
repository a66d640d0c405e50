/**
 * Guest workloads: what the C workload inside the L2 guest does while it is
 * migrated. Sizes derive from --mem unless given.
 */
import { HecaError } from '../../tools/core/errors.ts';
import type { WorkloadParams } from '../results/schema.ts';

/** Guest RAM the kernel, initramfs and page tables need besides the arena. */
export const GUEST_OVERHEAD_MIB = 96;

interface Preset {
  description: string;
  pattern: WorkloadParams['pattern'];
  /** Page writes per second; 0 = flat out. */
  write_rate: number;
  /** Working set as a fraction of the arena. */
  ws_fraction: number;
  /** Writer threads and the vCPUs they are spread over (default 1 and 1). */
  threads?: number;
  vcpus?: number;
}

export const WORKLOADS: Record<string, Preset> = {
  'write-heavy': { description: 'random page writes over the whole arena, flat out', pattern: 'random', write_rate: 0, ws_fraction: 1 },
  hotcold: { description: '90% of writes to the hottest 10% of the working set, flat out', pattern: 'hotcold', write_rate: 0, ws_fraction: 1 },
  sequential: { description: 'sequential sweep over the arena, flat out', pattern: 'sequential', write_rate: 0, ws_fraction: 1 },
  light: { description: 'random writes at 2000 pages/s over a quarter of the arena (pre-copy converges)', pattern: 'random', write_rate: 2000, ws_fraction: 0.25 },
  idle: { description: 'the arena is stamped once, then only 10 writes/s', pattern: 'random', write_rate: 10, ws_fraction: 0.01 },
  threads: { description: '4 writer threads on 2 vCPUs, each on its own quarter of the arena, 90% of its writes to the hottest 10% of it, flat out: a thread waiting for a page must not stop the others', pattern: 'hotcold', write_rate: 0, ws_fraction: 1, threads: 4, vcpus: 2 },
  'threads-paced': { description: 'as threads, at 6000 page writes/s in all (1500/s each, sleeping between writes): what post-copy keeps of a paced guest, and what a vCPU halted on a fault costs the other thread on it', pattern: 'hotcold', write_rate: 6000, ws_fraction: 1, threads: 4, vcpus: 2 },
};

export function listWorkloads(): string {
  const w = Math.max(...Object.keys(WORKLOADS).map((k) => k.length));
  return Object.entries(WORKLOADS).map(([k, v]) => `  ${k.padEnd(w)}  ${v.description}`).join('\n');
}

export function makeWorkload(name: string, memMib: number): WorkloadParams {
  const p = WORKLOADS[name];
  if (!p) throw new HecaError(`unknown workload "${name}"`, { why: 'it is not one of the defined workloads', fix: `use one of:\n${listWorkloads()}` });
  if (!Number.isInteger(memMib) || memMib < GUEST_OVERHEAD_MIB + 32) {
    throw new HecaError(`--mem ${memMib} is too small`, { why: `the guest needs ${GUEST_OVERHEAD_MIB} MiB for itself plus at least 32 MiB of arena`, fix: `use --mem ${GUEST_OVERHEAD_MIB + 32} or more` });
  }
  const arena = memMib - GUEST_OVERHEAD_MIB;
  return {
    name,
    mem_mib: memMib,
    arena_mib: arena,
    working_set_mib: Math.max(1, Math.floor(arena * p.ws_fraction)),
    write_rate: p.write_rate,
    pattern: p.pattern,
    ...(p.threads ? { threads: p.threads } : {}),
    ...(p.vcpus ? { vcpus: p.vcpus } : {}),
  };
}
