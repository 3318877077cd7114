/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The workload's payload, both ends (issue 15, item 3): vfiod's checks and
 * writer (vfiod/vm/guest-payload.c) against the shared format
 * (guest-init/payload.h), and guest-init's parser (guest-init/payload.c)
 * reading it back byte for byte. The guest kernel command line keeps only
 * vfiod's own words and vfiod.payload=BYTES (its budget is checked here
 * too).
 *
 * What the command line could not carry travels intact: blanks, quotes,
 * backslashes, newlines, 0xa0, the words "rdinit=/evil" or
 * "vfiod.root=/dev/evil" inside values, more than 16 arguments and
 * entries, binary file contents (NUL, "end\n" inside). Refused, with
 * VFD_ERROR_INVALID_ARGUMENT naming the entry: a relative or unclean cmd
 * or file path, args or env without cmd, bad or repeated env names, a
 * file key or mode outside the rules, a path twice, an entry over its
 * size. guest-init refuses every cut or altered payload. */
#include <errno.h>
#include <fcntl.h>
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
#include "guest-payload.h"
#include "qemu-argv.h"

#include "cmdline.h" /* guest-init's parsers */

static GiCmdline cl;     /* large: off the stack */
static GiPayload parsed; /* likewise */

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

/* One files entry: @mode G_MAXUINT32 leaves the key out. */
static GVariant *
file_new(const char *path, const void *data, gsize len, guint32 mode)
{
  GVariantDict d;

  g_variant_dict_init(&d, NULL);
  g_variant_dict_insert(&d, "path", "s", path);
  g_variant_dict_insert_value(&d, "contents", g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1));
  if (mode != G_MAXUINT32)
    g_variant_dict_insert(&d, "mode", "u", mode);
  return g_variant_dict_end(&d);
}

static GVariant *
files_new(GVariant **entries, gsize n)
{
  return g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE("a{sv}"), entries, n));
}

/* Asserts that the workload is refused with INVALID_ARGUMENT by both the
 * check and the writer, with every one of the NULL-terminated @needles in
 * a printable-ASCII message. */
static void
assert_refused(const char *cmd, const char *const *args, GVariant *env, GVariant *files, ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  const char *needle;
  va_list ap;

  assert_false(vfd_guest_payload_check(cmd, args, env, files, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  for (const char *c = error->message; *c; c++)
    if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
      fail_msg("message not printable ASCII: %s", error->message);
  va_start(ap, files);
  while ((needle = va_arg(ap, const char *)))
    if (!strstr(error->message, needle))
      fail_msg("message '%s' lacks '%s'", error->message, needle);
  va_end(ap);
  g_clear_error(&error);
  bytes = vfd_guest_payload_build(cmd, args, env, files, &error);
  assert_null(bytes);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
}

/* Writes the payload, parses it with guest-init's parser and asserts that
 * every string and file comes back exactly. Returns the payload's size. */
static gsize
round_trip(const char *cmd, const char *const *args, GVariant *env, GVariant *files)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = vfd_guest_payload_build(cmd, args, env, files, &error);
  g_autofree char *buf = NULL;
  gsize len, n_args = args ? g_strv_length((char **) args) : 0;
  char err[256];

  if (!bytes)
    fail_msg("refused: %s", error ? error->message : "(nothing to send)");
  assert_true(vfd_guest_payload_check(cmd, args, env, files, NULL));
  {
    const void *data = g_bytes_get_data(bytes, &len);
    buf = g_memdup2(data, len);
  }
  assert_true(len <= VFIOD_PAYLOAD_MAX);
  if (!gi_payload_parse(buf, len, &parsed, err, sizeof err))
    fail_msg("guest-init refuses the payload: %s", err);
  if (cmd)
    assert_string_equal(parsed.cmd, cmd);
  else
    assert_null(parsed.cmd);
  assert_int_equal(parsed.n_args, n_args);
  for (gsize i = 0; i < n_args; i++)
    assert_string_equal(parsed.args[i], args[i]);
  assert_int_equal(parsed.n_env, env ? g_variant_n_children(env) : 0);
  if (env) {
    GVariantIter it;
    const char *k, *v;
    gsize i = 0;

    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v)) {
      g_autofree char *want = g_strdup_printf("%s=%s", k, v);
      assert_string_equal(parsed.env[i++], want);
    }
  }
  assert_int_equal(parsed.n_files, files ? g_variant_n_children(files) : 0);
  for (gsize i = 0; files && i < parsed.n_files; i++) {
    g_autoptr(GVariant) e = g_variant_get_child_value(files, i);
    g_autoptr(GVariant) data = NULL;
    const char *path;
    guint32 mode = VFIOD_PAYLOAD_DEFAULT_MODE;
    gsize dlen;
    const void *d;

    assert_true(g_variant_lookup(e, "path", "&s", &path));
    g_variant_lookup(e, "mode", "u", &mode);
    data = g_variant_lookup_value(e, "contents", G_VARIANT_TYPE_BYTESTRING);
    d = g_variant_get_fixed_array(data, &dlen, 1);
    assert_string_equal(parsed.files[i].path, path);
    assert_int_equal(parsed.files[i].mode, mode);
    assert_int_equal(parsed.files[i].len, dlen);
    assert_memory_equal(parsed.files[i].data, d, dlen);
  }
  return len;
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
  VFIOD_KEY_ROOT "=" VFIOD_DISK_BY_SERIAL VFIOD_DISK_SERIAL_ROOT,
  VFIOD_KEY_DRIVER "=" VFD_QEMU_DRIVER_DEV, /* the driver layer of a GPU sandbox ([qemu] driver_layer) */
  VFIOD_KEY_PAYLOAD "=8388608",             /* the largest payload (VFIOD_PAYLOAD_MAX) */
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

