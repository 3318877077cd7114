/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel for unit tests; the semantics are documented in
 * fake-sysfs.h. The in-memory model (devices, drivers) is the source of
 * truth; every change is mirrored into the tree at once, under the lock. */
#include "fake-sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FAKE_SYSFS_NO_CMOCKA
#include <cmocka.h>
#endif

#include "bdf.h"

/* Set-up helpers fail loudly: inside a cmocka test they fail the test;
 * built with -DFAKE_SYSFS_NO_CMOCKA (test programs that are not cmocka
 * tests, e.g. tests/crash/vfiod-fake) they abort with g_error(). */
#ifndef FAKE_SYSFS_NO_CMOCKA
#define FAKE_FAIL(...) fail_msg(__VA_ARGS__)
#else
#define FAKE_FAIL(...) g_error(__VA_ARGS__)
#endif
#define FAKE_ASSERT(cond)                                                                                        \
  do {                                                                                                           \
    if (!(cond))                                                                                                 \
      FAKE_FAIL("fake-sysfs: %s:%d: %s", __FILE__, __LINE__, #cond);                                             \
  } while (0)
/* @r: 0 or -errno. */
#define FAKE_ASSERT_OK(r, what)                                                                                  \
  do {                                                                                                           \
    int fake_r_ = (r);                                                                                           \
    if (fake_r_ < 0)                                                                                             \
      FAKE_FAIL("fake-sysfs: %s:%d: %s: %s", __FILE__, __LINE__, (what), g_strerror(-fake_r_));                  \
  } while (0)

/* The kernel refuses driver_override values that do not fit in a page with
 * the newline sysfs_emit() adds. */
#define OVERRIDE_MAX 4095

typedef struct {
  char *bdf;      /* canonical, lower case */
  char *dir_rel;  /* "devices/pci0000:00/<BDF>", relative to the sys root */
  guint16 vendor;
  guint16 device;
  guint32 class_code;
  int group;      /* -1: none */
  char *driver;   /* NULL: unbound */
  char *native_driver;
  char *override; /* NULL: unset */
} FakeDevice;

typedef struct {
  char *name;
  GArray *dynids; /* guint32: vendor << 16 | device */
} FakeDriver;

typedef enum {
  FAULT_FAIL,
  FAULT_REGRAB,
  FAULT_PROBE_NOTHING,
  FAULT_VANISH,
  FAULT_HANG,
} FaultKind;

typedef struct {
  FaultKind kind;
  char *bdf;
  FakeOp op;
  int err;      /* FAULT_FAIL */
  char *driver; /* FAULT_REGRAB */
} Fault;

struct FakeSysfs {
  GMutex lock;
  GCond cond; /* signalled on any change of hung, unhang_serial, in_flight */
  char *tmp;  /* canonical mkdtemp() directory */
  char *sys_root;
  char *dev_root;
  GHashTable *devices; /* bdf -> FakeDevice */
  GHashTable *drivers; /* name -> FakeDriver */
  GPtrArray *faults;   /* Fault, in the order queued */
  GPtrArray *log;      /* "path=value" */
  guint write_count;
  guint outside;
  guint hung;
  guint64 unhang_serial;
  guint in_flight;
  gboolean closing;
  gboolean keep;       /* free leaves the tree on disk */
  char *model_path;    /* <tmp>/model.ini */
  char *writes_path;   /* <tmp>/writes.log */
};

#define MODEL_FILE "model.ini"
#define WRITES_FILE "writes.log"
#define MODEL_FORMAT "vfiod-fake-sysfs"
#define MODEL_VERSION 1

static void
fake_device_free(FakeDevice *d)
{
  g_free(d->bdf);
  g_free(d->dir_rel);
  g_free(d->driver);
  g_free(d->native_driver);
  g_free(d->override);
  g_free(d);
}

static void
fake_driver_free(FakeDriver *drv)
{
  g_free(drv->name);
  g_array_unref(drv->dynids);
  g_free(drv);
}

static void
fault_free(Fault *f)
{
  g_free(f->bdf);
  g_free(f->driver);
  g_free(f);
}

/* ---- tree primitives (return 0 or -errno; never assert: the writer may
 * run on a worker thread) ---- */

static char *
sys_path(FakeSysfs *fs, const char *rel)
{
  return g_build_filename(fs->sys_root, rel, NULL);
}

static int
write_file(const char *path, const void *data, size_t len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return -errno;
  ssize_t n = len ? write(fd, data, len) : 0;
  int r = n < 0 ? -errno : ((size_t) n != len ? -EIO : 0);
  close(fd);
  return r;
}

static int
write_text(const char *path, const char *text)
{
  return write_file(path, text, strlen(text));
}

static int
make_link(const char *target, const char *link_path)
{
  if (unlink(link_path) < 0 && errno != ENOENT)
    return -errno;
  return symlink(target, link_path) < 0 ? -errno : 0;
}

static int
remove_link(const char *link_path)
{
  return unlink(link_path) < 0 && errno != ENOENT ? -errno : 0;
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path) < 0 ? -1 : 0;
}

/* Removes @path recursively without following symlinks; only inside @fs. */
static int
rm_rf(FakeSysfs *fs, const char *path)
{
  g_autofree char *prefix = g_strconcat(fs->tmp, "/", NULL);

  if (!g_str_has_prefix(path, prefix) && !g_str_equal(path, fs->tmp))
    return -EPERM;
  if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) < 0)
    return errno == ENOENT ? 0 : -errno;
  return 0;
}

static gboolean
is_bridge(const FakeDevice *d)
{
  return (d->class_code >> 8) == 0x0604;
}

/* ---- model + tree updates; call with the lock held ---- */

static FakeDriver *
find_driver(FakeSysfs *fs, const char *name)
{
  return name ? g_hash_table_lookup(fs->drivers, name) : NULL;
}

static gboolean
driver_has_dynid(FakeDriver *drv, const FakeDevice *d)
{
  guint32 id = (guint32) d->vendor << 16 | d->device;

  for (guint i = 0; drv && i < drv->dynids->len; i++)
    if (g_array_index(drv->dynids, guint32, i) == id)
      return TRUE;
  return FALSE;
}

/* Whether the PCI core matches @d with driver @name (pci_match_device). */
static gboolean
driver_matches(FakeSysfs *fs, const FakeDevice *d, const char *name)
{
  FakeDriver *drv = find_driver(fs, name);

  if (!drv)
    return FALSE;
  if (d->override)
    return g_str_equal(d->override, name);
  return g_strcmp0(d->native_driver, name) == 0 || driver_has_dynid(drv, d);
}

/* Whether driver @name's probe accepts @d (vfio-pci refuses bridges). */
static gboolean
driver_accepts(const FakeDevice *d, const char *name)
{
  return !(g_str_equal(name, FAKE_VFIO_DRIVER) && is_bridge(d));
}

static int
update_vfio_node(FakeSysfs *fs, int group)
{
  g_autofree char *num = NULL;
  g_autofree char *node = NULL;
  GHashTableIter it;
  FakeDevice *d;
  gboolean any = FALSE;

  if (group < 0)
    return 0;
  g_hash_table_iter_init(&it, fs->devices);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &d))
    if (d->group == group && d->driver &&
        (g_str_equal(d->driver, FAKE_VFIO_DRIVER) || g_str_has_suffix(d->driver, "_vfio_pci") ||
         g_str_has_suffix(d->driver, "-vfio-pci")))
      any = TRUE; /* vfio-pci or a VFIO variant driver (nvgrace_gpu_vfio_pci, ...) */
  num = g_strdup_printf("%d", group);
  node = g_build_filename(fs->dev_root, "vfio", num, NULL);
  if (any)
    return g_file_test(node, G_FILE_TEST_EXISTS) ? 0 : write_text(node, "");
  return remove_link(node);
}

