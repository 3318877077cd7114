/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "doctor.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "image.h"
#include "libvirt-xml.h"
#include "meminfo.h"
#include "pins.h"

void
vfd_doctor_check_free(VfdDoctorCheck *c)
{
  if (!c)
    return;
  g_free(c->name);
  g_free(c->detail);
  g_free(c);
}

const char *
vfd_doctor_status_to_string(VfdDoctorStatus status)
{
  switch (status) {
  case VFD_DOCTOR_OK:
    return "ok";
  case VFD_DOCTOR_WARN:
    return "warn";
  default:
    return "fail";
  }
}

static void G_GNUC_PRINTF(4, 5)
add(GPtrArray *checks, const char *name, VfdDoctorStatus status, const char *fmt, ...)
{
  VfdDoctorCheck *c = g_new0(VfdDoctorCheck, 1);
  va_list ap;

  c->name = g_strdup(name);
  c->status = status;
  va_start(ap, fmt);
  c->detail = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_ptr_array_add(checks, c);
}

static guint
count_entries(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  guint n = 0;

  while (d && g_dir_read_name(d))
    n++;
  return n;
}

/* Orders "node<N>" names by N (GPtrArray sort: pointers to the strings). */
static gint
node_name_cmp(gconstpointer a, gconstpointer b)
{
  guint64 x = g_ascii_strtoull(*(const char *const *) a + 4, NULL, 10);
  guint64 y = g_ascii_strtoull(*(const char *const *) b + 4, NULL, 10);

  return (x > y) - (x < y);
}

/* First line of @path, stripped; NULL when unreadable. */
static char *
read_line(const char *path)
{
  g_autofree char *contents = NULL;
  char *nl;

  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return NULL;
  if ((nl = strchr(contents, '\n')))
    *nl = '\0';
  return g_strdup(g_strstrip(contents));
}

/* Checks that matter for large-BAR GPUs (issue 12): interrupt remapping,
 * vfio_iommu_type1's allow_unsafe_interrupts, the IOMMU's default domain
 * type, kernel and QEMU versions for mapping huge BARs, 1 GiB hugepages
 * per NUMA node, vfio-pci's disable_idle_d3. @have_iommu: IOMMU groups
 * exist; @qemu_major/@qemu_minor: -1 when unknown. */
