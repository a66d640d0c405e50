/**
 * "run i of n, ~time left" for a bench invocation: the time left is the
 * runs still to come, each expected to take as long as its scenario's runs
 * took so far (or, before a scenario's first run, as long as any run took).
 */

export class RunClock {
  private readonly took = new Map<string, number[]>();

  /** Record that a run of `scenario` took `ms`. */
  done(scenario: string, ms: number): void {
    const t = this.took.get(scenario) ?? [];
    t.push(ms);
    this.took.set(scenario, t);
  }

  /** Expected ms for the runs of `left` (scenario names, one entry per run); undefined before any run ended. */
  estimate(left: readonly string[]): number | undefined {
    const all = [...this.took.values()].flat();
    if (all.length === 0) return left.length ? undefined : 0;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const overall = mean(all);
    return left.reduce((sum, s) => {
      const t = this.took.get(s);
      return sum + (t ? mean(t) : overall);
    }, 0);
  }
}

/** "~40 s", "~4 min", "~1 h 20 min". */
export function formatLeft(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `~${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `~${m} min`;
  return `~${Math.floor(m / 60)} h ${m % 60} min`;
}
