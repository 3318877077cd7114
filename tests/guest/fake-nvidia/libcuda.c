// SPDX-License-Identifier: LGPL-2.1-or-later
/* A stand-in for NVIDIA's libcuda.so.1, for guest-init's tests only
 * (run-guest-test.py, case driver-layer). It answers the driver API calls
 * cuda-probe makes from what the (stand-in) kernel driver shows, as the real
 * library gets them from the real one:
 *  - cuInit() opens /dev/nvidiactl (CUDA_ERROR_NO_DEVICE without it);
 *  - the devices are the GPUs in /proc/driver/nvidia/gpus/<bdf>/information
 *    whose /dev/nvidia<minor> node exists, sorted by address;
 *  - cuCtxCreate() opens that node (CUDA_ERROR_OPERATING_SYSTEM when it
 *    cannot), cuCtxDestroy() closes it.
 * Failures are injected from the kernel command line (the test sets it per
 * boot): fakecuda.fail=CALL:ORDINAL:CODE, e.g. cuCtxCreate:1:802 (ORDINAL
 * "-" for any device); an injected failure is logged to /dev/kmsg as an
 * NVRM Xid line, as the real driver logs a GPU fault. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;

#define MAX_DEVICES 8

static struct {
  char bdf[32];
  char name[64];
  int minor;
} devices[MAX_DEVICES];
static int n_devices = -1;   /* -1 until cuInit() */

static const struct {
  CUresult code;
  const char *name;
} names[] = {
  { 0, "CUDA_SUCCESS" },
  { 1, "CUDA_ERROR_INVALID_VALUE" },
  { 2, "CUDA_ERROR_OUT_OF_MEMORY" },
  { 3, "CUDA_ERROR_NOT_INITIALIZED" },
  { 100, "CUDA_ERROR_NO_DEVICE" },
  { 101, "CUDA_ERROR_INVALID_DEVICE" },
  { 201, "CUDA_ERROR_INVALID_CONTEXT" },
  { 304, "CUDA_ERROR_OPERATING_SYSTEM" },
  { 802, "CUDA_ERROR_SYSTEM_NOT_READY" },
  { 999, "CUDA_ERROR_UNKNOWN" },
};

CUresult
cuGetErrorName(CUresult error, const char **name)
{
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (names[i].code == error) {
      *name = names[i].name;
      return 0;
    }
  *name = NULL;
  return 1;
}

/* The injected failure for @call on @ordinal (-1: no device), or 0. */
static CUresult
injected(const char *call, int ordinal)
{
  char cmdline[4096], *p;
  FILE *f = fopen("/proc/cmdline", "r");
  size_t n;

  if (!f)
    return 0;
  n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
  fclose(f);
  cmdline[n] = '\0';
  for (p = strstr(cmdline, "fakecuda.fail="); p; p = strstr(p + 1, "fakecuda.fail=")) {
    char want_call[64], want_ord[16];
    int code;

    if (sscanf(p + strlen("fakecuda.fail="), "%63[^:]:%15[^:]:%d", want_call, want_ord, &code) != 3)
      continue;
    if (strcmp(want_call, call) != 0)
      continue;
    if (strcmp(want_ord, "-") == 0 || (ordinal >= 0 && atoi(want_ord) == ordinal)) {
      int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

      if (fd >= 0) {
        /* One write(2) per record (dprintf() would lseek(SEEK_CUR) first,
         * which /dev/kmsg refuses). */
        char line[256];
        int len = snprintf(line, sizeof(line), "<3>NVRM: Xid (PCI:%s): 79, pid=%d, name=fake-libcuda, %s failed "
                           "with %d (injected by the test)\n",
                           ordinal >= 0 && ordinal < n_devices ? devices[ordinal].bdf : "-", (int) getpid(), call,
                           code);

        if (len > 0 && write(fd, line, (size_t) len) < 0)
          perror("fake libcuda: write /dev/kmsg");
        close(fd);
      }
      return code;
    }
  }
  return 0;
}

static int
by_bdf(const void *a, const void *b)
{
  return strcmp(((const typeof(devices[0]) *) a)->bdf, ((const typeof(devices[0]) *) b)->bdf);
}

