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

# --- the real NVIDIA driver against the display-class stand-in ---------------
V=${LAB_DEV_GPU:-0000:03:00.0}
PRESENT_AS=10de:2335
gpu_view() {
    printf '   kernel: %s %s class %s driver=%s driver_override=%s\n' "$V" "$(hexid "$V")" "$(cat "$dev/$V/class")" "$(driver_of "$V")" "$(override_of "$V")"
}
# wait_verdict SERIAL_LOG QEMU_PID SECONDS: the guest's VFIOD_FATAL or
# VFIOD_READY line once it appears; 1 if neither does in time or QEMU ends.
wait_verdict() {
    local line deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        line=$(grep -a -o -E 'VFIOD_(FATAL|READY) \{.*\}' "$1" 2>/dev/null | head -n 1 | tr -d '\r' || true)
        if [[ -n $line ]]; then
            echo "$line"
            return 0
        fi
        alive "$2" || return 1
        sleep 2
    done
    return 1
}
say "The real NVIDIA driver path, without an NVIDIA GPU"
if [[ -z ${LAB_GPU_LAYER:-} || ! -e $dev/$V ]]; then
    echo "   (no driver layer or no stand-in $V: see prep-gpu.sh's messages above)"
    failed=1
else
    echo "   The stand-in is $V, QEMU's std VGA: a display-class function (the class the NVIDIA"
    echo "   driver's PCI table matches) in an IOMMU group of its own, driven here by bochs-drm."
    echo "   vfiod passes it to a sandbox presented as an NVIDIA H200 ($PRESENT_AS, the test-only"
    echo "   [qemu] test_present_as), with a plain Debian root disk (no NVIDIA file in it) and"
    echo "   the NVIDIA $LAB_GPU_DRIVER_VERSION driver layer built from Debian's packages ([qemu] driver_layer):"
    echo "   $LAB_GPU_LAYER"
    gpu_view
    drv_v=$(driver_of "$V")
    stop_vfiod || true
    sed -i -e "s/^ids=.*/&;$(hexid "$V")/" \
        -e "s|^accel=tcg\$|accel=tcg\ntest_present_as=$PRESENT_AS\ndriver_layer=$LAB_GPU_LAYER|" "$conf"
    echo "   vfiod's config now also has:"
    grep -E '^(ids|test_present_as|driver_layer)=' "$conf" | sed 's/^/     /' || true
    start_vfiod || { echo "vfiod did not come up"; exit 1; }
    groot=$work/workload-root.ext4
    cp --sparse=always "$LAB_GPU_ROOT" "$groot"
    echo "   the workload root: $(sed -n 's/^PRETTY_NAME=//p' "${LAB_GPU_ROOT%/*}/os-release" | tr -d '"'), minbase, copied to $groot"
    gsb=''
    run sandbox create --device "$V" --kernel "$KERNEL" --initrd "$LAB_GPU_INITRD" --disk "$groot" --memory 768 || true
    "$VFIOCTL" --socket "$sock" sandbox list --json >"$work/gpu-list.json" 2>/dev/null || echo '[]' >"$work/gpu-list.json"
    gsb=$(json "$work/gpu-list.json" "d[0]['id'] if d else ''" 2>/dev/null || true)
    if [[ -n $gsb ]]; then
        gpid=$(json "$work/gpu-list.json" "d[0].get('pid', '')")
        gserial=$(json "$work/gpu-list.json" "d[0].get('serial_log') or '$runtime/sandboxes/$gsb/serial.log'")
        tail -n +1 -F "$gserial" >"$work/gpu-serial.log" 2>/dev/null &
        gtail=$!
        gpu_view
        echo "   QEMU shows it to the guest as: $(tr '\0' '\n' <"/proc/$gpid/cmdline" | grep -a -E "^vfio-pci,host=$V")"
        gtimeout=$(scaled_l2 600)
        echo "   waiting for the guest (nested TCG: a few minutes; up to $gtimeout s) ..."
        t0=$SECONDS
        if line=$(wait_verdict "$work/gpu-serial.log" "$gpid" "$gtimeout"); then
            echo "   after $((SECONDS - t0)) s. The guest kernel's log of nvidia.ko:"
            grep -a -E '^\[ *[0-9.]+\] .*(nvidia|NVRM)' "$work/gpu-serial.log" | tr -d '\r' | sed 's/^/   | /' || true
            echo "   guest-init's verdict (${line%% *}):"
            echo "${line#* }" >"$work/gpu-verdict.json"
            json "$work/gpu-verdict.json" "'\n'.join([
                '   error:    %s' % d.get('error'),
                '   GPUs:     %s' % '; '.join('%s (%s) probe %s: %s -> %s' % (g['bdf'], ','.join(p['id'] for p in d.get('pci', []) if p['bdf'] == g['bdf']), g['probe'], g['call'], g['error']) for g in (d.get('cuda') or {}).get('gpus', [])),
                '   CUDA:     %s' % (d.get('cuda') or {}).get('probe'),
                '   nvidia-smi (the layer\'s, run in the Debian root): %s: %s' % (d.get('smi'), ' '.join(d.get('smi_output') or [])),
                '   nvidia-persistenced: %s' % d.get('persistenced'),
                '   modules loaded before nvidia.ko: %s' % ' '.join(d.get('modules') or []),
                '   GSP firmware: %s' % ((d.get('driver_layer') or {}).get('firmware')),
                '   the kernel\'s NVRM lines:'] + ['     ' + l for l in (d.get('cuda') or {}).get('nvrm', [])])" || true
            [[ $line == VFIOD_FATAL* ]] || { echo "   a FALSE READY: the stand-in is no GPU"; failed=1; }
        else
            echo "   no verdict from the guest within $gtimeout s; serial log tail:"
            tail -n 30 "$work/gpu-serial.log" | sed 's/^/   | /'
            failed=1
        fi
        for _ in $(seq 120); do alive "$gpid" || break; sleep 1; done
        echo "   the guest: $(grep -a -o 'VFIOD_POWEROFF {.*}' "$work/gpu-serial.log" | tail -n 1 | tr -d '\r')"
        for _ in $(seq 50); do [[ $(driver_of "$V") == "$drv_v" ]] && break; sleep 0.2; done
        echo "   and the stand-in is back on its host driver:"
        gpu_view
        kill "$gtail" 2>/dev/null || true
        run sandbox list || true
        run sandbox delete "$gsb" || true
        [[ $(driver_of "$V") == "$drv_v" ]] || failed=1
    else
        echo "   (no sandbox was created)"
        failed=1
    fi
fi

say "And the host is as it was"
run list || true
rm -f "$sb_before"
echo
if [[ $failed -eq 0 ]]; then echo "demo: done"; else echo "demo: some steps failed (see above)"; fi
exit "$failed"
