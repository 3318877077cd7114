/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's console/vsock line formatters: exact output for known input,
 * and valid JSON (checked with json-glib) whatever the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* Parses the JSON object after "<tag> " in @line (which ends in "\n"), and
 * returns it (a new reference). Fails the test when it is not valid JSON. */
static JsonNode *
parse_line(const char *line, const char *tag)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) error = NULL;
  size_t tl = strlen(tag), len = strlen(line);

  assert_true(len > tl + 2);
  assert_int_equal(strncmp(line, tag, tl), 0);
  assert_int_equal(line[tl], ' ');
  assert_int_equal(line[len - 1], '\n');
  assert_null(memchr(line, '\n', len - 1));  /* one line */
  if (!json_parser_load_from_data(parser, line + tl + 1, (gssize) (len - tl - 2), &error))
    fail_msg("not JSON: %s\n%s", error->message, line);
  assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
  return json_node_copy(json_parser_get_root(parser));
}

static void
test_ready_minimal(void **state)
{
  GiReady r = { .sandbox = "", .kernel = "k", .report = "console" };
  char buf[1024];
  size_t n;

  n = gi_format_ready(buf, sizeof(buf), &r);
  assert_string_equal(buf,
                      "VFIOD_READY {\"v\":1,\"sandbox\":\"\",\"kernel\":\"k\",\"uptime_ms\":0,\"report\":\"console\","
                      "\"modules\":[],\"pci\":[],\"nvidia\":null,\"gpus\":[],\"driver_layer\":null,\"cuda\":null,"
                      "\"net\":null,\"root\":null,"
                      "\"workload\":null,\"timings_ms\":{}}\n");
  assert_int_equal(n, strlen(buf));
}

static void
test_ready_full(void **state)
{
  const GiPciDevice devs[] = {
    { "0000:00:01.0", 0x1af4, 0x1041, 0x020000, "virtio-pci" },
    { "0000:01:00.0", 0x10de, 0x27b8, 0x030200, "nvidia" },
    { "0000:01:00.1", 0x10de, 0x22bc, 0x040300, "" },
  };
  const char *modules[] = { "virtio_net", "nvidia", "nvidia_uvm" };
  const char *nodes[] = { "/dev/nvidiactl", "/dev/nvidia0" };
  const char *gpus[] = { "GPU 0: NVIDIA L4 (UUID: GPU-5b8d)" };
  const char *dns[] = { "10.0.2.3", "2001:db8::1" };
  const GiTiming timings[] = { { "init_start", 812 }, { "mounts", 815 }, { "ready", 1900 } };
  GiReady r = {
    .sandbox = "sb-1", .kernel = "6.1.0-56-amd64", .uptime_ms = 1900, .report = "vsock:1024",
    .modules = modules, .n_modules = 3, .pci = devs, .n_pci = 3,
    .nvidia_driver = "570.195.03", .nvidia_nodes = nodes, .n_nvidia_nodes = 2,
    .persistenced = "running", .smi = "ok", .gpus = gpus, .n_gpus = 1,
    .net_if = "eth0", .net_mac = "52:54:00:12:34:56", .net_ip = "10.0.2.15/24", .net_gw = "10.0.2.2",
    .dns = dns, .n_dns = 2,
    .root_dev = "/dev/vda", .root_fstype = "ext4", .workload = "/bin/sh",
    .timings = timings, .n_timings = 3,
  };
  g_autoptr(JsonNode) root = NULL;
  JsonObject *o, *net, *nv, *t;
  JsonArray *pci;
  char buf[4096];

  assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
  root = parse_line(buf, "VFIOD_READY");
  o = json_node_get_object(root);
  assert_int_equal(json_object_get_int_member(o, "v"), 1);
  assert_string_equal(json_object_get_string_member(o, "sandbox"), "sb-1");
  assert_string_equal(json_object_get_string_member(o, "kernel"), "6.1.0-56-amd64");
  assert_int_equal(json_object_get_int_member(o, "uptime_ms"), 1900);
  assert_string_equal(json_object_get_string_member(o, "report"), "vsock:1024");
  assert_int_equal(json_array_get_length(json_object_get_array_member(o, "modules")), 3);
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(o, "modules"), 2), "nvidia_uvm");

  pci = json_object_get_array_member(o, "pci");
  assert_int_equal(json_array_get_length(pci), 3);
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(pci, 1), "bdf"), "0000:01:00.0");
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(pci, 1), "id"), "10de:27b8");
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(pci, 1), "class"), "030200");
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(pci, 1), "driver"), "nvidia");
  assert_true(json_object_get_null_member(json_array_get_object_element(pci, 2), "driver"));

  nv = json_object_get_object_member(o, "nvidia");
  assert_string_equal(json_object_get_string_member(nv, "driver"), "570.195.03");
  assert_int_equal(json_array_get_length(json_object_get_array_member(nv, "nodes")), 2);
  assert_string_equal(json_object_get_string_member(nv, "persistenced"), "running");
  assert_string_equal(json_object_get_string_member(nv, "smi"), "ok");
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(o, "gpus"), 0),
                      "GPU 0: NVIDIA L4 (UUID: GPU-5b8d)");

  net = json_object_get_object_member(o, "net");
  assert_string_equal(json_object_get_string_member(net, "if"), "eth0");
  assert_string_equal(json_object_get_string_member(net, "mac"), "52:54:00:12:34:56");
  assert_string_equal(json_object_get_string_member(net, "ip"), "10.0.2.15/24");
  assert_string_equal(json_object_get_string_member(net, "gw"), "10.0.2.2");
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(net, "dns"), 1), "2001:db8::1");

  assert_string_equal(json_object_get_string_member(json_object_get_object_member(o, "root"), "dev"), "/dev/vda");
  assert_string_equal(json_object_get_string_member(o, "workload"), "/bin/sh");
  t = json_object_get_object_member(o, "timings_ms");
  assert_int_equal(json_object_get_size(t), 3);
  assert_int_equal(json_object_get_int_member(t, "init_start"), 812);
  assert_int_equal(json_object_get_int_member(t, "ready"), 1900);

  /* Optional members of sub-objects print null. */
  r.net_mac = NULL;
  r.net_gw = NULL;
  r.persistenced = NULL;
  assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
  assert_non_null(strstr(buf, "\"mac\":null"));
  assert_non_null(strstr(buf, "\"gw\":null"));
  assert_non_null(strstr(buf, "\"persistenced\":null"));
  json_node_unref(parse_line(buf, "VFIOD_READY"));
}

