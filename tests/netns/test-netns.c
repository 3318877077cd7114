/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The netns suite: vfiod's TAPs, addresses, nft table and forwarding flags
 * against the real kernel, entirely inside network namespaces this program
 * creates. Needs root; exits 77 otherwise.
 *
 * Safety: the first thing main() does is unshare(CLONE_NEWNET) into a
 * namespace of its own ("base"); the machine's own namespace is never
 * entered again (setup checks the inode). Each test then makes a fresh
 * namespace H that plays the host vfiod runs on, plus namespaces for the
 * stand-in guests, an "outside" network behind an uplink veth, and a LAN.
 * Namespaces live only as long as this process holds their fds: whatever a
 * test leaves (TAPs, veths, tables) goes with them, even on a crash.
 *
 * What is real and what stands in:
 *  - TAPs: real, made by vfd_tap_create in H (TUNSETIFF, owner, persist,
 *    libnl address + link up), removed by vfd_tap_delete/vfd_net_reconcile.
 *  - A guest: a namespace G with its own "eth0", which is a TAP inside G;
 *    a pump thread copies frames between that TAP's fd and an fd attached
 *    to the sandbox TAP in H, exactly what QEMU's virtio-net does with the
 *    TAP's fd. So guest traffic really enters H through the vfd* TAP, and
 *    the nft rules match on it. (No veth stands in for a TAP.)
 *  - The uplink: a veth "up0" from H to an "outside" namespace O.
 *  - The nft table and /proc/sys/net/ipv4/conf/<if>/forwarding: real, in H
 *    (/proc/sys/net is per network namespace of the writing thread).
 *  - vfiod itself: a forked child that creates TAPs and the table and is
 *    SIGKILLed; the restart is vfd_net_reconcile (TODO below for the real
 *    daemon). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-glib/json-glib.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "error.h"
#include "firewall.h"
#include "netpool.h"
#include "tap.h"

#define DROP_TIMEOUT_MS 1500
#define PASS_TIMEOUT_MS 5000

static ino_t machine_ns_ino; /* the namespace we started in: never again */
static int base_ns = -1;     /* made at start; we return here between tests */
static int host_ns = -1;     /* H of the running test */

/* ---- namespaces ---- */

static ino_t
current_ns_ino(void)
{
  struct stat st;
  assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
  return st.st_ino;
}

/* A new namespace; the calling thread is in it afterwards. */
static int
ns_new(void)
{
  int fd;

  if (unshare(CLONE_NEWNET) < 0)
    fail_msg("unshare(CLONE_NEWNET): %s", g_strerror(errno));
  fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_true(current_ns_ino() != machine_ns_ino);
  return fd;
}

static void
ns_enter(int fd)
{
  if (setns(fd, CLONE_NEWNET) < 0)
    fail_msg("setns: %s", g_strerror(errno));
}

/* Runs a shell command in the calling thread's namespace (children inherit
 * it); fails the test on a non-zero exit. Returns stdout. */
static char *
run_out(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static char *
run_out(const char *fmt, ...)
{
  g_autofree char *cmd = NULL;
  g_autofree char *err = NULL;
  char *out = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;
  va_list ap;
  char *argv[] = { "/bin/sh", "-c", NULL, NULL };

  va_start(ap, fmt);
  cmd = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  argv[2] = cmd;
  if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error))
    fail_msg("cannot run '%s': %s", cmd, error->message);
  if (!g_spawn_check_wait_status(status, NULL))
    fail_msg("'%s' failed: %s%s", cmd, err, out);
  return out;
}

#define run(...) g_free(run_out(__VA_ARGS__))

static void
in_ns_run(int ns, const char *cmd)
{
  ns_enter(ns);
  run("%s", cmd);
  ns_enter(host_ns);
}

/* ---- TAP fds: the guest side ---- */

/* Attaches to (or, inside a guest namespace, creates) the TAP @name, as
 * QEMU would: IFF_TAP | IFF_NO_PI, no vnet header. */
static int
tap_attach(const char *name)
{
  struct ifreq ifr = { 0 };
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

  assert_true(fd >= 0);
  g_strlcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0)
    fail_msg("TUNSETIFF %s: %s", name, g_strerror(errno));
  return fd;
}

typedef struct {
  int ns;       /* the guest's namespace */
  int host_fd;  /* attached to the sandbox TAP in H */
  int guest_fd; /* the guest's eth0 (a TAP inside its namespace) */
  int stop[2];
  GThread *pump;
  char ip[VFD_IPV4_STRLEN];
} Guest;

static gpointer
pump_main(gpointer data)
{
  Guest *g = data;
  struct pollfd p[3] = { { g->host_fd, POLLIN, 0 }, { g->guest_fd, POLLIN, 0 }, { g->stop[0], POLLIN, 0 } };
  static __thread char buf[65536];

  for (;;) {
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR)
        continue;
      return NULL;
    }
    if (p[2].revents)
      return NULL;
    for (int i = 0; i < 2; i++) {
      if (p[i].revents & POLLIN) {
        ssize_t n = read(p[i].fd, buf, sizeof buf);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
          return NULL; /* the TAP was deleted under us */
        if (n > 0 && write(p[1 - i].fd, buf, (size_t) n) < 0) {
          /* a dropped frame, as on a wire */
        }
      }
      if (p[i].revents & (POLLERR | POLLHUP | POLLNVAL))
        return NULL;
    }
  }
}

/* A stand-in guest for the sandbox whose TAP is @tap: namespace, eth0 with
 * the sandbox's MAC and guest address, default route via the host address. */
static Guest *
guest_new(const char *sandbox_id, const char *tap, const VfdSubnet *subnet)
{
  Guest *g = g_new0(Guest, 1);
  char mac[VFD_MAC_STRLEN], host[VFD_IPV4_STRLEN];

  assert_int_equal(vfd_guest_mac_for(sandbox_id, mac), 0);
  vfd_ipv4_format(subnet->guest, g->ip);
  vfd_ipv4_format(subnet->host, host);
  g->host_fd = tap_attach(tap); /* in H */
  g->ns = ns_new();             /* now in G */
  g->guest_fd = tap_attach("eth0");
  run("ip link set lo up && ip link set eth0 address %s && ip addr add %s/%u dev eth0 && "
      "ip link set eth0 up && ip route add default via %s",
      mac, g->ip, subnet->prefix, host);
  ns_enter(host_ns);
  assert_int_equal(pipe2(g->stop, O_CLOEXEC), 0);
  g->pump = g_thread_new("pump", pump_main, g);
  return g;
}

static void
guest_free(Guest *g)
{
  if (!g)
    return;
  if (write(g->stop[1], "x", 1) != 1)
    g_warning("cannot stop pump");
  g_thread_join(g->pump);
  close(g->stop[0]);
  close(g->stop[1]);
  close(g->host_fd);
  close(g->guest_fd);
  close(g->ns);
  g_free(g);
}

