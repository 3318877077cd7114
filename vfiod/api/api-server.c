/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "api-server.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixfdlist.h>
#include <gio/gunixsocketaddress.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api-limits.h"
#include "error.h"

/* Refusals, each kind at most 10 lines per 10 s. */
static VfdLogLimit rl_refused = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
static VfdLogLimit rl_auth = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
static VfdLogLimit rl_auth_failed = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
static VfdLogLimit rl_kicked = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
static VfdLogLimit rl_call = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };

void
vfd_api_limits_init(VfdApiLimits *ret)
{
  *ret = (VfdApiLimits){
    .max_connections = VFD_API_MAX_CONNECTIONS_DEFAULT,
    .max_connections_per_uid = VFD_API_MAX_CONNECTIONS_PER_UID_DEFAULT,
    .root_reserved = VFD_API_ROOT_RESERVED,
    .auth_timeout_s = VFD_API_AUTH_TIMEOUT_DEFAULT,
    .max_pending_calls = VFD_API_MAX_PENDING_CALLS,
    .max_array_entries = VFD_API_MAX_ARRAY_ENTRIES,
    .max_request_bytes = VFD_API_MAX_REQUEST_BYTES,
  };
}

/* One client connection, from accept to close. Reference-counted: the
 * server's table, the authentication job and the GDBus filter (worker
 * thread) each hold one. */
typedef struct {
  gint ref;
  VfdApiServer *server; /* main thread only; never touched after conn_drop() */
  GSocketConnection *stream;
  int fd;               /* our own dup of the socket: shutdown() and SIOCOUTQ from any thread */
  uid_t uid;
  pid_t pid;
  GCancellable *cancel; /* fired by the authentication deadline */
  guint auth_timeout;   /* source id */
  GSource *auth_done;   /* attached by the authentication thread; under server->lock */
  GDBusConnection *conn; /* once authenticated */
  GError *auth_error;
  gboolean timed_out;
  gboolean exported;
  gboolean dropped;
  guint filter_id;
  gulong closed_id;
  /* For the filter (worker thread): copies, the server may be gone. */
  guint max_pending;
  guint max_entries;
  gsize max_bytes;
  gint pending; /* atomic: method calls waiting for their reply */
  gint kicked;  /* atomic: shut down by us */
} ApiConn;

struct VfdApiServer {
  VfdApiLimits limits;
  char *guid;
  GDBusAuthObserver *observer;
  GDBusInterfaceSkeleton *skeleton;
  char *object_path;
  GSocketService *service;
  GMainContext *context;
  GThreadPool *auth_pool;
  VfdConnLimits *caps;
  GHashTable *conns; /* ApiConn (a reference) */
  GMutex lock;       /* ApiConn.auth_done */
};

static ApiConn *
conn_ref(ApiConn *c)
{
  g_atomic_int_inc(&c->ref);
  return c;
}

static void
conn_unref(ApiConn *c)
{
  if (!g_atomic_int_dec_and_test(&c->ref))
    return;
  g_clear_object(&c->conn);
  g_clear_object(&c->stream);
  g_clear_object(&c->cancel);
  g_clear_error(&c->auth_error);
  if (c->fd >= 0)
    close(c->fd);
  g_free(c);
}

/* Worker or main thread: the peer gets EOF, GDBus a failed read or write,
 * and the connection closes ("closed" then cleans up). */
static void
conn_kick(ApiConn *c, const char *why)
{
  if (!g_atomic_int_compare_and_exchange(&c->kicked, 0, 1))
    return;
  vfd_log_limited(&rl_kicked, G_LOG_LEVEL_MESSAGE, "API client uid %u (pid %d): %s; disconnected", (guint) c->uid,
                  (int) c->pid, why);
  shutdown(c->fd, SHUT_RDWR);
}

