/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* A sandbox's network identity: an IPv4 subnet from a pool and a vsock CID.
 *
 * Both allocators hand out the lowest free value, are rebuilt after a restart
 * by marking what the journal's live sandboxes hold (_mark), and take values
 * back for reuse (_release). They keep no state of their own on disk: the
 * journal is the record (per sandbox "subnet": "10.0.128.4/30", "cid": 3).
 * Not thread-safe; the daemon's main loop owns them. */

#define VFD_SUBNET_POOL_DEFAULT "10.0.128.0/17"
#define VFD_SUBNET_PREFIX_DEFAULT 30

/* "255.255.255.255" + NUL, "255.255.255.255/32" + NUL */
#define VFD_IPV4_STRLEN 16
#define VFD_CIDR_STRLEN 19

/* One sandbox's subnet. All addresses are IPv4 in host byte order
 * (10.0.128.4 is 0x0a008004). For "10.0.128.4/30": network 10.0.128.4,
 * host 10.0.128.5 (on the host's TAP, the guest's gateway), guest 10.0.128.6. */
typedef struct {
  guint32 network; /* first address of the block */
  guint prefix;    /* 1..30 */
  guint32 host;    /* network + 1 */
  guint32 guest;   /* network + 2 */
} VfdSubnet;

/* Formats @addr (host byte order) as a dotted quad into @buf; returns @buf. */
const char *vfd_ipv4_format(guint32 addr, char buf[VFD_IPV4_STRLEN]);

/* Parses a dotted quad ("10.0.128.5") into host byte order. -EINVAL when it
 * is not one. */
int vfd_ipv4_parse(const char *s, guint32 *ret);

/* "10.0.128.4/30" (newly allocated): the journal's form of a subnet. */
char *vfd_subnet_to_string(const VfdSubnet *subnet);

/* Parses "A.B.C.D/N" with N in 1..30 and no host bits set, filling in host
 * and guest. -EINVAL otherwise. */
int vfd_subnet_parse(const char *s, VfdSubnet *ret);

/* Fills @ret from a network address and prefix (no validation beyond what
 * the arithmetic needs; use vfd_subnet_parse for input). */
void vfd_subnet_init(VfdSubnet *ret, guint32 network, guint prefix);

/* ---- subnet pool ---- */

typedef struct VfdSubnetPool VfdSubnetPool;

/* A pool of @prefix-sized blocks carved out of @cidr ("10.0.128.0/17").
 * Refused with VFD_ERROR_INVALID_ARGUMENT, the message naming the problem:
 * not IPv4 "A.B.C.D/N"; host bits set in @cidr; @prefix outside
 * [pool prefix, 30]; more than 2^24 blocks; a pool that touches 0.0.0.0/8,
 * 127.0.0.0/8, 169.254.0.0/16 or 224.0.0.0/3 (multicast, reserved,
 * broadcast). The default pool/prefix give 8192 blocks. */
VfdSubnetPool *vfd_subnet_pool_new(const char *cidr, guint prefix, GError **error);
void vfd_subnet_pool_free(VfdSubnetPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdSubnetPool, vfd_subnet_pool_free)

/* The pool as "10.0.128.0/17" (newly allocated). */
char *vfd_subnet_pool_to_string(const VfdSubnetPool *pool);
/* Number of blocks in the pool, and how many are in use. */
guint vfd_subnet_pool_size(const VfdSubnetPool *pool);
guint vfd_subnet_pool_n_used(const VfdSubnetPool *pool);

/* Takes the lowest free block. VFD_ERROR_BUSY when every block is in use;
 * the message names the pool and its size. */
gboolean vfd_subnet_pool_alloc(VfdSubnetPool *pool, VfdSubnet *ret_subnet, GError **error);

/* Marks @subnet in use (rebuilding from the journal). A subnet of another
 * prefix (the config changed while sandboxes lived) marks every block it
 * overlaps. 0; -ERANGE when @subnet lies outside the pool (nothing marked:
 * it cannot collide with anything the pool hands out); -EEXIST when a block
 * it covers is already in use (two journal records claim one subnet;
 * nothing marked). */
