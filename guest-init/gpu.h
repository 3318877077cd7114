/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GPU readiness, the pure part (no I/O, no allocation; unit-tested in
 * tests/unit/test-guest-gpu.c): what the CUDA probe (cuda-probe.c) printed,
 * the kernel's log records (/dev/kmsg), which GPUs the guest has, the verdict
 * per GPU, the driver layer's env file and the workload's environment with
 * the layer in it. The I/O around it is driver.c. */

#define GI_GPU_MAX 16               /* GPUs looked at (requested and probed); more are an error */
#define GI_GPU_BDF_SIZE 16          /* "0000:01:00.0" and its NUL */
#define GI_GPU_NAME_SIZE 96         /* cuDeviceGetName() output, cut */
#define GI_GPU_CALL_SIZE 32         /* "cuCtxCreate", "dlopen", ... */
#define GI_GPU_ERROR_SIZE 160       /* "CUDA_ERROR_SYSTEM_NOT_READY", a dlerror() text, ... (cut) */
#define GI_CUDA_PROBE_VERSION 1     /* the "v" of the probe's line */
#define GI_CUDA_PROBE_MAX_LINE 16384 /* bytes of the probe's output guest-init reads */

/* ---- PCI addresses ---- */

/* Normalises a PCI address as the kernel writes it ("0000:01:00.0"): from
 * "DOMAIN:BUS:DEV.FN" in hex, any case, the domain 1 to 8 digits (CUDA's
 * cuDeviceGetPCIBusId() gives "0000:01:00.0", nvidia-smi "00000000:01:00.0"),
 * or "BUS:DEV.FN" (domain 0). Writes "%04x:%02x:%02x.%x" to @ret. Returns 0, or
 * -EINVAL for anything else (bus > 0xff, device > 0x1f, function > 7, a
 * domain > 0xffff, trailing bytes). */
int gi_bdf_normalize(const char *s, char ret[GI_GPU_BDF_SIZE]);

/* Whether a PCI function is an NVIDIA GPU that nvidia.ko drives: vendor
 * 0x10de, class 0x0300xx (VGA) or 0x0302xx (3D controller), the classes in
 * its PCI table. Audio functions (0x0403) and NVSwitches (0x0680) are not. */
bool gi_pci_is_nvidia_gpu(uint16_t vendor, uint32_t class_code);

/* True for an NVSwitch: an NVIDIA function of PCI class 0x0680 ("other
 * bridge"; e.g. 10de:22a3 on HGX H100/H200 boards). */
bool gi_pci_is_nvswitch(uint16_t vendor, uint32_t class_code);

/* ---- the CUDA probe's line ---- */

/* One CUDA device as the probe saw it. */
typedef struct {
  int ordinal;                     /* cuDeviceGet() ordinal */
  char bdf[GI_GPU_BDF_SIZE];       /* normalised; "" when the probe could not get it */
  char name[GI_GPU_NAME_SIZE];     /* cuDeviceGetName(); "" when unknown */
  char call[GI_GPU_CALL_SIZE];     /* the call that failed, "" when every call succeeded */
  long code;                       /* its CUresult, 0 on success */
  char error[GI_GPU_ERROR_SIZE];   /* cuGetErrorName() of it (or a text), "" on success */
} GiCudaDevice;

/* The probe's whole line. */
typedef struct {
  char call[GI_GPU_CALL_SIZE];     /* the step before any device that failed ("dlopen", "dlsym",
                                    * "cuInit", "cuDeviceGetCount"), "" when none */
  long code;                       /* its CUresult (0 for dlopen/dlsym) */
  char error[GI_GPU_ERROR_SIZE];   /* its CUDA error name, or dlerror()'s text */
  long version;                    /* cuDriverGetVersion(), e.g. 12040; 0 when unknown */
  size_t n_devices;
  GiCudaDevice devices[GI_GPU_MAX];
} GiCudaProbe;

/* Parses the probe's output @text (NUL-terminated) into @ret: its last line
 * that starts with '{' (blanks before it are fine; earlier lines, e.g.
 * libcuda's own chatter on stdout, are ignored; only blanks may follow the
 * object). The line is one JSON object (cuda-probe.c writes it):
 *
 *   {"v":1,"call":null|"cuInit",...,"code":N,"error":null|"CUDA_ERROR_...",
 *    "version":N,"devices":[{"ordinal":0,"bdf":"0000:01:00.0","name":"...",
 *    "call":null|"cuCtxCreate","code":N,"error":null|"..."},...]}
 *
 * Strict JSON (strings with their escapes, integers, true/false/null, at
 * most 4 levels deep); "v" must be GI_CUDA_PROBE_VERSION; unknown keys are
 * skipped (a newer probe may add some); a known key with a value of the
 * wrong type, a BDF that does not parse, or more than GI_GPU_MAX devices is
 * an error. Strings are cut to their field's size; \u escapes outside ASCII
 * and control bytes become '?'. Returns 0, or -EINVAL with the first problem
 * in @err (@err_size bytes), e.g. "byte 17: expected ':'". */
