/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The API's arguments and answers: checks of what a client passes, error
 * replies, and devices and sandboxes as GVariant dictionaries. Main loop. */
#include "manager-private.h"

#include "api-limits.h"
#include "guest-payload.h"
#include "log-limit.h"
#include "path.h"

/* ---- D-Bus helpers ------------------------------------------------------ */

void
vfd_mgr_return_error(GDBusMethodInvocation *inv, GError *error)
{
  /* A client can make calls fail at will: at most 20 lines per 10 s. */
  static VfdLogLimit limit = { .burst = 20, .interval_us = 10 * G_USEC_PER_SEC };

  /* One error domain at the API: org.vfiod.Error.* (a journal commit's
   * GFileError or QEMU's GSpawnError would reach the client as
   * org.gtk.GDBus.UnmappedGError.*). */
  g_autoptr(GError) api_error = vfd_error_for_api(error);

  vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "%s failed: %s", g_dbus_method_invocation_get_method_name(inv),
                  error->message);
  g_dbus_method_invocation_return_gerror(inv, api_error);
}

/* The caller's uid (SO_PEERCRED of its connection) into *@ret_uid; FALSE
 * with the error returned to @inv when it cannot be read. */
gboolean
vfd_mgr_caller_uid(GDBusMethodInvocation *inv, uid_t *ret_uid)
{
  g_autoptr(GError) error = NULL;
  VfdCaller caller;

  if (!vfd_caller_from_invocation(inv, &caller, &error)) {
    vfd_mgr_return_error(inv, error);
    return FALSE;
  }
  *ret_uid = caller.uid;
  vfd_caller_clear(&caller);
  return TRUE;
}

/* Refuses a root-only option (@what, e.g. "bind --force") to a member:
 * FALSE with PermissionDenied returned to @inv. */
gboolean
vfd_mgr_check_root_only(GDBusMethodInvocation *inv, uid_t uid, const char *what)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *who = NULL;

  if (uid == 0)
    return TRUE;
  who = vfd_uid_describe(uid);
  g_set_error(&error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED, "%s is for root only; %s may not", what, who);
  vfd_mgr_return_error(inv, error);
  return FALSE;
}

gboolean
vfd_mgr_parse_bdf_arg(const char *s, VfdBdf *ret, GError **error)
{
  if (vfd_bdf_parse(s, ret) < 0) {
    g_autofree char *shown = g_strescape(s ? s : "", NULL);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "invalid BDF '%.64s': expected DDDD:BB:DD.F (hex domain:bus:device.function, e.g. 0000:01:00.0)",
                shown);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_mgr_check_owner_name(const char *owner, GError **error)
{
  size_t len = strlen(owner);

  if (len == 0 || len > 64) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "an owner name has 1 to 64 characters");
    return FALSE;
  }
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum(owner[i]) && !strchr("._-@", owner[i])) {
      g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                          "an owner name may hold only letters, digits and . _ - @");
      return FALSE;
    }
  if (g_str_has_prefix(owner, "sb-")) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "owner names starting with 'sb-' are reserved for sandboxes");
    return FALSE;
  }
  return TRUE;
}

/* The workload travels to the guest as the fw_cfg payload
 * (guest-payload.h has the rules, guest-init/payload.h the format and
 * limits shared with guest-init). */
gboolean
vfd_mgr_check_workload(const char *cmd, const char *const *args, GVariant *env, GVariant *files, GError **error)
{
  return vfd_guest_payload_check(cmd, args, env, files, error);
}

/* A path a client names: absolute, no "." or ".." component (the file
 * itself is opened later, with the client's rights). */
gboolean
vfd_mgr_check_client_path(const char *what, const char *path, GError **error)
{
  if (!path || !*path) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: a path is required", what);
    return FALSE;
  }
  if (!g_path_is_absolute(path) || strlen(path) > 4096) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%.128s' must be an absolute path (4096 bytes at most)",
                what, path);
    return FALSE;
  }
  if (!vfd_path_check(path, VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%.128s' must not contain '.' or '..'", what, path);
    return FALSE;
  }
  return TRUE;
}

static GVariant *
device_to_variant(VfdManager *m, const VfdPciDevice *d)
{
  GVariantDict dict;
  char b[VFD_BDF_STRLEN];
  VfdJournalDevice *jd = vfd_journal_lookup(vfd_host_journal(m->host), &d->bdf);
  g_autofree char *vendor = g_strdup_printf("%04x", d->vendor);
  g_autofree char *device = g_strdup_printf("%04x", d->device);
  g_autofree char *cls = g_strdup_printf("%06x", d->class_code);
  const char *state = "host";

  if (jd)
    state = vfd_device_state_to_string(jd->state);
  else if (g_strcmp0(d->driver, VFD_VFIO_DRIVER) == 0)
    state = "host"; /* on vfio-pci, but not ours */

  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "bdf", "s", vfd_bdf_format(&d->bdf, b));
  g_variant_dict_insert(&dict, "vendor", "s", vendor);
  g_variant_dict_insert(&dict, "device", "s", device);
  g_variant_dict_insert(&dict, "class", "s", cls);
  g_variant_dict_insert(&dict, "iommu_group", "i", d->iommu_group);
  g_variant_dict_insert(&dict, "numa_node", "i", d->numa_node);
  if (d->driver)
    g_variant_dict_insert(&dict, "driver", "s", d->driver);
  g_variant_dict_insert(&dict, "state", "s", state);
  if (jd)
    g_variant_dict_insert(&dict, "owner", "s", jd->owner);
  if (jd)
    g_variant_dict_insert(&dict, "owner_uid", "u", jd->owner_uid);
  g_variant_dict_insert(&dict, "managed", "b",
                        !vfd_pci_class_is_bridge(d->class_code) &&
                            !vfd_policy_refusal(vfd_host_policy(m->host), d->vendor, d->device, d->class_code,
                                                d->boot_vga));
  if (d->name)
    g_variant_dict_insert(&dict, "name", "s", d->name);
  return g_variant_dict_end(&dict);
}