int vfd_subnet_pool_mark(VfdSubnetPool *pool, const VfdSubnet *subnet);

/* Gives @subnet back (every block it overlaps). 0; -ERANGE outside the
 * pool; -ENOENT when none of its blocks was in use. */
int vfd_subnet_pool_release(VfdSubnetPool *pool, const VfdSubnet *subnet);

/* True when @subnet's blocks are all marked in use. */
bool vfd_subnet_pool_is_used(const VfdSubnetPool *pool, const VfdSubnet *subnet);

/* Start-up check: reads every IPv4 address of the current network namespace
 * with libnl (rtnl_addr cache) and refuses a pool that overlaps the network
 * of one of them (address/prefix as configured, so 10.0.0.5/8 on eth0
 * conflicts with 10.0.128.0/17). Links whose name starts with
 * @skip_link_prefix (the TAP prefix "vfd": sandboxes that outlived a restart
 * carry pool addresses) are skipped; NULL skips none.
 * VFD_ERROR_INVALID_ARGUMENT naming the address and link on overlap;
 * VFD_ERROR_FAILED when netlink fails. */
gboolean vfd_subnet_pool_check_host_overlap(const VfdSubnetPool *pool, const char *skip_link_prefix,
                                            GError **error);

/* ---- vsock CIDs ---- */

#define VFD_CID_FIRST 3u          /* 0, 1 reserved, 2 is the host */
#define VFD_CID_LAST 0xfffffffeu  /* 0xffffffff is VMADDR_CID_ANY */

/* Asks whether @cid is free on this host. Returns 0 when it is (or nothing
 * can tell), -EADDRINUSE when another VMM holds it, another negative errno
 * when probing failed. */
typedef int (*VfdCidProbeFunc)(guint32 cid, void *user_data);

/* The default probe: opens @user_data (a device path; NULL means
 * "/dev/vhost-vsock"), asks the kernel to give the CID to that fd
 * (VHOST_VSOCK_SET_GUEST_CID) and closes it again, which frees the CID.
 * -EADDRINUSE from the kernel: another vhost-vsock user has it. When the
 * device does not exist or its module is missing (ENOENT, ENODEV, ENXIO)
 * there is nothing to probe: 0. Other open/ioctl errors: -errno.
 * A CID found free can still be taken by another VMM before QEMU opens
 * vhost-vsock; the probe narrows that window, it does not close it. */
int vfd_cid_probe_vhost_vsock(guint32 cid, void *user_data);

typedef struct VfdCidPool VfdCidPool;

/* CIDs @first..@last inclusive (clamped to VFD_CID_FIRST..VFD_CID_LAST;
 * NULL if the range is then empty). The probe is vfd_cid_probe_vhost_vsock
 * on /dev/vhost-vsock. */
VfdCidPool *vfd_cid_pool_new(guint32 first, guint32 last);
void vfd_cid_pool_free(VfdCidPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdCidPool, vfd_cid_pool_free)

/* Replaces the probe; @probe NULL: no probing (every CID not in use here is
 * free). @user_data is not owned. */
void vfd_cid_pool_set_probe(VfdCidPool *pool, VfdCidProbeFunc probe, void *user_data);

/* Takes the lowest CID that is not in use here and that the probe does not
 * report as taken (those are skipped, not marked: they are asked again
 * next time). VFD_ERROR_BUSY when none is left (or 65536 candidates in a
 * row were reported taken); VFD_ERROR_FAILED when the probe fails (the
 * message has its errno). */
gboolean vfd_cid_pool_alloc(VfdCidPool *pool, guint32 *ret_cid, GError **error);

/* 0; -ERANGE outside first..last; -EEXIST already in use. No probe. */
int vfd_cid_pool_mark(VfdCidPool *pool, guint32 cid);
/* 0; -ERANGE; -ENOENT when not in use. */
int vfd_cid_pool_release(VfdCidPool *pool, guint32 cid);
bool vfd_cid_pool_is_used(const VfdCidPool *pool, guint32 cid);
guint vfd_cid_pool_n_used(const VfdCidPool *pool);
