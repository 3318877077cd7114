/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-daemon: BENCHMARK ONLY. tests/crash/vfiod-fake (vfiod's main over
 * the fake kernel of tests/unit/fake-sysfs, loaded from a tree on disk),
 * plus what the benchmarks need:
 *
 *   bench-daemon --config FILE [--fake-root DIR] [--hang-unbind BDF]
 *
 * - Start-up milestones on stderr, one line each, as
 *   "BENCH <event> <CLOCK_MONOTONIC microseconds>": main (first line of
 *   main), loaded (fake kernel loaded), reconciled (vfd_manager_new()
 *   returned: journal read and start-up reconciliation done), serving
 *   (vfd_manager_start() returned: the API socket listens).
 * - The fake kernel's writer is wrapped: "BENCH fake_writes <count> <us>"
 *   after "reconciled" gives the writes and the time spent in the fake
 *   kernel during start-up (it persists its whole model after every write:
 *   a cost of the test harness, not of vfiod, that grows with the device
 *   count).
 * - --hang-unbind BDF: the next unbind of BDF in the fake kernel blocks
 *   (fake_sysfs_hang_next), like an unbind from nvidia with open handles;
 *   "BENCH hung <us>" is printed once a write hangs there. It never ends
 *   by itself: stop the process.
 * Everything else is vfiod-fake: the config's sys_root/dev_root are
 * replaced by DIR/sys and DIR/dev, every sysfs write goes through the
 * fake's writer, which refuses any path outside DIR. */
#include <locale.h>
#include <stdio.h>

#include "config.h"
#include "fake-sysfs.h"
#include "daemon.h"
#include "manager.h"

static void
milestone(const char *event)
{
  fprintf(stderr, "BENCH %s %" G_GINT64_FORMAT "\n", event, g_get_monotonic_time());
  fflush(stderr);
}

static gint64 fake_write_us;
static gint fake_write_count;

static int
timed_writer(const char *path, const char *value, void *fake)
{
  gint64 t0 = g_get_monotonic_time();
  int r = fake_sysfs_writer(path, value, fake);

  __atomic_fetch_add(&fake_write_us, g_get_monotonic_time() - t0, __ATOMIC_RELAXED);
  g_atomic_int_inc(&fake_write_count);
  return r;
}

static gpointer
watch_hang(gpointer fake)
{
  if (fake_sysfs_wait_hung(fake, 1, 3600 * 1000))
    milestone("hung");
  return NULL;
}

int
main(int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *fake_root = NULL;
  g_autofree char *hang_bdf = NULL;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Configuration file", "FILE" },
    { "fake-root", 0, 0, G_OPTION_ARG_FILENAME, &fake_root, "Fake sysfs tree", "DIR" },
    { "hang-unbind", 0, 0, G_OPTION_ARG_STRING, &hang_bdf, "The next unbind of BDF hangs", "BDF" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- vfiod on a fake kernel (BENCHMARK ONLY)");
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) config = NULL;
  g_autoptr(FakeSysfs) fake = NULL;
  g_autoptr(VfdManager) manager = NULL;

  milestone("main");
  setlocale(LC_ALL, "");
  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || !config_path) {
    fprintf(stderr, "bench-daemon: %s\n", error ? error->message : "--config is required");
    return 2;
  }
  config = vfd_config_load(config_path, NULL, &error);
  if (!config) {
    fprintf(stderr, "bench-daemon: %s\n", error->message);
    return 2;
  }
  if (!fake_root)
    fake_root = g_path_get_dirname(config->sys_root);
  fake = fake_sysfs_try_load(fake_root, &error);
  if (!fake) {
    fprintf(stderr, "bench-daemon: no fake sysfs tree at %s: %s\n", fake_root, error->message);
    return 2;
  }
  g_free(config->sys_root);
  config->sys_root = g_strdup(fake_sysfs_sys_root(fake));
  g_free(config->dev_root);
  config->dev_root = g_strdup(fake_sysfs_dev_root(fake));
  milestone("loaded");
  if (hang_bdf) {
    fake_sysfs_hang_next(fake, hang_bdf, FAKE_OP_UNBIND);
    g_thread_unref(g_thread_new("hang-watch", watch_hang, fake));
  }

  {
    VfdSysfs *sysfs = vfd_sysfs_new(fake_sysfs_sys_root(fake), fake_sysfs_dev_root(fake));
    vfd_sysfs_set_writer(sysfs, timed_writer, fake);
    manager = vfd_manager_new_with_sysfs(g_steal_pointer(&config), sysfs, &error);
  }
  milestone("reconciled");
  fprintf(stderr, "BENCH fake_writes %d %" G_GINT64_FORMAT "\n", g_atomic_int_get(&fake_write_count),
          __atomic_load_n(&fake_write_us, __ATOMIC_RELAXED));
  if (!manager || !vfd_manager_start(manager, &error)) {
    g_printerr("bench-daemon: %s\n", error->message);
    return 1;
  }
  milestone("serving");
  return vfd_daemon_run(manager, config_path);
}
