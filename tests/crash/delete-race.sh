#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A sandbox freed under a pending stop step (issue 14, defect 3). vfiod-fake
# under valgrind (memcheck), with a stand-in QEMU that, when vfiod connects
# to its QMP socket to ask the guest to power off, keeps that connection
# open without a word (a child holds it) and exits at once itself - a guest
# that powered off just as it was asked. So QEMU's exit, the release of the
# sandbox and the answer to the delete all happen while the power-off
# request is still pending on a worker; that request then times out (2 s)
# and its completion runs. Before the fix the sandbox was freed by the
# delete and the completion read it (valgrind: "Invalid read"); now each
# operation holds a reference. Checked: the delete succeeds, vfiod stays up
# and answers, and valgrind reports no error, over 3 rounds.
# Usage: delete-race.sh VFIOD_FAKE VFIOCTL
# Exit 0 when all passed, 1 otherwise, 77 when valgrind or python3 is missing.
set -u
vfiod_fake=$1 vfioctl=$2
for tool in valgrind python3; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool missing (apt-get install valgrind python3)"; exit 77; }
done
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
crash_init delete-race
cleanup() {
  if [ -n "$vp" ] && kill -0 "$vp" 2> /dev/null; then kill -9 "$vp"; fi
  for p in $(cat "$work/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
  if [ "$fail" -gt 0 ]; then
    echo "# ---- vfiod-fake under valgrind"
    grep -v '^==[0-9]*== *$' "$work/vfiod.log" | tail -n 60 | cut -c1-200 | sed 's/^/#   /'
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fake_kernel
echo k > "$work/vmlinuz" && echo i > "$work/initrd"
cat > "$work/qmp-qemu" << 'EOF'
#!/usr/bin/python3
# Stand-in QEMU: -pidfile, a QMP socket that takes a connection and never
# greets (a child holds it for 5 s), and an exit right after the accept.
import os, socket, sys, time
args = sys.argv[1:]
pidfile = next(args[i + 1] for i, a in enumerate(args) if a == "-pidfile")
qmp = next(args[i + 1] for i, a in enumerate(args) if a == "-qmp").split(",")[0][len("unix:"):]
with open(os.path.join(os.path.dirname(sys.argv[0]), "qemu.pids"), "a") as f:
    f.write(f"{os.getpid()}\n")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(qmp)
s.listen(1)
with open(pidfile, "w") as f:
    f.write(f"{os.getpid()}\n")
c, _ = s.accept()
if os.fork() == 0:
    time.sleep(5)
    os._exit(0)
os._exit(0)
EOF
chmod 0755 "$work/qmp-qemu"
write_crash_conf "$work/qmp-qemu" "$work/initrd" 10 user=root
valgrind --error-exitcode=99 --leak-check=no --track-origins=no --num-callers=20 \
  "$vfiod_fake" --config "$work/vfiod.conf" > "$work/vfiod.log" 2>&1 &
vp=$!
for _ in $(seq 600); do ctl list > /dev/null 2>&1 && break; kill -0 "$vp" 2> /dev/null || break; sleep 0.1; done
ctl list > /dev/null 2>&1 || { nok "vfiod-fake under valgrind did not start"; exit 1; }
for r in 1 2 3; do
  out=$(ctl sandbox create --json 2>&1)
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2> /dev/null)
  [ -n "$id" ] || { nok "round $r: create: $out"; continue; }
  for _ in $(seq 100); do [ -S "$work/run/sandboxes/$id/qemu/qmp.sock" ] && break; sleep 0.05; done
  t0=$(date +%s%N)
  out=$(ctl sandbox delete "$id" 2>&1)
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  [ "$rc" = 0 ] && [ "$ms" -lt 2000 ] && ok "round $r: delete $id answered in $ms ms, while the power-off request (2 s QMP timeout) was pending" ||
    nok "round $r: delete $id: exit $rc: $out"
  sleep 3 # the power-off request times out (2 s) and completes
  ctl list > /dev/null 2>&1 && ok "round $r: vfiod answers after the pending stop step completed" ||
    nok "round $r: vfiod does not answer (crashed?)"
done
kill -TERM "$vp"
wait "$vp"
rc=$?
vp=''
errors=$(grep -c 'Invalid read\|Invalid write\|Invalid free' "$work/vfiod.log")
[ "$rc" = 0 ] && [ "$errors" = 0 ] && ok "valgrind: no invalid access in vfiod-fake (exit $rc)" ||
  nok "valgrind: exit $rc, $errors invalid accesses: $(grep -m1 -A6 'Invalid' "$work/vfiod.log" | tr '\n' ' ' | cut -c1-600)"
echo "# delete-race: $pass passed, $fail failed"
[ "$fail" = 0 ]
