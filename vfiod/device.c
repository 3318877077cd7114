/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "device.h"

#include <errno.h>
#include <malloc.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include "failpoint.h"
#include "nvidia.h"
#include "variant.h"

struct VfdHost {
  VfdSysfs *sysfs;
  VfdPolicy *policy;       /* replaced by reloads: read it through vfd_host_dup_policy() */
  GMutex policy_lock;      /* policy (the pointer) */
  VfdJournal *journal;
  GRecMutex journal_lock; /* the journal, in memory and on disk */
  GMutex table_lock;      /* group_locks */
  GMutex reserve_lock;    /* reserved, and picking units */
  GHashTable *reserved;   /* IOMMU groups picked by a create that has not bound them yet */
  GHashTable *group_locks; /* IOMMU group number -> GRecMutex* */
  char *proc_root;
  char *nvidia_smi; /* asked about persistence mode before unbinding nvidia; NULL: not asked */
  VfdResetPolicy reset_policy;
  VfdVariant *variant;     /* VFIO variant driver lookup; NULL: plain vfio-pci for all */
  VfdPoolMemberFunc pool_member; /* pool lending ([pool] mode=sandboxes); NULL: none */
  void *pool_member_data;
};

struct VfdGroupLock {
  VfdHost *host;
  GArray *groups; /* int, ascending, each locked */
};

static void
rec_mutex_free(gpointer p)
{
  g_rec_mutex_clear(p);
  g_free(p);
}

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
  guint32 sub = (class_code >> 8) & 0xffff;

  return sub == 0x0600 || sub == 0x0604 || sub == 0x0609;
}

bool
vfd_pci_is_nvswitch(guint16 vendor, guint32 class_code)
{
  return vendor == 0x10de && ((class_code >> 8) & 0xffff) == 0x0680;
}

/* The NVIDIA entries of Linux's NO_BUS_RESET quirks (drivers/pci/quirks.c,
 * quirk_nvidia_no_bus_reset: device & 0xffc0 == 0x2340, and 0x1eb8). */
static const struct {
  guint16 vendor;
  guint16 first, last;
} no_bus_reset_quirks[] = {
  { 0x10de, 0x2340, 0x237f }, /* "bus reset leaves the device inoperable" */
  { 0x10de, 0x1eb8, 0x1eb8 }, /* Tesla T4 */
};

bool
vfd_pci_no_bus_reset(guint16 vendor, guint16 device)
{
  for (guint i = 0; i < G_N_ELEMENTS(no_bus_reset_quirks); i++)
    if (vendor == no_bus_reset_quirks[i].vendor && device >= no_bus_reset_quirks[i].first &&
        device <= no_bus_reset_quirks[i].last)
      return true;
  return false;
}

VfdHost *
vfd_host_new(VfdSysfs *sysfs, VfdPolicy *policy, VfdJournal *journal)
{
  VfdHost *h = g_new0(VfdHost, 1);

  h->sysfs = sysfs;
  h->policy = policy;
  h->journal = journal;
  g_rec_mutex_init(&h->journal_lock);
  g_mutex_init(&h->table_lock);
  g_mutex_init(&h->reserve_lock);
  h->reserved = g_hash_table_new(g_direct_hash, g_direct_equal);
  h->group_locks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, rec_mutex_free);
  h->proc_root = g_strdup("/proc");
  h->nvidia_smi = g_strdup("nvidia-smi");
  g_mutex_init(&h->policy_lock);
  return h;
}

void
vfd_host_free(VfdHost *host)
{
  if (!host)
    return;
  vfd_sysfs_free(host->sysfs);
  vfd_policy_unref(host->policy);
  vfd_journal_free(host->journal);
  g_hash_table_unref(host->group_locks);
  g_free(host->proc_root);
  g_free(host->nvidia_smi);
  vfd_variant_free(host->variant);
  g_mutex_clear(&host->policy_lock);
  g_rec_mutex_clear(&host->journal_lock);
  g_mutex_clear(&host->table_lock);
  g_mutex_clear(&host->reserve_lock);
  g_hash_table_unref(host->reserved);
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

VfdPolicy *
vfd_host_dup_policy(VfdHost *host)
{
  VfdPolicy *p;

  g_mutex_lock(&host->policy_lock);
  p = vfd_policy_ref(host->policy);
  g_mutex_unlock(&host->policy_lock);
  return p;
}

void
vfd_host_set_policy(VfdHost *host, VfdPolicy *policy)
{
  VfdPolicy *old;

  g_mutex_lock(&host->policy_lock);
  old = host->policy;
  host->policy = policy;
  g_mutex_unlock(&host->policy_lock);
  /* Freed now unless a worker still holds it (vfd_host_dup_policy()). */
  vfd_policy_unref(old);
}

void
vfd_host_set_pool_lending(VfdHost *host, VfdPoolMemberFunc fn, void *data)
{
  host->pool_member = fn;
  host->pool_member_data = data;
}

/* A record the pool may lend: bound for "pool", lending on. */
static bool
lendable(VfdHost *host, const VfdJournalDevice *jd)
{
  return host->pool_member && jd && jd->state == VFD_DEVICE_STATE_BOUND && g_str_equal(jd->owner, "pool");
}

/* Gives the records of IOMMU group @group to @owner/@uid (journal lock
 * held), durably; on failure the old owners stay. */
static gboolean
hand_over_locked(VfdHost *host, int group, const char *owner, guint32 uid, GError **error)
{
  GPtrArray *all = vfd_journal_devices(host->journal);
  g_autoptr(GPtrArray) old = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GArray) bdfs = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));

  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    if (d->iommu_group != group)
      continue;
    g_array_append_val(bdfs, d->bdf);
    g_array_append_val(uids, d->owner_uid);
    g_ptr_array_add(old, g_strdup(d->owner));
  }
  for (guint i = 0; i < bdfs->len; i++) {
    VfdJournalDevice *d = vfd_journal_lookup(host->journal, &g_array_index(bdfs, VfdBdf, i));
    g_free(d->owner);
    d->owner = g_strdup(owner);
    d->owner_uid = uid;
  }
  if (vfd_journal_commit(host->journal, error))
    return TRUE;
  for (guint i = 0; i < bdfs->len; i++) {
    VfdJournalDevice *d = vfd_journal_lookup(host->journal, &g_array_index(bdfs, VfdBdf, i));
    g_free(d->owner);
    d->owner = g_strdup(g_ptr_array_index(old, i));
    d->owner_uid = g_array_index(uids, guint32, i);
  }
  return FALSE;
}

VfdVariant *
vfd_host_variant(VfdHost *host)
{
  return host->variant;
}

void
vfd_host_set_variant(VfdHost *host, VfdVariant *variant)
{
  vfd_variant_free(host->variant);
  host->variant = variant;
}

void
vfd_host_set_proc_root(VfdHost *host, const char *proc_root)
{
  g_free(host->proc_root);
  host->proc_root = g_strdup(proc_root);
}

void
vfd_host_set_nvidia_smi(VfdHost *host, const char *nvidia_smi)
{
  g_free(host->nvidia_smi);
  host->nvidia_smi = g_strdup(nvidia_smi);
}

void
vfd_host_set_reset_policy(VfdHost *host, VfdResetPolicy policy)
{
  host->reset_policy = policy;
}

void
vfd_host_set_reset_on_release(VfdHost *host, bool reset)
{
  host->reset_policy = reset ? VFD_RESET_ALWAYS : VFD_RESET_NEVER;
}

void
vfd_host_lock_journal(VfdHost *host)
{
  g_rec_mutex_lock(&host->journal_lock);
}

