/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* pins.env and versions.env: the build pins, read by shell (`. pins.env`)
 * and by C with the same result. The format, documented at the top of
 * pins.env and in kernel-modules/README.md:
 *
 *   - one entry per line: KEY=value, nothing before KEY, no spaces;
 *   - KEY is [A-Za-z_][A-Za-z0-9_]*;
 *   - value is a non-empty plain token of [A-Za-z0-9] and ._+-:/@%,=
 *     (no quotes, spaces, '$', '`', '\', '~', '#', ...: characters a shell
 *     would expand, quote or split, so `. FILE` gives the same string);
 *   - a line whose first character is '#' is a comment; empty lines are
 *     ignored; every other line is an error;
 *   - a KEY may appear once.
 * Anything else is refused with the line number: the file must mean the
 * same to bash and to C. */

/* Parses @data (@len bytes, or -1 for NUL-terminated) into a new table of
 * KEY -> value (both owned by the table). @name is used in messages.
 * Errors: G_IO_ERROR_INVALID_DATA naming "@name:LINE". */
gboolean vfd_pins_parse(const char *data, gssize len, const char *name, GHashTable **ret,
                        GError **error);

/* Reads and parses the file at @path; errors as above, or the errno-derived
 * G_IO_ERROR code when it cannot be read. */
gboolean vfd_pins_load(const char *path, GHashTable **ret, GError **error);

/* The value of @key, or NULL with G_IO_ERROR_NOT_FOUND naming @key and
 * @name (the file, for the message). */
const char *vfd_pins_require(GHashTable *pins, const char *key, const char *name, GError **error);
