/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Issue 16, items 1-4: pool rules, the pool brought to its state over the
 * fake kernel (bind, adopt, after a reboot, busy), CDI specs, the boot
 * configuration, and the VFIO driver chosen from modalias through libkmod
 * over a fake module tree (stand-in modules with a Grace-style alias,
 * indexed by the real depmod). `test-pool schema` validates the CDI specs
 * against the CDI project's JSON schema as Debian packages it (exit 77
 * when it or python3-jsonschema is missing). */
#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device.h"
#include "error.h"
#include "fake-sysfs.h"
#include "pool.h"
#include "reconcile.h"
#include "variant.h"

#define FAKE_RELEASE "6.99.0-fake"

/* <tmp>/lib/modules/6.99.0-fake with the stand-in modules, depmod'ed. */
static char *
make_module_tree(const char *tmp)
{
  const char *ko_dir = g_getenv("FAKE_KO_DIR");
  static const char *const mods[] = { "vfio_pci", "nvgrace_gpu_vfio_pci", "other_vfio_pci", "e1000e" };
  g_autofree char *kernel = g_build_filename(tmp, "lib", "modules", FAKE_RELEASE, "kernel", NULL);
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;

  assert_non_null(ko_dir);
  assert_int_equal(g_mkdir_with_parents(kernel, 0755), 0);
  for (guint i = 0; i < G_N_ELEMENTS(mods); i++) {
    g_autofree char *name = g_strdup_printf("%s.ko", mods[i]);
    g_autofree char *src = g_build_filename(ko_dir, name, NULL);
    g_autofree char *dst = g_build_filename(kernel, name, NULL);
    g_autofree char *data = NULL;
    gsize len;
    assert_true(g_file_get_contents(src, &data, &len, NULL));
    assert_true(g_file_set_contents(dst, data, (gssize) len, NULL));
  }
  {
    g_autofree char *dir = g_path_get_dirname(kernel);
    g_autofree char *order = g_build_filename(dir, "modules.order", NULL);
    g_autofree char *builtin = g_build_filename(dir, "modules.builtin", NULL);
    g_autofree char *modinfo = g_build_filename(dir, "modules.builtin.modinfo", NULL);
    assert_true(g_file_set_contents(order, "", 0, NULL));
    assert_true(g_file_set_contents(builtin, "", 0, NULL));
    assert_true(g_file_set_contents(modinfo, "", 0, NULL));
  }
  {
    const char *argv[] = { "depmod", "-b", tmp, FAKE_RELEASE, NULL };
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_find_program_in_path("depmod");
    if (!path && g_file_test("/usr/sbin/depmod", G_FILE_TEST_IS_EXECUTABLE))
      argv[0] = "/usr/sbin/depmod";
    if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status, &error))
      fail_msg("depmod: %s (install kmod)", error->message);
    if (!g_spawn_check_wait_status(status, NULL))
      fail_msg("depmod failed: %s", err);
  }
  return g_build_filename(tmp, "lib", "modules", FAKE_RELEASE, NULL);
}

static void
rm_rf(const char *path)
{
  const char *argv[] = { "rm", "-rf", path, NULL };
  g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* ---- variant drivers ---- */

static void
variant_grace(void **state)
{
  g_autofree char *tmp = g_dir_make_tmp("vfiod-mods-XXXXXX", NULL);
  g_autofree char *moddir = make_module_tree(tmp);
  static const char *const no_config[] = { NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdVariant) v = vfd_variant_new(moddir, no_config, &error);
  g_autofree char *grace = NULL, *nic = NULL, *amb = NULL, *bad = NULL;

  (void) state;
  assert_non_null(v);
  /* A GH200's GPU (modalias as sysfs shows it): the Grace variant. */
  grace = vfd_variant_module_for(v, "pci:v000010DEd00002342sv000010DEsd000016C1bc03sc02i00", &error);
  assert_non_null(grace);
  assert_string_equal(grace, "nvgrace_gpu_vfio_pci");
  /* Anything else: plain vfio_pci (whose alias matches every device). */
  nic = vfd_variant_module_for(v, "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", &error);
  assert_string_equal(nic, "vfio_pci");
  /* Two variants for one device: refused, both named. */
  amb = vfd_variant_module_for(v, "pci:v000010DEd00002941sv000010DEsd00002046bc03sc02i00", &error);
  assert_null(amb);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED));
  assert_non_null(strstr(error->message, "nvgrace_gpu_vfio_pci"));
  assert_non_null(strstr(error->message, "other_vfio_pci"));
  g_clear_error(&error);
  /* Not a PCI modalias. */
  bad = vfd_variant_module_for(v, "usb:v1D6Bp0002", &error);
  assert_null(bad);
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  assert_null(vfd_variant_module_for(v, "pci:v000010DE*;rm -rf", &error));
  g_clear_error(&error);

  /* Driver names: vfio_pci registers "vfio-pci"; a variant its module name
   * unless /sys/module says otherwise. */
  {
    g_autofree char *a = vfd_variant_driver_name(tmp, "vfio_pci");
    g_autofree char *b = vfd_variant_driver_name(tmp, "nvgrace_gpu_vfio_pci");
    g_autofree char *mdir = g_build_filename(tmp, "module", "mlx5_vfio_pci", "drivers", "pci:mlx5-vfio-pci", NULL);
    g_autofree char *c = NULL;
    assert_string_equal(a, "vfio-pci");
    assert_string_equal(b, "nvgrace_gpu_vfio_pci");
    assert_int_equal(g_mkdir_with_parents(mdir, 0755), 0);
    c = vfd_variant_driver_name(tmp, "mlx5_vfio_pci");
    assert_string_equal(c, "mlx5-vfio-pci");
  }
  assert_true(vfd_is_vfio_driver("vfio-pci"));
  assert_true(vfd_is_vfio_driver("nvgrace_gpu_vfio_pci"));
  assert_true(vfd_is_vfio_driver("mlx5-vfio-pci"));
  assert_false(vfd_is_vfio_driver("nvidia"));
  assert_false(vfd_is_vfio_driver(NULL));

  /* A tree without depmod's indexes: no variant known, vfio_pci. */
  {
    g_autofree char *empty = g_build_filename(tmp, "empty", NULL);
    g_autoptr(VfdVariant) e = NULL;
    g_autofree char *m = NULL;
    g_mkdir_with_parents(empty, 0755);
    e = vfd_variant_new(empty, no_config, &error);
    assert_non_null(e);
    m = vfd_variant_module_for(e, "pci:v000010DEd00002342sv000010DEsd000016C1bc03sc02i00", &error);
    assert_string_equal(m, "vfio_pci");
  }
  rm_rf(tmp);
}

