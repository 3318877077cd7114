/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl sandbox create|list|show|delete|watch: sandboxes through vfiod's
 * API; create --wait follows the sandbox until the guest reports ready,
 * create --dry-run asks ValidateSandbox; watch prints its events. */
#include "cli-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interface.h"

static void
print_sandbox_text(GVariant *sb)
{
  GVariantDict d;
  g_autofree const char **devs = NULL;
  g_autofree char *joined = NULL;
  gint64 pid = 0;
  guint32 mem = 0, owner_uid = 0;
  gint32 status = 0;
  const char *reason = NULL, *name = NULL;
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
  printf("%-12s  %6u  %-8s  %7" G_GINT64_FORMAT "  %6u  %s", vfd_cli_dict_str(&d, "id", "?"), owner_uid,
         vfd_cli_dict_str(&d, "state", "?"), pid, mem, joined);
  if (g_variant_dict_lookup(&d, "exit_status", "i", &status))
    printf("  (exit %d)", status);
  if (g_variant_dict_lookup(&d, "workload_exit_status", "i", &status))
    printf("  (workload exit %d)", status);
  if (g_variant_dict_lookup(&d, "workload_signal", "i", &status))
    printf("  (workload signal %d)", status);
  if (g_variant_dict_lookup(&d, "failure_reason", "&s", &reason))
    printf("  (failed: %s)", reason);
  if (g_variant_dict_lookup(&d, "name", "&s", &name))
    printf("  name=%s", name);
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
  w->ended = g_str_equal(state, "stopped") || g_str_equal(state, "failed") || g_str_equal(state, "exited");
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
    return vfd_cli_report_error(error);
  g_variant_dict_init(&d, sb);
  g_variant_dict_lookup(&d, "ready", "b", &ready);
  g_variant_dict_lookup(&d, "state", "&s", &state);
  if (!ready && g_strcmp0(state, "stopped") != 0 && g_strcmp0(state, "failed") != 0 &&
      g_strcmp0(state, "exited") != 0) {
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
      return vfd_cli_report_error(error);
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

/* ---- sandbox create ------------------------------------------------------- */

typedef struct {
  char **devices;
  char *kernel, *initrd;
  gint memory, vcpus;
  gboolean wait;
  gboolean dry_run;
  gint timeout_s, gpus;
  char *disk, *cmd;
  char **cmd_args;
  char **env;
  char **files;
  char *name;
  char **labels;
  char **add_disks;
  GVariant *request; /* CreateSandbox's options, built by the check */
  GUnixFDList *fd_list; /* the --add-disk files, opened here with the user's rights */
} CreateOpts;

static const GOptionEntry create_options[] = {
  { "device", 'd', 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(CreateOpts, devices),
    "Pass BDF's IOMMU group through (repeatable)", "BDF" },
  { "gpus", 'g', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(CreateOpts, gpus),
    "Pass any N free devices (IOMMU groups) through", "N" },
  { "disk", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(CreateOpts, disk),
    "Raw root disk image for the workload", "PATH" },
  { "add-disk", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, VFD_CLI_OPT(CreateOpts, add_disks),
    "Attach a raw image (opened here, with your rights): ROLE root (read-only with :ro: the guest gets a writable "
    "overlay on it, on the overlay disk or in memory), overlay (ext4, keeps what the workload writes; needs a "
    "read-only root) or data (/dev/disk/by-id/virtio-vfiod-dataN in the guest) (repeatable)",
    "ROLE=PATH[:ro]" },
  { "cmd", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(CreateOpts, cmd),
    "Workload guest-init runs (absolute path in the guest)", "PATH" },
  { "arg", 0, 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(CreateOpts, cmd_args),
    "An argument for the workload (repeatable)", "ARG" },
  { "env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(CreateOpts, env),
    "NAME=VALUE in the workload's environment (repeatable)", "NAME=VALUE" },
  { "file", 'f', 0, G_OPTION_ARG_FILENAME_ARRAY, VFD_CLI_OPT(CreateOpts, files),
    "Write HOST_FILE's contents (read here, with your rights) to GUEST_PATH in the workload's root before it "
    "starts; MODE octal, default 0600 (repeatable)",
    "GUEST_PATH=HOST_FILE[:MODE]" },
  { "name", 'n', 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(CreateOpts, name),
    "The sandbox's name: unique, 1-63 of a-z 0-9 . - (show and delete take it)", "NAME" },
  { "label", 'l', 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(CreateOpts, labels),
    "A label KEY=VALUE (repeatable)", "KEY=VALUE" },
  { "wait", 'w', 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(CreateOpts, wait), "Wait until the guest reports ready", NULL },
  { "dry-run", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(CreateOpts, dry_run),
    "Check the spec as the create would (ValidateSandbox) and say what it would get; change nothing", NULL },
  { "timeout", 't', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(CreateOpts, timeout_s),
    "With --wait: give up after SEC seconds (default 300)", "SEC" },
  { "kernel", 'k', 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(CreateOpts, kernel), "Guest kernel (direct boot)", "PATH" },
  { "initrd", 'i', 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(CreateOpts, initrd), "Guest initramfs", "PATH" },
  { "memory", 'm', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(CreateOpts, memory), "Guest RAM in MiB (default 512)", "MiB" },
  { "vcpus", 'c', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(CreateOpts, vcpus), "Virtual CPUs (default 1)", "N" },
  { NULL },
};

static void
create_init(void *opts)
{
  CreateOpts *o = opts;

  o->memory = 512;
  o->vcpus = 1;
  o->timeout_s = 300;
}

/* The request (the option values' strings are the skeleton's to free). */
static void
create_clear(void *opts)
{
  g_clear_pointer(&((CreateOpts *) opts)->request, g_variant_unref);
  g_clear_object(&((CreateOpts *) opts)->fd_list);
}

/* --add-disk ROLE=PATH[:ro] (@specs, NULL: none) as the disks aa{sv} of
 * @opts: each file opened here, with the user's rights (read-only for
 * :ro), and sent as an fd (appended to *@fd_list, made when needed).
 * FALSE after printing a usage or open error. */
static gboolean
insert_disks(GVariantDict *opts, char **specs, GUnixFDList **fd_list)
{
  GVariantBuilder b;

  if (!specs || !specs[0])
    return TRUE;
  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  for (char **sp = specs; *sp; sp++) {
    const char *eq = strchr(*sp, '=');
    g_autofree char *role = NULL, *path = NULL;
    gboolean ro = FALSE;
    g_autoptr(GError) error = NULL;
    GVariantBuilder one;
    int fd, index;

    if (!eq || eq == *sp || !eq[1]) {
      vfd_cli_usage_error("sandbox create: --add-disk wants ROLE=PATH[:ro] (ROLE: root, overlay or data)");
      g_variant_builder_clear(&b);
      return FALSE;
    }
    role = g_strndup(*sp, eq - *sp);
    path = g_strdup(eq + 1);
    if (g_str_has_suffix(path, ":ro")) {
      ro = TRUE;
      path[strlen(path) - 3] = '\0';
    }
    fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      int e = errno;
      g_printerr("vfioctl: sandbox create: --add-disk %s: %s\n", path, g_strerror(e));
      g_variant_builder_clear(&b);
      return FALSE;
    }
    if (!*fd_list)
      *fd_list = g_unix_fd_list_new();
    index = g_unix_fd_list_append(*fd_list, fd, &error);
    close(fd);
    if (index < 0) {
      g_printerr("vfioctl: sandbox create: --add-disk %s: %s\n", path, error->message);
      g_variant_builder_clear(&b);
      return FALSE;
    }
    g_variant_builder_init(&one, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&one, "{sv}", "role", g_variant_new_string(role));
    g_variant_builder_add(&one, "{sv}", "fd", g_variant_new_handle(index));
    g_variant_builder_add(&one, "{sv}", "read_only", g_variant_new_boolean(ro));
    g_variant_builder_add_value(&b, g_variant_builder_end(&one));
  }
  g_variant_dict_insert_value(opts, "disks", g_variant_builder_end(&b));
  return TRUE;
}

/* CreateSandbox (@validate: ValidateSandbox) with @request and the fds of
 * @fd_list (may be NULL); *@ret: the answer's a{sv}. */
static gboolean
call_with_fds(VfdManager1 *api, const char *method, GVariant *request, GUnixFDList *fd_list, GVariant **ret,
              GError **error)
{
  g_autoptr(GVariant) r = g_dbus_proxy_call_with_unix_fd_list_sync(
      G_DBUS_PROXY(api), method, g_variant_new("(@a{sv})", request), G_DBUS_CALL_FLAGS_NONE, -1, fd_list, NULL, NULL,
      error);

  if (!r)
    return FALSE;
  g_variant_get(r, "(@a{sv})", ret);
  return TRUE;
}

/* @items ("K=V" strings, NULL: none) as the a{ss} @key of @opts; FALSE
 * with the usage error printed (@what) when one has no '=' or no K. */
static gboolean
insert_pairs(GVariantDict *opts, const char *key, const char *what, char **items)
{
  GVariantBuilder b;

  if (!items)
    return TRUE;
  g_variant_builder_init(&b, G_VARIANT_TYPE("a{ss}"));
  for (char **i = items; *i; i++) {
    g_auto(GStrv) kv = g_strsplit(*i, "=", 2);
    if (!kv[0] || !kv[1] || !*kv[0]) {
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: %s, got '%s'", what, *i);
      return FALSE;
    }
    g_variant_builder_add(&b, "{ss}", kv[0], kv[1]);
  }
  g_variant_dict_insert_value(opts, key, g_variant_builder_end(&b));
  return TRUE;
}

/* The most a --file may hold: vfiod takes requests of at most 1 MiB
 * (VFD_API_MAX_REQUEST_BYTES, api-limits.h), everything in them. */
#define VFD_CLI_MAX_FILE_BYTES (1024 * 1024)

/* --file GUEST_PATH=HOST_FILE[:MODE] items (NULL: none) as the aa{sv}
 * "files" of @opts: HOST_FILE read by this process (the caller's rights), a
 * regular file of at most the API's request size; MODE (the text after the
 * last ':' when it is 1 to 4 octal digits) default 0600. FALSE with the
 * error printed (usage, or the file unreadable). */
static gboolean
insert_files(GVariantDict *opts, char **items)
{
  GVariantBuilder b;

  if (!items)
    return TRUE;
  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  for (char **i = items; *i; i++) {
    g_autofree char *guest = NULL, *host = NULL, *data = NULL;
    g_autoptr(GError) error = NULL;
    const char *eq = strchr(*i, '='), *colon;
    guint32 mode = 0600;
    gsize len = 0;
    GStatBuf st;
    GVariantDict f;

    if (!eq || eq == *i || !eq[1]) {
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: --file wants GUEST_PATH=HOST_FILE[:MODE], got '%s'", *i);
      return FALSE;
    }
    guest = g_strndup(*i, (gsize) (eq - *i));
    host = g_strdup(eq + 1);
    colon = strrchr(host, ':');
    if (colon && colon[1] && strspn(colon + 1, "01234567") == strlen(colon + 1) && strlen(colon + 1) <= 4) {
      mode = (guint32) g_ascii_strtoull(colon + 1, NULL, 8);
      host[colon - host] = '\0';
    }
    if (g_stat(host, &st) < 0) {
      int e = errno;
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: --file %s: %s", host, g_strerror(e));
      return FALSE;
    }
    if (!S_ISREG(st.st_mode)) {
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: --file %s: not a regular file", host);
      return FALSE;
    }
    if (st.st_size > VFD_CLI_MAX_FILE_BYTES) {
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: --file %s: %lld bytes, more than a request may carry (%d)", host,
                          (long long) st.st_size, VFD_CLI_MAX_FILE_BYTES);
      return FALSE;
    }
    if (!g_file_get_contents(host, &data, &len, &error)) {
      g_variant_builder_clear(&b);
      vfd_cli_usage_error("sandbox create: --file: %s", error->message);
      return FALSE;
    }
    g_variant_dict_init(&f, NULL);
    g_variant_dict_insert(&f, "path", "s", guest);
    g_variant_dict_insert_value(&f, "contents", g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1));
    g_variant_dict_insert(&f, "mode", "u", mode);
    g_variant_builder_add_value(&b, g_variant_dict_end(&f));
  }
  g_variant_dict_insert_value(opts, "files", g_variant_builder_end(&b));
  return TRUE;
}

