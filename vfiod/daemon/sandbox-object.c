/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manager's Sandbox: its reference count and states, readiness read
 * from its serial console, its console log, its directory and the devices
 * it holds. Main loop, except where a function says otherwise. */
#include "manager-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-server.h"
#include "interface.h"
#include "log-fields.h"
#include "log-limit.h"
#include "ready-report.h"

const char *const sandbox_state_names[] = { "creating", "running", "stopping", "stopped", "failed", "exited" };

/* ---- sandboxes ---------------------------------------------------------- */

/* Ends the timers, watches and fds of @s's current run: the stop's kill
 * timer, an adopted QEMU's pidfd, the console's monitor and fd.
 * Idempotent. */
static void
sandbox_end_watches(Sandbox *s)
{
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
}

/* Ends everything that would act on @s later: its timers and watches, its
 * fds, its hold on a QEMU uid. Idempotent. */
static void
sandbox_dispose(Sandbox *s)
{
  if (s->disposed)
    return;
  s->disposed = TRUE;
  sandbox_end_watches(s);
  if (s->qemu_uid_held)
    g_hash_table_remove(s->manager->qemu_uids, GUINT_TO_POINTER(s->qemu_uid));
  s->qemu_uid_held = FALSE;
  sandbox_forget_name(s);
}

void
sandbox_forget_name(Sandbox *s)
{
  if (s->name && s->manager->names && g_hash_table_lookup(s->manager->names, s->name) == s)
    g_hash_table_remove(s->manager->names, s->name);
}

Sandbox *
vfd_mgr_find_sandbox(VfdManager *m, const char *id_or_name, gboolean *ret_creating)
{
  Sandbox *s = NULL;

  if (ret_creating)
    *ret_creating = FALSE;
  if (g_str_has_prefix(id_or_name, VFD_SANDBOX_ID_PREFIX)) {
    s = g_hash_table_lookup(m->sandboxes, id_or_name);
    if (!s && (s = g_hash_table_lookup(m->creating, id_or_name)) && ret_creating)
      *ret_creating = TRUE;
    return s;
  }
  s = g_hash_table_lookup(m->names, id_or_name);
  if (s && ret_creating)
    *ret_creating = g_hash_table_contains(m->creating, s->id);
  return s;
}

Sandbox *
sandbox_ref(Sandbox *s)
{
  s->refs++;
  return s;
}

void
sandbox_unref(Sandbox *s)
{
  if (!s || --s->refs > 0)
    return;
  sandbox_dispose(s);
  g_clear_object(&s->proc);
  vfd_config_unref(s->config);
  g_free(s->ready_report);
  g_free(s->name);
  g_clear_pointer(&s->labels, g_variant_unref);
  g_free(s->spec);
  g_free(s->failure_reason);
  g_string_free(s->serial_pending, TRUE);
  g_free(s->id);
  g_free(s->dir);
  g_free(s->qemu_dir);
  g_free(s->serial_log);
  g_array_unref(s->devices);
  g_ptr_array_unref(s->waiters);
  g_ptr_array_unref(s->stop_waiters);
  sandbox_launch_free(s->launch);
  g_free(s);
}

void
sandbox_reset_for_start(Sandbox *s)
{
  sandbox_end_watches(s);
  s->serial_offset = 0;
  g_string_truncate(s->serial_pending, 0);
  g_clear_object(&s->proc);
  s->pid = 0;
  s->exit_status = -1;
  s->stop_stage = 0;
  s->stop_requested = FALSE;
  s->ready = FALSE;
  g_clear_pointer(&s->ready_report, g_free);
  s->ready_ms = 0;
  s->workload_exited = FALSE;
  s->workload_exit_status = 0;
  s->workload_signal = 0;
  g_clear_pointer(&s->failure_reason, g_free);
  g_array_set_size(s->devices, 0);
  s->numa_node = -1;
  s->plan = (VfdAddressPlan){ 0 };
  s->cid = 0;
  s->created_us = g_get_monotonic_time();
}

/* The manager's table lets go of @p (a Sandbox): nothing acts on it any
 * more; operations still holding it keep its memory until they finish. */
void
sandbox_drop(gpointer p)
{
  sandbox_dispose(p);
  sandbox_unref(p);
}

Sandbox *
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
  s->stop_waiters = g_ptr_array_new_with_free_func(g_object_unref);
  s->created_us = g_get_monotonic_time();
  s->serial_pending = g_string_new(NULL);
  s->numa_node = -1;
  return s;
}

/* Sets the state and tells subscribed clients. */
void
sandbox_set_state(Sandbox *s, SandboxState state)
{
  s->state = state;
  /* A client that does not read would have the signal queued in vfiod's
   * memory, without bound: disconnect such clients first. */
  vfd_api_server_kick_slow(s->manager->api);
  if (s->manager->skeleton)
    vfd_manager1_emit_sandbox_state_changed(s->manager->skeleton, s->id, sandbox_state_names[state], s->ready);
}

