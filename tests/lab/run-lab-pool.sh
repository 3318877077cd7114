#!/bin/bash
# run-lab-pool.sh BUILD_DIR: the meson "lab-pool" test (issue 16, items 1-3):
# boots L1 twice with pool-l1.sh (phase 1, then phase 2: the reboot, which
# runs whatever phase 1 gave), with a
# writable 9p share between the boots standing in for the host's disk (a
# temporary dir here, removed at the end). Exit 0 only if both phases pass;
# 77 when the lab cannot run here.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
[[ $# -eq 1 && -d $1 ]] || { echo "usage: $prog BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
[[ $(id -u) -eq 0 ]] || skip "the lab needs root"
command -v "${LAB_QEMU:-qemu-system-x86_64}" >/dev/null || skip "qemu-system-x86_64 not found (install qemu-system-x86)"
for f in "$build/vfiod/vfiod" "$build/vfiod/vfioctl"; do
    [[ -x $f ]] || { echo "$prog: $f is missing: build first" >&2; exit 1; }
done
cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache/logs"
cache=$(cd "$cache" && pwd)
export LAB_CACHE=$cache

share=$(mktemp -d "${TMPDIR:-/tmp}/lab-pool-state.XXXXXX")
trap 'rm -rf "$share"' EXIT
export LAB_QEMU_EXTRA="${LAB_QEMU_EXTRA:-} -virtfs local,path=$share,mount_tag=labstate,security_model=none"
rc=0
for phase in 1 2; do
    log=$cache/logs/lab-pool-$phase-$(date +%Y%m%d-%H%M%S)-$$.log
    r=0
    "$here/run-l1.sh" --timeout "${LAB_TIMEOUT:-1200}" --log "$log" "$here/pool-l1.sh" "$build" "$cache" "$phase" labstate || r=$?
    echo "==== $prog: phase $phase exited $r (console log: $log) ===="
    grep -a -E '^(ok|not ok) - |^# lab-pool' "$log" || echo "(no check results: see the log)"
    # Phase 2 runs anyway (its checks say what a failed phase 1 left out):
    # more to read from one run; the verdict is the first failure.
    if [[ $r -eq 77 ]]; then
        exit 77
    elif [[ $r -ne 0 && $rc -eq 0 ]]; then
        rc=$r
    fi
done
exit "$rc"
