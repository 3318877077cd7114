/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The firewall without the kernel: the exact nft ruleset text for a state
 * (the netns suite loads the same text into a real kernel), validation of
 * names and ports, and the forwarding-flag files under a fake /proc. */
#include <errno.h>
#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "error.h"
#include "firewall.h"

static VfdFirewallState *
two_sandboxes(const char *uplink)
{
  VfdFirewallState *state = vfd_firewall_state_new();
  VfdSubnet a, b;

  assert_int_equal(vfd_subnet_parse("10.0.128.0/30", &a), 0);
  assert_int_equal(vfd_subnet_parse("10.0.128.4/30", &b), 0);
  /* added out of order: the text is sorted by TAP name */
  assert_true(vfd_firewall_state_add(state, "vfd00000002", &b, false, NULL));
  assert_true(vfd_firewall_state_add(state, "vfd00000001", &a, uplink != NULL, NULL));
  assert_true(vfd_firewall_state_set_ports(state, "9000;8080, 8080", NULL));
  state->nat_uplink = g_strdup(uplink);
  return state;
}

static const char golden_nat[] =
  "table inet vfiod\n"
  "delete table inet vfiod\n"
  "table inet vfiod {\n"
  "\tset gateways {\n"
  "\t\ttype ifname . ipv4_addr\n"
  "\t\telements = { \"vfd00000001\" . 10.0.128.1,\n"
  "\t\t\t     \"vfd00000002\" . 10.0.128.5 }\n"
  "\t}\n"
  "\n"
  "\tset guests {\n"
  "\t\ttype ifname . ipv4_addr\n"
  "\t\telements = { \"vfd00000001\" . 10.0.128.2,\n"
  "\t\t\t     \"vfd00000002\" . 10.0.128.6 }\n"
  "\t}\n"
  "\n"
  "\tset nat_taps {\n"
  "\t\ttype ifname\n"
  "\t\telements = { \"vfd00000001\" }\n"
  "\t}\n"
  "\n"
  "\tset nat_subnets {\n"
  "\t\ttype ipv4_addr\n"
  "\t\tflags interval\n"
  "\t\telements = { 10.0.128.0/30 }\n"
  "\t}\n"
  "\n"
  "\tset forwarding_owned {\n"
  "\t\ttype ifname\n"
  "\t\telements = { \"eth0\" }\n"
  "\t}\n"
  "\n"
  "\tchain input {\n"
  "\t\ttype filter hook input priority filter - 10; policy accept;\n"
  "\t\tiifname \"vfd*\" jump sandbox_input\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_input {\n"
  "\t\tiifname . ip saddr != @guests counter drop\n"
  "\t\tct state established,related accept\n"
  "\t\tiifname . ip daddr @gateways tcp dport { 8080, 9000 } ct state new accept\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "\n"
  "\tchain forward {\n"
  "\t\ttype filter hook forward priority filter - 10; policy accept;\n"
  "\t\tiifname \"vfd*\" oifname \"vfd*\" counter drop\n"
  "\t\tiifname \"vfd*\" jump sandbox_out\n"
  "\t\toifname \"vfd*\" jump sandbox_in\n"
  "\t\tiifname @forwarding_owned counter drop\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_out {\n"
  "\t\tiifname . ip saddr != @guests counter drop\n"
  "\t\tmeta nfproto ipv4 iifname @nat_taps oifname \"eth0\" accept\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_in {\n"
  "\t\tiifname \"eth0\" oifname @nat_taps ct state established,related accept\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "\n"
  "\tchain postrouting {\n"
  "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
  "\t\toifname \"eth0\" ip saddr @nat_subnets masquerade\n"
  "\t}\n"
  "}\n";

static void
test_render_nat_with_guard(void **state)
{
  g_autoptr(VfdFirewallState) st = two_sandboxes("eth0");
  g_autoptr(GError) error = NULL;
  g_autofree char *text = vfd_firewall_render(st, "eth0", &error);

  assert_non_null(text);
  assert_string_equal(text, golden_nat);
}

static const char golden_plain[] =
  "table inet vfiod\n"
  "delete table inet vfiod\n"
  "table inet vfiod {\n"
  "\tset gateways {\n"
  "\t\ttype ifname . ipv4_addr\n"
  "\t\telements = { \"vfd00000001\" . 10.0.128.1,\n"
  "\t\t\t     \"vfd00000002\" . 10.0.128.5 }\n"
  "\t}\n"
  "\n"
  "\tset guests {\n"
  "\t\ttype ifname . ipv4_addr\n"
  "\t\telements = { \"vfd00000001\" . 10.0.128.2,\n"
  "\t\t\t     \"vfd00000002\" . 10.0.128.6 }\n"
  "\t}\n"
  "\n"
  "\tchain input {\n"
  "\t\ttype filter hook input priority filter - 10; policy accept;\n"
  "\t\tiifname \"vfd*\" jump sandbox_input\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_input {\n"
  "\t\tiifname . ip saddr != @guests counter drop\n"
  "\t\tct state established,related accept\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "\n"
  "\tchain forward {\n"
  "\t\ttype filter hook forward priority filter - 10; policy accept;\n"
  "\t\tiifname \"vfd*\" oifname \"vfd*\" counter drop\n"
  "\t\tiifname \"vfd*\" jump sandbox_out\n"
  "\t\toifname \"vfd*\" jump sandbox_in\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_out {\n"
  "\t\tiifname . ip saddr != @guests counter drop\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "\n"
  "\tchain sandbox_in {\n"
  "\t\tcounter drop\n"
  "\t}\n"
  "}\n";

