/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_bdf_parse() (vfiod/common/bdf.c): every BDF a client, the journal or sysfs
 * hands the daemon. Checks: only exactly "DDDD:BB:DD.F" is accepted, a
 * refusal is -EINVAL and leaves the output untouched, and an accepted BDF
 * formats back to the input (up to case) and parses again to itself. */
#include <errno.h>

#include "bdf.h"
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = fuzz_strndup(data, size);
  VfdBdf bdf, untouched, again;
  char buf[VFD_BDF_STRLEN];
  int r;

  memset(&bdf, 0xa5, sizeof bdf);
  untouched = bdf;
  r = vfd_bdf_parse(s, &bdf);
  if (r < 0) {
    FUZZ_CHECK(r == -EINVAL);
    FUZZ_CHECK(memcmp(&bdf, &untouched, sizeof bdf) == 0);
    free(s);
    return 0;
  }
  FUZZ_CHECK(r == 0);
  FUZZ_CHECK(strlen(s) == VFD_BDF_STRLEN - 1);
  FUZZ_CHECK(bdf.dev <= 0x1f && bdf.func <= 7);
  vfd_bdf_format(&bdf, buf);
  FUZZ_CHECK(g_ascii_strcasecmp(buf, s) == 0);
  FUZZ_CHECK(vfd_bdf_parse(buf, &again) == 0);
  FUZZ_CHECK(vfd_bdf_equal(&bdf, &again) && vfd_bdf_compare(&bdf, &again) == 0);
  free(s);
  return 0;
}
