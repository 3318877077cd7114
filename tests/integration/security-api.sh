#!/bin/bash
# integration suite: what a member of allowed_group can do to the API
# (issue 13, findings 2 and 7). Two members, A and B, of a group this test
# creates (removed at the end), attack the real vfiod, in a network
# namespace of its own (lib.sh):
#  a. connections that never authenticate (api-attack.py idle): A opens 40,
#     B 40, with max_connections=20, max_connections_per_uid=16: 16 of A's
#     and 4 of B's wait and are closed at the 5 s auth_timeout, the others
#     are refused at once with a line naming the cap; vfiod's fds stay
#     bounded; root's `vfioctl list` answers meanwhile; A's own vfioctl is
#     refused with the cap named; the log holds at most a few lines;
#  b. clients that never read (api-attack.py noread, 8 of A's) while root
#     makes signals flow (3000 creates that fail at once, VFIOD_FAIL_STAGE=dir,
#     6000 SandboxStateChanged to every client, and to root 12000
#     SandboxEvent/SandboxRemoved too): each is disconnected, vfiod's RSS grows by
#     less than 8 MiB (before the fix: +67 MiB), root's reading client is
#     not disconnected;
#  c. CreateSandbox with 2,000,000 `devices` (a 40 MB message; before the
#     fix it blocked the main loop 7 s and kept 420 MB), 65 devices, a
#     device twice, and an undecodable 8 MB message: refused
#     (LimitExceeded, InvalidArgument) within seconds while root's calls
#     are answered, nothing created, RSS back down, the log not flooded;
#  d. owners (tests/crash/vfiod-fake: vfiod on a fake kernel tree made by
#     fake-tree, stand-in QEMU): B cannot delete A's sandbox nor release A's
#     binding (PermissionDenied, nothing changed), A can, root can; B sees
#     A's sandbox and binding with owner_uid; `bind --force` and `reconcile
#     --force` are root's (PermissionDenied for a member, nothing bound); a
#     device of A's sandbox cannot be released by anyone (Busy); 100 refused
#     calls write at most 21 lines of log.
# Usage: security-api.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init security-api "$@"
for tool in setpriv useradd userdel groupadd groupdel; do
  command -v "$tool" > /dev/null || { nok "$tool missing"; exit 1; }
done
attack=$src/tests/integration/api-attack.py
# The members run the attacks with the system's python3 (a python3 first on
# root's PATH may live where they cannot go).
py=/usr/bin/python3
[ -x "$py" ] || { nok "$py missing (Debian package python3)"; exit 1; }
use_fake_vfiod

group=vfiod-sapi ua=vfiod-sapi-a ub=vfiod-sapi-b
make_members "$group" "$ua" "$ub"
uid_a=$(id -u "$ua") uid_b=$(id -u "$ub")
note "members of $group: $ua (uid $uid_a), $ub (uid $uid_b)"
# The files attack clients write must be theirs.
aw=$work/attack
mkdir -p "$aw" && chmod 0777 "$aw"
log_size() { stat -c %s "$vlog"; }
log_count() { grep -c -- "$1" "$vlog"; }

echo "not a kernel" > "$work/vmlinuz"
echo "not an initrd" > "$work/initrd"
chmod 0644 "$work/vmlinuz" "$work/initrd"

# ==== part 1: the real vfiod ==============================================
d=$work/d
write_conf "$d" "allowed_group=$group" "max_connections=20" "max_connections_per_uid=16" "auth_timeout=5"
sed -i "/^\[qemu\]/a kernel=$work/vmlinuz\ninitrd=$work/initrd" "$d/vfiod.conf"
# G_SLICE=always-malloc as vfiod.service sets it (GLib 2.74's slice
# allocator never gives memory back); VFIOD_FAIL_STAGE=dir: every create
# fails at its first stage, after its "creating" signal (b).
start_vfiod "$d" G_SLICE=always-malloc VFIOD_FAIL_STAGE=dir || exit 1
S=(--socket "$sock")
sec0=$SECONDS
fd0=$(fd_count "$vp") rss0=$(rss_kb "$vp")
note "vfiod pid $vp: $fd0 fds, RSS $rss0 KiB"

