/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The initramfs stager against real kernel modules: the pinned Debian
 * kernel's tree, the same kernel in another flavour (vermagic refusal) and
 * nvidia/nvidia-uvm stand-ins built against the pinned headers, all fetched
 * by tests/data/fetch-test-kernels.sh into $VFIOD_TEST_KERNELS. Images are
 * read back with libarchive and compared byte for byte with their sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ftw.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libkmod.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pins.h"
#include "stage.h"

typedef struct archive TestArchive;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestArchive, archive_read_free)

/* Set once in main(). */
static char *pinned_release;   /* pins.env GUEST_KERNEL_RELEASE */
static char *other_release;    /* the other flavour */
static char *nvidia_version;   /* versions.env NVIDIA_DRIVER_VERSION */
static char *pinned_dir;       /* .../pinned/lib/modules/<pinned> */
static char *other_dir;        /* .../other/lib/modules/<other> */
static char *gpu_dir;          /* .../gpu/lib/modules/<pinned>: pinned + nvidia stand-ins */

typedef struct {
  char *dir;        /* temporary, removed at teardown */
  char *init;       /* a guest-init stand-in */
  char *cache;      /* <dir>/cache */
} Fixture;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static void
rm_rf(const char *path)
{
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
write_file(const char *dir, const char *rel, const char *content, gssize len)
{
  char *path = g_build_filename(dir, rel, NULL);
  g_autofree char *parent = g_path_get_dirname(path);

  assert_int_equal(g_mkdir_with_parents(parent, 0755), 0);
  assert_true(g_file_set_contents(path, content, len, NULL));
  return path;
}

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->dir = g_dir_make_tmp("test-stage-XXXXXX", NULL);
  assert_non_null(f->dir);
  f->init = write_file(f->dir, "guest-init", "\x7f" "ELF guest-init stand-in\n", -1);
  assert_int_equal(chmod(f->init, 0755), 0);
  f->cache = g_build_filename(f->dir, "cache", NULL);
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  Fixture *f = *state;

  rm_rf(f->dir);
  g_free(f->dir);
  g_free(f->init);
  g_free(f->cache);
  g_free(f);
  return 0;
}

static VfdStageRequest
base_request(Fixture *f, const char *modules_dir, const char *const *modules)
{
  VfdStageRequest req = {
    .guest_init = f->init,
    .kernel_release = pinned_release,
    .modules_dir = modules_dir,
    .modules = modules,
    .cache_dir = f->cache,
  };
  return req;
}

static GBytes *
read_bytes(const char *path)
{
  char *data = NULL;
  gsize len = 0;

  if (!g_file_get_contents(path, &data, &len, NULL))
    fail_msg("cannot read %s", path);
  return g_bytes_new_take(data, len);
}

/* The regular files of an image: "/path" -> GBytes. */
static GHashTable *
read_image(const char *path)
{
  g_autoptr(TestArchive) a = archive_read_new();
  GHashTable *files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  struct archive_entry *e;

  archive_read_support_filter_gzip(a);
  archive_read_support_format_cpio(a);
  assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    GByteArray *buf = g_byte_array_new();
    char chunk[65536];
    la_ssize_t n;

    if (archive_entry_filetype(e) != AE_IFREG) {
      g_byte_array_unref(buf);
      continue;
    }
    while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0)
      g_byte_array_append(buf, (const guint8 *) chunk, (guint) n);
    assert_true(n == 0);
    g_hash_table_insert(files, g_strconcat("/", archive_entry_pathname(e), NULL),
                        g_byte_array_free_to_bytes(buf));
  }
  return files;
}

static void
assert_image_file(GHashTable *image, const char *dest, const char *source)
{
  GBytes *got = g_hash_table_lookup(image, dest);
  g_autoptr(GBytes) want = read_bytes(source);

  if (!got)
    fail_msg("%s is not in the image", dest);
  if (!g_bytes_equal(got, want))
    fail_msg("%s in the image differs from %s", dest, source);
}

static gssize
index_of(GStrv list, const char *name)
{
  for (gssize i = 0; list[i]; i++)
    if (g_str_equal(list[i], name))
      return i;
  return -1;
}

/* The "depends" of a .ko as the module file itself records it (modinfo),
 * independent of the depmod indexes the stager orders by. */
