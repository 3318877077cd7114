/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <net/if.h>
#include <stdbool.h>
#include <sys/types.h>

#include "netpool.h"

/* A sandbox's TAP device on the host, in the calling thread's network
 * namespace: created through /dev/net/tun, configured (address, link state)
 * and listed/removed through libnl-route-3.
 *
 * Names: VFD_TAP_PREFIX + a suffix derived from the sandbox id (see
 * vfd_tap_name_for). The firewall (firewall.h) matches every link named
 * "vfd*", so a TAP is isolated from the moment it exists, before its own
 * rules are in. */

#define VFD_TAP_PREFIX "vfd"

/* MAC as "02:xx:xx:xx:xx:xx" + NUL */
#define VFD_MAC_STRLEN 18

/* The TAP name of a sandbox, into @ret (NUL-terminated, at most 15 chars).
 * Ids "sb-<1..12 lowercase hex>" (vfiod makes "sb-%08x") map to "vfd<hex>":
 * "sb-1a2b3c4d" -> "vfd1a2b3c4d", readable and injective, so two sandboxes
 * never share a name. Any other id maps to "vfdh" + the first 11 hex digits
 * of its SHA-256 ("h" is not a hex digit: the two forms cannot meet).
 * -EINVAL for a NULL or empty id. The name is not checked against the
 * kernel's links here: vfd_tap_create refuses a name that exists. */
int vfd_tap_name_for(const char *sandbox_id, char ret[IFNAMSIZ]);

/* True when @name can be a vfiod TAP name: VFD_TAP_PREFIX, then 1..12 of
 * [0-9a-z], at most 15 chars. (Also what the firewall accepts.) */
bool vfd_tap_name_valid(const char *name);

/* The guest NIC's MAC for a sandbox, into @ret as "02:xx:xx:xx:xx:xx":
 * the first byte is 0x02 (locally administered, unicast), the other five
 * are the first bytes of SHA-256(@sandbox_id). Deterministic, so a QEMU
 * restarted for the same sandbox keeps its MAC. -EINVAL for NULL/empty. */
int vfd_guest_mac_for(const char *sandbox_id, char ret[VFD_MAC_STRLEN]);

/* Creates the TAP @name for a sandbox, in stages, undoing the completed ones
 * on failure:
 *   1. refuse when any link named @name exists (checked with libnl, then
 *      atomically by the kernel: IFF_TUN_EXCL);
 *   2. /dev/net/tun TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
 *      IFF_TUN_EXCL (what QEMU's -netdev tap,vhost=on asks for; the flags of
 *      whoever attaches later replace these, except IFF_MULTI_QUEUE which
 *      must match: the device is single-queue);
 *  2b. vfd_tap_harden(@proc_root, @name): the per-TAP sysctls, before the
 *      link is up;
 *   3. TUNSETOWNER @owner / TUNSETGROUP @group, so that QEMU running as
 *      that user may attach. The kernel checks both when both are set: an
 *      attacher without CAP_NET_ADMIN needs euid == @owner AND @group among
 *      its groups (checked in tests/netns). (uid_t)-1 / (gid_t)-1 leave one
 *      unset; both unset: only CAP_NET_ADMIN may attach;
 *   4. TUNSETPERSIST 1 and close: the device outlives this process;
 *   5. libnl: @subnet's host address (/prefix, broadcast) on it, link up.
 * The guest side is whatever attaches to the device (QEMU: -netdev
 * tap,ifname=@name,script=no,downscript=no,vhost=on).
 * Errors (VFD_ERROR): BUSY when the name exists; INVALID_ARGUMENT for a
 * name vfd_tap_name_valid refuses; PERMISSION_DENIED without CAP_NET_ADMIN;
 * FAILED otherwise; the message says which stage failed and why. */
gboolean vfd_tap_create(const char *name, uid_t owner, gid_t group, const VfdSubnet *subnet, const char *proc_root,
                        GError **error);