CUresult
cuInit(unsigned flags)
{
  struct dirent *de;
  CUresult r;
  DIR *d;
  int fd;

  if (flags != 0)
    return 1;
  fd = open("/dev/nvidiactl", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return 100;
  close(fd);
  if ((r = injected("cuInit", -1)) != 0)
    return r;
  n_devices = 0;
  d = opendir("/proc/driver/nvidia/gpus");
  while (d && (de = readdir(d)) != NULL && n_devices < MAX_DEVICES) {
    char path[512], line[256], node[64];
    struct stat st;
    int minor = -1;
    FILE *f;

    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/driver/nvidia/gpus/%s/information", de->d_name);
    f = fopen(path, "r");
    if (!f)
      continue;
    while (fgets(line, sizeof(line), f))
      sscanf(line, "Device Minor: %d", &minor);
    fclose(f);
    snprintf(node, sizeof(node), "/dev/nvidia%d", minor);
    if (minor < 0 || stat(node, &st) < 0 || !S_ISCHR(st.st_mode))
      continue;
    snprintf(devices[n_devices].bdf, sizeof(devices[0].bdf), "%.31s", de->d_name);
    snprintf(devices[n_devices].name, sizeof(devices[0].name), "Fake GPU %d", minor);
    devices[n_devices].minor = minor;
    n_devices++;
  }
  if (d)
    closedir(d);
  qsort(devices, (size_t) n_devices, sizeof(devices[0]), by_bdf);
  return 0;
}

CUresult
cuDriverGetVersion(int *version)
{
  *version = 12040;
  return 0;
}

CUresult
cuDeviceGetCount(int *count)
{
  if (n_devices < 0)
    return 3;
  *count = n_devices;
  return injected("cuDeviceGetCount", -1);
}

CUresult
cuDeviceGet(CUdevice *device, int ordinal)
{
  if (n_devices < 0)
    return 3;
  if (ordinal < 0 || ordinal >= n_devices)
    return 101;
  *device = ordinal;
  return injected("cuDeviceGet", ordinal);
}

CUresult
cuDeviceGetName(char *name, int len, CUdevice dev)
{
  if (dev < 0 || dev >= n_devices || len <= 0)
    return 101;
  snprintf(name, (size_t) len, "%s", devices[dev].name);
  return injected("cuDeviceGetName", dev);
}

CUresult
cuDeviceGetPCIBusId(char *bus_id, int len, CUdevice dev)
{
  if (dev < 0 || dev >= n_devices || len <= 0)
    return 101;
  /* CUDA's form: upper-case hex. */
  snprintf(bus_id, (size_t) len, "%s", devices[dev].bdf);
  for (char *p = bus_id; *p; p++)
    if (*p >= 'a' && *p <= 'f')
      *p = (char) (*p - 'a' + 'A');
  return injected("cuDeviceGetPCIBusId", dev);
}

struct CUctx_st {
  int fd;
};

CUresult
cuCtxCreate_v2(CUcontext *ctx, unsigned flags, CUdevice dev)
{
  (void) flags;
  static struct CUctx_st ctxs[MAX_DEVICES];
  char node[64];
  CUresult r;
  int fd;

  if (n_devices < 0)
    return 3;
  if (dev < 0 || dev >= n_devices)
    return 101;
  if ((r = injected("cuCtxCreate", dev)) != 0)
    return r;
  snprintf(node, sizeof(node), "/dev/nvidia%d", devices[dev].minor);
  fd = open(node, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return 304;
  ctxs[dev].fd = fd;
  *ctx = &ctxs[dev];
  return 0;
}

CUresult
cuCtxDestroy_v2(CUcontext ctx)
{
  if (!ctx)
    return 201;
  close(ctx->fd);
  return 0;
}

/* The pre-v2 names, as the real library also exports them. */
CUresult
cuCtxCreate(CUcontext *ctx, unsigned flags, CUdevice dev)
{
  return cuCtxCreate_v2(ctx, flags, dev);
}

CUresult
cuCtxDestroy(CUcontext ctx)
{
  return cuCtxDestroy_v2(ctx);
}
