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
#   1. capabilities; the sandbox is created through vfiod-openshell-driver
#      (issue 15): the driver runs here against this vfiod, and its test
#      gRPC client (openshell-driver/test_client.py) asks for
#      resource_requirements.gpu.count = 1 and the lab's Debian workload
#      root as the image (read-only, with an overlay disk the driver makes):
#      vfiod gives it the stand-in group (devices = the stand-in's BDFs),
#      GetSandbox turns Ready once guest-init reported ready
#   2. the ready report (over vsock): e1000e bound in L2, staged modules
#      loaded, timings
#   3. the guest's address = the sandbox /30's guest address; TAP, nft table,
#      ping from L1
#   4. QEMU runs as a uid of its own ([qemu] uid_range) in nobody's group,
#      /dev/vfio/<group> belongs to that uid
#   5. vfiod restart: the sandbox is adopted (same pid); the driver's
#      DeleteSandbox powers the guest off by the ACPI button; devices, TAP,
#      nft table and the overlay disk are back/gone
#   6. the real driver path: a second sandbox gets the display-class
#      stand-in (QEMU's std VGA, presented to L2 as an NVIDIA H200 by the
#      test-only [qemu] test_present_as), a plain Debian root disk with no
#      NVIDIA file, and the NVIDIA driver layer ([qemu] driver_layer,
#      a read-only disk with serial vfiod-driver). The real nvidia.ko of the layer (vermagic = the guest
#      kernel) probes the stand-in and fails; guest-init reports that with
#      the BDF, the kernel's NVRM lines, the CUDA probe's result and the
#      output of the layer's nvidia-smi run in the Debian root, then powers
#      off; the stand-in goes back to bochs-drm in L1.
# Output: "ok - ..." / "not ok - ..." per check with what was measured,
# "# ..." details, "# lab-guest: N passed, N failed". Exit 0 only if all
# passed. On failure: vfiod's log, the L2 serial log, QEMU's log. Every wait
# for L2 (ready, vsock report, ping, graceful stop) is scaled by the L2 load
# factor measured at the start (l1-lib.sh, calibrate) and prints the tail of
# the guest's serial log when it runs out.
#
# Expects from BUILD_DIR: vfiod/vfiod, vfiod/vfioctl; from CACHE_DIR:
# vmlinuz, guest-staged.cpio.gz, and for check 6 gpu.env with the files it
# names (the driver layer, the workload root, guest-gpu.cpio.gz; made on the
# host by run-lab-guest.sh and prep-gpu.sh; both dirs are read-only here).
# LAB_GUEST_MODULES: the staged module order (space-separated; read from the
# image's manifest when unset). LAB_GPU_TIMEOUT: check 6's wait for the
# guest's verdict on a quiet host (default 600 s; scaled by the L2 factor).
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
# Check 6: the display-class stand-in (run-l1.sh: QEMU's std VGA behind its
# own root port) and the IDs vfiod presents it with in L2 (an NVIDIA H200,
# which the pinned 550 driver supports).
V=${LAB_DEV_GPU:-0000:03:00.0}
PRESENT_AS=10de:2335
GPU_TIMEOUT_BASE=${LAB_GPU_TIMEOUT:-600}
GPU_TIMEOUT=$GPU_TIMEOUT_BASE
GPU_MEMORY=${LAB_GPU_MEMORY:-768}
if [[ -z ${LAB_GPU_LAYER:-} && -f $cache/gpu.env ]]; then
    # shellcheck source=/dev/null
    . "$cache/gpu.env"
fi
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
# dep_order LOADED STAGED: LOADED (space-separated module names, as
# guest-init reports them) holds exactly the STAGED modules, each after
# every module it depends on (the guest kernel's modules.dep): guest-init
# loads independent modules at the same time, so the order between
# independent ones is not fixed.
dep_order() {
    python3 - "$1" "$2" "$cache/kernel/lib/modules/$LAB_KERNEL_RELEASE/modules.dep" <<'EOF'
import os, sys
loaded, staged = sys.argv[1].split(), sys.argv[2].split()
name = lambda p: os.path.basename(p).split('.ko')[0].replace('-', '_')
deps = {}
with open(sys.argv[3]) as f:
    for line in f:
        mod, _, rest = line.partition(':')
        deps[name(mod)] = [name(d) for d in rest.split()]
pos = {m.replace('-', '_'): i for i, m in enumerate(loaded)}
ok = sorted(loaded) == sorted(staged) and all(pos[d] < i for m, i in pos.items() for d in deps.get(m, []) if d in pos)
sys.exit(0 if ok else 1)
EOF
}

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

