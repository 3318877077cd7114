/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The workload on the guest kernel command line, both ends (issue 13,
 * finding 4): vfiod's checks and words (vfiod/vm/guest-cmdline.c) against the
 * shared protocol (guest-init/protocol.h), the whole -append line as
 * vfd_qemu_build_argv() makes it, and guest-init's own parser
 * (guest-init/cmdline.c) reading that line back.
 *
 * The attacks: a byte the guest kernel splits words on (\t \n \v \f \r,
 * space outside quotes, 0xa0), a double quote or a backslash in cmd, an
 * argument or an environment value, to start a word of the caller's
 * (rdinit=/evil, a second vfiod.root=); too many or too long entries, or a
 * request whose line would pass x86's 2048 bytes (the kernel cuts the rest
 * silently, possibly inside a quoted word). Each is refused with
 * VFD_ERROR_INVALID_ARGUMENT naming the entry and the rule, and nothing is
 * written. What is accepted comes back out of guest-init's parser exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "guest-cmdline.h"
#include "qemu-argv.h"

#include "cmdline.h" /* guest-init's parser */

static GiCmdline cl; /* large: off the stack */

/* ---- helpers ---- */

static GVariant *
env_new(const char *const *pairs) /* NAME, VALUE, NAME, VALUE, ..., NULL */
{
  GVariantBuilder b;

  g_variant_builder_init(&b, G_VARIANT_TYPE("a{ss}"));
  for (gsize i = 0; pairs && pairs[i]; i += 2)
    g_variant_builder_add(&b, "{ss}", pairs[i], pairs[i + 1]);
  return g_variant_ref_sink(g_variant_builder_end(&b));
}

/* Asserts that the workload is refused with INVALID_ARGUMENT, that the
 * message holds every one of the NULL-terminated @needles, is ASCII (it
 * goes out as a D-Bus string), and that nothing was appended. */
