/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_sysfs_* over the fake kernel (fake-sysfs.h): reads, links, groups,
 * and the bind/restore write sequences landing as the kernel would. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fake-sysfs.h"
#include "sysfs.h"

#define GPU "0000:01:00.0"
#define AUDIO "0000:01:00.1"
#define USB "0000:01:00.2"
#define UCSI "0000:01:00.3"
#define BRIDGE "0000:00:01.0"
#define NIC "0000:02:00.0"
#define ABSENT "0000:09:00.0"
#define GPU_GROUP 12

typedef struct {
  FakeSysfs *fake;
  VfdSysfs *sysfs;
} Fixture;

/* A host with an NVIDIA GPU whose four functions share IOMMU group 12
 * (added out of order on purpose), a root port, and a NIC without a group
 * (as with the IOMMU off for it). */
static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fake = fake_sysfs_new();
  fake_sysfs_add_driver(f->fake, "vfio-pci");
  fake_sysfs_add_driver(f->fake, "xhci_hcd");
  fake_sysfs_add_device(f->fake, UCSI, 0x10de, 0x1ad9, 0x0c8000, GPU_GROUP, NULL, NULL);
  fake_sysfs_add_device(f->fake, AUDIO, 0x10de, 0x1aef, 0x040300, GPU_GROUP, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fake, GPU, 0x10de, 0x2204, 0x030000, GPU_GROUP, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fake, USB, 0x10de, 0x1ad8, 0x0c0330, GPU_GROUP, "xhci_hcd", "xhci_hcd");
  fake_sysfs_add_device(f->fake, BRIDGE, 0x8086, 0x1901, 0x060400, 1, "pcieport", "pcieport");
  fake_sysfs_add_device(f->fake, NIC, 0x8086, 0x10d3, 0x020000, -1, "e1000e", "e1000e");
  f->sysfs = fake_sysfs_open(f->fake);
  fake_sysfs_clear_log(f->fake);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  Fixture *f = *state;

  /* Whatever a test did, nothing may have escaped the fake tree. */
  guint outside = fake_sysfs_outside_writes(f->fake);
  vfd_sysfs_free(f->sysfs);
  fake_sysfs_free(f->fake);
  g_free(f);
  return outside == 0 ? 0 : -1;
}

static VfdBdf
bdf(const char *s)
{
  VfdBdf b;

  assert_int_equal(vfd_bdf_parse(s, &b), 0);
  return b;
}

static void
assert_driver(Fixture *f, const char *dev, const char *expected)
{
  VfdBdf b = bdf(dev);
  g_autofree char *driver = NULL;

  assert_int_equal(vfd_sysfs_device_driver(f->sysfs, &b, &driver), 0);
  if (g_strcmp0(driver, expected) != 0)
    fail_msg("%s: driver '%s', expected '%s'", dev, driver ? driver : "(none)", expected ? expected : "(none)");
}

static void
assert_log(Fixture *f, const char *const *expected, guint n)
{
  g_autoptr(GPtrArray) log = fake_sysfs_write_log(f->fake);

  for (guint i = 0; i < MAX(log->len, n); i++) {
    const char *got = i < log->len ? g_ptr_array_index(log, i) : "(nothing)";
    const char *want = i < n ? expected[i] : "(nothing)";
    if (!g_str_equal(got, want))
      fail_msg("write %u: got '%s', expected '%s'", i, got, want);
  }
}

static void
test_roots_and_paths(void **state)
{
  Fixture *f = *state;
  VfdBdf b = bdf(GPU);
  g_autofree char *dir = vfd_sysfs_device_path(f->sysfs, &b, NULL);
  g_autofree char *attr = vfd_sysfs_device_path(f->sysfs, &b, "driver_override");
  g_autofree char *want_dir = g_build_filename(fake_sysfs_sys_root(f->fake), "bus/pci/devices", GPU, NULL);
  g_autofree char *want_attr = g_build_filename(want_dir, "driver_override", NULL);
  g_autoptr(VfdSysfs) real = vfd_sysfs_new(NULL, NULL);

  assert_string_equal(vfd_sysfs_root(f->sysfs), fake_sysfs_sys_root(f->fake));
  assert_string_equal(vfd_sysfs_dev_root(f->sysfs), fake_sysfs_dev_root(f->fake));
  assert_string_equal(dir, want_dir);
  assert_string_equal(attr, want_attr);
  /* Defaults (only compared; nothing is read or written there). */
  assert_string_equal(vfd_sysfs_root(real), "/sys");
  assert_string_equal(vfd_sysfs_dev_root(real), "/dev");
}

