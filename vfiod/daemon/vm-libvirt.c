/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt backend (issue 18, [vm] backend = libvirt), the daemon's
 * side: libvirt itself is reached through the module vfiod-libvirt.so
 * (libvirt-module.h), loaded only for this backend, so that the qemu
 * backend's daemon maps none of libvirt's libraries. vfiod still owns the
 * devices (every hostdev is managed='no'), the TAP, the firewall, the CID
 * and the journal; it follows the domain's QEMU process by pid (pidfd) as
 * it does its own QEMUs, and libvirt's lifecycle events say the same
 * sooner or later, so a kill -9 of QEMU, a libvirtd restart or a vfiod
 * restart all end as with the qemu backend. */
#include "manager-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gmodule.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libvirt-module.h"
#include "libvirt-xml.h"
#include "log-fields.h"
#include "procfs.h"

#define LIBVIRT_RETRY_S 2                        /* between connection attempts */
#define LIBVIRT_QEMU_RUN_DIR "/run/libvirt/qemu" /* the system driver's state: <domain>.pid */
#define LV(m) ((const VfdLibvirtOps *) (m)->lv_ops)

static void
take_error(GError **error, const char *id, const char *what, char *message)
{
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "sandbox %s: libvirt: %s: %s", id, what,
              message ? message : "failed");
  g_free(message);
}

/* ---- the module and the connection (main loop) ----------------------------- */

/* The module: next to vfiod's own binary first (the build tree), else
 * VFIOD_MODULEDIR. */
static GModule *
load_module(GError **error)
{
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
  g_autofree char *dir = self ? g_path_get_dirname(self) : NULL;
  g_autofree char *near = dir ? g_build_filename(dir, VFD_LIBVIRT_MODULE_FILE, NULL) : NULL;
  g_autofree char *installed = g_build_filename(VFIOD_MODULEDIR, VFD_LIBVIRT_MODULE_FILE, NULL);
  const char *path = near && g_file_test(near, G_FILE_TEST_IS_REGULAR) ? near : installed;
  GModule *mod = g_module_open(path, G_MODULE_BIND_LOCAL);

  if (!mod)
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot load %s: %s", path, g_module_error());
  return mod;
}

static gboolean reconnect(gpointer data);

static void
schedule_reconnect(VfdManager *m)
{
  if (!m->lv_retry)
    m->lv_retry = g_timeout_add_seconds(LIBVIRT_RETRY_S, reconnect, m);
}

/* A domain stopped: a sandbox of ours whose QEMU is gone (its pidfd may
 * have said so first: vfd_mgr_vm_gone() acts once). */
static void
on_stopped(const char *name, int detail, gpointer data)
{
  VfdManager *m = data;
  Sandbox *s = g_hash_table_lookup(m->sandboxes, name);
  static const char *const why[] = { "shut down", "destroyed", "crashed", "migrated", "saved", "failed",
                                     "from snapshot" };

  /* a create under way watches its QEMU's pidfd once it is done */
  if (!s || s->state == SANDBOX_CREATING || s->vm_gone)
    return;
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: libvirt: domain stopped (%s)", s->id,
                 detail >= 0 && (guint) detail < G_N_ELEMENTS(why) ? why[detail] : "?");
  /* VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN 0, _DESTROYED 1 (SIGTERM), else failed */
  vfd_mgr_vm_gone(s, detail == 0 ? 0 : detail == 1 ? 128 + 15 : 1);
}

static gboolean
drop_closed(gpointer data)
{
  VfdManager *m = data;

  LV(m)->disconnect(m->lv);
  schedule_reconnect(m);
  return G_SOURCE_REMOVE;
}

/* libvirtd went away (restarted, stopped): the domains' QEMUs run on;
 * vfiod reconnects. */
static void
on_closed(gpointer data)
{
  VfdManager *m = data;

  g_message("libvirt: the connection to %s closed; reconnecting every %d s", m->config->libvirt_uri,
            LIBVIRT_RETRY_S);
  g_idle_add(drop_closed, m);
}

static gboolean
try_connect(VfdManager *m, GError **error)
{
  char *message = NULL;
  g_autofree char *version = NULL;

  if (!LV(m)->connect(m->lv, &message)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "libvirt at %s: %s", m->config->libvirt_uri, message);
    g_free(message);
    return FALSE;
  }
  version = LV(m)->version(m->lv);
  g_message("libvirt: connected to %s (libvirt %s)", m->config->libvirt_uri, version);
  return TRUE;
}

static gboolean
reconnect(gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;

  m->lv_retry = 0;
  if (!try_connect(m, &error)) {
    g_debug("%s", error->message);
    schedule_reconnect(m);
  }
  return G_SOURCE_REMOVE;
}