/* The device layer binds a Grace GPU to its variant driver and gives it
 * back. */
static void
variant_bind(void **state)
{
  g_autofree char *tmp = g_dir_make_tmp("vfiod-mods-XXXXXX", NULL);
  g_autofree char *moddir = make_module_tree(tmp);
  g_autofree char *state_dir = g_build_filename(tmp, "state", NULL);
  static const char *const no_config[] = { NULL };
  g_autoptr(GError) error = NULL;
  FakeSysfs *fs = fake_sysfs_new();
  VfdHost *host;
  VfdBdf bdf;
  g_autofree char *drv = NULL;

  (void) state;
  fake_sysfs_add_driver(fs, "vfio-pci");
  fake_sysfs_add_driver(fs, "nvgrace_gpu_vfio_pci");
  fake_sysfs_add_device(fs, "0009:01:00.0", 0x10de, 0x2342, 0x030200, 7, "nvidia", "nvidia");
  fake_sysfs_set_attr(fs, "0009:01:00.0", "modalias", "pci:v000010DEd00002342sv000010DEsd000016C1bc03sc02i00\n");
  fake_sysfs_add_device(fs, "0000:02:00.0", 0x10de, 0x2204, 0x030000, 8, "nvidia", "nvidia");
  fake_sysfs_set_attr(fs, "0000:02:00.0", "modalias", "pci:v000010DEd00002204sv000010DEsd00001454bc03sc00i00\n");
  host = vfd_host_new(fake_sysfs_open(fs), vfd_policy_new(VFD_POLICY_DEFAULT_IDS, VFD_POLICY_DEFAULT_CLASSES, NULL),
                      vfd_journal_open(state_dir, NULL));
  vfd_host_set_variant(host, vfd_variant_new(moddir, no_config, NULL));
  vfd_host_set_nvidia_smi(host, NULL);

  assert_int_equal(vfd_bdf_parse("0009:01:00.0", &bdf), 0);
  if (!vfd_host_bind_group(host, &bdf, "t", NULL, NULL, &error))
    fail_msg("bind: %s", error->message);
  drv = fake_sysfs_get_driver(fs, "0009:01:00.0");
  assert_string_equal(drv, "nvgrace_gpu_vfio_pci");
  g_free(drv);
  drv = fake_sysfs_get_override(fs, "0009:01:00.0");
  assert_string_equal(drv, "nvgrace_gpu_vfio_pci");
  assert_true(vfd_host_release_group(host, &bdf, "t", NULL, &error));
  g_free(drv);
  drv = fake_sysfs_get_driver(fs, "0009:01:00.0");
  assert_string_equal(drv, "nvidia");
  g_free(drv);

  /* A discrete GPU: plain vfio-pci. */
  assert_int_equal(vfd_bdf_parse("0000:02:00.0", &bdf), 0);
  assert_true(vfd_host_bind_group(host, &bdf, "t", NULL, NULL, &error));
  drv = fake_sysfs_get_driver(fs, "0000:02:00.0");
  assert_string_equal(drv, "vfio-pci");
  assert_true(vfd_host_release_group(host, &bdf, "t", NULL, &error));

  /* The variant driver not loaded (fake tree: not loadable): a clear
   * error, nothing changed. */
  fake_sysfs_add_device(fs, "0009:02:00.0", 0x10de, 0x2342, 0x030200, 9, "nvidia", "nvidia");
  fake_sysfs_set_attr(fs, "0009:02:00.0", "modalias", "pci:v000010DEd00002342sv000010DEsd000016C1bc03sc02i00\n");
  {
    g_autofree char *p = g_build_filename(fake_sysfs_sys_root(fs), "bus", "pci", "drivers", "nvgrace_gpu_vfio_pci",
                                          NULL);
    rm_rf(p);
  }
  fake_sysfs_clear_log(fs);
  assert_int_equal(vfd_bdf_parse("0009:02:00.0", &bdf), 0);
  assert_false(vfd_host_bind_group(host, &bdf, "t", NULL, NULL, &error));
  assert_non_null(strstr(error->message, "nvgrace_gpu_vfio_pci"));
  assert_non_null(strstr(error->message, "not loaded"));
  assert_int_equal(fake_sysfs_write_count(fs), 0);
  g_clear_error(&error);

  vfd_host_free(host);
  fake_sysfs_free(fs);
  rm_rf(tmp);
}

