/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "report-conn.h"

#include <string.h>

#include "error.h"
#include "ready-report.h"

#define READ_CHUNK 4096

struct VfdReportConns {
  guint max_conns;
  VfdReportLimits limits;
  VfdReportAdmitFunc admit;
  VfdReportLineFunc on_line;
  VfdReportClosedFunc on_closed;
  gpointer data;
  GHashTable *conns; /* peer (GUINT_TO_POINTER) -> Conn */
};

typedef struct {
  VfdReportConns *owner;
  guint32 peer;
  char *label;
  GSocketConnection *conn;
  GSource *io;
  GSource *timer;
  GString *line; /* the partial line, at most limits.max_line bytes */
  gsize total;   /* bytes read */
  guint lines;   /* complete lines passed on */
} Conn;

void
vfd_report_limits_init_default(VfdReportLimits *ret)
{
  *ret = (VfdReportLimits){
    .max_line = VFD_REPORT_LINE_MAX,
    .max_bytes = 2 * VFD_REPORT_LINE_MAX,
    .max_lines = 4,
    .timeout_ms = VFD_REPORT_CONN_TIMEOUT_MS,
  };
}

/* Stops reading and closes; the Conn is no longer in the table. */
static void
conn_free(Conn *c)
{
  if (c->io) {
    g_source_destroy(c->io);
    g_source_unref(c->io);
  }
  if (c->timer) {
    g_source_destroy(c->timer);
    g_source_unref(c->timer);
  }
  g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
  g_object_unref(c->conn);
  g_string_free(c->line, TRUE);
  g_free(c->label);
  g_free(c);
}

/* Ends @c: out of the table, closed, then the callback (@error taken). */
static void
conn_finish(Conn *c, GError *error)
{
  VfdReportConns *o = c->owner;
  guint32 peer = c->peer;
  g_autofree char *label = g_steal_pointer(&c->label);
  g_autoptr(GError) e = error;

  g_hash_table_steal(o->conns, GUINT_TO_POINTER(peer));
  conn_free(c);
  if (o->on_closed)
    o->on_closed(peer, label, e, o->data);
}

static void
emit_line(Conn *c)
{
  VfdReportConns *o = c->owner;

  if (o->on_line)
    o->on_line(c->peer, c->label, c->line->str, c->line->len, o->data);
  g_string_truncate(c->line, 0);
}

/* Takes @n new bytes: complete lines are passed on; FALSE with @error
 * when a limit is crossed. */
