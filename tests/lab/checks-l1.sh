#!/bin/bash
# checks-l1.sh BUILD_DIR CACHE_DIR
#
# The lab checks (tests/lab/README.md), run INSIDE L1 as root by run-lab.sh:
#   tests/lab/run-l1.sh tests/lab/checks-l1.sh BUILD_DIR CACHE_DIR
# They drive the project's vfiod/vfioctl against the real kernel: bind and
# release of a two-function device (one IOMMU group) through vfio-pci, a
# sandbox (nested L2 QEMU) whose guest-init reports the passed-through
# devices; vfiod killed by SIGKILL and restarted, adopting its sandboxes;
# sandbox QEMUs killed by SIGKILL (devices back within 2 s of vfiod seeing
# QEMU's exit); bad input that
# must change nothing; an unbind that really hangs (a VFIO device fd held by
# tests/lab/vfio-hold), which must leave the device stuck, not the daemon.
# Output: one "ok - ..." / "not ok - ..." line per check, "# ..." diagnostics,
# and "# lab: N passed, N failed". Exit 0 only if every check passed.
#
# Expects from BUILD_DIR: vfiod/vfiod, vfiod/vfioctl, tests/lab/vfio-hold;
# from CACHE_DIR: vmlinuz
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
progress=/run/lab-checks.progress
ok() { echo "ok - $*"; pass=$((pass + 1)); : >"$progress"; }
nok() { echo "not ok - $*"; fail=$((fail + 1)); : >"$progress"; }
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

# How busy is the host? Scales the waits for L2 (l1-lib.sh, calibrate).
calibrate
note "$calib_msg"

# The kernel L1 runs is the release fetch-kernel.sh resolved against the
# archive (scripts/archive.sh: the pinned ABI while the archive serves it,
# else the flavour's current one), which is what the rest of the run uses.
if [[ -n ${LAB_KERNEL_RELEASE:-} && $(uname -r) == "$LAB_KERNEL_RELEASE" ]]; then
    ok "L1 runs the resolved guest kernel $(uname -r) (the repository's pins.env names ${LAB_PINNED_RELEASE:-?}$([[ ${LAB_PINNED_RELEASE:-} == "$LAB_KERNEL_RELEASE" ]] || echo ", which the archive no longer serves"))"
else
    nok "L1 runs the resolved guest kernel ${LAB_KERNEL_RELEASE:-(LAB_KERNEL_RELEASE unset)} (uname -r: $(uname -r))"
fi

# Stall watchdog: when no check has reported for LAB_STALL_DUMP seconds
# (default READY_TIMEOUT + 120, 420 on a quiet host: longer than any single
# wait here), dump every process with
# its state, wait channel and kernel stack to the console, once per stall,
# so that a hang in CI says where it hangs before run-l1.sh's timeout.
watchdog() {
    local limit=${LAB_STALL_DUMP:-$((READY_TIMEOUT + 120))} m now p top
    while sleep 15; do
        m=$(stat -c %Y "$progress" 2>/dev/null) || continue
        now=$(date +%s)
        ((now - m >= limit)) || continue
        echo "# STALL: no check reported for $((now - m)) s; processes:"
        ps -eo pid,ppid,stat,wchan:32,etime,args 2>&1 | cut -c1-220 | sed 's/^/#   /' || true
        for p in /proc/[0-9]*; do
            case $(awk '{print $3}' "$p/stat" 2>/dev/null) in
                D | S) ;;
                *) continue ;;
            esac
            [[ $(cat "$p/comm" 2>/dev/null) =~ ^(kworker|ksoftirq|rcu_|migration|cpuhp|idle_inject|kthreadd) ]] && continue
            top=$(head -n 1 "$p/stack" 2>/dev/null) || continue
            [[ -n $top && ! $top =~ (do_wait|do_sys_poll|ep_poll|do_select|hrtimer_nanosleep|futex_wait|pipe_read|wait_woken|do_sigtimedwait|smpboot_thread_fn|worker_thread|kthread) ]] || continue
            echo "#   stack of ${p#/proc/} ($(cat "$p/comm" 2>/dev/null)):"
            sed 's/^/#     /' "$p/stack" 2>/dev/null | head -n 12 || true
        done
        : >"$progress"
    done
}
: >"$progress"
watchdog &
watchdog_pid=$!

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    local rc=$?
    local p
    kill "$watchdog_pid" 2>/dev/null || true
    for p in ${hold_pid:-} ${rel_pid:-}; do
        kill -TERM "$p" 2>/dev/null || true
    done
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
        ok "c: guest-init printed VFIOD_READY $(((t2 - t1) / 1000)) s after create (limit $READY_TIMEOUT s)"
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
        if alive "$sb_pid"; then why="no VFIOD_READY within ${READY_TIMEOUT}s: $READY_TIMEOUT_BASE s x L2 factor $L2_FACTOR"; else why="QEMU (pid $sb_pid) exited"; fi
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

