/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cli.h"

#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <unistd.h>

#include "bdf.h"
#include "error.h"
#include "doctor.h"
#include "image.h"
#include "initramfs.h"
#include "manager.h"
#include "pins.h"
#include "stage.h"
#include "vfd-dbus.h"

#define DEFAULT_SOCKET "/run/vfiod/" VFD_SOCKET_NAME

/* pins.env / versions.env: the installed copies (<datadir>/vfiod), else
 * the source tree's (a build that is not installed). */
static const char *
default_pins_path(const char *name)
{
  static char *found[2];
  int i = g_str_equal(name, "pins.env") ? 0 : 1;

  if (!found[i]) {
    g_autofree char *installed = g_build_filename(VFIOD_DATADIR, name, NULL);
    g_autofree char *source = g_build_filename(VFIOD_SOURCE_ROOT, name, NULL);
    found[i] = g_strdup(g_file_test(installed, G_FILE_TEST_IS_REGULAR) ? installed : source);
  }
  return found[i];
}
#define DEFAULT_PINS_FILE default_pins_path("pins.env")
#define DEFAULT_VERSIONS_FILE default_pins_path("versions.env")

typedef struct {
  const char *socket_path;
  gboolean json;
} Cli;

static const char usage_text[] =
    "Usage: vfioctl [--socket PATH] COMMAND [ARGS...] [--json]\n"
    "\n"
    "Commands:\n"
    "  list                          PCI devices, their IOMMU groups, drivers and vfiod state\n"
    "  bind BDF [--owner NAME | --persist] [--force]  bind BDF's whole IOMMU group to vfio-pci\n"
    "                                (--force: even when processes hold the GPU's /dev/nvidia* open;\n"
    "                                --persist: for the pool, kept across vfiod restarts and reboots)\n"
    "  release BDF                   give BDF's IOMMU group back to its original drivers\n"
    "  pool status [--fix] [--config FILE]   the pool's functions, their drivers, those not in place\n"
    "                                (local; --fix: vfiod rebinds them; exit 1 when any is not in place)\n"
    "  pool install-boot [--root DIR] [--config FILE]   write the boot configuration binding the pool\n"
    "                                before host drivers (udev rule, modprobe.d softdeps)\n"
    "  doctor                        check this host: IOMMU, vfio-pci, memlock, hugepages, QEMU, KVM,\n"
    "                                vhost-vsock, pins (local, no daemon; exit 1 when a check fails)\n"
    "  capabilities                  host facts (accel, vsock, hugepages) and the device inventory\n"
    "  reconcile [--force]           settle devices left half-way, restore those of gone sandboxes,\n"
    "                                report devices on vfio-pci vfiod does not know\n"
    "                                (--force: after a corrupt journal, start a new one)\n"
    "  sandbox create [--kernel PATH --initrd PATH] [--device BDF... | --gpus N] [--memory MiB]\n"
    "                 [--vcpus N] [--disk IMG] [--cmd PATH [--arg A]... [--env NAME=VALUE]...]\n"
    "                 [--wait [--timeout SEC]]   (--wait: until the guest reports ready)\n"
    "  sandbox list                  sandboxes and their state\n"
    "  sandbox show ID               one sandbox\n"
    "  sandbox delete ID             stop the sandbox's QEMU and release its devices\n"
    "  initramfs build --guest-init PATH --output PATH   pack a guest initramfs (local, no daemon)\n"
    "      [--modules-dir DIR] [--module NAME]... [--param MOD:KEY=VAL]... [--gpu [--firmware-dir DIR]]\n"
    "      [--cache-dir DIR] [--kernel-release R | --pins FILE] [--nvidia-version V | --versions FILE]\n"
    "                                stage modules (dependencies first, vermagic checked), NVIDIA firmware\n"
    "                                and /etc/vfiod/manifest; --cache-dir reuses an image by content stamp\n"
    "  image build [--gpu] --output DIR [--cache DIR] [--guest-init PATH] [--debs DIR]\n"
    "                                the whole guest (local, no daemon): the pinned kernel, the initramfs\n"
    "                                and with --gpu the NVIDIA driver layer, cached by content, into DIR\n"
    "                                (vmlinuz, initramfs, driver-layer.erofs, image.json); vfiod's\n"
    "                                [qemu] kernel/initrd/driver_layer default to DIR=" VFIOD_IMAGE_DIR "\n"
    "\n"
    "Options:\n"
    "  --socket PATH   vfiod's API socket (default $VFIOD_SOCKET or " DEFAULT_SOCKET ")\n"
    "  --json          machine-readable output\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed, 2 bad usage or input.\n";

static int
usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static int
usage_error(const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  fprintf(stderr, "vfioctl: %s\nTry 'vfioctl --help'.\n", msg);
  return VFD_EXIT_USAGE;
}

/* Maps an API error to an exit status and prints it. */
static int
report_error(const GError *error)
{
  g_autofree char *remote = g_dbus_error_get_remote_error(error);
  g_autofree char *msg = g_strdup(error->message);
  int status = VFD_EXIT_FAILED;

  if (remote)
    g_dbus_error_strip_remote_error((GError *) error);
  if (g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT) ||
      g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND))
    status = VFD_EXIT_USAGE;
  fprintf(stderr, "vfioctl: %s\n", error->message);
  return status;
}

static VfdManager1 *
connect_api(Cli *cli, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(cli->socket_path);
  g_autoptr(GSocketConnection) stream = NULL;
  g_autoptr(GDBusConnection) conn = NULL;

  stream = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, error);
  if (stream)
    conn = g_dbus_connection_new_sync(G_IO_STREAM(stream), NULL, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL,
                                      NULL, error);
  if (!conn) {
    /* vfiod refuses a connection over its caps with one line,
     * ERROR "vfiod refused the connection: <why>", then closes it: GDBus
     * reports the line as an unexpected answer, or, when vfiod closed
     * before GDBus sent its first bytes, a broken pipe; the line is still
     * there to read then. Show vfiod's words. */
    g_autofree char *said = NULL;
    const char *at = strstr((*error)->message, "ERROR \"vfiod ");

    if (at) {
      said = g_strdup(at);
    } else if (stream) {
      GSocket *sock = g_socket_connection_get_socket(stream);
      char buf[512];
      gssize n;

      g_socket_set_timeout(sock, 1);
      n = g_socket_receive(sock, buf, sizeof buf - 1, NULL, NULL);
      if (n > 0) {
        buf[n] = '\0';
        if ((at = strstr(buf, "ERROR \"vfiod ")))
          said = g_strdup(at);
      }
    }
    if (said) {
      char *text = said + strlen("ERROR \"");
      char *end = strchr(text, '"');
      if (end)
        *end = '\0';
      g_clear_error(error);
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "%s (%s)", text, cli->socket_path);
      return NULL;
    }
    /* vfiod refuses a peer during authentication: the client only sees
     * the connection end. Say what that means. */
    if (stream && (g_error_matches(*error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
                   strstr((*error)->message, "Unexpected lack of content"))) {
      g_clear_error(error);
      g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                  "vfiod at %s refused this user: only root and members of its allowed_group may use it",
                  cli->socket_path);
      return NULL;
    }
    g_prefix_error(error, "cannot reach vfiod at %s (is it running, and may you use it?): ", cli->socket_path);
    return NULL;
  }
  return vfd_manager1_proxy_new_sync(conn, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES |
                                               G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS |
                                               G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                     NULL, VFD_MANAGER_OBJECT_PATH, NULL, error);
}