/* The usage checks, and the request built (relative paths made absolute). */
static int
create_check(VfdCliCall *call)
{
  CreateOpts *o = call->opts;
  char **devices = o->devices, **cmd_args = o->cmd_args, **env = o->env;
  const char *kernel = o->kernel, *initrd = o->initrd, *disk = o->disk, *cmd = o->cmd;
  gint memory = o->memory, vcpus = o->vcpus, timeout_s = o->timeout_s, gpus = o->gpus;
  gboolean wait = o->wait;
  g_autofree char *kernel_abs = NULL, *initrd_abs = NULL;
  GVariantDict opts;

  if (gpus < 0 || gpus > 64)
    return vfd_cli_usage_error("sandbox create: --gpus must be 0 to 64");
  if (gpus > 0 && devices && devices[0])
    return vfd_cli_usage_error("sandbox create: give --device or --gpus, not both");
  if (memory < 64 || vcpus < 1)
    return vfd_cli_usage_error("sandbox create: --memory must be >= 64 and --vcpus >= 1");
  for (char **d = devices; d && *d; d++)
    if (!vfd_cli_check_bdf(*d))
      return VFD_EXIT_USAGE;
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
  if (!insert_pairs(&opts, "env", "--env wants NAME=VALUE", env) || !insert_files(&opts, o->files) ||
      !insert_disks(&opts, o->add_disks, &o->fd_list) ||
      !insert_pairs(&opts, "labels", "--label wants KEY=VALUE", o->labels)) {
    g_variant_dict_clear(&opts);
    return VFD_EXIT_USAGE;
  }
  if (o->name)
    g_variant_dict_insert(&opts, "name", "s", o->name);
  g_variant_dict_insert(&opts, "memory_mib", "u", (guint32) memory);
  g_variant_dict_insert(&opts, "vcpus", "u", (guint32) vcpus);
  if (wait && timeout_s < 1)
    return vfd_cli_usage_error("sandbox create: --timeout must be at least 1 second");
  if (wait && o->dry_run)
    return vfd_cli_usage_error("sandbox create: --dry-run creates nothing to --wait for");
  o->request = g_variant_ref_sink(g_variant_dict_end(&opts));
  return VFD_CLI_GO_ON;
}