static void
test_device_exists(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU), nic = bdf(NIC), absent = bdf(ABSENT);

  assert_true(vfd_sysfs_device_exists(f->sysfs, &gpu));
  assert_true(vfd_sysfs_device_exists(f->sysfs, &nic));
  assert_false(vfd_sysfs_device_exists(f->sysfs, &absent));
  fake_sysfs_remove_device(f->fake, NIC);
  assert_false(vfd_sysfs_device_exists(f->sysfs, &nic));
}

static void
test_read_attr(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU), absent = bdf(ABSENT);
  g_autofree char *vendor = NULL, *cls = NULL, *numa = NULL, *label = NULL, *reset = NULL;
  char *untouched = (char *) "sentinel";

  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "vendor", &vendor), 0);
  assert_string_equal(vendor, "0x10de");
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "class", &cls), 0);
  assert_string_equal(cls, "0x030000");
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "numa_node", &numa), 0);
  assert_string_equal(numa, "-1");
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "reset_method", &reset), 0);
  assert_string_equal(reset, "flr bus");

  /* Only trailing whitespace goes. */
  fake_sysfs_set_attr(f->fake, GPU, "label", "  Onboard GPU \t\n\n");
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "label", &label), 0);
  assert_string_equal(label, "  Onboard GPU");

  /* Missing attribute, missing device: -ENOENT, output untouched. */
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "no_such_attr", &untouched), -ENOENT);
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &absent, "vendor", &untouched), -ENOENT);
  assert_string_equal(untouched, "sentinel");
}

static void
test_read_driver_override(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU);
  g_autofree char *none = NULL, *set = NULL, *cleared = NULL;

  /* The kernel shows "(null)" for no override. */
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "driver_override", &none), 0);
  assert_string_equal(none, "");

  fake_sysfs_set_override(f->fake, GPU, "vfio-pci");
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "driver_override", &set), 0);
  assert_string_equal(set, "vfio-pci");

  fake_sysfs_set_override(f->fake, GPU, NULL);
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "driver_override", &cleared), 0);
  assert_string_equal(cleared, "");
}

static void
test_read_hex_attr(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU), usb = bdf(USB), absent = bdf(ABSENT);
  guint32 v = 0;
  static const char *const bad[] = { "zzz\n", "\n", "", "0x\n", "10de xyz\n", "0x1ffffffff\n", "-1\n" };

  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "vendor", &v), 0);
  assert_int_equal(v, 0x10de);
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "device", &v), 0);
  assert_int_equal(v, 0x2204);
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "class", &v), 0);
  assert_int_equal(v, 0x030000);
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &usb, "class", &v), 0);
  assert_int_equal(v, 0x0c0330);
  fake_sysfs_set_attr(f->fake, GPU, "subsystem_device", "147d\n"); /* no 0x is hex too */
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "subsystem_device", &v), 0);
  assert_int_equal(v, 0x147d);

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    v = 0xdeadbeef;
    fake_sysfs_set_attr(f->fake, GPU, "vendor", bad[i]);
    int r = vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "vendor", &v);
    if (r != -EINVAL)
      fail_msg("vendor '%s': expected -EINVAL, got %d", g_strescape(bad[i], NULL), r);
    assert_int_equal(v, 0xdeadbeef);
  }
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &gpu, "no_such_attr", &v), -ENOENT);
  assert_int_equal(vfd_sysfs_read_hex_attr(f->sysfs, &absent, "vendor", &v), -ENOENT);
  assert_int_equal(v, 0xdeadbeef);
}

static void
test_device_driver(void **state)
{
  Fixture *f = *state;
  VfdBdf ucsi = bdf(UCSI), absent = bdf(ABSENT);
  char *driver = (char *) "sentinel";

  assert_driver(f, GPU, "nvidia");
  assert_driver(f, AUDIO, "snd_hda_intel");
  assert_driver(f, BRIDGE, "pcieport");
  assert_driver(f, NIC, "e1000e");

  /* Unbound: 0 and NULL. */
  assert_int_equal(vfd_sysfs_device_driver(f->sysfs, &ucsi, &driver), 0);
  assert_null(driver);

  driver = (char *) "sentinel";
  assert_int_equal(vfd_sysfs_device_driver(f->sysfs, &absent, &driver), -ENOENT);
  assert_string_equal(driver, "sentinel");
}

