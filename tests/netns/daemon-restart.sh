#!/bin/bash
# netns suite: the real vfiod, in a network namespace this test creates
# (unshare -n: nothing here touches the machine's own network), with a
# stand-in QEMU (tests/crash/fake-qemu.sh). Checks, with real TAPs and the
# real nftables table:
#  1. two CPU-only sandboxes get their own TAP, /30 and firewall entries;
#  2. SIGKILL of vfiod while they run, restart: both are adopted, TAPs and
#     rules kept;
#  3. SIGKILL of vfiod, the sandboxes' QEMUs die too, restart: nothing is
#     left behind (no vfd* link, no inet vfiod table, empty journal);
#  4. a stale vfd* TAP that no sandbox owns is removed by vfioctl reconcile.
# Usage: daemon-restart.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (creates a network namespace)"; exit 77; fi
if [ -z "${VFIOD_IN_NETNS:-}" ]; then
  for tool in unshare ip nft; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
  done
  exec env VFIOD_IN_NETNS=1 unshare --net "$0" "$@"
fi
build=$1 src=$2
vfiod=$build/vfiod/vfiod vfioctl=$build/vfiod/vfioctl
work=$(mktemp -d /tmp/vfiod-netns-XXXXXX)
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
cleanup() {
  [ -n "${vp:-}" ] && kill -9 "$vp" 2>/dev/null
  [ -f "$work/qemu.pids" ] && xargs -r kill -9 < "$work/qemu.pids" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ip link set lo up
cp "$src/tests/crash/fake-qemu.sh" "$work/qemu" && chmod +x "$work/qemu"
echo k > "$work/kernel"; echo i > "$work/initrd"
cat > "$work/vfiod.conf" <<CONF
[daemon]
state_dir=$work/state
runtime_dir=$work/run
allowed_group=
[qemu]
# the stand-in QEMU appends to \$VFIOD_FAKE_QEMU_PIDS in this test's dir
user=root
binary=$work/qemu
accel=tcg
stop_timeout=2
[network]
host_ports=8080
CONF
export VFIOD_FAKE_QEMU_PIDS=$work/qemu.pids
S=(--socket "$work/run/vfiod.sock")
start() {
  "$vfiod" --config "$work/vfiod.conf" >> "$work/vfiod.log" 2>&1 &
  vp=$!
  for _ in $(seq 100); do "$vfioctl" "${S[@]}" list >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "# vfiod did not start:"; sed 's/^/#   /' "$work/vfiod.log"; return 1
}
create() { "$vfioctl" "${S[@]}" sandbox create --kernel "$work/kernel" --initrd "$work/initrd" --json "$@" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
taps() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^vfd' | sort | tr '\n' ' '; }
table() { nft list table inet vfiod 2>/dev/null; }

start || exit 1
a=$(create --memory 256 --vcpus 2) b=$(create)
ta=vfd${a#sb-} tb=vfd${b#sb-}
[ "$(taps)" = "$(printf '%s\n' "$ta" "$tb" | sort | tr '\n' ' ')" ] && ok "1: two sandboxes, two TAPs ($(taps))" || nok "1: TAPs: got '$(taps)', want $ta $tb"
addr_a=$(ip -o -4 addr show "$ta" | awk '{print $4}')
addr_b=$(ip -o -4 addr show "$tb" | awk '{print $4}')
[ -n "$addr_a" ] && [ -n "$addr_b" ] && [ "$addr_a" != "$addr_b" ] && ok "1: host addresses $addr_a, $addr_b" || nok "1: addresses '$addr_a' '$addr_b'"
table | grep -q "\"$ta\"" && table | grep -q "\"$tb\"" && ok "1: both TAPs in table inet vfiod" || nok "1: table lacks a TAP"

kill -9 "$vp"; wait "$vp" 2>/dev/null
start || exit 1
"$vfioctl" "${S[@]}" sandbox list --json | python3 -c 'import json,sys; l=json.load(sys.stdin); sys.exit(0 if len(l)==2 and all(x["state"]=="running" for x in l) else 1)' &&
  ok "2: after SIGKILL + restart both sandboxes are adopted and running" || nok "2: sandboxes not adopted"
got=$("$vfioctl" "${S[@]}" sandbox list --json | python3 -c 'import json,sys
print(" ".join("%s:%s:%s" % (x["id"], x.get("memory_mib"), x.get("vcpus")) for x in json.load(sys.stdin)))')
[[ " $got " == *" $a:256:2 "* && " $got " == *" $b:512:1 "* ]] &&
  ok "2: adopted sandboxes keep what GetSandbox reports (memory, vCPUs): $got" || nok "2: after the restart: $got (want $a:256:2, $b:512:1)"
[ "$(taps)" = "$(printf '%s\n' "$ta" "$tb" | sort | tr '\n' ' ')" ] && ok "2: TAPs kept" || nok "2: TAPs now '$(taps)'"
table | grep -q "\"$ta\"" && table | grep -q "\"$tb\"" && ok "2: rules kept" || nok "2: rules lost"

ip tuntap add dev vfdstale mode tap
out=$("$vfioctl" "${S[@]}" reconcile 2>&1)
ip link show vfdstale >/dev/null 2>&1 && nok "4: stale vfdstale still there after reconcile ($out)" || ok "4: vfioctl reconcile removed a TAP no sandbox owns"

kill -9 "$vp"; wait "$vp" 2>/dev/null
xargs -r kill -9 < "$work/qemu.pids" 2>/dev/null
start || exit 1
"$vfioctl" "${S[@]}" sandbox list --json | python3 -c 'import json,sys; sys.exit(0 if not json.load(sys.stdin) else 1)' &&
  ok "3: restart after the QEMUs died: no sandbox listed (none adopted)" || nok "3: sandboxes listed after restart"
[ -z "$(taps)" ] && ok "3: QEMUs and vfiod killed, restart: no vfd* link left" || nok "3: links left: $(taps)"
[ -z "$(table)" ] && ok "3: no inet vfiod table left" || nok "3: table left: $(table | head -5)"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if not j["sandboxes"] and not j["devices"] else 1)' "$work/state/journal.json" &&
  ok "3: journal empty" || nok "3: journal not empty"
grep "reconcile:" "$work/vfiod.log" | sed 's/^/# /' | tail -8
echo "# netns daemon: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
