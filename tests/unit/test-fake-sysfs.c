/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel itself: tree layout, each write's kernel semantics, the
 * faults, and that libpci enumerates the tree like a real /sys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pci/pci.h>

#include "fake-sysfs.h"

#define GPU "0000:01:00.0"
#define AUDIO "0000:01:00.1"
#define GPU2 "0000:41:00.0"
#define BRIDGE "0000:00:01.0"
#define NIC "0000:02:00.0"
#define GPU_GROUP 12

typedef struct {
  FakeSysfs *fake;
} Fixture;

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fake = fake_sysfs_new();
  fake_sysfs_add_driver(f->fake, "vfio-pci");
  fake_sysfs_add_device(f->fake, GPU, 0x10de, 0x2204, 0x030000, GPU_GROUP, "nvidia", "nvidia");
  fake_sysfs_add_device(f->fake, AUDIO, 0x10de, 0x1aef, 0x040300, GPU_GROUP, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(f->fake, BRIDGE, 0x8086, 0x1901, 0x060400, 1, "pcieport", "pcieport");
  fake_sysfs_add_device(f->fake, NIC, 0x8086, 0x10d3, 0x020000, -1, "e1000e", "e1000e");
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  Fixture *f = *state;

  fake_sysfs_free(f->fake);
  g_free(f);
  return 0;
}

/* Writes through the fake kernel: @rel is relative to the sys root. */
static int
w(Fixture *f, const char *rel, const char *value)
{
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), rel, NULL);

  return fake_sysfs_writer(path, value, f->fake);
}

static int
override(Fixture *f, const char *bdf, const char *value)
{
  g_autofree char *rel = g_strdup_printf("bus/pci/devices/%s/driver_override", bdf);

  return w(f, rel, value);
}

static int
unbind(Fixture *f, const char *driver, const char *bdf)
{
  g_autofree char *rel = g_strdup_printf("bus/pci/drivers/%s/unbind", driver);

  return w(f, rel, bdf);
}

static int
probe(Fixture *f, const char *bdf)
{
  return w(f, "bus/pci/drivers_probe", bdf);
}

static void
assert_driver(Fixture *f, const char *bdf, const char *expected)
{
  g_autofree char *driver = fake_sysfs_get_driver(f->fake, bdf);

  if (g_strcmp0(driver, expected) != 0)
    fail_msg("%s: driver '%s', expected '%s'", bdf, driver ? driver : "(none)", expected ? expected : "(none)");
}

static void
assert_override(Fixture *f, const char *bdf, const char *expected)
{
  g_autofree char *o = fake_sysfs_get_override(f->fake, bdf);

  assert_non_null(o);
  assert_string_equal(o, expected);
}

static char *
read_rel(Fixture *f, const char *rel)
{
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), rel, NULL);
  char *contents = NULL;

  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

static char *
link_rel(Fixture *f, const char *rel)
{
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), rel, NULL);

  return g_file_read_link(path, NULL);
}

static gboolean
exists_rel(Fixture *f, const char *rel)
{
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), rel, NULL);

  return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* The tree mirrors the model: links are where Linux has them, relative, and
 * they resolve. */
