#!/bin/bash
# l1-lib.sh: shared by checks-l1.sh and demo-l1.sh (sourced, inside L1).
# Usage: . l1-lib.sh BUILD_DIR CACHE_DIR
# shellcheck disable=SC2034  # variables are used by the sourcing scripts

# These scripts write to sysfs: never on the machine that runs the build.
if [[ ${LAB_L1:-} != 1 ]]; then
    echo "${0##*/}: refusing to run outside the lab VM (run it with tests/lab/run-l1.sh)" >&2
    exit 2
fi
[[ $(id -u) -eq 0 ]] || { echo "${0##*/}: must run as root" >&2; exit 2; }

build=$1
cache=$2
VFIOD=$build/vfiod/vfiod
VFIOCTL=$build/vfiod/vfioctl
KERNEL=$cache/vmlinuz
INITRD=$cache/guest.cpio.gz

# The stand-in GPU (run-l1.sh): two functions behind one root port.
A=${LAB_DEV_PRIMARY:-0000:01:00.0}   # e1000e, 8086:10d3 ("the GPU")
B=${LAB_DEV_COMPANION:-0000:01:00.1} # virtio-rng ("its audio function")
# A second, identical pair behind another root port, for a second sandbox.
C=${LAB_DEV2_PRIMARY:-0000:02:00.0}   # e1000e
D=${LAB_DEV2_COMPANION:-0000:02:00.1} # virtio-rng
VFIO_HOLD=$build/tests/lab/vfio-hold
# The wait for an L2 guest's VFIOD_READY line, in seconds, on a quiet host;
# calibrate scales it (and the scripts' other waits for L2) to the load.
READY_TIMEOUT_BASE=${LAB_READY_TIMEOUT:-300}
READY_TIMEOUT=$READY_TIMEOUT_BASE

work=/tmp/vfiod-lab
state=$work/state
runtime=/run/vfiod
sock=$runtime/vfiod.sock
conf=$work/vfiod.conf
vlog=$work/vfiod.log
dev=/sys/bus/pci/devices

now_ms() { date +%s%3N; }
# stamp VAR [CLOCK_VAR]: now, in ms since the epoch, into VAR, and the time
# of day as HH:MM:SS.mmm (how vfiod's log stamps its lines) into CLOCK_VAR.
# No fork: for measurements under load.
stamp() {
    local us=${EPOCHREALTIME/[.,]/} hms
    printf -v "$1" '%s' $((us / 1000))
    if [[ -n ${2:-} ]]; then
        printf -v hms '%(%T)T' $((us / 1000000))
        printf -v "$2" '%s.%03d' "$hms" $((us / 1000 % 1000))
    fi
}

