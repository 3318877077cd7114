#!/bin/bash
# integration suite: concurrent "any N" creates (issue 14, defect 2). vfiod
# on a fake kernel (tests/crash/vfiod-fake on a tree made by fake-tree: two
# NVIDIA GPU groups, 12 and 13), the stand-in QEMU; each round two
# `vfioctl sandbox create --gpus 1` at once:
#  - both succeed (before the fix the loser often got Busy: both picked the
#    lowest unit before either bound it), with different IOMMU groups;
#  - a third at the same time as those two is refused (Busy, "free"), and
#    the others still get one group each;
#  - [daemon] metrics_file counts them while they run (2 sandboxes running,
#    3 devices bound) and the creates done;
#  - after the deletes both groups are back, nothing left;
#  - a reconcile while a create is paused after binding leaves its group
#    alone, and the create then finishes (issue 14, defect 1);
#  - a sandbox being created is listed and shown (state creating), and a
#    delete asked then stops it once the create is done.
# Usage: gpus-concurrent.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init gpus-concurrent "$@"
use_fake_vfiod

d=$work/f
# [qemu] kernel through a symbolic link: the config is trusted, its paths may
# be links (a client's may not: security-files.sh)
ln -s vmlinuz "$work/vmlinuz-current"
write_fake_conf "$d" "$work/vmlinuz-current" "$work/initrd" "allowed_group=" "metrics_file=$d/vfiod.prom"
start_fake_vfiod "$d" || exit 1
groups_of() { python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))
print(",".join(j.get("devices", [])))' "$1" 2> /dev/null; }
id_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$1" 2> /dev/null; }

