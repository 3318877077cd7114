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
#    snapshot, the delete's stages and the deletion;
#  - CreateSandbox (CPU-only: cpu 1500m -> 2 vCPUs, 200Mi), GetSandbox by id
#    and by name, ListSandboxes; the same Create again: the same vfiod
#    sandbox, no second QEMU; the same id with another spec: ALREADY_EXISTS;
#  - a workload with env, a command and a sandbox token: the stand-in QEMU
#    finds them in vfiod's fw_cfg payload (the token a 0600 file, its
#    sha256), the workload's exit status in GetSandbox;
#  - gpu.count 1: the sandbox gets a GPU group of the fake tree;
#  - StopSandbox (UNIMPLEMENTED) and StartSandbox (FAILED_PRECONDITION on
#    an exited sandbox) say what vfiod lacks;
#  - DeleteSandbox (deleted, then not), nothing left (no QEMU, no sandbox);
#    the driver exits 0 on SIGTERM and removes its socket and private dir.
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
# client.py SOCKET RPC [ARG]: one call; prints {"ok": true, "resp": {...}} or
# {"ok": false, "code": "NOT_FOUND", "message": ...}. ARG: a DriverSandbox
# as JSON (validate, create) or an id (get, delete, stop, start), name=N
# (get by name). RPC watch: every event as a JSON line, flushed, until
# killed.
cat > "$work/client.py" << 'EOF'
import json
import sys

import grpc
from google.protobuf import json_format

import compute_driver_pb2 as pb

sock, rpc = sys.argv[1], sys.argv[2]
arg = sys.argv[3] if len(sys.argv) > 3 else ""
chan = grpc.insecure_channel("unix:" + sock)
S = "/openshell.compute.v1.ComputeDriver/"


def unary(name, req, resp):
    return chan.unary_unary(S + name, request_serializer=req.SerializeToString, response_deserializer=resp.FromString)


def ident(cls):
    return cls(sandbox_name=arg[5:]) if arg.startswith("name=") else cls(sandbox_id=arg)


def sandbox():
    return json_format.ParseDict(json.loads(arg), pb.DriverSandbox())


calls = {
    "caps": lambda: unary("GetCapabilities", pb.GetCapabilitiesRequest, pb.GetCapabilitiesResponse)(
        pb.GetCapabilitiesRequest(), timeout=20),
    "listeners": lambda: unary("GetGatewayListenerRequirements", pb.GetGatewayListenerRequirementsRequest,
                               pb.GetGatewayListenerRequirementsResponse)(
        pb.GetGatewayListenerRequirementsRequest(), timeout=20),
    "ensure-ws": lambda: unary("EnsureWorkspace", pb.EnsureWorkspaceRequest, pb.EnsureWorkspaceResponse)(
        pb.EnsureWorkspaceRequest(workspace=arg), timeout=20),
    "delete-ws": lambda: unary("DeleteWorkspace", pb.DeleteWorkspaceRequest, pb.DeleteWorkspaceResponse)(
        pb.DeleteWorkspaceRequest(workspace=arg), timeout=20),
    "validate": lambda: unary("ValidateSandboxCreate", pb.ValidateSandboxCreateRequest,
                              pb.ValidateSandboxCreateResponse)(
        pb.ValidateSandboxCreateRequest(sandbox=sandbox()), timeout=60),
    "create": lambda: unary("CreateSandbox", pb.CreateSandboxRequest, pb.CreateSandboxResponse)(
        pb.CreateSandboxRequest(sandbox=sandbox()), timeout=60),
    "get": lambda: unary("GetSandbox", pb.GetSandboxRequest, pb.GetSandboxResponse)(
        ident(pb.GetSandboxRequest), timeout=20),
    "list": lambda: unary("ListSandboxes", pb.ListSandboxesRequest, pb.ListSandboxesResponse)(
        pb.ListSandboxesRequest(), timeout=20),
    "delete": lambda: unary("DeleteSandbox", pb.DeleteSandboxRequest, pb.DeleteSandboxResponse)(
        ident(pb.DeleteSandboxRequest), timeout=60),
    "stop": lambda: unary("StopSandbox", pb.StopSandboxRequest, pb.StopSandboxResponse)(
        ident(pb.StopSandboxRequest), timeout=20),
    "start": lambda: unary("StartSandbox", pb.StartSandboxRequest, pb.StartSandboxResponse)(
        ident(pb.StartSandboxRequest), timeout=20),
}
if rpc == "watch":
    stream = chan.unary_stream(S + "WatchSandboxes", request_serializer=pb.WatchSandboxesRequest.SerializeToString,
                               response_deserializer=pb.WatchSandboxesEvent.FromString)(pb.WatchSandboxesRequest())
    print(json.dumps({"watching": True}), flush=True)
    try:
        for ev in stream:
            print(json.dumps(json_format.MessageToDict(ev)), flush=True)
    except grpc.RpcError as e:
        print(json.dumps({"end": e.code().name, "message": e.details()}), flush=True)
    sys.exit(0)