# --- c1-c3: a second sandbox; SIGKILL vfiod and restart it; kill -9 QEMUs -------------
# A second device pair ($C, $D: its own IOMMU group) for the second sandbox.
pair2=''
if [[ -e $dev/$C && -e $dev/$D && $(group_of "$C") == "$(group_of "$D")" && $(group_of "$C") != "$group" ]]; then
    pair2=1
    group2=$(group_of "$C")
    drv_c=$(driver_of "$C") drv_d=$(driver_of "$D")
    note "second pair: $C ($(hexid "$C")) on $drv_c, $D ($(hexid "$D")) on $drv_d, IOMMU group $group2"
else
    note "no second device pair $C + $D in an IOMMU group of its own (LAB_DEV2_PRIMARY, LAB_DEV2_COMPANION)"
fi

# sandbox_state ID: the state `sandbox show --json` reports ("(error)" if none).
sandbox_state() {
    vfioctl sandbox show "$1" --json
    if [[ $vrc -eq 0 ]]; then json "$work/out" "d['state']" 2>/dev/null || echo "(bad json)"; else echo "(exit $vrc)"; fi
}

# start_sandbox LABEL BDF: sandbox create with BDF (256 MiB, the lab's kernel
# and initrd); then wait (up to 60 s times the load factor: QEMU's start-up
# in L1 is TCG work) until `sandbox show` says running and
# its QEMU holds /dev/vfio/<group> open: QEMU opens it while it sets up the
# machine, before the guest runs, so the guest need not boot. Sets new_id,
# new_pid; returns 1 on failure.
new_id='' new_pid='' new_created=''
start_sandbox() {
    local label=$1 bdf=$2 g t0 t1 t2 st='' _
    new_id='' new_pid=''
    g=$(group_of "$bdf")
    t0=$(now_ms)
    VFIOCTL_TIMEOUT=120 vfioctl sandbox create --device "$bdf" --kernel "$KERNEL" --initrd "$INITRD" --memory 256 --json
    t1=$(now_ms)
    if [[ $vrc -ne 0 ]] || ! new_id=$(json "$work/out" "d['id']") || ! new_pid=$(json "$work/out" "d['pid']"); then
        show_call sandbox create --device "$bdf" --kernel "$KERNEL" --initrd "$INITRD" --memory 256 --json
        nok "$label: sandbox create --device $bdf exits 0 with id and pid (got exit $vrc)"
        new_id='' new_pid=''
        return 1
    fi
    ok "$label: sandbox create --device $bdf: $new_id, QEMU pid $new_pid ($((t1 - t0)) ms)"
    new_created=$t1
    for _ in $(seq "$(scaled 600)"); do
        has_open "$new_pid" "/dev/vfio/$g" && break
        alive "$new_pid" || break
        sleep 0.1
    done
    t2=$(now_ms)
    st=$(sandbox_state "$new_id")
    if [[ $st == running ]] && has_open "$new_pid" "/dev/vfio/$g"; then
        ok "$label: $new_id is running and QEMU $new_pid has /dev/vfio/$g open ($((t2 - t1)) ms after create returned)"
        # Then QEMU pins all guest RAM for DMA (VmLck, where vfio's type1
        # IOMMU driver accounts pinned pages) and resets the devices (a bus
        # reset: ~2 s in the kernel, uninterruptible) before the guest runs.
        # A QEMU killed during that reset exits only when it is over, ~2 s
        # later, before vfiod can see anything. So wait until the guest runs
        # (its vCPU thread has used CPU time): the kill checks then time the
        # teardown and vfiod, not QEMU's start-up. (QEMU names no threads
        # unless asked: they are told apart by CPU time, see vcpu_ticks.)
        for _ in $(seq "$(scaled 300)"); do
            (($(vmlck_kb "$new_pid") >= 256 * 1024 && $(vcpu_ticks "$new_pid") >= 5)) && break
            alive "$new_pid" || break
            nap 0.1
        done
        stamp t2
        note "$label: QEMU $new_pid: guest RAM pinned for DMA (VmLck $(vmlck_kb "$new_pid") kB), guest running (vCPU threads: $(vcpu_ticks "$new_pid") ticks) $((t2 - t1)) ms after create returned"
    else
        nok "$label: $new_id is running and QEMU $new_pid has /dev/vfio/$g open (state $st, QEMU $(alive "$new_pid" && echo alive || echo gone))"
        tail -n 20 "$runtime/sandboxes/$new_id/qemu.log" 2>/dev/null | indent "qemu.log: " || true
        vfioctl sandbox delete "$new_id"
        show_call sandbox delete "$new_id"
        new_id='' new_pid=''
        return 1
    fi
}

