/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Structured log messages: what vfiod did to a device or a sandbox, with
 * journal fields an operator can filter on (issue 16, item 5):
 *
 *   journalctl -u vfiod VFIOD_BDF=0000:01:00.0
 *   journalctl -u vfiod VFIOD_SANDBOX=sb-1a2b3c4d
 *   journalctl -u vfiod VFIOD_OWNER=sb-1a2b3c4d
 *
 * Under systemd (stderr is the journal's stream: $JOURNAL_STREAM) GLib's
 * default writer sends the fields to journald; anywhere else the message is
 * printed as any g_message()/g_warning() is, without the fields. */

#include <glib.h>

/* One message, at @level (G_LOG_LEVEL_WARNING, _MESSAGE, _INFO, _DEBUG),
 * with the fields VFIOD_SANDBOX=@sandbox (a sandbox id), VFIOD_OWNER=@owner
 * (the owner string of a binding: a sandbox id or an operator's name) and
 * one VFIOD_BDF=<bdf> per entry of @bdfs (BDF strings, "0000:01:00.0";
 * NULL-terminated). Each may be NULL: that field is left out. PRIORITY is
 * set from @level (syslog numbers, as GLib does), MESSAGE from @format. */
void vfd_log_fields(GLogLevelFlags level, const char *sandbox, const char *owner, const char *const *bdfs,
                    const char *format, ...) G_GNUC_PRINTF(5, 6);

/* As vfd_log_fields() with at most one BDF. */
#define vfd_log_device(level, sandbox, owner, bdf, ...)                                                                \
  vfd_log_fields((level), (sandbox), (owner), (const char *const[]){ (bdf), NULL }, __VA_ARGS__)