static void
gpu_host_checks(GPtrArray *checks, const VfdDoctorOptions *o, gboolean have_iommu, int qemu_major, int qemu_minor)
{
  g_autofree char *interrupts = g_build_filename(o->proc_root, "interrupts", NULL);
  g_autofree char *unsafe = g_build_filename(o->sys_root, "module", "vfio_iommu_type1", "parameters",
                                             "allow_unsafe_interrupts", NULL);
  g_autofree char *groups = g_build_filename(o->sys_root, "kernel", "iommu_groups", NULL);
  g_autofree char *osrelease = g_build_filename(o->proc_root, "sys", "kernel", "osrelease", NULL);
  g_autofree char *idle_d3 = g_build_filename(o->sys_root, "module", "vfio_pci", "parameters", "disable_idle_d3",
                                              NULL);

  /* Interrupt remapping: its IRQ domains show as IR-PCI-MSI, IR-IO-APIC... */
  if (have_iommu) {
    g_autofree char *text = NULL;
    if (!g_file_get_contents(interrupts, &text, NULL, NULL))
      add(checks, "irq-remapping", VFD_DOCTOR_WARN, "cannot read %s: interrupt remapping not checked", interrupts);
    else if (strstr(text, " IR-"))
      add(checks, "irq-remapping", VFD_DOCTOR_OK, "interrupt remapping on (IR- interrupt domains in %s)",
          interrupts);
    else
      add(checks, "irq-remapping", VFD_DOCTOR_FAIL,
          "interrupt remapping is off (no IR- interrupt domains in %s): vfio refuses devices without it, and "
          "allowing them anyway lets a guest forge MSIs; enable it in firmware (VT-d / AMD-Vi with x2APIC) and "
          "do not boot with intremap=off",
          interrupts);
  }
  {
    g_autofree char *v = read_line(unsafe);
    if (v && (g_str_equal(v, "Y") || g_str_equal(v, "1")))
      add(checks, "unsafe-interrupts", VFD_DOCTOR_FAIL,
          "vfio_iommu_type1 allow_unsafe_interrupts=%s: a guest can attack the host with MSIs; remove the option "
          "(/etc/modprobe.d) and reload vfio_iommu_type1, and enable interrupt remapping instead",
          v);
    else if (v)
      add(checks, "unsafe-interrupts", VFD_DOCTOR_OK, "vfio_iommu_type1 allow_unsafe_interrupts=%s", v);
  }

  /* The IOMMU's default domain: translated (DMA, DMA-FQ) or passthrough
   * (identity, iommu=pt). vfio gives each group its own domain either way. */
  if (have_iommu) {
    g_autoptr(GDir) d = g_dir_open(groups, 0, NULL);
    g_autoptr(GHashTable) types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GString) list = g_string_new(NULL);
    g_autoptr(GList) keys = NULL;
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
      g_autofree char *path = g_build_filename(groups, name, "type", NULL);
      char *t = read_line(path);
      if (!t)
        continue;
      g_hash_table_insert(types, t, GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(types, t)) + 1));
    }
    keys = g_list_sort(g_hash_table_get_keys(types), (GCompareFunc) g_strcmp0);
    for (GList *k = keys; k; k = k->next)
      g_string_append_printf(list, "%s%u %s", list->len ? ", " : "",
                             GPOINTER_TO_UINT(g_hash_table_lookup(types, k->data)), (const char *) k->data);
    if (list->len)
      add(checks, "iommu-mode", VFD_DOCTOR_OK, "IOMMU groups by default domain: %s (%s)", list->str,
          g_hash_table_contains(types, "identity") ? "identity: passthrough, iommu=pt"
                                                   : "DMA: translated for host drivers too");
  }

  /* Huge BARs map fast with huge pfnmap: kernel >= 6.12 with QEMU >= 9.2. */
  {
    g_autofree char *release = read_line(osrelease);
    int kmaj = 0, kmin = 0;
    gboolean kernel_ok = release && sscanf(release, "%d.%d", &kmaj, &kmin) == 2 &&
                         (kmaj > 6 || (kmaj == 6 && kmin >= 12));
    gboolean qemu_ok = qemu_major > 9 || (qemu_major == 9 && qemu_minor >= 2);
    g_autofree char *qemu_text = qemu_major >= 0 ? g_strdup_printf("QEMU %d.%d", qemu_major, qemu_minor)
                                                 : g_strdup("QEMU unknown");

    if (!release)
      add(checks, "large-bars", VFD_DOCTOR_WARN, "cannot read %s: kernel version not checked", osrelease);
    else if (kernel_ok && qemu_ok)
      add(checks, "large-bars", VFD_DOCTOR_OK, "kernel %s, %s: large BARs map with huge pages", release,
          qemu_text);
    else
      add(checks, "large-bars", VFD_DOCTOR_WARN,
          "kernel %s, %s: without both kernel >= 6.12 and QEMU >= 9.2 (huge pfnmap) a large GPU BAR is mapped "
          "4 KiB at a time (seconds to minutes per GPU; 5+ minutes for a 64 GiB BAR in our lab); for large-BAR "
          "GPUs use kernel >= 6.12 (trixie, bookworm-backports) and QEMU >= 9.2 (bookworm-backports)",
          release, qemu_text);
  }

  /* 1 GiB hugepages, per NUMA node. */
  {
    g_autofree char *free_path = g_build_filename(o->sys_root, "kernel", "mm", "hugepages",
                                                  "hugepages-1048576kB", "free_hugepages", NULL);
    g_autofree char *total_path = g_build_filename(o->sys_root, "kernel", "mm", "hugepages",
                                                   "hugepages-1048576kB", "nr_hugepages", NULL);
    g_autofree char *nodes_dir = g_build_filename(o->sys_root, "devices", "system", "node", NULL);
    g_autofree char *free_s = read_line(free_path);
    g_autofree char *total_s = read_line(total_path);
    g_autoptr(GDir) nodes = g_dir_open(nodes_dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) per_node = g_string_new(NULL);
    const char *name;

    while (nodes && (name = g_dir_read_name(nodes)))
      if (g_str_has_prefix(name, "node") && g_ascii_isdigit(name[4]))
        g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, node_name_cmp);
    for (guint i = 0; i < names->len; i++) {
      g_autofree char *p = g_build_filename(nodes_dir, (const char *) g_ptr_array_index(names, i), "hugepages",
                                            "hugepages-1048576kB", "free_hugepages", NULL);
      g_autofree char *v = read_line(p);
      if (v)
        g_string_append_printf(per_node, "%s%s %s", per_node->len ? ", " : "",
                               (const char *) g_ptr_array_index(names, i), v);
    }
    if (!free_s || !total_s || g_ascii_strtoull(total_s, NULL, 10) == 0)
      add(checks, "hugepages-1g", VFD_DOCTOR_WARN,
          "no 1 GiB hugepages%s (hugepagesz=1G hugepages=N on the kernel command line; the CPU needs pdpe1gb): "
          "VFIO pins guest RAM at ~0.25 s/GiB with 4 KiB pages",
          free_s ? " reserved" : "");
    else if (g_ascii_strtoull(free_s, NULL, 10) == 0)
      add(checks, "hugepages-1g", VFD_DOCTOR_WARN, "0 of %s 1 GiB hugepages free%s%s%s", total_s ? total_s : "?",
          per_node->len ? " (" : "", per_node->str, per_node->len ? ")" : "");
    else
      add(checks, "hugepages-1g", VFD_DOCTOR_OK, "%s of %s 1 GiB hugepages free%s%s%s", free_s,
          total_s ? total_s : "?", per_node->len ? " (" : "", per_node->str, per_node->len ? ")" : "");
  }

  /* vfio-pci puts idle functions in D3hot unless disable_idle_d3; vfiod
   * keeps the functions it holds out of D3cold (d3cold_allowed=0). */
  {
    g_autofree char *v = read_line(idle_d3);
    if (v && (g_str_equal(v, "Y") || g_str_equal(v, "1")))
      add(checks, "vfio-idle-d3", VFD_DOCTOR_OK, "vfio-pci disable_idle_d3=%s: idle functions stay in D0", v);
    else if (v)
      add(checks, "vfio-idle-d3", VFD_DOCTOR_OK,
          "vfio-pci disable_idle_d3=%s: idle functions go to D3hot; vfiod keeps the ones it holds out of D3cold "
          "(d3cold_allowed=0); disable_idle_d3=1 keeps them in D0 if a GPU does not come back",
          v);
  }
}

