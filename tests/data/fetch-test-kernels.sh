#!/bin/bash
# fetch-test-kernels.sh DIR
#
# Fetches the kernel module trees the stager's unit tests (tests/unit/
# test-stage.c) run against, without installing anything: `apt-get download`
# + `dpkg -x` + `depmod -b`. Leaves:
#   DIR/pinned/lib/modules/<GUEST_KERNEL_RELEASE>/   the guest kernel's modules
#                                                     (the pins resolved against the
#                                                     archive, scripts/archive.sh), depmod'ed
#   DIR/other/lib/modules/<OTHER_RELEASE>/            the same kernel version in
#                                                     another flavour (its modules'
#                                                     vermagic must be refused)
#   DIR/gpu/lib/modules/<GUEST_KERNEL_RELEASE>/       the pinned tree (hard links) plus
#                                                     updates/{nvidia,nvidia-uvm}.ko: test
#                                                     stand-ins (stub-nvidia/) built against
#                                                     the pinned kernel's headers with the
#                                                     pinned NVIDIA version; depmod'ed
#   DIR/headers/                                      those headers
#                                                     (kernel-modules/fetch-kernel-headers.sh)
#   DIR/test-kernels.env                              PINNED_RELEASE=, OTHER_RELEASE=,
#                                                     STUB_NVIDIA_VERSION= (pins.env format),
#                                                     written last
# The other flavour is "cloud-amd64" when the pinned one is "amd64" and the
# other way round. Only lib/modules is kept (boot/ and usr/ are removed).
#
# Idempotent: a tree whose stamp matches its package is not fetched again.
# apt-get update runs once when apt does not know a package. Packages are
# taken at the highest version the archive has (scripts/archive.sh).
# Needs gcc-12 and make for the stand-ins (installed with apt-get when
# missing and running as root).
# Environment: VFIOD_PINS, VFIOD_VERSIONS (default: the repository's files).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions=${VFIOD_VERSIONS:-$here/../../versions.env}
[[ -r $versions ]] || die "cannot read $versions"
# shellcheck source=../../scripts/archive.sh
. "$here/../../scripts/archive.sh"
pins_load || die "cannot resolve the guest kernel"
# shellcheck source=../../versions.env
. "$versions"
nvver=${NVIDIA_DRIVER_VERSION:?NVIDIA_DRIVER_VERSION missing from $versions}
pkg=$GUEST_KERNEL_PACKAGE
rel=$GUEST_KERNEL_RELEASE

case $rel in
    *-cloud-amd64) other_rel=${rel%-cloud-amd64}-amd64 ;;
    *-amd64) other_rel=${rel%-amd64}-cloud-amd64 ;;
    *) die "GUEST_KERNEL_RELEASE '$rel' is not a Debian amd64 flavour; cannot name another flavour" ;;
esac
other_pkg=linux-image-$other_rel

for tool in apt-get dpkg depmod flock sha256sum; do
    command -v "$tool" >/dev/null || die "'$tool' not found (needed to fetch the test kernels)"
done
if ! command -v make >/dev/null || ! command -v gcc-12 >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "make and gcc-12 are needed to build the test modules (apt-get install make gcc-12)"
    echo "$prog: installing make gcc-12" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make gcc-12 >&2 ||
        { apt-get -q update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make gcc-12 >&2; } ||
        die "cannot install make and gcc-12"
fi

mkdir -p "$1"
dir=$(cd "$1" && pwd)

exec 9>"$dir/.fetch.lock"
flock 9
# The resolution used, for the stager tests; the headers fetch (a child)
# uses it too.
pins_write "$dir/pins.env" || die "cannot write $dir/pins.env"
export VFIOD_PINS=$dir/pins.env

