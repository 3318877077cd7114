/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Config loading and the QEMU command line built from it. */
#include <errno.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "error.h"
#include "qemu-argv.h"

static char *
write_conf(const char *contents)
{
  g_autoptr(GError) error = NULL;
  char *path = NULL;
  int fd = g_file_open_tmp("vfiod-conf-XXXXXX", &path, &error);

  assert_true(fd >= 0);
  close(fd);
  assert_true(g_file_set_contents(path, contents, -1, NULL));
  return path;
}

static void
test_defaults(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) c = NULL;

  g_unsetenv("STATE_DIRECTORY");
  g_unsetenv("RUNTIME_DIRECTORY");
  c = vfd_config_load(NULL, NULL, &error);
  assert_non_null(c);
  assert_string_equal(c->state_dir, "/var/lib/vfiod");
  assert_string_equal(c->runtime_dir, "/run/vfiod");
  assert_string_equal(c->allowed_group, "vfiod");
  assert_string_equal(c->ids, "10de:*");
  assert_string_equal(c->classes, "03;0403;0c03;0c80");
  assert_string_equal(c->qemu_accel, "kvm");
  assert_string_equal(c->sys_root, "/sys");
  /* the guest: the image vfioctl image build installs into VFIOD_IMAGE_DIR */
  assert_string_equal(c->qemu_kernel, VFIOD_IMAGE_DIR "/vmlinuz");
  assert_string_equal(c->qemu_initrd, VFIOD_IMAGE_DIR "/initramfs");
  assert_string_equal(c->qemu_driver_layer, VFIOD_IMAGE_DIR "/driver-layer.erofs");
  assert_false(c->qemu_kernel_set || c->qemu_initrd_set || c->qemu_driver_layer_set);
  assert_false(c->vm_libvirt);
  assert_string_equal(c->libvirt_uri, "qemu:///system");
}

/* [vm] backend and [libvirt] uri: only this host's system QEMU driver. */
static void
test_libvirt_backend(void **state)
{
  static const char *const local[] = { "qemu:///system", "qemu+unix:///system",
                                       "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock" };
  static const char *const refused[] = { "qemu+ssh://gpu7/system", "qemu:///session", "qemu+tcp://h/system",
                                         "test:///default", "qemu:///systemd", "qemu+unix:///system/x", "" };

  for (guint i = 0; i < G_N_ELEMENTS(local); i++)
    assert_true(vfd_config_libvirt_uri_local(local[i]));
  for (guint i = 0; i < G_N_ELEMENTS(refused); i++)
    assert_false(vfd_config_libvirt_uri_local(refused[i]));
  assert_false(vfd_config_libvirt_uri_local(NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = write_conf("[vm]\nbackend=libvirt\n[libvirt]\nuri=qemu+unix:///system\n");
    g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);
    assert_non_null(c);
    assert_true(c->vm_libvirt);
    assert_string_equal(c->libvirt_uri, "qemu+unix:///system");
    g_unlink(path);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = write_conf("[vm]\nbackend=qemu\n");
    g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);
    assert_non_null(c);
    assert_false(c->vm_libvirt);
    g_unlink(path);
  }
}

/* The default image: what is missing is reported, with how to build it;
 * keys the file sets are not looked at. */
