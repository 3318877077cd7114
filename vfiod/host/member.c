/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One IOMMU group member and its guard: the sysfs steps that move it to
 * its VFIO driver, reset it and put it back, and its journal records. */
#include "device-private.h"

#include <errno.h>

#include "error.h"
#include "variant.h"

/* ---- bind / release ------------------------------------------------------ */

static void
member_clear(gpointer p)
{
  Member *m = p;

  vfd_journal_free_originals(m->original_driver, m->original_override, m->original_d3cold,
                             m->original_reset_method);
  g_free(m->reset_method);
  g_free(m->vfio_driver);
  g_free(m->vfio_module);
}

GArray *
vfd_members_new(void)
{
  GArray *a = g_array_new(FALSE, TRUE, sizeof(Member));

  g_array_set_clear_func(a, member_clear);
  return a;
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
bool
vfd_member_lists_bus_reset(const char *list)
{
  g_auto(GStrv) names = g_strsplit(list ? list : "", " ", -1);

  return g_strv_contains((const char *const *) names, "bus") ||
         g_strv_contains((const char *const *) names, "cxl_bus");
}

/* @list without its bus resets ("" when nothing is left). */
char *
vfd_member_without_bus_reset(const char *list)
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
  } else if (quirk && vfd_member_lists_bus_reset(methods)) {
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
int
vfd_member_restore(VfdHost *host, Member *m, bool all, GPtrArray *notes, const char **ret_step)
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
gboolean
vfd_members_choose_vfio_drivers(VfdHost *host, GArray *members, GError **error)
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
int
vfd_member_bind(VfdHost *host, Member *m, const char **ret_step)
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

void
vfd_members_journal(VfdHost *host, GArray *members, int group, VfdDeviceState state, const char *owner,
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

void
vfd_host_journal_set_state(VfdHost *host, const VfdBdf *bdf, VfdDeviceState state)
{
  VfdJournalDevice *jd = vfd_journal_lookup(host->journal, bdf);

  if (jd)
    jd->state = state;
}

GArray *
vfd_members_bdfs(GArray *members)
{
  GArray *a = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  for (guint i = 0; i < members->len; i++)
    g_array_append_val(a, g_array_index(members, Member, i).bdf);
  return a;
}

/* Message for a failed step of @m. */
char *
vfd_member_step_message(const char *what, const Member *m, const char *step, int r)
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
gboolean
vfd_host_commit_locked(VfdHost *host, GError **error)
{
  return vfd_journal_commit(host->journal, error);
}
