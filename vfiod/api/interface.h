/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where the org.vfiod.Manager1 interface (org.vfiod.Manager1.xml, its
 * gdbus-codegen code in vfd-dbus.h) is served: what the daemon and its
 * clients agree on besides the XML. */

/* The object path of the one Manager1 object. */
#define VFD_MANAGER_OBJECT_PATH "/org/vfiod/Manager1"
/* The API's Unix socket: <runtime_dir>/<this> ([daemon] runtime_dir). */
#define VFD_SOCKET_NAME "vfiod.sock"
