/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's GPU readiness, the pure parts (guest-init/gpu.c and the
 * report lines of report.c) and the vfiod.driver= key: the CUDA probe's line,
 * /dev/kmsg records, PCI addresses, the verdict per GPU, the driver layer's
 * env file, the workload's environment with the layer in it. No GPU, no
 * guest: the inputs are the texts cuda-probe, the kernel and
 * build-driver-layer.sh produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdline.h"
#include "disk.h"
#include "gpu.h"
#include "report.h"

/* ---- vfiod.driver= ---- */

static GiCmdline cl;  /* large */

static const GiCmdlineEntry *
entry(const char *key)
{
  for (size_t i = 0; i < cl.n_entries; i++)
    if (strcmp(cl.entries[i].key, key) == 0)
      return &cl.entries[i];
  return NULL;
}

static void
test_cmdline_driver(void **state)
{
  char err[256];

  gi_cmdline_parse("console=ttyS0 vfiod.root=/dev/vda vfiod.driver=/dev/vdb quiet", &cl);
  assert_true(gi_cmdline_check(&cl, err, sizeof(err)));
  assert_string_equal(cl.driver, "/dev/vdb");
  assert_string_equal(cl.root, "/dev/vda");
  assert_int_equal(entry("vfiod.driver")->id, GI_CMDLINE_KEY_DRIVER);
  assert_int_equal(entry("vfiod.driver")->status, GI_CMDLINE_OK);

  /* absent: "" (no layer) */
  gi_cmdline_parse("vfiod.root=/dev/vda", &cl);
  assert_string_equal(cl.driver, "");

  /* nested device names are fine; quoting the whole word is the kernel's */
  gi_cmdline_parse("vfiod.driver=/dev/disk/by-id/virtio-layer", &cl);
  assert_string_equal(cl.driver, "/dev/disk/by-id/virtio-layer");
  gi_cmdline_parse("\"vfiod.driver=/dev/vdc\"", &cl);
  assert_string_equal(cl.driver, "/dev/vdc");
}

static void
test_cmdline_driver_refused(void **state)
{
  static const char *const bad[] = {
    "vfiod.driver=", "vfiod.driver=/dev/", "vfiod.driver=/dev", "vfiod.driver=vdb", "vfiod.driver=/tmp/layer",
    "vfiod.driver=/dev/../etc/shadow", "vfiod.driver=/dev/./vdb", "vfiod.driver=/dev//vdb", "vfiod.driver=/dev/vdb/",
    "vfiod.driver=/devx/vdb", "vfiod.driver=/dev/vdb/..", "\"vfiod.driver=/dev/v db\"", "vfiod.driver=dev/vdb",
  };
  char err[256], long_ok[300], long_bad[300];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    gi_cmdline_parse(bad[i], &cl);
    assert_non_null(entry("vfiod.driver"));
    if (entry("vfiod.driver")->status != GI_CMDLINE_BAD_VALUE)
      fail_msg("%s: status %d, want BAD_VALUE", bad[i], entry("vfiod.driver")->status);
    assert_string_equal(cl.driver, "");
    assert_false(gi_cmdline_check(&cl, err, sizeof(err)));
    assert_string_equal(err, "vfiod.driver: value not accepted");
  }

  /* a byte outside the allow-list: refused before the value is looked at */
  gi_cmdline_parse("vfiod.driver=/dev/vd\\b", &cl);
  assert_int_equal(entry("vfiod.driver")->status, GI_CMDLINE_BAD_CHAR);
  assert_string_equal(cl.driver, "");

  /* VFIOD_CMDLINE_MAX_VALUE bytes are fine, one more is too long */
  snprintf(long_ok, sizeof(long_ok), "vfiod.driver=/dev/%0*d", VFIOD_CMDLINE_MAX_VALUE - 5, 0);
  gi_cmdline_parse(long_ok, &cl);
  assert_int_equal(entry("vfiod.driver")->status, GI_CMDLINE_OK);
  assert_int_equal(strlen(cl.driver), VFIOD_CMDLINE_MAX_VALUE);
  snprintf(long_bad, sizeof(long_bad), "vfiod.driver=/dev/%0*d", VFIOD_CMDLINE_MAX_VALUE - 4, 0);
  gi_cmdline_parse(long_bad, &cl);
  assert_int_equal(entry("vfiod.driver")->status, GI_CMDLINE_TOO_LONG);
  assert_string_equal(cl.driver, "");

  /* given twice: refused, the first one stays (for the report), never an override */
  gi_cmdline_parse("vfiod.driver=/dev/vdb vfiod.driver=/dev/vdc", &cl);
  assert_int_equal(cl.entries[1].status, GI_CMDLINE_DUPLICATE);
  assert_string_equal(cl.driver, "/dev/vdb");
  assert_false(gi_cmdline_check(&cl, err, sizeof(err)));
  assert_string_equal(err, "vfiod.driver: given more than once");
}

