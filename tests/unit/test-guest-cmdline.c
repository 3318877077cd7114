/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's kernel command line parser (the vfiod.* keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmdline.h"

static GiCmdline cl;  /* large: keep it off the stack */

static void
parse(const char *s)
{
  gi_cmdline_parse(s, &cl);
}

static void
assert_printable(const char *s, size_t max)
{
  size_t n = strnlen(s, max + 1);

  assert_true(n <= max);
  for (size_t i = 0; i < n; i++)
    assert_true(s[i] >= 0x20 && s[i] <= 0x7e);
}

/* Invariants that must hold whatever the input. */
static void
assert_sane(void)
{
  assert_true(cl.n_entries <= GI_CMDLINE_MAX_ENTRIES);
  for (size_t i = 0; i < cl.n_entries; i++) {
    assert_printable(cl.entries[i].key, GI_CMDLINE_MAX_KEY);
    assert_printable(cl.entries[i].value, GI_CMDLINE_MAX_VALUE);
    assert_int_equal(strncmp(cl.entries[i].key, "vfiod.", 6), 0);
    if (gi_cmdline_status_is_error(cl.entries[i].status) && cl.entries[i].status != GI_CMDLINE_BAD_VALUE &&
        cl.entries[i].status != GI_CMDLINE_TOO_MANY && cl.entries[i].status != GI_CMDLINE_DUPLICATE)
      assert_string_equal(cl.entries[i].value, "");
  }
  assert_printable(cl.sandbox, GI_CMDLINE_MAX_VALUE);
  assert_true(cl.has_sandbox == (cl.sandbox[0] != '\0'));
  assert_true(cl.n_args <= GI_CMDLINE_MAX_ARGS);
  for (size_t i = 0; i < cl.n_args; i++)
    assert_printable(cl.args[i], GI_CMDLINE_MAX_VALUE);
  assert_printable(cl.cmd, GI_CMDLINE_MAX_VALUE);
  assert_true(cl.cmd[0] == '\0' || cl.cmd[0] == '/');
  assert_true(cl.root[0] == '\0' || strncmp(cl.root, "/dev/", 5) == 0);
  assert_true(cl.n_dns <= GI_CMDLINE_MAX_DNS);
  assert_true(!cl.has_ip || (cl.prefix >= 1 && cl.prefix <= 32));
  assert_true(cl.report != GI_REPORT_VSOCK || cl.report_port > 0);
  assert_true(cl.timeout_s <= GI_CMDLINE_MAX_TIMEOUT);
}

static void
test_empty(void **state)
{
  const char *inputs[] = { NULL, "", " ", "\n", " \t\r\n\v\f " };

  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    parse(inputs[i]);
    assert_int_equal(cl.n_entries, 0);
    assert_int_equal(cl.n_dropped, 0);
    assert_false(cl.has_sandbox);
    assert_string_equal(cl.sandbox, "");
    assert_int_equal(cl.report, GI_REPORT_CONSOLE);
  }
}

static void
test_plain_keys(void **state)
{
  parse("BOOT_IMAGE=/vmlinuz console=ttyS0 vfiod.sandbox=sb-test vfiod.ready=console quiet\n");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.entries[0].key, "vfiod.sandbox");
  assert_string_equal(cl.entries[0].value, "sb-test");
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_SANDBOX);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
  assert_string_equal(cl.entries[1].key, "vfiod.ready");
  assert_string_equal(cl.entries[1].value, "console");
  assert_int_equal(cl.entries[1].id, GI_CMDLINE_KEY_READY);
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_OK);
  assert_true(cl.has_sandbox);
  assert_string_equal(cl.sandbox, "sb-test");

  /* Value at the very end, no newline; '=' inside the value is kept. */
  parse("vfiod.sandbox=a=b");
  assert_string_equal(cl.sandbox, "a=b");
}

static void
test_quoted_values(void **state)
{
  parse("quiet vfiod.sandbox=\"sb with  spaces\" panic=-1");
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_string_equal(cl.sandbox, "sb with  spaces");

  /* The kernel's other spelling: the whole token quoted. */
  parse("\"vfiod.sandbox=x y\" vfiod.ready=\"console\"");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.sandbox, "x y");
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_OK);

  /* Quotes anywhere toggle (the word goes on), but the kernel keeps the ones
   * inside a value: refused, so that guest-init never sees another value
   * than the kernel. */
  parse("vfiod.sandbox=a\"b c\"d vfiod.root=/dev/vda");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_QUOTE);
  assert_string_equal(cl.entries[0].value, "");
  assert_false(cl.has_sandbox);
  assert_string_equal(cl.root, "/dev/vda");

  /* A quoted empty value is empty: refused for the sandbox id. */
  parse("vfiod.sandbox=\"\"");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
  assert_false(cl.has_sandbox);

  /* Unterminated: refused, and it swallows the rest of the line. */
  parse("vfiod.sandbox=\"abc vfiod.ready=console");
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_UNTERMINATED);
  assert_true(gi_cmdline_status_is_error(cl.entries[0].status));
  assert_false(cl.has_sandbox);
}

