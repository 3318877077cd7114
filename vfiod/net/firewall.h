/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <net/if.h>
#include <stdbool.h>

#include "netpool.h"

/* The sandboxes' firewall: one nftables table, "inet vfiod", always
 * rewritten whole and atomically (one libnftables transaction) from a
 * VfdFirewallState, and the IPv4 forwarding flags NAT needs. Everything
 * acts on the calling thread's network namespace.
 *
 * What the table does (vfd_firewall_render has the exact text):
 *  - input, from any link "vfd*": established/related accepted; a packet
 *    whose (TAP, source) is not (its TAP, its guest address) is dropped
 *    (anti-spoofing); new TCP to the TAP's *own* host address on a port in
 *    host_ports is accepted (the platform's gateway), and so is new TCP to
 *    the stable gateway address (state->gateway) on those ports; everything else,
 *    IPv6 included, is dropped. ARP is not IPv4/IPv6 and passes.
 *  - forward: "vfd*" -> "vfd*" dropped (sandbox to sandbox); from a NAT
 *    sandbox's TAP (right source address, IPv4) out of the uplink
 *    accepted; from the uplink to a NAT sandbox's TAP only
 *    established/related; anything else from or to "vfd*" dropped.
 *  - postrouting (only when some sandbox has NAT): masquerade what leaves
 *    the uplink from a NAT sandbox's subnet.
 *  - when vfiod itself turned the uplink's forwarding flag on (see below),
 *    the table records that in the set "forwarding_owned" and drops every
 *    other packet that would be forwarded from the uplink, so the host does
 *    not become a router for the uplink's network.
 * The "vfd*" wildcard matches TAPs that have no rules yet or that a crash
 * left behind, so those are isolated too. Chains are at priority
 * filter - 10 and policy accept: the table decides only about sandbox
 * traffic. A drop is final, but an accept here does not override a drop in
 * another table (e.g. a host firewall whose forward policy is drop: NAT
 * then needs an accept there).
 *
 * IPv4 forwarding, measured in network namespaces (tests/netns): Linux
 * checks the forwarding flag of the interface a packet *arrives* on
 * (net.ipv4.conf.<in>.forwarding), never that of the outgoing one. So
 * egress NAT needs forwarding=1 on the sandbox's TAP (for its packets out)
 * AND on the uplink (for the replies coming back): with the TAP's flag
 * alone the SYN leaves through the uplink and the SYN-ACK is dropped.
 * vfd_firewall_apply therefore sets forwarding=1 on each NAT sandbox's TAP
 * and 0 on every other sandbox TAP, and, while at least one NAT sandbox
 * exists, 1 on the uplink when it was 0 (recorded in the table as said,
 * and set back to 0 when the last NAT sandbox goes, also after a crash).
 * The global net.ipv4.ip_forward and conf/all are never written. */

typedef struct {
  char tap[IFNAMSIZ]; /* "vfd1a2b3c4d" */
  VfdSubnet subnet;   /* host and guest address, prefix */
  bool nat;           /* egress NAT through the uplink */
} VfdFirewallSandbox;

typedef struct {
  GArray *sandboxes;  /* VfdFirewallSandbox, any order (rendered sorted by TAP) */
  GArray *host_ports; /* guint16: TCP ports a guest may reach on its host address */
  char *nat_uplink;   /* NULL or "": no NAT (a NAT sandbox is then refused) */
  char *proc_root;    /* where net.ipv4.conf.*.forwarding is written; "/proc" (TEST ONLY knob) */
  guint32 gateway;    /* [network] gateway_address (host byte order), reachable like each TAP's own host
                       * address (on host_ports) from every sandbox; 0: none */
} VfdFirewallState;

/* An empty state: no sandboxes, no ports, no uplink, proc_root "/proc". */
VfdFirewallState *vfd_firewall_state_new(void);
void vfd_firewall_state_free(VfdFirewallState *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdFirewallState, vfd_firewall_state_free)

/* Adds a sandbox. VFD_ERROR_INVALID_ARGUMENT when @tap is not a vfiod TAP
 * name (vfd_tap_name_valid) or is already in the state. */
gboolean vfd_firewall_state_add(VfdFirewallState *state, const char *tap, const VfdSubnet *subnet, bool nat,
                                GError **error);
/* Removes a sandbox by TAP name; false when it was not there. */
bool vfd_firewall_state_remove(VfdFirewallState *state, const char *tap);
const VfdFirewallSandbox *vfd_firewall_state_lookup(const VfdFirewallState *state, const char *tap);

