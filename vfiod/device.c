/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "device.h"

#include <errno.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

struct VfdHost {
  VfdSysfs *sysfs;
  VfdPolicy *policy;
  VfdJournal *journal;
};

void
vfd_pci_device_free(VfdPciDevice *dev)
{
  if (!dev)
    return;
  g_free(dev->driver);
  g_free(dev->name);
  g_free(dev);
}

bool
vfd_pci_class_is_bridge(guint32 class_code)
{
  return ((class_code >> 16) & 0xff) == 0x06;
}

VfdHost *
vfd_host_new(VfdSysfs *sysfs, VfdPolicy *policy, VfdJournal *journal)
{
  VfdHost *h = g_new0(VfdHost, 1);

  h->sysfs = sysfs;
  h->policy = policy;
  h->journal = journal;
  return h;
}

void
vfd_host_free(VfdHost *host)
{
  if (!host)
    return;
  vfd_sysfs_free(host->sysfs);
  vfd_policy_free(host->policy);
  vfd_journal_free(host->journal);
  g_free(host);
}

VfdSysfs *
vfd_host_sysfs(VfdHost *host)
{
  return host->sysfs;
}

VfdJournal *
vfd_host_journal(VfdHost *host)
{
  return host->journal;
}

const VfdPolicy *
vfd_host_policy(VfdHost *host)
{
  return host->policy;
}

/* ---- libpci ------------------------------------------------------------
 * libpci reports fatal problems through a->error and does not expect it to
 * return; we jump back out of the scan instead of letting it exit(). The
 * mutex makes the jump buffer and message safe to share. */
static GMutex pci_lock;
static jmp_buf pci_jmp;
static char pci_errmsg[256];

G_NORETURN static void G_GNUC_PRINTF(1, 2)
pci_fatal(char *msg, ...)
{
  va_list ap;

  va_start(ap, msg);
  vsnprintf(pci_errmsg, sizeof pci_errmsg, msg, ap);
  va_end(ap);
  longjmp(pci_jmp, 1);
}

static void G_GNUC_PRINTF(1, 2)
pci_quiet(char *msg, ...)
{
}


static gint
pci_device_cmp(gconstpointer a, gconstpointer b)
{
  const VfdPciDevice *x = *(VfdPciDevice *const *) a, *y = *(VfdPciDevice *const *) b;
  return vfd_bdf_compare(&x->bdf, &y->bdf);
}

/* Fills @devs from libpci. No auto-cleanup locals here: a libpci fatal
 * error longjmps back into this frame. Returns false with the message in
 * pci_errmsg. */
static bool
enumerate_locked(const char *path, GPtrArray *devs)
{
  struct pci_access *volatile a = NULL;

  if (setjmp(pci_jmp) != 0) {
    if (a)
      pci_cleanup(a);
    return false;
  }
  a = pci_alloc();
  a->error = pci_fatal;
  a->warning = pci_quiet;
  a->debug = pci_quiet;
  a->method = PCI_ACCESS_SYS_BUS_PCI;
  pci_set_param(a, "sysfs.path", (char *) path);
  pci_init(a);
  pci_scan_bus(a);

  for (struct pci_dev *d = a->devices; d; d = d->next) {
    VfdPciDevice *dev = g_new0(VfdPciDevice, 1);
    char namebuf[256];
    char *s;

    g_ptr_array_add(devs, dev);
    pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_IOMMU_GROUP |
                         PCI_FILL_DRIVER | PCI_FILL_NUMA_NODE);
    dev->bdf.domain = (guint16) d->domain;
    dev->bdf.bus = d->bus;
    dev->bdf.dev = d->dev;
    dev->bdf.func = d->func;
    dev->vendor = d->vendor_id;
    dev->device = d->device_id;
    dev->class_code = ((guint32) d->device_class << 8) | d->prog_if;
    dev->numa_node = d->numa_node;
    s = pci_get_string_property(d, PCI_FILL_IOMMU_GROUP);
    dev->iommu_group = s ? (int) g_ascii_strtoll(s, NULL, 10) : -1;
    s = pci_get_string_property(d, PCI_FILL_DRIVER);
    dev->driver = s ? g_strdup(s) : NULL;
    s = pci_lookup_name(a, namebuf, sizeof namebuf, PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
                        d->vendor_id, d->device_id);
    dev->name = s ? g_strdup(s) : NULL;
  }
  pci_cleanup(a);
  return true;
}

