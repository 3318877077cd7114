#!/bin/bash
# integration suite: sandbox events (issue 15, item 5). vfiod on a fake
# kernel (tests/crash/vfiod-fake on a tree made by fake-tree: IOMMU groups
# 12 and 13), a stand-in QEMU that prints guest-init's console lines into
# the serial log vfiod hands it; `vfioctl sandbox watch --json` in the
# background, its lines checked:
#  - create (a device passed) and delete: create-started, devices-bound,
#    network-ready (its TAP), vm-started, ready, stopping (delete), removed, then SandboxRemoved with
#    the name; timestamps (CLOCK_REALTIME) non-decreasing, within the test's
#    run;
#  - a create that fails in its worker (the device bound for another owner;
#    gpus more than are free): create-started, failed with the error's name
#    and message, removed, SandboxRemoved; a create refused before it began
#    (unknown device) has no events;
#  - a workload that exits 3: workload-exited (exit, "status 3") then
#    stopping (qemu-exited); a guest whose set-up fails: failed
#    (guest-init) with VFIOD_FATAL's error;
#  - `sandbox watch NAME` ends by itself (exit 0) once that sandbox is
#    removed, and shows only its events;
#  - a member of allowed_group watching gets no event of root's sandboxes
#    (events go to the owner's and root's connections only), root's watch
#    gets the member's.
# Usage: events.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init events "$@"
use_fake_vfiod
make_member vfiod-itest-ev vfiod-itest-ev1

d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group=$group"
chmod 0644 "$work/vmlinuz" "$work/initrd"
# [network] on: TAPs and nft rules in this test's network namespace
# (itest_init's unshare), network-ready among the stages.
sed -i 's/^enabled=false$/enabled=true/' "$d/vfiod.conf"
# The stand-in QEMU (replaces fake_dir's): its pid, then guest-init's lines
# on the console fd vfiod gave it. A payload (fw_cfg) with cmd /exit3: the workload exits 3;
# /fatal: set-up fails; both power off. Anything else stays up.
cp "$src/tests/integration/fake-qemu-args.sh" "$d/"
cat > "$d/fake-qemu" << 'EOF'
#!/bin/bash
# pidfile, fd, payload, cmd; the console as fd 9 (fake-qemu-args.sh)
. "$(dirname "$0")/fake-qemu-args.sh"
case "$cmd" in
  /fatal)
    printf 'boot\nVFIOD_FATAL {"error":"workload /fatal: No such file or directory"}\nVFIOD_POWEROFF {}\n' >&9
    sleep 0.5; exit 0 ;;
  /exit3)
    printf 'boot\nVFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
    sleep 0.5
    printf 'VFIOD_EXIT {"status":3,"signal":0,"reason":"exit","runtime_ms":500}\nVFIOD_POWEROFF {}\n' >&9
    sleep 0.5; exit 0 ;;
esac
printf 'VFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
exec -a "fake-qemu $*" sleep 100000
EOF
chmod 0755 "$d/fake-qemu"
start_fake_vfiod "$d" || exit 1
t_start=$(($(date +%s%N) / 1000))

