/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiod-fake: TEST ONLY. vfiod's main, but the device layer talks to a fake
 * kernel (tests/unit/fake-sysfs) loaded from a tree on disk instead of /sys,
 * so that the crash-matrix test can kill it (VFIOD_CRASH_AT) and start it
 * again on the same "hardware".
 *
 *   vfiod-fake --config FILE [--fake-root DIR]
 *
 * DIR is the fake tree's directory (the one holding sys/, dev/ and
 * model.ini, made by fake_sysfs_new_in()); by default the parent of the
 * config's [testing] sys_root. The config's sys_root/dev_root are replaced
 * by DIR/sys and DIR/dev. Every sysfs write goes through the fake's writer,
 * which refuses any path outside DIR: this program never writes to /sys.
 * Signals as vfiod's (vfd_daemon_run(): SIGTERM/SIGINT stop it, sandboxes
 * keep running; SIGHUP reloads FILE). Exit
 * status: 0 after a signal, 1 when the manager cannot start, 2 on bad usage,
 * configuration or fake tree. */
#include <locale.h>
#include <stdio.h>

#include "config.h"
#include "fake-sysfs.h"
#include "daemon.h"
#include "manager.h"

int
main(int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *fake_root = NULL;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Configuration file (GLib key file)", "FILE" },
    { "fake-root", 0, 0, G_OPTION_ARG_FILENAME, &fake_root,
      "Fake sysfs tree (default: parent of [testing] sys_root)", "DIR" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- vfiod on a fake kernel (TEST ONLY)");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(VfdConfig) config = NULL;
  /* Declared before the manager: freed after it (the writer points here). */
  g_autoptr(FakeSysfs) fake = NULL;
  g_autoptr(VfdManager) manager = NULL;

  setlocale(LC_ALL, "");
  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "vfiod-fake: %s\n", error->message);
    return 2;
  }
  if (argc > 1) {
    fprintf(stderr, "vfiod-fake: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  if (!config_path) {
    fprintf(stderr, "vfiod-fake: --config is required\n");
    return 2;
  }
  config = vfd_config_load(config_path, &warnings, &error);
  if (!config) {
    fprintf(stderr, "vfiod-fake: %s\n", error->message);
    return 2;
  }
  for (guint i = 0; warnings && i < warnings->len; i++)
    g_warning("%s", (const char *) g_ptr_array_index(warnings, i));

  if (!fake_root)
    fake_root = g_path_get_dirname(config->sys_root);
  fake = fake_sysfs_try_load(fake_root, &error);
  if (!fake) {
    fprintf(stderr, "vfiod-fake: no fake sysfs tree at %s: %s\n", fake_root, error->message);
    return 2;
  }
  g_free(config->sys_root);
  config->sys_root = g_strdup(fake_sysfs_sys_root(fake));
  g_free(config->dev_root);
  config->dev_root = g_strdup(fake_sysfs_dev_root(fake));
  g_message("TEST ONLY: fake kernel at %s", fake_sysfs_dir(fake));

  manager = vfd_manager_new_with_sysfs(g_steal_pointer(&config), fake_sysfs_open(fake), &error);
  if (!manager || !vfd_manager_start(manager, &error)) {
    g_printerr("vfiod-fake: %s\n", error->message);
    return 1;
  }
  return vfd_daemon_run(manager, config_path);
}
