/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "firewall.h"

#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <unistd.h>

#include "error.h"
#include "tap.h"

typedef struct nft_ctx NftCtx;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NftCtx, nft_ctx_free)

#define TABLE "inet vfiod"

/* ---- state ---- */

VfdFirewallState *
vfd_firewall_state_new(void)
{
  VfdFirewallState *state = g_new0(VfdFirewallState, 1);

  state->sandboxes = g_array_new(FALSE, TRUE, sizeof(VfdFirewallSandbox));
  state->host_ports = g_array_new(FALSE, TRUE, sizeof(guint16));
  state->proc_root = g_strdup("/proc");
  return state;
}

void
vfd_firewall_state_free(VfdFirewallState *state)
{
  if (!state)
    return;
  g_array_unref(state->sandboxes);
  g_array_unref(state->host_ports);
  g_free(state->nat_uplink);
  g_free(state->proc_root);
  g_free(state);
}

const VfdFirewallSandbox *
vfd_firewall_state_lookup(const VfdFirewallState *state, const char *tap)
{
  for (guint i = 0; i < state->sandboxes->len; i++) {
    const VfdFirewallSandbox *sb = &g_array_index(state->sandboxes, VfdFirewallSandbox, i);
    if (g_str_equal(sb->tap, tap))
      return sb;
  }
  return NULL;
}

gboolean
vfd_firewall_state_add(VfdFirewallState *state, const char *tap, const VfdSubnet *subnet, bool nat, GError **error)
{
  VfdFirewallSandbox sb = { 0 };

  if (!vfd_tap_name_valid(tap)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a vfiod TAP name", tap ? tap : "");
    return FALSE;
  }
  if (vfd_firewall_state_lookup(state, tap)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "TAP %s is already in the firewall state", tap);
    return FALSE;
  }
  g_strlcpy(sb.tap, tap, sizeof sb.tap);
  sb.subnet = *subnet;
  sb.nat = nat;
  g_array_append_val(state->sandboxes, sb);
  return TRUE;
}

bool
vfd_firewall_state_remove(VfdFirewallState *state, const char *tap)
{
  for (guint i = 0; i < state->sandboxes->len; i++) {
    if (g_str_equal(g_array_index(state->sandboxes, VfdFirewallSandbox, i).tap, tap)) {
      g_array_remove_index(state->sandboxes, i);
      return true;
    }
  }
  return false;
}

static gint
cmp_port(gconstpointer a, gconstpointer b)
{
  return (gint) * (const guint16 *) a - (gint) * (const guint16 *) b;
}

gboolean
vfd_firewall_state_set_ports(VfdFirewallState *state, const char *ports, GError **error)
{
  g_autoptr(GArray) parsed = g_array_new(FALSE, TRUE, sizeof(guint16));
  g_auto(GStrv) parts = g_strsplit_set(ports ? ports : "", ";,", -1);

  for (char **p = parts; *p; p++) {
    char *s = g_strstrip(*p);
    guint64 v = 0;
    guint16 port;

    if (!*s)
      continue;
    if (!g_ascii_string_to_unsigned(s, 10, 1, 65535, &v, NULL)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a TCP port (1..65535)", s);
      return FALSE;
    }
    port = (guint16) v;
    g_array_append_val(parsed, port);
  }
  g_array_sort(parsed, cmp_port);
  /* unique */
  for (guint i = 1; i < parsed->len;) {
    if (g_array_index(parsed, guint16, i) == g_array_index(parsed, guint16, i - 1))
      g_array_remove_index(parsed, i);
    else
      i++;
  }
  g_array_unref(state->host_ports);
  state->host_ports = g_steal_pointer(&parsed);
  return TRUE;
}

/* ---- names ---- */

/* A plain interface name that is safe inside nft double quotes and in a
 * /proc/sys path: 1..15 of [A-Za-z0-9_.@+-], not "." or "..". */