static void
test_other_keys_ignored(void **state)
{
  parse("vfio.sandbox=a avfiod.sandbox=b vfiodsandbox=c VFIOD.sandbox=d vfiod=e vfiod "
        "vfio-pci.ids=10de:1b80 \"x=vfiod.sandbox=f\" -- vfiod_sandbox=g");
  assert_sane();
  assert_int_equal(cl.n_entries, 0);
  assert_false(cl.has_sandbox);
}

static void
test_unknown_vfiod_keys(void **state)
{
  parse("vfiod.future=1 vfiod.sandbox=sb vfiod.=x vfiod.other=\"a b\"");
  assert_sane();
  assert_int_equal(cl.n_entries, 4);
  assert_string_equal(cl.entries[0].key, "vfiod.future");
  assert_string_equal(cl.entries[0].value, "1");
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_UNKNOWN);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_UNKNOWN);
  assert_false(gi_cmdline_status_is_error(GI_CMDLINE_UNKNOWN));
  assert_string_equal(cl.entries[2].key, "vfiod.");
  assert_int_equal(cl.entries[2].status, GI_CMDLINE_UNKNOWN);
  assert_string_equal(cl.entries[3].value, "a b");
  assert_int_equal(cl.entries[3].status, GI_CMDLINE_UNKNOWN);
  /* Known keys are unaffected. */
  assert_string_equal(cl.sandbox, "sb");
}

static void
test_control_chars_rejected(void **state)
{
  const char *bad[] = {
    "vfiod.sandbox=a\x01z",
    "vfiod.sandbox=\"a\tz\"",       /* a tab only gets in through quotes */
    "vfiod.sandbox=\"a\nz\"",
    "vfiod.sandbox=a\x1b[2Jz",      /* terminal escape */
    "vfiod.sandbox=a\x7fz",
    "vfiod.sandbox=a\xc3\xa9z",     /* non-ASCII */
  };

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    parse(bad[i]);
    assert_sane();
    assert_int_equal(cl.n_entries, 1);
    assert_string_equal(cl.entries[0].key, "vfiod.sandbox");
    assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
    assert_string_equal(cl.entries[0].value, "");
    assert_false(cl.has_sandbox);
  }

  /* In the key: shown with '?' so that it can be printed. */
  parse("vfiod.sand\x1b" "box=x vfiod.\"a b\"=y");
  assert_sane();
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.entries[0].key, "vfiod.sand?box");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
  assert_string_equal(cl.entries[1].key, "vfiod.a?b");
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_BAD_CHAR);

  /* A refused token does not undo an earlier good one. */
  parse("vfiod.sandbox=good vfiod.sandbox=b\x02" "ad");
  assert_string_equal(cl.sandbox, "good");
}

static void
test_missing_equals(void **state)
{
  parse("vfiod.sandbox vfiod.ready vfiod.future");
  assert_sane();
  assert_int_equal(cl.n_entries, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(cl.entries[i].status, GI_CMDLINE_NO_VALUE);
    assert_true(gi_cmdline_status_is_error(cl.entries[i].status));
  }
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_SANDBOX);
  assert_false(cl.has_sandbox);

  /* '=' with nothing after it is a value, and an empty sandbox id is refused. */
  parse("vfiod.sandbox=");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
}

static void
test_known_values(void **state)
{
  parse("vfiod.ready=serial");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_VALUE);
  assert_string_equal(cl.entries[0].value, "serial");
  assert_int_equal(cl.report, GI_REPORT_CONSOLE);

  /* Unlike kernel parameters, a key counts once: the first stays, the
   * second is refused (and makes the line unusable, see test_check). */
  parse("vfiod.sandbox=first vfiod.sandbox=second");
  assert_int_equal(cl.n_entries, 2);
  assert_string_equal(cl.sandbox, "first");
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_DUPLICATE);
  assert_string_equal(cl.entries[1].value, "second");
}