GPtrArray *
vfd_host_enumerate(VfdHost *host, GError **error)
{
  g_autoptr(GPtrArray) devs = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_pci_device_free);
  g_autofree char *path = g_build_filename(vfd_sysfs_root(host->sysfs), "bus", "pci", NULL);
  bool ok;

  g_mutex_lock(&pci_lock);
  ok = enumerate_locked(path, devs);
  if (!ok)
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "libpci cannot enumerate %s: %s", path, pci_errmsg);
  g_mutex_unlock(&pci_lock);
  if (!ok)
    return NULL;
  g_ptr_array_sort(devs, pci_device_cmp);
  return g_steal_pointer(&devs);
}

VfdPciDevice *
vfd_host_get_device(VfdHost *host, const VfdBdf *bdf, GError **error)
{
  g_autoptr(VfdPciDevice) dev = g_new0(VfdPciDevice, 1);
  char b[VFD_BDF_STRLEN];
  guint32 v = 0, d = 0, c = 0;
  g_autofree char *numa = NULL;
  int r;

  vfd_bdf_format(bdf, b);
  if (!vfd_sysfs_device_exists(host->sysfs, bdf)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", b);
    return NULL;
  }
  if ((r = vfd_sysfs_read_hex_attr(host->sysfs, bdf, "vendor", &v)) < 0 ||
      (r = vfd_sysfs_read_hex_attr(host->sysfs, bdf, "device", &d)) < 0 ||
      (r = vfd_sysfs_read_hex_attr(host->sysfs, bdf, "class", &c)) < 0 ||
      (r = vfd_sysfs_device_driver(host->sysfs, bdf, &dev->driver)) < 0) {
    g_set_error(error, VFD_ERROR, vfd_error_from_errno(r), "cannot read PCI device %s: %s", b, g_strerror(-r));
    return NULL;
  }
  dev->bdf = *bdf;
  dev->vendor = (guint16) v;
  dev->device = (guint16) d;
  dev->class_code = c & 0xffffff;
  if (vfd_sysfs_iommu_group(host->sysfs, bdf, &dev->iommu_group) < 0)
    dev->iommu_group = -1;
  dev->numa_node = -1;
  if (vfd_sysfs_read_attr(host->sysfs, bdf, "numa_node", &numa) == 0)
    dev->numa_node = (int) g_ascii_strtoll(numa, NULL, 10);
  return g_steal_pointer(&dev);
}

/* ---- bind / release ------------------------------------------------------ */

/* One group member and what this operation changed on it: the guard. */
typedef struct {
  VfdBdf bdf;
  char name[VFD_BDF_STRLEN];
  char *original_driver;   /* NULL: unbound before */
  char *original_override; /* "" when none */
  bool override_written;
  bool unbound;
  bool probed;
} Member;

static void
member_clear(gpointer p)
{
  Member *m = p;

  g_free(m->original_driver);
  g_free(m->original_override);
}

static GArray *
members_new(void)
{
  GArray *a = g_array_new(FALSE, TRUE, sizeof(Member));

  g_array_set_clear_func(a, member_clear);
  return a;
}

static bool
vfio_driver_loaded(VfdHost *host)
{
  g_autofree char *p = g_build_filename(vfd_sysfs_root(host->sysfs), "bus", "pci", "drivers", VFD_VFIO_DRIVER, NULL);

  return g_file_test(p, G_FILE_TEST_IS_DIR);
}

/* Current driver of @m, or NULL (also on read errors). */
static char *
current_driver(VfdHost *host, const VfdBdf *bdf)
{
  char *drv = NULL;

  if (vfd_sysfs_device_driver(host->sysfs, bdf, &drv) < 0)
    return NULL;
  return drv;
}

/* Puts @m back to its original driver and override, undoing only what the
 * guard says was done (when @all, everything: the release path). Returns 0 or
 * -errno of the first failing step, with the step in *@ret_step. */
