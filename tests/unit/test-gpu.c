/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Real GPUs over the fake kernel (issue 12): BARs from sysfs `resource` on
 * boards modelled on real ones (H100 80GB PCIe; 8x H200 SXM + 4 NVSwitches
 * on an HGX board; L40S with its audio function), the guest address space
 * and the exact Q35 arguments vfiod derives from them, the refusals, the
 * NO_BUS_RESET table, reset and D3cold on bind/release, bridges vs
 * NVSwitches, HGX partitions. */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "device.h"
#include "doctor.h"
#include "error.h"
#include "fake-sysfs.h"
#include "host-fixture.h"
#include "qemu-argv.h"

#define MIB (G_GUINT64_CONSTANT(1) << 20)
#define GIB (G_GUINT64_CONSTANT(1) << 30)
#define TIB (G_GUINT64_CONSTANT(1) << 40)

/* NVIDIA device IDs used below. */
#define H100_PCIE 0x2331
#define H200_SXM 0x2335
#define L40S 0x26b9
#define L40S_AUDIO 0x22ba
#define NVSWITCH 0x22a3

typedef HostFixture Fixture;

/* The default ids and @classes. */
static VfdHost *
open_host(Fixture *f, const char *classes)
{
  return host_fixture_open(f, VFD_POLICY_DEFAULT_IDS, classes);
}

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);

  f->fs = fake_sysfs_new();
  fake_sysfs_add_driver(f->fs, "vfio-pci");
  fake_sysfs_add_driver(f->fs, "pcieport");
  f->state_dir = g_dir_make_tmp("vfiod-test-gpu-XXXXXX", NULL);
  assert_non_null(f->state_dir);
  /* The default rules plus NVSwitches (an HGX operator's config). */
  f->host = open_host(f, VFD_POLICY_DEFAULT_CLASSES ";0680");
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  host_fixture_free(*state);
  return 0;
}

static GArray *
bdf_array(const char *const *names)
{
  GArray *a = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  for (const char *const *n = names; *n; n++) {
    VfdBdf b = test_bdf(*n);
    g_array_append_val(a, b);
  }
  return a;
}

/* ---- boards ---------------------------------------------------------------- */

/* A GPU as the kernel shows it: BAR0 16 MiB 32-bit non-prefetchable
 * registers, BAR1 (@bar1) and BAR3 32 MiB 64-bit prefetchable, each 64-bit
 * BAR followed by the zero line of its upper half. */
static void
add_gpu(FakeSysfs *fs, const char *b, guint16 device, int group, guint64 bar0, guint64 bar1_at, guint64 bar1)
{
  fake_sysfs_add_device(fs, b, 0x10de, device, 0x030200, group, "nvidia", "nvidia");
  fake_sysfs_set_bar(fs, b, 0, bar0, 16 * MIB, FAKE_BAR_MEM32);
  fake_sysfs_set_bar(fs, b, 1, bar1_at, bar1, FAKE_BAR_MEM64_PREF);
  fake_sysfs_set_bar(fs, b, 3, bar1_at + bar1, 32 * MIB, FAKE_BAR_MEM64_PREF);
}

/* H100 80GB PCIe (10de:2331) behind its own root port (group 40). */
static void
add_h100(FakeSysfs *fs)
{
  fake_sysfs_add_device(fs, "0000:40:01.0", 0x8086, 0x352a, 0x060400, 40, "pcieport", "pcieport");
  add_gpu(fs, "0000:41:00.0", H100_PCIE, 40, 0xa2000000, 0x22000000000, 128 * GIB);
}

