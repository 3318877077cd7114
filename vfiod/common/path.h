/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Checks of path names vfiod is given (by a client, the configuration, the
 * journal, a command line) before it uses them. Text only: nothing is
 * looked up on disk. */

#include <glib.h>

typedef enum {
  VFD_PATH_NO_DOTDOT = 1 << 0, /* no ".." component */
  VFD_PATH_NO_DOT = 1 << 1,    /* no "." component */
  VFD_PATH_NO_EMPTY = 1 << 2,  /* no empty component after one leading '/': refuses "a//b", "a/", "/", "" */
  VFD_PATH_ABSOLUTE = 1 << 3,  /* starts with '/' */
} VfdPathRules;

/* TRUE when @path (may be NULL: FALSE) keeps every rule of @rules. The
 * components are the parts between '/' characters. */
gboolean vfd_path_check(const char *path, VfdPathRules rules);
