#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiod benchmarks (issue 7). Started by bench/run, which installs and builds
what is needed first; see bench/README.md.

    bench.py --source DIR --build DIR [--out FILE] [--repeats N] [--only 1,2,..]

Groups of figures, each the median of repeated runs; variants that are
compared run side by side in the same run, interleaved (A,B,B,A,...) so that
a ratio holds on a noisy machine:

 1 sandbox create-to-ready: vfiod vs the same QEMU command line run by hand
 2 guest boot, kernel start to ready: guest-init vs a busybox shell init
 3 bind + release in the lab VM: vfiod vs a shell script vs virsh
 4 vfiod RSS: idle, and per sandbox with 16 and 64 (stand-in QEMU)
 5 start-up reconciliation: 1000 fake devices, a journal of 500 sandboxes
 6 API latency (ListSandboxes, GetCapabilities), 64 sandboxes, a bind hung
 7 a GPU-shaped sandbox in the lab VM (q35, the stand-in group, TAP, vsock):
   vfioctl sandbox create --wait vs the same by hand, with a breakdown
 8 driver layer build; 9 scale (start-up broken down, create/delete rate)
10 a real GPU host (--gpu BDF only): create-to-CUDA-ready, guest RAM pinning
   with 4K / 2M / 1G pages; without --gpu listed as needing a GPU host

