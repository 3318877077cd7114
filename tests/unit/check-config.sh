#!/bin/bash
# vfiod --check-config FILE (the unit's ExecStartPre=): exit 0 and "OK" for a
# valid file (unknown keys are warnings), 1 with the reason for a bad value,
# a missing [qemu] user or an unreadable file, and nothing started.
set -u
vfiod=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
# check NAME WANT_RC WANT_TEXT CONTENTS
check() {
  local name=$1 want=$2 text=$3 out rc
  printf '%b' "$4" > "$dir/$name.conf"
  out=$("$vfiod" --check-config "$dir/$name.conf" 2>&1)
  rc=$?
  [ "$rc" = "$want" ] && [[ $out == *"$text"* ]] && ok "$name: exit $rc: $(echo "$out" | tr '\n' ' ')" ||
    nok "$name: exit $rc (want $want with '$text'): $out"
}
check valid 0 "configuration OK" "[daemon]\nstate_dir=$dir/s\nruntime_dir=$dir/r\nallowed_group=\n[qemu]\naccel=tcg\nuser=root\n"
check unknown-key 0 "unknown config key [qemu] bogus" "[daemon]\nallowed_group=\n[qemu]\nbogus=1\nuser=root\n"
check bad-accel 1 "accel must be 'kvm' or 'tcg'" "[qemu]\naccel=hvf\n"
check bad-range 1 "uid_range" "[qemu]\nuid_range=5-10\n"
check no-such-user 1 "[qemu] user 'vfiod-no-such-user' does not exist" "[daemon]\nallowed_group=\n[qemu]\nuser=vfiod-no-such-user\n"
# The default guest image ([qemu] kernel/initrd/driver_layer unset): when
# missing, a note says how to build it (not an error: a sandbox may name its
# own); with the keys set, no note.
out=$("$vfiod" --check-config "$dir/valid.conf" 2>&1)
if [ -e /var/lib/vfiod/image/vmlinuz ]; then
  ok "default image present on this host: no note expected ($(grep -c note: <<< "$out") notes)"
else
  [[ $out == *"note: [qemu] kernel is unset and the default image has no "*"/vmlinuz"*"vfioctl image build --gpu --output"* ]] &&
    [[ $out == *"configuration OK"* ]] && ok "default image missing: a note with how to build it, still OK" ||
    nok "default image missing: $out"
fi
check set-image 0 "configuration OK" "[daemon]\nallowed_group=\n[qemu]\nuser=root\nkernel=/k\ninitrd=/i\ndriver_layer=\n"
grep -q "note:" <<< "$("$vfiod" --check-config "$dir/set-image.conf" 2>&1)" && nok "set-image: a note although the keys are set" ||
  ok "set-image: no note when kernel, initrd and driver_layer are set"
out=$("$vfiod" --check-config "$dir/missing.conf" 2>&1)
[ $? = 1 ] && [[ $out == *"No such file"* ]] && ok "missing file: exit 1: $out" || nok "missing file: $out"
[ ! -e "$dir/s" ] && [ ! -e "$dir/r" ] && ok "nothing created (no state or runtime dir)" || nok "check-config created dirs"
echo "# check-config: $pass passed, $fail failed"
[ "$fail" = 0 ]