/* ---- TCP: listeners and clients ---- */

typedef struct {
  int fd;
  int stop[2];
  GThread *thread;
} Listener;

/* Accepts and answers "PEER <address the connection came from>\n". */
static gpointer
listener_main(gpointer data)
{
  Listener *l = data;
  struct pollfd p[2] = { { l->fd, POLLIN, 0 }, { l->stop[0], POLLIN, 0 } };

  for (;;) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    char a[VFD_IPV4_STRLEN], line[64];
    int c;

    if (poll(p, 2, -1) < 0 && errno != EINTR)
      return NULL;
    if (p[1].revents)
      return NULL;
    if (!(p[0].revents & POLLIN))
      continue;
    c = accept4(l->fd, (struct sockaddr *) &peer, &len, SOCK_CLOEXEC);
    if (c < 0)
      continue;
    g_snprintf(line, sizeof line, "PEER %s\n", vfd_ipv4_format(ntohl(peer.sin_addr.s_addr), a));
    if (write(c, line, strlen(line)) < 0) {
      /* the client went away */
    }
    close(c);
  }
}

static GPtrArray *listeners; /* Listener*, of the running test */

/* A listener on 0.0.0.0:@port inside namespace @ns. */
static void
listen_in(int ns, guint16 port)
{
  Listener *l = g_new0(Listener, 1);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
  int one = 1;

  ns_enter(ns);
  l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ns_enter(host_ns);
  assert_true(l->fd >= 0);
  setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  assert_int_equal(bind(l->fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal(listen(l->fd, 16), 0);
  assert_int_equal(pipe2(l->stop, O_CLOEXEC), 0);
  l->thread = g_thread_new("listener", listener_main, l);
  g_ptr_array_add(listeners, l);
}

static void
listener_free(gpointer data)
{
  Listener *l = data;

  if (write(l->stop[1], "x", 1) != 1)
    g_warning("cannot stop listener");
  g_thread_join(l->thread);
  close(l->fd);
  close(l->stop[0]);
  close(l->stop[1]);
  g_free(l);
}

/* Connects from namespace @ns (optionally from source address @src) to
 * @dst:@port within @timeout_ms and reads the listener's line.
 * 0 with *@ret_line ("PEER a.b.c.d"); -ETIMEDOUT when nothing answered
 * (a drop); -ECONNREFUSED, -EHOSTUNREACH, ... as the kernel says. */
static int
connect_from(int ns, const char *src, const char *dst, guint16 port, int timeout_ms, char **ret_line)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
  struct pollfd p;
  char buf[128] = "";
  int fd, err = 0, off = 0;
  socklen_t len = sizeof err;

  assert_int_equal(inet_pton(AF_INET, dst, &sa.sin_addr), 1);
  ns_enter(ns);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ns_enter(host_ns);
  assert_true(fd >= 0);
  if (src) {
    struct sockaddr_in s = { .sin_family = AF_INET };
    int one = 1;
    assert_int_equal(inet_pton(AF_INET, src, &s.sin_addr), 1);
    setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one); /* a source that is not ours */
    assert_int_equal(bind(fd, (struct sockaddr *) &s, sizeof s), 0);
  }
  if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    err = errno;
    close(fd);
    return -err;
  }
  p = (struct pollfd) { fd, POLLOUT, 0 };
  if (poll(&p, 1, timeout_ms) == 0) {
    close(fd);
    return -ETIMEDOUT;
  }
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    close(fd);
    return -err;
  }
  /* read the line (until the listener closes) */
  for (;;) {
    ssize_t n;
    p = (struct pollfd) { fd, POLLIN, 0 };
    if (poll(&p, 1, timeout_ms) <= 0) {
      close(fd);
      return -ETIMEDOUT;
    }
    n = read(fd, buf + off, sizeof buf - 1 - (size_t) off);
    if (n <= 0)
      break;
    off += (int) n;
  }
  close(fd);
  buf[off] = '\0';
  if (ret_line)
    *ret_line = g_strstrip(g_strdup(buf));
  return 0;
}

static void
expect_pass(int ns, const char *dst, guint16 port, const char *peer)
{
  g_autofree char *line = NULL;
  g_autofree char *want = g_strdup_printf("PEER %s", peer);
  int r = connect_from(ns, NULL, dst, port, PASS_TIMEOUT_MS, &line);

  if (r < 0)
    fail_msg("%s:%u should be reachable: %s", dst, port, g_strerror(-r));
  assert_string_equal(line, want);
}

static void
expect_drop(int ns, const char *dst, guint16 port)
{
  int r = connect_from(ns, NULL, dst, port, DROP_TIMEOUT_MS, NULL);

  if (r != -ETIMEDOUT)
    fail_msg("%s:%u should be dropped (no answer), got: %s", dst, port, r == 0 ? "connected" : g_strerror(-r));
}

/* ---- kernel state, read independently of the code under test ---- */

static bool
fwd(const char *ifname)
{
  g_autofree char *path = g_strdup_printf("/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
  g_autofree char *text = NULL;

  assert_true(g_file_get_contents(path, &text, NULL, NULL));
  return atoi(text) != 0;
}

static bool
ip_forward(void)
{
  g_autofree char *text = NULL;
  assert_true(g_file_get_contents("/proc/sys/net/ipv4/ip_forward", &text, NULL, NULL));
  return atoi(text) != 0;
}

static void
set_fwd(const char *ifname, bool on)
{
  assert_int_equal(vfd_net_set_forwarding(NULL, ifname, on), 0);
}

/* `ip -j -d addr show dev NAME` as JSON (the first and only link). */
static JsonObject *
ip_link_json(const char *name, JsonParser **ret_parser)
{
  g_autofree char *out = run_out("ip -j -d addr show dev %s", name);
  JsonParser *parser = json_parser_new();
  JsonArray *arr;

  assert_true(json_parser_load_from_data(parser, out, -1, NULL));
  arr = json_node_get_array(json_parser_get_root(parser));
  assert_int_equal(json_array_get_length(arr), 1);
  *ret_parser = parser;
  return json_array_get_object_element(arr, 0);
}

static char *
table_text(void)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  assert_true(vfd_firewall_dump(&text, &error));
  return text;
}

/* The packet counter of the first rule in @chain containing @rule_part. */
static guint64
rule_counter(const char *chain, const char *rule_part)
{
  g_autofree char *text = table_text();
  g_autofree char *start = g_strdup_printf("chain %s {", chain);
  const char *c = text ? strstr(text, start) : NULL;
  const char *end, *r;

  assert_non_null(c);
  end = strstr(c, "\n\t}");
  r = strstr(c, rule_part);
  assert_true(r && r < end);
  r = strstr(r, "counter packets ");
  assert_non_null(r);
  return g_ascii_strtoull(r + strlen("counter packets "), NULL, 10);
}