/* The default guest image: DIR/image.json (vfioctl image build) and the
 * files it names in DIR. */
static void
image_check(GPtrArray *checks, const char *dir)
{
  g_autofree char *json = g_build_filename(dir, VFD_IMAGE_JSON, NULL);
  g_autofree char *build = g_strdup_printf("vfioctl image build --gpu --output %s", dir);
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GString) missing = g_string_new(NULL);
  g_autoptr(GError) error = NULL;
  JsonObject *o, *k = NULL, *i = NULL, *l = NULL;
  JsonNode *ln;
  const char *files[] = { VFD_IMAGE_KERNEL, VFD_IMAGE_INITRD, VFD_IMAGE_DRIVER_LAYER };

  if (!g_file_test(json, G_FILE_TEST_EXISTS)) {
    add(checks, "image", VFD_DOCTOR_WARN,
        "no guest image in %s (vfiod's [qemu] kernel, initrd and driver_layer default to it; sandboxes must "
        "name --kernel and --initrd until then): build it with '%s'",
        dir, build);
    return;
  }
  if (!json_parser_load_from_file(p, json, &error) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
    add(checks, "image", VFD_DOCTOR_WARN, "%s is not an image description (%s): rebuild it with '%s'", json,
        error ? error->message : "not a JSON object", build);
    return;
  }
  o = json_node_get_object(json_parser_get_root(p));
  if (json_object_has_member(o, "kernel") && JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "kernel")))
    k = json_object_get_object_member(o, "kernel");
  if (json_object_has_member(o, "initramfs") && JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "initramfs")))
    i = json_object_get_object_member(o, "initramfs");
  ln = json_object_get_member(o, "driver_layer");
  if (ln && JSON_NODE_HOLDS_OBJECT(ln))
    l = json_node_get_object(ln);
  for (guint n = 0; n < G_N_ELEMENTS(files); n++) {
    g_autofree char *f = g_build_filename(dir, files[n], NULL);
    if ((n < 2 || l) && !g_file_test(f, G_FILE_TEST_IS_REGULAR))
      g_string_append_printf(missing, " %s", files[n]);
  }
  if (!k || !i || missing->len) {
    add(checks, "image", VFD_DOCTOR_WARN, "the guest image in %s is incomplete (missing:%s): rebuild it with '%s'",
        dir, missing->len ? missing->str : " its kernel or initramfs description", build);
    return;
  }
  if (l)
    add(checks, "image", VFD_DOCTOR_OK, "%s: kernel %s, NVIDIA driver layer %s (key %.12s)", dir,
        json_object_get_string_member_with_default(k, "release", "?"),
        json_object_get_string_member_with_default(l, "driver_version", "?"),
        json_object_get_string_member_with_default(o, "key", "?"));
  else
    add(checks, "image", VFD_DOCTOR_OK,
        "%s: kernel %s, no NVIDIA driver layer (built without --gpu: GPU sandboxes start without it; '%s' adds "
        "it)",
        dir, json_object_get_string_member_with_default(k, "release", "?"), build);
}

