/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt backend (issue 18, [vm] backend = libvirt): the connection
 * to this host's libvirt, a sandbox's QEMU as a transient domain, its
 * graceful stop, and libvirt's lifecycle events on GLib's main loop
 * (libvirt-glib's gvir_event_register()). vfiod still owns the devices
 * (every hostdev is managed='no'), the TAP, the firewall, the CID and the
 * journal; it follows the domain's QEMU process by pid (pidfd) as it does
 * its own QEMUs, so a kill -9 of QEMU, a libvirtd restart or a vfiod
 * restart all end where the qemu backend ends. */
#include "manager-private.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <linux/input-event-codes.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libvirt-xml.h"
#include "log-fields.h"
#include "procfs.h"

#define LIBVIRT_RETRY_S 2         /* between connection attempts */
#define LIBVIRT_QEMU_RUN_DIR "/run/libvirt/qemu" /* the system driver's state: <domain>.pid */

/* libvirt's last error on this thread, for a message. */
static const char *
last_error(void)
{
  virErrorPtr e = virGetLastError();

  return e && e->message ? e->message : "unknown libvirt error";
}

static void
libvirt_set_error(GError **error, const char *what, const char *id)
{
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "sandbox %s: libvirt: %s: %s", id, what, last_error());
}

/* The connection, a new reference (virConnectClose() it), or NULL with
 * VFD_ERROR_FAILED when vfiod is not connected (yet or any more). Any
 * thread. */
static virConnectPtr
conn_get(VfdManager *m, GError **error)
{
  virConnectPtr c;

  g_mutex_lock(&m->lv_lock);
  c = m->lv_conn;
  if (c)
    virConnectRef(c);
  g_mutex_unlock(&m->lv_lock);
  if (!c)
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "libvirt at %s is not reachable (is libvirtd or virtqemud running?); vfiod reconnects every %d s",
                m->config->libvirt_uri, LIBVIRT_RETRY_S);
  return c;
}

/* The domain named @id, when it carries vfiod's metadata; NULL otherwise. */
static virDomainPtr
our_domain(virConnectPtr c, const char *id)
{
  virDomainPtr dom = virDomainLookupByName(c, id);
  char *meta;

  if (!dom)
    return NULL;
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VFD_LIBVIRT_XMLNS, 0);
  if (!meta) {
    virDomainFree(dom);
    return NULL;
  }
  free(meta);
  return dom;
}

/* ---- events and the connection (main loop) -------------------------------- */

static gboolean connect_now(gpointer data);

static void
schedule_reconnect(VfdManager *m)
{
  if (!m->lv_retry)
    m->lv_retry = g_timeout_add_seconds(LIBVIRT_RETRY_S, connect_now, m);
}

/* A domain's lifecycle: a domain of ours that stopped is a sandbox whose
 * QEMU is gone (the pidfd may have said so first: vfd_mgr_vm_gone() acts
 * once). */
static int
on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *data)
{
  VfdManager *m = data;
  const char *name = virDomainGetName(dom);
  Sandbox *s = name ? g_hash_table_lookup(m->sandboxes, name) : NULL;
  static const char *const stopped[] = { "shut down", "destroyed", "crashed", "migrated", "saved", "failed",
                                         "from snapshot" };

  /* a create under way watches its QEMU's pidfd once it is done */
  if (!s || event != VIR_DOMAIN_EVENT_STOPPED || s->state == SANDBOX_CREATING)
    return 0;
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: libvirt: domain stopped (%s)", s->id,
                 detail >= 0 && (guint) detail < G_N_ELEMENTS(stopped) ? stopped[detail] : "?");
  vfd_mgr_vm_gone(s, detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN ? 0 : detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? 128 + 15 : 1);
  return 0;
}

static gboolean
drop_closed(gpointer data)
{
  VfdManager *m = data;
  virConnectPtr c;

  g_mutex_lock(&m->lv_lock);
  c = m->lv_conn;
  m->lv_conn = NULL;
  g_mutex_unlock(&m->lv_lock);
  if (c) {
    if (m->lv_callback >= 0)
      virConnectDomainEventDeregisterAny(c, m->lv_callback);
    m->lv_callback = -1;
    virConnectClose(c);
  }
  schedule_reconnect(m);
  return G_SOURCE_REMOVE;
}

/* libvirtd went away (restarted, stopped): the domains' QEMUs run on;
 * vfiod reconnects. */
static void
on_close(virConnectPtr c, int reason, void *data)
{
  VfdManager *m = data;

  g_message("libvirt: the connection to %s closed (reason %d); reconnecting", m->config->libvirt_uri, reason);
  g_idle_add(drop_closed, m);
}

