/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device layer over the fake kernel: group resolution, policy, bind and
 * release with journal-first ordering, rollback on every failing step. */
#include <errno.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device.h"
#include "error.h"
#include "fake-sysfs.h"
#include "host-fixture.h"
#include "nvidia.h"

/* A GPU-like group 12: VGA 01:00.0 on nvidia with its HDMI audio 01:00.1 on
 * snd_hda_intel, behind bridge 00:01.0 (also group 12, must be skipped);
 * an unrelated NIC in group 3. */
typedef HostFixture Fixture;

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fs = fake_sysfs_new();
  fake_sysfs_add_driver(f->fs, "vfio-pci");
  fake_sysfs_add_driver(f->fs, "pcieport");
  fake_sysfs_add_device(f->fs, "0000:00:01.0", 0x8086, 0x1901, 0x060400, 12, "pcieport", "pcieport");
  fake_sysfs_add_device(f->fs, "0000:01:00.0", 0x10de, 0x2204, 0x030000, 12, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fs, "0000:01:00.1", 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:02:00.0", 0x8086, 0x10d3, 0x020000, 3, "e1000e", "e1000e");
  f->state_dir = g_dir_make_tmp("vfiod-test-state-XXXXXX", NULL);
  assert_non_null(f->state_dir);
  f->host = host_fixture_open(f, VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES);
  fake_sysfs_clear_log(f->fs);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  host_fixture_free(*state);
  return 0;
}

static void
assert_driver(Fixture *f, const char *dev, const char *expected)
{
  g_autofree char *drv = fake_sysfs_get_driver(f->fs, dev);
  if (!expected)
    assert_null(drv);
  else
    assert_string_equal(drv, expected);
}

static void
assert_override(Fixture *f, const char *dev, const char *expected)
{
  g_autofree char *ov = fake_sysfs_get_override(f->fs, dev);
  assert_string_equal(ov, expected);
}

/* Reads the journal back from disk, as a restarted daemon would. */
static VfdJournal *
reread_journal(Fixture *f)
{
  g_autoptr(GError) error = NULL;
  VfdJournal *j = vfd_journal_open(f->state_dir, &error);
  assert_non_null(j);
  return j;
}

static void
assert_host_state(Fixture *f)
{
  g_autoptr(VfdJournal) j = reread_journal(f);

  assert_driver(f, "0000:01:00.0", "nvidia");
  assert_driver(f, "0000:01:00.1", "snd_hda_intel");
  assert_driver(f, "0000:00:01.0", "pcieport");
  assert_override(f, "0000:01:00.0", "");
  assert_override(f, "0000:01:00.1", "");
  assert_false(fake_sysfs_vfio_node_exists(f->fs, 12));
  assert_int_equal(vfd_journal_devices(j)->len, 0);
}

static void
test_group_members(void **state)
{
  Fixture *f = *state;
  g_autoptr(GArray) members = NULL;
  VfdBdf b = test_bdf("0000:01:00.1");
  int group = -1;

  assert_int_equal(vfd_sysfs_iommu_group(vfd_host_sysfs(f->host), &b, &group), 0);
  assert_int_equal(group, 12);
  assert_int_equal(vfd_sysfs_iommu_group_devices(vfd_host_sysfs(f->host), 12, &members), 0);
  assert_int_equal(members->len, 3); /* bridge included at this level */
  assert_true(vfd_bdf_equal(&g_array_index(members, VfdBdf, 0), &(VfdBdf){ 0, 0, 1, 0 }));
  assert_true(vfd_bdf_equal(&g_array_index(members, VfdBdf, 2), &(VfdBdf){ 0, 1, 0, 1 }));
}

static void
test_enumerate(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(f->host, &error);
  VfdPciDevice *gpu;

  assert_non_null(devs);
  assert_int_equal(devs->len, 4);
  gpu = g_ptr_array_index(devs, 1); /* sorted: 00:01.0, 01:00.0, 01:00.1, 02:00.0 */
  assert_int_equal(gpu->vendor, 0x10de);
  assert_int_equal(gpu->device, 0x2204);
  assert_int_equal(gpu->class_code, 0x030000);
  assert_int_equal(gpu->iommu_group, 12);
  assert_string_equal(gpu->driver, "nvidia");
}

