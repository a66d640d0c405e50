/**
 * Everything a bench invocation sets up before its first run: the checks
 * that need no testbed, the testbed itself (stale leftovers of killed runs
 * removed; the nested one booted, checked and its link measured), the
 * accelerator, and the environment every result records.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../../tools/core/errors.ts';
import { probe, showCommand } from '../../tools/core/exec.ts';
import { info, warn } from '../../tools/core/log.ts';
import { l1HostQemu } from '../../tools/core/paths.ts';
import { guestAppend, type GuestImage } from '../guest/image.ts';
import { vmArgs } from '../guest/vm.ts';
import type { Environment, LinkProfileName, ScenarioParams, WorkloadParams } from '../results/schema.ts';
import { makeWorkload } from '../scenario/workloads.ts';
import { hostFacts, requireRoot } from '../testbed/host.ts';
import { assertLinkSupported, describeLink, linkProfile } from '../testbed/links.ts';
import { LocalTestbed } from '../testbed/local/testbed.ts';
import { measureLink } from '../testbed/nested/link-probes.ts';
import { NestedTestbed } from '../testbed/nested/testbed.ts';
import { chooseAccel, probeKvm, type AccelRequest } from './accel.ts';
import { qemuProvenance } from './provenance.ts';
import type { RunContext } from './run-once.ts';

export interface PrepareOptions {
  testbed: 'local' | 'nested';
  accel: AccelRequest;
  link: LinkProfileName;
  memMib: number;
  out: string;
  warmupS: number;
  /** A migration still going after this many seconds fails (default 600). */
  finishTimeoutS?: number;
  /** QEMU trace event patterns enabled in both QEMUs (see RunContext.qemuTrace). */
  qemuTrace?: readonly string[];
  /** max-postcopy-bandwidth on every source, bytes/s (see RunContext.postcopyBandwidth). */
  postcopyBandwidth?: number;
  qemu: string;
  guest: GuestImage;
}

export interface Prepared {
  ctx: RunContext;
  env: Environment;
  /** Power off what prepare() started (the nested testbed's hosts); the local testbed is made per run. */
  close(): Promise<void>;
}

/** The kernel command line of the heca guest for a workload. */
export function workloadAppend(w: WorkloadParams): string {
  return guestAppend({ arena_mib: w.arena_mib, ws_mib: w.working_set_mib, rate: w.write_rate, pattern: w.pattern, ...(w.threads ? { threads: w.threads } : {}) });
}

/** --dry-run: the two QEMU command lines and the plan, as text. */
export function dryRunText(o: PrepareOptions, scenarios: ScenarioParams[], w: WorkloadParams, repeat: number): string {
  const cfg = { accel: 'tcg' as const, memMib: w.mem_mib, vcpus: w.vcpus ?? 1, kernel: o.guest.kernel, initrd: o.guest.initrd, append: workloadAppend(w) };
  return [
    '# destination (in the dst namespace)',
    showCommand(o.qemu, vmArgs({ ...cfg, name: 'heca-dst', dir: join(o.out, 'logs', 'RUN', 'dst'), incoming: true })),
    '# source (in the src namespace)',
    showCommand(o.qemu, vmArgs({ ...cfg, name: 'heca-src', dir: join(o.out, 'logs', 'RUN', 'src') })),
    `# ${scenarios.length} scenario(s) × ${repeat} repeat(s): ${scenarios.map((s) => s.id).join(', ')}; link ${o.link}`,
    ...scenarios.filter((s) => s.qemu_globals?.length).map((s) => `# ${s.name}: both QEMUs also get ${s.qemu_globals!.map((g) => `-global ${g}`).join(' ')}`),
    '',
  ].join('\n');
}

/**
 * Boot the nested testbed for these options, with nested KVM in both hosts
 * (else it is powered off and the error says why); `restart` > 0: the one
 * booted again before that run (its own log directory).
 */
async function bootNested(o: PrepareOptions, restart: number): Promise<NestedTestbed> {
  const bed = await NestedTestbed.create({ link: o.link, dir: join(o.out, 'nested', ...(restart ? [`restart-${restart}`] : [])), sharedDir: o.out, memMib: Math.max(3072, 2 * o.memMib + 1024) });
  const missing = [bed.facts.a, bed.facts.b].filter((h) => !h.nested_kvm);
  if (missing.length) {
    await bed.destroy();
    throw new HecaError('nested KVM is not available in the L1 hosts', { why: missing.map((h) => `${h.name}: ${h.nested_kvm_detail}`).join('; '), fix: 'the L1 hosts need a CPU with SVM/VMX: TCG -cpu max has SVM' });
  }
  return bed;
}

