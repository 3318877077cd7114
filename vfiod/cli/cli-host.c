/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl's verbs for the host and its devices: list, bind, release,
 * capabilities, reconcile (vfiod's API); doctor is vfioctl-tool's
 * (cli-doctor.c). */
#include "cli-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* ---- list ----------------------------------------------------------------- */

static int
list_run(VfdCliCall *call, GError **error)
{
  g_autoptr(GVariant) devs = NULL;
  GVariantIter it;
  GVariant *child;

  if (!vfd_manager1_call_list_devices_sync(call->api, &devs, NULL, error))
    return VFD_CLI_ERROR;
  if (call->cli->json) {
    vfd_cli_print_object_list(devs, vfd_cli_device_keys);
    return VFD_EXIT_OK;
  }
  printf("%-12s  %-9s  %-6s  %5s  %-12s  %-9s  %-12s  %6s  %s\n", "BDF", "ID", "CLASS", "GROUP", "DRIVER", "STATE",
         "OWNER", "UID", "NAME");
  g_variant_iter_init(&it, devs);
  while ((child = g_variant_iter_next_value(&it))) {
    GVariantDict d;
    gint32 group = -1;
    g_autofree char *id = NULL;
    g_autofree char *grp = NULL;
    g_autofree char *uid = NULL;
    gboolean managed = FALSE;
    guint32 owner_uid = 0;

    g_variant_dict_init(&d, child);
    g_variant_dict_lookup(&d, "iommu_group", "i", &group);
    g_variant_dict_lookup(&d, "managed", "b", &managed);
    id = g_strdup_printf("%s:%s", vfd_cli_dict_str(&d, "vendor", "?"), vfd_cli_dict_str(&d, "device", "?"));
    grp = group >= 0 ? g_strdup_printf("%d", group) : g_strdup("-");
    uid = g_variant_dict_lookup(&d, "owner_uid", "u", &owner_uid) ? g_strdup_printf("%u", owner_uid) : g_strdup("-");
    printf("%-12s  %-9s  %-6s  %5s  %-12s  %-9s  %-12s  %6s  %s%s\n", vfd_cli_dict_str(&d, "bdf", "?"), id,
           vfd_cli_dict_str(&d, "class", "?"), grp, vfd_cli_dict_str(&d, "driver", "-"),
           vfd_cli_dict_str(&d, "state", "?"), vfd_cli_dict_str(&d, "owner", "-"), uid,
           vfd_cli_dict_str(&d, "name", ""), managed ? "" : " (not managed)");
    g_variant_dict_clear(&d);
    g_variant_unref(child);
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_list = {
  .name = "list",
  .summary = "  list                          PCI devices, their IOMMU groups, drivers and vfiod state\n",
  .params = "",
  .args = VFD_CLI_ARGS_NONE,
  .run = list_run,
};

/* ---- bind, release ------------------------------------------------------------ */

static void
print_bdf_result(Cli *cli, const char *verb, const char *const *devs, gint32 group)
{
  if (cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (const char *const *d = devs; *d; d++)
      json_builder_add_string_value(b, *d);
    json_builder_end_array(b);
    if (group >= 0) {
      json_builder_set_member_name(b, "iommu_group");
      json_builder_add_int_value(b, group);
    }
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    vfd_cli_print_json(root);
    return;
  }
  for (const char *const *d = devs; *d; d++)
    printf("%s %s\n", verb, *d);
}

typedef struct {
  char *owner;
  gboolean force, persist;
} BindOpts;

static const GOptionEntry bind_options[] = {
  { "owner", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(BindOpts, owner),
    "Who holds the devices (default: vfioctl)", "NAME" },
  { "force", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(BindOpts, force),
    "Bind even when processes hold the GPU's /dev/nvidia* node", NULL },
  { "persist", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(BindOpts, persist),
    "For the pool: kept on vfio-pci across restarts and reboots", NULL },
  { NULL },
};

static int
bind_check(VfdCliCall *call)
{
  BindOpts *o = call->opts;

  if (o->persist && o->owner && !g_str_equal(o->owner, "pool"))
    return vfd_cli_usage_error("bind: --persist binds for the owner 'pool'; it takes no other --owner");
  if (o->persist) {
    g_free(o->owner);
    o->owner = g_strdup("pool");
  }
  return VFD_CLI_GO_ON;
}

static int
bind_run(VfdCliCall *call, GError **error)
{
  BindOpts *o = call->opts;
  g_auto(GStrv) devs = NULL;
  GVariantDict opts;
  gint32 group = -1;

  g_variant_dict_init(&opts, NULL);
  if (o->force)
    g_variant_dict_insert(&opts, "force", "b", TRUE);
  if (!vfd_manager1_call_bind_device_full_sync(call->api, call->arg, o->owner ? o->owner : "",
                                               g_variant_dict_end(&opts), &devs, &group, NULL, error))
    return VFD_CLI_ERROR;
  print_bdf_result(call->cli, "bound", (const char *const *) devs, group);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_bind = {
  .name = "bind",
  .summary = "  bind BDF [--owner NAME | --persist] [--force]  bind BDF's whole IOMMU group to vfio-pci\n"
             "                                (--force: even when processes hold the GPU's /dev/nvidia* open;\n"
             "                                --persist: for the pool, kept across vfiod restarts and reboots)\n",
  .params = "BDF",
  .args = VFD_CLI_ARGS_BDF,
  .opts_size = sizeof(BindOpts),
  .options = bind_options,
  .check = bind_check,
  .run = bind_run,
};

static int
release_run(VfdCliCall *call, GError **error)
{
  g_auto(GStrv) devs = NULL;

  if (!vfd_manager1_call_release_device_sync(call->api, call->arg, &devs, NULL, error))
    return VFD_CLI_ERROR;
  print_bdf_result(call->cli, "released", (const char *const *) devs, -1);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_release = {
  .name = "release",
  .summary = "  release BDF                   give BDF's IOMMU group back to its original drivers\n",
  .params = "BDF",
  .args = VFD_CLI_ARGS_BDF,
  .run = release_run,
};

/* ---- open-group (issue 15, item 9) ------------------------------------------- */

/* The fd number the command gets the group on (VFIOD_GROUP_FD). */
#define OPEN_GROUP_FD 3

typedef struct {
  gboolean exec;
} OpenGroupOpts;

static const GOptionEntry open_group_options[] = {
  { "exec", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(OpenGroupOpts, exec),
    "Run CMD (after --) with the group's fd as fd 3, VFIOD_GROUP_FD=3 and VFIOD_IOMMU_GROUP=N", NULL },
  { NULL },
};

/* BDF, then with --exec "--" (GOption may leave it) and CMD [ARGS...]. */
static int
open_group_check(VfdCliCall *call)
{
  gboolean exec = ((OpenGroupOpts *) call->opts)->exec;
  int cmd = 2;

  if (call->argc < 2)
    return vfd_cli_usage_error("open-group takes a BDF");
  if (!vfd_cli_check_bdf(call->argv[1]))
    return VFD_EXIT_USAGE;
  call->arg = call->argv[1];
  if (cmd < call->argc && g_str_equal(call->argv[cmd], "--"))
    cmd++;
  if (exec && cmd >= call->argc)
    return vfd_cli_usage_error("open-group --exec: give the command after --: open-group BDF --exec -- CMD [ARGS...]");
  if (!exec && call->argc > 2)
    return vfd_cli_usage_error("open-group: unexpected argument '%s' (a command needs --exec -- CMD)", call->argv[2]);
  return VFD_CLI_GO_ON;
}

static int
open_group_run(VfdCliCall *call, GError **error)
{
  gboolean exec = ((OpenGroupOpts *) call->opts)->exec;
  g_autoptr(GVariant) handle = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_auto(GStrv) devs = NULL;
  g_autofree char *num = NULL;
  char **cmd;
  int group = -1, fd;

  if (!vfd_manager1_call_open_group_sync(call->api, call->arg, NULL, &handle, &group, &devs, &fds, NULL, error))
    return VFD_CLI_ERROR;
  if (!fds || g_variant_get_handle(handle) < 0 || g_variant_get_handle(handle) >= g_unix_fd_list_get_length(fds)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED, "vfiod's answer carries no file descriptor");
    return VFD_CLI_ERROR;
  }
  fd = g_unix_fd_list_get(fds, g_variant_get_handle(handle), error); /* a dup, close-on-exec */
  if (fd < 0)
    return VFD_CLI_ERROR;
  g_clear_object(&fds);
  if (!exec) {
    /* Only a check that the caller may have it: the fd is closed again. */
    close(fd);
    print_bdf_result(call->cli, "may open", (const char *const *) devs, group);
    if (!call->cli->json)
      printf("IOMMU group %d (/dev/vfio/%d): the fd was granted and closed again; --exec -- CMD hands it on\n", group,
             group);
    return VFD_EXIT_OK;
  }
  /* fd 3 for the command, without close-on-exec; every other fd vfioctl
   * holds (its D-Bus socket) is close-on-exec. */
  if (fd != OPEN_GROUP_FD) {
    if (dup2(fd, OPEN_GROUP_FD) < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "dup2 of the group fd to fd %d: %s", OPEN_GROUP_FD,
                  g_strerror(errno));
      close(fd);
      return VFD_CLI_ERROR;
    }
    close(fd);
  } else if (fcntl(fd, F_SETFD, 0) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "clearing close-on-exec of fd %d: %s", fd, g_strerror(errno));
    return VFD_CLI_ERROR;
  }
  num = g_strdup_printf("%d", group);
  g_setenv("VFIOD_GROUP_FD", G_STRINGIFY(OPEN_GROUP_FD), TRUE);
  g_setenv("VFIOD_IOMMU_GROUP", num, TRUE);
  cmd = call->argv + 2;
  if (g_str_equal(*cmd, "--"))
    cmd++;
  fflush(NULL);
  execvp(cmd[0], cmd);
  fprintf(stderr, "vfioctl: open-group: cannot run '%s': %s\n", cmd[0], g_strerror(errno));
  close(OPEN_GROUP_FD);
  return 127;
}

const VfdCliVerb vfd_cli_verb_open_group = {
  .name = "open-group",
  .summary = "  open-group BDF [--exec -- CMD [ARGS...]]  get the open /dev/vfio/N of BDF's IOMMU group, bound by\n"
             "                                you; --exec: run CMD with it as fd 3 (VFIOD_GROUP_FD=3,\n"
             "                                VFIOD_IOMMU_GROUP=N), for a VMM you launch yourself\n",
  .params = "BDF [-- CMD [ARGS...]]",
  .args = VFD_CLI_ARGS_ANY,
  .opts_size = sizeof(OpenGroupOpts),
  .options = open_group_options,
  .check = open_group_check,
  .run = open_group_run,
};

/* ---- capabilities ------------------------------------------------------------- */

static int
capabilities_run(VfdCliCall *call, GError **error)
{
  g_autoptr(GVariant) caps = NULL;
  g_autoptr(GVariant) devs = NULL;
  g_autoptr(GVariant) host = NULL;
  static const char *const host_keys[] = { "version", "accel", "kvm", "vsock", "network", "gateway_address", "hugepages_total",
                                           "hugepages_free", "hugepage_kib", "memory_mib", "cpus",
                                           "free_units", "phys_bits", "la57", NULL };
  static const char *const hgx_keys[] = { "gpus", "nvswitches", "gpu_counts", NULL };
  g_autoptr(GVariant) hgx = NULL;

  if (!vfd_manager1_call_get_capabilities_sync(call->api, &caps, NULL, error))
    return VFD_CLI_ERROR;
  devs = g_variant_lookup_value(caps, "devices", G_VARIANT_TYPE("aa{sv}"));
  host = g_variant_lookup_value(caps, "host", G_VARIANT_TYPE_VARDICT);
  hgx = g_variant_lookup_value(caps, "hgx", G_VARIANT_TYPE_VARDICT);
  if (call->cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    GVariantIter it;
    GVariant *child;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "host");
    vfd_cli_add_object(b, host, host_keys);
    if (hgx) {
      json_builder_set_member_name(b, "hgx");
      vfd_cli_add_object(b, hgx, hgx_keys);
    }
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    g_variant_iter_init(&it, devs);
    while ((child = g_variant_iter_next_value(&it))) {
      vfd_cli_add_object(b, child, vfd_cli_device_keys);
      g_variant_unref(child);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    vfd_cli_print_json(root);
    return VFD_EXIT_OK;
  }
  {
    GVariantDict d;
    guint32 cpus = 0, free_units = 0;
    guint64 mem = 0, hp_total = 0, hp_free = 0;
    gboolean kvm = FALSE, vsock = FALSE, net = FALSE;

    g_variant_dict_init(&d, host);
    g_variant_dict_lookup(&d, "cpus", "u", &cpus);
    g_variant_dict_lookup(&d, "free_units", "u", &free_units);
    g_variant_dict_lookup(&d, "memory_mib", "t", &mem);
    g_variant_dict_lookup(&d, "hugepages_total", "t", &hp_total);
    g_variant_dict_lookup(&d, "hugepages_free", "t", &hp_free);
    g_variant_dict_lookup(&d, "kvm", "b", &kvm);
    g_variant_dict_lookup(&d, "vsock", "b", &vsock);
    g_variant_dict_lookup(&d, "network", "b", &net);
    printf("vfiod %s, accel %s (kvm %s), %u CPUs, %" G_GUINT64_FORMAT " MiB, hugepages %" G_GUINT64_FORMAT
           "/%" G_GUINT64_FORMAT " free\n",
           vfd_cli_dict_str(&d, "version", "?"), vfd_cli_dict_str(&d, "accel", "?"), kvm ? "usable" : "not usable",
           cpus, mem, hp_free, hp_total);
    printf("network %s, vsock %s, %u free device unit(s)\n", net ? "on" : "off", vsock ? "yes" : "no",
           free_units);
    {
      guint32 bits = 0;
      gboolean la57 = FALSE;
      if (g_variant_dict_lookup(&d, "phys_bits", "u", &bits)) {
        g_variant_dict_lookup(&d, "la57", "b", &la57);
        printf("address width %u bits physical, %s paging\n", bits, la57 ? "5-level" : "4-level");
      }
    }
    g_variant_dict_clear(&d);
  }
  if (hgx) {
    g_autofree const char **gpus = NULL;
    g_autofree const char **switches = NULL;
    GVariantDict d;

    g_variant_dict_init(&d, hgx);
    g_variant_dict_lookup(&d, "gpus", "^a&s", &gpus);
    g_variant_dict_lookup(&d, "nvswitches", "^a&s", &switches);
    printf("HGX board: %u GPUs, %u NVSwitches; a sandbox gets 1 GPU, or all GPUs with all NVSwitches\n",
           gpus ? g_strv_length((char **) gpus) : 0, switches ? g_strv_length((char **) switches) : 0);
    g_variant_dict_clear(&d);
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_capabilities = {
  .name = "capabilities",
  .summary = "  capabilities                  host facts (accel, vsock, hugepages) and the device inventory\n",
  .params = "",
  .args = VFD_CLI_ARGS_NONE,
  .run = capabilities_run,
};

/* ---- reconcile ---------------------------------------------------------------- */

static const char *const report_keys[] = { "subject", "action", "detail", NULL };

typedef struct {
  gboolean force;
} ReconcileOpts;

static const GOptionEntry reconcile_options[] = {
  { "force", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(ReconcileOpts, force),
    "After a corrupt journal: keep it aside and start a new one", NULL },
  { NULL },
};

static int
reconcile_run(VfdCliCall *call, GError **error)
{
  gboolean force = ((ReconcileOpts *) call->opts)->force;
  g_autoptr(GVariant) report = NULL;
  GVariantDict opts;
  GVariantIter it;
  GVariant *child;

  g_variant_dict_init(&opts, NULL);
  if (force)
    g_variant_dict_insert(&opts, "force", "b", TRUE);
  if (!vfd_manager1_call_reconcile_sync(call->api, g_variant_dict_end(&opts), &report, NULL, error))
    return VFD_CLI_ERROR;
  if (call->cli->json) {
    vfd_cli_print_object_list(report, report_keys);
    return VFD_EXIT_OK;
  }
  if (g_variant_n_children(report) == 0)
    printf("nothing to reconcile\n");
  g_variant_iter_init(&it, report);
  while ((child = g_variant_iter_next_value(&it))) {
    GVariantDict d;
    g_variant_dict_init(&d, child);
    printf("%-12s  %-9s  %s\n", vfd_cli_dict_str(&d, "subject", "?"), vfd_cli_dict_str(&d, "action", "?"),
           vfd_cli_dict_str(&d, "detail", ""));
    g_variant_dict_clear(&d);
    g_variant_unref(child);
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_reconcile = {
  .name = "reconcile",
  .summary = "  reconcile [--force]           settle devices left half-way, restore those of gone sandboxes,\n"
             "                                report devices on vfio-pci vfiod does not know\n"
             "                                (--force: after a corrupt journal, start a new one)\n",
  .params = "",
  .args = VFD_CLI_ARGS_NONE,
  .timeout_ms = 10 * 60 * 1000,
  .opts_size = sizeof(ReconcileOpts),
  .options = reconcile_options,
  .run = reconcile_run,
};
