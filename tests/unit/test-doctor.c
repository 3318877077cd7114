/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl doctor over fake /sys, /dev and /proc roots. */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "doctor.h"
#include "meminfo.h"

static void
put(const char *root, const char *rel, const char *contents)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);

  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  if (contents)
    assert_true(g_file_set_contents(path, contents, -1, NULL));
  else
    assert_int_equal(g_mkdir_with_parents(path, 0755), 0);
}

static const VfdDoctorCheck *
find(GPtrArray *checks, const char *name)
{
  for (guint i = 0; i < checks->len; i++) {
    const VfdDoctorCheck *c = g_ptr_array_index(checks, i);
    if (g_str_equal(c->name, name))
      return c;
  }
  fail_msg("no check %s", name);
  return NULL;
}

static void
rm_rf(const char *path)
{
  g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

static void
test_good_and_bad_host(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-doctor-XXXXXX", NULL);
  g_autofree char *sys = g_build_filename(root, "sys", NULL);
  g_autofree char *dev = g_build_filename(root, "dev", NULL);
  g_autofree char *proc = g_build_filename(root, "proc", NULL);
  g_autofree char *qemu = g_build_filename(root, "qemu", NULL);
  g_autofree char *pins = g_build_filename(root, "pins.env", NULL);
  g_autofree char *bad_pins = g_build_filename(root, "bad.env", NULL);
  VfdDoctorOptions o = { .sys_root = sys, .dev_root = dev, .proc_root = proc, .qemu_binary = qemu,
                         .pins_file = pins };

  /* A bare host: no IOMMU, no vfio-pci, no hugepages, no vsock, no QEMU. */
  put(root, "sys/kernel/x", "");
  put(root, "proc/meminfo", "MemTotal: 1000 kB\nHugePages_Total:       0\n");
  put(root, "dev/null-ish", "");
  put(root, "pins.env", "GUEST_KERNEL_RELEASE=6.1.0-56-amd64\n");
  put(root, "bad.env", "GUEST KERNEL=x\n");
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "iommu")->status, VFD_DOCTOR_FAIL);
    assert_non_null(strstr(find(c, "iommu")->detail, "intel_iommu=on"));
    assert_int_equal(find(c, "vfio-pci")->status, VFD_DOCTOR_FAIL);
    assert_int_equal(find(c, "hugepages")->status, VFD_DOCTOR_WARN);
    assert_int_equal(find(c, "vhost-vsock")->status, VFD_DOCTOR_WARN);
    assert_int_equal(find(c, "qemu")->status, VFD_DOCTOR_FAIL);
    assert_int_equal(find(c, "kvm")->status, VFD_DOCTOR_WARN);
    assert_int_equal(find(c, "pins")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "pins")->detail, "6.1.0-56-amd64"));
  }

  /* A ready host. */
  put(root, "sys/kernel/iommu_groups/0", NULL);
  put(root, "sys/kernel/iommu_groups/1", NULL);
  put(root, "sys/bus/pci/drivers/vfio-pci", NULL);
  put(root, "proc/meminfo", "MemTotal: 1000 kB\nHugePages_Total:      64\nHugePages_Free:       60\nHugepagesize:    2048 kB\n");
  put(root, "dev/vhost-vsock", "");
  put(root, "qemu", "#!/bin/sh\necho 'QEMU emulator version 8.2.1 (Debian)'\n");
  g_chmod(qemu, 0755);
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "iommu")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "iommu")->detail, "2 IOMMU groups"));
    assert_int_equal(find(c, "vfio-pci")->status, VFD_DOCTOR_OK);
    assert_int_equal(find(c, "hugepages")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "hugepages")->detail, "60 of 64"));
    assert_int_equal(find(c, "vhost-vsock")->status, VFD_DOCTOR_OK);
    assert_int_equal(find(c, "qemu")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "qemu")->detail, "8.2"));
  }

  /* An old QEMU warns; a malformed pins file fails, naming the file. */
  put(root, "qemu", "#!/bin/sh\necho 'QEMU emulator version 6.2.0'\n");
  g_chmod(qemu, 0755); /* the rewrite replaced the file */
  o.pins_file = bad_pins;
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "qemu")->status, VFD_DOCTOR_WARN);
    assert_int_equal(find(c, "pins")->status, VFD_DOCTOR_FAIL);
    assert_non_null(strstr(find(c, "pins")->detail, "bad.env"));
  }
  rm_rf(root);
}

