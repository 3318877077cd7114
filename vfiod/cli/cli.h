/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfioctl: the operator's command line. Returns the process exit status:
 * 0 success, 1 the operation failed, 2 bad usage or input. */
int vfd_cli_main(int argc, char **argv);

#define VFD_EXIT_OK 0
#define VFD_EXIT_FAILED 1
#define VFD_EXIT_USAGE 2

typedef struct _VfdManager1 VfdManager1;
typedef struct _GError GError;

/* A proxy of vfiod's API over the socket @socket_path; NULL with @error
 * (vfiod's own words when it refused the connection). */
VfdManager1 *vfd_cli_connect(const char *socket_path, GError **error);
