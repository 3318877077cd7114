/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* A check of JSON text written by someone else (the journal on disk, a
 * guest's ready report) BEFORE json-glib parses it.
 *
 * json-glib parses recursively, one stack frame per nesting level, and
 * overflows the stack at some 80,000 levels ("[[[[..."); json-glib 1.6
 * accepts several top-level values ("{...} {...}"), keeps the last and leaks
 * the others; and it leaks a buffer on a malformed "\u" escape. This check
 * keeps all of that away from it. It is a single linear pass, no
 * allocation, no recursion. */

/* Checks that @data/@len (need not be NUL-terminated; a NUL byte is
 * refused) is one JSON object with only JSON whitespace around it, whose
 * arrays and objects nest at most @max_depth deep (the top-level object is
 * depth 1; brackets inside strings do not count), whose strings hold no
 * raw control byte (< 0x20) and only the escapes JSON defines
 * (\" \\ \/ \b \f \n \r \t \uXXXX), with a UTF-16 high surrogate escape
 * always followed by a low one and no low one alone (so the unescaped
 * strings are UTF-8), and whose strings are all closed.
 * It does not check the rest of the grammar (commas, colons, literals,
 * numbers): json-glib does, safely, once this passed.
 * Returns TRUE, or FALSE with VFD_ERROR_INVALID_ARGUMENT and a message
 * saying what is wrong and at which byte offset (e.g. "nested deeper than
 * 32 levels at byte 31"). The caller picks the error code it reports. */
gboolean vfd_json_text_check(const char *data, gsize len, guint max_depth, GError **error);