static bool
ifname_plain(const char *name)
{
  gsize n = name ? strlen(name) : 0;

  if (n < 1 || n >= IFNAMSIZ || g_str_equal(name, ".") || g_str_equal(name, ".."))
    return false;
  for (const char *c = name; *c; c++)
    if (!g_ascii_isalnum(*c) && !strchr("_.@+-", *c))
      return false;
  return true;
}

/* ---- rendering ---- */

static gint
cmp_sandbox(gconstpointer a, gconstpointer b)
{
  return strcmp(((const VfdFirewallSandbox *) a)->tap, ((const VfdFirewallSandbox *) b)->tap);
}

/* Appends "\t\telements = { ... }\n" with one element per sandbox selected
 * by @want (all when NULL-returning predicate), formatted by @fmt_one.
 * Nothing when no sandbox is selected (an empty set has no elements line). */
typedef void (*ElementFunc)(GString *out, const VfdFirewallSandbox *sb);

static void
elements(GString *out, GArray *sorted, bool nat_only, ElementFunc fn)
{
  bool first = true;

  for (guint i = 0; i < sorted->len; i++) {
    const VfdFirewallSandbox *sb = &g_array_index(sorted, VfdFirewallSandbox, i);
    if (nat_only && !sb->nat)
      continue;
    g_string_append(out, first ? "\t\telements = { " : ",\n\t\t\t     ");
    fn(out, sb);
    first = false;
  }
  if (!first)
    g_string_append(out, " }\n");
}

static void
el_gateway(GString *out, const VfdFirewallSandbox *sb)
{
  char a[VFD_IPV4_STRLEN];
  g_string_append_printf(out, "\"%s\" . %s", sb->tap, vfd_ipv4_format(sb->subnet.host, a));
}

/* The gateways set: each TAP with its own host address and, when there is
 * one, with the stable gateway address. */
static void
gateway_elements(GString *out, GArray *sorted, guint32 gateway)
{
  char a[VFD_IPV4_STRLEN];

  for (guint i = 0; i < sorted->len; i++) {
    const VfdFirewallSandbox *sb = &g_array_index(sorted, VfdFirewallSandbox, i);
    g_string_append(out, i == 0 ? "\t\telements = { " : ",\n\t\t\t     ");
    el_gateway(out, sb);
    if (gateway)
      g_string_append_printf(out, ",\n\t\t\t     \"%s\" . %s", sb->tap, vfd_ipv4_format(gateway, a));
  }
  if (sorted->len > 0)
    g_string_append(out, " }\n");
}

static void
el_guest(GString *out, const VfdFirewallSandbox *sb)
{
  char a[VFD_IPV4_STRLEN];
  g_string_append_printf(out, "\"%s\" . %s", sb->tap, vfd_ipv4_format(sb->subnet.guest, a));
}

static void
el_tap(GString *out, const VfdFirewallSandbox *sb)
{
  g_string_append_printf(out, "\"%s\"", sb->tap);
}

static void
el_subnet(GString *out, const VfdFirewallSandbox *sb)
{
  g_autofree char *s = vfd_subnet_to_string(&sb->subnet);
  g_string_append(out, s);
}

