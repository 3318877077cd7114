/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <stdbool.h>

#include "bdf.h"
#include "journal.h"
#include "policy.h"
#include "sysfs.h"

/* The device layer: PCI inventory and IOMMU-group bind/release to vfio-pci.
 *
 * Bind of a device binds every non-bridge member of its IOMMU group:
 *   journal(binding, original driver + driver_override [+ d3cold_allowed,
 *   reset_method]) -> for each member: d3cold_allowed=0 [-> reset_method
 *   without bus resets] -> driver_override="vfio-pci" -> driver/unbind (if
 *   bound) -> drivers_probe -> verify `driver` is vfio-pci; then verify
 *   /dev/vfio/<group>; journal(bound). Any failure rolls back, in reverse
 *   order, exactly the steps that were done (guard), and leaves the journal
 *   consistent.
 * Release undoes it: journal(releasing) -> unbind from vfio-pci -> function
 *   reset (reset policy) -> restore reset_method and d3cold_allowed -> restore
 *   the original driver_override ("\n" when there was none) -> drivers_probe
 *   (when there was an original driver) -> verify -> drop from the journal.
 * Never uses new_id. Errors are GError VFD_ERROR_*, messages name the device. */

#define VFD_VFIO_DRIVER "vfio-pci"

typedef struct {
  VfdBdf bdf;
  guint16 vendor;
  guint16 device;
  guint32 class_code; /* 24-bit: class, subclass, prog-if */
  int iommu_group;    /* -1: none (IOMMU off) */
  int numa_node;      /* -1: unknown */
  char *driver;       /* NULL: unbound */
  char *name;         /* "Vendor Device" from pci.ids, may be NULL */
  bool boot_vga;      /* sysfs boot_vga reads 1: the firmware's console device */
} VfdPciDevice;

void vfd_pci_device_free(VfdPciDevice *dev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdPciDevice, vfd_pci_device_free)

/* True for bridges, which are never bound: host bridges (class 0600xx)
 * and PCI-to-PCI bridges (0604xx, 0609xx semi-transparent). Other class-06
 * devices are endpoints like any other: an NVSwitch (0680xx "other bridge")
 * is a function an HGX unit passes through, an ISA bridge (0601xx) is a
 * host function the policy refuses. */
bool vfd_pci_class_is_bridge(guint32 class_code);

/* True for an NVIDIA NVSwitch: vendor 0x10de, class 0680xx (e.g. 10de:22a3
 * on HGX H100/H200 boards). */
bool vfd_pci_is_nvswitch(guint16 vendor, guint32 class_code);

/* True when Linux must never bus-reset this device (the NVIDIA entries of
 * the kernel's NO_BUS_RESET quirks, drivers/pci/quirks.c: 10de:2340-237f
 * "leaves the device inoperable", 10de:1eb8 T4). vfiod then keeps "bus"
 * out of the device's `reset_method` while it holds it, and resets it on
 * release only by another method (flr, pm, ...), or not at all. Kernels
 * with the quirk already leave "bus" out. */
bool vfd_pci_no_bus_reset(guint16 vendor, guint16 device);

typedef struct VfdHost VfdHost;

/* Takes ownership of @sysfs, @policy and @journal. */
VfdHost *vfd_host_new(VfdSysfs *sysfs, VfdPolicy *policy, VfdJournal *journal);
void vfd_host_free(VfdHost *host);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdHost, vfd_host_free)

VfdSysfs *vfd_host_sysfs(VfdHost *host);
VfdJournal *vfd_host_journal(VfdHost *host);
/* The current device rules, borrowed: valid until the next
 * vfd_host_set_policy() (a reload), so only for the thread that reloads
 * (the main loop) and tests. Workers use vfd_host_dup_policy(). */
const VfdPolicy *vfd_host_policy(VfdHost *host);
/* A new reference to the current device rules (any thread; unref it). */
VfdPolicy *vfd_host_dup_policy(VfdHost *host);

/* The journal is shared by concurrent operations: hold this lock while
 * reading or changing it (recursive). Never held across a sysfs write. */
void vfd_host_lock_journal(VfdHost *host);
void vfd_host_unlock_journal(VfdHost *host);

/* Per-IOMMU-group locks. Locks @groups (negative numbers ignored,
 * duplicates folded) in ascending order, so that operations spanning
 * several groups cannot deadlock; bind/release take their group's lock
 * themselves (the locks are recursive). Operations on one group are
 * serialised, on different groups they run in parallel. */
typedef struct VfdGroupLock VfdGroupLock;
VfdGroupLock *vfd_host_lock_groups(VfdHost *host, const int *groups, guint n_groups);
void vfd_group_lock_release(VfdGroupLock *lock);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdGroupLock, vfd_group_lock_release)

