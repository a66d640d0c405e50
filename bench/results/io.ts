/**
 * result.json on disk: written atomically (a temporary file renamed over the
 * old one, so a reader or a crash never sees half a file) and validated
 * against the schema (schema.ts) when written and when loaded; a file that
 * does not match is refused with the field that is wrong.
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { HecaError } from '../../tools/core/errors.ts';
import { BenchResultSchema, READABLE_SCHEMA_VERSIONS, RESULT_SCHEMA_VERSION, type BenchResult } from './schema.ts';

/** The published JSON Schema of result.json (bench/results/result.schema.json holds this text). */
export function resultJsonSchema(): string {
  return `${JSON.stringify(BenchResultSchema, null, 2)}\n`;
}

/** "/scenarios/0/runs/1/status" → "scenarios[0].runs[1].status". */
export function fieldName(pointer: string): string {
  if (pointer === '') return '(the whole document)';
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** One schema error as a line: the field, what it should be, what it is. */
function describe(e: ValueError): string {
  const schema = e.schema as { anyOf?: { const?: unknown }[] };
  const allowed = schema.anyOf?.every((s) => s.const !== undefined) ? schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ') : undefined;
  const what = allowed ? `must be one of ${allowed}` : e.message.replace(/^Expected/, 'expected');
  const got = e.value === undefined ? 'it is missing' : `it is ${JSON.stringify(e.value)?.slice(0, 60)}`;
  return `${fieldName(e.path)}: ${what}; ${got}`;
}

/** Problems with `data` as a result, the first `max` of them; empty when it is one. */
export function resultProblems(data: unknown, max = 5): string[] {
  const out: string[] = [];
  for (const e of Value.Errors(BenchResultSchema, data)) {
    out.push(describe(e));
    if (out.length >= max) break;
  }
  return out;
}

/**
 * Write `result` as OUT/result.json, atomically. A result that does not match
 * its own schema is a bug in heca: it is kept as result.json.invalid, the
 * previous result.json stays, and the error names the field.
 */
export function writeResultFile(out: string, result: BenchResult): string {
  const path = join(out, 'result.json');
  const text = `${JSON.stringify(result, null, 2)}\n`;
  const bad = resultProblems(result);
  if (bad.length) {
    writeFileSync(`${path}.invalid`, text);
    throw new HecaError(`the result does not match its schema (version ${RESULT_SCHEMA_VERSION}): ${bad[0]}`, {
      why: 'the engine filled a field the result format does not allow: a bug in heca',
      fix: `the data is kept in ${path}.invalid; bench/results/schema.ts is the format`,
      details: bad.join('\n'),
    });
  }
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
  return path;
}

/** Read and validate one result: a result.json or the directory holding one. Every problem names the path and the field. */
export function loadResult(arg: string): { path: string; result: BenchResult } {
  let path = resolve(arg);
  if (existsSync(path) && statSync(path).isDirectory()) path = join(path, 'result.json');
  if (!existsSync(path)) throw new HecaError(`no result at ${arg}`, { why: `${path} does not exist`, fix: 'pass a result.json written by bench/run.ts, or the --out directory of a run' });
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new HecaError(`${path} is not valid JSON`, { why: (e as Error).message, fix: 'was the run interrupted while writing it? rerun bench/run.ts' });
  }
  const version = typeof data === 'object' && data !== null ? (data as { schema?: unknown }).schema : undefined;
  if (!READABLE_SCHEMA_VERSIONS.some((v) => v === version)) {
    const versions = `${READABLE_SCHEMA_VERSIONS.slice(0, -1).join(', ')} or ${READABLE_SCHEMA_VERSIONS.at(-1)}`;
    throw new HecaError(`${path} is not a heca result this version reads (schema ${versions})`, {
      why: `its "schema" is ${JSON.stringify(version) ?? 'missing'}`,
      fix: 'pass a result.json written by bench/run.ts (a newer format needs a newer heca)',
    });
  }
  const bad = resultProblems(data);
  if (bad.length) {
    throw new HecaError(`${path} is not a valid heca result (schema ${String(version)}): ${bad[0]}`, {
      why: 'a field is missing or has the wrong type: the file was edited, truncated, or written by something else',
      fix: 'rerun bench/run.ts, or fix the field named above (bench/results/result.schema.json is the format)',
      details: bad.join('\n'),
    });
  }
  return { path, result: data as BenchResult };
}