# watch_start NAME [USER] [ARGS...]: `sandbox watch --json ARGS` in the
# background (as USER when not empty), its lines in $work/NAME.out; waits
# until it says it watches. Sets watch_pid.
watch_start() {
  local name=$1 user=$2
  shift 2
  if [ -n "$user" ]; then
    setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$vfioctl" --socket "$sock" sandbox watch --json "$@" \
      > "$work/$name.out" 2> "$work/$name.err" &
  else
    # not through ctl (a function: the job would be a subshell)
    "$vfioctl" --socket "$sock" sandbox watch --json "$@" > "$work/$name.out" 2> "$work/$name.err" &
  fi
  watch_pid=$!
  for _ in $(seq 100); do
    grep -q 'watching' "$work/$name.err" 2> /dev/null && return 0
    kill -0 "$watch_pid" 2> /dev/null || break
    sleep 0.05
  done
  nok "sandbox watch $* ($user) did not start: $(cat "$work/$name.err")"
  return 1
}
# stages FILE ID: the stages of ID's SandboxEvents in order, "removed!" for
# its SandboxRemoved (with ":NAME" when named), one line; "bad" when a
# timestamp goes back or lies outside [t_start, now].
stages() { python3 - "$1" "$2" "$t_start" "$(($(date +%s%N) / 1000))" << 'PY'
import json, sys
path, sid, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out, last = [], 0
for line in open(path):
    j = json.loads(line)
    if j["id"] != sid:
        continue
    if j["signal"] == "SandboxRemoved":
        out.append("removed!" + (":" + j["name"] if j["name"] else ""))
        continue
    ts = j["timestamp_usec"]
    if ts < last or ts < t0 or ts > t1:
        out.append("bad")
    last = ts
    out.append(j["stage"] + ("(" + j["reason"] + ")" if j["reason"] else ""))
print(" ".join(out))
PY
}
# event FILE ID STAGE KEY: KEY of ID's first STAGE event.
event() { python3 - "$@" << 'PY'
import json, sys
path, sid, stage, key = sys.argv[1:]
for line in open(path):
    j = json.loads(line)
    if j["id"] == sid and j.get("stage") == stage:
        print(j[key]); break
PY
}
# wait_for FILE PATTERN: up to 10 s for a line matching PATTERN.
wait_for() { for _ in $(seq 200); do grep -q -- "$2" "$1" 2> /dev/null && return 0; sleep 0.05; done; return 1; }
field() { python3 -c 'import json,sys
j = json.loads(sys.argv[1])
print(j.get(sys.argv[2], ""))' "$1" "$2" 2> /dev/null; }

watch_start all '' || exit 1
all_pid=$watch_pid

# ---- create with a device, wait for ready, delete -------------------------
a=$(ctl sandbox create --name ev-one --device 0000:02:00.0 --wait --timeout 20 --json 2> "$work/a.err")
id=$(field "$a" id)
ctl sandbox delete ev-one > /dev/null 2>&1
wait_for "$work/all.out" "\"SandboxRemoved\",\"id\":\"$id\"" || note "no SandboxRemoved for $id"
got=$(stages "$work/all.out" "$id")
want="create-started devices-bound network-ready vm-started ready(console) stopping(delete) removed removed!:ev-one"
[ -n "$id" ] && [ "$got" = "$want" ] && [ "$(event "$work/all.out" "$id" devices-bound message)" = 0000:02:00.0 ] &&
  [[ $(event "$work/all.out" "$id" network-ready message) == vfd* ]] &&
  ok "create --device 0000:02:00.0 --name ev-one, then delete: $got (timestamps non-decreasing)" ||
  nok "create/delete events of '$id': got '$got', want '$want'; create: $a $(cat "$work/a.err")"

# ---- failed creates ----------------------------------------------------------
ctl bind 0000:01:00.0 > /dev/null 2>&1 || nok "bind 0000:01:00.0"
err=$(ctl sandbox create --name ev-busy --device 0000:01:00.0 2>&1) && nok "create on a bound device succeeded: $err"
wait_for "$work/all.out" '"SandboxRemoved".*"ev-busy"' || note "no SandboxRemoved for ev-busy"
bid=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j["signal"] == "SandboxRemoved" and j["name"] == "ev-busy": print(j["id"])' "$work/all.out")
got=$(stages "$work/all.out" "$bid")
msg=$(event "$work/all.out" "$bid" failed message)
[ -n "$bid" ] && [ "$got" = "create-started failed(Busy) removed removed!:ev-busy" ] && [ -n "$msg" ] && [[ $err == *"$msg"* ]] &&
  ok "a create on a device bound for another owner: $got, the message is the create's error ($msg)" ||
  nok "failed create (bound device): '$got', message '$msg', create said: $err"
ctl release 0000:01:00.0 > /dev/null 2>&1

err=$(ctl sandbox create --gpus 3 --json 2>&1) && nok "create --gpus 3 succeeded: $err"
sleep 0.3
gid=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("stage") == "failed" and "free" in j["message"]: print(j["id"])' "$work/all.out" | tail -1)
got=$(stages "$work/all.out" "$gid")
[ -n "$gid" ] && [ "$got" = "create-started failed(Busy) removed removed!" ] &&
  ok "create --gpus 3 of 2 free units: $got ($(event "$work/all.out" "$gid" failed message))" ||
  nok "failed create (--gpus 3): '$got'; create said: $err"

n0=$(wc -l < "$work/all.out")
err=$(ctl sandbox create --device 0000:09:00.0 2>&1) && nok "create of an unknown device succeeded"
sleep 0.3
[ "$(wc -l < "$work/all.out")" = "$n0" ] && [[ $err == *"no PCI device 0000:09:00.0"* ]] &&
  ok "a create refused before it began (unknown device: $err) has no events" ||
  nok "unknown device: '$err', events $n0 -> $(wc -l < "$work/all.out")"

# ---- the workload's end, a guest set-up failure ----------------------------
err=$(timeout 10 "$vfioctl" --socket "$sock" sandbox watch ex3 2>&1)
rc=$?
[ "$rc" = 2 ] && [[ $err == *"no sandbox 'ex3'"* ]] && ok "watch of an unknown name: exit 2, $err" ||
  nok "watch ex3 before it exists: exit $rc, $err"
x=$(ctl sandbox create --name ex3 --cmd /exit3 --json 2>&1)
xid=$(field "$x" id)
watch_start one '' ex3 || exit 1
one_pid=$watch_pid
for _ in $(seq 100); do
  [ "$(field "$(ctl sandbox show ex3 --json 2>&1)" state)" = exited ] && break
  sleep 0.1
done
ctl sandbox delete ex3 > /dev/null 2>&1
for _ in $(seq 100); do kill -0 "$one_pid" 2> /dev/null || break; sleep 0.1; done
if kill -0 "$one_pid" 2> /dev/null; then
  nok "watch ex3 still runs after ex3 was removed"
  kill "$one_pid"
fi
wait "$one_pid"
rc=$?
got=$(stages "$work/all.out" "$xid")
want="create-started network-ready vm-started ready(console) workload-exited(exit) stopping(qemu-exited) stopping(delete) removed removed!:ex3"
[ "$got" = "$want" ] && [ "$(event "$work/all.out" "$xid" workload-exited message)" = "status 3" ] &&
  ok "a workload that exits 3, then delete: $got" || nok "workload exit events: got '$got', want '$want'"
one=$(stages "$work/one.out" "$xid")
others=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["id"] != sys.argv[2]))' "$work/one.out" "$xid")
[ "$rc" = 0 ] && [ "${one##* }" = "removed!:ex3" ] && [ "$others" = 0 ] &&
  ok "sandbox watch ex3 (started after the create) exits 0 once ex3 is removed, only its events: $one" ||
  nok "watch ex3: exit $rc, '$one', $others of other sandboxes; $(cat "$work/one.err")"

