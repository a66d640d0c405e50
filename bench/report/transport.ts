/**
 * The report's transport and fault sections (issue #12):
 *
 *   - per run, the median remote fault latency (from the destination's
 *     postcopy-latency-dist) beside the same invocation's link probe (RDMA
 *     READ 4 KiB, ib_read_lat typical) and beside the same policy's run over
 *     tcp in the same repeat, as ratios; whether QEMU reported postcopy-rdma;
 *   - per run with a fault, the recovery: time to pause, time paused, outcome;
 *   - warnings: an rdma run whose pages evidently did not travel by RDMA READ.
 */
import type { BenchResult, RunRecord, ScenarioParams, ScenarioResult } from '../results/schema.ts';
import { addedSlowWrites, distQuantileUs, faultLatencyP50Us, slowQuantileUs } from '../results/stats.ts';
import { globalsId, overRdma } from '../scenario/catalog.ts';
import { formatBytes, formatMs, formatRatio, formatUs, mdTable } from './format.ts';

/** The same experiment but over tcp: same policy, parameters and faults. */
function samePolicy(a: ScenarioParams, b: ScenarioParams): boolean {
  const key = (s: ScenarioParams) => JSON.stringify([s.mode, s.switchover ?? 'mgmt', s.switch_after_s ?? null, s.postcopy_on_convergence ?? false, s.converge_timeout_s, s.faults ?? []]);
  return key(a) === key(b);
}

/** The tcp scenario of the same policy in this result, if it ran: with the same QEMU globals (variant), else with none. */
export function tcpCounterpart(scenarios: readonly ScenarioResult[], s: ScenarioResult): ScenarioResult | undefined {
  if ((s.scenario.transport ?? 'tcp') === 'tcp') return undefined;
  const globals = (x: ScenarioResult) => globalsId(x.scenario.qemu_globals);
  const tcp = scenarios.filter((x) => (x.scenario.transport ?? 'tcp') === 'tcp' && samePolicy(x.scenario, s.scenario));
  return tcp.find((x) => globals(x) === globals(s)) ?? tcp.find((x) => globals(x) === '');
}

/**
 * The median RDMA READ latency of a run, µs, when the destination's
 * postcopy-rdma reports a `read-latency-dist` (same buckets as
 * postcopy-latency-dist); null otherwise. The member is recorded verbatim and
 * its fields may still change: nothing else reads them.
 */
export function readLatencyP50Us(r: RunRecord): number | null {
  const d = pullMember(r)?.['read-latency-dist'];
  return Array.isArray(d) && d.every((x) => typeof x === 'number') ? distQuantileUs(d as number[], 0.5) : null;
}

/** The destination's postcopy-rdma `destination` object, as recorded (verbatim, so untyped). */
function pullMember(r: RunRecord): Record<string, unknown> | undefined {
  return (r.postcopy_rdma?.destination as { destination?: Record<string, unknown> } | undefined)?.destination;
}

const ratio = (a: number | null, b: number | null | undefined) => (a !== null && typeof b === 'number' && b > 0 ? a / b : null);

/** One row per run with post-copy statistics; undefined when no run has them. */
export function faultLatencyTable(result: BenchResult): string | undefined {
  const probe = result.environment.nested?.link_probes?.ib_read_lat.t_typical_us;
  // A link with a delay of its own (wan): the fault against its round trip.
  const rttMs = result.environment.link_rtt_ms ?? 0;
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    const tcp = tcpCounterpart(result.scenarios, s);
    for (const r of s.runs) {
      const p50 = faultLatencyP50Us(r);
      if (p50 === null) continue;
      const t = tcp?.runs.find((x) => x.repeat === r.repeat && x.status === 'completed');
      const tp50 = t ? faultLatencyP50Us(t) : null;
      rows.push([
        s.scenario.name, String(r.repeat), s.scenario.transport ?? 'tcp', String(r.postcopy_latency?.faults ?? 0), formatUs(p50),
        probe === undefined ? '–' : formatRatio(ratio(p50, probe)),
        tcp ? (tp50 === null ? '–' : `${formatRatio(ratio(p50, tp50))} (${tcp.scenario.name}: ${formatUs(tp50)})`) : '',
        r.postcopy_rdma ? Object.keys(r.postcopy_rdma).join(' + ') : '–',
        formatUs(readLatencyP50Us(r)),
        ...(rttMs > 0 ? [formatRatio(ratio(p50, rttMs * 1000))] : []),
        backgroundShare(r),
      ]);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'transport', 'faults', 'fault latency p50 (dst)', `÷ RDMA READ 4 KiB typical${probe === undefined ? '' : ` (${formatUs(probe)})`}`, '÷ same policy over tcp, same repeat', 'postcopy-rdma reported by', 'RDMA READ p50 (postcopy-rdma)',
    ...(rttMs > 0 ? [`÷ link RTT (${rttMs} ms)`] : []), 'post-copy pages that came in the background'], rows);
}

