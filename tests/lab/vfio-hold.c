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
 * vfio-hold --map-bar N [--unaligned] BDF: the kernel's cost of what a VMM
 * does with a large BAR (lab-bigbar): opens the device as above, mmap()s BAR
 * N from the device fd (at an address aligned to the BAR's size, as QEMU
 * >= 9.2 does so that the kernel can map it with huge pages; --unaligned:
 * 4 KiB-aligned, as older QEMU did), reads one byte of it (the first fault
 * maps it: per 4 KiB page before Linux 6.12's huge pfnmap), then maps the
 * whole BAR for device DMA (VFIO_IOMMU_MAP_DMA, as QEMU does for
 * peer-to-peer) and unmaps it. Prints one JSON line: {"bar":N,"size":BYTES,
 * "aligned":B,"mmap_ms":..,"fault_ms":..,"map_dma_ms":..,"unmap_dma_ms":..}
 * (map_dma_ms null with "map_dma_error" when the kernel refused) and exits 0.
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
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int
fail(const char *what, const char *arg)
{
  int e = errno;
  fprintf(stderr, "vfio-hold: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(e));
  return 1;
}

static double
now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --map-bar: see the head comment. @container is set up (type1). */
static int
map_bar(int container, int devfd, unsigned index, int aligned)
{
  struct vfio_region_info info = { .argsz = sizeof(info), .index = index };
  struct vfio_iommu_type1_dma_map dma = { .argsz = sizeof(dma) };
  struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
  double t0, t_mmap, t_fault, t_map, t_unmap = 0;
  volatile const uint8_t *bar;
  uint8_t *reserve, *at;
  size_t align, span;
  int map_errno = 0;

  if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
    return fail("VFIO_DEVICE_GET_REGION_INFO", NULL);
  if (info.size == 0 || !(info.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
    fprintf(stderr, "vfio-hold: BAR %u is empty or cannot be mmap()ed\n", index);
    return 1;
  }
  /* Reserve twice the size, then map the BAR over the aligned part. */
  align = aligned ? (size_t) info.size : 4096;
  span = (size_t) info.size + align;
  reserve = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserve == MAP_FAILED)
    return fail("mmap (reserve)", NULL);
  at = (uint8_t *) (((uintptr_t) reserve + align - 1) & ~(uintptr_t) (align - 1));
  t0 = now_ms();
  bar = mmap(at, info.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, devfd, (off_t) info.offset);
  if (bar == MAP_FAILED)
    return fail("mmap of the BAR", NULL);
  t_mmap = now_ms();
  (void) bar[0];
  t_fault = now_ms();
  dma.vaddr = (uintptr_t) bar;
  dma.size = info.size;
  dma.iova = info.size; /* any free IOVA, aligned like the BAR */
  dma.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  if (ioctl(container, VFIO_IOMMU_MAP_DMA, &dma) < 0)
    map_errno = errno;
  t_map = now_ms();
  if (!map_errno) {
    unmap.iova = dma.iova;
    unmap.size = dma.size;
    if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
      return fail("VFIO_IOMMU_UNMAP_DMA", NULL);
    t_unmap = now_ms();
  }
  printf("{\"bar\":%u,\"size\":%llu,\"aligned\":%s,\"mmap_ms\":%.1f,\"fault_ms\":%.1f,", index,
         (unsigned long long) info.size, aligned ? "true" : "false", t_mmap - t0, t_fault - t_mmap);
  if (map_errno)
    printf("\"map_dma_ms\":null,\"map_dma_error\":\"%s\",\"unmap_dma_ms\":null}\n", strerror(map_errno));
  else
    printf("\"map_dma_ms\":%.1f,\"unmap_dma_ms\":%.1f}\n", t_map - t_fault, t_unmap - t_map);
  munmap(reserve, span);
  return 0;
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
  int map_index = -1, aligned = 1;

  while (argc > 2 && argv[1][0] == '-') {
    if (strcmp(argv[1], "--map-bar") == 0 && argc > 3 && argv[2][0] >= '0' && argv[2][0] <= '5' && !argv[2][1]) {
      map_index = argv[2][0] - '0';
      argc -= 2;
      argv += 2;
    } else if (strcmp(argv[1], "--unaligned") == 0) {
      aligned = 0;
      argc--;
      argv++;
    } else {
      break;
    }
  }
  if (argc != 2 || argv[1][0] == '-' || strchr(argv[1], '/') || strlen(argv[1]) > 32 ||
      (!aligned && map_index < 0)) {
    fprintf(stderr, "usage: vfio-hold [--map-bar 0-5 [--unaligned]] DDDD:BB:DD.F\n");
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

  if (map_index >= 0)
    return map_bar(container, devfd, (unsigned) map_index, aligned);

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
