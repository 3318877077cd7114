/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_policy_*: which devices the [devices] ids/classes rules allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "policy.h"

static VfdPolicy *
policy(const char *ids, const char *classes)
{
  g_autoptr(GError) error = NULL;
  VfdPolicy *p = vfd_policy_new(ids, classes, &error);

  if (!p)
    fail_msg("ids='%s' classes='%s' should be accepted: %s", ids ? ids : "(null)", classes ? classes : "(null)",
             error ? error->message : "(no error set)");
  assert_null(error);
  return p;
}

/* The item must be rejected with INVALID_ARGUMENT and named in the message. */
static void
assert_rejected(const char *ids, const char *classes, const char *item)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdPolicy) p = vfd_policy_new(ids, classes, &error);

  if (p)
    fail_msg("ids='%s' classes='%s' should be rejected", ids ? ids : "(null)", classes ? classes : "(null)");
  assert_non_null(error);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  if (!strstr(error->message, item))
    fail_msg("error '%s' does not name the item '%s'", error->message, item);
}

static void
test_defaults_allow_nvidia_functions(void **state)
{
  g_autoptr(VfdPolicy) p = policy(VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES);

  assert_true(vfd_policy_allows(p, 0x10de, 0x2204, 0x030000)); /* VGA (RTX 3090) */
  assert_true(vfd_policy_allows(p, 0x10de, 0x20b0, 0x030200)); /* 3D controller (A100) */
  assert_true(vfd_policy_allows(p, 0x10de, 0x1aef, 0x040300)); /* HD audio */
  assert_true(vfd_policy_allows(p, 0x10de, 0x1ad8, 0x0c0330)); /* USB xHCI */
  assert_true(vfd_policy_allows(p, 0x10de, 0x1ad9, 0x0c8000)); /* UCSI */
  assert_true(vfd_policy_allows(p, 0x10de, 0x0000, 0x0380ff)); /* other display */
}

static void
test_defaults_refuse(void **state)
{
  g_autoptr(VfdPolicy) p = policy(VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES);

  assert_false(vfd_policy_allows(p, 0x10de, 0x1ad0, 0x060400)); /* NVIDIA PCI bridge */
  assert_false(vfd_policy_allows(p, 0x10de, 0x22a3, 0x068000)); /* NVSwitch-ish bridge */
  assert_false(vfd_policy_allows(p, 0x10de, 0x0000, 0x020000)); /* NVIDIA NIC class */
  assert_false(vfd_policy_allows(p, 0x10de, 0x0000, 0x040100)); /* audio, not HDA (0401) */
  assert_false(vfd_policy_allows(p, 0x10de, 0x0000, 0x0c0500)); /* SMBus (0c05) */
  assert_false(vfd_policy_allows(p, 0x8086, 0x56a0, 0x030000)); /* Intel VGA */
  assert_false(vfd_policy_allows(p, 0x8086, 0x7ae0, 0x0c0330)); /* Intel USB */
  assert_false(vfd_policy_allows(p, 0x8086, 0x10d3, 0x020000)); /* Intel NIC */
  assert_false(vfd_policy_allows(p, 0x1002, 0x73bf, 0x030000)); /* AMD VGA */
}

