#!/bin/bash
# BENCHMARK ONLY, inside the lab VM: bench/run's figure 7, started as
#   tests/lab/run-l1.sh bench/lab-gpu-sandbox.sh BUILD_DIR CACHE_DIR IMAGE ROUNDS
# A GPU-shaped sandbox: q35 with the lab's stand-in two-function IOMMU group
# (0000:01:00.0 e1000e + 0000:01:00.1 virtio-rng, tests/lab/README.md)
# passed through, a TAP-backed virtio-net NIC and a vhost-vsock device (when
# L1 has /dev/vhost-vsock), the guest-init image IMAGE (staged on the host by
# bench.py). Made to the same ready point (guest-init's VFIOD_READY) two ways,
# ROUNDS times each, interleaved (vfiod, raw, raw, vfiod, ...):
#   vfiod  vfioctl sandbox create --device A --wait --json (vfiod running,
#          [network] enabled, [qemu] user=root); its sandbox events
#          (vfioctl sandbox watch --json, all along) give the breakdown
#   raw    the same by hand, timed step by step in this shell:
#          bench/sysfs-bind.sh bind A B; the TAP as vfiod makes it
#          (ip tuntap ... vnet_hdr user UID, its three sysctls, ip addr with
#          the broadcast, link up); vfiod's nftables table, as vfiod had it
#          for one sandbox, loaded with nft -f (renamed); then vfiod's very
#          QEMU command line, read from /proc/<pid>/cmdline of vfiod's QEMU
#          in a warm-up create, with its fds replaced by paths (serial
#          fdset -> the file, /proc/self/fd/N kernel/initrd -> their files,
#          tap fd= -> ifname=,script=no,downscript=no, vhostfd= dropped:
#          QEMU opens /dev/vhost-vsock itself), spawned under ulimit -l
#          unlimited; ready = the VFIOD_READY line in the serial file
#          (tail -f, inotify, into grep -m1; the reader stamps the time)
# Output lines (on L1's console; bench.py parses them):
#   BENCH-LAB7-INFO key=value ...
#   BENCH-LAB7-ARGV <the raw QEMU command line, words joined by blanks>
#   BENCH-LAB7 round=R tool=vfiod ok=0|1 id=ID t0_us=T wall_ms=X spawn_ms=S ready_ms=Y uptime_ms=U init_ms=I channel=C
#   BENCH-LAB7-EVENT round=R {one SandboxEvent of that sandbox, JSON}
#   BENCH-LAB7 round=R tool=raw ok=0|1 bind_ms=B tap_ms=T nft_ms=N spawn_ms=S ready_ms=Y uptime_ms=U init_ms=I
#   BENCH-LAB7-ERROR text
# (vfiod: wall_ms = the client's wall time; spawn_ms = QEMU's start, from
# /proc/<pid>/stat, 10 ms ticks, after t0. raw: every *_ms counts from the
# round's start, cumulatively: bind done, TAP up, nft loaded, QEMU spawned,
# ready line read. uptime_ms and init_ms: the ready report's uptime_ms and
# timings_ms.init_start, the guest's clock.)
set -u
if [[ ${LAB_L1:-} != 1 ]]; then
  echo "${0##*/}: refusing to run outside the lab VM (tests/lab/run-l1.sh)" >&2
  exit 2
