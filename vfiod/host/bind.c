/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Group bind: the checks that change nothing (policy, owners, holders of
 * the GPU), then journal, bind each member, wait for the group node, and
 * roll back exactly what was done on failure. */
#include "device-private.h"

#include <errno.h>

#include "error.h"
#include "nvidia.h"
#include "variant.h"

static bool
vfio_driver_loaded(VfdHost *host)
{
  g_autofree char *p = g_build_filename(vfd_sysfs_root(host->sysfs), "bus", "pci", "drivers", VFD_VFIO_DRIVER, NULL);

  return g_file_test(p, G_FILE_TEST_IS_DIR);
}

/* Collects the non-bridge members of @group with their current state, and
 * checks them against policy. Changes nothing. */
static GArray *
collect_group(VfdHost *host, int group, GError **error)
{
  g_autoptr(GArray) bdfs = NULL;
  g_autoptr(GArray) members = vfd_members_new();
  g_autoptr(GString) refused = g_string_new(NULL);
  int r = vfd_sysfs_iommu_group_devices(host->sysfs, group, &bdfs);

  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot list IOMMU group %d: %s", group, g_strerror(-r));
    return NULL;
  }
  for (guint i = 0; i < bdfs->len; i++) {
    const VfdBdf *bdf = &g_array_index(bdfs, VfdBdf, i);
    g_autoptr(VfdPciDevice) dev = vfd_host_get_device(host, bdf, error);
    Member m = { .bdf = *bdf };

    if (!dev) {
      g_prefix_error(error, "IOMMU group %d: ", group);
      return NULL;
    }
    if (vfd_pci_class_is_bridge(dev->class_code))
      continue;
    vfd_bdf_format(bdf, m.name);
    /* A stuck member first: reading its attributes can block while the
     * kernel holds its device lock for the parked unbind. */
    {
      VfdJournalDevice *jd;
      gboolean stuck;
      vfd_host_lock_journal(host);
      jd = vfd_journal_lookup(host->journal, bdf);
      stuck = jd && jd->state == VFD_DEVICE_STATE_STUCK;
      vfd_host_unlock_journal(host);
      if (stuck) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_STUCK,
                    "%s is stuck (a sysfs write to it never returned); see vfioctl list", m.name);
        return NULL;
      }
    }
    {
      const char *why;
      g_autoptr(VfdPolicy) policy = vfd_host_dup_policy(host);

      /* dev->boot_vga was read just now by vfd_host_get_device() */
      why = vfd_policy_refusal(policy, dev->vendor, dev->device, dev->class_code, dev->boot_vga);
      if (why) {
        g_string_append_printf(refused, "%s%s (%04x:%04x, class %06x: %s)", refused->len ? ", " : "", m.name,
                               dev->vendor, dev->device, dev->class_code, why);
        continue;
      }
    }
    r = vfd_sysfs_read_attr(host->sysfs, bdf, "driver_override", &m.original_override);
    if (r < 0) {
      g_set_error(error, VFD_ERROR, vfd_error_from_errno(r), "cannot read driver_override of %s: %s", m.name,
                  g_strerror(-r));
      return NULL;
    }
    /* Power and reset while held (see vfd_member_bind()); an attribute that
     * cannot be read is left alone. */
    {
      g_autofree char *d3cold = NULL;
      g_autofree char *methods = NULL;
      if (vfd_sysfs_read_attr(host->sysfs, bdf, "d3cold_allowed", &d3cold) == 0 && g_str_equal(d3cold, "1"))
        m.original_d3cold = g_steal_pointer(&d3cold);
      if (vfd_pci_no_bus_reset(dev->vendor, dev->device) &&
          vfd_sysfs_read_attr(host->sysfs, bdf, "reset_method", &methods) == 0 && vfd_member_lists_bus_reset(methods)) {
        m.reset_method = vfd_member_without_bus_reset(methods);
        m.original_reset_method = g_steal_pointer(&methods);
      }
    }
    m.original_driver = g_steal_pointer(&dev->driver);
    g_array_append_val(members, m);
  }
  if (refused->len) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "IOMMU group %d contains %s, which vfiod may not take; "
                "the whole group must be bound together, so the bind is refused",
                group, refused->str);
    return NULL;
  }
  if (members->len == 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED, "IOMMU group %d has only bridges", group);
    return NULL;
  }
  return g_steal_pointer(&members);
}