/* The per-TAP sysctls a sandbox TAP gets (issue 13, finding 9), written in
 * the calling thread's network namespace (/proc/sys/net is per namespace of
 * the thread that opens it) beneath @proc_root ([testing] proc_root; NULL:
 * "/proc"):
 *   net/ipv4/conf/@name/arp_ignore = 1: answer ARP only for addresses of the
 *     TAP itself, so a guest cannot learn (or probe) the host's addresses
 *     on its other interfaces;
 *   net/ipv4/conf/@name/arp_announce = 2: ARP requests sent on the TAP use
 *     the TAP's own address as their source, never another interface's;
 *   net/ipv6/conf/@name/disable_ipv6 = 1: no IPv6 on the TAP at all (no
 *     link-local address, no router advertisements, no neighbour discovery);
 *     skipped when the kernel has no IPv6 (no net/ipv6 under sys).
 * Each path is opened one component at a time beneath @proc_root with
 * O_NOFOLLOW (no symlink is followed) and must end at a regular file. On
 * the first failure: FALSE with a VFD_ERROR (from the errno: e.g.
 * NOT_FOUND when the TAP has no conf directory, PERMISSION_DENIED) whose
 * message names the file and the value; the settings already written stay
 * (vfd_tap_create() then destroys the TAP). INVALID_ARGUMENT for a name
 * vfd_tap_name_valid() refuses. */
gboolean vfd_tap_harden(const char *proc_root, const char *name, GError **error);

/* Deletes the TAP @name (RTM_DELLINK; works whether or not QEMU still has
 * it open). 0; -EINVAL for a name vfd_tap_name_valid() refuses (nothing is
 * looked up or deleted); -ENOENT when no link has that name; -EMEDIUMTYPE
 * when the link is not a tun/tap device (left alone); other -errno from
 * netlink. */
int vfd_tap_delete(const char *name);

/* Opens a queue of the existing TAP @name (/dev/net/tun, TUNSETIFF with the
 * flags it was created with), for handing to QEMU (-netdev tap,fd=N): QEMU
 * then needs no access to /dev/net/tun. Returns the fd (O_CLOEXEC) or
 * -errno; -EBUSY only when another file stayed attached to the TAP for
 * 2 s (a transient holder, a forked child before its exec, is waited for). */
int vfd_tap_open(const char *name);

/* 1 when a link (of any kind) named @name exists, 0 when not, -errno. */
int vfd_tap_exists(const char *name);

/* Names of the tun/tap links (IFLA_INFO_KIND "tun") whose name starts with
 * @prefix, sorted, into *@ret_names (NULL-terminated; empty when none).
 * Links of other kinds are never listed, whatever their name. -errno. */
int vfd_tap_list(const char *prefix, GStrv *ret_names);

/* Like vfd_tap_list, minus the names in @keep (NULL-terminated, may be
 * NULL): the TAPs that belong to no live sandbox. -errno. */
int vfd_tap_list_stale(const char *prefix, const char *const *keep, GStrv *ret_names);

/* The dummy link that holds [network] gateway_address on the host, so the
 * platform's gateway can bind that one address whether or not a sandbox
 * runs. Not named like a TAP: the firewall's "vfd*" rules never match it. */
#define VFD_GATEWAY_LINK "vfiodgw0"

/* Makes sure VFD_GATEWAY_LINK exists (a dummy link, created when missing),
 * holds @addr/32 (host byte order) and is up, in the calling thread's
 * namespace; on a kernel without dummy links (EOPNOTSUPP) the address goes
 * on "lo" instead. *@ret_link (may be NULL): the link that holds it, static.
 * Idempotent; kept across vfiod restarts (running sandboxes use it).
 * VFD_ERROR_BUSY when a link of that name is not a dummy; else the netlink
 * error, naming the step. */
gboolean vfd_gateway_link_ensure(guint32 addr, const char **ret_link, GError **error);

/* Adds @addr/32 (host byte order; no prefix route) to the TAP @name: with
 * arp_ignore=1 the TAP answers the guest's ARP only for its own addresses,
 * so the stable gateway address is put on every TAP too (the same /32 on
 * many links is fine). */
gboolean vfd_tap_add_gateway(const char *name, guint32 addr, GError **error);
