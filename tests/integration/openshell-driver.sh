#!/bin/bash
# integration suite: vfiod-openshell-driver (issue 15, item 10), OpenShell's
# compute-driver contract over gRPC on a Unix socket, served from vfiod.
# vfiod-fake on the fake-tree (GPU groups 12 and 13), a stand-in QEMU that
# prints guest-init's console lines; the driver on a socket in the work
# dir; a small gRPC client (Debian's /usr/bin/python3, the driver's
# generated protobuf module):
#  - the socket: mode 0660, a regular file or a live socket at the path is
#    refused (exit 1, left alone); a peer uid not allowed is refused at
#    accept (SO_PEERCRED), the same uid with --allowed-uid is served; with
#    --allowed-group the socket gets the group and a member is served;
#  - GetCapabilities, GetGatewayListenerRequirements, Ensure/DeleteWorkspace;
#  - ValidateSandboxCreate: a good spec; bad CPU, memory, relative command,
#    env without a command, an image without --image-dir: the gRPC code
#    and message;
#    nothing created;
#  - WatchSandboxes (started first) sees the create's stages, a Ready
#    snapshot, the stop's, the start's and the delete's stages (snapshots
#    Stopping not deleting, Stopped + Suspended, Deleting deleting) and the
#    deletion;
#  - CreateSandbox (CPU-only: cpu 1500m -> 2 vCPUs, 200Mi), GetSandbox by id
#    and by name, ListSandboxes; the same Create again: the same vfiod
#    sandbox, no second QEMU; the same id with another spec: ALREADY_EXISTS;
#  - StopSandbox (vfiod's: stopped, kept, QEMU gone; Ready False Stopped +
#    Suspended True; idempotent), the same Create while stopped,
#    StartSandbox (a new QEMU, Ready again; idempotent);
#  - a workload with env, a command and a sandbox token: the stand-in QEMU
#    finds them in vfiod's fw_cfg payload (the token a 0600 file, its
#    sha256), the workload's exit status in GetSandbox; Stop of it succeeds,
#    Start runs it again;
#  - gpu.count 1: the sandbox gets a GPU group of the fake tree;
#  - DeleteSandbox (deleted, then not), nothing left (no QEMU, no sandbox);
#    the driver exits 0 on SIGTERM and removes its socket and private dir;
#  - images: bad --overlay-dir/--overlay-size refused (exit 2); Validate
#    makes no overlay disk, an image that is a symbolic link is refused;
#    Create: the image read-only, --overlay-dir/<id>.ext4 made (0600, the
#    size, ext4) as the overlay, both as fds of QEMU; idempotent; Delete
#    removes the overlay; without --overlay-dir a tmpfs overlay;
# then the real vfiod, QEMU (TCG) and the pinned guest kernel with a
# busybox image: a workload counting its runs in /state, StopSandbox and
# StartSandbox over gRPC: the second run finds the first's count (RUN 2);
# a repeated Create is idempotent; DeleteSandbox removes the overlay disk.
# Usage: openshell-driver.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init openshell-driver "$@"
use_fake_vfiod
driver=$build/openshell-driver/vfiod-openshell-driver
[ -x "$driver" ] || { nok "$driver missing (build it)"; exit 1; }
py=/usr/bin/python3
for m in grpc google.protobuf gi; do
  "$py" -c "import $m" 2> /dev/null || { nok "$py cannot import $m (scripts/dev installs it)"; exit 1; }
done

d=$work/f
write_fake_conf "$d" "$work/vmlinuz" "$work/initrd" "allowed_group="
# The stand-in QEMU: its pid, then guest-init's lines on the console fd.
# The workload's payload (the fw_cfg file vfiod hands it) read by
# payload.py: cmd /exit3 "exits" 3 when its environment has GREETING=hello
# and OPENSHELL_SANDBOX_TOKEN_FILE, and the token file is there with mode
# 0600 and the sha256 in token.sha256 (else 4, 5, 6); then power off.
# Anything else: ready, and stays up.
cp "$src/tests/integration/fake-qemu-args.sh" "$d/"
cat > "$d/fake-qemu" << 'EOF'
#!/bin/bash
# pidfile, fd, payload, cmd; the console as fd 9 (fake-qemu-args.sh)
. "$(dirname "$0")/fake-qemu-args.sh"
here=$(dirname "$0")
if [ -n "$payload" ] && [ "$(/usr/bin/python3 "$here/payload.py" cmd < "$payload")" = /exit3 ]; then
  /usr/bin/python3 "$here/payload.py" check "$(cat "$here/token.sha256")" < "$payload"
  status=$?
  printf 'boot\nVFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
  sleep 0.5
  printf 'VFIOD_EXIT {"status":%d,"signal":0,"reason":"exit","runtime_ms":500}\nVFIOD_POWEROFF {}\n' "$status" >&9
  sleep 0.5; exit 0
fi
printf 'VFIOD_READY {"v":1,"kernel":"fake","modules":[]}\n' >&9
exec -a "fake-qemu $*" sleep 100000
EOF
# payload.py cmd|check SHA256 < PAYLOAD: guest-init/payload.h's format.
cat > "$d/payload.py" << 'EOF'
import hashlib, sys
data = sys.stdin.buffer.read()
assert data.startswith(b"VFIOD-PAYLOAD 1\n")
pos, cmd, env, files = 16, None, {}, {}
while True:
    end = data.index(b"\n", pos)
    head = data[pos:end].split()
    pos = end + 1
    if head[0] == b"end":
        break
    if head[0] == b"file":
        mode, plen, dlen = int(head[1], 8), int(head[2]), int(head[3])
        path = data[pos:pos + plen].decode()
        pos += plen + 1
        files[path] = (mode, data[pos:pos + dlen])
        pos += dlen + 1
        continue
    n = int(head[1])
    value = data[pos:pos + n].decode()
    pos += n + 1
    if head[0] == b"cmd":
        cmd = value
    elif head[0] == b"env":
        k, _, v = value.partition("=")
        env[k] = v
