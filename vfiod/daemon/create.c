/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The create pipeline of a sandbox (worker, stages 0-5) and its
 * reverse-order rollback; its completion on the main loop. */
#include "manager-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "failpoint.h"
#include "guest-payload.h"
#include "libvirt-xml.h"
#include "log-fields.h"

static char *
new_sandbox_id(VfdManager *m)
{
  for (;;) {
    char *id = g_strdup_printf("sb-%08x", g_random_int());
    gboolean journaled;

    vfd_host_lock_journal(m->host);
    journaled = vfd_journal_lookup_sandbox(vfd_host_journal(m->host), id) != NULL;
    vfd_host_unlock_journal(m->host);
    if (!g_hash_table_contains(m->sandboxes, id) && !journaled)
      return id;
    g_free(id);
  }
}

/* Picks the uid the QEMU of @s runs as (main loop): root when [qemu]
 * user says root (or vfiod is not root: it cannot switch); [qemu] user's
 * uid when there is no uid_range; else the lowest uid of the range that no
 * other sandbox holds and no account uses. LIMIT_EXCEEDED when none is
 * left. With @hold, the uid is held in m->qemu_uids until the sandbox is
 * freed; without (ValidateSandbox), nothing changes. */
static gboolean
sandbox_pick_qemu_uid(VfdManager *m, Sandbox *s, gboolean hold, GError **error)
{
  const VfdConfig *c = s->config;

  s->qemu_uid = m->qemu_uid;
  s->qemu_gid = m->qemu_gid;
  if (m->qemu_uid == 0 || c->qemu_uid_count == 0)
    return TRUE;
  for (guint32 i = 0; i < c->qemu_uid_count; i++) {
    uid_t uid = c->qemu_uid_first + i;
    if (g_hash_table_contains(m->qemu_uids, GUINT_TO_POINTER(uid)))
      continue;
    if (getpwuid(uid)) {
      g_warning("[qemu] uid_range: uid %u belongs to an account; skipped", (guint) uid);
      continue;
    }
    s->qemu_uid = uid;
    if (hold) {
      g_hash_table_add(m->qemu_uids, GUINT_TO_POINTER(uid));
      s->qemu_uid_held = TRUE;
    }
    return TRUE;
  }
  g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "no free uid left in [qemu] uid_range (%u uids)",
              c->qemu_uid_count);
  return FALSE;
}

/* Writes the sandbox's record (devices, network, QEMU pid and start time,
 * owner, QEMU uid) and commits the journal durably. FALSE with @error when
 * the commit fails: a create must not go on without its record. */
static gboolean
journal_sandbox(VfdManager *m, Sandbox *s, GError **error)
{
  g_auto(GStrv) devs = vfd_mgr_bdf_strv(s->devices);
  g_autoptr(GStrvBuilder) labels = NULL;
  g_auto(GStrv) label_strv = NULL;
  guint64 start = 0;
  g_autofree char *subnet = s->has_net ? vfd_subnet_to_string(&s->subnet) : NULL;
  VfdJournalSandbox js = {
    .id = s->id, .pid = s->pid, .devices = devs, .dir = s->dir,
    .subnet = subnet, .tap = s->has_net ? s->tap : NULL, .mac = s->has_net ? s->mac : NULL, .cid = s->cid,
  };
  gboolean ok;

  if (s->pid > 0)
    vfd_proc_start_time(s->pid, &start);
  js.start_time = start;
  js.qemu_uid = s->qemu_uid;
  js.owner_uid = s->owner_uid;
  js.memory_mib = s->memory_mib;
  js.vcpus = s->vcpus;
  js.numa_node = s->numa_node;
  js.name = s->name;
  js.spec = s->spec;
  js.workload_exited = s->workload_exited;
  js.workload_exit_status = s->workload_exit_status;
  js.workload_signal = s->workload_signal;
  js.failure_reason = s->failure_reason;
  if (s->labels) {
    GVariantIter iter;
    const char *k, *v;

    labels = g_strv_builder_new();
    g_variant_iter_init(&iter, s->labels);
    while (g_variant_iter_next(&iter, "{&s&s}", &k, &v)) {
      g_strv_builder_add(labels, k);
      g_strv_builder_add(labels, v);
    }
    js.labels = label_strv = g_strv_builder_end(labels);
  }
  vfd_host_lock_journal(m->host);
  vfd_journal_put_sandbox(vfd_host_journal(m->host), &js);
  ok = vfd_journal_commit(vfd_host_journal(m->host), error);
  vfd_host_unlock_journal(m->host);
  if (!ok)
    g_prefix_error(error, "sandbox %s: ", s->id);
  return ok;
}

/* Gives the sandbox's QEMU uid its QEMU directory and /dev/vfio/<group>
 * nodes. */
static gboolean
hand_over(VfdManager *m, Sandbox *s, GError **error)
{
  if (chown(s->qemu_dir, s->qemu_uid, s->qemu_gid) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot hand %s to the QEMU user: %s", s->qemu_dir,
                g_strerror(e));
    return FALSE;
  }
  for (guint i = 0; i < s->devices->len; i++) {
    int group;
    g_autofree char *node = NULL;
    char num[16];

    if (vfd_sysfs_iommu_group(vfd_host_sysfs(m->host), &g_array_index(s->devices, VfdBdf, i), &group) < 0)
      continue;
    g_snprintf(num, sizeof num, "%d", group);
    node = g_build_filename(vfd_sysfs_dev_root(vfd_host_sysfs(m->host)), "vfio", num, NULL);
    if (chown(node, s->qemu_uid, s->qemu_gid) < 0 || chmod(node, 0600) < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot hand %s to the QEMU user: %s", node, g_strerror(e));
      return FALSE;
    }
  }
  return TRUE;
}

/* Stage 2a of a create, reads only: the functions the sandbox will get,
 * the HGX partition rule and the guest address space (s->plan), see
 * vfd_sandbox_plan_devices(); then whether hugepages can back its RAM on
 * the node its functions share (vfd_hugepages_check()). A refusal here has
 * changed nothing. *@ret_functions (may be NULL): the functions, VfdBdf
 * sorted (empty without devices). */
static gboolean
plan_devices(VfdManager *m, Op *op, Sandbox *s, GArray **ret_functions, GError **error)
{
  g_autoptr(GArray) functions = NULL;
  VfdHostCpu cpu = { 0 };
  int node = -1;
  int r;

  if (op->requested->len > 0) {
    r = vfd_host_cpu_read(s->config->proc_root, &cpu);
    if (r < 0)
      g_message("sandbox %s: the host's address width is unknown (%s/cpuinfo: %s); not checked", s->id,
                s->config->proc_root, g_strerror(-r));
    cpu.cap_bits = s->config->qemu_max_phys_bits;
    if (!vfd_sandbox_plan_devices(m->host, op->requested, op->gpus, s->memory_mib, s->config->qemu_accel, &cpu,
                                  &functions, &s->plan, error))
      return FALSE;
    /* The node stage 2 binds guest RAM to: the one all functions share. */
    for (guint i = 0; i < functions->len; i++) {
      g_autoptr(VfdPciDevice) d = vfd_host_get_device(m->host, &g_array_index(functions, VfdBdf, i), NULL);
      int nd = d ? d->numa_node : -1;
      node = i == 0 ? nd : (nd == node ? node : -1);
    }
  }
  if ((s->config->qemu_hugepages || s->config->qemu_hugepage_kib) &&
      !vfd_hugepages_check(s->config->sys_root, s->config->proc_root, s->memory_mib, s->config->qemu_hugepage_kib, node,
                           error))
    return FALSE;
  if (ret_functions)
    *ret_functions = functions ? g_steal_pointer(&functions) : g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  return TRUE;
}