static void
test_image_defaults(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("vfiod-image-XXXXXX", NULL);
  g_autofree char *k = g_build_filename(dir, "vmlinuz", NULL);
  g_autofree char *conf_text = g_strdup_printf("[qemu]\nkernel=%s\ninitrd=%s/none\ndriver_layer=\n", k, dir);
  g_autofree char *path = write_conf(conf_text);
  g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);
  g_autoptr(VfdConfig) def = vfd_config_load(NULL, NULL, &error);
  g_autoptr(GPtrArray) none = NULL;
  g_autoptr(GPtrArray) missing = NULL;
  guint want = 0;

  assert_non_null(c);
  assert_true(c->qemu_kernel_set && c->qemu_initrd_set && c->qemu_driver_layer_set);
  assert_string_equal(c->qemu_kernel, k);
  assert_string_equal(c->qemu_driver_layer, ""); /* explicitly none */
  none = vfd_config_image_problems(c);
  assert_int_equal(none->len, 0); /* set keys: their files are the create's business */
  missing = vfd_config_image_problems(def);
  want += !g_file_test(VFIOD_IMAGE_DIR "/vmlinuz", G_FILE_TEST_EXISTS);
  want += !g_file_test(VFIOD_IMAGE_DIR "/initramfs", G_FILE_TEST_EXISTS);
  want += !g_file_test(VFIOD_IMAGE_DIR "/driver-layer.erofs", G_FILE_TEST_EXISTS);
  assert_int_equal(missing->len, want);
  for (guint i = 0; i < missing->len; i++) {
    const char *m = g_ptr_array_index(missing, i);
    assert_non_null(strstr(m, "vfioctl image build --gpu --output " VFIOD_IMAGE_DIR));
    assert_non_null(strstr(m, "is unset and the default image has no " VFIOD_IMAGE_DIR "/"));
  }
  g_unlink(path);
  g_rmdir(dir);
}

static void
test_systemd_dirs(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) c = NULL;
  g_autofree char *path = write_conf("[daemon]\nruntime_dir=/tmp/explicit\n");

  g_setenv("STATE_DIRECTORY", "/var/lib/vfiod-sd:/var/lib/other", TRUE);
  g_setenv("RUNTIME_DIRECTORY", "/run/vfiod-sd", TRUE);
  c = vfd_config_load(path, NULL, &error);
  g_unsetenv("STATE_DIRECTORY");
  g_unsetenv("RUNTIME_DIRECTORY");
  assert_non_null(c);
  assert_string_equal(c->state_dir, "/var/lib/vfiod-sd"); /* first of the list */
  assert_string_equal(c->runtime_dir, "/tmp/explicit");   /* the file wins */
  g_unlink(path);
}

static void
test_values(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) c = NULL;
  g_autoptr(GPtrArray) warnings = NULL;
  g_autofree char *path = write_conf("[daemon]\nstate_dir=/tmp/s\nallowed_group=\n"
                                     "[devices]\nids=8086:10d3; 1af4:*\nclasses=\n"
                                     "[qemu]\naccel=tcg\nstop_timeout=3\nbogus=1\n");

  c = vfd_config_load(path, &warnings, &error);
  assert_non_null(c);
  assert_string_equal(c->state_dir, "/tmp/s");
  assert_string_equal(c->allowed_group, "");
  assert_string_equal(c->ids, "8086:10d3; 1af4:*");
  assert_string_equal(c->classes, "");
  assert_string_equal(c->qemu_accel, "tcg");
  assert_int_equal(c->qemu_stop_timeout_s, 3);
  assert_int_equal(warnings->len, 1);
  assert_non_null(strstr(g_ptr_array_index(warnings, 0), "bogus"));
  g_unlink(path);
}

static void
check_bad(const char *contents, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = write_conf(contents);
  g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);

  assert_null(c);
  assert_non_null(error);
  if (!strstr(error->message, needle))
    fail_msg("error '%s' does not mention '%s'", error->message, needle);
  g_unlink(path);
}