char *
vfd_firewall_render(const VfdFirewallState *state, const char *forwarding_owned_uplink, GError **error)
{
  g_autoptr(GString) out = g_string_new(NULL);
  g_autoptr(GArray) sorted = g_array_copy(state->sandboxes);
  const char *uplink = state->nat_uplink && *state->nat_uplink ? state->nat_uplink : NULL;
  bool any_nat = false;

  for (guint i = 0; i < sorted->len; i++) {
    const VfdFirewallSandbox *sb = &g_array_index(sorted, VfdFirewallSandbox, i);
    if (!vfd_tap_name_valid(sb->tap)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a vfiod TAP name", sb->tap);
      return NULL;
    }
    if (sb->nat && !uplink) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "sandbox TAP %s asks for NAT but no NAT uplink is configured", sb->tap);
      return NULL;
    }
    any_nat |= sb->nat;
  }
  if (uplink && (!ifname_plain(uplink) || g_str_has_prefix(uplink, VFD_TAP_PREFIX))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "NAT uplink '%s' is not an interface name (or is named like a sandbox TAP, " VFD_TAP_PREFIX "*)", uplink);
    return NULL;
  }
  if (forwarding_owned_uplink && !ifname_plain(forwarding_owned_uplink)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not an interface name",
                forwarding_owned_uplink);
    return NULL;
  }
  g_array_sort(sorted, cmp_sandbox);
  if (!any_nat)
    uplink = NULL;

  /* Create-then-delete makes the delete succeed when there is no table;
   * nft sends the whole buffer as one transaction. */
  g_string_append(out, "table " TABLE "\ndelete table " TABLE "\ntable " TABLE " {\n");

  g_string_append(out, "\tset gateways {\n\t\ttype ifname . ipv4_addr\n");
  gateway_elements(out, sorted, state->gateway);
  g_string_append(out, "\t}\n\n\tset guests {\n\t\ttype ifname . ipv4_addr\n");
  elements(out, sorted, false, el_guest);
  g_string_append(out, "\t}\n");
  if (uplink) {
    g_string_append(out, "\n\tset nat_taps {\n\t\ttype ifname\n");
    elements(out, sorted, true, el_tap);
    g_string_append(out, "\t}\n\n\tset nat_subnets {\n\t\ttype ipv4_addr\n\t\tflags interval\n");
    elements(out, sorted, true, el_subnet);
    g_string_append(out, "\t}\n");
  }
  if (forwarding_owned_uplink)
    g_string_append_printf(out,
                           "\n\tset forwarding_owned {\n\t\ttype ifname\n\t\telements = { \"%s\" }\n\t}\n",
                           forwarding_owned_uplink);

  /* input: what a guest may send to the host itself. */
  g_string_append(out, "\n\tchain input {\n"
                       "\t\ttype filter hook input priority filter - 10; policy accept;\n"
                       "\t\tiifname \"" VFD_TAP_PREFIX "*\" jump sandbox_input\n"
                       "\t}\n\n"
                       "\tchain sandbox_input {\n"
                       "\t\tiifname . ip saddr != @guests counter drop\n"
                       "\t\tct state established,related accept\n");
  if (state->host_ports->len > 0) {
    g_string_append(out, "\t\tiifname . ip daddr @gateways tcp dport { ");
    for (guint i = 0; i < state->host_ports->len; i++)
      g_string_append_printf(out, "%s%u", i ? ", " : "", g_array_index(state->host_ports, guint16, i));
    g_string_append(out, " } ct state new accept\n");
  }
  g_string_append(out, "\t\tcounter drop\n\t}\n");

  /* forward: sandbox <-> sandbox never; NAT sandboxes <-> uplink. */
  g_string_append(out, "\n\tchain forward {\n"
                       "\t\ttype filter hook forward priority filter - 10; policy accept;\n"
                       "\t\tiifname \"" VFD_TAP_PREFIX "*\" oifname \"" VFD_TAP_PREFIX "*\" counter drop\n"
                       "\t\tiifname \"" VFD_TAP_PREFIX "*\" jump sandbox_out\n"
                       "\t\toifname \"" VFD_TAP_PREFIX "*\" jump sandbox_in\n");
  if (forwarding_owned_uplink)
    g_string_append(out, "\t\tiifname @forwarding_owned counter drop\n");
  g_string_append(out, "\t}\n\n"
                       "\tchain sandbox_out {\n"
                       "\t\tiifname . ip saddr != @guests counter drop\n");
  if (uplink)
    g_string_append_printf(out, "\t\tmeta nfproto ipv4 iifname @nat_taps oifname \"%s\" accept\n", uplink);
  g_string_append(out, "\t\tcounter drop\n\t}\n\n\tchain sandbox_in {\n");
  if (uplink)
    g_string_append_printf(out, "\t\tiifname \"%s\" oifname @nat_taps ct state established,related accept\n",
                           uplink);
  g_string_append(out, "\t\tcounter drop\n\t}\n");

  if (uplink)
    g_string_append_printf(out,
                           "\n\tchain postrouting {\n"
                           "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                           "\t\toifname \"%s\" ip saddr @nat_subnets masquerade\n"
                           "\t}\n",
                           uplink);
  g_string_append(out, "}\n");
  return g_string_free(g_steal_pointer(&out), FALSE);
}

