/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manager.h"
#include "path.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/vm_sockets.h>
#include <unistd.h>

#include "api-limits.h"
#include "api-server.h"
#include "caller.h"
#include "log-fields.h"
#include "error.h"
#include "failpoint.h"
#include "metrics.h"
#include "firewall.h"
#include "guest-cmdline.h"
#include "image.h"
#include "netpool.h"
#include "pool.h"
#include "qmp.h"
#include "tap.h"
#include "log-limit.h"
#include "ready-report.h"
#include "reconcile.h"
#include "report-conn.h"
#include "sandbox.h"
#include "variant.h"
#include "vfd-dbus.h"

typedef enum {
  SANDBOX_CREATING,
  SANDBOX_RUNNING,
  SANDBOX_STOPPING,
  SANDBOX_STOPPED,
  SANDBOX_FAILED, /* QEMU exited by itself with an error */
} SandboxState;

static const char *const sandbox_state_names[] = { "creating", "running", "stopping", "stopped", "failed" };

/* A sandbox. Reference-counted (issue 14, defect 3): the manager's table
 * holds one reference while the sandbox is known, and every operation
 * (Op) that works on it holds one until its completion has run on the main
 * loop, so a delete that finishes first cannot free it under a pending
 * stop step. References are taken and dropped on the main loop only. When
 * the table drops it (deleted, or vfiod stopping), sandbox_dispose() ends
 * what would act on it later (timers, watches, fds, its QEMU uid); the
 * memory goes with the last reference. */
typedef struct {
  int refs;
  gboolean disposed; /* dropped by the manager: operations still holding it do nothing more */
  VfdManager *manager;
  VfdConfig *config; /* a reference: the configuration when it was created or adopted (workers read this one) */
  char *id;
  char *dir;        /* <runtime>/sandboxes/<id>: root's, 0711 */
  char *qemu_dir;   /* <dir>/qemu: the QEMU uid's, 0700 (QMP socket, pidfile) */
  char *serial_log; /* <dir>/serial.log: root's, 0600; QEMU writes it through an fd */
  int serial_fd;    /* vfiod's own fd of it (read, cut back), -1: none */
  uid_t qemu_uid;   /* QEMU runs as (0: root) */
  gid_t qemu_gid;
  gboolean qemu_uid_held; /* qemu_uid is one of [qemu] uid_range, held in the manager's qemu_uids */
  guint memory_mib;
  guint vcpus;
  GArray *devices; /* VfdBdf, sorted */
  SandboxState state;
  gint64 pid;
  int exit_status; /* valid when STOPPED; -1 unknown */
  GSubprocess *proc; /* NULL when adopted after a restart */
  int pidfd;         /* adopted: watched for exit */
  guint pidfd_source;
  guint kill_timeout;
  guint stop_stage; /* 0: asked the guest; 1: asked QEMU to quit; 2: SIGKILL sent */
  GPtrArray *waiters; /* GDBusMethodInvocation of pending DeleteSandbox calls */
  gint64 created_us;  /* monotonic */
  gboolean ready;     /* guest-init printed VFIOD_READY */
  char *ready_report; /* its JSON */
  gint64 ready_ms;
  GFileMonitor *serial_monitor;
  guint serial_recheck; /* fallback timer next to the monitor */
  goffset serial_offset;
  GString *serial_pending;
  gboolean deleting; /* a delete asked for the stop */
  uid_t owner_uid;   /* the API client that created it (0: root); journaled; only it and root may delete it */
  /* network ([network] enabled) */
  gboolean has_net;
  VfdSubnet subnet;
  char tap[IFNAMSIZ];
  char mac[VFD_MAC_STRLEN];
  guint32 cid; /* 0: no vsock */
  gboolean tap_created;
  int numa_node; /* all passed devices on this node, else -1 */
  VfdAddressPlan plan; /* Q35: the guest's 64-bit PCI window and address width */
} Sandbox;

struct VfdManager {
  VfdConfig *config;
  VfdHost *host;
  char *socket_path;
  char *sandboxes_dir;
  GHashTable *sandboxes; /* id -> Sandbox */
  VfdApiServer *api; /* the API on socket_path (api-server.c) */
  GDBusAuthObserver *observer;
  VfdManager1 *skeleton;
  gid_t allowed_gid;
  gboolean have_allowed_gid;
  char *allowed_group; /* its name, for the authentication thread (which must not read m->config) */
  char *journal_corrupt; /* non-NULL: the journal could not be read; no device is touched */
  /* network: pools and firewall state, shared with worker threads */
  GMutex net_lock;
  VfdSubnetPool *pool;
  VfdCidPool *cids;
  VfdFirewallState *fw;
  gboolean have_vsock;   /* /dev/vhost-vsock exists: CIDs, vsock device, report listener */
  GSocketService *report_service;
  VfdReportConns *report_conns; /* guests' report connections (bounded) */
  uid_t qemu_uid;         /* [qemu] user's uid, 0: root (QEMU runs as root) */
  gid_t qemu_gid;         /* [qemu] user's group: every QEMU's gid */
  gid_t kvm_gid;          /* the kvm group (/dev/kvm) for QEMUs under KVM; (gid_t) -1: none */
  guint serial_cap_timer; /* cuts console logs back ([qemu] serial_log_max), writes [daemon] metrics_file */
  VfdMetrics metrics;     /* operation counters (main loop); gauges are counted when written */
  GHashTable *qemu_uids;  /* uids of [qemu] uid_range sandboxes hold (GUINT_TO_POINTER) */
  GHashTable *creating;   /* ids of sandboxes whose create is under way (main loop): live for reconcile */
  int host_cpu_read;      /* GetCapabilities: 0 not read yet, 1 host_cpu holds /proc/cpuinfo's, -1 unreadable */
  VfdHostCpu host_cpu;    /* address widths do not change while the host runs: read once */
  VfdConfig *pool_config; /* the start-up configuration, a reference: [pool] keys apply at start-up (read on any
                           * thread: pool lending, CDI, reconcile) */
};

/* Refuses device work while the journal is corrupt. */
static gboolean
check_journal_ok(VfdManager *m, GError **error)
{
  if (!m->journal_corrupt)
    return TRUE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT,
              "%s. Inspect the devices (vfioctl list), then run 'vfioctl reconcile --force' to start a new journal",
              m->journal_corrupt);
  return FALSE;
}

/* ---- sandboxes ---------------------------------------------------------- */

/* Ends everything that would act on @s later: its timers and watches, its
 * fds, its hold on a QEMU uid. Idempotent. */
static void
sandbox_dispose(Sandbox *s)
{
  if (s->disposed)
    return;
  s->disposed = TRUE;
  if (s->kill_timeout)
    g_source_remove(s->kill_timeout);
  s->kill_timeout = 0;
  if (s->pidfd_source)
    g_source_remove(s->pidfd_source);
  s->pidfd_source = 0;
  if (s->pidfd >= 0)
    close(s->pidfd);
  s->pidfd = -1;
  if (s->serial_monitor)
    g_file_monitor_cancel(s->serial_monitor);
  g_clear_object(&s->serial_monitor);
  if (s->serial_recheck)
    g_source_remove(s->serial_recheck);
  s->serial_recheck = 0;
  if (s->serial_fd >= 0)
    close(s->serial_fd);
  s->serial_fd = -1;
  if (s->qemu_uid_held)
    g_hash_table_remove(s->manager->qemu_uids, GUINT_TO_POINTER(s->qemu_uid));
  s->qemu_uid_held = FALSE;
}

static Sandbox *
sandbox_ref(Sandbox *s)
{
  s->refs++;
  return s;
}

static void
sandbox_unref(Sandbox *s)
{
  if (!s || --s->refs > 0)
    return;
  sandbox_dispose(s);
  g_clear_object(&s->proc);
  vfd_config_unref(s->config);
  g_free(s->ready_report);
  g_string_free(s->serial_pending, TRUE);
  g_free(s->id);
  g_free(s->dir);
  g_free(s->qemu_dir);
  g_free(s->serial_log);
  g_array_unref(s->devices);
  g_ptr_array_unref(s->waiters);
  g_free(s);
}

/* The manager's table lets go of @p (a Sandbox): nothing acts on it any
 * more; operations still holding it keep its memory until they finish. */
static void
sandbox_drop(gpointer p)
{
  sandbox_dispose(p);
  sandbox_unref(p);
}

static Sandbox *
sandbox_new(VfdManager *m, const char *id)
{
  Sandbox *s = g_new0(Sandbox, 1);

  s->refs = 1;
  s->manager = m;
  s->config = vfd_config_ref(m->config);
  s->id = g_strdup(id);
  s->dir = g_build_filename(m->sandboxes_dir, id, NULL);
  s->qemu_dir = g_build_filename(s->dir, "qemu", NULL);
  s->serial_log = g_build_filename(s->dir, "serial.log", NULL);
  s->serial_fd = -1;
  s->devices = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  s->pidfd = -1;
  s->exit_status = -1;
  s->waiters = g_ptr_array_new_with_free_func(g_object_unref);
  s->created_us = g_get_monotonic_time();
  s->serial_pending = g_string_new(NULL);
  s->numa_node = -1;
  return s;
}

/* Sets the state and tells subscribed clients. */
static void
sandbox_set_state(Sandbox *s, SandboxState state)
{
  s->state = state;
  /* A client that does not read would have the signal queued in vfiod's
   * memory, without bound: disconnect such clients first. */
  vfd_api_server_kick_slow(s->manager->api);
  if (s->manager->skeleton)
    vfd_manager1_emit_sandbox_state_changed(s->manager->skeleton, s->id, sandbox_state_names[state], s->ready);
}

/* Refusals a guest can cause at will (invalid reports, report
 * connections over the limits) are logged at most 5 per 10 s, all kinds
 * together, so that a hostile guest cannot fill the log. */
static VfdLogLimit guest_log_limit = { .burst = 5, .interval_us = 10 * G_USEC_PER_SEC };

static void guest_warning(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void
guest_warning(const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  guint suppressed = 0;
  va_list ap;

  if (!vfd_log_limit_allow(&guest_log_limit, g_get_monotonic_time(), &suppressed))
    return;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (suppressed)
    g_warning("%s (%u similar messages suppressed before)", msg, suppressed);
  else
    g_warning("%s", msg);
}

/* guest-init reported ready (@report: the text after "VFIOD_READY ", taken)
 * on @channel ("console", "vsock"). The guest is hostile: a report that
 * vfd_report_validate() refuses (too long, not UTF-8, not a JSON object,
 * nested too deep) is logged (rate-limited, with a short escaped preview)
 * and dropped, never stored; the sandbox stays not ready. */
static void
sandbox_mark_ready(Sandbox *s, char *report, const char *channel)
{
  g_autoptr(GError) error = NULL;

  if (s->ready) {
    g_free(report);
    return;
  }
  if (!vfd_report_validate(report, strlen(report), &error)) {
    g_autofree char *head = g_strndup(report, 40);
    g_autofree char *preview = g_strescape(head, NULL);
    guest_warning("sandbox %s: ignored the guest's ready report (%s): %s; it began \"%s\"%s", s->id, channel,
                  error->message, preview, strlen(report) > 40 ? "..." : "");
    g_free(report);
    return;
  }
  s->ready = TRUE;
  s->ready_report = report;
  s->ready_ms = (g_get_monotonic_time() - s->created_us) / 1000;
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: guest ready after %" G_GINT64_FORMAT " ms (%s)", s->id,
                 s->ready_ms, channel);
  if (s->serial_monitor)
    g_file_monitor_cancel(s->serial_monitor);
  if (s->serial_recheck) {
    g_source_remove(s->serial_recheck);
    s->serial_recheck = 0;
  }
  sandbox_set_state(s, s->state);
}

/* Reads what QEMU appended to the serial log since last time and looks
 * for guest-init's ready line. */
static void
sandbox_check_serial(Sandbox *s)
{
  char buf[16384];
  gssize n;

  /* Through vfiod's own fd, opened when vfiod created the file: never the
   * path again (finding 5 of the audit: a link to /dev/zero spun vfiod). */
  if (s->ready || s->serial_fd < 0)
    return;
  while ((n = pread(s->serial_fd, buf, sizeof buf, s->serial_offset)) > 0) {
    g_autofree char *report = NULL;
    s->serial_offset += n;
    /* A report can be refused (sandbox_mark_ready): then the lines after
     * it, already read, are scanned too. */
    if (vfd_serial_scan(s->serial_pending, buf, (gsize) n, &report)) {
      do
        sandbox_mark_ready(s, g_steal_pointer(&report), "console");
      while (!s->ready && vfd_serial_scan(s->serial_pending, "", 0, &report));
      if (s->ready)
        return;
    }
  }
}

static void
on_serial_changed(GFileMonitor *monitor, GFile *file, GFile *other, GFileMonitorEvent event, gpointer data)
{
  sandbox_check_serial(data);
}

static gboolean
on_serial_recheck(gpointer data)
{
  Sandbox *s = data;

  sandbox_check_serial(s);
  if (s->ready || s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED) {
    s->serial_recheck = 0;
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* Cuts a console log back to nothing once it is larger than @max bytes (a
 * guest can write without end, and the runtime dir is RAM). QEMU writes
 * with O_APPEND, so it goes on at the new end. */
static void
sandbox_cap_serial(Sandbox *s, guint64 max)
{
  struct stat st;
  char note[128];
  int len;

  if (s->serial_fd < 0 || fstat(s->serial_fd, &st) < 0 || (guint64) st.st_size <= max)
    return;
  if (!s->ready)
    sandbox_check_serial(s); /* do not miss the ready line */
  if (ftruncate(s->serial_fd, 0) < 0) {
    g_warning("sandbox %s: cannot cut back its console log: %s", s->id, g_strerror(errno));
    return;
  }
  s->serial_offset = 0;
  len = g_snprintf(note, sizeof note, "[vfiod: console log cut back after %" G_GUINT64_FORMAT " bytes]\n",
                   (guint64) st.st_size);
  if (write(s->serial_fd, note, (size_t) len) == len)
    s->serial_offset = len;
  g_message("sandbox %s: console log reached %" G_GUINT64_FORMAT " bytes (max %" G_GUINT64_FORMAT "): cut back",
            s->id, (guint64) st.st_size, max);
}

/* Writes [daemon] metrics_file (when set): the counters, and the devices
 * and sandboxes counted now. A failure is logged, at most once per
 * distinct message. */
static void
write_metrics(VfdManager *m)
{
  static char *last_error;
  VfdMetrics now = m->metrics;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  GHashTableIter it;
  Sandbox *s;
  GPtrArray *devs;

  if (!m->config->metrics_file || !*m->config->metrics_file)
    return;
  vfd_host_lock_journal(m->host);
  devs = vfd_journal_devices(vfd_host_journal(m->host));
  for (guint i = 0; i < devs->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(devs, i);
    if (d->state <= VFD_DEVICE_STATE_STUCK)
      now.devices[d->state]++;
  }
  vfd_host_unlock_journal(m->host);
  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    now.sandboxes[s->state]++;
  text = vfd_metrics_format(&now);
  if (!vfd_metrics_write(m->config->metrics_file, text, &error) && g_strcmp0(last_error, error->message) != 0) {
    g_warning("[daemon] metrics_file: %s", error->message);
    g_free(last_error);
    last_error = g_strdup(error->message);
  }
}

static gboolean
on_serial_cap_timer(gpointer data)
{
  VfdManager *m = data;
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    sandbox_cap_serial(s, m->config->qemu_serial_log_max);
  write_metrics(m);
  return G_SOURCE_CONTINUE;
}

/* Opens the console log of @s in its directory, never following a link:
 * created (@create, O_EXCL) or existing (an adopted sandbox). Keeps vfiod's
 * fd (read/write, append) in s->serial_fd. */
static gboolean
sandbox_open_serial(Sandbox *s, gboolean create, GError **error)
{
  int dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int fd = -1;
  struct stat st;

  if (dirfd >= 0) {
    fd = openat(dirfd, "serial.log",
                O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (create ? O_CREAT | O_EXCL : 0),
                0600);
    close(dirfd);
  }
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
    int e = fd < 0 ? errno : EINVAL;
    if (fd >= 0)
      close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open %s: %s", s->serial_log,
                e == EINVAL ? "not vfiod's regular file" : g_strerror(e));
    return FALSE;
  }
  if (s->serial_fd >= 0)
    close(s->serial_fd);
  s->serial_fd = fd;
  return TRUE;
}

/* A second fd of the console log for QEMU: write-only, append (what
 * QEMU's fdset requires of `-chardev file,append=on`). -1 with errno. */