static void
test_long_input(void **state)
{
  size_t big = 200000;
  char *s = malloc(big + 64);
  char *p;

  assert_non_null(s);

  /* A value of exactly the maximum is fine; one byte more is refused. */
  strcpy(s, "vfiod.sandbox=");
  memset(s + 14, 'v', GI_CMDLINE_MAX_VALUE);
  s[14 + GI_CMDLINE_MAX_VALUE] = '\0';
  parse(s);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
  assert_int_equal(strlen(cl.sandbox), GI_CMDLINE_MAX_VALUE);
  strcat(s, "v");
  parse(s);
  assert_sane();
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);
  assert_false(cl.has_sandbox);

  /* An overlong key is cut for printing, and refused. */
  strcpy(s, "vfiod.");
  memset(s + 6, 'k', 1000);
  strcpy(s + 1006, "=1");
  parse(s);
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  assert_int_equal(strlen(cl.entries[0].key), GI_CMDLINE_MAX_KEY);
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);

  /* One huge value: refused, no overflow. */
  strcpy(s, "vfiod.sandbox=");
  memset(s + 14, 'x', big);
  s[14 + big] = '\0';
  parse(s);
  assert_sane();
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_TOO_LONG);

  /* Many tokens: the first GI_CMDLINE_MAX_ENTRIES are kept, the rest
   * counted, and the line refused. */
  p = s;
  for (int i = 0; i < 1000; i++)
    p += sprintf(p, "vfiod.k%d=%d ", i, i);
  parse(s);
  assert_sane();
  assert_int_equal(cl.n_entries, GI_CMDLINE_MAX_ENTRIES);
  assert_int_equal(cl.n_dropped, 1000 - GI_CMDLINE_MAX_ENTRIES);
  assert_string_equal(cl.entries[GI_CMDLINE_MAX_ENTRIES - 1].key, "vfiod.k63");
  {
    char err[128];
    assert_false(gi_cmdline_check(&cl, err, sizeof err));
    assert_string_equal(err, "1000 vfiod.* words, at most 64 are allowed");
  }

  free(s);
}

static void
test_garbage(void **state)
{
  static const char alphabet[] = "vfiod.sandbox=ready\" \t\n\v\x01\x7f\xa0\xff\\";
  char s[600];

  srand(1);
  for (int round = 0; round < 5000; round++) {
    size_t n = (size_t) rand() % (sizeof(s) - 1);

    for (size_t i = 0; i < n; i++)
      s[i] = (round % 2) ? (char) (rand() % 255 + 1)
                         : alphabet[(size_t) rand() % (sizeof(alphabet) - 1)];
    s[n] = '\0';
    parse(s);
    assert_sane();
    {
      char err[GI_CMDLINE_MAX_KEY + 128];
      bool ok = gi_cmdline_check(&cl, err, sizeof err);
      assert_true(ok == (err[0] == '\0'));
    }
  }
}

static void
test_status_strings(void **state)
{
  for (int st = GI_CMDLINE_OK; st <= GI_CMDLINE_STATUS_LAST; st++)
    assert_non_null(gi_cmdline_status_to_string((GiCmdlineStatus) st));
  assert_string_equal(gi_cmdline_status_to_string(GI_CMDLINE_NO_VALUE), "missing '='");
  assert_string_equal(gi_cmdline_status_to_string((GiCmdlineStatus) 999), "invalid status");
}

static void
test_defaults(void **state)
{
  parse("console=ttyS0");
  assert_int_equal(cl.report, GI_REPORT_CONSOLE);
  assert_int_equal(cl.report_port, 0);
  assert_false(cl.has_ip);
  assert_string_equal(cl.gw, "");
  assert_int_equal(cl.n_dns, 0);
  assert_string_equal(cl.ifname, "");
  assert_string_equal(cl.cmd, "");
  assert_int_equal(cl.n_args, 0);
  assert_string_equal(cl.root, "");
  assert_string_equal(cl.rootfstype, "ext4");
  assert_false(cl.root_ro);
  assert_true(cl.gpu);
  assert_int_equal(cl.nvidia, GI_NVIDIA_UVM);
  assert_int_equal(cl.timeout_s, 0);
}

/* Parses @s, which must hold exactly one vfiod.* token, and returns its status. */
static GiCmdlineStatus
one(const char *s)
{
  parse(s);
  assert_sane();
  assert_int_equal(cl.n_entries, 1);
  return cl.entries[0].status;
}

static void
test_report_key(void **state)
{
  assert_int_equal(one("vfiod.report=vsock:1024"), GI_CMDLINE_OK);
  assert_int_equal(cl.entries[0].id, GI_CMDLINE_KEY_REPORT);
  assert_int_equal(cl.report, GI_REPORT_VSOCK);
  assert_int_equal(cl.report_port, 1024);
  assert_int_equal(one("vfiod.report=vsock:4294967294"), GI_CMDLINE_OK);
  assert_int_equal(cl.report_port, 4294967294u);
  assert_int_equal(one("vfiod.report=console"), GI_CMDLINE_OK);
  assert_int_equal(cl.report, GI_REPORT_CONSOLE);
  /* The older key takes the same values. */
  assert_int_equal(one("vfiod.ready=vsock:9"), GI_CMDLINE_OK);
  assert_int_equal(cl.report, GI_REPORT_VSOCK);
  assert_int_equal(cl.report_port, 9);

  const char *bad[] = { "vfiod.report=vsock:", "vfiod.report=vsock:0", "vfiod.report=vsock:4294967295",
                        "vfiod.report=vsock:99999999999", "vfiod.report=vsock:-1", "vfiod.report=vsock:12a",
                        "vfiod.report=vsock", "vfiod.report=VSOCK:1", "vfiod.report=", "vfiod.report=tcp:1" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(one(bad[i]), GI_CMDLINE_BAD_VALUE);
    assert_int_equal(cl.report, GI_REPORT_CONSOLE);
  }
  /* A refused value leaves the earlier one. */
  parse("vfiod.report=vsock:5 vfiod.report=vsock:0");
  assert_int_equal(cl.report, GI_REPORT_VSOCK);
  assert_int_equal(cl.report_port, 5);
}

