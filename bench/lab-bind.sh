#!/bin/bash
# BENCHMARK ONLY, inside the lab VM: bench/run's figure 3, started as
#   tests/lab/run-l1.sh bench/lab-bind.sh BUILD_DIR ROUNDS
# Binds the lab's stand-in GPU group (0000:01:00.0 e1000e + 0000:01:00.1
# virtio-rng, one IOMMU group; tests/lab/README.md) to vfio-pci and gives
# it back, ROUNDS times with each of three tools, the order rotating every
# round (vfiod,shell,virsh / shell,virsh,vfiod / virsh,vfiod,shell ...):
#   vfiod   vfioctl bind 0000:01:00.0 ; vfioctl release 0000:01:00.0
#           (the daemon runs the whole time; it binds the whole group)
#   shell   bench/sysfs-bind.sh bind A B ; sysfs-bind.sh release A B
#   virsh   virsh "nodedev-detach pci_A; nodedev-detach pci_B" ;
#           virsh "nodedev-reattach pci_A; nodedev-reattach pci_B"
#           (libvirtd of this machine's Debian packages, started here)
#   kernel  the very writes of sysfs-bind.sh done by this shell itself
#           (no process started): the kernel's own unbind/probe time, the
#           floor every tool pays
# and, each round, `vfioctl --version` and `bash sysfs-bind.sh` with no
# device (client=vfioctl|bash start_ms=X): what starting the client process
# costs, which the vfiod and shell steps include; and `vfioctl sandbox
# list` with no sandbox (client=vfioctl_call): start-up + D-Bus connection
# + one call answered from vfiod's memory (`vfioctl list` would scan the
# PCI bus).
# Each step is one process started by this script, timed with
# $EPOCHREALTIME around it. After each cycle both functions must be back
# on their original drivers with no driver_override, else the cycle is
# marked failed. Output lines (on L1's console):
#   BENCH-LAB-INFO key=value ...
#   BENCH-LAB round=R tool=T bind_ms=X release_ms=Y ok=0|1
#   BENCH-LAB-START round=R client=C start_ms=X
#   BENCH-LAB-ERROR text
set -u
if [[ ${LAB_L1:-} != 1 ]]; then
  echo "${0##*/}: refusing to run outside the lab VM (tests/lab/run-l1.sh)" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