static void
test_cmdline_driver_protocol(void **state)
{
  assert_string_equal(VFIOD_KEY_DRIVER, "vfiod.driver");
  assert_true(vfiod_cmdline_dev_valid("/dev/vdb"));
  assert_true(vfiod_cmdline_dev_valid("/dev/a"));
  assert_false(vfiod_cmdline_dev_valid("/dev/"));
  assert_false(vfiod_cmdline_dev_valid("/dev"));
  assert_false(vfiod_cmdline_dev_valid(""));
  assert_false(vfiod_cmdline_dev_valid("/dev/a b"));
  assert_false(vfiod_cmdline_dev_valid("/dev/a\"b"));
  /* disks by virtio-blk serial (what vfiod sends) or by path */
  assert_true(vfiod_cmdline_disk_valid("virtio:vfiod-driver"));
  assert_true(vfiod_cmdline_disk_valid("virtio:A.b_9-z"));
  assert_true(vfiod_cmdline_disk_valid("virtio:12345678901234567890")); /* 20 bytes */
  assert_false(vfiod_cmdline_disk_valid("virtio:123456789012345678901"));
  assert_false(vfiod_cmdline_disk_valid("virtio:"));
  assert_false(vfiod_cmdline_disk_valid("virtio:a/b"));
  assert_false(vfiod_cmdline_disk_valid("virtio:a b"));
  assert_false(vfiod_cmdline_disk_valid("virtiox:a"));
  assert_false(vfiod_cmdline_disk_valid("serial:a"));
  assert_true(vfiod_cmdline_disk_valid("/dev/vdb"));
  assert_false(vfiod_cmdline_disk_valid("/dev/../vdb"));
  assert_false(vfiod_cmdline_disk_valid("vdb"));
  /* Every key once, vfiod.arg and vfiod.env as often as allowed: still
   * within what guest-init keeps (15 keys that count once now). */
  assert_true(15 + VFIOD_CMDLINE_MAX_ARGS + VFIOD_CMDLINE_MAX_ENV <= VFIOD_CMDLINE_MAX_ENTRIES);
}

/* gi_disk_resolve() over a fake /sys/block: the disk is found by its
 * serial whatever vdX it got (the order vfiod attached them is not the
 * order the kernel named them). */
static void
write_serial(const char *sys, const char *name, const char *serial)
{
  g_autofree char *dir = g_build_filename(sys, name, NULL);
  g_autofree char *file = g_build_filename(dir, "serial", NULL);

  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  if (serial)
    assert_true(g_file_set_contents(file, serial, -1, NULL));
}

static void
test_disk_resolve(void **state)
{
  g_autofree char *sys = g_dir_make_tmp("vfiod-sysblock-XXXXXX", NULL);
  char dev[64];

  assert_non_null(sys);
  /* not there yet: the caller waits */
  assert_int_equal(gi_disk_resolve("virtio:vfiod-root", sys, dev, sizeof(dev)), -ENOENT);
  write_serial(sys, "vda", "vfiod-driver");  /* the layer probed first */
  write_serial(sys, "vdb", "vfiod-root\n"); /* one newline is ignored */
  write_serial(sys, "sda", NULL);            /* no serial attribute */
  write_serial(sys, "vdc", "vfiod-root-2");  /* a longer serial is another */
  assert_int_equal(gi_disk_resolve("virtio:vfiod-root", sys, dev, sizeof(dev)), 0);
  assert_string_equal(dev, "/dev/vdb");
  assert_int_equal(gi_disk_resolve("virtio:vfiod-driver", sys, dev, sizeof(dev)), 0);
  assert_string_equal(dev, "/dev/vda");
  assert_int_equal(gi_disk_resolve("virtio:vfiod-root-2", sys, dev, sizeof(dev)), 0);
  assert_string_equal(dev, "/dev/vdc");
  assert_int_equal(gi_disk_resolve("virtio:vfiod-data", sys, dev, sizeof(dev)), -ENOENT);
  /* a path is itself, without looking */
  assert_int_equal(gi_disk_resolve("/dev/vdz", "/nonexistent", dev, sizeof(dev)), 0);
  assert_string_equal(dev, "/dev/vdz");
  /* bad values and small buffers */
  assert_int_equal(gi_disk_resolve("virtio:a/b", sys, dev, sizeof(dev)), -EINVAL);
  assert_int_equal(gi_disk_resolve("vda", sys, dev, sizeof(dev)), -EINVAL);
  assert_int_equal(gi_disk_resolve("virtio:vfiod-root", sys, dev, 8), -ENAMETOOLONG);
  assert_int_equal(gi_disk_resolve("virtio:vfiod-root", "/nonexistent/sys/block", dev, sizeof(dev)), -ENOENT);
  /* the command line takes both forms for vfiod.root= and vfiod.driver= */
  {
    static GiCmdline dcl;
    char err[256];

    gi_cmdline_parse("vfiod.root=virtio:vfiod-root vfiod.driver=virtio:vfiod-driver vfiod.cmd=/bin/true", &dcl);
    assert_true(gi_cmdline_check(&dcl, err, sizeof(err)));
    assert_string_equal(dcl.root, "virtio:vfiod-root");
    assert_string_equal(dcl.driver, "virtio:vfiod-driver");
    gi_cmdline_parse("vfiod.root=virtio:bad/serial vfiod.cmd=/bin/true", &dcl);
    assert_string_equal(dcl.root, "");
  }
  g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", sys);
  assert_int_equal(system(cmd), 0);
}

/* ---- PCI addresses ---- */

static void
test_bdf(void **state)
{
  static const struct {
    const char *in, *out;
  } ok[] = {
    { "0000:01:00.0", "0000:01:00.0" }, { "0000:0A:1F.7", "0000:0a:1f.7" }, { "00000000:65:00.0", "0000:65:00.0" },
    { "01:00.0", "0000:01:00.0" },      { "1:2.3", "0000:01:02.3" },        { "ffff:ff:1f.7", "ffff:ff:1f.7" },
  };
  static const char *const bad[] = {
    "", "0000:01:20.0", "0000:01:00.8", "0000:100:00.0", "10000:01:00.0", "1:2:3:4.0", "0000:01:00.0x",
    "0000:01:00", "0000:01:00.", "0000::00.0", " 0000:01:00.0", "0000:01:00.0\n", "g000:01:00.0", "123456789:01:00.0",
  };
  char out[GI_GPU_BDF_SIZE];

  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    assert_int_equal(gi_bdf_normalize(ok[i].in, out), 0);
    assert_string_equal(out, ok[i].out);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (gi_bdf_normalize(bad[i], out) != -EINVAL)
      fail_msg("\"%s\" accepted as %s", bad[i], out);
  assert_int_equal(gi_bdf_normalize(NULL, out), -EINVAL);

  assert_true(gi_pci_is_nvidia_gpu(0x10de, 0x030000));   /* VGA */
  assert_true(gi_pci_is_nvidia_gpu(0x10de, 0x030200));   /* 3D controller (H100, A100) */
  assert_false(gi_pci_is_nvidia_gpu(0x10de, 0x030100));  /* XGA: not in nvidia.ko's table */
  assert_false(gi_pci_is_nvidia_gpu(0x10de, 0x040300));  /* HD audio function */
  assert_false(gi_pci_is_nvidia_gpu(0x10de, 0x068000));  /* NVSwitch */
  assert_false(gi_pci_is_nvidia_gpu(0x1234, 0x030000));  /* QEMU's std VGA as itself */
}

