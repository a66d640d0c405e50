/**
 * Link profiles for the local testbed: what the veth between the source and
 * the destination namespace is shaped to, and whether this kernel can do it.
 *
 * Shaping is applied on each end's egress, so both directions are limited:
 *   - rate only (lan1g, lan10g): tbf
 *   - rate + delay (wan): netem (delay half the RTT on each end, with netem's
 *     own rate), which some kernels lack: probeLinkSupport() says so up front.
 */
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { UsageError } from '../../tools/core/cli.ts';
import { HecaError } from '../../tools/core/errors.ts';
import { run } from '../../tools/core/exec.ts';
import { debug } from '../../tools/core/log.ts';
import type { LinkProfileName } from '../results/schema.ts';

export interface LinkProfile {
  name: LinkProfileName;
  /** One line for listings and result.json's link_desc. */
  description: string;
  /** Bits per second on each direction, or null for an unshaped veth. */
  rateBitPerS: number | null;
  /** Round-trip delay added (half on each end's egress), ms; 0 for none. */
  rttMs: number;
  /** The qdisc kind the shaping needs, or null. */
  qdisc: 'tbf' | 'netem' | null;
  /** The link's MTU on both ends (Ethernet payload bytes). */
  mtu: number;
}

export const LINK_PROFILES: Readonly<Record<LinkProfileName, LinkProfile>> = {
  lan1g: { name: 'lan1g', description: '1 Gbit/s each way, no added delay (tbf)', rateBitPerS: 1e9, rttMs: 0, qdisc: 'tbf', mtu: 1500 },
  lan10g: { name: 'lan10g', description: '10 Gbit/s each way, no added delay (tbf)', rateBitPerS: 1e10, rttMs: 0, qdisc: 'tbf', mtu: 1500 },
  wan: { name: 'wan', description: '100 Mbit/s each way, 20 ms RTT (netem)', rateBitPerS: 1e8, rttMs: 20, qdisc: 'netem', mtu: 1500 },
  unlimited: { name: 'unlimited', description: 'unshaped veth: as fast as the host moves bytes', rateBitPerS: null, rttMs: 0, qdisc: null, mtu: 1500 },
  // RoCE fabrics run jumbo frames: a RoCE MTU of 4096 needs an Ethernet MTU above 4096 + 58 bytes of headers.
  jumbo: { name: 'jumbo', description: 'unshaped, jumbo frames: MTU 9000 on both ends (RoCE MTU 4096 instead of 1024)', rateBitPerS: null, rttMs: 0, qdisc: null, mtu: 9000 },
};

export const LINK_NAMES = Object.keys(LINK_PROFILES) as LinkProfileName[];

function isLinkName(s: string): s is LinkProfileName {
  return Object.hasOwn(LINK_PROFILES, s);
}

/** A --link value to a profile name; an unknown name is a usage error listing the valid ones. */
export function parseLink(name: string): LinkProfileName {
  const n = name.trim().toLowerCase();
  if (isLinkName(n)) return n;
  throw new UsageError(`unknown link profile "${name}"`, {
    why: `the link profiles are: ${LINK_NAMES.map((l) => `${l} (${LINK_PROFILES[l].description})`).join(', ')}`,
    fix: `use --link ${LINK_NAMES.join('|')}`,
  });
}

export function linkProfile(name: LinkProfileName): LinkProfile {
  return LINK_PROFILES[name];
}

export function describeLink(name: LinkProfileName): string {
  return `${name}: ${LINK_PROFILES[name].description}`;
}

/** The `ip` arguments that give `dev` the profile's MTU; empty for the default 1500. */
export function mtuArgs(name: LinkProfileName, dev: string): string[] {
  const mtu = LINK_PROFILES[name].mtu;
  return mtu === 1500 ? [] : ['link', 'set', 'dev', dev, 'mtu', String(mtu)];
}

/** Queue a shaper may hold before dropping, as time at the shaped rate. TCP small queues keep it far shorter in practice. */
const QUEUE_MS = 10;

/** tbf's bucket: 2 ms at the rate (enough for hrtimer slack at 10 Gbit/s), at least 32 KiB. */
export function tbfBurstBytes(rateBitPerS: number): number {
  return Math.max(32 * 1024, Math.ceil((rateBitPerS / 8) * 0.002));
}

/**
 * The tc arguments (without `-n NETNS`) that shape `dev`'s egress for a
 * profile; empty for an unshaped link. Applied to both ends of the veth.
 */
export function shapingArgs(name: LinkProfileName, dev: string): string[][] {
  const p = LINK_PROFILES[name];
  if (p.qdisc === null || p.rateBitPerS === null) return [];
  const rate = `${p.rateBitPerS}bit`;
  if (p.qdisc === 'tbf') {
    return [['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', String(tbfBurstBytes(p.rateBitPerS)), 'latency', `${QUEUE_MS}ms`]];
  }
  // netem: half the RTT on each end; the queue must hold what is in flight
  // (rate × delay) plus the shaping queue, in packets (GSO packets count once).
  const oneWayMs = p.rttMs / 2;
  const limitPackets = Math.max(1000, Math.ceil(((p.rateBitPerS / 8) * (oneWayMs + QUEUE_MS)) / 1000 / 1500) * 4);
  return [['qdisc', 'replace', 'dev', dev, 'root', 'netem', 'delay', `${oneWayMs}ms`, 'rate', rate, 'limit', String(limitPackets)]];
}

