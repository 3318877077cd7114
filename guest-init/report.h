/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

/* The machine-readable lines guest-init prints on the console and sends to
 * the host (see guest-init/README.md). Pure formatting: no I/O, no
 * allocation. Every formatter works like snprintf(): it writes at most @size
 * bytes including the NUL into @buf (which may be NULL when @size is 0) and
 * returns the length the whole line needs, without the NUL; the line is
 * complete only when the return value is < @size. Lines end with "\n".
 * Strings are JSON escaped: '"', '\\' and control bytes as escapes, any byte
 * >= 0x80 as "\ufffd", so the JSON is valid whatever the input bytes. */

/* A bounded output that keeps counting once full, like snprintf(). */
typedef struct {
  char *buf;
  size_t size;
  size_t len;
} GiOut;

/* Appends raw text. */
void gi_out_puts(GiOut *o, const char *s);
/* Appends @s (NULL is taken as "") as a JSON string, quotes included. */
void gi_out_json_string(GiOut *o, const char *s);
/* Appends @s as a JSON string, or null when @s is NULL. */
void gi_out_json_string_or_null(GiOut *o, const char *s);
/* Appends "\n" and NUL-terminates; returns the length the line needs. */
size_t gi_out_finish(GiOut *o);

/* BARs 0-5 of a PCI function (the ROM and bridge windows are not listed). */
#define GI_PCI_NUM_BARS 6

/* One BAR as the guest's kernel set it up: a line of the function's sysfs
 * `resource` file ("0x<start> 0x<end> 0x<flags>"). */
typedef struct {
  uint64_t start; /* bus address the kernel assigned; 0 when it assigned none */
  uint64_t size;  /* bytes (end - start + 1); 0: the BAR is not implemented */
  uint64_t flags; /* the kernel's IORESOURCE_* bits */
} GiPciBar;

/* Kernel resource flags (include/linux/ioport.h) the report uses. */
#define GI_IORESOURCE_IO 0x00000100ull
#define GI_IORESOURCE_MEM 0x00000200ull
#define GI_IORESOURCE_PREFETCH 0x00002000ull
#define GI_IORESOURCE_MEM_64 0x00100000ull
#define GI_IORESOURCE_UNSET 0x20000000ull

/* One PCI function as seen in the guest's sysfs. */
typedef struct {
  char bdf[32];        /* directory name under the PCI devices root, e.g. "0000:00:01.0" */
  uint16_t vendor;     /* from its `vendor` attribute */
  uint16_t device;     /* from its `device` attribute */
  uint32_t class_code; /* from its `class` attribute, e.g. 0x030000 */
  char driver[64];     /* name of the bound driver (its `driver` link), "" for none */
  GiPciBar bars[GI_PCI_NUM_BARS]; /* from its `resource` attribute; all 0 if unreadable */
} GiPciDevice;

/* Parses the first GI_PCI_NUM_BARS lines of a sysfs `resource` file
 * (@text, NUL-terminated) into @bars. A line whose end is 0 (or below its
 * start) is a BAR the function does not implement: size 0. Lines that do not
 * parse leave their BAR zeroed. Returns the number of lines parsed. */
int gi_pci_parse_resource(const char *text, GiPciBar bars[GI_PCI_NUM_BARS]);

/* True when the kernel gave @bar an address: it has a size, a non-zero
 * start and no IORESOURCE_UNSET flag (the kernel keeps the size of a BAR it
 * could not place, with that flag or start 0). */
bool gi_pci_bar_assigned(const GiPciBar *bar);

/* Orders "DDDD:BB:DD.F" addresses numerically (domain, bus, device,
 * function), for qsort() over GiPciDevice. Names that do not parse sort after
 * the ones that do, by strcmp(). */
int gi_pci_device_compare(const void *a, const void *b);

/* One named time, in milliseconds of CLOCK_BOOTTIME (since the guest kernel
 * started). */
typedef struct {
  const char *name;
  uint64_t ms;
} GiTiming;

/* The CUDA probe's outcome, per GPU (gi_gpu_verdict()), printed as the
 * "cuda" object of VFIOD_READY and VFIOD_FATAL:
 *   {"version":12040,"error":null|"...",
 *    "probe":null|{"call":null|"cuInit","code":0,"error":null|"CUDA_ERROR_..."},
 *    "gpus":[{"bdf":"0000:01:00.0","name":"...","driver":"550.163.01",
 *    "probe":"ok"|"failed","call":null|"cuCtxCreate","error":null|"CUDA_ERROR_..."}],
 *    "nvrm":["NVRM: ..."]} */
