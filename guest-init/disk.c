/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

#define SERIAL_READ_MAX 64

/* Reads @path's first line into @buf (NUL-terminated, newline dropped).
 * Returns 0 or -errno. */
static int
read_serial(const char *path, char *buf, size_t size)
{
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return -errno;
  do
    n = read(fd, buf, size - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n < 0)
    return -errno;
  buf[n] = '\0';
  if (n > 0 && buf[n - 1] == '\n')
    buf[n - 1] = '\0';
  return 0;
}

int
gi_disk_resolve(const char *spec, const char *sys_block, char *dev, size_t dev_size)
{
  const size_t prefix = sizeof(VFIOD_DISK_BY_SERIAL) - 1;
  const char *serial;
  struct dirent *de;
  int r = -ENOENT;
  DIR *d;

  if (!vfiod_cmdline_disk_valid(spec))
    return -EINVAL;
  if (spec[0] == '/') {
    if ((size_t) snprintf(dev, dev_size, "%s", spec) >= dev_size)
      return -ENAMETOOLONG;
    return 0;
  }
  serial = spec + prefix;
  d = opendir(sys_block);
  if (!d)
    return -errno;
  while ((de = readdir(d))) {
    char path[512], got[SERIAL_READ_MAX + 1];

    if (de->d_name[0] == '.')
      continue;
    if ((size_t) snprintf(path, sizeof(path), "%s/%s/serial", sys_block, de->d_name) >= sizeof(path))
      continue;
    if (read_serial(path, got, sizeof(got)) < 0 || strcmp(got, serial) != 0)
      continue;
    r = (size_t) snprintf(dev, dev_size, "/dev/%s", de->d_name) >= dev_size ? -ENAMETOOLONG : 0;
    break;
  }
  closedir(d);
  return r;
}
