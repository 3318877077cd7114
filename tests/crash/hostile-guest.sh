#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A hostile guest console and a tampered journal against the real daemon
# (issue 13, findings 3, 6 and 8). vfiod-fake (vfiod's main on a fake
# kernel, see README.md) with a stand-in QEMU that writes what a hostile
# guest would on its serial console. No root needed (when not root, the
# API's allowed_group is the user's primary group); nothing is written
# outside the temp directory; no real QEMU, no network (off).
#
#   A. The journal names a directory outside the runtime dir for a sandbox
#      (a tampered "dir"): vfiod starts, refuses that directory (reports
#      and logs it), and the directory and its file are still there.
#   B. The journal names "eth0" as a sandbox's TAP: vfiod starts in
#      corrupt-journal mode, the message names the member, the journal file
#      is left as it was, and the API answers.
#   C. The guest prints ready reports that must be refused (60,000 nested
#      '[' - json-glib overflows its stack at some 80,000 -, a JSON array,
#      two objects) and 50 more invalid ones, then 8 MiB of newlines: vfiod
#      stays up and answers, the sandbox is not ready and has no report,
#      `vfioctl sandbox show --json` works, the refusals are logged at most
#      5 times per 10 s; then a valid report makes it ready with that
#      report.
#
# Usage: hostile-guest.sh VFIOD_FAKE VFIOCTL
# Output: TAP-like "ok -"/"not ok -" lines; exit 0 when all passed, 1
# otherwise, 77 when something it needs is missing.
set -u

vfiod_fake=$1 vfioctl=$2
for tool in python3 head tr; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool missing"; exit 77; }
done
[ -x "$vfiod_fake" ] && [ -x "$vfioctl" ] || { echo "SKIP: $vfiod_fake or $vfioctl not executable"; exit 77; }

# QEMU may run as a uid of its own: the stand-in and its trigger file must
# be reachable for it (crash_init).
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
crash_init hostile
sb=''

