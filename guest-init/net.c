/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/object.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* libnl's NLE_* codes, as errno for our callers. */
static int
nle_to_errno(int nle)
{
  switch (nle < 0 ? -nle : nle) {
  case NLE_EXIST:
    return -EEXIST;
  case NLE_NOMEM:
    return -ENOMEM;
  case NLE_OBJ_NOTFOUND:
    return -ENOENT;
  case NLE_NODEV:
    return -ENODEV;
  case NLE_PERM:
    return -EPERM;
  case NLE_INVAL:
    return -EINVAL;
  case NLE_AF_NOSUPPORT:
    return -EAFNOSUPPORT;
  case NLE_BUSY:
    return -EBUSY;
  case NLE_AGAIN:
    return -EAGAIN;
  default:
    return -EIO;
  }
}

static int __attribute__((format(printf, 4, 5)))
nl_fail(int nle, char *err, size_t err_size, const char *fmt, ...)
{
  char what[256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  snprintf(err, err_size, "%s: %s", what, nl_geterror(nle));
  return nle_to_errno(nle);
}

static struct nl_sock *
open_rtnl(char *err, size_t err_size, int *ret_r)
{
  struct nl_sock *sk = nl_socket_alloc();
  int r;

  if (!sk) {
    snprintf(err, err_size, "netlink socket: out of memory");
    *ret_r = -ENOMEM;
    return NULL;
  }
  r = nl_connect(sk, NETLINK_ROUTE);
  if (r < 0) {
    *ret_r = nl_fail(r, err, err_size, "connect to rtnetlink");
    nl_socket_free(sk);
    return NULL;
  }
  return sk;
}

/* Sets IFF_UP on @link. */
static int
link_up(struct nl_sock *sk, struct rtnl_link *link, char *err, size_t err_size)
{
  struct rtnl_link *change = rtnl_link_alloc();
  int r;

  if (!change) {
    snprintf(err, err_size, "out of memory");
    return -ENOMEM;
  }
  rtnl_link_set_flags(change, IFF_UP);
  r = rtnl_link_change(sk, link, change, 0);
  rtnl_link_put(change);
  if (r < 0)
    return nl_fail(r, err, err_size, "set %s up", rtnl_link_get_name(link));
  return 0;
}

int
gi_net_loopback_up(char *err, size_t err_size)
{
  struct rtnl_link *lo = NULL;
  struct nl_sock *sk;
  int r;

  sk = open_rtnl(err, err_size, &r);
  if (!sk)
    return r;
  r = rtnl_link_get_kernel(sk, 0, "lo", &lo);
  if (r < 0)
    r = nl_fail(r, err, err_size, "find lo");
  else
    r = link_up(sk, lo, err, err_size);
  if (lo)
    rtnl_link_put(lo);
  nl_socket_free(sk);
  return r;
}

/* An ethernet interface backed by a device (not a virtual one). */
static bool
is_candidate(struct rtnl_link *link)
{
  const char *name = rtnl_link_get_name(link);
  char path[PATH_MAX];
  struct stat st;

  if (!name || rtnl_link_get_arptype(link) != ARPHRD_ETHER || strcmp(name, "lo") == 0)
    return false;
  snprintf(path, sizeof(path), "/sys/class/net/%s/device", name);
  return stat(path, &st) == 0;
}

/* Finds the interface to configure; returns a reference (rtnl_link_put()) or
 * NULL with -ENODEV when none appeared in time. */
/* True when @link's hardware address is @mac ("02:ab:..", lower case). */
static bool
has_mac(struct rtnl_link *link, const char *mac)
{
  struct nl_addr *a = rtnl_link_get_addr(link);
  char buf[32];

  return a && nl_addr_get_len(a) == 6 && strcmp(nl_addr2str(a, buf, sizeof(buf)), mac) == 0;
}

static struct rtnl_link *
find_link(struct nl_sock *sk, const char *ifname, const char *mac, char *err, size_t err_size, int *ret_r)
{
  uint64_t deadline = gi_now_ms() + GI_NET_LINK_WAIT_MS;

  for (;;) {
    struct nl_cache *cache = NULL;
    struct rtnl_link *best = NULL;
    int r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);

    if (r < 0) {
      *ret_r = nl_fail(r, err, err_size, "list network links");
      return NULL;
    }
    if (ifname[0] != '\0') {
      best = rtnl_link_get_by_name(cache, ifname);
    } else if (mac[0] != '\0') {
      /* vfiod names the sandbox NIC by the MAC it gave it: a passed-through
       * NIC may well come first. */
      for (struct nl_object *o = nl_cache_get_first(cache); o && !best; o = nl_cache_get_next(o))
        if (has_mac((struct rtnl_link *) o, mac))
          best = (struct rtnl_link *) o;
      if (best)
        nl_object_get((struct nl_object *) best);
    } else {
      for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_link *l = (struct rtnl_link *) o;

        if (is_candidate(l) && (!best || rtnl_link_get_ifindex(l) < rtnl_link_get_ifindex(best)))
          best = l;
      }
      if (best)
        nl_object_get((struct nl_object *) best);
    }
    nl_cache_free(cache);
    if (best)
      return best;
    if (gi_now_ms() >= deadline)
      break;
    usleep(100 * 1000);
  }
  if (ifname[0] != '\0')
    snprintf(err, err_size, "no network interface '%s' (after %d ms)", ifname, GI_NET_LINK_WAIT_MS);
  else if (mac[0] != '\0')
    snprintf(err, err_size, "no network interface with MAC %s (after %d ms; is its driver module staged?)", mac,
             GI_NET_LINK_WAIT_MS);
  else
    snprintf(err, err_size, "no ethernet interface (after %d ms; is its driver module staged?)",
             GI_NET_LINK_WAIT_MS);
  *ret_r = -ENODEV;
  return NULL;
}

