#!/bin/bash
# shellcheck disable=SC2010  # ls -l of /proc/PID/fd: the link targets are the point
# integration suite: the real vfiod with real QEMU (TCG) and the pinned
# guest kernel, CPU-only sandboxes (-M microvm), [network] on, all inside a
# network namespace this test creates (unshare --net; see lib.sh).
#  0. vfiod stops cleanly when no client ever connected; API calls leak no
#     fd in vfiod.
#  1. one sandbox: created with --wait, reports ready, its TAP has the host
#     address of its /30, the guest answers ping on its address; a delete
#     of the ready sandbox is graceful (the guest powers off on the ACPI
#     power button, well under [qemu] stop_timeout, no QMP quit); nothing
#     is left.
#  2. 8 at once: 8 concurrent `sandbox create --wait` all report ready with
#     distinct ids, subnets and TAPs, each guest on its subnet's guest
#     address (create-to-ready times printed); 8 concurrent deletes, all
#     graceful; nothing is left: no QEMU, no vfd* link, no inet vfiod table,
#     empty journal, empty sandboxes/ dir, no fd leaked by vfiod (RSS
#     printed).
# Usage: sandboxes.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init sandboxes "$@"
N=${VFIOD_ITEST_SANDBOXES:-8}
here=$(dirname "$(readlink -f "$0")")

build_image || { nok "guest image built"; exit 1; }
# A vfiod that no client ever used stops cleanly too.
write_conf "$work/idle"
no_client=1 start_vfiod "$work/idle" && stop_vfiod "no client ever connected"

d=$work/d
write_conf "$d"
start_vfiod "$d" || exit 1
fd0=$(fd_count "$vp") rss0=$(rss_kb "$vp")
note "vfiod pid $vp: $fd0 fds, RSS $rss0 kB at start"
# ---- 0. API connections are not leaked ---------------------------------
for i in $(seq 20); do ctl list > /dev/null 2>&1; ctl sandbox list > /dev/null 2>&1; done
sleep 0.3
fdc=$(fd_count "$vp")
[ "$fdc" -le $((fd0 + 2)) ] && ok "0: 40 API calls (vfioctl list, sandbox list): vfiod fds $fd0 -> $fdc (<= +2)" ||
  nok "0: 40 API calls leave vfiod with $fdc fds, $fd0 before: one per client connection ($(ls -l "/proc/$vp/fd" | grep -c socket:) sockets)"
fd0=$(fd_count "$vp") fo0=$(fd_other "$vp") fol0=$(fd_other_list "$vp")

create() { ctl sandbox create --kernel "$kernel" --initrd "$image" --wait --timeout 240 --json; }
# guest_reachable ADDR: the guest answers ping through its TAP (and the
# firewall lets the reply in).
guest_reachable() { icmp_ping "$1" 5 2> /dev/null || icmp_ping "$1" 5 2> /dev/null; }
no_quit_in_log() { ! grep -q "asking QEMU to quit\|sending SIGKILL\|QMP: .*using signals" "$vlog"; }