/* ---- the probe's line ---- */

static GiCudaProbe probe;  /* large */

static void
test_probe_ok(void **state)
{
  char err[128];

  /* cuda-probe's line for two GPUs, libcuda's own chatter before it */
  assert_int_equal(gi_cuda_probe_parse(
                     "some libcuda message\n"
                     "{\"v\":1,\"call\":null,\"code\":0,\"error\":null,\"version\":12040,\"devices\":["
                     "{\"ordinal\":0,\"bdf\":\"0000:65:00.0\",\"name\":\"NVIDIA H100 80GB HBM3\",\"call\":null,"
                     "\"code\":0,\"error\":null},"
                     "{\"ordinal\":1,\"bdf\":\"0000:CA:00.0\",\"name\":\"NVIDIA H100 80GB HBM3\",\"call\":null,"
                     "\"code\":0,\"error\":null}]}\n",
                     &probe, err, sizeof(err)),
                   0);
  assert_string_equal(probe.call, "");
  assert_int_equal(probe.version, 12040);
  assert_int_equal(probe.n_devices, 2);
  assert_int_equal(probe.devices[1].ordinal, 1);
  assert_string_equal(probe.devices[0].bdf, "0000:65:00.0");
  assert_string_equal(probe.devices[1].bdf, "0000:ca:00.0");  /* normalised */
  assert_string_equal(probe.devices[1].name, "NVIDIA H100 80GB HBM3");
  assert_string_equal(probe.devices[1].call, "");

  /* a top-level failure: dlopen's text, with escapes */
  assert_int_equal(gi_cuda_probe_parse("{\"v\":1,\"call\":\"dlopen\",\"code\":0,\"error\":\"libcuda.so.1: cannot open "
                                       "\\\"x\\\" \\\\ \\u00e9\\n\\u0041\\/\",\"version\":0,\"devices\":[]}",
                                       &probe, err, sizeof(err)),
                   0);
  assert_string_equal(probe.call, "dlopen");
  assert_string_equal(probe.error, "libcuda.so.1: cannot open \"x\" \\ ??A/");
  assert_int_equal(probe.n_devices, 0);

  /* a device that failed; unknown keys (any value) are skipped; blanks anywhere */
  assert_int_equal(gi_cuda_probe_parse(" { \"v\" : 1 , \"new\" : {\"a\":[1,2.5e3,-0.5,true,false,null,\"s\"]},"
                                       " \"devices\" : [ { \"bdf\":\"0000:01:00.0\", \"call\":\"cuCtxCreate\","
                                       " \"code\":802, \"error\":\"CUDA_ERROR_SYSTEM_NOT_READY\", \"x\":[] } ] }\r\n",
                                       &probe, err, sizeof(err)),
                   0);
  assert_int_equal(probe.n_devices, 1);
  assert_int_equal(probe.devices[0].ordinal, 0);  /* its place when not given */
  assert_string_equal(probe.devices[0].call, "cuCtxCreate");
  assert_int_equal(probe.devices[0].code, 802);
  assert_string_equal(probe.devices[0].error, "CUDA_ERROR_SYSTEM_NOT_READY");
  assert_string_equal(probe.devices[0].name, "");

  /* a long name is cut, raw bytes >= 0x80 become '?' */
  {
    char line[1024];

    snprintf(line, sizeof(line), "{\"v\":1,\"devices\":[{\"bdf\":null,\"name\":\"%0300d\xc3\xa9\"}]}", 7);
    assert_int_equal(gi_cuda_probe_parse(line, &probe, err, sizeof(err)), 0);
    assert_int_equal(strlen(probe.devices[0].name), GI_GPU_NAME_SIZE - 1);
    assert_string_equal(probe.devices[0].bdf, "");
    assert_int_equal(gi_cuda_probe_parse("{\"v\":1,\"error\":\"a\xc3\xa9\"}", &probe, err, sizeof(err)), 0);
    assert_string_equal(probe.error, "a??");
  }
}