/* ---- libnftables ---- */

static NftCtx *
nft_new(void)
{
  NftCtx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

  if (!ctx)
    return NULL;
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return ctx;
}

/* Runs @cmd in a fresh context (bound to the calling thread's namespace).
 * 0 with *@ret_output (may be NULL) set; -1 with *@ret_err_msg (may be
 * NULL) holding nft's error text. */
static int
nft_run(const char *cmd, char **ret_output, char **ret_err_msg)
{
  g_autoptr(NftCtx) ctx = nft_new();
  const char *e;

  if (!ctx) {
    if (ret_err_msg)
      *ret_err_msg = g_strdup("cannot create a libnftables context");
    return -1;
  }
  if (nft_run_cmd_from_buffer(ctx, cmd) != 0) {
    e = nft_ctx_get_error_buffer(ctx);
    if (ret_err_msg)
      *ret_err_msg = g_strstrip(g_strdup(e && *e ? e : "nft failed without a message"));
    return -1;
  }
  if (ret_output)
    *ret_output = g_strdup(nft_ctx_get_output_buffer(ctx));
  return 0;
}

static bool
table_exists(void)
{
  g_autofree char *out = NULL;

  g_auto(GStrv) lines = NULL;

  if (nft_run("list tables inet", &out, NULL) < 0)
    return false;
  lines = g_strsplit(out, "\n", -1);
  for (char **line = lines; *line; line++)
    if (g_str_equal(g_strstrip(*line), "table " TABLE))
      return true;
  return false;
}

/* The quoted names in "list set inet vfiod @set"'s output, in order;
 * empty when the set (or table) does not exist. */
static GPtrArray *
set_names(const char *set)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *cmd = g_strdup_printf("list set " TABLE " %s", set);
  g_autofree char *out = NULL;
  g_autoptr(GRegex) re = NULL;
  g_autoptr(GMatchInfo) mi = NULL;

  if (!table_exists() || nft_run(cmd, &out, NULL) < 0)
    return g_steal_pointer(&names);
  re = g_regex_new("\"([^\"]+)\"", 0, 0, NULL);
  g_regex_match(re, out, 0, &mi);
  while (g_match_info_matches(mi)) {
    char *n = g_match_info_fetch(mi, 1);
    if (!g_ptr_array_find_with_equal_func(names, n, g_str_equal, NULL))
      g_ptr_array_add(names, n);
    else
      g_free(n);
    g_match_info_next(mi, NULL);
  }
  return g_steal_pointer(&names);
}

char *
vfd_firewall_owned_uplink(void)
{
  g_autoptr(GPtrArray) names = set_names("forwarding_owned");

  return names->len > 0 ? g_strdup(g_ptr_array_index(names, 0)) : NULL;
}

gboolean
vfd_firewall_dump(char **ret_text, GError **error)
{
  g_autofree char *out = NULL;
  g_autofree char *msg = NULL;

  if (!table_exists()) {
    *ret_text = NULL;
    return TRUE;
  }
  if (nft_run("list table " TABLE, &out, &msg) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot list nft table %s: %s", TABLE, msg);
    return FALSE;
  }
  *ret_text = g_steal_pointer(&out);
  return TRUE;
}

/* ---- forwarding flags ---- */

static char *
forwarding_path(const char *proc_root, const char *ifname)
{
  return g_build_filename(proc_root ? proc_root : "/proc", "sys/net/ipv4/conf", ifname, "forwarding", NULL);
}

static bool
forwarding_name_ok(const char *ifname)
{
  return ifname_plain(ifname) && !g_str_equal(ifname, "all") && !g_str_equal(ifname, "default");
}

