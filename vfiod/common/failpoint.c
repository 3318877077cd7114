/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "failpoint.h"

#include "error.h"

#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void
vfd_failpoint(const char *name)
{
  static gint counter;
  static gint crash_at = -1; /* -1: not read yet; 0: off */
  static const char *log_path;
  gint n;

  if (g_atomic_int_get(&crash_at) < 0) {
    const char *v = g_getenv("VFIOD_CRASH_AT");
    log_path = g_getenv("VFIOD_CRASH_LOG");
    g_atomic_int_set(&crash_at, v ? (gint) g_ascii_strtoll(v, NULL, 10) : 0);
  }
  if (g_atomic_int_get(&crash_at) == 0 && !log_path)
    return;
  n = g_atomic_int_add(&counter, 1) + 1;
  if (log_path) {
    FILE *f = fopen(log_path, "a");
    if (f) {
      fprintf(f, "%d %s\n", n, name);
      fclose(f);
    }
  }
  if (n == g_atomic_int_get(&crash_at)) {
    fprintf(stderr, "vfiod: VFIOD_CRASH_AT=%d reached at '%s': SIGKILL\n", n, name);
    kill(getpid(), SIGKILL);
  }
}

gboolean
vfd_fail_stage(const char *name, GError **error)
{
  const char *v = g_getenv("VFIOD_FAIL_STAGE");

  if (!v || g_strcmp0(v, name) != 0)
    return FALSE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "injected failure at %s (VFIOD_FAIL_STAGE)", name);
  return TRUE;
}

void
vfd_pause_stage(const char *name)
{
  const char *v = g_getenv("VFIOD_PAUSE_STAGE");
  const char *file = g_getenv("VFIOD_PAUSE_FILE");

  if (!v || !file || g_strcmp0(v, name) != 0)
    return;
  g_message("TEST ONLY: paused at %s while %s exists (VFIOD_PAUSE_STAGE)", name, file);
  for (int i = 0; i < 600 && g_file_test(file, G_FILE_TEST_EXISTS); i++)
    g_usleep(50 * 1000);
}
