/**
 * What the engine needs of a testbed for one run: where each side's QEMU
 * runs, the addresses on the link between them, the bytes on that link.
 * Both testbeds (local/, nested/) provide one.
 */
import type { Spawner, VmConfig } from '../guest/vm.ts';
import type { CutDone } from './cut.ts';
import type { CoreDump } from './nested/cores.ts';
import type { AsyncPfCounts } from './nested/kvm-trace.ts';
import type { RdmaCounterPair } from './nested/rxe.ts';

/** The two "hosts" of one run, as the engine uses them. */
export interface RunTestbed {
  readonly kind: 'local' | 'nested';
  /** Address of each side on the link between them. */
  readonly srcAddr: string;
  readonly dstAddr: string;
  spawn(role: 'src' | 'dst'): Spawner;
  /** What a VM on this side needs beyond the common config (TCP sockets in an L1 host). */
  vmExtra(role: 'src' | 'dst'): Partial<VmConfig>;
  /** What each thread of process `pid` on that side is doing (name, state, kernel stack), for a run that failed. */
  threads(role: 'src' | 'dst', pid: number): Promise<string>;
  /**
   * Why a guest CPU state (its QEMU's `info registers`) cannot be the guest's
   * own, when this testbed knows (nested: an L2 vCPU holding its L1 host's
   * state); undefined otherwise.
   */
  explainGuestCpu?(registers: string, guestMemMib: number): string | undefined;
  /**
   * The core dumps the processes this run started left (nested: an L2 QEMU
   * that crashed in its L1 host), each read with gdb; absent where the
   * testbed keeps none. Complete once those processes have exited.
   */
  coreDumps?(): Promise<CoreDump[]>;
  /** Bytes on the link, as the source's end counts them. */
  wireBytes(): Promise<{ tx: number; rx: number }>;
  /** Each side's RDMA device counters (the nested testbed, where rxe0 runs on the link). */
  rdmaCounters?(): Promise<RdmaCounterPair>;
  /**
   * KVM's asynchronous page faults on the destination, counted from its
   * trace events (the nested testbed: KVM in the L1 host runs the L2 guest):
   * start before `migrate`, read once the migration is over; stop (no
   * counts) when it failed or was cancelled, so that the next run's host is
   * not left tracing.
   */
  asyncPfTrace?: { start(): Promise<void>; read(): Promise<AsyncPfCounts>; stop(): Promise<void> };
  /**
   * A cut fault (cut.ts): every TCP connection over the link reset, the link
   * down on both ends.
   */
  cutLink(): Promise<CutDone>;
  /** The cut link up again on both ends; with `rdma`, also the RDMA devices on it ACTIVE again. */
  restoreLink(opts?: { rdma?: boolean }): Promise<void>;
  destroy(): Promise<void>;
}