static int
open_serial_for_qemu(Sandbox *s)
{
  int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int fd;

  if (dfd < 0)
    return -1;
  fd = openat(dfd, "serial.log", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  close(dfd);
  return fd;
}

/* Check, subscribe, check again: the line may come before the monitor. A
 * slow re-check backs the monitor up (a log file created after the watch
 * was set up has been seen to go unnoticed). */
static void
sandbox_watch_serial(Sandbox *s)
{
  g_autoptr(GFile) file = g_file_new_for_path(s->serial_log);

  sandbox_check_serial(s);
  if (s->ready)
    return;
  s->serial_monitor = g_file_monitor_file(file, G_FILE_MONITOR_NONE, NULL, NULL);
  if (s->serial_monitor) {
    g_file_monitor_set_rate_limit(s->serial_monitor, 100);
    g_signal_connect(s->serial_monitor, "changed", G_CALLBACK(on_serial_changed), s);
  }
  s->serial_recheck = g_timeout_add_seconds(2, on_serial_recheck, s);
  sandbox_check_serial(s);
}

static GStrv
bdf_strv(GArray *bdfs)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  char buf[VFD_BDF_STRLEN];

  for (guint i = 0; i < bdfs->len; i++)
    g_strv_builder_add(b, vfd_bdf_format(&g_array_index(bdfs, VfdBdf, i), buf));
  return g_strv_builder_end(b);
}

/* Releases every IOMMU group the sandbox holds; logs what it could not. */
static gboolean
sandbox_release_devices(Sandbox *s, GError **error)
{
  VfdHost *host = s->manager->host;
  gboolean ok = TRUE;

  for (guint i = 0; i < s->devices->len; i++) {
    const VfdBdf *bdf = &g_array_index(s->devices, VfdBdf, i);
    g_autoptr(GError) local = NULL;
    char name[VFD_BDF_STRLEN];
    gboolean journaled;

    vfd_host_lock_journal(host);
    journaled = vfd_journal_lookup(vfd_host_journal(host), bdf) != NULL;
    vfd_host_unlock_journal(host);
    if (!journaled)
      continue; /* released together with an earlier member of its group */
    g_autoptr(GPtrArray) notes = NULL;
    gboolean released = vfd_host_release_group_full(s->manager->host, bdf, s->id, NULL, &notes, &local);

    for (guint k = 0; notes && k < notes->len; k++)
      vfd_log_device(G_LOG_LEVEL_WARNING, s->id, s->id, vfd_bdf_format(bdf, name), "sandbox %s: %s", s->id,
                     (const char *) g_ptr_array_index(notes, k));
    if (!released) {
      vfd_log_device(G_LOG_LEVEL_WARNING, s->id, s->id, vfd_bdf_format(bdf, name), "sandbox %s: cannot release %s: %s", s->id,
                     vfd_bdf_format(bdf, name), local->message);
      if (ok && error)
        g_propagate_error(error, g_steal_pointer(&local));
      ok = FALSE;
    }
  }
  return ok;
}

/* Writes the sandbox's record (devices, network, QEMU pid and start time,
 * owner, QEMU uid) and commits the journal durably. FALSE with @error when
 * the commit fails: a create must not go on without its record. */
static gboolean
journal_sandbox(VfdManager *m, Sandbox *s, GError **error)
{
  g_auto(GStrv) devs = bdf_strv(s->devices);
  guint64 start = 0;
  g_autofree char *subnet = s->has_net ? vfd_subnet_to_string(&s->subnet) : NULL;
  VfdJournalSandbox js = {
    .id = s->id, .pid = s->pid, .devices = devs, .dir = s->dir,
    .subnet = subnet, .tap = s->has_net ? s->tap : NULL, .mac = s->has_net ? s->mac : NULL, .cid = s->cid,
  };
  gboolean ok;

  if (s->pid > 0)
    vfd_proc_start_time(s->pid, &start);
  js.start_time = start;
  js.qemu_uid = s->qemu_uid;
  js.owner_uid = s->owner_uid;
  js.memory_mib = s->memory_mib;
  js.vcpus = s->vcpus;
  js.numa_node = s->numa_node;
  vfd_host_lock_journal(m->host);
  vfd_journal_put_sandbox(vfd_host_journal(m->host), &js);
  ok = vfd_journal_commit(vfd_host_journal(m->host), error);
  vfd_host_unlock_journal(m->host);
  if (!ok)
    g_prefix_error(error, "sandbox %s: ", s->id);
  return ok;
}

/* Removes everything in the directory open as @dfd (on device @dev), at
 * most @depth levels down: entries by name relative to their directory's
 * fd (unlinkat), subdirectories opened with O_NOFOLLOW and checked to be
 * directories on the same file system, so that a link or a mount a QEMU
 * user put in its directory never leads vfiod elsewhere. */
static void
rm_rf_children(int dfd, dev_t dev, guint depth)
{
  int iter_fd = dup(dfd);
  DIR *d = iter_fd >= 0 ? fdopendir(iter_fd) : NULL;
  struct dirent *de;

  if (!d) {
    if (iter_fd >= 0)
      close(iter_fd);
    return;
  }
  while ((de = readdir(d))) {
    struct stat st;
    if (g_str_equal(de->d_name, ".") || g_str_equal(de->d_name, ".."))
      continue;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      int cfd;
      if (st.st_dev != dev || depth == 0)
        continue;
      cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0)
        continue;
      if (fstat(cfd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == dev)
        rm_rf_children(cfd, dev, depth - 1);
      close(cfd);
      (void) unlinkat(dfd, de->d_name, AT_REMOVEDIR);
    } else {
      (void) unlinkat(dfd, de->d_name, 0);
    }
  }
  closedir(d);
}

/* Removes a sandbox's directory @dir (its parent is vfiod's own) and what
 * it holds; see rm_rf_children(). Nothing when @dir is not a directory. */
static void
remove_dir_tree(const char *dir)
{
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;

  if (dfd < 0)
    return;
  if (fstat(dfd, &st) == 0)
    rm_rf_children(dfd, st.st_dev, 8);
  close(dfd);
  (void) rmdir(dir);
}

/* ---- device work off the main loop --------------------------------------
 * Binds and releases can block in the kernel (up to the write timeout, or
 * forever for the parked write itself); they run on worker threads so that
 * the API keeps answering. `work` runs on a worker, `done` back on the main
 * loop with the error (NULL on success). */
typedef struct Op Op;
typedef gboolean (*OpWork)(Op *op, GError **error);
typedef void (*OpDone)(Op *op, GError *error);

struct Op {
  VfdManager *m;
  VfdConfig *config; /* a reference: the configuration when the op was made; workers read this one */
  GDBusMethodInvocation *inv; /* may be NULL */
  OpWork work;
  OpDone done;
  VfdBdf bdf;
  char *owner;
  uid_t uid;       /* bind, release: the API client's uid (0: root) */
  GArray *members; /* result: VfdBdf */
  int group;
  Sandbox *sandbox; /* a reference (op_finished drops it), or NULL */
  char *kernel;
  char *initrd;
  gboolean kernel_from_client; /* create: named by the client (else [qemu] kernel/initrd) */
  gboolean initrd_from_client;
  VfdCaller caller;  /* create: the client, whose rights open the files it names */
  int kernel_fd;     /* create: opened in stage 0, -1 when not (yet) or handed to QEMU */
  int initrd_fd;
  int disk_fd;
  int layer_fd;      /* create: [qemu] driver_layer, read-only; -1 when none */
  GArray *requested; /* VfdBdf */
  VfdBindFlags flags;
  gint64 started_us; /* monotonic, when the op was made: for the metrics */
  guint gpus;   /* create: pick this many units */
  char *disk;   /* create: root disk image */
  char *cmd;    /* create: workload */
  GStrv args;
  GVariant *env; /* create: a{ss} for the workload */
  GHashTable *live; /* reconcile: ids of running sandboxes */
  GPtrArray *report; /* reconcile: VfdReconcileItem */
  gboolean force;
};

static void
op_free(gpointer p)
{
  Op *op = p;

  vfd_config_unref(op->config);
  g_clear_object(&op->inv);
  g_free(op->owner);
  g_clear_pointer(&op->members, g_array_unref);
  g_clear_pointer(&op->requested, g_array_unref);
  g_free(op->kernel);
  g_free(op->initrd);
  vfd_caller_clear(&op->caller);
  if (op->kernel_fd >= 0)
    close(op->kernel_fd);
  if (op->initrd_fd >= 0)
    close(op->initrd_fd);
  if (op->disk_fd >= 0)
    close(op->disk_fd);
  if (op->layer_fd >= 0)
    close(op->layer_fd);
  g_clear_pointer(&op->live, g_hash_table_unref);
  g_free(op->disk);
  g_free(op->cmd);
  g_strfreev(op->args);
  g_clear_pointer(&op->env, g_variant_unref);
  g_clear_pointer(&op->report, g_ptr_array_unref);
  g_free(op);
}

static Op *
op_new(VfdManager *m, GDBusMethodInvocation *inv, OpWork work, OpDone done)
{
  Op *op = g_new0(Op, 1);

  op->m = m;
  op->config = vfd_config_ref(m->config);
  /* Takes the handler's reference: completing the call consumes it. */
  op->inv = inv;
  op->work = work;
  op->done = done;
  op->group = -1;
  op->started_us = g_get_monotonic_time();
  op->kernel_fd = op->initrd_fd = op->disk_fd = op->layer_fd = -1;
  return op;
}

static void
op_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  Op *op = data;
  GError *error = NULL;

  if (op->work(op, &error))
    g_task_return_boolean(task, TRUE);
  else
    g_task_return_error(task, error);
}

static void
op_finished(GObject *source, GAsyncResult *res, gpointer data)
{
  Op *op = g_task_get_task_data(G_TASK(res));
  g_autoptr(GError) error = NULL;

  g_task_propagate_boolean(G_TASK(res), &error);
  op->done(op, error);
  /* The operation's reference, dropped here on the main loop. */
  g_clear_pointer(&op->sandbox, sandbox_unref);
}

static void
op_run(Op *op)
{
  g_autoptr(GTask) task = g_task_new(NULL, NULL, op_finished, NULL);

  g_task_set_task_data(task, op, op_free);
  g_task_run_in_thread(task, op_thread);
}

static void
return_error(GDBusMethodInvocation *inv, GError *error);

static void sandbox_signal(Sandbox *s, int sig);
static gboolean on_kill_timeout(gpointer data);

static char *
qmp_path(Sandbox *s)
{
  return g_build_filename(s->qemu_dir, "qmp.sock", NULL);
}

/* Worker: ask the guest to power off. Fails when QMP cannot be reached. */
static gboolean
powerdown_work(Op *op, GError **error)
{
  g_autofree char *path = qmp_path(op->sandbox);
  g_autoptr(GError) key_error = NULL;

  if (!vfd_qmp_execute(path, op->sandbox->pid, "system_powerdown", 2000, error))
    return FALSE;
  /* guest-init powers off on Ctrl-Alt-Del too, which needs no ACPI button
   * driver in the guest; a machine without a keyboard just refuses it. */
  vfd_qmp_execute(path, op->sandbox->pid,
                  "{\"execute\":\"send-key\",\"arguments\":{\"keys\":[{\"type\":\"qcode\",\"data\":\"ctrl\"},"
                  "{\"type\":\"qcode\",\"data\":\"alt\"},{\"type\":\"qcode\",\"data\":\"delete\"}]}}",
                  2000, &key_error);
  return TRUE;
}

static gboolean
quit_work(Op *op, GError **error)
{
  g_autofree char *path = qmp_path(op->sandbox);

  return vfd_qmp_execute(path, op->sandbox->pid, "quit", 2000, error);
}

/* Main loop: the QMP request is done; if QMP failed, fall back to a signal
 * now, else wait for the next step. */
static void
stop_step_done(Op *op, GError *error)
{
  Sandbox *s = op->sandbox;
  VfdManager *m = s->manager;

  if (s->disposed || s->state != SANDBOX_STOPPING || s->exit_status != -1 || s->kill_timeout)
    return; /* already gone, or a later step is armed */
  if (error)
    g_message("sandbox %s: QMP: %s; using signals", s->id, error->message);
  if (s->stop_stage == 0) {
    if (error)
      sandbox_signal(s, SIGTERM); /* QEMU exits cleanly on SIGTERM */
    s->kill_timeout = g_timeout_add_seconds(m->config->qemu_stop_timeout_s, on_kill_timeout, s);
  } else {
    if (error)
      sandbox_signal(s, SIGTERM);
    s->kill_timeout = g_timeout_add_seconds(5, on_kill_timeout, s);
  }
}

static void
stop_begin(Sandbox *s)
{
  Op *op = op_new(s->manager, NULL, powerdown_work, stop_step_done);

  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: stopping (asking the guest to power off)", s->id);
  s->stop_stage = 0;
  op->sandbox = sandbox_ref(s);
  op_run(op);
}

static void
stop_escalate(Sandbox *s)
{
  if (s->stop_stage == 0) {
    Op *op = op_new(s->manager, NULL, quit_work, stop_step_done);
    g_message("sandbox %s: the guest did not power off within %u s; asking QEMU to quit", s->id,
              s->manager->config->qemu_stop_timeout_s);
    s->stop_stage = 1;
    op->sandbox = sandbox_ref(s);
    op_run(op);
  } else {
    g_warning("sandbox %s: QEMU did not quit; sending SIGKILL", s->id);
    s->stop_stage = 2;
    sandbox_signal(s, SIGKILL);
  }
}

/* Network of a sandbox, part 1 (worker): subnet, CID, names. Nothing on
 * the host changes yet; the caller journals the result first. */
static gboolean
net_allocate(VfdManager *m, Sandbox *s, GError **error)
{
  gboolean ok;

  if (!s->config->net_enabled)
    return TRUE;
  if (vfd_tap_name_for(s->id, s->tap) < 0 || vfd_guest_mac_for(s->id, s->mac) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot derive network names for %s", s->id);
    return FALSE;
  }
  g_mutex_lock(&m->net_lock);
  ok = vfd_subnet_pool_alloc(m->pool, &s->subnet, error);
  if (ok && m->have_vsock && !vfd_cid_pool_alloc(m->cids, &s->cid, error)) {
    vfd_subnet_pool_release(m->pool, &s->subnet);
    ok = FALSE;
  }
  g_mutex_unlock(&m->net_lock);
  s->has_net = ok;
  return ok;
}

/* Part 2 (worker): the TAP with the host address, and the firewall. */
static gboolean
net_setup(VfdManager *m, Sandbox *s, GError **error)
{
  gboolean ok;

  if (!s->has_net)
    return TRUE;
  if (!vfd_tap_create(s->tap, s->qemu_uid, (gid_t) -1, &s->subnet, s->config->proc_root, error))
    return FALSE;
  s->tap_created = TRUE;
  g_mutex_lock(&m->net_lock);
  ok = vfd_firewall_state_add(m->fw, s->tap, &s->subnet, FALSE, error) && vfd_firewall_apply(m->fw, error);
  g_mutex_unlock(&m->net_lock);
  return ok;
}

/* Undoes net_allocate/net_setup, whatever of it was done (worker). */
static void
net_teardown(VfdManager *m, Sandbox *s)
{
  g_autoptr(GError) error = NULL;
  int r;

  if (!s->has_net)
    return;
  g_mutex_lock(&m->net_lock);
  if (vfd_firewall_state_remove(m->fw, s->tap) && !vfd_firewall_apply(m->fw, &error))
    g_warning("sandbox %s: firewall: %s", s->id, error->message);
  g_mutex_unlock(&m->net_lock);
  r = vfd_tap_delete(s->tap);
  if (r < 0 && r != -ENODEV && r != -ENOENT)
    g_warning("sandbox %s: cannot delete TAP %s: %s", s->id, s->tap, g_strerror(-r));
  g_mutex_lock(&m->net_lock);
  vfd_subnet_pool_release(m->pool, &s->subnet);
  if (s->cid)
    vfd_cid_pool_release(m->cids, s->cid);
  g_mutex_unlock(&m->net_lock);
  s->has_net = FALSE;
  s->tap_created = FALSE;
}

/* QEMU arguments and kernel command line words for the sandbox's network
 * and vsock device. The device files are opened here, as root, and handed
 * to QEMU as fds 3, 4, ... (appended to @fds): QEMU, possibly unprivileged,
 * needs no access to /dev/net/tun, /dev/vhost-net or /dev/vhost-vsock. */
