#!/bin/bash
# integration suite: structured log messages (issue 16, item 5). vfiod
# (tests/crash/vfiod-fake on a tree made by fake-tree, the stand-in QEMU)
# runs as systemd runs a service: stderr connected to journald's stdout
# socket (and named by $JOURNAL_STREAM), and journald's socket
# (/run/systemd/journal/socket, on a tmpfs in a mount namespace of the
# daemon's own) is a listener of this test that decodes journald's native
# protocol. Checked: a bind, a release, a sandbox create and delete each
# send their message with PRIORITY and the fields
# VFIOD_BDF (one per function), VFIOD_OWNER and VFIOD_SANDBOX that
# `journalctl VFIOD_BDF=...` filters on.
# Usage: structured-logs.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init structured-logs "$@"
use_fake_vfiod

d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group="

# journald's native protocol: FIELD=value lines, or FIELD\n<le64 size><value>\n
cat > "$work/journald.py" << 'PY'
import json, os, socket, struct, sys, threading
rundir, out, log = sys.argv[1], sys.argv[2], sys.argv[3]

def stream():  # the service's stderr: after journald's header, text lines
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(rundir + "/stdout")
    ls.listen(4)
    while True:
        c, _ = ls.accept()
        def copy(c=c):
            with open(log, "ab") as f:
                while (b := c.recv(65536)):
                    f.write(b)
                    f.flush()
        threading.Thread(target=copy, daemon=True).start()

threading.Thread(target=stream, daemon=True).start()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(rundir + "/socket")
with open(out, "a") as f:
    while True:
        data = s.recv(1 << 20)
        entry, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            line = data[i:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                i = nl + 1
            else:
                k = line
                (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                v = data[nl + 9:nl + 9 + n]
                i = nl + 9 + n + 1
            entry.setdefault(k.decode(), []).append(v.decode("utf-8", "replace"))
        f.write(json.dumps(entry) + "\n")
        f.flush()
PY
# The daemon's wrapper: a mount namespace with journald's socket directory
# on a tmpfs, the listener in it (its stdout socket copies the service's
# stderr into vfiod's log), then vfiod-fake (exec: same pid) with stderr
# connected to /run/systemd/journal/stdout, as systemd connects a service's.
# GLib sends structured messages to journald when stderr is such a socket
# (and, since GLib 2.78, when $JOURNAL_STREAM names it).
cat > "$work/connect-stderr.py" << 'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/systemd/journal/stdout")
s.sendall(b"vfiod\n\n5\n0\n0\n0\n0\n")  # identifier, unit, priority, flags
os.dup2(s.fileno(), 2)
st = os.fstat(2)
os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
os.execv(sys.argv[1], sys.argv[1:])
PY
cat > "$work/as-service.sh" << 'SH'
#!/bin/bash
# as-service.sh ARGS...: vfiod-fake ($SVC_EXE) as systemd would start it
exec unshare --mount --propagation private bash -c '
  mount -t tmpfs tmpfs /run/systemd || exit 1
  mkdir -p /run/systemd/journal
  python3 "$SVC_WORK/journald.py" /run/systemd/journal "$SVC_WORK/journal.jsonl" "$SVC_LOG" 2>> "$SVC_WORK/journald.err" &
  echo $! > "$SVC_WORK/journald.pid"
  for _ in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.05; done
  exec python3 "$SVC_WORK/connect-stderr.py" "$SVC_EXE" "$@"' as-service "$@"
SH
chmod 0755 "$work/as-service.sh"
itest_extra_cleanup=stop_listener
stop_listener() { [ -f "$work/journald.pid" ] && kill "$(cat "$work/journald.pid")" 2> /dev/null; }

vfiod_real=$vfiod
vfiod=$work/as-service.sh
start_vfiod "$d" VFIOD_FAKE_QEMU_PIDS="$d/qemu.pids" SVC_WORK="$work" SVC_EXE="$vfiod_fake" SVC_LOG="$d/vfiod.log" || exit 1
vfiod=$vfiod_real
journal=$work/journal.jsonl

# entry MESSAGE-REGEX: prints the first entry whose MESSAGE matches, as JSON
entry() {
  python3 - "$journal" "$1" << 'PY'
import json, re, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if any(re.search(sys.argv[2], m) for m in e.get("MESSAGE", [])):
        print(json.dumps({k: v for k, v in e.items() if k in ("MESSAGE", "PRIORITY") or k.startswith("VFIOD_")}))
        break
PY
}
# expect LABEL MESSAGE-REGEX FIELD=VALUE...: the entry has each field with
# that value (a field may repeat: VFIOD_BDF once per function).
expect() {
  local label=$1 re=$2 e
  shift 2
  for _ in $(seq 50); do e=$(entry "$re"); [ -n "$e" ] && break; sleep 0.1; done
  if [ -z "$e" ]; then nok "$label: no journal entry matches /$re/"; return; fi
  if python3 - "$e" "$@" << 'PY'
import json, sys
e = json.loads(sys.argv[1])
for fv in sys.argv[2:]:
    k, v = fv.split("=", 1)
    if v not in e.get(k, []):
        sys.exit(f"{k}={v} missing")
PY
  then ok "$label: $e"; else nok "$label: $e lacks one of: $*"; fi
}

out=$(ctl bind 0000:01:00.0 2>&1) || nok "bind: $out"
members=$(ctl list --json | python3 -c 'import json,sys
g = [d for d in json.load(sys.stdin) if d["bdf"] == "0000:01:00.0"][0]["iommu_group"]
print(" ".join(sorted("VFIOD_BDF=" + d["bdf"] for d in json.load(open(sys.argv[1])) if d["iommu_group"] == g)))' <(ctl list --json))
expect "bind" "^bound IOMMU group" PRIORITY=5 VFIOD_OWNER=vfioctl $members
out=$(ctl release 0000:01:00.0 2>&1) || nok "release: $out"
expect "release" "^released 0000:01:00.0" PRIORITY=5 $members

ctl sandbox create --gpus 1 --json > "$work/c.json" 2> "$work/c.err" || nok "create: $(cat "$work/c.err")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/c.json" 2> /dev/null)
devs=$(python3 -c 'import json,sys; print(" ".join("VFIOD_BDF=" + b for b in json.load(open(sys.argv[1]))["devices"]))' "$work/c.json" 2> /dev/null)
[ -n "$id" ] && [ -n "$devs" ] && ok "create --gpus 1: $id with ${devs//VFIOD_BDF=/}" || nok "create: no id/devices: $(cat "$work/c.json")"
expect "create" "^sandbox $id: started QEMU" PRIORITY=5 "VFIOD_SANDBOX=$id" "VFIOD_OWNER=$id" $devs
ctl sandbox delete "$id" > "$work/del.out" 2>&1 || nok "delete: $(cat "$work/del.out")"
expect "delete: stopping" "^sandbox $id: stopping" "VFIOD_SANDBOX=$id"
expect "delete: devices released" "^sandbox $id: devices released" "VFIOD_SANDBOX=$id" $devs
expect "delete: deleted" "^sandbox $id: deleted" "VFIOD_SANDBOX=$id"
n=$(wc -l < "$journal")
[ "$n" -ge 6 ] && ! grep -q 'bound IOMMU group' "$vlog" && ok "$n entries reached journald's socket, none of them as text on stderr ($(grep -c 'bound IOMMU group' "$vlog") copies)" ||
  nok "only $n entries reached the journal socket"
stop_vfiod "end"
itest_finish