# ---- a. connections that never authenticate --------------------------------
log0=$(log_size)
as "$ua" "$py" "$attack" idle "$sock" 40 9 > "$aw/idle-a.json" 2>&1 &
ia=$!
sleep 0.5
as "$ub" "$py" "$attack" idle "$sock" 40 9 > "$aw/idle-b.json" 2>&1 &
ib=$!
sleep 1
fd1=$(fd_count "$vp")
# Each connection waiting to authenticate: its socket, vfiod's dup of it,
# the eventfd of its deadline's GCancellable.
[ "$fd1" -le $((fd0 + 3 * 20 + 4)) ] && ok "a: 80 idle connections of 2 members: vfiod holds $fd1 fds ($fd0 before; cap 20 connections, 3 fds each)" ||
  nok "a: vfiod holds $fd1 fds with 80 idle connections ($fd0 before)"
ta=$(now_ms)
out=$(ctl list 2>&1)
rc=$? tb=$(now_ms)
[ "$rc" = 0 ] && [ $((tb - ta)) -lt 2000 ] && ok "a: root's vfioctl list answers in $((tb - ta)) ms meanwhile (kept for root beyond max_connections)" ||
  nok "a: root's vfioctl list: exit $rc after $((tb - ta)) ms: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" list 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"max_connections_per_uid"* ]] && ok "a: A's own vfioctl is refused: $out" ||
  nok "a: A's vfioctl while A holds 16: exit $rc: $out"
out=$(as "$ub" "$vfioctl" "${S[@]}" list 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"[daemon] max_connections"* ]] && ok "a: B's vfioctl is refused: $out" ||
  nok "a: B's vfioctl at the total cap: exit $rc: $out"
wait "$ia" "$ib"
note "a: A: $(cat "$aw/idle-a.json")"
note "a: B: $(cat "$aw/idle-b.json")"
check_idle() { # check_idle LABEL FILE WAITED REFUSED
  python3 - "$2" "$3" "$4" << 'PY'
import json, sys
j = json.load(open(sys.argv[1]))
waited, refused = int(sys.argv[2]), int(sys.argv[3])
assert j["connected"] == 40 and j["still_open"] == 0, j
assert j["closed_later"] == waited and j["closed_at_once"] == refused, j
assert waited == 0 or 4.5 <= j["closed_after_s_min"] and j["closed_after_s_max"] <= 8, j
assert refused == 0 or any("vfiod refused the connection" in l for l in j["lines"]), j
PY
}
check_idle A "$aw/idle-a.json" 16 24 && ok "a: A: 16 connections closed at the 5 s deadline, 24 refused at once with vfiod's reason" ||
  nok "a: A's idle connections: $(cat "$aw/idle-a.json")"
check_idle B "$aw/idle-b.json" 4 36 && ok "a: B: 4 closed at the deadline (total cap 20), 36 refused at once" ||
  nok "a: B's idle connections: $(cat "$aw/idle-b.json")"
sleep 0.3
fd2=$(fd_count "$vp")
[ "$fd2" -le $((fd0 + 1)) ] && ok "a: afterwards vfiod holds $fd2 fds" || nok "a: afterwards vfiod holds $fd2 fds ($fd0 before)"
grown=$(($(log_size) - log0))
n_ref=$(log_count "refused an API connection") n_to=$(log_count "did not authenticate within")
[ "$grown" -lt 16384 ] && [ "$n_ref" -le 10 ] && [ "$n_to" -le 10 ] &&
  ok "a: log: +$grown bytes, $n_ref lines of refusals for 60, $n_to of deadlines for 20" ||
  nok "a: log +$grown bytes, $n_ref refusal lines, $n_to deadline lines"

note "a took $((SECONDS - sec0)) s"; sec0=$SECONDS
# ---- b. clients that never read while signals flow -------------------------
log0=$(log_size)
pids=()
for i in 1 2 3 4 5 6 7 8; do
  as "$ua" "$py" "$attack" noread "$sock" "$aw/noread-$i" 120 > "$aw/noread-$i.json" 2>&1 &
  pids+=($!)
done
for i in 1 2 3 4 5 6 7 8; do
  for _ in $(seq 100); do [ -f "$aw/noread-$i" ] && break; sleep 0.1; done
done
rss1=$(rss_kb "$vp")
out=$(python3 "$attack" creates "$sock" 3000 2>&1)
rss2=$(rss_kb "$vp")
note "b: root's client: $out"
for i in 1 2 3 4 5 6 7 8; do touch "$aw/noread-$i.done"; done
wait "${pids[@]}"
python3 - "$out" << 'PY' && ok "b: root reads its replies and 18000 signals (per failed create: SandboxStateChanged creating and failed; SandboxEvent create-started, failed, removed; SandboxRemoved) and keeps its connection" || nok "b: root's creating client: $out"
import json, sys
j = json.loads(sys.argv[1])
assert j["replies"] == 3000 and j["signals"] == 18000 and not j["eof"], j
PY
kicked=0
for i in 1 2 3 4 5 6 7 8; do
  python3 - "$aw/noread-$i.json" << 'PY' && kicked=$((kicked + 1))
