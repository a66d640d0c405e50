/**
 * The result of one `bench/run.ts` invocation, written as OUT/result.json:
 * the contract between the engine (which fills it) and the charts, report and
 * compare commands (which read it). Written once, here, with TypeBox: the
 * TypeScript types are derived from these schemas, bench/results/io.ts
 * validates against them when writing and when loading, and
 * bench/results/result.schema.json publishes them as JSON Schema
 * (`npx tsx bench/compare.ts --schema` prints it). Documented in README.md.
 *
 * Versions: 1 is the format before issue #11; 2 adds `progress` (the
 * query-migrate history), `destinations` (one entry per destination, ready
 * for runs with several), the `cancel` phase mark, the scenario's `transport`
 * and `faults`, and the provenance of the QEMU binary. Everything version 2
 * added is optional in the schema, so a version 1 file validates as it is.
 * 3 (series 2, issue #12) adds the transports `preempt` and `rdma`, the
 * first fault (`cut`: the link down and its connections reset) with the
 * recovery the engine drove (`recovery`), the phase marks of a cut and its
 * recovery, and the `postcopy-rdma` member of either side's query-migrate,
 * verbatim (`postcopy_rdma`), and on the nested testbed each side's RDMA
 * device counters over the run (`rdma_counters`); all optional again, so
 * versions 1 and 2 load.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const RESULT_SCHEMA_VERSION = 3;
/** Versions bench/results/io.ts reads. */
export const READABLE_SCHEMA_VERSIONS = [1, 2, 3] as const;

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Num = (description?: string) => Type.Number(description ? { description } : {});
const Int = (description?: string) => Type.Integer(description ? { description } : {});
const Str = (description?: string) => Type.String(description ? { description } : {});

export const LinkProfileNameSchema = Type.Union([Type.Literal('lan1g'), Type.Literal('lan10g'), Type.Literal('wan'), Type.Literal('unlimited'), Type.Literal('jumbo', { description: 'version 3' })]);
export type LinkProfileName = Static<typeof LinkProfileNameSchema>;

/* The nested testbed's link probes (bench/testbed/nested/link-probes.ts measures them). */

export const ReadLatencySchema = Type.Object({
  bytes: Int(),
  iterations: Int(),
  t_min_us: Num(),
  t_max_us: Num(),
  t_typical_us: Num(),
  t_avg_us: Num(),
  t_stdev_us: Num(),
  p99_us: Num(),
  p999_us: Num(),
});
export type ReadLatency = Static<typeof ReadLatencySchema>;

export const ReadBandwidthSchema = Type.Object({
  bytes: Int(),
  iterations: Int(),
  bw_peak_mb_s: Num(),
  bw_avg_mb_s: Num(),
  msg_rate_mpps: Num(),
  unit: Str('MB/sec as perftest prints it (MB = 2^20 bytes in perftest 4.5)'),
});
export type ReadBandwidth = Static<typeof ReadBandwidthSchema>;

export const LinkProbesSchema = Type.Object({
  ib_read_lat: ReadLatencySchema,
  ib_read_bw: ReadBandwidthSchema,
  tcp_lat_us: Num('qperf tcp_lat, 4 KiB messages: one-way latency = half the request/response round trip'),
  tcp_rr_us: Num(),
  tcp_bw_bytes_s: Num('qperf tcp_bw, 64 KiB messages, bytes/s'),
  tools: Str(),
});
export type LinkProbes = Static<typeof LinkProbesSchema>;

/** The QEMU the runs used: heca's build (BUILD-INFO.json), or the binary $HECA_QEMU named. */
export const QemuBuildSchema = Type.Union([
  Type.Object({
    origin: Type.Optional(Type.Literal('heca-build', { description: 'absent in version 1 files' })),
    version: Str("the build's source version (Debian version, or git describe of a developer tree)"),
    series_sha256: Str('hash of the QEMU patch series it was built with'),
    patches: Type.Array(Str()),
    path: Type.Optional(Str()),
    sha256: Type.Optional(Str('of the binary')),
  }),
  Type.Object({
    origin: Type.Literal('HECA_QEMU', { description: 'a binary given by $HECA_QEMU: not a heca build' }),
    version: Str('its --version'),
    path: Str(),
    sha256: Str('of the binary'),
  }),
]);
export type QemuBuild = Static<typeof QemuBuildSchema>;

