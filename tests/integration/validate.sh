#!/bin/bash
# integration suite: ValidateSandbox (issue 15, item 6). vfiod on a fake
# kernel (tests/crash/vfiod-fake on a tree made by fake-tree: IOMMU group 12
# = 0000:01:00.0 + 0000:01:00.1, group 13 = 0000:02:00.0), stand-in QEMU:
#  - a good spec (a device; gpus 1): valid, with the functions, IOMMU
#    groups, machine and memory a create then gets (the create after it
#    gets the same devices);
#  - a bad BDF, an unknown device, too much memory, vcpus 0, a missing
#    kernel, a device bound for another owner, more gpus than are free, a
#    name another spec holds, an exhausted subnet pool: the same D-Bus
#    error name and message as the CreateSandbox of the same spec;
#  - the same name and spec as an existing sandbox: valid, existing = its id;
#  - nothing changes: the journal file byte for byte, the sandbox list, the
#    runtime's sandbox directories, ListDevices, the fake tree's sysfs files,
#    the links and nft rules of the test's network namespace.
# Usage: validate.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init validate "$@"
use_fake_vfiod

d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group="
# [network] on: a create makes a TAP and nft rules in this test's network
# namespace (itest_init's unshare), a dry run must not.
sed -i 's/^enabled=false$/enabled=true/' "$d/vfiod.conf"
start_fake_vfiod "$d" || exit 1
field() { python3 -c 'import json,sys
j = json.loads(sys.argv[1])
v = j.get(sys.argv[2], "")
print(",".join(map(str, v)) if isinstance(v, list) else v)' "$1" "$2" 2> /dev/null; }
gcall() { timeout 20 gdbus call --address "unix:path=$sock" --dest org.vfiod --object-path /org/vfiod/Manager1 \
  --method "org.vfiod.Manager1.$1" "$2" 2>&1; }
# The host's state as vfiod and the kernel see it: all of it must stay.
snapshot() {
  {
    echo "journal: $(sha256sum < "$d/state/journal.json" 2> /dev/null || echo none)"
    echo "sandboxes: $(ctl sandbox list --json)"
    echo "dirs: $(ls -A "$d/run/sandboxes" 2> /dev/null | tr '\n' ' ')"
    echo "devices: $(ctl list --json)"
    # the fake kernel: every file's contents, every link's target
    echo "sysfs files: $(find "$d/fake" -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum)"
    echo "sysfs links: $(find "$d/fake" -type l -printf '%p -> %l\n' | sort | sha256sum)"
    echo "links: $(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
    echo "nft: $(nft list ruleset 2> /dev/null | sha256sum)"
    echo "qemus: $(for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -0 "$p" 2> /dev/null && echo "$p"; done | wc -l)"
  } > "$1"
}
# One journal commit so that the file exists: bind and release a device.
ctl bind 0000:02:00.0 > /dev/null && ctl release 0000:02:00.0 > /dev/null || nok "bind/release 0000:02:00.0"
snapshot "$work/before"

# ---- good specs: what the create would get -----------------------------------
v=$(ctl sandbox create --dry-run --device 0000:01:00.0 --memory 256 --vcpus 2 --json 2>&1)
[ "$(field "$v" valid)" = True ] && [ "$(field "$v" devices)" = "0000:01:00.0,0000:01:00.1" ] &&
  [ "$(field "$v" iommu_groups)" = 12 ] && [ "$(field "$v" machine)" = q35 ] && [ "$(field "$v" memory_mib)" = 256 ] &&
  [ "$(field "$v" vcpus)" = 2 ] && [ -n "$(field "$v" phys_bits)" ] &&
  ok "create --dry-run --device 0000:01:00.0: valid, both functions of group 12, q35, 256 MiB, 2 vcpus" ||
  nok "dry run of a good spec: $v"
g=$(ctl sandbox create --dry-run --gpus 1 --json 2>&1)
[ "$(field "$g" valid)" = True ] && [ "$(field "$g" iommu_groups)" = 12 ] &&
  ok "create --dry-run --gpus 1: valid, would get group 12 ($(field "$g" devices))" || nok "dry run --gpus 1: $g"
c=$(ctl sandbox create --dry-run --json 2>&1)
[ "$(field "$c" valid)" = True ] && [ "$(field "$c" machine)" = microvm ] && [ -z "$(field "$c" devices)" ] &&
  ok "create --dry-run (CPU only): valid, a microvm without devices" || nok "dry run CPU-only: $c"
text=$(ctl sandbox create --dry-run --device 0000:02:00.0 2>&1)
[[ $text == "valid: a q35 sandbox with memory 512 MiB, 1 vcpus, devices 0000:02:00.0" ]] &&
  ok "create --dry-run (text): $text" || nok "dry run text: $text"

snapshot "$work/after-good"
diff "$work/before" "$work/after-good" > "$work/good.diff" &&
  ok "after those dry runs: journal bytes, sandbox list, sandbox dirs, devices, fake sysfs files and links, network links, nft rules, QEMUs unchanged" ||
  nok "the dry runs changed: $(head -c 800 "$work/good.diff")"

# ---- bad specs: the create's errors ----------------------------------------------
ctl bind 0000:02:00.0 > /dev/null || nok "bind 0000:02:00.0"
busy_before=$(sha256sum < "$d/state/journal.json")
same=0 total=0
for spec in "{'devices': <['0000:zz:00.0']>}" "{'devices': <['0000:09:00.0']>}" "{'memory_mib': <uint32 2000000>}" \
  "{'vcpus': <uint32 0>}" "{'kernel': <'$work/no-such-kernel'>}" "{'devices': <['0000:02:00.0']>}" \
  "{'gpus': <uint32 2>}" "{'devices': <['0000:01:00.0', '0000:01:00.0']>}" "{'name': <'sb-x'>}" \
  "{'devices': <['0000:01:00.0']>, 'gpus': <uint32 1>}"; do
  total=$((total + 1))
  ev=$(gcall ValidateSandbox "$spec")
  ec=$(gcall CreateSandbox "$spec")
  if [[ $ev == *org.vfiod.Error.* ]] && [ "$ev" = "$ec" ]; then
    same=$((same + 1))
    note "$spec: $(grep -o 'org.vfiod.Error.*' <<< "$ev" | cut -c1-150)"
  else
    note "$spec: validate said '$ev', create said '$ec'"
  fi
done
[ "$same" = "$total" ] &&
  ok "$total bad specs (bad BDF, unknown device, 2000000 MiB, 0 vcpus, missing kernel, a device bound for another owner, 2 gpus with 1 free, a BDF twice, a bad name, devices and gpus): ValidateSandbox answers the very error CreateSandbox does" ||
  nok "bad specs: $same of $total with the create's error"
[ "$(sha256sum < "$d/state/journal.json")" = "$busy_before" ] || nok "the failed creates changed the journal"
ctl release 0000:02:00.0 > /dev/null || nok "release 0000:02:00.0"

# ---- names ----------------------------------------------------------------------
snapshot "$work/before"
a=$(ctl sandbox create --name val-a --memory 128 --json 2>&1)
aid=$(field "$a" id)
snapshot "$work/before-named"
e1=$(gcall ValidateSandbox "{'name': <'val-a'>, 'memory_mib': <uint32 256>}")
e2=$(gcall CreateSandbox "{'name': <'val-a'>, 'memory_mib': <uint32 256>}")
[[ $e1 == *org.vfiod.Error.AlreadyExists* ]] && [ "$e1" = "$e2" ] && [[ $e1 == *"$aid"* ]] &&
  ok "the name of another spec: AlreadyExists, as the create ($(grep -o 'AlreadyExists.*' <<< "$e1" | cut -c1-100))" ||
  nok "name clash: validate '$e1', create '$e2'"
s=$(ctl sandbox create --dry-run --name val-a --memory 128 --json 2>&1)
[ "$(field "$s" valid)" = True ] && [ "$(field "$s" existing)" = "$aid" ] &&
  ok "the same name and spec again: valid, existing = $aid (the create would return it)" || nok "same name/spec dry run: $s"
snapshot "$work/after-named"
diff "$work/before-named" "$work/after-named" > "$work/named.diff" &&
  ok "the name checks changed nothing" || nok "the name checks changed: $(head -c 600 "$work/named.diff")"
ctl sandbox delete val-a > /dev/null 2>&1 || nok "delete val-a"

# ---- a good spec, then its create: the same choice --------------------------------
v=$(ctl sandbox create --dry-run --gpus 1 --memory 128 --json 2>&1)
snapshot "$work/after"
diff "$work/before" "$work/after" > "$work/all.diff" &&
  ok "a create and delete of val-a and another dry run later, all of it is as before" ||
  nok "something changed: $(head -c 800 "$work/all.diff")"
r=$(ctl sandbox create --gpus 1 --memory 128 --json 2>&1)
[ -n "$(field "$r" id)" ] && [ "$(field "$r" devices)" = "$(field "$v" devices)" ] &&
  [ "$(field "$r" memory_mib)" = "$(field "$v" memory_mib)" ] &&
  [ -n "$(ip -o link show | grep vfd)" ] &&
  ok "the create after the dry run gets what it said: $(field "$r" devices), and a TAP ($(ip -o link show | grep -o 'vfd[^:@]*' | head -1))" ||
  nok "dry run said '$(field "$v" devices)', the create got: $r"
ctl sandbox delete "$(field "$r" id)" > /dev/null 2>&1

# ---- a subnet pool with one subnet, taken: the create's error ----------------------
stop_vfiod "before the one-subnet pool"
sed -i '/^\[network\]$/a pool=10.250.0.0/30\nprefix=30' "$d/vfiod.conf"
start_fake_vfiod "$d" || exit 1
one=$(ctl sandbox create --json 2>&1)
snapshot "$work/before-pool"
ev=$(gcall ValidateSandbox "{}")
ec=$(gcall CreateSandbox "{}")
snapshot "$work/after-pool"
[ -n "$(field "$one" id)" ] && [[ $ev == *org.vfiod.Error.Busy*exhausted* ]] && [ "$ev" = "$ec" ] &&
  diff -q "$work/before-pool" "$work/after-pool" > /dev/null &&
  ok "[network] pool of one subnet, taken: ValidateSandbox answers the create's $(grep -o 'org.vfiod.Error.*' <<< "$ev"); nothing changed" ||
  nok "exhausted pool: validate '$ev', create '$ec', first create: $one; $(diff "$work/before-pool" "$work/after-pool" | head -c 400)"
ctl sandbox delete "$(field "$one" id)" > /dev/null 2>&1
v=$(ctl sandbox create --dry-run --json 2>&1)
[ "$(field "$v" valid)" = True ] && ok "the subnet given back: valid again" || nok "after the delete: $v"

for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
stop_vfiod "end"
itest_finish
