/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stage-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs.h"

#define MANIFEST_PATH "/etc/vfiod/manifest"
#define VERSION_PATH "/etc/vfiod/version"
#define READ_CHUNK (256 * 1024)

void
vfd_stage_result_free(VfdStageResult *result)
{
  if (!result)
    return;
  g_free(result->path);
  g_free(result->stamp);
  g_strfreev(result->modules);
  g_free(result->manifest);
  g_free(result);
}

/* The manifest; with @stamp NULL, without its stamp line (what is hashed). */
static char *
make_manifest(Stager *s, const char *stamp, gboolean firmware)
{
  GString *m = g_string_new("vfiod-manifest 1\n");

  g_string_append_printf(m, "kernel %s\n", s->req->kernel_release);
  g_string_append_printf(m, "nvidia-driver %s\n", s->req->gpu ? s->req->nvidia_version : "-");
  if (stamp)
    g_string_append_printf(m, "stamp %s\n", stamp);
  for (guint i = 0; s->order && i < s->order->len; i++) {
    StagedModule *mod = s->order->pdata[i];

    g_string_append_printf(m, "module %s", mod->dest);
    for (guint j = 0; j < mod->params->len; j++)
      g_string_append_printf(m, " %s", (const char *) mod->params->pdata[j]);
    g_string_append_c(m, '\n');
  }
  if (firmware)
    g_string_append(m, "firmware " FIRMWARE_IMAGE_DIR "\n");
  return g_string_free(m, FALSE);
}

/* Feeds "<dest>\0<size>\0<bytes>" of @source into @sum. */
static gboolean
hash_file(GChecksum *sum, const char *source, const char *dest, GError **error)
{
  g_autofree guchar *buf = NULL;
  g_autofree char *size = NULL;
  struct stat st;
  goffset done = 0;
  int fd = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0 || fstat(fd, &st) < 0) {
    int errsv = errno;
    if (fd >= 0)
      close(fd);
    g_set_error(error, G_IO_ERROR, errsv == ELOOP ? G_IO_ERROR_INVALID_ARGUMENT : g_io_error_from_errno(errsv),
                "cannot read '%s': %s", source, errsv == ELOOP ? "it is a symlink" : g_strerror(errsv));
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not a regular file", source);
    return FALSE;
  }
  size = g_strdup_printf("%" G_GOFFSET_FORMAT, (goffset) st.st_size);
  g_checksum_update(sum, (const guchar *) dest, (gssize) strlen(dest) + 1);
  g_checksum_update(sum, (const guchar *) size, (gssize) strlen(size) + 1);
  buf = g_malloc(READ_CHUNK);
  for (;;) {
    ssize_t n = read(fd, buf, READ_CHUNK);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      close(fd);
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot read '%s': %s", source,
                  g_strerror(errsv));
      return FALSE;
    }
    if (n == 0)
      break;
    g_checksum_update(sum, buf, n);
    done += n;
  }
  close(fd);
  if (done != st.st_size) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "'%s' changed size while being read", source);
    return FALSE;
  }
  return TRUE;
}

static char *
compute_stamp(Stager *s, const char *manifest_body, GError **error)
{
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);

  g_checksum_update(sum, (const guchar *) "vfiod-stamp 1\nvfiod " VFIOD_VERSION "\n", -1);
  g_checksum_update(sum, (const guchar *) manifest_body, (gssize) strlen(manifest_body) + 1);
  if (!hash_file(sum, s->req->guest_init, "/init", error))
    return NULL;
  for (guint i = 0; i < s->files->len; i++) {
    StagedFile *f = s->files->pdata[i];

    if (!hash_file(sum, f->source, f->dest, error))
      return NULL;
  }
  return g_strdup(g_checksum_get_string(sum));
}

/* A temporary directory removed (with its files) when cleared. */
typedef struct {
  char *path;
  GPtrArray *files;
} TmpDir;