/* Main thread, once: closes what is left and gives the slot back. */
static void
conn_drop(ApiConn *c)
{
  VfdApiServer *s = c->server;

  if (c->dropped)
    return;
  c->dropped = TRUE;
  if (c->auth_timeout) {
    g_source_remove(c->auth_timeout);
    c->auth_timeout = 0;
  }
  if (c->conn) {
    if (c->closed_id)
      g_signal_handler_disconnect(c->conn, c->closed_id);
    c->closed_id = 0;
    if (c->exported)
      g_dbus_interface_skeleton_unexport_from_connection(s->skeleton, c->conn);
    c->exported = FALSE;
    if (c->filter_id)
      g_dbus_connection_remove_filter(c->conn, c->filter_id);
    c->filter_id = 0;
    /* A close waits for a write in progress, which a client that does
     * not read never lets finish: shut the socket down first. */
    shutdown(c->fd, SHUT_RDWR);
    if (!g_dbus_connection_is_closed(c->conn))
      g_dbus_connection_close(c->conn, NULL, NULL, NULL);
  } else {
    shutdown(c->fd, SHUT_RDWR);
    g_io_stream_close(G_IO_STREAM(c->stream), NULL, NULL);
  }
  vfd_conn_limits_release(s->caps, c->uid);
  c->server = NULL;
  g_hash_table_remove(s->conns, c); /* may free c */
}

static void
on_closed(GDBusConnection *conn, gboolean remote_peer_vanished, GError *error, gpointer data)
{
  conn_drop(data);
}

/* Sends @error as the reply to @msg (unless it wants none); logs it. */
static void
refuse_call(ApiConn *c, GDBusConnection *conn, GDBusMessage *msg, const GError *error)
{
  g_autofree char *name = g_dbus_error_encode_gerror(error);

  vfd_log_limited(&rl_call, G_LOG_LEVEL_MESSAGE, "API client uid %u (pid %d): %s refused: %s", (guint) c->uid,
                  (int) c->pid, g_dbus_message_get_member(msg) ? g_dbus_message_get_member(msg) : "call",
                  error->message);
  if (!(g_dbus_message_get_flags(msg) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED)) {
    g_autoptr(GDBusMessage) reply = g_dbus_message_new_method_error_literal(msg, name, error->message);
    g_atomic_int_inc(&c->pending); /* the reply counts down */
    g_dbus_connection_send_message(conn, reply, G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
  }
}

/* The few calls of the message bus's own interface that bus clients make
 * before anything else (gdbus call --address, busctl --address, bus-only
 * client libraries): vfiod's socket is a peer-to-peer connection, so it
 * answers them itself, as the bus would for a bus with two peers, vfiod
 * (VFD_API_PEER_NAME, also owning "org.vfiod") and the client (its
 * Hello name). Signals go to every client, so AddMatch and RemoveMatch only
 * say yes. Any other call to org.freedesktop.DBus gets UnknownMethod.
 * Returns the reply (a new message), or NULL when @msg is not for the bus. */
#define VFD_API_PEER_NAME ":1.0"
/* Fd passing is negotiated for OpenGroup's replies; only CreateSandbox
 * and ValidateSandbox take fds (their disks' fd h, at most
 * VFD_API_MAX_FDS). FALSE with @error for any other. */
static gboolean
message_may_carry_fds(GDBusMessage *msg, GError **error)
{
  const char *member = g_dbus_message_get_member(msg);
  int n = g_unix_fd_list_get_length(g_dbus_message_get_unix_fd_list(msg));

  if (!member || (!g_str_equal(member, "CreateSandbox") && !g_str_equal(member, "ValidateSandbox"))) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "only CreateSandbox and ValidateSandbox take file descriptors (their disks)");
    return FALSE;
  }
  if (n > VFD_API_MAX_FDS) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "%d file descriptors came with the call, at most %d", n,
                VFD_API_MAX_FDS);
    return FALSE;
  }
  return TRUE;
}