static void
test_escaping(void **state)
{
  GiReady r = { .sandbox = "a\"b\\c\nd\x01" "e\xc3\xa9\x7f/", .kernel = "k\t", .report = "console" };
  g_autoptr(JsonNode) root = NULL;
  char buf[1024];

  gi_format_ready(buf, sizeof(buf), &r);
  assert_non_null(strstr(buf, "\"sandbox\":\"a\\\"b\\\\c\\nd\\u0001e\\ufffd\\ufffd\\u007f/\""));
  assert_non_null(strstr(buf, "\"kernel\":\"k\\u0009\""));
  root = parse_line(buf, "VFIOD_READY");
  assert_string_equal(json_object_get_string_member(json_node_get_object(root), "sandbox"),
                      "a\"b\\c\nd\x01" "e\xef\xbf\xbd\xef\xbf\xbd\x7f/");
}

/* Whatever the bytes in every string, the line is one valid JSON object. */
static void
test_escaping_random(void **state)
{
  char s[8][64];
  const char *strs[3];
  GiPciDevice dev = { .vendor = 1, .device = 2 };
  GiTiming timing;
  char buf[8192];

  srand(3);
  for (int round = 0; round < 2000; round++) {
    for (int i = 0; i < 8; i++) {
      size_t n = (size_t) rand() % 63;
      for (size_t j = 0; j < n; j++)
        s[i][j] = (char) (rand() % 255 + 1);
      s[i][n] = '\0';
    }
    strs[0] = s[0];
    strs[1] = s[1];
    strs[2] = s[2];
    snprintf(dev.bdf, sizeof(dev.bdf), "%.31s", s[3]);
    snprintf(dev.driver, sizeof(dev.driver), "%s", s[4]);
    timing = (GiTiming) { s[5], (uint64_t) rand() };
    GiReady r = {
      .sandbox = s[6], .kernel = s[7], .report = s[0], .modules = strs, .n_modules = 3, .pci = &dev, .n_pci = 1,
      .nvidia_driver = s[1], .nvidia_nodes = strs, .n_nvidia_nodes = 2, .smi = s[2], .gpus = strs, .n_gpus = 1,
      .net_if = s[3], .net_ip = s[4], .dns = strs, .n_dns = 3, .root_dev = s[5], .workload = s[6],
      .timings = &timing, .n_timings = 1,
    };
    assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
    json_node_unref(parse_line(buf, "VFIOD_READY"));
  }
}