/* The kernel creates /dev/vfio/<group> while vfio-pci binds; devtmpfs may
 * lag a little (its node is made by the kdevtmpfs thread). Waits up to
 * about 1 s, looking every 1 ms (issue 17: a 10 ms step added up to 10 ms
 * to every bind). */
static bool
wait_vfio_node(VfdHost *host, int group)
{
  gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;

  for (;;) {
    if (vfd_sysfs_vfio_group_exists(host->sysfs, group))
      return true;
    if (g_get_monotonic_time() >= end)
      return false;
    g_usleep(1000);
  }
}

/* Stage 0 of a bind: checks that change nothing. Returns the members, or
 * NULL with *@ret_done set when the group is already bound for @owner. */
/* Refuses members on the nvidia driver whose /dev/nvidia* node is open,
 * or that something else keeps busy (vfd_nvidia_find_hazards()). */
static gboolean
check_nvidia_holders(VfdHost *host, GArray *members, GError **error)
{
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    g_autoptr(GPtrArray) holders = NULL;
    g_autoptr(GPtrArray) hazards = NULL;
    g_autofree char *who = NULL;

    if (g_strcmp0(m->original_driver, "nvidia") != 0)
      continue;
    if (vfd_nvidia_find_hazards(vfd_sysfs_root(host->sysfs), host->proc_root, vfd_sysfs_dev_root(host->sysfs),
                                host->nvidia_smi, &m->bdf, &hazards) == 0 &&
        hazards->len > 0) {
      g_ptr_array_add(hazards, NULL);
      who = g_strjoinv("; ", (char **) hazards->pdata);
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                  "%s is in use: %s; unbinding nvidia now could block or take the GPU from under them. "
                  "Fix that first (or bind with --force)",
                  m->name, who);
      return FALSE;
    }
    if (vfd_nvidia_find_holders(host->proc_root, vfd_sysfs_dev_root(host->sysfs), &m->bdf, &holders) < 0 ||
        holders->len == 0)
      continue;
    who = vfd_nvidia_holders_describe(holders);
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                "%s is in use: %s hold%s %s open; unbinding nvidia now would block until they close it. "
                "Stop them first (or bind with --force)",
                m->name, who, holders->len == 1 ? "s" : "", ((VfdNvidiaHolder *) holders->pdata[0])->node);
    return FALSE;
  }
  return TRUE;
}

/* The checks of a bind of @group for @owner of @owner_uid; with @dry,
 * nothing changes: a group the pool would lend is not handed over, no
 * variant driver module is loaded. */
static GArray *
bind_checks(VfdHost *host, int group, const char *owner, guint32 owner_uid, VfdBindFlags flags, gboolean dry,
            gboolean *ret_done, GError **error)
{
  g_autoptr(GArray) members = collect_group(host, group, error);
  guint owned = 0, lent = 0;

  *ret_done = FALSE;
  if (!members)
    return NULL;
  vfd_host_lock_journal(host);
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &m->bdf);

    if (g_str_has_prefix(owner, "sb-") && vfd_host_lendable(host, jd)) {
      lent++; /* the pool lends it to a sandbox ([pool] mode=sandboxes) */
      continue;
    }

    if (jd && jd->state == VFD_DEVICE_STATE_BOUND && g_str_equal(jd->owner, owner) && jd->owner_uid == owner_uid) {
      owned++;
      continue;
    }
    if (jd && jd->owner_uid != owner_uid && g_str_equal(jd->owner, owner)) {
      /* The same owner name from another user is another owner. */
      g_set_error(error, VFD_ERROR, jd->state == VFD_DEVICE_STATE_STUCK ? VFD_ERROR_STUCK : VFD_ERROR_BUSY,
                  "%s is %s for '%s' of uid %u", m->name, vfd_device_state_to_string(jd->state), jd->owner,
                  (guint) jd->owner_uid);
      vfd_host_unlock_journal(host);
      return NULL;
    }
    if (jd) {
      g_set_error(error, VFD_ERROR, jd->state == VFD_DEVICE_STATE_STUCK ? VFD_ERROR_STUCK : VFD_ERROR_BUSY,
                  "%s is %s for '%s'", m->name, vfd_device_state_to_string(jd->state), jd->owner);
      vfd_host_unlock_journal(host);
      return NULL;
    }
    if (vfd_is_vfio_driver(m->original_driver)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                  "%s (IOMMU group %d) is already on vfio-pci but was not bound by vfiod; leaving it alone",
                  m->name, group);
      vfd_host_unlock_journal(host);
      return NULL;
    }
  }
  if (lent > 0 && lent == members->len) {
    gboolean ok = dry || vfd_host_hand_over_locked(host, group, owner, owner_uid, error);
    vfd_host_unlock_journal(host);
    if (!ok)
      return NULL;
    *ret_done = TRUE;
    return g_steal_pointer(&members);
  }
  vfd_host_unlock_journal(host);
  if (lent > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "IOMMU group %d is partly in the pool", group);
    return NULL;
  }
  if (owned == members->len) {
    *ret_done = TRUE;
    return g_steal_pointer(&members);
  }
  if (owned > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "IOMMU group %d is partly bound for '%s'", group, owner);
    return NULL;
  }
  if (!vfio_driver_loaded(host)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED, "the vfio-pci driver is not loaded (modprobe vfio-pci)");
    return NULL;
  }
  if (!dry && !vfd_members_choose_vfio_drivers(host, members, error))
    return NULL;
  if (!(flags & VFD_BIND_FORCE) && !check_nvidia_holders(host, members, error))
    return NULL;
  return g_steal_pointer(&members);
}