export const EnvironmentSchema = Type.Object({
  accel: Type.Union([Type.Literal('tcg'), Type.Literal('kvm')], { description: 'and why it was chosen in accel_reason (--accel auto boots a probe guest)' }),
  accel_reason: Str(),
  qemu_version: Str(),
  kernel_version: Str('the host kernel the QEMUs run on (uname -r; the L1 kernel on the nested testbed)'),
  guest_kernel: Str('the L2 guest kernel booted inside the VMs'),
  link: LinkProfileNameSchema,
  link_desc: Str(),
  link_rtt_ms: Type.Optional(Num('the round trip the link profile adds (netem delay; wan: 20); absent: none (version 3)')),
  host_cpus: Int(),
  host_mem_mib: Int(),
  testbed: Type.Union([Type.Literal('local'), Type.Literal('nested')], { description: 'local: two network namespaces on this machine; nested: two L1 hosts (the QEMUs run in them, L2 guests)' }),
  nested: Type.Optional(Type.Object({
    l1_accel: Str(),
    l1_kernel: Str(),
    l1_qemu: Type.Optional(Str('the QEMU running the L1 hosts at L0 (HECA_L1_QEMU, else the QEMU under test): its --version line and path (version 3)')),
    up_ms: Num(),
    hosts: Type.Array(Type.Object({
      name: Str(),
      boot_ms: Num(),
      boot_hangs: Type.Optional(Int('boot attempts given up (hung, or QEMU crashed) before the one that came up')),
      nested_kvm: Type.Boolean(),
      nested_kvm_detail: Str(),
      rxe_state: Str(),
    })),
    link_probes: Type.Optional(LinkProbesSchema),
    restarts: Type.Optional(Type.Array(Type.Object({
      before_run: Int('the run (1-based, in the order run) that got the new testbed'),
      silent: Type.Array(Str(), { description: 'the L1 hosts that no longer answered' }),
      report: Str('what L0 saw of them: file under the nested directory'),
      up_ms: Num(),
    }), { description: 'the testbed booted again between runs because an L1 host died (version 3)' })),
  }, { description: 'the nested testbed: L1 hosts and the raw link between them, measured in the same invocation' })),
  qemu_build: Type.Optional(QemuBuildSchema),
  postcopy_bandwidth_bytes_s: Type.Optional(Int("--postcopy-bandwidth: max-postcopy-bandwidth on every source, bytes/s (QEMU's background stream, and RDMA pull's background reads); absent: unlimited; version 3")),
  started_at: Str(),
});
export type Environment = Static<typeof EnvironmentSchema>;

export const PhaseNameSchema = Type.Union([
  Type.Literal('migrate'), Type.Literal('postcopy-switch'), Type.Literal('stop'), Type.Literal('resume-dest'),
  Type.Literal('completed'), Type.Literal('cancel', { description: 'the management side cancelled a pre-copy that did not converge (version 2)' }), Type.Literal('failed'),
  Type.Literal('cut', { description: 'a cut fault: the link went down, its connections reset (version 3)' }),
  Type.Literal('paused', { description: 'both sides reported postcopy-paused after a cut (version 3)' }),
  Type.Literal('link-restored', { description: 'the cut link is up again (version 3)' }),
  Type.Literal('recover', { description: 'migrate-recover (out of band) on the destination, then migrate resume on the source (version 3)' }),
  Type.Literal('resumed', { description: 'the source is back in postcopy-active (or done) after a recovery (version 3)' }),
]);
export type PhaseName = Static<typeof PhaseNameSchema>;

export const PhaseMarkSchema = Type.Object({
  at_ms: Num('ms since the `migrate` command was issued'),
  name: PhaseNameSchema,
});
export type PhaseMark = Static<typeof PhaseMarkSchema>;

