/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading /proc: processes (QEMU's by its command line, a process's start
 * time), the host CPU's TSC rate, and small files in directories others
 * may write. */

#include <glib.h>

/* Reads at most @max bytes of @path (relative to @dirfd, or AT_FDCWD) into
 * a new NUL-terminated string, never following a symbolic link as the last
 * component, never blocking (O_NONBLOCK: a FIFO is refused, not waited on),
 * only from a regular file. For files in directories someone else may
 * write (QEMU's pidfile). NULL with a G_FILE_ERROR otherwise. */
char *vfd_read_small_file(int dirfd, const char *path, gsize max, GError **error);

/* The QEMU of sandbox @id (a live process whose command line holds
 * "vfiod.sandbox=<id>"): the pid in @pidfile when it is that process, else
 * the first such process found in /proc (QEMU may not have written the
 * pidfile yet); 0 when there is none. */
gint64 vfd_qemu_find_pid(const char *pidfile, const char *id);

/* Start time of @pid: /proc/<pid>/stat field 22 (clock ticks after boot),
 * which together with the pid identifies a process. -ESRCH when gone or a
 * zombie (exited, not yet reaped). */
int vfd_proc_start_time(gint64 pid, guint64 *ret);

/* The host's TSC rate in kHz, from /proc/cpuinfo ("cpu MHz"); 0 when
 * unknown. Under TCG the guest's TSC runs at the host's rate; telling the
 * guest kernel (tsc_early_khz=) spares it the PIT calibration, which times
 * out on a busy host and stalls a microvm guest at boot. */
guint vfd_host_tsc_khz(void);