static void
test_tree_layout(void **state)
{
  Fixture *f = *state;
  const char *sys = fake_sysfs_sys_root(f->fake);
  g_autofree char *vendor = read_rel(f, "bus/pci/devices/" GPU "/vendor");
  g_autofree char *cls = read_rel(f, "devices/pci0000:00/" GPU "/class");
  g_autofree char *ovr = read_rel(f, "bus/pci/devices/" GPU "/driver_override");
  g_autofree char *numa = read_rel(f, "bus/pci/devices/" GPU "/numa_node");
  g_autofree char *bus_link = link_rel(f, "bus/pci/devices/" GPU);
  g_autofree char *drv_link = link_rel(f, "devices/pci0000:00/" GPU "/driver");
  g_autofree char *grp_link = link_rel(f, "devices/pci0000:00/" GPU "/iommu_group");
  g_autofree char *back_link = link_rel(f, "bus/pci/drivers/nvidia/" GPU);
  g_autofree char *member_link = link_rel(f, "kernel/iommu_groups/12/devices/" GPU);
  g_autofree char *config_path = g_build_filename(sys, "bus/pci/devices/" GPU "/config", NULL);
  g_autofree char *bridge_cfg_path = g_build_filename(sys, "bus/pci/devices/" BRIDGE "/config", NULL);
  g_autofree char *dev_dir = g_build_filename(sys, "devices/pci0000:00", GPU, NULL);
  g_autofree char *vfio = g_build_filename(fake_sysfs_dev_root(f->fake), "vfio/vfio", NULL);
  g_autofree guint8 *config = NULL;
  g_autofree guint8 *bridge_cfg = NULL;
  gsize len = 0;

  assert_true(g_path_is_absolute(sys));
  assert_true(g_str_has_suffix(sys, "/sys"));
  assert_string_equal(vendor, "0x10de\n");
  assert_string_equal(cls, "0x030000\n");
  assert_string_equal(ovr, "(null)\n");
  assert_string_equal(numa, "-1\n");
  assert_string_equal(bus_link, "../../../devices/pci0000:00/" GPU);
  assert_string_equal(drv_link, "../../../bus/pci/drivers/nvidia");
  assert_string_equal(grp_link, "../../../kernel/iommu_groups/12");
  assert_string_equal(back_link, "../../../../devices/pci0000:00/" GPU);
  assert_string_equal(member_link, "../../../../devices/pci0000:00/" GPU);
  /* Each link resolves to the device directory or the driver/group. */
  {
    g_autofree char *via_driver = g_build_filename(sys, "bus/pci/drivers/nvidia", GPU, NULL);
    g_autofree char *via_group = g_build_filename(sys, "kernel/iommu_groups/12/devices", GPU, NULL);
    char *resolved = realpath(via_driver, NULL);
    assert_non_null(resolved);
    assert_string_equal(resolved, dev_dir);
    free(resolved);
    resolved = realpath(via_group, NULL);
    assert_non_null(resolved);
    assert_string_equal(resolved, dev_dir);
    free(resolved);
  }
  assert_true(exists_rel(f, "bus/pci/devices/" GPU "/driver/unbind"));
  assert_true(exists_rel(f, "bus/pci/devices/" GPU "/iommu_group/devices/" AUDIO));
  assert_true(exists_rel(f, "bus/pci/drivers_probe"));
  assert_true(exists_rel(f, "bus/pci/drivers/vfio-pci/new_id"));
  assert_true(g_file_test(vfio, G_FILE_TEST_IS_REGULAR));

  /* boot_vga only on VGA-class devices. */
  assert_true(exists_rel(f, "bus/pci/devices/" GPU "/boot_vga"));
  assert_false(exists_rel(f, "bus/pci/devices/" AUDIO "/boot_vga"));

  /* No group: no link, no group directory. */
  assert_null(link_rel(f, "bus/pci/devices/" NIC "/iommu_group"));

  /* 256 bytes of config space with the IDs, class and header type. */
  assert_true(g_file_get_contents(config_path, (char **) &config, &len, NULL));
  assert_int_equal(len, 256);
  assert_int_equal(config[0] | config[1] << 8, 0x10de);
  assert_int_equal(config[2] | config[3] << 8, 0x2204);
  assert_int_equal(config[9] | config[10] << 8 | config[11] << 16, 0x030000);
  assert_int_equal(config[0x0e], 0);
  assert_true(g_file_get_contents(bridge_cfg_path, (char **) &bridge_cfg, &len, NULL));
  assert_int_equal(bridge_cfg[0x0e], 1);
  assert_int_equal(bridge_cfg[0x0b], 0x06);
}

static void
test_override_semantics(void **state)
{
  Fixture *f = *state;
  g_autofree char *raw = NULL;

  assert_override(f, GPU, "");
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_override(f, GPU, "vfio-pci");
  raw = read_rel(f, "bus/pci/devices/" GPU "/driver_override");
  assert_string_equal(raw, "vfio-pci\n");
  assert_driver(f, GPU, "nvidia"); /* no rebind */

  /* With a newline: the same. Up to the first newline only. */
  assert_int_equal(override(f, GPU, "vfio-pci\n"), 0);
  assert_override(f, GPU, "vfio-pci");
  assert_int_equal(override(f, GPU, "foo\nbar"), 0);
  assert_override(f, GPU, "foo");

  /* "" never reaches the kernel's store(): nothing changes. */
  assert_int_equal(override(f, GPU, ""), 0);
  assert_override(f, GPU, "foo");

  /* "\n" clears; the file then reads "(null)". */
  assert_int_equal(override(f, GPU, "\n"), 0);
  assert_override(f, GPU, "");
  g_clear_pointer(&raw, g_free);
  raw = read_rel(f, "bus/pci/devices/" GPU "/driver_override");
  assert_string_equal(raw, "(null)\n");

  /* Through the real directory path too. */
  assert_int_equal(w(f, "devices/pci0000:00/" GPU "/driver_override", "vfio-pci"), 0);
  assert_override(f, GPU, "vfio-pci");

  /* Longer than a page can show: -EINVAL, unchanged. */
  {
    g_autofree char *huge = g_strnfill(4095, 'x');
    assert_int_equal(override(f, GPU, huge), -EINVAL);
    assert_override(f, GPU, "vfio-pci");
  }
  /* Unknown device: there is no such file. */
  assert_int_equal(override(f, "0000:09:00.0", "vfio-pci"), -ENOENT);
}

