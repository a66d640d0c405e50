/**
 * The part of QEMU 10.0's QMP schema heca uses, as TypeScript types. Names and
 * optionality follow qapi/*.json; `execute` is typed by QmpCommands, anything
 * else goes through `executeRaw`.
 */

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpGreeting {
  QMP: { version: QmpVersion; capabilities: string[] };
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export type MigrationStatus =
  | 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'postcopy-active' | 'postcopy-paused'
  | 'postcopy-recover-setup' | 'postcopy-recover' | 'completed' | 'failed' | 'colo' | 'pre-switchover'
  | 'device' | 'wait-unplug';

/** qapi/migration.json MigrationStats. */
export interface MigrationStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  'normal-bytes': number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests': number;
  'page-size': number;
  'multifd-bytes': number;
  'pages-per-second': number;
  'precopy-bytes': number;
  'downtime-bytes': number;
  'postcopy-bytes': number;
  'dirty-sync-missed-zero-copy': number;
}

/** qapi/migration.json MigrationInfo (the reply of query-migrate). */
export interface MigrationInfo {
  status?: MigrationStatus;
  ram?: MigrationStats;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'blocked-reasons'?: string[];
  /*
   * Post-copy statistics of the destination, as upstream QEMU 10.1 reports
   * them (heca's QEMU 10.0 patches report the same): present only when the
   * destination has the postcopy-blocktime capability (counted from the
   * start of post-copy).
   * A fault is one thread (vCPU or not) waiting for one page from the source,
   * timed from the fault to the page placed.
   */
  /** ms during which all vCPUs were blocked on faults at once (uint32). */
  'postcopy-blocktime'?: number;
  /** Per vCPU: ms blocked on faults (uint32 list). */
  'postcopy-vcpu-blocktime'?: number[];
  /** Average remote page fault latency, ns (uint64; since 10.1). */
  'postcopy-latency'?: number;
  /**
   * Remote fault latency distribution (24 uint64): element N counts faults
   * resolved in [2^N, 2^(N+1)) µs; element 0 also holds those under 1 µs, the
   * last everything above. Their sum is the number of faults (since 10.1).
   */
  'postcopy-latency-dist'?: number[];
  /** Per vCPU: average remote fault latency, ns (uint64 list; since 10.1). */
  'postcopy-vcpu-latency'?: number[];
  /** Average remote fault latency of threads other than vCPUs, ns (uint64; since 10.1). */
  'postcopy-non-vcpu-latency'?: number;
  /** heca, same gate: the longest remote fault, ns (uint64). */
  'postcopy-latency-max'?: number;
  /** heca, same gate: pages placed during post-copy that a fault had requested (uint64). */
  'postcopy-demand-pages'?: number;
  /** heca, same gate: pages placed during post-copy that nobody requested: the background stream (uint64). */
  'postcopy-background-pages'?: number;
  /** heca series 2, with postcopy-rdma-pull: what the RDMA pull did on this side (recorded verbatim). */
  'postcopy-rdma'?: unknown;
  'socket-address'?: unknown[];
  [more: string]: unknown;
}

export interface MigrationCapabilityStatus {
  capability: string;
  state: boolean;
}

export interface MigrateSetParameters {
  'max-bandwidth'?: number;
  'downtime-limit'?: number;
  'max-postcopy-bandwidth'?: number;
  'multifd-channels'?: number;
  'avail-switchover-bandwidth'?: number;
  /** heca: 'manual' | 'immediate' | 'deadline'. */
  'postcopy-switchover'?: 'manual' | 'immediate' | 'deadline';
  /** heca: ms of pre-copy before QEMU switches (postcopy-switchover=deadline). */
  'postcopy-deadline'?: number;
  /**
   * heca: when a pre-copy phase converges, switch through post-copy instead of
   * stop-and-copy (default false).
   */
  'postcopy-on-convergence'?: boolean;
  /** heca series 2, postcopy-rdma-pull: the destination's RDMA address (source: connect to; destination: listen on). */
  'postcopy-rdma-address'?: string;
  /** heca series 2: RDMA CM port the destination listens on; 0 = any (announced on the migration channel). */
  'postcopy-rdma-port'?: number;
  /** heca series 2: allow RDMA READ in clear text with TLS on the migration channel. */
  'postcopy-rdma-allow-cleartext'?: boolean;
  /** heca QEMU patch 20 (unstable), destination: who resolves its page faults: QEMU's fault thread, the kernel's RDMA resolver, or the kernel where it can. */
  'postcopy-rdma-engine'?: 'user' | 'kernel' | 'auto';
  [more: string]: unknown;
}

/** qapi/run-state.json RunState. */
export type RunState =
  | 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch'
  | 'finish-migrate' | 'restore-vm' | 'running' | 'save-vm' | 'shutdown' | 'suspended' | 'watchdog'
  | 'guest-panicked' | 'colo';

/** The reply of query-status. */
export interface StatusInfo {
  running: boolean;
  status: RunState;
  /** Sent by older QEMUs only: 10.0's StatusInfo (qapi/run-state.json) has no such member. */
  singlestep?: boolean;
}

/** Command name → its arguments and its return value. */
export interface QmpCommands {
  qmp_capabilities: { args: { enable?: string[] }; ret: Record<string, never> };
  'query-version': { args: undefined; ret: QmpVersion };
  'query-status': { args: undefined; ret: StatusInfo };
  'query-migrate': { args: undefined; ret: MigrationInfo };
  'query-migrate-parameters': { args: undefined; ret: Record<string, unknown> };
  'query-migrate-capabilities': { args: undefined; ret: MigrationCapabilityStatus[] };
  'migrate-set-capabilities': { args: { capabilities: MigrationCapabilityStatus[] }; ret: Record<string, never> };
  'migrate-set-parameters': { args: MigrateSetParameters; ret: Record<string, never> };
  migrate: { args: { uri?: string; channels?: unknown[]; detach?: boolean; resume?: boolean }; ret: Record<string, never> };
  'migrate-incoming': { args: { uri?: string; channels?: unknown[]; 'exit-on-error'?: boolean }; ret: Record<string, never> };
  'migrate-start-postcopy': { args: undefined; ret: Record<string, never> };
  /** Out of band (exec-oob) on a paused destination: listen for the source's resume on `uri`. */
  'migrate-recover': { args: { uri: string }; ret: Record<string, never> };
  'migrate-pause': { args: undefined; ret: Record<string, never> };
  migrate_cancel: { args: undefined; ret: Record<string, never> };
  stop: { args: undefined; ret: Record<string, never> };
  cont: { args: undefined; ret: Record<string, never> };
  quit: { args: undefined; ret: Record<string, never> };
  system_reset: { args: undefined; ret: Record<string, never> };
  'human-monitor-command': { args: { 'command-line': string; 'cpu-index'?: number }; ret: string };
  /** Guest-physical memory [val, val+size) written to `filename` (a path for that QEMU's host). */
  pmemsave: { args: { val: number; size: number; filename: string; 'cpu-index'?: number }; ret: Record<string, never> };
  'query-cpus-fast': { args: undefined; ret: { 'cpu-index': number; 'thread-id': number; target: string }[] };
}

export type QmpCommandName = keyof QmpCommands;
export type ArgsOf<K extends QmpCommandName> = QmpCommands[K]['args'];
export type ReturnOf<K extends QmpCommandName> = QmpCommands[K]['ret'];
