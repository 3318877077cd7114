/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

/* The whole guest of a sandbox, built by one command (vfioctl image build):
 * the pinned guest kernel, the initramfs with guest-init, and with @gpu the
 * NVIDIA driver layer, all installed into one directory that vfiod's
 * [qemu] kernel, initrd and driver_layer default to.
 *
 * A thin wrapper: the kernel is fetched by tests/lab/fetch-kernel.sh (the
 * pins of pins.env resolved by scripts/archive.sh against the Debian
 * archive), the driver layer built by kernel-modules/build-driver-layer.sh
 * (content-addressed cache), the initramfs staged in-process by
 * vfd_stage_build() (cached by stamp). The scripts are run from the
 * installed data dir (<datadir>/vfiod, same layout as the source tree),
 * else from the source tree of this build. A script step whose inputs and
 * outputs are as its last successful run left them is answered from its
 * warm memo in <cache>/warm/ instead (warm.h): no script started. */

/* Where `vfioctl image build` installs the image by default, and where
 * vfiod's [qemu] kernel/initrd/driver_layer point when unset (meson option
 * image_dir). */
#ifndef VFIOD_IMAGE_DIR
#define VFIOD_IMAGE_DIR "/var/lib/vfiod/image"
#endif
#define VFD_IMAGE_KERNEL "vmlinuz"
#define VFD_IMAGE_INITRD "initramfs"
#define VFD_IMAGE_DRIVER_LAYER "driver-layer.erofs"
#define VFD_IMAGE_JSON "image.json"

/* The modules every image stages (dependencies are added by the stager):
 * virtio over MMIO (microvm) and PCI (Q35), the sandbox NIC, vsock for the
 * ready report, the root disk (virtio_blk, ext4), the ACPI power button
 * (button, evdev) for a graceful delete. With @gpu also what the driver
 * layer needs before nvidia.ko loads from it: erofs (with crc32c_generic)
 * to mount it, drm for nvidia.ko and video for nvidia-modeset.ko. NULL-terminated. */
extern const char *const vfd_image_modules[];
extern const char *const vfd_image_gpu_modules[];

typedef struct {
  const char *output_dir;  /* DIR: absolute or relative, no ".." component, not a symbolic link;
                            * created (with parents) when missing */
  const char *cache_dir;   /* the caches: <cache>/kernel (fetch-kernel.sh), <cache>/driver-layer
                            * (build-driver-layer.sh), <cache>/initramfs (by stamp), <cache>/layer-out */
  const char *guest_init;  /* the static guest-init binary */
  const char *scripts_dir; /* holds tests/lab/fetch-kernel.sh, kernel-modules/, scripts/, pins.env */
  const char *debs_dir;    /* with @gpu: build-driver-layer.sh --debs (no apt for the NVIDIA
                            * packages: offline hosts, or another version); NULL: apt */
  gboolean gpu;            /* also the NVIDIA driver layer */
  gboolean quiet;          /* the scripts' progress (stderr) is kept, shown only on failure */
} VfdImageRequest;

typedef struct {
  JsonNode *image;   /* what DIR/image.json holds (object) */
  gboolean cached;   /* DIR already held this very image: nothing was copied */
  gint64 ms_kernel;  /* wall-clock milliseconds of each step */
  gint64 ms_layer;   /* -1 without @gpu */
  gint64 ms_initramfs;
  gint64 ms_install;
  gint64 ms_total;
  gboolean warm_kernel; /* the kernel step answered from its warm memo (warm.h): no fetch-kernel.sh */
  gboolean warm_layer;  /* the layer step answered from its warm memo: no build-driver-layer.sh */
} VfdImageResult;

void vfd_image_result_free(VfdImageResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdImageResult, vfd_image_result_free)

/* Checks @dir as an output directory without touching anything: no ".."
 * component, not a symbolic link, a directory when it exists. FALSE with
 * G_IO_ERROR_INVALID_ARGUMENT naming it and the rule. */
gboolean vfd_image_check_output_dir(const char *dir, GError **error);

/* Builds (or reuses) the image of @req and installs it into
 * @req->output_dir: vmlinuz, initramfs, with @gpu driver-layer.erofs
 * (regular files, 0644, each written to a temporary name and renamed), and
 * last image.json:
 *   {"format":1, "key":SHA256, "gpu":BOOL,
 *    "kernel":{"path","release","package","version","sha256"},
 *    "initramfs":{"path","stamp","modules":[...]},
 *    "driver_layer":null|{"path","key","driver_version","kernel_release","packages":{...}}}
 * The key is the SHA-256 of the kernel package, version and image hash,
 * the initramfs stamp and the layer key: when DIR/image.json holds the same
 * key and the files are there with their sizes, nothing is copied. Without
 * @gpu a driver-layer.erofs left in DIR by an earlier build is removed (it
 * would be attached to GPU sandboxes, for another image).
 * Errors (G_IO_ERROR): INVALID_ARGUMENT for a bad DIR; NOT_FOUND for a
 * missing script or guest-init; FAILED naming the step and the script's
 * exit status when a script fails (its stderr was shown, or is in the
 * message when @quiet); the stager's errors; I/O errors writing DIR. */
gboolean vfd_image_build(const VfdImageRequest *req, VfdImageResult **ret, GError **error);
