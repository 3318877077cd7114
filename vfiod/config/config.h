/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "policy.h"

/* vfiod's configuration, from a GLib key file (see README "Configuration").
 * Precedence for directories: the key in the file, else systemd's
 * STATE_DIRECTORY / RUNTIME_DIRECTORY (first path when several), else the
 * built-in default. */
/* A loaded configuration: immutable once loaded, reference-counted (atomic).
 * The daemon's current one is replaced by a reload; every operation holds
 * a reference to the one it started with (issue 14), so a reload frees an
 * old configuration when its last operation finishes. */
typedef struct {
  gatomicrefcount refs; /* private: vfd_config_ref() / vfd_config_unref() */
  char *state_dir;     /* [daemon] state_dir, default /var/lib/vfiod: journal */
  char *runtime_dir;   /* [daemon] runtime_dir, default /run/vfiod: vfiod.sock, sandboxes/ */
  char *allowed_group; /* [daemon] allowed_group, default "vfiod"; "" = root only */
  char *metrics_file;  /* [daemon] metrics_file: node_exporter textfile written every 5 s; "" (default): none */
  guint api_max_connections;         /* [daemon] max_connections: API connections in total (authenticating or
                                      * open), default 64; root gets VFD_API_ROOT_RESERVED more */
  guint api_max_connections_per_uid; /* [daemon] max_connections_per_uid: per member uid (root has no such
                                      * cap), default 16 */
  guint api_auth_timeout_s;          /* [daemon] auth_timeout: seconds a new connection has to authenticate,
                                      * default 5 */
  char *ids;           /* [devices] ids, default VFD_POLICY_DEFAULT_IDS */
  char *classes;       /* [devices] classes, default VFD_POLICY_DEFAULT_CLASSES */
  bool allow_boot_vga;   /* [devices] allow_boot_vga, default false */
  bool allow_storage;    /* [devices] allow_storage: storage controllers (class 01), default false */
  bool allow_network;    /* [devices] allow_network: network controllers (class 02), default false */
  VfdResetPolicy reset_on_release; /* [devices] reset_on_release: function reset before giving a device back:
                                    * "auto" (default: NVIDIA display/3D functions), true (all), false (none) */
  guint write_timeout_s; /* [devices] write_timeout: seconds one sysfs write may take, default 15;
                          * a write still blocked then marks its device "stuck" */
  bool variant_drivers; /* [devices] variant_drivers: pick the VFIO driver per device from its modalias
                         * (variant.h), default true; false: vfio-pci for all */
  char *pool_devices;  /* [pool] devices: ';'-separated BDFs kept on their VFIO driver (pool.h), default "" */
  char *pool_match;    /* [pool] match: ';'-separated rules VVVV:DDDD, VVVV:*, class:CC[SS[PP]], default "" */
  char *pool_mode;     /* [pool] mode: "external" (default) or "sandboxes" (pool.h) */
  char *cdi_dir;       /* [pool] cdi_dir: where the CDI specs of the pool go, default /run/cdi; "": none */
  char *qemu_binary;   /* [qemu] binary, default qemu-system-x86_64 */
  char *qemu_accel;    /* [qemu] accel: "kvm" (default) or "tcg" */
  char *qemu_user;     /* [qemu] user: the account QEMU runs as (its group; its uid too when
                        * qemu_uid_count is 0). NULL (unset): "vfiod-qemu" when that user exists,
                        * else "nobody"; "root": as vfiod (root), only when said explicitly */
  guint32 qemu_uid_first; /* [qemu] uid_range "FIRST-LAST": each sandbox's QEMU gets its own uid from
                           * it (default VFD_QEMU_UID_RANGE_DEFAULT); "" or "none": all share
                           * [qemu] user's uid (count 0) */
  guint32 qemu_uid_count;
  guint64 qemu_serial_log_max; /* [qemu] serial_log_max_mib: a sandbox's console log is cut back to
                                * nothing when it grows past this (bytes; default 16 MiB) */
  char *qemu_kernel;   /* [qemu] kernel: guest kernel for sandboxes that name none; default
                        * VFIOD_IMAGE_DIR/vmlinuz (vfioctl image build's); "": none */
  char *qemu_initrd;   /* [qemu] initrd: their initramfs; default VFIOD_IMAGE_DIR/initramfs */
  char *qemu_driver_layer; /* [qemu] driver_layer: the NVIDIA driver layer (an EROFS image made by
                           * kernel-modules/build-driver-layer.sh) attached read-only to GPU sandboxes
                           * with a root disk; default VFIOD_IMAGE_DIR/driver-layer.erofs; "": none */
  bool qemu_kernel_set;       /* the file names kernel (else the default image's) */
  bool qemu_initrd_set;       /* the file names initrd */
  bool qemu_driver_layer_set; /* the file names driver_layer (a missing file is then an error; a
                               * missing default is not: GPU sandboxes go without) */
  bool qemu_hugepages; /* [qemu] hugepages: guest RAM on hugetlbfs, default false */
  guint qemu_hugepage_kib;     /* [qemu] hugepage_size: "2M" or "1G" (implies hugepages); 0 (default):
                                * the host's default hugepage size */
  guint qemu_prealloc_threads; /* [qemu] prealloc_threads: preallocate guest RAM with N threads
                                * (prealloc=on,prealloc-threads=N), 1-256; 0 (default): no preallocation */
  guint qemu_max_phys_bits;    /* [qemu] max_phys_bits: the most guest physical address bits a
                                * sandbox may get (36-52); 0 (default): no cap beyond the host's */
  bool qemu_seccomp;   /* [qemu] seccomp: run QEMU with -sandbox on, default true */
  bool qemu_pci_nocrs; /* [qemu] pci_nocrs: "pci=nocrs" for Q35 guests (ignore the firmware's PCI windows,
                        * as Kata's NVIDIA profile does), default false */
  guint qemu_stop_timeout_s; /* [qemu] stop_timeout, seconds from SIGTERM to SIGKILL, default 10 */
  guint16 qemu_present_vendor; /* [qemu] test_present_as "VVVV:DDDD" (TEST ONLY, the lab): every passed
                                * function of class 0x03xxxx is shown to the guest with these PCI
                                * vendor/device IDs (vfio-pci x-pci-vendor-id/x-pci-device-id);
                                * 0 (default, "" in the file): off */
  guint16 qemu_present_device;
  bool vm_libvirt;      /* [vm] backend: "qemu" (default: vfiod starts QEMU itself) or "libvirt" (TRUE: each
                         * sandbox is a transient libvirt domain; vfiod keeps the devices, the network and the
                         * guest image) */
  char *libvirt_uri;    /* [libvirt] uri, default "qemu:///system": this host's system QEMU driver (the only
                         * kind accepted: the devices are bound here, so QEMU must run here) */
  bool net_enabled;     /* [network] enabled: TAP + subnet + firewall + vsock per sandbox, default true */
  char *net_pool;       /* [network] pool, default 10.0.128.0/17 */
  guint net_prefix;     /* [network] prefix, default 30 */
  char *net_host_ports; /* [network] host_ports: ';'-separated TCP ports guests may reach on their gateway */
  char *net_nat_uplink; /* [network] nat_uplink: interface for egress NAT; empty: NAT unavailable */
  char *net_gateway;    /* [network] gateway_address: one IPv4 address every guest has as its gateway
                         * (on a dummy link, and /32 on every TAP); empty (default): each TAP's own */
  guint32 net_gateway_addr; /* net_gateway parsed (host byte order); 0 when empty */
  char *net_dns;        /* [network] dns: ','-separated IPv4 resolvers handed to guests, at most
                         * VFIOD_CMDLINE_MAX_DNS (3), blanks and empty items removed; empty: none */
  guint report_port;    /* [network] report_port: AF_VSOCK port guests report readiness to, default 10000 */
  /* [testing] sys_root / dev_root: TEST-ONLY roots standing in for /sys and
   * /dev (a fake sysfs tree). Default "/sys" and "/dev". */
  char *sys_root;
  char *dev_root;
  char *proc_root; /* [testing] proc_root, default "/proc" (TEST ONLY) */
  char *modules_dir; /* [testing] modules_dir: the module tree variant drivers are looked up in, default ""
                      * (/lib/modules/<running kernel>) (TEST ONLY) */
} VfdConfig;

