#!/bin/sh
# BENCHMARK ONLY: PID 1 of the busybox variant in bench/run's figure 2
# (guest-init vs a shell init). Packed as /init next to a static busybox
# (/bin/busybox, /bin/sh -> busybox) into a copy of the guest-init image,
# so that the modules and the manifest are the very same files. Does what
# guest-init does before its ready report, with busybox applets:
#   mounts      proc, devtmpfs, sysfs, tmpfs /run and /tmp, cgroup2,
#               devpts, tmpfs /dev/shm (directories created when missing)
#   modules     insmod of every "module" line of /etc/vfiod/manifest, in order
#   network     lo up; waits (<= 5 s) for eth0; eth0 up, vfiod.ip address,
#               default route via vfiod.gw (from /proc/cmdline)
#   ready       lists /sys/bus/pci/devices, prints
#               BUSYBOX_READY init_start=S mounts=S modules=S network=S ready=S
#               (seconds since kernel start, /proc/uptime: 10 ms resolution)
# then powers off. proc comes first: /proc/uptime is the clock.
bb=/bin/busybox
$bb mount -t proc proc /proc
read -r t_init _ </proc/uptime
$bb mount -t devtmpfs devtmpfs /dev
$bb mount -t sysfs sysfs /sys
$bb mount -t tmpfs -o mode=0755 tmpfs /run
$bb mount -t tmpfs -o mode=1777 tmpfs /tmp
$bb mkdir -p /sys/fs/cgroup /dev/pts /dev/shm
$bb mount -t cgroup2 cgroup2 /sys/fs/cgroup
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs -o mode=1777 tmpfs /dev/shm
read -r t_mounts _ </proc/uptime

while read -r kind arg _; do
  if [ "$kind" = module ]; then
    $bb insmod "$arg" || echo "busybox-init: insmod $arg failed"
  fi
done </etc/vfiod/manifest
read -r t_modules _ </proc/uptime

ip='' gw=''
read -r cmdline </proc/cmdline
for w in $cmdline; do
  case $w in
    vfiod.ip=*) ip=${w#vfiod.ip=} ;;
    vfiod.gw=*) gw=${w#vfiod.gw=} ;;
  esac
done
$bb ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 500 ]; do
  $bb usleep 10000
  i=$((i + 1))
done
$bb ip link set eth0 up
[ -n "$ip" ] && $bb ip addr add "$ip" dev eth0
[ -n "$gw" ] && $bb ip route add default via "$gw"
read -r t_network _ </proc/uptime

for d in /sys/bus/pci/devices/*; do
  [ -e "$d" ] && read -r _ <"$d/vendor"
done
read -r t_ready _ </proc/uptime
echo
echo "BUSYBOX_READY init_start=$t_init mounts=$t_mounts modules=$t_modules network=$t_network ready=$t_ready"
$bb sync
$bb poweroff -f