/* All PCI devices, enumerated with libpci from <sys_root>/bus/pci, sorted by
 * BDF; a GPtrArray of VfdPciDevice. VFD_ERROR_FAILED when libpci cannot scan. */
GPtrArray *vfd_host_enumerate(VfdHost *host, GError **error);

/* Reads one device (same fields as enumerate, from sysfs directly).
 * VFD_ERROR_NOT_FOUND when there is no such device. */
VfdPciDevice *vfd_host_get_device(VfdHost *host, const VfdBdf *bdf, GError **error);

/* Replaces the device rules (config reload). Takes @policy's reference;
 * drops the host's reference to the previous one, which stays alive while
 * an operation on a worker still holds it (vfd_host_dup_policy()). */
void vfd_host_set_policy(VfdHost *host, VfdPolicy *policy);

/* Picks each device's VFIO driver at bind time from its sysfs `modalias`
 * through @variant (variant.h): a variant driver such as
 * nvgrace_gpu_vfio_pci where one matches, else vfio-pci. Takes @variant;
 * NULL (the default): vfio-pci for every device. */
typedef struct VfdVariant VfdVariant;
void vfd_host_set_variant(VfdHost *host, VfdVariant *variant);
/* The host's variant lookup, NULL when none (owned by the host). */
VfdVariant *vfd_host_variant(VfdHost *host);

/* Pool lending ([pool] mode=sandboxes, pool.h): with @fn set, an IOMMU
 * group journaled bound for the owner "pool" is lent to a sandbox owner
 * ("sb-...") that binds it (the journal's owner changes, no sysfs write),
 * counts as a free unit for "any N devices", and when that owner releases
 * it and @fn(@host, BDF, @data) says its functions still belong to the pool
 * (by the config's rules), it goes back to "pool" on its VFIO driver
 * instead of to its host drivers. NULL (the default): no lending. @fn runs
 * on any thread, with the journal lock held; it may read sysfs. */
typedef bool (*VfdPoolMemberFunc)(VfdHost *host, const VfdBdf *bdf, void *data);
void vfd_host_set_pool_lending(VfdHost *host, VfdPoolMemberFunc fn, void *data);

/* Where /proc is (default "/proc"; tests use a fake tree). */
void vfd_host_set_proc_root(VfdHost *host, const char *proc_root);

/* The nvidia-smi asked whether a GPU is in persistence mode before its
 * nvidia driver is unbound (default "nvidia-smi" from PATH; NULL: not
 * asked; tests use a stand-in). See vfd_nvidia_find_hazards(). */
void vfd_host_set_nvidia_smi(VfdHost *host, const char *nvidia_smi);

/* Which functions a release resets (writes 1 to sysfs `reset`) after
 * unbinding them from vfio-pci and before giving them back. Default
 * VFD_RESET_AUTO (NVIDIA display/3D functions). Skipped, with a note
 * (vfd_host_release_group_full()), when the kernel offers no method
 * (`reset_method` empty) or only a bus reset for a NO_BUS_RESET device. A
 * reset that fails stops the release of that function: it stays off host
 * drivers (unbound, driver_override still vfio-pci, journaled "releasing")
 * and the release fails naming it, so that a GPU whose firmware still runs
 * is never handed back silently; a retry resets again. */
void vfd_host_set_reset_policy(VfdHost *host, VfdResetPolicy policy);

/* true: VFD_RESET_ALWAYS, false: VFD_RESET_NEVER. */
void vfd_host_set_reset_on_release(VfdHost *host, bool reset);

typedef enum {
  VFD_BIND_NONE = 0,
  /* Bind even when processes hold the GPU's /dev/nvidia* node open (the
   * unbind from nvidia may then block until they close it). */
  VFD_BIND_FORCE = 1 << 0,
} VfdBindFlags;

/* Power state and reset while vfiod holds a function: the bind writes
 * d3cold_allowed=0 (an idle function on vfio-pci otherwise goes to D3cold,
 * from which some GPUs never come back), and for a NO_BUS_RESET device
 * whose `reset_method` lists "bus" (or "cxl_bus"), the list without them
 * ("\n", no method at all, when nothing else is left). Each original value
 * is journaled first, like driver_override, and written back by the release;
 * a device without the attribute is skipped. */

/* Binds @bdf's whole IOMMU group to vfio-pci for @owner (non-empty).
 * On success *@ret_members (may be NULL) receives the bound BDFs (GArray of
 * VfdBdf, sorted) and *@ret_group the group number. Binding a group already
 * bound for the same owner succeeds without writes. Errors: NOT_FOUND (no
 * such device), FAILED (no IOMMU group, a sysfs step failed: rolled back),
 * NOT_ALLOWED (a member the [devices] rules do not allow, named), BUSY (bound
 * for another owner, or already on vfio-pci outside vfiod), STUCK (a sysfs
 * write did not return within the write timeout: that member is journaled
 * "stuck" and left alone, the others are rolled back; or, without
 * VFD_BIND_FORCE, a member on the nvidia driver whose /dev/nvidia* node is
 * held open: BUSY naming the pids and commands, nothing written). Safe to
 * call from any thread. */
