/** Kconfig files and fragments: what they set, and what a final .config lacks of them. */

/** CONFIG_X=y / =m / ="..." / "# CONFIG_X is not set" lines of a fragment. */
export function parseConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (set) m.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset) m.set(unset[1]!, 'n');
  }
  return m;
}

/** Options a fragment asks for that the final .config does not have. */
export function unmetOptions(wanted: Map<string, string>, final: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of wanted) {
    const got = final.get(k) ?? 'n';
    if (got !== v) out.push(`${k}=${v} (got ${got})`);
  }
  return out;
}