static int
add_address(struct nl_sock *sk, int ifindex, const GiCmdline *c, char *err, size_t err_size)
{
  struct rtnl_addr *addr = rtnl_addr_alloc();
  struct nl_addr *local = NULL;
  char text[32];
  int r;

  if (!addr) {
    snprintf(err, err_size, "out of memory");
    return -ENOMEM;
  }
  snprintf(text, sizeof(text), "%s/%u", c->ip, c->prefix);
  r = nl_addr_parse(text, AF_INET, &local);
  if (r < 0) {
    r = nl_fail(r, err, err_size, "parse %s", text);
    goto out;
  }
  rtnl_addr_set_ifindex(addr, ifindex);
  rtnl_addr_set_family(addr, AF_INET);
  r = rtnl_addr_set_local(addr, local);
  if (r == 0) {
    rtnl_addr_set_prefixlen(addr, (int) c->prefix);
    r = rtnl_addr_add(sk, addr, 0);
  }
  if (r < 0 && r != -NLE_EXIST)
    r = nl_fail(r, err, err_size, "add address %s", text);
  else
    r = 0;
out:
  if (local)
    nl_addr_put(local);
  rtnl_addr_put(addr);
  return r;
}

/* Whether @gw lies outside @ip/@prefix (dotted quads): then the guest
 * reaches it on-link (vfiod's [network] gateway_address, one address for
 * every sandbox, outside each sandbox's subnet). */
static bool
gateway_off_subnet(const char *ip, unsigned prefix, const char *gw)
{
  struct in_addr a, g;
  uint32_t mask = prefix == 0 ? 0 : htonl(0xffffffffu << (32 - prefix));

  if (inet_pton(AF_INET, ip, &a) != 1 || inet_pton(AF_INET, gw, &g) != 1)
    return false;
  return (a.s_addr & mask) != (g.s_addr & mask);
}

