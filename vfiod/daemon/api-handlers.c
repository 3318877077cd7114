/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus methods of org.vfiod.Manager1: each checks its arguments and
 * the caller, then answers or hands the work to an operation (create.c,
 * stop.c, reconcile-run.c, device binds and releases here). Main loop. */
#include "manager-private.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-limits.h"
#include "grant.h"
#include "identity.h"
#include "log-fields.h"
#include "meminfo.h"
#include "pool.h"
#include "variant.h"

/* ---- method handlers ---------------------------------------------------- */

static gboolean
handle_list_devices(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  GVariant *devs = vfd_mgr_device_inventory(m, &error);

  if (!devs) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  vfd_manager1_complete_list_devices(sk, inv, devs);
  return TRUE;
}

/* The sandbox that owns @bdf's journal record, if any. */
static Sandbox *
owning_sandbox(VfdManager *m, const VfdBdf *bdf)
{
  VfdJournalDevice *jd;
  Sandbox *s;

  vfd_host_lock_journal(m->host);
  jd = vfd_journal_lookup(vfd_host_journal(m->host), bdf);
  s = jd ? g_hash_table_lookup(m->sandboxes, jd->owner) : NULL;
  vfd_host_unlock_journal(m->host);
  return s;
}

static gboolean
bind_work(Op *op, GError **error)
{
  return vfd_host_bind_group_as(op->m->host, &op->bdf, op->owner, op->uid, op->flags, &op->members, &op->group,
                                error);
}

static void
bind_done(Op *op, GError *error)
{
  g_auto(GStrv) names = NULL;
  char b[VFD_BDF_STRLEN];

  vfd_metric_op_add(&op->m->metrics.bind, !error, vfd_mgr_op_seconds(op));
  if (error) {
    vfd_mgr_return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  names = vfd_mgr_bdf_strv(op->members);
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, NULL, op->owner, (const char *const *) names, "bound IOMMU group %d (%s) for '%s'", op->group,
                 vfd_bdf_format(&op->bdf, b), op->owner);
  vfd_mgr_pool_write_cdi(op->m);
  vfd_manager1_complete_bind_device(op->m->skeleton, g_steal_pointer(&op->inv), (const char *const *) names,
                                    op->group);
}

static gboolean
start_bind(VfdManager *m, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner, VfdBindFlags flags)
{
  g_autoptr(GError) error = NULL;
  VfdBdf bdf;
  uid_t uid;
  Op *op;

  if (!vfd_mgr_caller_uid(inv, &uid))
    return TRUE;
  if ((flags & VFD_BIND_FORCE) &&
      !vfd_mgr_check_root_only(inv, uid, "bind --force (binding a GPU whose /dev/nvidia* node processes hold open)"))
    return TRUE;
  if (!*owner)
    owner = "vfioctl";
  if (g_str_equal(owner, VFD_POOL_OWNER) &&
      !vfd_mgr_check_root_only(inv, uid, "bind for the pool (--persist: kept on vfio-pci across restarts and reboots)"))
    return TRUE;
  if (!vfd_mgr_parse_bdf_arg(bdf_s, &bdf, &error) || !vfd_mgr_check_owner_name(owner, &error) || !vfd_mgr_check_journal_ok(m, &error)) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  op = vfd_mgr_op_new(m, inv, bind_work, bind_done);
  op->bdf = bdf;
  op->owner = g_strdup(owner);
  op->uid = uid;
  op->flags = flags;
  vfd_mgr_op_run(op);
  return TRUE;
}

static gboolean
handle_bind_device(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner,
                   gpointer data)
{
  VfdManager *m = data;

  return start_bind(m, inv, bdf_s, owner, VFD_BIND_NONE);
}

static gboolean
handle_bind_device_full(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner,
                        GVariant *options, gpointer data)
{
  VfdManager *m = data;
  GVariantDict opts;
  gboolean force = FALSE;

  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "force", "b", &force);
  g_variant_dict_clear(&opts);
  return start_bind(m, inv, bdf_s, owner, force ? VFD_BIND_FORCE : VFD_BIND_NONE);
}

