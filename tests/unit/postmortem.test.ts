/**
 * The post-mortem's page comparison (bench/engine/postmortem.ts): its reading
 * of the stamps against pages the guest workload's own C writes; then on RAM
 * images built here: a guest that ran on after the switch is clean; a stale, a
 * lost and a torn arena page, and a zeroed kernel page, are each found where
 * they are; a page being rewritten when the guest stopped is told apart.
 * (tests/integration/migrate.test.ts runs it on a real guest's RAM.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareRam, postMortemSummary, Stamp } from '../../bench/engine/postmortem.ts';
import { repoRoot } from '../../tools/core/paths.ts';

const PAGE = 4096;
const PAGES = 64;
const SEED = 7;

function image(): { buf: Buffer; w: BigUint64Array } {
  const buf = Buffer.alloc(PAGES * PAGE);
  return { buf, w: new BigUint64Array(buf.buffer, buf.byteOffset, buf.length / 8) };
}

/** A source: kernel-ish bytes in pages 0-7, arena pages 0..39 at frames 8..47 (gen = idx % 5 + 1). */
function source(stamp: Stamp): { buf: Buffer; w: BigUint64Array } {
  const s = image();
  for (let p = 0; p < 8; p++) s.buf.fill(0x11 + p, p * PAGE, (p + 1) * PAGE);
  for (let i = 0; i < 40; i++) stamp.write(s.w, 8 + i, i, (i % 5) + 1);
  return s;
}

function copy(s: { buf: Buffer }): { buf: Buffer; w: BigUint64Array } {
  const d = image();
  s.buf.copy(d.buf);
  return d;
}

test('the stamps are read as bench/guest/workload.c writes them (known answers from its C)', () => {
  const bin = join(mkdtempSync(join(tmpdir(), 'heca-stamp-')), 'workload-stamp');
  const cc = spawnSync('gcc', ['-O2', '-o', bin, join(repoRoot, 'tests', 'fixtures', 'workload-stamp.c')], { encoding: 'utf8' });
  assert.is(cc.status, 0, cc.stderr);
  // Generations past 2^24 (the shift by 40 overflows 64 bits) and at the uint32 limit.
  const cases: Array<[number, number]> = [[0, 0], [1, 1], [100, 7], [40959, 16777215], [12345, 16777217], [65535, 4294967295]];
  const seed = 12345678901;
  const out = spawnSync(bin, [String(seed), ...cases.flatMap(([i, g]) => [String(i), String(g)])], { encoding: 'utf8' });
  assert.is(out.status, 0, out.stderr);
  const lines = out.stdout.trim().split('\n');
  assert.is(lines.length, cases.length);
  const stamp = new Stamp(seed);
  cases.forEach(([idx, gen], k) => {
    const c = new BigUint64Array(512);
    for (let i = 0; i < 512; i++) c[i] = BigInt(`0x${lines[k]!.slice(16 * i, 16 * i + 16)}`);
    assert.equal(stamp.header(c, 0), { idx, gen }, `header of #${idx} gen ${gen}`);
    assert.ok(stamp.bodyOk(c, 0, idx, gen), `body of #${idx} gen ${gen}`);
    const mine = new BigUint64Array(512);
    stamp.write(mine, 0, idx, gen);
    assert.equal([...mine], [...c], `Stamp.write of #${idx} gen ${gen} is the guest's page`);
    assert.not.ok(new Stamp(seed + 1).bodyOk(c, 0, idx, gen), 'another seed does not read it');
  });
});

test('a destination that ran on from the source: pages differ, none stale, lost or torn', () => {
  const stamp = new Stamp(SEED);
  const s = source(stamp);
  const d = copy(s);
  stamp.write(d.w, 9, 1, 9); // rewritten after the switch: newer generation
  stamp.write(d.w, 50, 3, 8); // moved by the guest kernel, newer ...
  stamp.write(d.w, 11, 3, 2); // ... while the old frame keeps an older copy
  d.buf.fill(0x77, 2 * PAGE, 3 * PAGE); // kernel data written
  const r = compareRam(s.buf, d.buf, SEED);
  assert.is(r.pages, PAGES);
  assert.is(r.arena_pages, 40);
  assert.is(r.differ, 4);
  assert.equal([r.stale, r.lost, r.torn, r.in_flight], [[], [], [], []]);
  assert.is(r.other_differ, 1);
  assert.equal(r.other_zeroed, []);
  assert.match(postMortemSummary(r), '4 of 64 pages differ; of the 40 arena pages: 0 stale, 0 lost, 0 torn; outside the arena 1 differ, 0 of them zero');
});