/* ---- tests ---- */

/* vfiod's own words and vfiod.payload= fit the reserved part of the line
 * in their longest form, and guest-init takes that line. */
static void
test_cmdline_budget(void **state)
{
  g_autofree char *own = build_append(own_longest, NULL);

  printf("# longest own part: %zu bytes (reserved: %d): %s\n", strlen(own), VFIOD_CMDLINE_RESERVED, own);
  assert_true(strlen(own) <= VFIOD_CMDLINE_RESERVED);
  assert_non_null(strstr(own, " vfiod.payload=8388608"));
  gi_cmdline_parse(own, &cl);
  assert_true(gi_cmdline_check(&cl, NULL, 0));
  assert_int_equal(cl.payload_size, VFIOD_PAYLOAD_MAX);
  /* beyond the format's bound, or 0: refused */
  gi_cmdline_parse("vfiod.payload=8388609", &cl);
  assert_false(gi_cmdline_check(&cl, NULL, 0));
  gi_cmdline_parse("vfiod.payload=0", &cl);
  assert_false(gi_cmdline_check(&cl, NULL, 0));
}

/* What the kernel command line refused (finding 4's attacks) now travels
 * intact, and more of it than 16 entries. */
static void
test_round_trip_hostile_text(void **state)
{
  static const char *const args[] = {
    "a\tb", "line1\nline2", "\"quoted\" \\back", "nb\xc2\xa0sp", "rdinit=/evil", "vfiod.root=/dev/evil",
    "--", "", "end", "arg 3", NULL,
  };
  g_autoptr(GVariant) env = env_new((const char *const[]){ "GREETING", "hello world", "MULTI", "a\nb\nend\n",
                                                           "QUOTE", "\"x\"", "EMPTY", "", NULL });
  g_autoptr(GPtrArray) many = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GVariantBuilder) eb = g_variant_builder_new(G_VARIANT_TYPE("a{ss}"));
  g_autoptr(GVariant) big_env = NULL;

  round_trip("/bin/sh", args, env, NULL);
  /* 200 arguments and 200 environment entries */
  for (int i = 0; i < 200; i++) {
    g_autofree char *k = g_strdup_printf("VAR_%d", i), *v = g_strdup_printf("value %d", i);
    g_ptr_array_add(many, g_strdup_printf("arg-%d", i));
    g_variant_builder_add(eb, "{ss}", k, v);
  }
  g_ptr_array_add(many, NULL);
  big_env = g_variant_ref_sink(g_variant_builder_end(eb));
  round_trip("/usr/bin/env", (const char *const *) many->pdata, big_env, NULL);
  /* a cmd with blanks and quotes in its name */
  round_trip("/opt/my app/\"run\"", NULL, NULL, NULL);
}