static gboolean
net_qemu_args(VfdManager *m, Sandbox *s, gboolean microvm, GStrvBuilder *args, GStrvBuilder *append, GArray *fds,
              GError **error)
{
  char host[VFD_IPV4_STRLEN], guest[VFD_IPV4_STRLEN];

  if (s->has_net) {
    g_autofree char *netdev = NULL;
    g_autofree char *nic = g_strdup_printf("%s,netdev=net0,mac=%s", microvm ? "virtio-net-device" : "virtio-net-pci",
                                           s->mac);
    g_autofree char *ip = g_strdup_printf(VFIOD_KEY_IP "=%s/%u", vfd_ipv4_format(s->subnet.guest, guest), s->subnet.prefix);
    g_autofree char *gw = g_strdup_printf(VFIOD_KEY_GW "=%s", vfd_ipv4_format(s->subnet.host, host));
    g_autofree char *mac = g_strdup_printf(VFIOD_KEY_MAC "=%s", s->mac);
    int tap_fd = vfd_tap_open(s->tap);
    int vhost_fd = g_file_test("/dev/vhost-net", G_FILE_TEST_EXISTS) ? open("/dev/vhost-net", O_RDWR | O_CLOEXEC)
                                                                       : -1;

    if (tap_fd < 0) {
      if (vhost_fd >= 0)
        close(vhost_fd);
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open TAP %s: %s", s->tap, g_strerror(-tap_fd));
      return FALSE;
    }
    g_array_append_val(fds, tap_fd);
    if (vhost_fd >= 0) {
      netdev = g_strdup_printf("tap,id=net0,fd=%u,vhost=on,vhostfd=%u", 3 + fds->len - 1, 3 + fds->len);
      g_array_append_val(fds, vhost_fd);
    } else {
      netdev = g_strdup_printf("tap,id=net0,fd=%u", 3 + fds->len - 1);
    }
    g_strv_builder_add_many(args, "-netdev", netdev, "-device", nic, NULL);
    g_strv_builder_add_many(append, ip, gw, mac, NULL);
    if (*s->config->net_dns) {
      g_autofree char *dns = g_strdup_printf(VFIOD_KEY_DNS "=%s", s->config->net_dns);
      g_strv_builder_add(append, dns);
    }
  }
  if (s->cid) {
    int vsock_fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);
    g_autofree char *vsock = NULL;
    g_autofree char *report = g_strdup_printf(VFIOD_KEY_REPORT "=vsock:%u", s->config->report_port);

    if (vsock_fd < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open /dev/vhost-vsock: %s", g_strerror(e));
      return FALSE;
    }
    g_array_append_val(fds, vsock_fd);
    vsock = g_strdup_printf("%s,guest-cid=%u,vhostfd=%u", microvm ? "vhost-vsock-device" : "vhost-vsock-pci", s->cid,
                            3 + fds->len - 1);
    g_strv_builder_add_many(args, "-device", vsock, NULL);
    g_strv_builder_add(append, report);
  }
  return TRUE;
}

static gboolean
release_sandbox_work(Op *op, GError **error)
{
  net_teardown(op->m, op->sandbox);
  return sandbox_release_devices(op->sandbox, error);
}

/* Answers the pending deletes of @s; on success the sandbox is gone. */
static void
finish_deletes(Sandbox *s, GError *error)
{
  VfdManager *m = s->manager;
  g_autoptr(GPtrArray) waiters = g_steal_pointer(&s->waiters);

  s->waiters = g_ptr_array_new_with_free_func(g_object_unref);
  /* The directory goes before the answer: a client that sees the delete
   * done finds nothing left. */
  if (!error && waiters->len > 0)
    remove_dir_tree(s->dir);
  for (guint i = 0; i < waiters->len; i++) {
    GDBusMethodInvocation *inv = g_object_ref(g_ptr_array_index(waiters, i));
    if (!error)
      vfd_manager1_complete_delete_sandbox(m->skeleton, inv);
    else
      return_error(inv, error);
  }
  if (!error && waiters->len > 0) {
    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: deleted", s->id);
    g_hash_table_remove(m->sandboxes, s->id);
  }
}

static void
exit_release_done(Op *op, GError *error)
{
  Sandbox *s = op->sandbox;
  VfdManager *m = s->manager;

  /* Stopped on request, or it powered off cleanly: stopped; else failed. */
  sandbox_set_state(s, s->deleting || s->exit_status == 0 ? SANDBOX_STOPPED : SANDBOX_FAILED);
  vfd_host_lock_journal(m->host);
  vfd_journal_remove_sandbox(vfd_host_journal(m->host), s->id);
  {
    g_autoptr(GError) jerror = NULL;

    /* The devices are back; a record left on disk is dropped at the next
     * commit, or restored as gone by the next start (nothing runs). */
    if (!vfd_journal_commit(vfd_host_journal(m->host), &jerror))
      vfd_log_fields(G_LOG_LEVEL_WARNING, s->id, NULL, NULL,
                     "sandbox %s: its record stays in the journal on disk until the next commit: %s", s->id,
                     jerror->message);
  }
  vfd_host_unlock_journal(m->host);
  if (!error) {
    g_auto(GStrv) devs = bdf_strv(s->devices);

    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, s->id, (const char *const *) devs, "sandbox %s: devices released", s->id);
  }
  finish_deletes(s, error);
}

/* QEMU is gone: give the devices back (on a worker), drop the journal
 * record, answer pending deletes. */
static void
sandbox_exited(Sandbox *s, int exit_status)
{
  Op *op;

  if (s->kill_timeout) {
    g_source_remove(s->kill_timeout);
    s->kill_timeout = 0;
  }
  if (s->pidfd_source) {
    g_source_remove(s->pidfd_source);
    s->pidfd_source = 0;
  }
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: QEMU (pid %" G_GINT64_FORMAT ") exited with status %d", s->id,
                 s->pid, exit_status);
  sandbox_set_state(s, SANDBOX_STOPPING);
  s->exit_status = exit_status;
  op = op_new(s->manager, NULL, release_sandbox_work, exit_release_done);
  op->sandbox = sandbox_ref(s);
  op_run(op);
}

static void
on_qemu_wait(GObject *source, GAsyncResult *res, gpointer data)
{
  VfdManager *m = data;
  GSubprocess *proc = G_SUBPROCESS(source);
  GHashTableIter it;
  Sandbox *s;
  int status;

  g_subprocess_wait_finish(proc, res, NULL);
  status = g_subprocess_get_if_exited(proc) ? g_subprocess_get_exit_status(proc)
                                             : 128 + g_subprocess_get_term_sig(proc);
  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    if (s->proc == proc) {
      sandbox_exited(s, status);
      return;
    }
}

static gboolean
on_pidfd_ready(gint fd, GIOCondition cond, gpointer data)
{
  Sandbox *s = data;

  s->pidfd_source = 0;
  sandbox_exited(s, -1);
  return G_SOURCE_REMOVE;
}

static void
sandbox_signal(Sandbox *s, int sig)
{
  if (s->proc)
    g_subprocess_send_signal(s->proc, sig);
  else if (s->pidfd >= 0)
    syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0);
}

static void stop_escalate(Sandbox *s);

/* Graceful stop, step by step: the guest is asked to power off (ACPI power
 * button and Ctrl-Alt-Del, which guest-init turns into a clean power-off);
 * after [qemu] stop_timeout QEMU is asked to quit over QMP; 5 s later it is
 * killed. Each step runs only if QEMU is still there. */
static gboolean
on_kill_timeout(gpointer data)
{
  Sandbox *s = data;

  s->kill_timeout = 0;
  stop_escalate(s);
  return G_SOURCE_REMOVE;
}

/* ---- D-Bus helpers ------------------------------------------------------ */

static void
return_error(GDBusMethodInvocation *inv, GError *error)
{
  /* A client can make calls fail at will: at most 20 lines per 10 s. */
  static VfdLogLimit limit = { .burst = 20, .interval_us = 10 * G_USEC_PER_SEC };

  /* One error domain at the API: org.vfiod.Error.* (a journal commit's
   * GFileError or QEMU's GSpawnError would reach the client as
   * org.gtk.GDBus.UnmappedGError.*). */
  g_autoptr(GError) api_error = vfd_error_for_api(error);

  vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "%s failed: %s", g_dbus_method_invocation_get_method_name(inv),
                  error->message);
  g_dbus_method_invocation_return_gerror(inv, api_error);
}

/* The caller's uid (SO_PEERCRED of its connection) into *@ret_uid; FALSE
 * with the error returned to @inv when it cannot be read. */
static gboolean
caller_uid(GDBusMethodInvocation *inv, uid_t *ret_uid)
{
  g_autoptr(GError) error = NULL;
  VfdCaller caller;

  if (!vfd_caller_from_invocation(inv, &caller, &error)) {
    return_error(inv, error);
    return FALSE;
  }
  *ret_uid = caller.uid;
  vfd_caller_clear(&caller);
  return TRUE;
}

/* Refuses a root-only option (@what, e.g. "bind --force") to a member:
 * FALSE with PermissionDenied returned to @inv. */
static gboolean
check_root_only(GDBusMethodInvocation *inv, uid_t uid, const char *what)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *who = NULL;

  if (uid == 0)
    return TRUE;
  who = vfd_uid_describe(uid);
  g_set_error(&error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED, "%s is for root only; %s may not", what, who);
  return_error(inv, error);
  return FALSE;
}

static gboolean
parse_bdf_arg(const char *s, VfdBdf *ret, GError **error)
{
  if (vfd_bdf_parse(s, ret) < 0) {
    g_autofree char *shown = g_strescape(s ? s : "", NULL);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "invalid BDF '%.64s': expected DDDD:BB:DD.F (hex domain:bus:device.function, e.g. 0000:01:00.0)",
                shown);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_owner_name(const char *owner, GError **error)
{
  size_t len = strlen(owner);

  if (len == 0 || len > 64) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "an owner name has 1 to 64 characters");
    return FALSE;
  }
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isalnum(owner[i]) && !strchr("._-@", owner[i])) {
      g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                          "an owner name may hold only letters, digits and . _ - @");
      return FALSE;
    }
  if (g_str_has_prefix(owner, "sb-")) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "owner names starting with 'sb-' are reserved for sandboxes");
    return FALSE;
  }
  return TRUE;
}

static GVariant *
device_to_variant(VfdManager *m, const VfdPciDevice *d)
{
  GVariantDict dict;
  char b[VFD_BDF_STRLEN];
  VfdJournalDevice *jd = vfd_journal_lookup(vfd_host_journal(m->host), &d->bdf);
  g_autofree char *vendor = g_strdup_printf("%04x", d->vendor);
  g_autofree char *device = g_strdup_printf("%04x", d->device);
  g_autofree char *cls = g_strdup_printf("%06x", d->class_code);
  const char *state = "host";

  if (jd)
    state = vfd_device_state_to_string(jd->state);
  else if (g_strcmp0(d->driver, VFD_VFIO_DRIVER) == 0)
    state = "host"; /* on vfio-pci, but not ours */

  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "bdf", "s", vfd_bdf_format(&d->bdf, b));
  g_variant_dict_insert(&dict, "vendor", "s", vendor);
  g_variant_dict_insert(&dict, "device", "s", device);
  g_variant_dict_insert(&dict, "class", "s", cls);
  g_variant_dict_insert(&dict, "iommu_group", "i", d->iommu_group);
  g_variant_dict_insert(&dict, "numa_node", "i", d->numa_node);
  if (d->driver)
    g_variant_dict_insert(&dict, "driver", "s", d->driver);
  g_variant_dict_insert(&dict, "state", "s", state);
  if (jd)
    g_variant_dict_insert(&dict, "owner", "s", jd->owner);
  if (jd)
    g_variant_dict_insert(&dict, "owner_uid", "u", jd->owner_uid);
  g_variant_dict_insert(&dict, "managed", "b",
                        !vfd_pci_class_is_bridge(d->class_code) &&
                            !vfd_policy_refusal(vfd_host_policy(m->host), d->vendor, d->device, d->class_code,
                                                d->boot_vga));
  if (d->name)
    g_variant_dict_insert(&dict, "name", "s", d->name);
  return g_variant_dict_end(&dict);
}

static GVariant *
sandbox_to_variant(Sandbox *s)
{
  GVariantDict dict;
  g_auto(GStrv) devs = bdf_strv(s->devices);

  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "id", "s", s->id);
  g_variant_dict_insert(&dict, "owner_uid", "u", (guint32) s->owner_uid);
  g_variant_dict_insert(&dict, "state", "s", sandbox_state_names[s->state]);
  g_variant_dict_insert(&dict, "pid", "x", s->pid);
  g_variant_dict_insert_value(&dict, "devices", g_variant_new_strv((const char *const *) devs, -1));
  g_variant_dict_insert(&dict, "memory_mib", "u", s->memory_mib);
  g_variant_dict_insert(&dict, "vcpus", "u", s->vcpus);
  g_variant_dict_insert(&dict, "serial_log", "s", s->serial_log);
  g_variant_dict_insert(&dict, "dir", "s", s->dir);
  if (s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED)
    g_variant_dict_insert(&dict, "exit_status", "i", s->exit_status);
  g_variant_dict_insert(&dict, "ready", "b", s->ready);
  g_variant_dict_insert(&dict, "numa_node", "i", s->numa_node);
  if (s->ready_report)
    g_variant_dict_insert(&dict, "ready_report", "s", s->ready_report);
  if (s->ready)
    g_variant_dict_insert(&dict, "ready_ms", "x", s->ready_ms);
  return g_variant_dict_end(&dict);
}

/* A sandbox being created, as GetSandbox and ListSandboxes show it: only
 * what was set before its create went to a worker (which is still filling
 * in the rest: devices, pid, network), so nothing the worker writes is
 * read. devices is empty and pid 0 until the create is done. */
static GVariant *
sandbox_creating_to_variant(Sandbox *s)
{
  GVariantDict dict;

  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "id", "s", s->id);
  g_variant_dict_insert(&dict, "owner_uid", "u", (guint32) s->owner_uid);
  g_variant_dict_insert(&dict, "state", "s", sandbox_state_names[SANDBOX_CREATING]);
  g_variant_dict_insert(&dict, "pid", "x", (gint64) 0);
  g_variant_dict_insert_value(&dict, "devices", g_variant_new_strv(NULL, 0));
  g_variant_dict_insert(&dict, "memory_mib", "u", s->memory_mib);
  g_variant_dict_insert(&dict, "vcpus", "u", s->vcpus);
  g_variant_dict_insert(&dict, "serial_log", "s", s->serial_log);
  g_variant_dict_insert(&dict, "dir", "s", s->dir);
  g_variant_dict_insert(&dict, "ready", "b", FALSE);
  g_variant_dict_insert(&dict, "numa_node", "i", -1);
  return g_variant_dict_end(&dict);
}

static gint
sandbox_id_cmp(gconstpointer a, gconstpointer b)
{
  return g_strcmp0((*(Sandbox *const *) a)->id, (*(Sandbox *const *) b)->id);
}

/* ---- method handlers ---------------------------------------------------- */

/* The device list of ListDevices and GetCapabilities from @devs (from
 * vfd_host_enumerate()): a floating aa{sv}. */
static GVariant *
device_inventory_from(VfdManager *m, GPtrArray *devs)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  vfd_host_lock_journal(m->host);
  for (guint i = 0; i < devs->len; i++)
    g_variant_builder_add_value(&b, device_to_variant(m, g_ptr_array_index(devs, i)));
  vfd_host_unlock_journal(m->host);
  return g_variant_builder_end(&b);
}

/* Every PCI device with vfiod's view of it (aa{sv}, floating); NULL when
 * enumeration fails. */
static GVariant *
device_inventory(VfdManager *m, GError **error)
{
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(m->host, error);

  return devs ? device_inventory_from(m, devs) : NULL;
}

static gboolean
handle_list_devices(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  GVariant *devs = device_inventory(m, &error);

  if (!devs) {
    return_error(inv, error);
    return TRUE;
  }
  vfd_manager1_complete_list_devices(sk, inv, devs);
  return TRUE;
}

/* The sandbox that owns @bdf's journal record, if any. */
static Sandbox *
owning_sandbox(VfdManager *m, const VfdBdf *bdf)
{
  VfdJournalDevice *jd;
  Sandbox *s;

  vfd_host_lock_journal(m->host);
  jd = vfd_journal_lookup(vfd_host_journal(m->host), bdf);
  s = jd ? g_hash_table_lookup(m->sandboxes, jd->owner) : NULL;
  vfd_host_unlock_journal(m->host);
  return s;
}

/* The pool (issue 16): [pool] rules of the start-up configuration. */
static VfdPoolRules *
pool_rules(VfdManager *m)
{
  /* Validated when the config was loaded. */
  return vfd_pool_rules_new(m->pool_config->pool_devices, m->pool_config->pool_match, m->pool_config->pool_mode,
                            NULL);
}

/* Rewrites the CDI specs ([pool] cdi_dir) from the pool as it is now;
 * a failure is logged (the specs keep their last content). Any thread. */
static void
pool_write_cdi(VfdManager *m)
{
  g_autoptr(VfdPoolRules) rules = pool_rules(m);
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(GError) error = NULL;

  if (!*m->pool_config->cdi_dir)
    return;
  /* mode=sandboxes: the pool is vfiod's own, nothing for other consumers;
   * no pool: no PCI scan (the main loop calls this after every bind). */
  entries = vfd_pool_rules_lend(rules) || vfd_pool_is_empty(m->host, rules)
                ? g_ptr_array_new()
                : vfd_pool_collect(m->host, rules, vfd_host_variant(m->host), &error);
  if (!entries || !vfd_cdi_write(m->pool_config->cdi_dir, entries, &error))
    g_warning("[pool] cdi_dir %s: %s", m->pool_config->cdi_dir, error->message);
}

/* Pool lending (vfd_host_set_pool_lending()): @bdf is in the pool by the
 * config's rules. */
