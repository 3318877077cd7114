/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

typedef struct nl_sock NlSock;
typedef struct nl_cache NlCache;
typedef struct rtnl_link RtnlLink;
typedef struct rtnl_addr RtnlAddr;
typedef struct nl_addr NlAddr;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NlSock, nl_socket_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NlCache, nl_cache_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RtnlLink, rtnl_link_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RtnlAddr, rtnl_addr_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NlAddr, nl_addr_put)

/* libnl's own error codes (positive NLE_*) to a negative errno. */
static int
nle_to_errno(int nle)
{
  switch (nle < 0 ? -nle : nle) {
  case 0:
    return 0;
  case NLE_NOMEM:
    return -ENOMEM;
  case NLE_EXIST:
    return -EEXIST;
  case NLE_INVAL:
  case NLE_RANGE:
    return -EINVAL;
  case NLE_OBJ_NOTFOUND:
  case NLE_NODEV:
    return -ENOENT;
  case NLE_BUSY:
    return -EBUSY;
  case NLE_PERM:
  case NLE_NOACCESS:
    return -EPERM;
  case NLE_OPNOTSUPP:
    return -EOPNOTSUPP;
  case NLE_AGAIN:
    return -EAGAIN;
  case NLE_INTR:
    return -EINTR;
  default:
    return -EIO;
  }
}

/* A route netlink socket bound to the calling thread's namespace. */
static int
route_socket(NlSock **ret)
{
  g_autoptr(NlSock) sock = nl_socket_alloc();
  int r;

  if (!sock)
    return -ENOMEM;
  r = nl_connect(sock, NETLINK_ROUTE);
  if (r < 0)
    return nle_to_errno(r);
  *ret = g_steal_pointer(&sock);
  return 0;
}

/* ---- names ---- */

static bool
is_lower_hex(const char *s, gsize min, gsize max)
{
  gsize n = strlen(s);

  if (n < min || n > max)
    return false;
  for (; *s; s++)
    if (!g_ascii_isdigit(*s) && !(*s >= 'a' && *s <= 'f'))
      return false;
  return true;
}

bool
vfd_tap_name_valid(const char *name)
{
  const char *suffix;
  gsize n;

  if (!name || !g_str_has_prefix(name, VFD_TAP_PREFIX))
    return false;
  suffix = name + strlen(VFD_TAP_PREFIX);
  n = strlen(suffix);
  if (n < 1 || n > IFNAMSIZ - 1 - strlen(VFD_TAP_PREFIX))
    return false;
  for (; *suffix; suffix++)
    if (!g_ascii_isdigit(*suffix) && !(*suffix >= 'a' && *suffix <= 'z'))
      return false;
  return true;
}

int
vfd_tap_name_for(const char *sandbox_id, char ret[IFNAMSIZ])
{
  const gsize room = IFNAMSIZ - 1 - strlen(VFD_TAP_PREFIX); /* 12 */
  g_autofree char *hash = NULL;

  if (!sandbox_id || !*sandbox_id)
    return -EINVAL;
  if (g_str_has_prefix(sandbox_id, "sb-") && is_lower_hex(sandbox_id + 3, 1, room)) {
    g_snprintf(ret, IFNAMSIZ, VFD_TAP_PREFIX "%s", sandbox_id + 3);
    return 0;
  }
  hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, sandbox_id, -1);
  g_snprintf(ret, IFNAMSIZ, VFD_TAP_PREFIX "h%.*s", (int) (room - 1), hash);
  return 0;
}

int
vfd_guest_mac_for(const char *sandbox_id, char ret[VFD_MAC_STRLEN])
{
  g_autoptr(GChecksum) sum = NULL;
  guint8 digest[32];
  gsize len = sizeof digest;

  if (!sandbox_id || !*sandbox_id)
    return -EINVAL;
  sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, (const guchar *) sandbox_id, -1);
  g_checksum_get_digest(sum, digest, &len);
  /* 0x02: locally administered (bit 1), unicast (bit 0 clear). */
  g_snprintf(ret, VFD_MAC_STRLEN, "02:%02x:%02x:%02x:%02x:%02x", digest[0], digest[1], digest[2], digest[3],
             digest[4]);
  return 0;
}

/* ---- links ---- */