static gboolean
release_work(Op *op, GError **error)
{
  g_autoptr(GPtrArray) notes = NULL;
  char b[VFD_BDF_STRLEN];
  /* A member releases only what it bound; root anything. */
  gboolean ok = vfd_host_release_group_as(op->m->host, &op->bdf, NULL, op->uid == 0 ? -1 : (gint64) op->uid,
                                          &op->members, &notes, error);

  for (guint i = 0; notes && i < notes->len; i++)
    vfd_log_device(G_LOG_LEVEL_WARNING, NULL, NULL, vfd_bdf_format(&op->bdf, b), "release %s: %s", vfd_bdf_format(&op->bdf, b),
                   (const char *) g_ptr_array_index(notes, i));
  return ok;
}

static void
release_done(Op *op, GError *error)
{
  g_auto(GStrv) names = NULL;
  char b[VFD_BDF_STRLEN];

  vfd_metric_op_add(&op->m->metrics.release, !error, vfd_mgr_op_seconds(op));
  if (error) {
    vfd_mgr_return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  names = vfd_mgr_bdf_strv(op->members);
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, NULL, NULL, (const char *const *) names, "released %s", vfd_bdf_format(&op->bdf, b));
  vfd_mgr_pool_write_cdi(op->m);
  vfd_manager1_complete_release_device(op->m->skeleton, g_steal_pointer(&op->inv), (const char *const *) names);
}

static gboolean
handle_release_device(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  Sandbox *owner;
  VfdBdf bdf;
  uid_t uid;
  Op *op;

  if (!vfd_mgr_caller_uid(inv, &uid))
    return TRUE;
  if (!vfd_mgr_parse_bdf_arg(bdf_s, &bdf, &error) || !vfd_mgr_check_journal_ok(m, &error)) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  owner = owning_sandbox(m, &bdf);
  if (owner) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_BUSY, "%s is in use by sandbox %s; delete the sandbox instead", bdf_s,
                owner->id);
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  op = vfd_mgr_op_new(m, inv, release_work, release_done);
  op->bdf = bdf;
  op->uid = uid;
  vfd_mgr_op_run(op);
  return TRUE;
}

/* OpenGroup (issue 15, item 9): the open /dev/vfio/<group> of a group the
 * caller bound, passed with the reply; nothing written (grant.h). On the
 * main loop: a few sysfs reads and one open under the journal lock.
 * Refusals are logged by vfd_mgr_return_error() (rate-limited). */