void
vfd_host_unlock_journal(VfdHost *host)
{
  g_rec_mutex_unlock(&host->journal_lock);
}

static GRecMutex *
group_mutex(VfdHost *host, int group)
{
  GRecMutex *m;

  g_mutex_lock(&host->table_lock);
  m = g_hash_table_lookup(host->group_locks, GINT_TO_POINTER(group));
  if (!m) {
    m = g_new0(GRecMutex, 1);
    g_rec_mutex_init(m);
    g_hash_table_insert(host->group_locks, GINT_TO_POINTER(group), m);
  }
  g_mutex_unlock(&host->table_lock);
  return m;
}

static gint
int_cmp(gconstpointer a, gconstpointer b)
{
  int x = *(const int *) a, y = *(const int *) b;
  return (x > y) - (x < y);
}

VfdGroupLock *
vfd_host_lock_groups(VfdHost *host, const int *groups, guint n_groups)
{
  VfdGroupLock *l = g_new0(VfdGroupLock, 1);

  l->host = host;
  l->groups = g_array_new(FALSE, FALSE, sizeof(int));
  for (guint i = 0; i < n_groups; i++)
    if (groups[i] >= 0)
      g_array_append_val(l->groups, groups[i]);
  g_array_sort(l->groups, int_cmp);
  /* drop duplicates, then lock in ascending order */
  for (guint i = 1; i < l->groups->len;)
    if (g_array_index(l->groups, int, i) == g_array_index(l->groups, int, i - 1))
      g_array_remove_index(l->groups, i);
    else
      i++;
  for (guint i = 0; i < l->groups->len; i++)
    g_rec_mutex_lock(group_mutex(host, g_array_index(l->groups, int, i)));
  return l;
}

void
vfd_group_lock_release(VfdGroupLock *lock)
{
  if (!lock)
    return;
  for (guint i = lock->groups->len; i-- > 0;)
    g_rec_mutex_unlock(group_mutex(lock->host, g_array_index(lock->groups, int, i)));
  g_array_unref(lock->groups);
  g_free(lock);
}

/* ---- libpci ------------------------------------------------------------
 * libpci reports fatal problems through a->error and does not expect it to
 * return; we jump back out of the scan instead of letting it exit(). The
 * mutex makes the jump buffer and message safe to share. */
static GMutex pci_lock;
static jmp_buf pci_jmp;
static char pci_errmsg[256];
/* "Vendor Device" names from pci.ids by (vendor << 16 | device); a NULL
 * value: pci.ids has no name for it. Under pci_lock. libpci parses the whole
 * pci.ids (1.3 MB) into a hash the first time a pci_access looks a name up,
 * which took ~20 ms per enumeration (issue 17): names are looked up only for
 * IDs not seen before, i.e. at the first enumeration and when a device with
 * new IDs appears. */
static GHashTable *pci_names;

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
  volatile bool looked_up = false;

  if (!pci_names)
    pci_names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
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
    {
      gpointer key = GUINT_TO_POINTER(((guint) d->vendor_id << 16) | d->device_id), cached;
      if (!g_hash_table_lookup_extended(pci_names, key, NULL, &cached)) {
        s = pci_lookup_name(a, namebuf, sizeof namebuf,
                            PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS, d->vendor_id,
                            d->device_id);
        cached = s ? g_strdup(s) : NULL;
        g_hash_table_insert(pci_names, key, cached);
        looked_up = true;
      }
      dev->name = g_strdup(cached);
    }
  }
  pci_cleanup(a);
  /* The parsed pci.ids is freed now: give its pages back (RSS). */
  if (looked_up)
    malloc_trim(0);
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
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    g_autofree char *bv = NULL;
    d->boot_vga = vfd_sysfs_read_attr(host->sysfs, &d->bdf, "boot_vga", &bv) == 0 && g_strcmp0(bv, "1") == 0;
  }
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
  {
    g_autofree char *bv = NULL;
    dev->boot_vga = vfd_sysfs_read_attr(host->sysfs, bdf, "boot_vga", &bv) == 0 && g_strcmp0(bv, "1") == 0;
  }
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
  char *original_d3cold;       /* d3cold_allowed to write back; NULL: left alone */
  char *original_reset_method; /* reset_method to write back; NULL: left alone */
  char *reset_method;          /* what the bind writes to reset_method (bus resets taken out) */
  bool d3cold_written;
  bool reset_method_written;
  bool override_written;
  bool unbound;
  bool probed;
  bool stuck; /* a write to it never returned: leave it alone */
  char *vfio_driver; /* the VFIO driver it goes to: "vfio-pci" or a variant driver (variant.h) */
  char *vfio_module; /* that driver's module */
} Member;

static void
member_clear(gpointer p)
{
  Member *m = p;

  g_free(m->original_driver);
  g_free(m->original_override);
  g_free(m->original_d3cold);
  g_free(m->original_reset_method);
  g_free(m->reset_method);
  g_free(m->vfio_driver);
  g_free(m->vfio_module);
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

/* Whether @list (a sysfs reset_method value, space-separated) names a bus
 * reset. */
static bool
lists_bus_reset(const char *list)
{
  g_auto(GStrv) names = g_strsplit(list ? list : "", " ", -1);

  return g_strv_contains((const char *const *) names, "bus") ||
         g_strv_contains((const char *const *) names, "cxl_bus");
}

/* @list without its bus resets ("" when nothing is left). */
static char *
without_bus_reset(const char *list)
{
  g_auto(GStrv) names = g_strsplit(list ? list : "", " ", -1);
  g_autoptr(GString) out = g_string_new(NULL);

  for (char **n = names; *n; n++)
    if (**n && !g_str_equal(*n, "bus") && !g_str_equal(*n, "cxl_bus"))
      g_string_append_printf(out, "%s%s", out->len ? " " : "", *n);
  return g_string_free(g_steal_pointer(&out), FALSE);
}

/* The release's function reset of @m, off any driver now, when the reset
 * policy wants one and the kernel offers a method (never a bus reset for a
 * NO_BUS_RESET device). What it skips goes to @notes. Returns 0 or the
 * -errno of the reset write, with the step in *@ret_step. */
static int
reset_member(VfdHost *host, Member *m, GPtrArray *notes, const char **ret_step)
{
  guint32 vendor = 0, device = 0, cls = 0;
  g_autofree char *methods = NULL;
  bool quirk;
  int r;

  if (vfd_sysfs_read_hex_attr(host->sysfs, &m->bdf, "vendor", &vendor) < 0 ||
      vfd_sysfs_read_hex_attr(host->sysfs, &m->bdf, "device", &device) < 0 ||
      vfd_sysfs_read_hex_attr(host->sysfs, &m->bdf, "class", &cls) < 0)
    vendor = device = cls = 0; /* unknown: only VFD_RESET_ALWAYS resets it */
  if (!vfd_reset_policy_wants(host->reset_policy, (guint16) vendor, cls))
    return 0;
  quirk = vfd_pci_no_bus_reset((guint16) vendor, (guint16) device);
  r = vfd_sysfs_read_attr(host->sysfs, &m->bdf, "reset_method", &methods);
  if (r == -ENOENT) {
    /* Kernels before 5.15 have no reset_method; `reset` exists when the
     * kernel has a method for the device, but which one is not ours to pick. */
    g_autofree char *reset = vfd_sysfs_device_path(host->sysfs, &m->bdf, "reset");
    if (quirk) {
      g_ptr_array_add(notes, g_strdup_printf("%s not reset: this kernel has no reset_method to keep a bus reset, "
                                             "which this device does not survive (NO_BUS_RESET), out of it",
                                             m->name));
      return 0;
    }
    if (!g_file_test(reset, G_FILE_TEST_EXISTS)) {
      g_ptr_array_add(notes, g_strdup_printf("%s not reset: the kernel has no reset method for it", m->name));
      return 0;
    }
  } else if (r < 0 || !*methods) {
    g_ptr_array_add(notes, g_strdup_printf("%s not reset: the kernel offers no reset method for it "
                                           "(reset_method is empty)", m->name));
    return 0;
  } else if (quirk && lists_bus_reset(methods)) {
    /* The bind took bus resets out; someone put them back. */
    g_ptr_array_add(notes, g_strdup_printf("%s not reset: its reset_method \"%s\" lists a bus reset, which this "
                                           "device does not survive (NO_BUS_RESET)", m->name, methods));
    return 0;
  }
  r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "reset", "1");
  if (r < 0) {
    *ret_step = r == -ETIMEDOUT ? "function reset"
                                : "function reset (the function stays off host drivers: its next driver could find "
                                  "its firmware still running; retry the release, or give it back unreset with "
                                  "[devices] reset_on_release=false)";
    return r;
  }
  return 0;
}

