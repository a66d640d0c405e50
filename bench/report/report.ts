/**
 * OUT/report.md: the environment, the workload, per-scenario summaries,
 * ratios to the baseline, every run, failures first, and the charts.
 */
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { envSubtitle, writeCharts } from './charts.ts';
import { formatBytes, mdTable, problems, ratioTable, RUN_HEAD, runLine, summaryTable } from './format.ts';
import type { BenchResult, Environment, QemuBuild, WorkloadParams } from '../results/schema.ts';
import { convergenceEnd } from '../scenario/catalog.ts';
import { progressTable } from './progress.ts';
import { faultLatencyTable, faultPathTable, kernelEngineTable, rdmaLinkTable, recoveryTable, transportWarnings } from './transport.ts';

/** A section of the report: its heading, what it shows and its table; nothing when there is no table. */
function section(md: string[], heading: string, text: string, table: string | undefined): void {
  if (table) md.push(heading, text, table, '');
}

export function environmentTable(env: Environment): string {
  const rows: string[][] = [
    ['accelerator', `${env.accel} — ${env.accel_reason}`],
    ['QEMU', env.qemu_version + (env.qemu_build ? ` (${qemuBuildText(env.qemu_build)})` : '')],
    ['host kernel', env.kernel_version],
    ['guest kernel', env.guest_kernel],
    ['testbed', env.testbed],
    ['link', env.link_desc],
    ...(env.postcopy_bandwidth_bytes_s === undefined ? [] : [['post-copy bandwidth', `${(env.postcopy_bandwidth_bytes_s / 1e6).toFixed(1)} MB/s: max-postcopy-bandwidth on every source (--postcopy-bandwidth)`]]),
    ['host', `${env.host_cpus} CPUs, ${env.host_mem_mib} MiB`],
    ['started', env.started_at],
  ];
  const n = env.nested;
  if (n) {
    rows.splice(2, 1, ['L1 host kernel', env.kernel_version]);
    rows.push(['L1 hosts', `${n.hosts.map((h) => `${h.name} up in ${(h.boot_ms / 1000).toFixed(1)} s${h.boot_hangs ? ` (after ${h.boot_hangs} failed boot${h.boot_hangs > 1 ? 's' : ''}: hung or QEMU crashed)` : ''}, nested KVM ${h.nested_kvm ? 'yes' : 'no'} (${h.nested_kvm_detail}), rxe0 ${h.rxe_state}`).join('; ')}; L1 under ${n.l1_accel}${n.l1_qemu ? `, run by ${n.l1_qemu}` : ''}`]);
    const p = n.link_probes;
    if (p) {
      rows.push(['link probes (A → B)', `RDMA READ 4 KiB over rxe: typical ${p.ib_read_lat.t_typical_us} µs, p99 ${p.ib_read_lat.p99_us} µs, ` +
        `${p.ib_read_bw.bw_avg_mb_s} ${p.ib_read_bw.unit}; TCP 4 KiB request/response ${p.tcp_rr_us} µs, stream ${(p.tcp_bw_bytes_s / 1e6).toFixed(1)} MB/s`]);
    }
  }
  return mdTable(['', ''], rows);
}

/** Where the QEMU came from: heca's build and its series, or the binary $HECA_QEMU named. */
export function qemuBuildText(b: QemuBuild): string {
  if (b.origin === 'HECA_QEMU') return `HECA_QEMU=${b.path}, binary sha256 ${b.sha256.slice(0, 12)}: not a heca build`;
  const series = b.patches.length ? `series ${b.patches.join(', ')}, sha256 ${b.series_sha256.slice(0, 12)}` : 'no patch series';
  return `${b.version}; ${series}${b.sha256 ? `; binary sha256 ${b.sha256.slice(0, 12)}` : ''}`;
}

export function workloadTable(w: WorkloadParams): string {
  return mdTable(['workload', 'guest RAM', 'arena', 'working set', 'write rate', 'pattern', 'writer threads', 'vCPUs'], [[
    w.name, formatBytes(w.mem_mib * 1048576), formatBytes(w.arena_mib * 1048576), formatBytes(w.working_set_mib * 1048576),
    w.write_rate ? `${w.write_rate} pages/s` : 'as fast as it can', w.pattern, String(w.threads ?? 1), String(w.vcpus ?? 1),
  ]]);
}

