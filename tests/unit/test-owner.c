/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Owners of bindings (issue 13, finding 7) in the device layer, over the
 * fake kernel: a bind records the API client's uid in the journal, a
 * member's release of another uid's binding is refused with nothing
 * written, root releases anything, the uid survives the journal on disk
 * and a release cut short. */
#include <errno.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device.h"
#include "error.h"
#include "fake-sysfs.h"
#include "host-fixture.h"

#define UID_A 1001
#define UID_B 1002

/* Group 12: an NVIDIA display function without a driver (no /dev/nvidia*
 * holders to look for) and its audio function. */
typedef HostFixture Fixture;

/* The default policy. */
static VfdHost *
open_host(Fixture *f)
{
  return host_fixture_open(f, VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES);
}

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fs = fake_sysfs_new();
  fake_sysfs_add_driver(f->fs, "vfio-pci");
  fake_sysfs_add_driver(f->fs, "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:01:00.0", 0x10de, 0x2204, 0x030000, 12, NULL, NULL);
  fake_sysfs_add_device(f->fs, "0000:01:00.1", 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  f->state_dir = g_dir_make_tmp("vfiod-test-owner-XXXXXX", NULL);
  assert_non_null(f->state_dir);
  f->host = open_host(f);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  host_fixture_free(*state);
  return 0;
}

static guint32
journal_uid(Fixture *f, const char *s)
{
  VfdBdf b = test_bdf(s);
  VfdJournalDevice *jd = vfd_journal_lookup(vfd_host_journal(f->host), &b);

  assert_non_null(jd);
  return jd->owner_uid;
}

