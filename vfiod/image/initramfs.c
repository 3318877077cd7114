/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "initramfs.h"
#include "path.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libarchive's writer and entry, with one cleanup each. The writer is marked
 * failed before it is freed: archive_write_free() would otherwise close it,
 * which writes a trailer into a file we are about to throw away. After a
 * successful archive_write_close() this is harmless. */
typedef struct archive VfdArchive;
typedef struct archive_entry VfdArchiveEntry;

static void
archive_write_discard(VfdArchive *a)
{
  archive_write_fail(a);
  archive_write_free(a);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdArchive, archive_write_discard)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdArchiveEntry, archive_entry_free)

#define DIR_MODE 0755
#define CONSOLE_MAJOR 5
#define CONSOLE_MINOR 1
#define COPY_CHUNK (64 * 1024)

/* One entry of the image. */
typedef struct {
  char *path;        /* inside the image, without the leading '/', e.g. "dev/console" */
  mode_t type;       /* S_IFDIR, S_IFREG or S_IFCHR */
  guint perm;        /* 07777 bits */
  guint rdev_major;  /* S_IFCHR */
  guint rdev_minor;
  char *source;      /* S_IFREG: the host path, for messages */
  int fd;            /* S_IFREG: the open source; -1 otherwise */
  goffset size;      /* S_IFREG: size checked at open */
} Entry;

static void
entry_free(Entry *e)
{
  if (!e)
    return;
  if (e->fd >= 0)
    close(e->fd);
  g_free(e->path);
  g_free(e->source);
  g_free(e);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Entry, entry_free)

static Entry *
entry_new(const char *path, mode_t type, guint perm)
{
  Entry *e = g_new0(Entry, 1);

  e->path = g_strdup(path);
  e->type = type;
  e->perm = perm;
  e->fd = -1;
  return e;
}

/* A temporary output file that is removed unless committed. */
typedef struct {
  char *path;
  int fd;
} TmpFile;

static void
tmp_file_clear(TmpFile *t)
{
  if (t->fd >= 0)
    close(t->fd);
  if (t->path)
    unlink(t->path);
  g_clear_pointer(&t->path, g_free);
  t->fd = -1;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TmpFile, tmp_file_clear)

/* Checks an image path ("/a/b") and returns it without the leading '/'. */
static const char *
check_dest(const char *dest, GError **error)
{
  if (!dest || dest[0] != '/' || dest[1] == '\0') {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs destination '%s' is not an absolute file path", dest ? dest : "(null)");
    return NULL;
  }
  if (!vfd_path_check(dest, VFD_PATH_NO_EMPTY | VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs destination '%s' has an empty, '.' or '..' path component", dest);
    return NULL;
  }
  return dest + 1;
}

/* Adds a directory; an existing directory of that path is fine. */
static gboolean
add_dir(GHashTable *entries, const char *path, GError **error)
{
  Entry *old = g_hash_table_lookup(entries, path);

  if (old) {
    if (old->type == S_IFDIR)
      return TRUE;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs path '/%s' is needed as a directory but is also a file", path);
    return FALSE;
  }
  g_hash_table_insert(entries, g_strdup(path), entry_new(path, S_IFDIR, DIR_MODE));
  return TRUE;
}

/* Adds every parent directory of @path ("a/b/c" -> "a", "a/b"). */
static gboolean
add_parents(GHashTable *entries, const char *path, GError **error)
{
  for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
    g_autofree char *parent = g_strndup(path, (gsize) (slash - path));

    if (!add_dir(entries, parent, error))
      return FALSE;
  }
  return TRUE;
}

/* Adds a non-directory entry (taking @e) and its parents; refuses a
 * duplicate path. */
static gboolean
add_leaf(GHashTable *entries, Entry *e_in, GError **error)
{
  g_autoptr(Entry) e = e_in;
  char *key;

  if (g_hash_table_contains(entries, e->path)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs path '/%s' is given twice (or is also a directory)", e->path);
    return FALSE;
  }
  if (!add_parents(entries, e->path, error))
    return FALSE;
  key = g_strdup(e->path);
  g_hash_table_insert(entries, key, g_steal_pointer(&e));
  return TRUE;
}

/* Opens @source (a regular file, not a symlink) for the image path @dest and
 * adds it with @mode (0: the source's own permission bits). */
