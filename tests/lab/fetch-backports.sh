#!/bin/bash
# fetch-backports.sh CACHE_DIR
#
# The host versions the README recommends for large-BAR GPUs, for the lab's
# large-BAR check (issue 12, item 7): an L1 kernel >= 6.12 (huge pfnmap of
# vfio-pci BARs) and, for L2, QEMU >= 9.2 (which maps BARs aligned so that the
# kernel can use those huge mappings). Debian 12 has both in
# bookworm-backports (LAB_BACKPORTS_SUITE overrides the suite). Nothing is
# installed and /etc/apt is not touched: a private apt configuration
# (kernel-modules/nvidia-apt.sh) under CACHE_DIR/apt lists the suite's main
# component, and the packages are fetched with `apt-get download` and
# unpacked with `dpkg -x`. Versions are resolved against the archive (the
# newest that satisfies ">= 6.12" and ">= 9.2"), never pinned exactly.
#
# Leaves:
#   CACHE_DIR/kernel/...            fetch-kernel.sh's layout (vmlinuz, modules/,
#                                   kernel.env): usable as LAB_CACHE for run-l1.sh
#   CACHE_DIR/qemu/root/            the unpacked QEMU packages
#   CACHE_DIR/qemu/qemu-system-x86_64
#                                   a wrapper that runs that QEMU with its own
#                                   firmware and module dirs (a [qemu] binary=)
#   CACHE_DIR/backports.env         BACKPORTS_KERNEL_RELEASE=, BACKPORTS_QEMU=,
#                                   BACKPORTS_QEMU_VERSION= (written last)
# Idempotent: the kernel part is fetch-kernel.sh's cache; the QEMU part is
# redone only when the resolved version changes. The package lists are
# refreshed at most once a day (VFIOD_APT_NO_UPDATE=1: never).
# Exit: 0; 1 on failure (network, a version below the minimum, a shared
# library the unpacked QEMU needs and this machine lacks: named).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }
[[ $# -eq 1 ]] || { echo "usage: $prog CACHE_DIR" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/archive.sh
. "$repo/scripts/archive.sh"
# shellcheck source=../../kernel-modules/nvidia-apt.sh
. "$repo/kernel-modules/nvidia-apt.sh"

suite=${LAB_BACKPORTS_SUITE:-bookworm-backports}
kernel_min=6.12
qemu_min=1:9.2

for tool in apt-get apt-cache dpkg dpkg-deb flock ldd; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
mkdir -p "$1"
cache=$(cd "$1" && pwd)
exec 8>"$cache/.fetch-backports.lock"
flock 8

nvidia_apt_init "$cache/apt" "$suite" main || die "cannot set up the private apt configuration"
nvidia_apt_update || die "cannot read the package lists of $suite"
export APT_CONFIG=$NVIDIA_APT_CONFIG
# The private lists were just refreshed; archive.sh must not run its own
# update (that would be the machine's lists' job, and root-only).
export VFIOD_APT_NO_UPDATE=1

# --- kernel: the flavour's meta-package, at least kernel_min --------------
meta_ver=$(archive_pick linux-image-amd64 '>=' "$kernel_min") ||
    die "$suite has no linux-image-amd64 >= $kernel_min (there is: $(archive_pick linux-image-amd64 || echo nothing))"
abi_pkg=$(archive_depends linux-image-amd64 "$meta_ver" | awk '$1 ~ /^linux-image-[0-9].*-amd64$/ { print $1; exit }')
[[ -n $abi_pkg ]] || die "linux-image-amd64 $meta_ver in $suite depends on no linux-image-<abi>-amd64"
pins=$cache/pins.env
{
    echo "# written by $prog: $suite's kernel ($meta_ver), resolved $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "GUEST_KERNEL_PACKAGE=$abi_pkg"
    echo "GUEST_KERNEL_RELEASE=${abi_pkg#linux-image-}"
    echo "PINS_RESOLVED=yes"
} >"$pins.new"
mv "$pins.new" "$pins"
VFIOD_PINS=$pins "$here/fetch-kernel.sh" "$cache/kernel" || die "cannot fetch $abi_pkg from $suite"

# --- QEMU -------------------------------------------------------------------
qver=$(archive_pick qemu-system-x86 '>=' "$qemu_min") ||
    die "$suite has no qemu-system-x86 >= $qemu_min (there is: $(archive_pick qemu-system-x86 || echo nothing))"
qdir=$cache/qemu
if [[ ! -f $qdir/version || $(<"$qdir/version") != "$qver" || ! -x $qdir/qemu-system-x86_64 ]]; then
    dl=$(mktemp -d "$cache/.download.XXXXXX")
    trap 'rm -rf "$dl"' EXIT
    want=("qemu-system-x86=$qver")
    # Its companions, as qemu-system-x86 names them (the versions this suite
    # has that satisfy the relation): the common part, the firmware data and
    # the BIOS. ipxe-qemu (NIC option ROMs) is taken from the machine's own
    # /usr/lib/ipxe when this suite has none.
    while read -r name op ver; do
        case $name in
            qemu-system-common | qemu-system-data | seabios | ipxe-qemu) ;;
            *) continue ;;
        esac
        if v=$(archive_pick "$name" ${op:+"$op"} ${ver:+"$ver"}); then
            want+=("$name=$v")
        elif [[ $name != ipxe-qemu ]]; then
            die "$suite has no $name ${op:-} ${ver:-} (qemu-system-x86 $qver needs it)"
        fi
    done < <(archive_depends qemu-system-x86 "$qver")
    echo "$prog: downloading ${want[*]}" >&2
    archive_download "$dl" "${want[@]}" || { cat "$dl/apt.log" >&2; die "cannot download ${want[*]}"; }
    mkdir "$dl/root"
    for deb in "$dl"/*.deb; do
        dpkg-deb -x "$deb" "$dl/root"
    done
    bin=$dl/root/usr/bin/qemu-system-x86_64
    [[ -x $bin ]] || die "qemu-system-x86 $qver has no usr/bin/qemu-system-x86_64"
    missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ { print $1 }' | sort -u | tr '\n' ' ')
    [[ -z $missing ]] || die "QEMU $qver needs shared libraries this machine lacks: $missing(install qemu-system-x86, whose dependencies are the same libraries)"
    rm -rf "$qdir"
    mkdir -p "$qdir"
    mv "$dl/root" "$qdir/root"
    moddir=$(find "$qdir/root/usr/lib" -maxdepth 3 -type d -name qemu -path '*-linux-gnu/qemu' | head -n 1)
    {
        echo '#!/bin/sh'
        echo "# written by $prog: QEMU $qver from $suite, unpacked (not installed)."
        echo "# Its firmware comes first, then the machine's (ipxe option ROMs)."
        [[ -z $moddir ]] || printf 'QEMU_MODULE_DIR=%q\nexport QEMU_MODULE_DIR\n' "$moddir"
        printf 'exec %q -L %q -L %q -L /usr/share/qemu "$@"\n' "$qdir/root/usr/bin/qemu-system-x86_64" \
            "$qdir/root/usr/share/qemu" "$qdir/root/usr/share/seabios"
    } >"$qdir/qemu-system-x86_64"
    chmod 0755 "$qdir/qemu-system-x86_64"
    "$qdir/qemu-system-x86_64" -version >/dev/null || die "the unpacked QEMU $qver does not start"
    echo "$qver" >"$qdir/version"
    chmod -R a+rX "$qdir"
fi

# shellcheck source=/dev/null
. "$cache/kernel/kernel.env"
{
    echo "BACKPORTS_SUITE=$suite"
    echo "BACKPORTS_KERNEL_RELEASE=$GUEST_KERNEL_RELEASE"
    echo "BACKPORTS_QEMU=$qdir/qemu-system-x86_64"
    echo "BACKPORTS_QEMU_VERSION=$qver"
} >"$cache/backports.env.new"
mv "$cache/backports.env.new" "$cache/backports.env"
echo "$prog: $suite: kernel $GUEST_KERNEL_RELEASE, QEMU $qver ($qdir/qemu-system-x86_64)" >&2
