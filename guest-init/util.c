/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *const gi_clean_env[] = {
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "HOME=/root",
  "TERM=linux",
  NULL,
};

char *const *gi_spawn_env = gi_clean_env;

void
gi_write_all(int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    buf += n;
    len -= (size_t) n;
  }
}

static void
vmessage(const char *prefix, const char *fmt, va_list ap)
{
  char buf[768];
  int n;

  /* Leading newline: the line starts at column 0 whatever came before. */
  n = snprintf(buf, sizeof(buf), "\nguest-init: %s", prefix);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t) n, fmt, ap);
  if ((size_t) n >= sizeof(buf) - 1)
    n = sizeof(buf) - 2;
  buf[n++] = '\n';
  gi_write_all(STDERR_FILENO, buf, (size_t) n);
}

void
gi_message(const char *prefix, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vmessage(prefix, fmt, ap);
  va_end(ap);
}

uint64_t
gi_now_ms(void)
{
  struct timespec ts;

  if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
    return 0;
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Closes @fd after a failed call: that call's -errno. */
static int
close_keeping_errno(int fd)
{
  int e = errno;

  close(fd);
  return -e;
}

ssize_t
gi_read_file(const char *path, char *buf, size_t size, bool *truncated)
{
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  if (truncated)
    *truncated = false;
  for (;;) {
    ssize_t n;
    char extra;

    if (len == size - 1) {
      n = read(fd, &extra, 1);
      if (truncated)
        *truncated = n > 0;
      break;
    }
    n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return close_keeping_errno(fd);
    if (n == 0)
      break;
    len += (size_t) n;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t) len;
}

int
gi_write_file(const char *path, const char *s, mode_t mode)
{
  size_t len = strlen(s);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

  if (fd < 0)
    return -errno;
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return close_keeping_errno(fd);
    s += n;
    len -= (size_t) n;
  }
  if (close(fd) < 0 && errno != EINTR)
    return -errno;
  return 0;
}

int
gi_mkdir_p(const char *path, mode_t mode)
{
  char buf[4096];
  size_t len = strlen(path);

  if (len == 0 || len >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
      *p = c;
      if (c == '\0')
        return 0;
    }
  }
}

static int
pidfd_open_compat(pid_t pid)
{
  return (int) syscall(SYS_pidfd_open, pid, 0);
}

pid_t
gi_spawn(char *const argv[], const char *root, int stdout_fd)
{
  GiSpawnOptions o = { .argv = argv, .root = root, .stdout_fd = stdout_fd, .exec_fd = -1 };

  return gi_spawn_opts(&o);
}

pid_t
gi_fork_with_pipe(int pipefd[2], const char **failed)
{
  pid_t pid;

  *failed = "pipe";
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return -errno;
  *failed = "fork";
  pid = fork();
  if (pid < 0) {
    int e = errno;
    close(pipefd[0]);
    close(pipefd[1]);
    return -e;
  }
  return pid;
}

pid_t
gi_spawn_opts(const GiSpawnOptions *o)
{
  const char *failed;
  char *const *envp = o->envp ? o->envp : gi_spawn_env;
  int pipefd[2], err = 0;
  ssize_t n;
  pid_t pid;

  pid = gi_fork_with_pipe(pipefd, &failed);
  if (pid < 0)
    return pid;
  if (pid == 0) {
    sigset_t none;

    /* PID 1 blocks every signal; its children must not inherit that. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(pipefd[0]);
    if (setsid() < 0)
      goto fail;
    if (o->stdout_fd >= 0 && dup2(o->stdout_fd, STDOUT_FILENO) < 0)
      goto fail;
    if (o->root && chroot(o->root) < 0)
      goto fail;
    if (chdir("/") < 0)
      goto fail;
    if (o->exec_fd >= 0)
      syscall(SYS_execveat, o->exec_fd, "", o->argv, envp, AT_EMPTY_PATH);
    else
      execve(o->argv[0], o->argv, envp);
  fail:
    err = errno;
    (void) !write(pipefd[1], &err, sizeof(err));
    _exit(127);
  }
  close(pipefd[1]);
  do
    n = read(pipefd[0], &err, sizeof(err));
  while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  if (n == (ssize_t) sizeof(err)) {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    return -(err != 0 ? err : EIO);
  }
  return pid;
}

int
gi_run(char *const argv[], int timeout_ms, char *out, size_t out_size, int *ret_status)
{
  GiSpawnOptions o = { .argv = argv, .stdout_fd = -1, .exec_fd = -1 };

  return gi_run_opts(&o, timeout_ms, out, out_size, NULL, ret_status);
}

int
gi_run_opts(const GiSpawnOptions *opts, int timeout_ms, char *out, size_t out_size, bool *ret_truncated,
            int *ret_status)
{
  uint64_t deadline = gi_now_ms() + (uint64_t) timeout_ms;
  int pipefd[2] = { -1, -1 }, pidfd, status;
  GiSpawnOptions o = *opts;
  size_t len = 0;
  bool exited = false, truncated = false;
  pid_t pid;

  if (out && pipe2(pipefd, O_CLOEXEC) < 0)
    return -errno;
  o.stdout_fd = pipefd[1];
  pid = gi_spawn_opts(&o);
  if (pipefd[1] >= 0)
    close(pipefd[1]);
  if (pid < 0) {
    if (pipefd[0] >= 0)
      close(pipefd[0]);
    return pid;
  }
  pidfd = pidfd_open_compat(pid);

  /* Until the output is at its end and the child has exited, or the time
   * is up. Without a pidfd (old kernel) the child is checked every 50 ms. */
  while (!exited || pipefd[0] >= 0) {
    struct pollfd pfds[2];
    nfds_t n = 0;
    uint64_t now = gi_now_ms();
    int wait_ms, pipe_index = -1;

    if (now >= deadline)
      break;
    wait_ms = (int) (deadline - now);
    if (pipefd[0] >= 0) {
      pipe_index = (int) n;
      pfds[n++] = (struct pollfd) { .fd = pipefd[0], .events = POLLIN };
    }
    if (!exited && pidfd >= 0)
      pfds[n++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
    if (!exited && pidfd < 0 && wait_ms > 50)
      wait_ms = 50;
    if (poll(pfds, n, wait_ms) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pipe_index >= 0 && pfds[pipe_index].revents != 0) {
      char tmp[512];
      ssize_t r = read(pipefd[0], tmp, sizeof(tmp));

      if (r > 0) {
        size_t take = (size_t) r;
        if (len + take > out_size - 1) {
          take = out_size - 1 - len;
          truncated = true;
        }
        memcpy(out + len, tmp, take);
        len += take;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(pipefd[0]);
        pipefd[0] = -1;
      }
    }
    if (!exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid)
        exited = true;
    }
  }
  if (out)
    out[len] = '\0';
  if (ret_truncated)
    *ret_truncated = truncated;
  if (pipefd[0] >= 0)
    close(pipefd[0]);
  if (pidfd >= 0)
    close(pidfd);
  if (!exited) {
    kill(pid, SIGKILL);
    for (int i = 0; i < 20; i++) {
      if (waitpid(pid, &status, WNOHANG) == pid)
        break;
      usleep(50 * 1000);
    }
    return -ETIMEDOUT;
  }
  *ret_status = status;
  return 0;
}