int
vfd_net_get_forwarding(const char *proc_root, const char *ifname, bool *ret_on)
{
  g_autofree char *path = NULL;
  char buf[16] = "";
  ssize_t n;
  int fd;

  if (!forwarding_name_ok(ifname))
    return -EINVAL;
  path = forwarding_path(proc_root, ifname);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  n = read(fd, buf, sizeof buf - 1);
  if (n < 0) {
    int r = -errno;
    close(fd);
    return r;
  }
  close(fd);
  buf[n] = '\0';
  *ret_on = g_ascii_strtoll(buf, NULL, 10) != 0;
  return 0;
}

int
vfd_net_set_forwarding(const char *proc_root, const char *ifname, bool on)
{
  g_autofree char *path = NULL;
  int fd, r = 0;

  if (!forwarding_name_ok(ifname))
    return -EINVAL;
  path = forwarding_path(proc_root, ifname);
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (write(fd, on ? "1\n" : "0\n", 2) != 2)
    r = errno ? -errno : -EIO;
  close(fd);
  return r;
}

/* ---- apply ---- */

static void
keep_first_error(GError **first, GError *e)
{
  if (!*first)
    *first = e;
  else
    g_error_free(e);
}

gboolean
vfd_firewall_apply(const VfdFirewallState *state, GError **error)
{
  const char *uplink = state->nat_uplink && *state->nat_uplink ? state->nat_uplink : NULL;
  g_autofree char *owned = vfd_firewall_owned_uplink();
  g_autofree char *script = NULL;
  g_autofree char *msg = NULL;
  GError *first = NULL;
  const char *guard = NULL; /* the uplink the new table records as ours */
  bool need_nat = false, turn_on = false;
  int r;

  for (guint i = 0; i < state->sandboxes->len; i++)
    need_nat |= g_array_index(state->sandboxes, VfdFirewallSandbox, i).nat;
  need_nat = need_nat && uplink;

  /* 1. Decide about the uplink's forwarding flag. */
  if (need_nat) {
    if (owned && g_str_equal(owned, uplink)) {
      guard = uplink;
      turn_on = true; /* idempotent: completes a crash between table and flag */
    } else {
      bool on = false;
      r = vfd_net_get_forwarding(state->proc_root, uplink, &on);
      if (r < 0) {
        g_set_error(error, VFD_ERROR, r == -ENOENT ? VFD_ERROR_INVALID_ARGUMENT : VFD_ERROR_FAILED,
                    "NAT uplink %s: cannot read its forwarding flag: %s", uplink,
                    r == -ENOENT ? "no such interface" : g_strerror(-r));
        return FALSE;
      }
      if (!on) {
        guard = uplink;
        turn_on = true;
      }
    }
  }

  /* Render first: an invalid state changes nothing. */
  if (state->sandboxes->len > 0) {
    script = vfd_firewall_render(state, guard, error);
    if (!script)
      return FALSE;
  }

  /* 2. Give back an uplink flag we no longer need, before the table that
   * records it goes. */
  if (owned && g_strcmp0(owned, guard) != 0) {
    r = vfd_net_set_forwarding(state->proc_root, owned, false);
    if (r < 0 && r != -ENOENT) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot turn IPv4 forwarding off again on %s: %s", owned,
                  g_strerror(-r));
      return FALSE;
    }
  }

  /* 3. The table, whole, in one transaction; no sandboxes: no table. */
  if (state->sandboxes->len == 0) {
    if (table_exists() && nft_run("delete table " TABLE, NULL, &msg) < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot delete nft table %s: %s", TABLE, msg);
      return FALSE;
    }
  } else {
    if (nft_run(script, NULL, &msg) < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "nft refused the %s table: %s", TABLE, msg);
      return FALSE;
    }
  }

  /* 4. Per-TAP forwarding: on only for NAT sandboxes. */
  for (guint i = 0; i < state->sandboxes->len; i++) {
    const VfdFirewallSandbox *sb = &g_array_index(state->sandboxes, VfdFirewallSandbox, i);
    bool want = sb->nat && uplink;

    r = vfd_net_set_forwarding(state->proc_root, sb->tap, want);
    if (r < 0)
      keep_first_error(&first, g_error_new(VFD_ERROR, VFD_ERROR_FAILED,
                                           "TAP %s: cannot set IPv4 forwarding to %d: %s", sb->tap, want,
                                           r == -ENOENT ? "no such interface" : g_strerror(-r)));
  }

  /* 5. The uplink, recorded as ours in the table written above. */
  if (turn_on) {
    r = vfd_net_set_forwarding(state->proc_root, uplink, true);
    if (r < 0)
      keep_first_error(&first, g_error_new(VFD_ERROR, VFD_ERROR_FAILED,
                                           "NAT uplink %s: cannot turn IPv4 forwarding on: %s", uplink,
                                           g_strerror(-r)));
  }

  if (first) {
    g_propagate_error(error, first);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_firewall_remove(const char *proc_root, GError **error)
{
  g_autofree char *owned = vfd_firewall_owned_uplink();
  g_autofree char *msg = NULL;
  int r;

  if (owned) {
    r = vfd_net_set_forwarding(proc_root, owned, false);
    if (r < 0 && r != -ENOENT) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot turn IPv4 forwarding off again on %s: %s", owned,
                  g_strerror(-r));
      return FALSE;
    }
  }
  if (table_exists() && nft_run("delete table " TABLE, NULL, &msg) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot delete nft table %s: %s", TABLE, msg);
    return FALSE;
  }
  return TRUE;
}