static bool
have_nft_cli(void)
{
  g_autofree char *p = g_find_program_in_path("nft");
  return p != NULL;
}

/* ---- fixture ---- */

static int
setup(void **state)
{
  assert_true(current_ns_ino() != machine_ns_ino);
  ns_enter(base_ns);
  host_ns = ns_new();
  run("ip link set lo up");
  listeners = g_ptr_array_new_with_free_func(listener_free);
  return 0;
}

static GPtrArray *guests; /* Guest*, of the running test */
static GArray *extra_ns;  /* int fds */

static int
teardown(void **state)
{
  /* a failed assertion may have left us in another namespace */
  ns_enter(host_ns);
  g_clear_pointer(&listeners, g_ptr_array_unref);
  if (guests)
    g_clear_pointer(&guests, g_ptr_array_unref);
  if (extra_ns) {
    for (guint i = 0; i < extra_ns->len; i++)
      close(g_array_index(extra_ns, int, i));
    g_clear_pointer(&extra_ns, g_array_unref);
  }
  ns_enter(base_ns);
  close(host_ns);
  host_ns = -1;
  return 0;
}

static Guest *
add_guest(const char *sandbox_id, const char *tap, const VfdSubnet *subnet)
{
  Guest *g = guest_new(sandbox_id, tap, subnet);

  if (!guests)
    guests = g_ptr_array_new_with_free_func((GDestroyNotify) guest_free);
  g_ptr_array_add(guests, g);
  return g;
}

/* A namespace joined to H by a veth: @h_if in H with @h_addr, "eth0" in
 * the new namespace with @o_addr (both /24). Returns its fd (closed in
 * teardown). */
static int
add_peer_ns(const char *h_if, const char *h_addr, const char *o_addr)
{
  g_autofree char *cmd = NULL;
  int fd;

  fd = ns_new(); /* now in O */
  run("ip link set lo up");
  ns_enter(host_ns);
  /* create the pair in H, move one end into O by its namespace fd */
  run("ip link add %s type veth peer name peer0 && ip link set peer0 netns /proc/%d/fd/%d && "
      "ip addr add %s/24 dev %s && ip link set %s up",
      h_if, getpid(), fd, h_addr, h_if, h_if);
  cmd = g_strdup_printf("ip link set peer0 name eth0 && ip addr add %s/24 dev eth0 && ip link set eth0 up", o_addr);
  in_ns_run(fd, cmd);
  if (!extra_ns)
    extra_ns = g_array_new(FALSE, FALSE, sizeof(int));
  g_array_append_val(extra_ns, fd);
  return fd;
}

typedef struct {
  const char *id;
  char tap[IFNAMSIZ];
  VfdSubnet subnet;
} Sandbox;

/* A sandbox's network as vfiod makes it: subnet from the pool, TAP. */
static void
make_sandbox(VfdSubnetPool *pool, Sandbox *sb, const char *id)
{
  g_autoptr(GError) error = NULL;

  sb->id = id;
  assert_int_equal(vfd_tap_name_for(id, sb->tap), 0);
  assert_true(vfd_subnet_pool_alloc(pool, &sb->subnet, &error));
  if (!vfd_tap_create(sb->tap, 0, (gid_t) -1, &sb->subnet, NULL, &error))
    fail_msg("%s", error->message);
}

/* ---- tests ---- */

