#!/bin/bash
# checks-l1-libvirt.sh BUILD_DIR CACHE_DIR
#
# The lab-libvirt checks (issue 18, the libvirt backend; tests/lab/README.md),
# run INSIDE L1 as root by run-lab-libvirt.sh:
#   tests/lab/run-l1.sh tests/lab/checks-l1-libvirt.sh BUILD_DIR CACHE_DIR
# libvirtd from the host's Debian packages (9.0) runs here, in L1 only, with
# the two qemu.conf settings L1 needs (below); vfiod runs with
# `[vm] backend=libvirt` and `[libvirt] uri=qemu:///system`: it binds the
# stand-in group itself and starts each sandbox as a transient libvirt
# domain (hostdev managed='no', QEMU as the sandbox's unprivileged uid).
#   a  `sandbox create --gpus 1 --wait` is ready (guest-init's ready report)
#   b  `virsh list` shows the sandbox id; its live XML has a hostdev
#      managed='no' for each stand-in function; QEMU runs as a uid other
#      than root that owns /dev/vfio/<group>
#   c  the stand-in functions are on vfio-pci while it runs
#   d  libvirtd restarted (SIGTERM, then SIGKILL; started again): the
#      domain is still listed and running (same QEMU), vfiod still says running
#      and is connected again (its reconcile lists libvirt's domains)
#   e  vfiod killed (SIGKILL) and started again: the sandbox is adopted
#      (same id, running, same QEMU)
#   f  `sandbox delete`: the domain is gone from `virsh list --all`, the
#      functions are back on their original drivers, nothing is left under
#      the runtime dir's sandboxes/
#   g  a second sandbox: its QEMU killed with SIGKILL once it has the group
#      open; within 60 s vfiod says stopped/failed and the functions are
#      back on their original drivers
# Output: "ok - ..." / "not ok - ..." per check, "# ..." diagnostics and
# "# lab-libvirt: N passed, N failed". Exit 0 only if every check passed,
# 77 (with the reason) when libvirt is not installed.
set -uo pipefail

