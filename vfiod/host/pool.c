/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pool.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>

#include "error.h"
#include "reconcile.h"
#include "variant.h"

typedef struct {
  guint16 vendor;
  int device; /* -1: any */
  guint32 class_prefix;
  guint class_digits; /* 0: a vendor:device rule; 2, 4, 6: hex digits of a class rule */
} Rule;

struct VfdPoolRules {
  GArray *bdfs;  /* VfdBdf */
  GArray *rules; /* Rule */
  bool lend;     /* mode=sandboxes */
};

bool
vfd_pool_rules_lend(const VfdPoolRules *r)
{
  return r && r->lend;
}

void
vfd_pool_rules_free(VfdPoolRules *r)
{
  if (!r)
    return;
  g_array_unref(r->bdfs);
  g_array_unref(r->rules);
  g_free(r);
}

static bool
parse_hex(const char *s, guint digits_min, guint digits_max, guint32 *ret, guint *ret_digits)
{
  size_t n = strlen(s);
  char *end = NULL;

  if (n < digits_min || n > digits_max)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!g_ascii_isxdigit(s[i]))
      return false;
  *ret = (guint32) strtoul(s, &end, 16);
  if (ret_digits)
    *ret_digits = (guint) n;
  return end && !*end;
}

VfdPoolRules *
vfd_pool_rules_new(const char *devices, const char *match, const char *mode, GError **error)
{
  g_autoptr(VfdPoolRules) r = g_new0(VfdPoolRules, 1);
  g_auto(GStrv) bdfs = g_strsplit(devices ? devices : "", ";", -1);
  g_auto(GStrv) rules = g_strsplit(match ? match : "", ";", -1);

  r->bdfs = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  r->rules = g_array_new(FALSE, TRUE, sizeof(Rule));
  if (mode && *mode && !g_str_equal(mode, "external") && !g_str_equal(mode, "sandboxes")) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [pool] mode must be 'external' (devices for other consumers, never for sandboxes) "
                "or 'sandboxes' (kept for vfiod's sandboxes), got '%s'", mode);
    return NULL;
  }
  r->lend = mode && g_str_equal(mode, "sandboxes");
  for (char **it = bdfs; *it; it++) {
    VfdBdf b;
    if (!*g_strstrip(*it))
      continue;
    if (vfd_bdf_parse(*it, &b) < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "config key [pool] devices: '%s' is not a BDF",
                  *it);
      return NULL;
    }
    g_array_append_val(r->bdfs, b);
  }
  for (char **it = rules; *it; it++) {
    Rule rule = { 0 };
    const char *s = g_strstrip(*it);
    guint32 v;
    if (!*s)
      continue;
    if (g_str_has_prefix(s, "class:")) {
      guint digits = 0;
      if (!parse_hex(s + 6, 2, 6, &v, &digits) || digits % 2) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [pool] match: '%s' is not class:CC, class:CCSS or class:CCSSPP (hex)", s);
        return NULL;
      }
      rule.class_prefix = v;
      rule.class_digits = digits;
    } else {
      g_auto(GStrv) vd = g_strsplit(s, ":", -1);
      guint32 d;
      if (g_strv_length(vd) != 2 || !parse_hex(vd[0], 4, 4, &v, NULL) ||
          (!g_str_equal(vd[1], "*") && !parse_hex(vd[1], 4, 4, &d, NULL))) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [pool] match: '%s' is not VVVV:DDDD, VVVV:* or class:CC[SS[PP]] (hex)", s);
        return NULL;
      }
      rule.vendor = (guint16) v;
      rule.device = g_str_equal(vd[1], "*") ? -1 : (int) d;
    }
    g_array_append_val(r->rules, rule);
  }
  return g_steal_pointer(&r);
}

bool
vfd_pool_rules_empty(const VfdPoolRules *r)
{
  return !r || (r->bdfs->len == 0 && r->rules->len == 0);
}

