/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt domain XML of a sandbox (libvirt-xml.h). Every value goes
 * through g_markup_printf_escaped(). */
#include "libvirt-xml.h"

#include <string.h>

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
  gboolean q35 = d->n_devices > 0;

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
  gboolean q35 = d->n_devices > 0;
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
             "      <address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>\n"
             "    </hostdev>\n",
          b->domain, b->bus, b->dev, b->func, i + 1);
    }
  }
  for (guint i = 0; i < d->n_disks; i++) {
    const VfdLibvirtDisk *k = &d->disks[i];
    char dev[8];

    g_snprintf(dev, sizeof dev, "vd%c", 'a' + (int) i);
    add(x, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n"
           "      <source file='%s'/>\n      <target dev='%s' bus='%s'/>\n      <serial>%s</serial>\n",
        k->source, dev, blk_bus, k->serial);
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
  gboolean q35 = d->n_devices > 0;

  add(x, "<domain type='%s'>\n  <name>%s</name>\n", d->kvm ? "kvm" : "qemu", d->name);
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
  g_string_append(x, "  <features>\n    <acpi/>\n  </features>\n");
  add_cpu(x, d);
  /* one life: vfiod decides what comes after it */
  g_string_append(x, "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
                     "  <on_crash>destroy</on_crash>\n");
  add_devices(x, d);
  g_string_append(x, "</domain>\n");
  return g_string_free(x, FALSE);
}