/* Writes @value to attribute @attr of @m; a missing attribute (-ENOENT) is
 * not an error: there is nothing to restore. */
static int
write_back(VfdHost *host, Member *m, const char *attr, const char *value)
{
  int r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, attr, value);

  return r == -ENOENT ? 0 : r;
}

/* Puts @m back to its original driver, override, reset methods and
 * d3cold_allowed, undoing only what the guard says was done (when @all,
 * everything the journal holds: the release path, which also resets the
 * function, see reset_member()). What was skipped goes to @notes (may be
 * NULL when !@all). Returns 0 or -errno of the first failing step, with the
 * step in *@ret_step. */
static int
restore_member(VfdHost *host, Member *m, bool all, GPtrArray *notes, const char **ret_step)
{
  g_autofree char *drv = current_driver(host, &m->bdf);
  int r;

  if (vfd_is_vfio_driver(drv) && (all || m->probed || m->override_written)) {
    r = vfd_sysfs_unbind(host->sysfs, &m->bdf, drv);
    if (r < 0) {
      *ret_step = "unbind from vfio-pci";
      return r;
    }
    g_clear_pointer(&drv, g_free);
  }
  /* Off every driver (also when an earlier, interrupted release got this
   * far): reset before anything else of the host may take it. */
  if (all && !drv) {
    r = reset_member(host, m, notes, ret_step);
    if (r < 0)
      return r;
  }
  if (m->original_reset_method && (all || m->reset_method_written)) {
    r = write_back(host, m, "reset_method", m->original_reset_method);
    /* A method the kernel no longer offers: its own default list instead. */
    if (r == -EINVAL)
      r = write_back(host, m, "reset_method", "default");
    if (r < 0) {
      *ret_step = "restore reset_method";
      return r;
    }
    m->reset_method_written = false;
  }
  if (m->original_d3cold && (all || m->d3cold_written)) {
    r = write_back(host, m, "d3cold_allowed", m->original_d3cold);
    if (r < 0) {
      *ret_step = "restore d3cold_allowed";
      return r;
    }
    m->d3cold_written = false;
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

/* The driver_override value for @m: its variant driver, else vfio-pci. */
static const char *
vfio_driver_of(const Member *m)
{
  return m->vfio_driver ? m->vfio_driver : VFD_VFIO_DRIVER;
}

/* Picks each member's VFIO driver from its modalias (variant.h) when the
 * host has a variant lookup, and makes sure a variant driver is loaded (on
 * the real /sys: loads its module; a fake tree must have it). */
static gboolean
choose_vfio_drivers(VfdHost *host, GArray *members, GError **error)
{
  const char *root = vfd_sysfs_root(host->sysfs);

  if (!host->variant)
    return TRUE;
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    g_autofree char *modalias = NULL;
    g_autofree char *dir = NULL;

    if (vfd_sysfs_read_attr(host->sysfs, &m->bdf, "modalias", &modalias) < 0)
      continue; /* no modalias: plain vfio-pci */
    m->vfio_module = vfd_variant_module_for(host->variant, modalias, error);
    if (!m->vfio_module) {
      g_prefix_error(error, "%s: ", m->name);
      return FALSE;
    }
    if (g_str_equal(m->vfio_module, VFD_VFIO_PCI_MODULE))
      continue;
    m->vfio_driver = vfd_variant_driver_name(root, m->vfio_module);
    dir = g_build_filename(root, "bus", "pci", "drivers", m->vfio_driver, NULL);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR) && g_str_equal(root, "/sys")) {
      if (!vfd_variant_load(host->variant, m->vfio_module, error)) {
        g_prefix_error(error, "%s needs the VFIO variant driver %s: ", m->name, m->vfio_module);
        return FALSE;
      }
      g_free(m->vfio_driver);
      m->vfio_driver = vfd_variant_driver_name(root, m->vfio_module);
      g_free(dir);
      dir = g_build_filename(root, "bus", "pci", "drivers", m->vfio_driver, NULL);
    }
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
                  "%s needs the VFIO variant driver %s (module %s), which is not loaded (modprobe %s)", m->name,
                  m->vfio_driver, m->vfio_module, m->vfio_module);
      return FALSE;
    }
  }
  return TRUE;
}

/* Moves @m to vfio-pci, recording each step done in the guard fields:
 * first its power and reset attributes (while held, no D3cold and no bus
 * reset for a NO_BUS_RESET device), then the driver. */
static int
bind_member(VfdHost *host, Member *m, const char **ret_step)
{
  g_autofree char *drv = NULL;
  int r;

  if (m->original_d3cold) {
    r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "d3cold_allowed", "0");
    if (r < 0 && r != -ENOENT) {
      *ret_step = "write d3cold_allowed";
      return r;
    }
    m->d3cold_written = r == 0;
  }
  if (m->original_reset_method) {
    /* "\n" (an empty list) disables every method: nothing but a bus reset was offered. */
    r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "reset_method", *m->reset_method ? m->reset_method : "\n");
    if (r < 0 && r != -ENOENT) {
      *ret_step = "write reset_method";
      return r;
    }
    m->reset_method_written = r == 0;
  }

  r = vfd_sysfs_write_attr(host->sysfs, &m->bdf, "driver_override", vfio_driver_of(m));
  if (r < 0) {
    *ret_step = "write driver_override";
    return r;
  }
  m->override_written = true;

  drv = current_driver(host, &m->bdf);
  if (drv && !g_str_equal(drv, vfio_driver_of(m))) {
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
  if (g_strcmp0(drv, vfio_driver_of(m)) != 0) {
    *ret_step = drv ? "verify vfio-pci (another driver took the device)" : "verify vfio-pci (no driver bound)";
    return -ENXIO;
  }
  return 0;
}

static void
journal_members(VfdHost *host, GArray *members, int group, VfdDeviceState state, const char *owner,
                guint32 owner_uid)
{
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    VfdJournalDevice d = {
      .bdf = m->bdf,
      .iommu_group = group,
      .state = state,
      .owner = (char *) owner,
      .owner_uid = owner_uid,
      .original_driver = m->original_driver,
      .original_override = m->original_override,
      .original_d3cold = m->original_d3cold,
      .original_reset_method = m->original_reset_method,
    };
    vfd_journal_put(host->journal, &d);
  }
}

