/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "driver.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk.h"
#include "nvidia.h"
#include "util.h"

/* cuda-probe, built by meson and carried in this binary (cuda-probe-blob.c). */
extern const unsigned char gi_cuda_probe_elf[];
extern const size_t gi_cuda_probe_elf_size;

#define LAYER_MOUNT_FLAGS (MS_RDONLY | MS_NODEV | MS_NOSUID)
#define FIRMWARE_NVIDIA_DIR "/lib/firmware/nvidia"
#define KMSG_MAX_RECORDS 100000

int
gi_layer_mount(const char *spec, int wait_ms, GiLayer *ret, char *err, size_t err_size)
{
  const char *dev;
  uint64_t deadline = gi_now_ms() + (uint64_t) wait_ms;
  static char text[8192];
  struct stat st;
  ssize_t n;
  int r;

  memset(ret, 0, sizeof(*ret));
  snprintf(ret->dev, sizeof(ret->dev), "%s", spec);
  while ((r = gi_disk_resolve(spec, GI_SYS_BLOCK, ret->dev, sizeof(ret->dev))) < 0 || stat(ret->dev, &st) < 0 ||
         !S_ISBLK(st.st_mode)) {
    if (r == -EINVAL || r == -ENAMETOOLONG) {
      snprintf(err, err_size, "driver layer device %s: %s", spec, strerror(-r));
      return r;
    }
    if (gi_now_ms() >= deadline) {
      snprintf(err, err_size, "driver layer device %s did not appear within %d ms (is its driver module staged?)",
               spec, wait_ms);
      return -ENODEV;
    }
    usleep(50 * 1000);
  }
  dev = ret->dev;
  r = gi_mkdir_p(VFIOD_DRIVER_LAYER_DIR, 0755);
  if (r < 0) {
    snprintf(err, err_size, "mkdir %s: %s", VFIOD_DRIVER_LAYER_DIR, strerror(-r));
    return r;
  }
  if (mount(dev, VFIOD_DRIVER_LAYER_DIR, "erofs", LAYER_MOUNT_FLAGS, NULL) < 0) {
    int e = errno;
    snprintf(err, err_size, "mount driver layer %s (erofs, read-only) on %s: %s%s", dev, VFIOD_DRIVER_LAYER_DIR,
             strerror(e), e == ENODEV ? " (is erofs.ko staged in the initramfs?)" : "");
    return -e;
  }
  n = gi_read_file(VFIOD_DRIVER_LAYER_DIR GI_LAYER_ENV_FILE, text, sizeof(text), NULL);
  if (n < 0) {
    snprintf(err, err_size, "driver layer %s: read %s: %s (not a driver layer?)", dev, GI_LAYER_ENV_FILE,
             strerror((int) -n));
    return (int) n;
  }
  r = gi_env_file_get(text, "NVIDIA_DRIVER_VERSION", ret->version, sizeof(ret->version));
  if (r < 0) {
    snprintf(err, err_size, "driver layer %s: %s has no usable NVIDIA_DRIVER_VERSION", dev, GI_LAYER_ENV_FILE);
    return r;
  }
  (void) gi_env_file_get(text, "GUEST_KERNEL_RELEASE", ret->kernel, sizeof(ret->kernel));
  (void) gi_env_file_get(text, "DRIVER_LAYER_KEY", ret->key, sizeof(ret->key));
  return 0;
}

