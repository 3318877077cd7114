/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Group release: journal "releasing", restore each member (reset, original
 * driver), journal the result; one group, or a batch under one commit per
 * phase; a sandbox's lent group goes back to the pool. */
#include "device-private.h"

#include <errno.h>

#include "error.h"
#include "failpoint.h"

/* A release under way: what stage 1 found, what stage 2 did. */
typedef struct {
  int group;
  GArray *members;  /* Member, the group's journaled members (not the stuck ones) */
  GString *failed;  /* "; "-separated problems */
  int first_err;
  gboolean any_stuck;
} Release;

static void
release_clear(Release *rel)
{
  g_clear_pointer(&rel->members, g_array_unref);
  if (rel->failed)
    g_string_free(rel->failed, TRUE);
  rel->failed = NULL;
}

/* Stage 1 of a release, in memory: checks @bdf's record (owner, uid),
 * collects its group's members and journals them "releasing" (not
 * committed: the caller commits before stage 2). Holds the journal lock.
 * FALSE with @error (NOT_FOUND, BUSY, PERMISSION_DENIED): nothing changed. */
static gboolean
release_prepare_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, Release *rel,
                       GError **error)
{
  char name[VFD_BDF_STRLEN];
  VfdJournalDevice *jd;
  g_autofree char *group_owner = NULL;
  guint32 group_owner_uid;
  GPtrArray *all;

  vfd_bdf_format(bdf, name);
  jd = vfd_journal_lookup(host->journal, bdf);
  if (!jd) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s is not bound by vfiod", name);
    return FALSE;
  }
  if (owner && !g_str_equal(jd->owner, owner)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s is bound for '%s', not '%s'", name, jd->owner, owner);
    return FALSE;
  }
  if (owner_uid >= 0 && jd->owner_uid != (guint64) owner_uid) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "%s was bound for '%s' by uid %u; only that user or root may release it", name, jd->owner,
                (guint) jd->owner_uid);
    return FALSE;
  }
  rel->group = jd->iommu_group;
  rel->members = vfd_members_new();
  rel->failed = g_string_new(NULL);
  rel->first_err = 0;
  rel->any_stuck = FALSE;
  /* A copy: vfd_members_journal() below replaces the record jd points to. */
  group_owner = g_strdup(jd->owner);
  group_owner_uid = jd->owner_uid;
  jd = NULL;
  all = vfd_journal_devices(host->journal);
  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    Member m = { .bdf = d->bdf };
    if (d->iommu_group != rel->group)
      continue;
    if (d->state == VFD_DEVICE_STATE_STUCK) {
      g_string_append_printf(rel->failed, "%s%s is stuck", rel->failed->len ? "; " : "",
                             vfd_bdf_format(&d->bdf, m.name));
      rel->any_stuck = TRUE;
      continue;
    }
    vfd_bdf_format(&d->bdf, m.name);
    m.original_driver = g_strdup(d->original_driver);
    m.original_override = g_strdup(d->original_override);
    m.original_d3cold = g_strdup(d->original_d3cold);
    m.original_reset_method = g_strdup(d->original_reset_method);
    g_array_append_val(rel->members, m);
  }
  vfd_members_journal(host, rel->members, rel->group, VFD_DEVICE_STATE_RELEASING, group_owner, group_owner_uid);
  return TRUE;
}

/* Stage 2 of a release, after stage 1 is durable: restores each member,
 * reverse BDF order, going on past failures; updates the journal in memory
 * (record removed, or "stuck"); the caller commits. */
