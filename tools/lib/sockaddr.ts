/**
 * Where a QMP or chardev socket is: a unix socket path, or "tcp:HOST:PORT"
 * (a QEMU inside an L1 test host, reached through a port forward).
 */
import type { NetConnectOpts } from 'node:net';

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