static GStrv
ko_depends(const char *path)
{
  const char *null_config[] = { NULL };
  struct kmod_ctx *ctx = kmod_new(pinned_dir, null_config);
  struct kmod_module *mod = NULL;
  struct kmod_list *info = NULL, *l;
  GStrv deps = NULL;

  assert_non_null(ctx);
  assert_int_equal(kmod_module_new_from_path(ctx, path, &mod), 0);
  assert_true(kmod_module_get_info(mod, &info) >= 0);
  kmod_list_foreach(l, info) {
    if (g_str_equal(kmod_module_info_get_key(l), "depends")) {
      const char *v = kmod_module_info_get_value(l);
      deps = *v ? g_strsplit(v, ",", -1) : g_new0(char *, 1);
    }
  }
  kmod_module_info_free_list(info);
  kmod_module_unref(mod);
  kmod_unref(ctx);
  assert_non_null(deps);
  for (char **d = deps; *d; d++)
    g_strdelimit(*d, "-", '_');
  return deps;
}

/* The manifest's module lines, each split into fields. */
static GPtrArray *
manifest_modules(const char *manifest)
{
  g_auto(GStrv) lines = g_strsplit(manifest, "\n", -1);
  GPtrArray *mods = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);

  for (char **l = lines; *l; l++)
    if (g_str_has_prefix(*l, "module "))
      g_ptr_array_add(mods, g_strsplit(*l + strlen("module "), " ", -1));
  return mods;
}

/* Host path of a module line's image path, in @tree. */
static char *
module_source(const char *tree, const char *dest)
{
  g_autofree char *prefix = g_strdup_printf("/lib/modules/%s/", pinned_release);

  assert_true(g_str_has_prefix(dest, prefix));
  return g_build_filename(tree, dest + strlen(prefix), NULL);
}

/* ---- dependency order, manifest, image ---------------------------------- */

static void
test_order_manifest_image(void **state)
{
  Fixture *f = *state;
  const char *modules[] = { "nvme", "vfio-pci", "e1000e", NULL };
  const char *params[] = { "vfio-pci:ids=10de:1234", "vfio_pci:disable_vga=1", "nvme:poll_queues=2", NULL };
  VfdStageRequest req = base_request(f, pinned_dir, modules);
  g_autoptr(VfdStageResult) res = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) image = NULL;
  g_autoptr(GPtrArray) lines = NULL;
  g_autofree char *expect_path = NULL;
  g_autofree char *version = NULL;
  g_autofree char *head = NULL;

  req.params = params;
  if (!vfd_stage_build(&req, &res, &error))
    fail_msg("%s", error->message);
  assert_false(res->cached);
  assert_int_equal(strlen(res->stamp), 64);
  expect_path = g_strdup_printf("%s/%s.cpio.gz", f->cache, res->stamp);
  assert_string_equal(res->path, expect_path);

  /* Every module once; each after everything its .ko says it depends on;
   * every dependency staged; the requested ones in request order. */
  for (gssize i = 0; res->modules[i]; i++)
    assert_int_equal(index_of(res->modules, res->modules[i]), i);
  lines = manifest_modules(res->manifest);
  assert_int_equal(lines->len, g_strv_length(res->modules));
  for (guint i = 0; i < lines->len; i++) {
    char **fields = lines->pdata[i];
    g_autofree char *src = module_source(pinned_dir, fields[0]);
    g_auto(GStrv) deps = ko_depends(src);

    for (char **d = deps; *d; d++) {
      gssize at = index_of(res->modules, *d);
      if (at < 0 || at >= (gssize) i)
        fail_msg("%s (position %u) depends on %s, which is at %zd", res->modules[i], i, *d, at);
    }
  }
  assert_true(index_of(res->modules, "nvme_core") >= 0);
  assert_true(index_of(res->modules, "nvme_core") < index_of(res->modules, "nvme"));
  assert_true(index_of(res->modules, "vfio") < index_of(res->modules, "vfio_pci_core"));
  assert_true(index_of(res->modules, "vfio_pci_core") < index_of(res->modules, "vfio_pci"));
  assert_true(index_of(res->modules, "nvme") < index_of(res->modules, "vfio_pci"));
  assert_true(index_of(res->modules, "vfio_pci") < index_of(res->modules, "e1000e"));
  assert_string_equal(res->modules[g_strv_length(res->modules) - 1], "e1000e");

  /* The manifest: header, stamp, parameters on their module's line only. */
  head = g_strdup_printf("vfiod-manifest 1\nkernel %s\nnvidia-driver -\nstamp %s\nmodule ", pinned_release,
                         res->stamp);
  assert_true(g_str_has_prefix(res->manifest, head));
  assert_null(strstr(res->manifest, "\nfirmware "));
  for (guint i = 0; i < lines->len; i++) {
    char **fields = lines->pdata[i];
    const char *name = res->modules[i];

    if (g_str_equal(name, "vfio_pci")) {
      assert_int_equal(g_strv_length(fields), 3);
      assert_string_equal(fields[1], "ids=10de:1234");
      assert_string_equal(fields[2], "disable_vga=1");
    } else if (g_str_equal(name, "nvme")) {
      assert_int_equal(g_strv_length(fields), 2);
      assert_string_equal(fields[1], "poll_queues=2");
    } else {
      assert_int_equal(g_strv_length(fields), 1);
    }
  }

  /* The image holds exactly what the manifest names, byte for byte. */
  image = read_image(res->path);
  assert_image_file(image, "/init", f->init);
  for (guint i = 0; i < lines->len; i++) {
    char **fields = lines->pdata[i];
    g_autofree char *src = module_source(pinned_dir, fields[0]);
    assert_image_file(image, fields[0], src);
  }
  assert_int_equal(g_hash_table_size(image), 1 + lines->len + 2);
  {
    g_autoptr(GBytes) m = g_bytes_new_static(res->manifest, strlen(res->manifest));
    g_autoptr(GBytes) v = NULL;
    version = g_strdup_printf("stamp %s\nvfiod %s\n", res->stamp, VFIOD_VERSION);
    v = g_bytes_new_static(version, strlen(version));
    assert_true(g_bytes_equal(g_hash_table_lookup(image, "/etc/vfiod/manifest"), m));
    assert_true(g_bytes_equal(g_hash_table_lookup(image, "/etc/vfiod/version"), v));
  }
}