static void
release_apply(VfdHost *host, Release *rel, GPtrArray *notes)
{
  for (guint i = rel->members->len; i-- > 0;) {
    Member *m = &g_array_index(rel->members, Member, i);
    const char *step = NULL;
    int r = vfd_sysfs_device_exists(host->sysfs, &m->bdf) ? vfd_member_restore(host, m, true, notes, &step) : -ENODEV;

    vfd_host_lock_journal(host);
    if (r == -ENODEV && !step) {
      /* The device is gone (hot-unplugged): nothing left to restore. */
      vfd_journal_remove(host->journal, &m->bdf);
    } else if (r < 0) {
      g_autofree char *msg = vfd_member_step_message("restoring", m, step, r);
      g_string_append_printf(rel->failed, "%s%s", rel->failed->len ? "; " : "", msg);
      if (r == -ETIMEDOUT) {
        rel->any_stuck = TRUE;
        vfd_host_journal_set_state(host, &m->bdf, VFD_DEVICE_STATE_STUCK);
      }
      if (!rel->first_err)
        rel->first_err = r;
    } else {
      vfd_journal_remove(host->journal, &m->bdf);
    }
    vfd_host_unlock_journal(host);
  }
}

/* The outcome of a release whose stage 2 result is durable. */
static gboolean
release_result(Release *rel, GArray **ret_members, GError **error)
{
  if (rel->first_err || rel->any_stuck) {
    g_set_error(error, VFD_ERROR, rel->any_stuck ? VFD_ERROR_STUCK : VFD_ERROR_FAILED,
                "release of IOMMU group %d incomplete: %s", rel->group, rel->failed->str);
    return FALSE;
  }
  if (ret_members)
    *ret_members = vfd_members_bdfs(rel->members);
  return TRUE;
}

/* A group the pool lent to a sandbox ([pool] mode=sandboxes) goes back to
 * the pool when the sandbox releases it: handed over to owner "pool", still
 * on its VFIO driver, no sysfs write. Journal lock held. TRUE when @bdf is
 * such a case (*@ret_ok says how it went; a member given back with an
 * earlier one of its group needs nothing); FALSE: release it as usual
 * (also when the owner or uid do not match: release_prepare_locked() says
 * why). */
static gboolean
release_to_pool_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                       GPtrArray *notes, gboolean *ret_ok, GError **error)
{
  VfdJournalDevice *jd = vfd_journal_lookup(host->journal, bdf);
  g_autoptr(GArray) back = NULL;
  GPtrArray *recs;
  int group;

  if (!jd || !host->pool_member || jd->state != VFD_DEVICE_STATE_BOUND)
    return FALSE;
  if (owner && g_str_has_prefix(owner, "sb-") && g_str_equal(jd->owner, "pool")) {
    if (ret_members)
      *ret_members = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
    *ret_ok = TRUE;
    return TRUE;
  }
  if (!g_str_has_prefix(jd->owner, "sb-") || (owner && !g_str_equal(jd->owner, owner)) ||
      (owner_uid >= 0 && jd->owner_uid != (guint64) owner_uid) || !host->pool_member(host, bdf, host->pool_member_data))
    return FALSE;
  group = jd->iommu_group;
  back = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  recs = vfd_journal_devices(host->journal);
  for (guint i = 0; i < recs->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(recs, i);
    if (d->iommu_group == group)
      g_array_append_val(back, d->bdf);
  }
  *ret_ok = vfd_host_hand_over_locked(host, group, "pool", 0, error);
  if (*ret_ok && ret_members)
    *ret_members = g_steal_pointer(&back);
  if (*ret_ok && notes)
    g_ptr_array_add(notes, g_strdup_printf("IOMMU group %d went back to the pool, on its VFIO driver", group));
  return TRUE;
}

