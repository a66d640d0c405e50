#!/usr/bin/env bash
# heca host set-up: everything the build, the benchmarks and `make test` need on a
# fresh Debian 12 machine. Idempotent; run as root. Writes no registry host of its
# own: the extra apt entries are derived from the machine's own apt configuration.
#
#   tools/setup-host.sh            install what is missing
#   tools/setup-host.sh --check    only report what is missing (exit 1 if anything is)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Packages from the machine's own suite (bookworm).
base_pkgs=(
  build-essential ccache ninja-build pkg-config git dpkg-dev python3 python3-venv
  libglib2.0-dev libpixman-1-dev libslirp-dev libibverbs-dev librdmacm-dev libfdt-dev
  zlib1g-dev libcap-ng-dev libattr1-dev
  seabios ipxe-qemu qemu-system-data
  libelf-dev libssl-dev bc flex bison dwarves cpio xz-utils
  busybox-static iproute2 kmod procps ethtool
  libcairo2-dev libpango1.0-dev libjpeg-dev libgif-dev librsvg2-dev
  perl linux-source-6.12
  ibverbs-providers ibverbs-utils perftest qperf
  gdb  # the backtrace of an L2 QEMU's core dump (bench/testbed/nested/cores.ts)
)
# Packages only bookworm-backports has in a usable version.
bpo_pkgs=(meson python3-pycotap)

missing_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}

if [ "$check_only" = 1 ]; then
  m=$(missing_pkgs "${base_pkgs[@]}" "${bpo_pkgs[@]}")
  if [ -n "$m" ]; then say "missing packages: $(echo $m)"; exit 1; fi
  [ -d "$here/node_modules" ] || { say "node_modules missing: run npm ci"; exit 1; }
  say "host is set up"; exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages and writes /etc/apt); try: sudo $0"
command -v apt-get >/dev/null || die "apt-get not found: heca's set-up needs a Debian-based host"

# --- apt sources -----------------------------------------------------------------
# The machine's primary Debian archive URI, read from its own deb822 or one-line
# sources; the entries we add reuse it with other suites.
src_dir=/etc/apt/sources.list.d
primary_uri() {
  local f
  for f in "$src_dir"/*.sources; do
    [ -e "$f" ] || continue
    awk '
      /^URIs:/ { uri=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /-(security|updates|backports)$/) ok=1 }
      /^$/ { if (ok && uri ~ /debian\/?$/) { print uri; exit } uri=""; ok=0 }
      END { if (ok && uri ~ /debian\/?$/) print uri }' "$f"
  done | head -n1
  if [ -f /etc/apt/sources.list ]; then
    awk '$1 == "deb" && $3 !~ /-(security|updates|backports)$/ && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list
  fi
}
uri=$(primary_uri | head -n1)
[ -n "$uri" ] || die "could not find the Debian archive in /etc/apt/sources.list{,.d}: add one, then rerun"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"

heca_list=$src_dir/heca.sources
want=$(cat <<EOF
# Written by heca tools/setup-host.sh from this machine's own archive entry.
# bookworm-backports: meson >= 1.5, python3-pycotap, linux-source-6.12.
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $keyring

# trixie sources: QEMU 10.0.y (apt-get source qemu).
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: $keyring
EOF
)
updated=0
if [ ! -f "$heca_list" ] || [ "$(cat "$heca_list")" != "$want" ]; then
  say "writing $heca_list (archive: $uri)"
  printf '%s\n' "$want" > "$heca_list"
  updated=1
fi
# Keep bookworm the default for binaries; backports only where asked for.
stamp=/var/lib/apt/periodic/heca-update-stamp
if [ "$updated" = 1 ] || [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ] \
   || ! apt-cache show meson >/dev/null 2>&1; then
  say "apt-get update"
  apt-get update -q >/dev/null || die "apt-get update failed: check the archive in $heca_list and the network to it"
  mkdir -p "$(dirname "$stamp")"; touch "$stamp"
fi

export DEBIAN_FRONTEND=noninteractive
install() {
  # $1: extra apt-get args (e.g. -t bookworm-backports), rest: packages
  local extra=$1; shift
  local m; m=$(missing_pkgs "$@")
  [ -n "$m" ] || return 0
  say "installing: $(echo $m)"
  # shellcheck disable=SC2086
  if ! apt-get install -y -q --no-install-recommends $extra $m >/tmp/heca-apt.log 2>&1; then
    tail -n 20 /tmp/heca-apt.log >&2
    die "apt-get install failed for: $(echo $m) (full log: /tmp/heca-apt.log)"
  fi
}
install "" "${base_pkgs[@]}"
install "-t bookworm-backports" "${bpo_pkgs[@]}"

meson_ver=$(meson --version 2>/dev/null || echo 0)
dpkg --compare-versions "$meson_ver" ge 1.5 || die "meson $meson_ver is too old (need >= 1.5 from bookworm-backports)"

# --- userfaultfd for post-copy ----------------------------------------------------
if [ -f /proc/sys/vm/unprivileged_userfaultfd ]; then :; fi   # root needs nothing more

# --- npm ---------------------------------------------------------------------------
if [ -f "$here/package-lock.json" ]; then
  if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    say "npm ci"
    (cd "$here" && npm ci --no-audit --no-fund >/tmp/heca-npm.log 2>&1) || { tail -n 30 /tmp/heca-npm.log >&2; die "npm ci failed (full log: /tmp/heca-npm.log)"; }
  fi
fi
say "host is set up"
