/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfioctl: the operator's command line. Returns the process exit status:
 * 0 success, 1 the operation failed, 2 bad usage or input. */
int vfd_cli_main(int argc, char **argv);

/* vfioctl-tool: vfd_cli_main() with the verbs that need libarchive,
 * libkmod, libpci, libnl and libnftables (doctor, pool, initramfs build,
 * image build) run in this process; vfioctl execs it, with vfioctl's argv,
 * for those. Same exit statuses. */
int vfd_cli_tool_main(int argc, char **argv);

/* The vfioctl-tool that vfioctl runs: "vfioctl-tool" in the directory of
 * the running program (/proc/self/exe: a build tree, or a copy of one)
 * when it is an executable file there, else <libexecdir>/vfiod/vfioctl-tool
 * (VFIOD_LIBEXECDIR). No environment variable is looked at. A new string. */
char *vfd_cli_tool_path(void);

#define VFD_EXIT_OK 0
#define VFD_EXIT_FAILED 1
#define VFD_EXIT_USAGE 2

typedef struct _VfdManager1 VfdManager1;
typedef struct _GError GError;

/* A proxy of vfiod's API over the socket @socket_path; NULL with @error
 * (vfiod's own words when it refused the connection). */
VfdManager1 *vfd_cli_connect(const char *socket_path, GError **error);