/**
 * One row per run where the guest reported its slow page writes: where a
 * page fault's time goes. The guest's side: the slow writes the migration
 * added (those while migrating, less the guest's own before migrate at the
 * same rate), their count and median. QEMU's side: the fault latency (fault
 * thread -> placed, every thread's faults) and, with the trace event on, the
 * three stages of each fault that read its own page. The last column, the
 * guest's median less the traced sum's, is a difference of medians of two
 * populations that mostly overlap (a write can wait for more than one
 * fault; a traced fault may be no vCPU's): the kernel's way from the vCPU to
 * the fault thread and back, roughly. Undefined when no run has slow writes.
 */
export function faultPathTable(result: BenchResult): string | undefined {
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    for (const r of s.runs) {
      const g = r.guest;
      if (!g.slow_before || !g.slow_migrating || !r.postcopy_latency) continue;
      const added = addedSlowWrites(g.slow_before, g.slow_migrating);
      const guest = slowQuantileUs(added, 0.5);
      const p = r.fault_path;
      rows.push([
        s.scenario.name, String(r.repeat), s.scenario.transport ?? 'tcp',
        String(r.postcopy_latency.faults), String(added.reduce((a, [, n]) => a + n, 0)), formatUs(guest), formatUs(faultLatencyP50Us(r)),
        p ? `${p.faults}` : '–', p ? formatUs(p.to_post_us) : '–', p ? formatUs(p.read_us) : '–', p ? formatUs(p.to_place_us) : '–', p ? formatUs(p.total_us) : '–',
        guest !== null && p ? formatUs(guest - p.total_us) : '–',
      ]);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'transport', 'faults (QEMU)', 'slow writes added (guest)', 'guest: their p50', 'QEMU: fault latency p50', 'traced faults', 'fault → READ posted', 'posting + READ → completion', 'completion → placed', 'traced sum p50', 'guest p50 − traced p50'], rows);
}

/** Of the pages placed in post-copy, the share that arrived before the guest asked for them ("97.12%"), or "–". */
function backgroundShare(r: RunRecord): string {
  const d = r.postcopy_latency?.demand_pages;
  const b = r.postcopy_latency?.background_pages;
  if (d === null || d === undefined || b === null || b === undefined || d + b === 0) return '–';
  const pct = ((100 * b) / (d + b)).toFixed(2);
  // Never 100% while a page came on demand.
  return pct === '100.00' && d > 0 ? '>99.99%' : `${pct}%`;
}

/** One row per run of a scenario with faults; undefined when none has any. */
export function recoveryTable(result: BenchResult): string | undefined {
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    if (!s.scenario.faults?.length) continue;
    for (const r of s.runs) {
      const v = r.recovery;
      rows.push([s.scenario.name, String(r.repeat), s.scenario.transport ?? 'tcp', v?.fault ?? '–', v?.outcome ?? '(no record: the run failed before the fault)', formatMs(v?.time_to_pause_ms), formatMs(v?.time_paused_ms), r.integrity.pages_checked ? `${r.integrity.bad_pages} bad / ${r.integrity.pages_checked}` : 'not checked', v?.reason ?? r.reason ?? '']);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'transport', 'fault', 'outcome', 'cut → both paused', 'paused → post-copy again', 'integrity', 'reason'], rows);
}

/** Pages that went over the migration channel in post-copy, beyond what device state and control take. */
const PULL_SLACK_BYTES = 4 * 1048576;

/** An rdma run in which the source sent pages in post-copy and QEMU reported no postcopy-rdma: not a pull. */
export function notPulled(s: ScenarioParams, r: RunRecord): boolean {
  return overRdma(s.transport) && r.status === 'completed' && r.postcopy_rdma === undefined && r.bytes.postcopy > PULL_SLACK_BYTES;
}

/** An rdma-kernel run that completed with faults but whose kernel resolver resolved none of them: not the kernel engine. */
export function kernelIdle(s: ScenarioParams, r: RunRecord): boolean {
  return s.transport === 'rdma-kernel' && r.status === 'completed' && r.postcopy_rdma !== undefined && !(kernelFigure(r, 'faults') ?? 0) && !(kernelFigure(r, 'pages') ?? 0);
}

