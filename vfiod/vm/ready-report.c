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
vfd_serial_scan_tags(GString *pending, const char *data, gsize len, const char *const *tags, guint *ret_tag,
                     char **ret_text)
{
  const gsize keep = 64 * 1024;
  gsize start = 0; /* first byte of the line looked at */
  gboolean found = FALSE;

  /* Linear: each line is searched once per tag, with an index; the consumed
   * lines are erased from @pending once, at the end (erasing line by line
   * moved the rest of the buffer for every line: quadratic on
   * newline-dense output, issue 13 finding 6). */
  g_string_append_len(pending, data, (gssize) len);
  while (start < pending->len && !found) {
    const char *line = pending->str + start;
    const char *nl = memchr(line, '\n', pending->len - start);
    const char *end;

    if (!nl)
      break;
    /* The line as a C string: up to its first NUL byte, if any. */
    end = memchr(line, '\0', (gsize) (nl - line));
    if (!end)
      end = nl;
    start = (gsize) (nl - pending->str) + 1;
    for (guint t = 0; tags[t]; t++) {
      gsize tag_len = strlen(tags[t]);
      const char *at = memmem(line, (gsize) (end - line), tags[t], tag_len);
      if (!at)
        continue;
      /* The guest is hostile: what it wrote is stored and served as a D-Bus
       * string, which must be UTF-8. Invalid sequences become U+FFFD. */
      at += tag_len;
      *ret_text = g_strchomp(g_utf8_make_valid(at, (gssize) (end - at)));
      if (ret_tag)
        *ret_tag = t;
      found = TRUE;
      break;
    }
  }
  g_string_erase(pending, 0, (gssize) start);
  if (!found && pending->len > keep)
    g_string_erase(pending, 0, (gssize) (pending->len - keep));
  return found;
}

gboolean
vfd_serial_scan(GString *pending, const char *data, gsize len, char **ret_report)
{
  static const char *const tags[] = { VFD_REPORT_TAG, NULL };

  return vfd_serial_scan_tags(pending, data, len, tags, NULL, ret_report);
}

gboolean
vfd_exit_report_parse(const char *text, int *ret_status, int *ret_signal, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  JsonObject *o;
  JsonNode *n;
  gint64 status, sig = 0;

  if (!vfd_report_validate(text, strlen(text), error) || !json_parser_load_from_data(parser, text, -1, error))
    return FALSE;
  o = json_node_get_object(json_parser_get_root(parser));
  n = json_object_get_member(o, "status");
  if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
      (status = json_node_get_int(n)) < 0 || status > 255) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "exit report: \"status\" is not 0 to 255");
    return FALSE;
  }
  n = json_object_get_member(o, "signal");
  if (n && (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
            (sig = json_node_get_int(n)) < 0 || sig > 127)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "exit report: \"signal\" is not 0 to 127");
    return FALSE;
  }
  *ret_status = (int) status;
  *ret_signal = (int) sig;
  return TRUE;
}

char *
vfd_fatal_report_reason(const char *text, gsize max)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  const char *reason = text;
  GString *out = g_string_new(NULL);

  if (vfd_report_validate(text, strlen(text), NULL) && json_parser_load_from_data(parser, text, -1, NULL)) {
    JsonObject *o = json_node_get_object(json_parser_get_root(parser));
    JsonNode *n = json_object_get_member(o, "error");
    if (n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING)
      reason = json_node_get_string(n);
  }
  /* text is valid UTF-8 (vfd_serial_scan_tags() made it so), and so is a
   * string json-glib parsed */
  for (const char *p = reason; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    gsize n = (gsize) (g_utf8_next_char(p) - p);
    if (out->len + n > max)
      break;
    if (g_unichar_iscntrl(c))
      g_string_append_c(out, ' ');
    else
      g_string_append_len(out, p, (gssize) n);
  }
  return g_string_free(out, FALSE);
}
