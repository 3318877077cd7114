/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

/* Packing the guest initramfs: a gzip-compressed newc cpio archive written
 * with libarchive, as the Linux initramfs unpacker expects it. */

/* One host file to put into the image. */
typedef struct {
  const char *source; /* host path of a regular file; a symlink is refused, not followed */
  const char *dest;   /* absolute path inside the image, e.g. "/init" or "/lib/modules/x.ko" */
  guint mode;         /* permission bits, at most 07777; 0 takes the source's own bits */
} VfdInitramfsFile;

/* Writes a gzip-compressed newc cpio archive to @output: a temporary file
 * (".<name>.XXXXXX") in the same directory is written, fsync'ed and renamed
 * over @output, then the directory is fsync'ed; on any error the temporary
 * file is removed and @output is left as it was.
 *
 * The image holds:
 *  - @init_path as "/init", mode 0755 (the kernel runs it as PID 1);
 *  - the @n_extra files of @extra (@extra may be NULL when @n_extra is 0);
 *  - a directory, mode 0755, for every parent of every file;
 *  - the directories /dev, /proc, /sys, /run, /tmp (0755) and the character
 *    device /dev/console (5:1, mode 0600), so PID 1 has a console from its
 *    first instruction.
 * It is deterministic: entries sorted by path, mtime 0, uid/gid 0, inode
 * numbers by position, no gzip timestamp; equal inputs give equal bytes.
 *
 * Errors (G_IO_ERROR domain):
 *  - G_IO_ERROR_INVALID_ARGUMENT, naming the path: a source that is a
 *    symlink or not a regular file; a source or dest with a ".." component;
 *    a dest that is not absolute, has empty or "." components, or is "/";
 *    two entries for the same dest, or a dest that is also another file's
 *    parent directory (e.g. "/dev" as a file); a mode with bits above 07777.
 *  - the errno-derived code (G_IO_ERROR_NOT_FOUND for a missing source, ...)
 *    when a source cannot be opened or read, or @output cannot be written.
 *  - G_IO_ERROR_FAILED when libarchive fails, with its message.
 * Sources are all opened and checked before @output's directory is touched. */
gboolean vfd_initramfs_build(const char *output, const char *init_path,
                             const VfdInitramfsFile *extra, gsize n_extra, GError **error);
