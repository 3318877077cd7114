#!/bin/bash
# shellcheck disable=SC2010  # ls -l of /proc/PID/fd: the link targets are the point
# integration suite: files a client names, and what a QEMU may reach (issue 13,
# findings 1, 5 and 6). The real vfiod, default [qemu] user (unprivileged),
# [qemu] serial_log_max_mib=1, a member of allowed_group (a user this test
# creates) as the client; real QEMU under TCG.
#  1. a client's disk that is a link to a root-only file is refused (a
#     symbolic link), the root-only file itself is refused (the member may not
#     open it), so is a kernel the member may not read; nothing starts and the
#     file is unchanged;
#  2. a disk named "x,file=secret,format=qcow2" boots the sandbox: QEMU gets the disk as an
#     fd (/dev/fdset/4), its command line names no client path; replacing the
#     file by a link to the secret after the reply changes nothing: QEMU holds
#     the original inode and no fd of it reaches the secret;
#  3. QEMU runs unprivileged: a uid of [qemu] uid_range, each sandbox its own,
#     no capability, RLIMIT_MEMLOCK soft = hard; the sandbox dir is root's
#     (0711), serial.log root's (0600), the QEMU dir its uid's (0700);
#  4. a compromised QEMU (a process with its uid) cannot replace its serial
#     log, cannot enter another sandbox's QEMU dir; if it points its QMP socket
#     at another socket, vfiod does not talk to that socket (peer check) and
#     stops the sandbox with signals instead;
#  5. links and directories it leaves in its QEMU dir do not lead the delete
#     elsewhere: the linked directory's files survive;
#  6. a console flooding past serial_log_max_mib is cut back (RAM bounded);
#  7. nothing is left.
# Usage: security-files.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init security-files "$@"
for tool in setpriv runuser useradd userdel groupadd groupdel sha256sum; do
  command -v "$tool" > /dev/null || { nok "$tool missing"; exit 1; }
done
build_image || { nok "guest image built"; exit 1; }

group=vfiod-itest-f member=vfiod-itest-f1
make_member "$group" "$member"

# The member's files: the kernel and image copied where it may read them.
mdir=$work/member
mkdir -p "$mdir" && chown "$member" "$mdir" && chmod 0755 "$mdir"
cp "$kernel" "$mdir/vmlinuz" && cp "$image" "$mdir/initrd.img" && chmod 0644 "$mdir/vmlinuz" "$mdir/initrd.img"
secret=$work/secret
echo "TOPSECRET $(date +%s%N)" > "$secret" && chmod 0600 "$secret"
sum0=$(sha256sum < "$secret")
precious=$work/precious
mkdir -p "$precious" && echo keep > "$precious/keep"
evil_sock=$work/evil.sock evil_log=$work/evil.log

d=$work/d
write_conf "$d" "allowed_group=$group"
sed -i 's/^\[qemu\]$/[qemu]\nserial_log_max_mib=1/' "$d/vfiod.conf"
start_vfiod "$d" || exit 1
mctl() { runuser -u "$member" -- "$vfioctl" --socket "$sock" "$@"; }
mcreate() { mctl sandbox create --kernel "$mdir/vmlinuz" --initrd "$mdir/initrd.img" --json "$@"; }
sandbox_dirs_empty() { [ -z "$(ls -A "$d/run/sandboxes" 2>/dev/null)" ]; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2" 2> /dev/null; }

# ---- 1. refused before anything starts ----------------------------------
runuser -u "$member" -- ln -s "$secret" "$mdir/disk-link.img"
out=$(mcreate --disk "$mdir/disk-link.img" 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"symbolic link"* ]] && ok "1: a disk that links to a root-only file: refused: $out" ||
  nok "1: disk link: exit $rc: $out"
out=$(mcreate --disk "$secret" 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"Permission denied"* ]] && ok "1: the root-only file as disk: refused: $out" ||
  nok "1: root-only disk: exit $rc: $out"
out=$(mctl sandbox create --kernel "$secret" --initrd "$mdir/initrd.img" 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"Permission denied"* ]] && ok "1: the root-only file as kernel: refused: $out" ||
  nok "1: root-only kernel: exit $rc: $out"
[ -z "$(our_qemu_pids)" ] && sandbox_dirs_empty && [ "$(sha256sum < "$secret")" = "$sum0" ] &&
  ok "1: no QEMU started, no sandbox dir, the secret unchanged" || nok "1: something changed: QEMU '$(our_qemu_pids)', dirs '$(ls "$d/run/sandboxes")'"

