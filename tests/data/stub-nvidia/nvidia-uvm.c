// SPDX-License-Identifier: GPL-2.0
/*
 * Test stand-in for nvidia-uvm.ko (see nvidia.c): uses a symbol of the
 * "nvidia" stand-in, so depmod records the same dependency as the real
 * modules have (nvidia_uvm -> nvidia).
 */
#include <linux/module.h>

extern int vfiod_stub_nvidia_core(void);

static int __init vfiod_stub_uvm_init(void)
{
	return vfiod_stub_nvidia_core();
}
module_init(vfiod_stub_uvm_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfiod test stand-in for nvidia-uvm.ko");
MODULE_VERSION(STUB_NVIDIA_VERSION);
