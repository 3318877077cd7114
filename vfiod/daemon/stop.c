/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sandbox's end: graceful stop step by step, QEMU's exit (its devices
 * given back on a worker), deletes answered once the sandbox is gone. */
#include "manager-private.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log-fields.h"
#include "qmp.h"

static void sandbox_signal(Sandbox *s, int sig);
static gboolean on_kill_timeout(gpointer data);

static char *
qmp_path(Sandbox *s)
{
  return g_build_filename(s->qemu_dir, "qmp.sock", NULL);
}

/* Worker: ask the guest to power off (QMP, or libvirt under [vm] backend =
 * libvirt). Fails when QMP or libvirt cannot be reached. */
static gboolean
powerdown_work(Op *op, GError **error)
{
  g_autofree char *path = qmp_path(op->sandbox);
  g_autoptr(GError) key_error = NULL;

  if (op->sandbox->config->vm_libvirt)
    return vfd_mgr_libvirt_shutdown(op->m, op->sandbox, error);
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

  if (op->sandbox->config->vm_libvirt)
    return vfd_mgr_libvirt_destroy(op->m, op->sandbox, TRUE, error);
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

void
vfd_mgr_stop_begin(Sandbox *s)
{
  Op *op = vfd_mgr_op_new(s->manager, NULL, powerdown_work, stop_step_done);

  vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: stopping (asking the guest to power off)", s->id);
  s->stop_stage = 0;
  op->sandbox = sandbox_ref(s);
  vfd_mgr_op_run(op);
}

static void
stop_escalate(Sandbox *s)
{
  if (s->stop_stage == 0) {
    Op *op = vfd_mgr_op_new(s->manager, NULL, quit_work, stop_step_done);
    g_message("sandbox %s: the guest did not power off within %u s; asking QEMU to quit", s->id,
              s->manager->config->qemu_stop_timeout_s);
    s->stop_stage = 1;
    op->sandbox = sandbox_ref(s);
    vfd_mgr_op_run(op);
  } else {
    g_warning("sandbox %s: QEMU did not quit; sending SIGKILL", s->id);
    s->stop_stage = 2;
    sandbox_signal(s, SIGKILL);
  }
}

static gboolean
release_sandbox_work(Op *op, GError **error)
{
  vfd_mgr_net_teardown(op->m, op->sandbox);
  return sandbox_release_devices(op->sandbox, error);
}

/* Answers the pending StopSandbox calls of @s (with @error, or the
 * sandbox). */
static void
finish_stops(Sandbox *s, GError *error)
{
  VfdManager *m = s->manager;
  g_autoptr(GPtrArray) waiters = g_steal_pointer(&s->stop_waiters);

  s->stop_waiters = g_ptr_array_new_with_free_func(g_object_unref);
  for (guint i = 0; i < waiters->len; i++) {
    GDBusMethodInvocation *inv = g_object_ref(g_ptr_array_index(waiters, i));
    if (!error)
      vfd_manager1_complete_stop_sandbox(m->skeleton, inv, vfd_mgr_sandbox_to_variant(s));
    else
      vfd_mgr_return_error(inv, error);
  }
}

/* Answers the pending deletes of @s; on success the sandbox is gone. */
void
vfd_mgr_finish_deletes(Sandbox *s, GError *error)
{
  VfdManager *m = s->manager;
  g_autoptr(GPtrArray) waiters = g_steal_pointer(&s->waiters);

  s->waiters = g_ptr_array_new_with_free_func(g_object_unref);
  /* The directory goes before the answer: a client that sees the delete
   * done finds nothing left. */
  if (!error && waiters->len > 0) {
    vfd_mgr_keep_console(m, s->id, s->owner_uid, s->dir);
    vfd_mgr_remove_dir_tree(s->dir);
  }
  for (guint i = 0; i < waiters->len; i++) {
    GDBusMethodInvocation *inv = g_object_ref(g_ptr_array_index(waiters, i));
    if (!error)
      vfd_manager1_complete_delete_sandbox(m->skeleton, inv);
    else
      vfd_mgr_return_error(inv, error);
  }
  if (!error && waiters->len > 0) {
    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, NULL, NULL, "sandbox %s: deleted", s->id);
    sandbox_removed(s);
    g_hash_table_remove(m->sandboxes, s->id);
  }
}