static gboolean
handle_open_group(VfdManager1 *sk, GDBusMethodInvocation *inv, GUnixFDList *in_fds, const char *bdf_s, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) members = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_auto(GStrv) names = NULL;
  GDBusConnection *conn = g_dbus_method_invocation_get_connection(inv);
  VfdCaller caller;
  VfdBdf bdf;
  int fd, group = -1, index;

  if (!vfd_caller_from_invocation(inv, &caller, &error)) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  if (!(g_dbus_connection_get_capabilities(conn) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING))
    g_set_error_literal(&error, VFD_ERROR, VFD_ERROR_FAILED,
                        "this connection cannot pass file descriptors (connect with Unix fd passing negotiated)");
  if (error || !vfd_mgr_parse_bdf_arg(bdf_s, &bdf, &error) || !vfd_mgr_check_journal_ok(m, &error)) {
    vfd_caller_clear(&caller);
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  fd = vfd_host_open_group(m->host, &bdf, caller.uid, &group, &members, &error);
  if (fd < 0) {
    vfd_caller_clear(&caller);
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  fds = g_unix_fd_list_new();
  index = g_unix_fd_list_append(fds, fd, &error);
  close(fd); /* the list holds its own dup */
  if (index < 0) {
    vfd_caller_clear(&caller);
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  names = vfd_mgr_bdf_strv(members);
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, NULL, NULL, (const char *const *) names,
                 "granted IOMMU group %d (/dev/vfio/%d, %s) to uid %u (pid %d) as an open fd", group, group, bdf_s,
                 (guint) caller.uid, (int) caller.pid);
  vfd_caller_clear(&caller);
  vfd_manager1_complete_open_group(sk, inv, fds, g_variant_new_handle(index), group, (const char *const *) names);
  return TRUE;
}

/* A CreateSandbox (or ValidateSandbox) spec as parsed and checked by
 * create_parse(); strings are borrowed from the call's options. */
typedef struct {
  GArray *requested; /* VfdBdf */
  const char **dev_strs;
  const char **args;
  const char *kernel, *initrd, *disk, *cmd, *name;
  GPtrArray *disks; /* VfdDisk, checked (guest-disks.h) */
  gboolean kernel_from_client, initrd_from_client;
  VfdCaller caller;
  GVariant *env, *files, *name_v, *labels;
  char *spec;
  guint memory, vcpus, gpus;
} CreateSpec;

static void
create_spec_clear(CreateSpec *p)
{
  g_clear_pointer(&p->requested, g_array_unref);
  g_clear_pointer(&p->dev_strs, g_free);
  g_clear_pointer(&p->args, g_free);
  g_clear_pointer(&p->env, g_variant_unref);
  g_clear_pointer(&p->files, g_variant_unref);
  g_clear_pointer(&p->disks, g_ptr_array_unref);
  g_clear_pointer(&p->name_v, g_variant_unref);
  g_clear_pointer(&p->labels, g_variant_unref);
  g_clear_pointer(&p->spec, g_free);
  vfd_caller_clear(&p->caller);
}

/* Every check CreateSandbox makes of its options on the main loop, before
 * anything changes (ValidateSandbox makes the same): the machine, option
 * types, name and labels, devices or gpus, paths, the workload, the BDFs
 * (each once, each on this host), memory and vcpus bounds, the caller's
 * credentials, the journal. Fills @p (create_spec_clear() it either way);
 * FALSE with the error the create would answer. */
static gboolean
create_parse(VfdManager *m, GDBusMethodInvocation *inv, GVariant *options, CreateSpec *p, GError **error)
{
  GVariantDict opts;
  GVariant *v;
  g_autoptr(GVariant) disks_v = NULL;
  gboolean disks_given;

  *p = (CreateSpec){ .memory = 512, .vcpus = 1 };
  p->requested = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  if (!vfd_check_sandbox_arch(g_getenv("VFIOD_TEST_MACHINE"), error))
    return FALSE;
  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "gpus", "u", &p->gpus);
  g_variant_dict_lookup(&opts, "disk", "&s", &p->disk);
  disks_v = g_variant_dict_lookup_value(&opts, "disks", G_VARIANT_TYPE("aa{sv}"));
  disks_given = g_variant_dict_contains(&opts, "disks");
  g_variant_dict_lookup(&opts, "cmd", "&s", &p->cmd);
  p->env = g_variant_dict_lookup_value(&opts, "env", G_VARIANT_TYPE("a{ss}"));
  /* files of the wrong type are refused, not ignored */
  if (g_variant_dict_contains(&opts, "files") &&
      !(p->files = g_variant_dict_lookup_value(&opts, "files", G_VARIANT_TYPE("aa{sv}"))))
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "files: must be aa{sv} (each: path s, contents ay, mode u)");
  /* Identity (issue 15, item 1): a name and labels of the wrong type are
   * refused, not ignored. */
  if (!*error && g_variant_dict_contains(&opts, "name") &&
      !(p->name_v = g_variant_dict_lookup_value(&opts, "name", G_VARIANT_TYPE_STRING)))
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "name: must be a string (s)");
  p->name = p->name_v ? g_variant_get_string(p->name_v, NULL) : NULL;
  if (!*error && g_variant_dict_contains(&opts, "labels") &&
      !(p->labels = g_variant_dict_lookup_value(&opts, "labels", G_VARIANT_TYPE("a{ss}"))))
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: must be a{ss}");
  if (!*error && p->name_v)
    vfd_sandbox_name_check(p->name, error);
  if (!*error)
    vfd_sandbox_labels_check(p->labels, error);
  if ((v = g_variant_dict_lookup_value(&opts, "args", G_VARIANT_TYPE_STRING_ARRAY))) {
    p->args = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  if ((v = g_variant_dict_lookup_value(&opts, "devices", G_VARIANT_TYPE_STRING_ARRAY))) {
    p->dev_strs = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  g_variant_dict_lookup(&opts, "kernel", "&s", &p->kernel);
  g_variant_dict_lookup(&opts, "initrd", "&s", &p->initrd);
  p->kernel_from_client = p->kernel != NULL;
  p->initrd_from_client = p->initrd != NULL;
  g_variant_dict_lookup(&opts, "memory_mib", "u", &p->memory);
  g_variant_dict_lookup(&opts, "vcpus", "u", &p->vcpus);
  /* The strings looked up stay valid: they point into @options. */
  g_variant_dict_clear(&opts);
  if (!p->kernel)
    p->kernel = m->config->qemu_kernel;
  if (!p->initrd)
    p->initrd = m->config->qemu_initrd;

  /* Stage 0: validate everything before touching anything. */
  if (*error)
    return FALSE; /* name or labels */
  if (p->gpus > 0 && p->dev_strs && p->dev_strs[0]) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "give devices or gpus, not both");
    return FALSE;
  }
  if (p->gpus > 64) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "gpus must be at most 64, got %u", p->gpus);
    return FALSE;
  }
  if (disks_given && !disks_v) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "disks: must be aa{sv} (each: role s, path s or fd h, read_only b)");
    return FALSE;
  }
  /* The disks: checked, the fds that came with the call dup'ed (the
   * paths are opened in the create's stage 0, with the caller's rights). */
  if (!(p->disks = vfd_disks_parse(disks_v, p->disk,
                                   g_dbus_message_get_unix_fd_list(g_dbus_method_invocation_get_message(inv)), error)) ||
      !vfd_mgr_check_workload(p->cmd, p->args, p->env, p->files, error))
    return FALSE;
  /* At most VFD_API_MAX_DEVICES, each once (the API filter has bounded
   * the array already; the number is checked here too, before any work). */
  if (p->dev_strs && g_strv_length((char **) p->dev_strs) > VFD_API_MAX_DEVICES) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "devices: %u BDFs, at most %u",
                g_strv_length((char **) p->dev_strs), VFD_API_MAX_DEVICES);
    return FALSE;
  }
  for (const char **d = p->dev_strs; d && *d; d++) {
    VfdBdf bdf;
    if (!vfd_mgr_parse_bdf_arg(*d, &bdf, error))
      return FALSE;
    for (guint k = 0; k < p->requested->len; k++)
      if (vfd_bdf_equal(&g_array_index(p->requested, VfdBdf, k), &bdf)) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "devices: %s is given twice", *d);
        return FALSE;
      }
    if (!vfd_sysfs_device_exists(vfd_host_sysfs(m->host), &bdf)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", *d);
      return FALSE;
    }
    g_array_append_val(p->requested, bdf);
  }
  /* Paths only: the files are opened in the create's stage 0, with the
   * client's rights (open_guest_files()). */
  if (!vfd_mgr_check_client_path("kernel", p->kernel, error) || !vfd_mgr_check_client_path("initrd", p->initrd, error) ||
      !vfd_caller_from_invocation(inv, &p->caller, error))
    return FALSE;
  if (p->memory < 64 || p->memory > 1024 * 1024) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "memory_mib must be 64 to 1048576, got %u", p->memory);
    return FALSE;
  }
  if (p->vcpus < 1 || p->vcpus > 255) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "vcpus must be 1 to 255, got %u", p->vcpus);
    return FALSE;
  }
  if (!vfd_mgr_check_journal_ok(m, error))
    return FALSE;
  p->spec = vfd_sandbox_spec_hash(options);
  return TRUE;
}

