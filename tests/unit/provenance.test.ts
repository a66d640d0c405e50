/**
 * Where the QEMU of a run came from: a binary named by $HECA_QEMU is
 * recorded as that binary (path, hash, version), never as heca's build;
 * heca's build by its BUILD-INFO.json and the binary's hash.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { qemuProvenance } from '../../bench/engine/provenance.ts';
import { qemuBuildText } from '../../bench/report/report.ts';
import { sha256 } from '../../tools/core/hash.ts';

const d = mkdtempSync(join(tmpdir(), 'heca-provenance-'));
const bin = join(d, 'qemu-system-x86_64');
writeFileSync(bin, 'not really a QEMU');
const buildInfo = join(d, 'BUILD-INFO.json');
writeFileSync(buildInfo, JSON.stringify({ debian_version: '1:10.0.13+ds-0+deb13u1', series: { sha256: 'f'.repeat(64), patches: [{ name: '0001-a.patch' }, { name: '0002-b.patch' }] } }));

test('heca\'s build: its BUILD-INFO.json (version, series) and the binary', async () => {
  const saved = process.env.HECA_QEMU;
  delete process.env.HECA_QEMU;
  try {
    const b = await qemuProvenance(bin, 'QEMU emulator version 10.0.13', buildInfo);
    assert.equal(b, { origin: 'heca-build', version: '1:10.0.13+ds-0+deb13u1', series_sha256: 'f'.repeat(64), patches: ['0001-a.patch', '0002-b.patch'], path: bin, sha256: sha256('not really a QEMU') });
    assert.is(qemuBuildText(b!), `1:10.0.13+ds-0+deb13u1; series 0001-a.patch, 0002-b.patch, sha256 ffffffffffff; binary sha256 ${sha256('not really a QEMU').slice(0, 12)}`);
  } finally {
    if (saved !== undefined) process.env.HECA_QEMU = saved;
  }
});

test('HECA_QEMU: that binary, not heca\'s BUILD-INFO.json even when there is one', async () => {
  const saved = process.env.HECA_QEMU;
  process.env.HECA_QEMU = bin;
  try {
    const b = await qemuProvenance(bin, 'QEMU emulator version 10.1.2 (Debian 1:10.1.2+ds-1)', buildInfo);
    assert.equal(b, { origin: 'HECA_QEMU', path: bin, sha256: sha256('not really a QEMU'), version: 'QEMU emulator version 10.1.2 (Debian 1:10.1.2+ds-1)' });
    assert.match(qemuBuildText(b!), `HECA_QEMU=${bin}, binary sha256 ${sha256('not really a QEMU').slice(0, 12)}: not a heca build`);
  } finally {
    if (saved === undefined) delete process.env.HECA_QEMU;
    else process.env.HECA_QEMU = saved;
  }
});

test.run();
