/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sandbox.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

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

GStrv
vfd_qemu_build_argv(const VfdQemuConfig *c)
{
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();
  g_autoptr(GString) append = g_string_new("console=ttyS0 panic=-1");
  gboolean microvm = c->n_devices == 0;

  /* microvm: no PCI, no firmware tables to walk: the quick CPU-only
   * machine. q35 when functions are passed through, each behind its own
   * PCIe root port so that BARs are sized per device. */
  if (!microvm)
    g_string_append(append, " pci=realloc");
  if (c->tsc_khz)
    g_string_append_printf(append, " tsc_early_khz=%u", c->tsc_khz);
  g_string_append_printf(append, " vfiod.sandbox=%s", c->id);
  for (guint i = 0; c->extra_append && c->extra_append[i]; i++)
    g_string_append_printf(append, " %s", c->extra_append[i]);

  g_strv_builder_add_many(b, c->qemu_binary, "-name", c->id, "-accel", c->accel, NULL);
  g_strv_builder_add(b, "-M");
  /* microvm needs its legacy PIT/PIC/RTC: without a PIT the guest kernel
   * cannot calibrate its TSC under TCG and stalls at boot. */
  add_printf(b, "%s,memory-backend=mem", microvm ? "microvm,pit=on,pic=on,rtc=on" : "q35");
  /* Guest RAM from a memfd (sealable, shareable with vhost-user later),
   * optionally on hugepages. */
  g_strv_builder_add(b, "-object");
  if (c->numa_bind)
    add_printf(b, "memory-backend-memfd,id=mem,size=%uM,share=on%s,host-nodes=%u,policy=bind", c->memory_mib,
               c->hugepages ? ",hugetlb=on" : "", c->numa_node);
  else
    add_printf(b, "memory-backend-memfd,id=mem,size=%uM,share=on%s", c->memory_mib, c->hugepages ? ",hugetlb=on" : "");
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
  g_strv_builder_add(b, "-serial");
  add_printf(b, "file:%s", c->serial_log);
  if (c->pidfile) {
    g_strv_builder_add(b, "-pidfile");
    g_strv_builder_add(b, c->pidfile);
  }
  g_strv_builder_add(b, "-qmp");
  add_printf(b, "unix:%s,server=on,wait=off", c->qmp_socket);
  g_strv_builder_add_many(b, "-kernel", c->kernel, "-initrd", c->initrd, "-append", append->str, NULL);
  for (guint i = 0; i < c->n_devices; i++) {
    char bdf[VFD_BDF_STRLEN];
    g_strv_builder_add(b, "-device");
    add_printf(b, "pcie-root-port,id=rp%u,chassis=%u,slot=%u", i, i + 1, i);
    g_strv_builder_add(b, "-device");
    add_printf(b, "vfio-pci,host=%s,bus=rp%u", vfd_bdf_format(&c->devices[i], bdf), i);
  }
  for (guint i = 0; c->extra_args && c->extra_args[i]; i++)
    g_strv_builder_add(b, c->extra_args[i]);
  return g_strv_builder_end(b);
}

/* True when an argument of process @pid contains @needle. */
static gboolean
cmdline_has(gint64 pid, const char *needle)
{
  g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/cmdline", pid);
  g_autofree char *cmdline = NULL;
  gsize len = 0;

  if (!g_file_get_contents(path, &cmdline, &len, NULL))
    return FALSE;
  /* NUL-separated arguments: look at each. */
  for (gsize off = 0; off < len; off += strlen(cmdline + off) + 1)
    if (strstr(cmdline + off, needle))
      return TRUE;
  return FALSE;
}

gint64
vfd_qemu_find_pid(const char *pidfile, const char *id)
{
  g_autofree char *contents = NULL;
  g_autofree char *needle = g_strdup_printf("vfiod.sandbox=%s", id);
  gint64 pid;

  if (g_file_get_contents(pidfile, &contents, NULL, NULL)) {
    pid = g_ascii_strtoll(g_strstrip(contents), NULL, 10);
    if (pid > 0 && cmdline_has(pid, needle))
      return pid;
  }
  /* QEMU may not have written its pidfile yet when vfiod died: look for
   * it by its command line. */
  {
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *name;

    while (proc && (name = g_dir_read_name(proc))) {
      char *end = NULL;
      pid = g_ascii_strtoll(name, &end, 10);
      if (end && !*end && pid > 0 && pid != getpid() && cmdline_has(pid, needle))
        return pid;
    }
  }
  return 0;
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

guint
vfd_host_tsc_khz(void)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents("/proc/cpuinfo", &contents, NULL, NULL))
    return 0;
  lines = g_strsplit(contents, "\n", -1);
  for (char **l = lines; *l; l++) {
    const char *colon = strchr(*l, ':');
    if (g_str_has_prefix(*l, "cpu MHz") && colon)
      return (guint) (g_ascii_strtod(colon + 1, NULL) * 1000.0);
  }
  return 0;
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
  cpu_set_t cpus; /* empty: no affinity */
  gboolean pin;
} ChildSetup;

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void
child_setup(gpointer data)
{
  const ChildSetup *cs = data;
  struct rlimit rl = { .rlim_cur = cs->memlock, .rlim_max = cs->memlock };
  struct rlimit cur;

  /* Never lower an existing larger (or unlimited) limit. */
  if (getrlimit(RLIMIT_MEMLOCK, &cur) == 0 && (cur.rlim_max == RLIM_INFINITY || cur.rlim_max > rl.rlim_max))
    rl.rlim_max = cur.rlim_max;
  if (rl.rlim_cur > rl.rlim_max)
    rl.rlim_cur = rl.rlim_max;
  (void) setrlimit(RLIMIT_MEMLOCK, &rl);
  /* Own process group: signals to vfiod's group don't reach the guest. */
  (void) setpgid(0, 0);
  /* vCPU threads inherit this: the node of the passed devices. */
  if (cs->pin)
    (void) sched_setaffinity(0, sizeof cs->cpus, &cs->cpus);
  /* Drop to the QEMU user last (the limit above needs privilege). Exit if
   * that fails: QEMU must never run as root by accident. */
  if (cs->uid != 0 && (setgroups(0, NULL) < 0 || setgid(cs->gid) < 0 || setuid(cs->uid) < 0))
    _exit(126);
}