if sys.argv[1] == "cmd":
    print(cmd or "")
    sys.exit(0)
tok = "/etc/openshell/auth/sandbox.jwt"
if env.get("GREETING") != "hello" or env.get("OPENSHELL_SANDBOX_TOKEN_FILE") != tok:
    sys.exit(4)
if tok not in files or files[tok][0] != 0o600:
    sys.exit(5)
sys.exit(3 if hashlib.sha256(files[tok][1]).hexdigest() == sys.argv[2] else 6)
EOF
token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl
printf %s "$token" | sha256sum | cut -d' ' -f1 > "$d/token.sha256"
chmod 0755 "$d/fake-qemu"
start_fake_vfiod "$d" || exit 1
qemus() { grep -c . "$d/qemu.pids" 2> /dev/null || echo 0; }
nsandboxes() { ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# ---- the gRPC client -------------------------------------------------------------
# client.py SOCKET RPC [ARG] (openshell-driver/test_client.py, copied where
# uid 65534 can read it): one call; prints {"ok": true, "resp": {...}} or
# {"ok": false, "code": "NOT_FOUND", "message": ...}. ARG: a DriverSandbox
# as JSON (validate, create) or an id (get, delete, stop, start), name=N
# (get by name). RPC watch: every event as a JSON line, flushed, until
# killed.
cp "$src/openshell-driver/test_client.py" "$work/client.py" && chmod 0644 "$work/client.py"
client() { PYTHONPATH=$build/openshell-driver timeout 150 "$py" "$work/client.py" "$dsock" "$@" 2>&1; }
# jget JSON PATH: a field (dots; a number indexes a list), "" when absent.
jget() { python3 -c 'import json,sys
j = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    if isinstance(j, list) and k.isdigit() and int(k) < len(j): j = j[int(k)]
    elif isinstance(j, dict): j = j.get(k)
    else: j = None
print("" if j is None else (json.dumps(j) if isinstance(j, (dict, list)) else j))' "$1" "$2" 2> /dev/null; }

# start_driver LOG [ARGS...]: the driver on $dsock; waits until it serves.
# Sets dp.
start_driver() {
  local log=$1
  shift
  logs+=("$log")
  "$driver" --socket "$dsock" --vfiod-socket "$sock" "$@" >> "$log" 2>&1 &
  dp=$!
  for _ in $(seq 200); do
    grep -q 'serving openshell.compute.v1' "$log" 2> /dev/null && [ -S "$dsock" ] && return 0
    kill -0 "$dp" 2> /dev/null || break
    sleep 0.05
  done
  nok "the driver ($*) did not start: $(tail -3 "$log")"
  return 1
}
# stop_driver LABEL: SIGTERM; exit 0 within 10 s, its socket and private dir gone.
stop_driver() {
  local rc
  kill -TERM "$dp" 2> /dev/null
  for _ in $(seq 100); do kill -0 "$dp" 2> /dev/null || break; sleep 0.1; done
  kill -0 "$dp" 2> /dev/null && { nok "$1: the driver still runs 10 s after SIGTERM"; kill -9 "$dp"; }
  wait "$dp"
  rc=$?
  [ "$rc" = 0 ] && [ ! -e "$dsock" ] && [ -z "$(ls -A "$(dirname "$dsock")")" ] &&
    ok "$1: the driver exits 0 on SIGTERM, its socket and private dir removed" ||
    nok "$1: driver exit $rc; left in $(dirname "$dsock"): $(ls -A "$(dirname "$dsock")")"
}

mkdir -p "$work/drv" && chmod 0755 "$work/drv"
dsock=$work/drv/driver.sock
dlog=$work/driver.log

# ---- the socket path -------------------------------------------------------------
echo keep > "$dsock"
"$driver" --socket "$dsock" --vfiod-socket "$sock" > "$work/e1" 2>&1
rc=$?
[ "$rc" = 1 ] && [ "$(cat "$dsock")" = keep ] && grep -q 'exists and is not a socket' "$work/e1" &&
  ok "a regular file at --socket: exit 1 ($(grep -o 'ERROR.*' "$work/e1")), the file left alone" ||
  nok "regular file at --socket: exit $rc: $(cat "$work/e1")"
rm -f "$dsock"
"$driver" --vfiod-socket "$sock" > "$work/e2" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q 'required: --socket' "$work/e2" && ok "no --socket: usage error, exit 2" ||
  nok "no --socket: exit $rc: $(cat "$work/e2")"

"$driver" --socket "$work/no-such-dir/driver.sock" --vfiod-socket "$sock" > "$work/e4" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q "ERROR: cannot make the private directory of the gRPC server in $work/no-such-dir: No such file or directory" "$work/e4" &&
  ! grep -q Traceback "$work/e4" && ok "--socket in a directory that does not exist: exit 1, $(grep -o 'ERROR.*' "$work/e4" | cut -c1-60)..." ||
  nok "socket in a missing dir: exit $rc: $(cat "$work/e4")"

start_driver "$dlog" || exit 1
m=$(stat -c '%a %U' "$dsock")
[ "$m" = "660 root" ] && ok "the driver's socket: mode 0660, owner root" || nok "socket mode/owner: $m"
"$driver" --socket "$dsock" --vfiod-socket "$sock" > "$work/e3" 2>&1
rc=$?
[ "$rc" = 1 ] && grep -q 'in use' "$work/e3" && [ -S "$dsock" ] && kill -0 "$dp" &&
  ok "a second driver on the live socket: exit 1 ($(grep -o 'ERROR.*' "$work/e3")), the first one unharmed" ||
  nok "second driver on a live socket: exit $rc: $(cat "$work/e3")"

# ---- capabilities and the trivial RPCs ------------------------------------------
r=$(client caps)
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$r" resp.driverName)" = vfiod ] &&
  [[ $(jget "$r" resp.driverVersion) == "0.1.0 (vfiod "* ]] && [ "$(jget "$r" resp.gatewayManagesLifecycle)" = False ] &&
  ok "GetCapabilities: driver vfiod, version '$(jget "$r" resp.driverVersion)', gateway_manages_lifecycle false" ||
  nok "GetCapabilities: $r"
r=$(client listeners)
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$r" resp.requirements)" = "[]" ] &&
  ok "GetGatewayListenerRequirements: none without --gateway-bind-address" || nok "listeners: $r"
