/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "qemu-argv.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "guest-init/protocol.h"

/* g_strv_builder_take() is GLib 2.80; Debian 12 has 2.74. */
static void G_GNUC_PRINTF(2, 3)
add_printf(GStrvBuilder *b, const char *fmt, ...)
{
  g_autofree char *s = NULL;
  va_list ap;

  va_start(ap, fmt);
  s = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_strv_builder_add(b, s);
}

char *
vfd_qemu_kernel_cmdline(const VfdQemuConfig *c, gboolean q35)
{
  GString *append = g_string_new("console=ttyS0 panic=-1");

  if (q35)
    g_string_append(append, c->pci_nocrs ? " pci=realloc pci=nocrs" : " pci=realloc");
  if (c->tsc_khz)
    g_string_append_printf(append, " tsc_early_khz=%u", c->tsc_khz);
  g_string_append_printf(append, " " VFIOD_KEY_SANDBOX "=%s", c->id);
  for (guint i = 0; c->extra_append && c->extra_append[i]; i++)
    g_string_append_printf(append, " %s", c->extra_append[i]);
  return g_string_free(append, FALSE);
}

GStrv
vfd_qemu_build_argv(const VfdQemuConfig *c)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  gboolean microvm = c->n_devices == 0;
  /* microvm: no PCI, no firmware tables to walk: the quick CPU-only
   * machine. q35 when functions are passed through, each behind its own
   * PCIe root port so that BARs are sized per device. */
  g_autofree char *append = vfd_qemu_kernel_cmdline(c, !microvm);

  g_strv_builder_add_many(b, c->qemu_binary, "-name", c->id, "-accel", c->accel, NULL);
  g_strv_builder_add(b, "-M");
  /* microvm needs its legacy PIT/PIC/RTC: without a PIT the guest kernel
   * cannot calibrate its TSC under TCG and stalls at boot. */
  add_printf(b, "%s,memory-backend=mem", microvm ? "microvm,pit=on,pic=on,rtc=on" : "q35");
  if (microvm && g_str_equal(c->accel, "kvm")) {
    /* CPU-only sandboxes too get the host's instruction set under KVM
     * (QEMU's default qemu64 lacks AVX and friends). */
    g_strv_builder_add_many(b, "-cpu", "host", NULL);
  }
  if (!microvm) {
    /* The guest CPU and address width (vfd_qemu_address_plan()). */
    gboolean kvm = g_str_equal(c->accel, "kvm");
    if (kvm && c->phys_bits) {
      g_strv_builder_add(b, "-cpu");
      add_printf(b, "host,host-phys-bits=on,host-phys-bits-limit=%u", c->phys_bits);
    } else if (kvm) {
      g_strv_builder_add_many(b, "-cpu", "host", NULL);
    } else if (c->phys_bits) {
      g_strv_builder_add(b, "-cpu");
      add_printf(b, "qemu64,phys-bits=%u", c->phys_bits);
    }
    if (c->pci_hole64_size) {
      /* Whole GiB: the plan rounds the hole to 1 GiB. */
      g_strv_builder_add(b, "-global");
      add_printf(b, "q35-pcihost.pci-hole64-size=%" G_GUINT64_FORMAT "G",
                 (c->pci_hole64_size + G_GUINT64_CONSTANT(0x3fffffff)) >> 30);
    }
  }
  /* Guest RAM from a memfd (sealable, shareable with vhost-user later),
   * optionally on hugepages. */
  g_strv_builder_add(b, "-object");
  {
    g_autoptr(GString) mem = g_string_new(NULL);
    g_string_append_printf(mem, "memory-backend-memfd,id=mem,size=%uM,share=on", c->memory_mib);
    if (c->hugepages || c->hugepage_kib)
      g_string_append(mem, ",hugetlb=on");
    if (c->hugepage_kib % (1024 * 1024) == 0 && c->hugepage_kib)
      g_string_append_printf(mem, ",hugetlbsize=%uG", c->hugepage_kib / (1024 * 1024));
    else if (c->hugepage_kib % 1024 == 0 && c->hugepage_kib)
      g_string_append_printf(mem, ",hugetlbsize=%uM", c->hugepage_kib / 1024);
    else if (c->hugepage_kib)
      g_string_append_printf(mem, ",hugetlbsize=%uK", c->hugepage_kib);
    if (c->prealloc_threads)
      g_string_append_printf(mem, ",prealloc=on,prealloc-threads=%u", c->prealloc_threads);
    if (c->numa_bind)
      g_string_append_printf(mem, ",host-nodes=%u,policy=bind", c->numa_node);
    g_strv_builder_add(b, mem->str);
  }
  g_strv_builder_add(b, "-m");
  add_printf(b, "%u", c->memory_mib);
  g_strv_builder_add(b, "-smp");
  add_printf(b, "%u", c->vcpus);
  g_strv_builder_add_many(b, "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", NULL);
  if (!microvm)
    g_strv_builder_add_many(b, "-vga", "none", NULL);
  if (c->seccomp)
    /* QEMU's seccomp filter: no exec, no privilege changes, no scheduler
     * or resource games from inside the emulator. */
    g_strv_builder_add_many(b, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
                            NULL);
  if (c->serial_fd > 0) {
    /* The console goes to a file vfiod created and opened (fd @serial_fd,
     * write-only, append): QEMU never opens a path for it. */
    g_strv_builder_add(b, "-add-fd");
    add_printf(b, "fd=%d,set=%d,opaque=serial-log", c->serial_fd, VFD_QEMU_FDSET_SERIAL);
    g_strv_builder_add(b, "-chardev");
    add_printf(b, "file,id=serial0,path=/dev/fdset/%d,append=on", VFD_QEMU_FDSET_SERIAL);
    g_strv_builder_add_many(b, "-serial", "chardev:serial0", NULL);
  } else {
    g_strv_builder_add(b, "-serial");
    add_printf(b, "file:%s", c->serial_log);
  }
  if (c->pidfile) {
    g_strv_builder_add(b, "-pidfile");
    g_strv_builder_add(b, c->pidfile);
  }
  g_strv_builder_add(b, "-qmp");
  add_printf(b, "unix:%s,server=on,wait=off", c->qmp_socket);
  g_strv_builder_add_many(b, "-kernel", c->kernel, "-initrd", c->initrd, "-append", append, NULL);
  for (guint i = 0; i < c->n_devices; i++) {
    char bdf[VFD_BDF_STRLEN];
    g_strv_builder_add(b, "-device");
    add_printf(b, "pcie-root-port,id=rp%u,chassis=%u,slot=%u", i, i + 1, i);
    g_strv_builder_add(b, "-device");
    if (c->present_vendor && c->device_classes && (c->device_classes[i] >> 16) == 0x03)
      /* Test only: a display-class stand-in shown with other IDs (the
       * lab's std VGA as an NVIDIA GPU, for the real nvidia.ko to probe). */
      add_printf(b, "vfio-pci,host=%s,bus=rp%u,x-pci-vendor-id=0x%04x,x-pci-device-id=0x%04x",
                 vfd_bdf_format(&c->devices[i], bdf), i, c->present_vendor, c->present_device);
    else
      add_printf(b, "vfio-pci,host=%s,bus=rp%u", vfd_bdf_format(&c->devices[i], bdf), i);
  }
  for (guint i = 0; c->extra_args && c->extra_args[i]; i++)
    g_strv_builder_add(b, c->extra_args[i]);
  return g_strv_builder_end(b);
}