int
vfd_tap_exists(const char *name)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(RtnlLink) link = NULL;
  int r;

  if ((r = route_socket(&sock)) < 0)
    return r;
  r = rtnl_link_get_kernel(sock, 0, name, &link);
  if (r >= 0)
    return 1;
  r = nle_to_errno(r);
  return r == -ENOENT ? 0 : r;
}

static bool
link_is_tun(struct rtnl_link *link)
{
  const char *kind = rtnl_link_get_type(link);

  return kind && g_str_equal(kind, "tun");
}

static void
set_error_errno(GError **error, int negative_errno, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
set_error_errno(GError **error, int negative_errno, const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(error, VFD_ERROR, vfd_error_from_errno(negative_errno), "%s: %s", msg, g_strerror(-negative_errno));
}

/* Stage 5: the host address on the TAP and the link up, through libnl. */
static gboolean
configure_link(const char *name, const VfdSubnet *subnet, GError **error)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(RtnlLink) link = NULL;
  g_autoptr(RtnlLink) change = NULL;
  g_autoptr(RtnlAddr) addr = NULL;
  g_autoptr(NlAddr) local = NULL;
  g_autoptr(NlAddr) bcast = NULL;
  guint32 be_host = htonl(subnet->host);
  guint32 be_bcast = htonl(subnet->network | ~(0xffffffffu << (32 - subnet->prefix)));
  g_autofree char *cidr = vfd_subnet_to_string(subnet);
  int r;

  if ((r = route_socket(&sock)) < 0) {
    set_error_errno(error, r, "TAP %s: cannot open a netlink socket", name);
    return FALSE;
  }
  if ((r = rtnl_link_get_kernel(sock, 0, name, &link)) < 0) {
    set_error_errno(error, nle_to_errno(r), "TAP %s: vanished after creation", name);
    return FALSE;
  }

  addr = rtnl_addr_alloc();
  local = nl_addr_build(AF_INET, &be_host, 4);
  bcast = nl_addr_build(AF_INET, &be_bcast, 4);
  if (!addr || !local || !bcast) {
    set_error_errno(error, -ENOMEM, "TAP %s", name);
    return FALSE;
  }
  nl_addr_set_prefixlen(local, (int) subnet->prefix);
  rtnl_addr_set_ifindex(addr, rtnl_link_get_ifindex(link));
  rtnl_addr_set_local(addr, local);
  rtnl_addr_set_prefixlen(addr, (int) subnet->prefix);
  rtnl_addr_set_broadcast(addr, bcast);
  if ((r = rtnl_addr_add(sock, addr, 0)) < 0) {
    char a[VFD_IPV4_STRLEN];
    set_error_errno(error, nle_to_errno(r), "TAP %s: cannot add address %s/%u (subnet %s)", name,
                    vfd_ipv4_format(subnet->host, a), subnet->prefix, cidr);
    return FALSE;
  }

  change = rtnl_link_alloc();
  if (!change) {
    set_error_errno(error, -ENOMEM, "TAP %s", name);
    return FALSE;
  }
  rtnl_link_set_flags(change, IFF_UP);
  if ((r = rtnl_link_change(sock, link, change, 0)) < 0) {
    set_error_errno(error, nle_to_errno(r), "TAP %s: cannot set the link up", name);
    return FALSE;
  }
  return TRUE;
}

/* ---- per-TAP sysctls ---- */

/* Opens the directory @path (components, NULL-terminated) beneath @dir_fd,
 * one component at a time with O_NOFOLLOW: a symlink anywhere on the way
 * fails (ELOOP/ENOTDIR) rather than leading elsewhere. O_PATH fd or -errno. */
