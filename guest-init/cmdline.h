/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The guest's kernel command line, as far as guest-init cares: the
 * "vfiod.*" keys (documented in guest-init/README.md). Pure code (string in,
 * struct out, no I/O, no allocation) so it can be unit-tested on the host and
 * linked into the static PID 1.
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
#define GI_CMDLINE_MAX_ARGS 16      /* vfiod.arg= tokens (workload arguments after argv[0]) */
#define GI_CMDLINE_MAX_ENV 16       /* vfiod.env= tokens (workload environment) */
#define GI_CMDLINE_MAX_DNS 3        /* name servers in vfiod.dns= (resolv.conf's MAXNS) */
#define GI_CMDLINE_MAX_TIMEOUT 31536000u  /* vfiod.timeout= upper bound, seconds (a year) */

typedef enum {
  GI_CMDLINE_KEY_UNKNOWN = 0, /* a vfiod.* key this guest-init does not know */
  GI_CMDLINE_KEY_SANDBOX,     /* vfiod.sandbox=<id>: printed back in the ready line */
  GI_CMDLINE_KEY_READY,       /* vfiod.ready=: older spelling of vfiod.report= */
  GI_CMDLINE_KEY_REPORT,      /* vfiod.report=console|vsock:PORT */
  GI_CMDLINE_KEY_IP,          /* vfiod.ip=A.B.C.D/PREFIX */
  GI_CMDLINE_KEY_GW,          /* vfiod.gw=A.B.C.D */
  GI_CMDLINE_KEY_DNS,         /* vfiod.dns=ADDR[,ADDR[,ADDR]] */
  GI_CMDLINE_KEY_IF,          /* vfiod.if=NAME */
  GI_CMDLINE_KEY_MAC,         /* vfiod.mac=xx:xx:xx:xx:xx:xx: configure the interface with this MAC */
  GI_CMDLINE_KEY_CMD,         /* vfiod.cmd=/ABSOLUTE/PATH */
  GI_CMDLINE_KEY_ARG,         /* vfiod.arg=ARG, repeatable, appended in order */
  GI_CMDLINE_KEY_ENV,         /* vfiod.env=NAME=VALUE, repeatable: the workload's environment */
  GI_CMDLINE_KEY_ROOT,        /* vfiod.root=/dev/NAME */
  GI_CMDLINE_KEY_ROOTFSTYPE,  /* vfiod.rootfstype=ext4 */
  GI_CMDLINE_KEY_ROOTFLAGS,   /* vfiod.rootflags=ro|rw */
  GI_CMDLINE_KEY_GPU,         /* vfiod.gpu=on|off */
  GI_CMDLINE_KEY_NVIDIA,      /* vfiod.nvidia=uvm,modeset,drm,peermem|none */
  GI_CMDLINE_KEY_TIMEOUT,     /* vfiod.timeout=SECONDS */
} GiCmdlineKey;

typedef enum {
  GI_CMDLINE_OK = 0,          /* known key, value accepted */
  GI_CMDLINE_UNKNOWN,         /* unknown vfiod.* key: kept, otherwise ignored */
  GI_CMDLINE_NO_VALUE,        /* no '=' in the token */
  GI_CMDLINE_BAD_CHAR,        /* control or non-ASCII byte in key or value */
  GI_CMDLINE_TOO_LONG,        /* key or value over GI_CMDLINE_MAX_KEY/_VALUE */
  GI_CMDLINE_UNTERMINATED,    /* a double quote that is never closed */
  GI_CMDLINE_BAD_VALUE,       /* known key, value not accepted (e.g. empty) */
  GI_CMDLINE_TOO_MANY,        /* a repeatable key given more often than allowed */
} GiCmdlineStatus;

typedef enum {
  GI_REPORT_CONSOLE = 0,      /* readiness/exit lines on the console only (the default) */
  GI_REPORT_VSOCK,            /* also to the host over AF_VSOCK, CID 2, port report_port */
} GiReportTarget;

