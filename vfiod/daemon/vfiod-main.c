/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiod: parse the command line, build the manager, run the loop. */
#include <locale.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>

#include "config.h"
#include "daemon.h"
#include "manager.h"

/* --check-config: what vfiod_config_load() refuses, plus the accounts the
 * configuration names; unknown keys are warnings. */
static int
check_config(const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(VfdConfig) config = vfd_config_load(path, &warnings, &error);
  int bad = 0;

  if (!config) {
    fprintf(stderr, "vfiod: %s\n", error->message);
    return 1;
  }
  for (guint i = 0; warnings && i < warnings->len; i++)
    fprintf(stderr, "vfiod: %s: warning: %s\n", path, (const char *) g_ptr_array_index(warnings, i));
  if (config->qemu_user && *config->qemu_user && !g_str_equal(config->qemu_user, "root") &&
      !getpwnam(config->qemu_user)) {
    fprintf(stderr, "vfiod: %s: [qemu] user '%s' does not exist\n", path, config->qemu_user);
    bad = 1;
  }
  if (config->allowed_group && *config->allowed_group && !getgrnam(config->allowed_group))
    fprintf(stderr, "vfiod: %s: warning: [daemon] allowed_group '%s' does not exist: only root may use the API\n",
            path, config->allowed_group);
  if (config->vm_libvirt) {
    g_autoptr(GError) lerror = NULL;
    if (!vfd_manager_libvirt_module_check(&lerror)) {
      fprintf(stderr, "vfiod: %s: [vm] backend libvirt: %s\n", path, lerror->message);
      bad = 1;
    }
  }
  {
    /* not an error: a sandbox may name its own kernel and initramfs */
    g_autoptr(GPtrArray) image = vfd_config_image_problems(config);
    for (guint i = 0; i < image->len; i++)
      fprintf(stderr, "vfiod: %s: note: %s\n", path, (const char *) g_ptr_array_index(image, i));
  }
  if (!bad)
    printf("vfiod: %s: configuration OK\n", path);
  return bad;
}

int
main(int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *check_path = NULL;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Configuration file (GLib key file)", "FILE" },
    { "check-config", 0, 0, G_OPTION_ARG_FILENAME, &check_path,
      "Check FILE as vfiod would load it (values, accounts) and exit: 0 valid, 1 not (for ExecStartPre=)", "FILE" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- GPU passthrough manager for microVM sandboxes");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autoptr(VfdConfig) config = NULL;
  g_autoptr(VfdManager) manager = NULL;

  setlocale(LC_ALL, "");
  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "vfiod: %s\n", error->message);
    return 2;
  }
  if (version) {
    printf("vfiod %s\n", VFIOD_VERSION);
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "vfiod: unexpected argument '%s'\n", argv[1]);
    return 2;
  }
  if (check_path)
    return check_config(check_path);
  config = vfd_config_load(config_path, &warnings, &error);
  if (!config) {
    fprintf(stderr, "vfiod: %s\n", error->message);
    return 2;
  }
  for (guint i = 0; warnings && i < warnings->len; i++)
    g_warning("%s", (const char *) g_ptr_array_index(warnings, i));
  {
    g_autoptr(GPtrArray) image = vfd_config_image_problems(config);
    for (guint i = 0; i < image->len; i++)
      g_message("%s", (const char *) g_ptr_array_index(image, i));
  }

  manager = vfd_manager_new(g_steal_pointer(&config), &error);
  if (!manager || !vfd_manager_start(manager, &error)) {
    g_printerr("vfiod: %s\n", error->message);
    return 1;
  }
  return vfd_daemon_run(manager, config_path);
}
