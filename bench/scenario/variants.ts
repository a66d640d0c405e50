/**
 * Variants of the QEMU under test, as data: `--variant floor64k:migration.x-postcopy-rdma-bg-floor=65536`
 * runs every scenario once as it is and once more with `-global
 * migration.x-postcopy-rdma-bg-floor=65536` given to both QEMUs, interleaved
 * in the same repeats, so that an experimental switch (QEMU's `x-` properties)
 * is measured against the default side by side, in one invocation. The
 * scenario becomes NAME+VARIANT; the globals are part of its id (an id names
 * the experiment, not the label the user chose for it). `floor64k@rdma:...`
 * limits the variant to the scenarios over that transport (a switch of RDMA
 * pull changes nothing over tcp: no need to run tcp twice).
 */
import { UsageError } from '../../tools/core/cli.ts';
import type { ScenarioParams, Transport } from '../results/schema.ts';
import { scenarioId, TRANSPORTS } from './catalog.ts';

export interface Variant {
  name: string;
  /** DRIVER.PROPERTY=VALUE, each given to both QEMUs as `-global`. */
  globals: string[];
  /** Only for the scenarios over this transport (NAME@TRANSPORT); absent: every scenario. */
  transport?: Transport;
}

const NAME_RE = /^[a-z0-9][a-z0-9-]*$/;
// No commas: QEMU's option parser would read one as the next property.
const GLOBAL_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+=[A-Za-z0-9_.:-]+$/;
const VARIANT_HELP = 'NAME[@TRANSPORT]:DRIVER.PROPERTY=VALUE[:DRIVER.PROPERTY=VALUE...], several separated by commas, e.g. --variant floor64k@rdma:migration.x-postcopy-rdma-bg-floor=65536';

/** One `NAME[@TRANSPORT]:GLOBAL[:GLOBAL...]`. */
export function parseVariant(text: string): Variant {
  const [label = '', ...globals] = text.trim().split(/:(?=[A-Za-z0-9_-]+\.)/);
  const [name = '', only, ...more] = label.split('@');
  const transport = TRANSPORTS.find((t) => t === only);
  if (only !== undefined && (!transport || more.length)) {
    throw new UsageError(`cannot read the variant "${text}"`, { why: `"${label.slice(name.length + 1)}" after @ is not a transport: they are ${TRANSPORTS.join(', ')}`, fix: `e.g. --variant ${name || 'nocap'}@rdma:migration.x-postcopy-rdma-bg-cap=off` });
  }
  if (!NAME_RE.test(name)) {
    throw new UsageError(`cannot read the variant "${text}"`, { why: `"${name}" is not a variant name: lower-case letters, digits and - only (it is appended to scenario names); a variant is ${VARIANT_HELP}`, fix: 'e.g. --variant nobackoff:migration.x-postcopy-rdma-bg-floor=524288' });
  }
  if (globals.length === 0) throw new UsageError(`the variant "${name}" sets nothing`, { why: `a variant is ${VARIANT_HELP}`, fix: `give it a QEMU global: --variant ${name}:migration.PROPERTY=VALUE` });
  for (const g of globals) {
    if (!GLOBAL_RE.test(g)) {
      throw new UsageError(`cannot read "${g}" in the variant "${name}"`, { why: 'a QEMU global is DRIVER.PROPERTY=VALUE (letters, digits, _ and - in the names; no commas or spaces in the value)', fix: 'e.g. migration.x-postcopy-rdma-bg-cap=off' });
    }
  }
  const props = globals.map((g) => g.slice(0, g.indexOf('=')));
  const twice = props.find((p, i) => props.indexOf(p) !== i);
  if (twice) throw new UsageError(`the variant "${name}" sets ${twice} twice`, { why: 'QEMU would take the last one', fix: 'set it once' });
  return { name, globals, ...(transport ? { transport } : {}) };
}

/** Comma-separated variants; none for an empty or missing list. */
export function parseVariants(arg: string | undefined): Variant[] {
  const out = (arg ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(parseVariant);
  const names = out.map((v) => v.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new UsageError(`the variant "${twice}" is given twice`, { why: 'variant names label the scenarios they make', fix: 'name each variant once' });
  return out;
}

/** `sc` with the variant's globals: named NAME+VARIANT, its id derived again. */
export function withVariant(sc: ScenarioParams, v: Variant): ScenarioParams {
  const globals = [...(sc.qemu_globals ?? []), ...v.globals];
  return {
    ...sc,
    name: `${sc.name}+${v.name}`,
    id: scenarioId({ ...sc, qemu_globals: globals }),
    qemu_globals: globals,
    description: `${sc.description}; QEMU ${v.globals.map((g) => `-global ${g}`).join(' ')} (variant ${v.name})`,
  };
}

/** Every scenario as it is, then with each variant that applies to it (its transport), scenario by scenario. */
export function crossVariants(scenarios: readonly ScenarioParams[], variants: readonly Variant[]): ScenarioParams[] {
  return scenarios.flatMap((s) => [s, ...variants.filter((v) => !v.transport || v.transport === (s.transport ?? 'tcp')).map((v) => withVariant(s, v))]);
}
