/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* OpenGroup's decision and open (issue 15, item 9): vfd_grant_check() on
 * hand-made journal records (owner, owner_uid, state, missing members),
 * then vfd_host_open_group() over the fake kernel: the owner gets an fd of
 * <dev_root>/vfio/<N>, read-write and close-on-exec; others, sandboxes,
 * unbound groups and a symbolic link in place of the node are refused;
 * nothing is written to sysfs or the journal. */
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "device.h"
#include "error.h"
#include "fake-sysfs.h"
#include "grant.h"
#include "host-fixture.h"

#define UID_A 1001
#define UID_B 1002

static VfdJournalDevice
rec(const char *bdf, const char *owner, guint32 uid, VfdDeviceState state)
{
  return (VfdJournalDevice){ .bdf = test_bdf(bdf), .iommu_group = 12, .state = state, .owner = (char *) owner,
                             .owner_uid = uid, .original_override = (char *) "" };
}

/* vfd_grant_check() of the two records for @caller: the error code, or -1 when granted. */
static int
decide(const VfdJournalDevice *r0, const VfdJournalDevice *r1, guint n, guint32 caller)
{
  const VfdJournalDevice *records[2] = { r0, r1 };
  g_autoptr(GError) error = NULL;

  if (vfd_grant_check("0000:01:00.0", records, n, caller, &error)) {
    assert_null(error);
    return -1;
  }
  assert_non_null(error);
  assert_true(error->domain == VFD_ERROR);
  return error->code;
}

static void
test_check_owner_and_root(void **state)
{
  VfdJournalDevice a0 = rec("0000:01:00.0", "vfioctl", UID_A, VFD_DEVICE_STATE_BOUND);
  VfdJournalDevice a1 = rec("0000:01:00.1", "vfioctl", UID_A, VFD_DEVICE_STATE_BOUND);

  assert_int_equal(decide(&a0, &a1, 2, UID_A), -1);
  assert_int_equal(decide(&a0, &a1, 2, 0), -1);
  assert_int_equal(decide(&a0, &a1, 2, UID_B), VFD_ERROR_PERMISSION_DENIED);
  /* root's binding: only root. */
  a0.owner_uid = a1.owner_uid = 0;
  assert_int_equal(decide(&a0, &a1, 2, UID_A), VFD_ERROR_PERMISSION_DENIED);
  assert_int_equal(decide(&a0, &a1, 2, 0), -1);
  /* the pool's groups are root's bindings */
  a0.owner = a1.owner = (char *) "pool";
  assert_int_equal(decide(&a0, &a1, 2, UID_A), VFD_ERROR_PERMISSION_DENIED);
}

static void
test_check_sandbox_busy(void **state)
{
  VfdJournalDevice s0 = rec("0000:01:00.0", "sb-1a2b3c4d", UID_A, VFD_DEVICE_STATE_BOUND);
  VfdJournalDevice s1 = rec("0000:01:00.1", "sb-1a2b3c4d", UID_A, VFD_DEVICE_STATE_BOUND);

  /* Even the sandbox's owner: the sandbox's QEMU has the group. */
  assert_int_equal(decide(&s0, &s1, 2, UID_A), VFD_ERROR_BUSY);
  assert_int_equal(decide(&s0, &s1, 2, UID_B), VFD_ERROR_BUSY);
  assert_int_equal(decide(&s0, &s1, 2, 0), -1);
  /* an operator's owner name that merely contains "sb-" is no sandbox */
  s0.owner = s1.owner = (char *) "my-sb-1";
  assert_int_equal(decide(&s0, &s1, 2, UID_A), -1);
}

static void
test_check_states_and_gaps(void **state)
{
  VfdJournalDevice a0 = rec("0000:01:00.0", "vfioctl", UID_A, VFD_DEVICE_STATE_BOUND);
  VfdJournalDevice a1 = rec("0000:01:00.1", "vfioctl", UID_A, VFD_DEVICE_STATE_BOUND);
  VfdDeviceState busy[] = { VFD_DEVICE_STATE_BINDING, VFD_DEVICE_STATE_RELEASING, VFD_DEVICE_STATE_STUCK };

  /* A member vfiod has no record of: not bound by vfiod. */
  assert_int_equal(decide(&a0, NULL, 2, UID_A), VFD_ERROR_NOT_FOUND);
  assert_int_equal(decide(NULL, &a1, 2, 0), VFD_ERROR_NOT_FOUND);
  assert_int_equal(decide(NULL, NULL, 0, 0), VFD_ERROR_NOT_FOUND);
  for (guint i = 0; i < G_N_ELEMENTS(busy); i++) {
    a1.state = busy[i];
    assert_int_equal(decide(&a0, &a1, 2, UID_A), VFD_ERROR_BUSY);
    assert_int_equal(decide(&a0, &a1, 2, 0), VFD_ERROR_BUSY);
  }
  a1.state = VFD_DEVICE_STATE_BOUND;
  /* Members with different owners (not something vfiod writes): Busy. */
  a1.owner_uid = UID_B;
  assert_int_equal(decide(&a0, &a1, 2, UID_A), VFD_ERROR_BUSY);
  a1.owner_uid = UID_A;
  a1.owner = (char *) "other";
  assert_int_equal(decide(&a0, &a1, 2, 0), VFD_ERROR_BUSY);
}