static int
add_default_route(struct nl_sock *sk, int ifindex, const char *gw, bool onlink, char *err, size_t err_size)
{
  struct rtnl_route *route = rtnl_route_alloc();
  struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
  struct nl_addr *dst = NULL, *via = NULL;
  int r;

  if (!route || !nh) {
    snprintf(err, err_size, "out of memory");
    r = -ENOMEM;
    goto out;
  }
  r = nl_addr_parse("0.0.0.0/0", AF_INET, &dst);
  if (r == 0)
    r = nl_addr_parse(gw, AF_INET, &via);
  if (r < 0) {
    r = nl_fail(r, err, err_size, "parse gateway %s", gw);
    goto out;
  }
  rtnl_route_set_family(route, AF_INET);
  rtnl_route_set_dst(route, dst);
  rtnl_route_nh_set_ifindex(nh, ifindex);
  rtnl_route_nh_set_gateway(nh, via);
  if (onlink)
    rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
  rtnl_route_add_nexthop(route, nh);
  nh = NULL;  /* owned by the route now */
  r = rtnl_route_add(sk, route, NLM_F_CREATE);
  if (r < 0 && r != -NLE_EXIST)
    r = nl_fail(r, err, err_size, "add default route via %s", gw);
  else
    r = 0;
out:
  if (nh)
    rtnl_route_nh_free(nh);
  if (dst)
    nl_addr_put(dst);
  if (via)
    nl_addr_put(via);
  if (route)
    rtnl_route_put(route);
  return r;
}

/* The first IPv4 address of @ifindex, as "A.B.C.D/N", into @buf. */
static int
read_back_ipv4(struct nl_sock *sk, int ifindex, char *buf, size_t size, char *err, size_t err_size)
{
  struct nl_cache *cache = NULL;
  int r = rtnl_addr_alloc_cache(sk, &cache);

  if (r < 0)
    return nl_fail(r, err, err_size, "list addresses");
  r = -ENOENT;
  for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    struct rtnl_addr *a = (struct rtnl_addr *) o;
    struct nl_addr *local = rtnl_addr_get_local(a);
    char ip[INET_ADDRSTRLEN];

    if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET || !local ||
        nl_addr_get_len(local) != 4)
      continue;
    if (!inet_ntop(AF_INET, nl_addr_get_binary_addr(local), ip, sizeof(ip)))
      continue;
    snprintf(buf, size, "%s/%d", ip, rtnl_addr_get_prefixlen(a));
    r = 0;
    break;
  }
  nl_cache_free(cache);
  if (r < 0)
    snprintf(err, err_size, "the address does not show on the interface");
  return r;
}

int
gi_net_configure(const GiCmdline *c, GiNet *ret, char *err, size_t err_size)
{
  struct rtnl_link *link = NULL;
  struct nl_addr *mac;
  struct nl_sock *sk;
  int r, ifindex;

  memset(ret, 0, sizeof(*ret));
  sk = open_rtnl(err, err_size, &r);
  if (!sk)
    return r;
  link = find_link(sk, c->ifname, c->mac, err, err_size, &r);
  if (!link)
    goto out;
  ifindex = rtnl_link_get_ifindex(link);
  snprintf(ret->ifname, sizeof(ret->ifname), "%s", rtnl_link_get_name(link));
  mac = rtnl_link_get_addr(link);
  if (mac && nl_addr_get_len(mac) == 6)
    nl_addr2str(mac, ret->mac, sizeof(ret->mac));

  /* Up first: the kernel adds the prefix route only for an up interface,
   * and the gateway must be reachable through it. */
  r = link_up(sk, link, err, err_size);
  if (r == 0)
    r = add_address(sk, ifindex, c, err, err_size);
  if (r == 0 && c->gw[0] != '\0')
    r = add_default_route(sk, ifindex, c->gw, gateway_off_subnet(c->ip, c->prefix, c->gw), err, err_size);
  if (r == 0)
    r = read_back_ipv4(sk, ifindex, ret->ip, sizeof(ret->ip), err, err_size);
  if (r < 0) {
    char what[256];

    snprintf(what, sizeof(what), "%s", err);
    snprintf(err, err_size, "%s: %s", ret->ifname, what);
  }
out:
  if (link)
    rtnl_link_put(link);
  nl_socket_free(sk);
  return r;
}

int
gi_net_write_resolv_conf(const char *path, const GiCmdline *c)
{
  char text[256] = "";
  size_t len = 0;

  for (size_t i = 0; i < c->n_dns; i++)
    len += (size_t) snprintf(text + len, sizeof(text) - len, "nameserver %s\n", c->dns[i]);
  return gi_write_file(path, text, 0644);
}
