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
  const h = hangStage(report(0, 0));
  assert.is(h.stage, 'boot');
  assert.match(h.text, /^before the migration: the source guest never booted/);
});

test('a source guest that wrote: the hang is the migration\'s, and whether the destination ever wrote is said', () => {
  const silent = hangStage(report(3, 0));
  const both = hangStage(report(3, 5));
  assert.equal([silent.stage, both.stage], ['migration', 'migration']);
  assert.match(silent.text, /^during or after the migration: the destination guest never wrote/);
  assert.match(both.text, /^during or after the migration: both guests wrote/);
});

test('a report without the serial lines: unknown', () => {
  const h = hangStage('HUNG: x has not finished after 200 s');
  assert.is(h.stage, 'unknown');
  assert.match(h.text, /^stage unknown/);
});

test.run();