static void
test_network_keys(void **state)
{
  parse("vfiod.ip=10.0.2.15/24 vfiod.gw=10.0.2.2 vfiod.dns=10.0.2.3,1.1.1.1,2001:db8::1 vfiod.if=eth1");
  assert_sane();
  for (size_t i = 0; i < cl.n_entries; i++)
    assert_int_equal(cl.entries[i].status, GI_CMDLINE_OK);
  assert_true(cl.has_ip);
  assert_string_equal(cl.ip, "10.0.2.15");
  assert_int_equal(cl.prefix, 24);
  assert_string_equal(cl.gw, "10.0.2.2");
  assert_int_equal(cl.n_dns, 3);
  assert_string_equal(cl.dns[0], "10.0.2.3");
  assert_string_equal(cl.dns[1], "1.1.1.1");
  assert_string_equal(cl.dns[2], "2001:db8::1");
  assert_string_equal(cl.ifname, "eth1");

  assert_int_equal(one("vfiod.ip=192.168.100.2/32"), GI_CMDLINE_OK);
  assert_int_equal(cl.prefix, 32);
  assert_int_equal(one("vfiod.ip=10.1.2.3/1"), GI_CMDLINE_OK);

  const char *bad_ip[] = { "vfiod.ip=10.0.2.15", "vfiod.ip=10.0.2.15/", "vfiod.ip=10.0.2.15/0",
                           "vfiod.ip=10.0.2.15/33", "vfiod.ip=10.0.2.15/024", "vfiod.ip=10.0.2/24",
                           "vfiod.ip=10.0.2.256/24", "vfiod.ip=host/24", "vfiod.ip=::1/64",
                           "vfiod.ip=10.0.2.15/24/1", "vfiod.ip=/24", "vfiod.ip=10.0.2.15/x",
                           "vfiod.ip= 10.0.2.15/24", "vfiod.ip=010.000.002.015/24" };
  for (size_t i = 0; i < sizeof(bad_ip) / sizeof(bad_ip[0]); i++) {
    assert_int_equal(one(bad_ip[i]), GI_CMDLINE_BAD_VALUE);
    assert_false(cl.has_ip);
  }

  const char *bad_gw[] = { "vfiod.gw=", "vfiod.gw=10.0.2", "vfiod.gw=10.0.2.2/24", "vfiod.gw=fe80::1",
                           "vfiod.gw=gateway" };
  for (size_t i = 0; i < sizeof(bad_gw) / sizeof(bad_gw[0]); i++) {
    assert_int_equal(one(bad_gw[i]), GI_CMDLINE_BAD_VALUE);
    assert_string_equal(cl.gw, "");
  }

  const char *bad_dns[] = { "vfiod.dns=", "vfiod.dns=1.1.1.1,", "vfiod.dns=,1.1.1.1", "vfiod.dns=1.1.1.1,,8.8.8.8",
                            "vfiod.dns=1.1.1.1,8.8.8.8,9.9.9.9,1.0.0.1", "vfiod.dns=dns.example",
                            "vfiod.dns=1.1.1.1;8.8.8.8" };
  for (size_t i = 0; i < sizeof(bad_dns) / sizeof(bad_dns[0]); i++) {
    assert_int_equal(one(bad_dns[i]), GI_CMDLINE_BAD_VALUE);
    assert_int_equal(cl.n_dns, 0);
  }

  const char *bad_if[] = { "vfiod.if=", "vfiod.if=a/b", "vfiod.if=eth0:1", "vfiod.if=.", "vfiod.if=..",
                           "vfiod.if=0123456789abcdef", "\"vfiod.if=a b\"" };
  for (size_t i = 0; i < sizeof(bad_if) / sizeof(bad_if[0]); i++) {
    assert_int_equal(one(bad_if[i]), GI_CMDLINE_BAD_VALUE);
    assert_string_equal(cl.ifname, "");
  }
  assert_int_equal(one("vfiod.if=0123456789abcde"), GI_CMDLINE_OK);  /* 15 bytes: IFNAMSIZ - 1 */
}

