// SPDX-License-Identifier: GPL-2.0
/* A stand-in for NVIDIA's nvidia.ko, for guest-init's tests only: it
 * registers what guest-init reads from the real driver, the "nvidia"
 * character device on major 195 (/proc/devices) and one GPU's
 * /proc/driver/nvidia/gpus/<bdf>/information with its "Device Minor:" line,
 * and nothing else. No hardware is touched. */
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#define NV_MAJOR 195

static char *bdf = "0000:00:1f.7";
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "the fake GPU's PCI address, as a /proc/driver/nvidia/gpus entry");

static int minor;
module_param(minor, int, 0444);
MODULE_PARM_DESC(minor, "the fake GPU's device minor");

static const struct file_operations fops = { .owner = THIS_MODULE };
static struct proc_dir_entry *proc_nvidia;

static int
information_show(struct seq_file *m, void *v)
{
  seq_printf(m, "Model: \t\t Fake GPU\nBus Location: \t %s\nDevice Minor: \t %d\nGPU Excluded:\t No\n", bdf,
             minor);
  return 0;
}

static int __init
fake_nvidia_init(void)
{
  struct proc_dir_entry *gpus, *gpu;
  int r = register_chrdev(NV_MAJOR, "nvidia", &fops);

  if (r < 0)
    return r;
  proc_nvidia = proc_mkdir("driver/nvidia", NULL);
  gpus = proc_nvidia ? proc_mkdir("gpus", proc_nvidia) : NULL;
  gpu = gpus ? proc_mkdir(bdf, gpus) : NULL;
  if (!gpu || !proc_create_single("information", 0444, gpu, information_show)) {
    proc_remove(proc_nvidia);
    unregister_chrdev(NV_MAJOR, "nvidia");
    return -ENOMEM;
  }
  return 0;
}

static void __exit
fake_nvidia_exit(void)
{
  proc_remove(proc_nvidia);
  unregister_chrdev(NV_MAJOR, "nvidia");
}

module_init(fake_nvidia_init);
module_exit(fake_nvidia_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfiod test stand-in for nvidia.ko");
