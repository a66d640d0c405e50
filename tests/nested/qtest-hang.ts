/** What the hang watch's report (tests/nested/qtest-watch.sh) says about a hung qtest. */

/** Where a hung qtest was, and the sentence that says so. */
export interface HangStage {
  /**
   * boot: the source guest never wrote to its serial port, so the migration
   * had not started (an L2 firmware stall of nested virtualisation on TCG);
   * migration: it hung in or after the migration; unknown: the report has
   * no serial lines.
   */
  stage: 'boot' | 'migration' | 'unknown';
  text: string;
}

/** Where a hung qtest was, from the watch's report (tests/nested/qtest-watch.sh). */
export function hangStage(out: string): HangStage {
  const src = /src_serial: (\d+) bytes/.exec(out);
  const dst = /dest_serial: (\d+) bytes/.exec(out);
  if (!src) return { stage: 'unknown', text: 'stage unknown (no serial output found)' };
  if (src[1] === '0') return { stage: 'boot', text: 'before the migration: the source guest never booted (an L2 firmware stall, not the migration)' };
  if (dst && dst[1] === '0') return { stage: 'migration', text: 'during or after the migration: the destination guest never wrote to its serial port' };
  return { stage: 'migration', text: 'during or after the migration: both guests wrote to their serial ports' };
}
