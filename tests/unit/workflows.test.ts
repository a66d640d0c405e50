/**
 * The GitHub workflows (.github/workflows/*.yml) against GitHub's workflow
 * schema — @action-validator/core, which carries SchemaStore's schema inside
 * it and needs no network — and against the project's rules for them: the
 * nightly runs on schedule and by hand on a nested-virt runner, with a
 * timeout, one at a time, least permissions, only the checkout and artifact
 * actions, only the project's own commands, results uploaded even on failure.
 * Broken workflows (misspelled keys, runs-on missing, an unknown event, wrong
 * types and values) must fail the schema check.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateWorkflow } from '@action-validator/core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { repoRoot } from '../../tools/core/paths.ts';

const dir = join(repoRoot, '.github', 'workflows');
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
const nightlyText = readFileSync(join(dir, 'nightly.yml'), 'utf8');

/** Schema errors as "path: detail" lines, nested one-of branches included. */
function schemaErrors(text: string): string[] {
  type E = { path?: string; title: string; detail?: string; states?: { errors: E[] }[] };
  const flat = (es: E[]): string[] => es.flatMap((e) => [`${e.path ?? ''}: ${e.detail ?? e.title}`, ...(e.states ?? []).flatMap((s) => flat(s.errors))]);
  return flat(validateWorkflow(text).errors as E[]);
}

test('every workflow matches GitHub\'s workflow schema', () => {
  assert.ok(files.includes('nightly.yml'), files.join(', '));
  for (const f of files) assert.equal(schemaErrors(readFileSync(join(dir, f), 'utf8')), [], f);
});

test('broken workflows fail the schema check: a misspelled key, runs-on missing, an unknown event, a wrong type', () => {
  const broken = (from: string | RegExp, to: string) => {
    const t = nightlyText.replace(from, to);
    assert.is.not(t, nightlyText, `the test's edit ${String(from)} applies`);
    return schemaErrors(t);
  };
  assert.ok(broken('    timeout-minutes: 360', '    timeout-minuts: 360').some((e) => e.includes("Additional property 'timeout-minuts' is not allowed")));
  assert.ok(broken('    runs-on: [self-hosted, nested-virt]\n', '').some((e) => e.startsWith('/jobs/nightly/runs-on: ')));
  assert.ok(broken('  schedule:', '  nightly:').length > 0, 'an event GitHub does not have');
  assert.ok(broken('    timeout-minutes: 360', '    timeout-minutes: soon').length > 0);
  assert.ok(broken('        if: always()', '        iff: always()').some((e) => e.includes("Additional property 'iff' is not allowed")), 'a misspelled step key');
  assert.ok(broken('  contents: read', '  contents: maybe').some((e) => e.startsWith('/permissions')), 'a permission GitHub does not have');
  // The schema lets workflow_dispatch take any key (`input:` passes it): the nightly's own test below checks its input.
});

interface Step { uses?: string; run?: string; if?: string; id?: string; with?: Record<string, unknown>; env?: Record<string, string> }
interface Job { 'runs-on': string | string[]; 'timeout-minutes'?: number; steps: Step[]; env?: Record<string, string> }
interface Workflow { on: Record<string, unknown>; permissions: Record<string, string>; concurrency?: { group: string; 'cancel-in-progress'?: boolean }; jobs: Record<string, Job> }

const wf = parse(nightlyText) as Workflow;
const job = wf.jobs.nightly!;

test('nightly: on a schedule and by hand, on a nested-virt runner, with a timeout, one at a time, least permissions', () => {
  assert.ok(Array.isArray(wf.on.schedule) && (wf.on.schedule as { cron: string }[])[0]!.cron.split(' ').length === 5);
  const dispatch = wf.on.workflow_dispatch as { inputs?: Record<string, { options?: string[] }> };
  assert.equal(dispatch.inputs?.baseline?.options, ['previous', 'none'], 'by hand, with baseline none to accept a regression');
  assert.equal(job['runs-on'], ['self-hosted', 'nested-virt']);
  assert.ok(typeof job['timeout-minutes'] === 'number' && job['timeout-minutes'] > 0);
  assert.ok(wf.concurrency?.group.startsWith('nightly-'));
  assert.is(wf.concurrency?.['cancel-in-progress'], false, 'a running night is never cancelled half-way');
  assert.equal(wf.permissions, { contents: 'read', actions: 'read' });
});

test('nightly: only the checkout and artifact actions, and only the project\'s own commands', () => {
  const allowed = /^actions\/(checkout|upload-artifact|download-artifact)@v\d+$/;
  const ours = /^(make (test|nightly)|npx tsx (tools|bench)\/[\w/-]+\.ts( [\w./=-]+)*)$/;
  for (const s of job.steps) {
    if (s.uses) assert.match(s.uses, allowed);
    else assert.match(s.run!.trim(), ours);
  }
  const runs = job.steps.filter((s) => s.run).map((s) => s.run!.trim());
  assert.is(runs.indexOf('make test'), 0, 'make test first');
  assert.ok(runs.indexOf('make nightly') > 0, 'then make nightly');
});

test('nightly: the previous night\'s results fetched by run id, tolerating none; everything uploaded even on failure', () => {
  const prev = job.steps.find((s) => s.id === 'previous')!;
  assert.match(prev.run!, 'tools/ci.ts previous-run --workflow nightly.yml --artifact nightly --into results/nightly-baseline');
  assert.is(prev.env?.GITHUB_TOKEN, '${{ github.token }}');
  const fetchStep = job.steps.find((s) => s.uses?.startsWith('actions/download-artifact'))!;
  assert.is(fetchStep.if, "steps.previous.outputs.run-id != ''", 'skipped when there is no previous night');
  assert.equal({ name: fetchStep.with?.name, path: fetchStep.with?.path, run: fetchStep.with?.['run-id'] }, { name: 'nightly', path: 'results/nightly-baseline', run: '${{ steps.previous.outputs.run-id }}' });
  const nightly = job.steps.find((s) => s.run === 'make nightly')!;
  assert.is(nightly.env?.NIGHTLY_BASELINE, "${{ steps.previous.outputs.baseline || 'none' }}");
  const up = job.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))!;
  assert.is(up.if, 'always()');
  assert.is(up.with?.name, 'nightly', 'the name previous-run looks for');
  assert.is(up.with?.path, '${{ env.NIGHTLY_OUT }}');
  assert.match(job.env!.NIGHTLY_OUT!, /^results\/nightly\//);
  assert.ok(typeof up.with?.['retention-days'] === 'number');
});

test.run();