int gi_cuda_probe_parse(const char *text, GiCudaProbe *ret, char *err, size_t err_size);

/* ---- the kernel log ---- */

/* One /dev/kmsg record: "PRIO,SEQ,USEC,FLAGS[,...];MESSAGE\n" followed by
 * continuation lines (" KEY=VALUE\n") that are dropped. */
typedef struct {
  unsigned level;                  /* PRIO & 7: 0 (emerg) .. 7 (debug) */
  unsigned long long seq;
  unsigned long long usec;         /* since boot */
  const char *message;             /* points into the record */
  size_t message_len;              /* up to the first '\n' */
} GiKmsgRecord;

/* Parses one record of @len bytes (as one read(2) of /dev/kmsg returns it,
 * not NUL-terminated) into @ret. Returns 0, or -EINVAL when the prefix is not
 * "N,N,N,...;" with decimal numbers. */
int gi_kmsg_parse(const char *rec, size_t len, GiKmsgRecord *ret);

/* Whether a kernel message is one of the NVIDIA driver's ("NVRM: ..."), the
 * lines a failed probe is reported with. */
bool gi_kmsg_is_nvrm(const char *message, size_t len);

/* ---- the verdict ---- */

/* The result for one GPU, as the report gives it. */
typedef struct {
  char bdf[GI_GPU_BDF_SIZE];
  char name[GI_GPU_NAME_SIZE];     /* from the probe, "" when it has none for this GPU */
  bool ok;                         /* the probe passed on it */
  char call[GI_GPU_CALL_SIZE];     /* when !ok: the failing step ("cuCtxCreate", "cuInit",
                                    * "nvidia.ko", "probe", "cuDeviceGetCount" for a GPU CUDA does
                                    * not list) */
  char error[GI_GPU_ERROR_SIZE];   /* when !ok: the CUDA error name or why */
} GiGpuResult;

/* Decides, per GPU, whether CUDA works on it.
 * @requested: the GPUs the guest has (normalised BDFs: the NVIDIA display
 * functions on its PCI bus and those nvidia.ko lists), @n_requested of them,
 * no duplicates. @probe: the probe's parsed line, or NULL when it did not
 * run or its output was unusable; then @failure (NULL otherwise) says why,
 * e.g. "nvidia.ko: load failed: No such device" with @failure_call
 * "nvidia.ko", or "timeout after 90 s" with "probe".
 * Every requested GPU gets a result, in @requested's order; a device the
 * probe lists and no one requested is added after them (and must pass too).
 * A GPU passes only when the probe ran, its top-level calls succeeded, it
 * lists a device with this BDF, and every call on that device succeeded.
 * Writes at most @max results; *@ret_n gets the count. Returns the number of
 * GPUs that failed (0: ready), or -E2BIG when more than @max GPUs are
 * involved (every one of them is then failed: the caller reports it). */
int gi_gpu_verdict(const char *const *requested, size_t n_requested, const GiCudaProbe *probe, const char *failure_call,
                   const char *failure, GiGpuResult *ret, size_t max, size_t *ret_n);

/* ---- the driver layer ---- */

/* Looks up @key in @text, an env file as build-driver-layer.sh writes
 * etc/vfiod/driver-layer.env: lines "KEY=VALUE", '#' comments, no quoting.
 * The value (up to the end of the line, cut to @size - 1 bytes) goes to
 * @buf. Returns 0, -ENOENT when the key is not there, -EINVAL when its value
 * is empty or has bytes outside printable ASCII. The first line with the key
 * counts. */
int gi_env_file_get(const char *text, const char *key, char *buf, size_t size);

/* Builds an environment: the entries of @base (NULL-terminated
 * "NAME=VALUE" strings), each replaced by an entry of @overrides with the
 * same NAME, then the other @overrides (@n_overrides, in order), then for
 * each of @prepends ("NAME=DIR", @n_prepends): NAME's value becomes
 * "DIR:VALUE", or "DIR" when NAME is unset or empty. New strings are written
 * into @buf (@size bytes); @ret gets the pointers and a NULL, at most @max
 * entries with the NULL. Returns the number of entries (without the NULL),
 * or -E2BIG when @ret or @buf is too small, -EINVAL for an entry without
 * '='. */
int gi_env_build(const char *const *base, const char *const *overrides, size_t n_overrides,
                 const char *const *prepends, size_t n_prepends, const char **ret, size_t max, char *buf,
                 size_t size);