/* A number from the first line of @path; FALSE when unreadable. */
static gboolean
read_count(const char *path, guint64 *ret)
{
  g_autofree char *text = NULL;
  char *end = NULL;

  if (!g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  *ret = g_ascii_strtoull(g_strstrip(text), &end, 10);
  return end && end != text && !*end;
}

gboolean
vfd_hugepages_check(const char *sys_root, const char *proc_root, guint memory_mib, guint page_kib, int numa_node,
                    GError **error)
{
  g_autofree char *dir = NULL;
  g_autofree char *size_name = NULL;
  g_autofree char *where = NULL;
  guint64 need, free_pages = 0, resv = 0;

  if (page_kib == 0) {
    /* The host's default size: /proc/meminfo "Hugepagesize:    2048 kB". */
    g_autofree char *meminfo = g_build_filename(proc_root, "meminfo", NULL);
    g_autofree char *text = NULL;
    const char *line;
    if (g_file_get_contents(meminfo, &text, NULL, NULL) && (line = strstr(text, "Hugepagesize:")))
      page_kib = (guint) g_ascii_strtoull(line + strlen("Hugepagesize:"), NULL, 10);
    if (page_kib == 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                  "guest RAM on hugepages ([qemu] hugepages), but this host has none (%s has no Hugepagesize)",
                  meminfo);
      return FALSE;
    }
  }
  size_name = page_kib % (1024 * 1024) == 0 ? g_strdup_printf("%u GiB", page_kib / (1024 * 1024))
              : page_kib % 1024 == 0        ? g_strdup_printf("%u MiB", page_kib / 1024)
                                            : g_strdup_printf("%u KiB", page_kib);
  if (((guint64) memory_mib * 1024) % page_kib != 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "memory_mib %u is not a whole number of %s hugepages ([qemu] hugepage_size)", memory_mib,
                size_name);
    return FALSE;
  }
  need = (guint64) memory_mib * 1024 / page_kib;
  {
    g_autofree char *sub = g_strdup_printf("hugepages-%ukB", page_kib);
    g_autofree char *node = g_strdup_printf("node%d", numa_node);
    if (numa_node >= 0) {
      dir = g_build_filename(sys_root, "devices", "system", "node", node, "hugepages", sub, NULL);
      where = g_strdup_printf(" on NUMA node %d (guest RAM is bound to the devices' node)", numa_node);
    } else {
      dir = g_build_filename(sys_root, "kernel", "mm", "hugepages", sub, NULL);
      where = g_strdup("");
    }
  }
  {
    g_autofree char *free_path = g_build_filename(dir, "free_hugepages", NULL);
    g_autofree char *resv_path = g_build_filename(dir, "resv_hugepages", NULL);
    if (!read_count(free_path, &free_pages)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                  "guest RAM on %s hugepages, but this host has no such pages%s (%s)", size_name, where, dir);
      return FALSE;
    }
    /* Reserved by a mapping, not yet faulted in: not for us. */
    if (read_count(resv_path, &resv))
      free_pages = free_pages > resv ? free_pages - resv : 0;
  }
  if (free_pages < need) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "guest RAM of %u MiB needs %" G_GUINT64_FORMAT " %s hugepages%s, %" G_GUINT64_FORMAT
                " are free; reserve more (%s) or give the sandbox less memory",
                memory_mib, need, size_name, where, free_pages,
                page_kib >= 1024 * 1024 ? "hugepagesz=1G hugepages=N on the kernel command line"
                                        : "sysctl vm.nr_hugepages, or nr_hugepages in sysfs");
    return FALSE;
  }
  return TRUE;
}