static void
test_truncation(void **state)
{
  GiReady r = { .sandbox = "sb-1", .kernel = "6.1.0-56-amd64", .report = "console" };
  char buf[512];
  size_t need, n;

  /* snprintf-like: a short buffer gets a NUL-terminated prefix and the
   * return value says how much was needed. */
  need = gi_format_ready(NULL, 0, &r);
  n = gi_format_ready(buf, 10, &r);
  assert_int_equal(n, need);
  assert_int_equal(strlen(buf), 9);
  assert_int_equal(gi_format_ready(buf, need, &r), need);
  assert_int_equal(strlen(buf), need - 1);   /* one byte short: the "\n" is cut */
  assert_int_equal(gi_format_ready(buf, need + 1, &r), need);
  assert_int_equal(strlen(buf), need);
  assert_int_equal(buf[need - 1], '\n');
}

static void
test_exit(void **state)
{
  GiExit e = { .status = 7, .signal = 0, .reason = "exit", .runtime_ms = 2011, .reaped = 4, .killed = 2,
               .sigkilled = 1, .left = 0, .zombies = 0 };
  g_autoptr(JsonNode) root = NULL;
  char buf[512];

  gi_format_exit(buf, sizeof(buf), &e);
  assert_string_equal(buf, "VFIOD_EXIT {\"status\":7,\"signal\":0,\"reason\":\"exit\",\"runtime_ms\":2011,"
                           "\"reaped\":4,\"killed\":2,\"sigkilled\":1,\"left\":0,\"zombies\":0}\n");
  e = (GiExit) { .status = 128 + 9, .signal = 9, .reason = "signal:\"x\"" };
  gi_format_exit(buf, sizeof(buf), &e);
  root = parse_line(buf, "VFIOD_EXIT");
  assert_int_equal(json_object_get_int_member(json_node_get_object(root), "status"), 137);
  assert_int_equal(json_object_get_int_member(json_node_get_object(root), "signal"), 9);
  assert_string_equal(json_object_get_string_member(json_node_get_object(root), "reason"), "signal:\"x\"");
}

static void
test_report_status(void **state)
{
  char buf[512];

  gi_format_report_status(buf, sizeof(buf), "vsock:1024", "VFIOD_READY", true, 1, NULL);
  assert_string_equal(buf, "VFIOD_REPORT {\"to\":\"vsock:1024\",\"line\":\"VFIOD_READY\",\"ok\":true,"
                           "\"attempts\":1,\"error\":null}\n");
  gi_format_report_status(buf, sizeof(buf), "vsock:1024", "VFIOD_EXIT", false, 3,
                          "connect (vsock 2:1024): No such device");
  assert_string_equal(buf, "VFIOD_REPORT {\"to\":\"vsock:1024\",\"line\":\"VFIOD_EXIT\",\"ok\":false,"
                           "\"attempts\":3,\"error\":\"connect (vsock 2:1024): No such device\"}\n");
}

static void
test_poweroff_fatal(void **state)
{
  char buf[128];

  gi_format_poweroff(buf, sizeof(buf), "signal:SIGTERM");
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"signal:SIGTERM\"}\n");
  gi_format_poweroff(buf, sizeof(buf), "power-button");
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"power-button\"}\n");
  gi_format_fatal(buf, sizeof(buf), "mount \"proc\": No such device");
  assert_string_equal(buf, "VFIOD_FATAL {\"error\":\"mount \\\"proc\\\": No such device\"}\n");
}

/* A sysfs `resource` file as the kernel prints it for an H100 PCIe (BAR0
 * 16 MiB, BAR1 128 GiB 64-bit prefetchable, BAR3 32 MiB), with BAR1 left
 * unassigned (IORESOURCE_UNSET, start 0) in a second variant. */
static const char h100_resource[] =
  "0x00000000fd000000 0x00000000fdffffff 0x0000000000040200\n"
  "0x0000002000000000 0x0000003fffffffff 0x000000000014220c\n"
  "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
  "0x0000004000000000 0x0000004001ffffff 0x000000000014220c\n"
  "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
  "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
  "0x00000000fe000000 0x00000000fe07ffff 0x0000000000046200\n";