/* Largest kernel and initramfs vfiod copies for a QEMU that could not read
 * them itself (see guest_file_fd()). */
#define GUEST_FILE_COPY_MAX (G_GUINT64_CONSTANT(2) << 30)

/* The fd QEMU gets for a kernel or initramfs opened as @fd (taken): QEMU
 * reads it through /proc/self/fd/N, which checks the file's own mode
 * against QEMU's uid. When that uid could not read it (mode bits; no
 * ACLs considered), the contents are copied into a sealed memfd instead, so
 * that a client's 0600 file still boots without QEMU getting any right to
 * it. -1 with @error when the copy fails or the file is too large. */
static int
guest_file_fd(Sandbox *s, const char *what, int fd, GError **error)
{
  struct stat st;
  mode_t need;
  int mfd;
  off_t off = 0;

  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s: %s", what, g_strerror(e));
    return -1;
  }
  need = st.st_uid == s->qemu_uid ? S_IRUSR : st.st_gid == s->qemu_gid ? S_IRGRP : S_IROTH;
  if (s->qemu_uid == 0 || (st.st_mode & need))
    return fd;
  if ((guint64) st.st_size > GUEST_FILE_COPY_MAX) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                "%s: %" G_GINT64_FORMAT " bytes, not readable by QEMU's uid, too large to copy (2 GiB at most): "
                "make it readable by others",
                what, (gint64) st.st_size);
    return -1;
  }
  mfd = memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  while (mfd >= 0 && off < st.st_size) {
    ssize_t n = sendfile(mfd, fd, &off, (size_t) MIN(st.st_size - off, 1 << 30));
    if (n <= 0) {
      close(mfd);
      mfd = -1;
    }
  }
  close(fd);
  if (mfd < 0 || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    if (mfd >= 0)
      close(mfd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "%s: cannot copy it for QEMU: %s", what, g_strerror(e));
    return -1;
  }
  return mfd;
}

/* A kernel or initramfs of the config ([qemu] kernel/initrd): trusted, so
 * opened with vfiod's rights and through symbolic links (a "current" link
 * to the image built last is common); a regular file, not blocking on a
 * FIFO. -1 with @error. */
static int
open_config_file(const char *what, const char *path, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;

  if (fd < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, e == ENOENT ? VFD_ERROR_NOT_FOUND : VFD_ERROR_FAILED, "%s '%s': %s", what, path,
                g_strerror(e));
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' is not a regular file", what, path);
    return -1;
  }
  return fd;
}

/* EROFS: the superblock's magic (EROFS_SUPER_MAGIC_V1, little-endian) at
 * byte 1024 of the image. */
#define EROFS_SUPER_OFFSET 1024
#define EROFS_SUPER_MAGIC 0xe0f5e1e2u

/* The NVIDIA driver layer of the config ([qemu] driver_layer, @path): an
 * EROFS image, opened read-only with vfiod's rights (the config is
 * trusted), never through a symbolic link (vfioctl image build writes the
 * image itself into its DIR: name that), a regular file, not blocking on a
 * FIFO, with the EROFS magic. QEMU gets the fd (-add-fd), never the path.
 * -1 with @error (NOT_FOUND when missing, INVALID_ARGUMENT when a link, not
 * a regular file or not EROFS) naming the key, the path and the fix. */
static int
open_driver_layer(const char *path, GError **error)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  unsigned char magic[4];
  struct stat st;

  if (fd < 0) {
    int e = errno;
    if (e == ELOOP)
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "[qemu] driver_layer '%s' is a symbolic link: name the image itself (vfioctl image build "
                  "writes DIR/driver-layer.erofs as a regular file)", path);
    else
      g_set_error(error, VFD_ERROR, e == ENOENT ? VFD_ERROR_NOT_FOUND : VFD_ERROR_FAILED,
                  "[qemu] driver_layer '%s': %s%s", path, g_strerror(e),
                  e == ENOENT ? " (build it: vfioctl image build --gpu --output DIR)" : "");
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0) < 0) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "[qemu] driver_layer '%s' is not a regular file",
                path);
    return -1;
  }
  if (pread(fd, magic, sizeof magic, EROFS_SUPER_OFFSET) != (ssize_t) sizeof magic ||
      ((guint32) magic[0] | (guint32) magic[1] << 8 | (guint32) magic[2] << 16 | (guint32) magic[3] << 24) !=
          EROFS_SUPER_MAGIC) {
    close(fd);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "[qemu] driver_layer '%s' is not an EROFS image (no EROFS superblock at byte 1024)", path);
    return -1;
  }
  return fd;
}

/* Stage 0 of a create (worker), before anything changes: the kernel,
 * initramfs and disk, opened once. Files the client named are opened with
 * the client's rights (vfd_caller_open(): no symbolic link, a regular file,
 * as the client could open it), [qemu] kernel/initrd (the trusted config)
 * with vfiod's (open_config_file()). QEMU gets the fds, never the paths. */
/* open_config_file() of [qemu] kernel or initrd (@key), @set: named by the
 * file; when it is the default image's and missing, the error says so and
 * how to build that image. */
static int
open_default_guest_file(const char *key, const char *path, gboolean set, GError **error)
{
  g_autofree char *what = g_strdup_printf("[qemu] %s", key);
  g_autoptr(GError) local = NULL;
  int fd = open_config_file(what, path, &local);

  if (fd < 0 && !set && g_error_matches(local, VFD_ERROR, VFD_ERROR_NOT_FOUND)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND,
                "no guest %s: the sandbox names none, [qemu] %s is unset and the default image has no %s; build it "
                "with 'vfioctl image build [--gpu] --output " VFIOD_IMAGE_DIR "', set [qemu] %s, or pass --%s",
                g_str_equal(key, "kernel") ? "kernel" : "initramfs", key, path, key, key);
    return -1;
  }
  if (fd < 0)
    g_propagate_error(error, g_steal_pointer(&local));
  return fd;
}

