import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareDebVersions, upstreamVersion } from '../../tools/source/debver.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { parseAmFailure } from '../../tools/patch/apply.ts';
import { readBuildInfo, recordBuild } from '../../tools/build/buildinfo.ts';
import { parseConfig, unmetOptions } from '../../tools/build/kconfig.ts';
import { allConfigText } from '../../tools/build/kernel.ts';
import { KSELFTESTS } from '../../tools/build/kselftests.ts';
import { kernelPatchesDir } from '../../tools/core/paths.ts';
import { parseNinjaProgress, QEMU_TARGETS, qemuConfigureFlags, qemuTargets } from '../../tools/build/qemu.ts';
import { formProblems, parsePatchFile } from '../../tools/patch/check.ts';
import { parseSeriesFile, readSeries } from '../../tools/patch/series.ts';
import { newestInSeries, parseShowsrcVersions } from '../../tools/source/sources.ts';

test('Debian versions compare like dpkg', () => {
  assert.ok(compareDebVersions('1:10.0.13+ds-0+deb13u1', '1:10.0.2+ds-1') > 0);
  assert.ok(compareDebVersions('1:10.0.13+ds-0+deb13u1', '1:10.0.13+ds-0+deb13u2') < 0);
  assert.ok(compareDebVersions('1:7.2+dfsg-7', '10.0.0') > 0, 'epoch wins');
  assert.ok(compareDebVersions('6.12.117-1~deb12u1', '6.12.117-1') < 0, 'tilde sorts before nothing');
  assert.ok(compareDebVersions('6.12.117-1~deb12u1', '6.12.95-1~bpo12+1') > 0);
  assert.is(compareDebVersions('1.0', '1.0'), 0);
  assert.is(upstreamVersion('1:10.0.13+ds-0+deb13u1'), '10.0.13');
  assert.is(upstreamVersion('6.12.117-1~deb12u1'), '6.12.117');
});

test('the newest 10.0.y is picked from apt-cache showsrc, not 10.1 or 9.2', () => {
  const out = 'Package: qemu\nVersion: 1:10.0.2+ds-1\n\nPackage: qemu\nVersion: 1:10.1.0+ds-1\n\nPackage: qemu\nVersion: 1:10.0.13+ds-0+deb13u1\n\nVersion: 1:9.2.0+ds-1\n';
  const v = parseShowsrcVersions(out);
  assert.equal(v, ['1:10.0.2+ds-1', '1:10.1.0+ds-1', '1:10.0.13+ds-0+deb13u1', '1:9.2.0+ds-1']);
  assert.is(newestInSeries(v, '10.0'), '1:10.0.13+ds-0+deb13u1');
  assert.is(newestInSeries(v, '10.00'), undefined);
  assert.is(newestInSeries(['1:7.2+dfsg-7'], '10.0'), undefined);
});

test('series files: comments, blank lines and quilt options are ignored', () => {
  assert.equal(parseSeriesFile('# c\n\n0001-a.patch -p1\n  0002-b.patch # x\n'), ['0001-a.patch', '0002-b.patch']);
});

test('readSeries hashes patches and reports a missing or duplicate patch by name', () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-series-'));
  writeFileSync(join(d, 'series'), '# empty\n');
  const empty = readSeries(d);
  assert.is(empty.patches.length, 0);
  assert.is(empty.base, undefined);
  writeFileSync(join(d, '0001-x.patch'), 'a');
  writeFileSync(join(d, 'series'), '0001-x.patch\n0002-gone.patch\n');
  try {
    readSeries(d);
    assert.unreachable('missing patch accepted');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as Error).message, '0002-gone.patch');
  }
  writeFileSync(join(d, 'series'), '0001-x.patch\n0001-x.patch\n');
  assert.throws(() => readSeries(d), /twice/);
  writeFileSync(join(d, 'series'), '0001-x.patch\n');
  writeFileSync(join(d, 'BASE'), 'qemu 1:10.0.13+ds-0+deb13u1\n');
  const one = readSeries(d);
  assert.is(one.base, 'qemu 1:10.0.13+ds-0+deb13u1');
  assert.is(one.patches[0]!.sha256.length, 64);
  writeFileSync(join(d, '0001-x.patch'), 'b');
  assert.is.not(readSeries(d).sha256, one.sha256, 'series hash follows patch contents');
});

test('BUILD-INFO.json: the series built, or none for a developer tree; written as returned', () => {
  const d = mkdtempSync(join(tmpdir(), 'heca-buildinfo-'));
  writeFileSync(join(d, 'series'), '0001-x.patch\n');
  writeFileSync(join(d, '0001-x.patch'), 'a');
  writeFileSync(join(d, 'BASE'), 'qemu 1:10.0.13+ds-0+deb13u1\n');
  const series = readSeries(d);
  const startedMs = Date.now() - 1000;
  const common = { component: 'qemu' as const, fingerprint: 'fp', version: '10.0.13', debianVersion: '1:10.0.13+ds-0+deb13u1', flags: ['--enable-rdma'], output: '/x/qemu', startedMs, steps: 7 };
  const path = join(d, 'BUILD-INFO.json');
  const bi = recordBuild(path, { ...common, source: { kind: 'debian', files: [], tree: '/src/qemu', base_commit: 'b', head_commit: 'h' }, series });
  assert.equal(readBuildInfo(path), bi);
  assert.equal(bi.series, { dir: d, base: 'qemu 1:10.0.13+ds-0+deb13u1', sha256: series.sha256, patches: [{ name: '0001-x.patch', sha256: series.patches[0]!.sha256 }] });
  assert.is(bi.debian_version, '1:10.0.13+ds-0+deb13u1');
  assert.is(bi.started_at, new Date(startedMs).toISOString());
  assert.ok(bi.duration_ms >= 1000);
  assert.is(bi.steps_run, 7);
  const dev = recordBuild(path, { ...common, source: { kind: 'developer-tree', files: [], tree: '/home/me/qemu', base_commit: '', head_commit: 'h' }, series: undefined });
  assert.equal(dev.series, { dir: '/home/me/qemu', base: null, sha256: '', patches: [] });
  assert.equal(readBuildInfo(path), dev);
});