/** Lines for the report's warnings: rdma runs whose pages evidently did not travel by RDMA READ, rdma-kernel runs the kernel took no part in. */
export function transportWarnings(result: BenchResult): string[] {
  return result.scenarios.flatMap((s) => [
    ...s.runs.filter((r) => notPulled(s.scenario, r)).map((r) =>
      `**${s.scenario.name} run ${r.repeat}: no RDMA pull seen** — QEMU took postcopy-rdma-pull, but the source sent ${formatBytes(r.bytes.postcopy)} of pages on the migration channel during post-copy and reported no postcopy-rdma: read its figures as TCP post-copy's (a QEMU with the capability but not the pull engine?)`),
    ...s.runs.filter((r) => kernelIdle(s.scenario, r)).map((r) => {
      const k = kernelMember(r);
      const why = !k ? 'QEMU reported no `kernel` member (a QEMU without patch 20?)' : typeof k['error'] === 'string' ? `attaching it failed: ${k['error']}` : 'it was attached but took no fault';
      return `**${s.scenario.name} run ${r.repeat}: the kernel's RDMA resolver resolved no fault** — ${why}: QEMU's fault thread did the work, read its figures as rdma's`;
    }),
  ]);
}

/** A number from the destination's postcopy-rdma member (recorded verbatim: it may lack it). */
function pullFigure(r: RunRecord, key: string): number | null {
  const v = pullMember(r)?.[key];
  return typeof v === 'number' ? v : null;
}

/** Soft-RoCE's names for what a lost or late packet costs, by the side that counts it. */
const RETRY_COUNTERS: readonly [side: 'source' | 'destination', name: string, head: string][] = [
  ['source', 'duplicate_request', 'src duplicate requests'],
  ['source', 'out_of_seq_request', 'src out-of-sequence requests'],
  ['destination', 'rcvd_seq_err', 'dst out-of-sequence responses'],
  ['destination', 'completer_retry_err', 'dst retries'],
  ['destination', 'retry_exceeded_err', 'dst retries exceeded'],
];

/**
 * One row per rdma run: how the pull used the link — READ latency (median,
 * fastest), the background's back-offs, bytes on the link per byte read, the
 * pages it placed as zeros instead of reading them (the source said the guest
 * never touched them), and what the RDMA devices counted of retransmissions.
 * Undefined when no rdma run has any of it.
 */
export function rdmaLinkTable(result: BenchResult): string | undefined {
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    if (!overRdma(s.scenario.transport)) continue;
    for (const r of s.runs) {
      if (!r.postcopy_rdma && !r.rdma_counters) continue;
      const read = pullFigure(r, 'bytes-read');
      const min = pullFigure(r, 'read-latency-min');
      const backoffs = pullFigure(r, 'background-backoffs');
      const zero = pullFigure(r, 'zero-pages');
      const c = r.rdma_counters;
      rows.push([
        s.scenario.name, String(r.repeat),
        formatUs(readLatencyP50Us(r)), min === null ? '–' : formatUs(min / 1000), backoffs === null ? '–' : String(backoffs),
        formatRatio(ratio(r.bytes.wire, read)),
        zero === null ? '–' : String(zero),
        ...RETRY_COUNTERS.map(([side, name]) => (c?.[side][name] === undefined ? '–' : String(c[side][name]))),
      ]);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'READ p50', 'READ fastest', 'background back-offs', 'wire ÷ bytes read', 'pages zeroed, not read', ...RETRY_COUNTERS.map(([, , h]) => h)], rows);
}

/** The destination's postcopy-rdma `kernel` object (rdma-kernel), as recorded; undefined when QEMU reported none. */
function kernelMember(r: RunRecord): Record<string, unknown> | undefined {
  const k = pullMember(r)?.['kernel'];
  return k !== null && typeof k === 'object' ? (k as Record<string, unknown>) : undefined;
}

/** Whether the resolver was attached (QEMU detaches it before the end), in how long, or why not. */
function attachedText(k: Record<string, unknown> | undefined): string {
  if (!k) return 'not reported';
  if (typeof k['error'] === 'string') return `no: ${k['error']}`;
  const t = k['attach-time'];
  const faults = k['faults'];
  return k['attached'] === true || (typeof t === 'number' && t > 0) || (typeof faults === 'number' && faults > 0) ? `yes, in ${formatMs(typeof t === 'number' ? t : null)}` : 'no';
}

/** A number of the kernel member, or null. */
function kernelFigure(r: RunRecord, key: string): number | null {
  const v = kernelMember(r)?.[key];
  return typeof v === 'number' ? v : null;
}