/* The name of @p against the sandboxes vfiod knows: TRUE with
 * *@ret_existing NULL when free; TRUE with the sandbox (and
 * *@ret_creating) when the caller's sandbox of the same spec holds it (the
 * create answers with it); else FALSE with AlreadyExists. */
static gboolean
create_name_check(VfdManager *m, const CreateSpec *p, Sandbox **ret_existing, gboolean *ret_creating, GError **error)
{
  Sandbox *s;

  *ret_existing = NULL;
  *ret_creating = FALSE;
  if (!p->name)
    return TRUE;
  /* A name stands for one spec: the same create again is answered with
   * the sandbox it made (also while that is being created: one create
   * makes it, the name was taken on the main loop); another spec, or
   * another owner, is AlreadyExists. */
  s = vfd_mgr_find_sandbox(m, p->name, ret_creating);
  if (!s)
    return TRUE;
  if (g_strcmp0(s->spec, p->spec) == 0 && s->owner_uid == p->caller.uid) {
    *ret_existing = s;
    return TRUE;
  }
  /* Another owner's sandbox is not named: its id is not the caller's to
   * know. */
  if (s->owner_uid != p->caller.uid)
    g_set_error(error, VFD_ERROR, VFD_ERROR_ALREADY_EXISTS,
                "a sandbox named '%s' exists already with another owner; choose another name", p->name);
  else
    g_set_error(error, VFD_ERROR, VFD_ERROR_ALREADY_EXISTS,
                "a sandbox named '%s' exists already (%s) with another spec; delete it first or choose another "
                "name", p->name, s->id);
  return FALSE;
}

/* The request vfd_mgr_create_begin() and vfd_mgr_validate_begin() take,
 * from @p (its BDFs and caller are moved into it). */
