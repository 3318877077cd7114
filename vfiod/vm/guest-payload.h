/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "guest-init/payload.h"

/* The workload's payload (guest-init/payload.h): the command, arguments,
 * environment and files a CreateSandbox request gives, checked and written
 * in the format guest-init parses, for QEMU to hand the guest as the fw_cfg
 * file VFIOD_PAYLOAD_FW_CFG_NAME. Nothing of it goes on the guest kernel
 * command line (which only gets vfiod.payload=BYTES) or on QEMU's command
 * line (which names a memfd, /proc/self/fd/N), so none of it shows in the
 * host's process list.
 *
 * The rules (each refusal VFD_ERROR_INVALID_ARGUMENT naming the entry,
 * e.g. "args[2]", "env FOO", "files[1] (/etc/x)", and the rule):
 *  - cmd: an absolute path without empty, "." or ".." components, no
 *    trailing '/', no control byte, at most VFIOD_PAYLOAD_MAX_PATH bytes;
 *  - args: only with a cmd; any text (D-Bus strings hold no NUL), each at
 *    most VFIOD_PAYLOAD_MAX_STRING bytes;
 *  - env: a{ss}, NAME [A-Za-z_][A-Za-z0-9_]*, NAME=VALUE at most
 *    VFIOD_PAYLOAD_MAX_STRING bytes; only with a cmd;
 *  - cmd, args and env together at most VFIOD_PAYLOAD_MAX_EXEC bytes;
 *  - files: aa{sv}, each {"path": s (as cmd), "contents": ay, "mode": u
 *    (permission bits, at most 0777; default 0600)}, no other key, a path
 *    once, at most VFIOD_PAYLOAD_MAX_FILES;
 *  - the whole payload at most VFIOD_PAYLOAD_MAX bytes (the API's request
 *    bound, 1 MiB, comes first in practice).
 * How many entries a request may hold is also bounded by the API
 * (api-limits.h: 64 per array). */

/* Checks a request's workload against the rules above. @cmd: the "cmd"
 * option or NULL; @args: the "args" option (NULL-terminated, may be NULL);
 * @env: the "env" option (a{ss}) or NULL; @files: the "files" option
 * (aa{sv}) or NULL. */
gboolean vfd_guest_payload_check(const char *cmd, const char *const *args, GVariant *env, GVariant *files,
                                 GError **error);

/* Checks (vfd_guest_payload_check()) and writes the payload: its bytes, or
 * NULL without an error when there is nothing to send (no cmd, no files).
 * Records in the order given: cmd, args, env (in @env's order), files. */
GBytes *vfd_guest_payload_build(const char *cmd, const char *const *args, GVariant *env, GVariant *files,
                                GError **error);

/* A sealed memfd (no write, grow, shrink or seal after this) holding
 * @payload, offset 0, close-on-exec: the fd QEMU reads the fw_cfg file
 * from. -1 with VFD_ERROR_FAILED naming the step on failure. */
int vfd_guest_payload_memfd(GBytes *payload, GError **error);
