/** Small helpers shared by the test suites. */
import * as assert from 'uvu/assert';
import { HecaError } from '../tools/core/errors.ts';
import { probe } from '../tools/core/exec.ts';
import { NETNS_RE, OWNER_DIR, VETH_RE } from '../bench/testbed/local/testbed.ts';
import { ownerAlive, readRecords } from '../bench/testbed/lease.ts';

/** The HecaError that `fn` throws; fails the test if it throws nothing or something else. */
export function errorOf(fn: () => unknown): HecaError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, HecaError);
    return e as HecaError;
  }
  throw new Error('no error thrown');
}

/** The HecaError that `p` rejects with; fails the test if it resolves or rejects with something else. */
export async function rejectionOf(p: Promise<unknown>): Promise<HecaError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, HecaError);
    return e as HecaError;
  }
  throw new Error('no rejection');
}

/**
 * What local testbeds of this test left behind: owner records not released,
 * heca-<id>-src|dst namespaces, hs<id>/hd<id> veth ends in the host's
 * namespace, QEMUs run with -name heca-*. Testbeds whose owner is a live
 * process other than this one and `mine` (another user's bench running on
 * the same machine) are not ours and are left out; those of dead owners are
 * leftovers, whoever they were.
 */
export async function leftovers(mine: number[] = []): Promise<string[]> {
  const ours = new Set([process.pid, ...mine]);
  const others = new Set<string>();
  const found: string[] = [];
  for (const [id, rec] of readRecords<{ netns?: string[] }>({ dir: OWNER_DIR, kind: 'testbed' })) {
    if (rec && !ours.has(rec.pid) && ownerAlive(rec)) for (const n of rec.netns ?? []) others.add(n);
    else found.push(`owner record ${OWNER_DIR}/${id}.json (pid ${rec?.pid ?? '?'})`);
  }
  const netns = JSON.parse((await probe('ip', ['-j', 'netns', 'list'])) || '[]') as { name: string }[];
  found.push(...netns.map((n) => n.name).filter((n) => NETNS_RE.test(n) && !others.has(n)).map((n) => `netns ${n}`));
  const links = JSON.parse(await probe('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  found.push(...links.map((l) => l.ifname).filter((n) => VETH_RE.test(n)).map((n) => `veth ${n} in the host's namespace`));
  for (const line of (await probe('ps', ['-eo', 'pid=,args='])).split('\n')) {
    const [pid, ...args] = line.trim().split(/\s+/);
    if (!args.some((a) => a.includes('qemu-system')) || !args.join(' ').includes('-name heca-')) continue;
    const ns = await probe('ip', ['netns', 'identify', pid!], { allowFail: true });
    if (!others.has(ns)) found.push(`QEMU ${pid}${ns ? ` in ${ns}` : ''}: ${args.join(' ').slice(0, 80)}`);
  }
  return found;
}
