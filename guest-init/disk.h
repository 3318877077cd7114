/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* The disks vfiod attaches, found by what vfiod.root= and vfiod.driver= say
 * (guest-init/protocol.h, "disks"). */

/* The kernel's block devices. */
#define GI_SYS_BLOCK "/sys/block"

/* Resolves @spec, a value vfiod_cmdline_disk_valid() accepts, to a device
 * node path in @dev (@dev_size bytes): "/dev/NAME" is itself;
 * "virtio:SERIAL" is "/dev/NAME" of the entry NAME of @sys_block (the
 * kernel's /sys/block, a parameter for the tests) whose "serial" attribute
 * (virtio_blk's, no newline; one trailing newline is ignored) is SERIAL.
 * Reads at most 64 bytes of each serial. Returns 0; -ENOENT when no disk
 * has that serial (yet: the caller waits); -EINVAL for a bad @spec;
 * -ENAMETOOLONG when @dev is too small; -errno when @sys_block cannot be
 * read. When two disks carry the serial, the first in directory order is
 * taken and -EEXIST is not reported: vfiod never sets one twice. */
int gi_disk_resolve(const char *spec, const char *sys_block, char *dev, size_t dev_size);