/** Write charts under OUT/charts and OUT/report.md; returns the report's path. */
export async function writeReport(result: BenchResult, out: string): Promise<string> {
  const labels = result.scenarios.map((s) => s.scenario.name);
  const charts = await writeCharts({ labels, scenarios: result.scenarios, subtitle: envSubtitle(result.environment) }, join(out, 'charts'));
  const img = (key: string, alt: string) => (charts[key] ? `![${alt}](${relative(out, charts[key])})\n` : '');
  const bad = problems(labels, result.scenarios);
  const warned = transportWarnings(result);
  const md: string[] = [
    `# heca migration benchmark: ${labels.join(', ')}`,
    '',
    bad.length ? `## ⚠ Failures\n\n${bad.map((b) => `- ${b}`).join('\n')}\n` : '**All runs passed their integrity check.**\n',
    ...(warned.length ? [`## ⚠ Warnings\n\n${warned.map((w) => `- ${w}`).join('\n')}\n`] : []),
    '## Environment\n',
    environmentTable(result.environment),
    '',
    'Absolute times from these machines only mean something against the baseline measured in the same run: read the ratios.\n',
    `Command: \`${result.command.join(' ')}\`\n`,
    '## Workload\n',
    workloadTable(result.scenarios[0]!.workload),
    '',
    '## Scenarios\n',
    mdTable(['name', 'id', 'a converged pre-copy ends in', 'description'], result.scenarios.map((s) => [s.scenario.name, s.scenario.id, convergenceEnd(s.scenario), s.scenario.description])),
    '',
    '## Summary\n',
    summaryTable(labels, result.scenarios),
    '',
  ];
  if (result.comparison) {
    md.push(`## Ratios to ${result.comparison.baseline}\n`, 'Per repeat: scenario ÷ baseline of the same repeat (repeats are interleaved); median [min–max] over repeats.\n', ratioTable(labels, result.scenarios, result.comparison), '');
  }
  section(md, '## Fault latency against the link\n', 'Per run: the median remote fault latency on the destination (fault to page placed), estimated from `postcopy-latency-dist` (log2 buckets: within a factor 2), against the raw link measured in this invocation (`ib_read_lat`, 4 KiB, typical) and against the same policy over tcp in the same repeat.\n', faultLatencyTable(result));
  section(md, '## Where a page fault\'s time goes\n', 'Per run: the guest\'s side — the page writes that the migration made slow (those from migrate to the end that took 65.5 µs or more, less the guest\'s own slow writes before migrate at the same rate per second; quarter-octave buckets), how many and their median; QEMU\'s side — the fault latency on the destination (fault thread to page placed, every thread\'s faults, `postcopy-latency-dist`: within a factor 2) and, where the run traced `postcopy_rdma_dst_demand_placed`, the stages of each fault that read its own page: fault → READ posted (a free read slot included), posting and the READ until its completion was polled, completion → placed (the vCPU woken). The last column is the guest\'s median less the traced sum\'s: the kernel\'s way from the vCPU\'s fault to the fault thread and back to the vCPU running, roughly (a difference of medians of populations that mostly, not exactly, match: a write can wait for more than one fault).\n', faultPathTable(result));
  section(md, '## RDMA pull on the link\n', 'Per rdma run: the demand READ latency (median from `read-latency-dist`, and the fastest), how many times the background pull halved its READs in flight because a demand READ waited behind them, the bytes on the link (both ways) per byte read, and what the RDMA devices counted of retransmissions from migrate to the end (Soft-RoCE\'s port counters: a request the source saw twice, responses the destination received out of sequence, READs it retried).\n', rdmaLinkTable(result));
  section(md, '## The guest\'s progress in post-copy\n', 'Per run: the guest\'s page writes per second in post-copy (on the destination, from its resume to the end; the ticks wholly inside) against before `migrate` (on the source, the warm-up), for the guest and for each of its writer threads, and the post-copy ticks (intervals) in which a writer, or every writer, wrote nothing: a vCPU waiting for a page stops what runs on it, unless an asynchronous page fault lets it run another thread. On the nested testbed, what KVM in the destination host did with the guest\'s faults on missing pages, from its trace events: tried to make them asynchronous, told the guest (it ran another task until a "page ready" interrupt), or halted the vCPU until the page came (the guest was in kernel mode, or has async PF off).\n', progressTable(result));
  section(md, '## The destination kernel\'s RDMA resolver\n', 'Per rdma-kernel run (`postcopy-rdma-engine=kernel`): what the destination kernel\'s userfaultfd RDMA resolver did, as QEMU reports it at the end (`postcopy-rdma.destination.kernel`: the kernel\'s counters, summed over its attachment) — the faults it resolved itself (the vCPU waited for its READ, QEMU never saw the fault), the pages it installed, the faults it handed to QEMU\'s fault thread, pages it gave up on, the pages QEMU went to place and found installed (and of those, how many its background pull found before reading them), the mean and median of its READs (posted to completion; the median from its distribution, within a factor 2) and the mean time from a READ\'s completion to its page installed — beside QEMU\'s own demand reads, and the guest\'s median slow write (as in the table above, but only those at least as long as the raw 4 KiB READ of this invocation\'s link probe: no remote fault is shorter, and the shorter ones — the vCPU preempted while its host works — grow during migration in every mode: the fault latency the guest saw), what is left of it without the kernel\'s READ and install (the fault\'s way into the kernel and to the READ\'s posting, the waiter\'s wake-up and the vCPU\'s return: a difference of medians, roughly), and its ratio to the same policy over rdma (QEMU\'s fault thread reads the page) in the same repeat.\n', kernelEngineTable(result));
  section(md, '## Faults and recovery\n', 'The engine cut the link (connections reset, link down), waited for postcopy-paused on both sides, restored the link, sent migrate-recover out of band to the destination and migrate resume to the source.\n', recoveryTable(result));
  md.push('## Charts\n', img('time', 'migration time'), img('downtime', 'downtime'), img('bytes', 'bytes by phase'), img('overhead', 'wire over RAM'), img('pages', 'pages'), img('faultCdf', 'fault latency CDF'), img('demand', 'post-copy pages on demand vs background'));
  for (const l of labels) md.push(img(`timeline:${l}`, `guest throughput during ${l}`));
  md.push('## Runs\n');
  result.scenarios.forEach((s, i) => md.push(`### ${labels[i]}\n`, mdTable(RUN_HEAD, s.runs.map(runLine)), ''));
  const path = join(out, 'report.md');
  writeFileSync(path, `${md.join('\n')}\n`);
  return path;
}