test('a stale, a lost and a torn arena page, and a kernel page zeroed, are named with their addresses', () => {
  const stamp = new Stamp(SEED);
  const s = source(stamp);
  const d = copy(s);
  stamp.write(d.w, 8 + 4, 4, 2); // idx 4 had gen 5 on the source: an older copy placed
  d.buf.fill(0, (8 + 6) * PAGE, (8 + 7) * PAGE); // idx 6: never placed, reads as zeros
  d.w[(8 + 9) * 512 + 100] = d.w[(8 + 9) * 512 + 100]! ^ 1n; // idx 9: one bit of its body flipped
  d.buf.fill(0, 5 * PAGE, 6 * PAGE); // a kernel page lost
  const r = compareRam(s.buf, d.buf, SEED);
  assert.equal(r.stale, [{ idx: 4, src_gen: 5, dst_gen: 2, gpa: 12 * PAGE }]);
  assert.equal(r.lost, [{ idx: 6, src_gen: 2, src_gpa: 14 * PAGE, dst_bytes_at_src_gpa: 'zero' }]);
  assert.equal(r.torn, [{ idx: 9, gen: 5, gpa: 17 * PAGE }]);
  assert.equal(r.other_zeroed, [5 * PAGE]);
  assert.equal(r.other_by_region, { '0x00000000-0x00ffffff': 1 });
  const line = postMortemSummary(r);
  assert.match(line, '1 stale (#4 gen 2<5 at 0xc000)');
  assert.match(line, '1 lost (#6 was at 0xe000, now zero)');
  assert.match(line, '1 torn (#9 at 0x11000)');
  assert.match(line, '1 of them zero on the destination only (0x5000)');
});

test('a page rewritten when the guest stopped is told apart from a torn one; a broken copy newer than a whole one counts', () => {
  const stamp = new Stamp(SEED);
  const s = source(stamp);
  const d = copy(s);
  // idx 2 (gen 3 on the source): gen 4's header and first 100 body words over gen 3's body.
  const mid = image();
  stamp.write(mid.w, 0, 2, 4);
  for (let i = 0; i < 104; i++) d.w[(8 + 2) * 512 + i] = mid.w[i]!;
  // idx 3: moved by the guest (old whole copy stays at its frame), its new frame then corrupted.
  stamp.write(d.w, 52, 3, 6);
  d.w[52 * 512 + 300] = d.w[52 * 512 + 300]! ^ 2n;
  const r = compareRam(s.buf, d.buf, SEED);
  assert.equal(r.in_flight, [{ idx: 2, gen: 4, gpa: 10 * PAGE }]);
  assert.equal(r.torn, [{ idx: 3, gen: 6, gpa: 52 * PAGE }]);
  assert.equal(r.counts, { stale: 0, lost: 0, torn: 1, in_flight: 1 });
  assert.match(postMortemSummary(r), '1 torn (#3 at 0x34000) (and 1 being rewritten when the guest stopped (#2));');
});

test('counts go on past the addresses listed', () => {
  const stamp = new Stamp(SEED);
  const s = image();
  const n = 60; // 60 pages of a 64-page image, all lost on the destination
  for (let i = 0; i < n; i++) stamp.write(s.w, i, i, 1);
  const r = compareRam(s.buf, image().buf, SEED);
  assert.is(r.counts.lost, n);
  assert.is(r.lost.length, n);
  const big = Buffer.alloc(80 * PAGE);
  const bw = new BigUint64Array(big.buffer, big.byteOffset, big.length / 8);
  for (let i = 0; i < 80; i++) stamp.write(bw, i, i, 1);
  const r2 = compareRam(big, Buffer.alloc(80 * PAGE), SEED);
  assert.is(r2.counts.lost, 80, 'all counted');
  assert.is(r2.lost.length, 64, 'the first 64 listed');
  assert.match(postMortemSummary(r2), '80 lost (');
});

test("the body is checked with the guest's seed: another seed takes a page rewritten after the switch for torn", () => {
  const stamp = new Stamp(SEED);
  const s = source(stamp);
  const d = copy(s);
  stamp.write(d.w, 9, 1, 9);
  assert.equal(compareRam(s.buf, d.buf, SEED).torn, []);
  assert.equal(compareRam(s.buf, d.buf, SEED + 1).torn.map((t) => t.idx), [1]);
});

test.run();
