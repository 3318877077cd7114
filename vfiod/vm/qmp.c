/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "qmp.h"

#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>

#include "error.h"

/* What vfiod accepts from a QEMU, which may be compromised by its guest:
 * a line of at most QMP_LINE_MAX bytes, nested at most QMP_DEPTH_MAX deep
 * (json-glib recurses), at most QMP_TOTAL_MAX bytes per exchange, all
 * before the deadline. */
#define QMP_LINE_MAX (64 * 1024)
#define QMP_TOTAL_MAX (1024 * 1024)
#define QMP_DEPTH_MAX 32

typedef struct {
  GSocket *sock;
  gint64 deadline; /* monotonic, us */
  gsize total;     /* bytes read so far */
  char buf[4096];
  gsize start, end; /* unread bytes are buf[start, end) */
} QmpReader;

/* The next line (without its newline), or NULL with @error. */
static char *
read_line_bounded(QmpReader *r, GError **error)
{
  g_autoptr(GString) line = g_string_new(NULL);

  for (;;) {
    char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
    gsize take = nl ? (gsize) (nl - (r->buf + r->start)) : r->end - r->start;
    gssize n;
    gint64 left;

    if (line->len + take > QMP_LINE_MAX) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE, "QMP line longer than %d bytes", QMP_LINE_MAX);
      return NULL;
    }
    g_string_append_len(line, r->buf + r->start, (gssize) take);
    r->start += take;
    if (nl) {
      r->start++;
      return g_string_free(g_steal_pointer(&line), FALSE);
    }
    left = r->deadline - g_get_monotonic_time();
    if (left <= 0 || r->total >= QMP_TOTAL_MAX) {
      g_set_error_literal(error, G_IO_ERROR, left <= 0 ? G_IO_ERROR_TIMED_OUT : G_IO_ERROR_MESSAGE_TOO_LARGE,
                          left <= 0 ? "QMP: no answer in time" : "QMP: too much data");
      return NULL;
    }
    g_socket_set_timeout(r->sock, (guint) MAX(1, (left + 999999) / 1000000));
    n = g_socket_receive(r->sock, r->buf, MIN(sizeof r->buf, QMP_TOTAL_MAX - r->total), NULL, error);
    if (n < 0)
      return NULL;
    if (n == 0) {
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "QEMU closed the QMP socket");
      return NULL;
    }
    r->total += (gsize) n;
    r->start = 0;
    r->end = (gsize) n;
  }
}

/* TRUE when @s (JSON text) nests objects/arrays at most @max deep. */
static gboolean
depth_ok(const char *s, guint max)
{
  gboolean in_string = FALSE;
  guint depth = 0;

  for (; *s; s++) {
    if (in_string) {
      if (*s == '\\' && s[1])
        s++;
      else if (*s == '"')
        in_string = FALSE;
    } else if (*s == '"') {
      in_string = TRUE;
    } else if ((*s == '[' || *s == '{') && ++depth > max) {
      return FALSE;
    } else if ((*s == ']' || *s == '}') && depth > 0) {
      depth--;
    }
  }
  return TRUE;
}

/* Reads lines until one is a JSON object with @key ("QMP", "return" or
 * "error"); QMP events and anything unparsable are skipped. Returns the
 * parsed object's node. */
static JsonNode *
read_reply(QmpReader *r, GError **error)
{
  for (;;) {
    g_autofree char *line = read_line_bounded(r, error);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o;

    if (!line)
      return NULL;
    if (!g_utf8_validate(line, -1, NULL) || !depth_ok(line, QMP_DEPTH_MAX) ||
        !json_parser_load_from_data(parser, line, -1, NULL) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
      continue;
    o = json_node_get_object(json_parser_get_root(parser));
    if (json_object_has_member(o, "QMP") || json_object_has_member(o, "return") ||
        json_object_has_member(o, "error"))
      return json_node_copy(json_parser_get_root(parser));
    /* an event: skip */
  }
}

static gboolean
send_and_check(GOutputStream *out, QmpReader *in, const char *json, GError **error)
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
    JsonNode *en = json_object_get_member(o, "error");
    JsonObject *e = en && JSON_NODE_HOLDS_OBJECT(en) ? json_node_get_object(en) : NULL;
    JsonNode *desc = e ? json_object_get_member(e, "desc") : NULL;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "QEMU refused %s: %.200s", json,
                desc && JSON_NODE_HOLDS_VALUE(desc) && json_node_get_value_type(desc) == G_TYPE_STRING
                    ? json_node_get_string(desc)
                    : "?");
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_qmp_execute(const char *socket_path, gint64 expected_pid, const char *command, guint timeout_ms,
                GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(socket_path);
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(JsonNode) greeting = NULL;
  g_autoptr(GCredentials) cred = NULL;
  g_autofree char *cmd = NULL;
  guint seconds = MAX(1, (timeout_ms + 999) / 1000);
  QmpReader r = { .deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000 };
  gint64 peer;

  g_socket_client_set_timeout(client, seconds);
  conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, error);
  if (!conn) {
    g_prefix_error(error, "cannot connect to QMP socket %s: ", socket_path);
    return FALSE;
  }
  r.sock = g_socket_connection_get_socket(conn);
  /* The socket lies in a directory QEMU's user owns: it could be a link to
   * some other service's socket. Talk only to the sandbox's QEMU. */
  cred = g_socket_get_credentials(r.sock, error);
  if (!cred)
    return FALSE;
  peer = g_credentials_get_unix_pid(cred, NULL);
  if (expected_pid > 0 && peer != expected_pid) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "QMP socket %s is served by pid %" G_GINT64_FORMAT ", not the sandbox's QEMU (pid %" G_GINT64_FORMAT
                "): not talking to it",
                socket_path, peer, expected_pid);
    return FALSE;
  }
  greeting = read_reply(&r, error);
  if (!greeting || !json_object_has_member(json_node_get_object(greeting), "QMP")) {
    if (error && !*error)
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no QMP greeting");
    return FALSE;
  }
  cmd = command[0] == '{' ? g_strdup(command) : g_strdup_printf("{\"execute\":\"%s\"}", command);
  return send_and_check(g_io_stream_get_output_stream(G_IO_STREAM(conn)), &r, "{\"execute\":\"qmp_capabilities\"}",
                        error) &&
         send_and_check(g_io_stream_get_output_stream(G_IO_STREAM(conn)), &r, cmd, error);
}