static gboolean
open_guest_files(Op *op, GError **error)
{
  int fd;

  if (op->kernel_from_client)
    fd = vfd_caller_open(&op->caller, "kernel", op->kernel, O_RDONLY, 5000, error);
  else
    fd = open_default_guest_file("kernel", op->kernel, op->config->qemu_kernel_set, error);
  if (fd < 0 || (op->kernel_fd = guest_file_fd(op->sandbox, "kernel", fd, error)) < 0)
    return FALSE;
  if (op->initrd_from_client)
    fd = vfd_caller_open(&op->caller, "initrd", op->initrd, O_RDONLY, 5000, error);
  else
    fd = open_default_guest_file("initrd", op->initrd, op->config->qemu_initrd_set, error);
  if (fd < 0 || (op->initrd_fd = guest_file_fd(op->sandbox, "initrd", fd, error)) < 0)
    return FALSE;
  /* The disks the client named by path, with its rights (read-write
   * unless read-only); those it passed as fds are open already. A
   * StartSandbox finds them open from the first create. */
  for (guint i = 0; op->disks && i < op->disks->len; i++) {
    VfdDisk *d = g_ptr_array_index(op->disks, i);
    g_autofree char *what = NULL;

    if (d->fd >= 0)
      continue;
    what = g_strdup_printf("%s disk", vfd_disk_role_name(d->role));
    if ((d->fd = vfd_caller_open(&op->caller, what, d->path, d->read_only ? O_RDONLY : O_RDWR, 5000, error)) < 0)
      return FALSE;
  }
  /* The driver layer, for a sandbox that may be a GPU sandbox (functions
   * passed, a root to inject it into): opened now, so that a bad layer
   * fails the create before anything is bound; attached in stage 5 when a
   * passed function is a GPU. A missing default image is no error (the
   * sandbox boots without it); a missing configured one is. */
  if (vfd_disks_root(op->disks) && *op->config->qemu_driver_layer && (op->gpus > 0 || op->requested->len > 0)) {
    g_autoptr(GError) local = NULL;
    op->layer_fd = open_driver_layer(op->config->qemu_driver_layer, &local);
    if (op->layer_fd < 0) {
      if (op->config->qemu_driver_layer_set || !g_error_matches(local, VFD_ERROR, VFD_ERROR_NOT_FOUND)) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
      g_message("sandbox %s: no driver layer: the default %s is missing (vfioctl image build --gpu)",
                op->sandbox->id, op->config->qemu_driver_layer);
    }
  }
  return TRUE;
}

/* Stage 1 of a create (worker): <dir> (root's, 0711: QEMU's uid may pass,
 * not list), <dir>/serial.log and <dir>/qemu.log (root's, 0600, created
 * here: QEMU writes them through fds), <dir>/qemu (QEMU's uid's, 0700, for
 * its QMP socket and pidfile; see hand_over()). *@ret_qemu_log: vfiod's fd
 * of qemu.log for QEMU's stdout and stderr. */