static gboolean
conn_take(Conn *c, const char *buf, gsize n, GError **error)
{
  const VfdReportLimits *l = &c->owner->limits;
  gboolean over = n > l->max_bytes - c->total;

  /* The bytes up to max_bytes count; the connection ends after them. */
  if (over)
    n = l->max_bytes - c->total;
  c->total += n;
  while (n > 0) {
    const char *nl = memchr(buf, '\n', n);
    gsize seg = nl ? (gsize) (nl - buf) : n;

    if (c->line->len + seg > l->max_line) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "sent a line longer than %" G_GSIZE_FORMAT " bytes",
                  l->max_line);
      return FALSE;
    }
    g_string_append_len(c->line, buf, (gssize) seg);
    if (!nl)
      break;
    if (++c->lines > l->max_lines) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "sent more than %u lines", l->max_lines);
      return FALSE;
    }
    emit_line(c);
    buf += seg + 1;
    n -= seg + 1;
  }
  if (over) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "sent more than %" G_GSIZE_FORMAT " bytes",
                l->max_bytes);
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_conn_readable(GSocket *socket, GIOCondition cond, gpointer data)
{
  Conn *c = data;
  char buf[READ_CHUNK];
  GError *error = NULL;
  gssize n;

  /* One read per wake-up, so that one busy peer cannot starve the loop. */
  n = g_socket_receive(socket, buf, sizeof buf, NULL, &error);
  if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
    g_clear_error(&error);
    return G_SOURCE_CONTINUE;
  }
  if (n < 0) {
    GError *e = g_error_new(VFD_ERROR, VFD_ERROR_FAILED, "read failed: %s", error->message);
    g_error_free(error);
    conn_finish(c, e);
    return G_SOURCE_REMOVE;
  }
  if (n == 0) {
    /* The peer closed: a last line without "\n" counts too. */
    if (c->line->len > 0) {
      if (c->lines + 1 > c->owner->limits.max_lines) {
        conn_finish(c, g_error_new(VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "sent more than %u lines",
                                   c->owner->limits.max_lines));
        return G_SOURCE_REMOVE;
      }
      c->lines++;
      emit_line(c);
    }
    conn_finish(c, NULL);
    return G_SOURCE_REMOVE;
  }
  if (!conn_take(c, buf, (gsize) n, &error)) {
    conn_finish(c, error);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_conn_timeout(gpointer data)
{
  Conn *c = data;

  conn_finish(c, g_error_new(VFD_ERROR, VFD_ERROR_TIMED_OUT, "still open after %u ms", c->owner->limits.timeout_ms));
  return G_SOURCE_REMOVE;
}

VfdReportConns *
vfd_report_conns_new(guint max_conns, const VfdReportLimits *limits, VfdReportAdmitFunc admit,
                     VfdReportLineFunc on_line, VfdReportClosedFunc on_closed, gpointer data)
{
  VfdReportConns *o = g_new0(VfdReportConns, 1);

  o->max_conns = max_conns;
  o->limits = *limits;
  o->admit = admit;
  o->on_line = on_line;
  o->on_closed = on_closed;
  o->data = data;
  o->conns = g_hash_table_new(g_direct_hash, g_direct_equal);
  return o;
}

void
vfd_report_conns_free(VfdReportConns *o)
{
  GHashTableIter it;
  Conn *c;

  if (!o)
    return;
  g_hash_table_iter_init(&it, o->conns);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &c)) {
    g_hash_table_iter_steal(&it);
    conn_free(c);
  }
  g_hash_table_unref(o->conns);
  g_free(o);
}

gboolean
vfd_report_conns_add(VfdReportConns *o, guint32 peer, GSocketConnection *conn, GError **error)
{
  GSocket *socket = g_socket_connection_get_socket(conn);
  g_autofree char *label = NULL;
  GError *refusal = NULL;
  Conn *c;

  if (o->admit && !o->admit(peer, &label, o->data))
    refusal = g_error_new(VFD_ERROR, VFD_ERROR_NOT_FOUND, "peer %u is not one that may report", peer);
  else if (g_hash_table_contains(o->conns, GUINT_TO_POINTER(peer)))
    refusal = g_error_new(VFD_ERROR, VFD_ERROR_BUSY, "peer %u has a report connection open already", peer);
  else if (g_hash_table_size(o->conns) >= o->max_conns)
    refusal = g_error_new(VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "%u report connections are open, the most allowed",
                          o->max_conns);
  if (refusal) {
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    g_propagate_error(error, refusal);
    return FALSE;
  }
  c = g_new0(Conn, 1);
  c->owner = o;
  c->peer = peer;
  c->label = g_steal_pointer(&label);
  c->conn = g_object_ref(conn);
  c->line = g_string_new(NULL);
  g_socket_set_blocking(socket, FALSE);
  c->io = g_socket_create_source(socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback(c->io, G_SOURCE_FUNC(on_conn_readable), c, NULL);
  g_source_attach(c->io, g_main_context_get_thread_default());
  c->timer = g_timeout_source_new(o->limits.timeout_ms);
  g_source_set_callback(c->timer, on_conn_timeout, c, NULL);
  g_source_attach(c->timer, g_main_context_get_thread_default());
  g_hash_table_insert(o->conns, GUINT_TO_POINTER(peer), c);
  return TRUE;
}

guint
vfd_report_conns_count(VfdReportConns *o)
{
  return g_hash_table_size(o->conns);
}

gboolean
vfd_report_conns_has(VfdReportConns *o, guint32 peer)
{
  return g_hash_table_contains(o->conns, GUINT_TO_POINTER(peer));
}

void
vfd_report_conns_close(VfdReportConns *o, guint32 peer)
{
  Conn *c = g_hash_table_lookup(o->conns, GUINT_TO_POINTER(peer));

  if (!c)
    return;
  g_hash_table_steal(o->conns, GUINT_TO_POINTER(peer));
  conn_free(c);
}