/* Files: binary contents (NUL, '\n', "end\n"), empty, modes, the default
 * 0600; files without a cmd. */
static void
test_round_trip_files(void **state)
{
  static const unsigned char bin[] = { 0, 1, '\n', 'e', 'n', 'd', '\n', 0xff, 0 };
  g_autofree char *big = g_malloc(512 * 1024);
  GVariant *entries[4];
  g_autoptr(GVariant) files = NULL;
  gsize len;

  memset(big, 'x', 512 * 1024);
  entries[0] = file_new("/run/secrets/token", "s3cr3t\n", 7, G_MAXUINT32);
  entries[1] = file_new("/etc/app/spec.bin", bin, sizeof bin, 0644);
  entries[2] = file_new("/tmp/empty", "", 0, 0);
  entries[3] = file_new("/srv/big file", big, 512 * 1024, 0755);
  files = files_new(entries, 4);
  len = round_trip("/bin/true", NULL, NULL, files);
  assert_true(len > 512 * 1024);
  assert_int_equal(parsed.files[0].mode, 0600);
  /* files alone */
  round_trip(NULL, NULL, NULL, files);
}

/* Nothing to send: no payload, no error. */
static void
test_nothing(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) none = files_new(NULL, 0);

  assert_null(vfd_guest_payload_build(NULL, NULL, NULL, NULL, &error));
  assert_null(error);
  assert_null(vfd_guest_payload_build(NULL, NULL, NULL, none, &error));
  assert_null(error);
}

