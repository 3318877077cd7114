/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfiod's peer-to-peer D-Bus server on a Unix socket, with bounds on what a
 * client can take (issue 13, finding 2). It replaces GDBusServer, which
 * gives every connection a thread of its own for the authentication, with
 * no deadline and no cap, and lets GDBus queue replies and signals without
 * bound for a client that does not read:
 *
 *  - accept: the peer's uid from the kernel (SO_PEERCRED) is counted
 *    against a total and a per-uid cap (VfdConnLimits; root has no per-uid
 *    cap and a few slots kept for it); beyond them the connection gets one
 *    line, "ERROR \"vfiod: ...\"", and is closed;
 *  - authentication (SASL EXTERNAL, by GDBus, with the caller's
 *    GDBusAuthObserver) runs on a bounded thread pool and must finish within
 *    auth_timeout_s seconds, else the connection is closed;
 *  - once authenticated, the skeleton is exported on the connection, and a
 *    filter (GDBus worker thread) checks every method call before it is
 *    dispatched: calls in flight per connection, every array argument and
 *    the request size (vfd_api_check_args()); a refused call gets an
 *    org.vfiod.Error.LimitExceeded (or InvalidArgument) reply. A client
 *    that leaves half of its socket's send buffer unread (it is not reading)
 *    is disconnected when it sends a call, and before each signal
 *    (vfd_api_server_kick_slow());
 *  - every refusal is logged, rate-limited (vfd_log_limited()).
 * Main-loop objects (the GMainContext that was the thread default when the
 * server was made) except where said. */

#include <gio/gio.h>

typedef struct {
  guint max_connections;         /* [daemon] max_connections: in total, members and root */
  guint max_connections_per_uid; /* [daemon] max_connections_per_uid: per member uid */
  guint root_reserved;           /* more for root beyond max_connections (VFD_API_ROOT_RESERVED) */
  guint auth_timeout_s;          /* [daemon] auth_timeout: seconds from accept to authenticated */
  guint max_pending_calls;       /* per connection (VFD_API_MAX_PENDING_CALLS) */
  guint max_array_entries;       /* per array argument (VFD_API_MAX_ARRAY_ENTRIES) */
  gsize max_request_bytes;       /* per call (VFD_API_MAX_REQUEST_BYTES) */
} VfdApiLimits;

/* The built-in defaults of api-limits.h. */
void vfd_api_limits_init(VfdApiLimits *ret);

typedef struct VfdApiServer VfdApiServer;

/* Listens on the Unix socket @socket_path (which must not exist; its mode
 * is the caller's business) and exports @skeleton at @object_path on every
 * authenticated connection. @observer decides who may connect (its
 * "authorize-authenticated-peer" runs on an authentication thread).
 * Errors: G_IO_ERROR from the listener (the path exists, cannot bind). */
VfdApiServer *vfd_api_server_new(const char *socket_path, const VfdApiLimits *limits, GDBusAuthObserver *observer,
                                 GDBusInterfaceSkeleton *skeleton, const char *object_path, GError **error);

/* Stops listening, closes every connection (authenticating ones too, and
 * waits for their threads), unexports the skeleton from them. The socket
 * file stays (the caller removes it). NULL is ignored. */
void vfd_api_server_free(VfdApiServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdApiServer, vfd_api_server_free)

/* Disconnects every client that leaves half of its send buffer unread
 * (vfd_backlog_is_slow()): call before emitting a signal, which GDBus
 * would otherwise queue in vfiod's memory for each of them. Returns how
 * many were disconnected. NULL: 0. */
guint vfd_api_server_kick_slow(VfdApiServer *server);

/* Emits the signal @signal_name of @interface_name at @object_path with
 * @params (a tuple; a floating reference is taken) on every authenticated
 * connection whose peer is root or has the uid @uid; @uid -1: on every
 * one. Slow clients are disconnected first (vfd_api_server_kick_slow()).
 * Returns on how many connections it was sent. NULL @server: 0 (@params
 * is still taken). */
guint vfd_api_server_emit_to(VfdApiServer *server, gint64 uid, const char *object_path, const char *interface_name,
                             const char *signal_name, GVariant *params);

/* Connections counted against the caps (authenticating and open). */
guint vfd_api_server_n_connections(VfdApiServer *server);
