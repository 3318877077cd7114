# vfiod-openshell-driver: serves OpenShell's compute-driver contract
# (openshell.compute.v1.ComputeDriver, gRPC on a Unix socket) on top of
# vfiod's D-Bus API. Thin by design: it maps a DriverSandbox to vfiod's
# CreateSandbox options and vfiod's sandboxes, signals and errors back to
# the contract; every decision about devices, memory, names and limits is
# vfiod's. See README.md next to this file.
"""vfiod-openshell-driver: the OpenShell compute driver served from vfiod."""

import argparse
import errno
import grp
import logging
import math
import os
import pwd
import queue
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from fractions import Fraction

import grpc
from google.protobuf import struct_pb2

import compute_driver_pb2 as pb

VERSION = "0.1.0"
DRIVER_NAME = "vfiod"
MANAGER_PATH = "/org/vfiod/Manager1"
MANAGER_IFACE = "org.vfiod.Manager1"
# Labels the driver puts on every sandbox it creates (vfiod label keys:
# [A-Za-z0-9._/-], 1 to 63 bytes). A template label may not use the prefix.
LABEL_PREFIX = "openshell/"
LABEL_DRIVER = LABEL_PREFIX + "driver"
LABEL_ID = LABEL_PREFIX + "id"
LABEL_NAME = LABEL_PREFIX + "name"
LABEL_NAMESPACE = LABEL_PREFIX + "namespace"
LABEL_WORKSPACE = LABEL_PREFIX + "workspace"
DRIVER_LABEL_VALUE = "vfiod-openshell-driver"
# vfiod's rule for a sandbox name (doc: CreateSandbox, name).
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,61}[a-z0-9])?$")
# Where the sandbox token is written in the guest, and the variable that
# names it (upstream's container path and supervisor variable).
TOKEN_PATH = "/etc/openshell/auth/sandbox.jwt"
TOKEN_FILE_ENV = "OPENSHELL_SANDBOX_TOKEN_FILE"
DRIVER_CONFIG_KEYS = ("devices", "gpu_device_ids")
UINT32_MAX = 2**32 - 1
WATCH_QUEUE = 256
# The per-sandbox overlay disks (--overlay-dir): DIR/<vfiod name>.ext4.
OVERLAY_SUFFIX = ".ext4"
OVERLAY_MIN = 16 * 2**20      # ext4 with a journal needs a few MiB; less is a typo
OVERLAY_MAX = 16 * 2**40      # ext4's limit with 4 KiB blocks
MKFS_TIMEOUT = 300

log = logging.getLogger("vfiod-openshell-driver")


class DriverError(Exception):
    """An RPC's answer as a gRPC status code and a message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message):
    return DriverError(grpc.StatusCode.INVALID_ARGUMENT, message)


def precondition(message):
    return DriverError(grpc.StatusCode.FAILED_PRECONDITION, message)


# ---- quantities -------------------------------------------------------------

_CPU_RE = re.compile(r"^(\d+)m$|^(\d+(?:\.\d+)?)$")
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEM_UNITS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_cpu(field, text):
    """A Kubernetes CPU quantity ("2", "1.5", "500m") as vCPUs, rounded up."""
    m = _CPU_RE.match(text)
    if not m:
        raise invalid(f"{field} '{text}' is not a CPU quantity (e.g. \"2\", \"1.5\", \"500m\")")
    cores = Fraction(int(m.group(1)), 1000) if m.group(1) is not None else Fraction(m.group(2))
    if cores <= 0:
        raise invalid(f"{field} '{text}' must be more than 0")
    vcpus = math.ceil(cores)
    if vcpus > UINT32_MAX:
        raise invalid(f"{field} '{text}' is too large")
    return vcpus


def parse_memory(field, text):
    """A Kubernetes memory quantity ("4Gi", "512Mi", "1G", "1048576") as MiB,
    rounded up."""
    m = _MEM_RE.match(text)
    if not m:
        raise invalid(f"{field} '{text}' is not a memory quantity (e.g. \"512Mi\", \"4Gi\", \"1G\")")
    size = Fraction(m.group(1)) * _MEM_UNITS[m.group(2)]
    if size <= 0:
        raise invalid(f"{field} '{text}' must be more than 0")
    mib = math.ceil(size / 2**20)
    if mib > UINT32_MAX:
        raise invalid(f"{field} '{text}' is too large")
    return mib


_SIZE_RE = re.compile(r"^(\d+)(K|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SIZE_UNITS = {None: 1, "K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_size(text):
    """--overlay-size: bytes, or a whole number with K/M/G/T (powers of
    1000, as Kubernetes quantities and this driver's memory sizes) or
    Ki/Mi/Gi/Ti (powers of 1024). ValueError (with the reason) when it is
    none of these, or outside 16 MiB to 16 TiB."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a size (e.g. 4G, 4Gi, 512Mi, 1073741824)")
    size = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if not OVERLAY_MIN <= size <= OVERLAY_MAX:
        raise ValueError(f"'{text}' is outside 16Mi to 16Ti")
    return size


def pick_quantity(parse, what, request, limit):
    """The limit when set (the VM gets exactly that), else the request."""
    req = parse(f"resources.{what}_request", request) if request else None
    lim = parse(f"resources.{what}_limit", limit) if limit else None
    if req is not None and lim is not None and req > lim:
        raise invalid(f"resources.{what}_request '{request}' is more than {what}_limit '{limit}'")
    return lim if lim is not None else req


# ---- DriverSandbox -> vfiod CreateSandbox options ---------------------------