static void
assert_refused(const char *cmd, const char *const *args, GVariant *env, ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  g_auto(GStrv) words = NULL;
  const char *needle;
  va_list ap;

  assert_false(vfd_guest_cmdline_check_workload(cmd, args, env, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  for (const char *c = error->message; *c; c++)
    if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
      fail_msg("message not printable ASCII: %s", error->message);
  va_start(ap, env);
  while ((needle = va_arg(ap, const char *)))
    if (!strstr(error->message, needle))
      fail_msg("message '%s' lacks '%s'", error->message, needle);
  va_end(ap);
  g_clear_error(&error);

  assert_false(vfd_guest_cmdline_add_workload(b, cmd, args, env, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  words = g_strv_builder_end(b);
  assert_int_equal(g_strv_length(words), 0);
}

/* The longest words vfiod writes of its own besides vfd_qemu_build_argv's
 * (vfd_mgr_net_qemu_args() in sandbox-net.c and the root disk in create.c): longest addresses, a
 * /30 prefix ([network] prefix is 1..30), three DNS servers (the config's
 * limit), the highest report port. */
static const char *const own_longest[] = {
  VFIOD_KEY_IP "=255.255.255.255/30",
  VFIOD_KEY_GW "=255.255.255.255",
  VFIOD_KEY_MAC "=02:ff:ff:ff:ff:ff",
  VFIOD_KEY_DNS "=255.255.255.255,255.255.255.255,255.255.255.255",
  VFIOD_KEY_REPORT "=vsock:65535",
  VFIOD_KEY_ROOT "=" VFD_QEMU_ROOT_DEV,
  VFIOD_KEY_DRIVER "=" VFD_QEMU_DRIVER_DEV, /* the driver layer of a GPU sandbox ([qemu] driver_layer) */
  NULL,
};

/* The -append line of the longest QEMU configuration (Q35 with pci=nocrs,
 * a TSC rate of 10 digits), with @own (NULL-terminated) and then @workload
 * as extra words. */
static char *
build_append(const char *const *own, const char *const *workload)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  g_auto(GStrv) extra = NULL;
  g_auto(GStrv) argv = NULL;
  VfdBdf dev = { 0 };
  VfdQemuConfig c = {
    .id = "sb-ffffffff", .qemu_binary = "qemu-system-x86_64", .accel = "tcg", .memory_mib = 512, .vcpus = 1,
    .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/s", .qmp_socket = "/q",
    .devices = &dev, .n_devices = 1, .pci_nocrs = TRUE, .tsc_khz = G_MAXUINT,
  };

  g_strv_builder_addv(b, (const char **) own);
  if (workload)
    g_strv_builder_addv(b, (const char **) workload);
  extra = g_strv_builder_end(b);
  c.extra_append = (const char *const *) extra;
  argv = vfd_qemu_build_argv(&c);
  for (int i = 0; argv[i]; i++)
    if (g_str_equal(argv[i], "-append"))
      return g_strdup(argv[i + 1]);
  fail_msg("no -append");
  return NULL;
}

/* Builds the words of an accepted workload, puts them on the longest
 * command line, asserts the line fits x86, and parses it with guest-init:
 * the line is usable, the workload is exactly the one requested, and
 * vfiod's own keys are intact. */
static void
round_trip(const char *cmd, const char *const *args, GVariant *env)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  g_auto(GStrv) words = NULL;
  g_autofree char *line = NULL;
  gsize own_len, n_args = args ? g_strv_length((char **) args) : 0;
  char err[256];

  if (!vfd_guest_cmdline_add_workload(b, cmd, args, env, &error))
    fail_msg("refused: %s", error->message);
  words = g_strv_builder_end(b);
  line = build_append(own_longest, (const char *const *) words);
  {
    g_autofree char *own = build_append(own_longest, NULL);
    own_len = strlen(own);
    /* the line is the own part plus the workload, as counted */
    assert_int_equal(strlen(line), own_len + vfd_guest_cmdline_workload_len(cmd, args, env));
  }
  assert_true(strlen(line) <= VFIOD_CMDLINE_MAX_LEN);

  gi_cmdline_parse(line, &cl);
  if (!gi_cmdline_check(&cl, err, sizeof err))
    fail_msg("guest-init refuses the line: %s\n%s", err, line);
  assert_string_equal(cl.cmd, cmd ? cmd : "");
  assert_int_equal(cl.n_args, n_args);
  for (gsize i = 0; i < n_args; i++)
    assert_string_equal(cl.args[i], args[i]);
  assert_int_equal(cl.n_env, env ? g_variant_n_children(env) : 0);
  if (env) {
    GVariantIter it;
    const char *k, *v;
    gsize i = 0;

    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v)) {
      g_autofree char *want = g_strdup_printf("%s=%s", k, v);
      assert_string_equal(cl.env[i++], want);
    }
  }
  /* vfiod's own settings are the ones in effect */
  assert_string_equal(cl.sandbox, "sb-ffffffff");
  assert_string_equal(cl.root, VFD_QEMU_ROOT_DEV);
  assert_string_equal(cl.driver, VFD_QEMU_DRIVER_DEV);
  assert_int_equal(cl.report, GI_REPORT_VSOCK);
  assert_int_equal(cl.report_port, 65535);
  assert_string_equal(cl.ip, "255.255.255.255");
  assert_int_equal(cl.n_dns, 3);
}

/* ---- tests ---- */

