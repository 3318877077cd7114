/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "metrics.h"

static const char *const sandbox_states[] = { "creating", "running", "stopping", "stopped", "failed", "exited" };

G_STATIC_ASSERT(G_N_ELEMENTS(sandbox_states) == G_N_ELEMENTS(((VfdMetrics *) 0)->sandboxes));

void
vfd_metric_op_add(VfdMetricOp *op, gboolean ok, double seconds)
{
  if (!ok) {
    op->failed++;
    return;
  }
  op->ok++;
  op->seconds_sum += seconds;
}

static void
format_op(GString *s, const char *name, const char *what, const VfdMetricOp *op)
{
  char sum[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append_printf(s, "# HELP vfiod_%s_total %s, by result.\n# TYPE vfiod_%s_total counter\n", name, what, name);
  g_string_append_printf(s, "vfiod_%s_total{result=\"ok\"} %" G_GUINT64_FORMAT "\n", name, op->ok);
  g_string_append_printf(s, "vfiod_%s_total{result=\"failed\"} %" G_GUINT64_FORMAT "\n", name, op->failed);
  g_string_append_printf(s, "# HELP vfiod_%s_seconds Time the successful ones took.\n# TYPE vfiod_%s_seconds summary\n",
                         name, name);
  g_string_append_printf(s, "vfiod_%s_seconds_sum %s\n", name, g_ascii_formatd(sum, sizeof sum, "%.6f", op->seconds_sum));
  g_string_append_printf(s, "vfiod_%s_seconds_count %" G_GUINT64_FORMAT "\n", name, op->ok);
}

char *
vfd_metrics_format(const VfdMetrics *m)
{
  GString *s = g_string_new(NULL);

  g_string_append(s, "# HELP vfiod_devices Devices in vfiod's journal, by state.\n# TYPE vfiod_devices gauge\n");
  for (int st = VFD_DEVICE_STATE_BINDING; st <= VFD_DEVICE_STATE_STUCK; st++)
    g_string_append_printf(s, "vfiod_devices{state=\"%s\"} %u\n", vfd_device_state_to_string((VfdDeviceState) st),
                           m->devices[st]);
  g_string_append(s, "# HELP vfiod_stuck_devices Devices whose sysfs write never returned (need an operator).\n"
                     "# TYPE vfiod_stuck_devices gauge\n");
  g_string_append_printf(s, "vfiod_stuck_devices %u\n", m->devices[VFD_DEVICE_STATE_STUCK]);
  g_string_append(s, "# HELP vfiod_sandboxes Sandboxes, by state.\n# TYPE vfiod_sandboxes gauge\n");
  for (guint i = 0; i < G_N_ELEMENTS(sandbox_states); i++)
    g_string_append_printf(s, "vfiod_sandboxes{state=\"%s\"} %u\n", sandbox_states[i], m->sandboxes[i]);
  format_op(s, "create", "Sandbox creates (request to QEMU started)", &m->create);
  format_op(s, "bind", "IOMMU group binds asked through the API", &m->bind);
  format_op(s, "release", "IOMMU group releases asked through the API", &m->release);
  return g_string_free(s, FALSE);
}

gboolean
vfd_metrics_write(const char *path, const char *text, GError **error)
{
  return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}
