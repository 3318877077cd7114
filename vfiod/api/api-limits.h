/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Bounds on what an API client can make vfiod do (issue 13, finding 2):
 * connection caps per uid and in total, caps on every array in a request,
 * the size of a request, calls in flight per connection, the backlog of
 * replies and signals a client leaves unread, and rate-limited logging of
 * every refusal. Pure bookkeeping, no D-Bus server: api-server.c applies
 * it; tests/unit/test-api-limits.c tests it. */

#include <gio/gio.h>
#include <sys/types.h>

#include "log-limit.h"

/* Defaults of the [daemon] keys (see README "Configuration"). */
#define VFD_API_MAX_CONNECTIONS_DEFAULT 64         /* [daemon] max_connections */
#define VFD_API_MAX_CONNECTIONS_PER_UID_DEFAULT 16 /* [daemon] max_connections_per_uid */
#define VFD_API_AUTH_TIMEOUT_DEFAULT 5             /* [daemon] auth_timeout, seconds */

/* Connections kept for root on top of max_connections, so that root gets
 * in when members hold all the others. */
#define VFD_API_ROOT_RESERVED 4
/* Entries of any array (or dictionary) in a request whose elements are not
 * fixed-size numbers: CreateSandbox options, devices, args, env... */
#define VFD_API_MAX_ARRAY_ENTRIES 64
/* Values in one request, all levels together. */
#define VFD_API_MAX_VALUES 4096
/* Bytes of a request's body (the D-Bus limit is 128 MiB). */
#define VFD_API_MAX_REQUEST_BYTES (1024 * 1024)
/* Method calls of one connection waiting for their reply. */
#define VFD_API_MAX_PENDING_CALLS 16
/* CreateSandbox devices: BDFs in one request. */
#define VFD_API_MAX_DEVICES 64
/* File descriptors one call may carry (CreateSandbox's disks: VFD_DISKS_MAX). */
#define VFD_API_MAX_FDS 8

/* ---- rate-limited logging ------------------------------------------------
 * Refusals use VfdLogLimit (log-limit.h), e.g.
 *   static VfdLogLimit limit = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
 * through vfd_log_limited(), which may be called from any thread. */

/* g_log() of @format at @level in vfiod's domain when @limit allows it (one
 * lock for all limits: callable from GDBus's worker thread and the main
 * loop), followed by "(N similar messages suppressed before)" when some
 * were. */
void vfd_log_limited(VfdLogLimit *limit, GLogLevelFlags level, const char *format, ...) G_GNUC_PRINTF(3, 4);

/* Gives freed heap back to the system (malloc_trim) 1, 2 and 3 s from now,
 * on the default main context: after a refused request over a limit, GDBus
 * had parsed it into many small blocks before vfiod saw it (a 40 MB request
 * of 2 million strings is some 300 MB of heap), which glibc keeps once
 * freed; freeing millions of values takes a while, hence the repeats. Any
 * thread; a call while one is pending does nothing. With GLib < 2.76 this
 * needs G_SLICE=always-malloc in the environment (vfiod.service sets it):
 * GSlice keeps its blocks for itself. */
void vfd_heap_trim_later(void);

/* Installs a handler for GLib's own messages of @domain (e.g. "GLib-GIO":
 * GDBus logs a hex dump of every message it cannot decode, 5 bytes of log
 * per byte a client sent) that cuts each message to 1 KiB and rate-limits
 * them (20 per 10 s). For the daemon's start-up; idempotent per domain. */
void vfd_log_limit_domain(const char *domain);

/* ---- connection caps -----------------------------------------------------
 * Counts the API connections (authenticating and open) in total and per
 * uid. A member (uid != 0) is admitted while the total is below
 * @max_total and its own count below @max_per_uid; root while the total is
 * below @max_total + @root_reserved (no per-uid cap). Main thread only. */
typedef struct VfdConnLimits VfdConnLimits;

VfdConnLimits *vfd_conn_limits_new(guint max_total, guint max_per_uid, guint root_reserved);
void vfd_conn_limits_free(VfdConnLimits *limits);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdConnLimits, vfd_conn_limits_free)

/* Takes a slot for @uid; VFD_ERROR_LIMIT_EXCEEDED naming the cap (and the
 * config key) when full, nothing counted then. */
gboolean vfd_conn_limits_admit(VfdConnLimits *limits, uid_t uid, GError **error);
/* Gives back a slot vfd_conn_limits_admit() took for @uid. */
void vfd_conn_limits_release(VfdConnLimits *limits, uid_t uid);
guint vfd_conn_limits_total(const VfdConnLimits *limits);
guint vfd_conn_limits_of_uid(const VfdConnLimits *limits, uid_t uid);

/* ---- requests -------------------------------------------------------------
 * Checks the arguments of a method call (@body: a tuple, may be NULL) before
 * any work: every array or dictionary whose elements are not fixed-size
 * numbers holds at most @max_entries entries (checked before its entries are
 * looked at), no dictionary has a key twice, at most VFD_API_MAX_VALUES
 * values in all, and the serialised body is at most @max_bytes.
 * VFD_ERROR_LIMIT_EXCEEDED (too many, too large) or
 * VFD_ERROR_INVALID_ARGUMENT (a key twice), the message naming the argument
 * ("argument 1, key 'devices': 2000000 entries, at most 64"). Cost: at most
 * VFD_API_MAX_VALUES values visited, whatever the request. */
gboolean vfd_api_check_args(GVariant *body, guint max_entries, gsize max_bytes, GError **error);

/* ---- unread backlog --------------------------------------------------------
 * Bytes vfiod wrote to the stream socket @fd that its peer has not read yet
 * (ioctl SIOCOUTQ: for a Unix socket, the kernel's accounting of the
 * unread messages, which a blocked writer has filled up to SO_SNDBUF) and
 * the socket's SO_SNDBUF. -errno on failure. */
int vfd_socket_backlog(int fd, guint *ret_queued, guint *ret_sndbuf);

/* True when a peer leaves at least half of the send buffer unread: it is
 * not reading, and what vfiod sends it next piles up in vfiod's memory
 * (GDBus queues without bound once the socket is full). */
gboolean vfd_backlog_is_slow(guint queued, guint sndbuf);

/* "uid 1001 (alice)", or "uid 1001" without a passwd entry; "root" for 0.
 * Thread-safe (getpwuid_r). */
char *vfd_uid_describe(uid_t uid);