/* ---- guest address space ---- */

#define GIB (G_GUINT64_CONSTANT(1) << 30)
#define TIB (G_GUINT64_CONSTANT(1) << 40)
/* QEMU (hw/i386/pc.c, q35): the default pci-hole64-size, the start of AMD's
 * HyperTransport hole and where guest RAM above 4 GiB goes around it. */
#define QEMU_HOLE64_DEFAULT (32 * GIB)
#define AMD_HT_START G_GUINT64_CONSTANT(0xfd00000000)
#define AMD_ABOVE_1TB_START TIB
/* QEMU's guest width when none is given (TCG_PHYS_ADDR_BITS, and the KVM
 * default without host-phys-bits). */
#define QEMU_DEFAULT_PHYS_BITS 40
/* 4-level paging maps 48 bits; 5-level (la57) 52. */
#define PHYS_BITS_4LEVEL 48
#define PHYS_BITS_5LEVEL 52

static guint64
align_up(guint64 v, guint64 a)
{
  return (v + a - 1) / a * a;
}

/* Smallest power of two >= @v (@v > 0, <= 2^63). */
static guint64
pow2_ceil(guint64 v)
{
  guint64 p = 1;

  while (p < v)
    p <<= 1;
  return p;
}

/* Address bits needed to address [0, @end): ceil(log2(@end)). */
static guint
bits_for(guint64 end)
{
  guint n = 0;

  while (n < 64 && (G_GUINT64_CONSTANT(1) << n) < end)
    n++;
  return n;
}

