/**
 * Two "hosts" on one machine: a source and a destination network namespace
 * joined by a veth pair shaped to a link profile (links.ts) on each end's
 * egress. Bytes on the wire are read from the veth counters.
 *
 *   heca-<id>-src  [hs<id> 10.213.0.1/30] ==veth== [hd<id> 10.213.0.2/30]  heca-<id>-dst
 *
 * Both namespaces use the same /30: they are separate network stacks, and
 * traffic only ever goes between them (nothing is routed to the host).
 *
 * Every testbed takes a lease (lease.ts) before it creates anything: its
 * owner record in /run/heca/testbeds/ names the namespaces, so that
 * `LocalTestbed.cleanupStale()` can remove what a killed run left behind,
 * and SIGINT/SIGTERM/a crash destroys it.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pollUntil } from '../../../tools/core/poll.ts';
import { HecaError } from '../../../tools/core/errors.ts';
import { isDryRun, run, spawnLogged, type RunOptions, type RunResult, type Spawned } from '../../../tools/core/exec.ts';
import { debug, info, warn } from '../../../tools/core/log.ts';
import { LEASE_ID_RE, ownerAlive, readRecords, reapStale, takeLease, type Lease, type LeaseBook } from '../lease.ts';
import { assertLinkSupported, describeLink, mtuArgs, PROBE_NETNS_RE, requireNetnsHost, shapingArgs } from '../links.ts';
import type { LinkProfileName } from '../../results/schema.ts';
import type { RunTestbed } from '../types.ts';
import { cutLink, restoreLink, type EndExec } from '../cut.ts';
import { localThreads } from '../threads.ts';

/** Where owner records live (tmpfs: gone after a reboot, like the namespaces). */
export const OWNER_DIR = '/run/heca/testbeds';
const LEASES: LeaseBook = { dir: OWNER_DIR, kind: 'testbed' };
export const SRC_ADDR = '10.213.0.1';
export const DST_ADDR = '10.213.0.2';
const PREFIX = 30;
/** Namespaces this module creates: heca-<id>-src / heca-<id>-dst. */
export const NETNS_RE = /^heca-([a-z0-9]{1,12})-(src|dst)$/;
/** The veth ends it creates (inside the namespaces, never in the host's): hs<id> / hd<id>. */
export const VETH_RE = /^h[sd][a-z0-9]{1,12}$/;

export interface TestbedNames {
  src: string;
  dst: string;
  /** veth ends: "hs<id>" in src, "hd<id>" in dst (at most 14 characters). */
  srcDev: string;
  dstDev: string;
}

export function testbedNames(id: string): TestbedNames {
  return { src: `heca-${id}-src`, dst: `heca-${id}-dst`, srcDev: `hs${id}`, dstDev: `hd${id}` };
}

/** One end of the testbed: everything run through it runs inside its namespace. */
export interface TestbedHost {
  readonly role: 'src' | 'dst';
  /** The namespace's name (for `ip netns exec`). */
  readonly netns: string;
  /** Its veth end. */
  readonly dev: string;
  /** Its address on the link (no prefix). */
  readonly addr: string;
  /** Run a command to completion inside the namespace (exec.ts `run`). */
  exec(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Start a long-running process inside the namespace, output to `logFile`
   * (exec.ts `spawnLogged`). `ip netns exec` execs the command, so the pid is
   * the command's own. The testbed stops whatever is still running on destroy().
   */
  spawn(cmd: string, args: readonly string[], opts: { logFile: string; cwd?: string; env?: Record<string, string | undefined> }): Spawned;
}

/** Bytes counted on the source's veth end: tx = source → destination, rx = destination → source (L2 frames, no FCS). */
export interface WireBytes {
  tx: number;
  rx: number;
}

export interface Throughput {
  /** Payload bytes the receiver got. */
  bytes: number;
  /** From the receiver's first byte to the sender's end of stream. */
  seconds: number;
  /** TCP goodput (payload), bits/s: about 95 % of the shaped L2 rate with a 1500 MTU. */
  bitPerS: number;
}

/** What a local testbed's owner record names, besides its owner. */
interface LocalHolds {
  netns: string[];
  link: LinkProfileName;
}

class NetnsHost implements TestbedHost {
  constructor(
    readonly role: 'src' | 'dst',
    readonly netns: string,
    readonly dev: string,
    readonly addr: string,
    private readonly live: Set<Spawned>,
  ) {}

  exec(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.netns, cmd, ...args], opts);
  }

  spawn(cmd: string, args: readonly string[], opts: { logFile: string; cwd?: string; env?: Record<string, string | undefined> }): Spawned {
    const s = spawnLogged('ip', ['netns', 'exec', this.netns, cmd, ...args], opts);
    this.live.add(s);
    void s.exited.then(() => this.live.delete(s));
    return s;
  }
}

