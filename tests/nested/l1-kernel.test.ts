/**
 * The L1 kernel has what the nested testbed uses. It is built from allnoconfig
 * and kernel-patches/config/ only (tools/build/kernel.ts), so anything the
 * fragments forget is simply missing: one L1 host booted the way the testbed
 * boots them (bench/testbed/nested/l1-host.ts: L0's root over 9p, virtio NICs and serial
 * port, l1-init, the agent) must show
 *   - both CPUs, its root and the shared directory on 9p;
 *   - the virtio devices bound to their drivers (9p x2, net x2, console);
 *   - /dev/kvm that runs a guest: an L2 QEMU under -accel kvm executes a few
 *     instructions and exits through isa-debug-exit; kvm_amd/kvm_intel nested;
 *   - /dev/userfaultfd (post-copy);
 *   - a Soft-RoCE device on link0 (`rdma link add`), ACTIVE, seen by
 *     libibverbs, carrying an RDMA READ (perftest, loopback);
 *   - TCP through qperf, whose server needs IPv6 (the link probes use it);
 *   - the testbed's qdiscs on link0 (netem, tbf, and htb), a veth into a netns;
 *   - a power-off (sysrq 'o', ACPI) that ends its QEMU.
 * A kernel built without one of them fails here, naming the command that failed.
 *
 *   node --import tsx tests/nested/l1-kernel.test.ts   (HECA_BUILD_DIR picks the kernel)
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firmwareDirs, l1HostQemu, qemuBinary } from '../../tools/core/paths.ts';
import { pollUntil } from '../../tools/core/poll.ts';
import { chooseL1Accel, freePorts } from '../../bench/testbed/host.ts';
import { L1Host } from '../../bench/testbed/nested/l1-host.ts';
import { shapingArgs } from '../../bench/testbed/links.ts';
import { l1KernelPath } from '../../bench/testbed/nested/testbed.ts';

const dir = mkdtempSync(join(tmpdir(), 'heca-l1-kernel-'));
const ADDR = '10.214.7.1';
let host: L1Host | undefined;

const sh = async (script: string, timeoutMs = 20_000): Promise<string> => {
  assert.ok(host, 'the host is up');
  return (await host.agent.exec(['sh', '-c', script], { timeoutMs })).stdout;
};

test('an L1 host boots on the heca kernel', async () => {
  const shared = join(dir, 'shared');
  mkdirSync(shared, { recursive: true });
  const [lp, rp] = await freePorts('udp', 2);
  const [f1, f2] = await freePorts('tcp', 2);
  host = await L1Host.bootRetrying(l1HostQemu(), {
    name: 'heca-kcheck-a', dir, kernel: l1KernelPath(), accel: chooseL1Accel().accel, memMib: 1024, cpus: 2,
    link: { mac: '52:54:00:4e:00:21', addr: `${ADDR}/24`, localPort: lp!, remotePort: rp! },
    sharedDir: shared,
    mgmt: { mac: '52:54:00:4e:01:21', forwards: [{ hostPort: f1!, guestPort: 5101 }, { hostPort: f2!, guestPort: 5102 }] },
  }, { bootTimeoutMs: 90_000, attempts: 2 });
  assert.match(host.hello.kernel, /^6\.12\./);
  console.log(`  ${host.name} up in ${(host.bootMs / 1000).toFixed(1)} s, kernel ${host.hello.kernel}`);
  assert.is((await sh('nproc')).trim(), '2', 'both CPUs (SMP, ACPI MADT)');
});

test('its root is L0\'s over 9p, and the shared directory is 9p too', async () => {
  const mounts = (await sh('cat /proc/mounts')).split('\n').map((l) => l.split(' '));
  const at = (path: string) => mounts.find((m) => m[1] === path);
  assert.is(at('/')?.[2], '9p', 'root on 9p');
  assert.match(at('/')?.[3] ?? '', /^ro,/, 'read-only');
  assert.is(at(join(dir, 'shared'))?.[2], '9p', 'shared directory on 9p');
  writeFileSync(join(dir, 'shared', 'from-l0'), 'seen in L1');
  assert.is(await sh(`cat ${join(dir, 'shared', 'from-l0')}`), 'seen in L1');
});

test('virtio devices: 9p x2, net x2, console, bound to their drivers', async () => {
  const drivers = (await sh('for d in /sys/bus/virtio/devices/*; do basename "$(readlink "$d/driver")"; done')).trim().split('\n').sort();
  assert.equal(drivers, ['9pnet_virtio', '9pnet_virtio', 'virtio_console', 'virtio_net', 'virtio_net']);
  assert.match(await sh('ip -br link show link0; ip -br link show mgmt0'), /link0\s+UP[\s\S]*mgmt0\s+UP/);
  assert.match(await sh('ls /sys/class/virtio-ports/*/name | xargs cat'), 'heca.agent');
});

