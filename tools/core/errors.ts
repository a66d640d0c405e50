/**
 * One error type for everything heca reports to a user: what failed, why, and
 * what to do about it. CLIs print these three parts and exit non-zero; anything
 * else that escapes is a bug and is printed with its stack.
 */
export class HecaError extends Error {
  readonly why: string;
  readonly fix: string | undefined;
  /** Extra lines worth showing (a log tail, a failing file). */
  readonly details: string | undefined;

  constructor(what: string, opts: { why: string; fix?: string; details?: string; cause?: unknown }) {
    super(what, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HecaError';
    this.why = opts.why;
    this.fix = opts.fix;
    this.details = opts.details;
  }

  format(): string {
    const lines = [`error: ${this.message}`, `  why: ${this.why}`];
    if (this.fix) lines.push(`  fix: ${this.fix}`);
    if (this.details) lines.push(...this.details.trimEnd().split('\n').map((l) => `  | ${l}`));
    return lines.join('\n');
  }
}

/** Last `n` lines of a text, for error details. */
export function tail(text: string, n = 20): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}
