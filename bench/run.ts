/**
 * npx tsx bench/run.ts [--scenario NAME[,NAME...]] [--list] [--mem MiB] [--workload NAME]
 *                      [--link lan1g|lan10g|wan|unlimited] [--repeat N] [--out DIR]
 *                      [--accel auto|kvm|tcg] [--testbed local|nested] [--precopy-timeout S] [--warmup S]
 *                      [--dry-run] [--verbose]
 *
 * Runs a source and a destination QEMU in two network namespaces joined by a
 * shaped veth, migrates the heca guest with each scenario (repeats
 * interleaved), checks every guest page afterwards, and writes
 * OUT/result.json, charts and a report.
 */
import { mkdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { intFlag, main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { HecaError } from '../tools/core/errors.ts';
import { probe, setDryRun, spawnLogged, isDryRun, showCommand } from '../tools/core/exec.ts';
import { info, setVerbose, warn } from '../tools/core/log.ts';
import { buildDir, qemuBinary } from '../tools/core/paths.ts';
import { chooseAccel, parseAccel } from './engine/accel.ts';
import { runOnce, type RunContext } from './engine/run-once.ts';
import { ensureGuestImage, guestAppend } from './guest/image.ts';
import { checkMemory, hostFacts, requireRoot } from './testbed/host.ts';
import { assertLinkSupported, describeLink, LINK_NAMES, parseLink } from './testbed/links.ts';
import { writeReport } from './report/report.ts';
import { RESULT_SCHEMA_VERSION, type BenchResult, type Environment, type RunRecord, type ScenarioResult } from './results/schema.ts';
import { DEFAULT_SCENARIOS, listScenarios, parseScenarios } from './scenario/catalog.ts';
import { baselineIndex, compareScenarios, summarize } from './results/stats.ts';
import { measureLink } from './testbed/nested/link-probes.ts';
import { LocalTestbed } from './testbed/local/testbed.ts';
import { NestedTestbed } from './testbed/nested/testbed.ts';
import { Vm, vmArgs } from './guest/vm.ts';
import { listWorkloads, makeWorkload } from './scenario/workloads.ts';

const usage = `  npx tsx bench/run.ts [options]
    --scenario LIST    comma-separated scenario names, or "all" (default: all)
    --list             list scenarios, workloads and links, then exit
    --mem MiB          guest RAM (default 512)
    --workload NAME    guest workload (default write-heavy)
    --link NAME        lan1g | lan10g | wan | unlimited (default lan1g)
    --repeat N         repeats of every scenario, interleaved (default 3)
    --out DIR          where result.json, charts, report and logs go (default results/<time>)
    --accel A          auto | kvm | tcg (default auto: probe-boots a guest under KVM)
    --testbed T        local (default: two network namespaces here) | nested (two L1 hosts on the
                       heca kernel, L2 guests under nested KVM, Soft-RoCE between them; link probes recorded)
    --precopy-timeout S  give up pre-copy after S seconds (default 120)
    --warmup S         seconds of guest activity recorded before migrate (default 3)
    --dry-run          print what would run (testbed commands, QEMU command lines) and exit
    --verbose          echo every command and QMP message`;

main(async () => {
  const { values } = parseFlags(process.argv.slice(2), {
    scenario: { type: 'string' },
    list: { type: 'boolean' },
    mem: { type: 'string' },
    workload: { type: 'string' },
    link: { type: 'string' },
    repeat: { type: 'string' },
    out: { type: 'string' },
    accel: { type: 'string' },
    testbed: { type: 'string' },
    'precopy-timeout': { type: 'string' },
    warmup: { type: 'string' },
    'dry-run': { type: 'boolean' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  if (values.list) {
    process.stdout.write(`scenarios:\n${listScenarios()}\nworkloads:\n${listWorkloads()}\nlinks: ${LINK_NAMES.join(' ')}\n`);
    return;
  }
  setVerbose(values.verbose === true);
  setDryRun(values['dry-run'] === true);

  // Validate everything before anything starts.
  const precopyTimeout = intFlag('precopy-timeout', values['precopy-timeout'], 1, 3600);
  const scenarios = parseScenarios(!values.scenario || values.scenario === 'all' ? DEFAULT_SCENARIOS.join(',') : values.scenario, precopyTimeout);
  const mem = intFlag('mem', values.mem, 1, 1 << 20) ?? 512;
  const workload = makeWorkload(values.workload ?? 'write-heavy', mem);
  const link = parseLink(values.link ?? 'lan1g');
  const repeat = intFlag('repeat', values.repeat, 1, 100) ?? 3;
  const warmup = intFlag('warmup', values.warmup, 0, 600) ?? 3;
  const accelReq = parseAccel(values.accel ?? 'auto');
  const testbed = values.testbed ?? 'local';
  if (testbed !== 'local' && testbed !== 'nested') throw new UsageError(`unknown testbed "${testbed}"`, { why: 'the testbeds are local and nested', fix: 'use --testbed local or --testbed nested' });
  if (testbed === 'nested' && values.accel !== undefined) throw new UsageError('--accel applies to the local testbed only', { why: 'on the nested testbed L2 guests always run under nested KVM in the L1 hosts', fix: 'drop --accel' });
  checkMemory(mem);
  const out = resolve(values.out ?? join('results', new Date().toISOString().replace(/[:.]/g, '-')));
  const qemu = qemuBinary();
  const guest = await ensureGuestImage();
  const append = (w: typeof workload) => guestAppend({ arena_mib: w.arena_mib, ws_mib: w.working_set_mib, rate: w.write_rate, pattern: w.pattern });

  if (isDryRun()) {
    const cfg = { accel: 'tcg' as const, memMib: mem, kernel: guest.kernel, initrd: guest.initrd, append: append(workload) };
    process.stdout.write(`# destination (in the dst namespace)\n${showCommand(qemu, vmArgs({ ...cfg, name: 'heca-dst', dir: join(out, 'logs', 'RUN', 'dst'), incoming: true }))}\n`);
    process.stdout.write(`# source (in the src namespace)\n${showCommand(qemu, vmArgs({ ...cfg, name: 'heca-src', dir: join(out, 'logs', 'RUN', 'src') }))}\n`);
    process.stdout.write(`# ${scenarios.length} scenario(s) × ${repeat} repeat(s): ${scenarios.map((s) => s.id).join(', ')}; link ${link}\n`);
    return;
  }
  requireRoot('bench/run.ts');
  if (testbed === 'local') await assertLinkSupported(link);
  mkdirSync(out, { recursive: true });
  await LocalTestbed.cleanupStale();

  let nested: NestedTestbed | undefined;
  let accel: { accel: 'tcg' | 'kvm'; reason: string };
  if (testbed === 'nested') {
    // The whole result directory is shared with the L1 hosts: the L2 QEMUs write their logs into it.
    nested = await NestedTestbed.create({ link, dir: join(out, 'nested'), sharedDir: out, memMib: Math.max(3072, 2 * mem + 1024) });
    const f = [nested.facts.a, nested.facts.b];
    const missing = f.filter((h) => !h.nested_kvm);
    if (missing.length) {
      await nested.destroy();
      throw new HecaError('nested KVM is not available in the L1 hosts', { why: missing.map((h) => `${h.name}: ${h.nested_kvm_detail}`).join('; '), fix: 'the L1 hosts need a CPU with SVM/VMX: TCG -cpu max has SVM' });
    }
    accel = { accel: 'kvm', reason: `L2 guests under nested KVM (${f[0]!.nested_kvm_detail}) in L1 hosts under ${nested.accel.accel} (${nested.accel.reason})` };
  } else {
    accel = await chooseAccel(accelReq, async () => probeKvm(qemu, guest, append(makeWorkload('idle', 256)), out));
  }
  info(`accelerator: ${accel.accel} (${accel.reason})`);
  const qemuVersion = (await probe(qemu, ['--version'])).split('\n')[0] ?? 'unknown';
  const host = hostFacts();
  const env: Environment = {
    accel: accel.accel,
    accel_reason: accel.reason,
    qemu_version: qemuVersion,
    kernel_version: host.kernel,
    guest_kernel: guest.kernelVersion,
    link,
    link_desc: describeLink(link),
    host_cpus: host.cpus,
    host_mem_mib: host.mem_mib,
    testbed,
    qemu_build: readQemuBuild(),
    started_at: new Date().toISOString(),
  };
  const ctx: RunContext = { qemu, accel: accel.accel, link, kernel: guest.kernel, initrd: guest.initrd, append, outDir: out, warmupS: warmup, port: 4444 };
  if (nested) {
    const bed = nested;
    env.kernel_version = bed.facts.a.kernel;
    env.nested = {
      l1_accel: `${bed.accel.accel} (${bed.accel.reason})`,
      l1_kernel: bed.facts.a.kernel,
      up_ms: bed.upMs,
      hosts: [bed.facts.a, bed.facts.b].map((h) => ({ name: h.name, boot_ms: h.boot_ms, boot_hangs: h.boot_hangs.length, nested_kvm: h.nested_kvm, nested_kvm_detail: h.nested_kvm_detail, rxe_state: h.rxe.state })),
    };
    ctx.testbed = async () => bed.runTestbed();
  }
  const results: ScenarioResult[] = scenarios.map((s) => ({ scenario: s, workload, runs: [], summary: {} }));
  const total = scenarios.length * repeat;
  let n = 0;
  const save = () => writeResult(out, env, results);
  try {
    if (nested && env.nested) {
      info('measuring the link between the L1 hosts (ib_read_lat, ib_read_bw, qperf)');
      env.nested.link_probes = await measureLink(nested);
    }
    for (let r = 1; r <= repeat; r++) {
      for (const res of results) {
        n++;
        info(`[${n}/${total}] ${res.scenario.name} (${res.scenario.id}), repeat ${r}/${repeat}`);
        const rec = await runOnce(ctx, res.scenario, workload, r);
        res.runs.push(rec);
        res.summary = summarize(res.runs, workload.mem_mib);
        info(`[${n}/${total}] ${res.scenario.name} r${r}: ${line(rec)}`);
        save();
      }
    }
  } finally {
    // main() exits the process on an error, before cleanup.ts could run: power the L1 hosts off here.
    await nested?.destroy();
  }
  const result = save();
  await writeReport(result, out);
  info(`wrote ${join(out, 'result.json')}, charts and ${join(out, 'report.md')}`);
  const failed = results.flatMap((s) => s.runs.filter((x) => x.status === 'failed').map((x) => `${s.scenario.name} r${x.repeat}: ${x.reason}`));
  if (failed.length) {
    throw new HecaError(`${failed.length} run(s) failed`, { why: failed.join('\n       '), fix: `logs per run under ${join(out, 'logs')}` });
  }
});

function line(r: RunRecord): string {
  const t = r.total_time_ms === null ? '-' : `${(r.total_time_ms / 1000).toFixed(1)} s`;
  const integ = r.integrity.pages_checked ? `${r.integrity.bad_pages} bad / ${r.integrity.pages_checked} pages` : 'not checked';
  return `${r.status}, total ${t}, downtime ${r.downtime_ms ?? '-'} ms, wire ${(r.bytes.wire / 1048576).toFixed(0)} MiB, integrity ${integ}${r.reason ? ` (${r.reason})` : ''}`;
}

function writeResult(out: string, env: Environment, scenarios: ScenarioResult[]): BenchResult {
  const result: BenchResult = {
    schema: RESULT_SCHEMA_VERSION,
    scenario: scenarios.map((s) => s.scenario.id).join('+'),
    environment: env,
    scenarios,
    runs: scenarios[0]?.runs ?? [],
    summary: scenarios[0]?.summary ?? {},
    comparison: scenarios.length > 1 ? compareScenarios(scenarios, baselineIndex(scenarios)) : undefined,
    command: process.argv.slice(1),
  };
  writeFileSync(join(out, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function readQemuBuild(): Environment['qemu_build'] {
  const p = join(buildDir(), 'qemu', 'BUILD-INFO.json');
  if (!existsSync(p)) return undefined;
  try {
    const bi = JSON.parse(readFileSync(p, 'utf8')) as { debian_version: string; series: { sha256: string; patches: { name: string }[] } };
    return { version: bi.debian_version, series_sha256: bi.series.sha256, patches: bi.series.patches.map((x) => x.name) };
  } catch {
    warn(`${p} is unreadable; the result will not name the QEMU build`);
    return undefined;
  }
}

/** Boot the guest under KVM and see whether it reaches the workload. */
async function probeKvm(qemu: string, guest: { kernel: string; initrd: string }, append: string, out: string): Promise<{ ok: boolean; detail: string }> {
  const dir = join(out, 'logs', 'kvm-probe');
  mkdirSync(dir, { recursive: true });
  const t = Date.now();
  let vm: Vm | undefined;
  try {
    vm = await Vm.start(qemu, { name: 'heca-kvm-probe', dir, accel: 'kvm', memMib: 256, kernel: guest.kernel, initrd: guest.initrd, append }, (c, a, log) => spawnLogged(c, a, { logFile: log }));
    await vm.guard(vm.channel.waitFor('ready', { timeoutMs: 60_000 }), 'the KVM probe boot');
    return { ok: true, detail: `ready after ${((Date.now() - t) / 1000).toFixed(1)} s` };
  } catch (e) {
    return { ok: false, detail: e instanceof HecaError ? e.message : String(e) };
  } finally {
    await vm?.stop();
  }
}
