#!/usr/bin/python3
# Unit test of vfiod-openshell-driver (no root, no vfiod): quantities, the
# DriverSandbox -> CreateSandbox options mapping and its refusals, vfiod
# states -> conditions, vfiod errors -> gRPC codes, the peer policy, the
# socket path checks, and the RPCs over a fake vfiod.
# Run: PYTHONPATH=<build>/openshell-driver:<src>/openshell-driver /usr/bin/python3 test_driver.py
import logging
import os
import socket
import stat
import tempfile
import unittest

import grpc

import compute_driver_pb2 as pb
import vfiod_openshell_driver as d

# the refusals the tests provoke are logged by the driver: not on the test's output
logging.getLogger("vfiod-openshell-driver").addHandler(logging.NullHandler())
logging.getLogger("vfiod-openshell-driver").propagate = False

UUID = "0b5c1a2e-7d6f-4c41-9a55-2f1e6c3b8d90"


def sandbox(**kw):
    sb = pb.DriverSandbox(id=kw.pop("id", UUID), name=kw.pop("name", "agent-1"),
                          namespace=kw.pop("namespace", ""), workspace=kw.pop("workspace", "ws1"))
    for k, v in kw.items():
        parts = k.split("__")
        target = sb
        for p in parts[:-1]:
            target = getattr(target, p)
        last = parts[-1]
        field = getattr(target, last)
        if isinstance(v, dict) and hasattr(field, "update"):
            field.update(v)
        elif isinstance(v, list):
            field.extend(v)
        else:
            setattr(target, last, v)
    return sb


class Raises:
    def assert_error(self, code, words, fn, *args):
        with self.assertRaises(d.DriverError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.code, code, cm.exception.message)
        for w in words:
            self.assertIn(w, cm.exception.message)
        return cm.exception


class Quantities(unittest.TestCase, Raises):
    def test_cpu(self):
        for text, want in (("2", 2), ("1", 1), ("500m", 1), ("1500m", 2), ("2000m", 2), ("2001m", 3),
                           ("1.5", 2), ("0.1", 1), ("64", 64), ("1m", 1)):
            self.assertEqual(d.parse_cpu("cpu", text), want, text)

    def test_cpu_bad(self):
        for text in ("", "0", "0m", "0.0", "-1", "two", "1.5m", "2 ", " 2", "1e3", "2k", "1,5", "4294967296",
                     "0x10", "m"):
            self.assert_error(grpc.StatusCode.INVALID_ARGUMENT, ["cpu", repr(text)[1:-1]], d.parse_cpu, "cpu", text)

    def test_memory(self):
        for text, want in (("4Gi", 4096), ("512Mi", 512), ("1Mi", 1), ("1Ki", 1), ("1048576", 1),
                           ("1048577", 2), ("1G", 954), ("1M", 1), ("1.5Gi", 1536), ("2Ti", 2 * 1024 * 1024),
                           ("128974848", 123), ("129e6".replace("e6", "M"), 124)):
            self.assertEqual(d.parse_memory("memory", text), want, text)

    def test_memory_bad(self):
        for text in ("", "0", "0Gi", "4GB", "4gi", "Gi", "-1Gi", "4 Gi", "1e9", "4Zi", "4m", "17179869184Ti"):
            self.assert_error(grpc.StatusCode.INVALID_ARGUMENT, ["memory", text], d.parse_memory, "memory", text)

    def test_request_and_limit(self):
        self.assertEqual(d.pick_quantity(d.parse_cpu, "cpu", "1", "4"), 4)
        self.assertEqual(d.pick_quantity(d.parse_cpu, "cpu", "2", ""), 2)
        self.assertEqual(d.pick_quantity(d.parse_memory, "memory", "", "1Gi"), 1024)
        self.assertIsNone(d.pick_quantity(d.parse_cpu, "cpu", "", ""))
        self.assert_error(grpc.StatusCode.INVALID_ARGUMENT, ["cpu_request '4'", "cpu_limit '2'"],
                          d.pick_quantity, d.parse_cpu, "cpu", "4", "2")


