/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The guest's kernel command line, as far as guest-init cares: the
 * "vfiod.*" keys. Pure code (string in, struct out, no I/O, no allocation)
 * so it can be unit-tested on the host and linked into the static PID 1.
 *
 * Grammar, following the kernel's own next_arg(): tokens are separated by
 * whitespace (space, \t, \n, \v, \f, \r); a double quote toggles quoting, so
 * spaces inside quotes do not split, and the quote characters themselves are
 * dropped ("vfiod.sandbox=\"a b\"" and "\"vfiod.sandbox=a b\"" both give the
 * value "a b"). There are no escapes. Tokens whose key does not start with
 * "vfiod." are skipped without a trace. */

#define GI_CMDLINE_PREFIX "vfiod."
#define GI_CMDLINE_MAX_ENTRIES 32   /* vfiod.* tokens kept; more are counted in n_dropped */
#define GI_CMDLINE_MAX_KEY 64       /* bytes of a key, "vfiod." included */
#define GI_CMDLINE_MAX_VALUE 256    /* bytes of a value (after quote removal) */

typedef enum {
  GI_CMDLINE_KEY_UNKNOWN = 0, /* a vfiod.* key this guest-init does not know */
  GI_CMDLINE_KEY_SANDBOX,     /* vfiod.sandbox=<id>: printed back in the ready line */
  GI_CMDLINE_KEY_READY,       /* vfiod.ready=console: where the ready line goes */
} GiCmdlineKey;

typedef enum {
  GI_CMDLINE_OK = 0,          /* known key, value accepted */
  GI_CMDLINE_UNKNOWN,         /* unknown vfiod.* key: kept, otherwise ignored */
  GI_CMDLINE_NO_VALUE,        /* no '=' in the token */
  GI_CMDLINE_BAD_CHAR,        /* control or non-ASCII byte in key or value */
  GI_CMDLINE_TOO_LONG,        /* key or value over GI_CMDLINE_MAX_KEY/_VALUE */
  GI_CMDLINE_UNTERMINATED,    /* a double quote that is never closed */
  GI_CMDLINE_BAD_VALUE,       /* known key, value not accepted (e.g. empty) */
} GiCmdlineStatus;

typedef enum {
  GI_READY_CONSOLE = 0,       /* the ready line goes to /dev/console (the default) */
} GiReadyTarget;

/* One vfiod.* token, in command line order. @key is always printable ASCII
 * and NUL-terminated: when the real key is too long or holds bad bytes, it is
 * cut at GI_CMDLINE_MAX_KEY bytes and every bad byte shows as '?', so it can
 * be printed in a warning as is. @value is only filled (NUL-terminated, after
 * quote removal) when @status is GI_CMDLINE_OK or GI_CMDLINE_UNKNOWN or
 * GI_CMDLINE_BAD_VALUE; otherwise it is "". */
typedef struct {
  char key[GI_CMDLINE_MAX_KEY + 1];
  char value[GI_CMDLINE_MAX_VALUE + 1];
  GiCmdlineKey id;
  GiCmdlineStatus status;
} GiCmdlineEntry;

/* The parse result. The effective settings are those of the last accepted
 * (GI_CMDLINE_OK) token of each key, as with the kernel's own parameters. */
typedef struct {
  GiCmdlineEntry entries[GI_CMDLINE_MAX_ENTRIES];
  size_t n_entries;           /* entries[] in use */
  size_t n_dropped;           /* vfiod.* tokens beyond GI_CMDLINE_MAX_ENTRIES, not parsed */

  bool has_sandbox;
  char sandbox[GI_CMDLINE_MAX_VALUE + 1];  /* "" unless has_sandbox */
  GiReadyTarget ready;
} GiCmdline;

/* Parses @cmdline (a NUL-terminated string as read from /proc/cmdline; a
 * trailing newline is fine; NULL is taken as "") into @ret, which is fully
 * overwritten. Never fails and never reads past the terminating NUL: each
 * vfiod.* token gets an entry whose status says whether it was accepted, and
 * rejected tokens change no setting. Values are accepted only when every byte
 * is printable ASCII (0x20-0x7e). Input length is not limited; only what is
 * stored is. */
void gi_cmdline_parse(const char *cmdline, GiCmdline *ret);

/* A short English description of @status, e.g. "missing '='". Never NULL. */
const char *gi_cmdline_status_to_string(GiCmdlineStatus status);

/* True when @status means the token was refused (not OK, not UNKNOWN). */
bool gi_cmdline_status_is_error(GiCmdlineStatus status);