static gboolean
add_file(GHashTable *entries, const char *source, const char *dest, guint mode, GError **error)
{
  g_autoptr(Entry) e = NULL;
  const char *path;
  struct stat lst, st;
  int fd;

  if (!source || !*source) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs source for '%s' is empty", dest ? dest : "(null)");
    return FALSE;
  }
  if (!vfd_path_check(source, VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs source '%s' has a '..' path component", source);
    return FALSE;
  }
  path = check_dest(dest, error);
  if (!path)
    return FALSE;
  if (mode & ~07777u) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs mode %o for '%s' has bits beyond 07777", mode, dest);
    return FALSE;
  }

  /* lstat first so that a symlink, FIFO or device is refused without being
   * opened; then open without following and check it is the same file. */
  if (lstat(source, &lst) < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "initramfs source '%s': %s", source, g_strerror(errsv));
    return FALSE;
  }
  if (!S_ISREG(lst.st_mode)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs source '%s' is %s, not a regular file", source,
                S_ISLNK(lst.st_mode) ? "a symlink" : "a special file or directory");
    return FALSE;
  }
  e = entry_new(path, S_IFREG, mode ? mode : (lst.st_mode & 07777));
  e->source = g_strdup(source);
  fd = open(source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "cannot open initramfs source '%s': %s", source, g_strerror(errsv));
    return FALSE;
  }
  e->fd = fd;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != lst.st_dev || st.st_ino != lst.st_ino) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "initramfs source '%s' changed while it was being opened", source);
    return FALSE;
  }
  e->size = st.st_size;
  return add_leaf(entries, g_steal_pointer(&e), error);
}

static gboolean
archive_check(VfdArchive *a, int r, const char *what, GError **error)
{
  if (r >= ARCHIVE_WARN)
    return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "initramfs: %s: %s", what,
              archive_error_string(a) ? archive_error_string(a) : "unknown libarchive error");
  return FALSE;
}

/* Copies a regular file's data into the archive; it must still have the
 * size recorded in the header. */
static gboolean
copy_data(VfdArchive *a, const Entry *e, GError **error)
{
  g_autofree char *buf = g_malloc(COPY_CHUNK);
  goffset done = 0;

  for (;;) {
    ssize_t n = read(e->fd, buf, COPY_CHUNK);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                  "cannot read initramfs source '%s': %s", e->source, g_strerror(errsv));
      return FALSE;
    }
    if (n == 0)
      break;
    if (done + n > e->size)
      break;
    if (archive_write_data(a, buf, (size_t) n) != n)
      return archive_check(a, ARCHIVE_FATAL, e->source, error);
    done += n;
  }
  if (done != e->size) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "initramfs source '%s' changed size while being read", e->source);
    return FALSE;
  }
  return TRUE;
}

static gboolean
write_entry(VfdArchive *a, const Entry *e, gint64 ino, GError **error)
{
  g_autoptr(VfdArchiveEntry) ae = archive_entry_new();

  archive_entry_set_pathname(ae, e->path);
  archive_entry_set_filetype(ae, e->type);
  archive_entry_set_perm(ae, e->perm);
  archive_entry_set_uid(ae, 0);
  archive_entry_set_gid(ae, 0);
  archive_entry_set_mtime(ae, 0, 0);
  archive_entry_set_ino64(ae, ino);
  archive_entry_set_nlink(ae, e->type == S_IFDIR ? 2 : 1);
  if (e->type == S_IFCHR) {
    archive_entry_set_rdevmajor(ae, e->rdev_major);
    archive_entry_set_rdevminor(ae, e->rdev_minor);
  }
  archive_entry_set_size(ae, e->type == S_IFREG ? e->size : 0);
  if (!archive_check(a, archive_write_header(a, ae), e->path, error))
    return FALSE;
  if (e->type == S_IFREG && !copy_data(a, e, error))
    return FALSE;
  return archive_check(a, archive_write_finish_entry(a), e->path, error);
}