static gboolean
make_sandbox_dir(VfdManager *m, Sandbox *s, int *ret_qemu_log, GError **error)
{
  int dfd = -1;
  const char *failed = s->dir;

  if (mkdir(s->dir, 0711) < 0 || chmod(s->dir, 0711) < 0)
    goto fail;
  dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  failed = s->qemu_dir;
  if (dfd < 0 || mkdirat(dfd, "qemu", 0700) < 0)
    goto fail;
  failed = "qemu.log";
  *ret_qemu_log = openat(dfd, "qemu.log", O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (*ret_qemu_log < 0)
    goto fail;
  close(dfd);
  return sandbox_open_serial(s, TRUE, error);

fail: {
  int e = errno;
  if (dfd >= 0)
    close(dfd);
  g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot create %s: %s", failed, g_strerror(e));
  return FALSE;
}
}

/* TRUE when one of @classes (GArray of guint32, PCI class codes) is a
 * display controller (class 0x03: VGA 0x0300, 3D 0x0302, ...): a GPU. */
static gboolean
sandbox_has_gpu(GArray *classes)
{
  for (guint i = 0; i < classes->len; i++)
    if ((g_array_index(classes, guint32, i) >> 16) == 0x03)
      return TRUE;
  return FALSE;
}

/* Worker: the checks of a create before it changes anything, shared by
 * CreateSandbox (stage 0 and the start of stage 2) and ValidateSandbox
 * (@dry): the kernel, initramfs, disk and driver layer opened (with the
 * client's rights for its own; ValidateSandbox's are closed with its op);
 * "any N": N free units picked, and reserved for a create (*@ret_reserved,
 * the caller unreserves; a dry run reserves nothing); the functions, the
 * HGX rule, the address plan and hugepages (plan_devices()); a dry run
 * also makes the bind checks of each requested group (the create's binds
 * make them under the group locks), and whether a subnet is free
 * (vfd_mgr_net_check(); the create allocates it in stage 3).
 * *@ret_functions (may be NULL): what the sandbox gets. */
static gboolean
create_checks(Op *op, gboolean dry, GArray **ret_reserved, GArray **ret_functions, GError **error)
{
  VfdManager *m = op->m;
  Sandbox *s = op->sandbox;

  /* Stage 0: the files the guest boots from, opened once. */
  if (!open_guest_files(op, error))
    return FALSE;
  /* "Any N": pick them first. */
  if (op->gpus > 0) {
    g_autoptr(GArray) picked = NULL;
    int node = -1;
    /* Picked and reserved in one step: a concurrent create picks others
     * (issue 14, defect 2); the reservation ends once they are bound. */
    if (dry ? !vfd_host_select_units(m->host, op->gpus, &picked, &node, error)
            : !vfd_host_reserve_units(m->host, op->gpus, &picked, ret_reserved, &node, error))
      return FALSE;
    g_array_append_vals(op->requested, picked->data, picked->len);
    s->numa_node = node;
  }
  if (!plan_devices(m, op, s, ret_functions, error))
    return FALSE;
  for (guint i = 0; dry && i < op->requested->len; i++)
    if (!vfd_host_check_bind_as(m->host, &g_array_index(op->requested, VfdBdf, i), s->id, s->owner_uid, VFD_BIND_NONE,
                                error))
      return FALSE;
  /* The create takes its subnet in stage 3: a dry run asks whether one is
   * free. */
  return !dry || vfd_mgr_net_check(m, s, error);
}

/* Worker: stages 1-3 of a create, with reverse-order rollback of the stages
 * done when one fails. */
/* Stage 5 under [vm] backend = libvirt: the sandbox as a transient domain
 * (vm-libvirt.c). QEMU runs as the sandbox's uid with nothing relabelled
 * by libvirt, so what it opens by path is handed to that uid here: copies
 * of the kernel and initramfs and the workload's payload in its QEMU
 * directory (the payload is removed once QEMU has read it at start), the
 * console log; the disks and the driver layer reach it as fd groups,
 * never as the client's paths; libvirt opens the TAP (by name, made by
 * vfiod) and the vsock device. Sets s->pid and s->pidfd. The fds of
 * @op (kernel, initramfs, layer) are consumed. */
static gboolean
launch_libvirt(Op *op, GArray *passed, GArray *classes, GError **error)
{
  VfdManager *m = op->m;
  Sandbox *s = op->sandbox;
  g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func(vfd_fd_group_free);
  g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GArray) disks = g_array_new(FALSE, TRUE, sizeof(VfdLibvirtDisk));
  g_autoptr(GArray) disk_fds = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GStrvBuilder) scratch = g_strv_builder_new(); /* QEMU arguments: unused under libvirt */
  g_autoptr(GStrvBuilder) append = g_strv_builder_new();
  g_auto(GStrv) scratch_args = NULL, extra_append = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autofree char *kernel = g_build_filename(s->qemu_dir, "kernel", NULL);
  g_autofree char *initrd = g_build_filename(s->qemu_dir, "initrd", NULL);
  g_autofree char *payload_path = NULL, *cmdline = NULL, *emulator = NULL, *xml = NULL;
  gboolean kvm = g_str_equal(s->config->qemu_accel, "kvm");
  /* under KVM QEMU's group is kvm's (/dev/kvm); its uid owns the rest */
  gid_t gid = kvm && m->kvm_gid != (gid_t) -1 ? m->kvm_gid : s->qemu_gid;
  int dfd = open(s->qemu_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  guint next = 0;
  gboolean ok = FALSE;

  if (dfd < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open %s: %s", s->qemu_dir, g_strerror(e));
    return FALSE;
  }
  if (!vfd_mgr_libvirt_copy_file(dfd, "kernel", op->kernel_fd, s->qemu_uid, gid, error) ||
      !vfd_mgr_libvirt_copy_file(dfd, "initrd", op->initrd_fd, s->qemu_uid, gid, error))
    goto out;
  /* libvirt 9.0 opens the console log itself, as root, and gives QEMU an
   * fd (seen in the lab); a libvirt that lets QEMU open it needs it to be
   * the QEMU uid's (the root-owned directory keeps it from being replaced) */
  if (s->qemu_uid != 0 && s->serial_fd >= 0 && fchown(s->serial_fd, s->qemu_uid, gid) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot hand %s to the QEMU user: %s", s->serial_log,
                g_strerror(e));
    goto out;
  }
  /* The disks: the same fds (and kernel command line words) the qemu
   * backend gives QEMU, one group per disk: a writable disk's O_RDWR fd
   * and O_RDONLY fd, a read-only disk's O_RDONLY fd. */
  if (!vfd_disks_qemu_args(op->disks, FALSE, VFD_QEMU_FDSET_DISKS, scratch, append, disk_fds, error))
    goto out;
  for (guint i = 0; op->disks && i < op->disks->len; i++) {
    const VfdDisk *d = g_ptr_array_index(op->disks, i);
    VfdFdGroup *g = g_new0(VfdFdGroup, 1);
    guint n = d->read_only ? 1 : 2;
    VfdLibvirtDisk ld = { .serial = d->serial, .read_only = d->read_only };

    g->name = g_strdup_printf("%s-%s", s->id, d->serial);
    g->fds = g_array_new(FALSE, FALSE, sizeof(int));
    g_array_append_vals(g->fds, &g_array_index(disk_fds, int, next), n);
    next += n;
    g_ptr_array_add(groups, g);
    ld.fdgroup = g->name;
    /* a name for libvirt's view only: QEMU gets the group's fds */
    g_ptr_array_add(strings, g_build_filename(s->dir, d->serial, NULL));
    ld.source = g_ptr_array_index(strings, strings->len - 1);
    g_array_append_val(disks, ld);
  }
  g_array_set_size(disk_fds, 0); /* every fd is a group's now */
  /* the driver layer, for a GPU sandbox with a root disk (as in stage 5) */
  {
    if (op->layer_fd >= 0 && vfd_disks_root(op->disks) && sandbox_has_gpu(classes)) {
      VfdFdGroup *g = g_new0(VfdFdGroup, 1);
      VfdLibvirtDisk ld = { .serial = VFIOD_DISK_SERIAL_DRIVER, .read_only = TRUE };

      g->name = g_strdup_printf("%s-" VFIOD_DISK_SERIAL_DRIVER, s->id);
      g->fds = g_array_new(FALSE, FALSE, sizeof(int));
      g_array_append_val(g->fds, op->layer_fd);
      op->layer_fd = -1;
      g_ptr_array_add(groups, g);
      ld.fdgroup = g->name;
      g_ptr_array_add(strings, g_build_filename(s->dir, VFIOD_DISK_SERIAL_DRIVER, NULL));
      ld.source = g_ptr_array_index(strings, strings->len - 1);
      g_array_append_val(disks, ld);
      g_strv_builder_add(append, VFIOD_KEY_DRIVER "=" VFD_QEMU_DRIVER_DEV);
    }
  }
  vfd_mgr_net_guest_words(s, append);
  payload = vfd_guest_payload_build(op->cmd, (const char *const *) op->args, op->env, op->files, error);
  if (!payload && *error)
    goto out;
  if (payload) {
    g_autofree char *word = g_strdup_printf(VFIOD_KEY_PAYLOAD "=%zu", g_bytes_get_size(payload));
    int pfd = -1;

    payload_path = g_build_filename(s->qemu_dir, "payload", NULL);
    pfd = vfd_guest_payload_memfd(payload, error);
    if (pfd < 0 || !vfd_mgr_libvirt_copy_file(dfd, "payload", pfd, s->qemu_uid, gid, error)) {
      if (pfd >= 0)
        close(pfd);
      g_clear_pointer(&payload_path, g_free);
      goto out;
    }
    close(pfd);
    g_strv_builder_add(append, word);
  }
  extra_append = g_strv_builder_end(append);
  scratch_args = g_strv_builder_end(scratch);
  {
    VfdQemuConfig qc = {
      .id = s->id,
      .pci_nocrs = s->config->qemu_pci_nocrs,
      .tsc_khz = g_str_equal(s->config->qemu_accel, "tcg") ? vfd_host_tsc_khz() : 0,
      .extra_append = (const char *const *) extra_append,
    };
    cmdline = vfd_qemu_kernel_cmdline(&qc, TRUE);
  }
  emulator = g_path_is_absolute(s->config->qemu_binary) ? g_strdup(s->config->qemu_binary)
                                                         : g_find_program_in_path(s->config->qemu_binary);
  if (!emulator) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "[qemu] binary %s is not in PATH", s->config->qemu_binary);
    goto out;
  }
  {
    VfdLibvirtDomain d = {
      .name = s->id,
      .sandbox_name = s->name,
      .owner_uid = s->owner_uid,
      .kvm = kvm,
      .emulator = emulator,
      .memory_mib = s->memory_mib,
      .vcpus = s->vcpus,
      .devices = (const VfdBdf *) (void *) passed->data,
      .n_devices = passed->len,
      .device_classes = (const guint32 *) (void *) classes->data,
      .present_vendor = s->config->qemu_present_vendor,
      .present_device = s->config->qemu_present_device,
      .pci_hole64_size = s->plan.pci_hole64_size,
      .phys_bits = s->plan.phys_bits,
      .hugepages = s->config->qemu_hugepages || s->config->qemu_hugepage_kib,
      .hugepage_kib = s->config->qemu_hugepage_kib,
      .prealloc_threads = s->config->qemu_prealloc_threads,
      .numa_node = s->numa_node,
      .kernel = kernel,
      .initrd = initrd,
      .cmdline = cmdline,
      .serial_log = s->serial_log,
      .disks = (const VfdLibvirtDisk *) (void *) disks->data,
      .n_disks = disks->len,
      .tap = s->has_net ? s->tap : NULL,
      .mac = s->has_net ? s->mac : NULL,
      .cid = s->cid,
      .run_as = TRUE, /* also root ([qemu] user=root), as the qemu backend would run it */
      .run_uid = s->qemu_uid,
      .run_gid = gid,
      .fw_cfg_file = payload_path,
    };
    xml = vfd_libvirt_domain_xml(&d);
  }
  s->pid = vfd_mgr_libvirt_create(m, s, xml, groups, error);
  if (s->pid > 0) {
    s->pidfd = (int) syscall(SYS_pidfd_open, (pid_t) s->pid, 0);
    ok = TRUE; /* a QEMU already gone is seen by libvirt's event */
  }

