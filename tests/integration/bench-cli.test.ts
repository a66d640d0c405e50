/**
 * bench/run.ts as a user runs it: bad input is refused before anything
 * starts, --dry-run prints the QEMU command lines, a one-run invocation
 * writes result.json + report + charts, and Ctrl-C mid-run cleans up
 * (no QEMU, namespace or veth left).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadResult } from '../../bench/results/io.ts';
import { RESULT_SCHEMA_VERSION } from '../../bench/results/schema.ts';
import { qemuBinary, repoRoot } from '../../tools/core/paths.ts';
import { leftovers } from '../helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'heca-bench-cli-'));
const RUN = join(repoRoot, 'bench', 'run.ts');

function bench(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUN, ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('bad input is refused up front with what exists', () => {
  const out = join(tmp, 'never');
  const sc = bench('--scenario', 'precopy,warp', '--out', out);
  assert.is(sc.code, 1);
  assert.match(sc.err, 'unknown scenario "warp"');
  assert.match(sc.err, 'hybrid60');
  const fl = bench('--sceanrio', 'precopy');
  assert.is(fl.code, 2);
  assert.match(fl.err, 'usage');
  const mem = bench('--mem', '900000', '--out', out);
  assert.is(mem.code, 1);
  assert.match(mem.err, /memory|MiB/);
  const wl = bench('--workload', 'nap', '--out', out);
  assert.match(wl.err, 'write-heavy');
  const link = bench('--link', 'dialup', '--out', out);
  assert.match(link.err, 'lan1g');
  const tb = bench('--testbed', 'cloud', '--out', out);
  assert.is(tb.code, 2);
  assert.match(tb.err, 'local and nested');
  const acc = bench('--testbed', 'nested', '--accel', 'tcg', '--out', out);
  assert.is(acc.code, 2);
  assert.match(acc.err, 'nested KVM');
  assert.ok(!existsSync(out), 'nothing written');
});

test('--dry-run prints both QEMU command lines and starts nothing', () => {
  const r = bench('--dry-run', '--scenario', 'postcopy', '--mem', '256', '--out', join(tmp, 'dry'));
  assert.is(r.code, 0, r.err);
  assert.match(r.out, '# destination');
  assert.match(r.out, '-incoming defer');
  assert.match(r.out, /memory-backend-ram,id=mem0,size=256M/);
  assert.match(r.out, 'postcopy-immediate');
});

test('one run writes result.json, the report and charts', () => {
  const out = join(tmp, 'one');
  const r = bench('--scenario', 'postcopy', '--mem', '256', '--repeat', '1', '--warmup', '1', '--out', out);
  assert.is(r.code, 0, r.err);
  const { result: res } = loadResult(out); // validated against the schema
  assert.is(res.schema, RESULT_SCHEMA_VERSION);
  assert.is(res.scenario, 'postcopy-immediate');
  // --accel auto: without /dev/kvm, TCG; with it, a probe guest booted under KVM decides, and the reason says which way.
  const env = res.environment;
  if (!existsSync('/dev/kvm')) {
    assert.equal([env.accel, env.accel_reason], ['tcg', 'no /dev/kvm on this host']);
  } else {
    assert.ok(existsSync(join(out, 'logs', 'kvm-probe', 'qemu.log')), 'the KVM probe booted');
    const verdict = /^a probe guest (booted|did not boot) under KVM/.exec(env.accel_reason)?.[1];
    assert.ok(verdict, env.accel_reason);
    assert.is(env.accel, verdict === 'booted' ? 'kvm' : 'tcg', env.accel_reason);
  }
  assert.match(env.qemu_version, '10.0.');
  assert.is(env.qemu_build?.origin, 'heca-build', 'no HECA_QEMU here: heca\'s build');
  assert.is(env.qemu_build?.path, qemuBinary());
  assert.match(r.err, /run 1 of 1: postcopy \(postcopy-immediate\), repeat 1\/1/);
  assert.match(r.err, /postcopy r1: (postcopy-)?active, [\d.]+ MiB sent, [\d.]+ MiB left, \d+ dirty pages\/s, \d+ post-copy requests/, 'a progress line during the run');
  assert.match(r.err, /run 1 of 1 postcopy r1: completed, total [\d.]+ s, downtime [\d.]+ ms \(STOP→RESUME; QEMU says \d+ ms\)/, 'the console line shows the host-measured downtime');
  assert.ok((res.runs[0]!.progress?.length ?? 0) > 0, 'the query-migrate history is kept');
  assert.equal(res.runs[0]!.destinations?.map((d) => [d.name, d.downtime_host_ms, d.integrity?.ok]), [['dst', res.runs[0]!.downtime_host_ms, true]]);
  assert.is(res.runs.length, 1);
  assert.is(res.runs[0]!.status, 'completed');
  assert.ok(res.runs[0]!.integrity.ok);
  assert.is(res.summary.completed?.median, 1);
  assert.ok(existsSync(join(out, 'report.md')));
  assert.ok(existsSync(join(out, 'charts', 'timeline-postcopy.png')));
  assert.ok(existsSync(join(out, res.runs[0]!.logs_dir, 'src', 'qemu.log')));
});

test('Ctrl-C during a run cleans up and exits 130', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', RUN, '--scenario', 'precopy', '--mem', '256', '--repeat', '1', '--out', join(tmp, 'int')], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const booted = new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('booting the guest')) resolve();
    });
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await Promise.race([booted, exited]);
  await new Promise((r) => setTimeout(r, 4000)); // QEMUs up, guest running
  const running = await leftovers([child.pid!]);
  assert.ok(running.some((l) => l.startsWith('netns heca-')) && running.some((l) => l.startsWith('QEMU ')), `the run had started its QEMUs and namespaces: ${running.join('; ')}`);
  child.kill('SIGINT');
  const code = await exited;
  assert.is(code, 130, err);
  assert.equal(await leftovers(), [], 'nothing left behind');
});

test.run();
