/**
 * The nested testbed's pure parts: the L1 QEMU command line and kernel
 * parameters, free UDP ports, and the link probe parsers (on outputs of the
 * real tools, captured in tests/fixtures/). Booting is
 * tests/integration/nested.test.ts.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HecaError } from '../../tools/core/errors.ts';
import { repoRoot } from '../../tools/core/paths.ts';
import { chooseL1Accel, freePorts } from '../../bench/testbed/host.ts';
import { deathReport, hangSign, l0TscKhz, l1Args, stallSign, l1KernelArgs, type L1Config } from '../../bench/testbed/nested/l1-host.ts';
import { parseQperf, parseReadBw, parseReadLat } from '../../bench/testbed/nested/link-probes.ts';
import { counterDelta, gsiQpState, parseHwCounters } from '../../bench/testbed/nested/rxe.ts';
import { vmArgs, vmSockets, type VmConfig } from '../../bench/guest/vm.ts';
import { connectOpts, isTcpAddr, tcpAddr } from '../../tools/core/sockaddr.ts';

const cfg: L1Config = {
  name: 'heca-x1-a', dir: '/tmp/l1a', kernel: '/k/bzImage', accel: 'tcg', memMib: 3072, cpus: 2,
  link: { mac: '52:54:00:4e:00:01', addr: '10.214.0.1/24', localPort: 40001, remotePort: 40002 },
  sharedDir: '/tmp/shared', repo: '/src/heca',
};
const fixture = (name: string) => readFileSync(join(repoRoot, 'tests', 'fixtures', name), 'utf8');

function opt(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('L1 QEMU: TCG with -cpu max (SVM for nested KVM), no reboot, the machine root read-only over 9p', () => {
  const a = l1Args(cfg);
  assert.equal(opt(a, '-accel'), ['tcg,thread=multi']);
  assert.equal(opt(a, '-cpu'), ['max']);
  assert.equal(opt(a, '-m'), ['3072M']);
  assert.equal(opt(a, '-smp'), ['2']);
  assert.ok(a.includes('-no-reboot'));
  const fs = opt(a, '-fsdev');
  assert.ok(fs.some((f) => f.startsWith('local,id=root,path=/,') && f.includes('readonly=on')), fs.join(' '));
  assert.ok(fs.some((f) => f.includes('path=/tmp/shared') && !f.includes('readonly')), 'shared dir writable');
  assert.ok(opt(a, '-device').includes('virtio-9p-pci,fsdev=root,mount_tag=/dev/root'));
  assert.ok(opt(a, '-device').includes('virtserialport,chardev=agent,name=heca.agent'));
  assert.ok(opt(a, '-chardev').includes('socket,id=agent,path=/tmp/l1a/agent.sock,server=on,wait=off'));
  assert.equal(opt(a, '-qmp'), ['unix:/tmp/l1a/qmp.sock,server=on,wait=off']);
});

test('L1 QEMU: the link is -netdev dgram between the two chosen loopback ports, NIC by MAC', () => {
  const a = l1Args(cfg);
  const nd = opt(a, '-netdev')[0]!;
  assert.match(nd, /^dgram,id=link,/);
  assert.match(nd, 'local.host=127.0.0.1,local.port=40001');
  assert.match(nd, 'remote.host=127.0.0.1,remote.port=40002');
  assert.ok(opt(a, '-device').includes('virtio-net-pci,netdev=link,mac=52:54:00:4e:00:01'));
  assert.equal(opt(l1Args({ ...cfg, accel: 'kvm' }), '-cpu'), ['host']);
});

test('L1 kernel parameters: 9p root, l1-init from the checkout, and the heca_* settings for init', () => {
  const k = l1KernelArgs(cfg).split(' ');
  assert.ok(k.includes('rootfstype=9p'));
  assert.ok(k.includes('ro'));
  assert.ok(k.includes('panic=-1'), 'a panic ends QEMU (with -no-reboot) instead of hanging');
  assert.ok(k.includes('init=/src/heca/bench/testbed/nested/l1-init'));
  for (const kv of ['heca_name=heca-x1-a', 'heca_mac=52:54:00:4e:00:01', 'heca_addr=10.214.0.1/24', 'heca_repo=/src/heca', 'heca_shared=/tmp/shared']) {
    assert.ok(k.includes(kv), kv);
  }
  // init only gets parameters without a dot as environment variables.
  for (const p of k.filter((x) => x.startsWith('heca_'))) assert.not.match(p.split('=')[0]!, '.');
});

test('L1 kernel parameters: under TCG both hosts get this machine\'s TSC rate, so an L2 guest keeps its TSC rate from A to B', () => {
  const cpuinfo = 'processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.140\ncache size\t: 512 KB\n';
  assert.is(l0TscKhz(cpuinfo), 2596140);
  assert.is(l0TscKhz('processor\t: 0\n'), undefined, 'no cpu MHz line: no parameter');
  assert.is(l0TscKhz('cpu MHz\t\t: 0.000\n'), undefined);
  assert.ok(l1KernelArgs(cfg, { tscKhz: 2596140 }).split(' ').includes('tsc_early_khz=2596140'));
  assert.not.match(l1KernelArgs(cfg, { tscKhz: null }), 'tsc_early_khz');
  assert.not.match(l1KernelArgs({ ...cfg, accel: 'kvm' }, { tscKhz: 2596140 }), 'tsc_early_khz', 'with KVM at L0 the hypervisor says');
  // By default, this machine's rate when it has one.
  assert.is(l1KernelArgs(cfg).includes('tsc_early_khz='), l0TscKhz() !== undefined);
  // This machine: the value it would pass, if any, is a plausible TSC rate.
  const here = l0TscKhz();
  assert.ok(here === undefined || (here > 500_000 && here < 10_000_000), String(here));
});

test('L2 QEMU in an L1 host: QMP and the control channel on TCP, reached through port forwards', () => {
  const base: VmConfig = { name: 'heca-src', dir: '/r/src', accel: 'kvm', memMib: 256, kernel: '/k', initrd: '/i', append: 'x' };
  const c: VmConfig = { ...base, tcp: { listen: { host: '0.0.0.0', qmpPort: 5101, ctlPort: 5102 }, qmp: tcpAddr('127.0.0.1', 40001), ctl: tcpAddr('127.0.0.1', 40002) } };
  const a = vmArgs(c);
  assert.equal(opt(a, '-qmp'), ['tcp:0.0.0.0:5101,server=on,wait=off,nodelay=on']);
  assert.ok(opt(a, '-chardev').includes('socket,id=ctl,host=0.0.0.0,port=5102,server=on,wait=off,nodelay=on'));
  assert.equal(vmSockets(c), { qmp: 'tcp:127.0.0.1:40001', ctl: 'tcp:127.0.0.1:40002' });
  assert.equal(vmSockets(base), { qmp: '/r/src/qmp.sock', ctl: '/r/src/ctl.sock' });
  assert.equal(connectOpts('tcp:127.0.0.1:40001'), { host: '127.0.0.1', port: 40001 });
  assert.equal(connectOpts('/r/src/qmp.sock'), { path: '/r/src/qmp.sock' });
  assert.ok(isTcpAddr('tcp:localhost:1') && !isTcpAddr('/tmp/tcp:x'));
});

test('L1 QEMU: a management NIC, isolated, forwarding loopback ports to 10.0.2.15', () => {
  const a = l1Args({ ...cfg, mgmt: { mac: '52:54:00:4e:01:01', forwards: [{ hostPort: 40001, guestPort: 5101 }, { hostPort: 40002, guestPort: 5102 }] } });
  assert.ok(opt(a, '-netdev').includes('user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:40001-10.0.2.15:5101,hostfwd=tcp:127.0.0.1:40002-10.0.2.15:5102'));
  assert.ok(opt(a, '-device').includes('virtio-net-pci,netdev=mgmt,mac=52:54:00:4e:01:01'));
  assert.match(l1KernelArgs({ ...cfg, mgmt: { mac: '52:54:00:4e:01:01', forwards: [] } }), 'heca_mgmt_mac=52:54:00:4e:01:01');
  assert.not.ok(opt(l1Args(cfg), '-netdev').some((n) => n.startsWith('user')), 'none unless asked for');
});

test('L1 accelerator: KVM only with a real KVM that has nested on, else TCG -cpu max; the reason says which', () => {
  const none = () => undefined;
  assert.is(chooseL1Accel({ devKvm: false, pvm: false }, none).accel, 'tcg');
  const pvm = chooseL1Accel({ devKvm: true, pvm: true }, () => '1');
  assert.is(pvm.accel, 'tcg');
  assert.match(pvm.reason, 'kvm_pvm');
  const amd = chooseL1Accel({ devKvm: true, pvm: false }, (p) => (p.includes('kvm_amd') ? '1' : undefined));
  assert.equal([amd.accel, /kvm_amd.nested=1/.test(amd.reason)], ['kvm', true]);
  const off = chooseL1Accel({ devKvm: true, pvm: false }, (p) => (p.includes('kvm_intel') ? 'N' : undefined));
  assert.equal([off.accel, /nested=N/.test(off.reason)], ['tcg', true]);
  assert.is(chooseL1Accel({ devKvm: true, pvm: false }, none).accel, 'tcg');
});

test('freePorts: distinct UDP and TCP ports that can be bound again', async () => {
  const t = await freePorts('tcp', 4);
  assert.is(new Set(t).size, 4);
  const p = await freePorts('udp', 3);
  assert.is(new Set(p).size, 3);
  for (const n of [...t, ...p]) assert.ok(n > 1023 && n < 65536, String(n));
  // Released: each can be taken again right away.
  for (const port of t) {
    const srv = createServer();
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      srv.listen(port, '127.0.0.1', () => res());
    });
    await new Promise<void>((r) => srv.close(() => r()));
  }
  for (const port of p) {
    const s = createSocket('udp4');
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind(port, '127.0.0.1', () => res());
    });
    await new Promise<void>((r) => s.close(() => r()));
  }
});

test('hangSign: the line that says why an L1 boot hung', () => {
  // The console of a real hang under TCG (a lost timer interrupt on CPU 0).
  assert.is(hangSign(fixture('l1-console-hung.txt')), "rcu: rcu_preempt kthread timer wakeup didn't happen for 20999 jiffies! g-1175 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402");
  assert.is(hangSign('[    2.1] foo\n[  40.0] Kernel panic - not syncing: No working init found.\n'), 'Kernel panic - not syncing: No working init found.');
  assert.is(hangSign('[    2.1] heca-l1-init: up in 7.31 s\n'), undefined);
  assert.is(hangSign(''), undefined);
  // A stall ends the boot attempt early; a panic does not need to (QEMU exits by itself).
  assert.match(stallSign(fixture('l1-console-hung.txt')) ?? '', "timer wakeup didn't happen");
  assert.is(stallSign('[   40.0] Kernel panic - not syncing: No working init found.\n'), undefined);
  assert.is(stallSign('[   60.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]\n'), 'watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]');
  assert.is(stallSign('[    7.3] heca-l1-init: up in 7.31 s; agent on /dev/vport4p1\n'), undefined);
});

test('ib_read_lat output (perftest) is read: every column of the result row', () => {
  assert.equal(parseReadLat(fixture('ib_read_lat.txt')), {
    bytes: 4096, iterations: 1000, t_min_us: 552.64, t_max_us: 8551.35, t_typical_us: 1053.12, t_avg_us: 1672.82, t_stdev_us: 1428.21, p99_us: 7495.82, p999_us: 8551.35,
  });
});

test('ib_read_bw output (perftest) is read: every column, and the unit from its header', () => {
  assert.equal(parseReadBw(fixture('ib_read_bw.txt')), { bytes: 4096, iterations: 2000, bw_peak_mb_s: 22.24, bw_avg_mb_s: 12.27, msg_rate_mpps: 0.003141, unit: 'MB/sec' });
});

test('qperf tcp_lat / tcp_bw output is read, units converted', () => {
  assert.equal(parseQperf('tcp_lat:\n    latency  =  55.3 us\n'), { latency_us: 55.3 });
  assert.equal(parseQperf('tcp_lat:\n    latency  =  1.5 ms\n'), { latency_us: 1500 });
  assert.equal(parseQperf('tcp_bw:\n    bw  =  117 MB/sec\n'), { bw_bytes_s: 117e6 });
  assert.equal(parseQperf('tcp_bw:\n    bw  =  1.2 GB/sec\n'), { bw_bytes_s: 1.2e9 });
  assert.equal(parseQperf(fixture('qperf.txt')), { latency_us: 587, bw_bytes_s: 41.4e6 });
});

test('deathReport: the oops and what follows it, from an L1 host that died under rdma/recover-fallback', () => {
  const text = readFileSync(join(repoRoot, 'tests', 'fixtures', 'l1-console-oops.txt'), 'utf8');
  const r = deathReport(text);
  assert.ok(r);
  assert.match(r.split('\n')[0]!, /Oops: general protection fault, probably for non-canonical address 0xf887f800003c0/);
  assert.match(r, /RIP: 0010:__handle_mm_fault\+0x12c/);
  assert.is(r.split('\n').length, 12);
  assert.is(deathReport('[    1.0] heca-l1-init: up in 2.74 s\n'), undefined);
});

test('gsiQpState: the state of the device\'s QP1, from rdma -j res show qp (as an L1 host printed it after rdma/link-down)', () => {
  // rdma res show qp, in an L1 host after rdma/link-down: "link rxe0/1 lqpn 1 type GSI state ERR sq-psn 6 comm [ib_core]"
  const after = '[{"ifindex":2,"ifname":"rxe0","port":1,"lqpn":1,"type":"GSI","state":"ERR","sq-psn":6,"comm":"ib_core"},{"ifindex":2,"ifname":"rxe0","port":1,"lqpn":17,"type":"RC","state":"RTS","comm":"qemu"}]';
  assert.is(gsiQpState(after, 'rxe0'), 'ERR');
  assert.is(gsiQpState(after.replace('"ERR"', '"RTS"'), 'rxe0'), 'RTS');
  assert.is(gsiQpState(after, 'rxe1'), undefined);
  assert.is(gsiQpState('', 'rxe0'), undefined);
  assert.is(gsiQpState('not json', 'rxe0'), undefined);
});

test('parseHwCounters / counterDelta: rxe0\'s port counters, and what a run added to them', () => {
  const dir = '/sys/class/infiniband/rxe0/ports/1/hw_counters';
  const before = parseHwCounters(`${dir}/sent_pkts:100\n${dir}/duplicate_request:2\n${dir}/lifespan:10\ngrep: ${dir}/x: Permission denied\n`);
  assert.equal(before, { sent_pkts: 100, duplicate_request: 2, lifespan: 10 });
  const after = parseHwCounters(`${dir}/sent_pkts:250\n${dir}/duplicate_request:7\n${dir}/lifespan:10\n${dir}/rcvd_seq_err:4\n`);
  assert.equal(counterDelta(before, after), { sent_pkts: 150, duplicate_request: 5, lifespan: 0, rcvd_seq_err: 4 });
  // The device re-created meanwhile (repairRxe): its counts since then.
  assert.equal(counterDelta({ sent_pkts: 500 }, { sent_pkts: 30 }), { sent_pkts: 30 });
  assert.equal(parseHwCounters(''), {});
});

test('perftest output without a result table is an error that shows the output', () => {
  try {
    parseReadLat(' Couldn\'t connect to 10.214.0.2:18515\nUnable to open file descriptor for socket connection');
    assert.unreachable('parsed');
  } catch (e) {
    assert.instance(e, HecaError);
    assert.match((e as HecaError).details ?? '', "Couldn't connect");
  }
});

test.run();