bool
vfd_pool_rules_match(const VfdPoolRules *r, const VfdPciDevice *dev)
{
  if (!r)
    return false;
  for (guint i = 0; i < r->bdfs->len; i++)
    if (vfd_bdf_compare(&g_array_index(r->bdfs, VfdBdf, i), &dev->bdf) == 0)
      return true;
  for (guint i = 0; i < r->rules->len; i++) {
    const Rule *rule = &g_array_index(r->rules, Rule, i);
    if (rule->class_digits) {
      if ((dev->class_code >> (4 * (6 - rule->class_digits))) == rule->class_prefix)
        return true;
    } else if (dev->vendor == rule->vendor && (rule->device < 0 || dev->device == rule->device)) {
      return true;
    }
  }
  return false;
}

void
vfd_pool_entry_free(VfdPoolEntry *e)
{
  if (!e)
    return;
  g_free(e->driver);
  g_free(e->want_driver);
  g_free(e->want_module);
  g_free(e->host_driver);
  g_free(e->host_module);
  g_free(e->state);
  g_free(e->owner);
  g_free(e->cdev);
  g_free(e);
}

bool
vfd_pool_is_empty(VfdHost *host, const VfdPoolRules *rules)
{
  GPtrArray *all;
  bool empty = vfd_pool_rules_empty(rules);

  vfd_host_lock_journal(host);
  all = vfd_journal_devices(vfd_host_journal(host));
  for (guint i = 0; empty && i < all->len; i++)
    empty = !g_str_equal(((VfdJournalDevice *) g_ptr_array_index(all, i))->owner, VFD_POOL_OWNER);
  vfd_host_unlock_journal(host);
  return empty;
}

/* The module behind driver @drv (sysfs bus/pci/drivers/<drv>/module), NULL
 * when built in or unknown. */
static char *
driver_module(const char *sys_root, const char *drv)
{
  g_autofree char *link = g_build_filename(sys_root, "bus", "pci", "drivers", drv, "module", NULL);
  g_autofree char *target = g_file_read_link(link, NULL);

  return target ? g_path_get_basename(target) : NULL;
}

/* The iommufd cdev of @bdf: the entry "vfioN" of <BDF>/vfio-dev/ that has
 * a `dev` attribute (a character device: /dev/vfio/devices/vfioN, kernels
 * with CONFIG_VFIO_DEVICE_CDEV, 6.6 on; 6.1 to 6.5 show vfio-dev/vfioN
 * without a device node). NULL when there is none. */
static char *
cdev_name(VfdHost *host, const VfdBdf *bdf)
{
  g_autofree char *dir = vfd_sysfs_device_path(vfd_host_sysfs(host), bdf, "vfio-dev");
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *e;

  while (d && (e = g_dir_read_name(d))) {
    g_autofree char *devt = g_build_filename(dir, e, "dev", NULL);
    if (g_str_has_prefix(e, "vfio") && e[4] && strspn(e + 4, "0123456789") == strlen(e + 4) &&
        g_file_test(devt, G_FILE_TEST_EXISTS))
      return g_strdup(e);
  }
  return NULL;
}

static int
entry_compare(gconstpointer a, gconstpointer b)
{
  const VfdPoolEntry *x = *(VfdPoolEntry *const *) a, *y = *(VfdPoolEntry *const *) b;

  return vfd_bdf_compare(&x->bdf, &y->bdf);
}