static void
test_bind_records_uid(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  assert_int_equal(journal_uid(f, "0000:01:00.0"), UID_A);
  assert_int_equal(journal_uid(f, "0000:01:00.1"), UID_A);

  /* On disk too: a restarted vfiod knows the owner. */
  vfd_host_free(f->host);
  f->host = open_host(f);
  assert_int_equal(journal_uid(f, "0000:01:00.1"), UID_A);

  /* The old entry points bind for root. */
  assert_true(vfd_host_release_group_as(f->host, &b, NULL, UID_A, NULL, NULL, &error));
  assert_true(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_int_equal(journal_uid(f, "0000:01:00.0"), 0);
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
}

static void
test_member_cannot_release_others(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  g_autofree char *drv = NULL;
  guint writes;

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  writes = fake_sysfs_write_count(f->fs);

  /* The attack: B releases A's binding (by either function). */
  assert_false(vfd_host_release_group_as(f->host, &b, NULL, UID_B, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED));
  assert_non_null(strstr(error->message, "uid 1001"));
  g_clear_error(&error);
  b = test_bdf("0000:01:00.1");
  assert_false(vfd_host_release_group_as(f->host, &b, NULL, UID_B, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED));
  g_clear_error(&error);

  /* Nothing changed: no sysfs write, still bound, still A's. */
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
  drv = fake_sysfs_get_driver(f->fs, "0000:01:00.1");
  assert_string_equal(drv, "vfio-pci");
  assert_int_equal(journal_uid(f, "0000:01:00.1"), UID_A);
  assert_int_equal(vfd_journal_lookup(vfd_host_journal(f->host), &b)->state, VFD_DEVICE_STATE_BOUND);

  /* A may. */
  assert_true(vfd_host_release_group_as(f->host, &b, NULL, UID_A, NULL, NULL, &error));
  g_free(drv);
  drv = fake_sysfs_get_driver(f->fs, "0000:01:00.1");
  assert_string_equal(drv, "snd_hda_intel");
}

static void
test_root_releases_any(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  assert_true(vfd_host_release_group_as(f->host, &b, NULL, -1, NULL, NULL, &error));
  assert_null(vfd_journal_lookup(vfd_host_journal(f->host), &b));
  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  assert_true(vfd_host_release_group_full(f->host, &b, NULL, NULL, NULL, &error));
}

static void
test_same_name_other_uid_is_busy(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  guint writes;

  assert_true(vfd_host_bind_group_as(f->host, &b, "vfioctl", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  writes = fake_sysfs_write_count(f->fs);
  /* The same owner name from B is not A's binding: no "already bound". */
  assert_false(vfd_host_bind_group_as(f->host, &b, "vfioctl", UID_B, VFD_BIND_NONE, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "uid 1001"));
  g_clear_error(&error);
  /* A again: already bound for it, no write. */
  assert_true(vfd_host_bind_group_as(f->host, &b, "vfioctl", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
  assert_true(vfd_host_release_group_as(f->host, &b, NULL, UID_A, NULL, NULL, &error));
}

static void
test_uid_kept_when_release_fails(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  /* The audio function's probe fails: its record stays (releasing) for a
   * retry, still A's, so that B still may not touch it. */
  fake_sysfs_fail_next(f->fs, "0000:01:00.1", FAKE_OP_PROBE, EIO);
  assert_false(vfd_host_release_group_as(f->host, &b, NULL, UID_A, NULL, NULL, &error));
  g_clear_error(&error);
  assert_int_equal(journal_uid(f, "0000:01:00.1"), UID_A);
  b = test_bdf("0000:01:00.1");
  assert_false(vfd_host_release_group_as(f->host, &b, NULL, UID_B, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED));
  g_clear_error(&error);
  assert_true(vfd_host_release_group_as(f->host, &b, NULL, UID_A, NULL, NULL, &error));
}

/* The journal file's bytes (NULL: none). */
static char *
journal_bytes(Fixture *f)
{
  g_autofree char *path = g_build_filename(f->state_dir, "journal.json", NULL);
  char *text = NULL;

  g_file_get_contents(path, &text, NULL, NULL);
  return text;
}

/* vfd_host_check_bind_as() (ValidateSandbox, issue 15 item 6): the bind's
 * checks, with the bind's errors, and nothing written: no sysfs write, no
 * journal record, the journal file's bytes the same. */
static void
test_check_bind_changes_nothing(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) check_error = NULL;
  g_autoptr(GError) bind_error = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL, *after = NULL;
  g_autofree char *override_before = fake_sysfs_get_override(f->fs, "0000:01:00.0");
  g_autofree char *override_after = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  guint writes;

  /* A free group: it would bind; nothing changes. */
  before = journal_bytes(f);
  writes = fake_sysfs_write_count(f->fs);
  assert_true(vfd_host_check_bind_as(f->host, &b, "sb-00000001", UID_A, VFD_BIND_NONE, &error));
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
  assert_null(vfd_journal_lookup(vfd_host_journal(f->host), &b));
  after = journal_bytes(f);
  assert_string_equal(before ? before : "(none)", after ? after : "(none)");
  override_after = fake_sysfs_get_override(f->fs, "0000:01:00.0");
  assert_string_equal(override_before ? override_before : "(none)", override_after ? override_after : "(none)");

  /* Bound for "op" by A: another owner is refused as the bind refuses it. */
  assert_true(vfd_host_bind_group_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, NULL, NULL, &error));
  g_clear_pointer(&before, g_free);
  before = journal_bytes(f);
  writes = fake_sysfs_write_count(f->fs);
  assert_false(vfd_host_check_bind_as(f->host, &b, "sb-00000001", UID_B, VFD_BIND_NONE, &check_error));
  assert_false(vfd_host_bind_group_as(f->host, &b, "sb-00000001", UID_B, VFD_BIND_NONE, NULL, NULL, &bind_error));
  assert_true(g_error_matches(check_error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_int_equal(check_error->code, bind_error->code);
  assert_string_equal(check_error->message, bind_error->message);
  g_clear_error(&check_error);
  g_clear_error(&bind_error);
  /* The same owner name from another uid: Busy, as the bind says. */
  assert_false(vfd_host_check_bind_as(f->host, &b, "op", UID_B, VFD_BIND_NONE, &check_error));
  assert_false(vfd_host_bind_group_as(f->host, &b, "op", UID_B, VFD_BIND_NONE, NULL, NULL, &bind_error));
  assert_string_equal(check_error->message, bind_error->message);
  /* Its own binding: the bind would succeed without writes. */
  assert_true(vfd_host_check_bind_as(f->host, &b, "op", UID_A, VFD_BIND_NONE, &error));
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
  g_clear_pointer(&after, g_free);
  after = journal_bytes(f);
  assert_non_null(before);
  assert_non_null(after);
  assert_string_equal(before, after);
}

/* A device the [devices] rules do not allow, and one that is not there:
 * the bind's errors, nothing written. */
static void
test_check_bind_refusals(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) check_error = NULL;
  g_autoptr(GError) bind_error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0"), missing = test_bdf("0000:07:00.0");
  guint writes;

  vfd_host_free(f->host);
  f->host = host_fixture_open(f, "1234:*", "ff"); /* none of the fake devices allowed */
  writes = fake_sysfs_write_count(f->fs);
  assert_false(vfd_host_check_bind_as(f->host, &b, "sb-00000001", UID_A, VFD_BIND_NONE, &check_error));
  assert_true(g_error_matches(check_error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_false(vfd_host_bind_group_as(f->host, &b, "sb-00000001", UID_A, VFD_BIND_NONE, NULL, NULL, &bind_error));
  assert_string_equal(check_error->message, bind_error->message);
  g_clear_error(&check_error);
  g_clear_error(&bind_error);
  assert_false(vfd_host_check_bind_as(f->host, &missing, "sb-00000001", UID_A, VFD_BIND_NONE, &check_error));
  assert_true(g_error_matches(check_error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  assert_false(vfd_host_bind_group_as(f->host, &missing, "sb-00000001", UID_A, VFD_BIND_NONE, NULL, NULL, &bind_error));
  assert_string_equal(check_error->message, bind_error->message);
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);
  assert_null(vfd_journal_lookup(vfd_host_journal(f->host), &b));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_bind_records_uid, setup, teardown),
    cmocka_unit_test_setup_teardown(test_member_cannot_release_others, setup, teardown),
    cmocka_unit_test_setup_teardown(test_root_releases_any, setup, teardown),
    cmocka_unit_test_setup_teardown(test_same_name_other_uid_is_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_uid_kept_when_release_fails, setup, teardown),
    cmocka_unit_test_setup_teardown(test_check_bind_changes_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_check_bind_refusals, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