static int
device_bind(FakeSysfs *fs, FakeDevice *d, const char *driver)
{
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *link = g_build_filename(dir, "driver", NULL);
  g_autofree char *target = g_strconcat("../../../bus/pci/drivers/", driver, NULL);
  g_autofree char *back = g_build_filename(fs->sys_root, "bus/pci/drivers", driver, d->bdf, NULL);
  g_autofree char *back_target = g_strconcat("../../../../", d->dir_rel, NULL);
  int r;

  g_free(d->driver);
  d->driver = g_strdup(driver);
  if ((r = make_link(target, link)) < 0 || (r = make_link(back_target, back)) < 0)
    return r;
  return update_vfio_node(fs, d->group);
}

static int
device_unbind(FakeSysfs *fs, FakeDevice *d)
{
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *link = g_build_filename(dir, "driver", NULL);
  g_autofree char *back = NULL;
  int r;

  if (!d->driver)
    return 0;
  back = g_build_filename(fs->sys_root, "bus/pci/drivers", d->driver, d->bdf, NULL);
  g_clear_pointer(&d->driver, g_free);
  if ((r = remove_link(link)) < 0 || (r = remove_link(back)) < 0)
    return r;
  return update_vfio_node(fs, d->group);
}

static int
device_set_override(FakeSysfs *fs, FakeDevice *d, const char *value)
{
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *file = g_build_filename(dir, "driver_override", NULL);
  g_autofree char *text = NULL;

  g_free(d->override);
  d->override = value && *value ? g_strdup(value) : NULL;
  text = g_strdup_printf("%s\n", d->override ? d->override : "(null)");
  return write_text(file, text);
}

static int
device_remove(FakeSysfs *fs, FakeDevice *d)
{
  g_autofree char *bus_link = g_build_filename(fs->sys_root, "bus/pci/devices", d->bdf, NULL);
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  int group = d->group;
  int r;

  if ((r = device_unbind(fs, d)) < 0 || (r = remove_link(bus_link)) < 0)
    return r;
  if (group >= 0) {
    g_autofree char *num = g_strdup_printf("%d", group);
    g_autofree char *gdir = g_build_filename(fs->sys_root, "kernel/iommu_groups", num, NULL);
    g_autofree char *gdevs = g_build_filename(gdir, "devices", NULL);
    g_autofree char *entry = g_build_filename(gdevs, d->bdf, NULL);
    g_autoptr(GDir) it = NULL;

    if ((r = remove_link(entry)) < 0)
      return r;
    /* The kernel frees a group with its last device. */
    it = g_dir_open(gdevs, 0, NULL);
    if (it && !g_dir_read_name(it) && (r = rm_rf(fs, gdir)) < 0)
      return r;
  }
  if ((r = rm_rf(fs, dir)) < 0)
    return r;
  g_hash_table_remove(fs->devices, d->bdf); /* frees d */
  return update_vfio_node(fs, group);
}

/* ---- persistence: <tmp>/model.ini, rewritten after every change ---- */

static gint
str_ptr_cmp(gconstpointer a, gconstpointer b)
{
  return g_strcmp0(*(const char *const *) a, *(const char *const *) b);
}

/* Keys of @table, sorted (the strings belong to the table). */
static GPtrArray *
sorted_keys(GHashTable *table)
{
  GPtrArray *keys = g_ptr_array_new();
  GHashTableIter it;
  gpointer k;

  g_hash_table_iter_init(&it, table);
  while (g_hash_table_iter_next(&it, &k, NULL))
    g_ptr_array_add(keys, k);
  g_ptr_array_sort(keys, str_ptr_cmp);
  return keys;
}

/* Writes the whole model to <tmp>/model.ini: temp file + rename, so that a
 * process killed at any point leaves the old or the new model, never a torn
 * one (no fsync: this guards against SIGKILL, not power loss). Lock held. */
static int
save_model_locked(FakeSysfs *fs)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GPtrArray) drivers = sorted_keys(fs->drivers);
  g_autoptr(GPtrArray) devices = sorted_keys(fs->devices);
  g_autofree char *data = NULL;
  g_autofree char *tmp = NULL;
  gsize len = 0;
  int r;

  g_key_file_set_string(kf, "fake-sysfs", "format", MODEL_FORMAT);
  g_key_file_set_integer(kf, "fake-sysfs", "version", MODEL_VERSION);
  for (guint i = 0; i < drivers->len; i++) {
    FakeDriver *drv = g_hash_table_lookup(fs->drivers, g_ptr_array_index(drivers, i));
    g_autofree char *group = g_strconcat("driver ", drv->name, NULL);
    g_autoptr(GString) ids = g_string_new(NULL);

    for (guint k = 0; k < drv->dynids->len; k++) {
      guint32 id = g_array_index(drv->dynids, guint32, k);
      g_string_append_printf(ids, "%s%04x:%04x", k ? ";" : "", id >> 16, id & 0xffff);
    }
    g_key_file_set_string(kf, group, "dynids", ids->str);
  }
  for (guint i = 0; i < devices->len; i++) {
    FakeDevice *d = g_hash_table_lookup(fs->devices, g_ptr_array_index(devices, i));
    g_autofree char *group = g_strconcat("device ", d->bdf, NULL);
    g_autofree char *vendor = g_strdup_printf("0x%04x", d->vendor);
    g_autofree char *device = g_strdup_printf("0x%04x", d->device);
    g_autofree char *cls = g_strdup_printf("0x%06x", d->class_code);

    g_key_file_set_string(kf, group, "dir", d->dir_rel);
    g_key_file_set_string(kf, group, "vendor", vendor);
    g_key_file_set_string(kf, group, "device", device);
    g_key_file_set_string(kf, group, "class", cls);
    g_key_file_set_integer(kf, group, "iommu_group", d->group);
    if (d->native_driver)
      g_key_file_set_string(kf, group, "native_driver", d->native_driver);
    if (d->driver)
      g_key_file_set_string(kf, group, "driver", d->driver);
    if (d->override)
      g_key_file_set_string(kf, group, "override", d->override);
  }
  data = g_key_file_to_data(kf, &len, NULL);
  tmp = g_strconcat(fs->model_path, ".tmp", NULL);
  if ((r = write_file(tmp, data, len)) < 0)
    return r;
  return rename(tmp, fs->model_path) < 0 ? -errno : 0;
}

/* After a change made outside the writer; lock held. Never asserts. */
static int
persist_locked(FakeSysfs *fs)
{
  int r = save_model_locked(fs);

  if (r < 0)
    g_printerr("fake-sysfs: cannot save %s: %s\n", fs->model_path, g_strerror(-r));
  return r;
}

/* Appends one line per write to <tmp>/writes.log: "<pid> path=value -> r"
 * (value escaped as in C; r 0 or -errno), for post-mortems. Lock held. */
static void
append_writes_log(FakeSysfs *fs, const char *path, const char *value, int r)
{
  g_autofree char *escaped = g_strescape(value ? value : "(null)", NULL);
  g_autofree char *line = g_strdup_printf("%d %s=%s -> %d\n", (int) getpid(), path ? path : "(null)", escaped, r);
  int fd = open(fs->writes_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);

  if (fd < 0)
    return;
  if (write(fd, line, strlen(line)) < 0) {
    /* best effort */
  }
  close(fd);
}

/* ---- faults ---- */

/* Removes and returns the first fault of @kind for @bdf/@op (@op ignored
 * for kinds that have none), or NULL. */
static Fault *
take_fault(FakeSysfs *fs, FaultKind kind, const char *bdf, FakeOp op)
{
  for (guint i = 0; i < fs->faults->len; i++) {
    Fault *f = g_ptr_array_index(fs->faults, i);
    gboolean op_matters = kind == FAULT_FAIL || kind == FAULT_VANISH || kind == FAULT_HANG;
    if (f->kind == kind && g_str_equal(f->bdf, bdf) && (!op_matters || f->op == op))
      return g_ptr_array_steal_index(fs->faults, i);
  }
  return NULL;
}

