/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfiod's metrics as a node_exporter textfile-collector file
 * ([daemon] metrics_file): the Prometheus text format, written atomically. */

#include <glib.h>

#include "journal.h"

/* One kind of operation: how many finished, how many failed, and the time
 * the successful ones took (seconds, summed). */
typedef struct {
  guint64 ok;
  guint64 failed;
  double seconds_sum;
} VfdMetricOp;

typedef struct {
  guint devices[VFD_DEVICE_STATE_STUCK + 1]; /* journaled devices by state (index: VfdDeviceState) */
  guint sandboxes[6];                        /* by state: creating, running, stopping, stopped, failed, exited */
  VfdMetricOp create;                        /* CreateSandbox: request to QEMU started */
  VfdMetricOp bind;                          /* BindDevice: a whole IOMMU group */
  VfdMetricOp release;                       /* ReleaseDevice */
} VfdMetrics;

/* Counts one operation of @op that took @seconds (when @ok). */
void vfd_metric_op_add(VfdMetricOp *op, gboolean ok, double seconds);

/* The text of the file: for each metric a HELP and a TYPE line, then its
 * samples: vfiod_devices{state="..."} (gauge, every state, 0 included),
 * vfiod_stuck_devices (gauge), vfiod_sandboxes{state="..."} (gauge),
 * vfiod_<op>_total{result="ok|failed"} (counter) and
 * vfiod_<op>_seconds_sum / _count (summary of the successful ones) for
 * op = create, bind, release. Newly allocated. */
char *vfd_metrics_format(const VfdMetrics *metrics);

/* Writes @text to @path atomically (temp file + rename, mode 0644, so
 * that the collector never reads half a file). G_FILE_ERROR on failure. */
gboolean vfd_metrics_write(const char *path, const char *text, GError **error);