static GDBusMessage *
bus_call_reply(ApiConn *c, GDBusMessage *msg)
{
  const char *iface = g_dbus_message_get_interface(msg);
  const char *member = g_dbus_message_get_member(msg);
  const char *dest = g_dbus_message_get_destination(msg);
  GVariant *body = g_dbus_message_get_body(msg);
  const char *name = NULL;

  if (g_strcmp0(iface, "org.freedesktop.DBus") != 0 ||
      (dest && g_strcmp0(dest, "org.freedesktop.DBus") != 0) || !member)
    return NULL;
  if (body && g_variant_is_of_type(body, G_VARIANT_TYPE("(s)")))
    g_variant_get(body, "(&s)", &name);
  if (g_str_equal(member, "Hello")) {
    g_autofree char *unique = g_strdup_printf(":1.%d", c->fd + 1);
    GDBusMessage *r = g_dbus_message_new_method_reply(msg);
    g_dbus_message_set_body(r, g_variant_new("(s)", unique));
    return r;
  }
  if (g_str_equal(member, "AddMatch") || g_str_equal(member, "RemoveMatch"))
    return g_dbus_message_new_method_reply(msg);
  if (name && (g_str_equal(member, "GetNameOwner") || g_str_equal(member, "NameHasOwner") ||
               g_str_equal(member, "GetConnectionUnixUser") || g_str_equal(member, "GetConnectionUnixProcessID"))) {
    gboolean ours = g_str_equal(name, "org.vfiod") || g_str_equal(name, VFD_API_PEER_NAME) ||
                    g_str_equal(name, "org.freedesktop.DBus");
    GDBusMessage *r;
    if (g_str_equal(member, "NameHasOwner")) {
      r = g_dbus_message_new_method_reply(msg);
      g_dbus_message_set_body(r, g_variant_new("(b)", ours));
      return r;
    }
    if (!ours)
      return g_dbus_message_new_method_error(msg, "org.freedesktop.DBus.Error.NameHasNoOwner",
                                             "no name '%s' on this peer-to-peer socket (only org.vfiod)", name);
    r = g_dbus_message_new_method_reply(msg);
    if (g_str_equal(member, "GetNameOwner"))
      g_dbus_message_set_body(r, g_variant_new("(s)", VFD_API_PEER_NAME));
    else if (g_str_equal(member, "GetConnectionUnixUser"))
      g_dbus_message_set_body(r, g_variant_new("(u)", (guint32) geteuid()));
    else
      g_dbus_message_set_body(r, g_variant_new("(u)", (guint32) getpid()));
    return r;
  }
  return g_dbus_message_new_method_error(msg, "org.freedesktop.DBus.Error.UnknownMethod",
                                         "org.freedesktop.DBus.%s is not served on vfiod's peer-to-peer socket "
                                         "(Hello, AddMatch, RemoveMatch, GetNameOwner, NameHasOwner, "
                                         "GetConnectionUnixUser and GetConnectionUnixProcessID are)",
                                         member);
}

/* GDBus worker thread, for every message in and out of @conn. */
static GDBusMessage *
on_filter(GDBusConnection *conn, GDBusMessage *msg, gboolean incoming, gpointer data)
{
  ApiConn *c = data;
  GDBusMessageType type = g_dbus_message_get_message_type(msg);
  g_autoptr(GError) error = NULL;
  gboolean wants_reply;
  guint queued = 0, sndbuf = 0;

  if (!incoming) {
    if (type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN || type == G_DBUS_MESSAGE_TYPE_ERROR) {
      gint old;
      do
        old = g_atomic_int_get(&c->pending);
      while (old > 0 && !g_atomic_int_compare_and_exchange(&c->pending, old, old - 1));
    }
    if (type == G_DBUS_MESSAGE_TYPE_SIGNAL && !g_dbus_message_get_sender(msg)) {
      /* Bus clients (gdbus monitor, a subscription with a sender) match
       * signals by their sender: say it is vfiod's name (bus_call_reply()). */
      GDBusMessage *copy = g_dbus_message_copy(msg, NULL);
      if (copy) {
        g_dbus_message_set_sender(copy, VFD_API_PEER_NAME);
        g_object_unref(msg);
        return copy;
      }
    }
    return msg;
  }
  if (g_atomic_int_get(&c->kicked)) {
    g_object_unref(msg);
    return NULL;
  }
  if (type != G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    return msg;
  wants_reply = !(g_dbus_message_get_flags(msg) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED);

  /* A client that sends but does not read what it gets back. */
  if (vfd_socket_backlog(c->fd, &queued, &sndbuf) == 0 && vfd_backlog_is_slow(queued, sndbuf)) {
    g_autofree char *why = g_strdup_printf("does not read its replies (%u of %u bytes of socket buffer unread)",
                                           queued, sndbuf);
    conn_kick(c, why);
    g_object_unref(msg);
    return NULL;
  }
  if (wants_reply && (guint) g_atomic_int_get(&c->pending) >= c->max_pending)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                "%u calls on this connection are waiting for their reply, the most there may be; "
                "wait for their replies (or open another connection)",
                c->max_pending);
  else if (g_dbus_message_get_unix_fd_list(msg) &&
           g_unix_fd_list_get_length(g_dbus_message_get_unix_fd_list(msg)) > 0 &&
           !message_may_carry_fds(msg, &error))
    ; /* the message (and its fds) go now */
  else
    vfd_api_check_args(g_dbus_message_get_body(msg), c->max_entries, c->max_bytes, &error);
  if (error) {
    refuse_call(c, conn, msg, error);
    g_object_unref(msg);
    if (g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED))
      vfd_heap_trim_later();
    return NULL;
  }
  {
    g_autoptr(GDBusMessage) bus_reply = bus_call_reply(c, msg);
    if (bus_reply) {
      if (wants_reply) {
        g_atomic_int_inc(&c->pending); /* the reply counts down */
        g_dbus_connection_send_message(conn, bus_reply, G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
      }
      g_object_unref(msg);
      return NULL;
    }
  }
  if (wants_reply)
    g_atomic_int_inc(&c->pending);
  return msg;
}

