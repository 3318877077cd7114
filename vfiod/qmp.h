/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

/* A minimal QMP (QEMU Machine Protocol) client for the per-sandbox socket:
 * connect, read the greeting, negotiate (qmp_capabilities), run one command
 * and read its answer (events in between are skipped). Blocking with a
 * deadline: call it from a worker thread.
 * @command: a QMP command name without arguments, e.g. "system_powerdown",
 *   or a complete JSON object such as
 *   {"execute":"send-key","arguments":{"keys":[...]}}.
 * @timeout_ms: for the whole exchange.
 * Errors: G_IO_ERROR (cannot connect, timeout, QEMU closed the socket),
 * VFD_ERROR_FAILED with QEMU's error description when it answers "error". */
gboolean vfd_qmp_execute(const char *socket_path, const char *command, guint timeout_ms, GError **error);