class Options(unittest.TestCase, Raises):
    def test_minimal(self):
        o = d.sandbox_options(sandbox())
        self.assertEqual(o["name"], ("s", UUID))
        self.assertEqual(o["labels"], ("a{ss}", {"openshell/driver": "vfiod-openshell-driver", "openshell/id": UUID,
                                                 "openshell/name": "agent-1", "openshell/workspace": "ws1"}))
        self.assertEqual(set(o), {"name", "labels"})

    def test_full(self):
        sb = sandbox(spec__template__resources__cpu_limit="1500m", spec__template__resources__memory_request="4Gi",
                     spec__template__labels={"app": "web"}, spec__template__environment={"A": "t", "B": "t"},
                     spec__environment={"B": "s"}, spec__log_level="debug",
                     spec__command=["/bin/agent", "--port", "80"])
        sb.spec.resource_requirements.gpu.count = 2
        o = d.sandbox_options(sb)
        self.assertEqual(o["vcpus"], ("u", 2))
        self.assertEqual(o["memory_mib"], ("u", 4096))
        self.assertEqual(o["gpus"], ("u", 2))
        self.assertEqual(o["cmd"], ("s", "/bin/agent"))
        self.assertEqual(o["args"], ("as", ["--port", "80"]))
        self.assertEqual(o["env"], ("a{ss}", {"A": "t", "B": "s", "OPENSHELL_LOG_LEVEL": "debug"}))
        self.assertEqual(o["labels"][1]["app"], "web")
        self.assertNotIn("devices", o)

    def test_gpu_default_one(self):
        sb = sandbox()
        sb.spec.resource_requirements.gpu.SetInParent()
        self.assertEqual(d.sandbox_options(sb)["gpus"], ("u", 1))
        sb.spec.resource_requirements.gpu.count = 0
        self.assert_error(grpc.StatusCode.INVALID_ARGUMENT, ["gpu.count"], d.sandbox_options, sb)

    def test_devices(self):
        sb = sandbox(spec__template__driver_config={"devices": ["0000:01:00.0", "0000:02:00.0"]})
        sb.spec.resource_requirements.gpu.count = 2
        o = d.sandbox_options(sb)
        self.assertEqual(o["devices"], ("as", ["0000:01:00.0", "0000:02:00.0"]))
        self.assertNotIn("gpus", o)
        o = d.sandbox_options(sandbox(spec__template__driver_config={"gpu_device_ids": ["0000:03:00.0"]}))
        self.assertEqual(o["devices"], ("as", ["0000:03:00.0"]))

    def test_devices_bad(self):
        for cfg, words in (({"devices": "0000:01:00.0"}, ["list"]), ({"devices": []}, ["non-empty"]),
                           ({"devices": [1]}, ["strings"]), ({"devices": {"a": 1}}, ["list"]),
                           ({"mounts": []}, ["unknown key(s) mounts"]),
                           ({"devices": ["a"], "gpu_device_ids": ["a"]}, ["not both"])):
            self.assert_error(grpc.StatusCode.INVALID_ARGUMENT, words, d.sandbox_options,
                              sandbox(spec__template__driver_config=cfg))

    def test_refusals(self):
        P, I = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT
        for sb, code, words in (
                (sandbox(spec__environment={"A": "b"}), I, ["environment without a command"]),
                (sandbox(spec__log_level="info"), I, ["environment without a command"]),
                (sandbox(spec__tty=True), P, ["tty"]),
                (sandbox(spec__template__agent_socket_path="/run/a.sock"), P, ["agent_socket_path"]),
                (sandbox(spec__template__platform_config={"runtime_class_name": "x"}), P, ["platform_config"]),
                (sandbox(spec__command=["agent"]), I, ["command[0] 'agent'", "absolute"]),
                (sandbox(spec__template__labels={"openshell/id": "x"}), I, ["openshell/id", "prefix"]),
                (sandbox(id=""), I, ["sandbox.id is required"]),
                (sandbox(id="sb-1234"), I, ["sandbox.id 'sb-1234'"]),
                (sandbox(id="Upper"), I, ["sandbox.id 'Upper'"]),
                (sandbox(id="a" * 64), I, ["cannot name a vfiod sandbox"]),
                (sandbox(spec__template__resources__memory_limit="lots"), I, ["memory_limit 'lots'"]),
                (sandbox(spec__template__image="ghcr.io/x/y:1"), P, ["does not pull images", "--image-dir"])):
            self.assert_error(code, words, d.sandbox_options, sb)

    def test_token(self):
        o = d.sandbox_options(sandbox(spec__sandbox_token="eyJ.x.y", spec__command=["/bin/sv"]))
        self.assertEqual(o["files"], ("aa{sv}", [{"path": ("s", "/etc/openshell/auth/sandbox.jwt"),
                                                  "contents": ("ay", b"eyJ.x.y"), "mode": ("u", 0o600)}]))
        self.assertEqual(o["env"], ("a{ss}", {"OPENSHELL_SANDBOX_TOKEN_FILE": "/etc/openshell/auth/sandbox.jwt"}))
        # without a command: the file only (vfiod gives env to a command only)
        o = d.sandbox_options(sandbox(spec__sandbox_token="eyJ.x.y"))
        self.assertEqual(o["files"][1][0]["contents"], ("ay", b"eyJ.x.y"))
        self.assertNotIn("env", o)
        self.assertNotIn("files", d.sandbox_options(sandbox()))

    def test_image_dir(self):
        ref = "ghcr.io/nvidia/sandbox:1.0@sha256:ab"
        with tempfile.TemporaryDirectory() as tmp:
            name = d.image_file_name(ref)
            self.assertEqual(name, "ghcr.io_nvidia_sandbox_1.0_sha256_ab.img")
            self.assertEqual(d.image_file_name("../../etc/passwd"), ".._.._etc_passwd.img")  # never a path
            self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["no prepared root disk", name], d.sandbox_options,
                              sandbox(spec__template__image=ref), tmp)
            path = os.path.join(tmp, name)
            open(path, "w").close()
            root = {"role": ("s", "root"), "path": ("s", path), "read_only": ("b", True)}
            # the image is read-only (shared by every sandbox of it); no
            # overlay given: vfiod puts the writable layer on a tmpfs
            o = d.sandbox_options(sandbox(spec__template__image=ref), tmp)
            self.assertEqual(o["disks"], ("aa{sv}", [root]))
            self.assertNotIn("disk", o)
            o = d.sandbox_options(sandbox(spec__template__image=ref), tmp, "", "/ov/x.ext4")
            self.assertEqual(o["disks"], ("aa{sv}", [root, {"role": ("s", "overlay"), "path": ("s", "/ov/x.ext4")}]))
            # the default image stands in for a template without one
            o = d.sandbox_options(sandbox(), tmp, ref)
            self.assertEqual(o["disks"], ("aa{sv}", [root]))
            # no image: no disks, and no overlay either
            self.assertNotIn("disks", d.sandbox_options(sandbox(), tmp, "", "/ov/x.ext4"))
            # a symbolic link is refused here (vfiod opens none)
            os.rename(path, path + ".real")
            os.symlink(path + ".real", path)
            self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["not a regular file"], d.sandbox_options,
                              sandbox(spec__template__image=ref), tmp)

    def test_size(self):
        for text, want in (("4G", 4 * 10**9), ("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("20M", 20 * 10**6),
                           ("20000K", 2 * 10**7), ("20000k", 2 * 10**7), ("16384Ki", 16 * 2**20), ("1Ti", 2**40),
                           ("16777216", 16 * 2**20), ("16Ti", 16 * 2**40)):
            self.assertEqual(d.parse_size(text), want, text)
        for text in ("", "4", "4GB", "4g", "1.5G", "-4G", "4 G", "G", "15Mi", "17Ti", "0x10M", "4Gib"):
            with self.assertRaises(ValueError, msg=text):
                d.parse_size(text)


class OverlayDisks(unittest.TestCase, Raises):
    def setUp(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        self.dir = os.path.join(tmp, "overlays")
        os.mkdir(self.dir)
        mkfs = __import__("shutil").which("mkfs.ext4", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        self.assertIsNotNone(mkfs, "mkfs.ext4 (e2fsprogs)")
        self.ov = d.Overlays(self.dir, 16 * 2**20, mkfs)

    def test_ensure(self):
        path, created = self.ov.ensure(UUID)
        self.assertEqual((path, created), (os.path.join(self.dir, UUID + ".ext4"), True))
        st = os.lstat(path)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_size, st.st_uid), (0o600, 16 * 2**20, os.geteuid()))
        self.assertLess(st.st_blocks * 512, st.st_size)  # sparse
        with open(path, "rb") as f:
            f.seek(1024 + 0x38)
            self.assertEqual(f.read(2), b"\x53\xef")  # the ext2/3/4 superblock's magic
        self.assertEqual(os.listdir(self.dir), [UUID + ".ext4"])  # no temporary file left
        # never formatted again: the same file, its contents kept
        with open(path, "r+b") as f:
            f.seek(8 * 2**20)
            f.write(b"written by the workload")
        self.assertEqual(self.ov.ensure(UUID), (path, False))
        self.assertEqual(os.lstat(path).st_ino, st.st_ino)
        with open(path, "rb") as f:
            f.seek(8 * 2**20)
            self.assertEqual(f.read(23), b"written by the workload")
        self.assertEqual(self.ov.existing(UUID), path)
        self.assertIsNone(self.ov.existing("other"))
        self.assertTrue(self.ov.remove(UUID))
        self.assertFalse(self.ov.remove(UUID))
        self.assertEqual(os.listdir(self.dir), [])

    def test_symlink_refused(self):
        target = os.path.join(os.path.dirname(self.dir), "elsewhere")
        open(target, "w").close()
        os.symlink(target, os.path.join(self.dir, UUID + ".ext4"))
        self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["not a regular file"], self.ov.ensure, UUID)
        self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["not a regular file"], self.ov.existing, UUID)
        self.assertFalse(self.ov.remove(UUID))  # left alone
        self.assertTrue(os.path.islink(os.path.join(self.dir, UUID + ".ext4")))
        self.assertEqual(os.path.getsize(target), 0)  # never written through the link

    def test_mkfs_fails(self):
        ov = d.Overlays(self.dir, 16 * 2**20, "/bin/false")
        self.assert_error(grpc.StatusCode.INTERNAL, ["/bin/false exited 1"], ov.ensure, UUID)
        self.assertEqual(os.listdir(self.dir), [])  # nothing half made

    def test_not_writable(self):
        self.ov.check_writable()
        gone = d.Overlays(self.dir + "-gone", 16 * 2**20, "/bin/true")
        self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["--overlay-dir", "No such file"], gone.check_writable)
        self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["--overlay-dir", "No such file"], gone.ensure, UUID)
        os.chmod(self.dir, 0o500)
        if os.geteuid() != 0:  # (root may create files anywhere)
            self.assert_error(grpc.StatusCode.FAILED_PRECONDITION, ["cannot create files"], self.ov.check_writable)