export class LocalTestbed {
  readonly names: TestbedNames;
  readonly src: TestbedHost;
  readonly dst: TestbedHost;
  private readonly live = new Set<Spawned>();
  private destroying: Promise<void> | undefined;
  private lease: Lease<LocalHolds> | undefined;

  private constructor(
    readonly id: string,
    readonly link: LinkProfileName,
  ) {
    this.names = testbedNames(id);
    this.src = new NetnsHost('src', this.names.src, this.names.srcDev, SRC_ADDR, this.live);
    this.dst = new NetnsHost('dst', this.names.dst, this.names.dstDev, DST_ADDR, this.live);
  }

  /**
   * Set up a testbed: namespaces, veth, addresses, loopbacks up, shaping on
   * both ends. Fails before creating anything when not root, when iproute2
   * is missing, or when this kernel cannot shape `link` (wan without netem).
   * On a failure half-way, what was created is removed again.
   */
  static async create(opts: { link: LinkProfileName; id?: string }): Promise<LocalTestbed> {
    const id = opts.id ?? randomBytes(4).readUInt32BE(0).toString(36);
    if (!LEASE_ID_RE.test(id)) {
      throw new HecaError(`testbed id "${id}" is not valid`, { why: 'it must be 1-12 lowercase letters or digits (it becomes part of 15-character interface names)' });
    }
    const bed = new LocalTestbed(id, opts.link);
    const dry = isDryRun();
    if (!dry) {
      requireNetnsHost('the local testbed');
      await assertLinkSupported(opts.link);
      bed.lease = takeLease<LocalHolds>(LEASES, id, { netns: [bed.names.src, bed.names.dst], link: opts.link }, () => bed.destroy());
    }
    try {
      await bed.setUp();
    } catch (e) {
      await bed.destroy().catch((d: unknown) => warn(`removing the half-made testbed ${id} failed: ${String(d)}`));
      throw e;
    }
    debug(`testbed ${id}: ${bed.names.src} (${SRC_ADDR}) <-> ${bed.names.dst} (${DST_ADDR}), ${describeLink(opts.link)}`);
    return bed;
  }

  private async setUp(): Promise<void> {
    const { src, dst, srcDev, dstDev } = this.names;
    const fix = 'run LocalTestbed.cleanupStale() (bench/run.ts does) and check `ip netns list`';
    await run('ip', ['netns', 'add', src], { fix });
    await run('ip', ['netns', 'add', dst], { fix });
    // Created inside the namespaces directly: nothing is ever left in the host's namespace.
    await run('ip', ['-n', src, 'link', 'add', srcDev, 'type', 'veth', 'peer', 'name', dstDev, 'netns', dst]);
    for (const [ns, dev, addr] of [[src, srcDev, SRC_ADDR], [dst, dstDev, DST_ADDR]] as const) {
      await run('ip', ['-n', ns, 'addr', 'add', `${addr}/${PREFIX}`, 'dev', dev]);
      const mtu = mtuArgs(this.link, dev);
      if (mtu.length) await run('ip', ['-n', ns, ...mtu]);
      // No IPv6 link-local address: no router solicitations etc. in the wire counters.
      await run('ip', ['-n', ns, 'link', 'set', 'dev', dev, 'addrgenmode', 'none', 'up']);
      await run('ip', ['-n', ns, 'link', 'set', 'dev', 'lo', 'up']);
      for (const a of shapingArgs(this.link, dev)) {
        await run('tc', ['-n', ns, ...a], { fix: 'this kernel may lack the qdisc: probeLinkSupport() in bench/testbed/links.ts tells which link profiles work here' });
      }
    }
    if (!isDryRun()) await this.waitUp(5000);
  }

  /** Both veth ends report operstate UP (the carrier comes up asynchronously). */
  private async waitUp(timeoutMs: number): Promise<void> {
    let states: string[] = [];
    await pollUntil(async () => {
      states = await Promise.all([linkJson(this.names.src, this.names.srcDev), linkJson(this.names.dst, this.names.dstDev)].map(async (p) => (await p).operstate ?? '?'));
      return states.every((s) => s === 'UP') ? true : undefined;
    }, {
      timeoutMs,
      everyMs: 50,
      timeout: (ms) => new HecaError(`testbed ${this.id}: the veth did not come up`, { why: `operstate after ${ms} ms: src ${states[0]}, dst ${states[1]}` }),
    });
  }


