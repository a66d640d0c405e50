/**
 * The kernel selftests heca runs in its L1 hosts (tests/nested/kselftests.test.ts),
 * built from the patched tree against its own UAPI headers (make
 * headers_install into the kernel build directory) with each selftest
 * directory's Makefile, into build/kernel/selftests/<dir>/<program>: under
 * L0's root, which the L1 hosts mount, so they run there as built.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../core/exec.ts';
import { info } from '../core/log.ts';

export interface Kselftest {
  /** Directory under tools/testing/selftests. */
  dir: string;
  /** Program, from <program>.c in that directory. */
  program: string;
}

/** What the L1 hosts run: the series' tests (issue #13). */
export const KSELFTESTS: Kselftest[] = [
  { dir: 'mm', program: 'uffd-resolver' },
  { dir: 'mm', program: 'uffd-rdma-resolver' },
  { dir: 'kvm', program: 'demand_paging_test' },
];

export const kselftestPath = (root: string, t: Kselftest): string => join(root, 'selftests', t.dir, t.program);

/** Whether the tree has the test's source (the series that adds it applied). */
export const kselftestInTree = (tree: string, t: Kselftest): boolean =>
  existsSync(join(tree, 'tools', 'testing', 'selftests', t.dir, `${t.program}.c`));

/**
 * Build the selftests the tree has into <root>/selftests; bdir is the
 * kernel's build directory (O=). Returns the programs built.
 */
export async function buildKselftests(tree: string, bdir: string, root: string): Promise<string[]> {
  const present = KSELFTESTS.filter((t) => kselftestInTree(tree, t));
  if (!present.length) return [];
  await run('make', ['-C', tree, `O=${bdir}`, 'ARCH=x86_64', 'headers'], { timeoutMs: 10 * 60_000, fix: 'see the error above' });
  const built: string[] = [];
  for (const t of present) {
    const out = join(root, 'selftests', t.dir);
    mkdirSync(out, { recursive: true });
    await run('make', ['-C', join(tree, 'tools', 'testing', 'selftests', t.dir), `OUTPUT=${out}`,
      `KHDR_INCLUDES=-isystem ${join(bdir, 'usr', 'include')}`, 'CC=ccache gcc', join(out, t.program)],
    { timeoutMs: 10 * 60_000, fix: `see the compiler error above (tools/testing/selftests/${t.dir}/${t.program}.c)` });
    built.push(kselftestPath(root, t));
  }
  info(`built kernel selftests: ${built.join(', ')}`);
  return built;
}
