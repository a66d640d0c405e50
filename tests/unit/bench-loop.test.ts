/**
 * A bench invocation's loop (bench/engine/bench.ts) with a stand-in for
 * runOnce: repeats interleaved, result.json valid and rewritten after every
 * run, and "run i of n, ~time left" from the runs so far.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBench } from '../../bench/engine/bench.ts';
import { formatLeft, RunClock } from '../../bench/engine/eta.ts';
import type { RunContext } from '../../bench/engine/run.ts';
import { loadResult } from '../../bench/results/io.ts';
import { parseScenarios } from '../../bench/scenario/catalog.ts';
import { makeWorkload } from '../../bench/scenario/workloads.ts';
import { fixtureEnv, fixtureRun } from '../fixtures/results.ts';

test('time left: each run to come takes as long as its scenario took so far, else as any run', () => {
  const c = new RunClock();
  assert.is(c.estimate(['a', 'b']), undefined, 'nothing measured yet');
  assert.is(c.estimate([]), 0);
  c.done('a', 10_000);
  c.done('a', 20_000);
  assert.is(c.estimate(['a', 'b']), 15_000 + 15_000, 'b unknown: the mean of all runs');
  c.done('b', 60_000);
  assert.is(c.estimate(['a', 'b', 'b']), 15_000 + 2 * 60_000);
  assert.equal([formatLeft(40_000), formatLeft(240_000), formatLeft(80 * 60_000), formatLeft(100 * 60_000)], ['~40 s', '~4 min', '~80 min', '~1 h 40 min']);
});

/** A run context whose results go to a fresh directory (the fake runOnce starts nothing). */
function fakeCtx(): RunContext {
  const out = mkdtempSync(join(tmpdir(), 'heca-bench-loop-'));
  return { qemu: 'q', accel: 'tcg', link: 'lan1g', kernel: '', initrd: '', append: () => '', outDir: out, warmupS: 0, port: 4444 };
}

/** Runs `fn` with what is written to stderr (the progress lines) collected in `lines`. */
async function capturingStderr(lines: string[], fn: () => Promise<void>): Promise<void> {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => lines.push(s) > 0) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
}

test('runBench: repeats interleaved, result.json valid after every run, a line per run with the time left', async () => {
  const ctx = fakeCtx();
  const out = ctx.outDir;
  const order: string[] = [];
  const seen: number[] = [];
  const lines: string[] = [];
  await capturingStderr(lines, async () => {
    const result = await runBench({
      scenarios: parseScenarios('postcopy,full'),
      workload: makeWorkload('write-heavy', 256),
      repeat: 2,
      ctx,
      env: fixtureEnv(),
      command: ['bench/run.ts', '--repeat', '2'],
      runOnce: async (_ctx, sc, _w, repeat) => {
        order.push(`${sc.name} r${repeat}`);
        // What is on disk when run n starts: the n - 1 runs before it.
        if (order.length > 1) seen.push(loadResult(out).result.scenarios.reduce((n, s) => n + s.runs.length, 0));
        await new Promise((r) => setTimeout(r, 20));
        return fixtureRun(repeat, { total: 1000 * repeat });
      },
    });
    assert.equal(order, ['postcopy r1', 'full r1', 'postcopy r2', 'full r2']);
    assert.equal(seen, [1, 2, 3]);
    assert.equal(result.scenarios.map((s) => s.runs.length), [2, 2]);
    assert.is(result.comparison?.baseline, 'postcopy-immediate');
  });
  const runLines = lines.filter((l) => / run \d of 4/.test(l));
  assert.is(runLines.length, 4, lines.join(''));
  assert.match(runLines[0]!, /run 1 of 4: postcopy \(postcopy-immediate\), repeat 1\/2\n$/, 'nothing to estimate from yet');
  assert.match(runLines[3]!, /run 4 of 4, ~0 s left: full \(postcopy-qemu-immediate\), repeat 2\/2/);
  const final = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as { runs: unknown[]; command: string[] };
  assert.is(final.runs.length, 2);
  assert.equal(final.command, ['bench/run.ts', '--repeat', '2']);
});

test('runBench: once the process is cleaning up after a signal, no further run starts', async () => {
  const ctx = fakeCtx();
  let started = 0;
  const lines: string[] = [];
  await capturingStderr(lines, async () => {
    const result = await runBench({
      scenarios: parseScenarios('postcopy,full'),
      workload: makeWorkload('write-heavy', 256),
      repeat: 3,
      ctx,
      env: fixtureEnv(),
      command: ['bench/run.ts'],
      // SIGTERM during the second run: the testbed goes away, the third run must not start.
      stopping: () => started >= 2,
      runOnce: async (_ctx, _sc, _w, repeat) => {
        started++;
        return fixtureRun(repeat, { total: 1000 });
      },
    });
    assert.is(started, 2);
    assert.equal(result.scenarios.map((s) => s.runs.length), [1, 1], 'what ran is in the result');
  });
  assert.ok(lines.some((l) => l.includes('stopping after 2 of 6 runs')), lines.join(''));
});

test.run();
