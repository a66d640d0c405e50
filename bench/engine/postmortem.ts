/**
 * Post-mortem of a migration whose guest failed on the destination (a reset,
 * a hang, bad pages): both guests' RAM saved with `pmemsave` and compared page
 * by page, here.
 *
 * The source is stopped since the switch (its RAM is what the destination
 * should have received); the destination's guest ran on from it. So a page
 * may differ because the guest wrote it after the switch: the workload's
 * stamped pages tell that apart, since every write bumps a page's generation
 * (bench/guest/workload.c). For every arena page the source holds:
 *   - stale: the destination's newest copy is older than the source's;
 *   - lost: no copy at all on the destination (all-zero where it was, say);
 *   - torn: a valid header but a body that does not match it.
 * Pages outside the arena (the guest kernel, page tables) are only counted,
 * by region, with those the destination has all-zero apart: a page the
 * destination never received reads as zeros once post-copy has ended.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpClient } from '../../tools/qmp/client.ts';

const PAGE = 4096;
const WORDS = PAGE / 8;
const HDR_WORDS = 4;
const M64 = (1n << 64n) - 1n;
const MAGIC = 0x4845434150414745n; // "HECAPAGE"
const K_STEP = 0x9e3779b97f4a7c15n;
/**
 * Guest RAM below this is one contiguous range from 0 on QEMU's pc/q35
 * machines, and each image fits a Buffer read at once (Node: < 2 GiB).
 */
const MAX_LOW_RAM_MIB = 2048;
/** Addresses listed per category in the report. */
const LIST_MAX = 64;

function mix64(x: bigint): bigint {
  x ^= x >> 30n;
  x = (x * 0xbf58476d1ce4e5b9n) & M64;
  x ^= x >> 27n;
  x = (x * 0x94d049bb133111ebn) & M64;
  x ^= x >> 31n;
  return x;
}

/** The workload's page stamp, as workload.c computes it (seed from `heca.seed=`). */
export class Stamp {
  private readonly salt: bigint;
  constructor(seed: number) {
    this.salt = mix64(BigInt(seed) ^ 0x6865636100000000n);
  }

  headerSum(idx: bigint, gen: bigint): bigint {
    return mix64(MAGIC ^ mix64(idx) ^ ((gen * K_STEP) & M64));
  }

  /** Page `p` (its 512 words) carries a valid header: its index and generation, else undefined. */
  header(w: BigUint64Array, p: number): { idx: number; gen: number } | undefined {
    const o = p * WORDS;
    if (w[o] !== MAGIC) return undefined;
    const idx = w[o + 1]!;
    const gen = w[o + 2]!;
    if (gen > 0xffffffffn || idx > 0xffffffffn || w[o + 3] !== this.headerSum(idx, gen)) return undefined;
    return { idx: Number(idx), gen: Number(gen) };
  }

  private base(idx: number, gen: number): bigint {
    const g = BigInt(gen);
    // As C's uint64_t arithmetic: the shifted generation loses what passes bit 63.
    return mix64(((BigInt(idx) * 0xd6e8feb86659fd93n) & M64) ^ ((g << 40n) & M64) ^ g ^ this.salt);
  }

  /** The body of page `p` is what its header says. */
  bodyOk(w: BigUint64Array, p: number, idx: number, gen: number): boolean {
    return this.bodyPrefix(w, p, idx, gen) === WORDS;
  }

  /** Words of page `p`, from the first body word, that are what generation `gen` writes (HDR_WORDS..WORDS). */
  bodyPrefix(w: BigUint64Array, p: number, idx: number, gen: number, from = HDR_WORDS): number {
    const o = p * WORDS;
    let v = this.base(idx, gen);
    for (let i = HDR_WORDS; i < from; i++) v = (v + K_STEP) & M64;
    for (let i = from; i < WORDS; i++) {
      v = (v + K_STEP) & M64;
      if (w[o + i] !== v) return i;
    }
    return WORDS;
  }

  /**
   * Page `p` was being rewritten when the guest stopped: write_page() puts the
   * header of generation `gen` first, then the body word by word, so the body
   * starts as `gen`'s and ends as `gen - 1`'s.
   */
  inFlight(w: BigUint64Array, p: number, idx: number, gen: number): boolean {
    if (gen === 0) return false;
    const k = this.bodyPrefix(w, p, idx, gen);
    return k < WORDS && this.bodyPrefix(w, p, idx, gen - 1, k) === WORDS;
  }

