#!/bin/bash
# run-lab-guest.sh BUILD_DIR
#
# The meson "lab-guest" test (suite lab): one sandbox with a staged guest
# image, the sandbox network, vsock reports and an unprivileged QEMU, on the
# real kernel in L1, then a second sandbox in which the real nvidia.ko of
# the NVIDIA driver layer probes the display-class stand-in
# (tests/lab/README.md, checks-l1-guest.sh). Here, on the host: fetch the
# pinned guest kernel, stage the L2 image with the project's stager
# (`vfioctl initramfs build --modules-dir ... --module ...`; inside L1 the
# build and cache dirs are read-only), print the staged module order, build
# or reuse the driver layer, the Debian workload root and the GPU image
# (prep-gpu.sh), then boot L1 with checks-l1-guest.sh. Exit status: the
# checks' (0 only if all passed), 77 when the lab cannot run here (not root,
# no QEMU, no mmdebstrap, ...), 1 on any other failure.
#   LAB_CACHE    kernel/initramfs cache (default <repo>/build-lab-cache)
#   LAB_TIMEOUT  L1 timeout in seconds (default 3900: two nested boots)
#   LAB_GUEST_STAGE_MODULES  the --module list, space-separated (default
#                "e1000e virtio_pci virtio_net virtio_blk ext4 crc32c_generic
#                overlay vmw_vsock_virtio_transport button evdev")
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog BUILD_DIR" >&2; exit 2; }
[[ -d $1 ]] || { echo "$prog: no such build dir: $1" >&2; exit 2; }
build=$(cd "$1" && pwd)

# Same skip conditions as run-l1.sh, checked before any download or build.
[[ $(id -u) -eq 0 ]] || skip "the lab needs root (it runs QEMU with a 9p share of / and binds devices inside L1)"
command -v "${LAB_QEMU:-qemu-system-x86_64}" >/dev/null ||
    skip "${LAB_QEMU:-qemu-system-x86_64} not found (install qemu-system-x86)"
command -v python3 >/dev/null || skip "python3 not found (the checks parse JSON with it)"
# Used inside L1 (it runs the host's root): nft for the table, ping, ip.
missing=()
for tool in nft ping ip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[[ ${#missing[@]} -eq 0 ]] || skip "missing in the host root (L1 runs it): ${missing[*]} (apt-get install nftables iputils-ping iproute2)"

vfioctl=$build/vfiod/vfioctl
guest_init=$build/guest-init/guest-init
for f in "$build/vfiod/vfiod" "$vfioctl" "$guest_init"; do
    [[ -x $f ]] || die "$f is missing: build first (meson compile -C $build)"
done

cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
export LAB_CACHE=$cache

t0=$(date +%s%3N)
"$here/fetch-kernel.sh" "$cache" || die "could not fetch the guest kernel"
# The release fetch-kernel.sh fetched (the pins resolved against the archive).
# shellcheck source=/dev/null
. "$cache/kernel.env"
moddir=$cache/kernel/lib/modules/$GUEST_KERNEL_RELEASE
[[ -s $moddir/modules.dep ]] || die "$moddir has no modules.dep (fetch-kernel.sh runs depmod)"

# The L2 image, staged: the passed device's driver (e1000e), the sandbox NIC
# (virtio_net over virtio_pci), the root disk and its overlay (virtio_blk,
# ext4 with crc32c_generic, overlay: check 1's sandbox, made through
# vfiod-openshell-driver, has the Debian workload root as its image), vsock
# for the ready report, and the ACPI power button (button + evdev) for a
# graceful delete.
out=$cache/guest-staged.cpio.gz
stage=(initramfs build --guest-init "$guest_init" --output "$out.tmp" --modules-dir "$moddir")
for m in ${LAB_GUEST_STAGE_MODULES:-e1000e virtio_pci virtio_net virtio_blk ext4 crc32c_generic overlay vmw_vsock_virtio_transport button evdev}; do
    stage+=(--module "$m")
done
stage+=(--pins "$cache/kernel.env" --json)
echo "$prog: vfioctl ${stage[*]}" >&2
rm -f "$out.tmp"
if ! "$vfioctl" "${stage[@]}" >"$cache/guest-staged.json"; then
    rm -f "$out.tmp"
    die "vfioctl initramfs build failed"
fi
mv "$out.tmp" "$out"
modules=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["modules"]))' "$cache/guest-staged.json")
t1=$(date +%s%3N)
echo "$prog: staged $out ($(stat -c %s "$out") bytes, $((t1 - t0)) ms with the kernel check); module load order:"
n=0
for m in $modules; do n=$((n + 1)); echo "$prog:   $n. $m"; done
export LAB_GUEST_MODULES=$modules

# The GPU sandbox (check 6): driver layer, workload root, GPU image.
grc=0
"$here/prep-gpu.sh" "$build" "$cache" || grc=$?
[[ $grc -ne 77 ]] || exit 77
[[ $grc -eq 0 ]] || die "prep-gpu.sh failed (exit $grc)"
# shellcheck source=/dev/null
. "$cache/gpu.env"
export "${!LAB_GPU_@}"
t1=$(date +%s%3N)
echo "$prog: host-side preparation took $((t1 - t0)) ms"

mkdir -p "$cache/logs"
log=$cache/logs/lab-guest-$(date +%Y%m%d-%H%M%S)-$$.log
# keep the 20 newest lab-guest logs
find "$cache/logs" -name 'lab-guest-*-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +20 |
    cut -d' ' -f2- | xargs -r rm -f
rc=0
"$here/run-l1.sh" --timeout "${LAB_TIMEOUT:-3900}" --log "$log" "$here/checks-l1-guest.sh" "$build" "$cache" || rc=$?
t2=$(date +%s%3N)
if [[ $rc -ne 77 ]]; then
    ln -sfn "${log##*/}" "$cache/logs/lab-guest-latest.log"
    echo "==== $prog: results (full console log: $log; $(((t2 - t0) / 1000)) s in all) ===="
    grep -a -E '^(ok|not ok) - |^# lab-guest: ' "$log" || echo "(no check results: see the log)"
fi
exit "$rc"
