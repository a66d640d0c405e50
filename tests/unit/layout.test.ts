/**
 * The layout's import rules (.dependency-cruiser.cjs): the tree keeps them,
 * and a tree that breaks one fails, naming the rule. The broken trees are
 * made in a temporary directory, shaped like the repository.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../tools/core/exec.ts';
import { repoRoot } from '../../tools/core/paths.ts';

const DEPCRUISE = join(repoRoot, 'node_modules', '.bin', 'depcruise');
const CONFIG = join(repoRoot, '.dependency-cruiser.cjs');

async function cruise(cwd: string, dirs: string[]): Promise<{ code: number; out: string }> {
  const r = await run(DEPCRUISE, [...dirs, '--config', CONFIG, '--output-type', 'err'], { cwd, allowFail: true, timeoutMs: 120_000 });
  return { code: r.exitCode, out: `${r.stdout}${r.stderr}` };
}

/** A throwaway tree: path → source. */
function tree(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'heca-layout-'));
  writeFileSync(join(d, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(d, p)), { recursive: true });
    writeFileSync(join(d, p), text);
  }
  return d;
}

test('the repository keeps every rule', async () => {
  const r = await cruise(repoRoot, ['tools', 'bench', 'tests']);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, 'no dependency violations found');
});

test('a result module importing a testbed fails, naming results-are-pure', async () => {
  const d = tree({
    'bench/testbed/types.ts': 'export interface Bed { id: string }\n',
    'bench/results/stats.ts': "import type { Bed } from '../testbed/types.ts';\nexport const x = (b: Bed) => b.id;\n",
  });
  const r = await cruise(d, ['bench']);
  assert.is.not(r.code, 0, r.out);
  assert.match(r.out, 'results-are-pure: bench/results/stats.ts → bench/testbed/types.ts');
});

test('an import cycle fails, naming no-cycles', async () => {
  const d = tree({
    'bench/engine/a.ts': "import { b } from './b.ts';\nexport const a = () => b;\n",
    'bench/engine/b.ts': "import { a } from './a.ts';\nexport const b = () => a;\n",
  });
  const r = await cruise(d, ['bench']);
  assert.is.not(r.code, 0, r.out);
  assert.match(r.out, 'no-cycles');
});

test('a lower stage importing a higher one fails: testbed → engine, tools → bench, a CLI imported', async () => {
  const d = tree({
    'bench/engine/run.ts': 'export const go = 1;\n',
    'bench/testbed/host.ts': "import { go } from '../engine/run.ts';\nexport const h = go;\n",
    'bench/run.ts': 'export const cli = 1;\n',
    'bench/engine/uses-cli.ts': "import { cli } from '../run.ts';\nexport const u = cli;\n",
    'tools/core/log.ts': "import { h } from '../../bench/testbed/host.ts';\nexport const l = h;\n",
  });
  const r = await cruise(d, ['bench', 'tools']);
  assert.is.not(r.code, 0, r.out);
  assert.match(r.out, 'testbed-below-engine: bench/testbed/host.ts → bench/engine/run.ts');
  assert.match(r.out, 'no-cli-imports: bench/engine/uses-cli.ts → bench/run.ts');
  assert.match(r.out, 'tools-not-bench: tools/core/log.ts → bench/testbed/host.ts');
});

test('make nightly runs the benchmark as a command: bench/nightly importing the engine fails, naming nightly-runs-commands', async () => {
  const d = tree({
    'bench/engine/bench.ts': 'export const runBench = 1;\n',
    'bench/nightly/nightly.ts': "import { runBench } from '../engine/bench.ts';\nexport const n = runBench;\n",
    'bench/results/io.ts': "import { n } from '../nightly/nightly.ts';\nexport const r = n;\n",
  });
  const r = await cruise(d, ['bench']);
  assert.is.not(r.code, 0, r.out);
  assert.match(r.out, 'nightly-runs-commands: bench/nightly/nightly.ts → bench/engine/bench.ts');
  assert.match(r.out, 'results-are-pure: bench/results/io.ts → bench/nightly/nightly.ts');
});

test('the L1 agent may use Node built-ins only', async () => {
  const d = tree({
    'tools/core/log.ts': 'export const info = (s: string) => s;\n',
    'bench/testbed/nested/agent.ts': "import { hostname } from 'node:os';\nimport { info } from '../../../tools/core/log.ts';\ninfo(hostname());\n",
  });
  const r = await cruise(d, ['bench', 'tools']);
  assert.is.not(r.code, 0, r.out);
  assert.match(r.out, 'l1-agent-node-only: bench/testbed/nested/agent.ts → tools/core/log.ts');
  assert.not.match(r.out, 'node:os', 'a built-in is fine');
});

test.run();
