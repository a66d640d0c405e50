/**
 * One end of a migration as the migration phases see it: a QMP connection,
 * whether its QEMU still runs, and its log. A running Vm is one (sideOf);
 * the unit tests use a fake QEMU that speaks QMP on a socket.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { debug } from '../../tools/core/log.ts';
import type { QmpClient } from '../../tools/qmp/client.ts';
import { logTail, type Vm } from '../guest/vm.ts';

export interface Side {
  /** "source" or "destination", for messages. */
  readonly name: 'source' | 'destination';
  readonly qmp: QmpClient;
  /** Set once its QEMU has exited. */
  readonly exited: unknown;
  /** `p`, or a rejection with the log tail if the QEMU exits first. */
  guard<T>(p: Promise<T>, what: string): Promise<T>;
  /** The last lines of its QEMU log, for error details. */
  logTail(): string;
}

export function sideOf(vm: Vm, name: Side['name']): Side {
  return {
    name,
    qmp: vm.qmp,
    get exited() {
      return vm.exited;
    },
    guard: (p, what) => vm.guard(p, what),
    logTail: () => logTail(vm.logFile, 15),
  };
}

/**
 * A RESET or SHUTDOWN event the guest caused (a triple fault, a reboot, a
 * power-off): its reason; undefined for our own stop (quit, SIGTERM at teardown).
 */
export function guestResetReason(e: { event: string; data?: unknown }): string | undefined {
  const reason = (e.data as { reason?: string } | undefined)?.reason;
  if (e.event === 'SHUTDOWN' && (reason === 'host-qmp-quit' || reason === 'host-signal')) return undefined;
  return reason ?? 'unknown';
}

/** "RIP=... CR0=... CR2=... CR3=... CR4=... EFER=..." from QEMU's `info registers` (EIP outside long mode). */
export function registerSummary(text: string): string {
  const pick = (name: string): string[] => {
    const v = new RegExp(`\\b${name}=([0-9a-fA-F]+)`).exec(text)?.[1];
    return v ? [`${name}=${v}`] : [];
  };
  const ip = pick('RIP');
  return [...(ip.length ? ip : pick('EIP')), ...['CR0', 'CR2', 'CR3', 'CR4', 'EFER'].flatMap(pick)].join(' ');
}

/**
 * Save `info registers` of a frozen guest to `file` and return the line that
 * says most (RIP, CR0/2/3/4, EFER), or '' when QEMU cannot answer in 5 s.
 */
export async function saveRegisters(side: Pick<Side, 'qmp' | 'name'>, file: string): Promise<string> {
  try {
    const text = await Promise.race([
      side.qmp.execute('human-monitor-command', { 'command-line': 'info registers' }),
      sleep(5000).then(() => undefined),
    ]);
    if (typeof text !== 'string') return '';
    writeFileSync(file, text);
    return registerSummary(text);
  } catch (e) {
    debug(`registers of the ${side.name}: ${(e as Error).message}`);
    return '';
  }
}
