/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sandbox's disks (issue 15, item 2; vfiod/vm/guest-disks.c): every
 * check of CreateSandbox's disks aa{sv} (roles, path or fd, read_only,
 * unknown keys and types, counts, the overlay's rules, fds of the wrong
 * kind or mode), and the QEMU and guest arguments made from them (fd sets,
 * read-only drives, serials, vfiod.root/rootflags/overlay), with fds that
 * are new open file descriptions of the same file; guest-init's command
 * line parser takes what vfiod writes and refuses what it never would. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "guest-disks.h"

#include "cmdline.h" /* guest-init's parser */

static GiCmdline cl; /* large: off the stack */
static char tmpdir[] = "/tmp/vfiod-test-disks-XXXXXX";
static char img[256], img2[256];

/* One disks entry: role, then key/value pairs (path s, fd h, read_only b). */
static GVariant *
entry(const char *role, const char *path, int fd, int read_only)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
  if (role)
    g_variant_builder_add(&b, "{sv}", "role", g_variant_new_string(role));
  if (path)
    g_variant_builder_add(&b, "{sv}", "path", g_variant_new_string(path));
  if (fd >= 0)
    g_variant_builder_add(&b, "{sv}", "fd", g_variant_new_handle(fd));
  if (read_only >= 0)
    g_variant_builder_add(&b, "{sv}", "read_only", g_variant_new_boolean(read_only));
  return g_variant_builder_end(&b);
}

static GVariant *
disks_of(GVariant **entries, int n)
{
  return g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE("a{sv}"), entries, (gsize) n));
}

/* Parses @disks (taken), expects failure with @code and @needle. */
static void
refused(GVariant *disks, const char *legacy, GUnixFDList *fds, int code, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) r = vfd_disks_parse(disks, legacy, fds, &error);

  if (disks)
    g_variant_unref(disks);
  assert_null(r);
  assert_non_null(error);
  if (!strstr(error->message, needle))
    fail_msg("want '%s' in '%s'", needle, error->message);
  assert_int_equal(error->code, code);
}

static int
setup(void **state)
{
  FILE *f;

  assert_non_null(g_mkdtemp(tmpdir));
  g_snprintf(img, sizeof img, "%s/root.img", tmpdir);
  g_snprintf(img2, sizeof img2, "%s/ovl.img", tmpdir);
  f = fopen(img, "w");
  fputs("root image\n", f);
  fclose(f);
  f = fopen(img2, "w");
  fputs("overlay image\n", f);
  fclose(f);
  return 0;
}

static int
teardown(void **state)
{
  unlink(img);
  unlink(img2);
  rmdir(tmpdir);
  return 0;
}

