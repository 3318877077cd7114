/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mk-fake-host: BENCHMARK ONLY. Writes a fake GPU host (the fake kernel of
 * tests/unit/fake-sysfs, kept on disk) for vfiod-fake / bench-daemon.
 *
 *   mk-fake-host DIR GROUPS [BOUND]
 *
 * DIR is created (it must not exist or be empty). GROUPS IOMMU groups, each
 * like a GPU with its HDMI audio function: function 0 a GPU (10de:2204,
 * class 030000, native driver nvidia), function 1 its audio (10de:1aef,
 * class 040300, native driver snd_hda_intel). Group i (0-based) sits at
 * domain i / 250, bus i % 250 + 1, device 0; its IOMMU group number is
 * i + 16. The first BOUND groups are on vfio-pci with driver_override
 * "vfio-pci", as vfiod leaves a group it has bound (their journal records
 * come from the caller). vfio-pci is a loaded driver.
 * Prints one line per group: "<iommu group> <bdf fn0> <bdf fn1>".
 * Writes nothing outside DIR. */
#include <stdio.h>
#include <stdlib.h>

#include "fake-sysfs.h"

int
main(int argc, char **argv)
{
  g_autoptr(FakeSysfs) fs = NULL;
  long groups, bound = 0;

  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: mk-fake-host DIR GROUPS [BOUND]\n");
    return 2;
  }
  groups = strtol(argv[2], NULL, 10);
  if (argc == 4)
    bound = strtol(argv[3], NULL, 10);
  if (groups < 1 || groups > 250 * 16 || bound < 0 || bound > groups) {
    fprintf(stderr, "mk-fake-host: GROUPS 1..4000, BOUND 0..GROUPS\n");
    return 2;
  }
  {
    g_autofree char *dir = g_canonicalize_filename(argv[1], NULL); /* absolute */
    fs = fake_sysfs_new_in(dir);
  }
  fake_sysfs_set_keep(fs, TRUE);
  fake_sysfs_add_driver(fs, "nvidia");
  fake_sysfs_add_driver(fs, "snd_hda_intel");
  fake_sysfs_add_driver(fs, FAKE_VFIO_DRIVER);
  for (long i = 0; i < groups; i++) {
    char gpu[16], audio[16];
    gboolean b = i < bound;
    int group = (int) i + 16;

    snprintf(gpu, sizeof gpu, "%04lx:%02lx:00.0", i / 250, i % 250 + 1);
    snprintf(audio, sizeof audio, "%04lx:%02lx:00.1", i / 250, i % 250 + 1);
    fake_sysfs_add_device(fs, gpu, 0x10de, 0x2204, 0x030000, group, b ? FAKE_VFIO_DRIVER : "nvidia", "nvidia");
    fake_sysfs_add_device(fs, audio, 0x10de, 0x1aef, 0x040300, group, b ? FAKE_VFIO_DRIVER : "snd_hda_intel",
                          "snd_hda_intel");
    if (b) {
      fake_sysfs_set_override(fs, gpu, FAKE_VFIO_DRIVER);
      fake_sysfs_set_override(fs, audio, FAKE_VFIO_DRIVER);
    }
    printf("%d %s %s\n", group, gpu, audio);
  }
  return 0;
}
