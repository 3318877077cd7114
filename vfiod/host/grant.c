/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bound IOMMU group handed to a client as an open /dev/vfio/<group>
 * (issue 15, item 9): who may have it, and the open. */
#include "grant.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "sysfs.h"

gboolean
vfd_grant_check(const char *bdf_s, const VfdJournalDevice *const *records, guint n, guint32 caller_uid,
                GError **error)
{
  const VfdJournalDevice *first;
  char b[VFD_BDF_STRLEN];

  if (n == 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s: its IOMMU group has no devices", bdf_s);
    return FALSE;
  }
  for (guint i = 0; i < n; i++)
    if (!records[i]) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND,
                  "%s: its IOMMU group is not bound by vfiod (bind it first: vfioctl bind %s)", bdf_s, bdf_s);
      return FALSE;
    }
  first = records[0];
  for (guint i = 0; i < n; i++) {
    if (records[i]->state != VFD_DEVICE_STATE_BOUND) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s: %s is %s, not bound", bdf_s,
                  vfd_bdf_format(&records[i]->bdf, b), vfd_device_state_to_string(records[i]->state));
      return FALSE;
    }
    if (strcmp(records[i]->owner, first->owner) != 0 || records[i]->owner_uid != first->owner_uid) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s: the members of its IOMMU group have different owners", bdf_s);
      return FALSE;
    }
  }
  if (g_str_has_prefix(first->owner, VFD_SANDBOX_ID_PREFIX) && caller_uid != 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s is in use by sandbox %s", bdf_s, first->owner);
    return FALSE;
  }
  if (caller_uid != 0 && first->owner_uid != caller_uid) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "%s: its IOMMU group was bound by uid %u, not by you (uid %u)", bdf_s, (guint) first->owner_uid,
                (guint) caller_uid);
    return FALSE;
  }
  return TRUE;
}

int
vfd_host_open_group(VfdHost *host, const VfdBdf *bdf, guint32 caller_uid, int *ret_group, GArray **ret_members,
                    GError **error)
{
  VfdSysfs *sysfs = vfd_host_sysfs(host);
  g_autoptr(GArray) members = NULL;
  g_autofree const VfdJournalDevice **records = NULL;
  char b[VFD_BDF_STRLEN];
  int group, r, fd;

  vfd_bdf_format(bdf, b);
  r = vfd_sysfs_iommu_group(sysfs, bdf, &group);
  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s: no such PCI device or it has no IOMMU group: %s", b,
                g_strerror(-r));
    return -1;
  }
  r = vfd_sysfs_iommu_group_devices(sysfs, group, &members);
  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s: IOMMU group %d: %s", b, group, g_strerror(-r));
    return -1;
  }
  records = g_new0(const VfdJournalDevice *, members->len + 1);
  vfd_host_lock_journal(host);
  for (guint i = 0; i < members->len; i++)
    records[i] = vfd_journal_lookup(vfd_host_journal(host), &g_array_index(members, VfdBdf, i));
  if (!vfd_grant_check(b, records, members->len, caller_uid, error)) {
    vfd_host_unlock_journal(host);
    return -1;
  }
  fd = vfd_sysfs_open_vfio_group(sysfs, group);
  vfd_host_unlock_journal(host);
  if (fd < 0) {
    g_set_error(error, VFD_ERROR,
                fd == -EBUSY ? VFD_ERROR_BUSY : fd == -ENOENT ? VFD_ERROR_NOT_FOUND : VFD_ERROR_FAILED,
                "%s: cannot open the VFIO group node of IOMMU group %d: %s%s", b, group, g_strerror(-fd),
                fd == -EBUSY ? " (another process has it open)" : "");
    return -1;
  }
  *ret_group = group;
  if (ret_members)
    *ret_members = g_steal_pointer(&members);
  return fd;
}