/* ---- cache -------------------------------------------------------------- */

static void
test_cache_by_content(void **state)
{
  Fixture *f = *state;
  const char *modules[] = { "vfio-pci", NULL };
  const char *params_a[] = { "vfio_pci:ids=10de:1234", NULL };
  const char *params_b[] = { "vfio_pci:ids=10de:5678", NULL };
  VfdStageRequest req = base_request(f, pinned_dir, modules);
  g_autoptr(VfdStageResult) first = NULL, second = NULL, third = NULL, fourth = NULL, fifth = NULL;
  g_autofree char *out = g_build_filename(f->dir, "guest.cpio.gz", NULL);
  g_autoptr(GBytes) cached_bytes = NULL, out_bytes = NULL;
  struct stat st1, st2;

  req.params = params_a;
  assert_true(vfd_stage_build(&req, &first, NULL));
  assert_false(first->cached);
  assert_int_equal(stat(first->path, &st1), 0);

  /* Same inputs: the same image, reused, not packed again (packing
   * renames a new file into place: the inode would change). */
  assert_true(vfd_stage_build(&req, &second, NULL));
  assert_true(second->cached);
  assert_string_equal(second->stamp, first->stamp);
  assert_string_equal(second->path, first->path);
  assert_int_equal(stat(second->path, &st2), 0);
  assert_true(st1.st_ino == st2.st_ino && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec &&
              st1.st_mtim.tv_sec == st2.st_mtim.tv_sec);

  /* With an output path: a copy of the cached image there. */
  req.output = out;
  assert_true(vfd_stage_build(&req, &third, NULL));
  assert_true(third->cached);
  assert_string_equal(third->path, out);
  cached_bytes = read_bytes(first->path);
  out_bytes = read_bytes(out);
  assert_true(g_bytes_equal(cached_bytes, out_bytes));
  req.output = NULL;

  /* Another parameter, or another guest-init: another stamp, a new image. */
  req.params = params_b;
  assert_true(vfd_stage_build(&req, &fourth, NULL));
  assert_false(fourth->cached);
  assert_string_not_equal(fourth->stamp, first->stamp);
  req.params = params_a;
  g_free(write_file(f->dir, "guest-init", "\x7f" "ELF guest-init stand-in, rebuilt\n", -1));
  assert_true(vfd_stage_build(&req, &fifth, NULL));
  assert_false(fifth->cached);
  assert_string_not_equal(fifth->stamp, first->stamp);
  assert_string_not_equal(fifth->stamp, fourth->stamp);
  assert_true(g_file_test(first->path, G_FILE_TEST_IS_REGULAR));
  assert_true(g_file_test(fifth->path, G_FILE_TEST_IS_REGULAR));
}