static gboolean
on_auth_timeout(gpointer data)
{
  ApiConn *c = data;

  c->auth_timeout = 0;
  c->timed_out = TRUE;
  vfd_log_limited(&rl_auth, G_LOG_LEVEL_MESSAGE,
                  "API client uid %u (pid %d) did not authenticate within %u s; closing the connection",
                  (guint) c->uid, (int) c->pid, c->server->limits.auth_timeout_s);
  g_cancellable_cancel(c->cancel);
  shutdown(c->fd, SHUT_RDWR);
  return G_SOURCE_REMOVE;
}

/* Main thread: the authentication thread is done with @c. */
static gboolean
on_auth_done(gpointer data)
{
  ApiConn *c = data;
  VfdApiServer *s = c->server;
  g_autoptr(GError) error = NULL;

  g_mutex_lock(&s->lock);
  g_clear_pointer(&c->auth_done, g_source_unref);
  g_mutex_unlock(&s->lock);
  if (c->auth_timeout) {
    g_source_remove(c->auth_timeout);
    c->auth_timeout = 0;
  }
  if (!c->conn || c->timed_out) {
    /* Refusals by the observer are logged there; a deadline by
     * on_auth_timeout(). */
    if (!c->timed_out && c->auth_error && !g_error_matches(c->auth_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      vfd_log_limited(&rl_auth_failed, G_LOG_LEVEL_DEBUG, "API client uid %u (pid %d): authentication failed: %s",
                      (guint) c->uid, (int) c->pid, c->auth_error->message);
    conn_drop(c);
    return G_SOURCE_REMOVE;
  }
  c->filter_id = g_dbus_connection_add_filter(c->conn, on_filter, conn_ref(c), (GDestroyNotify) conn_unref);
  if (!g_dbus_interface_skeleton_export(s->skeleton, c->conn, s->object_path, &error)) {
    g_warning("cannot export the API on a new connection: %s", error->message);
    conn_drop(c);
    return G_SOURCE_REMOVE;
  }
  c->exported = TRUE;
  c->closed_id = g_signal_connect(c->conn, "closed", G_CALLBACK(on_closed), c);
  /* Closed before the handler was there: "closed" may have been emitted. */
  if (g_dbus_connection_is_closed(c->conn)) {
    conn_drop(c);
    return G_SOURCE_REMOVE;
  }
  g_dbus_connection_start_message_processing(c->conn);
  return G_SOURCE_REMOVE;
}

/* Authentication pool thread: the SASL exchange, bounded by c->cancel. */
static void
auth_thread(gpointer data, gpointer user_data)
{
  ApiConn *c = data;
  VfdApiServer *s = user_data;
  GSource *src;

  c->conn = g_dbus_connection_new_sync(G_IO_STREAM(c->stream), s->guid,
                                       G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
                                           G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                                       s->observer, c->cancel, &c->auth_error);
  src = g_idle_source_new();
  g_source_set_callback(src, on_auth_done, c, (GDestroyNotify) conn_unref); /* the job's reference */
  g_source_set_static_name(src, "[vfiod] API authentication done");
  g_mutex_lock(&s->lock);
  c->auth_done = g_source_ref(src);
  g_source_attach(src, s->context);
  g_mutex_unlock(&s->lock);
  g_source_unref(src);
}

static gboolean
on_incoming(GSocketService *service, GSocketConnection *stream, GObject *source, gpointer data)
{
  VfdApiServer *s = data;
  GSocket *sock = g_socket_connection_get_socket(stream);
  g_autoptr(GError) error = NULL;
  g_autoptr(GCredentials) cred = g_socket_get_credentials(sock, &error);
  uid_t uid = cred ? g_credentials_get_unix_user(cred, NULL) : (uid_t) -1;
  pid_t pid = cred ? g_credentials_get_unix_pid(cred, NULL) : -1;
  ApiConn *c;
  int fd;

  if (uid == (uid_t) -1) {
    vfd_log_limited(&rl_refused, G_LOG_LEVEL_MESSAGE, "refused an API connection: its credentials are unknown (%s)",
                    error ? error->message : "no uid");
    g_socket_close(sock, NULL);
    return TRUE;
  }
  if (!vfd_conn_limits_admit(s->caps, uid, &error)) {
    g_autofree char *line = g_strdup_printf("ERROR \"vfiod refused the connection: %s\"\r\n", error->message);

    vfd_log_limited(&rl_refused, G_LOG_LEVEL_MESSAGE, "refused an API connection of uid %u (pid %d): %s",
                    (guint) uid, (int) pid, error->message);
    /* The client's first read shows it; the socket buffer is empty. */
    (void) send(g_socket_get_fd(sock), line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
    g_socket_close(sock, NULL);
    return TRUE;
  }
  fd = fcntl(g_socket_get_fd(sock), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    vfd_log_limited(&rl_refused, G_LOG_LEVEL_WARNING, "refused an API connection of uid %u: %s", (guint) uid,
                    g_strerror(errno));
    vfd_conn_limits_release(s->caps, uid);
    g_socket_close(sock, NULL);
    return TRUE;
  }
  c = g_new0(ApiConn, 1);
  c->ref = 1; /* the table's */
  c->server = s;
  c->stream = g_object_ref(stream);
  c->fd = fd;
  c->uid = uid;
  c->pid = pid;
  c->cancel = g_cancellable_new();
  c->max_pending = s->limits.max_pending_calls;
  c->max_entries = s->limits.max_array_entries;
  c->max_bytes = s->limits.max_request_bytes;
  g_hash_table_add(s->conns, c);
  c->auth_timeout = g_timeout_add(MAX(s->limits.auth_timeout_s, 1) * 1000, on_auth_timeout, c);
  g_thread_pool_push(s->auth_pool, conn_ref(c), NULL);
  return TRUE;
}

VfdApiServer *
vfd_api_server_new(const char *socket_path, const VfdApiLimits *limits, GDBusAuthObserver *observer,
                   GDBusInterfaceSkeleton *skeleton, const char *object_path, GError **error)
{
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(socket_path);
  VfdApiServer *s = g_new0(VfdApiServer, 1);

  s->limits = *limits;
  s->guid = g_dbus_generate_guid();
  s->observer = g_object_ref(observer);
  s->skeleton = g_object_ref(skeleton);
  s->object_path = g_strdup(object_path);
  s->context = g_main_context_ref_thread_default();
  s->caps = vfd_conn_limits_new(limits->max_connections, limits->max_connections_per_uid, limits->root_reserved);
  s->conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, (GDestroyNotify) conn_unref, NULL);
  g_mutex_init(&s->lock);
  /* At most one thread per connection that may be authenticating. */
  s->auth_pool = g_thread_pool_new(auth_thread, s, (gint) (limits->max_connections + limits->root_reserved), FALSE,
                                   error);
  s->service = g_socket_service_new();
  g_socket_listener_set_backlog(G_SOCKET_LISTENER(s->service), 128);
  if (!s->auth_pool || !g_socket_listener_add_address(G_SOCKET_LISTENER(s->service), addr, G_SOCKET_TYPE_STREAM,
                                                      G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, error)) {
    vfd_api_server_free(s);
    return NULL;
  }
  g_signal_connect(s->service, "incoming", G_CALLBACK(on_incoming), s);
  g_socket_service_start(s->service);
  return s;
}

void
vfd_api_server_free(VfdApiServer *s)
{
  g_autoptr(GPtrArray) all = NULL;
  GHashTableIter it;
  ApiConn *c;

  if (!s)
    return;
  if (s->service) {
    g_socket_service_stop(s->service);
    g_socket_listener_close(G_SOCKET_LISTENER(s->service));
    g_signal_handlers_disconnect_by_data(s->service, s);
  }
  /* End the authentications under way, and wait for their threads. */
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, (gpointer *) &c, NULL))
    if (!c->conn) {
      g_cancellable_cancel(c->cancel);
      shutdown(c->fd, SHUT_RDWR);
    }
  if (s->auth_pool)
    g_thread_pool_free(s->auth_pool, FALSE, TRUE);
  all = g_ptr_array_new_with_free_func((GDestroyNotify) conn_unref);
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, (gpointer *) &c, NULL)) {
    g_mutex_lock(&s->lock);
    if (c->auth_done) {
      g_source_destroy(c->auth_done); /* drops the job's reference */
      g_clear_pointer(&c->auth_done, g_source_unref);
    }
    g_mutex_unlock(&s->lock);
    g_ptr_array_add(all, conn_ref(c));
  }
  for (guint i = 0; i < all->len; i++)
    conn_drop(g_ptr_array_index(all, i));
  g_clear_object(&s->service);
  g_hash_table_unref(s->conns);
  vfd_conn_limits_free(s->caps);
  g_mutex_clear(&s->lock);
  g_main_context_unref(s->context);
  g_object_unref(s->skeleton);
  g_object_unref(s->observer);
  g_free(s->object_path);
  g_free(s->guid);
  g_free(s);
}

