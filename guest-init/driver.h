/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "disk.h"

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"
#include "gpu.h"
#include "modules.h"

/* The NVIDIA driver at run time, the I/O side (the pure side is gpu.c): the
 * driver layer (vfiod.driver=) mounted and its modules loaded, the CUDA
 * probe run in the workload's root, the kernel's NVRM lines, and the
 * driver's teardown before power-off. Errors are -errno with an English
 * message in @err; nothing here is fatal by itself. */

#define GI_LAYER_ENV_FILE "/etc/vfiod/driver-layer.env"  /* in the layer */
#define GI_LAYER_LIB_DIR VFIOD_DRIVER_LAYER_DIR "/usr/lib/x86_64-linux-gnu"
#define GI_LAYER_BIN_DIR VFIOD_DRIVER_LAYER_DIR "/usr/bin"
#define GI_NVRM_MAX_LINES 16         /* the last NVRM lines kept from the kernel log */
#define GI_NVRM_LINE_SIZE 200        /* bytes of each, cut */

/* The mounted driver layer. */
typedef struct {
  char dev[GI_CMDLINE_MAX_VALUE + 1];  /* the block device vfiod.driver= names (/dev/NAME) */
  char version[64];                    /* NVIDIA_DRIVER_VERSION of its env file */
  char kernel[128];                    /* GUEST_KERNEL_RELEASE, "" when absent */
  char key[80];                        /* DRIVER_LAYER_KEY, "" when absent */
} GiLayer;

/* Waits at most @wait_ms for the block device @spec names (vfiod.driver=:
 * virtio:SERIAL or /dev/NAME, gi_disk_resolve() over GI_SYS_BLOCK), mounts
 * it read-only (erofs; nodev, nosuid) on VFIOD_DRIVER_LAYER_DIR and reads
 * its GI_LAYER_ENV_FILE (NVIDIA_DRIVER_VERSION is required). Returns 0, or
 * -errno with @err (ENODEV from mount(): no erofs in the kernel, i.e.
 * erofs.ko not staged). */
int gi_layer_mount(const char *spec, int wait_ms, GiLayer *ret, char *err, size_t err_size);

/* Loads the NVIDIA modules from the layer, for a kernel (@release) whose
 * initramfs stages none: its lib/modules/<release>/updates/ nvidia,
 * nvidia-modeset, nvidia-drm, nvidia-uvm, nvidia-peermem, in that order,
 * those present that vfiod.gpu/.nvidia want (@c), without parameters. Makes
 * the layer's lib/firmware/nvidia reachable first (bind-mounted on
 * /lib/firmware/nvidia, one of the firmware loader's own paths). A module
 * that fails goes to @mods->nvidia_error (the rest is left out), as in
 * gi_modules_load(); so does a layer without modules for @release. Returns
 * 0, or -errno for the firmware bind (with @err). */
int gi_layer_load_modules(const GiLayer *l, const char *release, const GiCmdline *c, GiModules *mods, char *err,
                          size_t err_size);

/* The GSP firmware files (gsp_*.bin, regular files, sorted by name) in
 * @dir, the directory the kernel's firmware loader reads
 * nvidia/<version>/ from (e.g. "/lib/firmware/nvidia/550.163.01"), into
 * @ret_names (at most @max). Returns how many, or -errno when @dir cannot
 * be read (-ENOENT: no firmware for that version there). */
int gi_gsp_firmware_list(const char *dir, char (*ret_names)[64], size_t max);

/* Runs the CUDA probe (cuda-probe.c, carried in guest-init and exec'd from a
 * memfd) in @root (chroot) with @envp, for at most @timeout_ms, and parses
 * its line into @ret. Returns 0 when it ran and printed a usable line
 * (whatever it says), or -errno with @err: it could not start, timed out
 * (-ETIMEDOUT), was killed by a signal, printed more than
 * GI_CUDA_PROBE_MAX_LINE bytes (-E2BIG) or no usable line (-EINVAL; its exit
 * status is in @err). */
int gi_cuda_probe_run(const char *root, char *const *envp, int timeout_ms, GiCudaProbe *ret, char *err,
                      size_t err_size);

/* The last GI_NVRM_MAX_LINES "NVRM:" messages of the kernel log
 * (/dev/kmsg, read without blocking, at most 100000 records looked at), in
 * order, into @lines; returns how many. 0 when the log cannot be read. */
size_t gi_nvrm_lines(char lines[][GI_NVRM_LINE_SIZE], size_t max);

/* Unloads the NVIDIA modules among @loaded (names, @n_loaded, as
 * GiModules.loaded holds them; others are ignored) in the order that their
 * dependencies allow: nvidia_peermem, nvidia_drm, nvidia_uvm,
 * nvidia_modeset, any other nvidia_*, nvidia. Each is retried while it is
 * still in use (EAGAIN/EBUSY), and the whole is bounded by @timeout_ms: it
 * runs in a child process (a module's exit cannot be interrupted), left
 * behind when the time is up. The names unloaded go to @ret_unloaded
 * (@max); the first failure stops it and is described in @err. Returns 0,
 * -ETIMEDOUT, or the -errno of the failed module. */
int gi_nvidia_unload(const char (*loaded)[64], size_t n_loaded, int timeout_ms, char (*ret_unloaded)[64], size_t max,
                     size_t *ret_n, char *err, size_t err_size);