static void
test_bind_release_group(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) members = NULL;
  g_autoptr(GArray) released = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");
  int group = -1;

  assert_true(vfd_host_bind_group(f->host, &b, "sb-test", &members, &group, &error));
  assert_null(error);
  assert_int_equal(group, 12);
  assert_int_equal(members->len, 2); /* the bridge is not bound */
  assert_driver(f, "0000:01:00.0", "vfio-pci");
  assert_driver(f, "0000:01:00.1", "vfio-pci");
  assert_driver(f, "0000:00:01.0", "pcieport");
  assert_override(f, "0000:01:00.0", "vfio-pci");
  assert_true(fake_sysfs_vfio_node_exists(f->fs, 12));
  /* The documented sequence, and never new_id. */
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.0/driver_override", "vfio-pci"), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/drivers/nvidia/unbind", "0000:01:00.0"), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/drivers_probe", "0000:01:00.0"), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/drivers/*/new_id", NULL), 0);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:00:01.0/*", NULL), 0);

  {
    /* Durable journal says bound, with the originals. */
    g_autoptr(VfdJournal) j = reread_journal(f);
    VfdJournalDevice *d = vfd_journal_lookup(j, &b);
    assert_non_null(d);
    assert_int_equal(d->state, VFD_DEVICE_STATE_BOUND);
    assert_string_equal(d->owner, "sb-test");
    assert_string_equal(d->original_driver, "nvidia");
    assert_string_equal(d->original_override, "");
    assert_int_equal(d->iommu_group, 12);
  }

  /* Same owner again: success, no writes. Another owner: busy. */
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &b, "sb-test", NULL, NULL, &error));
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
  assert_false(vfd_host_bind_group(f->host, &b, "other", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);
  assert_false(vfd_host_release_group(f->host, &b, "other", NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);

  /* Release via the other function of the group. */
  b = test_bdf("0000:01:00.1");
  assert_true(vfd_host_release_group(f->host, &b, "sb-test", &released, &error));
  assert_int_equal(released->len, 2);
  assert_host_state(f);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.0/driver_override", "\n"), 1);

  /* Released: a second release is "not bound". */
  assert_false(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
}

static void
test_original_override_restored(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  /* An override someone else set (naming the current driver) comes back. */
  fake_sysfs_set_override(f->fs, "0000:01:00.1", "snd_hda_intel");
  assert_true(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_override(f, "0000:01:00.1", "vfio-pci");
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_override(f, "0000:01:00.1", "snd_hda_intel");
  assert_driver(f, "0000:01:00.1", "snd_hda_intel");
}

static void
test_unbound_member_stays_unbound(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:03:00.0");

  /* A device that had no driver goes back to having none. */
  fake_sysfs_add_device(f->fs, "0000:03:00.0", 0x10de, 0x2230, 0x030200, 20, NULL, NULL);
  assert_true(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_driver(f, "0000:03:00.0", "vfio-pci");
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_driver(f, "0000:03:00.0", NULL);
  assert_override(f, "0000:03:00.0", "");
}

static void
test_refusals_write_nothing(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b;

  /* Unknown device. */
  b = test_bdf("0000:00:1f.7");
  assert_false(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  assert_non_null(strstr(error->message, "0000:00:1f.7"));
  g_clear_error(&error);

  /* Policy: the NIC (group 3) is not an NVIDIA display device. */
  b = test_bdf("0000:02:00.0");
  assert_false(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "0000:02:00.0"));
  g_clear_error(&error);

  /* A group with one allowed and one disallowed member names the latter. */
  fake_sysfs_add_device(f->fs, "0000:01:00.2", 0x1b21, 0x1242, 0x0c0330, 12, "xhci_hcd", "xhci_hcd");
  b = test_bdf("0000:01:00.0");
  assert_false(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "0000:01:00.2"));
  assert_null(strstr(error->message, "0000:01:00.1"));
  g_clear_error(&error);

  /* No IOMMU group. */
  fake_sysfs_add_device(f->fs, "0000:04:00.0", 0x10de, 0x2204, 0x030000, -1, "nvidia", "nvidia");
  b = test_bdf("0000:04:00.0");
  assert_false(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "IOMMU"));
  g_clear_error(&error);

  /* Already on vfio-pci outside vfiod: left alone. */
  fake_sysfs_add_device(f->fs, "0000:05:00.0", 0x10de, 0x2204, 0x030000, 30, "vfio-pci", "nvidia");
  b = test_bdf("0000:05:00.0");
  assert_false(vfd_host_bind_group(f->host, &b, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);

  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
  {
    g_autoptr(VfdJournal) j = reread_journal(f);
    assert_int_equal(vfd_journal_devices(j)->len, 0);
  }
}

/* Each failing step of a group bind: clear error, journal consistent, every
 * device back on the driver it had. */
typedef struct {
  const char *bdf;
  FakeOp op;
  int err;
  const char *step; /* expected in the message */
} Fault;

static void
test_rollback_each_step(void **state)
{
  Fixture *f = *state;
  const Fault faults[] = {
    { "0000:01:00.0", FAKE_OP_OVERRIDE, EBUSY, "driver_override" },
    { "0000:01:00.0", FAKE_OP_UNBIND, EBUSY, "unbind" },
    { "0000:01:00.0", FAKE_OP_PROBE, ENODEV, "drivers_probe" },
    { "0000:01:00.1", FAKE_OP_OVERRIDE, EACCES, "driver_override" },
    { "0000:01:00.1", FAKE_OP_UNBIND, EBUSY, "unbind" },
    { "0000:01:00.1", FAKE_OP_PROBE, ENODEV, "drivers_probe" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(faults); i++) {
    g_autoptr(GError) error = NULL;
    VfdBdf b = test_bdf("0000:01:00.0");

    fake_sysfs_fail_next(f->fs, faults[i].bdf, faults[i].op, faults[i].err);
    assert_false(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
    assert_non_null(error);
    assert_non_null(strstr(error->message, faults[i].bdf));
    assert_non_null(strstr(error->message, faults[i].step));
    assert_non_null(strstr(error->message, "rolled back"));
    assert_host_state(f);
  }
}

static void
test_rollback_probe_binds_nothing(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  fake_sysfs_probe_binds_nothing(f->fs, "0000:01:00.1");
  assert_false(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "no driver bound"));
  assert_host_state(f);
}

static void
test_rollback_regrab(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  /* nvidia grabs the device right back after our unbind. */
  fake_sysfs_regrab_after_unbind(f->fs, "0000:01:00.0", "nvidia");
  assert_false(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "another driver"));
  assert_host_state(f);
}

static void
test_release_vanished_device(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  assert_true(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  fake_sysfs_remove_device(f->fs, "0000:01:00.1");
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_driver(f, "0000:01:00.0", "nvidia");
  {
    g_autoptr(VfdJournal) j = reread_journal(f);
    assert_int_equal(vfd_journal_devices(j)->len, 0);
  }
}

static void
test_release_failure_keeps_record(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf("0000:01:00.0");

  assert_true(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  fake_sysfs_fail_next(f->fs, "0000:01:00.0", FAKE_OP_UNBIND, EBUSY);
  assert_false(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_non_null(strstr(error->message, "0000:01:00.0"));
  g_clear_error(&error);
  /* The other function was restored; the failed one stays journaled as
   * releasing, so it can be retried. */
  assert_driver(f, "0000:01:00.1", "snd_hda_intel");
  {
    g_autoptr(VfdJournal) j = reread_journal(f);
    VfdJournalDevice *d = vfd_journal_lookup(j, &b);
    assert_int_equal(vfd_journal_devices(j)->len, 1);
    assert_non_null(d);
    assert_int_equal(d->state, VFD_DEVICE_STATE_RELEASING);
  }
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_host_state(f);
}

/* A writer that, on every sysfs write, reads the journal from disk and
 * records what state it holds for the device being changed; then lets the
 * fake kernel perform the write. */
typedef struct {
  Fixture *f;
  guint writes;
  guint writes_without_record;
} JournalProbe;

static int
probing_writer(const char *path, const char *value, void *data)
{
  JournalProbe *p = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdJournal) j = vfd_journal_open(p->f->state_dir, &error);
  VfdBdf gpu = test_bdf("0000:01:00.0"), audio = test_bdf("0000:01:00.1");
  VfdJournalDevice *a, *b;

  if (!j) {
    g_autofree char *jp = g_build_filename(p->f->state_dir, "journal.json", NULL);
    g_autofree char *c = NULL;
    gsize n = 0;
    g_file_get_contents(jp, &c, &n, NULL);
    fail_msg("journal unreadable during sysfs write %u (%s): %s [%zu bytes: %.80s]", p->writes, path, error->message, n, c ? c : "");
  }
  a = vfd_journal_lookup(j, &gpu);
  b = vfd_journal_lookup(j, &audio);
  p->writes++;
  /* Both members, with their original drivers, before any write. */
  if (!a || !b || g_strcmp0(a->original_driver, "nvidia") != 0 ||
      g_strcmp0(b->original_driver, "snd_hda_intel") != 0)
    p->writes_without_record++;
  return fake_sysfs_writer(path, value, p->f->fs);
}

static void
test_journal_written_before_first_write(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  JournalProbe probe = { .f = f };
  VfdBdf b = test_bdf("0000:01:00.0");

  vfd_sysfs_set_writer(vfd_host_sysfs(f->host), probing_writer, &probe);
  assert_true(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &b, NULL, NULL, &error));
  assert_true(probe.writes >= 6);
  assert_int_equal(probe.writes_without_record, 0);
}

static void
test_journal_failure_writes_nothing(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *journal = g_build_filename(f->state_dir, "journal.json", NULL);
  g_autofree char *blocker = g_build_filename(journal, "x", NULL);
  VfdBdf b = test_bdf("0000:01:00.0");

  /* A non-empty directory where the journal goes: the rename of the commit
   * fails, even for root. Then no sysfs write may happen. */
  g_unlink(journal);
  assert_int_equal(g_mkdir(journal, 0700), 0);
  assert_true(g_file_set_contents(blocker, "", 0, NULL));
  assert_false(vfd_host_bind_group(f->host, &b, "sb-x", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "journal"));
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
  g_unlink(blocker);
  g_rmdir(journal);
  assert_host_state(f);
}

static void
test_guards(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf gpu = test_bdf("0000:01:00.0"), nic = test_bdf("0000:02:00.0");
  VfdHost *any;

  /* The boot VGA device is refused by default, with the key that allows it. */
  fake_sysfs_set_attr(f->fs, "0000:01:00.0", "boot_vga", "1\n");
  assert_false(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "allow_boot_vga"));
  g_clear_error(&error);
  vfd_policy_set_guards((VfdPolicy *) vfd_host_policy(f->host), &(VfdPolicyGuards){ .allow_boot_vga = true });
  assert_true(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));

  /* Rules that match anything still refuse a network controller... */
  fake_sysfs_clear_log(f->fs);
  vfd_host_free(f->host);
  f->host = any = host_fixture_open(f, "", "");
  assert_false(vfd_host_bind_group(any, &nic, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "allow_network"));
  g_clear_error(&error);
  /* ...and a storage controller in a GPU's group blocks the group. */
  fake_sysfs_add_device(f->fs, "0000:01:00.2", 0x1b4b, 0x9215, 0x010601, 12, "ahci", "ahci");
  vfd_policy_set_guards((VfdPolicy *) vfd_host_policy(any), &(VfdPolicyGuards){ .allow_boot_vga = true });
  assert_false(vfd_host_bind_group(any, &gpu, "op", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "0000:01:00.2"));
  assert_non_null(strstr(error->message, "allow_storage"));
  g_clear_error(&error);
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
  vfd_policy_set_guards((VfdPolicy *) vfd_host_policy(any),
                        &(VfdPolicyGuards){ .allow_network = true, .allow_boot_vga = true, .allow_storage = true });
  assert_true(vfd_host_bind_group(any, &nic, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(any, &nic, NULL, NULL, &error));
}

static void
test_nvidia_holders(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *proc = g_dir_make_tmp("vfiod-proc-XXXXXX", NULL);
  g_autofree char *gpu_dir = g_build_filename(proc, "driver", "nvidia", "gpus", "0000:01:00.0", NULL);
  g_autofree char *info = g_build_filename(gpu_dir, "information", NULL);
  g_autofree char *fd_dir = g_build_filename(proc, "4242", "fd", NULL);
  g_autofree char *fd_link = g_build_filename(fd_dir, "7", NULL);
  g_autofree char *comm = g_build_filename(proc, "4242", "comm", NULL);
  g_autofree char *other_dir = g_build_filename(proc, "77", "fd", NULL);
  g_autofree char *other_link = g_build_filename(other_dir, "3", NULL);
  g_autofree char *node = g_strdup_printf("%s/nvidia1", fake_sysfs_dev_root(f->fs));
  g_autofree char *other_node = g_strdup_printf("%s/nvidia0", fake_sysfs_dev_root(f->fs));
  g_autoptr(GPtrArray) holders = NULL;
  VfdBdf gpu = test_bdf("0000:01:00.0");

  assert_int_equal(g_mkdir_with_parents(gpu_dir, 0755), 0);
  assert_int_equal(g_mkdir_with_parents(fd_dir, 0755), 0);
  assert_int_equal(g_mkdir_with_parents(other_dir, 0755), 0);
  assert_true(g_file_set_contents(info, "Model: \t NVIDIA GeForce RTX 3090\nIRQ: 130\nDevice Minor: \t 1\n", -1, NULL));
  assert_true(g_file_set_contents(comm, "nvidia-persiste\n", -1, NULL));
  assert_int_equal(symlink(node, fd_link), 0);
  assert_int_equal(symlink(other_node, other_link), 0); /* another GPU's node: not a holder */

  assert_int_equal(vfd_nvidia_find_holders(proc, fake_sysfs_dev_root(f->fs), &gpu, &holders), 0);
  assert_int_equal(holders->len, 1);
  assert_int_equal(((VfdNvidiaHolder *) holders->pdata[0])->pid, 4242);

  vfd_host_set_proc_root(f->host, proc);
  assert_false(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "pid 4242 (nvidia-persiste)"));
  assert_non_null(strstr(error->message, "--force"));
  g_clear_error(&error);
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);

  /* The operator overrides. */
  assert_true(vfd_host_bind_group_full(f->host, &gpu, "op", VFD_BIND_FORCE, NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));

  g_unlink(fd_link);
  g_unlink(other_link);
  g_unlink(comm);
  g_unlink(info);
  g_rmdir(gpu_dir);
  g_rmdir(fd_dir);
  g_rmdir(other_dir);
  {
    g_autofree char *d1 = g_build_filename(proc, "4242", NULL);
    g_autofree char *d2 = g_build_filename(proc, "77", NULL);
    g_autofree char *d3 = g_build_filename(proc, "driver", "nvidia", "gpus", NULL);
    g_autofree char *d4 = g_build_filename(proc, "driver", "nvidia", NULL);
    g_autofree char *d5 = g_build_filename(proc, "driver", NULL);
    g_rmdir(d1), g_rmdir(d2), g_rmdir(d3), g_rmdir(d4), g_rmdir(d5), g_rmdir(proc);
  }
}

/* Removes @path and everything below it (a test's own temp tree). */
static void
remove_tree(const char *path)
{
  g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(path, name, NULL);
    if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
      remove_tree(p);
    else
      g_unlink(p);
  }
  g_rmdir(path);
}

