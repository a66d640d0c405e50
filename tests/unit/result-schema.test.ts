/**
 * The result format (bench/results/schema.ts, TypeBox): the published JSON
 * Schema is current, a result is validated and written atomically, a
 * version 1 file written before the format changed still loads.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fieldName, loadResult, resultJsonSchema, resultProblems, writeResultFile } from '../../bench/results/io.ts';
import { RESULT_SCHEMA_VERSION, type BenchResult } from '../../bench/results/schema.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { fixtureResult, fixtureRun, fixtureScenario } from '../fixtures/results.ts';

test('bench/results/result.schema.json is the schema the code validates with', () => {
  const published = readFileSync(join(repoRoot, 'bench', 'results', 'result.schema.json'), 'utf8');
  assert.ok(published === resultJsonSchema(), 'stale: regenerate it with  npx tsx bench/compare.ts --schema > bench/results/result.schema.json');
  const schema = JSON.parse(published) as { required: string[]; properties: Record<string, { description?: string }> };
  assert.equal(schema.required, ['schema', 'scenario', 'environment', 'scenarios', 'runs', 'summary', 'command']);
  assert.match(schema.properties.schema?.description ?? '', `this code writes ${RESULT_SCHEMA_VERSION}`);
});

test('field names of schema errors read like the JSON they point into', () => {
  assert.is(fieldName('/scenarios/0/runs/12/status'), 'scenarios[0].runs[12].status');
  assert.is(fieldName('/environment/nested/hosts/1/name'), 'environment.nested.hosts[1].name');
  assert.is(fieldName(''), '(the whole document)');
});

test('a fixture result is valid; each kind of damage is named by its field', () => {
  const good = fixtureResult([fixtureScenario('postcopy', 'postcopy', [fixtureRun(1)])]);
  assert.equal(resultProblems(good), []);
  const damaged = JSON.parse(JSON.stringify(good)) as Record<string, any>;
  damaged.scenarios[0].runs[0].bytes.wire = 'lots';
  damaged.scenarios[0].runs[0].phases[0].name = 'teleport';
  delete damaged.environment.link;
  const problems = resultProblems(damaged);
  assert.ok(problems.includes('environment.link: must be one of "lan1g", "lan10g", "wan", "unlimited", "jumbo"; it is missing'), problems.join('\n'));
  assert.ok(problems.includes('scenarios[0].runs[0].bytes.wire: expected number; it is "lots"'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('scenarios[0].runs[0].phases[0].name: must be one of "migrate",')), problems.join('\n'));
});

test('writeResultFile replaces result.json atomically and refuses an invalid result, keeping the old file', () => {
  const out = mkdtempSync(join(tmpdir(), 'heca-result-'));
  const r1 = fixtureResult([fixtureScenario('postcopy', 'postcopy', [fixtureRun(1)])]);
  writeResultFile(out, r1);
  const r2: BenchResult = { ...r1, command: ['second'] };
  writeResultFile(out, r2);
  assert.equal(readdirSync(out), ['result.json'], 'no temporary file left');
  assert.equal(JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')).command, ['second']);
  const bad = { ...r2, scenario: 42 } as unknown as BenchResult;
  try {
    writeResultFile(out, bad);
    assert.unreachable('an invalid result was written');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as HecaError).message, 'scenario: expected string; it is 42');
  }
  assert.equal(JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')).command, ['second'], 'the previous result stays');
  assert.ok(existsSync(join(out, 'result.json.invalid')), 'the invalid data is kept to look at');
});

test('a version 1 result (written before #11, by a real run) loads', () => {
  const { result } = loadResult(join(repoRoot, 'tests', 'fixtures', 'result-v1.json'));
  assert.is(result.schema, 1);
  assert.equal(result.scenarios.map((s) => s.scenario.name), ['precopy', 'full', 'postcopy', 'mgmt-hybrid10']);
  assert.is(result.scenarios[0]!.runs[0]!.status, 'not-converged');
  assert.is(result.scenarios[0]!.runs[0]!.progress, undefined, 'no history in version 1');
});

test('version 3: a version 2 file still loads; transports, a recovery and postcopy-rdma validate; a bad transport is named', () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-result-'));
  const v2 = { ...fixtureResult([fixtureScenario('postcopy', 'postcopy', [fixtureRun(1)], { transport: 'tcp', faults: [] })]), schema: 2 };
  writeFileSync(join(d, 'result.json'), JSON.stringify(v2));
  assert.is(loadResult(d).result.schema, 2);
  const run = {
    ...fixtureRun(1),
    recovery: { fault: 'cut@postcopy+2s:3s', outcome: 'recovered' as const, cut_at_ms: 2500, restored_at_ms: 5500, paused_at_ms: { source: 2600, destination: 2610 }, time_to_pause_ms: 110, time_paused_ms: 3200, resumed_at_ms: 5810 },
    postcopy_rdma: { source: { anything: [1, 2] }, destination: { reads: 7 } },
  };
  const v3 = fixtureResult([fixtureScenario('full-rdma-cut', 'postcopy', [run], { switchover: 'qemu', transport: 'rdma', faults: [{ kind: 'cut', after: 'postcopy', at_s: 2, duration_s: 3 }] })]);
  assert.is(v3.schema, 3);
  assert.equal(resultProblems(v3), []);
  assert.is(v3.scenarios[0]!.scenario.id, 'postcopy-qemu-immediate-rdma-fault-cut@postcopy+2s:3s');
  const bad = JSON.parse(JSON.stringify(v3)) as Record<string, any>;
  bad.scenarios[0].scenario.transport = 'infiniband';
  bad.scenarios[0].runs[0].recovery.outcome = 'maybe';
  const problems = resultProblems(bad);
  assert.ok(problems.includes('scenarios[0].scenario.transport: must be one of "tcp", "preempt", "rdma", "rdma-kernel"; it is "infiniband"'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('scenarios[0].runs[0].recovery.outcome: must be one of "recovered", "failed", "not-injected"')), problems.join('\n'));
});

test('loadResult names the file and the field', () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-result-'));
  const r = fixtureResult([fixtureScenario('postcopy', 'postcopy', [fixtureRun(1)])]) as unknown as Record<string, unknown>;
  writeFileSync(join(d, 'result.json'), JSON.stringify({ ...r, runs: 'none' }));
  try {
    loadResult(d);
    assert.unreachable('loaded');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as HecaError).message, `${join(d, 'result.json')} is not a valid heca result (schema ${RESULT_SCHEMA_VERSION}): runs: expected array; it is "none"`);
  }
});

test.run();