export const OpsSampleSchema = Type.Object({
  t_ms: Num('ms relative to the `migrate` command (negative: before it); host receive time'),
  ops: Num('guest page writes completed in this interval'),
  interval_ms: Num('interval length as the guest measured it'),
  max_stall_ms: Num('longest gap between two consecutive ops the guest saw in this interval'),
  side: Type.Union([Type.Literal('src'), Type.Literal('dst')]),
  threads: Type.Optional(Type.Array(Num(), { description: "each writer thread's ops in this interval (a workload with threads > 1; version 3)" })),
});
export type OpsSample = Static<typeof OpsSampleSchema>;

/** One sample of the source's query-migrate while the migration ran (version 2). */
export const ProgressSampleSchema = Type.Object({
  t_ms: Num('ms since `migrate`'),
  status: Str("query-migrate's status"),
  transferred: Num('RAM bytes sent so far'),
  remaining: Num('RAM bytes still to send'),
  dirty_rate: Num('dirty-pages-rate: pages dirtied per second'),
  postcopy_requests: Num('pages the destination asked for so far'),
  mbps: Num("QEMU's throughput figure, Mbit/s"),
});
export type ProgressSample = Static<typeof ProgressSampleSchema>;

/**
 * The destination's post-copy statistics from query-migrate, named after the
 * QMP members they come from (upstream QEMU 10.1's, present only with the
 * postcopy-blocktime capability; heca's QEMU adds three). A fault is one
 * thread waiting for one page from the source, timed from the fault to the
 * page placed.
 */
export const PostcopyLatencySchema = Type.Object({
  faults: Int('remote faults: the sum of latency_dist'),
  latency_mean_ns: Num('postcopy-latency: average remote fault latency, ns'),
  latency_max_ns: Nullable(Num('postcopy-latency-max (heca): the longest fault, ns; null with upstream QEMU')),
  latency_dist: Type.Array(Int(), { description: 'postcopy-latency-dist: element N counts faults resolved in [2^N, 2^(N+1)) µs; element 0 also holds < 1 µs, the last everything above' }),
  vcpu_latency_ns: Type.Array(Num(), { description: 'postcopy-vcpu-latency: average per vCPU, ns' }),
  non_vcpu_latency_ns: Num('postcopy-non-vcpu-latency: average over threads other than vCPUs, ns'),
  demand_pages: Nullable(Num('postcopy-demand-pages (heca): pages placed during post-copy that a fault had requested; null with upstream QEMU')),
  background_pages: Nullable(Num('postcopy-background-pages (heca): pages placed during post-copy that nobody requested; null with upstream QEMU')),
  blocktime_ms: Num('postcopy-blocktime: ms during which all vCPUs were blocked on faults at once'),
  vcpu_blocktime_ms: Type.Array(Num(), { description: 'postcopy-vcpu-blocktime: ms each vCPU was blocked on faults' }),
});
export type PostcopyLatency = Static<typeof PostcopyLatencySchema>;

export const SlowWritesSchema = Type.Object({
  span_ms: Num('guest time the histogram covers'),
  ops: Int('page writes in that time'),
  buckets: Type.Array(Type.Tuple([Int(), Int()]), { description: '[lower bound in ns, count]: page writes that took 65.5 µs or more, in quarter-octave buckets by duration (the guest workload\'s `slow`); a write that faults in post-copy is one' }),
}, { description: "the guest's slow page writes (version 3): slow_before from its start to `migrate` (the source), slow_migrating from `migrate` to the end of the migration (the destination, asked before its integrity check)" });
export type SlowWrites = Static<typeof SlowWritesSchema>;

export const FaultPathSchema = Type.Object({
  faults: Int('demand faults resolved by a READ of their own, traced'),
  to_post_us: Num('median: the fault thread got the fault -> its READ posted'),
  read_us: Num('median: READ posted -> its completion polled'),
  to_place_us: Num('median: completion polled -> page placed (UFFDIO_COPY returned, the vCPU woken)'),
  total_us: Num('median of the sum, per fault'),
  read_share: Num('median over faults of read time / total'),
}, { description: "with --qemu-trace postcopy_rdma_dst_demand_placed: where the destination QEMU's time goes per demand fault of the RDMA pull (version 3)" });
export type FaultPath = Static<typeof FaultPathSchema>;