class Variant(unittest.TestCase):
    def test_options_variant(self):
        import warnings
        import gi
        gi.require_version("GLib", "2.0")
        with warnings.catch_warnings():  # gi's importer, not ours
            warnings.simplefilter("ignore", ImportWarning)
            from gi.repository import GLib

        class Shim(d.Vfiod):
            def __init__(self):  # no connection, no main loop
                self.GLib = GLib
        sb = sandbox(spec__sandbox_token="t\u00f6k", spec__command=["/bin/sv", "-v"],
                     spec__template__resources__memory_limit="1Gi")
        sb.spec.resource_requirements.gpu.count = 2
        v = Shim().options_variant(d.sandbox_options(sb))
        self.assertEqual(v.get_type_string(), "(a{sv})")
        opts = v.get_child_value(0)
        self.assertEqual(opts.lookup_value("memory_mib", None).get_type_string(), "u")
        self.assertEqual(opts.lookup_value("gpus", None).get_uint32(), 2)
        self.assertEqual(opts.lookup_value("args", None).unpack(), ["-v"])
        files = opts.lookup_value("files", None)
        self.assertEqual(files.get_type_string(), "aa{sv}")
        f = files.unpack()[0]
        self.assertEqual((f["path"], bytes(f["contents"]), f["mode"]),
                         ("/etc/openshell/auth/sandbox.jwt", "t\u00f6k".encode(), 0o600))


