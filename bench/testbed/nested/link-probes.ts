/**
 * The raw link between the nested testbed's hosts, measured in the same run
 * as what it is compared with: RDMA READ latency and bandwidth over rxe
 * (perftest's ib_read_lat / ib_read_bw, 4 KiB), TCP request/response latency
 * and TCP stream throughput (qperf tcp_lat / tcp_bw). Servers run in B,
 * clients in A.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../../../tools/core/poll.ts';
import { HecaError } from '../../../tools/core/errors.ts';
import type { LinkProbes, ReadBandwidth, ReadLatency } from '../../results/schema.ts';
import type { NestedTestbed } from './testbed.ts';

/** The numbers of the data line under a perftest "#bytes" header. */
function perftestRow(out: string, what: string): { header: string; cols: number[] } {
  const lines = out.split('\n');
  const h = lines.findIndex((l) => l.includes('#bytes'));
  const row = h >= 0 ? lines.slice(h + 1).find((l) => /^\s*\d/.test(l)) : undefined;
  if (!row) throw new HecaError(`cannot read ${what}'s result`, { why: 'no "#bytes" table in its output', details: out.slice(-1500) });
  return { header: lines[h]!, cols: row.trim().split(/\s+/).map(Number) };
}

export function parseReadLat(out: string): ReadLatency {
  const { cols } = perftestRow(out, 'ib_read_lat');
  if (cols.length < 9 || cols.some((n) => !Number.isFinite(n))) throw new HecaError('cannot read ib_read_lat\'s result', { why: `expected 9 numbers, got: ${cols.join(' ')}` });
  const [bytes, iterations, t_min_us, t_max_us, t_typical_us, t_avg_us, t_stdev_us, p99_us, p999_us] = cols as [number, number, number, number, number, number, number, number, number];
  return { bytes, iterations, t_min_us, t_max_us, t_typical_us, t_avg_us, t_stdev_us, p99_us, p999_us };
}

export function parseReadBw(out: string): ReadBandwidth {
  const { header, cols } = perftestRow(out, 'ib_read_bw');
  if (cols.length < 5 || cols.some((n) => !Number.isFinite(n))) throw new HecaError('cannot read ib_read_bw\'s result', { why: `expected 5 numbers, got: ${cols.join(' ')}` });
  const unit = /BW average\[([^\]]+)\]/.exec(header)?.[1] ?? 'MB/sec';
  const [bytes, iterations, bw_peak_mb_s, bw_avg_mb_s, msg_rate_mpps] = cols as [number, number, number, number, number];
  return { bytes, iterations, bw_peak_mb_s, bw_avg_mb_s, msg_rate_mpps, unit };
}

const TIME_UNIT: Record<string, number> = { ns: 1e-3, us: 1, ms: 1e3, sec: 1e6 };
const RATE_UNIT: Record<string, number> = { 'bytes/sec': 1, 'KB/sec': 1e3, 'MB/sec': 1e6, 'GB/sec': 1e9 };

/** qperf's "latency = 55.3 us" and "bw = 117 MB/sec" lines. */
export function parseQperf(out: string): { latency_us?: number; bw_bytes_s?: number } {
  const r: { latency_us?: number; bw_bytes_s?: number } = {};
  const lat = /latency\s*=\s*([\d.]+)\s*(ns|us|ms|sec)/.exec(out);
  if (lat) r.latency_us = Number(lat[1]) * TIME_UNIT[lat[2]!]!;
  const bw = /\bbw\s*=\s*([\d.]+)\s*(bytes\/sec|KB\/sec|MB\/sec|GB\/sec)/.exec(out);
  if (bw) r.bw_bytes_s = Number(bw[1]) * RATE_UNIT[bw[2]!]!;
  return r;
}

async function waitFor(file: string, text: string, timeoutMs: number, what: string): Promise<void> {
  await pollUntil(() => (existsSync(file) && readFileSync(file, 'utf8').includes(text) ? true : undefined), {
    timeoutMs,
    everyMs: 100,
    timeout: (ms) => new HecaError(`${what} did not start`, { why: `"${text}" did not appear in ${file} within ${ms} ms`, details: existsSync(file) ? readFileSync(file, 'utf8').slice(-1500) : '(no log)' }),
  });
}

/** One perftest pair: server in B, client in A, 4 KiB, over rxe0. */
async function perftest(bed: NestedTestbed, tool: 'ib_read_lat' | 'ib_read_bw', port: number): Promise<string> {
  const args = ['-d', 'rxe0', '-s', '4096', '-n', tool === 'ib_read_lat' ? '1000' : '2000', '-p', String(port), '-F'];
  const log = join(bed.sharedDir, `${tool}-server.log`);
  // stdbuf: perftest's banner goes through stdio, block-buffered into a file otherwise.
  const server = await bed.b.agent.spawn(['stdbuf', '-oL', '-eL', tool, ...args], { logFile: log });
  try {
    await waitFor(log, 'Waiting for client', 30_000, `${tool} server in ${bed.b.name}`);
    const r = await bed.a.agent.exec([tool, ...args, '10.214.0.2'], { timeoutMs: 120_000 });
    writeFileSync(join(bed.sharedDir, `${tool}-client.log`), `${r.stdout}${r.stderr}`);
    return r.stdout;
  } finally {
    await bed.b.agent.kill(server.pid, 'SIGKILL').catch(() => false);
  }
}

async function qperf(bed: NestedTestbed, test: 'tcp_lat' | 'tcp_bw', msgBytes: number): Promise<string> {
  // The server (started once by measureLink) may still be binding: retry the first connects.
  let last = '';
  for (let i = 0; i < 20; i++) {
    const r = await bed.a.agent.exec(['qperf', '10.214.0.2', '-t', '5', '-m', String(msgBytes), test], { timeoutMs: 60_000, allowFail: true });
    if (r.exitCode === 0 && r.stdout.includes(test)) {
      writeFileSync(join(bed.sharedDir, `qperf-${test}.log`), r.stdout);
      return r.stdout;
    }
    last = `${r.stdout}${r.stderr}`;
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new HecaError(`qperf ${test} from A to B failed`, { why: 'it did not connect or exited with an error 20 times', details: last.slice(-1500) });
}

export async function measureLink(bed: NestedTestbed): Promise<LinkProbes> {
  const ib_read_lat = parseReadLat(await perftest(bed, 'ib_read_lat', 18515));
  const ib_read_bw = parseReadBw(await perftest(bed, 'ib_read_bw', 18516));
  const server = await bed.b.agent.spawn(['qperf'], { logFile: join(bed.sharedDir, 'qperf-server.log') });
  try {
    const lat = parseQperf(await qperf(bed, 'tcp_lat', 4096));
    const bw = parseQperf(await qperf(bed, 'tcp_bw', 65536));
    if (lat.latency_us === undefined || bw.bw_bytes_s === undefined) throw new HecaError('cannot read qperf\'s results', { why: 'no "latency =" or "bw =" line' });
    return { ib_read_lat, ib_read_bw, tcp_lat_us: lat.latency_us, tcp_rr_us: 2 * lat.latency_us, tcp_bw_bytes_s: bw.bw_bytes_s, tools: 'perftest (ib_read_lat, ib_read_bw), qperf (tcp_lat, tcp_bw)' };
  } finally {
    await bed.b.agent.kill(server.pid, 'SIGKILL').catch(() => false);
  }
}
