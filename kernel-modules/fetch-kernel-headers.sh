#!/bin/bash
# fetch-kernel-headers.sh DIR
#
# Fetches the build headers of the pinned guest kernel (pins.env:
# GUEST_KERNEL_RELEASE) without installing them: `apt-get download` of
# linux-headers-<release>, the -common headers and linux-kbuild it depends
# on (all at the headers' exact version), `dpkg -x` into DIR/root, and points
# the arch Makefile (which includes the -common one by an absolute /usr/src
# path) at the unpacked copy. Prints the kbuild directory (for
# `make -C KDIR M=...`) on stdout:
#   DIR/root/usr/src/linux-headers-<release>
# Idempotent: does nothing when DIR/headers.stamp matches. Runs apt-get
# update once when apt does not know the package.
# Exit status: 0 ok, 1 failure (no network, package gone), 2 usage.
# Environment: VFIOD_PINS (default: the repository's pins.env).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pins=${VFIOD_PINS:-$here/../pins.env}
[[ -r $pins ]] || die "cannot read $pins"
# shellcheck source=../pins.env
. "$pins"
rel=${GUEST_KERNEL_RELEASE:?GUEST_KERNEL_RELEASE missing from $pins}
pkg=linux-headers-$rel

for tool in apt-get apt-cache dpkg flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found (needed to fetch $pkg)"
done

mkdir -p "$1"
dir=$(cd "$1" && pwd)
kdir=$dir/root/usr/src/linux-headers-$rel

exec 8>"$dir/.fetch-headers.lock"
flock 8

if [[ -f $dir/headers.stamp && $(<"$dir/headers.stamp") == "$pkg" && -f $kdir/Makefile ]]; then
    echo "$kdir"
    exit 0
fi

show() { apt-cache show --no-all-versions "$pkg" 2>/dev/null || true; }
info=$(show)
if ! grep -q '^Version:' <<<"$info"; then
    echo "$prog: apt does not know $pkg; running apt-get update once" >&2
    apt-get -q update >&2 || die "apt-get update failed"
    info=$(show)
fi
ver=$(sed -n 's/^Version: //p' <<<"$info" | head -n1)
[[ -n $ver ]] || die "no package $pkg in the configured apt archives (after a kernel ABI bump, update pins.env)"
# Depends: linux-headers-<abi>-common (= V), linux-kbuild-6.1 (>= V), ...
deps=$(sed -n 's/^Depends: //p' <<<"$info" | head -n1 | tr ',' '\n' |
    sed -n 's/^ *\(linux-headers-[^ ]*-common\|linux-kbuild-[^ ]*\).*/\1/p')
[[ $(wc -w <<<"$deps") -eq 2 ]] || die "cannot find the -common and kbuild packages in the dependencies of $pkg ($deps)"

echo "$prog: fetching $pkg $ver and $(echo $deps) into $dir" >&2
rm -f "$dir/headers.stamp"
tmp=$(mktemp -d "$dir/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
wanted=("$pkg=$ver")
for d in $deps; do wanted+=("$d=$ver"); done
(cd "$tmp" && apt-get -q -o APT::Sandbox::User=root download "${wanted[@]}") >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log" >&2; die "apt-get download ${wanted[*]} failed"; }
for deb in "$tmp"/*.deb; do
    dpkg -x "$deb" "$tmp/root"
done
mk=$tmp/root/usr/src/linux-headers-$rel/Makefile
[[ -f $mk ]] || die "$pkg has no usr/src/linux-headers-$rel/Makefile"
rm -rf "$dir/root"
mv "$tmp/root" "$dir/root"
# "include /usr/src/linux-headers-...-common/Makefile" -> the unpacked copy.
sed -i "s|^include /usr/src/|include $dir/root/usr/src/|" "$kdir/Makefile"
grep -q "^include $dir/root/usr/src/" "$kdir/Makefile" || die "unexpected $kdir/Makefile: $(cat "$kdir/Makefile")"
echo "$pkg" >"$dir/headers.stamp"
echo "$kdir"