static bool
is_dir(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
is_mounted_on(const char *dir)
{
  char parent[256];
  struct stat st, pst;

  snprintf(parent, sizeof(parent), "%s/..", dir);
  return stat(dir, &st) == 0 && stat(parent, &pst) == 0 && st.st_dev != pst.st_dev;
}

int
gi_layer_load_modules(const GiLayer *l, const char *release, const GiCmdline *c, GiModules *mods, char *err,
                      size_t err_size)
{
  static const char *const order[] = { "nvidia", "nvidia-modeset", "nvidia-drm", "nvidia-uvm", "nvidia-peermem" };
  char dir[512], firmware[256];

  snprintf(dir, sizeof(dir), VFIOD_DRIVER_LAYER_DIR "/lib/modules/%s/updates", release);
  if (!is_dir(dir)) {
    mods->nvidia_staged = true;
    snprintf(mods->nvidia_error, sizeof(mods->nvidia_error),
             "the driver layer on %.64s has no modules for kernel %.64s (it was built for %.64s)", l->dev, release,
             l->kernel[0] != '\0' ? l->kernel : "another kernel");
    return 0;
  }
  snprintf(firmware, sizeof(firmware), VFIOD_DRIVER_LAYER_DIR "/lib/firmware/nvidia");
  if (is_dir(firmware) && !is_mounted_on(FIRMWARE_NVIDIA_DIR)) {
    int r = gi_mkdir_p(FIRMWARE_NVIDIA_DIR, 0755);

    if (r == 0 && mount(firmware, FIRMWARE_NVIDIA_DIR, NULL, MS_BIND, NULL) < 0)
      r = -errno;
    if (r < 0) {
      snprintf(err, err_size, "bind-mount %s on %s: %s", firmware, FIRMWARE_NVIDIA_DIR, strerror(-r));
      return r;
    }
  }
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    char path[640], name[64];
    GiNvidiaModule kind;
    int r;

    snprintf(path, sizeof(path), "%s/%s.ko", dir, order[i]);
    if (access(path, R_OK) < 0)
      continue;
    gi_module_name(path, name, sizeof(name));
    kind = gi_nvidia_module_kind(name);
    if (!gi_nvidia_module_wanted(kind, c->gpu, c->nvidia) || mods->nvidia_error[0] != '\0') {
      mods->n_skipped++;
      continue;
    }
    if (kind == GI_NVIDIA_MODULE_CORE)
      mods->nvidia_staged = true;
    r = gi_module_load(path, "");
    if (r < 0) {
      gi_module_describe_error(mods->nvidia_error, sizeof(mods->nvidia_error), path, " (driver layer)", r);
      continue;
    }
    gi_modules_add(mods, name);
  }
  if (!mods->nvidia_staged) {
    /* A layer without its kernel driver: a GPU failure, never a sandbox
     * that is ready without one. */
    mods->nvidia_staged = true;
    snprintf(mods->nvidia_error, sizeof(mods->nvidia_error), "the driver layer on %.64s has no %.160s/nvidia.ko",
             l->dev, dir);
  }
  return 0;
}

static int
name_cmp(const void *a, const void *b)
{
  return strcmp((const char *) a, (const char *) b);
}

int
gi_gsp_firmware_list(const char *dir, char (*ret_names)[64], size_t max)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t n = 0;

  if (!d)
    return -errno;
  while ((de = readdir(d)) != NULL && n < max) {
    char path[512];
    struct stat st;
    size_t len = strlen(de->d_name);

    if (strncmp(de->d_name, "gsp_", 4) != 0 || len < 8 || len >= 64 || strcmp(de->d_name + len - 4, ".bin") != 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
      continue;
    memcpy(ret_names[n++], de->d_name, len + 1);
  }
  closedir(d);
  qsort(ret_names, n, sizeof(ret_names[0]), name_cmp);
  return (int) n;
}