/* "128 GiB", "32 MiB", "4 TiB": for messages. */
static char *
size_text(guint64 bytes)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  guint u = 0;

  while (u + 1 < G_N_ELEMENTS(units) && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    u++;
  }
  return g_strdup_printf("%" G_GUINT64_FORMAT " %s", bytes, units[u]);
}

int
vfd_host_cpu_parse(const char *cpuinfo, VfdHostCpu *ret)
{
  VfdHostCpu cpu = { 0 };
  g_auto(GStrv) lines = NULL;
  gboolean have_sizes = FALSE, in_block = FALSE;

  if (!cpuinfo)
    return -EINVAL;
  lines = g_strsplit(cpuinfo, "\n", -1);
  for (char **l = lines; *l; l++) {
    const char *colon = strchr(*l, ':');
    g_autofree char *key = NULL;
    const char *value;

    if (!*g_strstrip(*l) && in_block)
      break; /* end of the first processor's block */
    if (!colon)
      continue;
    in_block = TRUE;
    key = g_strstrip(g_strndup(*l, (gsize) (colon - *l)));
    value = colon + 1;
    if (g_str_equal(key, "address sizes")) {
      /* " 46 bits physical, 48 bits virtual" */
      guint64 n = g_ascii_strtoull(value, NULL, 10);
      if (n == 0 || n > 64 || !strstr(value, "bits physical"))
        return -EINVAL;
      cpu.phys_bits = (guint) n;
      have_sizes = TRUE;
    } else if (g_str_equal(key, "flags")) {
      g_auto(GStrv) flags = g_strsplit(value, " ", -1);
      cpu.la57 = g_strv_contains((const char *const *) flags, "la57");
    } else if (g_str_equal(key, "vendor_id")) {
      g_autofree char *v = g_strstrip(g_strdup(value));
      cpu.amd = g_str_equal(v, "AuthenticAMD") || g_str_equal(v, "HygonGenuine");
    }
  }
  if (!have_sizes)
    return -EINVAL;
  *ret = cpu;
  return 0;
}

int
vfd_host_cpu_read(const char *proc_root, VfdHostCpu *ret)
{
  g_autofree char *path = g_build_filename(proc_root ? proc_root : "/proc", "cpuinfo", NULL);
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;

  if (!g_file_get_contents(path, &contents, NULL, &error))
    return g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? -ENOENT : -EIO;
  return vfd_host_cpu_parse(contents, ret);
}

guint64
vfd_pci_function_window(const VfdPciBar *bars)
{
  guint64 sum = 0, largest = 0;

  for (guint i = 0; i < VFD_PCI_NUM_BARS; i++) {
    if (!vfd_pci_bar_is_prefetch64(&bars[i]))
      continue;
    /* A BAR's size is a power of two; keep it so even if sysfs says not. */
    sum += pow2_ceil(bars[i].size);
    largest = MAX(largest, pow2_ceil(bars[i].size));
  }
  return largest ? align_up(sum, largest) : 0;
}