static void
test_unbind_semantics(void **state)
{
  Fixture *f = *state;

  assert_int_equal(unbind(f, "snd_hda_intel", GPU), -ENODEV); /* other driver's */
  assert_int_equal(unbind(f, "vfio-pci", GPU), -ENODEV);
  assert_int_equal(unbind(f, "nvidia", "0000:09:00.0"), -ENODEV);
  assert_int_equal(unbind(f, "nvidia", "0000:01:00.0 "), -ENODEV);
  assert_int_equal(unbind(f, "nvidia", "1:00.0"), -ENODEV);     /* no short forms */
  assert_int_equal(unbind(f, "nvidia", "0000:01:00.0\n\n"), -ENODEV);
  assert_int_equal(unbind(f, "nouveau", GPU), -ENOENT); /* no such driver: no file */
  assert_driver(f, GPU, "nvidia");

  assert_int_equal(unbind(f, "nvidia", GPU "\n"), 0); /* one newline is fine */
  assert_driver(f, GPU, NULL);
  assert_false(exists_rel(f, "bus/pci/devices/" GPU "/driver"));
  assert_false(exists_rel(f, "bus/pci/drivers/nvidia/" GPU));
  assert_int_equal(unbind(f, "nvidia", GPU), -ENODEV); /* already unbound */
}

static void
test_probe_semantics(void **state)
{
  Fixture *f = *state;

  assert_int_equal(probe(f, "0000:09:00.0"), -ENODEV);
  /* Bound: success, no change, even with an override. */
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, "nvidia");

  /* Override to a driver that is not loaded: stays unbound, success. */
  assert_int_equal(override(f, AUDIO, "not-loaded"), 0);
  assert_int_equal(unbind(f, "snd_hda_intel", AUDIO), 0);
  assert_int_equal(probe(f, AUDIO), 0);
  assert_driver(f, AUDIO, NULL);
  /* Override cleared: the native driver. */
  assert_int_equal(override(f, AUDIO, "\n"), 0);
  assert_int_equal(probe(f, AUDIO "\n"), 0);
  assert_driver(f, AUDIO, "snd_hda_intel");

  /* No override and the native driver not loaded: unbound, success. */
  fake_sysfs_add_device(f->fake, GPU2, 0x10de, 0x2204, 0x030000, 40, NULL, "nouveau");
  assert_int_equal(probe(f, GPU2), 0);
  assert_driver(f, GPU2, NULL);
  assert_false(fake_sysfs_vfio_node_exists(f->fake, 40));
  fake_sysfs_add_driver(f->fake, "nouveau");
  assert_int_equal(probe(f, GPU2), 0);
  assert_driver(f, GPU2, "nouveau");
}

