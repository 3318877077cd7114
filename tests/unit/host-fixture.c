/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "host-fixture.h"

#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

VfdHost *
host_fixture_open(HostFixture *f, const char *ids, const char *classes)
{
  g_autoptr(GError) error = NULL;
  VfdPolicy *policy = vfd_policy_new(ids, classes, &error);
  VfdJournal *journal;

  assert_non_null(policy);
  journal = vfd_journal_open(f->state_dir, &error);
  assert_non_null(journal);
  return vfd_host_new(fake_sysfs_open(f->fs), policy, journal);
}

void
host_fixture_remove_state_dir(HostFixture *f)
{
  g_autoptr(GDir) d = g_dir_open(f->state_dir, 0, NULL);
  const char *n;

  while (d && (n = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(f->state_dir, n, NULL);
    g_unlink(p);
  }
  g_rmdir(f->state_dir);
  g_clear_pointer(&f->state_dir, g_free);
}

void
host_fixture_free(HostFixture *f)
{
  vfd_host_free(f->host);
  host_fixture_remove_state_dir(f);
  assert_int_equal(fake_sysfs_outside_writes(f->fs), 0);
  fake_sysfs_free(f->fs);
  g_free(f);
}

VfdBdf
test_bdf(const char *s)
{
  VfdBdf b;

  assert_int_equal(vfd_bdf_parse(s, &b), 0);
  return b;
}