static void
journal_set_state(VfdHost *host, const VfdBdf *bdf, VfdDeviceState state)
{
  VfdJournalDevice *jd = vfd_journal_lookup(host->journal, bdf);

  if (jd)
    jd->state = state;
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
    /* A stuck member first: reading its attributes can block while the
     * kernel holds its device lock for the parked unbind. */
    {
      VfdJournalDevice *jd;
      gboolean stuck;
      vfd_host_lock_journal(host);
      jd = vfd_journal_lookup(host->journal, bdf);
      stuck = jd && jd->state == VFD_DEVICE_STATE_STUCK;
      vfd_host_unlock_journal(host);
      if (stuck) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_STUCK,
                    "%s is stuck (a sysfs write to it never returned); see vfioctl list", m.name);
        return NULL;
      }
    }
    {
      g_autofree char *boot_vga = NULL;
      const char *why;
      bool is_boot_vga = vfd_sysfs_read_attr(host->sysfs, bdf, "boot_vga", &boot_vga) == 0 &&
                         g_strcmp0(boot_vga, "1") == 0;

      g_autoptr(VfdPolicy) policy = vfd_host_dup_policy(host);

      why = vfd_policy_refusal(policy, dev->vendor, dev->device, dev->class_code, is_boot_vga);
      if (why) {
        g_string_append_printf(refused, "%s%s (%04x:%04x, class %06x: %s)", refused->len ? ", " : "", m.name,
                               dev->vendor, dev->device, dev->class_code, why);
        continue;
      }
    }
    r = vfd_sysfs_read_attr(host->sysfs, bdf, "driver_override", &m.original_override);
    if (r < 0) {
      g_set_error(error, VFD_ERROR, vfd_error_from_errno(r), "cannot read driver_override of %s: %s", m.name,
                  g_strerror(-r));
      return NULL;
    }
    /* Power and reset while held (see bind_member()); an attribute that
     * cannot be read is left alone. */
    {
      g_autofree char *d3cold = NULL;
      g_autofree char *methods = NULL;
      if (vfd_sysfs_read_attr(host->sysfs, bdf, "d3cold_allowed", &d3cold) == 0 && g_str_equal(d3cold, "1"))
        m.original_d3cold = g_steal_pointer(&d3cold);
      if (vfd_pci_no_bus_reset(dev->vendor, dev->device) &&
          vfd_sysfs_read_attr(host->sysfs, bdf, "reset_method", &methods) == 0 && lists_bus_reset(methods)) {
        m.reset_method = without_bus_reset(methods);
        m.original_reset_method = g_steal_pointer(&methods);
      }
    }
    m.original_driver = g_steal_pointer(&dev->driver);
    g_array_append_val(members, m);
  }
  if (refused->len) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "IOMMU group %d contains %s, which vfiod may not take; "
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
 * lag a little (its node is made by the kdevtmpfs thread). Waits up to
 * about 1 s, looking every 1 ms (issue 17: a 10 ms step added up to 10 ms
 * to every bind). */
static bool
wait_vfio_node(VfdHost *host, int group)
{
  gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;

  for (;;) {
    if (vfd_sysfs_vfio_group_exists(host->sysfs, group))
      return true;
    if (g_get_monotonic_time() >= end)
      return false;
    g_usleep(1000);
  }
}

/* Message for a failed step of @m. */
static char *
step_message(const char *what, const Member *m, const char *step, int r)
{
  if (r == -ETIMEDOUT)
    return g_strdup_printf("%s %s: the %s write did not return within the timeout; the device is marked stuck "
                           "and will not be retried (see vfioctl list)",
                           what, m->name, step);
  return g_strdup_printf("%s %s failed at %s: %s", what, m->name, step,
                         r == -ENXIO ? "the device is not on the expected driver" : g_strerror(-r));
}

/* Commits the journal; a failure is logged by the caller's error only when
 * @error is set. Holds the journal lock. */
static gboolean
commit_locked(VfdHost *host, GError **error)
{
  return vfd_journal_commit(host->journal, error);
}

/* Stage 0 of a bind: checks that change nothing. Returns the members, or
 * NULL with *@ret_done set when the group is already bound for @owner. */
/* Refuses members on the nvidia driver whose /dev/nvidia* node is open,
 * or that something else keeps busy (vfd_nvidia_find_hazards()). */
static gboolean
check_nvidia_holders(VfdHost *host, GArray *members, GError **error)
{
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    g_autoptr(GPtrArray) holders = NULL;
    g_autoptr(GPtrArray) hazards = NULL;
    g_autofree char *who = NULL;

    if (g_strcmp0(m->original_driver, "nvidia") != 0)
      continue;
    if (vfd_nvidia_find_hazards(vfd_sysfs_root(host->sysfs), host->proc_root, vfd_sysfs_dev_root(host->sysfs),
                                host->nvidia_smi, &m->bdf, &hazards) == 0 &&
        hazards->len > 0) {
      g_ptr_array_add(hazards, NULL);
      who = g_strjoinv("; ", (char **) hazards->pdata);
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                  "%s is in use: %s; unbinding nvidia now could block or take the GPU from under them. "
                  "Fix that first (or bind with --force)",
                  m->name, who);
      return FALSE;
    }
    if (vfd_nvidia_find_holders(host->proc_root, vfd_sysfs_dev_root(host->sysfs), &m->bdf, &holders) < 0 ||
        holders->len == 0)
      continue;
    who = vfd_nvidia_holders_describe(holders);
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                "%s is in use: %s hold%s %s open; unbinding nvidia now would block until they close it. "
                "Stop them first (or bind with --force)",
                m->name, who, holders->len == 1 ? "s" : "", ((VfdNvidiaHolder *) holders->pdata[0])->node);
    return FALSE;
  }
  return TRUE;
}

static GArray *
bind_checks(VfdHost *host, int group, const char *owner, guint32 owner_uid, VfdBindFlags flags, gboolean *ret_done,
            GError **error)
{
  g_autoptr(GArray) members = collect_group(host, group, error);
  guint owned = 0, lent = 0;

  *ret_done = FALSE;
  if (!members)
    return NULL;
  vfd_host_lock_journal(host);
  for (guint i = 0; i < members->len; i++) {
    Member *m = &g_array_index(members, Member, i);
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &m->bdf);

    if (g_str_has_prefix(owner, "sb-") && lendable(host, jd)) {
      lent++; /* the pool lends it to a sandbox ([pool] mode=sandboxes) */
      continue;
    }

    if (jd && jd->state == VFD_DEVICE_STATE_BOUND && g_str_equal(jd->owner, owner) && jd->owner_uid == owner_uid) {
      owned++;
      continue;
    }
    if (jd && jd->owner_uid != owner_uid && g_str_equal(jd->owner, owner)) {
      /* The same owner name from another user is another owner. */
      g_set_error(error, VFD_ERROR, jd->state == VFD_DEVICE_STATE_STUCK ? VFD_ERROR_STUCK : VFD_ERROR_BUSY,
                  "%s is %s for '%s' of uid %u", m->name, vfd_device_state_to_string(jd->state), jd->owner,
                  (guint) jd->owner_uid);
      vfd_host_unlock_journal(host);
      return NULL;
    }
    if (jd) {
      g_set_error(error, VFD_ERROR, jd->state == VFD_DEVICE_STATE_STUCK ? VFD_ERROR_STUCK : VFD_ERROR_BUSY,
                  "%s is %s for '%s'", m->name, vfd_device_state_to_string(jd->state), jd->owner);
      vfd_host_unlock_journal(host);
      return NULL;
    }
    if (vfd_is_vfio_driver(m->original_driver)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY,
                  "%s (IOMMU group %d) is already on vfio-pci but was not bound by vfiod; leaving it alone",
                  m->name, group);
      vfd_host_unlock_journal(host);
      return NULL;
    }
  }
  if (lent > 0 && lent == members->len) {
    gboolean ok = hand_over_locked(host, group, owner, owner_uid, error);
    vfd_host_unlock_journal(host);
    if (!ok)
      return NULL;
    *ret_done = TRUE;
    return g_steal_pointer(&members);
  }
  vfd_host_unlock_journal(host);
  if (lent > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "IOMMU group %d is partly in the pool", group);
    return NULL;
  }
  if (owned == members->len) {
    *ret_done = TRUE;
    return g_steal_pointer(&members);
  }
  if (owned > 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "IOMMU group %d is partly bound for '%s'", group, owner);
    return NULL;
  }
  if (!vfio_driver_loaded(host)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_FAILED, "the vfio-pci driver is not loaded (modprobe vfio-pci)");
    return NULL;
  }
  if (!choose_vfio_drivers(host, members, error))
    return NULL;
  if (!(flags & VFD_BIND_FORCE) && !check_nvidia_holders(host, members, error))
    return NULL;
  return g_steal_pointer(&members);
}

