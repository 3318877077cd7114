/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host object of the device layer: its trees, policy, journal and
 * locks, and the pool's lending of bound groups to sandboxes. */
#include "device-private.h"

#include "variant.h"

struct VfdGroupLock {
  VfdHost *host;
  GArray *groups; /* int, ascending, each locked */
};

static void
rec_mutex_free(gpointer p)
{
  g_rec_mutex_clear(p);
  g_free(p);
}

VfdHost *
vfd_host_new(VfdSysfs *sysfs, VfdPolicy *policy, VfdJournal *journal)
{
  VfdHost *h = g_new0(VfdHost, 1);

  h->sysfs = sysfs;
  h->policy = policy;
  h->journal = journal;
  g_rec_mutex_init(&h->journal_lock);
  g_mutex_init(&h->table_lock);
  g_mutex_init(&h->reserve_lock);
  h->reserved = g_hash_table_new(g_direct_hash, g_direct_equal);
  h->group_locks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, rec_mutex_free);
  h->proc_root = g_strdup("/proc");
  h->nvidia_smi = g_strdup("nvidia-smi");
  g_mutex_init(&h->policy_lock);
  return h;
}

void
vfd_host_free(VfdHost *host)
{
  if (!host)
    return;
  vfd_sysfs_free(host->sysfs);
  vfd_policy_unref(host->policy);
  vfd_journal_free(host->journal);
  g_hash_table_unref(host->group_locks);
  g_free(host->proc_root);
  g_free(host->nvidia_smi);
  vfd_variant_free(host->variant);
  g_mutex_clear(&host->policy_lock);
  g_rec_mutex_clear(&host->journal_lock);
  g_mutex_clear(&host->table_lock);
  g_mutex_clear(&host->reserve_lock);
  g_hash_table_unref(host->reserved);
  g_free(host);
}

VfdSysfs *
vfd_host_sysfs(VfdHost *host)
{
  return host->sysfs;
}

VfdJournal *
vfd_host_journal(VfdHost *host)
{
  return host->journal;
}

const VfdPolicy *
vfd_host_policy(VfdHost *host)
{
  return host->policy;
}

VfdPolicy *
vfd_host_dup_policy(VfdHost *host)
{
  VfdPolicy *p;

  g_mutex_lock(&host->policy_lock);
  p = vfd_policy_ref(host->policy);
  g_mutex_unlock(&host->policy_lock);
  return p;
}

void
vfd_host_set_policy(VfdHost *host, VfdPolicy *policy)
{
  VfdPolicy *old;

  g_mutex_lock(&host->policy_lock);
  old = host->policy;
  host->policy = policy;
  g_mutex_unlock(&host->policy_lock);
  /* Freed now unless a worker still holds it (vfd_host_dup_policy()). */
  vfd_policy_unref(old);
}

void
vfd_host_set_pool_lending(VfdHost *host, VfdPoolMemberFunc fn, void *data)
{
  host->pool_member = fn;
  host->pool_member_data = data;
}

/* A record the pool may lend: bound for "pool", lending on. */
bool
vfd_host_lendable(VfdHost *host, const VfdJournalDevice *jd)
{
  return host->pool_member && jd && jd->state == VFD_DEVICE_STATE_BOUND && g_str_equal(jd->owner, "pool");
}

/* Gives the records of IOMMU group @group to @owner/@uid (journal lock
 * held), durably; on failure the old owners stay. */