/* Bind is refused, naming @text, with no sysfs write. */
static void
expect_busy(Fixture *f, const VfdBdf *gpu, const char *text)
{
  g_autoptr(GError) error = NULL;

  assert_false(vfd_host_bind_group(f->host, gpu, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  if (!strstr(error->message, text) || !strstr(error->message, "--force"))
    fail_msg("want '%s' in: %s", text, error->message);
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
}

/* Unbind hazards beyond open /dev/nvidia* handles (issue 12, item 5). */
static void
test_nvidia_hazards(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *proc = g_dir_make_tmp("vfiod-proc-XXXXXX", NULL);
  g_autofree char *dev = g_build_filename(fake_sysfs_sys_root(f->fs), "bus", "pci", "devices", "0000:01:00.0", NULL);
  g_autofree char *numvfs = g_build_filename(dev, "sriov_numvfs", NULL);
  g_autofree char *drm = g_build_filename(dev, "drm", NULL);
  g_autofree char *card = g_build_filename(drm, "card1", NULL);
  g_autofree char *render = g_build_filename(drm, "renderD128", NULL);
  g_autofree char *card_node = g_strdup_printf("%s/dri/card1", fake_sysfs_dev_root(f->fs));
  g_autofree char *xorg_fd = g_build_filename(proc, "55", "fd", NULL);
  g_autofree char *xorg_link = g_build_filename(xorg_fd, "4", NULL);
  g_autofree char *xorg_comm = g_build_filename(proc, "55", "comm", NULL);
  g_autofree char *dcgm = g_build_filename(proc, "66", NULL);
  g_autofree char *dcgm_comm = g_build_filename(dcgm, "comm", NULL);
  g_autofree char *smi = g_build_filename(proc, "nvidia-smi", NULL);
  g_autofree char *smi_log = g_build_filename(proc, "smi.log", NULL);
  g_autofree char *smi_script = g_strdup_printf("#!/bin/sh\necho \"$*\" >> %s\n"
                                                "case \"$*\" in *persistence_mode*) echo Enabled;; esac\n",
                                                smi_log);
  g_autofree char *logged = NULL;
  g_autoptr(GPtrArray) hazards = NULL;
  VfdBdf gpu = test_bdf("0000:01:00.0");

  vfd_host_set_proc_root(f->host, proc);
  vfd_host_set_nvidia_smi(f->host, NULL);
  /* none yet: no hazard */
  assert_int_equal(vfd_nvidia_find_hazards(fake_sysfs_sys_root(f->fs), proc, fake_sysfs_dev_root(f->fs), NULL, &gpu,
                                           &hazards),
                   0);
  assert_int_equal(hazards->len, 0);

  /* SR-IOV VFs enabled */
  assert_true(g_file_set_contents(numvfs, "2\n", -1, NULL));
  expect_busy(f, &gpu, "2 SR-IOV virtual functions are enabled");
  assert_true(g_file_set_contents(numvfs, "0\n", -1, NULL));

  /* nvidia-drm: a process holds the GPU's card node (another's render node
   * of another GPU would not count: only this GPU's drm/ entries) */
  assert_int_equal(g_mkdir_with_parents(card, 0755), 0);
  assert_int_equal(g_mkdir_with_parents(render, 0755), 0);
  assert_int_equal(g_mkdir_with_parents(xorg_fd, 0755), 0);
  assert_true(g_file_set_contents(xorg_comm, "Xorg\n", -1, NULL));
  assert_int_equal(symlink(card_node, xorg_link), 0);
  expect_busy(f, &gpu, "pid 55 (Xorg) holds");
  assert_int_equal(g_unlink(xorg_link), 0);

  /* DCGM's host engine runs */
  assert_int_equal(g_mkdir_with_parents(dcgm, 0755), 0);
  assert_true(g_file_set_contents(dcgm_comm, "nv-hostengine\n", -1, NULL));
  expect_busy(f, &gpu, "pid 66 (nv-hostengine) runs: DCGM");
  assert_true(g_file_set_contents(dcgm_comm, "nv-fabricmanage\n", -1, NULL));
  expect_busy(f, &gpu, "fabric manager");
  assert_true(g_file_set_contents(dcgm_comm, "bash\n", -1, NULL));

  /* persistence mode, as nvidia-smi tells it */
  assert_true(g_file_set_contents(smi, smi_script, -1, NULL));
  assert_int_equal(chmod(smi, 0755), 0);
  vfd_host_set_nvidia_smi(f->host, smi);
  expect_busy(f, &gpu, "persistence mode is on (nvidia-smi -i 0000:01:00.0 -pm 0");
  assert_true(g_file_get_contents(smi_log, &logged, NULL, NULL));
  assert_non_null(strstr(logged, "--query-gpu=persistence_mode --format=csv,noheader -i 0000:01:00.0"));

  /* the operator overrides */
  assert_true(vfd_host_bind_group_full(f->host, &gpu, "op", VFD_BIND_FORCE, NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  /* persistence off: nothing left, the bind goes through */
  assert_true(g_file_set_contents(smi, "#!/bin/sh\necho Disabled\n", -1, NULL));
  assert_true(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));

  remove_tree(proc);
  remove_tree(drm);
  g_unlink(numvfs);
}

static void
test_reset_on_release(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf gpu = test_bdf("0000:01:00.0");

  /* Default (auto): the NVIDIA VGA function is reset, its audio function
   * (class 0403) is not. */
  assert_true(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.0/reset", "1"), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.1/reset", NULL), 0);

  /* Off ([devices] reset_on_release=false): none. */
  vfd_host_set_reset_on_release(f->host, false);
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/*/reset", NULL), 0);

  /* On: each function with a reset method is reset while off vfio-pci. */
  vfd_host_set_reset_on_release(f->host, true);
  fake_sysfs_set_attr(f->fs, "0000:01:00.1", "reset_method", "\n");
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &gpu, "op", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.0/reset", "1"), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:01:00.1/reset", NULL), 0);
  assert_host_state(f);
}

