/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Hex digits, for guest-init and vfiod alike (vfiod/common/bdf.c): header-only,
 * plain C99, nothing to link (guest-init is a static binary of its own). */

/* The value of hex digit @c (0-9, a-f, A-F), or -1 when it is none. */
static inline int
gi_hex_digit(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}
