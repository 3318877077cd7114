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
#include "reconcile.h"
#include "tap.h"

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
    VfdJournalDevice d1 = { .bdf = b, .iommu_group = 7, .state = VFD_DEVICE_STATE_BINDING, .owner = "sb-1a2b3c4d",
                            .original_driver = NULL, .original_override = "" };
    /* strings with every kind of byte json-glib must escape: the text
     * check (vfd_json_text_check) accepts what vfiod wrote itself */
    VfdJournalDevice d2 = { .bdf = a, .iommu_group = 7, .state = VFD_DEVICE_STATE_BOUND, .owner = "sb-1a2b3c4d",
                            .original_driver = "nvidia", .original_override = "nv\x01\t\n\"\\/\x7f\xc3\xa9\xf0\x9f\x98\x80" };
    VfdJournalSandbox s = { .id = "sb-1a2b3c4d", .pid = 4242, .start_time = 123456789, .devices = devs,
                            .dir = "/run/vfiod/sandboxes/sb-1a2b3c4d", .subnet = "10.0.128.4/30",
                            .tap = "vfd1a2b3c4d", .mac = "02:00:0a:00:80:06", .cid = 7, .nat = TRUE,
                            .memory_mib = 4096, .vcpus = 8, .numa_node = 1 };
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
    assert_string_equal(d->original_override, "nv\x01\t\n\"\\/\x7f\xc3\xa9\xf0\x9f\x98\x80");
    d = g_ptr_array_index(devices, 1);
    assert_int_equal(d->state, VFD_DEVICE_STATE_BINDING);
    assert_null(d->original_driver);
    assert_string_equal(d->original_override, "");
    assert_int_equal(d->iommu_group, 7);
    assert_string_equal(d->owner, "sb-1a2b3c4d");
    s = vfd_journal_lookup_sandbox(j, "sb-1a2b3c4d");
    assert_non_null(s);
    assert_int_equal(s->pid, 4242);
    assert_int_equal(s->start_time, 123456789);
    /* what GetSandbox reports survives a restart (issue 14) */
    assert_int_equal(s->memory_mib, 4096);
    assert_int_equal(s->vcpus, 8);
    assert_int_equal(s->numa_node, 1);
    assert_int_equal(g_strv_length(s->devices), 2);
    assert_string_equal(s->dir, "/run/vfiod/sandboxes/sb-1a2b3c4d");
    assert_string_equal(s->subnet, "10.0.128.4/30");
    assert_string_equal(s->tap, "vfd1a2b3c4d");
    assert_string_equal(s->mac, "02:00:0a:00:80:06");
    assert_int_equal(s->cid, 7);
    assert_true(s->nat);

    vfd_journal_remove(j, &a);
    vfd_journal_remove_sandbox(j, "sb-1a2b3c4d");
    assert_true(vfd_journal_commit(j, &error));
  }
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    assert_int_equal(vfd_journal_devices(j)->len, 1);
    assert_int_equal(vfd_journal_sandboxes(j)->len, 0);
  }
  rm_tree(dir);
}

/* Writes @contents as the journal, opens it: refused as corrupt, a copy
 * kept, the file untouched. Returns the error message. */
static char *
corrupt_message(const char *contents)
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
  if (j)
    fail_msg("accepted a corrupt journal: %.400s", contents);
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
  return g_strdup(error->message);
}

static void
check_corrupt(const char *contents)
{
  g_free(corrupt_message(contents));
}