static void
add_fault(FakeSysfs *fs, FaultKind kind, const char *bdf, FakeOp op, int err, const char *driver)
{
  Fault *f = g_new0(Fault, 1);
  VfdBdf parsed;
  char buf[VFD_BDF_STRLEN];

  FAKE_ASSERT(vfd_bdf_parse(bdf, &parsed) == 0);
  f->kind = kind;
  f->bdf = g_strdup(vfd_bdf_format(&parsed, buf));
  f->op = op;
  f->err = err;
  f->driver = g_strdup(driver);
  g_mutex_lock(&fs->lock);
  g_ptr_array_add(fs->faults, f);
  g_mutex_unlock(&fs->lock);
}

/* ---- the kernel's reactions ---- */

static int
do_probe(FakeSysfs *fs, const char *bdf)
{
  FakeDevice *d = g_hash_table_lookup(fs->devices, bdf);
  g_autoptr(GList) names = NULL;
  const char *choice = NULL;
  Fault *nothing;

  if (!d)
    return -ENODEV;
  if (d->driver)
    return 0;
  nothing = take_fault(fs, FAULT_PROBE_NOTHING, bdf, FAKE_OP_PROBE);
  if (nothing) {
    fault_free(nothing);
    return 0;
  }
  if (d->override) {
    choice = find_driver(fs, d->override) ? d->override : NULL;
  } else if (find_driver(fs, d->native_driver)) {
    choice = d->native_driver;
  } else {
    names = g_list_sort(g_hash_table_get_keys(fs->drivers), (GCompareFunc) g_strcmp0);
    for (GList *l = names; l && !choice; l = l->next)
      if (driver_has_dynid(find_driver(fs, l->data), d))
        choice = l->data;
  }
  /* A driver whose probe fails leaves the device unbound; drivers_probe
   * still succeeds (really_probe() swallows probe errors). */
  if (!choice || !driver_accepts(d, choice))
    return 0;
  return device_bind(fs, d, choice);
}

static int
do_unbind(FakeSysfs *fs, const char *driver, const char *bdf)
{
  FakeDevice *d = g_hash_table_lookup(fs->devices, bdf);

  if (!d || g_strcmp0(d->driver, driver) != 0)
    return -ENODEV;
  return device_unbind(fs, d);
}

static int
do_bind(FakeSysfs *fs, const char *driver, const char *bdf)
{
  FakeDevice *d = g_hash_table_lookup(fs->devices, bdf);

  if (!d || !driver_matches(fs, d, driver))
    return -ENODEV;
  if (d->driver)
    return -EBUSY;
  if (!driver_accepts(d, driver))
    return -EINVAL;
  return device_bind(fs, d, driver);
}

static int
do_new_id(FakeSysfs *fs, const char *driver, const char *value)
{
  FakeDriver *drv = find_driver(fs, driver);
  g_autoptr(GList) bdfs = NULL;
  unsigned int vendor, device;
  guint32 id;
  int r;

  if (sscanf(value, "%x %x", &vendor, &device) < 2 || vendor > 0xffff || device > 0xffff)
    return -EINVAL;
  id = vendor << 16 | device;
  g_array_append_val(drv->dynids, id);
  /* driver_attach(): every unbound device that now matches. */
  bdfs = g_list_sort(g_hash_table_get_keys(fs->devices), (GCompareFunc) g_strcmp0);
  for (GList *l = bdfs; l; l = l->next) {
    FakeDevice *d = g_hash_table_lookup(fs->devices, l->data);
    if (!d->driver && driver_matches(fs, d, driver) && driver_accepts(d, driver) &&
        (r = device_bind(fs, d, driver)) < 0)
      return r;
  }
  return 0;
}

static int
do_remove_id(FakeSysfs *fs, const char *driver, const char *value)
{
  FakeDriver *drv = find_driver(fs, driver);
  unsigned int vendor, device;

  if (sscanf(value, "%x %x", &vendor, &device) < 2)
    return -EINVAL;
  for (guint i = 0; i < drv->dynids->len; i++)
    if (g_array_index(drv->dynids, guint32, i) == (vendor << 16 | device)) {
      g_array_remove_index(drv->dynids, i);
      return 0;
    }
  return -ENODEV;
}

static int
do_override(FakeSysfs *fs, const char *bdf, const char *value)
{
  FakeDevice *d = g_hash_table_lookup(fs->devices, bdf);
  g_autofree char *v = g_strdup(value);
  char *nl;

  if (!d)
    return -ENODEV;
  if (strlen(value) >= OVERRIDE_MAX)
    return -EINVAL;
  nl = strchr(v, '\n');
  if (nl)
    *nl = '\0';
  return device_set_override(fs, d, v);
}

/* What the default writer would do, but only if the file resolves inside
 * the fake tree (the parent directory may be reached through links). */
