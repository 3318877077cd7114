/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sysfs.h"

#include "failpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The count of timed-out writes still running, shared with their threads:
 * such a write may return after its VfdSysfs is gone. */
typedef struct {
  gatomicrefcount ref;
  gint count; /* atomic */
} HungCounter;

static HungCounter *
hung_counter_ref(HungCounter *c)
{
  g_atomic_ref_count_inc(&c->ref);
  return c;
}

static void
hung_counter_unref(HungCounter *c)
{
  if (c && g_atomic_ref_count_dec(&c->ref))
    g_free(c);
}

/* The threads that run writes (issue 17: a thread started per write cost
 * 16 thread starts and exits per bind+release cycle; in the lab VM that is
 * milliseconds each). A thread whose write returned counts itself idle and
 * waits WRITER_IDLE_USEC for the next one, then exits. A write is handed to
 * an idle thread only by taking one off the idle count, so a thread whose
 * write hangs is never given another: the next write gets a new thread.
 * Shared with the threads, which may outlive their VfdSysfs. */
#define WRITER_IDLE_USEC (5 * G_USEC_PER_SEC)

typedef struct {
  gatomicrefcount ref;
  GMutex lock;
  guint idle;         /* threads waiting for a write that nobody claimed yet */
  GAsyncQueue *jobs;  /* WriteJob *: one per claimed or newly started thread */
} WriterPool;

static WriterPool *
writer_pool_ref(WriterPool *pool)
{
  g_atomic_ref_count_inc(&pool->ref);
  return pool;
}

static void
writer_pool_unref(WriterPool *pool)
{
  if (!pool || !g_atomic_ref_count_dec(&pool->ref))
    return;
  g_mutex_clear(&pool->lock);
  g_async_queue_unref(pool->jobs);
  g_free(pool);
}

struct VfdSysfs {
  char *sys_root;
  char *dev_root;
  VfdSysfsWriteFunc writer;
  void *writer_data;
  guint timeout_ms;
  HungCounter *hung; /* timed-out writes still running */
  WriterPool *pool;
};

/* One write handed to a thread. Shared by the caller and the thread; the
 * last one to let go frees it. */
typedef struct {
  gatomicrefcount ref;
  GMutex lock;
  GCond cond;
  gboolean done;
  gboolean abandoned; /* the caller timed out and left */
  int result;
  char *path;
  char *value;
  VfdSysfsWriteFunc writer;
  void *writer_data;
  HungCounter *hung; /* decremented when an abandoned write finally returns */
} WriteJob;

static void
write_job_unref(WriteJob *job)
{
  if (!g_atomic_ref_count_dec(&job->ref))
    return;
  g_mutex_clear(&job->lock);
  g_cond_clear(&job->cond);
  g_free(job->path);
  g_free(job->value);
  hung_counter_unref(job->hung);
  g_free(job);
}

/* Runs @job's write, then counts this thread idle (before the caller
 * hears the result, so that its next write finds the thread). */
static void
run_write_job(WriterPool *pool, WriteJob *job)
{
  int r = job->writer(job->path, job->value, job->writer_data);

  g_mutex_lock(&pool->lock);
  pool->idle++;
  g_mutex_unlock(&pool->lock);
  g_mutex_lock(&job->lock);
  job->result = r;
  job->done = TRUE;
  if (job->abandoned)
    g_atomic_int_dec_and_test(&job->hung->count);
  g_cond_signal(&job->cond);
  g_mutex_unlock(&job->lock);
  write_job_unref(job);
}

/* A writer thread: runs the write it is owed, then waits as an idle thread
 * for the next one; leaves when none came within WRITER_IDLE_USEC and no
 * caller claimed it meanwhile. Holds a reference on @data, its pool. */
static gpointer
writer_thread(gpointer data)
{
  WriterPool *pool = data;
  WriteJob *job = g_async_queue_pop(pool->jobs);

  for (;;) {
    gboolean leave;

    run_write_job(pool, job);
    job = g_async_queue_timeout_pop(pool->jobs, WRITER_IDLE_USEC);
    if (job)
      continue;
    g_mutex_lock(&pool->lock);
    leave = pool->idle > 0;
    if (leave)
      pool->idle--;
    g_mutex_unlock(&pool->lock);
    if (leave)
      break;
    /* A caller took this thread off the idle count as the wait ended: its
     * write is in the queue or about to be. */
    job = g_async_queue_pop(pool->jobs);
  }
  writer_pool_unref(pool);
  return NULL;
}

