# shellcheck shell=bash disable=SC2034  # variables are used by the scripts sourcing this
# Shared helpers of the integration suite (sourced, bash). Each test script:
#   . "$(dirname "$0")/lib.sh"; itest_init NAME "$@"
# itest_init exits 77 when not root (or QEMU, unshare, ip, nft are missing),
# fetches the pinned guest kernel (tests/lab/fetch-kernel.sh, a no-op when
# cached; done before entering the namespace, which has no route out), then
# re-executes the script under `unshare --net`: every TAP, address and nft
# rule the real vfiod makes lives in that namespace and goes away with it.
# Arguments of every script: BUILD_DIR SOURCE_DIR.
# Environment: VFIOD_KERNEL_CACHE (default BUILD_DIR/lab-cache), as the
# guest suite.

itest_init() {
  itest_name=$1
  shift
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the integration suite needs root (network namespace, TAPs, nftables, QEMU)"
    exit 77
  fi
  [ $# -ge 2 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2; exit 2; }
  build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
  if [ -z "${VFIOD_ITEST_IN_NETNS:-}" ]; then
    local tool
    for tool in unshare ip nft qemu-system-x86_64 python3; do
      command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
    done
    cache=${VFIOD_KERNEL_CACHE:-$build/lab-cache}
    if ! "$src/tests/lab/fetch-kernel.sh" "$cache"; then
      echo "not ok - cannot fetch the pinned guest kernel into $cache"
      exit 1
    fi
    exec env VFIOD_ITEST_IN_NETNS=1 VFIOD_KERNEL_CACHE="$cache" unshare --net "$0" "$@"
  fi
  cache=$VFIOD_KERNEL_CACHE
  vfiod=$build/vfiod/vfiod vfioctl=$build/vfiod/vfioctl guest_init=$build/guest-init/guest-init
  # the release fetch-kernel.sh fetched (the pins resolved against the archive)
  # shellcheck disable=SC1091
  . "$cache/kernel.env"
  release=$GUEST_KERNEL_RELEASE
  kernel=$cache/vmlinuz
  # The work dir must be traversable by the unprivileged clients of
  # permissions.sh (mktemp makes it 0700).
  work=$(mktemp -d "/tmp/vfiod-itest-$itest_name-XXXXXX")
  chmod 0755 "$work"
  pass=0 fail=0
  vp='' vlog=''
  logs=()
  t0=$(date +%s.%N)
  ip link set lo up
  own_netns=$(readlink /proc/self/ns/net)
  trap itest_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
note() { echo "# $*"; }
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else nok "$what"; fi
}

itest_cleanup() {
  local rc=$? l p
  if [ -n "$vp" ] && kill -0 "$vp" 2>/dev/null; then kill -9 "$vp" 2>/dev/null; fi
  for p in $(our_qemu_pids); do kill -9 "$p" 2>/dev/null; done
  # Anything else this script left running (monitors, clients of an
  # aborted run): they would keep the namespace alive.
  for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
  if [ "$fail" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for l in "${logs[@]}"; do
      [ -f "$l" ] || continue
      echo "# ---- $l"
      sed 's/^/#   /' "$l"
    done
  fi
  [ -n "${itest_extra_cleanup:-}" ] && "$itest_extra_cleanup"
  rm -rf "$work"
}

itest_finish() {
  local secs
  secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  echo "# integration $itest_name: $pass passed, $fail failed (${secs} s)"
  [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The guest image: guest-init as /init with the modules a microvm sandbox
# needs (virtio-mmio transport, virtio-net, vsock, the ACPI power button).
build_image() {
  image=$work/guest.cpio.gz
  "$vfioctl" initramfs build --guest-init "$guest_init" --output "$image" \
    --modules-dir "$cache/modules/$release" --module virtio_mmio --module virtio_net \
    --module vmw_vsock_virtio_transport --module button --module evdev --module qemu_fw_cfg --pins "$cache/kernel.env" \
    > "$work/image.log" 2>&1 || { sed 's/^/# /' "$work/image.log"; return 1; }
}

# build_root_image: the guest image for sandboxes with a root disk (sets
# image): build_image's modules plus virtio_blk, ext4, crc32c_generic and
# overlay.
# busybox_disk: a 64 MiB ext4 root disk holding busybox alone (sets disk;
# needs busybox and mkfs.ext4).
build_root_image() {
  image=$work/guest-root.cpio.gz
  "$vfioctl" initramfs build --guest-init "$guest_init" --output "$image" \
    --modules-dir "$cache/modules/$release" --module virtio_mmio --module virtio_net --module virtio_blk \
    --module ext4 --module crc32c_generic --module vmw_vsock_virtio_transport --module button --module evdev \
    --module qemu_fw_cfg --module overlay --pins "$cache/kernel.env" > "$work/image.log" 2>&1 || { sed 's/^/# /' "$work/image.log"; return 1; }
}
busybox_disk() {
  local tree=$work/busybox-root
  mkdir -p "$tree/bin" "$tree/etc" "$tree/run" "$tree/tmp" "$tree/proc" "$tree/sys" "$tree/dev"
  cp "$(readlink -f "$(command -v busybox)")" "$tree/bin/busybox" || return 1
  disk=$work/root.ext4
  truncate -s 64M "$disk" && mkfs.ext4 -q -F -d "$tree" "$disk"
}

# write_conf DIR [KEY=VALUE lines for [daemon]]: a configuration with its
# own state and runtime dirs under DIR. [network] is on (the default).
write_conf() {
  local dir=$1
  shift
  mkdir -p "$dir"
  {
    echo "[daemon]"
    echo "state_dir=$dir/state"
    echo "runtime_dir=$dir/run"
    if [ $# -gt 0 ]; then printf '%s\n' "$@"; else echo "allowed_group="; fi
    echo "[qemu]"
    echo "accel=tcg"
    echo "stop_timeout=20"
    echo "[network]"
    echo "enabled=true"
  } > "$dir/vfiod.conf"
}

# make_members GROUP USER...: sets group and member (the first USER); makes
# GROUP and each USER, a system user in it (no home, no login), unless they
# exist; a USER that exists but is not in GROUP (left by an interrupted run,
# say) is added to it. remove_accounts undoes what was made or added, at the
# latest at exit. Exits when a USER is not in GROUP afterwards.
# make_member GROUP USER: the same for one member.
made_accounts=()
make_members() {
  local u
  group=$1 member=$2
  shift
  itest_extra_cleanup=remove_accounts
  if ! getent group "$group" > /dev/null; then
    groupadd -r "$group" || { nok "groupadd $group"; exit 1; }
    made_accounts=("group:$group" "${made_accounts[@]}")
  fi
  for u in "$@"; do
    if ! getent passwd "$u" > /dev/null; then
      useradd -r -M -N -g nogroup -G "$group" -s /usr/sbin/nologin -d /nonexistent "$u" || { nok "useradd $u"; exit 1; }
      made_accounts=("user:$u" "${made_accounts[@]}")
    elif ! id -nG "$u" | tr ' ' '\n' | grep -qx "$group"; then
      note "user $u exists outside $group: added to it for this test"
      gpasswd -a "$u" "$group" > /dev/null || { nok "gpasswd -a $u $group"; exit 1; }
      made_accounts=("member:$u:$group" "${made_accounts[@]}")
    fi
    id -nG "$u" | tr ' ' '\n' | grep -qx "$group" || { nok "$u is not in $group: $(id "$u")"; exit 1; }
  done
}
make_member() { make_members "$1" "$2"; }
# remove_accounts: removes the users and groups make_members made (their
# processes killed first: userdel refuses a user that still runs one) and
# takes back the memberships it added.
remove_accounts() {
  local a m
  for a in "${made_accounts[@]}"; do
    case $a in
      group:*) groupdel "${a#group:}" 2> /dev/null ;;
      user:*)
        pkill -KILL -u "${a#user:}" 2> /dev/null
        userdel "${a#user:}" 2> /dev/null || { sleep 0.2; userdel "${a#user:}" 2> /dev/null; } ||
          echo "# userdel ${a#user:} failed: $(pgrep -a -u "${a#user:}" | head -3)"
        ;;
      member:*)
        m=${a#member:}
        gpasswd -d "${m%%:*}" "${m#*:}" > /dev/null 2>&1
        ;;
    esac
  done
  made_accounts=()
}
# as USER COMMAND...: COMMAND as USER, with its groups from the group database.
as() {
  local u=$1
  shift
  setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

# use_fake_vfiod: vfiod on a fake kernel, tests/crash/vfiod-fake (sets
# vfiod_fake), on trees made by fake-tree (TEST ONLY; sets fake_tree);
# exits when they are not built. The stand-in QEMU's guest: $work/vmlinuz
# and $work/initrd.
use_fake_vfiod() {
  local f
  fake_tree=$build/tests/integration/fake-tree
  vfiod_fake=$build/tests/crash/vfiod-fake
  for f in "$fake_tree" "$vfiod_fake"; do
    [ -x "$f" ] || { nok "$f missing (build it)"; exit 1; }
  done
  echo k > "$work/vmlinuz" && echo i > "$work/initrd"
}

# fake_dir DIR: a fresh fake tree in DIR/fake (its [testing] lines in
# DIR/roots) and the stand-in QEMU, DIR/fake-qemu.
fake_dir() {
  local dir=$1
  mkdir -p "$dir"
  "$fake_tree" "$dir/fake" > "$dir/roots" || { nok "fake-tree"; exit 1; }
  cp "$src/tests/crash/fake-qemu.sh" "$dir/fake-qemu" && chmod 0755 "$dir/fake-qemu"
}

# write_fake_conf DIR KERNEL INITRD [DAEMON_LINE...] [-- QEMU_LINE...]:
# fake_dir DIR and DIR/vfiod.conf for vfiod-fake: its own state and
# runtime dirs, the stand-in QEMU run as root, [qemu] kernel and initrd
# (unless empty), [network] off, the fake tree's [testing] roots; the
# KEY=VALUE lines go to [daemon], those after "--" to [qemu].
write_fake_conf() {
  local dir=$1 kernel=$2 initrd=$3 daemon=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do daemon+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  fake_dir "$dir"
  {
    echo "# $itest_name.sh (TEST ONLY): vfiod-fake, stand-in QEMU run as root"
    echo "[daemon]"
    echo "state_dir=$dir/state"
    echo "runtime_dir=$dir/run"
    [ ${#daemon[@]} -eq 0 ] || printf '%s\n' "${daemon[@]}"
    echo "[qemu]"
    echo "binary=$dir/fake-qemu"
    echo "user=root"
    echo "accel=tcg"
    echo "stop_timeout=2"
    [ -z "$kernel" ] || echo "kernel=$kernel"
    [ -z "$initrd" ] || echo "initrd=$initrd"
    [ $# -eq 0 ] || printf '%s\n' "$@"
    echo "[network]"
    echo "enabled=false"
    echo "[testing]"
    cat "$dir/roots"
  } > "$dir/vfiod.conf"
}

# start_vfiod DIR [VAR=VALUE...]: runs vfiod with DIR/vfiod.conf (and the
# given environment), waits until its API answers (with no_client set: until
# it says it serves the API, without connecting). Sets vp, vlog, sock.
start_vfiod() {
  local dir=$1 i
  shift
  vlog=$dir/vfiod.log
  sock=$dir/run/vfiod.sock
  logs+=("$vlog")
  env "$@" "$vfiod" --config "$dir/vfiod.conf" >> "$vlog" 2>&1 &
  vp=$!
  for i in $(seq 200); do
    if [ -n "${no_client:-}" ]; then # wait for it without connecting
      grep -q "serving the API" "$vlog" 2> /dev/null && [ -S "$sock" ] && return 0
    else
      "$vfioctl" --socket "$sock" list > /dev/null 2>&1 && return 0
    fi
    kill -0 "$vp" 2>/dev/null || break
    sleep 0.05
  done
  nok "vfiod ($*) did not start"
  return 1
}

# start_fake_vfiod DIR [VAR=VALUE...]: start_vfiod with vfiod-fake, its
# stand-in QEMU writing the pids it runs as to DIR/qemu.pids.
start_fake_vfiod() {
  local dir=$1 vfiod=$vfiod_fake
  shift
  start_vfiod "$dir" VFIOD_FAKE_QEMU_PIDS="$dir/qemu.pids" "$@"
}

# stop_vfiod LABEL: SIGTERM; vfiod must exit 0 within 10 s (else SIGKILL)
# and its log must hold no GLib CRITICAL (a programming error).
stop_vfiod() {
  local label=$1 i rc
  [ -n "$vp" ] || return 0
  kill -TERM "$vp" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$vp" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$vp" 2>/dev/null; then
    nok "$label: vfiod (pid $vp) still running 10 s after SIGTERM; SIGKILL"
    kill -9 "$vp"
  fi
  wait "$vp"
  rc=$?
  vp=''
  [ "$rc" = 0 ] && ok "$label: vfiod exits 0 on SIGTERM" || nok "$label: vfiod exit status $rc on SIGTERM"
  ! grep -q 'CRITICAL' "$vlog" && ok "$label: no GLib CRITICAL in vfiod's log" ||
    nok "$label: vfiod's log has: $(grep 'CRITICAL' "$vlog" | head -3 | tr '\n' ' ')"
}

ctl() { "$vfioctl" --socket "$sock" "$@"; }

# QEMU processes of this test: any qemu-system process in this test's
# network namespace (vfiod's children inherit it), and any process anywhere
# whose command line names one of the given sandbox ids. Read from /proc
# by one python3 whose own command line holds neither.
our_qemu_pids() {
  python3 - "$own_netns" "$@" <<'PY'
import os, sys
netns, ids = sys.argv[1], [("vfiod.sandbox=" + i).encode() for i in sys.argv[2:]]
me = os.getpid()
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == me:
        continue
    try:
        exe = os.path.basename(os.readlink(f"/proc/{p}/exe"))
        ns = os.readlink(f"/proc/{p}/ns/net")
        argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    if (ns == netns and exe.startswith("qemu-system")) or any(i in a.split() for a in argv for i in ids):
        print(p)
PY
}

taps() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^vfd' | sort | tr '\n' ' ' | sed 's/ $//'; }
table() { nft list table inet vfiod 2>/dev/null; }

# journal_counts DIR: "<sandboxes> <devices>" in DIR/state/journal.json.
journal_counts() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(len(j["sandboxes"]), len(j["devices"]))' \
    "$1/state/journal.json" 2>&1
}

fd_count() { ls "/proc/$1/fd" | wc -l; }
# fds of PID that are not sockets (files, /dev/net/tun, eventfds, pidfds,
# memfds...), and a listing of them by target.
fd_other() { ls -l "/proc/$1/fd" | tail -n +2 | grep -vc ' socket:\['; }
fd_other_list() { ls -l "/proc/$1/fd" | tail -n +2 | grep -v ' socket:\[' | awk '{print $NF}' | sort | uniq -c | tr -s ' ' | tr '\n' ';'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# expect_clean DIR LABEL [SANDBOX_ID...]: nothing of any sandbox is left:
# no QEMU (in this namespace, or anywhere naming the ids), no vfd* link, no
# inet vfiod table, nothing in the journal, an empty sandboxes/ dir, and
# `sandbox list` empty.
expect_clean() {
  local dir=$1 label=$2 left
  shift 2
  left=$(our_qemu_pids "$@" | tr '\n' ' ' | sed 's/ $//')
  [ -z "$left" ] && ok "$label: no QEMU process left" ||
    nok "$label: QEMU left: $left: $(for p in $left; do tr '\0' ' ' < /proc/$p/cmdline | cut -c1-200; echo; done)"
  [ -z "$(taps)" ] && ok "$label: no vfd* link left" || nok "$label: links left: $(taps)"
  [ -z "$(table)" ] && ok "$label: no inet vfiod table" || nok "$label: table left: $(table | head -20 | tr '\n' ' ')"
  [ "$(journal_counts "$dir")" = "0 0" ] && ok "$label: journal has no sandbox and no device" ||
    nok "$label: journal (sandboxes devices): $(journal_counts "$dir")"
  left=$(ls -A "$dir/run/sandboxes" 2>&1)
  [ -z "$left" ] && ok "$label: runtime sandboxes/ is empty" || nok "$label: sandboxes/ holds: $left"
  left=$(ctl sandbox list --json 2>&1)
  [ "$(echo "$left" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>&1)" = 0 ] &&
    ok "$label: sandbox list is empty" || nok "$label: sandbox list: $left"
}

# run_checks COMMAND...: runs a checker that prints `ok - `/`not ok - `
# lines (and `# ` notes) itself; counts them.
run_checks() {
  local out
  out=$("$@" 2>&1)
  echo "$out"
  pass=$((pass + $(grep -c '^ok - ' <<< "$out")))
  fail=$((fail + $(grep -c '^not ok - ' <<< "$out")))
  grep -q '^\(not \)\?ok - ' <<< "$out" || nok "checker $1 printed no result"
}

# ms_between START_MS END_MS
ms_between() { echo $(($2 - $1)); }

# icmp_ping ADDR [TIMEOUT_S]: one ICMP echo (raw socket, python3: no
# dependency on iputils-ping); succeeds on a matching reply.
icmp_ping() {
  python3 - "$1" "${2:-5}" << 'PY'
import os, socket, struct, sys, time
addr, timeout = sys.argv[1], float(sys.argv[2])
ident, seq = os.getpid() & 0xFFFF, 1
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
payload = b"vfiod-itest"
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (addr, 0))
end = time.monotonic() + timeout
while (left := end - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        break
    ihl = (data[0] & 0x0F) * 4
    typ, code, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
    if src[0] == addr and typ == 0 and rid == ident and rseq == seq:
        sys.exit(0)
sys.exit(1)
PY
}