static void
test_bad_values(void **state)
{
  check_bad("[daemon]\nstate_dir=relative/dir\n", "state_dir");
  check_bad("[daemon]\nruntime_dir=/run/../etc\n", "runtime_dir");
  check_bad("[qemu]\naccel=hvf\n", "accel");
  check_bad("[qemu]\ndriver_layer=layers/driver-layer.erofs\n", "driver_layer");
  check_bad("[qemu]\nstop_timeout=0\n", "stop_timeout");
  check_bad("[qemu]\nstop_timeout=abc\n", "stop_timeout");
  check_bad("[devices]\nids=10de\n", "10de");
  check_bad("[devices]\nclasses=030\n", "030");
  check_bad("this is not a key file", "config");
  check_bad("[vm]\nbackend=firecracker\n", "[vm] backend must be qemu or libvirt, got 'firecracker'");
  check_bad("[libvirt]\nuri=qemu+ssh://gpu7/system\n", "one vfiod per host");
  check_bad("[network]\ngateway_address=10.0.200.1\n", "gateway_address: 10.0.200.1 is inside the pool 10.0.128.0/17");
  check_bad("[network]\ngateway_address=127.0.0.2\n", "not a unicast IPv4 address");
  check_bad("[network]\ngateway_address=239.1.1.1\n", "not a unicast IPv4 address");
  check_bad("[network]\ngateway_address=10.1.2\n", "gateway_address");
  {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = write_conf("[network]\ngateway_address=10.255.255.1\n");
    g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);
    assert_non_null(c);
    assert_int_equal(c->net_gateway_addr, 0x0affff01u); /* 10.255.255.1 */
    g_unlink(path);
  }
  {
    g_autoptr(GError) error = NULL;
    assert_null(vfd_config_load("/nonexistent/vfiod.conf", NULL, &error));
    assert_non_null(strstr(error->message, "/nonexistent/vfiod.conf"));
  }
}

static int
argv_index(GStrv argv, const char *s)
{
  for (int i = 0; argv[i]; i++)
    if (g_str_equal(argv[i], s))
      return i;
  return -1;
}

static void
test_qemu_argv(void **state)
{
  VfdBdf devs[2];
  g_auto(GStrv) argv = NULL;
  VfdQemuConfig c = {
    .id = "sb-00000001", .qemu_binary = "qemu-system-x86_64", .accel = "tcg", .memory_mib = 256, .vcpus = 2,
    .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/run/x/serial.log", .qmp_socket = "/run/x/qmp.sock",
    .devices = devs, .n_devices = 2,
  };
  int i;

  assert_int_equal(vfd_bdf_parse("0000:00:04.0", &devs[0]), 0);
  assert_int_equal(vfd_bdf_parse("0000:00:04.1", &devs[1]), 0);
  argv = vfd_qemu_build_argv(&c);
  assert_string_equal(argv[0], "qemu-system-x86_64");
  assert_string_equal(argv[argv_index(argv, "-M") + 1], "q35,memory-backend=mem");
  assert_string_equal(argv[argv_index(argv, "-object") + 1], "memory-backend-memfd,id=mem,size=256M,share=on");
  assert_non_null(strstr(argv[argv_index(argv, "-append") + 1], "pci=realloc"));
  assert_int_equal(argv_index(argv, "-sandbox"), -1); /* not asked for */
  assert_string_equal(argv[argv_index(argv, "-accel") + 1], "tcg");
  assert_string_equal(argv[argv_index(argv, "-m") + 1], "256");
  assert_string_equal(argv[argv_index(argv, "-smp") + 1], "2");
  assert_string_equal(argv[argv_index(argv, "-kernel") + 1], "/k/vmlinuz");
  assert_string_equal(argv[argv_index(argv, "-initrd") + 1], "/k/initrd");
  assert_string_equal(argv[argv_index(argv, "-serial") + 1], "file:/run/x/serial.log");
  assert_non_null(strstr(argv[argv_index(argv, "-append") + 1], "vfiod.sandbox=sb-00000001"));
  assert_non_null(strstr(argv[argv_index(argv, "-append") + 1], "console=ttyS0"));
  assert_true(argv_index(argv, "-nodefaults") > 0);
  /* One root port per function, each function behind its own port. */
  i = argv_index(argv, "pcie-root-port,id=rp0,chassis=1,slot=0");
  assert_true(i > 0);
  assert_string_equal(argv[i + 2], "vfio-pci,host=0000:00:04.0,bus=rp0");
  i = argv_index(argv, "pcie-root-port,id=rp1,chassis=2,slot=1");
  assert_true(i > 0);
  assert_string_equal(argv[i + 2], "vfio-pci,host=0000:00:04.1,bus=rp1");
  assert_int_equal(vfd_qemu_memlock_bytes(256), (guint64) 512 * 1024 * 1024);

  /* The console log as an fd vfiod opened: an fd set, no path. */
  c.serial_fd = 3;
  g_strfreev(argv);
  argv = vfd_qemu_build_argv(&c);
  assert_string_equal(argv[argv_index(argv, "-add-fd") + 1], "fd=3,set=1,opaque=serial-log");
  assert_string_equal(argv[argv_index(argv, "-chardev") + 1], "file,id=serial0,path=/dev/fdset/1,append=on");
  assert_string_equal(argv[argv_index(argv, "-serial") + 1], "chardev:serial0");
  for (i = 0; argv[i]; i++)
    assert_null(strstr(argv[i], "/run/x/serial.log"));
  c.serial_fd = 0;

  /* Devices on one NUMA node: guest RAM bound to it. */
  c.numa_bind = TRUE;
  c.numa_node = 1;
  g_strfreev(argv);
  argv = vfd_qemu_build_argv(&c);
  assert_string_equal(argv[argv_index(argv, "-object") + 1],
                      "memory-backend-memfd,id=mem,size=256M,share=on,host-nodes=1,policy=bind");
}

