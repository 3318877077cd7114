/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* VFIO variant drivers (issue 16, item 4).
 *
 * Some devices want a device-specific VFIO driver instead of plain vfio-pci:
 * nvgrace_gpu_vfio_pci for the GPUs of NVIDIA Grace Hopper/Blackwell
 * superchips, mlx5_vfio_pci for ConnectX VFs (live migration), ... Such a
 * module declares its devices with PCI_DRIVER_OVERRIDE_DEVICE_VFIO, which
 * puts aliases of the form "vfio_pci:v000010DEd00002342sv*sd*bc*sc*i*" into
 * modules.alias (vfio_pci itself matches every device:
 * "vfio_pci:v*d*sv*sd*bc*sc*i*"). As libvirt does, the device's modalias
 * ("pci:v...", sysfs `modalias`) is looked up with its "pci:" prefix
 * replaced by "vfio_pci:", here through libkmod (modules.alias.bin of the
 * modules directory, plus the modprobe.d aliases when @config_paths is NULL
 * in vfd_variant_ctx_new()). */

#define VFD_VFIO_PCI_MODULE "vfio_pci"

typedef struct VfdVariant VfdVariant;

/* A lookup context over @modules_dir (NULL: /lib/modules/<uname -r>) and
 * @config_paths (NULL: the system's modprobe.d; an empty vector: none).
 * NULL with VFD_ERROR_FAILED when libkmod cannot start. */
VfdVariant *vfd_variant_new(const char *modules_dir, const char *const *config_paths, GError **error);
void vfd_variant_free(VfdVariant *variant);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdVariant, vfd_variant_free)

/* The VFIO module for a device whose sysfs `modalias` is @modalias
 * ("pci:v000010DEd00002342sv...bc03sc02i00"): the one variant module
 * (any module other than vfio_pci) whose vfio_pci: alias matches, else
 * VFD_VFIO_PCI_MODULE (also when the modules directory has no index:
 * no variant is known). Returns a newly allocated module name. Errors
 * (NULL): VFD_ERROR_INVALID_ARGUMENT when @modalias is not a PCI modalias;
 * VFD_ERROR_NOT_ALLOWED when several variant modules match (named: the
 * choice is the operator's). */
char *vfd_variant_module_for(VfdVariant *variant, const char *modalias, GError **error);

/* The PCI driver name that a VFIO module @module registers, for
 * driver_override: "vfio-pci" for vfio_pci; for a variant module the name
 * under <sys_root>/module/<module>/drivers/ ("pci:<name>") when the module
 * is loaded, else the module name itself (the kernel's variant drivers all
 * register as KBUILD_MODNAME). Newly allocated. */
char *vfd_variant_driver_name(const char *sys_root, const char *module);

/* True for "vfio-pci" and for variant driver names (ending in
 * "_vfio_pci" or "-vfio-pci"): a driver that hands the device to VFIO. */
bool vfd_is_vfio_driver(const char *driver);

/* Loads @module with its dependencies (libkmod, as modprobe). Only for the
 * real /sys. VFD_ERROR_FAILED naming the module on failure. */
gboolean vfd_variant_load(VfdVariant *variant, const char *module, GError **error);

/* Checks that sandboxes can run on this host's architecture @machine (uname
 * -m; NULL: this host's): x86_64 only, for now. VFD_ERROR_NOT_SUPPORTED
 * otherwise, naming the machine and what is missing (QEMU's aarch64 `virt`
 * machine support in vfiod). Binding devices (pools, CDI) works on any
 * architecture. */
gboolean vfd_check_sandbox_arch(const char *machine, GError **error);

/* The host driver (not a VFIO one) modules.alias names for a device with
 * @modalias, when its module is loaded and registers a PCI driver under
 * <sys_root>/module/<module>/drivers/ ("pci:<name>"): that driver name;
 * else NULL. For adopting a device found on vfio-pci at start-up. */
char *vfd_variant_host_driver(VfdVariant *variant, const char *sys_root, const char *modalias);
