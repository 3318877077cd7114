/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

/* The guest initramfs stager: guest-init + kernel modules (dependencies
 * first) + firmware + /etc/vfiod/manifest (doc/guest-manifest.md) +
 * /etc/vfiod/version, packed by vfd_initramfs_build() and cached by content.
 *
 * Checks (libkmod for everything about modules):
 *  - every staged module's vermagic starts with @kernel_release (the pinned
 *    guest kernel) followed by a space or the end;
 *  - dependencies come from the modules tree's depmod indexes
 *    (modules.dep.bin), added automatically and ordered dependencies first
 *    (depth-first over the requested modules in the order given, each
 *    module's dependencies in modules.dep order; deterministic);
 *  - with @gpu: nvidia.ko must be in the tree, with a "version" equal to
 *    @nvidia_version; nvidia-modeset and nvidia-uvm are added when present;
 *    firmware is taken from <firmware_dir>/nvidia/<nvidia_version>/ only;
 *  - a module or firmware file that is a symlink (or not a regular file),
 *    whose path has a ".." component, or whose real path is not inside its
 *    source tree (the real path of @modules_dir or @firmware_dir) is refused.
 * Soft dependencies (modules.softdep) are not followed: name them as
 * modules when the guest needs them.
 *
 * The image:
 *   /init                                  guest-init (0755)
 *   /lib/modules/<release>/<path in tree>  each module (0644)
 *   /lib/firmware/nvidia/<version>/...     firmware, with @gpu (0644)
 *   /etc/vfiod/manifest                    the manifest (0644)
 *   /etc/vfiod/version                     "stamp <hex>\nvfiod <VFIOD_VERSION>\n" (0644)
 *
 * The stamp is the SHA-256 (hex) of: the manifest without its "stamp" line,
 * the vfiod version, then for guest-init and every staged file its image
 * path, its size and its bytes. It is the cache key: the image is
 * <cache_dir>/<stamp>.cpio.gz, and when that already exists it is reused
 * without packing again. */

typedef struct {
  const char *guest_init;           /* required: the static guest-init binary */
  const char *kernel_release;       /* required: pins.env GUEST_KERNEL_RELEASE */
  const char *modules_dir;          /* a lib/modules/<release> tree with depmod indexes;
                                     * required when @modules is non-empty or @gpu */
  const char *const *modules;       /* NULL-terminated module names ("e1000e"), or NULL */
  const char *const *params;        /* NULL-terminated "MODULE:KEY=VALUE", or NULL */
  gboolean gpu;                     /* stage nvidia.ko (+ modeset, uvm) and its firmware */
  const char *nvidia_version;       /* versions.env NVIDIA_DRIVER_VERSION; required with @gpu */
  const char *firmware_dir;         /* holding nvidia/<version>/; required with @gpu */
  const char *cache_dir;            /* where images are kept by stamp; created if missing */
  const char *output;               /* also (or, without @cache_dir, only) write the image here */
} VfdStageRequest;

typedef struct {
  char *path;      /* the image: @output when given, else the cache entry */
  char *stamp;     /* sha256 hex */
  gboolean cached; /* the cache already held the image: nothing was packed */
  GStrv modules;   /* module names in load order (as in the manifest) */
  char *manifest;  /* the manifest text */
} VfdStageResult;

void vfd_stage_result_free(VfdStageResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdStageResult, vfd_stage_result_free)

/* Stages and packs (or reuses) the image described by @req.
 * Errors (G_IO_ERROR domain), each naming the file or module:
 *  - G_IO_ERROR_INVALID_ARGUMENT: a refused input (vermagic mismatch,
 *    symlink, "..", path leaving its tree, nvidia.ko of another version,
 *    malformed module name or parameter, a parameter for a module that is
 *    not staged, missing required request fields);
 *  - G_IO_ERROR_NOT_FOUND: a module not in the tree, no nvidia.ko with @gpu,
 *    no firmware directory for the driver version, no depmod indexes,
 *    missing guest-init;
 *  - other codes when reading or writing fails. */
gboolean vfd_stage_build(const VfdStageRequest *req, VfdStageResult **ret, GError **error);