static void
arch_check(void **state)
{
  g_autoptr(GError) error = NULL;

  (void) state;
  assert_true(vfd_check_sandbox_arch("x86_64", &error));
  assert_false(vfd_check_sandbox_arch("aarch64", &error));
  assert_non_null(strstr(error->message, "aarch64"));
  assert_non_null(strstr(error->message, "'virt'"));
  assert_non_null(strstr(error->message, "x86_64"));
}

/* ---- rules ---- */

static void
rules_parse(void **state)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfdPoolRules) r = vfd_pool_rules_new(" 0000:01:00.0 ;", "10de:2330; 15b3:*;class:0302", "external",
                                                 &error);
  VfdPciDevice d = { 0 };

  (void) state;
  assert_non_null(r);
  assert_false(vfd_pool_rules_empty(r));
  vfd_bdf_parse("0000:01:00.0", &d.bdf);
  d.vendor = 0x8086;
  d.class_code = 0x020000;
  assert_true(vfd_pool_rules_match(r, &d)); /* by BDF */
  vfd_bdf_parse("0000:05:00.0", &d.bdf);
  assert_false(vfd_pool_rules_match(r, &d));
  d.vendor = 0x10de, d.device = 0x2330, d.class_code = 0x030000;
  assert_true(vfd_pool_rules_match(r, &d)); /* vendor:device */
  d.device = 0x2331;
  assert_false(vfd_pool_rules_match(r, &d));
  d.class_code = 0x030200;
  assert_true(vfd_pool_rules_match(r, &d)); /* class 0302 (3D controller) */
  d.vendor = 0x15b3, d.device = 0x101e, d.class_code = 0x020000;
  assert_true(vfd_pool_rules_match(r, &d)); /* vendor:* */

  {
    g_autoptr(VfdPoolRules) e = vfd_pool_rules_new("", "", NULL, &error);
    assert_true(vfd_pool_rules_empty(e));
  }
  static const char *const bad[][3] = {
    { "01:00.0x", "", "external" }, { "", "10de", "" },      { "", "10de:23301", "" }, { "", "class:3", "" },
    { "", "class:0g", "" },        { "", "zz:*", "" },        { "", "", "borrowed" },    { "", "class:03020", "" },
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    VfdPoolRules *x = vfd_pool_rules_new(bad[i][0], bad[i][1], bad[i][2], &error);
    if (x)
      fail_msg("accepted devices='%s' match='%s' mode='%s'", bad[i][0], bad[i][1], bad[i][2]);
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT));
    assert_non_null(strstr(error->message, "[pool]"));
    g_clear_error(&error);
  }
}

/* ---- the pool over the fake kernel ---- */

/* The lab's stand-in GPU is a NIC: [devices] allow_network=true. */
static VfdPolicy *
net_policy(const char *ids)
{
  VfdPolicy *policy = vfd_policy_new(ids, "", NULL);

  vfd_policy_set_guards(policy, &(VfdPolicyGuards){ .allow_network = true });
  return policy;
}

typedef struct {
  FakeSysfs *fs;
  char *tmp;
  VfdHost *host;
} Pool;

/* Group 12: the "GPU" 01:00.0 (e1000e, 8086:10d3) + 01:00.1 (virtio-pci,
 * 1af4:1044) as in the lab; group 13: a second one; group 3: a NIC no
 * rule names. */
static int
pool_setup(void **state)
{
  Pool *p = g_new0(Pool, 1);
  g_autofree char *sd = NULL;

  p->tmp = g_dir_make_tmp("vfiod-pool-XXXXXX", NULL);
  sd = g_build_filename(p->tmp, "state", NULL);
  p->fs = fake_sysfs_new();
  fake_sysfs_add_driver(p->fs, "vfio-pci");
  fake_sysfs_add_device(p->fs, "0000:01:00.0", 0x8086, 0x10d3, 0x020000, 12, "e1000e", "e1000e");
  fake_sysfs_add_device(p->fs, "0000:01:00.1", 0x1af4, 0x1044, 0x00ff00, 12, "virtio-pci", "virtio-pci");
  fake_sysfs_add_device(p->fs, "0000:02:00.0", 0x8086, 0x10d3, 0x020000, 13, "e1000e", "e1000e");
  fake_sysfs_add_device(p->fs, "0000:02:00.1", 0x1af4, 0x1044, 0x00ff00, 13, "virtio-pci", "virtio-pci");
  fake_sysfs_add_device(p->fs, "0000:03:00.0", 0x15b3, 0x1017, 0x020000, 3, "mlx5_core", "mlx5_core");
  p->host = vfd_host_new(fake_sysfs_open(p->fs), net_policy("8086:10d3;1af4:1044;15b3:1017"),
                         vfd_journal_open(sd, NULL));
  *state = p;
  return 0;
}

