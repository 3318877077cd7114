/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A sandbox's disks (issue 15, item 2): CreateSandbox's `disks aa{sv}`
 * checked, and what QEMU and guest-init are told about them.
 *
 * Each disk is a raw image, a regular file the client can open: by path
 * (opened in the create's stage 0 with the client's rights,
 * vfd_caller_open()) or as a file descriptor the client passed with the
 * call (D-Bus type h). vfiod hands QEMU open fds only, never a path.
 * Roles:
 *   root     the workload's root filesystem (at most one). Read-only: the
 *            guest mounts it read-only under a writable overlay (the
 *            overlay disk, else a tmpfs: gone when the guest stops).
 *            Writable: mounted read-write, no overlay.
 *   overlay  the overlay's upper layer (at most one; writable; needs a
 *            read-only root): an ext4 filesystem; guest-init keeps the
 *            upper and work directories on it, so what the workload wrote
 *            survives a StopSandbox/StartSandbox.
 *   data     attached only (at most VFD_DISKS_MAX in all): the guest finds
 *            it as /dev/disk/by-id/virtio-vfiod-dataN (N: its index among
 *            the data disks, in the order given), read-only when asked.
 * Each reaches the guest as virtio-blk with a serial (guest-init/protocol.h,
 * "disks"). */

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#define VFD_DISKS_MAX 8 /* disks of one sandbox, all roles */

typedef enum {
  VFD_DISK_ROOT,
  VFD_DISK_OVERLAY,
  VFD_DISK_DATA,
} VfdDiskRole;

typedef struct {
  VfdDiskRole role;
  gboolean read_only;
  char *path;    /* the client's absolute path, NULL when passed as an fd */
  int fd;        /* open: the client's fd (dup) or opened from @path; -1: not yet */
  guint index;   /* data disks: N of vfiod-dataN; 0 for the others */
  char serial[24]; /* the virtio-blk serial: vfiod-root, vfiod-overlay, vfiod-dataN */
} VfdDisk;

/* "root", "overlay", "data". */
const char *vfd_disk_role_name(VfdDiskRole role);

/* Checks CreateSandbox's disks: @disks (aa{sv}, or NULL) and the older
 * single `disk s` (@legacy_disk, NULL: none; a writable root). Each entry:
 * role s (root | overlay | data, required), exactly one of path s
 * (absolute, no "." or ".." component, at most 4096 bytes) and fd h (an
 * index into @fd_list, the call's fds; NULL: none passed), read_only b
 * (default false). Unknown keys and wrong types are refused. An fd must be
 * a regular file, not O_PATH, open for reading; a writable disk's fd must
 * be open O_RDWR. Returns a GPtrArray of VfdDisk (free func set; empty
 * when there are none) with fds dup'ed from @fd_list (close-on-exec), or
 * NULL with VFD_ERROR_INVALID_ARGUMENT (or LIMIT_EXCEEDED for more than
 * VFD_DISKS_MAX disks) naming the entry ("disks[2]: ..."). */
GPtrArray *vfd_disks_parse(GVariant *disks, const char *legacy_disk, GUnixFDList *fd_list, GError **error);

/* The root disk of @disks, or NULL. */
const VfdDisk *vfd_disks_root(GPtrArray *disks);

/* Adds @disks (every fd open) to a QEMU command line: for each, new fds
 * of its file (reopened through /proc/self/fd: open file descriptions of
 * this launch's own, so that QEMU's image locks go with this QEMU; @disks
 * keep theirs for a StartSandbox) appended to @fds (QEMU gets @fds as fd 3, 4, ...: the number of an fd is
 * 3 + its index), `-add-fd` into fd set @first_fdset + i, `-drive` and a
 * virtio-blk `-device` (virtio-blk-device on a microvm (@mmio), else
 * virtio-blk-pci) with the disk's serial; a writable disk's set gets a
 * read-only fd of the same file next to the read-write one (QEMU probes
 * the image read-only first). Adds to the
 * guest's command line (@append): vfiod.root=virtio:vfiod-root, with
 * vfiod.rootflags=ro and vfiod.overlay=virtio:vfiod-overlay or
 * vfiod.overlay=tmpfs for a read-only root. FALSE with VFD_ERROR_FAILED
 * when an fd cannot be duplicated or reopened (what was appended to @fds
 * stays there for the caller to close). */
gboolean vfd_disks_qemu_args(GPtrArray *disks, gboolean mmio, int first_fdset, GStrvBuilder *args,
                             GStrvBuilder *append, GArray *fds, GError **error);

/* Frees a VfdDisk (closes its fd). */
void vfd_disk_free(gpointer disk);