static void
print_json(JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autofree char *s = NULL;

  json_generator_set_root(gen, node);
  json_generator_set_pretty(gen, TRUE);
  s = json_generator_to_data(gen, NULL);
  printf("%s\n", s);
}

/* Adds @key from @dict as a JSON member: strings as strings (absent: null
 * when @null_if_absent), numbers, booleans, string arrays. */
static void
add_member(JsonBuilder *b, GVariantDict *dict, const char *key, gboolean null_if_absent)
{
  g_autoptr(GVariant) v = g_variant_dict_lookup_value(dict, key, NULL);

  if (!v) {
    if (null_if_absent) {
      json_builder_set_member_name(b, key);
      json_builder_add_null_value(b);
    }
    return;
  }
  json_builder_set_member_name(b, key);
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
    json_builder_add_string_value(b, g_variant_get_string(v, NULL));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT32))
    json_builder_add_int_value(b, g_variant_get_int32(v));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
    json_builder_add_int_value(b, g_variant_get_uint32(v));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT64))
    json_builder_add_int_value(b, g_variant_get_int64(v));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
    json_builder_add_int_value(b, (gint64) g_variant_get_uint64(v));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
    json_builder_add_boolean_value(b, g_variant_get_boolean(v));
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY)) {
    g_autofree const char **strv = g_variant_get_strv(v, NULL);
    json_builder_begin_array(b);
    for (const char **s = strv; *s; s++)
      json_builder_add_string_value(b, *s);
    json_builder_end_array(b);
  } else if (g_variant_is_of_type(v, G_VARIANT_TYPE("au"))) {
    gsize n = 0;
    const guint32 *u = g_variant_get_fixed_array(v, &n, sizeof(guint32));
    json_builder_begin_array(b);
    for (gsize i = 0; i < n; i++)
      json_builder_add_int_value(b, u[i]);
    json_builder_end_array(b);
  } else
    json_builder_add_null_value(b);
}

static const char *const device_keys[] = { "bdf",   "vendor", "device",    "class",   "iommu_group", "numa_node",
                                           "driver", "state", "owner", "owner_uid", "managed", "name", NULL };
static const char *const sandbox_keys[] = { "id",    "owner_uid",  "state", "pid",       "devices",     "memory_mib",
                                            "vcpus", "numa_node",  "serial_log", "dir",       "exit_status",
                                            "ready", "ready_ms",   "ready_report", NULL };

static void
add_object(JsonBuilder *b, GVariant *dict_v, const char *const *keys)
{
  GVariantDict dict;

  g_variant_dict_init(&dict, dict_v);
  json_builder_begin_object(b);
  for (const char *const *k = keys; *k; k++) {
    /* iommu_group -1 means none: null, like driver and owner. */
    if (g_str_equal(*k, "iommu_group")) {
      gint32 g = -1;
      g_variant_dict_lookup(&dict, *k, "i", &g);
      json_builder_set_member_name(b, *k);
      if (g < 0)
        json_builder_add_null_value(b);
      else
        json_builder_add_int_value(b, g);
      continue;
    }
    /* The guest's report is JSON itself: embed it as an object. */
    if (g_str_equal(*k, "ready_report")) {
      const char *text = NULL;
      g_autoptr(JsonParser) parser = json_parser_new();
      if (!g_variant_dict_lookup(&dict, *k, "&s", &text))
        continue;
      json_builder_set_member_name(b, *k);
      /* An empty or blank report parses with no root node. */
      if (json_parser_load_from_data(parser, text, -1, NULL) && json_parser_get_root(parser))
        json_builder_add_value(b, json_node_copy(json_parser_get_root(parser)));
      else
        json_builder_add_string_value(b, text);
      continue;
    }
    add_member(b, &dict, *k,
               g_str_equal(*k, "driver") || g_str_equal(*k, "owner") || g_str_equal(*k, "owner_uid") ||
                   g_str_equal(*k, "name"));
  }
  json_builder_end_object(b);
  g_variant_dict_clear(&dict);
}

static void
print_object_list(GVariant *list, const char *const *keys)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonNode) root = NULL;
  GVariantIter it;
  GVariant *child;

  json_builder_begin_array(b);
  g_variant_iter_init(&it, list);
  while ((child = g_variant_iter_next_value(&it))) {
    add_object(b, child, keys);
    g_variant_unref(child);
  }
  json_builder_end_array(b);
  root = json_builder_get_root(b);
  print_json(root);
}

static void
print_object(GVariant *dict, const char *const *keys)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonNode) root = NULL;

  add_object(b, dict, keys);
  root = json_builder_get_root(b);
  print_json(root);
}

static const char *
dict_str(GVariantDict *d, const char *key, const char *fallback)
{
  const char *s = NULL;

  return g_variant_dict_lookup(d, key, "&s", &s) ? s : fallback;
}

/* ---- commands ----------------------------------------------------------- */

/* Parses a subcommand's options; leaves positional arguments in argv. */
static int
parse_options(const char *name, const char *params, GOptionEntry *entries, gboolean *json, int *argc,
              char ***argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new(params);
  g_autoptr(GError) error = NULL;
  GOptionEntry json_entry[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, json, "Machine-readable output", NULL },
    { NULL },
  };
  g_autofree char *prog = g_strdup_printf("vfioctl %s", name);

  g_set_prgname(prog);
  if (entries)
    g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_main_entries(ctx, json_entry, NULL);
  if (!g_option_context_parse(ctx, argc, argv, &error))
    return usage_error("%s: %s", name, error->message);
  return -1;
}

