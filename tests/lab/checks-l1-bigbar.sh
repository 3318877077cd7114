#!/bin/bash
# checks-l1-bigbar.sh BUILD_DIR CACHE_DIR BACKPORTS_ENV
#
# The "lab-bigbar" checks (issue 12, item 7), run INSIDE L1 as root by
# run-lab-bigbar.sh: a GPU-sized BAR passed through on the host versions the
# README recommends for large-BAR GPUs. L1 runs bookworm-backports' kernel
# (>= 6.12, huge pfnmap) and has one function with a 64 GiB 64-bit
# prefetchable BAR (QEMU's ivshmem-plain, 1af4:1110, on a sparse 64 GiB file,
# behind a root port: an IOMMU group of its own); vfiod runs bookworm-
# backports' QEMU (>= 9.2) for L2 (BACKPORTS_ENV, from fetch-backports.sh).
#   1. the versions: L1's kernel >= 6.12, L2's QEMU >= 9.2
#   2. L1 assigned the 64 GiB BAR (sysfs resource) and the function is alone
#      in its IOMMU group
#   3. `vfioctl sandbox create --device BDF --wait`: QEMU gets the 64-bit
#      window (pci-hole64-size=64G) and the address bits for it (phys-bits),
#      the guest reports ready, and guest-init's ready report lists the
#      function with BAR 2: 64 GiB, mem64, prefetchable, assigned; the time
#      from create to ready is printed (vfiod's own figure and vfioctl's)
#   4. delete: QEMU gone, the function back on no driver, no override
#   5. too big: with [qemu] max_phys_bits=37 (below the 38 bits 512 MiB of
#      RAM and a 64 GiB window need) the same create is refused before
#      anything happens, naming the bits; nothing bound, no sandbox, no QEMU
#   6. the kernel's share of a VMM's start with that BAR (vfio-hold
#      --map-bar): mmap aligned to the BAR (as QEMU >= 9.2 maps), first
#      fault, VFIO_IOMMU_MAP_DMA of the whole BAR; a "# map-bar: {...}" line,
#      bounded by LAB_MAP_TIMEOUT (default 300 s)
# With --old as a 4th argument (L1 on the lab's pinned, older kernel) only
# the device, check 6 (unaligned) and the same create on the machine's own
# QEMU (bounded by LAB_OLD_READY_TIMEOUT: run-lab-bigbar.sh gives it 1.5x
# what the recommended host needed, 240-900 s) run: the record of
# what older hosts pay ("# map-bar:" and "# boot:" lines; run-lab-bigbar.sh
# compares the two boots with map-bar-compare.py).
# Output: "ok - ..." / "not ok - ..." per check, "# ..." details,
# "# lab-bigbar: N passed, N failed". Exit 0 only if all passed.
set -uo pipefail