static void
test_refusals(void **state)
{
  GVariant *e[10];

  refused(disks_of((GVariant *[]){ entry(NULL, img, -1, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "disks[0]: role is required");
  refused(disks_of((GVariant *[]){ entry("swap", img, -1, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "role 'swap' is not root, overlay or data");
  refused(disks_of((GVariant *[]){ entry("root", NULL, -1, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "give a path or an fd");
  refused(disks_of((GVariant *[]){ entry("root", "rel/img", -1, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "must be absolute");
  refused(disks_of((GVariant *[]){ entry("root", "/a/../etc/shadow", -1, -1) }, 1), NULL, NULL,
          VFD_ERROR_INVALID_ARGUMENT, "without '.' or '..'");
  refused(disks_of((GVariant *[]){ entry("root", img, -1, 1), entry("root", img, -1, 1) }, 2), NULL, NULL,
          VFD_ERROR_INVALID_ARGUMENT, "disks[1]: a second root disk");
  refused(disks_of((GVariant *[]){ entry("root", img, -1, 1), entry("overlay", img2, -1, -1),
                                   entry("overlay", img2, -1, -1) },
                   3),
          NULL, NULL, VFD_ERROR_INVALID_ARGUMENT, "disks[2]: a second overlay disk");
  refused(disks_of((GVariant *[]){ entry("root", img, -1, 0), entry("overlay", img2, -1, -1) }, 2), NULL, NULL,
          VFD_ERROR_INVALID_ARGUMENT, "an overlay needs a read-only root disk");
  refused(disks_of((GVariant *[]){ entry("overlay", img2, -1, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "an overlay needs a root disk");
  refused(disks_of((GVariant *[]){ entry("root", img, -1, 1), entry("overlay", img2, -1, 1) }, 2), NULL, NULL,
          VFD_ERROR_INVALID_ARGUMENT, "cannot be read-only");
  refused(disks_of((GVariant *[]){ entry("data", img, -1, -1) }, 1), img, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "give disk or disks, not both");
  refused(NULL, "relative.img", NULL, VFD_ERROR_INVALID_ARGUMENT, "disk: disks[0]: path");
  for (int i = 0; i < 9; i++)
    e[i] = entry("data", img, -1, 1);
  refused(disks_of(e, 9), NULL, NULL, VFD_ERROR_LIMIT_EXCEEDED, "9 given, at most 8");
  /* unknown keys and wrong types */
  {
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", "role", g_variant_new_string("root"));
    g_variant_builder_add(&b, "{sv}", "path", g_variant_new_string(img));
    g_variant_builder_add(&b, "{sv}", "cache", g_variant_new_string("none"));
    e[0] = g_variant_builder_end(&b);
    refused(disks_of(e, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT, "unknown key 'cache'");
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", "role", g_variant_new_string("root"));
    g_variant_builder_add(&b, "{sv}", "path", g_variant_new_string(img));
    g_variant_builder_add(&b, "{sv}", "read_only", g_variant_new_string("yes"));
    e[0] = g_variant_builder_end(&b);
    refused(disks_of(e, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT, "read_only must be of type b");
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", "role", g_variant_new_string("root"));
    g_variant_builder_add(&b, "{sv}", "fd", g_variant_new_int32(0));
    e[0] = g_variant_builder_end(&b);
    refused(disks_of(e, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT, "fd must be of type h");
  }
}

/* fds: a handle beyond the list, a directory, O_PATH, write-only, and a
 * read-only fd for a writable disk are refused; the accepted fd is a dup. */
static void
test_fds(void **state)
{
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new();
  int ro = open(img, O_RDONLY | O_CLOEXEC), rw = open(img, O_RDWR | O_CLOEXEC);
  int dir = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), path = open(img, O_PATH | O_CLOEXEC);
  int wo = open(img, O_WRONLY | O_CLOEXEC);
  int i_ro = g_unix_fd_list_append(fds, ro, NULL), i_rw = g_unix_fd_list_append(fds, rw, NULL);
  int i_dir = g_unix_fd_list_append(fds, dir, NULL), i_path = g_unix_fd_list_append(fds, path, NULL);
  int i_wo = g_unix_fd_list_append(fds, wo, NULL);
  g_autoptr(GPtrArray) ok = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) disks = NULL;
  struct stat a, b;

  refused(disks_of((GVariant *[]){ entry("root", NULL, 7, -1) }, 1), NULL, fds, VFD_ERROR_INVALID_ARGUMENT,
          "fd 7: no such file descriptor");
  refused(disks_of((GVariant *[]){ entry("root", NULL, 0, -1) }, 1), NULL, NULL, VFD_ERROR_INVALID_ARGUMENT,
          "no such file descriptor");
  refused(disks_of((GVariant *[]){ entry("data", NULL, i_dir, 1) }, 1), NULL, fds, VFD_ERROR_INVALID_ARGUMENT,
          "not a regular file");
  refused(disks_of((GVariant *[]){ entry("data", NULL, i_path, 1) }, 1), NULL, fds, VFD_ERROR_INVALID_ARGUMENT,
          "O_PATH");
  refused(disks_of((GVariant *[]){ entry("data", NULL, i_wo, -1) }, 1), NULL, fds, VFD_ERROR_INVALID_ARGUMENT,
          "open for writing only");
  refused(disks_of((GVariant *[]){ entry("root", NULL, i_ro, 0) }, 1), NULL, fds, VFD_ERROR_INVALID_ARGUMENT,
          "must be open O_RDWR");
  disks = disks_of((GVariant *[]){ entry("root", NULL, i_ro, 1), entry("data", NULL, i_rw, -1),
                                   entry("data", img2, -1, 1) },
                   3);
  ok = vfd_disks_parse(disks, NULL, fds, &error);
  assert_null(error);
  assert_int_equal(ok->len, 3);
  {
    VfdDisk *r = g_ptr_array_index(ok, 0), *d0 = g_ptr_array_index(ok, 1), *d1 = g_ptr_array_index(ok, 2);

    assert_int_equal(r->role, VFD_DISK_ROOT);
    assert_true(r->read_only);
    assert_string_equal(r->serial, "vfiod-root");
    assert_true(r->fd >= 0 && r->fd != ro);
    assert_int_equal(fstat(r->fd, &a), 0);
    assert_int_equal(fstat(ro, &b), 0);
    assert_true(a.st_ino == b.st_ino);
    assert_true(fcntl(r->fd, F_GETFD) & FD_CLOEXEC);
    assert_string_equal(d0->serial, "vfiod-data0");
    assert_false(d0->read_only);
    assert_string_equal(d1->serial, "vfiod-data1");
    assert_int_equal(d1->index, 1);
    assert_int_equal(d1->fd, -1); /* a path: opened by the create's stage 0 */
    assert_string_equal(d1->path, img2);
    assert_ptr_equal(vfd_disks_root(ok), r);
  }
  close(ro);
  close(rw);
  close(dir);
  close(path);
  close(wo);
}

/* The arguments: fd sets per disk, read-only drives, serials, the guest's
 * words; every fd QEMU gets is a new open file description of the file,
 * with the access mode its drive needs. */
static void
test_qemu_args(void **state)
{
  g_autoptr(GVariant) disks = disks_of((GVariant *[]){ entry("root", img, -1, 1), entry("overlay", img2, -1, -1),
                                                       entry("data", img, -1, 1) },
                                       3);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ds = vfd_disks_parse(disks, NULL, NULL, &error);
  g_autoptr(GStrvBuilder) args = g_strv_builder_new(), append = g_strv_builder_new();
  g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
  g_auto(GStrv) a = NULL, w = NULL;
  g_autofree char *joined = NULL, *words = NULL;

  assert_non_null(ds);
  for (guint i = 0; i < ds->len; i++) {
    VfdDisk *d = g_ptr_array_index(ds, i);
    d->fd = open(d->path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC); /* as stage 0 does */
    assert_true(d->fd >= 0);
  }
  assert_true(vfd_disks_qemu_args(ds, TRUE, 4, args, append, fds, &error));
  assert_null(error);
  a = g_strv_builder_end(args);
  w = g_strv_builder_end(append);
  joined = g_strjoinv(" ", a);
  words = g_strjoinv(" ", w);
  /* root: one read-only fd; overlay: rw + ro; data: ro */
  assert_int_equal(fds->len, 4);
  assert_non_null(strstr(joined, "-add-fd fd=3,set=4,opaque=vfiod-root-ro"));
  assert_non_null(strstr(joined, "-add-fd fd=4,set=5,opaque=vfiod-overlay -add-fd fd=5,set=5,opaque=vfiod-overlay-ro"));
  assert_non_null(strstr(joined, "-add-fd fd=6,set=6,opaque=vfiod-data0-ro"));
  assert_non_null(strstr(joined, "-drive file=/dev/fdset/4,if=none,id=vfiod-root,format=raw,readonly=on "
                                 "-device virtio-blk-device,drive=vfiod-root,serial=vfiod-root"));
  assert_non_null(strstr(joined, "-drive file=/dev/fdset/5,if=none,id=vfiod-overlay,format=raw -device"));
  assert_non_null(strstr(joined, "id=vfiod-data0,format=raw,readonly=on"));
  assert_null(strstr(joined, img)); /* no host path */
  assert_string_equal(words, "vfiod.root=virtio:vfiod-root vfiod.rootflags=ro vfiod.overlay=virtio:vfiod-overlay");
  for (guint i = 0; i < fds->len; i++) {
    int fd = g_array_index(fds, int, i);
    int want = i == 1 ? O_RDWR : O_RDONLY;
    gboolean same_description = FALSE;

    assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, want);
    /* a new description: moving its offset leaves the disk's own alone */
    for (guint k = 0; k < ds->len; k++) {
      VfdDisk *d = g_ptr_array_index(ds, k);
      off_t before = lseek(d->fd, 0, SEEK_CUR);
      lseek(fd, 5, SEEK_SET);
      same_description = same_description || lseek(d->fd, 0, SEEK_CUR) != before;
      lseek(fd, 0, SEEK_SET);
    }
    assert_false(same_description);
    close(fd);
  }
  /* guest-init takes the words */
  gi_cmdline_parse(words, &cl);
  assert_string_equal(cl.root, "virtio:vfiod-root");
  assert_true(cl.root_ro);
  assert_string_equal(cl.overlay, "virtio:vfiod-overlay");
}

/* A read-only root without an overlay disk: a tmpfs overlay; a writable
 * root: none; no root: no words. */
static void
test_overlay_words(void **state)
{
  struct {
    GVariant *e;
    const char *words;
  } cases[] = {
    { entry("root", img, -1, 1), "vfiod.root=virtio:vfiod-root vfiod.rootflags=ro vfiod.overlay=tmpfs" },
    { entry("root", img, -1, 0), "vfiod.root=virtio:vfiod-root" },
    { entry("data", img, -1, 1), "" },
  };

  for (size_t c = 0; c < G_N_ELEMENTS(cases); c++) {
    g_autoptr(GVariant) disks = disks_of(&cases[c].e, 1);
    g_autoptr(GPtrArray) ds = vfd_disks_parse(disks, NULL, NULL, NULL);
    g_autoptr(GStrvBuilder) args = g_strv_builder_new(), append = g_strv_builder_new();
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    g_auto(GStrv) a = NULL, w = NULL;
    g_autofree char *words = NULL;
    VfdDisk *d;

    assert_non_null(ds);
    d = g_ptr_array_index(ds, 0);
    d->fd = open(d->path, O_RDWR | O_CLOEXEC);
    assert_true(vfd_disks_qemu_args(ds, FALSE, 4, args, append, fds, NULL));
    a = g_strv_builder_end(args);
    w = g_strv_builder_end(append);
    words = g_strjoinv(" ", w);
    assert_string_equal(words, cases[c].words);
    assert_non_null(strstr(a[g_strv_length(a) - 1], "virtio-blk-pci,"));
    for (guint i = 0; i < fds->len; i++)
      close(g_array_index(fds, int, i));
  }
}

/* guest-init's parser: vfiod.overlay takes tmpfs or a disk, nothing else. */
static void
test_guest_cmdline(void **state)
{
  static const char *const bad[] = { "vfiod.overlay=", "vfiod.overlay=ramfs", "vfiod.overlay=virtio:",
                                     "vfiod.overlay=/dev/../sda", "vfiod.overlay=virtio:a/b" };

  gi_cmdline_parse("vfiod.root=virtio:vfiod-root vfiod.rootflags=ro vfiod.overlay=tmpfs", &cl);
  assert_string_equal(cl.overlay, "tmpfs");
  gi_cmdline_parse("vfiod.root=/dev/vda vfiod.rootflags=ro vfiod.overlay=/dev/vdb", &cl);
  assert_string_equal(cl.overlay, "/dev/vdb");
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    gi_cmdline_parse(bad[i], &cl);
    if (cl.overlay[0] != '\0')
      fail_msg("'%s' accepted as '%s'", bad[i], cl.overlay);
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_refusals), cmocka_unit_test(test_fds), cmocka_unit_test(test_qemu_args),
    cmocka_unit_test(test_overlay_words), cmocka_unit_test(test_guest_cmdline),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