class States(unittest.TestCase):
    def cond(self, v, kind=None):
        conds, deleting = d.sandbox_conditions(v, kind)
        self.assertEqual(len(conds), 1)
        c = conds[0]
        return c.type, c.status, c.reason, c.message, deleting

    def phase(self, v, kind=None):
        """The phase upstream's gateway derives (openshell-server,
        compute/mod.rs derive_phase at 2f7fb655: deleting; Suspended True;
        else Ready True/False, a False with a reason outside its transient
        list being an error)."""
        conds, deleting = d.sandbox_conditions(v, kind)
        if deleting:
            return "Deleting"
        if any(c.type == "Suspended" and c.status == "True" for c in conds):
            return "Stopped"
        transient = ("reconcilererror", "dependenciesnotready", "supervisornotconnected", "starting",
                     "containerstarting", "containercreated", "healthcheckstarting", "inspectfailed")
        for c in conds:
            if c.type == "Ready":
                if c.status == "True":
                    return "Ready"
                if c.status == "False" and c.reason.lower() not in transient:
                    return "Error"
                return "Provisioning"
        return "Provisioning"

    def test_states(self):
        self.assertEqual(self.cond({"state": "creating"})[:3] + (False,), ("Ready", "False", "Starting", False))
        self.assertEqual(self.cond({"state": "running", "ready": False})[1:3], ("False", "Starting"))
        self.assertEqual(self.cond({"state": "running", "ready": True})[1:3], ("True", "Ready"))
        # stopping: only a delete is "deleting"; a stop (or an unknown
        # cause) is Ready Unknown, which the gateway keeps as its Stopping
        t = self.cond({"state": "stopping"}, "delete")
        self.assertEqual((t[1], t[2], t[4]), ("False", "Deleting", True))
        for kind in ("stop", "qemu-exited", None):
            t = self.cond({"state": "stopping"}, kind)
            self.assertEqual((t[1], t[2], t[4]), ("Unknown", "Stopping", False), kind)
        self.assertIn("StopSandbox", self.cond({"state": "stopping"}, "stop")[3])
        t = self.cond({"state": "exited", "workload_exit_status": 3})
        self.assertEqual(t[2:4], ("WorkloadExited", "the workload exited with status 3"))
        t = self.cond({"state": "exited", "workload_exit_status": 0, "workload_signal": 9})
        self.assertEqual(t[3], "the workload was killed by signal 9")
        t = self.cond({"state": "failed", "failure_reason": "workload /x: No such file"})
        self.assertEqual(t[2:4], ("Failed", "guest set-up failed: workload /x: No such file"))
        self.assertEqual(self.cond({"state": "failed", "exit_status": 1})[3], "QEMU failed (exit status 1)")
        conds, deleting = d.sandbox_conditions({"state": "stopped"})
        self.assertEqual([(c.type, c.status, c.reason) for c in conds],
                         [("Ready", "False", "Stopped"), ("Suspended", "True", "Stopped")])
        self.assertIn("disks are kept", conds[0].message)
        self.assertFalse(deleting)
        self.assertEqual(self.cond({"state": "weird"})[1:3], ("Unknown", "UnknownState"))

    def test_gateway_phases(self):
        for v, kind, want in (({"state": "creating"}, None, "Provisioning"),
                              ({"state": "running", "ready": True}, None, "Ready"),
                              ({"state": "stopping"}, "stop", "Provisioning"),
                              ({"state": "stopping"}, None, "Provisioning"),
                              ({"state": "stopping"}, "delete", "Deleting"),
                              ({"state": "stopped"}, None, "Stopped"),
                              ({"state": "exited", "workload_exit_status": 1}, None, "Error"),
                              ({"state": "failed"}, None, "Error")):
            self.assertEqual(self.phase(v, kind), want, (v, kind))

    def test_driver_sandbox(self):
        v = {"id": "sb-abc", "name": UUID, "state": "running", "ready": True,
             "labels": {"openshell/driver": "vfiod-openshell-driver", "openshell/id": UUID,
                        "openshell/name": "agent-1", "openshell/namespace": "ns", "openshell/workspace": "ws"}}
        self.assertTrue(d.is_ours(v))
        s = d.driver_sandbox(v)
        self.assertEqual((s.id, s.name, s.namespace, s.workspace), (UUID, "agent-1", "ns", "ws"))
        self.assertEqual((s.status.instance_id, s.status.sandbox_name), ("sb-abc", "agent-1"))
        self.assertFalse(s.HasField("spec"))
        self.assertFalse(d.is_ours({"id": "sb-x", "labels": {"app": "x"}}))
        self.assertFalse(d.is_ours({"id": "sb-x"}))