r1=$(client ensure-ws team-a) r2=$(client delete-ws team-a)
[ "$(jget "$r1" ok)" = True ] && [ "$(jget "$r2" ok)" = True ] &&
  ok "EnsureWorkspace and DeleteWorkspace: succeed (nothing kept per workspace)" || nok "workspaces: $r1 $r2"

# ---- ValidateSandboxCreate ----------------------------------------------------------
id1=0b5c1a2e-7d6f-4c41-9a55-2f1e6c3b8d90
sb1='{"id":"'$id1'","name":"agent-one","workspace":"team-a","spec":{"template":{"labels":{"app":"web"},"resources":{"cpuLimit":"1500m","memoryRequest":"200Mi"}}}}'
r=$(client validate "$sb1")
[ "$(jget "$r" ok)" = True ] && [ "$(nsandboxes)" = 0 ] && [ "$(qemus)" = 0 ] &&
  ok "ValidateSandboxCreate of a CPU-only spec (cpu 1500m, memory 200Mi): valid, nothing created" ||
  nok "validate good: $r; sandboxes $(nsandboxes), QEMUs $(qemus)"
bad=0
while IFS='|' read -r want words spec; do
  r=$(client validate "$spec")
  if [ "$(jget "$r" ok)" = False ] && [ "$(jget "$r" code)" = "$want" ] && [[ $(jget "$r" message) == *"$words"* ]]; then
    bad=$((bad + 1))
  else
    note "validate $spec: $r (want $want, '$words')"
  fi
done << EOF
INVALID_ARGUMENT|resources.cpu_limit 'two'|{"id":"$id1","spec":{"template":{"resources":{"cpuLimit":"two"}}}}
INVALID_ARGUMENT|resources.memory_request '4GB'|{"id":"$id1","spec":{"template":{"resources":{"memoryRequest":"4GB"}}}}
INVALID_ARGUMENT|must be an absolute path|{"id":"$id1","spec":{"command":["agent"]}}
INVALID_ARGUMENT|environment without a command|{"id":"$id1","spec":{"environment":{"A":"b"}}}
FAILED_PRECONDITION|does not pull images|{"id":"$id1","spec":{"template":{"image":"ghcr.io/nvidia/sandbox:1"}}}
INVALID_ARGUMENT|sandbox.id 'sb-1'|{"id":"sb-1"}
INVALID_ARGUMENT|vfiod: InvalidArgument: env: the name "BAD NAME"|{"id":"$id1","spec":{"environment":{"BAD NAME":"x"},"command":["/bin/agent"]}}
INVALID_ARGUMENT|vfiod: InvalidArgument|{"id":"$id1","spec":{"template":{"resources":{"memoryLimit":"64Ti"}}}}
EOF
[ "$bad" = 8 ] && [ "$(nsandboxes)" = 0 ] && [ "$(qemus)" = 0 ] &&
  ok "ValidateSandboxCreate refuses bad CPU and memory quantities, a relative command, env without a command, an image without --image-dir, a bad id, vfiod's own refusals (env name, memory bound): the code and message of each, nothing created" ||
  nok "validate bad: $bad of 8 refused as expected; sandboxes $(nsandboxes), QEMUs $(qemus)"

# ---- WatchSandboxes, CreateSandbox, GetSandbox, ListSandboxes -------------------
PYTHONPATH=$build/openshell-driver "$py" "$work/client.py" "$dsock" watch > "$work/watch.out" 2> "$work/watch.err" &
wp=$!
for _ in $(seq 100); do grep -q watching "$work/watch.out" 2> /dev/null && break; sleep 0.05; done
sleep 0.3
r=$(client create "$sb1")
v=$(ctl sandbox show "$id1" --json 2>&1)
vid=$(jget "$v" id)
[ "$(jget "$r" ok)" = True ] && [[ $vid == sb-* ]] && [ "$(jget "$v" vcpus)" = 2 ] && [ "$(jget "$v" memory_mib)" = 200 ] &&
  [ "$(jget "$v" labels.app)" = web ] && [ "$(jget "$v" labels.openshell/name)" = agent-one ] &&
  [ "$(jget "$v" labels.openshell/workspace)" = team-a ] && [ "$(jget "$v" devices)" = "[]" ] &&
  ok "CreateSandbox (CPU-only): vfiod sandbox $vid named $id1, 2 vCPUs (1500m), 200 MiB, its labels and the gateway's name/workspace as labels" ||
  nok "create: $r; vfiod: $v"
for _ in $(seq 100); do
  g=$(client get "$id1")
  [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = True ] && break
  sleep 0.1
done
[ "$(jget "$g" resp.sandbox.id)" = "$id1" ] && [ "$(jget "$g" resp.sandbox.name)" = agent-one ] &&
  [ "$(jget "$g" resp.sandbox.workspace)" = team-a ] && [ "$(jget "$g" resp.sandbox.status.instanceId)" = "$vid" ] &&
  [ "$(jget "$g" resp.sandbox.status.conditions.0.type)" = Ready ] && [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = True ] &&
  ok "GetSandbox by id: id, name, workspace, instance_id $vid, Ready True once guest-init reported ready" ||
  nok "get by id: $g"