static gboolean
bind_group_locked(VfdHost *host, const VfdBdf *bdf, int group, const char *owner, guint32 owner_uid,
                  VfdBindFlags flags, GArray **ret_members, GError **error)
{
  g_autoptr(GArray) members = NULL;
  g_autoptr(GError) local = NULL;
  gboolean already = FALSE;
  gboolean stuck = FALSE;
  guint done;
  const char *step = NULL;
  int r;

  members = bind_checks(host, group, owner, owner_uid, flags, &already, error);
  if (!members)
    return FALSE;
  if (already) {
    if (ret_members)
      *ret_members = member_bdfs(members);
    return TRUE;
  }

  /* Stage 1: journal first, durably, before any sysfs write. */
  vfd_host_lock_journal(host);
  journal_members(host, members, group, VFD_DEVICE_STATE_BINDING, owner, owner_uid);
  if (!commit_locked(host, error)) {
    for (guint i = 0; i < members->len; i++)
      vfd_journal_remove(host->journal, &g_array_index(members, Member, i).bdf);
    vfd_host_unlock_journal(host);
    return FALSE;
  }
  vfd_host_unlock_journal(host);

  /* Stage 2: each member, in BDF order. */
  for (done = 0; done < members->len; done++) {
    Member *m = &g_array_index(members, Member, done);
    r = bind_member(host, m, &step);
    if (r < 0) {
      g_autofree char *msg = step_message("binding", m, step, r);
      stuck = r == -ETIMEDOUT;
      g_set_error_literal(&local, VFD_ERROR,
                          stuck ? VFD_ERROR_STUCK : (r == -ENXIO ? VFD_ERROR_FAILED : vfd_error_from_errno(r)), msg);
      if (stuck) {
        m->stuck = true;
        vfd_host_lock_journal(host);
        journal_set_state(host, &m->bdf, VFD_DEVICE_STATE_STUCK);
        {
          g_autoptr(GError) jerror = NULL;

          if (!commit_locked(host, &jerror))
            g_prefix_error(&local, "the journal could not record the stuck state (%s); ", jerror->message);
        }
        vfd_host_unlock_journal(host);
      }
      done++; /* the failing member is partly done: roll it back too (unless stuck) */
      break;
    }
  }

  /* Stage 3: the group node. */
  if (!local && !wait_vfio_node(host, group))
    g_set_error(&local, VFD_ERROR, VFD_ERROR_FAILED, "%s/vfio/%d did not appear after binding IOMMU group %d",
                vfd_sysfs_dev_root(host->sysfs), group, group);

  if (local) {
    /* Rollback: reverse order, only what was done; keep the first error. A
     * stuck member is left as it is: nothing may touch it until an operator
     * acts. */
    g_autoptr(GString) left = g_string_new(NULL);
    while (done-- > 0) {
      Member *m = &g_array_index(members, Member, done);
      if (m->stuck)
        continue;
      /* Hot-unplugged meanwhile: nothing left to restore. */
      r = vfd_sysfs_device_exists(host->sysfs, &m->bdf) ? restore_member(host, m, false, NULL, &step) : 0;
      vfd_host_lock_journal(host);
      if (r < 0) {
        g_string_append_printf(left, " %s (%s%s)", m->name, step, r == -ETIMEDOUT ? ", stuck" : "");
        journal_set_state(host, &m->bdf, r == -ETIMEDOUT ? VFD_DEVICE_STATE_STUCK : VFD_DEVICE_STATE_RELEASING);
      } else {
        vfd_journal_remove(host->journal, &m->bdf);
      }
      vfd_host_unlock_journal(host);
    }
    vfd_host_lock_journal(host);
    for (guint i = 0; i < members->len; i++) {
      Member *m = &g_array_index(members, Member, i);
      VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &m->bdf);
      if (jd && jd->state == VFD_DEVICE_STATE_BINDING)
        vfd_journal_remove(host->journal, &m->bdf); /* never touched */
    }
    {
      g_autoptr(GError) jerror = NULL;

      /* The rollback is done on the devices; a record the disk keeps says
       * more than was left, which the next reconcile settles. */
      if (!commit_locked(host, &jerror))
        g_prefix_error(&local, "the journal could not record the rollback (%s); ", jerror->message);
    }
    vfd_host_unlock_journal(host);
    if (left->len)
      g_prefix_error(&local, "rollback could not restore%s; ", left->str);
    else
      g_prefix_error(&local, "rolled back; ");
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }

  /* Stage 4: journal the result. */
  vfd_host_lock_journal(host);
  journal_members(host, members, group, VFD_DEVICE_STATE_BOUND, owner, owner_uid);
  if (!commit_locked(host, error)) {
    /* The devices are bound; the journal on disk still says "binding",
     * which start-up restores. */
    vfd_host_unlock_journal(host);
    return FALSE;
  }
  vfd_host_unlock_journal(host);
  if (ret_members)
    *ret_members = member_bdfs(members);
  return TRUE;
}

gboolean
vfd_host_bind_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members, int *ret_group,
                    GError **error)
{
  return vfd_host_bind_group_as(host, bdf, owner, 0, VFD_BIND_NONE, ret_members, ret_group, error);
}

gboolean
vfd_host_bind_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, VfdBindFlags flags,
                         GArray **ret_members, int *ret_group, GError **error)
{
  return vfd_host_bind_group_as(host, bdf, owner, 0, flags, ret_members, ret_group, error);
}

gboolean
vfd_host_bind_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, guint32 owner_uid, VfdBindFlags flags,
                       GArray **ret_members, int *ret_group, GError **error)
{
  char name[VFD_BDF_STRLEN];
  VfdGroupLock *lock;
  gboolean ok;
  int group, r;

  vfd_bdf_format(bdf, name);
  if (!owner || !*owner) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "an owner name is required");
    return FALSE;
  }
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
  lock = vfd_host_lock_groups(host, &group, 1);
  ok = bind_group_locked(host, bdf, group, owner, owner_uid, flags, ret_members, error);
  vfd_group_lock_release(lock);
  if (ok && ret_group)
    *ret_group = group;
  return ok;
}

/* A release under way: what stage 1 found, what stage 2 did. */
typedef struct {
  int group;
  GArray *members;  /* Member, the group's journaled members (not the stuck ones) */
  GString *failed;  /* "; "-separated problems */
  int first_err;
  gboolean any_stuck;
} Release;