/* vfiod's own words fit VFIOD_CMDLINE_RESERVED, in their longest form. */
static void
test_reserved_budget(void **state)
{
  g_autofree char *own = build_append(own_longest, NULL);

  printf("# longest own part: %zu bytes (reserved: %d): %s\n", strlen(own), VFIOD_CMDLINE_RESERVED, own);
  assert_true(strlen(own) <= VFIOD_CMDLINE_RESERVED);
  /* 321 bytes, as the protocol.h comment says: 288 before vfiod.driver=
   * (with " vfiod.root=virtio:vfiod-root"), plus
   * " vfiod.driver=virtio:vfiod-driver" */
  assert_int_equal(strlen(own), 288 + 33);
  assert_non_null(strstr(own, " vfiod.root=virtio:vfiod-root "));
  assert_non_null(strstr(own, " vfiod.driver=virtio:vfiod-driver"));
  assert_int_equal(VFIOD_CMDLINE_WORKLOAD_MAX + VFIOD_CMDLINE_RESERVED, VFIOD_CMDLINE_SIZE - 1);
  /* every key (14 that count once) with every repeat guest-init allows fits */
  assert_true(14 + VFIOD_CMDLINE_MAX_ARGS + VFIOD_CMDLINE_MAX_ENV <= VFIOD_CMDLINE_MAX_ENTRIES);
  gi_cmdline_parse(own, &cl);
  assert_true(gi_cmdline_check(&cl, NULL, 0));
}

/* finding 4: vfioctl sandbox create --cmd $'/bin/true\vrdinit=/evil' made
 * the guest kernel run /evil as init. Every byte the kernel splits on, and
 * the quote and backslash, are refused in cmd, in an argument and in an
 * environment value; the message names the entry, the byte and the rule. */
static void
test_separators_refused(void **state)
{
  const unsigned char bad[] = { '\t', '\n', '\v', '\f', '\r', 0xa0, '"', '\\', 0x01, 0x1b, 0x7f, 0xc2, 0xff };

  assert_refused("/bin/true\vrdinit=/evil", NULL, NULL, "cmd: byte 0x0b at offset 9 is not allowed",
                 "printable ASCII 0x21-0x7e", "kernel command line", "\"/bin/true\\vrdinit=/evil\"", NULL);
  for (gsize i = 0; i < sizeof bad; i++) {
    char v[64], hex[64];
    const char *args[] = { "ok", v, NULL };
    g_autoptr(GVariant) env = NULL;

    g_snprintf(v, sizeof v, "x%crdinit=/evil", bad[i]);
    g_snprintf(hex, sizeof hex, "byte 0x%02x at offset 1 is not allowed", bad[i]);
    {
      char cmd[64];
      g_snprintf(cmd, sizeof cmd, "/bin/true%crdinit=/evil", bad[i]);
      assert_refused(cmd, NULL, NULL, "cmd: byte", "is not allowed", NULL);
    }
    assert_refused("/bin/sh", args, NULL, "args[1]: ", hex, "printable ASCII 0x20-0x7e except '\"' and '\\'", NULL);
    /* D-Bus strings are UTF-8: a byte >= 0x80 comes as U+00XX, whose first
     * byte (0xc2 or 0xc3) is the one refused */
    if (bad[i] >= 0x80) {
      char u[8] = "";
      g_unichar_to_utf8(bad[i], u);
      g_snprintf(v, sizeof v, "x%srdinit=/evil", u);
      g_snprintf(hex, sizeof hex, "byte 0x%02x at offset 1 is not allowed", (unsigned char) u[0]);
    }
    env = env_new((const char *const[]) { "GOOD", "1", "EVIL", v, NULL });
    assert_refused("/bin/sh", NULL, env, "env EVIL: ", hex, NULL);
  }
  /* A blank is fine in an argument (the word is quoted), not in cmd. */
  assert_refused("/bin/my tool", NULL, NULL, "cmd: byte 0x20 at offset 7", "no blank", NULL);
}

/* An argument that spells a vfiod key travels as part of the argument, it
 * never becomes a key: guest-init still sees vfiod's root, report and
 * sandbox. */
