#!/bin/bash
# run-lab-libvirt.sh BUILD_DIR: the meson "lab-libvirt" test (issue 18, the
# libvirt backend; tests/lab/README.md): builds the sandbox (L2) initramfs,
# boots L1 once and runs checks-l1-libvirt.sh there, where libvirtd (this
# machine's Debian packages, run from the read-only host root) and vfiod
# with `[vm] backend=libvirt` run. libvirtd is started inside L1 only, never
# on this machine. Exit status: the checks' (0 only if all passed), 77 when
# the lab cannot run here (not root, no QEMU, no libvirt), 1 otherwise.
#   LAB_CACHE    kernel/initramfs cache (default <repo>/build-lab-cache)
#   LAB_TIMEOUT  L1 timeout in seconds (default 2250; meson gives 2400)
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }
die() { echo "$prog: error: $*" >&2; exit 1; }
[[ $# -eq 1 && -d $1 ]] || { echo "usage: $prog BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)

# Same skip conditions as run-l1.sh, plus libvirt, before any download or build.
[[ $(id -u) -eq 0 ]] || skip "the lab needs root (it runs QEMU with a 9p share of / and binds devices inside L1)"
command -v "${LAB_QEMU:-qemu-system-x86_64}" >/dev/null ||
    skip "${LAB_QEMU:-qemu-system-x86_64} not found (install qemu-system-x86)"
command -v python3 >/dev/null || skip "python3 not found (the checks parse JSON and XML with it)"
# L1 runs this machine's libvirtd and virsh (the root is shared over 9p).
# Only their presence is checked here: nothing of libvirt runs on this machine.
PATH=$PATH:/usr/sbin:/sbin
command -v libvirtd >/dev/null || skip "libvirtd not found (install libvirt-daemon-system; scripts/dev installs it without starting it)"
command -v virsh >/dev/null || skip "virsh not found (install libvirt-clients)"
qemu_driver=$(find /usr/lib -path '*/libvirt/connection-driver/libvirt_driver_qemu.so' -print -quit 2>/dev/null)
[[ -n $qemu_driver ]] || skip "libvirt's QEMU driver (libvirt_driver_qemu.so) not found (install libvirt-daemon-driver-qemu)"

vfioctl=$build/vfiod/vfioctl
guest_init=$build/guest-init/guest-init
for f in "$build/vfiod/vfiod" "$vfioctl" "$guest_init"; do
    [[ -x $f ]] || die "$f is missing: build first (meson compile -C $build)"
done

cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache/logs"
cache=$(cd "$cache" && pwd)
export LAB_CACHE=$cache

"$here/fetch-kernel.sh" "$cache" || die "could not fetch the guest kernel"

# The sandbox initramfs is made here, on the host: inside L1 the build and
# cache dirs are read-only.
echo "$prog: vfioctl initramfs build --guest-init $guest_init --output $cache/guest.cpio.gz" >&2
rm -f "$cache/guest.cpio.gz.tmp.$$"
if ! "$vfioctl" initramfs build --guest-init "$guest_init" --output "$cache/guest.cpio.gz.tmp.$$"; then
    rm -f "$cache/guest.cpio.gz.tmp.$$"
    die "vfioctl initramfs build failed"
fi
mv "$cache/guest.cpio.gz.tmp.$$" "$cache/guest.cpio.gz"

log=$cache/logs/lab-libvirt-$(date +%Y%m%d-%H%M%S)-$$.log
# keep the 20 newest lab-libvirt logs
find "$cache/logs" -name 'lab-libvirt-*-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +20 |
    cut -d' ' -f2- | xargs -r rm -f
rc=0
"$here/run-l1.sh" --timeout "${LAB_TIMEOUT:-2250}" --log "$log" "$here/checks-l1-libvirt.sh" "$build" "$cache" || rc=$?
if [[ $rc -ne 77 ]]; then
    echo "==== $prog: results (full console log: $log) ===="
    grep -a -E '^(ok|not ok) - |^# lab-libvirt: |SKIP' "$log" || echo "(no check results: see the log)"
fi
exit "$rc"