# log_ms_since HH:MM:SS.mmm REGEX: ms from that time of day to the first
# vfiod log line matching REGEX ("?" if none).
log_ms_since() {
    local line ts a b
    line=$(grep -a -m 1 -E "$2" "$vlog" || true)
    ts=$(sed -n 's/.*Message: \([0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]\):.*/\1/p' <<<"$line")
    [[ -n $ts ]] || { echo "?"; return 0; }
    to_ms() { local t=$1; echo $(((10#${t:0:2} * 3600 + 10#${t:3:2} * 60 + 10#${t:6:2}) * 1000 + 10#${t:9:3})); }
    a=$(to_ms "$1") b=$(to_ms "$ts")
    echo $((b - a))
}

# kill_qemu LABEL ID PID [CREATED_MS]: kill -9 the QEMU of sandbox ID, which
# holds the second pair. Both functions must be back on their original
# drivers (polled every 50 ms) within 2 s of vfiod seeing QEMU's exit,
# `sandbox show` must say stopped, and `sandbox delete` must clean it up.
# The 2 s are vfiod's: from the moment its log says QEMU exited ("sandbox ID:
# QEMU ... exited", stamped by vfiod itself) to both devices back, i.e. the
# whole time minus when vfiod saw the exit. What comes before is QEMU's own
# end (its threads close the VFIO devices, which resets them), which under
# TCG on a loaded host alone took 2.6 s: the kernel and QEMU, not vfiod.
# No such log line is a failure: then vfiod's part cannot be told apart.
kill_qemu() {
    local label=$1 id=$2 pid=$3 created=${4:-} t0 t1 ms back='' st _ clock0 seen rel dead='' pst age='' tasks
    local limit=2000 give_up own figures
    give_up=$(scaled 10000) # QEMU's end is TCG work: this wait scales
    stamp t0 clock0
    [[ -z $created ]] || age=", $((t0 - created)) ms after create"
    kill -KILL "$pid" || true
    while :; do
        if [[ -z $dead ]]; then
            # QEMU's own end: gone, or a zombie with no thread left (its
            # other threads close the VFIO devices, which resets them)
            pst=''
            read -r pst 2>/dev/null <"/proc/$pid/stat" || true
            pst=${pst##*) }
            tasks=(/proc/"$pid"/task/*)
            if [[ -z $pst ]] || [[ ${pst:0:1} == [ZX] && ${#tasks[@]} -le 1 ]]; then stamp dead; dead=$((dead - t0)); fi
        fi
        if on_driver "$C" "$drv_c" && on_driver "$D" "$drv_d"; then
            stamp t1
            back=1
            break
        fi
        stamp t1
        ((t1 - t0 < give_up)) || break
        nap 0.05
    done
    ms=$((t1 - t0))
    # where the time went, from vfiod's log: QEMU's exit seen, devices released
    seen=$(log_ms_since "$clock0" "sandbox $id: QEMU .* exited")
    rel=$(log_ms_since "$clock0" "sandbox $id: devices released")
    figures="total $ms ms after the kill: QEMU dead at +${dead:-?} ms, vfiod saw it at +$seen ms, released at +$rel ms"
    if [[ -z $back ]]; then
        nok "$label: kill -9 of QEMU $pid$age: $C back on $drv_c and $D on $drv_d (after $give_up ms: $(driver_of "$C"), $(driver_of "$D"); QEMU dead at +${dead:-?} ms, vfiod saw it at +$seen ms, released at +$rel ms)"
    elif [[ $seen == "?" ]]; then
        nok "$label: kill -9 of QEMU $pid$age: vfiod's log has no line 'sandbox $id: QEMU ... exited', so its own part cannot be timed ($C and $D back; $figures)"
    else
        own=$((ms - seen))
        if ((own <= limit)); then
            ok "$label: kill -9 of QEMU $pid$age: $C back on $drv_c and $D on $drv_d $own ms after vfiod saw QEMU's exit (limit $limit; $figures)"
        else
            nok "$label: kill -9 of QEMU $pid$age: $C back on $drv_c and $D on $drv_d within $limit ms of vfiod seeing QEMU's exit (took $own ms; $figures)"
        fi
    fi
    # vfiod calls a sandbox whose QEMU ended with an error (not through a
    # delete) "failed", one that ended cleanly "stopped": both are final.
    for _ in $(seq 50); do
        st=$(sandbox_state "$id")
        [[ $st == stopped || $st == failed ]] && break
        sleep 0.1
    done
    if [[ $st == stopped || $st == failed ]]; then
        ok "$label: sandbox show $id says $st (exit_status $(json "$work/out" "d.get('exit_status')"))"
    else
        show_call sandbox show "$id" --json
        nok "$label: sandbox show $id says stopped or failed (got $st)"
    fi
    if alive "$pid"; then nok "$label: QEMU $pid is gone"; fi
    { grep -a "sandbox $id:" "$vlog" || true; } | tail -n 3 | indent "vfiod: "
    vfioctl sandbox delete "$id"
    if [[ $vrc -eq 0 ]]; then ok "$label: sandbox delete $id exits 0"; else show_call sandbox delete "$id"; nok "$label: sandbox delete $id exits 0 (got $vrc)"; fi
    vfioctl sandbox list --json
    if [[ $vrc -eq 0 ]] && [[ $(json "$work/out" "'$id' in [s['id'] for s in d]" 2>&1) == false ]] &&
        [[ ! -e $runtime/sandboxes/$id ]] &&
        [[ $(driver_of "$C") == "$drv_c" && $(driver_of "$D") == "$drv_d" ]] &&
        [[ $(override_of "$C") == "(null)" && $(override_of "$D") == "(null)" ]]; then
        ok "$label: $id is gone (list, $runtime/sandboxes/$id); $C and $D stay on their drivers, overrides (null)"
    else
        show_call sandbox list --json
        nok "$label: $id is gone (list, $runtime/sandboxes/$id); $C and $D stay on their drivers, overrides (null) (got $(driver_of "$C") '$(override_of "$C")', $(driver_of "$D") '$(override_of "$D")')"
    fi
}

# c1. The sandbox of c (booted) and a second one on the second pair (just
# started) run; vfiod dies by SIGKILL and is restarted with the same config.
sb2_id='' sb2_pid='' sb2_created=''
if [[ -n $sb_id ]] && alive "$sb_pid"; then
    start1=$(start_time_of "$sb_pid")
    if [[ -n $pair2 ]] && start_sandbox c1 "$C"; then
        sb2_id=$new_id sb2_pid=$new_pid sb2_created=$new_created
        start2=$(start_time_of "$sb2_pid")
    fi
    off=$(stat -c %s "$vlog")
    old_vfiod=$vfiod_pid
    kill -KILL "$vfiod_pid" || true
    wait "$vfiod_pid" 2>/dev/null || true
    t0=$(now_ms)
    if start_vfiod; then
        ok "c1: vfiod SIGKILLed (pid $old_vfiod), restarted with the same config (pid $vfiod_pid), answers in $(($(now_ms) - t0)) ms"
    else
        nok "c1: vfiod SIGKILLed (pid $old_vfiod), restarted with the same config, answers within 10 s"
    fi
    reconcile_log=$(tail -c +$((off + 1)) "$vlog" | grep -a 'reconcile: ' || true)
    [[ -z $reconcile_log ]] || indent "vfiod: " <<<"$reconcile_log"

    want="$sb_id,running,$sb_pid"
    [[ -z $sb2_id ]] || want="$want $sb2_id,running,$sb2_pid"
    want=$(tr ' ' '\n' <<<"$want" | LC_ALL=C sort | tr '\n' ' ')
    vfioctl sandbox list --json
    got=$( ([[ $vrc -eq 0 ]] && json "$work/out" "' '.join('%s,%s,%s' % (s['id'], s['state'], s['pid']) for s in d)") || echo "(exit $vrc)")
    if [[ "$got " == "$want" ]]; then
        ok "c1: sandbox list after the restart: ${want% } (same QEMU pids)"
    else
        show_call sandbox list --json
        nok "c1: sandbox list after the restart: ${want% } (got: $got)"
    fi
    for pair in "$sb_id $sb_pid ${start1:-?}" ${sb2_id:+"$sb2_id $sb2_pid ${start2:-?}"}; do
        read -r i p s0 <<<"$pair"
        s1=$(start_time_of "$p")
        if alive "$p" && [[ $s1 == "$s0" ]]; then
            ok "c1: QEMU of $i still runs untouched: pid $p, start time $s1 (stat field 22) as before"
        else
            nok "c1: QEMU of $i still runs untouched: pid $p, start time $s0 (now: $(alive "$p" && echo alive || echo gone), start time '$s1')"
        fi
        if grep -q -E "reconcile: $i adopted" <<<"$reconcile_log"; then
            ok "c1: vfiod's log: reconcile: $i adopted"
        else
            nok "c1: vfiod's log says reconcile: $i adopted"
        fi
    done
    want_drv="$A=vfio-pci $B=vfio-pci"
    [[ -z $sb2_id ]] || want_drv="$want_drv $C=vfio-pci $D=vfio-pci"
    got_drv=''
    for b in $want_drv; do got_drv="$got_drv ${b%%=*}=$(driver_of "${b%%=*}")"; done
    if [[ ${got_drv# } == "$want_drv" ]]; then ok "c1: still on vfio-pci: ${want_drv//=vfio-pci/}"; else nok "c1: still on vfio-pci (got:$got_drv)"; fi
    vfioctl list --json
    want_own="$A,bound,$sb_id $B,bound,$sb_id"
    [[ -z $sb2_id ]] || want_own="$want_own $C,bound,$sb2_id $D,bound,$sb2_id"
    got_own=$(json "$work/out" "' '.join('%s,%s,%s' % (e['bdf'], e['state'], e['owner']) for b in '$want_own'.split() for e in d if e['bdf'] == b.split(',')[0])" 2>&1 || true)
    if [[ $got_own == "$want_own" ]]; then ok "c1: list --json: the devices are bound, owned by their sandboxes"; else nok "c1: list --json: $want_own (got: $got_own)"; fi
    if grep -q -E 'reconcile: .* (restored|finished|failed|stuck):' <<<"$reconcile_log"; then
        nok "c1: reconcile restored or changed nothing"
    else
        ok "c1: reconcile restored or changed nothing"
    fi
else
    nok "c1: SIGKILL vfiod while a sandbox runs (skipped: no sandbox from c)"
fi

# c2. kill -9 of the adopted sandbox's QEMU: vfiod learns of it through the
# pidfd it opened when it adopted it (QEMU is no longer its child).
if [[ -n $sb2_id ]]; then
    kill_qemu "c2 (adopted)" "$sb2_id" "$sb2_pid" "$sb2_created"
else
    nok "c2: kill -9 of an adopted sandbox's QEMU (skipped: no second sandbox)"
fi

# c3. The same for a sandbox that this vfiod started (its child).
if [[ -n $pair2 ]] && start_sandbox c3 "$C"; then
    kill_qemu "c3 (child)" "$new_id" "$new_pid" "$new_created"
else
    nok "c3: kill -9 of a sandbox's QEMU (skipped)"
fi

# --- d. sandbox delete --------------------------------------------------------------
if [[ -n $sb_id ]]; then
    t0=$(now_ms)
    vfioctl sandbox delete "$sb_id"
    t1=$(now_ms)
    show_call sandbox delete "$sb_id"
    if [[ $vrc -eq 0 ]]; then ok "d: sandbox delete exits 0 ($((t1 - t0)) ms)"; else nok "d: sandbox delete exits 0 (got $vrc)"; fi
    # (QEMU's end and the devices' reset on close are TCG work: scaled)
    for _ in $(seq "$(scaled 50)"); do alive "$sb_pid" || break; sleep 0.2; done
    if alive "$sb_pid"; then nok "d: QEMU (pid $sb_pid) is gone"; else ok "d: QEMU (pid $sb_pid) is gone"; fi
    for _ in $(seq "$(scaled 50)"); do
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
t0=$(now_ms)
vfioctl list --json
t1=$(now_ms)
if [[ $vrc -eq 0 ]] && json "$work/out" "len(d)" >/dev/null 2>&1; then
    ok "f: vfioctl list --json still answers ($((t1 - t0)) ms)"
else
    show_call list --json
    nok "f: vfioctl list --json still answers"
fi
if alive "$vfiod_pid"; then ok "f: vfiod (pid $vfiod_pid) is still running"; else nok "f: vfiod (pid $vfiod_pid) is still running"; fi

# --- g. an unbind that really hangs ------------------------------------------------
# vfio-hold holds a VFIO device fd of $A without a request channel, so the
# kernel parks the unbind from vfio-pci until the fd is closed. vfiod runs with
# write_timeout=3: the release must fail after about 3 s with $A stuck, while
# the API keeps answering. Last check: it leaves the lab in disorder and puts
# it back by hand.
hold_pid='' rel_pid=''
stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
write_config_file "write_timeout=3"
t0=$(now_ms)
if start_vfiod; then
    ok "g: vfiod restarted with [devices] write_timeout=3 ($(($(now_ms) - t0)) ms)"
else
    nok "g: vfiod restarted with [devices] write_timeout=3"
fi
vfioctl bind "$A"
if [[ $vrc -eq 0 && $(driver_of "$A") == vfio-pci && $(driver_of "$B") == vfio-pci ]]; then
    ok "g: vfioctl bind $A: both on vfio-pci"
else
    show_call bind "$A"
    nok "g: vfioctl bind $A: both on vfio-pci (exit $vrc; $(driver_of "$A"), $(driver_of "$B"))"
fi

if [[ ! -x $VFIO_HOLD ]]; then
    nok "g: $VFIO_HOLD is built"
else
    "$VFIO_HOLD" "$A" >"$work/hold.out" 2>"$work/hold.err" &
    hold_pid=$!
    for _ in $(seq 100); do
        grep -q '^holding' "$work/hold.out" && break
        alive "$hold_pid" || break
        sleep 0.1
    done
    if grep -q '^holding' "$work/hold.out"; then
        ok "g: vfio-hold (pid $hold_pid): $(head -n 1 "$work/hold.out")"
    else
        indent "vfio-hold: " <"$work/hold.err"
        nok "g: vfio-hold holds a VFIO device fd of $A"
        hold_pid=''
    fi
fi

if [[ -n $hold_pid ]]; then
    blocked_before=$(dmesg | grep -c 'blocked until released by user' || true)
    # for comparison: the same call with nothing pending
    stamp t1
    timeout 10 "$VFIOCTL" --socket "$sock" list --json >/dev/null 2>&1 || true
    stamp t2
    base_ms=$((t2 - t1))
    rm -f "$work/rel.rc"
    stamp t0
    (
        r=0 te=''
        timeout 60 "$VFIOCTL" --socket "$sock" release "$A" >"$work/rel.out" 2>"$work/rel.err" || r=$?
        stamp te
        echo "$r $te" >"$work/rel.rc.tmp" && mv "$work/rel.rc.tmp" "$work/rel.rc"
    ) &
    rel_pid=$!

    # The release restores $B first (reverse BDF order), then writes $A's
    # driver/unbind, which the kernel parks. Wait for that (a vfiod thread in
    # vfio_unregister_group_dev), then the API must answer at once. Nothing
    # here may read $A's driver_override or other attributes that take the
    # device lock: the parked unbind holds it.
    # write_lo: when the last look found no parked writer (at first the
    # release's start): the write that parks began after it (see below).
    # (No fork in this loop: under load a fork alone takes a while, and the
    # time between two looks is what write_lo may lag behind the write.)
    parked='' t_parked='' write_lo=$t0 t_scan=''
    while :; do
        stamp t_scan
        if [[ -e $work/rel.rc ]] || ((t_scan - t0 >= 20000)); then break; fi
        parked_writers "$vfiod_pid" parked
        [[ -z $parked ]] || break
        write_lo=$t_scan
        nap 0.05
    done
    stamp t_parked
    # Up to 3 calls while it is parked. One answer that arrives while the
    # release is still pending, within its limit, proves that the API is
    # not held up by the parked write. The limit of a call is the smaller of:
    # - bound = max(1000, 3 * base_ms), base_ms being the same call with
    #   nothing pending, just measured. A call that does not wait for the
    #   release takes about base_ms; with one host core busy base_ms itself
    #   grows (a single call under nested TCG then took 1-1.8 s), so a fixed
    #   1 s would time the host, not vfiod. Quiet, base_ms is ~0.3-0.8 s and
    #   the bound stays at 1 s.
    # - what is left of the write timeout (write_timeout=3: W = 3000 ms)
    #   when the call starts, counted from write_lo, less 100 ms: a blocked
    #   API could answer only once vfiod gave up on the write, W after it
    #   started it (vfiod's write thread sets its deadline just before the
    #   write, which parks at once), and the write started after write_lo.
    #   So no blocked answer comes in under this: the limit is always below
    #   W, whatever base_ms is.
    # All times are printed, with base_ms, the bound and each call's limit.
    write_ms=3000
    bound=$((3 * base_ms))
    ((bound >= 1000)) || bound=1000
    times='' fast='' lrc=0 first_t1='' lim=0
    for _ in 1 2 3; do
        [[ ! -e $work/rel.rc ]] || break
        lrc=0
        stamp t1
        first_t1=${first_t1:-$t1}
        lim=$((write_lo + write_ms - 100 - t1))
        ((lim <= bound)) || lim=$bound
        timeout 10 "$VFIOCTL" --socket "$sock" list --json >"$work/list-during.json" 2>"$work/err" || lrc=$?
        stamp t2
        times="$times${times:+, }$((t2 - t1)) ms (limit $lim)"
        [[ $lrc -eq 0 ]] || { times="$times (exit $lrc)"; continue; }
        if [[ ! -e $work/rel.rc ]] && ((t2 - t1 < lim)); then
            fast=1
            break
        fi
    done
    if [[ -n $parked ]]; then
        ok "g: the unbind of $A really hangs: vfiod thread (tid:state:wchan) $parked, seen $((t_parked - t0)) ms after the release started"
    else
        nok "g: the unbind of $A really hangs: a vfiod thread in vfio_unregister_group_dev (none seen; release $([[ -e $work/rel.rc ]] && echo finished || echo pending))"
    fi
    during=$( ([[ $lrc -eq 0 ]] && json "$work/list-during.json" "' '.join('%s=%s' % (e['bdf'], e['state']) for b in ('$A', '$B') for e in d if e['bdf'] == b)") || echo "(exit $lrc)")
    how="bound $bound ms = max(1000, 3 x $base_ms ms with nothing pending), and at most the $write_ms ms write timeout less 100 ms, counted from $((write_lo - t0)) ms after the release started"
    if [[ -n $fast ]]; then
        ok "g: list --json answers while the release is pending: ${times} (first call $((first_t1 - t0)) ms after the release started; $how; states $during)"
    else
        nok "g: list --json answers while the release is pending, under its limit (calls: ${times:-none}, first $((${first_t1:-$t0} - t0)) ms after the release started; $how; release $([[ -e $work/rel.rc ]] && echo finished || echo pending); states $during)"
    fi

    while [[ ! -e $work/rel.rc ]] && (($(now_ms) - t0 < 65000)); do sleep 0.05; done
    rrc='(none)' t3=$(now_ms)
    [[ ! -e $work/rel.rc ]] || read -r rrc t3 <"$work/rel.rc"
    ms=$((t3 - t0))
    # From the release's start it must have waited for the write timeout
    # (>= 2500 ms); from the write parking (t_parked) vfiod must give up
    # within 10 s: the write timeout plus its own handling. (Counted from
    # there, not from the release's start: restoring $B first is L1's sysfs
    # work, which took ~2.5 s of the release on a loaded host.)
    indent "release err: " <"$work/rel.err"
    if [[ $rrc == 1 && $ms -ge 2500 && $((t3 - t_parked)) -le 10000 ]] && grep -q stuck "$work/rel.err"; then
        ok "g: vfioctl release $A fails (exit 1, 'stuck' in its message) after $ms ms (>= 2500), $((t3 - t_parked)) ms after the write parked (<= 10000)"
    else
        nok "g: vfioctl release $A fails (exit 1, 'stuck' in its message) after >= 2500 ms, <= 10000 ms after the write parked (exit $rrc after $ms ms, $((t3 - t_parked)) ms after the write parked)"
    fi
    vfioctl list --json
    after=$( ([[ $vrc -eq 0 ]] && json "$work/out" "' '.join('%s=%s' % (e['bdf'], e['state']) for b in ('$A', '$B') for e in d if e['bdf'] == b)") || echo "(exit $vrc)")
    # (not $A's driver_override: reading it waits for the parked unbind)
    note "list --json: $after; drivers: $A $(driver_of "$A"), $B $(driver_of "$B") (override '$(override_of "$B")')"
    if [[ " $after " == *" $A=stuck "* ]]; then ok "g: list --json shows $A stuck"; else nok "g: list --json shows $A stuck (got: $after)"; fi
    blocked=$(dmesg | grep 'blocked until released by user' | tail -n 1 || true)
    if [[ -n $blocked && $(dmesg | grep -c 'blocked until released by user' || true) -gt $blocked_before ]]; then
        ok "g: dmesg: ${blocked}"
    else
        nok "g: dmesg shows the kernel's 'blocked until released by user' line"
    fi

    # The holder lets go: the parked unbind completes by itself.
    t0=$(now_ms)
    kill -TERM "$hold_pid" || true
    hrc=0
    wait "$hold_pid" || hrc=$?
    hold_pid=''
    done_=''
    for _ in $(seq 200); do
        if [[ -z $(parked_writers "$vfiod_pid") && $(driver_of "$A") != vfio-pci ]]; then done_=1; break; fi
        sleep 0.05
    done
    t1=$(now_ms)
    node="/dev/vfio/$group $([[ -e /dev/vfio/$group ]] && echo exists || echo gone)"
    if [[ -n $done_ ]]; then
        ok "g: vfio-hold exited ($hrc); the parked unbind completed by itself within $((t1 - t0)) ms: no vfiod thread parked, $A on $(driver_of "$A"), $node"
    else
        nok "g: after vfio-hold exits ($hrc) the parked unbind completes (parked: '$(parked_writers "$vfiod_pid")', $A on $(driver_of "$A"), $node)"
    fi
    { dmesg | grep -E "vfio|$A|$B" || true; } | tail -n 6 | indent "dmesg: "

    # vfiod never retries a stuck device: not by itself, not on a restart.
    sleep 2
    vfioctl list --json
    s1=$( ([[ $vrc -eq 0 ]] && json "$work/out" "[e['state'] for e in d if e['bdf'] == '$A'][0]") || echo "(exit $vrc)")
    stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
    off=$(stat -c %s "$vlog")
    start_vfiod || true
    vfioctl list --json
    s2=$( ([[ $vrc -eq 0 ]] && json "$work/out" "[e['state'] for e in d if e['bdf'] == '$A'][0]") || echo "(exit $vrc)")
    rlog=$(tail -c +$((off + 1)) "$vlog" | grep -a "reconcile: " || true)
    [[ -z $rlog ]] || indent "vfiod: " <<<"$rlog"
    if [[ $s1 == stuck && $s2 == stuck && $(driver_of "$A") != vfio-pci && $(override_of "$A") == vfio-pci ]] &&
        grep -q "reconcile: $A stuck" <<<"$rlog"; then
        ok "g: vfiod does not retry: $A stays stuck (2 s later, and after a restart: 'reconcile: $A stuck'), on $(driver_of "$A"), driver_override still vfio-pci"
    else
        nok "g: vfiod does not retry: $A stays stuck (2 s later: $s1; after a restart: $s2; driver $(driver_of "$A"), override '$(override_of "$A")')"
    fi
fi

# Put the lab back by hand: no holder, no vfiod, empty state, original drivers.
if [[ -n $hold_pid ]]; then
    kill -TERM "$hold_pid" 2>/dev/null || true
    wait "$hold_pid" 2>/dev/null || true
    hold_pid=''
fi
stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
rm -rf "${state:?}"/*
for b in "$B" "$A"; do
    printf '\n' >"$dev/$b/driver_override"
    cur=$(driver_of "$b")
    if [[ $cur != "(none)" ]]; then
        case $b in "$A") want=$drv_a ;; *) want=$drv_b ;; esac
        [[ $cur == "$want" ]] || echo "$b" >"$dev/$b/driver/unbind"
    fi
    [[ $(driver_of "$b") != "(none)" ]] || echo "$b" >/sys/bus/pci/drivers_probe 2>/dev/null || true
done
if [[ $(driver_of "$A") == "$drv_a" && $(driver_of "$B") == "$drv_b" && $(override_of "$A") == "(null)" && $(override_of "$B") == "(null)" ]]; then
    ok "g: lab restored by hand: $A on $drv_a, $B on $drv_b, overrides (null), vfiod stopped, state dir empty"
else
    nok "g: lab restored by hand (got $(driver_of "$A") '$(override_of "$A")', $(driver_of "$B") '$(override_of "$B")')"
fi

# ---- h. [network] gateway_address on the real kernel ----------------------
# The machine the suite runs on has no dummy links (vfiod falls back to lo
# there, integration gateway.sh); L1's Debian kernel has them: vfiod makes
# the dummy link vfiodgw0 with the address, keeps it across its restart,
# and refuses a link of that name that is not a dummy.
gwdir=$(mktemp -d /run/vfiod-lab-gw.XXXXXX)
cat >"$gwdir/vfiod.conf" <<GWCONF
[daemon]
state_dir=$gwdir/state
runtime_dir=$gwdir/run
allowed_group=
[qemu]
accel=tcg
[network]
enabled=true
pool=10.77.0.0/24
gateway_address=10.77.255.1
GWCONF
# gw_run: vfiod on that configuration until it answers (capabilities in
# $gwdir/caps) or exits, then SIGTERM.
gw_run() {
    "$VFIOD" --config "$gwdir/vfiod.conf" </dev/null >>"$gwdir/vfiod.log" 2>&1 &
    local p=$! _
    rm -f "$gwdir/caps"
    for _ in $(seq 50); do
        timeout 10 "$VFIOCTL" --socket "$gwdir/run/vfiod.sock" capabilities --json >"$gwdir/caps" 2>/dev/null && break
        rm -f "$gwdir/caps"
        alive "$p" || break
        sleep 0.2
    done
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
gw_run
kind=$(ip -d -o link show dev vfiodgw0 2>/dev/null | grep -o ' dummy ' | tr -d ' ' || true)
addr=$(ip -o -4 addr show dev vfiodgw0 2>/dev/null | grep -o 'inet [0-9./]*' || true)
if [[ $kind == dummy && $addr == "inet 10.77.255.1/32" ]] && grep -q '"gateway_address" *: *"10.77.255.1"' "$gwdir/caps" 2>/dev/null &&
    grep -q "gateway_address 10.77.255.1: on link vfiodgw0," "$gwdir/vfiod.log"; then
    ok "h: [network] gateway_address: vfiod made the dummy link vfiodgw0 with 10.77.255.1/32 (capabilities say it)"
else
    nok "h: gateway link: kind '$kind', '$addr', log: $(grep -a gateway "$gwdir/vfiod.log" | tail -2 | tr '\n' ' ')"
fi
gw_run
if [[ $(ip -o -4 addr show dev vfiodgw0 2>/dev/null | grep -c 'inet 10.77.255.1/32') == 1 ]] &&
    [[ $(grep -c "gateway_address 10.77.255.1: on link vfiodgw0," "$gwdir/vfiod.log") == 2 ]]; then
    ok "h: a second start keeps vfiodgw0 and its one address"
else
    nok "h: second start: $(ip -o -4 addr show dev vfiodgw0 2>&1 | tr '\n' ' ')"
fi
ip link del vfiodgw0 2>/dev/null || true
ip link add vfiodgw0 type bridge 2>/dev/null || true
gw_run
if grep -q "gateway link vfiodgw0 exists and is not a dummy link (bridge)" "$gwdir/vfiod.log" && [[ ! -s $gwdir/caps ]]; then
    ok "h: a link named vfiodgw0 that is not a dummy: vfiod refuses to start"
else
    nok "h: a bridge named vfiodgw0: $(tail -2 "$gwdir/vfiod.log" | tr '\n' ' ')"
fi
ip link del vfiodgw0 2>/dev/null || true
nft delete table inet vfiod 2>/dev/null || true
rm -rf "$gwdir"

echo "# lab: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