static void
test_injected_keys_stay_values(void **state)
{
  const char *args[] = { "-c", "x vfiod.root=/dev/evil vfiod.report=console rdinit=/evil -- init=/evil",
                         "vfiod.sandbox=sb-evil", NULL };
  g_autoptr(GVariant) env = env_new((const char *const[]) { "X", "1 vfiod.cmd=/evil vfiod.root=/dev/evil", NULL });

  round_trip("/bin/sh", args, env);
  assert_string_equal(cl.cmd, "/bin/sh");
  for (gsize i = 0; i < cl.n_entries; i++)
    assert_int_equal(cl.entries[i].status, GI_CMDLINE_OK);

  /* with a quote, it would have been a word of its own: refused */
  assert_refused("/bin/sh", (const char *const[]) { "x\" vfiod.root=/dev/evil \"", NULL }, NULL, "args[0]: byte 0x22",
                 NULL);
}

static void
test_cmd_paths(void **state)
{
  const char *bad[] = { "sh", "./sh", "", "/", "/bin/", "/bin//sh", "/bin/../sh", "/./sh", "/bin/..", "/bin/." };

  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++)
    assert_refused(bad[i], NULL, NULL, "cmd must be", NULL);
  round_trip("/usr/bin/..hidden/.x", NULL, NULL);
  round_trip("/a-b_c.d/e~f+g@h%i,j:k;l(m)n[o]p{q}r$s!t'u`v^w|x&y*z?<>", NULL, NULL);
  assert_refused(NULL, (const char *const[]) { "a", NULL }, NULL, "args need a cmd", NULL);
}

static void
test_env_names(void **state)
{
  const char *bad[] = { "", "1A", "A-B", "A=B", "A B", "\xc3\xa9", "A.B", "$A" };

  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GVariant) env = env_new((const char *const[]) { bad[i], "v", NULL });
    assert_refused("/bin/sh", NULL, env, "env: the name", "[A-Za-z_][A-Za-z0-9_]*", NULL);
  }
  {
    g_autoptr(GVariant) env = env_new((const char *const[]) { "A", "1", "B", "2", "A", "3", NULL });
    assert_refused("/bin/sh", NULL, env, "env: A given more than once", NULL);
  }
  {
    g_autoptr(GVariant) env = env_new((const char *const[]) { "_", "", "a_1", "x=y=z", "PATH", "/opt/bin:/bin", NULL });
    round_trip("/bin/sh", NULL, env);
  }
  /* env without cmd travels too (guest-init keeps it for nothing) */
  {
    g_autoptr(GVariant) env = env_new((const char *const[]) { "A", "1", NULL });
    assert_true(vfd_guest_cmdline_check_workload(NULL, NULL, env, NULL));
  }
  /* not a{ss} */
  {
    g_autoptr(GVariant) v = g_variant_ref_sink(g_variant_new_string("A=1"));
    assert_refused("/bin/sh", NULL, v, "env must be of type a{ss}", NULL);
  }
}

