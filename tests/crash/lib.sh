# shellcheck shell=bash disable=SC2034,SC2154  # variables are set and used by the scripts sourcing this
# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers of the scripts of tests/crash that run vfiod-fake (vfiod's
# main on a fake kernel kept on disk, see README.md) with a stand-in QEMU
# (sourced, bash):
#   . "$(dirname "$(readlink -f "$0")")/lib.sh"; crash_init NAME
# No root needed: when not root, the API's allowed_group is the user's
# primary group.

ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
ctl() { "$vfioctl" --socket "$work/run/vfiod.sock" "$@"; }

# crash_init NAME: the work dir, /tmp/vfiod-NAME-XXXXXX, 0755 (QEMU may
# run as a uid of its own: what the stand-in needs must be reachable for
# it); pass, fail and vp (vfiod-fake's pid) at their start; group, the
# API's allowed_group.
crash_init() {
  work=$(mktemp -d "/tmp/vfiod-$1-XXXXXX")
  chmod 0755 "$work"
  pass=0 fail=0 vp=''
  if [ "$(id -u)" = 0 ]; then group=''; else group=$(id -gn); fi
}

# fake_kernel: an empty fake kernel in $work/fake (sys, dev, model.ini) and
# $work/qemu.pids, which the stand-in QEMUs (any uid) write their pids to.
fake_kernel() {
  mkdir -p "$work/fake/sys" "$work/fake/dev"
  touch "$work/qemu.pids" && chmod 0666 "$work/qemu.pids"
  printf '[fake-sysfs]\nformat=vfiod-fake-sysfs\nversion=1\n' > "$work/fake/model.ini"
}

# write_crash_conf QEMU INITRD STOP_TIMEOUT [QEMU_LINE...]: $work/vfiod.conf
# for vfiod-fake on the fake kernel: state and runtime dirs in $work, QEMU
# as [qemu] binary with kernel $work/vmlinuz, INITRD, TCG, STOP_TIMEOUT and
# the lines given; [network] off.
write_crash_conf() {
  local qemu=$1 initrd=$2 stop_timeout=$3
  shift 3
  {
    cat << CONF
[daemon]
state_dir=$work/state
runtime_dir=$work/run
allowed_group=$group
[qemu]
binary=$qemu
kernel=$work/vmlinuz
initrd=$initrd
accel=tcg
stop_timeout=$stop_timeout
CONF
    [ $# -eq 0 ] || printf '%s\n' "$@"
    cat << CONF
[network]
enabled=false
[testing]
sys_root=$work/fake/sys
dev_root=$work/fake/dev
CONF
  } > "$work/vfiod.conf"
}
