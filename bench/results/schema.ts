/**
 * The result of one `bench/run.ts` invocation, written as OUT/result.json.
 * This file is the contract between the engine (which fills it), and the
 * charts, report and compare commands (which read it). Documented in README.md.
 */

export const RESULT_SCHEMA_VERSION = 1;

export type RunStatus = 'completed' | 'not-converged' | 'failed';

export interface Environment {
  /** 'tcg' or 'kvm', and why it was chosen (--accel auto boots a probe guest). */
  accel: 'tcg' | 'kvm';
  accel_reason: string;
  qemu_version: string;
  /** The host kernel the QEMUs run on (uname -r). */
  kernel_version: string;
  /** The L2 guest kernel booted inside the VMs. */
  guest_kernel: string;
  link: LinkProfileName;
  link_desc: string;
  host_cpus: number;
  host_mem_mib: number;
  /** local: two network namespaces on this machine; nested: two L1 hosts (the QEMUs run in them, L2 guests). */
  testbed: 'local' | 'nested';
  /** The nested testbed: L1 hosts and the raw link between them, measured in the same invocation. */
  nested?: {
    l1_accel: string;
    l1_kernel: string;
    up_ms: number;
    hosts: { name: string; boot_ms: number; /** Boot attempts given up (hung, or QEMU crashed) before the one that came up. */ boot_hangs?: number; nested_kvm: boolean; nested_kvm_detail: string; rxe_state: string }[];
    link_probes?: LinkProbes;
  };
  /** BUILD-INFO.json fingerprint of the QEMU used (patch series hash). */
  qemu_build?: { version: string; series_sha256: string; patches: string[] };
  started_at: string;
}

/* The nested testbed's link probes (bench/testbed/nested/link-probes.ts measures them). */

export interface ReadLatency {
  bytes: number;
  iterations: number;
  t_min_us: number;
  t_max_us: number;
  t_typical_us: number;
  t_avg_us: number;
  t_stdev_us: number;
  p99_us: number;
  p999_us: number;
}

export interface ReadBandwidth {
  bytes: number;
  iterations: number;
  bw_peak_mb_s: number;
  bw_avg_mb_s: number;
  msg_rate_mpps: number;
  /** MB/sec as perftest prints it (MB = 2^20 bytes in perftest 4.5). */
  unit: string;
}

export interface LinkProbes {
  ib_read_lat: ReadLatency;
  ib_read_bw: ReadBandwidth;
  /** qperf tcp_lat, 4 KiB messages: one-way latency = half the request/response round trip. */
  tcp_lat_us: number;
  tcp_rr_us: number;
  /** qperf tcp_bw, 64 KiB messages, bytes/s. */
  tcp_bw_bytes_s: number;
  tools: string;
}

export type LinkProfileName = 'lan1g' | 'lan10g' | 'wan' | 'unlimited';

export interface PhaseMark {
  /** ms since the `migrate` command was issued. */
  at_ms: number;
  name: 'migrate' | 'postcopy-switch' | 'stop' | 'resume-dest' | 'completed' | 'failed';
}

export interface OpsSample {
  /** ms relative to the `migrate` command (negative: before it). Host receive time. */
  t_ms: number;
  /** Guest page writes completed in this interval. */
  ops: number;
  /** Interval length in ms as the guest measured it. */
  interval_ms: number;
  /** Longest gap between two consecutive ops the guest saw in this interval. */
  max_stall_ms: number;
  side: 'src' | 'dst';
}

/**
 * The destination's post-copy statistics from query-migrate, named after the
 * QMP members they come from (upstream QEMU 10.1's, present only with the
 * postcopy-blocktime capability; heca's QEMU adds three). A fault is one
 * thread waiting for one page from the source, timed from the fault to the
 * page placed.
 */
export interface PostcopyLatency {
  /** Remote faults: the sum of latency_dist. */
  faults: number;
  /** postcopy-latency: average remote fault latency, ns. */
  latency_mean_ns: number;
  /** postcopy-latency-max (heca): the longest fault, ns; null with upstream QEMU. */
  latency_max_ns: number | null;
  /**
   * postcopy-latency-dist: element N counts faults resolved in
   * [2^N, 2^(N+1)) µs; element 0 also holds < 1 µs, the last everything above.
   */
  latency_dist: number[];
  /** postcopy-vcpu-latency: average per vCPU, ns. */
  vcpu_latency_ns: number[];
  /** postcopy-non-vcpu-latency: average over threads other than vCPUs, ns. */
  non_vcpu_latency_ns: number;
  /** postcopy-demand-pages (heca): pages placed during post-copy that a fault had requested; null with upstream QEMU. */
  demand_pages: number | null;
  /** postcopy-background-pages (heca): pages placed during post-copy that nobody requested; null with upstream QEMU. */
  background_pages: number | null;
  /** postcopy-blocktime: ms during which all vCPUs were blocked on faults at once. */
  blocktime_ms: number;
  /** postcopy-vcpu-blocktime: ms each vCPU was blocked on faults. */
  vcpu_blocktime_ms: number[];
}