out:
  for (guint i = 0; i < disk_fds->len; i++)
    close(g_array_index(disk_fds, int, i));
  /* QEMU read these at start: the secrets leave the disk, the copies
   * free their memory (the sandbox directory is on tmpfs) */
  if (payload_path)
    unlinkat(dfd, "payload", 0);
  if (ok) {
    unlinkat(dfd, "kernel", 0);
    unlinkat(dfd, "initrd", 0);
  }
  if (op->kernel_fd >= 0)
    close(op->kernel_fd);
  if (op->initrd_fd >= 0)
    close(op->initrd_fd);
  op->kernel_fd = op->initrd_fd = -1;
  if (op->layer_fd >= 0)
    close(op->layer_fd);
  op->layer_fd = -1;
  close(dfd);
  return ok;
}

static gboolean
create_work(Op *op, GError **error)
{
  VfdManager *m = op->m;
  Sandbox *s = op->sandbox;
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GArray) passed = g_array_new(FALSE, FALSE, sizeof(VfdBdf));
  g_autoptr(GArray) classes = g_array_new(FALSE, FALSE, sizeof(guint32)); /* of @passed, in order */
  g_autoptr(VfdGroupLock) lock = NULL;
  g_autofree char *qmp = g_build_filename(s->qemu_dir, "qmp.sock", NULL);
  g_autoptr(GArray) reserved = NULL; /* IOMMU groups picked for "any N", until bound */
  int qemu_log = -1;
  guint bound = 0;

  /* Stage 0: the files, the units picked, the plan (nothing changes but
   * the reservation). */
  if (!create_checks(op, FALSE, &reserved, NULL, error))
    goto rollback;

  /* Stage 1: per-sandbox directory. */
  if (vfd_fail_stage("dir", error))
    return FALSE;
  if (!make_sandbox_dir(m, s, &qemu_log, error))
    goto rollback;

  /* Stage 2: every requested device's IOMMU group, groups locked in
   * ascending order for the whole stage (picked and planned in stage 0). */
  for (guint i = 0; i < op->requested->len; i++) {
    int g = -1;
    if (vfd_sysfs_iommu_group(vfd_host_sysfs(m->host), &g_array_index(op->requested, VfdBdf, i), &g) == 0)
      g_array_append_val(groups, g);
  }
  lock = vfd_host_lock_groups(m->host, (const int *) (void *) groups->data, groups->len);
  for (guint i = 0; i < op->requested->len; i++) {
    g_autoptr(GArray) members = NULL;
    const VfdBdf *bdf = &g_array_index(op->requested, VfdBdf, i);
    gboolean mine = FALSE;

    for (guint k = 0; k < passed->len; k++)
      mine = mine || vfd_bdf_equal(&g_array_index(passed, VfdBdf, k), bdf);
    if (mine)
      continue; /* same group as an earlier request */
    if (!vfd_host_bind_group_as(m->host, bdf, s->id, s->owner_uid, VFD_BIND_NONE, &members, NULL, error))
      goto rollback;
    bound++;
    g_array_append_vals(passed, members->data, members->len);
  }
  vfd_host_unreserve_units(m->host, reserved);
  g_clear_pointer(&reserved, g_array_unref);
  g_array_sort(passed, vfd_bdf_compare);
  g_array_append_vals(s->devices, passed->data, passed->len);
  /* One NUMA node for all passed functions: bind guest RAM and vCPUs to it.
   * Their classes too ([qemu] test_present_as). */
  for (guint i = 0; i < passed->len; i++) {
    g_autoptr(VfdPciDevice) d = vfd_host_get_device(m->host, &g_array_index(passed, VfdBdf, i), NULL);
    int nd = d ? d->numa_node : -1;
    guint32 cls = d ? d->class_code : 0;
    g_array_append_val(classes, cls);
    if (i == 0)
      s->numa_node = nd;
    else if (nd != s->numa_node)
      s->numa_node = -1;
  }
  if (vfd_fail_stage("devices", error))
    goto rollback;
  if (passed->len > 0) {
    g_auto(GStrv) names = vfd_mgr_bdf_strv(passed);
    g_autofree char *joined = g_strjoinv(",", names);
    sandbox_event_from_worker(s, "devices-bound", "", "%s", joined);
  }
  vfd_pause_stage("devices");

  /* Stage 3: network names and addresses. The sandbox is journaled then
   * (pid 0: starting), so that a crash from here on finds its devices, its
   * TAP and its QEMU (by pidfile). */
  if (!vfd_mgr_net_allocate(m, s, error) || vfd_fail_stage("network-allocate", error))
    goto rollback;
  if (!journal_sandbox(m, s, error) || vfd_fail_stage("journal", error))
    goto rollback;

  /* Stage 4: TAP and firewall. */
  if (!vfd_mgr_net_setup(m, s, error) || vfd_fail_stage("network", error))
    goto rollback;
  if (s->has_net)
    sandbox_event_from_worker(s, "network-ready", "", "%s", s->tap);

  /* Stage 5: QEMU, as [qemu] user when set: it gets its own directory (for
   * the serial log, QMP socket, pidfile) and its IOMMU groups' /dev/vfio
   * nodes, nothing else (the node goes when the group leaves vfio-pci). */
  if (s->qemu_uid != 0 && !hand_over(m, s, error))
    goto rollback;
  if (s->config->vm_libvirt) {
    if (qemu_log >= 0)
      close(qemu_log); /* libvirt keeps QEMU's own log */
    qemu_log = -1;
    if (!launch_libvirt(op, passed, classes, error))
      goto rollback;
  } else {
    g_autofree char *pidfile = g_build_filename(s->qemu_dir, "qemu.pid", NULL);
    g_autofree char *kernel = NULL, *initrd = NULL;
    int serial_fd = sandbox_open_serial_for_qemu(s);
    g_autoptr(GStrvBuilder) args = g_strv_builder_new();
    g_autoptr(GStrvBuilder) append = g_strv_builder_new();
    g_auto(GStrv) extra_args = NULL;
    g_auto(GStrv) extra_append = NULL;

    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));

    if (serial_fd < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open %s for QEMU: %s", s->serial_log, g_strerror(e));
      goto rollback;
    }
    /* fds QEMU gets, in order from fd 3: serial log, kernel, initramfs,
     * disk, then the network's. */
    g_array_append_val(fds, serial_fd);
    g_array_append_val(fds, op->kernel_fd);
    kernel = g_strdup_printf("/proc/self/fd/%u", 3 + fds->len - 1);
    g_array_append_val(fds, op->initrd_fd);
    initrd = g_strdup_printf("/proc/self/fd/%u", 3 + fds->len - 1);
    op->kernel_fd = op->initrd_fd = -1;
    /* The disks (guest-disks.h): QEMU gets new open file descriptions of
     * each image (its image locks end with it); the op's fds stay open for
     * a StartSandbox. */
    if (!vfd_disks_qemu_args(op->disks, passed->len == 0, VFD_QEMU_FDSET_DISKS, args, append, fds, error)) {
      for (guint i = 0; i < fds->len; i++)
        close(g_array_index(fds, int, i));
      goto rollback;
    }
    /* The driver layer, for a GPU sandbox (a passed function of display
     * class 0x03: a GPU, or the lab's stand-in) with a root disk:
     * read-only, after the disks, named to guest-init by vfiod.driver=. */
    if (op->layer_fd >= 0 && vfd_disks_root(op->disks) && sandbox_has_gpu(classes)) {
      g_autofree char *add_layer = NULL;
      g_autofree char *drive_layer =
          g_strdup_printf("file=/dev/fdset/%d,if=none,id=driver,format=raw,readonly=on", VFD_QEMU_FDSET_DRIVER);
      g_array_append_val(fds, op->layer_fd);
      op->layer_fd = -1;
      add_layer = g_strdup_printf("fd=%u,set=%d,opaque=driver-layer", 3 + fds->len - 1, VFD_QEMU_FDSET_DRIVER);
      g_strv_builder_add_many(args, "-add-fd", add_layer, "-drive", drive_layer, "-device",
                              "virtio-blk-pci,drive=driver" VFD_QEMU_DRIVER_SERIAL, NULL);
      g_strv_builder_add(append, VFIOD_KEY_DRIVER "=" VFD_QEMU_DRIVER_DEV);
    }
    if (op->layer_fd >= 0) {
      /* not a GPU sandbox after all: no layer */
      close(op->layer_fd);
      op->layer_fd = -1;
    }
    if (!vfd_mgr_net_qemu_args(m, s, passed->len == 0, args, append, fds, error)) {
      for (guint i = 0; i < fds->len; i++)
        close(g_array_index(fds, int, i));
      goto rollback;
    }
    /* The workload (checked again: checked at the request already): its
     * payload in a sealed memfd that QEMU reads as a fw_cfg file at start;
     * the guest's command line only says how big it is. */
    {
      g_autoptr(GBytes) payload =
          vfd_guest_payload_build(op->cmd, (const char *const *) op->args, op->env, op->files, error);
      int pfd = -1;

      if (!payload && *error) {
        for (guint i = 0; i < fds->len; i++)
          close(g_array_index(fds, int, i));
        goto rollback;
      }
      if (payload && (pfd = vfd_guest_payload_memfd(payload, error)) < 0) {
        for (guint i = 0; i < fds->len; i++)
          close(g_array_index(fds, int, i));
        goto rollback;
      }
      if (payload) {
        g_autofree char *fw_cfg = NULL, *word = NULL;

        g_array_append_val(fds, pfd);
        fw_cfg = g_strdup_printf("name=" VFIOD_PAYLOAD_FW_CFG_NAME ",file=/proc/self/fd/%u", 3 + fds->len - 1);
        word = g_strdup_printf(VFIOD_KEY_PAYLOAD "=%zu", g_bytes_get_size(payload));
        g_strv_builder_add_many(args, "-fw_cfg", fw_cfg, NULL);
        g_strv_builder_add(append, word);
      }
    }
    extra_args = g_strv_builder_end(args);
    extra_append = g_strv_builder_end(append);
    VfdQemuConfig qc = {
      .extra_args = (const char *const *) extra_args,
      .extra_append = (const char *const *) extra_append,
      .pass_fds = (const int *) (void *) fds->data,
      .n_pass_fds = fds->len,
      .pidfile = pidfile,
      .id = s->id,
      .qemu_binary = s->config->qemu_binary,
      .accel = s->config->qemu_accel,
      .memory_mib = s->memory_mib,
      .vcpus = s->vcpus,
      .kernel = kernel,
      .initrd = initrd,
      .serial_log = s->serial_log,
      .serial_fd = 3,
      .qmp_socket = qmp,
      .devices = (const VfdBdf *) (void *) passed->data,
      .n_devices = passed->len,
      .device_classes = (const guint32 *) (void *) classes->data,
      .present_vendor = s->config->qemu_present_vendor,
      .present_device = s->config->qemu_present_device,
      .pci_hole64_size = s->plan.pci_hole64_size,
      .phys_bits = s->plan.phys_bits,
      .pci_nocrs = s->config->qemu_pci_nocrs,
      .hugepages = s->config->qemu_hugepages || s->config->qemu_hugepage_kib,
      .hugepage_kib = s->config->qemu_hugepage_kib,
      .prealloc_threads = s->config->qemu_prealloc_threads,
      .tsc_khz = g_str_equal(s->config->qemu_accel, "tcg") ? vfd_host_tsc_khz() : 0,
      .numa_bind = s->numa_node >= 0,
      .numa_node = (guint) MAX(s->numa_node, 0),
      .run_uid = s->qemu_uid,
      .run_gid = s->qemu_gid,
      .run_extra_gid = g_str_equal(s->config->qemu_accel, "kvm") ? m->kvm_gid : (gid_t) -1,
      .seccomp = s->config->qemu_seccomp,
    };
    s->proc = vfd_qemu_spawn(&qc, qemu_log, error);
    qemu_log = -1;
    if (!s->proc)
      goto rollback;
    s->pid = g_ascii_strtoll(g_subprocess_get_identifier(s->proc), NULL, 10);
  }
  /* The record with QEMU's pid and start time, durable before the create
   * answers: what a restart adopts. */
  if (vfd_fail_stage("qemu", error) || !journal_sandbox(m, s, error)) {
    /* QEMU runs: stop it before undoing the rest. */
    if (s->proc) {
      g_subprocess_force_exit(s->proc);
      g_subprocess_wait(s->proc, NULL, NULL);
      g_clear_object(&s->proc);
    } else {
      vfd_mgr_libvirt_destroy(m, s, FALSE, NULL);
      if (s->pidfd >= 0)
        close(s->pidfd);
      s->pidfd = -1;
    }
    goto rollback;
  }
  return TRUE;