f=$(ctl sandbox create --name ft --cmd /fatal --json 2>&1)
fid=$(field "$f" id)
wait_for "$work/all.out" "\"$fid\",\"stage\":\"stopping\"" || note "no stopping for $fid"
got=$(stages "$work/all.out" "$fid")
[ "$got" = "create-started network-ready vm-started failed(guest-init) stopping(qemu-exited)" ] &&
  [ "$(event "$work/all.out" "$fid" failed message)" = "workload /fatal: No such file or directory" ] &&
  ok "a guest whose set-up fails: $got, with VFIOD_FATAL's error" || nok "VFIOD_FATAL events: '$got'"
ctl sandbox delete ft > /dev/null 2>&1

# ---- who gets the events ---------------------------------------------------
watch_start member "$member" || exit 1
member_pid=$watch_pid
r=$(ctl sandbox create --name root-sb --json 2>&1)
rid=$(field "$r" id)
m=$(setpriv --reuid="$member" --regid="$(id -g "$member")" --init-groups -- "$vfioctl" --socket "$sock" sandbox create --name member-sb --json 2>&1)
mid=$(field "$m" id)
wait_for "$work/all.out" "\"$mid\",\"stage\":\"vm-started\"" || note "no vm-started for $mid"
wait_for "$work/member.out" "\"$mid\",\"stage\":\"vm-started\"" || note "the member saw no vm-started of $mid"
ctl sandbox delete root-sb > /dev/null 2>&1
setpriv --reuid="$member" --regid="$(id -g "$member")" --init-groups -- "$vfioctl" --socket "$sock" sandbox delete member-sb > /dev/null 2>&1
wait_for "$work/member.out" "\"SandboxRemoved\",\"id\":\"$mid\"" || note "the member saw no SandboxRemoved of $mid"
wait_for "$work/all.out" "\"SandboxRemoved\",\"id\":\"$rid\"" || note "root saw no SandboxRemoved of $rid"
mine=$(stages "$work/member.out" "$mid") theirs=$(grep -c -- "$rid" "$work/member.out")
root_sees=$(stages "$work/all.out" "$mid")
foreign=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["id"] != sys.argv[2]))' "$work/member.out" "$mid")
[ -n "$rid" ] && [ -n "$mid" ] && [ "$theirs" = 0 ] && [ "$foreign" = 0 ] && [ "${mine##* }" = "removed!:member-sb" ] &&
  [ "$root_sees" = "$mine" ] &&
  ok "a member's watch gets its own sandbox's events ($mine), none of root's $rid; root's watch gets the member's" ||
  nok "member watch: own '$mine', root's lines $theirs, others $foreign; root sees '$root_sees'; creates: $r / $m"
kill "$member_pid" 2> /dev/null; wait "$member_pid" 2> /dev/null

# ---- interrupt -----------------------------------------------------------------
kill -INT "$all_pid"
for _ in $(seq 50); do kill -0 "$all_pid" 2> /dev/null || break; sleep 0.1; done
wait "$all_pid"
rc=$?
[ "$rc" = 0 ] && ok "sandbox watch exits 0 on SIGINT" || nok "sandbox watch on SIGINT: exit $rc"
text=$(ctl sandbox watch --help 2>&1)
[[ $text == *"ID|NAME"* ]] && ok "sandbox watch --help" || nok "sandbox watch --help: $text"

for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "end"
itest_finish