static void
release_clear(Release *rel)
{
  g_clear_pointer(&rel->members, g_array_unref);
  if (rel->failed)
    g_string_free(rel->failed, TRUE);
  rel->failed = NULL;
}

/* Stage 1 of a release, in memory: checks @bdf's record (owner, uid),
 * collects its group's members and journals them "releasing" (not
 * committed: the caller commits before stage 2). Holds the journal lock.
 * FALSE with @error (NOT_FOUND, BUSY, PERMISSION_DENIED): nothing changed. */
static gboolean
release_prepare_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, Release *rel,
                       GError **error)
{
  char name[VFD_BDF_STRLEN];
  VfdJournalDevice *jd;
  g_autofree char *group_owner = NULL;
  guint32 group_owner_uid;
  GPtrArray *all;

  vfd_bdf_format(bdf, name);
  jd = vfd_journal_lookup(host->journal, bdf);
  if (!jd) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s is not bound by vfiod", name);
    return FALSE;
  }
  if (owner && !g_str_equal(jd->owner, owner)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "%s is bound for '%s', not '%s'", name, jd->owner, owner);
    return FALSE;
  }
  if (owner_uid >= 0 && jd->owner_uid != (guint64) owner_uid) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED,
                "%s was bound for '%s' by uid %u; only that user or root may release it", name, jd->owner,
                (guint) jd->owner_uid);
    return FALSE;
  }
  rel->group = jd->iommu_group;
  rel->members = members_new();
  rel->failed = g_string_new(NULL);
  rel->first_err = 0;
  rel->any_stuck = FALSE;
  /* A copy: journal_members() below replaces the record jd points to. */
  group_owner = g_strdup(jd->owner);
  group_owner_uid = jd->owner_uid;
  jd = NULL;
  all = vfd_journal_devices(host->journal);
  for (guint i = 0; i < all->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(all, i);
    Member m = { .bdf = d->bdf };
    if (d->iommu_group != rel->group)
      continue;
    if (d->state == VFD_DEVICE_STATE_STUCK) {
      g_string_append_printf(rel->failed, "%s%s is stuck", rel->failed->len ? "; " : "",
                             vfd_bdf_format(&d->bdf, m.name));
      rel->any_stuck = TRUE;
      continue;
    }
    vfd_bdf_format(&d->bdf, m.name);
    m.original_driver = g_strdup(d->original_driver);
    m.original_override = g_strdup(d->original_override);
    m.original_d3cold = g_strdup(d->original_d3cold);
    m.original_reset_method = g_strdup(d->original_reset_method);
    g_array_append_val(rel->members, m);
  }
  journal_members(host, rel->members, rel->group, VFD_DEVICE_STATE_RELEASING, group_owner, group_owner_uid);
  return TRUE;
}

/* Stage 2 of a release, after stage 1 is durable: restores each member,
 * reverse BDF order, going on past failures; updates the journal in memory
 * (record removed, or "stuck"); the caller commits. */
static void
release_apply(VfdHost *host, Release *rel, GPtrArray *notes)
{
  for (guint i = rel->members->len; i-- > 0;) {
    Member *m = &g_array_index(rel->members, Member, i);
    const char *step = NULL;
    int r = vfd_sysfs_device_exists(host->sysfs, &m->bdf) ? restore_member(host, m, true, notes, &step) : -ENODEV;

    vfd_host_lock_journal(host);
    if (r == -ENODEV && !step) {
      /* The device is gone (hot-unplugged): nothing left to restore. */
      vfd_journal_remove(host->journal, &m->bdf);
    } else if (r < 0) {
      g_autofree char *msg = step_message("restoring", m, step, r);
      g_string_append_printf(rel->failed, "%s%s", rel->failed->len ? "; " : "", msg);
      if (r == -ETIMEDOUT) {
        rel->any_stuck = TRUE;
        journal_set_state(host, &m->bdf, VFD_DEVICE_STATE_STUCK);
      }
      if (!rel->first_err)
        rel->first_err = r;
    } else {
      vfd_journal_remove(host->journal, &m->bdf);
    }
    vfd_host_unlock_journal(host);
  }
}

/* The outcome of a release whose stage 2 result is durable. */
static gboolean
release_result(Release *rel, GArray **ret_members, GError **error)
{
  if (rel->first_err || rel->any_stuck) {
    g_set_error(error, VFD_ERROR, rel->any_stuck ? VFD_ERROR_STUCK : VFD_ERROR_FAILED,
                "release of IOMMU group %d incomplete: %s", rel->group, rel->failed->str);
    return FALSE;
  }
  if (ret_members)
    *ret_members = member_bdfs(rel->members);
  return TRUE;
}

/* A group the pool lent to a sandbox ([pool] mode=sandboxes) goes back to
 * the pool when the sandbox releases it: handed over to owner "pool", still
 * on its VFIO driver, no sysfs write. Journal lock held. TRUE when @bdf is
 * such a case (*@ret_ok says how it went; a member given back with an
 * earlier one of its group needs nothing); FALSE: release it as usual
 * (also when the owner or uid do not match: release_prepare_locked() says
 * why). */
static gboolean
release_to_pool_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                       GPtrArray *notes, gboolean *ret_ok, GError **error)
{
  VfdJournalDevice *jd = vfd_journal_lookup(host->journal, bdf);
  g_autoptr(GArray) back = NULL;
  GPtrArray *recs;
  int group;

  if (!jd || !host->pool_member || jd->state != VFD_DEVICE_STATE_BOUND)
    return FALSE;
  if (owner && g_str_has_prefix(owner, "sb-") && g_str_equal(jd->owner, "pool")) {
    if (ret_members)
      *ret_members = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
    *ret_ok = TRUE;
    return TRUE;
  }
  if (!g_str_has_prefix(jd->owner, "sb-") || (owner && !g_str_equal(jd->owner, owner)) ||
      (owner_uid >= 0 && jd->owner_uid != (guint64) owner_uid) || !host->pool_member(host, bdf, host->pool_member_data))
    return FALSE;
  group = jd->iommu_group;
  back = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  recs = vfd_journal_devices(host->journal);
  for (guint i = 0; i < recs->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(recs, i);
    if (d->iommu_group == group)
      g_array_append_val(back, d->bdf);
  }
  *ret_ok = hand_over_locked(host, group, "pool", 0, error);
  if (*ret_ok && ret_members)
    *ret_members = g_steal_pointer(&back);
  if (*ret_ok && notes)
    g_ptr_array_add(notes, g_strdup_printf("IOMMU group %d went back to the pool, on its VFIO driver", group));
  return TRUE;
}