import json, sys
j = json.load(open(sys.argv[1]))
assert j["eof"] and j["signals"] < 1000, j
PY
done
[ "$kicked" = 8 ] && ok "b: all 8 clients that did not read were disconnected ($(cat "$aw/noread-1.json"))" ||
  nok "b: $kicked of 8 non-reading clients disconnected: $(cat "$aw"/noread-?.json | tr '\n' ' ')"
[ $((rss2 - rss1)) -lt 8192 ] && ok "b: vfiod's RSS $rss1 -> $rss2 KiB over 6000 signals to 8 clients that do not read (< +8 MiB)" ||
  nok "b: vfiod's RSS $rss1 -> $rss2 KiB"
n=$(log_count "does not read what vfiod sends")
[ "$n" -ge 1 ] && [ "$n" -le 10 ] && ok "b: the log says so ($n lines): $(grep -m1 "does not read what vfiod sends" "$vlog" | sed 's/^.*API client/API client/')" ||
  nok "b: $n log lines about clients that do not read"
grown=$(($(log_size) - log0))
[ "$grown" -lt 16384 ] && ok "b: log +$grown bytes for 3000 failed creates" || nok "b: log +$grown bytes for 3000 failed creates"

note "b took $((SECONDS - sec0)) s"; sec0=$SECONDS
# ---- c. huge requests ------------------------------------------------------
log0=$(log_size) rss1=$(rss_kb "$vp")
bdf=$(find /sys/bus/pci/devices -mindepth 1 -maxdepth 1 -printf "%f\n" | sort | head -1)
lat=$aw/latency
( for _ in $(seq 10); do
    ta=$(now_ms); ctl sandbox list > /dev/null 2>&1; echo $(($(now_ms) - ta))
    sleep 0.2
  done > "$lat" ) &
lp=$!
out=$(as "$ua" "$py" "$attack" huge "$sock" 2000000 "$bdf" 2>&1)
wait "$lp"
note "c: 2,000,000 devices: $out; root's sandbox list meanwhile took (ms): $(tr '\n' ' ' < "$lat")"
python3 - "$out" << 'PY' && ok "c: CreateSandbox with 2,000,000 devices (40 MB): refused with LimitExceeded" || nok "c: huge devices: $out"
import json, sys
j = json.loads(sys.argv[1])
assert j["reply"] == "error" and j["error"] == "org.vfiod.Error.LimitExceeded", j
assert "2000000 entries, at most 64" in j["message"] and j["seconds"] < 10, j
PY
slowest=$(sort -n "$lat" | tail -1)
[ "$(wc -l < "$lat")" = 10 ] && [ "$slowest" -lt 5000 ] && ok "c: root's calls were answered meanwhile (slowest $slowest ms)" ||
  nok "c: root's calls during the huge request (ms): $(tr '\n' ' ' < "$lat")"
devs=()
for _ in $(seq 65); do devs+=(--device "$bdf"); done
out=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create "${devs[@]}" 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"65 entries, at most 64"* ]] && ok "c: 65 devices: exit 1: $out" || nok "c: 65 devices: exit $rc: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create --device "$bdf" --device "$bdf" 2>&1)
rc=$?
[ "$rc" = 2 ] && [[ $out == *"given twice"* ]] && ok "c: a device twice: exit 2: $out" || nok "c: a device twice: exit $rc: $out"
out=$(as "$ua" "$py" "$attack" garbage "$sock" 8000000 2>&1)
note "c: an 8 MB message GDBus cannot decode: $out"
sleep 3.5 # vfiod gives the memory back 1-3 s after a refusal
rss2=$(rss_kb "$vp")
[ $((rss2 - rss1)) -lt 32768 ] && ok "c: vfiod's RSS $rss1 -> $rss2 KiB 3 s later (< +32 MiB)" || nok "c: vfiod's RSS $rss1 -> $rss2 KiB"
grown=$(($(log_size) - log0))
[ "$grown" -lt 65536 ] && grep -q "bytes, cut)" "$vlog" && ok "c: log +$grown bytes (GDBus's hex dump of the 8 MB message cut to 1 KiB)" ||
  nok "c: log +$grown bytes"
