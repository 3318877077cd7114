/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The initramfs packer: build images from temporary files, read them back
 * with libarchive, and check what is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "initramfs.h"

typedef struct archive TestArchive;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestArchive, archive_read_free)

typedef struct {
  char *dir;      /* temporary directory, removed at teardown */
  char *init;     /* a source file for /init, mode 0600 on disk */
  char *module;   /* another source file, mode 0640 */
  char *out;      /* <dir>/out/initrd.cpio.gz */
} Fixture;

/* One entry read back from an image. */
typedef struct {
  char *path;
  mode_t type;
  mode_t perm;
  dev_t rdev_major, rdev_minor;
  gint64 uid, gid, mtime;
  unsigned nlink;
  GBytes *data;
} ReadEntry;

static void
read_entry_free(ReadEntry *e)
{
  g_free(e->path);
  g_clear_pointer(&e->data, g_bytes_unref);
  g_free(e);
}

static char *
write_temp(const char *dir, const char *name, const char *content, mode_t mode)
{
  char *path = g_build_filename(dir, name, NULL);

  assert_true(g_file_set_contents(path, content, -1, NULL));
  assert_int_equal(chmod(path, mode), 0);
  return path;
}

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);
  g_autofree char *outdir = NULL;

  f->dir = g_dir_make_tmp("test-initramfs-XXXXXX", NULL);
  assert_non_null(f->dir);
  f->init = write_temp(f->dir, "guest-init", "#!/bin/true\nfake init\n", 0600);
  f->module = write_temp(f->dir, "mod.ko", "\x7f" "ELF module bytes", 0640);
  outdir = g_build_filename(f->dir, "out", NULL);
  assert_int_equal(g_mkdir(outdir, 0755), 0);
  f->out = g_build_filename(outdir, "initrd.cpio.gz", NULL);
  *state = f;
  return 0;
}

static void
rm_rf(const char *path)
{
  GDir *d = g_dir_open(path, 0, NULL);
  const char *name;

  if (!d) {
    g_unlink(path);
    return;
  }
  while ((name = g_dir_read_name(d))) {
    g_autofree char *child = g_build_filename(path, name, NULL);
    rm_rf(child);
  }
  g_dir_close(d);
  g_rmdir(path);
}

static int
teardown(void **state)
{
  Fixture *f = *state;

  rm_rf(f->dir);
  g_free(f->dir);
  g_free(f->init);
  g_free(f->module);
  g_free(f->out);
  g_free(f);
  return 0;
}

/* Reads @path (gzip'ed newc cpio) into a list of ReadEntry, in archive
 * order. */
static GPtrArray *
read_image(const char *path)
{
  g_autoptr(TestArchive) a = archive_read_new();
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func((GDestroyNotify) read_entry_free);
  struct archive_entry *ae;
  int r;

  assert_int_equal(archive_read_support_filter_gzip(a), ARCHIVE_OK);
  assert_int_equal(archive_read_support_format_cpio(a), ARCHIVE_OK);
  assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
  assert_int_equal(archive_filter_code(a, 0), ARCHIVE_FILTER_GZIP);
  while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
    ReadEntry *e = g_new0(ReadEntry, 1);
    la_int64_t size = archive_entry_size(ae);
    char *buf = g_malloc(size + 1);

    assert_int_equal(archive_format(a), ARCHIVE_FORMAT_CPIO_SVR4_NOCRC);
    e->path = g_strdup(archive_entry_pathname(ae));
    e->type = archive_entry_filetype(ae);
    e->perm = archive_entry_perm(ae);
    e->rdev_major = archive_entry_rdevmajor(ae);
    e->rdev_minor = archive_entry_rdevminor(ae);
    e->uid = archive_entry_uid(ae);
    e->gid = archive_entry_gid(ae);
    e->mtime = archive_entry_mtime(ae);
    e->nlink = archive_entry_nlink(ae);
    assert_int_equal(archive_read_data(a, buf, size), size);
    e->data = g_bytes_new_take(buf, size);
    g_ptr_array_add(entries, e);
  }
  assert_int_equal(r, ARCHIVE_EOF);
  return g_steal_pointer(&entries);
}