static void
test_iommu_group(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU), ucsi = bdf(UCSI), bridge = bdf(BRIDGE), nic = bdf(NIC), absent = bdf(ABSENT);
  int group = -7;

  assert_int_equal(vfd_sysfs_iommu_group(f->sysfs, &gpu, &group), 0);
  assert_int_equal(group, GPU_GROUP);
  assert_int_equal(vfd_sysfs_iommu_group(f->sysfs, &ucsi, &group), 0);
  assert_int_equal(group, GPU_GROUP);
  assert_int_equal(vfd_sysfs_iommu_group(f->sysfs, &bridge, &group), 0);
  assert_int_equal(group, 1);

  group = -7;
  assert_int_equal(vfd_sysfs_iommu_group(f->sysfs, &nic, &group), -ENOENT);
  assert_int_equal(vfd_sysfs_iommu_group(f->sysfs, &absent, &group), -ENOENT);
  assert_int_equal(group, -7);
}

static void
test_iommu_group_devices_sorted(void **state)
{
  Fixture *f = *state;
  g_autoptr(GArray) members = NULL;
  g_autoptr(GArray) single = NULL;
  GArray *untouched = NULL;
  static const char *const expected[] = { GPU, AUDIO, USB, UCSI };

  assert_int_equal(vfd_sysfs_iommu_group_devices(f->sysfs, GPU_GROUP, &members), 0);
  assert_non_null(members);
  assert_int_equal(members->len, G_N_ELEMENTS(expected));
  for (guint i = 0; i < members->len; i++) {
    char buf[VFD_BDF_STRLEN];
    assert_string_equal(vfd_bdf_format(&g_array_index(members, VfdBdf, i), buf), expected[i]);
  }

  assert_int_equal(vfd_sysfs_iommu_group_devices(f->sysfs, 1, &single), 0);
  assert_int_equal(single->len, 1);

  assert_int_equal(vfd_sysfs_iommu_group_devices(f->sysfs, 99, &untouched), -ENOENT);
  assert_null(untouched);
  assert_true(vfd_sysfs_iommu_group_devices(f->sysfs, -1, &untouched) < 0);
  assert_null(untouched);
}

static void
test_vfio_group_node(void **state)
{
  Fixture *f = *state;

  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, 1));
  fake_sysfs_add_device(f->fake, "0000:03:00.0", 0x10de, 0x20b0, 0x030200, 40, "vfio-pci", NULL);
  assert_true(vfd_sysfs_vfio_group_exists(f->sysfs, 40));
  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, 41));
}

/* The device layer's bind sequence for one function, then its restore. */
static void
test_bind_and_restore_sequence(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU);
  g_autofree char *override = NULL;
  static const char *const bind_log[] = {
    "bus/pci/devices/" GPU "/driver_override=vfio-pci",
    "bus/pci/drivers/nvidia/unbind=" GPU,
    "bus/pci/drivers_probe=" GPU,
  };
  static const char *const full_log[] = {
    "bus/pci/devices/" GPU "/driver_override=vfio-pci",
    "bus/pci/drivers/nvidia/unbind=" GPU,
    "bus/pci/drivers_probe=" GPU,
    "bus/pci/drivers/vfio-pci/unbind=" GPU,
    "bus/pci/devices/" GPU "/driver_override=\n",
    "bus/pci/drivers_probe=" GPU,
  };

  /* Bind: override, unbind, probe. */
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", "vfio-pci"), 0);
  assert_driver(f, GPU, "nvidia"); /* an override alone does not rebind */
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "nvidia"), 0);
  assert_driver(f, GPU, NULL);
  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &gpu), 0);
  assert_driver(f, GPU, "vfio-pci");
  assert_true(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "driver_override", &override), 0);
  assert_string_equal(override, "vfio-pci");
  assert_log(f, bind_log, G_N_ELEMENTS(bind_log));

  /* Restore: unbind from vfio-pci, clear the override ("\n"), probe. */
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "vfio-pci"), 0);
  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", "\n"), 0);
  g_clear_pointer(&override, g_free);
  assert_int_equal(vfd_sysfs_read_attr(f->sysfs, &gpu, "driver_override", &override), 0);
  assert_string_equal(override, "");
  assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &gpu), 0);
  assert_driver(f, GPU, "nvidia");
  assert_log(f, full_log, G_N_ELEMENTS(full_log));
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers/*/new_id", NULL), 0);
}

/* Every member of the group: /dev/vfio/<group> appears with the first
 * vfio-pci device and goes with the last. */
