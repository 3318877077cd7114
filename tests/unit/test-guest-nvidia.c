/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's NVIDIA plan (module choice, /proc/devices, device minors,
 * /dev nodes) and its /proc/<pid>/stat parser. No GPU needed: the inputs are
 * the texts the kernel and the driver produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "cmdline.h"
#include "nvidia.h"
#include "procstat.h"

/* /proc/devices of a guest with the open NVIDIA modules loaded (6.1,
 * nvidia 570: "nvidia" on 195, nvidia-uvm and nvidia-caps dynamic). */
static const char proc_devices[] =
  "Character devices:\n"
  "  1 mem\n"
  "  4 /dev/vc/0\n"
  "  4 tty\n"
  "  5 /dev/tty\n"
  "  5 /dev/console\n"
  "  5 /dev/ptmx\n"
  " 10 misc\n"
  " 13 input\n"
  "195 nvidia\n"
  "226 drm\n"
  "235 nvidia-caps\n"
  "236 nvidia-uvm\n"
  "254 gpiochip\n"
  "\n"
  "Block devices:\n"
  "  7 loop\n"
  "  8 sd\n"
  "195 nvidia-block-decoy\n"
  "252 virtblk\n"
  "253 nvidia-uvm\n";

static void
test_proc_devices(void **state)
{
  unsigned major = 0;

  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia", &major), 0);
  assert_int_equal(major, 195);
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia-uvm", &major), 0);
  assert_int_equal(major, 236);  /* not the block device of the same name */
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia-caps", &major), 0);
  assert_int_equal(major, 235);
  assert_int_equal(gi_proc_devices_find(proc_devices, "/dev/console", &major), 0);
  assert_int_equal(major, 5);
  assert_int_equal(gi_proc_devices_find(proc_devices, "mem", &major), 0);
  assert_int_equal(major, 1);

  major = 77;
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia-frontend", &major), -ENOENT);
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia-block-decoy", &major), -ENOENT);
  assert_int_equal(gi_proc_devices_find(proc_devices, "virtblk", &major), -ENOENT);
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvid", &major), -ENOENT);    /* no prefix match */
  assert_int_equal(gi_proc_devices_find(proc_devices, "nvidia-uv", &major), -ENOENT);
  assert_int_equal(major, 77);  /* untouched on failure */

  assert_int_equal(gi_proc_devices_find("", "nvidia", &major), -ENOENT);
  assert_int_equal(gi_proc_devices_find(NULL, "nvidia", &major), -ENOENT);
  /* No section header: nothing is a character device. */
  assert_int_equal(gi_proc_devices_find("195 nvidia\n", "nvidia", &major), -ENOENT);
  /* Malformed lines are skipped. */
  assert_int_equal(gi_proc_devices_find("Character devices:\nx nvidia\n195 nvidia extra\n196 nvidia", "nvidia",
                                        &major), 0);
  assert_int_equal(major, 196);
}

static void
test_parse_minor(void **state)
{
  static const char info[] =
    "Model: \t\t NVIDIA L4\n"
    "IRQ:   \t\t 42\n"
    "GPU UUID: \t GPU-5b8d3c5e-0000-0000-0000-000000000000\n"
    "Video BIOS: \t 95.04.5a.00.01\n"
    "Bus Type: \t PCIe\n"
    "DMA Size: \t 47 bits\n"
    "DMA Mask: \t 0x7fffffffffff\n"
    "Bus Location: \t 0000:01:00.0\n"
    "Device Minor: \t 3\n"
    "GPU Excluded:\t No\n";
  unsigned minor = 99;

  assert_int_equal(gi_nvidia_parse_minor(info, &minor), 0);
  assert_int_equal(minor, 3);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: 0", &minor), 0);
  assert_int_equal(minor, 0);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor:\t253 \n", &minor), 0);
  assert_int_equal(minor, 253);

  minor = 99;
  assert_int_equal(gi_nvidia_parse_minor("Model: x\n", &minor), -ENOENT);
  assert_int_equal(gi_nvidia_parse_minor("", &minor), -ENOENT);
  assert_int_equal(gi_nvidia_parse_minor(" Device Minor: 1\n", &minor), -ENOENT);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: \n", &minor), -EINVAL);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: x1\n", &minor), -EINVAL);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: 1x\n", &minor), -EINVAL);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: -1\n", &minor), -EINVAL);
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: 254\n", &minor), -EINVAL);  /* nvidia-modeset's */
  assert_int_equal(gi_nvidia_parse_minor("Device Minor: 99999999999999999999\n", &minor), -EINVAL);
  assert_int_equal(minor, 99);
}

static void
assert_node(const GiDevNode *n, const char *path, unsigned major, unsigned minor)
{
  assert_string_equal(n->path, path);
  assert_int_equal(n->major, major);
  assert_int_equal(n->minor, minor);
}

