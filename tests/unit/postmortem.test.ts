/**
 * The post-mortem's page comparison (bench/engine/postmortem.ts) on RAM images
 * built here: a guest that ran on after the switch is clean; a stale, a lost
 * and a torn arena page, and a zeroed kernel page, are each found where they
 * are. (tests/integration/migrate.test.ts runs it on a real guest's RAM.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareRam, postMortemSummary, Stamp } from '../../bench/engine/postmortem.ts';

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
  assert.equal([r.stale, r.lost, r.torn], [[], [], []]);
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

test("the body is checked with the guest's seed: another seed takes a page rewritten after the switch for torn", () => {
  const stamp = new Stamp(SEED);
  const s = source(stamp);
  const d = copy(s);
  stamp.write(d.w, 9, 1, 9);
  assert.equal(compareRam(s.buf, d.buf, SEED).torn, []);
  assert.equal(compareRam(s.buf, d.buf, SEED + 1).torn.map((t) => t.idx), [1]);
});

test.run();