static void
test_group_bind_vfio_node_lifetime(void **state)
{
  Fixture *f = *state;
  static const char *const members[] = { GPU, AUDIO, USB, UCSI };
  static const char *const original[] = { "nvidia", "snd_hda_intel", "xhci_hcd", NULL };

  for (guint i = 0; i < G_N_ELEMENTS(members); i++) {
    VfdBdf b = bdf(members[i]);
    assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &b, "driver_override", "vfio-pci\n"), 0);
    if (original[i])
      assert_int_equal(vfd_sysfs_unbind(f->sysfs, &b, original[i]), 0);
    assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &b), 0);
    assert_driver(f, members[i], "vfio-pci");
    assert_true(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  }
  for (guint i = 0; i < G_N_ELEMENTS(members); i++) {
    VfdBdf b = bdf(members[i]);
    assert_true(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
    assert_int_equal(vfd_sysfs_unbind(f->sysfs, &b, "vfio-pci"), 0);
    assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &b, "driver_override", "\n"), 0);
    assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &b), 0);
    assert_driver(f, members[i], original[i]);
  }
  assert_false(vfd_sysfs_vfio_group_exists(f->sysfs, GPU_GROUP));
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers/*/new_id", NULL), 0);
}

static void
test_write_errors(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU), ucsi = bdf(UCSI), absent = bdf(ABSENT);
  guint before;

  /* Not bound to that driver / not bound at all / no such device. */
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "snd_hda_intel"), -ENODEV);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &ucsi, "vfio-pci"), -ENODEV);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &absent, "nvidia"), -ENODEV);
  assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &absent), -ENODEV);
  /* No such driver: its unbind file does not exist. */
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "nouveau"), -ENOENT);
  /* No such device: no attribute file. */
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &absent, "driver_override", "vfio-pci"), -ENOENT);
  assert_driver(f, GPU, "nvidia");

  /* Driver names that are not names are refused before any write. */
  before = fake_sysfs_write_count(f->fake);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "../../../x"), -EINVAL);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, ".."), -EINVAL);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, ""), -EINVAL);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, NULL), -EINVAL);
  assert_int_equal(fake_sysfs_write_count(f->fake), before);
}

/* Errors from the writer come back unchanged. */
static void
test_writer_errors_propagate(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU);

  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_OVERRIDE, EBUSY);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_UNBIND, ETIMEDOUT);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_PROBE, ENOMEM);
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", "vfio-pci"), -EBUSY);
  assert_int_equal(vfd_sysfs_unbind(f->sysfs, &gpu, "nvidia"), -ETIMEDOUT);
  assert_int_equal(vfd_sysfs_drivers_probe(f->sysfs, &gpu), -ENOMEM);
  assert_driver(f, GPU, "nvidia");
}

/* The default writer (no fake installed), on the fake tree: a plain write. */
static void
test_default_writer(void **state)
{
  Fixture *f = *state;
  g_autoptr(VfdSysfs) plain = vfd_sysfs_new(fake_sysfs_sys_root(f->fake), fake_sysfs_dev_root(f->fake));
  VfdBdf gpu = bdf(GPU), absent = bdf(ABSENT);
  g_autofree char *v = NULL;
  g_autofree char *path = NULL;
  g_autofree char *raw = NULL;

  assert_int_equal(vfd_sysfs_write_attr(plain, &gpu, "driver_override", "vfio-pci"), 0);
  assert_int_equal(vfd_sysfs_read_attr(plain, &gpu, "driver_override", &v), 0);
  assert_string_equal(v, "vfio-pci");
  assert_int_equal(vfd_sysfs_write_attr(plain, &absent, "driver_override", "vfio-pci"), -ENOENT);
  /* The default writer went nowhere near the fake kernel. */
  assert_int_equal(fake_sysfs_write_count(f->fake), 0);

  /* Setting the fake writer, then NULL, restores the default one. */
  vfd_sysfs_set_writer(plain, fake_sysfs_writer, f->fake);
  assert_int_equal(vfd_sysfs_write_attr(plain, &gpu, "driver_override", "x"), 0);
  assert_int_equal(fake_sysfs_write_count(f->fake), 1);
  vfd_sysfs_set_writer(plain, NULL, NULL);
  assert_int_equal(vfd_sysfs_write_attr(plain, &gpu, "enable", "1"), 0);
  assert_int_equal(fake_sysfs_write_count(f->fake), 1);
  path = g_build_filename(fake_sysfs_sys_root(f->fake), "bus/pci/devices", GPU, "enable", NULL);
  assert_true(g_file_get_contents(path, &raw, NULL, NULL));
  assert_string_equal(g_strchomp(raw), "1");
}

/* A writer that records the thread of each write; a write to an attribute
 * named "hang" blocks while @hold is set (an unbind stuck in a driver). */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean hold;
  GPtrArray *threads; /* GThread * of each write, in order */
} ThreadWriter;

