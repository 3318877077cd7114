/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "modules.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
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
#define FABRICMANAGER_TIMEOUT_MS 60000

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

/* Reads @path's .modinfo section (an ELF64 relocatable object, as .ko files
 * are) into @ret. Only the ELF header, the section headers, the section
 * name table and .modinfo are read, each bounded. Returns 0 or -errno
 * (-ENOEXEC: not such an ELF file, or no .modinfo). */
static int
read_modinfo(const char *path, GiModinfo *ret)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  Elf64_Ehdr eh;
  Elf64_Shdr *sh = NULL;
  char *names = NULL, *info = NULL;
  size_t names_size = 0;
  int r = -ENOEXEC;

  if (fd < 0)
    return -errno;
  if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t) sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 ||
      eh.e_shnum > 4096 || eh.e_shstrndx >= eh.e_shnum)
    goto out;
  sh = calloc(eh.e_shnum, sizeof(Elf64_Shdr));
  if (!sh) {
    r = -ENOMEM;
    goto out;
  }
  if (pread(fd, sh, eh.e_shnum * sizeof(Elf64_Shdr), (off_t) eh.e_shoff) != (ssize_t) (eh.e_shnum * sizeof(Elf64_Shdr)))
    goto out;
  names_size = sh[eh.e_shstrndx].sh_size;
  if (names_size == 0 || names_size > (1 << 20) || !(names = malloc(names_size + 1)) ||
      pread(fd, names, names_size, (off_t) sh[eh.e_shstrndx].sh_offset) != (ssize_t) names_size)
    goto out;
  names[names_size] = '\0';
  for (unsigned i = 0; i < eh.e_shnum; i++) {
    if (sh[i].sh_name >= names_size || strcmp(names + sh[i].sh_name, ".modinfo") != 0)
      continue;
    if (sh[i].sh_size > (1 << 20) || !(info = malloc(sh[i].sh_size + 1)) ||
        pread(fd, info, sh[i].sh_size, (off_t) sh[i].sh_offset) != (ssize_t) sh[i].sh_size)
      break;
    r = gi_modinfo_parse(info, sh[i].sh_size, ret);
    break;
  }
out:
  free(info);
  free(names);
  free(sh);
  close(fd);
  return r;
}

/* One manifest module in a parallel load. */
typedef enum { JOB_WAITING, JOB_RUNNING, JOB_LOADED, JOB_FAILED, JOB_LEFT_OUT } JobState;

typedef struct {
  const GiManifestModule *mod;
  char name[64];
  GiNvidiaModule kind;
  JobState state;
  int r;
  size_t deps[GI_MODINFO_MAX_DEPENDS + 1]; /* manifest indices that must be loaded first */
  size_t n_deps;
  bool after_all;                          /* load only after every module before it */
} Job;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  Job *jobs;
  size_t n;
  size_t running;
  bool stop;                /* a (non-NVIDIA) module failed: start nothing more */
  bool base_done_signalled; /* every non-NVIDIA module is settled */
  GiModules *ret;
  void (*on_base_done)(void *);
  void *data;
} Loader;

/* Whether job @i may start now; sets *@left_out when it never will (a
 * module it needs failed or was left out after a failure). Under the lock. */
static bool
job_ready(Loader *l, size_t i, bool *left_out)
{
  Job *j = &l->jobs[i];

  *left_out = false;
  if (j->after_all) {
    for (size_t k = 0; k < i; k++)
      if (l->jobs[k].state == JOB_WAITING || l->jobs[k].state == JOB_RUNNING)
        return false;
  }
  for (size_t k = 0; k < j->n_deps; k++) {
    JobState st = l->jobs[j->deps[k]].state;
    if (st == JOB_FAILED || st == JOB_LEFT_OUT) {
      *left_out = true;
      return false;
    }
    if (st == JOB_WAITING || st == JOB_RUNNING)
      return false;
  }
  return true;
}

/* Calls on_base_done once every non-NVIDIA module is loaded (not after a
 * failure). Under the lock. */
static void
check_base_done(Loader *l)
{
  if (l->base_done_signalled || l->stop || !l->on_base_done)
    return;
  for (size_t i = 0; i < l->n; i++)
    if (l->jobs[i].kind == GI_NVIDIA_MODULE_NONE &&
        (l->jobs[i].state == JOB_WAITING || l->jobs[i].state == JOB_RUNNING))
      return;
  l->base_done_signalled = true;
  l->on_base_done(l->data);
}

