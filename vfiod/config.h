/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "policy.h"

/* vfiod's configuration, from a GLib key file (see README "Configuration").
 * Precedence for directories: the key in the file, else systemd's
 * STATE_DIRECTORY / RUNTIME_DIRECTORY (first path when several), else the
 * built-in default. */
typedef struct {
  char *state_dir;     /* [daemon] state_dir, default /var/lib/vfiod: journal */
  char *runtime_dir;   /* [daemon] runtime_dir, default /run/vfiod: vfiod.sock, sandboxes/ */
  char *allowed_group; /* [daemon] allowed_group, default "vfiod"; "" = root only */
  char *ids;           /* [devices] ids, default VFD_POLICY_DEFAULT_IDS */
  char *classes;       /* [devices] classes, default VFD_POLICY_DEFAULT_CLASSES */
  bool allow_boot_vga;   /* [devices] allow_boot_vga, default false */
  bool allow_storage;    /* [devices] allow_storage: storage controllers (class 01), default false */
  bool allow_network;    /* [devices] allow_network: network controllers (class 02), default false */
  VfdResetPolicy reset_on_release; /* [devices] reset_on_release: function reset before giving a device back:
                                    * "auto" (default: NVIDIA display/3D functions), true (all), false (none) */
  guint write_timeout_s; /* [devices] write_timeout: seconds one sysfs write may take, default 15;
                          * a write still blocked then marks its device "stuck" */
  char *qemu_binary;   /* [qemu] binary, default qemu-system-x86_64 */
  char *qemu_accel;    /* [qemu] accel: "kvm" (default) or "tcg" */
  char *qemu_user;     /* [qemu] user: QEMU runs as this user; empty: as vfiod (root) */
  char *qemu_kernel;   /* [qemu] kernel: default guest kernel for sandboxes that name none */
  char *qemu_initrd;   /* [qemu] initrd: default guest initramfs (e.g. a staged image) */
  bool qemu_hugepages; /* [qemu] hugepages: guest RAM on hugetlbfs, default false */
  guint qemu_hugepage_kib;     /* [qemu] hugepage_size: "2M" or "1G" (implies hugepages); 0 (default):
                                * the host's default hugepage size */
  guint qemu_prealloc_threads; /* [qemu] prealloc_threads: preallocate guest RAM with N threads
                                * (prealloc=on,prealloc-threads=N), 1-256; 0 (default): no preallocation */
  bool qemu_seccomp;   /* [qemu] seccomp: run QEMU with -sandbox on, default true */
  bool qemu_pci_nocrs; /* [qemu] pci_nocrs: "pci=nocrs" for Q35 guests (ignore the firmware's PCI windows,
                        * as Kata's NVIDIA profile does), default false */
  guint qemu_stop_timeout_s; /* [qemu] stop_timeout, seconds from SIGTERM to SIGKILL, default 10 */
  bool net_enabled;     /* [network] enabled: TAP + subnet + firewall + vsock per sandbox, default true */
  char *net_pool;       /* [network] pool, default 10.0.128.0/17 */
  guint net_prefix;     /* [network] prefix, default 30 */
  char *net_host_ports; /* [network] host_ports: ';'-separated TCP ports guests may reach on their gateway */
  char *net_nat_uplink; /* [network] nat_uplink: interface for egress NAT; empty: NAT unavailable */
  char *net_dns;        /* [network] dns: ','-separated resolvers handed to guests; empty: none */
  guint report_port;    /* [network] report_port: AF_VSOCK port guests report readiness to, default 10000 */
  /* [testing] sys_root / dev_root: TEST-ONLY roots standing in for /sys and
   * /dev (a fake sysfs tree). Default "/sys" and "/dev". */
  char *sys_root;
  char *dev_root;
  char *proc_root; /* [testing] proc_root, default "/proc" (TEST ONLY) */
} VfdConfig;

/* Loads @path (NULL: defaults only). Unknown groups/keys are ignored with a
 * warning in @ret_warnings (may be NULL). Errors: G_KEY_FILE_ERROR /
 * G_FILE_ERROR on unreadable or malformed files, VFD_ERROR_INVALID_ARGUMENT
 * on bad values (relative directories, unknown accel, bad device rules). */
VfdConfig *vfd_config_load(const char *path, GPtrArray **ret_warnings, GError **error);
void vfd_config_free(VfdConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdConfig, vfd_config_free)
