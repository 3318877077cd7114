/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl: the verb table, the one skeleton every verb runs in (options,
 * arguments, connection, call, output, exit status), and the output
 * helpers the verbs share (cli-private.h). */
#include "cli-private.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <stdio.h>
#include <unistd.h>

#include "bdf.h"
#include "error.h"
#include "interface.h"

#define DEFAULT_SOCKET "/run/vfiod/" VFD_SOCKET_NAME

/* pins.env / versions.env: the installed copies (<datadir>/vfiod), else
 * the source tree's (a build that is not installed). */
const char *
vfd_cli_default_pins_path(const char *name)
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

/* The verbs, in `vfioctl --help` order. */
static const VfdCliVerb *const verbs[] = {
  &vfd_cli_verb_list,           &vfd_cli_verb_bind,           &vfd_cli_verb_release,
  &vfd_cli_verb_open_group,
  &vfd_cli_verb_pool,           &vfd_cli_verb_doctor,         &vfd_cli_verb_capabilities,
  &vfd_cli_verb_reconcile,      &vfd_cli_verb_sandbox_create, &vfd_cli_verb_sandbox_list,
  &vfd_cli_verb_sandbox_show,   &vfd_cli_verb_sandbox_console, &vfd_cli_verb_sandbox_delete, &vfd_cli_verb_sandbox_stop, &vfd_cli_verb_sandbox_start,
  &vfd_cli_verb_sandbox_watch,
  &vfd_cli_verb_initramfs_build, &vfd_cli_verb_image_build,
};

/* The commands of two words: what their usage errors say. */
static const struct {
  const char *name;
  const char *subcommands; /* as "<name> needs a subcommand: ..." lists them */
  gboolean names_unknown;  /* an unknown subcommand gets "unknown <name> subcommand '<it>'" */
} groups[] = {
  { "sandbox", "create, list, show, console, delete, stop, start, watch", TRUE },
  { "initramfs", "build", FALSE },
  { "image", "build", FALSE },
};

static const char usage_head[] =
    "Usage: vfioctl [--socket PATH] COMMAND [ARGS...] [--json]\n"
    "\n"
    "Commands:\n";

static const char usage_tail[] =
    "\n"
    "Options:\n"
    "  --socket PATH   vfiod's API socket (default $VFIOD_SOCKET or " DEFAULT_SOCKET ")\n"
    "  --json          machine-readable output\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed, 2 bad usage or input.\n";

/* The usage; @group (NULL: all) limits the commands to those of a command
 * of two words ("sandbox": sandbox create, list, ...). */
static void
print_usage_of(const char *group)
{
  gsize len = group ? strlen(group) : 0;

  fputs(usage_head, stdout);
  for (gsize i = 0; i < G_N_ELEMENTS(verbs); i++)
    if (!group || (g_str_has_prefix(verbs[i]->name, group) && verbs[i]->name[len] == ' '))
      fputs(verbs[i]->summary, stdout);
  fputs(usage_tail, stdout);
}

static void
print_usage(void)
{
  print_usage_of(NULL);
}

int
vfd_cli_usage_error(const char *fmt, ...)
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
int
vfd_cli_report_error(const GError *error)
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