static bool
pool_member(VfdHost *host, const VfdBdf *bdf, void *data)
{
  VfdManager *m = data;
  g_autoptr(VfdPoolRules) rules = pool_rules(m);
  g_autoptr(VfdPciDevice) dev = NULL;

  g_autoptr(GArray) fns = NULL;

  if (!vfd_pool_rules_lend(rules) || !vfd_host_group_functions(host, bdf, &fns, NULL))
    return false;
  /* The group is the pool's when any of its functions is. */
  for (guint i = 0; i < fns->len; i++) {
    g_clear_pointer(&dev, vfd_pci_device_free);
    dev = vfd_host_get_device(host, &g_array_index(fns, VfdBdf, i), NULL);
    if (dev && vfd_pool_rules_match(rules, dev))
      return true;
  }
  return false;
}

/* Brings the pool to its state and writes the CDI specs (start-up,
 * reconcile). Any thread. */
static void
pool_sync(VfdManager *m, GPtrArray *report)
{
  g_autoptr(VfdPoolRules) rules = pool_rules(m);

  vfd_host_set_pool_lending(m->host, vfd_pool_rules_lend(rules) ? pool_member : NULL, m);

  vfd_pool_apply(m->host, rules, report);
  pool_write_cdi(m);
}

static gboolean
bind_work(Op *op, GError **error)
{
  return vfd_host_bind_group_as(op->m->host, &op->bdf, op->owner, op->uid, op->flags, &op->members, &op->group,
                                error);
}

static double
op_seconds(Op *op)
{
  return (double) (g_get_monotonic_time() - op->started_us) / G_USEC_PER_SEC;
}

static void
bind_done(Op *op, GError *error)
{
  g_auto(GStrv) names = NULL;
  char b[VFD_BDF_STRLEN];

  vfd_metric_op_add(&op->m->metrics.bind, !error, op_seconds(op));
  if (error) {
    return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  names = bdf_strv(op->members);
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, NULL, op->owner, (const char *const *) names, "bound IOMMU group %d (%s) for '%s'", op->group,
                 vfd_bdf_format(&op->bdf, b), op->owner);
  pool_write_cdi(op->m);
  vfd_manager1_complete_bind_device(op->m->skeleton, g_steal_pointer(&op->inv), (const char *const *) names,
                                    op->group);
}

static gboolean
start_bind(VfdManager *m, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner, VfdBindFlags flags)
{
  g_autoptr(GError) error = NULL;
  VfdBdf bdf;
  uid_t uid;
  Op *op;

  if (!caller_uid(inv, &uid))
    return TRUE;
  if ((flags & VFD_BIND_FORCE) &&
      !check_root_only(inv, uid, "bind --force (binding a GPU whose /dev/nvidia* node processes hold open)"))
    return TRUE;
  if (!*owner)
    owner = "vfioctl";
  if (g_str_equal(owner, VFD_POOL_OWNER) &&
      !check_root_only(inv, uid, "bind for the pool (--persist: kept on vfio-pci across restarts and reboots)"))
    return TRUE;
  if (!parse_bdf_arg(bdf_s, &bdf, &error) || !check_owner_name(owner, &error) || !check_journal_ok(m, &error)) {
    return_error(inv, error);
    return TRUE;
  }
  op = op_new(m, inv, bind_work, bind_done);
  op->bdf = bdf;
  op->owner = g_strdup(owner);
  op->uid = uid;
  op->flags = flags;
  op_run(op);
  return TRUE;
}

static gboolean
handle_bind_device(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner,
                   gpointer data)
{
  VfdManager *m = data;

  return start_bind(m, inv, bdf_s, owner, VFD_BIND_NONE);
}

static gboolean
handle_bind_device_full(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, const char *owner,
                        GVariant *options, gpointer data)
{
  VfdManager *m = data;
  GVariantDict opts;
  gboolean force = FALSE;

  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "force", "b", &force);
  g_variant_dict_clear(&opts);
  return start_bind(m, inv, bdf_s, owner, force ? VFD_BIND_FORCE : VFD_BIND_NONE);
}

static gboolean
release_work(Op *op, GError **error)
{
  g_autoptr(GPtrArray) notes = NULL;
  char b[VFD_BDF_STRLEN];
  /* A member releases only what it bound; root anything. */
  gboolean ok = vfd_host_release_group_as(op->m->host, &op->bdf, NULL, op->uid == 0 ? -1 : (gint64) op->uid,
                                          &op->members, &notes, error);

  for (guint i = 0; notes && i < notes->len; i++)
    vfd_log_device(G_LOG_LEVEL_WARNING, NULL, NULL, vfd_bdf_format(&op->bdf, b), "release %s: %s", vfd_bdf_format(&op->bdf, b),
                   (const char *) g_ptr_array_index(notes, i));
  return ok;
}

static void
release_done(Op *op, GError *error)
{
  g_auto(GStrv) names = NULL;
  char b[VFD_BDF_STRLEN];

  vfd_metric_op_add(&op->m->metrics.release, !error, op_seconds(op));
  if (error) {
    return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  names = bdf_strv(op->members);
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, NULL, NULL, (const char *const *) names, "released %s", vfd_bdf_format(&op->bdf, b));
  pool_write_cdi(op->m);
  vfd_manager1_complete_release_device(op->m->skeleton, g_steal_pointer(&op->inv), (const char *const *) names);
}

static gboolean
handle_release_device(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *bdf_s, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  Sandbox *owner;
  VfdBdf bdf;
  uid_t uid;
  Op *op;

  if (!caller_uid(inv, &uid))
    return TRUE;
  if (!parse_bdf_arg(bdf_s, &bdf, &error) || !check_journal_ok(m, &error)) {
    return_error(inv, error);
    return TRUE;
  }
  owner = owning_sandbox(m, &bdf);
  if (owner) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_BUSY, "%s is in use by sandbox %s; delete the sandbox instead", bdf_s,
                owner->id);
    return_error(inv, error);
    return TRUE;
  }
  op = op_new(m, inv, release_work, release_done);
  op->bdf = bdf;
  op->uid = uid;
  op_run(op);
  return TRUE;
}

static char *
new_sandbox_id(VfdManager *m)
{
  for (;;) {
    char *id = g_strdup_printf("sb-%08x", g_random_int());
    gboolean journaled;

    vfd_host_lock_journal(m->host);
    journaled = vfd_journal_lookup_sandbox(vfd_host_journal(m->host), id) != NULL;
    vfd_host_unlock_journal(m->host);
    if (!g_hash_table_contains(m->sandboxes, id) && !journaled)
      return id;
    g_free(id);
  }
}

/* Picks the uid the QEMU of @s runs as (main loop): root when [qemu]
 * user says root (or vfiod is not root: it cannot switch); [qemu] user's
 * uid when there is no uid_range; else the lowest uid of the range that no
 * other sandbox holds and no account uses. LIMIT_EXCEEDED when none is
 * left. The uid is held in m->qemu_uids until the sandbox is freed. */
static gboolean
sandbox_pick_qemu_uid(VfdManager *m, Sandbox *s, GError **error)
{
  const VfdConfig *c = s->config;

  s->qemu_uid = m->qemu_uid;
  s->qemu_gid = m->qemu_gid;
  if (m->qemu_uid == 0 || c->qemu_uid_count == 0)
    return TRUE;
  for (guint32 i = 0; i < c->qemu_uid_count; i++) {
    uid_t uid = c->qemu_uid_first + i;
    if (g_hash_table_contains(m->qemu_uids, GUINT_TO_POINTER(uid)))
      continue;
    if (getpwuid(uid)) {
      g_warning("[qemu] uid_range: uid %u belongs to an account; skipped", (guint) uid);
      continue;
    }
    g_hash_table_add(m->qemu_uids, GUINT_TO_POINTER(uid));
    s->qemu_uid = uid;
    s->qemu_uid_held = TRUE;
    return TRUE;
  }
  g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "no free uid left in [qemu] uid_range (%u uids)",
              c->qemu_uid_count);
  return FALSE;
}

/* Gives the sandbox's QEMU uid its QEMU directory and /dev/vfio/<group>
 * nodes. */
static gboolean
hand_over(VfdManager *m, Sandbox *s, GError **error)
{
  if (chown(s->qemu_dir, s->qemu_uid, s->qemu_gid) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot hand %s to the QEMU user: %s", s->qemu_dir,
                g_strerror(e));
    return FALSE;
  }
  for (guint i = 0; i < s->devices->len; i++) {
    int group;
    g_autofree char *node = NULL;
    char num[16];

    if (vfd_sysfs_iommu_group(vfd_host_sysfs(m->host), &g_array_index(s->devices, VfdBdf, i), &group) < 0)
      continue;
    g_snprintf(num, sizeof num, "%d", group);
    node = g_build_filename(vfd_sysfs_dev_root(vfd_host_sysfs(m->host)), "vfio", num, NULL);
    if (chown(node, s->qemu_uid, s->qemu_gid) < 0 || chmod(node, 0600) < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot hand %s to the QEMU user: %s", node, g_strerror(e));
      return FALSE;
    }
  }
  return TRUE;
}

/* Stage 2a of a create, reads only: the functions the sandbox will get,
 * the HGX partition rule and the guest address space (s->plan), see
 * vfd_sandbox_plan_devices(); then whether hugepages can back its RAM on
 * the node its functions share (vfd_hugepages_check()). A refusal here has
 * changed nothing. */
static gboolean
plan_devices(VfdManager *m, Op *op, Sandbox *s, GError **error)
{
  g_autoptr(GArray) functions = NULL;
  VfdHostCpu cpu = { 0 };
  int node = -1;
  int r;

  if (op->requested->len > 0) {
    r = vfd_host_cpu_read(s->config->proc_root, &cpu);
    if (r < 0)
      g_message("sandbox %s: the host's address width is unknown (%s/cpuinfo: %s); not checked", s->id,
                s->config->proc_root, g_strerror(-r));
    if (!vfd_sandbox_plan_devices(m->host, op->requested, op->gpus, s->memory_mib, s->config->qemu_accel, &cpu,
                                  &functions, &s->plan, error))
      return FALSE;
    /* The node stage 2 binds guest RAM to: the one all functions share. */
    for (guint i = 0; i < functions->len; i++) {
      g_autoptr(VfdPciDevice) d = vfd_host_get_device(m->host, &g_array_index(functions, VfdBdf, i), NULL);
      int nd = d ? d->numa_node : -1;
      node = i == 0 ? nd : (nd == node ? node : -1);
    }
  }
  if (s->config->qemu_hugepages || s->config->qemu_hugepage_kib)
    return vfd_hugepages_check(s->config->sys_root, s->config->proc_root, s->memory_mib, s->config->qemu_hugepage_kib,
                               node, error);
  return TRUE;
}

/* Largest kernel and initramfs vfiod copies for a QEMU that could not read
 * them itself (see guest_file_fd()). */
#define GUEST_FILE_COPY_MAX (G_GUINT64_CONSTANT(2) << 30)

/* The fd QEMU gets for a kernel or initramfs opened as @fd (taken): QEMU
 * reads it through /proc/self/fd/N, which checks the file's own mode
 * against QEMU's uid. When that uid could not read it (mode bits; no
 * ACLs considered), the contents are copied into a sealed memfd instead, so
 * that a client's 0600 file still boots without QEMU getting any right to
 * it. -1 with @error when the copy fails or the file is too large. */
static int
guest_file_fd(Sandbox *s, const char *what, int fd, GError **error)
{
  struct stat st;
  mode_t need;
  int mfd;
  off_t off = 0;

  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s: %s", what, g_strerror(e));
    return -1;
  }
  need = st.st_uid == s->qemu_uid ? S_IRUSR : st.st_gid == s->qemu_gid ? S_IRGRP : S_IROTH;
  if (s->qemu_uid == 0 || (st.st_mode & need))
    return fd;
  if ((guint64) st.st_size > GUEST_FILE_COPY_MAX) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                "%s: %" G_GINT64_FORMAT " bytes, not readable by QEMU's uid, too large to copy (2 GiB at most): "
                "make it readable by others",
                what, (gint64) st.st_size);
    return -1;
  }
  mfd = memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  while (mfd >= 0 && off < st.st_size) {
    ssize_t n = sendfile(mfd, fd, &off, (size_t) MIN(st.st_size - off, 1 << 30));
    if (n <= 0) {
      close(mfd);
      mfd = -1;
    }
  }
  close(fd);
  if (mfd < 0 || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    if (mfd >= 0)
      close(mfd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s: cannot copy it for QEMU: %s", what, g_strerror(e));
    return -1;
  }
  return mfd;
}

/* A kernel or initramfs of the config ([qemu] kernel/initrd): trusted, so
 * opened with vfiod's rights and through symbolic links (a "current" link
 * to the image built last is common); a regular file, not blocking on a
 * FIFO. -1 with @error. */
static int
open_config_file(const char *what, const char *path, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;

  if (fd < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, e == ENOENT ? VFD_ERROR_NOT_FOUND : VFD_ERROR_FAILED, "%s '%s': %s", what, path,
                g_strerror(e));
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' is not a regular file", what, path);
    return -1;
  }
  return fd;
}

/* EROFS: the superblock's magic (EROFS_SUPER_MAGIC_V1, little-endian) at
 * byte 1024 of the image. */
#define EROFS_SUPER_OFFSET 1024
#define EROFS_SUPER_MAGIC 0xe0f5e1e2u

/* The NVIDIA driver layer of the config ([qemu] driver_layer, @path): an
 * EROFS image, opened read-only with vfiod's rights (the config is
 * trusted), never through a symbolic link (vfioctl image build writes the
 * image itself into its DIR: name that), a regular file, not blocking on a
 * FIFO, with the EROFS magic. QEMU gets the fd (-add-fd), never the path.
 * -1 with @error (NOT_FOUND when missing, INVALID_ARGUMENT when a link, not
 * a regular file or not EROFS) naming the key, the path and the fix. */
static int
open_driver_layer(const char *path, GError **error)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  unsigned char magic[4];
  struct stat st;

  if (fd < 0) {
    int e = errno;
    if (e == ELOOP)
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "[qemu] driver_layer '%s' is a symbolic link: name the image itself (vfioctl image build "
                  "writes DIR/driver-layer.erofs as a regular file)", path);
    else
      g_set_error(error, VFD_ERROR, e == ENOENT ? VFD_ERROR_NOT_FOUND : VFD_ERROR_FAILED,
                  "[qemu] driver_layer '%s': %s%s", path, g_strerror(e),
                  e == ENOENT ? " (build it: vfioctl image build --gpu --output DIR)" : "");
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "[qemu] driver_layer '%s' is not a regular file",
                path);
    return -1;
  }
  if (pread(fd, magic, sizeof magic, EROFS_SUPER_OFFSET) != (ssize_t) sizeof magic ||
      ((guint32) magic[0] | (guint32) magic[1] << 8 | (guint32) magic[2] << 16 | (guint32) magic[3] << 24) !=
          EROFS_SUPER_MAGIC) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "[qemu] driver_layer '%s' is not an EROFS image (no EROFS superblock at byte 1024)", path);
    return -1;
  }
  return fd;
}

/* Stage 0 of a create (worker), before anything changes: the kernel,
 * initramfs and disk, opened once. Files the client named are opened with
 * the client's rights (vfd_caller_open(): no symbolic link, a regular file,
 * as the client could open it), [qemu] kernel/initrd (the trusted config)
 * with vfiod's (open_config_file()). QEMU gets the fds, never the paths. */
/* open_config_file() of [qemu] kernel or initrd (@key), @set: named by the
 * file; when it is the default image's and missing, the error says so and
 * how to build that image. */
static int
open_default_guest_file(const char *key, const char *path, gboolean set, GError **error)
{
  g_autofree char *what = g_strdup_printf("[qemu] %s", key);
  g_autoptr(GError) local = NULL;
  int fd = open_config_file(what, path, &local);

  if (fd < 0 && !set && g_error_matches(local, VFD_ERROR, VFD_ERROR_NOT_FOUND)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND,
                "no guest %s: the sandbox names none, [qemu] %s is unset and the default image has no %s; build it "
                "with 'vfioctl image build [--gpu] --output " VFIOD_IMAGE_DIR "', set [qemu] %s, or pass --%s",
                g_str_equal(key, "kernel") ? "kernel" : "initramfs", key, path, key, key);
    return -1;
  }
  if (fd < 0)
    g_propagate_error(error, g_steal_pointer(&local));
  return fd;
}

