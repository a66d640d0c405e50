/**
 * The engine: one migration of the heca guest from a source QEMU to a
 * destination QEMU, driven through QMP the way a management layer drives
 * upstream QEMU, ending with the guest's page-by-page integrity check.
 * Produces one RunRecord; never leaves a QEMU, namespace or veth behind.
 *
 * The run goes through phases, each in its own module:
 *   arrange   (arrange.ts)  testbed, QEMUs, guest booted; capabilities, parameters, events
 *   migrate   (observe.ts)  `migrate`, and what the scenario's policy does right after it
 *   observe   (observe.ts)  poll the source, asking the policy at every tick, until the end;
 *                          faults injected when due, the recovery driven (fault.ts)
 *   collect   (collect.ts)  the record's figures and status
 *   verify    (verify.ts)   the integrity check where the guest now runs
 *   teardown  (here)        the guest's timeline, logs, QEMUs and testbed gone
 */
import { appendFileSync, copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { HecaError } from '../../tools/core/errors.ts';
import { debug, info, warn } from '../../tools/core/log.ts';
import type { RunRecord, ScenarioParams, WorkloadParams } from '../results/schema.ts';
import { policyFor } from '../scenario/policy.ts';
import { onCleanup } from '../testbed/cleanup.ts';
import { type Migration, prepareMigration, startHosts } from './arrange.ts';
import { collect, collectTimeline, failIfNotInjected } from './collect.ts';
import { observe, startMigration, stopAsyncPfTrace } from './observe.ts';
import { faultPath } from './fault-path.ts';
import { postMortem } from './postmortem.ts';
import { newRun, type Run, type RunContext } from './run.ts';
import { saveRegisters, sideOf } from './side.ts';
import { verify } from './verify.ts';

export type { RunContext, RunHooks } from './run.ts';

export async function runOnce(ctx: RunContext, sc: ScenarioParams, w: WorkloadParams, repeat: number): Promise<RunRecord> {
  const run = newRun(ctx, sc, w, repeat);
  const unregister = onCleanup(() => teardown(run));
  // Where the guest failed after running on the destination (a reset, a hang, bad pages): a post-mortem.
  let m: Migration | undefined;
  let checking: 'src' | 'dst' | undefined;
  try {
    const { src, dst, bed } = await startHosts(run);
    m = await prepareMigration(run, policyFor(sc), sideOf(src, 'source'), sideOf(dst, 'destination'), bed);
    await startMigration(m);
    try {
      await ctx.hooks?.migrating?.(src, dst);
    } catch (e) {
      // observe() turns KVM's trace events off however it ends; a hook that throws before it must too.
      await stopAsyncPfTrace(m);
      throw e;
    }
    const outcome = await observe(m, ctx.finishTimeoutS === undefined ? {} : { finishTimeoutMs: ctx.finishTimeoutS * 1000 });
    const where = await collect(m, outcome);
    checking = where;
    await verify(m, where === 'dst' ? dst : src, where, ctx.hooks);
    checking = undefined;
    if (where === 'dst' && run.rec.status === 'failed') await postMortemOf(run);
    failIfNotInjected(run.rec);
  } catch (e) {
    await recordFailure(run, e);
    // The guest failed on the destination: during the check there, or reset there once it ran.
    const dstFailed = checking === 'dst' || (m?.reset?.includes('on the destination') === true && m.events.resumeUs !== undefined);
    if (dstFailed) await postMortemOf(run);
  } finally {
    collectTimeline(run.rec, [{ side: 'src', messages: run.src?.channel.messages ?? [] }, { side: 'dst', messages: run.dst?.channel.messages ?? [] }], run.t0);
    writeFileSync(join(run.logs, 'guest-src.jsonl'), (run.src?.channel.messages ?? []).map((m) => JSON.stringify(m)).join('\n'));
    writeFileSync(join(run.logs, 'guest-dst.jsonl'), (run.dst?.channel.messages ?? []).map((m) => JSON.stringify(m)).join('\n'));
    await teardown(run);
    const dstLog = join(run.logs, 'dst', 'qemu.log');
    const path = existsSync(dstLog) ? faultPath(readFileSync(dstLog, 'utf8')) : undefined;
    if (path) run.rec.fault_path = path;
    await reportCores(run);
    unregister();
  }
  const rec = run.rec;
  debug(`run record: ${JSON.stringify({ ...rec, guest: { ...rec.guest, ops_timeline: rec.guest.ops_timeline.length }, progress: rec.progress?.length })}`);
  return rec;
}

/** The run failed: why, in the record and in logs/<run>/error.txt, with where the guests' CPUs were. */
async function recordFailure(run: Run, e: unknown): Promise<void> {
  const rec = run.rec;
  rec.status = 'failed';
  rec.reason = e instanceof HecaError ? `${e.message}: ${e.why}` : String(e);
  const details = e instanceof HecaError && e.details ? `\n${e.details}` : '';
  // A guest that hung at boot or stopped answering says more by its registers.
  const cpus: string[] = [];
  for (const [vm, dir] of [[run.src, 'src'], [run.dst, 'dst']] as const) {
    const file = join(run.logs, dir, 'registers.txt');
    if (vm && !vm.exited && !existsSync(file)) {
      const regs = await saveRegisters(sideOf(vm, dir === 'src' ? 'source' : 'destination'), file);
      if (regs) cpus.push(`${dir} CPU: ${regs} (${file})`);
    }
    // A CPU state that cannot be the guest's (nested: its L1 host's): the testbed failed, say so first.
    const why = existsSync(file) ? run.bed?.explainGuestCpu?.(readFileSync(file, 'utf8'), run.w.mem_mib) : undefined;
    if (why) {
      cpus.push(`${dir} CPU: ${why}`);
      rec.reason = `${rec.reason}; on the ${dir === 'src' ? 'source' : 'destination'}, ${why}`;
    }
  }
  // A migration that made no end says more by what each QEMU thread waits for (both sides at once).
  const sides = ([[run.src, 'src'], [run.dst, 'dst']] as const).filter(([vm]) => vm && !vm.exited && run.bed);
  const reports = await Promise.all(sides.map(async ([vm, role]) => {
    const file = join(run.logs, role, 'threads.txt');
    try {
      const text = await run.bed!.threads(role, vm!.proc.pid);
      writeFileSync(file, text);
      const heads = text.split('\n').filter((l) => l && !l.startsWith(' '));
      return [`${role} threads (kernel stacks in ${file}):`, ...heads.map((l) => `  ${l}`)];
    } catch (e) {
      return [`${role} threads: could not read them (${(e as Error).message})`];
    }
  }));
  const threads = reports.flat();
  if (run.dst && !run.dst.exited && rec.phases.some((p) => p.name === 'migrate')) {
    const st = await run.dst.qmp.execute('query-migrate', undefined, { timeoutMs: 5000 })
      .then((i) => `dst query-migrate: ${JSON.stringify(i)}`, (e: Error) => `dst query-migrate: no answer (${e.message})`);
    threads.push(st);
  }
  writeFileSync(join(run.logs, 'error.txt'), `${rec.reason}${details}\n${[...cpus, ...threads].map((l) => `${l}\n`).join('')}`);
}

/**
 * Both guests' RAM compared page by page (postmortem.ts): the result goes into
 * the run's reason and logs/<run>/postmortem.json. Never throws.
 */
async function postMortemOf(run: Run): Promise<void> {
  if (!run.src || !run.dst) return;
  info(`  ${run.label}: post-mortem: saving both guests' RAM to compare it page by page`);
  const seed = Number(/\bheca\.seed=(\d+)/.exec(run.ctx.append(run.w))?.[1] ?? 1);
  let said: string;
  try {
    said = await postMortem(run.src, run.dst, run.w.mem_mib, seed, run.logs);
  } catch (e) {
    said = `not done: ${(e as Error).message}`;
  }
  info(`  ${run.label}: post-mortem: ${said}`);
  run.rec.reason = `${run.rec.reason ?? 'failed'}; post-mortem: ${said}`;
  appendFileSync(join(run.logs, 'error.txt'), `post-mortem: ${said}\n`);
}

/**
 * A QEMU of the run that dumped core (the testbed keeps them: nested) fails
 * the run, whatever it did before: its signal, thread and top frames go into
 * the reason, gdb's backtraces of every thread and the core itself into
 * logs/<run>/<side>/. Called once the QEMUs have exited. Never throws.
 */
async function reportCores(run: Run): Promise<void> {
  const cores = await run.bed?.coreDumps?.().catch((e: unknown) => {
    warn(`  ${run.label}: looking for core dumps: ${(e as Error).message}`);
    return [];
  }) ?? [];
  for (const c of cores) {
    // The run fails whatever happens to the files: a crash is never a footnote.
    const said = `the ${c.role === 'src' ? 'source' : 'destination'} QEMU (pid ${c.pid} in ${c.host}) dumped core: ${c.summary}`;
    run.rec.reason = run.rec.status === 'failed' && run.rec.reason ? `${run.rec.reason}; ${said}` : said;
    run.rec.status = 'failed';
    let where: string;
    try {
      const dir = join(run.logs, c.role);
      const core = join(dir, basename(c.file));
      try {
        renameSync(c.file, core);
      } catch {
        copyFileSync(c.file, core);
        rmSync(c.file, { force: true });
      }
      const bt = join(dir, `core-${c.pid}.txt`);
      writeFileSync(bt, c.backtrace);
      where = `every thread's backtrace: ${bt}; the core: ${core}`;
    } catch (e) {
      where = `the core stays at ${c.file}: moving it into the run's logs failed (${(e as Error).message})`;
    }
    warn(`  ${run.label}: ${said} (${where})`);
    try {
      appendFileSync(join(run.logs, 'error.txt'), `${said} (${where})\n`);
    } catch (e) {
      warn(`  ${run.label}: cannot write error.txt: ${(e as Error).message}`);
    }
  }
}

/** Phase 6: both QEMUs stopped, the testbed destroyed, RAM files removed. Safe to call twice. */
async function teardown(run: Run): Promise<void> {
  await Promise.allSettled([run.src?.stop(), run.dst?.stop()]);
  await run.bed?.destroy();
  for (const f of run.memFiles) rmSync(f, { force: true });
}
