/** What the hang watch's report (tests/nested/qtest-watch.sh) says about a hung qtest. */

/**
 * Where a hung qtest was, from the watch's report (tests/nested/qtest-watch.sh):
 * a source guest that never wrote to its serial port never booted (a stall of
 * the L2 guest in its firmware, seen under nested virtualisation on TCG), so
 * the migration had not started; otherwise it hung in or after it.
 */
export function hangStage(out: string): string {
  const src = /src_serial: (\d+) bytes/.exec(out);
  const dst = /dest_serial: (\d+) bytes/.exec(out);
  if (!src) return 'stage unknown (no serial output found)';
  if (src[1] === '0') return 'before the migration: the source guest never booted (an L2 firmware stall, not the migration)';
  if (dst && dst[1] === '0') return 'during or after the migration: the destination guest never wrote to its serial port';
  return 'during or after the migration: both guests wrote to their serial ports';
}
