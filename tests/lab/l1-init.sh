#!/bin/sh
# PID 1 of the lab's L1 VM ("the GPU host"), run by busybox sh from the
# initramfs that mk-l1-initramfs.sh builds. See tests/lab/README.md.
#
#  1. mount proc/sys/devtmpfs, insmod /lab/modules/* in /lab/modules.list order
#  2. mount the host root (9p, read-only) at /host, make the usual writable
#     places tmpfs, mount proc/sys/dev inside it, re-expose paths the job needs
#     (build dir, cache dir, ...) that a tmpfs would hide, and expose the guest
#     kernel's module tree as /lib/modules/<release> (for modprobe)
#  3. chroot /host /bin/bash /run/lab/job.sh (written by run-l1.sh into a
#     second, per-run initramfs archive: /lab/job.sh + /lab/job.env)
#  4. print "LAB-EXIT <rc>" and power off.
# A setup failure prints "LAB-FAIL <reason>" instead of LAB-EXIT.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
/bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run

off() {
    sync
    poweroff -f
    echo o >/proc/sysrq-trigger
    sleep 10
}
fail() {
    echo "LAB-FAIL $*"
    off
}
uptime_s() {
    read -r up _ </proc/uptime
    echo "$up"
}

# Per-run settings (defaults keep a bare boot useful for debugging).
LAB_REL=$(uname -r)
LAB_MODDIR=
LAB_WRITABLE="tmp run var/tmp var/log root"
LAB_9P_OPTS="trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose"
# shellcheck disable=SC1091
[ -r /lab/job.env ] && . /lab/job.env
[ -r /lab/job.sh ] || fail "no /lab/job.sh in the initramfs (boot it with run-l1.sh)"

# 1. modules
while read -r ko; do
    [ -n "$ko" ] || continue
    out=$(insmod "/lab/modules/$ko" 2>&1) || case $out in
        *"File exists"*) ;;
        *) echo "lab-init: insmod $ko: $out" ;;
    esac
done </lab/modules.list

hostname lab-l1
ip link set lo up 2>/dev/null

# 2. host root
mkdir -p /host /hostview
i=0
until mount -t 9p -o "$LAB_9P_OPTS" hostroot /host 2>/tmp/9p.err; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || fail "cannot mount the host root over 9p: $(cat /tmp/9p.err)"
    sleep 0.1
done
# A second view of the share with nothing mounted over it, to re-expose
# paths hidden by the tmpfs mounts below.
mount -o bind /host /hostview || fail "bind /host /hostview"

for d in $LAB_WRITABLE; do
    [ -d "/host/$d" ] || continue
    case $d in
        tmp | var/tmp) mode=1777 ;;
        *) mode=0755 ;;
    esac
    mount -t tmpfs -o "mode=$mode" tmpfs "/host/$d" || fail "tmpfs on /host/$d"
done
mkdir -p /host/run/lock /host/run/lab
mount -t proc proc /host/proc || fail "proc on /host/proc"
mount -t sysfs sysfs /host/sys || fail "sysfs on /host/sys"
mount -t devtmpfs devtmpfs /host/dev || fail "devtmpfs on /host/dev"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null

# Paths that must stay visible although they lie under a tmpfs (one a line).
if [ -r /lab/keep.list ]; then
    sort /lab/keep.list | while read -r p; do
        [ -n "$p" ] || continue
        for d in $LAB_WRITABLE; do
            case $p in
                "/$d") echo "lab-init: cannot keep /$d itself visible (it is a tmpfs)" ;;
                "/$d"/*)
                    if [ -d "/hostview$p" ]; then
                        mkdir -p "/host$p"
                    elif [ -e "/hostview$p" ]; then
                        mkdir -p "$(dirname "/host$p")" && : >"/host$p"
                    else
                        continue
                    fi
                    mount -o bind "/hostview$p" "/host$p" || fail "cannot re-expose $p"
                    ;;
            esac
        done
    done
fi

# The guest kernel's modules, for modprobe in the chroot (kmod) and for the
# kernel's own request_module (busybox modprobe in this initramfs).
if [ -n "$LAB_MODDIR" ] && [ -d "/hostview$LAB_MODDIR" ]; then
    # /lib/modules may be missing on the host (e.g. a kernel without
    # modules): then overlay a tmpfs on the directory that should hold it.
    if [ -d /host/lib/modules ]; then
        mount -t tmpfs -o mode=0755 tmpfs /host/lib/modules
    else
        libdir=$(cd /host/lib/ && pwd -P)
        mkdir -p /run/libov/upper /run/libov/work
        mount -t overlay -o "lowerdir=/hostview${libdir#/host},upperdir=/run/libov/upper,workdir=/run/libov/work" \
            overlay "$libdir" && mkdir -p /host/lib/modules
    fi || echo "lab-init: cannot provide /lib/modules in the chroot"
    if [ -d /host/lib/modules ]; then
        mkdir -p "/host/lib/modules/$LAB_REL"
        mount -o bind "/hostview$LAB_MODDIR" "/host/lib/modules/$LAB_REL"
    fi
    mkdir -p "/lib/modules/$LAB_REL"
    mount -o bind "/hostview$LAB_MODDIR" "/lib/modules/$LAB_REL"
fi

# 3. the job
cp /lab/job.sh /host/run/lab/job.sh
echo "lab-init: L1 ready after $(uptime_s) s (kernel $(uname -r))"
env -i chroot /host /bin/bash /run/lab/job.sh </dev/null
rc=$?

# 4. done
echo "LAB-EXIT $rc"
off
