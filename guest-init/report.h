/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The machine-readable lines guest-init prints on the console (see
 * guest-init/README.md). Pure formatting: no I/O, no allocation. Every
 * formatter works like snprintf(): it writes at most @size bytes including
 * the NUL into @buf (which may be NULL when @size is 0) and returns the
 * length the whole line needs, without the NUL; the line is complete only
 * when the return value is < @size. Lines end with "\n". Strings are JSON
 * escaped: '"', '\\' and control bytes as escapes, any byte >= 0x80 as
 * "\ufffd", so the JSON is valid whatever the input bytes. */

/* One PCI function as seen in the guest's sysfs. */
typedef struct {
  char bdf[32];        /* directory name under the PCI devices root, e.g. "0000:00:01.0" */
  uint16_t vendor;     /* from its `vendor` attribute */
  uint16_t device;     /* from its `device` attribute */
} GiPciDevice;

/* Orders "DDDD:BB:DD.F" addresses numerically (domain, bus, device,
 * function), for qsort() over GiPciDevice. Names that do not parse sort after
 * the ones that do, by strcmp(). */
int gi_pci_device_compare(const void *a, const void *b);

/* VFIOD_READY {"v":1,"sandbox":"<sandbox>","kernel":"<kernel>",
 *   "uptime_ms":<uptime_ms>,"pci":[{"bdf":"...","id":"vvvv:dddd"},...]}
 * IDs are 4 lower-case hex digits each. @devices is printed in the given
 * order (sort it first); it may be NULL when @n_devices is 0. */
size_t gi_format_ready(char *buf, size_t size, const char *sandbox, const char *kernel,
                       uint64_t uptime_ms, const GiPciDevice *devices, size_t n_devices);

/* VFIOD_POWEROFF {"reason":"<reason>"}, e.g. reason "signal:SIGTERM" or
 * "power-button". */
size_t gi_format_poweroff(char *buf, size_t size, const char *reason);

/* VFIOD_FATAL {"error":"<error>"}. */
size_t gi_format_fatal(char *buf, size_t size, const char *error);