static int
cmd_list(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autoptr(GVariant) devs = NULL;
  int r = parse_options("list", "", NULL, &cli->json, &argc, &argv);
  GVariantIter it;
  GVariant *child;

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("list takes no arguments");
  if (!(api = connect_api(cli, &error)) || !vfd_manager1_call_list_devices_sync(api, &devs, NULL, &error))
    return report_error(error);
  if (cli->json) {
    print_object_list(devs, device_keys);
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
    id = g_strdup_printf("%s:%s", dict_str(&d, "vendor", "?"), dict_str(&d, "device", "?"));
    grp = group >= 0 ? g_strdup_printf("%d", group) : g_strdup("-");
    uid = g_variant_dict_lookup(&d, "owner_uid", "u", &owner_uid) ? g_strdup_printf("%u", owner_uid) : g_strdup("-");
    printf("%-12s  %-9s  %-6s  %5s  %-12s  %-9s  %-12s  %6s  %s%s\n", dict_str(&d, "bdf", "?"), id,
           dict_str(&d, "class", "?"), grp, dict_str(&d, "driver", "-"), dict_str(&d, "state", "?"),
           dict_str(&d, "owner", "-"), uid, dict_str(&d, "name", ""), managed ? "" : " (not managed)");
    g_variant_dict_clear(&d);
    g_variant_unref(child);
  }
  return VFD_EXIT_OK;
}

static int
check_bdf_arg(const char *cmd, int argc, char **argv, const char **ret)
{
  VfdBdf bdf;

  if (argc != 2)
    return usage_error("%s takes exactly one BDF", cmd);
  if (vfd_bdf_parse(argv[1], &bdf) < 0) {
    g_autofree char *shown = g_strescape(argv[1], NULL);
    fprintf(stderr, "vfioctl: invalid BDF '%.64s': expected DDDD:BB:DD.F (hex, e.g. 0000:01:00.0)\n", shown);
    return VFD_EXIT_USAGE;
  }
  *ret = argv[1];
  return -1;
}

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
    print_json(root);
    return;
  }
  for (const char *const *d = devs; *d; d++)
    printf("%s %s\n", verb, *d);
}

static int
cmd_bind(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autofree char *owner = NULL;
  g_auto(GStrv) devs = NULL;
  gboolean force = FALSE, persist = FALSE;
  GOptionEntry entries[] = {
    { "owner", 0, 0, G_OPTION_ARG_STRING, &owner, "Who holds the devices (default: vfioctl)", "NAME" },
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Bind even when processes hold the GPU's /dev/nvidia* node", NULL },
    { "persist", 0, 0, G_OPTION_ARG_NONE, &persist, "For the pool: kept on vfio-pci across restarts and reboots",
      NULL },
    { NULL },
  };
  GVariantDict opts;
  const char *bdf = NULL;
  gint32 group = -1;
  int r = parse_options("bind", "BDF", entries, &cli->json, &argc, &argv);

  if (r >= 0 || (r = check_bdf_arg("bind", argc, argv, &bdf)) >= 0)
    return r;
  if (persist && owner && !g_str_equal(owner, "pool"))
    return usage_error("bind: --persist binds for the owner 'pool'; it takes no other --owner");
  if (persist) {
    g_free(owner);
    owner = g_strdup("pool");
  }
  g_variant_dict_init(&opts, NULL);
  if (force)
    g_variant_dict_insert(&opts, "force", "b", TRUE);
  if (!(api = connect_api(cli, &error)) ||
      !vfd_manager1_call_bind_device_full_sync(api, bdf, owner ? owner : "", g_variant_dict_end(&opts), &devs,
                                               &group, NULL, &error))
    return report_error(error);
  print_bdf_result(cli, "bound", (const char *const *) devs, group);
  return VFD_EXIT_OK;
}

static int
cmd_release(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_auto(GStrv) devs = NULL;
  const char *bdf = NULL;
  int r = parse_options("release", "BDF", NULL, &cli->json, &argc, &argv);

  if (r >= 0 || (r = check_bdf_arg("release", argc, argv, &bdf)) >= 0)
    return r;
  if (!(api = connect_api(cli, &error)) || !vfd_manager1_call_release_device_sync(api, bdf, &devs, NULL, &error))
    return report_error(error);
  print_bdf_result(cli, "released", (const char *const *) devs, -1);
  return VFD_EXIT_OK;
}

