/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* floor-daemon: BENCHMARK ONLY. The memory floor of a GLib/GIO D-Bus
 * daemon (figure 4): what vfiod's footprint is compared with. A GMainLoop
 * and a peer-to-peer GDBusServer on a Unix socket, as vfiod's API has,
 * exporting org.vfiod.Manager1 with one method, ListSandboxes, answering
 * an empty list; linked against glib/gio only.
 *
 *   floor-daemon SOCKET
 *
 * Runs until killed. api-latency wait SOCKET gets its answer. */
#include <gio/gio.h>
#include <glib/gstdio.h>

static const char xml[] = "<node><interface name='org.vfiod.Manager1'>"
                          "<method name='ListSandboxes'><arg type='aa{sv}' name='sandboxes' direction='out'/></method>"
                          "</interface></node>";

static GDBusNodeInfo *info;

static void
on_call(GDBusConnection *c, const char *sender, const char *path, const char *iface, const char *method,
        GVariant *params, GDBusMethodInvocation *inv, gpointer data)
{
  g_dbus_method_invocation_return_value(inv, g_variant_new_parsed("(@aa{sv} [],)"));
}

static const GDBusInterfaceVTable vtable = { on_call, NULL, NULL, { 0 } };

static gboolean
on_new_connection(GDBusServer *server, GDBusConnection *c, gpointer data)
{
  g_dbus_connection_register_object(c, "/org/vfiod/Manager1", info->interfaces[0], &vtable, NULL, NULL, NULL);
  g_object_ref(c);
  return TRUE;
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *guid = g_dbus_generate_guid();
  g_autofree char *escaped = NULL, *address = NULL;
  GDBusServer *server;

  if (argc != 2) {
    g_printerr("usage: floor-daemon SOCKET\n");
    return 2;
  }
  g_unlink(argv[1]);
  escaped = g_dbus_address_escape_value(argv[1]);
  address = g_strdup_printf("unix:path=%s", escaped);
  info = g_dbus_node_info_new_for_xml(xml, &error);
  server = info ? g_dbus_server_new_sync(address, G_DBUS_SERVER_FLAGS_NONE, guid, NULL, NULL, &error) : NULL;
  if (!server) {
    g_printerr("floor-daemon: %s\n", error->message);
    return 1;
  }
  g_signal_connect(server, "new-connection", G_CALLBACK(on_new_connection), NULL);
  g_dbus_server_start(server);
  g_main_loop_run(g_main_loop_new(NULL, FALSE));
  return 0;
}