static gboolean
open_guest_files(Op *op, GError **error)
{
  int fd;

  if (op->kernel_from_client)
    fd = vfd_caller_open(&op->caller, "kernel", op->kernel, O_RDONLY, 5000, error);
  else
    fd = open_default_guest_file("kernel", op->kernel, op->config->qemu_kernel_set, error);
  if (fd < 0 || (op->kernel_fd = guest_file_fd(op->sandbox, "kernel", fd, error)) < 0)
    return FALSE;
  if (op->initrd_from_client)
    fd = vfd_caller_open(&op->caller, "initrd", op->initrd, O_RDONLY, 5000, error);
  else
    fd = open_default_guest_file("initrd", op->initrd, op->config->qemu_initrd_set, error);
  if (fd < 0 || (op->initrd_fd = guest_file_fd(op->sandbox, "initrd", fd, error)) < 0)
    return FALSE;
  if (op->disk && (op->disk_fd = vfd_caller_open(&op->caller, "disk", op->disk, O_RDWR, 5000, error)) < 0)
    return FALSE;
  /* The driver layer, for a sandbox that may be a GPU sandbox (functions
   * passed, a root to inject it into): opened now, so that a bad layer
   * fails the create before anything is bound; attached in stage 5 when a
   * passed function is a GPU. A missing default image is no error (the
   * sandbox boots without it); a missing configured one is. */
  if (op->disk && *op->config->qemu_driver_layer && (op->gpus > 0 || op->requested->len > 0)) {
    g_autoptr(GError) local = NULL;
    op->layer_fd = open_driver_layer(op->config->qemu_driver_layer, &local);
    if (op->layer_fd < 0) {
      if (op->config->qemu_driver_layer_set || !g_error_matches(local, VFD_ERROR, VFD_ERROR_NOT_FOUND)) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
      g_message("sandbox %s: no driver layer: the default %s is missing (vfioctl image build --gpu)",
                op->sandbox->id, op->config->qemu_driver_layer);
    }
  }
  return TRUE;
}

/* Stage 1 of a create (worker): <dir> (root's, 0711: QEMU's uid may pass,
 * not list), <dir>/serial.log and <dir>/qemu.log (root's, 0600, created
 * here: QEMU writes them through fds), <dir>/qemu (QEMU's uid's, 0700, for
 * its QMP socket and pidfile; see hand_over()). *@ret_qemu_log: vfiod's fd
 * of qemu.log for QEMU's stdout and stderr. */
static gboolean
make_sandbox_dir(VfdManager *m, Sandbox *s, int *ret_qemu_log, GError **error)
{
  int dfd = -1;
  const char *failed = s->dir;

  if (mkdir(s->dir, 0711) < 0 || chmod(s->dir, 0711) < 0)
    goto fail;
  dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  failed = s->qemu_dir;
  if (dfd < 0 || mkdirat(dfd, "qemu", 0700) < 0)
    goto fail;
  failed = "qemu.log";
  *ret_qemu_log = openat(dfd, "qemu.log", O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (*ret_qemu_log < 0)
    goto fail;
  close(dfd);
  return sandbox_open_serial(s, TRUE, error);

fail: {
  int e = errno;
  if (dfd >= 0)
    close(dfd);
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot create %s: %s", failed, g_strerror(e));
  return FALSE;
}
}

/* TRUE when one of @classes (GArray of guint32, PCI class codes) is a
 * display controller (class 0x03: VGA 0x0300, 3D 0x0302, ...): a GPU. */
static gboolean
sandbox_has_gpu(GArray *classes)
{
  for (guint i = 0; i < classes->len; i++)
    if ((g_array_index(classes, guint32, i) >> 16) == 0x03)
      return TRUE;
  return FALSE;
}

/* Worker: stages 1-3 of a create, with reverse-order rollback of the stages
 * done when one fails. */
static gboolean
create_work(Op *op, GError **error)
{
  VfdManager *m = op->m;
  Sandbox *s = op->sandbox;
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GArray) passed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) classes = g_array_new(FALSE, FALSE, sizeof(guint32)); /* of @passed, in order */
  g_autoptr(VfdGroupLock) lock = NULL;
  g_autofree char *qmp = g_build_filename(s->qemu_dir, "qmp.sock", NULL);
  g_autoptr(GArray) reserved = NULL; /* IOMMU groups picked for "any N", until bound */
  int qemu_log = -1;
  guint bound = 0;

  /* Stage 0: the files the guest boots from, opened once. */
  if (!open_guest_files(op, error))
    return FALSE;

  /* Stage 1: per-sandbox directory. */
  if (vfd_fail_stage("dir", error))
    return FALSE;
  if (!make_sandbox_dir(m, s, &qemu_log, error))
    goto rollback;

  /* Stage 2: every requested device's IOMMU group, groups locked in
   * ascending order for the whole stage. "Any N": pick them first. */
  if (op->gpus > 0) {
    g_autoptr(GArray) picked = NULL;
    int node = -1;
    /* Picked and reserved in one step: a concurrent create picks others
     * (issue 14, defect 2); the reservation ends once they are bound. */
    if (!vfd_host_reserve_units(m->host, op->gpus, &picked, &reserved, &node, error))
      goto rollback;
    g_array_append_vals(op->requested, picked->data, picked->len);
    s->numa_node = node;
  }
  if (!plan_devices(m, op, s, error))
    goto rollback;
  for (guint i = 0; i < op->requested->len; i++) {
    int g = -1;
    if (vfd_sysfs_iommu_group(vfd_host_sysfs(m->host), &g_array_index(op->requested, VfdBdf, i), &g) == 0)
      g_array_append_val(groups, g);
  }
  lock = vfd_host_lock_groups(m->host, (const int *) (void *) groups->data, groups->len);
  for (guint i = 0; i < op->requested->len; i++) {
    g_autoptr(GArray) members = NULL;
    const VfdBdf *bdf = &g_array_index(op->requested, VfdBdf, i);
    gboolean mine = FALSE;

    for (guint k = 0; k < passed->len; k++)
      mine = mine || vfd_bdf_equal(&g_array_index(passed, VfdBdf, k), bdf);
    if (mine)
      continue; /* same group as an earlier request */
    if (!vfd_host_bind_group_as(m->host, bdf, s->id, s->owner_uid, VFD_BIND_NONE, &members, NULL, error))
      goto rollback;
    bound++;
    g_array_append_vals(passed, members->data, members->len);
  }
  vfd_host_unreserve_units(m->host, reserved);
  g_clear_pointer(&reserved, g_array_unref);
  g_array_sort(passed, vfd_bdf_compare);
  g_array_append_vals(s->devices, passed->data, passed->len);
  /* One NUMA node for all passed functions: bind guest RAM and vCPUs to it.
   * Their classes too ([qemu] test_present_as). */
  for (guint i = 0; i < passed->len; i++) {
    g_autoptr(VfdPciDevice) d = vfd_host_get_device(m->host, &g_array_index(passed, VfdBdf, i), NULL);
    int nd = d ? d->numa_node : -1;
    guint32 cls = d ? d->class_code : 0;
    g_array_append_val(classes, cls);
    if (i == 0)
      s->numa_node = nd;
    else if (nd != s->numa_node)
      s->numa_node = -1;
  }
  if (vfd_fail_stage("devices", error))
    goto rollback;
  vfd_pause_stage("devices");

  /* Stage 3: network names and addresses. The sandbox is journaled then
   * (pid 0: starting), so that a crash from here on finds its devices, its
   * TAP and its QEMU (by pidfile). */
  if (!net_allocate(m, s, error) || vfd_fail_stage("network-allocate", error))
    goto rollback;
  if (!journal_sandbox(m, s, error) || vfd_fail_stage("journal", error))
    goto rollback;

  /* Stage 4: TAP and firewall. */
  if (!net_setup(m, s, error) || vfd_fail_stage("network", error))
    goto rollback;

  /* Stage 5: QEMU, as [qemu] user when set: it gets its own directory (for
   * the serial log, QMP socket, pidfile) and its IOMMU groups' /dev/vfio
   * nodes, nothing else (the node goes when the group leaves vfio-pci). */
  if (s->qemu_uid != 0 && !hand_over(m, s, error))
    goto rollback;
  {
    g_autofree char *pidfile = g_build_filename(s->qemu_dir, "qemu.pid", NULL);
    g_autofree char *kernel = NULL, *initrd = NULL;
    int serial_fd = open_serial_for_qemu(s);
    g_autoptr(GStrvBuilder) args = g_strv_builder_new();
    g_autoptr(GStrvBuilder) append = g_strv_builder_new();
    g_auto(GStrv) extra_args = NULL;
    g_auto(GStrv) extra_append = NULL;

    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));

    if (serial_fd < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open %s for QEMU: %s", s->serial_log, g_strerror(e));
      goto rollback;
    }
    /* fds QEMU gets, in order from fd 3: serial log, kernel, initramfs,
     * disk, then the network's. */
    g_array_append_val(fds, serial_fd);
    g_array_append_val(fds, op->kernel_fd);
    kernel = g_strdup_printf("/proc/self/fd/%u", 3 + fds->len - 1);
    g_array_append_val(fds, op->initrd_fd);
    initrd = g_strdup_printf("/proc/self/fd/%u", 3 + fds->len - 1);
    op->kernel_fd = op->initrd_fd = -1;
    if (op->disk_fd >= 0) {
      g_autofree char *add = NULL, *add_ro = NULL;
      g_autofree char *drive = g_strdup_printf("file=/dev/fdset/%d,if=none,id=root,format=raw", VFD_QEMU_FDSET_DISK);
      /* QEMU probes the image read-only first: the set needs an O_RDONLY
       * fd of the same file next to the O_RDWR one (reopened through the
       * fd, so the very same inode). */
      g_autofree char *self = g_strdup_printf("/proc/self/fd/%d", op->disk_fd);
      int ro = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
      if (ro < 0) {
        int e = errno;
        for (guint i = 0; i < fds->len; i++)
          close(g_array_index(fds, int, i));
        g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "disk: cannot reopen it read-only: %s", g_strerror(e));
        goto rollback;
      }
      g_array_append_val(fds, op->disk_fd);
      op->disk_fd = -1;
      add = g_strdup_printf("fd=%u,set=%d,opaque=disk", 3 + fds->len - 1, VFD_QEMU_FDSET_DISK);
      g_array_append_val(fds, ro);
      add_ro = g_strdup_printf("fd=%u,set=%d,opaque=disk-ro", 3 + fds->len - 1, VFD_QEMU_FDSET_DISK);
      g_strv_builder_add_many(args, "-add-fd", add, "-add-fd", add_ro, "-drive", drive, "-device",
                              passed->len == 0 ? "virtio-blk-device,drive=root" VFD_QEMU_ROOT_SERIAL
                                               : "virtio-blk-pci,drive=root" VFD_QEMU_ROOT_SERIAL,
                              NULL);
      g_strv_builder_add(append, VFIOD_KEY_ROOT "=" VFD_QEMU_ROOT_DEV);
      /* The driver layer, for a GPU sandbox (a passed function of display
       * class 0x03: a GPU, or the lab's stand-in): read-only, the disk
       * after the root's, named to guest-init by vfiod.driver=. */
      if (op->layer_fd >= 0 && sandbox_has_gpu(classes)) {
        g_autofree char *add_layer = NULL;
        g_autofree char *drive_layer =
            g_strdup_printf("file=/dev/fdset/%d,if=none,id=driver,format=raw,readonly=on", VFD_QEMU_FDSET_DRIVER);
        g_array_append_val(fds, op->layer_fd);
        op->layer_fd = -1;
        add_layer = g_strdup_printf("fd=%u,set=%d,opaque=driver-layer", 3 + fds->len - 1, VFD_QEMU_FDSET_DRIVER);
        g_strv_builder_add_many(args, "-add-fd", add_layer, "-drive", drive_layer, "-device",
                                "virtio-blk-pci,drive=driver" VFD_QEMU_DRIVER_SERIAL, NULL);
        g_strv_builder_add(append, VFIOD_KEY_DRIVER "=" VFD_QEMU_DRIVER_DEV);
      }
    }
    if (op->layer_fd >= 0) {
      /* not a GPU sandbox after all: no layer */
      close(op->layer_fd);
      op->layer_fd = -1;
    }
    if (!net_qemu_args(m, s, passed->len == 0, args, append, fds, error)) {
      for (guint i = 0; i < fds->len; i++)
        close(g_array_index(fds, int, i));
      goto rollback;
    }
    /* The workload's words (checked again: checked at the request already). */
    if (!vfd_guest_cmdline_add_workload(append, op->cmd, (const char *const *) op->args, op->env, error)) {
      for (guint i = 0; i < fds->len; i++)
        close(g_array_index(fds, int, i));
      goto rollback;
    }
    extra_args = g_strv_builder_end(args);
    extra_append = g_strv_builder_end(append);
    VfdQemuConfig qc = {
      .extra_args = (const char *const *) extra_args,
      .extra_append = (const char *const *) extra_append,
      .pass_fds = (const int *) (void *) fds->data,
      .n_pass_fds = fds->len,
      .pidfile = pidfile,
      .id = s->id,
      .qemu_binary = s->config->qemu_binary,
      .accel = s->config->qemu_accel,
      .memory_mib = s->memory_mib,
      .vcpus = s->vcpus,
      .kernel = kernel,
      .initrd = initrd,
      .serial_log = s->serial_log,
      .serial_fd = 3,
      .qmp_socket = qmp,
      .devices = (const VfdBdf *) (void *) passed->data,
      .n_devices = passed->len,
      .device_classes = (const guint32 *) (void *) classes->data,
      .present_vendor = s->config->qemu_present_vendor,
      .present_device = s->config->qemu_present_device,
      .pci_hole64_size = s->plan.pci_hole64_size,
      .phys_bits = s->plan.phys_bits,
      .pci_nocrs = s->config->qemu_pci_nocrs,
      .hugepages = s->config->qemu_hugepages || s->config->qemu_hugepage_kib,
      .hugepage_kib = s->config->qemu_hugepage_kib,
      .prealloc_threads = s->config->qemu_prealloc_threads,
      .tsc_khz = g_str_equal(s->config->qemu_accel, "tcg") ? vfd_host_tsc_khz() : 0,
      .numa_bind = s->numa_node >= 0,
      .numa_node = (guint) MAX(s->numa_node, 0),
      .run_uid = s->qemu_uid,
      .run_gid = s->qemu_gid,
      .run_extra_gid = g_str_equal(s->config->qemu_accel, "kvm") ? m->kvm_gid : (gid_t) -1,
      .seccomp = s->config->qemu_seccomp,
    };
    s->proc = vfd_qemu_spawn(&qc, qemu_log, error);
    qemu_log = -1;
  }
  if (!s->proc)
    goto rollback;
  s->pid = g_ascii_strtoll(g_subprocess_get_identifier(s->proc), NULL, 10);
  /* The record with QEMU's pid and start time, durable before the create
   * answers: what a restart adopts. */
  if (vfd_fail_stage("qemu", error) || !journal_sandbox(m, s, error)) {
    /* QEMU runs: stop it before undoing the rest. */
    g_subprocess_force_exit(s->proc);
    g_subprocess_wait(s->proc, NULL, NULL);
    g_clear_object(&s->proc);
    goto rollback;
  }
  return TRUE;

rollback:
  /* Reverse order: QEMU did not start; drop the sandbox record, release the
   * groups bound so far (the sandbox owns exactly those), then the
   * directory. The first error is the one reported. */
  vfd_host_unreserve_units(m->host, reserved);
  vfd_host_lock_journal(m->host);
  if (vfd_journal_lookup_sandbox(vfd_host_journal(m->host), s->id)) {
    g_autoptr(GError) jerror = NULL;
    vfd_journal_remove_sandbox(vfd_host_journal(m->host), s->id);
    if (!vfd_journal_commit(vfd_host_journal(m->host), &jerror))
      g_warning("sandbox %s: rolled back, but its record stays on disk until the next commit: %s", s->id,
                jerror->message);
  }
  vfd_host_unlock_journal(m->host);
  net_teardown(m, s);
  if (bound > 0) {
    g_array_set_size(s->devices, 0);
    g_array_append_vals(s->devices, passed->data, passed->len);
    sandbox_release_devices(s, NULL);
    g_array_set_size(s->devices, 0);
  }
  if (qemu_log >= 0)
    close(qemu_log);
  if (s->serial_fd >= 0) {
    close(s->serial_fd);
    s->serial_fd = -1;
  }
  remove_dir_tree(s->dir);
  return FALSE;
}

static void
create_done(Op *op, GError *error)
{
  VfdManager *m = op->m;
  Sandbox *s = g_steal_pointer(&op->sandbox);

  vfd_metric_op_add(&m->metrics.create, !error, op_seconds(op));
  g_hash_table_remove(m->creating, s->id);
  if (error) {
    sandbox_set_state(s, SANDBOX_FAILED);
    /* Deletes asked during the create: the create rolled back, nothing of
     * the sandbox is left. */
    for (guint i = 0; i < s->waiters->len; i++)
      vfd_manager1_complete_delete_sandbox(m->skeleton, g_object_ref(g_ptr_array_index(s->waiters, i)));
    sandbox_unref(s);
    return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  g_hash_table_insert(m->sandboxes, s->id, s);
  sandbox_set_state(s, SANDBOX_RUNNING);
  g_subprocess_wait_async(s->proc, NULL, on_qemu_wait, m);
  sandbox_watch_serial(s);
  {
    g_auto(GStrv) devs = bdf_strv(s->devices);

    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, s->id, (const char *const *) devs,
                   "sandbox %s: started QEMU pid %" G_GINT64_FORMAT " with %u device(s)", s->id, s->pid, s->devices->len);
  }
  vfd_manager1_complete_create_sandbox(m->skeleton, g_steal_pointer(&op->inv), sandbox_to_variant(s));
  if (s->deleting) {
    /* A delete came while it was being created: stop it now. */
    sandbox_set_state(s, SANDBOX_STOPPING);
    stop_begin(s);
  }
}

