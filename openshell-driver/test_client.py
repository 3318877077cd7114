#!/usr/bin/python3
# A small gRPC client of vfiod-openshell-driver for the tests (TEST ONLY,
# not installed): tests/integration/openshell-driver.sh and the lab's
# tests/lab/checks-l1-guest.sh drive the driver with it.
# Usage: test_client.py SOCKET RPC [ARG]: one call; prints {"ok": true,
# "resp": {...}} or {"ok": false, "code": "NOT_FOUND", "message": ...}.
# ARG: a DriverSandbox as JSON (validate, create), an id (get, delete,
# stop, start) or name=N (by name), a workspace (ensure-ws, delete-ws).
# RPC watch: every event as a JSON line, flushed, until killed.
# Needs PYTHONPATH with the generated compute_driver_pb2 module.
# OSD_CLIENT_TIMEOUT: every call's deadline in seconds (default: 20 for
# the quick calls, 60 for validate, create and delete, 90 for stop/start).
import json
import os
import sys

import grpc
from google.protobuf import json_format

import compute_driver_pb2 as pb

sock, rpc = sys.argv[1], sys.argv[2]
forced = os.environ.get("OSD_CLIENT_TIMEOUT")
arg = sys.argv[3] if len(sys.argv) > 3 else ""
chan = grpc.insecure_channel("unix:" + sock)
S = "/openshell.compute.v1.ComputeDriver/"


def unary(name, req, resp):
    return chan.unary_unary(S + name, request_serializer=req.SerializeToString, response_deserializer=resp.FromString)


def t(default):
    return float(forced) if forced else default


def ident(cls):
    return cls(sandbox_name=arg[5:]) if arg.startswith("name=") else cls(sandbox_id=arg)


def sandbox():
    return json_format.ParseDict(json.loads(arg), pb.DriverSandbox())


calls = {
    "caps": lambda: unary("GetCapabilities", pb.GetCapabilitiesRequest, pb.GetCapabilitiesResponse)(
        pb.GetCapabilitiesRequest(), timeout=t(20)),
    "listeners": lambda: unary("GetGatewayListenerRequirements", pb.GetGatewayListenerRequirementsRequest,
                               pb.GetGatewayListenerRequirementsResponse)(
        pb.GetGatewayListenerRequirementsRequest(), timeout=t(20)),
    "ensure-ws": lambda: unary("EnsureWorkspace", pb.EnsureWorkspaceRequest, pb.EnsureWorkspaceResponse)(
        pb.EnsureWorkspaceRequest(workspace=arg), timeout=t(20)),
    "delete-ws": lambda: unary("DeleteWorkspace", pb.DeleteWorkspaceRequest, pb.DeleteWorkspaceResponse)(
        pb.DeleteWorkspaceRequest(workspace=arg), timeout=t(20)),
    "validate": lambda: unary("ValidateSandboxCreate", pb.ValidateSandboxCreateRequest,
                              pb.ValidateSandboxCreateResponse)(
        pb.ValidateSandboxCreateRequest(sandbox=sandbox()), timeout=t(60)),
    "create": lambda: unary("CreateSandbox", pb.CreateSandboxRequest, pb.CreateSandboxResponse)(
        pb.CreateSandboxRequest(sandbox=sandbox()), timeout=t(60)),
    "get": lambda: unary("GetSandbox", pb.GetSandboxRequest, pb.GetSandboxResponse)(
        ident(pb.GetSandboxRequest), timeout=t(20)),
    "list": lambda: unary("ListSandboxes", pb.ListSandboxesRequest, pb.ListSandboxesResponse)(
        pb.ListSandboxesRequest(), timeout=t(20)),
    "delete": lambda: unary("DeleteSandbox", pb.DeleteSandboxRequest, pb.DeleteSandboxResponse)(
        ident(pb.DeleteSandboxRequest), timeout=t(60)),
    "stop": lambda: unary("StopSandbox", pb.StopSandboxRequest, pb.StopSandboxResponse)(
        ident(pb.StopSandboxRequest), timeout=t(90)),
    "start": lambda: unary("StartSandbox", pb.StartSandboxRequest, pb.StartSandboxResponse)(
        ident(pb.StartSandboxRequest), timeout=t(90)),
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