class Errors(unittest.TestCase):
    def test_map(self):
        S = grpc.StatusCode
        for name, code in (("InvalidArgument", S.INVALID_ARGUMENT), ("NotFound", S.NOT_FOUND),
                           ("AlreadyExists", S.ALREADY_EXISTS), ("PermissionDenied", S.PERMISSION_DENIED),
                           ("NotAllowed", S.PERMISSION_DENIED), ("Busy", S.UNAVAILABLE),
                           ("LimitExceeded", S.RESOURCE_EXHAUSTED), ("TimedOut", S.DEADLINE_EXCEEDED),
                           ("Failed", S.INTERNAL), ("Stuck", S.INTERNAL), ("SomethingNew", S.INTERNAL)):
            e = d.map_vfiod_error("org.vfiod.Error." + name, "the message")
            self.assertEqual(e.code, code, name)
            self.assertEqual(e.message, f"vfiod: {name}: the message")
        e = d.map_vfiod_error("org.vfiod.Error.NotFound", "GDBus.Error:org.vfiod.Error.NotFound: no sandbox 'x'")
        self.assertEqual(e.message, "vfiod: NotFound: no sandbox 'x'")
        e = d.map_vfiod_error(None, "Could not connect: No such file or directory")
        self.assertEqual(e.code, S.UNAVAILABLE)
        self.assertIn("vfiod unreachable", e.message)
        self.assertEqual(d.map_vfiod_error("org.freedesktop.DBus.Error.UnknownMethod", "x").code, S.UNAVAILABLE)


class Peers(unittest.TestCase):
    def test_policy(self):
        me = os.geteuid()
        p = d.PeerPolicy([4242])
        self.assertTrue(p.allows(0, 0))
        self.assertTrue(p.allows(me, 12345))
        self.assertTrue(p.allows(4242, 4242))
        self.assertFalse(p.allows(4243, 4243) if me != 4243 else False)

    def test_group(self):
        class G:
            gr_gid = 777
            gr_mem = ["root"]
        p = d.PeerPolicy([], G())
        self.assertTrue(p.allows(54321, 777))   # primary group
        self.assertFalse(p.allows(54321, 778) if os.geteuid() != 54321 else False)


