#!/bin/bash
# mk-l1-initramfs.sh CACHE_DIR OUT
#
# Build the L1 ("GPU host") initramfs: static busybox, l1-init.sh as /init,
# and the guest kernel modules L1 needs, in dependency order computed from the
# module tree that fetch-kernel.sh left in CACHE_DIR. Packed with libarchive
# (bsdtar) as newc cpio, gzip-compressed.
#
# Module roots (LAB_L1_MODULES adds more, space-separated):
#   virtio_pci 9pnet_virtio 9p   host root over 9p
#   vfio-pci vfio_iommu_type1    vfio (type1 is only a soft dependency)
#   e1000e                       the stand-in device's driver
#   tun                          TAP devices for sandboxes
#   vhost_vsock                  AF_VSOCK towards L2
#   button                       ACPI power button
#   overlay                      /lib/modules in the chroot if the host has none
#   bochs                        the host driver of QEMU's std VGA: the boot
#                                console and the display-class stand-in GPU
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { echo "usage: $prog CACHE_DIR OUT" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=$(cd "$1" && pwd)
out=$2
busybox=${LAB_BUSYBOX:-/bin/busybox}

# The release fetch-kernel.sh put in the cache (the resolved pins).
[[ -r $cache/kernel.env ]] || die "$cache/kernel.env is missing: run fetch-kernel.sh $cache first"
# shellcheck source=/dev/null
. "$cache/kernel.env"
rel=${GUEST_KERNEL_RELEASE:?GUEST_KERNEL_RELEASE missing from $cache/kernel.env}

for tool in bsdtar gzip modprobe; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
[[ -x $busybox ]] || die "$busybox not found (install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install busybox-static"
fi
[[ -s $cache/modules/$rel/modules.dep ]] ||
    die "no module tree for $rel in $cache (run fetch-kernel.sh $cache first)"

read -r -a roots <<<"virtio_pci 9pnet_virtio 9p vfio-pci vfio_iommu_type1 e1000e tun vhost_vsock button overlay bochs ${LAB_L1_MODULES:-}"

stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,host,hostview,lab/modules}
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$here/l1-init.sh" "$stage/init"
chmod 0755 "$stage/init" "$stage/bin/busybox"

# Dependency order: modprobe --show-depends prints, for one module, the
# insmod lines of its dependencies (hard and soft) first and itself last.
# Concatenate over the roots and keep the first occurrence of each module.
declare -A seen=()
: >"$stage/lab/modules.list"
for m in "${roots[@]}"; do
    deps=$(modprobe -d "$cache/kernel" -S "$rel" --show-depends "$m" 2>&1) ||
        die "module $m: $deps"
    while read -r verb path _; do
        case $verb in
            insmod) ;;
            builtin) continue ;;
            *) die "unexpected modprobe output for $m: $verb $path" ;;
        esac
        ko=${path##*/}
        # Kernels from 6.12 on (Debian) ship modules xz-compressed; busybox
        # insmod wants them plain.
        case $ko in
            *.ko.xz) ko=${ko%.xz} ;;
            *.ko.zst) ko=${ko%.zst} ;;
        esac
        [[ -z ${seen[$ko]:-} ]] || continue
        seen[$ko]=1
        case $path in
            *.ko.xz) xz -dc "$path" >"$stage/lab/modules/$ko" || die "cannot decompress $path" ;;
            *.ko.zst) zstd -qdc "$path" >"$stage/lab/modules/$ko" || die "cannot decompress $path" ;;
            *) cp "$path" "$stage/lab/modules/$ko" ;;
        esac
        echo "$ko" >>"$stage/lab/modules.list"
    done <<<"$deps"
done

printf '#mtree\n./dev/console type=char mode=0600 uid=0 gid=0 device=native,5,1\n' \
    >"$stage/console.mtree"
mkdir -p "$(dirname "$out")"
tmp_out="$out.tmp.$$"
(cd "$stage" && bsdtar -cf - --format newc --uid 0 --gid 0 --uname root --gname root \
    --exclude ./console.mtree . "@$stage/console.mtree") | gzip -6n >"$tmp_out"
mv "$tmp_out" "$out"
echo "$prog: $out: busybox + $(wc -l <"$stage/lab/modules.list") modules ($(tr '\n' ' ' <"$stage/lab/modules.list"))" >&2
