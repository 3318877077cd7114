#!/bin/bash
# integration suite: a sandbox's identity and its workload's result (issue
# 15, items 1 and 4). vfiod on a fake kernel (tests/crash/vfiod-fake on a
# tree made by fake-tree), CPU-only sandboxes, a stand-in QEMU that prints
# guest-init's console lines into the serial log vfiod hands it:
#  - create with --name and --label: show by name gives them back;
#  - the same name and the same spec again: the same id, no second QEMU;
#  - the same name with another spec: AlreadyExists naming the id, nothing
#    created; a bad name (sb-..., upper case) or label: InvalidArgument;
#  - vfiod killed and started again: the adopted sandbox keeps its name and
#    labels (journaled);
#  - delete by name;
#  - a workload that exits 3 (VFIOD_EXIT {"status":3}): state exited,
#    workload_exit_status 3; one whose set-up fails (VFIOD_FATAL): state
#    failed with its reason.
# Usage: identity.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init identity "$@"
fake_tree=$build/tests/integration/fake-tree
vfiod_fake=$build/tests/crash/vfiod-fake
for f in "$fake_tree" "$vfiod_fake"; do
  [ -x "$f" ] || { nok "$f missing (build it)"; exit 1; }
done

d=$work/f
mkdir -p "$d"
"$fake_tree" "$d/fake" > "$d/roots" || { nok "fake-tree"; exit 1; }
# The stand-in QEMU: its pid (-pidfile, and in qemu.pids), then guest-init's
# lines on the console vfiod gave it. The workload is told by the payload
# (-fw_cfg, its cmd record): /exit3 exits 3, /fatal fails set-up; both
# power off (the stand-in exits 0); anything else stays up.
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
    printf 'boot\nVFIOD_READY {"v":1,"kernel":"fake","modules":[]}\nhello from the workload\n' >&9
    sleep 0.5
    printf 'VFIOD_EXIT {"status":3,"signal":0,"reason":"exit","runtime_ms":500}\nVFIOD_POWEROFF {}\n' >&9
    sleep 0.5; exit 0 ;;
