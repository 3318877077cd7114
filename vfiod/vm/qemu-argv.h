/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "bdf.h"
#include "device.h"
#include "sysfs.h"
#include "guest-init/protocol.h"

/* What one QEMU guest is launched with. */
typedef struct {
  const char *id;          /* sandbox id, e.g. "sb-1a2b3c4d" */
  const char *qemu_binary; /* [qemu] binary */
  const char *accel;       /* "kvm" or "tcg" */
  guint memory_mib;        /* guest RAM, MiB */
  guint vcpus;
  const char *kernel;      /* absolute path, direct kernel boot */
  const char *initrd;      /* absolute path */
  const char *serial_log;  /* file receiving the guest's serial console, opened by QEMU (when
                            * @serial_fd is 0: tests, tools) */
  int serial_fd;           /* > 0: QEMU's fd number (see @pass_fds) of the serial log vfiod opened
                            * (write-only, O_APPEND): -add-fd + -chardev file,path=/dev/fdset/N */
  const char *qmp_socket;  /* Unix socket path for QMP (server, nowait) */
  const char *pidfile;     /* QEMU writes its pid here (-pidfile) */
  const VfdBdf *devices;   /* functions passed through, each on its own root port */
  guint n_devices;
  const guint32 *device_classes; /* PCI class code (24 bits, sysfs `class`) of each of @devices; NULL:
                                  * unknown (no function is presented as another) */
  guint16 present_vendor;  /* TEST ONLY ([qemu] test_present_as): != 0: every function of class 0x03xxxx
                            * is shown to the guest as @present_vendor:@present_device
                            * (x-pci-vendor-id=0xVVVV,x-pci-device-id=0xDDDD); 0: as it is */
  guint16 present_device;
  /* Q35 only (ignored for microvm), from vfd_qemu_address_plan(): */
  guint64 pci_hole64_size; /* bytes: -global q35-pcihost.pci-hole64-size=<N>G; 0: QEMU's default (32 GiB) */
  guint phys_bits;         /* guest physical address bits: KVM -cpu host,host-phys-bits=on,
                            * host-phys-bits-limit=N; TCG -cpu qemu64,phys-bits=N; 0: KVM plain
                            * -cpu host, TCG QEMU's default CPU */
  gboolean pci_nocrs;      /* Q35: "pci=nocrs" on the guest kernel command line ([qemu] pci_nocrs) */
  gboolean hugepages;      /* guest RAM on hugetlbfs pages ([qemu] hugepages) */
  guint hugepage_kib;      /* their size, KiB ([qemu] hugepage_size: hugetlbsize=2M/1G); 0: the host's default */
  guint prealloc_threads;  /* preallocate guest RAM with N threads (prealloc=on,prealloc-threads=N); 0: no */
  gboolean seccomp;        /* -sandbox on,... ([qemu] seccomp) */
  const char *const *extra_append; /* more kernel command line words (vfiod.* keys), NULL-terminated */
  guint tsc_khz;           /* TCG: guest TSC rate handed to the kernel (tsc_early_khz); 0: none */
  gboolean numa_bind;      /* bind guest RAM (memory backend host-nodes, policy=bind) and QEMU's
                            * threads (CPU affinity) to host node @numa_node */
  guint numa_node;
  uid_t run_uid;           /* QEMU runs as this uid (the sandbox's, from [qemu] uid_range, or
                            * [qemu] user's); 0: as vfiod (root) */
  gid_t run_gid;
  gid_t run_extra_gid;     /* its one supplementary group (the kvm group, for /dev/kvm);
                            * (gid_t) -1: none */
  const char *const *extra_args;   /* more QEMU arguments (network, vsock devices), NULL-terminated */
  const int *pass_fds;     /* open fds handed to QEMU as fds 3, 4, ... in order (taken: closed here) */
  guint n_pass_fds;
} VfdQemuConfig;

/* The QEMU command line: `-M microvm` when no function is passed through,
 * else Q35 with one `pcie-root-port` per passed function and
 * `vfio-pci,host=<BDF>` behind it (with `x-pci-vendor-id=0xVVVV,
 * x-pci-device-id=0xDDDD` on display-class functions when @present_vendor
 * is set: the lab's stand-in GPU); guest RAM from a memfd backend
 * (hugetlb, of @hugepage_kib, preallocated by @prealloc_threads, when
 * asked); `-sandbox on` (seccomp) when asked; direct kernel
 * boot with "console=ttyS0 panic=-1 [pci=realloc [pci=nocrs]]
 * vfiod.sandbox=<id>" plus @extra_append; serial console to @serial_log,
 * QMP on @qmp_socket, no display, no default devices, no reboot.
 * Q35 also gets the guest CPU and address space of @pci_hole64_size and
 * @phys_bits: under KVM `-cpu host[,host-phys-bits=on,host-phys-bits-limit=N]`
 * (CUDA needs the host's instruction set; QEMU's default qemu64 lacks AVX),
 * under TCG `-cpu qemu64,phys-bits=N` (QEMU's default CPU with an explicit
 * width), and `-global q35-pcihost.pci-hole64-size=<N>G` when
 * @pci_hole64_size is set. microvm gets `-cpu host` under KVM (the host's
 * instruction set) and QEMU's default CPU under TCG. */