g2=$(client get name=agent-one)
[ "$(jget "$g2" resp.sandbox.id)" = "$id1" ] && ok "GetSandbox by name agent-one: $id1" || nok "get by name: $g2"
g3=$(client get 11111111-2222-3333-4444-555555555555)
[ "$(jget "$g3" code)" = NOT_FOUND ] && ok "GetSandbox of an unknown id: NOT_FOUND ($(jget "$g3" message))" || nok "get unknown: $g3"
# a sandbox made by someone else (vfioctl): not the driver's
other=$(ctl sandbox create --name not-the-drivers --memory 64 --json 2>&1)
l=$(client list)
[ "$(jget "$l" ok)" = True ] && [ "$(jget "$l" resp.sandboxes.0.id)" = "$id1" ] && [ -z "$(jget "$l" resp.sandboxes.1)" ] &&
  [ "$(jget "$(client get not-the-drivers)" code)" = NOT_FOUND ] &&
  ok "ListSandboxes: only the driver's sandbox ($id1), not the one vfioctl made; GetSandbox of that one: NOT_FOUND" ||
  nok "list: $l; vfioctl's: $other"
ctl sandbox delete not-the-drivers > /dev/null 2>&1

# ---- idempotent create, another spec ------------------------------------------------
n0=$(qemus)
r=$(client create "$sb1")
[ "$(jget "$r" ok)" = True ] && [ "$(qemus)" = "$n0" ] && [ "$(nsandboxes)" = 1 ] &&
  [ "$(jget "$(ctl sandbox show "$id1" --json)" id)" = "$vid" ] &&
  ok "the same CreateSandbox again: succeeds, the same vfiod sandbox $vid, no second QEMU" ||
  nok "idempotent create: $r; QEMUs $n0 -> $(qemus), sandboxes $(nsandboxes)"
r=$(client create "${sb1/200Mi/300Mi}")
[ "$(jget "$r" code)" = ALREADY_EXISTS ] && [[ $(jget "$r" message) == *"$vid"* ]] && [ "$(qemus)" = "$n0" ] &&
  ok "the same id with another spec (300Mi): ALREADY_EXISTS ($(jget "$r" message | cut -c1-100))" ||
  nok "same id, other spec: $r"

# ---- Stop/Start -----------------------------------------------------------------------
# vfiod's StopSandbox/StartSandbox: the stand-in QEMU is stopped (devices,
# disks and name kept) and launched again.
p1=$(tail -1 "$d/qemu.pids")
r=$(client stop "$id1")
v=$(ctl sandbox show "$id1" --json 2>&1)
g=$(client get "$id1")
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$v" state)" = stopped ] && [ "$(jget "$v" id)" = "$vid" ] && ! kill -0 "$p1" 2> /dev/null &&
  [ "$(jget "$g" resp.sandbox.status.conditions.0.reason)" = Stopped ] && [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = False ] &&
  [ "$(jget "$g" resp.sandbox.status.conditions.1.type)" = Suspended ] && [ "$(jget "$g" resp.sandbox.status.conditions.1.status)" = True ] &&
  [ "$(jget "$g" resp.sandbox.status.deleting)" = False ] &&
  ok "StopSandbox of the running sandbox: vfiod's $vid stopped (kept, its QEMU $p1 gone); GetSandbox: Ready False Stopped + Suspended True (the gateway's Stopped), not deleting" ||
  nok "stop: $r; vfiod: $v; get: $g"
r=$(client stop "$id1")
[ "$(jget "$r" ok)" = True ] && ok "StopSandbox of the stopped sandbox: succeeds (idempotent)" || nok "stop again: $r"
r=$(client create "$sb1")
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$(ctl sandbox show "$id1" --json)" state)" = stopped ] && [ "$(nsandboxes)" = 1 ] &&
  ok "the same CreateSandbox while it is stopped: succeeds, the same stopped sandbox" || nok "create while stopped: $r"
n1=$(qemus)
r=$(client start "$id1")
for _ in $(seq 100); do
  g=$(client get "$id1")
  [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = True ] && break
  sleep 0.1
done
p2=$(tail -1 "$d/qemu.pids")
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$(ctl sandbox show "$id1" --json)" id)" = "$vid" ] && [ "$(qemus)" = $((n1 + 1)) ] &&
  [ "$p2" != "$p1" ] && kill -0 "$p2" && [ "$(jget "$g" resp.sandbox.status.conditions.0.reason)" = Ready ] &&
  ok "StartSandbox: the same vfiod sandbox $vid runs again (a new QEMU, $p1 -> $p2), Ready True once guest-init reported ready" ||
  nok "start: $r; get: $g; QEMUs $n1 -> $(qemus)"
r=$(client start "$id1")
[ "$(jget "$r" ok)" = True ] && [ "$(qemus)" = $((n1 + 1)) ] && ok "StartSandbox of the running sandbox: succeeds, no other QEMU" ||
  nok "start running: $r"

# ---- DeleteSandbox; the watch saw it all ---------------------------------------------
r=$(client delete "$id1")
r2=$(client delete "$id1")
[ "$(jget "$r" resp.deleted)" = True ] && [ "$(jget "$r2" resp.deleted)" = False ] && [ "$(nsandboxes)" = 0 ] &&
  ok "DeleteSandbox: deleted true, then false (nothing left to delete)" || nok "delete: $r; again: $r2"