/* ---- vermagic ----------------------------------------------------------- */

static void
assert_refused(const VfdStageRequest *req, gint code, const char *const *needles, const char *cache)
{
  g_autoptr(VfdStageResult) res = NULL;
  g_autoptr(GError) error = NULL;

  if (vfd_stage_build(req, &res, &error))
    fail_msg("staging was accepted (expected an error containing '%s')", needles[0]);
  assert_null(res);
  if (!g_error_matches(error, G_IO_ERROR, code))
    fail_msg("error code %d (expected %d): %s", error->code, code, error->message);
  for (const char *const *n = needles; *n; n++)
    if (!strstr(error->message, *n))
      fail_msg("message '%s' does not contain '%s'", error->message, *n);
  /* Nothing was packed. */
  if (cache && g_file_test(cache, G_FILE_TEST_IS_DIR)) {
    g_autoptr(GDir) d = g_dir_open(cache, 0, NULL);
    const char *name = d ? g_dir_read_name(d) : NULL;
    if (name)
      fail_msg("refused staging left '%s' in the cache", name);
  }
}

static void
test_vermagic_other_flavour_tree(void **state)
{
  Fixture *f = *state;
  const char *modules[] = { "vfio-pci", NULL };
  VfdStageRequest req = base_request(f, other_dir, modules);
  g_autofree char *want_path = NULL;
  const char *needles[] = { "vermagic", other_release, pinned_release, NULL, NULL };

  /* vfio-pci is checked before its dependencies: it is named. */
  want_path = g_build_filename(other_dir, "kernel/drivers/vfio/pci/vfio-pci.ko", NULL);
  needles[3] = want_path;
  assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, needles, f->cache);
}

/* A copy of the pinned tree's indexes plus the files of @name's closure;
 * returns the tree and the relative paths copied (module first). */
static char *
copy_closure(Fixture *f, const char *name, GPtrArray **ret_rel)
{
  const char *null_config[] = { NULL };
  struct kmod_ctx *ctx = kmod_new(pinned_dir, null_config);
  struct kmod_list *list = NULL, *deps, *l;
  struct kmod_module *mod;
  char *tree = g_build_filename(f->dir, "tree", NULL);
  GPtrArray *rel = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(pinned_dir, 0, NULL);
  const char *n;
  gsize plen = strlen(pinned_dir) + 1;

  assert_int_equal(g_mkdir_with_parents(tree, 0755), 0);
  while ((n = g_dir_read_name(d))) {
    if (g_str_has_prefix(n, "modules.")) {
      g_autofree char *src = g_build_filename(pinned_dir, n, NULL);
      g_autoptr(GBytes) b = read_bytes(src);
      g_free(write_file(tree, n, g_bytes_get_data(b, NULL), (gssize) g_bytes_get_size(b)));
    }
  }
  assert_int_equal(kmod_module_new_from_lookup(ctx, name, &list), 0);
  mod = kmod_module_get_module(list);
  g_ptr_array_add(rel, g_strdup(kmod_module_get_path(mod) + plen));
  deps = kmod_module_get_dependencies(mod);
  kmod_list_foreach(l, deps) {
    struct kmod_module *dm = kmod_module_get_module(l);
    g_ptr_array_add(rel, g_strdup(kmod_module_get_path(dm) + plen));
    kmod_module_unref(dm);
  }
  kmod_module_unref_list(deps);
  kmod_module_unref(mod);
  kmod_module_unref_list(list);
  kmod_unref(ctx);
  for (guint i = 0; i < rel->len; i++) {
    g_autofree char *src = g_build_filename(pinned_dir, rel->pdata[i], NULL);
    g_autoptr(GBytes) b = read_bytes(src);
    g_free(write_file(tree, rel->pdata[i], g_bytes_get_data(b, NULL), (gssize) g_bytes_get_size(b)));
  }
  assert_true(rel->len >= 2);
  *ret_rel = rel;
  return tree;
}