static void
test_numa_cpulist(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-numa-XXXXXX", NULL);
  g_autofree char *dir = g_build_filename(root, "devices", "system", "node", "node1", NULL);
  g_autofree char *file = g_build_filename(dir, "cpulist", NULL);
  g_autoptr(GArray) cpus = NULL;

  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  assert_true(g_file_set_contents(file, "0-2,8,10-11\n", -1, NULL));
  assert_true(vfd_numa_node_cpus(root, 1, &cpus));
  assert_int_equal(cpus->len, 6);
  assert_int_equal(g_array_index(cpus, guint, 3), 8);
  assert_int_equal(g_array_index(cpus, guint, 5), 11);
  assert_false(vfd_numa_node_cpus(root, 0, &cpus)); /* no such node */
  assert_true(g_file_set_contents(file, "3-1\n", -1, NULL));
  g_clear_pointer(&cpus, g_array_unref);
  assert_false(vfd_numa_node_cpus(root, 1, &cpus)); /* malformed */
  g_unlink(file);
  g_rmdir(dir);
  {
    g_autofree char *p1 = g_build_filename(root, "devices", "system", "node", NULL);
    g_autofree char *p2 = g_build_filename(root, "devices", "system", NULL);
    g_autofree char *p3 = g_build_filename(root, "devices", NULL);
    g_rmdir(p1), g_rmdir(p2), g_rmdir(p3), g_rmdir(root);
  }
}

static void
test_qemu_argv_microvm(void **state)
{
  const char *append[] = { "vfiod.ip=10.0.128.2/30", NULL };
  const char *extra[] = { "-device", "vhost-vsock-device,guest-cid=3", NULL };
  g_auto(GStrv) argv = NULL;
  VfdQemuConfig c = {
    .id = "sb-00000002", .qemu_binary = "qemu-system-x86_64", .accel = "kvm", .memory_mib = 512, .vcpus = 1,
    .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/s", .qmp_socket = "/q", .hugepages = TRUE,
    .seccomp = TRUE, .extra_append = append, .extra_args = extra, .tsc_khz = 2300000,
  };

  /* No device passed through: microvm, no PCI root ports, no pci=realloc. */
  argv = vfd_qemu_build_argv(&c);
  assert_string_equal(argv[argv_index(argv, "-M") + 1], "microvm,pit=on,pic=on,rtc=on,memory-backend=mem");
  assert_string_equal(argv[argv_index(argv, "-object") + 1],
                      "memory-backend-memfd,id=mem,size=512M,share=on,hugetlb=on");
  assert_null(strstr(argv[argv_index(argv, "-append") + 1], "pci=realloc"));
  assert_non_null(strstr(argv[argv_index(argv, "-append") + 1], " vfiod.ip=10.0.128.2/30"));
  assert_non_null(strstr(argv[argv_index(argv, "-append") + 1], " tsc_early_khz=2300000 "));
  assert_non_null(strstr(argv[argv_index(argv, "-sandbox") + 1], "spawn=deny"));
  assert_string_equal(argv[argv_index(argv, "vhost-vsock-device,guest-cid=3") - 1], "-device");
  assert_int_equal(argv_index(argv, "-vga"), -1);
  for (int i = 0; argv[i]; i++)
    assert_null(strstr(argv[i], "pcie-root-port"));
  /* KVM: the host's CPU; TCG: QEMU's default (no -cpu) */
  assert_string_equal(argv[argv_index(argv, "-cpu") + 1], "host");
  c.accel = "tcg";
  g_strfreev(argv);
  argv = vfd_qemu_build_argv(&c);
  assert_int_equal(argv_index(argv, "-cpu"), -1);
}