static void
test_workload_keys(void **state)
{
  parse("vfiod.cmd=/bin/sh vfiod.arg=-c \"vfiod.arg=(sleep 1; sleep 30) & exit 7\" vfiod.arg= vfiod.arg=\"a  b\"");
  assert_sane();
  assert_string_equal(cl.cmd, "/bin/sh");
  assert_int_equal(cl.n_args, 4);
  assert_string_equal(cl.args[0], "-c");
  assert_string_equal(cl.args[1], "(sleep 1; sleep 30) & exit 7");
  assert_string_equal(cl.args[2], "");     /* an empty argument is an argument */
  assert_string_equal(cl.args[3], "a  b");

  /* Arguments keep command line order, wherever vfiod.cmd is. */
  parse("vfiod.arg=1 vfiod.cmd=/x vfiod.arg=2");
  assert_string_equal(cl.cmd, "/x");
  assert_int_equal(cl.n_args, 2);
  assert_string_equal(cl.args[0], "1");
  assert_string_equal(cl.args[1], "2");

  const char *bad_cmd[] = { "vfiod.cmd=", "vfiod.cmd=sh", "vfiod.cmd=./sh", "vfiod.cmd=/", "vfiod.cmd=/bin/",
                            "vfiod.cmd=/bin//sh", "vfiod.cmd=/bin/../sh", "vfiod.cmd=/./sh", "vfiod.cmd=/bin/.." };
  for (size_t i = 0; i < sizeof(bad_cmd) / sizeof(bad_cmd[0]); i++) {
    assert_int_equal(one(bad_cmd[i]), GI_CMDLINE_BAD_VALUE);
    assert_string_equal(cl.cmd, "");
  }
  assert_int_equal(one("vfiod.cmd=/usr/bin/..hidden/.x"), GI_CMDLINE_OK);  /* names that only start with dots */

  /* At most GI_CMDLINE_MAX_ARGS arguments: the rest are refused. */
  {
    char s[1024];
    char *p = s;

    for (int i = 0; i < GI_CMDLINE_MAX_ARGS + 2; i++)
      p += sprintf(p, "vfiod.arg=a%d ", i);
    parse(s);
    assert_sane();
    assert_int_equal(cl.n_args, GI_CMDLINE_MAX_ARGS);
    assert_string_equal(cl.args[GI_CMDLINE_MAX_ARGS - 1], "a15");
    assert_int_equal(cl.entries[GI_CMDLINE_MAX_ARGS].status, GI_CMDLINE_TOO_MANY);
    assert_string_equal(cl.entries[GI_CMDLINE_MAX_ARGS].value, "a16");
    assert_true(gi_cmdline_status_is_error(GI_CMDLINE_TOO_MANY));
  }
}

static void
test_root_keys(void **state)
{
  parse("vfiod.root=/dev/vda vfiod.rootfstype=ext2 vfiod.rootflags=ro");
  assert_sane();
  assert_string_equal(cl.root, "/dev/vda");
  assert_string_equal(cl.rootfstype, "ext2");
  assert_true(cl.root_ro);
  parse("vfiod.rootflags=rw");
  assert_false(cl.root_ro);
  assert_int_equal(one("vfiod.root=/dev/disk/by-id/virtio-root"), GI_CMDLINE_OK);

  const char *bad[] = { "vfiod.root=vda", "vfiod.root=/vda", "vfiod.root=/dev/", "vfiod.root=/dev/../etc/x",
                        "vfiod.root=/devx/vda", "vfiod.rootfstype=", "vfiod.rootfstype=ext4,ro",
                        "vfiod.rootfstype=EXT4", "vfiod.rootfstype=a/b", "vfiod.rootflags=", "vfiod.rootflags=noexec" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(one(bad[i]), GI_CMDLINE_BAD_VALUE);
    assert_string_equal(cl.root, "");
    assert_string_equal(cl.rootfstype, "ext4");
  }
}

