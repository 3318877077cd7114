/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* One attempt. Returns 0 or -errno, with the failing step in *@step. */
static int
send_once(unsigned cid, unsigned port, const char *line, size_t len, const char **step)
{
  struct sockaddr_vm addr = {
    .svm_family = AF_VSOCK,
    .svm_cid = cid,
    .svm_port = port,
  };
  struct timeval tv = { .tv_sec = GI_VSOCK_TIMEOUT_MS / 1000, .tv_usec = (GI_VSOCK_TIMEOUT_MS % 1000) * 1000 };
  struct pollfd pfd;
  socklen_t optlen = sizeof(int);
  int fd, r, soerr = 0;

  *step = "socket";
  fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;

  *step = "connect";
  if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      r = -errno;
      goto out;
    }
    pfd = (struct pollfd) { .fd = fd, .events = POLLOUT };
    do
      r = poll(&pfd, 1, GI_VSOCK_TIMEOUT_MS);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      r = -errno;
      goto out;
    }
    if (r == 0) {
      r = -ETIMEDOUT;
      goto out;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0) {
      r = -errno;
      goto out;
    }
    if (soerr != 0) {
      r = -soerr;
      goto out;
    }
  }

  /* Connected: write blocking, with a send timeout. */
  *step = "send";
  if (fcntl(fd, F_SETFL, 0) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
    r = -errno;
    goto out;
  }
  while (len > 0) {
    ssize_t n = send(fd, line, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = errno == EAGAIN ? -ETIMEDOUT : -errno;
      goto out;
    }
    line += n;
    len -= (size_t) n;
  }
  shutdown(fd, SHUT_WR);
  r = 0;
out:
  close(fd);
  return r;
}

int
gi_vsock_send(unsigned cid, unsigned port, const char *line, size_t len, unsigned attempts,
              unsigned *ret_attempts, char *err, size_t err_size)
{
  const char *step = "socket";
  unsigned i;
  int r = -EINVAL;

  for (i = 0; i < attempts; i++) {
    if (i > 0)
      usleep(GI_VSOCK_RETRY_DELAY_MS * 1000);
    r = send_once(cid, port, line, len, &step);
    if (r == 0 || r == -EAFNOSUPPORT) {
      i++;
      break;
    }
  }
  *ret_attempts = i;
  if (r < 0)
    snprintf(err, err_size, "%s (vsock %u:%u): %s", step, cid, port, strerror(-r));
  return r;
}