static const ReadEntry *
find(GPtrArray *entries, const char *path)
{
  for (guint i = 0; i < entries->len; i++) {
    const ReadEntry *e = entries->pdata[i];
    if (strcmp(e->path, path) == 0)
      return e;
  }
  fail_msg("no entry '%s' in the image", path);
  return NULL;
}

static void
assert_data(const ReadEntry *e, const char *want)
{
  gsize len;
  const char *data = g_bytes_get_data(e->data, &len);

  assert_int_equal(len, strlen(want));
  assert_memory_equal(data, want, len);
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);  /* sort passes char ** */
}

/* Names in @dir, sorted and joined with ' '. */
static char *
list_dir(const char *dir)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;

  assert_non_null(d);
  while ((name = g_dir_read_name(d)))
    g_ptr_array_add(names, g_strdup(name));
  g_dir_close(d);
  g_ptr_array_sort(names, compare_names);
  g_ptr_array_add(names, NULL);
  return g_strjoinv(" ", (char **) names->pdata);
}

static void
test_contents(void **state)
{
  Fixture *f = *state;
  const VfdInitramfsFile extra[] = {
    { f->module, "/lib/modules/6.1.0-56-amd64/mod.ko", 0644 },
    { f->module, "/etc/own-mode", 0 },   /* 0: keeps the source's 0640 */
  };
  const char *want[] = {
    "dev", "dev/console", "etc", "etc/own-mode", "init", "lib", "lib/modules",
    "lib/modules/6.1.0-56-amd64", "lib/modules/6.1.0-56-amd64/mod.ko",
    "proc", "run", "sys", "tmp",
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  g_autofree char *outdir = g_path_get_dirname(f->out);
  g_autofree char *listing = NULL;
  const ReadEntry *e;

  assert_true(vfd_initramfs_build(f->out, f->init, extra, G_N_ELEMENTS(extra), &error));
  assert_null(error);

  /* Exactly the expected entries, sorted, every parent before its child. */
  entries = read_image(f->out);
  assert_int_equal(entries->len, G_N_ELEMENTS(want));
  for (guint i = 0; i < entries->len; i++) {
    e = entries->pdata[i];
    assert_string_equal(e->path, want[i]);
    assert_int_equal(e->uid, 0);
    assert_int_equal(e->gid, 0);
    assert_int_equal(e->mtime, 0);
    if (e->type == AE_IFDIR) {
      assert_int_equal(e->perm, 0755);
      assert_int_equal(g_bytes_get_size(e->data), 0);
    }
  }

  e = find(entries, "init");
  assert_int_equal(e->type, AE_IFREG);
  assert_int_equal(e->perm, 0755);  /* whatever the source's mode (0600) */
  assert_int_equal(e->nlink, 1);
  assert_data(e, "#!/bin/true\nfake init\n");

  e = find(entries, "dev/console");
  assert_int_equal(e->type, AE_IFCHR);
  assert_int_equal(e->perm, 0600);
  assert_int_equal(e->rdev_major, 5);
  assert_int_equal(e->rdev_minor, 1);

  e = find(entries, "lib/modules/6.1.0-56-amd64/mod.ko");
  assert_int_equal(e->type, AE_IFREG);
  assert_int_equal(e->perm, 0644);
  assert_data(e, "\x7f" "ELF module bytes");

  e = find(entries, "etc/own-mode");
  assert_int_equal(e->perm, 0640);

  for (const char *const *d = (const char *const[]) { "dev", "proc", "sys", "run", "tmp", NULL }; *d; d++)
    assert_int_equal(find(entries, *d)->type, AE_IFDIR);

  /* Only the output in its directory: the temporary file was renamed. */
  listing = list_dir(outdir);
  assert_string_equal(listing, "initrd.cpio.gz");
}

static void
test_deterministic(void **state)
{
  Fixture *f = *state;
  const VfdInitramfsFile extra[] = { { f->module, "/lib/mod.ko", 0644 } };
  g_autofree char *out2 = g_strconcat(f->out, ".2", NULL);
  g_autofree char *a = NULL, *b = NULL;
  gsize alen, blen;
  struct utimbuf times = { 1000000000, 1000000000 };
  g_autoptr(GError) error = NULL;

  assert_true(vfd_initramfs_build(f->out, f->init, extra, 1, &error));
  /* Other source mtimes and another second on the clock change nothing. */
  assert_int_equal(utime(f->init, &times), 0);
  assert_int_equal(utime(f->module, &times), 0);
  g_usleep(1100 * 1000);
  assert_true(vfd_initramfs_build(out2, f->init, extra, 1, &error));

  assert_true(g_file_get_contents(f->out, &a, &alen, NULL));
  assert_true(g_file_get_contents(out2, &b, &blen, NULL));
  assert_int_equal(alen, blen);
  assert_memory_equal(a, b, alen);

  /* gzip header: magic, and no timestamp (bytes 4-7). */
  assert_true(alen > 10);
  assert_int_equal((guchar) a[0], 0x1f);
  assert_int_equal((guchar) a[1], 0x8b);
  assert_int_equal(a[4] | a[5] | a[6] | a[7], 0);
}

/* Runs a build that must fail with @code and an error naming @needle, and
 * checks that nothing was written: the output directory holds exactly
 * @listing afterwards. */
static void
assert_refused(Fixture *f, const char *init, const VfdInitramfsFile *extra, gsize n_extra,
               GIOErrorEnum code, const char *needle, const char *listing)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_path_get_dirname(f->out);
  g_autofree char *now = NULL;

  assert_false(vfd_initramfs_build(f->out, init, extra, n_extra, &error));
  assert_non_null(error);
  if (!g_error_matches(error, G_IO_ERROR, code))
    fail_msg("expected G_IO_ERROR code %d, got %s %d: %s", code,
             g_quark_to_string(error->domain), error->code, error->message);
  if (!strstr(error->message, needle))
    fail_msg("error '%s' does not name '%s'", error->message, needle);
  now = list_dir(dir);
  assert_string_equal(now, listing);
}

