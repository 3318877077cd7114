// SPDX-License-Identifier: LGPL-2.1-or-later
/* A workload's view of the driver, for guest-init's tests only (case
 * driver-layer): dlopen()s libcuda.so.1 and libnvidia-ml.so.1 by soname, as
 * CUDA applications do, says where the dynamic loader found them, and calls
 * cuInit(0) and cuDeviceGetCount(). Lines start with "WORKLOAD" (the test
 * reads them off the console). Exit 0 when everything worked. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

static int
open_lib(const char *soname, void **ret)
{
  struct link_map *map = NULL;
  void *h = dlopen(soname, RTLD_NOW);

  if (!h) {
    printf("WORKLOAD dlopen %s failed: %s\n", soname, dlerror());
    return 1;
  }
  if (dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map)
    printf("WORKLOAD dlopen %s from %s\n", soname, map->l_name);
  *ret = h;
  return 0;
}

int
main(void)
{
  int (*cu_init)(unsigned), (*cu_count)(int *);
  void *cuda, *nvml;
  int count = -1, r;

  if (open_lib("libcuda.so.1", &cuda) || open_lib("libnvidia-ml.so.1", &nvml))
    return 1;
  cu_init = (int (*)(unsigned)) dlsym(cuda, "cuInit");
  cu_count = (int (*)(int *)) dlsym(cuda, "cuDeviceGetCount");
  if (!cu_init || !cu_count) {
    printf("WORKLOAD dlsym failed: %s\n", dlerror());
    return 1;
  }
  r = cu_init(0);
  if (r == 0)
    r = cu_count(&count);
  printf("WORKLOAD cuda result=%d devices=%d\n", r, count);
  return r == 0 ? 0 : 1;
}