esac
printf 'VFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
exec -a "fake-qemu $*" sleep 100000
EOF
chmod 0755 "$d/fake-qemu"
echo k > "$work/vmlinuz" && echo i > "$work/initrd"
cat > "$d/vfiod.conf" << CONF
# identity.sh (TEST ONLY): vfiod-fake, stand-in QEMU
[daemon]
state_dir=$d/state
runtime_dir=$d/run
allowed_group=
[qemu]
binary=$d/fake-qemu
user=root
accel=tcg
stop_timeout=2
kernel=$work/vmlinuz
initrd=$work/initrd
[network]
enabled=false
[testing]
$(cat "$d/roots")
CONF
vfiod_real=$vfiod
vfiod=$vfiod_fake
start_vfiod "$d" || exit 1
field() { python3 -c 'import json,sys
j = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    j = j.get(k) if isinstance(j, dict) else None
print("" if j is None else j)' "$1" "$2" 2> /dev/null; }
qemus() { grep -c . "$d/qemu.pids" 2> /dev/null || echo 0; }

# ---- create with a name and labels, show by name -----------------------------
a=$(ctl sandbox create --name web-1 --label app=web --label team/x=a-b --memory 128 --json 2> "$work/a.err")
id=$(field "$a" id)
s=$(ctl sandbox show web-1 --json 2>&1)
[ -n "$id" ] && [ "$(field "$s" id)" = "$id" ] && [ "$(field "$s" name)" = web-1 ] &&
  [ "$(field "$s" labels.app)" = web ] && [ "$(field "$s" labels.team/x)" = a-b ] &&
  ok "create --name web-1 --label app=web --label team/x=a-b: $id; show web-1 gives the name and labels" ||
  nok "create with name/labels: $a $(cat "$work/a.err"); show: $s"

# ---- the same again: idempotent ---------------------------------------------
n0=$(qemus)
b=$(ctl sandbox create --name web-1 --label team/x=a-b --label app=web --memory 128 --json 2> "$work/b.err")
[ "$(field "$b" id)" = "$id" ] && [ "$(qemus)" = "$n0" ] &&
  [ "$(ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] &&
  ok "the same name and spec again (labels in another order): the same id $id, no second QEMU ($n0)" ||
  nok "same name, same spec: got '$(field "$b" id)' $(cat "$work/b.err"), QEMUs $n0 -> $(qemus)"

# ---- the same name, another spec: AlreadyExists, nothing made ----------------
# (gdbus shows the D-Bus error name; vfioctl its message)
gcreate() { timeout 20 gdbus call --address "unix:path=$sock" --dest org.vfiod --object-path /org/vfiod/Manager1 \
  --method org.vfiod.Manager1.CreateSandbox "$1" 2>&1; }
err=$(gcreate "{'name': <'web-1'>, 'labels': <{'app': 'web', 'team/x': 'a-b'}>, 'memory_mib': <uint32 256>}")
err2=$(ctl sandbox create --name web-1 --label app=web --label team/x=a-b --memory 256 2>&1)
rc=$?
[[ $err == *org.vfiod.Error.AlreadyExists* ]] && [[ $err == *"$id"* ]] && [ "$rc" != 0 ] && [[ $err2 == *"exists already ($id)"* ]] &&
  [ "$(qemus)" = "$n0" ] && [ "$(ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] &&
  ok "the same name with another spec (memory 256): $(grep -o 'org.vfiod.Error.AlreadyExists.*' <<< "$err" | cut -c1-120); nothing created" ||
  nok "same name, other spec: $err; vfioctl exit $rc: $err2; QEMUs $n0 -> $(qemus)"

# ---- bad names and labels: InvalidArgument, nothing made ---------------------
bad=0 long=$(printf 'a%.0s' $(seq 64)) longkey=$(printf 'k%.0s' $(seq 64)) longval=$(printf 'v%.0s' $(seq 257))
for o in "'name': <'sb-web'>" "'name': <'Web'>" "'name': <'-web'>" "'name': <'$long'>" "'name': <'we_b'>" \
  "'name': <uint32 1>" "'labels': <{'k:y': 'v'}>" "'labels': <{'k': 'a\\tb'}>" "'labels': <{'$longkey': 'v'}>" \
  "'labels': <{'k': '$longval'}>" "'labels': <['a']>"; do
  e=$(gcreate "{$o}")
  [[ $e == *org.vfiod.Error.InvalidArgument* ]] && bad=$((bad + 1)) || note "$o: $e"
done
[ "$bad" = 11 ] && [ "$(qemus)" = "$n0" ] &&
  ok "bad names (sb-..., upper case, leading '-', 64 bytes, '_', not a string) and labels (':', a tab, 64-byte key, 257-byte value, not a{ss}): InvalidArgument, nothing created" ||
  nok "bad names/labels: $bad of 11 refused as InvalidArgument; QEMUs $n0 -> $(qemus)"

# ---- two at once with one name: one sandbox ---------------------------------
ctl sandbox create --name twin --json > "$work/t1.json" 2> "$work/t1.err" &
p1=$!
ctl sandbox create --name twin --json > "$work/t2.json" 2> "$work/t2.err" &
p2=$!
wait "$p1"; r1=$?
wait "$p2"; r2=$?
t1=$(field "$(cat "$work/t1.json")" id) t2=$(field "$(cat "$work/t2.json")" id)
twins=$(ctl sandbox list --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s.get("name") == "twin"))')
[ "$r1" = 0 ] && [ "$r2" = 0 ] && [ -n "$t1" ] && [ "$t1" = "$t2" ] && [ "$twins" = 1 ] &&
  ok "two concurrent creates named twin: one sandbox ($t1), both answered with it" ||
  nok "concurrent twin: exits $r1/$r2, ids '$t1' '$t2', $twins named twin: $(cat "$work/t1.err" "$work/t2.err")"

# ---- vfiod restarts: the adopted sandbox keeps name and labels ----------------
kill -9 "$vp"; wait "$vp" 2> /dev/null; vp=''
j=$(python3 -c 'import json,sys
for s in json.load(open(sys.argv[1]))["sandboxes"]:
    if s.get("name") == "web-1": print(s["id"], s["labels"]["app"], len(s["spec"]))' "$d/state/journal.json" 2>&1)
[ "$j" = "$id web 64" ] && ok "the journal holds its name, labels and spec: $j" || nok "journal: $j"
start_vfiod "$d" || exit 1
s=$(ctl sandbox show web-1 --json 2>&1)
[ "$(field "$s" id)" = "$id" ] && [ "$(field "$s" state)" = running ] && [ "$(field "$s" labels.app)" = web ] &&
  [ "$(field "$s" labels.team/x)" = a-b ] &&
  ok "after vfiod was killed and started again: show web-1 finds $id, running, with its labels" ||
  nok "after the restart: $s"
b=$(ctl sandbox create --name web-1 --label app=web --label team/x=a-b --memory 128 --json 2>&1)
[ "$(field "$b" id)" = "$id" ] && ok "after the restart, the same create is still answered with $id" || nok "idempotent after restart: $b"

# ---- delete by name ----------------------------------------------------------
out=$(ctl sandbox delete web-1 2>&1)
e=$(ctl sandbox show web-1 2>&1)
[[ $e == *"no sandbox 'web-1'"* ]] && ! ctl sandbox show "$id" > /dev/null 2>&1 &&
  ok "delete web-1 ($out): gone by name and by id" || nok "delete by name: $out; show: $e"
ctl sandbox delete twin > /dev/null 2>&1
c=$(ctl sandbox create --name web-1 --memory 256 --json 2>&1)
[ -n "$(field "$c" id)" ] && [ "$(field "$c" id)" != "$id" ] && ok "the name is free again: web-1 is now $(field "$c" id)" ||
  nok "re-create web-1 after the delete: $c"
ctl sandbox delete web-1 > /dev/null 2>&1

# ---- the workload's result ----------------------------------------------------
x=$(ctl sandbox create --name ex3 --cmd /exit3 --json 2>&1)
for _ in $(seq 100); do
  s=$(ctl sandbox show ex3 --json 2>&1)
  [ "$(field "$s" state)" = exited ] && break
  sleep 0.1
done
[ "$(field "$s" state)" = exited ] && [ "$(field "$s" workload_exit_status)" = 3 ] && [ -z "$(field "$s" failure_reason)" ] &&
  [ "$(field "$s" ready)" = True ] && [ "$(field "$s" exit_status)" = 0 ] &&
  ok "a workload that exits 3: state exited, workload_exit_status 3 (QEMU's exit_status 0)" ||
  nok "workload exit 3: create $x; show: $s"
txt=$(ctl sandbox show ex3 2>&1)
[[ $txt == *"workload exit 3"* ]] && ok "vfioctl sandbox show (text): $txt" || nok "text show: $txt"
ctl sandbox delete ex3 > /dev/null 2>&1
x=$(ctl sandbox create --name ft --cmd /fatal --json 2>&1)
for _ in $(seq 100); do
  s=$(ctl sandbox show ft --json 2>&1)
  [ "$(field "$s" state)" = failed ] && break
  sleep 0.1
done
[ "$(field "$s" state)" = failed ] && [ "$(field "$s" failure_reason)" = "workload /fatal: No such file or directory" ] &&
  [ -z "$(field "$s" workload_exit_status)" ] &&
  ok "a guest whose set-up fails: state failed, failure_reason '$(field "$s" failure_reason)'" ||
  nok "VFIOD_FATAL: create $x; show: $s"
ctl sandbox delete ft > /dev/null 2>&1

for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "end"
vfiod=$vfiod_real
itest_finish