GStrv vfd_qemu_build_argv(const VfdQemuConfig *config);

/* The guest kernel's command line of @config, a new string: "console=ttyS0
 * panic=-1", "pci=realloc [pci=nocrs]" when @q35 (a machine with PCI
 * root ports), "tsc_early_khz=N" under TCG, "vfiod.sandbox=<id>", then
 * @extra_append. What vfd_qemu_build_argv() passes as -append and the
 * libvirt backend as the domain's <cmdline>. */
char *vfd_qemu_kernel_cmdline(const VfdQemuConfig *config, gboolean q35);

/* Checks that hugetlb pages can back @memory_mib MiB of guest RAM before
 * QEMU tries (it fails late and vaguely, or VFIO's pinning stalls): pages of
 * @page_kib KiB (0: the host's default size, <proc_root>/meminfo
 * "Hugepagesize"), @memory_mib a whole number of them, and enough free:
 * <sys_root>/kernel/mm/hugepages/hugepages-<N>kB free_hugepages minus
 * resv_hugepages, or, with @numa_node >= 0 (guest RAM bound to that node),
 * devices/system/node/node<N>/hugepages/.../free_hugepages. Refuses with
 * VFD_ERROR_NOT_ALLOWED saying how many pages are needed and free and how
 * to reserve more. Best effort: QEMU takes the pages only when it starts. */
gboolean vfd_hugepages_check(const char *sys_root, const char *proc_root, guint memory_mib, guint page_kib,
                             int numa_node, GError **error);

/* ---- the guest's address space (Q35) ----
 * QEMU's Q35 guest gets 40 physical address bits and a 64-bit PCI window
 * ("pci-hole64") of 32 GiB unless told otherwise, which large-BAR GPUs
 * (L40S 64 GiB, H100 128 GiB, H200 256 GiB BAR1) overflow. The window sits
 * above guest RAM, itself above 4 GiB (RAM from 2 GiB up when the guest has
 * at least 2.75 GiB). vfiod sizes both from the passed functions. */

/* What /proc/cpuinfo says about the host CPU (first processor). */
typedef struct {
  guint phys_bits; /* "address sizes : N bits physical"; 0: unknown */
  gboolean la57;   /* "flags" lists la57: 5-level paging, guests may use up to 52 bits */
  gboolean amd;    /* "vendor_id : AuthenticAMD" (or HygonGenuine): QEMU moves guest RAM
                    * above 1 TiB when the guest's address space crosses AMD's HyperTransport
                    * hole at 1012 GiB */
  guint cap_bits;  /* not from cpuinfo: the operator's cap on guest address bits ([qemu]
                    * max_phys_bits; e.g. the IOMMU's address width, or the narrowest host a
                    * fleet's guests must fit); 0: none */
} VfdHostCpu;

/* Parses the text of /proc/cpuinfo into *@ret (only the first processor's
 * block is read). -EINVAL when it has no "address sizes" line. */
int vfd_host_cpu_parse(const char *cpuinfo, VfdHostCpu *ret);

/* Reads <proc_root>/cpuinfo (production "/proc"; tests a fake tree) and
 * parses it. -ENOENT when absent, -EINVAL as vfd_host_cpu_parse(). */
int vfd_host_cpu_read(const char *proc_root, VfdHostCpu *ret);

/* The share of the guest's 64-bit window one passed function needs, in
 * bytes: the sum of its 64-bit prefetchable BARs (@bars: VFD_PCI_NUM_BARS
 * from sysfs `resource`), rounded up to a multiple of its largest such BAR,
 * since the window of the root port it sits behind must hold them all with
 * the largest naturally aligned (H100: 128 GiB + 32 MiB -> 256 GiB). 0 when
 * it has none (32-bit and non-prefetchable BARs go below 4 GiB). */
guint64 vfd_pci_function_window(const VfdPciBar *bars);

typedef struct {
  guint64 window_bytes;    /* W: the root ports' windows summed, rounded up to a power of two; 0: none */
  guint64 pci_hole64_size; /* bytes to pass as pci-hole64-size: W when more than QEMU's 32 GiB
                            * default, else 0 (the default holds it) */
  guint64 top;             /* end of the highest guest physical address the plan allows for */
  guint needed_bits;       /* address bits @top needs */
  guint phys_bits;         /* what the guest gets: @needed_bits, at least QEMU's default 40 */
} VfdAddressPlan;