fi
[[ $# -ge 3 ]] || { echo "usage: ${0##*/} BUILD_DIR CACHE_DIR IMAGE [ROUNDS]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=$3
rounds=${4:-3}
# l1-lib.sh: A, B, VFIOD, VFIOCTL, KERNEL, calibrate, nap, alive, hexid,
# driver_of, json (it refuses to run outside L1 too)
# shellcheck source-path=SCRIPTDIR source=../tests/lab/l1-lib.sh
. "$here/../tests/lab/l1-lib.sh" "$1" "$2"

work=/tmp/bench-lab7
state=$work/state
runtime=/run/bench-lab7
sock=$runtime/vfiod.sock
conf=$work/vfiod.conf
vlog=$work/vfiod.log
raw=$work/raw
rtap=vfdraw7 # named like a vfiod TAP, so that vfiod's rules (iifname "vfd*") cover it
rtable=fig7raw
rc=0
vfiod_pid='' watch_pid='' qpid='' reader=''

err() { echo "BENCH-LAB7-ERROR $*"; rc=1; }
info() { echo "BENCH-LAB7-INFO $*"; }
us() { printf -v "$1" '%s' "${EPOCHREALTIME/[.,]/}"; } # us VAR: now, µs since the epoch (no fork)
state_of() { echo "$(driver_of "$A")/$(override_of "$A")/$(driver_of "$B")/$(override_of "$B")"; }

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
  [[ -z $qpid ]] || { kill -KILL "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null; }
  [[ -z $reader ]] || kill "$reader" 2>/dev/null
  [[ -z $watch_pid ]] || kill "$watch_pid" 2>/dev/null
  stop_vfiod || true
  ip link del "$rtap" 2>/dev/null
  nft delete table inet "$rtable" 2>/dev/null
  if [[ -n ${orig:-} && $(state_of) != "$orig" ]]; then
    "$here/sysfs-bind.sh" release "$A" "$B" >/dev/null 2>&1
  fi
  if [[ $rc -ne 0 && -s $vlog ]]; then
    echo "# vfiod log (last 40 lines):"
    tail -n 40 "$vlog" | sed 's/^/#   /'
  fi
}
trap cleanup EXIT

rm -rf "$work" "$runtime"
mkdir -p "$state" "$raw/qemu"
orig=$(state_of)
[[ $(driver_of "$A") != "(none)" && $(driver_of "$B") != "(none)" ]] || { err "stand-in devices not on host drivers: $orig"; exit 1; }
[[ -r $image && -r $KERNEL ]] || { err "missing guest kernel $KERNEL or image $image"; exit 1; }
calibrate
READY=$READY_TIMEOUT
have_vsock=no
[[ -c /dev/vhost-vsock ]] && have_vsock=yes
have_vhost_net=no
[[ -c /dev/vhost-net ]] && have_vhost_net=yes
info "kernel=$(uname -r) cpus=$(nproc) group=$(group_of "$A") A=$A:$(driver_of "$A") B=$B:$(driver_of "$B") vsock=$have_vsock vhost_net=$have_vhost_net qemu=$(qemu-system-x86_64 --version | head -n 1 | awk '{print $4}') load_factor=$LOAD_FACTOR l2_factor=$L2_FACTOR ready_limit_s=$READY"
echo "# $calib_msg"

# --- vfiod: this build, the stand-in pair, network on, QEMU as root --------------
cat >"$conf" <<EOF
[daemon]
state_dir=$state
runtime_dir=$runtime
allowed_group=
[devices]
ids=$(hexid "$A");$(hexid "$B")
classes=
allow_network=true
[qemu]
binary=qemu-system-x86_64
accel=tcg
user=root
stop_timeout=3
[network]
enabled=true
EOF
us t0
"$VFIOD" --config "$conf" </dev/null >"$vlog" 2>&1 &
vfiod_pid=$!
for _ in $(seq 300); do
  "$VFIOCTL" --socket "$sock" list >/dev/null 2>&1 && break
  alive "$vfiod_pid" || break
  nap 0.1
done
"$VFIOCTL" --socket "$sock" capabilities --json >"$work/caps.json" 2>&1 || { err "vfiod did not start: $(tail -5 "$vlog" | tr '\n' ' ')"; exit 1; }
us t1
info "vfiod_start_ms=$(((t1 - t0) / 1000)) host_vsock=$(json "$work/caps.json" "d['host'].get('vsock')") host_network=$(json "$work/caps.json" "d['host'].get('network')")"
# every sandbox event, all along (one JSON object a line, flushed)
"$VFIOCTL" --socket "$sock" sandbox watch --json </dev/null >"$work/events.jsonl" 2>"$work/watch.err" &
watch_pid=$!

vfiod_create() { # vfiod_create [--wait]: the create; out in $work/create.json, status in $vrc
  vrc=0
  "$VFIOCTL" --socket "$sock" sandbox create --device "$A" --kernel "$KERNEL" --initrd "$image" "$@" \
    --json >"$work/create.json" 2>"$work/create.err" || vrc=$?
}
vfiod_delete() { # vfiod_delete ID: delete, then the pair back on its drivers (up to 30 s)
  "$VFIOCTL" --socket "$sock" sandbox delete "$1" >"$work/delete.out" 2>&1 || err "delete $1: $(tr '\n' ' ' <"$work/delete.out")"
  local _
  for _ in $(seq 300); do [[ $(state_of) == "$orig" ]] && return 0; nap 0.1; done
  err "after deleting $1: $(state_of), want $orig"
}

# --- warm-up: vfiod's QEMU command line, TAP, addresses, nft table --------------
vfiod_create
if [[ $vrc -ne 0 ]]; then
  err "warm-up create: exit $vrc: $(tr '\n' ' ' <"$work/create.err")"
  exit 1
fi
wid=$(json "$work/create.json" "d['id']")
wpid=$(json "$work/create.json" "d['pid']")
wdir=$(json "$work/create.json" "d['dir']")
tap=$(json "$state/journal.json" "[s.get('tap') or '' for s in d['sandboxes'] if s['id'] == '$wid'][0]")
tr '\0' '\n' <"/proc/$wpid/cmdline" >"$work/vfiod-argv.txt"
# the payload and any other fd QEMU reads by /proc/self/fd/N: copied now
for f in /proc/"$wpid"/fd/*; do
  n=${f##*/}
  ((n >= 3)) || continue
  [[ $(readlink "$f") == /memfd:* ]] && cp "$f" "$raw/fd$n" 2>/dev/null
done
read -r haddr hbrd <<<"$(ip -o -4 addr show dev "$tap" | awk '{for (i = 1; i < NF; i++) { if ($i == "inet") a = $(i + 1); if ($i == "brd") b = $(i + 1) } print a, b}')"
towner=$(cat "/sys/class/net/$tap/owner" 2>/dev/null)
nft list table inet vfiod >"$work/vfiod.nft" 2>&1 || err "nft list table inet vfiod: $(head -c 300 "$work/vfiod.nft")"
sed -e "s/^table inet vfiod /table inet $rtable /" -e "s/\"$tap\"/\"$rtap\"/g" -e "s/\\b$tap\\b/$rtap/g" \
  "$work/vfiod.nft" >"$raw/raw.nft"
info "warmup_id=$wid tap=$tap addr=$haddr brd=$hbrd owner=$towner nft_lines=$(wc -l <"$work/vfiod.nft")"
# the raw command line: vfiod's, fds replaced by paths
python3 - "$work/vfiod-argv.txt" "$wdir" "$raw" "$KERNEL" "$image" "$rtap" >"$raw/argv" 2>"$work/argv.err" <<'EOF'
import os, re, sys
argv = open(sys.argv[1]).read().split("\n")[:-1]
sbdir, raw, kernel, initrd, rtap = sys.argv[2:]
out, fdsets, i = [], {}, 0
while i < len(argv):
    a = argv[i]
    if a == "-add-fd":                      # fd=N,set=S,opaque=WHAT
        kv = dict(x.split("=", 1) for x in argv[i + 1].split(","))
        fdsets[kv["set"]] = kv.get("opaque", "")
        i += 2
        continue
    out.append(a)
    i += 1
def fix(a, prev):
    if prev == "-kernel":
        return kernel
    if prev == "-initrd":
        return initrd
    for s, what in fdsets.items():
        if f"/dev/fdset/{s}" in a:
            if what != "serial-log":
                sys.exit(f"unsupported fd set {s} ({what}) in {a!r}")
            a = a.replace(f"/dev/fdset/{s}", os.path.join(raw, "serial.log"))
    if a.startswith("tap,"):                # -netdev tap,id=net0,fd=N[,vhost=on,vhostfd=M]
        kv = [x for x in a.split(",") if not x.startswith(("fd=", "vhostfd="))]
        a = ",".join(kv[:2] + [f"ifname={rtap}", "script=no", "downscript=no"] + kv[2:])
    elif "vhostfd=" in a:                   # vhost-vsock-pci,guest-cid=C,vhostfd=M
        a = ",".join(x for x in a.split(",") if not x.startswith("vhostfd="))
    def payload(m):
        p = os.path.join(raw, "fd" + m.group(1))
        if not os.path.exists(p):
            sys.exit(f"no copy of {m.group(0)} in {a!r}")
        return p
    a = re.sub(r"/proc/self/fd/(\d+)", payload, a)
    return a.replace(sbdir, raw)
res = [fix(a, out[k - 1] if k else "") for k, a in enumerate(out)]
sys.stdout.write("\0".join(res) + "\0")
EOF
[[ $? -eq 0 && -s $raw/argv ]] || { err "raw argv: $(tr '\n' ' ' <"$work/argv.err")"; exit 1; }
mapfile -d '' rargv <"$raw/argv"
echo "BENCH-LAB7-ARGV ${rargv[*]}"
vfiod_delete "$wid"
[[ -n $tap && -n $haddr && -n $hbrd && -s $raw/raw.nft ]] || { err "warm-up: no TAP/address/nft table (tap '$tap' addr '$haddr')"; exit 1; }

# --- the raw steps ---------------------------------------------------------------
raw_setup() { # bind, TAP, nft; sets t_bound t_tap t_nft (µs)
  "$here/sysfs-bind.sh" bind "$A" "$B" || err "raw: sysfs-bind.sh bind"
  us t_bound
  if ! { ip tuntap add dev "$rtap" mode tap vnet_hdr ${towner:+user "$towner"} &&
    echo 1 >"/proc/sys/net/ipv4/conf/$rtap/arp_ignore" &&
    echo 2 >"/proc/sys/net/ipv4/conf/$rtap/arp_announce" &&
    { [[ ! -d /proc/sys/net/ipv6/conf/$rtap ]] || echo 1 >"/proc/sys/net/ipv6/conf/$rtap/disable_ipv6"; } &&
    ip addr add "$haddr" broadcast "$hbrd" dev "$rtap" &&
    ip link set dev "$rtap" up; }; then
    err "raw: TAP $rtap"
  fi
  us t_tap
  nft -f "$raw/raw.nft" || err "raw: nft -f"
  us t_nft
}
raw_teardown() {
  "$here/sysfs-bind.sh" release "$A" "$B" >/dev/null || err "raw: sysfs-bind.sh release"
  ip link del "$rtap" || err "raw: ip link del $rtap"
  nft delete table inet "$rtable" || err "raw: nft delete table"
  [[ $(state_of) == "$orig" ]] || err "raw: after release $(state_of), want $orig"
}
# the raw ready line's way from its reader to this shell (opened read-write:
# no open() blocks)
mkfifo "$raw/ready.fifo"
exec {ready_fd}<>"$raw/ready.fifo"
# warm the tools' files (9p) once: the whole set-up and tear-down, no QEMU
raw_setup
raw_teardown

raw_round() {
  local r=$1 t0 t_bound t_tap t_nft t_spawn t_ready line ok=1 uptime='' init='' deadline
  rm -f "$raw/serial.log" "$raw/qemu/qmp.sock" "$raw/qemu/qemu.pid"
  while read -r -t 0.01 -u "$ready_fd" _; do :; done # (nothing stale)
  us t0
  raw_setup
  : >"$raw/serial.log"
  us t_spawn
  (ulimit -l unlimited && exec "${rargv[@]}") </dev/null >"$raw/qemu.log" 2>&1 &
  qpid=$!
  # The reader stamps the time it sees the line (tail -f: inotify) and
  # hands it over through the FIFO, on which this shell blocks meanwhile
  # (no busy polling: L1's vCPUs are the nested guest's; every 5 s it looks
  # whether QEMU still runs: a dead QEMU stays a zombie for tail --pid).
  { tail -n +1 -f --pid="$qpid" "$raw/serial.log" 2>/dev/null | grep -a --line-buffered -m 1 -o 'VFIOD_READY {.*}' |
    { if IFS= read -r line; then printf '%s %s\n' "${EPOCHREALTIME/[.,]/}" "$line"; else echo "0 -"; fi \
      >"$raw/ready.fifo"; }; } &
  reader=$!
  t_ready=0 line=''
  deadline=$((SECONDS + READY))
  until read -r -t 5 -u "$ready_fd" t_ready line; do
    if ((SECONDS >= deadline)) || ! alive "$qpid"; then break; fi
  done
  if [[ ${t_ready:-0} != 0 ]]; then
    [[ $line =~ \"uptime_ms\":([0-9]+) ]] && uptime=${BASH_REMATCH[1]}
    [[ $line =~ \"init_start\":([0-9]+) ]] && init=${BASH_REMATCH[1]}
  else
    ok=0
    err "raw round $r: no VFIOD_READY within $READY s (QEMU $(alive "$qpid" && echo running || echo gone)); serial tail: $(tail -c 400 "$raw/serial.log" | tr -d '\r' | tr '\n' ' '); qemu.log: $(tail -c 300 "$raw/qemu.log" | tr '\n' ' ')"
    t_ready=$t_spawn
  fi
  kill -KILL "$qpid" 2>/dev/null
  wait "$qpid" 2>/dev/null
  qpid=''
  kill "$reader" 2>/dev/null
  wait "$reader" 2>/dev/null
  reader=''
  raw_teardown
  echo "BENCH-LAB7 round=$r tool=raw ok=$ok bind_ms=$(((t_bound - t0) / 1000)).$(printf '%03d' $(((t_bound - t0) % 1000))) tap_ms=$(((t_tap - t0) / 1000)).$(printf '%03d' $(((t_tap - t0) % 1000))) nft_ms=$(((t_nft - t0) / 1000)).$(printf '%03d' $(((t_nft - t0) % 1000))) spawn_ms=$(((t_spawn - t0) / 1000)).$(printf '%03d' $(((t_spawn - t0) % 1000))) ready_ms=$(((t_ready - t0) / 1000)) uptime_ms=${uptime:-0} init_ms=${init:-0}"
}

vfiod_round() {
  local r=$1 t0 t1 id pid ok=1 st f now up ticks spawn_ms=0 ready_ms=0 uptime=0 init=0 channel=''
  us t0
  vfiod_create --wait --timeout "$READY"
  us t1
  id=$(json "$work/create.json" "d.get('id') or ''" 2>/dev/null)
  if [[ $vrc -eq 0 && -n $id ]]; then
    pid=$(json "$work/create.json" "d['pid']")
    # QEMU's start: field 22 of /proc/PID/stat (ticks after boot), against
    # /proc/uptime read now
    if read -r st 2>/dev/null <"/proc/$pid/stat" && read -r up _ </proc/uptime; then
      us now
      st=${st##*) }
      read -r -a f <<<"$st"
      ticks=$(getconf CLK_TCK)
      up=${up/./}                              # uptime in 10 ms units
      spawn_ms=$(((now - t0) / 1000 - (up * 10 - f[19] * 1000 / ticks)))
    fi
    ready_ms=$(json "$work/create.json" "d['ready_ms']")
    rep="(lambda r: (json.loads(r) if isinstance(r, str) else r) or {})(d.get('ready_report'))"
    uptime=$(json "$work/create.json" "$rep.get('uptime_ms', 0)")
    channel=$(json "$work/create.json" "$rep.get('report', '')")
    init=$(json "$work/create.json" "$rep.get('timings_ms', {}).get('init_start', 0)")
  else
    ok=0
    err "vfiod round $r: create exit $vrc: $(tr '\n' ' ' <"$work/create.err" | tail -c 400)"
    id=$(json "$work/create.json" "d.get('id') or ''" 2>/dev/null)
  fi
  echo "BENCH-LAB7 round=$r tool=vfiod ok=$ok id=${id:-none} t0_us=$t0 wall_ms=$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000))) spawn_ms=$spawn_ms ready_ms=$ready_ms uptime_ms=$uptime init_ms=$init channel=${channel:-none}"
  if [[ -n $id ]]; then
    nap 1 # (the watcher's copy of the last event)
    grep -a -F "\"$id\"" "$work/events.jsonl" | sed "s/^/BENCH-LAB7-EVENT round=$r /"
    vfiod_delete "$id"
  elif [[ $(state_of) != "$orig" ]]; then
    # a failed create rolls back: the devices must be back anyway
    err "vfiod round $r: after the failed create $(state_of), want $orig"
  fi
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(vfiod raw); else order=(raw vfiod); fi
  for t in "${order[@]}"; do
    echo "# round $r: $t ($(date +%T))"
    case $t in
      vfiod) vfiod_round "$r" ;;
      raw) raw_round "$r" ;;
    esac
  done
done
exit $rc
