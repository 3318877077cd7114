/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sandbox's disks: CreateSandbox's `disks aa{sv}` checked, and the QEMU
 * and guest command line for them (guest-disks.h). */
#include "guest-disks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../guest-init/protocol.h"
#include "error.h"
#include "path.h"

const char *
vfd_disk_role_name(VfdDiskRole role)
{
  switch (role) {
  case VFD_DISK_ROOT:
    return "root";
  case VFD_DISK_OVERLAY:
    return "overlay";
  case VFD_DISK_DATA:
    return "data";
  }
  return "?";
}

void
vfd_disk_free(gpointer p)
{
  VfdDisk *d = p;

  if (!d)
    return;
  if (d->fd >= 0)
    close(d->fd);
  g_free(d->path);
  g_free(d);
}

/* Checks a passed fd for @d (its read_only set): a regular file, not
 * O_PATH, readable; writable too unless read-only. */
static gboolean
check_fd(const VfdDisk *d, const char *what, GError **error)
{
  struct stat st;
  int fl = fcntl(d->fd, F_GETFL);

  if (fl < 0 || fstat(d->fd, &st) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: fd: %s", what, g_strerror(e));
    return FALSE;
  }
#ifdef O_PATH
  if (fl & O_PATH) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: fd is an O_PATH descriptor; open the image", what);
    return FALSE;
  }
#endif
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: fd is not a regular file", what);
    return FALSE;
  }
  if ((fl & O_ACCMODE) == O_WRONLY) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: fd is open for writing only; open it O_RDONLY "
                "(read-only disk) or O_RDWR", what);
    return FALSE;
  }
  if (!d->read_only && (fl & O_ACCMODE) != O_RDWR) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "%s: a writable disk's fd must be open O_RDWR (or set read_only)", what);
    return FALSE;
  }
  return TRUE;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdDisk, vfd_disk_free)

/* One entry of disks (@i) into a new VfdDisk, or NULL with @error. */
static VfdDisk *
parse_one(GVariant *entry, guint i, GUnixFDList *fd_list, GError **error)
{
  g_autoptr(VfdDisk) d = NULL;
  g_autofree char *what = g_strdup_printf("disks[%u]", i);
  GVariantIter it;
  const char *key;
  GVariant *value;
  const char *role = NULL;
  gboolean have_fd = FALSE;
  gint32 handle = -1;

  d = g_new0(VfdDisk, 1);
  d->fd = -1;
  g_variant_iter_init(&it, entry);
  while (g_variant_iter_loop(&it, "{&sv}", &key, &value)) {
    const char *want = NULL;

    if (g_str_equal(key, "role")) {
      if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
        role = g_variant_get_string(value, NULL);
      else
        want = "s";
    } else if (g_str_equal(key, "path")) {
      if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
        d->path = g_variant_dup_string(value, NULL);
      else
        want = "s";
    } else if (g_str_equal(key, "fd")) {
      if (g_variant_is_of_type(value, G_VARIANT_TYPE_HANDLE)) {
        handle = g_variant_get_handle(value);
        have_fd = TRUE;
      } else
        want = "h";
    } else if (g_str_equal(key, "read_only")) {
      if (g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN))
        d->read_only = g_variant_get_boolean(value);
      else
        want = "b";
    } else {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "%s: unknown key '%.64s' (role s, path s or fd h, read_only b)", what, key);
      g_variant_unref(value);
      return NULL;
    }
    if (want) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: %s must be of type %s", what, key, want);
      g_variant_unref(value);
      return NULL;
    }
  }
  if (!role) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: role is required (root, overlay or data)", what);
    return NULL;
  }
  if (g_str_equal(role, "root"))
    d->role = VFD_DISK_ROOT;
  else if (g_str_equal(role, "overlay"))
    d->role = VFD_DISK_OVERLAY;
  else if (g_str_equal(role, "data"))
    d->role = VFD_DISK_DATA;
  else {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: role '%.32s' is not root, overlay or data", what,
                role);
    return NULL;
  }
  if ((d->path != NULL) == have_fd) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: give a path or an fd (one of them)", what);
    return NULL;
  }
  if (d->path && (!g_path_is_absolute(d->path) || strlen(d->path) > 4096 ||
                  !vfd_path_check(d->path, VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "%s: path '%.128s' must be absolute, without '.' or '..' components, at most 4096 bytes", what, d->path);
    return NULL;
  }
  if (have_fd) {
    g_autoptr(GError) local = NULL;

    if (!fd_list || handle < 0 || handle >= g_unix_fd_list_get_length(fd_list)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: fd %d: no such file descriptor came with the call",
                  what, (int) handle);
      return NULL;
    }
    d->fd = g_unix_fd_list_get(fd_list, handle, &local);
    if (d->fd < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s: fd: %s", what, local->message);
      return NULL;
    }
    if (!check_fd(d, what, error))
      return NULL;
  }
  return g_steal_pointer(&d);
}

