/**
 * KVM's asynchronous page faults in an L1 host, counted from its trace
 * events while a migration runs (issue #13): how many of the L2 guest's
 * faults on pages not yet there KVM tried to make asynchronous, how many it
 * queued as async work, how many of those it told the guest of (a
 * "page not present" #PF the guest answers by running another task, then
 * a "page ready" interrupt, vector 0xf3), and so how many it could not:
 * then the vCPU sits in an "artificial halt" until the page is there —
 * the guest was in kernel mode, or had async PF off.
 *
 *   kvm_try_async_get_page        a fault that could go async
 *   kvm_async_pf_repeated_fault   the same page again while its work runs: halt
 *   kvm_async_pf_not_present      async work queued (told to the guest or halted)
 *   kvm_apic_accept_irq vec 0xf3  a "page ready" interrupt: one per fault told
 */
import { HecaError } from '../../../tools/core/errors.ts';
import type { AgentClient } from './l1-agent.ts';

const TRACEFS = '/sys/kernel/tracing';
/** The Linux guest's HYPERVISOR_CALLBACK_VECTOR, which it gives KVM for "page ready" (MSR_KVM_ASYNC_PF_INT). */
export const APF_READY_VECTOR = 0xf3;
const EVENTS = ['kvm_try_async_get_page', 'kvm_async_pf_repeated_fault', 'kvm_async_pf_not_present', 'kvm_apic_accept_irq'] as const;

export interface AsyncPfCounts {
  /** Faults KVM tried to make asynchronous. */
  tried: number;
  /** Of them, on a page whose async work was already running: the vCPU halted. */
  repeated: number;
  /** Async work queued. */
  queued: number;
  /** "Page ready" interrupts: faults the guest was told of (it ran something else meanwhile). */
  told: number;
  /** Queued but not told, plus repeated: the vCPU halted until the page came. */
  halted: number;
}

/** Counts from the trace's lines ("... kvm_try_async_get_page: gva ..."), by event. */
export function parseTraceCounts(out: string): Record<string, number> {
  const c: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const m = /^(\w+) (\d+)$/.exec(line.trim());
    if (m) c[m[1]!] = Number(m[2]);
  }
  return c;
}

export function asyncPfCounts(c: Record<string, number>): AsyncPfCounts {
  const n = (k: string) => c[k] ?? 0;
  const queued = n('kvm_async_pf_not_present');
  const told = Math.min(queued, n('kvm_apic_accept_irq'));
  return { tried: n('kvm_try_async_get_page'), repeated: n('kvm_async_pf_repeated_fault'), queued, told, halted: queued - told + n('kvm_async_pf_repeated_fault') };
}

async function write(agent: AgentClient, file: string, value: string): Promise<void> {
  const r = await agent.exec(['tee', `${TRACEFS}/${file}`], { timeoutMs: 10_000, input: value, allowFail: true });
  if (r.exitCode !== 0) {
    throw new HecaError(`${agent.host}: cannot write ${value.trim()} to ${TRACEFS}/${file}`, { why: r.stderr.trim() || `tee exited ${r.exitCode}`, fix: 'the L1 kernel needs CONFIG_FTRACE and KVM\'s trace events (kernel-patches/config/heca.config)' });
  }
}

/** tracefs at /sys/kernel/tracing (the L1 host's init mounts only what it needs). */
async function mountTracefs(agent: AgentClient): Promise<void> {
  const there = await agent.exec(['test', '-e', `${TRACEFS}/tracing_on`], { timeoutMs: 10_000, allowFail: true });
  if (there.exitCode === 0) return;
  const r = await agent.exec(['mount', '-t', 'tracefs', 'tracefs', TRACEFS], { timeoutMs: 10_000, allowFail: true });
  if (r.exitCode !== 0) {
    throw new HecaError(`${agent.host}: cannot mount tracefs on ${TRACEFS}`, { why: r.stderr.trim() || `mount exited ${r.exitCode}`, fix: 'the L1 kernel needs CONFIG_FTRACE (kernel-patches/config/heca.config)' });
  }
}

/** Clear the trace and turn the events on (page-ready interrupts only), with room for ~100k events per CPU. */
export async function startAsyncPfTrace(agent: AgentClient): Promise<void> {
  await mountTracefs(agent);
  await write(agent, 'tracing_on', '0\n');
  await write(agent, 'buffer_size_kb', '16384\n');
  await write(agent, 'trace', '\n');
  await write(agent, 'events/kvm/kvm_apic_accept_irq/filter', `vec == ${APF_READY_VECTOR}\n`);
  for (const e of EVENTS) await write(agent, `events/kvm/${e}/enable`, '1\n');
  await write(agent, 'tracing_on', '1\n');
}

/** Turn the events off, the trace kept (a run that ends without counting them calls only this). */
export async function stopAsyncPfTrace(agent: AgentClient): Promise<void> {
  await write(agent, 'tracing_on', '0\n');
  for (const e of EVENTS) await write(agent, `events/kvm/${e}/enable`, '0\n');
  await write(agent, 'events/kvm/kvm_apic_accept_irq/filter', '0\n');
}

/** Turn the events off and count them (in the host: only the counts cross). */
export async function readAsyncPfTrace(agent: AgentClient): Promise<AsyncPfCounts> {
  await stopAsyncPfTrace(agent);
  // Each line: "<task>-<pid> [cpu] flags ts: <event>: ...": count by the field that ends in the event's name and ':'.
  const r = await agent.exec(['awk', '{ for (i = 1; i <= NF; i++) if ($i ~ /^kvm_[a-z_]+:$/) { c[substr($i, 1, length($i) - 1)]++; break } } END { for (k in c) print k, c[k] }', `${TRACEFS}/trace`], { timeoutMs: 60_000, allowFail: true });
  if (r.exitCode !== 0) throw new HecaError(`${agent.host}: cannot count the KVM trace events`, { why: r.stderr.trim() || `awk exited ${r.exitCode}` });
  const lost = await agent.exec(['sh', '-c', 'cat /sys/kernel/tracing/per_cpu/cpu*/stats'], { timeoutMs: 10_000, allowFail: true });
  const overrun = lost.stdout.split('\n').reduce((a, l) => a + Number(/overrun: (\d+)/.exec(l)?.[1] ?? 0), 0);
  if (overrun > 0) throw new HecaError(`${agent.host}: the KVM trace lost ${overrun} events`, { why: 'the trace buffer overflowed', fix: 'a larger buffer_size_kb in bench/testbed/nested/kvm-trace.ts' });
  return asyncPfCounts(parseTraceCounts(r.stdout));
}
