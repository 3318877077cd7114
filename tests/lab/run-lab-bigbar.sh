#!/bin/bash
# run-lab-bigbar.sh BUILD_DIR: the meson "lab-bigbar" test (issue 12, item 7).
# Fetches bookworm-backports' kernel and QEMU (fetch-backports.sh, a private
# apt configuration, nothing installed), makes the L2 initramfs as run-lab.sh
# does, and boots L1 on the backports kernel with one device only: QEMU's
# ivshmem-plain with a 64 GiB 64-bit prefetchable BAR (a sparse file, removed
# at the end) behind a root port, in a 64-bit PCI window of 256 GiB; then runs
# checks-l1-bigbar.sh there. Exit 0 only if every check passed; 77 when the
# lab cannot run here.
# Environment: LAB_CACHE (the lab's cache: L2's kernel and initramfs),
# LAB_BPO_CACHE (default <repo>/build-lab-bpo), LAB_TIMEOUT (default 1500 s).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
die() { echo "$prog: error: $*" >&2; exit 1; }
[[ $# -eq 1 && -d $1 ]] || { echo "usage: $prog BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
[[ $(id -u) -eq 0 ]] || skip "the lab needs root"
command -v "${LAB_QEMU:-qemu-system-x86_64}" >/dev/null || skip "qemu-system-x86_64 not found (install qemu-system-x86)"
command -v python3 >/dev/null || skip "python3 not found (the checks parse JSON with it)"
for f in "$build/vfiod/vfiod" "$build/vfiod/vfioctl" "$build/guest-init/guest-init"; do
    [[ -x $f ]] || die "$f is missing: build first"
done

cache=${LAB_CACHE:-$repo/build-lab-cache}
bpo=${LAB_BPO_CACHE:-$repo/build-lab-bpo}
mkdir -p "$cache/logs" "$bpo"
cache=$(cd "$cache" && pwd)
bpo=$(cd "$bpo" && pwd)

# L2: the lab's pinned kernel and a plain guest-init initramfs.
"$here/fetch-kernel.sh" "$cache" || die "could not fetch the guest kernel"
(
    flock 9
    "$build/vfiod/vfioctl" initramfs build --guest-init "$build/guest-init/guest-init" \
        --output "$cache/guest.cpio.gz.tmp" && mv "$cache/guest.cpio.gz.tmp" "$cache/guest.cpio.gz"
) 9>"$cache/.guest-initramfs.lock" || die "vfioctl initramfs build failed"

# L1's kernel and L2's QEMU from backports.
"$here/fetch-backports.sh" "$bpo" || die "could not fetch the backports kernel and QEMU"

bar=$(mktemp -d "$bpo/bar.XXXXXX")
trap 'rm -rf "$bar"' EXIT
export LAB_CACHE=$bpo/kernel
# run-l1.sh's fetch-kernel.sh: the backports kernel fetch-backports.sh
# resolved, not the repository's pins.
export VFIOD_PINS=$bpo/pins.env
# L1 covers /tmp (and /run, /root, ...) with tmpfs: keep the L2 cache and
# the backports dir (its QEMU) visible wherever the checkout is.
export LAB_KEEP=$cache:$bpo
# One device: the BAR's backing file is sparse (nothing is written to it).
export LAB_L1_DEVICES="-device pcie-root-port,id=rp4,chassis=4,addr=04.0 -device ivshmem-plain,memdev=bigbar,bus=rp4,addr=00.0"
export LAB_QEMU_EXTRA="${LAB_QEMU_EXTRA:-} -object memory-backend-file,id=bigbar,size=64G,mem-path=$bar/bar2,share=on -global q35-pcihost.pci-hole64-size=256G"
log=$cache/logs/lab-bigbar-$(date +%Y%m%d-%H%M%S)-$$.log
rc=0
LAB_MAP_TIMEOUT=${LAB_MAP_TIMEOUT:-300} "$here/run-l1.sh" --timeout "${LAB_TIMEOUT:-1500}" --log "$log" \
    "$here/checks-l1-bigbar.sh" "$build" "$cache" "$bpo/backports.env" || rc=$?

# The record of an older host: L1 on the lab's pinned kernel (the
# repository's pins), the same device, only the map timing (unaligned, as
# QEMU < 9.2 maps), bounded by LAB_OLD_MAP_TIMEOUT (default 120 s).
old_log=${log%.log}-old.log
old_rc=0
# Its sandbox gets 1.5x the time the recommended host's needed to be ready
# (240 to 900 s): a stall is then a stall whatever the machine's load.
old_wait=${LAB_OLD_READY_TIMEOUT:-$(sed -n 's/^# boot: .*"ready_ms":\([0-9]*\).*/\1/p' "$log" | head -n 1)}
old_wait=${old_wait:-240000}
[[ -n ${LAB_OLD_READY_TIMEOUT:-} ]] || old_wait=$((old_wait * 3 / 2000))
((old_wait >= 240)) || old_wait=240
((old_wait <= 900)) || old_wait=900
LAB_OLD_READY_TIMEOUT=$old_wait LAB_CACHE=$cache VFIOD_PINS='' LAB_MAP_TIMEOUT=${LAB_OLD_MAP_TIMEOUT:-120} \
    "$here/run-l1.sh" --timeout "${LAB_OLD_TIMEOUT:-1500}" --log "$old_log" \
    "$here/checks-l1-bigbar.sh" "$build" "$cache" "$bpo/backports.env" --old || old_rc=$?
[[ $old_rc -ne 77 ]] || exit 77

echo "==== $prog: results (console logs: $log, $old_log) ===="
grep -a -h -E '^(ok|not ok) - |^# lab-bigbar(-old)?: |^# map-bar: ' "$log" "$old_log" ||
    echo "(no check results: see the logs)"
# Checks 7 and 8: the older host pays 3x or more for the first fault on the
# BAR, and 1.5x or more (or stalls) before the guest's kernel starts: the
# reason doctor warns ("large-bars").
cmp=$(python3 "$here/map-bar-compare.py" "$log" "$old_log")
echo "$cmp"
count() { { cat "$log" "$old_log"; echo "$cmp"; } | grep -a -c "$1" || true; }
passed=$(count '^ok - ')
failed=$(count '^not ok - ')
echo "# lab-bigbar: $passed passed, $failed failed (both boots)"
[[ $rc -eq 0 && $old_rc -eq 0 && $failed -eq 0 ]]