/* The module and its ops, or NULL with an error (a module that is not
 * this vfiod's is closed again). */
static GModule *
open_module(const VfdLibvirtOps **ret_ops, GError **error)
{
  GModule *mod = load_module(error);
  const VfdLibvirtOps *ops = NULL;

  if (mod && (!g_module_symbol(mod, VFD_LIBVIRT_MODULE_SYMBOL, (gpointer *) &ops) || !ops ||
              ops->abi != VFD_LIBVIRT_MODULE_ABI)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s is not this vfiod's libvirt module (ABI %u wanted)",
                g_module_name(mod), VFD_LIBVIRT_MODULE_ABI);
    g_module_close(mod);
    return NULL;
  }
  *ret_ops = ops;
  return mod;
}

gboolean
vfd_manager_libvirt_module_check(GError **error)
{
  const VfdLibvirtOps *ops = NULL;
  GModule *mod = open_module(&ops, error);

  if (!mod)
    return FALSE;
  g_module_close(mod);
  return TRUE;
}

void
vfd_mgr_libvirt_init(VfdManager *m)
{
  g_autoptr(GError) error = NULL;
  const VfdLibvirtOps *ops = NULL;

  if (!m->config->vm_libvirt)
    return;
  m->lv_module = open_module(&ops, &error);
  if (!m->lv_module) {
    g_warning("[vm] backend libvirt: %s; sandboxes cannot start", error->message);
    return;
  }
  m->lv_ops = ops;
  m->lv = ops->new(m->config->libvirt_uri, on_stopped, on_closed, m);
  if (!try_connect(m, &error)) {
    g_warning("[vm] backend libvirt: %s; sandboxes cannot start until it answers (retrying every %d s)",
              error->message, LIBVIRT_RETRY_S);
    schedule_reconnect(m);
  }
}

void
vfd_mgr_libvirt_free(VfdManager *m)
{
  if (m->lv_retry)
    g_source_remove(m->lv_retry);
  m->lv_retry = 0;
  if (m->lv)
    LV(m)->free(m->lv);
  m->lv = NULL;
  /* the module stays loaded: libvirt's threads and its event sources
   * may outlive this manager */
}

/* ---- a sandbox's domain (worker threads) ---------------------------------- */

/* The module, or FALSE with an error saying why there is none. */
static gboolean
have_libvirt(VfdManager *m, GError **error)
{
  if (m->lv)
    return TRUE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
              "[vm] backend libvirt: vfiod's libvirt module did not load (see vfiod's log at start-up)");
  return FALSE;
}

gboolean
vfd_mgr_libvirt_copy_file(int dfd, const char *name, int src_fd, uid_t uid, gid_t gid, GError **error)
{
  int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  struct stat st;
  off_t off = 0;

  errno = 0;
  if (out < 0 || fstat(src_fd, &st) < 0)
    goto fail;
  while (off < st.st_size) {
    ssize_t n = sendfile(out, src_fd, &off, (size_t) MIN(st.st_size - off, (off_t) 1 << 30));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      goto fail;
  }
  if (uid != 0 && fchown(out, uid, gid) < 0)
    goto fail;
  close(out);
  return TRUE;
fail: {
  int e = errno ? errno : EIO;
  if (out >= 0)
    close(out);
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot write %s for libvirt's QEMU: %s", name, g_strerror(e));
  return FALSE;
}
}

void
vfd_fd_group_free(gpointer group)
{
  VfdFdGroup *g = group;

  for (guint i = 0; i < g->fds->len; i++)
    close(g_array_index(g->fds, int, i));
  g_array_unref(g->fds);
  g_free(g->name);
  g_free(g);
}

gint64
vfd_mgr_libvirt_create(VfdManager *m, Sandbox *s, const char *xml, GPtrArray *fd_groups, GError **error)
{
  g_autoptr(GArray) groups = g_array_new(FALSE, TRUE, sizeof(VfdLibvirtFdGroup));
  g_autofree char *pidfile = NULL;
  char *message = NULL;
  gint64 pid;

  if (!have_libvirt(m, error))
    return 0;
  for (guint i = 0; fd_groups && i < fd_groups->len; i++) {
    VfdFdGroup *g = g_ptr_array_index(fd_groups, i);
    VfdLibvirtFdGroup lg = { .name = g->name, .fds = (const int *) (void *) g->fds->data, .n_fds = g->fds->len };
    g_array_append_val(groups, lg);
  }
  if (!LV(m)->create(m->lv, xml, (const VfdLibvirtFdGroup *) (void *) groups->data, groups->len, &message)) {
    take_error(error, s->id, "cannot start the domain", message);
    return 0;
  }
  /* Its QEMU, found by libvirt's pidfile and checked by its command line
   * (the guest kernel's vfiod.sandbox=<id>). */
  pidfile = g_strdup_printf(LIBVIRT_QEMU_RUN_DIR "/%s.pid", s->id);
  pid = vfd_qemu_find_pid(pidfile, s->id);
  if (pid <= 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "sandbox %s: libvirt started the domain, but its QEMU is not a process of this host (%s)", s->id,
                pidfile);
    LV(m)->destroy(m->lv, s->id, FALSE, NULL);
    return 0;
  }
  return pid;
}