static void
test_limits(void **state)
{
  g_autofree char *v256 = g_strnfill(VFIOD_CMDLINE_MAX_VALUE, 'a');
  g_autofree char *v257 = g_strnfill(VFIOD_CMDLINE_MAX_VALUE + 1, 'a');
  g_autofree char *cmd257 = g_strconcat("/", v256, NULL);
  g_autofree char *cmd256 = g_strndup(cmd257, VFIOD_CMDLINE_MAX_VALUE);
  g_autofree char *v254 = g_strnfill(VFIOD_CMDLINE_MAX_VALUE - 2, 'b');  /* "A=" + 254 = 256 */
  g_autofree char *v255 = g_strnfill(VFIOD_CMDLINE_MAX_VALUE - 1, 'b');
  const char *many[VFIOD_CMDLINE_MAX_ARGS + 2];

  /* one value */
  round_trip(cmd256, (const char *const[]) { v256, NULL }, NULL);
  assert_refused(cmd257, NULL, NULL, "cmd: 257 bytes, at most 256", NULL);
  assert_refused("/bin/sh", (const char *const[]) { v257, NULL }, NULL, "args[0]: 257 bytes, at most 256", NULL);
  {
    g_autoptr(GVariant) ok = env_new((const char *const[]) { "A", v254, NULL });
    g_autoptr(GVariant) over = env_new((const char *const[]) { "A", v255, NULL });
    round_trip("/bin/sh", NULL, ok);
    assert_refused("/bin/sh", NULL, over, "env A: 255 bytes, at most 254", NULL);
  }

  /* counts: 16 arguments and 16 variables, not 17 */
  for (int i = 0; i <= VFIOD_CMDLINE_MAX_ARGS; i++)
    many[i] = "x";
  many[VFIOD_CMDLINE_MAX_ARGS + 1] = NULL;
  assert_refused("/bin/sh", many, NULL, "args: 17 given, at most 16", NULL);
  many[VFIOD_CMDLINE_MAX_ARGS] = NULL;
  {
    g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GVariant) env16 = NULL;
    g_autoptr(GVariant) env17 = NULL;

    for (int i = 0; i <= VFIOD_CMDLINE_MAX_ENV; i++) {
      g_ptr_array_add(pairs, g_strdup_printf("V%d", i));
      g_ptr_array_add(pairs, g_strdup("v"));
    }
    g_ptr_array_add(pairs, NULL);
    env17 = env_new((const char *const *) pairs->pdata);
    assert_refused("/bin/sh", NULL, env17, "env: 17 entries, at most 16", NULL);
    g_free(pairs->pdata[2 * VFIOD_CMDLINE_MAX_ENV]);
    pairs->pdata[2 * VFIOD_CMDLINE_MAX_ENV] = NULL;
    env16 = env_new((const char *const *) pairs->pdata);
    round_trip("/bin/sh", many, env16);
  }
}

/* The whole workload: at most VFIOD_CMDLINE_WORKLOAD_MAX bytes. The
 * longest request that passes fills the command line to the byte with the
 * longest own part, and guest-init reads it back whole; one byte more is
 * refused, whatever entry it is in. */
static void
test_total_budget(void **state)
{
  const char *args[VFIOD_CMDLINE_MAX_ARGS + 1] = { NULL };
  g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GVariant) env = NULL;
  gsize total;
  char *last;

  /* 5 arguments of 256 bytes: 5 * (1 + 2 + 10 + 256) = 1345; " vfiod.cmd=/bin/sh" 18 */
  for (int i = 0; i < 5; i++) {
    char *a = g_strnfill(VFIOD_CMDLINE_MAX_VALUE, (char) ('a' + i));
    a[10] = ' ';  /* blanks, quoted */
    g_ptr_array_add(keep, a);
    args[i] = a;
  }
  total = vfd_guest_cmdline_workload_len("/bin/sh", args, NULL);
  assert_int_equal(total, 18 + 5 * 269);
  /* the rest, to the byte, in a sixth argument: 1535 - 1363 - 13 = 159 */
  last = g_strnfill(VFIOD_CMDLINE_WORKLOAD_MAX - total - 13, 'z');
  g_ptr_array_add(keep, last);
  args[5] = last;
  assert_int_equal(vfd_guest_cmdline_workload_len("/bin/sh", args, NULL), VFIOD_CMDLINE_WORKLOAD_MAX);
  round_trip("/bin/sh", args, NULL);
  {
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    g_auto(GStrv) words = NULL;
    g_autofree char *line = NULL;

    assert_true(vfd_guest_cmdline_add_workload(b, "/bin/sh", args, NULL, NULL));
    words = g_strv_builder_end(b);
    line = build_append(own_longest, (const char *const *) words);
    printf("# longest line: %zu bytes\n", strlen(line));
    assert_true(strlen(line) <= VFIOD_CMDLINE_MAX_LEN);
  }

  /* one byte more: refused, as an argument ... */
  args[5] = g_strconcat(last, "z", NULL);
  g_ptr_array_add(keep, (char *) args[5]);
  assert_refused("/bin/sh", args, NULL, "cmd, args and env take 1536 bytes of the guest kernel command line, at most 1535",
                 NULL);
  /* ... or in an environment variable */
  args[5] = last;
  env = env_new((const char *const[]) { "A", "", NULL });  /* ' "vfiod.env=A="': 15 */
  assert_refused("/bin/sh", args, env, "take 1550 bytes", NULL);
}

