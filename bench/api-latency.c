/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* api-latency: BENCHMARK ONLY. A D-Bus client of vfiod's API
 * (org.vfiod.Manager1, peer-to-peer on the runtime dir's socket), as a
 * sandbox platform's driver would be: one connection, kept open.
 *
 *   api-latency wait SOCKET TIMEOUT_MS
 *       Connects and calls ListSandboxes, retrying every millisecond, until
 *       an answer comes; prints "READY <CLOCK_MONOTONIC us> <sandboxes>".
 *       Exit 1 on timeout.
 *   api-latency measure CALLS LABEL=SOCKET [LABEL=SOCKET...]
 *       One connection per socket; 10 warm-up rounds; then CALLS rounds,
 *       each calling ListSandboxes and GetCapabilities on every socket in
 *       turn (interleaved, so that all daemons see the same machine
 *       noise). Prints one JSON object:
 *       {"LABEL":{"ListSandboxes":{"n":..,"p50_ms":..,"p99_ms":..,
 *        "mean_ms":..,"min_ms":..,"max_ms":..,"items":..},...},...}
 *       ("items": sandboxes resp. devices in the last answer).
 *   api-latency cpu CALLS METHOD SOCKET
 *       One connection; 10 warm-up calls of METHOD; prints "WARM" and
 *       waits for a line on stdin (the caller reads the daemon's CPU time
 *       then); CALLS calls of METHOD; prints "DONE <wall us>". For CPU
 *       time per call, which holds on a loaded machine where wall-clock
 *       percentiles do not. */
#include <gio/gio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PATH "/org/vfiod/Manager1"
#define IFACE "org.vfiod.Manager1"

static const char *const methods[] = { "ListSandboxes", "GetCapabilities" };
#define N_METHODS 2

static GDBusConnection *
connect_to(const char *socket_path, GError **error)
{
  g_autofree char *escaped = g_dbus_address_escape_value(socket_path);
  g_autofree char *address = g_strdup_printf("unix:path=%s", escaped);

  return g_dbus_connection_new_for_address_sync(address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL,
                                                NULL, error);
}

/* Calls @method; returns the number of items in its answer, -1 on error. */
static gint64
call(GDBusConnection *c, const char *method, GError **error)
{
  g_autoptr(GVariant) r = g_dbus_connection_call_sync(c, NULL, PATH, IFACE, method, NULL, NULL,
                                                      G_DBUS_CALL_FLAGS_NONE, 60000, NULL, error);
  g_autoptr(GVariant) child = NULL;

  if (!r)
    return -1;
  child = g_variant_get_child_value(r, 0);
  if (g_str_equal(method, "GetCapabilities")) {
    g_autoptr(GVariant) devs = g_variant_lookup_value(child, "devices", NULL);
    return devs ? (gint64) g_variant_n_children(devs) : 0;
  }
  return (gint64) g_variant_n_children(child);
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static double
percentile(const double *v, guint n, double p)
{
  guint rank = (guint) ceil(p / 100.0 * n);

  if (rank < 1)
    rank = 1;
  return v[rank - 1];
}

static int
do_wait(const char *socket_path, long timeout_ms)
{
  gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000;

  while (g_get_monotonic_time() < deadline) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GDBusConnection) c = connect_to(socket_path, &error);
    gint64 n = c ? call(c, "ListSandboxes", &error) : -1;

    if (n >= 0) {
      printf("READY %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n", g_get_monotonic_time(), n);
      return 0;
    }
    g_usleep(1000);
  }
  fprintf(stderr, "api-latency: %s did not answer within %ld ms\n", socket_path, timeout_ms);
  return 1;
}

