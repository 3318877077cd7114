/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A libvirt domain's XML, read back by vfiod (vfd_libvirt_domain_hostdevs(),
 * vfiod/vm/libvirt-xml.c): the start-up and the Reconcile call read every
 * domain on the host ([vm] backend = libvirt) and `vfioctl doctor` every
 * domain at its libvirt URI. libvirt writes the XML, but other users'
 * domains carry their own names, metadata and descriptions. Input: the
 * XML, any bytes.
 *
 * Checks: never a crash, leak or GLib critical; every function found has
 * a bus, slot and function in range (bus <= 0xff, slot <= 0x1f, function
 * <= 7) and formats as a BDF that parses back to itself. */
#define FUZZ_GLIB
#include "bdf.h"
#include "fuzz-common.h"
#include "libvirt-xml.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_glib_init();
  return 0;
}

static void
check(GArray *found)
{
  for (guint i = 0; i < found->len; i++) {
    const VfdBdf *b = &g_array_index(found, VfdBdf, i);
    char text[VFD_BDF_STRLEN];
    VfdBdf back;

    FUZZ_CHECK(b->dev <= 0x1f && b->func <= 7);
    FUZZ_CHECK(vfd_bdf_parse(vfd_bdf_format(b, text), &back) == 0);
    FUZZ_CHECK(vfd_bdf_equal(b, &back));
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *xml = fuzz_strndup(data, size);
  GArray *managed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  GArray *unmanaged = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  vfd_libvirt_domain_hostdevs(xml, managed, unmanaged);
  check(managed);
  check(unmanaged);
  g_array_unref(managed);
  g_array_unref(unmanaged);
  free(xml);
  return 0;
}
