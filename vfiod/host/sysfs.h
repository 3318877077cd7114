/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "bdf.h"

/* Access to the kernel's PCI sysfs and /dev/vfio, under configurable roots.
 *
 * @sys_root plays the role of "/sys" (production: "/sys"; tests: a fake
 * tree). Paths used below it, as in Linux:
 *   bus/pci/devices/<BDF>/{vendor,device,class,driver_override}
 *   bus/pci/devices/<BDF>/driver        -> symlink, basename = driver name
 *   bus/pci/devices/<BDF>/iommu_group   -> symlink, basename = group number
 *   bus/pci/drivers/<name>/unbind       (write a BDF)
 *   bus/pci/drivers_probe               (write a BDF)
 *   kernel/iommu_groups/<N>/devices/<BDF>
 * @dev_root plays "/dev": the VFIO group node is <dev_root>/vfio/<N>.
 *
 * Every write goes through a writer function (default: open(O_WRONLY) +
 * one write(2), as the kernel expects). Tests install a writer that models
 * the kernel's reaction to each write. All functions return 0 or a negative
 * errno; they never log. */
typedef struct VfdSysfs VfdSysfs;

/* Performs the write of @value (a NUL-terminated string, written without the
 * NUL) to the absolute path @path. Returns 0 or -errno. */
typedef int (*VfdSysfsWriteFunc)(const char *path, const char *value, void *user_data);

/* @sys_root/@dev_root: NULL means "/sys" and "/dev". Never fails. */
VfdSysfs *vfd_sysfs_new(const char *sys_root, const char *dev_root);
void vfd_sysfs_free(VfdSysfs *sysfs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdSysfs, vfd_sysfs_free)

const char *vfd_sysfs_root(const VfdSysfs *sysfs);
const char *vfd_sysfs_dev_root(const VfdSysfs *sysfs);

/* Replaces the writer (NULL restores the default). Test hook. */
void vfd_sysfs_set_writer(VfdSysfs *sysfs, VfdSysfsWriteFunc fn, void *user_data);

/* Sets how long one sysfs write may take, in milliseconds (0: no limit, the
 * write runs on the caller's thread; the default). With a limit, each write
 * runs on a writer thread, and one that has not returned after @timeout_ms
 * makes the call return -ETIMEDOUT while its thread stays parked in the
 * kernel (an unbind from a busy driver can block forever; nothing can
 * cancel it). Such a write is never retried here. A writer thread whose
 * write returned waits 5 s for the next write before it exits, so the
 * writes of one bind or release share a thread; a thread whose write hangs
 * is never given another. */
void vfd_sysfs_set_write_timeout(VfdSysfs *sysfs, guint timeout_ms);

/* Writes started with a limit that have not returned yet. */
guint vfd_sysfs_hung_writes(const VfdSysfs *sysfs);

/* "<sys_root>/bus/pci/devices/<BDF>[/<attr>]" (newly allocated). */
char *vfd_sysfs_device_path(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr);

/* True when <sys_root>/bus/pci/devices/<BDF> exists. */
bool vfd_sysfs_device_exists(const VfdSysfs *sysfs, const VfdBdf *bdf);

/* Reads a device attribute, trailing whitespace stripped. For
 * "driver_override" the kernel's "(null)" (no override) is returned as "".
 * -ENOENT when the device or attribute does not exist. */
int vfd_sysfs_read_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, char **ret_value);

/* Reads a hex attribute such as "vendor" ("0x10de") into @ret. -EINVAL when
 * it is not a hex number. */
int vfd_sysfs_read_hex_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, guint32 *ret);

/* Writes @value to a device attribute (e.g. "driver_override"). */
int vfd_sysfs_write_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, const char *value);

/* Name of the driver bound to the device (basename of the `driver` link).
 * Returns 0 with *ret_driver = NULL when unbound; -ENOENT when the device
 * does not exist. */
int vfd_sysfs_device_driver(const VfdSysfs *sysfs, const VfdBdf *bdf, char **ret_driver);

/* Writes the BDF to bus/pci/drivers/<driver>/unbind. */
int vfd_sysfs_unbind(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *driver);

/* Writes the BDF to bus/pci/drivers_probe. */
int vfd_sysfs_drivers_probe(const VfdSysfs *sysfs, const VfdBdf *bdf);

/* IOMMU group number from the device's `iommu_group` link. -ENOENT when the
 * device has no group (IOMMU off) or does not exist. */
int vfd_sysfs_iommu_group(const VfdSysfs *sysfs, const VfdBdf *bdf, int *ret_group);

/* Members of IOMMU group @group (kernel/iommu_groups/<N>/devices), as a
 * GArray of VfdBdf sorted by BDF. -ENOENT when the group does not exist. */
int vfd_sysfs_iommu_group_devices(const VfdSysfs *sysfs, int group, GArray **ret_bdfs);

/* True when <dev_root>/vfio/<group> exists. */
bool vfd_sysfs_vfio_group_exists(const VfdSysfs *sysfs, int group);

/* Opens the VFIO group node <dev_root>/vfio/<group> read-write
 * (O_RDWR|O_CLOEXEC|O_NOCTTY), following no symbolic link below
 * @dev_root (the "vfio" directory and the node are opened with
 * O_NOFOLLOW). @group comes from vfiod's own sysfs reads, never from a
 * client; a negative @group is -EINVAL. Returns the fd, or -errno: -ENOENT
 * no node, -EBUSY the kernel's one opener has it, -ELOOP a link. */
int vfd_sysfs_open_vfio_group(const VfdSysfs *sysfs, int group);

/* ---- BARs (sysfs `resource`) ----
 * The kernel's `resource` file has one line per resource, "start end flags"
 * as 0x-prefixed hex: lines 0-5 are the BARs, 6 the expansion ROM, then
 * (SR-IOV) the VF BARs and (bridges) the bridge windows. A 64-bit BAR
 * shows its whole range on its own line and zeros on the next one. Flags
 * are the kernel's IORESOURCE_* bits. */
#define VFD_PCI_NUM_BARS 6
#define VFD_IORESOURCE_MEM 0x00000200ULL
#define VFD_IORESOURCE_PREFETCH 0x00002000ULL
#define VFD_IORESOURCE_MEM_64 0x00100000ULL

typedef struct {
  guint64 start; /* host physical address */
  guint64 size;  /* bytes (end - start + 1); 0: no such BAR */
  guint64 flags; /* IORESOURCE_* */
} VfdPciBar;

/* True for a 64-bit prefetchable memory BAR (IORESOURCE_MEM_64 and
 * IORESOURCE_PREFETCH set): what a guest places in its 64-bit PCI window. */
bool vfd_pci_bar_is_prefetch64(const VfdPciBar *bar);

/* Parses the text of a `resource` file into its 6 BARs (@ret_bars: an array
 * of VFD_PCI_NUM_BARS, written only on success; a BAR whose end is 0 has
 * size 0). Lines after the sixth (ROM, VF BARs, bridge windows) are
 * ignored. -EINVAL when one of the first 6 lines is missing or is not three
 * hex numbers, or end < start. */
int vfd_pci_resource_parse(const char *text, VfdPciBar *ret_bars);

/* Reads and parses <BDF>/resource (see vfd_pci_resource_parse()). -ENOENT
 * when the device does not exist. */
int vfd_sysfs_read_bars(const VfdSysfs *sysfs, const VfdBdf *bdf, VfdPciBar *ret_bars);
