/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sandbox's network identity without the kernel: subnet pool (validation,
 * lowest-free, exhaustion, reuse, rebuild from the journal's strings), vsock
 * CIDs (probe, reuse), TAP names and guest MACs. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "error.h"
#include "netpool.h"
#include "tap.h"

static VfdSubnet
subnet(const char *s)
{
  VfdSubnet sn;
  assert_int_equal(vfd_subnet_parse(s, &sn), 0);
  return sn;
}

static void
assert_subnet(const VfdSubnet *sn, const char *cidr, const char *host, const char *guest)
{
  g_autofree char *s = vfd_subnet_to_string(sn);
  char a[VFD_IPV4_STRLEN];

  assert_string_equal(s, cidr);
  assert_string_equal(vfd_ipv4_format(sn->host, a), host);
  assert_string_equal(vfd_ipv4_format(sn->guest, a), guest);
}

static void
test_subnet_parse(void **state)
{
  VfdSubnet sn;
  const char *bad[] = { "", "10.0.128.4", "10.0.128.4/", "10.0.128.4/31", "10.0.128.4/32", "10.0.128.4/0",
                        "10.0.128.5/30", "10.0.128.4/30/1", "10.0.128/30", "010.0.128.4/30", "fd00::/64",
                        "10.0.128.4/x", "10.0.128.4/-1", "10.0.128.4/ 30", NULL };

  sn = subnet("10.0.128.4/30");
  assert_int_equal(sn.network, 0x0a008004);
  assert_int_equal(sn.prefix, 30);
  assert_subnet(&sn, "10.0.128.4/30", "10.0.128.5", "10.0.128.6");
  sn = subnet("192.168.7.0/24");
  assert_subnet(&sn, "192.168.7.0/24", "192.168.7.1", "192.168.7.2");
  for (const char **b = bad; *b; b++) {
    VfdSubnet untouched = { .network = 42 };
    assert_int_equal(vfd_subnet_parse(*b, &untouched), -EINVAL);
    assert_int_equal(untouched.network, 42); /* outputs only on success */
  }
  assert_int_equal(vfd_subnet_parse(NULL, &sn), -EINVAL);
}

static void
expect_pool_error(const char *cidr, guint prefix, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(cidr, prefix, &error);

  assert_null(pool);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  if (!strstr(error->message, needle))
    fail_msg("'%s' /%u: message '%s' lacks '%s'", cidr, prefix, error->message, needle);
}

static void
test_pool_validation(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) def = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, VFD_SUBNET_PREFIX_DEFAULT, &error);
  g_autoptr(VfdSubnetPool) one = NULL;
  g_autofree char *s = NULL;

  assert_non_null(def);
  s = vfd_subnet_pool_to_string(def);
  assert_string_equal(s, "10.0.128.0/17");
  assert_int_equal(vfd_subnet_pool_size(def), 8192);
  assert_int_equal(vfd_subnet_pool_n_used(def), 0);

  /* a pool of exactly one block */
  one = vfd_subnet_pool_new("192.168.5.0/29", 29, &error);
  assert_non_null(one);
  assert_int_equal(vfd_subnet_pool_size(one), 1);

  expect_pool_error("fd00::/64", 30, "IPv4");
  expect_pool_error("10.0.128.0", 30, "IPv4");
  expect_pool_error("10.0.128.0/33", 30, "IPv4");
  expect_pool_error("banana", 30, "IPv4");
  expect_pool_error(NULL, 30, "IPv4");
  expect_pool_error("10.0.128.1/17", 30, "did you mean 10.0.128.0/17");
  expect_pool_error("10.0.128.0/17", 16, "between the pool's /17 and /30");
  expect_pool_error("10.0.128.0/17", 31, "between the pool's /17 and /30");
  expect_pool_error("16.0.0.0/4", 30, "2^26 blocks");
  expect_pool_error("127.0.0.0/16", 30, "loopback");
  expect_pool_error("0.0.0.0/16", 30, "this network");
  expect_pool_error("169.254.0.0/24", 30, "link-local");
  expect_pool_error("224.0.0.0/24", 30, "multicast");
  expect_pool_error("255.255.255.0/24", 30, "multicast");
  /* a /7 covering 126/8-127/8: overlaps loopback although it starts below it */
  expect_pool_error("126.0.0.0/7", 7, "loopback");
}