/* As check_corrupt, and the message says @what (e.g. the member's name). */
static void
check_corrupt_says(const char *contents, const char *what)
{
  g_autofree char *msg = corrupt_message(contents);

  if (!strstr(msg, what))
    fail_msg("the message does not say '%s': %s\n(journal: %.300s)", what, msg, contents);
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
#define SB(members) "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{\"id\":\"sb-1a2b3c4d\"," \
  "\"dir\":\"/run/vfiod/sandboxes/sb-1a2b3c4d\"" members "}]}"
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

/* A journal with one sandbox record; each argument is the member's JSON
 * value, or NULL to leave it out. */
static char *
sandbox_journal(const char *id, const char *dir, const char *subnet, const char *tap, const char *mac,
                const char *cid)
{
  GString *j = g_string_new("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{");

  g_string_append_printf(j, "\"devices\":[]");
  if (id)
    g_string_append_printf(j, ",\"id\":%s", id);
  if (dir)
    g_string_append_printf(j, ",\"dir\":%s", dir);
  if (subnet)
    g_string_append_printf(j, ",\"subnet\":%s", subnet);
  if (tap)
    g_string_append_printf(j, ",\"tap\":%s", tap);
  if (mac)
    g_string_append_printf(j, ",\"mac\":%s", mac);
  if (cid)
    g_string_append_printf(j, ",\"cid\":%s", cid);
  g_string_append(j, "}]}");
  return g_string_free(j, FALSE);
}

#define ID "\"sb-1a2b3c4d\""
#define DIR "\"/run/vfiod/sandboxes/sb-1a2b3c4d\""
#define SUBNET "\"10.0.128.4/30\""
#define TAP "\"vfd1a2b3c4d\""
#define MAC "\"02:00:0a:00:80:06\""

static void
accepted(char *contents)
{
  g_autofree char *dir = tmpdir();
  g_autofree char *path = g_build_filename(dir, "journal.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdJournal) j = NULL;

  assert_true(g_file_set_contents(path, contents, -1, NULL));
  j = vfd_journal_open(dir, &error);
  if (!j)
    fail_msg("refused a valid journal: %s\n(journal: %s)", error->message, contents);
  assert_int_equal(vfd_journal_sandboxes(j)->len, 1);
  rm_tree(dir);
  g_free(contents);
}

static void
refused(char *contents, const char *member)
{
  g_autofree char *what = g_strdup_printf("malformed sandbox record%s: \"%s\"",
                                          strstr(contents, "\"id\":" ID) ? " sb-1a2b3c4d" : "", member);
  check_corrupt_says(contents, what);
  g_free(contents);
}

/* Finding 8: every field that vfiod acts on is checked for its form; a bad
 * one makes the journal corrupt (no device is touched, nothing deleted),
 * with a message naming the record and the member, never a default. */
static void
test_tampered_fields(void **state)
{
  /* what vfiod writes: accepted, with and without its network */
  accepted(sandbox_journal(ID, DIR, SUBNET, TAP, MAC, "3"));
  accepted(sandbox_journal(ID, DIR, NULL, NULL, NULL, NULL));
  accepted(sandbox_journal(ID, DIR, SUBNET, "\"vfd0\"", MAC, "4294967294"));
  accepted(sandbox_journal(ID, DIR, SUBNET, "\"vfd1a2b3c4d5e6f\"", MAC, NULL)); /* 15 bytes */

  /* sandbox ids: exactly "sb-" + 8 lower-case hex digits (new_sandbox_id) */
  refused(sandbox_journal("\"sb-1\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("\"sb-1A2B3C4D\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("\"sb-1a2b3c4d0\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("\"sb-1a2b3c4g\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("\"../../etc\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("\"\"", DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal(NULL, DIR, NULL, NULL, NULL, NULL), "id");
  refused(sandbox_journal("7", DIR, NULL, NULL, NULL, NULL), "id");
  /* dir: absolute, no "." or ".." component (reconcile then wants exactly
   * <runtime dir>/sandboxes/<id>: test_reconcile_dir_check) */
  refused(sandbox_journal(ID, "\"run/vfiod/sandboxes/sb-1a2b3c4d\"", NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, "\"/run/vfiod/sandboxes/../../../etc\"", NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, "\"/run/vfiod/sandboxes/sb-1a2b3c4d/..\"", NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, "\"/run/./vfiod\"", NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, "\"\"", NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, NULL, NULL, NULL, NULL, NULL), "dir");
  refused(sandbox_journal(ID, "[]", NULL, NULL, NULL, NULL), "dir");
  /* tap: "vfd" + 1..12 lower-case hex digits, shorter than IFNAMSIZ */
  refused(sandbox_journal(ID, DIR, SUBNET, "\"eth0\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"lo\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"vfd\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"vfd1A2B3C4D\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"vfd-1a2b\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"vfdhabc\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "\"vfd1a2b3c4d5e6f7\"", MAC, NULL), "tap"); /* 16 bytes */
  refused(sandbox_journal(ID, DIR, SUBNET, "\"xvfd1a2b\"", MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, "1", MAC, NULL), "tap");
  /* mac: xx:xx:xx:xx:xx:xx, lower-case hex */
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02:00:0a:00:80\"", NULL), "mac");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02:00:0A:00:80:06\"", NULL), "mac");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02-00-0a-00-80-06\"", NULL), "mac");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02:00:0a:00:80:0g\"", NULL), "mac");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02:00:0a:00:80:066\"", NULL), "mac");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, "\"02:00:0a:00:80:06,x=y\"", NULL), "mac");
  /* subnet: an IPv4 CIDR vfiod could have allocated */
  refused(sandbox_journal(ID, DIR, "\"10.0.128.4\"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"10.0.128.5/30\"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"10.0.128.4/31\"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"300.0.128.4/30\"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"10.0.128.4/30 \"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"fe80::/64\"", TAP, MAC, NULL), "subnet");
  refused(sandbox_journal(ID, DIR, "\"10.0.128.4/x\"", TAP, MAC, NULL), "subnet");
  /* the network members come together */
  refused(sandbox_journal(ID, DIR, SUBNET, NULL, MAC, NULL), "tap");
  refused(sandbox_journal(ID, DIR, SUBNET, TAP, NULL, NULL), "mac");
  refused(sandbox_journal(ID, DIR, NULL, TAP, MAC, NULL), "subnet");
  /* cid: a guest CID (0, 1 reserved, 2 the host) */
  refused(sandbox_journal(ID, DIR, NULL, NULL, NULL, "1"), "cid");
  refused(sandbox_journal(ID, DIR, NULL, NULL, NULL, "2"), "cid");
  refused(sandbox_journal(ID, DIR, NULL, NULL, NULL, "4294967295"), "cid");
  /* one record per sandbox */
  check_corrupt_says("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":["
                     "{\"id\":" ID ",\"dir\":" DIR ",\"devices\":[]},{\"id\":" ID ",\"dir\":" DIR ",\"devices\":[]}]}",
                     "duplicate sandbox record sb-1a2b3c4d");
  /* device records name the member too */
  check_corrupt_says("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"0000:01:00.0\","
                     "\"state\":\"bound\",\"original_driver\":null,\"iommu_group\":[]}],\"sandboxes\":[]}",
                     "malformed device record 0000:01:00.0: \"iommu_group\"");
  check_corrupt_says("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"0000:01:00.0\","
                     "\"state\":\"flying\",\"original_driver\":null,\"iommu_group\":1}],\"sandboxes\":[]}",
                     "malformed device record 0000:01:00.0: \"state\"");
  check_corrupt_says("{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[{\"bdf\":\"../../x\","
                     "\"state\":\"bound\",\"original_driver\":null,\"iommu_group\":1}],\"sandboxes\":[]}",
                     "malformed device record: \"bdf\"");
}
#undef ID
#undef DIR
#undef SUBNET
#undef TAP
#undef MAC

