/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netpool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "error.h"

typedef struct nl_sock NlSock;
typedef struct nl_cache NlCache;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NlSock, nl_socket_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NlCache, nl_cache_free)

/* ---- addresses ---- */

const char *
vfd_ipv4_format(guint32 addr, char buf[VFD_IPV4_STRLEN])
{
  g_snprintf(buf, VFD_IPV4_STRLEN, "%u.%u.%u.%u", (addr >> 24) & 0xff, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
             addr & 0xff);
  return buf;
}

int
vfd_ipv4_parse(const char *s, guint32 *ret)
{
  struct in_addr in;

  /* inet_pton accepts exactly the dotted quad, no octal or short forms. */
  if (!s || inet_pton(AF_INET, s, &in) != 1)
    return -EINVAL;
  *ret = ntohl(in.s_addr);
  return 0;
}

static guint32
prefix_mask(guint prefix)
{
  return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

/* Number of addresses in a /prefix, as a 64-bit count (a /0 has 2^32). */
static guint64
prefix_size(guint prefix)
{
  return G_GUINT64_CONSTANT(1) << (32 - prefix);
}

/* Parses "A.B.C.D/N", N in 0..32; does not check host bits. */
static int
parse_cidr(const char *s, guint32 *ret_addr, guint *ret_prefix)
{
  g_auto(GStrv) parts = NULL;
  guint64 n;
  char *end = NULL;
  guint32 addr;

  if (!s)
    return -EINVAL;
  parts = g_strsplit(s, "/", -1);
  if (g_strv_length(parts) != 2 || !*parts[1] || !g_ascii_isdigit(parts[1][0]))
    return -EINVAL;
  n = g_ascii_strtoull(parts[1], &end, 10);
  if (*end || n > 32)
    return -EINVAL;
  if (vfd_ipv4_parse(parts[0], &addr) < 0)
    return -EINVAL;
  *ret_addr = addr;
  *ret_prefix = (guint) n;
  return 0;
}

void
vfd_subnet_init(VfdSubnet *ret, guint32 network, guint prefix)
{
  ret->network = network;
  ret->prefix = prefix;
  ret->host = network + 1;
  ret->guest = network + 2;
}

char *
vfd_subnet_to_string(const VfdSubnet *subnet)
{
  char a[VFD_IPV4_STRLEN];

  return g_strdup_printf("%s/%u", vfd_ipv4_format(subnet->network, a), subnet->prefix);
}

int
vfd_subnet_parse(const char *s, VfdSubnet *ret)
{
  guint32 addr;
  guint prefix;

  if (parse_cidr(s, &addr, &prefix) < 0 || prefix < 1 || prefix > 30 || (addr & ~prefix_mask(prefix)))
    return -EINVAL;
  vfd_subnet_init(ret, addr, prefix);
  return 0;
}

/* ---- subnet pool ---- */

#define MAX_BLOCKS_LOG2 24

struct VfdSubnetPool {
  guint32 network;
  guint prefix;       /* the pool's */
  guint block_prefix; /* each sandbox's */
  guint n_blocks;
  guint n_used;
  guint first_free_hint; /* no free block below this index */
  guint64 *used;         /* bitmap, one bit per block */
};

/* Address ranges the pool may not touch: [network, prefix, why]. */
static const struct {
  const char *cidr;
  const char *what;
} forbidden_ranges[] = {
  { "0.0.0.0/8", "\"this network\"" },
  { "127.0.0.0/8", "loopback" },
  { "169.254.0.0/16", "link-local" },
  { "224.0.0.0/3", "multicast/reserved/broadcast" },
};

static bool
ranges_overlap(guint32 a, guint a_prefix, guint32 b, guint b_prefix)
{
  /* Two CIDR blocks overlap exactly when the shorter prefix's mask makes
   * them equal. */
  guint32 mask = prefix_mask(MIN(a_prefix, b_prefix));

  return (a & mask) == (b & mask);
}

VfdSubnetPool *
vfd_subnet_pool_new(const char *cidr, guint prefix, GError **error)
{
  g_autoptr(VfdSubnetPool) pool = NULL;
  guint32 addr;
  guint pool_prefix;

  if (parse_cidr(cidr, &addr, &pool_prefix) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "subnet pool '%s' is not an IPv4 network A.B.C.D/N (only IPv4 pools are supported)",
                cidr ? cidr : "");
    return NULL;
  }
  if (addr & ~prefix_mask(pool_prefix)) {
    char a[VFD_IPV4_STRLEN];
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "subnet pool '%s' has host bits set: did you mean %s/%u?", cidr,
                vfd_ipv4_format(addr & prefix_mask(pool_prefix), a), pool_prefix);
    return NULL;
  }
  if (prefix < pool_prefix || prefix > 30) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "sandbox subnet prefix /%u must lie between the pool's /%u and /30 (a /30 holds a host and a "
                "guest address)",
                prefix, pool_prefix);
    return NULL;
  }
  if (prefix - pool_prefix > MAX_BLOCKS_LOG2) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "subnet pool %s with /%u subnets has 2^%u blocks; at most 2^%u are supported", cidr, prefix,
                prefix - pool_prefix, MAX_BLOCKS_LOG2);
    return NULL;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(forbidden_ranges); i++) {
    guint32 f;
    guint fp;

    g_assert(parse_cidr(forbidden_ranges[i].cidr, &f, &fp) == 0);
    if (ranges_overlap(addr, pool_prefix, f, fp)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "subnet pool %s overlaps %s (%s)", cidr,
                  forbidden_ranges[i].cidr, forbidden_ranges[i].what);
      return NULL;
    }
  }

  pool = g_new0(VfdSubnetPool, 1);
  pool->network = addr;
  pool->prefix = pool_prefix;
  pool->block_prefix = prefix;
  pool->n_blocks = 1u << (prefix - pool_prefix);
  pool->used = g_new0(guint64, (pool->n_blocks + 63) / 64);
  return g_steal_pointer(&pool);
}

