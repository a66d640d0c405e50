/**
 * npx tsx bench/run.ts [--scenario NAME[,NAME...]] [--transport T[,T...]] [--fault SPEC] [--list] [--mem MiB] [--workload NAME]
 *                      [--link lan1g|lan10g|wan|unlimited|jumbo] [--repeat N] [--out DIR]
 *                      [--accel auto|kvm|tcg] [--testbed local|nested] [--precopy-timeout S] [--warmup S]
 *                      [--finish-timeout S] [--postcopy-bandwidth MB/s] [--qemu-trace PATTERN[,PATTERN...]]
 *                      [--variant NAME[@TRANSPORT]:DRIVER.PROP=VALUE[,...]] [--dry-run] [--verbose]
 *
 * Runs a source and a destination QEMU in two network namespaces joined by a
 * shaped veth, migrates the heca guest with each scenario (repeats
 * interleaved), checks every guest page afterwards, and writes
 * OUT/result.json, charts and a report.
 */
import { join, resolve } from 'node:path';
import { intFlag, main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { HecaError } from '../tools/core/errors.ts';
import { isDryRun, setDryRun } from '../tools/core/exec.ts';
import { info, setVerbose } from '../tools/core/log.ts';
import { qemuBinary } from '../tools/core/paths.ts';
import { parseAccel } from './engine/accel.ts';
import { runBench } from './engine/bench.ts';
import { dryRunText, prepare, type PrepareOptions } from './engine/prepare.ts';
import { ensureGuestImage } from './guest/image.ts';
import { parseTracePatterns } from './guest/vm.ts';
import { runLine } from './report/console.ts';
import { writeReport } from './report/report.ts';
import { DEFAULT_SCENARIOS, listScenarios, TRANSPORTS } from './scenario/catalog.ts';
import { parseFaults } from './scenario/faults.ts';
import { parseTransports, refuseOnTestbed, refuseWithoutRxe, selectScenarios } from './scenario/select.ts';
import { parseVariants } from './scenario/variants.ts';
import { listWorkloads, makeWorkload } from './scenario/workloads.ts';
import { checkMemory } from './testbed/host.ts';
import { LINK_NAMES, parseLink } from './testbed/links.ts';

const usage = `  npx tsx bench/run.ts [options]
    --scenario LIST    comma-separated scenario names, or "all" (default: all policies over tcp)
    --transport LIST   tcp | preempt | rdma | rdma-kernel, comma-separated: each scenario over each
                       (names become POLICY-TRANSPORT, e.g. full-rdma); rdma and rdma-kernel (the
                       destination kernel's RDMA resolver takes the faults) need --testbed nested
    --fault SPEC       inject a fault in every run, e.g. cut@postcopy+2s:3s (the link down and its
                       connections reset for 3 s, 2 s after post-copy starts; the engine then recovers)
    --list             list scenarios, workloads and links, then exit
    --mem MiB          guest RAM (default 512)
    --workload NAME    guest workload (default write-heavy)
    --link NAME        lan1g | lan10g | wan | unlimited | jumbo (default lan1g)
    --repeat N         repeats of every scenario, interleaved (default 3)
    --out DIR          where result.json, charts, report and logs go (default results/<time>)
    --accel A          auto | kvm | tcg (default auto: probe-boots a guest under KVM)
    --testbed T        local (default: two network namespaces here) | nested (two L1 hosts on the
                       heca kernel, L2 guests under nested KVM, Soft-RoCE between them; link probes recorded)
    --precopy-timeout S  give up pre-copy after S seconds (default 120)
    --warmup S         seconds of guest activity recorded before migrate (default 3)
    --finish-timeout S a migration still going after S seconds fails; what every QEMU thread waits
                       for is then saved in the run's error.txt (default 600)
    --postcopy-bandwidth MB/s  max-postcopy-bandwidth on every source (MB = 10^6 bytes): post-copy's
                       background stream (or RDMA pull's background reads) held back, so that the
                       guest faults more; default unlimited
    --qemu-trace LIST  enable these QEMU trace events in both QEMUs (comma-separated -trace patterns,
                       e.g. postcopy_rdma_dst_verified to re-read and compare every page an RDMA pull
                       placed); their lines go to each run's qemu.log
    --variant LIST     also run every scenario with these QEMU globals on both QEMUs, interleaved in the
                       same repeats (comma-separated NAME[@TRANSPORT]:DRIVER.PROP=VALUE[:DRIVER.PROP=VALUE...];
                       the scenario becomes NAME+VARIANT; @TRANSPORT: only the scenarios over it), e.g. to
                       measure an x- switch against the default: --variant nocap@rdma:migration.x-postcopy-rdma-bg-cap=off
    --dry-run          print what would run (testbed commands, QEMU command lines) and exit
    --verbose          echo every command and QMP message`;

main(async () => {
  const { values } = parseFlags(process.argv.slice(2), {
    scenario: { type: 'string' },
    transport: { type: 'string' },
    fault: { type: 'string' },
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
    'finish-timeout': { type: 'string' },
    'qemu-trace': { type: 'string' },
    'postcopy-bandwidth': { type: 'string' },
    variant: { type: 'string' },
    'dry-run': { type: 'boolean' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  if (values.list) {
    process.stdout.write(`scenarios:\n${listScenarios()}\ntransports: ${TRANSPORTS.join(' ')} (--transport crosses them with the scenarios)\nfaults: cut@postcopy+Ns:Ds | cut@migrate+Ns:Ds (--fault)\nworkloads:\n${listWorkloads()}\nlinks: ${LINK_NAMES.join(' ')}\n`);
    return;
  }
  setVerbose(values.verbose === true);
  setDryRun(values['dry-run'] === true);

  // Validate everything before anything starts.
  const precopyTimeout = intFlag('precopy-timeout', values['precopy-timeout'], 1, 3600);
  const selection = selectScenarios(!values.scenario || values.scenario === 'all' ? DEFAULT_SCENARIOS.join(',') : values.scenario, {
    precopyTimeoutS: precopyTimeout,
    transports: values.transport === undefined ? undefined : parseTransports(values.transport),
    faults: parseFaults(values.fault),
    variants: parseVariants(values.variant),
  });
  const scenarios = selection.scenarios;
  for (const s of selection.skipped) info(`not run: ${s}`);
  const mem = intFlag('mem', values.mem, 1, 1 << 20) ?? 512;
  const workload = makeWorkload(values.workload ?? 'write-heavy', mem);
  const link = parseLink(values.link ?? 'lan1g');
  const repeat = intFlag('repeat', values.repeat, 1, 100) ?? 3;
  const warmup = intFlag('warmup', values.warmup, 0, 600) ?? 3;
  const finishTimeout = intFlag('finish-timeout', values['finish-timeout'], 5, 86_400);
  const qemuTrace = parseTracePatterns(values['qemu-trace']);
  const postcopyMBs = intFlag('postcopy-bandwidth', values['postcopy-bandwidth'], 1, 1_000_000);
  const accelReq = parseAccel(values.accel ?? 'auto');
  const testbed = values.testbed ?? 'local';
  if (testbed !== 'local' && testbed !== 'nested') throw new UsageError(`unknown testbed "${testbed}"`, { why: 'the testbeds are local and nested', fix: 'use --testbed local or --testbed nested' });
  if (testbed === 'nested' && values.accel !== undefined) throw new UsageError('--accel applies to the local testbed only', { why: 'on the nested testbed L2 guests always run under nested KVM in the L1 hosts', fix: 'drop --accel' });
  refuseOnTestbed(scenarios, testbed);
  checkMemory(mem);
  const opts: PrepareOptions = {
    testbed,
    accel: accelReq,
    link,
    memMib: mem,
    out: resolve(values.out ?? join('results', new Date().toISOString().replace(/[:.]/g, '-'))),
    warmupS: warmup,
    ...(finishTimeout === undefined ? {} : { finishTimeoutS: finishTimeout }),
    ...(qemuTrace.length ? { qemuTrace } : {}),
    ...(postcopyMBs === undefined ? {} : { postcopyBandwidth: postcopyMBs * 1_000_000 }),
    qemu: qemuBinary(),
    guest: await ensureGuestImage(),
  };
  if (isDryRun()) return void process.stdout.write(dryRunText(opts, scenarios, workload, repeat));

  const { ctx, env, close } = await prepare(opts);
  let result;
  try {
    if (env.nested) refuseWithoutRxe(scenarios, env.nested.hosts);
    result = await runBench({
      scenarios, workload, repeat, ctx, env, command: process.argv.slice(1),
      onRun: (rec, sc, n, total) => info(`run ${n} of ${total} ${sc.name} r${rec.repeat}: ${runLine(rec)}`),
    });
  } finally {
    // main() exits the process on an error, before cleanup.ts could run: power the L1 hosts off here.
    await close();
  }
  await writeReport(result, opts.out);
  info(`wrote ${join(opts.out, 'result.json')}, charts and ${join(opts.out, 'report.md')}`);
  const failed = result.scenarios.flatMap((s) => s.runs.filter((x) => x.status === 'failed').map((x) => `${s.scenario.name} r${x.repeat}: ${x.reason}`));
  if (failed.length) {
    throw new HecaError(`${failed.length} run(s) failed`, { why: failed.join('\n       '), fix: `logs per run under ${join(opts.out, 'logs')}` });
  }
});
