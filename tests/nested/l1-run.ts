/**
 * Run a long test program in an L1 host and watch it from L0 as it runs. The
 * agent's exec answers only at the end; this starts the program with the
 * agent's spawn, its stdout and stderr line-buffered (stdbuf) into a log in
 * the directory shared with L0, and follows that log at L0: each new line
 * goes to `onLine` while the program runs, and the log stays for CI. The
 * program runs in a process group of its own, killed as a whole after
 * `timeoutMs`; an L1 host that dies meanwhile ends the wait with the reason,
 * and so does one that stops answering (its agent silent for `aliveMs`, a
 * minute by default): TCG L1 hosts have been seen to freeze with nothing on
 * their console. Then what the L1's own QEMU does at L0 (thread states and
 * CPU time) is in the error, the program's log as far as it got in `out`.
 *
 *   const r = await runInL1(host, ['migration-test', '-p', P], { logFile, timeoutMs, onLine });
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import type { L1Host } from '../../bench/testbed/nested/l1-host.ts';
import { silentHostReport } from '../../bench/testbed/nested/testbed.ts';

export interface L1Run {
  /** undefined: it did not end by itself (killed at the timeout, or the host died). */
  exitCode: number | undefined;
  signal: string | null;
  timedOut: boolean;
  /** Why there is no exit status, when there is none. */
  error: string | undefined;
  /** stdout and stderr, interleaved as written. */
  out: string;
  seconds: number;
}

export interface L1RunOptions {
  /** Same path at L0 and in L1: a file in the host's shared directory. */
  logFile: string;
  timeoutMs: number;
  env?: Record<string, string>;
  cwd?: string;
  onLine?: (line: string) => void;
  /** How often the log is read at L0 (default 500 ms). */
  everyMs?: number;
  /** The host is given up when its agent does not answer for this long (default 60 s). */
  aliveMs?: number;
}

/** Resolves once the host's agent has not answered a trivial command for `aliveMs`. */
async function frozen(host: L1Host, aliveMs: number, stopped: () => boolean): Promise<{ frozen: string }> {
  for (;;) {
    await sleep(Math.min(aliveMs / 2, 30_000), undefined, { ref: false });
    if (stopped()) return new Promise(() => undefined);
    const t0 = Date.now();
    const ok = await host.agent.exec(['true'], { timeoutMs: aliveMs, allowFail: true }).then(() => true, () => false);
    if (stopped()) return new Promise(() => undefined);
    if (!ok) {
      const secs = Math.round((Date.now() - t0) / 1000);
      return { frozen: `the L1 host ${host.name} stopped answering (its agent was silent for ${secs} s; console: ${host.consoleLog}); ${await silentHostReport(host)}` };
    }
  }
}

/** Follows a file from its start: each call hands complete new lines to `onLine`. */
function follower(path: string, onLine: (line: string) => void): { poll: () => void; flush: () => void; text: () => string } {
  const decoder = new StringDecoder('utf8');
  const chunk = Buffer.alloc(64 * 1024);
  let offset = 0;
  let all = '';
  let partial = '';
  const poll = (): void => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return; // not created yet
    }
    try {
      for (let n = readSync(fd, chunk, 0, chunk.length, offset); n > 0; n = readSync(fd, chunk, 0, chunk.length, offset)) {
        offset += n;
        const s = decoder.write(chunk.subarray(0, n));
        all += s;
        partial += s;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) onLine(l);
      }
    } finally {
      closeSync(fd);
    }
  };
  return {
    poll,
    flush: () => {
      poll();
      if (partial) onLine(partial);
      partial = '';
    },
    text: () => all,
  };
}

export async function runInL1(host: L1Host, argv: readonly string[], opts: L1RunOptions): Promise<L1Run> {
  const started = Date.now();
  const log = follower(opts.logFile, opts.onLine ?? (() => undefined));
  // setsid: the program leads its own process group, so a timeout kills what it started too (a qtest's QEMUs).
  const p = await host.agent.spawn(['setsid', '-w', 'stdbuf', '-oL', '-eL', ...argv], { logFile: opts.logFile, env: opts.env, cwd: opts.cwd });
  let done = false;
  const following = (async () => {
    while (!done) {
      log.poll();
      await sleep(opts.everyMs ?? 500);
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
  });
  const hostGone = host.proc.exited.then((e) => ({ hostExit: e }));
  const hostFrozen = frozen(host, opts.aliveMs ?? 60_000, () => done);
  const first = await Promise.race([p.exited, timedOut, hostGone, hostFrozen]);
  clearTimeout(timer);
  let r: Omit<L1Run, 'out' | 'seconds'>;
  if (typeof first === 'object' && 'frozen' in first) {
    r = { exitCode: undefined, signal: null, timedOut: false, error: first.frozen };
  } else if (first === 'timeout') {
    await host.agent.exec(['kill', '-KILL', '--', `-${p.pid}`], { timeoutMs: 10_000, allowFail: true }).catch(() => undefined);
    await host.agent.kill(p.pid, 'SIGKILL').catch(() => false);
    const e = await Promise.race([p.exited, sleep(10_000).then(() => undefined)]);
    r = { exitCode: undefined, signal: e?.signal ?? null, timedOut: true, error: `it did not finish within ${Math.round(opts.timeoutMs / 1000)} s and was killed` };
  } else if ('hostExit' in first) {
    r = { exitCode: undefined, signal: null, timedOut: false, error: `the L1 host ${host.name} went away while it ran (its QEMU exited with status ${first.hostExit.exitCode}${first.hostExit.signal ? `, ${first.hostExit.signal}` : ''}; console: ${host.consoleLog})` };
  } else {
    r = { exitCode: first.signal ? undefined : first.exitCode, signal: first.signal, timedOut: false, error: first.signal ? `it was killed by ${first.signal}` : undefined };
  }
  done = true;
  await following;
  log.flush();
  return { ...r, out: log.text(), seconds: (Date.now() - started) / 1000 };
}

/** The run ended because the L1 host died or froze (runInL1's own errors), not because of the program. */
export const hostDied = (r: L1Run): boolean => r.exitCode === undefined && !r.timedOut && /stopped answering|went away/.test(r.error ?? '');