rounds=${2:-5}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
A=${LAB_DEV_PRIMARY:-0000:01:00.0}
B=${LAB_DEV_COMPANION:-0000:01:00.1}
dev=/sys/bus/pci/devices
vfioctl=$build/vfiod/vfioctl
work=/tmp/bench-lab
sock=$work/run/vfiod.sock
virsh=(virsh -q -c qemu:///system)
rc=0

err() { echo "BENCH-LAB-ERROR $*"; }
driver_of() { local l; l=$(readlink "$dev/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
state() { echo "$(driver_of "$A")/$(cat "$dev/$A/driver_override")/$(driver_of "$B")/$(cat "$dev/$B/driver_override")"; }
ms_since() { # ms_since START: milliseconds from $EPOCHREALTIME START to now
  local now=$EPOCHREALTIME
  echo "$(((${now/./} - ${1/./}) / 1000)).$(printf '%03d' $(((${now/./} - ${1/./}) % 1000)))"
}

mkdir -p "$work/state" "$work/run"
orig=$(state)
echo "BENCH-LAB-INFO kernel=$(uname -r) cpus=$(nproc) group=$(basename "$(readlink "$dev/$A/iommu_group")") A=$A:$(driver_of "$A") B=$B:$(driver_of "$B")"
[[ $(driver_of "$A") != none && $(driver_of "$B") != none ]] || { err "stand-in devices not on host drivers: $orig"; exit 1; }

# --- vfiod (this build), as tests/lab/l1-lib.sh configures it -------------
hexid() { local v d; v=$(<"$dev/$1/vendor") d=$(<"$dev/$1/device"); echo "${v#0x}:${d#0x}"; }
cat >"$work/vfiod.conf" <<EOF
[daemon]
state_dir=$work/state
runtime_dir=$work/run
allowed_group=
[devices]
ids=$(hexid "$A");$(hexid "$B")
classes=
allow_network=true
[qemu]
accel=tcg
[network]
enabled=false
EOF
t0=$EPOCHREALTIME
"$build/vfiod/vfiod" --config "$work/vfiod.conf" </dev/null >"$work/vfiod.log" 2>&1 &
vfiod_pid=$!
for _ in $(seq 300); do "$vfioctl" --socket "$sock" list >/dev/null 2>&1 && break; sleep 0.1; done
"$vfioctl" --socket "$sock" list >/dev/null 2>&1 || { err "vfiod did not start: $(tail -5 "$work/vfiod.log")"; exit 1; }
echo "BENCH-LAB-INFO vfiod_start_ms=$(ms_since "$t0")"

# --- libvirtd, from this machine's packages -------------------------------
# L1 runs the host's root read-only (9p); libvirtd needs writable /etc/libvirt
# (it is given a minimal config there: root, no auth on the local socket, no
# autostarted networks), /var/lib/libvirt, /var/cache/libvirt; /run and
# /var/log are tmpfs already (tests/lab/l1-init.sh).
libvirt_ok=0
if command -v libvirtd >/dev/null && command -v virsh >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=../tests/lab/l1-libvirtd.sh
  . "$here/../tests/lab/l1-libvirtd.sh"
  msg=$(l1_libvirtd_config 'user = "root"
group = "root"' 2>&1) || err "$msg"
  t0=$EPOCHREALTIME
  libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid </dev/null >"$work/libvirtd.out" 2>&1 &
  libvirtd_pid=$!
  for _ in $(seq 600); do
    if "${virsh[@]}" nodedev-dumpxml "pci_${A//[:.]/_}" >/dev/null 2>&1; then
      libvirt_ok=1
      break
    fi
    kill -0 "$libvirtd_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "BENCH-LAB-INFO libvirtd_ready=$libvirt_ok libvirtd_start_ms=$(ms_since "$t0") libvirt=$(libvirtd --version | awk '{print $NF}')"
  if [[ $libvirt_ok != 1 ]]; then
    err "libvirtd did not answer nodedev-dumpxml: $(tail -c 600 "$work/libvirtd.out" | tr '\n' ' ') | $(tail -5 /var/log/libvirt/libvirtd.log 2>/dev/null | tr '\n' ' ')"
  fi
else
  err "libvirtd or virsh not installed on the host (apt-get install libvirt-daemon-system libvirt-clients)"
fi

# --- the cycles ------------------------------------------------------------
pa=pci_${A//[:.]/_} pb=pci_${B//[:.]/_}
# sysfs-bind.sh's writes, in this shell: no process start.
kernel_writes() { # kernel_writes bind|release BDF...
  local op=$1 bdf d
  shift
  for bdf in "$@"; do
    d=/sys/bus/pci/devices/$bdf
    if [[ $op == bind ]]; then
      echo vfio-pci >"$d/driver_override"
      [[ -e $d/driver ]] && echo "$bdf" >"$d/driver/unbind"
      echo "$bdf" >/sys/bus/pci/drivers_probe
    else
      [[ -e $d/driver ]] && echo "$bdf" >"$d/driver/unbind"
      echo >"$d/driver_override"
      echo "$bdf" >/sys/bus/pci/drivers_probe
    fi
  done
}
do_bind() {
  case $1 in
    kernel) kernel_writes bind "$A" "$B" ;;
    vfiod) "$vfioctl" --socket "$sock" bind "$A" ;;
    shell) "$here/sysfs-bind.sh" bind "$A" "$B" ;;
    virsh) "${virsh[@]}" "nodedev-detach $pa; nodedev-detach $pb" ;;
  esac
}
do_release() {
  case $1 in
    kernel) kernel_writes release "$A" "$B" ;;
    vfiod) "$vfioctl" --socket "$sock" release "$A" ;;
    shell) "$here/sysfs-bind.sh" release "$A" "$B" ;;
    virsh) "${virsh[@]}" "nodedev-reattach $pa; nodedev-reattach $pb" ;;
  esac
}
tools=(vfiod shell virsh kernel)
[[ $libvirt_ok == 1 ]] || tools=(vfiod shell kernel)
for ((r = 1; r <= rounds; r++)); do
  t0=$EPOCHREALTIME
  "$vfioctl" --version >/dev/null 2>&1
  echo "BENCH-LAB-START round=$r client=vfioctl start_ms=$(ms_since "$t0")"
  t0=$EPOCHREALTIME
  "$vfioctl" --socket "$sock" sandbox list >/dev/null 2>&1
  echo "BENCH-LAB-START round=$r client=vfioctl_call start_ms=$(ms_since "$t0")"
  t0=$EPOCHREALTIME
  "$here/sysfs-bind.sh" bind >/dev/null 2>&1
  echo "BENCH-LAB-START round=$r client=bash start_ms=$(ms_since "$t0")"
  for ((k = 0; k < ${#tools[@]}; k++)); do
    t=${tools[$(((r - 1 + k) % ${#tools[@]}))]}
    ok=1
    t0=$EPOCHREALTIME
    do_bind "$t" >"$work/out" 2>&1 || { ok=0; err "round $r $t bind: $(tr '\n' ' ' <"$work/out")"; }
    bind_ms=$(ms_since "$t0")
    [[ $(driver_of "$A")/$(driver_of "$B") == vfio-pci/vfio-pci ]] || { ok=0; err "round $r $t: after bind $(state)"; }
    t0=$EPOCHREALTIME
    do_release "$t" >"$work/out" 2>&1 || { ok=0; err "round $r $t release: $(tr '\n' ' ' <"$work/out")"; }
    release_ms=$(ms_since "$t0")
    now=$(state)
    [[ $now == "$orig" ]] || { ok=0; err "round $r $t: after release $now, want $orig"; }
    echo "BENCH-LAB round=$r tool=$t bind_ms=$bind_ms release_ms=$release_ms ok=$ok"
    [[ $ok == 1 ]] || rc=1
    if [[ $(state) != "$orig" ]]; then # put it back for the next tool
      "$here/sysfs-bind.sh" release "$A" "$B" >/dev/null 2>&1
    fi
  done
done

kill "$vfiod_pid" 2>/dev/null
[[ -n ${libvirtd_pid:-} ]] && kill "$libvirtd_pid" 2>/dev/null
wait 2>/dev/null
exit $rc