static void
test_refused(void **state)
{
  static const char *const one[] = { "x", NULL };
  g_autoptr(GVariant) env = env_new((const char *const[]){ "A", "1", NULL });
  g_autofree char *huge = g_malloc(VFIOD_PAYLOAD_MAX_STRING + 2);
  g_autofree char *long_path = g_malloc(VFIOD_PAYLOAD_MAX_PATH + 2);
  g_autoptr(GPtrArray) many = g_ptr_array_new();

  memset(huge, 'a', VFIOD_PAYLOAD_MAX_STRING + 1);
  huge[VFIOD_PAYLOAD_MAX_STRING + 1] = '\0';
  long_path[0] = '/';
  memset(long_path + 1, 'p', VFIOD_PAYLOAD_MAX_PATH);
  long_path[VFIOD_PAYLOAD_MAX_PATH + 1] = '\0';

  assert_refused("bin/sh", NULL, NULL, NULL, "cmd must be an absolute path", NULL);
  assert_refused("/bin/../sh", NULL, NULL, NULL, "cmd", "'..'", NULL);
  assert_refused("/bin/", NULL, NULL, NULL, "cmd", "trailing", NULL);
  assert_refused("/bin/s\th", NULL, NULL, NULL, "cmd", "control", NULL);
  assert_refused(long_path, NULL, NULL, NULL, "cmd", NULL);
  assert_refused(NULL, one, NULL, NULL, "args and env need a cmd", NULL);
  assert_refused(NULL, NULL, env, NULL, "args and env need a cmd", NULL);
  assert_refused("/bin/sh", (const char *const[]){ huge, NULL }, NULL, NULL, "args[0]", "at most 131072", NULL);
  {
    g_autoptr(GVariant) e = env_new((const char *const[]){ "1BAD", "x", NULL });
    assert_refused("/bin/sh", NULL, e, NULL, "env: the name \"1BAD\"", NULL);
  }
  {
    g_autoptr(GVariant) e = env_new((const char *const[]){ "A-B", "x", NULL });
    assert_refused("/bin/sh", NULL, e, NULL, "env: the name", NULL);
  }
  {
    g_autoptr(GVariant) e = env_new((const char *const[]){ "", "x", NULL });
    assert_refused("/bin/sh", NULL, e, NULL, "env: the name", NULL);
  }
  {
    g_autoptr(GVariant) e = env_new((const char *const[]){ "A", "1", "A", "2", NULL });
    assert_refused("/bin/sh", NULL, e, NULL, "env: A given more than once", NULL);
  }
  {
    g_autoptr(GVariant) e = env_new((const char *const[]){ "BIG", huge, NULL });
    assert_refused("/bin/sh", NULL, e, NULL, "env BIG", NULL);
  }
  {
    g_autoptr(GVariant) wrong = g_variant_ref_sink(g_variant_new_strv(one, 1));
    assert_refused("/bin/sh", NULL, wrong, NULL, "env must be of type a{ss}", NULL);
    assert_refused("/bin/sh", NULL, NULL, wrong, "files must be of type aa{sv}", NULL);
  }
  /* cmd, args and env over exec's bound together: 9 strings of 128 KiB */
  huge[VFIOD_PAYLOAD_MAX_STRING] = '\0';
  for (int i = 0; i < 9; i++)
    g_ptr_array_add(many, huge);
  g_ptr_array_add(many, NULL);
  assert_refused("/bin/sh", (const char *const *) many->pdata, NULL, NULL, "at most 1048576", NULL);
  /* files */
  {
    GVariant *e[] = { file_new("etc/x", "", 0, G_MAXUINT32) };
    g_autoptr(GVariant) f = files_new(e, 1);
    assert_refused(NULL, NULL, NULL, f, "files[0] path", NULL);
  }
  {
    GVariant *e[] = { file_new("/etc/../shadow", "", 0, G_MAXUINT32) };
    g_autoptr(GVariant) f = files_new(e, 1);
    assert_refused(NULL, NULL, NULL, f, "files[0] path", NULL);
  }
  {
    GVariant *e[] = { file_new("/usr/bin/su", "", 0, 04755) };
    g_autoptr(GVariant) f = files_new(e, 1);
    assert_refused(NULL, NULL, NULL, f, "files[0] (/usr/bin/su): mode 4755", "no set-id", NULL);
  }
  {
    GVariant *e[] = { file_new("/a", "1", 1, G_MAXUINT32), file_new("/b", "2", 1, G_MAXUINT32),
                      file_new("/a", "3", 1, G_MAXUINT32) };
    g_autoptr(GVariant) f = files_new(e, 3);
    assert_refused(NULL, NULL, NULL, f, "files[2]: /a given more than once", NULL);
  }
  {
    GVariantDict d;
    GVariant *e[1];
    g_autoptr(GVariant) f = NULL;

    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert(&d, "path", "s", "/a");
    g_variant_dict_insert(&d, "contents", "s", "text, not bytes");
    e[0] = g_variant_dict_end(&d);
    f = files_new(e, 1);
    assert_refused(NULL, NULL, NULL, f, "files[0]: unknown key 'contents' or wrong type s", NULL);
  }
  {
    GVariantDict d;
    GVariant *e[1];
    g_autoptr(GVariant) f = NULL;

    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert(&d, "path", "s", "/a");
    e[0] = g_variant_dict_end(&d);
    f = files_new(e, 1);
    assert_refused(NULL, NULL, NULL, f, "files[0]: needs a path (s) and contents (ay)", NULL);
  }
}

/* guest-init refuses every prefix of a payload (a cut), data after the
 * end, and altered headers; it never reads outside the buffer (the fuzzer
 * and ASan/valgrind runs check that too). */