  /** Counters of the source's veth end; take a delta around what you measure. */
  async wireBytes(): Promise<WireBytes> {
    if (isDryRun()) return { tx: 0, rx: 0 };
    const j = await linkJson(this.names.src, this.names.srcDev);
    const st = j.stats64 ?? j.stats;
    if (!st) throw new HecaError(`no counters for ${this.names.srcDev} in ${this.names.src}`, { why: '`ip -s -j link show` printed no stats64/stats' });
    return { tx: st.tx.bytes, rx: st.rx.bytes };
  }

  /**
   * A bounded TCP transfer of `bytes` from one end to the other (a small node
   * client and server via `ip netns exec`), to check the shaping. Throws if it
   * does not finish within `timeoutMs`.
   */
  async measureThroughput(opts: { bytes: number; from?: 'src' | 'dst'; timeoutMs?: number; port?: number }): Promise<Throughput> {
    if (isDryRun()) return { bytes: 0, seconds: 0, bitPerS: 0 };
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const port = String(opts.port ?? 5201);
    const [send, recv] = opts.from === 'dst' ? [this.dst, this.src] : [this.src, this.dst];
    let listening: () => void = () => {};
    const ready = new Promise<void>((res) => (listening = res));
    const server = recv.exec(process.execPath, ['-e', SERVER_JS, recv.addr, port, String(timeoutMs)], {
      timeoutMs: timeoutMs + 2000,
      allowFail: true,
      onLine: (l) => {
        if (l.trim() === 'listening') listening();
      },
    });
    const started = await Promise.race([ready.then(() => true), server.then(() => false), sleep(Math.min(timeoutMs, 10_000)).then(() => false)]);
    if (!started) {
      const r = await Promise.race([server, sleep(3000).then(() => undefined)]);
      throw new HecaError(`throughput server in ${recv.netns} did not start`, { why: r ? `it exited with ${r.exitCode}` : 'it did not print "listening" in time', details: r ? `${r.stdout}${r.stderr}` : undefined });
    }
    const client = await send.exec(process.execPath, ['-e', CLIENT_JS, recv.addr, port, String(opts.bytes)], { timeoutMs, allowFail: true });
    const r = await server;
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let res: { bytes: number; ns: number } | undefined;
    try {
      res = JSON.parse(line) as { bytes: number; ns: number };
    } catch {
      res = undefined;
    }
    if (r.exitCode !== 0 || client.exitCode !== 0 || !res || res.bytes !== opts.bytes) {
      throw new HecaError(`TCP transfer ${send.role} -> ${recv.role} failed`, {
        why: `server exit ${r.exitCode}, client exit ${client.exitCode}${res ? `, ${res.bytes} of ${opts.bytes} bytes arrived` : ''}`,
        details: `server:\n${r.stdout}${r.stderr}\nclient:\n${client.stdout}${client.stderr}`,
      });
    }
    const seconds = res.ns / 1e9;
    return { bytes: res.bytes, seconds, bitPerS: seconds > 0 ? (res.bytes * 8) / seconds : Infinity };
  }

  /**
   * Stop what was spawned in the namespaces, kill anything else left in them,
   * delete both namespaces (which deletes the veth) and the owner record.
   * Idempotent; concurrent calls share one teardown.
   */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      await Promise.allSettled([...this.live].map((s) => s.stop(3000)));
      const errors: unknown[] = [];
      for (const ns of [this.names.src, this.names.dst]) await removeNetns(ns).catch((e: unknown) => errors.push(e));
      if (errors.length) {
        // Keep the lease: once this process is gone, cleanupStale() retries.
        this.destroying = undefined;
        throw errors[0];
      }
      this.lease?.release();
      debug(`testbed ${this.id}: destroyed`);
    })();
    return this.destroying;
  }

  /**
   * Remove testbeds (and link-probe namespaces) whose owning process is gone:
   * the processes left in their namespaces, the namespaces, the owner records.
   * Testbeds of live processes, including this one, are left alone. Returns
   * the removed testbed ids.
   */
  static async cleanupStale(): Promise<string[]> {
    if (isDryRun()) return [];
    requireNetnsHost('cleaning up stale testbeds');
    const netns = await listNetns();
    const removeOf = async (id: string) => {
      const names = testbedNames(id);
      for (const ns of [names.src, names.dst]) if (netns.includes(ns)) await removeNetns(ns);
    };
    const reaped = await reapStale<LocalHolds>(LEASES, removeOf);
    // Namespaces of ours that no record names (a record lost with /run): stale too.
    const held = readRecords(LEASES);
    const orphans = [...new Set(netns.map((n) => NETNS_RE.exec(n)?.[1]).filter((id): id is string => id !== undefined))]
      .filter((id) => !held.has(id) && !reaped.includes(id));
    for (const id of orphans) await removeOf(id);
    for (const n of netns) {
      const pid = Number(PROBE_NETNS_RE.exec(n)?.[1] ?? NaN);
      if (Number.isInteger(pid) && !ownerAlive({ pid, pid_start: null })) await removeNetns(n);
    }
    const removed = [...reaped, ...orphans].sort();
    if (removed.length) info(`removed ${removed.length} stale testbed(s) of earlier runs: ${removed.join(', ')}`);
    return removed;
  }
}

