/**
 * One bench invocation after prepare(): every scenario `repeat` times,
 * repeats interleaved (repeat r of every scenario, then r+1) so that drift
 * of a noisy machine hits all of them alike; result.json rewritten after
 * every run, so an interrupted invocation keeps what it measured; a line
 * "run i of n" with the time left before each run.
 */
import { info } from '../../tools/core/log.ts';
import { writeResultFile } from '../results/io.ts';
import { RESULT_SCHEMA_VERSION, type BenchResult, type Environment, type RunRecord, type ScenarioParams, type ScenarioResult, type WorkloadParams } from '../results/schema.ts';
import { baselineIndex, compareScenarios, summarize } from '../results/stats.ts';
import { formatLeft, RunClock } from './eta.ts';
import { runOnce, type RunContext } from './run-once.ts';
import { cleaningUp } from '../testbed/cleanup.ts';

export interface BenchPlan {
  scenarios: ScenarioParams[];
  workload: WorkloadParams;
  repeat: number;
  ctx: RunContext;
  env: Environment;
  /** The command line, recorded in the result. */
  command: string[];
  /** Called as each run ends (the command line prints it). */
  onRun?: (rec: RunRecord, sc: ScenarioParams, n: number, total: number) => void;
  /** The run itself (tests put a fake here). */
  runOnce?: typeof runOnce;
  /** Whether to start no more runs (default: a signal arrived and the process is cleaning up). */
  stopping?: () => boolean;
}

/** The result of the runs so far, in result.json's shape. */
export function benchResult(env: Environment, scenarios: ScenarioResult[], command: string[]): BenchResult {
  return {
    schema: RESULT_SCHEMA_VERSION,
    scenario: scenarios.map((s) => s.scenario.id).join('+'),
    environment: env,
    scenarios,
    runs: scenarios[0]?.runs ?? [],
    summary: scenarios[0]?.summary ?? {},
    comparison: scenarios.length > 1 ? compareScenarios(scenarios, baselineIndex(scenarios)) : undefined,
    command,
  };
}

export async function runBench(p: BenchPlan): Promise<BenchResult> {
  const one = p.runOnce ?? runOnce;
  const results: ScenarioResult[] = p.scenarios.map((s) => ({ scenario: s, workload: p.workload, runs: [], summary: {} }));
  const order = Array.from({ length: p.repeat }, (_, r) => results.map((res) => ({ res, repeat: r + 1 }))).flat();
  const clock = new RunClock();
  let result = benchResult(p.env, results, p.command);
  const stopping = p.stopping ?? cleaningUp;
  for (const [i, { res, repeat }] of order.entries()) {
    if (stopping()) {
      // Ctrl-C or SIGTERM: the testbed is being taken down; a run started now would only fail.
      info(`stopping after ${i} of ${order.length} runs`);
      break;
    }
    const left = clock.estimate(order.slice(i).map((x) => x.res.scenario.name));
    info(`run ${i + 1} of ${order.length}${left === undefined ? '' : `, ${formatLeft(left)} left`}: ${res.scenario.name} (${res.scenario.id}), repeat ${repeat}/${p.repeat}`);
    const t0 = Date.now();
    const rec = await one(p.ctx, res.scenario, p.workload, repeat);
    clock.done(res.scenario.name, Date.now() - t0);
    res.runs.push(rec);
    res.summary = summarize(res.runs, p.workload.mem_mib);
    p.onRun?.(rec, res.scenario, i + 1, order.length);
    result = benchResult(p.env, results, p.command);
    writeResultFile(p.ctx.outDir, result);
  }
  return result;
}
