#!/bin/bash
# integration suite: who may use vfiod's API. The real vfiod with
# `allowed_group=vfiod-itest` (a group this test creates), in a network
# namespace of its own:
#  1. the socket is 0660 root:vfiod-itest, and the runtime dir vfiod
#     created is traversable (0755), so that members reach the socket;
#  2. a user not in the group (nobody, no supplementary group) is refused:
#     vfioctl exits 1 with a clear message (the socket's mode stops it);
#  3. a process holding the group's gid as a supplementary group but whose
#     user is not a member (nobody; and a uid without a passwd entry) gets
#     through the socket's mode and is refused by vfiod itself: exit 1, and
#     vfiod's log says it refused that uid; refused clients leak no fd;
#  4. a member of the group (a system user this test creates, its groups
#     from the group database) may: `vfioctl list` and `sandbox list` exit
#     0, via setpriv --init-groups and via runuser;
#  5. root may.
# Users and groups this test creates are removed at the end.
# Usage: permissions.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init permissions "$@"
for tool in setpriv runuser useradd userdel groupadd groupdel; do
  command -v "$tool" > /dev/null || { nok "$tool missing"; exit 1; }
done

group=vfiod-itest member=vfiod-itest-m outsider=nobody nouid=54321
make_member "$group" "$member"
gid=$(getent group "$group" | cut -d: -f3)
id -nG "$outsider" | tr ' ' '\n' | grep -qx "$group" && { nok "$outsider is in $group"; exit 1; }
note "group $group (gid $gid); member $member ($(id "$member")); outsider $outsider ($(id "$outsider"))"

d=$work/d
write_conf "$d" "allowed_group=$group"
start_vfiod "$d" || exit 1
S=(--socket "$sock")

# ---- 1. socket and runtime dir ------------------------------------------
mode=$(stat -c '%a %U:%G' "$sock")
[ "$mode" = "660 root:$group" ] && ok "1: the socket is $mode" || nok "1: the socket is '$mode', want 660 root:$group"
rmode=$(stat -c '%a' "$d/run")
[ "$rmode" = 755 ] && ok "1: vfiod created the runtime dir $rmode (members can reach the socket)" ||
  nok "1: runtime dir mode $rmode: group members cannot reach the socket"

# as UID GID GROUPS -- COMMAND...: run as another user (GROUPS: a gid list,
# or 'init' for the user's groups from the group database, or 'none').
as() {
  local uid=$1 gid=$2 groups=$3
  shift 4
  case $groups in
    init) setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@" ;;
    none) setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@" ;;
    *) setpriv --reuid="$uid" --regid="$gid" --groups="$groups" -- "$@" ;;
  esac
}
fd0=$(fd_count "$vp")

# ---- 2. not in the group: the socket's mode refuses ----------------------
out=$(as "$outsider" nogroup none -- "$vfioctl" "${S[@]}" list 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"cannot reach vfiod"*"Permission denied"* ]] &&
  ok "2: $outsider without the group: exit 1: $out" || nok "2: $outsider without the group: exit $rc: $out"

# ---- 3. what counts is the group the client's process holds -------------
# (SO_PEERGROUPS, issue 16 item 5): a process given the gid (a client in a
# container with --group-add) is a member without an /etc/group entry, even
# under a uid with no passwd entry.
out=$(as "$outsider" nogroup "$gid" -- "$vfioctl" "${S[@]}" sandbox list 2>&1)
rc=$?
[ "$rc" = 0 ] && ok "3: $outsider holding gid $gid (not listed in /etc/group) is a member: $(echo "$out" | head -1)" ||
  nok "3: $outsider holding gid $gid: exit $rc: $out"
out=$(as "$nouid" "$nouid" "$gid" -- "$vfioctl" "${S[@]}" sandbox list 2>&1)
rc=$?
[ "$rc" = 0 ] && ok "3: uid $nouid (no passwd entry, as in a container) holding gid $gid is a member" ||
  nok "3: uid $nouid holding gid $gid: exit $rc: $out"
# vfiod's own check, behind the socket's mode: with the socket opened to
# all, a process without the group is refused by vfiod, even a user listed
# in the group whose process dropped it.
chmod 0666 "$sock"
out=$(as "$outsider" nogroup none -- "$vfioctl" "${S[@]}" list 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"refused this user"* ]] && ok "3: socket opened to all: $outsider without the group is refused by vfiod: $out" ||
  nok "3: socket 0666, $outsider without the group: exit $rc: $out"
grep -q "refused API client uid $(id -u "$outsider"): not root and its process does not hold group '$group'" "$vlog" &&
  ok "3: vfiod's log: $(grep "refused API client uid $(id -u "$outsider")" "$vlog" | head -1 | sed 's/^.*: refused/refused/')" ||
  nok "3: vfiod's log does not say it refused uid $(id -u "$outsider")"
out=$(as "$member" "$(id -g "$member")" none -- "$vfioctl" "${S[@]}" list 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q "refused API client uid $(id -u "$member"):" "$vlog" &&
  ok "3: member $member whose process dropped the group is refused (the process's groups count, not /etc/group)" ||
  nok "3: $member with --clear-groups: exit $rc: $out"
for _ in $(seq 10); do as "$outsider" nogroup none -- "$vfioctl" "${S[@]}" list > /dev/null 2>&1; done
sleep 0.3
fd1=$(fd_count "$vp")
[ "$fd1" -le $((fd0 + 2)) ] && ok "3: 12 refused clients: vfiod fds $fd0 -> $fd1 (<= +2)" ||
  nok "3: 12 refused clients leave vfiod with $fd1 fds, $fd0 before"
chmod 0660 "$sock"
n4=$(wc -l < "$vlog")

# ---- 4. a member may ----------------------------------------------------
out=$(as "$member" nogroup init -- "$vfioctl" "${S[@]}" list --json 2>&1)
rc=$?
[ "$rc" = 0 ] && echo "$out" | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), list)' 2> /dev/null &&
  ok "4: member $member (setpriv --init-groups): vfioctl list exits 0" || nok "4: member: vfioctl list: exit $rc: $out"
out=$(runuser -u "$member" -- "$vfioctl" "${S[@]}" sandbox list --json 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(echo "$out" | tr -d ' \n')" = "[]" ] && ok "4: member $member (runuser): sandbox list exits 0: $out" ||
  nok "4: member via runuser: sandbox list: exit $rc: $out"
tail -n +$((n4 + 1)) "$vlog" | grep -q "refused API client uid $(id -u "$member")" && nok "4: vfiod's log refuses the member" ||
  ok "4: vfiod's log refuses no member"

# ---- 5. root may --------------------------------------------------------
out=$("$vfioctl" "${S[@]}" sandbox list --json 2>&1)
rc=$?
[ "$rc" = 0 ] && ok "5: root: sandbox list exits 0" || nok "5: root: exit $rc: $out"

stop_vfiod "end"
had=" ${made_accounts[*]} "
remove_accounts
{ [[ $had != *" user:$member "* ]] || ! getent passwd "$member" > /dev/null; } &&
  { [[ $had != *" group:$group "* ]] || ! getent group "$group" > /dev/null; } &&
  ok "the user and group this test made are removed" || nok "user $member or group $group still there"
itest_finish