static gboolean
try_connect(VfdManager *m, GError **error)
{
  virConnectPtr c = virConnectOpen(m->config->libvirt_uri);
  unsigned long version = 0;

  if (!c) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot connect to libvirt at %s: %s", m->config->libvirt_uri,
                last_error());
    return FALSE;
  }
  /* a dead daemon is noticed within about 15 s even without traffic */
  virConnectSetKeepAlive(c, 5, 3);
  virConnectRegisterCloseCallback(c, on_close, m, NULL);
  m->lv_callback = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), m, NULL);
  if (m->lv_callback < 0)
    g_warning("libvirt: no lifecycle events (%s); QEMU's exit is still followed by its pid", last_error());
  virConnectGetLibVersion(c, &version);
  g_mutex_lock(&m->lv_lock);
  m->lv_conn = c;
  g_mutex_unlock(&m->lv_lock);
  g_message("libvirt: connected to %s (libvirt %lu.%lu.%lu)", m->config->libvirt_uri, version / 1000000,
            version / 1000 % 1000, version % 1000);
  return TRUE;
}

static gboolean
connect_now(gpointer data)
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

/* libvirt prints its errors to stderr unless told otherwise: vfiod logs
 * them with its own messages. */
static void
quiet_errors(void *data, virErrorPtr e)
{
}

void
vfd_mgr_libvirt_init(VfdManager *m)
{
  static gsize once;
  g_autoptr(GError) error = NULL;

  m->lv_callback = -1;
  if (!m->config->vm_libvirt)
    return;
  if (g_once_init_enter(&once)) {
    virSetErrorFunc(NULL, quiet_errors);
    gvir_event_register();
    g_once_init_leave(&once, 1);
  }
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
  if (m->lv_conn) {
    if (m->lv_callback >= 0)
      virConnectDomainEventDeregisterAny(m->lv_conn, m->lv_callback);
    virConnectUnregisterCloseCallback(m->lv_conn, on_close);
    virConnectClose(m->lv_conn);
  }
  m->lv_conn = NULL;
}

/* ---- a sandbox's domain (worker threads) ---------------------------------- */

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

gboolean
vfd_mgr_libvirt_copy_file(int dfd, const char *name, int src_fd, uid_t uid, gid_t gid, GError **error)
{
  int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  struct stat st;
  off_t off = 0;

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
  int e = errno;
  if (out >= 0)
    close(out);
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot write %s for libvirt's QEMU: %s", name,
              g_strerror(e ? e : EIO));
  return FALSE;
}
}

gint64
vfd_mgr_libvirt_create(VfdManager *m, Sandbox *s, const char *xml, GPtrArray *fd_groups, GError **error)
{
  virConnectPtr c = conn_get(m, error);
  virDomainPtr dom = NULL;
  g_autofree char *pidfile = NULL;
  gint64 pid = 0;

  if (!c)
    return 0;
  if (!fd_groups || fd_groups->len == 0) {
    /* a transient domain from the start */
    dom = virDomainCreateXML(c, xml, 0);
    if (!dom) {
      libvirt_set_error(error, "cannot start the domain", s->id);
      goto out;
    }
  } else {
    /* The disks' fds go with the domain (virDomainFDAssociate), which
     * needs the domain first: defined, fds associated, started, then
     * undefined, so that it is transient while it runs. A crash in
     * between leaves a definition that reconciliation removes. */
    dom = virDomainDefineXML(c, xml);
    if (!dom) {
      libvirt_set_error(error, "cannot define the domain", s->id);
      goto out;
    }
    for (guint i = 0; i < fd_groups->len; i++) {
      VfdFdGroup *g = g_ptr_array_index(fd_groups, i);
      if (virDomainFDAssociate(dom, g->name, g->fds->len, (int *) (void *) g->fds->data, 0) < 0) {
        libvirt_set_error(error, "cannot hand over the disks' fds", s->id);
        virDomainUndefine(dom);
        goto out;
      }
    }
    if (virDomainCreate(dom) < 0) {
      libvirt_set_error(error, "cannot start the domain", s->id);
      virDomainUndefine(dom);
      goto out;
    }
    if (virDomainUndefine(dom) < 0)
      g_warning("sandbox %s: libvirt: the domain stays defined after it stops: %s", s->id, last_error());
  }
  /* Its QEMU, found by libvirt's pidfile and checked by its command line
   * (the guest kernel's vfiod.sandbox=<id>). */
  pidfile = g_strdup_printf(LIBVIRT_QEMU_RUN_DIR "/%s.pid", s->id);
  pid = vfd_qemu_find_pid(pidfile, s->id);
  if (pid <= 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "sandbox %s: libvirt started the domain, but its QEMU is not a process of this host (%s)", s->id,
                pidfile);
    virDomainDestroy(dom);
    pid = 0;
  }
out:
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return pid;
}

gboolean
vfd_mgr_libvirt_shutdown(VfdManager *m, Sandbox *s, GError **error)
{
  g_autoptr(GError) local = NULL;
  virConnectPtr c = conn_get(m, error);
  virDomainPtr dom;
  unsigned int keys[] = { KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE };
  gboolean ok;

  if (!c)
    return FALSE;
  dom = our_domain(c, s->id);
  ok = dom && virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0;
  if (!ok)
    libvirt_set_error(error, "cannot ask the guest to power off", s->id);
  /* guest-init powers off on Ctrl-Alt-Del too (no ACPI button driver
   * needed), as with the qemu backend */
  if (ok)
    virDomainSendKey(dom, VIR_KEYCODE_SET_LINUX, 0, keys, G_N_ELEMENTS(keys), 0);
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return ok;
}

