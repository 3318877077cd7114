#!/usr/bin/python3
# A vfiod API client in Python with GLib's Gio (Debian: python3-gi): list the
# sandboxes and the host's version. Usage: list-sandboxes.py [SOCKET]
# (default /run/vfiod/vfiod.sock). Run as root or a member of allowed_group.
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

sock = sys.argv[1] if len(sys.argv) > 1 else "/run/vfiod/vfiod.sock"
# A peer-to-peer connection: no message bus, so no destination name.
conn = Gio.DBusConnection.new_for_address_sync(
    "unix:path=" + sock, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)


def call(method, reply_type, args=None):
    return conn.call_sync(None, "/org/vfiod/Manager1", "org.vfiod.Manager1", method, args,
                          GLib.VariantType(reply_type), Gio.DBusCallFlags.NONE, 10000, None).unpack()[0]


for sandbox in call("ListSandboxes", "(aa{sv})"):
    print(sandbox["id"], sandbox["state"])
caps = call("GetCapabilities", "(a{sv})")
print("vfiod", caps["host"]["version"], len(caps["devices"]), "devices")
