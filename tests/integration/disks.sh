#!/bin/bash
# integration suite: a sandbox's disks and StopSandbox/StartSandbox (issue
# 15, items 2 and 8), against the real vfiod, real QEMU (TCG) and the
# pinned guest kernel, inside a network namespace this test creates (see
# lib.sh). Disks go as fds: `vfioctl sandbox create --add-disk` opens each
# image itself and sends the fd with the call.
#  1. refused, nothing left: an overlay on a writable root, two roots, a
#     read-only overlay, an unknown role, disk and disks together, 9 disks.
#  2. a read-only busybox root with a tmpfs overlay and a read-only data
#     disk: the workload writes to / (the overlay), finds the data disk as
#     /dev/disk/by-id/virtio-vfiod-data0 with the host's bytes (sha256), /
#     is an overlay; QEMU has readonly=on for root and data; the root image
#     is unchanged on the host (sha256).
#  3. a read-only root with an overlay disk (ext4), named: the workload
#     counts its runs in /state. StopSandbox: state "stopped", QEMU gone,
#     no TAP, nothing in the journal, the sandbox still listed. StartSandbox
#     (by name, --wait): same id, running, a new QEMU, and the workload
#     finds /state from the first run (RUN 2); the previous run's console
#     is kept; stop of a stopped sandbox and start of a running one answer
#     as they are; the root image unchanged, the overlay image holds
#     upper/state = 2 (debugfs). Delete leaves nothing; start of it then is
#     NotFound.
# Usage: disks.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init disks "$@"

for tool in busybox mkfs.ext4 debugfs sha256sum; do
  command -v "$tool" > /dev/null || { nok "$tool missing (busybox-static, e2fsprogs, coreutils)"; exit 1; }
done
build_root_image || { nok "guest image built"; exit 1; }
busybox_disk || { nok "busybox root disk"; exit 1; }
ovl=$work/overlay.ext4
truncate -s 32M "$ovl" && mkfs.ext4 -q -F "$ovl" || { nok "overlay disk"; exit 1; }
data=$work/data.img
head -c 1048576 /dev/urandom > "$data"
data_sum=$(sha256sum < "$data" | cut -c1-64)
root_sum=$(sha256sum < "$disk" | cut -c1-64)

d=$work/d
write_conf "$d"
start_vfiod "$d" || exit 1
base=(--kernel "$kernel" --initrd "$image" --memory 256)

# state ID: the sandbox's state ("" when unknown)
state() {
  ctl sandbox show "$1" --json 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("state",""))' 2> /dev/null
}
# console_has ID REGEX [TRIES]: waits (0.2 s steps) for a console line
console_has() {
  for _ in $(seq "${3:-900}"); do
    ctl sandbox console "$1" --bytes 200000 2> /dev/null | tr -d '\r' | grep -qE "$2" && return 0
    sleep 0.2
  done
  return 1
}

# ---- 1. refused ------------------------------------------------------------
refused() {
  local label=$1 needle=$2 out rc
  shift 2
  out=$(ctl sandbox create "${base[@]}" "$@" 2>&1)
  rc=$?
  [ "$rc" != 0 ] && grep -qF -- "$needle" <<< "$out" && ok "1: $label: refused (exit $rc): $out" ||
    nok "1: $label: exit $rc, want an error with '$needle': $out"
  expect_clean "$d" "1: $label"
}
refused "overlay on a writable root" "an overlay needs a read-only root disk" --add-disk "root=$disk" --add-disk "overlay=$ovl"
refused "two roots" "disks[1]: a second root disk" --add-disk "root=$disk:ro" --add-disk "root=$disk:ro"
refused "read-only overlay" "cannot be read-only" --add-disk "root=$disk:ro" --add-disk "overlay=$ovl:ro"
refused "unknown role" "role 'swap' is not root, overlay or data" --add-disk "swap=$data:ro"
refused "disk and disks" "give disk or disks, not both" --disk "$disk" --add-disk "data=$data:ro"
many=()
for _ in $(seq 9); do many+=(--add-disk "data=$data:ro"); done
refused "9 disks" "at most 8" "${many[@]}"
[ "$(sha256sum < "$disk" | cut -c1-64)" = "$root_sum" ] && ok "1: the root image is unchanged" || nok "1: the root image changed"

# ---- 2. read-only root, tmpfs overlay, a data disk -------------------------
script='
echo hello > /written && echo "WROTE $(busybox cat /written)"
echo "ROOTFS $(busybox awk "\$2 == \"/\" {print \$3}" /proc/mounts | busybox tail -1)"
l=/dev/disk/by-id/virtio-vfiod-data0
echo "DATA $(busybox readlink $l) $(busybox sha256sum < $l | busybox cut -c1-64)"
busybox sleep 600'
out=$(ctl sandbox create "${base[@]}" --add-disk "root=$disk:ro" --add-disk "data=$data:ro" --cmd /bin/busybox \
  --arg sh --arg -c --arg "$script" --wait --timeout 240 --json 2>&1)
rc=$?
id=$(grep -o 'sb-[0-9a-f]*' <<< "$out" | head -1)
id=${id:--}
[ "$rc" = 0 ] && ok "2: create --wait with a read-only root and a data disk: ready ($id)" || nok "2: create: exit $rc: $out"
pid=$(our_qemu_pids "$id" | head -1)
argv=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2> /dev/null)
grep -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-root,format=raw,readonly=on$' <<< "$argv" &&
  grep -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-data0,format=raw,readonly=on$' <<< "$argv" &&
  grep -q 'vfiod.overlay=tmpfs' <<< "$argv" && ! grep -qF "$disk" <<< "$argv" && ! grep -qF "$data" <<< "$argv" &&
  ok "2: QEMU: root and data read-only from fd sets, vfiod.overlay=tmpfs, no host path" ||
  nok "2: QEMU argv: $(tr '\n' ' ' <<< "$argv" | cut -c1-1200)"
