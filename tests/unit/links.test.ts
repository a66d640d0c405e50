/**
 * Link profiles: names, parsing, the tc arguments each profile shapes with.
 * (Whether this kernel can shape them is tests/integration/testbed-local.test.ts.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/core/errors.ts';
import { describeLink, LINK_NAMES, LINK_PROFILES, mtuArgs, onPath, parseLink, requireNetnsHost, shapingArgs, tbfBurstBytes } from '../../bench/testbed/links.ts';
import { testbedNames } from '../../bench/testbed/local/testbed.ts';
import { errorOf } from '../helpers.ts';

test('the five profiles, with their rates, delays and MTUs', () => {
  assert.equal([...LINK_NAMES].sort(), ['jumbo', 'lan10g', 'lan1g', 'unlimited', 'wan']);
  assert.is(LINK_PROFILES.jumbo.mtu, 9000);
  assert.is(LINK_PROFILES.jumbo.rateBitPerS, null);
  assert.ok(LINK_NAMES.filter((n) => n !== 'jumbo').every((n) => LINK_PROFILES[n].mtu === 1500));
  assert.is(LINK_PROFILES.lan1g.rateBitPerS, 1e9);
  assert.is(LINK_PROFILES.lan10g.rateBitPerS, 1e10);
  assert.is(LINK_PROFILES.wan.rateBitPerS, 1e8);
  assert.is(LINK_PROFILES.wan.rttMs, 20);
  assert.is(LINK_PROFILES.unlimited.rateBitPerS, null);
  for (const n of LINK_NAMES) {
    assert.is(LINK_PROFILES[n].name, n);
    assert.ok(describeLink(n).startsWith(`${n}: `), describeLink(n));
  }
  assert.match(describeLink('wan'), '20 ms');
});

test('parseLink accepts the names (any case, trimmed)', () => {
  assert.is(parseLink('lan1g'), 'lan1g');
  assert.is(parseLink('LAN10G'), 'lan10g');
  assert.is(parseLink(' wan '), 'wan');
  assert.is(parseLink('unlimited'), 'unlimited');
});

test('an unknown link name is a HecaError listing every valid name', () => {
  for (const bad of ['lan100g', '', 'toString', '__proto__']) {
    try {
      parseLink(bad);
      assert.unreachable(`"${bad}" was accepted`);
    } catch (e) {
      assert.instance(e, HecaError);
      const err = e as HecaError;
      assert.match(err.message, `"${bad}"`);
      for (const n of LINK_NAMES) {
        assert.match(err.why, n);
        assert.match(err.fix ?? '', n);
      }
    }
  }
});

test('rate profiles shape with tbf on the given device; unlimited adds nothing', () => {
  assert.equal(shapingArgs('unlimited', 'hsx'), []);
  const one = shapingArgs('lan1g', 'hsx');
  assert.is(one.length, 1);
  assert.equal(one[0]?.slice(0, 6), ['qdisc', 'replace', 'dev', 'hsx', 'root', 'tbf']);
  const a = one[0] ?? [];
  assert.is(a[a.indexOf('rate') + 1], '1000000000bit');
  assert.is(a[a.indexOf('burst') + 1], String(tbfBurstBytes(1e9)));
  const ten = shapingArgs('lan10g', 'hdx')[0] ?? [];
  assert.is(ten[ten.indexOf('rate') + 1], '10000000000bit');
  assert.is(ten[3], 'hdx');
});

test('tbf bursts: 2 ms at the rate, never under 32 KiB', () => {
  assert.is(tbfBurstBytes(1e9), 250_000);
  assert.is(tbfBurstBytes(1e10), 2_500_000);
  assert.is(tbfBurstBytes(1e8), 32 * 1024);
});

test('wan shapes with netem: half the RTT each way, at 100 Mbit/s', () => {
  const a = shapingArgs('wan', 'hsx')[0] ?? [];
  assert.is(a[5], 'netem');
  assert.is(a[a.indexOf('delay') + 1], '10ms');
  assert.is(a[a.indexOf('rate') + 1], '100000000bit');
  assert.ok(Number(a[a.indexOf('limit') + 1]) >= 1000);
});

test('testbed names fit in 15-character interface names', () => {
  const n = testbedNames('abcdefghijkl');
  assert.is(n.src, 'heca-abcdefghijkl-src');
  assert.is(n.dst, 'heca-abcdefghijkl-dst');
  assert.ok(n.srcDev.length <= 15 && n.dstDev.length <= 15);
  assert.is.not(n.srcDev, n.dstDev);
});

test('onPath looks in PATH only', () => {
  assert.ok(onPath('sh', '/bin:/usr/bin'));
  assert.not.ok(onPath('sh', '/nonexistent'));
  assert.not.ok(onPath('sh', ''));
});


test('the testbed refuses to start without root, saying how to run it', () => {
  const getuid = process.getuid;
  process.getuid = () => 1000;
  try {
    const e = errorOf(() => requireNetnsHost('the local testbed'));
    assert.match(e.message, 'needs root');
    assert.match(e.fix ?? '', 'sudo');
  } finally {
    process.getuid = getuid;
  }
});

test('the testbed refuses to start without ip/tc, pointing at setup-host', () => {
  const getuid = process.getuid;
  const path = process.env.PATH;
  process.getuid = () => 0;
  process.env.PATH = '/nonexistent';
  try {
    const e = errorOf(() => requireNetnsHost('the local testbed'));
    assert.match(e.message, 'ip and tc');
    assert.match(e.fix ?? '', 'tools/setup-host.sh');
  } finally {
    process.getuid = getuid;
    process.env.PATH = path;
  }
});

test('jumbo sets the MTU on the given device; the others leave the default', () => {
  assert.equal(mtuArgs('jumbo', 'link0'), ['link', 'set', 'dev', 'link0', 'mtu', '9000']);
  assert.equal(mtuArgs('unlimited', 'link0'), []);
  assert.equal(shapingArgs('jumbo', 'link0'), [], 'jumbo is unshaped');
});

test.run();
