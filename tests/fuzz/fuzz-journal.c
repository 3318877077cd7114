/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal reader, vfd_journal_open() (vfiod/host/journal.c): the journal on
 * disk may be corrupt or tampered with, and is read as root at every start.
 * The parser is static; its public entry point reads <state_dir>/journal.json,
 * so each input is written there first (a directory under /dev/shm, or
 * $FUZZ_TMPDIR, so that the fsyncs of a commit cost nothing).
 *
 * Checks: a refusal is VFD_ERROR_CORRUPT (the copy it keeps is deleted
 * again); an accepted journal has the shapes journal.h promises (records
 * sorted and unique, BDFs valid, strings present, sandbox ids, dirs, TAP
 * names, MACs, subnets and CIDs of the documented forms); committing it and reading
 * it back gives the same journal (the second commit writes the same bytes).
 * GLib criticals and warnings are fatal (fuzz-common.h). */
#define FUZZ_GLIB
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "error.h"
#include "fuzz-common.h"
#include "journal.h"
#include "netpool.h"

static char *state_dir;
static char *journal_path;

/* json-glib 1.6 leaks in its own scanner on some malformed input (a bad
 * "\u" escape after a high surrogate: a GString) and keeps all but the last
 * of several top-level values. The journal's text check
 * (vfd_json_text_check()) refuses both before json-glib runs, so no leak
 * is suppressed here: any leak is a finding. */

static void
remove_state_dir(void)
{
  g_autoptr(GDir) d = state_dir ? g_dir_open(state_dir, 0, NULL) : NULL;
  const char *name;

  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(state_dir, name, NULL);
    g_unlink(p);
  }
  if (state_dir)
    g_rmdir(state_dir);
}

/* Deletes what a refused journal left behind: journal.json.corrupt-<time>. */
static void
remove_corrupt_copies(void)
{
  g_autoptr(GDir) d = g_dir_open(state_dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name(d)))
    if (g_str_has_prefix(name, "journal.json.corrupt-")) {
      g_autofree char *p = g_build_filename(state_dir, name, NULL);
      g_unlink(p);
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  const char *base = g_getenv("FUZZ_TMPDIR");
  g_autofree char *tmpl = NULL;

  fuzz_glib_init();
  if (!base)
    base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                                       : g_get_tmp_dir();
  tmpl = g_build_filename(base, "vfiod-fuzz-journal-XXXXXX", NULL);
  if (!g_mkdtemp(tmpl)) {
    fprintf(stderr, "fuzz-journal: cannot create a directory in %s: %s\n", base, g_strerror(errno));
    exit(1);
  }
  state_dir = g_steal_pointer(&tmpl);
  journal_path = g_build_filename(state_dir, "journal.json", NULL);
  atexit(remove_state_dir);
  return 0;
}

static void
write_journal(const uint8_t *data, size_t size)
{
  int fd = open(journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t) size) || close(fd) < 0) {
    fprintf(stderr, "fuzz-journal: cannot write %s: %s\n", journal_path, g_strerror(errno));
    abort();
  }
}

