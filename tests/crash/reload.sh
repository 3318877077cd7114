#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Reloads free what no operation holds (issue 14): vfiod-fake with a large
# [devices] ids list (2,000 patterns, ~20 KB of configuration and rules),
# reloaded 300 times with SIGHUP while sandboxes are created and deleted
# (each operation holds the configuration it started with). Before the fix
# every old configuration and policy was kept until exit (RSS grew by tens
# of MB); now the growth stays under 4 MiB, every reload is logged, and the
# daemon answers and exits 0.
# Usage: reload.sh VFIOD_FAKE VFIOCTL
set -u
vfiod_fake=$1 vfioctl=$2
command -v python3 > /dev/null || { echo "SKIP: python3 missing"; exit 77; }
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
crash_init reload
cleanup() {
  if [ -n "$vp" ] && kill -0 "$vp" 2> /dev/null; then kill -9 "$vp"; fi
  for p in $(cat "$work/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
  [ "$fail" -gt 0 ] && tail -n 30 "$work/vfiod.log" | sed 's/^/#   /'
  rm -rf "$work"
}
trap cleanup EXIT
fake_kernel
echo k > "$work/vmlinuz" && echo i > "$work/initrd"
here=$(cd "$(dirname "$0")" && pwd)
ids=$(python3 -c 'print(";".join("10de:%04x" % i for i in range(2000)))')
write_crash_conf "$here/fake-qemu.sh" "$work/initrd" 1 user=root
printf '[devices]\nids=%s\n' "$ids" >> "$work/vfiod.conf"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$vp/status"; }
VFIOD_FAKE_QEMU_PIDS=$work/qemu.pids "$vfiod_fake" --config "$work/vfiod.conf" > "$work/vfiod.log" 2>&1 &
vp=$!
for _ in $(seq 200); do ctl list > /dev/null 2>&1 && break; sleep 0.05; done
ctl list > /dev/null 2>&1 || { nok "vfiod-fake did not start"; exit 1; }
# warm up: reloads before the baseline
for _ in $(seq 20); do kill -HUP "$vp"; sleep 0.05; done
sleep 0.5
rss0=$(rss)
( for _ in $(seq 15); do
    id=$(ctl sandbox create --json 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2> /dev/null)
    [ -n "$id" ] && ctl sandbox delete "$id" > /dev/null 2>&1
  done ) &
cp=$!
# one SIGHUP at a time (signals sent before vfiod handled the last one merge)
base=$(grep -c 'configuration reloaded' "$work/vfiod.log")
for i in $(seq 300); do
  kill -HUP "$vp"
  for _ in $(seq 200); do [ "$(grep -c 'configuration reloaded' "$work/vfiod.log")" -ge $((base + i)) ] && break; sleep 0.005; done
done
wait "$cp"
sleep 0.5
rss1=$(rss)
n=$(grep -c 'configuration reloaded' "$work/vfiod.log")
[ "$n" -ge $((base + 300)) ] && ok "$((n - base)) reloads logged (after $base to warm up)" || nok "only $((n - base)) of 300 reloads logged"
grow=$((rss1 - rss0))
[ "$grow" -lt 4096 ] && ok "300 reloads of a ~20 KB configuration with sandboxes made meanwhile: RSS $rss0 -> $rss1 KiB (+$grow, < 4096)" ||
  nok "RSS grew by $grow KiB over 300 reloads ($rss0 -> $rss1): old configurations are kept"
ctl sandbox list > /dev/null 2>&1 && ok "vfiod answers" || nok "vfiod does not answer"
kill -TERM "$vp"; wait "$vp"; rc=$?; vp=''
[ "$rc" = 0 ] && ok "vfiod exits 0" || nok "vfiod exit $rc"
echo "# reload: $pass passed, $fail failed"
[ "$fail" = 0 ]