GPtrArray *
vfd_pool_collect(VfdHost *host, const VfdPoolRules *rules, VfdVariant *variant, GError **error)
{
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(host, error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_pool_entry_free);
  g_autoptr(GHashTable) groups = g_hash_table_new(g_direct_hash, g_direct_equal); /* group -> by_rule */
  const char *root = vfd_sysfs_root(vfd_host_sysfs(host));

  if (!devs)
    return NULL;
  vfd_host_lock_journal(host);
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    VfdJournalDevice *jd = vfd_journal_lookup(vfd_host_journal(host), &d->bdf);
    bool by_rule = vfd_pool_rules_match(rules, d);
    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code))
      continue;
    if (by_rule)
      g_hash_table_insert(groups, GINT_TO_POINTER(d->iommu_group), GINT_TO_POINTER(2));
    else if (jd && g_str_equal(jd->owner, VFD_POOL_OWNER) &&
             !g_hash_table_contains(groups, GINT_TO_POINTER(d->iommu_group)))
      g_hash_table_insert(groups, GINT_TO_POINTER(d->iommu_group), GINT_TO_POINTER(1));
  }
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    VfdJournalDevice *jd;
    VfdPoolEntry *e;
    g_autofree char *modalias = NULL;
    gpointer by_rule;

    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code) ||
        !g_hash_table_lookup_extended(groups, GINT_TO_POINTER(d->iommu_group), NULL, &by_rule))
      continue;
    jd = vfd_journal_lookup(vfd_host_journal(host), &d->bdf);
    e = g_new0(VfdPoolEntry, 1);
    e->bdf = d->bdf;
    e->iommu_group = d->iommu_group;
    e->vendor = d->vendor;
    e->device = d->device;
    e->class_code = d->class_code;
    e->driver = g_strdup(d->driver);
    e->by_rule = GPOINTER_TO_INT(by_rule) == 2;
    e->state = g_strdup(jd ? vfd_device_state_to_string(jd->state) : "host");
    e->owner = jd ? g_strdup(jd->owner) : NULL;
    if (variant && vfd_sysfs_read_attr(vfd_host_sysfs(host), &d->bdf, "modalias", &modalias) == 0)
      e->want_module = vfd_variant_module_for(variant, modalias, NULL);
    if (!e->want_module)
      e->want_module = g_strdup(VFD_VFIO_PCI_MODULE);
    e->want_driver = vfd_variant_driver_name(root, e->want_module);
    if (jd && jd->original_driver)
      e->host_driver = g_strdup(jd->original_driver);
    else if (d->driver && !vfd_is_vfio_driver(d->driver))
      e->host_driver = g_strdup(d->driver);
    else if (modalias)
      e->host_driver = vfd_variant_host_driver(variant, root, modalias);
    if (e->host_driver)
      e->host_module = driver_module(root, e->host_driver);
    e->cdev = cdev_name(host, &d->bdf);
    /* In place: on its VFIO driver, held for the pool (or, lending, by a
     * sandbox it was lent to). */
    e->ok = g_strcmp0(d->driver, e->want_driver) == 0 && jd && jd->state == VFD_DEVICE_STATE_BOUND &&
            (g_str_equal(jd->owner, VFD_POOL_OWNER) || (rules && rules->lend && g_str_has_prefix(jd->owner, "sb-")));
    g_ptr_array_add(out, e);
  }
  vfd_host_unlock_journal(host);
  g_ptr_array_sort(out, entry_compare);
  return g_steal_pointer(&out);
}

/* ---- apply ---- */

