/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "nvidia.h"

#include <errno.h>
#include <stdlib.h>

void
vfd_nvidia_holder_free(VfdNvidiaHolder *h)
{
  if (!h)
    return;
  g_free(h->comm);
  g_free(h->node);
  g_free(h);
}

/* "Device Minor:    0" in the nvidia driver's per-GPU information file. */
static int
device_minor(const char *proc_root, const VfdBdf *bdf, int *ret)
{
  char b[VFD_BDF_STRLEN];
  g_autofree char *path = g_build_filename(proc_root, "driver", "nvidia", "gpus", vfd_bdf_format(bdf, b),
                                           "information", NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return -ENOENT;
  lines = g_strsplit(contents, "\n", -1);
  for (char **l = lines; *l; l++) {
    if (g_str_has_prefix(*l, "Device Minor:")) {
      char *end = NULL;
      const char *v = *l + strlen("Device Minor:");
      long n = strtol(v, &end, 10);
      if (end == v || n < 0 || n > 255)
        return -EINVAL;
      *ret = (int) n;
      return 0;
    }
  }
  return -ENOENT;
}

/* Appends to @holders (VfdNvidiaHolder) every process under @proc_root
 * with an fd open on one of @nodes (NULL-terminated); each process once, with
 * the first node found. -EACCES when @proc_root cannot be read. */
static int
scan_holders(const char *proc_root, const char *const *nodes, GPtrArray *holders)
{
  g_autoptr(GDir) proc = g_dir_open(proc_root, 0, NULL);
  const char *pid_name;

  if (!proc)
    return -EACCES;
  while ((pid_name = g_dir_read_name(proc))) {
    g_autofree char *fd_dir_path = NULL;
    g_autoptr(GDir) fd_dir = NULL;
    const char *fd_name;
    char *end = NULL;
    gint64 pid = g_ascii_strtoll(pid_name, &end, 10);

    if (!end || *end || pid <= 0)
      continue;
    fd_dir_path = g_build_filename(proc_root, pid_name, "fd", NULL);
    fd_dir = g_dir_open(fd_dir_path, 0, NULL);
    if (!fd_dir)
      continue; /* gone, or not ours to read */
    while ((fd_name = g_dir_read_name(fd_dir))) {
      g_autofree char *link = g_build_filename(fd_dir_path, fd_name, NULL);
      g_autofree char *target = g_file_read_link(link, NULL);

      if (target && g_strv_contains(nodes, target)) {
        VfdNvidiaHolder *h = g_new0(VfdNvidiaHolder, 1);
        g_autofree char *comm_path = g_build_filename(proc_root, pid_name, "comm", NULL);
        h->pid = pid;
        if (g_file_get_contents(comm_path, &h->comm, NULL, NULL))
          g_strchomp(h->comm);
        else
          h->comm = g_strdup("?");
        h->node = g_strdup(target);
        g_ptr_array_add(holders, h);
        break;
      }
    }
  }
  return 0;
}

int
vfd_nvidia_find_holders(const char *proc_root, const char *dev_root, const VfdBdf *bdf, GPtrArray **ret_holders)
{
  g_autoptr(GPtrArray) holders = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_nvidia_holder_free);
  g_autofree char *node = NULL;
  int minor, r;

  if (device_minor(proc_root, bdf, &minor) < 0) {
    *ret_holders = g_steal_pointer(&holders);
    return 0;
  }
  node = g_strdup_printf("%s/nvidia%d", dev_root, minor);
  r = scan_holders(proc_root, (const char *const[]){ node, NULL }, holders);
  if (r < 0)
    return r;
  *ret_holders = g_steal_pointer(&holders);
  return 0;
}

/* Services that keep NVIDIA GPUs busy without (always) holding a GPU's own
 * node: /proc/<pid>/comm (15 characters at most) and what to do. */
static const struct {
  const char *comm;
  const char *what;
} busy_services[] = {
  { "nv-fabricmanage", "the NVSwitch fabric manager (stop nvidia-fabricmanager)" },
  { "nv-hostengine", "DCGM's host engine (stop nvidia-dcgm)" },
};