static void *
loader_worker(void *data)
{
  Loader *l = data;

  pthread_mutex_lock(&l->lock);
  for (;;) {
    size_t pick = l->n;
    bool waiting = false;

    for (size_t i = 0; i < l->n && !l->stop; i++) {
      bool left_out;
      if (l->jobs[i].state != JOB_WAITING)
        continue;
      if (job_ready(l, i, &left_out)) {
        pick = i;
        break;
      }
      if (left_out) {
        /* After a module it needs failed (an NVIDIA module after a failed
         * one, as in a serial load): left out. */
        l->jobs[i].state = JOB_LEFT_OUT;
        l->ret->n_skipped++;
        pthread_cond_broadcast(&l->changed);
        continue;
      }
      waiting = true;
    }
    if (pick == l->n) {
      if (!waiting || l->stop) {
        if (l->running == 0)
          pthread_cond_broadcast(&l->changed);
        break;
      }
      pthread_cond_wait(&l->changed, &l->lock);
      continue;
    }
    l->jobs[pick].state = JOB_RUNNING;
    l->running++;
    pthread_mutex_unlock(&l->lock);
    int r = gi_module_load(l->jobs[pick].mod->path, l->jobs[pick].mod->params);
    pthread_mutex_lock(&l->lock);
    l->running--;
    l->jobs[pick].r = r;
    l->jobs[pick].state = r < 0 ? JOB_FAILED : JOB_LOADED;
    if (r < 0 && l->jobs[pick].kind == GI_NVIDIA_MODULE_NONE)
      l->stop = true;
    if (r == 0)
      gi_modules_add(l->ret, l->jobs[pick].name);
    check_base_done(l);
    pthread_cond_broadcast(&l->changed);
  }
  pthread_mutex_unlock(&l->lock);
  return NULL;
}

int
gi_modules_load_parallel(const GiManifest *m, const GiCmdline *c, GiModules *ret, void (*on_base_done)(void *),
                         void *data, char *err, size_t err_size)
{
  Loader l = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER, .ret = ret,
               .on_base_done = on_base_done, .data = data };
  pthread_t threads[GI_MODULE_THREADS];
  size_t n_threads = 0, last_nvidia = SIZE_MAX;
  int result = 0;

  memset(ret, 0, sizeof(*ret));
  l.jobs = calloc(m->n_modules ? m->n_modules : 1, sizeof(Job));
  if (!l.jobs) {
    snprintf(err, err_size, "out of memory");
    return -ENOMEM;
  }
  /* The dependency graph: each module waits for the manifest modules its
   * .modinfo names; NVIDIA modules also for the NVIDIA module before them
   * (so that one failing leaves out those after it, as in a serial load);
   * a module whose .modinfo cannot be read or has a softdep waits for every
   * module before it. */
  for (size_t i = 0; i < m->n_modules; i++) {
    Job *j = &l.jobs[l.n];
    GiModinfo info;

    j->mod = &m->modules[i];
    gi_module_name(j->mod->path, j->name, sizeof(j->name));
    j->kind = gi_nvidia_module_kind(j->name);
    if (!gi_nvidia_module_wanted(j->kind, c->gpu, c->nvidia)) {
      ret->n_skipped++;
      continue;
    }
    if (j->kind == GI_NVIDIA_MODULE_CORE)
      ret->nvidia_staged = true;
    if (read_modinfo(j->mod->path, &info) < 0 || !info.has_depends || info.softdep) {
      j->after_all = true;
    } else {
      for (size_t d = 0; d < info.n_depends; d++)
        for (size_t k = 0; k < l.n; k++)
          if (strcmp(l.jobs[k].name, info.depends[d]) == 0)
            j->deps[j->n_deps++] = k;
    }
    if (j->kind != GI_NVIDIA_MODULE_NONE) {
      if (last_nvidia != SIZE_MAX)
        j->deps[j->n_deps++] = last_nvidia;
      last_nvidia = l.n;
    }
    l.n++;
  }
  pthread_mutex_lock(&l.lock);
  check_base_done(&l); /* nothing but NVIDIA modules (or nothing) to load */
  pthread_mutex_unlock(&l.lock);
  for (; n_threads < GI_MODULE_THREADS && n_threads < l.n; n_threads++)
    if (pthread_create(&threads[n_threads], NULL, loader_worker, &l) != 0)
      break;
  if (n_threads == 0 && l.n > 0)
    loader_worker(&l); /* no thread: load them here, one by one */
  for (size_t t = 0; t < n_threads; t++)
    pthread_join(threads[t], NULL);

  /* The first failure in manifest order is the one reported. */
  for (size_t i = 0; i < l.n; i++) {
    Job *j = &l.jobs[i];
    char where[48];

    if (j->state != JOB_FAILED)
      continue;
    snprintf(where, sizeof(where), " (manifest line %u)", j->mod->line);
    if (j->kind != GI_NVIDIA_MODULE_NONE) {
      /* The GPU set-up reports it, with the driver's own lines. */
      if (ret->nvidia_error[0] == '\0')
        gi_module_describe_error(ret->nvidia_error, sizeof(ret->nvidia_error), j->mod->path, where, j->r);
      continue;
    }
    if (result == 0) {
      gi_module_describe_error(err, err_size, j->mod->path, where, j->r);
      result = j->r;
    }
  }
  free(l.jobs);
  return result;
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

