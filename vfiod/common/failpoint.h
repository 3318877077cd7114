/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Crash points for the crash-matrix test (TEST ONLY). When the environment
 * variable VFIOD_CRASH_AT=N (N >= 1) is set, the N-th call of
 * vfd_failpoint() in this process kills the process with SIGKILL, as a
 * power cut or OOM kill would. Every journal commit and every sysfs write is
 * preceded by one. With the variable unset this costs one branch.
 * VFIOD_CRASH_LOG=PATH appends "N name" per crash point passed, so a test
 * can count them. */
void vfd_failpoint(const char *name);

/* Injected failures for tests (TEST ONLY): returns TRUE (and sets @error,
 * VFD_ERROR_FAILED "injected failure at <name>") when the environment
 * variable VFIOD_FAIL_STAGE equals @name. Used at each stage of sandbox
 * creation so a test can check that a failure there leaves nothing behind. */
#include <glib.h>
gboolean vfd_fail_stage(const char *name, GError **error);

/* Pauses for tests (TEST ONLY): when VFIOD_PAUSE_STAGE equals @name and
 * VFIOD_PAUSE_FILE names a file, waits (on the calling worker thread) while
 * that file exists, at most 30 s; so that a test can act while a create is
 * half-way. Unset: returns at once. */
void vfd_pause_stage(const char *name);
