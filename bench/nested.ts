/**
 * npx tsx bench/nested.ts [--link NAME] [--out DIR] [--mem MiB] [--probes]
 *                         [--on a|b] [--timeout S] [--verbose] [-- CMD ARG...]
 *
 * Boots the nested testbed (two L1 hosts A and B with the heca kernel, linked
 * by -netdev dgram, Soft-RoCE rxe0 on each), prints what it found (boot time,
 * nested KVM, rxe state), optionally measures the link (--probes) and runs one
 * command in A or B (its output is printed, its exit status becomes ours),
 * then powers both hosts off. OUT/nested.json records it all.
 *
 *   npx tsx bench/nested.ts --probes
 *   npx tsx bench/nested.ts --on b -- ibv_devinfo -d rxe0
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { intFlag, main, parseFlags, UsageError } from '../tools/core/cli.ts';
import { info, setVerbose } from '../tools/core/log.ts';
import { measureLink } from './testbed/nested/link-probes.ts';
import { parseLink } from './testbed/links.ts';
import { NestedTestbed } from './testbed/nested/testbed.ts';

const usage = `  npx tsx bench/nested.ts [options] [-- CMD ARG...]
    --link NAME     lan1g | lan10g | wan | unlimited | jumbo: tc shaping and MTU of the L1 link (default unlimited)
    --out DIR       logs, the shared directory and nested.json (default results/nested-<time>)
    --mem MiB       RAM of each L1 host (default 3072)
    --probes        measure the link: ib_read_lat/ib_read_bw 4 KiB over rxe, TCP latency and stream
    --on a|b        the host CMD runs in (default a)
    --timeout S     CMD is killed after S seconds (default 600)
    --verbose       echo every command`;

main(async () => {
  const argv = process.argv.slice(2);
  const dash = argv.indexOf('--');
  const cmd = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values } = parseFlags(dash >= 0 ? argv.slice(0, dash) : argv, {
    link: { type: 'string' },
    out: { type: 'string' },
    mem: { type: 'string' },
    probes: { type: 'boolean' },
    on: { type: 'string' },
    timeout: { type: 'string' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) return void process.stdout.write(`${usage}\n`);
  setVerbose(values.verbose === true);
  const link = parseLink(values.link ?? 'unlimited');
  const mem = intFlag('mem', values.mem, 512, 16384) ?? 3072;
  const timeoutS = intFlag('timeout', values.timeout, 1, 86400) ?? 600;
  const on = values.on ?? 'a';
  if (on !== 'a' && on !== 'b') throw new UsageError(`--on ${on} is not a host`, { why: 'the hosts are a and b', fix: 'use --on a or --on b' });
  if (dash >= 0 && cmd.length === 0) throw new UsageError('nothing after --', { why: '-- is followed by the command to run', fix: 'e.g. -- uname -a' });
  const out = resolve(values.out ?? join('results', `nested-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  mkdirSync(out, { recursive: true });

  const bed = await NestedTestbed.create({ link, dir: out, memMib: mem });
  const record: Record<string, unknown> = { id: bed.id, link, accel: bed.accel, up_ms: bed.upMs, hosts: bed.facts };
  try {
    for (const f of [bed.facts.a, bed.facts.b]) {
      process.stdout.write(`${f.name}: up in ${(f.boot_ms / 1000).toFixed(1)} s${f.boot_hangs.length ? ` (after ${f.boot_hangs.length} failed boot(s): ${f.boot_hangs.map((h) => `${h.kind}, ${h.console}`).join('; ')})` : ''}, kernel ${f.kernel}, nested KVM ${f.nested_kvm ? 'yes' : 'no'} (${f.nested_kvm_detail}), ${f.rxe.dev} ${f.rxe.state} on ${f.rxe.netdev}\n`);
    }
    if (values.probes) {
      info('measuring the link between A and B');
      const p = await measureLink(bed);
      record.link_probes = p;
      process.stdout.write(`${JSON.stringify(p, null, 2)}\n`);
    }
    if (cmd.length) {
      const r = await bed.exec(on, cmd, { timeoutMs: timeoutS * 1000, allowFail: true });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      record.command = { on, argv: cmd, exitCode: r.exitCode, timedOut: r.timedOut, durationMs: r.durationMs };
      if (r.timedOut) process.stderr.write(`error: ${cmd[0]} did not finish within ${timeoutS} s and was killed\n`);
      process.exitCode = r.timedOut ? 124 : r.exitCode;
    }
  } finally {
    writeFileSync(join(out, 'nested.json'), `${JSON.stringify(record, null, 2)}\n`);
    await bed.destroy();
  }
});
