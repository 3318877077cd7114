#!/bin/bash
# integration suite: a failure injected at each stage of a sandbox create
# (VFIOD_FAIL_STAGE, test only, read from vfiod's environment) leaves
# nothing behind. For each stage (dir, devices, network-allocate, journal,
# network, qemu) a fresh vfiod (own state and runtime dirs, [network] on,
# real QEMU under TCG) in a network namespace this test creates:
#  - `vfioctl sandbox create` exits 1 naming the injected stage;
#  - the stage was really reached: `ip monitor` / `nft monitor` saw the TAP
#    and the inet vfiod table come and go from the network stage on (and
#    never before it), and QEMU was started (through a wrapper that records
#    its pid) only at the qemu stage;
#  - nothing is left: no QEMU, no vfd* link, no inet vfiod table, no
#    sandbox in the journal, an empty sandboxes/ dir, `sandbox list` empty,
#    no fd leaked by vfiod; vfiod still answers and exits 0 on SIGTERM.
# CPU-only sandboxes pass no device; the devices stage still runs.
# Usage: fail-stages.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init fail-stages "$@"

build_image || { nok "guest image built"; exit 1; }
# The QEMU wrapper: records its pid, then becomes QEMU (same pid).
cat > "$work/qemu-wrapper" << EOF
#!/bin/sh
echo \$\$ >> "\${VFIOD_ITEST_QEMU_PIDS:?}"
exec qemu-system-x86_64 "\$@"
EOF
chmod +x "$work/qemu-wrapper"

stop_monitors() { kill "${mons[@]}" 2> /dev/null; wait "${mons[@]}" 2> /dev/null; mons=(); }
mons=()

for stage in dir devices network-allocate journal network qemu; do
  d=$work/$stage
  write_conf "$d"
  sed -i "s|^\[qemu\]|[qemu]\nbinary=$work/qemu-wrapper|" "$d/vfiod.conf"
  : > "$d/qemu.pids"
  start_vfiod "$d" VFIOD_FAIL_STAGE="$stage" VFIOD_ITEST_QEMU_PIDS="$d/qemu.pids" || continue
  fd0=$(fd_count "$vp") fo0=$(fd_other "$vp") fol0=$(fd_other_list "$vp")
  ip -o monitor link > "$d/links.mon" 2>&1 &
  mons+=($!)
  nft monitor tables > "$d/tables.mon" 2>&1 &
  mons+=($!)
  sleep 0.3 # let the monitors subscribe
  out=$(ctl sandbox create --kernel "$kernel" --initrd "$image" --json 2>&1)
  rc=$?
  sleep 0.3
  stop_monitors
  [ "$rc" = 1 ] && [[ $out == *"injected failure at $stage"* ]] && ok "$stage: create exits 1: $out" ||
    nok "$stage: create exit $rc (want 1 and 'injected failure at $stage'): $out"
  # Was the stage reached, and undone?
  tap_new=$(grep -c '^[0-9]*: vfd' "$d/links.mon") tap_del=$(grep -c '^Deleted [0-9]*: vfd' "$d/links.mon")
  tbl_add=$(grep -c '^add table inet vfiod' "$d/tables.mon") tbl_del=$(grep -c '^delete table inet vfiod' "$d/tables.mon")
  qemu_started=$(wc -l < "$d/qemu.pids")
  case $stage in
    network | qemu)
      # nft shows a table apply as add (+ delete, add): count, and the last
      # event must be its deletion.
      [ "$tap_new" -gt 0 ] && [ "$tap_del" -gt 0 ] && [ "$tbl_add" -gt 0 ] && [ "$tbl_del" -gt 0 ] &&
        [ "$(tail -1 "$d/tables.mon")" = "delete table inet vfiod" ] &&
        ok "$stage: the TAP and the inet vfiod table were made, then removed" ||
        nok "$stage: TAP events new $tap_new deleted $tap_del, table add $tbl_add delete $tbl_del: $(cat "$d/links.mon" "$d/tables.mon" | cut -c1-60 | tr '\n' ';')"
      ;;
    *)
      [ "$tap_new" = 0 ] && [ "$tbl_add" = 0 ] && ok "$stage: no TAP and no table were made" ||
        nok "$stage: TAP events $tap_new, table adds $tbl_add before the network stage"
      ;;
  esac
  # At the qemu stage the failure is injected right after QEMU was spawned
  # (the error proves the spawn succeeded) and QEMU is killed at once: the
  # wrapper may not even get to record its pid then.
  if [ "$stage" = qemu ]; then
    qpid=$(head -1 "$d/qemu.pids")
    [ "$qemu_started" -le 1 ] && { [ -z "$qpid" ] || [ ! -e "/proc/$qpid" ]; } &&
      ok "qemu: QEMU was spawned ($([ -n "$qpid" ] && echo "pid $qpid" || echo "killed before its wrapper recorded a pid")) and is gone" ||
      nok "qemu: QEMU starts recorded: $qemu_started, pid '$qpid' $([ -e "/proc/$qpid" ] && echo still there)"
  else
    [ "$qemu_started" = 0 ] && ok "$stage: QEMU was never started" || nok "$stage: QEMU started $qemu_started time(s)"
  fi
  kids=$(ps -o pid=,stat=,comm= --ppid "$vp" | tr '\n' ';')
  [ -z "$kids" ] && ok "$stage: vfiod has no child process (none left, no zombie)" || nok "$stage: children of vfiod: $kids"
  expect_clean "$d" "$stage"
  ids=$(grep -o 'sb-[0-9a-f]\{8\}' "$d/vfiod.log" | sort -u | tr '\n' ' ')
  [ -z "$(our_qemu_pids $ids)" ] || nok "$stage: a process names $ids"
  sleep 0.2
  fd1=$(fd_count "$vp") fo1=$(fd_other "$vp")
  # Strict for what a rollback could leak (TAP, memfd, pidfd, files); the
  # API connections (sockets) get the slack of the suite.
  [ "$fo1" -le "$fo0" ] && [ "$fd1" -le $((fd0 + 2)) ] &&
    ok "$stage: vfiod fds $fd0 before, $fd1 after (<= +2), non-socket $fo0 -> $fo1" ||
    nok "$stage: vfiod fds $fd0 -> $fd1, non-socket $fo0 -> $fo1: before $fol0 after $(fd_other_list "$vp")"
  stop_vfiod "$stage"