static void
print_sandbox_text(GVariant *sb)
{
  GVariantDict d;
  g_autofree const char **devs = NULL;
  g_autofree char *joined = NULL;
  gint64 pid = 0;
  guint32 mem = 0, owner_uid = 0;
  gint32 status = 0;
  GVariant *v;

  g_variant_dict_init(&d, sb);
  if ((v = g_variant_dict_lookup_value(&d, "devices", G_VARIANT_TYPE_STRING_ARRAY))) {
    devs = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  joined = devs && devs[0] ? g_strjoinv(",", (char **) devs) : g_strdup("-");
  g_variant_dict_lookup(&d, "pid", "x", &pid);
  g_variant_dict_lookup(&d, "memory_mib", "u", &mem);
  g_variant_dict_lookup(&d, "owner_uid", "u", &owner_uid);
  printf("%-12s  %6u  %-8s  %7" G_GINT64_FORMAT "  %6u  %s", dict_str(&d, "id", "?"), owner_uid,
         dict_str(&d, "state", "?"), pid, mem, joined);
  if (g_variant_dict_lookup(&d, "exit_status", "i", &status))
    printf("  (exit %d)", status);
  printf("\n");
  g_variant_dict_clear(&d);
}

/* Makes @path absolute against the working directory without resolving
 * "." or ".." (the daemon refuses those). */
static char *
absolute_path(const char *path)
{
  g_autofree char *cwd = NULL;

  if (g_path_is_absolute(path))
    return g_strdup(path);
  cwd = g_get_current_dir();
  return g_build_filename(cwd, path, NULL);
}

typedef struct {
  GMainLoop *loop;
  const char *id;
  gboolean ready;
  gboolean ended; /* stopped or failed */
  char *state;
} WaitState;

static void
on_state_changed(GDBusConnection *conn, const char *sender, const char *path, const char *iface,
                 const char *signal, GVariant *params, gpointer data)
{
  WaitState *w = data;
  const char *id, *state;
  gboolean ready;

  g_variant_get(params, "(&s&sb)", &id, &state, &ready);
  if (!g_str_equal(id, w->id))
    return;
  g_free(w->state);
  w->state = g_strdup(state);
  w->ready = ready;
  w->ended = g_str_equal(state, "stopped") || g_str_equal(state, "failed");
  if (w->ready || w->ended)
    g_main_loop_quit(w->loop);
}

static gboolean
on_wait_tick(gpointer data)
{
  WaitState *w = data;
  static int seconds;

  seconds++;
  if (isatty(STDERR_FILENO))
    fprintf(stderr, "\rwaiting for sandbox %s to report ready... %d s", w->id, seconds);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_wait_timeout(gpointer data)
{
  g_main_loop_quit(((WaitState *) data)->loop);
  return G_SOURCE_REMOVE;
}

/* Waits until sandbox @id reports ready, stops, or @timeout_s passes:
 * subscribe, check, then wait (the signal may come before we listen).
 * Returns the final GetSandbox dictionary in *@ret_sb. */
static int
wait_ready(VfdManager1 *api, const char *id, int timeout_s, GVariant **ret_sb)
{
  GDBusConnection *conn = g_dbus_proxy_get_connection(G_DBUS_PROXY(api));
  g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
  g_autoptr(GError) error = NULL;
  WaitState w = { .loop = loop, .id = id };
  guint sub, tick, timeout;
  gboolean ready = FALSE;
  const char *state = NULL;
  g_autoptr(GVariant) sb = NULL;
  GVariantDict d;

  sub = g_dbus_connection_signal_subscribe(conn, NULL, "org.vfiod.Manager1", "SandboxStateChanged",
                                           VFD_MANAGER_OBJECT_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_state_changed,
                                           &w, NULL);
  if (!vfd_manager1_call_get_sandbox_sync(api, id, &sb, NULL, &error))
    return report_error(error);
  g_variant_dict_init(&d, sb);
  g_variant_dict_lookup(&d, "ready", "b", &ready);
  g_variant_dict_lookup(&d, "state", "&s", &state);
  if (!ready && g_strcmp0(state, "stopped") != 0 && g_strcmp0(state, "failed") != 0) {
    tick = g_timeout_add_seconds(1, on_wait_tick, &w);
    timeout = g_timeout_add_seconds((guint) timeout_s, on_wait_timeout, &w);
    g_main_loop_run(loop);
    g_source_remove(tick);
    if (!w.ready && !w.ended)
      ; /* timed out: the source has fired and is gone */
    else
      g_source_remove(timeout);
    if (isatty(STDERR_FILENO))
      fprintf(stderr, "\n");
    g_clear_pointer(&sb, g_variant_unref);
    if (!vfd_manager1_call_get_sandbox_sync(api, id, &sb, NULL, &error))
      return report_error(error);
  }
  g_variant_dict_clear(&d);
  g_dbus_connection_signal_unsubscribe(conn, sub);
  g_free(w.state);
  *ret_sb = g_steal_pointer(&sb);
  g_variant_dict_init(&d, *ret_sb);
  ready = FALSE;
  g_variant_dict_lookup(&d, "ready", "b", &ready);
  g_variant_dict_lookup(&d, "state", "&s", &state);
  if (!ready) {
    fprintf(stderr, "vfioctl: sandbox %s did not report ready (%s)\n", id,
            g_strcmp0(state, "running") == 0 ? "timed out" : state);
    g_variant_dict_clear(&d);
    return VFD_EXIT_FAILED;
  }
  g_variant_dict_clear(&d);
  return VFD_EXIT_OK;
}

static int
cmd_sandbox_create(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_auto(GStrv) devices = NULL;
  g_autofree char *kernel = NULL, *initrd = NULL;
  g_autofree char *kernel_abs = NULL, *initrd_abs = NULL;
  gint memory = 512, vcpus = 1;
  gboolean wait = FALSE;
  gint timeout_s = 300, gpus = 0;
  g_autofree char *disk = NULL, *cmd = NULL;
  g_auto(GStrv) cmd_args = NULL;
  g_auto(GStrv) env = NULL;
  GOptionEntry entries[] = {
    { "device", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &devices, "Pass BDF's IOMMU group through (repeatable)", "BDF" },
    { "gpus", 'g', 0, G_OPTION_ARG_INT, &gpus, "Pass any N free devices (IOMMU groups) through", "N" },
    { "disk", 0, 0, G_OPTION_ARG_FILENAME, &disk, "Raw root disk image for the workload", "PATH" },
    { "cmd", 0, 0, G_OPTION_ARG_STRING, &cmd, "Workload guest-init runs (absolute path in the guest)", "PATH" },
    { "arg", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cmd_args, "An argument for the workload (repeatable)", "ARG" },
    { "env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &env, "NAME=VALUE in the workload's environment (repeatable)",
      "NAME=VALUE" },
    { "wait", 'w', 0, G_OPTION_ARG_NONE, &wait, "Wait until the guest reports ready", NULL },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_s, "With --wait: give up after SEC seconds (default 300)", "SEC" },
    { "kernel", 'k', 0, G_OPTION_ARG_FILENAME, &kernel, "Guest kernel (direct boot)", "PATH" },
    { "initrd", 'i', 0, G_OPTION_ARG_FILENAME, &initrd, "Guest initramfs", "PATH" },
    { "memory", 'm', 0, G_OPTION_ARG_INT, &memory, "Guest RAM in MiB (default 512)", "MiB" },
    { "vcpus", 'c', 0, G_OPTION_ARG_INT, &vcpus, "Virtual CPUs (default 1)", "N" },
    { NULL },
  };
  g_autoptr(GVariant) sb = NULL;
  GVariantDict opts;
  int r = parse_options("sandbox create", "", entries, &cli->json, &argc, &argv);

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("sandbox create: unexpected argument '%s'", argv[1]);
  if (gpus < 0 || gpus > 64)
    return usage_error("sandbox create: --gpus must be 0 to 64");
  if (gpus > 0 && devices && devices[0])
    return usage_error("sandbox create: give --device or --gpus, not both");
  if (memory < 64 || vcpus < 1)
    return usage_error("sandbox create: --memory must be >= 64 and --vcpus >= 1");
  for (char **d = devices; d && *d; d++) {
    VfdBdf bdf;
    if (vfd_bdf_parse(*d, &bdf) < 0) {
      g_autofree char *shown = g_strescape(*d, NULL);
      fprintf(stderr, "vfioctl: invalid BDF '%.64s': expected DDDD:BB:DD.F (hex, e.g. 0000:01:00.0)\n", shown);
      return VFD_EXIT_USAGE;
    }
  }
  /* The daemon wants absolute paths; resolve relative ones here. */
  g_variant_dict_init(&opts, NULL);
  g_variant_dict_insert_value(&opts, "devices",
                              g_variant_new_strv((const char *const *) devices, devices ? -1 : 0));
  /* Without --kernel/--initrd the daemon uses its [qemu] kernel/initrd. */
  if (kernel) {
    kernel_abs = absolute_path(kernel);
    g_variant_dict_insert(&opts, "kernel", "s", kernel_abs);
  }
  if (initrd) {
    initrd_abs = absolute_path(initrd);
    g_variant_dict_insert(&opts, "initrd", "s", initrd_abs);
  }
  if (gpus > 0)
    g_variant_dict_insert(&opts, "gpus", "u", (guint32) gpus);
  if (disk) {
    g_autofree char *disk_abs = absolute_path(disk);
    g_variant_dict_insert(&opts, "disk", "s", disk_abs);
  }
  if (cmd)
    g_variant_dict_insert(&opts, "cmd", "s", cmd);
  if (cmd_args)
    g_variant_dict_insert_value(&opts, "args", g_variant_new_strv((const char *const *) cmd_args, -1));
  if (env) {
    GVariantBuilder eb;
    g_variant_builder_init(&eb, G_VARIANT_TYPE("a{ss}"));
    for (char **e = env; *e; e++) {
      g_auto(GStrv) kv = g_strsplit(*e, "=", 2);
      if (!kv[0] || !kv[1] || !*kv[0]) {
        g_variant_builder_clear(&eb);
        g_variant_dict_clear(&opts);
        return usage_error("sandbox create: --env wants NAME=VALUE, got '%s'", *e);
      }
      g_variant_builder_add(&eb, "{ss}", kv[0], kv[1]);
    }
    g_variant_dict_insert_value(&opts, "env", g_variant_builder_end(&eb));
  }
  g_variant_dict_insert(&opts, "memory_mib", "u", (guint32) memory);
  g_variant_dict_insert(&opts, "vcpus", "u", (guint32) vcpus);
  if (wait && timeout_s < 1)
    return usage_error("sandbox create: --timeout must be at least 1 second");
  if (!(api = connect_api(cli, &error)))
    return report_error(error);
  /* Binding devices and starting QEMU can take a while on a busy host. */
  g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(api), 5 * 60 * 1000);
  if (!vfd_manager1_call_create_sandbox_sync(api, g_variant_dict_end(&opts), &sb, NULL, &error))
    return report_error(error);
  if (wait) {
    g_autoptr(GVariant) final = NULL;
    const char *id = NULL;
    int r2;
    GVariantDict d;

    g_variant_dict_init(&d, sb);
    g_variant_dict_lookup(&d, "id", "&s", &id);
    r2 = wait_ready(api, id, timeout_s, &final);
    g_variant_dict_clear(&d);
    if (final) {
      if (cli->json)
        print_object(final, sandbox_keys);
      else
        print_sandbox_text(final);
    }
    return r2;
  }
  if (cli->json)
    print_object(sb, sandbox_keys);
  else
    print_sandbox_text(sb);
  return VFD_EXIT_OK;
}

