/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "modules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define NVIDIA_GPUS_DIR "/proc/driver/nvidia/gpus"
#define PERSISTENCED_TIMEOUT_MS 30000
#define SMI_TIMEOUT_MS 60000
/* nvidia-persistenced's (NVPD_PID_FILE in its source), relative to its root. */
#define PERSISTENCED_PID_FILE "/var/run/nvidia-persistenced/nvidia-persistenced.pid"

int
gi_firmware_set_path(const char *dir)
{
  int fd = open(GI_FIRMWARE_CLASS_PATH, O_WRONLY | O_CLOEXEC);
  size_t len = strlen(dir);
  ssize_t n;

  if (fd < 0)
    return -errno;
  n = write(fd, dir, len);
  if (n < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  close(fd);
  return (size_t) n == len ? 0 : -EIO;
}

int
gi_module_load(const char *path, const char *params)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int r = 0;

  if (fd < 0)
    return -errno;
  if (syscall(SYS_finit_module, fd, params ? params : "", 0) < 0 && errno != EEXIST)
    r = -errno;
  close(fd);
  return r;
}

void
gi_module_describe_error(char *buf, size_t size, const char *path, const char *where, int r)
{
  /* Once the file is open, finit_module()'s ENOENT means an unknown
   * symbol: a dependency that is not loaded (or not staged) before it. */
  bool opened = access(path, R_OK) == 0;

  snprintf(buf, size, "load module %s%s: %s%s", path, where,
           r == -ENOENT && opened ? "unknown symbol (a dependency not loaded before it?)" : strerror(-r),
           r == -ENOENT || r == -ENOEXEC || r == -EINVAL ? "; see the kernel log" : "");
}

void
gi_modules_add(GiModules *m, const char *name)
{
  GiNvidiaModule kind = gi_nvidia_module_kind(name);

  if (m->n_loaded == GI_MANIFEST_MAX_MODULES)
    return;
  snprintf(m->loaded[m->n_loaded++], sizeof(m->loaded[0]), "%s", name);
  if (kind == GI_NVIDIA_MODULE_CORE)
    m->nvidia = true;
  else if (kind == GI_NVIDIA_MODULE_MODESET)
    m->nvidia_modeset = true;
}

int
gi_modules_load(const GiManifest *m, const GiCmdline *c, GiModules *ret, char *err, size_t err_size)
{
  memset(ret, 0, sizeof(*ret));
  for (size_t i = 0; i < m->n_modules; i++) {
    const GiManifestModule *mod = &m->modules[i];
    char name[64], where[48];
    GiNvidiaModule kind;
    int r;

    gi_module_name(mod->path, name, sizeof(name));
    kind = gi_nvidia_module_kind(name);
    if (!gi_nvidia_module_wanted(kind, c->gpu, c->nvidia) ||
        (kind != GI_NVIDIA_MODULE_NONE && ret->nvidia_error[0] != '\0')) {
      ret->n_skipped++;
      continue;
    }
    if (kind == GI_NVIDIA_MODULE_CORE)
      ret->nvidia_staged = true;
    r = gi_module_load(mod->path, mod->params);
    if (r < 0) {
      snprintf(where, sizeof(where), " (manifest line %u)", mod->line);
      if (kind != GI_NVIDIA_MODULE_NONE) {
        /* The GPU set-up reports it, with the driver's own lines. */
        gi_module_describe_error(ret->nvidia_error, sizeof(ret->nvidia_error), mod->path, where, r);
        continue;
      }
      gi_module_describe_error(err, err_size, mod->path, where, r);
      return r;
    }
    gi_modules_add(ret, name);
  }
  return 0;
}
/* The minors of the GPUs the nvidia driver has, from its procfs. */
static int
gpu_minors(unsigned *minors, size_t max, size_t *ret_n)
{
  DIR *d = opendir(NVIDIA_GPUS_DIR);
  struct dirent *de;
  size_t n = 0;

  if (!d)
    return -errno;
  while ((de = readdir(d)) != NULL && n < max) {
    char path[512], text[4096];
    ssize_t len;

    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/information", NVIDIA_GPUS_DIR, de->d_name);
    len = gi_read_file(path, text, sizeof(text), NULL);
    if (len < 0) {
      gi_warn("cannot read %s: %s", path, strerror((int) -len));
      continue;
    }
    if (gi_nvidia_parse_minor(text, &minors[n]) < 0) {
      gi_warn("no usable 'Device Minor' in %s", path);
      continue;
    }
    n++;
  }
  closedir(d);
  *ret_n = n;
  return 0;
}