gboolean vfd_host_bind_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, VfdBindFlags flags,
                                  GArray **ret_members, int *ret_group, GError **error);

/* vfd_host_bind_group_full() for the API client @owner_uid (0: root), who
 * is journaled as the binding's owner (VfdJournalDevice.owner_uid; for a
 * sandbox's devices, the sandbox's owner). A group bound for @owner by
 * another uid is BUSY: the same owner name from two users names two
 * owners. vfd_host_bind_group_full() binds for uid 0. */
gboolean vfd_host_bind_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, guint32 owner_uid,
                                VfdBindFlags flags, GArray **ret_members, int *ret_group, GError **error);

/* The checks vfd_host_bind_group_as() makes before it changes anything
 * (device, IOMMU group, [devices] rules, owners in the journal, vfio-pci
 * outside vfiod, holders of /dev/nvidia* without VFD_BIND_FORCE, the
 * vfio-pci driver loaded), under the group's lock, with the same errors;
 * nothing changes (no journal write, no hand-over from the pool, no module
 * loaded). TRUE: the bind would get past them now (it can still fail in
 * sysfs, or when the host changes in between). Any thread. */
gboolean vfd_host_check_bind_as(VfdHost *host, const VfdBdf *bdf, const char *owner, guint32 owner_uid,
                                VfdBindFlags flags, GError **error);

/* vfd_host_bind_group_full() with VFD_BIND_NONE. */
gboolean vfd_host_bind_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                             int *ret_group, GError **error);

/* Picks @n assignable units for a sandbox that asks for "any N devices":
 * a unit is an IOMMU group whose non-bridge members all may be bound (rules
 * and guards), none held by vfiod or already on vfio-pci; it is named by
 * its lowest BDF, and never by an NVSwitch (those come with all the GPUs of
 * their HGX board, see vfd_sandbox_plan_devices()). Deterministic: units sorted by BDF; when one NUMA node
 * has at least @n units, the lowest such node is used (its first @n units),
 * else the first @n overall. *@ret_bdfs: GArray of VfdBdf, sorted.
 * *@ret_numa_node: the node when all picked units are on one, else -1.
 * VFD_ERROR_BUSY when fewer than @n units are free (the message says how
 * many are). Changes nothing. */
gboolean vfd_host_select_units(VfdHost *host, guint n, GArray **ret_bdfs, int *ret_numa_node, GError **error);

/* vfd_host_select_units() for a create that binds what it picks: the pick
 * and the reservation of the picked units' IOMMU groups (*@ret_groups,
 * GArray of int) are one step, so that concurrent creates never pick the
 * same unit (units reserved by another create are not free: not picked, not
 * counted by vfd_host_count_free_units()). The caller binds them, then
 * hands *@ret_groups to vfd_host_unreserve_units(), whether the binds
 * succeeded or not (a bound group is not free anyway). */
gboolean vfd_host_reserve_units(VfdHost *host, guint n, GArray **ret_bdfs, GArray **ret_groups, int *ret_numa_node,
                                GError **error);

/* Ends the reservation of @groups (from vfd_host_reserve_units(); NULL:
 * nothing). */
void vfd_host_unreserve_units(VfdHost *host, GArray *groups);

/* How many such units are free now; -1 with @error when enumeration fails. */
int vfd_host_count_free_units(VfdHost *host, GError **error);
/* The same count over @devs (VfdPciDevice, sorted by BDF, from
 * vfd_host_enumerate()), so that a caller that has just enumerated does not
 * scan the bus again. */
guint vfd_host_count_free_units_in(VfdHost *host, GPtrArray *devs);

/* Releases the IOMMU group of @bdf, which vfiod must have bound; each member
 * goes back to its original driver and driver_override. @owner: when
 * non-NULL, the group must be bound for that owner (else BUSY). On success
 * *@ret_members (may be NULL) receives the released BDFs. Errors: NOT_FOUND
 * (not bound by vfiod), FAILED (a member could not be restored, or its
 * function reset failed (see vfd_host_set_reset_policy()); the others are
 * still restored, its journal record stays so that it can be retried),
 * STUCK (a member is stuck, or a write timed out now: journaled "stuck",
 * never retried by vfiod itself). Safe to call from any thread. */
gboolean vfd_host_release_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                                GError **error);