rollback:
  /* Reverse order: QEMU did not start; drop the sandbox record, release the
   * groups bound so far (the sandbox owns exactly those), then the
   * directory. The first error is the one reported. */
  vfd_host_unreserve_units(m->host, reserved);
  vfd_host_lock_journal(m->host);
  if (vfd_journal_lookup_sandbox(vfd_host_journal(m->host), s->id)) {
    g_autoptr(GError) jerror = NULL;
    vfd_journal_remove_sandbox(vfd_host_journal(m->host), s->id);
    if (!vfd_journal_commit(vfd_host_journal(m->host), &jerror))
      g_warning("sandbox %s: rolled back, but its record stays on disk until the next commit: %s", s->id,
                jerror->message);
  }
  vfd_host_unlock_journal(m->host);
  vfd_mgr_net_teardown(m, s);
  if (bound > 0) {
    g_array_set_size(s->devices, 0);
    g_array_append_vals(s->devices, passed->data, passed->len);
    sandbox_release_devices(s, NULL);
    g_array_set_size(s->devices, 0);
  }
  if (qemu_log >= 0)
    close(qemu_log);
  if (s->serial_fd >= 0) {
    close(s->serial_fd);
    s->serial_fd = -1;
  }
  /* a failed create's console is the first thing to read */
  vfd_mgr_keep_console(m, s->id, s->owner_uid, s->dir);
  vfd_mgr_remove_dir_tree(s->dir);
  return FALSE;
}