/* The workload travels on the guest's kernel command line (vfiod.cmd=,
 * vfiod.arg=, vfiod.env=): refuse what cannot travel there, or would start
 * a word of its own (guest-cmdline.h has the rules, guest-init/protocol.h
 * the limits shared with guest-init). */
static gboolean
check_workload(const char *cmd, const char *const *args, GVariant *env, GError **error)
{
  return vfd_guest_cmdline_check_workload(cmd, args, env, error);
}

/* A path a client names: absolute, no "." or ".." component (the file
 * itself is opened later, with the client's rights). */
static gboolean
check_client_path(const char *what, const char *path, GError **error)
{
  if (!path || !*path) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: a path is required", what);
    return FALSE;
  }
  if (!g_path_is_absolute(path) || strlen(path) > 4096) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%.128s' must be an absolute path (4096 bytes at most)",
                what, path);
    return FALSE;
  }
  if (!vfd_path_check(path, VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%.128s' must not contain '.' or '..'", what, path);
    return FALSE;
  }
  return TRUE;
}

static gboolean
handle_create_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, GVariant *options, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) requested = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autofree const char **dev_strs = NULL;
  g_autofree char *id = NULL;
  const char *kernel = NULL, *initrd = NULL, *disk = NULL, *cmd = NULL;
  gboolean kernel_from_client, initrd_from_client;
  VfdCaller caller = { 0 };
  g_autofree const char **args = NULL;
  g_autoptr(GVariant) env = NULL;
  guint memory = 512, vcpus = 1, gpus = 0;
  GVariantDict opts;
  GVariant *v;
  Op *op;

  if (!vfd_check_sandbox_arch(g_getenv("VFIOD_TEST_MACHINE"), &error)) {
    return_error(inv, error);
    return TRUE;
  }
  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "gpus", "u", &gpus);
  g_variant_dict_lookup(&opts, "disk", "&s", &disk);
  g_variant_dict_lookup(&opts, "cmd", "&s", &cmd);
  env = g_variant_dict_lookup_value(&opts, "env", G_VARIANT_TYPE("a{ss}"));
  if ((v = g_variant_dict_lookup_value(&opts, "args", G_VARIANT_TYPE_STRING_ARRAY))) {
    args = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  if ((v = g_variant_dict_lookup_value(&opts, "devices", G_VARIANT_TYPE_STRING_ARRAY))) {
    dev_strs = g_variant_get_strv(v, NULL);
    g_variant_unref(v);
  }
  g_variant_dict_lookup(&opts, "kernel", "&s", &kernel);
  g_variant_dict_lookup(&opts, "initrd", "&s", &initrd);
  kernel_from_client = kernel != NULL;
  initrd_from_client = initrd != NULL;
  g_variant_dict_lookup(&opts, "memory_mib", "u", &memory);
  g_variant_dict_lookup(&opts, "vcpus", "u", &vcpus);
  if (!kernel)
    kernel = m->config->qemu_kernel;
  if (!initrd)
    initrd = m->config->qemu_initrd;

  /* Stage 0: validate everything before touching anything. */
  if (gpus > 0 && dev_strs && dev_strs[0])
    g_set_error_literal(&error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "give devices or gpus, not both");
  if (!error && gpus > 64)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "gpus must be at most 64, got %u", gpus);
  if (!error && disk)
    check_client_path("disk", disk, &error);
  if (!error)
    check_workload(cmd, args, env, &error);
  /* At most VFD_API_MAX_DEVICES, each once (the API filter has bounded
   * the array already; the number is checked here too, before any work). */
  if (!error && dev_strs && g_strv_length((char **) dev_strs) > VFD_API_MAX_DEVICES)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "devices: %u BDFs, at most %u",
                g_strv_length((char **) dev_strs), VFD_API_MAX_DEVICES);
  for (const char **d = dev_strs; !error && d && *d; d++) {
    VfdBdf bdf;
    if (!parse_bdf_arg(*d, &bdf, &error))
      break;
    for (guint k = 0; k < requested->len && !error; k++)
      if (vfd_bdf_equal(&g_array_index(requested, VfdBdf, k), &bdf))
        g_set_error(&error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "devices: %s is given twice", *d);
    if (error)
      break;
    if (!vfd_sysfs_device_exists(vfd_host_sysfs(m->host), &bdf)) {
      g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", *d);
      break;
    }
    g_array_append_val(requested, bdf);
  }
  /* Paths only: the files are opened in the create's stage 0, with the
   * client's rights (open_guest_files()). */
  if (!error && check_client_path("kernel", kernel, &error))
    check_client_path("initrd", initrd, &error);
  if (!error)
    vfd_caller_from_invocation(inv, &caller, &error);
  if (!error && (memory < 64 || memory > 1024 * 1024))
    g_set_error(&error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "memory_mib must be 64 to 1048576, got %u", memory);
  if (!error && (vcpus < 1 || vcpus > 255))
    g_set_error(&error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "vcpus must be 1 to 255, got %u", vcpus);
  if (!error)
    check_journal_ok(m, &error);
  if (error) {
    vfd_caller_clear(&caller);
    return_error(inv, error);
    return TRUE;
  }

  id = new_sandbox_id(m);
  op = op_new(m, inv, create_work, create_done);
  op->sandbox = sandbox_new(m, id);
  op->sandbox->owner_uid = caller.uid;
  op->caller = caller;
  op->kernel_from_client = kernel_from_client;
  op->initrd_from_client = initrd_from_client;
  if (!sandbox_pick_qemu_uid(m, op->sandbox, &error)) {
    g_autoptr(GError) e = g_steal_pointer(&error);
    sandbox_unref(g_steal_pointer(&op->sandbox));
    op->inv = NULL;
    op_free(op);
    return_error(inv, e);
    return TRUE;
  }
  op->sandbox->memory_mib = memory;
  op->sandbox->vcpus = vcpus;
  op->kernel = g_strdup(kernel);
  op->initrd = g_strdup(initrd);
  op->requested = g_steal_pointer(&requested);
  op->gpus = gpus;
  op->disk = g_strdup(disk);
  op->cmd = g_strdup(cmd);
  op->args = g_strdupv((char **) args);
  op->env = env ? g_variant_ref(env) : NULL;
  g_hash_table_insert(m->creating, g_strdup(op->sandbox->id), op->sandbox);
  sandbox_set_state(op->sandbox, SANDBOX_CREATING);
  op_run(op);
  return TRUE;
}

static void
delete_stopped_done(Op *op, GError *error)
{
  sandbox_set_state(op->sandbox, SANDBOX_STOPPED);
  finish_deletes(op->sandbox, error);
}

static gboolean
handle_delete_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  VfdManager *m = data;
  Sandbox *s = g_hash_table_lookup(m->sandboxes, id);
  gboolean creating = FALSE;
  g_autoptr(GError) error = NULL;
  uid_t uid;

  if (!caller_uid(inv, &uid))
    return TRUE;
  if (!s && (s = g_hash_table_lookup(m->creating, id)))
    creating = TRUE;
  if (!s) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no sandbox '%.64s'", id);
    return_error(inv, error);
    return TRUE;
  }
  /* Members act on their own sandboxes; root on any. */
  if (uid != 0 && uid != s->owner_uid) {
    g_autofree char *owner = vfd_uid_describe(s->owner_uid);
    g_autofree char *who = vfd_uid_describe(uid);
    g_set_error(&error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "sandbox %s belongs to %s; only its owner or root may delete it, not %s", s->id, owner, who);
    return_error(inv, error);
    return TRUE;
  }
  g_ptr_array_add(s->waiters, inv); /* the handler's reference */
  s->deleting = TRUE;
  if (creating)
    return TRUE; /* create_done stops it, or answers when the create failed */
  if ((s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED) && s->waiters->len == 1) {
    /* QEMU is gone and its devices were released then; retry any release
     * that failed, then forget the sandbox. */
    Op *op = op_new(m, NULL, release_sandbox_work, delete_stopped_done);
    op->sandbox = sandbox_ref(s);
    sandbox_set_state(s, SANDBOX_STOPPING);
    op_run(op);
  } else if (s->state == SANDBOX_RUNNING) {
    sandbox_set_state(s, SANDBOX_STOPPING);
    stop_begin(s);
  }
  return TRUE;
}

static gboolean
handle_get_sandbox(VfdManager1 *sk, GDBusMethodInvocation *inv, const char *id, gpointer data)
{
  VfdManager *m = data;
  Sandbox *s = g_hash_table_lookup(m->sandboxes, id);
  g_autoptr(GError) error = NULL;

  if (!s && (s = g_hash_table_lookup(m->creating, id))) {
    vfd_manager1_complete_get_sandbox(sk, inv, sandbox_creating_to_variant(s));
    return TRUE;
  }
  if (!s) {
    g_set_error(&error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no sandbox '%.64s'", id);
    return_error(inv, error);
    return TRUE;
  }
  vfd_manager1_complete_get_sandbox(sk, inv, sandbox_to_variant(s));
  return TRUE;
}

/* The value of "Key: N kB"-style line @key in @contents (/proc/meminfo's
 * text, may be NULL); 0 when absent. */
static guint64
meminfo_value(const char *contents, const char *key)
{
  size_t n = strlen(key);

  for (const char *l = contents; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (strncmp(l, key, n) == 0 && l[n] == ':')
      return g_ascii_strtoull(l + n + 1, NULL, 10);
  return 0;
}

static gboolean
handle_get_capabilities(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GError) error = NULL;
  /* One bus scan serves the device list, the free count and the HGX board
   * (issue 17: this call took 20-40 ms when it scanned three times). */
  g_autoptr(GPtrArray) all = vfd_host_enumerate(m->host, &error);
  GVariant *devs = all ? device_inventory_from(m, all) : NULL;
  g_autofree char *meminfo = NULL;
  GVariantDict host, caps;
  guint free_units;
  int fd;

  if (!devs) {
    return_error(inv, error);
    return TRUE;
  }
  free_units = vfd_host_count_free_units_in(m->host, all);
  if (!g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL))
    g_clear_pointer(&meminfo, g_free);

  g_variant_dict_init(&host, NULL);
  g_variant_dict_insert(&host, "version", "s", VFIOD_VERSION);
  g_variant_dict_insert(&host, "accel", "s", m->config->qemu_accel);
  fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  g_variant_dict_insert(&host, "kvm", "b", fd >= 0);
  if (fd >= 0)
    close(fd);
  g_variant_dict_insert(&host, "vsock", "b", m->have_vsock);
  g_variant_dict_insert(&host, "network", "b", m->config->net_enabled);
  g_variant_dict_insert(&host, "hugepages_total", "t", meminfo_value(meminfo, "HugePages_Total"));
  g_variant_dict_insert(&host, "hugepages_free", "t", meminfo_value(meminfo, "HugePages_Free"));
  g_variant_dict_insert(&host, "hugepage_kib", "t", meminfo_value(meminfo, "Hugepagesize"));
  g_variant_dict_insert(&host, "memory_mib", "t", meminfo_value(meminfo, "MemTotal") / 1024);
  g_variant_dict_insert(&host, "cpus", "u", g_get_num_processors());
  g_variant_dict_insert(&host, "free_units", "u", free_units);
  {
    /* The guest address width vfiod can give (see vfd_qemu_address_plan()). */
    if (m->host_cpu_read == 0)
      m->host_cpu_read = vfd_host_cpu_read(m->config->proc_root, &m->host_cpu) == 0 ? 1 : -1;
    if (m->host_cpu_read > 0) {
      g_variant_dict_insert(&host, "phys_bits", "u", m->host_cpu.phys_bits);
      g_variant_dict_insert(&host, "la57", "b", m->host_cpu.la57);
    }
  }

  g_variant_dict_init(&caps, NULL);
  g_variant_dict_insert_value(&caps, "devices", devs);
  {
    /* An HGX board: which partitions a sandbox may take. */
    g_autoptr(VfdHgxBoard) board = vfd_hgx_board_find(all);
    if (board) {
      g_auto(GStrv) gpus = bdf_strv(board->gpus);
      g_auto(GStrv) switches = bdf_strv(board->nvswitches);
      guint32 counts[2] = { 1, board->gpus->len };
      GVariantDict hgx;

      g_variant_dict_init(&hgx, NULL);
      g_variant_dict_insert_value(&hgx, "gpus", g_variant_new_strv((const char *const *) gpus, -1));
      g_variant_dict_insert_value(&hgx, "nvswitches", g_variant_new_strv((const char *const *) switches, -1));
      /* GPUs per sandbox: 1, or all of them with every NVSwitch. */
      g_variant_dict_insert_value(&hgx, "gpu_counts",
                                  g_variant_new_fixed_array(G_VARIANT_TYPE_UINT32, counts,
                                                            board->gpus->len > 1 ? 2 : 1, sizeof(guint32)));
      g_variant_dict_insert_value(&caps, "hgx", g_variant_dict_end(&hgx));
    }
  }
  g_variant_dict_insert_value(&caps, "host", g_variant_dict_end(&host));
  vfd_manager1_complete_get_capabilities(sk, inv, g_variant_dict_end(&caps));
  return TRUE;
}

static gboolean
handle_list_sandboxes(VfdManager1 *sk, GDBusMethodInvocation *inv, gpointer data)
{
  VfdManager *m = data;
  g_autoptr(GPtrArray) list = g_ptr_array_new();
  GHashTableIter iter;
  gpointer value;
  GVariantBuilder b;

  g_hash_table_iter_init(&iter, m->sandboxes);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_ptr_array_add(list, value);
  g_hash_table_iter_init(&iter, m->creating);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_ptr_array_add(list, value);

  g_ptr_array_sort(list, sandbox_id_cmp);
  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < list->len; i++) {
    Sandbox *s = g_ptr_array_index(list, i);
    g_variant_builder_add_value(&b, g_hash_table_contains(m->creating, s->id) ? sandbox_creating_to_variant(s)
                                                                             : sandbox_to_variant(s));
  }
  vfd_manager1_complete_list_sandboxes(sk, inv, g_variant_builder_end(&b));
  return TRUE;
}

/* ---- reconciliation ------------------------------------------------------ */

/* Kills a QEMU that was started for a sandbox no client ever learnt about
 * (vfiod died before answering), and waits up to 5 s for it to go. */
static void
kill_orphan_qemu(const char *id, gint64 pid)
{
  int pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);

  if (pidfd < 0)
    return;
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  for (int i = 0; i < 500; i++) {
    GPollFD pfd = { .fd = pidfd, .events = G_IO_IN };
    if (g_poll(&pfd, 1, 10) > 0)
      break;
  }
  close(pidfd);
}

/* Start-up, main thread: adopt sandboxes whose QEMU still runs (pid and
 * start time match), restore the devices of the others. */
/* *@ret_restored: sandboxes whose devices were restored; *@ret_restore_us:
 * time spent restoring them (the batch). */