/* Random accepted workloads, all through guest-init's parser. */
static void
test_round_trip_random(void **state)
{
  g_autoptr(GRand) r = g_rand_new_with_seed(13);

  for (int round = 0; round < 300; round++) {
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GVariant) env = NULL;
    int n_args = g_rand_int_range(r, 0, VFIOD_CMDLINE_MAX_ARGS + 1);
    int n_env = g_rand_int_range(r, 0, VFIOD_CMDLINE_MAX_ENV + 1);
    /* room for the arguments, roughly (a workload over the budget is skipped) */
    gsize budget = VFIOD_CMDLINE_WORKLOAD_MAX - 18 - (gsize) n_args * 13 - (gsize) n_env * 40;

    for (int i = 0; i < n_args; i++) {
      gsize len = (gsize) g_rand_int_range(r, 0, (gint32) MIN(budget / (gsize) MAX(n_args, 1), 256) + 1);
      char *a = g_malloc(len + 1);
      for (gsize k = 0; k < len; k++) {
        unsigned char c;
        do
          c = (unsigned char) g_rand_int_range(r, 0x20, 0x7f);
        while (!vfiod_cmdline_value_char_ok(c));
        a[k] = (char) c;
      }
      a[len] = '\0';
      g_ptr_array_add(args, a);
    }
    g_ptr_array_add(args, NULL);
    for (int i = 0; i < n_env; i++) {
      g_ptr_array_add(pairs, g_strdup_printf("%c%d", "ABC_xyz"[g_rand_int_range(r, 0, 7)], i));
      g_ptr_array_add(pairs, g_strdup_printf("v=%d %s", g_rand_int(r), i % 2 ? "'quoted' (x)" : "$HOME;|&"));
    }
    g_ptr_array_add(pairs, NULL);
    env = env_new((const char *const *) pairs->pdata);
    if (vfd_guest_cmdline_workload_len("/bin/sh", (const char *const *) args->pdata, env) >
        VFIOD_CMDLINE_WORKLOAD_MAX)
      continue;
    round_trip("/bin/sh", (const char *const *) args->pdata, n_env ? env : NULL);
  }
}

/* [network] dns is bounded by what guest-init takes and written without
 * blanks (it is a word of vfiod's own on the command line). */
static void
test_config_dns(void **state)
{
  static const struct {
    const char *dns;
    const char *want; /* NULL: refused */
  } cases[] = {
    { "10.0.0.1", "10.0.0.1" },
    { " 10.0.0.1 , 10.0.0.2,,10.0.0.3 ", "10.0.0.1,10.0.0.2,10.0.0.3" },
    { "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4", NULL },
    { "10.0.0.1 10.0.0.2", NULL },
    { "", "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(VfdConfig) c = NULL;
    g_autofree char *text = g_strdup_printf("[network]\ndns=%s\n", cases[i].dns);
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("vfiod-conf-XXXXXX", &path, NULL);

    assert_true(fd >= 0);
    close(fd);
    assert_true(g_file_set_contents(path, text, -1, NULL));
    c = vfd_config_load(path, NULL, &error);
    unlink(path);
    if (cases[i].want) {
      if (!c)
        fail_msg("dns=%s refused: %s", cases[i].dns, error->message);
      assert_string_equal(c->net_dns, cases[i].want);
    } else {
      assert_null(c);
      assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
      assert_non_null(strstr(error->message, "[network] dns"));
    }
  }
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reserved_budget),
    cmocka_unit_test(test_separators_refused),
    cmocka_unit_test(test_injected_keys_stay_values),
    cmocka_unit_test(test_cmd_paths),
    cmocka_unit_test(test_env_names),
    cmocka_unit_test(test_limits),
    cmocka_unit_test(test_total_budget),
    cmocka_unit_test(test_round_trip_random),
    cmocka_unit_test(test_config_dns),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
