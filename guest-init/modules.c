/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "modules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#define NVIDIA_PERSISTENCED "/usr/bin/nvidia-persistenced"
#define NVIDIA_SMI "/usr/bin/nvidia-smi"
#define PERSISTENCED_TIMEOUT_MS 30000
#define SMI_TIMEOUT_MS 60000

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

static int
load_one(const char *path, const char *params)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int r = 0;

  if (fd < 0)
    return -errno;
  if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
    r = -errno;
  close(fd);
  return r;
}

int
gi_modules_load(const GiManifest *m, const GiCmdline *c, GiModules *ret, char *err, size_t err_size)
{
  memset(ret, 0, sizeof(*ret));
  for (size_t i = 0; i < m->n_modules; i++) {
    const GiManifestModule *mod = &m->modules[i];
    char name[64];
    GiNvidiaModule kind;
    int r;

    gi_module_name(mod->path, name, sizeof(name));
    kind = gi_nvidia_module_kind(name);
    if (!gi_nvidia_module_wanted(kind, c->gpu, c->nvidia)) {
      ret->n_skipped++;
      continue;
    }
    r = load_one(mod->path, mod->params);
    if (r < 0) {
      /* Once the file is open, finit_module()'s ENOENT means an unknown
       * symbol: a dependency that is not loaded (or not staged) before it. */
      bool opened = access(mod->path, R_OK) == 0;

      snprintf(err, err_size, "load module %s (manifest line %u): %s%s", mod->path, mod->line,
               r == -ENOENT && opened ? "unknown symbol (a dependency not loaded before it?)" : strerror(-r),
               r == -ENOENT || r == -ENOEXEC || r == -EINVAL ? "; see the kernel log" : "");
      return r;
    }
    memcpy(ret->loaded[ret->n_loaded++], name, sizeof(name));
    if (kind == GI_NVIDIA_MODULE_CORE)
      ret->nvidia = true;
    else if (kind == GI_NVIDIA_MODULE_MODESET)
      ret->nvidia_modeset = true;
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
gi_nvidia_setup(bool modeset, GiNvidiaState *ret, char *err, size_t err_size)
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

  if (is_executable(NVIDIA_PERSISTENCED)) {
    char *argv[] = { NVIDIA_PERSISTENCED, NULL };
    int status = 0;

    /* It daemonizes: the process we start exits once the daemon runs. */
    r = gi_run(argv, PERSISTENCED_TIMEOUT_MS, NULL, 0, &status);
    describe_status(ret->persistenced, sizeof(ret->persistenced), r, status);
    if (strcmp(ret->persistenced, "ok") == 0)
      snprintf(ret->persistenced, sizeof(ret->persistenced), "running");
  } else {
    snprintf(ret->persistenced, sizeof(ret->persistenced), "absent");
  }

  if (is_executable(NVIDIA_SMI)) {
    static char out[8192];
    char *argv[] = { NVIDIA_SMI, "-L", NULL };
    int status = 0;

    r = gi_run(argv, SMI_TIMEOUT_MS, out, sizeof(out), &status);
    describe_status(ret->smi, sizeof(ret->smi), r, status);
    for (char *line = out, *nl; r == 0 && *line != '\0' && ret->n_gpus < GI_MAX_GPUS; line = nl + 1) {
      nl = strchr(line, '\n');
      if (nl)
        *nl = '\0';
      if (line[0] != '\0')
        snprintf(ret->gpus[ret->n_gpus++], sizeof(ret->gpus[0]), "%.*s", (int) sizeof(ret->gpus[0]) - 1, line);
      if (!nl)
        break;
    }
  } else {
    snprintf(ret->smi, sizeof(ret->smi), "absent");
  }
  return 0;
}
