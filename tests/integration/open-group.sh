#!/bin/bash
# integration suite: OpenGroup and `vfioctl open-group BDF --exec -- CMD`
# (issue 15, item 9): a bound IOMMU group handed to a client that launches
# its own VMM, as an open /dev/vfio/<group>. vfiod-fake on a fake-tree
# (TEST ONLY: the fake kernel makes <dev_root>/vfio/<N> a regular file
# owned by root, 0644, when the group is on vfio-pci), two members A and B
# of allowed_group:
#  - A binds group 12; open-group --exec runs the command with fd 3 being
#    that very node (st_dev:st_ino through /proc/self/fd/3), opened
#    read-write, VFIOD_GROUP_FD=3, VFIOD_IOMMU_GROUP=12, while A cannot
#    open the node itself; vfiod logs the grant (uid, pid, group) and keeps
#    no fd of the node;
#  - B: PermissionDenied; a group of A's sandbox: Busy for A and B, root
#    gets it; a group vfiod did not bind, a BDF not on the host: NotFound;
#    a bad BDF: InvalidArgument (vfioctl: a usage error before calling);
#  - the journal's bytes and the node's owner and mode never change.
# Usage: open-group.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init open-group "$@"
for tool in setpriv useradd userdel groupadd groupdel gdbus stat sha256sum; do
  command -v "$tool" > /dev/null || { nok "$tool missing"; exit 1; }
done
/usr/bin/python3 -c 'import gi' 2> /dev/null || { nok "python3-gi missing (Debian package python3-gi)"; exit 1; }
use_fake_vfiod

group=vfiod-ogrp ua=vfiod-ogrp-a ub=vfiod-ogrp-b
make_members "$group" "$ua" "$ub"
uid_a=$(id -u "$ua") uid_b=$(id -u "$ub")

d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group=$group"
start_fake_vfiod "$d" || exit 1
S=(--socket "$sock")
node=$d/fake/dev/vfio/12
jsum() { sha256sum "$d/state/journal.json" 2> /dev/null | cut -d' ' -f1; }
# gcall USER BDF: OpenGroup through gdbus as USER (root: root), its D-Bus error name shown.
gcall() {
  local u=$1
  shift
  if [ "$u" = root ]; then
    timeout 20 gdbus call --address "unix:path=$sock" --dest org.vfiod --object-path /org/vfiod/Manager1 \
      --method org.vfiod.Manager1.OpenGroup "$1" 2>&1
  else
    as "$u" timeout 20 gdbus call --address "unix:path=$sock" --dest org.vfiod --object-path /org/vfiod/Manager1 \
      --method org.vfiod.Manager1.OpenGroup "$1" 2>&1
  fi
}
# What the exec'd command sees: fd 3's device:inode, its open flags (octal),
# the environment, how many sockets it inherited (vfioctl's D-Bus socket
# must not be one).
probe='echo "$(stat -L -c %d:%i /proc/self/fd/3) $(awk "/^flags:/ {print \$2}" /proc/self/fdinfo/3) $VFIOD_GROUP_FD $VFIOD_IOMMU_GROUP $(ls -l /proc/$$/fd | grep -c socket:)"'

# ---- A binds group 12 and gets its node --------------------------------------
out=$(as "$ua" "$vfioctl" "${S[@]}" bind 0000:01:00.0 2>&1)
[ $? = 0 ] && [ -f "$node" ] && ok "A binds group 12 (the fake kernel made $node)" || { nok "A's bind: $out"; exit 1; }
j0=$(jsum) mode0=$(stat -c '%U:%G %a' "$node") want=$(stat -c %d:%i "$node")
as "$ua" sh -c "exec 3<> '$node'" 2> /dev/null && nok "A can open $node itself ($mode0): the test proves nothing" ||
  ok "A cannot open $node itself ($mode0)"