static void
test_vfio_pci_and_dev_node(void **state)
{
  Fixture *f = *state;

  assert_false(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, "vfio-pci");
  assert_true(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
  assert_true(exists_rel(f, "bus/pci/drivers/vfio-pci/" GPU));

  assert_int_equal(override(f, AUDIO, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "snd_hda_intel", AUDIO), 0);
  assert_int_equal(probe(f, AUDIO), 0);
  assert_driver(f, AUDIO, "vfio-pci");

  /* The node stays while any member is on vfio-pci. */
  assert_int_equal(unbind(f, "vfio-pci", GPU), 0);
  assert_true(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
  assert_int_equal(unbind(f, "vfio-pci", AUDIO), 0);
  assert_false(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));

  /* vfio-pci never takes a bridge: the probe succeeds, nothing binds. */
  assert_int_equal(override(f, BRIDGE, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "pcieport", BRIDGE), 0);
  assert_int_equal(probe(f, BRIDGE), 0);
  assert_driver(f, BRIDGE, NULL);
  assert_false(fake_sysfs_vfio_node_exists(f->fake, 1));
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/bind", BRIDGE), -EINVAL);
}

static void
test_bind_file(void **state)
{
  Fixture *f = *state;

  assert_int_equal(w(f, "bus/pci/drivers/nvidia/bind", GPU), -EBUSY);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  /* vfio-pci does not match without an override. */
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/bind", GPU), -ENODEV);
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/bind", "0000:09:00.0"), -ENODEV);
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  /* With an override, only that driver matches. */
  assert_int_equal(w(f, "bus/pci/drivers/nvidia/bind", GPU), -ENODEV);
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/bind", GPU "\n"), 0);
  assert_driver(f, GPU, "vfio-pci");
  assert_true(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
}

/* new_id grabs every unbound device with the IDs: why vfiod must not use it. */
static void
test_new_id_grabs_everything(void **state)
{
  Fixture *f = *state;

  fake_sysfs_add_device(f->fake, GPU2, 0x10de, 0x2204, 0x030000, 40, NULL, "nouveau");
  fake_sysfs_add_device(f->fake, "0000:42:00.0", 0x10de, 0x2204, 0x030000, 41, NULL, NULL);
  fake_sysfs_set_override(f->fake, "0000:42:00.0", "nvidia"); /* someone else's */
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/new_id", "10de"), -EINVAL);
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/new_id", "10de 2204\n"), 0);
  assert_driver(f, GPU2, "vfio-pci");           /* grabbed */
  assert_driver(f, "0000:42:00.0", NULL);       /* override names another driver */
  assert_driver(f, GPU, "nvidia");              /* bound devices are left alone */
  assert_true(fake_sysfs_vfio_node_exists(f->fake, 40));
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers/*/new_id", NULL), 2);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers/*/new_id", "10de 2204"), 1);

  /* A later probe of a matching device also picks the dynamic ID... */
  fake_sysfs_add_device(f->fake, "0000:43:00.0", 0x10de, 0x2204, 0x030000, 42, NULL, NULL);
  assert_int_equal(probe(f, "0000:43:00.0"), 0);
  assert_driver(f, "0000:43:00.0", "vfio-pci");
  /* ... until remove_id. */
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/remove_id", "10de 2204"), 0);
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/remove_id", "10de 2204"), -ENODEV);
  fake_sysfs_add_device(f->fake, "0000:44:00.0", 0x10de, 0x2204, 0x030000, 43, NULL, NULL);
  assert_int_equal(probe(f, "0000:44:00.0"), 0);
  assert_driver(f, "0000:44:00.0", NULL);
}

static void
test_fail_next_fires_once(void **state)
{
  Fixture *f = *state;

  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_OVERRIDE, EBUSY);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_UNBIND, ENODEV);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_PROBE, EIO);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_BIND, EAGAIN);

  /* Other devices and other ops are not affected. */
  assert_int_equal(override(f, AUDIO, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "snd_hda_intel", AUDIO), 0);
  assert_int_equal(probe(f, AUDIO), 0);
  assert_driver(f, AUDIO, "vfio-pci");

  /* Each fires once and changes nothing... */
  assert_int_equal(override(f, GPU, "vfio-pci"), -EBUSY);
  assert_override(f, GPU, "");
  assert_int_equal(unbind(f, "nvidia", GPU), -ENODEV);
  assert_driver(f, GPU, "nvidia");
  assert_int_equal(w(f, "bus/pci/drivers/vfio-pci/bind", GPU), -EAGAIN);
  /* ... then the kernel behaves normally. */
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_int_equal(probe(f, GPU), -EIO);
  assert_driver(f, GPU, NULL);
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, "vfio-pci");

  /* Queued twice: fires twice. Failed writes are logged too. */
  fake_sysfs_clear_log(f->fake);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_UNBIND, EBUSY);
  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_UNBIND, EBUSY);
  assert_int_equal(unbind(f, "vfio-pci", GPU), -EBUSY);
  assert_int_equal(unbind(f, "vfio-pci", GPU), -EBUSY);
  assert_int_equal(unbind(f, "vfio-pci", GPU), 0);
  assert_int_equal(fake_sysfs_write_count(f->fake), 3);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers/vfio-pci/unbind", GPU), 3);
}

