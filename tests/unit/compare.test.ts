/**
 * bench/compare.ts as a user runs it: results side by side, runs paired by
 * repeat only within one invocation, the environment check (series hash and
 * guest kernel included), and bad input refused with the field that is wrong,
 * writing nothing.
 */
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
  return writeRaw(dir, fixtureResult([s], env));
}

function writeRaw(dir: string, data: unknown): string {
  mkdirSync(join(tmp, dir), { recursive: true });
  writeFileSync(join(tmp, dir, 'result.json'), JSON.stringify(data));
  return join(tmp, dir);
}

// Paired by repeat, b/a is 4, 0.5, 0.5 (median 0.5); by medians 2000/2000 = 1.
const A = [1000, 2000, 4000];
const B = [4000, 1000, 2000];

test('two results of one environment: side by side, ratios of medians (different invocations are never paired), charts', () => {
  const a = writeResult('a', A);
  const b = writeResult('b', B);
  const out = join(tmp, 'out1');
  const r = compare(a, join(b, 'result.json'), '--out', out);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /postcopy \(a\)\s+3\/3\s+2\.0\s+15\.0\s/, 'median total 2.0 s, downtime STOP→RESUME 15 ms');
  assert.match(r.out, /postcopy \(b\)\s+3\/3\s+2\.0/);
  assert.match(r.out, /fault mean\(us\)\n.*\s900\n/, 'the mean post-copy fault latency, from ns');
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '| total time | 1.00× |', 'median over median, not the paired 0.50×');
  assert.match(md, '| repeats paired (both completed) | 0 |');
  assert.match(md, 'paired by repeat only within one invocation');
  assert.not.match(md, 'environments differ');
  assert.ok(existsSync(join(out, 'charts', 'migration-time.png')));
});

test('two scenarios of one invocation: paired by repeat', () => {
  const a = fixtureScenario('postcopy', 'postcopy', A.map((t, i) => fixtureRun(i + 1, { total: t })));
  const b = fixtureScenario('hybrid10', 'hybrid', B.map((t, i) => fixtureRun(i + 1, { total: t })));
  for (const s of [a, b]) s.summary = summarize(s.runs, MEM_MIB);
  const out = join(tmp, 'out-one');
  const r = compare(writeRaw('one', fixtureResult([a, b])), '--out', out);
  assert.is(r.code, 0, r.err);
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '| total time | 0.50× [0.50×–4.00×] |');
  assert.match(md, '| repeats paired (both completed) | 3 |');
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
  assert.not.match(md, '- guest_kernel', 'only what differs');
  assert.match(md, '- link: lan1g vs lan10g');
  assert.match(md, '## Ratios to postcopy (d)');
  assert.match(md, '| total time | 0.67× |', 'median 2000 / median 3000');
});

test('the same environment means the same QEMU patch series and guest kernel too', () => {
  const series = (sha: string) => ({ origin: 'heca-build' as const, version: '1:10.0.13+ds-0+deb13u1', series_sha256: sha, patches: ['0001-x.patch'] });
  const a = writeResult('s1', A, fixtureEnv({ qemu_build: series('a'.repeat(64)) }));
  const b = writeResult('s2', B, fixtureEnv({ qemu_build: series('b'.repeat(64)), guest_kernel: '6.1.0-57-cloud-amd64' }));
  const c = writeResult('s3', B, fixtureEnv({ qemu_build: { origin: 'HECA_QEMU', version: 'QEMU emulator version 10.1.0', path: '/usr/bin/qemu-system-x86_64', sha256: 'c'.repeat(64) } }));
  const out = join(tmp, 'out-series');
  const r = compare(a, b, c, '--out', out);
  assert.is(r.code, 0, r.err);
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, '## ⚠ The environments differ');
  assert.match(md, `- qemu series: ${'a'.repeat(12)} (1:10.0.13+ds-0+deb13u1) vs ${'b'.repeat(12)} (1:10.0.13+ds-0+deb13u1) vs none: HECA_QEMU binary ${'c'.repeat(12)}`);
  assert.match(md, '- guest_kernel: 6.1.0 vs 6.1.0-57-cloud-amd64 vs 6.1.0');
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
  assert.is(schema.code, 1);
  assert.match(schema.err, 'is not a heca result this version reads (schema 1, 2 or 3)');
  assert.match(schema.err, '"schema" is 99');
  // A field of the wrong value, and one missing: named by their path.
  const s = fixtureScenario('postcopy', 'postcopy', [fixtureRun(1), fixtureRun(2, { status: 'bogus' as 'failed' })]);
  const wrong = compare(writeRaw('wrong', fixtureResult([s])), '--out', out);
  assert.is(wrong.code, 1);
  assert.match(wrong.err, 'scenarios[0].runs[1].status: must be one of "completed", "not-converged", "failed"; it is "bogus"');
  const env: Partial<ReturnType<typeof fixtureEnv>> = fixtureEnv();
  delete env.guest_kernel;
  const missingField = compare(writeRaw('nokernel', { ...fixtureResult([]), environment: env }), '--out', out);
  assert.is(missingField.code, 1);
  assert.match(missingField.err, 'environment.guest_kernel: expected required property; it is missing');
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