# fetch NAME PACKAGE RELEASE: DIR/NAME/lib/modules/RELEASE, depmod'ed.
fetch() {
    local name=$1 p=$2 r=$3 stamp="$dir/$1.stamp" tmp debs
    if [[ -f $stamp && $(<"$stamp") == "$p $r" && -s $dir/$name/lib/modules/$r/modules.dep.bin ]]; then
        return 0
    fi
    echo "$prog: fetching $p into $dir/$name" >&2
    rm -f "$stamp"
    tmp=$(mktemp -d "$dir/.download.XXXXXX")
    ver=''
    if ! ver=$(archive_pick "$p") || ! archive_download "$tmp" "$p=$ver"; then
        echo "$prog: cannot download $p${ver:+ $ver}; running apt-get update once and retrying" >&2
        archive_update_once || { rm -rf "$tmp"; die "apt-get update failed"; }
        if ! ver=$(archive_pick "$p") || ! archive_download "$tmp" "$p=$ver"; then
            cat "$tmp/apt.log" >&2 2>/dev/null || true
            rm -rf "$tmp"
            die "cannot download '$p' from the configured apt archives"
        fi
    fi
    debs=("$tmp"/*.deb)
    [[ -f ${debs[0]} ]] || { rm -rf "$tmp"; die "apt-get download produced no .deb for $p"; }
    dpkg -x "${debs[0]}" "$tmp/root"
    [[ -d $tmp/root/lib/modules/$r ]] || { rm -rf "$tmp"; die "$p does not contain lib/modules/$r"; }
    rm -rf "$tmp/root/boot" "$tmp/root/usr"
    # The package's postinst would run depmod; libkmod needs its indexes.
    depmod -b "$tmp/root" "$r"
    rm -rf "${dir:?}/$name"
    mv "$tmp/root" "$dir/$name"
    rm -rf "$tmp"
    echo "$p $r" >"$stamp"
}

# The nvidia/nvidia-uvm stand-ins, built against the pinned headers.
build_stubs() {
    local src=$here/stub-nvidia kdir tmp key
    key="$rel $nvver $(<"$dir/pinned.stamp") $(cat "$src/Kbuild" "$src"/*.c | sha256sum | cut -d' ' -f1)"
    if [[ -f $dir/gpu.stamp && $(<"$dir/gpu.stamp") == "$key" &&
          -s $dir/gpu/lib/modules/$rel/modules.dep.bin ]]; then
        return 0
    fi
    rm -f "$dir/gpu.stamp"
    kdir=$("$here/../../kernel-modules/fetch-kernel-headers.sh" "$dir/headers")
    echo "$prog: building the nvidia stand-ins ($nvver) against $kdir" >&2
    tmp=$(mktemp -d "$dir/.stub.XXXXXX")
    cp "$src/Kbuild" "$src"/*.c "$tmp/"
    make -s -C "$kdir" M="$tmp" STUB_NVIDIA_VERSION="$nvver" modules >"$tmp/build.log" 2>&1 ||
        { cat "$tmp/build.log" >&2; rm -rf "$tmp"; die "building the nvidia stand-ins failed"; }
    mkdir -p "$tmp/root/lib/modules"
    cp -al "$dir/pinned/lib/modules/$rel" "$tmp/root/lib/modules/$rel"
    # depmod rewrites the indexes: break their links to the pinned tree.
    rm -f "$tmp/root/lib/modules/$rel"/modules.*.bin "$tmp/root/lib/modules/$rel"/modules.{dep,alias,symbols,softdep,devname}
    mkdir -p "$tmp/root/lib/modules/$rel/updates"
    cp "$tmp/nvidia.ko" "$tmp/nvidia-uvm.ko" "$tmp/root/lib/modules/$rel/updates/"
    depmod -b "$tmp/root" "$rel"
    rm -rf "$dir/gpu"
    mv "$tmp/root" "$dir/gpu"
    rm -rf "$tmp"
    echo "$key" >"$dir/gpu.stamp"
}

fetch pinned "$pkg" "$rel"
fetch other "$other_pkg" "$other_rel"
build_stubs

printf '# Written by %s: the module trees under this directory.\nPINNED_RELEASE=%s\nOTHER_RELEASE=%s\nSTUB_NVIDIA_VERSION=%s\n' \
    "$prog" "$rel" "$other_rel" "$nvver" >"$dir/test-kernels.env.tmp"
mv "$dir/test-kernels.env.tmp" "$dir/test-kernels.env"
echo "$prog: ok: $dir/pinned/lib/modules/$rel, $dir/other/lib/modules/$other_rel, $dir/gpu/lib/modules/$rel" >&2