static CreateRequest
create_request_from(CreateSpec *p)
{
  CreateRequest req = { .kernel = p->kernel, .initrd = p->initrd, .kernel_from_client = p->kernel_from_client,
                        .initrd_from_client = p->initrd_from_client, .disks = p->disks, .cmd = p->cmd,
                        .args = p->args, .env = p->env, .files = p->files, .name = p->name, .labels = p->labels, .spec = p->spec,
                        .memory_mib = p->memory, .vcpus = p->vcpus, .gpus = p->gpus,
                        .requested = g_steal_pointer(&p->requested), .caller = p->caller };

  p->caller = (VfdCaller){ 0 };
  return req;
}

/* The main-loop checks CreateSandbox and ValidateSandbox share:
 * create_parse() then create_name_check(). FALSE when they refused: the
 * error has been returned to @inv and @p is cleared; else @p holds the spec
 * and *@ret_s the sandbox of that name and spec, if any (*@ret_creating:
 * still being created). */
static gboolean
create_begin_checks(VfdManager *m, GDBusMethodInvocation *inv, GVariant *options, CreateSpec *p, Sandbox **ret_s,
                    gboolean *ret_creating)
{
  g_autoptr(GError) error = NULL;

  if (!create_parse(m, inv, options, p, &error) || !create_name_check(m, p, ret_s, ret_creating, &error)) {
    create_spec_clear(p);
    vfd_mgr_return_error(inv, error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
handle_create_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, GVariant *options, gpointer data)
{
  VfdManager *m = data;
  CreateSpec p;
  Sandbox *s = NULL;
  gboolean creating = FALSE;

  if (!create_begin_checks(m, inv, options, &p, &s, &creating))
    return TRUE;
  if (s) {
    create_spec_clear(&p);
    vfd_manager1_complete_create_sandbox(sk, inv, creating ? vfd_mgr_sandbox_creating_to_variant(s)
                                                           : vfd_mgr_sandbox_to_variant(s));
    return TRUE;
  }
  {
    CreateRequest req = create_request_from(&p);

    vfd_mgr_create_begin(m, inv, &req);
  }
  create_spec_clear(&p);
  return TRUE;
}

/* ValidateSandbox: CreateSandbox's checks, its main-loop ones here
 * (create_parse(), create_name_check()), those of its worker by
 * vfd_mgr_validate_begin(); nothing changes. */
static gboolean
handle_validate_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, GVariant *options, gpointer data)
{
  VfdManager *m = data;
  CreateSpec p;
  Sandbox *s = NULL;
  gboolean creating = FALSE;

  if (!create_begin_checks(m, inv, options, &p, &s, &creating))
    return TRUE;
  if (s) {
    /* The create would answer with this sandbox. */
    g_auto(GStrv) devs = vfd_mgr_bdf_strv(s->devices);
    GVariantDict r;

    create_spec_clear(&p);
    g_variant_dict_init(&r, NULL);
    g_variant_dict_insert(&r, "valid", "b", TRUE);
    g_variant_dict_insert(&r, "existing", "s", s->id);
    if (!creating)
      g_variant_dict_insert_value(&r, "devices", g_variant_new_strv((const char *const *) devs, -1));
    g_variant_dict_insert(&r, "memory_mib", "u", s->memory_mib);
    g_variant_dict_insert(&r, "vcpus", "u", s->vcpus);
    vfd_manager1_complete_validate_sandbox(sk, inv, g_variant_dict_end(&r));
    return TRUE;
  }
  {
    CreateRequest req = create_request_from(&p);

    vfd_mgr_validate_begin(m, inv, &req);
  }
  create_spec_clear(&p);
  return TRUE;
}

/* The sandbox @id (an id or a name) for a call that acts on it (@verb,
 * for errors: "delete"), when the caller is its owner or root; else NULL,
 * the error returned to @inv. *@ret_creating: it is being created. */
static Sandbox *
sandbox_for_owner(VfdManager *m, GDBusMethodInvocation *inv, const char *id, const char *verb, gboolean *ret_creating)
{
  Sandbox *s = vfd_mgr_find_sandbox(m, id, ret_creating);
  g_autoptr(GError) error = NULL;
  uid_t uid;

  if (!vfd_mgr_caller_uid(inv, &uid))
    return NULL;
  if (!s) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no sandbox '%.64s'", id);
    vfd_mgr_return_error(inv, error);
    return NULL;
  }
  /* Members act on their own sandboxes; root on any. */
  if (uid != 0 && uid != s->owner_uid) {
    g_autofree char *owner = vfd_uid_describe(s->owner_uid);
    g_autofree char *who = vfd_uid_describe(uid);
    g_set_error(&error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "sandbox %s belongs to %s; only its owner or root may %s it, not %s", s->id, owner, verb, who);
    vfd_mgr_return_error(inv, error);
    return NULL;
  }
  return s;
}