/* ---- reconcile ---- */

static GStrv
steal_strv(GPtrArray *names)
{
  g_ptr_array_add(names, NULL);
  return (GStrv) g_ptr_array_free(names, FALSE);
}

static gint
cmp_str_ptr(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

gboolean
vfd_net_reconcile(const VfdFirewallState *state, GStrv *ret_removed_taps, GStrv *ret_removed_rules,
                  GError **error)
{
  g_autoptr(GPtrArray) keep = g_ptr_array_new();
  g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) old_rules = set_names("gateways");
  g_autoptr(GPtrArray) dropped_rules = g_ptr_array_new_with_free_func(g_free);
  g_auto(GStrv) stale = NULL;
  GError *first = NULL;
  int r;

  for (guint i = 0; i < state->sandboxes->len; i++)
    g_ptr_array_add(keep, g_array_index(state->sandboxes, VfdFirewallSandbox, i).tap);
  g_ptr_array_add(keep, NULL);

  r = vfd_tap_list_stale(VFD_TAP_PREFIX, (const char *const *) keep->pdata, &stale);
  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot list TAP devices: %s", g_strerror(-r));
    return FALSE;
  }
  for (char **n = stale; *n; n++) {
    /* A tun/tap named "vfd..." that is not a vfiod TAP name is not ours. */
    if (!vfd_tap_name_valid(*n))
      continue;
    r = vfd_tap_delete(*n);
    if (r < 0 && r != -ENOENT)
      keep_first_error(&first, g_error_new(VFD_ERROR, VFD_ERROR_FAILED, "cannot delete stale TAP %s: %s", *n,
                                           g_strerror(-r)));
    else
      g_ptr_array_add(removed, g_strdup(*n));
  }

  {
    GError *e = NULL;
    if (!vfd_firewall_apply(state, &e))
      keep_first_error(&first, e);
  }

  for (guint i = 0; i < old_rules->len; i++) {
    const char *n = g_ptr_array_index(old_rules, i);
    if (!vfd_firewall_state_lookup(state, n))
      g_ptr_array_add(dropped_rules, g_strdup(n));
  }
  g_ptr_array_sort(removed, cmp_str_ptr);
  g_ptr_array_sort(dropped_rules, cmp_str_ptr);
  if (ret_removed_taps)
    *ret_removed_taps = steal_strv(g_steal_pointer(&removed));
  if (ret_removed_rules)
    *ret_removed_rules = steal_strv(g_steal_pointer(&dropped_rules));
  if (first) {
    g_propagate_error(error, first);
    return FALSE;
  }
  return TRUE;
}