static void
test_probe_refused(void **state)
{
  static const struct {
    const char *text, *why;
  } bad[] = {
    { "", "no line starting with '{'" },
    { "not json\n", "no line starting with '{'" },
    { "{\"code\":0}", "no \"v\"" },
    { "{\"v\":2}", "probe format 2, this guest-init reads 1" },
    { "{\"v\":1} x", "trailing bytes after the object" },
    { "{\"v\":1}\n{\"v\":1", "expected '}'" },  /* the last '{' line counts */
    { "{\"v\":1,\"error\":\"abc", "unterminated string" },
    { "{\"v\":1,\"error\":\"a\tb\"}", "control byte 0x09 in a string" },
    { "{\"v\":1,\"error\":\"\\x\"}", "bad escape" },
    { "{\"v\":1,\"error\":\"\\u12\"}", "bad \\u escape" },
    { "{\"v\":1,\"code\":\"0\"}", "expected a number" },
    { "{\"v\":1,\"code\":1.5}", "expected an integer" },
    { "{\"v\":01}", "leading zero" },
    { "{\"v\":1,\"code\":1234567890123456789}", "number too long" },
    { "{\"v\":1,\"error\":5}", "expected a string" },
    { "{\"v\":1,\"devices\":{}}", "expected '['" },
    { "{\"v\":1,\"devices\":[{\"bdf\":\"0000:01:00\"}]}", "not a PCI address: \"0000:01:00\"" },
    { "{\"v\":1,\"devices\":[{\"ordinal\":-1}]}", "ordinal out of range" },
    { "{\"v\":1,\"x\":[[[[1]]]]}", "nested too deep" },
    { "{\"v\":1,\"devices\":[{\"x\":[[]]}]}", "nested too deep" },  /* 5 levels */
    { "{\"v\":1,\"x\":tru}", "expected true" },
    { "{\"v\":1,,}", "expected a string" },
    { "{\"v\" 1}", "expected ':'" },
  };
  char err[128];

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(err, 0, sizeof(err));
    if (gi_cuda_probe_parse(bad[i].text, &probe, err, sizeof(err)) != -EINVAL)
      fail_msg("accepted: %s", bad[i].text);
    if (!strstr(err, bad[i].why))
      fail_msg("%s: error \"%s\", want \"%s\"", bad[i].text, err, bad[i].why);
  }
  /* error messages say where */
  assert_int_equal(gi_cuda_probe_parse("{\"v\":1,\"code\":x}", &probe, err, sizeof(err)), -EINVAL);
  assert_string_equal(err, "byte 14: expected a number");
  /* no room for the message: still refused */
  assert_int_equal(gi_cuda_probe_parse("{", &probe, NULL, 0), -EINVAL);

  /* more devices than guest-init checks */
  {
    char line[4096];
    size_t n = (size_t) snprintf(line, sizeof(line), "{\"v\":1,\"devices\":[");

    for (int i = 0; i <= GI_GPU_MAX; i++)
      n += (size_t) snprintf(line + n, sizeof(line) - n, "%s{\"ordinal\":%d}", i ? "," : "", i);
    snprintf(line + n, sizeof(line) - n, "]}");
    assert_int_equal(gi_cuda_probe_parse(line, &probe, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than 16 devices"));
  }
}

/* ---- the kernel log ---- */

static void
test_kmsg(void **state)
{
  static const char rec[] = "4,1234,5678901,-;NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x26:0x56:1474)\n"
                            " SUBSYSTEM=pci\n DEVICE=+pci:0000:01:00.0\n";
  static const char user[] = "11,77,42,-;NVRM: Xid (PCI:0000:00:1f.7): 79, pid=1\n";
  static const char caller[] = "6,9,10,c,caller=T12;nvidia: module license taints kernel.\n";
  static const char *const bad[] = { "", "abc", "6,1;x", "6,1,2", "6,,2,-;x", "6,1,2,-\n;x", "x,1,2,-;m",
                                     "6,1,2x;m", "123456789012345678901,1,2,-;m" };
  GiKmsgRecord r;

  assert_int_equal(gi_kmsg_parse(rec, strlen(rec), &r), 0);
  assert_int_equal(r.level, 4);
  assert_int_equal(r.seq, 1234);
  assert_int_equal(r.usec, 5678901);
  assert_int_equal(r.message_len, strlen("NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x26:0x56:1474)"));
  assert_memory_equal(r.message, "NVRM: GPU", 9);
  assert_true(gi_kmsg_is_nvrm(r.message, r.message_len));

  /* written from user space (facility 1): level 3 */
  assert_int_equal(gi_kmsg_parse(user, strlen(user), &r), 0);
  assert_int_equal(r.level, 3);
  assert_true(gi_kmsg_is_nvrm(r.message, r.message_len));

  /* more prefix fields; not the NVIDIA driver's line */
  assert_int_equal(gi_kmsg_parse(caller, strlen(caller), &r), 0);
  assert_int_equal(r.level, 6);
  assert_false(gi_kmsg_is_nvrm(r.message, r.message_len));

  /* no newline at the end (one read may not have one), not NUL-terminated */
  assert_int_equal(gi_kmsg_parse("6,1,2,-;NVRM: x", 15, &r), 0);
  assert_int_equal(r.message_len, 7);
  assert_int_equal(gi_kmsg_parse("6,1,2,-;NVRM: xyz", 12, &r), 0);  /* only @len bytes count */
  assert_int_equal(r.message_len, 4);
  assert_false(gi_kmsg_is_nvrm(r.message, r.message_len));

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (gi_kmsg_parse(bad[i], strlen(bad[i]), &r) != -EINVAL)
      fail_msg("accepted: %s", bad[i]);
  assert_int_equal(gi_kmsg_parse(NULL, 0, &r), -EINVAL);

  assert_false(gi_kmsg_is_nvrm("NVRM", 4));
  assert_false(gi_kmsg_is_nvrm("nvrm: x", 7));
  assert_true(gi_kmsg_is_nvrm("NVRM:", 5));
}

/* ---- the verdict ---- */

static GiCudaProbe
probe_of(size_t n, const char *const *bdfs)
{
  GiCudaProbe p = { .version = 12040, .n_devices = n };

  for (size_t i = 0; i < n; i++) {
    p.devices[i].ordinal = (int) i;
    snprintf(p.devices[i].bdf, sizeof(p.devices[i].bdf), "%s", bdfs[i]);
    snprintf(p.devices[i].name, sizeof(p.devices[i].name), "GPU %zu", i);
  }
  return p;
}

static void
test_verdict(void **state)
{
  static const char *const req[] = { "0000:01:00.0", "0000:41:00.0" };
  static const char *const found_rev[] = { "0000:41:00.0", "0000:01:00.0" };
  GiGpuResult res[GI_GPU_MAX];
  GiCudaProbe p;
  size_t n = 99;

  /* every GPU passed; results in the requested order, whatever CUDA's */
  p = probe_of(2, found_rev);
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(res[0].bdf, "0000:01:00.0");
  assert_string_equal(res[0].name, "GPU 1");
  assert_true(res[0].ok && res[1].ok);
  assert_string_equal(res[1].name, "GPU 0");

  /* a context that cannot be made on one GPU: that one fails, by name */
  p = probe_of(2, req);
  snprintf(p.devices[1].call, sizeof(p.devices[1].call), "cuCtxCreate");
  p.devices[1].code = 802;
  snprintf(p.devices[1].error, sizeof(p.devices[1].error), "CUDA_ERROR_SYSTEM_NOT_READY");
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 1);
  assert_true(res[0].ok);
  assert_false(res[1].ok);
  assert_string_equal(res[1].call, "cuCtxCreate");
  assert_string_equal(res[1].error, "CUDA_ERROR_SYSTEM_NOT_READY");
  assert_string_equal(res[1].name, "GPU 1");

  /* a GPU the host passed that CUDA does not list: failed, never a false ready */
  p = probe_of(1, req);
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 1);
  assert_true(res[0].ok);
  assert_false(res[1].ok);
  assert_string_equal(res[1].call, "cuDeviceGetCount");
  assert_string_equal(res[1].error, "not among the 1 CUDA devices");

  /* no device at all (cuDeviceGetCount 0) */
  p = probe_of(0, req);
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 2);

  /* cuInit failed: every GPU fails with it */
  p = probe_of(0, req);
  snprintf(p.call, sizeof(p.call), "cuInit");
  snprintf(p.error, sizeof(p.error), "CUDA_ERROR_NO_DEVICE");
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 2);
  assert_int_equal(n, 2);
  assert_string_equal(res[0].call, "cuInit");
  assert_string_equal(res[1].error, "CUDA_ERROR_NO_DEVICE");
  /* ... even when devices are listed (they cannot be trusted then) */
  p = probe_of(2, req);
  snprintf(p.call, sizeof(p.call), "cuDeviceGetCount");
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 2);
  assert_int_equal(n, 2);
  assert_string_equal(res[0].error, "failed");  /* no text given */

  /* the probe did not run */
  assert_int_equal(gi_gpu_verdict(req, 2, NULL, "probe", "the CUDA probe did not finish within 90 s", res,
                                  GI_GPU_MAX, &n), 2);
  assert_string_equal(res[1].call, "probe");
  assert_string_equal(res[1].error, "the CUDA probe did not finish within 90 s");
  assert_int_equal(gi_gpu_verdict(req, 1, NULL, NULL, NULL, res, GI_GPU_MAX, &n), 1);
  assert_string_equal(res[0].call, "probe");
  assert_string_equal(res[0].error, "the CUDA probe did not run");

  /* a device no one asked for is reported and must pass too */
  {
    static const char *const three[] = { "0000:01:00.0", "0000:41:00.0", "0000:81:00.0" };

    p = probe_of(3, three);
    assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(res[2].bdf, "0000:81:00.0");
    assert_true(res[2].ok);
    snprintf(p.devices[2].call, sizeof(p.devices[2].call), "cuCtxCreate");
    assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, GI_GPU_MAX, &n), 1);
    assert_false(res[2].ok);
  }

  /* nothing asked, nothing found: nothing to fail */
  p = probe_of(0, req);
  assert_int_equal(gi_gpu_verdict(NULL, 0, &p, NULL, NULL, res, GI_GPU_MAX, &n), 0);
  assert_int_equal(n, 0);

  /* one device listed twice by CUDA: matched once, the other copy is extra */
  {
    static const char *const twice[] = { "0000:01:00.0", "0000:01:00.0" };

    p = probe_of(2, twice);
    assert_int_equal(gi_gpu_verdict(req, 1, &p, NULL, NULL, res, GI_GPU_MAX, &n), 0);
    assert_int_equal(n, 2);
  }

  /* more GPUs than room: refused, and none of them passes */
  p = probe_of(2, req);
  assert_int_equal(gi_gpu_verdict(req, 2, &p, NULL, NULL, res, 1, &n), -E2BIG);
  assert_int_equal(n, 1);
  assert_false(res[0].ok);
}