# --- vfiod-openshell-driver (check 1's sandbox is made through it) ----------
DRIVER=$build/openshell-driver/vfiod-openshell-driver
OSD_CLIENT=$here/../../openshell-driver/test_client.py
dsock=$work/drv/driver.sock
dlog=$work/driver.log
d_pid=''
IMAGE_REF=lab/workload-root:bookworm
d_images=$work/images
d_overlays=$work/overlays
d_img=$d_images/lab_workload-root_bookworm.img
osd_id=4c1ab0e2-5d6f-4a7b-9c8d-0e1f2a3b4c5d
# osd RPC [ARG]: one call of the driver's test client (JSON on stdout);
# OSD_CLIENT_TIMEOUT: its deadline in seconds.
osd() { PYTHONPATH=$build/openshell-driver PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$OSD_CLIENT" "$dsock" "$@" 2>&1; }
# jget JSON PATH: a field (dots; a number indexes a list), "" when absent.
jget() {
    python3 -c 'import json, sys
j = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    if isinstance(j, list) and k.isdigit() and int(k) < len(j): j = j[int(k)]
    elif isinstance(j, dict): j = j.get(k)
    else: j = None
print("" if j is None else (json.dumps(j) if isinstance(j, (dict, list)) else j))' "$1" "$2" 2>/dev/null
}
start_driver() {
    PYTHONDONTWRITEBYTECODE=1 "$DRIVER" --socket "$dsock" --vfiod-socket "$sock" --image-dir "$d_images" \
        --overlay-dir "$d_overlays" --overlay-size 256Mi --call-timeout 1800 </dev/null >>"$dlog" 2>&1 &
    d_pid=$!
    local t0 _
    t0=$(now_ms)
    while (($(now_ms) - t0 < $(scaled 60) * 1000)); do
        grep -q 'serving openshell.compute.v1' "$dlog" 2>/dev/null && [[ -S $dsock ]] && return 0
        alive "$d_pid" || return 1
        nap 0.2
    done
    return 1
}
stop_driver() { # SIGTERM; 0 when it exits 0 within 20 s
    local _ rc
    [[ -n $d_pid ]] || return 0
    kill -TERM "$d_pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$d_pid" || break; nap 0.2; done
    alive "$d_pid" && { kill -KILL "$d_pid" 2>/dev/null; wait "$d_pid" 2>/dev/null; d_pid=''; return 1; }
    wait "$d_pid"
    rc=$?
    d_pid=''
    return "$rc"
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

sb_id='' qpid='' sb_dir='' tail_pid='' tap='' group='' drv_a='' drv_b='' drv_v=''
g_id='' g_qpid='' g_tail='' g_serial='' g_qemu_log=''
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
    stop_driver || note "vfiod-openshell-driver did not exit 0 on SIGTERM"
    g_stop_vfiod || note "vfiod did not exit within 10 s of SIGTERM; killed it"
    if [[ -n $qpid ]] && alive "$qpid"; then
        note "QEMU (pid $qpid) still runs after the checks: killing it"
        kill -KILL "$qpid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$qpid" || break; sleep 0.1; done
    fi
    if [[ -n ${g_qpid:-} ]] && alive "$g_qpid"; then
        note "the GPU sandbox's QEMU (pid $g_qpid) still runs after the checks: killing it"
        kill -KILL "$g_qpid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$g_qpid" || break; sleep 0.1; done
    fi
    local t
    for t in "$tail_pid" "${g_tail:-}"; do
        [[ -n $t ]] || continue
        sleep 0.5
        kill "$t" 2>/dev/null || true
        wait "$t" 2>/dev/null || true
    done
    if [[ $fail -gt 0 || $rc -ne 0 ]]; then
        if [[ -s $vlog ]]; then
            note "vfiod log ($vlog):"
            indent "" <"$vlog"
        fi
        if [[ -s $dlog ]]; then
            note "vfiod-openshell-driver log ($dlog):"
            indent "driver: " <"$dlog"
        fi
        if [[ -s $serial_copy ]]; then
            note "L2 serial log ($sb_id):"
            indent "L2: " <"$serial_copy"
        fi
        if [[ -s $qemu_log_copy ]]; then
            note "QEMU log ($sb_id):"
            indent "qemu: " <"$qemu_log_copy"
        fi
        if [[ -s ${g_serial:-} ]]; then
            note "L2 serial log of the GPU sandbox (${g_id:-}):"
            indent "L2 gpu: " <"$g_serial"
        fi
        if [[ -s ${g_qemu_log:-} ]]; then
            note "QEMU log (${g_id:-}):"
            indent "qemu gpu: " <"$g_qemu_log"
        fi
        note "dmesg (last 30 lines):"
        dmesg | tail -n 30 | indent "dmesg: "
    fi
    # Put the devices back by hand if vfiod did not (L1 only, see the guard).
    local b want
    for b in "$B" "$A" "$V"; do
        [[ -n $drv_a && -n $drv_b && -e $dev/$b ]] || continue
        case $b in "$A") want=$drv_a ;; "$V") want=${drv_v:-} ;; *) want=$drv_b ;; esac
        [[ -n $want ]] || continue
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
GPU_TIMEOUT=$(scaled_l2 "$GPU_TIMEOUT_BASE")
note "$calib_msg; stop_timeout $STOP_TIMEOUT s; the GPU sandbox's verdict within $GPU_TIMEOUT s"
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
drv_v=$(driver_of "$V")
for b in $(cd "$dev" && echo *); do
    [[ $(cat "$dev/$b/class" 2>/dev/null) == 0x03* ]] || continue
    note "display function $b: $(hexid "$b") class $(cat "$dev/$b/class") on $(driver_of "$b"), boot_vga $(cat "$dev/$b/boot_vga" 2>/dev/null), IOMMU group $(group_of "$b") [$(ls "$dev/$b/iommu_group/devices" | tr '\n' ' ')]"
