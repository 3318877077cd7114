/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "meminfo.h"

#include <string.h>

/* The value of "Key: N kB"-style line @key in @contents (/proc/meminfo's
 * text, may be NULL); 0 when absent. */
static guint64
meminfo_value(const char *contents, const char *key)
{
  size_t n = strlen(key);

  for (const char *l = contents; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, key, n) == 0 && l[n] == ':')
      return g_ascii_strtoull(l + n + 1, NULL, 10);
  return 0;
}

gboolean
vfd_meminfo_read(const char *proc_root, VfdMeminfo *ret)
{
  g_autofree char *path = g_build_filename(proc_root, "meminfo", NULL);
  g_autofree char *contents = NULL;
  gboolean ok = g_file_get_contents(path, &contents, NULL, NULL);

  ret->mem_total_kib = meminfo_value(contents, "MemTotal");
  ret->hugepages_total = meminfo_value(contents, "HugePages_Total");
  ret->hugepages_free = meminfo_value(contents, "HugePages_Free");
  ret->hugepage_kib = meminfo_value(contents, "Hugepagesize");
  return ok;
}