/* The keys of ValidateSandbox's answer, in --json order. */
static const char *const validate_keys[] = { "valid", "existing", "devices", "iommu_groups", "numa_node", "memory_mib",
                                             "vcpus", "machine", "pci_hole64_size", "phys_bits", "hugepages", NULL };

/* create --dry-run: ValidateSandbox's answer, as JSON or one line. */
static int
dry_run(VfdCliCall *call, GError **error)
{
  CreateOpts *o = call->opts;
  g_autoptr(GVariant) r = NULL;
  g_autofree const char **devs = NULL;
  g_autofree char *joined = NULL;
  guint32 mem = 0, vcpus = 0;
  const char *existing = NULL;
  GVariantDict d;
  GVariant *v;

  if (!call_with_fds(call->api, "ValidateSandbox", o->request, o->fd_list, &r, error))
    return VFD_CLI_ERROR;
  if (call->cli->json) {
    vfd_cli_print_object(r, validate_keys);
    return VFD_EXIT_OK;
  }
  g_variant_dict_init(&d, r);
  if ((v = g_variant_dict_lookup_value(&d, "devices", G_VARIANT_TYPE_STRING_ARRAY))) {
    devs = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  joined = devs && devs[0] ? g_strjoinv(",", (char **) devs) : g_strdup("-");
  g_variant_dict_lookup(&d, "memory_mib", "u", &mem);
  g_variant_dict_lookup(&d, "vcpus", "u", &vcpus);
  if (g_variant_dict_lookup(&d, "existing", "&s", &existing))
    printf("valid: the create would return the existing sandbox %s (memory %u MiB, %u vcpus, devices %s)\n",
           existing, mem, vcpus, joined);
  else
    printf("valid: a %s sandbox with memory %u MiB, %u vcpus, devices %s\n",
           vfd_cli_dict_str(&d, "machine", "?"), mem, vcpus, joined);
  g_variant_dict_clear(&d);
  return VFD_EXIT_OK;
}

/* @sb (a sandbox a{sv}) as the user asked: JSON with --json, else text. */
static void
print_sandbox(VfdCliCall *call, GVariant *sb)
{
  if (call->cli->json)
    vfd_cli_print_object(sb, vfd_cli_sandbox_keys);
  else
    print_sandbox_text(sb);
}

/* After a create or start that answered @sb: with @wait, waits (at most
 * @timeout_s) for the guest's ready report and prints the sandbox then
 * (nothing when it never came: wait_ready() said why); else prints @sb.
 * The exit status. */
static int
print_started(VfdCliCall *call, GVariant *sb, gboolean wait, int timeout_s)
{
  g_autoptr(GVariant) final = NULL;
  int r = VFD_EXIT_OK;

  if (wait) {
    const char *id = NULL;
    GVariantDict d;

    g_variant_dict_init(&d, sb);
    g_variant_dict_lookup(&d, "id", "&s", &id);
    r = wait_ready(call->api, id, timeout_s, &final);
    g_variant_dict_clear(&d);
    if (!final)
      return r;
    sb = final;
  }
  print_sandbox(call, sb);
  return r;
}

static int
create_run(VfdCliCall *call, GError **error)
{
  CreateOpts *o = call->opts;
  g_autoptr(GVariant) sb = NULL;

  if (o->dry_run)
    return dry_run(call, error);

  if (!call_with_fds(call->api, "CreateSandbox", o->request, o->fd_list, &sb, error))
    return VFD_CLI_ERROR;
  return print_started(call, sb, o->wait, o->timeout_s);
}

const VfdCliVerb vfd_cli_verb_sandbox_create = {
  .name = "sandbox create",
  .summary = "  sandbox create [--kernel PATH --initrd PATH] [--device BDF... | --gpus N] [--memory MiB]\n"
             "                 [--vcpus N] [--disk IMG] [--add-disk ROLE=IMG[:ro]]... [--cmd PATH [--arg A]... [--env NAME=VALUE]...]\n"
             "                 [--file GUEST_PATH=HOST_FILE[:MODE]]...\n"
             "                 [--name NAME] [--label KEY=VALUE]...\n"
             "                 [--wait [--timeout SEC] | --dry-run]   (--wait: until the guest reports ready;\n"
             "                 --dry-run: check it as the create would, change nothing)\n",
  .params = "",
  .args = VFD_CLI_ARGS_NONE_NAMED,
  /* Binding devices and starting QEMU can take a while on a busy host. */
  .timeout_ms = 5 * 60 * 1000,
  .opts_size = sizeof(CreateOpts),
  .options = create_options,
  .init = create_init,
  .clear = create_clear,
  .check = create_check,
  .run = create_run,
};

/* ---- sandbox list, show, delete ------------------------------------------- */

static int
list_run(VfdCliCall *call, GError **error)
{
  g_autoptr(GVariant) list = NULL;
  GVariantIter it;
  GVariant *child;

  if (!vfd_manager1_call_list_sandboxes_sync(call->api, &list, NULL, error))
    return VFD_CLI_ERROR;
  if (call->cli->json) {
    vfd_cli_print_object_list(list, vfd_cli_sandbox_keys);
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

const VfdCliVerb vfd_cli_verb_sandbox_list = {
  .name = "sandbox list",
  .summary = "  sandbox list                  sandboxes and their state\n",
  .params = "",
  .args = VFD_CLI_ARGS_NONE,
  .run = list_run,
};

static int
show_run(VfdCliCall *call, GError **error)
{
  g_autoptr(GVariant) sb = NULL;

  if (!vfd_manager1_call_get_sandbox_sync(call->api, call->arg, &sb, NULL, error))
    return VFD_CLI_ERROR;
  print_sandbox(call, sb);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_sandbox_show = {
  .name = "sandbox show",
  .summary = "  sandbox show ID|NAME          one sandbox\n",
  .params = "ID|NAME",
  .args = VFD_CLI_ARGS_ID,
  .run = show_run,
};

typedef struct {
  gint bytes;
} ConsoleOpts;

static const GOptionEntry console_options[] = {
  { "bytes", 'b', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(ConsoleOpts, bytes),
    "The last N bytes (default 65536, at most 1048576)", "N" },
  { NULL },
};

static int
console_check(VfdCliCall *call)
{
  ConsoleOpts *o = call->opts;

  if (o->bytes < 0 || o->bytes > 1048576)
    return vfd_cli_usage_error("sandbox console: --bytes must be 0 to 1048576");
  return VFD_CLI_GO_ON;
}

/* sandbox console: the console log's tail, raw on stdout (--json: as a
 * string, invalid UTF-8 replaced). */
static int
console_run(VfdCliCall *call, GError **error)
{
  ConsoleOpts *o = call->opts;
  g_autoptr(GVariant) bytes = NULL;
  gboolean kept = FALSE;
  gsize len = 0;
  const char *data;

  if (!vfd_manager1_call_get_sandbox_console_sync(call->api, call->arg, (guint) o->bytes, &bytes, &kept, NULL, error))
    return VFD_CLI_ERROR;
  data = g_variant_get_fixed_array(bytes, &len, 1);
  if (call->cli->json) {
    static const char *const keys[] = { "id", "kept", "console", NULL };
    g_autofree char *text = g_utf8_make_valid(data, (gssize) len);
    GVariantDict d;
    g_autoptr(GVariant) v = NULL;

    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert(&d, "id", "s", call->arg);
    g_variant_dict_insert(&d, "kept", "b", kept);
    g_variant_dict_insert(&d, "console", "s", text);
    v = g_variant_ref_sink(g_variant_dict_end(&d));
    vfd_cli_print_object(v, keys);
  } else if (len > 0 && fwrite(data, 1, len, stdout) != len) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot write to standard output");
    return VFD_CLI_ERROR;
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_sandbox_console = {
  .name = "sandbox console",
  .summary = "  sandbox console ID|NAME [--bytes N]   the console log's tail, also of a removed sandbox\n"
             "                 (the last 32 are kept until reboot)\n",
  .params = "ID|NAME",
  .args = VFD_CLI_ARGS_ID,
  .opts_size = sizeof(ConsoleOpts),
  .options = console_options,
  .check = console_check,
  .run = console_run,
};

static int
delete_run(VfdCliCall *call, GError **error)
{
  if (!vfd_manager1_call_delete_sandbox_sync(call->api, call->arg, NULL, error))
    return VFD_CLI_ERROR;
  if (call->cli->json)
    printf("{\"id\": \"%s\", \"deleted\": true}\n", call->arg);
  else
    printf("deleted %s\n", call->arg);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_sandbox_delete = {
  .name = "sandbox delete",
  .summary = "  sandbox delete ID|NAME        stop the sandbox's QEMU and release its devices\n",
  .params = "ID|NAME",
  .args = VFD_CLI_ARGS_ID,
  /* A delete waits for QEMU to stop: allow for the stop timeout. */
  .timeout_ms = 10 * 60 * 1000,
  .run = delete_run,
};

/* sandbox stop: StopSandbox, the sandbox as it is then. */
static int
stop_run(VfdCliCall *call, GError **error)
{
  g_autoptr(GVariant) sb = NULL;

  if (!vfd_manager1_call_stop_sandbox_sync(call->api, call->arg, &sb, NULL, error))
    return VFD_CLI_ERROR;
  print_sandbox(call, sb);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_sandbox_stop = {
  .name = "sandbox stop",
  .summary = "  sandbox stop ID|NAME          stop its QEMU, give its devices and network back; keep the sandbox\n"
             "                 (disks, files, name) for sandbox start\n",
  .params = "ID|NAME",
  .args = VFD_CLI_ARGS_ID,
  /* A stop waits for QEMU to stop: allow for the stop timeout. */
  .timeout_ms = 10 * 60 * 1000,
  .run = stop_run,
};

typedef struct {
  gboolean wait;
  gint timeout_s;
} StartOpts;

static const GOptionEntry start_options[] = {
  { "wait", 'w', 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(StartOpts, wait), "Wait until the guest reports ready", NULL },
  { "timeout", 't', 0, G_OPTION_ARG_INT, VFD_CLI_OPT(StartOpts, timeout_s),
    "With --wait: give up after SEC seconds (default 300)", "SEC" },
  { NULL },
};

static void
start_init(void *opts)
{
  ((StartOpts *) opts)->timeout_s = 300;
}

static int
start_check(VfdCliCall *call)
{
  StartOpts *o = call->opts;

  if (o->wait && o->timeout_s < 1)
    return vfd_cli_usage_error("sandbox start: --timeout must be at least 1 second");
  return VFD_CLI_GO_ON;
}

/* sandbox start: StartSandbox, then (--wait) the guest's ready report. */
static int
start_run(VfdCliCall *call, GError **error)
{
  StartOpts *o = call->opts;
  g_autoptr(GVariant) sb = NULL;

  if (!vfd_manager1_call_start_sandbox_sync(call->api, call->arg, &sb, NULL, error))
    return VFD_CLI_ERROR;
  return print_started(call, sb, o->wait, o->timeout_s);
}

const VfdCliVerb vfd_cli_verb_sandbox_start = {
  .name = "sandbox start",
  .summary = "  sandbox start ID|NAME [--wait] launch a stopped sandbox again (same disks and files;\n"
             "                 devices picked again)\n",
  .params = "ID|NAME",
  .args = VFD_CLI_ARGS_ID,
  .opts_size = sizeof(StartOpts),
  .options = start_options,
  .init = start_init,
  .check = start_check,
  .run = start_run,
  .timeout_ms = 10 * 60 * 1000,
};

/* ---- sandbox watch -------------------------------------------------------- */

typedef struct {
  GMainLoop *loop;
  gboolean json;
  char *id;        /* the one sandbox watched (its id), NULL: all */
  gboolean closed; /* vfiod closed the connection */
} WatchState;

/* One line to stdout, flushed (a reader of a pipe or file sees each event
 * as it comes). */
static void
print_watch_json(JsonBuilder *b)
{
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *text = NULL;

  json_generator_set_root(gen, root);
  text = json_generator_to_data(gen, NULL);
  printf("%s\n", text);
  fflush(stdout);
}

static char *
format_usec(gint64 usec)
{
  g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC);

  if (!t)
    return g_strdup_printf("%" G_GINT64_FORMAT, usec);
  {
    g_autofree char *head = g_date_time_format(t, "%Y-%m-%dT%H:%M:%S");
    return g_strdup_printf("%s.%06dZ", head, (int) (usec % G_USEC_PER_SEC));
  }
}

static void
on_watch_signal(GDBusConnection *conn, const char *sender, const char *path, const char *iface, const char *signal,
                GVariant *params, gpointer data)
{
  WatchState *w = data;
  g_autoptr(JsonBuilder) b = json_builder_new();
  const char *id;

  if (g_str_equal(signal, "SandboxEvent") && g_variant_is_of_type(params, G_VARIANT_TYPE("(ssxss)"))) {
    const char *stage, *reason, *message;
    gint64 ts;

    g_variant_get(params, "(&s&sx&s&s)", &id, &stage, &ts, &reason, &message);
    if (w->id && !g_str_equal(id, w->id))
      return;
    if (w->json) {
      json_builder_begin_object(b);
      vfd_cli_add_string_member(b, "signal", "SandboxEvent");
      vfd_cli_add_string_member(b, "id", id);
      vfd_cli_add_string_member(b, "stage", stage);
      json_builder_set_member_name(b, "timestamp_usec");
      json_builder_add_int_value(b, ts);
      vfd_cli_add_string_member(b, "reason", reason);
      vfd_cli_add_string_member(b, "message", message);
      json_builder_end_object(b);
      print_watch_json(b);
    } else {
      g_autofree char *when = format_usec(ts);
      printf("%s  %-12s  %-15s  %s%s%s\n", when, id, stage, reason, *reason && *message ? ": " : "", message);
      fflush(stdout);
    }
  } else if (g_str_equal(signal, "SandboxRemoved") && g_variant_is_of_type(params, G_VARIANT_TYPE("(ss)"))) {
    const char *name;

    g_variant_get(params, "(&s&s)", &id, &name);
    if (w->id && !g_str_equal(id, w->id))
      return;
    if (w->json) {
      json_builder_begin_object(b);
      vfd_cli_add_string_member(b, "signal", "SandboxRemoved");
      vfd_cli_add_string_member(b, "id", id);
      vfd_cli_add_string_member(b, "name", *name ? name : NULL);
      json_builder_end_object(b);
      print_watch_json(b);
    } else {
      g_autofree char *when = format_usec(g_get_real_time());
      printf("%s  %-12s  %-15s  %s\n", when, id, "(gone)", name);
      fflush(stdout);
    }
    if (w->id)
      g_main_loop_quit(w->loop); /* the watched sandbox is gone */
  }
}

static void
on_watch_closed(GDBusConnection *conn, gboolean remote_peer_vanished, GError *error, gpointer data)
{
  WatchState *w = data;

  w->closed = TRUE;
  g_main_loop_quit(w->loop);
}

static gboolean
on_watch_interrupt(gpointer data)
{
  g_main_loop_quit(((WatchState *) data)->loop);
  return G_SOURCE_CONTINUE;
}

static int
watch_check(VfdCliCall *call)
{
  if (call->argc > 2)
    return vfd_cli_usage_error("sandbox watch takes at most one sandbox id or name");
  return VFD_CLI_GO_ON;
}

/* Subscribes first, then finds the sandbox (an event between the two is
 * not lost), then prints events until interrupted, the watched sandbox is
 * removed, or vfiod closes the connection. */
static int
watch_run(VfdCliCall *call, GError **error)
{
  GDBusConnection *conn = g_dbus_proxy_get_connection(G_DBUS_PROXY(call->api));
  g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
  WatchState w = { .loop = loop, .json = call->cli->json };
  guint sub_event, sub_removed, sig_int, sig_term;
  gulong closed_id;

  sub_event = g_dbus_connection_signal_subscribe(conn, NULL, "org.vfiod.Manager1", "SandboxEvent",
                                                 VFD_MANAGER_OBJECT_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                 on_watch_signal, &w, NULL);
  sub_removed = g_dbus_connection_signal_subscribe(conn, NULL, "org.vfiod.Manager1", "SandboxRemoved",
                                                   VFD_MANAGER_OBJECT_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                   on_watch_signal, &w, NULL);
  closed_id = g_signal_connect(conn, "closed", G_CALLBACK(on_watch_closed), &w);
  if (call->argc == 2) {
    g_autoptr(GVariant) sb = NULL;
    GVariantDict d;

    if (!vfd_manager1_call_get_sandbox_sync(call->api, call->argv[1], &sb, NULL, error)) {
      g_signal_handler_disconnect(conn, closed_id);
      g_dbus_connection_signal_unsubscribe(conn, sub_event);
      g_dbus_connection_signal_unsubscribe(conn, sub_removed);
      return VFD_CLI_ERROR;
    }
    g_variant_dict_init(&d, sb);
    w.id = g_strdup(vfd_cli_dict_str(&d, "id", call->argv[1]));
    g_variant_dict_clear(&d);
  }
  sig_int = g_unix_signal_add(SIGINT, on_watch_interrupt, &w);
  sig_term = g_unix_signal_add(SIGTERM, on_watch_interrupt, &w);
  /* Said once subscribed: a script may start its work from here. */
  fprintf(stderr, "vfioctl: watching %s%s (Ctrl-C to stop)\n", w.id ? "sandbox " : "all sandboxes",
          w.id ? w.id : "");
  g_main_loop_run(loop);
  g_source_remove(sig_int);
  g_source_remove(sig_term);
  g_signal_handler_disconnect(conn, closed_id);
  g_dbus_connection_signal_unsubscribe(conn, sub_event);
  g_dbus_connection_signal_unsubscribe(conn, sub_removed);
  g_free(w.id);
  if (w.closed) {
    fprintf(stderr, "vfioctl: vfiod closed the connection\n");
    return VFD_EXIT_FAILED;
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_verb_sandbox_watch = {
  .name = "sandbox watch",
  .summary = "  sandbox watch [ID|NAME]       print sandbox events as they come (SandboxEvent, SandboxRemoved)\n"
             "                                until interrupted, or until the sandbox named is removed\n",
  .params = "[ID|NAME]",
  .args = VFD_CLI_ARGS_ANY,
  .check = watch_check,
  .run = watch_run,
};