static void
create_done(Op *op, GError *error)
{
  VfdManager *m = op->m;
  Sandbox *s = g_steal_pointer(&op->sandbox);

  vfd_metric_op_add(&m->metrics.create, !error, vfd_mgr_op_seconds(op));
  g_hash_table_remove(m->creating, s->id);
  if (error && op->restart) {
    /* A start that failed: rolled back; the sandbox stays, "failed", to
     * be started again or deleted (deletes that came meanwhile finish). */
    g_autoptr(GError) api_error = vfd_error_for_api(error);
    g_autofree char *name = g_dbus_error_encode_gerror(api_error);
    const char *reason = g_str_has_prefix(name, "org.vfiod.Error.") ? name + strlen("org.vfiod.Error.") : name;

    sandbox_set_state(s, SANDBOX_FAILED);
    g_free(s->failure_reason);
    s->failure_reason = g_strdup(error->message);
    sandbox_event(s, "failed", reason, "%s", error->message);
    vfd_mgr_return_error(g_steal_pointer(&op->inv), error);
    if (s->waiters->len > 0)
      vfd_mgr_finish_deletes(s, NULL);
    sandbox_unref(s);
    return;
  }
  if (error) {
    g_autoptr(GError) api_error = vfd_error_for_api(error);
    g_autofree char *name = g_dbus_error_encode_gerror(api_error);
    const char *reason = g_str_has_prefix(name, "org.vfiod.Error.") ? name + strlen("org.vfiod.Error.") : name;

    sandbox_forget_name(s); /* the name is free again */
    sandbox_set_state(s, SANDBOX_FAILED);
    sandbox_event(s, "failed", reason, "%s", error->message);
    sandbox_removed(s);
    /* Deletes asked during the create: the create rolled back, nothing of
     * the sandbox is left. */
    for (guint i = 0; i < s->waiters->len; i++)
      vfd_manager1_complete_delete_sandbox(m->skeleton, g_object_ref(g_ptr_array_index(s->waiters, i)));
    sandbox_unref(s);
    vfd_mgr_return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  if (op->restart)
    sandbox_unref(s); /* the op's reference: the table holds it already */
  else
    g_hash_table_insert(m->sandboxes, s->id, s);
  sandbox_set_state(s, SANDBOX_RUNNING);
  sandbox_event(s, "vm-started", "", "pid %" G_GINT64_FORMAT, s->pid);
  s->vm_gone = FALSE;
  if (s->proc)
    g_subprocess_wait_async(s->proc, NULL, vfd_mgr_on_qemu_wait, m);
  else if (s->pidfd >= 0)
    s->pidfd_source = g_unix_fd_add(s->pidfd, G_IO_IN, vfd_mgr_on_pidfd_ready, s); /* libvirt's QEMU */
  sandbox_watch_serial(s);
  {
    g_auto(GStrv) devs = vfd_mgr_bdf_strv(s->devices);

    vfd_log_fields(G_LOG_LEVEL_MESSAGE, s->id, s->id, (const char *const *) devs,
                   "sandbox %s: started QEMU pid %" G_GINT64_FORMAT " with %u device(s)", s->id, s->pid, s->devices->len);
  }
  if (op->restart)
    vfd_manager1_complete_start_sandbox(m->skeleton, g_steal_pointer(&op->inv), vfd_mgr_sandbox_to_variant(s));
  else
    vfd_manager1_complete_create_sandbox(m->skeleton, g_steal_pointer(&op->inv), vfd_mgr_sandbox_to_variant(s));
  if (s->deleting) {
    /* A delete came while it was being created: stop it now. */
    sandbox_set_state(s, SANDBOX_STOPPING);
    sandbox_event(s, "stopping", "delete", "%s", "");
    vfd_mgr_stop_begin(s);
  }
}

void
sandbox_launch_free(SandboxLaunch *l)
{
  if (!l)
    return;
  g_free(l->kernel);
  g_free(l->initrd);
  g_clear_pointer(&l->disks, g_ptr_array_unref);
  g_free(l->cmd);
  g_strfreev(l->args);
  g_clear_pointer(&l->env, g_variant_unref);
  g_clear_pointer(&l->files, g_variant_unref);
  g_clear_pointer(&l->requested, g_array_unref);
  vfd_caller_clear(&l->caller);
  g_free(l);
}

/* A copy of @c (its groups too). */
static VfdCaller
caller_copy(const VfdCaller *c)
{
  VfdCaller r = *c;

  r.groups = c->n_groups ? g_memdup2(c->groups, c->n_groups * sizeof(gid_t)) : NULL;
  return r;
}

/* The op of a create or start gets its own copies of what @l asked for
 * (the disks shared: stage 0 opens those named by path once, for every
 * later start too). */
static void
op_load_launch(Op *op, const SandboxLaunch *l)
{
  op->caller = caller_copy(&l->caller);
  op->kernel_from_client = l->kernel_from_client;
  op->initrd_from_client = l->initrd_from_client;
  op->kernel = g_strdup(l->kernel);
  op->initrd = g_strdup(l->initrd);
  op->requested = g_array_copy(l->requested);
  op->gpus = l->gpus;
  op->disks = g_ptr_array_ref(l->disks);
  op->cmd = g_strdup(l->cmd);
  op->args = g_strdupv(l->args);
  op->env = l->env ? g_variant_ref(l->env) : NULL;
  op->files = l->files ? g_variant_ref(l->files) : NULL;
}

/* StartSandbox: see manager-private.h. */
void
vfd_mgr_start_begin(Sandbox *s, GDBusMethodInvocation *inv)
{
  VfdManager *m = s->manager;
  g_autoptr(GError) error = NULL;
  Op *op;

  if (s->state == SANDBOX_RUNNING && !s->deleting) {
    vfd_manager1_complete_start_sandbox(m->skeleton, inv, vfd_mgr_sandbox_to_variant(s));
    return;
  }
  if (s->deleting || s->state == SANDBOX_CREATING || s->state == SANDBOX_STOPPING)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_BUSY, "sandbox %s is being %s; start it once that is done", s->id,
                s->deleting ? "deleted" : s->state == SANDBOX_CREATING ? "created or started" : "stopped");
  else if (!s->launch)
    g_set_error(&error, VFD_ERROR, VFD_ERROR_FAILED,
                "sandbox %s cannot be started again: vfiod restarted since it was created, and what it was created "
                "with (its files and secrets) is never written to disk; delete it and create it anew", s->id);
  if (error) {
    vfd_mgr_return_error(inv, error);
    return;
  }
  /* Its last run's console is kept with the removed sandboxes' (the
   * directory is made anew by stage 1). */
  sandbox_reset_for_start(s);
  vfd_mgr_keep_console(m, s->id, s->owner_uid, s->dir);
  vfd_mgr_remove_dir_tree(s->dir);
  s->starts++;
  op = vfd_mgr_op_new(m, inv, create_work, create_done);
  op->sandbox = sandbox_ref(s);
  op->restart = TRUE;
  op_load_launch(op, s->launch);
  sandbox_set_state(s, SANDBOX_CREATING);
  sandbox_event(s, "create-started", "start", "start %u", s->starts);
  vfd_mgr_op_run(op);
}