GSubprocess *
vfd_qemu_spawn(const VfdQemuConfig *config, const char *log_path, GError **error)
{
  g_auto(GStrv) argv = vfd_qemu_build_argv(config);
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_PIPE);
  /* Lives as long as the process: the launcher copies nothing, but the
   * child setup runs before spawn returns, so a stack copy is enough. */
  ChildSetup cs = { .memlock = vfd_qemu_memlock_bytes(config->memory_mib), .uid = config->run_uid,
                    .gid = config->run_gid };
  g_autoptr(GArray) cpus = NULL;

  CPU_ZERO(&cs.cpus);
  if (config->numa_bind && vfd_numa_node_cpus("/sys", (int) config->numa_node, &cpus)) {
    for (guint i = 0; i < cpus->len; i++)
      if (g_array_index(cpus, guint, i) < CPU_SETSIZE)
        CPU_SET(g_array_index(cpus, guint, i), &cs.cpus);
    cs.pin = CPU_COUNT(&cs.cpus) > 0;
  }
  GSubprocess *p;

  g_subprocess_launcher_set_stdout_file_path(l, log_path);
  g_subprocess_launcher_set_stderr_file_path(l, log_path);
  g_subprocess_launcher_set_child_setup(l, child_setup, &cs, NULL);
  for (guint i = 0; i < config->n_pass_fds; i++)
    g_subprocess_launcher_take_fd(l, config->pass_fds[i], (gint) (3 + i));
  p = g_subprocess_launcher_spawnv(l, (const char *const *) argv, error);
  if (!p)
    g_prefix_error(error, "cannot start %s: ", config->qemu_binary);
  return p;
}

int
vfd_proc_start_time(gint64 pid, guint64 *ret)
{
  g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/stat", pid);
  g_autofree char *contents = NULL;
  g_auto(GStrv) fields = NULL;
  const char *p;

  if (pid <= 0)
    return -EINVAL;
  if (!g_file_get_contents(path, &contents, NULL, NULL))
    return -ESRCH;
  /* The command name (field 2) may hold spaces and ')': skip past the last ')'. */
  p = strrchr(contents, ')');
  if (!p)
    return -EINVAL;
  fields = g_strsplit(p + 2, " ", -1);
  /* fields[0] is field 3 (state); field 22 is fields[19]. */
  if (g_strv_length(fields) < 20)
    return -EINVAL;
  /* A zombie (Z) or dead (X) process has exited: not alive to adopt. */
  if (g_str_equal(fields[0], "Z") || g_str_equal(fields[0], "X"))
    return -ESRCH;
  *ret = g_ascii_strtoull(fields[19], NULL, 10);
  return 0;
}

gboolean
vfd_check_image_path(const char *what, const char *path, GError **error)
{
  g_auto(GStrv) parts = NULL;
  struct stat st;

  if (!path || !*path) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: a path is required", what);
    return FALSE;
  }
  if (!g_path_is_absolute(path)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' must be an absolute path", what, path);
    return FALSE;
  }
  parts = g_strsplit(path, "/", -1);
  for (char **p = parts; *p; p++)
    if (g_str_equal(*p, "..") || g_str_equal(*p, ".")) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' must not contain '.' or '..'", what, path);
      return FALSE;
    }
  if (stat(path, &st) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_NOT_FOUND, "%s '%s': %s", what, path, g_strerror(e));
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s '%s' is not a regular file", what, path);
    return FALSE;
  }
  if (access(path, R_OK) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_PERMISSION_DENIED, "%s '%s': %s", what, path, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_serial_scan(GString *pending, const char *data, gsize len, char **ret_report)
{
  static const char tag[] = "VFIOD_READY ";
  const char *nl;

  g_string_append_len(pending, data, (gssize) len);
  while ((nl = memchr(pending->str, '\n', pending->len))) {
    gsize line_len = (gsize) (nl - pending->str);
    g_autofree char *line = g_strndup(pending->str, line_len);
    const char *at = strstr(line, tag);

    g_string_erase(pending, 0, (gssize) line_len + 1);
    if (at) {
      *ret_report = g_strchomp(g_strdup(at + strlen(tag)));
      return TRUE;
    }
  }
  if (pending->len > 64 * 1024)
    g_string_erase(pending, 0, (gssize) (pending->len - 64 * 1024));
  return FALSE;
}