gboolean
vfd_cli_check_bdf(const char *s)
{
  VfdBdf bdf;

  if (vfd_bdf_parse(s, &bdf) < 0) {
    g_autofree char *shown = g_strescape(s, NULL);
    fprintf(stderr, "vfioctl: invalid BDF '%.64s': expected DDDD:BB:DD.F (hex, e.g. 0000:01:00.0)\n", shown);
    return FALSE;
  }
  return TRUE;
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

void
vfd_cli_print_json(JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autofree char *s = NULL;

  json_generator_set_root(gen, node);
  json_generator_set_pretty(gen, TRUE);
  s = json_generator_to_data(gen, NULL);
  printf("%s\n", s);
}

/* Adds @key from @dict as a JSON member: strings as strings (absent: null
 * when @null_if_absent), numbers, booleans, string and number arrays. */
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
  } else if (g_variant_is_of_type(v, G_VARIANT_TYPE("ai"))) {
    gsize n = 0;
    const gint32 *iv = g_variant_get_fixed_array(v, &n, sizeof(gint32));
    json_builder_begin_array(b);
    for (gsize i = 0; i < n; i++)
      json_builder_add_int_value(b, iv[i]);
    json_builder_end_array(b);
  } else if (g_variant_is_of_type(v, G_VARIANT_TYPE("a{ss}"))) {
    GVariantIter it;
    const char *k, *val;
    json_builder_begin_object(b);
    g_variant_iter_init(&it, v);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &val)) {
      json_builder_set_member_name(b, k);
      json_builder_add_string_value(b, val);
    }
    json_builder_end_object(b);
  } else
    json_builder_add_null_value(b);
}

const char *const vfd_cli_device_keys[] = { "bdf",    "vendor", "device", "class",     "iommu_group", "numa_node",
                                            "driver", "state",  "owner",  "owner_uid", "managed",     "name", NULL };
const char *const vfd_cli_sandbox_keys[] = { "id",    "name",      "labels",     "owner_uid", "state",
                                             "pid",   "devices",   "memory_mib", "vcpus",     "numa_node",
                                             "serial_log", "dir",  "exit_status", "workload_exit_status",
                                             "workload_signal", "failure_reason", "ready", "ready_ms",
                                             "ready_report", NULL };

void
vfd_cli_add_string_member(JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name(b, name);
  if (value)
    json_builder_add_string_value(b, value);
  else
    json_builder_add_null_value(b);
}

void
vfd_cli_add_object(JsonBuilder *b, GVariant *dict_v, const char *const *keys)
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

void
vfd_cli_print_object_list(GVariant *list, const char *const *keys)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonNode) root = NULL;
  GVariantIter it;
  GVariant *child;

  json_builder_begin_array(b);
  g_variant_iter_init(&it, list);
  while ((child = g_variant_iter_next_value(&it))) {
    vfd_cli_add_object(b, child, keys);
    g_variant_unref(child);
  }
  json_builder_end_array(b);
  root = json_builder_get_root(b);
  vfd_cli_print_json(root);
}

void
vfd_cli_print_object(GVariant *dict, const char *const *keys)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonNode) root = NULL;

  vfd_cli_add_object(b, dict, keys);
  root = json_builder_get_root(b);
  vfd_cli_print_json(root);
}

const char *
vfd_cli_dict_str(GVariantDict *d, const char *key, const char *fallback)
{
  const char *s = NULL;

  return g_variant_dict_lookup(d, key, "&s", &s) ? s : fallback;
}

/* ---- the skeleton --------------------------------------------------------- */

/* Parses a verb's options and --json; leaves positional arguments in argv. */
static int
parse_options(const VfdCliVerb *verb, GOptionEntry *entries, gboolean *json, int *argc, char ***argv)
{
  g_autoptr(GOptionContext) ctx = g_option_context_new(verb->params);
  g_autoptr(GError) error = NULL;
  GOptionEntry json_entry[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, json, "Machine-readable output", NULL },
    { NULL },
  };
  g_autofree char *prog = g_strdup_printf("vfioctl %s", verb->name);

  g_set_prgname(prog);
  if (entries)
    g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_main_entries(ctx, json_entry, NULL);
  if (!g_option_context_parse(ctx, argc, argv, &error)) {
    if (verb->parse_usage) {
      fprintf(stderr, "vfioctl: %s: %s\n%s", verb->name, error->message, verb->parse_usage);
      return VFD_EXIT_USAGE;
    }
    return vfd_cli_usage_error("%s: %s", verb->name, error->message);
  }
  return VFD_CLI_GO_ON;
}

