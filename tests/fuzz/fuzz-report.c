/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest's ready report, from the console to the operator: a hostile
 * guest prints "VFIOD_READY <report>"; vfiod keeps the report text
 * (vfd_serial_scan(), vfiod/sandbox.c), serves it as the D-Bus string
 * "ready_report" of GetSandbox/ListSandboxes (manager.c), and
 * `vfioctl sandbox show/list --json` parses it with json-glib to embed it
 * (cli.c add_object(), static: its steps are repeated here). Input: the
 * report text, any bytes.
 *
 * report_accepted() is where vfiod's report validation belongs: since
 * vfd_serial_scan() makes every report valid UTF-8 (invalid sequences become
 * U+FFFD), the checks below apply to every report. They are what that validation must guarantee for what it accepts:
 * a valid D-Bus string (UTF-8: g_variant_new_string() is a GLib critical
 * otherwise, fatal here) that json-glib parses without crashing.
 *
 * FUZZ_REPORT_GATE=utf8 (environment) stands in for the missing validation
 * by dropping reports that are not UTF-8, to fuzz what lies behind it while
 * the daemon still stores them; the default is what the daemon does. */
#define FUZZ_GLIB
#include <json-glib/json-glib.h>
#include <sanitizer/lsan_interface.h>

#include "fuzz-common.h"
#include "sandbox.h"

static gboolean gate_utf8;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_glib_init();
  gate_utf8 = g_strcmp0(g_getenv("FUZZ_REPORT_GATE"), "utf8") == 0;
  return 0;
}

/* What vfiod stores. Replace with the daemon's validation once it has one. */
static gboolean
report_accepted(const char *report)
{
  if (gate_utf8 && !g_utf8_validate(report, -1, NULL))
    return FALSE;
  return report != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char tag[] = "VFIOD_READY ";
  g_autoptr(GString) pending = g_string_new(NULL);
  g_autoptr(GByteArray) console = g_byte_array_sized_new((guint) size + sizeof tag + 1);
  g_autofree char *report = NULL;

  /* The console as the guest wrote it: the tag, the report, a newline. */
  g_byte_array_append(console, (const guint8 *) tag, sizeof tag - 1);
  g_byte_array_append(console, data, (guint) size);
  g_byte_array_append(console, (const guint8 *) "\n", 1);
  if (!vfd_serial_scan(pending, (const char *) console->data, console->len, &report) || !report_accepted(report))
    return 0;

  /* vfiod: GetSandbox/ListSandboxes serve it as a D-Bus string. */
  {
    g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_string(report));
    FUZZ_CHECK(g_variant_is_normal_form(v));
  }
  /* vfioctl --json: embedded as an object when it parses, else as a string. */
  {
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *out = NULL;
    gboolean parsed;

    /* json-glib 1.6 accepts several top-level values ("[] {}"), keeps the
     * last and leaks the others: not vfiod's leak (and vfioctl exits). */
    __lsan_disable();
    parsed = json_parser_load_from_data(parser, report, -1, NULL);
    __lsan_enable();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ready_report");
    if (parsed && json_parser_get_root(parser))
      json_builder_add_value(b, json_node_copy(json_parser_get_root(parser)));
    else
      json_builder_add_string_value(b, report);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    out = json_generator_to_data(gen, NULL);
    FUZZ_CHECK(out != NULL);
  }
  return 0;
}