/* ---- events (SandboxEvent, SandboxRemoved) ------------------------------- */

/* reason and message of an event: at most this many bytes, valid UTF-8. */
#define EVENT_TEXT_MAX 1024

static char *
event_text(const char *text)
{
  g_autofree char *valid = g_utf8_make_valid(text ? text : "", -1);
  const char *end;

  if (strlen(valid) <= EVENT_TEXT_MAX)
    return g_steal_pointer(&valid);
  /* Cut on a character boundary. */
  end = g_utf8_find_prev_char(valid, valid + EVENT_TEXT_MAX + 1);
  return g_strndup(valid, (gsize) (end - valid));
}

void
vfd_mgr_emit_event(VfdManager *m, const char *id, uid_t owner_uid, const char *stage, gint64 timestamp_usec,
                   const char *reason, const char *message)
{
  g_autofree char *r = event_text(reason);
  g_autofree char *msg = event_text(message);

  g_debug("sandbox %s: event %s (%s) %s", id, stage, r, msg);
  vfd_api_server_emit_to(m->api, (gint64) owner_uid, VFD_MANAGER_OBJECT_PATH, "org.vfiod.Manager1", "SandboxEvent",
                         g_variant_new("(ssxss)", id, stage, timestamp_usec, r, msg));
}

void
sandbox_event(Sandbox *s, const char *stage, const char *reason, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  vfd_mgr_emit_event(s->manager, s->id, s->owner_uid, stage, g_get_real_time(), reason, msg);
}

/* An event a worker saw, emitted on the main loop. */
typedef struct {
  VfdManager *m;
  char *id;
  uid_t owner_uid;
  char *stage;
  gint64 timestamp_usec;
  char *reason;
  char *message;
} PendingEvent;

static gboolean
pending_event_emit(gpointer data)
{
  PendingEvent *e = data;

  vfd_mgr_emit_event(e->m, e->id, e->owner_uid, e->stage, e->timestamp_usec, e->reason, e->message);
  return G_SOURCE_REMOVE;
}

static void
pending_event_free(gpointer data)
{
  PendingEvent *e = data;

  g_free(e->id);
  g_free(e->stage);
  g_free(e->reason);
  g_free(e->message);
  g_free(e);
}

void
sandbox_event_from_worker(Sandbox *s, const char *stage, const char *reason, const char *fmt, ...)
{
  PendingEvent *e = g_new0(PendingEvent, 1);
  va_list ap;

  e->m = s->manager;
  e->id = g_strdup(s->id);
  e->owner_uid = s->owner_uid;
  e->stage = g_strdup(stage);
  e->timestamp_usec = g_get_real_time();
  e->reason = g_strdup(reason);
  va_start(ap, fmt);
  e->message = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  /* The op's completion comes after this (same priority, queued later):
   * the stages reach clients in order. */
  g_main_context_invoke_full(g_main_context_default(), G_PRIORITY_DEFAULT, pending_event_emit, e,
                             pending_event_free);
}

void
sandbox_removed(Sandbox *s)
{
  sandbox_event(s, "removed", "", "%s", "");
  vfd_api_server_emit_to(s->manager->api, (gint64) s->owner_uid, VFD_MANAGER_OBJECT_PATH, "org.vfiod.Manager1",
                         "SandboxRemoved", g_variant_new("(ss)", s->id, s->name ? s->name : ""));
}

/* Refusals a guest can cause at will (invalid reports, report
 * connections over the limits) are logged at most 5 per 10 s, all kinds
 * together, so that a hostile guest cannot fill the log. */
static VfdLogLimit guest_log_limit = { .burst = 5, .interval_us = 10 * G_USEC_PER_SEC };

void
vfd_mgr_guest_warning(const char *fmt, ...)
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
void
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
    vfd_mgr_guest_warning("sandbox %s: ignored the guest's ready report (%s): %s; it began \"%s\"%s", s->id, channel,
                  error->message, preview, strlen(report) > 40 ? "..." : "");
    g_free(report);
    return;
  }
  s->ready = TRUE;
  s->ready_report = report;
  s->ready_ms = (g_get_monotonic_time() - s->created_us) / 1000;
  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: guest ready after %" G_GINT64_FORMAT " ms (%s)", s->id,
                 s->ready_ms, channel);
  sandbox_set_state(s, s->state);
  sandbox_event(s, "ready", channel, "%s", "");
}

/* The console is followed until guest-init's result (VFIOD_EXIT or
 * VFIOD_FATAL) is known. */
static gboolean
sandbox_console_done(Sandbox *s)
{
  return s->workload_exited || s->failure_reason;
}