for _ in $(seq 100); do grep -q '"deleted"' "$work/watch.out" && break; sleep 0.1; done
# The stages come from vfiod's signals, in order. The snapshots are the
# driver's GetSandbox right after each signal: how far a quick stop or
# delete has gone by then varies, so a snapshot of the "stopping" state
# (Stopping, not deleting; Deleting, deleting) may or may not be seen;
# what must hold: no snapshot says deleting before the sandbox is ready
# again after its start (a stop is never reported as a delete; the
# delete's own state change may come just before its "stopping" event),
# and the Starting, Ready and Stopped + Suspended snapshots are there.
w=$(python3 - "$work/watch.out" "$id1" << 'EOF'
import json, sys
stages, ready, deleted, other, snaps, early = [], False, 0, [], set(), []
started_again = False  # the start's "ready" passed: the delete may follow
for line in open(sys.argv[1]):
    e = json.loads(line)
    if "platformEvent" in e:
        p = e["platformEvent"]
        if p["sandboxId"] != sys.argv[2]:
            other.append(p["sandboxId"])
            continue
        ev = p["event"]
        stages.append(ev["reason"] + ("/" + ev["metadata"]["vfiod_reason"] if ev["reason"] == "stopping" else ""))
        started_again = stages.count("ready") == 2
    elif "sandbox" in e:
        s = e["sandbox"]["sandbox"]
        if s["id"] != sys.argv[2]:
            other.append(s["id"])
            continue
        c = s["status"]["conditions"]
        ready = ready or any(x.get("type") == "Ready" and x.get("status") == "True" for x in c)
        snap = "+".join([c[0]["reason"]] + [x["type"] for x in c[1:] if x.get("status") == "True"]) + \
            ":" + str(s["status"].get("deleting", False))
        snaps.add(snap)
        if s["status"].get("deleting", False) and not started_again:
            early.append(snap)
    elif "deleted" in e:
        deleted += e["deleted"]["sandboxId"] == sys.argv[2]
need = {"Starting:False", "Ready:False", "Stopped+Suspended:False"}
print(" ".join(stages), "|", ready, deleted, "|", "snapshots ok" if need <= snaps else "missing " + " ".join(sorted(need - snaps)),
      "|", "deleting before the delete: " + " ".join(early) if early else "", "|", ",".join(sorted(set(other))),
      "|", " ".join(sorted(snaps)))
EOF
)
want="create-started vm-started ready stopping/stop stopped create-started vm-started ready stopping/delete removed"
want+=" | True 1 | snapshots ok |  | "
[ "${w% | *}" = "$want" ] &&
  ok "WatchSandboxes: the stages create-started vm-started ready stopping (stop) stopped, create-started vm-started ready (the start), stopping (delete) removed; snapshots ${w##* | } (Stopping and Deleting when the watch caught the sandbox stopping); none deleting before the delete; one deletion, nothing of vfioctl's sandbox" ||
  nok "watch: $w: $(cut -c1-300 "$work/watch.out")"
kill "$wp" 2> /dev/null; wait "$wp" 2> /dev/null
for _ in $(seq 50); do grep -q 'watch stream closed (0 open)' "$dlog" && break; sleep 0.1; done
grep -q 'watch stream closed (0 open)' "$dlog" && ok "the watching client killed: the driver closes its stream (0 open)" ||
  nok "watch stream not cleaned up: $(grep -i watch "$dlog" | tail -3)"

# ---- a workload with env and a command: its exit status ----------------------------
id2=6a1c7f3e-0d2b-4e8f-b1a4-93c5d7e2f6a0
r=$(client create '{"id":"'$id2'","name":"exits","spec":{"environment":{"GREETING":"hello"},"command":["/exit3","--fast"],"sandboxToken":"'$token'"}}')
for _ in $(seq 100); do
  g=$(client get "$id2")
  [ "$(jget "$g" resp.sandbox.status.conditions.0.reason)" = WorkloadExited ] && break
  sleep 0.1
done
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = False ] &&
  [ "$(jget "$g" resp.sandbox.status.conditions.0.message)" = "the workload exited with status 3" ] &&
  ok "a workload given env GREETING=hello, command /exit3 and a sandbox token: the payload has the env, OPENSHELL_SANDBOX_TOKEN_FILE and the token file (0600, its sha256); Ready False, WorkloadExited, 'the workload exited with status 3'" ||
  nok "workload exit: create $r; get $g"
r2=$(client stop "$id2")
n1=$(qemus)
r=$(client start "$id2")
for _ in $(seq 100); do
  [ "$(qemus)" = $((n1 + 1)) ] && [ "$(jget "$(ctl sandbox show "$id2" --json)" state)" = exited ] && break
  sleep 0.1
done
g=$(client get "$id2")
[ "$(jget "$r2" ok)" = True ] && [ "$(jget "$r" ok)" = True ] && [ "$(qemus)" = $((n1 + 1)) ] &&
  [ "$(jget "$g" resp.sandbox.status.conditions.0.message)" = "the workload exited with status 3" ] &&
  ok "StopSandbox of the exited sandbox: succeeds (nothing runs); StartSandbox of it: the workload runs again (a new QEMU, the same payload) and exits 3 again" ||
  nok "stop/start exited: stop $r2; start $r; get $g; QEMUs $n1 -> $(qemus)"
[ "$(jget "$(client delete "$id2")" resp.deleted)" = True ] && ok "DeleteSandbox of the exited sandbox" || nok "delete exited"

# ---- gpu.count 1 ------------------------------------------------------------------------
id3=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
r=$(client create '{"id":"'$id3'","spec":{"resourceRequirements":{"gpu":{"count":1}}}}')
v=$(ctl sandbox show "$id3" --json 2>&1)
[ "$(jget "$r" ok)" = True ] && [ -n "$(jget "$v" devices.0)" ] &&
  ok "CreateSandbox with gpu.count 1: vfiod gave it $(jget "$v" devices)" || nok "gpu create: $r; vfiod: $v"
[ "$(jget "$(client delete name=)" code)" = INVALID_ARGUMENT ] && [ "$(jget "$(client delete "$id3")" resp.deleted)" = True ] &&
  ok "DeleteSandbox with neither id nor name: INVALID_ARGUMENT; of the GPU sandbox: deleted" || nok "gpu delete"

