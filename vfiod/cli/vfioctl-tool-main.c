/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl-tool (<libexecdir>/vfiod): what vfioctl execs for doctor, pool,
 * initramfs build and image build, with vfioctl's own argv. */
#include <locale.h>

#include "cli.h"

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  return vfd_cli_tool_main(argc, argv);
}