static void
apply_group(VfdHost *host, GPtrArray *entries, int group, bool lend, GPtrArray *report)
{
  g_autoptr(VfdGroupLock) lock = vfd_host_lock_groups(host, &group, 1);
  g_autoptr(GError) error = NULL;
  VfdJournal *j = vfd_host_journal(host);
  guint n = 0, on_vfio = 0, ours = 0, journaled = 0;
  const char *other = NULL;
  const VfdPoolEntry *first = NULL;
  char b[VFD_BDF_STRLEN];

  vfd_host_lock_journal(host);
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    VfdJournalDevice *jd;
    g_autofree char *drv = NULL;
    if (e->iommu_group != group)
      continue;
    first = first ? first : e;
    n++;
    jd = vfd_journal_lookup(j, &e->bdf);
    if (vfd_sysfs_device_driver(vfd_host_sysfs(host), &e->bdf, &drv) == 0 && vfd_is_vfio_driver(drv))
      on_vfio++;
    if (jd) {
      journaled++;
      if (g_str_equal(jd->owner, VFD_POOL_OWNER) && jd->state == VFD_DEVICE_STATE_BOUND)
        ours++;
      else
        other = jd->owner;
    }
  }
  vfd_host_unlock_journal(host);
  if (!first)
    return;
  vfd_bdf_format(&first->bdf, b);
  if (other && lend && g_str_has_prefix(other, "sb-") && on_vfio == n) {
    vfd_reconcile_add(report, b, "pool-lent", "pool IOMMU group %d is lent to sandbox %s", group, other);
    return;
  }
  if (other) {
    vfd_reconcile_add(report, b, "busy", "pool IOMMU group %d is held for '%s'; left alone", group, other);
    return;
  }
  if (ours == n && on_vfio == n) {
    vfd_reconcile_add(report, b, "pool-kept", "pool IOMMU group %d stays on its VFIO driver", group);
    return;
  }
  if (journaled == 0 && on_vfio == n) {
    /* Bound at boot by the generated udev rule (or by hand): adopt it. */
    vfd_host_lock_journal(host);
    for (guint i = 0; i < entries->len; i++) {
      VfdPoolEntry *e = g_ptr_array_index(entries, i);
      VfdJournalDevice d = { .bdf = e->bdf, .iommu_group = group, .state = VFD_DEVICE_STATE_BOUND,
                             .owner = (char *) VFD_POOL_OWNER, .original_override = (char *) "" };
      if (e->iommu_group != group)
        continue;
      /* What a release gives it back to: the host driver modules.alias
       * names, when loaded; the override the boot rule wrote is not one to
       * keep. */
      d.original_driver = e->host_driver;
      vfd_journal_put(j, &d);
    }
    if (!vfd_journal_commit(j, &error)) {
      for (guint i = 0; i < entries->len; i++) {
        VfdPoolEntry *e = g_ptr_array_index(entries, i);
        if (e->iommu_group == group)
          vfd_journal_remove(j, &e->bdf);
      }
      vfd_host_unlock_journal(host);
      vfd_reconcile_add(report, b, "failed", "cannot journal pool IOMMU group %d: %s", group, error->message);
      return;
    }
    vfd_host_unlock_journal(host);
    vfd_reconcile_add(report, b, "pool-adopted",
                      "pool IOMMU group %d was on its VFIO driver already (the boot configuration); journaled "
                      "for 'pool'", group);
    return;
  }
  if (ours == journaled && ours > 0) {
    /* Journaled for the pool, but not all on the VFIO driver (a reboot
     * without the boot configuration, a function unbound by hand): give
     * the group back as the journal says, then bind it again. */
    g_autoptr(GPtrArray) notes = NULL;
    if (!vfd_host_release_group_full(host, &first->bdf, VFD_POOL_OWNER, NULL, &notes, &error)) {
      vfd_reconcile_add(report, b, "failed", "pool IOMMU group %d is off its VFIO driver and could not be reset "
                        "for a new bind: %s", group, error->message);
      return;
    }
  }
  if (!vfd_host_bind_group_full(host, &first->bdf, VFD_POOL_OWNER, VFD_BIND_NONE, NULL, NULL, &error)) {
    vfd_reconcile_add(report, b, "failed", "pool IOMMU group %d: %s", group, error->message);
    return;
  }
  vfd_reconcile_add(report, b, "pool-bound", "pool IOMMU group %d bound to its VFIO driver for 'pool'", group);
}

void
vfd_pool_apply(VfdHost *host, const VfdPoolRules *rules, GPtrArray *report)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(GHashTable) done = NULL;

  if (vfd_pool_is_empty(host, rules))
    return;
  entries = vfd_pool_collect(host, rules, vfd_host_variant(host), &error);
  done = g_hash_table_new(g_direct_hash, g_direct_equal);

  if (!entries) {
    vfd_reconcile_add(report, "pool", "failed", "cannot enumerate PCI devices: %s", error->message);
    return;
  }
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    if (g_hash_table_contains(done, GINT_TO_POINTER(e->iommu_group)))
      continue;
    g_hash_table_add(done, GINT_TO_POINTER(e->iommu_group));
    apply_group(host, entries, e->iommu_group, vfd_pool_rules_lend(rules), report);
  }
}

/* ---- CDI ---- */

static void
add_node(JsonBuilder *b, const char *path)
{
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "path");
  json_builder_add_string_value(b, path);
  json_builder_end_object(b);
}