/* The pid a daemon wrote into @pid_file inside @root (NULL: "/"), resolved
 * beneath the root (openat2 RESOLVE_IN_ROOT: the root's /var/run is usually
 * a symlink to /run), and only when that process's comm starts with @comm
 * (at most 15 characters). 0 when unknown. */
static int
daemon_pid(const char *root, const char *pid_file, const char *comm_prefix)
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
  fd = (int) syscall(SYS_openat2, dirfd, pid_file, &how, sizeof(how));
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
  if (gi_read_file(path, comm, sizeof(comm), NULL) < 0 || strncmp(comm, comm_prefix, strnlen(comm_prefix, 15)) != 0)
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

/* The fabric manager hook of gi_nvidia_start_helpers(). */
static void
start_fabricmanager(const GiHelpers *h, GiNvidiaState *ret)
{
  char path[256];
  int r, status = 0;

  ret->fabricmanager[0] = '\0';
  ret->fabricmanager_pid = 0;
  if (h->nvswitches == 0)
    return;
  snprintf(path, sizeof(path), "%s/" GI_FABRICMANAGER_NAME, h->bin_dir);
  if (!helper_exists(h, path))
    snprintf(path, sizeof(path), "/usr/bin/" GI_FABRICMANAGER_NAME);
  if (!helper_exists(h, path)) {
    snprintf(ret->fabricmanager, sizeof(ret->fabricmanager), "absent");
    gi_warn("the guest has %u NVSwitch function(s) but no %s in the root's /usr/bin or %s: "
            "CUDA cannot use NVLink (error 802); supply NVIDIA's fabric manager of the driver's version",
            h->nvswitches, GI_FABRICMANAGER_NAME, h->bin_dir);
    return;
  }
  {
    char *argv[] = { path, "-c", GI_FABRICMANAGER_CONFIG, NULL };
    GiSpawnOptions o = { .argv = argv, .envp = h->envp, .root = h->root, .stdout_fd = -1, .exec_fd = -1 };

    /* Like nvidia-persistenced, it daemonizes once the fabric is set up. */
    r = gi_run_opts(&o, FABRICMANAGER_TIMEOUT_MS, NULL, 0, NULL, &status);
  }
  describe_status(ret->fabricmanager, sizeof(ret->fabricmanager), r, status);
  if (strcmp(ret->fabricmanager, "ok") == 0) {
    snprintf(ret->fabricmanager, sizeof(ret->fabricmanager), "running");
    ret->fabricmanager_pid = daemon_pid(h->root, GI_FABRICMANAGER_PID_FILE, GI_FABRICMANAGER_NAME);
  }
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
  start_fabricmanager(h, ret);

  if (helper_exists(h, persistenced)) {
    char *argv[] = { persistenced, NULL };
    GiSpawnOptions o = { .argv = argv, .envp = h->envp, .root = h->root, .stdout_fd = -1, .exec_fd = -1 };
    int status = 0;

    /* It daemonizes: the process we start exits once the daemon runs. */
    r = gi_run_opts(&o, PERSISTENCED_TIMEOUT_MS, NULL, 0, NULL, &status);
    describe_status(ret->persistenced, sizeof(ret->persistenced), r, status);
    if (strcmp(ret->persistenced, "ok") == 0) {
      snprintf(ret->persistenced, sizeof(ret->persistenced), "running");
      ret->persistenced_pid = daemon_pid(h->root, PERSISTENCED_PID_FILE, "nvidia-persistenced");
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