static bool
is_executable(const char *path)
{
  return access(path, X_OK) == 0;
}

static void
describe_status(char *buf, size_t size, int r, int status)
{
  if (r == -ETIMEDOUT)
    snprintf(buf, size, "timeout");
  else if (r < 0)
    snprintf(buf, size, "failed: %s", strerror(-r));
  else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    snprintf(buf, size, "ok");
  else if (WIFEXITED(status))
    snprintf(buf, size, "exit:%d", WEXITSTATUS(status));
  else
    snprintf(buf, size, "signal:%d", WTERMSIG(status));
}

int
gi_nvidia_create_nodes(bool modeset, GiNvidiaState *ret, char *err, size_t err_size)
{
  static char devices[16384];
  unsigned minors[GI_MAX_GPUS];
  GiDevNode nodes[GI_MAX_NVIDIA_NODES];
  size_t n_minors = 0;
  ssize_t len;
  int r, n_nodes;

  memset(ret, 0, sizeof(*ret));
  len = gi_read_file("/proc/devices", devices, sizeof(devices), NULL);
  if (len < 0) {
    snprintf(err, err_size, "read /proc/devices: %s", strerror((int) -len));
    return (int) len;
  }
  r = gpu_minors(minors, GI_MAX_GPUS, &n_minors);
  if (r < 0) {
    snprintf(err, err_size, "list %s: %s", NVIDIA_GPUS_DIR, strerror(-r));
    return r;
  }
  n_nodes = gi_nvidia_node_plan(devices, minors, n_minors, modeset, nodes, GI_MAX_NVIDIA_NODES);
  if (n_nodes < 0) {
    snprintf(err, err_size, "plan /dev/nvidia* nodes: %s",
             n_nodes == -ENOENT ? "no nvidia character device in /proc/devices" : strerror(-n_nodes));
    return n_nodes;
  }
  for (int i = 0; i < n_nodes; i++) {
    /* 0666 as nvidia-modprobe makes them (NVreg_DeviceFileMode default). */
    if (mknod(nodes[i].path, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0 &&
        errno != EEXIST) {
      int e = errno;
      snprintf(err, err_size, "mknod %s (%u:%u): %s", nodes[i].path, nodes[i].major, nodes[i].minor,
               strerror(e));
      return -e;
    }
    chmod(nodes[i].path, 0666);  /* the umask took bits away */
    memcpy(ret->nodes[ret->n_nodes++], nodes[i].path, sizeof(nodes[i].path));
  }
  return 0;
}

/* Whether @path (as seen from @root, NULL for "/") is executable. The
 * layer's binaries are checked from PID 1's side: the root is mounted. */
static bool
helper_exists(const GiHelpers *h, const char *path)
{
  char full[512];

  snprintf(full, sizeof(full), "%s%s", h->root ? h->root : "", path);
  return is_executable(full);
}

/* The pid nvidia-persistenced wrote into its pid file inside @root (NULL:
 * "/"), resolved beneath the root (openat2 RESOLVE_IN_ROOT: the root's
 * /var/run is usually a symlink to /run), and only when that process is
 * nvidia-persistenced. 0 when unknown. */
static int
persistenced_pid(const char *root)
{
  struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  char text[32], path[64], comm[32];
  int dirfd, fd, pid;
  ssize_t n;
  char *end;
  long v;

  dirfd = open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return 0;
  fd = (int) syscall(SYS_openat2, dirfd, PERSISTENCED_PID_FILE, &how, sizeof(how));
  close(dirfd);
  if (fd < 0)
    return 0;
  n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  errno = 0;
  v = strtol(text, &end, 10);
  if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || v <= 1 || v > 4194304)
    return 0;
  pid = (int) v;
  snprintf(path, sizeof(path), "/proc/%d/comm", pid);
  if (gi_read_file(path, comm, sizeof(comm), NULL) < 0 || strncmp(comm, "nvidia-persiste", 15) != 0)
    return 0;
  return pid;
}

