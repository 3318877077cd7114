/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cuda-probe: does CUDA work on every GPU the driver gives it? guest-init
 * runs it (guest-init/README.md, "GPU readiness") inside the workload's root
 * with the driver layer's libraries, so it is dynamically linked (glibc only,
 * >= 2.34 as the driver layer itself): libcuda is a shared library, and
 * guest-init is static. guest-init carries it inside its own binary
 * (cuda-probe-blob.c) and execs it from a memfd, so no image has to ship it.
 *
 * It dlopen()s "libcuda.so.1" (found as any workload would find it), calls
 * cuInit(0), cuDriverGetVersion(), cuDeviceGetCount(), and per device
 * cuDeviceGet(), cuDeviceGetName(), cuDeviceGetPCIBusId(), cuCtxCreate() and
 * cuCtxDestroy(), and prints one JSON line on stdout (format:
 * gi_cuda_probe_parse() in gpu.h):
 *
 *   {"v":1,"call":null,"code":0,"error":null,"version":12040,"devices":[
 *    {"ordinal":0,"bdf":"0000:01:00.0","name":"NVIDIA H100 80GB HBM3",
 *     "call":null,"code":0,"error":null}]}
 *
 * "call"/"code"/"error": the first call that failed (at the top before any
 * device, or per device), its CUresult, and cuGetErrorName() of it (or
 * dlerror()'s text for dlopen/dlsym). Exit status 0 when every call
 * succeeded, 1 when one failed (the line says which), 2 on bad usage. No
 * CUDA header is needed: the few types and entry points are declared here
 * (ABI names of cuda.h: cuCtxCreate is cuCtxCreate_v2). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int CUresult;   /* enum cudaError_enum: CUDA_SUCCESS = 0 */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;

typedef CUresult (*cuInit_t)(unsigned flags);
typedef CUresult (*cuDriverGetVersion_t)(int *version);
typedef CUresult (*cuDeviceGetCount_t)(int *count);
typedef CUresult (*cuDeviceGet_t)(CUdevice *device, int ordinal);
typedef CUresult (*cuDeviceGetName_t)(char *name, int len, CUdevice device);
typedef CUresult (*cuDeviceGetPCIBusId_t)(char *bus_id, int len, CUdevice device);
typedef CUresult (*cuCtxCreate_t)(CUcontext *ctx, unsigned flags, CUdevice device);
typedef CUresult (*cuCtxDestroy_t)(CUcontext ctx);
typedef CUresult (*cuGetErrorName_t)(CUresult error, const char **name);

#define MAX_DEVICES 64

static struct {
  cuInit_t init;
  cuDriverGetVersion_t driver_get_version;
  cuDeviceGetCount_t device_get_count;
  cuDeviceGet_t device_get;
  cuDeviceGetName_t device_get_name;
  cuDeviceGetPCIBusId_t device_get_pci_bus_id;
  cuCtxCreate_t ctx_create;
  cuCtxDestroy_t ctx_destroy;
  cuGetErrorName_t get_error_name;
} cu;

/* A JSON string, or null for NULL. Bytes outside printable ASCII are
 * escaped (control bytes) or replaced by '?' (>= 0x80): the line stays
 * ASCII whatever the driver returns. */
static void
put_string(const char *s)
{
  if (!s) {
    fputs("null", stdout);
    return;
  }
  putchar('"');
  for (const unsigned char *p = (const unsigned char *) s; *p != '\0'; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      printf("\\u%04x", *p);
    else if (*p >= 0x80)
      putchar('?');
    else
      putchar(*p);
  }
  putchar('"');
}

/* "call":...,"code":...,"error":... for a failed (or successful: @call
 * NULL) step. */
static void
put_result(const char *call, long code, const char *error)
{
  fputs("\"call\":", stdout);
  put_string(call);
  printf(",\"code\":%ld,\"error\":", code);
  put_string(call ? error : NULL);
}

static const char *
error_name(CUresult r, char *buf, size_t size)
{
  const char *name = NULL;

  if (cu.get_error_name && cu.get_error_name(r, &name) == 0 && name)
    return name;
  snprintf(buf, size, "CUDA error %d", r);
  return buf;
}

/* The top-level failure before any device: prints the whole line. */
static int
fail_top(const char *call, long code, const char *error, int version)
{
  fputs("{\"v\":1,", stdout);
  put_result(call, code, error);
  printf(",\"version\":%d,\"devices\":[]}\n", version);
  return 1;
}

static void *
sym(void *lib, const char *name, const char **ret_missing)
{
  void *p = dlsym(lib, name);

  if (!p && !*ret_missing)
    *ret_missing = name;
  return p;
}

int
main(int argc, char **argv)
{
  const char *lib_name = argc > 1 ? argv[1] : "libcuda.so.1";
  const char *missing = NULL;
  char ebuf[64];
  int version = 0, count = 0, failed = 0;
  CUresult r;
  void *lib;

  if (argc > 2) {
    fprintf(stderr, "usage: %s [LIBRARY]\n", argv[0]);
    return 2;
  }
  lib = dlopen(lib_name, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return fail_top("dlopen", 0, dlerror(), 0);
  cu.get_error_name = (cuGetErrorName_t) sym(lib, "cuGetErrorName", &missing);
  cu.init = (cuInit_t) sym(lib, "cuInit", &missing);
  cu.driver_get_version = (cuDriverGetVersion_t) sym(lib, "cuDriverGetVersion", &missing);
  cu.device_get_count = (cuDeviceGetCount_t) sym(lib, "cuDeviceGetCount", &missing);
  cu.device_get = (cuDeviceGet_t) sym(lib, "cuDeviceGet", &missing);
  cu.device_get_name = (cuDeviceGetName_t) sym(lib, "cuDeviceGetName", &missing);
  cu.device_get_pci_bus_id = (cuDeviceGetPCIBusId_t) sym(lib, "cuDeviceGetPCIBusId", &missing);
  cu.ctx_create = (cuCtxCreate_t) sym(lib, "cuCtxCreate_v2", &missing);
  cu.ctx_destroy = (cuCtxDestroy_t) sym(lib, "cuCtxDestroy_v2", &missing);
  if (missing) {
    char what[160];

    snprintf(what, sizeof(what), "%s: no symbol %s", lib_name, missing);
    return fail_top("dlsym", 0, what, 0);
  }

  r = cu.init(0);
  if (r != 0)
    return fail_top("cuInit", r, error_name(r, ebuf, sizeof(ebuf)), 0);
  r = cu.driver_get_version(&version);
  if (r != 0)
    return fail_top("cuDriverGetVersion", r, error_name(r, ebuf, sizeof(ebuf)), 0);
  r = cu.device_get_count(&count);
  if (r != 0)
    return fail_top("cuDeviceGetCount", r, error_name(r, ebuf, sizeof(ebuf)), version);
  if (count < 0 || count > MAX_DEVICES)
    return fail_top("cuDeviceGetCount", 0, "device count out of range", version);

  fputs("{\"v\":1,", stdout);
  put_result(NULL, 0, NULL);
  printf(",\"version\":%d,\"devices\":[", version);
  for (int i = 0; i < count; i++) {
    char name[256] = "", bus_id[64] = "";
    const char *call = NULL;
    CUdevice dev = 0;
    CUcontext ctx = NULL;

    r = cu.device_get(&dev, i);
    if (r != 0)
      call = "cuDeviceGet";
    if (!call && (r = cu.device_get_name(name, (int) sizeof(name), dev)) != 0)
      call = "cuDeviceGetName";
    if (!call && (r = cu.device_get_pci_bus_id(bus_id, (int) sizeof(bus_id), dev)) != 0)
      call = "cuDeviceGetPCIBusId";
    if (!call && (r = cu.ctx_create(&ctx, 0, dev)) != 0)
      call = "cuCtxCreate";
    if (!call && (r = cu.ctx_destroy(ctx)) != 0)
      call = "cuCtxDestroy";
    name[sizeof(name) - 1] = '\0';
    bus_id[sizeof(bus_id) - 1] = '\0';
    printf("%s{\"ordinal\":%d,\"bdf\":", i > 0 ? "," : "", i);
    put_string(bus_id[0] != '\0' ? bus_id : NULL);
    fputs(",\"name\":", stdout);
    put_string(name[0] != '\0' ? name : NULL);
    putchar(',');
    put_result(call, call ? r : 0, call ? error_name(r, ebuf, sizeof(ebuf)) : NULL);
    putchar('}');
    if (call)
      failed++;
  }
  fputs("]}\n", stdout);
  return failed > 0 ? 1 : 0;
}