/* ---- the driver layer ---- */

/* etc/vfiod/driver-layer.env as build-driver-layer.sh writes it */
static const char layer_env[] =
  "# vfiod driver layer (kernel-modules/build-driver-layer.sh); the full manifest is next to the image.\n"
  "DRIVER_LAYER_KEY=dee185e8584869371cc8aa4c1e208187d450ce8007e4965497429b7eddd2ddb3\n"
  "NVIDIA_DRIVER_VERSION=550.163.01\n"
  "GUEST_KERNEL_RELEASE=6.1.0-57-amd64\n"
  "GLIBC_MIN=2.34\n"
  "DEBIAN_NVIDIA_OPEN_KERNEL_SOURCE=550.163.01-2\n";

static void
test_env_file(void **state)
{
  char v[64], tiny[5];

  assert_int_equal(gi_env_file_get(layer_env, "NVIDIA_DRIVER_VERSION", v, sizeof(v)), 0);
  assert_string_equal(v, "550.163.01");
  assert_int_equal(gi_env_file_get(layer_env, "GUEST_KERNEL_RELEASE", v, sizeof(v)), 0);
  assert_string_equal(v, "6.1.0-57-amd64");
  assert_int_equal(gi_env_file_get(layer_env, "DRIVER_LAYER_KEY", tiny, sizeof(tiny)), 0);
  assert_string_equal(tiny, "dee1");  /* cut */
  assert_int_equal(gi_env_file_get(layer_env, "NVIDIA_DRIVER", v, sizeof(v)), -ENOENT);    /* no prefix match */
  assert_int_equal(gi_env_file_get(layer_env, "vfiod driver layer", v, sizeof(v)), -ENOENT); /* comments */
  assert_int_equal(gi_env_file_get("", "A", v, sizeof(v)), -ENOENT);
  assert_int_equal(gi_env_file_get(NULL, "A", v, sizeof(v)), -ENOENT);
  assert_int_equal(gi_env_file_get("#A=1\nA=2", "A", v, sizeof(v)), 0);
  assert_string_equal(v, "2");
  assert_int_equal(gi_env_file_get("A=1\r\nA=2\n", "A", v, sizeof(v)), 0);  /* the first one; CR dropped */
  assert_string_equal(v, "1");
  assert_int_equal(gi_env_file_get("A=\n", "A", v, sizeof(v)), -EINVAL);
  assert_int_equal(gi_env_file_get("A=x\ty\n", "A", v, sizeof(v)), -EINVAL);
  assert_int_equal(gi_env_file_get("A=\xc3\xa9\n", "A", v, sizeof(v)), -EINVAL);
}