void
vfd_subnet_pool_free(VfdSubnetPool *pool)
{
  if (!pool)
    return;
  g_free(pool->used);
  g_free(pool);
}

char *
vfd_subnet_pool_to_string(const VfdSubnetPool *pool)
{
  char a[VFD_IPV4_STRLEN];

  return g_strdup_printf("%s/%u", vfd_ipv4_format(pool->network, a), pool->prefix);
}

guint
vfd_subnet_pool_size(const VfdSubnetPool *pool)
{
  return pool->n_blocks;
}

guint
vfd_subnet_pool_n_used(const VfdSubnetPool *pool)
{
  return pool->n_used;
}

static bool
block_used(const VfdSubnetPool *pool, guint i)
{
  return (pool->used[i / 64] >> (i % 64)) & 1;
}

static void
block_set(VfdSubnetPool *pool, guint i, bool on)
{
  if (on)
    pool->used[i / 64] |= G_GUINT64_CONSTANT(1) << (i % 64);
  else
    pool->used[i / 64] &= ~(G_GUINT64_CONSTANT(1) << (i % 64));
}

gboolean
vfd_subnet_pool_alloc(VfdSubnetPool *pool, VfdSubnet *ret_subnet, GError **error)
{
  guint n_words = (pool->n_blocks + 63) / 64;

  for (guint w = pool->first_free_hint / 64; w < n_words; w++) {
    guint bit, i;

    if (pool->used[w] == G_MAXUINT64)
      continue;
    bit = (guint) __builtin_ctzll(~pool->used[w]);
    i = w * 64 + bit;
    if (i >= pool->n_blocks)
      break;
    block_set(pool, i, true);
    pool->n_used++;
    pool->first_free_hint = i + 1;
    vfd_subnet_init(ret_subnet, pool->network + (i << (32 - pool->block_prefix)), pool->block_prefix);
    return TRUE;
  }
  {
    g_autofree char *p = vfd_subnet_pool_to_string(pool);
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "subnet pool %s is exhausted: all %u /%u subnets are in use", p,
                pool->n_blocks, pool->block_prefix);
  }
  return FALSE;
}

/* Block indices [*ret_first, *ret_last] that @subnet overlaps; false when
 * it lies outside the pool. */
