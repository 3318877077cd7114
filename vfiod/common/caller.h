/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who is calling: the credentials of an API client, and acting with them.
 *
 * vfiod runs as root; its clients (members of [daemon] allowed_group) are
 * not. Anything a client names - a disk image, a kernel - is opened with
 * the client's own rights, never vfiod's, and handed on as an open file
 * descriptor (see doc/security.md, finding 1). */

#include <gio/gio.h>
#include <sys/types.h>

/* An API client's credentials, read from its Unix socket when it
 * connected (SO_PEERCRED and SO_PEERGROUPS: the kernel's record, not what
 * the client claims). */
typedef struct {
  uid_t uid;
  gid_t gid;       /* primary group */
  pid_t pid;       /* the process that connected; it may have exited since */
  gid_t *groups;   /* supplementary groups (g_free'd by vfd_caller_clear) */
  guint n_groups;
} VfdCaller;

/* Reads the credentials of the peer of @conn (a peer-to-peer GDBus
 * connection over a Unix socket) into *@ret. Errors: VFD_ERROR_FAILED when
 * the connection is not a Unix socket or the kernel does not say. */
gboolean vfd_caller_from_connection(GDBusConnection *conn, VfdCaller *ret, GError **error);

/* As vfd_caller_from_connection() for the stream of a connection being
 * set up (GDBusAuthObserver::authorize-authenticated-peer). */
gboolean vfd_caller_from_stream(GIOStream *stream, VfdCaller *ret, GError **error);

/* TRUE when @gid is @caller's primary group or one of the supplementary
 * groups its process held when it connected (SO_PEERGROUPS). This is what
 * the process holds, so it also covers a client in a container that was
 * given the group (e.g. --group-add) without an entry in the host's
 * /etc/group. */
gboolean vfd_caller_in_group(const VfdCaller *caller, gid_t gid);

/* As vfd_caller_from_connection() for the connection @inv arrived on. */
gboolean vfd_caller_from_invocation(GDBusMethodInvocation *inv, VfdCaller *ret, GError **error);

/* The caller as root (uid 0, gid 0, no groups): for vfiod's own files (the
 * config's kernel and initrd), opened with vfiod's rights. */
void vfd_caller_init_root(VfdCaller *ret);

void vfd_caller_clear(VfdCaller *caller);

/* Opens @path with @caller's rights: a short-lived child process takes
 * @caller's uid, gid and supplementary groups and opens @path (absolute, no
 * "." or ".." component) with @flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
 * O_NONBLOCK (O_NONBLOCK is cleared again on the returned fd), then hands
 * the fd back over a socket (SCM_RIGHTS). For uid 0 the open happens in
 * vfiod itself, also with O_NOFOLLOW. The child is given @timeout_ms
 * milliseconds (an open can hang on a FUSE or NFS file the client
 * controls) and killed after that. The opened file must be a regular file
 * (fstat), else it is closed and refused.
 * @what names the path in errors ("disk", "kernel").
 * Returns the fd (>= 0), or -1 with @error: VFD_ERROR_INVALID_ARGUMENT (not
 * absolute, "." / "..", a symbolic link as last component, not a regular
 * file), VFD_ERROR_NOT_FOUND (ENOENT, ENOTDIR), VFD_ERROR_PERMISSION_DENIED
 * (the caller may not open it so), VFD_ERROR_TIMED_OUT, VFD_ERROR_FAILED. */
int vfd_caller_open(const VfdCaller *caller, const char *what, const char *path, int flags, guint timeout_ms,
                    GError **error);
