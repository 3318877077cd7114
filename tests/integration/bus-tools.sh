#!/bin/bash
# integration suite: the standard D-Bus tools work against vfiod's socket
# (issue 16, item 6). They expect a message bus (they send Hello first and
# ask the bus who owns a name); vfiod answers those calls itself on its
# peer-to-peer socket. The real vfiod, in a network namespace this test
# creates:
#  1. gdbus call --address ... ListSandboxes and GetCapabilities answer;
#  2. busctl --address=... call, introspect and get-property answer;
#  3. gdbus monitor --address ... --dest org.vfiod sees SandboxStateChanged
#     (a create that fails at once: "creating", then "failed");
#  4. other bus calls get a clear UnknownMethod; vfioctl (a peer client)
#     still works;
#  5. the Python client of doc/clients.md (doc/examples/list-sandboxes.py,
#     Gio) works.
# Usage: bus-tools.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init bus-tools "$@"
for tool in gdbus busctl; do
  command -v "$tool" > /dev/null || { nok "$tool missing (apt-get install libglib2.0-bin systemd)"; exit 1; }
done

d=$work/d
write_conf "$d"
start_vfiod "$d" || exit 1
A=unix:path=$sock
P=(org.vfiod /org/vfiod/Manager1 org.vfiod.Manager1)

out=$(timeout 20 gdbus call --address "$A" --dest org.vfiod --object-path /org/vfiod/Manager1 \
  --method org.vfiod.Manager1.ListSandboxes 2>&1)
[ "$out" = "(@aa{sv} [],)" ] && ok "1: gdbus call ListSandboxes: $out" || nok "1: gdbus call ListSandboxes: $out"
out=$(timeout 20 gdbus call --address "$A" --dest org.vfiod --object-path /org/vfiod/Manager1 \
  --method org.vfiod.Manager1.GetCapabilities 2>&1)
[[ $out == *"'host': <{"*"'version': <'"* ]] && ok "1: gdbus call GetCapabilities answers ($(echo "$out" | grep -o "'version': <'[^']*'>"))" ||
  nok "1: gdbus call GetCapabilities: ${out:0:300}"

out=$(timeout 20 busctl --address="$A" call "${P[@]}" ListSandboxes 2>&1)
[ "$out" = "aa{sv} 0" ] && ok "2: busctl call ListSandboxes: $out" || nok "2: busctl call ListSandboxes: $out"
out=$(timeout 20 busctl --address="$A" introspect org.vfiod /org/vfiod/Manager1 2>&1)
grep -q '^\.CreateSandbox *method' <<< "$out" && grep -q '^\.SandboxStateChanged *signal' <<< "$out" &&
  ok "2: busctl introspect lists CreateSandbox and SandboxStateChanged" || nok "2: busctl introspect: ${out:0:400}"
out=$(timeout 20 busctl --address="$A" get-property "${P[@]}" Version 2>&1)
[[ $out == 's "'*'"' ]] && ok "2: busctl get-property Version: $out" || nok "2: busctl get-property Version: $out"

timeout 15 gdbus monitor --address "$A" --dest org.vfiod > "$work/monitor.log" 2>&1 &
mon=$!
for _ in $(seq 50); do grep -q "is owned by" "$work/monitor.log" && break; sleep 0.1; done
sleep 0.3
out=$(ctl sandbox create --kernel /nonexistent/vmlinuz --initrd /nonexistent/initrd 2>&1)
for _ in $(seq 50); do grep -q "'failed'" "$work/monitor.log" && break; sleep 0.1; done
kill "$mon" 2> /dev/null
wait "$mon" 2> /dev/null
grep -q "SandboxStateChanged ('sb-[0-9a-f]*', 'creating', false)" "$work/monitor.log" &&
  grep -q "SandboxStateChanged ('sb-[0-9a-f]*', 'failed', false)" "$work/monitor.log" &&
  ok "3: gdbus monitor saw the create's signals: $(grep -c SandboxStateChanged "$work/monitor.log") SandboxStateChanged (create: $out)" ||
  nok "3: gdbus monitor: $(tr '\n' ' ' < "$work/monitor.log" | cut -c1-400)"

out=$(timeout 20 busctl --address="$A" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ListNames 2>&1)
[[ $out == *"not served on vfiod's peer-to-peer socket"* ]] && ok "4: another bus call is refused clearly: $out" ||
  nok "4: ListNames: $out"
out=$(ctl sandbox list --json 2>&1)
[ "$(echo "$out" | tr -d ' \n')" = "[]" ] && ok "4: vfioctl still works: sandbox list $out" || nok "4: vfioctl sandbox list: $out"
out=$(/usr/bin/python3 "$src/doc/examples/list-sandboxes.py" "$sock" 2>&1)
[[ $out == "vfiod "*" devices" ]] && ok "5: the Python (Gio) client of doc/clients.md works: $out" ||
  nok "5: doc/examples/list-sandboxes.py: $out"
stop_vfiod "end"
itest_finish