static int
attach_as(int fd, const char *name, uid_t uid, gid_t gid)
{
  pid_t pid = fork();
  int status;

  assert_true(pid >= 0);
  if (pid == 0) {
    struct ifreq ifr = { 0 };
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
      _exit(100);
    g_strlcpy(ifr.ifr_name, name, sizeof ifr.ifr_name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    _exit(ioctl(fd, TUNSETIFF, &ifr) < 0 ? errno : 0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* TAPs are created with the right kind, flags, owner, address and link
 * state, refused when the name exists, listed and removed. */
static void
test_tap_lifecycle(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(JsonParser) parser = NULL;
  g_auto(GStrv) names = NULL;
  char name[IFNAMSIZ];
  VfdSubnet sn;
  JsonObject *link, *info, *data, *addr;
  JsonArray *addrs, *flags;
  bool up = false;
  int fd;

  assert_int_equal(vfd_tap_name_for("sb-1a2b3c4d", name), 0);
  assert_string_equal(name, "vfd1a2b3c4d");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  if (!vfd_tap_create(name, 4242, 4243, &sn, NULL, &error))
    fail_msg("%s", error->message);

  link = ip_link_json(name, &parser);
  info = json_object_get_object_member(link, "linkinfo");
  data = json_object_get_object_member(info, "info_data");
  assert_string_equal(json_object_get_string_member(info, "info_kind"), "tun");
  assert_string_equal(json_object_get_string_member(data, "type"), "tap");
  assert_false(json_object_get_boolean_member(data, "pi"));
  assert_true(json_object_get_boolean_member(data, "vnet_hdr"));
  assert_true(json_object_get_boolean_member(data, "persist"));
  assert_int_equal(json_object_get_int_member(data, "user"), 4242);
  assert_int_equal(json_object_get_int_member(data, "group"), 4243);
  flags = json_object_get_array_member(link, "flags");
  for (guint i = 0; i < json_array_get_length(flags); i++)
    up |= g_str_equal(json_array_get_string_element(flags, i), "UP");
  assert_true(up);
  addrs = json_object_get_array_member(link, "addr_info");
  addr = NULL;
  for (guint i = 0; i < json_array_get_length(addrs); i++) {
    JsonObject *a = json_array_get_object_element(addrs, i);
    if (g_str_equal(json_object_get_string_member(a, "family"), "inet"))
      addr = a;
  }
  assert_non_null(addr);
  assert_string_equal(json_object_get_string_member(addr, "local"), "10.0.128.1");
  assert_int_equal(json_object_get_int_member(addr, "prefixlen"), 30);
  assert_string_equal(json_object_get_string_member(addr, "broadcast"), "10.0.128.3");

  /* The owner and group decide who may attach: QEMU running as 4242:4243
   * can; another uid, or the right uid outside the group, cannot (the
   * kernel checks both when both are set). */
  fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(attach_as(fd, name, 4244, 4243), EPERM);
  assert_int_equal(attach_as(fd, name, 4242, 5000), EPERM);
  assert_int_equal(attach_as(fd, name, 4242, 4243), 0);
  close(fd);

  /* the name is taken: by our TAP, or by a link of another kind */
  assert_false(vfd_tap_create(name, 0, 0, &sn, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "already exists"));
  g_clear_error(&error);
  run("ip link add vfd99 type veth peer name vfd98");
  assert_false(vfd_tap_create("vfd99", 0, 0, &sn, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);
  assert_int_equal(vfd_tap_delete("vfd99"), -EMEDIUMTYPE); /* not ours to delete */
  assert_int_equal(vfd_tap_exists("vfd99"), 1);

  /* listing sees only tun/tap links with the prefix */
  assert_int_equal(vfd_tap_list(VFD_TAP_PREFIX, &names), 0);
  assert_int_equal(g_strv_length(names), 1);
  assert_string_equal(names[0], name);
  g_clear_pointer(&names, g_strfreev);

  assert_int_equal(vfd_tap_delete(name), 0);
  assert_int_equal(vfd_tap_exists(name), 0);
  assert_int_equal(vfd_tap_delete(name), -ENOENT);
  {
    g_autofree char *out = run_out("ip -o link show");
    assert_null(strstr(out, name));
  }

  /* stale = prefix-named TAPs minus the live ones */
  {
    const char *keep[] = { "vfd2", NULL };
    VfdSubnet s2;
    for (int i = 1; i <= 3; i++) {
      g_autofree char *n = g_strdup_printf("vfd%d", i);
      assert_true(vfd_subnet_pool_alloc(pool, &s2, &error));
      assert_true(vfd_tap_create(n, 0, 0, &s2, NULL, &error));
    }
    assert_int_equal(vfd_tap_list_stale(VFD_TAP_PREFIX, keep, &names), 0);
    assert_int_equal(g_strv_length(names), 2);
    assert_string_equal(names[0], "vfd1");
    assert_string_equal(names[1], "vfd3");
  }
}

/* The pool refuses to overlap an address on a host interface; TAPs of
 * surviving sandboxes (vfd*) are not a conflict. */
static void
test_pool_host_overlap(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) def = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(VfdSubnetPool) other = vfd_subnet_pool_new("172.31.128.0/17", 30, &error);
  VfdSubnet sn;

  assert_true(vfd_subnet_pool_check_host_overlap(def, VFD_TAP_PREFIX, &error));
  run("ip link add eth9 type veth peer name eth9p && ip addr add 10.0.0.5/8 dev eth9");
  assert_false(vfd_subnet_pool_check_host_overlap(def, VFD_TAP_PREFIX, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  assert_non_null(strstr(error->message, "subnet pool 10.0.128.0/17 overlaps address 10.0.0.5/8 on eth9"));
  g_clear_error(&error);
  assert_true(vfd_subnet_pool_check_host_overlap(other, VFD_TAP_PREFIX, &error));

  /* a /32 inside the pool */
  run("ip addr add 172.31.200.9/32 dev eth9p");
  assert_false(vfd_subnet_pool_check_host_overlap(other, VFD_TAP_PREFIX, &error));
  assert_non_null(strstr(error->message, "172.31.200.9/32 on eth9p"));
  g_clear_error(&error);
  run("ip addr del 172.31.200.9/32 dev eth9p");

  /* a sandbox TAP carrying a pool address is skipped, unless asked not to */
  assert_true(vfd_subnet_pool_alloc(other, &sn, &error));
  assert_true(vfd_tap_create("vfd1", 0, 0, &sn, NULL, &error));
  assert_true(vfd_subnet_pool_check_host_overlap(other, VFD_TAP_PREFIX, &error));
  assert_false(vfd_subnet_pool_check_host_overlap(other, NULL, &error));
  assert_non_null(strstr(error->message, "172.31.128.1/30 on vfd1"));
}

/* The generated ruleset passes `nft -c`, loads, holds the expected rules,
 * and apply/remove manage the forwarding flags as documented. */
static void
test_ruleset_and_forwarding(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
  g_autofree char *script = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;
  g_autofree char *path = NULL;
  g_autofree char *owned = NULL;
  Sandbox a, b;
  int fd;

  if (!have_nft_cli())
    skip();
  run("ip link add up0 type veth peer name up0p && ip link set up0 up");
  make_sandbox(pool, &a, "sb-0000000a");
  make_sandbox(pool, &b, "sb-0000000b");
  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, true, &error));
  assert_true(vfd_firewall_state_add(st, b.tap, &b.subnet, false, &error));
  assert_true(vfd_firewall_state_set_ports(st, "8080;9000", &error));
  st->nat_uplink = g_strdup("up0");

  /* syntax and semantics checked by the nft CLI, without applying */
  script = vfd_firewall_render(st, "up0", &error);
  assert_non_null(script);
  fd = g_file_open_tmp("vfiod-nft-XXXXXX", &path, &error);
  assert_true(fd >= 0);
  close(fd);
  assert_true(g_file_set_contents(path, script, -1, &error));
  run("nft -c -f %s", path);
  unlink(path);
  assert_null(table_text()); /* -c applied nothing */

  assert_false(fwd("up0"));
  if (!vfd_firewall_apply(st, &error))
    fail_msg("%s", error->message);
  text = table_text();
  assert_non_null(text);
  {
    const char *expected[] = {
      "\"vfd0000000a\" . 10.0.128.1",
      "\"vfd0000000b\" . 10.0.128.5",
      "\"vfd0000000a\" . 10.0.128.2",
      "\"vfd0000000b\" . 10.0.128.6",
      "set nat_taps {\n\t\ttype ifname\n\t\telements = { \"vfd0000000a\" }",
      "elements = { 10.0.128.0/30 }",
      "set forwarding_owned {\n\t\ttype ifname\n\t\telements = { \"up0\" }",
      "type filter hook input priority filter - 10; policy accept;\n\t\tiifname \"vfd*\" jump sandbox_input",
      "iifname . ip saddr != @guests counter packets 0 bytes 0 drop\n\t\tct state established,related accept",
      "iifname . ip daddr @gateways tcp dport { 8080, 9000 } ct state new accept",
      "iifname \"vfd*\" oifname \"vfd*\" counter packets 0 bytes 0 drop",
      "iifname @forwarding_owned counter packets 0 bytes 0 drop",
      "iifname @nat_taps oifname \"up0\" accept",
      "iifname \"up0\" oifname @nat_taps ct state established,related accept",
      "type nat hook postrouting priority srcnat; policy accept;\n\t\toifname \"up0\" ip saddr @nat_subnets masquerade",
      NULL,
    };
    for (const char **e = expected; *e; e++)
      if (!strstr(text, *e))
        fail_msg("table lacks '%s':\n%s", *e, text);
  }
  /* flags: NAT TAP on, other TAP off, uplink on (ours), global untouched */
  assert_true(fwd(a.tap));
  assert_false(fwd(b.tap));
  assert_true(fwd("up0"));
  assert_false(fwd("all"));
  assert_false(fwd("default"));
  assert_false(ip_forward());
  owned = vfd_firewall_owned_uplink();
  assert_string_equal(owned, "up0");
  g_clear_pointer(&owned, g_free);

  /* idempotent */
  assert_true(vfd_firewall_apply(st, &error));
  text2 = table_text();
  assert_string_equal(text, text2);
  g_clear_pointer(&text2, g_free);

  /* the last NAT sandbox goes: uplink flag back to 0, record gone */
  assert_true(vfd_firewall_state_remove(st, a.tap));
  assert_true(vfd_firewall_apply(st, &error));
  assert_false(fwd("up0"));
  assert_null(vfd_firewall_owned_uplink());
  text2 = table_text();
  assert_null(strstr(text2, "nat_taps"));
  assert_null(strstr(text2, "masquerade"));
  assert_null(strstr(text2, a.tap));
  g_clear_pointer(&text2, g_free);

  /* an uplink that already forwarded is not vfiod's: left on afterwards */
  set_fwd("up0", true);
  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, true, &error));
  assert_true(vfd_firewall_apply(st, &error));
  assert_null(vfd_firewall_owned_uplink());
  text2 = table_text();
  assert_null(strstr(text2, "forwarding_owned"));
  g_clear_pointer(&text2, g_free);
  assert_true(vfd_firewall_state_remove(st, a.tap));
  assert_true(vfd_firewall_apply(st, &error));
  assert_true(fwd("up0"));
  set_fwd("up0", false);

  /* a missing uplink is a clear error, and the table is left as it was */
  text2 = table_text();
  g_free(st->nat_uplink);
  st->nat_uplink = g_strdup("nosuch0");
  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, true, &error));
  assert_false(vfd_firewall_apply(st, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  assert_non_null(strstr(error->message, "NAT uplink nosuch0"));
  g_clear_error(&error);
  {
    g_autofree char *now = table_text();
    assert_string_equal(now, text2);
  }

  /* no sandboxes: no table; remove is idempotent */
  g_array_set_size(st->sandboxes, 0);
  assert_true(vfd_firewall_apply(st, &error));
  assert_null(table_text());
  assert_true(vfd_firewall_remove(NULL, &error));
  {
    g_autofree char *rs = run_out("nft list ruleset");
    assert_string_equal(rs, "");
  }
}

/* Two sandboxes with stand-in guests: gateway port passes, other ports and
 * the other sandbox are dropped; a control run without the table shows
 * the same paths open, so it is the table that closes them. */
static void
test_isolation(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
  Sandbox a, b;
  Guest *ga, *gb;
  guint64 before;

  make_sandbox(pool, &a, "sb-00000001");
  make_sandbox(pool, &b, "sb-00000002");
  ga = add_guest(a.id, a.tap, &a.subnet);
  gb = add_guest(b.id, b.tap, &b.subnet);
  run("ip link add up0 type veth peer name up0p && ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up");
  listen_in(host_ns, 8080);
  listen_in(host_ns, 9999);
  listen_in(gb->ns, 8080);
  listen_in(ga->ns, 8080);

  /* control: no table, and both TAPs forwarding (as on a host that routes) */
  set_fwd(a.tap, true);
  set_fwd(b.tap, true);
  expect_pass(ga->ns, "10.0.128.1", 8080, "10.0.128.2");
  expect_pass(ga->ns, "10.0.128.1", 9999, "10.0.128.2");
  expect_pass(ga->ns, "10.0.128.6", 8080, "10.0.128.2");
  expect_pass(ga->ns, "10.0.128.5", 8080, "10.0.128.2");
  expect_pass(ga->ns, "192.0.2.1", 8080, "10.0.128.2");

  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, false, &error));
  assert_true(vfd_firewall_state_add(st, b.tap, &b.subnet, false, &error));
  assert_true(vfd_firewall_state_set_ports(st, "8080", &error));
  if (!vfd_firewall_apply(st, &error))
    fail_msg("%s", error->message);
  assert_false(fwd(a.tap)); /* no NAT: apply turned it off */
  /* keep forwarding on anyway, so that only the table can stop guest->guest */
  set_fwd(a.tap, true);
  set_fwd(b.tap, true);

  /* guest -> its own gateway on an allowed port: passes */
  expect_pass(ga->ns, "10.0.128.1", 8080, "10.0.128.2");
  expect_pass(gb->ns, "10.0.128.5", 8080, "10.0.128.6");
  /* guest -> host, other port: dropped (no RST, no ICMP) */
  expect_drop(ga->ns, "10.0.128.1", 9999);
  /* guest -> the other guest: dropped; and back */
  before = rule_counter("forward", "iifname \"vfd*\" oifname \"vfd*\"");
  expect_drop(ga->ns, "10.0.128.6", 8080);
  expect_drop(gb->ns, "10.0.128.2", 8080);
  assert_true(rule_counter("forward", "iifname \"vfd*\" oifname \"vfd*\"") > before);
  /* guest -> the other sandbox's gateway address or another host address */
  expect_drop(ga->ns, "10.0.128.5", 8080);
  expect_drop(ga->ns, "192.0.2.1", 8080);
  /* a spoofed source address is dropped before anything else */
  before = rule_counter("sandbox_input", "!= @guests");
  assert_int_equal(connect_from(ga->ns, "10.0.128.6", "10.0.128.1", 8080, DROP_TIMEOUT_MS, NULL), -ETIMEDOUT);
  assert_true(rule_counter("sandbox_input", "!= @guests") > before);
  /* the host may still connect into a sandbox (replies are established) */
  expect_pass(host_ns, "10.0.128.2", 8080, "10.0.128.1");
}