static gboolean
handle_delete_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  gboolean creating = FALSE;
  Sandbox *s = sandbox_for_owner(data, inv, id, "delete", &creating);

  if (s)
    vfd_mgr_delete_begin(s, inv, creating);
  return TRUE;
}

static gboolean
handle_stop_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  gboolean creating = FALSE;
  Sandbox *s = sandbox_for_owner(data, inv, id, "stop", &creating);

  if (s && creating) {
    g_autoptr(GError) error =
        g_error_new(VFD_ERROR, VFD_ERROR_BUSY, "sandbox %s is being created; stop it once that is done", s->id);
    vfd_mgr_return_error(inv, error);
  } else if (s)
    vfd_mgr_stop_request(s, inv);
  return TRUE;
}

static gboolean
handle_start_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  gboolean creating = FALSE;
  Sandbox *s = sandbox_for_owner(data, inv, id, "start", &creating);
  g_autoptr(GError) error = NULL;

  if (s && creating) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_BUSY, "sandbox %s is being created", s->id);
    vfd_mgr_return_error(inv, error);
  } else if (s && vfd_mgr_check_journal_ok(data, &error))
    vfd_mgr_start_begin(s, inv);
  else if (s)
    vfd_mgr_return_error(inv, error);
  return TRUE;
}

static gboolean
handle_get_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  VfdManager *m = data;
  gboolean creating = FALSE;
  Sandbox *s = vfd_mgr_find_sandbox(m, id, &creating);
  g_autoptr(GError) error = NULL;

  if (s && creating) {
    vfd_manager1_complete_get_sandbox(sk, inv, vfd_mgr_sandbox_creating_to_variant(s));
    return TRUE;
  }
  if (!s) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no sandbox '%.64s'", id);
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  vfd_manager1_complete_get_sandbox(sk, inv, vfd_mgr_sandbox_to_variant(s));
  return TRUE;
}

/* The last @max bytes of the regular file @path (no link followed), or
 * NULL with the error. */
static GBytes *
read_tail(const char *path, gsize max, GError **error)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  g_autofree guint8 *buf = NULL;
  struct stat st;
  gsize got = 0;

  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int e = fd < 0 ? errno : EINVAL;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the console log %s: %s", path, g_strerror(e));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  if ((gsize) st.st_size > max)
    (void) lseek(fd, st.st_size - (off_t) max, SEEK_SET);
  buf = g_malloc(max);
  while (got < max) {
    ssize_t n = read(fd, buf + got, max - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (gsize) n;
  }
  close(fd);
  return g_bytes_new(buf, got);
}

static gboolean
handle_get_sandbox_console(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, guint max_bytes,
                           gpointer data)
{
  VfdManager *m = data;
  gboolean creating = FALSE;
  Sandbox *s = vfd_mgr_find_sandbox(m, id, &creating);
  g_autoptr(GError) error = NULL;
  g_autofree char *kept_path = NULL;
  g_autoptr(GBytes) bytes = NULL;
  const char *path;
  uid_t uid, owner = 0;

  if (!vfd_mgr_caller_uid(inv, &uid))
    return TRUE;
  if (max_bytes == 0)
    max_bytes = 65536;
  max_bytes = MIN(max_bytes, 1048576u);
  if (s) {
    path = s->serial_log;
    owner = s->owner_uid;
  } else {
    kept_path = vfd_mgr_kept_console_path(m, id, &owner);
    path = kept_path;
  }
  if (!path) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no sandbox '%.64s', and no console kept for it", id);
  } else if (uid != 0 && uid != owner) {
    g_autofree char *who = vfd_uid_describe(uid);
    g_set_error(&error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "the console of %.64s is its owner's and root's only, not %s's", id, who);
  } else {
    bytes = read_tail(path, max_bytes, &error);
  }
  if (!bytes) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  vfd_manager1_complete_get_sandbox_console(
      sk, inv, g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, bytes, TRUE), s == NULL);
  return TRUE;
}

