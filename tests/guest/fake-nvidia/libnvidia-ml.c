// SPDX-License-Identifier: LGPL-2.1-or-later
/* A stand-in for NVIDIA's libnvidia-ml.so.1 (NVML), for guest-init's tests
 * only: the library a workload finds by its soname; one entry point. */
int
nvmlInit_v2(void)
{
  return 0;
}