static gboolean
bind_group_locked(VfdHost *host, const VfdBdf *bdf, int group, const char *owner, guint32 owner_uid,
                  VfdBindFlags flags, GArray **ret_members, GError **error)
{
  g_autoptr(GArray) members = NULL;
  g_autoptr(GError) local = NULL;
  gboolean already = FALSE;
  gboolean stuck = FALSE;
  guint done;
  const char *step = NULL;
  int r;

  members = bind_checks(host, group, owner, owner_uid, flags, FALSE, &already, error);
  if (!members)
    return FALSE;
  if (already) {
    if (ret_members)
      *ret_members = vfd_members_bdfs(members);
    return TRUE;
  }

  /* Stage 1: journal first, durably, before any sysfs write. */
  vfd_host_lock_journal(host);
  vfd_members_journal(host, members, group, VFD_DEVICE_STATE_BINDING, owner, owner_uid);
  if (!vfd_host_commit_locked(host, error)) {
    for (guint i = 0; i < members->len; i++)
      vfd_journal_remove(host->journal, &g_array_index(members, Member, i).bdf);
    vfd_host_unlock_journal(host);
    return FALSE;
  }
  vfd_host_unlock_journal(host);

  /* Stage 2: each member, in BDF order. */
  for (done = 0; done < members->len; done++) {
    Member *m = &g_array_index(members, Member, done);
    r = vfd_member_bind(host, m, &step);
    if (r < 0) {
      g_autofree char *msg = vfd_member_step_message("binding", m, step, r);
      stuck = r == -ETIMEDOUT;
      g_set_error_literal(&local, VFD_ERROR,
                          stuck ? VFD_ERROR_STUCK : (r == -ENXIO ? VFD_ERROR_FAILED : vfd_error_from_errno(r)), msg);
      if (stuck) {
        m->stuck = true;
        vfd_host_lock_journal(host);
        vfd_host_journal_set_state(host, &m->bdf, VFD_DEVICE_STATE_STUCK);
        {
          g_autoptr(GError) jerror = NULL;

          if (!vfd_host_commit_locked(host, &jerror))
            g_prefix_error(&local, "the journal could not record the stuck state (%s); ", jerror->message);
        }
        vfd_host_unlock_journal(host);
      }
      done++; /* the failing member is partly done: roll it back too (unless stuck) */
      break;
    }
  }

  /* Stage 3: the group node. */
  if (!local && !wait_vfio_node(host, group))
    g_set_error(&local, VFD_ERROR, VFD_ERROR_FAILED, "%s/vfio/%d did not appear after binding IOMMU group %d",
                vfd_sysfs_dev_root(host->sysfs), group, group);

  if (local) {
    /* Rollback: reverse order, only what was done; keep the first error. A
     * stuck member is left as it is: nothing may touch it until an operator
     * acts. */
    g_autoptr(GString) left = g_string_new(NULL);
    while (done-- > 0) {
      Member *m = &g_array_index(members, Member, done);
      if (m->stuck)
        continue;
      /* Hot-unplugged meanwhile: nothing left to restore. */
      r = vfd_sysfs_device_exists(host->sysfs, &m->bdf) ? vfd_member_restore(host, m, false, NULL, &step) : 0;
      vfd_host_lock_journal(host);
      if (r < 0) {
        g_string_append_printf(left, " %s (%s%s)", m->name, step, r == -ETIMEDOUT ? ", stuck" : "");
        vfd_host_journal_set_state(host, &m->bdf,
                                   r == -ETIMEDOUT ? VFD_DEVICE_STATE_STUCK : VFD_DEVICE_STATE_RELEASING);
      } else {
        vfd_journal_remove(host->journal, &m->bdf);
      }
      vfd_host_unlock_journal(host);
    }
    vfd_host_lock_journal(host);
    for (guint i = 0; i < members->len; i++) {
      Member *m = &g_array_index(members, Member, i);
      VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &m->bdf);
      if (jd && jd->state == VFD_DEVICE_STATE_BINDING)
        vfd_journal_remove(host->journal, &m->bdf); /* never touched */
    }
    {
      g_autoptr(GError) jerror = NULL;

      /* The rollback is done on the devices; a record the disk keeps says
       * more than was left, which the next reconcile settles. */
      if (!vfd_host_commit_locked(host, &jerror))
        g_prefix_error(&local, "the journal could not record the rollback (%s); ", jerror->message);
    }
    vfd_host_unlock_journal(host);
    if (left->len)
      g_prefix_error(&local, "rollback could not restore%s; ", left->str);
    else
      g_prefix_error(&local, "rolled back; ");
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }

  /* Stage 4: journal the result. */
  vfd_host_lock_journal(host);
  vfd_members_journal(host, members, group, VFD_DEVICE_STATE_BOUND, owner, owner_uid);
  if (!vfd_host_commit_locked(host, error)) {
    /* The devices are bound; the journal on disk still says "binding",
     * which start-up restores. */
    vfd_host_unlock_journal(host);
    return FALSE;
  }
  vfd_host_unlock_journal(host);
  if (ret_members)
    *ret_members = vfd_members_bdfs(members);
  return TRUE;
}

