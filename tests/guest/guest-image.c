/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-image: packs a test initramfs with the project's packer
 * (vfd_initramfs_build(), the same code vfiod uses), so that the guest tests
 * boot the image layout guest-init really gets: /init, /dev/console, the API
 * directories, plus the files named on the command line.
 *
 *   guest-image OUTPUT INIT [SOURCE=DEST[:MODE]]...
 *
 * MODE is octal (e.g. 0755); without it the source's own bits are kept.
 * Exit 0 on success, 1 when packing failed, 2 on bad usage. */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "initramfs.h"

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree VfdInitramfsFile *files = NULL;
  int n = argc - 3;

  if (argc < 3) {
    fprintf(stderr, "usage: %s OUTPUT INIT [SOURCE=DEST[:MODE]]...\n", argv[0]);
    return 2;
  }
  files = g_new0(VfdInitramfsFile, n > 0 ? n : 1);
  for (int i = 0; i < n; i++) {
    char *spec = argv[3 + i];
    char *eq = strchr(spec, '=');
    char *colon;

    if (!eq || eq == spec || eq[1] != '/') {
      fprintf(stderr, "%s: bad file spec '%s' (want SOURCE=/DEST[:MODE])\n", argv[0], spec);
      return 2;
    }
    *eq = '\0';
    files[i].source = spec;
    files[i].dest = eq + 1;
    colon = strchr(eq + 1, ':');
    if (colon) {
      char *end;
      unsigned long mode;

      *colon = '\0';
      errno = 0;
      mode = strtoul(colon + 1, &end, 8);
      if (errno != 0 || *end != '\0' || end == colon + 1 || mode > 07777) {
        fprintf(stderr, "%s: bad mode in '%s'\n", argv[0], argv[3 + i]);
        return 2;
      }
      files[i].mode = (guint) mode;
    }
  }
  if (!vfd_initramfs_build(argv[1], argv[2], files, (gsize) n, &error)) {
    fprintf(stderr, "%s: %s\n", argv[0], error->message);
    return 1;
  }
  return 0;
}