static void
test_env_build(void **state)
{
  static const char *const base[] = { "PATH=/usr/bin:/bin", "HOME=/root", "TERM=linux", NULL };
  static const char *const layer[] = { "PATH=/run/nvidia/driver/usr/bin",
                                       "LD_LIBRARY_PATH=/run/nvidia/driver/usr/lib/x86_64-linux-gnu" };
  const char *env[16];
  char buf[512];

  /* the layer: PATH gets it first, LD_LIBRARY_PATH is set */
  assert_int_equal(gi_env_build(base, NULL, 0, layer, 2, env, 16, buf, sizeof(buf)), 4);
  assert_string_equal(env[0], "PATH=/run/nvidia/driver/usr/bin:/usr/bin:/bin");
  assert_string_equal(env[1], "HOME=/root");
  assert_string_equal(env[2], "TERM=linux");
  assert_string_equal(env[3], "LD_LIBRARY_PATH=/run/nvidia/driver/usr/lib/x86_64-linux-gnu");
  assert_null(env[4]);

  /* vfiod.env: replaces in place, adds after; the layer still goes first */
  {
    static const char *const user[] = { "TERM=xterm", "LD_LIBRARY_PATH=/opt/lib", "FOO=bar", "PATH=/opt/bin" };

    assert_int_equal(gi_env_build(base, user, 4, layer, 2, env, 16, buf, sizeof(buf)), 5);
    assert_string_equal(env[0], "PATH=/run/nvidia/driver/usr/bin:/opt/bin");
    assert_string_equal(env[2], "TERM=xterm");
    assert_string_equal(env[3], "LD_LIBRARY_PATH=/run/nvidia/driver/usr/lib/x86_64-linux-gnu:/opt/lib");
    assert_string_equal(env[4], "FOO=bar");
    assert_null(env[5]);
  }
  /* an empty value gets no ':' (an empty LD_LIBRARY_PATH entry would be the cwd) */
  {
    static const char *const user[] = { "LD_LIBRARY_PATH=" };

    assert_int_equal(gi_env_build(base, user, 1, layer + 1, 1, env, 16, buf, sizeof(buf)), 4);
    assert_string_equal(env[3], "LD_LIBRARY_PATH=/run/nvidia/driver/usr/lib/x86_64-linux-gnu");
  }
  /* no layer, no vfiod.env: the base as it is */
  assert_int_equal(gi_env_build(base, NULL, 0, NULL, 0, env, 16, buf, sizeof(buf)), 3);
  assert_ptr_equal(env[0], base[0]);
  /* a repeated name: the first wins (as getenv() would) */
  {
    static const char *const user[] = { "FOO=1", "FOO=2" };

    assert_int_equal(gi_env_build(base, user, 2, NULL, 0, env, 16, buf, sizeof(buf)), 4);
    assert_string_equal(env[3], "FOO=1");
  }
  /* too small: refused, never cut */
  assert_int_equal(gi_env_build(base, NULL, 0, layer, 2, env, 16, buf, 40), -E2BIG);
  assert_int_equal(gi_env_build(base, NULL, 0, layer, 2, env, 4, buf, sizeof(buf)), -E2BIG);
  assert_int_equal(gi_env_build(base, NULL, 0, NULL, 0, env, 3, buf, sizeof(buf)), -E2BIG);
  /* no '=' */
  {
    static const char *const user[] = { "FOO" };
    static const char *const pre[] = { "=x" };

    assert_int_equal(gi_env_build(base, user, 1, NULL, 0, env, 16, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(gi_env_build(base, NULL, 0, pre, 1, env, 16, buf, sizeof(buf)), -EINVAL);
  }
}

/* ---- the report lines ---- */

static JsonObject *
parse_object(const char *line, const char *tag, JsonParser *parser)
{
  g_autoptr(GError) error = NULL;
  size_t tl = strlen(tag), len = strlen(line);

  assert_int_equal(strncmp(line, tag, tl), 0);
  assert_int_equal(line[len - 1], '\n');
  assert_null(memchr(line, '\n', len - 1));
  if (!json_parser_load_from_data(parser, line + tl + 1, (gssize) (len - tl - 2), &error))
    fail_msg("not JSON: %s\n%s", error->message, line);
  return json_node_get_object(json_parser_get_root(parser));
}

static void
test_report_lines(void **state)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  GiGpuResult gpus[2] = {
    { .bdf = "0000:01:00.0", .name = "NVIDIA H100", .ok = true },
    { .bdf = "0000:41:00.0", .name = "", .ok = false, .call = "cuCtxCreate", .error = "CUDA_ERROR_SYSTEM_NOT_READY" },
  };
  const char *nvrm[] = { "NVRM: Xid (PCI:0000:41:00): 79, \"GPU\" has fallen off the bus.\x01\xff" };
  const char *smi_out[] = { "NVIDIA-SMI has failed" };
  GiCudaReport cuda = { .version = 12040, .probe_ran = true, .driver = "550.163.01", .gpus = gpus, .n_gpus = 2,
                        .nvrm = nvrm, .n_nvrm = 1 };
  GiReady r = { .sandbox = "sb", .kernel = "k", .report = "console", .layer_dev = "/dev/vdb",
                .layer_path = "/run/nvidia/driver", .layer_version = "550.163.01", .layer_modules = "layer",
                .cuda = &cuda };
  char buf[4096];
  JsonObject *o, *c, *g;
  JsonArray *a;

  assert_true(gi_format_ready(buf, sizeof(buf), &r) < sizeof(buf));
  o = parse_object(buf, "VFIOD_READY", parser);
  c = json_object_get_object_member(o, "driver_layer");
  assert_string_equal(json_object_get_string_member(c, "dev"), "/dev/vdb");
  assert_string_equal(json_object_get_string_member(c, "path"), "/run/nvidia/driver");
  assert_true(json_object_get_null_member(c, "key"));
  assert_string_equal(json_object_get_string_member(c, "modules"), "layer");
  c = json_object_get_object_member(o, "cuda");
  assert_int_equal(json_object_get_int_member(c, "version"), 12040);
  assert_true(json_object_get_null_member(c, "error"));
  assert_true(json_object_get_null_member(json_object_get_object_member(c, "probe"), "call"));
  a = json_object_get_array_member(c, "gpus");
  assert_int_equal(json_array_get_length(a), 2);
  g = json_array_get_object_element(a, 0);
  assert_string_equal(json_object_get_string_member(g, "probe"), "ok");
  assert_string_equal(json_object_get_string_member(g, "driver"), "550.163.01");
  assert_true(json_object_get_null_member(g, "call"));
  g = json_array_get_object_element(a, 1);
  assert_string_equal(json_object_get_string_member(g, "probe"), "failed");
  assert_true(json_object_get_null_member(g, "name"));
  assert_string_equal(json_object_get_string_member(g, "call"), "cuCtxCreate");
  assert_string_equal(json_object_get_string_member(g, "error"), "CUDA_ERROR_SYSTEM_NOT_READY");
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(c, "nvrm"), 0),
                      "NVRM: Xid (PCI:0000:41:00): 79, \"GPU\" has fallen off the bus.\x01\xef\xbf\xbd");
  assert_false(json_object_has_member(o, "smi_output"));  /* only when nvidia-smi failed */

  /* the failure line: the error, the same "cuda" object, nvidia-smi's words */
  cuda.probe_call = "cuInit";
  cuda.probe_code = 100;
  cuda.probe_error = "CUDA_ERROR_NO_DEVICE";
  cuda.version = 0;
  cuda.error = "load module /x/nvidia.ko: No such device";
  assert_true(gi_format_fatal_gpu(buf, sizeof(buf), "GPU not ready: 0000:41:00.0: cuCtxCreate: X", &cuda,
                                  "failed: exit:1", "exit:9", smi_out, 1) < sizeof(buf));
  o = parse_object(buf, "VFIOD_FATAL", parser);
  assert_string_equal(json_object_get_string_member(o, "error"), "GPU not ready: 0000:41:00.0: cuCtxCreate: X");
  assert_string_equal(json_object_get_string_member(o, "smi"), "exit:9");
  assert_string_equal(json_object_get_string_member(o, "persistenced"), "failed: exit:1");
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(o, "smi_output"), 0),
                      "NVIDIA-SMI has failed");
  c = json_object_get_object_member(o, "cuda");
  assert_true(json_object_get_null_member(c, "version"));
  assert_string_equal(json_object_get_string_member(c, "error"), "load module /x/nvidia.ko: No such device");
  c = json_object_get_object_member(c, "probe");
  assert_string_equal(json_object_get_string_member(c, "call"), "cuInit");
  assert_int_equal(json_object_get_int_member(c, "code"), 100);
  assert_string_equal(json_object_get_string_member(c, "error"), "CUDA_ERROR_NO_DEVICE");
  /* the probe did not run */
  cuda.probe_ran = false;
  assert_true(gi_format_fatal_gpu(buf, sizeof(buf), "e", &cuda, NULL, NULL, NULL, 0) < sizeof(buf));
  o = parse_object(buf, "VFIOD_FATAL", parser);
  assert_true(json_object_get_null_member(json_object_get_object_member(o, "cuda"), "probe"));
  assert_true(json_object_get_null_member(o, "smi"));
  assert_true(json_object_get_null_member(o, "persistenced"));
  /* cut like snprintf(): the length needed comes back */
  assert_int_equal(gi_format_fatal_gpu(buf, 10, "e", &cuda, NULL, NULL, NULL, 0),
                   gi_format_fatal_gpu(NULL, 0, "e", &cuda, NULL, NULL, NULL, 0));
  assert_int_equal(strlen(buf), 9);
}

