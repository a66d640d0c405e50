/**
 * The state of one run as it goes through the engine's phases (run-once.ts):
 * what it was asked to do, where its logs go, the record it fills, and what
 * it started (to tear down).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../guest/vm.ts';
import type { LinkProfileName, PhaseName, RunRecord, ScenarioParams, WorkloadParams } from '../results/schema.ts';
import type { RunTestbed } from '../testbed/types.ts';

export interface RunContext {
  qemu: string;
  accel: 'tcg' | 'kvm';
  link: LinkProfileName;
  kernel: string;
  initrd: string;
  /** Builds the kernel command line for a workload. */
  append: (w: WorkloadParams) => string;
  outDir: string;
  /** Seconds of guest activity recorded before `migrate`. */
  warmupS: number;
  /** Migration port on the destination. */
  port: number;
  /**
   * Back guest RAM with shared files in this directory (e.g. /dev/shm) instead
   * of anonymous memory; they are removed after the run. Tests use it to reach
   * into guest memory from the host.
   */
  memDir?: string;
  /** Called at fixed points of a run; tests use them to inject faults. */
  hooks?: RunHooks;
  /** Where the two QEMUs run (default: a fresh local testbed per run, shaped to `link`). */
  testbed?: () => Promise<RunTestbed>;
  /** A migration still going after this many seconds has made no end: the run fails (default 600). */
  finishTimeoutS?: number;
  /** QEMU trace event patterns enabled in both QEMUs (--qemu-trace), for debugging. */
  qemuTrace?: readonly string[];
  /** max-postcopy-bandwidth on every source, bytes/s (--postcopy-bandwidth; default unlimited). */
  postcopyBandwidth?: number;
}

export interface RunHooks {
  /** Once the source QEMU has started, while its guest boots. */
  booting?: (src: Vm) => Promise<void> | void;
  /** Right after `migrate` was accepted (and, for post-copy, the switch was asked for). */
  migrating?: (src: Vm, dst: Vm) => Promise<void> | void;
  /** After the migration ended, before the integrity check, on the VM that runs the guest. */
  beforeCheck?: (running: Vm, side: 'src' | 'dst') => Promise<void> | void;
}

export interface Run {
  readonly ctx: RunContext;
  readonly sc: ScenarioParams;
  readonly w: WorkloadParams;
  readonly repeat: number;
  /** "full r2", for messages. */
  readonly label: string;
  /** This run's log directory (absolute). */
  readonly logs: string;
  readonly rec: RunRecord;
  /** Date.now() when `migrate` was issued; 0 before. */
  t0: number;
  /** What was started, for the teardown. */
  bed?: RunTestbed;
  src?: Vm;
  dst?: Vm;
  memFiles: string[];
}

/** A new run: its log directories made afresh, its record empty and 'failed' until proven otherwise. */
export function newRun(ctx: RunContext, sc: ScenarioParams, w: WorkloadParams, repeat: number): Run {
  const logsRel = join('logs', `${sc.name}-r${repeat}`);
  const logs = join(ctx.outDir, logsRel);
  rmSync(logs, { recursive: true, force: true });
  mkdirSync(join(logs, 'src'), { recursive: true });
  mkdirSync(join(logs, 'dst'), { recursive: true });
  return {
    ctx, sc, w, repeat, logs,
    label: `${sc.name} r${repeat}`,
    t0: 0,
    memFiles: [],
    rec: {
      repeat,
      status: 'failed',
      total_time_ms: null,
      downtime_ms: null,
      setup_time_ms: null,
      bytes: { precopy: 0, downtime: 0, postcopy: 0, wire: 0, ram_transferred: 0 },
      pages: { normal: 0, zero: 0, postcopy_requests: 0, dirty_sync_count: 0 },
      guest: { max_stall_ms: null, max_gap_host_ms: null, ops_timeline: [] },
      integrity: { ok: false, pages_checked: 0, bad_pages: 0 },
      phases: [],
      progress: [],
      logs_dir: logsRel,
    },
  };
}

/** Mark a phase in the record, in ms since `migrate`. */
export function mark(run: Pick<Run, 'rec' | 't0'>, name: PhaseName): void {
  run.rec.phases.push({ at_ms: Date.now() - run.t0, name });
}
