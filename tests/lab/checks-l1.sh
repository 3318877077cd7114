#!/bin/bash
# checks-l1.sh BUILD_DIR CACHE_DIR
#
# The lab checks (tests/lab/README.md), run INSIDE L1 as root by run-lab.sh:
#   tests/lab/run-l1.sh tests/lab/checks-l1.sh BUILD_DIR CACHE_DIR
# They drive the project's vfiod/vfioctl against the real kernel: bind and
# release of a two-function device (one IOMMU group) through vfio-pci, a
# sandbox (nested L2 QEMU) whose guest-init reports the passed-through
# devices, bad input that must change nothing.
# Output: one "ok - ..." / "not ok - ..." line per check, "# ..." diagnostics,
# and "# lab: N passed, N failed". Exit 0 only if every check passed.
#
# Expects from BUILD_DIR: vfiod/vfiod, vfiod/vfioctl; from CACHE_DIR: vmlinuz
# (fetch-kernel.sh) and guest.cpio.gz (vfioctl initramfs build, made by
# run-lab.sh on the host since BUILD_DIR and CACHE_DIR are read-only here).
set -euo pipefail

prog=${0##*/}
[[ $# -eq 2 ]] || { echo "usage: $prog BUILD_DIR CACHE_DIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"

MISSING=0000:00:1f.7 # no such device in L1

pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
note() { echo "# $*"; }
indent() { sed -e 's/\r$//' -e "s/^/#   $1/"; }

# vfioctl ARGS...: runs vfioctl against our daemon; stdout in $work/out,
# stderr in $work/err, exit status in $vrc (never aborts the script).
vrc=0
vfioctl() {
    vrc=0
    timeout "${VFIOCTL_TIMEOUT:-60}" "$VFIOCTL" --socket "$sock" "$@" >"$work/out" 2>"$work/err" || vrc=$?
    if [[ $vrc -eq 124 ]]; then
        note "vfioctl $* timed out after ${VFIOCTL_TIMEOUT:-60}s"
    fi
    return 0
}
show_call() {
    note "vfioctl $* -> exit $vrc"
    [[ ! -s $work/out ]] || indent "out: " <"$work/out"
    [[ ! -s $work/err ]] || indent "err: " <"$work/err"
}

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    local rc=$?
    stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
    if [[ $fail -gt 0 || $rc -ne 0 ]] && [[ -s $vlog ]]; then
        note "vfiod log ($vlog):"
        indent "" <"$vlog"
    fi
    exit "$rc"
}
trap cleanup EXIT

# --- prerequisites ----------------------------------------------------------
bail() {
    nok "$*"
    echo "# lab: $pass passed, $fail failed"
    exit 1
}
for f in "$VFIOD" "$VFIOCTL"; do
    [[ -x $f ]] || bail "prerequisite: $f is built"
done
for f in "$KERNEL" "$INITRD"; do
    [[ -s $f ]] || bail "prerequisite: $f exists (run-lab.sh makes it)"
done
for b in "$A" "$B"; do
    [[ -e $dev/$b ]] || bail "prerequisite: L1 has PCI device $b"
done
[[ $(group_of "$A") == "$(group_of "$B")" ]] ||
    bail "prerequisite: $A and $B share an IOMMU group (got $(group_of "$A") and $(group_of "$B"))"
group=$(group_of "$A")
drv_a=$(driver_of "$A") drv_b=$(driver_of "$B")
note "$A: $(<"$dev/$A/vendor"):$(<"$dev/$A/device") on $drv_a; $B: $(<"$dev/$B/vendor"):$(<"$dev/$B/device") on $drv_b; IOMMU group $group"

write_config

# --- start vfiod ------------------------------------------------------------
t0=$(now_ms)
if ! start_vfiod; then
    vfioctl list
    show_call list
    bail "vfiod starts and answers 'vfioctl list' within 10 s"
fi
ok "vfiod starts and answers 'vfioctl list' ($(($(now_ms) - t0)) ms)"

# list --json before anything: the device pair as the daemon sees it
vfioctl list --json
cp "$work/out" "$work/list0.json"
entry() { json "$1" "[e for e in d if e['bdf'] == '$2'][0]"; }
if [[ $vrc -eq 0 ]] && a0=$(entry "$work/list0.json" "$A") && b0=$(entry "$work/list0.json" "$B"); then
    note "list: $a0"
    note "list: $b0"
    id_a=$(json "$work/list0.json" "[e['vendor'] + ':' + e['device'] for e in d if e['bdf'] == '$A'][0]")
    id_b=$(json "$work/list0.json" "[e['vendor'] + ':' + e['device'] for e in d if e['bdf'] == '$B'][0]")
    summary=$(json "$work/list0.json" "' '.join('%s,%s,%s,%s' % (e['bdf'], e['iommu_group'], e['driver'], e['state']) for e in d if e['bdf'] in ('$A', '$B'))")
    if [[ $id_a == 8086:10d3 && $summary == "$A,$group,$drv_a,host $B,$group,$drv_b,host" ]]; then
        ok "list --json shows $A ($id_a) and $B ($id_b) in group $group, on their drivers, state host"
    else
        nok "list --json shows $A (8086:10d3) and $B in group $group, on their drivers, state host (got: $id_a $summary)"
    fi
else
    show_call list --json
    nok "list --json shows $A and $B"
    id_b=$(hexid "$B")
fi

states() {
    vfioctl list --json
    [[ $vrc -eq 0 ]] || { echo "(list failed: exit $vrc)"; return 0; }
    json "$work/out" "' '.join(e['state'] for b in ('$A', '$B') for e in d if e['bdf'] == b)" 2>&1
}

# --- a. bind ----------------------------------------------------------------
t0=$(now_ms)
vfioctl bind "$A"
t1=$(now_ms)
show_call bind "$A"
if [[ $vrc -eq 0 ]]; then ok "a: vfioctl bind $A exits 0 ($((t1 - t0)) ms)"; else nok "a: vfioctl bind $A exits 0 (got $vrc)"; fi
if [[ $(driver_of "$A") == vfio-pci && $(driver_of "$B") == vfio-pci ]]; then
    ok "a: $A and $B are on vfio-pci"
else
    nok "a: $A and $B are on vfio-pci (got $(driver_of "$A"), $(driver_of "$B"))"
fi
if [[ -c /dev/vfio/$group ]]; then ok "a: /dev/vfio/$group exists"; else nok "a: /dev/vfio/$group exists"; fi
s=$(states)
if [[ $s == "bound bound" ]]; then ok "a: list --json shows both bound"; else nok "a: list --json shows both bound (got: $s)"; fi

# --- b. release ---------------------------------------------------------------
t0=$(now_ms)
vfioctl release "$A"
t1=$(now_ms)
show_call release "$A"
if [[ $vrc -eq 0 ]]; then ok "b: vfioctl release $A exits 0 ($((t1 - t0)) ms)"; else nok "b: vfioctl release $A exits 0 (got $vrc)"; fi
if [[ $(driver_of "$A") == "$drv_a" && $(driver_of "$B") == "$drv_b" ]]; then
    ok "b: $A back on $drv_a, $B back on $drv_b"
else
    nok "b: $A back on $drv_a, $B back on $drv_b (got $(driver_of "$A"), $(driver_of "$B"))"
fi
if [[ $(override_of "$A") == "(null)" && $(override_of "$B") == "(null)" ]]; then
    ok "b: driver_override of both is (null) again"
else
    nok "b: driver_override of both is (null) again (got '$(override_of "$A")', '$(override_of "$B")')"
fi
s=$(states)
if [[ $s == "host host" ]]; then ok "b: list --json shows both host"; else nok "b: list --json shows both host (got: $s)"; fi

# --- c. sandbox create ----------------------------------------------------------
sb_id='' sb_pid=''
t0=$(now_ms)
VFIOCTL_TIMEOUT=120 vfioctl sandbox create --device "$A" --kernel "$KERNEL" --initrd "$INITRD" --memory 256 --json
t1=$(now_ms)
show_call sandbox create --device "$A" --kernel "$KERNEL" --initrd "$INITRD" --memory 256 --json
cp "$work/out" "$work/create.json"
if [[ $vrc -eq 0 ]] && sb_id=$(json "$work/create.json" "d['id']") && sb_pid=$(json "$work/create.json" "d['pid']") &&
    serial=$(json "$work/create.json" "d['serial_log']"); then
    ok "c: sandbox create exits 0 with id $sb_id, pid $sb_pid ($((t1 - t0)) ms)"
    devs=$(json "$work/create.json" "' '.join(sorted(d.get('devices', [])))" || true)
    if [[ $devs == "$A $B" ]]; then ok "c: the sandbox holds $A and $B"; else nok "c: the sandbox holds $A and $B (got: $devs)"; fi
    if [[ $(driver_of "$A") == vfio-pci && $(driver_of "$B") == vfio-pci ]]; then
        ok "c: $A and $B are on vfio-pci while the sandbox runs"
    else
        nok "c: $A and $B are on vfio-pci while the sandbox runs (got $(driver_of "$A"), $(driver_of "$B"))"
    fi
    vfioctl sandbox list --json
    if [[ $vrc -eq 0 ]] && [[ $(json "$work/out" "[s['id'] for s in d]" 2>/dev/null) == "[\"$sb_id\"]" ]]; then
        ok "c: sandbox list shows $sb_id"
    else
        show_call sandbox list --json
        nok "c: sandbox list shows $sb_id"
    fi

    # wait for the guest's ready line
    line=$(wait_ready "$serial" "$sb_pid") || line=''
    t2=$(now_ms)
    if [[ -n $line ]]; then
        ok "c: guest-init printed VFIOD_READY $(((t2 - t1) / 1000)) s after create"
        note "$line"
        echo "${line#VFIOD_READY }" >"$work/ready.json"
        if [[ $(json "$work/ready.json" "[d.get('v'), d.get('sandbox')]" 2>&1) == "[1, \"$sb_id\"]" ]]; then
            ok "c: ready line is v1 and names sandbox $sb_id"
        else
            nok "c: ready line is v1 and names sandbox $sb_id"
        fi
        ids=$(json "$work/ready.json" "' '.join(sorted(p['id'] for p in d.get('pci', [])))" 2>&1 || true)
        if [[ " $ids " == *" 8086:10d3 "* && " $ids " == *" $id_b "* ]]; then
            ok "c: the guest sees 8086:10d3 and $id_b"
        else
            nok "c: the guest sees 8086:10d3 and $id_b (pci ids: $ids)"
        fi
    else
        if alive "$sb_pid"; then why="no VFIOD_READY within ${READY_TIMEOUT}s"; else why="QEMU (pid $sb_pid) exited"; fi
        nok "c: guest-init prints VFIOD_READY ($why)"
        note "serial log $serial (last 60 lines):"
        tail -n 60 "$serial" 2>/dev/null | indent "" || note "(no serial log)"
        for f in "$(dirname "$serial")"/*; do
            [[ -f $f && $f != "$serial" ]] || continue
            note "$f:"
            tail -n 30 "$f" | indent ""
        done
        nok "c: ready line names the sandbox (skipped)"
        nok "c: the guest sees 8086:10d3 and $id_b (skipped)"
    fi
else
    nok "c: sandbox create exits 0 with id, pid and serial_log (got exit $vrc)"
fi

# --- d. sandbox delete --------------------------------------------------------------
if [[ -n $sb_id ]]; then
    t0=$(now_ms)
    vfioctl sandbox delete "$sb_id"
    t1=$(now_ms)
    show_call sandbox delete "$sb_id"
    if [[ $vrc -eq 0 ]]; then ok "d: sandbox delete exits 0 ($((t1 - t0)) ms)"; else nok "d: sandbox delete exits 0 (got $vrc)"; fi
    for _ in $(seq 50); do alive "$sb_pid" || break; sleep 0.2; done
    if alive "$sb_pid"; then nok "d: QEMU (pid $sb_pid) is gone"; else ok "d: QEMU (pid $sb_pid) is gone"; fi
    for _ in $(seq 50); do
        [[ $(driver_of "$A") == "$drv_a" && $(driver_of "$B") == "$drv_b" ]] && break
        sleep 0.2
    done
    t2=$(now_ms)
    if [[ $(driver_of "$A") == "$drv_a" && $(driver_of "$B") == "$drv_b" ]]; then
        ok "d: $A back on $drv_a, $B back on $drv_b ($((t2 - t1)) ms after delete returned)"
    else
        nok "d: $A back on $drv_a, $B back on $drv_b (got $(driver_of "$A"), $(driver_of "$B"))"
    fi
    if [[ $(override_of "$A") == "(null)" && $(override_of "$B") == "(null)" ]]; then
        ok "d: driver_override of both is (null) again"
    else
        nok "d: driver_override of both is (null) again (got '$(override_of "$A")', '$(override_of "$B")')"
    fi
else
    nok "d: sandbox delete (skipped: no sandbox)"
fi
vfioctl sandbox list --json
if [[ $vrc -eq 0 ]] && [[ $(json "$work/out" "len(d)" 2>&1) == 0 ]]; then
    ok "d: sandbox list is empty"
else
    show_call sandbox list --json
    nok "d: sandbox list is empty"
fi

# --- e. bad input changes nothing -----------------------------------------------------
snapshot() {
    local d b
    for d in "$dev"/*; do
        b=${d##*/}
        echo "$b driver=$(driver_of "$b") override=$(override_of "$b")"
    done
    echo "-- $state"
    if [[ -d $state ]]; then
        (cd "$state" && find . -printf '%y %p %m\n' | LC_ALL=C sort &&
            find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    fi
}
for bad in "$MISSING" "../../x"; do
    snapshot >"$work/before"
    vfioctl bind "$bad"
    show_call bind "$bad"
    snapshot >"$work/after"
    if [[ $vrc -eq 2 && -s $work/err ]]; then
        ok "e: vfioctl bind $bad exits 2 with a message on stderr"
    else
        nok "e: vfioctl bind $bad exits 2 with a message on stderr (exit $vrc, stderr $(wc -c <"$work/err") bytes)"
    fi
    if cmp -s "$work/before" "$work/after"; then
        ok "e: vfioctl bind $bad changed no driver, driver_override or state file"
    else
        nok "e: vfioctl bind $bad changed no driver, driver_override or state file"
        diff "$work/before" "$work/after" | indent "" || true
    fi
done

# --- f. still alive ------------------------------------------------------------------
vfioctl list --json
if [[ $vrc -eq 0 ]] && json "$work/out" "len(d)" >/dev/null 2>&1; then
    ok "f: vfioctl list --json still answers"
else
    show_call list --json
    nok "f: vfioctl list --json still answers"
fi
if alive "$vfiod_pid"; then ok "f: vfiod (pid $vfiod_pid) is still running"; else nok "f: vfiod (pid $vfiod_pid) is still running"; fi

echo "# lab: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
