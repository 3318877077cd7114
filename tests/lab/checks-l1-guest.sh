#!/bin/bash
# checks-l1-guest.sh BUILD_DIR CACHE_DIR
#
# The "lab-guest" checks, run INSIDE L1 as root by run-lab-guest.sh:
#   tests/lab/run-l1.sh tests/lab/checks-l1-guest.sh BUILD_DIR CACHE_DIR
# One sandbox (one nested L2 boot) with everything a production host turns
# on: a staged guest image (guest-init + e1000e, virtio-net, vsock, button,
# evdev), the sandbox network ([network] enabled: TAP, /30, nftables in L1's
# own namespace, vsock CID and report listener), QEMU as an unprivileged user
# ([qemu] user=nobody) and the default kernel/initrd from [qemu]. Then:
#   1. capabilities + `sandbox create --gpus 1 --wait`: the stand-in group,
#      ready
#   2. the ready report (over vsock): e1000e bound in L2, staged modules
#      loaded, timings
#   3. the guest's address = the sandbox /30's guest address; TAP, nft table,
#      ping from L1
#   4. QEMU runs as a uid of its own ([qemu] uid_range) in nobody's group,
#      /dev/vfio/<group> belongs to that uid
#   5. vfiod restart: the sandbox is adopted (same pid); delete powers the
#      guest off by the ACPI button; devices, TAP and nft table are back/gone
# Output: "ok - ..." / "not ok - ..." per check with what was measured,
# "# ..." details, "# lab-guest: N passed, N failed". Exit 0 only if all
# passed. On failure: vfiod's log, the L2 serial log, QEMU's log. Every wait
# for L2 (ready, vsock report, ping, graceful stop) is scaled by the L2 load
# factor measured at the start (l1-lib.sh, calibrate) and prints the tail of
# the guest's serial log when it runs out.
#
# Expects from BUILD_DIR: vfiod/vfiod, vfiod/vfioctl; from CACHE_DIR:
# vmlinuz and guest-staged.cpio.gz (made on the host by run-lab-guest.sh;
# both dirs are read-only here). LAB_GUEST_MODULES: the staged module order
# (space-separated; read from the image's manifest when unset).
set -uo pipefail