static int
cmd_sandbox_id(Cli *cli, const char *what, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autoptr(GVariant) sb = NULL;
  g_autofree char *name = g_strdup_printf("sandbox %s", what);
  int r = parse_options(name, "ID", NULL, &cli->json, &argc, &argv);
  gboolean del = g_str_equal(what, "delete");

  if (r >= 0)
    return r;
  if (argc != 2)
    return usage_error("sandbox %s takes exactly one sandbox id", what);
  if (!(api = connect_api(cli, &error)))
    return report_error(error);
  /* A delete waits for QEMU to stop: allow for the stop timeout. */
  if (del) {
    g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(api), 10 * 60 * 1000);
    if (!vfd_manager1_call_delete_sandbox_sync(api, argv[1], NULL, &error))
      return report_error(error);
    if (cli->json)
      printf("{\"id\": \"%s\", \"deleted\": true}\n", argv[1]);
    else
      printf("deleted %s\n", argv[1]);
    return VFD_EXIT_OK;
  }
  if (!vfd_manager1_call_get_sandbox_sync(api, argv[1], &sb, NULL, &error))
    return report_error(error);
  if (cli->json)
    print_object(sb, sandbox_keys);
  else
    print_sandbox_text(sb);
  return VFD_EXIT_OK;
}

static int
cmd_sandbox_list(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autoptr(GVariant) list = NULL;
  int r = parse_options("sandbox list", "", NULL, &cli->json, &argc, &argv);
  GVariantIter it;
  GVariant *child;

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("sandbox list takes no arguments");
  if (!(api = connect_api(cli, &error)) || !vfd_manager1_call_list_sandboxes_sync(api, &list, NULL, &error))
    return report_error(error);
  if (cli->json) {
    print_object_list(list, sandbox_keys);
    return VFD_EXIT_OK;
  }
  printf("%-12s  %6s  %-8s  %7s  %6s  %s\n", "ID", "OWNER", "STATE", "PID", "MiB", "DEVICES");
  g_variant_iter_init(&it, list);
  while ((child = g_variant_iter_next_value(&it))) {
    print_sandbox_text(child);
    g_variant_unref(child);
  }
  return VFD_EXIT_OK;
}

static int
cmd_sandbox(Cli *cli, int argc, char **argv)
{
  if (argc < 2)
    return usage_error("sandbox needs a subcommand: create, list, show, delete");
  if (g_str_equal(argv[1], "create"))
    return cmd_sandbox_create(cli, argc - 1, argv + 1);
  if (g_str_equal(argv[1], "list"))
    return cmd_sandbox_list(cli, argc - 1, argv + 1);
  if (g_str_equal(argv[1], "show") || g_str_equal(argv[1], "delete"))
    return cmd_sandbox_id(cli, argv[1], argc - 1, argv + 1);
  return usage_error("unknown sandbox subcommand '%s'", argv[1]);
}

