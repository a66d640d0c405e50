/**
 * tools/core/exec.ts, the one place heca runs commands: arguments reach the
 * command as they are (no shell word splitting or expansion), failures say
 * what and why, timeouts kill, dry-run prints instead of running (probes
 * still run), inDir scopes a working directory, spawnLogged supervises a
 * long-lived process with its output in a log file.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inDir, probe, retrying, run, setDryRun, spawnLogged } from '../../tools/core/exec.ts';
import { rejectionOf as failure } from '../helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'heca-exec-'));

test('arguments arrive as they are: spaces, quotes, $, globs and ; are not the shell\'s', async () => {
  const args = ['a b', "it's", '$HOME', '*', 'x; touch /tmp/heca-exec-injected', '"q"', ''];
  const r = await run('printf', ['%s|', ...args]);
  assert.is(r.stdout, `${args.join('|')}|`);
  assert.not.ok(existsSync('/tmp/heca-exec-injected'), 'nothing ran after the ;');
});

test('a failure names the command, its status and the tail of its output', async () => {
  const e = await failure(run('sh', ['-c', 'echo first; echo boom >&2; exit 3']));
  assert.match(e.message, "command failed: sh -c 'echo first; echo boom >&2; exit 3'");
  assert.is(e.why, 'it exited with status 3');
  assert.match(e.details ?? '', 'boom');
  const ok = await run('sh', ['-c', 'exit 4'], { allowFail: true });
  assert.is(ok.exitCode, 4);
});

test('a command that is not installed says so and how to fix it', async () => {
  const e = await failure(run('heca-no-such-command', ['x']));
  assert.is(e.why, 'heca-no-such-command is not installed or not on PATH');
  assert.match(e.fix ?? '', 'tools/setup-host.sh');
});

test('a command past its deadline is killed and reported', async () => {
  const t0 = Date.now();
  const e = await failure(run('sleep', ['30'], { timeoutMs: 300 }));
  assert.ok(Date.now() - t0 < 5000, `killed after ${Date.now() - t0} ms`);
  assert.is(e.why, 'it did not finish within 300 ms and was killed');
});

test('stdin, env and every line of output as it arrives', async () => {
  const lines: string[] = [];
  const r = await run('sh', ['-c', 'cat; echo "$HECA_X"; echo err >&2'], { input: 'in\n', env: { HECA_X: 'from env' }, onLine: (l, s) => lines.push(`${s}:${l}`) });
  assert.is(r.stdout, 'in\nfrom env\n');
  assert.is(r.stderr, 'err\n');
  assert.equal(lines.sort(), ['stderr:err', 'stdout:from env', 'stdout:in']);
});

test('dry-run prints what would run and runs nothing; probes still run', async () => {
  const file = join(tmp, 'dry');
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
  setDryRun(true);
  try {
    const r = await run('touch', [file], { cwd: tmp });
    assert.is(r.exitCode, 0);
    assert.is(await probe('echo', ['probed']), 'probed');
  } finally {
    setDryRun(false);
    process.stdout.write = write;
  }
  assert.not.ok(existsSync(file), 'nothing ran');
  assert.equal(out, [`(cd ${tmp} && touch ${file})\n`]);
});

test('inDir: commands in the block run there; outside it, here', async () => {
  const inside = await inDir(tmp, async () => {
    await new Promise((r) => setTimeout(r, 10));
    return probe('pwd', []);
  });
  assert.is(inside, tmp);
  assert.is(await probe('pwd', []), process.cwd());
});

test('retrying: a step that fails twice then works', async () => {
  let n = 0;
  const v = await retrying(3, 10, async () => {
    if (++n < 3) throw new Error(`try ${n}`);
    return n;
  });
  assert.is(v, 3);
  await failure(retrying(2, 10, () => run('false', [])));
});

test('spawnLogged: output in the log, exit status, stop() ends a process that ignores SIGTERM', async () => {
  const log = join(tmp, 'p.log');
  const p = spawnLogged('sh', ['-c', 'echo out; echo err >&2; exit 5'], { logFile: log });
  assert.ok(p.pid > 0);
  assert.equal(await p.exited, { exitCode: 5, signal: undefined });
  assert.is(readFileSync(log, 'utf8'), 'out\nerr\n');
  const stubborn = spawnLogged('sh', ['-c', 'trap "" TERM; sleep 30'], { logFile: log });
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  await stubborn.stop(300);
  assert.is((await stubborn.exited).signal, 'SIGKILL');
  assert.ok(Date.now() - t0 < 3000);
  const missing = spawnLogged('heca-no-such-command', [], { logFile: log });
  assert.is((await missing.exited).exitCode, -1);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