/* Runs the writer on a writer thread (an idle one or a new one) and waits
 * up to the timeout. */
static int
write_with_timeout(VfdSysfs *sysfs, const char *path, const char *value)
{
  WriteJob *job = g_new0(WriteJob, 1);
  g_autoptr(GError) error = NULL;
  GThread *thread;
  gint64 deadline = g_get_monotonic_time() + (gint64) sysfs->timeout_ms * G_TIME_SPAN_MILLISECOND;
  gboolean claimed;
  int r;

  g_atomic_ref_count_init(&job->ref);
  g_mutex_init(&job->lock);
  g_cond_init(&job->cond);
  job->path = g_strdup(path);
  job->value = g_strdup(value);
  job->writer = sysfs->writer;
  job->writer_data = sysfs->writer_data;
  job->hung = hung_counter_ref(sysfs->hung);

  /* An idle thread if there is one, else a new one (detached: it may
   * never come back); then the write, which one of the owed threads runs. */
  g_mutex_lock(&sysfs->pool->lock);
  claimed = sysfs->pool->idle > 0;
  if (claimed)
    sysfs->pool->idle--;
  g_mutex_unlock(&sysfs->pool->lock);
  if (!claimed) {
    thread = g_thread_try_new("vfiod-sysfs", writer_thread, writer_pool_ref(sysfs->pool), &error);
    if (!thread) {
      writer_pool_unref(sysfs->pool);
      write_job_unref(job);
      return -EAGAIN;
    }
    g_thread_unref(thread);
  }
  g_atomic_ref_count_inc(&job->ref); /* the thread's */
  g_async_queue_push(sysfs->pool->jobs, job);

  g_mutex_lock(&job->lock);
  while (!job->done)
    if (!g_cond_wait_until(&job->cond, &job->lock, deadline))
      break;
  if (job->done) {
    r = job->result;
  } else {
    job->abandoned = TRUE;
    g_atomic_int_inc(&sysfs->hung->count);
    r = -ETIMEDOUT;
  }
  g_mutex_unlock(&job->lock);
  write_job_unref(job);
  return r;
}

/* The default writer: one write(2) of the whole value, as sysfs expects. */
static int
default_writer(const char *path, const char *value, void *user_data)
{
  size_t len = strlen(value);
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  ssize_t n = write(fd, value, len);
  int err = n < 0 ? -errno : ((size_t) n != len ? -EIO : 0);
  if (close(fd) < 0 && err == 0)
    err = -errno;
  return err;
}

VfdSysfs *
vfd_sysfs_new(const char *sys_root, const char *dev_root)
{
  VfdSysfs *s = g_new0(VfdSysfs, 1);
  s->sys_root = g_strdup(sys_root ? sys_root : "/sys");
  s->dev_root = g_strdup(dev_root ? dev_root : "/dev");
  s->writer = default_writer;
  s->hung = g_new0(HungCounter, 1);
  g_atomic_ref_count_init(&s->hung->ref);
  s->pool = g_new0(WriterPool, 1);
  g_atomic_ref_count_init(&s->pool->ref);
  g_mutex_init(&s->pool->lock);
  s->pool->jobs = g_async_queue_new();
  return s;
}

void
vfd_sysfs_free(VfdSysfs *sysfs)
{
  if (!sysfs)
    return;
  g_free(sysfs->sys_root);
  g_free(sysfs->dev_root);
  hung_counter_unref(sysfs->hung);
  writer_pool_unref(sysfs->pool); /* idle threads hold it until they leave */
  g_free(sysfs);
}

const char *
vfd_sysfs_root(const VfdSysfs *sysfs)
{
  return sysfs->sys_root;
}

const char *
vfd_sysfs_dev_root(const VfdSysfs *sysfs)
{
  return sysfs->dev_root;
}

void
vfd_sysfs_set_writer(VfdSysfs *sysfs, VfdSysfsWriteFunc fn, void *user_data)
{
  sysfs->writer = fn ? fn : default_writer;
  sysfs->writer_data = fn ? user_data : NULL;
}

char *
vfd_sysfs_device_path(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr)
{
  char b[VFD_BDF_STRLEN];

  vfd_bdf_format(bdf, b);
  return g_build_filename(sysfs->sys_root, "bus", "pci", "devices", b, attr, NULL);
}