static void
test_vanish(void **state)
{
  Fixture *f = *state;

  fake_sysfs_vanish_after(f->fake, GPU, FAKE_OP_UNBIND);
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_true(fake_sysfs_has_device(f->fake, GPU));
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_false(fake_sysfs_has_device(f->fake, GPU));
  assert_null(fake_sysfs_get_driver(f->fake, GPU));
  assert_null(fake_sysfs_get_override(f->fake, GPU));
  assert_false(exists_rel(f, "bus/pci/devices/" GPU));
  assert_false(exists_rel(f, "devices/pci0000:00/" GPU));
  assert_false(exists_rel(f, "kernel/iommu_groups/12/devices/" GPU));
  assert_true(exists_rel(f, "kernel/iommu_groups/12/devices/" AUDIO)); /* group lives on */
  assert_int_equal(probe(f, GPU), -ENODEV);
  assert_int_equal(override(f, GPU, "vfio-pci"), -ENOENT);

  /* The last member gone: the group goes, and its /dev/vfio node. */
  assert_int_equal(override(f, AUDIO, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "snd_hda_intel", AUDIO), 0);
  fake_sysfs_vanish_after(f->fake, AUDIO, FAKE_OP_PROBE);
  assert_int_equal(probe(f, AUDIO), 0);
  assert_false(fake_sysfs_has_device(f->fake, AUDIO));
  assert_false(exists_rel(f, "kernel/iommu_groups/12"));
  assert_false(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));

  /* Immediate removal and the kernel's "remove" attribute. */
  fake_sysfs_remove_device(f->fake, NIC);
  assert_false(exists_rel(f, "bus/pci/devices/" NIC));
  assert_false(exists_rel(f, "bus/pci/drivers/e1000e/" NIC));
  assert_int_equal(w(f, "bus/pci/devices/" BRIDGE "/remove", "0"), 0);
  assert_true(fake_sysfs_has_device(f->fake, BRIDGE));
  assert_int_equal(w(f, "bus/pci/devices/" BRIDGE "/remove", "1\n"), 0);
  assert_false(fake_sysfs_has_device(f->fake, BRIDGE));
}

static void
test_vanish_after_failed_write(void **state)
{
  Fixture *f = *state;

  fake_sysfs_fail_next(f->fake, GPU, FAKE_OP_OVERRIDE, EIO);
  fake_sysfs_vanish_after(f->fake, GPU, FAKE_OP_OVERRIDE);
  assert_int_equal(override(f, GPU, "vfio-pci"), -EIO);
  assert_false(fake_sysfs_has_device(f->fake, GPU));
}

static void
test_regrab(void **state)
{
  Fixture *f = *state;

  fake_sysfs_regrab_after_unbind(f->fake, GPU, "nvidia");
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  /* A failed unbind does not consume it. */
  assert_int_equal(unbind(f, "vfio-pci", GPU), -ENODEV);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_driver(f, GPU, "nvidia"); /* grabbed back at once */
  assert_true(exists_rel(f, "bus/pci/drivers/nvidia/" GPU));
  /* Once only. */
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_driver(f, GPU, NULL);
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, "vfio-pci");

  /* A regrab by vfio-pci (e.g. a new_id left by another tool) makes the
   * /dev/vfio node appear like a real bind. */
  fake_sysfs_regrab_after_unbind(f->fake, AUDIO, "vfio-pci");
  assert_int_equal(unbind(f, "snd_hda_intel", AUDIO), 0);
  assert_driver(f, AUDIO, "vfio-pci");
  assert_int_equal(unbind(f, "vfio-pci", GPU), 0);
  assert_true(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
}

static void
test_probe_binds_nothing(void **state)
{
  Fixture *f = *state;

  fake_sysfs_probe_binds_nothing(f->fake, GPU);
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, NULL);
  assert_false(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
  assert_int_equal(probe(f, GPU), 0);
  assert_driver(f, GPU, "vfio-pci");
}

typedef struct {
  Fixture *f;
  int result;
} HangArgs;

static gpointer
unbind_thread(gpointer data)
{
  HangArgs *a = data;

  a->result = unbind(a->f, "nvidia", GPU);
  return NULL;
}

