/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiod-libvirt.so: the libvirt backend's calls into libvirt
 * (libvirt-module.h). GLib and libvirt only. */
#include <gmodule.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <linux/input-event-codes.h>
#include <stdlib.h>

#include "libvirt-module.h"

struct VfdLibvirt {
  GMutex lock;
  char *uri;
  virConnectPtr conn; /* NULL while not connected */
  int callback;       /* lifecycle event callback id, -1: none */
  void (*on_stopped)(const char *name, int detail, gpointer data);
  void (*on_closed)(gpointer data);
  gpointer data;
};

static const char *
last_error(void)
{
  virErrorPtr e = virGetLastError();

  return e && e->message ? e->message : "unknown libvirt error";
}

static void
set_error(char **error, const char *what)
{
  if (error)
    *error = g_strdup_printf("%s: %s", what, last_error());
}

/* libvirt prints its errors to stderr unless told otherwise; vfiod says
 * what failed itself. */
static void
quiet_errors(void *data, virErrorPtr e)
{
}

/* A new reference to the connection, or NULL (closed) with *@error. */
static virConnectPtr
conn_ref(VfdLibvirt *lv, char **error)
{
  virConnectPtr c;

  g_mutex_lock(&lv->lock);
  c = lv->conn;
  if (c)
    virConnectRef(c);
  g_mutex_unlock(&lv->lock);
  if (!c && error)
    *error = g_strdup_printf("not connected to %s (vfiod reconnects by itself)", lv->uri);
  return c;
}

/* Domain @name when it carries vfiod's metadata; NULL otherwise. */
static virDomainPtr
our_domain(virConnectPtr c, const char *name)
{
  virDomainPtr dom = virDomainLookupByName(c, name);
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

static int
on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *data)
{
  VfdLibvirt *lv = data;
  const char *name = virDomainGetName(dom);

  if (event == VIR_DOMAIN_EVENT_STOPPED && name && lv->on_stopped)
    lv->on_stopped(name, detail, lv->data);
  return 0;
}

static void
on_close(virConnectPtr c, int reason, void *data)
{
  VfdLibvirt *lv = data;

  if (lv->on_closed)
    lv->on_closed(lv->data);
}

static VfdLibvirt *
lv_new(const char *uri, void (*on_stopped)(const char *name, int detail, gpointer data),
       void (*on_closed)(gpointer data), gpointer data)
{
  static gsize once;
  VfdLibvirt *lv;

  if (g_once_init_enter(&once)) {
    virSetErrorFunc(NULL, quiet_errors);
    gvir_event_register();
    g_once_init_leave(&once, 1);
  }
  lv = g_new0(VfdLibvirt, 1);
  g_mutex_init(&lv->lock);
  lv->uri = g_strdup(uri);
  lv->callback = -1;
  lv->on_stopped = on_stopped;
  lv->on_closed = on_closed;
  lv->data = data;
  return lv;
}

static gboolean
lv_connect(VfdLibvirt *lv, char **error)
{
  virConnectPtr c;
  int callback;

  g_mutex_lock(&lv->lock);
  c = lv->conn;
  g_mutex_unlock(&lv->lock);
  if (c)
    return TRUE;
  c = virConnectOpen(lv->uri);
  if (!c) {
    set_error(error, "cannot connect");
    return FALSE;
  }
  /* a dead daemon is noticed within about 15 s even without traffic */
  virConnectSetKeepAlive(c, 5, 3);
  virConnectRegisterCloseCallback(c, on_close, lv, NULL);
  callback = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), lv, NULL);
  if (callback < 0)
    g_warning("libvirt: no lifecycle events (%s); QEMU's end is still seen by its pid", last_error());
  g_mutex_lock(&lv->lock);
  lv->conn = c;
  lv->callback = callback;
  g_mutex_unlock(&lv->lock);
  return TRUE;
}

static void
lv_disconnect(VfdLibvirt *lv)
{
  virConnectPtr c;
  int callback;

  g_mutex_lock(&lv->lock);
  c = lv->conn;
  callback = lv->callback;
  lv->conn = NULL;
  lv->callback = -1;
  g_mutex_unlock(&lv->lock);
  if (c) {
    if (callback >= 0)
      virConnectDomainEventDeregisterAny(c, callback);
    virConnectUnregisterCloseCallback(c, on_close);
    virConnectClose(c); /* workers' references keep it until they are done */
  }
}

static void
lv_free(VfdLibvirt *lv)
{
  if (!lv)
    return;
  lv_disconnect(lv);
  g_mutex_clear(&lv->lock);
  g_free(lv->uri);
  g_free(lv);
}