bool
vfd_sysfs_device_exists(const VfdSysfs *sysfs, const VfdBdf *bdf)
{
  g_autofree char *p = vfd_sysfs_device_path(sysfs, bdf, NULL);
  struct stat st;

  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
read_file(const char *path, char **ret_value)
{
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;

  if (!g_file_get_contents(path, &contents, NULL, &error)) {
    if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return -ENOENT;
    if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_ACCES))
      return -EACCES;
    return -EIO;
  }
  g_strchomp(contents);
  *ret_value = g_steal_pointer(&contents);
  return 0;
}

int
vfd_sysfs_read_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, char **ret_value)
{
  g_autofree char *p = vfd_sysfs_device_path(sysfs, bdf, attr);
  g_autofree char *v = NULL;
  int r = read_file(p, &v);

  if (r < 0)
    return r;
  if (g_str_equal(attr, "driver_override") && g_str_equal(v, "(null)"))
    v[0] = '\0';
  *ret_value = g_steal_pointer(&v);
  return 0;
}

int
vfd_sysfs_read_hex_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, guint32 *ret)
{
  g_autofree char *v = NULL;
  char *end = NULL;
  int r = vfd_sysfs_read_attr(sysfs, bdf, attr, &v);

  const char *digits = v;

  if (r < 0)
    return r;
  /* strtoull would take leading blanks and a sign: accept only [0x]hex. */
  if (g_str_has_prefix(digits, "0x") || g_str_has_prefix(digits, "0X"))
    digits += 2;
  if (!g_ascii_isxdigit(*digits))
    return -EINVAL;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 16);
  if (errno != 0 || end == v || *end != '\0' || n > G_MAXUINT32)
    return -EINVAL;
  *ret = (guint32) n;
  return 0;
}

void
vfd_sysfs_set_write_timeout(VfdSysfs *sysfs, guint timeout_ms)
{
  sysfs->timeout_ms = timeout_ms;
}

guint
vfd_sysfs_hung_writes(const VfdSysfs *sysfs)
{
  return (guint) g_atomic_int_get(&sysfs->hung->count);
}

static int
do_write(const VfdSysfs *sysfs, const char *path, const char *value)
{
  vfd_failpoint(path);
  if (sysfs->timeout_ms == 0)
    return sysfs->writer(path, value, sysfs->writer_data);
  return write_with_timeout((VfdSysfs *) sysfs, path, value);
}

int
vfd_sysfs_write_attr(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *attr, const char *value)
{
  g_autofree char *p = vfd_sysfs_device_path(sysfs, bdf, attr);

  return do_write(sysfs, p, value);
}

/* Basename of the target of symlink @path. -ENOENT when absent. */
static int
link_basename(const char *path, char **ret)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = g_file_read_link(path, &error);

  if (!target)
    return g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? -ENOENT : -EIO;
  *ret = g_path_get_basename(target);
  return 0;
}

int
vfd_sysfs_device_driver(const VfdSysfs *sysfs, const VfdBdf *bdf, char **ret_driver)
{
  g_autofree char *p = NULL;
  char *name = NULL;
  int r;

  if (!vfd_sysfs_device_exists(sysfs, bdf))
    return -ENOENT;
  p = vfd_sysfs_device_path(sysfs, bdf, "driver");
  r = link_basename(p, &name);
  if (r == -ENOENT) {
    *ret_driver = NULL;
    return 0;
  }
  if (r < 0)
    return r;
  *ret_driver = name;
  return 0;
}

int
vfd_sysfs_unbind(const VfdSysfs *sysfs, const VfdBdf *bdf, const char *driver)
{
  char b[VFD_BDF_STRLEN];
  g_autofree char *p = NULL;

  if (!driver || !*driver || strchr(driver, '/') || g_str_equal(driver, "..") || g_str_equal(driver, "."))
    return -EINVAL;
  p = g_build_filename(sysfs->sys_root, "bus", "pci", "drivers", driver, "unbind", NULL);
  return do_write(sysfs, p, vfd_bdf_format(bdf, b));
}

int
vfd_sysfs_drivers_probe(const VfdSysfs *sysfs, const VfdBdf *bdf)
{
  char b[VFD_BDF_STRLEN];
  g_autofree char *p = g_build_filename(sysfs->sys_root, "bus", "pci", "drivers_probe", NULL);

  return do_write(sysfs, p, vfd_bdf_format(bdf, b));
}