test('git am failures name the failing files', () => {
  const out = [
    'Applying: migration: add a thing',
    'error: patch failed: migration/migration.c:123',
    'error: migration/migration.c: patch does not apply',
    'error: qapi/nothere.json: does not exist in index',
    'Patch failed at 0001 migration: add a thing',
    'hint: Use \'git am --show-current-patch=diff\' to see the failed patch',
  ].join('\n');
  const r = parseAmFailure(out);
  assert.equal(r.files.sort(), ['migration/migration.c', 'qapi/nothere.json']);
  assert.is(r.subject, 'migration: add a thing');
});

test('kernel config fragments: unmet options are listed', () => {
  const want = parseConfig('CONFIG_KVM=y\n# CONFIG_DEBUG_INFO is not set\nCONFIG_RDMA_RXE=y\n');
  const got = parseConfig('CONFIG_KVM=y\nCONFIG_DEBUG_INFO=y\n');
  assert.equal(unmetOptions(want, got), ['CONFIG_DEBUG_INFO=n (got y)', 'CONFIG_RDMA_RXE=y (got n)']);
});

test('kernel config fragments: one KCONFIG_ALLCONFIG file, in order, the last value wins', () => {
  const text = allConfigText([{ name: 'a.config', text: 'CONFIG_NET=y\nCONFIG_VETH=y' }, { name: 'b.config', text: '# CONFIG_VETH is not set\n' }]);
  assert.is(text, '# ---- a.config\nCONFIG_NET=y\nCONFIG_VETH=y\n# ---- b.config\n# CONFIG_VETH is not set\n');
  assert.is(parseConfig(text).get('CONFIG_VETH'), 'n');
});

test('QEMU configure flags and ninja progress', () => {
  const f = qemuConfigureFlags('/p');
  for (const x of ['--prefix=/p', '--target-list=x86_64-softmmu', '--enable-rdma', '--enable-slirp', '--enable-virtfs', '--disable-install-blobs']) assert.ok(f.includes(x), x);
  assert.equal(parseNinjaProgress('[12/2547] Compiling C object a.o'), { done: 12, total: 2547, what: 'Compiling C object a.o' });
  assert.is(parseNinjaProgress('ninja: no work to do.'), undefined);
});

test('QEMU targets: the verbs test only for a tree that has its source (series 2)', () => {
  const base = ['qemu-system-x86_64', 'tests/qtest/migration-test', 'trace/trace-events-all'];
  assert.equal(QEMU_TARGETS, base);
  const tree = mkdtempSync(join(tmpdir(), 'heca-qemu-tree-'));
  assert.equal(qemuTargets(tree), base, 'a tree without series 2 builds what it always did');
  mkdirSync(join(tree, 'tests', 'unit'), { recursive: true });
  writeFileSync(join(tree, 'tests', 'unit', 'test-postcopy-rdma-verbs.c'), 'int main(void) { return 0; }\n');
  assert.equal(qemuTargets(tree), [...base, 'tests/unit/test-postcopy-rdma-verbs']);
  const asked: string[] = [];
  assert.equal(qemuTargets('/t', (p) => (asked.push(p), false)), base);
  assert.equal(asked, ['/t/tests/unit/test-postcopy-rdma-verbs.c'], 'looked up in the tree it builds');
});

const goodPatch = `From 1234 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH 1/2] migration/postcopy: add a deadline for the switch to
 post-copy

Pre-copy of a busy guest may never converge. Let the migration thread
switch to post-copy itself once a deadline has passed.

Signed-off-by: A Developer <dev@example.org>
---
 migration/migration.c | 1 +
`;

test('patch form: subject, body and Signed-off-by', () => {
  const p = parsePatchFile(goodPatch);
  assert.is(p.subject, 'migration/postcopy: add a deadline for the switch to post-copy');
  assert.equal(p.signedOffBy, ['A Developer <dev@example.org>']);
  assert.equal(formProblems(goodPatch), []);
  const bad = goodPatch.replace('migration/postcopy: add', 'Add').replace(/^Signed-off-by.*\n/m, '');
  const problems = formProblems(bad);
  assert.ok(problems.some((x) => x.includes('subsystem: summary')), problems.join(';'));
  assert.ok(problems.some((x) => x.includes('Signed-off-by')), problems.join(';'));
  const nobody = goodPatch.replace(/Pre-copy[\s\S]*itself once a deadline has passed\.\n/, '');
  assert.ok(formProblems(nobody).some((x) => x.includes('body')));
});

test('the kernel selftests the L1 hosts run are the ones the kernel series adds', () => {
  const series = readSeries(kernelPatchesDir());
  const added = new Set(series.patches.flatMap((p) =>
    [...readFileSync(p.path, 'utf8').matchAll(/^\+\+\+ b\/tools\/testing\/selftests\/([\w-]+)\/([\w-]+)\.c$/gm)].map((m) => `${m[1]}/${m[2]}`)));
  for (const t of KSELFTESTS) {
    assert.ok(added.has(`${t.dir}/${t.program}`), `tools/build/kselftests.ts lists ${t.dir}/${t.program}, which no patch in kernel-patches/ creates or changes`);
  }
});

test.run();
