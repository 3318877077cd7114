/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_path_check(): the one checker of path names (issue 14: it replaced
 * six copies in caller.c, manager.c, journal.c, initramfs.c, stage.c and
 * image.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <glib.h>

#include "path.h"

static void
test_rules(void **state)
{
  const VfdPathRules client = VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT;
  const VfdPathRules journal = VFD_PATH_ABSOLUTE | VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT;
  const VfdPathRules cpio = VFD_PATH_NO_EMPTY | VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT;

  assert_false(vfd_path_check(NULL, 0));
  assert_true(vfd_path_check("/var/lib/vfiod/disk.img", client));
  assert_true(vfd_path_check("/a/..b/c..", client)); /* ".." only as a whole component */
  assert_true(vfd_path_check("/a/.hidden", client));
  assert_false(vfd_path_check("/a/../etc/shadow", client));
  assert_false(vfd_path_check("/a/..", client));
  assert_false(vfd_path_check("..", client));
  assert_false(vfd_path_check("/a/./b", client));
  assert_false(vfd_path_check("/a/.", client));
  assert_true(vfd_path_check("/a/./b", VFD_PATH_NO_DOTDOT)); /* "." allowed when only ".." is refused */
  assert_true(vfd_path_check("/a//b", client));               /* empty components allowed unless asked */
  assert_true(vfd_path_check("/run/vfiod/sandboxes/sb-1", journal));
  assert_false(vfd_path_check("run/vfiod", journal));
  assert_false(vfd_path_check("", journal));
  assert_true(vfd_path_check("/init", cpio));
  assert_true(vfd_path_check("/lib/modules/6.1/kernel/x.ko", cpio));
  assert_false(vfd_path_check("/lib//x.ko", cpio));
  assert_false(vfd_path_check("/lib/", cpio));
  assert_false(vfd_path_check("/", cpio));
  assert_false(vfd_path_check("/lib/../x", cpio));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