out=$(as "$ua" "$vfioctl" "${S[@]}" open-group 0000:01:00.0 --exec -- sh -c "$probe" 2>&1)
rc=$?
read -r got flags gfd ggroup socks <<< "$out"
[ "$rc" = 0 ] && [ "$got" = "$want" ] && [ "$((0$flags & 3))" = 2 ] && [ "$gfd" = 3 ] && [ "$ggroup" = 12 ] && [ "$socks" = 0 ] &&
  ok "A: open-group --exec: fd 3 is $node ($got), O_RDWR (flags $flags), VFIOD_GROUP_FD=$gfd VFIOD_IOMMU_GROUP=$ggroup, no socket inherited" ||
  nok "A's open-group --exec: exit $rc: '$out' (want $want, flags ..2, 3, 12)"
out=$(as "$ua" "$vfioctl" "${S[@]}" open-group 0000:01:00.1 --exec -- sh -c 'exit 7' 2>&1)
rc=$?
[ "$rc" = 7 ] && ok "A: open-group of the audio function, same group: the command's exit status (7) is vfioctl's" ||
  nok "A: open-group --exec exit: $rc: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" open-group 0000:01:00.0 --json 2>&1)
[[ $out == *'"iommu_group" : 12'* ]] && [[ $out == *0000:01:00.1* ]] && ok "A: open-group --json (no --exec): $(tr -d '\n ' <<< "$out")" ||
  nok "A: open-group --json: $out"
grep -q "granted IOMMU group 12 (/dev/vfio/12, 0000:01:00.0) to uid $uid_a (pid [0-9]*)" "$vlog" &&
  ok "vfiod logged the grant: $(grep -m1 -o "granted IOMMU group 12.*" "$vlog")" || nok "no grant line in vfiod's log"
ls -l "/proc/$vp/fd" 2> /dev/null | grep -q " $node\$" && nok "vfiod keeps an fd of $node" ||
  ok "vfiod keeps no fd of $node: the grant ends with the client's fd"
# The same from Python (doc/examples/open-group.py, Gio's fd list); vfiod's
# fd list keeps its own copy only until the reply is sent.
out=$(as "$ua" /usr/bin/python3 "$src/doc/examples/open-group.py" "$sock" 0000:01:00.0 sh -c "$probe" 2>&1)
rc=$?
read -r got flags gfd ggroup socks <<< "$out"
[ "$rc" = 0 ] && [ "$got" = "$want" ] && [ "$((0$flags & 3))" = 2 ] && [ "$gfd" = 3 ] && [ "$ggroup" = 12 ] && [ "$socks" = 0 ] &&
  ok "A: doc/examples/open-group.py (python3-gi): fd 3 is the node ($got), O_RDWR" || nok "open-group.py: exit $rc: $out"
out=$(gcall root 0000:01:00.0)
[[ $out == *"(handle 0, 12, ['0000:01:00.0', '0000:01:00.1'])"* ]] && ok "root: OpenGroup of A's group: $out" ||
  nok "root's OpenGroup: $out"

# ---- refusals -----------------------------------------------------------------
out=$(gcall "$ub" 0000:01:00.0)
out2=$(as "$ub" "$vfioctl" "${S[@]}" open-group 0000:01:00.0 --exec -- sh -c 'echo RAN' 2>&1)
rc=$?
[[ $out == *org.vfiod.Error.PermissionDenied*"bound by uid $uid_a"* ]] && [ "$rc" = 1 ] && [[ $out2 != *RAN* ]] &&
  ok "B: PermissionDenied ($(grep -o 'org.vfiod.Error.*' <<< "$out" | cut -c1-110)); vfioctl exit 1, the command never ran" ||
  nok "B's OpenGroup: $out; vfioctl exit $rc: $out2"
out=$(gcall "$ua" 0000:02:00.0)
[[ $out == *org.vfiod.Error.NotFound*"not bound by vfiod"* ]] && ok "A: a group vfiod did not bind: NotFound" || nok "unbound: $out"
out=$(gcall "$ua" 0000:09:00.0)
[[ $out == *org.vfiod.Error.NotFound* ]] && ok "A: a BDF not on this host: NotFound" || nok "absent BDF: $out"
bad=0
for b in zz 0000:01:00 "0000:01:00.0 " 0000:01:00.8 ''; do
  out=$(gcall "$ua" "$b")
  [[ $out == *org.vfiod.Error.InvalidArgument* ]] && bad=$((bad + 1)) || note "'$b': $out"