static gboolean
release_group_locked(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                     GPtrArray *notes, GError **error)
{
  Release rel = { 0 };
  gboolean ok = FALSE;

  /* Stage 1: journal the transition, durably. */
  vfd_host_lock_journal(host);
  if (release_to_pool_locked(host, bdf, owner, owner_uid, ret_members, notes, &ok, error)) {
    vfd_host_unlock_journal(host);
    return ok;
  }
  if (!release_prepare_locked(host, bdf, owner, owner_uid, &rel, error) || !commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);

  /* Stage 2: restore each member. */
  release_apply(host, &rel, notes);

  /* Stage 3: journal the result. */
  vfd_host_lock_journal(host);
  if (!commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  ok = release_result(&rel, ret_members, error);
out:
  release_clear(&rel);
  return ok;
}

void
vfd_release_item_clear(VfdReleaseItem *item)
{
  g_clear_error(&item->error);
  g_clear_pointer(&item->members, g_array_unref);
  g_clear_pointer(&item->notes, g_ptr_array_unref);
}

gboolean
vfd_host_release_groups(VfdHost *host, VfdReleaseItem *items, guint n_items, GError **error)
{
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autofree Release *rels = g_new0(Release, n_items);
  g_autofree gboolean *prepared = g_new0(gboolean, n_items);
  VfdGroupLock *lock;
  gboolean ok = FALSE, any = FALSE;

  for (guint i = 0; i < n_items; i++) {
    items[i].done = FALSE;
    items[i].with_earlier = FALSE;
    vfd_release_item_clear(&items[i]);
    items[i].notes = g_ptr_array_new_with_free_func(g_free);
  }
  /* Every group's lock, in ascending order (vfd_host_lock_groups()). */
  vfd_host_lock_journal(host);
  for (guint i = 0; i < n_items; i++) {
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &items[i].bdf);
    if (jd)
      g_array_append_val(groups, jd->iommu_group);
  }
  vfd_host_unlock_journal(host);
  lock = vfd_host_lock_groups(host, (const int *) groups->data, groups->len);

  /* Phase 1: every group "releasing", one durable commit. */
  vfd_host_lock_journal(host);
  for (guint i = 0; i < n_items; i++) {
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &items[i].bdf);
    if (jd && g_hash_table_contains(seen, GINT_TO_POINTER(jd->iommu_group))) {
      items[i].with_earlier = TRUE; /* released with an earlier item of its group */
      continue;
    }
    if (!release_prepare_locked(host, &items[i].bdf, items[i].owner, -1, &rels[i], &items[i].error))
      continue;
    prepared[i] = TRUE;
    any = TRUE;
    g_hash_table_add(seen, GINT_TO_POINTER(rels[i].group));
  }
  if (!commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  vfd_failpoint("release batch: phase 1 (releasing) committed");
  if (!any) {
    ok = TRUE; /* nothing to release: every item says why */
    goto out;
  }

  /* Phase 2: the sysfs writes of every group; the journal in memory. */
  for (guint i = 0; i < n_items; i++)
    if (prepared[i])
      release_apply(host, &rels[i], items[i].notes);

  /* Phase 3: the results, one durable commit. */
  vfd_host_lock_journal(host);
  if (!commit_locked(host, error)) {
    vfd_host_unlock_journal(host);
    goto out;
  }
  vfd_host_unlock_journal(host);
  vfd_failpoint("release batch: phase 3 (results) committed");
  for (guint i = 0; i < n_items; i++)
    if (prepared[i])
      items[i].done = release_result(&rels[i], &items[i].members, &items[i].error);
  ok = TRUE;
out:
  for (guint i = 0; i < n_items; i++)
    release_clear(&rels[i]);
  vfd_group_lock_release(lock);
  return ok;
}

gboolean
vfd_host_release_group_full(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                            GPtrArray **ret_notes, GError **error)
{
  return vfd_host_release_group_as(host, bdf, owner, -1, ret_members, ret_notes, error);
}

gboolean
vfd_host_release_group_as(VfdHost *host, const VfdBdf *bdf, const char *owner, gint64 owner_uid, GArray **ret_members,
                          GPtrArray **ret_notes, GError **error)
{
  g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
  VfdJournalDevice *jd;
  VfdGroupLock *lock;
  gboolean ok;
  int group;

  vfd_host_lock_journal(host);
  jd = vfd_journal_lookup(host->journal, bdf);
  group = jd ? jd->iommu_group : -1;
  vfd_host_unlock_journal(host);
  lock = vfd_host_lock_groups(host, &group, 1);
  ok = release_group_locked(host, bdf, owner, owner_uid, ret_members, notes, error);
  vfd_group_lock_release(lock);
  if (ret_notes)
    *ret_notes = g_steal_pointer(&notes);
  return ok;
}

gboolean
vfd_host_release_group(VfdHost *host, const VfdBdf *bdf, const char *owner, GArray **ret_members,
                       GError **error)
{
  return vfd_host_release_group_full(host, bdf, owner, ret_members, NULL, error);
}

gboolean
vfd_host_group_functions(VfdHost *host, const VfdBdf *bdf, GArray **ret_functions, GError **error)
{
  g_autoptr(GArray) functions = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) bdfs = NULL;
  char name[VFD_BDF_STRLEN];
  int group, r;

  vfd_bdf_format(bdf, name);
  if (!vfd_sysfs_device_exists(host->sysfs, bdf)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "no PCI device %s on this host", name);
    return FALSE;
  }
  if (vfd_sysfs_iommu_group(host->sysfs, bdf, &group) < 0 ||
      vfd_sysfs_iommu_group_devices(host->sysfs, group, &bdfs) < 0) {
    g_array_append_val(functions, *bdf);
    *ret_functions = g_steal_pointer(&functions);
    return TRUE;
  }
  for (guint i = 0; i < bdfs->len; i++) {
    const VfdBdf *b = &g_array_index(bdfs, VfdBdf, i);
    guint32 cls = 0;
    if ((r = vfd_sysfs_read_hex_attr(host->sysfs, b, "class", &cls)) < 0) {
      g_set_error(error, VFD_ERROR, vfd_error_from_errno(r), "cannot read the class of %s (IOMMU group %d): %s",
                  vfd_bdf_format(b, name), group, g_strerror(-r));
      return FALSE;
    }
    if (!vfd_pci_class_is_bridge(cls & 0xffffff))
      g_array_append_val(functions, *b);
  }
  *ret_functions = g_steal_pointer(&functions);
  return TRUE;
}

/* ---- HGX ------------------------------------------------------------------ */

void
vfd_hgx_board_free(VfdHgxBoard *board)
{
  if (!board)
    return;
  g_array_unref(board->gpus);
  g_array_unref(board->nvswitches);
  g_free(board);
}

VfdHgxBoard *
vfd_hgx_board_find(GPtrArray *devices)
{
  g_autoptr(VfdHgxBoard) board = g_new0(VfdHgxBoard, 1);

  board->gpus = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  board->nvswitches = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  for (guint i = 0; devices && i < devices->len; i++) {
    const VfdPciDevice *d = g_ptr_array_index(devices, i);
    if (vfd_pci_is_nvswitch(d->vendor, d->class_code))
      g_array_append_val(board->nvswitches, d->bdf);
    else if (d->vendor == 0x10de && ((d->class_code >> 16) & 0xff) == 0x03)
      g_array_append_val(board->gpus, d->bdf);
  }
  if (board->nvswitches->len == 0)
    return NULL;
  g_array_sort(board->gpus, vfd_bdf_compare);
  g_array_sort(board->nvswitches, vfd_bdf_compare);
  return g_steal_pointer(&board);
}

/* How many of @set are in @functions; their names appended to @names. */
static guint
count_in(GArray *set, GArray *functions, GString *names)
{
  guint n = 0;

  for (guint i = 0; i < set->len; i++)
    for (guint k = 0; k < functions->len; k++)
      if (vfd_bdf_equal(&g_array_index(set, VfdBdf, i), &g_array_index(functions, VfdBdf, k))) {
        char b[VFD_BDF_STRLEN];
        vfd_bdf_format(&g_array_index(set, VfdBdf, i), b);
        g_string_append_printf(names, "%s%s", names->len ? ", " : "", b);
        n++;
        break;
      }
  return n;
}

