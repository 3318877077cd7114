/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a hostile guest sends vfiod (issue 13, findings 3 and 6), attacked
 * here without a guest:
 *  - the ready report's validation (ready-report.h) and the JSON text
 *    pre-check behind it (json-text.h): 80,000 nested '[' refused without
 *    a crash, oversize, invalid UTF-8, NUL, not an object, bad escapes;
 *  - the bounded vsock report reader (report-conn.h) on socketpairs: a peer
 *    sending 100 MiB without a newline is cut off after the line cap with
 *    bounded memory; a silent peer is closed after the time bound (200 ms
 *    here); too many lines; unknown peers closed at once without a byte
 *    read; one connection per peer; a global cap;
 *  - the log rate limit (log-limit.h);
 *  - the console scanner vfd_serial_scan() (ready-report.c): linear on
 *    newline-dense output (8 MiB of "\n" and of short lines, timed), and
 *    its contract. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "json-text.h"
#include "log-limit.h"
#include "ready-report.h"
#include "report-conn.h"

/* ---- the report validator ----------------------------------------------- */

static void
assert_refused(const char *text, gssize len, int code, const char *what)
{
  g_autoptr(GError) error = NULL;
  gsize n = len < 0 ? strlen(text) : (gsize) len;

  if (vfd_report_validate(text, n, &error))
    fail_msg("accepted a report that must be refused (%s)", what);
  if (!g_error_matches(error, VFD_ERROR, code))
    fail_msg("refused with code %d, not %d: %s", error->code, code, error->message);
  if (!strstr(error->message, what))
    fail_msg("message '%s' does not say '%s'", error->message, what);
}

static void
assert_accepted(const char *text, gsize len)
{
  g_autoptr(GError) error = NULL;

  if (!vfd_report_validate(text, len, &error))
    fail_msg("refused a valid report: %s", error->message);
}

static char *
nested(const char *prefix, guint levels, const char *suffix, gboolean close)
{
  GString *s = g_string_new(prefix);

  for (guint i = 0; i < levels; i++)
    g_string_append_c(s, '[');
  if (close)
    for (guint i = 0; i < levels; i++)
      g_string_append_c(s, ']');
  g_string_append(s, suffix);
  return g_string_free(s, FALSE);
}

static void
test_validate_valid(void **state)
{
  /* what guest-init sends (guest-init/report.h), with a UTF-16 pair */
  static const char report[] =
      "{\"v\":1,\"sandbox\":\"sb-1a2b3c4d\",\"kernel\":\"6.1.0-37-amd64\",\"uptime_ms\":812,"
      "\"report\":\"vsock:1024\",\"modules\":[\"virtio_net\"],\"pci\":[{\"bdf\":\"0000:00:01.0\","
      "\"id\":\"1af4:1041\",\"class\":\"020000\",\"driver\":\"virtio-pci\"}],\"nvidia\":null,\"gpus\":[],"
      "\"net\":{\"if\":\"eth0\",\"ip\":\"10.0.128.6/30\"},\"root\":null,\"workload\":\"/bin/true\","
      "\"timings_ms\":{\"init\":3,\"ready\":812},\"s\":\"\\ud83d\\ude00 \\u00e9 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}";
  g_autofree char *depth32 = nested("{\"a\":", 31, "}", TRUE);
  g_autoptr(GString) big = g_string_new("{\"a\":\"");

  assert_accepted(report, strlen(report));
  assert_accepted("{}", 2);
  assert_accepted(" \t\r\n{ } \n", 9);
  assert_accepted("{\"\xc3\xa9t\xc3\xa9\":\"\xe2\x82\xac\"}", 15); /* UTF-8 as such */
  assert_accepted(depth32, strlen(depth32));                         /* exactly 32 deep */
  /* exactly VFD_REPORT_MAX bytes */
  while (big->len < VFD_REPORT_MAX - 2)
    g_string_append_c(big, 'x');
  g_string_append(big, "\"}");
  assert_int_equal(big->len, VFD_REPORT_MAX);
  assert_accepted(big->str, big->len);
}