static int
open_dir_beneath(int dir_fd, const char *const *path)
{
  int fd = dup(dir_fd);

  if (fd < 0)
    return -errno;
  for (gsize i = 0; path[i]; i++) {
    int next = openat(fd, path[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;

    close(fd);
    if (next < 0)
      return -e;
    fd = next;
  }
  return fd;
}

/* Writes @value to the file @leaf of directory @dir_fd (no symlink, a
 * regular file: what /proc/sys has). 0 or -errno (-EIO on a short write). */
static int
write_beneath(int dir_fd, const char *leaf, const char *value)
{
  struct stat st;
  gsize len = strlen(value);
  ssize_t n;
  int fd, r = 0;

  fd = openat(dir_fd, leaf, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) < 0)
    r = -errno;
  else if (!S_ISREG(st.st_mode))
    r = -EINVAL;
  else if ((n = write(fd, value, len)) < 0)
    r = -errno;
  else if ((gsize) n != len)
    r = -EIO;
  close(fd);
  return r;
}

gboolean
vfd_tap_harden(const char *proc_root, const char *name, GError **error)
{
  static const struct {
    const char *family; /* sys/net/<family>/conf/<name>/<key> */
    const char *key;
    const char *value;
  } settings[] = {
    { "ipv4", "arp_ignore", "1\n" },
    { "ipv4", "arp_announce", "2\n" },
    { "ipv6", "disable_ipv6", "1\n" },
  };
  const char *root = proc_root ? proc_root : "/proc";
  int root_fd, r;

  if (!vfd_tap_name_valid(name)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a vfiod TAP name", name ? name : "");
    return FALSE;
  }
  root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    set_error_errno(error, -errno, "TAP %s: cannot open the proc root %s", name, root);
    return FALSE;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(settings); i++) {
    const char *family_path[] = { "sys", "net", settings[i].family, NULL };
    const char *conf_path[] = { "conf", name, NULL };
    int family_fd = open_dir_beneath(root_fd, family_path);
    int conf_fd;

    if (family_fd == -ENOENT && g_str_equal(settings[i].family, "ipv6"))
      continue; /* no IPv6 in this kernel (or ipv6.disable=1): nothing to turn off */
    if (family_fd < 0) {
      set_error_errno(error, family_fd, "TAP %s: cannot open %s/sys/net/%s", name, root, settings[i].family);
      close(root_fd);
      return FALSE;
    }
    conf_fd = open_dir_beneath(family_fd, conf_path);
    close(family_fd);
    r = conf_fd < 0 ? conf_fd : write_beneath(conf_fd, settings[i].key, settings[i].value);
    if (conf_fd >= 0)
      close(conf_fd);
    if (r < 0) {
      g_autofree char *v = g_strchomp(g_strdup(settings[i].value));
      set_error_errno(error, r, "TAP %s: cannot set %s/sys/net/%s/conf/%s/%s to %s", name, root, settings[i].family,
                      name, settings[i].key, v);
      close(root_fd);
      return FALSE;
    }
  }
  close(root_fd);
  return TRUE;
}

gboolean
vfd_tap_create(const char *name, uid_t owner, gid_t group, const VfdSubnet *subnet, const char *proc_root,
               GError **error)
{
  struct ifreq ifr = { 0 };
  int fd, r;

  if (!vfd_tap_name_valid(name)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a vfiod TAP name (" VFD_TAP_PREFIX " + up to 12 of [0-9a-z])", name ? name : "");
    return FALSE;
  }
  if (subnet->prefix < 1 || subnet->prefix > 30) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "TAP %s: subnet prefix /%u is not in 1..30", name,
                subnet->prefix);
    return FALSE;
  }

  /* 1. A link of that name, of any kind, is someone else's. */
  r = vfd_tap_exists(name);
  if (r < 0) {
    set_error_errno(error, r, "TAP %s: cannot look up links", name);
    return FALSE;
  }
  if (r > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "TAP %s: a network link with that name already exists", name);
    return FALSE;
  }

  /* 2. Create. IFF_TUN_EXCL makes the kernel refuse (EBUSY) instead of
   * attaching to a device that appeared since the check. */
  fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    set_error_errno(error, -errno, "TAP %s: cannot open /dev/net/tun", name);
    return FALSE;
  }
  g_strlcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
  ifr.ifr_flags = (short) (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL); /* 0xd002: a short holds it as -12286 */
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    r = -errno;
    close(fd);
    if (r == -EBUSY)
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "TAP %s: a network link with that name already exists", name);
    else
      set_error_errno(error, r, "TAP %s: TUNSETIFF failed", name);
    return FALSE;
  }

  /* 2b. The per-TAP sysctls, before the link is up (so IPv6 never gets a
   * link-local address) and before TUNSETPERSIST: until then, closing the
   * fd destroys the device, the rollback. */
  if (!vfd_tap_harden(proc_root, name, error)) {
    close(fd);
    return FALSE;
  }

  /* 3. Owner and group: who may attach (QEMU's user). 4. Persist. Before
   * TUNSETPERSIST, closing the fd destroys the device: the rollback. */
  if ((owner != (uid_t) -1 && ioctl(fd, TUNSETOWNER, (unsigned long) owner) < 0) ||
      (group != (gid_t) -1 && ioctl(fd, TUNSETGROUP, (unsigned long) group) < 0) ||
      ioctl(fd, TUNSETPERSIST, 1UL) < 0) {
    r = -errno;
    close(fd);
    set_error_errno(error, r, "TAP %s: setting owner %d, group %d or persistence failed", name, (int) owner,
                    (int) group);
    return FALSE;
  }
  close(fd);

  /* 5. Address and link state; on failure the persistent device goes. */
  if (!configure_link(name, subnet, error)) {
    r = vfd_tap_delete(name);
    if (r < 0 && r != -ENOENT)
      g_prefix_error(error, "(and removing the half-made TAP failed: %s) ", g_strerror(-r));
    return FALSE;
  }
  return TRUE;
}

