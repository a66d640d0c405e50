/** bench/compare.ts as a user runs it: two results side by side; bad input fails clearly and writes nothing. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { summarize } from '../../bench/results/stats.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { fixtureEnv, fixtureResult, fixtureRun, fixtureScenario, MEM_MIB } from '../fixtures/results.ts';

const tmp = mkdtempSync(join(tmpdir(), 'heca-compare-'));

function compare(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'compare.ts'), ...args], { cwd: repoRoot, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function writeResult(dir: string, totals: number[], env = fixtureEnv()): string {
  const s = fixtureScenario('postcopy', 'postcopy', totals.map((t, i) => fixtureRun(i + 1, { total: t })));
  s.summary = summarize(s.runs, MEM_MIB);
  mkdirSync(join(tmp, dir), { recursive: true });
  writeFileSync(join(tmp, dir, 'result.json'), JSON.stringify(fixtureResult([s], env)));
  return join(tmp, dir);
}

test('two results of one environment: side by side, paired ratios, charts', () => {
  const a = writeResult('a', [1000, 2000, 3000]);
  const b = writeResult('b', [2000, 4000, 6000]);
  const out = join(tmp, 'out1');
  const r = compare(a, join(b, 'result.json'), '--out', out);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /postcopy \(a\)\s+3\/3\s+2\.0/);
  assert.match(r.out, /postcopy \(b\)\s+3\/3\s+4\.0/);
  assert.match(r.out, /fault mean\(us\)\n.*\s900\n/, 'the mean post-copy fault latency, from ns');
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '| total time | 2.00× |');
  assert.match(md, 'paired by repeat number');
  assert.not.match(md, 'environments differ');
  assert.ok(existsSync(join(out, 'charts', 'migration-time.png')));
});

test('different environments: a warning, and ratios of medians', () => {
  const a = writeResult('c', [1000, 2000, 3000]);
  const b = writeResult('d', [3000, 1000, 8000], fixtureEnv({ accel: 'kvm', link: 'lan10g' }));
  const out = join(tmp, 'out2');
  const r = compare(a, b, '--out', out, '--baseline', '2');
  assert.is(r.code, 0, r.err);
  assert.match(r.err, 'different environments');
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '## ⚠ The environments differ');
  assert.match(md, '- accel: tcg vs kvm');
  assert.match(md, '- link: lan1g vs lan10g');
  assert.match(md, '## Ratios to postcopy (d)');
  assert.match(md, '| total time | 0.67× |', 'median 2000 / median 3000');
});

test('bad input: missing file, bad JSON, wrong schema, bad baseline, unknown flag', () => {
  const out = join(tmp, 'never');
  const missing = compare(join(tmp, 'nope'), '--out', out);
  assert.is(missing.code, 1);
  assert.match(missing.err, 'no result at');
  mkdirSync(join(tmp, 'bad'), { recursive: true });
  writeFileSync(join(tmp, 'bad', 'result.json'), '{"schema": 1, "scen');
  const bad = compare(join(tmp, 'bad'), '--out', out);
  assert.is(bad.code, 1);
  assert.match(bad.err, 'is not valid JSON');
  writeFileSync(join(tmp, 'bad', 'result.json'), '{"schema": 99}');
  const schema = compare(join(tmp, 'bad'), '--out', out);
  assert.match(schema.err, 'is not a heca result (schema 1)');
  const base = compare(writeResult('e', [1000]), '--baseline', 'nosuch', '--out', out);
  assert.is(base.code, 2);
  assert.match(base.err, 'the columns are: 1=postcopy');
  const flag = compare('--frobnicate');
  assert.is(flag.code, 2);
  assert.match(flag.err, 'usage');
  const none = compare();
  assert.is(none.code, 2);
  assert.ok(!existsSync(out), 'nothing written on bad input');
});

test.run();