static void
test_node_plan(void **state)
{
  const unsigned minors[] = { 0, 1, 7 };
  GiDevNode nodes[16];
  int n;

  n = gi_nvidia_node_plan(proc_devices, minors, 3, true, nodes, 16);
  assert_int_equal(n, 7);
  assert_node(&nodes[0], "/dev/nvidiactl", 195, 255);
  assert_node(&nodes[1], "/dev/nvidia0", 195, 0);
  assert_node(&nodes[2], "/dev/nvidia1", 195, 1);
  assert_node(&nodes[3], "/dev/nvidia7", 195, 7);
  assert_node(&nodes[4], "/dev/nvidia-modeset", 195, 254);
  assert_node(&nodes[5], "/dev/nvidia-uvm", 236, 0);
  assert_node(&nodes[6], "/dev/nvidia-uvm-tools", 236, 1);

  /* Without modeset and without uvm loaded. */
  n = gi_nvidia_node_plan("Character devices:\n195 nvidia-frontend\n", minors, 1, false, nodes, 16);
  assert_int_equal(n, 2);
  assert_node(&nodes[0], "/dev/nvidiactl", 195, 255);
  assert_node(&nodes[1], "/dev/nvidia0", 195, 0);

  /* No GPU: the control node only (the driver would not have loaded). */
  n = gi_nvidia_node_plan(proc_devices, NULL, 0, false, nodes, 16);
  assert_int_equal(n, 3);
  assert_node(&nodes[0], "/dev/nvidiactl", 195, 255);
  assert_node(&nodes[1], "/dev/nvidia-uvm", 236, 0);

  /* Errors. */
  assert_int_equal(gi_nvidia_node_plan("Character devices:\n  1 mem\n", minors, 1, false, nodes, 16), -ENOENT);
  {
    const unsigned bad[] = { 0, 254 };
    assert_int_equal(gi_nvidia_node_plan(proc_devices, bad, 2, false, nodes, 16), -EINVAL);
  }
  assert_int_equal(gi_nvidia_node_plan(proc_devices, minors, 3, true, nodes, 6), -E2BIG);
  assert_int_equal(gi_nvidia_node_plan(proc_devices, minors, 3, true, nodes, 7), 7);
}

static void
test_module_choice(void **state)
{
  assert_int_equal(gi_nvidia_module_kind("nvidia"), GI_NVIDIA_MODULE_CORE);
  assert_int_equal(gi_nvidia_module_kind("nvidia_uvm"), GI_NVIDIA_MODULE_UVM);
  assert_int_equal(gi_nvidia_module_kind("nvidia-uvm"), GI_NVIDIA_MODULE_UVM);
  assert_int_equal(gi_nvidia_module_kind("nvidia_modeset"), GI_NVIDIA_MODULE_MODESET);
  assert_int_equal(gi_nvidia_module_kind("nvidia_drm"), GI_NVIDIA_MODULE_DRM);
  assert_int_equal(gi_nvidia_module_kind("nvidia_peermem"), GI_NVIDIA_MODULE_PEERMEM);
  assert_int_equal(gi_nvidia_module_kind("nvidia_fs"), GI_NVIDIA_MODULE_OTHER);
  assert_int_equal(gi_nvidia_module_kind("virtio_net"), GI_NVIDIA_MODULE_NONE);
  assert_int_equal(gi_nvidia_module_kind("nvidiafb"), GI_NVIDIA_MODULE_NONE);  /* the old framebuffer driver */
  assert_int_equal(gi_nvidia_module_kind("nvidia_uvmx"), GI_NVIDIA_MODULE_OTHER);
  assert_int_equal(gi_nvidia_module_kind("drm"), GI_NVIDIA_MODULE_NONE);

  /* Non-NVIDIA modules: always. */
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_NONE, false, 0));
  /* vfiod.gpu=off: no NVIDIA module at all. */
  for (int k = GI_NVIDIA_MODULE_CORE; k <= GI_NVIDIA_MODULE_OTHER; k++)
    assert_false(gi_nvidia_module_wanted((GiNvidiaModule) k, false, ~0u));
  /* Defaults: nvidia + uvm. */
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_CORE, true, GI_NVIDIA_DEFAULT));
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_UVM, true, GI_NVIDIA_DEFAULT));
  assert_false(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_MODESET, true, GI_NVIDIA_DEFAULT));
  assert_false(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_DRM, true, GI_NVIDIA_DEFAULT));
  assert_false(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_PEERMEM, true, GI_NVIDIA_DEFAULT));
  /* vfiod.nvidia=none: nvidia.ko alone. */
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_CORE, true, 0));
  assert_false(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_UVM, true, 0));
  /* drm pulls modeset in. */
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_MODESET, true, GI_NVIDIA_DRM));
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_DRM, true, GI_NVIDIA_DRM));
  assert_true(gi_nvidia_module_wanted(GI_NVIDIA_MODULE_PEERMEM, true, GI_NVIDIA_PEERMEM));
}

static void
test_proc_stat(void **state)
{
  GiProcStat st;

  /* A user process; comm with spaces and parentheses. */
  assert_int_equal(gi_proc_stat_parse("123 (a) b (c)) S 1 123 123 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0\n",
                                      &st), 0);
  assert_int_equal(st.state, 'S');
  assert_int_equal(st.ppid, 1);
  assert_int_equal(st.flags, 4194560);
  assert_true(gi_proc_stat_is_user(&st));

  /* A zombie. */
  assert_int_equal(gi_proc_stat_parse("77 (sleep) Z 1 70 70 0 -1 4227084 0 0", &st), 0);
  assert_int_equal(st.state, 'Z');
  assert_true(gi_proc_stat_is_user(&st));

  /* A kernel thread: PF_KTHREAD in flags. */
  assert_int_equal(gi_proc_stat_parse("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0", &st), 0);
  assert_false(gi_proc_stat_is_user(&st));

  assert_int_equal(gi_proc_stat_parse("", &st), -EINVAL);
  assert_int_equal(gi_proc_stat_parse(NULL, &st), -EINVAL);
  assert_int_equal(gi_proc_stat_parse("5 (x", &st), -EINVAL);
  assert_int_equal(gi_proc_stat_parse("5 (x) S 1 2", &st), -EINVAL);
  assert_int_equal(gi_proc_stat_parse("5 (x) S a b c d e f", &st), -EINVAL);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_proc_devices),
    cmocka_unit_test(test_parse_minor),
    cmocka_unit_test(test_node_plan),
    cmocka_unit_test(test_module_choice),
    cmocka_unit_test(test_proc_stat),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
