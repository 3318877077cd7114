/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reconciliation as the manager runs it: at start-up (journaled sandboxes
 * adopted or their devices restored), and for the Reconcile call (devices,
 * pool, network). The rules themselves are in reconcile.c. */
#include "manager-private.h"

#include <glib-unix.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log-fields.h"
#include "tap.h"

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
void
vfd_mgr_reconcile_sandboxes(VfdManager *m, GPtrArray *report, guint *ret_restored, gint64 *ret_restore_us)
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
    s->name = g_strdup(js->name);
    s->spec = g_strdup(js->spec);
    if (js->labels && js->labels[0]) {
      GVariantBuilder lb;
      g_variant_builder_init(&lb, G_VARIANT_TYPE("a{ss}"));
      for (char **l = js->labels; l[0] && l[1]; l += 2)
        g_variant_builder_add(&lb, "{ss}", l[0], l[1]);
      s->labels = g_variant_ref_sink(g_variant_builder_end(&lb));
    }
    s->workload_exited = js->workload_exited;
    s->workload_exit_status = js->workload_exit_status;
    s->workload_signal = js->workload_signal;
    s->failure_reason = g_strdup(js->failure_reason);
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
      s->pidfd_source = g_unix_fd_add(s->pidfd, G_IO_IN, vfd_mgr_on_pidfd_ready, s);
      g_hash_table_insert(m->sandboxes, s->id, s);
      /* Its name again; a journal naming two live sandboxes alike (edited
       * by hand) keeps the first, the other is found by its id only. */
      if (s->name && !g_hash_table_contains(m->names, s->name))
        g_hash_table_insert(m->names, s->name, s);
      else if (s->name)
        g_warning("sandbox %s: its name '%s' is taken by another sandbox; found by its id only", s->id, s->name);
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
      if (m->config->vm_libvirt)
        vfd_reconcile_add(report, s->id, "adopted", "QEMU pid %" G_GINT64_FORMAT " still runs; adopted as it is (%s)",
                          s->pid, vfd_mgr_libvirt_has_domain(m, s->id) ? "its libvirt domain runs"
                                                                         : "libvirt does not list its domain now");
      else
        vfd_reconcile_add(report, s->id, "adopted", "QEMU pid %" G_GINT64_FORMAT " still runs; adopted as it is",
                          s->pid);
      continue;
    }
    pidfile = g_build_filename(s->qemu_dir, "qemu.pid", NULL);
    orphan = js->pid == 0 ? vfd_qemu_find_pid(pidfile, s->id) : 0;
    if (orphan > 0)
      kill_orphan_qemu(s->id, orphan);
    if (m->config->vm_libvirt)
      vfd_mgr_libvirt_forget(m, s->id); /* a transient domain ends with its QEMU; one left defined does not */
    if (s->has_net && m->pool)
      vfd_mgr_net_teardown(m, s);
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
      vfd_mgr_keep_console(m, s->id, s->owner_uid, s->dir);
      vfd_mgr_remove_dir_tree(s->dir);
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
      vfd_mgr_remove_dir_tree(path);
      vfd_reconcile_add(report, name, "restored", "removed the directory of a sandbox that was never started");
    }
  }
}

GHashTable *
vfd_mgr_live_sandbox_ids(VfdManager *m)
{
  GHashTable *live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    if (s->state != SANDBOX_STOPPED && s->state != SANDBOX_FAILED && s->state != SANDBOX_EXITED)
      g_hash_table_add(live, g_strdup(s->id));
  /* A sandbox being created owns what it has bound so far (issue 14,
   * defect 1: a reconcile then released the devices under its QEMU). */
  g_hash_table_iter_init(&it, m->creating);
  while (g_hash_table_iter_next(&it, (gpointer *) &s, NULL))
    g_hash_table_add(live, g_strdup((const char *) s));
  return live;
}

void
vfd_mgr_log_report(GPtrArray *report)
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
void
vfd_mgr_reconcile_network(VfdManager *m, GPtrArray *report)
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

gboolean
vfd_mgr_reconcile_work(Op *op, GError **error)
{
  vfd_reconcile_devices(op->m->host, op->live, op->report, NULL);
  vfd_mgr_libvirt_reconcile(op->m, op->live, op->report, FALSE);
  vfd_mgr_pool_sync(op->m, op->report);
  vfd_mgr_reconcile_network(op->m, op->report);
  return TRUE;
}

void
vfd_mgr_reconcile_done(Op *op, GError *error)
{
  vfd_mgr_log_report(op->report);
  vfd_manager1_complete_reconcile(op->m->skeleton, g_steal_pointer(&op->inv), report_to_variant(op->report));
}
