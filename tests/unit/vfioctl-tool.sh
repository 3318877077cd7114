#!/bin/bash
# vfioctl and vfioctl-tool (issue 17: the client's start-up). vfioctl links
# GLib/GIO and json-glib only; the verbs that need libarchive, libkmod,
# libpci, libnl or libnftables (doctor, pool, initramfs build, image build)
# run in vfioctl-tool, which vfioctl execs with its own argv:
#  1. vfioctl needs (directly or not) none of those libraries, nor
#     libsystemd; vfioctl-tool does link libarchive and libkmod;
#  2. each tool verb through vfioctl prints and exits as vfioctl-tool
#     itself does (--help, usage errors, --json), and `vfioctl --help`
#     lists them;
#  3. vfioctl execs the vfioctl-tool next to it with its argv unchanged
#     (global options included) and passes on its exit status; a verb that
#     talks to vfiod does not start it;
#  4. with no vfioctl-tool next to it, vfioctl names the installed path it
#     tried and exits 1.
# Usage: vfioctl-tool.sh VFIOCTL VFIOCTL_TOOL
set -u
vfioctl=$1 tool=$2
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
work=$(mktemp -d /tmp/vfioctl-tool-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- 1. what each links --------------------------------------------------------
libs=$(ldd "$vfioctl")
heavy=$(grep -oE 'lib(archive|kmod|pci|nl-3|nl-route-3|nftables|systemd|xml2|icuuc|crypto|stdc\+\+)\.so[^ ]*' <<< "$libs" | tr '\n' ' ')
[ -z "$heavy" ] && grep -q 'libgio-2.0' <<< "$libs" && grep -q 'libjson-glib' <<< "$libs" &&
  ok "1: vfioctl needs $(grep -c '=>' <<< "$libs") libraries, none of libarchive, libkmod, libpci, libnl, libnftables, libsystemd" ||
  nok "1: vfioctl needs: $heavy"
tlibs=$(ldd "$tool")
grep -q 'libarchive' <<< "$tlibs" && grep -q 'libkmod' <<< "$tlibs" && ok "1: vfioctl-tool links libarchive and libkmod" ||
  nok "1: vfioctl-tool: $(tr '\n' ' ' <<< "$tlibs")"

# ---- 2. the same output and exit status through vfioctl -------------------------
same() { # same ARGS...: vfioctl ARGS and vfioctl-tool ARGS print and exit alike
  local a b
  a=$("$vfioctl" "$@" 2>&1; echo "exit $?")
  b=$("$tool" "$@" 2>&1; echo "exit $?")
  [ "$a" = "$b" ] && ok "2: vfioctl $*: as vfioctl-tool ($(tail -1 <<< "$a"))" ||
    nok "2: vfioctl $*: differs: $(diff <(echo "$a") <(echo "$b") | head -5 | tr '\n' ' ')"
}
same doctor --help
same pool --help
same initramfs build --help
same image build --help
same image build
same image build --output "$work/x/../y"
same initramfs build --guest-init /nonexistent
same doctor extra
same pool bogus
same --json pool status --config "$work/none.conf"
out=$("$vfioctl" image build --help 2>&1)
[[ $out == *"vfioctl image build [OPTION"* && $out == *"--gpu"* ]] &&
  ok "2: vfioctl image build --help is the verb's own help" || nok "2: image build --help: $(head -3 <<< "$out")"
out=$("$vfioctl" image build 2>&1)
rc=$?
[ "$rc" = 2 ] && [[ $out == "vfioctl: image build needs --output DIR"* ]] &&
  ok "2: vfioctl image build without --output: exit 2, the tool's message" || nok "2: image build: exit $rc: $out"
out=$("$vfioctl" --help)
for v in "  doctor " "  pool status" "  initramfs build " "  image build " "  sandbox list"; do
  grep -qF -- "$v" <<< "$out" || { nok "2: vfioctl --help lacks '$v'"; continue; }
  ok "2: vfioctl --help lists '$v'"
done

# ---- 3. the exec, with a stand-in vfioctl-tool (its $0 is not argv[0]) ----------
mkdir -p "$work/bin" "$work/solo"
cp "$vfioctl" "$work/bin/vfioctl"
cat > "$work/bin/vfioctl-tool" << 'EOF'
#!/bin/bash
# stand-in: records its argv, one a line, and exits 42
printf '%s\n' "$0" "$@" > "${0%/*}/argv"
echo "stand-in on stdout"
exit 42
EOF
chmod +x "$work/bin/vfioctl-tool"
# (every path in $work: a vfioctl that ran the verb itself would write nothing elsewhere)
out=$("$work/bin/vfioctl" --socket /run/x.sock --json image build --gpu --output "$work/a b" --cache "$work/c" 2>&1)
rc=$?
want=$(printf '%s\n' "$work/bin/vfioctl-tool" --socket /run/x.sock --json image build --gpu --output "$work/a b" --cache "$work/c")
[ "$rc" = 42 ] && [ "$out" = "stand-in on stdout" ] && [ "$(cat "$work/bin/argv" 2>/dev/null)" = "$want" ] &&
  ok "3: vfioctl execs the vfioctl-tool next to it with its argv (global options, spaces kept), its exit 42 passed on" ||
  nok "3: exec: exit $rc, out '$out', argv: $(tr '\n' ' ' < "$work/bin/argv" 2>/dev/null)"
for verb in doctor "pool status --config $work/none.conf" "initramfs build"; do
  rm -f "$work/bin/argv"
  # shellcheck disable=SC2086  # the verb's words
  "$work/bin/vfioctl" $verb > /dev/null 2>&1
  rc=$?
  [ "$rc" = 42 ] && [ -f "$work/bin/argv" ] && ok "3: vfioctl ${verb%% --*} runs vfioctl-tool" || nok "3: vfioctl $verb: exit $rc, tool run: $([ -f "$work/bin/argv" ] && echo yes || echo no)"
done
rm -f "$work/bin/argv"
"$work/bin/vfioctl" --socket "$work/none.sock" sandbox list > /dev/null 2>&1
rc=$?
[ "$rc" != 42 ] && [ ! -e "$work/bin/argv" ] && ok "3: vfioctl sandbox list does not start vfioctl-tool (exit $rc)" ||
  nok "3: sandbox list ran the tool (exit $rc)"
"$work/bin/vfioctl" --version > /dev/null && [ ! -e "$work/bin/argv" ] && ok "3: vfioctl --version does not start it" ||
  nok "3: --version ran the tool"

# ---- 4. no vfioctl-tool ----------------------------------------------------------
cp "$vfioctl" "$work/solo/vfioctl"
out=$("$work/solo/vfioctl" doctor 2>&1)
rc=$?
installed=$(sed -n 's/^vfioctl: doctor runs in \(.*\), which cannot be run: .*/\1/p' <<< "$out")
if [ -n "$installed" ] || [ "$rc" != 0 ]; then
  [ "$rc" = 1 ] && [[ $installed == /*/vfiod/vfioctl-tool ]] &&
    ok "4: no vfioctl-tool next to it: exit 1 naming $installed" || nok "4: no tool: exit $rc: $out"
else
  ok "4: SKIP: an installed vfioctl-tool answered (exit $rc)"
fi

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
