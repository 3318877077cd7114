// SPDX-License-Identifier: GPL-2.0
/* A stand-in for NVIDIA's nvidia-modeset.ko, for guest-init's tests only:
 * it depends on (the stand-in) nvidia.ko as the real one does, registers
 * nothing (the real one has no device of its own: /dev/nvidia-modeset is
 * minor 254 of nvidia's major), and says on the console when it is
 * unloaded. */
#include <linux/module.h>

int fake_nvidia_major(void);

static int __init
fake_modeset_init(void)
{
  return fake_nvidia_major() > 0 ? 0 : -ENODEV;
}

static void __exit
fake_modeset_exit(void)
{
  pr_err("fake-nvidia: module nvidia_modeset unloaded\n");
}

module_init(fake_modeset_init);
module_exit(fake_modeset_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("550.163.01");
MODULE_DESCRIPTION("vfiod test stand-in for nvidia-modeset.ko");