static int
pool_teardown(void **state)
{
  Pool *p = *state;

  vfd_host_free(p->host);
  fake_sysfs_free(p->fs);
  rm_rf(p->tmp);
  g_free(p->tmp);
  g_free(p);
  return 0;
}

static gboolean
report_has(GPtrArray *report, const char *subject, const char *action)
{
  for (guint i = 0; i < report->len; i++) {
    VfdReconcileItem *it = g_ptr_array_index(report, i);
    if (g_str_equal(it->subject, subject) && g_str_equal(it->action, action))
      return TRUE;
  }
  return FALSE;
}

static void
dump(GPtrArray *report)
{
  for (guint i = 0; i < report->len; i++) {
    VfdReconcileItem *it = g_ptr_array_index(report, i);
    print_message("# %s %s: %s\n", it->subject, it->action, it->detail);
  }
}

static char *
driver_of(Pool *p, const char *bdf)
{
  return fake_sysfs_get_driver(p->fs, bdf);
}

static void
pool_apply_binds(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:01:00.0", "", "external", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  g_autoptr(GPtrArray) entries = NULL;
  g_autofree char *d0 = NULL, *d1 = NULL, *d2 = NULL;
  VfdJournalDevice *jd;
  VfdBdf b;

  {
    /* No rules and no "pool" records: empty (no PCI scan needed). */
    g_autoptr(VfdPoolRules) none = vfd_pool_rules_new("", "", "", NULL);
    assert_true(vfd_pool_is_empty(p->host, none));
    assert_false(vfd_pool_is_empty(p->host, rules));
  }
  vfd_pool_apply(p->host, rules, report);
  dump(report);
  assert_true(report_has(report, "0000:01:00.0", "pool-bound"));
  /* The whole group, the other one untouched. */
  d0 = driver_of(p, "0000:01:00.0");
  d1 = driver_of(p, "0000:01:00.1");
  d2 = driver_of(p, "0000:02:00.0");
  assert_string_equal(d0, "vfio-pci");
  assert_string_equal(d1, "vfio-pci");
  assert_string_equal(d2, "e1000e");
  vfd_bdf_parse("0000:01:00.1", &b);
  jd = vfd_journal_lookup(vfd_host_journal(p->host), &b);
  assert_non_null(jd);
  assert_string_equal(jd->owner, VFD_POOL_OWNER);
  assert_string_equal(jd->original_driver, "virtio-pci");

  /* Status: both functions in place. */
  entries = vfd_pool_collect(p->host, rules, NULL, NULL);
  assert_int_equal(entries->len, 2);
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    assert_true(e->ok);
    assert_string_equal(e->want_driver, "vfio-pci");
    assert_int_equal(e->iommu_group, 12);
  }
  assert_true(((VfdPoolEntry *) g_ptr_array_index(entries, 0))->by_rule);

  {
    /* bind --persist records alone make a pool. */
    g_autoptr(VfdPoolRules) none = vfd_pool_rules_new("", "", "", NULL);
    assert_false(vfd_pool_is_empty(p->host, none));
  }
  /* Again (a vfiod restart): kept, no write. */
  fake_sysfs_clear_log(p->fs);
  g_ptr_array_set_size(report, 0);
  vfd_pool_apply(p->host, rules, report);
  assert_true(report_has(report, "0000:01:00.0", "pool-kept"));
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);

  /* A sandbox (or anyone) asking for it: BUSY, it belongs to the pool. */
  {
    g_autoptr(GError) error = NULL;
    vfd_bdf_parse("0000:01:00.0", &b);
    assert_false(vfd_host_bind_group(p->host, &b, "sb-12345678", NULL, NULL, &error));
    assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
    assert_non_null(strstr(error->message, "'pool'"));
  }
  /* --gpus N never picks it. */
  {
    g_autoptr(GArray) units = NULL;
    int node;
    g_autoptr(GError) error = NULL;
    assert_true(vfd_host_select_units(p->host, 2, &units, &node, &error));
    for (guint i = 0; i < units->len; i++) {
      char s[VFD_BDF_STRLEN];
      assert_string_not_equal(vfd_bdf_format(&g_array_index(units, VfdBdf, i), s), "0000:01:00.0");
    }
  }
}

/* After a reboot without the boot configuration: the journal says "pool",
 * the functions are on their host drivers: bound again. */