Prints a table (figure, value, n, conditions) and writes JSON (--out).
Nothing here writes to this machine's /sys: the daemons run over fake sysfs
trees (tests/unit/fake-sysfs) or with CPU-only sandboxes; real sysfs writes
happen only inside the lab VM (figures 3 and 7). vfiod runs with [network]
enabled=false here: no TAP, address or firewall rule is made on this machine
(figure 7's are made inside the lab VM). Figure 10 binds the GPU named by
--gpu on the machine it runs on (a GPU host), nothing else.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

GROUP_NAMES = {
    1: "sandbox create-to-ready",
    2: "guest boot: guest-init vs busybox init",
    3: "bind + release cycle (lab, real kernel)",
    4: "daemon footprint (RSS)",
    5: "start-up reconciliation at scale",
    6: "API latency under a hung bind",
    7: "a GPU-shaped sandbox (lab, real kernel): vfiod vs the same by hand",
    8: "driver layer build (kernel-modules/build-driver-layer.sh) and a warm `vfioctl image build --gpu`",
    9: "scale: start-up broken down, create/delete throughput",
    10: "a real GPU host (bench/run --gpu BDF): create-to-CUDA-ready, guest RAM pinning",
}

# The modules of figure 7's L2 image (bench.py stages it: vfioctl initramfs
# build): the stand-in's driver, the sandbox NIC, vsock, the power button.
LAB7_MODULES = ("e1000e", "virtio_pci", "virtio_net", "vmw_vsock_virtio_transport", "button", "evdev")

# Short conditions for the Markdown table (README); the full ones are in the
# printed table and the JSON.
SHORT = {
    "create_vfiod_client_s": "`vfioctl sandbox create --wait`; CPU-only microvm, 512 MiB, 1 vCPU, TCG; network off",
    "create_vfiod_ready_s": "`ready_ms` as vfiod measured it",
    "create_raw_s": "vfiod's QEMU command line run by hand, spawn to `VFIOD_READY` in the serial file",
    "create_ratio": "median of per-pair ratios",
    "create_overhead_s": "median of per-pair differences",
    "create_guest_uptime_s": "guest clock; the rest is QEMU start and kernel loading before it",
    "boot_gi_ready_s": "microvm + virtio-net; same kernel, modules, address, route; guest clock",
    "boot_bb_ready_s": "`bench/busybox-init.sh` in the same image",
    "boot_ready_ratio": "median of per-pair ratios",
    "boot_gi_init_s": "mounts, 8 modules, network, PCI list, report",
    "boot_bb_init_s": "the same steps in busybox sh (`/proc/uptime`, 10 ms)",
    "boot_init_ratio": "median of per-pair ratios",
    "lab_vfiod_cycle_ms": "lab VM (TCG, intel-iommu), 2-function group; one process per step",
    "lab_shell_cycle_ms": "driver_override, unbind, drivers_probe and back, in bash",
    "lab_virsh_cycle_ms": "libvirtd (Debian 12) started in the lab VM",
    "lab_ratio_vfiod_shell": "median of per-round ratios",
    "lab_ratio_vfiod_virsh": "median of per-round ratios",
    "lab_kernel_cycle_ms": "the writes of sysfs-bind.sh run by the lab script's shell: the kernel's unbind/probe time",
    "lab_ratio_vfiod_kernel": "median of per-round ratios; the floor is 1.0",
    "rss_idle_kib": "real vfiod, network off, stand-in QEMU; VmRSS",
    "rss_16_kib": "",
    "rss_64_kib": "",
    "rss_per_sb_16_kib": "",
    "rss_per_sb_64_kib": "",
    "reconcile_adopt_s": "1000 fake devices on vfio-pci, 500 sandboxes, every QEMU alive; spawn to first API answer",
    "reconcile_mixed_fake_write_s": "test harness cost",
    "reconcile_mixed_fake_load": "test harness cost",
    "reconcile_per_gone_ms": "2 devices each; journal: one commit per phase (releasing, results) for all of them",
    "reconcile_empty_s": "same tree, empty journal",
    "api_ListSandboxes_p50_ms": "64 sandboxes, a `vfioctl bind` hung in the fake kernel's unbind; one connection",
    "api_ListSandboxes_idle_ms": "identical daemon without the bind, calls interleaved",
    "api_GetCapabilities_p50_ms": "as above; the answer lists 16 devices",
    "api_GetCapabilities_idle_ms": "as above, no bind",
    "api_ListSandboxes_cpu_ms": "daemon's user + system time (all threads, /proc/PID/stat) per call; robust to machine load",
    "api_GetCapabilities_cpu_ms": "as above",
    "lab7_vfiod_s": "lab VM; L2 = q35 + the stand-in group + TAP + vsock, nested TCG; `vfioctl sandbox create --device --wait`",
    "lab7_vfiod_ready_s": "measured by vfiod",
    "lab7_raw_s": "`sysfs-bind.sh`, `ip tuntap`/`ip addr`, `nft -f`, vfiod's QEMU argv (fds as paths), to `VFIOD_READY`",
    "lab7_ratio": "median of per-round ratios; goal <= 1.05",
    "lab7_setup_ms": "vfiod: to `vm-started` (its events); raw: to the QEMU fork",
    "lab7_bind_ms": "`create-started` -> `devices-bound`",
    "lab7_net_ms": "`devices-bound` -> `network-ready`: subnet, journal, TAP, nftables",
    "lab7_qemu_start_ms": "`network-ready` -> `vm-started`: fds, spawn, journal",
    "lab7_pre_kernel_s": "QEMU, SeaBIOS, kernel load under nested TCG",
    "lab7_guest_s": "guest clock at `VFIOD_READY`",
    "lab7_kernel_s": "`timings_ms.init_start`",
    "lab7_init_s": "mounts, modules, network, PCI list, report",
    "lab7_client_ms": "client start-up, D-Bus call, vfiod's parsing / the ready signal to the client's exit",
    "lab7_setup_ratio": "median of per-round ratios",
}


# What a daemon's resident pages are (figure 4), by the file mapped (first
# match); unnamed mappings, heap and stacks are "anon".
RSS_PARTS = (
    ("vfiod", r"^(vfiod|bench-daemon)$"),
    ("glib-gio-libc", r"^(libc|ld-linux|libm|libglib|libgobject|libgio|libgmodule|libffi|libpcre2|libz|libselinux|"
                      r"libmount|libblkid)[.-]|^(LC_|gconv|locale-archive)"),
    ("nftables", r"^lib(nftables|nftnl|mnl|xtables|jansson|gmp)\."),
    ("systemd", r"^lib(systemd|gcrypt|gpg-error|lz4|zstd|lzma|cap)\."),
    ("nl", r"^libnl-"),
    ("pci", r"^lib(pci|udev)\."),
    ("json-glib", r"^libjson-glib"),
    ("nss", r"^libnss_"),
    ("kmod", r"^lib(kmod|crypto)\."),
)
RSS_PARTS_NAMES = {
    "anon": "anonymous (heap, stacks, library data)",
    "glib-gio-libc": "libc, GLib/GObject/GIO and their libraries (what the floor maps too)",
    "vfiod": "the vfiod binary",
    "nftables": "libnftables, libnftnl, libmnl, libxtables, libjansson, libgmp (firewall)",
    "systemd": "libsystemd (sd_notify) and its libgcrypt, libgpg-error, liblz4, libzstd, liblzma, libcap",
    "nl": "libnl-3, libnl-route-3 (TAPs)",
    "pci": "libpci, libudev",
    "json-glib": "json-glib (journal)",
    "nss": "NSS modules (libnss_systemd: user/group look-ups)",
    "kmod": "libkmod and its libcrypto (variant drivers: modules.alias look-ups)",
    "other": "other files",
}


def now():
    return time.monotonic()


def median(xs):
    return statistics.median(xs) if xs else None


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.src = os.path.abspath(args.source)
        self.build = os.path.abspath(args.build)
        self.tools = os.path.join(self.build, "bench")
        self.vfiod = os.path.join(self.build, "vfiod", "vfiod")
        self.vfioctl = os.path.join(self.build, "vfiod", "vfioctl")
        self.guest_init = os.path.join(self.build, "guest-init", "guest-init")
        self.cache = os.path.abspath(args.cache)
        self.work = tempfile.mkdtemp(prefix="vfiod-bench-")
        os.chmod(self.work, 0o755)
        self.procs = []          # Popen objects we started
        self.pid_files = []      # files where stand-in QEMUs note their pid
        self.figures = []
        self.errors = []
        # the kernel fetch-kernel.sh put in the cache: the pins resolved
        # against the archive (scripts/archive.sh)
        self.kernel_env = os.path.join(self.cache, "kernel.env")
        self.pins = dict(l.strip().split("=", 1) for l in open(self.kernel_env)
                         if "=" in l and not l.lstrip().startswith("#"))
        self.release = self.pins["GUEST_KERNEL_RELEASE"]
        self.kernel = os.path.join(self.cache, "vmlinuz")
        self.fake_qemu = os.path.join(self.work, "fake-qemu")
        shutil.copy(os.path.join(self.src, "tests", "crash", "fake-qemu.sh"), self.fake_qemu)
        os.chmod(self.fake_qemu, 0o755)
        self.tsc_khz = self.host_tsc_khz()

    # ---- helpers ---------------------------------------------------------
    def fig(self, group, key, name, value, unit, n, conditions, samples=None, extra=None):
        f = {"group": group, "key": key, "figure": name, "value": value, "unit": unit, "n": n,
             "conditions": conditions}
        if samples is not None:
            f["samples"] = samples
        if extra:
            f.update(extra)
        self.figures.append(f)
        shown = "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else value)
        log(f"  [{group}] {name}: {shown} {unit} (n={n})")
        return f

    def error(self, group, msg):
        log(f"  [{group}] ERROR: {msg}")
        self.errors.append({"group": group, "error": msg})

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill_stand_ins(self):
        for f in self.pid_files:
            try:
                pids = [int(x) for x in open(f).read().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            os.unlink(f)
        self.pid_files = []
        # Stand-ins that run as another uid ([qemu] uid_range) cannot append
        # to the pid files: also every stand-in whose command line names this
        # run's own work directory (its -pidfile is in there), by pid.
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                argv = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            # fake-qemu.sh execs `sleep` with argv[0] = "fake-qemu ARGS..."
            name = argv[0].split(b" ", 1)[0] if argv else b""
            if name.endswith(b"fake-qemu") and any(self.work.encode() + b"/" in a for a in argv):
                try:
                    os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.kill_stand_ins()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"work dir kept: {self.work}")

    @staticmethod
    def host_tsc_khz():
        # as vfiod does (vfd_host_tsc_khz): "cpu MHz" of /proc/cpuinfo
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
        return 0

    def tool(self, name):
        return os.path.join(self.tools, name)

    def mk_fake_host(self, path, groups, bound=0):
        out = subprocess.run([self.tool("mk-fake-host"), path, str(groups), str(bound)], check=True,
                             capture_output=True, text=True).stdout
        return [line.split() for line in out.splitlines()]

    def fake_host_dir(self, d, groups, extra=""):
        """Makes D with a fake host of GROUPS IOMMU groups in D/fake and
        vfiod's config for it (write_conf); returns the config's path, the
        API socket's and the groups (mk_fake_host)."""
        fake = os.path.join(d, "fake")
        os.makedirs(d)
        found = self.mk_fake_host(fake, groups)
        return self.write_conf(d, fake, extra=extra), os.path.join(d, "run", "vfiod.sock"), found

    def write_conf(self, d, fake=None, extra=""):
        """A vfiod config with its own state/runtime dirs under d."""
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "vfiod.conf")
        text = textwrap.dedent(f"""\
            [daemon]
            state_dir={d}/state
            runtime_dir={d}/run
            allowed_group=
            [devices]
            write_timeout=3600
            [qemu]
            accel=tcg
            stop_timeout=2
            [network]
            enabled=false
            """)
        if fake:
            text += f"[testing]\nsys_root={fake}/sys\ndev_root={fake}/dev\n"
        text = text.replace("[qemu]\n", "[qemu]\n" + extra) if extra else text
        with open(conf, "w") as f:
            f.write(text)
        return conf

    def wait_api(self, sock, timeout_ms=60000):
        """Blocks until vfiod answers on sock; returns (monotonic s, sandboxes)."""
        out = subprocess.run([self.tool("api-latency"), "wait", sock, str(timeout_ms)], capture_output=True,
                             text=True)
        if out.returncode != 0:
            raise RuntimeError(f"no API answer on {sock}: {out.stderr.strip()}")
        _, t_us, n = out.stdout.split()
        return int(t_us) / 1e6, int(n)

    def vfioctl_json(self, sock, *args, check=True):
        r = subprocess.run([self.vfioctl, "--socket", sock, *args, "--json"], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"vfioctl {' '.join(args)}: {r.stderr.strip()}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    @staticmethod
    def rss_kib(pid):
        vals = {}
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                vals[k] = int(v.split()[0])
        return vals

    @staticmethod
    def rss_parts(pid):
        """Rss of @pid by what is mapped (KiB): see RSS_PARTS."""
        parts, name = {}, None
        for line in open(f"/proc/{pid}/smaps"):
            f = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", f[0]):
                name = f[5] if len(f) > 5 else ""
            elif f[0] == "Rss:":
                part = "anon" if not name.startswith("/") else "other"
                base = os.path.basename(name)
                for k, rx in RSS_PARTS:
                    if name.startswith("/") and re.search(rx, base):
                        part = k
                        break
                parts[part] = parts.get(part, 0) + int(f[1])
        return parts

    def start_vfiod(self, conf, binary=None, extra_args=(), env=None, log_path=None):
        log_f = open(log_path or conf + ".log", "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        p = self.spawn([binary or self.vfiod, "--config", conf, *extra_args], stdout=log_f, stderr=log_f,
                       stdin=subprocess.DEVNULL, env=e)
        return p

    # ---- the guest images -------------------------------------------------
    def images(self):
        if hasattr(self, "gi_image"):
            return
        moddir = os.path.join(self.cache, "modules", self.release)
        self.gi_image = os.path.join(self.work, "guest-init.cpio.gz")
        subprocess.run([self.vfioctl, "initramfs", "build", "--guest-init", self.guest_init,
                        "--output", self.gi_image, "--modules-dir", moddir,
                        "--module", "virtio_mmio", "--module", "virtio_net", "--module", "button",
                        "--module", "evdev", "--pins", self.kernel_env],
                       check=True, capture_output=True)
        # busybox variant: the very same tree, /init replaced by a shell
        # script, busybox added.
        tree = os.path.join(self.work, "bb-tree")
        os.makedirs(tree)
        subprocess.run(["bsdtar", "-xf", self.gi_image, "-C", tree], check=True)
        os.unlink(os.path.join(tree, "init"))
        shutil.copy(os.path.join(self.src, "bench", "busybox-init.sh"), os.path.join(tree, "init"))
        os.chmod(os.path.join(tree, "init"), 0o755)
        os.makedirs(os.path.join(tree, "bin"), exist_ok=True)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", os.path.join(tree, "bin", "busybox"))
        os.symlink("busybox", os.path.join(tree, "bin", "sh"))
        self.bb_image = os.path.join(self.work, "busybox.cpio.gz")
        names = sorted(os.listdir(tree))
        with open(self.bb_image, "wb") as out:
            tar = subprocess.Popen(["bsdtar", "-cf", "-", "--format", "newc", "--uid", "0", "--gid", "0",
                                    "-C", tree, *names], stdout=subprocess.PIPE)
            subprocess.run(["gzip", "-9n"], stdin=tar.stdout, stdout=out, check=True)
            tar.wait()
        self.image_sizes = {"guest-init": os.path.getsize(self.gi_image),
                            "busybox": os.path.getsize(self.bb_image)}

    # ---- raw QEMU runs ----------------------------------------------------
    def run_qemu_until(self, argv, serial, pattern, timeout=600):
        """Starts QEMU, polls the serial file every 5 ms until a line matches
        pattern; returns (seconds from spawn to match, the line). Kills QEMU."""
        if os.path.exists(serial):
            os.unlink(serial)
        rx = re.compile(pattern)
        t0 = now()
        p = self.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        buf, off, found = "", 0, None
        try:
            while found is None:
                if now() - t0 > timeout:
                    raise RuntimeError(f"no {pattern!r} within {timeout} s")
                if p.poll() is not None:
                    raise RuntimeError(f"QEMU exited ({p.returncode}) before {pattern!r}")
                try:
                    with open(serial, "rb") as f:
                        f.seek(off)
                        data = f.read()
                except FileNotFoundError:
                    data = b""
                if data:
                    off += len(data)
                    buf += data.decode("utf-8", "replace")
                    lines = buf.split("\n")
                    buf = lines.pop()
                    for line in lines:
                        if rx.search(line):
                            found = (now() - t0, line.strip())
                            break
                else:
                    time.sleep(0.005)
        finally:
            self.stop(p)
        return found

    def microvm_argv(self, initrd, append, serial, nic=False):
        """A CPU-only sandbox's command line as vfd_qemu_build_argv() makes it."""
        a = ["qemu-system-x86_64", "-name", "bench", "-accel", "tcg",
             "-M", "microvm,pit=on,pic=on,rtc=on,memory-backend=mem",
             "-object", "memory-backend-memfd,id=mem,size=512M,share=on", "-m", "512", "-smp", "1",
             "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
             "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
             "-serial", f"file:{serial}", "-kernel", self.kernel, "-initrd", initrd, "-append", append]
        if nic:
            a += ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56"]
        return a

    # ---- 1: create-to-ready -------------------------------------------------
    def bench_create(self):
        n = self.args.repeats
        self.images()
        d = os.path.join(self.work, "g1")
        conf, sock, _ = self.fake_host_dir(d, 2)
        vp = self.start_vfiod(conf)
        self.wait_api(sock)
        raw_dir = os.path.join(d, "raw")
        os.makedirs(raw_dir)

        def via_vfiod():
            t0 = now()
            sb = self.vfioctl_json(sock, "sandbox", "create", "--kernel", self.kernel, "--initrd", self.gi_image,
                                   "--wait", "--timeout", "600")
            wall = now() - t0
            if not sb or not sb.get("ready"):
                raise RuntimeError(f"sandbox not ready: {sb}")
            with open(f"/proc/{sb['pid']}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
            uptime = sb["ready_report"].get("uptime_ms")
            subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "delete", sb["id"]], capture_output=True)
            return wall, sb["ready_ms"] / 1000.0, uptime / 1000.0, argv, sb

        # warm-up (page cache, and the exact command line vfiod runs)
        log("1: warm-up sandbox through vfiod (gives the QEMU command line)")
        _, _, _, argv, sb = via_vfiod()
        sbdir = sb["dir"]
        raw_argv = [a.replace(sbdir, raw_dir) for a in argv]
        serial = os.path.join(raw_dir, "serial.log")
        # vfiod hands QEMU the serial log as an open fd (-add-fd fd=3,...;
        # the chardev's path is /dev/fdset/N): by hand, QEMU opens the file.
        if "-add-fd" in raw_argv:
            i = raw_argv.index("-add-fd")
            del raw_argv[i:i + 2]
            raw_argv = [re.sub(r"path=/dev/fdset/\d+", f"path={serial}", a) for a in raw_argv]
        # vfiod opens kernel and initrd itself and passes /proc/self/fd/N.
        for opt, path in (("-kernel", self.kernel), ("-initrd", self.gi_image)):
            if opt in raw_argv:
                raw_argv[raw_argv.index(opt) + 1] = path
        os.makedirs(os.path.join(raw_dir, "qemu"), exist_ok=True)
        self.raw_create_argv = raw_argv

        def via_raw():
            for f in ("qmp.sock", "qemu.pid"):
                p = os.path.join(raw_dir, f)
                if os.path.exists(p):
                    os.unlink(p)
            secs, line = self.run_qemu_until(raw_argv, serial, r"VFIOD_READY \{")
            rep = json.loads(line[line.index("{"):])
            return secs, rep["uptime_ms"] / 1000.0

        res = {"vfiod_wall": [], "vfiod_ready_ms": [], "vfiod_guest": [], "raw_wall": [], "raw_guest": []}
        for i in range(n):
            order = ("vfiod", "raw") if i % 2 == 0 else ("raw", "vfiod")
            for v in order:
                log(f"1: run {i + 1}/{n} {v}")
                if v == "vfiod":
                    wall, ready, guest, _, _ = via_vfiod()
                    res["vfiod_wall"].append(wall)
                    res["vfiod_ready_ms"].append(ready)
                    res["vfiod_guest"].append(guest)
                else:
                    wall, guest = via_raw()
                    res["raw_wall"].append(wall)
                    res["raw_guest"].append(guest)
        self.stop(vp)
        ratios = [a / b for a, b in zip(res["vfiod_wall"], res["raw_wall"])]
        cond = (f"CPU-only microvm, 512 MiB, 1 vCPU, TCG, pinned kernel {self.release}, guest-init image "
                f"(virtio_mmio virtio_net button evdev); ready = VFIOD_READY on the serial console; "
                f"vfiod: [network] enabled=false, fake sysfs; {n} runs interleaved vfiod/raw")
        self.fig(1, "create_vfiod_client_s", "create-to-ready via vfiod (client wall, vfioctl sandbox create --wait)",
                 median(res["vfiod_wall"]), "s", n, cond, res["vfiod_wall"])
        self.fig(1, "create_vfiod_ready_s", "create-to-ready via vfiod (ready_ms, measured by vfiod)",
                 median(res["vfiod_ready_ms"]), "s", n, cond, res["vfiod_ready_ms"])
        self.fig(1, "create_raw_s", "same QEMU command line by hand, spawn to VFIOD_READY (5 ms polling)",
                 median(res["raw_wall"]), "s", n, cond + "; raw argv = vfiod's, read from /proc/<pid>/cmdline",
                 res["raw_wall"], {"argv": raw_argv})
        self.fig(1, "create_ratio", "ratio vfiod (client wall) / raw", median(ratios), "x", n,
                 "median of the per-pair ratios", ratios)
        self.fig(1, "create_overhead_s", "vfiod overhead (client wall - raw, per pair)",
                 median([a - b for a, b in zip(res["vfiod_wall"], res["raw_wall"])]), "s", n,
                 "median of per-pair differences",
                 [a - b for a, b in zip(res["vfiod_wall"], res["raw_wall"])])
        self.fig(1, "create_guest_uptime_s", "of which guest kernel start to ready (vfiod / raw)",
                 f"{median(res['vfiod_guest']):.2f} / {median(res['raw_guest']):.2f}", "s", n,
                 "guest CLOCK_BOOTTIME at VFIOD_READY (uptime_ms); the rest is QEMU start, kernel load and "
                 "decompression before the guest clock starts",
                 {"vfiod": res["vfiod_guest"], "raw": res["raw_guest"]})

    # ---- 2: guest-init vs busybox --------------------------------------------
    def bench_boot(self):
        n = self.args.repeats
        self.images()
        d = os.path.join(self.work, "g2")
        os.makedirs(d)
        serial = os.path.join(d, "serial.log")
        append = (f"console=ttyS0 panic=-1 tsc_early_khz={self.tsc_khz} vfiod.sandbox=bench "
                  "vfiod.ip=10.0.2.15/24 vfiod.gw=10.0.2.2")
        res = {"gi_ready": [], "gi_init": [], "gi_start": [], "bb_ready": [], "bb_init": [], "bb_start": [],
               "gi_phases": [], "bb_phases": []}
        for i in range(n):
            order = ("guest-init", "busybox") if i % 2 == 0 else ("busybox", "guest-init")
            for v in order:
                log(f"2: run {i + 1}/{n} {v}")
                if v == "guest-init":
                    _, line = self.run_qemu_until(self.microvm_argv(self.gi_image, append, serial, nic=True),
                                                  serial, r"VFIOD_READY \{")
                    t = json.loads(line[line.index("{"):])["timings_ms"]
                    t = {k: v / 1000.0 for k, v in t.items()}
                    res["gi_phases"].append(t)
                    res["gi_ready"].append(t["ready"])
                    res["gi_start"].append(t["init_start"])
                    res["gi_init"].append(t["ready"] - t["init_start"])
                else:
                    _, line = self.run_qemu_until(self.microvm_argv(self.bb_image, append, serial, nic=True),
                                                  serial, r"BUSYBOX_READY ")
                    t = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}
                    res["bb_phases"].append(t)
                    res["bb_ready"].append(t["ready"])
                    res["bb_start"].append(t["init_start"])
                    res["bb_init"].append(t["ready"] - t["init_start"])
        cond = (f"microvm, 512 MiB, 1 vCPU, TCG, virtio-net-device (user net, restrict=on), kernel {self.release}; "
                "same modules (virtio_ring virtio virtio_mmio failover net_failover virtio_net button evdev), "
                f"same address/route; guest clock (guest-init: CLOCK_BOOTTIME ms; busybox: /proc/uptime, 10 ms); "
                f"images {self.image_sizes['guest-init'] // 1024} KiB vs {self.image_sizes['busybox'] // 1024} KiB; "
                f"{n} boots each, interleaved")
        self.fig(2, "boot_gi_ready_s", "kernel start to ready, guest-init", median(res["gi_ready"]), "s", n, cond,
                 res["gi_ready"], {"phases": res["gi_phases"]})
        self.fig(2, "boot_bb_ready_s", "kernel start to ready, busybox sh init", median(res["bb_ready"]), "s", n,
                 cond, res["bb_ready"], {"phases": res["bb_phases"]})
        ratios = [a / b for a, b in zip(res["gi_ready"], res["bb_ready"])]
        self.fig(2, "boot_ready_ratio", "ratio guest-init / busybox (kernel start to ready)", median(ratios), "x", n,
                 "median of per-pair ratios", ratios)
        self.fig(2, "boot_gi_init_s", "init's own part (init start to ready), guest-init",
                 median(res["gi_init"]), "s", n, "mounts + modules + network + PCI list + report", res["gi_init"])
        self.fig(2, "boot_bb_init_s", "init's own part (init start to ready), busybox",
                 median(res["bb_init"]), "s", n, "first /proc/uptime read (after mounting proc) to marker",
                 res["bb_init"])
        r2 = [a / b for a, b in zip(res["gi_init"], res["bb_init"]) if b > 0]
        self.fig(2, "boot_init_ratio", "ratio guest-init / busybox (init's own part)", median(r2), "x", len(r2),
                 "median of per-pair ratios", r2)

    # ---- 3: the lab ------------------------------------------------------------
    def bench_lab(self):
        rounds = self.args.lab_rounds
        env = dict(os.environ, LAB_CACHE=self.cache)
        logf = os.path.join(self.work, "lab.log")
        log(f"3: booting the lab VM (L1) for {rounds} rounds of vfiod / shell / virsh")
        t0 = now()
        with open(logf, "w") as out:
            r = subprocess.run([os.path.join(self.src, "tests", "lab", "run-l1.sh"), "--timeout", "1200",
                                "--log", os.path.join(self.work, "l1-console.log"),
                                os.path.join(self.src, "bench", "lab-bind.sh"), self.build, str(rounds)],
                               stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.src)
        text = open(logf, errors="replace").read()
        info = {}
        for m in re.finditer(r"^BENCH-LAB-INFO (.*)$", text, re.M):
            info.update(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
        errs = re.findall(r"^BENCH-LAB-ERROR (.*)$", text, re.M)
        for e in errs:
            self.error(3, e)
        rows = [dict(kv.split("=", 1) for kv in m.group(1).split())
                for m in re.finditer(r"^BENCH-LAB (round=.*)$", text, re.M)]
        if r.returncode != 0:
            tail = " | ".join(l for l in text.splitlines()[-12:] if l.strip())
            self.error(3, f"run-l1.sh exited {r.returncode} after {now() - t0:.0f} s; last lines: {tail}")
        data = {}
        for row in rows:
            if row["ok"] != "1":
                continue
            d = data.setdefault(row["tool"], {"bind": [], "release": [], "cycle": [], "round": []})
            b, rl = float(row["bind_ms"]), float(row["release_ms"])
            d["bind"].append(b)
            d["release"].append(rl)
            d["cycle"].append(b + rl)
            d["round"].append(int(row["round"]))
        cond = (f"inside the lab VM (Q35 + intel-iommu, TCG, 2 vCPUs, kernel {info.get('kernel', '?')}): "
                f"IOMMU group {info.get('group', '?')} = {info.get('A', '?')} + {info.get('B', '?')}; "
                "one process per step, timed in bash; order rotated each round")
        names = {"vfiod": "vfiod (vfioctl bind + release, whole group)",
                 "shell": "shell script (sysfs-bind.sh, same sysfs writes, both functions)",
                 "virsh": f"virsh nodedev-detach/-reattach, both functions (libvirt {info.get('libvirt', '?')})",
                 "kernel": "floor: the same sysfs writes from the lab script's own shell (no process started)"}
        for tool in ("vfiod", "shell", "virsh", "kernel"):
            d = data.get(tool)
            if not d:
                self.fig(3, f"lab_{tool}_cycle_ms", f"bind+release, {names[tool]}", None, "ms", 0,
                         "not measured (see errors)")
                continue
            c = cond + (f"; libvirtd started in L1 in {info.get('libvirtd_start_ms', '?')} ms, tmpfs on "
                        "/etc/libvirt (minimal config), /var/lib/libvirt, /var/cache/libvirt" if tool == "virsh" else "")
            split = f"bind {median(d['bind']):.0f} ms + release {median(d['release']):.0f} ms (medians)"
            self.fig(3, f"lab_{tool}_cycle_ms", f"bind+release, {names[tool]}", median(d["cycle"]), "ms",
                     len(d["cycle"]), c + "; " + split, d["cycle"],
                     {"bind_ms": median(d["bind"]), "release_ms": median(d["release"]),
                      "bind_samples": d["bind"], "release_samples": d["release"],
                      "short": SHORT[f"lab_{tool}_cycle_ms"] + "; " + split})
        starts = {}
        for m in re.finditer(r"^BENCH-LAB-START round=\d+ client=(\w+) start_ms=([0-9.]+)", text, re.M):
            starts.setdefault(m.group(1), []).append(float(m.group(2)))
        each = "each vfiod and shell cycle starts two of these"
        for c, what, cond in (
                ("vfioctl", "process start, `vfioctl --version`: the client's start-up (dynamic loading and "
                 "relocation)", each),
                ("vfioctl_call", "a call, `vfioctl sandbox list` (no sandbox): the client's start-up, its D-Bus "
                 "connection to vfiod (GDBus's EXTERNAL handshake) and one call answered from vfiod's memory",
                 "each vfiod cycle makes two such connections and calls; the rest is vfiod's bind/release work "
                 "and the kernel's"),
                ("bash", "process start, `bash sysfs-bind.sh` with nothing to do: the shell's start-up", each)):
            if c in starts:
                self.fig(3, f"lab_start_{c}_ms", f"  {what}", median(starts[c]), "ms", len(starts[c]), cond,
                         starts[c])
        for tool in ("shell", "virsh", "kernel"):
            if "vfiod" in data and tool in data:
                by_round = {r: c for r, c in zip(data[tool]["round"], data[tool]["cycle"])}
                ratios = [c / by_round[r] for r, c in zip(data["vfiod"]["round"], data["vfiod"]["cycle"])
                          if r in by_round]
                self.fig(3, f"lab_ratio_vfiod_{tool}", f"ratio vfiod / {tool} (cycle)", median(ratios), "x",
                         len(ratios), "median of per-round ratios", ratios)
        self.lab_info = info

    # ---- 7: a GPU-shaped sandbox in the lab ----------------------------------------
    def gpu_shaped_image(self):
        """The L2 image of figure 7, staged here (inside L1 the build and cache
        dirs are read-only): guest-init plus the passed device's driver
        (e1000e), the sandbox NIC (virtio_net over virtio_pci), vsock for the
        ready report, button + evdev (power button): lab-guest's set without
        the disk modules (this sandbox has no disk)."""
        moddir = os.path.join(self.cache, "modules", self.release)
        out = os.path.join(self.work, "guest-gpu-shaped.cpio.gz")
        cmd = [self.vfioctl, "initramfs", "build", "--guest-init", self.guest_init, "--output", out,
               "--modules-dir", moddir, "--pins", self.kernel_env]
        for m in LAB7_MODULES:
            cmd += ["--module", m]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"vfioctl initramfs build: {r.stderr.strip()[-400:]}")
        return out

    def bench_gpu_sandbox(self):
        rounds = self.args.sandbox_rounds or self.args.lab_rounds
        image = self.gpu_shaped_image()
        env = dict(os.environ, LAB_CACHE=self.cache)
        logf = os.path.join(self.work, "lab7.log")
        # every L2 boot under nested TCG: ~2-5 min; one warm-up create (no boot)
        limit = 900 + rounds * 2 * 1200
        log(f"7: booting the lab VM (L1) for {rounds} rounds of vfiod / raw, each an L2 boot (nested TCG: minutes "
            f"each; limit {limit} s)")
        t0 = now()
        with open(logf, "w") as out:
            r = subprocess.run([os.path.join(self.src, "tests", "lab", "run-l1.sh"), "--timeout", str(limit),
                                "--log", os.path.join(self.work, "l1-console-7.log"),
                                os.path.join(self.src, "bench", "lab-gpu-sandbox.sh"), self.build, self.cache, image,
                                str(rounds)],
                               stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.src)
        text = open(logf, errors="replace").read()
        self.parse_gpu_sandbox(text, rounds)
        if r.returncode != 0:
            tail = " | ".join(l for l in text.splitlines()[-12:] if l.strip())
            self.error(7, f"run-l1.sh exited {r.returncode} after {now() - t0:.0f} s; last lines: {tail}")

    def parse_gpu_sandbox(self, text, rounds):
        """Figure 7 from the BENCH-LAB7 lines of lab-gpu-sandbox.sh."""
        info = {}
        for m in re.finditer(r"^BENCH-LAB7-INFO (.*)$", text, re.M):
            info.update(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
        for e in re.findall(r"^BENCH-LAB7-ERROR (.*)$", text, re.M):
            self.error(7, e)
        argv = re.search(r"^BENCH-LAB7-ARGV (.*)$", text, re.M)
        events = {}
        for m in re.finditer(r"^BENCH-LAB7-EVENT round=(\d+) (\{.*\})\s*$", text, re.M):
            try:
                ev = json.loads(m.group(2))
            except ValueError:
                continue
            if ev.get("signal") == "SandboxEvent":
                events.setdefault(int(m.group(1)), {}).setdefault(ev["stage"], ev["timestamp_usec"])
                if ev["stage"] == "ready":      # the channel vfiod had the report from first
                    events[int(m.group(1))].setdefault("ready_by", ev.get("reason") or "?")
        vf, raw = {}, {}
        for m in re.finditer(r"^BENCH-LAB7 (round=.*)$", text, re.M):
            row = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
            if row.get("ok") != "1":
                continue
            rnd = int(row["round"])
            if row["tool"] == "raw":
                b, t, n, s, rd, up = (float(row[k]) for k in ("bind_ms", "tap_ms", "nft_ms", "spawn_ms", "ready_ms",
                                                              "uptime_ms"))
                init = float(row.get("init_ms", 0))
                raw[rnd] = {"total": rd, "bind": b, "tap": t - b, "nft": n - t, "setup": s, "boot": rd - s,
                            "pre_kernel": rd - s - up, "guest": up, "kernel": init, "init": up - init}
            elif row["tool"] == "vfiod":
                ev = events.get(rnd, {})
                need = ("create-started", "devices-bound", "network-ready", "vm-started", "ready")
                if any(k not in ev for k in need):
                    self.error(7, f"round {rnd}: vfiod's events incomplete: have {sorted(ev)}, want {list(need)}")
                    continue
                t0 = int(row["t0_us"])
                at = {k: (ev[k] - t0) / 1000.0 for k in need}   # ms after the client's start
                wall, up, init = float(row["wall_ms"]), float(row["uptime_ms"]), float(row.get("init_ms", 0))
                vf[rnd] = {"total": wall, "ready_ms": float(row["ready_ms"]), "client_start": at["create-started"],
                           "bind": at["devices-bound"] - at["create-started"],
                           "net": at["network-ready"] - at["devices-bound"],
                           "qemu_start": at["vm-started"] - at["network-ready"],
                           "own_setup": at["vm-started"] - at["create-started"], "setup": at["vm-started"],
                           "spawn": float(row["spawn_ms"]),
                           "boot": at["ready"] - at["vm-started"], "pre_kernel": at["ready"] - at["vm-started"] - up,
                           "guest": up, "kernel": init, "init": up - init,
                           "client_end": wall - at["ready"], "channel": row.get("channel", "?"),
                           "ready_by": ev.get("ready_by", "?")}
        pairs = sorted(set(vf) & set(raw))
        n_v, n_r = len(vf), len(raw)
        vsock = info.get("vsock") == "yes"
        chans = sorted({v["channel"] for v in vf.values()})
        firsts = [v["ready_by"] for v in vf.values()]
        first = ", ".join(f"{c} {firsts.count(c)}x" for c in sorted(set(firsts)))
        cond = (f"inside the lab VM (Q35 + intel-iommu, TCG, {info.get('cpus', '?')} vCPUs, kernel "
                f"{info.get('kernel', '?')}, QEMU {info.get('qemu', '?')}): L2 = q35, 512 MiB, 1 vCPU, nested TCG, "
                f"IOMMU group {info.get('group', '?')} ({info.get('A', '?')} + {info.get('B', '?')}) passed through, "
                f"TAP-backed virtio-net (vhost-net {info.get('vhost_net', '?')}), "
                + ("vhost-vsock-pci (L1 has /dev/vhost-vsock)" if vsock else
                   "NO vsock: L1 has no /dev/vhost-vsock, the ready report came over the console") +
                f"; guest-init image ({' '.join(LAB7_MODULES)}); ready = guest-init's VFIOD_READY; {rounds} rounds "
                f"interleaved vfiod/raw (vfiod, raw, raw, vfiod, ...); L2 load factor {info.get('l2_factor', '?')} "
                "(calibration in L1)")
        if not vf or not raw:
            for key, what, have in (("lab7_vfiod_s", "create-to-ready via vfiod", vf),
                                    ("lab7_raw_s", "the same by hand", raw)):
                if not have:
                    self.fig(7, key, what, None, "s", 0, "not measured (see errors)")
            if not vf and not raw:
                return
        med = lambda d, k: median([x[k] for x in d.values()])
        if vf:
            self.fig(7, "lab7_vfiod_s", "create-to-ready via vfiod (client wall: vfioctl sandbox create --device --wait)",
                     med(vf, "total") / 1000, "s", n_v, cond + "; vfiod: [network] enabled, [qemu] user=root (as the "
                     f"raw QEMU), the guest reports on the console and over {'/'.join(chans)}; vfiod had it first from: "
                     f"{first}", [v["total"] / 1000 for v in vf.values()],
                     {"rounds": vf, "info": info})
            self.fig(7, "lab7_vfiod_ready_s", "  vfiod's own ready_ms (the request to the guest's report)",
                     med(vf, "ready_ms") / 1000, "s", n_v, "measured by vfiod (CLOCK_MONOTONIC)",
                     [v["ready_ms"] / 1000 for v in vf.values()])
        if raw:
            self.fig(7, "lab7_raw_s", "create-to-ready by hand (bash: sysfs writes, TAP, nft, vfiod's QEMU argv)",
                     med(raw, "total") / 1000, "s", n_r,
                     cond + "; raw QEMU command line = vfiod's (warm-up create, /proc/<pid>/cmdline) with its fds as "
                     "paths: serial fd set -> the file, kernel/initrd -> their files, tap fd= -> ifname=,script=no, "
                     "vhost-vsock vhostfd dropped; ulimit -l unlimited; ready line read from the serial file "
                     "(tail -f | grep -m1, stamped by the reader)", [v["total"] / 1000 for v in raw.values()],
                     {"rounds": raw, "argv": argv.group(1).split(" ") if argv else None})
        if pairs:
            ratios = [vf[p]["total"] / raw[p]["total"] for p in pairs]
            self.fig(7, "lab7_ratio", "ratio vfiod / by hand (create-to-ready, per round)", median(ratios), "x",
                     len(pairs), "median of per-round ratios; goal <= 1.05; both dominated by the nested-TCG boot",
                     ratios)
        if vf and raw:
            both = lambda kv, kr, scale=1.0, fmt="{:.0f}": (
                f"{fmt.format(med(vf, kv) * scale)} / {fmt.format(med(raw, kr) * scale)}")
            self.fig(7, "lab7_setup_ms", "host-side set-up to QEMU's start, vfiod / by hand", both("setup", "setup"),
                     "ms", min(n_v, n_r), "vfiod: client start to vm-started (vfiod's events, L1's realtime clock); "
                     "raw: round start to the QEMU fork in bash",
                     extra={"vfiod": [v["setup"] for v in vf.values()], "raw": [v["setup"] for v in raw.values()]})
            ev = "vfiod's sandbox events (vfioctl sandbox watch --json)"
            rows = (
                ("lab7_bind_ms", "  bind the group", "bind", "bind", "ms", 1.0, "{:.0f}",
                 "vfiod: create-started -> devices-bound (" + ev + "); raw: sysfs-bind.sh bind A B (one bash "
                 "process: driver_override, unbind, drivers_probe per function)"),
                ("lab7_net_ms", "  network: TAP and nftables", "net", None, "ms", 1.0, "{:.0f}",
                 "vfiod: devices-bound -> network-ready: subnet + CID, journal commit, TAP (libnl), firewall "
                 "(libnftables); raw: ip tuntap + 3 sysctls + ip addr + link up (" +
                 f"{med(raw, 'tap'):.0f} ms), then nft -f of vfiod's table ({med(raw, 'nft'):.0f} ms)"),
                ("lab7_qemu_start_ms", "  QEMU's start", "qemu_start", None, "ms", 1.0, "{:.0f}",
                 "vfiod: network-ready -> vm-started: the fds (serial log, kernel, initrd, TAP, vhost-vsock), "
                 "the spawn, the journal commit with QEMU's pid; raw: the fork itself (counted as 0)"),
                ("lab7_pre_kernel_s", "  QEMU's start to the guest kernel's", "pre_kernel", "pre_kernel", "s", 0.001,
                 "{:.1f}", "QEMU, SeaBIOS, kernel load under nested TCG; vfiod: vm-started -> ready minus the "
                 "guest's uptime_ms; raw: fork -> ready line minus uptime_ms"),
                ("lab7_guest_s", "  guest kernel to ready (uptime_ms)", "guest", "guest", "s", 0.001,
                 "{:.1f}", "the guest's CLOCK_BOOTTIME at VFIOD_READY: nested TCG's speed, not the host tool's"),
                ("lab7_kernel_s", "    of which the kernel (to guest-init's start)", "kernel", "kernel", "s", 0.001,
                 "{:.1f}", "the ready report's timings_ms.init_start"),
                ("lab7_init_s", "    of which guest-init (its start to ready)", "init", "init", "s", 0.001, "{:.1f}",
                 "mounts, modules (e1000e for the passed function, virtio-net, vsock), network, PCI list, report"),
            )
            for key, what, kv, kr, unit, scale, fmt, c in rows:
                if kv == "kernel" or kv == "init":      # (lines without init_ms: older script)
                    if not all(x["kernel"] > 0 for d in (vf, raw) for x in d.values()):
                        continue
                val = (f"{fmt.format(med(vf, kv) * scale)} / "
                       + (fmt.format(med(raw, kr) * scale) if kr else
                          (f"{med(raw, 'tap') + med(raw, 'nft'):.0f}" if kv == "net" else "0")))
                self.fig(7, key, what + ", vfiod / by hand", val, unit, min(n_v, n_r), c,
                         extra={"vfiod": [v[kv] for v in vf.values()],
                                "raw": [v[kr] for v in raw.values()] if kr else None})
            self.fig(7, "lab7_client_ms", "  vfioctl's own part: start -> create-started / ready -> exit",
                     f"{med(vf, 'client_start'):.0f} / {med(vf, 'client_end'):.0f}", "ms", n_v,
                     "the client's start-up (exec, libraries, GLib), its checks, the D-Bus connection and call, "
                     "vfiod's parsing of the request on its main loop; the ready signal to the client's exit",
                     extra={"start": [v["client_start"] for v in vf.values()],
                            "end": [v["client_end"] for v in vf.values()]})
            sr = [vf[p]["setup"] / raw[p]["setup"] for p in pairs if raw[p]["setup"] > 0]
            self.fig(7, "lab7_setup_ratio", "ratio vfiod / by hand, host-side set-up only (per round)", median(sr), "x",
                     len(sr), "vfiod also journals the sandbox (twice), checks the group and its plan, opens the "
                     "fds; what TCG does not blur", sr)
        self.lab7_info = info

    # ---- 4: footprint ----------------------------------------------------------
    def bench_footprint(self):
        n = self.args.daemon_runs
        d = os.path.join(self.work, "g4")
        conf, sock, _ = self.fake_host_dir(d, 8, extra=f"binary={self.fake_qemu}\n")
        k = os.path.join(d, "kernel")
        i_ = os.path.join(d, "initrd")
        for f in (k, i_):
            open(f, "w").write("x\n")
        res = {"idle": [], "16": [], "64": [], "per16": [], "per64": [], "detail": []}
        for r in range(n):
            pids = os.path.join(d, f"qemu-{r}.pids")
            self.pid_files.append(pids)
            shutil.rmtree(os.path.join(d, "state"), ignore_errors=True)
            shutil.rmtree(os.path.join(d, "run"), ignore_errors=True)
            vp = self.start_vfiod(conf, env={"VFIOD_FAKE_QEMU_PIDS": pids})
            self.wait_api(sock)
            time.sleep(0.5)
            self.vfioctl_json(sock, "sandbox", "list")
            idle = self.rss_kib(vp.pid)
            row = {"idle": idle, "idle_parts": self.rss_parts(vp.pid)}
            # The floor: a bare GLib/GIO D-Bus daemon (bench/floor-daemon.c)
            # after the same first answer.
            fsock = os.path.join(d, f"floor-{r}.sock")
            fp = self.spawn([self.tool("floor-daemon"), fsock], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            self.wait_api(fsock)
            time.sleep(0.5)
            row["floor"] = self.rss_kib(fp.pid)
            row["floor_parts"] = self.rss_parts(fp.pid)
            self.stop(fp, signal.SIGKILL)
            for target in (16, 64):
                have = len(self.vfioctl_json(sock, "sandbox", "list"))
                for _ in range(target - have):
                    self.vfioctl_json(sock, "sandbox", "create", "--kernel", k, "--initrd", i_)
                time.sleep(2.5)   # past the first serial re-check of each (2 s timer)
                got = len(self.vfioctl_json(sock, "sandbox", "list"))
                if got != target:
                    raise RuntimeError(f"{got} sandboxes, want {target}")
                row[str(target)] = self.rss_kib(vp.pid)
            self.stop(vp, signal.SIGKILL)
            self.kill_stand_ins()
            res["detail"].append(row)
            res["idle"].append(idle["VmRSS"])
            res["16"].append(row["16"]["VmRSS"])
            res["64"].append(row["64"]["VmRSS"])
            res["per16"].append((row["16"]["VmRSS"] - idle["VmRSS"]) / 16)
            res["per64"].append((row["64"]["VmRSS"] - idle["VmRSS"]) / 64)
        cond = (f"real vfiod binary, [network] enabled=false, stand-in QEMU (tests/crash/fake-qemu.sh), fake sysfs "
                f"of 16 devices; VmRSS of /proc/<pid>/status; {n} fresh daemons")
        self.fig(4, "rss_idle_kib", "vfiod RSS, idle (after start + 1 API call)", median(res["idle"]), "KiB", n,
                 cond, res["idle"], {"detail": res["detail"]})
        floor = [r["floor"]["VmRSS"] for r in res["detail"]]
        self.fig(4, "rss_floor_kib", "floor: a bare GLib/GIO D-Bus daemon (bench/floor-daemon.c), idle",
                 median(floor), "KiB", n, "GMainLoop + peer-to-peer GDBusServer on a Unix socket, one method "
                 "answered once; linked against glib/gio only; VmRSS", floor)
        parts = {}
        for r in res["detail"]:
            for k, v in r["idle_parts"].items():
                parts.setdefault(k, []).append(v)
        for k in ("anon", "glib-gio-libc", "vfiod", "nftables", "systemd", "nl", "pci", "json-glib", "nss",
                  "kmod", "other"):
            if k in parts:
                self.fig(4, f"rss_idle_part_{k}_kib", f"  of vfiod's idle RSS: {RSS_PARTS_NAMES[k]}",
                         median(parts[k]), "KiB", n, "/proc/<pid>/smaps, Rss by mapping", parts[k])
        self.fig(4, "rss_16_kib", "vfiod RSS with 16 sandboxes", median(res["16"]), "KiB", n, cond, res["16"])
        self.fig(4, "rss_64_kib", "vfiod RSS with 64 sandboxes", median(res["64"]), "KiB", n, cond, res["64"])
        self.fig(4, "rss_per_sb_16_kib", "per sandbox, (RSS16 - idle) / 16", median(res["per16"]), "KiB", n,
                 cond, res["per16"])
        self.fig(4, "rss_per_sb_64_kib", "per sandbox, (RSS64 - idle) / 64", median(res["per64"]), "KiB", n,
                 cond, res["per64"])

    # ---- 5: reconcile at scale ------------------------------------------------
    def bench_reconcile(self):
        n = self.args.reconcile_runs
        groups = sandboxes = 500
        gone = self.args.reconcile_gone
        d = os.path.join(self.work, "g5")
        os.makedirs(d)
        log(f"5: fake hosts of {groups * 2} devices, journals of {sandboxes} sandboxes")
        full_groups = self.mk_fake_host(os.path.join(d, "fake-bound"), groups, sandboxes)
        self.mk_fake_host(os.path.join(d, "fake-free"), groups, 0)
        pids_file = os.path.join(d, "qemu.pids")
        self.pid_files.append(pids_file)
        dead = subprocess.Popen(["true"])   # a pid that is gone: a child that has exited
        dead.wait()
        run = os.path.join(d, "run")        # runtime_dir of every start-up (sandbox dirs live here)
        env = dict(os.environ, VFIOD_FAKE_QEMU_PIDS=pids_file)
        live = []                           # (pid, start time) of a stand-in QEMU per sandbox
        for i in range(sandboxes):
            sid = f"sb-{i:08x}"
            p = subprocess.Popen([self.fake_qemu, "-name", sid, "-append", f"console=ttyS0 vfiod.sandbox={sid}"],
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            live.append(p.pid)
        starts = []
        for pid in live:
            st = None
            for _ in range(400):        # until bash has exec'd the stand-in
                try:
                    if "fake-qemu" in open(f"/proc/{pid}/cmdline").read():
                        stat = open(f"/proc/{pid}/stat").read()
                        st = int(stat[stat.rindex(")") + 2:].split()[19])
                        break
                except OSError:
                    pass
                time.sleep(0.005)
            if st is None:
                raise RuntimeError(f"stand-in QEMU {pid} did not start")
            starts.append(st)

        def journal(n_gone):
            j = {"format": "vfiod-journal", "version": 1, "devices": [], "sandboxes": []}
            for i, (grp, gpu, audio) in enumerate(full_groups):
                sid = f"sb-{i:08x}"
                alive = i < sandboxes - n_gone
                j["sandboxes"].append({"id": sid, "pid": live[i] if alive else dead.pid,
                                       "start_time": starts[i] if alive else 1, "devices": [gpu, audio],
                                       "dir": os.path.join(run, "sandboxes", sid)})
                for bdf, drv in ((gpu, "nvidia"), (audio, "snd_hda_intel")):
                    j["devices"].append({"bdf": bdf, "iommu_group": int(grp), "state": "bound", "owner": sid,
                                         "original_driver": drv, "original_override": ""})
            j["devices"].sort(key=lambda x: x["bdf"])
            return j

        variants = {"adopt": ("fake-bound", journal(0)), "mixed": ("fake-bound", journal(gone)),
                    "empty": ("fake-free", None)}

        def one(variant):
            tree, jr = variants[variant]
            cur = os.path.join(d, "cur")
            shutil.rmtree(cur, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)
            os.makedirs(os.path.join(cur, "state"))
            subprocess.run(["cp", "-a", os.path.join(d, tree), os.path.join(cur, "fake")], check=True)
            if jr:
                with open(os.path.join(cur, "state", "journal.json"), "w") as f:
                    json.dump(jr, f, indent=2)
                for s in jr["sandboxes"]:
                    os.makedirs(s["dir"])
                    open(os.path.join(s["dir"], "serial.log"), "w").write("boot...\n")
            conf = os.path.join(cur, "vfiod.conf")
            with open(conf, "w") as f:
                f.write(textwrap.dedent(f"""\
                    [daemon]
                    state_dir={cur}/state
                    runtime_dir={run}
                    allowed_group=
                    [qemu]
                    binary={self.fake_qemu}
                    accel=tcg
                    [network]
                    enabled=false
                    [testing]
                    sys_root={cur}/fake/sys
                    dev_root={cur}/fake/dev
                    """))
            subprocess.run(["sync"])
            logp = os.path.join(cur, "daemon.log")
            t_spawn = now()
            with open(logp, "wb") as lf:
                p = self.spawn([self.tool("bench-daemon"), "--config", conf], stdout=lf, stderr=lf,
                               stdin=subprocess.DEVNULL)
            t_ready, nsb = self.wait_api(os.path.join(run, "vfiod.sock"), 900000)
            self.stop(p, signal.SIGKILL)
            text = open(logp).read()
            ms = {m.group(1): int(m.group(2)) / 1e6 for m in re.finditer(r"^BENCH (\w+) (\d+) \d+$", text, re.M)}
            cpu = {m.group(1): int(m.group(2)) / 1e6 for m in re.finditer(r"^BENCH (\w+) \d+ (\d+)$", text, re.M)}
            fw = re.search(r"^BENCH fake_writes (\d+) (\d+) (\d+)$", text, re.M)
            writes, fake_s, fake_cpu = ((int(fw.group(1)), int(fw.group(2)) / 1e6, int(fw.group(3)) / 1e6) if fw
                                        else (0, 0.0, 0.0))
            acts = {a: len(re.findall(rf"reconcile: \S+ {a}:", text)) for a in ("adopted", "restored", "in-use")}
            su = re.search(r"start-up: journal ([0-9.]+) ms .*?; sandboxes ([0-9.]+) ms \((\d+) adopted, (\d+) "
                           r"restored, restore ([0-9.]+) ms\); devices ([0-9.]+) ms \(PCI scan ([0-9.]+) ms\); "
                           r"network ([0-9.]+) ms", text)
            startup = ({k: float(su.group(i)) / 1000 for k, i in (("journal", 1), ("sandboxes", 2), ("restore", 5),
                                                                  ("devices", 6), ("pci_scan", 7), ("network", 8))}
                       if su else {})
            return {"total": t_ready - t_spawn, "exec": ms["main"] - t_spawn, "fake_load": ms["loaded"] - ms["main"],
                    "reconcile": ms["reconciled"] - ms["loaded"], "fake_write_s": fake_s, "fake_writes": writes,
                    "vfiod_own": ms["reconciled"] - ms["loaded"] - fake_s,
                    "vfiod_own_cpu": cpu["reconciled"] - cpu["loaded"] - fake_cpu,
                    "listen": ms["serving"] - ms["reconciled"], "first_answer": t_ready - ms["serving"],
                    "sandboxes_listed": nsb, "report": acts, "startup": startup}

        rows = {v: [] for v in variants}
        order = list(variants)
        for i in range(n):
            for v in (order if i % 2 == 0 else order[::-1]):
                log(f"5: run {i + 1}/{n} {v}")
                rows[v].append(one(v))
        self.kill_stand_ins()
        shutil.rmtree(run, ignore_errors=True)
        for v, want in (("adopt", sandboxes), ("mixed", sandboxes - gone), ("empty", 0)):
            got = [r["sandboxes_listed"] for r in rows[v]]
            if any(x != want for x in got):
                self.error(5, f"{v}: sandboxes listed after start-up {got}, want {want}")
        base = (f"bench-daemon (vfiod-fake + milestones), fake sysfs of {groups * 2} devices ({groups} GPU+audio "
                f"IOMMU groups); spawn to first API answer; {n} runs, the three variants interleaved")
        med = lambda v, k: median([r[k] for r in rows[v]])
        self.fig(5, "reconcile_adopt_s", f"start-up, journal of {sandboxes} live sandboxes (all adopted)",
                 med("adopt", "total"), "s", n,
                 base + f"; all {groups * 2} devices on vfio-pci, owned by the sandboxes; each sandbox's stand-in "
                        "QEMU alive (pid + start time match): adopted, no sysfs write",
                 [r["total"] for r in rows["adopt"]], {"runs": rows["adopt"]})
        self.fig(5, "reconcile_mixed_s", f"start-up, {sandboxes} sandboxes of which {gone} gone (restored)",
                 med("mixed", "total"), "s", n,
                 base + f"; same tree, {sandboxes - gone} adopted, {gone} whose QEMU is gone: their "
                        f"{2 * gone} devices released through the fake kernel (one journal commit per phase)",
                 [r["total"] for r in rows["mixed"]],
                 {"runs": rows["mixed"],
                  "short": f"same, {gone} QEMUs gone: {2 * gone} devices restored through the fake kernel"})
        mixed = rows["mixed"]
        parts = (("reconcile", "  of which reconciliation (vfd_manager_new: journal, adopt, restore)"),
                 ("fake_write_s", f"    of that, inside the fake kernel's {mixed[0]['fake_writes']} sysfs writes "
                                  "(harness: it saves its whole model after each write)"),
                 ("vfiod_own", "    of that, vfiod's own part"),
                 ("fake_load", "  of which fake kernel load (harness, not vfiod)"),
                 ("exec", "  of which exec to main()"),
                 ("listen", "  of which API socket set-up"),
                 ("first_answer", "  of which listening to first answer"))
        for k, what in parts:
            self.fig(5, f"reconcile_mixed_{k}", what, med("mixed", k), "s", n,
                     "milestones printed by bench-daemon (CLOCK_MONOTONIC); fake writes timed around the writer",
                     [r[k] for r in mixed])
        per_cpu = [(r["vfiod_own_cpu"] - a["vfiod_own_cpu"]) / gone for r, a in zip(rows["mixed"], rows["adopt"])]
        self.fig(5, "reconcile_per_gone_cpu_ms", "vfiod's own CPU time per restored sandbox (mixed - adopt, per pair)",
                 median(per_cpu) * 1000, "ms", n, "process CPU time (CLOCK_PROCESS_CPUTIME_ID) of the reconciliation "
                 "minus the fake kernel's writes' (CLOCK_THREAD_CPUTIME_ID around the writer); robust to load",
                 [x * 1000 for x in per_cpu])
        per = [(r["vfiod_own"] - a["vfiod_own"]) / gone for r, a in zip(rows["mixed"], rows["adopt"])]
        self.fig(5, "reconcile_per_gone_ms", "vfiod's own time per restored sandbox (mixed - adopt, per pair)",
                 median(per) * 1000, "ms", n, f"2 devices each; journal of {groups * 2} devices: one durable "
                 "commit per phase (all 'releasing', then all results), not two per group", [x * 1000 for x in per])
        self.fig(5, "reconcile_empty_s", "baseline: same 1000 devices, empty journal",
                 med("empty", "total"), "s", n, "same daemon, no device bound, no sandbox",
                 [r["total"] for r in rows["empty"]], {"runs": rows["empty"]})
        # Figure 9, first part: where start-up goes at this scale (vfiod's
        # own "start-up:" log line, CLOCK_MONOTONIC inside vfd_manager_new).
        if all(r["startup"] for v in rows for r in rows[v]):
            for v, what in (("adopt", f"{sandboxes} sandboxes adopted"), ("mixed", f"{gone} of {sandboxes} restored")):
                st = lambda k: median([r["startup"][k] for r in rows[v]])
                self.fig(9, f"scale_{v}_journal_s", f"start-up, {what}: journal load (json-glib, checks)",
                         st("journal"), "s", n, f"{groups * 2} devices and {sandboxes} sandboxes in the journal; "
                         "vfiod's 'start-up:' log line")
                self.fig(9, f"scale_{v}_sandboxes_s", f"start-up, {what}: sandboxes (pid checks, adopt, restore)",
                         st("sandboxes"), "s", n, "")
                if v == "mixed":
                    self.fig(9, "scale_mixed_restore_s", f"  of which the restore batch ({2 * gone} devices, 2 "
                             "journal commits; fake kernel writes included)", st("restore"), "s", n, "")
                self.fig(9, f"scale_{v}_devices_s", f"start-up, {what}: device records + PCI scan",
                         st("devices"), "s", n, "")
                self.fig(9, f"scale_{v}_pci_scan_s", "  of which the libpci scan of 1000 devices", st("pci_scan"),
                         "s", n, "pci.ids names looked up once per (vendor, device)")
        else:
            self.error(9, "no 'start-up:' line in the daemon log")

    # ---- 8: driver layer ------------------------------------------------------------
    def bench_driver_layer(self):
        """Warm (cached) builds of the driver layer; the cold build's time from
        the cache's build-info (a cold build downloads ~1 GB and compiles the
        open kernel modules: not repeated here)."""
        cache = self.args.driver_cache or os.path.join(self.args.build, "driver-layer-cache")
        keys = [k for k in os.listdir(cache) if os.path.exists(os.path.join(cache, k, "complete"))] \
            if os.path.isdir(cache) else []
        if not keys:
            self.fig(8, "driver_warm_s", "driver layer, warm build (cached)", None, "s", 0,
                     f"no built layer in {cache}: run kernel-modules/build-driver-layer.sh --cache {cache} "
                     "--out DIR once (cold: downloads and compiles), or pass --driver-cache")
            return
        info = {}
        for k in keys:
            for line in open(os.path.join(cache, k, "build-info")):
                a, _, b = line.strip().partition("=")
                info.setdefault(k, {})[a] = b
        cold = [float(v["build_seconds"]) for v in info.values() if "build_seconds" in v]
        self.fig(8, "driver_cold_s", "driver layer, cold build (Debian packages, open modules compiled)",
                 max(cold) if cold else None, "s", 1, "from build-info of the cached layer (" +
                 ", ".join(f"built {v.get('built', '?')}" for v in info.values()) + "); not rebuilt by this run")
        out = os.path.join(self.work, "g8-out")
        script = os.path.join(self.src, "kernel-modules", "build-driver-layer.sh")
        subprocess.run([script, "--out", out, "--cache", cache], check=True, capture_output=True)  # warm-up
        times = []
        for _ in range(self.args.repeats):
            t0 = now()
            subprocess.run([script, "--out", out, "--cache", cache], check=True, capture_output=True)
            times.append(now() - t0)
        self.fig(8, "driver_warm_s", "driver layer, warm build (cached, no apt, no compile)", median(times), "s",
                 len(times), "build-driver-layer.sh --cache (key check, symlinks)", times)
        # The whole warm `vfioctl image build --gpu` over the same caches (the
        # guest kernel's and the layer's, linked into one --cache DIR): the
        # first run after the warm-up answers from the steps' warm memos
        # (CACHE/warm/: no fetch-kernel.sh, no build-driver-layer.sh), the
        # initramfs from its stamp, DIR already up to date.
        icache = os.path.join(self.work, "g8-cache")
        os.makedirs(icache, exist_ok=True)
        for name, target in (("kernel", self.cache), ("driver-layer", cache)):
            if not os.path.lexists(os.path.join(icache, name)):
                os.symlink(target, os.path.join(icache, name))
        image = os.path.join(self.work, "g8-image")
        cmd = [self.vfioctl, "image", "build", "--gpu", "--output", image, "--cache", icache,
               "--guest-init", self.guest_init, "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True)  # warm-up: runs the scripts once, keeps their memos
        if r.returncode != 0:
            self.error(8, f"vfioctl image build --gpu: exit {r.returncode}: {r.stderr.strip()[-400:]}")
            return
        times, steps = [], {}
        for _ in range(self.args.repeats):
            t0 = now()
            r = subprocess.run(cmd, capture_output=True, text=True)
            times.append(now() - t0)
            if r.returncode != 0:
                self.error(8, f"vfioctl image build --gpu: exit {r.returncode}: {r.stderr.strip()[-400:]}")
                return
            for k, v in json.loads(r.stdout).get("ms", {}).items():
                steps.setdefault(k, []).append(v)
        self.fig(8, "image_build_gpu_warm_ms", "`vfioctl image build --gpu`, warm (kernel, layer and image cached)",
                 median(times) * 1000, "ms", len(times),
                 "the client's wall time (vfioctl execs vfioctl-tool); steps' medians: " +
                 ", ".join(f"{k} {median(v):.0f} ms" for k, v in steps.items()) +
                 "; goal <= 100 ms", [t * 1000 for t in times])

    # ---- 10: a real GPU host (bench/run --gpu BDF) ------------------------------------
    GPU_NEEDS = "needs a GPU host: bench/run --gpu BDF"
    PAGE_SIZES = (("4K", None), ("2M", 2048), ("1G", 1048576))

    @staticmethod
    def gpu_check(bdf):
        """None when BDF is an NVIDIA GPU on this machine, else why not (the
        message --gpu errors with). Reads sysfs only."""
        if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", bdf or ""):
            return f"--gpu {bdf!r}: want a PCI address DDDD:BB:SS.F in lower case (e.g. 0000:41:00.0)"
        d = f"/sys/bus/pci/devices/{bdf}"
        if not os.path.exists(d):
            return (f"--gpu {bdf}: this machine has no PCI device {bdf} (see /sys/bus/pci/devices, lspci -D): the "
                    "GPU figures run only on a GPU host")
        rd = lambda f: open(os.path.join(d, f)).read().strip()
        vendor, device, cls = rd("vendor"), rd("device"), rd("class")
        if vendor != "0x10de" or not cls.startswith("0x03"):
            return (f"--gpu {bdf}: {vendor[2:]}:{device[2:]} class {cls[2:]} is not an NVIDIA GPU (vendor 10de, "
                    "class 03xx): refusing to pass it through")
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return f"--gpu {bdf}: no usable /dev/kvm (the GPU sandboxes run with [qemu] accel=kvm)"
        return None

    def gpu_assets(self):
        """The GPU image (vmlinuz, initramfs, driver-layer.erofs: `vfioctl image
        build --gpu`) and a workload root (tests/lab/mk-workload-root.sh), unless
        --gpu-image / --gpu-root name them."""
        base = os.path.join(self.build, "bench-gpu")
        os.makedirs(base, exist_ok=True)
        image = self.args.gpu_image
        if not image:
            image = os.path.join(base, "image")
            icache = os.path.join(base, "cache")
            os.makedirs(icache, exist_ok=True)
            layer_cache = self.args.driver_cache or os.path.join(self.build, "driver-layer-cache")
            os.makedirs(layer_cache, exist_ok=True)
            for name, target in (("kernel", self.cache), ("driver-layer", layer_cache)):
                if not os.path.lexists(os.path.join(icache, name)):
                    os.symlink(target, os.path.join(icache, name))
            log(f"10: vfioctl image build --gpu --output {image} (cold: downloads and compiles, minutes)")
            r = subprocess.run([self.vfioctl, "image", "build", "--gpu", "--output", image, "--cache", icache,
                                "--guest-init", self.guest_init, "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"vfioctl image build --gpu: exit {r.returncode}: {r.stderr.strip()[-400:]}")
        files = {k: os.path.join(image, f) for k, f in (("kernel", "vmlinuz"), ("initrd", "initramfs"),
                                                        ("layer", "driver-layer.erofs"))}
        for k, f in files.items():
            if not os.path.isfile(f):
                raise RuntimeError(f"the GPU image {image} has no {os.path.basename(f)}")
        root = self.args.gpu_root
        if not root:
            log("10: the workload root (tests/lab/mk-workload-root.sh: Debian minbase, no NVIDIA file)")
            r = subprocess.run([os.path.join(self.src, "tests", "lab", "mk-workload-root.sh"), base],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"mk-workload-root.sh: exit {r.returncode}: {r.stderr.strip()[-400:]}")
            root = r.stdout.strip().splitlines()[-1]
        return files, os.path.abspath(root)

    def gpu_conf(self, d, files, page_kib=None, prealloc=0):
        conf = self.write_conf(d)
        text = open(conf).read()
        text = text.replace("accel=tcg\n", "accel=kvm\n").replace("stop_timeout=2\n", "stop_timeout=30\n")
        # the production device rules (NVIDIA display/3D and its functions)
        text = text.replace("[devices]\nwrite_timeout=3600\n", "[devices]\n")
        extra = (f"kernel={files['kernel']}\ninitrd={files['initrd']}\ndriver_layer={files['layer']}\n"
                 f"prealloc_threads={prealloc}\n")
        if page_kib:
            extra += f"hugepage_size={'1G' if page_kib == 1048576 else '2M'}\n"
        with open(conf, "w") as f:
            f.write(text.replace("[qemu]\n", "[qemu]\n" + extra))
        r = subprocess.run([self.vfiod, "--check-config", conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"vfiod --check-config {conf}: {(r.stderr or r.stdout).strip()[-400:]}")
        return conf

    @staticmethod
    def free_hugepages(kib):
        try:
            return int(open(f"/sys/kernel/mm/hugepages/hugepages-{kib}kB/free_hugepages").read())
        except (OSError, ValueError):
            return 0

    @staticmethod
    def proc_start_epoch(pid):
        """When @pid started, seconds since the epoch (10 ms ticks)."""
        stat = open(f"/proc/{pid}/stat").read()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        up = float(open("/proc/uptime").read().split()[0])
        return time.time() - up + ticks / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def locked_kib(pid):
        vals = {}
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmLck", "VmPin"):
                vals[k] = int(v.split()[0])
        return max(vals.values() or [0])

    def pin_watch(self, runtime, target_kib, out, stop):
        """Thread: finds the new sandbox's QEMU by its pidfile, then polls its
        locked memory (VmLck: vfio type1 accounts the pages it pins there;
        VmPin for iommufd) every 2 ms until it covers the guest RAM; puts the
        pid and when that happened (epoch s) in @out."""
        pid = None
        while not stop.is_set():
            if pid is None:
                for p in glob.glob(os.path.join(runtime, "sandboxes", "*", "qemu", "qemu.pid")):
                    try:
                        pid = int(open(p).read().strip() or 0) or None
                    except (OSError, ValueError):
                        pid = None
                    if pid:
                        out["pid"] = pid
                        break
            else:
                try:
                    kib = self.locked_kib(pid)
                except OSError:
                    return
                out["max_kib"] = max(out.get("max_kib", 0), kib)
                if kib >= target_kib:
                    out["pinned"] = time.time()
                    return
            time.sleep(0.002)

    def bench_gpu_host(self):
        bdf = self.args.gpu
        mem = self.args.gpu_memory
        if not bdf:
            for key, what in (("gpu_cuda_ready_s", "create-to-CUDA-ready, 1 GPU (--device BDF, driver layer, "
                                                   "workload nvidia-smi)"),
                              *((f"gpu_pin_{n}_s", f"guest RAM pinning at QEMU start, {n} pages")
                                for n, _ in self.PAGE_SIZES)):
                self.fig(10, key, what, None, "s", 0, self.GPU_NEEDS, extra={"short": self.GPU_NEEDS})
            return
        why = self.gpu_check(bdf)
        if why:
            raise RuntimeError(why)
        files, root = self.gpu_assets()
        name = open(f"/sys/bus/pci/devices/{bdf}/device").read().strip()
        group = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{bdf}/iommu_group"))
        members = sorted(os.listdir(f"/sys/bus/pci/devices/{bdf}/iommu_group/devices"))
        host = (f"GPU {bdf} (10de:{name[2:]}, IOMMU group {group}: {' '.join(members)}), KVM, "
                f"{os.cpu_count()} CPUs, kernel {platform.release()}; guest: `vfioctl image build --gpu` "
                f"({os.path.basename(os.path.dirname(files['kernel']))}), driver layer read-only, workload root "
                f"{os.path.basename(root)} read-only (--add-disk root=...:ro), {mem} MiB, {self.args.gpu_vcpus} vCPUs; "
                "[network] enabled=false")

        # --- create-to-CUDA-ready, nvidia-smi as the workload
        n = self.args.repeats
        d = os.path.join(self.work, "g10-cuda")
        conf = self.gpu_conf(d, files)
        sock = os.path.join(d, "run", "vfiod.sock")
        vp = self.start_vfiod(conf)
        self.wait_api(sock)
        evf = open(os.path.join(d, "events.jsonl"), "w")
        watch = self.spawn([self.vfioctl, "--socket", sock, "sandbox", "watch", "--json"], stdout=evf,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        smi = "/run/nvidia/driver/usr/bin/nvidia-smi"
        runs = []
        try:
            for i in range(n):
                log(f"10: create-to-CUDA-ready {i + 1}/{n}")
                t0 = time.time()
                r = subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "create", "--device", bdf,
                                    "--add-disk", f"root={root}:ro", "--memory", str(mem), "--vcpus",
                                    str(self.args.gpu_vcpus), "--cmd", smi, "--wait", "--timeout", "900", "--json"],
                                   capture_output=True, text=True)
                wall = time.time() - t0
                sb = json.loads(r.stdout) if r.stdout.strip() else {}
                if r.returncode != 0 or not sb.get("ready"):
                    self.error(10, f"create --device {bdf}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
                    if sb.get("id"):
                        subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "delete", sb["id"]],
                                       capture_output=True)
                    break
                rep = sb.get("ready_report")
                rep = json.loads(rep) if isinstance(rep, str) else (rep or {})
                gpus = ((rep.get("cuda") or {}).get("gpus")) or []
                if not gpus or any(g.get("probe") != "ok" for g in gpus):
                    self.error(10, f"ready without a passing CUDA probe: {rep.get('cuda')}")
                t1 = time.time()
                state = None
                while time.time() - t1 < 300:   # nvidia-smi's run: to the workload's exit
                    st = self.vfioctl_json(sock, "sandbox", "show", sb["id"], check=False) or {}
                    state = st.get("state")
                    if state in ("exited", "stopped", "failed"):
                        break
                    time.sleep(0.1)
                t_exit = time.time() - t1
                time.sleep(0.5)
                ev = {}
                for line in open(evf.name):
                    e = json.loads(line)
                    if e.get("id") == sb["id"] and e.get("signal") == "SandboxEvent":
                        ev.setdefault(e["stage"], e["timestamp_usec"] / 1e6)
                subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "delete", sb["id"]], capture_output=True)
                tm = rep.get("timings_ms") or {}
                runs.append({"wall": wall, "ready_ms": sb["ready_ms"], "uptime_ms": rep.get("uptime_ms"),
                             "timings_ms": tm, "smi_s": t_exit, "state": state, "cuda": rep.get("cuda"),
                             "bind_s": ev["devices-bound"] - ev["create-started"]
                             if "devices-bound" in ev and "create-started" in ev else None,
                             "qemu_s": ev["vm-started"] - ev.get("devices-bound", ev.get("create-started", 0))
                             if "vm-started" in ev else None})
        finally:
            self.stop(watch)
            evf.close()
            self.stop(vp)
        if runs:
            cond = host + f"; {len(runs)} creates, each deleted before the next"
            self.fig(10, "gpu_cuda_ready_s", "create-to-CUDA-ready, 1 GPU (client wall, create --device --wait)",
                     median([r["wall"] for r in runs]), "s", len(runs),
                     cond + "; ready = guest-init's report after nvidia.ko, persistenced, nvidia-smi -L and the CUDA "
                     "probe (cuInit, a context per GPU) passed", [r["wall"] for r in runs], {"runs": runs})
            part = lambda k: [r[k] for r in runs if r.get(k) is not None]
            for key, what, xs in (
                    ("gpu_bind_s", "  bind (create-started -> devices-bound: host driver off, vfio-pci on)",
                     part("bind_s")),
                    ("gpu_qemu_s", "  devices-bound -> vm-started (network off: fds, QEMU spawn, journal)",
                     part("qemu_s")),
                    ("gpu_guest_s", "  guest kernel to ready (uptime_ms)", [r["uptime_ms"] / 1000 for r in runs
                                                                             if r["uptime_ms"]]),
                    ("gpu_cuda_s", "  of which the driver: modules -> CUDA probe done (guest timings)",
                     [(r["timings_ms"]["cuda"] - r["timings_ms"]["modules"]) / 1000 for r in runs
                      if "cuda" in r["timings_ms"] and "modules" in r["timings_ms"]]),
                    ("gpu_smi_s", "  ready -> nvidia-smi (the workload) exited", part("smi_s"))):
                if xs:
                    self.fig(10, key, what, median(xs), "s", len(xs), "vfiod's events / the ready report", xs)

        # --- guest RAM pinning: 4K, 2M, 1G pages; without and with prealloc
        target = mem * 1024
        for label, kib in self.PAGE_SIZES:
            need = 0 if not kib else (mem * 1024 + kib - 1) // kib
            if kib and self.free_hugepages(kib) < need:
                how = (f"echo {need} > /sys/kernel/mm/hugepages/hugepages-{kib}kB/nr_hugepages" if kib == 2048 else
                       f"boot with hugepagesz=1G hugepages={need}")
                self.fig(10, f"gpu_pin_{label}_s", f"guest RAM pinning at QEMU start, {label} pages", None, "s", 0,
                         f"not measured: {mem} MiB needs {need} free {label} hugepages, the host has "
                         f"{self.free_hugepages(kib)} ({how}, as root)")
                continue
            for prealloc in (0, self.args.gpu_prealloc_threads):
                d = os.path.join(self.work, f"g10-pin-{label}-{prealloc}")
                conf = self.gpu_conf(d, files, kib, prealloc)
                sock = os.path.join(d, "run", "vfiod.sock")
                vp = self.start_vfiod(conf)
                self.wait_api(sock)
                pins, creates = [], []
                try:
                    for i in range(n):
                        log(f"10: pinning, {label} pages, prealloc_threads={prealloc}: {i + 1}/{n}")
                        out, stop = {}, threading.Event()
                        th = threading.Thread(target=self.pin_watch, args=(os.path.join(d, "run"), target, out, stop))
                        th.start()
                        t0 = time.time()
                        r = subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "create", "--device", bdf,
                                            "--add-disk", f"root={root}:ro", "--memory", str(mem), "--vcpus",
                                            str(self.args.gpu_vcpus), "--json"], capture_output=True, text=True)
                        creates.append(time.time() - t0)
                        sb = json.loads(r.stdout) if r.stdout.strip() else {}
                        th.join(120)
                        stop.set()
                        th.join()
                        if r.returncode != 0:
                            self.error(10, f"{label} pages: create: exit {r.returncode}: {r.stderr.strip()[-300:]}")
                            break
                        if "pinned" not in out or "pid" not in out:
                            self.error(10, f"{label} pages: QEMU {out.get('pid')} did not lock {target} KiB within "
                                       f"120 s (at most {out.get('max_kib', 0)} KiB)")
                        else:
                            pins.append(out["pinned"] - self.proc_start_epoch(out["pid"]))
                        subprocess.run([self.vfioctl, "--socket", sock, "sandbox", "delete", sb["id"]],
                                       capture_output=True)
                finally:
                    self.stop(vp)
                what = f"guest RAM pinning at QEMU start, {label} pages" + (
                    f", prealloc_threads={prealloc}" if prealloc else "")
                self.fig(10, f"gpu_pin_{label}{'_prealloc' if prealloc else ''}_s", what,
                         median(pins) if pins else None, "s", len(pins),
                         host + f"; [qemu] {'hugepage_size=' + label if kib else 'hugepages=false'}, "
                         f"prealloc_threads={prealloc}; QEMU's start (/proc/<pid>/stat, 10 ms ticks) to its locked "
                         f"memory (VmLck: vfio type1 pins and accounts all guest RAM for DMA) covering the {mem} MiB; "
                         f"create without --wait (create's own wall: {median(creates):.2f} s)", pins)

    # ---- 9: create/delete throughput ----------------------------------------------
    def bench_throughput(self):
        """CPU-only microvm sandboxes (real QEMU, TCG, the guest-init image)
        created and deleted by 16 clients at a time; vfiod's own CPU time
        per create + delete (user + system, /proc/PID/stat) besides the wall
        rate, which on 2 cores is QEMU's start-up as much as vfiod's."""
        total, par = self.args.throughput_sandboxes, 16
        self.images()
        d = os.path.join(self.work, "g9")
        conf, sock, _ = self.fake_host_dir(d, 2)
        vp = self.start_vfiod(conf)
        self.wait_api(sock)

        def run_all(args_of):
            procs, i, done, failed = [], 0, 0, []
            while done < len(args_of):
                while i < len(args_of) and len(procs) < par:
                    procs.append(subprocess.Popen([self.vfioctl, "--socket", sock, *args_of[i], "--json"],
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                    i += 1
                for p in procs[:]:
                    if p.poll() is not None:
                        out, err = p.communicate()
                        if p.returncode != 0:
                            failed.append(err.strip())
                        else:
                            yield out
                        procs.remove(p)
                        done += 1
                time.sleep(0.002)
            if failed:
                raise RuntimeError(f"{len(failed)} vfioctl calls failed: {failed[0]}")

        create = ["sandbox", "create", "--kernel", self.kernel, "--initrd", self.gi_image, "--memory", "256"]
        c0, t0 = self.cpu_ns(vp.pid), now()
        ids = [json.loads(o)["id"] for o in run_all([create] * total)]
        c1, t1 = self.cpu_ns(vp.pid), now()
        list(run_all([["sandbox", "delete", i] for i in ids]))
        c2, t2 = self.cpu_ns(vp.pid), now()
        left = self.vfioctl_json(sock, "sandbox", "list")
        self.stop(vp)
        if left:
            self.error(9, f"{len(left)} sandboxes left after the deletes")
        cond = (f"real vfiod, real QEMU (microvm, TCG, 256 MiB, guest-init image), network off; {total} sandboxes, "
                f"{par} vfioctl clients at a time; create returns once QEMU runs and the sandbox is journaled "
                "(no --wait)")
        self.fig(9, "tput_create_per_s", f"create throughput, {par} in parallel", total / (t1 - t0), "/s", total, cond)
        self.fig(9, "tput_delete_per_s", f"delete throughput, {par} in parallel", total / (t2 - t1), "/s", total,
                 "delete: QEMU stopped (QMP quit, then SIGKILL after stop_timeout), journal, directory")
        self.fig(9, "tput_cpu_ms", "vfiod CPU time per create / per delete", f"{(c1 - c0) / total / 1e6:.2f} / "
                 f"{(c2 - c1) / total / 1e6:.2f}", "ms", total, "vfiod's user + system time, exited threads included (/proc/PID/stat); robust to load")

    # ---- 6: API latency ----------------------------------------------------------
    def bench_api(self):
        calls = self.args.api_calls
        d = os.path.join(self.work, "g6")
        os.makedirs(d)
        targets, daemons, socks = [], [], {}
        k = os.path.join(d, "kernel")
        i_ = os.path.join(d, "initrd")
        for f in (k, i_):
            open(f, "w").write("x\n")
        for label in ("busy", "idle"):
            dd = os.path.join(d, label)
            conf, sock, groups = self.fake_host_dir(dd, 8, extra=f"binary={self.fake_qemu}\n")
            pids = os.path.join(dd, "qemu.pids")
            self.pid_files.append(pids)
            extra = ["--hang-unbind", groups[0][1]] if label == "busy" else []
            logp = os.path.join(dd, "daemon.log")
            p = self.start_vfiod(conf, binary=self.tool("bench-daemon"), extra_args=extra,
                                 env={"VFIOD_FAKE_QEMU_PIDS": pids}, log_path=logp)
            self.wait_api(sock)
            for _ in range(64):
                self.vfioctl_json(sock, "sandbox", "create", "--kernel", k, "--initrd", i_)
            socks[label] = sock
            daemons.append(p)
            targets.append(f"{label}={sock}")
            if label == "busy":
                bind = self.spawn([self.vfioctl, "--socket", sock, "bind", groups[0][1]],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t0 = now()
                while "BENCH hung" not in open(logp).read():
                    if now() - t0 > 30 or bind.poll() is not None:
                        raise RuntimeError("the bind did not hang in the fake kernel")
                    time.sleep(0.02)
                busy_bdf = groups[0][1]
        devs = self.vfioctl_json(socks["busy"], "list")
        states = sorted({x["state"] for x in devs if x["bdf"] == busy_bdf})
        log(f"6: {calls} calls of each method on each daemon (bind of {busy_bdf}: {states})")
        out = subprocess.run([self.tool("api-latency"), "measure", str(calls), *targets], capture_output=True,
                             text=True, check=True)
        res = json.loads(out.stdout)
        # CPU time the daemon spends per call (all its threads, exited ones
        # included: /proc/PID/stat): holds on a loaded machine, where wall percentiles
        # measure the scheduler as much as vfiod.
        cpu = {}
        for m in ("ListSandboxes", "GetCapabilities"):
            for label, p in (("busy", daemons[0]), ("idle", daemons[1])):
                cpu[(m, label)] = self.cpu_per_call(p.pid, socks[label], m, calls)
        after = sorted({x["state"] for x in self.vfioctl_json(socks["busy"], "list") if x["bdf"] == busy_bdf})
        if after != ["binding"] or "BENCH hung" not in open(os.path.join(d, "busy", "daemon.log")).read():
            self.error(6, f"the bind of {busy_bdf} was not in progress for the whole measurement (now {after})")
        for p in daemons:
            self.stop(p, signal.SIGKILL)
        self.stop(bind, signal.SIGKILL)
        self.kill_stand_ins()
        cond = (f"bench-daemon (vfiod-fake), 64 sandboxes (stand-in QEMU), fake sysfs of 16 devices; busy: "
                f"'vfioctl bind {busy_bdf}' parked in the fake kernel's unbind (state {'/'.join(states)}) for the "
                f"whole measurement; one D-Bus connection per daemon; {calls} calls per method, interleaved "
                f"busy/idle, after 10 warm-up rounds")
        for m in ("ListSandboxes", "GetCapabilities"):
            b, i = res["busy"][m], res["idle"][m]
            self.fig(6, f"api_{m}_p50_ms", f"{m} p50 / p99, bind in progress", f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f}",
                     "ms", calls, cond + f"; answer holds {b['items']} items", extra={"busy": b, "idle": i})
            self.fig(6, f"api_{m}_idle_ms", f"{m} p50 / p99, no bind (same run)", f"{i['p50_ms']:.2f} / {i['p99_ms']:.2f}",
                     "ms", calls, "second daemon, identical but idle")
            cb, ci = cpu[(m, "busy")], cpu[(m, "idle")]
            self.fig(6, f"api_{m}_cpu_ms", f"{m} daemon CPU time per call, bind in progress / no bind",
                     f"{cb:.3f} / {ci:.3f}", "ms", calls,
                     "the daemon's user + system time (/proc/PID/stat, all threads) over "
                     f"{calls} calls of {m} alone, one connection; robust to machine load")

    @staticmethod
    def cpu_ns(pid):
        """CPU time of @pid so far, ns: user + system of all its threads, the
        ones that have exited included (/proc/PID/stat, clock ticks). The
        threads' schedstat is finer but forgets a thread once it exits: a
        daemon whose threads come and go seemed to use less CPU over time."""
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15 of proc(5))
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")

    def cpu_per_call(self, pid, sock, method, calls):
        """Daemon CPU ms per call of @method (api-latency cpu)."""
        p = subprocess.Popen([self.tool("api-latency"), "cpu", str(calls), method, sock], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "WARM":
            raise RuntimeError(f"api-latency cpu {method}: no warm-up")
        c0 = self.cpu_ns(pid)
        p.stdin.write("\n")
        p.stdin.flush()
        line = p.stdout.readline()
        c1 = self.cpu_ns(pid)
        p.wait()
        if not line.startswith("DONE"):
            raise RuntimeError(f"api-latency cpu {method} failed")
        return (c1 - c0) / calls / 1e6

    # ---- output ------------------------------------------------------------------
    @staticmethod
    def shown(f):
        v = f["value"]
        if v is None:
            return "-"
        if isinstance(v, float):
            v = f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return f"{v} {f['unit']}"

    def table(self):
        lines = []
        w = min(max([len(f["figure"]) for f in self.figures] + [10]), 96)
        hdr = f"{'#':<2} {'figure':<{w}} {'median':>18} {'n':>4}  conditions"
        lines.append(hdr)
        lines.append("-" * len(hdr))
        last, last_cond = None, None
        for f in self.figures:
            if f["group"] != last:
                lines.append(f"{f['group']}  {GROUP_NAMES[f['group']]}")
                last = f["group"]
            cond = "(as above)" if f["conditions"] == last_cond else f["conditions"]
            last_cond = f["conditions"]
            lines.append(f"{'':<2} {f['figure'][:w]:<{w}} {self.shown(f):>18} {f['n']:>4}  {cond}")
        return "\n".join(lines)

    def markdown(self):
        out = ["| # | figure | median | n | conditions |", "|---|---|---|---|---|"]
        last_cond = None
        for f in self.figures:
            cond = f.get("short", SHORT.get(f["key"], "" if f["conditions"] == last_cond else f["conditions"]))
            last_cond = f["conditions"]
            name = f["figure"].strip()
            indent = len(f["figure"]) - len(f["figure"].lstrip())
            name = "&nbsp;" * indent + name if indent else name
            out.append(f"| {f['group']} | {name} | {self.shown(f)} | {f['n']} | {cond} |")
        return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--cache", required=True, help="guest kernel cache (tests/lab/fetch-kernel.sh)")
    ap.add_argument("--out", required=True, help="JSON results")
    ap.add_argument("--repeats", type=int, default=7, help="boots per variant (figures 1, 2)")
    ap.add_argument("--daemon-runs", type=int, default=3, help="fresh daemons (figure 4)")
    ap.add_argument("--reconcile-runs", type=int, default=5, help="start-ups per variant (figure 5)")
    ap.add_argument("--reconcile-gone", type=int, default=100, help="sandboxes of 500 whose QEMU is gone (figure 5)")
    ap.add_argument("--lab-rounds", type=int, default=9, help="rounds per tool in the lab (figures 3 and 7)")
    ap.add_argument("--sandbox-rounds", type=int, default=0,
                    help="rounds of figure 7 (two nested L2 boots each; default: --lab-rounds)")
    ap.add_argument("--api-calls", type=int, default=500, help="calls per method (figure 6)")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10", help="comma-separated figure groups")
    ap.add_argument("--gpu", default="", metavar="BDF",
                    help="figure 10 on this GPU host: the NVIDIA GPU at BDF is bound to vfio-pci and passed through")
    ap.add_argument("--gpu-image", default="", help="figure 10: a `vfioctl image build --gpu` output dir "
                    "(default: built into BUILD/bench-gpu/image)")
    ap.add_argument("--gpu-root", default="", help="figure 10: the workload root, a raw ext4 image "
                    "(default: tests/lab/mk-workload-root.sh into BUILD/bench-gpu)")
    ap.add_argument("--gpu-memory", type=int, default=16384, help="figure 10: guest RAM, MiB (16384)")
    ap.add_argument("--gpu-vcpus", type=int, default=8, help="figure 10: vCPUs (8)")
    ap.add_argument("--gpu-prealloc-threads", type=int, default=8,
                    help="figure 10: [qemu] prealloc_threads of the prealloc variants (8)")
    ap.add_argument("--driver-cache", default="", help="driver layer cache (figure 8; default BUILD/driver-layer-cache)")
    ap.add_argument("--throughput-sandboxes", type=int, default=48, help="sandboxes created/deleted (figure 9)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--command", default="", help="the command line to record")
    args = ap.parse_args()
    only = [int(x) for x in args.only.split(",") if x]
    if args.gpu:
        why = Bench.gpu_check(args.gpu)
        if why:
            print(f"bench.py: {why}", file=sys.stderr)
            return 2
        if 10 not in only:
            print("bench.py: --gpu is for figure 10, which --only leaves out", file=sys.stderr)
            return 2
    b = Bench(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    t0 = now()
    runners = {1: b.bench_create, 2: b.bench_boot, 3: b.bench_lab, 4: b.bench_footprint, 5: b.bench_reconcile,
               6: b.bench_api, 7: b.bench_gpu_sandbox, 8: b.bench_driver_layer, 9: b.bench_throughput,
               10: b.bench_gpu_host}
    group_s = {}
    try:
        for g in (4, 5, 6, 8, 9, 3, 1, 2, 7, 10):   # quick ones first
            if g in only:
                log(f"--- {g}: {GROUP_NAMES[g]}")
                tg = now()
                try:
                    runners[g]()
                except Exception as e:  # report and go on with the next group
                    b.error(g, f"{type(e).__name__}: {e}")
                group_s[g] = round(now() - tg, 1)
                log(f"--- {g} took {group_s[g]} s")
    finally:
        b.cleanup()
    b.figures.sort(key=lambda f: f["group"])
    elapsed = now() - t0
    qemu_ver = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "command": args.command,
        "elapsed_s": round(elapsed, 1),
        "group_elapsed_s": group_s,
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(), "qemu": qemu_ver,
                 "loadavg_start": load0, "loadavg_end": os.getloadavg(),
                 "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                    if l.startswith("model name")), "?")},
        "guest_kernel": b.release,
        "repeats": {"boots": args.repeats, "daemon_runs": args.daemon_runs, "reconcile_runs": args.reconcile_runs,
                    "lab_rounds": args.lab_rounds,
                    "sandbox_rounds": args.sandbox_rounds or args.lab_rounds, "api_calls": args.api_calls},
        "gpu": args.gpu or None,
    }
    result = {"meta": meta, "figures": b.figures, "errors": b.errors}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    md = os.path.splitext(args.out)[0] + ".md"
    with open(md, "w") as f:
        f.write(f"Measured {meta['date']} with `{args.command}` ({elapsed / 60:.1f} min; {meta['host']['cpus']} CPUs, "
                f"{meta['host']['cpu_model']}, load average {load0[0]:.1f} at start).\n\n")
        f.write(b.markdown() + "\n")
    print()
    print(f"vfiod benchmarks, {meta['date']}, {elapsed / 60:.1f} min, {os.cpu_count()} CPUs, load average "
          f"{load0[0]:.1f} -> {os.getloadavg()[0]:.1f}; each value the median of n runs")
    print(b.table())
    if b.errors:
        print("\nerrors:")
        for e in b.errors:
            print(f"  [{e['group']}] {e['error']}")
    print(f"\nJSON: {args.out}\nMarkdown table: {md}")
    return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