[ "$(journal_counts "$d")" = "0 0" ] && [ -z "$(ls -A "$d/run/sandboxes")" ] && [ "$(ctl sandbox list --json | tr -d ' \n')" = "[]" ] &&
  ok "c: nothing created (journal, sandboxes/, sandbox list)" || nok "c: something was created: $(journal_counts "$d"); $(ls -A "$d/run/sandboxes")"
note "c took $((SECONDS - sec0)) s"; sec0=$SECONDS
stop_vfiod "part 1"

# ==== part 2: owners, on a fake kernel ======================================
d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group=$group"
start_fake_vfiod "$d" || exit 1
S=(--socket "$sock")
jq_py() { python3 -c "import json,sys; j=json.load(sys.stdin); $1" 2>&1; }
driver_of() { basename "$(readlink "$d/fake/sys/bus/pci/devices/$1/driver" 2> /dev/null)" 2> /dev/null; }
journal_uid() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print(",".join("%s=%s" % (x["bdf"], x.get("owner_uid", 0)) for x in j["devices"]))' "$d/state/journal.json" 2>&1
}

# ---- sandboxes ----
id1=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create --json 2>&1 | jq_py 'print(j["id"], j["owner_uid"])')
read -r id1 owner1 <<< "$id1"
[ "$owner1" = "$uid_a" ] && ok "d: A created $id1, owner_uid $owner1" || nok "d: A's create: $id1 $owner1"
out=$(as "$ub" "$vfioctl" "${S[@]}" sandbox list --json 2>&1 | jq_py 'print([(s["id"], s["owner_uid"]) for s in j])')
[[ $out == *"('$id1', $uid_a)"* ]] && ok "d: B sees A's sandbox with its owner: $out" || nok "d: B's sandbox list: $out"
qpid=$(ctl sandbox show "$id1" --json | jq_py 'print(j["pid"])')
out=$(as "$ub" "$vfioctl" "${S[@]}" sandbox delete "$id1" 2>&1)
rc=$?
state=$(ctl sandbox show "$id1" --json 2>&1 | jq_py 'print(j["state"])')
[ "$rc" = 1 ] && [[ $out == *"belongs to uid $uid_a ($ua)"* ]] && [ "$state" = running ] && kill -0 "$qpid" 2> /dev/null &&
  ok "d: B cannot delete A's sandbox (exit 1: $out); still running, its QEMU (pid $qpid) alive" ||
  nok "d: B deletes A's sandbox: exit $rc: $out; state $state"
out=$(as "$ua" "$vfioctl" "${S[@]}" sandbox delete "$id1" 2>&1)
rc=$?
[ "$rc" = 0 ] && ! kill -0 "$qpid" 2> /dev/null && ok "d: A deletes its own sandbox: $out" || nok "d: A's delete: exit $rc: $out"
id2=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create --json 2>&1 | jq_py 'print(j["id"])')
out=$(ctl sandbox delete "$id2" 2>&1)
rc=$?
[ "$rc" = 0 ] && ok "d: root deletes A's sandbox $id2" || nok "d: root deletes A's sandbox: exit $rc: $out"

note "d (sandboxes) took $((SECONDS - sec0)) s"; sec0=$SECONDS
# ---- bindings ----
out=$(as "$ua" "$vfioctl" "${S[@]}" bind 0000:01:00.0 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(journal_uid)" = "0000:01:00.0=$uid_a,0000:01:00.1=$uid_a" ] && [ "$(driver_of 0000:01:00.1)" = vfio-pci ] &&
  ok "d: A binds group 12: journal $(journal_uid)" || nok "d: A's bind: exit $rc: $out; journal $(journal_uid)"
out=$(as "$ub" "$vfioctl" "${S[@]}" list --json 2>&1 | jq_py 'print([(x["bdf"], x["owner"], x["owner_uid"]) for x in j if x["owner"]])')
[[ $out == *"('0000:01:00.1', 'vfioctl', $uid_a)"* ]] && ok "d: B sees A's binding with its owner: $out" || nok "d: B's list: $out"
out=$(as "$ub" "$vfioctl" "${S[@]}" release 0000:01:00.1 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"by uid $uid_a; only that user or root may release it"* ]] && [ "$(driver_of 0000:01:00.1)" = vfio-pci ] &&
  [ "$(journal_uid)" = "0000:01:00.0=$uid_a,0000:01:00.1=$uid_a" ] &&
  ok "d: B cannot release A's binding (exit 1: $out); still on vfio-pci, still A's" ||
  nok "d: B releases A's binding: exit $rc: $out; driver $(driver_of 0000:01:00.1); journal $(journal_uid)"