def image_file_name(image):
    """The file name of an image's prepared root disk in --image-dir: the
    reference with every byte outside [A-Za-z0-9._-] replaced by '_', and
    ".img"."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", image) + ".img"


def overlay_file_name(name):
    """The overlay disk's file name in --overlay-dir for vfiod name NAME
    (vfiod_name()'s result: [a-z0-9.-], no '/', so never a path)."""
    return name + OVERLAY_SUFFIX


def image_disk(image_dir, image):
    """The prepared root disk of IMAGE in IMAGE_DIR: its path, a regular
    file (lstat: vfiod opens no symbolic link). FAILED_PRECONDITION
    otherwise."""
    if not image_dir:
        raise precondition(f"image '{image}': this driver does not pull images and has no --image-dir of "
                           "prepared root disks")
    path = os.path.join(image_dir, image_file_name(image))
    try:
        st = os.lstat(path)
    except OSError as e:
        raise precondition(f"image '{image}': no prepared root disk {path} ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise precondition(f"image '{image}': {path} is not a regular file (vfiod opens no symbolic link)")
    return path


def vfiod_name(sandbox_id):
    """vfiod's name for the sandbox: the gateway's stable id, which must
    fit vfiod's name rule (a UUID does)."""
    if not sandbox_id:
        raise invalid("sandbox.id is required")
    if not NAME_RE.match(sandbox_id) or sandbox_id.startswith("sb-"):
        raise invalid(f"sandbox.id '{sandbox_id}' cannot name a vfiod sandbox: 1 to 63 bytes of [a-z0-9.-], "
                      "beginning and ending with [a-z0-9], not beginning with \"sb-\"")
    return sandbox_id


def _struct_devices(cfg):
    """driver_config {"devices": [BDF...]} (or upstream VM's spelling
    "gpu_device_ids"): the PCI functions to pass."""
    unknown = sorted(set(cfg.keys()) - set(DRIVER_CONFIG_KEYS))
    if unknown:
        raise invalid(f"driver_config: unknown key(s) {', '.join(unknown)} (known: {', '.join(DRIVER_CONFIG_KEYS)})")
    given = [k for k in DRIVER_CONFIG_KEYS if k in cfg]
    if len(given) > 1:
        raise invalid("driver_config: give devices or gpu_device_ids, not both")
    if not given:
        return None
    value = cfg[given[0]]
    # a Struct's list is a ListValue; anything else (a string, a number) is refused
    if not isinstance(value, struct_pb2.ListValue):
        raise invalid(f"driver_config.{given[0]} must be a list of PCI addresses")
    devices = list(value)
    if not devices or not all(isinstance(d, str) and d for d in devices):
        raise invalid(f"driver_config.{given[0]} must be a non-empty list of PCI addresses (strings)")
    return devices


def sandbox_options(sb, image_dir=None, default_image="", overlay=None):
    """vfiod CreateSandbox options for a DriverSandbox: {key: (D-Bus type,
    value)}. Raises DriverError for what does not fit. An image becomes
    `disks`: its prepared root disk read-only, plus OVERLAY (a path: the
    sandbox's overlay disk) as the writable layer; without OVERLAY vfiod
    puts the layer on a tmpfs."""
    opts = {"name": ("s", vfiod_name(sb.id))}
    spec = sb.spec
    tmpl = spec.template
    if tmpl.agent_socket_path:
        raise precondition("template.agent_socket_path is not supported: vfiod guests have no agent socket")
    if tmpl.HasField("platform_config") and len(tmpl.platform_config.fields):
        raise precondition("template.platform_config is not supported by the vfiod driver (use driver_config)")
    if spec.tty:
        raise precondition("tty is not supported: vfiod's guest-init runs the workload without a terminal")

    labels = {LABEL_DRIVER: DRIVER_LABEL_VALUE, LABEL_ID: sb.id}
    for key, value in (("name", sb.name), ("namespace", sb.namespace), ("workspace", sb.workspace)):
        if value:
            labels[LABEL_PREFIX + key] = value
    for key, value in tmpl.labels.items():
        if key.startswith(LABEL_PREFIX):
            raise invalid(f"template.labels: '{key}': the prefix '{LABEL_PREFIX}' is the driver's")
        labels[key] = value
    opts["labels"] = ("a{ss}", labels)

    env = dict(tmpl.environment)
    env.update(spec.environment)
    if spec.log_level:
        env["OPENSHELL_LOG_LEVEL"] = spec.log_level

    if spec.command:
        cmd = spec.command[0]
        if not cmd.startswith("/"):
            raise invalid(f"command[0] '{cmd}' must be an absolute path: vfiod's guest-init does not search PATH")
        opts["cmd"] = ("s", cmd)
        if len(spec.command) > 1:
            opts["args"] = ("as", list(spec.command[1:]))
    if spec.sandbox_token:
        # a file written by guest-init before the workload starts, 0600,
        # carried in vfiod's fw_cfg payload (never on a command line); the
        # workload finds it as upstream's supervisor does
        opts["files"] = ("aa{sv}", [{"path": ("s", TOKEN_PATH), "contents": ("ay", spec.sandbox_token.encode()),
                                     "mode": ("u", 0o600)}])
        if spec.command:
            env[TOKEN_FILE_ENV] = TOKEN_PATH
    if env:
        if not spec.command:
            raise invalid("environment without a command: vfiod hands the environment to the workload's "
                          "command only")
        opts["env"] = ("a{ss}", env)

    res = tmpl.resources
    vcpus = pick_quantity(parse_cpu, "cpu", res.cpu_request, res.cpu_limit)
    if vcpus is not None:
        opts["vcpus"] = ("u", vcpus)
    mib = pick_quantity(parse_memory, "memory", res.memory_request, res.memory_limit)
    if mib is not None:
        opts["memory_mib"] = ("u", mib)

    devices = None
    if tmpl.HasField("driver_config"):
        devices = _struct_devices(tmpl.driver_config)
    if devices is not None:
        opts["devices"] = ("as", devices)
    elif spec.HasField("resource_requirements") and spec.resource_requirements.HasField("gpu"):
        gpu = spec.resource_requirements.gpu
        count = gpu.count if gpu.HasField("count") else 1
        if count == 0:
            raise invalid("resource_requirements.gpu.count must be at least 1 (leave gpu out for no GPU)")
        opts["gpus"] = ("u", count)

    image = tmpl.image or default_image
    if image:
        # The image is shared by every sandbox made from it: read-only, with
        # a writable overlay per sandbox (vfiod opens both paths with the
        # driver's own rights).
        disks = [{"role": ("s", "root"), "path": ("s", image_disk(image_dir, image)), "read_only": ("b", True)}]
        if overlay:
            disks.append({"role": ("s", "overlay"), "path": ("s", overlay)})
        opts["disks"] = ("aa{sv}", disks)
    return opts


# ---- the per-sandbox overlay disks (--overlay-dir) -----------------------------

class Overlays:
    """DIR/<vfiod name>.ext4, one ext4 image per sandbox made from an image:
    the writable layer over the read-only root, kept across Stop/Start,
    removed with the sandbox. DIR comes from the driver's configuration and
    the file name from a validated vfiod name; every file is opened
    relative to DIR's descriptor, never through a symbolic link."""

    def __init__(self, directory, size, mkfs):
        self.dir = directory
        self.size = size
        self.mkfs = mkfs

    def path(self, name):
        return os.path.join(self.dir, overlay_file_name(name))

    def _dirfd(self):
        try:
            return os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise precondition(f"--overlay-dir {self.dir}: {e.strerror}") from None

    def existing(self, name):
        """The overlay's path when a regular file is there, else None
        (ValidateSandboxCreate: nothing is made). FAILED_PRECONDITION when
        something else has its name."""
        dfd = self._dirfd()
        try:
            st = os.stat(overlay_file_name(name), dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise precondition(f"overlay disk {self.path(name)}: {e.strerror}") from None
        finally:
            os.close(dfd)
        if not stat.S_ISREG(st.st_mode):
            raise precondition(f"overlay disk {self.path(name)} exists and is not a regular file")
        return self.path(name)

    def check_writable(self):
        """What a create will need, checked without making anything: DIR a
        directory the driver may create files in."""
        dfd = self._dirfd()
        os.close(dfd)
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise precondition(f"--overlay-dir {self.dir}: the driver (uid {os.geteuid()}) cannot create files "
                               "there")

    def ensure(self, name):
        """(path, created): the overlay disk of NAME, made when missing: a
        sparse file of the configured size, mode 0600, formatted by
        mkfs.ext4 under a temporary name (O_CREAT|O_EXCL|O_NOFOLLOW) and
        linked into place only when complete, so a concurrent create of the
        same name never sees half a file and an existing overlay is never
        formatted again."""
        final = overlay_file_name(name)
        if self.existing(name):
            return self.path(name), False
        dfd = self._dirfd()
        tmp = f".{final}.{secrets.token_hex(6)}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dfd)
            except OSError as e:
                raise precondition(f"overlay disk {self.path(name)}: cannot create {tmp} in {self.dir}: "
                                   f"{e.strerror}") from None
            try:
                os.fchmod(fd, 0o600)
                os.ftruncate(fd, self.size)
                # mkfs.ext4 formats exactly the file opened above (its /proc
                # link in the child), not whatever the path names later.
                try:
                    r = subprocess.run([self.mkfs, "-q", "-F", f"/proc/self/fd/{fd}"], pass_fds=(fd,),
                                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                       timeout=MKFS_TIMEOUT)
                except (OSError, subprocess.TimeoutExpired) as e:
                    raise DriverError(grpc.StatusCode.INTERNAL, f"overlay disk {self.path(name)}: {self.mkfs}: "
                                      f"{e}") from None
                if r.returncode != 0:
                    raise DriverError(grpc.StatusCode.INTERNAL,
                                      f"overlay disk {self.path(name)}: {self.mkfs} exited {r.returncode}: "
                                      f"{(r.stderr or r.stdout).strip()[:400]}")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, final, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                created = True
            except FileExistsError:
                created = False  # a concurrent create of the same name was first: use its overlay
            except OSError as e:
                raise precondition(f"overlay disk {self.path(name)}: {e.strerror}") from None
            log.info("overlay disk %s: %s", self.path(name),
                     f"made ({self.size} bytes, ext4)" if created else "made by a concurrent create")
            return self.path(name), created
        finally:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass  # never made (the error above says why), or linked and gone
            os.close(dfd)

    def remove(self, name):
        """Removes NAME's overlay disk (a regular file; a symbolic link or
        anything else of that name is left alone). True when one was
        removed."""
        dfd = self._dirfd()
        try:
            st = os.stat(overlay_file_name(name), dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                log.warning("overlay disk %s is not a regular file: left alone", self.path(name))
                return False
            os.unlink(overlay_file_name(name), dir_fd=dfd)
            log.info("overlay disk %s removed", self.path(name))
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            log.warning("removing the overlay disk %s: %s", self.path(name), e.strerror)
            return False
        finally:
            os.close(dfd)


# ---- vfiod sandbox -> DriverSandbox -----------------------------------------

def ready_condition(status, reason, message):
    return pb.DriverCondition(type="Ready", status=status, reason=reason, message=message)


def sandbox_conditions(v, stop_kind=None):
    """(conditions, deleting) for a vfiod sandbox (GetSandbox's keys).
    STOP_KIND says why a "stopping" sandbox stops (the reason of vfiod's
    last "stopping" event: "delete", "stop", "qemu-exited"; None: not
    known): only a delete is `deleting`."""
    state = v.get("state", "")
    if state == "creating":
        return [ready_condition("False", "Starting", "vfiod is creating the sandbox")], False
    if state == "running":
        if v.get("ready"):
            return [ready_condition("True", "Ready", "guest-init reported ready")], False
        return [ready_condition("False", "Starting", "the VM runs; guest-init has not reported ready yet")], False
    if state == "stopping":
        if stop_kind == "delete":
            return [ready_condition("False", "Deleting", "vfiod is deleting the sandbox")], True
        # Not False: the gateway takes a False Ready with a reason outside
        # its few transient ones (Starting, ...) for an error, and would turn
        # its own Stopping phase into Error while StopSandbox runs.
        what = {"stop": "StopSandbox is stopping the VM (its disks are kept)",
                "qemu-exited": "the VM has exited; vfiod is giving its devices back"}
        return [ready_condition("Unknown", "Stopping", what.get(stop_kind, "vfiod is stopping the VM"))], False
    if state == "exited":
        if "workload_signal" in v:
            msg = f"the workload was killed by signal {v['workload_signal']}"
        else:
            msg = f"the workload exited with status {v.get('workload_exit_status', '?')}"
        return [ready_condition("False", "WorkloadExited", msg)], False
    if state == "failed":
        if v.get("failure_reason"):
            msg = f"guest set-up failed: {v['failure_reason']}"
        else:
            msg = f"QEMU failed (exit status {v.get('exit_status', '?')})"
        return [ready_condition("False", "Failed", msg)], False
    if state == "stopped":
        # Suspended True is what the gateway reads as its Stopped phase
        # (upstream's Kubernetes driver reports it so); Ready says why it is
        # not ready.
        msg = "the VM is stopped; its disks are kept and StartSandbox starts it again"
        return [ready_condition("False", "Stopped", msg),
                pb.DriverCondition(type="Suspended", status="True", reason="Stopped", message=msg)], False
    return [ready_condition("Unknown", "UnknownState", f"vfiod state '{state}'")], False


def is_ours(v):
    return v.get("labels", {}).get(LABEL_DRIVER) == DRIVER_LABEL_VALUE


def driver_sandbox(v, stop_kind=None):
    """The DriverSandbox observed for a vfiod sandbox (no spec); STOP_KIND
    as sandbox_conditions()."""
    labels = v.get("labels", {})
    conditions, deleting = sandbox_conditions(v, stop_kind)
    name = labels.get(LABEL_NAME, "")
    return pb.DriverSandbox(
        id=labels.get(LABEL_ID, v.get("name", "")), name=name,
        namespace=labels.get(LABEL_NAMESPACE, ""), workspace=labels.get(LABEL_WORKSPACE, ""),
        status=pb.DriverSandboxStatus(sandbox_name=name, instance_id=v.get("id", ""),
                                      conditions=conditions, deleting=deleting))


# ---- vfiod errors -> gRPC status --------------------------------------------

_ERROR_CODES = {
    "InvalidArgument": grpc.StatusCode.INVALID_ARGUMENT,
    "NotFound": grpc.StatusCode.NOT_FOUND,
    "AlreadyExists": grpc.StatusCode.ALREADY_EXISTS,
    "PermissionDenied": grpc.StatusCode.PERMISSION_DENIED,
    "NotAllowed": grpc.StatusCode.PERMISSION_DENIED,
    "Busy": grpc.StatusCode.UNAVAILABLE,
    "LimitExceeded": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "TimedOut": grpc.StatusCode.DEADLINE_EXCEEDED,
    "Stuck": grpc.StatusCode.INTERNAL,
    "Corrupt": grpc.StatusCode.INTERNAL,
    "Failed": grpc.StatusCode.INTERNAL,
}


def map_vfiod_error(name, message):
    """A D-Bus error (its name, e.g. org.vfiod.Error.NotFound) as a
    DriverError; an error not vfiod's (the connection) is UNAVAILABLE."""
    prefix = f"GDBus.Error:{name}: "
    if name and message.startswith(prefix):  # GLib's remote-error wrapping
        message = message[len(prefix):]
    if name and name.startswith("org.vfiod.Error."):
        short = name[len("org.vfiod.Error."):]
        return DriverError(_ERROR_CODES.get(short, grpc.StatusCode.INTERNAL), f"vfiod: {short}: {message}")
    return DriverError(grpc.StatusCode.UNAVAILABLE, f"vfiod unreachable: {message}")


# ---- vfiod over D-Bus ---------------------------------------------------------

class Vfiod:
    """One peer-to-peer D-Bus connection to vfiod (made again after it
    closes), its signals fed to a callback on the GLib main loop's thread."""

    def __init__(self, address_path, on_signal, timeout_ms):
        from gi.repository import Gio, GLib  # imported here: the unit test needs no D-Bus
        self.Gio, self.GLib = Gio, GLib
        self.path = address_path
        self.on_signal = on_signal
        self.timeout_ms = timeout_ms
        self.lock = threading.Lock()
        self.conn = None
        self.loop = GLib.MainLoop()
        self.thread = threading.Thread(target=self.loop.run, name="glib", daemon=True)
        self.thread.start()

    def _connect(self):
        with self.lock:
            if self.conn is not None and not self.conn.is_closed():
                return self.conn
            Gio = self.Gio
            conn = Gio.DBusConnection.new_for_address_sync(
                "unix:path=" + self.path, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
            conn.set_exit_on_close(False)
            for sig in ("SandboxEvent", "SandboxRemoved", "SandboxStateChanged"):
                conn.signal_subscribe(None, MANAGER_IFACE, sig, MANAGER_PATH, None,
                                      Gio.DBusSignalFlags.NONE, self._signal)
            conn.connect("closed", self._closed)
            self.conn = conn
            log.info("connected to vfiod at %s", self.path)
            return conn

    def _signal(self, conn, sender, path, iface, name, params):
        self.on_signal(name, params.unpack())

    def _closed(self, conn, remote_peer_vanished, error):
        log.warning("the connection to vfiod closed%s", f": {error.message}" if error else "")
        self.on_signal("closed", ())

    def connect(self):
        try:
            self._connect()
        except self.GLib.Error as e:
            raise map_vfiod_error(None, e.message) from None

    def call(self, method, args=None, reply="(a{sv})", timeout_ms=None):
        GLib, Gio = self.GLib, self.Gio
        try:
            conn = self._connect()
            res = conn.call_sync(None, MANAGER_PATH, MANAGER_IFACE, method, args, GLib.VariantType(reply),
                                 Gio.DBusCallFlags.NONE, timeout_ms or self.timeout_ms, None)
        except GLib.Error as e:
            name = Gio.DBusError.get_remote_error(e)
            raise map_vfiod_error(name, e.message) from None
        return res.unpack()

    def version(self):
        GLib, Gio = self.GLib, self.Gio
        try:
            res = self._connect().call_sync(None, MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get",
                                            GLib.Variant("(ss)", (MANAGER_IFACE, "Version")),
                                            GLib.VariantType("(v)"), Gio.DBusCallFlags.NONE, self.timeout_ms, None)
        except GLib.Error as e:
            raise map_vfiod_error(Gio.DBusError.get_remote_error(e), e.message) from None
        return res.unpack()[0]

    def options_variant(self, opts):
        GLib = self.GLib

        def value(t, v):
            if t == "aa{sv}":  # a list of dictionaries of (type, value)
                return GLib.Variant(t, [{k: value(*kv) for k, kv in e.items()} for e in v])
            return GLib.Variant(t, v)
        return GLib.Variant("(a{sv})", ({k: value(t, v) for k, (t, v) in opts.items()},))

    def get(self, ident):
        return self.call("GetSandbox", self.GLib.Variant("(s)", (ident,)))[0]

    def list(self):
        return self.call("ListSandboxes", None, "(aa{sv})")[0]

    def close(self):
        with self.lock:
            if self.conn is not None:
                try:
                    self.conn.close_sync(None)
                except self.GLib.Error:
                    pass
                self.conn = None
        self.loop.quit()


# ---- watch streams --------------------------------------------------------------

class _Overflow:
    pass


class Watchers:
    """Fans vfiod's signals out to the open WatchSandboxes streams: the
    GLib thread only queues the raw signal; one dispatcher thread turns it
    into events (one GetSandbox per signal, not per stream) and puts them
    on every stream's bounded queue. A stream that falls WATCH_QUEUE
    events behind is ended (RESOURCE_EXHAUSTED; the gateway watches again)."""

    def __init__(self):
        self.raw = queue.Queue(maxsize=4096)
        self.lock = threading.Lock()
        self.streams = set()
        self.known = {}  # vfiod id -> the gateway's sandbox id, for removals
        # vfiod id -> why it is stopping ("delete", "stop", "qemu-exited"):
        # the reason of vfiod's last "stopping" event, or set by this
        # driver's own StopSandbox/DeleteSandbox before it calls vfiod
        # (GetSandbox says "stopping" only). Gone once it stopped.
        self.stop_kinds = {}
        self.vfiod = None
        self.thread = threading.Thread(target=self._dispatch, name="watch", daemon=True)

    def start(self, vfiod):
        self.vfiod = vfiod
        self.thread.start()

    def on_signal(self, name, args):
        try:
            self.raw.put_nowait((name, args))
        except queue.Full:
            log.warning("signal queue full: %s dropped", name)

    def open(self):
        q = queue.Queue(maxsize=WATCH_QUEUE)
        with self.lock:
            self.streams.add(q)
        return q

    def close(self, q):
        with self.lock:
            self.streams.discard(q)

    def count(self):
        with self.lock:
            return len(self.streams)

    def set_stop_kind(self, vid, kind):
        with self.lock:
            if kind is None:
                self.stop_kinds.pop(vid, None)
            else:
                self.stop_kinds[vid] = kind

    def sandbox(self, v):
        """driver_sandbox(v) with what is known of why it stops."""
        with self.lock:
            kind = self.stop_kinds.get(v.get("id", ""))
        return driver_sandbox(v, kind)

    def remember(self, v):
        if is_ours(v):
            self.known[v.get("id", "")] = driver_sandbox(v).id

    def _fan_out(self, events):
        with self.lock:
            streams = list(self.streams)
        for q in streams:
            for ev in events:
                try:
                    q.put_nowait(ev)
                except queue.Full:
                    with self.lock:
                        self.streams.discard(q)
                    try:
                        while True:
                            q.get_nowait()
                    except queue.Empty:
                        pass
                    q.put_nowait(_Overflow())
                    break

    def _snapshot(self, vid):
        try:
            v = self.vfiod.get(vid)
        except DriverError:
            return None
        if not is_ours(v):
            return None
        self.remember(v)
        return v

    def _dispatch(self):
        while True:
            name, args = self.raw.get()
            if name == "stop":
                return
            events = []
            try:
                events = self._events(name, args)
            except Exception:  # noqa: BLE001 - a bad signal must not end the dispatcher
                log.exception("turning %s into watch events", name)
            if events:
                self._fan_out(events)

    def _events(self, name, args):
        if name == "closed":
            return [DriverError(grpc.StatusCode.UNAVAILABLE, "the connection to vfiod closed")]
        if name == "SandboxEvent":
            vid, stage, usec, reason, message = args
            if stage == "stopping":
                self.set_stop_kind(vid, reason)
            elif stage in ("stopped", "failed", "create-started", "vm-started", "removed"):
                self.set_stop_kind(vid, None)
            v = self._snapshot(vid)
            if v is None and vid not in self.known:
                return []
            gid = self.known.get(vid) or driver_sandbox(v).id
            ev = pb.DriverPlatformEvent(timestamp_ms=usec // 1000, source="vfiod",
                                        type="Warning" if stage == "failed" else "Normal", reason=stage,
                                        message=message, metadata={"vfiod_id": vid, "vfiod_reason": reason})
            out = [pb.WatchSandboxesEvent(platform_event=pb.WatchSandboxesPlatformEvent(sandbox_id=gid, event=ev))]
            if v is not None:
                out.append(pb.WatchSandboxesEvent(sandbox=pb.WatchSandboxesSandboxEvent(sandbox=self.sandbox(v))))
            return out
        if name == "SandboxStateChanged":
            v = self._snapshot(args[0])
            return [] if v is None else [
                pb.WatchSandboxesEvent(sandbox=pb.WatchSandboxesSandboxEvent(sandbox=self.sandbox(v)))]
        if name == "SandboxRemoved":
            self.set_stop_kind(args[0], None)
            gid = self.known.pop(args[0], None)
            return [] if gid is None else [
                pb.WatchSandboxesEvent(deleted=pb.WatchSandboxesDeletedEvent(sandbox_id=gid))]
        return []

    def stop(self):
        self.raw.put(("stop", ()))
        with self.lock:
            streams = list(self.streams)
        for q in streams:
            try:
                q.put_nowait(None)
            except queue.Full:
                pass


# ---- the service ---------------------------------------------------------------

class Driver:
    def __init__(self, vfiod, watchers, image_dir=None, default_image="", gateway_bind_address="", overlays=None):
        self.vfiod = vfiod
        self.watchers = watchers
        self.image_dir = image_dir
        self.default_image = default_image
        self.gateway_bind_address = gateway_bind_address
        self.overlays = overlays  # Overlays, or None: a tmpfs overlay

    # -- helpers
    def _resolve(self, sandbox_id, sandbox_name):
        """The vfiod sandbox for a (gateway id, gateway name) pair, this
        driver's only; NOT_FOUND otherwise."""
        if not sandbox_id and not sandbox_name:
            raise invalid("sandbox_id or sandbox_name is required")
        if sandbox_id:
            try:
                v = self.vfiod.get(vfiod_name(sandbox_id))
            except DriverError as e:
                if e.code == grpc.StatusCode.NOT_FOUND:
                    raise DriverError(grpc.StatusCode.NOT_FOUND, f"no sandbox '{sandbox_id}'") from None
                raise
            if not is_ours(v):
                raise DriverError(grpc.StatusCode.NOT_FOUND, f"no sandbox '{sandbox_id}' of this driver")
            if sandbox_name and v.get("labels", {}).get(LABEL_NAME, "") != sandbox_name:
                raise precondition(f"sandbox '{sandbox_id}' is not named '{sandbox_name}'")
        else:
            found = [v for v in self.vfiod.list()
                     if is_ours(v) and v.get("labels", {}).get(LABEL_NAME) == sandbox_name]
            if not found:
                raise DriverError(grpc.StatusCode.NOT_FOUND, f"no sandbox named '{sandbox_name}'")
            if len(found) > 1:
                raise precondition(f"{len(found)} sandboxes are named '{sandbox_name}': give sandbox_id")
            v = found[0]
        self.watchers.remember(v)
        return v

    def _options(self, request, overlay=None):
        if not request.HasField("sandbox"):
            raise invalid("sandbox is required")
        return sandbox_options(request.sandbox, self.image_dir, self.default_image, overlay)

    # -- RPCs
    def GetCapabilities(self, request, context):
        version = self.vfiod.version()
        return pb.GetCapabilitiesResponse(driver_name=DRIVER_NAME,
                                          driver_version=f"{VERSION} (vfiod {version})",
                                          default_image=self.default_image, gateway_manages_lifecycle=False)

    def GetGatewayListenerRequirements(self, request, context):
        reqs = []
        if self.gateway_bind_address:
            reqs.append(pb.GatewayListenerRequirement(
                reason="vfiod guests reach the gateway at this host address (--gateway-bind-address)",
                exact_bind_address=self.gateway_bind_address))
        return pb.GetGatewayListenerRequirementsResponse(requirements=reqs)

    def ValidateSandboxCreate(self, request, context):
        # Validation makes nothing, so no overlay disk: vfiod's
        # ValidateSandbox opens every disk path as the create would, and one
        # that is not there yet would fail. An overlay already there (this
        # sandbox's, from an earlier create) is given, so that vfiod compares
        # the spec as the create will; else the spec is checked with the
        # tmpfs overlay and the driver checks that it can make the file.
        opts = self._options(request)
        if "disks" in opts and self.overlays is not None:
            overlay = self.overlays.existing(opts["name"][1])
            if overlay:
                opts = self._options(request, overlay)
            else:
                self.overlays.check_writable()
        self.vfiod.call("ValidateSandbox", self.vfiod.options_variant(opts))
        return pb.ValidateSandboxCreateResponse()

    def CreateSandbox(self, request, context):
        opts = self._options(request)  # every refusal of the spec before any file is made
        created = False
        if "disks" in opts and self.overlays is not None:
            overlay, created = self.overlays.ensure(opts["name"][1])
            opts = self._options(request, overlay)
        try:
            v = self.vfiod.call("CreateSandbox", self.vfiod.options_variant(opts))[0]
        except DriverError:
            # an overlay this call made for a sandbox vfiod does not have
            # goes again (a concurrent create of the name may have made it)
            if created and not self._vfiod_has(opts["name"][1]):
                self.overlays.remove(opts["name"][1])
            raise
        self.watchers.remember(v)
        log.info("sandbox %s: vfiod %s, state %s", request.sandbox.id, v.get("id"), v.get("state"))
        return pb.CreateSandboxResponse()

    def _vfiod_has(self, name):
        """Whether vfiod knows a sandbox of that name (True when it cannot
        say: nothing is removed on a guess)."""
        try:
            self.vfiod.get(name)
            return True
        except DriverError as e:
            return e.code != grpc.StatusCode.NOT_FOUND

    def GetSandbox(self, request, context):
        v = self._resolve(request.sandbox_id, request.sandbox_name)
        return pb.GetSandboxResponse(sandbox=self.watchers.sandbox(v))

    def ListSandboxes(self, request, context):
        out = []
        for v in self.vfiod.list():
            if is_ours(v):
                self.watchers.remember(v)
                out.append(self.watchers.sandbox(v))
        return pb.ListSandboxesResponse(sandboxes=out)

    def StopSandbox(self, request, context):
        # vfiod's StopSandbox: the VM stops, devices and network go back,
        # the sandbox and its disks stay (state "stopped"). It returns once
        # all that is done, and at once for a sandbox that does not run.
        v = self._resolve(request.sandbox_id, request.sandbox_name)
        self.watchers.set_stop_kind(v["id"], "stop")
        try:
            self.vfiod.call("StopSandbox", self.vfiod.GLib.Variant("(s)", (v["id"],)))
        finally:
            self.watchers.set_stop_kind(v["id"], None)
        log.info("sandbox %s: vfiod %s stopped", driver_sandbox(v).id, v["id"])
        return pb.StopSandboxResponse()

    def StartSandbox(self, request, context):
        # vfiod's StartSandbox: the same sandbox launched again (same disks,
        # files, workload; devices re-selected). A sandbox being created or
        # started already is what was asked for.
        v = self._resolve(request.sandbox_id, request.sandbox_name)
        if v.get("state") == "creating":
            return pb.StartSandboxResponse()
        r = self.vfiod.call("StartSandbox", self.vfiod.GLib.Variant("(s)", (v["id"],)))[0]
        self.watchers.remember(r)
        log.info("sandbox %s: vfiod %s, state %s", driver_sandbox(v).id, v["id"], r.get("state"))
        return pb.StartSandboxResponse()

    def DeleteSandbox(self, request, context):
        try:
            v = self._resolve(request.sandbox_id, request.sandbox_name)
        except DriverError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                self._remove_overlay_of_gone(request.sandbox_id)
                return pb.DeleteSandboxResponse(deleted=False)
            raise
        self.watchers.set_stop_kind(v["id"], "delete")
        try:
            self.vfiod.call("DeleteSandbox", self.vfiod.GLib.Variant("(s)", (v["id"],)), "()")
        except DriverError as e:
            self.watchers.set_stop_kind(v["id"], None)
            if e.code == grpc.StatusCode.NOT_FOUND:
                self._remove_overlay_of_gone(v.get("name", ""))
                return pb.DeleteSandboxResponse(deleted=False)
            raise
        self.watchers.set_stop_kind(v["id"], None)
        log.info("sandbox %s: vfiod %s deleted", driver_sandbox(v).id, v["id"])
        if self.overlays is not None and v.get("name"):
            self.overlays.remove(v["name"])  # after vfiod's delete: nothing uses it any more
        return pb.DeleteSandboxResponse(deleted=True)

    def _remove_overlay_of_gone(self, name):
        """The overlay disk of a sandbox vfiod does not know (deleted
        outside the driver, or a create that failed late): removed, so
        that DeleteSandbox leaves nothing behind. Not when vfiod has a
        sandbox of that name (another owner's) or cannot be asked."""
        if self.overlays is None or not name or not NAME_RE.match(name) or self._vfiod_has(name):
            return
        self.overlays.remove(name)

    def WatchSandboxes(self, request, context):
        self.vfiod.connect()
        q = self.watchers.open()  # before the snapshot: nothing falls in between
        log.info("watch stream opened (%d open)", self.watchers.count())
        try:
            for v in self.vfiod.list():
                if is_ours(v):
                    self.watchers.remember(v)
                    snap = pb.WatchSandboxesSandboxEvent(sandbox=self.watchers.sandbox(v))
                    yield pb.WatchSandboxesEvent(sandbox=snap)
            while context.is_active():
                try:
                    ev = q.get(timeout=1)
                except queue.Empty:
                    continue
                if ev is None:
                    raise DriverError(grpc.StatusCode.UNAVAILABLE, "the driver is shutting down")
                if isinstance(ev, _Overflow):
                    raise DriverError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      f"this watch fell {WATCH_QUEUE} events behind; watch again")
                if isinstance(ev, DriverError):
                    raise ev
                yield ev
        finally:
            self.watchers.close(q)
            log.info("watch stream closed (%d open)", self.watchers.count())

    def EnsureWorkspace(self, request, context):
        # vfiod has no tenancy boundary to make: a workspace is only a label
        # on each sandbox (openshell/workspace).
        return pb.EnsureWorkspaceResponse()

    def DeleteWorkspace(self, request, context):
        # Nothing is kept per workspace; its sandboxes are deleted one by
        # one by the gateway (DeleteSandbox).
        return pb.DeleteWorkspaceResponse()


RPCS = {
    # name: (request type, response type, server streaming)
    "GetCapabilities": (pb.GetCapabilitiesRequest, pb.GetCapabilitiesResponse, False),
    "GetGatewayListenerRequirements": (pb.GetGatewayListenerRequirementsRequest,
                                       pb.GetGatewayListenerRequirementsResponse, False),
    "ValidateSandboxCreate": (pb.ValidateSandboxCreateRequest, pb.ValidateSandboxCreateResponse, False),
    "GetSandbox": (pb.GetSandboxRequest, pb.GetSandboxResponse, False),
    "ListSandboxes": (pb.ListSandboxesRequest, pb.ListSandboxesResponse, False),
    "CreateSandbox": (pb.CreateSandboxRequest, pb.CreateSandboxResponse, False),
    "StopSandbox": (pb.StopSandboxRequest, pb.StopSandboxResponse, False),
    "StartSandbox": (pb.StartSandboxRequest, pb.StartSandboxResponse, False),
    "DeleteSandbox": (pb.DeleteSandboxRequest, pb.DeleteSandboxResponse, False),
    "WatchSandboxes": (pb.WatchSandboxesRequest, pb.WatchSandboxesEvent, True),
    "EnsureWorkspace": (pb.EnsureWorkspaceRequest, pb.EnsureWorkspaceResponse, False),
    "DeleteWorkspace": (pb.DeleteWorkspaceRequest, pb.DeleteWorkspaceResponse, False),
}
SERVICE = "openshell.compute.v1.ComputeDriver"


def _unary(name, fn):
    def handler(request, context):
        try:
            return fn(request, context)
        except DriverError as e:
            log.info("%s: %s: %s", name, e.code.name, e.message)
            context.abort(e.code, e.message)
    return handler


def _stream(name, fn):
    def handler(request, context):
        try:
            yield from fn(request, context)
        except DriverError as e:
            log.info("%s: %s: %s", name, e.code.name, e.message)
            context.abort(e.code, e.message)
    return handler


def generic_handler(driver):
    handlers = {}
    for name, (req, resp, streaming) in RPCS.items():
        fn = getattr(driver, name)
        if streaming:
            handlers[name] = grpc.unary_stream_rpc_method_handler(
                _stream(name, fn), request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
        else:
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                _unary(name, fn), request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


# ---- the socket: created safely, peers checked by SO_PEERCRED -----------------

def prepare_socket_path(path):
    """Refuses a path that exists and is not a stale socket (one nobody
    listens on, which is removed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise RuntimeError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        log.info("removing the stale socket %s", path)
        os.unlink(path)
        return
    except OSError as e:
        raise RuntimeError(f"{path} exists and cannot be probed: {e.strerror}") from None
    finally:
        probe.close()
    raise RuntimeError(f"{path} is in use: another process listens on it")


class PeerPolicy:
    """Who may use the driver: root, the driver's own uid, --allowed-uid,
    and members of --allowed-group (primary or supplementary)."""

    def __init__(self, uids=(), group=None):
        self.uids = {0, os.geteuid(), *uids}
        self.group = group

    def allows(self, uid, gid):
        if uid in self.uids:
            return True
        if self.group is None:
            return False
        if gid == self.group.gr_gid:
            return True
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            return False
        return user in self.group.gr_mem


def peer_creds(sock):
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)  # pid, uid, gid


class CheckedListener:
    """The public socket. gRPC's Python server gives a handler no access to
    the peer's credentials, so the driver accepts connections itself, reads
    SO_PEERCRED, closes those the policy refuses, and relays the others,
    byte for byte, to the gRPC server listening on a socket in a private
    directory (mode 0700) only the driver's uid can reach."""

    def __init__(self, path, mode, group, policy, backend, max_conns):
        self.path = path
        self.policy = policy
        self.backend = backend
        self.slots = threading.BoundedSemaphore(max_conns)
        prepare_socket_path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        self.bound_ino = os.lstat(path).st_ino
        if group is not None:
            os.chown(path, -1, group.gr_gid)
        os.chmod(path, mode)
        self.sock.listen(64)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, name="accept", daemon=True)

    def start(self):
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self.stopping:
                    return
                continue
            try:
                pid, uid, gid = peer_creds(conn)
            except OSError as e:
                log.warning("peer credentials: %s", e.strerror)
                conn.close()
                continue
            if not self.policy.allows(uid, gid):
                log.warning("refused a connection from pid %d uid %d gid %d: not allowed", pid, uid, gid)
                conn.close()
                continue
            if not self.slots.acquire(blocking=False):
                log.warning("refused a connection from pid %d uid %d: too many connections", pid, uid)
                conn.close()
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client):
        try:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                up.connect(self.backend)
            except OSError as e:
                log.warning("the gRPC server is unreachable: %s", e.strerror)
                up.close()
                return
            t = threading.Thread(target=_pump, args=(up, client), daemon=True)
            t.start()
            _pump(client, up)
            t.join()
            up.close()
        finally:
            client.close()
            self.slots.release()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:  # only our own socket, not one another process put there since
            if os.lstat(self.path).st_ino == self.bound_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            s.shutdown(how)
        except OSError:
            pass


# ---- main ------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="vfiod-openshell-driver",
        description="Serve OpenShell's compute-driver gRPC contract (openshell.compute.v1) on a Unix "
                    "socket, on top of vfiod's D-Bus API.")
    p.add_argument("--socket", required=True, help="the Unix socket to serve on (created; must not exist, "
                   "except as a stale socket)")
    p.add_argument("--vfiod-socket", default="/run/vfiod/vfiod.sock",
                   help="vfiod's API socket (default %(default)s)")
    p.add_argument("--socket-mode", default="0660", help="mode of --socket (octal, default %(default)s)")
    p.add_argument("--allowed-uid", action="append", default=[], metavar="UID|USER",
                   help="a peer uid allowed besides root and the driver's own (repeatable)")
    p.add_argument("--allowed-group", metavar="GROUP",
                   help="members of GROUP are allowed; the socket gets this group")
    p.add_argument("--image-dir", help="directory of prepared root disks: image REF is "
                   "DIR/<REF, bytes outside [A-Za-z0-9._-] as '_'>.img (without it, an image is refused)")
    p.add_argument("--default-image", default="", help="the image for templates that name none")
    p.add_argument("--overlay-dir", metavar="DIR",
                   help="directory of the sandboxes' overlay disks: a sandbox made from an image gets "
                   "DIR/<its id>.ext4 (made at CreateSandbox, kept across Stop/Start, removed at DeleteSandbox) "
                   "as the writable layer over the read-only image; without it the layer is a tmpfs, lost at a stop")
    p.add_argument("--overlay-size", default="4G", metavar="SIZE",
                   help="size of a new overlay disk (sparse): bytes or K/M/G/T (powers of 1000), Ki/Mi/Gi/Ti "
                   "(powers of 1024); default %(default)s")
    p.add_argument("--gateway-bind-address", default="",
                   help="IP:PORT the gateway must listen on for the guests (GetGatewayListenerRequirements)")
    p.add_argument("--call-timeout", type=int, default=300, metavar="SECONDS",
                   help="timeout of a call to vfiod (default %(default)s)")
    p.add_argument("--max-connections", type=int, default=64, help="concurrent clients (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="log every connection and call")
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    args = p.parse_args(argv)
    try:
        args.socket_mode = int(args.socket_mode, 8)
        if args.socket_mode & ~0o777:
            raise ValueError
    except ValueError:
        p.error(f"--socket-mode '{args.socket_mode}' is not an octal mode")
    uids = []
    for u in args.allowed_uid:
        try:
            uids.append(int(u) if u.isdigit() else pwd.getpwnam(u).pw_uid)
        except KeyError:
            p.error(f"--allowed-uid: no user '{u}'")
    args.allowed_uid = uids
    if args.allowed_group:
        try:
            args.allowed_group = (grp.getgrgid(int(args.allowed_group)) if args.allowed_group.isdigit()
                                  else grp.getgrnam(args.allowed_group))
        except KeyError:
            p.error(f"--allowed-group: no group '{args.allowed_group}'")
    for opt in ("image_dir", "overlay_dir"):
        d = getattr(args, opt)
        if d is None:
            continue
        flag = "--" + opt.replace("_", "-")
        if ".." in d.split("/"):
            p.error(f"{flag} {d}: no '..' component, please")
        if not os.path.isdir(d):
            p.error(f"{flag} {d}: not a directory")
        setattr(args, opt, os.path.abspath(d))
    try:
        args.overlay_size = parse_size(args.overlay_size)
    except ValueError as e:
        p.error(f"--overlay-size: {e}")
    args.mkfs = None
    if args.overlay_dir:
        args.mkfs = shutil.which("mkfs.ext4", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if not args.mkfs:
            p.error("--overlay-dir needs mkfs.ext4 (Debian: e2fsprogs), which is not in PATH, /usr/sbin or /sbin")
    if args.call_timeout <= 0 or args.max_connections <= 0:
        p.error("--call-timeout and --max-connections must be positive")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="vfiod-openshell-driver: %(levelname)s: %(message)s")
    import gi
    gi.require_version("Gio", "2.0")

    watchers = Watchers()
    vfiod = Vfiod(args.vfiod_socket, watchers.on_signal, args.call_timeout * 1000)
    watchers.start(vfiod)
    try:
        vfiod.connect()
    except DriverError as e:
        log.warning("%s (will try again on each call)", e.message)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    sockdir = os.path.dirname(os.path.abspath(args.socket))
    try:
        private = tempfile.mkdtemp(prefix=".vfiod-openshell-driver.", dir=sockdir)
    except OSError as e:
        log.error("cannot make the private directory of the gRPC server in %s: %s", sockdir, e.strerror)
        watchers.stop()
        vfiod.close()
        return 1
    backend = os.path.join(private, "grpc.sock")
    overlays = Overlays(args.overlay_dir, args.overlay_size, args.mkfs) if args.overlay_dir else None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.max_connections + 8, thread_name_prefix="rpc"),
                         handlers=[generic_handler(Driver(vfiod, watchers, args.image_dir, args.default_image,
                                                          args.gateway_bind_address, overlays))],
                         maximum_concurrent_rpcs=args.max_connections * 4)
    listener = None
    try:
        if server.add_insecure_port("unix:" + backend) == 0:
            raise RuntimeError(f"gRPC cannot listen on {backend}")
        server.start()
        listener = CheckedListener(args.socket, args.socket_mode, args.allowed_group,
                                   PeerPolicy(args.allowed_uid, args.allowed_group), backend, args.max_connections)
        listener.start()
    except (RuntimeError, OSError) as e:
        log.error("%s", e.strerror if isinstance(e, OSError) and e.strerror else e)
        server.stop(0)
        _rm_private(private)
        vfiod.close()
        return 1
    log.info("serving openshell.compute.v1 on %s (vfiod: %s)", args.socket, args.vfiod_socket)
    while not stop.wait(3600):
        pass
    log.info("stopping")
    listener.close()
    watchers.stop()
    server.stop(2).wait()
    _rm_private(private)
    vfiod.close()
    return 0


def _rm_private(private):
    for p in (os.path.join(private, "grpc.sock"), private):
        try:
            (os.rmdir if p == private else os.unlink)(p)
        except OSError as e:
            if e.errno != errno.ENOENT:
                log.warning("removing %s: %s", p, e.strerror)