# ---- vfiod goes away and comes back -------------------------------------------------
PYTHONPATH=$build/openshell-driver "$py" "$work/client.py" "$dsock" watch > "$work/watch2.out" 2> "$work/watch2.err" &
wp=$!
for _ in $(seq 100); do grep -q watching "$work/watch2.out" 2> /dev/null && break; sleep 0.05; done
sleep 0.3
stop_vfiod "vfiod stopped under the driver"
for _ in $(seq 50); do grep -q '"end"' "$work/watch2.out" && break; sleep 0.1; done
r=$(client caps)
e=$(grep '"end"' "$work/watch2.out")
[ "$(jget "$e" end)" = UNAVAILABLE ] && [ "$(jget "$r" code)" = UNAVAILABLE ] && [[ $(jget "$r" message) == "vfiod unreachable"* ]] &&
  ok "vfiod stopped: the open watch ends UNAVAILABLE ($(jget "$e" message)); GetCapabilities: UNAVAILABLE ($(jget "$r" message | cut -c1-80))" ||
  nok "vfiod stopped: watch '$e'; caps $r"
wait "$wp" 2> /dev/null
start_fake_vfiod "$d" || exit 1
r=$(client caps)
[ "$(jget "$r" ok)" = True ] && kill -0 "$dp" && ok "vfiod started again: the same driver connects again and answers GetCapabilities" ||
  nok "after vfiod's restart: $r"
PYTHONPATH=$build/openshell-driver "$py" "$work/client.py" "$dsock" watch > "$work/watch3.out" 2> "$work/watch3.err" &
wp=$!
for _ in $(seq 100); do grep -q watching "$work/watch3.out" 2> /dev/null && break; sleep 0.05; done
id4=3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a
r=$(client create '{"id":"'$id4'"}')
r2=$(client delete "$id4")
for _ in $(seq 100); do grep -q '"deleted"' "$work/watch3.out" && break; sleep 0.1; done
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$r2" resp.deleted)" = True ] && grep -q '"reason": "create-started"' "$work/watch3.out" &&
  grep -q '"deleted": {"sandboxId": "'$id4'"}' "$work/watch3.out" &&
  ok "after the reconnection a new watch gets vfiod's signals again: create-started ... deleted of $id4" ||
  nok "watch after the reconnection: create $r, delete $r2: $(cut -c1-200 "$work/watch3.out")"
kill "$wp" 2> /dev/null; wait "$wp" 2> /dev/null

# ---- peers: SO_PEERCRED ---------------------------------------------------------------
chmod 0666 "$dsock"  # the file's mode no longer keeps anyone out: only the driver's check does
r=$(PYTHONPATH=$build/openshell-driver setpriv --reuid=65534 --regid=65534 --clear-groups -- timeout 30 "$py" "$work/client.py" "$dsock" caps 2>&1)
[ "$(jget "$r" ok)" = False ] && [ "$(jget "$r" code)" = UNAVAILABLE ] && grep -q 'refused a connection from pid [0-9]* uid 65534' "$dlog" &&
  ok "uid 65534 (not allowed) on a 0666 socket: refused at accept ($(grep -o 'refused a connection.*' "$dlog" | head -1))" ||
  nok "unauthorised peer: $r; log: $(grep refused "$dlog")"
stop_driver "driver"

start_driver "$work/driver2.log" --allowed-uid 65534 --socket-mode 0666 || exit 1
r=$(PYTHONPATH=$build/openshell-driver setpriv --reuid=65534 --regid=65534 --clear-groups -- timeout 30 "$py" "$work/client.py" "$dsock" caps 2>&1)
[ "$(jget "$r" ok)" = True ] && [ "$(stat -c %a "$dsock")" = 666 ] &&
  ok "the same uid with --allowed-uid 65534 (--socket-mode 0666): served" || nok "allowed uid: $r"
stop_driver "driver with --allowed-uid"

make_member vfiod-itest-osd vfiod-itest-osd1
start_driver "$work/driver3.log" --allowed-group "$group" || exit 1
m=$(stat -c '%a %G' "$dsock")
r=$(PYTHONPATH=$build/openshell-driver as "$member" timeout 30 "$py" "$work/client.py" "$dsock" caps 2>&1)
chmod 0666 "$dsock"
r2=$(PYTHONPATH=$build/openshell-driver setpriv --reuid=65534 --regid=65534 --clear-groups -- timeout 30 "$py" "$work/client.py" "$dsock" caps 2>&1)
[ "$m" = "660 $group" ] && [ "$(jget "$r" ok)" = True ] && [ "$(jget "$r2" code)" = UNAVAILABLE ] &&
  grep -q 'refused a connection from pid [0-9]* uid 65534' "$work/driver3.log" &&
  ok "--allowed-group $group: the socket 0660 with that group, its member $member served, uid 65534 refused at accept" ||
  nok "--allowed-group: socket '$m'; member: $r; nobody: $r2"
stop_driver "driver with --allowed-group"

# ---- images: a read-only root and a per-sandbox overlay (the stand-in's argv and fds) ----
# The prepared image (any regular file: the stand-in boots nothing) is the
# root disk of every sandbox of that image, read-only; the writable layer
# is --overlay-dir/<id>.ext4 (made by the driver, mkfs.ext4) or, without
# --overlay-dir, a tmpfs.
bad=0
for args in "--overlay-dir $work/no-such-dir" "--overlay-dir $work/drv/../drv" "--overlay-size 4GB" "--overlay-size 1Mi"; do
  # shellcheck disable=SC2086  # (the words are the options)
  "$driver" --socket "$dsock" --vfiod-socket "$sock" $args > "$work/e5" 2>&1
  rc=$?
  if [ "$rc" = 2 ] && grep -q -- "${args%% *}" "$work/e5" && [ ! -e "$dsock" ]; then bad=$((bad + 1)); else note "$args: exit $rc: $(cat "$work/e5")"; fi
done
[ "$bad" = 4 ] && ok "--overlay-dir that is no directory or has a '..', --overlay-size 4GB or below 16Mi: usage error (exit 2), nothing served" ||
  nok "bad overlay options: $bad of 4 refused"
