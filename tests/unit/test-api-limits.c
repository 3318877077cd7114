/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bounds on API clients (issue 13, finding 2): the rate-limited log, the
 * connection caps, the checks of a request's arguments, the unread
 * backlog of a socket; then the API server itself (api-server.c) in this
 * process on a socket in a temporary directory, attacked by raw clients:
 * a connection that never authenticates is closed at the deadline, one
 * over the caps is refused at once with a line that says why, oversized
 * and duplicate arguments and too many calls in flight are refused with
 * org.vfiod.Error.LimitExceeded / InvalidArgument, a client that does not
 * read is disconnected before signals pile up. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "api-limits.h"
#include "api-server.h"
#include "config.h"
#include "error.h"
#include "vfd-dbus.h"

/* ---- captured log ---------------------------------------------------------- */

static GPtrArray *logged; /* "domain|message" of every message written, under logged_lock */
static GMutex logged_lock; /* GDBus's worker thread and the test's threads log too */

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const char *domain = NULL, *message = NULL;

  for (gsize i = 0; i < n_fields; i++) {
    if (g_str_equal(fields[i].key, "GLIB_DOMAIN"))
      domain = fields[i].value;
    else if (g_str_equal(fields[i].key, "MESSAGE"))
      message = fields[i].value;
  }
  g_mutex_lock(&logged_lock);
  if (logged && message)
    g_ptr_array_add(logged, g_strdup_printf("%s|%s", domain ? domain : "", message));
  g_mutex_unlock(&logged_lock);
  return G_LOG_WRITER_HANDLED;
}

static guint
count_logged(const char *needle)
{
  guint n = 0;

  g_mutex_lock(&logged_lock);
  for (guint i = 0; i < logged->len; i++)
    if (strstr(g_ptr_array_index(logged, i), needle))
      n++;
  g_mutex_unlock(&logged_lock);
  return n;
}

static void
clear_logged(void)
{
  g_mutex_lock(&logged_lock);
  g_ptr_array_set_size(logged, 0);
  g_mutex_unlock(&logged_lock);
}

static void
test_log_limited_burst_then_summary(void **state)
{
  VfdLogLimit limit = { .burst = 3, .interval_us = 200 * 1000 };

  clear_logged();
  for (int i = 0; i < 50; i++)
    vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "refused client %d", i);
  assert_int_equal(count_logged("refused client"), 3);
  g_usleep(250 * 1000);
  vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "refused client again");
  assert_int_equal(count_logged("refused client"), 4);
  assert_int_equal(count_logged("refused client again (47 similar messages suppressed before)"), 1);
}

typedef struct {
  VfdLogLimit *limit;
  guint calls;
} Hammer;

static gpointer
hammer(gpointer data)
{
  Hammer *h = data;

  for (guint i = 0; i < h->calls; i++)
    vfd_log_limited(h->limit, G_LOG_LEVEL_MESSAGE, "from a thread");
  return NULL;
}

/* GDBus's worker thread and the main loop log through the same limits. */
static void
test_log_limited_threads(void **state)
{
  VfdLogLimit limit = { .burst = 10, .interval_us = 60 * G_USEC_PER_SEC };
  Hammer h = { &limit, 5000 };
  GThread *t[4];

  clear_logged();
  for (guint i = 0; i < G_N_ELEMENTS(t); i++)
    t[i] = g_thread_new("hammer", hammer, &h);
  for (guint i = 0; i < G_N_ELEMENTS(t); i++)
    g_thread_join(t[i]);
  assert_int_equal(count_logged("from a thread"), 10);
  assert_int_equal(limit.suppressed, 4 * 5000 - 10);
}

/* GDBus logs a hex dump of an undecodable message: 5 bytes of log per byte
 * a client sent. The domain limit cuts and rate-limits it. */