static void
test_pool_lowest_free_and_exhaustion(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new("10.9.0.0/28", 30, &error);
  VfdSubnet sn[4], extra = { .network = 7 };

  assert_non_null(pool);
  assert_int_equal(vfd_subnet_pool_size(pool), 4);
  for (int i = 0; i < 4; i++)
    assert_true(vfd_subnet_pool_alloc(pool, &sn[i], &error));
  assert_subnet(&sn[0], "10.9.0.0/30", "10.9.0.1", "10.9.0.2");
  assert_subnet(&sn[1], "10.9.0.4/30", "10.9.0.5", "10.9.0.6");
  assert_subnet(&sn[3], "10.9.0.12/30", "10.9.0.13", "10.9.0.14");
  assert_int_equal(vfd_subnet_pool_n_used(pool), 4);

  assert_false(vfd_subnet_pool_alloc(pool, &extra, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "10.9.0.0/28 is exhausted"));
  assert_non_null(strstr(error->message, "all 4 /30"));
  assert_int_equal(extra.network, 7);
  g_clear_error(&error);

  /* reuse: the lowest released block comes back first */
  assert_int_equal(vfd_subnet_pool_release(pool, &sn[2]), 0);
  assert_int_equal(vfd_subnet_pool_release(pool, &sn[1]), 0);
  assert_int_equal(vfd_subnet_pool_release(pool, &sn[1]), -ENOENT);
  assert_true(vfd_subnet_pool_alloc(pool, &extra, &error));
  assert_subnet(&extra, "10.9.0.4/30", "10.9.0.5", "10.9.0.6");
  assert_true(vfd_subnet_pool_alloc(pool, &extra, &error));
  assert_subnet(&extra, "10.9.0.8/30", "10.9.0.9", "10.9.0.10");
  assert_false(vfd_subnet_pool_alloc(pool, &extra, &error));
  g_clear_error(&error);

  {
    VfdSubnet outside = subnet("10.9.0.16/30");
    assert_int_equal(vfd_subnet_pool_release(pool, &outside), -ERANGE);
    assert_int_equal(vfd_subnet_pool_mark(pool, &outside), -ERANGE);
  }
}

static void
test_pool_large_lowest_free(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(VFD_SUBNET_POOL_DEFAULT, 30, &error);
  VfdSubnet sn, hole;

  /* across bitmap words: fill 200, free #70 and #130, get #70 then #130 then #200 */
  for (int i = 0; i < 200; i++)
    assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.131.28/30", "10.0.131.29", "10.0.131.30");
  hole = subnet("10.0.130.8/30"); /* block 130 */
  assert_int_equal(vfd_subnet_pool_release(pool, &hole), 0);
  hole = subnet("10.0.129.24/30"); /* block 70 */
  assert_int_equal(vfd_subnet_pool_release(pool, &hole), 0);
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.129.24/30", "10.0.129.25", "10.0.129.26");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.130.8/30", "10.0.130.9", "10.0.130.10");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.131.32/30", "10.0.131.33", "10.0.131.34");

  /* the whole pool, then exhaustion */
  while (vfd_subnet_pool_n_used(pool) < vfd_subnet_pool_size(pool))
    assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.255.252/30", "10.0.255.253", "10.0.255.254");
  assert_false(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
}

