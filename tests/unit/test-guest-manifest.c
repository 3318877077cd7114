/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's parser of the staged manifest (doc/guest-manifest.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "manifest.h"

static GiManifest m;         /* large: keep it off the stack */
static char text[65536];
static char err[1024];

/* Parses a copy of @s (the parser cuts it up). */
static int
parse(const char *s)
{
  assert_true(strlen(s) < sizeof(text));
  strcpy(text, s);
  err[0] = 'x';
  return gi_manifest_parse(text, &m, err, sizeof(err));
}

/* Asserts that @s is refused with a message containing @what. */
static void
assert_refused(const char *s, const char *what)
{
  int r = parse(s);

  if (r != -EINVAL || !strstr(err, what))
    fail_msg("manifest %s\nexpected -EINVAL with \"%s\", got %d \"%s\"", s, what, r, err);
}

#define HEAD "vfiod-manifest 1\nkernel 6.1.0-56-amd64\n"

static void
test_good(void **state)
{
  const char *s =
    "# written by vfioctl\n"
    "vfiod-manifest 1\n"
    "kernel 6.1.0-56-amd64\n"
    "\n"
    "nvidia-driver 570.195.03\n"
    "stamp 3f2ae9\n"
    "module /lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko\n"
    "module /lib/modules/6.1.0-56-amd64/updates/nvidia.ko NVreg_DeviceFileMode=0660 NVreg_EnableGpuFirmware=1\n"
    "# a comment between entries\n"
    "module /lib/modules/6.1.0-56-amd64/updates/nvidia-uvm.ko uvm_perf_prefetch_enable=0\n"
    "firmware /lib/firmware";  /* no final newline */

  assert_int_equal(parse(s), 0);
  assert_string_equal(err, "");
  assert_int_equal(m.version, 1);
  assert_string_equal(m.kernel, "6.1.0-56-amd64");
  assert_string_equal(m.nvidia_driver, "570.195.03");
  assert_string_equal(m.stamp, "3f2ae9");
  assert_string_equal(m.firmware, "/lib/firmware");
  assert_int_equal(m.n_modules, 3);
  assert_string_equal(m.modules[0].path,
                      "/lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko");
  assert_string_equal(m.modules[0].params, "");
  assert_int_equal(m.modules[0].line, 7);
  assert_string_equal(m.modules[1].path, "/lib/modules/6.1.0-56-amd64/updates/nvidia.ko");
  /* Parameters go to finit_module() joined by single spaces. */
  assert_string_equal(m.modules[1].params, "NVreg_DeviceFileMode=0660 NVreg_EnableGpuFirmware=1");
  assert_string_equal(m.modules[2].params, "uvm_perf_prefetch_enable=0");
  assert_int_equal(m.modules[2].line, 10);
  assert_int_equal(m.n_unknown, 0);
}

static void
test_minimal(void **state)
{
  assert_int_equal(parse(HEAD), 0);
  assert_int_equal(m.n_modules, 0);
  assert_null(m.nvidia_driver);
  assert_null(m.stamp);
  assert_null(m.firmware);

  /* "-": no NVIDIA driver staged. */
  assert_int_equal(parse(HEAD "nvidia-driver -\n"), 0);
  assert_null(m.nvidia_driver);
}

static void
test_version(void **state)
{
  assert_refused("vfiod-manifest 2\nkernel k\n", "manifest version 2 is not supported");
  assert_refused("vfiod-manifest 0\nkernel k\n", "manifest version 0 is not supported");
  assert_refused("vfiod-manifest 99999999999999999999999\nkernel k\n", "bad manifest version");
  assert_refused("vfiod-manifest one\nkernel k\n", "bad manifest version");
  assert_refused("vfiod-manifest -1\nkernel k\n", "bad manifest version");
  assert_refused("vfiod-manifest 1x\nkernel k\n", "bad manifest version");
  assert_refused("vfiod-manifest\nkernel k\n", "line 1: not a vfiod manifest");
  assert_refused("vfiod-manifest 1 2\nkernel k\n", "line 1: not a vfiod manifest");
  /* The header must come first (comments aside). */
  assert_refused("kernel k\nvfiod-manifest 1\n", "line 1: not a vfiod manifest");
  assert_int_equal(parse("# c\n\nvfiod-manifest 1\nkernel k\n"), 0);
  assert_refused(HEAD "vfiod-manifest 1\n", "line 3: 'vfiod-manifest' given twice");
  assert_refused("", "empty manifest");
  assert_refused("# only a comment\n\n", "empty manifest");
  assert_refused("\x7f" "ELF\x02\x01", "line 1: malformed");
}

