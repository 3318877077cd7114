#!/bin/bash
# BENCHMARK ONLY, and only inside the lab VM (tests/lab/run-l1.sh): the
# "plain shell script" of bench/run's figure 3. Does for each BDF the
# sysfs writes vfiod does (README "How it works"), nothing more: no
# journal, no checks of other group members, no timeouts.
#   sysfs-bind.sh bind BDF...      driver_override=vfio-pci, driver/unbind,
#                                  drivers_probe, check driver is vfio-pci
#   sysfs-bind.sh release BDF...   vfio-pci/unbind, driver_override="\n",
#                                  drivers_probe, check a driver is bound
# Exit 1 when a check fails.
set -u
if [[ ${LAB_L1:-} != 1 ]]; then
  echo "${0##*/}: refusing to run outside the lab VM" >&2
  exit 2
fi
pci=/sys/bus/pci
op=$1
shift
rc=0
for bdf in "$@"; do
  d=$pci/devices/$bdf
  case $op in
    bind)
      echo vfio-pci >"$d/driver_override"
      [[ -e $d/driver ]] && echo "$bdf" >"$d/driver/unbind"
      echo "$bdf" >$pci/drivers_probe
      [[ $(readlink "$d/driver") == */vfio-pci ]] || { echo "sysfs-bind: $bdf not on vfio-pci" >&2; rc=1; }
      ;;
    release)
      [[ -e $d/driver ]] && echo "$bdf" >"$d/driver/unbind"
      echo >"$d/driver_override"
      echo "$bdf" >$pci/drivers_probe
      [[ -e $d/driver && $(readlink "$d/driver") != */vfio-pci ]] || { echo "sysfs-bind: $bdf has no host driver" >&2; rc=1; }
      ;;
    *)
      echo "usage: sysfs-bind.sh bind|release BDF..." >&2
      exit 2
      ;;
  esac
done
exit $rc