prog=${0##*/}
[[ $# -eq 2 ]] || { echo "usage: $prog BUILD_DIR CACHE_DIR" >&2; exit 2; }
# The same guard as l1-lib.sh (which repeats it): vfiod writes to sysfs, so
# this runs only inside the lab VM, never on the machine that builds.
if [[ ${LAB_L1:-} != 1 ]]; then
    echo "$prog: refusing to run outside the lab VM (run it with tests/lab/run-lab-guest.sh)" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"

# Our own files (not l1-lib.sh's): config, state, runtime dir, logs.
work=/tmp/vfiod-lab-guest
state=$work/state
runtime=/run/vfiod-guest
sock=$runtime/vfiod.sock
conf=$work/vfiod.conf
vlog=$work/vfiod.log
INITRD=$cache/guest-staged.cpio.gz
QEMU_USER=nobody
# [qemu] stop_timeout: the default is 10 s; a graceful power-off of L2 under
# nested TCG took 3-7.5 s on a busy 2-core host, so give it room: a stop
# that needs QEMU's quit (escalation) is what the check must catch, not load.
# Scaled by the L2 load factor (calibrate, below) like every wait for L2 here.
STOP_TIMEOUT_BASE=${LAB_GUEST_STOP_TIMEOUT:-30}
STOP_TIMEOUT=$STOP_TIMEOUT_BASE

pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check COND-STATUS MESSAGE: ok when the status is 0
    if [[ $1 -eq 0 ]]; then ok "$2"; else nok "$2"; fi
}
note() { echo "# $*"; }
indent() { sed -e 's/\r$//' -e "s/^/#   $1/"; }
ms_since() { echo $(($(now_ms) - $1)); }

# py FILE EXPR: EXPR evaluated with d = FILE's JSON (str printed as is, the
# rest as JSON); prints nothing and fails when FILE is not JSON or EXPR fails.
py() {
    python3 - "$1" "$2" <<'EOF' 2>/dev/null
import ipaddress, json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
r = eval(sys.argv[2], {"d": d, "json": json, "ipaddress": ipaddress})
print(r if isinstance(r, str) else json.dumps(r))
EOF
}

# vfioctl ARGS...: stdout in $work/out, stderr in $work/err, status in $vrc.
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

g_vfiod_pid=
g_start_vfiod() {
    "$VFIOD" --config "$conf" </dev/null >>"$vlog" 2>&1 &
    g_vfiod_pid=$!
    local _
    for _ in $(seq 50); do
        alive "$g_vfiod_pid" || return 1
        timeout 10 "$VFIOCTL" --socket "$sock" list >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
g_stop_vfiod() { # SIGTERM, 10 s, SIGKILL; 1 if it needed SIGKILL
    local _
    [[ -n $g_vfiod_pid ]] && alive "$g_vfiod_pid" || return 0
    kill -TERM "$g_vfiod_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$g_vfiod_pid" || { wait "$g_vfiod_pid" 2>/dev/null; return 0; }
        sleep 0.2
    done
    kill -KILL "$g_vfiod_pid" 2>/dev/null || true
    wait "$g_vfiod_pid" 2>/dev/null
    return 1
}

sb_id='' qpid='' sb_dir='' tail_pid='' tap='' group='' drv_a='' drv_b=''
serial_copy=$work/l2-serial.log
qemu_log_copy=$work/qemu.log

# Keep the sandbox's serial log and QEMU log: vfiod removes the sandbox
# directory on delete (tail keeps reading the unlinked file).
follow_sandbox_logs() {
    [[ -n $sb_dir && -z $tail_pid ]] || return 0
    tail -n +1 -F "$sb_dir/serial.log" >"$serial_copy" 2>/dev/null &
    tail_pid=$!
}
save_qemu_log() { [[ ! -e $sb_dir/qemu.log ]] || cp "$sb_dir/qemu.log" "$qemu_log_copy" 2>/dev/null || true; }

# l2_log_tail WHAT: after a wait for the L2 guest timed out or failed, the
# last 60 lines of its serial log, right there (the whole log follows at the
# end on any failure). Without a sandbox id from create, asks vfiod for it.
l2_log_tail() {
    local log_file="" n
    if [[ -z $sb_id ]]; then
        vfioctl sandbox list --json
        n=$(py "$work/out" "len(d)") || n=0
        if [[ ${n:-0} -ge 1 ]]; then
            sb_id=$(py "$work/out" "d[0]['id']") || sb_id=''
            qpid=$(py "$work/out" "d[0].get('pid') or ''") || qpid=''
            sb_dir=$runtime/sandboxes/$sb_id
            [[ -z $sb_id ]] || { follow_sandbox_logs; save_qemu_log; }
            sleep 0.5 # (let tail copy it)
        fi
    fi
    if [[ -s $serial_copy ]]; then
        log_file=$serial_copy
    elif [[ -n $sb_dir && -s $sb_dir/serial.log ]]; then
        log_file=$sb_dir/serial.log
    fi
    if [[ -n $log_file ]]; then
        note "$1: L2 serial log of ${sb_id:-?} (last 60 lines):"
        tail -n 60 "$log_file" | indent "L2: "
    else
        note "$1: no L2 serial log (sandbox ${sb_id:-unknown})"
    fi
}

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    local rc=$?
    save_qemu_log
    [[ -z ${strace_pid:-} ]] || { kill -INT "$strace_pid" 2>/dev/null; wait "$strace_pid" 2>/dev/null; }
    g_stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
    if [[ -n $qpid ]] && alive "$qpid"; then
        note "QEMU (pid $qpid) still runs after the checks: killing it"
        kill -KILL "$qpid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$qpid" || break; sleep 0.1; done
    fi
    if [[ -n $tail_pid ]]; then
        sleep 0.5
        kill "$tail_pid" 2>/dev/null || true
        wait "$tail_pid" 2>/dev/null || true
    fi
    if [[ $fail -gt 0 || $rc -ne 0 ]]; then
        if [[ -s $vlog ]]; then
            note "vfiod log ($vlog):"
            indent "" <"$vlog"
        fi
        if [[ -s $serial_copy ]]; then
            note "L2 serial log ($sb_id):"
            indent "L2: " <"$serial_copy"
        fi
        if [[ -s $qemu_log_copy ]]; then
            note "QEMU log ($sb_id):"
            indent "qemu: " <"$qemu_log_copy"
        fi
        note "dmesg (last 30 lines):"
        dmesg | tail -n 30 | indent "dmesg: "
    fi
    # Put the devices back by hand if vfiod did not (L1 only, see the guard).
    local b want
    for b in "$B" "$A"; do
        [[ -n $drv_a && -n $drv_b && -e $dev/$b ]] || continue
        case $b in "$A") want=$drv_a ;; *) want=$drv_b ;; esac
        if [[ $(driver_of "$b") != "$want" || $(override_of "$b") != "(null)" ]]; then
            note "restoring $b by hand (on $(driver_of "$b"), override '$(override_of "$b")')"
            printf '\n' >"$dev/$b/driver_override" 2>/dev/null || true
            [[ $(driver_of "$b") == "(none)" ]] || echo "$b" >"$dev/$b/driver/unbind" 2>/dev/null || true
            echo "$b" >/sys/bus/pci/drivers_probe 2>/dev/null || true
        fi
    done
    echo "# lab-guest: $pass passed, $fail failed"
    if [[ $rc -eq 0 && $fail -gt 0 ]]; then rc=1; fi
    exit "$rc"
}
trap cleanup EXIT