static void
test_pool_mark(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new("10.0.128.0/24", 30, &error);
  VfdSubnet a = subnet("10.0.128.8/30"), wide = subnet("10.0.128.16/29"), sn;

  assert_int_equal(vfd_subnet_pool_mark(pool, &a), 0);
  assert_int_equal(vfd_subnet_pool_mark(pool, &a), -EEXIST);
  assert_true(vfd_subnet_pool_is_used(pool, &a));
  /* a subnet of another prefix (config changed under live sandboxes)
   * takes every block it overlaps */
  assert_int_equal(vfd_subnet_pool_mark(pool, &wide), 0);
  assert_int_equal(vfd_subnet_pool_n_used(pool), 3);
  {
    VfdSubnet inner = subnet("10.0.128.20/30");
    VfdSubnet overlapping = subnet("10.0.128.0/28"); /* blocks 0..3; block 2 taken */
    assert_true(vfd_subnet_pool_is_used(pool, &inner));
    assert_int_equal(vfd_subnet_pool_mark(pool, &overlapping), -EEXIST);
    assert_int_equal(vfd_subnet_pool_n_used(pool), 3); /* nothing marked on failure */
  }
  /* lowest free skips the marked blocks */
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.128.0/30", "10.0.128.1", "10.0.128.2");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.128.4/30", "10.0.128.5", "10.0.128.6");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.128.12/30", "10.0.128.13", "10.0.128.14");
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.128.24/30", "10.0.128.25", "10.0.128.26");
  assert_int_equal(vfd_subnet_pool_release(pool, &wide), 0);
  assert_true(vfd_subnet_pool_alloc(pool, &sn, &error));
  assert_subnet(&sn, "10.0.128.16/30", "10.0.128.17", "10.0.128.18");
}

/* The journal keeps each live sandbox's subnet as its string; a restarted
 * vfiod marks them into a fresh pool and must then be in the same state. */
static void
test_pool_persistence_round_trip(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdSubnetPool) before = vfd_subnet_pool_new("172.20.0.0/26", 30, &error);
  g_autoptr(VfdSubnetPool) after = vfd_subnet_pool_new("172.20.0.0/26", 30, &error);
  g_autoptr(GPtrArray) journal = g_ptr_array_new_with_free_func(g_free);
  VfdSubnet sn[10], next_before, next_after;

  for (int i = 0; i < 10; i++)
    assert_true(vfd_subnet_pool_alloc(before, &sn[i], &error));
  for (int i = 0; i < 10; i++) {
    if (i == 1 || i == 4 || i == 5)
      assert_int_equal(vfd_subnet_pool_release(before, &sn[i]), 0);
    else
      g_ptr_array_add(journal, vfd_subnet_to_string(&sn[i]));
  }
  for (guint i = 0; i < journal->len; i++) {
    VfdSubnet back;
    assert_int_equal(vfd_subnet_parse(g_ptr_array_index(journal, i), &back), 0);
    assert_int_equal(vfd_subnet_pool_mark(after, &back), 0);
  }
  assert_int_equal(vfd_subnet_pool_n_used(after), vfd_subnet_pool_n_used(before));
  for (int i = 0; i < 10; i++)
    assert_int_equal(vfd_subnet_pool_is_used(after, &sn[i]), vfd_subnet_pool_is_used(before, &sn[i]));
  while (vfd_subnet_pool_alloc(before, &next_before, NULL)) {
    assert_true(vfd_subnet_pool_alloc(after, &next_after, &error));
    assert_int_equal(next_before.network, next_after.network);
  }
  assert_false(vfd_subnet_pool_alloc(after, &next_after, NULL));
}

/* ---- CIDs ---- */

typedef struct {
  guint32 taken[4];
  guint n_taken;
  guint32 fail_at; /* probe error at this CID; 0 = never */
  guint calls;
} FakeVsock;

static int
fake_probe(guint32 cid, void *user_data)
{
  FakeVsock *f = user_data;

  f->calls++;
  if (cid == f->fail_at)
    return -EACCES;
  for (guint i = 0; i < f->n_taken; i++)
    if (f->taken[i] == cid)
      return -EADDRINUSE;
  return 0;
}

