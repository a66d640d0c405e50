/**
 * Core dumps of what crashed in an L1 host (an L2 QEMU): l1-init has the
 * kernel write them into the shared directory as cores/core.HOST.PID.TIME.COMM.
 * That directory has the same path at L0, and so do the binaries and
 * libraries (the hosts' root is L0's), so gdb reads a core here as it would
 * in the host. A run whose QEMU dumped core gets the crashing thread, the
 * signal and the top frames in its reason, every thread's backtrace in its
 * logs, and the core itself.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../../../tools/core/errors.ts';
import { run } from '../../../tools/core/exec.ts';

/** l1-init's core_pattern (keep in step): /run/cores links to the shared directory's cores/. */
export const L1_CORE_PATTERN = '/run/cores/core.%h.%p.%t.%e';

/** How long the engine waits, after a run, for a QEMU of it to exit (and so finish its core). */
export const CORE_WAIT_MS = 120_000;

/** Where l1-init has the kernel put core dumps (keep in step with l1-init). */
export function coresDir(sharedDir: string): string {
  return join(sharedDir, 'cores');
}

export interface CoreFile {
  file: string;
  /** The name (comm) of the thread that took the signal, from the file's name: gdb does not know it from a core. */
  thread: string;
}

/**
 * The core dump process `pid` of host `host` left, if any (the newest,
 * should pids be reused). Named core.HOST.PID.TIME.COMM by l1-init's
 * core_pattern; the kernel writes a '/' of COMM as '!'.
 */
export function findCore(sharedDir: string, host: string, pid: number): CoreFile | undefined {
  const dir = coresDir(sharedDir);
  if (!existsSync(dir)) return undefined;
  const prefix = `core.${host}.${pid}.`;
  const found = readdirSync(dir).flatMap((n) => {
    const m = n.startsWith(prefix) ? /^(\d+)\.(.*)$/s.exec(n.slice(prefix.length)) : null;
    return m ? [{ n, time: Number(m[1]), thread: m[2]!.replace(/!/g, '/') }] : [];
  });
  found.sort((x, y) => x.time - y.time);
  const last = found.at(-1);
  return last === undefined ? undefined : { file: join(dir, last.n), thread: last.thread };
}

/** Where readCore()'s gdb output turns to the next command's. */
const BT = '==bt==';
const THREADS = '==threads==';
const ALL = '==all==';

/**
 * gdb's reading of `core` with `binary`: the crashing thread's backtrace, the
 * list of threads, then every thread's backtrace, each after a marker line. Throws a HecaError when gdb
 * cannot run or read the core.
 */
export async function readCore(binary: string, core: string, timeoutMs = 120_000): Promise<string> {
  const r = await run('gdb', ['-batch', '-nx', '-ex', 'set pagination off', '-ex', `echo ${BT}\\n`, '-ex', 'bt', '-ex', `echo ${THREADS}\\n`, '-ex', 'info threads', '-ex', `echo ${ALL}\\n`, '-ex', 'thread apply all bt', binary, core], {
    probe: true, allowFail: true, timeoutMs,
  });
  if (r.exitCode === 127) throw new HecaError(`cannot read the core dump ${core}`, { why: 'gdb is not installed', fix: 'run tools/setup-host.sh as root (it installs gdb)' });
  const text = `${r.stdout}${r.stderr ? `\n${r.stderr}` : ''}`;
  if (!/Program terminated with signal/.test(text)) {
    throw new HecaError(`gdb did not read the core dump ${core}`, { why: `gdb exited ${r.exitCode}: ${text.trim().split('\n').slice(-3).join(' | ') || 'no output'}`, fix: `a core cut short (its L1 host died while writing it), or ${binary} rebuilt since: the core is kept, read it with gdb by hand` });
  }
  return text;
}

/**
 * One line from gdb's reading of a core: the signal, the thread that took it
 * (`thread`: its name from the core's file name, as QEMU's debug-threads=on
 * set it; gdb gives its LWP) and its top frames, e.g.
 * `SIGSEGV in thread "mig/dst/rdmabg" (LWP 285): #0 0x0000000000000000 in ?? () <- #1 ... in pull_worker (...) at ...`.
 */
export function coreSummary(gdbText: string, thread?: string, frames = 3): string {
  const section = (from: string, to: string) => {
    const a = gdbText.indexOf(`${from}\n`);
    if (a < 0) return [];
    const b = gdbText.indexOf(`${to}\n`, a);
    return gdbText.slice(a + from.length + 1, b < 0 ? undefined : b).split('\n');
  };
  const signal = /Program terminated with signal (\w+)/.exec(gdbText)?.[1] ?? 'an unknown signal';
  const current = section(THREADS, ALL).find((l) => /^\*\s+\d+\s/.test(l)) ?? '';
  // "Thread 0x7f.. (LWP 285)", "LWP 285" or "process 285" (a process of one thread, without libthread_db)
  const lwp = /\b(?:LWP|process) (\d+)/.exec(current)?.[1];
  const who = thread ? `thread "${thread}"${lwp ? ` (LWP ${lwp})` : ''}` : lwp ? `LWP ${lwp}` : 'an unknown thread';
  const top = section(BT, THREADS).filter((l) => /^#\d+\s/.test(l)).slice(0, frames).map((l) => l.replace(/\s+/g, ' ').trim());
  return `${signal} in ${who}${top.length ? `: ${top.join(' <- ')}` : ''}`;
}

/** A process a run started that dumped core, read with gdb. */
export interface CoreDump {
  role: 'src' | 'dst';
  host: string;
  pid: number;
  /** The core file, where the kernel wrote it. */
  file: string;
  /** coreSummary()'s line. */
  summary: string;
  /** gdb's full reading (every thread's backtrace); gdb's error when it could not read the core. */
  backtrace: string;
}

/** The core `pid` of `host` left, read with `binary`; undefined when there is none. Never throws. */
export async function coreDumpOf(sharedDir: string, role: 'src' | 'dst', host: string, pid: number, binary: string): Promise<CoreDump | undefined> {
  const c = findCore(sharedDir, host, pid);
  if (!c) return undefined;
  try {
    const text = await readCore(binary, c.file);
    return { role, host, pid, file: c.file, summary: coreSummary(text, c.thread), backtrace: text };
  } catch (e) {
    const msg = e instanceof HecaError ? `${e.message}: ${e.why}` : String(e);
    return { role, host, pid, file: c.file, summary: `a core from thread "${c.thread}" that gdb could not read (${msg})`, backtrace: msg };
  }
}