/* The start-up reconcile deletes a sandbox's dir recursively: only ever
 * <runtime dir>/sandboxes/<id>, whatever the journal says. */
static void
test_reconcile_dir_check(void **state)
{
  static const struct {
    const char *id, *dir;
  } bad[] = {
    { "sb-1a2b3c4d", "/" },
    { "sb-1a2b3c4d", "/etc" },
    { "sb-1a2b3c4d", "/root" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes/sb-00000000" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes/sb-1a2b3c4d/qemu" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes/sb-1a2b3c4d/" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes//sb-1a2b3c4d" },
    { "sb-1a2b3c4d", "/run/vfiod/sandboxes/../sandboxes/sb-1a2b3c4d" },
    { "sb-1a2b3c4d", "/other/runtime/sandboxes/sb-1a2b3c4d" },
    { "sb-1a2b3c4d", "run/vfiod/sandboxes/sb-1a2b3c4d" },
    { "sb-1a2b3c4d", "" },
    { "sb-1a2b3c4d", NULL },
    { "..", "/run/vfiod" },
    { "sb-../..", "/run/vfiod/sandboxes/sb-../.." },
    { "", "/run/vfiod/sandboxes" },
    { NULL, "/run/vfiod/sandboxes" },
  };
  g_autoptr(GError) error = NULL;

  assert_true(vfd_reconcile_check_sandbox_dir("/run/vfiod/sandboxes", "sb-1a2b3c4d",
                                              "/run/vfiod/sandboxes/sb-1a2b3c4d", &error));
  assert_null(error);
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    if (vfd_reconcile_check_sandbox_dir("/run/vfiod/sandboxes", bad[i].id, bad[i].dir, &error))
      fail_msg("accepted dir '%s' for sandbox '%s'", bad[i].dir, bad[i].id);
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
    if (bad[i].dir && *bad[i].dir && vfd_journal_sandbox_id_valid(bad[i].id))
      assert_non_null(strstr(error->message, "not '/run/vfiod/sandboxes/sb-1a2b3c4d'"));
    g_clear_error(&error);
  }
}

