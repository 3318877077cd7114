/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "reconcile.h"

#include <stdarg.h>

#include "error.h"
#include "variant.h"

void
vfd_reconcile_item_free(VfdReconcileItem *item)
{
  if (!item)
    return;
  g_free(item->subject);
  g_free(item->action);
  g_free(item->detail);
  g_free(item);
}

GPtrArray *
vfd_reconcile_report_new(void)
{
  return g_ptr_array_new_with_free_func((GDestroyNotify) vfd_reconcile_item_free);
}

void
vfd_reconcile_add(GPtrArray *report, const char *subject, const char *action, const char *fmt, ...)
{
  VfdReconcileItem *item = g_new0(VfdReconcileItem, 1);
  va_list ap;

  item->subject = g_strdup(subject);
  item->action = g_strdup(action);
  va_start(ap, fmt);
  item->detail = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_ptr_array_add(report, item);
}

/* A copy of what the journal says about one device. */
typedef struct {
  VfdBdf bdf;
  int group;
  VfdDeviceState state;
  char *owner;
} Snap;

static void
snap_clear(gpointer p)
{
  g_free(((Snap *) p)->owner);
}

static void
restore(VfdHost *host, const Snap *d, const char *ok_action, const char *why, GPtrArray *report)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) members = NULL;
  g_autoptr(GPtrArray) notes = NULL;
  g_autoptr(GString) noted = g_string_new(NULL);
  char b[VFD_BDF_STRLEN];
  gboolean ok;

  vfd_bdf_format(&d->bdf, b);
  ok = vfd_host_release_group_full(host, &d->bdf, NULL, &members, &notes, &error);
  /* What the release skipped (e.g. a reset with no method), said once. */
  for (guint i = 0; notes && i < notes->len; i++)
    g_string_append_printf(noted, " (%s)", (const char *) g_ptr_array_index(notes, i));
  if (!ok) {
    vfd_reconcile_add(report, b, g_error_matches(error, VFD_ERROR, VFD_ERROR_STUCK) ? "stuck" : "failed",
                      "%s, but restoring it failed: %s%s", why, error->message, noted->str);
    return;
  }
  for (guint i = 0; i < members->len; i++) {
    char m[VFD_BDF_STRLEN];
    vfd_reconcile_add(report, vfd_bdf_format(&g_array_index(members, VfdBdf, i), m), ok_action,
                      "%s; back on its original driver%s", why, i == 0 ? noted->str : "");
  }
}

void
vfd_reconcile_devices(VfdHost *host, GHashTable *live_sandboxes, GPtrArray *report, gint64 *ret_scan_us)
{
  gint64 t_scan;
  g_autoptr(GArray) snaps = g_array_new(FALSE, TRUE, sizeof(Snap));
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devs = NULL;
  GPtrArray *all;

  g_array_set_clear_func(snaps, snap_clear);
  vfd_host_lock_journal(host);
  all = vfd_journal_devices(vfd_host_journal(host));
  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    Snap s = { .bdf = d->bdf, .group = d->iommu_group, .state = d->state, .owner = g_strdup(d->owner) };
    g_array_append_val(snaps, s);
  }
  vfd_host_unlock_journal(host);

  for (guint i = 0; i < snaps->len; i++) {
    const Snap *d = &g_array_index(snaps, Snap, i);
    g_autoptr(VfdGroupLock) lock = vfd_host_lock_groups(host, &d->group, 1);
    VfdJournalDevice *now;
    VfdDeviceState state;
    char b[VFD_BDF_STRLEN];
    gboolean journaled;

    /* Re-read under the group lock: an operation may have settled it. */
    vfd_host_lock_journal(host);
    now = vfd_journal_lookup(vfd_host_journal(host), &d->bdf);
    journaled = now != NULL;
    state = now ? now->state : VFD_DEVICE_STATE_HOST;
    vfd_host_unlock_journal(host);
    if (!journaled)
      continue; /* released with an earlier member of its group, or by an operation */
    vfd_bdf_format(&d->bdf, b);

    switch (state) {
    case VFD_DEVICE_STATE_STUCK:
      vfd_reconcile_add(report, b, "stuck",
                        "a sysfs write to it never returned; left alone until an operator acts (reboot, or "
                        "check what holds the device)");
      break;
    case VFD_DEVICE_STATE_BINDING:
    case VFD_DEVICE_STATE_RELEASING:
      restore(host, d, "finished",
              state == VFD_DEVICE_STATE_BINDING ? "a bind was cut short" : "a release was cut short", report);
      break;
    case VFD_DEVICE_STATE_BOUND:
      if (g_str_has_prefix(d->owner, "sb-") && !g_hash_table_contains(live_sandboxes, d->owner)) {
        g_autofree char *why = g_strdup_printf("its sandbox %s is gone", d->owner);
        restore(host, d, "restored", why, report);
      } else if (g_str_has_prefix(d->owner, "sb-")) {
        vfd_reconcile_add(report, b, "in-use", "passed through to running sandbox %s", d->owner);
      } else if (g_str_equal(d->owner, "pool")) {
        /* The pool's: vfd_pool_apply() checks and reports it. */
      } else {
        vfd_reconcile_add(report, b, "kept", "bound to vfio-pci for '%s'", d->owner);
      }
      break;
    case VFD_DEVICE_STATE_HOST:
      break;
    }
  }

  /* Devices on vfio-pci that the journal does not know: someone else's. */
  t_scan = g_get_monotonic_time();
  devs = vfd_host_enumerate(host, &error);
  if (ret_scan_us)
    *ret_scan_us = g_get_monotonic_time() - t_scan;
  if (!devs) {
    vfd_reconcile_add(report, "-", "failed", "cannot enumerate PCI devices: %s", error->message);
    return;
  }
  vfd_host_lock_journal(host);
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    char b[VFD_BDF_STRLEN];
    if (vfd_is_vfio_driver(d->driver) && !vfd_journal_lookup(vfd_host_journal(host), &d->bdf))
      vfd_reconcile_add(report, vfd_bdf_format(&d->bdf, b), "unknown",
                        "on vfio-pci but not bound by vfiod; left alone");
  }
  vfd_host_unlock_journal(host);
}

gboolean
vfd_reconcile_check_sandbox_dir(const char *sandboxes_dir, const char *id, const char *dir, GError **error)
{
  g_autofree char *expected = NULL;

  if (!vfd_journal_sandbox_id_valid(id)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a sandbox id", id ? id : "");
    return FALSE;
  }
  expected = g_build_filename(sandboxes_dir, id, NULL);
  if (g_strcmp0(dir, expected) != 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "the journal names directory '%s' for sandbox %s, not '%s'", dir ? dir : "", id, expected);
    return FALSE;
  }
  return TRUE;
}