static int
plain_write(FakeSysfs *fs, const char *abs_path, const char *value)
{
  g_autofree char *parent = g_path_get_dirname(abs_path);
  g_autofree char *prefix = g_strconcat(fs->tmp, "/", NULL);
  g_autofree char *real = NULL;
  char *resolved = realpath(parent, NULL);
  int fd;

  if (!resolved)
    return -errno;
  real = g_strdup(resolved);
  free(resolved);
  if (!g_str_has_prefix(real, prefix)) {
    fs->outside++;
    g_printerr("fake-sysfs: refused a write resolving outside the fake tree: %s\n", abs_path);
    return -EACCES;
  }
  fd = open(abs_path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  ssize_t n = write(fd, value, strlen(value));
  int r = n < 0 ? -errno : ((size_t) n != strlen(value) ? -EIO : 0);
  close(fd);
  return r;
}

/* Splits @path into components relative to the sys root. NULL when it is
 * not strictly inside the fake sys tree (also for any ".." component). */
static char **
relative_components(FakeSysfs *fs, const char *path)
{
  g_autofree char *prefix = g_strconcat(fs->sys_root, "/", NULL);
  g_auto(GStrv) parts = NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);

  if (!path || !g_str_has_prefix(path, prefix))
    return NULL;
  parts = g_strsplit(path + strlen(prefix), "/", -1);
  for (char **p = parts; *p; p++) {
    if (!**p || g_str_equal(*p, "."))
      continue;
    if (g_str_equal(*p, ".."))
      return NULL;
    g_ptr_array_add(out, g_strdup(*p));
  }
  if (out->len == 0)
    return NULL;
  g_ptr_array_add(out, NULL);
  return (char **) g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

/* The device whose directory is @parts[0..n-2] (bus/pci/devices/<BDF> or
 * its real directory), or NULL. */
static FakeDevice *
device_of_attr_path(FakeSysfs *fs, char **parts, guint n)
{
  FakeDevice *d;
  g_autofree char *dir = NULL;

  if (n < 2 || !(d = g_hash_table_lookup(fs->devices, parts[n - 2])))
    return NULL;
  if (n == 5 && g_str_equal(parts[0], "bus") && g_str_equal(parts[1], "pci") && g_str_equal(parts[2], "devices"))
    return d;
  dir = g_strjoinv("/", parts);
  dir[strlen(dir) - strlen(parts[n - 1]) - 1] = '\0';
  return g_str_equal(dir, d->dir_rel) ? d : NULL;
}

static void
wait_unhang(FakeSysfs *fs)
{
  guint64 serial = fs->unhang_serial;

  fs->hung++;
  g_cond_broadcast(&fs->cond);
  while (serial == fs->unhang_serial && !fs->closing)
    g_cond_wait(&fs->cond, &fs->lock);
  fs->hung--;
  g_cond_broadcast(&fs->cond);
}

typedef enum {
  W_PLAIN,
  W_PROBE,
  W_UNBIND,
  W_BIND,
  W_NEW_ID,
  W_REMOVE_ID,
  W_OVERRIDE,
  W_REMOVE,
  W_RESET,
} WriteKind;

static int
handle_write(FakeSysfs *fs, const char *path, const char *value)
{
  g_auto(GStrv) parts = relative_components(fs, path);
  g_autofree char *rel = NULL;
  g_autofree char *abs = NULL;
  g_autofree char *arg = NULL; /* value minus one trailing "\n" (sysfs_streq) */
  g_autofree char *bdf = NULL; /* the device a faultable write is about */
  const char *driver = NULL;   /* bus/pci/drivers/<driver>/... */
  const char *last;
  WriteKind kind = W_PLAIN;
  FakeOp op = FAKE_OP_OVERRIDE;
  FakeDevice *d = NULL;
  Fault *f;
  guint n;
  int r;

  fs->write_count++;
  if (parts)
    abs = g_build_filename(fs->sys_root, (rel = g_strjoinv("/", parts)), NULL);
  if (!parts || !value) {
    fs->outside++;
    g_ptr_array_add(fs->log, g_strdup_printf("!outside:%s=%s", path ? path : "(null)", value ? value : "(null)"));
    g_printerr("fake-sysfs: refused a write outside the fake tree: %s\n", path ? path : "(null)");
    return -EACCES;
  }
  g_ptr_array_add(fs->log, g_strdup_printf("%s=%s", rel, value));

  /* Zero bytes never reach a sysfs store() method. */
  if (!*value)
    return 0;

  n = g_strv_length(parts);
  last = parts[n - 1];
  arg = g_strdup(value);
  if (g_str_has_suffix(arg, "\n"))
    arg[strlen(arg) - 1] = '\0';

  if (g_str_equal(rel, "bus/pci/drivers_probe")) {
    kind = W_PROBE;
  } else if (n == 5 && g_str_has_prefix(rel, "bus/pci/drivers/") && find_driver(fs, parts[3])) {
    driver = parts[3];
    if (g_str_equal(last, "unbind"))
      kind = W_UNBIND;
    else if (g_str_equal(last, "bind"))
      kind = W_BIND;
    else if (g_str_equal(last, "new_id"))
      kind = W_NEW_ID;
    else if (g_str_equal(last, "remove_id"))
      kind = W_REMOVE_ID;
  } else if ((g_str_equal(last, "driver_override") || g_str_equal(last, "remove") || g_str_equal(last, "reset")) &&
             (d = device_of_attr_path(fs, parts, n))) {
    kind = g_str_equal(last, "remove") ? W_REMOVE : g_str_equal(last, "reset") ? W_RESET : W_OVERRIDE;
  }

  switch (kind) {
  case W_PROBE:
    op = FAKE_OP_PROBE;
    bdf = g_strdup(arg);
    break;
  case W_UNBIND:
    op = FAKE_OP_UNBIND;
    bdf = g_strdup(arg);
    break;
  case W_BIND:
    op = FAKE_OP_BIND;
    bdf = g_strdup(arg);
    break;
  case W_OVERRIDE:
    op = FAKE_OP_OVERRIDE;
    bdf = g_strdup(d->bdf);
    break;
  case W_RESET:
    op = FAKE_OP_RESET;
    bdf = g_strdup(d->bdf);
    break;
  default:
    break;
  }

  if (bdf && (f = take_fault(fs, FAULT_HANG, bdf, op))) {
    fault_free(f);
    wait_unhang(fs); /* drops the lock while waiting: look d up again */
  }

  if (bdf && (f = take_fault(fs, FAULT_FAIL, bdf, op))) {
    r = -f->err;
    fault_free(f);
  } else {
    switch (kind) {
    case W_PROBE:
      r = do_probe(fs, arg);
      break;
    case W_UNBIND:
      r = do_unbind(fs, driver, arg);
      break;
    case W_BIND:
      r = do_bind(fs, driver, arg);
      break;
    case W_NEW_ID:
      r = do_new_id(fs, driver, value);
      break;
    case W_REMOVE_ID:
      r = do_remove_id(fs, driver, value);
      break;
    case W_OVERRIDE:
      r = do_override(fs, bdf, value);
      break;
    case W_REMOVE:
      /* remove_store(): kstrtoul, non-zero removes. */
      d = device_of_attr_path(fs, parts, n);
      if (!d)
        r = -ENODEV;
      else if (strtoul(arg, NULL, 0) != 0)
        r = device_remove(fs, d);
      else
        r = 0;
      break;
    case W_RESET:
      /* reset_store(): "1" only; pci_reset_function() has no method when
       * reset_method lists none. */
      d = g_hash_table_lookup(fs->devices, bdf);
      if (!d) {
        r = -ENODEV;
      } else if (!g_str_equal(arg, "1")) {
        r = -EINVAL;
      } else {
        g_autofree char *dir = sys_path(fs, d->dir_rel);
        g_autofree char *mpath = g_build_filename(dir, "reset_method", NULL);
        g_autofree char *methods = NULL;
        r = g_file_get_contents(mpath, &methods, NULL, NULL) && *g_strstrip(methods) ? 0 : -ENOTTY;
      }
      break;
    case W_PLAIN:
    default:
      r = plain_write(fs, abs, value);
      break;
    }
  }

  if (!bdf)
    return r;
  /* Post-write effects, keyed on the BDF string (the device may be gone). */
  if (op == FAKE_OP_UNBIND && r == 0 && (f = take_fault(fs, FAULT_REGRAB, bdf, op))) {
    FakeDevice *dev = g_hash_table_lookup(fs->devices, bdf);
    if (dev && !dev->driver)
      (void) device_bind(fs, dev, f->driver);
    fault_free(f);
  }
  if ((f = take_fault(fs, FAULT_VANISH, bdf, op))) {
    FakeDevice *dev = g_hash_table_lookup(fs->devices, bdf);
    if (dev)
      (void) device_remove(fs, dev);
    fault_free(f);
  }
  return r;
}

int
fake_sysfs_writer(const char *path, const char *value, void *fake)
{
  FakeSysfs *fs = fake;
  int r;

  g_mutex_lock(&fs->lock);
  fs->in_flight++;
  r = handle_write(fs, path, value);
  {
    g_autofree char *prefix = g_strconcat(fs->sys_root, "/", NULL);
    append_writes_log(fs, path && g_str_has_prefix(path, prefix) ? path + strlen(prefix) : path, value, r);
  }
  persist_locked(fs);
  fs->in_flight--;
  g_cond_broadcast(&fs->cond);
  g_mutex_unlock(&fs->lock);
  return r;
}

/* ---- public API ---- */

/* A FakeSysfs for the canonical directory @tmp (taken), empty model. */
static FakeSysfs *
fake_alloc(char *tmp)
{
  FakeSysfs *fs = g_new0(FakeSysfs, 1);

  fs->tmp = tmp;
  fs->sys_root = g_build_filename(fs->tmp, "sys", NULL);
  fs->dev_root = g_build_filename(fs->tmp, "dev", NULL);
  fs->model_path = g_build_filename(fs->tmp, MODEL_FILE, NULL);
  fs->writes_path = g_build_filename(fs->tmp, WRITES_FILE, NULL);
  g_mutex_init(&fs->lock);
  g_cond_init(&fs->cond);
  fs->devices = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) fake_device_free);
  fs->drivers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) fake_driver_free);
  fs->faults = g_ptr_array_new_with_free_func((GDestroyNotify) fault_free);
  fs->log = g_ptr_array_new_with_free_func(g_free);
  return fs;
}

/* The fixed part of the tree (directories, bus files, /dev/vfio/vfio). */
static int
make_skeleton(FakeSysfs *fs)
{
  static const char *const dirs[] = {
    "sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/bus/pci/slots", "sys/kernel/iommu_groups",
    "sys/devices", "dev/vfio",
  };
  static const struct {
    const char *rel, *text;
  } files[] = {
    { "sys/bus/pci/drivers_probe", "" },
    { "sys/bus/pci/drivers_autoprobe", "1\n" },
    { "sys/bus/pci/rescan", "" },
    { "dev/vfio/vfio", "" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(dirs); i++) {
    g_autofree char *p = g_build_filename(fs->tmp, dirs[i], NULL);
    if (g_mkdir_with_parents(p, 0755) < 0)
      return -errno;
  }
  for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *p = g_build_filename(fs->tmp, files[i].rel, NULL);
    int r;
    if (!g_file_test(p, G_FILE_TEST_EXISTS) && (r = write_text(p, files[i].text)) < 0)
      return r;
  }
  return 0;
}