static void
tmp_dir_clear(TmpDir *t)
{
  for (guint i = 0; t->files && i < t->files->len; i++)
    g_unlink(t->files->pdata[i]);
  if (t->path)
    g_rmdir(t->path);
  g_clear_pointer(&t->path, g_free);
  g_clear_pointer(&t->files, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TmpDir, tmp_dir_clear)

static char *
tmp_dir_write(TmpDir *t, const char *name, const char *content, GError **error)
{
  char *path = g_build_filename(t->path, name, NULL);

  g_ptr_array_add(t->files, path);
  if (!g_file_set_contents_full(path, content, -1, G_FILE_SET_CONTENTS_NONE, 0644, error))
    return NULL;
  return path;
}

/* Copies @from to @to through a temporary file and a rename. */
static gboolean
copy_atomically(const char *from, const char *to, GError **error)
{
  g_autoptr(GFile) src = g_file_new_for_path(from);
  g_autofree char *dir = g_path_get_dirname(to);
  g_autofree char *base = g_path_get_basename(to);
  g_autofree char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
  g_autoptr(GFile) dst = NULL;
  int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);

  if (fd < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create a temporary file in '%s': %s",
                dir, g_strerror(errsv));
    return FALSE;
  }
  close(fd);
  dst = g_file_new_for_path(tmp);
  if (!g_file_copy(src, dst, G_FILE_COPY_OVERWRITE | G_FILE_COPY_NOFOLLOW_SYMLINKS, NULL, NULL, NULL, error) ||
      g_chmod(tmp, 0644) < 0 || g_rename(tmp, to) < 0) {
    int errsv = errno;
    g_unlink(tmp);
    if (error && !*error)
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot write '%s': %s", to,
                  g_strerror(errsv));
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_request(const VfdStageRequest *req, GError **error)
{
  const char *missing = NULL;
  gboolean want_modules = req->gpu || (req->modules && req->modules[0]);

  if (!req->guest_init)
    missing = "the guest-init path";
  else if (!req->kernel_release || !*req->kernel_release)
    missing = "the guest kernel release";
  else if (want_modules && !req->modules_dir)
    missing = "a modules directory";
  else if (req->gpu && (!req->nvidia_version || !*req->nvidia_version))
    missing = "the NVIDIA driver version (GPU support)";
  else if (req->gpu && !req->firmware_dir)
    missing = "a firmware directory (GPU support)";
  else if (!req->cache_dir && !req->output)
    missing = "a cache directory or an output path";
  if (missing) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "staging an initramfs needs %s", missing);
    return FALSE;
  }
  if (strpbrk(req->kernel_release, " /\n\t") || g_str_equal(req->kernel_release, ".") ||
      g_str_equal(req->kernel_release, "..")) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not a kernel release",
                req->kernel_release);
    return FALSE;
  }
  if (req->gpu && (strpbrk(req->nvidia_version, " /\n\t") || g_str_equal(req->nvidia_version, ".") ||
                   g_str_equal(req->nvidia_version, ".."))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not an NVIDIA driver version",
                req->nvidia_version);
    return FALSE;
  }
  if (!req->gpu && req->firmware_dir) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "a firmware directory is only used with GPU support (firmware of the pinned NVIDIA driver)");
    return FALSE;
  }
  if (!want_modules && req->params && req->params[0]) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "module parameter '%s' given, but no module is staged", req->params[0]);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_stage_build(const VfdStageRequest *req, VfdStageResult **ret, GError **error)
{
  g_auto(Stager) s = { 0 };
  g_auto(TmpDir) tmp = { 0 };
  g_autofree char *body = NULL;
  g_autofree char *stamp = NULL;
  g_autofree char *manifest = NULL;
  g_autofree char *version = NULL;
  g_autofree char *image = NULL;
  g_autoptr(VfdStageResult) result = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  gboolean want_modules;
  struct stat st;

  g_return_val_if_fail(req != NULL && ret != NULL, FALSE);
  g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

  if (!check_request(req, error))
    return FALSE;
  want_modules = req->gpu || (req->modules && req->modules[0]);
  s.req = req;
  s.state = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  s.by_name = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  s.order = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_staged_module_free);
  s.files = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_staged_file_free);

  if (lstat(req->guest_init, &st) < 0 || !S_ISREG(st.st_mode)) {
    int errsv = errno;
    gboolean exists = g_file_test(req->guest_init, G_FILE_TEST_EXISTS) ||
                      g_file_test(req->guest_init, G_FILE_TEST_IS_SYMLINK);
    g_set_error(error, G_IO_ERROR, exists ? G_IO_ERROR_INVALID_ARGUMENT : g_io_error_from_errno(errsv),
                "guest-init '%s': %s", req->guest_init,
                exists ? "not a regular file (symlinks are refused)" : g_strerror(errsv));
    return FALSE;
  }
  if (want_modules && !vfd_stager_stage_modules(&s, error))
    return FALSE;
  if (!vfd_stager_add_params(&s, error))
    return FALSE;
  if (req->gpu && !vfd_stager_stage_firmware(&s, error))
    return FALSE;

  body = make_manifest(&s, NULL, req->gpu);
  stamp = compute_stamp(&s, body, error);
  if (!stamp)
    return FALSE;
  manifest = make_manifest(&s, stamp, req->gpu);
  version = g_strdup_printf("stamp %s\nvfiod %s\n", stamp, VFIOD_VERSION);

  result = g_new0(VfdStageResult, 1);
  result->stamp = g_strdup(stamp);
  result->manifest = g_strdup(manifest);
  for (guint i = 0; i < s.order->len; i++)
    g_ptr_array_add(names, g_strdup(((StagedModule *) s.order->pdata[i])->name));
  g_ptr_array_add(names, NULL);
  result->modules = (GStrv) g_ptr_array_free(g_steal_pointer(&names), FALSE);

  if (req->cache_dir) {
    if (g_mkdir_with_parents(req->cache_dir, 0755) < 0) {
      int errsv = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create cache directory '%s': %s",
                  req->cache_dir, g_strerror(errsv));
      return FALSE;
    }
    image = g_strdup_printf("%s/%s.cpio.gz", req->cache_dir, stamp);
    if (lstat(image, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
      result->cached = TRUE;
  } else {
    image = g_strdup(req->output);
  }

  if (!result->cached) {
    g_autoptr(GArray) extra = g_array_new(FALSE, TRUE, sizeof(VfdInitramfsFile));
    g_autofree char *dir = g_path_get_dirname(image);
    const char *manifest_file, *version_file;

    tmp.files = g_ptr_array_new_with_free_func(g_free);
    tmp.path = g_strdup_printf("%s/.stage.XXXXXX", dir);
    if (!g_mkdtemp_full(tmp.path, 0700)) {
      int errsv = errno;
      g_clear_pointer(&tmp.path, g_free);
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create a temporary directory in '%s': %s",
                  dir, g_strerror(errsv));
      return FALSE;
    }
    if (!(manifest_file = tmp_dir_write(&tmp, "manifest", manifest, error)) ||
        !(version_file = tmp_dir_write(&tmp, "version", version, error)))
      return FALSE;
    for (guint i = 0; i < s.files->len; i++) {
      StagedFile *f = s.files->pdata[i];
      VfdInitramfsFile e = { f->source, f->dest, 0644 };
      g_array_append_val(extra, e);
    }
    {
      VfdInitramfsFile m = { manifest_file, MANIFEST_PATH, 0644 };
      VfdInitramfsFile v = { version_file, VERSION_PATH, 0644 };
      g_array_append_val(extra, m);
      g_array_append_val(extra, v);
    }
    if (!vfd_initramfs_build(image, req->guest_init, (const VfdInitramfsFile *) (void *) extra->data, extra->len,
                             error))
      return FALSE;
  }

  if (req->cache_dir && req->output) {
    if (!copy_atomically(image, req->output, error))
      return FALSE;
    result->path = g_strdup(req->output);
  } else {
    result->path = g_steal_pointer(&image);
  }
  *ret = g_steal_pointer(&result);
  return TRUE;
}