t_all=$(now_ms)
note "lab-guest in L1: kernel $(uname -r), vfiod $VFIOD, guest kernel $KERNEL, guest image $INITRD"
# How busy is the host? Scales every wait for L2 here (l1-lib.sh, calibrate).
calibrate
STOP_TIMEOUT=$(scaled_l2 "$STOP_TIMEOUT_BASE")
note "$calib_msg; stop_timeout $STOP_TIMEOUT s"
for f in "$VFIOD" "$VFIOCTL" "$KERNEL" "$INITRD"; do
    [[ -e $f ]] || { nok "$f exists"; exit 1; }
done

# --- the staged module list ---------------------------------------------------
staged=${LAB_GUEST_MODULES:-}
if [[ -z $staged ]]; then
    staged=$(zcat "$INITRD" | bsdtar -xOf - etc/vfiod/manifest 2>/dev/null |
        sed -n 's|^module \([^ ]*\).*|\1|p' | sed -e 's|.*/||' -e 's|\.ko.*||' | tr '\n' ' ')
    staged=${staged% }
fi
note "staged modules (load order): $staged"

# --- L1 preflight: the devices, nf_tables, vsock, tun -------------------------
rm -rf "$work" "$runtime"
mkdir -p "$work" "$state"
drv_a=$(driver_of "$A") drv_b=$(driver_of "$B")
mac_a=$(cat "$dev/$A"/net/*/address 2>/dev/null | head -n 1)
group=$(group_of "$A")
note "stand-in: $A $(hexid "$A") on $drv_a (mac ${mac_a:-?}), $B $(hexid "$B") on $drv_b, IOMMU group $group (companion's $(group_of "$B"))"

nf_before=$(lsmod | awk '$1 ~ /^nf_tables$|^nfnetlink$/ { printf "%s ", $1 }')
nrc=0
nft list tables >"$work/nft.out" 2>"$work/nft.err" || nrc=$?
nf_after=$(lsmod | awk '$1 ~ /^nf_tables$|^nfnetlink$/ { printf "%s ", $1 }')
if [[ $nrc -eq 0 ]]; then
    ok "L1: nft works (nf_tables loaded on demand: before [${nf_before% }], after [${nf_after% }]; tables: $(tr '\n' ' ' <"$work/nft.out"))"
else
    indent "nft: " <"$work/nft.err"
    mrc=0
    modprobe nf_tables 2>"$work/nft.err" || mrc=$?
    if [[ $mrc -eq 0 ]] && nft list tables >/dev/null 2>&1; then
        nok "L1: nft works without help (it needed an explicit 'modprobe nf_tables'; autoload failed)"
    else
        indent "modprobe: " <"$work/nft.err"
        nok "L1: nft works (nft exit $nrc, modprobe nf_tables exit $mrc)"
    fi
fi
note "L1: $(ls -l /dev/vhost-vsock 2>&1); $(ls -l /dev/net/tun 2>&1); vhost-net $([[ -e /dev/vhost-net ]] && echo present || echo absent)"
note "L1: modules: $(lsmod | awk 'NR > 1 && $1 ~ /vsock|^tun$|vfio|^nf_|^nft_/ { printf "%s ", $1 }')"

# L1 has no udev: devtmpfs leaves /dev/net/tun and /dev/vhost-vsock at 0600
# root, and QEMU as [qemu] user opens both itself (vfiod passes no fds), so
# it cannot start ("could not open /dev/net/tun: Permission denied"). A
# Debian host's udev (systemd 50-udev-default.rules) makes them 0666
# (tun: MODE="0666"; vhost-vsock: GROUP="kvm", MODE="0666"); do what it
# would. LAB_GUEST_RAW_DEV_MODES=1 leaves them alone (to see the failure).
if [[ ${LAB_GUEST_RAW_DEV_MODES:-0} != 1 ]]; then
    for n in /dev/net/tun /dev/vhost-vsock; do
        [[ -e $n ]] || continue
        before=$(stat -c '%U:%G %a' "$n")
        chmod 0666 "$n"
        note "L1 (as udev on a Debian host): $n $before -> $(stat -c '%U:%G %a' "$n")"
    done
fi

# --- vfiod ---------------------------------------------------------------------
cat >"$conf" <<EOF
[daemon]
state_dir=$state
runtime_dir=$runtime
allowed_group=
[devices]
# exactly the stand-in pair (1af4:* would also cover L1's own virtio-9p device)
ids=$(hexid "$A");$(hexid "$B")
classes=
# the stand-in GPU is a NIC, which vfiod refuses to take by default
allow_network=true
[qemu]
binary=qemu-system-x86_64
accel=tcg
user=$QEMU_USER
stop_timeout=$STOP_TIMEOUT
kernel=$KERNEL
initrd=$INITRD
[network]
enabled=true
EOF
note "vfiod config ($conf):"
indent "" <"$conf"

if ! g_start_vfiod; then
    nok "vfiod starts and answers within 10 s"
    exit 1
fi
note "vfiod pid $g_vfiod_pid: $(grep -a -E 'listening for guest reports|serving the API|cannot listen' "$vlog" | sed 's/.*: //' | tr '\n' ';')"

# === 1. capabilities, create --gpus 1 --wait ==================================
vfioctl capabilities --json
cp "$work/out" "$work/caps.json"
if [[ $vrc -eq 0 ]]; then
    caps_devs=$(py "$work/caps.json" "' '.join('%s(%s:%s,%s,group %s)' % (e['bdf'], e['vendor'], e['device'], e['state'], e['iommu_group']) for e in d['devices'])")
    free=$(py "$work/caps.json" "d['host']['free_units']")
    host=$(py "$work/caps.json" "' '.join('%s=%s' % (k, d['host'].get(k)) for k in ('accel', 'vsock', 'network', 'cpus', 'memory_mib', 'free_units'))")
    note "capabilities: host $host"
    note "capabilities: devices $caps_devs"
    has_ab=$(py "$work/caps.json" "all(any(e['bdf'] == b for e in d['devices']) for b in ('$A', '$B'))")
    [[ $has_ab == true && ${free:-0} -ge 1 ]]
    check $? "1: capabilities --json lists $A and $B, free_units $free (>= 1)"
else
    show_call capabilities --json
    nok "1: vfioctl capabilities --json (exit $vrc)"
fi

# Evidence of the vsock path from L1's side: vfiod's listener (ss), and what
# its main thread (GLib main loop: accept, getpeername, recv) receives while
# the sandbox boots. strace only looks; it follows no child.
ss -l -n -p --vsock 2>&1 | indent "ss: "
strace_pid=''
if command -v strace >/dev/null; then
    strace -qq -tt -s 160 -e trace=accept,accept4,getpeername,recvfrom,recvmsg \
        -o "$work/strace.txt" -p "$g_vfiod_pid" 2>"$work/strace.err" &
    strace_pid=$!
    sleep 0.5
fi
t0=$(now_ms)
VFIOCTL_TIMEOUT=$((READY_TIMEOUT + 60)) vfioctl sandbox create --gpus 1 --wait --timeout "$READY_TIMEOUT" --json
t_create=$(ms_since "$t0")
cp "$work/out" "$work/create.json"
cp "$work/err" "$work/create.err"
sb_id=$(py "$work/create.json" "d['id']") || sb_id=''
qpid=$(py "$work/create.json" "d['pid']") || qpid=''
sb_dir=$runtime/sandboxes/$sb_id
[[ -z $sb_id ]] || { follow_sandbox_logs; save_qemu_log; }
# The vsock report follows the console line: wait for guest-init's account
# of it (VFIOD_REPORT; 3 attempts of up to 3 s each) before strace stops.
if [[ -n $strace_pid ]]; then
    t1=$(now_ms)
    report_wait=$(scaled_l2 20000)
    while (($(now_ms) - t1 < report_wait)) && [[ -n $qpid ]] && alive "$qpid"; do
        grep -a -q 'VFIOD_REPORT .*"line":"VFIOD_READY"' "$serial_copy" 2>/dev/null && break
        sleep 0.5
    done
    if grep -a -q 'VFIOD_REPORT .*"line":"VFIOD_READY"' "$serial_copy" 2>/dev/null; then
        note "VFIOD_REPORT seen $(ms_since "$t1") ms after create returned"
    else
        note "no VFIOD_REPORT in the guest's serial log $(ms_since "$t1") ms after create returned (waited up to $report_wait ms)"
        [[ $vrc -ne 0 || -z $sb_id ]] || l2_log_tail "no VFIOD_REPORT"
    fi
    sleep 1
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    strace_pid=''
fi
if [[ $vrc -eq 0 && -n $sb_id ]]; then
    devs=$(py "$work/create.json" "' '.join(d['devices'])")
    ready=$(py "$work/create.json" "d['ready']")
    ready_ms=$(py "$work/create.json" "d['ready_ms']")
    [[ $devs == "$A $B" && $ready == true ]]
    check $? "1: sandbox create --gpus 1 --wait --json: $sb_id, pid $qpid, devices [$devs] (want [$A $B]), ready $ready after ${ready_ms} ms (vfiod), ${t_create} ms (vfioctl; limit $READY_TIMEOUT s)"
else
    show_call sandbox create --gpus 1 --wait --timeout "$READY_TIMEOUT" --json
    nok "1: sandbox create --gpus 1 --wait --timeout $READY_TIMEOUT --json succeeds and is ready (exit $vrc after ${t_create} ms; $READY_TIMEOUT_BASE s x L2 factor $L2_FACTOR)"
    l2_log_tail "create --wait"
fi

# === 2. the ready report ======================================================
rep=$work/report.json
py "$work/create.json" "d.get('ready_report')" >"$rep" || : >"$rep"
if [[ -s $rep && $(cat "$rep") != null ]]; then
    note "ready_report: $(tr -d '\n' <"$rep")"
    pci=$(py "$rep" "' '.join('%s=%s:%s' % (p['bdf'], p['id'], p['driver']) for p in d['pci'])")
    note "L2 PCI: $pci"
    e1k=$(py "$rep" "' '.join('%s:%s' % (p['bdf'], p['driver']) for p in d['pci'] if p['id'] == '8086:10d3')")
    comp_id=$(hexid "$B")
    comp=$(py "$rep" "' '.join('%s:%s' % (p['bdf'], p['driver']) for p in d['pci'] if p['id'] == '$comp_id')")
    [[ -n $e1k && $e1k == *:e1000e && $e1k != *" "* ]]
    check $? "2: ready_report names the passed device 8086:10d3 with driver e1000e (got: ${e1k:-none}; companion $comp_id: ${comp:-none})"

    mods=$(py "$rep" "' '.join(d['modules'])")
    [[ -n $mods && $mods == "$staged" ]]
    check $? "2: ready_report.modules = the staged modules in load order (${mods:-none})"

    timings=$(py "$rep" "' '.join('%s=%s' % kv for kv in d['timings_ms'].items())")
    span=$(py "$rep" "d['timings_ms']['ready'] - d['timings_ms']['init_start']")
    [[ -n $timings ]]
    check $? "2: ready_report.timings_ms (guest CLOCK_BOOTTIME ms): $timings; guest-init set-up ${span:-?} ms; uptime_ms $(py "$rep" "d['uptime_ms']")"

    # guest-init prints the console line first, then connects to CID 2;
    # vfiod takes whichever reaches it first and drops the other silently.
    channel=$(py "$rep" "d['report']")
    vready=$(grep -a "sandbox $sb_id: guest ready after" "$vlog" | tail -n 1)
    greport=$(grep -a -o 'VFIOD_REPORT {.*"line":"VFIOD_READY".*}' "$serial_copy" 2>/dev/null | head -n 1 | tr -d '\r')
    rcid=$(py "$state/journal.json" "[s.get('cid') for s in d.get('sandboxes', []) if s['id'] == '$sb_id'][0]") || rcid=''
    # strace prints the CID in hex (svm_cid=0x3)
    hcid=$(printf '0x%x' "${rcid:-0}" 2>/dev/null)
    peer=$(grep -a -E "getpeername\(.*AF_VSOCK.*svm_cid=(${rcid:-x}|$hcid)[,}]" "$work/strace.txt" 2>/dev/null | head -n 1)
    recv=$(grep -a -E 'recv(from|msg)\(.*VFIOD_READY \{' "$work/strace.txt" 2>/dev/null | head -n 1)
    got="accepted a connection from CID $rcid: $([[ -n $peer ]] && echo yes || echo no)"
    got+=", received the VFIOD_READY line: $([[ -n $recv ]] && echo "yes, ${recv##*= } bytes at ${recv%% *}" || echo no)"
    [[ -s $work/strace.txt || -s $work/strace.err ]] || got="(no strace)"
    if [[ $channel == vsock:* && ($vready == *"(vsock)" ||
        ($greport == *'"ok":true'* && -n $peer && -n $recv)) ]]; then
        ok "2: the report reached L1 over vsock: report=$channel; guest: ${greport:-no VFIOD_REPORT}; vfiod's main thread (strace): $got; vfiod's log: '${vready#*: sandbox }'"
    else
        nok "2: the report reached L1 over vsock: report=$channel; guest: ${greport:-no VFIOD_REPORT}; vfiod's main thread (strace): $got; vfiod's log: '${vready#*: sandbox }'"
        [[ ! -s $work/strace.txt ]] || indent "strace: " <"$work/strace.txt"
        [[ ! -s $work/strace.err ]] || indent "strace: " <"$work/strace.err"
    fi
    [[ $vready != *"(console)" ]] ||
        note "vfiod logged the console as the channel: the serial line (printed first) won the race; the vsock copy was dropped without a log line"
else
    nok "2: create's output has a ready_report ($(tr -d '\n' <"$rep" | head -c 200))"
fi

# === 3. the sandbox network ==================================================
jrn=$state/journal.json
subnet=$(py "$jrn" "[s.get('subnet') for s in d.get('sandboxes', []) if s['id'] == '$sb_id'][0]") || subnet=''
tap=$(py "$jrn" "[s.get('tap') for s in d.get('sandboxes', []) if s['id'] == '$sb_id'][0]") || tap=''
mac=$(py "$jrn" "[s.get('mac') for s in d.get('sandboxes', []) if s['id'] == '$sb_id'][0]") || mac=''
cid=$(py "$jrn" "[s.get('cid') for s in d.get('sandboxes', []) if s['id'] == '$sb_id'][0]") || cid=''
host_ip='' guest_ip='' prefix=''
if [[ -n $subnet && $subnet != null ]]; then
    # (a here-string: L1's chroot has no /dev/fd for <(...))
    read -r host_ip guest_ip prefix <<<"$(python3 -c '
import ipaddress, sys
n = ipaddress.ip_network(sys.argv[1], strict=False)
h = list(n.hosts())
print(h[0], h[1], n.prefixlen)' "$subnet")"
fi
note "journal: sandbox $sb_id subnet $subnet tap $tap mac $mac cid $cid -> host $host_ip, guest $guest_ip/$prefix"
if [[ -s $rep ]]; then
    gnet=$(py "$rep" "d['net']['ip']") || gnet=''
    gif=$(py "$rep" "d['net']['if']") || gif=''
    gmac=$(py "$rep" "d['net']['mac']") || gmac=''
else
    gnet='' gif='' gmac=''
fi
[[ -n $guest_ip && $gnet == "$guest_ip/$prefix" ]]
check $? "3: ready_report.net.ip $gnet = the guest address of the sandbox's subnet $subnet ($guest_ip/$prefix)"
[[ -n $mac && ${gmac,,} == "${mac,,}" ]]
check $? "3: the guest configured the sandbox NIC (TAP-backed virtio-net, mac $mac): net.if $gif, net.mac $gmac$([[ ${gmac,,} != "${mac_a,,}" || -z $mac_a ]] || echo " = the passed-through $A's mac")"

if [[ -n $tap ]] && ip link show dev "$tap" >/dev/null 2>&1; then
    taddr=$(ip -o -4 addr show dev "$tap" | awk '{ print $4 }' | tr '\n' ' ')
    towner=$(cat "/sys/class/net/$tap/owner" 2>/dev/null)
    tstate=$(cat "/sys/class/net/$tap/operstate" 2>/dev/null)
    [[ " $taddr" == *" $host_ip/$prefix "* ]]
    check $? "3: TAP $tap exists in L1 with the host address $host_ip/$prefix (has: ${taddr% }; owner uid $towner, $tstate)"
else
    nok "3: TAP ${tap:-(none in the journal)} exists in L1"
fi
nft list table inet vfiod >"$work/nft-table.txt" 2>"$work/nft.err"
nrc=$?
if [[ $nrc -eq 0 ]]; then
    nelems=$(grep -a -E "\"?$tap\"? \. $guest_ip" "$work/nft-table.txt" | sed 's/^[[:space:]]*//' | head -n 2 | tr '\n' ' ')
    [[ -n $tap && -n $nelems ]]
    check $? "3: nft list table inet vfiod holds $tap . $guest_ip (${nelems% })"
    [[ -n $nelems ]] || indent "nft: " <"$work/nft-table.txt"
else
    indent "nft: " <"$work/nft.err"
    nok "3: nft list table inet vfiod (exit $nrc)"
fi
if [[ -n $guest_ip ]]; then
    t0=$(now_ms)
    # (the guest answers: L2's TCG, so the reply wait scales)
    ping -c 3 -W "$(scaled_l2 5)" "$guest_ip" >"$work/ping.out" 2>&1
    prc=$?
    summary=$(grep -a -E 'packets transmitted|rtt' "$work/ping.out" | tr '\n' ';')
    [[ $prc -eq 0 ]]
    check $? "3: ping -c 3 $guest_ip from L1 answers (exit $prc, $(ms_since "$t0") ms: $summary)"
    [[ $prc -eq 0 ]] || {
        indent "ping: " <"$work/ping.out"
        ip neigh show dev "$tap" 2>&1 | indent "neigh: "
        ip -s link show dev "$tap" 2>&1 | indent "link: "
        l2_log_tail "ping"
    }
else
    nok "3: ping the guest (no guest address known)"
fi

# === 4. QEMU unprivileged =====================================================
# QEMU runs in $QEMU_USER's group with a uid of its own from [qemu]
# uid_range (the default range, 1879113728 and up), never root.
qemu_gid=$(id -g "$QEMU_USER")
qemu_uid=''
if [[ -n $qpid ]] && alive "$qpid"; then
    uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$qpid/status")
    gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$qpid/status")
    groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$qpid/status")
    capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$qpid/status")
    qemu_uid=${uids%% *}
    [[ $qemu_uid -ge 1879113728 && $uids == "$qemu_uid $qemu_uid $qemu_uid $qemu_uid" &&
        $gids == "$qemu_gid $qemu_gid $qemu_gid $qemu_gid" && $capeff == 0000000000000000 ]]
    check $? "4: QEMU pid $qpid runs as uid $qemu_uid ([qemu] uid_range) in $QEMU_USER's group: Uid $uids, Gid $gids, Groups [${groups# }], CapEff $capeff"
else
    nok "4: QEMU (pid ${qpid:-?}) runs"
fi
node=/dev/vfio/$group
if [[ -e $node ]]; then
    nown=$(stat -c '%u:%G %a' "$node")
    [[ -n $qemu_uid && $(stat -c '%u %a' "$node") == "$qemu_uid 600" ]]
    check $? "4: $node belongs to the sandbox's QEMU uid only ($nown)"
else
    nok "4: $node exists"
fi
note "sandbox dir: $(stat -c '%n %U:%G %a' "$sb_dir" 2>&1); files: $(stat -c '%n(%U %A)' "$sb_dir"/* 2>&1 | sed 's|.*/||' | tr '\n' ' ')"

# === 5. restart vfiod while the sandbox runs, then delete =====================
save_qemu_log
old_vfiod=$g_vfiod_pid
t0=$(now_ms)
g_stop_vfiod
src=$?
t_stop=$(ms_since "$t0")
q_alive=no
[[ -z $qpid ]] || ! alive "$qpid" || q_alive=yes
[[ $src -eq 0 && $q_alive == yes ]]
check $? "5: vfiod (pid $old_vfiod) exits on SIGTERM in $t_stop ms$([[ $src -eq 0 ]] || echo ' (needed SIGKILL)'); QEMU pid $qpid still runs: $q_alive"
off=$(stat -c %s "$vlog")
t0=$(now_ms)
if g_start_vfiod; then
    t_start=$(ms_since "$t0")
    tail -c +$((off + 1)) "$vlog" | grep -a -E 'reconcile|adopt|sandbox' | indent "vfiod (restart): "
    vfioctl sandbox list --json
    cp "$work/out" "$work/list-after.json"
    lst=$(py "$work/list-after.json" "' '.join('%s:%s:%s' % (s['id'], s['state'], s['pid']) for s in d)")
    [[ $vrc -eq 0 && $lst == "$sb_id:running:$qpid" ]]
    check $? "5: after the restart (vfiod pid $g_vfiod_pid, API up in $t_start ms) sandbox list --json shows $sb_id running with the same pid $qpid (got: ${lst:-exit $vrc})"
    tap_after=no
    [[ -z $tap ]] || ! ip link show dev "$tap" >/dev/null 2>&1 || tap_after=yes
    nft_after=no
    nft list table inet vfiod >"$work/nft-after.txt" 2>&1 &&
        grep -q -E "\"?$tap\"? \. $guest_ip" "$work/nft-after.txt" && nft_after=yes
    [[ $tap_after == yes && $nft_after == yes ]]
    check $? "5: after the restart the sandbox keeps its TAP ($tap: $tap_after) and its nft entry $tap . $guest_ip ($nft_after)"
    [[ $nft_after == yes ]] || indent "nft: " <"$work/nft-after.txt"
else
    nok "5: vfiod starts again and answers within 10 s"
fi

save_qemu_log
off=$(stat -c %s "$vlog")
t0=$(now_ms)
# (a delete waits for the graceful stop, then QEMU's quit, 5 s, then SIGKILL)
VFIOCTL_TIMEOUT=$((STOP_TIMEOUT + 90)) vfioctl sandbox delete "$sb_id"
t_del=$(ms_since "$t0")
show_call sandbox delete "$sb_id"
dlog=$(tail -c +$((off + 1)) "$vlog" | grep -a "sandbox $sb_id" || true)
[[ -z $dlog ]] || indent "vfiod (delete): " <<<"$dlog"
sleep 0.5 # let tail copy the guest's last lines
poweroff_line=$(grep -a -o 'VFIOD_POWEROFF {.*}' "$serial_copy" 2>/dev/null | tail -n 1 | tr -d '\r')
escalated=no
grep -q 'did not power off' <<<"$dlog" && escalated=yes
# vfiod sends QMP system_powerdown (ACPI button) and then Ctrl-Alt-Del
# (SIGINT to PID 1): either is guest-init's graceful power-off.
nobutton=$(grep -a -o 'guest-init: warning: no ACPI power button[^\r]*' "$serial_copy" 2>/dev/null | head -n 1)
# vfiod's own account: "stopping" -> "QEMU ... exited" (log timestamps)
stop_ms=$(python3 -c '
import re, sys
t = {}
for line in sys.stdin:
    m = re.search(r"(\d+):(\d+):(\d+\.\d+): sandbox \S+: (stopping|QEMU)", line)
    if m and m.group(4) not in t:
        t[m.group(4)] = (int(m.group(1)) * 60 + int(m.group(2))) * 60 + float(m.group(3))
print(round((t["QEMU"] - t["stopping"]) * 1000) if len(t) == 2 else "?")' <<<"$dlog")
[[ $vrc -eq 0 && $t_del -lt $((STOP_TIMEOUT * 1000)) && $escalated == no &&
    ($poweroff_line == *'"power-button"'* || $poweroff_line == *'"signal:SIGINT"'*) ]]
del_ok=$?
check $del_ok "5: sandbox delete $sb_id completes in $t_del ms (guest power-off to QEMU exit $stop_ms ms; stop_timeout ${STOP_TIMEOUT} s; exit $vrc), gracefully: guest '${poweroff_line:-no VFIOD_POWEROFF line}', escalated to quit: $escalated; guest-init watched the power button: $([[ -z $nobutton ]] && echo yes || echo "no ($nobutton)")"
[[ $del_ok -eq 0 ]] || l2_log_tail "delete (graceful power-off)"
[[ $poweroff_line != *SIGINT* ]] ||
    note "the guest powered off on Ctrl-Alt-Del (SIGINT), which vfiod sends right after system_powerdown, not on the ACPI button"

q_gone=yes
[[ -z $qpid ]] || ! alive "$qpid" || q_gone=no
da=$(driver_of "$A") db=$(driver_of "$B") oa=$(override_of "$A") ob=$(override_of "$B")
[[ $q_gone == yes && $da == "$drv_a" && $db == "$drv_b" && $oa == "(null)" && $ob == "(null)" ]]
check $? "5: QEMU gone ($q_gone); $A back on $da (want $drv_a), $B on $db (want $drv_b), overrides $oa/$ob"
tap_gone=yes
[[ -z $tap ]] || ! ip link show dev "$tap" >/dev/null 2>&1 || tap_gone=no
nft_gone=yes
nft list table inet vfiod >/dev/null 2>&1 && nft_gone=no
vfioctl sandbox list --json
left=$(py "$work/out" "len(d)")
[[ $tap_gone == yes && $nft_gone == yes && $left == 0 ]]
check $? "5: TAP $tap gone ($tap_gone), nft table inet vfiod gone ($nft_gone), sandbox list empty ($left left)"
[[ $nft_gone == yes ]] || nft list table inet vfiod 2>&1 | indent "nft: "

note "L2 serial log: $(wc -l <"$serial_copy" 2>/dev/null || echo 0) lines; guest kernel's last line: $(grep -a -E '^\[ *[0-9]+\.[0-9]+\]' "$serial_copy" | tail -n 1 | tr -d '\r')"
note "lab-guest in L1 took $(ms_since "$t_all") ms"
