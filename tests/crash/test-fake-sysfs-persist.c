/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's persistence (tests/unit/fake-sysfs.h, "Persistence"):
 * a tree at a chosen path, kept on free, rebuilt by fake_sysfs_load() with
 * devices, drivers, native drivers, new_id entries, overrides, bindings and
 * groups, and repaired when the tree diverged from the model. */
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
#include <glib/gstdio.h>

#include "fake-sysfs.h"

#define GPU "0000:01:00.0"
#define AUDIO "0000:01:00.1"
#define BRIDGE "0000:00:01.0"
#define NIC "0000:02:00.0"

static char *
new_dir(void)
{
  g_autofree char *tmpl = g_build_filename(g_get_tmp_dir(), "vfiod-persist-XXXXXX", NULL);

  assert_non_null(g_mkdtemp(tmpl));
  return g_build_filename(tmpl, "tree", NULL); /* does not exist yet */
}

static void
rm_parent(const char *dir)
{
  g_autofree char *parent = g_path_get_dirname(dir);
  g_autofree char *cmd = NULL;

  assert_true(g_str_has_prefix(parent, g_get_tmp_dir()));
  cmd = g_strdup_printf("rm -rf '%s'", parent);
  assert_int_equal(system(cmd), 0);
}

static int
w(FakeSysfs *fs, const char *rel, const char *value)
{
  g_autofree char *path = g_build_filename(fake_sysfs_sys_root(fs), rel, NULL);

  return fake_sysfs_writer(path, value, fs);
}

static FakeSysfs *
populate(const char *dir)
{
  FakeSysfs *fs = fake_sysfs_new_in(dir);

  fake_sysfs_add_driver(fs, "vfio-pci");
  fake_sysfs_add_device(fs, GPU, 0x10de, 0x2204, 0x030000, 12, "nvidia", "nvidia");
  fake_sysfs_add_device(fs, AUDIO, 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(fs, BRIDGE, 0x8086, 0x1901, 0x060400, 12, "pcieport", "pcieport");
  fake_sysfs_add_device(fs, NIC, 0x8086, 0x10d3, 0x020000, -1, NULL, "e1000e");
  fake_sysfs_set_override(fs, AUDIO, "snd_hda_intel");
  return fs;
}

static void
test_new_in_and_keep(void **state)
{
  g_autofree char *dir = new_dir();
  g_autofree char *model = g_build_filename(dir, "model.ini", NULL);
  FakeSysfs *fs = populate(dir);
  char *real = realpath(dir, NULL);

  assert_string_equal(fake_sysfs_dir(fs), real);
  free(real);
  assert_true(g_file_test(model, G_FILE_TEST_IS_REGULAR));
  fake_sysfs_set_keep(fs, TRUE);
  fake_sysfs_free(fs);
  assert_true(g_file_test(model, G_FILE_TEST_IS_REGULAR));

  /* Not kept: removed. */
  fs = fake_sysfs_load(dir);
  fake_sysfs_set_keep(fs, FALSE);
  fake_sysfs_free(fs);
  assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
  rm_parent(dir);
}

static void
test_load_round_trip(void **state)
{
  g_autofree char *dir = new_dir();
  FakeSysfs *fs = populate(dir);
  g_autofree char *drv = NULL, *ovr = NULL;

  /* GPU to vfio-pci, as vfiod does; a new_id for the NIC. */
  assert_int_equal(w(fs, "bus/pci/devices/" GPU "/driver_override", "vfio-pci"), 0);
  assert_int_equal(w(fs, "bus/pci/drivers/nvidia/unbind", GPU), 0);
  assert_int_equal(w(fs, "bus/pci/drivers_probe", GPU), 0);
  fake_sysfs_add_driver(fs, "other");
  assert_int_equal(w(fs, "bus/pci/drivers/other/new_id", "8086 10d3"), 0);
  fake_sysfs_set_keep(fs, TRUE);
  fake_sysfs_free(fs);

  fs = fake_sysfs_load(dir);
  assert_true(fake_sysfs_has_device(fs, GPU) && fake_sysfs_has_device(fs, NIC));
  drv = fake_sysfs_get_driver(fs, GPU);
  assert_string_equal(drv, "vfio-pci");
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, NIC);
  assert_string_equal(drv, "other"); /* new_id grabbed it */
  ovr = fake_sysfs_get_override(fs, GPU);
  assert_string_equal(ovr, "vfio-pci");
  g_free(ovr);
  ovr = fake_sysfs_get_override(fs, AUDIO);
  assert_string_equal(ovr, "snd_hda_intel");
  assert_true(fake_sysfs_vfio_node_exists(fs, 12));
  assert_int_equal(fake_sysfs_write_count(fs), 0); /* the log is per process */

  /* Native drivers and semantics survive: release the GPU to nvidia. */
  assert_int_equal(w(fs, "bus/pci/drivers/vfio-pci/unbind", GPU), 0);
  assert_false(fake_sysfs_vfio_node_exists(fs, 12));
  assert_int_equal(w(fs, "bus/pci/devices/" GPU "/driver_override", "\n"), 0);
  assert_int_equal(w(fs, "bus/pci/drivers_probe", GPU), 0);
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, GPU);
  assert_string_equal(drv, "nvidia");
  /* The dynamic ID survived: unbind the NIC, probe, "other" binds again. */
  assert_int_equal(w(fs, "bus/pci/drivers/other/unbind", NIC), 0);
  assert_int_equal(w(fs, "bus/pci/drivers_probe", NIC), 0);
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, NIC);
  assert_string_equal(drv, "other");
  fake_sysfs_free(fs); /* loaded: kept */

  /* A third process sees the second one's writes; the bridge is untouched. */
  fs = fake_sysfs_load(dir);
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, GPU);
  assert_string_equal(drv, "nvidia");
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, BRIDGE);
  assert_string_equal(drv, "pcieport");
  {
    g_autofree char *grp = g_build_filename(fake_sysfs_sys_root(fs), "kernel/iommu_groups/12/devices", BRIDGE, NULL);
    assert_true(g_file_test(grp, G_FILE_TEST_EXISTS));
  }
  /* writes.log holds every write of both processes. */
  {
    g_autofree char *log = g_build_filename(dir, "writes.log", NULL);
    g_autofree char *s = NULL;
    assert_true(g_file_get_contents(log, &s, NULL, NULL));
    assert_non_null(strstr(s, "bus/pci/drivers/nvidia/unbind=0000:01:00.0 -> 0"));
    assert_non_null(strstr(s, "driver_override=\\n -> 0"));
  }
  fake_sysfs_free(fs);
  rm_parent(dir);
}

