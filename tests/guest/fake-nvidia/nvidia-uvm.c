// SPDX-License-Identifier: GPL-2.0
/* A stand-in for NVIDIA's nvidia-uvm.ko, for guest-init's tests only: it
 * registers the "nvidia-uvm" character device with a dynamic major, as the
 * real one does, depends on (the stand-in) nvidia.ko as the real one does,
 * and says on the console when it is unloaded. */
#include <linux/fs.h>
#include <linux/module.h>

int fake_nvidia_major(void);

static const struct file_operations fops = { .owner = THIS_MODULE };
static int major;

static int __init
fake_uvm_init(void)
{
  if (fake_nvidia_major() <= 0)
    return -ENODEV;
  major = register_chrdev(0, "nvidia-uvm", &fops);
  return major < 0 ? major : 0;
}

static void __exit
fake_uvm_exit(void)
{
  unregister_chrdev(major, "nvidia-uvm");
  pr_err("fake-nvidia: module nvidia_uvm unloaded\n");
}

module_init(fake_uvm_init);
module_exit(fake_uvm_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("550.163.01");
MODULE_DESCRIPTION("vfiod test stand-in for nvidia-uvm.ko");
