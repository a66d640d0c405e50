/**
 * What a GitHub Actions job needs from GitHub's REST API, with the job's own
 * token: the newest earlier successful run of a workflow, on the same branch,
 * that still has an artifact of a given name (the nightly's baseline: the
 * artifact itself is then fetched by actions/download-artifact with that
 * run id). Only the job's environment and the API; no gh CLI needed.
 *
 * "No such run" (the first night, or every earlier one failed or expired)
 * is an answer, not an error; an API that cannot be reached or refuses is
 * an error naming the request.
 */
import { HecaError } from '../core/errors.ts';

export interface GithubContext {
  /** https://api.github.com, or a GitHub Enterprise server's. */
  api: string;
  /** owner/name */
  repo: string;
  token: string;
  /** This run, never its own baseline. */
  runId: number;
  branch: string;
}

/** The job's context from the variables Actions sets (GITHUB_TOKEN passed in by the workflow). */
export function githubContext(env: NodeJS.ProcessEnv = process.env): GithubContext {
  const need = (name: string, why: string): string => {
    const v = env[name];
    if (!v) throw new HecaError(`$${name} is not set`, { why, fix: 'run this inside a GitHub Actions job; GITHUB_TOKEN must be passed in: env: { GITHUB_TOKEN: ${{ github.token }} }' });
    return v;
  };
  return {
    api: env.GITHUB_API_URL || 'https://api.github.com',
    repo: need('GITHUB_REPOSITORY', 'it names the repository whose runs are looked at'),
    token: need('GITHUB_TOKEN', 'the API needs the job token (permissions: actions: read)'),
    runId: Number(need('GITHUB_RUN_ID', 'it is this run, left out of the search')),
    branch: need('GITHUB_REF_NAME', 'runs of the same branch only are looked at'),
  };
}

/** The part of fetch() used here (tests pass a fake). */
export type Fetch = (url: string, init: { headers: Record<string, string> }) => Promise<{ ok: boolean; status: number; statusText: string; json(): Promise<unknown> }>;

export interface PreviousRun {
  runId: number;
  createdAt: string;
  url: string;
  artifactId: number;
}

interface WorkflowRuns { workflow_runs: { id: number; created_at: string; html_url: string; conclusion: string | null }[] }
interface Artifacts { artifacts: { id: number; name: string; expired: boolean; workflow_run?: { id?: number } }[] }

async function get<T>(ctx: GithubContext, path: string, fetchFn: Fetch): Promise<T> {
  const url = `${ctx.api}/repos/${ctx.repo}${path}`;
  let res;
  try {
    res = await fetchFn(url, { headers: { Authorization: `Bearer ${ctx.token}`, Accept: 'application/vnd.github+json', 'X-GitHub-Api-Version': '2022-11-28' } });
  } catch (e) {
    throw new HecaError(`GitHub's API could not be reached: GET ${url}`, { why: (e as Error).message, fix: 'check the runner\'s network to the API; rerun the job' });
  }
  if (!res.ok) {
    throw new HecaError(`GitHub's API refused GET ${url}: ${res.status} ${res.statusText}`, {
      why: res.status === 403 || res.status === 404 ? 'the job token may lack the permission (the workflow needs permissions: actions: read), or the workflow file name is wrong' : 'the API answered with an error',
      fix: 'check the workflow\'s permissions and the --workflow name; rerun the job',
    });
  }
  return (await res.json()) as T;
}

/**
 * The newest successful run of `workflow` (its file name) on ctx.branch,
 * other than this one, with an unexpired artifact named `artifact`; undefined
 * when there is none.
 */
export async function previousRunWithArtifact(ctx: GithubContext, o: { workflow: string; artifact: string }, fetchFn: Fetch = fetch): Promise<PreviousRun | undefined> {
  const q = (p: Record<string, string>) => new URLSearchParams(p).toString();
  const runs = await get<WorkflowRuns>(ctx, `/actions/workflows/${encodeURIComponent(o.workflow)}/runs?${q({ branch: ctx.branch, status: 'success', per_page: '50', exclude_pull_requests: 'true' })}`, fetchFn);
  const arts = await get<Artifacts>(ctx, `/actions/artifacts?${q({ name: o.artifact, per_page: '100' })}`, fetchFn);
  const byRun = new Map<number, number>();
  for (const a of arts.artifacts) if (a.name === o.artifact && !a.expired && a.workflow_run?.id !== undefined && !byRun.has(a.workflow_run.id)) byRun.set(a.workflow_run.id, a.id);
  const found = runs.workflow_runs
    .filter((r) => r.id !== ctx.runId && r.conclusion === 'success' && byRun.has(r.id))
    .sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
  return found && { runId: found.id, createdAt: found.created_at, url: found.html_url, artifactId: byRun.get(found.id)! };
}

/** Step outputs in $GITHUB_OUTPUT's format: one name=value a line (values without newlines). */
export function outputLines(values: Record<string, string>): string {
  return Object.entries(values).map(([k, v]) => {
    if (/[\r\n]/.test(v)) throw new RangeError(`output ${k} has a newline`);
    return `${k}=${v}\n`;
  }).join('');
}