static void
test_cid_alloc_probe_reuse(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdCidPool) pool = vfd_cid_pool_new(VFD_CID_FIRST, VFD_CID_LAST);
  FakeVsock f = { .taken = { 4, 6 }, .n_taken = 2 };
  guint32 cid = 0;

  vfd_cid_pool_set_probe(pool, fake_probe, &f);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 3);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 5); /* 4 held by another VMM */
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 7);
  assert_false(vfd_cid_pool_is_used(pool, 4)); /* skipped, not marked */

  /* the other VMM lets 4 go: next time it is ours */
  f.n_taken = 1;
  f.taken[0] = 6;
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 4);

  /* reuse after release, lowest first */
  assert_int_equal(vfd_cid_pool_release(pool, 5), 0);
  assert_int_equal(vfd_cid_pool_release(pool, 3), 0);
  assert_int_equal(vfd_cid_pool_release(pool, 3), -ENOENT);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 3);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 5);

  /* a failing probe is an error, not a silent skip */
  assert_int_equal(vfd_cid_pool_release(pool, 5), 0);
  f.fail_at = 5;
  assert_false(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_FAILED));
  assert_non_null(strstr(error->message, "CID 5"));
  g_clear_error(&error);

  /* no probe: the pool alone decides */
  vfd_cid_pool_set_probe(pool, NULL, NULL);
  f.calls = 0;
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 5);
  assert_int_equal(f.calls, 0);
}

