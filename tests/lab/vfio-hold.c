/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfio-hold BDF: the lab's "busy device" (tests/lab/README.md, check h).
 *
 * Opens a VFIO *device* fd for the PCI function BDF (which must be on
 * vfio-pci, its whole IOMMU group viable) the way a VMM does: /dev/vfio/vfio,
 * /dev/vfio/<group>, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU (type1v2, else
 * type1), VFIO_GROUP_GET_DEVICE_FD. It registers no request eventfd, so the
 * kernel cannot ask it to let go: an unbind of BDF from vfio-pci then blocks
 * (the writer of driver/unbind sits in D state; dmesg says "No device request
 * channel registered, blocked until released by user") until this process
 * closes the fd. Prints "holding BDF group N" once it holds the device, then
 * waits for SIGTERM or SIGINT and exits 0. Exit 1 on any failure (with a
 * message on stderr), 2 on bad usage.
 *
 * Linux only, no dependencies beyond libc and the kernel's UAPI headers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int
fail(const char *what, const char *arg)
{
  int e = errno;
  fprintf(stderr, "vfio-hold: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(e));
  return 1;
}

int
main(int argc, char **argv)
{
  char link[256], target[PATH_MAX], path[64];
  const char *bdf, *group;
  struct vfio_group_status status = { .argsz = sizeof(status) };
  sigset_t set;
  ssize_t n;
  int container, groupfd, devfd, sig;

  if (argc != 2 || argv[1][0] == '-' || strchr(argv[1], '/') || strlen(argv[1]) > 32) {
    fprintf(stderr, "usage: vfio-hold DDDD:BB:DD.F\n");
    return 2;
  }
  bdf = argv[1];

  /* Block the signals before anything, so none is lost before sigwait. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);

  snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
  n = readlink(link, target, sizeof(target) - 1);
  if (n < 0)
    return fail("cannot read", link);
  target[n] = '\0';
  group = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
  if (strlen(group) > 16) {
    fprintf(stderr, "vfio-hold: odd IOMMU group link %s\n", target);
    return 1;
  }

  container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  if (container < 0)
    return fail("cannot open", "/dev/vfio/vfio");
  if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
    fprintf(stderr, "vfio-hold: unexpected VFIO API version\n");
    return 1;
  }
  snprintf(path, sizeof(path), "/dev/vfio/%s", group);
  groupfd = open(path, O_RDWR | O_CLOEXEC);
  if (groupfd < 0)
    return fail("cannot open", path);
  if (ioctl(groupfd, VFIO_GROUP_GET_STATUS, &status) < 0)
    return fail("VFIO_GROUP_GET_STATUS on", path);
  if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
    fprintf(stderr, "vfio-hold: IOMMU group %s is not viable (not all its devices are on vfio-pci)\n", group);
    return 1;
  }
  if (ioctl(groupfd, VFIO_GROUP_SET_CONTAINER, &container) < 0)
    return fail("VFIO_GROUP_SET_CONTAINER on", path);
  if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0 &&
      ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
    return fail("VFIO_SET_IOMMU (type1v2, type1)", NULL);
  devfd = ioctl(groupfd, VFIO_GROUP_GET_DEVICE_FD, bdf);
  if (devfd < 0)
    return fail("VFIO_GROUP_GET_DEVICE_FD", bdf);

  printf("holding %s group %s (device fd %d, pid %d)\n", bdf, group, devfd, (int) getpid());
  fflush(stdout);

  for (;;) {
    if (sigwait(&set, &sig) == 0)
      break;
  }
  close(devfd);
  close(groupfd);
  close(container);
  return 0;
}