/* Canonical form of existing directory @dir; NULL for "/" or on error. */
static char *
canonical_dir(const char *dir)
{
  char *real = realpath(dir, NULL);

  if (real && (strlen(real) <= 1 || !g_file_test(real, G_FILE_TEST_IS_DIR))) {
    free(real);
    return NULL;
  }
  return real;
}

static FakeSysfs *
new_in_existing(const char *dir)
{
  char *real = canonical_dir(dir);
  FakeSysfs *fs;

  if (!real)
    FAKE_FAIL("fake-sysfs: %s is not a usable directory", dir);
  fs = fake_alloc(real);
  FAKE_ASSERT_OK(make_skeleton(fs), fs->tmp);
  g_mutex_lock(&fs->lock);
  FAKE_ASSERT_OK(save_model_locked(fs), fs->model_path);
  g_mutex_unlock(&fs->lock);
  return fs;
}

FakeSysfs *
fake_sysfs_new(void)
{
  g_autofree char *tmpl = g_build_filename(g_get_tmp_dir(), "vfiod-fake-sysfs-XXXXXX", NULL);

  if (!g_mkdtemp(tmpl))
    FAKE_FAIL("fake-sysfs: mkdtemp %s: %s", tmpl, g_strerror(errno));
  return new_in_existing(tmpl);
}

FakeSysfs *
fake_sysfs_new_in(const char *dir)
{
  g_autoptr(GDir) it = NULL;

  FAKE_ASSERT(dir && g_path_is_absolute(dir));
  if (g_mkdir_with_parents(dir, 0755) < 0)
    FAKE_FAIL("fake-sysfs: cannot create %s: %s", dir, g_strerror(errno));
  it = g_dir_open(dir, 0, NULL);
  if (!it || g_dir_read_name(it))
    FAKE_FAIL("fake-sysfs: %s must be a new or empty directory", dir);
  return new_in_existing(dir);
}

const char *
fake_sysfs_dir(FakeSysfs *fs)
{
  return fs->tmp;
}

void
fake_sysfs_set_keep(FakeSysfs *fs, gboolean keep)
{
  g_mutex_lock(&fs->lock);
  fs->keep = keep;
  g_mutex_unlock(&fs->lock);
}

void
fake_sysfs_free(FakeSysfs *fs)
{
  if (!fs)
    return;
  g_mutex_lock(&fs->lock);
  fs->closing = TRUE;
  fs->unhang_serial++;
  g_cond_broadcast(&fs->cond);
  while (fs->in_flight > 0)
    g_cond_wait(&fs->cond, &fs->lock);
  g_mutex_unlock(&fs->lock);

  if (!fs->keep && rm_rf(fs, fs->tmp) < 0)
    g_printerr("fake-sysfs: could not remove %s\n", fs->tmp);
  g_hash_table_unref(fs->devices);
  g_hash_table_unref(fs->drivers);
  g_ptr_array_unref(fs->faults);
  g_ptr_array_unref(fs->log);
  g_mutex_clear(&fs->lock);
  g_cond_clear(&fs->cond);
  g_free(fs->sys_root);
  g_free(fs->dev_root);
  g_free(fs->model_path);
  g_free(fs->writes_path);
  free(fs->tmp);
  g_free(fs);
}

const char *
fake_sysfs_sys_root(FakeSysfs *fs)
{
  return fs->sys_root;
}

const char *
fake_sysfs_dev_root(FakeSysfs *fs)
{
  return fs->dev_root;
}

VfdSysfs *
fake_sysfs_open(FakeSysfs *fs)
{
  VfdSysfs *s = vfd_sysfs_new(fs->sys_root, fs->dev_root);

  vfd_sysfs_set_writer(s, fake_sysfs_writer, fs);
  return s;
}

#define TRY(expr)                                                                                                \
  do {                                                                                                           \
    int try_r_ = (expr);                                                                                         \
    if (try_r_ < 0)                                                                                              \
      return try_r_;                                                                                             \
  } while (0)

static int
mkdir_p(const char *path)
{
  return g_mkdir_with_parents(path, 0755) < 0 ? -errno : 0;
}

/* Adds driver @name; call with the lock held. */
static int
add_driver_locked(FakeSysfs *fs, const char *name)
{
  g_autofree char *dir = NULL;
  static const char *const files[] = { "bind", "unbind", "new_id", "remove_id", "uevent" };
  FakeDriver *drv;

  if (!name || !*name || strchr(name, '/') || g_str_equal(name, ".") || g_str_equal(name, ".."))
    return -EINVAL;
  if (find_driver(fs, name))
    return 0;
  dir = g_build_filename(fs->sys_root, "bus/pci/drivers", name, NULL);
  TRY(mkdir_p(dir));
  for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *f = g_build_filename(dir, files[i], NULL);
    TRY(write_text(f, ""));
  }
  drv = g_new0(FakeDriver, 1);
  drv->name = g_strdup(name);
  drv->dynids = g_array_new(FALSE, FALSE, sizeof(guint32));
  g_hash_table_insert(fs->drivers, drv->name, drv);
  return 0;
}

void
fake_sysfs_add_driver(FakeSysfs *fs, const char *name)
{
  int r;

  g_mutex_lock(&fs->lock);
  r = add_driver_locked(fs, name);
  if (r == 0)
    r = persist_locked(fs);
  g_mutex_unlock(&fs->lock);
  FAKE_ASSERT_OK(r, name ? name : "(null driver)");
}

/* Canonical lower-case form of @bdf; fails the test when it is not a BDF. */
static char *
canonical_bdf(const char *bdf)
{
  VfdBdf parsed;
  char buf[VFD_BDF_STRLEN];

  FAKE_ASSERT(bdf != NULL);
  if (vfd_bdf_parse(bdf, &parsed) < 0)
    FAKE_FAIL("fake-sysfs: '%s' is not a BDF", bdf);
  return g_strdup(vfd_bdf_format(&parsed, buf));
}

static int
write_config(const char *path, const FakeDevice *d, guint8 revision)
{
  guint8 cfg[256] = { 0 };

  cfg[0x00] = d->vendor & 0xff;
  cfg[0x01] = d->vendor >> 8;
  cfg[0x02] = d->device & 0xff;
  cfg[0x03] = d->device >> 8;
  cfg[0x08] = revision;
  cfg[0x09] = d->class_code & 0xff;         /* prog-if */
  cfg[0x0a] = (d->class_code >> 8) & 0xff;  /* subclass */
  cfg[0x0b] = (d->class_code >> 16) & 0xff; /* base class */
  cfg[0x0e] = is_bridge(d) ? 0x01 : 0x00;   /* header type */
  if (!is_bridge(d)) {
    cfg[0x2c] = d->vendor & 0xff; /* subsystem vendor; subsystem device 0 */
    cfg[0x2d] = d->vendor >> 8;
  }
  return write_file(path, cfg, sizeof(cfg));
}

