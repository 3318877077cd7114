/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ready-report.h"

#include <json-glib/json-glib.h>

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