static const char *const h200_gpus[] = { "0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                         "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0", NULL };
static const char *const hgx_switches[] = { "0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0", NULL };

/* An HGX H200 board: 8 H200 SXM (10de:2335, BAR1 256 GiB), each in its own
 * IOMMU group (10-17), and 4 NVSwitches (10de:22a3, class 0680, BAR0
 * 32 MiB) in groups 20-23, each behind a PCIe switch port (0604, shares
 * the group: must not be taken for a function). */
static void
add_hgx_h200(FakeSysfs *fs)
{
  for (guint i = 0; h200_gpus[i]; i++)
    add_gpu(fs, h200_gpus[i], H200_SXM, 10 + (int) i, 0xa0000000 + i * 0x2000000,
            0x40000000000 + i * 0x10000000000ULL, 256 * GIB);
  for (guint i = 0; hgx_switches[i]; i++) {
    g_autofree char *port = g_strdup_printf("0000:04:%02x.0", i);
    fake_sysfs_add_device(fs, port, 0x1000, 0xc010, 0x060400, 20 + (int) i, "pcieport", "pcieport");
    fake_sysfs_add_device(fs, hgx_switches[i], 0x10de, NVSWITCH, 0x068000, 20 + (int) i, NULL, "nvidia");
    fake_sysfs_set_bar(fs, hgx_switches[i], 0, 0x90000000 + i * 0x2000000, 32 * MIB, FAKE_BAR_MEM32);
  }
}

/* L40S (10de:26b9, BAR1 64 GiB) and its HD audio function (group 50). */
static void
add_l40s(FakeSysfs *fs, const char *gpu, const char *audio, int group, guint64 bar1_at)
{
  add_gpu(fs, gpu, L40S, group, 0xb0000000, bar1_at, 64 * GIB);
  fake_sysfs_add_device(fs, audio, 0x10de, L40S_AUDIO, 0x040300, group, "snd_hda_intel", "snd_hda_intel");
  fake_sysfs_set_bar(fs, audio, 0, 0xb1000000, 16 * 1024, FAKE_BAR_MEM32);
}

static const VfdHostCpu intel_46 = { .phys_bits = 46 };

static int
argv_index(GStrv argv, const char *s)
{
  for (int i = 0; argv[i]; i++)
    if (g_str_equal(argv[i], s))
      return i;
  return -1;
}

/* The Q35 command line for @functions with @plan. */
static GStrv
q35_argv(GArray *functions, const VfdAddressPlan *plan, const char *accel, guint memory_mib, gboolean nocrs)
{
  VfdQemuConfig c = {
    .id = "sb-00000012", .qemu_binary = "qemu-system-x86_64", .accel = accel, .memory_mib = memory_mib,
    .vcpus = 2, .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/s", .qmp_socket = "/q",
    .devices = (const VfdBdf *) (void *) functions->data, .n_devices = functions->len,
    .pci_hole64_size = plan->pci_hole64_size, .phys_bits = plan->phys_bits, .pci_nocrs = nocrs,
  };
  return vfd_qemu_build_argv(&c);
}

static void
assert_arg_after(GStrv argv, const char *opt, const char *expected)
{
  int i = argv_index(argv, opt);
  if (i < 0)
    fail_msg("no %s argument", opt);
  assert_string_equal(argv[i + 1], expected);
}

/* ---- sysfs `resource` ------------------------------------------------------ */

static void
test_resource_parse(void **state)
{
  VfdPciBar bars[VFD_PCI_NUM_BARS];
  /* An H100 as lspci -v would show it: BAR0 32-bit, BAR1 and BAR3 64-bit
   * prefetchable (their upper halves zero), then the ROM and VF BARs. */
  const char *h100 = "0x00000000a2000000 0x00000000a2ffffff 0x0000000000040200\n"
                     "0x0000022000000000 0x0000023fffffffff 0x000000000014220c\n"
                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                     "0x0000024000000000 0x0000024001ffffff 0x000000000014220c\n"
                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
                     "0x00000000a3000000 0x00000000a307ffff 0x0000000000046200\n"
                     "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";

  assert_int_equal(vfd_pci_resource_parse(h100, bars), 0);
  assert_int_equal(bars[0].size, 16 * MIB);
  assert_false(vfd_pci_bar_is_prefetch64(&bars[0]));
  assert_int_equal(bars[1].start, 0x22000000000);
  assert_int_equal(bars[1].size, 128 * GIB);
  assert_true(vfd_pci_bar_is_prefetch64(&bars[1]));
  assert_int_equal(bars[2].size, 0);
  assert_int_equal(bars[3].size, 32 * MIB);
  assert_true(vfd_pci_bar_is_prefetch64(&bars[3]));
  assert_int_equal(bars[5].size, 0);
  /* 128 GiB + 32 MiB behind one root port: a 256 GiB window (aligned to
   * BAR1). The ROM (line 6) never counts. */
  assert_int_equal(vfd_pci_function_window(bars), 256 * GIB);

  /* Malformed: fewer than 6 lines, not hex, end before start, junk after. */
  assert_int_equal(vfd_pci_resource_parse("0x0 0x0 0x0\n", bars), -EINVAL);
  assert_int_equal(vfd_pci_resource_parse(NULL, bars), -EINVAL);
  {
    g_autofree char *bad = g_strdup(h100);
    bad[3] = 'x';
    assert_int_equal(vfd_pci_resource_parse(bad, bars), -EINVAL);
  }
  assert_int_equal(vfd_pci_resource_parse("0x10 0x0f 0x200\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n", bars), -EINVAL);
  assert_int_equal(vfd_pci_resource_parse("0x0 0x0 0x0 0x0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n", bars), -EINVAL);
  assert_int_equal(vfd_pci_resource_parse("-1 0x0 0x0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n", bars), -EINVAL);
  /* A 64-bit non-prefetchable BAR does not go in the 64-bit window. */
  assert_int_equal(
      vfd_pci_resource_parse("0x100000000 0x1ffffffff 0x140204\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n0 0 0\n", bars), 0);
  assert_int_equal(bars[0].size, 4 * GIB);
  assert_int_equal(vfd_pci_function_window(bars), 0);
}

static void
test_board_windows(void **state)
{
  Fixture *f = *state;
  const struct {
    const char *bdf;
    guint64 window;
  } expect[] = {
    { "0000:41:00.0", 256 * GIB }, /* H100: 128 GiB + 32 MiB */
    { "0000:18:00.0", 512 * GIB }, /* H200: 256 GiB + 32 MiB */
    { "0000:05:00.0", 0 },         /* NVSwitch: BAR0 32-bit only */
    { "0000:c1:00.0", 128 * GIB }, /* L40S: 64 GiB + 32 MiB */
    { "0000:c1:00.1", 0 },         /* its audio function */
  };

  add_h100(f->fs);
  add_hgx_h200(f->fs);
  add_l40s(f->fs, "0000:c1:00.0", "0000:c1:00.1", 50, 0x30000000000);
  for (guint i = 0; i < G_N_ELEMENTS(expect); i++) {
    VfdPciBar bars[VFD_PCI_NUM_BARS];
    VfdBdf b = test_bdf(expect[i].bdf);
    assert_int_equal(vfd_sysfs_read_bars(vfd_host_sysfs(f->host), &b, bars), 0);
    if (vfd_pci_function_window(bars) != expect[i].window)
      fail_msg("%s: window %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, expect[i].bdf,
               vfd_pci_function_window(bars), expect[i].window);
  }
  {
    VfdPciBar bars[VFD_PCI_NUM_BARS];
    VfdBdf none = test_bdf("0000:ee:00.0");
    assert_int_equal(vfd_sysfs_read_bars(vfd_host_sysfs(f->host), &none, bars), -ENOENT);
  }
}

/* ---- host CPU ---------------------------------------------------------------- */

static void
test_cpuinfo(void **state)
{
  VfdHostCpu cpu = { 0 };
  g_autofree char *root = g_dir_make_tmp("vfiod-test-proc-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(root, "cpuinfo", NULL);
  const char *intel = "processor\t: 0\nvendor_id\t: GenuineIntel\n"
                      "flags\t\t: fpu vme de pse avx avx2 avx512f\n"
                      "address sizes\t: 46 bits physical, 57 bits virtual\n\n"
                      "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: la57\n"
                      "address sizes\t: 52 bits physical, 57 bits virtual\n\n";
  const char *amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 la57 sev\n"
                    "address sizes\t: 52 bits physical, 57 bits virtual\n";

  /* Only the first processor's block counts. */
  assert_int_equal(vfd_host_cpu_parse(intel, &cpu), 0);
  assert_int_equal(cpu.phys_bits, 46);
  assert_false(cpu.la57);
  assert_false(cpu.amd);
  assert_int_equal(vfd_host_cpu_parse(amd, &cpu), 0);
  assert_int_equal(cpu.phys_bits, 52);
  assert_true(cpu.la57);
  assert_true(cpu.amd);
  assert_int_equal(vfd_host_cpu_parse("processor: 0\nflags: la57\n", &cpu), -EINVAL);
  assert_int_equal(vfd_host_cpu_parse("address sizes: lots\n", &cpu), -EINVAL);
  assert_int_equal(vfd_host_cpu_read(root, &cpu), -ENOENT);
  assert_true(g_file_set_contents(path, intel, -1, NULL));
  assert_int_equal(vfd_host_cpu_read(root, &cpu), 0);
  assert_int_equal(cpu.phys_bits, 46);
  g_unlink(path);
  g_rmdir(root);
}

/* ---- address plans and the Q35 command line --------------------------------- */

/* One H100 80GB PCIe, 16 GiB of RAM: RAM above 4 GiB ends at 18 GiB; the
 * 256 GiB window goes at 256 GiB, virtio's small BARs after it: 40 bits. */
static void
test_h100_argv(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) requested = NULL;
  g_autoptr(GArray) functions = NULL;
  g_auto(GStrv) kvm = NULL;
  g_auto(GStrv) tcg = NULL;
  VfdAddressPlan plan = { 0 };
  const char *const h100[] = { "0000:41:00.0", NULL };

  add_h100(f->fs);
  requested = bdf_array(h100);
  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, requested, 0, 16384, "kvm", &intel_46, &functions, &plan, &error));
  assert_int_equal(functions->len, 1); /* the root port is not passed */
  assert_int_equal(plan.window_bytes, 256 * GIB);
  assert_int_equal(plan.pci_hole64_size, 256 * GIB);
  assert_int_equal(plan.top, 513 * GIB);
  assert_int_equal(plan.needed_bits, 40);
  assert_int_equal(plan.phys_bits, 40);

  kvm = q35_argv(functions, &plan, "kvm", 16384, FALSE);
  assert_arg_after(kvm, "-cpu", "host,host-phys-bits=on,host-phys-bits-limit=40");
  assert_arg_after(kvm, "-global", "q35-pcihost.pci-hole64-size=256G");
  assert_arg_after(kvm, "-M", "q35,memory-backend=mem");
  assert_non_null(strstr(kvm[argv_index(kvm, "-append") + 1], " pci=realloc "));
  assert_null(strstr(kvm[argv_index(kvm, "-append") + 1], "pci=nocrs"));
  assert_string_equal(kvm[argv_index(kvm, "pcie-root-port,id=rp0,chassis=1,slot=0") + 2],
                      "vfio-pci,host=0000:41:00.0,bus=rp0");

  /* TCG: the same layout (below AMD's HyperTransport hole), QEMU's default
   * CPU with an explicit width; pci=nocrs when configured. */
  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, requested, 0, 16384, "tcg", &intel_46, &functions, &plan, &error));
  tcg = q35_argv(functions, &plan, "tcg", 16384, TRUE);
  assert_arg_after(tcg, "-cpu", "qemu64,phys-bits=40");
  assert_arg_after(tcg, "-global", "q35-pcihost.pci-hole64-size=256G");
  assert_non_null(strstr(tcg[argv_index(tcg, "-append") + 1], " pci=realloc pci=nocrs "));
}