mkdir -p "$work/images" "$work/overlays"
truncate -s 1M "$work/images/lab_root_1.img"
ln -s "$work/images/lab_root_1.img" "$work/images/lab_link_1.img"
start_driver "$work/driver4.log" --image-dir "$work/images" --overlay-dir "$work/overlays" --overlay-size 32Mi || exit 1
id6=5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9
sb6='{"id":"'$id6'","spec":{"template":{"image":"lab/root:1"}}}'
r=$(client validate "$sb6")
r2=$(client validate '{"id":"'$id6'","spec":{"template":{"image":"lab/link:1"}}}')
[ "$(jget "$r" ok)" = True ] && [ -z "$(ls -A "$work/overlays")" ] && [ "$(nsandboxes)" = 0 ] &&
  [ "$(jget "$r2" code)" = FAILED_PRECONDITION ] && [[ $(jget "$r2" message) == *"not a regular file"* ]] &&
  ok "ValidateSandboxCreate of an image sandbox: valid, no overlay disk made, nothing created; an image that is a symbolic link: FAILED_PRECONDITION ($(jget "$r2" message | cut -c1-90)...)" ||
  nok "validate image: $r; link: $r2; overlays: $(ls -A "$work/overlays")"
r=$(client create "$sb6")
ovl=$work/overlays/$id6.ext4
qp=$(tail -1 "$d/qemu.pids")
argv=$(tr '\0' '\n' < "/proc/$qp/cmdline" 2> /dev/null | tr ' ' '\n')
fds=$(for f in /proc/"$qp"/fd/*; do readlink "$f"; done 2> /dev/null)
[ "$(jget "$r" ok)" = True ] && [ "$(stat -c '%a %U %s' "$ovl" 2>&1)" = "600 root 33554432" ] && [ "$(blkid -o value -s TYPE "$ovl")" = ext4 ] &&
  grep -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-root,format=raw,readonly=on$' <<< "$argv" &&
  grep -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-overlay,format=raw$' <<< "$argv" &&
  grep -q '^vfiod.overlay=virtio:vfiod-overlay$' <<< "$argv" && grep -qx "$ovl" <<< "$fds" && grep -qx "$work/images/lab_root_1.img" <<< "$fds" &&
  ! grep -q -e "$ovl" -e lab_root_1 <<< "$argv" &&
  ok "CreateSandbox with image lab/root:1: its prepared disk read-only (readonly=on), $id6.ext4 made (0600, 32Mi, ext4) as the overlay (vfiod.overlay=virtio:vfiod-overlay); QEMU holds both files as fds, no path on its command line" ||
  nok "image create: $r; overlay '$(stat -c '%a %U %s' "$ovl" 2>&1)'; argv: $(grep -E 'fdset|vfiod.overlay' <<< "$argv" | tr '\n' ' '); fds: $(tr '\n' ' ' <<< "$fds")"
ino=$(stat -c %i "$ovl")
r=$(client create "$sb6")
[ "$(jget "$r" ok)" = True ] && [ "$(stat -c %i "$ovl")" = "$ino" ] && [ "$(nsandboxes)" = 1 ] && [ "$(tail -1 "$d/qemu.pids")" = "$qp" ] &&
  ok "the same CreateSandbox again: idempotent (the same options: vfiod returns its sandbox), the overlay disk not made again" ||
  nok "image create again: $r"
r=$(client delete "$id6")
[ "$(jget "$r" resp.deleted)" = True ] && [ ! -e "$ovl" ] && [ -z "$(ls -A "$work/overlays")" ] &&
  ok "DeleteSandbox: deleted, then its overlay disk removed (the overlay dir empty)" || nok "image delete: $r; overlays: $(ls -A "$work/overlays")"
stop_driver "driver with --overlay-dir"
start_driver "$work/driver5.log" --image-dir "$work/images" || exit 1
r=$(client create "$sb6")
qp=$(tail -1 "$d/qemu.pids")
argv=$(tr '\0' '\n' < "/proc/$qp/cmdline" 2> /dev/null | tr ' ' '\n')
[ "$(jget "$r" ok)" = True ] && grep -q '^file=/dev/fdset/[0-9]*,if=none,id=vfiod-root,format=raw,readonly=on$' <<< "$argv" &&
  grep -q '^vfiod.overlay=tmpfs$' <<< "$argv" && ! grep -q 'id=vfiod-overlay' <<< "$argv" && [ -z "$(ls -A "$work/overlays")" ] &&
  ok "without --overlay-dir: the image read-only with a tmpfs overlay (vfiod.overlay=tmpfs), no overlay disk" ||
  nok "tmpfs overlay: $r; argv: $(grep -E 'fdset|vfiod.overlay' <<< "$argv" | tr '\n' ' ')"
[ "$(jget "$(client delete "$id6")" resp.deleted)" = True ] && ok "DeleteSandbox of the tmpfs-overlay sandbox" || nok "delete tmpfs sandbox"
stop_driver "driver with --image-dir only"

expect_clean "$d" "end"
stop_vfiod "end"

# ==== the real vfiod, QEMU (TCG) and the pinned guest kernel: Stop/Start keeps the overlay ====
# A busybox root disk prepared as image busybox:itest; the workload counts
# its runs in /state (the overlay disk); StopSandbox and StartSandbox over
# gRPC: the second run finds the first run's count.
for tool in busybox mkfs.ext4 debugfs; do
  command -v "$tool" > /dev/null || { nok "$tool missing (busybox-static, e2fsprogs)"; itest_finish; exit 1; }
done
build_root_image || { nok "guest image built"; itest_finish; exit 1; }
busybox_disk || { nok "busybox root disk"; itest_finish; exit 1; }
rd=$work/r
write_conf "$rd"
sed -i "s|^\[qemu\]$|[qemu]\nkernel=$kernel\ninitrd=$image|" "$rd/vfiod.conf"
mkdir -p "$work/rimages" "$work/roverlays"
mv "$disk" "$work/rimages/busybox_itest.img"
root_sum=$(sha256sum < "$work/rimages/busybox_itest.img" | cut -c1-64)
start_vfiod "$rd" || { itest_finish; exit 1; }
start_driver "$work/driver6.log" --image-dir "$work/rimages" --overlay-dir "$work/roverlays" --overlay-size 64Mi || exit 1
console_has() { # console_has ID REGEX: waits up to 180 s for a console line
  for _ in $(seq 900); do
    ctl sandbox console "$1" --bytes 200000 2> /dev/null | tr -d '\r' | grep -qE "$2" && return 0
    sleep 0.2
  done
  return 1
}
id8=7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f
# shellcheck disable=SC2016  # (expanded by the guest's shell)
script='n=$(busybox cat /state 2> /dev/null || echo 0); n=$((n + 1)); echo $n > /state && busybox sync; echo "RUN $n"; busybox sleep 600'
sb8=$(python3 -c 'import json, sys; print(json.dumps({"id": sys.argv[1], "name": "counter", "spec": {"command": ["/bin/busybox", "sh", "-c", sys.argv[2]], "template": {"image": "busybox:itest", "resources": {"memoryLimit": "256Mi"}}}}))' "$id8" "$script")
rovl=$work/roverlays/$id8.ext4
r1=$(client validate "$sb8")
r2=$(client create "$sb8")
v=$(ctl sandbox show "$id8" --json 2>&1)
rid=$(jget "$v" id)
[ "$(jget "$r1" ok)" = True ] && [ "$(jget "$r2" ok)" = True ] && [[ $rid == sb-* ]] && [ "$(stat -c '%a %s' "$rovl" 2>&1)" = "600 67108864" ] &&
  ok "real vfiod: ValidateSandboxCreate then CreateSandbox of a CPU-only sandbox of image busybox:itest: $rid, overlay disk $id8.ext4 (0600, 64Mi)" ||
  nok "real create: validate $r1; create $r2; vfiod $v; overlay $(stat -c '%a %s' "$rovl" 2>&1)"
console_has "$id8" '^RUN 1$' && ok "real: the workload's first run: RUN 1 (it wrote /state in the overlay)" ||
  nok "real: first run: $(ctl sandbox console "$id8" --bytes 3000 2>&1 | tail -5)"
for _ in $(seq 100); do
  g=$(client get "$id8")
  [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = True ] && break
  sleep 0.2
done
[ "$(jget "$g" resp.sandbox.status.conditions.0.reason)" = Ready ] && ok "real: GetSandbox: Ready True" || nok "real: get: $g"
pid1=$(our_qemu_pids "$rid" | head -1)
ino=$(stat -c %i "$rovl")
r=$(client create "$sb8")
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$(ctl sandbox show "$id8" --json)" id)" = "$rid" ] && [ "$(our_qemu_pids "$rid" | head -1)" = "$pid1" ] &&
  [ "$(stat -c %i "$rovl")" = "$ino" ] && [ "$(ctl sandbox list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] &&
  ok "real: the same CreateSandbox again: idempotent (the same sandbox $rid, the same QEMU $pid1, the overlay not made again)" ||
  nok "real: create again: $r"
r=$(client stop "$id8")
v=$(ctl sandbox show "$id8" --json 2>&1)
g=$(client get "$id8")
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$v" state)" = stopped ] && [ -z "$(our_qemu_pids "$rid")" ] && [ -z "$(taps)" ] &&
  [ "$(jget "$g" resp.sandbox.status.conditions.1.type)" = Suspended ] && [ "$(jget "$g" resp.sandbox.status.conditions.1.status)" = True ] &&
  [ "$(stat -c %i "$rovl")" = "$ino" ] &&
  ok "real: StopSandbox: vfiod's state stopped, QEMU and TAP gone, the overlay disk kept; GetSandbox: Stopped, Suspended True" ||
  nok "real: stop: $r; vfiod: $v; get: $g; QEMU '$(our_qemu_pids "$rid")', TAPs '$(taps)'"
st=$(debugfs -R "cat /upper/state" "$rovl" 2> /dev/null)
[ "$st" = 1 ] && ok "real: the stopped sandbox's overlay disk holds upper/state = 1" || nok "real: overlay upper/state: '$st'"
r=$(client start "$id8")
v=$(ctl sandbox show "$id8" --json 2>&1)
[ "$(jget "$r" ok)" = True ] && [ "$(jget "$v" id)" = "$rid" ] && ok "real: StartSandbox: the same vfiod sandbox $rid, state $(jget "$v" state)" ||
  nok "real: start: $r; vfiod: $v"
console_has "$id8" '^RUN 2$' && ok "real: Stop/Start keeps the overlay's contents: the second run finds /state from the first: RUN 2" ||
  nok "real: second run: $(ctl sandbox console "$id8" --bytes 3000 2>&1 | tail -5)"
for _ in $(seq 100); do
  g=$(client get "$id8")
  [ "$(jget "$g" resp.sandbox.status.conditions.0.status)" = True ] && break
  sleep 0.2
done
pid2=$(our_qemu_pids "$rid" | head -1)
[ "$(jget "$g" resp.sandbox.status.conditions.0.reason)" = Ready ] && [ -n "$pid2" ] && [ "$pid2" != "$pid1" ] &&
  ok "real: Ready True again, a new QEMU ($pid1 -> $pid2)" || nok "real: after start: $g; QEMU '$pid1' -> '$pid2'"
r=$(client delete "$id8")
[ "$(jget "$r" resp.deleted)" = True ] && [ ! -e "$rovl" ] && [ -z "$(ls -A "$work/roverlays")" ] &&
  ok "real: DeleteSandbox: deleted, the overlay disk removed" || nok "real: delete: $r; overlays: $(ls -A "$work/roverlays")"
[ "$(sha256sum < "$work/rimages/busybox_itest.img" | cut -c1-64)" = "$root_sum" ] && ok "real: the image is unchanged (read-only root)" ||
  nok "real: the image changed"
expect_clean "$rd" "real: end" "$rid"
stop_driver "driver on the real vfiod"
stop_vfiod "real"
itest_finish
