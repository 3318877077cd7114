/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Journal: round-trip through disk, versioning, corrupt files kept aside. */
#include <errno.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "error.h"
#include "journal.h"

static char *
tmpdir(void)
{
  char *d = g_dir_make_tmp("vfiod-journal-XXXXXX", NULL);
  assert_non_null(d);
  return d;
}

static void
rm_tree(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *n;

  while (d && (n = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, n, NULL);
    g_unlink(p);
  }
  g_rmdir(dir);
}

static void
test_round_trip(void **state)
{
  g_autofree char *dir = tmpdir();
  g_autoptr(GError) error = NULL;
  VfdBdf a, b;
  char *devs[] = { "0000:01:00.0", "0000:01:00.1", NULL };

  assert_int_equal(vfd_bdf_parse("0000:01:00.0", &a), 0);
  assert_int_equal(vfd_bdf_parse("0000:01:00.1", &b), 0);
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    VfdJournalDevice d1 = { .bdf = b, .iommu_group = 7, .state = VFD_DEVICE_STATE_BINDING, .owner = "sb-1",
                            .original_driver = NULL, .original_override = "" };
    VfdJournalDevice d2 = { .bdf = a, .iommu_group = 7, .state = VFD_DEVICE_STATE_BOUND, .owner = "sb-1",
                            .original_driver = "nvidia", .original_override = "nvidia" };
    VfdJournalSandbox s = { .id = "sb-1", .pid = 4242, .start_time = 123456789, .devices = devs,
                            .dir = "/run/vfiod/sandboxes/sb-1", .subnet = "10.0.128.4/30", .tap = "vfd1",
                            .mac = "02:00:00:00:00:01", .cid = 7, .nat = TRUE };
    assert_non_null(j);
    assert_int_equal(vfd_journal_devices(j)->len, 0);
    vfd_journal_put(j, &d1);
    vfd_journal_put(j, &d2);
    vfd_journal_put_sandbox(j, &s);
    assert_true(vfd_journal_commit(j, &error));
  }
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    GPtrArray *devices;
    VfdJournalDevice *d;
    VfdJournalSandbox *s;

    assert_non_null(j);
    devices = vfd_journal_devices(j);
    assert_int_equal(devices->len, 2);
    /* sorted by BDF */
    d = g_ptr_array_index(devices, 0);
    assert_true(vfd_bdf_equal(&d->bdf, &a));
    assert_int_equal(d->state, VFD_DEVICE_STATE_BOUND);
    assert_string_equal(d->original_driver, "nvidia");
    assert_string_equal(d->original_override, "nvidia");
    d = g_ptr_array_index(devices, 1);
    assert_int_equal(d->state, VFD_DEVICE_STATE_BINDING);
    assert_null(d->original_driver);
    assert_string_equal(d->original_override, "");
    assert_int_equal(d->iommu_group, 7);
    assert_string_equal(d->owner, "sb-1");
    s = vfd_journal_lookup_sandbox(j, "sb-1");
    assert_non_null(s);
    assert_int_equal(s->pid, 4242);
    assert_int_equal(s->start_time, 123456789);
    assert_int_equal(g_strv_length(s->devices), 2);
    assert_string_equal(s->dir, "/run/vfiod/sandboxes/sb-1");
    assert_string_equal(s->subnet, "10.0.128.4/30");
    assert_string_equal(s->tap, "vfd1");
    assert_string_equal(s->mac, "02:00:00:00:00:01");
    assert_int_equal(s->cid, 7);
    assert_true(s->nat);

    vfd_journal_remove(j, &a);
    vfd_journal_remove_sandbox(j, "sb-1");
    assert_true(vfd_journal_commit(j, &error));
  }
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    assert_int_equal(vfd_journal_devices(j)->len, 1);
    assert_int_equal(vfd_journal_sandboxes(j)->len, 0);
  }
  rm_tree(dir);
}

static void
check_corrupt(const char *contents)
{
  g_autofree char *dir = tmpdir();
  g_autofree char *path = g_build_filename(dir, "journal.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdJournal) j = NULL;
  g_autoptr(GDir) d = NULL;
  const char *name;
  gboolean copy_found = FALSE;

  assert_true(g_file_set_contents(path, contents, -1, NULL));
  j = vfd_journal_open(dir, &error);
  assert_null(j);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_CORRUPT));
  assert_non_null(strstr(error->message, "corrupt"));
  assert_non_null(strstr(error->message, "journal.json.corrupt-"));
  /* The copy exists, with the same bytes; the original is untouched. */
  d = g_dir_open(dir, 0, NULL);
  while ((name = g_dir_read_name(d))) {
    if (g_str_has_prefix(name, "journal.json.corrupt-")) {
      g_autofree char *p = g_build_filename(dir, name, NULL);
      g_autofree char *c = NULL;
      assert_true(g_file_get_contents(p, &c, NULL, NULL));
      assert_string_equal(c, contents);
      copy_found = TRUE;
    }
  }
  assert_true(copy_found);
  {
    g_autofree char *c = NULL;
    assert_true(g_file_get_contents(path, &c, NULL, NULL));
    assert_string_equal(c, contents);
  }
  rm_tree(dir);
}

