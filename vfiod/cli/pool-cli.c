/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl pool: the pool's state on this host and its boot configuration
 * (issue 16, items 1-2). Local, like doctor: reads the config, the journal
 * and sysfs; only --fix asks the daemon (a reconcile, which brings the pool
 * to its state). */
#include "cli-private.h"

#include <json-glib/json-glib.h>
#include <stdio.h>

#include "config.h"
#include "error.h"
#include "pool.h"
#include "variant.h"
#include "vfd-dbus.h"

#ifndef VFIOD_SYSCONFDIR
#define VFIOD_SYSCONFDIR "/etc"
#endif

static const char pool_usage[] =
    "Usage: vfioctl pool status [--config FILE] [--fix] [--json]\n"
    "       vfioctl pool install-boot [--config FILE] [--root DIR]\n";

/* A host over the config's trees with its journal (read), for collecting. */
static VfdHost *
local_host(const VfdConfig *c, GError **error)
{
  g_autoptr(VfdPolicy) policy = vfd_policy_new(c->ids, c->classes, error);
  g_autoptr(VfdJournal) journal = NULL;
  VfdHost *host;

  if (!policy)
    return NULL;
  journal = vfd_journal_open(c->state_dir, error);
  if (!journal)
    return NULL;
  host = vfd_host_new(vfd_sysfs_new(c->sys_root, c->dev_root), g_steal_pointer(&policy), g_steal_pointer(&journal));
  if (c->variant_drivers) {
    static const char *const no_config[] = { NULL };
    vfd_host_set_variant(host, vfd_variant_new(*c->modules_dir ? c->modules_dir : NULL,
                                               *c->modules_dir ? no_config : NULL, NULL));
  }
  return host;
}

static GPtrArray *
collect(const VfdConfig *c, GError **error)
{
  g_autoptr(VfdHost) host = local_host(c, error);
  g_autoptr(VfdPoolRules) rules = NULL;

  if (!host)
    return NULL;
  rules = vfd_pool_rules_new(c->pool_devices, c->pool_match, c->pool_mode, error);
  if (!rules)
    return NULL;
  return vfd_pool_collect(host, rules, vfd_host_variant(host), error);
}

static guint
count_wrong(GPtrArray *entries)
{
  guint n = 0;

  for (guint i = 0; i < entries->len; i++)
    n += !((VfdPoolEntry *) g_ptr_array_index(entries, i))->ok;
  return n;
}

/* "ok", "wrong-driver" (not on its VFIO driver), "not-journaled" (on it,
 * but vfiod does not hold it for the pool yet). */
static const char *
entry_status(const VfdPoolEntry *e)
{
  if (e->ok)
    return "ok";
  if (g_strcmp0(e->driver, e->want_driver) != 0)
    return "wrong-driver";
  return "not-journaled";
}

static void
print_status(GPtrArray *entries, gboolean json)
{
  if (json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *text = NULL;

    json_builder_begin_array(b);
    for (guint i = 0; i < entries->len; i++) {
      VfdPoolEntry *e = g_ptr_array_index(entries, i);
      char bdf[VFD_BDF_STRLEN];
      json_builder_begin_object(b);
      json_builder_set_member_name(b, "bdf");
      json_builder_add_string_value(b, vfd_bdf_format(&e->bdf, bdf));
      json_builder_set_member_name(b, "iommu_group");
      json_builder_add_int_value(b, e->iommu_group);
      vfd_cli_add_string_member(b, "driver", e->driver);
      json_builder_set_member_name(b, "vfio_driver");
      json_builder_add_string_value(b, e->want_driver);
      vfd_cli_add_string_member(b, "host_driver", e->host_driver);
      json_builder_set_member_name(b, "state");
      json_builder_add_string_value(b, e->state);
      vfd_cli_add_string_member(b, "owner", e->owner);
      json_builder_set_member_name(b, "configured");
      json_builder_add_boolean_value(b, e->by_rule);
      json_builder_set_member_name(b, "status");
      json_builder_add_string_value(b, entry_status(e));
      json_builder_end_object(b);
    }
    json_builder_end_array(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    text = json_generator_to_data(gen, NULL);
    puts(text);
    return;
  }
  printf("%-12s  %5s  %-20s  %-20s  %-8s  %s\n", "BDF", "GROUP", "DRIVER", "VFIO DRIVER", "STATE", "STATUS");
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    char bdf[VFD_BDF_STRLEN];
    printf("%-12s  %5d  %-20s  %-20s  %-8s  %s%s\n", vfd_bdf_format(&e->bdf, bdf), e->iommu_group,
           e->driver ? e->driver : "-", e->want_driver, e->state, entry_status(e),
           e->by_rule ? "" : " (bind --persist)");
  }
  if (entries->len == 0)
    printf("(the pool is empty: no [pool] devices or match rules hit, nothing bound with --persist)\n");
}

