/**
 * The one place heca runs external commands. Arguments are always an array
 * (never a shell string). `--dry-run` prints the commands instead of running
 * them (read-only probes still run: they pass `probe: true`); `--verbose`
 * echoes every command. A failure becomes a HecaError naming the command, its
 * exit status and the tail of its output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { HecaError, tail } from './errors.ts';
import { debug, isVerbose } from './log.ts';

let dryRun = false;
export function setDryRun(on: boolean): void {
  dryRun = on;
}
export function isDryRun(): boolean {
  return dryRun;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Read-only command whose answer is needed to plan: runs even in dry-run. */
  probe?: boolean;
  /** Kill after this many ms (SIGTERM, then SIGKILL 5 s later). */
  timeoutMs?: number;
  /** Data written to stdin. */
  input?: string;
  /** Called with every line of stdout and stderr as it arrives (progress). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Do not throw on a non-zero exit; the caller looks at `exitCode`. */
  allowFail?: boolean;
  /** What to tell the user if it fails. */
  fix?: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Quote for display only (never executed through a shell). */
export function showCommand(cmd: string, args: readonly string[]): string {
  const q = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [cmd, ...args].map(q).join(' ');
}

export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const shown = showCommand(cmd, args);
  if (dryRun && !opts.probe) {
    process.stdout.write(`${opts.cwd ? `(cd ${opts.cwd} && ` : ''}${shown}${opts.cwd ? ')' : ''}\n`);
    return { exitCode: 0, stdout: '', stderr: '', durationMs: 0 };
  }
  if (isVerbose()) debug(`$ ${shown}${opts.cwd ? `   (in ${opts.cwd})` : ''}`);
  const start = Date.now();
  const child = execa(cmd, args, {
    cwd: opts.cwd,
    env: opts.env,
    input: opts.input,
    reject: false,
    all: true,
    timeout: opts.timeoutMs,
    forceKillAfterDelay: 5000,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (opts.onLine) attachLines(child, opts.onLine);
  const r = await child;
  const res: RunResult = {
    exitCode: r.exitCode ?? -1,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    durationMs: Date.now() - start,
  };
  if (r.failed && !opts.allowFail) {
    const why = r.timedOut
      ? `it did not finish within ${opts.timeoutMs} ms and was killed`
      : r.code === 'ENOENT'
        ? `${cmd} is not installed or not on PATH`
        : r.signal
          ? `it was killed by ${r.signal}`
          : `it exited with status ${r.exitCode}`;
    throw new HecaError(`command failed: ${shown}`, {
      why,
      fix: opts.fix ?? (r.code === 'ENOENT' ? 'run tools/setup-host.sh as root' : undefined),
      details: tail(r.all ?? `${res.stdout}${res.stderr}`, 25),
    });
  }
  return res;
}

function attachLines(child: ResultPromise, onLine: NonNullable<RunOptions['onLine']>): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) continue;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i), name);
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => {
      if (buf) onLine(buf, name);
    });
  }
}

/** Output of a read-only probe, trimmed; runs even in dry-run. */
export async function probe(cmd: string, args: readonly string[], opts: Omit<RunOptions, 'probe'> = {}): Promise<string> {
  const r = await run(cmd, args, { ...opts, probe: true });
  return r.stdout.trim();
}

export interface Spawned {
  pid: number;
  /** Resolves when the process exits, with its exit code (or -1 when killed by a signal). */
  exited: Promise<{ exitCode: number; signal: string | undefined }>;
  kill(signal?: NodeJS.Signals): void;
  /** Stop gracefully: SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Start a long-running process (a QEMU, say) whose output goes to a log file.
 * Not affected by dry-run: callers that spawn decide that themselves.
 */
export function spawnLogged(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; logFile: string; env?: Record<string, string | undefined> },
): Spawned {
  debug(`$ ${showCommand(cmd, args)} > ${opts.logFile}`);
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, [...args], {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  live.add(child);
  let done = false;
  const exited = new Promise<{ exitCode: number; signal: string | undefined }>((res) => {
    child.on('error', () => {
      done = true;
      live.delete(child);
      res({ exitCode: -1, signal: undefined });
    });
    child.on('exit', (code, signal) => {
      done = true;
      live.delete(child);
      res({ exitCode: code ?? -1, signal: signal ?? undefined });
    });
  });
  return {
    pid: child.pid ?? -1,
    exited,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!done) child.kill(signal);
    },
    stop: async (graceMs = 5000) => {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Processes started by spawnLogged and still running: killed if we exit. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
