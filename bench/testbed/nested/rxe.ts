/**
 * Soft-RoCE in an L1 test host: create the rxe device on a NIC (unless it
 * exists), wait until its port is ACTIVE, and check that libibverbs sees it.
 * The nested testbed sets up rxe0 on link0 in both hosts this way; tests that
 * need RDMA in one host (tests/nested/qtest-rdma.test.ts) do the same.
 *
 *   const rxe = await setUpRxe(host.agent);   // rxe0 on link0, ACTIVE
 */
import { HecaError } from '../../../tools/core/errors.ts';
import { pollUntil } from '../../../tools/core/poll.ts';
import type { AgentClient } from './l1-agent.ts';

export interface RxeState {
  dev: string;
  netdev: string;
  state: string;
  physical_state: string;
}

export interface RxeOptions {
  /** The rxe device (default rxe0). */
  dev?: string;
  /** The NIC it runs on (default link0, the testbed's link). */
  netdev?: string;
  /** How long its port may take to become ACTIVE (default 15 s). */
  activeTimeoutMs?: number;
}

/** `agent.host` names the host in errors ("L1 host heca-a"). */
export async function setUpRxe(agent: AgentClient, opts: RxeOptions = {}): Promise<RxeState> {
  const dev = opts.dev ?? 'rxe0';
  const netdev = opts.netdev ?? 'link0';
  const have = await agent.exec(['rdma', '-j', 'link', 'show'], { timeoutMs: 10_000, allowFail: true });
  if (have.exitCode !== 0) {
    throw new HecaError(`${agent.host}: the rdma tool failed`, { why: `${have.stderr.trim() || have.stdout.trim()} (the kernel lacks CONFIG_INFINIBAND/RDMA_RXE, or iproute2's rdma is missing)`, fix: 'check kernel-patches/config/heca.config and rebuild: npx tsx tools/build.ts --kernel' });
  }
  if (!(JSON.parse(have.stdout || '[]') as { ifname: string }[]).some((l) => l.ifname === dev)) {
    const add = await agent.exec(['rdma', 'link', 'add', dev, 'type', 'rxe', 'netdev', netdev], { timeoutMs: 20_000, allowFail: true });
    if (add.exitCode !== 0) {
      throw new HecaError(`${agent.host}: cannot create the Soft-RoCE device ${dev} on ${netdev}`, { why: add.stderr.trim() || `rdma link add exited ${add.exitCode}`, fix: 'the L1 kernel needs CONFIG_RDMA_RXE=y (kernel-patches/config/heca.config)' });
    }
  }
  const rxe = await waitRxeActive(agent, dev, netdev, opts.activeTimeoutMs ?? 15_000);
  const uverbs = await agent.exec(['ibv_devices'], { timeoutMs: 20_000, allowFail: true });
  if (uverbs.exitCode !== 0 || !uverbs.stdout.includes(dev)) {
    throw new HecaError(`${agent.host}: libibverbs does not see ${dev}`, { why: (uverbs.stderr || uverbs.stdout).trim() || `ibv_devices exited ${uverbs.exitCode}`, fix: 'install ibverbs-providers and ibverbs-utils on the machine (tools/setup-host.sh does)' });
  }
  return rxe;
}

/** Wait until `dev`'s port is ACTIVE (after the link it runs on came back, say). */
export async function waitRxeActive(agent: AgentClient, dev: string, netdev: string, timeoutMs: number): Promise<RxeState> {
  let last: RxeState = { dev, netdev, state: 'missing', physical_state: '?' };
  return pollUntil(async () => {
    const r = await agent.exec(['rdma', '-j', 'link', 'show', `${dev}/1`], { timeoutMs: 10_000, allowFail: true });
    if (r.exitCode !== 0) return undefined;
    const l = (JSON.parse(r.stdout) as { ifname: string; state: string; physical_state: string; netdev?: string }[])[0];
    if (l) last = { dev: l.ifname, netdev: l.netdev ?? '?', state: l.state, physical_state: l.physical_state };
    return last.state === 'ACTIVE' ? last : undefined;
  }, {
    timeoutMs,
    everyMs: 200,
    timeout: (ms) => new HecaError(`${agent.host}: ${dev} is not ACTIVE`, { why: `after ${ms} ms it is ${last.state} (${last.physical_state}) on ${last.netdev}`, fix: `${netdev} must be up with a carrier: see the console log` }),
  });
}

/**
 * The state of `dev`'s GSI queue pair (QP1, which carries the connection
 * manager's messages), from `rdma -j res show qp`; undefined when it is not
 * listed.
 */