int
vfd_nvidia_find_hazards(const char *sys_root, const char *proc_root, const char *dev_root, const char *nvidia_smi,
                        const VfdBdf *bdf, GPtrArray **ret_hazards)
{
  g_autoptr(GPtrArray) hazards = g_ptr_array_new_with_free_func(g_free);
  char b[VFD_BDF_STRLEN];
  g_autofree char *dev = g_build_filename(sys_root, "bus", "pci", "devices", vfd_bdf_format(bdf, b), NULL);
  g_autofree char *numvfs_path = g_build_filename(dev, "sriov_numvfs", NULL);
  g_autofree char *numvfs = NULL;
  g_autofree char *drm_path = g_build_filename(dev, "drm", NULL);
  g_autoptr(GDir) drm = g_dir_open(drm_path, 0, NULL);
  g_autoptr(GPtrArray) dri_nodes = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) proc = NULL;
  const char *name;

  /* SR-IOV: the VFs hang off the physical function's driver. */
  if (g_file_get_contents(numvfs_path, &numvfs, NULL, NULL) && g_ascii_strtoull(numvfs, NULL, 10) > 0)
    g_ptr_array_add(hazards, g_strdup_printf("%" G_GUINT64_FORMAT " SR-IOV virtual functions are enabled "
                                             "(echo 0 > %s)",
                                             g_ascii_strtoull(numvfs, NULL, 10), numvfs_path));
  /* nvidia-drm: /dev/dri/card<N> and renderD<N> of this GPU. */
  while (drm && (name = g_dir_read_name(drm)))
    if (g_str_has_prefix(name, "card") || g_str_has_prefix(name, "renderD"))
      g_ptr_array_add(dri_nodes, g_build_filename(dev_root, "dri", name, NULL));
  if (dri_nodes->len > 0) {
    g_autoptr(GPtrArray) holders = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_nvidia_holder_free);
    g_ptr_array_add(dri_nodes, NULL);
    if (scan_holders(proc_root, (const char *const *) dri_nodes->pdata, holders) == 0)
      for (guint i = 0; i < holders->len; i++) {
        VfdNvidiaHolder *h = g_ptr_array_index(holders, i);
        g_ptr_array_add(hazards, g_strdup_printf("pid %" G_GINT64_FORMAT " (%s) holds %s (nvidia-drm)", h->pid,
                                                 h->comm, h->node));
      }
  }
  /* The fabric manager and DCGM. */
  proc = g_dir_open(proc_root, 0, NULL);
  while (proc && (name = g_dir_read_name(proc))) {
    g_autofree char *comm_path = NULL;
    g_autofree char *comm = NULL;
    char *end = NULL;
    gint64 pid = g_ascii_strtoll(name, &end, 10);

    if (!end || *end || pid <= 0)
      continue;
    comm_path = g_build_filename(proc_root, name, "comm", NULL);
    if (!g_file_get_contents(comm_path, &comm, NULL, NULL))
      continue;
    g_strchomp(comm);
    for (guint i = 0; i < G_N_ELEMENTS(busy_services); i++)
      if (g_str_equal(comm, busy_services[i].comm))
        g_ptr_array_add(hazards, g_strdup_printf("pid %" G_GINT64_FORMAT " (%s) runs: %s", pid, comm,
                                                 busy_services[i].what));
  }
  /* Persistence mode (the legacy kernel one holds the GPU with no open
   * file): only nvidia-smi tells, bounded to 5 s. */
  if (nvidia_smi && *nvidia_smi) {
    const char *argv[] = { "timeout", "5", nvidia_smi, "--query-gpu=persistence_mode", "--format=csv,noheader",
                           "-i", b, NULL };
    g_autofree char *out = NULL;
    int status = 0;

    if (g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                     &out, NULL, &status, NULL) &&
        g_spawn_check_wait_status(status, NULL) && out && g_str_has_prefix(g_strstrip(out), "Enabled"))
      g_ptr_array_add(hazards, g_strdup_printf("persistence mode is on (nvidia-smi -i %s -pm 0, or stop "
                                               "nvidia-persistenced)",
                                               b));
  }
  *ret_hazards = g_steal_pointer(&hazards);
  return 0;
}

char *
vfd_nvidia_holders_describe(GPtrArray *holders)
{
  g_autoptr(GString) s = g_string_new(NULL);

  for (guint i = 0; i < holders->len; i++) {
    VfdNvidiaHolder *h = g_ptr_array_index(holders, i);
    g_string_append_printf(s, "%spid %" G_GINT64_FORMAT " (%s)", i ? ", " : "", h->pid, h->comm);
  }
  return g_string_free(g_steal_pointer(&s), FALSE);
}
