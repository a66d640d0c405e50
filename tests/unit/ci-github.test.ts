/**
 * tools/ci/github.ts against a fake GitHub API: the nightly's baseline is the
 * newest earlier successful run of the branch that still has the artifact;
 * none is an answer (the first night), an API error is an error; and
 * tools/ci.ts previous-run writes the step outputs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubContext, outputLines, previousRunWithArtifact, type Fetch, type GithubContext } from '../../tools/ci/github.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { errorOf, rejectionOf } from '../helpers.ts';

const ctx: GithubContext = { api: 'https://api.example', repo: 'o/heca', token: 't0k', runId: 900, branch: 'main' };

const run = (id: number, created: string, conclusion = 'success') => ({ id, created_at: created, html_url: `https://x/runs/${id}`, conclusion });
const art = (id: number, runId: number, o: { expired?: boolean; name?: string } = {}) => ({ id, name: o.name ?? 'nightly', expired: o.expired ?? false, workflow_run: { id: runId } });

function fakeApi(runs: unknown[], artifacts: unknown[], seen: string[] = [], status = 200): Fetch {
  return async (url, init) => {
    seen.push(`${url} ${init.headers.Authorization}`);
    const body = url.includes('/actions/workflows/') ? { workflow_runs: runs } : { artifacts };
    return { ok: status === 200, status, statusText: status === 200 ? 'OK' : 'Forbidden', json: async () => body };
  };
}

test('the newest earlier successful run of the branch with an unexpired artifact', async () => {
  const seen: string[] = [];
  const runs = [run(900, '2026-11-27T02:17:00Z'), run(899, '2026-11-26T02:17:00Z'), run(898, '2026-11-25T02:17:00Z'), run(897, '2026-11-24T02:17:00Z')];
  // 900 is this run; 899's artifact expired; 898 has one.
  const arts = [art(50, 900), art(49, 899, { expired: true }), art(48, 898), art(47, 897), art(46, 898, { name: 'other' })];
  const found = await previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, fakeApi(runs, arts, seen));
  assert.equal(found, { runId: 898, createdAt: '2026-11-25T02:17:00Z', url: 'https://x/runs/898', artifactId: 48 });
  assert.equal(seen, [
    'https://api.example/repos/o/heca/actions/workflows/nightly.yml/runs?branch=main&status=success&per_page=50&exclude_pull_requests=true Bearer t0k',
    'https://api.example/repos/o/heca/actions/artifacts?name=nightly&per_page=100 Bearer t0k',
  ]);
});

test('no earlier run (the first night), or only failed ones: no answer, no error', async () => {
  assert.is(await previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, fakeApi([run(900, '2026-11-27T02:17:00Z')], [art(50, 900)])), undefined);
  assert.is(await previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, fakeApi([run(899, '2026-11-26T02:17:00Z', 'failure')], [art(49, 899)])), undefined);
  assert.is(await previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, fakeApi([], [])), undefined);
});

test('an API that refuses or cannot be reached is an error naming the request', async () => {
  const e = await rejectionOf(previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, fakeApi([], [], [], 403)));
  assert.match(e.message, "GitHub's API refused GET https://api.example/repos/o/heca/actions/workflows/nightly.yml/runs");
  assert.match(e.why, 'permissions: actions: read');
  const down: Fetch = async () => { throw new Error('getaddrinfo ENOTFOUND api.example'); };
  const e2 = await rejectionOf(previousRunWithArtifact(ctx, { workflow: 'nightly.yml', artifact: 'nightly' }, down));
  assert.match(e2.why, 'ENOTFOUND');
});

test('the job context comes from Actions\' variables; a missing one is named', () => {
  const env = { GITHUB_REPOSITORY: 'o/heca', GITHUB_TOKEN: 'x', GITHUB_RUN_ID: '12', GITHUB_REF_NAME: 'main' };
  assert.equal(githubContext(env), { api: 'https://api.github.com', repo: 'o/heca', token: 'x', runId: 12, branch: 'main' });
  const e = errorOf(() => githubContext({ ...env, GITHUB_TOKEN: '' }));
  assert.is(e.message, '$GITHUB_TOKEN is not set');
  assert.match(e.fix!, 'GITHUB_TOKEN: ${{ github.token }}');
  assert.is(outputLines({ 'run-id': '898', baseline: 'results/nightly-baseline' }), 'run-id=898\nbaseline=results/nightly-baseline\n');
  assert.throws(() => outputLines({ x: 'a\nb' }));
});

test('tools/ci.ts previous-run writes the step outputs, against a local fake API', async () => {
  const runs = [run(899, '2026-11-26T02:17:00Z')];
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url!.includes('/actions/workflows/') ? { workflow_runs: runs } : { artifacts: [art(49, 899)] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'heca-ci-'));
  const output = join(dir, 'out');
  writeFileSync(output, '');
  const env = { ...process.env, GITHUB_API_URL: `http://127.0.0.1:${port}`, GITHUB_REPOSITORY: 'o/heca', GITHUB_TOKEN: 'x', GITHUB_RUN_ID: '900', GITHUB_REF_NAME: 'main', GITHUB_OUTPUT: output };
  // Spawned asynchronously: the fake API is served from this process.
  const cli = (...args: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'tools', 'ci.ts'), ...args], { cwd: repoRoot, env });
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('close', (code) => resolve({ code, err }));
  });
  try {
    const r = await cli('previous-run', '--workflow', 'nightly.yml', '--artifact', 'nightly', '--into', 'results/nightly-baseline');
    assert.is(r.code, 0, r.err);
    assert.is(readFileSync(output, 'utf8'), 'run-id=899\nbaseline=results/nightly-baseline\n');
    runs.length = 0;
    const none = await cli('previous-run', '--workflow', 'nightly.yml', '--artifact', 'nightly', '--into', 'results/nightly-baseline');
    assert.is(none.code, 0, none.err);
    assert.match(none.err, 'nothing to compare with (the first run?)');
    assert.is(readFileSync(output, 'utf8'), 'run-id=899\nbaseline=results/nightly-baseline\nrun-id=\nbaseline=none\n');
  } finally {
    server.close();
  }
  const usage = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'tools', 'ci.ts'), 'previous-run', '--workflow', 'nightly.yml'], { cwd: repoRoot, encoding: 'utf8' });
  assert.is(usage.status, 2);
});

test.run();
