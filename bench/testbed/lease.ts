/**
 * Leases: the one way both testbeds hold things that outlive a process if
 * left alone (network namespaces, L1 QEMUs).
 *
 *   const lease = takeLease(book, id, { netns: [...] }, () => bed.destroy());
 *   ...                               // create what the record says
 *   lease.update({ qemu_pids: [...] })  // more is held now
 *   lease.release();                  // all of it is gone again
 *
 * takeLease() writes an owner record (this process's pid and start time, and
 * what it holds) into the book's directory before anything is created, and
 * registers the teardown with cleanup.ts, so Ctrl-C or a crash runs it.
 * release() removes both. A record whose owner is gone (a run killed with
 * SIGKILL, a machine that lost power mid-run) is stale: reapStale() hands it
 * to the testbed's reaper, which removes what it names, then drops the record.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup, type CleanupFn } from './cleanup.ts';
import { procStart } from './host.ts';

/** Where one kind of testbed keeps its owner records (tmpfs: gone after a reboot, like what they name). */
export interface LeaseBook {
  dir: string;
  /** Names the kind in messages and cleanup labels ("testbed", "nested testbed"). */
  kind: string;
}

/** An owner record: who holds it, and the testbed's own fields saying what it holds. */
export type OwnerRecord<P extends object> = P & {
  id: string;
  pid: number;
  /** /proc/<pid>/stat starttime, to tell a reused pid apart. */
  pid_start: string | null;
  created_at: string;
};

export interface Lease<P extends object> {
  readonly id: string;
  readonly record: OwnerRecord<P>;
  /** Rewrite the record with more of what is held. */
  update(more: Partial<P>): void;
  /** What was held is gone: drop the record and the Ctrl-C/crash teardown. Idempotent. */
  release(): void;
}

/** Lease ids become file names and parts of interface names. */
export const LEASE_ID_RE = /^[a-z0-9]{1,12}$/;

function recordFile(book: LeaseBook, id: string): string {
  return join(book.dir, `${id}.json`);
}

function write(book: LeaseBook, rec: OwnerRecord<object>): void {
  mkdirSync(book.dir, { recursive: true });
  writeFileSync(recordFile(book, rec.id), `${JSON.stringify(rec, null, 2)}\n`);
}

/**
 * Record that this process holds `holds` under `id`, before creating any of
 * it; `teardown` runs on Ctrl-C or a crash until the lease is released.
 */
export function takeLease<P extends object>(book: LeaseBook, id: string, holds: P, teardown: CleanupFn): Lease<P> {
  if (!LEASE_ID_RE.test(id)) throw new RangeError(`lease id "${id}" is not 1-12 lower-case letters or digits`);
  const record = { ...holds, id, pid: process.pid, pid_start: procStart(process.pid), created_at: new Date().toISOString() } as OwnerRecord<P>;
  write(book, record);
  const unregister = onCleanup(teardown, `${book.kind} ${id}`);
  let released = false;
  return {
    id,
    record,
    update(more) {
      if (released) return;
      Object.assign(record, more);
      write(book, record);
    },
    release() {
      if (released) return;
      released = true;
      rmSync(recordFile(book, id), { force: true });
      unregister();
    },
  };
}

/** Whether the process that wrote `rec` still runs (the same process, not a reused pid). */
export function ownerAlive(rec: { pid: number; pid_start: string | null }): boolean {
  const start = procStart(rec.pid);
  return start !== null && (rec.pid_start === null || start === rec.pid_start);
}

/** Every record in the book by id; one that cannot be read maps to undefined (its owner is unknown: stale). */
export function readRecords<P extends object>(book: LeaseBook): Map<string, OwnerRecord<P> | undefined> {
  const out = new Map<string, OwnerRecord<P> | undefined>();
  let files: string[];
  try {
    files = readdirSync(book.dir);
  } catch {
    return out;
  }
  for (const f of files) {
    const id = f.replace(/\.json$/, '');
    if (!f.endsWith('.json') || !LEASE_ID_RE.test(id)) continue;
    try {
      const rec = JSON.parse(readFileSync(join(book.dir, f), 'utf8')) as OwnerRecord<P>;
      out.set(id, typeof rec.pid === 'number' ? rec : undefined);
    } catch {
      out.set(id, undefined);
    }
  }
  return out;
}

/**
 * Hand every stale record (its owner gone, or unreadable) to `reap`, then
 * drop it; records of live owners, this process included, are left alone.
 * A reaper that throws keeps its record for the next try. Returns the ids
 * reaped, sorted.
 */
export async function reapStale<P extends object>(book: LeaseBook, reap: (id: string, rec: OwnerRecord<P> | undefined) => Promise<void>): Promise<string[]> {
  const reaped: string[] = [];
  for (const [id, rec] of [...readRecords<P>(book)].sort(([a], [b]) => a.localeCompare(b))) {
    if (rec && ownerAlive(rec)) continue;
    await reap(id, rec);
    rmSync(recordFile(book, id), { force: true });
    reaped.push(id);
  }
  return reaped;
}