/* The default guest image (vfioctl image build): missing, complete with a
 * driver layer, without one, and incomplete. */
static void
test_image(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-doctor-XXXXXX", NULL);
  g_autofree char *dir = g_build_filename(root, "image", NULL);
  g_autofree char *layer = g_build_filename(dir, "driver-layer.erofs", NULL);
  VfdDoctorOptions o = { .sys_root = root, .dev_root = root, .proc_root = root, .qemu_binary = "/nonexistent",
                         .image_dir = dir };
  const char *gpu_json = "{\"format\":1,\"key\":\"0123456789abcdef\",\"gpu\":true,"
                         "\"kernel\":{\"release\":\"6.1.0-57-amd64\"},\"initramfs\":{\"stamp\":\"s\"},"
                         "\"driver_layer\":{\"driver_version\":\"550.163.01\"}}";

  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "image")->status, VFD_DOCTOR_WARN);
    assert_non_null(strstr(find(c, "image")->detail, "no guest image in"));
    assert_non_null(strstr(find(c, "image")->detail, "vfioctl image build --gpu --output"));
  }
  put(root, "image/image.json", gpu_json);
  put(root, "image/vmlinuz", "k");
  put(root, "image/initramfs", "i");
  put(root, "image/driver-layer.erofs", "l");
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "image")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "image")->detail, "kernel 6.1.0-57-amd64, NVIDIA driver layer 550.163.01"));
  }
  g_unlink(layer);
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "image")->status, VFD_DOCTOR_WARN);
    assert_non_null(strstr(find(c, "image")->detail, "incomplete (missing: driver-layer.erofs)"));
  }
  put(root, "image/image.json", "{\"format\":1,\"key\":\"k\",\"kernel\":{\"release\":\"r\"},"
                                "\"initramfs\":{},\"driver_layer\":null}");
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "image")->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(find(c, "image")->detail, "no NVIDIA driver layer"));
  }
  put(root, "image/image.json", "not json");
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_int_equal(find(c, "image")->status, VFD_DOCTOR_WARN);
    assert_non_null(strstr(find(c, "image")->detail, "is not an image description"));
  }
  o.image_dir = NULL;
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    for (guint i = 0; i < c->len; i++)
      assert_string_not_equal(((VfdDoctorCheck *) g_ptr_array_index(c, i))->name, "image");
  }
  rm_rf(root);
}

/* vfd_meminfo_read() (GetCapabilities and the hugepages check): reads
 * <proc_root>/meminfo, not the host's; whole keys only, at any line; a key
 * that is absent reads 0; an unreadable file is FALSE with all 0. */
static void
test_meminfo(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-meminfo-XXXXXX", NULL);
  g_autofree char *proc = g_build_filename(root, "proc", NULL);
  VfdMeminfo mi;

  put(root, "proc/meminfo",
      "MemTotalX:    7 kB\nMemTotal:     2048000 kB\nHugePages_Total:      64\nHugePages_Free:       60\n");
  assert_true(vfd_meminfo_read(proc, &mi));
  assert_int_equal(mi.mem_total_kib, 2048000);
  assert_int_equal(mi.hugepages_total, 64);
  assert_int_equal(mi.hugepages_free, 60);
  assert_int_equal(mi.hugepage_kib, 0);

  put(root, "proc/meminfo", "Hugepagesize:    1048576 kB\n");
  assert_true(vfd_meminfo_read(proc, &mi));
  assert_int_equal(mi.hugepage_kib, 1048576);
  assert_int_equal(mi.mem_total_kib, 0);

  rm_rf(proc);
  mi.hugepages_total = 1;
  assert_false(vfd_meminfo_read(proc, &mi));
  assert_int_equal(mi.hugepages_total, 0);
  assert_int_equal(mi.hugepage_kib, 0);
  rm_rf(root);
}