prog=${0##*/}
[[ $# -eq 3 || ($# -eq 4 && $4 == --old) ]] || { echo "usage: $prog BUILD_DIR CACHE_DIR BACKPORTS_ENV [--old]" >&2; exit 2; }
old=${4:-}
if [[ ${LAB_L1:-} != 1 ]]; then
    echo "$prog: refusing to run outside the lab VM (run it with tests/lab/run-lab-bigbar.sh)" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"
# shellcheck source=/dev/null
. "$3"

work=/tmp/vfiod-lab-bigbar
state=$work/state
runtime=/run/vfiod-bigbar
sock=$runtime/vfiod.sock
conf=$work/vfiod.conf
vlog=$work/vfiod.log
MEMORY=512
BAR_SIZE=$((64 << 30))

pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
note() { echo "# $*"; }
indent() { sed -e 's/\r$//' -e "s/^/#   $1/"; }
vrc=0
vfioctl() {
    vrc=0
    timeout "${VFIOCTL_TIMEOUT:-60}" "$VFIOCTL" --socket "$sock" "$@" >"$work/out" 2>"$work/err" || vrc=$?
    return 0
}
show_call() {
    note "vfioctl $* -> exit $vrc"
    [[ ! -s $work/out ]] || indent "out: " <"$work/out"
    [[ ! -s $work/err ]] || indent "err: " <"$work/err"
}
finish() {
    stop_vfiod || true
    echo "# lab-bigbar: $pass passed, $fail failed"
    [[ $fail -eq 0 ]]
    exit $?
}

rm -rf "$work" "$runtime"
mkdir -p "$work" "$state"
calibrate
note "$calib_msg"

# --- 1. versions -------------------------------------------------------------
krel=$(uname -r)
qver=$("$BACKPORTS_QEMU" -version | sed -n 's/^QEMU emulator version \([0-9.]*\).*/\1/p')
kmm=$(sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p' <<<"$krel")
# write_bigbar_conf QEMU_BINARY: vfiod's configuration for these checks.
write_bigbar_conf() {
    cat >"$conf" <<EOF
[daemon]
state_dir=$state
runtime_dir=$runtime
allowed_group=
[devices]
ids=1af4:1110
classes=
[qemu]
binary=$1
accel=tcg
kernel=$KERNEL
initrd=$INITRD
[network]
enabled=false
EOF
}

# boot_line NAME: the "# boot: {...}" record of the create in $work/create.json
# (vfiod's ready_ms, the guest's uptime at ready) for map-bar-compare.py.
boot_line() {
    python3 - "$work/create.json" "$1" "$(uname -r)" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d.get("ready_report") or {}
print("# boot: " + json.dumps({"host": sys.argv[2], "kernel": sys.argv[3], "ready_ms": d.get("ready_ms"),
                                "uptime_ms": r.get("uptime_ms")}, separators=(",", ":")))
EOF
}

if [[ $old == --old ]]; then
    note "1: the older host: L1 kernel $krel (the lab's pinned kernel)"
elif dpkg --compare-versions "$kmm" ge 6.12 && dpkg --compare-versions "${qver:-0}" ge 9.2; then
    ok "1: L1 kernel $krel (>= 6.12), L2's QEMU $qver (>= 9.2, $BACKPORTS_SUITE: $BACKPORTS_QEMU_VERSION)"
else
    nok "1: L1 kernel >= 6.12 and QEMU >= 9.2 (got kernel $krel, QEMU ${qver:-unknown})"
fi

# --- 2. the 64 GiB BAR in L1 ---------------------------------------------------
F=
for d in "$dev"/*; do
    [[ $(cat "$d/vendor" 2>/dev/null):$(cat "$d/device" 2>/dev/null) == 0x1af4:0x1110 ]] || continue
    F=${d##*/}
    break
done
if [[ -z $F ]]; then
    nok "2: L1 has the ivshmem-plain function (1af4:1110)"
    finish
fi
bar2=$(sed -n 3p "$dev/$F/resource")
read -r s e _ <<<"$bar2"
size=$((e - s + 1))
group=$(group_of "$F")
members=$(ls "/sys/kernel/iommu_groups/$group/devices" 2>/dev/null | tr '\n' ' ')
if ((s != 0 && size == BAR_SIZE)) && [[ $members == "$F " ]]; then
    ok "2: L1 assigned $F's BAR 2: $((size >> 30)) GiB at $s; IOMMU group $group holds only it"
else
    nok "2: L1 assigned $F's 64 GiB BAR 2, alone in its IOMMU group (got resource '$bar2', group $group: $members)"
fi
drv0=$(driver_of "$F")

# map_bar [--unaligned]: check 6 on $F, which must be on vfio-pci. Prints the
# JSON line as "# map-bar: ..." or a stall as "# map-bar: {"stalled_s": N}".
MAP_TIMEOUT=${LAB_MAP_TIMEOUT:-300}
map_bar() {
    local out rc=0 t0
    t0=$(now_ms)
    out=$(timeout -s KILL "$MAP_TIMEOUT" "$VFIO_HOLD" --map-bar 2 "$@" "$F" 2>&1) || rc=$?
    if [[ $rc -eq 0 && $out == '{'* ]]; then
        echo "# map-bar: $out"
        ok "6: vfio-hold --map-bar 2 ${*:-(aligned)} on kernel $(uname -r): $out"
    elif [[ $rc -eq 137 ]]; then
        echo "# map-bar: {\"bar\":2,\"aligned\":$([[ $* == *--unaligned* ]] && echo false || echo true),\"stalled_s\":$MAP_TIMEOUT}"
        note "6: vfio-hold --map-bar 2 $* on kernel $(uname -r): not done after $MAP_TIMEOUT s (killed)"
    else
        nok "6: vfio-hold --map-bar 2 $* (exit $rc after $(($(now_ms) - t0)) ms: $out)"
    fi
}
if [[ $old == --old ]]; then
    # The older kernel: bind by hand (sysfs in L1), map, unbind.
    modprobe vfio-pci
    echo vfio-pci >"$dev/$F/driver_override"
    echo "$F" >/sys/bus/pci/drivers_probe
    if [[ $(driver_of "$F") == vfio-pci ]]; then
        map_bar --unaligned
    else
        nok "6: $F on vfio-pci for the map timing (got '$(driver_of "$F")')"
    fi
    echo "$F" >"$dev/$F/driver/unbind" 2>/dev/null || true
    echo >"$dev/$F/driver_override"
    # The same sandbox on this host's own QEMU, bounded: a record, not a
    # verdict (map-bar-compare.py compares it with the recommended host's).
    old_wait=${LAB_OLD_READY_TIMEOUT:-360}
    write_bigbar_conf qemu-system-x86_64
    if start_vfiod; then
        VFIOCTL_TIMEOUT=$((old_wait + 60)) vfioctl sandbox create --device "$F" --memory "$MEMORY" --wait --timeout "$old_wait" --json
        cp "$work/out" "$work/create.json"
        if [[ $vrc -eq 0 ]]; then
            boot_line older
        elif grep -q 'did not report ready (timed out)' "$work/err"; then
            echo "# boot: {\"host\":\"older\",\"kernel\":\"$(uname -r)\",\"stalled_s\":$old_wait}"
            note "older host: no ready report within $old_wait s"
            serial=$(ls "$runtime"/sandboxes/*/serial.log 2>/dev/null | head -n 1)
            [[ -z $serial ]] || tail -n 5 "$serial" | indent "L2: "
        else
            show_call sandbox create --device "$F" --memory "$MEMORY" --wait --timeout "$old_wait"
            nok "older host: the sandbox starts (exit $vrc)"
        fi
        sb=$(json "$work/create.json" "d['id']" 2>/dev/null || true)
        [[ -z $sb ]] || VFIOCTL_TIMEOUT=120 vfioctl sandbox delete "$sb"
        for s in $(VFIOCTL_TIMEOUT=30 "$VFIOCTL" --socket "$sock" sandbox list --json 2>/dev/null |
            python3 -c 'import json,sys; print(" ".join(e["id"] for e in json.load(sys.stdin)))' 2>/dev/null); do
            VFIOCTL_TIMEOUT=120 vfioctl sandbox delete "$s"
        done
        stop_vfiod || true
    else
        nok "older host: vfiod starts"
        indent "vfiod: " <"$vlog"
    fi
    echo "# lab-bigbar-old: $pass passed, $fail failed"
    [[ $fail -eq 0 ]]
    exit $?
fi

# --- 3. create --wait ----------------------------------------------------------
write_bigbar_conf "$BACKPORTS_QEMU"
if ! start_vfiod; then
    nok "3: vfiod starts"
    indent "vfiod: " <"$vlog"
    finish
fi
t0=$(now_ms)
VFIOCTL_TIMEOUT=$((READY_TIMEOUT + 60)) vfioctl sandbox create --device "$F" --memory "$MEMORY" --wait --timeout "$READY_TIMEOUT" --json
t_create=$(($(now_ms) - t0))
cp "$work/out" "$work/create.json"
sb=$(json "$work/create.json" "d['id']" 2>/dev/null || true)
if [[ $vrc -eq 0 && -n $sb ]]; then
    ready_ms=$(json "$work/create.json" "d['ready_ms']" 2>/dev/null || true)
    qpid=$(json "$work/create.json" "d['pid']" 2>/dev/null || true)
    argv=$(tr '\0' ' ' <"/proc/$qpid/cmdline" 2>/dev/null || true)
    hole=$(grep -o 'q35-pcihost.pci-hole64-size=[0-9A-Z]*' <<<"$argv" || true)
    cpu=$(grep -o 'qemu64,phys-bits=[0-9]*' <<<"$argv" || true)
    json "$work/create.json" "d['ready_report']" >"$work/ready.json" 2>/dev/null || true
    bar=$(json "$work/ready.json" "[b for p in d['pci'] if p['id'] == '1af4:1110' for b in p['bars'] if b['bar'] == 2][0]" 2>/dev/null || true)
    uptime=$(json "$work/ready.json" "d['uptime_ms']" 2>/dev/null || true)
    note "QEMU: $hole $cpu; ready report's BAR 2: ${bar:-none}"
    if [[ $hole == q35-pcihost.pci-hole64-size=64G && -n $cpu &&
        $bar == '{"bar": 2, "size": 68719476736, "type": "mem64", "prefetch": true, "assigned": true}' ]]; then
        boot_line recommended
        ok "3: sandbox $sb ready with the 64 GiB BAR assigned in L2 ($hole, $cpu): create to ready $t_create ms (vfioctl), vfiod's ready_ms ${ready_ms:-?}, L2 uptime at ready ${uptime:-?} ms"
    else
        nok "3: sandbox ready with BAR 2 (64 GiB, mem64, prefetchable, assigned) in L2 and pci-hole64-size=64G (got '$hole' '$cpu' bar '${bar:-none}')"
        indent "ready: " <"$work/ready.json"
    fi
else
    show_call sandbox create --device "$F" --memory "$MEMORY" --wait
    nok "3: sandbox create --device $F --wait exits 0 (got $vrc after $t_create ms)"
    serial=$(ls "$runtime"/sandboxes/*/serial.log 2>/dev/null | head -n 1)
    [[ -z $serial ]] || tail -n 40 "$serial" | indent "L2: "
    tail -n 30 "$vlog" | indent "vfiod: "
fi

# --- 4. delete -----------------------------------------------------------------
if [[ -n $sb ]]; then
    VFIOCTL_TIMEOUT=$(scaled_l2 120) vfioctl sandbox delete "$sb"
    if [[ $vrc -eq 0 && $(driver_of "$F") == "$drv0" && $(override_of "$F") == "(null)" ]] &&
        { [[ -z ${qpid:-} ]] || ! alive "$qpid"; }; then
        ok "4: delete: QEMU gone, $F back on '${drv0:-no driver}', no driver_override"
    else
        show_call sandbox delete "$sb"
        nok "4: delete: QEMU gone, $F back on '${drv0:-no driver}' (got exit $vrc, driver '$(driver_of "$F")', override '$(override_of "$F")')"
    fi
fi

# --- 5. too big for the address width allowed -----------------------------------
stop_vfiod || true
sed -i 's/^\[qemu\]$/[qemu]\nmax_phys_bits=37/' "$conf"
if start_vfiod; then
    vfioctl sandbox create --device "$F" --memory "$MEMORY" --json
    crc=$vrc
    err=$(cat "$work/err")
    vfioctl sandbox list --json
    n=$(json "$work/out" "len(d)" 2>/dev/null || echo '?')
    if [[ $crc -ne 0 && $vrc -eq 0 && $err == *"38 physical address bits"*"max_phys_bits"* && $n == 0 &&
        $(driver_of "$F") == "$drv0" && $(override_of "$F") == "(null)" ]] &&
        ! pgrep -f "vfio-pci,host=$F" >/dev/null; then
        ok "5: max_phys_bits=37: create refused before anything happened ($(tr '\n' ' ' <<<"$err")); no sandbox, $F untouched"
    else
        nok "5: max_phys_bits=37: create refused naming 38 bits and max_phys_bits, nothing changed (got: $err; sandboxes $n; driver '$(driver_of "$F")')"
    fi
else
    nok "5: vfiod starts with max_phys_bits=37"
    indent "vfiod: " <"$vlog"
fi

# --- 6. the kernel's share: mapping the BAR as a VMM does -----------------------
vfioctl bind "$F"
if [[ $vrc -eq 0 && $(driver_of "$F") == vfio-pci ]]; then
    map_bar
    vfioctl release "$F"
    [[ $vrc -eq 0 && $(driver_of "$F") == "$drv0" ]] || nok "6: release $F after the map timing (exit $vrc, driver '$(driver_of "$F")')"
else
    show_call bind "$F"
    nok "6: vfioctl bind $F for the map timing"
fi
finish