static int
restore_member(VfdHost *host, Member *m, bool all, const char **ret_step)
{
  g_autofree char *drv = current_driver(host, &m->bdf);
  int r;

  if (g_strcmp0(drv, VFD_VFIO_DRIVER) == 0 && (all || m->probed || m->override_written)) {
    r = vfd_sysfs_unbind(host->sysfs, &m->bdf, VFD_VFIO_DRIVER);
    if (r < 0) {
      *ret_step = "unbind from vfio-pci";
      return r;
    }
    g_clear_pointer(&drv, g_free);
  }
  if (all || m->override_written) {
    const char *value = m->original_override && *m->original_override ? m->original_override : "\n";
    r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "driver_override", value);
    if (r < 0) {
      *ret_step = "restore driver_override";
      return r;
    }
  }
  if (m->original_driver && !drv) {
    r = vfd_sysfs_drivers_probe(host->sysfs, &m->bdf);
    if (r < 0) {
      *ret_step = "drivers_probe";
      return r;
    }
    drv = current_driver(host, &m->bdf);
  }
  if (m->original_driver && g_strcmp0(drv, m->original_driver) != 0) {
    *ret_step = "verify original driver";
    return -ENXIO;
  }
  return 0;
}

/* Moves @m to vfio-pci, recording each step done in the guard fields. */
static int
bind_member(VfdHost *host, Member *m, const char **ret_step)
{
  g_autofree char *drv = NULL;
  int r;

  r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "driver_override", VFD_VFIO_DRIVER);
  if (r < 0) {
    *ret_step = "write driver_override";
    return r;
  }
  m->override_written = true;

  drv = current_driver(host, &m->bdf);
  if (drv && !g_str_equal(drv, VFD_VFIO_DRIVER)) {
    r = vfd_sysfs_unbind(host->sysfs, &m->bdf, drv);
    if (r < 0) {
      *ret_step = "unbind from host driver";
      return r;
    }
    m->unbound = true;
  }

  r = vfd_sysfs_drivers_probe(host->sysfs, &m->bdf);
  m->probed = true;
  if (r < 0) {
    *ret_step = "drivers_probe";
    return r;
  }
  g_free(drv);
  drv = current_driver(host, &m->bdf);
  if (g_strcmp0(drv, VFD_VFIO_DRIVER) != 0) {
    *ret_step = drv ? "verify vfio-pci (another driver took the device)" : "verify vfio-pci (no driver bound)";
    return -ENXIO;
  }
  return 0;
}

static void
journal_members(VfdHost *host, GArray *members, int group, VfdDeviceState state, const char *owner)
{
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    VfdJournalDevice d = {
      .bdf = m->bdf,
      .iommu_group = group,
      .state = state,
      .owner = (char *) owner,
      .original_driver = m->original_driver,
      .original_override = m->original_override,
    };
    vfd_journal_put(host->journal, &d);
  }
}

static void
journal_forget(VfdHost *host, GArray *members)
{
  for (guint i = 0; i < members->len; i++)
    vfd_journal_remove(host->journal, &g_array_index(members, Member, i).bdf);
}

static GArray *
member_bdfs(GArray *members)
{
  GArray *a = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  for (guint i = 0; i < members->len; i++)
    g_array_append_val(a, g_array_index(members, Member, i).bdf);
  return a;
}

/* Collects the non-bridge members of @group with their current state, and
 * checks them against policy. Changes nothing. */
static GArray *
collect_group(VfdHost *host, int group, GError **error)
{
  g_autoptr(GArray) bdfs = NULL;
  g_autoptr(GArray) members = members_new();
  g_autoptr(GString) refused = g_string_new(NULL);
  int r = vfd_sysfs_iommu_group_devices(host->sysfs, group, &bdfs);

  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot list IOMMU group %d: %s", group, g_strerror(-r));
    return NULL;
  }
  for (guint i = 0; i < bdfs->len; i++) {
    const VfdBdf *bdf = &g_array_index(bdfs, VfdBdf, i);
    g_autoptr(VfdPciDevice) dev = vfd_host_get_device(host, bdf, error);
    Member m = { .bdf = *bdf };

    if (!dev) {
      g_prefix_error(error, "IOMMU group %d: ", group);
      return NULL;
    }
    if (vfd_pci_class_is_bridge(dev->class_code))
      continue;
    vfd_bdf_format(bdf, m.name);
    if (!vfd_policy_allows(host->policy, dev->vendor, dev->device, dev->class_code)) {
      g_string_append_printf(refused, "%s%s (%04x:%04x, class %06x)", refused->len ? ", " : "", m.name,
                             dev->vendor, dev->device, dev->class_code);
      continue;
    }
    r = vfd_sysfs_read_attr(host->sysfs, bdf, "driver_override", &m.original_override);
    if (r < 0) {
      g_set_error(error, VFD_ERROR, vfd_error_from_errno(r), "cannot read driver_override of %s: %s", m.name,
                  g_strerror(-r));
      return NULL;
    }
    m.original_driver = g_steal_pointer(&dev->driver);
    g_array_append_val(members, m);
  }
  if (refused->len) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "IOMMU group %d contains %s, which the [devices] rules do not allow; "
                "the whole group must be bound together, so the bind is refused",
                group, refused->str);
    return NULL;
  }
  if (members->len == 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED, "IOMMU group %d has only bridges", group);
    return NULL;
  }
  return g_steal_pointer(&members);
}

