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
 * @expected_pid: the QEMU the socket must belong to (SO_PEERCRED of the
 *   connected socket); <= 0: not checked (tests).
 * @timeout_ms: for the whole exchange.
 * QEMU may be compromised by its guest: its lines are read at most 64 KiB
 * each and 1 MiB per exchange, JSON nested more than 32 deep is skipped
 * unparsed, and the deadline holds however QEMU drips its bytes.
 * Errors: G_IO_ERROR (cannot connect, timeout, too much data, QEMU closed
 * the socket), VFD_ERROR_FAILED with QEMU's error description when it
 * answers "error", or when the socket is served by another process. */
gboolean vfd_qmp_execute(const char *socket_path, gint64 expected_pid, const char *command, guint timeout_ms,
                         GError **error);
