/**
 * --accel auto|kvm|tcg. `auto` never trusts "/dev/kvm exists": it boots a
 * probe guest under KVM and only takes KVM when that guest reaches its
 * workload (on these machines /dev/kvm may be a paravirtual KVM that runs
 * SeaBIOS but hangs a stock Linux guest). The reason is recorded in results.
 */
import { HecaError } from '../../tools/core/errors.ts';
import { info } from '../../tools/core/log.ts';
import { kvmHostState, type AccelChoice } from '../testbed/host.ts';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';

export function parseAccel(v: string): AccelRequest {
  if (v === 'auto' || v === 'kvm' || v === 'tcg') return v;
  throw new HecaError(`unknown accelerator "${v}"`, { why: 'heca knows auto, kvm and tcg', fix: 'use --accel auto (probe), kvm or tcg' });
}

/** `probeBoot` boots the real guest under KVM and resolves true if it reached `ready` in time. */
export async function chooseAccel(req: AccelRequest, probeBoot: () => Promise<{ ok: boolean; detail: string }>): Promise<AccelChoice> {
  const st = kvmHostState();
  if (req === 'tcg') return { accel: 'tcg', reason: 'requested with --accel tcg' };
  if (req === 'kvm') {
    if (!st.devKvm) throw new HecaError('--accel kvm but there is no /dev/kvm', { why: 'KVM is not available on this host', fix: 'use --accel tcg or auto' });
    return { accel: 'kvm', reason: 'requested with --accel kvm (no probe)' };
  }
  if (!st.devKvm) return { accel: 'tcg', reason: 'no /dev/kvm on this host' };
  info('probing KVM: booting the guest under -accel kvm');
  const r = await probeBoot();
  if (r.ok) return { accel: 'kvm', reason: `a probe guest booted under KVM (${r.detail})` };
  return {
    accel: 'tcg',
    reason: `a probe guest did not boot under KVM (${r.detail})${st.pvm ? '; kvm_pvm is loaded: this /dev/kvm is a paravirtual KVM' : ''}`,
  };
}