/* The verb's positional arguments (argv[0] is the verb). */
static int
check_args(const VfdCliVerb *verb, int argc, char **argv, const char **ret)
{
  switch (verb->args) {
  case VFD_CLI_ARGS_NONE:
    if (argc > 1)
      return vfd_cli_usage_error("%s takes no arguments", verb->name);
    break;
  case VFD_CLI_ARGS_NONE_NAMED:
    if (argc > 1)
      return vfd_cli_usage_error("%s: unexpected argument '%s'", verb->name, argv[1]);
    break;
  case VFD_CLI_ARGS_BDF:
    if (argc != 2)
      return vfd_cli_usage_error("%s takes exactly one BDF", verb->name);
    if (!vfd_cli_check_bdf(argv[1]))
      return VFD_EXIT_USAGE;
    *ret = argv[1];
    break;
  case VFD_CLI_ARGS_ID:
    if (argc != 2)
      return vfd_cli_usage_error("%s takes exactly one sandbox id or name", verb->name);
    *ret = argv[1];
    break;
  case VFD_CLI_ARGS_ANY:
    break;
  }
  return VFD_CLI_GO_ON;
}

/* @verb's options with their arg_data in @opts (a new array). */
static GOptionEntry *
option_entries(const VfdCliVerb *verb, void *opts)
{
  GOptionEntry *entries;
  gsize n = 0;

  while (verb->options[n].long_name)
    n++;
  entries = g_memdup2(verb->options, (n + 1) * sizeof *entries);
  for (gsize i = 0; i < n; i++)
    entries[i].arg_data = (char *) opts + GPOINTER_TO_SIZE(verb->options[i].arg_data);
  return entries;
}

/* Frees the strings and string arrays the options left in @opts. */
static void
free_option_values(const VfdCliVerb *verb, void *opts)
{
  for (gsize i = 0; verb->options && verb->options[i].long_name; i++) {
    void *value = (char *) opts + GPOINTER_TO_SIZE(verb->options[i].arg_data);

    switch (verb->options[i].arg) {
    case G_OPTION_ARG_STRING:
    case G_OPTION_ARG_FILENAME:
      g_free(*(char **) value);
      break;
    case G_OPTION_ARG_STRING_ARRAY:
    case G_OPTION_ARG_FILENAME_ARRAY:
      g_strfreev(*(char ***) value);
      break;
    default:
      break;
    }
  }
}

/* Runs @verb: options, arguments, its checks, the connection (unless
 * local), its work; the error of a failed call mapped to the exit status.
 * argv[0] is the verb's last word. */
static int
run_verb(Cli *cli, const VfdCliVerb *verb, int argc, char **argv)
{
  g_autofree void *opts = verb->opts_size ? g_malloc0(verb->opts_size) : NULL;
  g_autofree GOptionEntry *entries = verb->options ? option_entries(verb, opts) : NULL;
  g_autoptr(GError) error = NULL;
  VfdCliCall call = { .cli = cli, .verb = verb, .opts = opts };
  int r;

  if (verb->init)
    verb->init(opts);
  r = parse_options(verb, entries, &cli->json, &argc, &argv);

  if (r == VFD_CLI_GO_ON)
    r = check_args(verb, argc, argv, &call.arg);
  call.argc = argc;
  call.argv = argv;
  if (r == VFD_CLI_GO_ON && verb->check)
    r = verb->check(&call);
  if (r == VFD_CLI_GO_ON && !verb->local) {
    call.api = connect_api(cli, &error);
    if (!call.api)
      r = vfd_cli_report_error(error);
    else if (verb->timeout_ms > 0)
      g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(call.api), verb->timeout_ms);
  }
  if (r == VFD_CLI_GO_ON) {
    r = verb->run(&call, &error);
    if (r == VFD_CLI_ERROR)
      r = verb->map_error ? verb->map_error(error) : vfd_cli_report_error(error);
  }
  g_clear_object(&call.api);
  if (verb->clear)
    verb->clear(opts);
  free_option_values(verb, opts);
  return r;
}

VfdManager1 *
vfd_cli_connect(const char *socket_path, GError **error)
{
  Cli cli = { .socket_path = socket_path };

  return connect_api(&cli, error);
}

