/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sandbox names, labels and specs (issue 15, item 1): the rules of
 * identity.h with their limits, and when two creates have the same spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <glib.h>

#include "error.h"
#include "identity.h"

static void
name_ok(const char *name, gboolean want)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = vfd_sandbox_name_check(name, &error);

  if (ok != want)
    fail_msg("name '%s': got %d, want %d (%s)", name ? name : "(null)", ok, want, error ? error->message : "");
  if (!ok)
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
}

static void
test_names(void **state)
{
  g_autofree char *n63 = g_strnfill(63, 'a');
  g_autofree char *n64 = g_strnfill(64, 'a');

  name_ok("a", TRUE);
  name_ok("web-1", TRUE);
  name_ok("job.2026-12-02", TRUE);
  name_ok("0abc9", TRUE);
  name_ok(n63, TRUE);
  name_ok(n64, FALSE);
  name_ok("", FALSE);
  name_ok(NULL, FALSE);
  name_ok("Web", FALSE);     /* upper case */
  name_ok("-web", FALSE);    /* begins with '-' */
  name_ok("web-", FALSE);    /* ends with '-' */
  name_ok(".web", FALSE);
  name_ok("web.", FALSE);
  name_ok("we_b", FALSE);
  name_ok("we b", FALSE);
  name_ok("web\n", FALSE);
  name_ok("w\xc3\xa9", FALSE); /* UTF-8 */
  name_ok("sb-12345678", FALSE); /* an id's form */
  name_ok("sb-web", FALSE);
  name_ok("sbweb", TRUE);
  name_ok("s-b", TRUE);
}

static gboolean
labels_ok(GVariant *labels)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) l = labels ? g_variant_ref_sink(labels) : NULL;
  gboolean ok = vfd_sandbox_labels_check(l, &error);

  if (!ok)
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  return ok;
}

static GVariant *
one_label(const char *k, const char *v)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("a{ss}"));
  g_variant_builder_add(&b, "{ss}", k, v);
  return g_variant_builder_end(&b);
}

static GVariant *
n_labels(guint n)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("a{ss}"));
  for (guint i = 0; i < n; i++) {
    g_autofree char *k = g_strdup_printf("k%u", i);
    g_variant_builder_add(&b, "{ss}", k, "v");
  }
  return g_variant_builder_end(&b);
}

static void
test_labels(void **state)
{
  g_autofree char *k63 = g_strnfill(63, 'k');
  g_autofree char *k64 = g_strnfill(64, 'k');
  g_autofree char *v256 = g_strnfill(256, 'v');
  g_autofree char *v257 = g_strnfill(257, 'v');

  assert_true(labels_ok(NULL));
  assert_true(labels_ok(n_labels(0)));
  assert_true(labels_ok(n_labels(64)));
  assert_false(labels_ok(n_labels(65)));
  assert_true(labels_ok(one_label("app.kubernetes.io/name", "web")));
  assert_true(labels_ok(one_label("A_b-c", "")));
  assert_true(labels_ok(one_label(k63, v256)));
  assert_false(labels_ok(one_label(k64, "v")));
  assert_false(labels_ok(one_label(k63, v257)));
  assert_false(labels_ok(one_label("", "v")));
  assert_false(labels_ok(one_label("a b", "v")));
  assert_false(labels_ok(one_label("a=b", "v")));
  assert_false(labels_ok(one_label("a:b", "v")));
  assert_true(labels_ok(one_label("k", "caf\xc3\xa9 ok, spaces = fine")));
  assert_false(labels_ok(one_label("k", "line\nbreak")));
  assert_false(labels_ok(one_label("k", "tab\there")));
  assert_false(labels_ok(one_label("k", "del\x7f")));
  assert_false(labels_ok(one_label("k", "c1 \xc2\x85"))); /* U+0085, a C1 control */
  /* the wrong type */
  assert_false(labels_ok(g_variant_new_strv(NULL, 0)));
}

static GVariant *
options(const char *name, guint memory, gboolean swap, const char *label)
{
  GVariantBuilder b, l;

  g_variant_builder_init(&l, G_VARIANT_TYPE("a{ss}"));
  if (swap) {
    g_variant_builder_add(&l, "{ss}", "b", label);
    g_variant_builder_add(&l, "{ss}", "a", "1");
  } else {
    g_variant_builder_add(&l, "{ss}", "a", "1");
    g_variant_builder_add(&l, "{ss}", "b", label);
  }
  g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
  if (swap) {
    g_variant_builder_add(&b, "{sv}", "labels", g_variant_builder_end(&l));
    g_variant_builder_add(&b, "{sv}", "memory_mib", g_variant_new_uint32(memory));
    if (name)
      g_variant_builder_add(&b, "{sv}", "name", g_variant_new_string(name));
  } else {
    if (name)
      g_variant_builder_add(&b, "{sv}", "name", g_variant_new_string(name));
    g_variant_builder_add(&b, "{sv}", "memory_mib", g_variant_new_uint32(memory));
    g_variant_builder_add(&b, "{sv}", "labels", g_variant_builder_end(&l));
  }
  return g_variant_ref_sink(g_variant_builder_end(&b));
}

static char *
hash_of(GVariant *v)
{
  g_autoptr(GVariant) o = v;
  char *h = vfd_sandbox_spec_hash(o);

  assert_true(vfd_sandbox_spec_hash_valid(h));
  return h;
}

static void
test_spec(void **state)
{
  g_autofree char *base = hash_of(options("web", 512, FALSE, "x"));
  g_autofree char *other_name = hash_of(options("db", 512, FALSE, "x"));
  g_autofree char *no_name = hash_of(options(NULL, 512, FALSE, "x"));
  g_autofree char *reordered = hash_of(options("web", 512, TRUE, "x"));
  g_autofree char *memory = hash_of(options("web", 1024, FALSE, "x"));
  g_autofree char *label = hash_of(options("web", 512, FALSE, "y"));

  /* the name is not part of the spec; the order of keys is not either */
  assert_string_equal(base, other_name);
  assert_string_equal(base, no_name);
  assert_string_equal(base, reordered);
  /* any other option is */
  assert_string_not_equal(base, memory);
  assert_string_not_equal(base, label);
  assert_false(vfd_sandbox_spec_hash_valid("abc"));
  assert_false(vfd_sandbox_spec_hash_valid(NULL));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_labels),
    cmocka_unit_test(test_spec),
  };
  (void) vfd_error_quark();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