static void
test_refuse_symlink(void **state)
{
  Fixture *f = *state;
  g_autofree char *link = g_build_filename(f->dir, "link.ko", NULL);
  VfdInitramfsFile extra[] = { { link, "/lib/mod.ko", 0644 } };

  assert_int_equal(symlink(f->module, link), 0);
  assert_refused(f, f->init, extra, 1, G_IO_ERROR_INVALID_ARGUMENT, link, "");
  /* As init too. */
  assert_refused(f, link, NULL, 0, G_IO_ERROR_INVALID_ARGUMENT, "symlink", "");
}

static void
test_refuse_dotdot(void **state)
{
  Fixture *f = *state;
  g_autofree char *sub = g_build_filename(f->dir, "sub", NULL);
  g_autofree char *dotdot = g_build_filename(f->dir, "sub", "..", "mod.ko", NULL);
  VfdInitramfsFile bad_source[] = { { dotdot, "/lib/mod.ko", 0644 } };
  VfdInitramfsFile bad_dest[] = { { f->module, "/lib/../etc/mod.ko", 0644 } };

  /* The path resolves to a real regular file: refused for its shape alone. */
  assert_int_equal(g_mkdir(sub, 0755), 0);
  assert_true(g_file_test(dotdot, G_FILE_TEST_IS_REGULAR));
  assert_refused(f, f->init, bad_source, 1, G_IO_ERROR_INVALID_ARGUMENT, dotdot, "");
  assert_refused(f, f->init, bad_dest, 1, G_IO_ERROR_INVALID_ARGUMENT, "/lib/../etc/mod.ko", "");
}

static void
test_refuse_missing(void **state)
{
  Fixture *f = *state;
  g_autofree char *missing = g_build_filename(f->dir, "no-such-file", NULL);
  VfdInitramfsFile extra[] = { { missing, "/x", 0644 } };

  assert_refused(f, f->init, extra, 1, G_IO_ERROR_NOT_FOUND, missing, "");
  assert_refused(f, missing, NULL, 0, G_IO_ERROR_NOT_FOUND, missing, "");
}