static bool
block_range(const VfdSubnetPool *pool, const VfdSubnet *subnet, guint *ret_first, guint *ret_last)
{
  guint64 pool_start = pool->network, pool_end = pool_start + prefix_size(pool->prefix) - 1;
  guint64 s_start, s_end, start, end;

  if (subnet->prefix > 32)
    return false;
  s_start = subnet->network & prefix_mask(subnet->prefix);
  s_end = s_start + prefix_size(subnet->prefix) - 1;
  start = MAX(pool_start, s_start);
  end = MIN(pool_end, s_end);
  if (start > end)
    return false;
  *ret_first = (guint) ((start - pool_start) >> (32 - pool->block_prefix));
  *ret_last = (guint) ((end - pool_start) >> (32 - pool->block_prefix));
  return true;
}

int
vfd_subnet_pool_mark(VfdSubnetPool *pool, const VfdSubnet *subnet)
{
  guint first, last;

  if (!block_range(pool, subnet, &first, &last))
    return -ERANGE;
  for (guint i = first; i <= last; i++)
    if (block_used(pool, i))
      return -EEXIST;
  for (guint i = first; i <= last; i++)
    block_set(pool, i, true);
  pool->n_used += last - first + 1;
  return 0;
}

int
vfd_subnet_pool_release(VfdSubnetPool *pool, const VfdSubnet *subnet)
{
  guint first, last, freed = 0;

  if (!block_range(pool, subnet, &first, &last))
    return -ERANGE;
  for (guint i = first; i <= last; i++) {
    if (block_used(pool, i)) {
      block_set(pool, i, false);
      freed++;
    }
  }
  if (freed == 0)
    return -ENOENT;
  pool->n_used -= freed;
  pool->first_free_hint = MIN(pool->first_free_hint, first);
  return 0;
}

bool
vfd_subnet_pool_is_used(const VfdSubnetPool *pool, const VfdSubnet *subnet)
{
  guint first, last;

  if (!block_range(pool, subnet, &first, &last))
    return false;
  for (guint i = first; i <= last; i++)
    if (!block_used(pool, i))
      return false;
  return true;
}

gboolean
vfd_subnet_pool_check_host_overlap(const VfdSubnetPool *pool, const char *skip_link_prefix, GError **error)
{
  g_autoptr(NlSock) sock = nl_socket_alloc();
  g_autoptr(NlCache) links = NULL;
  g_autoptr(NlCache) addrs = NULL;
  int r;

  if (!sock) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot allocate a netlink socket");
    return FALSE;
  }
  if ((r = nl_connect(sock, NETLINK_ROUTE)) < 0 || (r = rtnl_link_alloc_cache(sock, AF_UNSPEC, &links)) < 0 ||
      (r = rtnl_addr_alloc_cache(sock, &addrs)) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the host's addresses over netlink: %s",
                nl_geterror(r));
    return FALSE;
  }

  for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
    struct rtnl_addr *a = (struct rtnl_addr *) o;
    struct nl_addr *local = rtnl_addr_get_local(a);
    char ifname[IFNAMSIZ] = "";
    guint32 be, addr;
    guint plen;

    if (rtnl_addr_get_family(a) != AF_INET || !local || nl_addr_get_len(local) != 4)
      continue;
    rtnl_link_i2name(links, rtnl_addr_get_ifindex(a), ifname, sizeof ifname);
    if (skip_link_prefix && *skip_link_prefix && g_str_has_prefix(ifname, skip_link_prefix))
      continue;
    memcpy(&be, nl_addr_get_binary_addr(local), 4);
    addr = ntohl(be);
    plen = (guint) rtnl_addr_get_prefixlen(a);
    if (plen > 32)
      plen = 32;
    if (ranges_overlap(addr, plen, pool->network, pool->prefix)) {
      g_autofree char *p = vfd_subnet_pool_to_string(pool);
      char s[VFD_IPV4_STRLEN];
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "subnet pool %s overlaps address %s/%u on %s: choose a pool that no host interface uses", p,
                  vfd_ipv4_format(addr, s), plen, *ifname ? ifname : "an unnamed link");
      return FALSE;
    }
  }
  return TRUE;
}