/* CreateSandbox, once the handler has checked the request: see
 * manager-private.h. */
void
vfd_mgr_create_begin(VfdManager *m, GDBusMethodInvocation *inv, CreateRequest *req)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) requested = g_steal_pointer(&req->requested);
  g_autofree char *id = NULL;
  Op *op;

  id = new_sandbox_id(m);
  op = vfd_mgr_op_new(m, inv, create_work, create_done);
  op->sandbox = sandbox_new(m, id);
  op->sandbox->owner_uid = req->caller.uid;
  {
    SandboxLaunch *l = g_new0(SandboxLaunch, 1);

    l->caller = req->caller;
    req->caller = (VfdCaller){ 0 };
    l->kernel_from_client = req->kernel_from_client;
    l->initrd_from_client = req->initrd_from_client;
    l->kernel = g_strdup(req->kernel);
    l->initrd = g_strdup(req->initrd);
    l->requested = g_steal_pointer(&requested);
    l->gpus = req->gpus;
    l->disks = g_ptr_array_ref(req->disks);
    l->cmd = g_strdup(req->cmd);
    l->args = g_strdupv((char **) req->args);
    l->env = req->env ? g_variant_ref(req->env) : NULL;
    l->files = req->files ? g_variant_ref(req->files) : NULL;
    op->sandbox->launch = l;
    op_load_launch(op, l);
  }
  if (!sandbox_pick_qemu_uid(m, op->sandbox, TRUE, &error)) {
    g_autoptr(GError) e = g_steal_pointer(&error);
    sandbox_unref(g_steal_pointer(&op->sandbox));
    op->inv = NULL;
    vfd_mgr_op_free(op);
    vfd_mgr_return_error(inv, e);
    return;
  }
  op->sandbox->memory_mib = req->memory_mib;
  op->sandbox->vcpus = req->vcpus;
  op->sandbox->name = g_strdup(req->name);
  op->sandbox->labels = req->labels ? g_variant_get_normal_form(req->labels) : NULL; /* a new reference */
  op->sandbox->spec = g_strdup(req->spec);
  g_hash_table_insert(m->creating, g_strdup(op->sandbox->id), op->sandbox);
  /* The name is taken here, on the main loop, before the worker runs: a
   * second create of the same name finds it at once (api-handlers.c). */
  if (op->sandbox->name)
    g_hash_table_insert(m->names, op->sandbox->name, op->sandbox);
  sandbox_set_state(op->sandbox, SANDBOX_CREATING);
  sandbox_event(op->sandbox, "create-started", "", "%s", "");
  vfd_mgr_op_run(op);
}

/* ---- ValidateSandbox ----------------------------------------------------- */

static gboolean
validate_work(Op *op, GError **error)
{
  return create_checks(op, TRUE, NULL, &op->members, error);
}

/* Main loop: answers what the create would have chosen. */
static void
validate_done(Op *op, GError *error)
{
  VfdManager *m = op->m;
  Sandbox *s = op->sandbox;
  g_auto(GStrv) devs = NULL;
  GVariantBuilder groups;
  GVariantDict r;
  int node = s->numa_node;

  if (error) {
    vfd_mgr_return_error(g_steal_pointer(&op->inv), error);
    return;
  }
  devs = vfd_mgr_bdf_strv(op->members);
  g_variant_builder_init(&groups, G_VARIANT_TYPE("ai"));
  {
    g_autoptr(GArray) seen = g_array_new(FALSE, FALSE, sizeof(int));
    for (guint i = 0; i < op->members->len; i++) {
      const VfdBdf *bdf = &g_array_index(op->members, VfdBdf, i);
      g_autoptr(VfdPciDevice) d = vfd_host_get_device(m->host, bdf, NULL);
      int g = -1, nd = d ? d->numa_node : -1;
      gboolean dup = FALSE;

      /* The node the create binds guest RAM to: the one all share. */
      node = i == 0 ? nd : (nd == node ? node : -1);
      if (vfd_sysfs_iommu_group(vfd_host_sysfs(m->host), bdf, &g) < 0)
        continue;
      for (guint k = 0; k < seen->len; k++)
        dup = dup || g_array_index(seen, int, k) == g;
      if (!dup) {
        g_array_append_val(seen, g);
        g_variant_builder_add(&groups, "i", g);
      }
    }
  }
  g_variant_dict_init(&r, NULL);
  g_variant_dict_insert(&r, "valid", "b", TRUE);
  g_variant_dict_insert_value(&r, "devices", g_variant_new_strv((const char *const *) devs, -1));
  g_variant_dict_insert_value(&r, "iommu_groups", g_variant_builder_end(&groups));
  g_variant_dict_insert(&r, "numa_node", "i", op->members->len > 0 ? node : -1);
  g_variant_dict_insert(&r, "memory_mib", "u", s->memory_mib);
  g_variant_dict_insert(&r, "vcpus", "u", s->vcpus);
  g_variant_dict_insert(&r, "machine", "s", op->members->len > 0 ? "q35" : "microvm");
  if (op->members->len > 0) {
    g_variant_dict_insert(&r, "pci_hole64_size", "t", (guint64) s->plan.pci_hole64_size);
    g_variant_dict_insert(&r, "phys_bits", "u", (guint32) s->plan.phys_bits);
  }
  g_variant_dict_insert(&r, "hugepages", "b", s->config->qemu_hugepages || s->config->qemu_hugepage_kib);
  vfd_manager1_complete_validate_sandbox(m->skeleton, g_steal_pointer(&op->inv), g_variant_dict_end(&r));
}

/* ValidateSandbox, once the handler has made the main-loop checks: see
 * manager-private.h. */
void
vfd_mgr_validate_begin(VfdManager *m, GDBusMethodInvocation *inv, CreateRequest *req)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = new_sandbox_id(m);
  Op *op = vfd_mgr_op_new(m, inv, validate_work, validate_done);

  /* A sandbox that is never registered: no name held, no uid held, its
   * directory never made; it goes with the op. */
  op->sandbox = sandbox_new(m, id);
  op->sandbox->owner_uid = req->caller.uid;
  op->caller = req->caller;
  req->caller = (VfdCaller){ 0 };
  op->kernel_from_client = req->kernel_from_client;
  op->initrd_from_client = req->initrd_from_client;
  op->requested = g_steal_pointer(&req->requested);
  if (!sandbox_pick_qemu_uid(m, op->sandbox, FALSE, &error)) {
    sandbox_unref(g_steal_pointer(&op->sandbox));
    op->inv = NULL;
    vfd_mgr_op_free(op);
    vfd_mgr_return_error(inv, error);
    return;
  }
  op->sandbox->memory_mib = req->memory_mib;
  op->sandbox->vcpus = req->vcpus;
  op->kernel = g_strdup(req->kernel);
  op->initrd = g_strdup(req->initrd);
  op->gpus = req->gpus;
  op->disks = g_ptr_array_ref(req->disks);
  vfd_mgr_op_run(op);
}