static void
test_refuse_special_files(void **state)
{
  Fixture *f = *state;
  g_autofree char *fifo = g_build_filename(f->dir, "fifo", NULL);
  VfdInitramfsFile dir_source[] = { { f->dir, "/x", 0644 } };
  VfdInitramfsFile fifo_source[] = { { fifo, "/x", 0644 } };

  assert_refused(f, f->init, dir_source, 1, G_IO_ERROR_INVALID_ARGUMENT, f->dir, "");
  /* A FIFO would block an open(); it must be refused without one. */
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_refused(f, f->init, fifo_source, 1, G_IO_ERROR_INVALID_ARGUMENT, fifo, "");
}

static void
test_refuse_bad_dest(void **state)
{
  Fixture *f = *state;
  struct {
    const char *dest;
    guint mode;
    const char *needle;
  } cases[] = {
    { "relative/path", 0644, "relative/path" },
    { "/", 0644, "'/'" },
    { "/lib//mod.ko", 0644, "/lib//mod.ko" },
    { "/lib/./mod.ko", 0644, "/lib/./mod.ko" },
    { "/lib/", 0644, "/lib/" },
    { "/init", 0644, "/init" },              /* twice */
    { "/dev/console", 0644, "/dev/console" },
    { "/dev", 0644, "/dev" },                /* a file where a directory is */
    { "/init/x", 0644, "/init" },            /* a file used as a directory */
    { "/x", 04000000, "/x" },                /* mode beyond 07777 */
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    VfdInitramfsFile extra[] = { { f->module, cases[i].dest, cases[i].mode } };
    assert_refused(f, f->init, extra, 1, G_IO_ERROR_INVALID_ARGUMENT, cases[i].needle, "");
  }
  {
    VfdInitramfsFile twice[] = { { f->module, "/a", 0644 }, { f->init, "/a", 0644 } };
    assert_refused(f, f->init, twice, 2, G_IO_ERROR_INVALID_ARGUMENT, "/a", "");
  }
  {
    VfdInitramfsFile null_dest[] = { { f->module, NULL, 0644 } };
    assert_refused(f, f->init, null_dest, 1, G_IO_ERROR_INVALID_ARGUMENT, "(null)", "");
  }
}

static void
test_existing_output(void **state)
{
  Fixture *f = *state;
  g_autofree char *missing = g_build_filename(f->dir, "no-such-file", NULL);
  g_autofree char *content = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = NULL;

  /* A failed build leaves an existing output alone... */
  assert_true(g_file_set_contents(f->out, "old", -1, NULL));
  assert_refused(f, missing, NULL, 0, G_IO_ERROR_NOT_FOUND, missing, "initrd.cpio.gz");
  assert_true(g_file_get_contents(f->out, &content, NULL, NULL));
  assert_string_equal(content, "old");

  /* ...and a good one replaces it. */
  assert_true(vfd_initramfs_build(f->out, f->init, NULL, 0, &error));
  entries = read_image(f->out);
  assert_int_equal(entries->len, 7);  /* dev dev/console init proc run sys tmp */
  assert_string_equal(((ReadEntry *) entries->pdata[2])->path, "init");
}

static void
test_unwritable_output_dir(void **state)
{
  Fixture *f = *state;
  g_autofree char *out = g_build_filename(f->dir, "no-such-dir", "initrd.cpio.gz", NULL);
  g_autoptr(GError) error = NULL;

  assert_false(vfd_initramfs_build(out, f->init, NULL, 0, &error));
  assert_true(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND));
  assert_non_null(strstr(error->message, "no-such-dir"));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_contents, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuse_symlink, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuse_dotdot, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuse_missing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuse_special_files, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuse_bad_dest, setup, teardown),
    cmocka_unit_test_setup_teardown(test_existing_output, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unwritable_output_dir, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
