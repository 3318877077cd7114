/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pins.env / versions.env: the C reader against bash reading the same
 * files (no drift), on the repository's real files and on edge cases, and
 * refusal of everything outside the documented format, with line numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pins.h"

/* Variables bash defines after `set -a; . FILE` beyond those of a bare
 * `env -i bash`: exactly what FILE sets, as bash sees it. */
static GHashTable *
bash_reads(const char *file)
{
  static const char script[] =
      "env -0 > \"$2.before\"; set -a; . \"$1\" || exit 3; env -0 > \"$2.after\"";
  g_autofree char *tmpdir = g_dir_make_tmp("test-pins-bash-XXXXXX", NULL);
  g_autofree char *base = g_build_filename(tmpdir, "env", NULL);
  g_autofree char *before_path = g_strconcat(base, ".before", NULL);
  g_autofree char *after_path = g_strconcat(base, ".after", NULL);
  const char *argv[] = { "env", "-i", "bash", "--norc", "--noprofile", "-c", script, "bash", file, base, NULL };
  g_autofree char *before = NULL, *after = NULL;
  gsize before_len = 0, after_len = 0;
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  GHashTable *defined = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  gint status = -1;
  g_autoptr(GError) error = NULL;

  assert_non_null(tmpdir);
  assert_true(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, &error));
  assert_true(g_spawn_check_wait_status(status, NULL));
  assert_true(g_file_get_contents(before_path, &before, &before_len, NULL));
  assert_true(g_file_get_contents(after_path, &after, &after_len, NULL));
  for (const char *p = before; p < before + before_len; p += strlen(p) + 1) {
    const char *eq = strchr(p, '=');
    if (eq)
      g_hash_table_insert(seen, g_strndup(p, (gsize) (eq - p)), g_strdup(eq + 1));
  }
  for (const char *p = after; p < after + after_len; p += strlen(p) + 1) {
    const char *eq = strchr(p, '=');
    g_autofree char *key = eq ? g_strndup(p, (gsize) (eq - p)) : NULL;
    const char *old;

    if (!key || g_str_equal(key, "_"))  /* $_ is bash's last argument */
      continue;
    old = g_hash_table_lookup(seen, key);
    if (!old || !g_str_equal(old, eq + 1))
      g_hash_table_insert(defined, g_steal_pointer(&key), g_strdup(eq + 1));
  }
  g_unlink(before_path);
  g_unlink(after_path);
  g_rmdir(tmpdir);
  return defined;
}

/* C and bash agree on every key and value of @file. */
static void
assert_no_drift(const char *file)
{
  g_autoptr(GHashTable) c = NULL;
  g_autoptr(GHashTable) sh = bash_reads(file);
  g_autoptr(GError) error = NULL;
  GHashTableIter it;
  gpointer k, v;

  if (!vfd_pins_load(file, &c, &error))
    fail_msg("%s", error->message);
  g_hash_table_iter_init(&it, c);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    const char *shv = g_hash_table_lookup(sh, k);
    if (!shv || !g_str_equal(shv, v))
      fail_msg("%s: %s is '%s' for C but '%s' for bash", file, (char *) k, (char *) v, shv ? shv : "(unset)");
  }
  g_hash_table_iter_init(&it, sh);
  while (g_hash_table_iter_next(&it, &k, &v))
    if (!g_hash_table_contains(c, k))
      fail_msg("%s: bash sets %s='%s', C does not", file, (char *) k, (char *) v);
  assert_int_equal(g_hash_table_size(c), g_hash_table_size(sh));
}

static const char *
source_root(void)
{
  const char *root = g_getenv("VFIOD_SOURCE_ROOT");

  if (!root || !*root) {
    fprintf(stderr, "VFIOD_SOURCE_ROOT is not set (meson sets it to the source tree)\n");
    exit(77);
  }
  return root;
}

static void
test_repo_pins_no_drift(void **state)
{
  g_autofree char *path = g_build_filename(source_root(), "pins.env", NULL);
  g_autoptr(GHashTable) pins = NULL;

  assert_no_drift(path);
  assert_true(vfd_pins_load(path, &pins, NULL));
  /* The keys the scripts and vfioctl use are there. */
  assert_non_null(vfd_pins_require(pins, "GUEST_KERNEL_PACKAGE", path, NULL));
  assert_non_null(vfd_pins_require(pins, "GUEST_KERNEL_RELEASE", path, NULL));
  assert_true(g_str_has_suffix(g_hash_table_lookup(pins, "GUEST_KERNEL_PACKAGE"),
                               g_hash_table_lookup(pins, "GUEST_KERNEL_RELEASE")));
}

