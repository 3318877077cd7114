#!/bin/bash
# package suite: the Debian packages (issue 16, item 7).
#  1. dpkg-buildpackage -b builds vfiod and vfiod-guest-init from a copy of
#     the source tree (debhelper's meson support, debian/);
#  2. lintian reports no error;
#  3. the packages hold the daemon, client, unit, sysusers entry, conffile,
#     man pages, completion and guest-init, and their maintainer scripts
#     create the accounts and enable vfiod.service;
#  4. a dry install: dpkg -i of both packages into this machine's own root
#     seen through overlays in a private mount namespace (the real /etc,
#     /usr, /var are not written; the overlays go away with the namespace),
#     in a network namespace of its own. The postinst runs there: the
#     accounts exist afterwards and the unit is enabled. systemd-analyze
#     verify accepts the installed unit. Then the unit's own ExecStartPre and
#     ExecStart lines run as systemd would (this machine has no systemd as
#     PID 1): the check passes, the daemon reports READY, the installed
#     vfioctl lists sandboxes as root and as a member of group vfiod, runs
#     doctor through the installed vfioctl-tool, and
#     SIGTERM stops it.
# Usage: deb.sh SOURCE_DIR. Exit 77 when not root or a tool is missing.
set -u
src=$(cd "${1:?usage: deb.sh SOURCE_DIR}" && pwd)
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the dry install needs root (mount and network namespaces)"; exit 77; }
for tool in dpkg-buildpackage dh lintian unshare systemd-analyze setpriv python3; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool missing (apt-get install dpkg-dev debhelper lintian util-linux systemd python3)"; exit 77; }
done
t0=$(date +%s)
work=$(mktemp -d /tmp/vfiod-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. Build from a copy of the tree (the files git knows, committed or not;
#    no build dirs): dpkg-buildpackage writes into the source dir and its
#    parent.
mkdir "$work/vfiod"
if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
  (cd "$src" && git ls-files -co --exclude-standard | grep -v -E '^build(-|/)' | tar -cf - -T -) | tar -xf - -C "$work/vfiod"
else
  tar -C "$src" --exclude='./build*' -cf - . | tar -xf - -C "$work/vfiod"
fi
if (cd "$work/vfiod" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -uc -us) > "$work/build.log" 2>&1; then
  ok "1: dpkg-buildpackage -b built $(cd "$work" && ls ./*.deb | grep -v dbgsym | tr '\n' ' ')in $(($(date +%s) - t0)) s"
else
  nok "1: dpkg-buildpackage -b failed: $(tail -20 "$work/build.log" | tr '\n' ' ')"
  echo "# deb: $pass passed, $fail failed"
  exit 1
fi
ver=$(cd "$work/vfiod" && dpkg-parsechangelog -S Version)
deb=$work/vfiod_${ver}_amd64.deb gi=$work/vfiod-guest-init_${ver}_amd64.deb

# 2. lintian: no error (warnings are printed)
lintian --fail-on error "$work/vfiod_${ver}_amd64.changes" > "$work/lintian.log" 2>&1
rc=$?
sed 's/^/# lintian: /' "$work/lintian.log"
errors=$(grep -c '^E:' "$work/lintian.log")
[ "$rc" -eq 0 ] && [ "$errors" -eq 0 ] && ok "2: lintian: no error ($(grep -c '^W:' "$work/lintian.log") warnings)" ||
  nok "2: lintian: $errors errors (exit $rc)"

# 3. contents and maintainer scripts
contents=$(dpkg -c "$deb" | awk '{print $6}'; dpkg -c "$gi" | awk '{print $6}')
missing=()
for f in ./usr/sbin/vfiod ./usr/bin/vfioctl ./lib/systemd/system/vfiod.service ./usr/lib/sysusers.d/vfiod.conf \
  ./etc/vfiod/vfiod.conf ./usr/share/man/man8/vfiod.8.gz ./usr/share/man/man1/vfioctl.1.gz \
  ./usr/share/man/man5/vfiod.conf.5.gz ./usr/share/bash-completion/completions/vfioctl \
  ./usr/share/vfiod/pins.env ./usr/libexec/vfiod/guest-init ./usr/libexec/vfiod/vfioctl-tool \
  "./usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/vfiod/vfiod-libvirt.so"; do
  grep -qx -- "$f" <<< "$contents" || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] && ok "3: the packages hold the daemon, vfioctl, vfioctl-tool, the libvirt module, unit, sysusers entry, conffile, man pages, completion, pins, guest-init" ||
  nok "3: missing from the packages: ${missing[*]}"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/vfiod/vfiod.conf "$work/control/conffiles" && ok "3: /etc/vfiod/vfiod.conf is a conffile" ||
  nok "3: conffiles: $(cat "$work/control/conffiles" 2>&1)"
grep -q 'systemd-sysusers .*vfiod.conf' "$work/control/postinst" && grep -q "deb-systemd-helper enable 'vfiod.service'" "$work/control/postinst" &&
  ok "3: postinst creates the accounts (systemd-sysusers) and enables vfiod.service" || nok "3: postinst lacks sysusers/enable"
bu=$(dpkg-deb -f "$gi" Built-Using)
[[ $bu == *glibc* && $bu == *libnl3* ]] && ok "3: vfiod-guest-init (static) names what it links in: Built-Using: $bu" ||
  nok "3: vfiod-guest-init Built-Using: '$bu'"

# 4. the dry install, in private mount and network namespaces
cat > "$work/install.sh" <<'INNER'
set -u
work=$1 deb=$2 gi=$3
step() { echo "STEP $*"; }
for d in etc usr var; do
  mkdir -p "$work/ov/$d/upper" "$work/ov/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/ov/$d/upper,workdir=$work/ov/$d/work" "/$d" || { step "FAIL overlay /$d"; exit 1; }
done
mount -t tmpfs tmpfs /run || { step "FAIL tmpfs /run"; exit 1; }
ip link set lo up
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" "$gi" > "$work/dpkg.log" 2>&1; then step "OK dpkg -i: $(dpkg-query -W -f='${Package} ${Version} ${Status}; ' vfiod vfiod-guest-init)"
else step "FAIL dpkg -i: $(tail -5 "$work/dpkg.log" | tr '\n' ' ')"; exit 1; fi
acc="$(getent passwd vfiod-qemu | cut -d: -f1,7) $(getent group vfiod | cut -d: -f1)"
[ "$acc" = "vfiod-qemu:/usr/sbin/nologin vfiod" ] && step "OK postinst created the accounts: $acc" || step "FAIL accounts: '$acc'"
[ -L /etc/systemd/system/multi-user.target.wants/vfiod.service ] && step "OK postinst enabled vfiod.service (multi-user.target.wants)" ||
  step "FAIL vfiod.service not enabled"
out=$(systemd-analyze verify /lib/systemd/system/vfiod.service 2>&1)
[ -z "$out" ] && step "OK systemd-analyze verify vfiod.service: no complaint" || step "FAIL systemd-analyze verify: $(echo "$out" | tr '\n' ' ')"
# The unit's own command lines, with its RuntimeDirectory/StateDirectory.
pre=$(sed -n 's/^ExecStartPre=//p' /lib/systemd/system/vfiod.service)
start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/vfiod.service)
mkdir -p -m 0755 /run/vfiod && mkdir -p -m 0700 /var/lib/vfiod
out=$($pre 2>&1) && step "OK ExecStartPre ($pre): $out" || { step "FAIL ExecStartPre: $out"; exit 1; }
# [vm] backend = libvirt: the installed vfiod loads its installed module.
printf '[vm]\nbackend=libvirt\n[daemon]\nallowed_group=\n' > "$work/libvirt.conf"
out=$(vfiod --check-config "$work/libvirt.conf" 2>&1) && step "OK vfiod --check-config with [vm] backend=libvirt loads the installed vfiod-libvirt.so: $(echo "$out" | tail -1)" ||
  step "FAIL --check-config with backend=libvirt: $(echo "$out" | grep -v note | tr '\n' ' ')"
