/**
 * Where the destination QEMU's time goes per demand fault of the RDMA pull,
 * from its trace event postcopy_rdma_dst_demand_placed (one line per demand
 * READ placed, in QEMU's log when the bench runs with --qemu-trace
 * postcopy_rdma_dst_demand_placed): fault -> READ posted -> completion
 * polled -> page placed. The guest's side of the same faults (its page
 * writes that took long) is in the run's guest record.
 */
import type { FaultPath } from '../results/schema.ts';
import { median } from '../results/stats.ts';

/** The trace event the bench parses (QEMU's migration/trace-events). */
export const FAULT_PATH_EVENT = 'postcopy_rdma_dst_demand_placed';

const LINE = /postcopy_rdma_dst_demand_placed \S+ offset 0x[0-9a-f]+: READ posted (\d+) ns after the fault, completed in (\d+) ns, placed (\d+) ns after/;

/** The medians over every traced demand fault in `log`; undefined when it has none. */
export function faultPath(log: string): FaultPath | undefined {
  const post: number[] = [];
  const read: number[] = [];
  const place: number[] = [];
  const total: number[] = [];
  const share: number[] = [];
  for (const l of log.split('\n')) {
    const m = LINE.exec(l);
    if (!m) continue;
    const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
    post.push(a / 1000);
    read.push(b / 1000);
    place.push(c / 1000);
    total.push((a + b + c) / 1000);
    share.push(a + b + c > 0 ? b / (a + b + c) : 0);
  }
  if (!total.length) return undefined;
  return {
    faults: total.length,
    to_post_us: median(post)!,
    read_us: median(read)!,
    to_place_us: median(place)!,
    total_us: median(total)!,
    read_share: median(share)!,
  };
}
