/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt domain XML of a sandbox (libvirt-xml.h). Every value goes
 * through g_markup_printf_escaped(). */
#include "libvirt-xml.h"

#include <string.h>

#include "../../guest-init/payload.h"
#include "../../guest-init/protocol.h"

/* Appends @fmt (g_markup_printf_escaped(): every string argument escaped). */
G_GNUC_PRINTF(2, 3)
static void
add(GString *x, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *s = NULL;

  va_start(ap, fmt);
  s = g_markup_vprintf_escaped(fmt, ap);
  va_end(ap);
  g_string_append(x, s);
}

static void
add_memory_backing(GString *x, const VfdLibvirtDomain *d)
{
  g_string_append(x, "  <memoryBacking>\n");
  if (d->hugepages) {
    g_string_append(x, "    <hugepages>");
    if (d->hugepage_kib)
      add(x, "<page size='%u' unit='KiB'/>", d->hugepage_kib);
    g_string_append(x, "</hugepages>\n");
  } else
    g_string_append(x, "    <source type='memfd'/>\n");
  /* VFIO pins all guest RAM for DMA: locked, as vfiod's own QEMU (memlock) */
  g_string_append(x, "    <access mode='shared'/>\n    <locked/>\n");
  if (d->prealloc_threads)
    add(x, "    <allocation mode='immediate' threads='%u'/>\n", d->prealloc_threads);
  g_string_append(x, "  </memoryBacking>\n");
}

static void
add_cpu(GString *x, const VfdLibvirtDomain *d)
{
  gboolean q35 = !d->microvm || d->n_devices > 0;

  if (d->kvm) {
    /* the host's instruction set (CUDA needs AVX and more) */
    g_string_append(x, "  <cpu mode='host-passthrough' check='none' migratable='off'>\n");
    /* the plan's width, never more than the host's (vfd_qemu_address_plan());
     * libvirt 9.0 (Debian 12) has no passthrough limit, so it is said
     * exactly (QEMU's phys-bits=N) */
    if (q35 && d->phys_bits)
      add(x, "    <maxphysaddr mode='emulate' bits='%u'/>\n", d->phys_bits);
    g_string_append(x, "  </cpu>\n");
  } else if (q35 && d->phys_bits) {
    /* TCG: QEMU's default CPU with an explicit width */
    add(x, "  <cpu mode='custom' match='exact' check='none'>\n    <model fallback='forbid'>qemu64</model>\n"
           "    <maxphysaddr mode='emulate' bits='%u'/>\n  </cpu>\n",
        d->phys_bits);
  }
}