/* vfd_host_release_group(), and *@ret_notes (may be NULL; set on success
 * and on failure, a GPtrArray of strings, possibly empty) receives what the
 * release skipped without failing, one sentence each naming the function
 * (e.g. a reset that the kernel offers no method for), for the caller to
 * log or report. */
gboolean vfd_host_release_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                                     GPtrArray **ret_notes, GError **error);

/* vfd_host_release_group_full() on behalf of the API client @owner_uid:
 * when >= 0, the group must have been bound by that uid
 * (VfdJournalDevice.owner_uid), else VFD_ERROR_PERMISSION_DENIED naming the
 * owner, nothing changed; checked under the group's lock, so that it is
 * the binding being released that is checked. -1: anyone (root, vfiod
 * itself). The owner_uid stays on the records a failed release leaves. */
gboolean vfd_host_release_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid,
                                   GArray **ret_members, GPtrArray **ret_notes, GError **error);

/* One group to give back in a vfd_host_release_groups() batch. */
typedef struct {
  VfdBdf bdf;          /* in: a journaled member of the group */
  const char *owner;   /* in: the group must be bound for it (else BUSY); NULL: any owner */
  gboolean done;       /* out: the group is back on its original drivers */
  gboolean with_earlier; /* out: an earlier item named the same group; nothing done for this one */
  GError *error;       /* out: why not (as vfd_host_release_group()), NULL when done or with_earlier */
  GArray *members;     /* out, when done: the released BDFs (VfdBdf) */
  GPtrArray *notes;    /* out: what the release skipped without failing (as *ret_notes above) */
} VfdReleaseItem;

/* Frees what vfd_host_release_groups() put into @item. */
void vfd_release_item_clear(VfdReleaseItem *item);

/* Releases the groups of @items (n_items) as vfd_host_release_group() would
 * one by one, but with one durable journal commit per phase instead of two
 * per group (issue 17: start-up restore was quadratic): phase 1 journals
 * every group "releasing" and commits; phase 2 does every group's sysfs
 * writes; phase 3 commits the results (records removed, or "stuck"). A crash
 * anywhere leaves "releasing" records (restored at the next start-up) or the
 * result; so it is as safe as the one-group path. Any journal changes the
 * caller made in memory before the call go into the phase 1 commit (made
 * also when no item has anything to release; @n_items 0 included). Each
 * item's outcome is in the item; FALSE with @error only when a commit
 * failed (the sysfs writes of phase 2 are not done when phase 1's commit
 * fails). Takes every group's lock. For start-up; safe from any thread. */
gboolean vfd_host_release_groups(VfdHost *host, VfdReleaseItem *items, guint n_items, GError **error);

/* The functions a bind of @bdf would pass through: the non-bridge members
 * of its IOMMU group (sysfs kernel/iommu_groups/<N>/devices), a GArray of
 * VfdBdf sorted by BDF; just @bdf when it has no IOMMU group (the bind then
 * says why it cannot). Reads only. VFD_ERROR_NOT_FOUND when there is no
 * such device; FAILED when a member cannot be read. */
gboolean vfd_host_group_functions(VfdHost *host, const VfdBdf *bdf, GArray **ret_functions, GError **error);

/* ---- HGX boards ----
 * An HGX baseboard carries 8 GPUs (SXM) and their NVSwitches (4 on
 * H100/H200). Passed through whole, a VM gets 1 GPU, or all 8 GPUs with all
 * NVSwitches (the fabric manager then runs in the guest; Debian does not
 * package it: the guest image must bring an operator-supplied one). Other
 * partitions need NVIDIA's "shared NVSwitch" model (fabric manager on the
 * host), which vfiod does not support. vfiod sees a host with at least one
 * NVSwitch as one HGX board holding every NVIDIA display/3D function. */
typedef struct {
  GArray *gpus;       /* VfdBdf: NVIDIA (0x10de) functions of class 03xxxx, sorted */
  GArray *nvswitches; /* VfdBdf: NVIDIA functions of class 0680xx, sorted */
} VfdHgxBoard;

void vfd_hgx_board_free(VfdHgxBoard *board);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdHgxBoard, vfd_hgx_board_free)

/* The HGX board among @devices (a GPtrArray of VfdPciDevice, e.g. from
 * vfd_host_enumerate()); NULL when there is no NVSwitch. */
VfdHgxBoard *vfd_hgx_board_find(GPtrArray *devices);

/* Checks that a sandbox getting @functions (GArray of VfdBdf) takes a
 * supported share of @board: none of it, 1 GPU and no NVSwitch, or every
 * GPU and every NVSwitch. Else VFD_ERROR_NOT_ALLOWED naming what was asked
 * and what is supported. */
gboolean vfd_hgx_check_partition(const VfdHgxBoard *board, GArray *functions, GError **error);
