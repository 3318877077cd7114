/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NVIDIA support in the guest, the pure part: which staged NVIDIA modules to
 * load, where the character device majors are (/proc/devices), which GPU has
 * which minor (/proc/driver/nvidia/gpus/<bdf>/information) and the /dev nodes
 * that follow, as nvidia-modprobe would create them. No I/O. */

#define GI_NVIDIA_MAJOR_CTL_MINOR 255      /* /dev/nvidiactl */
#define GI_NVIDIA_MAJOR_MODESET_MINOR 254  /* /dev/nvidia-modeset */
#define GI_NVIDIA_MAX_GPU_MINOR 253        /* /dev/nvidia0../dev/nvidia253 */
#define GI_NVIDIA_UVM_MINOR 0              /* /dev/nvidia-uvm */
#define GI_NVIDIA_UVM_TOOLS_MINOR 1        /* /dev/nvidia-uvm-tools */

typedef enum {
  GI_NVIDIA_MODULE_NONE = 0,  /* not an NVIDIA module: always loaded */
  GI_NVIDIA_MODULE_CORE,      /* nvidia */
  GI_NVIDIA_MODULE_UVM,       /* nvidia_uvm */
  GI_NVIDIA_MODULE_MODESET,   /* nvidia_modeset */
  GI_NVIDIA_MODULE_DRM,       /* nvidia_drm */
  GI_NVIDIA_MODULE_PEERMEM,   /* nvidia_peermem */
  GI_NVIDIA_MODULE_OTHER,     /* any other nvidia_* module (e.g. nvidia_fs) */
} GiNvidiaModule;

/* Classifies a module by its name as gi_module_name() gives it
 * ("nvidia_uvm"; '-' is taken like '_'). */
GiNvidiaModule gi_nvidia_module_kind(const char *name);

/* Whether a module of @kind is loaded, given vfiod.gpu (@gpu) and
 * vfiod.nvidia (@mask, GI_NVIDIA_* bits of cmdline.h): non-NVIDIA modules
 * always; NVIDIA ones only with @gpu, the optional ones only when named in
 * @mask (nvidia_modeset also for drm). */
bool gi_nvidia_module_wanted(GiNvidiaModule kind, bool gpu, unsigned mask);

/* Looks up the character device @name in the text of /proc/devices (the
 * "Character devices:" section only; block devices are not looked at).
 * Returns 0 and sets *@ret_major, or -ENOENT. */
int gi_proc_devices_find(const char *text, const char *name, unsigned *ret_major);

/* Reads the "Device Minor:" line of /proc/driver/nvidia/gpus/<bdf>/information.
 * Returns 0 and sets *@ret_minor, or -ENOENT (no such line) or -EINVAL (not
 * a number, or above GI_NVIDIA_MAX_GPU_MINOR). */
int gi_nvidia_parse_minor(const char *text, unsigned *ret_minor);

/* One character device node to create. */
typedef struct {
  char path[48];   /* "/dev/nvidia0" */
  unsigned major;
  unsigned minor;
} GiDevNode;

/* The /dev nodes for the loaded NVIDIA modules, from the text of
 * /proc/devices and the GPUs' minors (@minors, @n_minors; each at most
 * GI_NVIDIA_MAX_GPU_MINOR): /dev/nvidiactl and /dev/nvidia<minor> on the
 * "nvidia" major (older drivers call it "nvidia-frontend"),
 * /dev/nvidia-modeset (minor 254) when @modeset, /dev/nvidia-uvm and
 * /dev/nvidia-uvm-tools when "nvidia-uvm" is registered. Writes at most @max
 * nodes to @ret. Returns the number of nodes, or -ENOENT when no nvidia major
 * is registered, -EINVAL for a minor out of range, -E2BIG when @max is too
 * small. */
int gi_nvidia_node_plan(const char *proc_devices, const unsigned *minors, size_t n_minors, bool modeset,
                        GiDevNode *ret, size_t max);