export const IntegritySchema = Type.Object({
  ok: Type.Boolean(),
  pages_checked: Int(),
  bad_pages: Int(),
  first_bad: Type.Optional(Type.Array(Int())),
}, { description: 'the guest page-by-page check after migration; ok=false fails the run' });
export type Integrity = Static<typeof IntegritySchema>;

/** What one destination of a run saw (version 2; today every run has one destination, "dst"). */
export const DestinationSchema = Type.Object({
  name: Str('its logs are in <logs_dir>/<name>'),
  downtime_host_ms: Nullable(Num("source STOP to this destination's RESUME, ms")),
  postcopy_latency: Type.Optional(PostcopyLatencySchema),
  integrity: Type.Optional(IntegritySchema),
});
export type Destination = Static<typeof DestinationSchema>;

/** A cut fault and the recovery the engine drove, as an operator would (version 3). */
export const RecoverySchema = Type.Object({
  fault: Str('the fault as given to --fault, e.g. cut@postcopy+2s:3s'),
  outcome: Type.Union([
    Type.Literal('recovered', { description: 'both sides paused, migrate-recover and migrate resume brought post-copy back' }),
    Type.Literal('failed', { description: 'the migration did not come back (reason says where it stopped)' }),
    Type.Literal('not-injected', { description: 'the migration ended before the fault was due' }),
  ]),
  reason: Type.Optional(Str('why it failed or was not injected')),
  cut_at_ms: Nullable(Num('ms since migrate when the cut began (the connections reset first, then the link went down)')),
  down_at_ms: Type.Optional(Nullable(Num('ms since migrate when the link was down on both ends'))),
  restored_at_ms: Nullable(Num('ms since migrate when the link was up again (its restore begins the fault\'s duration after down_at_ms)')),
  paused_at_ms: Type.Object({
    source: Nullable(Num('ms since migrate when the source reported postcopy-paused')),
    destination: Nullable(Num('ms since migrate when the destination reported postcopy-paused (its MIGRATION event)')),
  }),
  time_to_pause_ms: Nullable(Num('from the cut to both sides paused')),
  time_paused_ms: Nullable(Num('from both sides paused to the source back in postcopy-active')),
  resumed_at_ms: Nullable(Num('ms since migrate when the source was back in postcopy-active (or completed)')),
});
export type Recovery = Static<typeof RecoverySchema>;

export const RunStatusSchema = Type.Union([Type.Literal('completed'), Type.Literal('not-converged'), Type.Literal('failed')]);
export type RunStatus = Static<typeof RunStatusSchema>;