static void
test_gpu_keys(void **state)
{
  assert_int_equal(one("vfiod.gpu=off"), GI_CMDLINE_OK);
  assert_false(cl.gpu);
  assert_int_equal(one("vfiod.gpu=on"), GI_CMDLINE_OK);
  assert_true(cl.gpu);
  assert_int_equal(one("vfiod.gpu=0"), GI_CMDLINE_BAD_VALUE);
  assert_true(cl.gpu);

  assert_int_equal(one("vfiod.nvidia=uvm,modeset"), GI_CMDLINE_OK);
  assert_int_equal(cl.nvidia, GI_NVIDIA_UVM | GI_NVIDIA_MODESET);
  assert_int_equal(one("vfiod.nvidia=drm"), GI_CMDLINE_OK);
  assert_int_equal(cl.nvidia, GI_NVIDIA_DRM | GI_NVIDIA_MODESET);  /* drm needs modeset */
  assert_int_equal(one("vfiod.nvidia=peermem,uvm"), GI_CMDLINE_OK);
  assert_int_equal(cl.nvidia, GI_NVIDIA_PEERMEM | GI_NVIDIA_UVM);
  assert_int_equal(one("vfiod.nvidia=none"), GI_CMDLINE_OK);
  assert_int_equal(cl.nvidia, 0);

  const char *bad[] = { "vfiod.nvidia=", "vfiod.nvidia=uvm,", "vfiod.nvidia=,uvm", "vfiod.nvidia=uvm,none",
                        "vfiod.nvidia=UVM", "vfiod.nvidia=uvmx", "vfiod.nvidia=nvidia" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(one(bad[i]), GI_CMDLINE_BAD_VALUE);
    assert_int_equal(cl.nvidia, GI_NVIDIA_DEFAULT);
  }
}

static void
test_timeout_key(void **state)
{
  assert_int_equal(one("vfiod.timeout=30"), GI_CMDLINE_OK);
  assert_int_equal(cl.timeout_s, 30);
  assert_int_equal(one("vfiod.timeout=0"), GI_CMDLINE_OK);
  assert_int_equal(cl.timeout_s, 0);
  assert_int_equal(one("vfiod.timeout=31536000"), GI_CMDLINE_OK);
  assert_int_equal(cl.timeout_s, GI_CMDLINE_MAX_TIMEOUT);

  const char *bad[] = { "vfiod.timeout=", "vfiod.timeout=-1", "vfiod.timeout=1s", "vfiod.timeout=31536001",
                        "vfiod.timeout=18446744073709551617", "vfiod.timeout=+5", "vfiod.timeout=0x10" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(one(bad[i]), GI_CMDLINE_BAD_VALUE);
    assert_int_equal(cl.timeout_s, 0);
  }
}

static void
test_mac_key(void **state)
{
  parse("vfiod.mac=02:AB:cd:00:11:22");
  assert_string_equal(cl.mac, "02:ab:cd:00:11:22");
  parse("vfiod.mac=02:ab:cd:00:11 vfiod.mac=02-ab-cd-00-11-22 vfiod.mac=02:ab:cd:00:11:2g");
  assert_sane();
  assert_string_equal(cl.mac, "");
}

static void
test_env_key(void **state)
{
  parse("vfiod.env=A=1 \"vfiod.env=GREETING=hello world\" vfiod.env=_X= vfiod.env==v vfiod.env=1A=x "
        "vfiod.env=NO_EQUALS vfiod.env=BAD-NAME=x");
  assert_sane();
  assert_int_equal(cl.n_env, 3);
  assert_string_equal(cl.env[0], "A=1");
  assert_string_equal(cl.env[1], "GREETING=hello world");
  assert_string_equal(cl.env[2], "_X=");

  /* At most GI_CMDLINE_MAX_ENV entries. */
  {
    char buf[2048] = "";
    for (int i = 0; i < GI_CMDLINE_MAX_ENV + 3; i++) {
      char tok[32];
      snprintf(tok, sizeof tok, "vfiod.env=V%d=%d ", i, i);
      strcat(buf, tok);
    }
    parse(buf);
    assert_sane();
    assert_int_equal(cl.n_env, GI_CMDLINE_MAX_ENV);
  }
}

/* Every byte the guest kernel splits words on (lib/ctype.c isspace():
 * \t \n \v \f \r, space, 0xa0) splits them here too, outside quotes: what
 * the kernel took as a word of its own (rdinit=/evil) is one here. Inside
 * quotes, the kernel does not split, and guest-init refuses the byte. */
static void
test_kernel_separators(void **state)
{
  const char seps[] = { '\t', '\n', '\v', '\f', '\r', ' ', (char) 0xa0 };

  for (size_t i = 0; i < sizeof seps; i++) {
    char s[128];

    /* finding 4 (issue 13): vfioctl sandbox create --cmd $'/bin/true\vrdinit=/evil' */
    snprintf(s, sizeof s, "vfiod.cmd=/bin/true%crdinit=/evil", seps[i]);
    parse(s);
    assert_sane();
    assert_int_equal(cl.n_entries, 1);
    assert_string_equal(cl.cmd, "/bin/true");  /* rdinit=/evil is another word, the kernel's */
    snprintf(s, sizeof s, "vfiod.sandbox=sb-1%cvfiod.root=/dev/evil", seps[i]);
    parse(s);
    assert_sane();
    assert_int_equal(cl.n_entries, 2);
    assert_string_equal(cl.sandbox, "sb-1");
    assert_string_equal(cl.root, "/dev/evil");

    /* quoted: one word, refused (a space is the one blank allowed there) */
    snprintf(s, sizeof s, "\"vfiod.arg=a%cb\" vfiod.cmd=/bin/true", seps[i]);
    parse(s);
    assert_sane();
    assert_int_equal(cl.n_entries, 2);
    if (seps[i] == ' ') {
      assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
      assert_string_equal(cl.args[0], "a b");
    } else {
      assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
      assert_int_equal(cl.n_args, 0);
      assert_false(gi_cmdline_check(&cl, NULL, 0));
    }
  }
}

