/**
 * --accel auto|kvm|tcg. `auto` never trusts "/dev/kvm exists": it boots a
 * probe guest under KVM and only takes KVM when that guest reaches its
 * workload (on these machines /dev/kvm may be a paravirtual KVM that runs
 * SeaBIOS but hangs a stock Linux guest). The reason is recorded in results.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../../tools/core/errors.ts';
import { spawnLogged } from '../../tools/core/exec.ts';
import { info } from '../../tools/core/log.ts';
import { Vm } from '../guest/vm.ts';
import { kvmHostState, type AccelChoice } from '../testbed/host.ts';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';

export function parseAccel(v: string): AccelRequest {
  if (v === 'auto' || v === 'kvm' || v === 'tcg') return v;
  throw new HecaError(`unknown accelerator "${v}"`, { why: 'heca knows auto, kvm and tcg', fix: 'use --accel auto (probe), kvm or tcg' });
}

/** `probeBoot` boots the real guest under KVM and resolves true if it reached `ready` in time. */
export async function chooseAccel(req: AccelRequest, probeBoot: () => Promise<{ ok: boolean; detail: string }>, st = kvmHostState()): Promise<AccelChoice> {
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

/** Boot the guest under KVM (logs in OUT/logs/kvm-probe) and see whether it reaches the workload. */
export async function probeKvm(qemu: string, guest: { kernel: string; initrd: string }, append: string, out: string): Promise<{ ok: boolean; detail: string }> {
  const dir = join(out, 'logs', 'kvm-probe');
  mkdirSync(dir, { recursive: true });
  const t = Date.now();
  let vm: Vm | undefined;
  try {
    vm = await Vm.start(qemu, { name: 'heca-kvm-probe', dir, accel: 'kvm', memMib: 256, kernel: guest.kernel, initrd: guest.initrd, append }, (c, a, log) => spawnLogged(c, a, { logFile: log }));
    await vm.guard(vm.channel.waitFor('ready', { timeoutMs: 60_000 }), 'the KVM probe boot');
    return { ok: true, detail: `ready after ${((Date.now() - t) / 1000).toFixed(1)} s` };
  } catch (e) {
    return { ok: false, detail: e instanceof HecaError ? e.message : String(e) };
  } finally {
    await vm?.stop();
  }
}