static void
test_hang(void **state)
{
  Fixture *f = *state;
  HangArgs args = { f, 12345 };
  GThread *t;

  fake_sysfs_hang_next(f->fake, GPU, FAKE_OP_UNBIND);
  t = g_thread_new("unbind", unbind_thread, &args);
  assert_true(fake_sysfs_wait_hung(f->fake, 1, 5000));
  /* Other writes and inspection go on meanwhile. */
  assert_int_equal(override(f, AUDIO, "vfio-pci"), 0);
  assert_driver(f, GPU, "nvidia");
  assert_int_equal(args.result, 12345);
  fake_sysfs_unhang(f->fake);
  g_thread_join(t);
  assert_int_equal(args.result, 0);
  assert_driver(f, GPU, NULL);
  assert_false(fake_sysfs_wait_hung(f->fake, 1, 10));
}

/* A hung writer does not keep fake_sysfs_free() from cleaning up. */
static void
test_free_releases_hung_writer(void **state)
{
  Fixture *f = *state;
  HangArgs args = { f, 12345 };
  GThread *t;

  fake_sysfs_hang_next(f->fake, GPU, FAKE_OP_UNBIND);
  t = g_thread_new("unbind", unbind_thread, &args);
  assert_true(fake_sysfs_wait_hung(f->fake, 1, 5000));
  fake_sysfs_free(f->fake);
  f->fake = NULL;
  g_thread_join(t);
  assert_int_equal(args.result, 0);
}

static void
test_write_log_and_count(void **state)
{
  Fixture *f = *state;
  g_autoptr(GPtrArray) log = NULL;

  fake_sysfs_clear_log(f->fake);
  assert_int_equal(fake_sysfs_write_count(f->fake), 0);
  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_int_equal(probe(f, GPU "\n"), 0);
  assert_int_equal(override(f, GPU, ""), 0);
  assert_int_equal(w(f, "bus/pci/devices/" GPU "/reset", "1"), 0); /* plain write */
  assert_int_equal(w(f, "bus/pci/devices/" GPU "/no_such_attr", "1"), -ENOENT);
  assert_int_equal(w(f, "bus/pci//drivers_probe", AUDIO), 0); /* normalised */

  log = fake_sysfs_write_log(f->fake);
  assert_int_equal(log->len, 7);
  assert_int_equal(fake_sysfs_write_count(f->fake), 7);
  assert_string_equal(g_ptr_array_index(log, 0), "bus/pci/devices/" GPU "/driver_override=vfio-pci");
  assert_string_equal(g_ptr_array_index(log, 1), "bus/pci/drivers/nvidia/unbind=" GPU);
  assert_string_equal(g_ptr_array_index(log, 2), "bus/pci/drivers_probe=" GPU "\n");
  assert_string_equal(g_ptr_array_index(log, 3), "bus/pci/devices/" GPU "/driver_override=");
  assert_string_equal(g_ptr_array_index(log, 4), "bus/pci/devices/" GPU "/reset=1");
  assert_string_equal(g_ptr_array_index(log, 6), "bus/pci/drivers_probe=" AUDIO);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers_probe", NULL), 2);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "bus/pci/drivers_probe", GPU), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "*/driver_override", NULL), 2);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "*/driver_override", ""), 1);
  assert_int_equal(fake_sysfs_count_writes(f->fake, NULL, NULL), 7);
  assert_int_equal(fake_sysfs_count_writes(f->fake, "*/new_id", NULL), 0);
}

