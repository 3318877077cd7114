/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "payload.h"
#include "protocol.h"

/* The guest's kernel command line, as far as guest-init cares: the
 * "vfiod.*" keys (documented in guest-init/README.md; names, limits and the
 * allowed bytes come from protocol.h, shared with vfiod). Pure code (string
 * in, struct out, no I/O, no allocation) so it can be unit-tested on the
 * host and linked into the static PID 1.
 *
 * Grammar, following the kernel's own next_arg() so that guest-init and the
 * kernel always see the same words: words are separated by the kernel's
 * isspace() bytes (space, \t, \n, \v, \f, \r and 0xa0); a double quote
 * toggles quoting, so blanks inside quotes do not split. There are no
 * escapes. Quotes are accepted only where the kernel removes them: around
 * the whole word ("vfiod.arg=a b") or around the whole value
 * (vfiod.arg="a b"); a quote anywhere else (the kernel would keep it in the
 * value) refuses the word. Words whose key does not start with "vfiod." are
 * skipped without a trace. */

#define GI_CMDLINE_PREFIX VFIOD_CMDLINE_PREFIX
#define GI_CMDLINE_MAX_ENTRIES VFIOD_CMDLINE_MAX_ENTRIES  /* vfiod.* words kept; more are counted in n_dropped */
#define GI_CMDLINE_MAX_KEY VFIOD_CMDLINE_MAX_KEY          /* bytes of a key, "vfiod." included */
#define GI_CMDLINE_MAX_VALUE VFIOD_CMDLINE_MAX_VALUE      /* bytes of a value (after quote removal) */
#define GI_CMDLINE_MAX_ARGS VFIOD_CMDLINE_MAX_ARGS        /* vfiod.arg= words (workload arguments after argv[0]) */
#define GI_CMDLINE_MAX_ENV VFIOD_CMDLINE_MAX_ENV          /* vfiod.env= words (workload environment) */
#define GI_CMDLINE_MAX_DNS VFIOD_CMDLINE_MAX_DNS          /* name servers in vfiod.dns= (resolv.conf's MAXNS) */
#define GI_CMDLINE_MAX_TIMEOUT VFIOD_CMDLINE_MAX_TIMEOUT  /* vfiod.timeout= upper bound, seconds (a year) */

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
  GI_CMDLINE_KEY_DRIVER,      /* vfiod.driver=/dev/NAME: the NVIDIA driver layer (EROFS, read-only) */
  GI_CMDLINE_KEY_PAYLOAD,     /* vfiod.payload=BYTES: the workload's fw_cfg payload (payload.h) and its size */
  GI_CMDLINE_KEY_OVERLAY,     /* vfiod.overlay=tmpfs|virtio:SERIAL|/dev/NAME: a writable overlay on a read-only root */
  GI_CMDLINE_KEY_COUNT_,      /* not a key: the number of ids above */
} GiCmdlineKey;

typedef enum {
  GI_CMDLINE_OK = 0,          /* known key, value accepted */
  GI_CMDLINE_UNKNOWN,         /* unknown vfiod.* key: kept, otherwise ignored */
  GI_CMDLINE_NO_VALUE,        /* no '=' in the token */
  GI_CMDLINE_BAD_CHAR,        /* a byte outside protocol.h's allow-list in key or value: control,
                               * non-ASCII, '\\', or a blank outside quotes in a key */
  GI_CMDLINE_TOO_LONG,        /* key or value over GI_CMDLINE_MAX_KEY/_VALUE */
  GI_CMDLINE_UNTERMINATED,    /* a double quote that is never closed */
  GI_CMDLINE_BAD_VALUE,       /* known key, value not accepted (e.g. empty) */
  GI_CMDLINE_TOO_MANY,        /* a repeatable key given more often than allowed */
  GI_CMDLINE_BAD_QUOTE,       /* a double quote neither around the whole word nor around the whole value */
  GI_CMDLINE_DUPLICATE,       /* a key other than vfiod.arg and vfiod.env given a second time (vfiod.ready
                               * and vfiod.report are one key); the first one stays in effect */
} GiCmdlineStatus;
#define GI_CMDLINE_STATUS_LAST GI_CMDLINE_DUPLICATE

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
 * GI_CMDLINE_BAD_VALUE, GI_CMDLINE_TOO_MANY or GI_CMDLINE_DUPLICATE;
 * otherwise it is "". */