static void
test_vanish_mid_bind(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf gpu = test_bdf("0000:01:00.0");

  /* The audio function is hot-unplugged right after its override write. */
  fake_sysfs_vanish_after(f->fs, "0000:01:00.1", FAKE_OP_OVERRIDE);
  assert_false(vfd_host_bind_group(f->host, &gpu, "sb-x", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "0000:01:00.1"));
  /* The function still there is back on nvidia; the journal forgets the
   * vanished one (nothing left to restore) and holds nothing else. */
  assert_driver(f, "0000:01:00.0", "nvidia");
  assert_override(f, "0000:01:00.0", "");
  assert_false(fake_sysfs_has_device(f->fs, "0000:01:00.1"));
  {
    g_autoptr(VfdJournal) j = reread_journal(f);
    assert_int_equal(vfd_journal_devices(j)->len, 0);
  }
}

static void
test_select_units(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) one = NULL;
  g_autoptr(GArray) two = NULL;
  int node = -2;

  /* Three more GPU groups: 02:00.0 on node 1 (after the NIC's group 3, which
   * the default rules refuse), 03:00.0 + its audio on node 1, 04:00.0 on node 0.
   * Group 12 (01:00.x) sits on node -1 (unknown). */
  fake_sysfs_add_device(f->fs, "0000:03:00.0", 0x10de, 0x2204, 0x030000, 21, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fs, "0000:03:00.1", 0x10de, 0x1aef, 0x040300, 21, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fs, "0000:04:00.0", 0x10de, 0x2204, 0x030000, 22, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fs, "0000:05:00.0", 0x10de, 0x2204, 0x030000, 23, "nvidia", "nvidia");
  fake_sysfs_set_attr(f->fs, "0000:03:00.0", "numa_node", "1\n");
  fake_sysfs_set_attr(f->fs, "0000:03:00.1", "numa_node", "1\n");
  fake_sysfs_set_attr(f->fs, "0000:04:00.0", "numa_node", "0\n");
  fake_sysfs_set_attr(f->fs, "0000:05:00.0", "numa_node", "1\n");

  /* One unit: node 0 is the lowest node that has one: 04:00.0. */
  assert_true(vfd_host_select_units(f->host, 1, &one, &node, &error));
  assert_int_equal(one->len, 1);
  assert_true(vfd_bdf_equal(&g_array_index(one, VfdBdf, 0), &(VfdBdf){ 0, 4, 0, 0 }));
  assert_int_equal(node, 0);
  /* Two: only node 1 has two (groups 21 and 23); a group counts once. */
  assert_true(vfd_host_select_units(f->host, 2, &two, &node, &error));
  assert_int_equal(two->len, 2);
  assert_true(vfd_bdf_equal(&g_array_index(two, VfdBdf, 0), &(VfdBdf){ 0, 3, 0, 0 }));
  assert_true(vfd_bdf_equal(&g_array_index(two, VfdBdf, 1), &(VfdBdf){ 0, 5, 0, 0 }));
  assert_int_equal(node, 1);
  g_clear_pointer(&two, g_array_unref);

  /* A unit held by vfiod is not free; four are left, five is too many. */
  {
    VfdBdf b = test_bdf("0000:05:00.0");
    assert_true(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  }
  assert_true(vfd_host_select_units(f->host, 2, &two, &node, &error));
  assert_int_equal(node, -1); /* no node has two free now: first two by BDF */
  assert_true(vfd_bdf_equal(&g_array_index(two, VfdBdf, 0), &(VfdBdf){ 0, 1, 0, 0 }));
  g_clear_pointer(&two, g_array_unref);
  assert_false(vfd_host_select_units(f->host, 4, &two, &node, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "3 free"));
  g_clear_error(&error);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_group_members, setup, teardown),
    cmocka_unit_test_setup_teardown(test_enumerate, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bind_release_group, setup, teardown),
    cmocka_unit_test_setup_teardown(test_original_override_restored, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unbound_member_stays_unbound, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refusals_write_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rollback_each_step, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rollback_probe_binds_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rollback_regrab, setup, teardown),
    cmocka_unit_test_setup_teardown(test_release_vanished_device, setup, teardown),
    cmocka_unit_test_setup_teardown(test_release_failure_keeps_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_written_before_first_write, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_failure_writes_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_guards, setup, teardown),
    cmocka_unit_test_setup_teardown(test_select_units, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vanish_mid_bind, setup, teardown),
    cmocka_unit_test_setup_teardown(test_nvidia_holders, setup, teardown),
    cmocka_unit_test_setup_teardown(test_nvidia_hazards, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reset_on_release, setup, teardown),
  };
  return cmocka_run_group_tests_name("device", tests, NULL, NULL);
}