static void
test_cid_mark_range_exhaustion(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdCidPool) pool = vfd_cid_pool_new(0, 6); /* clamped to 3..6 */
  g_autoptr(VfdCidPool) empty = vfd_cid_pool_new(9, 8);
  FakeVsock f = { .taken = { 5 }, .n_taken = 1 };
  guint32 cid = 0;

  assert_null(empty);
  vfd_cid_pool_set_probe(pool, fake_probe, &f);
  assert_int_equal(vfd_cid_pool_mark(pool, 2), -ERANGE);
  assert_int_equal(vfd_cid_pool_mark(pool, 7), -ERANGE);
  assert_int_equal(vfd_cid_pool_mark(pool, 4), 0);
  assert_int_equal(vfd_cid_pool_mark(pool, 4), -EEXIST);
  assert_int_equal(vfd_cid_pool_release(pool, 7), -ERANGE);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 3);
  assert_true(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_int_equal(cid, 6);
  assert_int_equal(vfd_cid_pool_n_used(pool), 3);
  assert_false(vfd_cid_pool_alloc(pool, &cid, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  assert_non_null(strstr(error->message, "no vsock CID left in 3..6 (3 in use by vfiod, 1 held by other VMMs)"));

  /* persistence: the journal's CIDs marked into a new pool */
  {
    g_autoptr(VfdCidPool) again = vfd_cid_pool_new(3, 6);
    vfd_cid_pool_set_probe(again, NULL, NULL);
    assert_int_equal(vfd_cid_pool_mark(again, 3), 0);
    assert_int_equal(vfd_cid_pool_mark(again, 6), 0);
    assert_true(vfd_cid_pool_alloc(again, &cid, &error));
    assert_int_equal(cid, 4);
  }
}

static void
test_cid_default_probe(void **state)
{
  /* No vhost-vsock device: nothing to ask, every CID is "free". */
  assert_int_equal(vfd_cid_probe_vhost_vsock(3, "/nonexistent/vhost-vsock"), 0);
  /* Not a vhost device: the ioctl fails, and that is reported. */
  assert_int_equal(vfd_cid_probe_vhost_vsock(3, "/dev/null"), -ENOTTY);
}

/* ---- names ---- */

static void
test_tap_names(void **state)
{
  char name[IFNAMSIZ], other[IFNAMSIZ];
  const char *ids[] = { "sb-1a2b3c4d", "sb-1A2B3C4D", "sb-0123456789abc", "sandbox one", "sb-", "x",
                        "sb-1a2b3c4d-2", "sb-hello", NULL };
  GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

  assert_int_equal(vfd_tap_name_for("sb-1a2b3c4d", name), 0);
  assert_string_equal(name, "vfd1a2b3c4d");
  assert_int_equal(vfd_tap_name_for("sb-0123456789ab", name), 0);
  assert_string_equal(name, "vfd0123456789ab");
  assert_int_equal(strlen(name), 15);
  /* not the "sb-<hex>" form: hashed, with the 'h' marker */
  assert_int_equal(vfd_tap_name_for("sb-0123456789abc", name), 0);
  assert_true(g_str_has_prefix(name, "vfdh"));
  assert_int_equal(strlen(name), 15);
  assert_int_equal(vfd_tap_name_for("sb-0123456789abc", other), 0);
  assert_string_equal(name, other); /* deterministic */
  assert_int_equal(vfd_tap_name_for("", name), -EINVAL);
  assert_int_equal(vfd_tap_name_for(NULL, name), -EINVAL);

  for (const char **id = ids; *id; id++) {
    assert_int_equal(vfd_tap_name_for(*id, name), 0);
    assert_true(strlen(name) <= 15);
    assert_true(vfd_tap_name_valid(name));
    if (!g_hash_table_add(seen, g_strdup(name)))
      fail_msg("TAP name %s for %s collides", name, *id);
  }
  /* a couple of thousand vfiod-style ids never collide (injective form) */
  for (guint i = 0; i < 4096; i++) {
    g_autofree char *id = g_strdup_printf("sb-%08x", i * 2654435761u);
    assert_int_equal(vfd_tap_name_for(id, name), 0);
    if (!g_hash_table_add(seen, g_strdup(name)))
      fail_msg("TAP name %s for %s collides", name, id);
  }
  g_hash_table_destroy(seen);

  assert_true(vfd_tap_name_valid("vfd1"));
  assert_false(vfd_tap_name_valid("vfd"));
  assert_false(vfd_tap_name_valid("eth0"));
  assert_false(vfd_tap_name_valid("vfd0123456789abc")); /* 16 chars */
  assert_false(vfd_tap_name_valid("vfd\"x"));
  assert_false(vfd_tap_name_valid("vfdA"));
  assert_false(vfd_tap_name_valid(NULL));
}

static void
test_guest_mac(void **state)
{
  char a[VFD_MAC_STRLEN], b[VFD_MAC_STRLEN];
  guint first;

  assert_int_equal(vfd_guest_mac_for("sb-1a2b3c4d", a), 0);
  assert_int_equal(strlen(a), 17);
  assert_true(g_str_has_prefix(a, "02:"));
  assert_int_equal(sscanf(a, "%x:", &first), 1);
  assert_true(first & 0x02);   /* locally administered */
  assert_false(first & 0x01);  /* unicast */
  assert_int_equal(vfd_guest_mac_for("sb-1a2b3c4d", b), 0);
  assert_string_equal(a, b);
  assert_int_equal(vfd_guest_mac_for("sb-1a2b3c4e", b), 0);
  assert_string_not_equal(a, b);
  for (const char *c = a; *c; c++)
    assert_true(g_ascii_isxdigit(*c) || *c == ':');
  assert_int_equal(vfd_guest_mac_for("", a), -EINVAL);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_subnet_parse),
    cmocka_unit_test(test_pool_validation),
    cmocka_unit_test(test_pool_lowest_free_and_exhaustion),
    cmocka_unit_test(test_pool_large_lowest_free),
    cmocka_unit_test(test_pool_mark),
    cmocka_unit_test(test_pool_persistence_round_trip),
    cmocka_unit_test(test_cid_alloc_probe_reuse),
    cmocka_unit_test(test_cid_mark_range_exhaustion),
    cmocka_unit_test(test_cid_default_probe),
    cmocka_unit_test(test_tap_names),
    cmocka_unit_test(test_guest_mac),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