static void
add_devices(GString *x, const VfdLibvirtDomain *d)
{
  gboolean q35 = !d->microvm || d->n_devices > 0;
  const char *blk_bus = "virtio";

  g_string_append(x, "  <devices>\n");
  add(x, "    <emulator>%s</emulator>\n", d->emulator);
  if (q35) {
    g_string_append(x, "    <controller type='pci' index='0' model='pcie-root'>\n");
    if (d->pci_hole64_size)
      add(x, "      <pcihole64 unit='KiB'>%" G_GUINT64_FORMAT "</pcihole64>\n", d->pci_hole64_size / 1024);
    g_string_append(x, "    </controller>\n");
    /* one root port per passed function, buses 1..N, then the function on it */
    for (guint i = 0; i < d->n_devices; i++)
      add(x, "    <controller type='pci' index='%u' model='pcie-root-port'>\n"
             "      <target chassis='%u' port='0x%x'/>\n    </controller>\n",
          i + 1, i + 1, 0x10 + i);
    for (guint i = 0; i < d->n_devices; i++) {
      const VfdBdf *b = &d->devices[i];
      add(x, "    <hostdev mode='subsystem' type='pci' managed='no'>\n"
             "      <source>\n        <address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/>\n"
             "      </source>\n"
             "      <alias name='ua-vfd-hostdev%u'/>\n"
             "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>\n"
             "    </hostdev>\n",
          b->domain, b->bus, b->dev, b->func, i, i + 1);
    }
  }
  for (guint i = 0; i < d->n_disks; i++) {
    const VfdLibvirtDisk *k = &d->disks[i];
    char dev[8];

    g_snprintf(dev, sizeof dev, "vd%c", 'a' + (int) i);
    add(x, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='%s'",
        k->source);
    if (k->fdgroup)
      add(x, " fdgroup='%s'", k->fdgroup);
    add(x, "/>\n      <target dev='%s' bus='%s'/>\n      <serial>%s</serial>\n", dev, blk_bus, k->serial);
    if (k->read_only)
      g_string_append(x, "      <readonly/>\n");
    g_string_append(x, "    </disk>\n");
  }
  if (d->tap) {
    /* the TAP vfiod made, addressed and firewalled: libvirt only opens it */
    g_string_append(x, "    <interface type='ethernet'>\n");
    if (d->mac)
      add(x, "      <mac address='%s'/>\n", d->mac);
    add(x, "      <target dev='%s' managed='no'/>\n      <model type='virtio'/>\n    </interface>\n", d->tap);
  }
  if (d->cid)
    add(x, "    <vsock model='virtio'>\n      <cid auto='no' address='%u'/>\n    </vsock>\n", d->cid);
  add(x, "    <serial type='file'>\n      <source path='%s' append='on'/>\n      <target port='0'/>\n    </serial>\n",
      d->serial_log);
  g_string_append(x, "    <memballoon model='none'/>\n  </devices>\n");
}

char *
vfd_libvirt_domain_xml(const VfdLibvirtDomain *d)
{
  GString *x = g_string_new(NULL);
  gboolean q35 = !d->microvm || d->n_devices > 0;

  add(x, "<domain type='%s' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n  <name>%s</name>\n",
      d->kvm ? "kvm" : "qemu", d->name);
  add(x, "  <metadata>\n    <vfiod:sandbox xmlns:vfiod='%s'>\n      <vfiod:id>%s</vfiod:id>\n"
         "      <vfiod:owner uid='%u'/>\n",
      VFD_LIBVIRT_XMLNS, d->name, (guint) d->owner_uid);
  if (d->sandbox_name)
    add(x, "      <vfiod:name>%s</vfiod:name>\n", d->sandbox_name);
  g_string_append(x, "    </vfiod:sandbox>\n  </metadata>\n");
  add(x, "  <memory unit='MiB'>%u</memory>\n", d->memory_mib);
  add_memory_backing(x, d);
  add(x, "  <vcpu placement='static'>%u</vcpu>\n", d->vcpus);
  if (d->numa_node >= 0)
    add(x, "  <numatune>\n    <memory mode='strict' nodeset='%d'/>\n  </numatune>\n", d->numa_node);
  add(x, "  <os>\n    <type arch='x86_64' machine='%s'>hvm</type>\n    <kernel>%s</kernel>\n"
         "    <initrd>%s</initrd>\n    <cmdline>%s</cmdline>\n  </os>\n",
      q35 ? "q35" : "microvm", d->kernel, d->initrd, d->cmdline);
  if (d->fw_cfg_file)
    add(x, "  <sysinfo type='fwcfg'>\n    <entry name='%s' file='%s'/>\n  </sysinfo>\n", VFIOD_PAYLOAD_FW_CFG_NAME,
        d->fw_cfg_file);
  g_string_append(x, "  <features>\n    <acpi/>\n  </features>\n");
  add_cpu(x, d);
  /* one life: vfiod decides what comes after it */
  g_string_append(x, "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
                     "  <on_crash>destroy</on_crash>\n");
  add_devices(x, d);
  if (d->present_vendor && d->device_classes) {
    gboolean open = FALSE;
    for (guint i = 0; i < d->n_devices; i++) {
      if ((d->device_classes[i] >> 16) != 0x03)
        continue;
      if (!open)
        g_string_append(x, "  <qemu:override>\n");
      open = TRUE;
      add(x, "    <qemu:device alias='ua-vfd-hostdev%u'>\n      <qemu:frontend>\n"
             "        <qemu:property name='x-pci-vendor-id' type='unsigned' value='%u'/>\n"
             "        <qemu:property name='x-pci-device-id' type='unsigned' value='%u'/>\n"
             "      </qemu:frontend>\n    </qemu:device>\n",
          i, d->present_vendor, d->present_device);
    }
    if (open)
      g_string_append(x, "  </qemu:override>\n");
  }
  if (d->run_as)
    add(x, "  <seclabel type='static' model='dac' relabel='no'>\n    <label>+%u:+%u</label>\n  </seclabel>\n",
        (guint) d->run_uid, (guint) d->run_gid);
  g_string_append(x, "</domain>\n");
  return g_string_free(x, FALSE);
}

