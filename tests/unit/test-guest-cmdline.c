/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's kernel command line parser and console line formatters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmdline.h"
#include "report.h"

static GiCmdline cl;  /* large: keep it off the stack */

static void
parse(const char *s)
{
  gi_cmdline_parse(s, &cl);
}

static void
assert_printable(const char *s, size_t max)
{
  size_t n = strnlen(s, max + 1);

  assert_true(n <= max);
  for (size_t i = 0; i < n; i++)
    assert_true(s[i] >= 0x20 && s[i] <= 0x7e);
}

/* Invariants that must hold whatever the input. */
static void
assert_sane(void)
{
  assert_true(cl.n_entries <= GI_CMDLINE_MAX_ENTRIES);
  for (size_t i = 0; i < cl.n_entries; i++) {
    assert_printable(cl.entries[i].key, GI_CMDLINE_MAX_KEY);
    assert_printable(cl.entries[i].value, GI_CMDLINE_MAX_VALUE);
    assert_int_equal(strncmp(cl.entries[i].key, "vfiod.", 6), 0);
    if (gi_cmdline_status_is_error(cl.entries[i].status))
      assert_string_equal(cl.entries[i].value, "");
  }
  assert_printable(cl.sandbox, GI_CMDLINE_MAX_VALUE);
  assert_true(cl.has_sandbox == (cl.sandbox[0] != '\0'));
  assert_int_equal(cl.ready, GI_READY_CONSOLE);
}

static void
test_empty(void **state)
{
  const char *inputs[] = { NULL, "", " ", "\n", " \t\r\n\v\f " };

  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    parse(inputs[i]);
    assert_int_equal(cl.n_entries, 0);
    assert_int_equal(cl.n_dropped, 0);
    assert_false(cl.has_sandbox);
    assert_string_equal(cl.sandbox, "");
    assert_int_equal(cl.ready, GI_READY_CONSOLE);
  }
}

static void
test_plain_keys(void **state)
{
  parse("BOOT_IMAGE=/vmlinuz console=ttyS0 vfiod.sandbox=sb-test vfiod.ready=console quiet\n");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.entries[0].key, "vfiod.sandbox");
  assert_string_equal(cl.entries[0].value, "sb-test");
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_SANDBOX);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
  assert_string_equal(cl.entries[1].key, "vfiod.ready");
  assert_string_equal(cl.entries[1].value, "console");
  assert_int_equal(cl.entries[1].id, GI_CMDLINE_KEY_READY);
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_OK);
  assert_true(cl.has_sandbox);
  assert_string_equal(cl.sandbox, "sb-test");

  /* Value at the very end, no newline; '=' inside the value is kept. */
  parse("vfiod.sandbox=a=b");
  assert_string_equal(cl.sandbox, "a=b");
}

static void
test_quoted_values(void **state)
{
  parse("quiet vfiod.sandbox=\"sb with  spaces\" panic=-1");
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_string_equal(cl.sandbox, "sb with  spaces");

  /* The kernel's other spelling: the whole token quoted. */
  parse("\"vfiod.sandbox=x y\" vfiod.ready=\"console\"");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.sandbox, "x y");
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_OK);

  /* Quotes anywhere toggle, and are dropped. */
  parse("vfiod.sandbox=a\"b c\"d");
  assert_string_equal(cl.sandbox, "ab cd");

  /* A quoted empty value is empty: refused for the sandbox id. */
  parse("vfiod.sandbox=\"\"");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
  assert_false(cl.has_sandbox);

  /* Unterminated: refused, and it swallows the rest of the line. */
  parse("vfiod.sandbox=\"abc vfiod.ready=console");
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_UNTERMINATED);
  assert_true(gi_cmdline_status_is_error(cl.entries[0].status));
  assert_false(cl.has_sandbox);
}

static void
test_other_keys_ignored(void **state)
{
  parse("vfio.sandbox=a avfiod.sandbox=b vfiodsandbox=c VFIOD.sandbox=d vfiod=e vfiod "
        "vfio-pci.ids=10de:1b80 \"x=vfiod.sandbox=f\" -- vfiod_sandbox=g");
  assert_sane();
  assert_int_equal(cl.n_entries, 0);
  assert_false(cl.has_sandbox);
}

static void
test_unknown_vfiod_keys(void **state)
{
  parse("vfiod.future=1 vfiod.sandbox=sb vfiod.=x vfiod.other=\"a b\"");
  assert_sane();
  assert_int_equal(cl.n_entries, 4);
  assert_string_equal(cl.entries[0].key, "vfiod.future");
  assert_string_equal(cl.entries[0].value, "1");
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_UNKNOWN);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_UNKNOWN);
  assert_false(gi_cmdline_status_is_error(GI_CMDLINE_UNKNOWN));
  assert_string_equal(cl.entries[2].key, "vfiod.");
  assert_int_equal(cl.entries[2].status, GI_CMDLINE_UNKNOWN);
  assert_string_equal(cl.entries[3].value, "a b");
  assert_int_equal(cl.entries[3].status, GI_CMDLINE_UNKNOWN);
  /* Known keys are unaffected. */
  assert_string_equal(cl.sandbox, "sb");
}