static void
test_validate_refused(void **state)
{
  g_autofree char *deep80k = nested("{\"ready\":", 80000, "}", FALSE);
  g_autofree char *deep60k = nested("{\"ready\":", 60000, "}", FALSE);
  g_autofree char *deep30k_closed = nested("{\"ready\":", 30000, "}", TRUE);
  g_autofree char *bare60k = nested("", 60000, "", FALSE);
  g_autofree char *depth33 = nested("{\"a\":", 32, "}", TRUE);
  g_autoptr(GString) big = g_string_new("{\"a\":\"");

  /* json-glib alone dies of a stack overflow on 80,000 levels (finding 3):
   * over the size cap, and nested too deep (the pre-check on its own) */
  assert_refused(deep80k, -1, VFD_ERROR_LIMIT_EXCEEDED, "report of 80010 bytes, more than 65536");
  {
    g_autoptr(GError) error = NULL;
    assert_false(vfd_json_text_check(deep80k, strlen(deep80k), VFD_REPORT_MAX_DEPTH, &error));
    assert_non_null(strstr(error->message, "nested deeper than 32 levels at byte 40"));
  }
  /* within the size cap, deep enough to take json-glib's stack on a
   * smaller one (a thread) */
  assert_refused(deep60k, -1, VFD_ERROR_INVALID_ARGUMENT, "nested deeper than 32 levels at byte 40");
  assert_refused(deep30k_closed, -1, VFD_ERROR_INVALID_ARGUMENT, "nested deeper than 32 levels");
  assert_refused(bare60k, -1, VFD_ERROR_INVALID_ARGUMENT, "not a JSON object at byte 0");
  assert_refused(depth33, -1, VFD_ERROR_INVALID_ARGUMENT, "nested deeper than 32 levels");
  /* size: one byte over the cap, refused before anything else is read */
  while (big->len < VFD_REPORT_MAX - 1)
    g_string_append_c(big, 'x');
  g_string_append(big, "\"}");
  assert_refused(big->str, (gssize) big->len, VFD_ERROR_LIMIT_EXCEEDED, "report of 65537 bytes, more than 65536");
  /* not UTF-8; a NUL byte inside the length */
  assert_refused("{\"a\":\"\xff\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "not UTF-8 (invalid sequence at byte 6)");
  assert_refused("{\"a\":\"\xc3\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "not UTF-8");
  assert_refused("{\"a\":\"\xed\xa0\x80\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "not UTF-8"); /* UTF-8 surrogate */
  assert_refused("{\"a\":1}\0{}", 10, VFD_ERROR_INVALID_ARGUMENT, "NUL byte at byte 7");
  /* not one JSON object */
  assert_refused("", -1, VFD_ERROR_INVALID_ARGUMENT, "no JSON object");
  assert_refused("   \n", -1, VFD_ERROR_INVALID_ARGUMENT, "no JSON object");
  assert_refused("[]", -1, VFD_ERROR_INVALID_ARGUMENT, "not a JSON object");
  assert_refused("1", -1, VFD_ERROR_INVALID_ARGUMENT, "not a JSON object");
  assert_refused("\"s\"", -1, VFD_ERROR_INVALID_ARGUMENT, "not a JSON object");
  assert_refused("null", -1, VFD_ERROR_INVALID_ARGUMENT, "not a JSON object");
  assert_refused("{} {}", -1, VFD_ERROR_INVALID_ARGUMENT, "data after the JSON object at byte 3");
  assert_refused("{}x", -1, VFD_ERROR_INVALID_ARGUMENT, "data after the JSON object");
  assert_refused("{\"a\":[}", -1, VFD_ERROR_INVALID_ARGUMENT, "not closed");
  assert_refused("{\"a\":\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "unterminated string");
  /* escapes json-glib leaks on or that unescape to something not UTF-8 */
  assert_refused("{\"a\":\"\\x\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "invalid escape at byte 6");
  assert_refused("{\"a\":\"\\u12\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "malformed \\u escape");
  assert_refused("{\"a\":\"\\u12g4\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "malformed \\u escape");
  assert_refused("{\"a\":\"\\ud800\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "high surrogate escape without a low one");
  assert_refused("{\"a\":\"\\ud800\\u0041\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "without a low one");
  assert_refused("{\"a\":\"\\udc00\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "low surrogate escape without a high one");
  assert_refused("{\"a\":\"\\u0000\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "escaped NUL");
  assert_refused("{\"a\":\"\t\"}", -1, VFD_ERROR_INVALID_ARGUMENT, "control byte inside a string");
  /* brackets inside strings do not count, and do not hide what follows */
  assert_accepted("{\"a\":\"[[[[{{{{\\\"]]]\"}", 21);
  /* past the pre-check, json-glib's grammar */
  assert_refused("{\"a\":}", -1, VFD_ERROR_INVALID_ARGUMENT, "report is not JSON");
  assert_refused("{\"a\" 1}", -1, VFD_ERROR_INVALID_ARGUMENT, "report is not JSON");
  assert_refused("{1:2}", -1, VFD_ERROR_INVALID_ARGUMENT, "report is not JSON");
}

/* The pre-check on its own: the journal's depth (32) and shapes. */
static void
test_json_text_check(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *deep = nested("{\"x\":", 100000, "}", TRUE);

  assert_true(vfd_json_text_check("{\"a\":[{\"b\":[]}]}", 16, 4, NULL));
  assert_false(vfd_json_text_check("{\"a\":[{\"b\":[]}]}", 16, 3, &error));
  assert_non_null(strstr(error->message, "nested deeper than 3 levels at byte 11"));
  g_clear_error(&error);
  assert_false(vfd_json_text_check(deep, strlen(deep), 32, &error));
  g_clear_error(&error);
  /* the length is what counts, not a NUL terminator */
  assert_true(vfd_json_text_check("{}garbage", 2, 32, NULL));
  assert_false(vfd_json_text_check("{}", 1, 32, &error));
  assert_non_null(strstr(error->message, "not closed"));
}

/* ---- the bounded reader --------------------------------------------------- */

typedef struct {
  GPtrArray *lines; /* GBytes */
  GPtrArray *labels;
  gboolean closed;
  guint32 closed_peer;
  GError *error;
  guint closes;
  gint64 closed_at;
} Seen;

static void
seen_clear(Seen *s)
{
  g_clear_pointer(&s->lines, g_ptr_array_unref);
  g_clear_pointer(&s->labels, g_ptr_array_unref);
  g_clear_error(&s->error);
}

static void
on_line(guint32 peer, const char *label, const char *line, gsize len, gpointer data)
{
  Seen *s = data;

  assert_int_equal(line[len], '\0');
  g_ptr_array_add(s->lines, g_bytes_new(line, len));
  g_ptr_array_add(s->labels, g_strdup(label));
}

static void
on_closed(guint32 peer, const char *label, const GError *error, gpointer data)
{
  Seen *s = data;

  s->closed = TRUE;
  s->closes++;
  s->closed_peer = peer;
  s->closed_at = g_get_monotonic_time();
  g_clear_error(&s->error);
  s->error = error ? g_error_copy(error) : NULL;
}

/* Admits every peer but 7, labelled "sb-<peer>". */
static gboolean
admit(guint32 peer, char **ret_label, gpointer data)
{
  if (peer == 7)
    return FALSE;
  *ret_label = g_strdup_printf("sb-%u", peer);
  return TRUE;
}

static VfdReportConns *
conns_new(Seen *seen, guint max_conns, const VfdReportLimits *limits)
{
  VfdReportLimits def;

  memset(seen, 0, sizeof *seen);
  seen->lines = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
  seen->labels = g_ptr_array_new_with_free_func(g_free);
  if (!limits) {
    vfd_report_limits_init_default(&def);
    limits = &def;
  }
  return vfd_report_conns_new(max_conns, limits, admit, on_line, on_closed, seen);
}

/* A socketpair: *@ret_conn is vfiod's side, the returned fd the guest's. */
static int
pair(GSocketConnection **ret_conn)
{
  int sv[2];
  g_autoptr(GSocket) sock = NULL;

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  sock = g_socket_new_from_fd(sv[0], NULL);
  assert_non_null(sock);
  *ret_conn = g_socket_connection_factory_create_connection(sock);
  return sv[1];
}

static void
run_until(gboolean *flag, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time() + (gint64) timeout_ms * 1000;

  while (!*flag && g_get_monotonic_time() < end)
    if (!g_main_context_iteration(NULL, FALSE))
      g_usleep(1000);
}

static void
write_all(int fd, const char *s, gsize len)
{
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    assert_true(n > 0);
    s += n;
    len -= (gsize) n;
  }
}

/* EOF (0) or an error on the guest's side: vfiod closed its end. */
static gboolean
peer_sees_close(int fd)
{
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void
test_reader_lines(void **state)
{
  Seen seen;
  g_autoptr(VfdReportConns) conns = conns_new(&seen, 4, NULL);
  g_autoptr(GSocketConnection) conn = NULL;
  int fd = pair(&conn);
  static const char ready[] = "VFIOD_READY {\"v\":1}\n";

  assert_true(vfd_report_conns_add(conns, 5, conn, NULL));
  assert_int_equal(vfd_report_conns_count(conns), 1);
  /* a line in three pieces, then one without "\n" before the close */
  write_all(fd, ready, 5);
  g_main_context_iteration(NULL, FALSE);
  write_all(fd, ready + 5, sizeof ready - 1 - 5);
  write_all(fd, "VFIOD_EXIT {}", 13);
  close(fd);
  run_until(&seen.closed, 5000);
  assert_true(seen.closed);
  assert_null(seen.error); /* the peer closed: not an error */
  assert_int_equal(seen.closed_peer, 5);
  assert_int_equal(seen.lines->len, 2);
  assert_int_equal(g_bytes_get_size(seen.lines->pdata[0]), sizeof ready - 2);
  assert_memory_equal(g_bytes_get_data(seen.lines->pdata[0], NULL), ready, sizeof ready - 2);
  assert_memory_equal(g_bytes_get_data(seen.lines->pdata[1], NULL), "VFIOD_EXIT {}", 13);
  assert_string_equal(seen.labels->pdata[0], "sb-5");
  assert_int_equal(vfd_report_conns_count(conns), 0);
  seen_clear(&seen);
}

/* Current resident set size of this process, in KiB. */
static guint64
rss_kib(void)
{
  g_autofree char *status = NULL;
  const char *p;

  assert_true(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
  p = strstr(status, "VmRSS:");
  assert_non_null(p);
  return g_ascii_strtoull(p + 6, NULL, 10);
}

typedef struct {
  int fd;
  guint64 offered;
  guint64 written;
  int error;
} Flood;

/* The guest: 100 MiB without a newline, until vfiod hangs up. */
static gpointer
flood_thread(gpointer data)
{
  Flood *f = data;
  static char chunk[65536];

  memset(chunk, 'A', sizeof chunk);
  while (f->written < f->offered) {
    ssize_t n = send(f->fd, chunk, MIN(sizeof chunk, f->offered - f->written), MSG_NOSIGNAL);
    if (n < 0) {
      f->error = errno;
      break;
    }
    f->written += (guint64) n;
  }
  return NULL;
}

static void
test_reader_flood_cut_off(void **state)
{
  Seen seen;
  g_autoptr(VfdReportConns) conns = conns_new(&seen, 4, NULL);
  g_autoptr(GSocketConnection) conn = NULL;
  Flood f = { .fd = pair(&conn), .offered = 100ull << 20 };
  GThread *t;
  guint64 rss_before, rss_after;
  VfdReportLimits limits;

  vfd_report_limits_init_default(&limits);
  rss_before = rss_kib();
  assert_true(vfd_report_conns_add(conns, 9, conn, NULL));
  t = g_thread_new("flood", flood_thread, &f);
  run_until(&seen.closed, 10000);
  assert_true(seen.closed);
  rss_after = rss_kib();
  g_thread_join(t);
  close(f.fd);
  assert_true(g_error_matches(seen.error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
  assert_non_null(strstr(seen.error->message, "a line longer than 65792 bytes"));
  assert_int_equal(seen.lines->len, 0);
  /* cut off: the peer was hung up on (EPIPE / ECONNRESET) long before its
   * 100 MiB; what it got out is the line cap plus the socket buffers */
  assert_true(f.error == EPIPE || f.error == ECONNRESET);
  print_message("flood: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes sent before vfiod hung up "
                "(%s); RSS %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB\n",
                f.written, f.offered, seen.error->message, rss_before, rss_after);
  assert_true(f.written < 16ull << 20);
  /* bounded memory: the reader kept at most the line cap */
  assert_true(rss_after < rss_before + 8 * 1024);
  seen_clear(&seen);
}

static void
test_reader_silent_peer_timeout(void **state)
{
  Seen seen;
  VfdReportLimits limits;
  g_autoptr(VfdReportConns) conns = NULL;
  g_autoptr(GSocketConnection) conn = NULL;
  int fd;
  gint64 start;

  vfd_report_limits_init_default(&limits);
  limits.timeout_ms = 200;
  conns = conns_new(&seen, 4, &limits);
  fd = pair(&conn);
  start = g_get_monotonic_time();
  assert_true(vfd_report_conns_add(conns, 11, conn, NULL));
  /* a partial line, then silence: the time bound holds whatever was sent */
  write_all(fd, "VFIOD_READY {", 13);
  run_until(&seen.closed, 5000);
  assert_true(seen.closed);
  assert_true(g_error_matches(seen.error, VFD_ERROR, VFD_ERROR_TIMED_OUT));
  assert_non_null(strstr(seen.error->message, "still open after 200 ms"));
  print_message("silent peer closed after %" G_GINT64_FORMAT " ms (bound 200 ms)\n",
                (seen.closed_at - start) / 1000);
  assert_true(seen.closed_at - start >= 200 * 1000);
  assert_true(seen.closed_at - start < 3 * G_USEC_PER_SEC);
  assert_int_equal(seen.lines->len, 0);
  assert_true(peer_sees_close(fd));
  assert_int_equal(vfd_report_conns_count(conns), 0);
  close(fd);
  seen_clear(&seen);
}

static void
test_reader_limits(void **state)
{
  Seen seen;
  VfdReportLimits limits = { .max_line = 16, .max_bytes = 40, .max_lines = 2, .timeout_ms = 5000 };
  g_autoptr(VfdReportConns) conns = conns_new(&seen, 4, &limits);

  /* too many lines */
  {
    g_autoptr(GSocketConnection) conn = NULL;
    int fd = pair(&conn);
    assert_true(vfd_report_conns_add(conns, 3, conn, NULL));
    write_all(fd, "a\nb\nc\n", 6);
    run_until(&seen.closed, 5000);
    assert_true(g_error_matches(seen.error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
    assert_non_null(strstr(seen.error->message, "more than 2 lines"));
    assert_int_equal(seen.lines->len, 2);
    assert_true(peer_sees_close(fd));
    close(fd);
  }
  /* too many bytes in all, each line within its cap */
  seen.closed = FALSE;
  g_ptr_array_set_size(seen.lines, 0);
  limits.max_lines = 100;
  {
    g_autoptr(VfdReportConns) c2 = vfd_report_conns_new(4, &limits, admit, on_line, on_closed, &seen);
    g_autoptr(GSocketConnection) conn = NULL;
    int fd = pair(&conn);
    assert_true(vfd_report_conns_add(c2, 3, conn, NULL));
    for (int i = 0; i < 5; i++)
      write_all(fd, "0123456789\n", 11);
    run_until(&seen.closed, 5000);
    assert_true(g_error_matches(seen.error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
    assert_non_null(strstr(seen.error->message, "more than 40 bytes"));
    assert_int_equal(seen.lines->len, 3);
    close(fd);
  }
  /* a line one byte over its cap (the cap is exact) */
  seen.closed = FALSE;
  g_ptr_array_set_size(seen.lines, 0);
  {
    g_autoptr(GSocketConnection) conn = NULL;
    int fd = pair(&conn);
    assert_true(vfd_report_conns_add(conns, 3, conn, NULL));
    write_all(fd, "0123456789abcdef\n0123456789abcdefg", 34);
    run_until(&seen.closed, 5000);
    assert_true(g_error_matches(seen.error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
    assert_non_null(strstr(seen.error->message, "a line longer than 16 bytes"));
    assert_int_equal(seen.lines->len, 1);
    close(fd);
  }
  seen_clear(&seen);
}

static void
test_reader_admission(void **state)
{
  Seen seen;
  g_autoptr(VfdReportConns) conns = conns_new(&seen, 2, NULL);
  g_autoptr(GSocketConnection) a = NULL, b = NULL, c = NULL, d = NULL;
  g_autoptr(GError) error = NULL;
  int fa = pair(&a), fb = pair(&b), fc = pair(&c), fd = pair(&d);

  /* a peer that is not a live sandbox: closed at once, nothing read */
  write_all(fa, "VFIOD_READY {}\n", 15);
  assert_false(vfd_report_conns_add(conns, 7, a, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  g_clear_error(&error);
  assert_true(peer_sees_close(fa));
  assert_int_equal(vfd_report_conns_count(conns), 0);

  /* one connection per peer: a second one from peer 5 is refused, the
   * first keeps working */
  assert_true(vfd_report_conns_add(conns, 5, b, NULL));
  assert_false(vfd_report_conns_add(conns, 5, c, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);
  assert_true(peer_sees_close(fc));
  assert_true(vfd_report_conns_has(conns, 5));

  /* the global cap (2 here) */
  g_clear_object(&c);
  close(fc);
  fc = pair(&c);
  assert_true(vfd_report_conns_add(conns, 6, c, NULL));
  assert_false(vfd_report_conns_add(conns, 8, d, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED));
  assert_true(peer_sees_close(fd));
  assert_int_equal(vfd_report_conns_count(conns), 2);

  write_all(fb, "VFIOD_READY {}\n", 15);
  close(fb);
  run_until(&seen.closed, 5000);
  assert_int_equal(seen.closed_peer, 5);
  assert_int_equal(seen.lines->len, 1);
  assert_string_equal(seen.labels->pdata[0], "sb-5");
  assert_false(vfd_report_conns_has(conns, 5));

  /* closed by vfiod (its sandbox went away): no callback */
  seen.closes = 0;
  vfd_report_conns_close(conns, 6);
  assert_int_equal(vfd_report_conns_count(conns), 0);
  assert_true(peer_sees_close(fc));
  for (int i = 0; i < 10; i++)
    g_main_context_iteration(NULL, FALSE);
  assert_int_equal(seen.closes, 0);
  close(fa);
  close(fc);
  close(fd);
  seen_clear(&seen);
}

/* Freeing the set with connections open closes them (no callbacks, no
 * sources left behind). */
static void
test_reader_free_open(void **state)
{
  Seen seen;
  VfdReportConns *conns = conns_new(&seen, 4, NULL);
  g_autoptr(GSocketConnection) a = NULL;
  int fa = pair(&a);

  assert_true(vfd_report_conns_add(conns, 3, a, NULL));
  write_all(fa, "partial", 7);
  g_main_context_iteration(NULL, FALSE);
  vfd_report_conns_free(conns);
  assert_true(peer_sees_close(fa));
  for (int i = 0; i < 10; i++)
    g_main_context_iteration(NULL, FALSE);
  assert_false(seen.closed);
  close(fa);
  seen_clear(&seen);
}

/* ---- log rate limit ------------------------------------------------------- */

static void
test_log_limit(void **state)
{
  VfdLogLimit l = { .burst = 3, .interval_us = 10 * G_USEC_PER_SEC };
  guint suppressed = 99;
  gint64 t = 1000 * G_USEC_PER_SEC;
  guint allowed = 0;

  for (int i = 0; i < 1000; i++)
    allowed += vfd_log_limit_allow(&l, t + i, &suppressed);
  assert_int_equal(allowed, 3);
  assert_int_equal(suppressed, 0);
  /* the next window: allowed again, and told how many were dropped */
  assert_true(vfd_log_limit_allow(&l, t + 10 * G_USEC_PER_SEC, &suppressed));
  assert_int_equal(suppressed, 997);
  assert_true(vfd_log_limit_allow(&l, t + 10 * G_USEC_PER_SEC + 1, &suppressed));
  assert_int_equal(suppressed, 0);
}

/* ---- console scanner -------------------------------------------------------- */

/* Feeds @data to vfd_serial_scan() in reads of @chunk bytes (the daemon
 * reads 16 KiB); returns the report or NULL, and the time taken. */
static char *
scan(const char *data, gsize len, gsize chunk, GString *pending, gdouble *ret_s)
{
  gint64 start = g_get_monotonic_time();
  char *report = NULL;

  for (gsize off = 0; off < len; off += chunk)
    if (vfd_serial_scan(pending, data + off, MIN(chunk, len - off), &report))
      break;
  *ret_s = (gdouble) (g_get_monotonic_time() - start) / G_USEC_PER_SEC;
  return report;
}

static void
check_linear(const char *what, GString *input)
{
  static const gsize chunks[] = { 16384, 61, 8 << 20 };

  for (guint i = 0; i < G_N_ELEMENTS(chunks); i++) {
    g_autoptr(GString) pending = g_string_new(NULL);
    g_autofree char *report = NULL;
    gdouble s;

    report = scan(input->str, input->len, chunks[i], pending, &s);
    print_message("serial scan: %s, %.1f MiB in reads of %" G_GSIZE_FORMAT " bytes: %.3f s\n", what,
                  input->len / 1048576.0, chunks[i], s);
    assert_null(report);
    assert_true(pending->len <= 64 * 1024);
    /* generous: the quadratic scanner took minutes to hours here */
    assert_true(s < 2.0);
  }
}

static void
test_serial_scan_linear(void **state)
{
  g_autoptr(GString) newlines = g_string_new(NULL);
  g_autoptr(GString) short_lines = g_string_new(NULL);

  for (gsize i = 0; i < 8u << 20; i++)
    g_string_append_c(newlines, '\n');
  check_linear("\"\\n\" only", newlines);
  while (short_lines->len < 8u << 20)
    g_string_append(short_lines, "ab\r\n");
  check_linear("4-byte lines", short_lines);
  /* and a ready line at the very end is still found */
  g_string_append(newlines, "VFIOD_READY {\"v\":1}\n");
  {
    g_autoptr(GString) pending = g_string_new(NULL);
    g_autofree char *report = NULL;
    gdouble s;
    report = scan(newlines->str, newlines->len, 16384, pending, &s);
    assert_non_null(report);
    assert_string_equal(report, "{\"v\":1}");
    assert_true(s < 2.0);
  }
}

static void
test_serial_scan_contract(void **state)
{
  g_autoptr(GString) pending = g_string_new(NULL);
  char *report = NULL;

  /* split anywhere, also inside the tag */
  assert_false(vfd_serial_scan(pending, "boot\nVFIOD_RE", 13, &report));
  assert_null(report);
  assert_string_equal(pending->str, "VFIOD_RE");
  assert_false(vfd_serial_scan(pending, "ADY {\"a\":1} \r", 13, &report));
  assert_true(vfd_serial_scan(pending, "\nafter\nmore", 11, &report));
  assert_string_equal(report, "{\"a\":1}"); /* trailing whitespace chomped */
  g_clear_pointer(&report, g_free);
  /* the lines after it stay for the next call */
  assert_string_equal(pending->str, "after\nmore");
  assert_false(vfd_serial_scan(pending, "", 0, &report));
  assert_string_equal(pending->str, "more");

  /* a prefix on the line (firmware output) is fine */
  g_string_truncate(pending, 0);
  assert_true(vfd_serial_scan(pending, "\x1b[2Jxx VFIOD_READY {}\n", 22, &report));
  assert_string_equal(report, "{}");
  g_clear_pointer(&report, g_free);

  /* the line is read up to its first NUL: a tag after it does not count */
  g_string_truncate(pending, 0);
  assert_false(vfd_serial_scan(pending, "x\0VFIOD_READY {}\n", 17, &report));
  assert_null(report);
  assert_true(vfd_serial_scan(pending, "VFIOD_READY {}\0tail\n", 20, &report));
  assert_string_equal(report, "{}");
  g_clear_pointer(&report, g_free);

  /* invalid UTF-8 becomes U+FFFD (the validator then judges the JSON) */
  g_string_truncate(pending, 0);
  assert_true(vfd_serial_scan(pending, "VFIOD_READY {\"a\":\"\xff\"}\n", 22, &report));
  assert_string_equal(report, "{\"a\":\"\xef\xbf\xbd\"}");
  g_clear_pointer(&report, g_free);

  /* a partial line is kept, at most its last 64 KiB */
  g_string_truncate(pending, 0);
  {
    g_autofree char *big = g_malloc(200000);
    memset(big, 'x', 200000);
    assert_false(vfd_serial_scan(pending, big, 200000, &report));
    assert_int_equal(pending->len, 64 * 1024);
    assert_false(vfd_serial_scan(pending, big, 100, &report));
    assert_int_equal(pending->len, 64 * 1024);
    /* its end still completes a ready line whose tag is in the last 64 KiB */
    assert_true(vfd_serial_scan(pending, "VFIOD_READY {}\n", 15, &report));
    assert_string_equal(report, "{}");
    g_clear_pointer(&report, g_free);
  }
}

/* The workload's result on the console (issue 15, item 4): READY, EXIT and
 * FATAL lines found in order; the exit report's status and signal checked;
 * a fatal reason cut and cleaned. */
static void
test_serial_scan_result(void **state)
{
  static const char *const tags[] = { VFD_REPORT_TAG, VFD_EXIT_TAG, VFD_FATAL_TAG, NULL };
  g_autoptr(GString) pending = g_string_new(NULL);
  const char *out = "boot\nVFIOD_READY {\"v\":1}\nworkload says hi\nVFIOD_EXIT {\"status\":3,\"signal\":0}\n";
  g_autofree char *text = NULL;
  guint tag = 99;
  int status = -1, sig = -1;
  g_autoptr(GError) error = NULL;

  assert_true(vfd_serial_scan_tags(pending, out, strlen(out), tags, &tag, &text));
  assert_int_equal(tag, 0);
  assert_string_equal(text, "{\"v\":1}");
  g_clear_pointer(&text, g_free);
  assert_true(vfd_serial_scan_tags(pending, "", 0, tags, &tag, &text));
  assert_int_equal(tag, 1);
  assert_true(vfd_exit_report_parse(text, &status, &sig, &error));
  assert_int_equal(status, 3);
  assert_int_equal(sig, 0);
  g_clear_pointer(&text, g_free);
  assert_false(vfd_serial_scan_tags(pending, "", 0, tags, &tag, &text));
  /* a line split across reads */
  assert_false(vfd_serial_scan_tags(pending, "VFIOD_FA", 8, tags, &tag, &text));
  {
    const char *rest = "TAL {\"error\":\"x\"}\n";
    assert_true(vfd_serial_scan_tags(pending, rest, strlen(rest), tags, &tag, &text));
  }
  assert_int_equal(tag, 2);
  g_clear_pointer(&text, g_free);

  status = sig = -1;
  assert_true(vfd_exit_report_parse("{\"status\":0,\"signal\":9}", &status, &sig, NULL));
  assert_int_equal(status, 0);
  assert_int_equal(sig, 9);
  assert_true(vfd_exit_report_parse("{\"status\":255}", &status, &sig, NULL));
  assert_int_equal(sig, 0);
  assert_false(vfd_exit_report_parse("{\"status\":256}", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("{\"status\":-1}", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("{\"status\":\"3\"}", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("{\"signal\":1}", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("{\"status\":1,\"signal\":128}", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("[3]", &status, &sig, NULL));
  assert_false(vfd_exit_report_parse("{\"status\":1", &status, &sig, NULL));

  text = vfd_fatal_report_reason("{\"error\":\"mount proc: No such device\"}", 1024);
  assert_string_equal(text, "mount proc: No such device");
  g_clear_pointer(&text, g_free);
  text = vfd_fatal_report_reason("{\"error\":\"a\\nb\\u0007c\"}", 1024);
  assert_string_equal(text, "a b c");
  g_clear_pointer(&text, g_free);
  text = vfd_fatal_report_reason("not json \xc3\xa9\xc3\xa9", 11); /* cut before a whole character */
  assert_string_equal(text, "not json \xc3\xa9");
  g_clear_pointer(&text, g_free);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_validate_valid),
    cmocka_unit_test(test_validate_refused),
    cmocka_unit_test(test_json_text_check),
    cmocka_unit_test(test_reader_lines),
    cmocka_unit_test(test_reader_flood_cut_off),
    cmocka_unit_test(test_reader_silent_peer_timeout),
    cmocka_unit_test(test_reader_limits),
    cmocka_unit_test(test_reader_admission),
    cmocka_unit_test(test_reader_free_open),
    cmocka_unit_test(test_log_limit),
    cmocka_unit_test(test_serial_scan_linear),
    cmocka_unit_test(test_serial_scan_contract),
    cmocka_unit_test(test_serial_scan_result),
  };
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