/* Keeps the non-empty lines of @out in @lines (at most @max). */
static size_t
keep_lines(char *out, char lines[][160], size_t max)
{
  size_t n = 0;

  for (char *line = out, *nl; *line != '\0' && n < max; line = nl + 1) {
    nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    if (line[0] != '\0')
      snprintf(lines[n++], 160, "%.159s", line);
    if (!nl)
      break;
  }
  return n;
}

void
gi_nvidia_start_helpers(const GiHelpers *h, GiNvidiaState *ret)
{
  char persistenced[256], smi[256];
  int r;

  snprintf(persistenced, sizeof(persistenced), "%s/nvidia-persistenced", h->bin_dir);
  snprintf(smi, sizeof(smi), "%s/nvidia-smi", h->bin_dir);
  ret->persistenced_pid = 0;
  ret->n_gpus = ret->n_smi_output = 0;

  if (helper_exists(h, persistenced)) {
    char *argv[] = { persistenced, NULL };
    GiSpawnOptions o = { .argv = argv, .envp = h->envp, .root = h->root, .stdout_fd = -1, .exec_fd = -1 };
    int status = 0;

    /* It daemonizes: the process we start exits once the daemon runs. */
    r = gi_run_opts(&o, PERSISTENCED_TIMEOUT_MS, NULL, 0, NULL, &status);
    describe_status(ret->persistenced, sizeof(ret->persistenced), r, status);
    if (strcmp(ret->persistenced, "ok") == 0) {
      snprintf(ret->persistenced, sizeof(ret->persistenced), "running");
      ret->persistenced_pid = persistenced_pid(h->root);
      if (ret->persistenced_pid == 0)
        gi_warn("nvidia-persistenced runs, but no pid of it in %s%s: it is stopped with the others at the end",
                h->root ? h->root : "", PERSISTENCED_PID_FILE);
    }
  } else {
    snprintf(ret->persistenced, sizeof(ret->persistenced), "absent");
  }

  if (helper_exists(h, smi)) {
    static char out[8192];
    char *argv[] = { smi, "-L", NULL };
    GiSpawnOptions o = { .argv = argv, .envp = h->envp, .root = h->root, .stdout_fd = -1, .exec_fd = -1 };
    int status = 0;

    r = gi_run_opts(&o, SMI_TIMEOUT_MS, out, sizeof(out), NULL, &status);
    describe_status(ret->smi, sizeof(ret->smi), r, status);
    if (r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      ret->n_gpus = keep_lines(out, ret->gpus, GI_MAX_GPUS);
    else if (r == 0)
      ret->n_smi_output = keep_lines(out, ret->smi_output, GI_MAX_SMI_OUTPUT);
  } else {
    snprintf(ret->smi, sizeof(ret->smi), "absent");
  }
}

/* Whether @pid is gone, reaping it when it is our child. */
static bool
process_gone(int pid)
{
  int status;

  if (waitpid(pid, &status, WNOHANG) == pid)
    return true;
  return kill(pid, 0) < 0 && errno == ESRCH;
}

static bool
wait_gone(int pid, int timeout_ms)
{
  uint64_t deadline = gi_now_ms() + (uint64_t) timeout_ms;

  for (;;) {
    if (process_gone(pid))
      return true;
    if (gi_now_ms() >= deadline)
      return false;
    usleep(20 * 1000);
  }
}

const char *
gi_nvidia_stop_persistenced(int pid, int timeout_ms)
{
  if (pid <= 0)
    return "none";
  if (process_gone(pid))
    return "gone";
  kill(pid, SIGTERM);
  if (wait_gone(pid, timeout_ms))
    return "stopped";
  gi_warn("nvidia-persistenced (pid %d) did not exit within %d ms of SIGTERM: SIGKILL", pid, timeout_ms);
  kill(pid, SIGKILL);
  (void) wait_gone(pid, 1000);
  return "killed";
}
