/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "device.h"

/* One thing reconciliation found or did. */
typedef struct {
  char *subject; /* a BDF or a sandbox id */
  char *action;  /* "adopted", "restored", "finished", "kept", "in-use",
                  * "stuck", "unknown", "failed", "refused" (a journal
                  * entry vfiod would not act on) */
  char *detail;  /* one sentence for a human */
} VfdReconcileItem;

void vfd_reconcile_item_free(VfdReconcileItem *item);

/* Appends an item (printf-style detail) to @report (GPtrArray of
 * VfdReconcileItem). */
void vfd_reconcile_add(GPtrArray *report, const char *subject, const char *action, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* New empty report. */
GPtrArray *vfd_reconcile_report_new(void);

/* Brings every device the journal knows to a settled state, and reports
 * devices on vfio-pci that it does not know:
 *  - "binding"/"releasing" (a transition cut short): restored to the
 *    original driver and override (idempotent) -> "finished";
 *  - "bound" for an owner named like a sandbox ("sb-...") that is not in
 *    @live_sandboxes: restored -> "restored";
 *  - "bound" for a live sandbox -> "in-use"; for the owner "pool": nothing
 *    (vfd_pool_apply() of pool.h checks and reports those); for another
 *    owner (an operator's bind) -> "kept";
 *  - "stuck": left alone -> "stuck";
 *  - on vfio-pci but not journaled: left alone -> "unknown".
 * A restore that fails -> "failed" (its record stays). Takes each group's
 * lock, so an operation in progress finishes first. Safe on any thread.
 * @live_sandboxes: set of sandbox ids (char*) whose QEMU runs.
 * *@ret_scan_us (may be NULL): microseconds spent in the PCI scan (libpci)
 * that looks for devices on vfio-pci the journal does not know. */
void vfd_reconcile_devices(VfdHost *host, GHashTable *live_sandboxes, GPtrArray *report, gint64 *ret_scan_us);

/* Checks the directory @dir that the journal names for sandbox @id before
 * vfiod deletes it recursively at start-up (the journal on disk may have
 * been tampered with): @id must have the form vfiod generates
 * (vfd_journal_sandbox_id_valid(), "sb-" + 8 lower-case hex digits) and
 * @dir must be exactly g_build_filename(@sandboxes_dir, @id), the path
 * vfiod made for it (<[daemon] runtime_dir>/sandboxes/<id>). Compares the
 * strings only; touches no file. FALSE with VFD_ERROR_INVALID_ARGUMENT
 * naming both paths otherwise (also when the runtime dir changed since). */
gboolean vfd_reconcile_check_sandbox_dir(const char *sandboxes_dir, const char *id, const char *dir,
                                         GError **error);