gboolean
vfd_qemu_address_plan(guint memory_mib, const guint64 *windows, guint n, const char *accel, const VfdHostCpu *cpu,
                      VfdAddressPlan *ret, GError **error)
{
  gboolean kvm = g_strcmp0(accel, "kvm") == 0;
  /* Under TCG the guest CPU is qemu64, which reports AuthenticAMD. */
  gboolean guest_amd = kvm ? cpu->amd : TRUE;
  guint64 ram = (guint64) memory_mib << 20;
  guint64 sum = 0, w, above_4g, start, hole, top;
  guint limit, needed;
  VfdAddressPlan plan = { 0 };

  for (guint i = 0; i < n; i++) {
    if (windows[i] > (G_GUINT64_CONSTANT(1) << 56) || sum + windows[i] > (G_GUINT64_CONSTANT(1) << 56)) {
      g_set_error_literal(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                          "the passed functions' 64-bit BARs add up to more than 64 PiB");
      return FALSE;
    }
    sum += windows[i];
  }
  w = sum ? pow2_ceil(sum) : 0;
  /* What QEMU sizes the hole with: ours when bigger than its default. */
  hole = MAX(w, QEMU_HOLE64_DEFAULT);
  /* Q35 (hw/i386/pc_q35.c): with at least 2.75 GiB, RAM below 4 GiB ends
   * at 2 GiB and the rest lies above 4 GiB; else all of it is below. */
  above_4g = ram >= G_GUINT64_CONSTANT(0xb0000000) ? ram - 2 * GIB : 0;
  /* The 64-bit hole starts at the end of that RAM, rounded up to 1 GiB
   * (pc_pci_hole64_start()). QEMU moves RAM above 4 GiB to 1 TiB for an
   * AMD guest when the hole would reach the HyperTransport range
   * (pc_memory_init()). */
  start = align_up(4 * GIB + above_4g, GIB);
  if (guest_amd && start + hole - 1 >= AMD_HT_START)
    start = align_up(AMD_ABOVE_1TB_START + above_4g, GIB);
  /* The firmware (SeaBIOS) places the root ports' windows from the hole's
   * start aligned to their largest alignment (<= w), then the small 64-bit
   * BARs of the devices on the root bus (virtio), rounded up to 1 GiB;
   * QEMU's _CRS window grows to cover what it placed. */
  top = align_up(start, MAX(w, GIB)) + hole + 1 * GIB;
  needed = bits_for(top);
  if (kvm)
    limit = cpu->la57 ? PHYS_BITS_5LEVEL : PHYS_BITS_4LEVEL;
  else
    limit = PHYS_BITS_4LEVEL; /* qemu64 has no 5-level paging */
  if (needed > limit || (kvm && cpu->phys_bits && needed > cpu->phys_bits) ||
      (cpu->cap_bits && needed > cpu->cap_bits)) {
    g_autofree char *wt = size_text(w);
    g_autofree char *rt = size_text(ram);
    g_autofree char *why = NULL;
    if (needed > limit)
      why = g_strdup_printf("more than the %u a guest with %s paging can map%s", limit,
                            limit == PHYS_BITS_5LEVEL ? "5-level" : "4-level",
                            kvm && !cpu->la57 ? " (the host has no 5-level paging, la57)" : "");
    else if (kvm && cpu->phys_bits && needed > cpu->phys_bits)
      why = g_strdup_printf("but the host's CPU has %u (/proc/cpuinfo \"address sizes\")", cpu->phys_bits);
    else
      why = g_strdup_printf("more than the %u this host allows ([qemu] max_phys_bits)", cpu->cap_bits);
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED,
                "the passed functions' 64-bit prefetchable BARs need a %s PCI window above %s of guest RAM: "
                "%u physical address bits, %s; pass fewer or smaller devices, or give the sandbox less memory",
                w ? wt : "32 GiB", rt, needed, why);
    return FALSE;
  }
  plan.window_bytes = w;
  plan.pci_hole64_size = w > QEMU_HOLE64_DEFAULT ? w : 0;
  plan.top = top;
  plan.needed_bits = needed;
  plan.phys_bits = MAX(needed, QEMU_DEFAULT_PHYS_BITS);
  *ret = plan;
  return TRUE;
}

/* True when @bdfs (GArray of VfdBdf) holds @bdf. */
static gboolean
bdfs_contain(GArray *bdfs, const VfdBdf *bdf)
{
  for (guint i = 0; i < bdfs->len; i++)
    if (vfd_bdf_equal(&g_array_index(bdfs, VfdBdf, i), bdf))
      return TRUE;
  return FALSE;
}

/* The non-bridge members of the groups of @requested, sorted, no duplicates. */
static GArray *
requested_functions(VfdHost *host, GArray *requested, GError **error)
{
  g_autoptr(GArray) functions = g_array_new(FALSE, FALSE, sizeof(VfdBdf));

  for (guint i = 0; i < requested->len; i++) {
    g_autoptr(GArray) members = NULL;
    if (!vfd_host_group_functions(host, &g_array_index(requested, VfdBdf, i), &members, error))
      return NULL;
    for (guint k = 0; k < members->len; k++)
      if (!bdfs_contain(functions, &g_array_index(members, VfdBdf, k)))
        g_array_append_val(functions, g_array_index(members, VfdBdf, k));
  }
  g_array_sort(functions, vfd_bdf_compare);
  return g_steal_pointer(&functions);
}