static void
test_repo_versions_no_drift(void **state)
{
  g_autofree char *path = g_build_filename(source_root(), "versions.env", NULL);
  g_autoptr(GHashTable) v = NULL;
  g_autoptr(GError) error = NULL;

  assert_no_drift(path);
  assert_true(vfd_pins_load(path, &v, NULL));
  assert_non_null(vfd_pins_require(v, "NVIDIA_DRIVER_VERSION", path, NULL));
  assert_null(vfd_pins_require(v, "NO_SUCH_KEY", path, &error));
  assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null(strstr(error->message, "NO_SUCH_KEY"));
}

static char *
write_tmp(const char *content, gssize len)
{
  g_autoptr(GError) error = NULL;
  char *path = NULL;
  int fd = g_file_open_tmp("test-pins-XXXXXX.env", &path, &error);

  assert_true(fd >= 0);
  close(fd);
  assert_true(g_file_set_contents(path, content, len, NULL));
  return path;
}

/* Every character the format allows, comments, blank lines, '=' in a
 * value, a missing final newline: bash reads the same. */
static void
test_edge_cases_no_drift(void **state)
{
  static const char content[] =
      "# comment\n"
      "\n"
      "#another=comment with spaces $HOME `x`\n"
      "A=plain\n"
      "_UNDER_9=aZ09._+-:/@%,=\n"
      "EQ=a=b==c\n"
      "PATHLIKE=/usr/src/linux-headers-6.1.0-56-amd64\n"
      "LAST=no-final-newline";
  g_autofree char *path = write_tmp(content, -1);
  g_autoptr(GHashTable) pins = NULL;

  assert_no_drift(path);
  assert_true(vfd_pins_load(path, &pins, NULL));
  assert_int_equal(g_hash_table_size(pins), 5);
  assert_string_equal(g_hash_table_lookup(pins, "_UNDER_9"), "aZ09._+-:/@%,=");
  assert_string_equal(g_hash_table_lookup(pins, "EQ"), "a=b==c");
  assert_string_equal(g_hash_table_lookup(pins, "LAST"), "no-final-newline");
  g_unlink(path);
}

static void
test_malformed(void **state)
{
  static const struct {
    const char *content;
    guint line;
  } cases[] = {
    { "A=1\n B=2\n", 2 },                 /* leading space */
    { "A=1\nB =2\n", 2 },                 /* space before '=' */
    { "A= 2\n", 1 },                      /* space after '=' */
    { "A=\"quoted\"\n", 1 },              /* quotes */
    { "A='quoted'\n", 1 },
    { "A=two words\n", 1 },
    { "A=$HOME\n", 1 },                   /* expansion */
    { "A=`id`\n", 1 },
    { "A=~/x\n", 1 },                     /* tilde */
    { "A=x;y\n", 1 },
    { "A=x#y\n", 1 },
    { "A=x\\y\n", 1 },
    { "A=*\n", 1 },                       /* glob */
    { "A=1\r\n", 1 },                     /* CRLF */
    { "A=1 # trailing comment\n", 1 },
    { "# ok\n\nA=\n", 3 },                /* empty value */
    { "1A=x\n", 1 },                      /* key starting with a digit */
    { "A-B=x\n", 1 },
    { "export A=x\n", 1 },
    { "=x\n", 1 },
    { "JUSTAWORD\n", 1 },
    { "A=1\nB=2\nA=3\n", 3 },             /* set twice */
    { "A=caf\xc3\xa9\n", 1 },             /* non-ASCII */
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = write_tmp(cases[i].content, -1);
    g_autofree char *where = g_strdup_printf("%s:%u:", path, cases[i].line);
    g_autoptr(GHashTable) pins = NULL;
    g_autoptr(GError) error = NULL;

    if (vfd_pins_load(path, &pins, &error))
      fail_msg("case %zu (%s) was accepted", i, cases[i].content);
    assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
    if (!g_str_has_prefix(error->message, where))
      fail_msg("case %zu: message '%s' does not start with '%s'", i, error->message, where);
    assert_null(pins);
    g_unlink(path);
  }
}

static void
test_nul_and_missing(void **state)
{
  g_autofree char *path = write_tmp("A=1\nB=2\0\n", 9);
  g_autoptr(GHashTable) pins = NULL;
  g_autoptr(GError) error = NULL;

  assert_false(vfd_pins_load(path, &pins, &error));
  assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA));
  assert_non_null(strstr(error->message, "NUL"));
  g_unlink(path);
  g_clear_error(&error);
  assert_false(vfd_pins_load(path, &pins, &error));
  assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  /* NULL error is allowed. */
  assert_false(vfd_pins_load(path, &pins, NULL));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_repo_pins_no_drift),
    cmocka_unit_test(test_repo_versions_no_drift),
    cmocka_unit_test(test_edge_cases_no_drift),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_nul_and_missing),
  };

  source_root();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