/* The account QEMU runs as when [qemu] user is unset (created by the
 * package's sysusers.d entry). */
#define VFD_QEMU_USER_DEFAULT "vfiod-qemu"

/* Default [qemu] uid_range: 65536 uids no account uses, above the ranges
 * systemd hands out to containers (0x70010000-0x7001ffff). */
#define VFD_QEMU_UID_RANGE_DEFAULT "1879113728-1879179263"

/* Parses a [qemu] uid_range value: "FIRST-LAST" (decimal, FIRST >= 1000,
 * LAST >= FIRST, LAST < 2^31 - 1), or "" / "none" for no range (count 0).
 * -EINVAL when malformed. */
int vfd_config_parse_uid_range(const char *text, guint32 *ret_first, guint32 *ret_count);

/* Parses a [qemu] test_present_as value: "VVVV:DDDD", exactly four hex
 * digits each (either case), vendor neither 0000 nor ffff, device not ffff
 * (what config space reads as "no device"); "" is off (*@ret_vendor and
 * *@ret_device 0). -EINVAL when malformed; nothing written then. */
int vfd_config_parse_present_as(const char *text, guint16 *ret_vendor, guint16 *ret_device);

/* TRUE when @uri (a [libvirt] uri value) names this host's system QEMU
 * driver: exactly "qemu:///system", or "qemu+unix:///system" with an
 * optional query (e.g. "?socket=/run/libvirt/virtqemud-sock"). Remote URIs
 * (a host part, +ssh, +tcp, +tls), the session driver and other drivers
 * are FALSE: the devices vfiod binds are on this host, and vfiod follows
 * the domain's QEMU process here (its pid, for adoption and exit). */
gboolean vfd_config_libvirt_uri_local(const char *uri);

/* What of the default guest image (VFIOD_IMAGE_DIR, made by `vfioctl image
 * build`) @config relies on and is missing: one sentence per problem, each
 * saying how to build it (empty array when none). Only keys the file leaves
 * unset are looked at. For --check-config, vfioctl doctor and start-up. */
GPtrArray *vfd_config_image_problems(const VfdConfig *config);

/* Loads @path (NULL: defaults only). Unknown groups/keys are ignored with a
 * warning in @ret_warnings (may be NULL). Errors: G_KEY_FILE_ERROR /
 * G_FILE_ERROR on unreadable or malformed files, VFD_ERROR_INVALID_ARGUMENT
 * on bad values (relative directories, unknown accel, bad device rules). */
VfdConfig *vfd_config_load(const char *path, GPtrArray **ret_warnings, GError **error);
/* Another reference to @config (any thread). Returns @config. */
VfdConfig *vfd_config_ref(VfdConfig *config);
/* Drops a reference (any thread); the last one frees. NULL: nothing. */
void vfd_config_unref(VfdConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdConfig, vfd_config_unref)