/* A TAP name from the journal is deleted only when it is a vfiod TAP name:
 * refused before any netlink request (no root needed: nothing is looked up). */
static void
test_tap_delete_refuses_foreign_names(void **state)
{
  static const char *const names[] = { "eth0", "lo", "wlan0", "docker0", "vfd", "vfd-x", "vfdX1", "vfd1 ",
                                       "vfd1a2b3c4d5e6f7", "", NULL };

  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    int r = vfd_tap_delete(names[i]);
    if (r != -EINVAL)
      fail_msg("vfd_tap_delete(\"%s\") = %d (%s), not -EINVAL", names[i] ? names[i] : "(null)", r, g_strerror(-r));
  }
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

/* Identity and the workload's result (issue 15, items 1 and 4) round-trip;
 * a record written before them still loads, without them; a bad name,
 * label or spec is refused as corrupt. */
static void
test_identity_round_trip(void **state)
{
  g_autofree char *dir = tmpdir();
  g_autofree char *path = g_build_filename(dir, "journal.json", NULL);
  g_autoptr(GError) error = NULL;
  char *devs[] = { NULL };
  char *labels[] = { "app", "web", "team/x", "caf\xc3\xa9 = \"q\"", NULL };
  const char *spec = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    VfdJournalSandbox s = { .id = "sb-00000001", .devices = devs, .dir = "/run/vfiod/sandboxes/sb-00000001",
                            .numa_node = -1, .name = "web-1", .labels = labels, .spec = (char *) spec,
                            .workload_exited = TRUE, .workload_exit_status = 3, .workload_signal = 9 };
    VfdJournalSandbox f = { .id = "sb-00000002", .devices = devs, .dir = "/run/vfiod/sandboxes/sb-00000002",
                            .numa_node = -1, .failure_reason = "mount proc: No such device" };
    VfdJournalSandbox z = { .id = "sb-00000003", .devices = devs, .dir = "/run/vfiod/sandboxes/sb-00000003",
                            .numa_node = -1, .workload_exited = TRUE, .workload_exit_status = 0 };
    assert_non_null(j);
    vfd_journal_put_sandbox(j, &s);
    vfd_journal_put_sandbox(j, &f);
    vfd_journal_put_sandbox(j, &z);
    assert_true(vfd_journal_commit(j, &error));
  }
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    VfdJournalSandbox *s;

    assert_non_null(j);
    s = vfd_journal_lookup_sandbox(j, "sb-00000001");
    assert_string_equal(s->name, "web-1");
    assert_int_equal(g_strv_length(s->labels), 4);
    assert_string_equal(s->labels[0], "app");
    assert_string_equal(s->labels[1], "web");
    assert_string_equal(s->labels[2], "team/x");
    assert_string_equal(s->labels[3], "caf\xc3\xa9 = \"q\"");
    assert_string_equal(s->spec, spec);
    assert_true(s->workload_exited);
    assert_int_equal(s->workload_exit_status, 3);
    assert_int_equal(s->workload_signal, 9);
    assert_null(s->failure_reason);
    s = vfd_journal_lookup_sandbox(j, "sb-00000002");
    assert_null(s->name);
    assert_null(s->labels);
    assert_false(s->workload_exited);
    assert_string_equal(s->failure_reason, "mount proc: No such device");
    /* status 0 is a result too */
    s = vfd_journal_lookup_sandbox(j, "sb-00000003");
    assert_true(s->workload_exited);
    assert_int_equal(s->workload_exit_status, 0);
  }
  rm_tree(dir);

  /* a record from before names, labels and results */
  dir = (g_free(dir), tmpdir());
  g_free(path);
  path = g_build_filename(dir, "journal.json", NULL);
  assert_true(g_file_set_contents(path,
                                  "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{\"id\":"
                                  "\"sb-1a2b3c4d\",\"pid\":0,\"devices\":[],\"dir\":\"/run/vfiod/sandboxes/sb-1a2b3c4d\"}]}",
                                  -1, NULL));
  {
    g_autoptr(VfdJournal) j = vfd_journal_open(dir, &error);
    VfdJournalSandbox *s;

    assert_non_null(j);
    s = vfd_journal_lookup_sandbox(j, "sb-1a2b3c4d");
    assert_non_null(s);
    assert_null(s->name);
    assert_null(s->labels);
    assert_null(s->spec);
    assert_false(s->workload_exited);
    assert_null(s->failure_reason);
  }
  rm_tree(dir);