gboolean
vfd_hgx_check_partition(const VfdHgxBoard *board, GArray *functions, GError **error)
{
  g_autoptr(GString) names = g_string_new(NULL);
  guint gpus = count_in(board->gpus, functions, names);
  guint switches = count_in(board->nvswitches, functions, names);
  guint all_gpus = board->gpus->len, all_switches = board->nvswitches->len;

  if ((gpus == 0 && switches == 0) || (gpus == 1 && switches == 0) ||
      (gpus == all_gpus && switches == all_switches))
    return TRUE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
              "HGX board (%u GPUs, %u NVSwitches): a sandbox gets 1 GPU, or all %u GPUs with all %u NVSwitches "
              "(full passthrough, the fabric manager running in the guest); asked for %u GPU(s) and %u "
              "NVSwitch(es) (%s). Other partitions need NVIDIA's shared NVSwitch model, which vfiod does not "
              "support",
              all_gpus, all_switches, all_gpus, all_switches, gpus, switches, names->str);
  return FALSE;
}

typedef struct {
  VfdBdf bdf; /* lowest member */
  int group;
  int numa;
} Unit;

static gint
unit_cmp(gconstpointer a, gconstpointer b)
{
  return vfd_bdf_compare(&((const Unit *) a)->bdf, &((const Unit *) b)->bdf);
}

/* The free assignable units (see vfd_host_select_units) among @devs
 * (sorted by BDF), sorted by BDF; groups in @skip (may be NULL) are not
 * free. */
static GArray *
collect_units_in(VfdHost *host, GPtrArray *devs, GHashTable *skip)
{
  g_autoptr(GHashTable) bad = g_hash_table_new(g_direct_hash, g_direct_equal); /* groups not assignable */
  g_autoptr(GHashTable) seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GArray) units = g_array_new(FALSE, FALSE, sizeof(Unit));
  g_autoptr(VfdPolicy) policy = NULL;

  policy = vfd_host_dup_policy(host);
  vfd_host_lock_journal(host);
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code))
      continue;
    VfdJournalDevice *jd = vfd_journal_lookup(host->journal, &d->bdf);
    if (vfd_policy_refusal(policy, d->vendor, d->device, d->class_code, d->boot_vga) ||
        (jd && !lendable(host, jd)) || (!jd && vfd_is_vfio_driver(d->driver)))
      g_hash_table_add(bad, GINT_TO_POINTER(d->iommu_group));
  }
  vfd_host_unlock_journal(host);
  /* devs is sorted by BDF: the first member seen names the group. */
  for (guint i = 0; i < devs->len; i++) {
    VfdPciDevice *d = g_ptr_array_index(devs, i);
    Unit u = { .bdf = d->bdf, .group = d->iommu_group, .numa = d->numa_node };
    /* An NVSwitch is not a device a sandbox asks for by count: it comes
     * with all the GPUs of its HGX board. */
    if (d->iommu_group < 0 || vfd_pci_class_is_bridge(d->class_code) || vfd_pci_is_nvswitch(d->vendor, d->class_code) ||
        g_hash_table_contains(bad, GINT_TO_POINTER(d->iommu_group)) ||
        (skip && g_hash_table_contains(skip, GINT_TO_POINTER(d->iommu_group))) ||
        g_hash_table_contains(seen, GINT_TO_POINTER(d->iommu_group)))
      continue;
    g_hash_table_add(seen, GINT_TO_POINTER(d->iommu_group));
    g_array_append_val(units, u);
  }
  g_array_sort(units, unit_cmp);
  return g_steal_pointer(&units);
}

/* collect_units_in() over a fresh enumeration; NULL with @error when that
 * fails. */
static GArray *
collect_units(VfdHost *host, GHashTable *skip, GError **error)
{
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(host, error);

  return devs ? collect_units_in(host, devs, skip) : NULL;
}

guint
vfd_host_count_free_units_in(VfdHost *host, GPtrArray *devs)
{
  g_autoptr(GArray) units = NULL;

  g_mutex_lock(&host->reserve_lock);
  units = collect_units_in(host, devs, host->reserved);
  g_mutex_unlock(&host->reserve_lock);
  return units->len;
}

int
vfd_host_count_free_units(VfdHost *host, GError **error)
{
  g_autoptr(GArray) units = NULL;

  g_mutex_lock(&host->reserve_lock);
  units = collect_units(host, host->reserved, error);
  g_mutex_unlock(&host->reserve_lock);
  return units ? (int) units->len : -1;
}

/* vfd_host_select_units() over the units not in @skip; *@ret_groups (may be
 * NULL): the picked units' IOMMU groups. */
static gboolean
select_units(VfdHost *host, GHashTable *skip, guint n, GArray **ret_bdfs, GArray **ret_groups, int *ret_numa_node,
             GError **error)
{
  g_autoptr(GArray) units = collect_units(host, skip, error);
  g_autoptr(GArray) picked = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  int node = -1;

  if (!units)
    return FALSE;
  if (n == 0 || units->len < n) {
    g_set_error(error, VFD_ERROR, n == 0 ? VFD_ERROR_INVALID_ARGUMENT : VFD_ERROR_BUSY,
                "asked for %u device(s), %u free (an IOMMU group counts once; see vfioctl list)", n, units->len);
    return FALSE;
  }
  /* The lowest NUMA node with enough units, if any. */
  {
    g_autoptr(GHashTable) per_node = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (guint i = 0; i < units->len; i++) {
      int nd = g_array_index(units, Unit, i).numa;
      guint c = GPOINTER_TO_UINT(g_hash_table_lookup(per_node, GINT_TO_POINTER(nd))) + 1;
      g_hash_table_insert(per_node, GINT_TO_POINTER(nd), GUINT_TO_POINTER(c));
      if (nd >= 0 && c >= n && (node < 0 || nd < node))
        node = nd;
    }
  }
  for (guint i = 0; i < units->len && picked->len < n; i++) {
    Unit *u = &g_array_index(units, Unit, i);
    if (node < 0 || u->numa == node) {
      g_array_append_val(picked, u->bdf);
      g_array_append_val(groups, u->group);
    }
  }
  if (ret_numa_node)
    *ret_numa_node = node;
  *ret_bdfs = g_steal_pointer(&picked);
  if (ret_groups)
    *ret_groups = g_steal_pointer(&groups);
  return TRUE;
}

gboolean
vfd_host_select_units(VfdHost *host, guint n, GArray **ret_bdfs, int *ret_numa_node, GError **error)
{
  gboolean ok;

  g_mutex_lock(&host->reserve_lock);
  ok = select_units(host, host->reserved, n, ret_bdfs, NULL, ret_numa_node, error);
  g_mutex_unlock(&host->reserve_lock);
  return ok;
}

gboolean
vfd_host_reserve_units(VfdHost *host, guint n, GArray **ret_bdfs, GArray **ret_groups, int *ret_numa_node,
                       GError **error)
{
  g_autoptr(GArray) groups = NULL;
  gboolean ok;

  g_mutex_lock(&host->reserve_lock);
  ok = select_units(host, host->reserved, n, ret_bdfs, &groups, ret_numa_node, error);
  for (guint i = 0; ok && i < groups->len; i++)
    g_hash_table_add(host->reserved, GINT_TO_POINTER(g_array_index(groups, int, i)));
  g_mutex_unlock(&host->reserve_lock);
  if (ok)
    *ret_groups = g_steal_pointer(&groups);
  return ok;
}

void
vfd_host_unreserve_units(VfdHost *host, GArray *groups)
{
  if (!groups)
    return;
  g_mutex_lock(&host->reserve_lock);
  for (guint i = 0; i < groups->len; i++)
    g_hash_table_remove(host->reserved, GINT_TO_POINTER(g_array_index(groups, int, i)));
  g_mutex_unlock(&host->reserve_lock);
}
