/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "doctor.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

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

static guint64
meminfo(const char *proc_root, const char *key)
{
  g_autofree char *path = g_build_filename(proc_root, "meminfo", NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return 0;
  lines = g_strsplit(contents, "\n", -1);
  for (char **l = lines; *l; l++)
    if (g_str_has_prefix(*l, key) && (*l)[strlen(key)] == ':')
      return g_ascii_strtoull(*l + strlen(key) + 1, NULL, 10);
  return 0;
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
    guint64 total = meminfo(o->proc_root, "HugePages_Total"), free_pages = meminfo(o->proc_root, "HugePages_Free");
    guint64 size = meminfo(o->proc_root, "Hugepagesize");
    if (total > 0)
      add(checks, "hugepages", VFD_DOCTOR_OK, "%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " hugepages free (%" G_GUINT64_FORMAT " KiB)",
          free_pages, total, size);
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
      if (v)
        sscanf(v, "version %d.%d", &major, &minor);
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
  return checks;
}