typedef struct {
  long version;                    /* cuDriverGetVersion(), 0 when unknown (printed as null) */
  bool probe_ran;                  /* the probe printed its line: "probe" is an object, else null */
  const char *probe_call;          /* its top-level failure before any device, or NULL */
  long probe_code;
  const char *probe_error;
  const char *error;               /* why no GPU could pass (the probe did not run, nvidia.ko did not
                                    * load, ...), or NULL */
  const char *driver;              /* the kernel driver's version, for each GPU; may be NULL */
  const GiGpuResult *gpus;
  size_t n_gpus;
  const char *const *nvrm;         /* the kernel's NVRM lines (only when something failed) */
  size_t n_nvrm;
} GiCudaReport;

/* Appends the "cuda" object above. */
void gi_out_cuda(GiOut *o, const GiCudaReport *c);

/* Everything in the ready report. Strings that may be NULL are printed as
 * null; arrays may be NULL when their count is 0. */
typedef struct {
  const char *sandbox;             /* "" when not given */
  const char *kernel;              /* uname -r */
  uint64_t uptime_ms;              /* CLOCK_BOOTTIME when the report was made */
  const char *report;              /* "console" or "vsock:PORT" */
  const char *const *modules;      /* module names loaded, in load order */
  size_t n_modules;
  const GiPciDevice *pci;          /* sorted by BDF */
  size_t n_pci;
  /* NVIDIA: nvidia_driver NULL prints "nvidia":null (none staged, or
   * vfiod.gpu=off); then the other nvidia_* fields are not printed. */
  const char *nvidia_driver;       /* the manifest's nvidia-driver version */
  const char *const *nvidia_nodes; /* /dev nodes created */
  size_t n_nvidia_nodes;
  const char *persistenced;        /* "running", "absent", "failed: ..." */
  const char *fabricmanager;       /* NULL (no NVSwitch), "running", "absent", "failed: ..." */
  const char *smi;                 /* "ok", "absent", "exit:N", "timeout", "failed: ..." */
  const char *const *gpus;         /* `nvidia-smi -L` lines */
  size_t n_gpus;
  const char *const *smi_output;   /* nvidia-smi's lines when it failed (printed only when any) */
  size_t n_smi_output;
  /* The driver layer (vfiod.driver=): layer_dev NULL prints "driver_layer":null. */
  const char *layer_dev;           /* "/dev/vdb" */
  const char *layer_path;          /* where the workload sees it, "/run/nvidia/driver" */
  const char *layer_version;       /* its NVIDIA_DRIVER_VERSION */
  const char *layer_key;           /* its DRIVER_LAYER_KEY, may be NULL */
  const char *layer_modules;       /* "layer" or "initramfs": where nvidia.ko came from; may be NULL */
  /* Where the kernel's firmware loader finds this driver version's GSP
   * firmware ("/lib/firmware/nvidia/550.163.01"), and the gsp_*.bin files
   * it holds; NULL leaves "firmware" out of "driver_layer". */
  const char *layer_firmware;
  const char *const *layer_firmware_files;
  size_t n_layer_firmware_files;
  /* The CUDA probe: NULL prints "cuda":null (no driver layer: not probed). */
  const GiCudaReport *cuda;
  /* Network: net_if NULL prints "net":null. */
  const char *net_if;
  const char *net_mac;             /* may be NULL */
  const char *net_ip;              /* "10.0.2.15/24" as read back from the kernel */
  const char *net_gw;              /* may be NULL */
  const char *const *dns;
  size_t n_dns;
  /* Root file system: root_dev NULL prints "root":null. */
  const char *root_dev;
  const char *root_fstype;
  const char *workload;            /* vfiod.cmd, or NULL */
  const GiTiming *timings;         /* printed as the "timings_ms" object, in order */
  size_t n_timings;
} GiReady;

/* VFIOD_READY {"v":1,"sandbox":...,"kernel":...,"uptime_ms":N,"report":...,
 *   "modules":[...],"pci":[{"bdf":"...","id":"vvvv:dddd","class":"cccccc",
 *   "driver":"..."|null,"bars":[{"bar":N,"size":BYTES,"type":"mem64"|"mem32"|"io",
 *   "prefetch":B,"assigned":B},...]},...],"nvidia":null|{...},"gpus":[...],
 *   "driver_layer":null|{...},"cuda":null|{...},
 *   "net":null|{...},"root":null|{...},"workload":...,"timings_ms":{...}}
 * IDs are 4 lower-case hex digits each, the class 6. */
