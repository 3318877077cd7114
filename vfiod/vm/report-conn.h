/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

/* Bounded readers for the lines guests send to vfiod over vsock
 * (guest-init: one "VFIOD_READY {...}\n" or "VFIOD_EXIT {...}\n" per
 * connection, then it closes; see guest-init/vsock.h). A guest is hostile:
 * every connection is bounded in line length, bytes, lines and time, one
 * peer has at most one connection at a time, and the number of connections
 * is capped (issue 13, finding 3). The readers work on any connected
 * stream socket (tests use socketpairs) on the thread-default main context
 * of the thread that adds them (vfiod: the main loop). Memory per
 * connection: at most max_line bytes of partial line plus a 4 KiB read
 * buffer on the stack. */

typedef struct {
  gsize max_line;   /* bytes of one line, without its "\n" */
  gsize max_bytes;  /* bytes read from one connection in all */
  guint max_lines;  /* complete lines per connection */
  guint timeout_ms; /* from the connection's admission to its close, whatever the peer does */
} VfdReportLimits;

/* vfiod's limits: max_line VFD_REPORT_LINE_MAX (ready-report.h, 64 KiB +
 * 256), max_bytes twice that, max_lines 4, timeout_ms 30000. */
#define VFD_REPORT_CONN_TIMEOUT_MS 30000
void vfd_report_limits_init_default(VfdReportLimits *ret);

/* At most this many report connections at once (vfiod). */
#define VFD_REPORT_MAX_CONNS 128

/* A complete line from @peer (without its "\n"; may hold any bytes,
 * including NUL: @len counts them; @line is NUL-terminated after @len).
 * A last line without "\n" before the peer closed is passed too. @label:
 * what the admit function gave for the connection. Must not free the
 * VfdReportConns nor close this connection (the reader goes on after it). */
typedef void (*VfdReportLineFunc)(guint32 peer, const char *label, const char *line, gsize len, gpointer data);

/* The connection from @peer ended and is closed; its slot is free again.
 * @error NULL: the peer closed it. Else why vfiod closed it:
 * VFD_ERROR_LIMIT_EXCEEDED (a line, the bytes or the lines over the
 * limits: the message says which), VFD_ERROR_TIMED_OUT (open for
 * timeout_ms), VFD_ERROR_FAILED (a socket error). Not called for the
 * closes vfd_report_conns_close()/_free() make. */
typedef void (*VfdReportClosedFunc)(guint32 peer, const char *label, const GError *error, gpointer data);

/* Whether a connection from @peer is wanted at all (vfiod: @peer is the
 * CID of a live sandbox); TRUE with a label for it in *@ret_label (newly
 * allocated, may be NULL; vfiod: the sandbox id), passed back to the other
 * callbacks. */
typedef gboolean (*VfdReportAdmitFunc)(guint32 peer, char **ret_label, gpointer data);

typedef struct VfdReportConns VfdReportConns;

/* A set of at most @max_conns connections with @limits (copied), calling
 * @admit (NULL: every peer is wanted), @on_line, @on_closed (may be NULL)
 * with @data. */
VfdReportConns *vfd_report_conns_new(guint max_conns, const VfdReportLimits *limits, VfdReportAdmitFunc admit,
                                     VfdReportLineFunc on_line, VfdReportClosedFunc on_closed, gpointer data);

/* Closes every connection (no callbacks) and frees the set. NULL is fine. */
void vfd_report_conns_free(VfdReportConns *conns);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdReportConns, vfd_report_conns_free)

/* Starts reading @conn (a ref is taken; its socket is made non-blocking),
 * from @peer (vfiod: the vsock CID from getpeername()). The time bound
 * starts now. Refused, with @conn closed at once and nothing read, in this
 * order: VFD_ERROR_NOT_FOUND when @admit does not want @peer;
 * VFD_ERROR_BUSY when @peer has a connection open already;
 * VFD_ERROR_LIMIT_EXCEEDED when max_conns are open. */
gboolean vfd_report_conns_add(VfdReportConns *conns, guint32 peer, GSocketConnection *conn, GError **error);

/* Connections open now. */
guint vfd_report_conns_count(VfdReportConns *conns);

/* Whether @peer has a connection open. */
gboolean vfd_report_conns_has(VfdReportConns *conns, guint32 peer);

/* Closes @peer's connection, if any, without a callback. */
void vfd_report_conns_close(VfdReportConns *conns, guint32 peer);