cleanup() {
  local p
  if [ -n "$vp" ] && kill -0 "$vp" 2> /dev/null; then kill -9 "$vp"; fi
  # the stand-in QEMUs this test started (they write their pids to
  # qemu.pids and their -pidfile), also those a failed case left running
  for p in $(cat "$work"/qemu.pids "$work"/run/sandboxes/*/qemu/qemu.pid "$work"/run/sandboxes/*/qemu.pid \
    2> /dev/null | sort -u); do
    kill -9 "$p" 2> /dev/null
  done
  if [ "$fail" -gt 0 ]; then
    for p in "$work"/*.log; do
      echo "# ---- $p"
      tail -n 40 "$p" | cut -c1-300 | sed 's/^/#   /'
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fake_kernel
echo "not a kernel" > "$work/vmlinuz"
echo "not an initrd" > "$work/initrd.img"

# The stand-in QEMU: writes its pid (-pidfile), then the hostile console
# output to the serial log vfiod handed it (-add-fd ...,opaque=serial-log,
# or -serial file:PATH), waits for $work/trigger, writes a valid report,
# and sleeps until killed.
cat > "$work/hostile-qemu" << 'EOF'
#!/bin/bash
pidfile='' fd='' path='' prev=''
for arg in "$@"; do
  case $prev in
    -pidfile) pidfile=$arg ;;
    -add-fd) case $arg in *opaque=serial-log*) fd=${arg#fd=} fd=${fd%%,*} ;; esac ;;
    -serial) case $arg in file:*) path=${arg#file:} ;; esac ;;
  esac
  prev=$arg
done
[ -n "$pidfile" ] && echo $$ > "$pidfile"
echo $$ >> "$(dirname "$0")/qemu.pids"
if [ -n "$fd" ]; then exec 9>&"$fd"; elif [ -n "$path" ]; then exec 9>> "$path"; else exit 1; fi
{
  printf 'SeaBIOS\nVFIOD_READY {"a":'
  head -c 60000 /dev/zero | tr '\0' '['
  printf '\nVFIOD_READY [1,2]\nVFIOD_READY {} {}\n'
  for i in $(seq 50); do printf 'VFIOD_READY {"n":%d,\n' "$i"; done
  head -c 8388608 /dev/zero | tr '\0' '\n'
} >&9
while [ ! -e "$(dirname "$0")/trigger" ]; do sleep 0.1; done
printf 'VFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
exec -a "fake-qemu $*" sleep 100000
EOF
chmod 0755 "$work/hostile-qemu"

write_conf() { write_crash_conf "$work/hostile-qemu" "$work/initrd.img" 2; }

# start LOG: vfiod-fake in the background until its API answers
start() {
  "$vfiod_fake" --config "$work/vfiod.conf" >> "$work/$1" 2>&1 &
  vp=$!
  for _ in $(seq 200); do
    ctl list > /dev/null 2>&1 && return 0
    kill -0 "$vp" 2> /dev/null || break
    sleep 0.05
  done
  nok "vfiod-fake did not start (log $1)"
  return 1
}

stop() {
  [ -n "$vp" ] || return 0
  kill -TERM "$vp" 2> /dev/null
  for _ in $(seq 100); do kill -0 "$vp" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$vp" 2> /dev/null && kill -9 "$vp"
  wait "$vp" 2> /dev/null
  vp=''
}

journal() { # journal SANDBOX_JSON
  mkdir -p "$work/state"
  chmod 0700 "$work/state"
  printf '{"format":"vfiod-journal","version":1,"devices":[],"sandboxes":[%s]}\n' "$1" > "$work/state/journal.json"
}

write_conf

# --- A: a tampered "dir" -------------------------------------------------
mkdir -p "$work/victim/sub"
echo precious > "$work/victim/sub/file"
journal '{"id":"sb-0badc0de","pid":0,"start_time":0,"devices":[],"dir":"'"$work"'/victim"}'
if start a.log; then
  [ -f "$work/victim/sub/file" ] && [ "$(cat "$work/victim/sub/file")" = precious ] &&
    ok "A: the directory the journal named outside the runtime dir is still there, with its file" ||
    nok "A: $work/victim was deleted or changed"
  grep -q "reconcile: sb-0badc0de refused: the journal names directory '$work/victim' for sandbox sb-0badc0de, not '$work/run/sandboxes/sb-0badc0de'; that directory is left alone" "$work/a.log" &&
    ok "A: reconcile reports the refusal" || nok "A: no refusal reported in the log"
  [ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["sandboxes"]))' "$work/state/journal.json")" = 0 ] &&
    ok "A: the dead sandbox left the journal" || nok "A: the journal still has the sandbox"
  stop
fi

# --- B: a tampered "tap" -------------------------------------------------
rm -rf "$work/state" "$work/run"
journal '{"id":"sb-0badc0de","pid":0,"start_time":0,"devices":[],"dir":"'"$work"'/run/sandboxes/sb-0badc0de","subnet":"10.0.128.4/30","tap":"eth0","mac":"02:00:0a:00:80:06"}'
cp "$work/state/journal.json" "$work/journal.before"
if start b.log; then
  grep -q 'malformed sandbox record sb-0badc0de: \\\?"tap\\\?" is not a vfiod TAP name' "$work/b.log" &&
    ok "B: corrupt-journal mode, the message names the member" || nok "B: no corrupt-journal message naming \"tap\""
  cmp -s "$work/journal.before" "$work/state/journal.json" && ok "B: the journal file is left as it was" ||
    nok "B: the journal file changed"
  ls "$work/state"/journal.json.corrupt-* > /dev/null 2>&1 && ok "B: a copy of the journal was kept" ||
    nok "B: no journal.json.corrupt-* copy"
  out=$(ctl reconcile 2>&1)
  case $out in *"journal"*"corrupt"*) ok "B: the API answers, device work is refused: ${out%%.*}" ;;
    *) nok "B: reconcile said: $out" ;; esac
  stop
fi

# --- C: a hostile console ---------------------------------------------------
rm -rf "$work/state" "$work/run"
if start c.log; then
  # the config's kernel and initrd (vfiod's own files)
  sb=$(ctl sandbox create --json 2>> "$work/c.log" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>> "$work/c.log")
  case $sb in sb-*) ok "C: sandbox $sb created" ;; *) nok "C: sandbox create failed: $sb" ;; esac
  # wait for the flood to be read: the refusals are logged first
  for _ in $(seq 300); do grep -q "ignored the guest's ready report (console)" "$work/c.log" && break; sleep 0.1; done
  for _ in $(seq 50); do [ "$(stat -c %s "$work/run/sandboxes/$sb/serial.log" 2> /dev/null || echo 0)" -gt 0 ] && break; sleep 0.1; done
  sleep 3 # the 8 MiB of newlines, read in vfiod's checks
  kill -0 "$vp" 2> /dev/null && ok "C: vfiod is still running" || nok "C: vfiod died"
  t0=$(date +%s%N)
  show=$(ctl sandbox show "$sb" --json 2>&1)
  rc=$? t1=$(date +%s%N)
  [ $rc = 0 ] && ok "C: sandbox show --json answers ($(((t1 - t0) / 1000000)) ms)" || nok "C: sandbox show --json: rc $rc: ${show:0:300}"
  python3 - "$show" << 'PY' && ok "C: the sandbox is not ready and has no report" || nok "C: ready or a report was stored: ${show:0:300}"
import json, sys
d = json.loads(sys.argv[1])
d = d[0] if isinstance(d, list) else d
sys.exit(0 if d.get("ready") is False and "ready_report" not in d else 1)
PY
  grep -q "ignored the guest's ready report (console): report refused: nested deeper than 32 levels at byte 36" "$work/c.log" &&
    ok "C: 60,000 nested '[' refused, logged with the reason" || nok "C: no nesting refusal in the log"
  grep -q "ignored the guest's ready report (console): report refused: not a JSON object at byte 0" "$work/c.log" &&
    ok "C: a JSON array refused" || nok "C: no refusal of the array in the log"
  n=$(grep -c "ignored the guest's ready report" "$work/c.log")
  [ "$n" -le 5 ] && ok "C: 53 invalid reports, $n log lines (rate limit: 5 per 10 s)" || nok "C: $n log lines for 53 invalid reports"
  size=$(stat -c %s "$work/c.log")
  [ "$size" -lt 20000 ] && ok "C: vfiod's log is $size bytes" || nok "C: vfiod's log is $size bytes"
  # a valid report now makes it ready
  touch "$work/trigger"
  chmod 0644 "$work/trigger"
  ready=''
  for _ in $(seq 100); do
    show=$(ctl sandbox show "$sb" --json 2>&1)
    ready=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d=d[0] if isinstance(d,list) else d; print(d.get("ready"), json.dumps(d.get("ready_report")))' "$show" 2>&1)
    case $ready in True*) break ;; esac
    sleep 0.1
  done
  [ "$ready" = 'True {"v": 1, "kernel": "fake", "modules": []}' ] &&
    ok "C: then a valid report makes it ready, with that report" || nok "C: after the valid report: $ready"
  out=$(ctl sandbox delete "$sb" 2>&1) && ok "C: deleted" || nok "C: delete: $out"
  stop
fi

echo "# hostile guest: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
