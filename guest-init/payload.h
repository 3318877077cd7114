/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The workload's payload: its command, arguments, environment and files,
 * sent by vfiod as one QEMU fw_cfg file and read by guest-init from
 * /sys/firmware/qemu_fw_cfg/by_name/<VFIOD_PAYLOAD_FW_CFG_NAME>/raw (module
 * qemu_fw_cfg). Unlike the kernel command line (protocol.h) it carries any
 * byte but NUL in arguments and values, has no 16-entry limits and never
 * shows in the host's process list: vfiod writes it into a sealed memfd that
 * QEMU reads at start-up (-fw_cfg name=...,file=/proc/self/fd/N). The
 * kernel command line says there is one and how big it is
 * (vfiod.payload=BYTES): guest-init refuses to run a workload when that
 * size and the file disagree.
 *
 * Format (version 1), all lengths decimal byte counts without leading zeros
 * or signs, every record ending in '\n':
 *
 *   "VFIOD-PAYLOAD 1\n"
 *   "cmd LEN\n" PATH "\n"                 at most once: the workload, absolute
 *   "arg LEN\n" BYTES "\n"                repeatable, argv[1..] in order
 *   "env LEN\n" NAME=VALUE "\n"           repeatable, NAME as in POSIX
 *   "file MODE PLEN DLEN\n" PATH "\n" DATA "\n"
 *                                         repeatable: MODE octal (0..0777), PATH
 *                                         absolute in the workload's root, DATA
 *                                         any bytes (NUL too)
 *   "end\n"                               last: a payload without it was cut
 *
 * Strings (cmd, arg, env, a file's path) hold no NUL byte; paths have no
 * empty, "." or ".." component, no trailing '/', no control byte; a file
 * path is not given twice. Plain C99, no allocation: shared by vfiod (the
 * writer, vfiod/vm/guest-payload.c), guest-init, the unit tests and the
 * fuzzer. */

#include <stdbool.h>
#include <stddef.h>

#define VFIOD_PAYLOAD_FW_CFG_NAME "opt/org.vfiod/payload"
#define VFIOD_PAYLOAD_MAGIC "VFIOD-PAYLOAD 1\n"
#define VFIOD_PAYLOAD_MAX (8u << 20)         /* bytes of the whole payload */
#define VFIOD_PAYLOAD_MAX_ARGS 4096          /* arg records */
#define VFIOD_PAYLOAD_MAX_ENV 4096           /* env records */
#define VFIOD_PAYLOAD_MAX_FILES 256          /* file records */
#define VFIOD_PAYLOAD_MAX_STRING (128u << 10) /* bytes of one arg or env (the kernel's MAX_ARG_STRLEN) */
#define VFIOD_PAYLOAD_MAX_EXEC (1u << 20)    /* bytes of cmd + args + env together (exec's limit) */
#define VFIOD_PAYLOAD_MAX_PATH 4095          /* bytes of a path (PATH_MAX without the NUL) */
#define VFIOD_PAYLOAD_MAX_MODE 0777u         /* no set-id or sticky bits */
#define VFIOD_PAYLOAD_DEFAULT_MODE 0600u     /* a file's mode when the client gives none */

/* One file to write into the workload's root before the workload starts. */
typedef struct {
  const char *path;          /* absolute, NUL-terminated (points into the parsed buffer) */
  unsigned mode;             /* permission bits, <= VFIOD_PAYLOAD_MAX_MODE */
  const unsigned char *data; /* @len bytes (points into the parsed buffer) */
  size_t len;
} GiPayloadFile;

/* A parsed payload: every pointer points into the buffer given to
 * gi_payload_parse(), which must outlive it. */
typedef struct {
  const char *cmd; /* NULL: none */
  size_t n_args;
  const char *args[VFIOD_PAYLOAD_MAX_ARGS];
  size_t n_env;
  const char *env[VFIOD_PAYLOAD_MAX_ENV];
  size_t n_files;
  GiPayloadFile files[VFIOD_PAYLOAD_MAX_FILES];
} GiPayload;

/* Parses @len bytes at @buf (modified in place: the '\n' after each string
 * becomes its NUL) into @ret, which is fully overwritten. Returns true, or
 * false with the first problem in @err (@err_size bytes, may be 0), e.g.
 * "record 3 (env): 'X' has no '='". Never reads outside @buf[0..@len). */
bool gi_payload_parse(char *buf, size_t len, GiPayload *ret, char *err, size_t err_size);

/* Whether @p (NUL-terminated) is a payload path: absolute, 2 to
 * VFIOD_PAYLOAD_MAX_PATH bytes, no control byte (< 0x20, 0x7f), no empty,
 * "." or ".." component, no trailing '/'. */
bool gi_payload_path_valid(const char *p);

/* Whether @e (NUL-terminated) is NAME=VALUE with NAME [A-Za-z_][A-Za-z0-9_]*. */
bool gi_payload_env_valid(const char *e);