/* NAT for one sandbox through an uplink to an "outside" namespace. */
static void
test_nat(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
  g_autofree char *owned = NULL;
  Sandbox a, b;
  Guest *ga, *gb;
  int outside, lan;
  guint64 guard;

  if (!have_nft_cli())
    skip();
  make_sandbox(pool, &a, "sb-000000aa");
  make_sandbox(pool, &b, "sb-000000bb");
  ga = add_guest(a.id, a.tap, &a.subnet);
  gb = add_guest(b.id, b.tap, &b.subnet);
  outside = add_peer_ns("up0", "192.0.2.1", "192.0.2.2");
  in_ns_run(outside, "ip route add 10.0.128.0/17 via 192.0.2.1 && ip route add 198.51.100.0/24 via 192.0.2.1 && "
                     "nft add table inet probe && "
                     "nft add chain inet probe in '{ type filter hook input priority 0; }' && "
                     "nft add rule inet probe in tcp dport 7000 tcp flags syn counter");
  lan = add_peer_ns("lan0", "198.51.100.1", "198.51.100.2");
  in_ns_run(lan, "ip route add default via 198.51.100.1");
  listen_in(outside, 7000);
  listen_in(lan, 7001);
  listen_in(ga->ns, 8080);

  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, true, &error));
  assert_true(vfd_firewall_state_add(st, b.tap, &b.subnet, false, &error));
  assert_true(vfd_firewall_state_set_ports(st, "8080", &error));
  st->nat_uplink = g_strdup("up0");
  if (!vfd_firewall_apply(st, &error))
    fail_msg("%s", error->message);
  assert_true(fwd(a.tap));
  assert_false(fwd(b.tap));
  assert_true(fwd("up0"));
  assert_false(fwd("lan0"));
  assert_false(fwd("all"));
  assert_false(ip_forward());

  /* the NAT sandbox reaches the outside, masqueraded as the uplink */
  expect_pass(ga->ns, "192.0.2.2", 7000, "192.0.2.1");
  /* the other one does not */
  expect_drop(gb->ns, "192.0.2.2", 7000);
  /* nobody outside opens a connection into the NAT sandbox */
  expect_drop(outside, "10.0.128.2", 8080);
  /* and the uplink, now forwarding because of vfiod, forwards nothing else */
  guard = rule_counter("forward", "iifname @forwarding_owned");
  expect_drop(outside, "198.51.100.2", 7001);
  assert_true(rule_counter("forward", "iifname @forwarding_owned") > guard);

  /* Why the uplink's flag: with forwarding only on the TAP, the SYN leaves
   * (the outside counts it) but the SYN-ACK, arriving on the uplink, is not
   * forwarded. The next apply repairs the flag (it is recorded as ours). */
  set_fwd("up0", false);
  {
    g_autofree char *o1 = NULL;
    g_autofree char *o2 = NULL;
    ns_enter(outside);
    o1 = run_out("nft list chain inet probe in | grep -o 'packets [0-9]*'");
    ns_enter(host_ns);
    expect_drop(ga->ns, "192.0.2.2", 7000);
    ns_enter(outside);
    o2 = run_out("nft list chain inet probe in | grep -o 'packets [0-9]*'");
    ns_enter(host_ns);
    assert_string_not_equal(o1, o2);
  }
  assert_true(vfd_firewall_apply(st, &error));
  assert_true(fwd("up0"));
  expect_pass(ga->ns, "192.0.2.2", 7000, "192.0.2.1");

  /* release the NAT sandbox: its rules, the TAP and the uplink flag go */
  assert_true(vfd_firewall_state_remove(st, a.tap));
  assert_true(vfd_firewall_apply(st, &error));
  assert_int_equal(vfd_tap_delete(a.tap), 0);
  assert_false(fwd("up0"));
  owned = vfd_firewall_owned_uplink();
  assert_null(owned);
  expect_drop(gb->ns, "192.0.2.2", 7000);

  /* control for the guard: a host that routes on its own (flags set by the
   * operator) keeps routing; vfiod neither records nor guards it */
  set_fwd("up0", true);
  set_fwd("lan0", true);
  assert_true(vfd_firewall_state_add(st, a.tap, &a.subnet, true, &error));
  {
    /* the TAP is gone; re-create it as a new sandbox would */
    assert_true(vfd_tap_create(a.tap, 0, (gid_t) -1, &a.subnet, NULL, &error));
  }
  assert_true(vfd_firewall_apply(st, &error));
  assert_null(vfd_firewall_owned_uplink());
  expect_pass(outside, "198.51.100.2", 7001, "192.0.2.2");
}

