/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "path.h"

#include <string.h>

gboolean
vfd_path_check(const char *path, VfdPathRules rules)
{
  const char *p;

  if (!path)
    return FALSE;
  if ((rules & VFD_PATH_ABSOLUTE) && path[0] != '/')
    return FALSE;
  p = path[0] == '/' ? path + 1 : path;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t) (end - p) : strlen(p);

    if ((rules & VFD_PATH_NO_EMPTY) && n == 0)
      return FALSE;
    if ((rules & VFD_PATH_NO_DOT) && n == 1 && p[0] == '.')
      return FALSE;
    if ((rules & VFD_PATH_NO_DOTDOT) && n == 2 && p[0] == '.' && p[1] == '.')
      return FALSE;
    if (!end)
      return TRUE;
    p = end + 1;
  }
}