class SocketPath(unittest.TestCase):
    def test_paths(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s")
            d.prepare_socket_path(path)  # absent: fine
            open(path, "w").close()
            with self.assertRaisesRegex(RuntimeError, "exists and is not a socket"):
                d.prepare_socket_path(path)
            os.unlink(path)
            live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            live.bind(path)
            live.listen(1)
            with self.assertRaisesRegex(RuntimeError, "in use"):
                d.prepare_socket_path(path)
            live.close()  # now stale: nobody listens
            self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
            d.prepare_socket_path(path)
            self.assertFalse(os.path.exists(path))


class FakeVfiod:
    """GetSandbox/ListSandboxes/Stop/Start/DeleteSandbox over a dict."""

    class GLib:
        @staticmethod
        def Variant(t, v):
            return v

    def __init__(self, sandboxes):
        self.sandboxes = sandboxes
        self.deleted = []
        self.calls = []
        self.errors = {}  # method -> vfiod error name it answers
        self.options = []  # (method, options) of each CreateSandbox/ValidateSandbox

    def options_variant(self, opts):
        return opts

    def get(self, ident):
        for v in self.sandboxes:
            if ident in (v["id"], v.get("name")):
                return v
        raise d.map_vfiod_error("org.vfiod.Error.NotFound", f"no sandbox '{ident}'")

    def list(self):
        return self.sandboxes

    def call(self, method, args=None, reply=None):
        self.calls.append((method, args[0] if isinstance(args, tuple) else None))
        if method in self.errors:
            raise d.map_vfiod_error("org.vfiod.Error." + self.errors[method], f"{method} refused")
        if method in ("CreateSandbox", "ValidateSandbox"):
            opts = args  # options_variant() below: the options as they are
            self.options.append((method, opts))
            if method == "ValidateSandbox":
                return ({"valid": True},)
            name = opts["name"][1]
            for v in self.sandboxes:
                if v.get("name") == name:
                    return (v,)
            v = vsb(f"sb-{len(self.sandboxes) + 10}", name, "running", opts["labels"][1].get("openshell/name", ""))
            self.sandboxes.append(v)
            return (v,)
        v = self.get(args[0])
        if method == "StopSandbox":
            if v["state"] == "creating":
                raise d.map_vfiod_error("org.vfiod.Error.Busy", f"sandbox {v['id']} is being created")
            if v["state"] in ("running", "stopping"):
                v["state"] = "stopped"
            return (v,)
        if method == "StartSandbox":
            if v["state"] in ("stopped", "exited", "failed"):
                v["state"], v["ready"] = "running", False
            return (v,)
        assert method == "DeleteSandbox", method
        self.sandboxes.remove(v)
        self.deleted.append(v["id"])
        return ()


def vsb(vid, gid, state, name="n", ours=True, **kw):
    labels = {"openshell/id": gid, "openshell/name": name}
    if ours:
        labels["openshell/driver"] = "vfiod-openshell-driver"
    return dict(id=vid, name=gid, state=state, labels=labels, **kw)


class Rpcs(unittest.TestCase, Raises):
    def setUp(self):
        self.v = FakeVfiod([vsb("sb-1", "aaa", "running", "one", ready=True), vsb("sb-2", "bbb", "exited", "two"),
                            vsb("sb-3", "ccc", "running", "other", ours=False)])
        self.drv = d.Driver(self.v, d.Watchers())

    def test_get_list(self):
        r = self.drv.GetSandbox(pb.GetSandboxRequest(sandbox_id="aaa"), None)
        self.assertEqual((r.sandbox.id, r.sandbox.status.instance_id), ("aaa", "sb-1"))
        r = self.drv.GetSandbox(pb.GetSandboxRequest(sandbox_name="two"), None)
        self.assertEqual(r.sandbox.id, "bbb")
        S = grpc.StatusCode
        self.assert_error(S.NOT_FOUND, ["ccc", "this driver"], self.drv.GetSandbox,
                          pb.GetSandboxRequest(sandbox_id="ccc"), None)
        self.assert_error(S.NOT_FOUND, ["zzz"], self.drv.GetSandbox, pb.GetSandboxRequest(sandbox_id="zzz"), None)
        self.assert_error(S.FAILED_PRECONDITION, ["not named 'two'"], self.drv.GetSandbox,
                          pb.GetSandboxRequest(sandbox_id="aaa", sandbox_name="two"), None)
        self.assert_error(S.INVALID_ARGUMENT, ["required"], self.drv.GetSandbox, pb.GetSandboxRequest(), None)
        ids = [s.id for s in self.drv.ListSandboxes(pb.ListSandboxesRequest(), None).sandboxes]
        self.assertEqual(ids, ["aaa", "bbb"])

    def test_stop_start(self):
        S = grpc.StatusCode
        self.drv.StopSandbox(pb.StopSandboxRequest(sandbox_id="aaa"), None)
        self.assertEqual(self.v.calls[-1], ("StopSandbox", "sb-1"))
        r = self.drv.GetSandbox(pb.GetSandboxRequest(sandbox_id="aaa"), None)
        self.assertEqual([(c.type, c.status, c.reason) for c in r.sandbox.status.conditions],
                         [("Ready", "False", "Stopped"), ("Suspended", "True", "Stopped")])
        self.assertEqual(self.drv.watchers.stop_kinds, {})  # the stop's mark is gone with the call
        self.drv.StopSandbox(pb.StopSandboxRequest(sandbox_id="aaa"), None)  # stopped: vfiod answers as it is
        self.drv.StartSandbox(pb.StartSandboxRequest(sandbox_name="one"), None)
        self.assertEqual(self.v.calls[-1], ("StartSandbox", "sb-1"))
        r = self.drv.GetSandbox(pb.GetSandboxRequest(sandbox_id="aaa"), None)
        self.assertEqual(r.sandbox.status.conditions[0].reason, "Starting")
        self.drv.StartSandbox(pb.StartSandboxRequest(sandbox_id="bbb"), None)  # exited: vfiod starts it again
        self.assertEqual(self.v.calls[-1], ("StartSandbox", "sb-2"))
        # creating: the start asked for is under way; no call
        n = len(self.v.calls)
        self.v.sandboxes.append(vsb("sb-4", "ddd", "creating"))
        self.drv.StartSandbox(pb.StartSandboxRequest(sandbox_id="ddd"), None)
        self.assertEqual(len(self.v.calls), n)
        # vfiod's Busy (a create/start/stop/delete under way): UNAVAILABLE, retry
        self.assert_error(S.UNAVAILABLE, ["vfiod: Busy", "being created"], self.drv.StopSandbox,
                          pb.StopSandboxRequest(sandbox_id="ddd"), None)
        self.v.errors["StartSandbox"] = "Failed"  # e.g. vfiod restarted since the create
        self.v.sandboxes[0]["state"] = "stopped"
        self.assert_error(S.INTERNAL, ["vfiod: Failed"], self.drv.StartSandbox,
                          pb.StartSandboxRequest(sandbox_id="aaa"), None)
        self.assert_error(S.NOT_FOUND, [], self.drv.StopSandbox, pb.StopSandboxRequest(sandbox_id="zzz"), None)
        self.assert_error(S.NOT_FOUND, [], self.drv.StartSandbox, pb.StartSandboxRequest(sandbox_id="ccc"), None)
        self.assertNotIn(("StartSandbox", "sb-3"), self.v.calls)  # not the driver's: untouched

    def test_stop_kind_from_events(self):
        w = self.drv.watchers
        w.vfiod = self.v
        self.v.sandboxes[0]["state"] = "stopping"
        ev = w._events("SandboxEvent", ("sb-1", "stopping", 1000, "stop", ""))
        s = ev[1].sandbox.sandbox
        self.assertEqual((s.status.conditions[0].reason, s.status.deleting), ("Stopping", False))
        ev = w._events("SandboxEvent", ("sb-1", "stopping", 1000, "delete", ""))
        s = ev[1].sandbox.sandbox
        self.assertEqual((s.status.conditions[0].reason, s.status.deleting), ("Deleting", True))
        r = self.drv.GetSandbox(pb.GetSandboxRequest(sandbox_id="aaa"), None)
        self.assertTrue(r.sandbox.status.deleting)
        w._events("SandboxRemoved", ("sb-1", "aaa"))
        self.assertEqual(w.stop_kinds, {})

    def test_overlay_lifecycle(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        images, ovdir = os.path.join(tmp, "images"), os.path.join(tmp, "overlays")
        os.mkdir(images)
        os.mkdir(ovdir)
        img = os.path.join(images, d.image_file_name("lab/root:1"))
        open(img, "w").close()
        mkfs = __import__("shutil").which("mkfs.ext4", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        drv = d.Driver(self.v, d.Watchers(), images, "", "", d.Overlays(ovdir, 16 * 2**20, mkfs))
        req = pb.CreateSandboxRequest(sandbox=sandbox(id="eee", spec__template__image="lab/root:1"))
        ov = os.path.join(ovdir, "eee.ext4")
        root = {"role": ("s", "root"), "path": ("s", img), "read_only": ("b", True)}
        overlay = {"role": ("s", "overlay"), "path": ("s", ov)}
        # Validate makes nothing: the tmpfs form while there is no overlay disk
        drv.ValidateSandboxCreate(pb.ValidateSandboxCreateRequest(sandbox=req.sandbox), None)
        self.assertEqual(self.v.options[-1][1]["disks"], ("aa{sv}", [root]))
        self.assertEqual(os.listdir(ovdir), [])
        # Create makes it, and gives it to vfiod
        drv.CreateSandbox(req, None)
        self.assertEqual(self.v.options[-1][1]["disks"], ("aa{sv}", [root, overlay]))
        ino = os.lstat(ov).st_ino
        # again: the very same options (vfiod compares them), the same file
        drv.CreateSandbox(req, None)
        self.assertEqual(self.v.options[-1], self.v.options[-2])
        self.assertEqual(os.lstat(ov).st_ino, ino)
        # Validate now gives the overlay that is there (the spec the create has)
        drv.ValidateSandboxCreate(pb.ValidateSandboxCreateRequest(sandbox=req.sandbox), None)
        self.assertEqual(self.v.options[-1][1]["disks"], ("aa{sv}", [root, overlay]))
        # Stop/Start keep it; Delete removes it after vfiod's delete
        drv.StopSandbox(pb.StopSandboxRequest(sandbox_id="eee"), None)
        drv.StartSandbox(pb.StartSandboxRequest(sandbox_id="eee"), None)
        self.assertTrue(os.path.exists(ov))
        self.assertTrue(drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="eee"), None).deleted)
        self.assertEqual(os.listdir(ovdir), [])
        # a create vfiod refuses: the overlay this call made goes again
        self.v.errors["CreateSandbox"] = "InvalidArgument"
        self.assertRaises(d.DriverError, drv.CreateSandbox, req, None)
        self.assertEqual(os.listdir(ovdir), [])
        # a refusal of the spec comes before any file is made
        del self.v.errors["CreateSandbox"]
        bad = pb.CreateSandboxRequest(sandbox=sandbox(id="fff", spec__template__image="lab/root:1",
                                                      spec__command=["relative"]))
        self.assertRaises(d.DriverError, drv.CreateSandbox, bad, None)
        self.assertEqual(os.listdir(ovdir), [])
        # a leftover of a sandbox vfiod no longer knows: removed by Delete
        open(os.path.join(ovdir, "ggg.ext4"), "w").close()
        self.assertFalse(drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="ggg"), None).deleted)
        self.assertEqual(os.listdir(ovdir), [])
        # ... but not one of a name vfiod has for someone else
        open(os.path.join(ovdir, "ccc.ext4"), "w").close()
        self.assertFalse(drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="ccc"), None).deleted)
        self.assertEqual(os.listdir(ovdir), ["ccc.ext4"])

    def test_delete(self):
        r = self.drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="aaa"), None)
        self.assertTrue(r.deleted)
        self.assertEqual(self.v.deleted, ["sb-1"])
        r = self.drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="aaa"), None)
        self.assertFalse(r.deleted)
        r = self.drv.DeleteSandbox(pb.DeleteSandboxRequest(sandbox_id="ccc"), None)  # not ours: untouched
        self.assertFalse(r.deleted)
        self.assertEqual(self.v.deleted, ["sb-1"])

    def test_watch_events(self):
        w = d.Watchers()
        w.vfiod = self.v
        ev = w._events("SandboxEvent", ("sb-1", "vm-started", 1700000000123456, "", "pid 7"))
        self.assertEqual(ev[0].platform_event.sandbox_id, "aaa")
        self.assertEqual((ev[0].platform_event.event.timestamp_ms, ev[0].platform_event.event.reason,
                          ev[0].platform_event.event.type), (1700000000123, "vm-started", "Normal"))
        self.assertEqual(ev[1].sandbox.sandbox.id, "aaa")
        self.assertEqual(w._events("SandboxEvent", ("sb-3", "vm-started", 1, "", "")), [])  # not ours
        self.assertEqual(w._events("SandboxRemoved", ("sb-3", "ccc")), [])
        ev = w._events("SandboxRemoved", ("sb-1", "aaa"))
        self.assertEqual(ev[0].deleted.sandbox_id, "aaa")
        self.assertEqual(w._events("SandboxRemoved", ("sb-1", "aaa")), [])  # once
        # a failed create: its events come after vfiod forgot it, the id known from before
        w.known["sb-9"] = "ggg"
        ev = w._events("SandboxEvent", ("sb-9", "failed", 5000, "Busy", "no free unit"))
        self.assertEqual(len(ev), 1)
        self.assertEqual((ev[0].platform_event.sandbox_id, ev[0].platform_event.event.type), ("ggg", "Warning"))

    def test_watch_overflow(self):
        w = d.Watchers()
        q = w.open()
        ev = pb.WatchSandboxesEvent(deleted=pb.WatchSandboxesDeletedEvent(sandbox_id="x"))
        for _ in range(d.WATCH_QUEUE):
            w._fan_out([ev])
        self.assertEqual(w.count(), 1)
        w._fan_out([ev])
        self.assertEqual(w.count(), 0)
        self.assertIsInstance(q.get_nowait(), d._Overflow)