/* L40S with its audio function, 8 GiB: both functions passed (one IOMMU
 * group), the window 128 GiB from the GPU alone. */
static void
test_l40s_argv(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) requested = NULL;
  g_autoptr(GArray) functions = NULL;
  g_auto(GStrv) argv = NULL;
  VfdAddressPlan plan = { 0 };
  const char *const gpu[] = { "0000:c1:00.0", NULL };
  int i;

  add_l40s(f->fs, "0000:c1:00.0", "0000:c1:00.1", 50, 0x30000000000);
  requested = bdf_array(gpu);
  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, requested, 0, 8192, "tcg", &intel_46, &functions, &plan, &error));
  assert_int_equal(functions->len, 2);
  assert_int_equal(plan.window_bytes, 128 * GIB);
  assert_int_equal(plan.pci_hole64_size, 128 * GIB);
  assert_int_equal(plan.top, 257 * GIB); /* window at 128 GiB */
  assert_int_equal(plan.phys_bits, 40);
  argv = q35_argv(functions, &plan, "tcg", 8192, FALSE);
  assert_arg_after(argv, "-cpu", "qemu64,phys-bits=40");
  assert_arg_after(argv, "-global", "q35-pcihost.pci-hole64-size=128G");
  i = argv_index(argv, "pcie-root-port,id=rp1,chassis=2,slot=1");
  assert_true(i > 0);
  assert_string_equal(argv[i + 2], "vfio-pci,host=0000:c1:00.1,bus=rp1");

  /* 512 MiB: all RAM below 4 GiB, the hole from 4 GiB. */
  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, requested, 0, 512, "tcg", &intel_46, &functions, &plan, &error));
  assert_int_equal(plan.pci_hole64_size, 128 * GIB);
  assert_int_equal(plan.top, 257 * GIB);
}

/* Small BARs (a lab stand-in, a NIC-sized BAR): QEMU's 32 GiB default hole
 * holds them, no -global; the width is still explicit. */
static void
test_small_bars_keep_default_hole(void **state)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  g_autoptr(GArray) functions = bdf_array((const char *const[]){ "0000:00:04.0", NULL });
  const guint64 windows[] = { 256 * MIB, 0 };
  VfdAddressPlan plan = { 0 };

  assert_true(vfd_qemu_address_plan(512, windows, 2, "tcg", &intel_46, &plan, &error));
  assert_int_equal(plan.window_bytes, 256 * MIB);
  assert_int_equal(plan.pci_hole64_size, 0);
  assert_int_equal(plan.top, 37 * GIB); /* 4 GiB + QEMU's 32 GiB + 1 GiB */
  assert_int_equal(plan.phys_bits, 40);
  argv = q35_argv(functions, &plan, "tcg", 512, FALSE);
  assert_arg_after(argv, "-cpu", "qemu64,phys-bits=40");
  assert_int_equal(argv_index(argv, "-global"), -1);
  g_strfreev(argv);
  argv = q35_argv(functions, &plan, "kvm", 512, FALSE);
  assert_arg_after(argv, "-cpu", "host,host-phys-bits=on,host-phys-bits-limit=40");
}

/* 8x H200 SXM + 4 NVSwitches, 1 TiB of RAM: "gpus": 8 picks the GPUs (never
 * an NVSwitch), the plan adds the NVSwitches; windows 8 x 512 GiB = 4 TiB. */