/* The kernel creates /dev/vfio/<group> while vfio-pci binds; devtmpfs may
 * lag a little. Waits up to about 1 s. */
static bool
wait_vfio_node(VfdHost *host, int group)
{
  for (int i = 0; i < 100; i++) {
    if (vfd_sysfs_vfio_group_exists(host->sysfs, group))
      return true;
    g_usleep(10 * 1000);
  }
  return false;
}

gboolean
vfd_host_bind_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members, int *ret_group,
                    GError **error)
{
  char name[VFD_BDF_STRLEN];
  g_autoptr(GArray) members = NULL;
  g_autoptr(GError) local = NULL;
  guint owned = 0, done;
  int group, r;
  const char *step = NULL;

  vfd_bdf_format(bdf, name);
  if (!owner || !*owner) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "an owner name is required");
    return FALSE;
  }
  /* Stage 0: checks. Nothing is written until all of them pass. */
  if (!vfd_sysfs_device_exists(host->sysfs, bdf)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", name);
    return FALSE;
  }
  r = vfd_sysfs_iommu_group(host->sysfs, bdf, &group);
  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                "PCI device %s has no IOMMU group: the IOMMU is off or unsupported "
                "(boot with intel_iommu=on or amd_iommu=on, and enable VT-d/AMD-Vi in firmware)",
                name);
    return FALSE;
  }
  members = collect_group(host, group, error);
  if (!members)
    return FALSE;

  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &m->bdf);

    if (jd && jd->state == VFD_DEVICE_STATE_BOUND && g_str_equal(jd->owner, owner)) {
      owned++;
      continue;
    }
    if (jd) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s is %s for '%s'", m->name,
                  vfd_device_state_to_string(jd->state), jd->owner);
      return FALSE;
    }
    if (g_strcmp0(m->original_driver, VFD_VFIO_DRIVER) == 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                  "%s (IOMMU group %d) is already on vfio-pci but was not bound by vfiod; leaving it alone",
                  m->name, group);
      return FALSE;
    }
  }
  if (owned == members->len) {
    if (ret_members)
      *ret_members = member_bdfs(members);
    if (ret_group)
      *ret_group = group;
    return TRUE;
  }
  if (owned > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "IOMMU group %d is partly bound for '%s'", group, owner);
    return FALSE;
  }
  if (!vfio_driver_loaded(host)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED,
                        "the vfio-pci driver is not loaded (modprobe vfio-pci)");
    return FALSE;
  }

  /* Stage 1: journal first, durably, before any sysfs write. */
  journal_members(host, members, group, VFD_DEVICE_STATE_BINDING, owner);
  if (!vfd_journal_commit(host->journal, error)) {
    journal_forget(host, members);
    return FALSE;
  }

  /* Stage 2: each member, in BDF order. */
  for (done = 0; done < members->len; done++) {
    Member *m = &g_array_index(members, Member, done);
    r = bind_member(host, m, &step);
    if (r < 0) {
      g_set_error(&local, VFD_ERROR, r == -ENXIO ? VFD_ERROR_FAILED : vfd_error_from_errno(r),
                  "binding %s to vfio-pci failed at %s: %s", m->name, step,
                  r == -ENXIO ? "the device is not on vfio-pci" : g_strerror(-r));
      done++; /* the failing member is partly done: roll it back too */
      break;
    }
  }

  /* Stage 3: the group node. */
  if (!local && !wait_vfio_node(host, group))
    g_set_error(&local, VFD_ERROR, VFD_ERROR_FAILED,
                "%s/vfio/%d did not appear after binding IOMMU group %d", vfd_sysfs_dev_root(host->sysfs), group,
                group);

  if (local) {
    /* Rollback: reverse order, only what was done; keep the first error. */
    g_autoptr(GString) left = g_string_new(NULL);
    while (done-- > 0) {
      Member *m = &g_array_index(members, Member, done);
      if (restore_member(host, m, false, &step) < 0) {
        g_string_append_printf(left, " %s (%s)", m->name, step);
        vfd_journal_lookup(host->journal, &m->bdf)->state = VFD_DEVICE_STATE_RELEASING;
      } else {
        vfd_journal_remove(host->journal, &m->bdf);
      }
    }
    for (guint i = 0; i < members->len; i++) {
      VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &g_array_index(members, Member, i).bdf);
      if (jd && jd->state == VFD_DEVICE_STATE_BINDING)
        vfd_journal_remove(host->journal, &jd->bdf);
    }
    vfd_journal_commit(host->journal, NULL);
    if (left->len)
      g_prefix_error(&local, "rollback could not restore%s; ", left->str);
    else
      g_prefix_error(&local, "rolled back; ");
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }

  /* Stage 4: journal the result. */
  journal_members(host, members, group, VFD_DEVICE_STATE_BOUND, owner);
  if (!vfd_journal_commit(host->journal, error))
    return FALSE; /* the devices are bound; the journal still says "binding", which start-up finishes */
  if (ret_members)
    *ret_members = member_bdfs(members);
  if (ret_group)
    *ret_group = group;
  return TRUE;
}