char *
vfd_cli_tool_path(void)
{
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);

  if (self) {
    g_autofree char *dir = g_path_get_dirname(self);
    g_autofree char *next = g_build_filename(dir, "vfioctl-tool", NULL);

    if (g_file_test(next, G_FILE_TEST_IS_REGULAR) && access(next, X_OK) == 0)
      return g_steal_pointer(&next);
  }
  return g_build_filename(VFIOD_LIBEXECDIR, "vfioctl-tool", NULL);
}

/* Runs @verb: here, or, a tool verb, from @tool_verbs, else by exec'ing
 * vfioctl-tool with the whole command line @full_argv (it parses it
 * again and comes to the same verb). */
static int
dispatch(Cli *cli, const VfdCliVerb *verb, int argc, char **argv, const VfdCliVerb *const *tool_verbs,
         char **full_argv)
{
  g_autofree char *tool = NULL;
  int e;

  if (!verb->tool)
    return run_verb(cli, verb, argc, argv);
  if (tool_verbs) {
    for (const VfdCliVerb *const *t = tool_verbs; *t; t++)
      if (g_str_equal((*t)->name, verb->name))
        return run_verb(cli, *t, argc, argv);
    fprintf(stderr, "vfioctl: internal error: this vfioctl-tool has no '%s'\n", verb->name);
    return VFD_EXIT_FAILED;
  }
  tool = vfd_cli_tool_path();
  fflush(stdout);
  execv(tool, full_argv);
  e = errno;
  fprintf(stderr, "vfioctl: %s runs in %s, which cannot be run: %s\n", verb->name, tool, g_strerror(e));
  return VFD_EXIT_FAILED;
}

int
vfd_cli_run(int argc, char **argv, const VfdCliVerb *const *tool_verbs)
{
  Cli cli = { .socket_path = g_getenv("VFIOD_SOCKET") };
  char **full_argv = argv;
  int i = 1;

  /* Registers org.vfiod.Error.* so remote errors map back to VFD_ERROR. */
  (void) vfd_error_quark();

  if (!cli.socket_path || !*cli.socket_path)
    cli.socket_path = DEFAULT_SOCKET;
  /* Global options come before the command. */
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (g_str_equal(argv[i], "-h") || g_str_equal(argv[i], "--help")) {
      print_usage();
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
      return vfd_cli_usage_error("unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc)
    return vfd_cli_usage_error("missing command");
  argc -= i;
  argv += i;
  /* argv[0] is now the command. */
  for (gsize g = 0; g < G_N_ELEMENTS(groups); g++) {
    gsize len = strlen(groups[g].name);

    if (!g_str_equal(argv[0], groups[g].name))
      continue;
    if (argc >= 2 && (g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "-h")))
      return print_usage_of(groups[g].name), VFD_EXIT_OK;
    for (gsize v = 0; argc >= 2 && v < G_N_ELEMENTS(verbs); v++)
      if (g_str_has_prefix(verbs[v]->name, groups[g].name) && verbs[v]->name[len] == ' ' &&
          g_str_equal(verbs[v]->name + len + 1, argv[1]))
        return dispatch(&cli, verbs[v], argc - 1, argv + 1, tool_verbs, full_argv);
    if (argc >= 2 && groups[g].names_unknown)
      return vfd_cli_usage_error("unknown %s subcommand '%s'", groups[g].name, argv[1]);
    return vfd_cli_usage_error("%s needs a subcommand: %s", groups[g].name, groups[g].subcommands);
  }
  for (gsize v = 0; v < G_N_ELEMENTS(verbs); v++)
    if (g_str_equal(argv[0], verbs[v]->name))
      return dispatch(&cli, verbs[v], argc, argv, tool_verbs, full_argv);
  if (g_str_equal(argv[0], "help"))
    return print_usage(), VFD_EXIT_OK;
  return vfd_cli_usage_error("unknown command '%s'", argv[0]);
}

int
vfd_cli_main(int argc, char **argv)
{
  return vfd_cli_run(argc, argv, NULL);
}