static void
test_required_and_once(void **state)
{
  assert_refused("vfiod-manifest 1\n", "no 'kernel' line");
  assert_refused("vfiod-manifest 1\nmodule /a.ko\n", "no 'kernel' line");
  assert_refused(HEAD "kernel 6.1.0-56-amd64\n", "line 3: 'kernel' given twice");
  assert_refused(HEAD "nvidia-driver 1\nnvidia-driver 2\n", "line 4: 'nvidia-driver' given twice");
  assert_refused(HEAD "nvidia-driver -\nnvidia-driver 2\n", "line 4: 'nvidia-driver' given twice");
  assert_refused(HEAD "stamp a\nstamp a\n", "'stamp' given twice");
  assert_refused(HEAD "firmware /a\nfirmware /b\n", "'firmware' given twice");
  assert_refused(HEAD "kernel\n", "line 3: 'kernel' takes one field");
  assert_refused(HEAD "nvidia-driver 1 2\n", "takes one field");
  assert_refused(HEAD "stamp\n", "takes one field");
  assert_refused(HEAD "firmware\n", "'firmware' takes one directory");
  assert_refused(HEAD "firmware /a /b\n", "'firmware' takes one directory");
  assert_refused(HEAD "module\n", "line 3: 'module' needs a path");
}

static void
test_unknown_kinds(void **state)
{
  assert_int_equal(parse(HEAD "module /a.ko\nfuture-thing x y z\nmodule /b.ko\nother\n"), 0);
  assert_int_equal(m.n_modules, 2);
  assert_int_equal(m.n_unknown, 2);
  assert_int_equal(m.unknown_lines[0], 4);
  assert_int_equal(m.unknown_lines[1], 6);
  assert_string_equal(m.modules[1].path, "/b.ko");

  /* Many: all counted, the first few line numbers kept. */
  {
    char s[4096] = HEAD;

    for (int i = 0; i < 20; i++)
      strcat(s, "x-new 1\n");
    assert_int_equal(parse(s), 0);
    assert_int_equal(m.n_unknown, 20);
    assert_int_equal(m.unknown_lines[GI_MANIFEST_MAX_UNKNOWN - 1], 2 + GI_MANIFEST_MAX_UNKNOWN);
  }
}

static void
test_bad_lines(void **state)
{
  /* Fields are separated by single spaces: no empty field anywhere. */
  assert_refused(HEAD "module  /a.ko\n", "line 3: malformed");
  assert_refused(HEAD "module /a.ko \n", "line 3: malformed");
  assert_refused(HEAD " module /a.ko\n", "line 3: malformed");
  assert_refused(HEAD "module /a.ko a=1  b=2\n", "line 3: malformed");
  assert_refused(HEAD "module\t/a.ko\n", "line 3: malformed");
  assert_refused(HEAD "module /a.ko\r\n", "line 3: malformed");   /* CRLF */
  assert_refused(HEAD "module /a\x01.ko\n", "line 3: malformed");
  assert_refused(HEAD "module /\xc3\xa9.ko\n", "line 3: malformed");
  assert_refused(HEAD " \n", "line 3: malformed");                /* blank but not empty */
  assert_refused("vfiod-manifest 1 \nkernel k\n", "line 1: malformed");
  /* Too many parameters on one line. */
  {
    char s[8192] = HEAD "module /a.ko";

    for (int i = 0; i < 100; i++)
      strcat(s, " p=1");
    assert_refused(s, "line 3: malformed");
  }
}