export function gsiQpState(resJson: string, dev: string): string | undefined {
  let rows: unknown;
  try {
    rows = JSON.parse(resJson || '[]');
  } catch {
    return undefined;
  }
  if (!Array.isArray(rows)) return undefined;
  const qp1 = rows.find((r): r is { ifname: string; type: string; state: string } =>
    typeof r === 'object' && r !== null && (r as { ifname?: unknown }).ifname === dev && (r as { type?: unknown }).type === 'GSI');
  return qp1?.state;
}

export interface RxeRepair {
  /** The GSI queue pair's state before (undefined: not listed). */
  gsi: string | undefined;
  recreated: boolean;
}

/**
 * Re-create `dev` when its GSI queue pair is in ERR. Soft-RoCE in Linux 6.12
 * moves any queue pair to ERR when a send fails (rxe_requester's error path),
 * the GSI one included — a connection-manager message sent while the link is
 * down is enough — and the MAD layer only knows how to bring a GSI queue pair
 * back from SQE: from then on every rdma_cm connect on the device times out,
 * while the port says ACTIVE. Only a new device helps. Deleting one waits for
 * every process that uses it (rxe cannot disassociate them), so call this
 * only when no QEMU or test program has it open.
 */
export async function repairRxe(agent: AgentClient, opts: RxeOptions = {}): Promise<RxeRepair> {
  const dev = opts.dev ?? 'rxe0';
  const res = await agent.exec(['rdma', '-j', 'res', 'show', 'qp'], { timeoutMs: 10_000, allowFail: true });
  const gsi = res.exitCode === 0 ? gsiQpState(res.stdout, dev) : undefined;
  if (gsi !== 'ERR') return { gsi, recreated: false };
  const del = await agent.exec(['rdma', 'link', 'delete', dev], { timeoutMs: 30_000, allowFail: true });
  if (del.exitCode !== 0) {
    throw new HecaError(`${agent.host}: cannot delete ${dev} to replace it (its GSI queue pair is in ERR, so it connects no more)`, {
      why: del.timedOut ? 'rdma link delete did not return in 30 s: a process still uses the device' : del.stderr.trim() || `rdma link delete exited ${del.exitCode}`,
      fix: 'stop every QEMU and RDMA test program in the host first',
    });
  }
  await setUpRxe(agent, opts);
  return { gsi, recreated: true };
}

/** An RDMA device's port counters (Soft-RoCE's hw_counters: sent_pkts, duplicate_request...). */
export type RdmaCounters = Record<string, number>;
/** Both ends' counters: the source's host and the destination's. */
export type RdmaCounterPair = { src: RdmaCounters; dst: RdmaCounters };

/**
 * The counters from `grep -r '' /sys/class/infiniband/DEV/ports/1/hw_counters`
 * (one "PATH/NAME:VALUE" line each); lines that are not a counter are skipped.
 */
export function parseHwCounters(out: string): RdmaCounters {
  const c: RdmaCounters = {};
  for (const line of out.split('\n')) {
    const m = /\/hw_counters\/([\w-]+):(\d+)\s*$/.exec(line);
    if (m) c[m[1]!] = Number(m[2]);
  }
  return c;
}

/**
 * What happened between two readings. A counter that went down means the
 * device was re-created meanwhile (repairRxe after a cut): its count since then
 * is all there is.
 */
export function counterDelta(before: RdmaCounters, after: RdmaCounters): RdmaCounters {
  const d: RdmaCounters = {};
  for (const [k, v] of Object.entries(after)) {
    const b = before[k] ?? 0;
    d[k] = v >= b ? v - b : v;
  }
  return d;
}

/** `dev`'s port counters in an L1 host (Soft-RoCE counts retransmissions there: see the report). */
export async function readRdmaCounters(agent: AgentClient, dev = 'rxe0'): Promise<RdmaCounters> {
  const dir = `/sys/class/infiniband/${dev}/ports/1/hw_counters`;
  const r = await agent.exec(['grep', '-r', '', dir], { timeoutMs: 10_000, allowFail: true });
  const c = parseHwCounters(r.stdout);
  if (r.exitCode !== 0 || Object.keys(c).length === 0) {
    throw new HecaError(`${agent.host}: cannot read ${dev}'s counters`, { why: r.stderr.trim() || `${dir} has no counters (grep exited ${r.exitCode})`, fix: `check that ${dev} exists: rdma link show` });
  }
  return c;
}