# Type=notify: systemd passes NOTIFY_SOCKET; a small listener reads READY=1.
python3 - "$work/notify" > "$work/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
while True:
    m = s.recv(4096).decode()
    print(m.replace("\n", " "), flush=True)
    if "READY=1" in m.split("\n"):
        break
PY
np=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$work/notify $start > "$work/vfiod.log" 2>&1 &
vp=$!
wait "$np" && grep -q 'READY=1' "$work/notify.log" && step "OK ExecStart ($start) sent READY=1: $(head -c 200 "$work/notify.log")" ||
  step "FAIL no READY=1 from vfiod: $(tail -5 "$work/vfiod.log" | tr '\n' ' ')"
out=$(vfioctl list --json 2>&1) && step "OK the installed vfioctl, as root, lists $(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') devices through /run/vfiod/vfiod.sock" ||
  step "FAIL vfioctl list: $out"
# doctor runs in the installed <libexecdir>/vfiod/vfioctl-tool (vfioctl execs it): its checks' lines.
out=$(vfioctl doctor --json 2>&1)
[[ $out == *'"check" : "iommu"'* ]] && step "OK the installed vfioctl runs doctor through /usr/libexec/vfiod/vfioctl-tool ($(echo "$out" | grep -c '"check"') checks)" ||
  step "FAIL vfioctl doctor: $(echo "$out" | head -3 | tr '\n' ' ')"
out=$(setpriv --reuid=nobody --regid=nogroup --groups="$(getent group vfiod | cut -d: -f3)" vfioctl sandbox list --json 2>&1) &&
  step "OK a process holding group vfiod (uid nobody, not listed in /etc/group: SO_PEERGROUPS) lists sandboxes: $(echo "$out" | tr -d ' \n')" || step "FAIL member: $out"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups vfioctl sandbox list 2>&1) &&
  step "FAIL a non-member was answered: $out" || step "OK a non-member is refused: $(echo "$out" | head -1)"
kill -TERM "$vp"; wait "$vp"; rc=$?
[ "$rc" -eq 0 ] && step "OK SIGTERM: vfiod exits 0" || step "FAIL vfiod exit $rc: $(tail -5 "$work/vfiod.log" | tr '\n' ' ')"
INNER
unshare --mount --propagation private --net bash "$work/install.sh" "$work" "$deb" "$gi" > "$work/install.log" 2>&1
while read -r tag verdict rest; do
  [ "$tag" = STEP ] || continue
  if [ "$verdict" = OK ]; then ok "4: $rest"; else nok "4: $rest"; fi
done < "$work/install.log"
grep -q '^STEP OK SIGTERM' "$work/install.log" || { nok "4: the dry install stopped early"; sed 's/^/#   /' "$work/install.log"; }
# Nothing reached the machine's own root.
leak=()
for p in /usr/sbin/vfiod /etc/vfiod /lib/systemd/system/vfiod.service; do [ -e "$p" ] && leak+=("$p"); done
dpkg-query -W vfiod > /dev/null 2>&1 && leak+=("dpkg database")
[ ${#leak[@]} -eq 0 ] && ok "4: the machine's own root is unchanged (no vfiod files, not in its dpkg database)" ||
  nok "4: left in the machine's root: ${leak[*]} (was vfiod installed here before?)"
echo "# deb: $pass passed, $fail failed ($(($(date +%s) - t0)) s)"
[ "$fail" -eq 0 ]
