/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* `vfioctl doctor`: checks that a host can run vfiod's sandboxes. Reads
 * only; writes nothing. */
typedef enum {
  VFD_DOCTOR_OK,
  VFD_DOCTOR_WARN, /* works, but worse (no hugepages, no vsock...) */
  VFD_DOCTOR_FAIL, /* passthrough or sandboxes cannot work */
} VfdDoctorStatus;

typedef struct {
  char *name;   /* "iommu", "vfio-pci", "memlock", "hugepages", "qemu", "kvm", "vhost-vsock",
                 * GPU hosts: "irq-remapping" (FAIL when off), "unsafe-interrupts" (FAIL when
                 * vfio_iommu_type1 allow_unsafe_interrupts=Y), "iommu-mode", "large-bars" (WARN
                 * below kernel 6.12 / QEMU 9.2), "hugepages-1g" (free per NUMA node),
                 * "vfio-idle-d3"; then "pins", "image" (WARN when the default image is
                 * missing or incomplete, saying how to build it), "libvirt" (OK when none
                 * answers at the URI; WARN when a domain of it has a PCI <hostdev
                 * managed='yes'>: libvirt binds and unbinds that device itself, under
                 * vfiod's bindings and pools) */
  VfdDoctorStatus status;
  char *detail; /* what was found, and what to do */
} VfdDoctorCheck;

void vfd_doctor_check_free(VfdDoctorCheck *check);

typedef struct {
  const char *sys_root;    /* "/sys" */
  const char *dev_root;    /* "/dev" */
  const char *proc_root;   /* "/proc" */
  const char *qemu_binary; /* "qemu-system-x86_64" */
  const char *pins_file;   /* pins.env, NULL: not checked */
  const char *versions_file; /* versions.env, NULL: not checked */
  const char *image_dir;   /* the default guest image (VFIOD_IMAGE_DIR, vfioctl image build's
                            * DIR/image.json and its files): check "image"; NULL: not checked */
  const char *libvirt_uri; /* check "libvirt" against this connection URI ("qemu:///system");
                            * NULL: not checked */
} VfdDoctorOptions;

/* Runs every check; a GPtrArray of VfdDoctorCheck in a fixed order. */
GPtrArray *vfd_doctor_run(const VfdDoctorOptions *options);

const char *vfd_doctor_status_to_string(VfdDoctorStatus status);
