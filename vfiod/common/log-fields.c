/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log-fields.h"

/* syslog(3) priorities of GLib's levels, as g_log_structured() gives them. */
static const char *
priority_of(GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "3";
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    return "4";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "5";
  if (level & G_LOG_LEVEL_INFO)
    return "6";
  return "7";
}

void
vfd_log_fields(GLogLevelFlags level, const char *sandbox, const char *owner, const char *const *bdfs,
               const char *format, ...)
{
  /* PRIORITY, MESSAGE, VFIOD_SANDBOX, VFIOD_OWNER and up to 16 BDFs (a
   * sandbox holds at most a board's functions; more are not named). */
  GLogField fields[4 + 16];
  g_autofree char *message = NULL;
  gsize n = 0;
  va_list ap;

  va_start(ap, format);
  message = g_strdup_vprintf(format, ap);
  va_end(ap);
  fields[n++] = (GLogField){ "PRIORITY", priority_of(level), -1 };
  fields[n++] = (GLogField){ "MESSAGE", message, -1 };
  if (sandbox)
    fields[n++] = (GLogField){ "VFIOD_SANDBOX", sandbox, -1 };
  if (owner)
    fields[n++] = (GLogField){ "VFIOD_OWNER", owner, -1 };
  for (gsize i = 0; bdfs && bdfs[i] && n < G_N_ELEMENTS(fields); i++)
    fields[n++] = (GLogField){ "VFIOD_BDF", bdfs[i], -1 };
  g_log_structured_array(level, fields, n);
}
