/**
 * npx tsx tools/ci.ts previous-run --workflow FILE --artifact NAME --into DIR
 *
 * For GitHub Actions jobs (.github/workflows/nightly.yml). previous-run finds
 * the newest earlier successful run of the workflow on this branch that still
 * has the artifact, and sets the step outputs
 *   run-id     that run's id, for actions/download-artifact (empty: none)
 *   baseline   DIR, where that step is to put it; "none" when there is no such run
 * "No such run" (the first night) is not an error. Outside Actions (no
 * $GITHUB_OUTPUT) the outputs are printed.
 */
import { appendFileSync } from 'node:fs';
import { main, parseFlags, UsageError } from './core/cli.ts';
import { retrying } from './core/exec.ts';
import { info } from './core/log.ts';
import { githubContext, outputLines, previousRunWithArtifact } from './ci/github.ts';

const usage = `  npx tsx tools/ci.ts previous-run --workflow FILE --artifact NAME --into DIR
    --workflow FILE   the workflow's file name (nightly.yml)
    --artifact NAME   the artifact the run must still have
    --into DIR        where the download step puts it: the "baseline" output when found
  Needs GITHUB_TOKEN (actions: read), GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_REF_NAME.`;

main(async () => {
  const [sub, ...rest] = process.argv.slice(2);
  if (sub === '--help' || sub === '-h') return void process.stdout.write(`${usage}\n`);
  if (sub !== 'previous-run') throw new UsageError(sub ? `unknown subcommand ${sub}` : 'no subcommand', { why: 'the subcommand is previous-run', fix: `usage:\n${usage}` });
  const { values } = parseFlags(rest, { workflow: { type: 'string' }, artifact: { type: 'string' }, into: { type: 'string' } }, usage);
  if (!values.workflow || !values.artifact || !values.into) throw new UsageError('--workflow, --artifact and --into are all needed', { why: 'they name what to look for and where it goes', fix: `usage:\n${usage}` });
  const ctx = githubContext();
  const found = await retrying(3, 5000, () => previousRunWithArtifact(ctx, { workflow: values.workflow!, artifact: values.artifact! }));
  if (found) info(`previous run with artifact ${values.artifact}: ${found.runId} of ${found.createdAt} (${found.url})`);
  else info(`no earlier successful run of ${values.workflow} on ${ctx.branch} has an artifact ${values.artifact}: nothing to compare with (the first run?)`);
  const out = outputLines({ 'run-id': found ? String(found.runId) : '', baseline: found ? values.into : 'none' });
  if (process.env.GITHUB_OUTPUT) appendFileSync(process.env.GITHUB_OUTPUT, out);
  else process.stdout.write(out);
});