static gboolean
handle_get_capabilities(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  /* One bus scan serves the device list, the free count and the HGX board
   * (issue 17: this call took 20-40 ms when it scanned three times). */
  g_autoptr(GPtrArray) all = vfd_host_enumerate(m->host, &error);
  GVariant *devs = all ? vfd_mgr_device_inventory_from(m, all) : NULL;
  VfdMeminfo meminfo;
  GVariantDict host, caps;
  guint free_units;
  int fd;

  if (!devs) {
    vfd_mgr_return_error(inv, error);
    return TRUE;
  }
  free_units = vfd_host_count_free_units_in(m->host, all);
  vfd_meminfo_read(m->config->proc_root, &meminfo);

  g_variant_dict_init(&host, NULL);
  g_variant_dict_insert(&host, "version", "s", VFIOD_VERSION);
  g_variant_dict_insert(&host, "accel", "s", m->config->qemu_accel);
  fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  g_variant_dict_insert(&host, "kvm", "b", fd >= 0);
  if (fd >= 0)
    close(fd);
  g_variant_dict_insert(&host, "vsock", "b", m->have_vsock);
  g_variant_dict_insert(&host, "network", "b", m->config->net_enabled);
  /* [network] gateway_address: where every guest reaches the platform's
   * gateway ("" when each guest uses its own TAP's address) */
  g_variant_dict_insert(&host, "gateway_address", "s", m->config->net_enabled ? m->config->net_gateway : "");
  g_variant_dict_insert(&host, "hugepages_total", "t", meminfo.hugepages_total);
  g_variant_dict_insert(&host, "hugepages_free", "t", meminfo.hugepages_free);
  g_variant_dict_insert(&host, "hugepage_kib", "t", meminfo.hugepage_kib);
  g_variant_dict_insert(&host, "memory_mib", "t", meminfo.mem_total_kib / 1024);
  g_variant_dict_insert(&host, "cpus", "u", g_get_num_processors());
  g_variant_dict_insert(&host, "free_units", "u", free_units);
  {
    /* The guest address width vfiod can give (see vfd_qemu_address_plan()). */
    if (m->host_cpu_read == 0)
      m->host_cpu_read = vfd_host_cpu_read(m->config->proc_root, &m->host_cpu) == 0 ? 1 : -1;
    if (m->host_cpu_read > 0) {
      g_variant_dict_insert(&host, "phys_bits", "u", m->host_cpu.phys_bits);
      g_variant_dict_insert(&host, "la57", "b", m->host_cpu.la57);
    }
    if (m->config->qemu_max_phys_bits)
      g_variant_dict_insert(&host, "max_phys_bits", "u", m->config->qemu_max_phys_bits);
  }

  g_variant_dict_init(&caps, NULL);
  g_variant_dict_insert_value(&caps, "devices", devs);
  {
    /* An HGX board: which partitions a sandbox may take. */
    g_autoptr(VfdHgxBoard) board = vfd_hgx_board_find(all);
    if (board) {
      g_auto(GStrv) gpus = vfd_mgr_bdf_strv(board->gpus);
      g_auto(GStrv) switches = vfd_mgr_bdf_strv(board->nvswitches);
      guint32 counts[2] = { 1, board->gpus->len };
      GVariantDict hgx;

      g_variant_dict_init(&hgx, NULL);
      g_variant_dict_insert_value(&hgx, "gpus", g_variant_new_strv((const char *const *) gpus, -1));
      g_variant_dict_insert_value(&hgx, "nvswitches", g_variant_new_strv((const char *const *) switches, -1));
      /* GPUs per sandbox: 1, or all of them with every NVSwitch. */
      g_variant_dict_insert_value(&hgx, "gpu_counts",
                                  g_variant_new_fixed_array(G_VARIANT_TYPE_UINT32, counts,
                                                            board->gpus->len > 1 ? 2 : 1, sizeof(guint32)));
      g_variant_dict_insert_value(&caps, "hgx", g_variant_dict_end(&hgx));
    }
  }
  g_variant_dict_insert_value(&caps, "host", g_variant_dict_end(&host));
  vfd_manager1_complete_get_capabilities(sk, inv, g_variant_dict_end(&caps));
  return TRUE;
}

