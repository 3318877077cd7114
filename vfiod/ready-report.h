/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* guest-init's ready report, "VFIOD_READY <report>", as vfiod receives it
 * from a guest (hostile) on the serial console (sandbox.c
 * vfd_serial_scan()) or over vsock (report-conn.h). vfiod stores the
 * report text and serves it as the D-Bus string "ready_report" of
 * GetSandbox/ListSandboxes; `vfioctl --json` parses it with json-glib.
 * So it is validated before it is stored (issue 13, findings 3 and 6). */

/* The line tag guest-init prints before the report (guest-init/report.h). */
#define VFD_REPORT_TAG "VFIOD_READY "

/* At most this many bytes of report text (after the tag, without the
 * newline). guest-init's report is a few KiB; the console scanner keeps at
 * most 64 KiB of a line too. */
#define VFD_REPORT_MAX (64 * 1024)

/* A report line: the tag, the report, some slack for a prefix on the
 * same line (the console can have firmware output before the tag). */
#define VFD_REPORT_LINE_MAX (VFD_REPORT_MAX + 256)

/* Arrays and objects nest at most this deep (a report is 3 deep).
 * json-glib recurses per level and overflows its stack at ~80,000. */
#define VFD_REPORT_MAX_DEPTH 32

/* Checks a report (@text/@len; the text after VFD_REPORT_TAG, need not be
 * NUL-terminated) before it is stored, in this order:
 *  - at most VFD_REPORT_MAX bytes, else VFD_ERROR_LIMIT_EXCEEDED;
 *  - valid UTF-8 without NUL bytes (a D-Bus string must be);
 *  - vfd_json_text_check() with VFD_REPORT_MAX_DEPTH: one JSON object,
 *    nested at most 32 deep, sound string escapes, before json-glib sees it;
 *  - json-glib parses it, and its root is an object.
 * The last three fail with VFD_ERROR_INVALID_ARGUMENT. The message says
 * what is wrong (and where, as a byte offset), without quoting the report.
 * Costs one linear pass and one json-glib parse of at most 64 KiB. */
gboolean vfd_report_validate(const char *text, gsize len, GError **error);
