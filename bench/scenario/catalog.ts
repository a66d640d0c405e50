/**
 * Migration scenarios. A scenario is data: a switchover policy (policy.ts
 * turns it into what the engine does), a transport and the faults injected;
 * its id is derived from every one of them, so two runs with the same id are
 * the same experiment. (The workload is the invocation's, recorded next to
 * each scenario in the result.) Dimensions at their defaults (TCP, no fault)
 * add nothing to the id, so the ids of earlier results stay valid.
 *
 * Upstream QEMU's modes, driven from the management side (QMP):
 *   precopy        pre-copy only, bounded by a convergence timeout ("not converged" is a result)
 *   postcopy       migrate-start-postcopy right after migrate
 *   mgmt-hybridT   pre-copy for T s, then the management side calls migrate-start-postcopy
 * heca's modes, decided inside QEMU (qemu-patches: postcopy-switchover):
 *   full           postcopy-switchover=immediate: no pre-copy pass at all
 *   hybridT        postcopy-switchover=deadline, postcopy-deadline=T s, and
 *                  postcopy-on-convergence=true: a pre-copy that converges earlier
 *                  switches through post-copy, never stop-and-copy
 *
 * Each policy with post-copy runs over each transport (how post-copy's pages
 * travel): tcp (the migration channel), preempt (upstream's postcopy-preempt:
 * requested pages on a second channel; `postcopy-preempt` is the upstream
 * baseline), rdma (heca's postcopy-rdma-pull: the destination reads the
 * pages with RDMA READ) and rdma-kernel (the same, but the destination
 * kernel's userfaultfd RDMA resolver reads and installs the pages the guest
 * faults on, without waking QEMU: heca's kernel-patches). The catalog holds every valid crossing, named
 * POLICY-TRANSPORT (the policy's name alone for tcp): `full-rdma`. Faults
 * (faults.ts) are the invocation's (--fault) and add `-KIND` to the names.
 */
import { UsageError } from '../../tools/core/cli.ts';
import { HecaError } from '../../tools/core/errors.ts';
import type { FaultSpec, ScenarioParams, Transport } from '../results/schema.ts';
import { faultText } from './faults.ts';

export const TRANSPORTS: readonly Transport[] = ['tcp', 'preempt', 'rdma', 'rdma-kernel'];

/** The transports whose pages travel by RDMA READ: they need the nested testbed's rxe0. */
export function overRdma(t: Transport | undefined): boolean {
  return t === 'rdma' || t === 'rdma-kernel';
}

export interface ScenarioSpec {
  mode: ScenarioParams['mode'];
  /** postcopy/hybrid: who decides the switch (default mgmt). */
  switchover?: ScenarioParams['switchover'];
  switch_after_s?: number;
  /** postcopy/hybrid: a converged pre-copy switches through post-copy (heca; default false). */
  postcopy_on_convergence?: boolean;
  converge_timeout_s: number;
  /** How post-copy's pages travel (default tcp). */
  transport?: Transport;
  /** Faults injected during the run (default none). */
  faults?: FaultSpec[];
  /** QEMU -global DRIVER.PROPERTY=VALUE for both QEMUs (variants.ts; default none). */
  qemu_globals?: string[];
}

/** The policy part of the id. */
function policyId(s: ScenarioSpec): string {
  // It changes the experiment, so it is part of the id; absent, the ids stay as they were.
  const onConvergence = s.postcopy_on_convergence ? '-on-convergence' : '';
  switch (s.mode) {
    case 'precopy':
      return `precopy-timeout${s.converge_timeout_s}s`;
    case 'postcopy':
      return (s.switchover === 'qemu' ? 'postcopy-qemu-immediate' : 'postcopy-immediate') + onConvergence;
    case 'hybrid':
      return (s.switchover === 'qemu' ? `hybrid-qemu-deadline${s.switch_after_s}s` : `hybrid-mgmt-switch${s.switch_after_s}s`) + onConvergence;
  }
}

/** The id's part for QEMU globals: `-global-migration.x-foo=1`, in a fixed order. */
export function globalsId(globals: readonly string[] | undefined): string {
  return [...(globals ?? [])].sort().map((g) => `-global-${g}`).join('');
}

/** The id from every dimension: policy, then the transport unless TCP, then each fault, then QEMU globals. */
export function scenarioId(s: ScenarioSpec): string {
  const transport = s.transport && s.transport !== 'tcp' ? `-${s.transport}` : '';
  const faults = (s.faults ?? []).map((f) => `-fault-${faultText(f)}`).join('');
  return `${policyId(s)}${transport}${faults}${globalsId(s.qemu_globals)}`;
}

/** What a pre-copy phase that converges ends in, for the report. */
export function convergenceEnd(s: ScenarioSpec): string {
  if (s.mode === 'postcopy') return '– (post-copy from the start)';
  return s.mode === 'hybrid' && s.postcopy_on_convergence ? 'switch through post-copy (postcopy-on-convergence)' : 'stop-and-copy';
}

function make(name: string, spec: ScenarioSpec, description: string): ScenarioParams {
  const full = { transport: 'tcp' as const, faults: [], ...spec };
  return { name, id: scenarioId(full), ...full, description };
}

const TRANSPORT_TEXT: Record<Transport, string> = {
  tcp: '',
  preempt: '; over TCP with upstream postcopy-preempt (requested pages on a second channel)',
  rdma: "; post-copy pages pulled by the destination with RDMA READ (heca's postcopy-rdma-pull)",
  'rdma-kernel': "; post-copy pages pulled with RDMA READ, the faulting ones by the destination kernel's userfaultfd resolver (heca's postcopy-rdma-engine=kernel)",
};

