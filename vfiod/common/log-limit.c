/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log-limit.h"

gboolean
vfd_log_limit_allow(VfdLogLimit *limit, gint64 now_us, guint *ret_suppressed)
{
  if (limit->in_window == 0 || now_us - limit->window_start >= limit->interval_us || now_us < limit->window_start) {
    limit->window_start = now_us;
    limit->in_window = 0;
  }
  if (limit->in_window >= MAX(limit->burst, 1u)) {
    limit->suppressed++;
    return FALSE;
  }
  limit->in_window++;
  if (ret_suppressed)
    *ret_suppressed = limit->suppressed;
  limit->suppressed = 0;
  return TRUE;
}