static void
test_vermagic_foreign_dependency(void **state)
{
  Fixture *f = *state;
  const char *modules[] = { "vfio-pci", NULL };
  g_autoptr(GPtrArray) rel = NULL;
  g_autofree char *tree = copy_closure(f, "vfio-pci", &rel);
  VfdStageRequest req = base_request(f, tree, modules);
  g_autoptr(VfdStageResult) ok = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *foreign_src = NULL, *victim = NULL;
  g_autoptr(GBytes) foreign = NULL;
  const char *needles[] = { "vermagic", other_release, NULL, NULL };

  /* The copied tree stages like the original. */
  if (!vfd_stage_build(&req, &ok, &error))
    fail_msg("%s", error->message);
  assert_true(g_strv_length(ok->modules) == rel->len);
  rm_rf(f->cache);

  /* A dependency (vfio.ko) swapped for the other flavour's. */
  for (guint i = 1; i < rel->len; i++)
    if (g_str_has_suffix(rel->pdata[i], "/vfio.ko"))
      victim = g_build_filename(tree, rel->pdata[i], NULL);
  assert_non_null(victim);
  foreign_src = g_build_filename(other_dir, "kernel/drivers/vfio/vfio.ko", NULL);
  foreign = read_bytes(foreign_src);
  assert_true(g_file_set_contents(victim, g_bytes_get_data(foreign, NULL), (gssize) g_bytes_get_size(foreign), NULL));
  needles[2] = victim;
  assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, needles, f->cache);
}

/* ---- symlinks and paths that leave the tree ------------------------------ */

static void
test_symlinked_modules(void **state)
{
  Fixture *f = *state;
  const char *modules[] = { "vfio-pci", NULL };
  g_autoptr(GPtrArray) rel = NULL;
  g_autofree char *tree = copy_closure(f, "vfio-pci", &rel);
  VfdStageRequest req = base_request(f, tree, modules);
  g_autofree char *dep = g_build_filename(tree, rel->pdata[1], NULL);
  g_autofree char *moved = g_build_filename(tree, "elsewhere", "dep.ko", NULL);
  g_autofree char *top = g_build_filename(tree, rel->pdata[0], NULL);
  g_autofree char *outside = g_build_filename(f->dir, "outside.ko", NULL);
  g_autofree char *top_dir = g_path_get_dirname(top);
  g_autofree char *outside_dir = g_build_filename(f->dir, "outside-dir", NULL);
  const char *needles[] = { NULL, NULL, NULL };

  /* 1. A dependency that is a symlink to a file inside the tree. */
  assert_int_equal(g_mkdir_with_parents(moved, 0755), 0);
  assert_int_equal(g_rmdir(moved), 0);
  assert_int_equal(rename(dep, moved), 0);
  assert_int_equal(symlink(moved, dep), 0);
  needles[0] = dep;
  needles[1] = "symlink";
  assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, needles, f->cache);
  assert_int_equal(unlink(dep), 0);
  assert_int_equal(rename(moved, dep), 0);

  /* 2. The requested module a symlink to a file outside. */
  assert_int_equal(rename(top, outside), 0);
  assert_int_equal(symlink(outside, top), 0);
  needles[0] = top;
  assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, needles, f->cache);
  assert_int_equal(unlink(top), 0);
  assert_int_equal(rename(outside, top), 0);

  /* 3. Regular files, but their directory is a symlink leaving the tree. */
  assert_int_equal(rename(top_dir, outside_dir), 0);
  assert_int_equal(symlink(outside_dir, top_dir), 0);
  needles[0] = top;
  needles[1] = "leaves its source tree";
  assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, needles, f->cache);
  assert_int_equal(unlink(top_dir), 0);
  assert_int_equal(rename(outside_dir, top_dir), 0);

  /* Put back: accepted again. */
  {
    g_autoptr(VfdStageResult) res = NULL;
    g_autoptr(GError) error = NULL;
    if (!vfd_stage_build(&req, &res, &error))
      fail_msg("%s", error->message);
  }
}

/* ---- bad requests -------------------------------------------------------- */