/* vfiod (a forked stand-in) is SIGKILLed with sandboxes up; the restart's
 * reconcile keeps the live sandbox and removes everything else. */
static void
test_reconcile_after_sigkill(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autoptr(VfdFirewallState) live = vfd_firewall_state_new();
  g_auto(GStrv) removed_taps = NULL;
  g_auto(GStrv) removed_rules = NULL;
  g_auto(GStrv) taps = NULL;
  g_autofree char *text = NULL;
  g_autofree char *owned = NULL;
  Sandbox sb[3];
  int ready[2], status;
  pid_t pid;
  char c;

  run("ip link add up0 type veth peer name up0p && ip link set up0 up");
  /* the allocations vfiod made (and journaled) before it was killed */
  for (int i = 0; i < 3; i++) {
    sb[i].id = (const char *[]) { "sb-000000a1", "sb-000000b2", "sb-000000c3" }[i];
    assert_int_equal(vfd_tap_name_for(sb[i].id, sb[i].tap), 0);
    assert_true(vfd_subnet_pool_alloc(pool, &sb[i].subnet, &error));
  }

  assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* "vfiod": three sandboxes, the first with NAT, then wait to be killed */
    g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
    GError *e = NULL;
    st->nat_uplink = g_strdup("up0");
    vfd_firewall_state_set_ports(st, "8080", NULL);
    for (int i = 0; i < 3; i++)
      if (!vfd_tap_create(sb[i].tap, 0, (gid_t) -1, &sb[i].subnet, NULL, &e) ||
          !vfd_firewall_state_add(st, sb[i].tap, &sb[i].subnet, i == 0, &e))
        _exit(1);
    if (!vfd_firewall_apply(st, &e))
      _exit(2);
    if (write(ready[1], "r", 1) != 1)
      _exit(3);
    for (;;)
      pause();
  }
  close(ready[1]);
  if (read(ready[0], &c, 1) != 1) {
    waitpid(pid, &status, 0);
    fail_msg("the vfiod stand-in failed before it was ready (status %d)", status);
  }
  close(ready[0]);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  /* what the crash left */
  assert_int_equal(vfd_tap_list(VFD_TAP_PREFIX, &taps), 0);
  assert_int_equal(g_strv_length(taps), 3);
  g_clear_pointer(&taps, g_strfreev);
  assert_true(fwd("up0"));
  owned = vfd_firewall_owned_uplink();
  assert_string_equal(owned, "up0");
  g_clear_pointer(&owned, g_free);

  /* restart: the journal says only the second sandbox is alive */
  live->nat_uplink = g_strdup("up0");
  assert_true(vfd_firewall_state_set_ports(live, "8080", &error));
  assert_true(vfd_firewall_state_add(live, sb[1].tap, &sb[1].subnet, false, &error));
  if (!vfd_net_reconcile(live, &removed_taps, &removed_rules, &error))
    fail_msg("%s", error->message);
  assert_int_equal(g_strv_length(removed_taps), 2);
  assert_string_equal(removed_taps[0], sb[0].tap);
  assert_string_equal(removed_taps[1], sb[2].tap);
  assert_int_equal(g_strv_length(removed_rules), 2);
  assert_string_equal(removed_rules[0], sb[0].tap);
  assert_string_equal(removed_rules[1], sb[2].tap);
  assert_int_equal(vfd_tap_list(VFD_TAP_PREFIX, &taps), 0);
  assert_int_equal(g_strv_length(taps), 1);
  assert_string_equal(taps[0], sb[1].tap);
  g_clear_pointer(&taps, g_strfreev);
  {
    g_autofree char *out = run_out("ip -o -4 addr show dev %s", sb[1].tap);
    assert_non_null(strstr(out, "inet 10.0.128.5/30"));
  }
  text = table_text();
  assert_non_null(strstr(text, sb[1].tap));
  assert_null(strstr(text, sb[0].tap));
  assert_null(strstr(text, sb[2].tap));
  assert_null(strstr(text, "masquerade"));
  assert_false(fwd("up0"));
  assert_null(vfd_firewall_owned_uplink());
  g_clear_pointer(&removed_taps, g_strfreev);
  g_clear_pointer(&removed_rules, g_strfreev);

  /* the last sandbox is gone too: nothing at all is left */
  g_array_set_size(live->sandboxes, 0);
  assert_true(vfd_net_reconcile(live, &removed_taps, &removed_rules, &error));
  assert_int_equal(g_strv_length(removed_taps), 1);
  assert_int_equal(vfd_tap_list(VFD_TAP_PREFIX, &taps), 0);
  assert_int_equal(g_strv_length(taps), 0);
  assert_null(table_text());
  {
    g_autofree char *links = run_out("ip -o link show | grep -c vfd || true");
    g_autofree char *rs = run_out("nft list ruleset");
    assert_string_equal(g_strstrip(links), "0");
    assert_string_equal(rs, "");
  }
  assert_false(fwd("up0"));
}

