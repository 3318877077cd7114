#!/bin/bash
# integration suite: the workload on the guest kernel command line (issue 13,
# finding 4), against the real vfiod, real QEMU (TCG) and the pinned guest
# kernel, inside a network namespace this test creates (see lib.sh).
#  1. refused: `--cmd $'/bin/true\vrdinit=/evil'` (the audit's attack: the
#     guest kernel ran /evil as init), a U+00A0 (byte 0xa0 splits words in
#     the kernel), a quote that would close vfiod's quoting, a tab in an
#     environment value, a bad environment name, too many arguments, a
#     request over the command line budget: each exits 2 with
#     org.vfiod.Error.InvalidArgument naming the entry and the rule, and
#     nothing is left (no QEMU, no TAP, no table, journal empty, no sandbox
#     dir, no sandbox listed).
#  2. accepted: a workload whose arguments and environment hold blanks,
#     shell metacharacters and the words `rdinit=/evil init=/evil
#     vfiod.root=/dev/evil -- vfiod.report=console` inside quoted values
#     (the workload is guest-init itself, `/init --test --cmdline LINE`):
#     QEMU's -append holds them inside their quoted words; the guest boots
#     through guest-init (the kernel did not take rdinit=: it reports ready
#     for vfiod's sandbox id); the workload got LINE as one argument (its
#     own VFIOD_READY names the sandbox id in LINE); guest-init took the line
#     (no FATAL, no refused word), stopped the workload on the delete and
#     powered off on the power button; nothing is left.
# Usage: workload-cmdline.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init workload-cmdline "$@"

build_image || { nok "guest image built"; exit 1; }
d=$work/d
write_conf "$d"
start_vfiod "$d" || exit 1

# refused LABEL NEEDLE ARGS...: `sandbox create ARGS` exits 2 with NEEDLE
# in its message, and nothing is left.
refused() {
  local label=$1 needle=$2 out rc
  shift 2
  out=$(LC_ALL=C.UTF-8 ctl sandbox create --kernel "$kernel" --initrd "$image" "$@" 2>&1)
  rc=$?
  [ "$rc" = 2 ] && grep -qF -- "$needle" <<< "$out" && ok "1: $label: refused (exit 2): $out" ||
    nok "1: $label: exit $rc, want 2 and '$needle': $out"
  expect_clean "$d" "1: $label"
}

refused "cmd with \\v rdinit=/evil" "cmd: byte 0x0b at offset 9 is not allowed" --cmd $'/bin/true\vrdinit=/evil'
refused "cmd with \\f" "cmd: byte 0x0c" --cmd $'/init\finit=/evil'
refused "argument with U+00A0" "args[1]: byte 0xc2 at offset 1 is not allowed" \
  --cmd /init --arg ok --arg $'x\xc2\xa0rdinit=/evil'
refused "argument closing the quotes" "args[0]: byte 0x22 at offset 1" --cmd /init --arg 'x" vfiod.root=/dev/evil "'
refused "argument with a backslash" "args[0]: byte 0x5c" --cmd /init --arg 'a\b'
refused "environment value with a tab" "env A: byte 0x09 at offset 1" --cmd /init --env $'A=1\tvfiod.root=/dev/evil'
refused "environment name with a dash" "env: the name \"BAD-NAME\" is not allowed" --cmd /init --env 'BAD-NAME=1'
many=()
for i in $(seq 17); do many+=(--arg "a$i"); done
refused "17 arguments" "args: 17 given, at most 16" --cmd /init "${many[@]}"
long=$(head -c 256 /dev/zero | tr '\0' x)
big=()
for i in $(seq 6); do big+=(--arg "$long"); done
refused "6 arguments of 256 bytes" "take 1630 bytes of the guest kernel command line, at most 1535" --cmd /init "${big[@]}"

# ---- 2. an accepted workload with tricky values ------------------------
# The image holds guest-init only: the workload is guest-init itself, as
# `/init --test --cmdline LINE`, which parses LINE, prints a VFIOD_READY line
# of its own for the sandbox id in it, and waits until it is stopped. So
# an argument with blanks and key-like words must reach it whole, as one
# argv element.
tricky='x rdinit=/evil init=/evil vfiod.root=/dev/evil -- vfiod.report=console'
inner="vfiod.sandbox=inner-ok $tricky"
out=$(ctl sandbox create --kernel "$kernel" --initrd "$image" --cmd /init --arg=--test --arg=--cmdline \
  --arg "$inner" --arg '' --arg "a  b;c|d&e\$(f)'g'" --env 'GREETING=hello world' --env "X=$tricky" \
  --wait --timeout 240 --json 2>&1)