static gboolean
handle_list_sandboxes(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GPtrArray) list = g_ptr_array_new();
  GHashTableIter iter;
  gpointer value;
  GVariantBuilder b;

  g_hash_table_iter_init(&iter, m->sandboxes);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_ptr_array_add(list, value);
  g_hash_table_iter_init(&iter, m->creating);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_ptr_array_add(list, value);

  g_ptr_array_sort(list, vfd_mgr_sandbox_id_cmp);
  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < list->len; i++) {
    Sandbox *s = g_ptr_array_index(list, i);
    g_variant_builder_add_value(&b, g_hash_table_contains(m->creating, s->id) ? vfd_mgr_sandbox_creating_to_variant(s)
                                                                             : vfd_mgr_sandbox_to_variant(s));
  }
  vfd_manager1_complete_list_sandboxes(sk, inv, g_variant_builder_end(&b));
  return TRUE;
}

static gboolean
handle_reconcile(VfdManager1 *sk, GDBusMethodInvocation *inv, GVariant *options, gpointer data)
{
  VfdManager *m = data;
  GVariantDict opts;
  gboolean force = FALSE;
  g_autoptr(GError) error = NULL;
  uid_t uid;
  Op *op;

  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "force", "b", &force);
  g_variant_dict_clear(&opts);
  if (!vfd_mgr_caller_uid(inv, &uid))
    return TRUE;
  if (force && !vfd_mgr_check_root_only(inv, uid, "reconcile --force (starting a new journal after a corrupt one)"))
    return TRUE;
  op = vfd_mgr_op_new(m, inv, vfd_mgr_reconcile_work, vfd_mgr_reconcile_done);
  op->report = vfd_reconcile_report_new();
  if (m->journal_corrupt) {
    if (!force) {
      vfd_mgr_check_journal_ok(m, &error);
      op->inv = NULL;
      vfd_mgr_op_free(op);
      vfd_mgr_return_error(inv, error);
      return TRUE;
    }
    /* The operator has looked: start over with an empty journal. The
     * corrupt file was kept aside when it was found. */
    vfd_host_lock_journal(m->host);
    if (!vfd_journal_commit(vfd_host_journal(m->host), &error)) {
      vfd_host_unlock_journal(m->host);
      op->inv = NULL;
      vfd_mgr_op_free(op);
      vfd_mgr_return_error(inv, error);
      return TRUE;
    }
    vfd_host_unlock_journal(m->host);
    vfd_reconcile_add(op->report, "journal", "reset", "%s; started a new, empty journal", m->journal_corrupt);
    g_clear_pointer(&m->journal_corrupt, g_free);
  }
  op->live = vfd_mgr_live_sandbox_ids(m);
  vfd_mgr_op_run(op);
  return TRUE;
}

/* Connects the method handlers above to m->skeleton: see
 * manager-private.h. */
void
vfd_mgr_api_connect(VfdManager *m)
{
  g_signal_connect(m->skeleton, "handle-list-devices", G_CALLBACK(handle_list_devices), m);
  g_signal_connect(m->skeleton, "handle-bind-device", G_CALLBACK(handle_bind_device), m);
  g_signal_connect(m->skeleton, "handle-release-device", G_CALLBACK(handle_release_device), m);
  g_signal_connect(m->skeleton, "handle-create-sandbox", G_CALLBACK(handle_create_sandbox), m);
  g_signal_connect(m->skeleton, "handle-validate-sandbox", G_CALLBACK(handle_validate_sandbox), m);
  g_signal_connect(m->skeleton, "handle-delete-sandbox", G_CALLBACK(handle_delete_sandbox), m);
  g_signal_connect(m->skeleton, "handle-stop-sandbox", G_CALLBACK(handle_stop_sandbox), m);
  g_signal_connect(m->skeleton, "handle-start-sandbox", G_CALLBACK(handle_start_sandbox), m);
  g_signal_connect(m->skeleton, "handle-get-sandbox", G_CALLBACK(handle_get_sandbox), m);
  g_signal_connect(m->skeleton, "handle-get-sandbox-console", G_CALLBACK(handle_get_sandbox_console), m);
  g_signal_connect(m->skeleton, "handle-list-sandboxes", G_CALLBACK(handle_list_sandboxes), m);
  g_signal_connect(m->skeleton, "handle-bind-device-full", G_CALLBACK(handle_bind_device_full), m);
  g_signal_connect(m->skeleton, "handle-reconcile", G_CALLBACK(handle_reconcile), m);
  g_signal_connect(m->skeleton, "handle-get-capabilities", G_CALLBACK(handle_get_capabilities), m);
  g_signal_connect(m->skeleton, "handle-open-group", G_CALLBACK(handle_open_group), m);
}
