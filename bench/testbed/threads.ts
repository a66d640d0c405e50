/**
 * What every thread of a process is doing, as its kernel sees it: name,
 * state, wait channel and kernel stack, read from /proc. For a migration
 * that made no end this says which thread waits for what (a vCPU in
 * handle_userfault, the fault thread in poll, the listen thread on a
 * mutex) without attaching a debugger, which a slow nested host may not
 * survive. Runs as root in the host where the process is.
 */
import { run } from '../../tools/core/exec.ts';

/** sh -c SCRIPT threads PID: one block per thread. Fixed text; the pid is an argument. */
export const THREADS_SCRIPT = [
  'p=$1',
  '[ -d "/proc/$p" ] || { echo "no process $p"; exit 0; }',
  'for t in /proc/"$p"/task/*; do',
  // utime+stime in clock ticks: fields 14 and 15 of stat, 12 and 13 after "pid (comm) ".
  '  printf "%s %s: %s wchan=%s cpu=%s\\n" "${t##*/}" "$(cat "$t/comm")" "$(sed -n "s/^State:[[:space:]]*//p" "$t/status")" "$(cat "$t/wchan" 2>/dev/null)" "$(sed "s/.*) //" "$t/stat" | cut -d" " -f12,13 | tr " " +)"',
  '  sed "s/^/    /" "$t/stack" 2>/dev/null',
  'done',
].join('\n');

/** The argv that prints the threads of `pid`. */
export function threadsArgv(pid: number): string[] {
  return ['sh', '-c', THREADS_SCRIPT, 'threads', String(pid)];
}

/** The threads of a process on this machine (the local testbed's QEMUs). */
export async function localThreads(pid: number): Promise<string> {
  const [cmd, ...args] = threadsArgv(pid);
  const r = await run(cmd!, args, { allowFail: true, timeoutMs: 20_000 });
  return r.stdout + r.stderr;
}