static void
test_load_repairs_tree(void **state)
{
  g_autofree char *dir = new_dir();
  FakeSysfs *fs = populate(dir);
  g_autofree char *link = NULL;
  g_autofree char *ovr_file = NULL;
  g_autofree char *node = NULL;
  g_autofree char *text = NULL;

  fake_sysfs_set_keep(fs, TRUE);
  link = g_build_filename(fake_sysfs_sys_root(fs), "bus/pci/devices", GPU, "driver", NULL);
  ovr_file = g_build_filename(fake_sysfs_sys_root(fs), "bus/pci/devices", AUDIO, "driver_override", NULL);
  node = g_build_filename(fake_sysfs_dev_root(fs), "vfio", "12", NULL);
  fake_sysfs_free(fs);

  /* The tree diverges from the model. */
  assert_int_equal(g_unlink(link), 0);
  assert_true(g_file_set_contents(ovr_file, "(null)\n", -1, NULL));
  assert_true(g_file_set_contents(node, "", -1, NULL));

  fs = fake_sysfs_load(dir);
  assert_true(g_file_test(link, G_FILE_TEST_IS_SYMLINK));
  assert_true(g_file_get_contents(ovr_file, &text, NULL, NULL));
  assert_string_equal(text, "snd_hda_intel\n");
  assert_false(g_file_test(node, G_FILE_TEST_EXISTS));
  fake_sysfs_free(fs);
  rm_parent(dir);
}

static void
test_load_errors(void **state)
{
  g_autofree char *dir = new_dir();
  g_autofree char *model = NULL;
  g_autoptr(GError) error = NULL;
  FakeSysfs *fs;

  assert_null(fake_sysfs_try_load(dir, &error)); /* no such directory */
  g_clear_error(&error);
  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  assert_null(fake_sysfs_try_load(dir, &error)); /* no model */
  g_clear_error(&error);
  model = g_build_filename(dir, "model.ini", NULL);
  assert_true(g_file_set_contents(model, "[fake-sysfs]\nformat=other\nversion=1\n", -1, NULL));
  assert_null(fake_sysfs_try_load(dir, &error));
  assert_non_null(strstr(error->message, "not a vfiod-fake-sysfs"));
  g_clear_error(&error);
  assert_true(g_file_set_contents(model,
                                  "[fake-sysfs]\nformat=vfiod-fake-sysfs\nversion=1\n"
                                  "[device 0000:01:00.0]\nvendor=zz\ndevice=0x1\nclass=0x030000\niommu_group=1\n",
                                  -1, NULL));
  assert_null(fake_sysfs_try_load(dir, &error));
  assert_non_null(strstr(error->message, "vendor"));
  g_clear_error(&error);

  /* new_in refuses a non-empty directory: not tested (it fails the test). */
  assert_int_equal(g_unlink(model), 0);
  fs = fake_sysfs_new_in(dir);
  fake_sysfs_free(fs);
  rm_parent(dir);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_in_and_keep),
    cmocka_unit_test(test_load_round_trip),
    cmocka_unit_test(test_load_repairs_tree),
    cmocka_unit_test(test_load_errors),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