# ---- 1. one sandbox, graceful delete ----------------------------------
t=$(now_ms)
create > "$work/one.json" 2> "$work/one.err"
rc=$?
read -r id pid ready ready_ms ip < <(python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
r = o.get("ready_report") or {}
print(o.get("id", "-"), o.get("pid", 0), o.get("ready"), o.get("ready_ms", -1), (r.get("net") or {}).get("ip", "-"))
' "$work/one.json" 2> /dev/null || echo "- 0 False -1 -")
[ "$rc" = 0 ] && [ "$ready" = True ] && ok "1: sandbox create --wait: $id ready after $ready_ms ms (client $(($(now_ms) - t)) ms)" ||
  nok "1: create --wait: exit $rc, ready $ready: $(tr '\r' '\n' < "$work/one.err" | tail -3)"
tap=vfd${id#sb-}
subnet=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sandboxes"][0]["subnet"])' "$d/state/journal.json" 2> /dev/null)
hostaddr=$(ip -o -4 addr show dev "$tap" 2> /dev/null | awk '{print $4}')
want=$(python3 -c 'import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); h=list(n.hosts()); print(f"{h[0]}/{n.prefixlen} {h[1]}/{n.prefixlen}")' "$subnet" 2> /dev/null)
[ -n "$hostaddr" ] && [ "$hostaddr ${ip}" = "$want" ] && ok "1: TAP $tap has $hostaddr, the guest reports $ip (subnet $subnet)" ||
  nok "1: TAP $tap address '$hostaddr', guest '$ip', subnet '$subnet' (want host/guest '$want')"
table | grep -q "\"$tap\"" && ok "1: $tap is in table inet vfiod" || nok "1: $tap not in table inet vfiod"
guest_reachable "${ip%/*}" && ok "1: the guest answers ping at ${ip%/*} through $tap" || nok "1: no ping reply from ${ip%/*}"
[ -n "$(our_qemu_pids "$id")" ] && ok "1: QEMU pid $pid runs, -M microvm: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -o -- '-M [^ ]*')" ||
  nok "1: no QEMU process for $id"
# Keep the serial log open: the delete removes the file, the guest's last
# lines stay readable through this descriptor.
exec 7< "$d/run/sandboxes/$id/serial.log"
t=$(now_ms)
out=$(ctl sandbox delete "$id" 2>&1)
rc=$? dt=$(($(now_ms) - t))
[ "$rc" = 0 ] && [ "$dt" -lt 10000 ] && ok "1: delete of the ready sandbox took $dt ms (< 10 s, stop_timeout=20)" ||
  nok "1: delete: exit $rc after $dt ms: $out"
no_quit_in_log && ok "1: graceful: vfiod's log has no 'asking QEMU to quit' (nor signals, nor SIGKILL)" ||
  nok "1: not graceful: $(grep "asking QEMU to quit\|SIGKILL\|using signals" "$vlog" | head -3)"
grep -q "sandbox $id: QEMU (pid $pid) exited with status 0" "$vlog" && ok "1: QEMU exited with status 0" ||
  nok "1: QEMU exit: $(grep "sandbox $id: QEMU" "$vlog")"
poweroff=$(tr -d '\r' <&7 | grep -a 'VFIOD_POWEROFF' | tail -1)
exec 7<&-
[[ $poweroff == *'"reason":"power-button"'* ]] && ok "1: the guest powered off on the ACPI power button ($poweroff)" ||
  nok "1: guest power-off line: '$poweroff' (want reason power-button)"
expect_clean "$d" "1: after delete" "$id"
fd1=$(fd_count "$vp") rss1=$(rss_kb "$vp")
note "vfiod after one sandbox: $fd1 fds, RSS $rss1 kB"

# ---- 2. N at once -------------------------------------------------------
mkdir -p "$work/c"
t=$(now_ms) jobs_=()
for i in $(seq "$N"); do
  (
    s=$(now_ms)
    create > "$work/c/c$i.json" 2> "$work/c/c$i.err"
    echo $? > "$work/c/c$i.rc"
    echo $(($(now_ms) - s)) > "$work/c/c$i.ms"
  ) &
  jobs_+=($!)
done
wait "${jobs_[@]}" # not a bare wait: vfiod is a child too
note "$N concurrent creates returned after $(($(now_ms) - t)) ms"
run_checks python3 "$here/check-created.py" "$work/c" "$N" "$d/state/journal.json"
ids=() pids=()
while read -r sid spid stap _ shost sguest; do
  ids+=("$sid") pids+=("$spid")
  [ "$(ip -o -4 addr show dev "$stap" 2> /dev/null | awk '{print $4}')" = "$shost" ] || nok "2: $stap lacks host address $shost"
  table | grep -q "\"$stap\" . $sguest" || nok "2: table inet vfiod has no guest entry $stap . $sguest"
  guest_reachable "$sguest" || nok "2: $sid: no ping reply from $sguest"
done < "$work/c/sandboxes.txt"
[ "${#ids[@]}" = "$N" ] && [ "$(taps | wc -w)" = "$N" ] && ok "2: $N vfd* links, each with its host address, in the table, its guest answering ping" ||
  nok "2: ${#ids[@]} sandboxes known, links: $(taps)"
running=$(our_qemu_pids | wc -l)
[ "$running" = "$N" ] && ok "2: $N QEMU processes in the namespace" || nok "2: $running QEMU processes in the namespace, want $N"
note "vfiod with $N sandboxes: $(fd_count "$vp") fds, RSS $(rss_kb "$vp") kB"

t=$(now_ms) jobs_=()
for i in "${!ids[@]}"; do
  (
    s=$(now_ms)
    ctl sandbox delete "${ids[$i]}" > "$work/c/d$i.out" 2>&1
    echo "$? $(($(now_ms) - s))" > "$work/c/d$i.rc"
  ) &
  jobs_+=($!)
done
wait "${jobs_[@]}"
note "$N concurrent deletes returned after $(($(now_ms) - t)) ms"
bad='' times=''
for i in "${!ids[@]}"; do
  read -r rc ms < "$work/c/d$i.rc"
  times="$times $ms"
  { [ "$rc" = 0 ] && [ "$ms" -lt 10000 ]; } || bad="$bad ${ids[$i]}(exit $rc, $ms ms: $(cat "$work/c/d$i.out"))"
done
[ -z "$bad" ] && ok "2: $N concurrent deletes exit 0, each under 10 s (ms:$times)" || nok "2: deletes:$bad"
no_quit_in_log && ok "2: all graceful: no 'asking QEMU to quit' in vfiod's log" ||
  nok "2: not graceful: $(grep "asking QEMU to quit\|SIGKILL\|using signals" "$vlog" | head -3)"
n_deleted=0
for sid in "${ids[@]}"; do grep -q "sandbox $sid: deleted" "$vlog" && n_deleted=$((n_deleted + 1)); done
[ "$n_deleted" = "$N" ] && ok "2: vfiod logged 'deleted' for all $N" || nok "2: 'deleted' logged for $n_deleted of $N"
alive=''
for p in "${pids[@]}"; do [ -e "/proc/$p" ] && alive="$alive $p($(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60))"; done
[ -z "$alive" ] && ok "2: none of the $N QEMU pids exists any more" || nok "2: pids still there:$alive"
expect_clean "$d" "2: after $N deletes" "${ids[@]}"

# vfiod itself: no fd leaked over all of it (small slack for lazily opened
# ones), RSS for the record.
sleep 0.5
fd2=$(fd_count "$vp") rss2=$(rss_kb "$vp") fo2=$(fd_other "$vp")
note "vfiod non-socket fds at start: $fol0 at the end: $(fd_other_list "$vp")"
[ "$fo2" -le $((fo0 + 1)) ] && ok "vfiod non-socket fds (files, TAP, memfd, pidfd, eventfd): $fo0 after start, $fo2 at the end (<= +1)" ||
  nok "vfiod non-socket fds: $fo0 after start ($fol0), $fo2 at the end ($(fd_other_list "$vp"))"
note "vfiod RSS: $rss0 kB at start, $rss1 kB after one sandbox, $rss2 kB after $((N + 1)) (delta $((rss2 - rss0)) kB)"
[ "$fd2" -le $((fd0 + 2)) ] && ok "vfiod fds: $fd0 at start (after 0.), $fd1 after one sandbox, $fd2 at the end (<= start + 2)" ||
  nok "vfiod fds grew: $fd0 at start, $fd1 after one sandbox, $fd2 at the end ($(ls -l "/proc/$vp/fd" | grep -c 'socket:') of them sockets)"

stop_vfiod "end"
# consoles/: the removed sandboxes' console logs, kept for post-mortems
# (the newest VFD_CONSOLES_KEPT, 32): one per sandbox of this test.
left=$(cd "$d" && find state run -mindepth 1 ! -name journal.json ! -name sandboxes ! -path run/consoles \
  ! -regex 'run/consoles/sb-[0-9a-f]*\.[0-9]*\.log' 2> /dev/null | tr '\n' ' ')
kept=$(find "$d/run/consoles" -name 'sb-*.log' 2> /dev/null | wc -l)
[ -z "$left" ] && ok "no other file left in state_dir and runtime_dir (journal.json, sandboxes/, consoles/ only)" ||
  nok "files left: $left"
[ "$kept" -ge 1 ] && [ "$kept" -le 32 ] && ok "consoles/ keeps $kept removed sandboxes' console logs (at most 32)" ||
  nok "consoles/ holds $kept logs"
expect_clean_after_stop() { [ -z "$(taps)" ] && [ -z "$(table)" ] && [ -z "$(our_qemu_pids "${ids[@]}" "$id")" ]; }
check "after vfiod stopped: still no link, table or QEMU" expect_clean_after_stop
itest_finish