/* Writes the result of @s into its journal record (when it has one), so a
 * restart of vfiod keeps it. Failures are logged. */
static void
journal_result(Sandbox *s)
{
  VfdManager *m = s->manager;
  VfdJournalSandbox *js;
  g_autoptr(GError) error = NULL;

  vfd_host_lock_journal(m->host);
  js = vfd_journal_lookup_sandbox(vfd_host_journal(m->host), s->id);
  if (js) {
    js->workload_exited = s->workload_exited;
    js->workload_exit_status = s->workload_exit_status;
    js->workload_signal = s->workload_signal;
    g_free(js->failure_reason);
    js->failure_reason = g_strdup(s->failure_reason);
    if (!vfd_journal_commit(vfd_host_journal(m->host), &error))
      g_warning("sandbox %s: the workload's result is not journaled: %s", s->id, error->message);
  }
  vfd_host_unlock_journal(m->host);
}

/* guest-init's VFIOD_EXIT (@tag 1) or VFIOD_FATAL (@tag 2) line, the text
 * after the tag in @text. The first valid one counts; later ones are
 * ignored. */
static void
sandbox_mark_result(Sandbox *s, guint tag, const char *text)
{
  g_autoptr(GError) error = NULL;

  if (sandbox_console_done(s))
    return;
  if (tag == 1) {
    if (!vfd_exit_report_parse(text, &s->workload_exit_status, &s->workload_signal, &error)) {
      vfd_mgr_guest_warning("sandbox %s: ignored the guest's exit report: %s", s->id, error->message);
      return;
    }
    s->workload_exited = TRUE;
    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: the workload exited with status %d, signal %d",
                   s->id, s->workload_exit_status, s->workload_signal);
    if (s->workload_signal > 0)
      sandbox_event(s, "workload-exited", "signal", "signal %d", s->workload_signal);
    else
      sandbox_event(s, "workload-exited", "exit", "status %d", s->workload_exit_status);
  } else {
    s->failure_reason = vfd_fatal_report_reason(text, 1024);
    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: guest-init failed: %s", s->id,
                   s->failure_reason);
    sandbox_event(s, "failed", "guest-init", "%s", s->failure_reason);
  }
  journal_result(s);
  if (s->serial_monitor)
    g_file_monitor_cancel(s->serial_monitor);
  if (s->serial_recheck) {
    g_source_remove(s->serial_recheck);
    s->serial_recheck = 0;
  }
  sandbox_set_state(s, s->state);
}

/* Reads what QEMU appended to the serial log since last time and looks
 * for guest-init's ready line, then for its result line. */