done

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
# exactly the stand-in pair (1af4:* would also cover L1's own virtio-9p
# device), and QEMU's std VGA: the display-class stand-in $V (the same
# IDs also match L1's console, 0000:00:02.0, which vfiod refuses: it is
# the boot VGA device)
ids=$(hexid "$A");$(hexid "$B");$(hexid "$V")
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
# test only: the display-class stand-in appears in L2 as an NVIDIA H200
test_present_as=$PRESENT_AS
$([[ -z ${LAB_GPU_LAYER:-} ]] || printf '# attached read-only (serial vfiod-driver) to GPU sandboxes with a root disk (check 6)\ndriver_layer=%s' "$LAB_GPU_LAYER")
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

# The driver beside vfiod, as root (vfiod opens its disks with its rights):
# the lab's Debian workload root as the prepared image of $IMAGE_REF (a
# sparse copy in L1's tmpfs, as check 6's root disk, which reuses it), overlays in $d_overlays.
mkdir -p "$work/drv" "$d_images" "$d_overlays"
[[ ! -e ${LAB_GPU_ROOT:-/nonexistent} ]] || cp --sparse=always "$LAB_GPU_ROOT" "$d_img"
d_img_mtime=$(stat -c %y "$d_img" 2>/dev/null)
t0=$(now_ms)
if start_driver; then
    ok "L1: vfiod-openshell-driver serves on $dsock in $(ms_since "$t0") ms (image $IMAGE_REF: $d_img, $(du -k "$d_img" | cut -f1) kB used; overlays in $d_overlays)"
else
    nok "L1: vfiod-openshell-driver starts (image ${LAB_GPU_ROOT:-none: gpu.env}): $(tail -n 5 "$dlog" 2>/dev/null | tr '\n' ' ')"
fi

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
# Through the driver: gpu.count 1 (vfiod's gpus 1) and the image (its
# prepared disk read-only, an overlay disk per sandbox), no command
# (guest-init reports ready and waits). CreateSandbox returns once QEMU
# runs; GetSandbox turns Ready when guest-init reported ready.
osd_spec='{"id":"'$osd_id'","name":"lab-gpu","workspace":"lab","spec":{"resourceRequirements":{"gpu":{"count":1}},"template":{"image":"'$IMAGE_REF'"}}}'
osd_create=$(OSD_CLIENT_TIMEOUT=$(scaled 600) osd create "$osd_spec")
osd_get='' t_ready=''
if [[ $(jget "$osd_create" ok) == True ]]; then
    while (($(now_ms) - t0 < READY_TIMEOUT * 1000)); do
        osd_get=$(OSD_CLIENT_TIMEOUT=$(scaled 60) osd get "$osd_id")
        [[ $(jget "$osd_get" resp.sandbox.status.conditions.0.status) == True ]] && { t_ready=$(ms_since "$t0"); break; }
        [[ $(jget "$osd_get" resp.sandbox.status.conditions.0.reason) == Starting ]] || break # Failed, WorkloadExited...
        nap 2
    done
