/**
 * Checks on one patch file of a series: the form a maintainer expects
 * (`subsystem: summary` subject, a body, a Signed-off-by) and the tree's own
 * scripts/checkpatch.pl.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.ts';

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
  const args = kind === 'linux' ? ['--no-tree', '--strict', '--terse', '--show-types', patchPath] : [patchPath];
  const r = await run('perl', [join(tree, 'scripts', 'checkpatch.pl'), ...args], { cwd: tree, allowFail: true, probe: true });
  const output = `${r.stdout}${r.stderr}`.trim();
  if (r.exitCode !== 0) problems.push('scripts/checkpatch.pl reports errors');
  return { name, problems, checkpatch: { exitCode: r.exitCode, output } };
}