char *
vfd_cdi_spec(GPtrArray *entries, const char *kind)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = NULL;
  bool gpu = g_str_equal(kind, "gpu");
  int last_group = G_MININT;

  json_builder_begin_object(b);
  json_builder_set_member_name(b, "cdiVersion");
  json_builder_add_string_value(b, "0.5.0");
  json_builder_set_member_name(b, "kind");
  json_builder_add_string_value(b, gpu ? "vfiod.io/gpu" : "vfiod.io/group");
  json_builder_set_member_name(b, "devices");
  json_builder_begin_array(b);
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    g_autofree char *name = NULL;
    g_autofree char *node = NULL;
    char bdf[VFD_BDF_STRLEN];
    bool group_ours = true;

    if (e->iommu_group == last_group)
      continue; /* entries are sorted by BDF: the first of a group names it */
    /* Only groups whose every function is bound for the pool. */
    for (guint k = 0; k < entries->len; k++) {
      VfdPoolEntry *o = g_ptr_array_index(entries, k);
      if (o->iommu_group == e->iommu_group && !o->ok)
        group_ours = false;
    }
    if (!group_ours)
      continue;
    last_group = e->iommu_group;
    name = gpu ? g_strdup(vfd_bdf_format(&e->bdf, bdf)) : g_strdup_printf("%d", e->iommu_group);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "containerEdits");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "deviceNodes");
    json_builder_begin_array(b);
    node = g_strdup_printf("/dev/vfio/%d", e->iommu_group);
    add_node(b, node);
    for (guint k = 0; k < entries->len; k++) {
      VfdPoolEntry *o = g_ptr_array_index(entries, k);
      if (o->iommu_group == e->iommu_group && o->cdev) {
        g_autofree char *cdev = g_strdup_printf("/dev/vfio/devices/%s", o->cdev);
        add_node(b, cdev);
      }
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_set_member_name(b, "containerEdits");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "deviceNodes");
  json_builder_begin_array(b);
  add_node(b, "/dev/vfio/vfio");
  json_builder_end_array(b);
  json_builder_end_object(b);
  json_builder_end_object(b);

  root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  {
    g_autofree char *text = json_generator_to_data(gen, NULL);
    return g_strconcat(text, "\n", NULL);
  }
}

/* Writes @text to @path atomically (temp file, fsync, rename) with mode
 * 0644, unless it holds @text already. *@ret_changed (may be NULL). */
static gboolean
write_if_changed(const char *path, const char *text, gboolean *ret_changed, GError **error)
{
  g_autofree char *old = NULL;

  if (g_file_get_contents(path, &old, NULL, NULL) && g_str_equal(old, text)) {
    if (ret_changed)
      *ret_changed = FALSE;
    return TRUE;
  }
  if (!g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0644,
                                error))
    return FALSE;
  if (ret_changed)
    *ret_changed = TRUE;
  return TRUE;
}

gboolean
vfd_cdi_write(const char *cdi_dir, GPtrArray *entries, GError **error)
{
  static const char *const kinds[] = { "group", "gpu" };
  bool any = entries->len > 0;

  for (guint i = 0; !any && i < G_N_ELEMENTS(kinds); i++) {
    g_autofree char *name = g_strdup_printf("vfiod-%s.json", kinds[i]);
    g_autofree char *path = g_build_filename(cdi_dir, name, NULL);
    any = g_file_test(path, G_FILE_TEST_EXISTS);
  }
  if (!any)
    return TRUE; /* no pool, no spec files */
  if (g_mkdir_with_parents(cdi_dir, 0755) < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot create %s: %s", cdi_dir, g_strerror(e));
    return FALSE;
  }
  for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
    g_autofree char *text = vfd_cdi_spec(entries, kinds[i]);
    g_autofree char *name = g_strdup_printf("vfiod-%s.json", kinds[i]);
    g_autofree char *path = g_build_filename(cdi_dir, name, NULL);
    if (!write_if_changed(path, text, NULL, error))
      return FALSE;
  }
  return TRUE;
}

/* ---- boot configuration ---- */

