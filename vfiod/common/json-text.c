/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-text.h"

#include <string.h>

#include "error.h"

static gboolean
fail(GError **error, gsize at, const char *what)
{
  g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s at byte %" G_GSIZE_FORMAT, what, at);
  return FALSE;
}

static gboolean
is_json_space(guchar c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Four hex digits at @p (at least 4 bytes readable) -> *@ret. */
static gboolean
hex4(const char *p, guint *ret)
{
  guint v = 0;

  for (int k = 0; k < 4; k++) {
    int d = g_ascii_xdigit_value(p[k]);
    if (d < 0)
      return FALSE;
    v = v << 4 | (guint) d;
  }
  *ret = v;
  return TRUE;
}

/* The string starting with the quote at *@i: on success *@i is just past
 * its closing quote. */
static gboolean
scan_string(const char *data, gsize len, gsize *i, GError **error)
{
  gsize start = *i, k = *i + 1;

  while (k < len) {
    guchar c = (guchar) data[k];

    if (c == '"') {
      *i = k + 1;
      return TRUE;
    }
    if (c == '\0')
      return fail(error, k, "a NUL byte");
    if (c < 0x20)
      return fail(error, k, "a control byte inside a string");
    if (c != '\\') {
      k++;
      continue;
    }
    if (k + 1 >= len)
      break;
    c = (guchar) data[k + 1];
    if (strchr("\"\\/bfnrt", c) && c != '\0') {
      k += 2;
    } else if (c == 'u') {
      guint u, low;
      if (k + 6 > len || !hex4(data + k + 2, &u))
        return fail(error, k, "a malformed \\u escape");
      if (u == 0)
        return fail(error, k, "an escaped NUL (\\u0000)");
      if (u >= 0xdc00 && u <= 0xdfff)
        return fail(error, k, "a UTF-16 low surrogate escape without a high one");
      if (u >= 0xd800 && u <= 0xdbff) {
        if (k + 12 > len || data[k + 6] != '\\' || data[k + 7] != 'u' || !hex4(data + k + 8, &low) ||
            low < 0xdc00 || low > 0xdfff)
          return fail(error, k, "a UTF-16 high surrogate escape without a low one");
        k += 12;
      } else {
        k += 6;
      }
    } else {
      return fail(error, k, "an invalid escape");
    }
  }
  return fail(error, start, "an unterminated string");
}

gboolean
vfd_json_text_check(const char *data, gsize len, guint max_depth, GError **error)
{
  gboolean started = FALSE, closed = FALSE;
  guint depth = 0;
  gsize i = 0;

  while (i < len) {
    guchar c = (guchar) data[i];

    if (c == '\0')
      return fail(error, i, "a NUL byte");
    if (depth == 0) {
      if (is_json_space(c)) {
        i++;
        continue;
      }
      if (closed)
        return fail(error, i, "data after the JSON object");
      if (c != '{')
        return fail(error, i, "not a JSON object");
      if (max_depth < 1)
        return fail(error, i, "nested too deep");
      started = TRUE;
      depth = 1;
      i++;
      continue;
    }
    switch (c) {
    case '"':
      if (!scan_string(data, len, &i, error))
        return FALSE;
      continue;
    case '[':
    case '{':
      if (++depth > max_depth) {
        g_autofree char *what = g_strdup_printf("nested deeper than %u levels", max_depth);
        return fail(error, i, what);
      }
      break;
    case ']':
    case '}':
      if (--depth == 0)
        closed = TRUE;
      break;
    default:
      break;
    }
    i++;
  }
  if (!started)
    return fail(error, len, "no JSON object (empty or only whitespace)");
  if (depth > 0)
    return fail(error, len, "an object or array not closed");
  return TRUE;
}