/* ---- over the fake kernel ---- */

typedef HostFixture Fixture;

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fs = fake_sysfs_new();
  fake_sysfs_add_driver(f->fs, "vfio-pci");
  fake_sysfs_add_driver(f->fs, "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:01:00.0", 0x10de, 0x2204, 0x030000, 12, NULL, NULL);
  fake_sysfs_add_device(f->fs, "0000:01:00.1", 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:02:00.0", 0x10de, 0x2204, 0x030000, 13, NULL, NULL);
  f->state_dir = g_dir_make_tmp("vfiod-test-grant-XXXXXX", NULL);
  assert_non_null(f->state_dir);
  f->host = host_fixture_open(f, VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  host_fixture_free(*state);
  return 0;
}

static char *
journal_text(Fixture *f)
{
  char *text = NULL;

  g_file_get_contents(vfd_journal_path(vfd_host_journal(f->host)), &text, NULL, NULL);
  return text;
}

static void
test_open_owner_gets_the_node(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) members = NULL;
  g_autofree char *node = g_build_filename(fake_sysfs_dev_root(f->fs), "vfio", "12", NULL);
  g_autofree char *before = NULL, *after = NULL;
  VfdBdf b = test_bdf("0000:01:00.1");
  struct stat st_fd, st_node;
  guint writes;
  int fd, group = -1, fl;

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  before = journal_text(f);
  writes = fake_sysfs_write_count(f->fs);
  fd = vfd_host_open_group(f->host, &b, UID_A, &group, &members, &error);
  assert_null(error);
  assert_true(fd >= 0);
  assert_int_equal(group, 12);
  assert_int_equal(members->len, 2);
  {
    VfdBdf first = test_bdf("0000:01:00.0");
    assert_true(vfd_bdf_equal(&g_array_index(members, VfdBdf, 0), &first));
  }
  assert_int_equal(fstat(fd, &st_fd), 0);
  assert_int_equal(stat(node, &st_node), 0);
  assert_true(st_fd.st_dev == st_node.st_dev && st_fd.st_ino == st_node.st_ino);
  fl = fcntl(fd, F_GETFL);
  assert_int_equal(fl & O_ACCMODE, O_RDWR);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  close(fd);
  /* root too; nothing written either way */
  fd = vfd_host_open_group(f->host, &b, 0, &group, NULL, &error);
  assert_true(fd >= 0);
  close(fd);
  after = journal_text(f);
  assert_string_equal(before, after);
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
}

static void
test_open_refusals(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *node = g_build_filename(fake_sysfs_dev_root(f->fs), "vfio", "12", NULL);
  g_autofree char *elsewhere = g_build_filename(f->state_dir, "elsewhere", NULL);
  VfdBdf b = test_bdf("0000:01:00.0"), other = test_bdf("0000:02:00.0"), absent = test_bdf("0000:09:00.0");
  int group = -1;

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  assert_int_equal(vfd_host_open_group(f->host, &b, UID_B, &group, NULL, &error), -1);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED));
  g_clear_error(&error);
  assert_int_equal(vfd_host_open_group(f->host, &other, UID_A, &group, NULL, &error), -1);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  g_clear_error(&error);
  assert_int_equal(vfd_host_open_group(f->host, &absent, 0, &group, NULL, &error), -1);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  g_clear_error(&error);
  /* A symbolic link where the node should be is not followed. */
  assert_true(g_file_set_contents(elsewhere, "", 0, NULL));
  assert_int_equal(g_unlink(node), 0);
  assert_int_equal(symlink(elsewhere, node), 0);
  assert_int_equal(vfd_host_open_group(f->host, &b, UID_A, &group, NULL, &error), -1);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_FAILED));
  assert_non_null(strstr(error->message, "IOMMU group 12"));
  g_clear_error(&error);
  /* No node at all. */
  assert_int_equal(g_unlink(node), 0);
  assert_int_equal(vfd_host_open_group(f->host, &b, UID_A, &group, NULL, &error), -1);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_check_owner_and_root),
    cmocka_unit_test(test_check_sandbox_busy),
    cmocka_unit_test(test_check_states_and_gaps),
    cmocka_unit_test_setup_teardown(test_open_owner_gets_the_node, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