static void
test_custom_ids_wildcards(void **state)
{
  g_autoptr(VfdPolicy) exact = policy("8086:10d3", NULL);
  g_autoptr(VfdPolicy) any_vendor = policy("*:2204", NULL);
  g_autoptr(VfdPolicy) any = policy("*:*", NULL);
  g_autoptr(VfdPolicy) several = policy("10de:*;8086:10d3;1af4:1041", "");

  assert_true(vfd_policy_allows(exact, 0x8086, 0x10d3, 0x020000));
  assert_false(vfd_policy_allows(exact, 0x8086, 0x10d4, 0x020000));
  assert_false(vfd_policy_allows(exact, 0x10d3, 0x8086, 0x020000)); /* sides not swapped */

  assert_true(vfd_policy_allows(any_vendor, 0x10de, 0x2204, 0x030000));
  assert_true(vfd_policy_allows(any_vendor, 0x1234, 0x2204, 0x030000));
  assert_false(vfd_policy_allows(any_vendor, 0x10de, 0x2205, 0x030000));

  assert_true(vfd_policy_allows(any, 0xffff, 0xffff, 0xffffff));
  assert_true(vfd_policy_allows(any, 0x0000, 0x0000, 0x000000));

  assert_true(vfd_policy_allows(several, 0x10de, 0x1234, 0x060400)); /* classes empty: any */
  assert_true(vfd_policy_allows(several, 0x8086, 0x10d3, 0x020000));
  assert_true(vfd_policy_allows(several, 0x1af4, 0x1041, 0x020000));
  assert_false(vfd_policy_allows(several, 0x8086, 0x10d4, 0x020000));
  assert_false(vfd_policy_allows(several, 0x1af4, 0x1042, 0x010000));
}

static void
test_ids_case_and_whitespace(void **state)
{
  g_autoptr(VfdPolicy) p = policy("  10DE:22Bb ; 8086:*\t", " 03 ;\t0C03 ");

  assert_true(vfd_policy_allows(p, 0x10de, 0x22bb, 0x030000));
  assert_true(vfd_policy_allows(p, 0x8086, 0x1234, 0x0c0330));
  assert_false(vfd_policy_allows(p, 0x10de, 0x22bc, 0x030000));
  assert_false(vfd_policy_allows(p, 0x8086, 0x1234, 0x040300));
}

static void
test_class_prefixes(void **state)
{
  g_autoptr(VfdPolicy) two = policy(NULL, "03");
  g_autoptr(VfdPolicy) four = policy(NULL, "0c03");
  g_autoptr(VfdPolicy) six = policy(NULL, "0c0330");
  g_autoptr(VfdPolicy) mixed = policy("", "0403;0c0330;02");

  assert_true(vfd_policy_allows(two, 0x1234, 0x5678, 0x030000));
  assert_true(vfd_policy_allows(two, 0x1234, 0x5678, 0x0302ff));
  assert_true(vfd_policy_allows(two, 0x1234, 0x5678, 0x03ffff));
  assert_false(vfd_policy_allows(two, 0x1234, 0x5678, 0x040300));
  assert_false(vfd_policy_allows(two, 0x1234, 0x5678, 0x000003));
  assert_false(vfd_policy_allows(two, 0x1234, 0x5678, 0x000300));

  assert_true(vfd_policy_allows(four, 0x1234, 0x5678, 0x0c0300));
  assert_true(vfd_policy_allows(four, 0x1234, 0x5678, 0x0c0330));
  assert_true(vfd_policy_allows(four, 0x1234, 0x5678, 0x0c03fe));
  assert_false(vfd_policy_allows(four, 0x1234, 0x5678, 0x0c0430));
  assert_false(vfd_policy_allows(four, 0x1234, 0x5678, 0x030c03));

  assert_true(vfd_policy_allows(six, 0x1234, 0x5678, 0x0c0330));
  assert_false(vfd_policy_allows(six, 0x1234, 0x5678, 0x0c0320)); /* EHCI */
  assert_false(vfd_policy_allows(six, 0x1234, 0x5678, 0x0c0331));

  assert_true(vfd_policy_allows(mixed, 0x1, 0x2, 0x040300));
  assert_true(vfd_policy_allows(mixed, 0x1, 0x2, 0x0c0330));
  assert_true(vfd_policy_allows(mixed, 0x1, 0x2, 0x020000));
  assert_true(vfd_policy_allows(mixed, 0x1, 0x2, 0x028000));
  assert_false(vfd_policy_allows(mixed, 0x1, 0x2, 0x0c0320));
  assert_false(vfd_policy_allows(mixed, 0x1, 0x2, 0x040100));
}

