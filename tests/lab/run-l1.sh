#!/bin/bash
# run-l1.sh [--timeout SEC] [--log FILE] [--keep PATH]... SCRIPT [ARGS...]
#
# Boot the lab's L1 VM ("the GPU host", see /work/shared/LAB.md and
# tests/lab/README.md) and run SCRIPT ARGS... in it, as root, chrooted into
# the host's root filesystem (shared read-only over 9p, so every host path,
# the build dir included, reads the same inside L1). The serial console
# streams to stdout and to a log file. Exit status: SCRIPT's, read from the
# "LAB-EXIT <rc>" line L1's init prints; 1 on timeout, kernel panic, setup
# failure or a missing LAB-EXIT; 77 when the lab cannot run here (not root,
# no QEMU, missing tools); 2 on bad usage.
#
# Environment:
#   LAB_CACHE    kernel + initramfs cache (default <repo>/build-lab-cache)
#   LAB_QEMU     QEMU binary (default qemu-system-x86_64)
#   LAB_TIMEOUT  default for --timeout (default 900)
#   LAB_LOG      default for --log (default $LAB_CACHE/logs/l1-<time>.log)
#   LAB_KEEP     ':'-separated extra paths to keep visible in L1 (see --keep)
#   LAB_MEM, LAB_SMP, LAB_APPEND   L1 memory (MiB), vCPUs, extra kernel args
#   LAB_QEMU_EXTRA  extra QEMU options for L1 (split on blanks)
#   LAB_L1_DEVICES  replaces the stand-in device options (split on blanks)
#   LAB_*        every LAB_ variable is also exported to SCRIPT inside L1
# Inside L1 SCRIPT also sees LAB_L1=1, LAB_CACHE, LAB_KERNEL_RELEASE,
# LAB_VMLINUZ (the guest kernel, usable for L2).
#
# L1 mounts tmpfs over /tmp /run /var/tmp /var/log /root. Paths under those
# that SCRIPT needs from the host are re-exposed read-only: the cache dir,
# SCRIPT's directory, the current directory, every argument that names an
# existing path, and each --keep PATH.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
    sed -n '2,3s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
die() { echo "$prog: error: $*" >&2; exit 1; }

timeout=${LAB_TIMEOUT:-900}
log=${LAB_LOG:-}
keep=()
if [[ -n ${LAB_KEEP:-} ]]; then
    IFS=: read -r -a keep <<<"$LAB_KEEP"
