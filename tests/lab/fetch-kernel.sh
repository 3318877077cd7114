#!/bin/bash
# fetch-kernel.sh CACHE_DIR
#
# Fetch the guest kernel without installing it: `apt-get download` + `dpkg -x`.
# Which kernel: the pins (pins.env, or $VFIOD_PINS) resolved against the
# archive by scripts/archive.sh: the pinned ABI while the archive has it,
# else the flavour's current ABI (with a warning).
# Leaves:
#   CACHE_DIR/vmlinuz                      the kernel image
#   CACHE_DIR/modules/<release>/...        its module tree (with modules.dep)
#   CACHE_DIR/kernel/                      the unpacked package (modules points here)
#   CACHE_DIR/kernel.env                   GUEST_KERNEL_PACKAGE=, GUEST_KERNEL_RELEASE=,
#                                          GUEST_KERNEL_VERSION= of what is there
#                                          (pins.env format): the release the rest
#                                          of the run uses. Written last.
# Idempotent: does nothing when kernel.env names the resolved package and the
# files exist.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog CACHE_DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/archive.sh
. "$here/../../scripts/archive.sh"

for tool in apt-get apt-cache dpkg depmod flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found (needed to fetch the guest kernel)"
done

mkdir -p "$1"
cache=$(cd "$1" && pwd)

# One fetch at a time per cache dir.
exec 9>"$cache/.fetch-kernel.lock"
flock 9

pins_load || die "cannot resolve the guest kernel"
pkg=$GUEST_KERNEL_PACKAGE rel=$GUEST_KERNEL_RELEASE

is_complete() {
    [[ -f $cache/kernel.env ]] && grep -qx "GUEST_KERNEL_PACKAGE=$pkg" "$cache/kernel.env" &&
        [[ -s $cache/vmlinuz ]] &&
        [[ -s $cache/modules/$rel/modules.dep ]]
}

if is_complete; then
    exit 0
fi

dl=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$dl"' EXIT

ver=''
if ! ver=$(archive_pick "$pkg") || ! archive_download "$dl" "$pkg=$ver"; then
    echo "$prog: cannot download $pkg${ver:+ $ver}; running apt-get update once and retrying" >&2
    archive_update_once || die "apt-get update failed"
    ver=$(archive_pick "$pkg") || die "the archive has no $pkg (pins: $PINS_FILE)"
    archive_download "$dl" "$pkg=$ver" || { cat "$dl/apt.log" >&2; die "cannot download $pkg $ver"; }
fi
echo "$prog: fetched $pkg $ver ($rel) into $cache" >&2

debs=("$dl"/*.deb)
[[ -f ${debs[0]} ]] || die "apt-get download produced no .deb for $pkg"

unpack="$dl/root"
dpkg -x "${debs[0]}" "$unpack"
[[ -f $unpack/boot/vmlinuz-$rel ]] || die "$pkg does not contain boot/vmlinuz-$rel"
[[ -d $unpack/lib/modules/$rel ]] || die "$pkg does not contain lib/modules/$rel"

# The package's postinst would run depmod; do it here so that modprobe -d and
# busybox modprobe can resolve dependencies in the unpacked tree.
depmod -b "$unpack" "$rel"

rm -f "$cache/kernel.env" "$cache/kernel.stamp"
rm -rf "$cache/kernel" "$cache/modules" "$cache/vmlinuz"
mv "$unpack" "$cache/kernel"
ln -s kernel/lib/modules "$cache/modules"
cp "$cache/kernel/boot/vmlinuz-$rel" "$cache/vmlinuz.tmp"
mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
printf '# Written by %s: the guest kernel in this directory.\nGUEST_KERNEL_PACKAGE=%s\nGUEST_KERNEL_RELEASE=%s\nGUEST_KERNEL_VERSION=%s\nPINS_RESOLVED=yes\n' \
    "$prog" "$pkg" "$rel" "$ver" >"$cache/kernel.env.tmp"
mv "$cache/kernel.env.tmp" "$cache/kernel.env"

is_complete || die "internal: cache incomplete after fetch"
echo "$prog: ok: $cache/vmlinuz, $cache/modules/$rel" >&2