gboolean
vfd_host_release_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                       GError **error)
{
  char name[VFD_BDF_STRLEN];
  VfdJournalDevice *jd = vfd_journal_lookup(host->journal, bdf);
  g_autoptr(GArray) members = members_new();
  g_autoptr(GString) failed = g_string_new(NULL);
  g_autofree char *group_owner = NULL;
  GPtrArray *all = vfd_journal_devices(host->journal);
  int group, first_err = 0;

  vfd_bdf_format(bdf, name);
  if (!jd) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s is not bound by vfiod", name);
    return FALSE;
  }
  if (owner && !g_str_equal(jd->owner, owner)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s is bound for '%s', not '%s'", name, jd->owner, owner);
    return FALSE;
  }
  if (jd->state == VFD_DEVICE_STATE_STUCK) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_STUCK, "%s is stuck (a sysfs write never returned); see vfioctl list",
                name);
    return FALSE;
  }
  group = jd->iommu_group;
  /* A copy: journal_members() below replaces the record jd points to. */
  group_owner = g_strdup(jd->owner);
  jd = NULL;
  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    Member m = { .bdf = d->bdf };
    if (d->iommu_group != group)
      continue;
    vfd_bdf_format(&d->bdf, m.name);
    m.original_driver = g_strdup(d->original_driver);
    m.original_override = g_strdup(d->original_override);
    g_array_append_val(members, m);
  }

  /* Stage 1: journal the transition. */
  journal_members(host, members, group, VFD_DEVICE_STATE_RELEASING, group_owner);
  if (!vfd_journal_commit(host->journal, error))
    return FALSE;

  /* Stage 2: restore each member, reverse BDF order; go on past failures. */
  for (guint i = members->len; i-- > 0;) {
    Member *m = &g_array_index(members, Member, i);
    const char *step = NULL;
    int r = vfd_sysfs_device_exists(host->sysfs, &m->bdf) ? restore_member(host, m, true, &step) : -ENODEV;

    if (r == -ENODEV && !step) {
      /* The device is gone (hot-unplugged): nothing left to restore. */
      vfd_journal_remove(host->journal, &m->bdf);
      continue;
    }
    if (r < 0) {
      g_string_append_printf(failed, "%s%s at %s: %s", failed->len ? "; " : "", m->name, step,
                             r == -ENXIO ? "not back on its original driver" : g_strerror(-r));
      if (!first_err)
        first_err = r;
      continue;
    }
    vfd_journal_remove(host->journal, &m->bdf);
  }

  /* Stage 3: journal the result. */
  if (!vfd_journal_commit(host->journal, error))
    return FALSE;
  if (first_err) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "release of IOMMU group %d incomplete: %s", group,
                failed->str);
    return FALSE;
  }
  if (ret_members)
    *ret_members = member_bdfs(members);
  return TRUE;
}