/* ---- vsock CIDs ---- */

#define MAX_PROBE_SKIPS 65536u

struct VfdCidPool {
  guint32 first, last;
  GHashTable *used; /* GUINT_TO_POINTER(cid) set */
  VfdCidProbeFunc probe;
  void *probe_data;
};

int
vfd_cid_probe_vhost_vsock(guint32 cid, void *user_data)
{
  const char *path = user_data ? user_data : "/dev/vhost-vsock";
  guint64 guest_cid = cid;
  int fd, r = 0;

  fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
      return 0; /* no vhost-vsock here: nothing to ask */
    return -errno;
  }
  /* The kernel refuses a CID another vhost-vsock fd holds with EADDRINUSE;
   * closing our fd gives the CID back at once. */
  if (ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &guest_cid) < 0)
    r = -errno;
  close(fd);
  return r;
}

VfdCidPool *
vfd_cid_pool_new(guint32 first, guint32 last)
{
  VfdCidPool *pool;

  first = MAX(first, VFD_CID_FIRST);
  last = MIN(last, VFD_CID_LAST);
  if (first > last)
    return NULL;
  pool = g_new0(VfdCidPool, 1);
  pool->first = first;
  pool->last = last;
  pool->used = g_hash_table_new(g_direct_hash, g_direct_equal);
  pool->probe = vfd_cid_probe_vhost_vsock;
  return pool;
}

void
vfd_cid_pool_free(VfdCidPool *pool)
{
  if (!pool)
    return;
  g_hash_table_destroy(pool->used);
  g_free(pool);
}

void
vfd_cid_pool_set_probe(VfdCidPool *pool, VfdCidProbeFunc probe, void *user_data)
{
  pool->probe = probe;
  pool->probe_data = user_data;
}

bool
vfd_cid_pool_is_used(const VfdCidPool *pool, guint32 cid)
{
  return g_hash_table_contains(pool->used, GUINT_TO_POINTER(cid));
}

guint
vfd_cid_pool_n_used(const VfdCidPool *pool)
{
  return g_hash_table_size(pool->used);
}

gboolean
vfd_cid_pool_alloc(VfdCidPool *pool, guint32 *ret_cid, GError **error)
{
  guint skipped = 0;

  /* Linear from the bottom: the set in use is small (one per sandbox), and
   * lowest-free keeps CIDs short-lived numbers an operator can read. */
  for (guint64 cid = pool->first; cid <= pool->last; cid++) {
    int r;

    if (vfd_cid_pool_is_used(pool, (guint32) cid))
      continue;
    r = pool->probe ? pool->probe((guint32) cid, pool->probe_data) : 0;
    if (r == -EADDRINUSE) {
      /* Bounded, so a probe that refuses everything cannot spin over 2^32 CIDs. */
      if (++skipped >= MAX_PROBE_SKIPS)
        break;
      continue;
    }
    if (r < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot probe vsock CID %" G_GUINT64_FORMAT ": %s", cid,
                  g_strerror(-r));
      return FALSE;
    }
    g_hash_table_add(pool->used, GUINT_TO_POINTER((guint32) cid));
    *ret_cid = (guint32) cid;
    return TRUE;
  }
  g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
              "no vsock CID left in %u..%u (%u in use by vfiod, %u held by other VMMs)", pool->first, pool->last,
              vfd_cid_pool_n_used(pool), skipped);
  return FALSE;
}

int
vfd_cid_pool_mark(VfdCidPool *pool, guint32 cid)
{
  if (cid < pool->first || cid > pool->last)
    return -ERANGE;
  if (!g_hash_table_add(pool->used, GUINT_TO_POINTER(cid)))
    return -EEXIST;
  return 0;
}

int
vfd_cid_pool_release(VfdCidPool *pool, guint32 cid)
{
  if (cid < pool->first || cid > pool->last)
    return -ERANGE;
  if (!g_hash_table_remove(pool->used, GUINT_TO_POINTER(cid)))
    return -ENOENT;
  return 0;
}