static void
test_log_limit_domain(void **state)
{
  g_autofree char *big = g_strnfill(100000, 'x');

  clear_logged();
  vfd_log_limit_domain("vfiod-test-domain");
  vfd_log_limit_domain("vfiod-test-domain"); /* idempotent */
  for (int i = 0; i < 100; i++)
    g_log("vfiod-test-domain", G_LOG_LEVEL_WARNING, "Error decoding D-Bus message: %s", big);
  assert_int_equal(count_logged("vfiod-test-domain|Error decoding"), 20);
  {
    gsize longest = 0;
    g_mutex_lock(&logged_lock);
    for (guint i = 0; i < logged->len; i++)
      longest = MAX(longest, strlen(g_ptr_array_index(logged, i)));
    g_mutex_unlock(&logged_lock);
    assert_true(longest < 1200);
  }
  assert_int_equal(count_logged("bytes, cut)"), 20);
}

/* ---- connection caps --------------------------------------------------------- */

static void
test_conn_limits(void **state)
{
  g_autoptr(VfdConnLimits) l = vfd_conn_limits_new(5, 3, 2);
  g_autoptr(GError) error = NULL;

  /* Per uid. */
  for (int i = 0; i < 3; i++)
    assert_true(vfd_conn_limits_admit(l, 1000, &error));
  assert_false(vfd_conn_limits_admit(l, 1000, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
  assert_non_null(strstr(error->message, "max_connections_per_uid"));
  g_clear_error(&error);
  assert_int_equal(vfd_conn_limits_of_uid(l, 1000), 3);

  /* In total. */
  assert_true(vfd_conn_limits_admit(l, 1001, &error));
  assert_true(vfd_conn_limits_admit(l, 1002, &error));
  assert_false(vfd_conn_limits_admit(l, 1003, &error));
  assert_non_null(strstr(error->message, "[daemon] max_connections"));
  g_clear_error(&error);
  assert_int_equal(vfd_conn_limits_total(l), 5);

  /* Root: no per-uid cap, and the reserve beyond the total. */
  assert_true(vfd_conn_limits_admit(l, 0, &error));
  assert_true(vfd_conn_limits_admit(l, 0, &error));
  assert_false(vfd_conn_limits_admit(l, 0, &error));
  assert_non_null(strstr(error->message, "kept for root"));
  g_clear_error(&error);
  assert_int_equal(vfd_conn_limits_total(l), 7);

  /* A slot root gave back is not a member's: the total is still over 5. */
  vfd_conn_limits_release(l, 0);
  assert_false(vfd_conn_limits_admit(l, 1003, &error));
  g_clear_error(&error);
  vfd_conn_limits_release(l, 0);
  vfd_conn_limits_release(l, 1002);
  assert_true(vfd_conn_limits_admit(l, 1003, &error));
  assert_int_equal(vfd_conn_limits_total(l), 5);
  vfd_conn_limits_release(l, 1000);
  assert_int_equal(vfd_conn_limits_of_uid(l, 1000), 2);
  assert_true(vfd_conn_limits_admit(l, 1000, &error));
  assert_int_equal(vfd_conn_limits_of_uid(l, 1000), 3);
  assert_false(vfd_conn_limits_admit(l, 1004, &error));
  g_clear_error(&error);
  /* Everyone leaves: nothing counted. */
  for (int i = 0; i < 3; i++)
    vfd_conn_limits_release(l, 1000);
  vfd_conn_limits_release(l, 1001);
  vfd_conn_limits_release(l, 1003);
  assert_int_equal(vfd_conn_limits_total(l), 0);
  assert_int_equal(vfd_conn_limits_of_uid(l, 1000), 0);
}

/* ---- the [daemon] keys ------------------------------------------------------------ */

static VfdConfig *
load_conf(const char *text, GError **error)
{
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp("vfiod-api-conf-XXXXXX", &path, NULL);
  VfdConfig *c;

  assert_true(fd >= 0);
  close(fd);
  assert_true(g_file_set_contents(path, text, -1, NULL));
  c = vfd_config_load(path, NULL, error);
  g_unlink(path);
  return c;
}

static void
test_config_keys(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) def = vfd_config_load(NULL, NULL, &error);
  g_autoptr(VfdConfig) c = NULL;
  const char *bad[] = { "max_connections=0", "max_connections=5000", "max_connections=many",
                        "max_connections_per_uid=0", "auth_timeout=0", "auth_timeout=301" };

  assert_int_equal(def->api_max_connections, 64);
  assert_int_equal(def->api_max_connections_per_uid, 16);
  assert_int_equal(def->api_auth_timeout_s, 5);
  c = load_conf("[daemon]\nmax_connections=20\nmax_connections_per_uid=4\nauth_timeout=2\n", &error);
  assert_non_null(c);
  assert_int_equal(c->api_max_connections, 20);
  assert_int_equal(c->api_max_connections_per_uid, 4);
  assert_int_equal(c->api_auth_timeout_s, 2);
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *text = g_strdup_printf("[daemon]\n%s\n", bad[i]);
    g_autoptr(VfdConfig) b = load_conf(text, &error);
    assert_null(b);
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
    assert_non_null(strstr(error->message, "[daemon]"));
    g_clear_error(&error);
  }
}