rounds=6 both=0
for r in $(seq "$rounds"); do
  ctl sandbox create --gpus 1 --json > "$work/a.json" 2> "$work/a.err" &
  pa=$!
  ctl sandbox create --gpus 1 --json > "$work/b.json" 2> "$work/b.err" &
  pb=$!
  wait "$pa"; ra=$?
  wait "$pb"; rb=$?
  da=$(groups_of "$work/a.json") db=$(groups_of "$work/b.json")
  if [ "$ra" = 0 ] && [ "$rb" = 0 ] && [ -n "$da" ] && [ -n "$db" ] && [ "${da%%,*}" != "${db%%,*}" ]; then
    both=$((both + 1))
  else
    note "round $r: exits $ra/$rb, devices '$da' / '$db': $(cat "$work/a.err" "$work/b.err" | tr '\n' ' ')"
  fi
  for f in a b; do
    id=$(id_of "$work/$f.json")
    [ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1
  done
done
[ "$both" = "$rounds" ] && ok "$rounds rounds of two concurrent 'sandbox create --gpus 1': both created every time, on different IOMMU groups" ||
  nok "two concurrent --gpus 1 creates: both got a group in $both of $rounds rounds"

# Three at once for two units: two succeed on different groups, one is Busy.
pids=()
for f in a b c; do
  ctl sandbox create --gpus 1 --json > "$work/$f.json" 2> "$work/$f.err" &
  pids+=($!)
done
wait "${pids[@]}"
okn=0 busy=0 firsts=''
for f in a b c; do
  if [ -n "$(id_of "$work/$f.json")" ]; then
    okn=$((okn + 1)) firsts="$firsts $(groups_of "$work/$f.json" | cut -d, -f1)"
  elif grep -q "free" "$work/$f.err"; then
    busy=$((busy + 1))
  fi
done
[ "$okn" = 2 ] && [ "$busy" = 1 ] && [ "$(echo "$firsts" | tr ' ' '\n' | sort -u | grep -c .)" = 2 ] &&
  ok "three at once for two units: two created (devices$firsts), one refused: $(cat "$work"/[abc].err | tr '\n' ' ')" ||
  nok "three at once: $okn created ($firsts), $busy refused as busy: $(cat "$work"/[abc].err | tr '\n' ' ')"
# the metrics file (written every 5 s) while the two run
for _ in $(seq 120); do grep -q '^vfiod_create_total{result="failed"} 1$' "$d/vfiod.prom" 2> /dev/null && break; sleep 0.1; done
m=$(cat "$d/vfiod.prom" 2> /dev/null)
creates=$(sed -n 's/^vfiod_create_total{result="ok"} //p' <<< "$m")
grep -q '^vfiod_sandboxes{state="running"} 2$' <<< "$m" && grep -q '^vfiod_devices{state="bound"} 3$' <<< "$m" &&
  grep -q '^vfiod_create_total{result="failed"} 1$' <<< "$m" && [ "${creates:-0}" -eq $((rounds * 2 + 2)) ] &&
  grep -q '^# TYPE vfiod_create_seconds summary$' <<< "$m" &&
  ok "metrics_file: 2 running, 3 devices bound, $creates creates ok and 1 failed: $(grep -c '^vfiod_' <<< "$m") samples" ||
  nok "metrics_file: $(grep -E '^vfiod_(sandboxes|devices|create_total)' <<< "$m" | tr '\n' ' ')"
for f in a b c; do
  id=$(id_of "$work/$f.json")
  [ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1
done
left=$(ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>&1)
drv=$(for b in 0000:01:00.0 0000:02:00.0; do l=$(readlink "$d/fake/sys/bus/pci/devices/$b/driver" 2> /dev/null); echo "$b:${l##*/}"; done | tr '\n' ' ')
[ "$left" = 0 ] && [ "$(journal_counts "$d")" = "0 0" ] && [[ $drv != *vfio-pci* ]] &&
  ok "after the deletes: no sandbox, empty journal, both GPUs off vfio-pci ($drv)" ||
  nok "after the deletes: $left sandboxes, journal $(journal_counts "$d"), drivers $drv"
for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "end"

# ---- a reconcile while a create is half-way (issue 14, defect 1) -----------
# The create is paused right after binding its group (VFIOD_PAUSE_STAGE,
# test only); a reconcile then must leave that group alone (before the fix
# it restored it: a sandbox being created was not "live"), and the create
# must finish with its devices on vfio-pci.
d=$work/p
fake_dir "$d"
sed -e "s|$work/f/|$d/|g" -e "/^metrics_file=/d" "$work/f/vfiod.conf" > "$d/vfiod.conf"
sed -i "/^sys_root=\|^dev_root=/d" "$d/vfiod.conf" && cat "$d/roots" >> "$d/vfiod.conf"
touch "$d/pause"
start_fake_vfiod "$d" VFIOD_PAUSE_STAGE=devices VFIOD_PAUSE_FILE="$d/pause" || exit 1
driver_of() { local l; l=$(readlink "$d/fake/sys/bus/pci/devices/$1/driver" 2> /dev/null); echo "${l##*/}"; }
ctl sandbox create --gpus 1 --json > "$work/p.json" 2> "$work/p.err" &
cpid=$!
for _ in $(seq 200); do grep -q "paused at devices" "$vlog" && break; sleep 0.05; done
before=$(driver_of 0000:01:00.0)
# The reconcile is asked now (its view of live sandboxes taken now); it
# waits for the group's lock, which the create holds until it is done.
ctl reconcile > "$work/rec.out" 2>&1 &
rpid=$!
sleep 1
rm -f "$d/pause"
wait "$cpid"
rc=$?
wait "$rpid"
rec=$(cat "$work/rec.out")
after=$(driver_of 0000:01:00.0)
[ "$before" = vfio-pci ] && [ "$after" = vfio-pci ] && ! grep -q "0000:01:00.0.*restored\|restored.*0000:01:00.0" <<< "$rec" &&
  ok "reconcile asked while a create is half-way leaves its group on vfio-pci ($before -> $after): $(echo "$rec" | tr '\n' ' ' | cut -c1-200)" ||
  nok "reconcile during a create: 0000:01:00.0 $before -> $after: $(echo "$rec" | tr '\n' ' ')"
id=$(id_of "$work/p.json")
[ "$rc" = 0 ] && [ -n "$id" ] && [ "$(driver_of 0000:01:00.0)" = vfio-pci ] &&
  ok "the create then finishes: $id running with 0000:01:00.0 on vfio-pci" || nok "the create after the reconcile: exit $rc: $(cat "$work/p.err")"
[ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1

# ---- a sandbox being created is visible and can be deleted -----------------
# (issue 14: the signal announced it, GetSandbox/DeleteSandbox said NotFound)
touch "$d/pause"
ctl sandbox create --gpus 1 --json > "$work/q.json" 2> "$work/q.err" &
cpid=$!
for _ in $(seq 200); do [ "$(grep -c "paused at devices" "$vlog")" -ge 2 ] && break; sleep 0.05; done
cid=$(ctl sandbox list --json | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin) if s["state"] == "creating"))')
show=$(ctl sandbox show "$cid" --json 2>&1)
[ -n "$cid" ] && [[ $cid != *" "* ]] && [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$show" 2> /dev/null)" = creating ] &&
  ok "a sandbox being created is listed and shown: $cid, state creating" || nok "creating sandbox: list '$cid', show: $show"
ctl sandbox delete "$cid" > "$work/qd.out" 2>&1 &
dpid=$!
sleep 0.5
kill -0 "$dpid" 2> /dev/null && ok "its delete waits for the create" || nok "the delete of a creating sandbox returned at once: $(cat "$work/qd.out")"
rm -f "$d/pause"
wait "$cpid"
rc=$?
wait "$dpid"
drc=$?
for _ in $(seq 100); do [ "$(driver_of 0000:01:00.0)" != vfio-pci ] && break; sleep 0.05; done
left=$(ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$rc" = 0 ] && [ "$drc" = 0 ] && [ "$left" = 0 ] && [ "$(driver_of 0000:01:00.0)" != vfio-pci ] &&
  ok "the create finished (exit $rc), then the delete (exit $drc): no sandbox left, 0000:01:00.0 back on '$(driver_of 0000:01:00.0)'" ||
  nok "create exit $rc ($(cat "$work/q.err")), delete exit $drc ($(cat "$work/qd.out")), $left sandboxes left, 0000:01:00.0 on $(driver_of 0000:01:00.0)"
for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "pause"
itest_finish
