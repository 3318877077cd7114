/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ready-report.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "error.h"
#include "json-text.h"

gboolean
vfd_report_validate(const char *text, gsize len, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local = NULL;
  const char *end = NULL;
  JsonNode *root;

  if (len > VFD_REPORT_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "report of %" G_GSIZE_FORMAT " bytes, more than %u",
                len, (guint) VFD_REPORT_MAX);
    return FALSE;
  }
  if (!g_utf8_validate(text, (gssize) len, &end)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "report is not UTF-8 (%s at byte %" G_GSIZE_FORMAT ")",
                *end ? "invalid sequence" : "NUL byte", (gsize) (end - text));
    return FALSE;
  }
  if (!vfd_json_text_check(text, len, VFD_REPORT_MAX_DEPTH, &local)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "report refused: %s", local->message);
    return FALSE;
  }
  parser = json_parser_new();
  if (!json_parser_load_from_data(parser, text, (gssize) len, &local)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "report is not JSON: %s", local->message);
    return FALSE;
  }
  root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "report is not a JSON object");
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_serial_scan(GString *pending, const char *data, gsize len, char **ret_report)
{
  static const char tag[] = "VFIOD_READY ";
  const gsize tag_len = sizeof tag - 1;
  const gsize keep = 64 * 1024;
  gsize start = 0; /* first byte of the line looked at */
  gboolean found = FALSE;

  /* Linear: each line is searched once, with an index; the consumed lines
   * are erased from @pending once, at the end (erasing line by line moved
   * the rest of the buffer for every line: quadratic on newline-dense
   * output, issue 13 finding 6). */
  g_string_append_len(pending, data, (gssize) len);
  while (start < pending->len) {
    const char *line = pending->str + start;
    const char *nl = memchr(line, '\n', pending->len - start);
    const char *end, *at;

    if (!nl)
      break;
    /* The line as a C string: up to its first NUL byte, if any. */
    end = memchr(line, '\0', (gsize) (nl - line));
    if (!end)
      end = nl;
    at = memmem(line, (gsize) (end - line), tag, tag_len);
    start = (gsize) (nl - pending->str) + 1;
    if (at) {
      /* The guest is hostile: what it wrote is stored and served as a D-Bus
       * string, which must be UTF-8. Invalid sequences become U+FFFD. */
      at += tag_len;
      *ret_report = g_strchomp(g_utf8_make_valid(at, (gssize) (end - at)));
      found = TRUE;
      break;
    }
  }
  g_string_erase(pending, 0, (gssize) start);
  if (!found && pending->len > keep)
    g_string_erase(pending, 0, (gssize) (pending->len - keep));
  return found;
}