int
vfd_sysfs_iommu_group(const VfdSysfs *sysfs, const VfdBdf *bdf, int *ret_group)
{
  g_autofree char *p = vfd_sysfs_device_path(sysfs, bdf, "iommu_group");
  g_autofree char *name = NULL;
  char *end = NULL;
  int r = link_basename(p, &name);

  if (r < 0)
    return r;
  errno = 0;
  long n = strtol(name, &end, 10);
  if (errno != 0 || end == name || *end != '\0' || n < 0 || n > G_MAXINT)
    return -EINVAL;
  *ret_group = (int) n;
  return 0;
}

int
vfd_sysfs_iommu_group_devices(const VfdSysfs *sysfs, int group, GArray **ret_bdfs)
{
  g_autofree char *num = g_strdup_printf("%d", group);
  g_autofree char *p = g_build_filename(sysfs->sys_root, "kernel", "iommu_groups", num, "devices", NULL);
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GArray) bdfs = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  const char *name;

  if (group < 0)
    return -EINVAL;
  dir = g_dir_open(p, 0, NULL);
  if (!dir)
    return -ENOENT;
  while ((name = g_dir_read_name(dir))) {
    VfdBdf bdf;
    if (vfd_bdf_parse(name, &bdf) < 0)
      continue; /* not a PCI device entry */
    g_array_append_val(bdfs, bdf);
  }
  g_array_sort(bdfs, vfd_bdf_compare);
  *ret_bdfs = g_steal_pointer(&bdfs);
  return 0;
}

bool
vfd_sysfs_vfio_group_exists(const VfdSysfs *sysfs, int group)
{
  g_autofree char *num = g_strdup_printf("%d", group);
  g_autofree char *p = g_build_filename(sysfs->dev_root, "vfio", num, NULL);

  return g_file_test(p, G_FILE_TEST_EXISTS);
}

int
vfd_sysfs_open_vfio_group(const VfdSysfs *sysfs, int group)
{
  char num[16];
  int dir, fd, saved;

  if (group < 0)
    return -EINVAL;
  g_snprintf(num, sizeof num, "%d", group);
  dir = open(sysfs->dev_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return -errno;
  fd = openat(dir, "vfio", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  saved = errno;
  close(dir);
  if (fd < 0)
    return saved == ENOTDIR ? -ELOOP : -saved;
  dir = fd;
  fd = openat(dir, num, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  saved = errno;
  close(dir);
  return fd < 0 ? -saved : fd;
}

bool
vfd_pci_bar_is_prefetch64(const VfdPciBar *bar)
{
  return bar->size > 0 && (bar->flags & VFD_IORESOURCE_MEM_64) && (bar->flags & VFD_IORESOURCE_PREFETCH);
}

int
vfd_pci_resource_parse(const char *text, VfdPciBar *ret_bars)
{
  VfdPciBar bars[VFD_PCI_NUM_BARS] = { { 0 } };
  g_auto(GStrv) lines = NULL;

  if (!text)
    return -EINVAL;
  lines = g_strsplit(text, "\n", VFD_PCI_NUM_BARS + 1);
  for (guint i = 0; i < VFD_PCI_NUM_BARS; i++) {
    unsigned long long start, end, flags;
    int used = -1;

    /* "0x... 0x... 0x...": %llx takes the 0x prefix; nothing may follow. */
    if (!lines[i] || strchr(lines[i], '-') ||
        sscanf(lines[i], " %llx %llx %llx %n", &start, &end, &flags, &used) != 3 || used < 0 ||
        lines[i][used] != '\0')
      return -EINVAL;
    if (end == 0)
      continue; /* unused (or the upper half of a 64-bit BAR) */
    if (end < start)
      return -EINVAL;
    bars[i].start = start;
    bars[i].size = end - start + 1;
    bars[i].flags = flags;
  }
  memcpy(ret_bars, bars, sizeof bars);
  return 0;
}

int
vfd_sysfs_read_bars(const VfdSysfs *sysfs, const VfdBdf *bdf, VfdPciBar *ret_bars)
{
  g_autofree char *text = NULL;
  int r = vfd_sysfs_read_attr(sysfs, bdf, "resource", &text);

  if (r < 0)
    return r;
  return vfd_pci_resource_parse(text, ret_bars);
}
