/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "bdf.h"

/* A process that holds one of a GPU's /dev/nvidia* nodes open. */
typedef struct {
  gint64 pid;
  char *comm; /* /proc/<pid>/comm, e.g. "nvidia-persistenced" */
  char *node; /* the node it holds, e.g. "/dev/nvidia0" */
} VfdNvidiaHolder;

void vfd_nvidia_holder_free(VfdNvidiaHolder *holder);

/* Finds the processes that hold the character device of the NVIDIA GPU at
 * @bdf open: its minor number comes from
 * <proc_root>/driver/nvidia/gpus/<BDF>/information ("Device Minor: N"), its
 * node is <dev_root>/nvidia<N>; every <proc_root>/<pid>/fd/<n> link is read.
 * Unbinding the nvidia driver from a GPU with open handles blocks forever.
 * Returns 0 and a GPtrArray of VfdNvidiaHolder (empty when none, or when the
 * nvidia driver does not know the GPU); -errno when <proc_root> cannot be
 * read. Processes that vanish during the scan, or whose fds cannot be read,
 * are skipped. */
int vfd_nvidia_find_holders(const char *proc_root, const char *dev_root, const VfdBdf *bdf, GPtrArray **ret_holders);

/* Hazards of unbinding the nvidia driver from the GPU at @bdf beyond open
 * /dev/nvidia<N> handles (vfd_nvidia_find_holders()), each a sentence
 * naming the holder and the fix (GPtrArray of char *, empty when none):
 * - SR-IOV virtual functions enabled (<sys_root>/bus/pci/devices/<BDF>/
 *   sriov_numvfs > 0);
 * - processes holding the GPU's DRM nodes (<sys_root>/.../<BDF>/drm/card*,
 *   renderD* -> <dev_root>/dri/<name>, found through <proc_root>/<pid>/fd);
 * - the NVSwitch fabric manager or DCGM's host engine running
 *   (<proc_root>/<pid>/comm "nv-fabricmanage", "nv-hostengine");
 * - persistence mode on, asked of @nvidia_smi (a path or a name looked up in
 *   PATH; NULL or "": not asked) with a 5 s bound ("timeout 5 nvidia-smi
 *   --query-gpu=persistence_mode --format=csv,noheader -i <BDF>": "Enabled");
 *   an nvidia-smi that fails or is missing says nothing.
 * Returns 0 (the scans skip what they cannot read). */
int vfd_nvidia_find_hazards(const char *sys_root, const char *proc_root, const char *dev_root, const char *nvidia_smi,
                            const VfdBdf *bdf, GPtrArray **ret_hazards);

/* "pid 1234 (nvidia-persistenced), pid 99 (python3)". */
char *vfd_nvidia_holders_describe(GPtrArray *holders);