int
vfd_tap_delete(const char *name)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(RtnlLink) link = NULL;
  int r;

  /* Names come from the journal too (which may have been tampered with):
   * never delete a link that is not named like a vfiod TAP. */
  if (!vfd_tap_name_valid(name))
    return -EINVAL;
  if ((r = route_socket(&sock)) < 0)
    return r;
  if ((r = rtnl_link_get_kernel(sock, 0, name, &link)) < 0)
    return nle_to_errno(r);
  if (!link_is_tun(link))
    return -EMEDIUMTYPE;
  if ((r = rtnl_link_delete(sock, link)) < 0)
    return nle_to_errno(r);
  return 0;
}

static int
cmp_strv(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

int
vfd_tap_list_stale(const char *prefix, const char *const *keep, GStrv *ret_names)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(NlCache) cache = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  int r;

  if ((r = route_socket(&sock)) < 0)
    return r;
  if ((r = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache)) < 0)
    return nle_to_errno(r);
  for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    struct rtnl_link *link = (struct rtnl_link *) o;
    const char *name = rtnl_link_get_name(link);

    if (!name || !g_str_has_prefix(name, prefix ? prefix : "") || !link_is_tun(link))
      continue;
    if (keep && g_strv_contains(keep, name))
      continue;
    g_ptr_array_add(names, g_strdup(name));
  }
  g_ptr_array_sort(names, cmp_strv);
  g_ptr_array_add(names, NULL);
  *ret_names = (GStrv) g_ptr_array_free(g_steal_pointer(&names), FALSE);
  return 0;
}

int
vfd_tap_list(const char *prefix, GStrv *ret_names)
{
  return vfd_tap_list_stale(prefix, NULL, ret_names);
}

int
vfd_tap_open(const char *name)
{
  struct ifreq ifr = { 0 };
  int fd;

  if (!vfd_tap_name_valid(name))
    return -EINVAL;
  g_strlcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
  /* EBUSY: another file is attached to the TAP. The one that created it
   * (vfd_tap_create, closed at once) can live on for a moment in a child
   * that another sandbox's QEMU spawn forked before it exec'd (O_CLOEXEC
   * closes it only at exec): seen with 8 concurrent creates on a loaded
   * host. Retry for up to 2 s before reporting it. */
  for (int attempt = 0;; attempt++) {
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
      return -errno;
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) == 0)
      return fd;
    int e = errno;
    close(fd);
    if (e != EBUSY || attempt >= 100)
      return -e;
    g_usleep(20 * 1000);
  }
}

/* ---- the stable gateway address ([network] gateway_address) ---- */

/* Adds @addr/32 to the link @ifindex, without a prefix route
 * (IFA_F_NOPREFIXROUTE); one already there is fine. 0 or -errno. */
static int
add_host_address(NlSock *sock, int ifindex, guint32 addr)
{
  g_autoptr(RtnlAddr) a = rtnl_addr_alloc();
  guint32 be = htonl(addr);
  g_autoptr(NlAddr) local = nl_addr_build(AF_INET, &be, 4);
  int r;

  if (!a || !local)
    return -ENOMEM;
  nl_addr_set_prefixlen(local, 32);
  rtnl_addr_set_ifindex(a, ifindex);
  rtnl_addr_set_local(a, local);
  rtnl_addr_set_prefixlen(a, 32);
  rtnl_addr_set_flags(a, IFA_F_NOPREFIXROUTE);
  r = rtnl_addr_add(sock, a, NLM_F_CREATE | NLM_F_REPLACE);
  return r < 0 ? nle_to_errno(r) : 0;
}