# --- load calibration ----------------------------------------------------------
# L2 runs under TCG inside L1's TCG, so how fast it boots depends on how much
# of the host's 2 cores L1's vCPU threads get: with about one other busy
# core an L2 boot took 335-439 s instead of 141 s. Waits for an L2 guest are
# therefore scaled by a factor measured at the start of each run: calibrate
# times calib_loop (fixed bash arithmetic, no fork, no I/O: one busy L1
# vCPU, as a booting L2 makes) three times and takes the median;
# F = max(1, median / CALIB_REF_MS), rounded up to a tenth, at most
# LAB_LOAD_CAP (default 6). F scales waits for L1's own TCG work (a QEMU
# starting or ending in L1); waits for L2, TCG inside TCG, scale by F^1.5
# (same cap): nested TCG suffers more from load than the loop does. In 6
# loaded runs an L2 boot took 157-259 s per unit of F (335-439 s at F
# 1.4-2.8), against 141 s quiet; 300 s x F^1.5 leaves room for that and for
# load that changes during the minutes of a boot. The limits on vfiod's own
# reactions do not scale.
#
# CALIB_REF_MS: the median on a quiet host. Measured 2026-12-02 on this
# project's 2-core build machine: 10 L1 boots (tests/lab/run-l1.sh with a
# script that sourced this file and called calibrate 6-8 times each, 76
# medians), with the host's CPU use by anything but QEMU sampled every 3 s.
# Quiet spells gave 770-960 ms, about one other busy core 1000-1800 ms.
# The machine was shared with other jobs (never quiet for long), so the
# reference is the low end: an error there only lengthens the waits.
# LAB_LOAD_FACTOR (e.g. 1 or 2.5) sets the factor instead of measuring it.
CALIB_REF_MS=850
CALIB_N=20000
calib_loop() {
    local i s=0
    for ((i = 0; i < CALIB_N; i++)); do s=$(((s * 31 + i) & 65535)); done
}
LOAD_F10=10 # F, for L1's own work, in tenths (10 = 1.0)
L2_F10=10   # F^1.5, for L2 (nested TCG), in tenths
LOAD_FACTOR=1.0 L2_FACTOR=1.0
calib_msg=''
# isqrt N VAR: the integer square root of N into VAR (Newton; no fork).
isqrt() {
    local n=$1 x y
    x=$n y=$(((n + 1) / 2))
    while ((y < x)); do x=$y y=$(((x + n / x) / 2)); done
    printf -v "$2" '%s' "$x"
}
# calibrate: measure, set LOAD_F10/LOAD_FACTOR and L2_F10/L2_FACTOR, scale
# READY_TIMEOUT, and put a one-line account in calib_msg (the scripts print
# it).
calibrate() {
    local r t0 t1 runs=() sorted ms cap=${LAB_LOAD_CAP:-6} f10 g10 root
    [[ $cap =~ ^[1-9][0-9]*$ ]] || cap=6
    for r in 1 2 3; do
        stamp t0
        calib_loop
        stamp t1
        runs+=($((t1 - t0)))
    done
    # the median of three (no <(...): L1's chroot has no /dev/fd)
    read -r -a sorted <<<"$(printf '%s\n' "${runs[@]}" | sort -n | tr '\n' ' ')"
    ms=${sorted[1]}
    f10=$(((ms * 10 + CALIB_REF_MS - 1) / CALIB_REF_MS)) # rounded up
    ((f10 >= 10)) || f10=10
    ((f10 <= cap * 10)) || f10=$((cap * 10))
    calib_msg="calibration: loop took $ms ms (runs: ${runs[*]} ms), reference $CALIB_REF_MS ms"
    if [[ -n ${LAB_LOAD_FACTOR:-} ]]; then
        if [[ $LAB_LOAD_FACTOR =~ ^([0-9]+)(\.([0-9]))?$ ]] && ((10#${BASH_REMATCH[1]} * 10 + 10#${BASH_REMATCH[3]:-0} >= 10)); then
            f10=$((10#${BASH_REMATCH[1]} * 10 + 10#${BASH_REMATCH[3]:-0}))
            calib_msg+="; LAB_LOAD_FACTOR=$LAB_LOAD_FACTOR replaces the measured factor"
        else
            calib_msg+="; LAB_LOAD_FACTOR='$LAB_LOAD_FACTOR' ignored (want a number >= 1, one decimal at most)"
        fi
    fi
    # F^1.5 in tenths = f10 * sqrt(f10 / 10), rounded up
    isqrt $((f10 * 10 * 1000000)) root # sqrt(f10 * 10), times 1000
    g10=$(((f10 * root + 9999) / 10000))
    ((g10 <= cap * 10)) || g10=$((cap * 10))
    ((g10 >= f10)) || g10=$f10
    LOAD_F10=$f10 L2_F10=$g10
    LOAD_FACTOR=$((f10 / 10)).$((f10 % 10))
    L2_FACTOR=$((g10 / 10)).$((g10 % 10))
    READY_TIMEOUT=$(scaled_l2 "$READY_TIMEOUT_BASE")
    calib_msg+=": factor $LOAD_FACTOR for waits on L1's own work, L2 waits scaled by $L2_FACTOR (its 1.5th power, cap $cap): VFIOD_READY within $READY_TIMEOUT s"
}
# scaled N / scaled_l2 N: N (seconds, ms, iterations) times the factor for
# L1's own work / for L2, rounded up.
scaled() { echo $((($1 * LOAD_F10 + 9) / 10)); }
scaled_l2() { echo $((($1 * L2_F10 + 9) / 10)); }

# nap SECONDS: sleep without a fork (read with a timeout on a private FIFO).
nap_fd=
nap() {
    if [[ -z $nap_fd ]]; then
        local f
        f=$(mktemp -u /run/l1-nap.XXXXXX)
        mkfifo -m 600 "$f"
        exec {nap_fd}<>"$f"
        rm -f "$f"
    fi
    read -r -t "$1" -u "$nap_fd" _ || true
}
# on_driver BDF DRIVER: BDF is bound to DRIVER (no fork).
on_driver() { [[ -n $2 && $dev/$1/driver -ef /sys/bus/pci/drivers/$2 ]]; }
driver_of() {
    local l
    l=$(readlink "$dev/$1/driver" 2>/dev/null) || { echo "(none)"; return 0; }
    echo "${l##*/}"
}
override_of() { cat "$dev/$1/driver_override" 2>/dev/null || echo "(unreadable)"; }
group_of() {
    local l
    l=$(readlink "$dev/$1/iommu_group" 2>/dev/null) || { echo "(none)"; return 0; }
    echo "${l##*/}"
}
hexid() {
    local v d
    v=$(<"$dev/$1/vendor") d=$(<"$dev/$1/device")
    echo "${v#0x}:${d#0x}"
}
# alive PID: running and not a zombie
alive() {
    local s
    s=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $s && $s != Z ]]
}

# start_time_of PID: field 22 of /proc/PID/stat (start time in clock ticks
# after boot); with the pid it names one process for good. Empty if gone.
start_time_of() {
    local st f
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    st=${st##*) } # the command name (field 2) may hold blanks and ')'
    read -r -a f <<<"$st"
    echo "${f[19]}" # f[0] is field 3
}

# has_open PID PATH: PID has PATH open (one of its /proc/PID/fd links).
has_open() {
    local fd
    for fd in /proc/"$1"/fd/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "$2" ]] && return 0
    done
    return 1
}

# vmlck_kb PID: VmLck of PID in kB (0 if none or gone): locked memory,
# where vfio's type1 IOMMU driver accounts the pages it pins for DMA.
vmlck_kb() {
    local k v _
    while read -r k v _; do
        [[ $k == VmLck: ]] && { echo "$v"; return 0; }
    done 2>/dev/null <"/proc/$1/status" || true
    echo 0
}

# vcpu_ticks PID: CPU time (clock ticks: utime + stime) used by PID's
# threads other than the main one. In a QEMU those are the vCPU threads
# (and a few helpers that hardly run): it grows once the guest runs, i.e.
# after QEMU's start-up device reset, during which the main thread sleeps.
vcpu_ticks() {
    local t st f sum=0
    for t in /proc/"$1"/task/*; do
        [[ ${t##*/} != "$1" ]] || continue
        st=''
        read -r st 2>/dev/null <"$t/stat" || continue
        st=${st##*) }
        read -r -a f <<<"$st"
        sum=$((sum + ${f[11]:-0} + ${f[12]:-0})) # fields 14, 15; f[0] is field 3
    done
    echo "$sum"
}