test('nested KVM: /dev/kvm runs an L2 guest', async () => {
  // A 64 KiB BIOS whose reset vector writes 0x31 to isa-debug-exit: QEMU exits (0x31 << 1) | 1 = 99.
  const bios = Buffer.alloc(64 * 1024, 0xf4);
  Buffer.from([0xb0, 0x31, 0xe6, 0xf4, 0xf4]).copy(bios, 0xfff0);
  const biosPath = join(dir, 'shared', 'exit-bios.bin');
  writeFileSync(biosPath, bios);
  assert.ok(host);
  const r = await host.agent.exec([qemuBinary(), '-machine', 'pc', '-accel', 'kvm', '-cpu', 'host', '-m', '16', '-nodefaults', '-no-user-config', '-display', 'none',
    '-bios', biosPath, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', ...firmwareDirs.filter((d) => existsSync(d)).flatMap((d) => ['-L', d])], { timeoutMs: 60_000, allowFail: true });
  assert.is(r.exitCode, 99, `the L2 guest ran and exited through isa-debug-exit (QEMU: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.exitCode}`})`);
  // Both vendor modules are built in; the CPU's flag says which one runs.
  const mod = (await sh('grep -qw svm /proc/cpuinfo && echo kvm_amd || echo kvm_intel')).trim();
  const nested = (await sh(`cat /sys/module/${mod}/parameters/nested`)).trim();
  assert.ok(['1', 'Y'].includes(nested), `${mod}.nested is on (got ${nested})`);
});

test('/dev/userfaultfd for post-copy', async () => {
  await sh('test -c /dev/userfaultfd');
});

test('Soft-RoCE: rxe0 on link0 is ACTIVE, libibverbs sees it, an RDMA READ goes through', async () => {
  assert.ok(host);
  const h = host;
  await h.agent.exec(['rdma', 'link', 'add', 'rxe0', 'type', 'rxe', 'netdev', 'link0'], { timeoutMs: 20_000 });
  const state = await pollUntil(async () => {
    const r = await h.agent.exec(['rdma', '-j', 'link', 'show', 'rxe0/1'], { timeoutMs: 10_000 });
    const l = (JSON.parse(r.stdout) as { state: string; netdev?: string }[])[0];
    return l?.state === 'ACTIVE' ? l : undefined;
  }, { timeoutMs: 15_000, everyMs: 200, timeout: () => new Error('rxe0 is not ACTIVE') });
  assert.is(state.netdev, 'link0');
  assert.match(await sh('ibv_devices'), 'rxe0');
  // Loopback: server and client on this host's own address, on the one rxe device.
  const log = join(dir, 'shared', 'ib_read_lat-server.log');
  const args = ['-d', 'rxe0', '-s', '4096', '-n', '100', '-p', '18515', '-F'];
  const server = await h.agent.spawn(['ib_read_lat', ...args], { logFile: log });
  try {
    let last = '';
    const r = await pollUntil(async () => {
      const c = await h.agent.exec(['ib_read_lat', ...args, ADDR], { timeoutMs: 60_000, allowFail: true });
      last = `${c.stdout}${c.stderr}`.trim().split('\n').slice(-5).join('\n');
      return c.exitCode === 0 ? c : undefined; // the server may not listen yet
    }, { timeoutMs: 90_000, everyMs: 1000, timeout: () => new Error(`ib_read_lat never completed over rxe0; the client said:\n${last}`) });
    assert.match(r.stdout, /4096\s+100\s+[\d.]+/, 'a 4 KiB READ latency line');
  } finally {
    await h.agent.kill(server.pid, 'SIGKILL');
  }
});

test('TCP through qperf (its server binds an IPv6 socket), on loopback', async () => {
  assert.ok(host);
  const h = host;
  const server = await h.agent.spawn(['qperf'], { logFile: join(dir, 'shared', 'qperf-server.log') });
  try {
    let last = '';
    const r = await pollUntil(async () => {
      const c = await h.agent.exec(['qperf', '127.0.0.1', '-t', '1', 'tcp_lat'], { timeoutMs: 30_000, allowFail: true });
      last = `${c.stdout}${c.stderr}`.trim();
      return c.exitCode === 0 && c.stdout.includes('latency') ? c : undefined; // the server may not listen yet
    }, { timeoutMs: 30_000, everyMs: 500, timeout: () => new Error(`qperf tcp_lat never completed; the client said: ${last}; the server's log: ${readFileSync(join(dir, 'shared', 'qperf-server.log'), 'utf8').trim()}`) });
    assert.match(r.stdout, /latency\s*=/);
  } finally {
    await h.agent.kill(server.pid, 'SIGKILL');
  }
});

