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
  size_t n_skipped;                         /* NVIDIA modules left out by vfiod.gpu/.nvidia, or after
                                             * an NVIDIA module failed */
  bool nvidia;                              /* nvidia.ko is loaded */
  bool nvidia_modeset;                      /* nvidia-modeset.ko is loaded */
  bool nvidia_staged;                       /* an nvidia.ko was to be loaded (from the manifest or the
                                             * driver layer), whether it loaded or not */
  char nvidia_error[320];                   /* the first NVIDIA module that failed to load and why,
                                             * "" when none did */
} GiModules;

/* Writes @dir to firmware_class's search path parameter, so that
 * request_firmware() looks there first. Returns 0 or -errno. */
int gi_firmware_set_path(const char *dir);

/* Loads one module file with finit_module(2) and @params ("" for none).
 * EEXIST (already loaded) is success. Returns 0 or -errno. */
int gi_module_load(const char *path, const char *params);

/* Describes a failed gi_module_load() of @path: "<path><where>: <why>", with
 * finit_module()'s ENOENT (once the file opened) as "unknown symbol (a
 * dependency not loaded before it?)". @where: e.g. " (manifest line 5)". */
void gi_module_describe_error(char *buf, size_t size, const char *path, const char *where, int r);

/* Records a module loaded by name in @m (and the NVIDIA flags). */
void gi_modules_add(GiModules *m, const char *name);

/* Loads the manifest's modules in order with finit_module(2) and their
 * parameters, leaving out NVIDIA modules that vfiod.gpu / vfiod.nvidia do not
 * want (gi_nvidia_module_wanted()). EEXIST is not an error. A module that
 * fails stops the loading: -errno, with the path and the error in @err;
 * except an NVIDIA module: its failure is kept in @ret->nvidia_error, the
 * NVIDIA modules after it are left out, the others are loaded (the GPU
 * set-up reports it, with the kernel's NVRM lines). finit_module() itself
 * cannot be timed out: a module whose init hangs hangs guest-init (the
 * kernel's business). */
int gi_modules_load(const GiManifest *m, const GiCmdline *c, GiModules *ret, char *err, size_t err_size);

#define GI_MODULE_THREADS 4

/* gi_modules_load() with independent modules loaded at the same time (up to
 * GI_MODULE_THREADS finit_module() calls at once), which is what a module
 * whose init waits (device probes, firmware, RCU) gains from. The order
 * comes from each .ko's .modinfo "depends=" (the modules it needs, which
 * modpost writes; those among the manifest's are loaded first); a module
 * whose .modinfo cannot be read or that has a "softdep=" waits for every
 * module before it in the manifest; NVIDIA modules keep their manifest
 * order among themselves. Errors as gi_modules_load(): the first failing
 * non-NVIDIA module in manifest order is reported (modules not started by
 * then are not loaded); an NVIDIA failure goes to @ret->nvidia_error and
 * the NVIDIA modules after it are left out. @ret->loaded is in completion
 * order. @on_base_done (may be NULL) is called once, from whichever thread
 * settles it, as soon as every non-NVIDIA module is loaded (not after a
 * failure), so that the caller can set up the network while the NVIDIA
 * modules still load. */
int gi_modules_load_parallel(const GiManifest *m, const GiCmdline *c, GiModules *ret, void (*on_base_done)(void *),
                             void *data, char *err, size_t err_size);

#define GI_MAX_SMI_OUTPUT 8

/* The NVIDIA state after gi_nvidia_create_nodes() and
 * gi_nvidia_start_helpers(). */
typedef struct {
  char nodes[GI_MAX_NVIDIA_NODES][48];  /* /dev nodes created */
  size_t n_nodes;
  char persistenced[96];                /* "running", "absent", "failed: ..." */
  int persistenced_pid;                 /* the daemon's pid from its pid file, 0 when unknown */
  char fabricmanager[96];               /* "" (no NVSwitch), "running", "absent", "failed: ..." */
  int fabricmanager_pid;                /* nv-fabricmanager's pid from its pid file, 0 when unknown */
  char smi[96];                         /* "ok", "absent", "exit:N", "timeout", "failed: ..." */
  char gpus[GI_MAX_GPUS][160];          /* `nvidia-smi -L` lines (when it exited 0) */
  size_t n_gpus;
  char smi_output[GI_MAX_SMI_OUTPUT][160]; /* its lines when it failed */
  size_t n_smi_output;
} GiNvidiaState;

/* With nvidia.ko loaded: creates the /dev/nvidia* nodes from /proc/devices
 * and /proc/driver/nvidia/gpus/<bdf>/information (gi_nvidia_node_plan()).
 * Returns 0, or -errno with @err. @ret is reset first. */
int gi_nvidia_create_nodes(bool modeset, GiNvidiaState *ret, char *err, size_t err_size);

/* Where the NVIDIA user-space helpers run. */
typedef struct {
  const char *root;          /* chroot() there first (the workload's root), or NULL */
  const char *bin_dir;       /* their directory as seen from there: "/usr/bin", or the driver
                              * layer's usr/bin */
  char *const *envp;         /* their environment; NULL for the clean one */
  unsigned nvswitches;       /* NVSwitch functions in the guest (gi_pci_count_nvswitches()) */
} GiHelpers;

/* NVIDIA's fabric manager, which an HGX board passed whole needs inside the
 * guest before CUDA can use NVLink: not in Debian, so supplied by the
 * operator in the workload's root (or the driver layer's bin directory), in
 * the version of the driver. guest-init starts it when the guest has
 * NVSwitches (the hook, README "Real GPUs"). */
#define GI_FABRICMANAGER_NAME "nv-fabricmanager"
#define GI_FABRICMANAGER_CONFIG "/usr/share/nvidia/nvswitch/fabricmanager.cfg"
#define GI_FABRICMANAGER_PID_FILE "/var/run/nvidia-fabricmanager/nv-fabricmanager.pid"

/* When @h->nvswitches > 0: starts the fabric manager first,
 * GI_FABRICMANAGER_NAME from @h->bin_dir or the root's /usr/bin, as
 * `nv-fabricmanager -c GI_FABRICMANAGER_CONFIG` (60 s limit for it to
 * daemonize; pid from GI_FABRICMANAGER_PID_FILE inside the root), "absent"
 * when neither has it (CUDA then fails with error 802 on such a board).
 * Then starts nvidia-persistenced (persistence mode on, its default) when
 * @h->bin_dir has it (30 s limit for it to daemonize; its pid is read from
 * its pid file, /var/run/nvidia-persistenced/nvidia-persistenced.pid inside
 * the root), and runs nvidia-smi -L when it is there (60 s limit). Failures
 * are only reported in @ret. */
void gi_nvidia_start_helpers(const GiHelpers *h, GiNvidiaState *ret);

/* Stops a daemon that gi_nvidia_start_helpers() started (nvidia-persistenced
 * or the fabric manager; @pid, 0 for none): SIGTERM (persistenced then turns
 * persistence mode off and exits),
 * waits at most @timeout_ms for it to be gone (reaping it: it is PID 1's
 * child once daemonized), then SIGKILL and 1 s more. Returns "stopped",
 * "killed", "gone" (it had exited already) or "none" (@pid 0). */
const char *gi_nvidia_stop_persistenced(int pid, int timeout_ms);
