#!/bin/bash
# fetch-kernel-headers.sh DIR
#
# Fetches the build headers of the guest kernel (the pins resolved against
# the archive by scripts/archive.sh: GUEST_KERNEL_RELEASE) without installing
# them: `apt-get download` of linux-headers-<release> and the -common headers
# and linux-kbuild it depends on, each at the highest version the archive has
# that satisfies the dependency's own relation ("=" or ">="), `dpkg -x` into
# DIR/root, and points the arch Makefile (which includes the -common one by an
# absolute /usr/src path) at the unpacked copy. Prints the kbuild directory
# (for `make -C KDIR M=...`) on stdout:
#   DIR/root/usr/src/linux-headers-<release>
# Idempotent: does nothing when DIR/headers.stamp matches. Runs apt-get
# update once when apt does not know a package.
# Exit status: 0 ok, 1 failure (no network, package gone), 2 usage.
# Environment: VFIOD_PINS (default: the repository's pins.env).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/archive.sh
. "$here/../scripts/archive.sh"
pins_load || die "cannot resolve the guest kernel"
rel=$GUEST_KERNEL_RELEASE
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

ver=$(archive_pick "$pkg") || { archive_update_once || die "apt-get update failed"; ver=$(archive_pick "$pkg"); } ||
    die "the configured apt archives have no $pkg"
# Depends: linux-headers-<abi>-common (= V), linux-kbuild-6.1 (>= V), ...:
# each taken at the highest version that satisfies its relation.
wanted=("$pkg=$ver")
while read -r name op want; do
    case $name in
        linux-headers-*-common | linux-kbuild-*) ;;
        *) continue ;;
    esac
    v=$(archive_pick "$name" "$op" "$want") ||
        die "the archive has no $name ${op:+$op $want} (a dependency of $pkg $ver)"
    wanted+=("$name=$v")
done < <(archive_depends "$pkg" "$ver")
[[ ${#wanted[@]} -eq 3 ]] || die "cannot find the -common and kbuild packages in the dependencies of $pkg $ver (${wanted[*]})"

echo "$prog: fetching ${wanted[*]} into $dir" >&2
rm -f "$dir/headers.stamp"
tmp=$(mktemp -d "$dir/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
archive_download "$tmp" "${wanted[@]}" || { cat "$tmp/apt.log" >&2; die "apt-get download ${wanted[*]} failed"; }
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