fi
note "driver: CreateSandbox -> $osd_create; GetSandbox -> $osd_get"
vfioctl sandbox show "$osd_id" --json
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
if [[ $vrc -eq 0 && -n $sb_id && -n $t_ready ]]; then
    devs=$(py "$work/create.json" "' '.join(d['devices'])")
    ready=$(py "$work/create.json" "d['ready']")
    ready_ms=$(py "$work/create.json" "d['ready_ms']")
    [[ $devs == "$A $B" && $ready == true && $(jget "$osd_get" resp.sandbox.status.instanceId) == "$sb_id" ]]
    check $? "1: vfiod-openshell-driver CreateSandbox (gpu.count 1, image $IMAGE_REF) -> vfiod's $sb_id (instance_id $(jget "$osd_get" resp.sandbox.status.instanceId)), pid $qpid, devices [$devs] (the stand-in's group: want [$A $B]), GetSandbox Ready True after $t_ready ms (vfiod: ready after ${ready_ms} ms; limit $READY_TIMEOUT s)"
    tr '\0' '\n' <"/proc/$qpid/cmdline" >"$work/qemu-argv.txt" 2>/dev/null
    ovl=$d_overlays/$osd_id.ext4
    grep -a -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-root,format=raw,readonly=on$' "$work/qemu-argv.txt" &&
        grep -a -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-overlay,format=raw$' "$work/qemu-argv.txt" &&
        grep -a -q 'vfiod.overlay=virtio:vfiod-overlay' "$work/qemu-argv.txt" && [[ $(stat -c '%a %s' "$ovl" 2>&1) == "600 268435456" ]]
    check $? "1: the image is the root disk read-only (readonly=on) with the driver's overlay disk $osd_id.ext4 ($(stat -c '%a %s' "$ovl" 2>&1)) as vfiod.overlay=virtio:vfiod-overlay; guest-init's root: $(py "$work/create.json" "(lambda r: (json.loads(r) if isinstance(r, str) else r).get('root'))(d['ready_report'])")"
    l=$(OSD_CLIENT_TIMEOUT=$(scaled 60) osd list)
    [[ $(jget "$l" resp.sandboxes.0.id) == "$osd_id" && -z $(jget "$l" resp.sandboxes.1) ]]
    check $? "1: ListSandboxes through the driver: $(jget "$l" resp.sandboxes.0.id) ($(jget "$l" resp.sandboxes.0.name)), $(jget "$l" resp.sandboxes.0.status.conditions.0.reason)"
else
    show_call sandbox show "$osd_id" --json
    nok "1: vfiod-openshell-driver CreateSandbox (gpu.count 1, image $IMAGE_REF) succeeds and GetSandbox turns Ready (create: $(jget "$osd_create" ok) $(jget "$osd_create" code) $(jget "$osd_create" message); Ready reason $(jget "$osd_get" resp.sandbox.status.conditions.0.reason) after ${t_create} ms; $READY_TIMEOUT_BASE s x L2 factor $L2_FACTOR)"
    l2_log_tail "create through the driver"
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
    [[ -n $mods ]] && dep_order "$mods" "$staged"
    check $? "2: ready_report.modules = the staged modules, each after its dependencies (${mods:-none})"

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
osd_del=$(OSD_CLIENT_TIMEOUT=$((STOP_TIMEOUT + 90)) osd delete "$osd_id")
t_del=$(ms_since "$t0")
vrc=0
[[ $(jget "$osd_del" resp.deleted) == True ]] || vrc=1
note "driver: DeleteSandbox $osd_id -> $osd_del"
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
check $del_ok "5: the driver's DeleteSandbox of $osd_id ($sb_id) completes in $t_del ms (guest power-off to QEMU exit $stop_ms ms; stop_timeout ${STOP_TIMEOUT} s; exit $vrc), gracefully: guest '${poweroff_line:-no VFIOD_POWEROFF line}', escalated to quit: $escalated; guest-init watched the power button: $([[ -z $nobutton ]] && echo yes || echo "no ($nobutton)")"
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
[[ ! -e $d_overlays/$osd_id.ext4 && -z $(ls -A "$d_overlays" 2>/dev/null) && -n $d_img_mtime && $(stat -c %y "$d_img") == "$d_img_mtime" ]]
check $? "5: the sandbox's overlay disk is gone with it ($d_overlays: [$(ls -A "$d_overlays" 2>/dev/null | tr '\n' ' ')]); the image was never written (mtime $(stat -c %y "$d_img" 2>&1))"
stop_driver
check $? "5: vfiod-openshell-driver exits 0 on SIGTERM"