static void
test_corrupt(void **state)
{
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[");    /* truncated */
  check_corrupt("not json at all");
  check_corrupt("[]");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":99,\"devices\":[],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"other\",\"version\":1,\"devices\":[],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"../../x\",\"iommu_group\":1,"
                "\"state\":\"bound\",\"owner\":\"a\",\"original_driver\":null}],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"0000:01:00.0\",\"iommu_group\":1,"
                "\"state\":\"flying\",\"owner\":\"a\",\"original_driver\":null}],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"0000:01:00.0\",\"iommu_group\":1,"
                "\"state\":\"bound\",\"owner\":\"a\",\"original_driver\":null},{\"bdf\":\"0000:01:00.0\","
                "\"iommu_group\":1,\"state\":\"bound\",\"owner\":\"a\",\"original_driver\":null}],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{\"id\":\"sb-1\"}]}");
}

/* A tampered journal (found by tests/fuzz/fuzz-journal): members of the
 * wrong JSON type or out of range are refused, not read as 0 or NULL with a
 * GLib critical; nesting that would overflow json-glib's stack, and a second
 * document after the first, are refused before parsing. Criticals are fatal
 * in this test (main). */
static void
test_tampered(void **state)
{
#define DEV(members) "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"0000:01:00.0\"," \
  "\"state\":\"bound\",\"original_driver\":null" members "}],\"sandboxes\":[]}"
#define SB(members) "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{\"id\":\"sb-1\"," \
  "\"dir\":\"/run/vfiod/sandboxes/sb-1\"" members "}]}"
  g_autoptr(GString) deep = g_string_new("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[],\"x\":");

  check_corrupt(DEV(",\"iommu_group\":[]"));
  check_corrupt(DEV(",\"iommu_group\":{}"));
  check_corrupt(DEV(",\"iommu_group\":\"12\""));
  check_corrupt(DEV(",\"iommu_group\":null"));
  check_corrupt(DEV(",\"iommu_group\":4294967308"));
  check_corrupt(DEV(",\"iommu_group\":1.5"));
  check_corrupt(DEV(",\"iommu_group\":1,\"owner\":7"));
  check_corrupt(DEV(",\"iommu_group\":1,\"original_override\":[]"));
  /* not UTF-8 once unescaped: the journal written from it could not be read back */
  check_corrupt(DEV(",\"iommu_group\":1,\"owner\":\"sb-\\ud800\""));
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":[],\"devices\":[],\"sandboxes\":[]}");
  check_corrupt("{\"format\":{},\"version\":1,\"devices\":[],\"sandboxes\":[]}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1}");
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":{},\"sandboxes\":[]}");
  check_corrupt(SB(",\"devices\":[{\"bdf\":\"0000:01:00.0\"}]"));
  check_corrupt(SB(",\"devices\":[[]]"));
  check_corrupt(SB(",\"devices\":{}"));
  check_corrupt(SB(",\"devices\":[],\"pid\":\"4242\""));
  check_corrupt(SB(",\"devices\":[],\"cid\":-1"));
  check_corrupt(SB(",\"devices\":[],\"nat\":\"yes\""));
  check_corrupt(SB(",\"devices\":[],\"tap\":{}"));
  /* json-glib alone would take the second document */
  check_corrupt("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[]}"
                "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[]}");
  for (int i = 0; i < 100000; i++)
    g_string_append_c(deep, '[');
  check_corrupt(deep->str);
#undef DEV
#undef SB
}

static void
test_states(void **state)
{
  VfdDeviceState s;

  for (int i = VFD_DEVICE_STATE_HOST; i <= VFD_DEVICE_STATE_STUCK; i++) {
    assert_int_equal(vfd_device_state_from_string(vfd_device_state_to_string(i), &s), 0);
    assert_int_equal(s, i);
  }
  assert_int_equal(vfd_device_state_from_string("Bound", &s), -EINVAL);
  assert_int_equal(vfd_device_state_from_string(NULL, &s), -EINVAL);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_corrupt),
    cmocka_unit_test(test_tampered),
    cmocka_unit_test(test_states),
  };
  /* A GLib critical means a malformed journal slipped past a check. */
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
