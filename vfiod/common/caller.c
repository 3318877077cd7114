/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "caller.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

gboolean
vfd_caller_from_connection(GDBusConnection *conn, VfdCaller *ret, GError **error)
{
  return vfd_caller_from_stream(g_dbus_connection_get_stream(conn), ret, error);
}

gboolean
vfd_caller_in_group(const VfdCaller *caller, gid_t gid)
{
  if (caller->gid == gid)
    return TRUE;
  for (guint i = 0; i < caller->n_groups; i++)
    if (caller->groups[i] == gid)
      return TRUE;
  return FALSE;
}

gboolean
vfd_caller_from_stream(GIOStream *stream, VfdCaller *ret, GError **error)
{
  struct ucred cred = { 0 };
  socklen_t len = sizeof cred;
  g_autofree gid_t *groups = NULL;
  socklen_t glen = 0;
  int fd;

  memset(ret, 0, sizeof *ret);
  if (!G_IS_SOCKET_CONNECTION(stream)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED, "the API client is not on a Unix socket");
    return FALSE;
  }
  fd = g_socket_get_fd(g_socket_connection_get_socket(G_SOCKET_CONNECTION(stream)));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the API client's credentials: %s", g_strerror(e));
    return FALSE;
  }
  /* SO_PEERGROUPS: ERANGE tells the size needed. */
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &glen) < 0 && errno != ERANGE) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the API client's groups: %s", g_strerror(e));
    return FALSE;
  }
  if (glen > 0) {
    groups = g_malloc(glen);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the API client's groups: %s", g_strerror(e));
      return FALSE;
    }
  }
  ret->uid = cred.uid;
  ret->gid = cred.gid;
  ret->pid = cred.pid;
  ret->n_groups = glen / sizeof(gid_t);
  ret->groups = g_steal_pointer(&groups);
  return TRUE;
}

gboolean
vfd_caller_from_invocation(GDBusMethodInvocation *inv, VfdCaller *ret, GError **error)
{
  return vfd_caller_from_connection(g_dbus_method_invocation_get_connection(inv), ret, error);
}

void
vfd_caller_init_root(VfdCaller *ret)
{
  memset(ret, 0, sizeof *ret);
  ret->pid = getpid();
}

void
vfd_caller_clear(VfdCaller *caller)
{
  g_clear_pointer(&caller->groups, g_free);
  caller->n_groups = 0;
}

/* What the child sends back: 0 and the fd, or the errno of the step that
 * failed. */
typedef struct {
  int err;
  int step; /* 0 open, 1 setgroups, 2 setresgid, 3 setresuid */
} OpenReply;

static void
child_open(int sock, const VfdCaller *c, const char *path, int flags)
{
  OpenReply r = { 0 };
  int fd = -1;
  char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
  struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

  /* Only async-signal-safe calls from here: the parent has threads. */
  if (setgroups(c->n_groups, c->groups) < 0)
    r.err = errno, r.step = 1;
  else if (setresgid(c->gid, c->gid, c->gid) < 0)
    r.err = errno, r.step = 2;
  else if (setresuid(c->uid, c->uid, c->uid) < 0)
    r.err = errno, r.step = 3;
  else if ((fd = open(path, flags)) < 0)
    r.err = errno;
  if (fd >= 0) {
    struct cmsghdr *cm;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  }
  _exit(sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t) sizeof r ? 0 : 1);
}

/* Receives the child's reply within @timeout_ms: the fd, or -errno
 * (-ETIMEDOUT when the child did not answer in time). *@step: as OpenReply. */
static int
receive_fd(int sock, guint timeout_ms, int *step)
{
  OpenReply r = { .err = EIO };
  char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
  struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct pollfd p = { .fd = sock, .events = POLLIN };
  gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
  struct cmsghdr *cm;
  ssize_t n;
  int fd = -1;

  for (;;) {
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    int pr;
    if (left <= 0)
      return -ETIMEDOUT;
    pr = poll(&p, 1, (int) left);
    if (pr > 0)
      break;
    if (pr == 0)
      return -ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
  n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n != (ssize_t) sizeof r)
    return -EIO;
  for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  *step = r.step;
  if (fd >= 0 && r.err == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -(r.err ? r.err : EIO);
}

static int
open_as(const VfdCaller *c, const char *path, int flags, guint timeout_ms, int *step)
{
  int sv[2];
  pid_t pid;
  int r, status;

  *step = 0;
  /* root needs no switch (and gets O_NOFOLLOW too); nor does a client that
   * is vfiod's own user (vfiod not running as root: tests). */
  if (c->uid == 0 || c->uid == geteuid()) {
    r = open(path, flags);
    return r < 0 ? -errno : r;
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return -errno;
  pid = fork();
  if (pid < 0) {
    r = -errno;
    close(sv[0]);
    close(sv[1]);
    return r;
  }
  if (pid == 0) {
    close(sv[0]);
    child_open(sv[1], c, path, flags);
  }
  close(sv[1]);
  r = receive_fd(sv[0], timeout_ms, step);
  close(sv[0]);
  if (r == -ETIMEDOUT)
    kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return r;
}

int
vfd_caller_open(const VfdCaller *caller, const char *what, const char *path, int flags, guint timeout_ms,
                GError **error)
{
  g_auto(GStrv) parts = NULL;
  struct stat st;
  int fd, step = 0;

  if (!path || !*path) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: a path is required", what);
    return -1;
  }
  if (!g_path_is_absolute(path)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' must be an absolute path", what, path);
    return -1;
  }
  if (!vfd_path_check(path, VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' must not contain '.' or '..'", what, path);
    return -1;
  }
  fd = open_as(caller, path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, timeout_ms, &step);
  if (fd < 0) {
    int e = -fd;
    if (step != 0)
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s '%s': cannot take the client's credentials: %s", what,
                  path, g_strerror(e));
    else if (e == ELOOP)
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' is a symbolic link: name the file itself",
                  what, path);
    else if (e == ENOENT || e == ENOTDIR)
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s '%s': %s", what, path, g_strerror(e));
    else if (e == EACCES || e == EPERM || e == EROFS)
      g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED, "%s '%s': %s (opened with the client's rights, uid %u)",
                  what, path, g_strerror(e), (guint) caller->uid);
    else if (e == ETIMEDOUT)
      g_set_error(error, VFD_ERROR, VFD_ERROR_TIMED_OUT, "%s '%s': opening it took more than %u ms", what, path,
                  timeout_ms);
    else
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s '%s': %s", what, path, g_strerror(e));
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' is not a regular file", what, path);
    return -1;
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s '%s': %s", what, path, g_strerror(e));
    return -1;
  }
  return fd;
}