/**
 * The guest's median added slow write of a run, µs (its own faults as it
 * saw them), counting those from `fromNs` up, or null.
 */
export function guestFaultP50Us(r: RunRecord, fromNs = 0): number | null {
  const g = r.guest;
  return g.slow_before && g.slow_migrating ? slowQuantileUs(addedSlowWrites(g.slow_before, g.slow_migrating), 0.5, fromNs) : null;
}

/** The scenario of the same policy, globals and faults over `transport` in this result, if it ran. */
function counterpartOver(scenarios: readonly ScenarioResult[], s: ScenarioResult, transport: string): ScenarioResult | undefined {
  const globals = (x: ScenarioResult) => globalsId(x.scenario.qemu_globals);
  return scenarios.find((x) => (x.scenario.transport ?? 'tcp') === transport && samePolicy(x.scenario, s.scenario) && globals(x) === globals(s));
}

/**
 * One row per rdma-kernel run: what the destination kernel's RDMA resolver
 * did (attached, faults it took and pages it installed, faults it handed to
 * QEMU, its READs' mean and median, the mean time from a READ's completion
 * to its page installed), what QEMU found installed, and the guest's median
 * slow write, less the kernel's READ and install (what is left is the
 * fault's way into the kernel and to the READ's posting, and the vCPU's way
 * back: a difference of medians, roughly), against the same policy over
 * rdma (QEMU's fault thread) in the same repeat: the fault latency the
 * guest saw, kernel engine ÷ user space.
 * Undefined when no rdma-kernel run has either.
 */
export function kernelEngineTable(result: BenchResult): string | undefined {
  const rows: string[][] = [];
  // No remote fault is shorter than a READ of its page: the guest's faults are its slow writes from the raw READ's time up
  // (below it, the vCPU preempted while its host works: they grow during migration in every mode, and with them a median of all).
  const probeUs = result.environment.nested?.link_probes?.ib_read_lat.t_typical_us;
  const fromNs = probeUs === undefined ? 0 : probeUs * 1000;
  for (const s of result.scenarios) {
    if (s.scenario.transport !== 'rdma-kernel') continue;
    const user = counterpartOver(result.scenarios, s, 'rdma');
    for (const r of s.runs) {
      const k = kernelMember(r);
      if (!k && r.status !== 'completed') continue;
      const g = guestFaultP50Us(r, fromNs);
      const u = user?.runs.find((x) => x.repeat === r.repeat && x.status === 'completed');
      const ug = u ? guestFaultP50Us(u, fromNs) : null;
      const read = kernelFigure(r, 'read-latency');
      const dist = k?.['read-latency-dist'];
      const readP50 = Array.isArray(dist) && dist.every((x) => typeof x === 'number') ? distQuantileUs(dist as number[], 0.5) : null;
      const install = kernelFigure(r, 'install-latency');
      // The guest's median fault less the kernel's READ and install: the fault's way in, the READ's posting, the wake-up and the vCPU's return.
      // Estimates (the READ median within a factor 2; the guest's writes include faults QEMU resolved): not shown when they leave nothing.
      const diff = g !== null && readP50 !== null && install !== null ? g - readP50 - install / 1000 : null;
      const rest = diff !== null && diff > 0 ? diff : null;
      const demand = pullFigure(r, 'demand-pages');
      rows.push([
        s.scenario.name, String(r.repeat),
        attachedText(k),
        ...['faults', 'pages', 'declined', 'failed', 'found', 'unread'].map((key) => String(kernelFigure(r, key) ?? '–')),
        `${read === null ? '–' : formatUs(read / 1000)} / ${formatUs(readP50)}`,
        install === null ? '–' : formatUs(install / 1000),
        demand === null ? '–' : String(demand),
        formatUs(g),
        formatUs(rest),
        user ? (ug === null ? '–' : `${formatRatio(ratio(g, ug))} (${user.scenario.name}: ${formatUs(ug)})`) : '',
      ]);
    }
  }
  if (rows.length === 0) return undefined;
  return mdTable(['scenario', 'repeat', 'attached', 'kernel: faults', 'pages installed', 'declined', 'failed', 'QEMU found installed', 'of those, before reading', 'kernel READ: mean / p50', 'kernel install mean', 'QEMU demand pages', `guest: slow write p50${probeUs === undefined ? '' : ` (those ≥ ${formatUs(probeUs)})`}`, 'the rest: p50 − READ p50 − install mean', '÷ same policy over rdma, same repeat'], rows);
}