/* Quotes: only where the kernel removes them, around the whole word or the
 * whole value; anywhere else the kernel would keep them in the value. */
static void
test_quote_placement(void **state)
{
  const char *good[] = { "\"vfiod.arg=a b\"", "vfiod.arg=\"a b\"", "\"vfiod.arg=\"", "vfiod.arg=\"\"", "vfiod.arg=x" };
  const char *good_value[] = { "a b", "a b", "", "", "x" };
  const char *bad[] = { "vfiod.arg=a\"b\"", "vfiod.arg=\"a\"b", "\"vfiod.arg\"=x", "vfiod.\"arg\"=x",
                        "\"vfiod.arg=\"x\"\"", "vfiod.arg=\"\"\"\"", "\"\"vfiod.arg=x" };

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    parse(good[i]);
    assert_sane();
    assert_int_equal(cl.n_entries, 1);
    assert_int_equal(cl.entries[0].status, GI_CMDLINE_OK);
    assert_int_equal(cl.n_args, 1);
    assert_string_equal(cl.args[0], good_value[i]);
  }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    parse(bad[i]);
    assert_sane();
    if (cl.n_entries == 0)
      fail_msg("%s: no vfiod.* word seen", bad[i]);
    assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_QUOTE);
    assert_int_equal(cl.n_args, 0);
  }
}

/* The allow-list of protocol.h: printable ASCII but '"' and '\\'. */
static void
test_value_allow_list(void **state)
{
  char s[64];

  for (int c = 1; c < 256; c++) {
    bool allowed = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';

    assert_true(vfiod_cmdline_value_char_ok((unsigned char) c) == allowed);
    assert_true(vfiod_cmdline_word_char_ok((unsigned char) c) == (allowed && c != ' '));
    assert_true(vfiod_cmdline_is_space((unsigned char) c) ==
                (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0xa0));
    if (c == '"' || vfiod_cmdline_is_space((unsigned char) c))
      continue;
    snprintf(s, sizeof s, "\"vfiod.arg=a%cz\"", c);
    parse(s);
    assert_sane();
    assert_int_equal(cl.n_entries, 1);
    assert_int_equal(cl.entries[0].status, allowed ? GI_CMDLINE_OK : GI_CMDLINE_BAD_CHAR);
  }
  /* A backslash is no escape: refused. */
  parse("vfiod.cmd=/bin/a\\b");
  assert_int_equal(cl.entries[0].status, GI_CMDLINE_BAD_CHAR);
  assert_string_equal(cl.cmd, "");
}

/* A key other than vfiod.arg/vfiod.env given twice is refused, the first
 * one stays, and the line is unusable: an injected vfiod.root, vfiod.report
 * or vfiod.cmd does not override vfiod's own. */
static void
test_duplicate_keys(void **state)
{
  static const struct {
    const char *line;
    const char *key;
  } cases[] = {
    { "vfiod.root=/dev/vda vfiod.root=/dev/vdb", "vfiod.root" },
    { "vfiod.report=vsock:10000 vfiod.report=vsock:6666", "vfiod.report" },
    { "vfiod.report=vsock:10000 vfiod.ready=console", "vfiod.ready" },  /* one key, two spellings */
    { "vfiod.sandbox=sb-1 vfiod.sandbox=sb-2", "vfiod.sandbox" },
    { "vfiod.cmd=/bin/true vfiod.cmd=/evil", "vfiod.cmd" },
    { "vfiod.ip=10.0.2.15/24 vfiod.ip=10.9.9.9/8", "vfiod.ip" },
    { "vfiod.timeout=5 vfiod.timeout=0", "vfiod.timeout" },
    /* the first was refused: the second still does not count */
    { "vfiod.root=vda vfiod.root=/dev/vdb", "vfiod.root" },
  };
  char err[256], want[256];

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    parse(cases[i].line);
    assert_sane();
    assert_int_equal(cl.n_entries, 2);
    assert_int_equal(cl.entries[1].status, GI_CMDLINE_DUPLICATE);
    assert_false(gi_cmdline_check(&cl, err, sizeof err));
    snprintf(want, sizeof want, "%s: ", cl.entries[0].status == GI_CMDLINE_OK ? cases[i].key : "vfiod.root");
    assert_true(strncmp(err, want, strlen(want)) == 0);
  }
  parse("vfiod.root=/dev/vda vfiod.root=/dev/vdb");
  assert_string_equal(cl.root, "/dev/vda");
  gi_cmdline_check(&cl, err, sizeof err);
  assert_string_equal(err, "vfiod.root: given more than once");
  parse("vfiod.report=vsock:10000 vfiod.ready=console");
  assert_int_equal(cl.report, GI_REPORT_VSOCK);
  assert_int_equal(cl.report_port, 10000);
  parse("vfiod.cmd=/bin/true vfiod.cmd=/evil");
  assert_string_equal(cl.cmd, "/bin/true");

  /* vfiod.arg and vfiod.env repeat by design */
  parse("vfiod.cmd=/x vfiod.arg=1 vfiod.arg=1 vfiod.env=A=1 vfiod.env=B=2");
  assert_int_equal(cl.n_args, 2);
  assert_int_equal(cl.n_env, 2);
  assert_true(gi_cmdline_check(&cl, err, sizeof err));
  assert_string_equal(err, "");
}

