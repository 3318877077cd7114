/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"
#include "manifest.h"
#include "nvidia.h"

/* Loading what the stager put into the image (doc/guest-manifest.md), and
 * the NVIDIA set-up that follows. Errors are -errno with an English message
 * in @err (the caller reports it, fatally). */

#define GI_FIRMWARE_CLASS_PATH "/sys/module/firmware_class/parameters/path"
#define GI_MAX_NVIDIA_NODES 64
#define GI_MAX_GPUS 16

typedef struct {
  char loaded[GI_MANIFEST_MAX_MODULES][64]; /* module names, load order (EEXIST included) */
  size_t n_loaded;
  size_t n_skipped;                         /* NVIDIA modules left out by vfiod.gpu/.nvidia */
  bool nvidia;                              /* nvidia.ko is loaded */
  bool nvidia_modeset;                      /* nvidia-modeset.ko is loaded */
} GiModules;

/* Writes @dir to firmware_class's search path parameter, so that
 * request_firmware() looks there first. Returns 0 or -errno. */
int gi_firmware_set_path(const char *dir);

/* Loads the manifest's modules in order with finit_module(2) and their
 * parameters, leaving out NVIDIA modules that vfiod.gpu / vfiod.nvidia do not
 * want (gi_nvidia_module_wanted()). EEXIST is not an error. A module that
 * fails stops the loading: -errno, with the path and the error in @err.
 * finit_module() itself cannot be timed out: a module whose init hangs hangs
 * guest-init (the kernel's business). */
int gi_modules_load(const GiManifest *m, const GiCmdline *c, GiModules *ret, char *err, size_t err_size);

/* The NVIDIA state after gi_nvidia_setup(). */
typedef struct {
  char nodes[GI_MAX_NVIDIA_NODES][48];  /* /dev nodes created */
  size_t n_nodes;
  char persistenced[96];                /* "running", "absent", "failed: ..." */
  char smi[96];                         /* "ok", "absent", "exit:N", "timeout", "failed: ..." */
  char gpus[GI_MAX_GPUS][160];          /* `nvidia-smi -L` lines */
  size_t n_gpus;
} GiNvidiaState;

/* With nvidia.ko loaded: creates the /dev/nvidia* nodes from /proc/devices
 * and /proc/driver/nvidia/gpus/<bdf>/information (gi_nvidia_node_plan()),
 * starts /usr/bin/nvidia-persistenced when the image has it (30 s limit for
 * it to daemonize) and runs /usr/bin/nvidia-smi -L when the image has it (60
 * s limit). Only the nodes are fatal (-errno and @err): a failing
 * persistenced or nvidia-smi is reported in @ret. */
int gi_nvidia_setup(bool modeset, GiNvidiaState *ret, char *err, size_t err_size);