class OverTheSocket(unittest.TestCase):
    """The service over the real path: the checked listener, the relay and
    the gRPC server with the generic handler, a fake vfiod behind."""

    def serve(self, policy):
        from concurrent import futures
        tmp = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        v = FakeVfiod([vsb("sb-1", "aaa", "running", "one", ready=True), vsb("sb-2", "bbb", "exited", "two")])
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                             handlers=[d.generic_handler(d.Driver(v, d.Watchers()))])
        backend = os.path.join(tmp, "grpc.sock")
        server.add_insecure_port("unix:" + backend)
        server.start()
        self.addCleanup(lambda: server.stop(0))
        path = os.path.join(tmp, "public.sock")
        lst = d.CheckedListener(path, 0o600, None, policy, backend, 4)
        lst.start()
        self.addCleanup(lst.close)
        chan = grpc.insecure_channel("unix:" + path)
        self.addCleanup(chan.close)
        return path, chan, lst

    def rpc(self, chan, name, req, resp):
        return chan.unary_unary("/openshell.compute.v1.ComputeDriver/" + name, request_serializer=req.SerializeToString,
                                response_deserializer=resp.FromString)

    def test_allowed(self):
        path, chan, lst = self.serve(d.PeerPolicy())
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        r = self.rpc(chan, "GetSandbox", pb.GetSandboxRequest, pb.GetSandboxResponse)(
            pb.GetSandboxRequest(sandbox_name="two"), timeout=10)
        self.assertEqual((r.sandbox.id, r.sandbox.status.instance_id), ("bbb", "sb-2"))
        r = self.rpc(chan, "StopSandbox", pb.StopSandboxRequest, pb.StopSandboxResponse)(
            pb.StopSandboxRequest(sandbox_id="aaa"), timeout=10)
        self.assertEqual(r, pb.StopSandboxResponse())
        with self.assertRaises(grpc.RpcError) as cm:
            self.rpc(chan, "StartSandbox", pb.StartSandboxRequest, pb.StartSandboxResponse)(
                pb.StartSandboxRequest(sandbox_id="zzz"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        r = self.rpc(chan, "EnsureWorkspace", pb.EnsureWorkspaceRequest, pb.EnsureWorkspaceResponse)(
            pb.EnsureWorkspaceRequest(workspace="w"), timeout=10)
        self.assertEqual(r, pb.EnsureWorkspaceResponse())
        lst.close()
        self.assertFalse(os.path.exists(path))

    def test_refused(self):
        class Nobody(d.PeerPolicy):
            def allows(self, uid, gid):
                return False
        path, chan, _ = self.serve(Nobody())
        with self.assertRaises(grpc.RpcError) as cm:
            self.rpc(chan, "GetSandbox", pb.GetSandboxRequest, pb.GetSandboxResponse)(
                pb.GetSandboxRequest(sandbox_id="aaa"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
