/**
 * Where a QMP or chardev socket is: a unix socket path, or "tcp:HOST:PORT"
 * (a QEMU inside an L1 test host, reached through a port forward).
 */
import { createConnection, type NetConnectOpts, type Socket } from 'node:net';

const TCP_RE = /^tcp:(.+):(\d{1,5})$/;

export function tcpAddr(host: string, port: number): string {
  return `tcp:${host}:${port}`;
}

export function isTcpAddr(addr: string): boolean {
  return TCP_RE.test(addr);
}

/** net.createConnection options for an address. */
export function connectOpts(addr: string): NetConnectOpts {
  const m = TCP_RE.exec(addr);
  if (m) return { host: m[1]!, port: Number(m[2]) };
  return { path: addr };
}

/** Why connectRetrying gave up: the last error's code and message, and how long it tried. */
export class SocketConnectError extends Error {
  constructor(
    readonly addr: string,
    /** errno code of the last attempt (ENOENT, ECONNREFUSED, ...), if any. */
    readonly code: string | undefined,
    readonly triedMs: number,
    override readonly cause: unknown,
  ) {
    super(`${code ?? 'error'}: ${(cause as Error).message}`);
    this.name = 'SocketConnectError';
  }
}

/** Errors that mean "not there yet": the socket file is missing or nothing listens (yet). */
const NOT_YET = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * Connect to a unix socket path or "tcp:HOST:PORT", retrying while it does not
 * exist yet or refuses, until `retryUntilMs` has passed (0: one try). Any other
 * error, or the deadline, rejects with a SocketConnectError; each caller turns
 * it into its own error text.
 */
export async function connectRetrying(addr: string, opts: { retryUntilMs: number; everyMs?: number }): Promise<Socket> {
  const every = opts.everyMs ?? 100;
  const started = Date.now();
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = createConnection(connectOpts(addr));
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (e) => {
          s.destroy();
          reject(e);
        });
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const elapsed = Date.now() - started;
      if (code !== undefined && NOT_YET.has(code) && elapsed + every < opts.retryUntilMs) {
        await new Promise((r) => setTimeout(r, every));
        continue;
      }
      throw new SocketConnectError(addr, code, elapsed, e);
    }
  }
}