gboolean
vfd_sandbox_plan_devices(VfdHost *host, GArray *requested, guint gpus, guint memory_mib, const char *accel,
                         const VfdHostCpu *cpu, GArray **ret_functions, VfdAddressPlan *ret_plan, GError **error)
{
  g_autoptr(GArray) functions = NULL;
  g_autoptr(GArray) windows = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autoptr(GPtrArray) devs = vfd_host_enumerate(host, error);
  g_autoptr(VfdHgxBoard) board = NULL;
  VfdAddressPlan plan;

  if (!devs)
    return FALSE;
  board = vfd_hgx_board_find(devs);
  if (board && gpus > 0 && gpus == board->gpus->len)
    /* "gpus": all of an HGX board's GPUs: full passthrough, with its
     * NVSwitches. */
    for (guint i = 0; i < board->nvswitches->len; i++)
      if (!bdfs_contain(requested, &g_array_index(board->nvswitches, VfdBdf, i)))
        g_array_append_val(requested, g_array_index(board->nvswitches, VfdBdf, i));
  functions = requested_functions(host, requested, error);
  if (!functions)
    return FALSE;
  if (board && !vfd_hgx_check_partition(board, functions, error))
    return FALSE;
  /* The rules, for all functions before any bind (the bind checks each
   * group again): a refused NVSwitch would otherwise surface only after
   * all GPUs were bound, and be rolled back. */
  for (guint i = 0; i < functions->len; i++) {
    g_autoptr(VfdPciDevice) d = vfd_host_get_device(host, &g_array_index(functions, VfdBdf, i), error);
    g_autoptr(VfdPolicy) policy = vfd_host_dup_policy(host); /* a worker: a reload may replace it */
    const char *why;
    char b[VFD_BDF_STRLEN];

    if (!d)
      return FALSE;
    why = vfd_policy_refusal(policy, d->vendor, d->device, d->class_code, d->boot_vga);
    if (why) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_ALLOWED, "%s (%04x:%04x, class %06x) may not be passed: %s%s",
                  vfd_bdf_format(&d->bdf, b), d->vendor, d->device, d->class_code, why,
                  vfd_pci_is_nvswitch(d->vendor, d->class_code)
                      ? "; for HGX full passthrough add 0680 to [devices] classes"
                      : "");
      return FALSE;
    }
  }

  for (guint i = 0; i < functions->len; i++) {
    const VfdBdf *f = &g_array_index(functions, VfdBdf, i);
    VfdPciBar bars[VFD_PCI_NUM_BARS];
    char b[VFD_BDF_STRLEN];
    guint64 w;
    int r = vfd_sysfs_read_bars(vfd_host_sysfs(host), f, bars);

    if (r < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot read the BARs of %s (sysfs resource): %s",
                  vfd_bdf_format(f, b), g_strerror(-r));
      return FALSE;
    }
    w = vfd_pci_function_window(bars);
    g_array_append_val(windows, w);
  }
  if (!vfd_qemu_address_plan(memory_mib, (const guint64 *) (void *) windows->data, windows->len, accel, cpu, &plan,
                             error))
    return FALSE;
  *ret_functions = g_steal_pointer(&functions);
  *ret_plan = plan;
  return TRUE;
}

gboolean
vfd_numa_node_cpus(const char *sys_root, int node, GArray **ret_cpus)
{
  g_autofree char *num = g_strdup_printf("node%d", node);
  g_autofree char *path = g_build_filename(sys_root, "devices", "system", "node", num, "cpulist", NULL);
  g_autofree char *list = NULL;
  g_autoptr(GArray) cpus = g_array_new(FALSE, FALSE, sizeof(guint));
  g_auto(GStrv) ranges = NULL;

  if (node < 0 || !g_file_get_contents(path, &list, NULL, NULL))
    return FALSE;
  ranges = g_strsplit(g_strstrip(list), ",", -1);
  for (char **r = ranges; *r; r++) {
    char *end = NULL;
    guint64 lo, hi;
    if (!**r)
      continue;
    lo = g_ascii_strtoull(*r, &end, 10);
    hi = (end && *end == '-') ? g_ascii_strtoull(end + 1, &end, 10) : lo;
    if (!end || *end || hi < lo || hi >= 65536)
      return FALSE;
    for (guint64 c = lo; c <= hi; c++) {
      guint v = (guint) c;
      g_array_append_val(cpus, v);
    }
  }
  if (cpus->len == 0)
    return FALSE;
  *ret_cpus = g_steal_pointer(&cpus);
  return TRUE;
}