test('link shaping: the testbed\'s netem and tbf qdiscs, and htb, on link0', async () => {
  for (const [profile, kind] of [['wan', 'netem'], ['lan1g', 'tbf']] as const) {
    for (const a of shapingArgs(profile, 'link0')) await sh(`tc ${a.join(' ')}`);
    const q = JSON.parse(await sh('tc -j qdisc show dev link0')) as { kind: string }[];
    assert.ok(q.some((x) => x.kind === kind), `${kind} on link0 (${profile})`);
  }
  await sh('tc qdisc del dev link0 root; tc qdisc add dev link0 root handle 1: htb default 10 && tc class add dev link0 parent 1: classid 1:10 htb rate 100mbit');
  assert.match(await sh('tc qdisc show dev link0'), /qdisc htb 1: root/);
  await sh('tc qdisc del dev link0 root');
});

test('ss -K kills an idle TCP connection (sock_diag destroy: the bench\'s link cut)', async () => {
  // A server and an idle client on loopback; ss -K on the client's side must end both.
  const script = [
    "const net = require('node:net'); const { execFileSync } = require('node:child_process');",
    "const srv = net.createServer((c) => c.on('error', () => {})).listen(5561, '127.0.0.1', () => {",
    "  const c = net.connect(5561, '127.0.0.1', () => {",
    "    c.on('error', (e) => { console.log('client: ' + e.code); process.exit(0); });",
    "    c.on('close', () => { console.log('client: closed'); process.exit(0); });",
    "    const out = execFileSync('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', ':5561'], { encoding: 'utf8' });",
    "    console.log('ss -K: ' + JSON.stringify(out.trim()));",
    "    setTimeout(() => { console.log('client: still open'); process.exit(1); }, 5000);",
    "  });",
    "});",
  ].join('\n');
  assert.ok(host, 'the host is up');
  const r = await host.agent.exec(['node', '-e', script], { timeoutMs: 30_000, allowFail: true });
  const out = `${r.stdout}${r.stderr}`.trim();
  assert.match(out, /client: (ECONNABORTED|ECONNRESET|closed)/, `node's output: ${out}`);
});

test('a veth into a network namespace', async () => {
  await sh('ip netns add kcheck && ip link add kv0 type veth peer name kv1 netns kcheck && ip -n kcheck link set kv1 up && ip link set kv0 up');
  assert.match(await sh('ip -n kcheck -br link show kv1'), /^kv1@/);
  await sh('ip link del kv0; ip netns del kcheck');
});

test('power-off through sysrq ends its QEMU', async () => {
  assert.ok(host);
  const h = host;
  await h.agent.poweroff();
  const e = await Promise.race([h.proc.exited, sleep(20_000).then(() => undefined)]);
  assert.ok(e, 'QEMU exited by itself within 20 s of the power-off');
  assert.is(e.exitCode, 0);
  await h.shutdown();
  host = undefined;
});

test.after(async () => {
  await host?.shutdown();
});

test.run();