static gboolean
release_group_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                     GPtrArray *notes, GError **error)
{
  Release rel = { 0 };
  gboolean ok = FALSE;

  /* Stage 1: journal the transition, durably. */
  vfd_host_lock_journal(host);
  if (release_to_pool_locked(host, bdf, owner, owner_uid, ret_members, notes, &ok, error)) {
    vfd_host_unlock_journal(host);
    return ok;
  }
  if (!release_prepare_locked(host, bdf, owner, owner_uid, &rel, error) || !vfd_host_commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);

  /* Stage 2: restore each member. */
  release_apply(host, &rel, notes);

  /* Stage 3: journal the result. */
  vfd_host_lock_journal(host);
  if (!vfd_host_commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  ok = release_result(&rel, ret_members, error);
out:
  release_clear(&rel);
  return ok;
}

void
vfd_release_item_clear(VfdReleaseItem *item)
{
  g_clear_error(&item->error);
  g_clear_pointer(&item->members, g_array_unref);
  g_clear_pointer(&item->notes, g_ptr_array_unref);
}

gboolean
vfd_host_release_groups(VfdHost *host, VfdReleaseItem *items, guint n_items, GError **error)
{
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autofree Release *rels = g_new0(Release, n_items);
  g_autofree gboolean *prepared = g_new0(gboolean, n_items);
  VfdGroupLock *lock;
  gboolean ok = FALSE, any = FALSE;

  for (guint i = 0; i < n_items; i++) {
    items[i].done = FALSE;
    items[i].with_earlier = FALSE;
    vfd_release_item_clear(&items[i]);
    items[i].notes = g_ptr_array_new_with_free_func(g_free);
  }
  /* Every group's lock, in ascending order (vfd_host_lock_groups()). */
  vfd_host_lock_journal(host);
  for (guint i = 0; i < n_items; i++) {
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &items[i].bdf);
    if (jd)
      g_array_append_val(groups, jd->iommu_group);
  }
  vfd_host_unlock_journal(host);
  lock = vfd_host_lock_groups(host, (const int *) groups->data, groups->len);

  /* Phase 1: every group "releasing", one durable commit. */
  vfd_host_lock_journal(host);
  for (guint i = 0; i < n_items; i++) {
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &items[i].bdf);
    if (jd && g_hash_table_contains(seen, GINT_TO_POINTER(jd->iommu_group))) {
      items[i].with_earlier = TRUE; /* released with an earlier item of its group */
      continue;
    }
    if (!release_prepare_locked(host, &items[i].bdf, items[i].owner, -1, &rels[i], &items[i].error))
      continue;
    prepared[i] = TRUE;
    any = TRUE;
    g_hash_table_add(seen, GINT_TO_POINTER(rels[i].group));
  }
  if (!vfd_host_commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  vfd_failpoint("release batch: phase 1 (releasing) committed");
  if (!any) {
    ok = TRUE; /* nothing to release: every item says why */
    goto out;
  }

  /* Phase 2: the sysfs writes of every group; the journal in memory. */
  for (guint i = 0; i < n_items; i++)
    if (prepared[i])
      release_apply(host, &rels[i], items[i].notes);

  /* Phase 3: the results, one durable commit. */
  vfd_host_lock_journal(host);
  if (!vfd_host_commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  vfd_failpoint("release batch: phase 3 (results) committed");
  for (guint i = 0; i < n_items; i++)
    if (prepared[i])
      items[i].done = release_result(&rels[i], &items[i].members, &items[i].error);
  ok = TRUE;
out:
  for (guint i = 0; i < n_items; i++)
    release_clear(&rels[i]);
  vfd_group_lock_release(lock);
  return ok;
}

gboolean
vfd_host_release_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                            GPtrArray **ret_notes, GError **error)
{
  return vfd_host_release_group_as(host, bdf, owner, -1, ret_members, ret_notes, error);
}

gboolean
vfd_host_release_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                          GPtrArray **ret_notes, GError **error)
{
  g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
  VfdJournalDevice *jd;
  VfdGroupLock *lock;
  gboolean ok;
  int group;

  vfd_host_lock_journal(host);
  jd = vfd_journal_lookup(host->journal, bdf);
  group = jd ? jd->iommu_group : -1;
  vfd_host_unlock_journal(host);
  lock = vfd_host_lock_groups(host, &group, 1);
  ok = release_group_locked(host, bdf, owner, owner_uid, ret_members, notes, error);
  vfd_group_lock_release(lock);
  if (ret_notes)
    *ret_notes = g_steal_pointer(&notes);
  return ok;
}

gboolean
vfd_host_release_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                       GError **error)
{
  return vfd_host_release_group_full(host, bdf, owner, ret_members, NULL, error);
}