/* ---- reading a domain's PCI hostdevs ---- */

typedef struct {
  int depth;
  int depth_hostdev; /* the element depth of the open PCI <hostdev>, 0: none */
  gboolean managed;  /* that hostdev's managed='yes' */
  gboolean in_source;
  GArray *managed_out, *unmanaged_out;
} HostdevScan;

static const char *
attr(const char **names, const char **values, const char *name)
{
  for (guint i = 0; names[i]; i++)
    if (g_str_equal(names[i], name))
      return values[i];
  return NULL;
}

/* A number attribute of an <address> ("0x41", "65"), or -1. */
static gint64
attr_number(const char **names, const char **values, const char *name, guint64 max)
{
  const char *v = attr(names, values, name);
  guint64 n;
  char *end = NULL;

  if (!v || !*v)
    return -1;
  n = g_ascii_strtoull(v, &end, 0);
  return end && !*end && n <= max ? (gint64) n : -1;
}

static void
scan_start(GMarkupParseContext *ctx, const char *element, const char **names, const char **values, gpointer data,
           GError **error)
{
  HostdevScan *h = data;

  h->depth++;
  if (g_str_equal(element, "hostdev") && !h->depth_hostdev && g_strcmp0(attr(names, values, "mode"), "subsystem") == 0 &&
      g_strcmp0(attr(names, values, "type"), "pci") == 0) {
    h->depth_hostdev = h->depth;
    h->managed = g_strcmp0(attr(names, values, "managed"), "yes") == 0;
  } else if (h->depth_hostdev && h->depth == h->depth_hostdev + 1 && g_str_equal(element, "source"))
    h->in_source = TRUE;
  else if (h->in_source && h->depth == h->depth_hostdev + 2 && g_str_equal(element, "address")) {
    gint64 d = attr_number(names, values, "domain", 0xffff), b = attr_number(names, values, "bus", 0xff),
           s = attr_number(names, values, "slot", 0x1f), f = attr_number(names, values, "function", 7);
    GArray *out = h->managed ? h->managed_out : h->unmanaged_out;

    if (b >= 0 && s >= 0 && f >= 0 && out) {
      VfdBdf bdf = { .domain = (guint16) MAX(d, 0), .bus = (guint8) b, .dev = (guint8) s, .func = (guint8) f };
      g_array_append_val(out, bdf);
    }
  }
}

static void
scan_end(GMarkupParseContext *ctx, const char *element, gpointer data, GError **error)
{
  HostdevScan *h = data;

  if (h->in_source && h->depth == h->depth_hostdev + 1)
    h->in_source = FALSE;
  if (h->depth_hostdev == h->depth)
    h->depth_hostdev = 0;
  h->depth--;
}

gboolean
vfd_libvirt_domain_hostdevs(const char *xml, GArray *managed, GArray *unmanaged)
{
  static const GMarkupParser parser = { .start_element = scan_start, .end_element = scan_end };
  HostdevScan h = { .managed_out = managed, .unmanaged_out = unmanaged };
  g_autoptr(GMarkupParseContext) ctx = g_markup_parse_context_new(&parser, 0, &h, NULL);

  return xml && g_markup_parse_context_parse(ctx, xml, -1, NULL) && g_markup_parse_context_end_parse(ctx, NULL);
}
