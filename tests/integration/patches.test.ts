/**
 * The patch workflow on the real pinned QEMU source, in a build directory of
 * its own: empty series, export of a developer's commit, checkpatch through
 * the tree's own script, and a patch that no longer applies being reported by
 * name and failing file, leaving the tree clean.
 */
import { appendFileSync, existsSync, rmSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../tools/core/exec.ts';
import { repoRoot, downloadDir } from '../../tools/core/paths.ts';

const tmp = mkdtempSync(join(tmpdir(), 'heca-patches-'));
const patches = join(tmp, 'patches');
const tree = join(tmp, 'build', 'src', 'qemu');
mkdirSync(patches);
writeFileSync(join(patches, 'series'), '# empty\n');
const env = { HECA_BUILD_DIR: join(tmp, 'build'), HECA_DL_DIR: downloadDir(), HECA_QEMU_PATCHES: patches };

const tool = (script: string, args: string[]) =>
  run(process.execPath, ['--import', 'tsx', join(repoRoot, 'tools', script), ...args], { cwd: repoRoot, env, allowFail: true, timeoutMs: 20 * 60_000 });
const git = (args: string[]) => run('git', ['-c', 'user.name=A Developer', '-c', 'user.email=dev@example.org', '-c', 'gc.auto=0', ...args], { cwd: tree, timeoutMs: 10 * 60_000 });

test('an empty series gives a git tree with the base tagged', async () => {
  const r = await tool('build.ts', ['--tree-only']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(existsSync(join(tree, 'migration', 'migration.c')));
  const tag = await git(['rev-parse', 'heca-base']);
  const head = await git(['rev-parse', 'HEAD']);
  assert.is(tag.stdout.trim(), head.stdout.trim());
  const check = await tool('patches.ts', ['check', '--qemu', '--tree', tree]);
  assert.is(check.exitCode, 0, check.stderr);
  assert.match(check.stderr, 'empty');
});

test('export turns a commit into a numbered series with a cover letter; check passes it', async () => {
  appendFileSync(join(tree, 'migration', 'migration.c'), '\n/* heca: a test change. */\n');
  await git(['commit', '-q', '-a', '-m', 'migration: note a test change', '-m', 'A small change so that the export and check tooling has a real\ncommit to work on.', '-m', 'Signed-off-by: A Developer <dev@example.org>']);
  const noDesc = await tool('patches.ts', ['export', '--qemu', '--tree', tree]);
  assert.is(noDesc.exitCode, 1, 'a series without a cover-letter description is refused');
  assert.match(noDesc.stderr, 'edit-description');
  await git(['config', 'branch.heca.description', 'heca test series\n\nWhat it does, and how it was tested.']);
  const r = await tool('patches.ts', ['export', '--qemu', '--tree', tree]);
  assert.is(r.exitCode, 0, r.stderr);
  const files = readdirSync(patches).sort();
  assert.ok(files.includes('0000-cover-letter.patch'), files.join(' '));
  assert.ok(files.includes('0001-migration-note-a-test-change.patch'), files.join(' '));
  assert.match(readFileSync(join(patches, 'series'), 'utf8'), /^0001-migration-note-a-test-change\.patch$/m);
  assert.match(readFileSync(join(patches, 'BASE'), 'utf8'), /^qemu 1:10\.0\.\d+/);
  assert.match(readFileSync(join(patches, '0000-cover-letter.patch'), 'utf8'), 'heca test series');
  const c = await tool('patches.ts', ['check', '--qemu', '--tree', tree]);
  assert.is(c.exitCode, 0, `${c.stdout}${c.stderr}`);
  assert.match(c.stdout, 'ok   0001-migration-note-a-test-change.patch');
});

test('the series is applied with git am on a fresh tree', async () => {
  await git(['reset', '-q', '--hard', 'heca-base']);
  const r = await tool('build.ts', ['--tree-only']);
  assert.is(r.exitCode, 0, r.stderr);
  const log = await git(['log', '--format=%s', '-2']);
  assert.match(log.stdout, /^migration: note a test change\n/);
});

test('check fails a patch without Signed-off-by or subsystem prefix', async () => {
  appendFileSync(join(tree, 'migration', 'ram.c'), '\n/* another */\n');
  await git(['commit', '-q', '-a', '-m', 'Another change', '-m', 'This one has neither a subsystem prefix nor a sign-off line.']);
  assert.is((await tool('patches.ts', ['export', '--qemu', '--tree', tree])).exitCode, 0);
  const c = await tool('patches.ts', ['check', '--qemu', '--tree', tree]);
  assert.is(c.exitCode, 1);
  assert.match(c.stdout, 'FAIL 0002-Another-change.patch');
  assert.match(c.stdout, 'no Signed-off-by');
  assert.match(c.stdout, 'subsystem: summary');
});

test('a patch that no longer applies is reported by name and failing file; the tree is left clean', async () => {
  const good = readFileSync(join(patches, '0001-migration-note-a-test-change.patch'), 'utf8');
  // Same patch, but its context no longer matches the file.
  const hunk = good.indexOf('\n@@ ');
  assert.ok(hunk > 0, 'the exported patch has a hunk');
  const broken = good.slice(0, hunk) + good.slice(hunk).replace(/^ .*$/m, ' this line is not in migration.c');
  assert.is.not(broken, good);
  writeFileSync(join(patches, '0003-broken.patch'), broken);
  writeFileSync(join(patches, 'series'), '0003-broken.patch\n');
  const r = await tool('build.ts', ['--tree-only']);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, 'patch 0003-broken.patch does not apply');
  assert.match(r.stderr, 'migration/migration.c');
  assert.match(r.stderr, 'fix:');
  assert.not.ok(existsSync(join(tree, '.git', 'rebase-apply')), 'git am was aborted');
  const status = await git(['status', '--porcelain', '--untracked-files=no']);
  assert.is(status.stdout.trim(), '');
  const branches = await git(['branch', '--list', 'heca-saved-*']);
  assert.ok(branches.stdout.trim().length > 0, 'the developer commits were saved on a branch');
});

test.after(() => {
  rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 });
});

test.run();