static void
test_paths(void **state)
{
  const char *bad_modules[] = {
    HEAD "module a.ko\n",
    HEAD "module lib/modules/a.ko\n",
    HEAD "module ./a.ko\n",
    HEAD "module /lib/modules/../../etc/a.ko\n",
    HEAD "module /lib/modules/..\n",
    HEAD "module /lib/./a.ko\n",
    HEAD "module /lib//a.ko\n",
    HEAD "module /lib/a.ko/\n",
    HEAD "module /\n",
    HEAD "module ../a.ko\n",
  };
  for (size_t i = 0; i < sizeof(bad_modules) / sizeof(bad_modules[0]); i++)
    assert_refused(bad_modules[i], "is not a clean absolute path");

  /* Only uncompressed modules. */
  assert_refused(HEAD "module /lib/a.ko.xz\n", "is not an uncompressed .ko");
  assert_refused(HEAD "module /lib/a.ko.zst\n", "is not an uncompressed .ko");
  assert_refused(HEAD "module /lib/a\n", "is not an uncompressed .ko");
  assert_refused(HEAD "module /lib/.ko\n", "is not an uncompressed .ko");

  const char *bad_firmware[] = {
    HEAD "firmware lib/firmware\n",
    HEAD "firmware /lib/../firmware\n",
    HEAD "firmware /\n",
    HEAD "firmware /lib/firmware/\n",
    HEAD "firmware /lib/firmware/..\n",
  };
  for (size_t i = 0; i < sizeof(bad_firmware) / sizeof(bad_firmware[0]); i++)
    assert_refused(bad_firmware[i], "is not a clean absolute path");

  /* Dots inside names are fine. */
  assert_int_equal(parse(HEAD "module /lib/..a/b..c/.d.ko\nfirmware /lib/fw.d\n"), 0);
  assert_string_equal(m.modules[0].path, "/lib/..a/b..c/.d.ko");

  /* Length limit. */
  {
    char s[1024] = HEAD "module /";
    size_t base = strlen(s);

    memset(s + base, 'a', GI_MANIFEST_MAX_PATH - 4);
    strcpy(s + base + GI_MANIFEST_MAX_PATH - 4, ".ko\n");  /* path of exactly MAX bytes */
    assert_int_equal(parse(s), 0);
    assert_int_equal(strlen(m.modules[0].path), GI_MANIFEST_MAX_PATH);
    strcpy(s + base + GI_MANIFEST_MAX_PATH - 4, "a.ko\n");
    assert_refused(s, "is not a clean absolute path");
  }
}

static void
test_many_modules(void **state)
{
  static char s[65536];
  char *p;

  p = s + sprintf(s, HEAD);
  for (int i = 0; i < GI_MANIFEST_MAX_MODULES; i++)
    p += sprintf(p, "module /m%d.ko\n", i);
  assert_int_equal(parse(s), 0);
  assert_int_equal(m.n_modules, GI_MANIFEST_MAX_MODULES);
  assert_string_equal(m.modules[GI_MANIFEST_MAX_MODULES - 1].path, "/m255.ko");
  sprintf(p, "module /one-more.ko\n");
  assert_refused(s, "more than 256 modules");
}

static void
test_error_buffer(void **state)
{
  char small[8];

  strcpy(text, "vfiod-manifest 7\n");
  assert_int_equal(gi_manifest_parse(text, &m, small, sizeof(small)), -EINVAL);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  strcpy(text, "vfiod-manifest 7\n");
  assert_int_equal(gi_manifest_parse(text, &m, NULL, 0), -EINVAL);
}

static void
test_garbage(void **state)
{
  static const char alphabet[] = "vfiod-manifest 1\nkernel module firmware /.ko#= \t\x01\xff";

  srand(7);
  for (int round = 0; round < 20000; round++) {
    size_t n = (size_t) rand() % 300;
    int r;

    memcpy(text, HEAD, strlen(HEAD));
    for (size_t i = 0; i < n; i++)
      text[strlen(HEAD) + i] = (round % 3 == 0) ? (char) (rand() % 255 + 1)
                                                : alphabet[(size_t) rand() % (sizeof(alphabet) - 1)];
    text[strlen(HEAD) + n] = '\0';
    r = gi_manifest_parse(text, &m, err, sizeof(err));
    assert_true(r == 0 || r == -EINVAL);
    if (r == 0) {
      assert_non_null(m.kernel);
      for (size_t i = 0; i < m.n_modules; i++) {
        assert_int_equal(m.modules[i].path[0], '/');
        assert_null(strstr(m.modules[i].path, "/../"));
        assert_null(strstr(m.modules[i].path, "//"));
      }
    } else {
      assert_true(err[0] != '\0');
    }
  }
}

