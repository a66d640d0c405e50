/** Where a hung RDMA qtest was, from the hang watch's report (tests/nested/qtest-hang.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hangStage } from '../../tests/nested/qtest-hang.ts';

// Lines as tests/nested/qtest-watch.sh writes them (a real report of a hung rdma/link-down run).
const report = (src: number, dst: number): string => [
  'HUNG: /work/main/build/qemu/build/tests/qtest/migration-test --full -p /x86_64/migration/postcopy/rdma/link-down has not finished after 200 s; what it is doing:',
  `/tmp/migration-test-O6EJZ3/src_serial: ${src} bytes, ends with: ${src ? ' A B B' : ''}`,
  `/tmp/migration-test-O6EJZ3/dest_serial: ${dst} bytes, ends with: `,
  '== pid 1994: /work/main/build/qemu/build/qemu-system-x86_64 -L /usr/share/seabios',
].join('\n');

test('a source guest that never wrote to its serial port never booted: the hang came before the migration', () => {
  assert.match(hangStage(report(0, 0)), /^before the migration: the source guest never booted/);
});

test('a source guest that wrote: the hang is the migration\'s, and whether the destination ever wrote is said', () => {
  assert.match(hangStage(report(3, 0)), /^during or after the migration: the destination guest never wrote/);
  assert.match(hangStage(report(3, 5)), /^during or after the migration: both guests wrote/);
});

test('a report without the serial lines: unknown', () => {
  assert.match(hangStage('HUNG: x has not finished after 200 s'), /^stage unknown/);
});

test.run();