static int
pool_status(const char *socket_path, gboolean json, const VfdConfig *c, gboolean fix)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = collect(c, &error);
  guint wrong;

  if (!entries) {
    fprintf(stderr, "vfioctl: pool status: %s\n", error->message);
    return VFD_EXIT_FAILED;
  }
  wrong = count_wrong(entries);
  if (fix && wrong) {
    g_autoptr(VfdManager1) api = vfd_cli_connect(socket_path, &error);
    g_autoptr(GVariant) report = NULL;
    GVariantDict opts;

    g_variant_dict_init(&opts, NULL);
    if (!api) {
      fprintf(stderr, "vfioctl: pool status --fix needs vfiod: %s\n", error->message);
      return VFD_EXIT_FAILED;
    }
    g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(api), 10 * 60 * 1000);
    if (!vfd_manager1_call_reconcile_sync(api, g_variant_dict_end(&opts), &report, NULL, &error)) {
      fprintf(stderr, "vfioctl: pool status --fix: %s\n", error->message);
      return VFD_EXIT_FAILED;
    }
    if (!json)
      fprintf(stderr, "vfioctl: %u pool function(s) not in place: asked vfiod to bring the pool to its state\n",
              wrong);
    g_ptr_array_unref(entries);
    entries = collect(c, &error);
    if (!entries) {
      fprintf(stderr, "vfioctl: pool status: %s\n", error->message);
      return VFD_EXIT_FAILED;
    }
    wrong = count_wrong(entries);
  }
  print_status(entries, json);
  if (wrong && !json)
    fprintf(stderr, "vfioctl: %u pool function(s) not in place%s\n", wrong, fix ? "" : " (--fix rebinds them)");
  return wrong ? VFD_EXIT_FAILED : VFD_EXIT_OK;
}

static int
pool_install_boot(const VfdConfig *c, const char *root)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = collect(c, &error);
  g_autofree char *note = NULL;
  gboolean changed = FALSE;

  if (!entries) {
    fprintf(stderr, "vfioctl: pool install-boot: %s\n", error->message);
    return VFD_EXIT_FAILED;
  }
  if (!vfd_pool_install_boot(root, entries, &changed, &note, &error)) {
    fprintf(stderr, "vfioctl: pool install-boot: %s\n", error->message);
    return VFD_EXIT_FAILED;
  }
  printf("%s %s/%s (%u pool function(s))\n", changed ? "wrote" : "unchanged", g_str_equal(root, "/") ? "" : root,
         VFD_POOL_UDEV_RULES, entries->len);
  printf("%s %s/%s\n", changed ? "wrote" : "unchanged", g_str_equal(root, "/") ? "" : root, VFD_POOL_MODPROBE_CONF);
  if (note)
    printf("note: %s\n", note);
  return VFD_EXIT_OK;
}

typedef struct {
  char *config_path;
  char *root;
  gboolean fix;
} PoolOpts;

static const GOptionEntry pool_options[] = {
  { "config", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(PoolOpts, config_path),
    "vfiod's config (default /etc/vfiod/vfiod.conf)", "FILE" },
  { "fix", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(PoolOpts, fix),
    "status: have vfiod rebind functions not in place", NULL },
  { "root", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(PoolOpts, root),
    "install-boot: the root to install under (default /)", "DIR" },
  { NULL },
};

static void
pool_init(void *opts)
{
  PoolOpts *o = opts;

  o->config_path = g_strdup(g_getenv("VFIOD_CONFIG"));
}

static int
pool_check(VfdCliCall *call)
{
  PoolOpts *o = call->opts;
  int argc = call->argc;
  char **argv = call->argv;
  gboolean fix = o->fix, json = call->cli->json;
  const char *root = o->root;
  const char *verb;

  if (argc != 2 || (!g_str_equal(argv[1], "status") && !g_str_equal(argv[1], "install-boot"))) {
    fputs(pool_usage, stderr);
    return VFD_EXIT_USAGE;
  }
  verb = argv[1];
  if ((fix || json) && !g_str_equal(verb, "status")) {
    fprintf(stderr, "vfioctl: pool install-boot takes no --fix or --json\n");
    return VFD_EXIT_USAGE;
  }
  if (root && !g_str_equal(verb, "install-boot")) {
    fprintf(stderr, "vfioctl: pool status takes no --root\n");
    return VFD_EXIT_USAGE;
  }
  if (root && !g_path_is_absolute(root)) {
    fprintf(stderr, "vfioctl: pool install-boot --root wants an absolute path, got '%s'\n", root);
    return VFD_EXIT_USAGE;
  }
  return VFD_CLI_GO_ON;
}

static int
pool_run(VfdCliCall *call, GError **error)
{
  PoolOpts *o = call->opts;
  const char *verb = call->argv[1];
  g_autoptr(VfdConfig) config = NULL;

  if (!o->config_path || !*o->config_path) {
    g_free(o->config_path);
    o->config_path = g_build_filename(VFIOD_SYSCONFDIR, "vfiod", "vfiod.conf", NULL);
  }
  config = vfd_config_load(o->config_path, NULL, error);
  if (!config) {
    fprintf(stderr, "vfioctl: pool: %s\n", (*error)->message);
    return VFD_EXIT_USAGE;
  }
  if (g_str_equal(verb, "status"))
    return pool_status(call->cli->socket_path, call->cli->json, config, o->fix);
  return pool_install_boot(config, o->root ? o->root : "/");
}

const VfdCliVerb vfd_cli_tool_pool = {
  .name = "pool",
  .params = "status|install-boot",
  .args = VFD_CLI_ARGS_ANY,
  .local = TRUE,
  .opts_size = sizeof(PoolOpts),
  .options = pool_options,
  .init = pool_init,
  .check = pool_check,
  .run = pool_run,
  .parse_usage = pool_usage,
};
