/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* A PCI address: domain (16 bit as printed by Linux sysfs, 0000-ffff),
 * bus 00-ff, device 00-1f, function 0-7. */
typedef struct {
  guint16 domain;
  guint8 bus;
  guint8 dev;
  guint8 func;
} VfdBdf;

/* "DDDD:BB:DD.F" plus NUL. */
#define VFD_BDF_STRLEN 13

/* Parses exactly "DDDD:BB:DD.F": 4 hex digits, ':', 2 hex digits, ':',
 * 2 hex digits (<= 1f), '.', one digit 0-7; hex is case-insensitive; nothing
 * before or after (no whitespace, no newline). Returns 0 and fills @ret on
 * success, -EINVAL otherwise (@ret untouched). @s may be NULL (-EINVAL). */
int vfd_bdf_parse(const char *s, VfdBdf *ret);

/* Formats @bdf as lower-case "dddd:bb:dd.f" into @buf (VFD_BDF_STRLEN bytes).
 * Returns @buf. */
char *vfd_bdf_format(const VfdBdf *bdf, char buf[VFD_BDF_STRLEN]);

/* Orders BDFs by domain, bus, device, function (qsort/GArray compare). */
int vfd_bdf_compare(const void *a, const void *b);

bool vfd_bdf_equal(const VfdBdf *a, const VfdBdf *b);