/* The shapes journal.h promises about an accepted journal. */
static void
check_journal(VfdJournal *j)
{
  GPtrArray *devices = vfd_journal_devices(j);
  GPtrArray *sandboxes = vfd_journal_sandboxes(j);

  for (guint i = 0; i < devices->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(devices, i);
    VfdDeviceState state;
    char buf[VFD_BDF_STRLEN];
    VfdBdf again;

    FUZZ_CHECK(d->owner != NULL && d->original_override != NULL);
    FUZZ_CHECK(vfd_device_state_from_string(vfd_device_state_to_string(d->state), &state) == 0 &&
               state == d->state);
    FUZZ_CHECK(vfd_bdf_parse(vfd_bdf_format(&d->bdf, buf), &again) == 0 && vfd_bdf_equal(&again, &d->bdf));
    if (i > 0) {
      VfdJournalDevice *prev = g_ptr_array_index(devices, i - 1);
      FUZZ_CHECK(vfd_bdf_compare(&prev->bdf, &d->bdf) < 0);
    }
    FUZZ_CHECK(vfd_journal_lookup(j, &d->bdf) == d);
  }
  for (guint i = 0; i < sandboxes->len; i++) {
    VfdJournalSandbox *s = g_ptr_array_index(sandboxes, i);

    FUZZ_CHECK(s->id != NULL && s->id[0] != '\0' && s->dir != NULL && s->devices != NULL);
    /* finding 8: the forms vfiod acts on (deletes the dir, the TAP) */
    FUZZ_CHECK(vfd_journal_sandbox_id_valid(s->id));
    FUZZ_CHECK(g_path_is_absolute(s->dir) && !strstr(s->dir, "/../") && !g_str_has_suffix(s->dir, "/..") &&
               !strstr(s->dir, "/./") && !g_str_has_suffix(s->dir, "/."));
    FUZZ_CHECK(!s->subnet == !s->tap && !s->tap == !s->mac);
    if (s->tap) {
      VfdSubnet sn;
      FUZZ_CHECK(g_str_has_prefix(s->tap, "vfd") && strlen(s->tap) > 3 && strlen(s->tap) < 16 &&
                 strspn(s->tap + 3, "0123456789abcdef") == strlen(s->tap) - 3);
      FUZZ_CHECK(strlen(s->mac) == 17 && strspn(s->mac, "0123456789abcdef:") == 17);
      FUZZ_CHECK(vfd_subnet_parse(s->subnet, &sn) == 0);
    }
    FUZZ_CHECK(s->cid == 0 || s->cid >= 3);
    for (char **bdf = s->devices; *bdf; bdf++) {
      VfdBdf tmp;
      FUZZ_CHECK(vfd_bdf_parse(*bdf, &tmp) == 0);
    }
    if (i > 0) {
      VfdJournalSandbox *prev = g_ptr_array_index(sandboxes, i - 1);
      FUZZ_CHECK(strcmp(prev->id, s->id) < 0);
    }
    FUZZ_CHECK(vfd_journal_lookup_sandbox(j, s->id) == s);
  }
}

static char *
commit_and_read(VfdJournal *j, gsize *ret_len)
{
  g_autoptr(GError) error = NULL;
  char *contents = NULL;

  if (!vfd_journal_commit(j, &error)) {
    fprintf(stderr, "fuzz-journal: commit failed: %s\n", error->message);
    abort();
  }
  FUZZ_CHECK(g_file_get_contents(journal_path, &contents, ret_len, NULL));
  return contents;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdJournal) j = NULL;
  g_autoptr(VfdJournal) again = NULL;
  g_autofree char *first = NULL, *second = NULL;
  gsize first_len = 0, second_len = 0;

  write_journal(data, size);
  j = vfd_journal_open(state_dir, &error);
  if (!j) {
    FUZZ_CHECK(g_error_matches(error, VFD_ERROR, VFD_ERROR_CORRUPT));
    remove_corrupt_copies();
    return 0;
  }
  FUZZ_CHECK(error == NULL);
  check_journal(j);

  /* What vfiod writes, it reads back as the same journal. */
  first = commit_and_read(j, &first_len);
  again = vfd_journal_open(state_dir, &error);
  if (!again) {
    fprintf(stderr, "fuzz-journal: a committed journal is refused: %s\n", error->message);
    abort();
  }
  check_journal(again);
  FUZZ_CHECK(vfd_journal_devices(again)->len == vfd_journal_devices(j)->len);
  FUZZ_CHECK(vfd_journal_sandboxes(again)->len == vfd_journal_sandboxes(j)->len);
  second = commit_and_read(again, &second_len);
  FUZZ_CHECK(first_len == second_len && memcmp(first, second, first_len) == 0);
  return 0;
}
