#!/bin/bash
# run-lab.sh [--script L1_SCRIPT] BUILD_DIR
#
# The meson "lab" test (tests/lab/README.md): fetch the pinned guest kernel,
# build the sandbox (L2) initramfs with the project's vfioctl and guest-init,
# boot L1 and run checks-l1.sh (or L1_SCRIPT, e.g. demo-l1.sh) there with
# BUILD_DIR and the cache dir as arguments. Exit status: the checks' (0 only
# if all passed), 77 when the lab cannot run here (not root, no QEMU, ...),
# 1 on any other failure.
#   LAB_CACHE    kernel/initramfs cache (default <repo>/build-lab-cache)
#   LAB_TIMEOUT  L1 timeout in seconds (default 2700)
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
die() { echo "$prog: error: $*" >&2; exit 1; }

l1_script=$here/checks-l1.sh
if [[ ${1:-} == --script ]]; then
    [[ $# -ge 2 ]] || { echo "usage: $prog [--script L1_SCRIPT] BUILD_DIR" >&2; exit 2; }
    l1_script=$2
    shift 2
fi
[[ $# -eq 1 ]] || { echo "usage: $prog [--script L1_SCRIPT] BUILD_DIR" >&2; exit 2; }
[[ -d $1 ]] || { echo "$prog: no such build dir: $1" >&2; exit 2; }
build=$(cd "$1" && pwd)

# Same skip conditions as run-l1.sh, checked before any download or build.
[[ $(id -u) -eq 0 ]] || skip "the lab needs root (it runs QEMU with a 9p share of / and binds devices inside L1)"
command -v "${LAB_QEMU:-qemu-system-x86_64}" >/dev/null ||
    skip "${LAB_QEMU:-qemu-system-x86_64} not found (install qemu-system-x86)"
command -v python3 >/dev/null || skip "python3 not found (the checks parse JSON with it)"

vfioctl=$build/vfiod/vfioctl
guest_init=$build/guest-init/guest-init
for f in "$build/vfiod/vfiod" "$vfioctl" "$guest_init"; do
    [[ -x $f ]] || die "$f is missing: build first (meson compile -C $build)"
done

cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
export LAB_CACHE=$cache

"$here/fetch-kernel.sh" "$cache" || die "could not fetch the guest kernel"

# The sandbox initramfs is made here, on the host: inside L1 the build and
# cache dirs are read-only.
echo "$prog: vfioctl initramfs build --guest-init $guest_init --output $cache/guest.cpio.gz" >&2
rm -f "$cache/guest.cpio.gz.tmp"
if ! "$vfioctl" initramfs build --guest-init "$guest_init" --output "$cache/guest.cpio.gz.tmp"; then
    rm -f "$cache/guest.cpio.gz.tmp"
    die "vfioctl initramfs build failed"
fi
mv "$cache/guest.cpio.gz.tmp" "$cache/guest.cpio.gz"

mkdir -p "$cache/logs"
log=$cache/logs/lab-$(date +%Y%m%d-%H%M%S)-$$.log
# keep the 20 newest lab logs
find "$cache/logs" -name 'lab-*-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +20 |
    cut -d' ' -f2- | xargs -r rm -f
rc=0
"$here/run-l1.sh" --timeout "${LAB_TIMEOUT:-2700}" --log "$log" "$l1_script" "$build" "$cache" || rc=$?
if [[ $rc -ne 77 && $l1_script == "$here/checks-l1.sh" ]]; then
    ln -sfn "${log##*/}" "$cache/logs/lab-latest.log"
    echo "==== $prog: results (full console log: $log) ===="
    grep -a -E '^(ok|not ok) - |^# lab: ' "$log" || echo "(no check results: see the log)"
fi
exit "$rc"