static void
pool_after_reboot(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("", "8086:10d3", "external", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  g_autofree char *d0 = NULL;
  g_autofree char *state_dir = g_build_filename(p->tmp, "state", NULL);

  vfd_pool_apply(p->host, rules, report);
  assert_true(report_has(report, "0000:01:00.0", "pool-bound"));
  assert_true(report_has(report, "0000:02:00.0", "pool-bound"));
  /* "Reboot": a new kernel state (every device on its native driver), the
   * journal as it was. */
  vfd_host_free(p->host);
  fake_sysfs_free(p->fs);
  p->fs = fake_sysfs_new();
  fake_sysfs_add_driver(p->fs, "vfio-pci");
  fake_sysfs_add_device(p->fs, "0000:01:00.0", 0x8086, 0x10d3, 0x020000, 12, "e1000e", "e1000e");
  fake_sysfs_add_device(p->fs, "0000:01:00.1", 0x1af4, 0x1044, 0x00ff00, 12, "virtio-pci", "virtio-pci");
  /* group 13 came up on vfio-pci (the boot rule) */
  fake_sysfs_add_device(p->fs, "0000:02:00.0", 0x8086, 0x10d3, 0x020000, 13, "vfio-pci", "e1000e");
  fake_sysfs_add_device(p->fs, "0000:02:00.1", 0x1af4, 0x1044, 0x00ff00, 13, "vfio-pci", "virtio-pci");
  p->host = vfd_host_new(fake_sysfs_open(p->fs), net_policy("8086:10d3;1af4:1044"),
                         vfd_journal_open(state_dir, NULL));
  {
    g_autoptr(GPtrArray) entries = vfd_pool_collect(p->host, rules, NULL, NULL);
    guint wrong = 0;
    for (guint i = 0; i < entries->len; i++)
      wrong += !((VfdPoolEntry *) g_ptr_array_index(entries, i))->ok;
    assert_int_equal(wrong, 2); /* group 12's two functions */
  }
  g_ptr_array_set_size(report, 0);
  vfd_pool_apply(p->host, rules, report);
  dump(report);
  assert_true(report_has(report, "0000:01:00.0", "pool-bound"));
  assert_true(report_has(report, "0000:02:00.0", "pool-kept"));
  d0 = driver_of(p, "0000:01:00.0");
  assert_string_equal(d0, "vfio-pci");

  /* A function unbound by hand: not in place, and the next apply (what
   * `vfioctl pool status --fix` asks for) puts it back. */
  {
    g_autofree char *unbind = g_build_filename(fake_sysfs_sys_root(p->fs), "bus", "pci", "drivers", "vfio-pci",
                                               "unbind", NULL);
    g_autofree char *d1 = NULL;
    g_autoptr(GPtrArray) entries = NULL;
    assert_int_equal(fake_sysfs_writer(unbind, "0000:01:00.1", p->fs), 0);
    entries = vfd_pool_collect(p->host, rules, NULL, NULL);
    assert_false(((VfdPoolEntry *) g_ptr_array_index(entries, 1))->ok);
    g_ptr_array_set_size(report, 0);
    vfd_pool_apply(p->host, rules, report);
    dump(report);
    assert_true(report_has(report, "0000:01:00.0", "pool-bound"));
    d1 = driver_of(p, "0000:01:00.1");
    assert_string_equal(d1, "vfio-pci");
  }
}

/* Found on vfio-pci at start-up, not journaled (bound at boot by the udev
 * rule on a host where vfiod never ran): adopted. */
static void
pool_adopt(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:02:00.1", "", "", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  VfdJournalDevice *jd;
  VfdBdf b;

  fake_sysfs_set_override(p->fs, "0000:02:00.0", "vfio-pci");
  fake_sysfs_set_override(p->fs, "0000:02:00.1", "vfio-pci");
  {
    const char *bdfs[] = { "0000:02:00.0", "0000:02:00.1" };
    const char *drv[] = { "e1000e", "virtio-pci" };
    for (int i = 0; i < 2; i++) {
      g_autofree char *path = g_build_filename(fake_sysfs_sys_root(p->fs), "bus", "pci", "drivers", drv[i], "unbind",
                                               NULL);
      g_autofree char *probe = g_build_filename(fake_sysfs_sys_root(p->fs), "bus", "pci", "drivers_probe", NULL);
      assert_int_equal(fake_sysfs_writer(path, bdfs[i], p->fs), 0);
      assert_int_equal(fake_sysfs_writer(probe, bdfs[i], p->fs), 0);
    }
  }
  fake_sysfs_clear_log(p->fs);
  vfd_pool_apply(p->host, rules, report);
  dump(report);
  assert_true(report_has(report, "0000:02:00.0", "pool-adopted"));
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);
  vfd_bdf_parse("0000:02:00.0", &b);
  jd = vfd_journal_lookup(vfd_host_journal(p->host), &b);
  assert_non_null(jd);
  assert_string_equal(jd->owner, VFD_POOL_OWNER);
  assert_int_equal(jd->state, VFD_DEVICE_STATE_BOUND);
}

/* A pool group held by someone else: left alone. */
static void
pool_busy(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:01:00.0", "", "", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  VfdBdf b;

  vfd_bdf_parse("0000:01:00.0", &b);
  assert_true(vfd_host_bind_group(p->host, &b, "sb-0000abcd", NULL, NULL, NULL));
  fake_sysfs_clear_log(p->fs);
  vfd_pool_apply(p->host, rules, report);
  assert_true(report_has(report, "0000:01:00.0", "busy"));
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);
}

/* mode=sandboxes: the pool lends its groups to sandboxes and takes them
 * back, all on vfio-pci, without a sysfs write. */
static bool
always_member(VfdHost *host, const VfdBdf *bdf, void *data)
{
  (void) host, (void) bdf;
  return *(bool *) data;
}