  /** Stamp page `p` as the workload's write_page() does (for tests). */
  write(w: BigUint64Array, p: number, idx: number, gen: number): void {
    const o = p * WORDS;
    w[o] = MAGIC;
    w[o + 1] = BigInt(idx);
    w[o + 2] = BigInt(gen);
    w[o + 3] = this.headerSum(BigInt(idx), BigInt(gen));
    let v = this.base(idx, gen);
    for (let i = HDR_WORDS; i < WORDS; i++) {
      v = (v + K_STEP) & M64;
      w[o + i] = v;
    }
  }
}

export interface PostMortem {
  pages: number;
  /** Pages whose bytes differ between the two. */
  differ: number;
  /** Arena pages (valid stamp) on the source, and their index range. */
  arena_pages: number;
  /** Of those, on the destination: newest copy older than the source's (first LIST_MAX; all in `counts`). */
  stale: Array<{ idx: number; src_gen: number; dst_gen: number; gpa: number }>;
  /** No copy at all on the destination. */
  lost: Array<{ idx: number; src_gen: number; src_gpa: number; dst_bytes_at_src_gpa: 'zero' | 'other' }>;
  /** Newest copy on the destination: a valid header over a body that does not match it. */
  torn: Array<{ idx: number; gen: number; gpa: number }>;
  /** Newest copy on the destination: being rewritten when the guest stopped (not a fault). */
  in_flight: Array<{ idx: number; gen: number; gpa: number }>;
  counts: { stale: number; lost: number; torn: number; in_flight: number };
  /** Differing pages outside the arena (no valid stamp on either side). */
  other_differ: number;
  /** Of those, all-zero on the destination only. */
  other_zeroed: number[];
  /** other_differ per 16 MiB region: "0x0000000-0x0ffffff": n. */
  other_by_region: Record<string, number>;
}

function isZero(w: BigUint64Array, p: number): boolean {
  const o = p * WORDS;
  for (let i = 0; i < WORDS; i++) if (w[o + i] !== 0n) return false;
  return true;
}

function words(buf: Buffer): BigUint64Array {
  const b = buf.byteOffset % 8 === 0 ? buf : Buffer.from(buf);
  return new BigUint64Array(b.buffer, b.byteOffset, Math.floor(b.length / 8));
}

/** Compare two RAM images (same size, guest-physical from 0) of the workload's guest. */
export function compareRam(srcBuf: Buffer, dstBuf: Buffer, seed: number): PostMortem {
  const stamp = new Stamp(seed);
  const pages = Math.min(srcBuf.length, dstBuf.length) / PAGE;
  const s = words(srcBuf);
  const d = words(dstBuf);
  // Newest copy of each index on each side (the guest kernel may have moved
  // a page: the old frame keeps its old bytes until reused); on the
  // destination, the newest whole copy and the newest broken one apart.
  const srcBest = new Map<number, { gen: number; gpa: number }>();
  const dstBest = new Map<number, { gen: number; gpa: number }>();
  const dstBroken = new Map<number, { gen: number; gpa: number; inFlight: boolean }>();
  const r: PostMortem = { pages, differ: 0, arena_pages: 0, stale: [], lost: [], torn: [], in_flight: [], counts: { stale: 0, lost: 0, torn: 0, in_flight: 0 }, other_differ: 0, other_zeroed: [], other_by_region: {} };
  const newer = <T extends { gen: number }>(m: Map<number, T>, idx: number, v: T) => {
    const b = m.get(idx);
    if (!b || v.gen > b.gen) m.set(idx, v);
  };
  for (let p = 0; p < pages; p++) {
    const sh = stamp.header(s, p);
    if (sh) newer(srcBest, sh.idx, { gen: sh.gen, gpa: p * PAGE });
    const same = srcBuf.compare(dstBuf, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) === 0;
    if (!same) r.differ++;
    const dh = stamp.header(d, p);
    if (dh) {
      // Equal to the source's page: whatever its body, it is the source's.
      if (same || stamp.bodyOk(d, p, dh.idx, dh.gen)) newer(dstBest, dh.idx, { gen: dh.gen, gpa: p * PAGE });
      else newer(dstBroken, dh.idx, { gen: dh.gen, gpa: p * PAGE, inFlight: stamp.inFlight(d, p, dh.idx, dh.gen) });
    }
    if (!same && !sh && !dh) {
      r.other_differ++;
      const region = Math.floor((p * PAGE) / (16 << 20)) * (16 << 20);
      const key = `0x${region.toString(16).padStart(8, '0')}-0x${(region + (16 << 20) - 1).toString(16).padStart(8, '0')}`;
      r.other_by_region[key] = (r.other_by_region[key] ?? 0) + 1;
      if (isZero(d, p) && r.other_zeroed.length < LIST_MAX) r.other_zeroed.push(p * PAGE);
    }
  }
  r.arena_pages = srcBest.size;
  const note = <T>(kind: 'stale' | 'lost' | 'torn' | 'in_flight', list: T[], v: T) => {
    r.counts[kind]++;
    if (list.length < LIST_MAX) list.push(v);
  };
  for (const [idx, sb] of [...srcBest].sort((a, b) => a[0] - b[0])) {
    const db = dstBest.get(idx);
    const broken = dstBroken.get(idx);
    // A broken copy newer than every whole one is what the guest would read.
    if (broken && (!db || broken.gen > db.gen)) {
      if (broken.inFlight) note('in_flight', r.in_flight, { idx, gen: broken.gen, gpa: broken.gpa });
      else note('torn', r.torn, { idx, gen: broken.gen, gpa: broken.gpa });
    } else if (!db) {
      note('lost', r.lost, { idx, src_gen: sb.gen, src_gpa: sb.gpa, dst_bytes_at_src_gpa: isZero(d, sb.gpa / PAGE) ? 'zero' : 'other' });
    } else if (db.gen < sb.gen) {
      note('stale', r.stale, { idx, src_gen: sb.gen, dst_gen: db.gen, gpa: db.gpa });
    }
  }
  return r;
}