export async function prepare(o: PrepareOptions): Promise<Prepared> {
  requireRoot('bench/run.ts');
  if (o.testbed === 'local') await assertLinkSupported(o.link);
  mkdirSync(o.out, { recursive: true });
  await LocalTestbed.cleanupStale();

  let nested: NestedTestbed | undefined;
  let accel: { accel: 'tcg' | 'kvm'; reason: string };
  if (o.testbed === 'nested') {
    // The whole result directory is shared with the L1 hosts: the L2 QEMUs write their logs into it.
    nested = await bootNested(o, 0);
    accel = { accel: 'kvm', reason: `L2 guests under nested KVM (${nested.facts.a.nested_kvm_detail}) in L1 hosts under ${nested.accel.accel} (${nested.accel.reason})` };
  } else {
    accel = await chooseAccel(o.accel, () => probeKvm(o.qemu, o.guest, workloadAppend(makeWorkload('idle', 256)), o.out));
  }
  info(`accelerator: ${accel.accel} (${accel.reason})`);
  try {
    const qemuVersion = (await probe(o.qemu, ['--version'])).split('\n')[0] ?? 'unknown';
    const host = hostFacts();
    const env: Environment = {
      accel: accel.accel,
      accel_reason: accel.reason,
      qemu_version: qemuVersion,
      kernel_version: host.kernel,
      guest_kernel: o.guest.kernelVersion,
      link: o.link,
      link_desc: describeLink(o.link),
      ...(linkProfile(o.link).rttMs > 0 ? { link_rtt_ms: linkProfile(o.link).rttMs } : {}),
      host_cpus: host.cpus,
      host_mem_mib: host.mem_mib,
      testbed: o.testbed,
      qemu_build: await qemuProvenance(o.qemu, qemuVersion),
      ...(o.postcopyBandwidth === undefined ? {} : { postcopy_bandwidth_bytes_s: o.postcopyBandwidth }),
      started_at: new Date().toISOString(),
    };
    const ctx: RunContext = { qemu: o.qemu, accel: accel.accel, link: o.link, kernel: o.guest.kernel, initrd: o.guest.initrd, append: workloadAppend, outDir: o.out, warmupS: o.warmupS, port: 4444, ...(o.finishTimeoutS === undefined ? {} : { finishTimeoutS: o.finishTimeoutS }), ...(o.qemuTrace?.length ? { qemuTrace: o.qemuTrace } : {}), ...(o.postcopyBandwidth === undefined ? {} : { postcopyBandwidth: o.postcopyBandwidth }) };
    if (nested) {
      const l1Qemu = l1HostQemu();
      const bed = nested;
      env.kernel_version = bed.facts.a.kernel;
      env.nested = {
        l1_accel: `${bed.accel.accel} (${bed.accel.reason})`,
        l1_kernel: bed.facts.a.kernel,
        l1_qemu: `${l1Qemu === o.qemu ? qemuVersion : (await probe(l1Qemu, ['--version'])).split('\n')[0] ?? 'unknown'} (${l1Qemu})`,
        up_ms: bed.upMs,
        hosts: [bed.facts.a, bed.facts.b].map((h) => ({ name: h.name, boot_ms: h.boot_ms, boot_hangs: h.boot_hangs.length, nested_kvm: h.nested_kvm, nested_kvm_detail: h.nested_kvm_detail, rxe_state: h.rxe.state })),
      };
      info('measuring the link between the L1 hosts (ib_read_lat, ib_read_bw, qperf)');
      env.nested.link_probes = await measureLink(bed);
      const nestedEnv = env.nested;
      let runs = 0;
      // An L1 host that died with a run would fail every later one: each run
      // first checks both hosts answer, and boots a new testbed if not.
      let lost: HecaError | undefined;
      ctx.testbed = async () => {
        runs++;
        // Booting again failed once: it would fail again, a full boot per run.
        if (lost) throw lost;
        const silent = await nested!.silentHosts();
        if (silent.length) {
          const report = join(o.out, 'nested', `silent-before-run-${runs}.txt`);
          writeFileSync(report, silent.map((h) => `${h.name}: ${h.report}\n`).join('\n'));
          warn(`L1 host(s) ${silent.map((h) => h.name).join(', ')} no longer answer (${report}): booting a new nested testbed for the next runs`);
          await nested!.destroy();
          nested = undefined;
          try {
            nested = await bootNested(o, runs);
          } catch (e) {
            lost = new HecaError(`the nested testbed could not be booted again after an L1 host died (before run ${runs})`, { why: e instanceof HecaError ? `${e.message}: ${e.why}` : String(e), fix: `see ${report} and ${join(o.out, 'nested', `restart-${runs}`)}` });
            throw lost;
          }
          (nestedEnv.restarts ??= []).push({ before_run: runs, silent: silent.map((h) => h.name), report, up_ms: nested.upMs });
        }
        return nested!.runTestbed();
      };
    }
    return { ctx, env, close: async () => nested?.destroy() };
  } catch (e) {
    await nested?.destroy();
    throw e;
  }
}
