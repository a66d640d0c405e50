/**
 * What a transport asks of both QEMUs, as data (the engine sets it, arrange.ts):
 *
 *   tcp      nothing: the migration channel carries every page
 *   preempt  capability postcopy-preempt on both sides (upstream)
 *   rdma     capability postcopy-rdma-pull on both sides (heca series 2; needs
 *            postcopy-ram; refused with postcopy-preempt and release-ram), and
 *            postcopy-rdma-address on both sides: the destination host's
 *            address on the link (the source connects there, the destination
 *            listens there), postcopy-rdma-port 0 (any: the destination
 *            announces it on the migration channel)
 *   rdma-kernel  rdma, and postcopy-rdma-engine kernel on the destination: its
 *            kernel's userfaultfd RDMA resolver (heca's kernel-patches) READs
 *            and installs the faulting pages; the destination QEMU refuses the
 *            migration up front when its kernel has no resolver
 *
 * The destination gets its part before migrate-incoming.
 */
import type { MigrateSetParameters, MigrationCapabilityStatus } from '../../tools/qmp/types.ts';
import type { Transport } from '../results/schema.ts';

export interface TransportSetup {
  /** Capabilities set on both sides, with postcopy-ram. */
  capabilities: MigrationCapabilityStatus[];
  /** Parameters per side ({} for none). */
  parameters: { source: MigrateSetParameters; destination: MigrateSetParameters };
  /** What a QEMU that refuses them lacks, for the error: "heca's series 2 (postcopy-rdma-pull)". */
  needs: string;
}

/** The setup of `transport` when the destination's address on the link is `dstAddr`. */
export function transportSetup(transport: Transport, dstAddr: string): TransportSetup {
  switch (transport) {
    case 'tcp':
      return { capabilities: [], parameters: { source: {}, destination: {} }, needs: '' };
    case 'preempt':
      return { capabilities: [{ capability: 'postcopy-preempt', state: true }], parameters: { source: {}, destination: {} }, needs: 'QEMU 8.0 or later (postcopy-preempt)' };
    case 'rdma':
    case 'rdma-kernel': {
      const p: MigrateSetParameters = { 'postcopy-rdma-address': dstAddr, 'postcopy-rdma-port': 0 };
      const capabilities: MigrationCapabilityStatus[] = [{ capability: 'postcopy-rdma-pull', state: true }];
      if (transport === 'rdma') return { capabilities, parameters: { source: { ...p }, destination: { ...p } }, needs: "heca's series 2 QEMU patches (capability postcopy-rdma-pull)" };
      return {
        capabilities,
        parameters: { source: { ...p }, destination: { ...p, 'postcopy-rdma-engine': 'kernel' } },
        needs: "heca's QEMU patches 19-20 (parameter postcopy-rdma-engine) and a destination kernel with heca's userfaultfd RDMA resolver (kernel-patches, CONFIG_USERFAULTFD_RDMA_RESOLVER)",
      };
    }
  }
}

/** A capability or parameter of the transport that a QEMU refused as unknown, from its error; undefined for other errors. */
export function missingTransportFeature(desc: string): string | undefined {
  const name = /postcopy-rdma-(pull|address|port|allow-cleartext|engine)|postcopy-preempt/.exec(desc)?.[0];
  return name && /unexpected|not found|invalid parameter|needs a QEMU built/i.test(desc) ? name : undefined;
}