rc=$?
read -r id ready workload sandbox < <(python3 -c '
import json, sys
o = json.loads(sys.argv[1])
r = o.get("ready_report") or {}
print(o.get("id", "-"), o.get("ready"), r.get("workload"), r.get("sandbox"))
' "$out" 2> /dev/null || echo "- - - -")
[ "$rc" = 0 ] && [ "$ready" = True ] &&
  ok "2: the guest booted through guest-init and reported ready (rdinit=/evil inside a quoted argument was not the kernel's)" ||
  nok "2: create --wait: exit $rc, ready $ready: $out"
[ "$workload" = /init ] && [ "$sandbox" = "$id" ] &&
  ok "2: ready report: workload /init, sandbox $id (vfiod's own vfiod.sandbox held)" ||
  nok "2: ready report: workload '$workload', sandbox '$sandbox', id $id"
log=$d/run/sandboxes/$id/serial.log
logs+=("$log")
pid=$(our_qemu_pids "$id" | head -1)
append=$(python3 -c '
import sys
a = open(f"/proc/{sys.argv[1]}/cmdline", "rb").read().split(b"\0")
print(a[a.index(b"-append") + 1].decode())' "$pid" 2> /dev/null)
want=" vfiod.cmd=/init \"vfiod.arg=--test\" \"vfiod.arg=--cmdline\" \"vfiod.arg=$inner\" \"vfiod.arg=\" \"vfiod.arg=a  b;c|d&e\$(f)'g'\" \"vfiod.env=GREETING=hello world\" \"vfiod.env=X=$tricky\""
grep -qF -- "$want" <<< "$append" && ok "2: QEMU's -append holds the workload's words, quoted (${#append} bytes)" ||
  nok "2: QEMU (pid '$pid') -append: '$append'"
# the workload (the inner guest-init) got LINE as one argument
for _ in $(seq 300); do grep -q '"sandbox":"inner-ok"' "$log" 2> /dev/null && break; sleep 0.1; done
grep -q '^VFIOD_READY .*"sandbox":"inner-ok"' "$log" &&
  ok "2: the workload got the argument whole: its own VFIOD_READY names sandbox inner-ok" ||
  nok "2: no inner VFIOD_READY: $(grep '^VFIOD_\|guest-init' "$log" | tr '\n' ' ' | cut -c1-600)"
# The delete removes the serial log: keep it open to read the last lines.
exec 7< "$log"
out=$(ctl sandbox delete "$id" 2>&1) && ok "2: delete" || nok "2: delete: $out"
console=$(tr -d '\r' <&7)
exec 7<&-
grep -q '^VFIOD_READY .*"sandbox":"'"$id"'"' <<< "$console" && grep -q '^VFIOD_EXIT ' <<< "$console" &&
  grep -q '^VFIOD_POWEROFF {"reason":"power-button"}' <<< "$console" &&
  ok "2: console: guest-init's READY for $id, the workload stopped (VFIOD_EXIT), power-off on the button" ||
  nok "2: console: $(grep '^VFIOD_' <<< "$console" | tr '\n' ' ' | cut -c1-800)"
# (the inner guest-init warns about its own line: vfiod.root without vfiod.cmd).
# guest-init's warnings say "kernel command line: ..."; the kernel's own
# lines may mention "the kernel command line" too (a loaded host's TCG guest
# can print a clocksource hint), which is not guest-init's business.
bad=$(grep 'VFIOD_FATAL\|kernel command line: ' <<< "$console" | grep -v 'vfiod.root without vfiod.cmd')
[ -z "$bad" ] && ok "2: guest-init took the line: no FATAL, no command line warning" ||
  nok "2: console: $(head -3 <<< "$bad" | tr '\n' ' ')"
expect_clean "$d" "2: after delete" "$id"

stop_vfiod "workload-cmdline"
itest_finish