char *
vfd_pool_udev_rules(GPtrArray *entries)
{
  GString *s = g_string_new(NULL);

  g_string_append(s, "# Generated by 'vfioctl pool install-boot' (vfiod): the pool's PCI functions go to their VFIO\n"
                     "# driver when they appear, before any host driver can keep them. Regenerate, do not edit.\n");
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    char b[VFD_BDF_STRLEN];
    vfd_bdf_format(&e->bdf, b);
    /* ATTR{} is written while the rules are read, before any RUN (so
     * before 80-drivers.rules loads the host driver's module); the RUN
     * moves a function that a host driver loaded earlier already took. */
    g_string_append_printf(s,
                           "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"%s\", ATTR{driver_override}=\"%s\", "
                           "RUN{builtin}+=\"kmod load %s\", "
                           "RUN+=\"/bin/sh -c 'p=/sys/bus/pci/devices/%s; if [ -L $$p/driver ]; then "
                           "d=$$(readlink $$p/driver); [ $${d##*/} = %s ] || echo %s > $$p/driver/unbind; fi; "
                           "[ -L $$p/driver ] || echo %s > /sys/bus/pci/drivers_probe'\"\n",
                           b, e->want_driver, e->want_module, b, e->want_driver, b, b);
  }
  return g_string_free(s, FALSE);
}

char *
vfd_pool_modprobe_conf(GPtrArray *entries)
{
  GString *s = g_string_new(NULL);
  g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);

  g_string_append(s, "# Generated by 'vfioctl pool install-boot' (vfiod): the VFIO driver modules of the pool load\n"
                     "# before the host drivers that could otherwise take pool functions. Regenerate, do not edit.\n");
  for (guint i = 0; i < entries->len; i++) {
    VfdPoolEntry *e = g_ptr_array_index(entries, i);
    g_autofree char *line = NULL;
    if (!e->host_module)
      continue;
    line = g_strdup_printf("softdep %s pre: %s\n", e->host_module, e->want_module);
    if (g_ptr_array_find_with_equal_func(seen, line, g_str_equal, NULL))
      continue;
    g_string_append(s, line);
    g_ptr_array_add(seen, g_steal_pointer(&line));
  }
  return g_string_free(s, FALSE);
}

gboolean
vfd_pool_install_boot(const char *root, GPtrArray *entries, gboolean *ret_changed, char **ret_initramfs_note,
                      GError **error)
{
  g_autofree char *udev = vfd_pool_udev_rules(entries);
  g_autofree char *modprobe = vfd_pool_modprobe_conf(entries);
  const struct {
    const char *rel;
    const char *text;
  } files[] = { { VFD_POOL_UDEV_RULES, udev }, { VFD_POOL_MODPROBE_CONF, modprobe } };
  gboolean any = FALSE;

  for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *path = g_build_filename(root, files[i].rel, NULL);
    g_autofree char *dir = g_path_get_dirname(path);
    gboolean changed = FALSE;
    if (g_mkdir_with_parents(dir, 0755) < 0) {
      int e = errno;
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot create %s: %s", dir, g_strerror(e));
      return FALSE;
    }
    if (!write_if_changed(path, files[i].text, &changed, error))
      return FALSE;
    any |= changed;
  }
  if (ret_changed)
    *ret_changed = any;
  if (ret_initramfs_note) {
    g_autofree char *itools = g_build_filename(root, "etc", "initramfs-tools", NULL);
    g_autofree char *dracut = g_build_filename(root, "etc", "dracut.conf.d", NULL);
    *ret_initramfs_note = NULL;
    if (any && g_file_test(itools, G_FILE_TEST_IS_DIR))
      *ret_initramfs_note = g_strdup("the initramfs keeps its own copy of /etc/modprobe.d: regenerate it "
                                     "(update-initramfs -u) so that a host driver loaded from the initramfs "
                                     "finds the VFIO module first");
    else if (any && g_file_test(dracut, G_FILE_TEST_IS_DIR))
      *ret_initramfs_note = g_strdup("the initramfs keeps its own copies of /etc/modprobe.d and the udev rules: "
                                     "regenerate it (dracut -f) so that the pool is bound there too");
  }
  return TRUE;
}