# parked_writers PID [VAR]: "TID:state:wchan" of each thread of PID that
# sits in the kernel's vfio_unregister_group_dev(), i.e. a driver/unbind
# write that waits for a user of the VFIO device to let go (its wchan; the
# wait is interruptible, state S, until the writer gets a signal). Printed,
# or put in VAR (then no fork at all: it is polled, under load too). Shell
# builtins only.
parked_writers() {
    local t w st out=()
    for t in /proc/"$1"/task/*; do
        w=''
        read -r w <"$t/wchan" 2>/dev/null || true
        [[ $w == vfio_unregister_group_dev ]] || continue
        st=''
        read -r st <"$t/stat" 2>/dev/null || true
        st=${st##*) }
        out+=("${t##*/}:${st:0:1}:$w")
    done
    if [[ -n ${2:-} ]]; then printf -v "$2" '%s' "${out[*]}"; else echo "${out[*]}"; fi
}

# json FILE PYTHON-EXPR: evaluate EXPR with d = the parsed JSON of FILE and
# print the result (str as is, anything else as JSON). python3 is there
# wherever meson is.
json() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
r = eval(sys.argv[2], {"d": d, "json": json})
print(r if isinstance(r, str) else json.dumps(r))
EOF
}

# Fresh state and runtime dirs, and the lab's config: it allows exactly the
# device pair (a wider pattern such as 1af4:* would also cover L1's own
# virtio-9p root device), and network-class devices (the e1000e).
# Extra lines for [devices] come as arguments (e.g. write_timeout=3).
# shellcheck disable=SC2120  # (the arguments are optional)
write_config() {
    rm -rf "$work" "$runtime"
    mkdir -p "$work" "$state"
    write_config_file "$@"
}
write_config_file() {
    cat >"$conf" <<EOF
[daemon]
state_dir=$state
runtime_dir=$runtime
allowed_group=
[devices]
ids=$(hexid "$A");$(hexid "$B")
classes=
# the stand-in GPU is a NIC, which vfiod refuses to take by default
allow_network=true
$(printf '%s\n' "$@")
[qemu]
binary=qemu-system-x86_64
accel=tcg
# The L2 image stages no NIC driver yet: no TAP/subnet/vsock for sandboxes.
[network]
enabled=false
EOF
}

# start_vfiod: vfiod in the background (log in $vlog), then wait up to 10 s
# for `vfioctl list` to answer. Sets vfiod_pid; returns 1 if not ready.
vfiod_pid=
start_vfiod() {
    "$VFIOD" --config "$conf" </dev/null >>"$vlog" 2>&1 &
    vfiod_pid=$!
    local _
    for _ in $(seq 50); do
        alive "$vfiod_pid" || return 1
        if timeout 10 "$VFIOCTL" --socket "$sock" list >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# stop_vfiod: SIGTERM, up to 10 s, then SIGKILL. Returns 1 if it needed KILL.
stop_vfiod() {
    local _
    [[ -n $vfiod_pid ]] && alive "$vfiod_pid" || return 0
    kill -TERM "$vfiod_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$vfiod_pid" || return 0
        sleep 0.2
    done
    kill -KILL "$vfiod_pid" 2>/dev/null || true
    return 1
}

# wait_ready SERIAL_LOG QEMU_PID: print the guest's VFIOD_READY line once it
# appears (up to READY_TIMEOUT s); returns 1 if it does not or QEMU exits.
wait_ready() {
    local line deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        line=$(grep -a -o 'VFIOD_READY {.*}' "$1" 2>/dev/null | head -n 1 | tr -d '\r' || true)
        if [[ -n $line ]]; then
            echo "$line"
            return 0
        fi
        alive "$2" || return 1
        sleep 1
    done
    return 1
}