static void
test_hgx_full_passthrough(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) picked = NULL;
  g_autoptr(GArray) functions = NULL;
  g_auto(GStrv) argv = NULL;
  VfdAddressPlan plan = { 0 };
  const VfdHostCpu amd_52 = { .phys_bits = 52, .amd = TRUE };
  const VfdHostCpu intel_42 = { .phys_bits = 42 };
  int node = -2;

  add_hgx_h200(f->fs);
  assert_int_equal(vfd_host_count_free_units(f->host, &error), 8);
  assert_true(vfd_host_select_units(f->host, 8, &picked, &node, &error));
  assert_int_equal(picked->len, 8);
  for (guint i = 0; i < 8; i++) {
    VfdBdf want = test_bdf(h200_gpus[i]);
    assert_true(vfd_bdf_equal(&g_array_index(picked, VfdBdf, i), &want));
  }

  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, picked, 8, 1024 * 1024, "kvm", &intel_46, &functions, &plan,
                                       &error));
  assert_int_equal(picked->len, 12); /* + the NVSwitches, to be bound */
  assert_int_equal(functions->len, 12);
  assert_int_equal(plan.window_bytes, 4 * TIB);
  /* RAM above 4 GiB ends at 1026 GiB; the window at 4 TiB, virtio's BARs
   * after it: 8 TiB + 1 GiB, 44 bits. */
  assert_int_equal(plan.pci_hole64_size, 4 * TIB);
  assert_int_equal(plan.top, 8 * TIB + GIB);
  assert_int_equal(plan.phys_bits, 44);
  argv = q35_argv(functions, &plan, "kvm", 1024 * 1024, FALSE);
  assert_arg_after(argv, "-cpu", "host,host-phys-bits=on,host-phys-bits-limit=44");
  assert_arg_after(argv, "-global", "q35-pcihost.pci-hole64-size=4096G");
  assert_string_equal(argv[argv_index(argv, "pcie-root-port,id=rp0,chassis=1,slot=0") + 2],
                      "vfio-pci,host=0000:05:00.0,bus=rp0"); /* an NVSwitch, by BDF order */

  /* An AMD host: the hole reaches 1012 GiB, so QEMU moves RAM above 4 GiB
   * to 1 TiB (ends at 2046 GiB); the window still goes at 4 TiB. */
  g_clear_pointer(&functions, g_array_unref);
  assert_true(vfd_sandbox_plan_devices(f->host, picked, 8, 1024 * 1024, "kvm", &amd_52, &functions, &plan,
                                       &error));
  assert_int_equal(plan.pci_hole64_size, 4 * TIB);
  assert_int_equal(plan.top, 8 * TIB + GIB);
  assert_int_equal(plan.phys_bits, 44);

  /* Without 0680 in the rules the NVSwitches are refused up front, with
   * the fix. */
  {
    VfdHost *strict = open_host(f, VFD_POLICY_DEFAULT_CLASSES);
    g_clear_pointer(&functions, g_array_unref);
    assert_false(vfd_sandbox_plan_devices(strict, picked, 8, 1024 * 1024, "kvm", &intel_46, &functions, &plan,
                                          &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
    assert_non_null(strstr(error->message, "0000:05:00.0 (10de:22a3, class 068000) may not be passed"));
    assert_non_null(strstr(error->message, "add 0680 to [devices] classes"));
    g_clear_error(&error);
    vfd_host_free(strict);
  }

  /* A host with 42 address bits cannot hold it: refused, saying why. */
  g_clear_pointer(&functions, g_array_unref);
  assert_false(vfd_sandbox_plan_devices(f->host, picked, 8, 1024 * 1024, "kvm", &intel_42, &functions, &plan,
                                        &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "4 TiB PCI window"));
  assert_non_null(strstr(error->message, "44 physical address bits"));
  assert_non_null(strstr(error->message, "the host's CPU has 42"));
  g_clear_error(&error);
  assert_int_equal(fake_sysfs_write_count(f->fs), 0); /* planning writes nothing */
}

static void
test_hgx_partitions(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devs = NULL;
  g_autoptr(VfdHgxBoard) board = NULL;
  g_autoptr(GArray) functions = NULL;
  VfdAddressPlan plan = { 0 };

  /* No NVSwitch: no HGX board. */
  add_h100(f->fs);
  devs = vfd_host_enumerate(f->host, &error);
  assert_null(vfd_hgx_board_find(devs));
  g_clear_pointer(&devs, g_ptr_array_unref);

  add_hgx_h200(f->fs);
  devs = vfd_host_enumerate(f->host, &error);
  board = vfd_hgx_board_find(devs);
  assert_non_null(board);
  /* The H100 on the same host counts as a board GPU too (documented). */
  assert_int_equal(board->gpus->len, 9);
  assert_int_equal(board->nvswitches->len, 4);
  g_clear_pointer(&board, vfd_hgx_board_free);
  fake_sysfs_remove_device(f->fs, "0000:41:00.0");
  fake_sysfs_remove_device(f->fs, "0000:40:01.0");
  g_clear_pointer(&devs, g_ptr_array_unref);
  devs = vfd_host_enumerate(f->host, &error);
  board = vfd_hgx_board_find(devs);
  assert_int_equal(board->gpus->len, 8);

  {
    /* 1 GPU: supported; its 512 GiB window at 512 GiB: 41 bits. */
    g_autoptr(GArray) one = bdf_array((const char *const[]){ "0000:3a:00.0", NULL });
    assert_true(vfd_hgx_check_partition(board, one, &error));
    g_clear_pointer(&functions, g_array_unref);
    assert_true(vfd_sandbox_plan_devices(f->host, one, 0, 16384, "tcg", &intel_46, &functions, &plan, &error));
    assert_int_equal(plan.window_bytes, 512 * GIB);
    assert_int_equal(plan.pci_hole64_size, 512 * GIB);
    assert_int_equal(plan.top, 1025 * GIB);
    assert_int_equal(plan.phys_bits, 41);
    g_clear_pointer(&functions, g_array_unref);
  }
  {
    /* 2 GPUs: refused, naming them and what is supported. */
    g_autoptr(GArray) two = bdf_array((const char *const[]){ "0000:18:00.0", "0000:2a:00.0", NULL });
    g_clear_pointer(&functions, g_array_unref);
    assert_false(vfd_sandbox_plan_devices(f->host, two, 0, 16384, "kvm", &intel_46, &functions, &plan, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
    assert_non_null(strstr(error->message, "HGX board (8 GPUs, 4 NVSwitches)"));
    assert_non_null(strstr(error->message, "asked for 2 GPU(s) and 0 NVSwitch(es) (0000:18:00.0, 0000:2a:00.0)"));
    assert_non_null(strstr(error->message, "shared NVSwitch"));
    g_clear_error(&error);
  }
  {
    /* All 8 GPUs named without their NVSwitches: refused (only "gpus": 8
     * adds them). */
    g_autoptr(GArray) eight = bdf_array(h200_gpus);
    g_clear_pointer(&functions, g_array_unref);
    assert_false(vfd_sandbox_plan_devices(f->host, eight, 0, 16384, "kvm", &intel_46, &functions, &plan, &error));
    assert_non_null(strstr(error->message, "asked for 8 GPU(s) and 0 NVSwitch(es)"));
    g_clear_error(&error);
    assert_int_equal(eight->len, 8);
  }
  {
    /* An NVSwitch alone: refused. */
    g_autoptr(GArray) sw = bdf_array((const char *const[]){ "0000:06:00.0", NULL });
    assert_false(vfd_hgx_check_partition(board, sw, &error));
    assert_non_null(strstr(error->message, "asked for 0 GPU(s) and 1 NVSwitch(es) (0000:06:00.0)"));
    g_clear_error(&error);
  }
  {
    /* Everything: supported. */
    g_autoptr(GArray) all = bdf_array(h200_gpus);
    g_array_append_vals(all, board->nvswitches->data, board->nvswitches->len);
    assert_true(vfd_hgx_check_partition(board, all, &error));
  }
  assert_int_equal(fake_sysfs_write_count(f->fs), 0);
}

static void
test_address_refusals(void **state)
{
  g_autoptr(GError) error = NULL;
  VfdAddressPlan plan = { 0 };
  const guint64 huge[] = { G_GUINT64_CONSTANT(1) << 48 }; /* 256 TiB */
  const guint64 two_l40s[] = { 128 * GIB, 128 * GIB };
  const VfdHostCpu no_la57 = { .phys_bits = 52 };
  const VfdHostCpu la57 = { .phys_bits = 52, .la57 = TRUE };
  const VfdHostCpu small = { .phys_bits = 39 };
  const VfdHostCpu just = { .phys_bits = 40 };
  const VfdHostCpu unknown = { 0 };

  /* Past 48 bits without 5-level paging. */
  assert_false(vfd_qemu_address_plan(512, huge, 1, "kvm", &no_la57, &plan, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "50 physical address bits"));
  assert_non_null(strstr(error->message, "more than the 48 a guest with 4-level paging can map"));
  assert_non_null(strstr(error->message, "la57"));
  g_clear_error(&error);
  /* With la57 under KVM: allowed. */
  assert_true(vfd_qemu_address_plan(512, huge, 1, "kvm", &la57, &plan, &error));
  assert_int_equal(plan.phys_bits, 50);
  /* TCG's qemu64 has no 5-level paging, whatever the host has. */
  assert_false(vfd_qemu_address_plan(512, huge, 1, "tcg", &la57, &plan, &error));
  assert_non_null(strstr(error->message, "4-level"));
  g_clear_error(&error);

  /* Two L40S (2 x 128 GiB windows) and 16 GiB need 40 bits: a 39-bit host
   * refuses, a 40-bit one holds them; an unknown width is not checked. */
  assert_false(vfd_qemu_address_plan(16384, two_l40s, 2, "kvm", &small, &plan, &error));
  assert_non_null(strstr(error->message, "256 GiB PCI window above 16 GiB of guest RAM"));
  assert_non_null(strstr(error->message, "40 physical address bits, but the host's CPU has 39"));
  g_clear_error(&error);
  assert_true(vfd_qemu_address_plan(16384, two_l40s, 2, "kvm", &just, &plan, &error));
  assert_int_equal(plan.needed_bits, 40);
  assert_true(vfd_qemu_address_plan(16384, two_l40s, 2, "kvm", &unknown, &plan, &error));
  /* Under TCG the host's width does not limit the guest. */
  assert_true(vfd_qemu_address_plan(16384, two_l40s, 2, "tcg", &small, &plan, &error));

  /* The operator's cap ([qemu] max_phys_bits) holds under KVM and TCG. The
   * lab's case: one 64 GiB BAR (QEMU ivshmem) and 512 MiB need 38 bits
   * (the window at 64 GiB, 64 GiB long, then 1 GiB). */
  {
    const guint64 one_64g[] = { 64 * GIB };
    const VfdHostCpu cap37 = { .phys_bits = 46, .cap_bits = 37 };
    const VfdHostCpu cap38 = { .phys_bits = 46, .cap_bits = 38 };

    assert_true(vfd_qemu_address_plan(512, one_64g, 1, "tcg", &cap38, &plan, &error));
    assert_int_equal(plan.needed_bits, 38);
    assert_int_equal(plan.pci_hole64_size, 64 * GIB);
    assert_false(vfd_qemu_address_plan(512, one_64g, 1, "tcg", &cap37, &plan, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
    assert_non_null(strstr(error->message, "64 GiB PCI window above 512 MiB of guest RAM"));
    assert_non_null(strstr(error->message, "38 physical address bits, more than the 37 this host allows ([qemu] max_phys_bits)"));
    g_clear_error(&error);
    assert_false(vfd_qemu_address_plan(16384, two_l40s, 2, "kvm", &cap38, &plan, &error));
    assert_non_null(strstr(error->message, "[qemu] max_phys_bits"));
    g_clear_error(&error);
  }
}

/* An AMD guest whose hole reaches 1012 GiB: QEMU moves RAM above 4 GiB to
 * 1 TiB (checked against QEMU 7.2: "-m 1T -global
 * q35-pcihost.pci-hole64-size=256G" under TCG needs phys-bits=42). */
static void
test_amd_relocation(void **state)
{
  g_autoptr(GError) error = NULL;
  VfdAddressPlan plan = { 0 };
  const guint64 h100[] = { 256 * GIB };
  const VfdHostCpu amd = { .phys_bits = 48, .amd = TRUE };

  /* Intel: RAM above 4 GiB ends at 1026 GiB, the window at 1280 GiB. */
  assert_true(vfd_qemu_address_plan(1024 * 1024, h100, 1, "kvm", &intel_46, &plan, &error));
  assert_int_equal(plan.top, (1280 + 256 + 1) * GIB);
  assert_int_equal(plan.phys_bits, 41);
  /* AMD (and TCG's qemu64): RAM moves to 1 TiB .. 2046 GiB, the window to
   * 2 TiB. */
  assert_true(vfd_qemu_address_plan(1024 * 1024, h100, 1, "kvm", &amd, &plan, &error));
  assert_int_equal(plan.top, (2048 + 256 + 1) * GIB);
  assert_int_equal(plan.phys_bits, 42);
  assert_true(vfd_qemu_address_plan(1024 * 1024, h100, 1, "tcg", &intel_46, &plan, &error));
  assert_int_equal(plan.phys_bits, 42);
  /* Below the HyperTransport range nothing moves. */
  assert_true(vfd_qemu_address_plan(16384, h100, 1, "kvm", &amd, &plan, &error));
  assert_int_equal(plan.top, (256 + 256 + 1) * GIB);
}

/* ---- bridges and NVSwitches -------------------------------------------------- */

static void
test_bridge_classes(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) functions = NULL;
  g_autoptr(GArray) members = NULL;
  VfdBdf sw = test_bdf("0000:05:00.0");

  assert_true(vfd_pci_class_is_bridge(0x060000));  /* host bridge */
  assert_true(vfd_pci_class_is_bridge(0x060400));  /* PCI-to-PCI bridge */
  assert_true(vfd_pci_class_is_bridge(0x060401));  /* subtractive decode */
  assert_true(vfd_pci_class_is_bridge(0x060940));  /* semi-transparent */
  assert_false(vfd_pci_class_is_bridge(0x068000)); /* NVSwitch ("other bridge") */
  assert_false(vfd_pci_class_is_bridge(0x060100)); /* ISA bridge: a host function */
  assert_false(vfd_pci_class_is_bridge(0x030200));
  assert_true(vfd_pci_is_nvswitch(0x10de, 0x068000));
  assert_false(vfd_pci_is_nvswitch(0x8086, 0x068000));
  assert_false(vfd_pci_is_nvswitch(0x10de, 0x060400));

  add_hgx_h200(f->fs);
  /* The NVSwitch is a function of its group; the switch port is not. */
  assert_true(vfd_host_group_functions(f->host, &sw, &functions, &error));
  assert_int_equal(functions->len, 1);
  assert_true(vfd_bdf_equal(&g_array_index(functions, VfdBdf, 0), &sw));
  /* It binds (the rules here allow 0680) and comes back. */
  assert_true(vfd_host_bind_group(f->host, &sw, "op", &members, NULL, &error));
  assert_int_equal(members->len, 1);
  assert_true(vfd_host_release_group(f->host, &sw, NULL, NULL, &error));

  /* Under the default rules (no 0680) the NVSwitch is refused by name,
   * never skipped as if it were a bridge. */
  vfd_host_free(f->host);
  f->host = open_host(f, VFD_POLICY_DEFAULT_CLASSES);
  assert_false(vfd_host_bind_group(f->host, &sw, "op", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "0000:05:00.0 (10de:22a3, class 068000"));
}

/* ---- reset and D3cold -------------------------------------------------------- */

static void
test_no_bus_reset_table(void **state)
{
  assert_true(vfd_pci_no_bus_reset(0x10de, 0x2340));
  assert_true(vfd_pci_no_bus_reset(0x10de, 0x2342)); /* GH200 */
  assert_true(vfd_pci_no_bus_reset(0x10de, 0x237f));
  assert_false(vfd_pci_no_bus_reset(0x10de, 0x233f));
  assert_false(vfd_pci_no_bus_reset(0x10de, 0x2380));
  assert_true(vfd_pci_no_bus_reset(0x10de, 0x1eb8)); /* T4 */
  assert_false(vfd_pci_no_bus_reset(0x10de, 0x1eb9));
  assert_false(vfd_pci_no_bus_reset(0x10de, H100_PCIE));
  assert_false(vfd_pci_no_bus_reset(0x10de, H200_SXM));
  assert_false(vfd_pci_no_bus_reset(0x8086, 0x2340));
}

/* Index of the first log entry equal to @entry, -1 if none. */
static int
log_index(FakeSysfs *fs, const char *entry)
{
  g_autoptr(GPtrArray) log = fake_sysfs_write_log(fs);

  for (guint i = 0; i < log->len; i++)
    if (g_str_equal(g_ptr_array_index(log, i), entry))
      return (int) i;
  return -1;
}

static void
assert_attr(Fixture *f, const char *dev, const char *attr, const char *expected)
{
  g_autofree char *v = fake_sysfs_get_attr(f->fs, dev, attr);
  assert_non_null(v);
  assert_string_equal(g_strchomp(v), expected);
}

static VfdJournalDevice *
journal_record(Fixture *f, VfdJournal **ret_journal, const char *dev)
{
  g_autoptr(GError) error = NULL;
  VfdBdf b = test_bdf(dev);

  *ret_journal = vfd_journal_open(f->state_dir, &error);
  assert_non_null(*ret_journal);
  return vfd_journal_lookup(*ret_journal, &b);
}

/* A NO_BUS_RESET GPU (10de:2342) on a kernel without the quirk, so that
 * its reset_method lists "bus": held without it, reset by FLR only. */
static void
test_no_bus_reset_bind_release(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) notes = NULL;
  const char *gpu = "0000:61:00.0";
  VfdBdf b = test_bdf(gpu);

  fake_sysfs_add_device(f->fs, gpu, 0x10de, 0x2342, 0x030200, 30, "nvidia", "nvidia");
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:61:00.0/reset_method", "flr"), 1);
  assert_attr(f, gpu, "reset_method", "flr");
  {
    g_autoptr(VfdJournal) j = NULL;
    VfdJournalDevice *d = journal_record(f, &j, gpu);
    assert_non_null(d);
    assert_string_equal(d->original_reset_method, "flr bus");
    assert_string_equal(d->original_d3cold, "1");
  }
  /* Held without a bus reset before the driver changes. */
  assert_true(log_index(f->fs, "bus/pci/devices/0000:61:00.0/reset_method=flr") <
              log_index(f->fs, "bus/pci/devices/0000:61:00.0/driver_override=vfio-pci"));

  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_release_group_full(f->host, &b, NULL, NULL, &notes, &error));
  assert_int_equal(notes->len, 0);
  /* Reset (with "flr" in force), then the original list back. */
  assert_true(log_index(f->fs, "bus/pci/devices/0000:61:00.0/reset=1") >= 0);
  assert_true(log_index(f->fs, "bus/pci/drivers/vfio-pci/unbind=0000:61:00.0") <
              log_index(f->fs, "bus/pci/devices/0000:61:00.0/reset=1"));
  assert_true(log_index(f->fs, "bus/pci/devices/0000:61:00.0/reset=1") <
              log_index(f->fs, "bus/pci/devices/0000:61:00.0/reset_method=flr bus"));
  assert_attr(f, gpu, "reset_method", "flr bus");
  assert_attr(f, gpu, "d3cold_allowed", "1");

  /* Only a bus reset offered: every method is disabled while held ("\n"),
   * and the release gives it back unreset, with a note. */
  fake_sysfs_set_attr(f->fs, gpu, "reset_method", "bus\n");
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &b, "sb-1", NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:61:00.0/reset_method", "\n"), 1);
  g_clear_pointer(&notes, g_ptr_array_unref);
  assert_true(vfd_host_release_group_full(f->host, &b, NULL, NULL, &notes, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:61:00.0/reset", NULL), 0);
  assert_int_equal(notes->len, 1);
  assert_non_null(strstr(g_ptr_array_index(notes, 0), "0000:61:00.0 not reset"));
  assert_attr(f, gpu, "reset_method", "bus");
  {
    g_autofree char *drv = fake_sysfs_get_driver(f->fs, gpu);
    assert_string_equal(drv, "nvidia");
  }
}

/* d3cold_allowed=0 while held, the original back on release, also by a
 * restarted daemon (from the journal); a missing attribute is skipped. */
static void
test_d3cold(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf gpu = test_bdf("0000:c1:00.0");

  add_l40s(f->fs, "0000:c1:00.0", "0000:c1:00.1", 50, 0x30000000000);
  fake_sysfs_set_attr(f->fs, "0000:c1:00.1", "d3cold_allowed", "0\n"); /* already off: left alone */
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &gpu, "sb-2", NULL, NULL, &error));
  assert_attr(f, "0000:c1:00.0", "d3cold_allowed", "0");
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:c1:00.1/d3cold_allowed", NULL), 0);
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/0000:c1:00.0/reset_method", NULL), 0);
  {
    g_autoptr(VfdJournal) j1 = NULL;
    g_autoptr(VfdJournal) j2 = NULL;
    VfdJournalDevice *d = journal_record(f, &j1, "0000:c1:00.0");
    assert_string_equal(d->original_d3cold, "1");
    assert_null(d->original_reset_method);
    d = journal_record(f, &j2, "0000:c1:00.1");
    assert_null(d->original_d3cold);
  }

  /* A restarted daemon releases from the journal on disk. */
  vfd_host_free(f->host);
  f->host = open_host(f, VFD_POLICY_DEFAULT_CLASSES);
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_attr(f, "0000:c1:00.0", "d3cold_allowed", "1");
  assert_attr(f, "0000:c1:00.1", "d3cold_allowed", "0");

  /* No d3cold_allowed at all (a kernel without it): nothing written. */
  {
    g_autofree char *p = g_build_filename(fake_sysfs_sys_root(f->fs), "bus/pci/devices/0000:c1:00.0/d3cold_allowed",
                                          NULL);
    assert_int_equal(g_unlink(p), 0);
  }
  fake_sysfs_clear_log(f->fs);
  assert_true(vfd_host_bind_group(f->host, &gpu, "sb-3", NULL, NULL, &error));
  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_int_equal(fake_sysfs_count_writes(f->fs, "bus/pci/devices/*/d3cold_allowed", NULL), 0);
}

/* A reset that fails keeps the function off host drivers and says so; a
 * retry resets and gives it back. */
static void
test_failed_reset(void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VfdBdf gpu = test_bdf("0000:41:00.0");

  add_h100(f->fs);
  assert_true(vfd_host_bind_group(f->host, &gpu, "sb-4", NULL, NULL, &error));
  fake_sysfs_fail_next(f->fs, "0000:41:00.0", FAKE_OP_RESET, EIO);
  assert_false(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_FAILED));
  assert_non_null(strstr(error->message, "0000:41:00.0"));
  assert_non_null(strstr(error->message, "function reset"));
  assert_non_null(strstr(error->message, "reset_on_release=false"));
  g_clear_error(&error);
  {
    g_autofree char *drv = fake_sysfs_get_driver(f->fs, "0000:41:00.0");
    g_autofree char *ov = fake_sysfs_get_override(f->fs, "0000:41:00.0");
    g_autoptr(VfdJournal) j = NULL;
    VfdJournalDevice *d = journal_record(f, &j, "0000:41:00.0");
    assert_null(drv);                    /* off every driver */
    assert_string_equal(ov, "vfio-pci"); /* no host driver takes it */
    assert_int_equal(d->state, VFD_DEVICE_STATE_RELEASING);
  }
  assert_attr(f, "0000:41:00.0", "d3cold_allowed", "0");

  /* The kernel finds no method after all: -ENOTTY, reported the same way. */
  fake_sysfs_fail_next(f->fs, "0000:41:00.0", FAKE_OP_RESET, ENOTTY);
  assert_false(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  g_clear_error(&error);

  assert_true(vfd_host_release_group(f->host, &gpu, NULL, NULL, &error));
  {
    g_autofree char *drv = fake_sysfs_get_driver(f->fs, "0000:41:00.0");
    g_autofree char *ov = fake_sysfs_get_override(f->fs, "0000:41:00.0");
    assert_string_equal(drv, "nvidia");
    assert_string_equal(ov, "");
  }
  assert_attr(f, "0000:41:00.0", "d3cold_allowed", "1");
  /* The fake kernel refuses a reset without a method, and anything but "1". */
  {
    VfdSysfs *sysfs = vfd_host_sysfs(f->host);
    assert_int_equal(vfd_sysfs_write_attr(sysfs, &gpu, "reset", "0"), -EINVAL);
    fake_sysfs_set_attr(f->fs, "0000:41:00.0", "reset_method", "\n");
    assert_int_equal(vfd_sysfs_write_attr(sysfs, &gpu, "reset", "1"), -ENOTTY);
  }
}

/* ---- hugepages ------------------------------------------------------------------ */

/* Writes @contents to <root>/<rel> (a directory when NULL). */
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

static void
test_hugepages(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *root = g_dir_make_tmp("vfiod-test-hp-XXXXXX", NULL);
  g_autofree char *sys = g_build_filename(root, "sys", NULL);
  g_autofree char *proc = g_build_filename(root, "proc", NULL);
  const guint gib = 1024 * 1024;

  /* No hugepages at all. */
  assert_false(vfd_hugepages_check(sys, proc, 16384, 0, -1, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "has none"));
  g_clear_error(&error);
  assert_false(vfd_hugepages_check(sys, proc, 16384, gib, -1, &error));
  assert_non_null(strstr(error->message, "no such pages"));
  g_clear_error(&error);

  /* 16 free 1 GiB pages, 2 of them reserved by a mapping: 14 for us. */
  put(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "16\n");
  put(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/resv_hugepages", "2\n");
  assert_true(vfd_hugepages_check(sys, proc, 14 * 1024, gib, -1, &error));
  assert_false(vfd_hugepages_check(sys, proc, 16 * 1024, gib, -1, &error));
  assert_non_null(strstr(error->message, "needs 16 1 GiB hugepages, 14 are free"));
  assert_non_null(strstr(error->message, "hugepagesz=1G"));
  g_clear_error(&error);
  /* Not a whole number of pages. */
  assert_false(vfd_hugepages_check(sys, proc, 1536, gib, -1, &error));
  assert_non_null(strstr(error->message, "not a whole number of 1 GiB hugepages"));
  g_clear_error(&error);
  /* Bound to NUMA node 1: that node's pages count. */
  put(root, "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "8\n");
  assert_true(vfd_hugepages_check(sys, proc, 8 * 1024, gib, 1, &error));
  assert_false(vfd_hugepages_check(sys, proc, 12 * 1024, gib, 1, &error));
  assert_non_null(strstr(error->message, "on NUMA node 1"));
  assert_non_null(strstr(error->message, "8 are free"));
  g_clear_error(&error);
  /* The host's default size (2 MiB) when none is configured. */
  put(root, "proc/meminfo", "MemTotal: 1000 kB\nHugepagesize:       2048 kB\n");
  put(root, "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "1024\n");
  assert_true(vfd_hugepages_check(sys, proc, 2048, 0, -1, &error));
  assert_false(vfd_hugepages_check(sys, proc, 4096, 0, -1, &error));
  assert_non_null(strstr(error->message, "needs 2048 2 MiB hugepages, 1024 are free"));
  assert_non_null(strstr(error->message, "vm.nr_hugepages"));
  g_clear_error(&error);
  {
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
  }

  /* The memory backend QEMU gets. */
  {
    g_autoptr(GArray) functions = bdf_array((const char *const[]){ "0000:41:00.0", NULL });
    VfdQemuConfig c = {
      .id = "sb-0000000c", .qemu_binary = "qemu-system-x86_64", .accel = "kvm", .memory_mib = 16384, .vcpus = 2,
      .kernel = "/k/vmlinuz", .initrd = "/k/initrd", .serial_log = "/s", .qmp_socket = "/q",
      .devices = (const VfdBdf *) (void *) functions->data, .n_devices = 1, .hugepages = TRUE,
      .hugepage_kib = gib, .prealloc_threads = 4, .numa_bind = TRUE, .numa_node = 1,
    };
    g_auto(GStrv) argv = vfd_qemu_build_argv(&c);
    assert_arg_after(argv, "-object", "memory-backend-memfd,id=mem,size=16384M,share=on,hugetlb=on,hugetlbsize=1G,"
                                      "prealloc=on,prealloc-threads=4,host-nodes=1,policy=bind");
    g_strfreev(argv);
    c.hugepage_kib = 2048;
    c.prealloc_threads = 0;
    c.numa_bind = FALSE;
    argv = vfd_qemu_build_argv(&c);
    assert_arg_after(argv, "-object", "memory-backend-memfd,id=mem,size=16384M,share=on,hugetlb=on,hugetlbsize=2M");
  }
}

/* ---- doctor on GPU hosts -------------------------------------------------------- */

static const VfdDoctorCheck *
find_check(GPtrArray *checks, const char *name)
{
  for (guint i = 0; i < checks->len; i++) {
    const VfdDoctorCheck *c = g_ptr_array_index(checks, i);
    if (g_str_equal(c->name, name))
      return c;
  }
  return NULL;
}

static void
assert_check(GPtrArray *checks, const char *name, VfdDoctorStatus status, const char *needle)
{
  const VfdDoctorCheck *c = find_check(checks, name);

  if (!c)
    fail_msg("no check %s", name);
  if (c->status != status || (needle && !strstr(c->detail, needle)))
    fail_msg("%s: %s '%s', expected %s with '%s'", name, vfd_doctor_status_to_string(c->status), c->detail,
             vfd_doctor_status_to_string(status), needle ? needle : "");
}

static void
test_doctor_gpu_host(void **state)
{
  g_autofree char *root = g_dir_make_tmp("vfiod-doctor-gpu-XXXXXX", NULL);
  g_autofree char *sys = g_build_filename(root, "sys", NULL);
  g_autofree char *dev = g_build_filename(root, "dev", NULL);
  g_autofree char *proc = g_build_filename(root, "proc", NULL);
  g_autofree char *qemu = g_build_filename(root, "qemu", NULL);
  VfdDoctorOptions o = { .sys_root = sys, .dev_root = dev, .proc_root = proc, .qemu_binary = qemu };

  /* Debian 12 as shipped: kernel 6.1, QEMU 7.2; IOMMU without interrupt
   * remapping, unsafe interrupts allowed, no 1 GiB pages. */
  put(root, "sys/kernel/iommu_groups/0/type", "DMA\n");
  put(root, "sys/kernel/iommu_groups/1/type", "DMA-FQ\n");
  put(root, "sys/kernel/iommu_groups/2/type", "DMA-FQ\n");
  put(root, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "Y\n");
  put(root, "sys/module/vfio_pci/parameters/disable_idle_d3", "N\n");
  put(root, "proc/interrupts", "           CPU0\n  0:  10  IO-APIC   2-edge  timer\n 24:  0  PCI-MSI 512000-edge\n");
  put(root, "proc/sys/kernel/osrelease", "6.1.0-57-amd64\n");
  put(root, "proc/meminfo", "MemTotal: 1000 kB\n");
  put(root, "qemu", "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)'\n");
  g_chmod(qemu, 0755);
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_check(c, "irq-remapping", VFD_DOCTOR_FAIL, "interrupt remapping is off");
    assert_check(c, "unsafe-interrupts", VFD_DOCTOR_FAIL, "allow_unsafe_interrupts=Y");
    assert_check(c, "iommu-mode", VFD_DOCTOR_OK, "1 DMA, 2 DMA-FQ");
    assert_check(c, "large-bars", VFD_DOCTOR_WARN, "kernel 6.1.0-57-amd64, QEMU 7.2");
    assert_check(c, "hugepages-1g", VFD_DOCTOR_WARN, "no 1 GiB hugepages");
    assert_check(c, "vfio-idle-d3", VFD_DOCTOR_OK, "d3cold_allowed=0");
  }

  /* A host ready for large-BAR GPUs: trixie's 6.12, QEMU 10.0 from
   * bookworm-backports, interrupt remapping, 1 GiB pages on two nodes,
   * iommu=pt. */
  put(root, "sys/kernel/iommu_groups/0/type", "identity\n");
  put(root, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n");
  put(root, "sys/module/vfio_pci/parameters/disable_idle_d3", "Y\n");
  put(root, "proc/interrupts", "           CPU0\n  0:  10  IR-IO-APIC   2-edge  timer\n"
                               " 24:  0  IR-PCI-MSIX-0000:41:00.0 0-edge nvidia\n");
  put(root, "proc/sys/kernel/osrelease", "6.12.48+deb13-amd64\n");
  put(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "64\n");
  put(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "60\n");
  put(root, "sys/devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages", "32\n");
  put(root, "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "28\n");
  put(root, "qemu", "#!/bin/sh\necho 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)'\n");
  g_chmod(qemu, 0755);
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_check(c, "irq-remapping", VFD_DOCTOR_OK, "interrupt remapping on");
    assert_check(c, "unsafe-interrupts", VFD_DOCTOR_OK, "=N");
    assert_check(c, "iommu-mode", VFD_DOCTOR_OK, "identity");
    assert_check(c, "large-bars", VFD_DOCTOR_OK, "kernel 6.12.48+deb13-amd64, QEMU 10.0");
    assert_check(c, "hugepages-1g", VFD_DOCTOR_OK, "60 of 64 1 GiB hugepages free (node0 32, node1 28)");
    assert_check(c, "vfio-idle-d3", VFD_DOCTOR_OK, "stay in D0");
  }

  /* New kernel, old QEMU: still slow. All 1 GiB pages in use. */
  put(root, "qemu", "#!/bin/sh\necho 'QEMU emulator version 9.1.0'\n");
  g_chmod(qemu, 0755);
  put(root, "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_check(c, "large-bars", VFD_DOCTOR_WARN, "QEMU 9.1");
    assert_check(c, "hugepages-1g", VFD_DOCTOR_WARN, "0 of 64");
  }

  /* No IOMMU: the remapping and mode checks are not made; no vfio modules:
   * no parameter checks. */
  {
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s/sys/kernel/iommu_groups' '%s/sys/module'", root, root);
    assert_int_equal(system(cmd), 0);
  }
  {
    g_autoptr(GPtrArray) c = vfd_doctor_run(&o);
    assert_null(find_check(c, "irq-remapping"));
    assert_null(find_check(c, "iommu-mode"));
    assert_null(find_check(c, "unsafe-interrupts"));
    assert_null(find_check(c, "vfio-idle-d3"));
  }
  {
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
  }
}

/* ---- configuration ------------------------------------------------------------ */

static VfdConfig *
load(const char *text, GError **error)
{
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp("vfiod-gpu-conf-XXXXXX", &path, NULL);
  VfdConfig *c;

  assert_true(fd >= 0);
  close(fd);
  assert_true(g_file_set_contents(path, text, -1, NULL));
  c = vfd_config_load(path, NULL, error);
  g_unlink(path);
  return c;
}

static void
test_config_keys(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdConfig) def = load("[qemu]\n", &error);
  g_autoptr(VfdConfig) on = load("[devices]\nreset_on_release=true\n[qemu]\npci_nocrs=true\n", &error);
  g_autoptr(VfdConfig) off = load("[devices]\nreset_on_release=false\n", &error);
  g_autoptr(VfdConfig) autom = load("[devices]\nreset_on_release = auto \n", &error);
  g_autoptr(VfdConfig) hp = load("[qemu]\nhugepage_size=1G\nprealloc_threads=8\n", &error);
  g_autoptr(VfdConfig) hp2 = load("[qemu]\nhugepage_size=2m\n", &error);

  assert_int_equal(def->reset_on_release, VFD_RESET_AUTO);
  assert_false(def->qemu_pci_nocrs);
  assert_int_equal(on->reset_on_release, VFD_RESET_ALWAYS);
  assert_true(on->qemu_pci_nocrs);
  assert_int_equal(off->reset_on_release, VFD_RESET_NEVER);
  assert_int_equal(autom->reset_on_release, VFD_RESET_AUTO);
  assert_int_equal(def->qemu_hugepage_kib, 0);
  assert_int_equal(def->qemu_prealloc_threads, 0);
  assert_int_equal(hp->qemu_hugepage_kib, 1024 * 1024);
  assert_int_equal(hp->qemu_prealloc_threads, 8);
  assert_int_equal(hp2->qemu_hugepage_kib, 2048);
  assert_null(load("[qemu]\nhugepage_size=4M\n", &error));
  assert_non_null(strstr(error->message, "hugepage_size must be 2M or 1G"));
  g_clear_error(&error);
  assert_null(load("[qemu]\nprealloc_threads=300\n", &error));
  assert_non_null(strstr(error->message, "prealloc_threads"));
  g_clear_error(&error);
  assert_null(load("[qemu]\nprealloc_threads=-1\n", &error));
  g_clear_error(&error);
  assert_int_equal(def->qemu_max_phys_bits, 0);
  {
    g_autoptr(VfdConfig) cap = load("[qemu]\nmax_phys_bits=39\n", &error);
    assert_non_null(cap);
    assert_int_equal(cap->qemu_max_phys_bits, 39);
  }
  assert_null(load("[qemu]\nmax_phys_bits=35\n", &error));
  assert_non_null(strstr(error->message, "max_phys_bits must be 0 (no cap) or 36 to 52"));
  g_clear_error(&error);
  assert_null(load("[qemu]\nmax_phys_bits=wide\n", &error));
  g_clear_error(&error);
  assert_null(load("[devices]\nreset_on_release=sometimes\n", &error));
  assert_non_null(strstr(error->message, "reset_on_release must be auto, true or false"));
  g_clear_error(&error);
  assert_null(load("[qemu]\npci_nocrs=maybe\n", &error));
  assert_non_null(strstr(error->message, "pci_nocrs"));
  g_clear_error(&error);

  /* The policy behind "auto". */
  assert_true(vfd_reset_policy_wants(VFD_RESET_AUTO, 0x10de, 0x030200));
  assert_true(vfd_reset_policy_wants(VFD_RESET_AUTO, 0x10de, 0x030000));
  assert_false(vfd_reset_policy_wants(VFD_RESET_AUTO, 0x10de, 0x040300));
  assert_false(vfd_reset_policy_wants(VFD_RESET_AUTO, 0x10de, 0x068000));
  assert_false(vfd_reset_policy_wants(VFD_RESET_AUTO, 0x1234, 0x030000));
  assert_true(vfd_reset_policy_wants(VFD_RESET_ALWAYS, 0x1234, 0x020000));
  assert_false(vfd_reset_policy_wants(VFD_RESET_NEVER, 0x10de, 0x030200));
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_resource_parse),
    cmocka_unit_test_setup_teardown(test_board_windows, setup, teardown),
    cmocka_unit_test(test_cpuinfo),
    cmocka_unit_test_setup_teardown(test_h100_argv, setup, teardown),
    cmocka_unit_test_setup_teardown(test_l40s_argv, setup, teardown),
    cmocka_unit_test(test_small_bars_keep_default_hole),
    cmocka_unit_test_setup_teardown(test_hgx_full_passthrough, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hgx_partitions, setup, teardown),
    cmocka_unit_test(test_address_refusals),
    cmocka_unit_test(test_amd_relocation),
    cmocka_unit_test_setup_teardown(test_bridge_classes, setup, teardown),
    cmocka_unit_test(test_no_bus_reset_table),
    cmocka_unit_test_setup_teardown(test_no_bus_reset_bind_release, setup, teardown),
    cmocka_unit_test_setup_teardown(test_d3cold, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_reset, setup, teardown),
    cmocka_unit_test(test_config_keys),
    cmocka_unit_test(test_hugepages),
    cmocka_unit_test(test_doctor_gpu_host),
  };
  return cmocka_run_group_tests_name("gpu", tests, NULL, NULL);
}