static void
exit_release_done(Op *op, GError *error)
{
  Sandbox *s = op->sandbox;
  VfdManager *m = s->manager;

  /* Stopped on request: stopped. Else what guest-init reported: the
   * workload exited (exited) or set-up failed (failed); else it powered
   * off cleanly (stopped) or QEMU failed (failed). */
  if (s->deleting || s->stop_requested)
    sandbox_set_state(s, SANDBOX_STOPPED);
  else if (s->failure_reason)
    sandbox_set_state(s, SANDBOX_FAILED);
  else if (s->workload_exited)
    sandbox_set_state(s, SANDBOX_EXITED);
  else if (s->exit_status == 0)
    sandbox_set_state(s, SANDBOX_STOPPED);
  else {
    sandbox_set_state(s, SANDBOX_FAILED);
    sandbox_event(s, "failed", "qemu", "exit status %d", s->exit_status);
  }
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
    g_auto(GStrv) devs = vfd_mgr_bdf_strv(s->devices);

    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, s->id, (const char *const *) devs, "sandbox %s: devices released", s->id);
  }
  if (!s->deleting && s->stop_requested)
    sandbox_event(s, "stopped", "stop", "%s", "");
  finish_stops(s, error);
  vfd_mgr_finish_deletes(s, error);
}

/* StopSandbox: see manager-private.h. */
void
vfd_mgr_stop_request(Sandbox *s, GDBusMethodInvocation *inv)
{
  g_autoptr(GError) error = NULL;

  if (s->deleting || s->state == SANDBOX_CREATING)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_BUSY, "sandbox %s is being %s; stop it once that is done", s->id,
                s->deleting ? "deleted" : "created or started");
  if (error) {
    vfd_mgr_return_error(inv, error);
    return;
  }
  if (s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED || s->state == SANDBOX_EXITED) {
    vfd_manager1_complete_stop_sandbox(s->manager->skeleton, inv, vfd_mgr_sandbox_to_variant(s));
    return;
  }
  g_ptr_array_add(s->stop_waiters, inv); /* the handler's reference */
  s->stop_requested = TRUE;
  if (s->state == SANDBOX_RUNNING) {
    sandbox_set_state(s, SANDBOX_STOPPING);
    sandbox_event(s, "stopping", "stop", "%s", "");
    vfd_mgr_stop_begin(s);
  }
  /* STOPPING: a stop is under way; answered when it ends */
}

/* QEMU is gone: see manager-private.h. */
void
vfd_mgr_vm_gone(Sandbox *s, int exit_status)
{
  Op *op;

  if (s->vm_gone || s->disposed)
    return;
  s->vm_gone = TRUE;
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
  /* guest-init's last lines (VFIOD_EXIT, VFIOD_FATAL) came just before
   * the power-off: read them before the state says how it ended. */
  sandbox_check_serial(s);
  /* A delete announced its stop already. */
  if (s->state != SANDBOX_STOPPING)
    sandbox_event(s, "stopping", "qemu-exited", "exit status %d", exit_status);
  sandbox_set_state(s, SANDBOX_STOPPING);
  s->exit_status = exit_status;
  op = vfd_mgr_op_new(s->manager, NULL, release_sandbox_work, exit_release_done);
  op->sandbox = sandbox_ref(s);
  vfd_mgr_op_run(op);
}

void
vfd_mgr_on_qemu_wait(GObject *source, GAsyncResult *res, gpointer data)
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
      vfd_mgr_vm_gone(s, status);
      return;
    }
}

gboolean
vfd_mgr_on_pidfd_ready(gint fd, GIOCondition cond, gpointer data)
{
  Sandbox *s = data;

  s->pidfd_source = 0;
  vfd_mgr_vm_gone(s, -1);
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

static void
delete_stopped_done(Op *op, GError *error)
{
  sandbox_set_state(op->sandbox, SANDBOX_STOPPED);
  vfd_mgr_finish_deletes(op->sandbox, error);
}

/* DeleteSandbox, once the handler has checked the caller: see
 * manager-private.h. */
void
vfd_mgr_delete_begin(Sandbox *s, GDBusMethodInvocation *inv, gboolean creating)
{
  VfdManager *m = s->manager;

  g_ptr_array_add(s->waiters, inv); /* the handler's reference */
  s->deleting = TRUE;
  if (creating)
    return; /* create_done stops it, or answers when the create failed */
  if ((s->state == SANDBOX_STOPPED || s->state == SANDBOX_FAILED || s->state == SANDBOX_EXITED) &&
      s->waiters->len == 1) {
    /* QEMU is gone and its devices were released then; retry any release
     * that failed, then forget the sandbox. */
    Op *op = vfd_mgr_op_new(m, NULL, release_sandbox_work, delete_stopped_done);
    op->sandbox = sandbox_ref(s);
    sandbox_set_state(s, SANDBOX_STOPPING);
    sandbox_event(s, "stopping", "delete", "%s", "");
    vfd_mgr_op_run(op);
  } else if (s->state == SANDBOX_RUNNING) {
    sandbox_set_state(s, SANDBOX_STOPPING);
    sandbox_event(s, "stopping", "delete", "%s", "");
    vfd_mgr_stop_begin(s);
  }
}