/* A memfd holding the probe, sealed; -errno on failure. */
static int
probe_memfd(void)
{
  int fd;
  size_t off = 0;

#ifdef MFD_EXEC
  /* Kernels >= 6.3 want memfds that are to be exec'd to say so; older ones
   * refuse the flag. */
  fd = memfd_create("cuda-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL)
#endif
    fd = memfd_create("cuda-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -errno;
  while (off < gi_cuda_probe_elf_size) {
    ssize_t n = write(fd, gi_cuda_probe_elf + off, gi_cuda_probe_elf_size - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      return -e;
    }
    off += (size_t) n;
  }
  (void) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

int
gi_cuda_probe_run(const char *root, char *const *envp, int timeout_ms, GiCudaProbe *ret, char *err,
                  size_t err_size)
{
  static char out[GI_CUDA_PROBE_MAX_LINE + 1];
  char *argv[] = { "cuda-probe", NULL };
  char perr[160];
  bool truncated = false;
  int fd, r, status = 0;

  fd = probe_memfd();
  if (fd < 0) {
    snprintf(err, err_size, "cannot stage the CUDA probe (memfd): %s", strerror(-fd));
    return fd;
  }
  {
    GiSpawnOptions o = { .argv = argv, .envp = envp, .root = root, .stdout_fd = -1, .exec_fd = fd };

    r = gi_run_opts(&o, timeout_ms, out, sizeof(out), &truncated, &status);
  }
  close(fd);
  if (r == -ETIMEDOUT) {
    snprintf(err, err_size, "the CUDA probe did not finish within %d s", timeout_ms / 1000);
    return r;
  }
  if (r < 0) {
    snprintf(err, err_size, "cannot start the CUDA probe in %s: %s", root ? root : "/", strerror(-r));
    return r;
  }
  if (truncated) {
    snprintf(err, err_size, "the CUDA probe printed more than %d bytes", GI_CUDA_PROBE_MAX_LINE);
    return -E2BIG;
  }
  if (WIFSIGNALED(status)) {
    snprintf(err, err_size, "the CUDA probe was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
    return -EINTR;
  }
  if (gi_cuda_probe_parse(out, ret, perr, sizeof(perr)) < 0) {
    /* e.g. the root's C library is too old for it: the loader said so on the console. */
    snprintf(err, err_size, "the CUDA probe exited %d without a usable line (%s); see the console above",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1, perr);
    return -EINVAL;
  }
  return 0;
}

size_t
gi_nvrm_lines(char lines[][GI_NVRM_LINE_SIZE], size_t max)
{
  static char rec[8192];
  size_t n = 0, first = 0;  /* a ring of @max: lines[first] is the oldest once full */
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

  if (fd < 0 || max == 0) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  for (int i = 0; i < KMSG_MAX_RECORDS; i++) {
    ssize_t len = read(fd, rec, sizeof(rec));
    GiKmsgRecord r;
    size_t slot;

    if (len < 0 && errno == EPIPE)
      continue;  /* overwritten while we read: the next one */
    if (len < 0 && errno == EINTR)
      continue;
    if (len <= 0)
      break;  /* EAGAIN: the end */
    if (gi_kmsg_parse(rec, (size_t) len, &r) < 0 || !gi_kmsg_is_nvrm(r.message, r.message_len))
      continue;
    if (n < max) {
      slot = n++;
    } else {
      slot = first;
      first = (first + 1) % max;
    }
    snprintf(lines[slot], GI_NVRM_LINE_SIZE, "%.*s",
             (int) (r.message_len < GI_NVRM_LINE_SIZE - 1 ? r.message_len : GI_NVRM_LINE_SIZE - 1), r.message);
  }
  close(fd);
  /* Oldest first. */
  if (n == max && first != 0) {
    char (*tmp)[GI_NVRM_LINE_SIZE] = malloc(max * GI_NVRM_LINE_SIZE);

    if (tmp) {
      for (size_t i = 0; i < max; i++)
        memcpy(tmp[i], lines[(first + i) % max], GI_NVRM_LINE_SIZE);
      memcpy(lines, tmp, max * GI_NVRM_LINE_SIZE);
      free(tmp);
    }
  }
  return n;
}

/* Unload order rank of an NVIDIA module (lower first), or -1 for others. */
static int
unload_rank(const char *name)
{
  switch (gi_nvidia_module_kind(name)) {
  case GI_NVIDIA_MODULE_PEERMEM:
    return 0;
  case GI_NVIDIA_MODULE_DRM:
    return 1;
  case GI_NVIDIA_MODULE_UVM:
    return 2;
  case GI_NVIDIA_MODULE_MODESET:
    return 3;
  case GI_NVIDIA_MODULE_OTHER:
    return 4;
  case GI_NVIDIA_MODULE_CORE:
    return 5;
  case GI_NVIDIA_MODULE_NONE:
  default:
    return -1;
  }
}

/* The child: unloads @names in order, each retried while in use until
 * @deadline, and writes "<errno>\n" per module to @fd (0 for unloaded,
 * ENOENT for not loaded). Stops at the first failure. */
static void __attribute__((noreturn))
unload_child(char (*names)[64], size_t n, uint64_t deadline, int fd)
{
  for (size_t i = 0; i < n; i++) {
    char line[16];
    int e = 0;

    for (;;) {
      if (syscall(SYS_delete_module, names[i], O_NONBLOCK) == 0) {
        e = 0;
        break;
      }
      e = errno;
      if ((e != EAGAIN && e != EBUSY && e != EINTR) || gi_now_ms() >= deadline)
        break;
      usleep(100 * 1000);
    }
    snprintf(line, sizeof(line), "%d\n", e);
    gi_write_all(fd, line, strlen(line));
    if (e != 0 && e != ENOENT)
      _exit(1);
  }
  _exit(0);
}

int
gi_nvidia_unload(const char (*loaded)[64], size_t n_loaded, int timeout_ms, char (*ret_unloaded)[64], size_t max,
                 size_t *ret_n, char *err, size_t err_size)
{
  char names[16][64];
  size_t n = 0, done = 0;
  uint64_t deadline = gi_now_ms() + (uint64_t) timeout_ms;
  char buf[256];
  size_t len = 0;
  int pipefd[2], r = 0;
  const char *failed;
  pid_t pid;

  *ret_n = 0;
  for (int rank = 0; rank <= 5; rank++)
    for (size_t i = 0; i < n_loaded && n < 16; i++)
      if (unload_rank(loaded[i]) == rank)
        snprintf(names[n++], sizeof(names[0]), "%s", loaded[i]);
  if (n == 0)
    return 0;
  pid = gi_fork_with_pipe(pipefd, &failed);
  if (pid < 0) {
    snprintf(err, err_size, "%s: %s", failed, strerror((int) -pid));
    return pid;
  }
  if (pid == 0) {
    close(pipefd[0]);
    /* The child gets 1 s less, so that its last answer is read. */
    unload_child(names, n, deadline > 1000 ? deadline - 1000 : deadline, pipefd[1]);
  }
  close(pipefd[1]);
  for (;;) {
    struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
    uint64_t now = gi_now_ms();
    ssize_t got;

    if (now >= deadline) {
      r = -ETIMEDOUT;
      break;
    }
    if (poll(&pfd, 1, (int) (deadline - now)) < 0 && errno != EINTR)
      break;
    got = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (got <= 0)
      break;
    len += (size_t) got;
    buf[len] = '\0';
  }
  close(pipefd[0]);
  buf[len] = '\0';
  /* One "<errno>\n" per module, in order. */
  for (char *p = buf, *nl; done < n && (nl = strchr(p, '\n')) != NULL; p = nl + 1, done++) {
    int e = atoi(p);

    if (e == 0 && *ret_n < max)
      snprintf(ret_unloaded[(*ret_n)++], 64, "%s", names[done]);
    else if (e != 0 && e != ENOENT) {
      snprintf(err, err_size, "%s: %s%s", names[done], strerror(e),
               e == EAGAIN || e == EBUSY ? " (still in use)" : "");
      r = -e;
      break;
    }
  }
  if (r == -ETIMEDOUT) {
    snprintf(err, err_size, "%s: not unloaded within %d ms", done < n ? names[done] : "?", timeout_ms);
    kill(pid, SIGKILL);
    (void) waitpid(pid, NULL, WNOHANG);  /* stuck in the kernel: left behind */
  } else {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
  }
  return r;
}