done
out=$(as "$ua" "$vfioctl" "${S[@]}" open-group zz --exec -- sh -c 'echo RAN' 2>&1)
rc=$?
[ "$bad" = 5 ] && [ "$rc" = 2 ] && [[ $out == *"invalid BDF"* ]] &&
  ok "bad BDFs (zz, no function, a blank, function 8, empty): InvalidArgument; vfioctl: usage error (exit 2)" ||
  nok "bad BDFs: $bad of 5 InvalidArgument; vfioctl exit $rc: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" open-group 0000:01:00.0 --exec 2>&1)
rc=$?
out2=$(as "$ua" "$vfioctl" "${S[@]}" open-group 0000:01:00.0 sh 2>&1)
[ "$rc" = 2 ] && [[ $out == *"give the command after --"* ]] && [[ $out2 == *"unexpected argument 'sh'"* ]] &&
  ok "vfioctl: --exec without a command, a command without --exec: usage errors" || nok "usage: exit $rc: $out; $out2"
# Fd passing is on for OpenGroup's replies and CreateSandbox's disks; a
# call of another method carrying fds is refused, and so is a CreateSandbox
# with more than 8; vfiod keeps none of them.
n0=$(fd_count "$vp")
out=$(as "$ua" /usr/bin/python3 -c '
import sys, gi
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib
conn = Gio.DBusConnection.new_for_address_sync("unix:path=" + sys.argv[1], Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
fds = Gio.UnixFDList.new()
for _ in range(20): fds.append(0)
for method, args in (("ListDevices", None), ("CreateSandbox", GLib.Variant("(a{sv})", ({},)))):
    try:
        conn.call_with_unix_fd_list_sync(None, "/org/vfiod/Manager1", "org.vfiod.Manager1", method, args, None, Gio.DBusCallFlags.NONE, 10000, fds, None)
        print("accepted")
    except GLib.Error as e:
        print(Gio.DBusError.get_remote_error(e), e.message)
' "$sock" 2>&1)
n1=$(fd_count "$vp")
l1=$(sed -n 1p <<< "$out")
l2=$(sed -n 2p <<< "$out")
[[ $l1 == "org.vfiod.Error.InvalidArgument"*"only CreateSandbox and ValidateSandbox take file descriptors"* ]] &&
  [[ $l2 == "org.vfiod.Error.LimitExceeded"*"20 file descriptors came with the call, at most 8"* ]] && [ "$n1" = "$n0" ] &&
  ok "calls carrying 20 fds: ListDevices: $l1; CreateSandbox: $l2; vfiod's fds $n0 -> $n1" ||
  nok "calls with fds: $out; vfiod's fds $n0 -> $n1"
[ "$(jsum)" = "$j0" ] && [ "$(stat -c '%U:%G %a' "$node")" = "$mode0" ] &&
  ok "nothing changed: journal bytes ($j0), $node still $mode0" || nok "changed: journal $(jsum) vs $j0; node $(stat -c '%U:%G %a' "$node")"

# ---- a group a sandbox holds ----------------------------------------------------
id=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create --device 0000:02:00.0 --json 2>&1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>&1)
j1=$(jsum)
outa=$(gcall "$ua" 0000:02:00.0)
outb=$(gcall "$ub" 0000:02:00.0)
outr=$(gcall root 0000:02:00.0)
[[ $outa == *org.vfiod.Error.Busy*"in use by sandbox $id"* ]] && [[ $outb == *org.vfiod.Error.Busy* ]] &&
  [[ $outr == *"(handle 0, 13, ['0000:02:00.0'])"* ]] && [ "$(jsum)" = "$j1" ] &&
  ok "A's sandbox $id holds group 13: Busy for A and for B, root gets it; journal unchanged" ||
  nok "sandbox's group: A $outa; B $outb; root $outr"
ctl sandbox delete "$id" > /dev/null 2>&1
out=$(as "$ua" "$vfioctl" "${S[@]}" release 0000:01:00.0 2>&1)
[ $? = 0 ] && [ ! -e "$node" ] && ok "A releases group 12 afterwards: $(tr '\n' ' ' <<< "$out")" || nok "A's release: $out"

for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "end"
itest_finish