static void
test_uid_range(void **state)
{
  guint32 first = 1, count = 1;
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) def = vfd_config_load(NULL, NULL, &error);
  g_autofree char *path = write_conf("[qemu]\nuid_range=100000-100009\nserial_log_max_mib=2\n");
  g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, &error);

  assert_int_equal(vfd_config_parse_uid_range("100000-165535", &first, &count), 0);
  assert_int_equal(first, 100000);
  assert_int_equal(count, 65536);
  assert_int_equal(vfd_config_parse_uid_range("none", &first, &count), 0);
  assert_int_equal(count, 0);
  assert_int_equal(vfd_config_parse_uid_range("", &first, &count), 0);
  assert_int_equal(count, 0);
  /* below 1000 (system accounts), reversed, past 2^31 - 2, junk */
  assert_int_equal(vfd_config_parse_uid_range("0-65535", &first, &count), -EINVAL);
  assert_int_equal(vfd_config_parse_uid_range("200000-100000", &first, &count), -EINVAL);
  assert_int_equal(vfd_config_parse_uid_range("100000-2147483647", &first, &count), -EINVAL);
  assert_int_equal(vfd_config_parse_uid_range("100000-", &first, &count), -EINVAL);
  assert_int_equal(vfd_config_parse_uid_range("-5-10", &first, &count), -EINVAL);
  assert_int_equal(vfd_config_parse_uid_range("100000-100009x", &first, &count), -EINVAL);
  /* defaults: a range of its own per sandbox, 16 MiB console logs */
  assert_non_null(def);
  assert_int_equal(def->qemu_uid_first, 1879113728);
  assert_int_equal(def->qemu_uid_count, 65536);
  assert_null(def->qemu_user);
  assert_int_equal(def->qemu_serial_log_max, 16 * 1024 * 1024);
  assert_non_null(c);
  assert_int_equal(c->qemu_uid_first, 100000);
  assert_int_equal(c->qemu_uid_count, 10);
  assert_int_equal(c->qemu_serial_log_max, 2 * 1024 * 1024);
  g_unlink(path);
  {
    g_autofree char *bad_range = write_conf("[qemu]\nuid_range=10-20\n");
    g_autofree char *bad_max = write_conf("[qemu]\nserial_log_max_mib=0\n");
    assert_null(vfd_config_load(bad_range, NULL, &error));
    assert_non_null(strstr(error->message, "uid_range"));
    g_clear_error(&error);
    assert_null(vfd_config_load(bad_max, NULL, &error));
    assert_non_null(strstr(error->message, "serial_log_max_mib"));
    g_unlink(bad_range);
    g_unlink(bad_max);
  }
}

/* [qemu] test_present_as (test only): parsed strictly; on the argv, only
 * display-class functions get the other IDs, and only when set. */