/* VFIOD_FATAL with the context a ready line would have had (the lab's
 * check 6 reads these): the modules that loaded before the failing one,
 * the driver layer with its GSP firmware path and files, the root, the
 * timings; without a context, the same line as gi_format_fatal_gpu(). */
static void
test_fatal_context(void **state)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  GiCudaReport cuda = { .probe_ran = true, .probe_call = "cuInit", .probe_code = 100,
                        .probe_error = "CUDA_ERROR_NO_DEVICE", .error = "load module nvidia.ko: No such device" };
  const char *modules[] = { "virtio_pci", "drm", "video" };
  const char *fw[] = { "gsp_ga10x.bin", "gsp_tu10x.bin" };
  GiTiming t[] = { { "modules", 812 }, { "fatal", 16400 } };
  GiReady ctx = { .sandbox = "sb-1", .kernel = "6.1.0-57-amd64", .uptime_ms = 16400, .report = "vsock:10000",
                  .modules = modules, .n_modules = 3, .layer_dev = "/dev/vdb", .layer_path = "/run/nvidia/driver",
                  .layer_version = "550.163.01", .layer_modules = "layer",
                  .layer_firmware = "/lib/firmware/nvidia/550.163.01", .layer_firmware_files = fw,
                  .n_layer_firmware_files = 2, .root_dev = "/dev/vda", .root_fstype = "ext4", .timings = t,
                  .n_timings = 2 };
  char buf[4096], plain[2048], plain_ctx[2048];
  JsonObject *o, *l, *f;
  JsonArray *a;

  assert_true(gi_format_fatal_gpu_ctx(buf, sizeof(buf), "GPU not ready", &cuda, "timeout", "exit:9", NULL, 0, &ctx) <
              sizeof(buf));
  o = parse_object(buf, "VFIOD_FATAL", parser);
  assert_string_equal(json_object_get_string_member(o, "error"), "GPU not ready");
  assert_string_equal(json_object_get_string_member(o, "sandbox"), "sb-1");
  assert_string_equal(json_object_get_string_member(o, "kernel"), "6.1.0-57-amd64");
  a = json_object_get_array_member(o, "modules");
  assert_int_equal(json_array_get_length(a), 3);
  assert_string_equal(json_array_get_string_element(a, 2), "video");
  l = json_object_get_object_member(o, "driver_layer");
  assert_string_equal(json_object_get_string_member(l, "version"), "550.163.01");
  f = json_object_get_object_member(l, "firmware");
  assert_string_equal(json_object_get_string_member(f, "path"), "/lib/firmware/nvidia/550.163.01");
  assert_string_equal(json_array_get_string_element(json_object_get_array_member(f, "files"), 1), "gsp_tu10x.bin");
  assert_int_equal(json_object_get_int_member(json_object_get_object_member(o, "timings_ms"), "fatal"), 16400);
  assert_string_equal(json_object_get_string_member(json_object_get_object_member(o, "root"), "dev"), "/dev/vda");
  assert_string_equal(json_object_get_string_member(
                        json_object_get_object_member(json_object_get_object_member(o, "cuda"), "probe"), "error"),
                      "CUDA_ERROR_NO_DEVICE");
  /* no context: exactly gi_format_fatal_gpu()'s line */
  gi_format_fatal_gpu(plain, sizeof(plain), "e", &cuda, NULL, NULL, NULL, 0);
  gi_format_fatal_gpu_ctx(plain_ctx, sizeof(plain_ctx), "e", &cuda, NULL, NULL, NULL, 0, NULL);
  assert_string_equal(plain, plain_ctx);
  /* cut like snprintf(): the length needed comes back */
  assert_int_equal(gi_format_fatal_gpu_ctx(buf, 16, "GPU not ready", &cuda, NULL, NULL, NULL, 0, &ctx),
                   gi_format_fatal_gpu_ctx(NULL, 0, "GPU not ready", &cuda, NULL, NULL, NULL, 0, &ctx));
  assert_int_equal(strlen(buf), 15);
}