/* The throughput helpers, run with `node -e SCRIPT ARGS...` (argv[1..]). */
const SERVER_JS = `
const net = require('net');
const [addr, port, ms] = process.argv.slice(1);
const t = setTimeout(() => { console.error('server: no complete transfer within ' + ms + ' ms'); process.exit(3); }, Number(ms));
const srv = net.createServer((s) => {
  let n = 0, t0 = 0n;
  s.on('data', (d) => { if (!t0) t0 = process.hrtime.bigint(); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ bytes: n, ns: Number(process.hrtime.bigint() - t0) })); s.end(); srv.close(); clearTimeout(t); });
  s.on('error', (e) => { console.error('server: ' + e.message); process.exit(2); });
});
srv.on('error', (e) => { console.error('server: ' + e.message); process.exit(2); });
srv.listen(Number(port), addr, () => console.log('listening'));
`;
const CLIENT_JS = `
const net = require('net');
const [addr, port, bytes] = process.argv.slice(1);
let left = Number(bytes);
const buf = Buffer.alloc(1 << 20, 0x5a);
const s = net.connect(Number(port), addr, () => {
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, buf.length);
      left -= n;
      if (!s.write(n === buf.length ? buf : buf.subarray(0, n))) { s.once('drain', pump); return; }
    }
    s.end();
  };
  pump();
});
s.resume();
s.on('error', (e) => { console.error('client: ' + e.message); process.exit(2); });
`;

interface LinkStats {
  rx: { bytes: number };
  tx: { bytes: number };
}
interface LinkJson {
  operstate?: string;
  stats64?: LinkStats;
  stats?: LinkStats;
}

async function linkJson(ns: string, dev: string): Promise<LinkJson> {
  const r = await run('ip', ['-n', ns, '-s', '-j', 'link', 'show', 'dev', dev], { probe: true });
  const arr = JSON.parse(r.stdout) as LinkJson[];
  const j = arr[0];
  if (!j) throw new HecaError(`no link ${dev} in ${ns}`, { why: '`ip link show` printed nothing for it' });
  return j;
}

async function listNetns(): Promise<string[]> {
  const out = (await run('ip', ['-j', 'netns', 'list'], { probe: true })).stdout.trim();
  if (!out) return [];
  return (JSON.parse(out) as { name: string }[]).map((n) => n.name);
}

/** SIGTERM what runs in `ns`, SIGKILL what is still there after 3 s, then delete the namespace. */
async function removeNetns(ns: string): Promise<void> {
  if (!isDryRun()) {
    const exists = (await listNetns()).includes(ns);
    if (!exists) return;
    const pids = async () =>
      (await run('ip', ['netns', 'pids', ns], { probe: true, allowFail: true })).stdout
        .split('\n')
        .map(Number)
        .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
    let left = await pids();
    if (left.length) {
      warn(`stopping ${left.length} process(es) still in ${ns}: ${left.join(' ')}`);
      for (const p of left) signal(p, 'SIGTERM');
      const end = Date.now() + 3000;
      while ((left = await pids()).length && Date.now() < end) await sleep(100);
      for (const p of left) signal(p, 'SIGKILL');
    }
  }
  await run('ip', ['netns', 'del', ns], { fix: `remove it by hand: ip netns del ${ns}` });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** A fresh local testbed shaped to `link`, as the engine's view of one run (destroyed with it). */
export async function localRunTestbed(link: LinkProfileName): Promise<RunTestbed> {
  const bed = await LocalTestbed.create({ link });
  const ends = { src: { dev: bed.src.dev, addr: bed.src.addr }, dst: { dev: bed.dst.dev, addr: bed.dst.addr } };
  const exec: EndExec = (on, [cmd, ...args]) => (on === 'src' ? bed.src : bed.dst).exec(cmd!, args, { allowFail: true, timeoutMs: 10_000 });
  return {
    kind: 'local',
    srcAddr: bed.src.addr,
    dstAddr: bed.dst.addr,
    spawn: (role) => (c, a, log) => (role === 'src' ? bed.src : bed.dst).spawn(c, a, { logFile: log }),
    vmExtra: () => ({}),
    threads: (_role, pid) => localThreads(pid),
    wireBytes: () => bed.wireBytes(),
    cutLink: () => cutLink(exec, ends),
    restoreLink: () => restoreLink(exec, ends),
    destroy: () => bed.destroy(),
  };
}