gboolean
vfd_gateway_link_ensure(guint32 addr, const char **ret_link, GError **error)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(RtnlLink) link = NULL;
  g_autoptr(RtnlLink) change = NULL;
  char a[VFD_IPV4_STRLEN];
  const char *kind;
  int r;

  if ((r = route_socket(&sock)) < 0) {
    set_error_errno(error, r, "gateway link %s: cannot open a netlink socket", VFD_GATEWAY_LINK);
    return FALSE;
  }
  r = rtnl_link_get_kernel(sock, 0, VFD_GATEWAY_LINK, &link);
  if (r < 0 && nle_to_errno(r) != -ENOENT) {
    set_error_errno(error, nle_to_errno(r), "gateway link %s: cannot look it up", VFD_GATEWAY_LINK);
    return FALSE;
  }
  if (r < 0) {
    g_autoptr(RtnlLink) make = rtnl_link_alloc();
    if (!make || rtnl_link_set_type(make, "dummy") < 0) {
      set_error_errno(error, -ENOMEM, "gateway link %s", VFD_GATEWAY_LINK);
      return FALSE;
    }
    rtnl_link_set_name(make, VFD_GATEWAY_LINK);
    r = rtnl_link_add(sock, make, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0 && nle_to_errno(r) == -EOPNOTSUPP) {
      /* A kernel without dummy links (CONFIG_DUMMY off, no module): the
       * loopback link holds the address instead, as reachable and as
       * bindable. */
      g_autoptr(RtnlLink) lo = NULL;
      if ((r = nle_to_errno(rtnl_link_get_kernel(sock, 0, "lo", &lo))) < 0 ||
          (r = add_host_address(sock, rtnl_link_get_ifindex(lo), addr)) < 0) {
        set_error_errno(error, r, "no dummy links in this kernel, and cannot add %s/32 to lo",
                        vfd_ipv4_format(addr, a));
        return FALSE;
      }
      if (ret_link)
        *ret_link = "lo";
      return TRUE;
    }
    if (r < 0 || (r = rtnl_link_get_kernel(sock, 0, VFD_GATEWAY_LINK, &link)) < 0) {
      set_error_errno(error, nle_to_errno(r), "gateway link %s: cannot create it (module dummy?)", VFD_GATEWAY_LINK);
      return FALSE;
    }
  }
  /* A link of that name that is not a dummy is someone else's. */
  kind = rtnl_link_get_type(link);
  if (!kind || !g_str_equal(kind, "dummy")) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "gateway link %s exists and is not a dummy link (%s)",
                VFD_GATEWAY_LINK, kind ? kind : "no kind");
    return FALSE;
  }
  if ((r = add_host_address(sock, rtnl_link_get_ifindex(link), addr)) < 0) {
    set_error_errno(error, r, "gateway link %s: cannot add %s/32", VFD_GATEWAY_LINK, vfd_ipv4_format(addr, a));
    return FALSE;
  }
  change = rtnl_link_alloc();
  if (!change) {
    set_error_errno(error, -ENOMEM, "gateway link %s", VFD_GATEWAY_LINK);
    return FALSE;
  }
  rtnl_link_set_flags(change, IFF_UP);
  if ((r = rtnl_link_change(sock, link, change, 0)) < 0) {
    set_error_errno(error, nle_to_errno(r), "gateway link %s: cannot set it up", VFD_GATEWAY_LINK);
    return FALSE;
  }
  if (ret_link)
    *ret_link = VFD_GATEWAY_LINK;
  return TRUE;
}

gboolean
vfd_tap_add_gateway(const char *name, guint32 addr, GError **error)
{
  g_autoptr(NlSock) sock = NULL;
  g_autoptr(RtnlLink) link = NULL;
  char a[VFD_IPV4_STRLEN];
  int r;

  if (!vfd_tap_name_valid(name)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a vfiod TAP name", name ? name : "");
    return FALSE;
  }
  if ((r = route_socket(&sock)) < 0 || (r = nle_to_errno(rtnl_link_get_kernel(sock, 0, name, &link))) < 0 ||
      (r = add_host_address(sock, rtnl_link_get_ifindex(link), addr)) < 0) {
    set_error_errno(error, r, "TAP %s: cannot add the gateway address %s/32", name, vfd_ipv4_format(addr, a));
    return FALSE;
  }
  return TRUE;
}
