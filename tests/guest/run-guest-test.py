#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boots guest-init as PID 1 of a QEMU/TCG Q35 guest and checks what it does.

    run-guest-test.py CASE --source-root DIR --build-root DIR
                           --guest-init PATH --guest-image PATH

Each CASE packs its own initramfs with the project's packer (guest-image,
i.e. vfd_initramfs_build()): guest-init as /init, busybox as /bin/sh (its
applets run from the shell without links), a workload script, and, when the
case needs them, kernel modules of the pinned guest kernel with a manifest
(doc/guest-manifest.md) listing them dependencies first. It then boots the
image with -no-reboot, waits for QEMU to exit by itself (it must: guest-init
powers off), and checks the console lines (guest-init/README.md).

The kernel comes from $VFIOD_KERNEL_CACHE (tests/guest/meson.build sets it to
<build>/lab-cache); when that cache is empty, tests/lab/fetch-kernel.sh fills
it. Exit 0: all checks passed; 1: a check failed; 77: something the case
needs is missing here (said on stdout).

Cases: workload, network, vsock-fallback, vsock, root, timeout, power-button,
fatal, nvidia-fake (builds stand-in NVIDIA modules against the pinned
kernel's headers, fetched by kernel-modules/fetch-kernel-headers.sh into
<cache>/headers), driver-layer (the stand-ins in an EROFS driver layer on a
second disk, injected into an ext4 workload root with no NVIDIA files; a
stand-in libcuda.so.1 for the CUDA probe). Nothing leaves the VM: the one
network device is QEMU's user network with restrict=on.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

SKIP = 77
BOOT_TIMEOUT = 240          # seconds for a whole boot-to-power-off under TCG
LINE_RE = re.compile(r'(VFIOD_[A-Z]+) (\{.*\})\s*$')
MAC = '52:54:00:12:34:56'
VSOCK_PORT = 7777


def skip(why):
    print(f'SKIP: {why}')
    sys.exit(SKIP)


def fail(why):
    print(f'not ok - {why}')
    sys.exit(1)


class Checks:
    """Prints one 'ok'/'not ok' line per check; remembers failures."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print(f'ok - {what}')
        else:
            self.failed += 1
            print(f'not ok - {what}' + (f' ({detail})' if detail is not None else ''))
        return cond


class Boot:
    """The outcome of one boot: QEMU's exit, the console and its VFIOD_ lines."""

    def __init__(self, rc, seconds, console, qemu_output):
        self.rc = rc
        self.seconds = seconds
        self.console = console
        self.qemu_output = qemu_output
        self.lines = []       # (tag, object or None when not JSON, raw)
        for raw in console.replace('\r', '').split('\n'):
            m = LINE_RE.search(raw)
            if not m:
                continue
            try:
                obj = json.loads(m.group(2))
            except ValueError:
                obj = None
            self.lines.append((m.group(1), obj, raw))

    def all(self, tag):
        return [obj for t, obj, _ in self.lines if t == tag]

    def one(self, tag):
        found = self.all(tag)
        return found[0] if len(found) == 1 else None

    def index(self, tag):
        for i, (t, _, _) in enumerate(self.lines):
            if t == tag:
                return i
        return -1

    def workload_lines(self):
        out = []
        for raw in self.console.replace('\r', '').split('\n'):
            m = re.search(r'WORKLOAD (.*)$', raw)
            if m:
                out.append(m.group(1).strip())
        return out


class Env:
    def __init__(self, args):
        self.args = args
        self.source = os.path.abspath(args.source_root)
        self.build = os.path.abspath(args.build_root)
        self.work = os.path.join(self.build, 'tests', 'guest', 'work', args.case)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.qemu = shutil.which(os.environ.get('VFIOD_GUEST_QEMU', 'qemu-system-x86_64'))
        if not self.qemu:
            skip('qemu-system-x86_64 not found (install qemu-system-x86)')
        self.busybox = None
        for cand in ('/bin/busybox', '/usr/bin/busybox'):
            if os.path.isfile(cand) and is_static_elf(cand):
                self.busybox = cand
                break
        if not self.busybox:
            skip('no static busybox (install busybox-static)')
        for path in (args.guest_init, args.guest_image):
            if not os.access(path, os.X_OK):
                skip(f'{path} not built')
        self.cache = os.environ.get('VFIOD_KERNEL_CACHE') or os.path.join(self.build, 'lab-cache')
        self._ensure_kernel()
        # the release fetch-kernel.sh fetched: the pins resolved against the archive
        self.release = self._cached('GUEST_KERNEL_RELEASE')
        self.vmlinuz = os.path.join(self.cache, 'vmlinuz')
        self.moddir = os.path.realpath(os.path.join(self.cache, 'modules', self.release))
        self.moddep = self._read_modules_dep()
        self.n_boots = 0
        self.last_console = None

    def _cached(self, key):
        path = os.path.join(self.cache, 'kernel.env')
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith(key + '='):
                    return line.split('=', 1)[1]
        raise SystemExit(f'{key} missing from {path}')

    def _ensure_kernel(self):
        """fetch-kernel.sh: a no-op when the cache holds the kernel that the
        pins resolve to, a download otherwise."""
        fetch = os.path.join(self.source, 'tests', 'lab', 'fetch-kernel.sh')
        r = subprocess.run(['bash', fetch, self.cache], capture_output=True, text=True)
        sys.stdout.write(''.join('# ' + l + '\n' for l in r.stderr.splitlines()))
        if r.returncode != 0:
            fail(f'cannot fetch the guest kernel into {self.cache} (fetch-kernel.sh exit {r.returncode})')

    def _read_modules_dep(self):
        dep = {}
        with open(os.path.join(self.moddir, 'modules.dep')) as f:
            for line in f:
                if ':' not in line:
                    continue
                mod, deps = line.split(':', 1)
                dep[mod.strip()] = deps.split()
        return dep

    def module_paths(self, names):
        """The modules named (e.g. 'virtio_net') and their dependencies, as
        paths relative to the module directory, dependencies first."""
        by_name = {}
        for path in self.moddep:
            base = os.path.basename(path)
            if base.endswith('.ko'):
                by_name[base[:-3].replace('-', '_')] = path
        order = []

        def visit(path, depth=0):
            if path in order:
                return
            if depth > 64:
                raise SystemExit('module dependency loop at ' + path)
            # modules.dep lists every (transitive) dependency, nearest first:
            # load them in reverse.
            for d in reversed(self.moddep.get(path, [])):
                visit(d, depth + 1)
            if path not in order:
                order.append(path)

        for name in names:
            path = by_name.get(name.replace('-', '_'))
            if not path:
                raise SystemExit(f'module {name} is not in {self.moddir}')
            if path.endswith(('.xz', '.zst', '.gz')):
                skip(f'{path} is compressed; guest-init loads uncompressed modules only')
            visit(path)
        return order

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.work, name)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def image(self, scripts=(), modules=(), manifest=None, extra=()):
        """Packs <work>/initrd.cpio.gz. @scripts: (name, text) put at
        /test/<name>; @modules: names whose closure is staged and listed in a
        manifest (or @manifest, the manifest text itself, with the same
        modules staged)."""
        files = [f'{self.busybox}=/bin/sh:0755']
        for name, text in scripts:
            files.append(f'{self.write(name, text, 0o755)}=/test/{name}:0755')
        paths = self.module_paths(modules) if modules else []
        for rel in paths:
            files.append(f'{os.path.join(self.moddir, rel)}=/lib/modules/{self.release}/{rel}:0644')
        if manifest is None and modules:
            manifest = self.manifest(paths)
        if manifest is not None:
            files.append(f'{self.write("manifest", manifest)}=/etc/vfiod/manifest:0644')
        files.extend(extra)
        out = os.path.join(self.work, 'initrd.cpio.gz')
        r = subprocess.run([self.args.guest_image, out, self.args.guest_init] + files, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f'guest-image failed: {r.stderr}')
        return out

    def manifest(self, paths, version=1):
        lines = [f'vfiod-manifest {version}', f'kernel {self.release}', 'nvidia-driver -', 'stamp test']
        lines += [f'module /lib/modules/{self.release}/{rel}' for rel in paths]
        return '\n'.join(lines) + '\n'

    def boot(self, image, append, extra=(), on_console=None, timeout=BOOT_TIMEOUT):
        """Boots @image and waits for QEMU to exit. @on_console(text, qmp_path)
        is called with the console so far every 0.2 s while QEMU runs."""
        self.n_boots += 1
        console = os.path.join(self.work, f'console-{self.n_boots}.log')
        self.last_console = console
        qmp = os.path.join(self.work, 'qmp.sock')
        for p in (console, qmp):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [self.qemu, '-accel', 'tcg', '-M', 'q35', '-m', '512', '-smp', '1',
               '-nodefaults', '-no-user-config', '-no-reboot', '-display', 'none', '-vga', 'none',
               '-serial', f'file:{console}', '-qmp', f'unix:{qmp},server=on,wait=off',
               '-kernel', self.vmlinuz, '-initrd', image,
               '-append', f'console=ttyS0 panic=-1 quiet {append}'] + list(extra)
        print('# ' + ' '.join(cmd))
        qemu_out = open(os.path.join(self.work, 'qemu.out'), 'w+')
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_out, stderr=subprocess.STDOUT)
        try:
            while p.poll() is None:
                if time.monotonic() - start > timeout:
                    p.kill()
                    p.wait()
                    break
                if on_console:
                    on_console(read_text(console), qmp)
                time.sleep(0.2)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        seconds = time.monotonic() - start
        qemu_out.seek(0)
        b = Boot(p.returncode if seconds <= timeout else None, seconds, read_text(console), qemu_out.read())
        qemu_out.close()
        print(f'# QEMU exited {b.rc} after {b.seconds:.1f} s')
        return b


