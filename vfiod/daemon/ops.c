/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device work off the main loop: an operation (Op, manager-private.h) runs
 * its work on a worker thread of GLib's pool, then its completion back on
 * the main loop. */
#include "manager-private.h"

#include <unistd.h>

void
vfd_mgr_op_free(gpointer p)
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
  if (op->layer_fd >= 0)
    close(op->layer_fd);
  g_clear_pointer(&op->live, g_hash_table_unref);
  g_clear_pointer(&op->disks, g_ptr_array_unref);
  g_free(op->cmd);
  g_strfreev(op->args);
  g_clear_pointer(&op->env, g_variant_unref);
  g_clear_pointer(&op->files, g_variant_unref);
  g_clear_pointer(&op->report, g_ptr_array_unref);
  g_free(op);
}

Op *
vfd_mgr_op_new(VfdManager *m, GDBusMethodInvocation *inv, OpWork work, OpDone done)
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
  op->kernel_fd = op->initrd_fd = op->layer_fd = -1;
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

void
vfd_mgr_op_run(Op *op)
{
  g_autoptr(GTask) task = g_task_new(NULL, NULL, op_finished, NULL);

  g_task_set_task_data(task, op, vfd_mgr_op_free);
  g_task_run_in_thread(task, op_thread);
}

double
vfd_mgr_op_seconds(Op *op)
{
  return (double) (g_get_monotonic_time() - op->started_us) / G_USEC_PER_SEC;
}
