#!/bin/bash
# selftest-l1.sh: proves the lab itself, with plain shell and no project code.
# Run it inside L1:   tests/lab/run-l1.sh tests/lab/selftest-l1.sh
#
#  1. 0000:01:00.0 (e1000e) and 0000:01:00.1 (virtio-rng), the two functions
#     of the stand-in device behind a root port, share an IOMMU group
#  2. bind both to vfio-pci by hand (driver_override, unbind, drivers_probe),
#     /dev/vfio/<group> appears; restore them to e1000e / virtio-pci
#  3. bind again and boot an L2 (nested QEMU, TCG) with both functions passed
#     through; its kernel enumerates 8086:10d3; restore after it powers off
#  4. modules: modprobe works in the chroot, the kernel autoloads modules
# Environment (LAB_* variables pass from the host into L1):
#   LAB_SELFTEST_NO_L2=1        skip step 3 (it takes one to two minutes)
#   LAB_SELFTEST_L2_EXTRA=...   extra QEMU options for L2 (e.g. -bios ...)
#   LAB_SELFTEST_L2_APPEND=...  extra L2 kernel options (e.g. quiet)
set -euo pipefail

[[ ${LAB_L1:-} == 1 ]] || { echo "selftest-l1.sh: run me inside L1 (tests/lab/run-l1.sh)" >&2; exit 2; }

A=${LAB_DEV_PRIMARY:-0000:01:00.0}   # e1000e, 8086:10d3
B=${LAB_DEV_COMPANION:-0000:01:00.1} # virtio-rng, 1af4:1044
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else nok "$what"; fi; }
now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

dev=/sys/bus/pci/devices
driver_of() { local l; l=$(readlink "$dev/$1/driver" 2>/dev/null) || { echo "(none)"; return; }; echo "${l##*/}"; }
group_of() { local l; l=$(readlink "$dev/$1/iommu_group"); echo "${l##*/}"; }

bind_vfio() {
    local bdf
    for bdf in "$@"; do
        echo vfio-pci >"$dev/$bdf/driver_override"
        [[ -e $dev/$bdf/driver ]] && echo "$bdf" >"$dev/$bdf/driver/unbind"
        echo "$bdf" >/sys/bus/pci/drivers_probe
    done
}
restore() {
    local bdf
    for bdf in "$@"; do
        echo >"$dev/$bdf/driver_override"
        [[ -e $dev/$bdf/driver ]] && echo "$bdf" >"$dev/$bdf/driver/unbind"
        echo "$bdf" >/sys/bus/pci/drivers_probe
    done
}

echo "# PCI devices in L1:"
for d in "$dev"/*; do
    b=${d##*/}
    echo "#   $b $(<"$d/vendor"):$(<"$d/device") class $(<"$d/class") group $(group_of "$b") driver $(driver_of "$b")"
done

# 1. groups
ga=$(group_of "$A") gb=$(group_of "$B")
echo "# IOMMU group of $A: $ga, of $B: $gb; members: $(cd "/sys/kernel/iommu_groups/$ga/devices" && echo *)"
check "$A and $B share IOMMU group $ga" test "$ga" = "$gb"
check "$A starts on e1000e" test "$(driver_of "$A")" = e1000e
check "$B starts on virtio-pci" test "$(driver_of "$B")" = virtio-pci
echo "# $A reset_method: $(cat $dev/"$A"/reset_method 2>/dev/null || echo '?')"

# 2. bind by hand, restore
t=$(now)
bind_vfio "$A" "$B"
echo "# bind of both functions took $(ms_since "$t") ms"
check "$A on vfio-pci" test "$(driver_of "$A")" = vfio-pci
check "$B on vfio-pci" test "$(driver_of "$B")" = vfio-pci
check "/dev/vfio/$ga exists" test -c "/dev/vfio/$ga"
t=$(now)
restore "$A" "$B"
echo "# restore took $(ms_since "$t") ms"
check "$A back on e1000e" test "$(driver_of "$A")" = e1000e
check "$B back on virtio-pci" test "$(driver_of "$B")" = virtio-pci
check "driver_override of $A is (null)" test "$(<$dev/"$A"/driver_override)" = "(null)"
check "driver_override of $B is (null)" test "$(<$dev/"$B"/driver_override)" = "(null)"
check "/dev/vfio/$ga gone" test ! -e "/dev/vfio/$ga"