static int
compare_paths(const void *a, const void *b)
{
  return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Writes @entries, sorted by path, as gzip'ed newc cpio to @fd. */
static gboolean
write_archive(int fd, GHashTable *entries, GError **error)
{
  g_autoptr(VfdArchive) a = archive_write_new();
  g_autofree gpointer *paths = NULL;
  guint n_paths = 0;

  if (!archive_check(a, archive_write_add_filter_gzip(a), "gzip filter", error) ||
      /* No timestamp in the gzip header: builds must be reproducible. */
      !archive_check(a, archive_write_set_filter_option(a, "gzip", "timestamp", NULL),
                     "gzip option !timestamp", error) ||
      !archive_check(a, archive_write_set_format_cpio_newc(a), "cpio newc format", error) ||
      !archive_check(a, archive_write_set_bytes_in_last_block(a, 1), "block size", error) ||
      !archive_check(a, archive_write_open_fd(a, fd), "open", error))
    return FALSE;

  paths = g_hash_table_get_keys_as_array(entries, &n_paths);
  qsort(paths, n_paths, sizeof(*paths), compare_paths);
  for (guint i = 0; i < n_paths; i++)
    if (!write_entry(a, g_hash_table_lookup(entries, paths[i]), (gint64) i + 1, error))
      return FALSE;
  return archive_check(a, archive_write_close(a), "close", error);
}

static gboolean
fsync_dir(const char *dir, GError **error)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int errsv;

  if (fd >= 0 && fsync(fd) == 0) {
    close(fd);
    return TRUE;
  }
  errsv = errno;
  if (fd >= 0)
    close(fd);
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
              "cannot fsync directory '%s': %s", dir, g_strerror(errsv));
  return FALSE;
}

gboolean
vfd_initramfs_build(const char *output, const char *init_path,
                    const VfdInitramfsFile *extra, gsize n_extra, GError **error)
{
  static const char *const fixed_dirs[] = { "dev", "proc", "sys", "run", "tmp" };
  g_autoptr(GHashTable) entries = NULL;
  g_auto(TmpFile) tmp = { NULL, -1 };
  g_autofree char *dir = NULL;
  g_autofree char *base = NULL;
  Entry *console;
  int r;

  g_return_val_if_fail(output != NULL, FALSE);
  g_return_val_if_fail(init_path != NULL, FALSE);
  g_return_val_if_fail(extra != NULL || n_extra == 0, FALSE);
  g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

  /* 1. Collect and check everything, opening the sources. */
  entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) entry_free);
  for (gsize i = 0; i < G_N_ELEMENTS(fixed_dirs); i++)
    add_dir(entries, fixed_dirs[i], NULL);
  console = entry_new("dev/console", S_IFCHR, 0600);
  console->rdev_major = CONSOLE_MAJOR;
  console->rdev_minor = CONSOLE_MINOR;
  if (!add_leaf(entries, console, error))
    return FALSE;
  if (!add_file(entries, init_path, "/init", 0755, error))
    return FALSE;
  for (gsize i = 0; i < n_extra; i++)
    if (!add_file(entries, extra[i].source, extra[i].dest, extra[i].mode, error))
      return FALSE;

  /* 2. Write a temporary file next to @output. */
  dir = g_path_get_dirname(output);
  base = g_path_get_basename(output);
  tmp.path = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
  tmp.fd = g_mkstemp_full(tmp.path, O_WRONLY | O_CLOEXEC, 0644);
  if (tmp.fd < 0) {
    int errsv = errno;
    g_clear_pointer(&tmp.path, g_free);  /* nothing was created */
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "cannot create a temporary file in '%s': %s", dir, g_strerror(errsv));
    return FALSE;
  }
  if (fchmod(tmp.fd, 0644) < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "cannot chmod '%s': %s", tmp.path, g_strerror(errsv));
    return FALSE;
  }
  if (!write_archive(tmp.fd, entries, error))
    return FALSE;

  /* 3. Make it durable, then put it in place. */
  r = fsync(tmp.fd);
  if (r == 0) {
    r = close(tmp.fd);
    tmp.fd = -1;  /* closed even when close() fails */
  }
  if (r < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "cannot write '%s': %s", tmp.path, g_strerror(errsv));
    return FALSE;
  }
  if (g_rename(tmp.path, output) < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                "cannot rename '%s' to '%s': %s", tmp.path, output, g_strerror(errsv));
    return FALSE;
  }
  g_clear_pointer(&tmp.path, g_free);  /* committed: nothing to remove */
  return fsync_dir(dir, error);
}
