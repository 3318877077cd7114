/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt domain XML of a sandbox (issue 18; vfiod/vm/libvirt-xml.c):
 * a CPU-only sandbox (microvm; the daemon's on q35), a GPU sandbox with one IOMMU group (two
 * functions: GPU and its audio function) and one with two groups, each
 * validated against libvirt's own schema by virt-xml-validate (from
 * libvirt-clients), and read back: hostdevs managed='no' with the host
 * BDFs, one pcie-root-port each, the 64-bit window and address bits, TAP
 * managed='no', the vsock CID, memory backing, metadata, values escaped.
 * The validator is shown to refuse a broken document first (it really
 * validates). Without virt-xml-validate: skipped (exit 77). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "libvirt-xml.h"

static char *validator;

/* virt-xml-validate's verdict on @xml as a domain: TRUE when valid; its
 * output in *@ret_out. */
static gboolean
validate(const char *xml, char **ret_out)
{
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  int fd = g_file_open_tmp("vfiod-domain-XXXXXX.xml", &path, &error);
  const char *argv[] = { validator, NULL, "domain", NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = -1;

  assert_true(fd >= 0);
  assert_true(write(fd, xml, strlen(xml)) == (ssize_t) strlen(xml));
  close(fd);
  argv[1] = path;
  assert_true(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error));
  g_unlink(path);
  *ret_out = g_strconcat(out, err, NULL);
  return g_spawn_check_wait_status(status, NULL);
}

