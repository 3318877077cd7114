/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "guest-init/protocol.h"

/* The workload's words on the guest kernel command line: vfiod.cmd=,
 * vfiod.arg= and vfiod.env=, which guest-init turns into the workload's
 * argv and environment. What may travel there, and how much, is
 * guest-init/protocol.h's (shared with guest-init's parser); this file
 * checks a client's request against it and writes the words.
 *
 * The rules (issue 13, finding 4: a byte the guest kernel splits on, or a
 * quote, would let a value start a word of its own, e.g. rdinit=/evil or a
 * second vfiod.root=):
 *  - cmd: an absolute path without empty, "." or ".." components and
 *    without a trailing '/', printable ASCII 0x21-0x7e but '"' and '\\' (no
 *    blank), at most VFIOD_CMDLINE_MAX_VALUE (256) bytes; sent unquoted;
 *  - args: at most VFIOD_CMDLINE_MAX_ARGS (16), each printable ASCII
 *    0x20-0x7e but '"' and '\\' (blanks allowed: the word is quoted), at
 *    most 256 bytes, may be empty; only with a cmd;
 *  - env: at most VFIOD_CMDLINE_MAX_ENV (16) entries, NAME
 *    [A-Za-z_][A-Za-z0-9_]* given once, VALUE as an argument, NAME=VALUE at
 *    most 256 bytes; sent quoted;
 *  - all the words together, each with its quotes and the blank before it,
 *    at most VFIOD_CMDLINE_WORKLOAD_MAX (1535) bytes: the rest of x86's 2047
 *    is reserved for vfiod's own words (VFIOD_CMDLINE_RESERVED). */

/* Checks a CreateSandbox request's workload against the rules above.
 * @cmd: the "cmd" option or NULL; @args: the "args" option (NULL-terminated,
 * may be NULL); @env: the "env" option (a GVariant of type a{ss}) or NULL.
 * Errors: VFD_ERROR_INVALID_ARGUMENT, the message naming the entry
 * ("cmd", "args[2]", "env FOO") and the rule it breaks, with the offending
 * byte and offset for a byte outside the allow-list; the value is quoted
 * escaped (C escapes, ASCII only) and cut at 48 bytes. */
gboolean vfd_guest_cmdline_check_workload(const char *cmd, const char *const *args, GVariant *env,
                                          GError **error);

/* Bytes the workload's words take on the command line, each counted with
 * its quotes and the blank before it (what VFIOD_CMDLINE_WORKLOAD_MAX
 * bounds). Same arguments as vfd_guest_cmdline_check_workload(); no check. */
gsize vfd_guest_cmdline_workload_len(const char *cmd, const char *const *args, GVariant *env);

/* Checks the workload (vfd_guest_cmdline_check_workload()) and, when it
 * passes, appends its words to @words, in this order: vfiod.cmd=CMD (when
 * @cmd), one "vfiod.arg=ARG" per argument, one "vfiod.env=NAME=VALUE" per
 * @env entry (in @env's order); the arg and env words with their double
 * quotes. On error nothing is appended. */
gboolean vfd_guest_cmdline_add_workload(GStrvBuilder *words, const char *cmd, const char *const *args, GVariant *env,
                                        GError **error);