/* gi_cmdline_check(): what makes guest-init stop, and what only warns. */
static void
test_check(void **state)
{
  const char *usable[] = {
    "",
    "console=ttyS0 panic=-1 vfiod.sandbox=sb-1 vfiod.report=vsock:10000 vfiod.cmd=/bin/sh \"vfiod.arg=-c\" "
    "\"vfiod.arg=echo hi; exit 3\" \"vfiod.env=A=b c\"",
    "vfiod.future=1 vfiod.sandbox=sb-1",           /* unknown keys: a warning */
    "rdinit=/x \"weird=\"quote vfiod.sandbox=s",   /* not ours: the kernel's business */
  };
  const char *unusable[] = {
    "vfiod.sandbox=",                 /* bad value */
    "vfiod.arg=\x01",                 /* bad byte */
    "vfiod.sandbox=\"abc",            /* unterminated */
    "vfiod.sandbox",                  /* no value */
    "vfiod.sandbox=a\"b\"",           /* misplaced quote */
  };
  char err[256];

  for (size_t i = 0; i < sizeof usable / sizeof usable[0]; i++) {
    parse(usable[i]);
    if (!gi_cmdline_check(&cl, err, sizeof err))
      fail_msg("'%s' refused: %s", usable[i], err);
  }
  for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
    parse(unusable[i]);
    assert_false(gi_cmdline_check(&cl, err, sizeof err));
    assert_true(strncmp(err, "vfiod.sandbox: ", 15) == 0 || strncmp(err, "vfiod.arg: ", 11) == 0);
    assert_false(gi_cmdline_check(&cl, NULL, 0));
  }
  /* too many arguments: the 17th is not dropped quietly */
  {
    char s[1024];
    char *p = s;
    for (int i = 0; i <= GI_CMDLINE_MAX_ARGS; i++)
      p += sprintf(p, "vfiod.arg=a%d ", i);
    parse(s);
    assert_false(gi_cmdline_check(&cl, err, sizeof err));
    assert_string_equal(err, "vfiod.arg: given too many times");
  }
  /* exactly GI_CMDLINE_MAX_ENTRIES vfiod.* words are fine */
  {
    char s[4096];
    char *p = s;
    for (int i = 0; i < GI_CMDLINE_MAX_ENTRIES; i++)
      p += sprintf(p, "vfiod.k%d=%d ", i, i);
    parse(s);
    assert_int_equal(cl.n_dropped, 0);
    assert_true(gi_cmdline_check(&cl, err, sizeof err));
    strcpy(p, "vfiod.one-more=1");
    parse(s);
    assert_int_equal(cl.n_dropped, 1);
    assert_false(gi_cmdline_check(&cl, err, sizeof err));
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_plain_keys),
    cmocka_unit_test(test_quoted_values),
    cmocka_unit_test(test_other_keys_ignored),
    cmocka_unit_test(test_unknown_vfiod_keys),
    cmocka_unit_test(test_control_chars_rejected),
    cmocka_unit_test(test_missing_equals),
    cmocka_unit_test(test_known_values),
    cmocka_unit_test(test_long_input),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_status_strings),
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_report_key),
    cmocka_unit_test(test_network_keys),
    cmocka_unit_test(test_workload_keys),
    cmocka_unit_test(test_root_keys),
    cmocka_unit_test(test_gpu_keys),
    cmocka_unit_test(test_timeout_key),
    cmocka_unit_test(test_env_key),
    cmocka_unit_test(test_mac_key),
    cmocka_unit_test(test_kernel_separators),
    cmocka_unit_test(test_quote_placement),
    cmocka_unit_test(test_value_allow_list),
    cmocka_unit_test(test_duplicate_keys),
    cmocka_unit_test(test_check),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