/* Bits of GiCmdline.nvidia: the optional NVIDIA modules to load (nvidia.ko
 * itself is always loaded when staged and vfiod.gpu is on). */
enum {
  GI_NVIDIA_UVM = 1 << 0,     /* nvidia-uvm (CUDA) */
  GI_NVIDIA_MODESET = 1 << 1, /* nvidia-modeset */
  GI_NVIDIA_DRM = 1 << 2,     /* nvidia-drm (implies modeset) */
  GI_NVIDIA_PEERMEM = 1 << 3, /* nvidia-peermem */
};
#define GI_NVIDIA_DEFAULT GI_NVIDIA_UVM

/* One vfiod.* token, in command line order. @key is always printable ASCII
 * and NUL-terminated: when the real key is too long or holds bad bytes, it is
 * cut at GI_CMDLINE_MAX_KEY bytes and every bad byte shows as '?', so it can
 * be printed in a warning as is. @value is only filled (NUL-terminated, after
 * quote removal) when @status is GI_CMDLINE_OK, GI_CMDLINE_UNKNOWN,
 * GI_CMDLINE_BAD_VALUE or GI_CMDLINE_TOO_MANY; otherwise it is "". */
typedef struct {
  char key[GI_CMDLINE_MAX_KEY + 1];
  char value[GI_CMDLINE_MAX_VALUE + 1];
  GiCmdlineKey id;
  GiCmdlineStatus status;
} GiCmdlineEntry;

/* The parse result. The effective settings are those of the last accepted
 * (GI_CMDLINE_OK) token of each key, as with the kernel's own parameters;
 * vfiod.arg= is the exception: every accepted token is appended. Every string
 * below is "" when its key is absent. */
typedef struct {
  GiCmdlineEntry entries[GI_CMDLINE_MAX_ENTRIES];
  size_t n_entries;           /* entries[] in use */
  size_t n_dropped;           /* vfiod.* tokens beyond GI_CMDLINE_MAX_ENTRIES, not parsed */

  bool has_sandbox;
  char sandbox[GI_CMDLINE_MAX_VALUE + 1];  /* "" unless has_sandbox */

  GiReportTarget report;
  unsigned report_port;       /* vsock port, 1..0xfffffffe, when report is GI_REPORT_VSOCK */

  /* Network: has_ip says whether vfiod.ip= was given; the others only
   * matter then. Addresses are in dotted (or, for DNS, also IPv6) text form,
   * checked with inet_pton(). */
  bool has_ip;
  char ip[16];                /* "10.0.2.15" */
  unsigned prefix;            /* 1..32 */
  char gw[16];                /* "" or "10.0.2.2" */
  size_t n_dns;
  char dns[GI_CMDLINE_MAX_DNS][46];
  char ifname[16];            /* "" (first ethernet link) or an interface name */
  char mac[18];               /* "" or the lower-case MAC of the interface to configure */

  /* The workload: cmd is an absolute path ("" for none), args[] its
   * arguments after argv[0], in command line order. */
  char cmd[GI_CMDLINE_MAX_VALUE + 1];
  size_t n_args;
  char args[GI_CMDLINE_MAX_ARGS][GI_CMDLINE_MAX_VALUE + 1];
  /* NAME=VALUE entries added to (or replacing in) the workload's clean
   * environment; NAME is [A-Za-z_][A-Za-z0-9_]*. */
  size_t n_env;
  char env[GI_CMDLINE_MAX_ENV][GI_CMDLINE_MAX_VALUE + 1];

  /* Root file system for the workload: "" (run it from the initramfs) or a
   * /dev/... path. */
  char root[GI_CMDLINE_MAX_VALUE + 1];
  char rootfstype[32];        /* default "ext4" */
  bool root_ro;               /* vfiod.rootflags=ro */

  bool gpu;                   /* vfiod.gpu=, default on */
  unsigned nvidia;            /* GI_NVIDIA_* bits, default GI_NVIDIA_DEFAULT */
  unsigned timeout_s;         /* vfiod.timeout=, 0 (the default) for none */
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