static void
test_module_name(void **state)
{
  char buf[64];

  gi_module_name("/lib/modules/6.1.0-56-amd64/updates/nvidia-uvm.ko", buf, sizeof(buf));
  assert_string_equal(buf, "nvidia_uvm");
  gi_module_name("/lib/modules/k/kernel/drivers/net/virtio_net.ko", buf, sizeof(buf));
  assert_string_equal(buf, "virtio_net");
  gi_module_name("e1000e.ko", buf, sizeof(buf));
  assert_string_equal(buf, "e1000e");
  gi_module_name("/x/noext", buf, sizeof(buf));
  assert_string_equal(buf, "noext");
  gi_module_name("/x/abcdefgh.ko", buf, 4);
  assert_string_equal(buf, "abc");
}

/* .modinfo as modpost writes it: NUL-separated key=value strings. */
static void
test_modinfo(void **state)
{
  static const char virtio_net[] = "license=GPL\0description=Virtio network driver\0"
                                   "depends=net_failover,virtio,virtio_ring\0retpoline=Y\0intree=Y\0"
                                   "name=virtio_net\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions ";
  static const char none[] = "license=GPL\0depends=\0name=button\0";
  static const char dash[] = "depends=nvidia-modeset,,drm\0";
  static const char soft[] = "softdep=pre: crc32c\0depends=libcrc32c\0";
  static const char no_depends[] = "license=GPL\0name=x\0";
  char many[64 * 40];
  GiModinfo info;
  size_t n;

  assert_int_equal(gi_modinfo_parse(virtio_net, sizeof(virtio_net) - 1, &info), 0);
  assert_true(info.has_depends);
  assert_false(info.softdep);
  assert_int_equal(info.n_depends, 3);
  assert_string_equal(info.depends[0], "net_failover");
  assert_string_equal(info.depends[1], "virtio");
  assert_string_equal(info.depends[2], "virtio_ring");

  assert_int_equal(gi_modinfo_parse(none, sizeof(none) - 1, &info), 0);
  assert_true(info.has_depends);
  assert_int_equal(info.n_depends, 0);

  /* '-' as the kernel names modules; empty names skipped. */
  assert_int_equal(gi_modinfo_parse(dash, sizeof(dash) - 1, &info), 0);
  assert_int_equal(info.n_depends, 2);
  assert_string_equal(info.depends[0], "nvidia_modeset");
  assert_string_equal(info.depends[1], "drm");

  assert_int_equal(gi_modinfo_parse(soft, sizeof(soft) - 1, &info), 0);
  assert_true(info.softdep);
  assert_int_equal(info.n_depends, 1);

  assert_int_equal(gi_modinfo_parse(no_depends, sizeof(no_depends) - 1, &info), 0);
  assert_false(info.has_depends);

  /* The last string without its NUL is still read, and no further. */
  assert_int_equal(gi_modinfo_parse("depends=a,b", 9, &info), 0);
  assert_int_equal(info.n_depends, 1);
  assert_string_equal(info.depends[0], "a");

  /* Too many, or too long: -E2BIG (the loader then keeps manifest order). */
  n = (size_t) snprintf(many, sizeof(many), "depends=");
  for (int i = 0; i < GI_MODINFO_MAX_DEPENDS + 1; i++)
    n += (size_t) snprintf(many + n, sizeof(many) - n, "%sm%d", i ? "," : "", i);
  assert_int_equal(gi_modinfo_parse(many, n, &info), -E2BIG);
  memset(many, 'x', sizeof(many));
  memcpy(many, "depends=", 8);
  assert_int_equal(gi_modinfo_parse(many, 8 + 64, &info), -E2BIG);
  assert_int_equal(gi_modinfo_parse("", 0, &info), 0);
  assert_false(info.has_depends);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_good),
    cmocka_unit_test(test_minimal),
    cmocka_unit_test(test_version),
    cmocka_unit_test(test_required_and_once),
    cmocka_unit_test(test_unknown_kinds),
    cmocka_unit_test(test_bad_lines),
    cmocka_unit_test(test_paths),
    cmocka_unit_test(test_many_modules),
    cmocka_unit_test(test_error_buffer),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_module_name),
    cmocka_unit_test(test_modinfo),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