/* Plans the Q35 guest address space for @memory_mib MiB of RAM and the
 * windows of the @n passed functions (@windows, bytes, from
 * vfd_pci_function_window(); zeros allowed). Their sum, rounded up to a
 * power of two W, is the 64-bit hole passed to QEMU when more than its
 * 32 GiB default. The hole starts at the end of guest RAM above 4 GiB,
 * rounded up to 1 GiB; the firmware (SeaBIOS) places the root ports'
 * windows from there aligned to their largest BAR, then the small 64-bit
 * BARs of root-bus devices (virtio), and QEMU's _CRS grows to cover them:
 * the guest's addresses end at most at that start aligned up to W, plus
 * the hole, plus 1 GiB. When the guest CPU is AMD's (@cpu->amd under KVM;
 * always under TCG, whose qemu64 reports AuthenticAMD) and the hole reaches
 * the HyperTransport range at 1012 GiB, RAM above 4 GiB starts at 1 TiB,
 * as QEMU does. @accel: "kvm" or "tcg"; @cpu: the host CPU (phys_bits 0:
 * unknown, not checked).
 * Refuses with VFD_ERROR_NOT_ALLOWED, saying how many bits are needed and
 * why they are not there, when the guest would need more than 48 address
 * bits (4-level paging; under KVM up to 52 when the host has la57), or,
 * under KVM, more than the host's CPU has, or more than @cpu->cap_bits. *@ret written only on success. */
gboolean vfd_qemu_address_plan(guint memory_mib, const guint64 *windows, guint n, const char *accel,
                               const VfdHostCpu *cpu, VfdAddressPlan *ret, GError **error);

/* Plans a Q35 sandbox asking for @requested (GArray of VfdBdf, at least
 * one), reading only: the functions it gets are every non-bridge member of
 * each requested device's IOMMU group (*@ret_functions, GArray of VfdBdf,
 * sorted); on an HGX board (vfd_hgx_board_find()) they must be a supported
 * partition (vfd_hgx_check_partition()), and when the sandbox asked for
 * @gpus (> 0: "any N") equal to all of the board's GPUs, the board's
 * NVSwitches are appended to @requested first (full passthrough); every
 * function must pass the [devices] rules (VFD_ERROR_NOT_ALLOWED naming it,
 * checked here so that no group is bound in vain); then the
 * 64-bit prefetchable BARs of every function (sysfs `resource`) give the
 * address plan for @memory_mib MiB of RAM under @accel on a host with @cpu
 * (vfd_qemu_address_plan()). Errors: those of the group and board checks
 * and of the plan (VFD_ERROR_NOT_ALLOWED), FAILED when a `resource` cannot
 * be read. *@ret_functions and *@ret_plan are written only on success;
 * @requested may have grown by the NVSwitches either way. */
gboolean vfd_sandbox_plan_devices(VfdHost *host, GArray *requested, guint gpus, guint memory_mib, const char *accel,
                                  const VfdHostCpu *cpu, GArray **ret_functions, VfdAddressPlan *ret_plan,
                                  GError **error);

/* CPUs of host NUMA node @node (sysfs devices/system/node/node<N>/cpulist
 * under @sys_root), as a CPU list; FALSE when unknown. */
gboolean vfd_numa_node_cpus(const char *sys_root, int node, GArray **ret_cpus);

/* RLIMIT_MEMLOCK for a guest of @memory_mib: all guest RAM (VFIO pins it for
 * DMA) plus 256 MiB for QEMU's own pinned buffers; in bytes. */
guint64 vfd_qemu_memlock_bytes(guint memory_mib);

/* QEMU fd sets (-add-fd set=N) vfiod uses for files it opened itself. */
#define VFD_QEMU_FDSET_SERIAL 1
#define VFD_QEMU_FDSET_DRIVER 3 /* the NVIDIA driver layer ([qemu] driver_layer), read-only */
#define VFD_QEMU_FDSET_DISKS 4  /* the sandbox's disks (guest-disks.h): 4 + the disk's index */

/* The disks vfiod attaches (virtio-blk, in this order: the sandbox's disks,
 * guest-disks.h, then the driver layer), named to guest-init by their
 * serial (guest-init/protocol.h, "disks"): the guest kernel's vdX names
 * follow probe order, which guest-init's parallel module loading does not
 * keep. */
#define VFD_QEMU_DRIVER_DEV VFIOD_DISK_BY_SERIAL VFIOD_DISK_SERIAL_DRIVER
#define VFD_QEMU_DRIVER_SERIAL ",serial=" VFIOD_DISK_SERIAL_DRIVER

/* Starts QEMU with @config; stdout/stderr go to @log_fd (taken; -1: not
 * redirected). In the child, before exec: RLIMIT_MEMLOCK soft and hard
 * from vfd_qemu_memlock_bytes() (while still privileged; the child exits
 * 125 if it cannot be set), its own process group, then, when @run_uid is
 * not 0, supplementary groups set to @run_extra_gid (or none) and
 * real/effective/saved gid and uid to @run_gid/@run_uid (exit 126 if that
 * fails: QEMU never runs as root by accident). */
GSubprocess *vfd_qemu_spawn(const VfdQemuConfig *config, int log_fd, GError **error);
