/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "qmp.h"

#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>

#include "error.h"

/* Reads lines until one is a JSON object with @key ("QMP", "return" or
 * "error"); QMP events are skipped. Returns the parsed object's node. */
static JsonNode *
read_reply(GDataInputStream *in, GError **error)
{
  for (;;) {
    g_autofree char *line = g_data_input_stream_read_line_utf8(in, NULL, NULL, error);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o;

    if (!line) {
      if (error && !*error)
        g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "QEMU closed the QMP socket");
      return NULL;
    }
    if (!json_parser_load_from_data(parser, line, -1, NULL) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
      continue;
    o = json_node_get_object(json_parser_get_root(parser));
    if (json_object_has_member(o, "QMP") || json_object_has_member(o, "return") ||
        json_object_has_member(o, "error"))
      return json_node_copy(json_parser_get_root(parser));
    /* an event: skip */
  }
}

static gboolean
send_and_check(GOutputStream *out, GDataInputStream *in, const char *json, GError **error)
{
  g_autofree char *msg = g_strdup_printf("%s\n", json);
  g_autoptr(JsonNode) reply = NULL;
  JsonObject *o;

  if (!g_output_stream_write_all(out, msg, strlen(msg), NULL, NULL, error))
    return FALSE;
  reply = read_reply(in, error);
  if (!reply)
    return FALSE;
  o = json_node_get_object(reply);
  if (json_object_has_member(o, "error")) {
    JsonObject *e = json_object_get_object_member(o, "error");
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "QEMU refused %s: %s", json,
                e ? json_object_get_string_member_with_default(e, "desc", "?") : "?");
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_qmp_execute(const char *socket_path, const char *command, guint timeout_ms, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(socket_path);
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GDataInputStream) in = NULL;
  g_autoptr(JsonNode) greeting = NULL;
  g_autofree char *cmd = NULL;
  guint seconds = MAX(1, (timeout_ms + 999) / 1000);

  g_socket_client_set_timeout(client, seconds);
  conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, error);
  if (!conn) {
    g_prefix_error(error, "cannot connect to QMP socket %s: ", socket_path);
    return FALSE;
  }
  g_socket_set_timeout(g_socket_connection_get_socket(conn), seconds);
  in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
  g_data_input_stream_set_newline_type(in, G_DATA_STREAM_NEWLINE_TYPE_ANY);
  greeting = read_reply(in, error);
  if (!greeting || !json_object_has_member(json_node_get_object(greeting), "QMP")) {
    if (error && !*error)
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no QMP greeting");
    return FALSE;
  }
  cmd = command[0] == '{' ? g_strdup(command) : g_strdup_printf("{\"execute\":\"%s\"}", command);
  return send_and_check(g_io_stream_get_output_stream(G_IO_STREAM(conn)), in, "{\"execute\":\"qmp_capabilities\"}",
                        error) &&
         send_and_check(g_io_stream_get_output_stream(G_IO_STREAM(conn)), in, cmd, error);
}
