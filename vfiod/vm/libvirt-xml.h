/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The libvirt domain XML of a sandbox (issue 18, the libvirt backend): what
 * vfd_qemu_build_argv() gives QEMU, said in libvirt's terms, for a
 * transient domain (virDomainCreateXML). vfiod keeps owning the devices:
 * every passed function is a <hostdev managed='no'> (libvirt never binds
 * or unbinds), each behind a pcie-root-port of its own; the TAP vfiod made
 * is an <interface type='ethernet'> with <target managed='no'>; the vsock
 * device has vfiod's CID; guest RAM is memfd (or hugepages), locked; the
 * Q35 64-bit PCI window (<pcihole64>) and the guest's address bits
 * (<maxphysaddr>) come from the address plan; direct kernel boot with
 * vfiod's kernel, initramfs and command line; the serial console to a
 * file; vfiod's own facts in <metadata>. Text only: nothing is opened or
 * checked on disk here. */

#include <glib.h>
#include <sys/types.h>

#include "bdf.h"
#include "libvirt-module.h" /* VFD_LIBVIRT_XMLNS */


/* One disk of the domain, a raw image. */
typedef struct {
  const char *source; /* absolute path libvirt gives QEMU (an fd group's file, or a vfiod-owned file) */
  const char *serial; /* virtio-blk serial guest-init finds it by (guest-init/protocol.h, "disks") */
  gboolean read_only;
  const char *fdgroup; /* the fd group (virDomainFDAssociate()) QEMU gets the image from, NULL: libvirt
                        * opens @source itself */
} VfdLibvirtDisk;

typedef struct {
  const char *name;        /* the domain's name: the sandbox id */
  const char *sandbox_name; /* the client's name for it, NULL: none (metadata) */
  uid_t owner_uid;         /* metadata */
  gboolean kvm;            /* domain type kvm, else qemu (TCG) */
  const char *emulator;    /* [qemu] binary, absolute */
  guint memory_mib;
  guint vcpus;
  gboolean microvm;        /* the microvm machine (only without @devices); else q35 */
  const VfdBdf *devices;   /* passed functions on Q35, one root port each */
  guint n_devices;
  const guint32 *device_classes; /* PCI class code of each of @devices, NULL: unknown */
  guint16 present_vendor;  /* TEST ONLY ([qemu] test_present_as): != 0: display-class (0x03xxxx) functions
                            * are shown to the guest with these IDs (a <qemu:override> of the hostdev's
                            * x-pci-vendor-id / x-pci-device-id, as the qemu backend's -device options) */
  guint16 present_device;
  guint64 pci_hole64_size; /* bytes; 0: QEMU's default */
  guint phys_bits;         /* guest address bits; 0: the default */
  gboolean hugepages;
  guint hugepage_kib;      /* 0: the host's default size */
  guint prealloc_threads;  /* 0: no preallocation */
  int numa_node;           /* bind RAM to this host node; -1: none */
  const char *kernel;      /* absolute paths */
  const char *initrd;
  const char *cmdline;     /* the guest kernel's command line, whole */
  const char *serial_log;  /* absolute path of the console log */
  const VfdLibvirtDisk *disks;
  guint n_disks;
  const char *tap;         /* the TAP vfiod made; NULL: no network */
  const char *mac;         /* its guest MAC, xx:xx:xx:xx:xx:xx */
  guint32 cid;             /* vsock CID; 0: none */
  gboolean run_as;         /* TRUE: QEMU runs as @run_uid:@run_gid (a static DAC label; +0:+0 for root)
                            * and libvirt relabels nothing (vfiod handed the domain its files and
                            * /dev/vfio nodes); FALSE: libvirt's configured user and labelling */
  uid_t run_uid;
  gid_t run_gid;
  const char *fw_cfg_file; /* the workload's payload (guest-init/payload.h), a file QEMU reads at start as
                            * fw_cfg VFIOD_PAYLOAD_FW_CFG_NAME; NULL: none */
} VfdLibvirtDomain;

/* The domain XML for @d, a new string (UTF-8; every value escaped). The
 * machine is q35 with one pcie-root-port per function, or microvm when
 * @d->microvm and there are no devices. Never NULL. */
char *vfd_libvirt_domain_xml(const VfdLibvirtDomain *d);

/* The PCI functions a domain's XML (@xml: virDomainGetXMLDesc()'s text,
 * untrusted: any domain on the host) gives the guest as <hostdev
 * mode='subsystem' type='pci'>: each source address appended as a VfdBdf
 * to @managed (managed='yes': libvirt detaches the function from its host
 * driver itself when the domain starts) or to @unmanaged (the others).
 * Either may be NULL. An address out of range is skipped. FALSE when @xml
 * is not well-formed (what was found before the error stays). */
gboolean vfd_libvirt_domain_hostdevs(const char *xml, GArray *managed, GArray *unmanaged);