/** Why `transport` does not go with this policy, or undefined when it does. */
export function transportMismatch(policy: Pick<ScenarioParams, 'mode' | 'name'>, transport: Transport): string | undefined {
  if (transport !== 'tcp' && policy.mode === 'precopy') return `${policy.name} has no post-copy phase, and ${transport} only changes how post-copy's pages travel`;
  return undefined;
}

/** A policy over a transport: named POLICY-TRANSPORT (POLICY for tcp), its id derived again. */
export function withTransport(policy: ScenarioParams, transport: Transport): ScenarioParams {
  if (transport === 'tcp') return policy;
  const spec = { ...policy, transport };
  return { ...spec, name: `${policy.name}-${transport}`, id: scenarioId(spec), description: `${policy.description}${TRANSPORT_TEXT[transport]}` };
}

/** A scenario with faults injected: named NAME-KIND..., its id derived again. */
export function withFaults(sc: ScenarioParams, faults: readonly FaultSpec[]): ScenarioParams {
  if (faults.length === 0) return sc;
  const spec = { ...sc, faults: [...(sc.faults ?? []), ...faults] };
  return { ...spec, name: `${sc.name}${faults.map((f) => `-${f.kind}`).join('')}`, id: scenarioId(spec), description: `${sc.description}; faults: ${faults.map(faultText).join(', ')}` };
}

/** The switchover policies, over TCP: what `make bench` compares by default. */
export const POLICIES: readonly ScenarioParams[] = [
  make('precopy', { mode: 'precopy', converge_timeout_s: 120 }, 'upstream pre-copy; cancelled as "not converged" after 120 s'),
  make('postcopy', { mode: 'postcopy', converge_timeout_s: 0 }, 'upstream post-copy: migrate-start-postcopy right after migrate'),
  make('full', { mode: 'postcopy', switchover: 'qemu', converge_timeout_s: 0 }, 'heca full post-copy: QEMU switches right after setup (postcopy-switchover=immediate)'),
  make('hybrid10', { mode: 'hybrid', switchover: 'qemu', switch_after_s: 10, postcopy_on_convergence: true, converge_timeout_s: 0 }, 'heca hybrid: QEMU switches after 10 s of pre-copy, or through post-copy as soon as pre-copy converges, never stop-and-copy (postcopy-switchover=deadline, postcopy-on-convergence)'),
  make('hybrid60', { mode: 'hybrid', switchover: 'qemu', switch_after_s: 60, postcopy_on_convergence: true, converge_timeout_s: 0 }, 'heca hybrid: QEMU switches after 60 s of pre-copy, or through post-copy as soon as pre-copy converges, never stop-and-copy (postcopy-switchover=deadline, postcopy-on-convergence)'),
  make('mgmt-hybrid10', { mode: 'hybrid', switch_after_s: 10, converge_timeout_s: 0 }, 'pre-copy for 10 s, then the management side calls migrate-start-postcopy'),
  make('mgmt-hybrid60', { mode: 'hybrid', switch_after_s: 60, converge_timeout_s: 0 }, 'pre-copy for 60 s, then the management side calls migrate-start-postcopy'),
];

/** Every policy over every transport it goes with: tcp first (the policies), then preempt, rdma, rdma-kernel. */
export const SCENARIOS: readonly ScenarioParams[] = TRANSPORTS.flatMap((t) => POLICIES.filter((p) => !transportMismatch(p, t)).map((p) => withTransport(p, t)));

/** The default comparison of `make bench`: the policies over TCP, pre-copy first (the baseline). */
export const DEFAULT_SCENARIOS = POLICIES.map((s) => s.name);

/**
 * What `make nightly` runs: every scenario of the catalog, so every switchover
 * policy × transport (× faults) it defines; a scenario added here, a new
 * transport's included, joins the nightly without a change elsewhere.
 */
export function nightlyScenarios(catalog: readonly ScenarioParams[] = SCENARIOS): string[] {
  return catalog.map((s) => s.name);
}

export function listScenarios(): string {
  const w = Math.max(...SCENARIOS.map((s) => s.name.length));
  const wid = Math.max(...SCENARIOS.map((s) => s.id.length));
  return SCENARIOS.map((s) => `  ${s.name.padEnd(w)}  ${s.id.padEnd(wid)}  ${s.description}`).join('\n');
}

/** Resolve a comma-separated list of scenario names; unknown names list what exists. */
export function parseScenarios(arg: string, precopyTimeoutS?: number): ScenarioParams[] {
  const names = arg.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new HecaError('no scenario given', { why: '--scenario needs at least one name', fix: `the scenarios are:\n${listScenarios()}` });
  const seen = new Set<string>();
  return names.map((n) => {
    const s = n === 'all' ? undefined : SCENARIOS.find((x) => x.name === n);
    if (!s) throw new HecaError(`unknown scenario "${n}"`, { why: 'it is not one of the defined scenarios', fix: `use one of these (comma-separated for several):\n${listScenarios()}` });
    if (seen.has(n)) throw new HecaError(`scenario "${n}" given twice`, { why: 'each scenario runs once per repeat', fix: 'use --repeat N for repeats' });
    seen.add(n);
    if (s.mode === 'precopy' && precopyTimeoutS !== undefined) {
      const spec = { ...s, converge_timeout_s: precopyTimeoutS };
      return { ...spec, id: scenarioId(spec), description: `upstream pre-copy; cancelled as "not converged" after ${precopyTimeoutS} s` };
    }
    return s;
  });
}