export interface LinkSupport {
  ok: boolean;
  /** Why not, when !ok (tc's own message included). */
  why?: string;
}

let supportCache: Promise<Record<LinkProfileName, LinkSupport>> | undefined;

/**
 * Which profiles this kernel can shape, found by adding each needed qdisc to
 * the loopback of a throwaway namespace (`heca-probe-<pid>`). Needs root. The
 * answer is cached for the process.
 */
export function probeLinkSupport(): Promise<Record<LinkProfileName, LinkSupport>> {
  supportCache ??= probeOnce().catch((e: unknown) => {
    supportCache = undefined;
    throw e;
  });
  return supportCache;
}

/**
 * Namespace name for the support probe. It lives for milliseconds, so its
 * owner is in the name: LocalTestbed.cleanupStale() removes one whose pid is gone.
 */
export const PROBE_NETNS_RE = /^heca-probe-(\d+)$/;
export function probeNetnsName(pid = process.pid): string {
  return `heca-probe-${pid}`;
}

async function probeOnce(): Promise<Record<LinkProfileName, LinkSupport>> {
  requireNetnsHost('probing the link profiles');
  const ns = probeNetnsName();
  await run('ip', ['netns', 'del', ns], { probe: true, allowFail: true });
  const kinds: Record<'tbf' | 'netem', LinkSupport> = { tbf: { ok: false }, netem: { ok: false } };
  try {
    await run('ip', ['netns', 'add', ns], { probe: true, fix: 'run as root on a host with network namespace support' });
    const tries: Record<'tbf' | 'netem', string[]> = {
      tbf: ['tbf', 'rate', '1gbit', 'burst', '32768', 'latency', '10ms'],
      netem: ['netem', 'delay', '1ms'],
    };
    for (const k of ['tbf', 'netem'] as const) {
      const r = await run('tc', ['-n', ns, 'qdisc', 'replace', 'dev', 'lo', 'root', ...tries[k]], { probe: true, allowFail: true });
      const msg = `${r.stderr}${r.stdout}`.trim();
      debug(`qdisc ${k}: ${r.exitCode === 0 ? 'works' : msg}`);
      kinds[k] =
        r.exitCode === 0
          ? { ok: true }
          : { ok: false, why: `tc could not add a ${k} qdisc: "${msg || `exit ${r.exitCode}`}"` };
    }
  } finally {
    await run('ip', ['netns', 'del', ns], { probe: true, allowFail: true });
  }
  const out = {} as Record<LinkProfileName, LinkSupport>;
  for (const name of LINK_NAMES) {
    const q = LINK_PROFILES[name].qdisc;
    out[name] = q === null ? { ok: true } : kinds[q];
  }
  return out;
}

/** Throws a HecaError, before anything is set up, when this kernel cannot shape `name`. */
export async function assertLinkSupported(name: LinkProfileName): Promise<void> {
  const s = (await probeLinkSupport())[name];
  if (s.ok) return;
  const p = LINK_PROFILES[name];
  const usable = LINK_NAMES.filter((n) => n !== name && LINK_PROFILES[n].qdisc !== p.qdisc);
  const kind = String(p.qdisc);
  const cfg = `CONFIG_NET_SCH_${kind.toUpperCase()}`;
  throw new HecaError(`link profile ${name} (${p.description}) cannot be set up on this host`, {
    why: `it needs the ${kind} qdisc, which this kernel (${release()}) does not have: it was built without ${cfg} or cannot load sch_${kind}; ${s.why ?? 'tc refused it'}`,
    fix: `use --link ${usable.join('|')} on this host, or run on a host whose kernel has sch_${kind} (${cfg}=y/m; modprobe sch_${kind})`,
  });
}

/** Whether an executable named `cmd` is on PATH (where exec.ts will look for it). */
export function onPath(cmd: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).filter(Boolean).some((d) => existsSync(join(d, cmd)));
}

/**
 * What namespaces, veth and tc need of the host: root, and iproute2's `ip`
 * and `tc`. Throws a HecaError naming the fix.
 */
export function requireNetnsHost(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new HecaError(`${what} needs root`, {
      why: 'the local testbed creates network namespaces, a veth pair and tc shaping, which needs CAP_NET_ADMIN and CAP_SYS_ADMIN',
      fix: 'run it as root (sudo -E npx tsx ...)',
    });
  }
  const missing = ['ip', 'tc'].filter((c) => !onPath(c));
  if (missing.length) {
    throw new HecaError(`${what} needs ${missing.join(' and ')} (iproute2)`, {
      why: `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not on PATH (${process.env.PATH ?? 'unset'})`,
      fix: 'run tools/setup-host.sh as root (it installs iproute2), or apt-get install iproute2',
    });
  }
}
