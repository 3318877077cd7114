#!/bin/bash
# demo-l1.sh BUILD_DIR CACHE_DIR: vfiod's main job, narrated, run inside L1
# by demo.sh. Human-readable vfioctl output; the kernel's view (sysfs) is
# shown next to it. Exit 0 if every step worked.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: ${0##*/} BUILD_DIR CACHE_DIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"

failed=0
say() { printf '\n== %s\n' "$*"; }
kernel_view() {
    local b
    for b in "$A" "$B"; do
        printf '   kernel: %s %s driver=%s driver_override=%s\n' "$b" "$(hexid "$b")" "$(driver_of "$b")" "$(override_of "$b")"
    done
}
# run ARGS...: show and run `vfioctl ARGS`, note a failure but go on
run() {
    local rc=0
    printf '$ vfioctl %s\n' "$*"
    "$VFIOCTL" --socket "$sock" "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "   (exit status $rc)"
        failed=1
    fi
    return "$rc"
}

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    local rc=$?
    stop_vfiod || true
    if [[ $rc -ne 0 || $failed -ne 0 ]] && [[ -s $vlog ]]; then
        echo
        echo "-- vfiod log:"
        cat "$vlog"
    fi
    exit "$rc"
}
trap cleanup EXIT

say "L1, the GPU host: $(uname -r), IOMMU on, the stand-in GPU is $A ($(hexid "$A")) with its companion function $B ($(hexid "$B")), IOMMU group $(group_of "$A")"
kernel_view
# how busy the host is: the wait for the guest below scales with it
calibrate
echo "   $calib_msg"

write_config
say "Start vfiod (config $conf)"
sed 's/^/   /' "$conf"
start_vfiod || { echo "vfiod did not come up"; exit 1; }
echo "   vfiod is up, pid $vfiod_pid, API socket $sock"

say "What can vfiod manage on this host?"
run list || true

say "Bind the GPU to vfio-pci: vfiod binds its whole IOMMU group"
run bind "$A" --owner demo || true
kernel_view
echo "   /dev/vfio: $(cd /dev/vfio && echo *)"
run list || true

say "Release it: both functions go back to their own drivers"
run release "$A" || true
kernel_view

say "Start a sandbox with the GPU: a nested QEMU guest whose PID 1 is guest-init"
sb_before=$(mktemp)
run sandbox create --device "$A" --kernel "$KERNEL" --initrd "$INITRD" --memory 256 || true
"$VFIOCTL" --socket "$sock" sandbox list --json >"$sb_before" 2>/dev/null || echo '[]' >"$sb_before"
sb_id=$(json "$sb_before" "d[0]['id'] if d else ''" 2>/dev/null || true)
if [[ -n $sb_id ]]; then
    sb_pid=$(json "$sb_before" "d[0].get('pid', '')")
    serial=$(json "$sb_before" "d[0].get('serial_log') or '$runtime/sandboxes/$sb_id/serial.log'")
    kernel_view
    run sandbox list || true
    echo "   waiting for the guest (nested TCG: a minute or two on a quiet host; up to ${READY_TIMEOUT} s) ..."
    t0=$SECONDS
    if line=$(wait_ready "$serial" "$sb_pid"); then
        echo "   after $((SECONDS - t0)) s the guest says:"
        echo "   $line"
        echo "${line#VFIOD_READY }" >"$work/ready.json"
        json "$work/ready.json" "'\n'.join('   guest sees PCI %s  %s' % (p['bdf'], p['id']) for p in d.get('pci', []))" || true
    else
        echo "   no VFIOD_READY line within ${READY_TIMEOUT}s; serial log tail:"
        tail -n 30 "$serial" 2>/dev/null | sed 's/^/   | /' || true
        failed=1
    fi

    say "Delete the sandbox: QEMU stops, the devices go back to the host"
    run sandbox delete "$sb_id" || true
    for _ in $(seq 50); do [[ $(driver_of "$A") != vfio-pci ]] && break; sleep 0.2; done
    kernel_view
    run sandbox list || true
else
    echo "   (no sandbox was created)"
    failed=1
fi

say "And the host is as it was"
run list || true
rm -f "$sb_before"
echo
if [[ $failed -eq 0 ]]; then echo "demo: done"; else echo "demo: some steps failed (see above)"; fi
exit "$failed"