static void
pool_lend(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:01:00.0", "", "sandboxes", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) units = NULL;
  g_autoptr(GArray) back = NULL;
  bool member = true;
  VfdJournalDevice *jd;
  int node;
  VfdBdf b, b1;

  assert_true(vfd_pool_rules_lend(rules));
  vfd_host_set_pool_lending(p->host, always_member, &member);
  vfd_pool_apply(p->host, rules, report);
  assert_true(report_has(report, "0000:01:00.0", "pool-bound"));
  vfd_bdf_parse("0000:01:00.0", &b);
  vfd_bdf_parse("0000:01:00.1", &b1);

  /* --gpus N may pick the pool's group. */
  assert_true(vfd_host_select_units(p->host, 3, &units, &node, &error));
  assert_int_equal(units->len, 3);

  fake_sysfs_clear_log(p->fs);
  if (!vfd_host_bind_group(p->host, &b1, "sb-0000beef", NULL, NULL, &error))
    fail_msg("lend: %s", error->message);
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);
  jd = vfd_journal_lookup(vfd_host_journal(p->host), &b);
  assert_string_equal(jd->owner, "sb-0000beef");
  {
    g_autoptr(GPtrArray) entries = vfd_pool_collect(p->host, rules, NULL, NULL);
    assert_true(((VfdPoolEntry *) g_ptr_array_index(entries, 0))->ok); /* lent is in place */
    g_ptr_array_set_size(report, 0);
    vfd_pool_apply(p->host, rules, report);
    assert_true(report_has(report, "0000:01:00.0", "pool-lent"));
  }
  /* Another sandbox cannot take it meanwhile. */
  assert_false(vfd_host_bind_group(p->host, &b, "sb-0000cafe", NULL, NULL, &error));
  assert_true(g_error_matches(error, VFD_ERROR, VFD_ERROR_BUSY));
  g_clear_error(&error);

  /* The sandbox ends: back to the pool, on vfio-pci, no write. */
  if (!vfd_host_release_group(p->host, &b, "sb-0000beef", &back, &error))
    fail_msg("give back: %s", error->message);
  assert_int_equal(back->len, 2);
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);
  /* The sandbox's release of its other function (as sandbox_release_devices
   * goes through them all): already back, nothing to do. */
  assert_true(vfd_host_release_group(p->host, &b1, "sb-0000beef", NULL, &error));
  assert_int_equal(fake_sysfs_write_count(p->fs), 0);
  jd = vfd_journal_lookup(vfd_host_journal(p->host), &b1);
  assert_string_equal(jd->owner, VFD_POOL_OWNER);
  assert_int_equal(jd->owner_uid, 0);
  {
    g_autofree char *d = driver_of(p, "0000:01:00.1");
    assert_string_equal(d, "vfio-pci");
  }

  /* No longer in the pool by the rules: a sandbox's release gives the
   * group back to its host drivers. */
  assert_true(vfd_host_bind_group(p->host, &b, "sb-0000beef", NULL, NULL, NULL));
  member = false;
  assert_true(vfd_host_release_group(p->host, &b, "sb-0000beef", NULL, NULL));
  {
    g_autofree char *d = driver_of(p, "0000:01:00.0");
    assert_string_equal(d, "e1000e");
  }
  vfd_host_set_pool_lending(p->host, NULL, NULL);
}

/* ---- CDI ---- */

static JsonObject *
parse_spec(const char *text, JsonParser **ret_parser)
{
  JsonParser *parser = json_parser_new();
  g_autoptr(GError) error = NULL;

  if (!json_parser_load_from_data(parser, text, -1, &error))
    fail_msg("spec is not JSON: %s\n%s", error->message, text);
  *ret_parser = parser;
  return json_node_get_object(json_parser_get_root(parser));
}