gboolean
vfd_mgr_libvirt_destroy(VfdManager *m, Sandbox *s, gboolean graceful, GError **error)
{
  virConnectPtr c = conn_get(m, error);
  virDomainPtr dom;
  gboolean ok;

  if (!c)
    return FALSE;
  dom = our_domain(c, s->id);
  ok = dom && virDomainDestroyFlags(dom, graceful ? VIR_DOMAIN_DESTROY_GRACEFUL : 0) == 0;
  if (!ok)
    libvirt_set_error(error, "cannot stop the domain", s->id);
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return ok;
}

/* ---- reconciliation (main thread, start-up) -------------------------------- */

const char *
vfd_mgr_libvirt_forget(VfdManager *m, const char *id)
{
  virConnectPtr c = conn_get(m, NULL);
  virDomainPtr dom;
  const char *what = NULL;

  if (!c)
    return NULL;
  dom = our_domain(c, id);
  if (dom) {
    if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) == 0)
      what = "destroyed its libvirt domain";
    if (virDomainIsPersistent(dom) == 1 && virDomainUndefine(dom) == 0)
      what = what ? "destroyed and undefined its libvirt domain" : "undefined its libvirt domain";
    virDomainFree(dom);
  }
  virConnectClose(c);
  return what;
}

gboolean
vfd_mgr_libvirt_has_domain(VfdManager *m, const char *id)
{
  virConnectPtr c = conn_get(m, NULL);
  virDomainPtr dom;
  gboolean found;

  if (!c)
    return FALSE;
  dom = our_domain(c, id);
  found = dom && virDomainIsActive(dom) == 1;
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return found;
}

void
vfd_mgr_libvirt_reconcile(VfdManager *m, GHashTable *live, GPtrArray *report, gboolean act)
{
  virConnectPtr c;
  virDomainPtr *doms = NULL;
  int n;

  if (!m->config->vm_libvirt)
    return;
  if (!(c = conn_get(m, NULL))) {
    vfd_reconcile_add(report, "libvirt", "unknown", "libvirt at %s is not reachable: its domains were not checked",
                      m->config->libvirt_uri);
    return;
  }
  n = virConnectListAllDomains(c, &doms, 0);
  if (n < 0)
    vfd_reconcile_add(report, "libvirt", "failed", "cannot list libvirt's domains: %s", last_error());
  for (int i = 0; i < n; i++) {
    const char *name = virDomainGetName(doms[i]);
    char *meta = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, VFD_LIBVIRT_XMLNS, 0);
    gboolean ours = meta != NULL;

    free(meta);
    if (ours && name && !g_hash_table_contains(live, name)) {
      /* a domain of a sandbox vfiod does not run: the start-up destroys
       * it (nothing is creating then); the Reconcile call reports it */
      if (act) {
        const char *what = vfd_mgr_libvirt_forget(m, name);
        vfd_reconcile_add(report, name, what ? "restored" : "failed", "a libvirt domain of vfiod's that no sandbox "
                          "names: %s", what ? what : "cannot destroy it");
      } else {
        vfd_reconcile_add(report, name, "unknown", "a libvirt domain of vfiod's that no sandbox names (the next "
                          "start-up destroys it)");
      }
    } else if (virDomainIsActive(doms[i]) == 1) {
      /* every PCI function a running domain has that vfiod did not bind
       * for it: libvirt (managed='yes') or someone else moved it */
      char *xml = virDomainGetXMLDesc(doms[i], 0);
      g_autoptr(GArray) managed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
      g_autoptr(GArray) unmanaged = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

      vfd_libvirt_domain_hostdevs(xml, managed, unmanaged);
      free(xml);
      for (guint k = 0; k < managed->len + unmanaged->len; k++) {
        gboolean is_managed = k < managed->len;
        const VfdBdf *b = is_managed ? &g_array_index(managed, VfdBdf, k)
                                     : &g_array_index(unmanaged, VfdBdf, k - managed->len);
        VfdJournalDevice *jd;
        gboolean bound_for_it;
        char bdf[VFD_BDF_STRLEN];

        vfd_host_lock_journal(m->host);
        jd = vfd_journal_lookup(vfd_host_journal(m->host), b);
        bound_for_it = jd && name && g_str_equal(jd->owner, name);
        vfd_host_unlock_journal(m->host);
        if (!bound_for_it)
          vfd_reconcile_add(report, vfd_bdf_format(b, bdf), "in-use",
                            "libvirt domain '%s' has it (<hostdev managed='%s'>), but vfiod did not bind it for "
                            "that domain%s",
                            name ? name : "?", is_managed ? "yes" : "no",
                            is_managed ? ": libvirt moves it between drivers itself, under vfiod's bindings" : "");
      }
    }
    virDomainFree(doms[i]);
  }
  free(doms);
  virConnectClose(c);
}