gboolean
vfd_mgr_libvirt_shutdown(VfdManager *m, Sandbox *s, GError **error)
{
  char *message = NULL;

  if (!have_libvirt(m, error))
    return FALSE;
  if (!LV(m)->shutdown(m->lv, s->id, &message)) {
    take_error(error, s->id, "power-off", message);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_mgr_libvirt_destroy(VfdManager *m, Sandbox *s, gboolean graceful, GError **error)
{
  char *message = NULL;

  if (!have_libvirt(m, error))
    return FALSE;
  if (!LV(m)->destroy(m->lv, s->id, graceful, &message)) {
    take_error(error, s->id, "destroy", message);
    return FALSE;
  }
  return TRUE;
}

/* ---- reconciliation ---------------------------------------------------------- */

const char *
vfd_mgr_libvirt_forget(VfdManager *m, const char *id)
{
  return m->lv ? LV(m)->forget(m->lv, id) : NULL;
}

gboolean
vfd_mgr_libvirt_has_domain(VfdManager *m, const char *id)
{
  return m->lv && LV(m)->state(m->lv, id) == 1;
}

/* Reports every PCI function domain @name has that the journal does not
 * hold for that name. */
static void
report_foreign_hostdevs(VfdManager *m, const char *name, const char *xml, GPtrArray *report)
{
  g_autoptr(GArray) managed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) unmanaged = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  vfd_libvirt_domain_hostdevs(xml, managed, unmanaged);
  for (guint k = 0; k < managed->len + unmanaged->len; k++) {
    gboolean is_managed = k < managed->len;
    const VfdBdf *b = is_managed ? &g_array_index(managed, VfdBdf, k) : &g_array_index(unmanaged, VfdBdf, k - managed->len);
    VfdJournalDevice *jd;
    gboolean bound_for_it;
    char bdf[VFD_BDF_STRLEN];

    vfd_host_lock_journal(m->host);
    jd = vfd_journal_lookup(vfd_host_journal(m->host), b);
    bound_for_it = jd && g_str_equal(jd->owner, name);
    vfd_host_unlock_journal(m->host);
    if (!bound_for_it)
      vfd_reconcile_add(report, vfd_bdf_format(b, bdf), "in-use",
                        "libvirt domain '%s' has it (<hostdev managed='%s'>), but vfiod did not bind it for that "
                        "domain%s",
                        name, is_managed ? "yes" : "no",
                        is_managed ? ": libvirt moves it between drivers itself, under vfiod's bindings" : "");
  }
}

void
vfd_mgr_libvirt_reconcile(VfdManager *m, GHashTable *live, GPtrArray *report, gboolean act)
{
  g_autoptr(GPtrArray) domains = NULL;
  char *message = NULL;

  if (!m->config->vm_libvirt)
    return;
  if (!m->lv) {
    vfd_reconcile_add(report, "libvirt", "unknown", "vfiod's libvirt module is not loaded: libvirt's domains were "
                      "not checked");
    return;
  }
  domains = LV(m)->list(m->lv, &message);
  if (!domains) {
    vfd_reconcile_add(report, "libvirt", "unknown", "libvirt's domains were not checked: %s", message);
    g_free(message);
    return;
  }
  for (guint i = 0; i < domains->len; i++) {
    const VfdLibvirtDomainInfo *d = g_ptr_array_index(domains, i);

    if (d->ours && !g_hash_table_contains(live, d->name)) {
      /* a domain of a sandbox vfiod does not run: the start-up destroys
       * it (nothing is being created then); the Reconcile call reports it */
      if (act) {
        const char *what = LV(m)->forget(m->lv, d->name);
        vfd_reconcile_add(report, d->name, what ? "restored" : "failed",
                          "a libvirt domain of vfiod's that no sandbox names: %s", what ? what : "cannot remove it");
      } else {
        vfd_reconcile_add(report, d->name, "unknown",
                          "a libvirt domain of vfiod's that no sandbox names (the next start-up removes it)");
      }
    } else if (d->active && d->xml) {
      report_foreign_hostdevs(m, d->name, d->xml, report);
    }
  }
}
