/** Shared CLI plumbing: strict flag parsing with a usage error, and one way to exit on errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { HecaError } from './errors.ts';

export class UsageError extends HecaError {}

export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError((e as Error).message, { why: 'the command line does not match what the command takes', fix: `usage:\n${usage}` });
  }
}

export function intFlag(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} ${v} is not valid`, { why: `it must be a whole number from ${min} to ${max}` });
  }
  return n;
}

/** Run a CLI's main: HecaErrors print what/why/fix and exit 1 (2 for usage); anything else is a bug. */
export function main(fn: () => Promise<void>): void {
  fn().then(
    () => process.exit(process.exitCode ?? 0),
    (e: unknown) => {
      if (e instanceof HecaError) {
        process.stderr.write(`${e.format()}\n`);
        process.exit(e instanceof UsageError ? 2 : 1);
      }
      process.stderr.write(`internal error (a bug in heca): ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(70);
    },
  );
}