/* ---- request checks -------------------------------------------------------------- */

/* (a{sv}) with "devices" of @n copies of one BDF. */
static GVariant *
create_options(guint n)
{
  GVariantBuilder devs, opts;

  g_variant_builder_init(&devs, G_VARIANT_TYPE_STRING_ARRAY);
  for (guint i = 0; i < n; i++)
    g_variant_builder_add(&devs, "s", "0000:01:00.0");
  g_variant_builder_init(&opts, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&opts, "{sv}", "devices", g_variant_builder_end(&devs));
  return g_variant_ref_sink(g_variant_new("(a{sv})", &opts));
}

static void
test_check_args(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) ok = create_options(64);
  g_autoptr(GVariant) over = create_options(65);
  g_autoptr(GVariant) huge = create_options(200000);
  gint64 t0;

  assert_true(vfd_api_check_args(NULL, 64, 1 << 20, &error));
  assert_true(vfd_api_check_args(ok, 64, 1 << 20, &error));
  assert_false(vfd_api_check_args(over, 64, 1 << 20, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
  assert_string_equal(error->message, "argument 1, key 'devices': 65 entries, at most 64");
  g_clear_error(&error);

  /* Refused before its entries are looked at. */
  t0 = g_get_monotonic_time();
  assert_false(vfd_api_check_args(huge, 64, 1 << 20, &error));
  assert_true(g_get_monotonic_time() - t0 < 50 * 1000);
  assert_non_null(strstr(error->message, "200000 entries"));
  g_clear_error(&error);

  /* A dictionary key twice. */
  {
    g_autoptr(GVariant) dup = g_variant_ref_sink(g_variant_new_parsed("({'force': <true>, 'force': <false>},)"));
    assert_false(vfd_api_check_args(dup, 64, 1 << 20, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
    assert_string_equal(error->message, "argument 1: key 'force' given twice");
    g_clear_error(&error);
  }
  /* Bytes are bounded by the size only: 100000 fine, 2 MiB not. */
  {
    g_autofree guint8 *bytes = g_malloc0(2 << 20);
    g_autoptr(GVariant) small =
        g_variant_ref_sink(g_variant_new("(@ay)", g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, 100000, 1)));
    g_autoptr(GVariant) big =
        g_variant_ref_sink(g_variant_new("(@ay)", g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, bytes, 2 << 20, 1)));
    assert_true(vfd_api_check_args(small, 64, 1 << 20, &error));
    assert_false(vfd_api_check_args(big, 64, 1 << 20, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
    assert_non_null(strstr(error->message, "at most 1048576"));
    g_clear_error(&error);
  }
  /* Nested: 64 arrays of 64 strings each pass the per-array cap, not the
   * cap on values in all. */
  {
    GVariantBuilder outer;
    g_autoptr(GVariant) nested = NULL;
    g_variant_builder_init(&outer, G_VARIANT_TYPE("aas"));
    for (int i = 0; i < 64; i++) {
      GVariantBuilder inner;
      g_variant_builder_init(&inner, G_VARIANT_TYPE_STRING_ARRAY);
      for (int k = 0; k < 64; k++)
        g_variant_builder_add(&inner, "s", "x");
      g_variant_builder_add_value(&outer, g_variant_builder_end(&inner));
    }
    nested = g_variant_ref_sink(g_variant_new("(@aas)", g_variant_builder_end(&outer)));
    assert_false(vfd_api_check_args(nested, 64, 1 << 20, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
    assert_non_null(strstr(error->message, "more than 4096 values"));
    g_clear_error(&error);
  }
  /* Other arguments keep their number in the message. */
  {
    g_autoptr(GVariant) two = g_variant_ref_sink(g_variant_new_parsed(
        "('0000:01:00.0', {'a': <@as ['1','2','3']>, 'b': <@as []>})"));
    assert_false(vfd_api_check_args(two, 2, 1 << 20, &error));
    assert_string_equal(error->message, "argument 2, key 'a': 3 entries, at most 2");
  }
}

/* ---- unread backlog ----------------------------------------------------------------- */

static void
test_socket_backlog(void **state)
{
  int sv[2];
  guint queued = 0, sndbuf = 0;
  char buf[4096] = { 0 };
  ssize_t n;

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(vfd_socket_backlog(sv[0], &queued, &sndbuf), 0);
  assert_int_equal(queued, 0);
  assert_true(sndbuf > 0);
  assert_false(vfd_backlog_is_slow(queued, sndbuf));

  assert_int_equal(write(sv[0], buf, 100), 100);
  assert_int_equal(vfd_socket_backlog(sv[0], &queued, &sndbuf), 0);
  assert_true(queued >= 100);
  assert_false(vfd_backlog_is_slow(queued, sndbuf));

  /* The peer does not read: the buffer fills up. */
  while (write(sv[0], buf, sizeof buf) > 0)
    ;
  assert_int_equal(errno, EAGAIN);
  assert_int_equal(vfd_socket_backlog(sv[0], &queued, &sndbuf), 0);
  assert_true(vfd_backlog_is_slow(queued, sndbuf));

  /* It reads everything: nothing left. */
  while ((n = read(sv[1], buf, sizeof buf)) > 0)
    ;
  assert_int_equal(vfd_socket_backlog(sv[0], &queued, &sndbuf), 0);
  assert_int_equal(queued, 0);
  assert_false(vfd_backlog_is_slow(queued, sndbuf));
  close(sv[0]);
  close(sv[1]);

  assert_int_equal(vfd_socket_backlog(-1, &queued, &sndbuf), -EBADF);
}

/* ---- the server ----------------------------------------------------------------------- */

typedef struct {
  char *dir;
  char *path;
  VfdManager1 *skeleton;
  GDBusAuthObserver *observer;
  VfdApiServer *server;
  VfdApiLimits limits;
  GPtrArray *held; /* GDBusMethodInvocation kept unanswered */
} Srv;

static gboolean
allow_external(GDBusAuthObserver *o, const char *mech, gpointer data)
{
  return g_str_equal(mech, "EXTERNAL");
}

static gboolean
hold_delete(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  Srv *s = data;

  g_ptr_array_add(s->held, g_object_ref(inv));
  return TRUE;
}

static Srv *
srv_new(guint max, guint per_uid, guint reserved, guint auth_timeout_s)
{
  Srv *s = g_new0(Srv, 1);
  g_autoptr(GError) error = NULL;

  s->dir = g_dir_make_tmp("vfiod-test-api-XXXXXX", &error);
  assert_non_null(s->dir);
  s->path = g_build_filename(s->dir, "vfiod.sock", NULL);
  s->skeleton = vfd_manager1_skeleton_new();
  s->observer = g_dbus_auth_observer_new();
  s->held = g_ptr_array_new_with_free_func(g_object_unref);
  g_signal_connect(s->observer, "allow-mechanism", G_CALLBACK(allow_external), NULL);
  g_signal_connect(s->skeleton, "handle-delete-sandbox", G_CALLBACK(hold_delete), s);
  vfd_api_limits_init(&s->limits);
  s->limits.max_connections = max;
  s->limits.max_connections_per_uid = per_uid;
  s->limits.root_reserved = reserved;
  s->limits.auth_timeout_s = auth_timeout_s;
  s->server = vfd_api_server_new(s->path, &s->limits, s->observer, G_DBUS_INTERFACE_SKELETON(s->skeleton),
                                 "/org/vfiod/Manager1", &error);
  assert_non_null(s->server);
  return s;
}

static void
srv_free(Srv *s)
{
  vfd_api_server_free(s->server);
  g_ptr_array_unref(s->held);
  g_object_unref(s->skeleton);
  g_object_unref(s->observer);
  g_unlink(s->path);
  g_rmdir(s->dir);
  g_free(s->path);
  g_free(s->dir);
  g_free(s);
}

/* Runs the main loop for @ms milliseconds. */
static void
spin(guint ms)
{
  gint64 end = g_get_monotonic_time() + ms * 1000;

  while (g_get_monotonic_time() < end) {
    g_main_context_iteration(NULL, FALSE);
    g_usleep(1000);
  }
}

/* Runs the main loop until @fd has data or EOF (TRUE), or @ms pass. */
static gboolean
spin_until_readable(int fd, guint ms)
{
  gint64 end = g_get_monotonic_time() + ms * 1000;

  while (g_get_monotonic_time() < end) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (g_main_context_iteration(NULL, FALSE))
      ;
    if (poll(&p, 1, 2) > 0)
      return TRUE;
  }
  return FALSE;
}

static int
raw_connect(const char *path)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  g_strlcpy(a.sun_path, path, sizeof a.sun_path);
  assert_int_equal(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
  return fd;
}

/* Everything readable now (main loop spun meanwhile), up to EOF or @ms;
 * *@ret_eof says whether the server closed. */
static GString *
read_all(int fd, guint ms, gboolean *ret_eof)
{
  GString *out = g_string_new(NULL);
  gint64 end = g_get_monotonic_time() + ms * 1000;

  *ret_eof = FALSE;
  while (g_get_monotonic_time() < end) {
    char buf[4096];
    ssize_t n;
    if (!spin_until_readable(fd, (guint) MAX((end - g_get_monotonic_time()) / 1000, 1)))
      break;
    n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      *ret_eof = TRUE;
      break;
    }
    if (n > 0)
      g_string_append_len(out, buf, n);
  }
  return out;
}

static guint32 serial;
static GString *pending; /* bytes of the current client read past its last message */

/* SASL EXTERNAL as ourselves, then BEGIN. */
static void
raw_auth(int fd)
{
  g_autofree char *uid = g_strdup_printf("%u", (guint) getuid());
  g_autoptr(GString) hex = g_string_new(NULL);
  g_autofree char *hello = NULL;
  g_autoptr(GString) reply = g_string_new(NULL);

  if (pending)
    g_string_truncate(pending, 0);
  for (const char *p = uid; *p; p++)
    g_string_append_printf(hex, "%02x", (guint) (guchar) *p);
  hello = g_strdup_printf("%cAUTH EXTERNAL %s\r\n", 0, hex->str);
  assert_int_equal(write(fd, hello, strlen(hello + 1) + 1), (ssize_t) strlen(hello + 1) + 1);
  while (!strstr(reply->str, "\r\n")) {
    char c;
    assert_true(spin_until_readable(fd, 5000));
    assert_int_equal(recv(fd, &c, 1, 0), 1);
    g_string_append_c(reply, c);
  }
  assert_true(g_str_has_prefix(reply->str, "OK "));
  assert_int_equal(write(fd, "BEGIN\r\n", 7), 7);
}


static void
send_call(int fd, const char *iface, const char *member, GVariant *body)
{
  g_autoptr(GDBusMessage) m = g_dbus_message_new_method_call(NULL, "/org/vfiod/Manager1", iface, member);
  g_autoptr(GError) error = NULL;
  g_autofree guchar *blob = NULL;
  gsize len = 0;

  if (body)
    g_dbus_message_set_body(m, body);
  g_dbus_message_set_serial(m, ++serial);
  blob = g_dbus_message_to_blob(m, &len, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
  assert_non_null(blob);
  for (gsize off = 0; off < len;) {
    ssize_t n = write(fd, blob + off, len - off);
    assert_true(n > 0);
    off += (gsize) n;
  }
}

/* The next message from @fd (main loop spun meanwhile); NULL at EOF or
 * after @ms. */
static GDBusMessage *
recv_message(int fd, guint ms)
{
  gint64 end = g_get_monotonic_time() + ms * 1000;

  if (!pending)
    pending = g_string_new(NULL);
  for (;;) {
    if (pending->len >= 16) {
      gssize need = g_dbus_message_bytes_needed((guchar *) pending->str, pending->len, NULL);
      if (need > 0 && pending->len >= (gsize) need) {
        g_autoptr(GError) error = NULL;
        GDBusMessage *m = g_dbus_message_new_from_blob((guchar *) pending->str, (gsize) need,
                                                       G_DBUS_CAPABILITY_FLAGS_NONE, &error);
        g_string_erase(pending, 0, need);
        assert_non_null(m);
        return m;
      }
    }
    {
      char buf[65536];
      ssize_t n;
      gint64 left = (end - g_get_monotonic_time()) / 1000;
      if (left <= 0 || !spin_until_readable(fd, (guint) left))
        return NULL;
      n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        g_string_truncate(pending, 0);
        return NULL;
      }
      if (n > 0)
        g_string_append_len(pending, buf, n);
    }
  }
}

/* The reply to the last call: NULL for a method return, else the error
 * name. Skips signals. */
static char *
recv_reply(int fd)
{
  for (;;) {
    g_autoptr(GDBusMessage) m = recv_message(fd, 5000);
    assert_non_null(m);
    if (g_dbus_message_get_message_type(m) == G_DBUS_MESSAGE_TYPE_METHOD_RETURN)
      return NULL;
    if (g_dbus_message_get_message_type(m) == G_DBUS_MESSAGE_TYPE_ERROR)
      return g_strdup(g_dbus_message_get_error_name(m));
  }
}

/* Runs the main loop until the server counts @n connections or @ms pass
 * (a loaded machine is slow to deliver a close), then asserts it. */
static void
expect_connections(Srv *s, guint n, guint ms)
{
  for (guint waited = 0; waited < ms && vfd_api_server_n_connections(s->server) != n; waited += 10)
    spin(10);
  assert_int_equal(vfd_api_server_n_connections(s->server), n);
}

/* A connection that never authenticates is closed at the deadline. */
static void
test_server_auth_timeout(void **state)
{
  Srv *s = srv_new(8, 8, 1, 1);
  int fd = raw_connect(s->path);
  gint64 t0 = g_get_monotonic_time();
  gboolean eof;
  g_autoptr(GString) got = NULL;
  double secs;

  expect_connections(s, 1, 3000);
  got = read_all(fd, 4000, &eof);
  secs = (g_get_monotonic_time() - t0) / 1e6;
  assert_true(eof);
  assert_int_equal(got->len, 0);
  assert_true(secs > 0.9 && secs < 3.0);
  expect_connections(s, 0, 3000);
  close(fd);
  srv_free(s);
}

/* Beyond the caps: refused at once, with a line that says why; a slot
 * given back is taken again. */
static void
test_server_caps(void **state)
{
  /* As root: no per-uid cap, 2 + 1 kept for root; else 1 per uid. */
  gboolean root = getuid() == 0;
  guint cap = root ? 3 : 1;
  Srv *s = srv_new(2, 1, 1, 30);
  int fds[3];
  int extra;
  gboolean eof;
  g_autoptr(GString) got = NULL;
  gint64 t0;

  for (guint i = 0; i < cap; i++) {
    fds[i] = raw_connect(s->path);
    expect_connections(s, i + 1, 3000);
  }
  extra = raw_connect(s->path);
  t0 = g_get_monotonic_time();
  got = read_all(extra, 3000, &eof);
  assert_true(eof);
  assert_true(g_get_monotonic_time() - t0 < 1000 * 1000);
  assert_true(g_str_has_prefix(got->str, "ERROR \"vfiod refused the connection: "));
  assert_non_null(strstr(got->str, root ? "kept for root" : "max_connections_per_uid"));
  close(extra);
  assert_int_equal(vfd_api_server_n_connections(s->server), cap);

  /* One leaves: the next one is admitted (it waits to authenticate). */
  close(fds[0]);
  expect_connections(s, cap - 1, 3000);
  fds[0] = raw_connect(s->path);
  g_string_free(read_all(fds[0], 200, &eof), TRUE);
  assert_false(eof);
  assert_int_equal(vfd_api_server_n_connections(s->server), cap);
  for (guint i = 0; i < cap; i++)
    close(fds[i]);
  expect_connections(s, 0, 3000);
  srv_free(s);
}

/* Arguments are checked before dispatch: too many entries, a key twice. */
static void
test_server_refuses_calls(void **state)
{
  Srv *s = srv_new(8, 8, 1, 30);
  int fd = raw_connect(s->path);
  g_autofree char *e1 = NULL;
  g_autofree char *e2 = NULL;
  g_autofree char *e3 = NULL;
  g_autofree char *e4 = NULL;
  g_autofree char *e5 = NULL;
  GVariant *over;
  gint64 t0;

  raw_auth(fd);
  send_call(fd, "org.freedesktop.DBus.Peer", "Ping", NULL);
  e1 = recv_reply(fd);
  assert_null(e1);

  over = create_options(65);
  send_call(fd, "org.vfiod.Manager1", "CreateSandbox", over);
  g_variant_unref(over);
  e2 = recv_reply(fd);
  assert_string_equal(e2, "org.vfiod.Error.LimitExceeded");

  over = create_options(100000);
  t0 = g_get_monotonic_time();
  send_call(fd, "org.vfiod.Manager1", "CreateSandbox", over);
  g_variant_unref(over);
  e3 = recv_reply(fd);
  assert_string_equal(e3, "org.vfiod.Error.LimitExceeded");
  assert_true(g_get_monotonic_time() - t0 < 3 * G_USEC_PER_SEC);

  send_call(fd, "org.vfiod.Manager1", "BindDeviceFull",
            g_variant_new_parsed("('0000:01:00.0', '', {'force': <true>, 'force': <false>})"));
  e4 = recv_reply(fd);
  assert_string_equal(e4, "org.vfiod.Error.InvalidArgument");

  /* Within the caps the call goes through to the skeleton (no handler
   * here: GDBus's own error). */
  over = create_options(2);
  send_call(fd, "org.vfiod.Manager1", "CreateSandbox", over);
  g_variant_unref(over);
  e5 = recv_reply(fd);
  assert_non_null(e5);
  assert_false(g_str_has_prefix(e5, "org.vfiod.Error."));
  close(fd);
  srv_free(s);
}

/* At most max_pending_calls calls waiting for their reply on one
 * connection; the rest are refused, not queued. */
static void
test_server_pending_cap(void **state)
{
  Srv *s = srv_new(8, 8, 1, 30);
  int fd = raw_connect(s->path);
  guint refused = 0, answered = 0;
  GDBusMessage *m;

  raw_auth(fd);
  for (int i = 0; i < VFD_API_MAX_PENDING_CALLS + 4; i++)
    send_call(fd, "org.vfiod.Manager1", "DeleteSandbox", g_variant_new("(s)", "sb-00000000"));
  while ((m = recv_message(fd, 1500))) {
    if (g_dbus_message_get_message_type(m) == G_DBUS_MESSAGE_TYPE_ERROR &&
        g_str_equal(g_dbus_message_get_error_name(m), "org.vfiod.Error.LimitExceeded"))
      refused++;
    g_object_unref(m);
  }
  assert_int_equal(refused, 4);
  assert_int_equal(s->held->len, VFD_API_MAX_PENDING_CALLS);

  /* Answered: the count goes down, calls are taken again. */
  for (guint i = 0; i < s->held->len; i++)
    g_dbus_method_invocation_return_value(g_object_ref(g_ptr_array_index(s->held, i)), NULL);
  g_ptr_array_set_size(s->held, 0);
  while ((m = recv_message(fd, 1500))) {
    answered += g_dbus_message_get_message_type(m) == G_DBUS_MESSAGE_TYPE_METHOD_RETURN;
    g_object_unref(m);
  }
  assert_int_equal(answered, VFD_API_MAX_PENDING_CALLS);
  send_call(fd, "org.vfiod.Manager1", "DeleteSandbox", g_variant_new("(s)", "sb-00000000"));
  for (int i = 0; i < 300 && s->held->len == 0; i++) /* up to 3 s on a loaded machine */
    spin(10);
  assert_int_equal(s->held->len, 1);
  close(fd);
  srv_free(s);
}

/* A client that does not read is disconnected before the signals vfiod
 * sends pile up in its memory; one that reads keeps its connection. */
static void
test_server_kicks_slow_consumer(void **state)
{
  Srv *s = srv_new(8, 8, 1, 30);
  int slow = raw_connect(s->path);
  int reader = raw_connect(s->path);
  guint kicked = 0, signals = 0, emitted = 0, read_signals = 0;
  gboolean eof = FALSE;
  GDBusMessage *m;
  int small = 4096;

  assert_int_equal(setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  raw_auth(slow);
  raw_auth(reader);
  send_call(reader, "org.freedesktop.DBus.Peer", "Ping", NULL);
  assert_null(recv_reply(reader));
  assert_int_equal(vfd_api_server_n_connections(s->server), 2);

  /* What sandbox_set_state() does, 20000 times at most. */
  for (emitted = 0; emitted < 20000 && kicked == 0; emitted++) {
    kicked += vfd_api_server_kick_slow(s->server);
    vfd_manager1_emit_sandbox_state_changed(s->skeleton, "sb-12345678", "running", FALSE);
    if (emitted % 16 == 0) {
      /* The good client reads every signal sent so far. */
      while (read_signals < emitted + 1 && (m = recv_message(reader, 5000))) {
        read_signals++;
        g_object_unref(m);
      }
      assert_int_equal(read_signals, emitted + 1);
    }
  }
  assert_int_equal(kicked, 1);
  assert_true(emitted < 5000);
  expect_connections(s, 1, 3000);

  /* The slow one finds what the kernel held, then the end. */
  {
    g_autoptr(GByteArray) held = g_byte_array_new();
    for (;;) {
      char buf[65536];
      ssize_t n = recv(slow, buf, sizeof buf, 0);
      if (n <= 0) {
        eof = n == 0;
        break;
      }
      g_byte_array_append(held, (guint8 *) buf, (guint) n);
    }
    for (guint i = 0; i + 19 <= held->len; i++)
      signals += memcmp(held->data + i, "SandboxStateChanged", 19) == 0;
  }
  assert_true(eof);
  assert_true(signals > 0 && signals < emitted);

  /* The reader is still served. */
  send_call(reader, "org.freedesktop.DBus.Peer", "Ping", NULL);
  assert_null(recv_reply(reader));
  assert_true(read_signals > 0);
  close(slow);
  close(reader);
  srv_free(s);
}

/* Freeing the server ends every connection, also one authenticating. */
static void
test_server_free_closes_all(void **state)
{
  Srv *s = srv_new(8, 8, 1, 30);
  int idle = raw_connect(s->path);
  int open = raw_connect(s->path);
  gboolean eof;
  g_autoptr(GString) a = NULL;
  g_autoptr(GString) b = NULL;

  raw_auth(open);
  send_call(open, "org.freedesktop.DBus.Peer", "Ping", NULL);
  assert_null(recv_reply(open));
  spin(50);
  srv_free(s);
  a = read_all(idle, 2000, &eof);
  assert_true(eof);
  b = read_all(open, 2000, &eof);
  assert_true(eof);
  close(idle);
  close(open);
  spin(100); /* the filters' last references */
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_log_limited_burst_then_summary),
    cmocka_unit_test(test_log_limited_threads),
    cmocka_unit_test(test_log_limit_domain),
    cmocka_unit_test(test_conn_limits),
    cmocka_unit_test(test_config_keys),
    cmocka_unit_test(test_check_args),
    cmocka_unit_test(test_socket_backlog),
    cmocka_unit_test(test_server_auth_timeout),
    cmocka_unit_test(test_server_caps),
    cmocka_unit_test(test_server_refuses_calls),
    cmocka_unit_test(test_server_pending_cap),
    cmocka_unit_test(test_server_kicks_slow_consumer),
    cmocka_unit_test(test_server_free_closes_all),
  };

  logged = g_ptr_array_new_with_free_func(g_free);
  g_log_set_writer_func(capture_writer, NULL, NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