fi
while [[ $# -gt 0 ]]; do
    case $1 in
        --timeout) [[ $# -ge 2 ]] || usage; timeout=$2; shift 2 ;;
        --timeout=*) timeout=${1#*=}; shift ;;
        --log) [[ $# -ge 2 ]] || usage; log=$2; shift 2 ;;
        --log=*) log=${1#*=}; shift ;;
        --keep) [[ $# -ge 2 ]] || usage; keep+=("$2"); shift 2 ;;
        --keep=*) keep+=("${1#*=}"); shift ;;
        -h | --help) usage ;;
        --) shift; break ;;
        -*) echo "$prog: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage
[[ $timeout =~ ^[1-9][0-9]*$ ]] || { echo "$prog: --timeout wants seconds, got '$timeout'" >&2; exit 2; }
[[ -f $1 ]] || { echo "$prog: no such script: $1" >&2; exit 2; }
script=$(realpath "$1")
shift

# --- can the lab run here? ------------------------------------------------
[[ $(id -u) -eq 0 ]] || skip "the lab needs root (it runs QEMU with a 9p share of / and binds devices inside L1)"
qemu=${LAB_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || skip "$qemu not found (install qemu-system-x86)"
missing=()
for tool in apt-get dpkg depmod modprobe bsdtar gzip flock realpath; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -x /bin/busybox ]] || missing+=("/bin/busybox (busybox-static)")
[[ ${#missing[@]} -eq 0 ]] || skip "missing: ${missing[*]}"

# --- kernel + L1 initramfs (cached) --------------------------------------
cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache"
cache=$(realpath "$cache")
"$here/fetch-kernel.sh" "$cache" || die "could not fetch the guest kernel"
# The release fetch-kernel.sh fetched (the pins resolved against the archive).
# shellcheck source=/dev/null
. "$cache/kernel.env"
rel=$GUEST_KERNEL_RELEASE
moddir=$(realpath "$cache/modules/$rel")

base=$cache/l1-initramfs.cpio.gz
stamp="$rel ${LAB_L1_MODULES:-}"
(
    flock 9
    if [[ ! -s $base || $base -ot $here/l1-init.sh || $base -ot $here/mk-l1-initramfs.sh ||
        $base -ot $cache/vmlinuz || $(cat "$base.stamp" 2>/dev/null) != "$stamp" ]]; then
        "$here/mk-l1-initramfs.sh" "$cache" "$base"
        echo "$stamp" >"$base.stamp"
    fi
) 9>"$cache/.l1-initramfs.lock" || die "could not build the L1 initramfs"

# --- per-run archive: the job ----------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/lab-l1.XXXXXX")
qpid=
ppid_=
# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    local rc=$?
    if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
        kill -KILL "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
    fi
    if [[ -n $ppid_ ]]; then
        # a reader still blocked opening the FIFO gets EOF from this
        [[ -p $work/console ]] && : <>"$work/console"
        kill "$ppid_" 2>/dev/null || true
        wait "$ppid_" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

sq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

mkdir -p "$work/job/lab"
{
    echo "LAB_REL=$(sq "$rel")"
    echo "LAB_MODDIR=$(sq "$moddir")"
} >"$work/job/lab/job.env"

# Paths L1 covers with tmpfs (relative to /). Paths under them that the job
# needs are re-exposed from the host (keep.list), except the roots themselves.
writable="tmp run var/tmp var/log root"
{
    echo "LAB_WRITABLE=$(sq "$writable")"
} >>"$work/job/lab/job.env"
is_writable_root() {
    local w
    for w in $writable; do [[ $1 == "/$w" ]] && return 0; done
    [[ $1 == / ]]
}
{
    printf '%s\n' "$cache" "$script" "$(dirname "$script")" "$PWD"
    for a in "$@" ${keep[@]+"${keep[@]}"}; do
        if [[ -e $a ]]; then realpath "$a"; fi
    done
} | sort -u | while read -r p; do
    is_writable_root "$p" || echo "$p"
done >"$work/job/lab/keep.list"

{
    echo '#!/bin/bash'
    echo '# generated by run-l1.sh: runs inside L1, chrooted into the host root'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    echo 'export HOME=/root TERM=dumb LANG=C.UTF-8 LAB_L1=1'
    for v in ${!LAB_@}; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    # the release fetched (the pins resolved against the archive) and, for
    # the record, the one the repository's pins.env names
    printf 'export LAB_CACHE=%q LAB_KERNEL_RELEASE=%q LAB_VMLINUZ=%q LAB_PINNED_RELEASE=%q\n' \
        "$cache" "$rel" "$cache/vmlinuz" "$(sed -n 's/^GUEST_KERNEL_RELEASE=//p' "$repo/pins.env")"
    printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
    if [[ -x $script ]]; then
        printf 'exec %q' "$script"
    else
        printf 'exec /bin/bash %q' "$script"
    fi
    [[ $# -eq 0 ]] || printf ' %q' "$@"
    echo
} >"$work/job/lab/job.sh"

(cd "$work/job" && bsdtar -cf - --format newc --uid 0 --gid 0 --uname root --gname root lab) |
    gzip -1n >"$work/job.cpio.gz"
# The kernel unpacks concatenated (compressed) cpio archives in order.
cat "$base" "$work/job.cpio.gz" >"$work/initrd.cpio.gz"

# --- boot -------------------------------------------------------------------
if [[ -z $log ]]; then
    mkdir -p "$cache/logs"
    log=$cache/logs/l1-$(date +%Y%m%d-%H%M%S)-$$.log
    ln -sfn "${log##*/}" "$cache/logs/l1-latest.log"
    # keep the 20 newest logs
    find "$cache/logs" -name 'l1-*-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +21 |
        cut -d' ' -f2- | xargs -r rm -f
else
    mkdir -p "$(dirname "$log")"
fi

append="console=ttyS0 panic=-1 quiet intel_iommu=on iommu=pt ${LAB_APPEND:-}"
qemu_args=(
    -accel tcg -M q35 -m "${LAB_MEM:-2048}" -smp "${LAB_SMP:-2}"
    -display none -monitor none -no-reboot -nodefaults
    -chardev stdio,id=con0,signal=off -serial chardev:con0
    -device intel-iommu
    -kernel "$cache/vmlinuz" -initrd "$work/initrd.cpio.gz" -append "$append"
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -netdev user,id=n0,restrict=on
)
if [[ -n ${LAB_L1_DEVICES:-} ]]; then
    read -r -a devs <<<"$LAB_L1_DEVICES"
else
    # The stand-in "GPU": a two-function device behind a PCIe root port, like
    # a GPU and its HDMI audio function: 0000:01:00.0 = e1000e (8086:10d3),
    # 0000:01:00.1 = virtio-rng (1af4:1044); both in one IOMMU group, the root
    # port (it has ACS) in its own. On the root bus they would not share a
    # group whatever multifunction says: Linux treats Intel root-complex
    # integrated endpoints as isolated (pci_quirk_rciep_acs).
    # A second, identical "GPU" behind another root port (0000:02:00.0 and
    # 0000:02:00.1, a group of their own) lets the checks run a second
    # sandbox next to the first.
    # The display-class stand-in: QEMU's std VGA (1234:1111, class 0x030000)
    # behind a third root port (0000:03:00.0, an IOMMU group of its own),
    # which vfiod's test-only [qemu] test_present_as passes to L2 with NVIDIA
    # IDs for the real nvidia.ko to probe. The host console is a second std
    # VGA on the root bus (0000:00:02.0, like a server's BMC display): it is
    # the boot VGA device (boot_vga 1), so the stand-in is not. L1 binds
    # both to bochs-drm, as a host's GPU has its host driver.
    devs=(
        -device pcie-root-port,id=rp4,chassis=4,addr=04.0
        -device e1000e,bus=rp4,addr=00.0,multifunction=on,netdev=n0
        -device virtio-rng-pci,bus=rp4,addr=00.1
        -netdev user,id=n1,restrict=on
        -device pcie-root-port,id=rp5,chassis=5,addr=05.0
        -device e1000e,bus=rp5,addr=00.0,multifunction=on,netdev=n1
        -device virtio-rng-pci,bus=rp5,addr=00.1
        -device VGA,bus=pcie.0,addr=02.0
        -device pcie-root-port,id=rp6,chassis=6,addr=06.0
        -device VGA,bus=rp6,addr=00.0
    )
fi
qemu_args+=("${devs[@]}")
if [[ -n ${LAB_QEMU_EXTRA:-} ]]; then
    read -r -a extra <<<"$LAB_QEMU_EXTRA"
    qemu_args+=("${extra[@]}")
fi

echo "$prog: booting L1 (timeout ${timeout}s, log $log): $script${*:+ $*}" >&2
mkfifo "$work/console"
sed -u -e 's/\r//g' <"$work/console" | tee "$log" &
ppid_=$!
t0=$(date +%s.%N)
"$qemu" "${qemu_args[@]}" </dev/null >"$work/console" &
qpid=$!

# A finished QEMU stays a zombie (kill -0 still succeeds) until reaped.
qemu_running() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$qpid/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}
timed_out=
deadline=$((SECONDS + timeout))
while qemu_running; do
    if ((SECONDS >= deadline)); then
        timed_out=1
        kill -TERM "$qpid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do qemu_running || break; sleep 0.5; done
        kill -KILL "$qpid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$ppid_" || true
ppid_=
t1=$(date +%s.%N)
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

# --- verdict ----------------------------------------------------------------
exit_line=$(grep -a -E '^LAB-EXIT [0-9]+$' "$log" | tail -n 1 || true)
fail_line=$(grep -a -E '^LAB-FAIL ' "$log" | tail -n 1 || true)
panic_line=$(grep -a -m 1 'Kernel panic' "$log" || true)
echo "$prog: L1 ran ${elapsed}s (QEMU exit status $qrc); log: $log" >&2
if [[ -n $timed_out ]]; then
    die "timeout: L1 did not finish within ${timeout}s; QEMU killed"
elif [[ -n $exit_line ]]; then
    rc=${exit_line#LAB-EXIT }
    echo "$prog: $script exited $rc inside L1" >&2
    exit "$rc"
elif [[ -n $fail_line ]]; then
    die "L1 setup failed: ${fail_line#LAB-FAIL }"
elif [[ -n $panic_line ]]; then
    die "L1 kernel panic: $panic_line"
else
    die "no LAB-EXIT line from L1 (QEMU exit status $qrc); see $log"
fi
