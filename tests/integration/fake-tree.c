/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fake-tree: TEST ONLY. Makes a fake kernel tree (tests/unit/fake-sysfs)
 * on disk for tests/crash/vfiod-fake, for the integration suite's
 * security-api.sh: two NVIDIA GPU groups that members of allowed_group can
 * bind and release without touching this machine's /sys.
 *
 *   fake-tree DIR
 *
 * DIR (absolute, missing or empty) gets sys/, dev/ and model.ini:
 *   IOMMU group 12: 0000:01:00.0 (10de:2204 VGA, no driver) and 0000:01:00.1
 *                   (10de:1aef audio, on snd_hda_intel);
 *   IOMMU group 13: 0000:02:00.0 (10de:2204 VGA, no driver).
 * Prints DIR/sys and DIR/dev for the config's [testing] sys_root and
 * dev_root. Exit 0, or 2 on bad usage. */
#include <stdio.h>

#include "fake-sysfs.h"

int
main(int argc, char **argv)
{
  FakeSysfs *fake;

  if (argc != 2 || !g_path_is_absolute(argv[1])) {
    fprintf(stderr, "usage: fake-tree ABSOLUTE_DIR\n");
    return 2;
  }
  fake = fake_sysfs_new_in(argv[1]);
  fake_sysfs_add_driver(fake, "vfio-pci");
  fake_sysfs_add_driver(fake, "snd_hda_intel");
  fake_sysfs_add_device(fake, "0000:01:00.0", 0x10de, 0x2204, 0x030000, 12, NULL, NULL);
  fake_sysfs_add_device(fake, "0000:01:00.1", 0x10de, 0x1aef, 0x040300, 12, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_add_device(fake, "0000:02:00.0", 0x10de, 0x2204, 0x030000, 13, NULL, NULL);
  printf("sys_root=%s\ndev_root=%s\n", fake_sysfs_sys_root(fake), fake_sysfs_dev_root(fake));
  fake_sysfs_set_keep(fake, TRUE);
  fake_sysfs_free(fake);
  return 0;
}