static void
test_control_chars_rejected(void **state)
{
  const char *bad[] = {
    "vfiod.sandbox=a\x01z",
    "vfiod.sandbox=\"a\tz\"",       /* a tab only gets in through quotes */
    "vfiod.sandbox=\"a\nz\"",
    "vfiod.sandbox=a\x1b[2Jz",      /* terminal escape */
    "vfiod.sandbox=a\x7fz",
    "vfiod.sandbox=a\xc3\xa9z",     /* non-ASCII */
  };

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    parse(bad[i]);
    assert_sane();
    assert_int_equal(cl.n_entries, 1);
    assert_string_equal(cl.entries[0].key, "vfiod.sandbox");
    assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
    assert_string_equal(cl.entries[0].value, "");
    assert_false(cl.has_sandbox);
  }

  /* In the key: shown with '?' so that it can be printed. */
  parse("vfiod.sand\x1b" "box=x vfiod.\"a b\"=y");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.entries[0].key, "vfiod.sand?box");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
  assert_string_equal(cl.entries[1].key, "vfiod.a?b");
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_BAD_CHAR);

  /* A refused token does not undo an earlier good one. */
  parse("vfiod.sandbox=good vfiod.sandbox=b\x02" "ad");
  assert_string_equal(cl.sandbox, "good");
}

static void
test_missing_equals(void **state)
{
  parse("vfiod.sandbox vfiod.ready vfiod.future");
  assert_sane();
  assert_int_equal(cl.n_entries, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(cl.entries[i].status, GI_CMDLINE_NO_VALUE);
    assert_true(gi_cmdline_status_is_error(cl.entries[i].status));
  }
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_SANDBOX);
  assert_false(cl.has_sandbox);

  /* '=' with nothing after it is a value, and an empty sandbox id is refused. */
  parse("vfiod.sandbox=");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
}

static void
test_known_values(void **state)
{
  parse("vfiod.ready=serial");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
  assert_string_equal(cl.entries[0].value, "serial");
  assert_int_equal(cl.ready, GI_READY_CONSOLE);

  /* The last accepted value wins, as with kernel parameters. */
  parse("vfiod.sandbox=first vfiod.sandbox=second");
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.sandbox, "second");
}

static void
test_long_input(void **state)
{
  size_t big = 200000;
  char *s = malloc(big + 64);
  char *p;

  assert_non_null(s);

  /* A value of exactly the maximum is fine; one byte more is refused. */
  strcpy(s, "vfiod.sandbox=");
  memset(s + 14, 'v', GI_CMDLINE_MAX_VALUE);
  s[14 + GI_CMDLINE_MAX_VALUE] = '\0';
  parse(s);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
  assert_int_equal(strlen(cl.sandbox), GI_CMDLINE_MAX_VALUE);
  strcat(s, "v");
  parse(s);
  assert_sane();
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);
  assert_false(cl.has_sandbox);

  /* An overlong key is cut for printing, and refused. */
  strcpy(s, "vfiod.");
  memset(s + 6, 'k', 1000);
  strcpy(s + 1006, "=1");
  parse(s);
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_int_equal(strlen(cl.entries[0].key), GI_CMDLINE_MAX_KEY);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);

  /* One huge value: refused, no overflow. */
  strcpy(s, "vfiod.sandbox=");
  memset(s + 14, 'x', big);
  s[14 + big] = '\0';
  parse(s);
  assert_sane();
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);

  /* Many tokens: the first GI_CMDLINE_MAX_ENTRIES are kept, the rest counted. */
  p = s;
  for (int i = 0; i < 1000; i++)
    p += sprintf(p, "vfiod.k%d=%d ", i, i);
  parse(s);
  assert_sane();
  assert_int_equal(cl.n_entries, GI_CMDLINE_MAX_ENTRIES);
  assert_int_equal(cl.n_dropped, 1000 - GI_CMDLINE_MAX_ENTRIES);
  assert_string_equal(cl.entries[GI_CMDLINE_MAX_ENTRIES - 1].key, "vfiod.k31");

  free(s);
}

