/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "bdf.h"

/* What one QEMU guest is launched with. */
typedef struct {
  const char *id;          /* sandbox id, e.g. "sb-1a2b3c4d" */
  const char *qemu_binary; /* [qemu] binary */
  const char *accel;       /* "kvm" or "tcg" */
  guint memory_mib;        /* guest RAM, MiB */
  guint vcpus;
  const char *kernel;      /* absolute path, direct kernel boot */
  const char *initrd;      /* absolute path */
  const char *serial_log;  /* file receiving the guest's serial console */
  const char *qmp_socket;  /* Unix socket path for QMP (server, nowait) */
  const char *pidfile;     /* QEMU writes its pid here (-pidfile) */
  const VfdBdf *devices;   /* functions passed through, each on its own root port */
  guint n_devices;
  gboolean hugepages;      /* guest RAM on hugetlbfs pages ([qemu] hugepages) */
  gboolean seccomp;        /* -sandbox on,... ([qemu] seccomp) */
  const char *const *extra_append; /* more kernel command line words (vfiod.* keys), NULL-terminated */
  guint tsc_khz;           /* TCG: guest TSC rate handed to the kernel (tsc_early_khz); 0: none */
  gboolean numa_bind;      /* bind guest RAM (memory backend host-nodes, policy=bind) and QEMU's
                            * threads (CPU affinity) to host node @numa_node */
  guint numa_node;
  uid_t run_uid;           /* QEMU runs as this user ([qemu] user); 0: as vfiod (root) */
  gid_t run_gid;
  const char *const *extra_args;   /* more QEMU arguments (network, vsock devices), NULL-terminated */
  const int *pass_fds;     /* open fds handed to QEMU as fds 3, 4, ... in order (taken: closed here) */
  guint n_pass_fds;
} VfdQemuConfig;

/* The QEMU command line: `-M microvm` when no function is passed through,
 * else Q35 with one `pcie-root-port` per passed function and
 * `vfio-pci,host=<BDF>` behind it; guest RAM from a memfd backend
 * (hugetlb when asked); `-sandbox on` (seccomp) when asked; direct kernel
 * boot with "console=ttyS0 panic=-1 [pci=realloc] vfiod.sandbox=<id>" plus
 * @extra_append; serial console to @serial_log, QMP on @qmp_socket, no
 * display, no default devices, no reboot. */
GStrv vfd_qemu_build_argv(const VfdQemuConfig *config);

/* The QEMU of sandbox @id (a live process whose command line holds
 * "vfiod.sandbox=<id>"): the pid in @pidfile when it is that process, else
 * the first such process found in /proc (QEMU may not have written the
 * pidfile yet); 0 when there is none. */
gint64 vfd_qemu_find_pid(const char *pidfile, const char *id);

/* CPUs of host NUMA node @node (sysfs devices/system/node/node<N>/cpulist
 * under @sys_root), as a CPU list; FALSE when unknown. */
gboolean vfd_numa_node_cpus(const char *sys_root, int node, GArray **ret_cpus);

/* The host's TSC rate in kHz, from /proc/cpuinfo ("cpu MHz"); 0 when
 * unknown. Under TCG the guest's TSC runs at the host's rate; telling the
 * guest kernel (tsc_early_khz=) spares it the PIT calibration, which times
 * out on a busy host and stalls a microvm guest at boot. */
guint vfd_host_tsc_khz(void);

/* RLIMIT_MEMLOCK for a guest of @memory_mib: all guest RAM (VFIO pins it for
 * DMA) plus 256 MiB for QEMU's own pinned buffers; in bytes. */
guint64 vfd_qemu_memlock_bytes(guint memory_mib);

/* Starts QEMU with @config; stdout/stderr go to @log_path. In the child,
 * before exec: RLIMIT_MEMLOCK from vfd_qemu_memlock_bytes() (while still
 * privileged), its own process group, then, when @run_uid is not 0,
 * supplementary groups dropped and gid/uid set to @run_gid/@run_uid. */
GSubprocess *vfd_qemu_spawn(const VfdQemuConfig *config, const char *log_path, GError **error);

/* Start time of @pid: /proc/<pid>/stat field 22 (clock ticks after boot),
 * which together with the pid identifies a process. -ESRCH when gone or a
 * zombie (exited, not yet reaped). */
int vfd_proc_start_time(gint64 pid, guint64 *ret);

/* Checks a guest image path given by a client: absolute, no "." or ".."
 * component, an existing readable regular file. @what names it in the
 * error (VFD_ERROR_INVALID_ARGUMENT / VFD_ERROR_NOT_FOUND). */
gboolean vfd_check_image_path(const char *what, const char *path, GError **error);

/* Scans console output for guest-init's readiness line. @pending holds the
 * partial last line between calls (at most 64 KiB are kept); @data/@len is
 * the new output. Returns TRUE and the JSON text after "VFIOD_READY " in
 * *@ret_report (newly allocated) when a complete ready line is found. */
gboolean vfd_serial_scan(GString *pending, const char *data, gsize len, char **ret_report);