export const RunRecordSchema = Type.Object({
  repeat: Int(),
  status: RunStatusSchema,
  reason: Type.Optional(Str('why it failed or did not converge; absent when completed')),
  total_time_ms: Nullable(Num()),
  downtime_ms: Nullable(Num('downtime as the source QEMU reports it (query-migrate `downtime`)')),
  downtime_host_ms: Type.Optional(Nullable(Num("downtime as the host saw it: the source's STOP event to the destination's RESUME event; for post-copy the real pause the guest sees"))),
  setup_time_ms: Nullable(Num()),
  bytes: Type.Object({
    precopy: Num('RAM bytes sent during pre-copy (before the switch to post-copy)'),
    downtime: Num('bytes sent while the VM was stopped'),
    postcopy: Num('RAM bytes sent after the switch to post-copy'),
    wire: Num('all bytes that crossed the link, both directions, from its counters'),
    ram_transferred: Num('total RAM bytes QEMU reports transferred'),
  }),
  pages: Type.Object({
    normal: Num(),
    zero: Num(),
    postcopy_requests: Num(),
    dirty_sync_count: Num(),
  }),
  guest: Type.Object({
    max_stall_ms: Nullable(Num('largest stall the guest saw, across the whole run')),
    slow_before: Type.Optional(SlowWritesSchema),
    slow_migrating: Type.Optional(SlowWritesSchema),
    max_gap_host_ms: Nullable(Num('longest gap between two progress lines as the host received them')),
    ops_timeline: Type.Array(OpsSampleSchema),
  }),
  postcopy_latency: Type.Optional(PostcopyLatencySchema),
  integrity: IntegritySchema,
  phases: Type.Array(PhaseMarkSchema),
  progress: Type.Optional(Type.Array(ProgressSampleSchema, { description: "the source's query-migrate while it ran, about every 200 ms (version 2)" })),
  destinations: Type.Optional(Type.Array(DestinationSchema, { description: 'per destination (version 2); the flat downtime_host_ms, postcopy_latency and integrity of a completed run are the first one\'s' })),
  query_migrate: Type.Optional(Type.Unknown({ description: 'raw final query-migrate reply from the source, for anything not lifted above' })),
  recovery: Type.Optional(RecoverySchema),
  postcopy_rdma: Type.Optional(Type.Object({
    source: Type.Optional(Type.Unknown({ description: "the source's query-migrate `postcopy-rdma` member, verbatim" })),
    destination: Type.Optional(Type.Unknown({ description: "the destination's query-migrate `postcopy-rdma` member, verbatim" })),
  }, { description: "with the rdma transport, when QEMU reports it: what the RDMA pull did on each side (READ latency distribution, pages on demand / in the background, MR registration time...), recorded as QEMU gives it; version 3" })),
  rdma_counters: Type.Optional(Type.Object({
    source: Type.Record(Type.String(), Num()),
    destination: Type.Record(Type.String(), Num()),
  }, { description: "the nested testbed: each side's RDMA device (rxe0) port counters from migrate to the end, as the kernel names them (sent_pkts, rcvd_pkts, duplicate_request, out_of_seq_request, rcvd_seq_err, completer_retry_err, retry_exceeded_err...); a device re-created meanwhile counts from its creation; version 3" })),
  fault_path: Type.Optional(FaultPathSchema),
  async_pf: Type.Optional(Type.Object({
    tried: Num('faults on pages not yet there that KVM tried to make asynchronous (kvm_try_async_get_page)'),
    repeated: Num('of them, on a page whose async work was already running: the vCPU halted (kvm_async_pf_repeated_fault)'),
    queued: Num('async work queued (kvm_async_pf_not_present)'),
    told: Num("of it, told to the guest: a \"page ready\" interrupt followed (kvm_apic_accept_irq, vector 0xf3); the guest ran another task meanwhile"),
    halted: Num('queued but not told, plus repeated: the vCPU sat in an artificial halt until the page came (guest in kernel mode, or async PF off)'),
  }, { description: "the nested testbed: KVM's asynchronous page faults in the destination L1 host from migrate to the end of a completed migration, from its trace events; version 3" })),
  logs_dir: Str('where the logs of this run are, relative to OUT'),
});
export type RunRecord = Static<typeof RunRecordSchema>;

export const FaultSpecSchema = Type.Object({
  kind: Str('what is injected: cut (version 3) = the link down and its connections reset'),
  after: Type.Optional(Type.Union([Type.Literal('migrate'), Type.Literal('postcopy')], { description: 'what at_s counts from: the migrate command or the start of post-copy (version 3); absent: migrate' })),
  at_s: Type.Optional(Num('when, seconds after `after`')),
  duration_s: Type.Optional(Num('how long the fault lasts, s (version 3)')),
}, { description: 'an injected fault' });
export type FaultSpec = Static<typeof FaultSpecSchema>;

export const TransportSchema = Type.Union([
  Type.Literal('tcp', { description: 'the migration channel carries every page (version 2)' }),
  Type.Literal('preempt', { description: "upstream postcopy-preempt: requested pages on a second TCP channel (version 3)" }),
  Type.Literal('rdma', { description: "heca's postcopy-rdma-pull: the destination reads missing pages with RDMA READ (version 3)" }),
  Type.Literal('rdma-kernel', { description: "heca's postcopy-rdma-pull with postcopy-rdma-engine=kernel: the destination kernel's userfaultfd RDMA resolver reads and installs the faulting pages, QEMU pulls the rest (version 3)" }),
], { description: 'how post-copy pages travel; absent: tcp' });
export type Transport = Static<typeof TransportSchema>;