static guint
count(const char *hay, const char *needle)
{
  guint n = 0;

  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void
expect_valid(const char *xml)
{
  g_autofree char *out = NULL;

  if (!validate(xml, &out))
    fail_msg("virt-xml-validate refused:\n%s\n%s", out, xml);
}

static const VfdLibvirtDisk root_disks[] = {
  { "/run/vfiod/sandboxes/sb-00000001/disks/root", "vfiod-root", TRUE },
  { "/run/vfiod/sandboxes/sb-00000001/disks/overlay", "vfiod-overlay", FALSE },
};

static VfdLibvirtDomain
base_domain(void)
{
  return (VfdLibvirtDomain){ .name = "sb-00000001", .owner_uid = 1000, .kvm = TRUE,
                             .emulator = "/usr/bin/qemu-system-x86_64", .memory_mib = 512, .vcpus = 2,
                             .kernel = "/var/lib/vfiod/image/vmlinuz", .initrd = "/var/lib/vfiod/image/initramfs",
                             .cmdline = "console=ttyS0 panic=-1 vfiod.sandbox=sb-00000001",
                             .serial_log = "/run/vfiod/sandboxes/sb-00000001/serial.log", .numa_node = -1 };
}

/* The validator refuses what libvirt would: it is not a rubber stamp. */
static void
test_validator_refuses(void **state)
{
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = vfd_libvirt_domain_xml(&d);
  g_autofree char *out = NULL, *out2 = NULL;
  g_autoptr(GString) bad = g_string_new(xml);

  expect_valid(xml);
  g_string_replace(bad, "<vcpu placement='static'>", "<vcpu placement='everywhere'>", 1);
  assert_false(validate(bad->str, &out));
  g_string_assign(bad, xml);
  g_string_replace(bad, "<on_crash>destroy</on_crash>", "<on_crash>explode</on_crash>", 1);
  assert_false(validate(bad->str, &out2));
}

/* CPU-only: microvm, network, vsock, a read-only root with an overlay disk. */
static void
test_cpu_only(void **state)
{
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = NULL;

  d.kvm = FALSE;
  d.microvm = TRUE;
  d.tap = "vfd1a2b3c4d";
  d.mac = "52:54:00:12:34:56";
  d.cid = 42;
  d.disks = root_disks;
  d.n_disks = 2;
  d.sandbox_name = "job<1>&'x'";
  d.cmdline = "console=ttyS0 vfiod.sandbox=sb-00000001 vfiod.root=virtio:vfiod-root vfiod.note=\"a&b\"";
  xml = vfd_libvirt_domain_xml(&d);
  expect_valid(xml);
  assert_non_null(strstr(xml, "<domain type='qemu' "));
  assert_non_null(strstr(xml, "machine='microvm'"));
  assert_int_equal(count(xml, "<hostdev"), 0);
  assert_int_equal(count(xml, "pcie-root-port"), 0);
  assert_non_null(strstr(xml, "<target dev='vfd1a2b3c4d' managed='no'/>"));
  assert_non_null(strstr(xml, "<mac address='52:54:00:12:34:56'/>"));
  assert_non_null(strstr(xml, "<cid auto='no' address='42'/>"));
  assert_non_null(strstr(xml, "<serial>vfiod-root</serial>\n      <readonly/>"));
  assert_non_null(strstr(xml, "<serial>vfiod-overlay</serial>\n    </disk>"));
  assert_non_null(strstr(xml, "<source type='memfd'/>"));
  assert_non_null(strstr(xml, "<locked/>"));
  assert_non_null(strstr(xml, "<vfiod:name>job&lt;1&gt;&amp;&apos;x&apos;</vfiod:name>"));
  assert_non_null(strstr(xml, "vfiod.note=&quot;a&amp;b&quot;</cmdline>"));
  assert_non_null(strstr(xml, "<vfiod:owner uid='1000'/>"));
  assert_null(strstr(xml, "maxphysaddr")); /* microvm: QEMU's defaults */
}

/* One IOMMU group of two functions (GPU + audio), hugepages, preallocation,
 * NUMA, a 256 GiB window and 42 address bits under KVM. */
static void
test_one_group(void **state)
{
  static const VfdBdf fns[] = { { 0, 0x41, 0, 0 }, { 0, 0x41, 0, 1 } };
  static const guint32 classes[] = { 0x030200, 0x040300 }; /* 3D controller, audio */
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = NULL;

  d.devices = fns;
  d.n_devices = 2;
  d.memory_mib = 65536;
  d.pci_hole64_size = 256ull << 30;
  d.phys_bits = 42;
  d.hugepages = TRUE;
  d.hugepage_kib = 1048576;
  d.prealloc_threads = 8;
  d.numa_node = 1;
  d.disks = root_disks;
  d.n_disks = 1;
  d.device_classes = classes;
  d.present_vendor = 0x10de;
  d.present_device = 0x2335;
  xml = vfd_libvirt_domain_xml(&d);
  expect_valid(xml);
  assert_non_null(strstr(xml, "machine='q35'"));
  assert_int_equal(count(xml, "<hostdev mode='subsystem' type='pci' managed='no'>"), 2);
  assert_int_equal(count(xml, "model='pcie-root-port'"), 2);
  assert_non_null(strstr(xml, "<address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/>"));
  assert_non_null(strstr(xml, "<address domain='0x0000' bus='0x41' slot='0x00' function='0x1'/>"));
  assert_non_null(strstr(xml, "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>"));
  assert_non_null(strstr(xml, "<pcihole64 unit='KiB'>268435456</pcihole64>"));
  assert_non_null(strstr(xml, "<cpu mode='host-passthrough'"));
  assert_non_null(strstr(xml, "<maxphysaddr mode='emulate' bits='42'/>"));
  assert_non_null(strstr(xml, "<page size='1048576' unit='KiB'/>"));
  assert_non_null(strstr(xml, "<allocation mode='immediate' threads='8'/>"));
  assert_non_null(strstr(xml, "<memory mode='strict' nodeset='1'/>"));
  assert_null(strstr(xml, "memfd"));
  assert_null(strstr(xml, "managed='yes'"));
  /* [qemu] test_present_as: the display function only */
  assert_int_equal(count(xml, "<qemu:device alias="), 1);
  assert_non_null(strstr(xml, "<alias name='ua-vfd-hostdev0'/>"));
  assert_non_null(strstr(xml, "<qemu:device alias='ua-vfd-hostdev0'>"));
  assert_non_null(strstr(xml, "<qemu:property name='x-pci-vendor-id' type='unsigned' value='4318'/>"));
  assert_non_null(strstr(xml, "<qemu:property name='x-pci-device-id' type='unsigned' value='9013'/>"));
}

/* Two IOMMU groups (two GPUs), TCG: qemu64 with 40 bits, no window set. */
static void
test_two_groups(void **state)
{
  static const VfdBdf fns[] = { { 0, 0x41, 0, 0 }, { 0, 0x41, 0, 1 }, { 0x0001, 0x81, 0x1f, 0 } };
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = NULL;

  d.kvm = FALSE;
  d.devices = fns;
  d.n_devices = 3;
  d.phys_bits = 40;
  d.tap = "vfd00000001";
  d.cid = 3;
  xml = vfd_libvirt_domain_xml(&d);
  expect_valid(xml);
  assert_int_equal(count(xml, "managed='no'>"), 3);
  assert_int_equal(count(xml, "model='pcie-root-port'"), 3);
  assert_non_null(strstr(xml, "<address domain='0x0001' bus='0x81' slot='0x1f' function='0x0'/>"));
  assert_non_null(strstr(xml, "<model fallback='forbid'>qemu64</model>"));
  assert_non_null(strstr(xml, "<maxphysaddr mode='emulate' bits='40'/>"));
  assert_null(strstr(xml, "pcihole64"));
  assert_null(strstr(xml, "<mac ")); /* none given: libvirt picks */
  assert_null(strstr(xml, "seclabel")); /* not asked: libvirt's own */
  {
    /* [qemu] user=root: said as +0:+0, not left to libvirt's user */
    g_autofree char *root_xml = NULL;
    d.run_as = TRUE;
    root_xml = vfd_libvirt_domain_xml(&d);
    expect_valid(root_xml);
    assert_non_null(strstr(root_xml, "<label>+0:+0</label>"));
  }
  assert_null(strstr(xml, "qemu:override")); /* no test_present_as */
}

/* What the daemon's libvirt backend adds: a CPU-only sandbox on q35 (not
 * microvm), QEMU as the sandbox's uid with nothing relabelled, disks from
 * fd groups, the workload's payload as a fw_cfg file. */
static void
test_daemon_domain(void **state)
{
  static const VfdLibvirtDisk disks[] = {
    { .source = "/run/vfiod/sandboxes/sb-00000001/disk-vfiod-root", .serial = "vfiod-root", .read_only = TRUE,
      .fdgroup = "sb-00000001-vfiod-root" },
    { .source = "/run/vfiod/sandboxes/sb-00000001/disk-vfiod-data0", .serial = "vfiod-data0",
      .fdgroup = "sb-00000001-vfiod-data0" },
  };
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = NULL;

  d.kvm = FALSE;
  d.disks = disks;
  d.n_disks = 2;
  d.run_as = TRUE;
  d.run_uid = 3000042;
  d.run_gid = 998;
  d.fw_cfg_file = "/run/vfiod/sandboxes/sb-00000001/qemu/payload";
  xml = vfd_libvirt_domain_xml(&d);
  expect_valid(xml);
  assert_non_null(strstr(xml, "machine='q35'"));
  assert_int_equal(count(xml, "<hostdev"), 0);
  assert_int_equal(count(xml, "pcie-root-port"), 0);
  assert_non_null(strstr(xml, "<seclabel type='static' model='dac' relabel='no'>\n    <label>+3000042:+998</label>"));
  assert_non_null(strstr(xml, "fdgroup='sb-00000001-vfiod-root'/>"));
  assert_non_null(strstr(xml, "fdgroup='sb-00000001-vfiod-data0'/>"));
  assert_int_equal(count(xml, "<readonly/>"), 1);
  assert_non_null(strstr(xml, "<sysinfo type='fwcfg'>\n    <entry name='opt/org.vfiod/payload' "
                              "file='/run/vfiod/sandboxes/sb-00000001/qemu/payload'/>"));
}

/* Reading a domain's PCI hostdevs back (vfioctl doctor, reconciliation):
 * from vfiod's own XML and from hand-written ones, hostile ones too. */
static void
test_hostdevs(void **state)
{
  static const VfdBdf fns[] = { { 0, 0x41, 0, 0 }, { 0, 0x41, 0, 1 } };
  VfdLibvirtDomain d = base_domain();
  g_autofree char *xml = NULL;
  g_autoptr(GArray) managed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) unmanaged = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  const char *other =
      "<domain type='kvm'><devices>"
      "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0001' bus='0x81' slot='0x1f' "
      "function='0x7'/></source><address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></hostdev>"
      "<hostdev mode='subsystem' type='usb' managed='yes'><source><address bus='1' device='2'/></source></hostdev>"
      "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='0' function='0'/></source>"
      "</hostdev>"
      "<hostdev mode='subsystem' type='pci' managed='yes'><source><address bus='0x100' slot='0' function='0'/>"
      "</source></hostdev>"
      "</devices></domain>";

  d.devices = fns;
  d.n_devices = 2;
  xml = vfd_libvirt_domain_xml(&d);
  assert_true(vfd_libvirt_domain_hostdevs(xml, managed, unmanaged));
  assert_int_equal(managed->len, 0);
  assert_int_equal(unmanaged->len, 2);
  assert_true(vfd_bdf_equal(&g_array_index(unmanaged, VfdBdf, 0), &fns[0]));
  assert_true(vfd_bdf_equal(&g_array_index(unmanaged, VfdBdf, 1), &fns[1]));

  g_array_set_size(unmanaged, 0);
  assert_true(vfd_libvirt_domain_hostdevs(other, managed, unmanaged));
  /* the USB device is not PCI; bus 0x100 is out of range: skipped; the
   * guest-side <address type='pci'> is not the source */
  assert_int_equal(managed->len, 1);
  assert_int_equal(g_array_index(managed, VfdBdf, 0).domain, 1);
  assert_int_equal(g_array_index(managed, VfdBdf, 0).bus, 0x81);
  assert_int_equal(g_array_index(managed, VfdBdf, 0).dev, 0x1f);
  assert_int_equal(g_array_index(managed, VfdBdf, 0).func, 7);
  assert_int_equal(unmanaged->len, 1);
  assert_int_equal(g_array_index(unmanaged, VfdBdf, 0).bus, 3);

  assert_false(vfd_libvirt_domain_hostdevs("<domain><devices><hostdev", NULL, NULL));
  assert_false(vfd_libvirt_domain_hostdevs(NULL, managed, NULL));
  assert_true(vfd_libvirt_domain_hostdevs("<domain/>", NULL, NULL));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_validator_refuses), cmocka_unit_test(test_cpu_only), cmocka_unit_test(test_one_group),
    cmocka_unit_test(test_two_groups), cmocka_unit_test(test_daemon_domain),
    cmocka_unit_test(test_hostdevs),
  };

  validator = g_find_program_in_path("virt-xml-validate");
  if (!validator) {
    printf("# SKIP: virt-xml-validate not found (apt-get install libvirt-clients)\n");
    return 77;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
