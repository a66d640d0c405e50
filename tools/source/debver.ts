/**
 * Debian version comparison (epoch:upstream-revision), as `dpkg --compare-versions`
 * does it, so that "newest 10.0.y available" is decided without a shell round-trip.
 */
function order(c: string): number {
  if (c === '~') return -1;
  if (/[0-9]/.test(c)) return 0;
  if (c === '') return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function cmpPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let diff = 0;
    while ((i < a.length && !/[0-9]/.test(a[i]!)) || (j < b.length && !/[0-9]/.test(b[j]!))) {
      const ac = order(i < a.length && !/[0-9]/.test(a[i]!) ? a[i]! : '');
      const bc = order(j < b.length && !/[0-9]/.test(b[j]!) ? b[j]! : '');
      if (ac !== bc) return ac - bc;
      if (i < a.length && !/[0-9]/.test(a[i]!)) i++;
      if (j < b.length && !/[0-9]/.test(b[j]!)) j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (i < a.length && /[0-9]/.test(a[i]!) && j < b.length && /[0-9]/.test(b[j]!)) {
      if (!diff) diff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /[0-9]/.test(a[i]!)) return 1;
    if (j < b.length && /[0-9]/.test(b[j]!)) return -1;
    if (diff) return diff;
  }
  return 0;
}

function split(v: string): [number, string, string] {
  const colon = v.indexOf(':');
  const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon >= 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash >= 0 ? [epoch, rest.slice(0, dash), rest.slice(dash + 1)] : [epoch, rest, ''];
}

export function compareDebVersions(a: string, b: string): number {
  const [ea, ua, ra] = split(a);
  const [eb, ub, rb] = split(b);
  if (ea !== eb) return ea - eb;
  return cmpPart(ua, ub) || cmpPart(ra, rb);
}

/** Upstream part without epoch and Debian revision/repack suffix: 1:10.0.13+ds-0+deb13u1 → 10.0.13. */
export function upstreamVersion(v: string): string {
  const [, u] = split(v);
  return u.replace(/[+~].*$/, '');
}