static void
test_present_as(void **state)
{
  static const char *const bad[] = { "10de", "10de:", "10de:2335:1", "10de-2335", " 10de:2335", "10de:233",
                                     "10de:23355", "0x10:2335", "10dg:2335", "0000:2335", "ffff:2335",
                                     "10de:ffff", "+1de:2335", NULL };
  guint16 v = 1, d = 1;
  VfdBdf devs[3];
  guint32 classes[3] = { 0x030000, 0x040300, 0x030200 }; /* VGA, HD audio, 3D controller */
  g_auto(GStrv) argv = NULL;
  VfdQemuConfig c = {
    .id = "sb-00000003", .qemu_binary = "qemu-system-x86_64", .accel = "tcg", .memory_mib = 256, .vcpus = 1,
    .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/s", .qmp_socket = "/q",
    .devices = devs, .n_devices = 3, .device_classes = classes,
  };

  assert_int_equal(vfd_config_parse_present_as("10de:2335", &v, &d), 0);
  assert_int_equal(v, 0x10de);
  assert_int_equal(d, 0x2335);
  assert_int_equal(vfd_config_parse_present_as("10DE:23aF", &v, &d), 0);
  assert_int_equal(d, 0x23af);
  assert_int_equal(vfd_config_parse_present_as("", &v, &d), 0);
  assert_int_equal(v, 0);
  assert_int_equal(d, 0);
  for (int i = 0; bad[i]; i++) {
    v = d = 7;
    if (vfd_config_parse_present_as(bad[i], &v, &d) != -EINVAL)
      fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(v, 7); /* nothing written */
    assert_int_equal(d, 7);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = write_conf("[qemu]\ntest_present_as = 10de:2335 \n");
    g_autoptr(VfdConfig) cfg = vfd_config_load(path, NULL, &error);
    g_autoptr(VfdConfig) def = vfd_config_load(NULL, NULL, &error);
    assert_non_null(cfg);
    assert_int_equal(cfg->qemu_present_vendor, 0x10de);
    assert_int_equal(cfg->qemu_present_device, 0x2335);
    assert_int_equal(def->qemu_present_vendor, 0);
    assert_int_equal(def->qemu_present_device, 0);
    g_unlink(path);
  }
  check_bad("[qemu]\ntest_present_as=10de:23\n", "test_present_as");
  check_bad("[qemu]\ntest_present_as=ffff:2335\n", "test_present_as");

  assert_int_equal(vfd_bdf_parse("0000:01:00.0", &devs[0]), 0);
  assert_int_equal(vfd_bdf_parse("0000:01:00.1", &devs[1]), 0);
  assert_int_equal(vfd_bdf_parse("0000:02:00.0", &devs[2]), 0);
  /* off: every function as it is */
  argv = vfd_qemu_build_argv(&c);
  assert_true(argv_index(argv, "vfio-pci,host=0000:01:00.0,bus=rp0") > 0);
  assert_true(argv_index(argv, "vfio-pci,host=0000:02:00.0,bus=rp2") > 0);
  for (int i = 0; argv[i]; i++)
    assert_null(strstr(argv[i], "x-pci-"));
  /* on: the display (0x0300) and 3D (0x0302) functions, not the audio one */
  c.present_vendor = 0x10de;
  c.present_device = 0x2335;
  g_strfreev(argv);
  argv = vfd_qemu_build_argv(&c);
  assert_true(argv_index(argv, "vfio-pci,host=0000:01:00.0,bus=rp0,x-pci-vendor-id=0x10de,x-pci-device-id=0x2335") >
              0);
  assert_true(argv_index(argv, "vfio-pci,host=0000:01:00.1,bus=rp1") > 0);
  assert_true(argv_index(argv, "vfio-pci,host=0000:02:00.0,bus=rp2,x-pci-vendor-id=0x10de,x-pci-device-id=0x2335") >
              0);
  /* classes unknown: nothing presented as another */
  c.device_classes = NULL;
  g_strfreev(argv);
  argv = vfd_qemu_build_argv(&c);
  for (int i = 0; argv[i]; i++)
    assert_null(strstr(argv[i], "x-pci-"));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_systemd_dirs), cmocka_unit_test(test_values),
    cmocka_unit_test(test_bad_values),   cmocka_unit_test(test_qemu_argv),
    cmocka_unit_test(test_qemu_argv_microvm), cmocka_unit_test(test_present_as),
    cmocka_unit_test(test_image_defaults), cmocka_unit_test(test_libvirt_backend),
    cmocka_unit_test(test_numa_cpulist),    cmocka_unit_test(test_uid_range),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