static void
cdi_spec(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:01:00.0", "", "external", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  g_autoptr(GPtrArray) entries = NULL;
  g_autofree char *group = NULL, *gpu = NULL;
  g_autoptr(JsonParser) pg = NULL, pu = NULL;
  JsonObject *o;
  JsonArray *devs, *nodes;
  g_autofree char *cdi_dir = g_build_filename(p->tmp, "cdi", NULL);

  /* Empty pool: specs with no devices. */
  entries = vfd_pool_collect(p->host, rules, NULL, NULL);
  group = vfd_cdi_spec(entries, "group");
  o = parse_spec(group, &pg);
  assert_int_equal(json_array_get_length(json_object_get_array_member(o, "devices")), 0);
  g_clear_pointer(&group, g_free);
  g_clear_object(&pg);
  g_ptr_array_unref(g_steal_pointer(&entries));
  /* ... and no files for a host without a pool. */
  {
    g_autoptr(VfdPoolRules) none = vfd_pool_rules_new("", "", "", NULL);
    g_autoptr(GPtrArray) nothing = vfd_pool_collect(p->host, none, NULL, NULL);
    assert_int_equal(nothing->len, 0);
    assert_true(vfd_cdi_write(cdi_dir, nothing, NULL));
    assert_false(g_file_test(cdi_dir, G_FILE_TEST_EXISTS));
  }

  vfd_pool_apply(p->host, rules, report);
  /* The kernel's iommufd cdev for 01:00.0 (sysfs vfio-dev/vfio0/dev: a
   * character device, 6.6 on); 01:00.1 as a 6.1 kernel shows it
   * (vfio-dev/vfio1 without `dev`: no node, not in the spec). */
  {
    VfdBdf b;
    g_autofree char *dir = NULL, *dir1 = NULL, *devt = NULL;
    vfd_bdf_parse("0000:01:00.0", &b);
    dir = vfd_sysfs_device_path(vfd_host_sysfs(p->host), &b, "vfio-dev/vfio0");
    assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
    devt = g_build_filename(dir, "dev", NULL);
    assert_true(g_file_set_contents(devt, "511:0\n", -1, NULL));
    vfd_bdf_parse("0000:01:00.1", &b);
    dir1 = vfd_sysfs_device_path(vfd_host_sysfs(p->host), &b, "vfio-dev/vfio1");
    assert_int_equal(g_mkdir_with_parents(dir1, 0755), 0);
  }
  entries = vfd_pool_collect(p->host, rules, NULL, NULL);
  group = vfd_cdi_spec(entries, "group");
  gpu = vfd_cdi_spec(entries, "gpu");
  print_message("# %s", group);
  o = parse_spec(group, &pg);
  assert_string_equal(json_object_get_string_member(o, "cdiVersion"), "0.5.0");
  assert_string_equal(json_object_get_string_member(o, "kind"), "vfiod.io/group");
  devs = json_object_get_array_member(o, "devices");
  assert_int_equal(json_array_get_length(devs), 1);
  {
    JsonObject *d = json_array_get_object_element(devs, 0);
    assert_string_equal(json_object_get_string_member(d, "name"), "12");
    nodes = json_object_get_array_member(json_object_get_object_member(d, "containerEdits"), "deviceNodes");
    assert_int_equal(json_array_get_length(nodes), 2);
    assert_string_equal(json_object_get_string_member(json_array_get_object_element(nodes, 0), "path"),
                        "/dev/vfio/12");
    assert_string_equal(json_object_get_string_member(json_array_get_object_element(nodes, 1), "path"),
                        "/dev/vfio/devices/vfio0");
  }
  nodes = json_object_get_array_member(json_object_get_object_member(o, "containerEdits"), "deviceNodes");
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(nodes, 0), "path"),
                      "/dev/vfio/vfio");
  o = parse_spec(gpu, &pu);
  assert_string_equal(json_object_get_string_member(o, "kind"), "vfiod.io/gpu");
  devs = json_object_get_array_member(o, "devices");
  assert_int_equal(json_array_get_length(devs), 1);
  assert_string_equal(json_object_get_string_member(json_array_get_object_element(devs, 0), "name"), "0000:01:00.0");

  /* Written atomically, 0644, rewritten only on a change. */
  assert_true(vfd_cdi_write(cdi_dir, entries, NULL));
  {
    g_autofree char *path = g_build_filename(cdi_dir, "vfiod-group.json", NULL);
    g_autofree char *path2 = g_build_filename(cdi_dir, "vfiod-gpu.json", NULL);
    g_autofree char *text = NULL;
    struct stat st1, st2;
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st1.st_mode & 07777, 0644);
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    assert_string_equal(text, group);
    g_clear_pointer(&text, g_free);
    assert_true(g_file_get_contents(path2, &text, NULL, NULL));
    assert_string_equal(text, gpu);
    assert_true(vfd_cdi_write(cdi_dir, entries, NULL));
    assert_int_equal(stat(path, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino); /* unchanged: not rewritten */
    /* Released: the spec loses the device (a new file renamed over). */
    {
      VfdBdf b;
      g_autoptr(GPtrArray) after = NULL;
      vfd_bdf_parse("0000:01:00.0", &b);
      assert_true(vfd_host_release_group(p->host, &b, NULL, NULL, NULL));
      after = vfd_pool_collect(p->host, rules, NULL, NULL);
      assert_true(vfd_cdi_write(cdi_dir, after, NULL));
      assert_int_equal(stat(path, &st2), 0);
      assert_int_not_equal(st1.st_ino, st2.st_ino);
      g_clear_pointer(&text, g_free);
      assert_true(g_file_get_contents(path, &text, NULL, NULL));
      assert_null(strstr(text, "\"12\""));
    }
  }
}

/* ---- boot configuration ---- */