static void
reconcile_sandboxes(VfdManager *m, GPtrArray *report, guint *ret_restored, gint64 *ret_restore_us)
{
  VfdJournal *j = vfd_host_journal(m->host);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func((GDestroyNotify) sandbox_unref); /* Sandbox: QEMU gone, to restore */
  g_autoptr(GPtrArray) gone_why = g_ptr_array_new_with_free_func(g_free);   /* why, per gone sandbox */

  for (guint i = 0; i < vfd_journal_sandboxes(j)->len; i++)
    g_ptr_array_add(ids, g_strdup(((VfdJournalSandbox *) g_ptr_array_index(vfd_journal_sandboxes(j), i))->id));

  for (guint i = 0; i < ids->len; i++) {
    VfdJournalSandbox *js = vfd_journal_lookup_sandbox(j, g_ptr_array_index(ids, i));
    g_autofree char *pidfile = NULL;
    guint64 start = 0;
    Sandbox *s = sandbox_new(m, js->id);
    gint64 orphan;
    g_autoptr(GError) dir_error = NULL;

    /* The directory is deleted recursively below: only ever the one vfiod
     * made (sandbox_new(): <runtime dir>/sandboxes/<id>, kept in s->dir).
     * The journal may have been tampered with: a dir it names elsewhere is
     * refused and left alone (issue 13, finding 8). */
    if (!vfd_reconcile_check_sandbox_dir(m->sandboxes_dir, js->id, js->dir, &dir_error)) {
      g_warning("sandbox %s: %s; that directory is left alone", js->id, dir_error->message);
      vfd_reconcile_add(report, js->id, "refused", "%s; that directory is left alone", dir_error->message);
    }
    g_free(s->serial_log);
    s->serial_log = g_build_filename(s->dir, "serial.log", NULL);
    s->pid = js->pid;
    s->owner_uid = js->owner_uid;
    s->memory_mib = js->memory_mib;
    s->vcpus = js->vcpus;
    s->numa_node = js->numa_node;
    g_free(s->qemu_dir);
    s->qemu_dir = g_build_filename(s->dir, "qemu", NULL);
    s->qemu_uid = js->qemu_uid;
    s->qemu_gid = m->qemu_gid;
    if (m->config->qemu_uid_count && s->qemu_uid >= m->config->qemu_uid_first &&
        s->qemu_uid - m->config->qemu_uid_first < m->config->qemu_uid_count &&
        !g_hash_table_contains(m->qemu_uids, GUINT_TO_POINTER(s->qemu_uid))) {
      g_hash_table_add(m->qemu_uids, GUINT_TO_POINTER(s->qemu_uid));
      s->qemu_uid_held = TRUE;
    }
    for (char **d = js->devices; d && *d; d++) {
      VfdBdf bdf;
      if (vfd_bdf_parse(*d, &bdf) == 0)
        g_array_append_val(s->devices, bdf);
    }
    /* The TAP is deleted by name at teardown: only a vfiod TAP name
     * (vfd_tap_name_valid(); the journal checked its form already). */
    if (js->subnet && js->tap && vfd_subnet_parse(js->subnet, &s->subnet) == 0 && vfd_tap_name_valid(js->tap)) {
      s->has_net = TRUE;
      g_strlcpy(s->tap, js->tap, sizeof s->tap);
      g_strlcpy(s->mac, js->mac ? js->mac : "", sizeof s->mac);
      s->cid = js->cid;
    }
    if (js->pid > 0 && vfd_proc_start_time(js->pid, &start) == 0 && start == js->start_time &&
        (s->pidfd = (int) syscall(SYS_pidfd_open, (pid_t) js->pid, 0)) >= 0) {
      s->state = SANDBOX_RUNNING;
      s->pidfd_source = g_unix_fd_add(s->pidfd, G_IO_IN, on_pidfd_ready, s);
      g_hash_table_insert(m->sandboxes, s->id, s);
      {
        g_autoptr(GError) serr = NULL;
        if (!sandbox_open_serial(s, FALSE, &serr))
          g_warning("sandbox %s: %s; its readiness and console are not followed", s->id, serr->message);
      }
      sandbox_watch_serial(s);
      if (s->has_net && m->pool) {
        g_autoptr(GError) nerr = NULL;
        if (vfd_subnet_pool_mark(m->pool, &s->subnet) < 0)
          g_warning("sandbox %s: its subnet %s is outside the pool or taken twice", s->id, js->subnet);
        if (s->cid)
          vfd_cid_pool_mark(m->cids, s->cid);
        if (!vfd_firewall_state_add(m->fw, s->tap, &s->subnet, FALSE, &nerr))
          g_warning("sandbox %s: %s", s->id, nerr->message);
        g_clear_error(&nerr);
        /* A TAP an older vfiod made may lack the per-TAP sysctls. */
        if (!vfd_tap_harden(m->config->proc_root, s->tap, &nerr))
          g_warning("sandbox %s: %s", s->id, nerr->message);
        s->tap_created = TRUE;
      }
      vfd_reconcile_add(report, s->id, "adopted", "QEMU pid %" G_GINT64_FORMAT " still runs; adopted as it is",
                        s->pid);
      continue;
    }
    pidfile = g_build_filename(s->qemu_dir, "qemu.pid", NULL);
    orphan = js->pid == 0 ? vfd_qemu_find_pid(pidfile, s->id) : 0;
    if (orphan > 0)
      kill_orphan_qemu(s->id, orphan);
    if (s->has_net && m->pool)
      net_teardown(m, s);
    g_ptr_array_add(gone, s);
    g_ptr_array_add(gone_why, g_strdup(js->pid == 0 ? (orphan > 0 ? "its QEMU was starting when vfiod stopped; killed it"
                                                                   : "it was starting when vfiod stopped")
                                                    : "its QEMU is gone"));
    /* Dropped in memory now; durable with the batch's first commit below,
     * which also journals its devices "releasing": a crash after it
     * restores them at the next start-up all the same. */
    vfd_journal_remove_sandbox(j, s->id);
  }

  /* The devices of every sandbox that is gone, in one batch: one durable
   * journal commit per phase, not two per group (issue 17). */
  if (gone->len > 0) {
    g_autoptr(GArray) items = g_array_new(FALSE, TRUE, sizeof(VfdReleaseItem));
    g_autoptr(GArray) first = g_array_new(FALSE, FALSE, sizeof(guint)); /* each sandbox's first item */
    g_autoptr(GError) berror = NULL;
    gboolean batch_ok;
    gint64 t0 = g_get_monotonic_time();

    vfd_host_lock_journal(m->host);
    for (guint i = 0; i < gone->len; i++) {
      Sandbox *s = g_ptr_array_index(gone, i);
      g_array_append_val(first, items->len);
      for (guint k = 0; k < s->devices->len; k++) {
        VfdReleaseItem it = { .bdf = g_array_index(s->devices, VfdBdf, k), .owner = s->id };
        /* Not journaled: released together with an earlier member of its group. */
        if (vfd_journal_lookup(j, &it.bdf))
          g_array_append_val(items, it);
      }
    }
    vfd_host_unlock_journal(m->host);
    batch_ok = vfd_host_release_groups(m->host, (VfdReleaseItem *) items->data, items->len, &berror);
    if (!batch_ok)
      g_warning("start-up restore: %s", berror->message);
    for (guint i = 0; i < gone->len; i++) {
      Sandbox *s = g_ptr_array_index(gone, i);
      guint end = i + 1 < gone->len ? g_array_index(first, guint, i + 1) : items->len;
      const GError *failure = batch_ok ? NULL : berror;

      for (guint k = g_array_index(first, guint, i); k < end; k++) {
        VfdReleaseItem *it = &g_array_index(items, VfdReleaseItem, k);
        char name[VFD_BDF_STRLEN];
        for (guint n = 0; it->notes && n < it->notes->len; n++)
          g_warning("sandbox %s: %s", s->id, (const char *) g_ptr_array_index(it->notes, n));
        if (batch_ok && it->error) {
          g_warning("sandbox %s: cannot release %s: %s", s->id, vfd_bdf_format(&it->bdf, name), it->error->message);
          if (!failure)
            failure = it->error;
        }
      }
      vfd_reconcile_add(report, s->id, failure ? "failed" : "restored", "%s%s%s",
                        (const char *) g_ptr_array_index(gone_why, i),
                        failure ? "; " : "; its devices are back on their original drivers",
                        failure ? failure->message : "");
      remove_dir_tree(s->dir);
    }
    for (guint k = 0; k < items->len; k++)
      vfd_release_item_clear(&g_array_index(items, VfdReleaseItem, k));
    *ret_restored = gone->len;
    *ret_restore_us = g_get_monotonic_time() - t0;
  } else {
    /* Nothing to restore: one commit all the same, so that the journal
     * exists on disk from the first start and records the adoptions. */
    g_autoptr(GError) jerror = NULL;

    if (!vfd_journal_commit(j, &jerror))
      g_warning("start-up: the journal could not be written: %s", jerror->message);
  }

  /* Directories of sandboxes that never reached the journal (vfiod died
   * while creating them): nothing refers to them. */
  {
    g_autoptr(GDir) dir = g_dir_open(m->sandboxes_dir, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
      g_autofree char *path = g_build_filename(m->sandboxes_dir, name, NULL);
      if (g_hash_table_contains(m->sandboxes, name) || !g_str_has_prefix(name, "sb-"))
        continue;
      remove_dir_tree(path);
      vfd_reconcile_add(report, name, "restored", "removed the directory of a sandbox that was never started");
    }
  }
}

static GHashTable *
live_sandbox_ids(VfdManager *m)
{
  GHashTable *live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    if (s->state != SANDBOX_STOPPED && s->state != SANDBOX_FAILED)
      g_hash_table_add(live, g_strdup(s->id));
  /* A sandbox being created owns what it has bound so far (issue 14,
   * defect 1: a reconcile then released the devices under its QEMU). */
  g_hash_table_iter_init(&it, m->creating);
  while (g_hash_table_iter_next(&it, (gpointer *) &s, NULL))
    g_hash_table_add(live, g_strdup((const char *) s));
  return live;
}

static void
log_report(GPtrArray *report)
{
  for (guint i = 0; i < report->len; i++) {
    VfdReconcileItem *it = g_ptr_array_index(report, i);
    VfdBdf bdf;
    gboolean is_bdf = vfd_bdf_parse(it->subject, &bdf) == 0;

    vfd_log_device(G_LOG_LEVEL_MESSAGE, is_bdf ? NULL : it->subject, NULL, is_bdf ? it->subject : NULL, "reconcile: %s %s: %s",
                   it->subject, it->action, it->detail);
  }
}

static GVariant *
report_to_variant(GPtrArray *report)
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < report->len; i++) {
    VfdReconcileItem *it = g_ptr_array_index(report, i);
    GVariantDict d;
    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert(&d, "subject", "s", it->subject);
    g_variant_dict_insert(&d, "action", "s", it->action);
    g_variant_dict_insert(&d, "detail", "s", it->detail);
    g_variant_builder_add_value(&b, g_variant_dict_end(&d));
  }
  return g_variant_builder_end(&b);
}

/* Removes vfd* TAPs and firewall rules that belong to no live sandbox
 * (the firewall state holds exactly the live ones). */
static void
reconcile_network(VfdManager *m, GPtrArray *report)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) taps = NULL;
  g_auto(GStrv) rules = NULL;
  gboolean ok;

  if (!m->pool) /* [network] off (a restart-only key) */
    return;
  g_mutex_lock(&m->net_lock);
  ok = vfd_net_reconcile(m->fw, &taps, &rules, &error);
  g_mutex_unlock(&m->net_lock);
  for (char **t = taps; t && *t; t++)
    vfd_reconcile_add(report, *t, "restored", "TAP of no live sandbox: deleted");
  for (char **r = rules; r && *r; r++)
    vfd_reconcile_add(report, *r, "restored", "firewall rules of no live sandbox: removed");
  if (!ok)
    vfd_reconcile_add(report, "network", "failed", "%s", error->message);
}

static gboolean
reconcile_work(Op *op, GError **error)
{
  vfd_reconcile_devices(op->m->host, op->live, op->report, NULL);
  pool_sync(op->m, op->report);
  reconcile_network(op->m, op->report);
  return TRUE;
}

static void
reconcile_done(Op *op, GError *error)
{
  log_report(op->report);
  vfd_manager1_complete_reconcile(op->m->skeleton, g_steal_pointer(&op->inv), report_to_variant(op->report));
}

static gboolean
handle_reconcile(VfdManager1 *sk, GDBusMethodInvocation *inv, GVariant *options, gpointer data)
{
  VfdManager *m = data;
  GVariantDict opts;
  gboolean force = FALSE;
  g_autoptr(GError) error = NULL;
  uid_t uid;
  Op *op;

  g_variant_dict_init(&opts, options);
  g_variant_dict_lookup(&opts, "force", "b", &force);
  g_variant_dict_clear(&opts);
  if (!caller_uid(inv, &uid))
    return TRUE;
  if (force && !check_root_only(inv, uid, "reconcile --force (starting a new journal after a corrupt one)"))
    return TRUE;
  op = op_new(m, inv, reconcile_work, reconcile_done);
  op->report = vfd_reconcile_report_new();
  if (m->journal_corrupt) {
    if (!force) {
      check_journal_ok(m, &error);
      op->inv = NULL;
      op_free(op);
      return_error(inv, error);
      return TRUE;
    }
    /* The operator has looked: start over with an empty journal. The
     * corrupt file was kept aside when it was found. */
    vfd_host_lock_journal(m->host);
    if (!vfd_journal_commit(vfd_host_journal(m->host), &error)) {
      vfd_host_unlock_journal(m->host);
      op->inv = NULL;
      op_free(op);
      return_error(inv, error);
      return TRUE;
    }
    vfd_host_unlock_journal(m->host);
    vfd_reconcile_add(op->report, "journal", "reset", "%s; started a new, empty journal", m->journal_corrupt);
    g_clear_pointer(&m->journal_corrupt, g_free);
  }
  op->live = live_sandbox_ids(m);
  op_run(op);
  return TRUE;
}

/* ---- D-Bus server ------------------------------------------------------- */

/* GDBus calls this on an authentication thread (api-server.c): only
 * reentrant work. A client is root, or its process holds [daemon]
 * allowed_group as its primary or a supplementary group when it connects
 * (SO_PEERCRED, SO_PEERGROUPS: the kernel's record of the process, not the
 * host's group database), so a client in a container given the group
 * (`--group-add`) is a member without an entry in this host's /etc/group,
 * and a user removed from the group stops being one once its processes
 * drop it. The socket's mode (0660 root:group) already keeps everyone else
 * from connecting. */
static gboolean
on_authorize_peer(GDBusAuthObserver *observer, GIOStream *stream, GCredentials *credentials, gpointer data)
{
  static VfdLogLimit limit = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
  VfdManager *m = data;
  VfdCaller caller;
  gboolean member;
  uid_t uid;

  if (!credentials)
    return FALSE;
  uid = g_credentials_get_unix_user(credentials, NULL);
  if (uid == 0)
    return TRUE;
  if (uid == (uid_t) -1 || !m->have_allowed_gid || !vfd_caller_from_stream(stream, &caller, NULL))
    goto deny;
  member = caller.uid == uid && vfd_caller_in_group(&caller, m->allowed_gid);
  vfd_caller_clear(&caller);
  if (member)
    return TRUE;
deny:
  vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "refused API client uid %d: not root and its process does not hold group '%s'",
                  (int) uid, m->allowed_group);
  return FALSE;
}

static gboolean
on_allow_mechanism(GDBusAuthObserver *observer, const char *mechanism, gpointer data)
{
  return g_strcmp0(mechanism, "EXTERNAL") == 0;
}

/* ---- guest reports over vsock --------------------------------------------- */

/* The guests' report connections (m->report_conns, report-conn.h): each
 * bounded in size (a line of 64 KiB + 256, twice that in all), lines and time
 * (30 s); one per live sandbox CID at a time; at most
 * VFD_REPORT_MAX_CONNS in all; a peer whose CID is not a live sandbox's is
 * closed at once, nothing read. The peer's CID says which sandbox is
 * talking: a guest cannot speak for another. */

static Sandbox *
sandbox_by_cid(VfdManager *m, guint32 cid)
{
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    if (s->cid == cid && cid != 0)
      return s;
  return NULL;
}

/* The sandbox that owns @cid while it is live (creating, running,
 * stopping), else NULL. */
static Sandbox *
live_sandbox_by_cid(VfdManager *m, guint32 cid)
{
  Sandbox *s = sandbox_by_cid(m, cid);

  return s && s->state != SANDBOX_STOPPED && s->state != SANDBOX_FAILED ? s : NULL;
}

static gboolean
on_report_admit(guint32 cid, char **ret_label, gpointer data)
{
  Sandbox *s = live_sandbox_by_cid(data, cid);

  if (!s)
    return FALSE;
  *ret_label = g_strdup(s->id);
  return TRUE;
}

/* A line from the guest with @cid, on a connection admitted for sandbox
 * @id. Only "VFIOD_READY <report>" matters; other lines (VFIOD_EXIT) are
 * ignored. */
static void
on_report_line(guint32 cid, const char *id, const char *line, gsize len, gpointer data)
{
  VfdManager *m = data;
  Sandbox *s = live_sandbox_by_cid(m, cid);
  const char *at = memmem(line, len, VFD_REPORT_TAG, strlen(VFD_REPORT_TAG));
  const char *report;
  gsize n;

  /* The CID may have gone to another sandbox since the connection came. */
  if (!s || g_strcmp0(s->id, id) != 0 || !at || s->ready)
    return;
  report = at + strlen(VFD_REPORT_TAG);
  n = len - (gsize) (report - line);
  if (memchr(report, '\0', n)) {
    guest_warning("sandbox %s: ignored the guest's ready report (vsock): it holds a NUL byte", s->id);
    return;
  }
  sandbox_mark_ready(s, g_strchomp(g_strndup(report, n)), "vsock");
}

static void
on_report_closed(guint32 cid, const char *id, const GError *error, gpointer data)
{
  if (error)
    guest_warning("sandbox %s: closed the report connection from vsock CID %u: %s", id ? id : "?", cid,
                  error->message);
}

static gboolean
on_report_incoming(GSocketService *service, GSocketConnection *conn, GObject *source, gpointer data)
{
  VfdManager *m = data;
  struct sockaddr_vm peer = { 0 };
  socklen_t len = sizeof peer;
  g_autoptr(GError) error = NULL;

  if (getpeername(g_socket_get_fd(g_socket_connection_get_socket(conn)), (struct sockaddr *) &peer, &len) < 0 ||
      peer.svm_family != AF_VSOCK) {
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    return TRUE;
  }
  if (!vfd_report_conns_add(m->report_conns, peer.svm_cid, conn, &error))
    guest_warning("refused a report connection from vsock CID %u: %s", peer.svm_cid, error->message);
  return TRUE;
}

/* Listens on AF_VSOCK (any CID, [network] report_port) for guest-init's
 * reports, read only from live sandboxes' CIDs and bounded (above).
 * Failure is not fatal: the console remains. */