/* What GetSandbox shows of every sandbox, created or being created: its
 * identity, state @state, QEMU's @pid, @devs (NULL: none) and what it was
 * asked for. Into @dict (initialised by the caller). */
static void
insert_common(GVariantDict *dict, Sandbox *s, SandboxState state, gint64 pid, const char *const *devs)
{
  g_variant_dict_insert(dict, "id", "s", s->id);
  if (s->name)
    g_variant_dict_insert(dict, "name", "s", s->name);
  g_variant_dict_insert_value(dict, "labels",
                              s->labels ? s->labels : g_variant_new_array(G_VARIANT_TYPE("{ss}"), NULL, 0));
  g_variant_dict_insert(dict, "owner_uid", "u", (guint32) s->owner_uid);
  g_variant_dict_insert(dict, "state", "s", sandbox_state_names[state]);
  g_variant_dict_insert(dict, "pid", "x", pid);
  g_variant_dict_insert_value(dict, "devices", g_variant_new_strv(devs, devs ? -1 : 0));
  g_variant_dict_insert(dict, "memory_mib", "u", s->memory_mib);
  g_variant_dict_insert(dict, "vcpus", "u", s->vcpus);
  g_variant_dict_insert(dict, "serial_log", "s", s->serial_log);
  g_variant_dict_insert(dict, "dir", "s", s->dir);
}

GVariant *
vfd_mgr_sandbox_to_variant(Sandbox *s)
{
  GVariantDict dict;
  g_auto(GStrv) devs = vfd_mgr_bdf_strv(s->devices);

  g_variant_dict_init(&dict, NULL);
  insert_common(&dict, s, s->state, s->pid, (const char *const *) devs);
  if (s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED || s->state == SANDBOX_EXITED)
    g_variant_dict_insert(&dict, "exit_status", "i", s->exit_status);
  if (s->workload_exited) {
    g_variant_dict_insert(&dict, "workload_exit_status", "i", s->workload_exit_status);
    if (s->workload_signal > 0)
      g_variant_dict_insert(&dict, "workload_signal", "i", s->workload_signal);
  }
  if (s->failure_reason)
    g_variant_dict_insert(&dict, "failure_reason", "s", s->failure_reason);
  g_variant_dict_insert(&dict, "ready", "b", s->ready);
  g_variant_dict_insert(&dict, "numa_node", "i", s->numa_node);
  if (s->ready_report)
    g_variant_dict_insert(&dict, "ready_report", "s", s->ready_report);
  if (s->ready)
    g_variant_dict_insert(&dict, "ready_ms", "x", s->ready_ms);
  return g_variant_dict_end(&dict);
}

/* A sandbox being created, as GetSandbox and ListSandboxes show it: only
 * what was set before its create went to a worker (which is still filling
 * in the rest: devices, pid, network), so nothing the worker writes is
 * read. devices is empty and pid 0 until the create is done. */
GVariant *
vfd_mgr_sandbox_creating_to_variant(Sandbox *s)
{
  GVariantDict dict;

  g_variant_dict_init(&dict, NULL);
  insert_common(&dict, s, SANDBOX_CREATING, 0, NULL);
  g_variant_dict_insert(&dict, "ready", "b", FALSE);
  g_variant_dict_insert(&dict, "numa_node", "i", -1);
  return g_variant_dict_end(&dict);
}

gint
vfd_mgr_sandbox_id_cmp(gconstpointer a, gconstpointer b)
{
  return g_strcmp0((*(Sandbox *const *) a)->id, (*(Sandbox *const *) b)->id);
}

/* The device list of ListDevices and GetCapabilities from @devs (from
 * vfd_host_enumerate()): a floating aa{sv}. */
GVariant *
vfd_mgr_device_inventory_from(VfdManager *m, GPtrArray *devs)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  vfd_host_lock_journal(m->host);
  for (guint i = 0; i < devs->len; i++)
    g_variant_builder_add_value(&b, device_to_variant(m, g_ptr_array_index(devs, i)));
  vfd_host_unlock_journal(m->host);
  return g_variant_builder_end(&b);
}

/* Every PCI device with vfiod's view of it (aa{sv}, floating); NULL when
 * enumeration fails. */
GVariant *
vfd_mgr_device_inventory(VfdManager *m, GError **error)
{
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(m->host, error);

  return devs ? vfd_mgr_device_inventory_from(m, devs) : NULL;
}
