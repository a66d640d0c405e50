/**
 * What one invocation runs: the scenarios named by --scenario, crossed with
 * the transports of --transport and with the faults of --fault, and refused
 * up front, saying why, when the testbed cannot run one of them.
 *
 *   --scenario full,hybrid10 --transport tcp,rdma
 *     → full, full-rdma, hybrid10, hybrid10-rdma   (policy by policy)
 *   --fault cut@postcopy+2s:3s
 *     → full-cut, full-rdma-cut, ...               (ids: ...-fault-cut@postcopy+2s:3s)
 *   --variant nocap:migration.x-postcopy-rdma-bg-cap=off
 *     → full-rdma, full-rdma+nocap, ...            (ids: ...-global-migration.x-postcopy-rdma-bg-cap=off)
 */
import { UsageError } from '../../tools/core/cli.ts';
import { HecaError } from '../../tools/core/errors.ts';
import type { FaultSpec, ScenarioParams, Transport } from '../results/schema.ts';
import { overRdma, parseScenarios, TRANSPORTS, transportMismatch, withFaults, withTransport } from './catalog.ts';
import { crossVariants, type Variant } from './variants.ts';

/** `tcp,rdma` → the transports, each once; unknown ones list those that exist. */
export function parseTransports(arg: string): Transport[] {
  const names = arg.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError('no transport given', { why: '--transport needs at least one', fix: `use ${TRANSPORTS.join(', ')} (comma-separated for several)` });
  const out: Transport[] = [];
  for (const n of names) {
    const t = TRANSPORTS.find((x) => x === n);
    if (!t) throw new UsageError(`unknown transport "${n}"`, { why: `the transports are: ${TRANSPORTS.join(', ')}`, fix: '--transport tcp,rdma' });
    if (out.includes(t)) throw new UsageError(`transport "${n}" given twice`, { why: 'each scenario runs once per transport', fix: 'name it once' });
    out.push(t);
  }
  return out;
}

export interface Selection {
  scenarios: ScenarioParams[];
  /** Crossings left out, and why (pre-copy over rdma): said once, not an error. */
  skipped: string[];
}

/**
 * The scenarios of --scenario (names of the catalog), each over each of
 * `transports` when given (then the names must be policies: `full`, not
 * `full-rdma`), each with `faults` injected, each as it is and then with
 * each of `variants` (QEMU globals).
 */
export function selectScenarios(arg: string, o: { transports?: Transport[]; faults?: FaultSpec[]; variants?: Variant[]; precopyTimeoutS?: number } = {}): Selection {
  const named = parseScenarios(arg, o.precopyTimeoutS);
  const skipped: string[] = [];
  let crossed = named;
  if (o.transports) {
    crossed = named.flatMap((p) => {
      if ((p.transport ?? 'tcp') !== 'tcp') {
        throw new UsageError(`scenario "${p.name}" already names its transport (${p.transport})`, { why: '--transport crosses policies with transports', fix: `give the policy: --scenario ${p.name.slice(0, -`-${p.transport}`.length)} --transport ${o.transports!.join(',')}` });
      }
      const ok = o.transports!.filter((t) => {
        const why = transportMismatch(p, t);
        if (why) skipped.push(`${p.name} over ${t}: ${why}`);
        return !why;
      });
      if (ok.length === 0) {
        throw new UsageError(`scenario "${p.name}" runs over none of --transport ${o.transports!.join(',')}`, { why: skipped.at(-1) ?? '', fix: 'add tcp to --transport, or drop the scenario' });
      }
      return ok.map((t) => withTransport(p, t));
    });
  }
  const faults = o.faults ?? [];
  for (const s of crossed) {
    const needsPostcopy = faults.find((f) => f.after === 'postcopy');
    if (needsPostcopy && s.mode === 'precopy') {
      throw new UsageError(`the fault ${needsPostcopy.kind}@postcopy cannot be injected into scenario "${s.name}"`, { why: 'pre-copy never starts post-copy, so the fault would never be due', fix: 'drop the scenario, or time the fault from the migrate command (cut@migrate+Ns:Ds)' });
    }
  }
  return { scenarios: crossVariants(crossed.map((s) => withFaults(s, faults)), o.variants ?? []), skipped };
}

/** Why this testbed cannot run the transport, or undefined when it can. */
export function transportUnsupported(transport: Transport, testbed: 'local' | 'nested'): string | undefined {
  if (overRdma(transport) && testbed !== 'nested') {
    const kernel = transport === 'rdma-kernel' ? ', and only they boot the heca kernel whose userfaultfd RDMA resolver rdma-kernel uses' : '';
    return `the ${transport} transport needs --testbed nested: this machine (L0) has no RDMA device and its kernel cannot load rdma_rxe; only the nested testbed's L1 hosts have Soft-RoCE (rxe0)${kernel}`;
  }
  return undefined;
}

/** Refuse, before anything starts, scenarios the testbed cannot run; names them and says why. */
export function refuseOnTestbed(scenarios: readonly ScenarioParams[], testbed: 'local' | 'nested'): void {
  const bad = scenarios.map((s) => ({ s, why: transportUnsupported(s.transport ?? 'tcp', testbed) })).filter((x) => x.why);
  if (bad.length === 0) return;
  throw new UsageError(`scenario${bad.length > 1 ? 's' : ''} ${bad.map((x) => x.s.name).join(', ')} cannot run on the ${testbed} testbed`, {
    why: bad[0]!.why!,
    fix: `run them with --testbed nested, or drop ${bad.map((x) => x.s.name).join(', ')}`,
  });
}

/** Refuse rdma scenarios when a host's rxe0 is not ACTIVE (the nested testbed's facts), naming the host and its state. */
export function refuseWithoutRxe(scenarios: readonly ScenarioParams[], hosts: readonly { name: string; rxe_state: string }[]): void {
  const rdma = scenarios.filter((s) => overRdma(s.transport));
  const down = hosts.filter((h) => h.rxe_state !== 'ACTIVE');
  if (rdma.length === 0 || down.length === 0) return;
  throw new HecaError(`scenario${rdma.length > 1 ? 's' : ''} ${rdma.map((s) => s.name).join(', ')} need Soft-RoCE in both L1 hosts`, {
    why: down.map((h) => `${h.name}: rxe0 ${h.rxe_state}`).join('; '),
    fix: 'see the hosts\' consoles in OUT/nested/; the L1 kernel needs CONFIG_RDMA_RXE',
  });
}