/* ---- libvirt (issue 18) ---- */

/* libvirt prints every error to stderr unless told otherwise; the check
 * says what it found itself. */
static void
libvirt_quiet(void *data, virErrorPtr error)
{
}

/* Check "libvirt": connects read-only to @uri; none there is fine (vfiod
 * does not need libvirt); else its version, and every domain (running or
 * defined) whose XML has a PCI <hostdev managed='yes'>: libvirt would take
 * those devices from their drivers itself, fighting vfiod's bindings and
 * pools (vfiod's own domains will use managed='no'). */
static void
libvirt_check(GPtrArray *checks, const char *uri)
{
  virConnectPtr conn;
  virDomainPtr *doms = NULL;
  unsigned long lib = 0;
  g_autoptr(GString) found = g_string_new(NULL);
  int n;

  virSetErrorFunc(NULL, libvirt_quiet);
  conn = virConnectOpenReadOnly(uri);
  if (!conn) {
    add(checks, "libvirt", VFD_DOCTOR_OK, "no libvirt answers at %s (%s): nothing to check", uri,
        virGetLastErrorMessage());
    return;
  }
  virConnectGetLibVersion(conn, &lib);
  n = virConnectListAllDomains(conn, &doms, 0);
  for (int i = 0; i < n; i++) {
    char *xml = virDomainGetXMLDesc(doms[i], VIR_DOMAIN_XML_INACTIVE);
    g_autoptr(GArray) managed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

    if (vfd_libvirt_domain_hostdevs(xml, managed, NULL) && managed->len > 0) {
      g_string_append_printf(found, "%s'%s' (", found->len ? "; " : "", virDomainGetName(doms[i]));
      for (guint k = 0; k < managed->len; k++) {
        char name[VFD_BDF_STRLEN];
        g_string_append_printf(found, "%s%s", k ? ", " : "", vfd_bdf_format(&g_array_index(managed, VfdBdf, k), name));
      }
      g_string_append_c(found, ')');
    }
    free(xml);
    virDomainFree(doms[i]);
  }
  free(doms);
  if (n < 0)
    add(checks, "libvirt", VFD_DOCTOR_WARN, "libvirt %lu.%lu.%lu at %s: cannot list its domains: %s", lib / 1000000,
        lib / 1000 % 1000, lib % 1000, uri, virGetLastErrorMessage());
  else if (found->len)
    add(checks, "libvirt", VFD_DOCTOR_WARN,
        "libvirt %lu.%lu.%lu at %s: domains with PCI devices libvirt manages itself (<hostdev managed='yes'>): %s. "
        "When such a domain starts, libvirt unbinds the device from its driver and binds it back when it stops, "
        "under vfiod's bindings and pools: keep those devices out of vfiod's pools and sandboxes, or give the "
        "domain managed='no' and let vfiod bind them",
        lib / 1000000, lib / 1000 % 1000, lib % 1000, uri, found->str);
  else
    add(checks, "libvirt", VFD_DOCTOR_OK, "libvirt %lu.%lu.%lu at %s: %d domain(s), none with a PCI device libvirt "
        "manages itself", lib / 1000000, lib / 1000 % 1000, lib % 1000, uri, n);
  virConnectClose(conn);
}

