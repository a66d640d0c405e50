/**
 * Checks on one patch file of a series: the form a maintainer expects
 * (`subsystem: summary` subject, a body, a Signed-off-by) and the tree's own
 * scripts/checkpatch.pl.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HecaError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { info } from '../core/log.ts';
import { applySeries } from './apply.ts';
import type { Series } from './series.ts';

export interface PatchReport {
  name: string;
  problems: string[];
  checkpatch: { exitCode: number; output: string };
}

/** Subject, body and trailers of a git format-patch file. */
export function parsePatchFile(text: string): { subject: string; body: string; signedOffBy: string[] } {
  const head = text.split('\n---\n')[0] ?? text;
  const m = /^Subject: (.*(?:\n[ \t].*)*)$/m.exec(head);
  const subject = (m?.[1] ?? '').replace(/\n[ \t]+/g, ' ').replace(/^\[PATCH[^\]]*\]\s*/, '').trim();
  const afterHeaders = head.slice(head.indexOf('\n\n') + 2);
  const signedOffBy = [...afterHeaders.matchAll(/^Signed-off-by: (.+)$/gm)].map((x) => x[1]!.trim());
  const body = afterHeaders.replace(/^[\w-]+-by: .*$/gm, '').trim();
  return { subject, body, signedOffBy };
}

export function formProblems(text: string): string[] {
  const { subject, body, signedOffBy } = parsePatchFile(text);
  const problems: string[] = [];
  if (!/^[\w./+-]+(?:[ ,/][\w./+-]+)*: \S/.test(subject)) problems.push(`subject "${subject}" is not "subsystem: summary"`);
  if (subject.length > 75) problems.push(`subject is ${subject.length} characters (keep it under 76)`);
  if (body.length < 20) problems.push('the commit message has no real body: say what the patch does and why');
  if (signedOffBy.length === 0) problems.push('no Signed-off-by line');
  return problems;
}

export async function checkPatch(tree: string, patchPath: string, name: string, kind: 'qemu' | 'linux'): Promise<PatchReport> {
  const problems = formProblems(readFileSync(patchPath, 'utf8'));
  // FILE_PATH_CHANGES only reminds of MAINTAINERS when a patch adds a file: mm/, fs/ and
  // tools/testing/selftests/ already cover heca's new files, and a submission decides the rest.
  const args = kind === 'linux' ? ['--no-tree', '--strict', '--terse', '--show-types', '--ignore', 'FILE_PATH_CHANGES', patchPath] : [patchPath];
  const r = await run('perl', [join(tree, 'scripts', 'checkpatch.pl'), ...args], { cwd: tree, allowFail: true, probe: true });
  const output = `${r.stdout}${r.stderr}`.trim();
  if (r.exitCode !== 0) problems.push('scripts/checkpatch.pl reports errors');
  return { name, problems, checkpatch: { exitCode: r.exitCode, output } };
}

/**
 * Check every patch of a series (form and checkpatch.pl), printing one line a
 * patch; `buildEach`, when given, builds the tree after each patch is applied
 * (bisectability). Throws when anything failed.
 */
export async function checkSeries(kind: 'qemu' | 'linux', tree: string, series: Series, buildEach?: (tree: string) => Promise<void>): Promise<void> {
  if (series.patches.length === 0) {
    info(`the ${kind} series in ${series.dir} is empty: nothing to check`);
    return;
  }
  if (!existsSync(join(tree, 'scripts', 'checkpatch.pl'))) {
    throw new HecaError(`no scripts/checkpatch.pl in ${tree}`, { why: 'the check runs the tree\'s own checkpatch', fix: `make the tree with: npx tsx tools/build.ts ${kind === 'linux' ? '--kernel' : '--qemu'}, or pass --tree DIR` });
  }
  const cover = readdirSync(series.dir).find((f) => f.startsWith('0000-cover-letter'));
  let failed = 0;
  if (!cover) {
    failed++;
    process.stdout.write(`FAIL cover letter: no 0000-cover-letter.patch in ${series.dir}\n`);
  } else if (/\*\*\* (SUBJECT|BLURB) HERE \*\*\*/.test(readFileSync(join(series.dir, cover), 'utf8'))) {
    failed++;
    process.stdout.write(`FAIL ${cover}: still the format-patch template (*** SUBJECT HERE ***)\n`);
  }
  for (const p of series.patches) {
    const r = await checkPatch(tree, p.path, p.name, kind);
    if (r.problems.length) failed++;
    process.stdout.write(`${r.problems.length ? 'FAIL' : 'ok  '} ${p.name}\n`);
    for (const pr of r.problems) process.stdout.write(`     - ${pr}\n`);
    if (r.checkpatch.exitCode !== 0) process.stdout.write(r.checkpatch.output.split('\n').map((l) => `     | ${l}\n`).join(''));
  }
  if (buildEach) {
    for (let i = 1; i <= series.patches.length; i++) {
      const upto: Series = { ...series, patches: series.patches.slice(0, i) };
      info(`building with patches 1..${i} (${series.patches[i - 1]!.name})`);
      await applySeries(tree, upto);
      try {
        await buildEach(tree);
        process.stdout.write(`ok   builds with ${series.patches[i - 1]!.name}\n`);
      } catch (e) {
        failed++;
        process.stdout.write(`FAIL does not build with ${series.patches[i - 1]!.name}\n`);
        if (e instanceof HecaError) process.stdout.write(`${e.format()}\n`);
        break;
      }
    }
  }
  if (failed) throw new HecaError(`${failed} problem(s) in the ${kind} series`, { why: 'see the FAIL lines above', fix: 'fix the commits in the tree, then re-export with tools/patches.ts export' });
  process.stdout.write(`${series.patches.length} patch(es) pass\n`);
}