gboolean
vfd_host_bind_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members, int *ret_group,
                    GError **error)
{
  return vfd_host_bind_group_as(host, bdf, owner, 0, VFD_BIND_NONE, ret_members, ret_group, error);
}

gboolean
vfd_host_bind_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, VfdBindFlags flags,
                         GArray **ret_members, int *ret_group, GError **error)
{
  return vfd_host_bind_group_as(host, bdf, owner, 0, flags, ret_members, ret_group, error);
}

/* The device and IOMMU group checks of vfd_host_bind_group_as(), same
 * errors. */
static gboolean
bind_group_lookup(VfdHost *host, const VfdBdf *bdf, const char *owner, int *ret_group, GError **error)
{
  char name[VFD_BDF_STRLEN];

  vfd_bdf_format(bdf, name);
  if (!owner || !*owner) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "an owner name is required");
    return FALSE;
  }
  if (!vfd_sysfs_device_exists(host->sysfs, bdf)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", name);
    return FALSE;
  }
  if (vfd_sysfs_iommu_group(host->sysfs, bdf, ret_group) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "PCI device %s has no IOMMU group: the IOMMU is off or unsupported "
                "(boot with intel_iommu=on or amd_iommu=on, and enable VT-d/AMD-Vi in firmware)",
                name);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_host_check_bind_as(VfdHost *host, const VfdBdf *bdf, const char *owner, guint32 owner_uid, VfdBindFlags flags,
                       GError **error)
{
  g_autoptr(GArray) members = NULL;
  VfdGroupLock *lock;
  gboolean already = FALSE;
  int group;

  if (!bind_group_lookup(host, bdf, owner, &group, error))
    return FALSE;
  lock = vfd_host_lock_groups(host, &group, 1);
  members = bind_checks(host, group, owner, owner_uid, flags, TRUE, &already, error);
  vfd_group_lock_release(lock);
  return members != NULL;
}

gboolean
vfd_host_bind_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, guint32 owner_uid, VfdBindFlags flags,
                       GArray **ret_members, int *ret_group, GError **error)
{
  VfdGroupLock *lock;
  gboolean ok;
  int group;

  if (!bind_group_lookup(host, bdf, owner, &group, error))
    return FALSE;
  lock = vfd_host_lock_groups(host, &group, 1);
  ok = bind_group_locked(host, bdf, group, owner, owner_uid, flags, ret_members, error);
  vfd_group_lock_release(lock);
  if (ok && ret_group)
    *ret_group = group;
  return ok;
}