static char *
lv_version(VfdLibvirt *lv)
{
  virConnectPtr c = conn_ref(lv, NULL);
  unsigned long v = 0;

  if (c) {
    virConnectGetLibVersion(c, &v);
    virConnectClose(c);
  }
  return g_strdup_printf("%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

static gboolean
lv_create(VfdLibvirt *lv, const char *xml, const VfdLibvirtFdGroup *groups, guint n_groups, char **error)
{
  virConnectPtr c = conn_ref(lv, error);
  virDomainPtr dom = NULL;
  gboolean ok = FALSE;

  if (!c)
    return FALSE;
  if (n_groups == 0) {
    dom = virDomainCreateXML(c, xml, 0);
    if (!dom)
      set_error(error, "cannot start the domain");
    ok = dom != NULL;
    goto out;
  }
  /* The fds go with the domain (virDomainFDAssociate), which needs the
   * domain first: defined, fds associated, started, undefined. A crash in
   * between leaves a definition vfiod's start-up removes. */
  dom = virDomainDefineXML(c, xml);
  if (!dom) {
    set_error(error, "cannot define the domain");
    goto out;
  }
  for (guint i = 0; i < n_groups; i++)
    if (virDomainFDAssociate(dom, groups[i].name, groups[i].n_fds, (int *) groups[i].fds, 0) < 0) {
      set_error(error, "cannot hand over the disks' fds");
      virDomainUndefine(dom);
      goto out;
    }
  if (virDomainCreate(dom) < 0) {
    set_error(error, "cannot start the domain");
    virDomainUndefine(dom);
    goto out;
  }
  ok = TRUE;
  if (virDomainUndefine(dom) < 0)
    g_warning("libvirt: domain %s stays defined after it stops: %s", virDomainGetName(dom), last_error());
out:
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return ok;
}

static gboolean
lv_shutdown(VfdLibvirt *lv, const char *name, char **error)
{
  virConnectPtr c = conn_ref(lv, error);
  virDomainPtr dom;
  unsigned int keys[] = { KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE };
  gboolean ok;

  if (!c)
    return FALSE;
  dom = our_domain(c, name);
  /* the ACPI power button; a driver without that method: its default */
  ok = dom && (virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0 || virDomainShutdown(dom) == 0);
  if (!ok)
    set_error(error, "cannot ask the guest to power off");
  else /* guest-init powers off on Ctrl-Alt-Del too (no ACPI button driver needed) */
    virDomainSendKey(dom, VIR_KEYCODE_SET_LINUX, 0, keys, G_N_ELEMENTS(keys), 0);
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return ok;
}

static gboolean
lv_destroy(VfdLibvirt *lv, const char *name, gboolean graceful, char **error)
{
  virConnectPtr c = conn_ref(lv, error);
  virDomainPtr dom;
  gboolean ok;

  if (!c)
    return FALSE;
  dom = our_domain(c, name);
  ok = dom && virDomainDestroyFlags(dom, graceful ? VIR_DOMAIN_DESTROY_GRACEFUL : 0) == 0;
  if (!ok)
    set_error(error, "cannot stop the domain");
  if (dom)
    virDomainFree(dom);
  virConnectClose(c);
  return ok;
}

static int
lv_state(VfdLibvirt *lv, const char *name)
{
  virConnectPtr c = conn_ref(lv, NULL);
  virDomainPtr dom;
  int state = -1;

  if (!c)
    return -1;
  dom = our_domain(c, name);
  if (dom) {
    state = virDomainIsActive(dom) == 1 ? 1 : 0;
    virDomainFree(dom);
  }
  virConnectClose(c);
  return state;
}

static const char *
lv_forget(VfdLibvirt *lv, const char *name)
{
  virConnectPtr c = conn_ref(lv, NULL);
  virDomainPtr dom;
  gboolean destroyed = FALSE, undefined = FALSE;

  if (!c)
    return NULL;
  dom = our_domain(c, name);
  if (dom) {
    destroyed = virDomainIsActive(dom) == 1 && virDomainDestroy(dom) == 0;
    undefined = virDomainIsPersistent(dom) == 1 && virDomainUndefine(dom) == 0;
    virDomainFree(dom);
  }
  virConnectClose(c);
  return destroyed && undefined ? "destroyed and undefined its libvirt domain"
         : destroyed            ? "destroyed its libvirt domain"
         : undefined            ? "undefined its libvirt domain"
                                : NULL;
}

static void
domain_info_free(gpointer p)
{
  VfdLibvirtDomainInfo *i = p;

  g_free(i->name);
  g_free(i->xml);
  g_free(i);
}

static GPtrArray *
lv_list(VfdLibvirt *lv, char **error)
{
  virConnectPtr c = conn_ref(lv, error);
  virDomainPtr *doms = NULL;
  GPtrArray *out;
  int n;

  if (!c)
    return NULL;
  n = virConnectListAllDomains(c, &doms, 0);
  if (n < 0) {
    set_error(error, "cannot list the domains");
    virConnectClose(c);
    return NULL;
  }
  out = g_ptr_array_new_with_free_func(domain_info_free);
  for (int i = 0; i < n; i++) {
    VfdLibvirtDomainInfo *info = g_new0(VfdLibvirtDomainInfo, 1);
    char *meta = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, VFD_LIBVIRT_XMLNS, 0);

    info->name = g_strdup(virDomainGetName(doms[i]));
    info->ours = meta != NULL;
    free(meta);
    info->active = virDomainIsActive(doms[i]) == 1;
    if (info->active) {
      char *xml = virDomainGetXMLDesc(doms[i], 0);
      info->xml = g_strdup(xml);
      free(xml);
    }
    g_ptr_array_add(out, info);
    virDomainFree(doms[i]);
  }
  free(doms);
  virConnectClose(c);
  return out;
}

G_MODULE_EXPORT const VfdLibvirtOps vfd_libvirt_module_ops = {
  .abi = VFD_LIBVIRT_MODULE_ABI,
  .new = lv_new,
  .connect = lv_connect,
  .disconnect = lv_disconnect,
  .free = lv_free,
  .version = lv_version,
  .create = lv_create,
  .shutdown = lv_shutdown,
  .destroy = lv_destroy,
  .state = lv_state,
  .forget = lv_forget,
  .list = lv_list,
};