GPtrArray *
vfd_disks_parse(GVariant *disks, const char *legacy_disk, GUnixFDList *fd_list, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(vfd_disk_free);
  const VfdDisk *root = NULL, *overlay = NULL;
  guint n_data = 0;

  if (disks && legacy_disk) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "give disk or disks, not both (disk is a writable root disk: disks [{role: root, path}])");
    return NULL;
  }
  if (legacy_disk) {
    VfdDisk *d;
    GVariantBuilder b;
    g_autoptr(GVariant) one = NULL;

    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", "role", g_variant_new_string("root"));
    g_variant_builder_add(&b, "{sv}", "path", g_variant_new_string(legacy_disk));
    one = g_variant_ref_sink(g_variant_builder_end(&b));
    d = parse_one(one, 0, NULL, error);
    if (!d) {
      if (error && *error)
        g_prefix_error(error, "disk: ");
      return NULL;
    }
    g_strlcpy(d->serial, VFIOD_DISK_SERIAL_ROOT, sizeof d->serial);
    g_ptr_array_add(out, d);
    return g_steal_pointer(&out);
  }
  if (!disks)
    return g_steal_pointer(&out);
  if (g_variant_n_children(disks) > VFD_DISKS_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "disks: %zu given, at most %d", g_variant_n_children(disks),
                VFD_DISKS_MAX);
    return NULL;
  }
  for (gsize i = 0; i < g_variant_n_children(disks); i++) {
    g_autoptr(GVariant) entry = g_variant_get_child_value(disks, i);
    VfdDisk *d = parse_one(entry, (guint) i, fd_list, error);

    if (!d)
      return NULL;
    g_ptr_array_add(out, d);
    if (d->role == VFD_DISK_ROOT) {
      if (root) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "disks[%zu]: a second root disk", i);
        return NULL;
      }
      root = d;
      g_strlcpy(d->serial, VFIOD_DISK_SERIAL_ROOT, sizeof d->serial);
    } else if (d->role == VFD_DISK_OVERLAY) {
      if (overlay) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "disks[%zu]: a second overlay disk", i);
        return NULL;
      }
      if (d->read_only) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "disks[%zu]: the overlay disk holds what the workload writes: it cannot be read-only", i);
        return NULL;
      }
      overlay = d;
      g_strlcpy(d->serial, VFIOD_DISK_SERIAL_OVERLAY, sizeof d->serial);
    } else {
      d->index = n_data++;
      g_snprintf(d->serial, sizeof d->serial, VFIOD_DISK_SERIAL_DATA "%u", d->index);
    }
  }
  if (overlay && (!root || !root->read_only)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        root ? "disks: an overlay needs a read-only root disk (read_only: true)"
                             : "disks: an overlay needs a root disk (role root, read_only true)");
    return NULL;
  }
  return g_steal_pointer(&out);
}

const VfdDisk *
vfd_disks_root(GPtrArray *disks)
{
  for (guint i = 0; disks && i < disks->len; i++) {
    const VfdDisk *d = g_ptr_array_index(disks, i);
    if (d->role == VFD_DISK_ROOT)
      return d;
  }
  return NULL;
}

/* The fd of @fd's file opened anew with @flags (through /proc/self/fd:
 * the very same inode), or -1 with errno. */
static int
reopen_fd(int fd, int flags)
{
  char self[64];

  g_snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  return open(self, flags | O_CLOEXEC | O_NOCTTY);
}

gboolean
vfd_disks_qemu_args(GPtrArray *disks, gboolean mmio, int first_fdset, GStrvBuilder *args, GStrvBuilder *append,
                    GArray *fds, GError **error)
{
  const VfdDisk *root = vfd_disks_root(disks);
  gboolean have_overlay = FALSE;

  for (guint i = 0; disks && i < disks->len; i++) {
    const VfdDisk *d = g_ptr_array_index(disks, i);
    int set = first_fdset + (int) i;
    int rw = -1, ro = -1;
    g_autofree char *drive = NULL, *device = NULL;

    /* A read-only disk's set holds one O_RDONLY fd; a writable one's an
     * O_RDWR fd and an O_RDONLY one of the same file. Each launch gets
     * open file descriptions of its own (reopened, not dup'ed): QEMU's
     * image locks belong to the description, and one that outlived a
     * stopped QEMU in vfiod would lock the next QEMU out. */
    if (!d->read_only && (rw = reopen_fd(d->fd, O_RDWR)) < 0)
      goto fail;
    ro = reopen_fd(d->fd, O_RDONLY);
    if (ro < 0) {
      if (rw >= 0)
        close(rw);
      goto fail;
    }
    if (rw >= 0) {
      g_autofree char *add = NULL;
      g_array_append_val(fds, rw);
      add = g_strdup_printf("fd=%u,set=%d,opaque=%s", 3 + fds->len - 1, set, d->serial);
      g_strv_builder_add_many(args, "-add-fd", add, NULL);
    }
    {
      g_autofree char *add = NULL;
      g_array_append_val(fds, ro);
      add = g_strdup_printf("fd=%u,set=%d,opaque=%s-ro", 3 + fds->len - 1, set, d->serial);
      g_strv_builder_add_many(args, "-add-fd", add, NULL);
    }
    drive = g_strdup_printf("file=/dev/fdset/%d,if=none,id=%s,format=raw%s", set, d->serial,
                            d->read_only ? ",readonly=on" : "");
    device = g_strdup_printf("%s,drive=%s,serial=%s", mmio ? "virtio-blk-device" : "virtio-blk-pci", d->serial,
                             d->serial);
    g_strv_builder_add_many(args, "-drive", drive, "-device", device, NULL);
    have_overlay = have_overlay || d->role == VFD_DISK_OVERLAY;
    continue;
  fail: {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s disk: cannot hand it to QEMU: %s",
                vfd_disk_role_name(d->role), g_strerror(e));
    return FALSE;
  }
  }
  if (root) {
    g_strv_builder_add(append, VFIOD_KEY_ROOT "=" VFIOD_DISK_BY_SERIAL VFIOD_DISK_SERIAL_ROOT);
    if (root->read_only)
      g_strv_builder_add_many(append, VFIOD_KEY_ROOTFLAGS "=ro",
                              have_overlay ? VFIOD_KEY_OVERLAY "=" VFIOD_DISK_BY_SERIAL VFIOD_DISK_SERIAL_OVERLAY
                                           : VFIOD_KEY_OVERLAY "=" VFIOD_OVERLAY_TMPFS,
                              NULL);
  }
  return TRUE;
}
