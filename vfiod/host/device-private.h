/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device layer's internals, shared by its files (device.h is the API):
 * host.c (the host object, locks, pool lending), inventory.c (PCI
 * inventory), member.c (one group member's guard and sysfs steps), bind.c,
 * release.c, units.c. Nothing outside the device layer includes this. */

#include "device.h"

struct VfdHost {
  VfdSysfs *sysfs;
  VfdPolicy *policy;       /* replaced by reloads: read it through vfd_host_dup_policy() */
  GMutex policy_lock;      /* policy (the pointer) */
  VfdJournal *journal;
  GRecMutex journal_lock; /* the journal, in memory and on disk */
  GMutex table_lock;      /* group_locks */
  GMutex reserve_lock;    /* reserved, and picking units */
  GHashTable *reserved;   /* IOMMU groups picked by a create that has not bound them yet */
  GHashTable *group_locks; /* IOMMU group number -> GRecMutex* */
  char *proc_root;
  char *nvidia_smi; /* asked about persistence mode before unbinding nvidia; NULL: not asked */
  VfdResetPolicy reset_policy;
  VfdVariant *variant;     /* VFIO variant driver lookup; NULL: plain vfio-pci for all */
  VfdPoolMemberFunc pool_member; /* pool lending ([pool] mode=sandboxes); NULL: none */
  void *pool_member_data;
};

/* One group member and what this operation changed on it: the guard. */
typedef struct {
  VfdBdf bdf;
  char name[VFD_BDF_STRLEN];
  char *original_driver;   /* NULL: unbound before */
  char *original_override; /* "" when none */
  char *original_d3cold;       /* d3cold_allowed to write back; NULL: left alone */
  char *original_reset_method; /* reset_method to write back; NULL: left alone */
  char *reset_method;          /* what the bind writes to reset_method (bus resets taken out) */
  bool d3cold_written;
  bool reset_method_written;
  bool override_written;
  bool unbound;
  bool probed;
  bool stuck; /* a write to it never returned: leave it alone */
  char *vfio_driver; /* the VFIO driver it goes to: "vfio-pci" or a variant driver (variant.h) */
  char *vfio_module; /* that driver's module */
} Member;

/* ---- host.c --------------------------------------------------------------- */

/* Whether journal record @jd (may be NULL) is one the pool may lend to a
 * sandbox: bound for "pool", with pool lending on. Journal lock held. */
bool vfd_host_lendable(VfdHost *host, const VfdJournalDevice *jd);

/* Gives every journal record of IOMMU group @group to @owner/@uid and
 * commits; on failure (@error from the commit) the old owners stay, in
 * memory too. Journal lock held. */
gboolean vfd_host_hand_over_locked(VfdHost *host, int group, const char *owner, guint32 uid, GError **error);

/* ---- member.c ------------------------------------------------------------- */

/* A new empty GArray of Member that clears its elements' strings. */
GArray *vfd_members_new(void);

/* Whether @list, a sysfs reset_method value (space-separated method names,
 * may be NULL), names a bus reset ("bus" or "cxl_bus"). */
bool vfd_member_lists_bus_reset(const char *list);

/* @list without its bus resets, as a new string ("" when nothing is left). */
char *vfd_member_without_bus_reset(const char *list);

/* Puts @m back (driver, driver_override, reset_method, d3cold_allowed):
 * what its guard says was done, or with @all everything its journal record
 * holds, with a function reset (notes of what was skipped to @notes, may be
 * NULL when !@all). Returns 0 or the -errno of the first failing step
 * (-ETIMEDOUT: stuck, -ENXIO: not on the expected driver), its name in
 * *@ret_step. Blocks on sysfs writes; group lock held. */
int vfd_member_restore(VfdHost *host, Member *m, bool all, GPtrArray *notes, const char **ret_step);

/* Sets each Member's vfio_driver/vfio_module of @members from its modalias
 * when the host has a variant lookup, loading the variant module on the
 * real /sys. FALSE with @error (VFD_ERROR_FAILED or the lookup's) when a
 * member's driver cannot be had. */
gboolean vfd_members_choose_vfio_drivers(VfdHost *host, GArray *members, GError **error);

/* Moves @m to its VFIO driver, recording each step done in its guard.
 * Returns 0 or the -errno of the failing step (-ENXIO: another driver or
 * none took it), its name in *@ret_step. Blocks on sysfs writes. */
int vfd_member_bind(VfdHost *host, Member *m, const char **ret_step);

/* Puts a journal record for each Member of @members (IOMMU group @group,
 * @state, @owner/@owner_uid, the originals from the guard), in memory:
 * the caller commits. Journal lock held. */
void vfd_members_journal(VfdHost *host, GArray *members, int group, VfdDeviceState state, const char *owner,
                         guint32 owner_uid);

/* Sets the state of @bdf's journal record, if any, in memory. Journal lock
 * held. */
void vfd_host_journal_set_state(VfdHost *host, const VfdBdf *bdf, VfdDeviceState state);

/* The BDFs of @members (Member), as a new GArray of VfdBdf. */
GArray *vfd_members_bdfs(GArray *members);

/* The message for step @step of @m failing with -errno @r, @what being
 * "binding" or "restoring"; a new string. */
char *vfd_member_step_message(const char *what, const Member *m, const char *step, int r);

/* Commits the journal (vfd_journal_commit()). Journal lock held. */
gboolean vfd_host_commit_locked(VfdHost *host, GError **error);