# === 6. the real driver path: nvidia.ko probes the display-class stand-in ====
# A second sandbox as a client with a GPU host would start it: a plain
# Debian root disk (no NVIDIA file), the stand-in passed through (shown in L2
# as 10de:2335 by [qemu] test_present_as), and vfiod's [qemu] driver_layer
# attached read-only. The layer's real nvidia.ko (built for the guest
# kernel) runs its init and probes the stand-in, which is no GPU: the probe
# fails, finit_module() returns ENODEV, and guest-init must say so (the
# BDF, the NVRM lines, the CUDA probe's result, nvidia-smi's output) and
# power off: not hang, not report ready.
g_id='' g_qpid='' g_dir='' g_tail='' g_serial=$work/l2-gpu-serial.log g_qemu_log=$work/qemu-gpu.log
gpu_ok=1
for f in "${LAB_GPU_LAYER:-/nonexistent}" "${LAB_GPU_ROOT:-/nonexistent}" "${LAB_GPU_INITRD:-/nonexistent}" "${LAB_GPU_LAYER_TREE:-/nonexistent}"; do
    [[ -e $f ]] || { nok "6: $f exists (made on the host by prep-gpu.sh: gpu.env, LAB_GPU_*)"; gpu_ok=0; }
done
[[ -e $dev/$V ]] || { nok "6: the display-class stand-in $V exists in L1"; gpu_ok=0; }