static int
do_measure(long calls, int n_targets, char **targets)
{
  GDBusConnection **conns = g_new0(GDBusConnection *, n_targets);
  char **labels = g_new0(char *, n_targets);
  double **lat = g_new0(double *, (gsize) n_targets * N_METHODS);
  gint64 *items = g_new0(gint64, (gsize) n_targets * N_METHODS);

  for (int t = 0; t < n_targets; t++) {
    g_autoptr(GError) error = NULL;
    char *eq = strchr(targets[t], '=');

    if (!eq) {
      fprintf(stderr, "api-latency: want LABEL=SOCKET, got '%s'\n", targets[t]);
      return 2;
    }
    labels[t] = g_strndup(targets[t], (gsize) (eq - targets[t]));
    conns[t] = connect_to(eq + 1, &error);
    if (!conns[t]) {
      fprintf(stderr, "api-latency: %s: %s\n", eq + 1, error->message);
      return 1;
    }
    for (int m = 0; m < N_METHODS; m++)
      lat[t * N_METHODS + m] = g_new0(double, calls);
  }
  for (long i = -10; i < calls; i++)
    for (int m = 0; m < N_METHODS; m++)
      for (int t = 0; t < n_targets; t++) {
        g_autoptr(GError) error = NULL;
        gint64 t0 = g_get_monotonic_time();
        gint64 n = call(conns[t], methods[m], &error);
        gint64 t1 = g_get_monotonic_time();

        if (n < 0) {
          fprintf(stderr, "api-latency: %s %s: %s\n", labels[t], methods[m], error->message);
          return 1;
        }
        if (i >= 0) {
          lat[t * N_METHODS + m][i] = (double) (t1 - t0) / 1000.0;
          items[t * N_METHODS + m] = n;
        }
      }
  printf("{");
  for (int t = 0; t < n_targets; t++) {
    printf("%s\"%s\":{", t ? "," : "", labels[t]);
    for (int m = 0; m < N_METHODS; m++) {
      double *v = lat[t * N_METHODS + m];
      double sum = 0;

      for (long i = 0; i < calls; i++)
        sum += v[i];
      qsort(v, (size_t) calls, sizeof *v, cmp_double);
      printf("%s\"%s\":{\"n\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,\"min_ms\":%.3f,"
             "\"max_ms\":%.3f,\"items\":%" G_GINT64_FORMAT "}",
             m ? "," : "", methods[m], calls, percentile(v, (guint) calls, 50), percentile(v, (guint) calls, 99),
             sum / (double) calls, v[0], v[calls - 1], items[t * N_METHODS + m]);
    }
    printf("}");
  }
  printf("}\n");
  return 0;
}

static int
do_cpu(long calls, const char *method, const char *socket_path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) c = connect_to(socket_path, &error);
  char line[16];
  gint64 t0 = 0;

  if (!c) {
    fprintf(stderr, "api-latency: %s: %s\n", socket_path, error->message);
    return 1;
  }
  for (long i = -10; i < calls; i++) {
    if (i == 0) {
      printf("WARM\n");
      fflush(stdout);
      if (!fgets(line, sizeof line, stdin))
        return 1;
      t0 = g_get_monotonic_time();
    }
    if (call(c, method, &error) < 0) {
      fprintf(stderr, "api-latency: %s: %s\n", method, error->message);
      return 1;
    }
  }
  printf("DONE %" G_GINT64_FORMAT "\n", g_get_monotonic_time() - t0);
  return 0;
}

int
main(int argc, char **argv)
{
  if (argc == 5 && g_str_equal(argv[1], "cpu"))
    return do_cpu(strtol(argv[2], NULL, 10), argv[3], argv[4]);
  if (argc == 4 && g_str_equal(argv[1], "wait"))
    return do_wait(argv[2], strtol(argv[3], NULL, 10));
  if (argc >= 4 && g_str_equal(argv[1], "measure")) {
    long calls = strtol(argv[2], NULL, 10);
    if (calls < 1) {
      fprintf(stderr, "api-latency: CALLS must be at least 1\n");
      return 2;
    }
    return do_measure(calls, argc - 3, argv + 3);
  }
  fprintf(stderr, "usage: api-latency wait SOCKET TIMEOUT_MS\n"
                  "       api-latency measure CALLS LABEL=SOCKET [LABEL=SOCKET...]\n");
  return 2;
}