# 3. L2
if [[ -z ${LAB_SELFTEST_NO_L2:-} ]]; then
    l2=/tmp/selftest-l2
    rm -rf "$l2" && mkdir -p "$l2/root"/{bin,proc,sys,dev}
    cp /bin/busybox "$l2/root/bin/busybox"
    ln -s busybox "$l2/root/bin/sh"
    cat >"$l2/root/init" <<'EOF'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
for d in /sys/bus/pci/devices/*; do
    echo "L2-PCI ${d##*/} $(/bin/busybox cat $d/vendor):$(/bin/busybox cat $d/device) class $(/bin/busybox cat $d/class)"
done
echo "L2-UPTIME $(/bin/busybox cut -d' ' -f1 /proc/uptime)"
/bin/busybox poweroff -f
EOF
    chmod 0755 "$l2/root/init"
    printf '#mtree\n./dev/console type=char mode=0600 uid=0 gid=0 device=native,5,1\n' >"$l2/console.mtree"
    (cd "$l2/root" && bsdtar -cf - --format newc --uid 0 --gid 0 . "@$l2/console.mtree") |
        gzip -1n >"$l2/initrd.cpio.gz"

    bind_vfio "$A" "$B"
    check "both functions on vfio-pci for L2" test "$(driver_of "$A") $(driver_of "$B")" = "vfio-pci vfio-pci"
    ulimit -l unlimited
    t=$(now)
    rc=0
    read -r -a extra <<<"${LAB_SELFTEST_L2_EXTRA:-}"
    timeout 300 qemu-system-x86_64 -accel tcg -M q35 -m 256 -nographic -nodefaults -no-reboot ${extra[@]+"${extra[@]}"} \
        -serial "file:$l2/serial.log" \
        -device pcie-root-port,id=rp0,chassis=1 -device "vfio-pci,host=$A,bus=rp0" \
        -device pcie-root-port,id=rp1,chassis=2 -device "vfio-pci,host=$B,bus=rp1" \
        -kernel "$LAB_VMLINUZ" -initrd "$l2/initrd.cpio.gz" \
        -append "console=ttyS0 panic=-1 ${LAB_SELFTEST_L2_APPEND:-}" </dev/null >"$l2/qemu.out" 2>&1 || rc=$?
    echo "# L2 run took $(ms_since "$t") ms (QEMU exit status $rc), L2 kernel uptime at init end: $(sed -n 's/^L2-UPTIME \([0-9.]*\).*/\1/p' "$l2/serial.log" | tr -d '\r') s"
    [[ ! -s $l2/qemu.out ]] || sed 's/^/# qemu: /' "$l2/qemu.out"
    grep -a -E '\[(8086|1af4):[0-9a-f]{4}\] type|^L2-PCI' "$l2/serial.log" | tr -d '\r' | sed 's/^/# L2: /'
    check "L2 QEMU exited 0" test "$rc" = 0
    check "L2 kernel enumerated 8086:10d3" grep -a -q -E 'pci 0000:0[0-9]:00.0: \[8086:10d3\]' "$l2/serial.log"
    check "L2 kernel enumerated 1af4:1044" grep -a -q -E 'pci 0000:0[0-9]:00.0: \[1af4:1044\]' "$l2/serial.log"
    check "L2 init listed 0x8086:0x10d3" grep -a -q 'L2-PCI .* 0x8086:0x10d3' "$l2/serial.log"
    restore "$A" "$B"
    check "$A back on e1000e after L2" test "$(driver_of "$A")" = e1000e
    check "$B back on virtio-pci after L2" test "$(driver_of "$B")" = virtio-pci
fi

# 4. modules
check "modprobe in the chroot knows the guest kernel's modules" modprobe -n vhost_net
if ip link add lab-dummy0 type dummy 2>/dev/null; then
    ok "the kernel autoloads a module (dummy, for ip link add)"
    ip link del lab-dummy0
else
    nok "the kernel autoloads a module (dummy, for ip link add)"
fi
check "/dev/vhost-vsock exists" test -c /dev/vhost-vsock
check "/dev/net/tun exists" test -c /dev/net/tun

echo "# selftest: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
