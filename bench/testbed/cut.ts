/**
 * A cut fault on a testbed's link: the link down on both ends and every TCP
 * connection over it reset, as when a switch port dies and the hosts notice;
 * then the link back up. The commands, as data (each testbed runs them its
 * way: `ip netns exec` on the local testbed, the agent in the L1 hosts):
 *
 *   local   ss -K (sock_diag destroy, in this machine's kernel) kills the
 *           connections to the peer on each end, then the veth ends go down;
 *   nested  the same in each L1 host (its kernel has INET_DIAG_DESTROY,
 *           kernel-patches/config/heca.config), then link0 down on both.
 * ss -K aborts a socket at once, whether or not anyone sends on it: an idle
 * connection (rdma pull's migration channel after the switch, say) dies with
 * the others, and both sides see it and pause. (The nested testbed used to
 * REJECT the destination's outgoing packets with iptables instead, which
 * killed only connections that carried traffic.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HecaError } from '../../tools/core/errors.ts';
import { pollUntil } from '../../tools/core/poll.ts';

/** One command on one end: `on` is the role of the host that runs it. */
export interface CutCommand {
  on: 'src' | 'dst';
  argv: string[];
}

/** Commands that cut: resets first (they need the link up), then the link down. */
export function cutCommands(ends: { src: { dev: string; addr: string }; dst: { dev: string; addr: string } }): { reset: CutCommand[]; down: CutCommand[] } {
  const down: CutCommand[] = (['src', 'dst'] as const).map((on) => ({ on, argv: ['ip', 'link', 'set', 'dev', ends[on].dev, 'down'] }));
  return {
    reset: [
      { on: 'src', argv: ['ss', '-K', 'dst', ends.dst.addr] },
      { on: 'dst', argv: ['ss', '-K', 'dst', ends.src.addr] },
    ],
    down,
  };
}

/** Commands that restore the link. */
export function restoreCommands(ends: { src: { dev: string }; dst: { dev: string } }): CutCommand[] {
  return (['src', 'dst'] as const).map((on) => ({ on, argv: ['ip', 'link', 'set', 'dev', ends[on].dev, 'up'] }));
}

/** The peer's address in TCP connections still established, from `ss -Htn state established` output. */
export function establishedTo(ssOut: string, peer: string): number {
  return ssOut.split('\n').filter((l) => l.includes(`${peer}:`)).length;
}

/** Runs a command on one end to completion: its output and exit status. */
export type EndExec = (on: 'src' | 'dst', argv: string[]) => Promise<{ stdout: string; stderr: string; exitCode: number }>;

type Ends = { src: { dev: string; addr: string }; dst: { dev: string; addr: string } };

async function must(exec: EndExec, c: CutCommand): Promise<string> {
  const r = await exec(c.on, c.argv);
  if (r.exitCode !== 0) {
    throw new HecaError(`cutting the link: \`${c.argv.join(' ')}\` failed on the ${c.on === 'src' ? 'source' : 'destination'} host`, {
      why: (r.stderr || r.stdout).trim() || `exit status ${r.exitCode}`,
      fix: c.argv[0] === 'ss' ? 'ss -K needs a kernel with CONFIG_INET_DIAG_DESTROY (the L1 hosts\' kernel: kernel-patches/config/heca.config; rebuild it: make build-kernel) and iproute2\'s ss' : 'see the testbed\'s logs',
    });
  }
  return r.stdout;
}

/** What a cut did: connections still established when it stopped waiting for the resets (0 normally), when the link was down on both ends (Date.now()). */
export interface CutDone {
  left: number;
  downAt: number;
}

/**
 * Cut: the resets, a bounded wait until neither end has a connection to the
 * other established, then the link down on both ends.
 */
export async function cutLink(exec: EndExec, ends: Ends, settleMs = 2000): Promise<CutDone> {
  const { reset, down } = cutCommands(ends);
  for (const c of reset) await must(exec, c);
  const left = async () => {
    let n = 0;
    for (const on of ['src', 'dst'] as const) n += establishedTo(await must(exec, { on, argv: ['ss', '-Htn', 'state', 'established'] }), ends[on === 'src' ? 'dst' : 'src'].addr);
    return n;
  };
  const until = Date.now() + settleMs;
  let n = await left();
  while (n > 0 && Date.now() < until) {
    await sleep(50);
    n = await left();
  }
  for (const c of down) await must(exec, c);
  return { left: n, downAt: Date.now() };
}

/** Restore: link up on both ends, and wait until both report operstate UP. */
export async function restoreLink(exec: EndExec, ends: Ends, timeoutMs = 10_000): Promise<void> {
  for (const c of restoreCommands(ends)) await must(exec, c);
  let states: string[] = [];
  await pollUntil(async () => {
    states = [];
    for (const on of ['src', 'dst'] as const) states.push((await must(exec, { on, argv: ['cat', `/sys/class/net/${ends[on].dev}/operstate`] })).trim());
    return states.every((s) => s === 'up') ? true : undefined;
  }, {
    timeoutMs,
    everyMs: 50,
    timeout: (ms) => new HecaError('the cut link did not come back', { why: `operstate after ${ms} ms: source ${states[0]}, destination ${states[1]}` }),
  });
}
