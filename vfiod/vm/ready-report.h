/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* guest-init's ready report, "VFIOD_READY <report>", as vfiod receives it
 * from a guest (hostile) on the serial console (vfd_serial_scan()
 * below) or over vsock (report-conn.h). vfiod stores the
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

/* Scans console output for guest-init's readiness line. @pending holds the
 * partial last line between calls (at most 64 KiB are kept); @data/@len is
 * the new output. Returns TRUE and the JSON text after "VFIOD_READY " in
 * *@ret_report (newly allocated, always valid UTF-8: invalid sequences from
 * the guest become U+FFFD) when a complete ready line is found; the lines
 * after it stay in @pending. A line is searched up to its first NUL byte.
 * Linear in @len plus at most 64 KiB of kept partial line per call
 * (newline-dense output costs no more than any other). The report is not
 * validated here (vfd_report_validate(), above, does that). */
gboolean vfd_serial_scan(GString *pending, const char *data, gsize len, char **ret_report);

/* The tags of guest-init's result lines (guest-init/README.md): the
 * workload ended (status, signal) or set-up failed (error). */
#define VFD_EXIT_TAG "VFIOD_EXIT "
#define VFD_FATAL_TAG "VFIOD_FATAL "

/* vfd_serial_scan() for any of @tags (NULL-terminated, each ending in a
 * space like VFD_REPORT_TAG): the first line holding one of them gives
 * the text after the tag in *@ret_text and the tag's index in *@ret_tag
 * (may be NULL); a line holding two is taken for the first of @tags. The
 * same bounds as vfd_serial_scan(). */
gboolean vfd_serial_scan_tags(GString *pending, const char *data, gsize len, const char *const *tags, guint *ret_tag,
                              char **ret_text);

/* The workload's result from the text after VFD_EXIT_TAG (validated as
 * vfd_report_validate() does): "status" 0-255 and "signal" 0-127 (absent:
 * 0). FALSE with @error when it is not such a report. */
gboolean vfd_exit_report_parse(const char *text, int *ret_status, int *ret_signal, GError **error);

/* The reason from the text after VFD_FATAL_TAG: its "error" string, cut
 * to at most @max bytes (a whole UTF-8 character), control characters
 * replaced by spaces; the whole text (cut the same way) when it is no
 * such report. Newly allocated, never NULL. */
char *vfd_fatal_report_reason(const char *text, gsize max);