prog=${0##*/}
[[ $# -eq 2 ]] || { echo "usage: $prog BUILD_DIR CACHE_DIR" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"

for t in libvirtd virsh python3; do
    command -v "$t" >/dev/null || { echo "$prog: SKIP: $t not found (install libvirt-daemon-system, libvirt-clients)"; exit 77; }
done

pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
note() { echo "# $*"; }
indent() { sed -e 's/\r$//' -e "s/^/#   $1/"; }

# vfioctl ARGS...: our daemon's vfioctl; stdout in $work/out, stderr in
# $work/err, exit status in $vrc (never aborts the script).
vrc=0
vfioctl() {
    vrc=0
    timeout "${VFIOCTL_TIMEOUT:-60}" "$VFIOCTL" --socket "$sock" "$@" >"$work/out" 2>"$work/err" || vrc=$?
    [[ $vrc -ne 124 ]] || note "vfioctl $* timed out after ${VFIOCTL_TIMEOUT:-60}s"
    return 0
}
show_call() {
    note "vfioctl $* -> exit $vrc"
    [[ ! -s $work/out ]] || indent "out: " <"$work/out"
    [[ ! -s $work/err ]] || indent "err: " <"$work/err"
}
# sandbox_state ID: what `sandbox show ID --json` says ("(exit N)" if it fails)
sandbox_state() {
    vfioctl sandbox show "$1" --json
    if [[ $vrc -eq 0 ]]; then json "$work/out" "d['state']" 2>/dev/null || echo "(bad json)"; else echo "(exit $vrc)"; fi
}
virsh_() { timeout 60 virsh -q -c qemu:///system "$@"; }
# domains [--all]: the domain names libvirt lists, one line
domains() { virsh_ list "$@" --name 2>&1 | sed '/^$/d' | tr '\n' ' '; }
listed() { [[ " $(domains "${@:2}") " == *" $1 "* ]]; }
# qemu_pid ID: the pid of the domain's QEMU (libvirt's pid file), else by
# its command line (-name guest=ID,...); empty if none runs.
qemu_pid() {
    local p=''
    read -r p 2>/dev/null <"/run/libvirt/qemu/$1.pid" || true
    if [[ -n $p ]] && alive "$p"; then
        echo "$p"
    else
        pgrep -f "guest=$1," | head -n 1 || true
    fi
}
uid_of() { sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
# on_orig BDF...: every BDF is on the driver it had before vfiod started
on_orig() {
    local b
    for b in "$@"; do on_driver "$b" "${orig[$b]}" || return 1; done
}
drivers() {
    local b out=()
    for b in "$@"; do out+=("$b $(driver_of "$b")"); done
    local IFS=,
    echo "${out[*]}"
}

calibrate
note "$calib_msg"

# --- libvirtd, in L1 only ------------------------------------------------------
# l1-libvirtd.sh: a tmpfs each on /etc/libvirt, /var/lib/libvirt and
# /var/cache/libvirt, libvirtd.conf (root only, no auth on the local
# socket, no autostarted network) and this qemu.conf.
# qemu.conf, found in L1 with libvirt 9.0 (Debian 12) by leaving each
# candidate setting out in turn (user/group root, cgroup_controllers = [],
# remember_owner = 0 and security_driver = "none" were not needed):
#   stdio_handler = "file": QEMU's stdout/stderr go to
#     /var/log/libvirt/qemu/ID.log directly. Without it libvirtd hands them
#     to virtlogd, which nothing starts here (no systemd socket activation):
#     "Failed to connect socket to '/run/libvirt/virtlogd-sock': No such
#     file or directory".
#   namespaces = [ ]: no private /dev for QEMU. With the default ("mount")
#     QEMU, in libvirt's namespace, does not find the group's node that
#     exists on the host: "vfio 0000:01:00.0: failed to open /dev/vfio/7:
#     No such file or directory" (with relabel='no' and with 'yes' alike).
# shellcheck source=l1-libvirtd.sh
. "$here/l1-libvirtd.sh"
msg=$(l1_libvirtd_config 'stdio_handler = "file"
namespaces = [ ]' 2>&1) || nok "setup: $msg"
lvlog=/var/log/libvirt/libvirtd.log
lvout=/var/log/libvirt/libvirtd.out # its stdout and stderr
libvirtd_pid=
# start_libvirtd: in the background, then up to 60 s (x load) for `virsh
# list` to answer. Returns 1 if it does not.
start_libvirtd() {
    local t0 deadline
    deadline=$((SECONDS + $(scaled 60)))
    t0=$(now_ms)
    libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid </dev/null >>"$lvout" 2>&1 &
    libvirtd_pid=$!
    while ((SECONDS < deadline)); do
        if virsh_ list --all >/dev/null 2>&1; then
            note "libvirtd (pid $libvirtd_pid) answers after $(($(now_ms) - t0)) ms"
            return 0
        fi
        alive "$libvirtd_pid" || break
        sleep 0.2
    done
    note "libvirtd did not answer: $(tail -c 600 "$lvout" | tr '\n' ' ') | $(tail -n 5 "$lvlog" 2>/dev/null | tr '\n' ' ')"
    return 1
}
# stop_libvirtd SIGNAL: signal it and wait (10 s) until it is gone.
stop_libvirtd() {
    local _
    [[ -n $libvirtd_pid ]] || return 0
    kill -"$1" "$libvirtd_pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$libvirtd_pid" || break; sleep 0.1; done
    wait "$libvirtd_pid" 2>/dev/null || true
    alive "$libvirtd_pid" && return 1
    libvirtd_pid=
    rm -f /run/libvirtd.pid
}

dump_logs() {
    note "vfiod log (last 80 lines):"
    tail -n 80 "$vlog" 2>/dev/null | indent ""
    note "libvirtd log (last 30 lines):"
    tail -n 30 "$lvlog" 2>/dev/null | cut -c1-300 | indent ""
    local f
    for f in /var/log/libvirt/qemu/*.log; do
        [[ -f $f ]] || continue
        note "$f (last 15 lines):"
        tail -n 15 "$f" | cut -c1-300 | indent ""
    done
}
finish() {
    stop_vfiod >/dev/null 2>&1
    stop_libvirtd TERM >/dev/null 2>&1
    ((fail == 0)) || dump_logs
    echo "# lab-libvirt: $pass passed, $fail failed"
    exit $((fail ? 1 : 0))
}

if start_libvirtd; then
    ok "setup: libvirtd $(libvirtd --version | awk '{print $NF}') answers on qemu:///system (qemu.conf: $(tr '\n' ' ' </etc/libvirt/qemu.conf))"
else
    nok "setup: libvirtd answers on qemu:///system"
    finish
fi

# The stand-in pairs and the drivers they have before vfiod takes them.
declare -A orig
for b in "$A" "$B" "$C" "$D"; do orig[$b]=$(driver_of "$b"); done
note "stand-ins: $A+$B group $(group_of "$A"), $C+$D group $(group_of "$C"); drivers: $(drivers "$A" "$B" "$C" "$D")"

# --- vfiod with the libvirt backend ------------------------------------------------
write_config
cat >>"$conf" <<'EOF'
[vm]
backend=libvirt
[libvirt]
uri=qemu:///system
EOF
note "vfiod config ($conf):"
indent "" <"$conf"
if start_vfiod; then
    ok "setup: vfiod starts with [vm] backend=libvirt and answers (pid $vfiod_pid)"
else
    nok "setup: vfiod starts with [vm] backend=libvirt and answers within 10 s"
    finish
fi
# A vfiod without the backend ignores unknown keys with a warning (and
# would start QEMU itself): say so here, the checks below then fail.
unknown=$(grep -a -o -E 'unknown config key \[(vm|libvirt)\] [a-z_]+' "$vlog" | sort -u | tr '\n' ';')
if [[ -z $unknown ]]; then
    ok "setup: vfiod takes [vm] backend and [libvirt] uri (no 'unknown config key' warning)"
else
    nok "setup: vfiod takes [vm] backend and [libvirt] uri (its log: $unknown)"
fi

# --- a. create --gpus 1 --wait ---------------------------------------------------------
id='' qpid='' devs=() group=''
create_args=(sandbox create --gpus 1 --kernel "$KERNEL" --initrd "$INITRD" --memory 256)
t0=$(now_ms)
VFIOCTL_TIMEOUT=$((READY_TIMEOUT + 120)) vfioctl "${create_args[@]}" --wait --timeout "$READY_TIMEOUT" --json
t1=$(now_ms)
cp "$work/out" "$work/create.json" 2>/dev/null
# the sandbox, also when it did not get ready (b-f check it all the same)
id=$(json "$work/create.json" "d['id']" 2>/dev/null) || id=''
[[ $id =~ ^sb-[0-9a-f]{8}$ ]] || id=''
read -r -a devs <<<"$(json "$work/create.json" "' '.join(sorted(d.get('devices', [])))" 2>/dev/null)"
if [[ $vrc -eq 0 && -n $id && $(json "$work/create.json" "[d.get('state'), d.get('ready')]" 2>/dev/null) == '["running", true]' ]]; then
    ok "a: sandbox create --gpus 1 --wait: $id running and ready after $(((t1 - t0) / 1000)) s (limit $READY_TIMEOUT s; vfiod's ready_ms $(json "$work/create.json" "d.get('ready_ms')" 2>/dev/null))"
    serial=$(json "$work/create.json" "d.get('serial_log') or ''" 2>/dev/null)
    line=$(grep -a -o 'VFIOD_READY {.*}' "$serial" 2>/dev/null | head -n 1 | tr -d '\r')
    echo "${line#VFIOD_READY }" >"$work/ready.json"
    ids=$(json "$work/ready.json" "' '.join(sorted(p['id'] for p in d.get('pci', [])))" 2>/dev/null)
    if [[ ${devs[*]} == "$A $B" && " $ids " == *" $(hexid "$A") "* && " $ids " == *" $(hexid "$B") "* ]]; then
        ok "a: it holds the stand-in pair ($A $B) and the guest's ready report lists $(hexid "$A") and $(hexid "$B")"
    else
        nok "a: it holds $A $B (got '${devs[*]}') and the ready report in '$serial' lists both (pci ids: '$ids')"
    fi
else
    show_call "${create_args[@]}" --wait --timeout "$READY_TIMEOUT" --json
    nok "a: sandbox create --gpus 1 --wait gives a ready, running sb-XXXXXXXX within $READY_TIMEOUT s (exit $vrc, id '$id', $(((t1 - t0) / 1000)) s)"
    nok "a: it holds the stand-in pair and the ready report lists it (no ready sandbox)"
    serial=$(json "$work/create.json" "d.get('serial_log') or ''" 2>/dev/null)
    if [[ -n $serial && -f $serial ]]; then
        note "serial log $serial (last 40 lines):"
        tail -n 40 "$serial" | indent ""
    fi
fi
[[ ${#devs[@]} -gt 0 ]] || devs=("$A" "$B")
[[ -n $group ]] || group=$(group_of "$A")

if [[ -z $id ]]; then
    nok "b-f: no sandbox to check (a failed)"
else
    # --- b. libvirt's view -----------------------------------------------------------
    qpid=$(qemu_pid "$id")
    if listed "$id"; then
        ok "b: virsh list shows $id"
    else
        nok "b: virsh list shows $id (got '$(domains)')"
    fi
    vpid=$(json "$work/create.json" "d.get('pid')" 2>/dev/null)
    if [[ -n $qpid && $vpid == "$qpid" ]]; then
        ok "b: vfiod follows libvirt's QEMU of $id: pid $vpid (/run/libvirt/qemu/$id.pid)"
    else
        nok "b: vfiod's pid for $id ('$vpid') is libvirt's QEMU ('$qpid')"
    fi
    virsh_ dumpxml "$id" >"$work/live.xml" 2>&1
    hd=$(python3 - "$work/live.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception as e:
    print("unparsable: %s" % e); sys.exit(0)
out = []
for h in root.iter("hostdev"):
    a = h.find("source/address")
    if h.get("type") != "pci" or a is None:
        continue
    bdf = "%04x:%02x:%02x.%x" % tuple(int(a.get(k), 16) for k in ("domain", "bus", "slot", "function"))
    out.append("%s=%s" % (bdf, h.get("managed", "(unset)")))
print(" ".join(sorted(out)))
EOF
)
    want=$(printf '%s=no ' "${devs[@]}")
    if [[ "$hd " == "$want" ]]; then
        ok "b: virsh dumpxml $id: a PCI hostdev managed='no' for each function ($hd)"
    else
        nok "b: virsh dumpxml $id: hostdevs managed='no' for ${devs[*]} (got '$hd')"
        head -c 3000 "$work/live.xml" | indent "xml: "
    fi
    quid=$( [[ -n $qpid ]] && uid_of "$qpid")
    vown=$(stat -c %u "/dev/vfio/$group" 2>/dev/null)
    if [[ -n $quid && $quid != 0 && $vown == "$quid" ]]; then
        ok "b: QEMU $qpid runs as uid $quid (not root), which owns /dev/vfio/$group"
    else
        nok "b: QEMU (pid '$qpid') runs as an unprivileged uid that owns /dev/vfio/$group (QEMU uid '$quid', node owner '$vown')"
    fi

    # --- c. drivers --------------------------------------------------------------------
    if on_driver "${devs[0]}" vfio-pci && on_driver "${devs[1]:-${devs[0]}}" vfio-pci; then
        ok "c: ${devs[*]} are on vfio-pci while $id runs"
    else
        nok "c: ${devs[*]} are on vfio-pci while $id runs (got $(drivers "${devs[@]}"))"
    fi

    # --- d. libvirtd restarts ------------------------------------------------------------
    for sig in TERM KILL; do
        if ! stop_libvirtd "$sig"; then
            nok "d: libvirtd exits on SIG$sig"
            continue
        fi
        if ! start_libvirtd; then
            nok "d: libvirtd starts again after SIG$sig"
            continue
        fi
        st=$(virsh_ domstate "$id" 2>&1 | head -n 1)
        p=$(qemu_pid "$id")
        vst=$(sandbox_state "$id")
        if listed "$id" && [[ $st == running && -n $p && $p == "$qpid" && $vst == running ]]; then
            ok "d: after libvirtd's SIG$sig and restart: $id listed, domstate running, the same QEMU $p; vfioctl says running"
        else
            nok "d: after libvirtd's SIG$sig and restart: listed '$(domains)', domstate '$st', QEMU '$p' (was $qpid), vfioctl '$vst'"
        fi
        # vfiod is connected again: its Reconcile lists libvirt's domains
        # (while it is not, the report has a "libvirt" entry: "libvirt's
        # domains were not checked: ...")
        t0=$(now_ms) rec='' lv_entry='' deadline=$((SECONDS + $(scaled 30)))
        while ((SECONDS < deadline)); do
            vfioctl reconcile --json
            rec=$(json "$work/out" "'; '.join(x['subject'] + ' ' + x['action'] + ': ' + x['detail'] for x in d)" 2>/dev/null || echo "(exit $vrc: $(head -c 200 "$work/err"))")
            lv_entry=$(json "$work/out" "any(x['subject'] == 'libvirt' for x in d)" 2>/dev/null || echo error)
            [[ $vrc -eq 0 && $lv_entry == false ]] && break
            sleep 1
        done
        if [[ $vrc -eq 0 && $lv_entry == false ]]; then
            ok "d: vfiod checks libvirt's domains again $(($(now_ms) - t0)) ms after libvirtd answered (reconcile: ${rec:-nothing to reconcile})"
        else
            nok "d: vfiod reconnects to libvirtd within $(scaled 30) s of its SIG$sig restart (reconcile: $rec)"
        fi
    done

    # --- e. vfiod SIGKILL + restart: adoption -----------------------------------------
    kill -KILL "$vfiod_pid" 2>/dev/null
    wait "$vfiod_pid" 2>/dev/null
    note "vfiod (pid $vfiod_pid) killed with SIGKILL"
    echo "---- lab-libvirt: vfiod killed, started again ----" >>"$vlog"
    t0=$(now_ms)
    if start_vfiod; then
        t1=$(now_ms)
        note "vfiod's log after the restart (libvirt, adoption):"
        sed -n '/^---- lab-libvirt: vfiod killed/,$p' "$vlog" | grep -a -i -E 'libvirt|adopt|reconcil|listening|serving' |
            head -n 15 | cut -c1-300 | indent ""
        st=$(sandbox_state "$id")
        vfioctl sandbox list --json
        n=$(json "$work/out" "' '.join(s['id'] for s in d)" 2>/dev/null)
        p=$(qemu_pid "$id")
        if [[ $st == running && $n == "$id" && $p == "$qpid" ]] && listed "$id" && on_driver "${devs[0]}" vfio-pci; then
            ok "e: vfiod restarted after SIGKILL (answering after $((t1 - t0)) ms) adopted $id: running, the only sandbox, the same QEMU $p, devices on vfio-pci"
        else
            nok "e: vfiod restarted adopts $id (state '$st', sandboxes '$n', QEMU '$p' (was $qpid), listed '$(domains)', $(drivers "${devs[@]}"))"
        fi
    else
        nok "e: vfiod starts again after SIGKILL"
        finish
    fi

    # --- f. delete -------------------------------------------------------------------------
    t0=$(now_ms)
    VFIOCTL_TIMEOUT=$(scaled 120) vfioctl sandbox delete "$id"
    t1=$(now_ms)
    if [[ $vrc -eq 0 ]]; then ok "f: sandbox delete $id exits 0 ($((t1 - t0)) ms)"; else show_call sandbox delete "$id"; nok "f: sandbox delete $id exits 0 (got $vrc)"; fi
    # what the delete leaves behind, polled (up to 30 s x load) for a
    # release that finishes after the call returned
    deadline=$((SECONDS + $(scaled 30)))
    while ((SECONDS < deadline)); do
        ! listed "$id" --all && [[ -z $(qemu_pid "$id") ]] && on_orig "${devs[@]}" &&
            [[ -z $(find "$runtime/sandboxes" -mindepth 1 -maxdepth 1 2>/dev/null) ]] && break
        sleep 0.2
    done
    t2=$(now_ms)
    if ! listed "$id" --all && [[ -z $(qemu_pid "$id") ]] && { [[ -z $qpid ]] || ! alive "$qpid"; }; then
        ok "f: $id is gone from virsh list --all, its QEMU${qpid:+ $qpid} has exited"
    else
        nok "f: $id is gone from virsh list --all (got '$(domains --all)'), QEMU gone (pid '$(qemu_pid "$id")', was '$qpid')"
    fi
    if on_orig "${devs[@]}"; then
        ok "f: $(drivers "${devs[@]}"): back on their original drivers ($((t2 - t1)) ms after the delete returned)"
    else
        nok "f: ${devs[*]} back on their original drivers (got $(drivers "${devs[@]}"), want ${orig[${devs[0]}]}, ${orig[${devs[1]:-${devs[0]}}]})"
    fi
    left=$(find "$runtime/sandboxes" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
    if [[ -z $left ]]; then
        ok "f: nothing left under $runtime/sandboxes/"
    else
        nok "f: nothing left under $runtime/sandboxes/ (got: $left)"
    fi
fi

# --- g. kill -9 of a second sandbox's QEMU -----------------------------------------------
id2=''
VFIOCTL_TIMEOUT=$(scaled 180) vfioctl "${create_args[@]}" --json
if [[ $vrc -eq 0 ]] && id2=$(json "$work/out" "d['id']" 2>/dev/null) && [[ $id2 =~ ^sb- ]]; then
    read -r -a devs2 <<<"$(json "$work/out" "' '.join(sorted(d.get('devices', [])))" 2>/dev/null)"
    [[ ${#devs2[@]} -gt 0 ]] || devs2=("$A" "$B")
    g2=$(group_of "${devs2[0]}")
    # QEMU runs once it holds the group open (it opens /dev/vfio/N while it
    # sets up the machine): up to 60 s x load (TCG work in L1)
    p2='' deadline=$((SECONDS + $(scaled 60)))
    while ((SECONDS < deadline)); do
        p2=$(qemu_pid "$id2")
        [[ -n $p2 ]] && has_open "$p2" "/dev/vfio/$g2" && break
        sleep 0.1
    done
    if [[ -n $p2 ]] && has_open "$p2" "/dev/vfio/$g2"; then
        note "g: $id2 (${devs2[*]}): QEMU $p2 has /dev/vfio/$g2 open; kill -9"
        k0=0 now=0 st='' t_state='' t_dev=''
        stamp k0
        kill -KILL "$p2"
        # each time is taken right after the probe that saw it (a vfioctl
        # call takes a second or two under TCG; the driver check forks nothing)
        while :; do
            stamp now
            ((now - k0 <= 60000)) || break
            if [[ -z $t_dev ]] && on_orig "${devs2[@]}"; then
                stamp now
                t_dev=$((now - k0))
            fi
            if [[ -z $t_state ]]; then
                st=$(sandbox_state "$id2")
                stamp now
                [[ $st == stopped || $st == failed || $st == exited ]] && t_state=$((now - k0))
            fi
            [[ -n $t_state && -n $t_dev ]] && break
            nap 0.1
        done
        if [[ -n $t_state && -n $t_dev ]]; then
            ok "g: QEMU of $id2 killed: vfiod says $st after $t_state ms, $(drivers "${devs2[@]}") back after $t_dev ms (limit 60 s)"
        else
            nok "g: within 60 s of QEMU's kill -9 vfiod says stopped/failed (got '$st'${t_state:+ after $t_state ms}) and ${devs2[*]} are back on their original drivers (got $(drivers "${devs2[@]}")${t_dev:+ after $t_dev ms})"
        fi
        vfioctl sandbox delete "$id2"
        [[ $vrc -eq 0 ]] || show_call sandbox delete "$id2"
        if [[ $vrc -eq 0 ]] && ! listed "$id2" --all && on_orig "${devs2[@]}"; then
            ok "g: sandbox delete $id2 afterwards: exits 0, no domain left, devices on their original drivers"
        else
            nok "g: sandbox delete $id2 afterwards (exit $vrc, domains '$(domains --all)', $(drivers "${devs2[@]}"))"
        fi
    else
        nok "g: QEMU of $id2 runs and opens /dev/vfio/$g2 within $(scaled 60) s (pid '$p2', state $(sandbox_state "$id2"))"
        vfioctl sandbox delete "$id2"
    fi
else
    show_call "${create_args[@]}" --json
    nok "g: a second sandbox create --gpus 1 exits 0 with an id (exit $vrc)"
fi

finish