static int
thread_writer(const char *path, const char *value, void *user_data)
{
  ThreadWriter *w = user_data;

  (void) value;
  g_mutex_lock(&w->lock);
  g_ptr_array_add(w->threads, g_thread_self());
  while (g_str_has_suffix(path, "/hang") && w->hold)
    g_cond_wait(&w->cond, &w->lock);
  g_mutex_unlock(&w->lock);
  return 0;
}

static gpointer
thread_of(ThreadWriter *w, guint i)
{
  gpointer t;

  g_mutex_lock(&w->lock);
  assert_true(i < w->threads->len);
  t = w->threads->pdata[i];
  g_mutex_unlock(&w->lock);
  return t;
}

/* With a write timeout, writes run on writer threads (issue 17): one
 * thread serves consecutive writes, never the caller's; a write that hangs
 * keeps its thread, which is given nothing more: the next write gets
 * another thread, and the hung one's late return is counted. */
static void
test_writer_threads(void **state)
{
  Fixture *f = *state;
  VfdBdf gpu = bdf(GPU);
  ThreadWriter w = { .threads = g_ptr_array_new() };
  gint64 start;

  g_mutex_init(&w.lock);
  g_cond_init(&w.cond);
  vfd_sysfs_set_writer(f->sysfs, thread_writer, &w);
  vfd_sysfs_set_write_timeout(f->sysfs, 2000);
  for (int i = 0; i < 3; i++)
    assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", "vfio-pci"), 0);
  assert_ptr_not_equal(thread_of(&w, 0), g_thread_self());
  assert_ptr_equal(thread_of(&w, 1), thread_of(&w, 0));
  assert_ptr_equal(thread_of(&w, 2), thread_of(&w, 0));

  /* The same thread takes the write that hangs; the call returns at the
   * timeout. */
  w.hold = TRUE;
  vfd_sysfs_set_write_timeout(f->sysfs, 200);
  start = g_get_monotonic_time();
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "hang", "1"), -ETIMEDOUT);
  assert_true(g_get_monotonic_time() - start >= 200 * G_TIME_SPAN_MILLISECOND);
  assert_ptr_equal(thread_of(&w, 3), thread_of(&w, 0));
  assert_int_equal(vfd_sysfs_hung_writes(f->sysfs), 1);

  /* The next writes run, on a new thread, then on that one again. */
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", ""), 0);
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", "vfio-pci"), 0);
  assert_ptr_not_equal(thread_of(&w, 4), thread_of(&w, 3));
  assert_ptr_not_equal(thread_of(&w, 4), g_thread_self());
  assert_ptr_equal(thread_of(&w, 5), thread_of(&w, 4));

  /* The hung write returns: no longer counted, and writes go on. */
  g_mutex_lock(&w.lock);
  w.hold = FALSE;
  g_cond_broadcast(&w.cond);
  g_mutex_unlock(&w.lock);
  for (int i = 0; i < 500 && vfd_sysfs_hung_writes(f->sysfs) > 0; i++)
    g_usleep(10 * 1000);
  assert_int_equal(vfd_sysfs_hung_writes(f->sysfs), 0);
  assert_int_equal(vfd_sysfs_write_attr(f->sysfs, &gpu, "driver_override", ""), 0);
  assert_int_equal(w.threads->len, 7);

  /* The idle threads outlive nothing they use: the writer is restored
   * before @w goes. */
  vfd_sysfs_set_writer(f->sysfs, NULL, NULL);
  g_mutex_lock(&w.lock); /* the last write has returned its lock */
  g_mutex_unlock(&w.lock);
  g_ptr_array_unref(w.threads);
  g_cond_clear(&w.cond);
  g_mutex_clear(&w.lock);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_roots_and_paths, setup, teardown),
    cmocka_unit_test_setup_teardown(test_device_exists, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_attr, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_driver_override, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_hex_attr, setup, teardown),
    cmocka_unit_test_setup_teardown(test_device_driver, setup, teardown),
    cmocka_unit_test_setup_teardown(test_iommu_group, setup, teardown),
    cmocka_unit_test_setup_teardown(test_iommu_group_devices_sorted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vfio_group_node, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bind_and_restore_sequence, setup, teardown),
    cmocka_unit_test_setup_teardown(test_group_bind_vfio_node_lifetime, setup, teardown),
    cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_writer_errors_propagate, setup, teardown),
    cmocka_unit_test_setup_teardown(test_default_writer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_writer_threads, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