static int
cmd_capabilities(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autoptr(GVariant) caps = NULL;
  g_autoptr(GVariant) devs = NULL;
  g_autoptr(GVariant) host = NULL;
  int r = parse_options("capabilities", "", NULL, &cli->json, &argc, &argv);
  static const char *const host_keys[] = { "version", "accel", "kvm", "vsock", "network", "hugepages_total",
                                           "hugepages_free", "hugepage_kib", "memory_mib", "cpus",
                                           "free_units", "phys_bits", "la57", NULL };
  static const char *const hgx_keys[] = { "gpus", "nvswitches", "gpu_counts", NULL };
  g_autoptr(GVariant) hgx = NULL;

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("capabilities takes no arguments");
  if (!(api = connect_api(cli, &error)) || !vfd_manager1_call_get_capabilities_sync(api, &caps, NULL, &error))
    return report_error(error);
  devs = g_variant_lookup_value(caps, "devices", G_VARIANT_TYPE("aa{sv}"));
  host = g_variant_lookup_value(caps, "host", G_VARIANT_TYPE_VARDICT);
  hgx = g_variant_lookup_value(caps, "hgx", G_VARIANT_TYPE_VARDICT);
  if (cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    GVariantIter it;
    GVariant *child;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "host");
    add_object(b, host, host_keys);
    if (hgx) {
      json_builder_set_member_name(b, "hgx");
      add_object(b, hgx, hgx_keys);
    }
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    g_variant_iter_init(&it, devs);
    while ((child = g_variant_iter_next_value(&it))) {
      add_object(b, child, device_keys);
      g_variant_unref(child);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    print_json(root);
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
           dict_str(&d, "version", "?"), dict_str(&d, "accel", "?"), kvm ? "usable" : "not usable", cpus, mem,
           hp_free, hp_total);
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

static int
cmd_doctor(Cli *cli, int argc, char **argv)
{
  g_autofree char *pins = NULL, *versions = NULL, *qemu = NULL;
  GOptionEntry entries[] = {
    { "qemu", 0, 0, G_OPTION_ARG_STRING, &qemu, "QEMU binary to check (default qemu-system-x86_64)", "PATH" },
    { "pins", 0, 0, G_OPTION_ARG_FILENAME, &pins, "pins.env to check", "FILE" },
    { "versions", 0, 0, G_OPTION_ARG_FILENAME, &versions, "versions.env to check", "FILE" },
    { NULL },
  };
  g_autoptr(GPtrArray) checks = NULL;
  VfdDoctorOptions o = { .sys_root = "/sys", .dev_root = "/dev", .proc_root = "/proc" };
  int r = parse_options("doctor", "", entries, &cli->json, &argc, &argv);
  gboolean failed = FALSE;

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("doctor takes no arguments");
  o.qemu_binary = qemu ? qemu : "qemu-system-x86_64";
  o.pins_file = pins ? pins : DEFAULT_PINS_FILE;
  o.versions_file = versions ? versions : DEFAULT_VERSIONS_FILE;
  o.image_dir = VFIOD_IMAGE_DIR;
  checks = vfd_doctor_run(&o);
  if (cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_array(b);
    for (guint i = 0; i < checks->len; i++) {
      VfdDoctorCheck *c = g_ptr_array_index(checks, i);
      json_builder_begin_object(b);
      json_builder_set_member_name(b, "check");
      json_builder_add_string_value(b, c->name);
      json_builder_set_member_name(b, "status");
      json_builder_add_string_value(b, vfd_doctor_status_to_string(c->status));
      json_builder_set_member_name(b, "detail");
      json_builder_add_string_value(b, c->detail);
      json_builder_end_object(b);
    }
    json_builder_end_array(b);
    root = json_builder_get_root(b);
    print_json(root);
  }
  for (guint i = 0; i < checks->len; i++) {
    VfdDoctorCheck *c = g_ptr_array_index(checks, i);
    failed = failed || c->status == VFD_DOCTOR_FAIL;
    if (!cli->json)
      printf("%-5s %-12s %s\n", vfd_doctor_status_to_string(c->status), c->name, c->detail);
  }
  return failed ? VFD_EXIT_FAILED : VFD_EXIT_OK;
}

static const char *const report_keys[] = { "subject", "action", "detail", NULL };

static int
cmd_reconcile(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdManager1) api = NULL;
  g_autoptr(GVariant) report = NULL;
  gboolean force = FALSE;
  GOptionEntry entries[] = {
    { "force", 0, 0, G_OPTION_ARG_NONE, &force, "After a corrupt journal: keep it aside and start a new one", NULL },
    { NULL },
  };
  GVariantDict opts;
  GVariantIter it;
  GVariant *child;
  int r = parse_options("reconcile", "", entries, &cli->json, &argc, &argv);

  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("reconcile takes no arguments");
  g_variant_dict_init(&opts, NULL);
  if (force)
    g_variant_dict_insert(&opts, "force", "b", TRUE);
  if (!(api = connect_api(cli, &error)))
    return report_error(error);
  g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(api), 10 * 60 * 1000);
  if (!vfd_manager1_call_reconcile_sync(api, g_variant_dict_end(&opts), &report, NULL, &error))
    return report_error(error);
  if (cli->json) {
    print_object_list(report, report_keys);
    return VFD_EXIT_OK;
  }
  if (g_variant_n_children(report) == 0)
    printf("nothing to reconcile\n");
  g_variant_iter_init(&it, report);
  while ((child = g_variant_iter_next_value(&it))) {
    GVariantDict d;
    g_variant_dict_init(&d, child);
    printf("%-12s  %-9s  %s\n", dict_str(&d, "subject", "?"), dict_str(&d, "action", "?"), dict_str(&d, "detail", ""));
    g_variant_dict_clear(&d);
    g_variant_unref(child);
  }
  return VFD_EXIT_OK;
}

/* ---- initramfs build ---------------------------------------------------- */

/* Reads KEY from a pins file given by @path_opt, else $@env, else the
 * compiled-in @builtin (NULL when none). Returns a new string, or NULL
 * with *@error set when a file was named but cannot be used; NULL without
 * error when no file is known. */
static char *
pin_value(const char *path_opt, const char *env, const char *builtin, const char *key, GError **error)
{
  const char *path = path_opt;
  g_autoptr(GHashTable) pins = NULL;
  const char *v;

  if (!path || !*path)
    path = g_getenv(env);
  if (!path || !*path)
    path = builtin;
  if (!path)
    return NULL;
  if (!vfd_pins_load(path, &pins, error)) {
    g_prefix_error(error, "cannot use %s as %s: ", path, key);
    return NULL;
  }
  v = vfd_pins_require(pins, key, path, error);
  return v ? g_strdup(v) : NULL;
}


static int
initramfs_error(const GError *error)
{
  fprintf(stderr, "vfioctl: %s\n", error->message);
  return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
                 g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
                 g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)
             ? VFD_EXIT_USAGE
             : VFD_EXIT_FAILED;
}

static void
print_stage_result(Cli *cli, const char *output, const VfdStageResult *res)
{
  if (cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "output");
    json_builder_add_string_value(b, output);
    json_builder_set_member_name(b, "stamp");
    if (res)
      json_builder_add_string_value(b, res->stamp);
    else
      json_builder_add_null_value(b);
    json_builder_set_member_name(b, "cached");
    json_builder_add_boolean_value(b, res && res->cached);
    json_builder_set_member_name(b, "modules");
    json_builder_begin_array(b);
    for (char **m = res ? res->modules : NULL; m && *m; m++)
      json_builder_add_string_value(b, *m);
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    print_json(root);
    return;
  }
  if (!res) {
    printf("wrote %s\n", output);
    return;
  }
  printf("%s %s (stamp %s)\n", res->cached ? "reused" : "wrote", output, res->stamp);
  for (char **m = res->modules; m && *m; m++)
    printf("  module %s\n", *m);
}

