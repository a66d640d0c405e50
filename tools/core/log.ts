/**
 * Progress and diagnostics go to stderr so that stdout stays machine-readable.
 * `verbose` is process-wide: set once by a CLI from its --verbose flag.
 */
let verboseOn = process.env.HECA_VERBOSE === '1';
const t0 = Date.now();

export function setVerbose(on: boolean): void {
  verboseOn = on;
}

export function isVerbose(): boolean {
  return verboseOn;
}

function stamp(): string {
  const s = (Date.now() - t0) / 1000;
  return `[${s.toFixed(1).padStart(6)}s]`;
}

export function info(msg: string): void {
  process.stderr.write(`${stamp()} ${msg}\n`);
}

export function debug(msg: string): void {
  if (verboseOn) process.stderr.write(`${stamp()} . ${msg}\n`);
}

export function warn(msg: string): void {
  process.stderr.write(`${stamp()} warning: ${msg}\n`);
}

/**
 * A progress line for long work. On a TTY it rewrites one line; otherwise
 * (CI logs) it prints at most one line every `everyMs`.
 */
export class Progress {
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;
  constructor(private readonly label: string, private readonly everyMs = 10_000) {}

  update(detail: string): void {
    const now = Date.now();
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${stamp()} ${this.label}: ${detail.slice(0, 100)}`);
    } else if (now - this.last >= this.everyMs) {
      process.stderr.write(`${stamp()} ${this.label}: ${detail}\n`);
      this.last = now;
    }
  }

  done(detail: string): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${stamp()} ${this.label}: ${detail}\n`);
  }
}