/* No NAT sandbox (even with an uplink configured) and no ports: no NAT
 * sets, rules or postrouting chain, and no port rule. */
static void
test_render_no_nat_no_ports(void **state)
{
  g_autoptr(VfdFirewallState) st = two_sandboxes(NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;

  assert_true(vfd_firewall_state_set_ports(st, "", &error));
  text = vfd_firewall_render(st, NULL, &error);
  assert_non_null(text);
  assert_string_equal(text, golden_plain);

  st->nat_uplink = g_strdup("eth0");
  text2 = vfd_firewall_render(st, NULL, &error);
  assert_string_equal(text2, golden_plain);
}

/* [network] gateway_address: each TAP's gateways entry is doubled with
 * the stable address, so host_ports are reachable there too; nothing else
 * changes. */
static void
test_render_stable_gateway(void **state)
{
  g_autoptr(VfdFirewallState) st = two_sandboxes(NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *plain = NULL, *text = NULL;
  g_autoptr(GString) want = NULL;

  plain = vfd_firewall_render(st, NULL, &error);
  assert_true(vfd_ipv4_parse("10.255.255.1", &st->gateway) == 0);
  text = vfd_firewall_render(st, NULL, &error);
  assert_non_null(text);
  assert_non_null(strstr(text, "\t\telements = { \"vfd00000001\" . 10.0.128.1,\n"
                               "\t\t\t     \"vfd00000001\" . 10.255.255.1,\n"
                               "\t\t\t     \"vfd00000002\" . 10.0.128.5,\n"
                               "\t\t\t     \"vfd00000002\" . 10.255.255.1 }\n"));
  /* the rest is the same text */
  want = g_string_new(plain);
  g_string_replace(want, "10.0.128.1,\n", "10.0.128.1,\n\t\t\t     \"vfd00000001\" . 10.255.255.1,\n", 1);
  g_string_replace(want, "10.0.128.5 }", "10.0.128.5,\n\t\t\t     \"vfd00000002\" . 10.255.255.1 }", 1);
  assert_string_equal(text, want->str);
}

static void
test_render_empty_and_ports(void **state)
{
  g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  assert_true(vfd_firewall_state_set_ports(st, "22", &error));
  text = vfd_firewall_render(st, NULL, &error);
  assert_non_null(text);
  /* empty sets have no elements line; the rules still reference them */
  assert_non_null(strstr(text, "\tset gateways {\n\t\ttype ifname . ipv4_addr\n\t}\n"));
  assert_non_null(strstr(text, "tcp dport { 22 } ct state new accept\n"));
  assert_null(strstr(text, "elements"));
}

static void
test_render_nat_only_sandboxes(void **state)
{
  g_autoptr(VfdFirewallState) st = two_sandboxes("eth0");
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  VfdSubnet c;

  /* two NAT sandboxes: both in nat_taps and nat_subnets; without the guard */
  assert_int_equal(vfd_subnet_parse("10.0.128.8/30", &c), 0);
  assert_true(vfd_firewall_state_add(st, "vfd00000003", &c, true, &error));
  assert_true(vfd_firewall_state_remove(st, "vfd00000002"));
  assert_false(vfd_firewall_state_remove(st, "vfd00000002"));
  text = vfd_firewall_render(st, NULL, &error);
  assert_non_null(text);
  assert_non_null(strstr(text, "\t\telements = { \"vfd00000001\",\n\t\t\t     \"vfd00000003\" }\n"));
  assert_non_null(strstr(text, "\t\telements = { 10.0.128.0/30,\n\t\t\t     10.0.128.8/30 }\n"));
  assert_null(strstr(text, "forwarding_owned"));
  assert_null(strstr(text, "vfd00000002"));
}

static void
test_render_refuses(void **state)
{
  g_autoptr(VfdFirewallState) st = two_sandboxes("eth0");
  g_autoptr(GError) error = NULL;
  VfdSubnet a;
  char *text;

  /* NAT sandbox without an uplink */
  g_clear_pointer(&st->nat_uplink, g_free);
  text = vfd_firewall_render(st, NULL, &error);
  assert_null(text);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  assert_non_null(strstr(error->message, "vfd00000001 asks for NAT but no NAT uplink"));
  g_clear_error(&error);

  /* names that could break out of nft's quotes */
  st->nat_uplink = g_strdup("eth0\" ; flush ruleset ; \"");
  assert_null(vfd_firewall_render(st, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  g_free(st->nat_uplink);
  st->nat_uplink = g_strdup("vfd0"); /* an uplink named like a sandbox TAP */
  assert_null(vfd_firewall_render(st, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  g_free(st->nat_uplink);
  st->nat_uplink = g_strdup("eth0");
  assert_null(vfd_firewall_render(st, "a b", &error));
  g_clear_error(&error);

  assert_int_equal(vfd_subnet_parse("10.0.128.12/30", &a), 0);
  assert_false(vfd_firewall_state_add(st, "eth1", &a, false, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  assert_false(vfd_firewall_state_add(st, "vfd\"x", &a, false, &error));
  g_clear_error(&error);
  assert_false(vfd_firewall_state_add(st, "vfd00000001", &a, false, &error));
  assert_non_null(strstr(error->message, "already"));
  g_clear_error(&error);
  assert_int_equal(st->sandboxes->len, 2);
}

static void
test_ports(void **state)
{
  g_autoptr(VfdFirewallState) st = vfd_firewall_state_new();
  g_autoptr(GError) error = NULL;
  const char *bad[] = { "0", "65536", "http", "80;-1", "8080 9000", "1e3", NULL };

  assert_true(vfd_firewall_state_set_ports(st, " 443 ; 80,,80;65535;", &error));
  assert_int_equal(st->host_ports->len, 3);
  assert_int_equal(g_array_index(st->host_ports, guint16, 0), 80);
  assert_int_equal(g_array_index(st->host_ports, guint16, 1), 443);
  assert_int_equal(g_array_index(st->host_ports, guint16, 2), 65535);
  for (const char **b = bad; *b; b++) {
    assert_false(vfd_firewall_state_set_ports(st, *b, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
    g_clear_error(&error);
    assert_int_equal(st->host_ports->len, 3); /* unchanged on failure */
  }
  assert_true(vfd_firewall_state_set_ports(st, NULL, &error));
  assert_int_equal(st->host_ports->len, 0);
}

static void
write_file(const char *path, const char *text)
{
  g_autofree char *dir = g_path_get_dirname(path);
  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  assert_true(g_file_set_contents(path, text, -1, NULL));
}

/* The per-interface flags under a fake /proc: written only per interface,
 * never "all" or "default". */
static void
test_forwarding_files(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-fwd-XXXXXX", NULL);
  g_autofree char *tap = g_build_filename(root, "sys/net/ipv4/conf/vfd1/forwarding", NULL);
  g_autofree char *all = g_build_filename(root, "sys/net/ipv4/conf/all/forwarding", NULL);
  g_autofree char *text = NULL;
  bool on = true;

  write_file(tap, "0\n");
  write_file(all, "0\n");
  assert_int_equal(vfd_net_get_forwarding(root, "vfd1", &on), 0);
  assert_false(on);
  assert_int_equal(vfd_net_set_forwarding(root, "vfd1", true), 0);
  assert_true(g_file_get_contents(tap, &text, NULL, NULL));
  assert_string_equal(text, "1\n");
  assert_int_equal(vfd_net_get_forwarding(root, "vfd1", &on), 0);
  assert_true(on);
  assert_int_equal(vfd_net_set_forwarding(root, "vfd2", true), -ENOENT);
  assert_int_equal(vfd_net_set_forwarding(root, "all", true), -EINVAL);
  assert_int_equal(vfd_net_set_forwarding(root, "default", true), -EINVAL);
  assert_int_equal(vfd_net_set_forwarding(root, "../all", true), -EINVAL);
  assert_int_equal(vfd_net_set_forwarding(root, "..", true), -EINVAL);
  assert_int_equal(vfd_net_get_forwarding(root, "all", &on), -EINVAL);
  g_clear_pointer(&text, g_free);
  assert_true(g_file_get_contents(all, &text, NULL, NULL));
  assert_string_equal(text, "0\n");

  g_unlink(tap);
  g_unlink(all);
  {
    const char *dirs[] = { "sys/net/ipv4/conf/vfd1", "sys/net/ipv4/conf/all", "sys/net/ipv4/conf",
                           "sys/net/ipv4", "sys/net", "sys", NULL };
    for (const char **d = dirs; *d; d++) {
      g_autofree char *x = g_build_filename(root, *d, NULL);
      g_rmdir(x);
    }
  }
  g_rmdir(root);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_nat_with_guard),
    cmocka_unit_test(test_render_no_nat_no_ports),
    cmocka_unit_test(test_render_empty_and_ports),
    cmocka_unit_test(test_render_stable_gateway),
    cmocka_unit_test(test_render_nat_only_sandboxes),
    cmocka_unit_test(test_render_refuses),
    cmocka_unit_test(test_ports),
    cmocka_unit_test(test_forwarding_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