static void
test_ids_and_classes_both_required(void **state)
{
  g_autoptr(VfdPolicy) p = policy("10de:*", "03");

  assert_true(vfd_policy_allows(p, 0x10de, 0x2204, 0x030000));
  assert_false(vfd_policy_allows(p, 0x10de, 0x2204, 0x040300)); /* id yes, class no */
  assert_false(vfd_policy_allows(p, 0x8086, 0x2204, 0x030000)); /* class yes, id no */
}

static void
test_empty_rules_allow_anything(void **state)
{
  g_autoptr(VfdPolicy) both_null = policy(NULL, NULL);
  g_autoptr(VfdPolicy) both_empty = policy("", "");
  g_autoptr(VfdPolicy) blank = policy("   ", " \t ");
  g_autoptr(VfdPolicy) ids_only = policy("", "03");
  g_autoptr(VfdPolicy) classes_only = policy("10de:*", NULL);

  assert_true(vfd_policy_allows(both_null, 0x8086, 0x10d3, 0x060400));
  assert_true(vfd_policy_allows(both_empty, 0x0000, 0x0000, 0x000000));
  assert_true(vfd_policy_allows(blank, 0xffff, 0xffff, 0xffffff));
  assert_true(vfd_policy_allows(ids_only, 0x8086, 0x56a0, 0x030000));
  assert_false(vfd_policy_allows(ids_only, 0x8086, 0x56a0, 0x020000));
  assert_true(vfd_policy_allows(classes_only, 0x10de, 0x1ad0, 0x060400));
  assert_false(vfd_policy_allows(classes_only, 0x8086, 0x1ad0, 0x030000));
}

static void
test_malformed_ids(void **state)
{
  assert_rejected("10de", NULL, "10de");
  assert_rejected("xyz:*", NULL, "xyz:*");
  assert_rejected("10de:12345", NULL, "10de:12345");
  assert_rejected("10de:123", NULL, "10de:123");
  assert_rejected("10d:1234", NULL, "10d:1234");
  assert_rejected("10de:*:*", NULL, "10de:*:*");
  assert_rejected("10de:**", NULL, "10de:**");
  assert_rejected("10de:12g4", NULL, "10de:12g4");
  assert_rejected(":1234", NULL, ":1234");
  assert_rejected("10de:", NULL, "10de:");
  assert_rejected("0x10de:1234", NULL, "0x10de:1234");
  /* A bad item after good ones is still found and named. */
  assert_rejected("10de:*;8086:10d3;oops", VFD_POLICY_DEFAULT_CLASSES, "oops");
  /* Good ids do not excuse bad classes and vice versa. */
  assert_rejected("nope", "03", "nope");
}

static void
test_malformed_classes(void **state)
{
  assert_rejected(NULL, "0", "0");
  assert_rejected(NULL, "030", "030");
  assert_rejected(NULL, "0300000", "0300000");
  assert_rejected(NULL, "03000", "03000");
  assert_rejected(NULL, "zz", "zz");
  assert_rejected(NULL, "0x03", "0x03");
  assert_rejected(NULL, "03;0403;0c3", "0c3");
  assert_rejected("10de:*", "03;04g3", "04g3");
}

static void
test_empty_items_rejected(void **state)
{
  /* A stray ';' must not silently widen the rules to "anything". */
  assert_rejected(";", NULL, "empty item");
  assert_rejected("10de:*;", NULL, "empty item");
  assert_rejected(NULL, "03;;0403", "empty item");
  assert_rejected(NULL, " ; ", "empty item");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults_allow_nvidia_functions),
    cmocka_unit_test(test_defaults_refuse),
    cmocka_unit_test(test_custom_ids_wildcards),
    cmocka_unit_test(test_ids_case_and_whitespace),
    cmocka_unit_test(test_class_prefixes),
    cmocka_unit_test(test_ids_and_classes_both_required),
    cmocka_unit_test(test_empty_rules_allow_anything),
    cmocka_unit_test(test_malformed_ids),
    cmocka_unit_test(test_malformed_classes),
    cmocka_unit_test(test_empty_items_rejected),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
