/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metrics textfile ([daemon] metrics_file): Prometheus text format
 * that node_exporter's textfile collector reads, written atomically. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <glib/gstdio.h>

#include "metrics.h"

static void
test_format(void **state)
{
  VfdMetrics m = { 0 };
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  guint samples = 0;

  m.devices[VFD_DEVICE_STATE_BOUND] = 3;
  m.devices[VFD_DEVICE_STATE_STUCK] = 1;
  m.sandboxes[1] = 2; /* running */
  vfd_metric_op_add(&m.create, TRUE, 1.5);
  vfd_metric_op_add(&m.create, TRUE, 0.25);
  vfd_metric_op_add(&m.create, FALSE, 9);
  vfd_metric_op_add(&m.bind, TRUE, 0.125);
  text = vfd_metrics_format(&m);
  assert_non_null(strstr(text, "# TYPE vfiod_devices gauge\n"));
  assert_non_null(strstr(text, "vfiod_devices{state=\"bound\"} 3\n"));
  assert_non_null(strstr(text, "vfiod_devices{state=\"binding\"} 0\n"));
  assert_non_null(strstr(text, "vfiod_stuck_devices 1\n"));
  assert_non_null(strstr(text, "vfiod_sandboxes{state=\"running\"} 2\n"));
  assert_non_null(strstr(text, "vfiod_sandboxes{state=\"failed\"} 0\n"));
  assert_non_null(strstr(text, "vfiod_sandboxes{state=\"exited\"} 0\n"));
  assert_non_null(strstr(text, "vfiod_create_total{result=\"ok\"} 2\n"));
  assert_non_null(strstr(text, "vfiod_create_total{result=\"failed\"} 1\n"));
  assert_non_null(strstr(text, "vfiod_create_seconds_sum 1.750000\n"));
  assert_non_null(strstr(text, "vfiod_create_seconds_count 2\n"));
  assert_non_null(strstr(text, "vfiod_bind_seconds_sum 0.125000\n"));
  assert_non_null(strstr(text, "vfiod_release_total{result=\"ok\"} 0\n"));
  assert_null(strstr(text, "host")); /* not a journaled state */
  /* The text format's grammar: comments "# HELP name text" / "# TYPE name
   * kind", samples "name[{label="value"}] number"; every sample's family was
   * TYPEd before it. */
  lines = g_strsplit(text, "\n", -1);
  {
    g_autoptr(GRegex) sample = g_regex_new("^([a-z_]+)(\\{[a-z]+=\"[a-z]+\"\\})? [0-9]+(\\.[0-9]+)?$", 0, 0, NULL);
    g_autoptr(GRegex) comment = g_regex_new("^# (HELP|TYPE) ([a-z_]+) .+$", 0, 0, NULL);
    g_autoptr(GHashTable) typed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (char **l = lines; *l; l++) {
      g_autoptr(GMatchInfo) mi = NULL;
      if (!**l)
        continue;
      if (g_regex_match(comment, *l, 0, &mi)) {
        g_autofree char *kind = g_match_info_fetch(mi, 1);
        if (g_str_equal(kind, "TYPE"))
          g_hash_table_add(typed, g_match_info_fetch(mi, 2));
        continue;
      }
      g_clear_pointer(&mi, g_match_info_free);
      if (!g_regex_match(sample, *l, 0, &mi))
        fail_msg("not a sample line: '%s'", *l);
      {
        g_autofree char *name = g_match_info_fetch(mi, 1);
        g_autofree char *family = g_strdup(name);
        char *suffix;
        if (!g_hash_table_contains(typed, family) && (suffix = g_strrstr(family, "_sum")) && !suffix[4])
          *suffix = '\0';
        else if (!g_hash_table_contains(typed, family) && (suffix = g_strrstr(family, "_count")) && !suffix[6])
          *suffix = '\0';
        if (!g_hash_table_contains(typed, family))
          fail_msg("sample '%s' before its # TYPE", *l);
      }
      samples++;
    }
  }
  assert_int_equal(samples, 4 + 1 + 6 + 3 * 4); /* sandbox states: creating ... failed, exited (issue 15) */
}

static void
test_write(void **state)
{
  g_autofree char *dir = g_dir_make_tmp("vfiod-metrics-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "vfiod.prom", NULL);
  g_autofree char *back = NULL;
  g_autoptr(GError) error = NULL;
  GStatBuf st;

  assert_true(vfd_metrics_write(path, "vfiod_stuck_devices 0\n", &error));
  assert_true(g_file_get_contents(path, &back, NULL, NULL));
  assert_string_equal(back, "vfiod_stuck_devices 0\n");
  assert_int_equal(g_stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  assert_false(vfd_metrics_write("/nonexistent-vfiod-dir/x.prom", "x\n", &error));
  assert_non_null(error);
  g_unlink(path);
  g_rmdir(dir);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_format),
    cmocka_unit_test(test_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
