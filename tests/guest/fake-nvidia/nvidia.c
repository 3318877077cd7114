// SPDX-License-Identifier: GPL-2.0
/* A stand-in for NVIDIA's nvidia.ko, for guest-init's tests only: it
 * registers what guest-init reads from the real driver, the "nvidia"
 * character device on major 195 (/proc/devices) and per GPU a
 * /proc/driver/nvidia/gpus/<bdf>/information with its "Device Minor:" line,
 * and logs "NVRM:" lines as the real one does. No hardware is touched.
 *  - GPUs: bdf= and minor= (arrays; default two GPUs, 0000:00:1f.6 minor 0
 *    and 0000:00:1f.7 minor 1, what a module loaded from the driver layer,
 *    without parameters, gets).
 *  - It asks for its GSP firmware (nvidia/<version>/gsp_ga10x.bin) as the
 *    real one does and logs the size it got, or that there was none.
 *  - When the firmware file "fake-nvidia-fail" exists (the test puts it into
 *    the initramfs), its init fails with ENODEV after the real driver's two
 *    lines for a probe that failed.
 *  - nvidia-uvm.ko and nvidia-modeset.ko use fake_nvidia_major(): they
 *    depend on it, so it cannot be unloaded before them; an open
 *    /dev/nvidia* holds it too. Each module says on the console (KERN_ERR,
 *    seen with "quiet") when it is unloaded. */
#include <linux/firmware.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#define NV_MAJOR 195
#define FAKE_VERSION "550.163.01"
#define MAX_GPUS 4

static char *bdf[MAX_GPUS] = { "0000:00:1f.6", "0000:00:1f.7" };
static int n_bdf = 2;
module_param_array(bdf, charp, &n_bdf, 0444);
MODULE_PARM_DESC(bdf, "the fake GPUs' PCI addresses, as /proc/driver/nvidia/gpus entries");

static int minor[MAX_GPUS] = { 0, 1 };
static int n_minor = 2;
module_param_array(minor, int, &n_minor, 0444);
MODULE_PARM_DESC(minor, "the fake GPUs' device minors");

static const struct file_operations fops = { .owner = THIS_MODULE };
static struct proc_dir_entry *proc_nvidia;

int
fake_nvidia_major(void)
{
  return NV_MAJOR;
}
EXPORT_SYMBOL(fake_nvidia_major);

static int
information_show(struct seq_file *m, void *v)
{
  long i = (long) m->private;

  seq_printf(m, "Model: \t\t Fake GPU\nBus Location: \t %s\nDevice Minor: \t %d\nGPU Excluded:\t No\n", bdf[i],
             i < n_minor ? minor[i] : (int) i);
  return 0;
}

/* Asks for @name as request_firmware() callers do; returns its size, or
 * -errno. */
static long
firmware_size(const char *name)
{
  struct platform_device *pdev = platform_device_register_simple("fake-nvidia", -1, NULL, 0);
  const struct firmware *fw = NULL;
  long r;

  if (IS_ERR(pdev))
    return PTR_ERR(pdev);
  r = firmware_request_nowarn(&fw, name, &pdev->dev);
  if (r == 0)
    r = (long) fw->size;
  release_firmware(fw);
  platform_device_unregister(pdev);
  return r;
}

static int __init
fake_nvidia_init(void)
{
  struct proc_dir_entry *gpus;
  long fw;
  int r;

  if (firmware_size("fake-nvidia-fail") >= 0) {
    pr_info("NVRM: The NVIDIA probe routine failed for 1 device(s).\n");
    pr_info("NVRM: None of the NVIDIA devices were initialized.\n");
    return -ENODEV;
  }
  fw = firmware_size("nvidia/" FAKE_VERSION "/gsp_ga10x.bin");
  if (fw >= 0)
    pr_info("NVRM: fake: GSP firmware nvidia/" FAKE_VERSION "/gsp_ga10x.bin: %ld bytes\n", fw);
  else
    pr_info("NVRM: fake: no GSP firmware nvidia/" FAKE_VERSION "/gsp_ga10x.bin (%ld)\n", fw);

  r = register_chrdev(NV_MAJOR, "nvidia", &fops);
  if (r < 0)
    return r;
  proc_nvidia = proc_mkdir("driver/nvidia", NULL);
  gpus = proc_nvidia ? proc_mkdir("gpus", proc_nvidia) : NULL;
  for (long i = 0; i < n_bdf; i++) {
    struct proc_dir_entry *gpu = gpus ? proc_mkdir(bdf[i], gpus) : NULL;

    if (!gpu || !proc_create_single_data("information", 0444, gpu, information_show, (void *) i)) {
      proc_remove(proc_nvidia);
      unregister_chrdev(NV_MAJOR, "nvidia");
      return -ENOMEM;
    }
    pr_info("NVRM: fake: GPU %s initialised, minor %d\n", bdf[i], i < n_minor ? minor[i] : (int) i);
  }
  return 0;
}

static void __exit
fake_nvidia_exit(void)
{
  proc_remove(proc_nvidia);
  unregister_chrdev(NV_MAJOR, "nvidia");
  pr_err("fake-nvidia: module nvidia unloaded\n");
}

module_init(fake_nvidia_init);
module_exit(fake_nvidia_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION(FAKE_VERSION);
MODULE_DESCRIPTION("vfiod test stand-in for nvidia.ko");