static void
test_pci_bars(void **state)
{
  GiPciDevice dev = { "0000:01:00.0", 0x10de, 0x2331, 0x030200, "nvidia" };
  GiReady r = { .sandbox = "sb", .kernel = "k", .report = "console", .pci = &dev, .n_pci = 1 };
  g_autoptr(JsonNode) root = NULL;
  JsonArray *bars;
  JsonObject *b1;
  char buf[4096], *unset;

  (void) state;
  assert_int_equal(gi_pci_parse_resource(h100_resource, dev.bars), GI_PCI_NUM_BARS);
  assert_int_equal(dev.bars[0].size, 16u << 20);
  assert_int_equal(dev.bars[1].size, 128ull << 30);
  assert_int_equal(dev.bars[1].start, 0x2000000000ull);
  assert_int_equal(dev.bars[2].size, 0);
  assert_int_equal(dev.bars[3].size, 32u << 20);
  assert_true(gi_pci_bar_assigned(&dev.bars[1]));

  assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
  root = parse_line(buf, "VFIOD_READY");
  bars = json_object_get_array_member(json_array_get_object_element(
                                        json_object_get_array_member(json_node_get_object(root), "pci"), 0),
                                      "bars");
  assert_int_equal(json_array_get_length(bars), 3);
  b1 = json_array_get_object_element(bars, 1);
  assert_int_equal(json_object_get_int_member(b1, "bar"), 1);
  assert_int_equal(json_object_get_int_member(b1, "size"), 128ll << 30);
  assert_string_equal(json_object_get_string_member(b1, "type"), "mem64");
  assert_true(json_object_get_boolean_member(b1, "prefetch"));
  assert_true(json_object_get_boolean_member(b1, "assigned"));
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(bars, 0), "type"), "mem32");
  assert_false(json_object_get_boolean_member(json_array_get_object_element(bars, 0), "prefetch"));
  assert_int_equal(json_object_get_int_member(json_array_get_object_element(bars, 2), "bar"), 3);

  /* The kernel could not place BAR1: start 0 with the size kept, or the
   * IORESOURCE_UNSET flag. Both are reported unassigned. */
  unset = g_strdup(h100_resource);
  memcpy(unset + 57, "0x0000000000000000 0x0000001fffffffff", 37);
  assert_int_equal(gi_pci_parse_resource(unset, dev.bars), GI_PCI_NUM_BARS);
  assert_int_equal(dev.bars[1].size, 128ull << 30);
  assert_false(gi_pci_bar_assigned(&dev.bars[1]));
  g_free(unset);
  dev.bars[1].start = 0x2000000000ull;
  dev.bars[1].flags |= GI_IORESOURCE_UNSET;
  assert_false(gi_pci_bar_assigned(&dev.bars[1]));
  assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
  assert_non_null(strstr(buf, "\"bar\":1,\"size\":137438953472,\"type\":\"mem64\",\"prefetch\":true,\"assigned\":false"));

  /* Short, empty or garbled files: what parses, and nothing else. */
  assert_int_equal(gi_pci_parse_resource("", dev.bars), 0);
  assert_int_equal(dev.bars[0].size, 0);
  assert_int_equal(gi_pci_parse_resource("0x1000 0x1fff 0x200\ngarbage\n", dev.bars), 1);
  assert_int_equal(dev.bars[0].size, 0x1000);
  assert_int_equal(dev.bars[1].size, 0);
  assert_int_equal(gi_pci_parse_resource("0x2000 0x1fff 0x200\n", dev.bars), 1);
  assert_int_equal(dev.bars[0].size, 0);
}

static void
test_pci_sort(void **state)
{
  GiPciDevice devs[] = {
    { "0000:00:1f.3", 0, 0, 0, "" },
    { "10000:00:00.0", 0, 0, 0, "" },  /* VMD domains have 5 digits */
    { "garbage", 0, 0, 0, "" },
    { "0000:00:02.0", 0, 0, 0, "" },
    { "0000:0a:00.1", 0, 0, 0, "" },
    { "0000:0a:00.0", 0, 0, 0, "" },
  };
  const char *want[] = { "0000:00:02.0", "0000:00:1f.3", "0000:0a:00.0", "0000:0a:00.1",
                         "10000:00:00.0", "garbage" };

  qsort(devs, 6, sizeof(devs[0]), gi_pci_device_compare);
  for (size_t i = 0; i < 6; i++)
    assert_string_equal(devs[i].bdf, want[i]);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ready_minimal),
    cmocka_unit_test(test_ready_full),
    cmocka_unit_test(test_escaping),
    cmocka_unit_test(test_escaping_random),
    cmocka_unit_test(test_truncation),
    cmocka_unit_test(test_exit),
    cmocka_unit_test(test_report_status),
    cmocka_unit_test(test_poweroff_fatal),
    cmocka_unit_test(test_pci_sort),
    cmocka_unit_test(test_pci_bars),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