static void
boot_config(void **state)
{
  Pool *p = *state;
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("0000:01:00.0", "", "external", NULL);
  g_autoptr(GPtrArray) entries = NULL;
  g_autofree char *udev = NULL, *modprobe = NULL, *note = NULL;
  g_autofree char *root = g_build_filename(p->tmp, "root", NULL);
  g_autofree char *itools = g_build_filename(root, "etc", "initramfs-tools", NULL);
  gboolean changed = FALSE;

  /* The host drivers' modules, as sysfs shows them. */
  {
    const char *drv[] = { "e1000e", "virtio-pci" };
    const char *mod[] = { "e1000e", "virtio_pci" };
    for (int i = 0; i < 2; i++) {
      g_autofree char *link = g_build_filename(fake_sysfs_sys_root(p->fs), "bus", "pci", "drivers", drv[i], "module",
                                               NULL);
      g_autofree char *target = g_strdup_printf("../../../../module/%s", mod[i]);
      assert_int_equal(symlink(target, link), 0);
    }
  }
  entries = vfd_pool_collect(p->host, rules, NULL, NULL);
  assert_int_equal(entries->len, 2);
  udev = vfd_pool_udev_rules(entries);
  modprobe = vfd_pool_modprobe_conf(entries);
  print_message("%s%s", udev, modprobe);
  assert_non_null(strstr(udev, "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:01:00.0\", "
                               "ATTR{driver_override}=\"vfio-pci\""));
  assert_non_null(strstr(udev, "KERNEL==\"0000:01:00.1\""));
  assert_non_null(strstr(udev, "RUN{builtin}+=\"kmod load vfio_pci\""));
  assert_null(strstr(udev, "0000:02:00.0"));
  assert_non_null(strstr(modprobe, "softdep e1000e pre: vfio_pci\n"));
  assert_non_null(strstr(modprobe, "softdep virtio_pci pre: vfio_pci\n"));

  assert_int_equal(g_mkdir_with_parents(itools, 0755), 0);
  assert_true(vfd_pool_install_boot(root, entries, &changed, &note, NULL));
  assert_true(changed);
  assert_non_null(note);
  assert_non_null(strstr(note, "update-initramfs -u"));
  {
    g_autofree char *path = g_build_filename(root, VFD_POOL_UDEV_RULES, NULL);
    g_autofree char *text = NULL;
    struct stat st;
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    assert_string_equal(text, udev);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
  }
  g_clear_pointer(&note, g_free);
  assert_true(vfd_pool_install_boot(root, entries, &changed, &note, NULL));
  assert_false(changed);
  assert_null(note);
}

/* ---- `test-pool schema`: the CDI project's JSON schema ---- */

static int
schema_main(void)
{
  const char *schema = g_getenv("CDI_SCHEMA");
  g_autofree char *tmp = g_dir_make_tmp("vfiod-cdi-XXXXXX", NULL);
  FakeSysfs *fs;
  VfdHost *host;
  g_autofree char *sd = g_build_filename(tmp, "state", NULL);
  g_autofree char *cdi = g_build_filename(tmp, "cdi", NULL);
  g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new("", "8086:10d3", "", NULL);
  g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
  g_autoptr(GPtrArray) entries = NULL;
  int rc = 0;

  if (!schema || !g_file_test(schema, G_FILE_TEST_IS_REGULAR)) {
    printf("SKIP: the CDI schema %s is missing (install "
           "golang-github-container-orchestrated-devices-container-device-interface-dev)\n",
           schema ? schema : "(CDI_SCHEMA unset)");
    return 77;
  }
  if (system("python3 -c 'import jsonschema' 2>/dev/null") != 0) {
    printf("SKIP: python3-jsonschema is missing\n");
    return 77;
  }
  fs = fake_sysfs_new();
  fake_sysfs_add_driver(fs, "vfio-pci");
  fake_sysfs_add_device(fs, "0000:01:00.0", 0x8086, 0x10d3, 0x020000, 12, "e1000e", "e1000e");
  fake_sysfs_add_device(fs, "0000:01:00.1", 0x1af4, 0x1044, 0x00ff00, 12, "virtio-pci", "virtio-pci");
  fake_sysfs_add_device(fs, "0000:02:00.0", 0x8086, 0x10d3, 0x020000, 13, "e1000e", "e1000e");
  host = vfd_host_new(fake_sysfs_open(fs), net_policy("8086:10d3;1af4:1044"), vfd_journal_open(sd, NULL));
  vfd_pool_apply(host, rules, report);
  entries = vfd_pool_collect(host, rules, NULL, NULL);
  if (!vfd_cdi_write(cdi, entries, NULL)) {
    printf("FAIL: cannot write the specs\n");
    rc = 1;
  }
  for (int i = 0; rc == 0 && i < 2; i++) {
    g_autofree char *spec = g_build_filename(cdi, i ? "vfiod-gpu.json" : "vfiod-group.json", NULL);
    g_autofree char *cmd = g_strdup_printf(
        "cd \"$(dirname '%s')\" && python3 -c 'import json, sys, jsonschema; "
        "s = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2])); "
        "r = jsonschema.RefResolver(\"file://\" + sys.argv[3] + \"/\", s); "
        "jsonschema.validate(d, s, resolver=r); "
        "assert len(d[\"devices\"]) == 2, d; print(\"ok - \" + sys.argv[2] + \" valid: \" + d[\"kind\"] + \" \" + "
        "\", \".join(x[\"name\"] for x in d[\"devices\"]))' '%s' '%s' \"$(dirname '%s')\"",
        schema, schema, spec, schema);
    int st = system(cmd);
    if (st != 0) {
      printf("FAIL: %s does not validate against %s\n", spec, schema);
      rc = 1;
    }
  }
  vfd_host_free(host);
  fake_sysfs_free(fs);
  rm_rf(tmp);
  return rc;
}

int
main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(variant_grace),
    cmocka_unit_test(variant_bind),
    cmocka_unit_test(arch_check),
    cmocka_unit_test(rules_parse),
    cmocka_unit_test_setup_teardown(pool_apply_binds, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(pool_after_reboot, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(pool_adopt, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(pool_busy, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(pool_lend, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(cdi_spec, pool_setup, pool_teardown),
    cmocka_unit_test_setup_teardown(boot_config, pool_setup, pool_teardown),
  };

  if (argc > 1 && g_str_equal(argv[1], "schema"))
    return schema_main();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
