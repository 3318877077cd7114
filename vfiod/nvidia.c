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

int
vfd_nvidia_find_holders(const char *proc_root, const char *dev_root, const VfdBdf *bdf, GPtrArray **ret_holders)
{
  g_autoptr(GPtrArray) holders = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_nvidia_holder_free);
  g_autoptr(GDir) proc = NULL;
  g_autofree char *node = NULL;
  const char *pid_name;
  int minor;

  if (device_minor(proc_root, bdf, &minor) < 0) {
    *ret_holders = g_steal_pointer(&holders);
    return 0;
  }
  node = g_strdup_printf("%s/nvidia%d", dev_root, minor);
  proc = g_dir_open(proc_root, 0, NULL);
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

      if (target && g_str_equal(target, node)) {
        VfdNvidiaHolder *h = g_new0(VfdNvidiaHolder, 1);
        g_autofree char *comm_path = g_build_filename(proc_root, pid_name, "comm", NULL);
        h->pid = pid;
        if (g_file_get_contents(comm_path, &h->comm, NULL, NULL))
          g_strchomp(h->comm);
        else
          h->comm = g_strdup("?");
        h->node = g_strdup(node);
        g_ptr_array_add(holders, h);
        break;
      }
    }
  }
  *ret_holders = g_steal_pointer(&holders);
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