# ---- 2. the disk as an fd -------------------------------------------------
disk="$mdir/x,file=secret,format=qcow2"
runuser -u "$member" -- truncate -s 16M "$disk"
ino=$(stat -c %i "$disk")
# (an empty disk: the guest cannot mount it and powers off after a few
# seconds; QEMU's fds are checked right after the create returns)
mcreate --disk "$disk" > "$work/s0.json" 2> "$work/s0.err"
rc=$?
id0=$(field "$work/s0.json" id) q0=$(field "$work/s0.json" pid)
if [ "$rc" = 0 ] && [ -n "$q0" ] && [ -d "/proc/$q0" ]; then
  ok "2: a disk named '${disk##*/}' starts sandbox $id0 (QEMU pid $q0)"
  args=$(tr '\0' ' ' < "/proc/$q0/cmdline")
  [[ $args == *"file=/dev/fdset/4,"* && $args != *"$mdir"* && $args != *"file=secret"* ]] &&
    ok "2: QEMU gets the disk, kernel and initrd as fds: $(grep -o -- '-add-fd fd=[0-9]*,set=2[^ ]*\|-drive [^ ]*\|-kernel [^ ]*\|-initrd [^ ]*' <<< "$args" | tr '\n' ' ')" ||
    nok "2: QEMU's command line: $args"
  runuser -u "$member" -- mv "$disk" "$mdir/moved.img"
  runuser -u "$member" -- ln -s "$secret" "$disk"
  inos=$(for f in /proc/"$q0"/fd/*; do stat -L -c %i "$f" 2> /dev/null; done | sort -u | tr '\n' ' ')
  sec_ino=$(stat -c %i "$secret")
  [[ " $inos" == *" $ino "* && " $inos" != *" $sec_ino "* ]] &&
    ok "2: after the swap QEMU still holds the original disk (inode $ino), not the secret (inode $sec_ino)" ||
    nok "2: QEMU's fd inodes: $inos (disk $ino, secret $sec_ino)"
else
  nok "2: create with disk '$disk': exit $rc: $(cat "$work/s0.err")"
fi
out=$(mctl sandbox delete "$id0" 2>&1) || nok "2: delete $id0: $out"


# ---- 3. QEMU unprivileged, one uid each --------------------------------
mcreate --wait --timeout 240 > "$work/s1.json" 2> "$work/s1.err" || nok "3: create: $(cat "$work/s1.err")"
mcreate --wait --timeout 240 > "$work/s2.json" 2> "$work/s2.err" || nok "3: create: $(cat "$work/s2.err")"
id1=$(field "$work/s1.json" id) q1=$(field "$work/s1.json" pid)
id2=$(field "$work/s2.json" id) q2=$(field "$work/s2.json" pid)
dir1=$d/run/sandboxes/$id1 dir2=$d/run/sandboxes/$id2
uid_of() { awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$1/status" 2> /dev/null; }
u1=$(uid_of "$q1") u2=$(uid_of "$q2")
u1=${u1%% *} u2=${u2%% *}
caps1=$(awk '/^CapEff:/ {print $2}' "/proc/$q1/status" 2> /dev/null)
[ -n "$u1" ] && [ -n "$u2" ] && [ "$u1" -ge 1879113728 ] && [ "$u2" -ge 1879113728 ] && [ "$u1" != "$u2" ] &&
  [ "$(uid_of "$q1")" = "$u1 $u1 $u1 $u1" ] && [ "$caps1" = 0000000000000000 ] &&
  ok "3: QEMUs run as uids $u1 and $u2 (from [qemu] uid_range, real=effective=saved=fs), CapEff $caps1" ||
  nok "3: QEMU uids '$(uid_of "$q1")' / '$(uid_of "$q2")', CapEff '$caps1'"
ml=$(awk '/^Max locked memory/ {print $4, $5}' "/proc/$q1/limits" 2> /dev/null)
[ -n "$ml" ] && [ "${ml% *}" = "${ml#* }" ] && ok "3: RLIMIT_MEMLOCK soft = hard = ${ml% *} bytes" ||
  nok "3: RLIMIT_MEMLOCK soft/hard: '$ml'"
modes="$(stat -c '%a %U' "$dir1") $(stat -c '%a %U' "$dir1/serial.log") $(stat -c '%a %u' "$dir1/qemu")"
[ "$modes" = "711 root 600 root 700 $u1" ] && ok "3: $id1: dir 711 root, serial.log 600 root, qemu/ 700 uid $u1" ||
  nok "3: modes of dir, serial.log, qemu/: $modes"

# ---- 4. a compromised QEMU -------------------------------------------------
gid1=$(awk '/^Gid:/ {print $2}' "/proc/$q1/status")
asq() { local u=$1; shift; setpriv --reuid="$u" --regid="$gid1" --clear-groups -- "$@"; }
out=$(asq "$u1" sh -c "rm -f '$dir1/serial.log' && ln -s /dev/zero '$dir1/serial.log'" 2>&1)
[ -f "$dir1/serial.log" ] && [ ! -L "$dir1/serial.log" ] && ok "4: QEMU's uid cannot replace its serial.log: $out" ||
  nok "4: serial.log replaced by QEMU's uid"
out=$(asq "$u1" ls "$dir2/qemu" 2>&1)
[ $? != 0 ] && ok "4: QEMU $u1 cannot enter $id2's QEMU dir: $out" || nok "4: QEMU $u1 lists $id2's QEMU dir: $out"
python3 - "$evil_sock" "$evil_log" << 'PY' &
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(4)
s.settimeout(120)
got = b""
try:
    while True:
        c, _ = s.accept()
        c.settimeout(3)
        try:
            while (b := c.recv(4096)):
                got += b
        except OSError:
            pass
        c.close()
        open(log, "ab").write(b"[connection] " + got + b"\n")
except OSError:
    pass
PY
evil_pid=$!
sleep 0.5
asq "$u1" sh -c "rm -f '$dir1/qemu/qmp.sock' && ln -s '$evil_sock' '$dir1/qemu/qmp.sock'"
out=$(mctl sandbox delete "$id1" 2>&1)
rc=$?
sleep 0.5
[ "$rc" = 0 ] && grep -q "not the sandbox's QEMU" "$vlog" && ! grep -q '\[connection\] .' "$evil_log" 2> /dev/null &&
  ok "4: QMP socket pointed elsewhere: vfiod refused to talk to it ($(grep -o "QMP socket [^;]*not talking to it" "$vlog" | head -1 | sed "s|$work|WORK|g")), sent it nothing, stopped $id1 with signals" ||
  nok "4: delete $id1: exit $rc: $out; evil socket got: $(cat "$evil_log" 2> /dev/null | head -c 200)"
kill "$evil_pid" 2> /dev/null

# ---- 5 and 6. the delete stays in the sandbox dir; the console is bounded --
asq "$u2" sh -c "ln -s '$precious' '$dir2/qemu/link' && mkdir '$dir2/qemu/sub' && ln -s '$precious' '$dir2/qemu/sub/l2' && ln -s '$precious/keep' '$dir2/qemu/sub/f'"
sfd=''
for f in /proc/"$q2"/fd/*; do [ "$(readlink "$f")" = "$dir2/serial.log" ] && sfd=$f && break; done
[ -n "$sfd" ] || nok "6: QEMU $q2 has no fd of $dir2/serial.log"
head -c 3145728 /dev/zero | tr '\0' 'A' >> "${sfd:-/dev/null}"
for _ in $(seq 40); do
  [ "$(stat -c %s "$dir2/serial.log")" -lt 1048576 ] && break
  sleep 0.25
done
size=$(stat -c %s "$dir2/serial.log")
[ "$size" -lt 1048576 ] && grep -q "console log cut back" "$dir2/serial.log" &&
  ok "6: 3 MiB written to QEMU's console fd (${sfd#/proc/}): serial.log cut back to $size bytes (max 1 MiB), marked" ||
  nok "6: serial.log is $size bytes after 3 MiB past a 1 MiB cap"
out=$(mctl sandbox delete "$id2" 2>&1)
[ -f "$precious/keep" ] && [ ! -e "$dir2" ] && ok "5: delete removed $id2's dir, not what its links pointed to" ||
  nok "5: after delete: precious/keep $( [ -f "$precious/keep" ] && echo kept || echo GONE), dir $( [ -e "$dir2" ] && echo left || echo gone): $out"
[ "$(sha256sum < "$secret")" = "$sum0" ] && ok "the secret is unchanged" || nok "the secret changed"

expect_clean "$d" "7" "$id0" "$id1" "$id2"
stop_vfiod "end"
remove_accounts
itest_finish