export const ScenarioParamsSchema = Type.Object({
  name: Str('human name (--scenario NAME)'),
  id: Str('derived from every dimension: two scenarios with equal ids are the same experiment'),
  mode: Type.Union([Type.Literal('precopy'), Type.Literal('postcopy'), Type.Literal('hybrid')]),
  switchover: Type.Optional(Type.Union([Type.Literal('mgmt'), Type.Literal('qemu')], { description: "postcopy/hybrid: who switches to post-copy: the management side (migrate-start-postcopy, upstream) or QEMU itself (heca's postcopy-switchover); absent: mgmt" })),
  switch_after_s: Type.Optional(Num("hybrid: seconds of pre-copy before the switch (by the management side, or QEMU's postcopy-deadline)")),
  postcopy_on_convergence: Type.Optional(Type.Boolean({ description: "postcopy/hybrid: a pre-copy phase that converges switches through post-copy instead of stop-and-copy (heca's postcopy-on-convergence); absent: false" })),
  converge_timeout_s: Num('precopy: give up after this many seconds without convergence'),
  transport: Type.Optional(TransportSchema),
  faults: Type.Optional(Type.Array(FaultSpecSchema, { description: 'faults injected during the run (version 2); absent: none' })),
  qemu_globals: Type.Optional(Type.Array(Str(), { description: 'DRIVER.PROPERTY=VALUE given to both QEMUs as -global (--variant, version 3); absent: none' })),
  description: Str(),
});
export type ScenarioParams = Static<typeof ScenarioParamsSchema>;

export const WorkloadParamsSchema = Type.Object({
  name: Str(),
  mem_mib: Int('guest RAM, MiB'),
  arena_mib: Int('memory the workload owns and stamps, MiB'),
  working_set_mib: Int('part of the arena written, MiB'),
  write_rate: Num('page writes per second, 0 = as fast as possible'),
  pattern: Type.Union([Type.Literal('sequential'), Type.Literal('random'), Type.Literal('hotcold')]),
  threads: Type.Optional(Int('writer threads in the guest, each on its own slice of the working set at write_rate/threads (version 3); absent: 1')),
  vcpus: Type.Optional(Int('guest vCPUs (-smp) the writers are spread over (version 3); absent: 1')),
});
export type WorkloadParams = Static<typeof WorkloadParamsSchema>;

export const StatSchema = Type.Object({
  median: Nullable(Num()),
  min: Nullable(Num()),
  max: Nullable(Num()),
  n: Int(),
});
export const SummarySchema = Type.Record(Type.String(), StatSchema, { description: 'per metric: median, min, max over completed runs; plus run counts by status' });
export type Summary = Static<typeof SummarySchema>;

export const ScenarioResultSchema = Type.Object({
  scenario: ScenarioParamsSchema,
  workload: WorkloadParamsSchema,
  runs: Type.Array(RunRecordSchema),
  summary: SummarySchema,
});
export type ScenarioResult = Static<typeof ScenarioResultSchema>;

export const ComparisonSchema = Type.Object({
  baseline: Str('scenario id of the baseline: the first scenario with a completed run'),
  ratios: Type.Record(Type.String(), Type.Record(Type.String(), Nullable(Num())), { description: 'scenario id → metric → median over repeats of (scenario run r / baseline run r)' }),
  spread: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Nullable(Type.Tuple([Num(), Num()]))), { description: 'scenario id → metric → [min, max] of those ratios' })),
  pairs: Type.Optional(Type.Record(Type.String(), Int(), { description: 'scenario id → number of repeats where both runs completed' })),
});
export type Comparison = Static<typeof ComparisonSchema>;

export const BenchResultSchema = Type.Object({
  schema: Type.Union(READABLE_SCHEMA_VERSIONS.map((v) => Type.Literal(v)), { description: `format version; this code writes ${RESULT_SCHEMA_VERSION}` }),
  scenario: Str("the first scenario's id when only one ran; else the ids joined by '+'"),
  environment: EnvironmentSchema,
  scenarios: Type.Array(ScenarioResultSchema, { description: 'one entry per scenario, in the order they ran (repeats interleaved)' }),
  runs: Type.Array(RunRecordSchema, { description: 'same data as scenarios[0].runs, for the single-scenario case' }),
  summary: SummarySchema,
  comparison: Type.Optional(ComparisonSchema),
  command: Type.Array(Str()),
}, {
  title: 'heca benchmark result (OUT/result.json)',
});
export type BenchResult = Static<typeof BenchResultSchema>;