/* Creates the device's directory, links and group entry; lock held. */
static int
add_device_locked(FakeSysfs *fs, FakeDevice *d, const char *driver)
{
  const guint8 revision = 0xa1;
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *vendor_s = g_strdup_printf("0x%04x\n", d->vendor);
  g_autofree char *device_s = g_strdup_printf("0x%04x\n", d->device);
  g_autofree char *class_s = g_strdup_printf("0x%06x\n", d->class_code);
  g_autofree char *rev_s = g_strdup_printf("0x%02x\n", revision);
  g_autofree char *modalias =
      g_strdup_printf("pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n", d->vendor, d->device, d->vendor, 0,
                      d->class_code >> 16, (d->class_code >> 8) & 0xff, d->class_code & 0xff);
  g_autofree char *bus_link = g_build_filename(fs->sys_root, "bus/pci/devices", d->bdf, NULL);
  g_autofree char *bus_target = g_strconcat("../../../", d->dir_rel, NULL);
  g_autofree char *config = g_build_filename(dir, "config", NULL);
  g_autoptr(GString) resource = g_string_new(NULL);
  const struct {
    const char *name;
    const char *text;
  } attrs[] = {
    { "vendor", vendor_s },
    { "device", device_s },
    { "class", class_s },
    { "revision", rev_s },
    { "subsystem_vendor", vendor_s },
    { "subsystem_device", "0x0000\n" },
    { "irq", "0\n" },
    { "numa_node", "-1\n" },
    { "modalias", modalias },
    { "reset_method", "flr bus\n" },
    { "d3cold_allowed", "1\n" },
    { "enable", "1\n" },
    { "driver_override", "(null)\n" },
    { "reset", "" },
    { "remove", "" },
    { "resource", NULL },
  };

  /* 6 BARs, ROM, 6 SR-IOV BARs: "start end flags", all unassigned. */
  for (int i = 0; i < 13; i++)
    g_string_append(resource, "0x0000000000000000 0x0000000000000000 0x0000000000000000\n");

  TRY(mkdir_p(dir));
  for (guint i = 0; i < G_N_ELEMENTS(attrs); i++) {
    g_autofree char *p = g_build_filename(dir, attrs[i].name, NULL);
    TRY(write_text(p, attrs[i].text ? attrs[i].text : resource->str));
  }
  if ((d->class_code >> 8) == 0x0300) { /* pci_is_vga() */
    g_autofree char *p = g_build_filename(dir, "boot_vga", NULL);
    TRY(write_text(p, "0\n"));
  }
  TRY(write_config(config, d, revision));
  TRY(make_link(bus_target, bus_link));

  if (d->group >= 0) {
    g_autofree char *num = g_strdup_printf("%d", d->group);
    g_autofree char *gdir = g_build_filename(fs->sys_root, "kernel/iommu_groups", num, NULL);
    g_autofree char *gdevs = g_build_filename(gdir, "devices", NULL);
    g_autofree char *gtype = g_build_filename(gdir, "type", NULL);
    g_autofree char *entry = g_build_filename(gdevs, d->bdf, NULL);
    g_autofree char *entry_target = g_strconcat("../../../../", d->dir_rel, NULL);
    g_autofree char *link = g_build_filename(dir, "iommu_group", NULL);
    g_autofree char *link_target = g_strconcat("../../../kernel/iommu_groups/", num, NULL);

    TRY(mkdir_p(gdevs));
    TRY(write_text(gtype, "DMA\n"));
    TRY(make_link(entry_target, entry));
    TRY(make_link(link_target, link));
  }

  if (driver) {
    TRY(add_driver_locked(fs, driver));
    TRY(device_bind(fs, d, driver));
  }
  return 0;
}

void
fake_sysfs_add_device(FakeSysfs *fs, const char *bdf, guint16 vendor, guint16 device, guint32 class_code,
                      int iommu_group, const char *driver, const char *native_driver)
{
  g_autofree char *b = canonical_bdf(bdf);
  FakeDevice *d;
  VfdBdf parsed;
  gboolean exists;
  int r = 0;

  FAKE_ASSERT(vfd_bdf_parse(b, &parsed) == 0);
  FAKE_ASSERT(class_code <= 0xffffff);
  g_mutex_lock(&fs->lock);
  exists = g_hash_table_contains(fs->devices, b);
  if (!exists) {
    d = g_new0(FakeDevice, 1);
    d->bdf = g_strdup(b);
    d->dir_rel = g_strdup_printf("devices/pci%04x:00/%s", parsed.domain, b);
    d->vendor = vendor;
    d->device = device;
    d->class_code = class_code;
    d->group = iommu_group < 0 ? -1 : iommu_group;
    d->native_driver = g_strdup(native_driver);
    g_hash_table_insert(fs->devices, d->bdf, d);
    r = add_device_locked(fs, d, driver);
    if (r == 0)
      r = persist_locked(fs);
  }
  g_mutex_unlock(&fs->lock);
  if (exists)
    FAKE_FAIL("fake-sysfs: device %s added twice", b);
  FAKE_ASSERT_OK(r, b);
}

/* Runs @fn on device @bdf under the lock; fails the test when there is no
 * such device or @fn fails. */
static void
with_device(FakeSysfs *fs, const char *bdf, int (*fn)(FakeSysfs *, FakeDevice *, const void *), const void *data)
{
  g_autofree char *b = canonical_bdf(bdf);
  FakeDevice *d;
  int r;

  g_mutex_lock(&fs->lock);
  d = g_hash_table_lookup(fs->devices, b);
  r = d ? fn(fs, d, data) : -ENODEV;
  if (r == 0)
    r = persist_locked(fs);
  g_mutex_unlock(&fs->lock);
  FAKE_ASSERT_OK(r, b);
}

static int
remove_cb(FakeSysfs *fs, FakeDevice *d, const void *data)
{
  return device_remove(fs, d);
}

void
fake_sysfs_remove_device(FakeSysfs *fs, const char *bdf)
{
  with_device(fs, bdf, remove_cb, NULL);
}

static int
set_override_cb(FakeSysfs *fs, FakeDevice *d, const void *data)
{
  return device_set_override(fs, d, data);
}

void
fake_sysfs_set_override(FakeSysfs *fs, const char *bdf, const char *value)
{
  with_device(fs, bdf, set_override_cb, value);
}

typedef struct {
  const char *attr;
  const char *contents;
} AttrArgs;

static int
set_attr_cb(FakeSysfs *fs, FakeDevice *d, const void *data)
{
  const AttrArgs *a = data;
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *p = g_build_filename(dir, a->attr, NULL);

  return write_text(p, a->contents);
}

void
fake_sysfs_set_attr(FakeSysfs *fs, const char *bdf, const char *attr, const char *contents)
{
  AttrArgs args = { attr, contents };

  FAKE_ASSERT(attr && *attr && !strchr(attr, '/') && contents);
  with_device(fs, bdf, set_attr_cb, &args);
}

char *
fake_sysfs_get_attr(FakeSysfs *fs, const char *bdf, const char *attr)
{
  g_autofree char *b = canonical_bdf(bdf);
  g_autofree char *path = NULL;
  char *contents = NULL;
  FakeDevice *d;

  FAKE_ASSERT(attr && *attr && !strchr(attr, '/'));
  g_mutex_lock(&fs->lock);
  d = g_hash_table_lookup(fs->devices, b);
  if (d) {
    g_autofree char *dir = sys_path(fs, d->dir_rel);
    path = g_build_filename(dir, attr, NULL);
    if (!g_file_get_contents(path, &contents, NULL, NULL))
      contents = NULL;
  }
  g_mutex_unlock(&fs->lock);
  return contents;
}

typedef struct {
  guint index;
  guint64 start, size, flags;
} BarArgs;

static int
set_bar_cb(FakeSysfs *fs, FakeDevice *d, const void *data)
{
  const BarArgs *a = data;
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *p = g_build_filename(dir, "resource", NULL);
  g_autofree char *old = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) out = g_string_new(NULL);

  if (!g_file_get_contents(p, &old, NULL, NULL))
    return -ENOENT;
  lines = g_strsplit(old, "\n", -1);
  for (guint i = 0; lines[i] && (*lines[i] || lines[i + 1]); i++) {
    if (i == a->index && a->size)
      g_string_append_printf(out, "0x%016" G_GINT64_MODIFIER "x 0x%016" G_GINT64_MODIFIER "x 0x%016" G_GINT64_MODIFIER
                             "x\n", a->start, a->start + a->size - 1, a->flags);
    else if (i == a->index)
      g_string_append(out, "0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
    else
      g_string_append_printf(out, "%s\n", lines[i]);
  }
  return write_text(p, out->str);
}