def is_static_elf(path):
    """True for a 64-bit little-endian ELF executable without a PT_INTERP
    program header (no dynamic loader: it runs in an empty initramfs)."""
    import struct
    with open(path, 'rb') as f:
        hdr = f.read(64)
        if len(hdr) < 64 or hdr[:4] != b'\x7fELF' or hdr[4] != 2 or hdr[5] != 1:
            return False
        phoff, = struct.unpack_from('<Q', hdr, 32)
        phentsize, phnum = struct.unpack_from('<HH', hdr, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return all(struct.unpack_from('<I', ph, i * phentsize)[0] != 3 for i in range(phnum))


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except FileNotFoundError:
        return ''


def qmp_command(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile('rw')
    f.readline()  # greeting
    for cmd in ('qmp_capabilities', command):
        f.write(json.dumps({'execute': cmd}) + '\n')
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if 'return' in reply or 'error' in reply:
                break
    s.close()
    return reply


def dep_ordered(env, loaded):
    """True when every module of @loaded comes after the modules it depends
    on (the guest kernel's modules.dep): guest-init loads independent modules
    at the same time, so only the dependency order is fixed."""
    name = lambda p: os.path.basename(p).split('.ko')[0].replace('-', '_')
    deps = {name(k): [name(d) for d in v] for k, v in env._read_modules_dep().items()}
    pos = {m.replace('-', '_'): i for i, m in enumerate(loaded or [])}
    return all(pos[d] < i for m, i in pos.items() for d in deps.get(m, []) if d in pos)


def check_common(c, b, sandbox, exit_status=None, poweroff_reason='workload-exit', bound=BOOT_TIMEOUT):
    """Checks every case shares: QEMU exited by itself in time, no panic,
    one READY (v1, the sandbox), the EXIT (when @exit_status is given) and a
    POWEROFF after it, in that order."""
    c.check(b.rc == 0, f'QEMU exited by itself, status 0, within {bound} s', f'rc {b.rc} after {b.seconds:.0f} s')
    c.check('Kernel panic' not in b.console, 'no kernel panic on the console')
    c.check(all(obj is not None for _, obj, _ in b.lines), 'every VFIOD_ line holds valid JSON',
            [raw for _, obj, raw in b.lines if obj is None])
    ready = b.one('VFIOD_READY')
    c.check(ready is not None, 'exactly one VFIOD_READY line', len(b.all('VFIOD_READY')))
    ready = ready or {}
    c.check(ready.get('v') == 1 and ready.get('sandbox') == sandbox, f'ready line is v1 for sandbox {sandbox}')
    t = ready.get('timings_ms', {})
    c.check(all(k in t for k in ('init_start', 'mounts', 'modules', 'network', 'ready')) and
            t['init_start'] <= t['mounts'] <= t['modules'] <= t['network'] <= t['ready'],
            'timings_ms has init_start <= mounts <= modules <= network <= ready', t)
    c.check(isinstance(ready.get('pci'), list) and any(p.get('id') == '8086:29c0' for p in ready['pci']),
            'the pci list holds the Q35 host bridge 8086:29c0')
    c.check(all(set(p) >= {'bdf', 'id', 'class', 'driver'} for p in ready.get('pci', [])),
            'each pci entry has bdf, id, class, driver')
    ex = None
    if exit_status is not None:
        ex = b.one('VFIOD_EXIT')
        c.check(ex is not None, 'exactly one VFIOD_EXIT line', len(b.all('VFIOD_EXIT')))
        ex = ex or {}
        c.check(ex.get('status') == exit_status, f'VFIOD_EXIT status is {exit_status}', ex.get('status'))
        c.check(ex.get('left') == 0 and ex.get('zombies') == 0, 'nothing left alive, no zombies', ex)
        c.check(b.index('VFIOD_READY') < b.index('VFIOD_EXIT') < b.index('VFIOD_POWEROFF'),
                'READY, then EXIT, then POWEROFF')
    po = b.all('VFIOD_POWEROFF')
    c.check(len(po) == 1 and po[0].get('reason') == poweroff_reason,
            f'one VFIOD_POWEROFF with reason {poweroff_reason}', po)
    c.check(not b.all('VFIOD_FATAL'), 'no VFIOD_FATAL', b.all('VFIOD_FATAL'))
    return ready, ex


# --- the cases ---------------------------------------------------------------------------------

ORPHANS_SH = r'''#!/bin/sh
# Orphans that end while the workload runs: PID 1 must reap them as they go.
echo "WORKLOAD started pid=$$"
for i in 1 2 3 4 5; do (sleep 0.3 &); done
sleep 2
z=0
for f in /proc/[0-9]*/stat; do
  read -r line < "$f" || continue
  s=${line##*) }
  s=${s%% *}
  [ "$s" = Z ] && z=$((z + 1))
done
echo "WORKLOAD zombies=$z"
# Orphans that outlive the workload: PID 1 must kill and reap them.
(sleep 1; sleep 300) &
(sleep 300) &
sh -c 'sleep 300 & exec sleep 300' &
sleep 0.5
echo "WORKLOAD exiting 7"
exit 7
'''


def case_workload(env, c):
    """The workload forks orphans; guest-init reaps them, kills what outlives
    the workload, reports exit status 7 and powers off."""
    image = env.image(scripts=[('orphans.sh', ORPHANS_SH)])
    b = env.boot(image, 'vfiod.sandbox=sb-orphans vfiod.cmd=/bin/sh vfiod.arg=/test/orphans.sh')
    ready, ex = check_common(c, b, 'sb-orphans', exit_status=7)
    c.check(ready.get('workload') == '/bin/sh', 'ready names the workload')
    c.check(ready.get('modules') == [] and ready.get('net') is None and ready.get('root') is None,
            'no manifest: no modules; no network, no root')
    out = b.workload_lines()
    c.check('zombies=0' in out, 'no zombie while the workload ran (orphans reaped as they ended)', out)
    c.check(ex.get('signal') == 0 and ex.get('reason') == 'exit', 'it exited by itself (signal 0)', ex)
    c.check(ex.get('killed', 0) >= 3, 'processes outliving the workload were found and signalled (>= 3)', ex)
    c.check(ex.get('reaped', 0) >= 5 + ex.get('killed', 0), 'reaped >= 5 early orphans + the killed ones', ex)
    c.check(ex.get('runtime_ms', 0) >= 2500, 'runtime_ms covers the workload (>= 2.5 s)', ex.get('runtime_ms'))


NET_SH = r'''#!/bin/sh
echo "WORKLOAD firmware_path=$(cat /sys/module/firmware_class/parameters/path)"
echo "WORKLOAD napi_tx=$(cat /sys/module/virtio_net/parameters/napi_tx)"
ip -4 addr show dev eth0 | while read -r l; do echo "WORKLOAD addr $l"; done
ip -4 route show | while read -r l; do echo "WORKLOAD route $l"; done
ip link show lo | while read -r l; do echo "WORKLOAD lo $l"; done
while read -r l; do echo "WORKLOAD resolv $l"; done < /etc/resolv.conf
exit 0
'''


def case_network(env, c):
    """The network keys configure eth0 over netlink (address, default route,
    resolv.conf, lo up), as the ready line and the workload both see it."""
    # The manifest also gives virtio_net a parameter and names a firmware
    # directory: both must reach the kernel.
    paths = env.module_paths(['virtio_pci', 'virtio_net'])
    manifest = env.manifest(paths).replace('/virtio_net.ko\n', '/virtio_net.ko napi_tx=N\n')
    manifest += 'firmware /lib/firmware\n'
    fw = env.write('vfiod-test.bin', 'not really firmware\n')
    image = env.image(scripts=[('net.sh', NET_SH)], modules=['virtio_pci', 'virtio_net'], manifest=manifest,
                      extra=[f'{fw}=/lib/firmware/vfiod-test.bin:0644'])
    b = env.boot(image, 'vfiod.sandbox=sb-net vfiod.ip=10.0.2.15/24 vfiod.gw=10.0.2.2 vfiod.dns=10.0.2.3,10.0.2.4 '
                 'vfiod.cmd=/bin/sh vfiod.arg=/test/net.sh',
                 extra=['-netdev', 'user,id=n0,restrict=on', '-device', f'virtio-net-pci,netdev=n0,mac={MAC}'])
    ready, ex = check_common(c, b, 'sb-net', exit_status=0)
    net = ready.get('net') or {}
    c.check(net.get('if') == 'eth0' and net.get('mac') == MAC, f'ready net: eth0 with MAC {MAC}', net)
    c.check(net.get('ip') == '10.0.2.15/24', 'ready net: the address read back is 10.0.2.15/24', net.get('ip'))
    c.check(net.get('gw') == '10.0.2.2' and net.get('dns') == ['10.0.2.3', '10.0.2.4'], 'ready net: gw and dns', net)
    c.check('virtio_net' in ready.get('modules', []) and 'virtio_pci' in ready.get('modules', []),
            'ready modules include virtio_pci and virtio_net', ready.get('modules'))
    nic = [p for p in ready.get('pci', []) if p.get('id') == '1af4:1000']
    c.check(len(nic) == 1 and nic[0].get('driver') == 'virtio-pci', 'the NIC 1af4:1000 is bound to virtio-pci', nic)
    out = ' | '.join(b.workload_lines())
    c.check('firmware_path=/lib/firmware' in out, 'firmware_class looks in the staged /lib/firmware', out)
    c.check('napi_tx=N' in out, 'the manifest\'s module parameter napi_tx=N reached virtio_net', out)
    c.check('inet 10.0.2.15/24' in out, 'the workload sees inet 10.0.2.15/24 on eth0', out)
    c.check('default via 10.0.2.2 dev eth0' in out, 'the workload sees the default route via 10.0.2.2', out)
    c.check('resolv nameserver 10.0.2.3' in out and 'resolv nameserver 10.0.2.4' in out,
            '/etc/resolv.conf lists both name servers', out)
    c.check(re.search(r'lo 1: lo: <[^>]*\bUP\b', out) is not None, 'lo is up', out)


class VsockListener(threading.Thread):
    """Accepts connections on the host's AF_VSOCK port and keeps each
    connection's bytes."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        self.sock.bind((socket.VMADDR_CID_ANY, port))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.received = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            conn.settimeout(5)
            data = b''
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.close()
            self.received.append(data.decode('utf-8', 'replace'))


def vsock_case(env, c, host_side):
    image = env.image(modules=['virtio_pci', 'vmw_vsock_virtio_transport'])
    append = (f'vfiod.sandbox=sb-vsock vfiod.report=vsock:{VSOCK_PORT} vfiod.cmd=/bin/sh vfiod.arg=-c '
              '"vfiod.arg=echo WORKLOAD ran; exit 5"')
    extra = []
    listener = None
    if host_side:
        cid = 3 + os.getpid() % 100000
        extra = ['-device', f'vhost-vsock-pci,guest-cid={cid}']
        listener = VsockListener(VSOCK_PORT)
        listener.start()
    b = env.boot(image, append, extra=extra)
    if listener:
        time.sleep(1)
        listener.stop = True
        listener.join()
    ready, ex = check_common(c, b, 'sb-vsock', exit_status=5)
    c.check(ready.get('report') == f'vsock:{VSOCK_PORT}', 'ready names the report target', ready.get('report'))
    c.check('vmw_vsock_virtio_transport' in ready.get('modules', []), 'the vsock transport module was loaded')
    reports = b.all('VFIOD_REPORT')
    by_line = {r.get('line'): r for r in reports}
    c.check(set(by_line) == {'VFIOD_READY', 'VFIOD_EXIT'}, 'a VFIOD_REPORT for the READY and the EXIT line',
            reports)
    if host_side:
        c.check(all(r.get('ok') is True and r.get('attempts') == 1 for r in reports),
                'both were sent over vsock at the first attempt', reports)
        got = ''.join(listener.received)
        console_ready = [raw for t, _, raw in b.lines if t == 'VFIOD_READY']
        c.check(len(listener.received) == 2, 'the host got two connections', listener.received)
        c.check(console_ready and got.startswith(console_ready[0][console_ready[0].index('VFIOD_READY'):].strip()),
                'the host got the same VFIOD_READY line as the console', got[:200])
        c.check('VFIOD_EXIT {"status":5' in got, 'the host got the VFIOD_EXIT line', got[-300:])
    else:
        # No vsock device: connect() fails; guest-init retries, then says so,
        # and the console lines stand as the report.
        c.check(all(r.get('ok') is False and r.get('attempts') == 3 and r.get('error') for r in reports),
                'without a vsock device: ok false after 3 attempts, with the error', reports)
        c.check('could not send VFIOD_READY to the host' in b.console, 'a warning says the console is the report')


def case_vsock_fallback(env, c):
    """vfiod.report=vsock:PORT without a vsock device in the VM: the report
    fails (retried, bounded), is said so, and the console still has it."""
    vsock_case(env, c, host_side=False)


def case_vsock(env, c):
    """vfiod.report=vsock:PORT with a vhost-vsock device: the host listener
    receives the READY and EXIT lines."""
    if not os.path.exists('/dev/vhost-vsock'):
        skip('/dev/vhost-vsock does not exist on this machine (vhost_vsock module not loaded or not '
             'available): the host side of the vsock report cannot be tested here')
    if not hasattr(socket, 'AF_VSOCK'):
        skip('this Python has no AF_VSOCK')
    try:
        probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        probe.close()
    except OSError as e:
        skip(f'cannot open an AF_VSOCK socket on the host: {e}')
    vsock_case(env, c, host_side=True)


ROOT_SH = r'''#!/bin/sh
echo "WORKLOAD marker=$(cat /etc/marker)"
if [ -e /init ]; then echo "WORKLOAD initramfs-visible=yes"; else echo "WORKLOAD initramfs-visible=no"; fi
echo "WORKLOAD pid1=$(cat /proc/1/comm)"
[ -c /dev/console ] && echo "WORKLOAD dev=yes"
touch /tmp/x && echo "WORKLOAD tmp=yes"
[ -d /sys/fs/cgroup ] && [ -e /sys/fs/cgroup/cgroup.controllers ] && echo "WORKLOAD cgroup2=yes"
echo "WORKLOAD pwd=$(pwd) home=$HOME term=$TERM path=$PATH"
exit 3
'''


def case_root(env, c):
    """vfiod.root=/dev/vda: the workload runs chroot()ed in an ext4 disk,
    with /dev, /proc, /sys, /run, /tmp bind-mounted in."""
    mkfs = shutil.which('mkfs.ext4') or shutil.which('mke2fs', path='/usr/sbin:/sbin:' + os.environ.get('PATH', ''))
    if not mkfs:
        skip('mkfs.ext4 not found (install e2fsprogs)')
    tree = os.path.join(env.work, 'rootfs')
    for d in ('bin', 'etc', 'test', 'dev', 'proc', 'sys', 'run', 'tmp'):
        os.makedirs(os.path.join(tree, d), exist_ok=True)
    shutil.copy(env.busybox, os.path.join(tree, 'bin', 'sh'))
    with open(os.path.join(tree, 'etc', 'marker'), 'w') as f:
        f.write('on-the-disk\n')
    with open(os.path.join(tree, 'test', 'root.sh'), 'w') as f:
        f.write(ROOT_SH)
    os.chmod(os.path.join(tree, 'test', 'root.sh'), 0o755)
    disk = os.path.join(env.work, 'root.ext4')
    r = subprocess.run([mkfs, '-q', '-F', '-t', 'ext4', '-d', tree, disk, '16M'], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'mkfs.ext4 failed: {r.stderr}')
    # crc32c: ext4 and jbd2 ask the crypto API for it (metadata_csum); the
    # guest has no modprobe to load it on demand.
    image = env.image(modules=['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'])
    b = env.boot(image, 'vfiod.sandbox=sb-root vfiod.root=/dev/vda vfiod.rootfstype=ext4 '
                 'vfiod.cmd=/bin/sh vfiod.arg=/test/root.sh',
                 extra=['-drive', f'file={disk},format=raw,if=none,id=d0', '-device', 'virtio-blk-pci,drive=d0'])
    ready, ex = check_common(c, b, 'sb-root', exit_status=3)
    c.check(ready.get('root') == {'dev': '/dev/vda', 'fstype': 'ext4'}, 'ready root: /dev/vda, ext4', ready.get('root'))
    c.check('root' in ready.get('timings_ms', {}), 'timings_ms has root')
    out = b.workload_lines()
    c.check('marker=on-the-disk' in out, 'the workload reads the disk\'s /etc/marker', out)
    c.check('initramfs-visible=no' in out, 'the initramfs is not visible from the workload', out)
    c.check('pid1=init' in out, '/proc (bind-mounted) shows guest-init as PID 1', out)
    c.check('dev=yes' in out and 'tmp=yes' in out and 'cgroup2=yes' in out, '/dev, /tmp and cgroup2 are there',
            out)
    c.check('pwd=/ home=/root term=linux path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' in out,
            'clean environment, cwd /', out)


def case_timeout(env, c):
    """vfiod.timeout=2: the workload is sent SIGTERM after 2 s (its trap
    exits 42) and the exit is reported with reason timeout."""
    image = env.image()
    b = env.boot(image, 'vfiod.sandbox=sb-timeout vfiod.timeout=2 vfiod.cmd=/bin/sh vfiod.arg=-c '
                 '"vfiod.arg=trap \'echo WORKLOAD TERM; exit 42\' TERM; echo WORKLOAD started; '
                 'while :; do sleep 1; done"')
    ready, ex = check_common(c, b, 'sb-timeout', exit_status=42, poweroff_reason='timeout')
    c.check(ex.get('reason') == 'timeout' and ex.get('signal') == 0, 'reason timeout, exited by itself', ex)
    c.check(2000 <= ex.get('runtime_ms', 0) < 10000, 'stopped after 2 s, before the SIGKILL grace',
            ex.get('runtime_ms'))
    c.check('TERM' in b.workload_lines(), 'the workload got SIGTERM', b.workload_lines())


def case_power_button(env, c):
    """ACPI power button (QMP system_powerdown) while a workload that ignores
    SIGTERM runs: SIGTERM to its group, SIGKILL after the grace time, exit
    reported (signal 9), power off."""
    image = env.image(modules=['button', 'evdev'])
    pressed = {}

    def on_console(text, qmp):
        if 'pressed' not in pressed and 'WORKLOAD started' in text:
            pressed['at'] = time.monotonic()
            pressed['pressed'] = qmp_command(qmp, 'system_powerdown')

    b = env.boot(image, 'vfiod.sandbox=sb-button vfiod.cmd=/bin/sh vfiod.arg=-c '
                 '"vfiod.arg=trap \'\' TERM; echo WORKLOAD started; while :; do sleep 1; done"',
                 on_console=on_console)
    c.check('return' in pressed.get('pressed', {}), 'QMP system_powerdown was accepted', pressed.get('pressed'))
    ready, ex = check_common(c, b, 'sb-button', exit_status=128 + 9, poweroff_reason='power-button')
    c.check('button' in ready.get('modules', []) and 'evdev' in ready.get('modules', []),
            'button and evdev were loaded from the manifest')
    c.check('no ACPI power button' not in b.console, 'guest-init found the power button')
    c.check(ex.get('reason') == 'power-button' and ex.get('signal') == 9,
            'reason power-button, killed by SIGKILL after ignoring SIGTERM', ex)
    c.check(ex.get('runtime_ms', 0) >= 10000, 'SIGKILL came after the 10 s grace', ex.get('runtime_ms'))


def case_fatal(env, c):
    """A staged module that cannot load (its dependencies are not staged), or
    a workload that is not there, is fatal: VFIOD_FATAL says which, the guest
    powers off by itself."""
    paths = env.module_paths(['virtio_net'])
    net = [p for p in paths if p.endswith('/virtio_net.ko')]
    image = env.image(modules=['virtio_net'], manifest=env.manifest(net))
    b = env.boot(image, 'vfiod.sandbox=sb-fatal vfiod.report=vsock:7777 vfiod.cmd=/bin/sh vfiod.arg=-c '
                 '"vfiod.arg=echo WORKLOAD must-not-run"')
    c.check(b.rc == 0, 'QEMU exited by itself, status 0', f'rc {b.rc} after {b.seconds:.0f} s')
    c.check('Kernel panic' not in b.console, 'no kernel panic')
    fatal = b.all('VFIOD_FATAL')
    c.check(len(fatal) == 1 and 'virtio_net.ko' in fatal[0].get('error', '') and
            'manifest line 5' in fatal[0].get('error', '') and 'unknown symbol' in fatal[0].get('error', ''),
            'one VFIOD_FATAL naming the module, its manifest line and the unknown symbol', fatal)
    c.check(not b.all('VFIOD_READY') and not b.all('VFIOD_EXIT'), 'no READY, no EXIT')
    c.check('WORKLOAD must-not-run' not in b.console, 'the workload did not run')
    rep = b.all('VFIOD_REPORT')
    c.check(len(rep) == 1 and rep[0].get('line') == 'VFIOD_FATAL' and rep[0].get('ok') is False and
            rep[0].get('attempts') == 1, 'the fatal line was tried once over vsock (no vsock support: not retried)',
            rep)
    po = b.all('VFIOD_POWEROFF')
    c.check(len(po) == 1 and po[0].get('reason') == 'fatal' and b.index('VFIOD_FATAL') < b.index('VFIOD_POWEROFF'),
            'then VFIOD_POWEROFF with reason fatal', po)

    print('# boot 2: a workload that is not in the image')
    image = env.image()
    b = env.boot(image, 'vfiod.sandbox=sb-fatal vfiod.cmd=/usr/bin/missing')
    c.check(b.rc == 0, 'QEMU exited by itself, status 0', f'rc {b.rc} after {b.seconds:.0f} s')
    fatal = b.all('VFIOD_FATAL')
    c.check(len(fatal) == 1 and fatal[0].get('error') == 'workload /usr/bin/missing: No such file or directory',
            'VFIOD_FATAL names the missing workload', fatal)
    c.check(not b.all('VFIOD_READY'), 'no READY: the sandbox is not ready without its workload')
    po = b.all('VFIOD_POWEROFF')
    c.check(len(po) == 1 and po[0].get('reason') == 'fatal', 'VFIOD_POWEROFF with reason fatal', po)


NVIDIA_SH = r'''#!/bin/sh
for n in /dev/nvidia*; do
  [ -e "$n" ] || { echo "WORKLOAD no-nvidia-nodes"; break; }
  set -- $(stat -c '%t %T %a' "$n")
  echo "WORKLOAD node $n $((0x$1)):$((0x$2)) $3"
done
while read -r major name; do
  [ "$name" = nvidia-uvm ] && echo "WORKLOAD uvm-major=$major"
done < /proc/devices
exit 0
'''


def build_fake_nvidia(env):
    """Builds the stand-in nvidia.ko and nvidia-uvm.ko (fake-nvidia/) against
    the pinned kernel's headers; returns the directory holding them."""
    fetch = os.path.join(env.source, 'kernel-modules', 'fetch-kernel-headers.sh')
    if not os.path.exists(fetch):
        skip(f'{fetch} not found: cannot get the guest kernel headers to build the stand-in modules')
    for tool in ('make', 'gcc'):
        if not shutil.which(tool):
            skip(f'{tool} not found: cannot build the stand-in modules')
    # the headers of the kernel in the cache, whatever the pins resolve to now
    r = subprocess.run(['bash', fetch, os.path.join(env.cache, 'headers')], capture_output=True, text=True,
                       env=dict(os.environ, VFIOD_PINS=os.path.join(env.cache, 'kernel.env')))
    if r.returncode != 0:
        sys.stdout.write(r.stderr)
        fail('cannot fetch the guest kernel headers (fetch-kernel-headers.sh exit %d)' % r.returncode)
    kdir = r.stdout.strip().splitlines()[-1]
    src = os.path.join(env.work, 'fake-nvidia')
    shutil.copytree(os.path.join(env.source, 'tests', 'guest', 'fake-nvidia'), src)
    r = subprocess.run(['make', '-C', kdir, f'M={src}', 'modules'], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(os.path.join(src, 'nvidia.ko')):
        sys.stdout.write(r.stdout[-3000:] + r.stderr[-3000:])
        skip(f'building the stand-in modules against {kdir} failed (exit {r.returncode})')
    return src


def case_nvidia_fake(env, c):
    """NVIDIA set-up against stand-in modules (fake-nvidia/: the "nvidia"
    major 195 and a GPU's /proc information, the "nvidia-uvm" major) and
    stand-in nvidia-smi / nvidia-persistenced scripts: module choice by
    vfiod.gpu / vfiod.nvidia, /dev nodes from /proc/devices and the GPU's
    minor, helpers run, all in the report. No real GPU or driver."""
    src = build_fake_nvidia(env)
    upd = f'/lib/modules/{env.release}/updates'
    manifest = '\n'.join([
        'vfiod-manifest 1', f'kernel {env.release}', 'nvidia-driver 570.195.03', 'stamp test',
        f'module {upd}/nvidia.ko minor=3 bdf=0000:00:1f.7', f'module {upd}/nvidia-uvm.ko', '']) + '\n'
    extra = [f'{src}/nvidia.ko={upd}/nvidia.ko:0644', f'{src}/nvidia-uvm.ko={upd}/nvidia-uvm.ko:0644',
             f'{src}/nvidia-smi=/usr/bin/nvidia-smi:0755',
             f'{src}/nvidia-persistenced=/usr/bin/nvidia-persistenced:0755']
    image = env.image(scripts=[('nvidia.sh', NVIDIA_SH)], manifest=manifest, extra=extra)
    cmd = 'vfiod.cmd=/bin/sh vfiod.arg=/test/nvidia.sh'

    print('# boot 1: defaults (vfiod.gpu=on, vfiod.nvidia=uvm)')
    b = env.boot(image, f'vfiod.sandbox=sb-nv {cmd}')
    ready, ex = check_common(c, b, 'sb-nv', exit_status=0)
    nv = ready.get('nvidia') or {}
    c.check(ready.get('modules') == ['nvidia', 'nvidia_uvm'], 'nvidia and nvidia_uvm loaded', ready.get('modules'))
    c.check(nv.get('driver') == '570.195.03', 'ready nvidia.driver is the manifest\'s version', nv)
    c.check(nv.get('nodes') == ['/dev/nvidiactl', '/dev/nvidia3', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'],
            'nodes: nvidiactl, nvidia3 (the minor given to the module), nvidia-uvm, nvidia-uvm-tools',
            nv.get('nodes'))
    c.check(nv.get('persistenced') == 'running' and nv.get('smi') == 'ok', 'persistenced running, nvidia-smi ok', nv)
    c.check(ready.get('gpus') == ['GPU 3: Fake GPU (UUID: GPU-00000000-0000-0000-0000-000000000003)'],
            'gpus holds the nvidia-smi -L line', ready.get('gpus'))
    t = ready.get('timings_ms', {})
    c.check(t.get('modules', 0) <= t.get('gpu', -1) <= t.get('network', 0), 'timings_ms: modules <= gpu <= network', t)
    out = b.workload_lines()
    uvm = [l.split('=')[1] for l in out if l.startswith('uvm-major=')]
    c.check(len(uvm) == 1, 'the stand-in nvidia-uvm registered a major', out)
    uvm = uvm[0] if uvm else '?'
    want = ['node /dev/nvidia-uvm %s:0 666' % uvm, 'node /dev/nvidia-uvm-tools %s:1 666' % uvm,
            'node /dev/nvidia3 195:3 666', 'node /dev/nvidiactl 195:255 666']
    c.check(all(w in out for w in want) and len([l for l in out if l.startswith('node ')]) == 4,
            'the workload sees exactly those 4 character devices, right majors:minors, mode 0666', out)
    c.check(ex.get('killed') == 0, 'nothing was left to kill: guest-init stopped its persistenced itself', ex)
    po = (b.all('VFIOD_POWEROFF') or [{}])[0]
    c.check(po.get('gpu') == {'persistenced': 'stopped', 'unloaded': ['nvidia_uvm', 'nvidia'], 'error': None},
            'power-off: persistenced stopped, nvidia_uvm then nvidia unloaded', po)
    check_teardown_console(c, b, ['nvidia_uvm', 'nvidia'])

    print('# boot 2: vfiod.nvidia=none')
    b = env.boot(image, f'vfiod.sandbox=sb-nv vfiod.nvidia=none {cmd}')
    ready, ex = check_common(c, b, 'sb-nv', exit_status=0)
    c.check(ready.get('modules') == ['nvidia'], 'only nvidia loaded', ready.get('modules'))
    c.check((ready.get('nvidia') or {}).get('nodes') == ['/dev/nvidiactl', '/dev/nvidia3'],
            'nodes: nvidiactl and nvidia3 only', ready.get('nvidia'))
    po = (b.all('VFIOD_POWEROFF') or [{}])[0]
    c.check((po.get('gpu') or {}).get('unloaded') == ['nvidia'], 'power-off: nvidia unloaded', po)

    print('# boot 3: vfiod.gpu=off')
    b = env.boot(image, f'vfiod.sandbox=sb-nv vfiod.gpu=off {cmd}')
    ready, ex = check_common(c, b, 'sb-nv', exit_status=0)
    c.check(ready.get('modules') == [] and ready.get('nvidia') is None and ready.get('gpus') == [],
            'no NVIDIA module, "nvidia":null, no gpus', ready)
    c.check('no-nvidia-nodes' in b.workload_lines(), 'no /dev/nvidia* node', b.workload_lines())
    c.check('gpu' not in ready.get('timings_ms', {}), 'no gpu timing')
    po = (b.all('VFIOD_POWEROFF') or [{}])[0]
    c.check('gpu' not in po, 'power-off: no NVIDIA teardown (nothing was loaded)', po)


def check_teardown_console(c, b, modules):
    """The stand-ins' own words on the console at power-off: persistenced
    got SIGTERM first, then each module's exit ran, in @modules' order,
    all before VFIOD_POWEROFF."""
    text = b.console.replace('\r', '')
    marks = ['fake nvidia-persistenced: SIGTERM, exiting'] + [f'fake-nvidia: module {m} unloaded' for m in modules]
    at = [text.find(m) for m in marks]
    end = text.find('VFIOD_POWEROFF')
    c.check(all(a >= 0 for a in at) and at == sorted(at) and at[-1] < end,
            'console: persistenced stopped, then ' + ', '.join(modules) + ' unloaded, then VFIOD_POWEROFF',
            list(zip(marks, at)) + [('VFIOD_POWEROFF', end)])


LAYER_VERSION = '550.163.01'
LAYER_LIB = '/run/nvidia/driver/usr/lib/x86_64-linux-gnu'
LAYER_BIN = '/run/nvidia/driver/usr/bin'
CLEAN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
FIRMWARE_BYTES = 4096

# The workload in the driver-free root: finds nvidia-smi on its PATH, lets
# the dynamic loader find libcuda.so.1 and libnvidia-ml.so.1 by soname
# (dlopen-cuda), sees the nodes, and checks that the disk itself got nothing.
DRIVER_SH = r'''#!/bin/sh
echo "WORKLOAD path=$PATH"
echo "WORKLOAD ld_library_path=$LD_LIBRARY_PATH"
echo "WORKLOAD smi-at=$(command -v nvidia-smi)"
out=$(nvidia-smi -L 2>&1)
rc=$?
echo "$out" | while read -r l; do echo "WORKLOAD smi: $l"; done
echo "WORKLOAD smi-exit=$rc"
/test/dlopen-cuda
echo "WORKLOAD dlopen-exit=$?"
for n in /dev/nvidia*; do [ -c "$n" ] && echo "WORKLOAD node $n"; done
for f in /usr/bin/nvidia-smi /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 \
         /etc/ld.so.cache /etc/ld.so.conf.d /usr/local/nvidia; do
  [ -e "$f" ] && echo "WORKLOAD disk-has $f"
done
if touch /run/nvidia/driver/probe-write 2>/dev/null; then echo "WORKLOAD layer-writable"
else echo "WORKLOAD layer-read-only"; fi
dmesg | grep 'NVRM: fake: GSP' | sed 's/^.*NVRM/NVRM/' | while read -r l; do echo "WORKLOAD dmesg $l"; done
exit 0
'''


def build_fake_userspace(env, src):
    """Compiles the stand-in libcuda.so.1 (and its versioned file, as the real
    layer has it), libnvidia-ml.so.1 and the dlopen-cuda workload."""
    out = {}
    for name, cmd in (
            (f'libcuda.so.{LAYER_VERSION}', ['-shared', '-fPIC', '-Wl,-soname,libcuda.so.1', 'libcuda.c']),
            (f'libnvidia-ml.so.{LAYER_VERSION}', ['-shared', '-fPIC', '-Wl,-soname,libnvidia-ml.so.1',
                                                  'libnvidia-ml.c']),
            ('dlopen-cuda', ['dlopen-cuda.c'])):
        path = os.path.join(src, name)
        r = subprocess.run(['gcc', '-O2', '-Wall', '-o', path] + cmd, cwd=src, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f'gcc {name} failed: {r.stderr}')
        out[name] = path
    return out


def make_layer(env, src, libs):
    """An EROFS driver layer laid out as build-driver-layer.sh makes it (same
    paths, env file, mkfs.erofs options), holding the stand-ins: modules,
    firmware, nvidia-smi, nvidia-persistenced, libcuda, libnvidia-ml."""
    mkfs = shutil.which('mkfs.erofs')
    if not mkfs:
        skip('mkfs.erofs not found (install erofs-utils)')
    tree = os.path.join(env.work, 'layer')
    shutil.rmtree(tree, ignore_errors=True)
    lib = os.path.join(tree, 'usr/lib/x86_64-linux-gnu')
    upd = os.path.join(tree, 'lib/modules', env.release, 'updates')
    fw = os.path.join(tree, 'lib/firmware/nvidia', LAYER_VERSION)
    for d in (lib, os.path.join(tree, 'usr/bin'), upd, fw, os.path.join(tree, 'etc/vfiod')):
        os.makedirs(d)
    for m in ('nvidia', 'nvidia-modeset', 'nvidia-uvm'):
        shutil.copy(os.path.join(src, m + '.ko'), upd)
    with open(os.path.join(fw, 'gsp_ga10x.bin'), 'wb') as f:
        f.write(b'\x5a' * FIRMWARE_BYTES)
    for name in ('nvidia-smi', 'nvidia-persistenced'):
        shutil.copy(os.path.join(src, name), os.path.join(tree, 'usr/bin', name))
        os.chmod(os.path.join(tree, 'usr/bin', name), 0o755)
    for soname in ('libcuda.so.1', 'libnvidia-ml.so.1'):
        real = soname[:-2] + '.' + LAYER_VERSION
        shutil.copy(libs[real], os.path.join(lib, real))
        os.symlink(real, os.path.join(lib, soname))
    with open(os.path.join(tree, 'etc/vfiod/driver-layer.env'), 'w') as f:
        f.write(f'# test layer\nDRIVER_LAYER_KEY=test-layer\nNVIDIA_DRIVER_VERSION={LAYER_VERSION}\n'
                f'GUEST_KERNEL_RELEASE={env.release}\nGLIBC_MIN=2.34\n')
    image = os.path.join(env.work, 'driver-layer.erofs')
    r = subprocess.run([mkfs, '-zlz4hc', '-T0', '--all-root', image, tree], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'mkfs.erofs failed: {r.stdout}{r.stderr}')
    return image


def make_glibc_root(env, libs):
    """An ext4 workload root with no NVIDIA files: busybox as /bin/sh, the
    host's glibc (the loader and libc.so.6, all dlopen-cuda and the CUDA probe
    need), /var/run -> /run as on Debian, the workload script and
    dlopen-cuda."""
    mkfs = shutil.which('mkfs.ext4') or shutil.which('mke2fs', path='/usr/sbin:/sbin:' + os.environ.get('PATH', ''))
    if not mkfs:
        skip('mkfs.ext4 not found (install e2fsprogs)')
    tree = os.path.join(env.work, 'rootfs')
    shutil.rmtree(tree, ignore_errors=True)
    for d in ('bin', 'etc', 'test', 'dev', 'proc', 'sys', 'run', 'tmp', 'var'):
        os.makedirs(os.path.join(tree, d))
    os.symlink('/run', os.path.join(tree, 'var/run'))
    shutil.copy(env.busybox, os.path.join(tree, 'bin/sh'))
    r = subprocess.run(['ldd', libs['dlopen-cuda']], capture_output=True, text=True)
    glibc = re.findall(r'(/\S+) \(0x', r.stdout)
    if r.returncode != 0 or not any('libc.so.6' in g for g in glibc) or not any('ld-linux' in g for g in glibc):
        skip(f'cannot find the host\'s glibc for the test root (ldd said: {r.stdout}{r.stderr})')
    for g in glibc:
        dest = os.path.join(tree, g.lstrip('/'))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(os.path.realpath(g), dest)
    shutil.copy(libs['dlopen-cuda'], os.path.join(tree, 'test/dlopen-cuda'))
    with open(os.path.join(tree, 'test/driver.sh'), 'w') as f:
        f.write(DRIVER_SH)
    os.chmod(os.path.join(tree, 'test/driver.sh'), 0o755)
    disk = os.path.join(env.work, 'root.ext4')
    r = subprocess.run([mkfs, '-q', '-F', '-t', 'ext4', '-d', tree, disk, '32M'], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'mkfs.ext4 failed: {r.stderr}')
    return disk


def case_driver_layer(env, c):
    """vfiod.driver=virtio:vfiod-driver: an EROFS driver layer (stand-in modules,
    firmware, nvidia-smi, persistenced, libcuda) is mounted read-only,
    its modules loaded, and injected into a workload root with no NVIDIA
    files; the CUDA probe decides readiness per GPU; power-off stops
    persistenced and unloads the modules in order."""
    print('# guest-init --test: vfiod.driver without vfiod.root is refused')
    r = subprocess.run([env.args.guest_init, '--test', '--cmdline', 'vfiod.driver=/dev/vdb vfiod.cmd=/bin/true'],
                       capture_output=True, text=True, timeout=30)
    c.check(r.returncode == 1 and 'vfiod.driver needs vfiod.root' in r.stdout, 'refused: vfiod.driver needs vfiod.root',
            (r.returncode, r.stdout[-300:]))

    src = build_fake_nvidia(env)
    libs = build_fake_userspace(env, src)
    layer = make_layer(env, src, libs)
    disk = make_glibc_root(env, libs)
    modules = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4', 'erofs']
    image = env.image(modules=modules)
    # The disks are named by their virtio-blk serial, as vfiod does
    # (protocol.h, "disks"); the layer sits at the lower PCI address, so
    # the kernel names it vda and the root vdb: guest-init must find each
    # by its serial, not by its place.
    disks = ['-drive', f'file={layer},format=raw,if=none,id=d1,readonly=on', '-device',
             'virtio-blk-pci,drive=d1,addr=0x4,serial=vfiod-driver',
             '-drive', f'file={disk},format=raw,if=none,id=d0', '-device',
             'virtio-blk-pci,drive=d0,addr=0x5,serial=vfiod-root']
    base = 'vfiod.root=virtio:vfiod-root vfiod.cmd=/bin/sh vfiod.arg=/test/driver.sh'
    gpus = ['0000:00:1f.6', '0000:00:1f.7']

    print('# boot 1: the layer on /dev/vda (serial vfiod-driver), the root on /dev/vdb, two stand-in GPUs, every probe passes')
    b = env.boot(image, f'vfiod.sandbox=sb-layer vfiod.driver=virtio:vfiod-driver vfiod.nvidia=uvm,modeset {base}', extra=disks)
    ready, ex = check_common(c, b, 'sb-layer', exit_status=0)
    c.check(ready.get('modules', [])[-3:] == ['nvidia', 'nvidia_modeset', 'nvidia_uvm'] and 'erofs' in ready['modules'],
            'erofs from the initramfs, then nvidia, nvidia_modeset, nvidia_uvm from the layer', ready.get('modules'))
    initramfs_modules = ready.get('modules', [])[:-3]
    want_layer = {'dev': '/dev/vda', 'path': '/run/nvidia/driver', 'version': LAYER_VERSION, 'key': 'test-layer',
                  'modules': 'layer',
                  'firmware': {'path': f'/lib/firmware/nvidia/{LAYER_VERSION}', 'files': ['gsp_ga10x.bin']}}
    c.check(ready.get('driver_layer') == want_layer,
            'ready driver_layer: /dev/vda (found by serial) at /run/nvidia/driver, its version and key, modules from it, the GSP '
            'firmware where the kernel\'s loader looks', ready.get('driver_layer'))
    nv = ready.get('nvidia') or {}
    c.check(nv.get('driver') == LAYER_VERSION and nv.get('persistenced') == 'running' and nv.get('smi') == 'ok',
            'nvidia: the layer\'s version, its persistenced running, its nvidia-smi ok (run in the root)', nv)
    c.check(nv.get('nodes') == ['/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia1', '/dev/nvidia-modeset',
                                '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'], 'nodes for both GPUs, modeset, uvm',
            nv.get('nodes'))
    c.check(len(ready.get('gpus', [])) == 2, 'gpus: two nvidia-smi -L lines', ready.get('gpus'))
    cuda = ready.get('cuda') or {}
    want = [{'bdf': g, 'name': f'Fake GPU {i}', 'driver': LAYER_VERSION, 'probe': 'ok', 'call': None, 'error': None}
            for i, g in enumerate(gpus)]
    c.check(cuda.get('gpus') == want, 'cuda: each GPU by BDF, with its name and driver version, probe ok',
            cuda.get('gpus'))
    c.check(cuda.get('version') == 12040 and cuda.get('error') is None and
            cuda.get('probe') == {'call': None, 'code': 0, 'error': None} and cuda.get('nvrm') == [],
            'cuda: driver API version 12040, no error, no NVRM lines', cuda)
    t = ready.get('timings_ms', {})
    order = ['modules', 'driver', 'gpu', 'network', 'root', 'cuda', 'ready']
    c.check(all(k in t for k in order) and [t[k] for k in order] == sorted(t[k] for k in order),
            'timings_ms: modules <= driver <= gpu <= network <= root <= cuda <= ready', t)
    out = b.workload_lines()
    c.check(f'path={LAYER_BIN}:{CLEAN_PATH}' in out and f'ld_library_path={LAYER_LIB}' in out,
            'the workload\'s PATH and LD_LIBRARY_PATH start with the layer\'s directories', out)
    c.check(f'smi-at={LAYER_BIN}/nvidia-smi' in out and 'smi-exit=0' in out and
            'smi: GPU 0: Fake GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)' in out and
            'smi: GPU 1: Fake GPU (UUID: GPU-00000000-0000-0000-0000-000000000001)' in out,
            'nvidia-smi is on the workload\'s PATH and lists both GPUs', out)
    c.check(f'dlopen libcuda.so.1 from {LAYER_LIB}/libcuda.so.1' in out and
            f'dlopen libnvidia-ml.so.1 from {LAYER_LIB}/libnvidia-ml.so.1' in out and
            'cuda result=0 devices=2' in out and 'dlopen-exit=0' in out,
            'dlopen("libcuda.so.1") and libnvidia-ml.so.1 resolve to the layer; cuInit and 2 devices', out)
    c.check(all(f'node {n}' in out for n in nv.get('nodes', ['?'])), 'the workload sees every /dev/nvidia* node', out)
    c.check(not [l for l in out if l.startswith('disk-has')], 'the root disk got no NVIDIA file, no ld.so change', out)
    c.check('layer-read-only' in out, 'the layer is read-only in the workload', out)
    c.check(f'dmesg NVRM: fake: GSP firmware nvidia/{LAYER_VERSION}/gsp_ga10x.bin: {FIRMWARE_BYTES} bytes' in out,
            'nvidia.ko found its GSP firmware in the layer', out)
    c.check(ex.get('killed') == 0, 'no leftover to kill: persistenced was stopped by guest-init', ex)
    po = (b.all('VFIOD_POWEROFF') or [{}])[0]
    c.check(po.get('gpu') == {'persistenced': 'stopped', 'unloaded': ['nvidia_uvm', 'nvidia_modeset', 'nvidia'],
                              'error': None},
            'power-off: persistenced stopped, then nvidia_uvm, nvidia_modeset, nvidia unloaded', po)
    check_teardown_console(c, b, ['nvidia_uvm', 'nvidia_modeset', 'nvidia'])

    print('# boot 2: cuCtxCreate fails on the second GPU (CUDA_ERROR_SYSTEM_NOT_READY)')
    b = env.boot(image, f'vfiod.sandbox=sb-layer vfiod.driver=virtio:vfiod-driver {base} fakecuda.fail=cuCtxCreate:1:802',
                 extra=disks)
    c.check(b.rc == 0 and 'Kernel panic' not in b.console, 'QEMU exited by itself, no panic', b.rc)
    c.check(not b.all('VFIOD_READY') and not b.all('VFIOD_EXIT') and not b.workload_lines(),
            'not ready: no READY, the workload never ran')
    fatal = b.all('VFIOD_FATAL')
    f = fatal[0] if len(fatal) == 1 and fatal[0] else {}
    c.check(f.get('error') == 'GPU not ready: 0000:00:1f.7: cuCtxCreate: CUDA_ERROR_SYSTEM_NOT_READY',
            'one VFIOD_FATAL naming the GPU, the call and the CUDA error name', fatal)
    cuda = f.get('cuda') or {}
    fgpus = cuda.get('gpus') or [{}, {}]
    c.check(len(fgpus) == 2 and fgpus[0].get('bdf') == gpus[0] and fgpus[0].get('probe') == 'ok' and
            fgpus[1] == {'bdf': gpus[1], 'name': 'Fake GPU 1', 'driver': LAYER_VERSION, 'probe': 'failed',
                         'call': 'cuCtxCreate', 'error': 'CUDA_ERROR_SYSTEM_NOT_READY'},
            'per GPU: the first passed, the second failed in cuCtxCreate', fgpus)
    nvrm = cuda.get('nvrm') or []
    c.check(any(l.startswith('NVRM: Xid (PCI:0000:00:1f.7): 79') for l in nvrm) and
            f'NVRM: fake: GPU {gpus[0]} initialised, minor 0' in nvrm,
            'the kernel\'s NVRM lines are in the report (the driver\'s and the fault\'s)', nvrm)
    po = b.all('VFIOD_POWEROFF')
    c.check(len(po) == 1 and po[0].get('reason') == 'fatal' and
            po[0].get('gpu') == {'persistenced': 'stopped', 'unloaded': ['nvidia_uvm', 'nvidia'], 'error': None},
            'power-off (fatal): persistenced stopped, nvidia_uvm and nvidia unloaded', po)
    check_teardown_console(c, b, ['nvidia_uvm', 'nvidia'])

    print('# boot 3: nvidia.ko from the layer fails its probe (ENODEV), as on a GPU it cannot drive')
    fail_marker = env.write('fake-nvidia-fail', 'fail\n')
    image_fail = env.image(modules=modules, extra=[f'{fail_marker}=/lib/firmware/fake-nvidia-fail:0644'])
    b = env.boot(image_fail, f'vfiod.sandbox=sb-layer vfiod.driver=virtio:vfiod-driver {base}', extra=disks)
    c.check(b.rc == 0 and 'Kernel panic' not in b.console, 'QEMU exited by itself, no panic', b.rc)
    c.check(not b.all('VFIOD_READY') and not b.workload_lines(), 'not ready: no READY, the workload never ran')
    fatal = b.all('VFIOD_FATAL')
    f = fatal[0] if len(fatal) == 1 and fatal[0] else {}
    want_err = (f'load module /run/nvidia/driver/lib/modules/{env.release}/updates/nvidia.ko (driver layer): '
                'No such device')
    c.check(f.get('error') == want_err, 'VFIOD_FATAL names nvidia.ko from the layer and ENODEV', fatal)
    cuda = f.get('cuda') or {}
    c.check(cuda.get('error') == want_err and
            cuda.get('probe') == {'call': 'cuInit', 'code': 100, 'error': 'CUDA_ERROR_NO_DEVICE'},
            'cuda: the module\'s error, and the probe\'s own result (cuInit: CUDA_ERROR_NO_DEVICE)', cuda)
    c.check('NVRM: The NVIDIA probe routine failed for 1 device(s).' in (cuda.get('nvrm') or []) and
            'NVRM: None of the NVIDIA devices were initialized.' in (cuda.get('nvrm') or []),
            'the driver\'s NVRM lines for the failed probe', cuda.get('nvrm'))
    c.check(f.get('smi') == 'exit:9' and (f.get('smi_output') or [''])[0].startswith('NVIDIA-SMI has failed'),
            'nvidia-smi from the layer ran in the root: exit 9 and its message', f)
    c.check(f.get('persistenced') == 'exit:1', 'nvidia-persistenced from the layer ran and failed (exit 1)', f)
    # What the ready line would have said about the guest: the modules that
    # loaded before nvidia.ko (not it), the layer and its firmware, timings.
    c.check(sorted(f.get('modules') or []) == sorted(initramfs_modules) and initramfs_modules and
            dep_ordered(env, f.get('modules')) and f.get('kernel') == env.release and
            f.get('sandbox') == 'sb-layer' and f.get('driver_layer') == want_layer and
            f.get('root') == {'dev': '/dev/vdb', 'fstype': 'ext4'},
            'VFIOD_FATAL: the initramfs\'s modules, each after its dependencies, no nvidia; kernel, sandbox, driver layer with its '
            'firmware, root', f)
    t = f.get('timings_ms') or {}
    order = ['modules', 'driver', 'network', 'root', 'helpers', 'fatal']
    c.check(all(k in t for k in order) and [t[k] for k in order] == sorted(t[k] for k in order) and
            'cuda' not in t and 'ready' not in t and f.get('uptime_ms') == t.get('fatal'),
            'VFIOD_FATAL timings_ms: modules <= driver <= network <= root <= helpers <= fatal, no cuda or ready', t)
    c.check(sorted(p.get('bdf') for p in f.get('pci') or []) == sorted(p.get('bdf') for p in ready.get('pci', [])),
            'VFIOD_FATAL pci: the guest\'s PCI functions, as in the ready line of boot 1', f.get('pci'))
    po = b.all('VFIOD_POWEROFF')
    c.check(len(po) == 1 and po[0].get('reason') == 'fatal' and 'gpu' not in po[0],
            'power-off (fatal), no module to unload', po)

    print('# boot 4: the same root without vfiod.driver: nothing NVIDIA anywhere')
    b = env.boot(image, f'vfiod.sandbox=sb-layer {base}', extra=disks[4:])  # the root disk only
    ready, ex = check_common(c, b, 'sb-layer', exit_status=0)
    c.check(ready.get('driver_layer') is None and ready.get('cuda') is None and ready.get('nvidia') is None,
            'driver_layer, cuda and nvidia are null', ready)
    out = b.workload_lines()
    c.check(f'path={CLEAN_PATH}' in out and 'ld_library_path=' in out and 'smi-at=' in out and
            'smi-exit=0' not in out, 'clean PATH, no LD_LIBRARY_PATH, no nvidia-smi', out)
    c.check(any(l.startswith('dlopen libcuda.so.1 failed') for l in out), 'dlopen("libcuda.so.1") fails', out)
    po = (b.all('VFIOD_POWEROFF') or [{}])[0]
    c.check('gpu' not in po, 'power-off: no NVIDIA teardown', po)


CASES = {
    'workload': case_workload,
    'network': case_network,
    'vsock-fallback': case_vsock_fallback,
    'vsock': case_vsock,
    'root': case_root,
    'timeout': case_timeout,
    'power-button': case_power_button,
    'fatal': case_fatal,
    'nvidia-fake': case_nvidia_fake,
    'driver-layer': case_driver_layer,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('case', choices=sorted(CASES))
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--build-root', required=True)
    ap.add_argument('--guest-init', required=True)
    ap.add_argument('--guest-image', required=True)
    args = ap.parse_args()

    env = Env(args)
    c = Checks()
    print(f'# case {args.case}: {CASES[args.case].__doc__.strip().splitlines()[0]}')
    started = time.monotonic()
    CASES[args.case](env, c)
    print(f'# {args.case}: {time.monotonic() - started:.1f} s')
    if c.failed:
        console = read_text(env.last_console) if env.last_console else ''
        print(f'# console ({env.last_console}), last 80 lines:')
        for line in console.replace('\r', '').split('\n')[-80:]:
            print('#   ' + line)
        qemu_out = read_text(os.path.join(env.work, 'qemu.out')).strip()
        if qemu_out:
            print('# QEMU said: ' + qemu_out)
    print(f'{c.passed} passed, {c.failed} failed')
    return 1 if c.failed else 0


if __name__ == '__main__':
    sys.exit(main())
