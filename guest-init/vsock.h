/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Sending a report line to the host over AF_VSOCK (stream), the way vfiod
 * listens for it: connect to @cid:@port, write @line (@len bytes, with its
 * "\n"), close. */

#define GI_VSOCK_CID_HOST 2u          /* VMADDR_CID_HOST */
#define GI_VSOCK_TIMEOUT_MS 3000      /* per attempt, for connect and for the write */
#define GI_VSOCK_RETRY_DELAY_MS 500

/* Tries up to @attempts times (GI_VSOCK_RETRY_DELAY_MS apart), each attempt
 * bounded by GI_VSOCK_TIMEOUT_MS for the connection and as much for the write.
 * Does not retry when the kernel has no vsock support (EAFNOSUPPORT).
 * *@ret_attempts: attempts made. Returns 0 when the whole line was written,
 * else the last attempt's -errno with what failed in @err. */
int gi_vsock_send(unsigned cid, unsigned port, const char *line, size_t len, unsigned attempts,
                  unsigned *ret_attempts, char *err, size_t err_size);
