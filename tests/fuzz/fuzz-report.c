/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest's ready report, from the guest to the operator: a hostile
 * guest sends "VFIOD_READY <report>" over vsock (the bytes as they come,
 * after the bounded reader, report-conn.c) or prints it on the console
 * (vfd_serial_scan(), vfiod/vm/ready-report.c, which makes it UTF-8
 * first). Either way vfiod validates the report before it stores it
 * (vfd_report_validate(), vfiod/vm/ready-report.c, called by sandbox-object.c's
 * sandbox_mark_ready()), serves it as the D-Bus string "ready_report" of
 * GetSandbox/ListSandboxes, and `vfioctl sandbox show/list --json` parses
 * it with json-glib to embed it (cli.c add_object(), static: its steps are
 * repeated here). Input: the report text, any bytes.
 *
 * Checks, for both paths: the validator never crashes, leaks or raises a
 * GLib critical (json-glib runs inside it: the pre-check must keep its
 * stack overflow, its leaks and its criticals away); a refusal is
 * LIMIT_EXCEEDED (only for more than VFD_REPORT_MAX bytes) or
 * INVALID_ARGUMENT; what it accepts is at most VFD_REPORT_MAX bytes of
 * UTF-8 without NUL, a valid D-Bus string (g_variant_new_string() is a
 * GLib critical otherwise), parses with json-glib to an object nested at
 * most VFD_REPORT_MAX_DEPTH deep whose strings are all UTF-8 once
 * unescaped, and vfioctl's embedding of it generates JSON. */
#define FUZZ_GLIB
#include <json-glib/json-glib.h>

#include "error.h"
#include "fuzz-common.h"
#include "ready-report.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_glib_init();
  return 0;
}

/* Every string (member names too) UTF-8, objects and arrays nested at
 * most VFD_REPORT_MAX_DEPTH deep (@depth: of @n, the root object is 1). */
static void
check_node(JsonNode *n, guint depth)
{
  if (JSON_NODE_HOLDS_OBJECT(n) || JSON_NODE_HOLDS_ARRAY(n))
    FUZZ_CHECK(depth <= VFD_REPORT_MAX_DEPTH);
  if (JSON_NODE_HOLDS_OBJECT(n)) {
    JsonObjectIter it;
    const char *name;
    JsonNode *member;

    json_object_iter_init(&it, json_node_get_object(n));
    while (json_object_iter_next(&it, &name, &member)) {
      FUZZ_CHECK(g_utf8_validate(name, -1, NULL));
      check_node(member, depth + 1);
    }
  } else if (JSON_NODE_HOLDS_ARRAY(n)) {
    JsonArray *a = json_node_get_array(n);
    for (guint i = 0; i < json_array_get_length(a); i++)
      check_node(json_array_get_element(a, i), depth + 1);
  } else if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
    FUZZ_CHECK(g_utf8_validate(json_node_get_string(n), -1, NULL));
  }
}

/* What happens to an accepted report: stored, served, embedded. */
static void
serve(const char *report, gsize len)
{
  FUZZ_CHECK(len <= VFD_REPORT_MAX);
  FUZZ_CHECK(memchr(report, '\0', len) == NULL && g_utf8_validate(report, (gssize) len, NULL));
  /* vfiod: GetSandbox/ListSandboxes serve it as a D-Bus string. */
  {
    g_autofree char *copy = g_strndup(report, len);
    g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_string(copy));
    FUZZ_CHECK(g_variant_is_normal_form(v));
  }
  /* vfioctl --json: embedded as an object. */
  {
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *out = NULL;

    FUZZ_CHECK(json_parser_load_from_data(parser, report, (gssize) len, NULL));
    FUZZ_CHECK(json_parser_get_root(parser) && JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
    check_node(json_parser_get_root(parser), 1);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ready_report");
    json_builder_add_value(b, json_node_copy(json_parser_get_root(parser)));
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    out = json_generator_to_data(gen, NULL);
    FUZZ_CHECK(out != NULL);
  }
}

static void
validate_and_serve(const char *report, gsize len)
{
  g_autoptr(GError) error = NULL;

  if (!vfd_report_validate(report, len, &error)) {
    FUZZ_CHECK(error != NULL && error->domain == VFD_ERROR);
    FUZZ_CHECK(error->code == VFD_ERROR_INVALID_ARGUMENT ||
               (error->code == VFD_ERROR_LIMIT_EXCEEDED && len > VFD_REPORT_MAX));
    return;
  }
  FUZZ_CHECK(error == NULL);
  serve(report, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char tag[] = "VFIOD_READY ";
  g_autoptr(GString) pending = g_string_new(NULL);
  g_autoptr(GByteArray) console = g_byte_array_sized_new((guint) size + sizeof tag + 1);
  g_autofree char *report = NULL;

  /* vsock: the bytes as the guest sent them, in a block of exactly their size */
  {
    char *copy = malloc(size ? size : 1);
    if (!copy)
      abort();
    if (size)
      memcpy(copy, data, size);
    validate_and_serve(copy, size);
    free(copy);
  }
  /* console: the tag, the report, a newline, through the scanner */
  g_byte_array_append(console, (const guint8 *) tag, sizeof tag - 1);
  g_byte_array_append(console, data, (guint) size);
  g_byte_array_append(console, (const guint8 *) "\n", 1);
  if (vfd_serial_scan(pending, (const char *) console->data, console->len, &report))
    validate_and_serve(report, strlen(report));
  return 0;
}