/* The real daemon surviving SIGKILL with nothing left behind is checked by
 * tests/netns/daemon-restart.sh (the netns-daemon test). */

/* ---- per-TAP sysctls (issue 13, finding 9) ---- */

/* A sysctl of @ifname in the calling thread's namespace, read directly. */
static int
conf_value(const char *family, const char *ifname, const char *key)
{
  g_autofree char *path = g_strdup_printf("/proc/sys/net/%s/conf/%s/%s", family, ifname, key);
  g_autofree char *text = NULL;

  if (!g_file_get_contents(path, &text, NULL, NULL))
    fail_msg("cannot read %s", path);
  return atoi(text);
}

static void
set_conf(const char *family, const char *ifname, const char *key, const char *value)
{
  g_autofree char *path = g_strdup_printf("/proc/sys/net/%s/conf/%s/%s", family, ifname, key);
  int fd = open(path, O_WRONLY | O_CLOEXEC);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, value, strlen(value)), (ssize_t) strlen(value));
  close(fd);
}

/* The IPv6 addresses (`ip -j addr`: family inet6) on @ifname. */
static guint
inet6_count(const char *ifname)
{
  g_autoptr(JsonParser) parser = NULL;
  JsonObject *link = ip_link_json(ifname, &parser);
  JsonArray *addrs = json_object_get_array_member(link, "addr_info");
  guint n = 0;

  for (guint i = 0; i < json_array_get_length(addrs); i++)
    n += g_str_equal(json_object_get_string_member(json_array_get_object_element(addrs, i), "family"), "inet6");
  return n;
}

/* From the stand-in guest @g, sends on its eth0 what its kernel would: an
 * ARP request "who has @target? tell <guest address>", broadcast, and
 * waits @timeout_ms for the reply. True when @target was answered for. */
static bool
arp_answered(Guest *g, const char *target, int timeout_ms)
{
  struct {
    struct arphdr h;
    guint8 sha[ETH_ALEN], spa[4], tha[ETH_ALEN], tpa[4];
  } __attribute__((packed)) req = { 0 }, rep;
  struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_halen = ETH_ALEN };
  struct ifreq ifr = { 0 };
  struct in_addr tip, sip;
  gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
  bool answered = false;
  int fd;

  assert_int_equal(inet_pton(AF_INET, target, &tip), 1);
  assert_int_equal(inet_pton(AF_INET, g->ip, &sip), 1);
  ns_enter(g->ns);
  fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
  g_strlcpy(ifr.ifr_name, "eth0", sizeof ifr.ifr_name);
  to.sll_ifindex = (int) if_nametoindex("eth0");
  ns_enter(host_ns);
  assert_true(fd >= 0 && to.sll_ifindex > 0);
  assert_int_equal(ioctl(fd, SIOCGIFHWADDR, &ifr), 0);
  memset(to.sll_addr, 0xff, ETH_ALEN);
  req.h.ar_hrd = htons(ARPHRD_ETHER);
  req.h.ar_pro = htons(ETH_P_IP);
  req.h.ar_hln = ETH_ALEN;
  req.h.ar_pln = 4;
  req.h.ar_op = htons(ARPOP_REQUEST);
  memcpy(req.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  memcpy(req.spa, &sip, 4);
  memcpy(req.tpa, &tip, 4);
  assert_int_equal(sendto(fd, &req, sizeof req, 0, (struct sockaddr *) &to, sizeof to), (ssize_t) sizeof req);
  while (!answered) {
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;
    struct pollfd p = { fd, POLLIN, 0 };

    if (left <= 0 || poll(&p, 1, (int) left) <= 0)
      break;
    if (recv(fd, &rep, sizeof rep, 0) == (ssize_t) sizeof rep && rep.h.ar_op == htons(ARPOP_REPLY) &&
        memcmp(rep.spa, &tip, 4) == 0)
      answered = true;
  }
  close(fd);
  return answered;
}

/* A TAP vfiod makes has arp_ignore=1, arp_announce=2 and IPv6 off: no
 * link-local address once a guest is attached (an unhardened TAP, the
 * control, gets one), and the host no longer answers a guest's ARP for its
 * addresses on other interfaces (it did with arp_ignore=0, the kernel's
 * default: the guest could map the host's addresses). */
static void
test_tap_sysctls(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  g_autofree char *host_addr = NULL;
  bool have_ipv6 = g_file_test("/proc/sys/net/ipv6", G_FILE_TEST_IS_DIR);
  Sandbox a;
  Guest *g;
  int ctl;

  make_sandbox(pool, &a, "sb-000000a1");
  assert_int_equal(conf_value("ipv4", a.tap, "arp_ignore"), 1);
  assert_int_equal(conf_value("ipv4", a.tap, "arp_announce"), 2);
  if (have_ipv6)
    assert_int_equal(conf_value("ipv6", a.tap, "disable_ipv6"), 1);
  else
    printf("# no IPv6 in this kernel: disable_ipv6 not checked\n");
  /* the namespace-wide defaults are untouched: only the TAP changed */
  assert_int_equal(conf_value("ipv4", "all", "arp_ignore"), 0);
  assert_int_equal(conf_value("ipv4", "default", "arp_ignore"), 0);

  g = add_guest(a.id, a.tap, &a.subnet);
  run("ip link add up0 type veth peer name up0p && ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up "
      "&& ip link set up0p up");
  host_addr = g_strdup_printf("%u.%u.%u.%u", a.subnet.host >> 24, (a.subnet.host >> 16) & 0xff,
                              (a.subnet.host >> 8) & 0xff, a.subnet.host & 0xff);

  /* IPv6: the control TAP (attached, up, made without vfiod) gets its
   * link-local address within 2 s; the sandbox TAP (attached, up) none. */
  ctl = tap_attach("vfdctl0");
  run("ip link set vfdctl0 up");
  if (have_ipv6) {
    for (int i = 0; i < 40 && inet6_count("vfdctl0") == 0; i++)
      g_usleep(50 * 1000);
    assert_true(inet6_count("vfdctl0") > 0);
    assert_int_equal(inet6_count(a.tap), 0);
  }
  close(ctl);

  /* ARP: the guest's gateway (the TAP's own address) is answered ... */
  assert_true(arp_answered(g, host_addr, PASS_TIMEOUT_MS));
  /* ... the host's address on the uplink is not */
  assert_false(arp_answered(g, "192.0.2.1", DROP_TIMEOUT_MS));
  /* control: with the kernel's default arp_ignore=0 it would be */
  set_conf("ipv4", a.tap, "arp_ignore", "0\n");
  assert_true(arp_answered(g, "192.0.2.1", PASS_TIMEOUT_MS));
  set_conf("ipv4", a.tap, "arp_ignore", "1\n");
  assert_false(arp_answered(g, "192.0.2.1", DROP_TIMEOUT_MS));
}