console_has "$id" '^DATA ' || true
console=$(ctl sandbox console "$id" --bytes 200000 2>&1 | tr -d '\r')
grep -qx "WROTE hello" <<< "$console" && grep -qx "ROOTFS overlay" <<< "$console" &&
  ok "2: the workload wrote to / on the overlay" || nok "2: overlay: $(grep '^WROTE\|^ROOTFS\|FATAL' <<< "$console" | tr '\n' ' ')"
grep -qx "DATA ../../vd[a-z] $data_sum" <<< "$console" &&
  ok "2: the data disk is /dev/disk/by-id/virtio-vfiod-data0 with the host's bytes" ||
  nok "2: data disk: $(grep '^DATA' <<< "$console")"
out=$(ctl sandbox delete "$id" 2>&1) && ok "2: delete" || nok "2: delete: $out"
expect_clean "$d" "2: after delete" "$id"
[ "$(sha256sum < "$disk" | cut -c1-64)" = "$root_sum" ] && ok "2: the read-only root image is unchanged" ||
  nok "2: the root image changed"

# ---- 3. overlay disk, stop and start ------------------------------------------
script='
n=$(busybox cat /state 2> /dev/null || echo 0)
n=$((n + 1))
echo $n > /state && busybox sync
echo "RUN $n"
busybox sleep 600'
out=$(ctl sandbox create "${base[@]}" --name ovl-one --add-disk "root=$disk:ro" --add-disk "overlay=$ovl" \
  --cmd /bin/busybox --arg sh --arg -c --arg "$script" --wait --timeout 240 --json 2>&1)
rc=$?
id=$(grep -o 'sb-[0-9a-f]*' <<< "$out" | head -1)
id=${id:--}
[ "$rc" = 0 ] && ok "3: create ovl-one with an overlay disk: ready ($id)" || nok "3: create: exit $rc: $out"
console_has "$id" '^RUN 1$' && ok "3: first run: RUN 1" ||
  nok "3: first run: $(ctl sandbox console "$id" --bytes 3000 2>&1 | tail -5)"
pid1=$(our_qemu_pids "$id" | head -1)
out=$(ctl sandbox stop ovl-one --json 2>&1)
rc=$?
[ "$rc" = 0 ] && [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$out" 2>&1)" = stopped ] &&
  ok "3: sandbox stop: state stopped" || nok "3: stop: exit $rc: $out"
[ -z "$(our_qemu_pids "$id")" ] && [ -z "$(taps)" ] && [ "$(journal_counts "$d")" = "0 0" ] &&
  ok "3: stopped: no QEMU, no TAP, nothing in the journal" ||
  nok "3: stopped: QEMU '$(our_qemu_pids "$id")', TAPs '$(taps)', journal $(journal_counts "$d")"
[ "$(state ovl-one)" = stopped ] && ctl sandbox list --json | grep -q "$id" && ok "3: the stopped sandbox is still listed" ||
  nok "3: after stop: state '$(state ovl-one)'"
out=$(ctl sandbox stop "$id" --json 2>&1) && [[ $out == *'"stopped"'* ]] && ok "3: stop of a stopped sandbox: answered as it is" ||
  nok "3: second stop: $out"
out=$(ctl sandbox start ovl-one --wait --timeout 240 --json 2>&1)
rc=$?
[ "$rc" = 0 ] && [[ $out == *"\"$id\""* ]] && [[ $out == *'"running"'* ]] &&
  ok "3: sandbox start ovl-one --wait: the same id, running" ||
  { nok "3: start: exit $rc: $out"; sed 's/^/# qemu.log: /' "$d/run/sandboxes/$id/qemu.log"; ctl sandbox console "$id" --bytes 2000 | sed 's/^/# console: /'; }
pid2=$(our_qemu_pids "$id" | head -1)
[ -n "$pid2" ] && [ "$pid2" != "$pid1" ] && ok "3: a new QEMU ($pid1 -> $pid2)" || nok "3: QEMU '$pid1' -> '$pid2'"
console_has "$id" '^RUN 2$' && ok "3: second run: RUN 2 (the overlay disk kept /state)" ||
  nok "3: second run: $(ctl sandbox console "$id" --bytes 3000 2>&1 | tail -5)"
kept=$(ls "$d/run/consoles/" 2> /dev/null | grep -c "^$id\.")
[ "$kept" -ge 1 ] && ok "3: the first run's console is kept in consoles/" || nok "3: consoles/: $(ls "$d/run/consoles/" 2>&1)"
out=$(ctl sandbox start "$id" --json 2>&1) && [[ $out == *'"running"'* ]] && ok "3: start of a running sandbox: answered as it is" ||
  nok "3: start while running: $out"
out=$(ctl sandbox delete ovl-one 2>&1) && ok "3: delete" || nok "3: delete: $out"
expect_clean "$d" "3: after delete" "$id"
[ "$(sha256sum < "$disk" | cut -c1-64)" = "$root_sum" ] && ok "3: the read-only root image is unchanged" ||
  nok "3: the root image changed"
st=$(debugfs -R "cat /upper/state" "$ovl" 2> /dev/null)
[ "$st" = 2 ] && ok "3: the overlay image holds upper/state = 2" || nok "3: overlay image upper/state: '$st'"
out=$(ctl sandbox start "$id" 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"no sandbox"* ]] && ok "3: start of a deleted sandbox: exit $rc: $out" ||
  nok "3: start after delete: exit $rc: $out"

stop_vfiod "disks"
itest_finish
