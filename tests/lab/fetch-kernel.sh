#!/bin/bash
# fetch-kernel.sh CACHE_DIR
#
# Fetch the pinned guest kernel (pins.env: GUEST_KERNEL_PACKAGE,
# GUEST_KERNEL_RELEASE) without installing it: `apt-get download` + `dpkg -x`.
# Leaves:
#   CACHE_DIR/vmlinuz                      the kernel image
#   CACHE_DIR/modules/<release>/...        its module tree (with modules.dep)
#   CACHE_DIR/kernel/                      the unpacked package (modules points here)
#   CACHE_DIR/kernel.stamp                 "<package> <release>" of what is there
# Idempotent: does nothing when the stamp matches pins.env and the files exist.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog CACHE_DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pins=${LAB_PINS:-$here/../../pins.env}
[[ -r $pins ]] || die "cannot read $pins"
# shellcheck source=../../pins.env
. "$pins"
pkg=${GUEST_KERNEL_PACKAGE:?GUEST_KERNEL_PACKAGE missing from $pins}
rel=${GUEST_KERNEL_RELEASE:?GUEST_KERNEL_RELEASE missing from $pins}

for tool in apt-get dpkg depmod flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found (needed to fetch $pkg)"
done

mkdir -p "$1"
cache=$(cd "$1" && pwd)

# One fetch at a time per cache dir.
exec 9>"$cache/.fetch-kernel.lock"
flock 9

is_complete() {
    [[ -f $cache/kernel.stamp && $(<"$cache/kernel.stamp") == "$pkg $rel" ]] &&
        [[ -s $cache/vmlinuz ]] &&
        [[ -s $cache/modules/$rel/modules.dep ]]
}

if is_complete; then
    exit 0
fi

echo "$prog: fetching $pkg ($rel) into $cache" >&2
rm -f "$cache/kernel.stamp"
dl=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$dl"' EXIT

download() {
    # As root, apt drops to the _apt user for downloads; it cannot write to a
    # private temp dir, so download as root (no sandbox) into it.
    (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "$pkg") >"$dl/apt.log" 2>&1
}

if ! download; then
    echo "$prog: apt-get download $pkg failed; running apt-get update once and retrying" >&2
    apt-get -q update >"$dl/update.log" 2>&1 ||
        { cat "$dl/update.log" >&2; die "apt-get update failed"; }
    if ! download; then
        cat "$dl/apt.log" >&2
        die "the pinned guest kernel package '$pkg' cannot be downloaded from the
configured archives (it may have been dropped after a kernel ABI bump).
'apt-cache depends linux-image-amd64' names the current ABI: update
GUEST_KERNEL_PACKAGE and GUEST_KERNEL_RELEASE in $pins, or put the .deb in a
local apt source (e.g. from snapshot.debian.org)."
    fi
fi

debs=("$dl"/*.deb)
[[ -f ${debs[0]} ]] || die "apt-get download produced no .deb for $pkg"

unpack="$dl/root"
dpkg -x "${debs[0]}" "$unpack"
[[ -f $unpack/boot/vmlinuz-$rel ]] ||
    die "$pkg does not contain boot/vmlinuz-$rel (is GUEST_KERNEL_RELEASE right?)"
[[ -d $unpack/lib/modules/$rel ]] ||
    die "$pkg does not contain lib/modules/$rel"

# The package's postinst would run depmod; do it here so that modprobe -d and
# busybox modprobe can resolve dependencies in the unpacked tree.
depmod -b "$unpack" "$rel"

rm -rf "$cache/kernel" "$cache/modules" "$cache/vmlinuz"
mv "$unpack" "$cache/kernel"
ln -s kernel/lib/modules "$cache/modules"
cp "$cache/kernel/boot/vmlinuz-$rel" "$cache/vmlinuz.tmp"
mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
echo "$pkg $rel" >"$cache/kernel.stamp.tmp"
mv "$cache/kernel.stamp.tmp" "$cache/kernel.stamp"

is_complete || die "internal: cache incomplete after fetch"
echo "$prog: ok: $cache/vmlinuz, $cache/modules/$rel" >&2