done

# ---- a journal commit that really fails (issue 14, defect 4) --------------
# No injection: the journal's file is replaced by a non-empty directory while
# vfiod runs, so the commit's rename fails (EISDIR). The create must fail
# there, before the TAP and QEMU, and leave nothing; once the journal can be
# written again a create succeeds.
d=$work/commit
write_conf "$d"
sed -i "s|^\[qemu\]|[qemu]\nbinary=$work/qemu-wrapper|" "$d/vfiod.conf"
: > "$d/qemu.pids"
if start_vfiod "$d" VFIOD_ITEST_QEMU_PIDS="$d/qemu.pids"; then
  rm -f "$d/state/journal.json" && mkdir -p "$d/state/journal.json/x"
  out=$(ctl sandbox create --kernel "$kernel" --initrd "$image" --json 2>&1)
  rc=$?
  [ "$rc" = 1 ] && [[ $out == *"cannot write journal"* ]] && ok "commit: create exits 1 when its record cannot be committed: $out" ||
    nok "commit: create exit $rc with the journal unwritable (want 1, 'cannot write journal'): $out"
  [ "$(wc -l < "$d/qemu.pids")" = 0 ] && [ -z "$(taps)" ] && [ -z "$(table)" ] && [ -z "$(ls -A "$d/run/sandboxes")" ] &&
    ok "commit: no QEMU started, no TAP, no table, no sandbox dir" ||
    nok "commit: left: QEMU starts $(wc -l < "$d/qemu.pids"), TAPs '$(taps)', dirs '$(ls -A "$d/run/sandboxes")'"
  rm -rf "$d/state/journal.json"
  out=$(ctl sandbox create --kernel "$kernel" --initrd "$image" --json 2>&1)
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2> /dev/null)
  [ -n "$id" ] && grep -q "\"$id\"" "$d/state/journal.json" && ok "commit: with the journal writable again $id is created and journaled" ||
    nok "commit: create after the journal came back: $out"
  [ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1
  expect_clean "$d" "commit" "$id"
  stop_vfiod "commit"
fi
itest_finish