out=$(as "$ub" "$vfioctl" "${S[@]}" bind 0000:01:00.0 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"uid $uid_a"* ]] && ok "d: B's bind of A's group under the same owner name is refused: $out" ||
  nok "d: B binds A's group: exit $rc: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" release 0000:01:00.1 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(driver_of 0000:01:00.1)" = snd_hda_intel ] && ok "d: A releases its binding; the audio function is back on snd_hda_intel" ||
  nok "d: A's release: exit $rc: $out"
as "$ua" "$vfioctl" "${S[@]}" bind 0000:01:00.0 > /dev/null 2>&1
out=$(ctl release 0000:01:00.0 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(journal_uid)" = "" ] && ok "d: root releases A's binding" || nok "d: root's release: exit $rc: $out; journal $(journal_uid)"

note "d (bindings) took $((SECONDS - sec0)) s"; sec0=$SECONDS
# ---- root only ----
out=$(as "$ub" "$vfioctl" "${S[@]}" bind 0000:02:00.0 --force 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"bind --force"*"root only"* ]] && [ "$(journal_uid)" = "" ] && [ -z "$(driver_of 0000:02:00.0)" ] &&
  ok "d: B's bind --force: exit 1: $out; nothing bound" || nok "d: B's bind --force: exit $rc: $out; journal $(journal_uid)"
out=$(as "$ub" "$vfioctl" "${S[@]}" reconcile --force 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"reconcile --force"*"root only"* ]] && ok "d: B's reconcile --force: exit 1: $out" ||
  nok "d: B's reconcile --force: exit $rc: $out"
out=$(as "$ub" "$vfioctl" "${S[@]}" reconcile 2>&1)
rc=$?
[ "$rc" = 0 ] && ok "d: B's plain reconcile is allowed" || nok "d: B's reconcile: exit $rc: $out"
out=$(ctl bind 0000:02:00.0 --force 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(driver_of 0000:02:00.0)" = vfio-pci ] && ok "d: root's bind --force works" || nok "d: root's bind --force: exit $rc: $out"
ctl release 0000:02:00.0 > /dev/null 2>&1

# ---- a device of A's sandbox ----
id3=$(as "$ua" "$vfioctl" "${S[@]}" sandbox create --device 0000:02:00.0 --json 2>&1 | jq_py 'print(j["id"])')
[ "$(journal_uid)" = "0000:02:00.0=$uid_a" ] && ok "d: A's sandbox $id3 holds 0000:02:00.0, journaled as A's" ||
  nok "d: A's sandbox with a device: $id3; journal $(journal_uid)"
out=$(as "$ub" "$vfioctl" "${S[@]}" release 0000:02:00.0 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"in use by sandbox $id3"* ]] && ok "d: B cannot release the device of A's sandbox: $out" ||
  nok "d: B releases A's sandbox's device: exit $rc: $out"
log0=$(log_size)
for _ in $(seq 100); do as "$ub" "$vfioctl" "${S[@]}" release 0000:02:00.0 > /dev/null 2>&1; done
n=$(grep -c "ReleaseDevice failed" "$vlog")
grown=$(($(log_size) - log0))
[ "$n" -le 21 ] && [ "$grown" -lt 8192 ] && ok "d: 100 refused releases: $n log lines in all, +$grown bytes" ||
  nok "d: 100 refused releases: $n log lines, +$grown bytes"
out=$(as "$ub" "$vfioctl" "${S[@]}" sandbox delete "$id3" 2>&1)
[ $? = 1 ] && ok "d: B cannot delete A's sandbox $id3 either" || nok "d: B deletes $id3: $out"
out=$(as "$ua" "$vfioctl" "${S[@]}" sandbox delete "$id3" 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(journal_uid)" = "" ] && [ -z "$(driver_of 0000:02:00.0)" ] && ok "d: A deletes it; its device is released" ||
  nok "d: A deletes $id3: exit $rc: $out; journal $(journal_uid); driver $(driver_of 0000:02:00.0)"
note "d (the rest) took $((SECONDS - sec0)) s"; sec0=$SECONDS
stop_vfiod "part 2"
left=''
for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -0 "$p" 2> /dev/null && left="$left $p"; done
[ -z "$left" ] && ok "no stand-in QEMU left" || nok "stand-in QEMUs left:$left"
had=${#made_accounts[@]}
remove_accounts
! getent passwd "$ua" > /dev/null && ! getent passwd "$ub" > /dev/null && ! getent group "$group" > /dev/null &&
  ok "the users and group this test made ($had) are removed" || nok "users or group left"
itest_finish