void
sandbox_check_serial(Sandbox *s)
{
  static const char *const tags[] = { VFD_REPORT_TAG, VFD_EXIT_TAG, VFD_FATAL_TAG, NULL };
  char buf[16384];
  gssize n;

  /* Through vfiod's own fd, opened when vfiod created the file: never the
   * path again (finding 5 of the audit: a link to /dev/zero spun vfiod). */
  if (sandbox_console_done(s) || s->serial_fd < 0)
    return;
  while ((n = pread(s->serial_fd, buf, sizeof buf, s->serial_offset)) > 0) {
    const char *data = buf;
    gsize len = (gsize) n;
    g_autofree char *text = NULL;
    guint tag;

    s->serial_offset += n;
    /* A report can be refused (sandbox_mark_ready): then the lines after
     * it, already read, are scanned too. */
    while (vfd_serial_scan_tags(s->serial_pending, data, len, tags, &tag, &text)) {
      if (tag == 0)
        sandbox_mark_ready(s, g_steal_pointer(&text), "console");
      else
        sandbox_mark_result(s, tag, text);
      g_clear_pointer(&text, g_free);
      data = "";
      len = 0;
      if (sandbox_console_done(s))
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
  if (sandbox_console_done(s) || s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED ||
      s->state == SANDBOX_EXITED) {
    s->serial_recheck = 0;
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* Cuts a console log back to nothing once it is larger than @max bytes (a
 * guest can write without end, and the runtime dir is RAM). QEMU writes
 * with O_APPEND, so it goes on at the new end. */
void
sandbox_cap_serial(Sandbox *s, guint64 max)
{
  struct stat st;
  char note[128];
  int len;

  if (s->serial_fd < 0 || fstat(s->serial_fd, &st) < 0 || (guint64) st.st_size <= max)
    return;
  sandbox_check_serial(s); /* do not miss the ready or result line */
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

/* Opens the console log of @s in its directory, never following a link:
 * created (@create, O_EXCL) or existing (an adopted sandbox). Keeps vfiod's
 * fd (read/write, append) in s->serial_fd. */
gboolean
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
int
sandbox_open_serial_for_qemu(Sandbox *s)
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
void
sandbox_watch_serial(Sandbox *s)
{
  g_autoptr(GFile) file = g_file_new_for_path(s->serial_log);

  sandbox_check_serial(s);
  if (sandbox_console_done(s))
    return;
  s->serial_monitor = g_file_monitor_file(file, G_FILE_MONITOR_NONE, NULL, NULL);
  if (s->serial_monitor) {
    g_file_monitor_set_rate_limit(s->serial_monitor, 100);
    g_signal_connect(s->serial_monitor, "changed", G_CALLBACK(on_serial_changed), s);
  }
  s->serial_recheck = g_timeout_add_seconds(2, on_serial_recheck, s);
  sandbox_check_serial(s);
}

GStrv
vfd_mgr_bdf_strv(GArray *bdfs)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  char buf[VFD_BDF_STRLEN];

  for (guint i = 0; i < bdfs->len; i++)
    g_strv_builder_add(b, vfd_bdf_format(&g_array_index(bdfs, VfdBdf, i), buf));
  return g_strv_builder_end(b);
}

/* Releases every IOMMU group the sandbox holds; logs what it could not. */
gboolean
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
void
vfd_mgr_remove_dir_tree(const char *dir)
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

/* ---- console logs kept after a sandbox is gone ---------------------------- */

/* <runtime_dir>/consoles: root's, 0700. */
static char *
consoles_dir(VfdManager *m)
{
  return g_build_filename(m->config->runtime_dir, "consoles", NULL);
}

typedef struct {
  char *name;
  gint64 mtime;
} KeptConsole;

static int
cmp_kept_newest_first(gconstpointer a, gconstpointer b)
{
  const KeptConsole *x = a, *y = b;

  if (x->mtime != y->mtime)
    return x->mtime > y->mtime ? -1 : 1;
  return g_strcmp0(x->name, y->name);
}

void
vfd_mgr_keep_console(VfdManager *m, const char *id, uid_t owner, const char *dir)
{
  g_autofree char *cdir = consoles_dir(m);
  g_autofree char *src = g_build_filename(dir, "serial.log", NULL);
  g_autofree char *leaf = g_strdup_printf("%s.%u.log", id, (unsigned) owner);
  g_autofree char *dst = g_build_filename(cdir, leaf, NULL);
  g_autoptr(GArray) kept = g_array_new(FALSE, TRUE, sizeof(KeptConsole));
  struct stat st;
  GDir *d;
  const char *e;
  int dfd;

  if (!vfd_journal_sandbox_id_valid(id) || (mkdir(cdir, 0700) < 0 && errno != EEXIST) || lstat(cdir, &st) < 0 ||
      !S_ISDIR(st.st_mode))
    return;
  if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
    return;
  if (rename(src, dst) < 0) {
    g_warning("sandbox %s: cannot keep its console log in %s: %s", id, cdir, g_strerror(errno));
    return;
  }
  /* the newest VFD_CONSOLES_KEPT stay */
  d = g_dir_open(cdir, 0, NULL);
  dfd = open(cdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  while (d && dfd >= 0 && (e = g_dir_read_name(d))) {
    KeptConsole k = { 0 };
    if (!g_str_has_suffix(e, ".log") || fstatat(dfd, e, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    k.name = g_strdup(e);
    k.mtime = (gint64) st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000;
    g_array_append_val(kept, k);
  }
  if (d)
    g_dir_close(d);
  g_array_sort(kept, cmp_kept_newest_first);
  for (guint i = 0; i < kept->len; i++) {
    KeptConsole *k = &g_array_index(kept, KeptConsole, i);
    if (i >= VFD_CONSOLES_KEPT && dfd >= 0)
      (void) unlinkat(dfd, k->name, 0);
    g_free(k->name);
  }
  if (dfd >= 0)
    close(dfd);
}

char *
vfd_mgr_kept_console_path(VfdManager *m, const char *id, uid_t *ret_owner)
{
  g_autofree char *cdir = consoles_dir(m);
  g_autofree char *prefix = g_strdup_printf("%s.", id);
  char *found = NULL;
  const char *e;
  GDir *d;

  if (!vfd_journal_sandbox_id_valid(id) || !(d = g_dir_open(cdir, 0, NULL)))
    return NULL;
  while (!found && (e = g_dir_read_name(d))) {
    guint64 uid;
    char *end = NULL;

    if (!g_str_has_prefix(e, prefix) || !g_str_has_suffix(e, ".log"))
      continue;
    uid = g_ascii_strtoull(e + strlen(prefix), &end, 10);
    if (!end || !g_str_equal(end, ".log") || end == e + strlen(prefix) || uid > G_MAXUINT32)
      continue;
    *ret_owner = (uid_t) uid;
    found = g_build_filename(cdir, e, NULL);
  }
  g_dir_close(d);
  return found;
}