static void
test_guest_refuses_altered(void **state)
{
  static const unsigned char bin[] = { 'x', '\n', 'y', 0xff }; /* no NUL: the headers are found with strstr() */
  static const char *const args[] = { "-c", "echo hi", NULL };
  g_autoptr(GVariant) env = env_new((const char *const[]){ "A", "1", NULL });
  GVariant *e[] = { file_new("/run/x", bin, sizeof bin, 0640) };
  g_autoptr(GVariant) files = files_new(e, 1);
  g_autoptr(GBytes) bytes = vfd_guest_payload_build("/bin/sh", args, env, files, NULL);
  gsize len;
  const char *data = g_bytes_get_data(bytes, &len);
  static const struct {
    const char *from, *to; /* the first @from replaced by @to */
    const char *err;
  } alter[] = {
    { "VFIOD-PAYLOAD 1", "VFIOD-PAYLOAD 2", "not a version 1 payload" },
    { "cmd 7", "cmd 07", "a bad or too large length" },
    { "cmd 7", "cmd 8", "cut short" },
    { "arg 2", "arg -2", "a bad or too large length" },
    { "env 3\nA=1", "env 3\nA-1", "not NAME=VALUE" },
    { "file 640", "file 4640", "a bad mode" },
    { "file 640", "file 648", "a bad mode" },
    { "end\n", "END\n", "unknown or cut short" },
  };
  char err[256];

  assert_non_null(bytes);
  for (gsize cut = 0; cut < len; cut++) {
    g_autofree char *buf = g_memdup2(data, len);
    if (gi_payload_parse(buf, cut, &parsed, err, sizeof err))
      fail_msg("a payload cut at %zu of %zu bytes was taken", cut, len);
  }
  {
    g_autofree char *buf = g_malloc(len + 1);
    memcpy(buf, data, len);
    buf[len] = '\n';
    assert_false(gi_payload_parse(buf, len + 1, &parsed, err, sizeof err));
    assert_non_null(strstr(err, "after the end record"));
  }
  for (gsize i = 0; i < G_N_ELEMENTS(alter); i++) {
    g_autofree char *text = g_strndup(data, len);
    g_autoptr(GString) s = g_string_new_len(data, (gssize) len);
    const char *at = strstr(text, alter[i].from);

    assert_non_null(at);
    g_string_erase(s, at - text, (gssize) strlen(alter[i].from));
    g_string_insert_len(s, at - text, alter[i].to, (gssize) strlen(alter[i].to));
    if (gi_payload_parse(s->str, s->len, &parsed, err, sizeof err))
      fail_msg("altered payload (%s -> %s) was taken", alter[i].from, alter[i].to);
    if (!strstr(err, alter[i].err))
      fail_msg("altered payload (%s -> %s): '%s' lacks '%s'", alter[i].from, alter[i].to, err, alter[i].err);
  }
  /* a NUL inside an argument */
  {
    g_autoptr(GString) s = g_string_new_len(data, (gssize) len);
    char *at = strstr(s->str, "echo hi");
    at[4] = '\0';
    assert_false(gi_payload_parse(s->str, s->len, &parsed, err, sizeof err));
    assert_non_null(strstr(err, "holds a NUL"));
  }
}

/* The memfd QEMU reads: the payload's bytes, sealed against change. */
static void
test_memfd_sealed(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = vfd_guest_payload_build("/bin/true", NULL, NULL, NULL, &error);
  gsize len;
  const char *data = g_bytes_get_data(bytes, &len);
  char back[256];
  int fd = vfd_guest_payload_memfd(bytes, &error);

  assert_true(fd >= 0);
  assert_int_equal(read(fd, back, sizeof back), (ssize_t) len);
  assert_memory_equal(back, data, len);
  assert_int_equal(fcntl(fd, F_GET_SEALS), F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  assert_int_equal(pwrite(fd, "X", 1, 0), -1);
  assert_int_equal(errno, EPERM);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  close(fd);
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
    cmocka_unit_test(test_cmdline_budget),
    cmocka_unit_test(test_round_trip_hostile_text),
    cmocka_unit_test(test_round_trip_files),
    cmocka_unit_test(test_nothing),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_guest_refuses_altered),
    cmocka_unit_test(test_memfd_sealed),
    cmocka_unit_test(test_config_dns),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