void
fake_sysfs_set_bar(FakeSysfs *fs, const char *bdf, guint index, guint64 start, guint64 size, guint64 flags)
{
  BarArgs args = { index, start, size, flags };

  FAKE_ASSERT(index <= 6);
  with_device(fs, bdf, set_bar_cb, &args);
}

void
fake_sysfs_fail_next(FakeSysfs *fs, const char *bdf, FakeOp op, int err)
{
  FAKE_ASSERT(err > 0);
  add_fault(fs, FAULT_FAIL, bdf, op, err, NULL);
}

void
fake_sysfs_regrab_after_unbind(FakeSysfs *fs, const char *bdf, const char *driver)
{
  fake_sysfs_add_driver(fs, driver);
  add_fault(fs, FAULT_REGRAB, bdf, FAKE_OP_UNBIND, 0, driver);
}

void
fake_sysfs_probe_binds_nothing(FakeSysfs *fs, const char *bdf)
{
  add_fault(fs, FAULT_PROBE_NOTHING, bdf, FAKE_OP_PROBE, 0, NULL);
}

void
fake_sysfs_vanish_after(FakeSysfs *fs, const char *bdf, FakeOp op)
{
  add_fault(fs, FAULT_VANISH, bdf, op, 0, NULL);
}

void
fake_sysfs_hang_next(FakeSysfs *fs, const char *bdf, FakeOp op)
{
  add_fault(fs, FAULT_HANG, bdf, op, 0, NULL);
}

void
fake_sysfs_unhang(FakeSysfs *fs)
{
  g_mutex_lock(&fs->lock);
  fs->unhang_serial++;
  g_cond_broadcast(&fs->cond);
  g_mutex_unlock(&fs->lock);
}

gboolean
fake_sysfs_wait_hung(FakeSysfs *fs, guint n, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time() + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  gboolean ok;

  g_mutex_lock(&fs->lock);
  while (fs->hung < n && g_cond_wait_until(&fs->cond, &fs->lock, end))
    ;
  ok = fs->hung >= n;
  g_mutex_unlock(&fs->lock);
  return ok;
}

static FakeDevice *
lookup_locked(FakeSysfs *fs, const char *bdf)
{
  VfdBdf parsed;
  char buf[VFD_BDF_STRLEN];

  if (!bdf || vfd_bdf_parse(bdf, &parsed) < 0)
    return NULL;
  return g_hash_table_lookup(fs->devices, vfd_bdf_format(&parsed, buf));
}

gboolean
fake_sysfs_has_device(FakeSysfs *fs, const char *bdf)
{
  gboolean r;

  g_mutex_lock(&fs->lock);
  r = lookup_locked(fs, bdf) != NULL;
  g_mutex_unlock(&fs->lock);
  return r;
}

char *
fake_sysfs_get_driver(FakeSysfs *fs, const char *bdf)
{
  FakeDevice *d;
  char *r;

  g_mutex_lock(&fs->lock);
  d = lookup_locked(fs, bdf);
  r = d ? g_strdup(d->driver) : NULL;
  g_mutex_unlock(&fs->lock);
  return r;
}

char *
fake_sysfs_get_override(FakeSysfs *fs, const char *bdf)
{
  FakeDevice *d;
  char *r;

  g_mutex_lock(&fs->lock);
  d = lookup_locked(fs, bdf);
  r = d ? g_strdup(d->override ? d->override : "") : NULL;
  g_mutex_unlock(&fs->lock);
  return r;
}

gboolean
fake_sysfs_vfio_node_exists(FakeSysfs *fs, int group)
{
  g_autofree char *num = g_strdup_printf("%d", group);
  g_autofree char *node = g_build_filename(fs->dev_root, "vfio", num, NULL);

  return g_file_test(node, G_FILE_TEST_EXISTS);
}

guint
fake_sysfs_write_count(FakeSysfs *fs)
{
  guint n;

  g_mutex_lock(&fs->lock);
  n = fs->write_count;
  g_mutex_unlock(&fs->lock);
  return n;
}

GPtrArray *
fake_sysfs_write_log(FakeSysfs *fs)
{
  GPtrArray *copy = g_ptr_array_new_with_free_func(g_free);

  g_mutex_lock(&fs->lock);
  for (guint i = 0; i < fs->log->len; i++)
    g_ptr_array_add(copy, g_strdup(g_ptr_array_index(fs->log, i)));
  g_mutex_unlock(&fs->lock);
  return copy;
}

static gboolean
value_equal(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);

  if (la && a[la - 1] == '\n')
    la--;
  if (lb && b[lb - 1] == '\n')
    lb--;
  return la == lb && strncmp(a, b, la) == 0;
}

guint
fake_sysfs_count_writes(FakeSysfs *fs, const char *path_glob, const char *value)
{
  guint n = 0;

  g_mutex_lock(&fs->lock);
  for (guint i = 0; i < fs->log->len; i++) {
    const char *entry = g_ptr_array_index(fs->log, i);
    const char *eq = strchr(entry, '=');
    g_autofree char *path = g_strndup(entry, (gsize) (eq - entry));
    if (path_glob && !g_pattern_match_simple(path_glob, path))
      continue;
    if (value && !value_equal(eq + 1, value))
      continue;
    n++;
  }
  g_mutex_unlock(&fs->lock);
  return n;
}

void
fake_sysfs_clear_log(FakeSysfs *fs)
{
  g_mutex_lock(&fs->lock);
  g_ptr_array_set_size(fs->log, 0);
  fs->write_count = 0;
  g_mutex_unlock(&fs->lock);
}

guint
fake_sysfs_outside_writes(FakeSysfs *fs)
{
  guint n;

  g_mutex_lock(&fs->lock);
  n = fs->outside;
  g_mutex_unlock(&fs->lock);
  return n;
}

/* ---- loading a tree that another process saved ---- */

/* Parses the hex number in key @key ("0x10de" or "10de"), at most @max. */
static gboolean
model_hex(GKeyFile *kf, const char *group, const char *key, guint64 max, guint64 *ret, GError **error)
{
  g_autofree char *v = g_key_file_get_string(kf, group, key, error);
  const char *digits;
  char *end = NULL;
  guint64 n;

  if (!v)
    return FALSE;
  digits = g_str_has_prefix(v, "0x") || g_str_has_prefix(v, "0X") ? v + 2 : v;
  n = g_ascii_strtoull(digits, &end, 16);
  if (!*digits || !g_ascii_isxdigit(*digits) || *end || n > max) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "[%s] %s: '%s' is not a hex number <= %#" G_GINT64_MODIFIER "x",
                group, key, v, max);
    return FALSE;
  }
  *ret = n;
  return TRUE;
}

/* Optional string key: NULL when absent; "" counts as absent. */
static char *
model_opt_string(GKeyFile *kf, const char *group, const char *key)
{
  char *v = g_key_file_get_string(kf, group, key, NULL);

  if (v && !*v)
    g_clear_pointer(&v, g_free);
  return v;
}

/* Creates driver @name's directory and files where missing. Lock held. */
static int
mirror_driver_locked(FakeSysfs *fs, const char *name)
{
  static const char *const files[] = { "bind", "unbind", "new_id", "remove_id", "uevent" };
  g_autofree char *dir = g_build_filename(fs->sys_root, "bus/pci/drivers", name, NULL);

  TRY(mkdir_p(dir));
  for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *f = g_build_filename(dir, files[i], NULL);
    if (!g_file_test(f, G_FILE_TEST_EXISTS))
      TRY(write_text(f, ""));
  }
  return 0;
}

/* Makes the tree show @d's driver and override as the model says (repairs
 * a tree that diverged, e.g. a process killed between the two). Lock held. */