/* Check "libvirt" against libvirt's in-process test driver (test:///FILE:
 * no daemon): a domain with a PCI <hostdev managed='yes'> is named with
 * that device (not the managed='no' one's), a host of domains without one
 * is OK with their count, no libvirt at the URI is OK and says so. */
static void
test_libvirt(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-doctor-lv-XXXXXX", NULL);
  g_autofree char *fighting = g_build_filename(root, "fighting.xml", NULL);
  g_autofree char *calm = g_build_filename(root, "calm.xml", NULL);
  g_autofree char *uri1 = g_strconcat("test://", fighting, NULL);
  g_autofree char *uri2 = g_strconcat("test://", calm, NULL);
  static const char dom_head[] = "<domain type='test'><memory>1048576</memory><os><type>hvm</type></os>";
  g_autofree char *xml1 = g_strconcat(
      "<node>", dom_head, "<name>gpu-vm</name><devices>",
      "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x41' slot='0x00' "
      "function='0x1'/></source></hostdev>",
      "<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x02' slot='0x00' "
      "function='0x0'/></source></hostdev>",
      "</devices></domain>", dom_head, "<name>plain</name></domain></node>", NULL);
  g_autofree char *xml2 = g_strconcat("<node>", dom_head, "<name>a</name></domain>", dom_head,
                                      "<name>b</name><devices><hostdev mode='subsystem' type='pci' managed='no'><source>"
                                      "<address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source>"
                                      "</hostdev></devices></domain></node>",
                                      NULL);
  VfdDoctorOptions o = { .sys_root = root, .dev_root = root, .proc_root = root, .qemu_binary = "/nonexistent" };
  const VfdDoctorCheck *c;

  assert_true(g_file_set_contents(fighting, xml1, -1, NULL));
  assert_true(g_file_set_contents(calm, xml2, -1, NULL));
  {
    g_autoptr(GPtrArray) checks = NULL;
    o.libvirt_uri = uri1;
    checks = vfd_doctor_run(&o);
    c = find(checks, "libvirt");
    assert_int_equal(c->status, VFD_DOCTOR_WARN);
    assert_non_null(strstr(c->detail, "'gpu-vm' (0000:41:00.1)"));
    assert_null(strstr(c->detail, "0000:02:00.0"));
    assert_null(strstr(c->detail, "plain"));
  }
  {
    g_autoptr(GPtrArray) checks = NULL;
    o.libvirt_uri = uri2;
    checks = vfd_doctor_run(&o);
    c = find(checks, "libvirt");
    assert_int_equal(c->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(c->detail, "2 domain(s), none with a PCI device libvirt manages itself"));
  }
  {
    g_autoptr(GPtrArray) checks = NULL;
    g_autofree char *nowhere = g_strdup_printf("qemu+unix:///system?socket=%s/no-such.sock", root);
    o.libvirt_uri = nowhere;
    checks = vfd_doctor_run(&o);
    c = find(checks, "libvirt");
    assert_int_equal(c->status, VFD_DOCTOR_OK);
    assert_non_null(strstr(c->detail, "no libvirt answers at"));
  }
  {
    g_autoptr(GPtrArray) checks = NULL;
    o.libvirt_uri = NULL;
    checks = vfd_doctor_run(&o);
    for (guint i = 0; i < checks->len; i++)
      assert_string_not_equal(((VfdDoctorCheck *) g_ptr_array_index(checks, i))->name, "libvirt");
  }
  rm_rf(root);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_good_and_bad_host),
    cmocka_unit_test(test_image),
    cmocka_unit_test(test_meminfo),
    cmocka_unit_test(test_libvirt),
  };
  return cmocka_run_group_tests_name("doctor", tests, NULL, NULL);
}