static void
test_poweroff_line(void **state)
{
  const char *unloaded[] = { "nvidia_uvm", "nvidia_modeset", "nvidia" };
  GiTeardown t = { .persistenced = "stopped", .unloaded = unloaded, .n_unloaded = 3 };
  char buf[512], plain[128];

  gi_format_poweroff_gpu(buf, sizeof(buf), "workload-exit", &t);
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"workload-exit\",\"gpu\":{\"persistenced\":\"stopped\","
                           "\"unloaded\":[\"nvidia_uvm\",\"nvidia_modeset\",\"nvidia\"],\"error\":null}}\n");
  t = (GiTeardown) { .persistenced = "killed", .unloaded = unloaded, .n_unloaded = 1,
                     .error = "nvidia_modeset: Resource temporarily unavailable (still in use)" };
  gi_format_poweroff_gpu(buf, sizeof(buf), "fatal", &t);
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"fatal\",\"gpu\":{\"persistenced\":\"killed\","
                           "\"unloaded\":[\"nvidia_uvm\"],\"error\":\"nvidia_modeset: Resource temporarily "
                           "unavailable (still in use)\"}}\n");
  /* without a teardown: the line as before */
  gi_format_poweroff_gpu(buf, sizeof(buf), "signal:SIGTERM", NULL);
  gi_format_poweroff(plain, sizeof(plain), "signal:SIGTERM");
  assert_string_equal(buf, plain);
  assert_string_equal(buf, "VFIOD_POWEROFF {\"reason\":\"signal:SIGTERM\"}\n");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cmdline_driver),
    cmocka_unit_test(test_cmdline_driver_refused),
    cmocka_unit_test(test_cmdline_driver_protocol),
    cmocka_unit_test(test_disk_resolve),
    cmocka_unit_test(test_bdf),
    cmocka_unit_test(test_probe_ok),
    cmocka_unit_test(test_probe_refused),
    cmocka_unit_test(test_kmsg),
    cmocka_unit_test(test_verdict),
    cmocka_unit_test(test_env_file),
    cmocka_unit_test(test_env_build),
    cmocka_unit_test(test_report_lines),
    cmocka_unit_test(test_fatal_context),
    cmocka_unit_test(test_poweroff_line),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
