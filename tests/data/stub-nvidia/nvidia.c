// SPDX-License-Identifier: GPL-2.0
/*
 * Test stand-in for NVIDIA's nvidia.ko: a real, empty kernel module named
 * "nvidia", built against the pinned guest kernel's headers by
 * tests/data/fetch-test-kernels.sh, with the pinned driver version
 * (versions.env) as its modinfo "version". It lets the stager's unit tests
 * exercise the GPU path (lookup, vermagic, version check, dependency order,
 * firmware) on machines that cannot build NVIDIA's modules. It is never
 * loaded and is not part of any image vfiod ships.
 */
#include <linux/module.h>

int vfiod_stub_nvidia_core(void)
{
	return 0;
}
EXPORT_SYMBOL_GPL(vfiod_stub_nvidia_core);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfiod test stand-in for nvidia.ko");
MODULE_VERSION(STUB_NVIDIA_VERSION);
