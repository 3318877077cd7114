/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl-tool: the verbs of vfioctl that need libarchive, libkmod, libpci,
 * libnl or libnftables, run in this process; vfioctl execs it for them
 * with its own argv (cli-tool-verbs.c, cli.c). */
#include "cli-private.h"

extern const VfdCliVerb vfd_cli_tool_doctor, vfd_cli_tool_pool, vfd_cli_tool_initramfs_build,
    vfd_cli_tool_image_build;

const VfdCliVerb *const vfd_cli_tool_verbs[] = {
  &vfd_cli_tool_doctor,
  &vfd_cli_tool_pool,
  &vfd_cli_tool_initramfs_build,
  &vfd_cli_tool_image_build,
  NULL,
};

int
vfd_cli_tool_main(int argc, char **argv)
{
  return vfd_cli_run(argc, argv, vfd_cli_tool_verbs);
}
