/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "nvidia.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmdline.h"

/* Compares module names with '-' and '_' taken as equal. */
static bool
name_equal(const char *a, const char *b)
{
  for (; *a != '\0' && *b != '\0'; a++, b++) {
    char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
    if (x != y)
      return false;
  }
  return *a == *b;
}

GiNvidiaModule
gi_nvidia_module_kind(const char *name)
{
  if (name_equal(name, "nvidia"))
    return GI_NVIDIA_MODULE_CORE;
  if (name_equal(name, "nvidia_uvm"))
    return GI_NVIDIA_MODULE_UVM;
  if (name_equal(name, "nvidia_modeset"))
    return GI_NVIDIA_MODULE_MODESET;
  if (name_equal(name, "nvidia_drm"))
    return GI_NVIDIA_MODULE_DRM;
  if (name_equal(name, "nvidia_peermem"))
    return GI_NVIDIA_MODULE_PEERMEM;
  if (strncmp(name, "nvidia_", 7) == 0 || strncmp(name, "nvidia-", 7) == 0)
    return GI_NVIDIA_MODULE_OTHER;
  return GI_NVIDIA_MODULE_NONE;
}

bool
gi_nvidia_module_wanted(GiNvidiaModule kind, bool gpu, unsigned mask)
{
  if (kind == GI_NVIDIA_MODULE_NONE)
    return true;
  if (!gpu)
    return false;
  switch (kind) {
  case GI_NVIDIA_MODULE_UVM:
    return (mask & GI_NVIDIA_UVM) != 0;
  case GI_NVIDIA_MODULE_MODESET:
    return (mask & (GI_NVIDIA_MODESET | GI_NVIDIA_DRM)) != 0;
  case GI_NVIDIA_MODULE_DRM:
    return (mask & GI_NVIDIA_DRM) != 0;
  case GI_NVIDIA_MODULE_PEERMEM:
    return (mask & GI_NVIDIA_PEERMEM) != 0;
  case GI_NVIDIA_MODULE_CORE:
  case GI_NVIDIA_MODULE_OTHER:
  default:
    return true;
  }
}

/* Copies the line starting at @p (without its '\n') into @buf, cut to
 * @size - 1 bytes; returns the start of the next line, or NULL at the end. */
static const char *
next_line(const char *p, char *buf, size_t size)
{
  const char *nl = strchr(p, '\n');
  size_t len = nl ? (size_t) (nl - p) : strlen(p);

  if (len >= size)
    len = size - 1;
  memcpy(buf, p, len);
  buf[len] = '\0';
  return nl ? nl + 1 : NULL;
}

int
gi_proc_devices_find(const char *text, const char *name, unsigned *ret_major)
{
  bool in_char = false;

  for (const char *p = text ? text : ""; p && *p != '\0'; ) {
    char line[128], dev[96], tail;
    unsigned major;

    p = next_line(p, line, sizeof(line));
    if (strcmp(line, "Character devices:") == 0) {
      in_char = true;
      continue;
    }
    if (line[0] == '\0' || strchr(line, ':')) {
      /* A blank line or another section header ("Block devices:"). */
      in_char = false;
      continue;
    }
    if (!in_char)
      continue;
    if (sscanf(line, "%u %95s %c", &major, dev, &tail) == 2 && strcmp(dev, name) == 0) {
      *ret_major = major;
      return 0;
    }
  }
  return -ENOENT;
}

int
gi_nvidia_parse_minor(const char *text, unsigned *ret_minor)
{
  static const char key[] = "Device Minor:";

  for (const char *p = text ? text : ""; p && *p != '\0'; ) {
    char line[128];
    const char *v;
    unsigned long minor = 0;
    bool digits = false;

    p = next_line(p, line, sizeof(line));
    if (strncmp(line, key, strlen(key)) != 0)
      continue;
    for (v = line + strlen(key); *v == ' ' || *v == '\t'; v++)
      ;
    for (; *v >= '0' && *v <= '9'; v++) {
      digits = true;
      minor = minor * 10 + (unsigned long) (*v - '0');
      if (minor > GI_NVIDIA_MAX_GPU_MINOR)
        return -EINVAL;
    }
    while (*v == ' ' || *v == '\t')
      v++;
    if (!digits || *v != '\0')
      return -EINVAL;
    *ret_minor = (unsigned) minor;
    return 0;
  }
  return -ENOENT;
}

static int
add_node(GiDevNode *ret, size_t max, size_t *n, const char *path, unsigned major, unsigned minor)
{
  if (*n == max)
    return -E2BIG;
  snprintf(ret[*n].path, sizeof(ret[*n].path), "%s", path);
  ret[*n].major = major;
  ret[*n].minor = minor;
  (*n)++;
  return 0;
}

int
gi_nvidia_node_plan(const char *proc_devices, const unsigned *minors, size_t n_minors, bool modeset,
                    GiDevNode *ret, size_t max)
{
  unsigned major, uvm;
  size_t n = 0;
  int r;

  if (gi_proc_devices_find(proc_devices, "nvidia", &major) < 0 &&
      gi_proc_devices_find(proc_devices, "nvidia-frontend", &major) < 0)
    return -ENOENT;
  for (size_t i = 0; i < n_minors; i++)
    if (minors[i] > GI_NVIDIA_MAX_GPU_MINOR)
      return -EINVAL;

  r = add_node(ret, max, &n, "/dev/nvidiactl", major, GI_NVIDIA_MAJOR_CTL_MINOR);
  for (size_t i = 0; r == 0 && i < n_minors; i++) {
    char path[32];

    snprintf(path, sizeof(path), "/dev/nvidia%u", minors[i]);
    r = add_node(ret, max, &n, path, major, minors[i]);
  }
  if (r == 0 && modeset)
    r = add_node(ret, max, &n, "/dev/nvidia-modeset", major, GI_NVIDIA_MAJOR_MODESET_MINOR);
  if (r == 0 && gi_proc_devices_find(proc_devices, "nvidia-uvm", &uvm) == 0) {
    r = add_node(ret, max, &n, "/dev/nvidia-uvm", uvm, GI_NVIDIA_UVM_MINOR);
    if (r == 0)
      r = add_node(ret, max, &n, "/dev/nvidia-uvm-tools", uvm, GI_NVIDIA_UVM_TOOLS_MINOR);
  }
  if (r < 0)
    return r;
  return (int) n;
}