/** One line: what the comparison found. */
export function postMortemSummary(r: PostMortem): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const list = <T>(a: T[], f: (x: T) => string) => (a.length ? ` (${a.slice(0, 4).map(f).join(', ')}${a.length > 4 ? ', ...' : ''})` : '');
  const c = r.counts;
  return `${r.differ} of ${r.pages} pages differ; of the ${r.arena_pages} arena pages: ${c.stale} stale${list(r.stale, (x) => `#${x.idx} gen ${x.dst_gen}<${x.src_gen} at ${hex(x.gpa)}`)}, ` +
    `${c.lost} lost${list(r.lost, (x) => `#${x.idx} was at ${hex(x.src_gpa)}, now ${x.dst_bytes_at_src_gpa}`)}, ${c.torn} torn${list(r.torn, (x) => `#${x.idx} at ${hex(x.gpa)}`)}` +
    `${c.in_flight ? ` (and ${c.in_flight} being rewritten when the guest stopped${list(r.in_flight, (x) => `#${x.idx}`)})` : ''}; ` +
    `outside the arena ${r.other_differ} differ, ${r.other_zeroed.length}${r.other_zeroed.length >= LIST_MAX ? '+' : ''} of them zero on the destination only${list(r.other_zeroed, hex)}`;
}

interface Frozen {
  readonly qmp: QmpClient;
  readonly exited: unknown;
}

/**
 * Save both guests' RAM (`memMib` from guest-physical 0) into `dir`, compare,
 * write `dir/postmortem.json` and return the summary, or why it could not be
 * done. The destination is stopped first; its incoming migration must have
 * completed (a page not yet placed would block the dump or read as a hole).
 * The dumps are removed afterwards.
 */
export async function postMortem(src: Frozen, dst: Frozen, memMib: number, seed: number, dir: string): Promise<string> {
  if (src.exited || dst.exited) return 'not done: a QEMU has exited';
  if (memMib >= MAX_LOW_RAM_MIB) return `not done: ${memMib} MiB of guest RAM is not one range from 0 (at most ${MAX_LOW_RAM_MIB} MiB here)`;
  let status = '';
  for (let i = 0; i < 60; i++) {
    status = (await dst.qmp.execute('query-migrate', undefined, { timeoutMs: 5000 })).status ?? '';
    if (status === 'completed' || status === 'failed' || status === 'cancelled' || status === '') break;
    await sleep(2000);
  }
  if (status !== 'completed') return `not done: the destination's incoming migration is ${status || 'not there'}, not completed`;
  await dst.qmp.execute('stop', undefined, { timeoutMs: 10_000 });
  const files = { src: join(dir, 'postmortem-src.ram'), dst: join(dir, 'postmortem-dst.ram') };
  try {
    const size = memMib * 1024 * 1024;
    await Promise.all([
      src.qmp.execute('pmemsave', { val: 0, size, filename: files.src }, { timeoutMs: 300_000 }),
      dst.qmp.execute('pmemsave', { val: 0, size, filename: files.dst }, { timeoutMs: 300_000 }),
    ]);
    const r = compareRam(readFileSync(files.src), readFileSync(files.dst), seed);
    writeFileSync(join(dir, 'postmortem.json'), `${JSON.stringify(r, null, 1)}\n`);
    return postMortemSummary(r);
  } finally {
    rmSync(files.src, { force: true });
    rmSync(files.dst, { force: true });
  }
}
