/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "device.h"

/* Persistent device pools (issue 16, items 1-3).
 *
 * A pool device is kept on its VFIO driver (vfio-pci, or the variant driver
 * its modalias picks, variant.h) across vfiod restarts and host reboots,
 * journaled with owner VFD_POOL_OWNER ("pool"), whole IOMMU groups as
 * everywhere. The pool is the union of
 *   - [pool] devices: BDFs, ';'-separated;
 *   - [pool] match: rules, ';'-separated: "VVVV:DDDD" (hex vendor:device;
 *     DDDD may be "*") or "class:CC[SS[PP]]" (hex class prefix);
 *   - groups journaled for owner "pool" (vfioctl bind --persist).
 * [pool] mode: "external" (default): the devices are for other consumers
 * (KubeVirt, Kata, device plugins, via the CDI spec below) and never handed
 * to a sandbox: a create that names one fails BUSY, --gpus N never picks
 * one. "sandboxes": the devices are kept on VFIO for vfiod's own sandboxes:
 * a create (named or --gpus N) borrows a pool group without a sysfs write,
 * and its end gives the group back to the pool, still on its VFIO driver
 * (vfd_host_set_pool_lending()); no CDI devices. Groups added with bind
 * --persist stay external (lending follows the config's rules). */

#define VFD_POOL_OWNER "pool"

typedef struct VfdPoolRules VfdPoolRules;

/* Parses the [pool] keys (each may be NULL or ""). VFD_ERROR_INVALID_ARGUMENT
 * naming the bad item. */
VfdPoolRules *vfd_pool_rules_new(const char *devices, const char *match, const char *mode, GError **error);
void vfd_pool_rules_free(VfdPoolRules *rules);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdPoolRules, vfd_pool_rules_free)

/* True when @dev is named by [pool] devices or matches a [pool] match rule
 * (the journal is not consulted). */
bool vfd_pool_rules_match(const VfdPoolRules *rules, const VfdPciDevice *dev);

/* True for mode=sandboxes. */
bool vfd_pool_rules_lend(const VfdPoolRules *rules);

/* True when the rules name nothing. */
bool vfd_pool_rules_empty(const VfdPoolRules *rules);

/* One function of a pool IOMMU group, as the host shows it now. */
typedef struct {
  VfdBdf bdf;
  int iommu_group;
  guint16 vendor, device;
  guint32 class_code;
  char *driver;       /* current driver, NULL: none */
  char *want_driver;  /* the VFIO driver it belongs on: "vfio-pci" or a variant */
  char *want_module;  /* that driver's module ("vfio_pci", ...) */
  char *host_driver;  /* the driver it leaves (journal's original driver, else its current non-VFIO
                       * driver); NULL: unknown */
  char *host_module;  /* that driver's module (sysfs drivers/<d>/module), NULL: unknown/built in */
  char *state;        /* journal state ("bound", ...) or "host" when not journaled */
  char *owner;        /* journal owner, NULL when not journaled */
  char *cdev;         /* iommufd cdev name "vfioN" (sysfs vfio-dev/), NULL: the kernel has none */
  bool by_rule;       /* named by the config (else only by the journal) */
  bool ok;            /* on want_driver and journaled bound for "pool" */
} VfdPoolEntry;

void vfd_pool_entry_free(VfdPoolEntry *e);

/* True when the pool has nothing: @rules name nothing and no journal
 * record is held for "pool" (reads the journal only: lets callers skip the
 * PCI enumeration on hosts without a pool). */
bool vfd_pool_is_empty(VfdHost *host, const VfdPoolRules *rules);

/* The pool's functions now (GPtrArray of VfdPoolEntry, sorted by BDF):
 * every non-bridge member of each IOMMU group that has a device the rules
 * match or that is journaled for "pool". @variant (may be NULL: vfio-pci)
 * picks want_driver. Reads only. FALSE when enumeration fails. */
GPtrArray *vfd_pool_collect(VfdHost *host, const VfdPoolRules *rules, VfdVariant *variant, GError **error);

/* Brings the pool to its state (the daemon, at start-up and on every
 * reconcile): for each pool group not bound for "pool": a group whose
 * records say "pool" but with functions on other drivers (a reboot without
 * the boot configuration, a function unbound by hand) is released as the
 * journal says and bound again; a group
 * all on VFIO drivers that the journal does not know (bound at boot by the
 * generated udev rule) is adopted (journaled bound for "pool", original
 * driver the one modules.alias names for it, else none); other groups are
 * bound for "pool". Groups held by another owner are left alone ("busy").
 * Appends VfdReconcileItem lines (action "pool-bound", "pool-adopted",
 * "pool-kept", "busy", "failed") to @report. */
void vfd_pool_apply(VfdHost *host, const VfdPoolRules *rules, GPtrArray *report);

/* ---- CDI (Container Device Interface) ----
 * Two spec files in @cdi_dir (one kind per file, as CDI wants):
 *   vfiod-group.json  kind "vfiod.io/group", device "<N>" per IOMMU group
 *   vfiod-gpu.json    kind "vfiod.io/gpu",   device "<BDF>" per group, named
 *                     by its lowest function (the unit, as for --gpus)
 * for every group journaled bound for "pool" (external mode). Each device
 * gives /dev/vfio/<N> and the iommufd cdevs /dev/vfio/devices/vfioN of its
 * functions where the kernel has them; the spec-wide edits give
 * /dev/vfio/vfio. cdiVersion "0.5.0": the lowest version with names that
 * start with a digit (CDI writes the lowest version its features need),
 * and what Debian 12's podman reads. A BDF's ':' is allowed in CDI device
 * names ([A-Za-z0-9][A-Za-z0-9_.:-]*[A-Za-z0-9]). */

/* The JSON text of the spec of @kind ("group" or "gpu") for @entries. */
char *vfd_cdi_spec(GPtrArray *entries, const char *kind);

/* Writes both specs into @cdi_dir (created 0755 if missing) atomically
 * (temp file, fsync, rename), 0644, only when the content changed. An empty
 * pool writes specs with no devices, unless neither file exists (a host
 * without a pool gets no files). FALSE with G_FILE_ERROR on failure. */
gboolean vfd_cdi_write(const char *cdi_dir, GPtrArray *entries, GError **error);

/* ---- boot configuration ----
 * The udev rule (driverctl's model): for each pool function, on "add" of
 * the PCI device, driver_override = its VFIO driver, the VFIO module
 * loaded, and, when a host driver already has it (loaded first, e.g. from
 * the initramfs), unbound from it and re-probed. */
char *vfd_pool_udev_rules(GPtrArray *entries);

/* modprobe.d: "softdep <host module> pre: <vfio module>" for every host
 * driver module of pool functions, so that the VFIO module is in place
 * whenever a host driver loads. */
char *vfd_pool_modprobe_conf(GPtrArray *entries);

#define VFD_POOL_UDEV_RULES "etc/udev/rules.d/70-vfiod-pool.rules"
#define VFD_POOL_MODPROBE_CONF "etc/modprobe.d/vfiod-pool.conf"

/* Installs both under @root ("/" for the host) atomically, 0644. *@ret_changed:
 * whether either file changed; *@ret_initramfs_note (may be NULL): when a file
 * changed and @root has initramfs-tools or dracut, the sentence telling the
 * operator to regenerate the initramfs (it holds copies of modprobe.d and,
 * with dracut, of udev rules), else NULL. */
gboolean vfd_pool_install_boot(const char *root, GPtrArray *entries, gboolean *ret_changed,
                               char **ret_initramfs_note, GError **error);