static void
test_bad_requests(void **state)
{
  Fixture *f = *state;
  const char *unknown[] = { "no_such_module_xyz", NULL };
  const char *bad_name[] = { "../vfio", NULL };
  const char *vfio[] = { "vfio-pci", NULL };
  const char *p_unstaged[] = { "e1000e:debug=1", NULL };
  const char *p_noeq[] = { "vfio_pci:ids", NULL };
  const char *p_space[] = { "vfio_pci:ids=1 2", NULL };
  const char *p_nomod[] = { "ids=10de:1234", NULL };
  g_autofree char *dotdot = g_strdup_printf("%s/../%s", pinned_dir, pinned_release);
  g_autofree char *bare = g_build_filename(f->dir, "bare", "lib", "modules", pinned_release, NULL);
  VfdStageRequest req;

  {
    const char *n[] = { "no_such_module_xyz", NULL };
    req = base_request(f, pinned_dir, unknown);
    assert_refused(&req, G_IO_ERROR_NOT_FOUND, n, f->cache);
  }
  {
    const char *n[] = { "not a module name", NULL };
    req = base_request(f, pinned_dir, bad_name);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "e1000e", "not staged", NULL };
    req = base_request(f, pinned_dir, vfio);
    req.params = p_unstaged;
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "MODULE:KEY=VALUE", NULL };
    req = base_request(f, pinned_dir, vfio);
    req.params = p_noeq;
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
    req.params = p_nomod;
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "space", NULL };
    req = base_request(f, pinned_dir, vfio);
    req.params = p_space;
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "'..'", NULL };
    req = base_request(f, dotdot, vfio);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "modules.dep.bin", "depmod", NULL };
    assert_int_equal(g_mkdir_with_parents(bare, 0755), 0);
    req = base_request(f, bare, vfio);
    assert_refused(&req, G_IO_ERROR_NOT_FOUND, n, f->cache);
  }
  {
    const char *n[] = { "guest-init", "symlink", NULL };
    g_autofree char *link = g_build_filename(f->dir, "init-link", NULL);
    assert_int_equal(symlink(f->init, link), 0);
    req = base_request(f, pinned_dir, vfio);
    req.guest_init = link;
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    const char *n[] = { "modules directory", NULL };
    req = base_request(f, NULL, vfio);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
}

/* ---- GPU: nvidia stand-ins, firmware of the pinned version --------------- */

typedef struct {
  char *root;      /* firmware tree */
  char *ga10x;     /* <root>/nvidia/<version>/gsp_ga10x.bin */
  char *tu10x;     /* <root>/nvidia/<version>/sub/gsp_tu10x.bin */
} Firmware;

static void
make_firmware(Fixture *f, Firmware *fw)
{
  g_autofree char *v = g_build_filename("nvidia", nvidia_version, NULL);
  g_autofree char *ga = g_build_filename(v, "gsp_ga10x.bin", NULL);
  g_autofree char *tu = g_build_filename(v, "sub", "gsp_tu10x.bin", NULL);
  guint8 blob[4096];

  for (gsize i = 0; i < sizeof(blob); i++)
    blob[i] = (guint8) (i * 7 + 3);
  fw->root = g_build_filename(f->dir, "firmware", NULL);
  fw->ga10x = write_file(fw->root, ga, (const char *) blob, sizeof(blob));
  fw->tu10x = write_file(fw->root, tu, "tu10x", -1);
  /* Other versions and vendors: never staged. */
  g_free(write_file(fw->root, "nvidia/535.54.03/gsp_ga10x.bin", "old", -1));
  g_free(write_file(fw->root, "intel/ice.bin", "not nvidia", -1));
}

static void
clear_firmware(Firmware *fw)
{
  g_free(fw->root);
  g_free(fw->ga10x);
  g_free(fw->tu10x);
}

static void
test_gpu(void **state)
{
  Fixture *f = *state;
  Firmware fw = { 0 };
  const char *modules[] = { "vfio-pci", NULL };
  const char *params[] = { "nvidia:NVreg_DeviceFileMode=0660", NULL };
  VfdStageRequest req = base_request(f, gpu_dir, modules);
  g_autoptr(VfdStageResult) res = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) image = NULL;
  g_autoptr(GPtrArray) lines = NULL;
  g_autofree char *head = NULL;
  g_autofree char *fw_ga = NULL, *fw_tu = NULL;
  g_autofree char *nvidia_line = NULL;
  GHashTableIter it;
  gpointer key;

  make_firmware(f, &fw);
  req.gpu = TRUE;
  req.nvidia_version = nvidia_version;
  req.firmware_dir = fw.root;
  req.params = params;
  if (!vfd_stage_build(&req, &res, &error))
    fail_msg("%s", error->message);

  /* nvidia first, nvidia-uvm after it (it depends on nvidia), modeset
   * absent (skipped), then the requested module with its dependencies. */
  assert_string_equal(res->modules[0], "nvidia");
  assert_string_equal(res->modules[1], "nvidia_uvm");
  assert_int_equal(index_of(res->modules, "nvidia_modeset"), -1);
  assert_true(index_of(res->modules, "vfio_pci") > 1);
  head = g_strdup_printf("vfiod-manifest 1\nkernel %s\nnvidia-driver %s\nstamp %s\n", pinned_release,
                         nvidia_version, res->stamp);
  assert_true(g_str_has_prefix(res->manifest, head));
  assert_true(g_str_has_suffix(res->manifest, "\nfirmware /lib/firmware\n"));
  nvidia_line = g_strdup_printf("\nmodule /lib/modules/%s/updates/nvidia.ko NVreg_DeviceFileMode=0660\n",
                                pinned_release);
  assert_non_null(strstr(res->manifest, nvidia_line));

  /* Firmware: exactly the pinned version's directory, bytes unchanged. */
  image = read_image(res->path);
  fw_ga = g_strdup_printf("/lib/firmware/nvidia/%s/gsp_ga10x.bin", nvidia_version);
  fw_tu = g_strdup_printf("/lib/firmware/nvidia/%s/sub/gsp_tu10x.bin", nvidia_version);
  assert_image_file(image, fw_ga, fw.ga10x);
  assert_image_file(image, fw_tu, fw.tu10x);
  g_hash_table_iter_init(&it, image);
  while (g_hash_table_iter_next(&it, &key, NULL))
    if (g_str_has_prefix(key, "/lib/firmware/") && !g_str_equal(key, fw_ga) && !g_str_equal(key, fw_tu))
      fail_msg("unexpected firmware %s in the image", (char *) key);
  lines = manifest_modules(res->manifest);
  for (guint i = 0; i < lines->len; i++) {
    char **fields = lines->pdata[i];
    g_autofree char *src = module_source(gpu_dir, fields[0]);
    assert_image_file(image, fields[0], src);
  }
  clear_firmware(&fw);
}