#define REC(extra)                                                                                            \
  "{\"format\":\"vfiod-journal\",\"version\":1,\"devices\":[],\"sandboxes\":[{\"id\":\"sb-1a2b3c4d\","       \
  "\"devices\":[],\"dir\":\"/run/x\"," extra "}]}"
  check_corrupt(REC("\"name\":\"sb-web\""));
  check_corrupt(REC("\"name\":\"Web\""));
  check_corrupt(REC("\"name\":\"\""));
  check_corrupt(REC("\"labels\":[]"));
  check_corrupt(REC("\"labels\":{\"a b\":\"v\"}"));
  check_corrupt(REC("\"labels\":{\"k\":\"a\\nb\"}"));
  check_corrupt(REC("\"labels\":{\"k\":1}"));
  check_corrupt(REC("\"spec\":\"abc\""));
  check_corrupt(REC("\"workload_exit_status\":256"));
  check_corrupt(REC("\"workload_exit_status\":-1"));
  check_corrupt(REC("\"workload_signal\":200"));
#undef REC
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_corrupt),
    cmocka_unit_test(test_tampered),
    cmocka_unit_test(test_tampered_fields),
    cmocka_unit_test(test_reconcile_dir_check),
    cmocka_unit_test(test_tap_delete_refuses_foreign_names),
    cmocka_unit_test(test_states),
    cmocka_unit_test(test_identity_round_trip),
  };
  /* A GLib critical means a malformed journal slipped past a check. */
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
