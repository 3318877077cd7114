/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device units for sandboxes asking for N devices: the free assignable
 * IOMMU groups, picked NUMA-local, and reserved until bound. */
#include "device-private.h"

#include "error.h"
#include "variant.h"

typedef struct {
  VfdBdf bdf; /* lowest member */
  int group;
  int numa;
} Unit;

static gint
unit_cmp(gconstpointer a, gconstpointer b)
{
  return vfd_bdf_compare(&((const Unit *) a)->bdf, &((const Unit *) b)->bdf);
}

/* The free assignable units (see vfd_host_select_units) among @devs
 * (sorted by BDF), sorted by BDF; groups in @skip (may be NULL) are not
 * free. */
static GArray *
collect_units_in(VfdHost *host, GPtrArray *devs, GHashTable *skip)
{
  g_autoptr(GHashTable) bad = g_hash_table_new(g_direct_hash, g_direct_equal); /* groups not assignable */
  g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GArray) units = g_array_new(FALSE, FALSE, sizeof(Unit));
  g_autoptr(VfdPolicy) policy = NULL;

  policy = vfd_host_dup_policy(host);
  vfd_host_lock_journal(host);
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code))
      continue;
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &d->bdf);
    if (vfd_policy_refusal(policy, d->vendor, d->device, d->class_code, d->boot_vga) ||
        (jd && !vfd_host_lendable(host, jd)) || (!jd && vfd_is_vfio_driver(d->driver)))
      g_hash_table_add(bad, GINT_TO_POINTER(d->iommu_group));
  }
  vfd_host_unlock_journal(host);
  /* devs is sorted by BDF: the first member seen names the group. */
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    Unit u = { .bdf = d->bdf, .group = d->iommu_group, .numa = d->numa_node };
    /* An NVSwitch is not a device a sandbox asks for by count: it comes
     * with all the GPUs of its HGX board. */
    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code) || vfd_pci_is_nvswitch(d->vendor, d->class_code) ||
        g_hash_table_contains(bad, GINT_TO_POINTER(d->iommu_group)) ||
        (skip && g_hash_table_contains(skip, GINT_TO_POINTER(d->iommu_group))) ||
        g_hash_table_contains(seen, GINT_TO_POINTER(d->iommu_group)))
      continue;
    g_hash_table_add(seen, GINT_TO_POINTER(d->iommu_group));
    g_array_append_val(units, u);
  }
  g_array_sort(units, unit_cmp);
  return g_steal_pointer(&units);
}

/* collect_units_in() over a fresh enumeration; NULL with @error when that
 * fails. */
static GArray *
collect_units(VfdHost *host, GHashTable *skip, GError **error)
{
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(host, error);

  return devs ? collect_units_in(host, devs, skip) : NULL;
}

guint
vfd_host_count_free_units_in(VfdHost *host, GPtrArray *devs)
{
  g_autoptr(GArray) units = NULL;

  g_mutex_lock(&host->reserve_lock);
  units = collect_units_in(host, devs, host->reserved);
  g_mutex_unlock(&host->reserve_lock);
  return units->len;
}

int
vfd_host_count_free_units(VfdHost *host, GError **error)
{
  g_autoptr(GArray) units = NULL;

  g_mutex_lock(&host->reserve_lock);
  units = collect_units(host, host->reserved, error);
  g_mutex_unlock(&host->reserve_lock);
  return units ? (int) units->len : -1;
}

/* vfd_host_select_units() over the units not in @skip; *@ret_groups (may be
 * NULL): the picked units' IOMMU groups. */
static gboolean
select_units(VfdHost *host, GHashTable *skip, guint n, GArray **ret_bdfs, GArray **ret_groups, int *ret_numa_node,
             GError **error)
{
  g_autoptr(GArray) units = collect_units(host, skip, error);
  g_autoptr(GArray) picked = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  int node = -1;

  if (!units)
    return FALSE;
  if (n == 0 || units->len < n) {
    g_set_error(error, VFD_ERROR, n == 0 ? VFD_ERROR_INVALID_ARGUMENT : VFD_ERROR_BUSY,
                "asked for %u device(s), %u free (an IOMMU group counts once; see vfioctl list)", n, units->len);
    return FALSE;
  }
  /* The lowest NUMA node with enough units, if any. */
  {
    g_autoptr(GHashTable) per_node = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (guint i = 0; i < units->len; i++) {
      int nd = g_array_index(units, Unit, i).numa;
      guint c = GPOINTER_TO_UINT(g_hash_table_lookup(per_node, GINT_TO_POINTER(nd))) + 1;
      g_hash_table_insert(per_node, GINT_TO_POINTER(nd), GUINT_TO_POINTER(c));
      if (nd >= 0 && c >= n && (node < 0 || nd < node))
        node = nd;
    }
  }
  for (guint i = 0; i < units->len && picked->len < n; i++) {
    Unit *u = &g_array_index(units, Unit, i);
    if (node < 0 || u->numa == node) {
      g_array_append_val(picked, u->bdf);
      g_array_append_val(groups, u->group);
    }
  }
  if (ret_numa_node)
    *ret_numa_node = node;
  *ret_bdfs = g_steal_pointer(&picked);
  if (ret_groups)
    *ret_groups = g_steal_pointer(&groups);
  return TRUE;
}

gboolean
vfd_host_select_units(VfdHost *host, guint n, GArray **ret_bdfs, int *ret_numa_node, GError **error)
{
  gboolean ok;

  g_mutex_lock(&host->reserve_lock);
  ok = select_units(host, host->reserved, n, ret_bdfs, NULL, ret_numa_node, error);
  g_mutex_unlock(&host->reserve_lock);
  return ok;
}

gboolean
vfd_host_reserve_units(VfdHost *host, guint n, GArray **ret_bdfs, GArray **ret_groups, int *ret_numa_node,
                       GError **error)
{
  g_autoptr(GArray) groups = NULL;
  gboolean ok;

  g_mutex_lock(&host->reserve_lock);
  ok = select_units(host, host->reserved, n, ret_bdfs, &groups, ret_numa_node, error);
  for (guint i = 0; ok && i < groups->len; i++)
    g_hash_table_add(host->reserved, GINT_TO_POINTER(g_array_index(groups, int, i)));
  g_mutex_unlock(&host->reserve_lock);
  if (ok)
    *ret_groups = g_steal_pointer(&groups);
  return ok;
}

void
vfd_host_unreserve_units(VfdHost *host, GArray *groups)
{
  if (!groups)
    return;
  g_mutex_lock(&host->reserve_lock);
  for (guint i = 0; i < groups->len; i++)
    g_hash_table_remove(host->reserved, GINT_TO_POINTER(g_array_index(groups, int, i)));
  g_mutex_unlock(&host->reserve_lock);
}