try:
    resp = calls[rpc]()
    print(json.dumps({"ok": True, "resp": json_format.MessageToDict(resp, including_default_value_fields=True)}))
except grpc.RpcError as e:
    print(json.dumps({"ok": False, "code": e.code().name, "message": e.details()}))
EOF
chmod 0644 "$work/client.py"
client() { PYTHONPATH=$build/openshell-driver timeout 90 "$py" "$work/client.py" "$dsock" "$@" 2>&1; }
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

# ---- Stop/Start ---------------------------------------------------------------------
r=$(client stop "$id1")
[ "$(jget "$r" code)" = UNIMPLEMENTED ] && [[ $(jget "$r" message) == *"no Stop in its API"* ]] &&
  [ "$(jget "$(ctl sandbox show "$id1" --json)" state)" = running ] &&
  ok "StopSandbox of a running sandbox: UNIMPLEMENTED ($(jget "$r" message)); it still runs" || nok "stop: $r"
r=$(client start "$id1")
[ "$(jget "$r" ok)" = True ] && ok "StartSandbox of a running sandbox: succeeds (already started)" || nok "start running: $r"

# ---- DeleteSandbox; the watch saw it all ---------------------------------------------
r=$(client delete "$id1")
r2=$(client delete "$id1")
[ "$(jget "$r" resp.deleted)" = True ] && [ "$(jget "$r2" resp.deleted)" = False ] && [ "$(nsandboxes)" = 0 ] &&
  ok "DeleteSandbox: deleted true, then false (nothing left to delete)" || nok "delete: $r; again: $r2"
for _ in $(seq 100); do grep -q '"deleted"' "$work/watch.out" && break; sleep 0.1; done
w=$(python3 - "$work/watch.out" "$id1" << 'EOF'
import json, sys
stages, ready, deleted, other = [], False, 0, []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if "platformEvent" in e:
        p = e["platformEvent"]
        (stages.append(p["event"]["reason"]) if p["sandboxId"] == sys.argv[2] else other.append(p["sandboxId"]))
    elif "sandbox" in e:
        s = e["sandbox"]["sandbox"]
        if s["id"] != sys.argv[2]:
            other.append(s["id"])
        elif any(c.get("status") == "True" for c in s["status"]["conditions"]):
            ready = True
    elif "deleted" in e:
        deleted += e["deleted"]["sandboxId"] == sys.argv[2]
print(" ".join(stages), "|", ready, deleted, "|", ",".join(sorted(set(other))))
EOF
)
[ "$w" = "create-started vm-started ready stopping removed | True 1 | " ] &&
  ok "WatchSandboxes: the stages create-started vm-started ready stopping removed, a Ready snapshot, one deletion, nothing of vfioctl's sandbox" ||
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
r=$(client start "$id2")
r2=$(client stop "$id2")
[ "$(jget "$r" code)" = FAILED_PRECONDITION ] && [[ $(jget "$r" message) == *"no Start in its API"* ]] && [ "$(jget "$r2" ok)" = True ] &&
  ok "StartSandbox of the exited sandbox: FAILED_PRECONDITION ($(jget "$r" message)); StopSandbox of it: succeeds (nothing runs)" ||
  nok "start/stop exited: $r $r2"
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

expect_clean "$d" "end"
stop_vfiod "end"
itest_finish