guint64
vfd_qemu_memlock_bytes(guint memory_mib)
{
  return ((guint64) memory_mib + 256) * 1024 * 1024;
}

typedef struct {
  guint64 memlock;
  uid_t uid;
  gid_t gid;
  gid_t extra_gid; /* (gid_t) -1: none */
  cpu_set_t cpus; /* empty: no affinity */
  gboolean pin;
} ChildSetup;

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void
child_setup(gpointer data)
{
  const ChildSetup *cs = data;
  /* Soft and hard limit alike: a compromised QEMU must not raise its own
   * limit to pin all of the host's memory. */
  struct rlimit rl = { .rlim_cur = cs->memlock, .rlim_max = cs->memlock };
  struct rlimit cur;

  /* Without CAP_SYS_RESOURCE (a container) the limit can only go down:
   * then both to what the hard limit allows. */
  if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
    if (getrlimit(RLIMIT_MEMLOCK, &cur) < 0)
      _exit(125);
    if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < rl.rlim_max)
      rl.rlim_cur = rl.rlim_max = cur.rlim_max;
    if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
      _exit(125);
  }
  /* Own process group: signals to vfiod's group don't reach the guest. */
  (void) setpgid(0, 0);
  /* vCPU threads inherit this: the node of the passed devices. */
  if (cs->pin)
    (void) sched_setaffinity(0, sizeof cs->cpus, &cs->cpus);
  /* Drop to the QEMU user last (the limit above needs privilege). Exit if
   * that fails: QEMU must never run as root by accident. */
  if (cs->uid != 0 &&
      ((cs->extra_gid != (gid_t) -1 ? setgroups(1, &cs->extra_gid) : setgroups(0, NULL)) < 0 ||
       setresgid(cs->gid, cs->gid, cs->gid) < 0 || setresuid(cs->uid, cs->uid, cs->uid) < 0))
    _exit(126);
}

GSubprocess *
vfd_qemu_spawn(const VfdQemuConfig *config, int log_fd, GError **error)
{
  g_auto(GStrv) argv = vfd_qemu_build_argv(config);
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE);
  /* Lives as long as the process: the launcher copies nothing, but the
   * child setup runs before spawn returns, so a stack copy is enough. */
  ChildSetup cs = { .memlock = vfd_qemu_memlock_bytes(config->memory_mib), .uid = config->run_uid,
                    .gid = config->run_gid, .extra_gid = config->run_extra_gid };
  g_autoptr(GArray) cpus = NULL;

  CPU_ZERO(&cs.cpus);
  if (config->numa_bind && vfd_numa_node_cpus("/sys", (int) config->numa_node, &cpus)) {
    for (guint i = 0; i < cpus->len; i++)
      if (g_array_index(cpus, guint, i) < CPU_SETSIZE)
        CPU_SET(g_array_index(cpus, guint, i), &cs.cpus);
    cs.pin = CPU_COUNT(&cs.cpus) > 0;
  }
  GSubprocess *p;

  if (log_fd >= 0) {
    g_subprocess_launcher_take_stdout_fd(l, log_fd);
    g_subprocess_launcher_take_stderr_fd(l, dup(log_fd));
  }
  g_subprocess_launcher_set_child_setup(l, child_setup, &cs, NULL);
  for (guint i = 0; i < config->n_pass_fds; i++)
    g_subprocess_launcher_take_fd(l, config->pass_fds[i], (gint) (3 + i));
  p = g_subprocess_launcher_spawnv(l, (const char *const *) argv, error);
  if (!p)
    g_prefix_error(error, "cannot start %s: ", config->qemu_binary);
  return p;
}