guint
vfd_api_server_kick_slow(VfdApiServer *s)
{
  GHashTableIter it;
  ApiConn *c;
  guint n = 0;

  if (!s)
    return 0;
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, (gpointer *) &c, NULL)) {
    guint queued = 0, sndbuf = 0;

    if (!c->exported || g_atomic_int_get(&c->kicked))
      continue;
    if (vfd_socket_backlog(c->fd, &queued, &sndbuf) == 0 && vfd_backlog_is_slow(queued, sndbuf)) {
      g_autofree char *why =
          g_strdup_printf("does not read what vfiod sends (%u of %u bytes of socket buffer unread)", queued, sndbuf);
      conn_kick(c, why);
      n++;
    }
  }
  return n;
}

guint
vfd_api_server_emit_to(VfdApiServer *s, gint64 uid, const char *object_path, const char *interface_name,
                       const char *signal_name, GVariant *params)
{
  g_autoptr(GVariant) body = g_variant_ref_sink(params);
  GHashTableIter it;
  ApiConn *c;
  guint n = 0;

  if (!s)
    return 0;
  vfd_api_server_kick_slow(s);
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, (gpointer *) &c, NULL)) {
    if (!c->exported || !c->conn || g_atomic_int_get(&c->kicked))
      continue;
    if (uid >= 0 && c->uid != 0 && (gint64) c->uid != uid)
      continue;
    /* The body is shared: GDBus takes a reference per message. */
    if (g_dbus_connection_emit_signal(c->conn, NULL, object_path, interface_name, signal_name, body, NULL))
      n++;
  }
  return n;
}

guint
vfd_api_server_n_connections(VfdApiServer *s)
{
  return s ? vfd_conn_limits_total(s->caps) : 0;
}