static void
start_report_listener(VfdManager *m)
{
  struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = m->config->report_port };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) sock = NULL;
  int fd;

  if (!m->have_vsock)
    return;
  fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
    g_warning("cannot listen for guest reports on vsock port %u: %s; using the console only",
              m->config->report_port, g_strerror(errno));
    if (fd >= 0)
      close(fd);
    return;
  }
  sock = g_socket_new_from_fd(fd, &error);
  m->report_service = g_socket_service_new();
  if (!sock || !g_socket_listener_add_socket(G_SOCKET_LISTENER(m->report_service), sock, NULL, &error)) {
    g_warning("cannot listen for guest reports: %s", error->message);
    g_clear_object(&m->report_service);
    return;
  }
  if (!m->report_conns) {
    VfdReportLimits limits;
    vfd_report_limits_init_default(&limits);
    m->report_conns = vfd_report_conns_new(VFD_REPORT_MAX_CONNS, &limits, on_report_admit, on_report_line,
                                           on_report_closed, m);
  }
  g_signal_connect(m->report_service, "incoming", G_CALLBACK(on_report_incoming), m);
  g_socket_service_start(m->report_service);
  g_message("listening for guest reports on vsock port %u", m->config->report_port);
}

/* True when something accepts connections on @path. */
static gboolean
socket_in_use(const char *path)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
  g_autoptr(GSocketConnection) conn =
      g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, NULL);

  return conn != NULL;
}

gboolean
vfd_manager_start(VfdManager *m, GError **error)
{
  VfdApiLimits limits;

  if (g_file_test(m->socket_path, G_FILE_TEST_EXISTS)) {
    if (socket_in_use(m->socket_path)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "another vfiod is serving %s", m->socket_path);
      return FALSE;
    }
    g_unlink(m->socket_path);
  }
  /* GDBus logs a hex dump of each message it cannot decode: 5 bytes of
   * log per byte a client sends. Cut and rate-limit GIO's messages. */
  vfd_log_limit_domain("GLib-GIO");
  vfd_api_limits_init(&limits);
  limits.max_connections = m->config->api_max_connections;
  limits.max_connections_per_uid = m->config->api_max_connections_per_uid;
  limits.auth_timeout_s = m->config->api_auth_timeout_s;
  m->api = vfd_api_server_new(m->socket_path, &limits, m->observer, G_DBUS_INTERFACE_SKELETON(m->skeleton),
                              VFD_MANAGER_OBJECT_PATH, error);
  if (!m->api) {
    g_prefix_error(error, "cannot listen on %s: ", m->socket_path);
    return FALSE;
  }
  /* Root and the allowed group may connect; credentials are checked too. */
  if (chmod(m->socket_path, m->have_allowed_gid ? 0660 : 0600) < 0 ||
      (m->have_allowed_gid && chown(m->socket_path, 0, m->allowed_gid) < 0 && geteuid() == 0))
    g_warning("cannot set permissions of %s: %s", m->socket_path, g_strerror(errno));
  g_message("serving the API on %s", m->socket_path);
  start_report_listener(m);
  m->serial_cap_timer = g_timeout_add_seconds(5, on_serial_cap_timer, m);
  write_metrics(m);
  return TRUE;
}

gboolean
vfd_manager_reload(VfdManager *m, const char *path, GError **error)
{
  g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, error);
  VfdPolicy *policy;
  const VfdConfig *o = m->config;
  const char *fixed = NULL;

  if (!c)
    return FALSE;
  if (g_strcmp0(c->state_dir, o->state_dir))
    fixed = "[daemon] state_dir";
  else if (g_strcmp0(c->runtime_dir, o->runtime_dir))
    fixed = "[daemon] runtime_dir";
  else if (g_strcmp0(c->allowed_group, o->allowed_group))
    fixed = "[daemon] allowed_group";
  else if (c->net_enabled != o->net_enabled || g_strcmp0(c->net_pool, o->net_pool) || c->net_prefix != o->net_prefix ||
           g_strcmp0(c->net_nat_uplink, o->net_nat_uplink) || c->report_port != o->report_port)
    fixed = "[network] enabled/pool/prefix/nat_uplink/report_port";
  else if (g_strcmp0(c->sys_root, o->sys_root) || g_strcmp0(c->dev_root, o->dev_root) ||
           g_strcmp0(c->proc_root, o->proc_root))
    fixed = "[testing] roots";
  if (fixed) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s changed: that needs a restart; nothing reloaded",
                fixed);
    return FALSE;
  }
  policy = vfd_policy_new(c->ids, c->classes, error);
  if (!policy)
    return FALSE;
  vfd_policy_set_guards(policy, &(VfdPolicyGuards){ .allow_boot_vga = c->allow_boot_vga,
                                                    .allow_storage = c->allow_storage,
                                                    .allow_network = c->allow_network });
  if (c->net_enabled) {
    g_mutex_lock(&m->net_lock);
    if (!vfd_firewall_state_set_ports(m->fw, c->net_host_ports, error) || !vfd_firewall_apply(m->fw, error)) {
      g_mutex_unlock(&m->net_lock);
      vfd_policy_unref(policy);
      return FALSE;
    }
    g_mutex_unlock(&m->net_lock);
  }
  vfd_host_set_policy(m->host, policy);
  vfd_host_set_reset_policy(m->host, c->reset_on_release);
  vfd_sysfs_set_write_timeout(vfd_host_sysfs(m->host), c->write_timeout_s * 1000);
  /* Operations and sandboxes made before keep the old configuration
   * through their references; it is freed with the last of them. */
  vfd_config_unref(m->config);
  m->config = g_steal_pointer(&c);
  g_message("configuration reloaded from %s", path);
  return TRUE;
}

const char *
vfd_manager_socket_path(VfdManager *m)
{
  return m->socket_path;
}

/* Who QEMU runs as ([qemu] user, see VfdConfig): sets m->qemu_uid/gid
 * (0/0: root) and m->kvm_gid. INVALID_ARGUMENT when a user named in the
 * config does not exist. */
static gboolean
resolve_qemu_user(VfdManager *m, const VfdConfig *config, GError **error)
{
  const char *name = config->qemu_user;
  struct passwd *pw;
  struct group *kvm;

  if (geteuid() != 0) {
    /* Tests: vfiod cannot switch users; QEMU runs as vfiod's own. */
    m->qemu_uid = 0;
    m->qemu_gid = 0;
    return TRUE;
  }
  if (name && g_str_equal(name, "root")) {
    g_warning("[qemu] user=root: QEMU runs as root, with every right on this host");
    return TRUE;
  }
  if (!name || !*name) {
    name = getpwnam(VFD_QEMU_USER_DEFAULT) ? VFD_QEMU_USER_DEFAULT : "nobody";
    if (!g_str_equal(name, VFD_QEMU_USER_DEFAULT))
      g_warning("[qemu] user: no user '%s' (the package creates it: systemd-sysusers); QEMU runs in nobody's group",
                VFD_QEMU_USER_DEFAULT);
  }
  pw = getpwnam(name);
  if (!pw || pw->pw_uid == 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "[qemu] user '%s' %s (say user=root to run QEMU as root)", name,
                pw ? "is root" : "does not exist");
    return FALSE;
  }
  m->qemu_uid = pw->pw_uid;
  m->qemu_gid = pw->pw_gid;
  kvm = getgrnam("kvm");
  if (kvm)
    m->kvm_gid = kvm->gr_gid;
  g_message("QEMU runs as %s in group %u%s", config->qemu_uid_count ? "a uid of its own per sandbox" : name,
            (guint) m->qemu_gid, config->qemu_uid_count ? " ([qemu] uid_range)" : "");
  return TRUE;
}

VfdManager *
vfd_manager_new(VfdConfig *config, GError **error)
{
  return vfd_manager_new_with_sysfs(config, vfd_sysfs_new(config->sys_root, config->dev_root), error);
}

VfdManager *
vfd_manager_new_with_sysfs(VfdConfig *config, VfdSysfs *sysfs_in, GError **error)
{
  g_autoptr(VfdSysfs) sysfs = sysfs_in;
  g_autoptr(VfdManager) m = g_new0(VfdManager, 1);
  g_autoptr(VfdJournal) journal = NULL;
  VfdPolicy *policy;
  gint64 t_start = 0, t_journal = 0, t_restore = 0;
  guint n_journal_devices = 0, n_journal_sandboxes = 0;

  m->config = config;
  m->allowed_group = g_strdup(config->allowed_group ? config->allowed_group : "");
  m->qemu_uids = g_hash_table_new(NULL, NULL);
  m->creating = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  m->kvm_gid = (gid_t) -1;
  m->sandboxes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, sandbox_drop);
  m->socket_path = g_build_filename(config->runtime_dir, VFD_SOCKET_NAME, NULL);
  m->sandboxes_dir = g_build_filename(config->runtime_dir, "sandboxes", NULL);

  if (config->allowed_group && *config->allowed_group) {
    struct group *gr = getgrnam(config->allowed_group);
    if (gr) {
      m->allowed_gid = gr->gr_gid;
      m->have_allowed_gid = TRUE;
    } else {
      g_warning("allowed_group '%s' does not exist; only root may use the API", config->allowed_group);
    }
  }
  /* 0755 even when it existed: members of allowed_group must reach the
   * socket (which itself is 0660 root:group). */
  if (g_mkdir_with_parents(config->runtime_dir, 0755) < 0 || chmod(config->runtime_dir, 0755) < 0 || g_mkdir_with_parents(m->sandboxes_dir, 0711) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot create runtime directory %s: %s",
                config->runtime_dir, g_strerror(e));
    return NULL;
  }
  {
    g_autoptr(GError) jerror = NULL;
    t_start = g_get_monotonic_time();
    journal = vfd_journal_open(config->state_dir, &jerror);
    if (!journal && g_error_matches(jerror, VFD_ERROR, VFD_ERROR_CORRUPT)) {
      /* Serve the API, but touch no device until an operator acts. */
      g_warning("%s", jerror->message);
      m->journal_corrupt = g_strdup(jerror->message);
      journal = vfd_journal_new_empty(config->state_dir);
    } else if (!journal) {
      g_propagate_error(error, g_steal_pointer(&jerror));
      return NULL;
    }
    t_journal = g_get_monotonic_time();
    n_journal_devices = vfd_journal_devices(journal)->len;
    n_journal_sandboxes = vfd_journal_sandboxes(journal)->len;
  }
  policy = vfd_policy_new(config->ids, config->classes, error);
  if (!policy)
    return NULL;
  vfd_policy_set_guards(policy, &(VfdPolicyGuards){ .allow_boot_vga = config->allow_boot_vga,
                                                    .allow_storage = config->allow_storage,
                                                    .allow_network = config->allow_network });
  if (!resolve_qemu_user(m, config, error)) {
    vfd_policy_unref(policy);
    return NULL;
  }
  g_mutex_init(&m->net_lock);
  m->fw = vfd_firewall_state_new();
  m->cids = vfd_cid_pool_new(VFD_CID_FIRST, VFD_CID_LAST);
  if (config->net_enabled) {
    if (!vfd_firewall_state_set_ports(m->fw, config->net_host_ports, error)) {
      vfd_policy_unref(policy);
      return NULL;
    }
    g_free(m->fw->nat_uplink);
    m->fw->nat_uplink = g_strdup(config->net_nat_uplink);
    g_free(m->fw->proc_root);
    m->fw->proc_root = g_strdup(config->proc_root);
    m->pool = vfd_subnet_pool_new(config->net_pool, config->net_prefix, error);
    /* A pool that overlaps an address of the host would route sandboxes
     * into the host's own networks: refuse to start. */
    if (!m->pool || !vfd_subnet_pool_check_host_overlap(m->pool, VFD_TAP_PREFIX, error)) {
      g_prefix_error(error, "[network] pool %s: ", config->net_pool);
      vfd_policy_unref(policy);
      return NULL;
    }
    m->have_vsock = g_file_test("/dev/vhost-vsock", G_FILE_TEST_EXISTS);
    if (m->have_vsock)
      vfd_cid_pool_set_probe(m->cids, vfd_cid_probe_vhost_vsock, NULL);
  }
  vfd_sysfs_set_write_timeout(sysfs, config->write_timeout_s * 1000);
  m->host = vfd_host_new(g_steal_pointer(&sysfs), policy, g_steal_pointer(&journal));
  vfd_host_set_proc_root(m->host, config->proc_root);
  vfd_host_set_reset_policy(m->host, config->reset_on_release);
  if (config->variant_drivers) {
    /* A test's module tree: its aliases only, not the host's modprobe.d. */
    static const char *const no_config[] = { NULL };
    g_autoptr(GError) verr = NULL;
    VfdVariant *variant = vfd_variant_new(*config->modules_dir ? config->modules_dir : NULL,
                                          *config->modules_dir ? no_config : NULL, &verr);
    if (!variant)
      g_warning("[devices] variant_drivers: %s; every device goes to vfio-pci", verr->message);
    vfd_host_set_variant(m->host, variant);
  }
  m->pool_config = vfd_config_ref(config);
  {
    /* Before the first reconcile: a lent group whose sandbox is gone goes
     * back to the pool, not to its host drivers. */
    g_autoptr(VfdPoolRules) rules = pool_rules(m);
    vfd_host_set_pool_lending(m->host, vfd_pool_rules_lend(rules) ? pool_member : NULL, m);
  }

  m->observer = g_dbus_auth_observer_new();
  g_signal_connect(m->observer, "authorize-authenticated-peer", G_CALLBACK(on_authorize_peer), m);
  g_signal_connect(m->observer, "allow-mechanism", G_CALLBACK(on_allow_mechanism), m);
  m->skeleton = vfd_manager1_skeleton_new();
  vfd_manager1_set_version(m->skeleton, VFIOD_VERSION);
  g_signal_connect(m->skeleton, "handle-list-devices", G_CALLBACK(handle_list_devices), m);
  g_signal_connect(m->skeleton, "handle-bind-device", G_CALLBACK(handle_bind_device), m);
  g_signal_connect(m->skeleton, "handle-release-device", G_CALLBACK(handle_release_device), m);
  g_signal_connect(m->skeleton, "handle-create-sandbox", G_CALLBACK(handle_create_sandbox), m);
  g_signal_connect(m->skeleton, "handle-delete-sandbox", G_CALLBACK(handle_delete_sandbox), m);
  g_signal_connect(m->skeleton, "handle-get-sandbox", G_CALLBACK(handle_get_sandbox), m);
  g_signal_connect(m->skeleton, "handle-list-sandboxes", G_CALLBACK(handle_list_sandboxes), m);
  g_signal_connect(m->skeleton, "handle-bind-device-full", G_CALLBACK(handle_bind_device_full), m);
  g_signal_connect(m->skeleton, "handle-reconcile", G_CALLBACK(handle_reconcile), m);
  g_signal_connect(m->skeleton, "handle-get-capabilities", G_CALLBACK(handle_get_capabilities), m);

  if (!m->journal_corrupt) {
    g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
    g_autoptr(GHashTable) live = NULL;

    gint64 t1, t2, t3, scan_us = 0;
    guint restored = 0;

    reconcile_sandboxes(m, report, &restored, &t_restore);
    t1 = g_get_monotonic_time();
    live = live_sandbox_ids(m);
    vfd_reconcile_devices(m->host, live, report, &scan_us);
    pool_sync(m, report);
    t2 = g_get_monotonic_time();
    reconcile_network(m, report);
    t3 = g_get_monotonic_time();
    log_report(report);
    /* Where start-up went (issue 17, figure 9 of bench/run). */
    g_message("start-up: journal %.1f ms (%u devices, %u sandboxes); sandboxes %.1f ms (%u adopted, %u restored, "
              "restore %.1f ms); devices %.1f ms (PCI scan %.1f ms); network %.1f ms",
              (t_journal - t_start) / 1000.0, n_journal_devices, n_journal_sandboxes, (t1 - t_journal) / 1000.0,
              g_hash_table_size(m->sandboxes), restored, t_restore / 1000.0, (t2 - t1) / 1000.0, scan_us / 1000.0,
              (t3 - t2) / 1000.0);
  }
  return g_steal_pointer(&m);
}

void
vfd_manager_free(VfdManager *m)
{
  if (!m)
    return;
  if (m->api) {
    /* Closes every connection and unexports the skeleton from it. */
    g_clear_pointer(&m->api, vfd_api_server_free);
    g_unlink(m->socket_path);
  }
  g_clear_object(&m->skeleton);
  g_clear_object(&m->observer);
  g_hash_table_unref(m->sandboxes);
  g_hash_table_unref(m->qemu_uids);
  g_hash_table_unref(m->creating);
  if (m->serial_cap_timer)
    g_source_remove(m->serial_cap_timer);
  vfd_host_free(m->host);
  if (m->pool_config)
    vfd_config_unref(m->pool_config);
  vfd_config_unref(m->config);
  g_free(m->allowed_group);
  g_free(m->socket_path);
  g_free(m->sandboxes_dir);
  g_free(m->journal_corrupt);
  if (m->report_service) {
    g_socket_service_stop(m->report_service);
    g_object_unref(m->report_service);
  }
  vfd_report_conns_free(m->report_conns);
  vfd_subnet_pool_free(m->pool);
  vfd_cid_pool_free(m->cids);
  vfd_firewall_state_free(m->fw);
  g_mutex_clear(&m->net_lock);

  g_free(m);
}