size_t gi_format_ready(char *buf, size_t size, const GiReady *r);

/* How the workload ended and what was cleaned up after it. */
typedef struct {
  int status;          /* exit status, or 128 + signal when killed by a signal */
  int signal;          /* the signal that killed it, 0 when it exited */
  const char *reason;  /* "exit", "timeout", "signal:SIGPWR", "power-button", ... */
  uint64_t runtime_ms; /* from exec to exit */
  unsigned reaped;     /* other processes (orphans) reaped by PID 1, whole run */
  unsigned killed;     /* processes still alive when the workload ended, sent SIGTERM */
  unsigned sigkilled;  /* of those, still alive after the grace time: sent SIGKILL */
  unsigned left;       /* processes still alive when giving up (should be 0) */
  unsigned zombies;    /* zombies in /proc after the last reap (should be 0) */
} GiExit;

/* VFIOD_EXIT {"status":N,"signal":S,"reason":"...","runtime_ms":N,
 *   "reaped":N,"killed":N,"sigkilled":N,"left":N,"zombies":N} */
size_t gi_format_exit(char *buf, size_t size, const GiExit *e);

/* VFIOD_REPORT {"to":"<to>","ok":true|false,"attempts":N,"error":"..."|null}:
 * the outcome of sending a line to the host. */
size_t gi_format_report_status(char *buf, size_t size, const char *to, const char *line_tag, bool ok,
                               unsigned attempts, const char *error);

/* VFIOD_POWEROFF {"reason":"<reason>"}, e.g. reason "signal:SIGTERM" or
 * "power-button". */
size_t gi_format_poweroff(char *buf, size_t size, const char *reason);

/* VFIOD_FATAL {"error":"<error>"}. */
size_t gi_format_fatal(char *buf, size_t size, const char *error);

/* VFIOD_FATAL {"error":"<error>","cuda":{...},"persistenced":...,"smi":...,
 * "smi_output":[...]}: the GPUs are not ready (gi_gpu_verdict()), with what
 * the probe said per GPU and the kernel's NVRM lines. @persistenced and @smi
 * (may be NULL): their status as in the ready line; @smi_output: nvidia-smi's
 * lines when it failed. */
size_t gi_format_fatal_gpu(char *buf, size_t size, const char *error, const GiCudaReport *cuda,
                           const char *persistenced, const char *smi, const char *const *smi_output,
                           size_t n_smi_output);

/* As gi_format_fatal_gpu(), and with @ctx (may be NULL: then the same line)
 * what the ready line would have said about the guest, after "smi_output":
 * ,"sandbox":...,"kernel":...,"uptime_ms":N,"modules":[...] (loaded, in load
 * order),"pci":[...],"driver_layer":null|{... "firmware":{"path":...,
 * "files":[...]}},"root":null|{...},"timings_ms":{...}, formatted as in
 * gi_format_ready(); @ctx's other fields are not used. So a GPU that fails
 * is reported with the modules that did load before it, where its firmware
 * was, and how long each step took. */
size_t gi_format_fatal_gpu_ctx(char *buf, size_t size, const char *error, const GiCudaReport *cuda,
                               const char *persistenced, const char *smi, const char *const *smi_output,
                               size_t n_smi_output, const GiReady *ctx);

/* What guest-init did to the NVIDIA driver before powering off. */
typedef struct {
  const char *persistenced;        /* "stopped", "killed", "gone" (had exited before), "none" (not
                                    * started, or its pid unknown) */
  const char *const *unloaded;     /* modules unloaded, in order */
  size_t n_unloaded;
  const char *error;               /* the first module that could not be unloaded and why, or NULL */
} GiTeardown;

/* VFIOD_POWEROFF {"reason":"<reason>","gpu":{"persistenced":"stopped",
 * "unloaded":["nvidia_uvm","nvidia_modeset","nvidia"],"error":null}}; with
 * @t NULL, as gi_format_poweroff(). */
size_t gi_format_poweroff_gpu(char *buf, size_t size, const char *reason, const GiTeardown *t);
