/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "variant.h"

#include <errno.h>
#include <libkmod.h>
#include <sys/utsname.h>

#include "error.h"

struct VfdVariant {
  struct kmod_ctx *ctx;
};

VfdVariant *
vfd_variant_new(const char *modules_dir, const char *const *config_paths, GError **error)
{
  VfdVariant *v = g_new0(VfdVariant, 1);

  v->ctx = kmod_new(modules_dir, config_paths);
  if (!v->ctx) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "libkmod cannot start over %s",
                modules_dir ? modules_dir : "/lib/modules/<release>");
    g_free(v);
    return NULL;
  }
  /* Aliases come from the indexes (modules.alias.bin); without them
   * libkmod falls back to nothing, which means: no variant known. */
  (void) kmod_load_resources(v->ctx);
  return v;
}

void
vfd_variant_free(VfdVariant *v)
{
  if (!v)
    return;
  kmod_unref(v->ctx);
  g_free(v);
}

/* "pci:v...": the characters the kernel's modalias uses, nothing else. */
static bool
pci_modalias_valid(const char *s)
{
  if (!s || !g_str_has_prefix(s, "pci:v") || strlen(s) > 128)
    return false;
  for (const char *p = s + 4; *p; p++)
    if (!g_ascii_isalnum(*p))
      return false;
  return true;
}

char *
vfd_variant_module_for(VfdVariant *v, const char *modalias, GError **error)
{
  g_autofree char *alias = NULL;
  struct kmod_list *list = NULL, *l;
  g_autoptr(GPtrArray) variants = g_ptr_array_new_with_free_func(g_free);
  int r;

  if (!pci_modalias_valid(modalias)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "'%s' is not a PCI modalias (pci:v...)",
                modalias ? modalias : "");
    return NULL;
  }
  alias = g_strconcat(VFD_VFIO_PCI_MODULE ":", modalias + strlen("pci:"), NULL);
  r = kmod_module_new_from_lookup(v->ctx, alias, &list);
  if (r < 0) {
    /* No index (e.g. a modules directory without depmod's files): no
     * variant can be known, plain vfio-pci. */
    return g_strdup(VFD_VFIO_PCI_MODULE);
  }
  kmod_list_foreach(l, list)
  {
    struct kmod_module *mod = kmod_module_get_module(l);
    const char *name = kmod_module_get_name(mod);
    if (name && !g_str_equal(name, VFD_VFIO_PCI_MODULE) &&
        !g_ptr_array_find_with_equal_func(variants, name, g_str_equal, NULL))
      g_ptr_array_add(variants, g_strdup(name));
    kmod_module_unref(mod);
  }
  kmod_module_unref_list(list);
  if (variants->len == 0)
    return g_strdup(VFD_VFIO_PCI_MODULE);
  if (variants->len > 1) {
    g_autoptr(GString) names = g_string_new(NULL);
    g_ptr_array_sort(variants, (GCompareFunc) g_strcmp0);
    for (guint i = 0; i < variants->len; i++)
      g_string_append_printf(names, "%s%s", i ? ", " : "", (const char *) g_ptr_array_index(variants, i));
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "several VFIO variant drivers match %s: %s; vfiod will not guess between them", modalias,
                names->str);
    return NULL;
  }
  return g_strdup(g_ptr_array_index(variants, 0));
}

char *
vfd_variant_driver_name(const char *sys_root, const char *module)
{
  g_autofree char *dir = NULL;
  g_autoptr(GDir) d = NULL;
  const char *e;

  if (g_str_equal(module, VFD_VFIO_PCI_MODULE))
    return g_strdup("vfio-pci");
  dir = g_build_filename(sys_root ? sys_root : "/sys", "module", module, "drivers", NULL);
  d = g_dir_open(dir, 0, NULL);
  while (d && (e = g_dir_read_name(d)))
    if (g_str_has_prefix(e, "pci:") && e[4])
      return g_strdup(e + 4);
  return g_strdup(module);
}

bool
vfd_is_vfio_driver(const char *driver)
{
  return driver && (g_str_equal(driver, "vfio-pci") || g_str_has_suffix(driver, "_vfio_pci") ||
                    g_str_has_suffix(driver, "-vfio-pci"));
}

gboolean
vfd_variant_load(VfdVariant *v, const char *module, GError **error)
{
  struct kmod_module *mod = NULL;
  int r = kmod_module_new_from_name(v->ctx, module, &mod);

  if (r == 0)
    r = kmod_module_probe_insert_module(mod, 0, NULL, NULL, NULL, NULL);
  kmod_module_unref(mod);
  if (r < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot load the VFIO driver module %s: %s", module,
                g_strerror(-r));
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_check_sandbox_arch(const char *machine, GError **error)
{
  struct utsname u;

  if (!machine) {
    if (uname(&u) < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "uname: %s", g_strerror(errno));
      return FALSE;
    }
    machine = u.machine;
  }
  if (g_str_equal(machine, "x86_64"))
    return TRUE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED,
              "sandboxes need an x86_64 host, and this one is %s: vfiod starts guests only on QEMU's x86 q35 "
              "machine; %s support (QEMU's %s machine, its firmware and guest kernel) is missing. Device pools "
              "(vfioctl pool, CDI) work here",
              machine, machine, g_str_equal(machine, "aarch64") ? "'virt'" : "matching");
  return FALSE;
}

char *
vfd_variant_host_driver(VfdVariant *v, const char *sys_root, const char *modalias)
{
  struct kmod_list *list = NULL, *l;
  char *found = NULL;

  if (!v || !pci_modalias_valid(modalias) || kmod_module_new_from_lookup(v->ctx, modalias, &list) < 0)
    return NULL;
  kmod_list_foreach(l, list)
  {
    struct kmod_module *mod = kmod_module_get_module(l);
    const char *name = kmod_module_get_name(mod);
    if (!found && name && !g_str_equal(name, VFD_VFIO_PCI_MODULE)) {
      g_autofree char *drv = vfd_variant_driver_name(sys_root, name);
      g_autofree char *dir = g_build_filename(sys_root ? sys_root : "/sys", "module", name, "drivers", NULL);
      /* Only a loaded module tells its driver's name. */
      if (g_file_test(dir, G_FILE_TEST_IS_DIR) && !vfd_is_vfio_driver(drv))
        found = g_steal_pointer(&drv);
    }
    kmod_module_unref(mod);
  }
  kmod_module_unref_list(list);
  return found;
}
