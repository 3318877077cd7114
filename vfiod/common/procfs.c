/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-init/protocol.h"

/* True when an argument of process @pid contains @needle. */
static gboolean
cmdline_has(gint64 pid, const char *needle)
{
  g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
  g_autofree char *cmdline = NULL;
  gsize len = 0;

  if (!g_file_get_contents(path, &cmdline, &len, NULL))
    return FALSE;
  /* NUL-separated arguments: look at each. */
  for (gsize off = 0; off < len; off += strlen(cmdline + off) + 1)
    if (strstr(cmdline + off, needle))
      return TRUE;
  return FALSE;
}

char *
vfd_read_small_file(int dirfd, const char *path, gsize max, GError **error)
{
  int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  g_autofree char *buf = NULL;
  struct stat st;
  gsize len = 0;

  if (fd < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", path, g_strerror(e));
    return NULL;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: not a regular file", path);
    return NULL;
  }
  buf = g_malloc(max + 1);
  while (len < max) {
    ssize_t n = read(fd, buf + len, max - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "%s: %s", path, g_strerror(e));
      return NULL;
    }
    if (n == 0)
      break;
    len += (gsize) n;
  }
  close(fd);
  buf[len] = '\0';
  return g_steal_pointer(&buf);
}

gint64
vfd_qemu_find_pid(const char *pidfile, const char *id)
{
  g_autofree char *contents = NULL;
  g_autofree char *needle = g_strdup_printf(VFIOD_KEY_SANDBOX "=%s", id);
  gint64 pid;

  /* The pidfile lies in the directory QEMU's user owns: never follow a
   * link, never block on a FIFO, read at most a few bytes. */
  if ((contents = vfd_read_small_file(AT_FDCWD, pidfile, 64, NULL))) {
    pid = g_ascii_strtoll(g_strstrip(contents), NULL, 10);
    if (pid > 0 && cmdline_has(pid, needle))
      return pid;
  }
  /* QEMU may not have written its pidfile yet when vfiod died: look for
   * it by its command line. */
  {
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *name;

    while (proc && (name = g_dir_read_name(proc))) {
      char *end = NULL;
      pid = g_ascii_strtoll(name, &end, 10);
      if (end && !*end && pid > 0 && pid != getpid() && cmdline_has(pid, needle))
        return pid;
    }
  }
  return 0;
}

guint
vfd_host_tsc_khz(void)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents("/proc/cpuinfo", &contents, NULL, NULL))
    return 0;
  lines = g_strsplit(contents, "\n", -1);
  for (char **l = lines; *l; l++) {
    const char *colon = strchr(*l, ':');
    if (g_str_has_prefix(*l, "cpu MHz") && colon)
      return (guint) (g_ascii_strtod(colon + 1, NULL) * 1000.0);
  }
  return 0;
}

int
vfd_proc_start_time(gint64 pid, guint64 *ret)
{
  g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/stat", pid);
  g_autofree char *contents = NULL;
  g_auto(GStrv) fields = NULL;
  const char *p;

  if (pid <= 0)
    return -EINVAL;
  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return -ESRCH;
  /* The command name (field 2) may hold spaces and ')': skip past the last ')'. */
  p = strrchr(contents, ')');
  if (!p)
    return -EINVAL;
  fields = g_strsplit(p + 2, " ", -1);
  /* fields[0] is field 3 (state); field 22 is fields[19]. */
  if (g_strv_length(fields) < 20)
    return -EINVAL;
  /* A zombie (Z) or dead (X) process has exited: not alive to adopt. */
  if (g_str_equal(fields[0], "Z") || g_str_equal(fields[0], "X"))
    return -ESRCH;
  *ret = g_ascii_strtoull(fields[19], NULL, 10);
  return 0;
}
