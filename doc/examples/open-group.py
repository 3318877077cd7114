#!/usr/bin/python3
# OpenGroup from Python (Debian's python3-gi): get the open /dev/vfio/<N>
# of BDF's IOMMU group (bound by vfiod for this uid) and run a command with
# it as fd 3, as `vfioctl open-group BDF --exec -- CMD` does. Run by the
# integration suite's open-group test.
# Usage: open-group.py SOCKET BDF CMD [ARGS...]
import os
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

sock, bdf, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
conn = Gio.DBusConnection.new_for_address_sync(
    "unix:path=" + sock, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
try:
    reply, fds = conn.call_with_unix_fd_list_sync(
        None, "/org/vfiod/Manager1", "org.vfiod.Manager1", "OpenGroup", GLib.Variant("(s)", (bdf,)),
        GLib.VariantType("(hias)"), Gio.DBusCallFlags.NONE, 10000, None, None)
except GLib.Error as e:
    print("open-group.py:", Gio.DBusError.get_remote_error(e), e.message, file=sys.stderr)
    sys.exit(1)
index, group, devices = reply.unpack()
fd = fds.get(index)  # a dup, close-on-exec; the list keeps its own copy
conn.close_sync(None)
os.dup2(fd, 3)  # without close-on-exec
os.environ.update(VFIOD_GROUP_FD="3", VFIOD_IOMMU_GROUP=str(group))
os.execvp(cmd[0], cmd)