static int
mirror_device_locked(FakeSysfs *fs, FakeDevice *d)
{
  g_autofree char *dir = sys_path(fs, d->dir_rel);
  g_autofree char *link = g_build_filename(dir, "driver", NULL);
  g_autofree char *driver = g_steal_pointer(&d->driver);
  g_autofree char *override = g_strdup(d->override);
  GHashTableIter it;
  FakeDriver *drv;

  if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
    TRY(add_device_locked(fs, d, NULL));
  TRY(remove_link(link));
  g_hash_table_iter_init(&it, fs->drivers);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &drv)) {
    g_autofree char *back = g_build_filename(fs->sys_root, "bus/pci/drivers", drv->name, d->bdf, NULL);
    TRY(remove_link(back));
  }
  if (driver) {
    TRY(add_driver_locked(fs, driver));
    TRY(device_bind(fs, d, driver));
  }
  return device_set_override(fs, d, override);
}

/* Drops <dev root>/vfio/<N> nodes that no vfio-pci device justifies. */
static int
mirror_vfio_nodes_locked(FakeSysfs *fs)
{
  g_autofree char *vdir = g_build_filename(fs->dev_root, "vfio", NULL);
  g_autoptr(GDir) it = g_dir_open(vdir, 0, NULL);
  g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(g_free);
  const char *name;

  while (it && (name = g_dir_read_name(it)))
    if (g_ascii_isdigit(*name))
      g_ptr_array_add(groups, g_strdup(name));
  for (guint i = 0; i < groups->len; i++)
    TRY(update_vfio_node(fs, (int) g_ascii_strtoll(g_ptr_array_index(groups, i), NULL, 10)));
  return 0;
}

static gboolean
load_locked(FakeSysfs *fs, GKeyFile *kf, GError **error)
{
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
  g_autoptr(GPtrArray) loaded = g_ptr_array_new();
  int r;

  /* Drivers first: devices refer to them. */
  for (char **g = groups; *g; g++) {
    g_autofree char *ids = NULL;
    g_auto(GStrv) parts = NULL;
    const char *name;
    FakeDriver *drv;

    if (!g_str_has_prefix(*g, "driver "))
      continue;
    name = *g + strlen("driver ");
    if (!*name || strchr(name, '/') || g_str_equal(name, ".") || g_str_equal(name, "..")) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "[%s]: bad driver name", *g);
      return FALSE;
    }
    if (find_driver(fs, name))
      continue;
    drv = g_new0(FakeDriver, 1);
    drv->name = g_strdup(name);
    drv->dynids = g_array_new(FALSE, FALSE, sizeof(guint32));
    g_hash_table_insert(fs->drivers, drv->name, drv);
    ids = g_key_file_get_string(kf, *g, "dynids", NULL);
    parts = g_strsplit(ids ? ids : "", ";", -1);
    for (char **p = parts; *p; p++) {
      unsigned int vendor, device;
      guint32 id;
      if (!**p)
        continue;
      if (sscanf(*p, "%x:%x", &vendor, &device) != 2 || vendor > 0xffff || device > 0xffff) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "[%s] dynids: bad entry '%s'", *g, *p);
        return FALSE;
      }
      id = vendor << 16 | device;
      g_array_append_val(drv->dynids, id);
    }
  }

  for (char **g = groups; *g; g++) {
    const char *bdf_s;
    VfdBdf parsed;
    char buf[VFD_BDF_STRLEN];
    guint64 vendor, device, cls;
    gint group;
    g_autoptr(GError) local = NULL;
    FakeDevice *d;

    if (!g_str_has_prefix(*g, "device "))
      continue;
    bdf_s = *g + strlen("device ");
    if (vfd_bdf_parse(bdf_s, &parsed) < 0 || !g_str_equal(vfd_bdf_format(&parsed, buf), bdf_s)) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "[%s]: not a canonical BDF", *g);
      return FALSE;
    }
    if (g_hash_table_contains(fs->devices, bdf_s))
      continue; /* GKeyFile merges duplicate groups anyway */
    if (!model_hex(kf, *g, "vendor", 0xffff, &vendor, error) || !model_hex(kf, *g, "device", 0xffff, &device, error) ||
        !model_hex(kf, *g, "class", 0xffffff, &cls, error))
      return FALSE;
    group = g_key_file_get_integer(kf, *g, "iommu_group", &local);
    if (local) {
      g_propagate_prefixed_error(error, g_steal_pointer(&local), "[%s] iommu_group: ", *g);
      return FALSE;
    }
    d = g_new0(FakeDevice, 1);
    d->bdf = g_strdup(bdf_s);
    d->dir_rel = model_opt_string(kf, *g, "dir");
    if (!d->dir_rel || g_path_is_absolute(d->dir_rel) || strstr(d->dir_rel, "..")) {
      g_free(d->dir_rel);
      d->dir_rel = g_strdup_printf("devices/pci%04x:00/%s", parsed.domain, d->bdf);
    }
    d->vendor = (guint16) vendor;
    d->device = (guint16) device;
    d->class_code = (guint32) cls;
    d->group = group < 0 ? -1 : group;
    d->native_driver = model_opt_string(kf, *g, "native_driver");
    d->driver = model_opt_string(kf, *g, "driver");
    d->override = model_opt_string(kf, *g, "override");
    g_hash_table_insert(fs->devices, d->bdf, d);
    g_ptr_array_add(loaded, d);
  }

  /* The model is complete and valid: only now touch the tree. */
  if ((r = make_skeleton(fs)) < 0) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "%s: %s", fs->tmp, g_strerror(-r));
    return FALSE;
  }
  {
    g_autoptr(GPtrArray) names = sorted_keys(fs->drivers);
    for (guint i = 0; i < names->len; i++)
      if ((r = mirror_driver_locked(fs, g_ptr_array_index(names, i))) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "cannot restore driver %s in the tree: %s",
                    (const char *) g_ptr_array_index(names, i), g_strerror(-r));
        return FALSE;
      }
  }
  for (guint i = 0; i < loaded->len; i++) {
    FakeDevice *d = g_ptr_array_index(loaded, i);
    if ((r = mirror_device_locked(fs, d)) < 0) {
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "cannot restore %s in the tree: %s", d->bdf,
                  g_strerror(-r));
      return FALSE;
    }
  }
  if ((r = mirror_vfio_nodes_locked(fs)) < 0 || (r = save_model_locked(fs)) < 0) {
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "cannot update %s: %s", fs->tmp, g_strerror(-r));
    return FALSE;
  }
  return TRUE;
}

FakeSysfs *
fake_sysfs_try_load(const char *dir, GError **error)
{
  char *real = dir ? canonical_dir(dir) : NULL;
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *format = NULL;
  g_autofree char *model = NULL;
  FakeSysfs *fs;
  gboolean ok;

  if (!real) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s is not a fake sysfs directory", dir ? dir : "(null)");
    return NULL;
  }
  model = g_build_filename(real, MODEL_FILE, NULL);
  if (!g_key_file_load_from_file(kf, model, G_KEY_FILE_NONE, error)) {
    g_prefix_error(error, "%s: ", model);
    free(real);
    return NULL;
  }
  format = g_key_file_get_string(kf, "fake-sysfs", "format", NULL);
  if (g_strcmp0(format, MODEL_FORMAT) != 0 || g_key_file_get_integer(kf, "fake-sysfs", "version", NULL) != MODEL_VERSION) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s: not a %s version %d model", model,
                MODEL_FORMAT, MODEL_VERSION);
    free(real);
    return NULL;
  }
  fs = fake_alloc(real);
  fs->keep = TRUE;
  g_mutex_lock(&fs->lock);
  ok = load_locked(fs, kf, error);
  g_mutex_unlock(&fs->lock);
  if (!ok) {
    g_prefix_error(error, "%s: ", model);
    fake_sysfs_free(fs);
    return NULL;
  }
  return fs;
}

FakeSysfs *
fake_sysfs_load(const char *dir)
{
  g_autoptr(GError) error = NULL;
  FakeSysfs *fs = fake_sysfs_try_load(dir, &error);

  if (!fs)
    FAKE_FAIL("fake-sysfs: cannot load: %s", error->message);
  return fs;
}
