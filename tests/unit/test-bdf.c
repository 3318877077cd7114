/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_bdf_*: the strict "DDDD:BB:DD.F" parser, formatting, ordering. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bdf.h"

static void
assert_parses(const char *s, guint16 domain, guint8 bus, guint8 dev, guint8 func)
{
  VfdBdf b = { 0 };

  if (vfd_bdf_parse(s, &b) != 0)
    fail_msg("'%s' should parse", s);
  assert_int_equal(b.domain, domain);
  assert_int_equal(b.bus, bus);
  assert_int_equal(b.dev, dev);
  assert_int_equal(b.func, func);
}

static void
test_parse_valid(void **state)
{
  assert_parses("0000:00:00.0", 0, 0, 0, 0);
  assert_parses("0000:01:00.1", 0, 1, 0, 1);
  assert_parses("0000:65:00.0", 0, 0x65, 0, 0);
  assert_parses("abcd:ef:1a.3", 0xabcd, 0xef, 0x1a, 3);
  assert_parses("ABCD:EF:1A.3", 0xabcd, 0xef, 0x1a, 3);
  assert_parses("aBcD:eF:1A.3", 0xabcd, 0xef, 0x1a, 3);
  assert_parses("ffff:ff:1f.7", 0xffff, 0xff, 0x1f, 7);
  assert_parses("FFFF:FF:1F.7", 0xffff, 0xff, 0x1f, 7);
}

static void
test_parse_rejects(void **state)
{
  static const char *const bad[] = {
    "",
    "../..",
    "../../x",
    "0000:00:1f.8",   /* function > 7 */
    "0000:00:20.0",   /* device > 1f */
    "0000:00:ff.0",
    "10000:00:00.0",  /* 5-digit domain */
    "0000:100:00.0",  /* 3-digit bus */
    "0000:00:000.0",
    "0000:00:00.00",
    "0000:00:00.0 ",  /* trailing junk */
    "0000:00:00.0\n",
    "0000:00:00.0x",
    "0000:00:00.0/driver",
    " 0000:00:00.0",  /* leading space */
    "\t0000:00:00.0",
    "0000:00:00",     /* no function */
    "0000:00:00.",
    "0000-00-00.0",
    "0000:00:00:0",
    "0000.00:00.0",
    "g000:00:00.0",
    "0000:0g:00.0",
    "0000:00:0g.0",
    "0000:00:00.a",
    "0000:00:00.-",
    "00:00.0",        /* short form */
    "01:00.0",
    "+000:00:00.0",
    "-001:00:00.0",
    "0x00:00:00.0",
    "0000:+1:00.0",
    "0000: 1:00.0",
    "../../../../x",
  };
  VfdBdf sentinel = { 0x1234, 0x56, 0x07, 0x1 };

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    VfdBdf b = sentinel;
    int r = vfd_bdf_parse(bad[i], &b);

    if (r != -EINVAL)
      fail_msg("'%s' (item %u) should be rejected with -EINVAL, got %d", bad[i], i, r);
    /* @ret untouched on failure. */
    assert_memory_equal(&b, &sentinel, sizeof(b));
  }
}

static void
test_parse_null(void **state)
{
  VfdBdf b = { 0x1234, 0x56, 0x07, 0x1 };

  assert_int_equal(vfd_bdf_parse(NULL, &b), -EINVAL);
  assert_int_equal(b.domain, 0x1234);
}

static void
test_format_roundtrip(void **state)
{
  static const char *const in[] = {
    "0000:00:00.0", "0000:01:00.1", "ABCD:EF:1A.3", "ffff:ff:1f.7", "0001:0a:1F.6",
  };
  static const char *const out[] = {
    "0000:00:00.0", "0000:01:00.1", "abcd:ef:1a.3", "ffff:ff:1f.7", "0001:0a:1f.6",
  };

  for (guint i = 0; i < G_N_ELEMENTS(in); i++) {
    VfdBdf b, again;
    char buf[VFD_BDF_STRLEN];

    assert_int_equal(vfd_bdf_parse(in[i], &b), 0);
    assert_ptr_equal(vfd_bdf_format(&b, buf), buf);
    assert_string_equal(buf, out[i]);
    assert_int_equal(strlen(buf), VFD_BDF_STRLEN - 1);
    assert_int_equal(vfd_bdf_parse(buf, &again), 0);
    assert_true(vfd_bdf_equal(&b, &again));
  }
}

static void
test_format_max(void **state)
{
  VfdBdf b = { 0xffff, 0xff, 0x1f, 7 };
  char buf[VFD_BDF_STRLEN];

  assert_string_equal(vfd_bdf_format(&b, buf), "ffff:ff:1f.7");
}

static VfdBdf
bdf(const char *s)
{
  VfdBdf b;

  assert_int_equal(vfd_bdf_parse(s, &b), 0);
  return b;
}

static void
test_compare(void **state)
{
  VfdBdf a = bdf("0000:01:00.0");
  VfdBdf a2 = bdf("0000:01:00.0");

  assert_int_equal(vfd_bdf_compare(&a, &a2), 0);
  assert_true(vfd_bdf_equal(&a, &a2));

  /* Each field decides when the more significant ones are equal, and a more
   * significant one beats any less significant one. */
  static const char *const ordered[] = {
    "0000:00:00.0", "0000:00:00.1", "0000:00:00.7", "0000:00:01.0", "0000:00:1f.7",
    "0000:01:00.0", "0000:01:1f.7", "0000:ff:1f.7", "0001:00:00.0", "ffff:00:00.0",
  };
  for (guint i = 0; i < G_N_ELEMENTS(ordered); i++)
    for (guint j = 0; j < G_N_ELEMENTS(ordered); j++) {
      VfdBdf x = bdf(ordered[i]), y = bdf(ordered[j]);
      int c = vfd_bdf_compare(&x, &y);
      if ((i < j && c >= 0) || (i > j && c <= 0) || (i == j && c != 0))
        fail_msg("compare(%s, %s) = %d", ordered[i], ordered[j], c);
      assert_true(vfd_bdf_equal(&x, &y) == (i == j));
    }
}

static void
test_sort(void **state)
{
  static const char *const unsorted[] = {
    "0000:65:00.1", "0000:01:00.0", "0001:00:00.0", "0000:65:00.0", "0000:00:1f.3", "0000:01:00.1",
  };
  static const char *const sorted[] = {
    "0000:00:1f.3", "0000:01:00.0", "0000:01:00.1", "0000:65:00.0", "0000:65:00.1", "0001:00:00.0",
  };
  g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  for (guint i = 0; i < G_N_ELEMENTS(unsorted); i++) {
    VfdBdf b = bdf(unsorted[i]);
    g_array_append_val(a, b);
  }
  g_array_sort(a, vfd_bdf_compare);
  for (guint i = 0; i < a->len; i++) {
    char buf[VFD_BDF_STRLEN];
    assert_string_equal(vfd_bdf_format(&g_array_index(a, VfdBdf, i), buf), sorted[i]);
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_valid),
    cmocka_unit_test(test_parse_rejects),
    cmocka_unit_test(test_parse_null),
    cmocka_unit_test(test_format_roundtrip),
    cmocka_unit_test(test_format_max),
    cmocka_unit_test(test_compare),
    cmocka_unit_test(test_sort),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
