/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host's PCI inventory: PCI facts (bridges, NVSwitches, reset quirks),
 * the libpci scan, one device read from sysfs, the functions of an IOMMU
 * group, HGX boards and their partitions. */
#include "device-private.h"

#include <malloc.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

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
