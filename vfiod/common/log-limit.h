/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* A log rate limit: at most @burst messages of one kind per window of
 * @interval_us microseconds (monotonic time); the rest are counted and the
 * next message allowed says how many were suppressed. For refusal paths
 * that someone else can trigger at will (a hostile guest, a client): they
 * must not fill the log. Not thread-safe: one per kind, used on the main
 * loop. Zero-initialise, set burst and interval_us:
 *
 *   static VfdLogLimit limit = { .burst = 5, .interval_us = 10 * G_USEC_PER_SEC };
 *   guint suppressed;
 *   if (vfd_log_limit_allow(&limit, g_get_monotonic_time(), &suppressed))
 *     g_warning("...%s", ...);  (mention suppressed when > 0)
 */
typedef struct {
  guint burst;         /* messages allowed per window (0 counts as 1) */
  gint64 interval_us;  /* window length */
  gint64 window_start; /* monotonic us; private */
  guint in_window;     /* private */
  guint suppressed;    /* private: refused since the last allowed message */
} VfdLogLimit;

/* TRUE when a message may be logged at @now_us (g_get_monotonic_time());
 * then *@ret_suppressed (may be NULL) is the number of messages refused
 * since the last allowed one, and that count starts again at 0. FALSE:
 * counted as suppressed. */
gboolean vfd_log_limit_allow(VfdLogLimit *limit, gint64 now_us, guint *ret_suppressed);
