/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"

/* Guest network set-up over rtnetlink (libnl-route-3, linked statically).
 * Errors are -errno with an English message in @err. */

#define GI_NET_LINK_WAIT_MS 5000   /* how long to wait for the interface to appear */

typedef struct {
  char ifname[16];
  char mac[24];         /* "52:54:00:12:34:56", "" when unknown */
  char ip[24];          /* "10.0.2.15/24": the first IPv4 address read back from the kernel */
} GiNet;

/* Brings the loopback interface up. */
int gi_net_loopback_up(char *err, size_t err_size);

/* Configures the interface named by vfiod.if (or else the first ethernet
 * link with a device behind it, lowest ifindex first, waiting up to
 * GI_NET_LINK_WAIT_MS for one): sets it up, adds vfiod.ip, and a default route
 * through vfiod.gw when given. Addresses or routes that exist already are not
 * errors. Fills @ret from what the kernel reports afterwards. */
int gi_net_configure(const GiCmdline *c, GiNet *ret, char *err, size_t err_size);

/* Writes a resolv.conf with one "nameserver" line per vfiod.dns address to
 * @path (mode 0644). Returns 0 or -errno. */
int gi_net_write_resolv_conf(const char *path, const GiCmdline *c);
