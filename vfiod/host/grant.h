/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "bdf.h"
#include "device.h"
#include "journal.h"

/* Granting a bound IOMMU group to a client that runs its own VMM (issue
 * 15, item 9): vfiod opens /dev/vfio/<group> and hands the client the fd
 * (D-Bus OpenGroup). Nothing is written: no journal change, no chown. */

/* The permission decision, pure. @records: the journal record of each
 * member of the IOMMU group (@n of them, NULL where a member has none);
 * @caller_uid: the D-Bus peer's uid; @bdf_s: the client's BDF, for
 * messages. TRUE when the caller may have the group's fd; else FALSE with:
 *   VFD_ERROR_NOT_FOUND          @n is 0 or a member is not journaled
 *                                (vfiod did not bind the group);
 *   VFD_ERROR_BUSY               a member is binding, releasing or stuck,
 *                                the members' owners differ, or the owner
 *                                is a sandbox ("sb-...") and the caller is
 *                                not root;
 *   VFD_ERROR_PERMISSION_DENIED  the owner_uid is not the caller's (root,
 *                                uid 0, may open any group not refused
 *                                above). */
gboolean vfd_grant_check(const char *bdf_s, const VfdJournalDevice *const *records, guint n, guint32 caller_uid,
                         GError **error);

/* Opens the VFIO group node of @bdf's IOMMU group for @caller_uid: reads
 * the group number and its members from sysfs, checks them against the
 * journal (vfd_grant_check(), under the journal lock) and opens
 * <dev_root>/vfio/<group> (vfd_sysfs_open_vfio_group()) before the lock
 * is let go, so a release cannot slip in between. Returns the fd
 * (O_RDWR|O_CLOEXEC; the caller owns it) with the group number in
 * *@ret_group and the members (GArray of VfdBdf, sorted) in *@ret_members;
 * -1 with an error: VFD_ERROR_NOT_FOUND (no such device, no IOMMU group,
 * no node), those of vfd_grant_check(), VFD_ERROR_BUSY (the kernel's one
 * opener has the node), VFD_ERROR_FAILED (other open errors). */
int vfd_host_open_group(VfdHost *host, const VfdBdf *bdf, guint32 caller_uid, int *ret_group, GArray **ret_members,
                        GError **error);
