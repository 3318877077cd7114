/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's life after start-up, shared by vfiod, the crash-test daemon
 * (tests/crash/vfiod-fake) and the benchmark daemon (bench/bench-daemon):
 * one main loop, the same signals, the same systemd notifications. */

#include "manager.h"

/* Runs the main loop of @manager (vfd_manager_start() done) until SIGTERM
 * or SIGINT: running sandboxes keep running (they are adopted at the next
 * start). SIGHUP reloads the configuration from @config_path
 * (vfd_manager_reload(); a bad one is refused with a warning and the old
 * one stays; NULL: nothing to reload, a warning). Tells systemd READY=1
 * when the loop starts, RELOADING=1/READY=1 around a reload and
 * STOPPING=1 (sd_notify(): nothing happens outside systemd). Returns the
 * exit status: 0. */
int vfd_daemon_run(VfdManager *manager, const char *config_path);