/* The HARD rule: nothing outside the fake tree is ever written. */
static void
test_refuses_outside_writes(void **state)
{
  Fixture *f = *state;
  g_autofree char *escape = g_build_filename(fake_sysfs_sys_root(f->fake), "..", "escaped", NULL);
  g_autofree char *escaped = g_build_filename(fake_sysfs_sys_root(f->fake), "..", "escaped", NULL);
  g_autofree char *dev = g_build_filename(fake_sysfs_dev_root(f->fake), "vfio", "12", NULL);
  g_autofree char *prefix_trick = g_strconcat(fake_sysfs_sys_root(f->fake), "x/bus/pci/drivers_probe", NULL);

  assert_int_equal(fake_sysfs_writer("/sys/bus/pci/drivers_probe", GPU, f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer("/sys/bus/pci/drivers/nvidia/unbind", GPU, f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer("bus/pci/drivers_probe", GPU, f->fake), -EACCES); /* relative */
  assert_int_equal(fake_sysfs_writer(escape, "x", f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer(dev, "x", f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer(prefix_trick, GPU, f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer(fake_sysfs_sys_root(f->fake), "x", f->fake), -EACCES);
  assert_int_equal(fake_sysfs_writer(NULL, "x", f->fake), -EACCES);
  assert_int_equal(fake_sysfs_outside_writes(f->fake), 8);
  assert_false(g_file_test(escaped, G_FILE_TEST_EXISTS));
  assert_false(fake_sysfs_vfio_node_exists(f->fake, GPU_GROUP));
  assert_driver(f, GPU, "nvidia");
}

static void
test_free_removes_tree(void **state)
{
  Fixture *f = *state;
  g_autofree char *top = g_path_get_dirname(fake_sysfs_sys_root(f->fake));

  assert_true(g_file_test(top, G_FILE_TEST_IS_DIR));
  fake_sysfs_free(f->fake);
  f->fake = NULL;
  assert_false(g_file_test(top, G_FILE_TEST_EXISTS));
  fake_sysfs_free(NULL);
}

/* ---- libpci over the fake tree ---- */

static void PCI_PRINTF(1, 2) PCI_NONRET
pci_error_fails_test(char *msg, ...)
{
  char buf[1024];
  va_list ap;

  va_start(ap, msg);
  vsnprintf(buf, sizeof(buf), msg, ap);
  va_end(ap);
  fail_msg("libpci error: %s", buf);
  abort(); /* not reached: fail_msg() does not return */
}

static void PCI_PRINTF(1, 2)
pci_warning_fails_test(char *msg, ...)
{
  char buf[1024];
  va_list ap;

  va_start(ap, msg);
  vsnprintf(buf, sizeof(buf), msg, ap);
  va_end(ap);
  fail_msg("libpci warning: %s", buf);
}

static void PCI_PRINTF(1, 2)
pci_debug_ignore(char *msg, ...)
{
}

static void
pci_cleanup_p(struct pci_access **a)
{
  if (*a)
    pci_cleanup(*a);
}

static struct pci_dev *
find_dev(struct pci_access *a, int domain, int bus, int dev, int func)
{
  for (struct pci_dev *d = a->devices; d; d = d->next)
    if (d->domain == domain && d->bus == bus && d->dev == dev && d->func == func)
      return d;
  return NULL;
}

static void
test_libpci_enumerates(void **state)
{
  Fixture *f = *state;
  __attribute__((cleanup(pci_cleanup_p))) struct pci_access *a = NULL;
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), "bus", "pci", NULL);
  const int fill = PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_IOMMU_GROUP | PCI_FILL_DRIVER;
  const int fill_more = PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS | PCI_FILL_NUMA_NODE | PCI_FILL_IRQ | PCI_FILL_BASES |
                        PCI_FILL_ROM_BASE | PCI_FILL_SIZES | PCI_FILL_MODULE_ALIAS;
  struct pci_dev *d;
  guint n = 0;

  fake_sysfs_add_device(f->fake, "0001:41:00.2", 0x10de, 0x1ad8, 0x0c0330, 40, NULL, NULL);

  a = pci_alloc();
  assert_non_null(a);
  a->error = pci_error_fails_test;
  a->warning = pci_warning_fails_test;
  a->debug = pci_debug_ignore;
  a->method = PCI_ACCESS_SYS_BUS_PCI;
  assert_int_equal(pci_set_param(a, "sysfs.path", path), 0);
  pci_init(a);
  pci_scan_bus(a);

  for (d = a->devices; d; d = d->next) {
    pci_fill_info(d, fill);
    n++;
  }
  assert_int_equal(n, 5);

  d = find_dev(a, 0, 1, 0, 0);
  assert_non_null(d);
  assert_int_equal(d->vendor_id, 0x10de);
  assert_int_equal(d->device_id, 0x2204);
  assert_int_equal(d->device_class, 0x0300);
  assert_string_equal(pci_get_string_property(d, PCI_FILL_IOMMU_GROUP), "12");
  assert_string_equal(pci_get_string_property(d, PCI_FILL_DRIVER), "nvidia");

  d = find_dev(a, 0, 1, 0, 1);
  assert_non_null(d);
  assert_int_equal(d->device_id, 0x1aef);
  assert_int_equal(d->device_class, 0x0403);
  assert_string_equal(pci_get_string_property(d, PCI_FILL_IOMMU_GROUP), "12");
  assert_string_equal(pci_get_string_property(d, PCI_FILL_DRIVER), "snd_hda_intel");

  d = find_dev(a, 0, 0, 1, 0);
  assert_non_null(d);
  assert_int_equal(d->vendor_id, 0x8086);
  assert_int_equal(d->device_class, 0x0604);
  assert_string_equal(pci_get_string_property(d, PCI_FILL_IOMMU_GROUP), "1");

  d = find_dev(a, 0, 2, 0, 0);
  assert_non_null(d);
  assert_null(pci_get_string_property(d, PCI_FILL_IOMMU_GROUP)); /* no group */
  assert_string_equal(pci_get_string_property(d, PCI_FILL_DRIVER), "e1000e");

  d = find_dev(a, 1, 0x41, 0, 2);
  assert_non_null(d);
  assert_int_equal(d->device_id, 0x1ad8);
  assert_int_equal(d->device_class, 0x0c03);
  assert_string_equal(pci_get_string_property(d, PCI_FILL_IOMMU_GROUP), "40");
  assert_null(pci_get_string_property(d, PCI_FILL_DRIVER)); /* unbound */

  /* What else the daemon may ask for (vfd_host_enumerate uses CLASS_EXT and
   * NUMA_NODE) is there as well, without warnings. */
  pci_fill_info(d, fill_more);
  assert_int_equal(d->prog_if, 0x30);
  assert_int_equal(d->rev_id, 0xa1);
  assert_int_equal(d->subsys_vendor_id, 0x10de);
  assert_int_equal(d->numa_node, -1);
  assert_non_null(d->module_alias); /* libpci keeps the kernel's newline */
  assert_string_equal(d->module_alias, "pci:v000010DEd00001AD8sv000010DEsd00000000bc0Csc03i30\n");

  /* Config space reads (header type, IDs) work too. */
  d = find_dev(a, 0, 0, 1, 0);
  assert_int_equal(pci_read_byte(d, PCI_HEADER_TYPE) & 0x7f, PCI_HEADER_TYPE_BRIDGE);
  d = find_dev(a, 0, 1, 0, 0);
  assert_int_equal(pci_read_word(d, PCI_VENDOR_ID), 0x10de);
  assert_int_equal(pci_read_byte(d, PCI_HEADER_TYPE) & 0x7f, PCI_HEADER_TYPE_NORMAL);
}

/* After a bind through the fake kernel, libpci sees the new driver. */
static void
test_libpci_sees_rebind(void **state)
{
  Fixture *f = *state;
  __attribute__((cleanup(pci_cleanup_p))) struct pci_access *a = NULL;
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(f->fake), "bus", "pci", NULL);
  struct pci_dev *d;

  assert_int_equal(override(f, GPU, "vfio-pci"), 0);
  assert_int_equal(unbind(f, "nvidia", GPU), 0);
  assert_int_equal(probe(f, GPU), 0);

  a = pci_alloc();
  a->error = pci_error_fails_test;
  a->warning = pci_warning_fails_test;
  a->debug = pci_debug_ignore;
  a->method = PCI_ACCESS_SYS_BUS_PCI;
  assert_int_equal(pci_set_param(a, "sysfs.path", path), 0);
  pci_init(a);
  pci_scan_bus(a);
  d = find_dev(a, 0, 1, 0, 0);
  assert_non_null(d);
  pci_fill_info(d, PCI_FILL_DRIVER | PCI_FILL_NUMA_NODE);
  assert_string_equal(pci_get_string_property(d, PCI_FILL_DRIVER), "vfio-pci");
  assert_int_equal(d->numa_node, -1);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_tree_layout, setup, teardown),
    cmocka_unit_test_setup_teardown(test_override_semantics, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unbind_semantics, setup, teardown),
    cmocka_unit_test_setup_teardown(test_probe_semantics, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vfio_pci_and_dev_node, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bind_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_new_id_grabs_everything, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fail_next_fires_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vanish, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vanish_after_failed_write, setup, teardown),
    cmocka_unit_test_setup_teardown(test_regrab, setup, teardown),
    cmocka_unit_test_setup_teardown(test_probe_binds_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hang, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_releases_hung_writer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_write_log_and_count, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuses_outside_writes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_free_removes_tree, setup, teardown),
    cmocka_unit_test_setup_teardown(test_libpci_enumerates, setup, teardown),
    cmocka_unit_test_setup_teardown(test_libpci_sees_rebind, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