static void
test_gpu_refusals(void **state)
{
  Fixture *f = *state;
  Firmware fw = { 0 };
  VfdStageRequest req = base_request(f, gpu_dir, NULL);
  g_autofree char *vdir = NULL, *moved = NULL;

  make_firmware(f, &fw);
  req.gpu = TRUE;
  req.nvidia_version = nvidia_version;
  req.firmware_dir = fw.root;

  {
    /* No nvidia.ko in the pinned kernel's own tree. */
    const char *n[] = { "nvidia.ko", pinned_dir, NULL };
    VfdStageRequest r = req;
    r.modules_dir = pinned_dir;
    assert_refused(&r, G_IO_ERROR_NOT_FOUND, n, f->cache);
  }
  {
    /* nvidia.ko of another driver version than the pinned one. */
    const char *n[] = { "updates/nvidia.ko", nvidia_version, "999.99.99", NULL };
    VfdStageRequest r = req;
    r.nvidia_version = "999.99.99";
    n[1] = nvidia_version;
    assert_refused(&r, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    /* No firmware directory for the pinned version. */
    const char *n[] = { "no firmware", NULL };
    VfdStageRequest r = req;
    r.firmware_dir = f->dir;
    assert_refused(&r, G_IO_ERROR_NOT_FOUND, n, f->cache);
  }
  {
    /* A firmware file that is a symlink (to a file inside the tree). */
    const char *n[] = { fw.ga10x, "symlink", NULL };
    g_autofree char *real = g_build_filename(fw.root, "nvidia", "real-ga10x.bin", NULL);
    assert_int_equal(rename(fw.ga10x, real), 0);
    assert_int_equal(symlink(real, fw.ga10x), 0);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
    assert_int_equal(unlink(fw.ga10x), 0);
    assert_int_equal(rename(real, fw.ga10x), 0);
  }
  {
    /* The version directory a symlink. */
    const char *n[] = { "symlink", NULL };
    vdir = g_build_filename(fw.root, "nvidia", nvidia_version, NULL);
    moved = g_build_filename(f->dir, "fw-elsewhere", NULL);
    assert_int_equal(rename(vdir, moved), 0);
    assert_int_equal(symlink(moved, vdir), 0);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
    assert_int_equal(unlink(vdir), 0);
    assert_int_equal(rename(moved, vdir), 0);
  }
  {
    /* A directory below the version directory leaving the tree. */
    const char *n[] = { "symlink", NULL };
    g_autofree char *sub = g_build_filename(vdir, "sub", NULL);
    assert_int_equal(rename(sub, moved), 0);
    assert_int_equal(symlink(moved, sub), 0);
    assert_refused(&req, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
    assert_int_equal(unlink(sub), 0);
    assert_int_equal(rename(moved, sub), 0);
  }
  {
    /* GPU support without firmware; firmware without GPU support. */
    const char *n[] = { "firmware directory", NULL };
    VfdStageRequest r = req;
    r.firmware_dir = NULL;
    assert_refused(&r, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
    r = req;
    r.gpu = FALSE;
    assert_refused(&r, G_IO_ERROR_INVALID_ARGUMENT, n, f->cache);
  }
  {
    /* Restored: accepted. */
    g_autoptr(VfdStageResult) res = NULL;
    g_autoptr(GError) error = NULL;
    if (!vfd_stage_build(&req, &res, &error))
      fail_msg("%s", error->message);
    assert_string_equal(res->modules[0], "nvidia");
  }
  clear_firmware(&fw);
}

/* ---- main ---------------------------------------------------------------- */

static char *
require_pin(const char *file, const char *key)
{
  g_autoptr(GHashTable) pins = NULL;
  g_autoptr(GError) error = NULL;
  const char *v;

  if (!vfd_pins_load(file, &pins, &error) || !(v = vfd_pins_require(pins, key, file, &error))) {
    fprintf(stderr, "%s\n", error->message);
    exit(1);
  }
  return g_strdup(v);
}

int
main(void)
{
  const char *src = g_getenv("VFIOD_SOURCE_ROOT");
  const char *kernels = g_getenv("VFIOD_TEST_KERNELS");
  g_autofree char *pins = NULL, *versions = NULL, *env = NULL;
  g_autofree char *kpinned = NULL, *kstub = NULL, *kernels_real = NULL;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_order_manifest_image, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cache_by_content, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vermagic_other_flavour_tree, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vermagic_foreign_dependency, setup, teardown),
    cmocka_unit_test_setup_teardown(test_symlinked_modules, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gpu, setup, teardown),
    cmocka_unit_test_setup_teardown(test_gpu_refusals, setup, teardown),
  };

  if (!src || !*src) {
    fprintf(stderr, "VFIOD_SOURCE_ROOT is not set (meson sets it to the source tree)\n");
    return 77;
  }
  env = kernels ? g_build_filename(kernels, "test-kernels.env", NULL) : NULL;
  if (!env || !g_file_test(env, G_FILE_TEST_IS_REGULAR)) {
    fprintf(stderr,
            "SKIP: the test kernels are missing (%s): run\n"
            "  %s/tests/data/fetch-test-kernels.sh %s\n",
            env ? env : "VFIOD_TEST_KERNELS is not set", src, kernels ? kernels : "BUILD/test-kernels");
    return 77;
  }
  /* The release of this run: the pins as resolved against the archive
   * (scripts/archive.sh): $VFIOD_PINS when the run resolved them once
   * (scripts/dev), else the copy the fetch wrote beside the trees. */
  pins = g_strdup(g_getenv("VFIOD_PINS"));
  if (!pins || !*pins) {
    g_free(pins);
    pins = g_build_filename(kernels, "pins.env", NULL);
  }
  versions = g_build_filename(src, "versions.env", NULL);
  pinned_release = require_pin(pins, "GUEST_KERNEL_RELEASE");
  {
    g_autofree char *repo_pins = g_build_filename(src, "pins.env", NULL);
    g_autofree char *named = require_pin(repo_pins, "GUEST_KERNEL_RELEASE");

    printf("# stager tests use guest kernel %s (resolved pins %s; the repository's pins.env names %s)\n",
           pinned_release, pins, named);
  }
  nvidia_version = require_pin(versions, "NVIDIA_DRIVER_VERSION");
  kpinned = require_pin(env, "PINNED_RELEASE");
  kstub = require_pin(env, "STUB_NVIDIA_VERSION");
  other_release = require_pin(env, "OTHER_RELEASE");
  if (!g_str_equal(kpinned, pinned_release) || !g_str_equal(kstub, nvidia_version)) {
    fprintf(stderr, "%s is stale (kernel %s, NVIDIA %s; the pins say %s, %s): run\n"
                    "  %s/tests/data/fetch-test-kernels.sh %s\n",
            env, kpinned, kstub, pinned_release, nvidia_version, src, kernels);
    return 1;
  }
  /* The stager names files by the real path of their tree. */
  kernels = kernels_real = realpath(kernels, NULL);
  assert_non_null(kernels_real);
  pinned_dir = g_build_filename(kernels, "pinned", "lib", "modules", pinned_release, NULL);
  other_dir = g_build_filename(kernels, "other", "lib", "modules", other_release, NULL);
  gpu_dir = g_build_filename(kernels, "gpu", "lib", "modules", pinned_release, NULL);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