static int
cmd_initramfs(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *init = NULL, *output = NULL, *modules_dir = NULL, *firmware_dir = NULL;
  g_autofree char *cache_dir = NULL, *release = NULL, *nvidia_version = NULL;
  g_autofree char *pins = NULL, *versions = NULL;
  g_auto(GStrv) modules = NULL, params = NULL;
  g_autoptr(VfdStageResult) res = NULL;
  gboolean gpu = FALSE, want_modules;
  GOptionEntry entries[] = {
    { "guest-init", 0, 0, G_OPTION_ARG_FILENAME, &init, "The static guest-init binary (stored as /init)", "PATH" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Where to write the gzip'd cpio image", "PATH" },
    { "modules-dir", 0, 0, G_OPTION_ARG_FILENAME, &modules_dir,
      "The guest kernel's lib/modules/<release> tree (depmod'ed)", "DIR" },
    { "module", 0, 0, G_OPTION_ARG_STRING_ARRAY, &modules, "Stage this module and its dependencies (repeatable)",
      "NAME" },
    { "param", 0, 0, G_OPTION_ARG_STRING_ARRAY, &params, "A parameter for a staged module (repeatable)",
      "MOD:KEY=VAL" },
    { "gpu", 0, 0, G_OPTION_ARG_NONE, &gpu, "Stage nvidia.ko (+ nvidia-modeset, nvidia-uvm) and its firmware", NULL },
    { "firmware-dir", 0, 0, G_OPTION_ARG_FILENAME, &firmware_dir,
      "Firmware tree holding nvidia/<version>/ (default with --gpu: /lib/firmware)", "DIR" },
    { "cache-dir", 0, 0, G_OPTION_ARG_FILENAME, &cache_dir, "Keep images here by content stamp and reuse them",
      "DIR" },
    { "kernel-release", 0, 0, G_OPTION_ARG_STRING, &release,
      "Guest kernel release (default: GUEST_KERNEL_RELEASE from the pins file)", "R" },
    { "nvidia-version", 0, 0, G_OPTION_ARG_STRING, &nvidia_version,
      "NVIDIA driver version (default: NVIDIA_DRIVER_VERSION from the versions file)", "V" },
    { "pins", 0, 0, G_OPTION_ARG_FILENAME, &pins, "pins.env to read (default $VFIOD_PINS)", "FILE" },
    { "versions", 0, 0, G_OPTION_ARG_FILENAME, &versions, "versions.env to read (default $VFIOD_VERSIONS)", "FILE" },
    { NULL },
  };
  int r;

  if (argc < 2 || !g_str_equal(argv[1], "build"))
    return usage_error("initramfs needs a subcommand: build");
  argc--, argv++;
  r = parse_options("initramfs build", "", entries, &cli->json, &argc, &argv);
  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("initramfs build: unexpected argument '%s'", argv[1]);
  if (!init || (!output && !cache_dir))
    return usage_error("initramfs build needs --guest-init PATH and --output PATH (or --cache-dir DIR)");
  want_modules = gpu || (modules && modules[0]);
  if (!want_modules && (params || modules_dir))
    return usage_error("initramfs build: --param and --modules-dir need --module or --gpu");
  if (want_modules && !modules_dir)
    return usage_error("initramfs build: --module and --gpu need --modules-dir DIR (the guest kernel's modules)");
  if (firmware_dir && !gpu)
    return usage_error("initramfs build: --firmware-dir is only used with --gpu");

  if (!release) {
    release = pin_value(pins, "VFIOD_PINS", DEFAULT_PINS_FILE, "GUEST_KERNEL_RELEASE", &error);
    if (error)
      return initramfs_error(error);
  }
  if (gpu && !nvidia_version) {
    nvidia_version = pin_value(versions, "VFIOD_VERSIONS", DEFAULT_VERSIONS_FILE, "NVIDIA_DRIVER_VERSION", &error);
    if (error)
      return initramfs_error(error);
    if (!nvidia_version)
      return usage_error("initramfs build --gpu needs the NVIDIA driver version: --nvidia-version V or "
                         "--versions FILE (or $VFIOD_VERSIONS)");
  }
  if (!release) {
    if (want_modules || cache_dir)
      return usage_error("initramfs build needs the guest kernel release: --kernel-release R or --pins FILE "
                         "(or $VFIOD_PINS)");
    /* Nothing to stage and no pins: the plain image of before, /init only. */
    fprintf(stderr, "vfioctl: note: no guest kernel release known (--kernel-release, --pins or $VFIOD_PINS): "
                    "the image has no /etc/vfiod/manifest\n");
    if (!vfd_initramfs_build(output, init, NULL, 0, &error))
      return initramfs_error(error);
    print_stage_result(cli, output, NULL);
    return VFD_EXIT_OK;
  }
  if (gpu && !firmware_dir)
    firmware_dir = g_strdup("/lib/firmware");

  {
    VfdStageRequest req = {
      .guest_init = init,
      .kernel_release = release,
      .modules_dir = modules_dir,
      .modules = (const char *const *) modules,
      .params = (const char *const *) params,
      .gpu = gpu,
      .nvidia_version = nvidia_version,
      .firmware_dir = firmware_dir,
      .cache_dir = cache_dir,
      .output = output,
    };
    if (!vfd_stage_build(&req, &res, &error))
      return initramfs_error(error);
  }
  print_stage_result(cli, res->path, res);
  return VFD_EXIT_OK;
}

/* ---- image build ---------------------------------------------------------- */

/* The scripts `image build` runs: the installed copies (<datadir>/vfiod,
 * the source tree's layout), else the source tree of this build. */
static const char *
image_scripts_dir(void)
{
  g_autofree char *installed = g_build_filename(VFIOD_DATADIR, "kernel-modules", "build-driver-layer.sh", NULL);

  return g_file_test(installed, G_FILE_TEST_IS_REGULAR) ? VFIOD_DATADIR : VFIOD_SOURCE_ROOT;
}

/* guest-init: the installed one (<libexecdir>/vfiod), else this build's. */
static char *
image_guest_init(void)
{
  g_autofree char *installed = g_build_filename(VFIOD_LIBEXECDIR, "guest-init", NULL);

  if (g_file_test(installed, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer(&installed);
  return g_build_filename(VFIOD_BUILD_ROOT, "guest-init", "guest-init", NULL);
}

static int
cmd_image(Cli *cli, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *output = NULL, *cache = NULL, *guest_init = NULL, *debs = NULL;
  g_autoptr(VfdImageResult) res = NULL;
  gboolean gpu = FALSE;
  GOptionEntry entries[] = {
    { "gpu", 0, 0, G_OPTION_ARG_NONE, &gpu, "Also build the NVIDIA driver layer (and stage what it needs at boot)",
      NULL },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Install the image here (e.g. " VFIOD_IMAGE_DIR ")", "DIR" },
    { "cache", 0, 0, G_OPTION_ARG_FILENAME, &cache,
      "Caches (default /var/cache/vfiod as root, else $XDG_CACHE_HOME/vfiod)", "DIR" },
    { "guest-init", 0, 0, G_OPTION_ARG_FILENAME, &guest_init, "The static guest-init (default: the installed one)",
      "PATH" },
    { "debs", 0, 0, G_OPTION_ARG_FILENAME, &debs,
      "With --gpu: take the NVIDIA packages from the .debs in DIR (no apt for them)", "DIR" },
    { NULL },
  };
  int r;

  if (argc < 2 || !g_str_equal(argv[1], "build"))
    return usage_error("image needs a subcommand: build");
  argc--, argv++;
  r = parse_options("image build", "", entries, &cli->json, &argc, &argv);
  if (r >= 0)
    return r;
  if (argc > 1)
    return usage_error("image build: unexpected argument '%s'", argv[1]);
  if (!output)
    return usage_error("image build needs --output DIR (vfiod's default image: " VFIOD_IMAGE_DIR ")");
  if (debs && !gpu)
    return usage_error("image build: --debs is only used with --gpu");
  if (!vfd_image_check_output_dir(output, &error))
    return initramfs_error(error);
  if (!cache) {
    if (geteuid() == 0)
      cache = g_strdup("/var/cache/vfiod");
    else
      cache = g_build_filename(g_get_user_cache_dir(), "vfiod", NULL);
  }
  if (!guest_init)
    guest_init = image_guest_init();
  {
    VfdImageRequest req = {
      .output_dir = output,
      .cache_dir = cache,
      .guest_init = guest_init,
      .scripts_dir = image_scripts_dir(),
      .debs_dir = debs,
      .gpu = gpu,
    };
    if (!vfd_image_build(&req, &res, &error))
      return initramfs_error(error);
  }
  if (cli->json) {
    g_autoptr(JsonNode) out = json_node_copy(res->image);
    JsonObject *o = json_node_get_object(out);
    JsonObject *ms = json_object_new();
    json_object_set_boolean_member(o, "cached", res->cached);
    json_object_set_int_member(ms, "kernel", res->ms_kernel);
    if (res->ms_layer >= 0)
      json_object_set_int_member(ms, "driver_layer", res->ms_layer);
    json_object_set_int_member(ms, "initramfs", res->ms_initramfs);
    json_object_set_int_member(ms, "install", res->ms_install);
    json_object_set_int_member(ms, "total", res->ms_total);
    json_object_set_object_member(o, "ms", ms);
    print_json(out);
  } else {
    JsonObject *o = json_node_get_object(res->image);
    JsonObject *k = json_object_get_object_member(o, "kernel");
    JsonObject *i = json_object_get_object_member(o, "initramfs");
    JsonNode *ln = json_object_get_member(o, "driver_layer");
    JsonObject *l = ln && JSON_NODE_HOLDS_OBJECT(ln) ? json_node_get_object(ln) : NULL;

    printf("kernel        %s (%s %s)  %" G_GINT64_FORMAT " ms\n", json_object_get_string_member(k, "release"),
           json_object_get_string_member(k, "package"), json_object_get_string_member(k, "version"), res->ms_kernel);
    if (l)
      printf("driver layer  NVIDIA %s, key %.12s  %" G_GINT64_FORMAT " ms\n",
             json_object_get_string_member(l, "driver_version"), json_object_get_string_member(l, "key"),
             res->ms_layer);
    printf("initramfs     stamp %.12s, %u modules  %" G_GINT64_FORMAT " ms\n", json_object_get_string_member(i, "stamp"),
           json_array_get_length(json_object_get_array_member(i, "modules")), res->ms_initramfs);
    printf("%s %s (key %.12s)  %" G_GINT64_FORMAT " ms\n", res->cached ? "up to date   " : "installed    ", output,
           json_object_get_string_member(o, "key"), res->ms_install);
    printf("total         %" G_GINT64_FORMAT " ms\n", res->ms_total);
  }
  return VFD_EXIT_OK;
}

VfdManager1 *
vfd_cli_connect(const char *socket_path, GError **error)
{
  Cli cli = { .socket_path = socket_path };

  return connect_api(&cli, error);
}

int
vfd_cli_main(int argc, char **argv)
{
  Cli cli = { .socket_path = g_getenv("VFIOD_SOCKET") };
  int i = 1;

  /* Registers org.vfiod.Error.* so remote errors map back to VFD_ERROR. */
  (void) vfd_error_quark();

  if (!cli.socket_path || !*cli.socket_path)
    cli.socket_path = DEFAULT_SOCKET;
  /* Global options come before the command. */
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (g_str_equal(argv[i], "-h") || g_str_equal(argv[i], "--help")) {
      fputs(usage_text, stdout);
      return VFD_EXIT_OK;
    } else if (g_str_equal(argv[i], "--version")) {
      printf("vfioctl %s\n", VFIOD_VERSION);
      return VFD_EXIT_OK;
    } else if (g_str_equal(argv[i], "--json")) {
      cli.json = TRUE;
    } else if (g_str_equal(argv[i], "--socket") && i + 1 < argc) {
      cli.socket_path = argv[++i];
    } else if (g_str_has_prefix(argv[i], "--socket=")) {
      cli.socket_path = argv[i] + strlen("--socket=");
    } else {
      return usage_error("unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc)
    return usage_error("missing command");
  argc -= i;
  argv += i;
  /* argv[0] is now the command. */
  if (g_str_equal(argv[0], "list"))
    return cmd_list(&cli, argc, argv);
  if (g_str_equal(argv[0], "bind"))
    return cmd_bind(&cli, argc, argv);
  if (g_str_equal(argv[0], "release"))
    return cmd_release(&cli, argc, argv);
  if (g_str_equal(argv[0], "sandbox"))
    return cmd_sandbox(&cli, argc, argv);
  if (g_str_equal(argv[0], "reconcile"))
    return cmd_reconcile(&cli, argc, argv);
  if (g_str_equal(argv[0], "capabilities"))
    return cmd_capabilities(&cli, argc, argv);
  if (g_str_equal(argv[0], "doctor"))
    return cmd_doctor(&cli, argc, argv);
  if (g_str_equal(argv[0], "initramfs"))
    return cmd_initramfs(&cli, argc, argv);
  if (g_str_equal(argv[0], "image"))
    return cmd_image(&cli, argc, argv);
  if (g_str_equal(argv[0], "pool"))
    return vfd_pool_cli(cli.socket_path, cli.json, argc, argv);
  if (g_str_equal(argv[0], "help"))
    return fputs(usage_text, stdout), VFD_EXIT_OK;
  return usage_error("unknown command '%s'", argv[0]);
}