gboolean
vfd_host_hand_over_locked(VfdHost *host, int group, const char *owner, guint32 uid, GError **error)
{
  GPtrArray *all = vfd_journal_devices(host->journal);
  g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GArray) bdfs = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));

  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    if (d->iommu_group != group)
      continue;
    g_array_append_val(bdfs, d->bdf);
    g_array_append_val(uids, d->owner_uid);
    g_ptr_array_add(old, g_strdup(d->owner));
  }
  for (guint i = 0; i < bdfs->len; i++) {
    VfdJournalDevice *d = vfd_journal_lookup(host->journal, &g_array_index(bdfs, VfdBdf, i));
    g_free(d->owner);
    d->owner = g_strdup(owner);
    d->owner_uid = uid;
  }
  if (vfd_journal_commit(host->journal, error))
    return TRUE;
  for (guint i = 0; i < bdfs->len; i++) {
    VfdJournalDevice *d = vfd_journal_lookup(host->journal, &g_array_index(bdfs, VfdBdf, i));
    g_free(d->owner);
    d->owner = g_strdup(g_ptr_array_index(old, i));
    d->owner_uid = g_array_index(uids, guint32, i);
  }
  return FALSE;
}

VfdVariant *
vfd_host_variant(VfdHost *host)
{
  return host->variant;
}

void
vfd_host_set_variant(VfdHost *host, VfdVariant *variant)
{
  vfd_variant_free(host->variant);
  host->variant = variant;
}

void
vfd_host_set_proc_root(VfdHost *host, const char *proc_root)
{
  g_free(host->proc_root);
  host->proc_root = g_strdup(proc_root);
}

void
vfd_host_set_nvidia_smi(VfdHost *host, const char *nvidia_smi)
{
  g_free(host->nvidia_smi);
  host->nvidia_smi = g_strdup(nvidia_smi);
}

void
vfd_host_set_reset_policy(VfdHost *host, VfdResetPolicy policy)
{
  host->reset_policy = policy;
}

void
vfd_host_set_reset_on_release(VfdHost *host, bool reset)
{
  host->reset_policy = reset ? VFD_RESET_ALWAYS : VFD_RESET_NEVER;
}

void
vfd_host_lock_journal(VfdHost *host)
{
  g_rec_mutex_lock(&host->journal_lock);
}

void
vfd_host_unlock_journal(VfdHost *host)
{
  g_rec_mutex_unlock(&host->journal_lock);
}

static GRecMutex *
group_mutex(VfdHost *host, int group)
{
  GRecMutex *m;

  g_mutex_lock(&host->table_lock);
  m = g_hash_table_lookup(host->group_locks, GINT_TO_POINTER(group));
  if (!m) {
    m = g_new0(GRecMutex, 1);
    g_rec_mutex_init(m);
    g_hash_table_insert(host->group_locks, GINT_TO_POINTER(group), m);
  }
  g_mutex_unlock(&host->table_lock);
  return m;
}

static gint
int_cmp(gconstpointer a, gconstpointer b)
{
  int x = *(const int *) a, y = *(const int *) b;
  return (x > y) - (x < y);
}

VfdGroupLock *
vfd_host_lock_groups(VfdHost *host, const int *groups, guint n_groups)
{
  VfdGroupLock *l = g_new0(VfdGroupLock, 1);

  l->host = host;
  l->groups = g_array_new(FALSE, FALSE, sizeof(int));
  for (guint i = 0; i < n_groups; i++)
    if (groups[i] >= 0)
      g_array_append_val(l->groups, groups[i]);
  g_array_sort(l->groups, int_cmp);
  /* drop duplicates, then lock in ascending order */
  for (guint i = 1; i < l->groups->len;)
    if (g_array_index(l->groups, int, i) == g_array_index(l->groups, int, i - 1))
      g_array_remove_index(l->groups, i);
    else
      i++;
  for (guint i = 0; i < l->groups->len; i++)
    g_rec_mutex_lock(group_mutex(host, g_array_index(l->groups, int, i)));
  return l;
}

void
vfd_group_lock_release(VfdGroupLock *lock)
{
  if (!lock)
    return;
  for (guint i = lock->groups->len; i-- > 0;)
    g_rec_mutex_unlock(group_mutex(lock->host, g_array_index(lock->groups, int, i)));
  g_array_unref(lock->groups);
  g_free(lock);
}