typedef struct {
  char key[GI_CMDLINE_MAX_KEY + 1];
  char value[GI_CMDLINE_MAX_VALUE + 1];
  GiCmdlineKey id;
  GiCmdlineStatus status;
} GiCmdlineEntry;

/* The parse result. Each key but vfiod.arg and vfiod.env counts once: its
 * first token sets it (when accepted), a second one is GI_CMDLINE_DUPLICATE
 * and changes nothing (unlike the kernel's own parameters, where the last
 * wins: a repeated key can only come from an injection, see protocol.h).
 * vfiod.arg= and vfiod.env= append every accepted token. Every string
 * below is "" when its key is absent. */
typedef struct {
  GiCmdlineEntry entries[GI_CMDLINE_MAX_ENTRIES];
  size_t n_entries;           /* entries[] in use */
  size_t n_dropped;           /* vfiod.* tokens beyond GI_CMDLINE_MAX_ENTRIES, not parsed: an error
                               * (gi_cmdline_check()) */

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
  /* The root's overlay (needs vfiod.rootflags=ro): "" (none), "tmpfs", or
   * a disk (vfiod_cmdline_disk_valid()) holding an ext4 filesystem. */
  char overlay[GI_CMDLINE_MAX_VALUE + 1];

  /* The NVIDIA driver layer: "" (none) or a /dev/... path
   * (vfiod_cmdline_dev_valid()). */
  char driver[GI_CMDLINE_MAX_VALUE + 1];

  bool gpu;                   /* vfiod.gpu=, default on */
  unsigned nvidia;            /* GI_NVIDIA_* bits, default GI_NVIDIA_DEFAULT */
  unsigned timeout_s;         /* vfiod.timeout=, 0 (the default) for none */
  size_t payload_size;        /* vfiod.payload=, 1..VFIOD_PAYLOAD_MAX bytes; 0: no payload */
} GiCmdline;

/* Parses @cmdline (a NUL-terminated string as read from /proc/cmdline; a
 * trailing newline is fine; NULL is taken as "") into @ret, which is fully
 * overwritten. Never fails and never reads past the terminating NUL: each
 * vfiod.* token gets an entry whose status says whether it was accepted, and
 * rejected tokens change no setting. Values are accepted only when every byte
 * passes vfiod_cmdline_value_char_ok() (printable ASCII but '"' and '\\').
 * Input length is not limited; only what is stored is. Whether the result
 * may be used at all is gi_cmdline_check()'s call. */
void gi_cmdline_parse(const char *cmdline, GiCmdline *ret);

/* Whether guest-init may go on with the parsed @c: false when a vfiod.*
 * token was refused (gi_cmdline_status_is_error(): a bad byte, quote or
 * value, over a limit, a repeated key, ...) or when more than
 * GI_CMDLINE_MAX_ENTRIES vfiod.* tokens were given (some were not even
 * looked at). vfiod never writes such a line, so it was cut, injected or
 * written by hand: guest-init stops (VFIOD_FATAL) rather than run without a
 * setting or with someone else's. Unknown vfiod.* keys are not errors (a
 * newer vfiod may send keys this guest-init does not know): the caller warns.
 * On false, @err (@err_size bytes, may be 0) gets the first problem, e.g.
 * "vfiod.root: given more than once". */
bool gi_cmdline_check(const GiCmdline *c, char *err, size_t err_size);

/* A short English description of @status, e.g. "missing '='". Never NULL. */
const char *gi_cmdline_status_to_string(GiCmdlineStatus status);

/* True when @status means the token was refused (not OK, not UNKNOWN). */
bool gi_cmdline_status_is_error(GiCmdlineStatus status);