if [[ $gpu_ok -eq 1 ]]; then
    rel=$LAB_KERNEL_RELEASE
    vclass=$(cat "$dev/$V/class")
    vgroup=$(group_of "$V")
    vmembers=$(ls "$dev/$V/iommu_group/devices" | tr '\n' ' ')
    [[ $(hexid "$V") == 1234:1111 && $vclass == 0x030000 && $vmembers == "$V " && $(cat "$dev/$V/boot_vga") == 0 && -n $drv_v && $drv_v != "(none)" ]]
    check $? "6: L1: the stand-in $V is QEMU's std VGA ($(hexid "$V"), class $vclass) alone in IOMMU group $vgroup [${vmembers% }], not the boot VGA device (boot_vga $(cat "$dev/$V/boot_vga")), on its host driver $drv_v"

    # The modules the guest loads before nvidia.ko: the kernel's own
    # (byte for byte the Debian package's), vermagic = the guest kernel; and
    # the layer's NVIDIA modules, built for the same kernel, of the pinned
    # version.
    gx=$work/gpu-initrd
    rm -rf "$gx"
    mkdir -p "$gx"
    zcat "$LAB_GPU_INITRD" | bsdtar -xf - -C "$gx" 2>"$work/bsdtar.err"
    mods_ok=0 mods_bad=() staged_gpu=()
    while read -r kw path _; do
        [[ $kw == module ]] || continue
        name=${path##*/} name=${name%.ko*}
        staged_gpu+=("$name")
        vm=$(modinfo -F vermagic "$gx$path" 2>/dev/null | awk '{ print $1 }')
        if [[ $vm == "$rel" ]] && cmp -s "$gx$path" "$cache/kernel$path"; then
            mods_ok=$((mods_ok + 1))
        else
            mods_bad+=("$name(vermagic ${vm:-?}$(cmp -s "$gx$path" "$cache/kernel$path" || echo ', not the kernel package'"'"'s file'))")
        fi
    done <"$gx/etc/vfiod/manifest"
    [[ ${#staged_gpu[@]} -gt 0 && ${#mods_bad[@]} -eq 0 && " ${staged_gpu[*]} " == *" drm "* && " ${staged_gpu[*]} " == *" video "* && " ${staged_gpu[*]} " == *" erofs "* && " ${staged_gpu[*]} " != *nvidia* ]]
    check $? "6: the GPU image stages ${#staged_gpu[@]} modules, $mods_ok of them the Debian kernel package's own with vermagic $rel (drm for nvidia.ko, video for nvidia-modeset.ko, erofs for the layer; no NVIDIA module: they come from the layer)${mods_bad:+; bad: ${mods_bad[*]}}"
    lmods=$LAB_GPU_LAYER_TREE/lib/modules/$rel/updates
    lv=''
    for m in nvidia nvidia-modeset nvidia-uvm; do
        lv+="$m: $(modinfo -F vermagic "$lmods/$m.ko" 2>/dev/null | awk '{ print $1 }') $(modinfo -F version "$lmods/$m.ko" 2>/dev/null) depends [$(modinfo -F depends "$lmods/$m.ko" 2>/dev/null)]; "
    done
    [[ $(modinfo -F vermagic "$lmods/nvidia.ko" 2>/dev/null | awk '{ print $1 }') == "$rel" &&
        $(modinfo -F version "$lmods/nvidia.ko" 2>/dev/null) == "$LAB_GPU_DRIVER_VERSION" ]]
    check $? "6: the driver layer ${LAB_GPU_LAYER_KEY:0:12}... holds the real NVIDIA $LAB_GPU_DRIVER_VERSION modules for $rel: ${lv%; }"
    fw_layer=$(cd "$LAB_GPU_LAYER_TREE/lib/firmware/nvidia/$LAB_GPU_DRIVER_VERSION" 2>/dev/null && echo gsp_*.bin)

    # The root disk, writable (vfiod opens it read-write for the client): a
    # sparse copy in L1's tmpfs.
    groot=$work/workload-root.ext4
    # (the copy check 1's driver used as its image, unchanged: check 5)
    mv "$d_img" "$groot" 2>/dev/null || cp --sparse=always "$LAB_GPU_ROOT" "$groot"
    note "workload root: $LAB_GPU_ROOT ($(du -k "$groot" | cut -f1) kB used of $(($(stat -c %s "$groot") / 1048576)) MiB): $(sed -n 's/^PRETTY_NAME=//p' "${LAB_GPU_ROOT%/*}/os-release" 2>/dev/null | tr -d '"'), $(wc -l <"${LAB_GPU_ROOT%/*}/packages.txt" 2>/dev/null) packages, NVIDIA files: $(debugfs -R 'ls -l /usr/lib/x86_64-linux-gnu' "$groot" 2>/dev/null | grep -c -i -E 'nvidia|libcuda')"

    off=$(stat -c %s "$vlog")
    t0=$(now_ms)
    vfioctl sandbox create --device "$V" --disk "$groot" --initrd "$LAB_GPU_INITRD" --memory "$GPU_MEMORY" --json
    t_gcreate=$(ms_since "$t0")
    cp "$work/out" "$work/gpu-create.json"
    g_id=$(py "$work/gpu-create.json" "d['id']") || g_id=''
    g_qpid=$(py "$work/gpu-create.json" "d['pid']") || g_qpid=''
    g_dir=$runtime/sandboxes/$g_id
    if [[ $vrc -eq 0 && -n $g_id ]]; then
        tail -n +1 -F "$g_dir/serial.log" >"$g_serial" 2>/dev/null &
        g_tail=$!
        gdevs=$(py "$work/gpu-create.json" "' '.join(d['devices'])")
        [[ $gdevs == "$V" && $(driver_of "$V") == vfio-pci ]]
        check $? "6: sandbox create --device $V --disk (Debian root) --initrd guest-gpu --memory $GPU_MEMORY: $g_id, pid $g_qpid, devices [$gdevs], $V on $(driver_of "$V") (${t_gcreate} ms)"
        # What vfiod told QEMU: the stand-in with NVIDIA IDs, the layer read-only, vfiod.driver.
        tr '\0' '\n' <"/proc/$g_qpid/cmdline" >"$work/gpu-qemu-argv.txt" 2>/dev/null
        vdev=$(grep -a -E "^vfio-pci,host=$V," "$work/gpu-qemu-argv.txt" | head -n 1)
        gappend=$(grep -a -A1 -x -- '-append' "$work/gpu-qemu-argv.txt" | tail -n 1)
        ldrive=$(grep -a -i -E 'read-only=on|readonly=on' "$work/gpu-qemu-argv.txt" | tr '\n' ' ')
        [[ $vdev == *"x-pci-vendor-id=0x${PRESENT_AS%:*}"* && $vdev == *"x-pci-device-id=0x${PRESENT_AS#*:}"* &&
            " $gappend " == *" vfiod.driver=virtio:vfiod-driver "* && " $gappend " == *" vfiod.root=virtio:vfiod-root "* && -n $ldrive ]]
        argv_ok=$?
        check $argv_ok "6: QEMU gets '$vdev', the driver layer read-only (${ldrive% }), and 'vfiod.root=virtio:vfiod-root vfiod.driver=virtio:vfiod-driver' on the guest's command line"
        [[ $argv_ok -eq 0 ]] || indent "argv: " <"$work/gpu-qemu-argv.txt"
    else
        show_call sandbox create --device "$V" --disk "$groot" --initrd "$LAB_GPU_INITRD" --memory "$GPU_MEMORY" --json
        nok "6: sandbox create --device $V --disk (Debian root) (exit $vrc)"
    fi

    # The guest's verdict: VFIOD_FATAL (expected) or VFIOD_READY (a false
    # ready), then its power-off; QEMU's exit.
    verdict='' t_verdict='' t_gone=''
    if [[ -n $g_id ]]; then
        while (($(now_ms) - t0 < GPU_TIMEOUT * 1000)); do
            if grep -a -q -E 'VFIOD_(FATAL|READY) \{' "$g_serial" 2>/dev/null; then
                verdict=$(grep -a -o -E 'VFIOD_(FATAL|READY) \{.*\}' "$g_serial" | head -n 1 | tr -d '\r')
                t_verdict=$(ms_since "$t0")
                break
            fi
            [[ -n $g_qpid ]] && alive "$g_qpid" || break
            nap 2
        done
        # power-off: the QEMU process ends (the guest's own reboot(POWER_OFF))
        t1=$(now_ms)
        while [[ -n $g_qpid ]] && alive "$g_qpid" && (($(now_ms) - t1 < $(scaled_l2 90) * 1000)); do nap 0.5; done
        alive "$g_qpid" || t_gone=$(ms_since "$t0")
        sleep 0.5 # (let tail copy the last lines)
        # The verdict line again, now that the guest is done writing: the
        # first read may have caught it half written (a long VFIOD_FATAL).
        [[ -z $verdict ]] || verdict=$(grep -a -o -E 'VFIOD_(FATAL|READY) \{.*\}' "$g_serial" | head -n 1 | tr -d '\r')
    fi
    fat=$work/gpu-fatal.json
    : >"$fat"
    [[ $verdict != VFIOD_FATAL* ]] || echo "${verdict#VFIOD_FATAL }" >"$fat"
    gbdf=''
    if [[ -s $fat ]] && py "$fat" "1" >/dev/null; then
        note "VFIOD_FATAL: $(tr -d '\n' <"$fat")"
        # The stand-in as L2 sees it: 10de:2335, class 030000
        gbdf=$(py "$fat" "' '.join(p['bdf'] for p in d.get('pci', []) if p['id'] == '$PRESENT_AS')")
        gpci=$(py "$fat" "' '.join('%s=%s/%s:%s' % (p['bdf'], p['id'], p['class'], p['driver']) for p in d.get('pci', []) if p['class'].startswith('03'))")
        err=$(py "$fat" "d['error']")
        [[ -n $gbdf && $gbdf != *" "* && $err == *nvidia.ko*"No such device"* ]]
        check $? "6: no false ready: the guest reports VFIOD_FATAL ${t_verdict} ms after create (limit $GPU_TIMEOUT s): '$err'; L2 sees the stand-in as ${gpci:-nothing of class 03}"
        res=$(py "$fat" "' '.join('%s:%s:%s:%s' % (g['bdf'], g['probe'], g['call'], g['error']) for g in d['cuda']['gpus'])")
        [[ -n $gbdf && $res == "$gbdf:failed:"* && $res != *" "* ]]
        check $? "6: the report names the GPU by its BDF with the failure: cuda.gpus = [$res]"
        nvrm=$(py "$fat" "'|'.join(d['cuda']['nvrm'])")
        [[ $nvrm == *"The NVIDIA probe routine failed for 1 device(s)"* && $nvrm == *"None of the NVIDIA devices were initialized"* ]]
        check $? "6: the report carries the kernel's NVRM lines ($(py "$fat" "len(d['cuda']['nvrm'])") lines): the probe failed for 1 device, none initialised"
        py "$fat" "'\n'.join(d['cuda']['nvrm'])" | indent "NVRM: "
        probe=$(py "$fat" "d['cuda']['probe']")
        pcall=$(py "$fat" "(d['cuda']['probe'] or {}).get('call') or ''")
        perr=$(py "$fat" "(d['cuda']['probe'] or {}).get('error') or ''")
        [[ -n $pcall && $perr == CUDA_ERROR_* ]]
        check $? "6: the CUDA probe ran in the Debian root with the layer's libcuda.so.1 and its result is reported: $pcall -> $perr (cuda.probe $probe, driver version $(py "$fat" "d['cuda']['version']"))"
        smi=$(py "$fat" "d['smi']")
        smi_out=$(py "$fat" "' / '.join(d['smi_output'])")
        [[ $smi == exit:* && $smi != exit:0 && $smi_out == *"NVIDIA driver"* ]]
        check $? "6: the layer's nvidia-smi ran in the Debian root (smi '$smi', persistenced '$(py "$fat" "d['persistenced']")'): '$smi_out'"
        gmods=$(py "$fat" "' '.join(d['modules'])")
        [[ -n $gmods ]] && dep_order "$gmods" "${staged_gpu[*]}"
        check $? "6: the modules before nvidia.ko are the staged ones, each loaded after its dependencies (${gmods:-none}); nvidia.ko is not among them"
        dl=$(py "$fat" "d['driver_layer']")
        fwp=$(py "$fat" "(d['driver_layer'] or {}).get('firmware', {}).get('path') or ''")
        fwf=$(py "$fat" "' '.join((d['driver_layer'] or {}).get('firmware', {}).get('files') or [])")
        [[ $(py "$fat" "d['driver_layer']['version']") == "$LAB_GPU_DRIVER_VERSION" && $(py "$fat" "d['driver_layer']['key']") == "$LAB_GPU_LAYER_KEY" &&
            $(py "$fat" "d['driver_layer']['modules']") == layer && $fwp == "/lib/firmware/nvidia/$LAB_GPU_DRIVER_VERSION" && -n $fwf && $fwf == "$fw_layer" ]]
        check $? "6: the driver layer was mounted and its modules used, and the GSP firmware path is set: $fwp holds [$fwf] (the layer has [$fw_layer]); driver_layer $dl"
        [[ $(py "$fat" "d['kernel']") == "$rel" && $(py "$fat" "d['root']['dev']") == /dev/vd[ab] && $(py "$fat" "d['driver_layer']['dev']") == /dev/vd[ab] &&
            $(py "$fat" "d['root']['dev']") != $(py "$fat" "d['driver_layer']['dev']") ]]
        check $? "6: guest kernel $(py "$fat" "d['kernel']"), root $(py "$fat" "d['root']"), layer on $(py "$fat" "d['driver_layer']['dev']") (found by serial); guest-init timings (guest ms): $(py "$fat" "' '.join('%s=%s' % kv for kv in d['timings_ms'].items())")"
    else
        nok "6: the guest reports the GPU failure (VFIOD_FATAL with details) within $GPU_TIMEOUT s: got '${verdict:0:300}' after ${t_verdict:-?} ms; QEMU $([[ -n $g_qpid ]] && alive "$g_qpid" && echo running || echo gone)"
        [[ $verdict != VFIOD_READY* ]] || note "a FALSE READY: the stand-in is no GPU"
    fi
    # The kernel's own account on the console (not quiet): when nvidia.ko
    # loaded and when its init gave up, on the guest's clock.
    kl=$(grep -a -E '^\[ *[0-9]+\.[0-9]+\] .*(nvidia: loading out-of-tree|NVRM|nvidia-nvlink|nvidia: module|nvidia: probe)' "$g_serial" 2>/dev/null | tr -d '\r')
    if [[ -n $kl ]]; then
        k0=$(head -n 1 <<<"$kl" | sed -E 's/^\[ *([0-9.]+)\].*/\1/') k1=$(tail -n 1 <<<"$kl" | sed -E 's/^\[ *([0-9.]+)\].*/\1/')
        note "L2 kernel: nvidia.ko's first line at ${k0} s, its last at ${k1} s (guest clock):"
        indent "L2: " <<<"$kl"
    fi
    poff=$(grep -a -o 'VFIOD_POWEROFF {.*}' "$g_serial" 2>/dev/null | tail -n 1 | tr -d '\r')
    [[ $poff == *'"reason":"fatal"'* && -n $t_gone ]]
    check $? "6: the guest powers off by itself ('${poff:-no VFIOD_POWEROFF}'), QEMU gone ${t_gone:-never} ms after create"
    [[ -z $g_id || -z $poff || -n $gbdf ]] || l2_log_tail "GPU sandbox"

    # vfiod sees QEMU end and gives the stand-in back to its host driver.
    t1=$(now_ms)
    while ! on_driver "$V" "$drv_v" && (($(now_ms) - t1 < $(scaled 10) * 1000)); do nap 0.1; done
    t_back=$(ms_since "$t1")
    vfioctl sandbox show "$g_id" --json
    gstate=$(py "$work/out" "d['state']") || gstate="?"
    [[ -d $g_dir && -e $g_dir/qemu.log ]] && cp "$g_dir/qemu.log" "$g_qemu_log" 2>/dev/null
    [[ $(driver_of "$V") == "$drv_v" && $(override_of "$V") == "(null)" && -d $dev/$V/drm ]]
    check $? "6: $V back on $(driver_of "$V") (want $drv_v; ${t_back} ms after QEMU's end), override $(override_of "$V"), its DRM device again: $(ls "$dev/$V/drm" 2>/dev/null | tr '\n' ' '); sandbox state $gstate"
    if [[ -n $g_id ]]; then
        vfioctl sandbox delete "$g_id"
        vfioctl sandbox list --json
        [[ $(py "$work/out" "len(d)") == 0 ]]
        check $? "6: sandbox delete $g_id; sandbox list empty"
    fi
fi

note "L2 serial log: $(wc -l <"$serial_copy" 2>/dev/null || echo 0) lines; guest kernel's last line: $(grep -a -E '^\[ *[0-9]+\.[0-9]+\]' "$serial_copy" | tail -n 1 | tr -d '\r')"
note "lab-guest in L1 took $(ms_since "$t_all") ms"