GPtrArray *
vfd_doctor_run(const VfdDoctorOptions *o)
{
  GPtrArray *checks = g_ptr_array_new_with_free_func((GDestroyNotify) vfd_doctor_check_free);
  g_autofree char *groups = g_build_filename(o->sys_root, "kernel", "iommu_groups", NULL);
  g_autofree char *vfio_drv = g_build_filename(o->sys_root, "bus", "pci", "drivers", "vfio-pci", NULL);
  g_autofree char *vfio_mod = g_build_filename(o->sys_root, "module", "vfio_pci", NULL);
  g_autofree char *vsock = g_build_filename(o->dev_root, "vhost-vsock", NULL);
  g_autofree char *kvm = g_build_filename(o->dev_root, "kvm", NULL);
  struct rlimit rl;
  guint n;
  int qemu_major = -1, qemu_minor = -1; /* -1: unknown */

  /* IOMMU: without groups there is no passthrough at all. */
  n = count_entries(groups);
  if (n > 0)
    add(checks, "iommu", VFD_DOCTOR_OK, "%u IOMMU groups", n);
  else
    add(checks, "iommu", VFD_DOCTOR_FAIL,
        "no IOMMU groups in %s: enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on (or amd_iommu=on) iommu=pt",
        groups);

  if (g_file_test(vfio_drv, G_FILE_TEST_IS_DIR))
    add(checks, "vfio-pci", VFD_DOCTOR_OK, "vfio-pci driver loaded");
  else if (g_file_test(vfio_mod, G_FILE_TEST_IS_DIR))
    add(checks, "vfio-pci", VFD_DOCTOR_WARN, "vfio_pci module present but no driver directory");
  else
    add(checks, "vfio-pci", VFD_DOCTOR_FAIL, "vfio-pci is not loaded: modprobe vfio-pci (and add it to /etc/modules-load.d)");

  /* vfiod raises each QEMU's limit itself, but only up to its own hard limit. */
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
    if (rl.rlim_max == RLIM_INFINITY)
      add(checks, "memlock", VFD_DOCTOR_OK, "RLIMIT_MEMLOCK hard limit unlimited");
    else
      add(checks, "memlock", VFD_DOCTOR_WARN,
          "RLIMIT_MEMLOCK hard limit %" G_GUINT64_FORMAT " KiB: guests with passed devices need all their RAM "
          "pinned (vfio_dma_map -12); run vfiod with LimitMEMLOCK=infinity (the unit does)",
          (guint64) rl.rlim_max / 1024);
  }

  {
    VfdMeminfo mi;

    vfd_meminfo_read(o->proc_root, &mi);
    if (mi.hugepages_total > 0)
      add(checks, "hugepages", VFD_DOCTOR_OK, "%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " hugepages free (%" G_GUINT64_FORMAT " KiB)",
          mi.hugepages_free, mi.hugepages_total, mi.hugepage_kib);
    else
      add(checks, "hugepages", VFD_DOCTOR_WARN, "no hugepages reserved ([qemu] hugepages=true needs some: vm.nr_hugepages)");
  }

  {
    const char *argv[] = { o->qemu_binary, "--version", NULL };
    g_autofree char *out = NULL;
    g_autoptr(GError) error = NULL;
    int status = 0;
    if (g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                     NULL, &status, &error) &&
        g_spawn_check_wait_status(status, NULL) && out) {
      int major = 0, minor = 0;
      const char *v = strstr(out, "version ");
      if (v && sscanf(v, "version %d.%d", &major, &minor) == 2) {
        qemu_major = major;
        qemu_minor = minor;
      }
      if (major > 7 || (major == 7 && minor >= 2))
        add(checks, "qemu", VFD_DOCTOR_OK, "%s %d.%d", o->qemu_binary, major, minor);
      else
        add(checks, "qemu", VFD_DOCTOR_WARN, "%s %d.%d: 7.2 or newer is tested", o->qemu_binary, major, minor);
    } else {
      add(checks, "qemu", VFD_DOCTOR_FAIL, "cannot run %s: %s", o->qemu_binary,
          error ? error->message : "it failed");
    }
  }

  {
    int fd = open(kvm, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      add(checks, "kvm", VFD_DOCTOR_WARN, "%s: %s; only [qemu] accel=tcg (slow emulation) will work", kvm,
          g_strerror(e));
    } else {
      int api = ioctl(fd, KVM_GET_API_VERSION, 0);
      close(fd);
      if (api == KVM_API_VERSION)
        add(checks, "kvm", VFD_DOCTOR_OK, "%s usable (API %d)", kvm, api);
      else
        add(checks, "kvm", VFD_DOCTOR_WARN, "%s answers API %d, expected %d", kvm, api, KVM_API_VERSION);
    }
  }

  if (g_file_test(vsock, G_FILE_TEST_EXISTS))
    add(checks, "vhost-vsock", VFD_DOCTOR_OK, "%s present: sandboxes get a vsock CID", vsock);
  else
    add(checks, "vhost-vsock", VFD_DOCTOR_WARN, "no %s (modprobe vhost_vsock): guests report on the console only",
        vsock);

  gpu_host_checks(checks, o, n > 0, qemu_major, qemu_minor);

  if (o->pins_file) {
    g_autoptr(GHashTable) pins = NULL;
    g_autoptr(GHashTable) versions = NULL;
    g_autoptr(GError) error = NULL;
    if (!vfd_pins_load(o->pins_file, &pins, &error))
      add(checks, "pins", VFD_DOCTOR_FAIL, "%s", error->message);
    else if (o->versions_file && !vfd_pins_load(o->versions_file, &versions, &error))
      add(checks, "pins", VFD_DOCTOR_FAIL, "%s", error->message);
    else
      add(checks, "pins", VFD_DOCTOR_OK, "guest kernel %s, NVIDIA driver %s",
          (const char *) g_hash_table_lookup(pins, "GUEST_KERNEL_RELEASE"),
          versions ? (const char *) g_hash_table_lookup(versions, "NVIDIA_DRIVER_VERSION") : "?");
  }
  if (o->image_dir)
    image_check(checks, o->image_dir);
  if (o->libvirt_uri)
    libvirt_check(checks, o->libvirt_uri);
  return checks;
}