static void
test_garbage(void **state)
{
  static const char alphabet[] = "vfiod.sandbox=ready\" \t\n\x01\x7f\xff";
  char s[600];

  srand(1);
  for (int round = 0; round < 5000; round++) {
    size_t n = (size_t) rand() % (sizeof(s) - 1);

    for (size_t i = 0; i < n; i++)
      s[i] = (round % 2) ? (char) (rand() % 255 + 1)
                         : alphabet[(size_t) rand() % (sizeof(alphabet) - 1)];
    s[n] = '\0';
    parse(s);
    assert_sane();
  }
}

static void
test_status_strings(void **state)
{
  for (int st = GI_CMDLINE_OK; st <= GI_CMDLINE_BAD_VALUE; st++)
    assert_non_null(gi_cmdline_status_to_string((GiCmdlineStatus) st));
  assert_string_equal(gi_cmdline_status_to_string(GI_CMDLINE_NO_VALUE), "missing '='");
  assert_string_equal(gi_cmdline_status_to_string((GiCmdlineStatus) 999), "invalid status");
}

static void
test_format_ready(void **state)
{
  const GiPciDevice devs[] = {
    { "0000:00:01.0", 0x1af4, 0x1044 },
    { "0000:00:1f.3", 0x8086, 0x293e },
  };
  char buf[512];
  size_t n;

  n = gi_format_ready(buf, sizeof(buf), "sb-1", "6.1.0-56-amd64", 1234, devs, 2);
  assert_string_equal(buf,
                      "VFIOD_READY {\"v\":1,\"sandbox\":\"sb-1\",\"kernel\":\"6.1.0-56-amd64\","
                      "\"uptime_ms\":1234,\"pci\":[{\"bdf\":\"0000:00:01.0\",\"id\":\"1af4:1044\"},"
                      "{\"bdf\":\"0000:00:1f.3\",\"id\":\"8086:293e\"}]}\n");
  assert_int_equal(n, strlen(buf));

  n = gi_format_ready(buf, sizeof(buf), "", "k", 0, NULL, 0);
  assert_string_equal(buf, "VFIOD_READY {\"v\":1,\"sandbox\":\"\",\"kernel\":\"k\",\"uptime_ms\":0,\"pci\":[]}\n");

  /* Escaping: whatever the bytes, the JSON stays valid. */
  gi_format_ready(buf, sizeof(buf), "a\"b\\c\nd\x01" "e\xc3\xa9", "k", 1, NULL, 0);
  assert_non_null(strstr(buf, "\"sandbox\":\"a\\\"b\\\\c\\nd\\u0001e\\ufffd\\ufffd\""));

  /* snprintf-like: a short buffer gets a NUL-terminated prefix and the
   * return value says how much was needed. */
  n = gi_format_ready(buf, 10, "sb-1", "6.1.0-56-amd64", 1234, devs, 2);
  assert_int_equal(strlen(buf), 9);
  assert_true(n > 100);
  assert_int_equal(gi_format_ready(NULL, 0, "sb-1", "6.1.0-56-amd64", 1234, devs, 2), n);
}

static void
test_format_poweroff_fatal(void **state)
{
  char buf[128];

  gi_format_poweroff(buf, sizeof(buf), "signal:SIGTERM");
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"signal:SIGTERM\"}\n");
  gi_format_poweroff(buf, sizeof(buf), "power-button");
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"power-button\"}\n");
  gi_format_fatal(buf, sizeof(buf), "mount \"proc\": No such device");
  assert_string_equal(buf, "VFIOD_FATAL {\"error\":\"mount \\\"proc\\\": No such device\"}\n");
}

static void
test_pci_sort(void **state)
{
  GiPciDevice devs[] = {
    { "0000:00:1f.3", 0, 0 },
    { "10000:00:00.0", 0, 0 },  /* VMD domains have 5 digits */
    { "garbage", 0, 0 },
    { "0000:00:02.0", 0, 0 },
    { "0000:0a:00.1", 0, 0 },
    { "0000:0a:00.0", 0, 0 },
  };
  const char *want[] = { "0000:00:02.0", "0000:00:1f.3", "0000:0a:00.0", "0000:0a:00.1",
                         "10000:00:00.0", "garbage" };

  qsort(devs, 6, sizeof(devs[0]), gi_pci_device_compare);
  for (size_t i = 0; i < 6; i++)
    assert_string_equal(devs[i].bdf, want[i]);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_plain_keys),
    cmocka_unit_test(test_quoted_values),
    cmocka_unit_test(test_other_keys_ignored),
    cmocka_unit_test(test_unknown_vfiod_keys),
    cmocka_unit_test(test_control_chars_rejected),
    cmocka_unit_test(test_missing_equals),
    cmocka_unit_test(test_known_values),
    cmocka_unit_test(test_long_input),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_status_strings),
    cmocka_unit_test(test_format_ready),
    cmocka_unit_test(test_format_poweroff_fatal),
    cmocka_unit_test(test_pci_sort),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
