/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bdf.h"

#include <errno.h>
#include <stdio.h>

#include "guest-init/hex.h"

/* Reads exactly @n hex digits from @s; -1 when any is not hex. */
static int
hexn(const char *s, int n)
{
  int v = 0;

  for (int i = 0; i < n; i++) {
    int d = gi_hex_digit(s[i]);
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

int
vfd_bdf_parse(const char *s, VfdBdf *ret)
{
  int domain, bus, dev, func;

  if (!s)
    return -EINVAL;
  /* Length check first: everything below indexes fixed offsets. */
  for (int i = 0; i < VFD_BDF_STRLEN - 1; i++)
    if (s[i] == '\0')
      return -EINVAL;
  if (s[VFD_BDF_STRLEN - 1] != '\0')
    return -EINVAL;
  if (s[4] != ':' || s[7] != ':' || s[10] != '.')
    return -EINVAL;

  domain = hexn(s, 4);
  bus = hexn(s + 5, 2);
  dev = hexn(s + 8, 2);
  func = (s[11] >= '0' && s[11] <= '7') ? s[11] - '0' : -1;
  if (domain < 0 || bus < 0 || dev < 0 || dev > 0x1f || func < 0)
    return -EINVAL;

  ret->domain = (guint16) domain;
  ret->bus = (guint8) bus;
  ret->dev = (guint8) dev;
  ret->func = (guint8) func;
  return 0;
}

char *
vfd_bdf_format(const VfdBdf *bdf, char buf[VFD_BDF_STRLEN])
{
  snprintf(buf, VFD_BDF_STRLEN, "%04x:%02x:%02x.%x", bdf->domain & 0xffffu, bdf->bus & 0xffu, bdf->dev & 0x1fu,
           bdf->func & 0x7u);
  return buf;
}

int
vfd_bdf_compare(const void *a, const void *b)
{
  const VfdBdf *x = a, *y = b;

  if (x->domain != y->domain)
    return x->domain < y->domain ? -1 : 1;
  if (x->bus != y->bus)
    return x->bus < y->bus ? -1 : 1;
  if (x->dev != y->dev)
    return x->dev < y->dev ? -1 : 1;
  if (x->func != y->func)
    return x->func < y->func ? -1 : 1;
  return 0;
}

bool
vfd_bdf_equal(const VfdBdf *a, const VfdBdf *b)
{
  return vfd_bdf_compare(a, b) == 0;
}