/* Parses a host_ports config value, ';'- or ','-separated TCP ports 1..65535
 * ("8080;9000", "" for none), into state->host_ports (replacing them).
 * VFD_ERROR_INVALID_ARGUMENT naming the bad entry. */
gboolean vfd_firewall_state_set_ports(VfdFirewallState *state, const char *ports, GError **error);

/* The nft script that replaces the table with one for @state: the lines
 *   table inet vfiod / delete table inet vfiod / table inet vfiod { ... }
 * (the first two make the delete succeed whether or not the table exists;
 * the three run as one transaction). @forwarding_owned_uplink: name the
 * uplink whose forwarding vfiod turned on (adds the "forwarding_owned" set
 * and the guard rule), NULL otherwise. Deterministic: sandboxes by TAP
 * name, ports ascending. Pure: reads no kernel state.
 * VFD_ERROR_INVALID_ARGUMENT for a NAT sandbox without an uplink or an
 * uplink name that is not a plain interface name. */
char *vfd_firewall_render(const VfdFirewallState *state, const char *forwarding_owned_uplink, GError **error);

/* Makes the namespace match @state, in this order:
 *   1. reads the current table's "forwarding_owned" set (which uplink
 *      vfiod turned forwarding on for, if any);
 *   2. when no NAT sandbox needs that uplink any more (or the uplink
 *      changed), sets its forwarding back to 0 (a vanished uplink is
 *      ignored);
 *   3. writes the table (vfd_firewall_render + nft_run_cmd_from_buffer),
 *      or deletes it when @state has no sandboxes;
 *   4. sets forwarding on each sandbox's TAP: 1 with NAT, 0 without;
 *   5. when NAT sandboxes exist and the uplink's forwarding was 0, sets it
 *      to 1 (the table written in 3 already records this).
 * A crash between any two steps leaves a state the next apply (or
 * vfd_net_reconcile) completes. Errors: VFD_ERROR_INVALID_ARGUMENT as
 * vfd_firewall_render, or when the uplink does not exist;
 * VFD_ERROR_FAILED with nft's own message when the transaction is
 * refused, or naming the TAP whose forwarding flag could not be written
 * (later steps still run; the first error is returned). */
gboolean vfd_firewall_apply(const VfdFirewallState *state, GError **error);

/* Deletes the table (if present), first setting the recorded uplink's
 * forwarding back to 0. @proc_root as in the state (NULL: "/proc"). */
gboolean vfd_firewall_remove(const char *proc_root, GError **error);

/* The current table as nft prints it ("list table inet vfiod"), into
 * *@ret_text; *@ret_text = NULL when there is no table. For tests and
 * `vfioctl doctor`. VFD_ERROR_FAILED with nft's message otherwise. */
gboolean vfd_firewall_dump(char **ret_text, GError **error);

/* The uplink recorded in the table's "forwarding_owned" set, newly
 * allocated, or NULL (no table, no set, or empty). */
char *vfd_firewall_owned_uplink(void);

/* net.ipv4.conf.<ifname>.forwarding under @proc_root (NULL: "/proc").
 * /proc/sys/net belongs to the network namespace of the *calling thread*.
 * 0; -ENOENT when the interface does not exist; -EINVAL for a name that
 * is not a plain interface name ("all" and "default" are refused: vfiod
 * never writes the global flags); other -errno. */
int vfd_net_get_forwarding(const char *proc_root, const char *ifname, bool *ret_on);
int vfd_net_set_forwarding(const char *proc_root, const char *ifname, bool on);

/* Start-up and `vfioctl reconcile`: @state holds exactly the live
 * sandboxes (from the journal). Deletes every tun/tap link with a vfiod
 * TAP name (vfd_tap_name_valid(): "vfd" + 1..12 of [0-9a-z]; other "vfd*"
 * links are not vfiod's and are left alone) that is not one of @state's
 * TAPs, then vfd_firewall_apply(@state), which
 * drops the rules of every other sandbox and restores the uplink's
 * forwarding when no NAT sandbox is left. *@ret_removed_taps (may be NULL):
 * the TAPs deleted; *@ret_removed_rules (may be NULL): the TAPs that had
 * rules in the old table and have none now. Both NULL-terminated, sorted.
 * A TAP that cannot be deleted fails the call (VFD_ERROR_FAILED naming it)
 * after the rest was done. */
gboolean vfd_net_reconcile(const VfdFirewallState *state, GStrv *ret_removed_taps, GStrv *ret_removed_rules,
                           GError **error);
