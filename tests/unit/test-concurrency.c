/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hung sysfs writes (stuck devices) and per-IOMMU-group locking, over the
 * fake kernel. */
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

typedef HostFixture Fixture;

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);
  g_autoptr(GError) error = NULL;
  VfdSysfs *sysfs;

  f->fs = fake_sysfs_new();
  fake_sysfs_add_driver(f->fs, "vfio-pci");
  fake_sysfs_add_device(f->fs, "0000:01:00.0", 0x10de, 0x2204, 0x030000, 12, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fs, "0000:01:00.1", 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:02:00.0", 0x10de, 0x2230, 0x030200, 20, "nvidia", "nvidia");
  f->state_dir = g_dir_make_tmp("vfiod-test-state-XXXXXX", NULL);
  sysfs = fake_sysfs_open(f->fs);
  /* Long enough for a normal write of the fake kernel (it saves its whole
   * model each time) on a loaded host; a hung one is still cut at 2 s. */
  vfd_sysfs_set_write_timeout(sysfs, 2000);
  f->host = vfd_host_new(sysfs, vfd_policy_new(NULL, NULL, &error), vfd_journal_open(f->state_dir, &error));
  assert_null(error);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  Fixture *f = *state;

  fake_sysfs_unhang(f->fs);
  vfd_host_free(f->host);
  fake_sysfs_free(f->fs); /* waits for writers still running */
  host_fixture_remove_state_dir(f);
  g_free(f);
  return 0;
}

static VfdDeviceState
journal_state(Fixture *f, const char *dev)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdJournal) j = vfd_journal_open(f->state_dir, &error);
  VfdBdf b = test_bdf(dev);
  VfdJournalDevice *d;

  assert_non_null(j);
  d = vfd_journal_lookup(j, &b);
  return d ? d->state : VFD_DEVICE_STATE_HOST;
}

static void
test_hung_unbind_on_bind_is_stuck(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  gint64 t0 = g_get_monotonic_time();
  guint writes;

  fake_sysfs_hang_next(f->fs, "0000:01:00.0", FAKE_OP_UNBIND);
  assert_false(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  /* returns after the timeout (300 ms), not when the write returns */
  assert_true(g_get_monotonic_time() - t0 < 3 * G_USEC_PER_SEC);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_STUCK));
  assert_non_null(strstr(error->message, "0000:01:00.0"));
  assert_non_null(strstr(error->message, "stuck"));
  g_clear_error(&error);
  assert_int_equal(vfd_sysfs_hung_writes(vfd_host_sysfs(f->host)), 1);
  assert_int_equal(journal_state(f, "0000:01:00.0"), VFD_DEVICE_STATE_STUCK);
  /* the other function was never touched and is not journaled */
  assert_int_equal(journal_state(f, "0000:01:00.1"), VFD_DEVICE_STATE_HOST);

  /* Never retried: neither a new bind nor a release touches it. */
  writes = fake_sysfs_write_count(f->fs);
  assert_false(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_STUCK));
  g_clear_error(&error);
  assert_false(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_STUCK));
  assert_int_equal(fake_sysfs_write_count(f->fs), writes);

  /* The kernel finally lets go; the device stays stuck for the operator. */
  fake_sysfs_unhang(f->fs);
  for (int i = 0; i < 200 && vfd_sysfs_hung_writes(vfd_host_sysfs(f->host)) > 0; i++)
    g_usleep(10000);
  assert_int_equal(vfd_sysfs_hung_writes(vfd_host_sysfs(f->host)), 0);
  assert_int_equal(journal_state(f, "0000:01:00.0"), VFD_DEVICE_STATE_STUCK);
}

static void
test_hung_unbind_on_release_is_stuck(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  g_autofree char *drv = NULL;

  assert_true(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  fake_sysfs_hang_next(f->fs, "0000:01:00.1", FAKE_OP_UNBIND);
  assert_false(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_STUCK));
  assert_non_null(strstr(error->message, "0000:01:00.1"));
  /* the other member was restored anyway */
  drv = fake_sysfs_get_driver(f->fs, "0000:01:00.0");
  assert_string_equal(drv, "nvidia");
  assert_int_equal(journal_state(f, "0000:01:00.0"), VFD_DEVICE_STATE_HOST);
  assert_int_equal(journal_state(f, "0000:01:00.1"), VFD_DEVICE_STATE_STUCK);
}

typedef struct {
  VfdHost *host;
  const char *bdf;
  const char *owner;
  gboolean ok;
  GError *error;
  gint64 finished; /* monotonic µs */
} BindJob;

static gpointer
bind_thread(gpointer data)
{
  BindJob *j = data;
  VfdBdf b = test_bdf(j->bdf);

  j->ok = vfd_host_bind_group(j->host, &b, j->owner, NULL, NULL, &j->error);
  j->finished = g_get_monotonic_time();
  return NULL;
}

static void
test_groups_parallel_and_serialised(void **state)
{
  Fixture *f = *state;
  BindJob a = { .host = f->host, .bdf = "0000:01:00.0", .owner = "sb-a" };
  BindJob same = { .host = f->host, .bdf = "0000:01:00.1", .owner = "sb-a" };
  BindJob other = { .host = f->host, .bdf = "0000:02:00.0", .owner = "sb-b" };
  GThread *ta, *tsame, *tother;
  gint64 released;

  /* Long enough that the hang is released by us, not by the timeout. */
  vfd_sysfs_set_write_timeout(vfd_host_sysfs(f->host), 10000);
  fake_sysfs_hang_next(f->fs, "0000:01:00.0", FAKE_OP_UNBIND);
  ta = g_thread_new("a", bind_thread, &a);
  assert_true(fake_sysfs_wait_hung(f->fs, 1, 5000));
  tsame = g_thread_new("same", bind_thread, &same);
  tother = g_thread_new("other", bind_thread, &other);

  /* Group 20 completes while group 12 is blocked in the kernel. */
  g_thread_join(tother);
  assert_true(other.ok);
  g_usleep(200000);
  assert_int_equal(same.finished, 0); /* same group: waits for a */

  released = g_get_monotonic_time();
  fake_sysfs_unhang(f->fs);
  g_thread_join(ta);
  g_thread_join(tsame);
  assert_true(a.ok);
  assert_true(same.ok); /* same owner, group already bound: success, after a */
  assert_true(same.finished >= released);
  assert_true(other.finished < released);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_hung_unbind_on_bind_is_stuck, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hung_unbind_on_release_is_stuck, setup, teardown),
    cmocka_unit_test_setup_teardown(test_groups_parallel_and_serialised, setup, teardown),
  };
  return cmocka_run_group_tests_name("concurrency", tests, NULL, NULL);
}