export interface RunRecord {
  repeat: number;
  status: RunStatus;
  /** Why it failed or did not converge; absent when completed. */
  reason?: string;
  total_time_ms: number | null;
  /** Downtime as the source QEMU reports it (query-migrate `downtime`). */
  downtime_ms: number | null;
  /**
   * Downtime as the host saw it: from the source's STOP event to the
   * destination's RESUME event (QMP event timestamps). For post-copy this
   * is the real pause the guest sees; QEMU's own figure stops earlier.
   */
  downtime_host_ms?: number | null;
  setup_time_ms: number | null;
  bytes: {
    /** RAM bytes sent during pre-copy (before the switch to post-copy). */
    precopy: number;
    /** Bytes sent while the VM was stopped. */
    downtime: number;
    /** RAM bytes sent after the switch to post-copy. */
    postcopy: number;
    /** All bytes that crossed the veth, both directions, from its counters. */
    wire: number;
    /** Total RAM bytes QEMU reports transferred. */
    ram_transferred: number;
  };
  pages: {
    normal: number;
    zero: number;
    postcopy_requests: number;
    dirty_sync_count: number;
  };
  guest: {
    /** Largest stall the guest saw, across the whole run. */
    max_stall_ms: number | null;
    /** Longest gap between two progress lines as the host received them. */
    max_gap_host_ms: number | null;
    ops_timeline: OpsSample[];
  };
  /**
   * The destination's post-copy fault latency and blocktime, read when the
   * migration completed. Absent without post-copy, when the destination
   * refused the postcopy-blocktime capability, or when its QEMU reports no
   * latency (before 10.1 without heca's patches).
   */
  postcopy_latency?: PostcopyLatency;
  /** Guest page-by-page check after migration. ok=false fails the run. */
  integrity: { ok: boolean; pages_checked: number; bad_pages: number; first_bad?: number[] };
  phases: PhaseMark[];
  /** Raw final query-migrate reply from the source, for anything not lifted above. */
  query_migrate?: unknown;
  /** Where the logs of this run are, relative to OUT. */
  logs_dir: string;
}

export interface ScenarioParams {
  /** Human name (--scenario NAME). */
  name: string;
  /** Derived from the parameters: two scenarios with equal ids are the same experiment. */
  id: string;
  mode: 'precopy' | 'postcopy' | 'hybrid';
  /**
   * postcopy/hybrid: who switches to post-copy: the management side
   * (migrate-start-postcopy, upstream) or QEMU itself (heca's
   * postcopy-switchover parameter). Absent: mgmt.
   */
  switchover?: 'mgmt' | 'qemu';
  /** hybrid: seconds of pre-copy before the switch (by the management side, or QEMU's postcopy-deadline). */
  switch_after_s?: number;
  /**
   * postcopy/hybrid: a pre-copy phase that converges switches through
   * post-copy instead of stop-and-copy (heca's postcopy-on-convergence
   * parameter). Absent: false, stop-and-copy as upstream.
   */
  postcopy_on_convergence?: boolean;
  /** precopy: give up after this many seconds without convergence. */
  converge_timeout_s: number;
  description: string;
}

export interface WorkloadParams {
  name: string;
  /** Guest RAM in MiB. */
  mem_mib: number;
  /** Memory the workload owns and stamps, MiB. */
  arena_mib: number;
  /** Part of the arena written, MiB. */
  working_set_mib: number;
  /** Page writes per second, 0 = as fast as possible. */
  write_rate: number;
  pattern: 'sequential' | 'random' | 'hotcold';
}

export interface Summary {
  /** Per metric: median, min, max over completed runs. */
  [metric: string]: { median: number | null; min: number | null; max: number | null; n: number };
}

export interface ScenarioResult {
  scenario: ScenarioParams;
  workload: WorkloadParams;
  runs: RunRecord[];
  summary: Summary;
}

export interface Comparison {
  /** Scenario id of the baseline: the first scenario with a completed run. */
  baseline: string;
  /** scenario id → metric → median over repeats of (scenario run r / baseline run r). */
  ratios: Record<string, Record<string, number | null>>;
  /** scenario id → metric → [min, max] of those ratios. */
  spread?: Record<string, Record<string, [number, number] | null>>;
  /** scenario id → number of repeats where both runs completed. */
  pairs?: Record<string, number>;
}

export interface BenchResult {
  schema: typeof RESULT_SCHEMA_VERSION;
  /** The first scenario's id when only one ran; else the ids joined by '+'. */
  scenario: string;
  environment: Environment;
  /** One entry per scenario, in the order they ran (repeats interleaved). */
  scenarios: ScenarioResult[];
  /** Same data as scenarios[0].runs, for the single-scenario case (issue #2's contract). */
  runs: RunRecord[];
  summary: Summary;
  /** Ratios against the baseline scenario, per metric: median of per-repeat ratios. */
  comparison?: Comparison;
  command: string[];
}