/* Writes @text to @root/@rel, making the directories. */
static void
put_file(const char *root, const char *rel, const char *text)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);

  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  assert_true(g_file_set_contents(path, text, -1, NULL));
}

static char *
get_file(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  char *text = NULL;

  assert_true(g_file_get_contents(path, &text, NULL, NULL));
  return text;
}

/* The sysctls go through [testing] proc_root, one component at a time
 * without following symlinks; a failure fails the TAP's creation with a
 * message naming the file, and the TAP is gone afterwards. */
static void
test_tap_sysctls_proc_root(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *root = g_dir_make_tmp("vfiod-proc-XXXXXX", NULL);
  g_autofree char *victim = g_build_filename(root, "victim", NULL);
  g_autofree char *rm = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, NULL);
  VfdSubnet sn;
  const char *v4 = "sys/net/ipv4/conf/vfd7/";

  assert_non_null(root);
  /* a fake tree: written there, not in the real /proc */
  put_file(root, "sys/net/ipv4/conf/vfd7/arp_ignore", "0\n");
  put_file(root, "sys/net/ipv4/conf/vfd7/arp_announce", "0\n");
  put_file(root, "sys/net/ipv6/conf/vfd7/disable_ipv6", "0\n");
  if (!vfd_tap_harden(root, "vfd7", &error))
    fail_msg("%s", error->message);
  {
    g_autofree char *a = get_file(root, "sys/net/ipv4/conf/vfd7/arp_ignore");
    g_autofree char *b = get_file(root, "sys/net/ipv4/conf/vfd7/arp_announce");
    g_autofree char *c = get_file(root, "sys/net/ipv6/conf/vfd7/disable_ipv6");
    assert_string_equal(a, "1\n");
    assert_string_equal(b, "2\n");
    assert_string_equal(c, "1\n");
  }

  /* no IPv6 in the kernel: skipped quietly */
  rm = g_strdup_printf("rm -rf %s/sys/net/ipv6", root);
  run("%s", rm);
  assert_true(vfd_tap_harden(root, "vfd7", &error));

  /* IPv6 there but not for this TAP: an error */
  put_file(root, "sys/net/ipv6/conf/other/disable_ipv6", "0\n");
  assert_false(vfd_tap_harden(root, "vfd7", &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_FOUND));
  assert_non_null(strstr(error->message, "cannot set "));
  assert_non_null(strstr(error->message, "/sys/net/ipv6/conf/vfd7/disable_ipv6 to 1"));
  g_clear_error(&error);

  /* symlinks are not followed, at the leaf or on the way: the file they
   * point to is not written */
  put_file(root, "victim", "0\n");
  {
    g_autofree char *leaf = g_build_filename(root, v4, "arp_announce", NULL);
    g_autofree char *conf = g_build_filename(root, "sys/net/ipv4/conf", NULL);
    g_autofree char *real = g_build_filename(root, "realconf", NULL);
    g_autofree char *v = NULL;

    assert_int_equal(unlink(leaf), 0);
    assert_int_equal(symlink(victim, leaf), 0);
    assert_false(vfd_tap_harden(root, "vfd7", &error));
    assert_non_null(strstr(error->message, "/sys/net/ipv4/conf/vfd7/arp_announce to 2"));
    g_clear_error(&error);
    v = get_file(root, "victim");
    assert_string_equal(v, "0\n");

    assert_int_equal(rename(conf, real), 0);
    assert_int_equal(symlink(real, conf), 0);
    assert_false(vfd_tap_harden(root, "vfd7", &error));
    assert_non_null(strstr(error->message, "arp_ignore to 1"));
    g_clear_error(&error);
  }

  /* the real thing with a proc root that has no sysctls: the create fails,
   * saying which file, and no TAP is left behind */
  assert_true(vfd_subnet_pool_alloc(pool, &sn, NULL));
  assert_false(vfd_tap_create("vfd8", 0, 0, &sn, root, &error));
  assert_non_null(error);
  assert_non_null(strstr(error->message, "TAP vfd8: cannot set "));
  assert_non_null(strstr(error->message, "/sys/net/ipv4/conf/vfd8/arp_ignore to 1"));
  assert_int_equal(vfd_tap_exists("vfd8"), 0);
  g_clear_error(&error);
  assert_false(vfd_tap_harden(NULL, "../../x", &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));

  g_free(rm);
  rm = g_strdup_printf("rm -rf %s", root);
  run("%s", rm);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_tap_lifecycle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_pool_host_overlap, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ruleset_and_forwarding, setup, teardown),
    cmocka_unit_test_setup_teardown(test_isolation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_nat, setup, teardown),
    cmocka_unit_test_setup_teardown(test_reconcile_after_sigkill, setup, teardown),
    cmocka_unit_test_setup_teardown(test_tap_sysctls, setup, teardown),
    cmocka_unit_test_setup_teardown(test_tap_sysctls_proc_root, setup, teardown),
  };
  struct stat st;

  if (geteuid() != 0) {
    printf("SKIP: the netns suite needs root (it creates network namespaces, TAPs and nft tables)\n");
    return 77;
  }
  if (access("/dev/net/tun", R_OK | W_OK) < 0) {
    printf("SKIP: /dev/net/tun is not available (%s)\n", g_strerror(errno));
    return 77;
  }
  if (!have_nft_cli() || !g_find_program_in_path("ip")) {
    printf("SKIP: the netns suite needs the 'ip' (iproute2) and 'nft' (nftables) commands\n");
    return 77;
  }
  if (stat("/proc/thread-self/ns/net", &st) < 0) {
    printf("SKIP: no /proc/thread-self/ns/net (%s)\n", g_strerror(errno));
    return 77;
  }
  machine_ns_ino = st.st_ino;
  /* From here on, never in the machine's own namespace. */
  if (unshare(CLONE_NEWNET) < 0) {
    printf("SKIP: cannot create a network namespace: %s\n", g_strerror(errno));
    return 77;
  }
  base_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (base_ns < 0 || current_ns_ino() == machine_ns_ino) {
    printf("FAIL: not in a namespace of our own after unshare\n");
    return 1;
  }
  /* A writer to a closed listener/pump socket must not kill us. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
