/** Facts about the machine the bench runs on, and the checks made before anything starts. */
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, release } from 'node:os';
import { HecaError } from '../../tools/core/errors.ts';

export function memAvailableMib(meminfo = readFileSync('/proc/meminfo', 'utf8')): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo);
  if (!m) throw new HecaError('cannot read MemAvailable from /proc/meminfo', { why: 'the line is missing (kernel older than 3.14?)' });
  return Math.floor(Number(m[1]) / 1024);
}

export function memTotalMib(meminfo = readFileSync('/proc/meminfo', 'utf8')): number {
  const m = /^MemTotal:\s+(\d+) kB$/m.exec(meminfo);
  return m ? Math.floor(Number(m[1]) / 1024) : 0;
}

/** Per-QEMU memory beyond guest RAM (code, TCG translation buffer, migration buffers). */
export const QEMU_OVERHEAD_MIB = 160;
/** Left to the host and the benchmark itself. */
export const HOST_RESERVE_MIB = 1024;

/**
 * Source and destination both hold the guest's RAM (the destination fills it
 * as pages arrive), so a run needs twice the guest RAM plus overheads.
 */
export function checkMemory(memMib: number, available = memAvailableMib()): void {
  const need = 2 * (memMib + QEMU_OVERHEAD_MIB) + HOST_RESERVE_MIB;
  if (need > available) {
    const max = Math.floor((available - HOST_RESERVE_MIB) / 2 - QEMU_OVERHEAD_MIB);
    throw new HecaError(`--mem ${memMib} needs more memory than this host can give`, {
      why: `source + destination need 2 × (${memMib} + ${QEMU_OVERHEAD_MIB}) MiB + ${HOST_RESERVE_MIB} MiB reserve = ${need} MiB; ${available} MiB are available`,
      fix: max > 0 ? `use --mem ${max} or less` : 'free memory on the host',
    });
  }
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new HecaError(`${what} needs root`, { why: 'it creates network namespaces, veth links and tc shaping', fix: `run it as root (sudo -E npx tsx ...)` });
  }
}

export function hostFacts(): { cpus: number; kernel: string; mem_mib: number } {
  return { cpus: cpus().length, kernel: release(), mem_mib: memTotalMib() };
}

export type AccelChoice = { accel: 'tcg' | 'kvm'; reason: string };

/** What the host says about KVM before any probe boot. */
export function kvmHostState(): { devKvm: boolean; pvm: boolean } {
  return { devKvm: existsSync('/dev/kvm'), pvm: existsSync('/sys/module/kvm_pvm') };
}

/**
 * How the L1 test hosts run. KVM only when this machine's KVM is a real one
 * with nested virtualisation on (the L1 hosts must run L2 guests); otherwise
 * TCG with -cpu max, which exposes SVM to L1. The reason goes into results.
 */
export function chooseL1Accel(
  st = kvmHostState(),
  readParam: (path: string) => string | undefined = (p) => (existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined),
): { accel: 'tcg' | 'kvm'; reason: string } {
  const tcg = (why: string) => ({ accel: 'tcg' as const, reason: `${why}: TCG with -cpu max, whose SVM lets L1 run L2 guests under KVM` });
  if (!st.devKvm) return tcg('no /dev/kvm');
  if (st.pvm) return tcg('kvm_pvm is loaded: this /dev/kvm is a paravirtual KVM that cannot run the L1 kernel');
  for (const mod of ['kvm_intel', 'kvm_amd']) {
    const v = readParam(`/sys/module/${mod}/parameters/nested`);
    if (v === undefined) continue;
    return ['1', 'Y', 'y'].includes(v) ? { accel: 'kvm', reason: `${mod}.nested=${v} on this machine: L1 under KVM, L2 under nested KVM` } : tcg(`${mod}.nested=${v}: no nested virtualisation`);
  }
  return tcg('/dev/kvm without kvm_intel or kvm_amd');
}

/** /proc/<pid>/stat field 22 (start time in clock ticks since boot), or null: tells a reused pid apart. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Pick `n` distinct ports on 127.0.0.1 that are free right now, for UDP
 * (the L1 link's -netdev dgram ends) or TCP (port forwards): each is bound
 * with port 0, read, and released together, so no two are the same.
 */
export async function freePorts(proto: 'udp' | 'tcp', n: number): Promise<number[]> {
  const bound = await Promise.all(Array.from({ length: n }, () => bindAny(proto)));
  await Promise.all(bound.map((b) => b.close()));
  return bound.map((b) => b.port);
}

function bindAny(proto: 'udp' | 'tcp'): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    if (proto === 'udp') {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => resolve({ port: s.address().port, close: () => new Promise<void>((r) => s.close(() => r())) }));
    } else {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as AddressInfo).port, close: () => new Promise<void>((r) => srv.close(() => r())) }));
    }
  });
}
