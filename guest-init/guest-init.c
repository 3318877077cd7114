/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init: the sandbox guest's PID 1. Static: libc, plus libnl-route-3
 * linked in.
 *
 * Mounts the API file systems, reads the vfiod.* keys of the kernel command
 * line, loads the modules the stager put into the image (in manifest order),
 * sets up NVIDIA GPUs when staged, configures the network, optionally mounts
 * a root file system for the workload, reports readiness (console, and vsock
 * when asked), then runs the workload if there is one and waits: it reaps
 * every child, forwards termination signals, and powers the VM off (never
 * returning) when the workload ends, on a termination signal without a
 * workload, or on an ACPI power button press. The console protocol and the
 * command line keys are described in guest-init/README.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/input.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "disk.h"
#include "driver.h"
#include "gpu.h"
#include "manifest.h"
#include "modules.h"
#include "net.h"
#include "payload.h"
#include "procstat.h"
#include "report.h"
#include "util.h"
#include "vsock.h"

/* The guest's own sysfs, devtmpfs and procfs. (In --test mode on a
 * development machine, --pci-root can point elsewhere.) */
#define GUEST_PCI_ROOT "/sys/bus/pci/devices"
#define GUEST_INPUT_ROOT "/dev/input"
#define GUEST_CMDLINE_PATH "/proc/cmdline"
#define GUEST_RESOLV_CONF "/etc/resolv.conf"
#define NEWROOT "/newroot"          /* where vfiod.root= is mounted (or the overlay over it) */
#define OVERLAY_LOWER "/.vfiod-lower" /* with vfiod.overlay=: the read-only root */
#define OVERLAY_STORE "/.vfiod-overlay" /* with vfiod.overlay=: the tmpfs or disk of upper and work */

#define CMDLINE_BUF_SIZE 16384      /* x86 COMMAND_LINE_SIZE is 2048 */
#define MANIFEST_BUF_SIZE 65536
#define GUEST_FW_CFG_BY_NAME "/sys/firmware/qemu_fw_cfg/by_name"
#define PAYLOAD_WAIT_MS 2000        /* for the fw_cfg payload to show in sysfs after qemu_fw_cfg loads */
#define MAX_POWER_BUTTONS 8
#define MAX_TIMINGS 16

#define ROOT_WAIT_MS 10000          /* for the vfiod.root= block device to appear */
#define STOP_GRACE_MS 10000         /* workload: SIGTERM to its group, then SIGKILL */
#define CLEANUP_TERM_MS 3000        /* leftovers after the workload: SIGTERM, then SIGKILL */
#define CLEANUP_KILL_MS 5000        /* after SIGKILL: give up waiting */
#define REPORT_ATTEMPTS 3           /* vsock attempts for the ready and exit lines */
#define LAYER_WAIT_MS 10000         /* for the vfiod.driver= block device to appear */
#define PROBE_TIMEOUT_MS 90000      /* the CUDA probe: cuInit and a context per GPU */
#define PERSISTENCED_STOP_MS 5000   /* power-off: nvidia-persistenced's exit after SIGTERM */
#define UNLOAD_TIMEOUT_MS 20000     /* power-off: unloading the NVIDIA modules */

/* --test: run as an ordinary process (no mounts, no modules, no network, no
 * reboot; exits instead of powering off). For trying guest-init on a
 * development machine. */
static bool test_mode;

static GiCmdline cmdline;           /* large: kept off the stack */
static GiPayload payload;           /* vfiod.payload=: parsed from payload_buf */
static char *payload_buf;           /* the fw_cfg payload's bytes (malloc'ed once) */
static const char *files_root;      /* --test: where the payload's files go (else the workload's root) */

/* The workload, from the payload (vfiod.payload=) or from the command line
 * (vfiod.cmd=, vfiod.arg=, vfiod.env=: hand-written lines); wl_cmd is NULL
 * when there is none. Set by choose_workload(). */
static const char *wl_cmd;
static const char *const *wl_args;
static size_t wl_n_args;
static const char *const *wl_env;
static size_t wl_n_env;
static char root_dev[GI_CMDLINE_MAX_VALUE + 8]; /* the node vfiod.root= resolved to ("" before) */

/* What set-up did, for the ready report. */
static struct {
  GiManifest manifest;
  bool has_manifest;
  GiModules modules;
  const char *nvidia_version;   /* the driver's version: the manifest's, else the layer's */
  bool has_nvidia;
  GiNvidiaState nvidia;
  bool has_layer;               /* vfiod.driver= is mounted and in use */
  GiLayer layer;
  const char *layer_modules;    /* where nvidia.ko came from: "initramfs", "layer" or NULL */
  bool has_cuda;                /* the CUDA probe ran and every GPU passed */
  GiCudaReport cuda;
  GiGpuResult gpu_results[GI_GPU_MAX];
  char driver_version[64];      /* /sys/module/nvidia/version, else nvidia_version */
  char firmware_dir[320];       /* where the loader finds this version's GSP firmware, "" unknown */
  char firmware_files[8][64];   /* the gsp_*.bin files there */
  size_t n_firmware_files;
  bool has_net;
  GiNet net;
  GiTiming timings[MAX_TIMINGS];
  size_t n_timings;
} boot;

/* What power-off did to the NVIDIA driver (gpu_teardown()). */
static struct {
  bool persistenced_done;       /* stop_persistenced() ran */
  const char *persistenced;
  bool done;
  GiTeardown result;
  char unloaded[16][64];
  const char *unloaded_names[16];
  char error[256];
} teardown;

/* The workload (vfiod.cmd), while PID 1 waits. */
typedef struct {
  pid_t pid;              /* > 0 once started; its process group id too */
  bool done;              /* it has exited: status is valid */
  int status;             /* wait status */
  uint64_t started_ms, ended_ms;
  uint64_t timeout_at;    /* vfiod.timeout deadline, 0 for none */
  uint64_t kill_at;       /* SIGKILL deadline once a stop was asked, else 0 */
  const char *stop_reason;/* why it was stopped, or NULL */
  int forwarded;          /* the last termination signal forwarded to it, or 0 */
} Workload;

static Workload workload;
static unsigned n_reaped;   /* children other than the workload reaped so far */

static void
add_timing(const char *name)
{
  if (boot.n_timings < MAX_TIMINGS)
    boot.timings[boot.n_timings++] = (GiTiming) { name, gi_now_ms() };
}

/* Console lines: a formatter from report.h writes into @buf + 1, and the
 * line goes out with a newline in front, in one write(2). The newline makes
 * it start at column 0 even after firmware output without one (SeaBIOS
 * leaves terminal escapes there). @len: the formatter's result. */
static void
emit_line(char *buf, size_t size, size_t len)
{
  buf[0] = '\n';
  gi_write_all(STDOUT_FILENO, buf, 1 + (len < size - 1 ? len : size - 2));
}

/* Sends a complete line (@line, @len bytes, "\n"-terminated, no leading
 * newline) to the host when vfiod.report=vsock:PORT, and prints a
 * VFIOD_REPORT line saying how that went. The console has the line already. */
static void
send_to_host(const char *line, size_t len, const char *tag, unsigned attempts)
{
  char to[32], err[256], status[512];
  unsigned made = 0;
  int r;

  if (cmdline.report != GI_REPORT_VSOCK || test_mode)
    return;
  snprintf(to, sizeof(to), "vsock:%u", cmdline.report_port);
  r = gi_vsock_send(GI_VSOCK_CID_HOST, cmdline.report_port, line, len, attempts, &made, err, sizeof(err));
  emit_line(status, sizeof(status),
            gi_format_report_status(status + 1, sizeof(status) - 1, to, tag, r == 0, made, r == 0 ? NULL : err));
  if (r < 0)
    gi_warn("could not send %s to the host: %s; the console line above is the report", tag, err);
}

static void __attribute__((noreturn))
power_off(int test_exit_code)
{
  sync();
  if (test_mode)
    exit(test_exit_code);
  reboot(RB_POWER_OFF);
  gi_warn("reboot(RB_POWER_OFF) failed: %s; halting here", strerror(errno));
  for (;;)
    sleep(3600);
}

static int pci_scan(const char *root, GiPciDevice **ret_devices, size_t *ret_n);

/* Stops the nvidia-persistenced and the fabric manager guest-init started
 * (once): before the workload's leftovers are killed, and before the
 * modules are unloaded (both hold NVIDIA device files). */
static void
stop_persistenced(void)
{
  if (teardown.persistenced_done || test_mode || !boot.has_nvidia)
    return;
  teardown.persistenced_done = true;
  teardown.persistenced = gi_nvidia_stop_persistenced(boot.nvidia.persistenced_pid, PERSISTENCED_STOP_MS);
  if (boot.nvidia.fabricmanager_pid > 0)
    gi_note("fabric manager: %s",
            gi_nvidia_stop_persistenced(boot.nvidia.fabricmanager_pid, PERSISTENCED_STOP_MS));
}

/* NVSwitch functions on the guest's PCI bus (0 when it cannot be read). */
static unsigned
count_nvswitches(void)
{
  GiPciDevice *devices = NULL;
  size_t n_devices = 0;
  unsigned n = 0;

  if (pci_scan(GUEST_PCI_ROOT, &devices, &n_devices) < 0)
    return 0;
  for (size_t i = 0; i < n_devices; i++)
    n += gi_pci_is_nvswitch(devices[i].vendor, devices[i].class_code);
  free(devices);
  return n;
}

/* Before power-off: leaves no GPU firmware running for the next user.
 * Stops nvidia-persistenced, then unloads the NVIDIA modules guest-init
 * loaded (nvidia_uvm, nvidia_modeset, nvidia, ...), bounded in time. NULL
 * when guest-init loaded none (nothing to report). */
static const GiTeardown *
gpu_teardown(void)
{
  size_t n = 0;
  bool any = false;
  int r;

  if (test_mode)
    return NULL;
  for (size_t i = 0; i < boot.modules.n_loaded && !any; i++)
    any = gi_nvidia_module_kind(boot.modules.loaded[i]) != GI_NVIDIA_MODULE_NONE;
  if (!any)
    return NULL;
  if (teardown.done)
    return &teardown.result;
  teardown.done = true;
  stop_persistenced();
  r = gi_nvidia_unload((const char (*)[64]) boot.modules.loaded, boot.modules.n_loaded, UNLOAD_TIMEOUT_MS,
                       teardown.unloaded, 16, &n, teardown.error, sizeof(teardown.error));
  if (r < 0)
    gi_warn("NVIDIA modules not all unloaded: %s", teardown.error);
  for (size_t i = 0; i < n; i++)
    teardown.unloaded_names[i] = teardown.unloaded[i];
  teardown.result = (GiTeardown) {
    .persistenced = teardown.persistenced ? teardown.persistenced : "none",
    .unloaded = teardown.unloaded_names,
    .n_unloaded = n,
    .error = r < 0 ? teardown.error : NULL,
  };
  return &teardown.result;
}

static void __attribute__((noreturn))
power_off_because(const char *reason, int test_exit_code)
{
  const GiTeardown *t = gpu_teardown();
  char line[1024];

  emit_line(line, sizeof(line), gi_format_poweroff_gpu(line + 1, sizeof(line) - 1, reason, t));
  power_off(test_exit_code);
}

/* Prints VFIOD_FATAL with the formatted message, tries once to send it to
 * the host, and powers off (in --test mode: exits 1). */
static void __attribute__((noreturn, format(printf, 1, 2)))
fatal(const char *fmt, ...)
{
  char msg[512], line[1024];
  va_list ap;
  size_t len;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  len = gi_format_fatal(line + 1, sizeof(line) - 1, msg);
  emit_line(line, sizeof(line), len);
  if (len < sizeof(line) - 1)
    send_to_host(line + 1, len, "VFIOD_FATAL", 1);
  power_off_because("fatal", 1);
}

/* True when something is mounted on @dir: it is on another device than its
 * parent directory. */
static bool
is_mountpoint(const char *dir)
{
  char parent[256];
  struct stat st, pst;

  snprintf(parent, sizeof(parent), "%s/..", dir);
  return stat(dir, &st) == 0 && stat(parent, &pst) == 0 && st.st_dev != pst.st_dev;
}

/* Creates @target if needed and mounts @type on it, unless something is
 * mounted there already (EBUSY is taken the same way). Returns 0 or -errno. */
static int
mount_fs(const char *type, const char *target, unsigned long flags, const char *data)
{
  if (mkdir(target, 0755) < 0 && errno != EEXIST)
    return -errno;
  if (is_mountpoint(target))
    return 0;
  if (mount(type, target, type, flags, data) < 0 && errno != EBUSY)
    return -errno;
  return 0;
}

/* Makes fds 0-2 point to /dev/console when the kernel could not open it
 * (no /dev/console in the initramfs). Returns 0 or -errno. */
static int
setup_console(void)
{
  int fd;

  if (fcntl(STDOUT_FILENO, F_GETFD) >= 0 && fcntl(STDERR_FILENO, F_GETFD) >= 0)
    return 0;
  /* No O_CLOEXEC: fds 0-2 are inherited, and dup2() onto itself would keep
   * the flag when open() returns one of them. */
  fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0)
    return -errno;
  for (int i = 0; i <= 2; i++) {
    if (dup2(fd, i) < 0) {
      int e = errno;
      if (fd > 2)
        close(fd);
      return -e;
    }
  }
  if (fd > 2)
    close(fd);
  return 0;
}

/* The file systems every guest gets, in mount order (after /dev). */
static const struct {
  const char *type;
  const char *target;
  unsigned long flags;
  const char *data;
} api_mounts[] = {
  { "proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
  { "sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
  { "tmpfs", "/run", MS_NOSUID | MS_NODEV, "mode=0755" },
  { "tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777" },
  { "cgroup2", "/sys/fs/cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
  { "devpts", "/dev/pts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666" },
  { "tmpfs", "/dev/shm", MS_NOSUID | MS_NODEV, "mode=1777" },
};

static void
setup_pid1(void)
{
  int r;

  /* Ctrl-Alt-Del becomes SIGINT to us instead of an immediate reboot. */
  if (reboot(RB_DISABLE_CAD) < 0)
    gi_warn("reboot(RB_DISABLE_CAD) failed: %s", strerror(errno));

  /* /dev first, so that a console exists for the error messages. */
  r = mount_fs("devtmpfs", "/dev", MS_NOSUID, "mode=0755");
  /* Best effort: without a console there is nowhere to say it failed. */
  (void) setup_console();
  if (r < 0)
    fatal("mount devtmpfs on /dev: %s", strerror(-r));
  for (size_t i = 0; i < sizeof(api_mounts) / sizeof(api_mounts[0]); i++) {
    r = mount_fs(api_mounts[i].type, api_mounts[i].target, api_mounts[i].flags, api_mounts[i].data);
    if (r < 0)
      fatal("mount %s on %s: %s", api_mounts[i].type, api_mounts[i].target, strerror(-r));
  }
}

/* Parses a sysfs hex attribute ("0x10de\n") into @ret. Returns 0 or -EINVAL. */
static int
parse_hex(const char *s, uint32_t max, uint32_t *ret)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 16);
  if (errno != 0 || end == s || v > max || (*end != '\0' && *end != '\n'))
    return -EINVAL;
  *ret = (uint32_t) v;
  return 0;
}

static int
read_hex(const char *root, const char *bdf, const char *attr, uint32_t max, uint32_t *ret)
{
  char path[512], buf[32];
  bool truncated;
  ssize_t n;

  snprintf(path, sizeof(path), "%s/%s/%s", root, bdf, attr);
  n = gi_read_file(path, buf, sizeof(buf), &truncated);
  if (n < 0)
    return (int) n;
  if (truncated)
    return -EINVAL;
  return parse_hex(buf, max, ret);
}

/* The name of the driver bound to @bdf ("" for none). */
static void
read_driver(const char *root, const char *bdf, char *buf, size_t size)
{
  char path[512], target[512];
  const char *base;
  ssize_t n;

  buf[0] = '\0';
  snprintf(path, sizeof(path), "%s/%s/driver", root, bdf);
  n = readlink(path, target, sizeof(target) - 1);
  if (n <= 0)
    return;
  target[n] = '\0';
  base = strrchr(target, '/');
  base = base ? base + 1 : target;
  snprintf(buf, size, "%.*s", (int) size - 1, base);
}

/* The BARs of @bdf from its `resource` attribute (all zero when it cannot
 * be read: the report then lists none). */
static void
read_bars(const char *root, const char *bdf, GiPciBar bars[GI_PCI_NUM_BARS])
{
  char path[512], buf[1024];
  bool truncated;

  snprintf(path, sizeof(path), "%s/%s/resource", root, bdf);
  /* 7 to 17 lines of 57 bytes: the BARs are in the first 342. */
  if (gi_read_file(path, buf, sizeof(buf), &truncated) < 0 ||
      gi_pci_parse_resource(buf, bars) < GI_PCI_NUM_BARS)
    memset(bars, 0, GI_PCI_NUM_BARS * sizeof(*bars));
}

/* Lists the PCI functions under @root (the guest's PCI devices directory),
 * sorted by BDF, into a malloc'ed array. A missing @root means no PCI bus:
 * an empty list. Functions whose IDs cannot be read are skipped with a
 * warning. Returns 0 or -errno. */
static int
pci_scan(const char *root, GiPciDevice **ret_devices, size_t *ret_n)
{
  GiPciDevice *devices = NULL;
  size_t n = 0;
  struct dirent *de;
  DIR *d = opendir(root);

  if (!d) {
    if (errno != ENOENT)
      return -errno;
    *ret_devices = NULL;
    *ret_n = 0;
    return 0;
  }
  while ((de = readdir(d)) != NULL) {
    GiPciDevice dev = { 0 };
    GiPciDevice *grown;
    uint32_t vendor, device, class_code = 0;
    int r;

    if (de->d_name[0] == '.')
      continue;
    if (strlen(de->d_name) >= sizeof(dev.bdf)) {
      gi_warn("skipping PCI entry with an overlong name");
      continue;
    }
    strcpy(dev.bdf, de->d_name);
    r = read_hex(root, dev.bdf, "vendor", 0xffff, &vendor);
    if (r == 0)
      r = read_hex(root, dev.bdf, "device", 0xffff, &device);
    if (r < 0) {
      gi_warn("skipping PCI function %s: cannot read its IDs: %s", dev.bdf, strerror(-r));
      continue;
    }
    if (read_hex(root, dev.bdf, "class", 0xffffff, &class_code) < 0)
      gi_warn("PCI function %s: cannot read its class", dev.bdf);
    dev.vendor = (uint16_t) vendor;
    dev.device = (uint16_t) device;
    dev.class_code = class_code;
    read_driver(root, dev.bdf, dev.driver, sizeof(dev.driver));
    read_bars(root, dev.bdf, dev.bars);
    grown = realloc(devices, (n + 1) * sizeof(*devices));
    if (!grown) {
      free(devices);
      closedir(d);
      return -ENOMEM;
    }
    devices = grown;
    devices[n++] = dev;
  }
  closedir(d);
  if (n > 0)
    qsort(devices, n, sizeof(*devices), gi_pci_device_compare);
  *ret_devices = devices;
  *ret_n = n;
  return 0;
}

/* Stops (VFIOD_FATAL) on a command line vfiod cannot have written: a
 * refused vfiod.* word (bad byte, quote or value, over a limit, a key given
 * twice) or more vfiod.* words than guest-init keeps. Each refused word is
 * also warned about, so the console shows all of them. Unknown vfiod.* keys
 * and settings without their companion only get a warning. */
static void
report_cmdline_problems(void)
{
  char err[GI_CMDLINE_MAX_KEY + 128];

  for (size_t i = 0; i < cmdline.n_entries; i++) {
    const GiCmdlineEntry *e = &cmdline.entries[i];

    if (e->status != GI_CMDLINE_OK)
      gi_warn("kernel command line: %s: %s", e->key, gi_cmdline_status_to_string(e->status));
  }
  if (!gi_cmdline_check(&cmdline, err, sizeof(err)))
    fatal("kernel command line: %s", err);
  if (!cmdline.has_ip && cmdline.gw[0] != '\0')
    gi_warn("kernel command line: vfiod.gw without vfiod.ip is ignored");
  if (cmdline.cmd[0] == '\0' && cmdline.n_args > 0)
    gi_warn("kernel command line: vfiod.arg without vfiod.cmd is ignored");
  if (cmdline.payload_size > 0 && (cmdline.cmd[0] != '\0' || cmdline.n_args > 0 || cmdline.n_env > 0))
    /* vfiod sends the workload one way only: the other one was injected */
    fatal("kernel command line: vfiod.cmd, vfiod.arg or vfiod.env with vfiod.payload");
  if (cmdline.cmd[0] == '\0' && cmdline.payload_size == 0 && cmdline.root[0] != '\0')
    gi_warn("kernel command line: vfiod.root without vfiod.cmd: the disk is mounted on %s only", NEWROOT);
  /* The layer's user space (nvidia-smi, libcuda, the CUDA probe) needs a C
   * library, which only a root file system has: a GPU could never be found
   * ready without one. */
  if (cmdline.driver[0] != '\0' && cmdline.gpu && cmdline.root[0] == '\0')
    fatal("kernel command line: vfiod.driver needs vfiod.root (the driver layer's user space runs in the "
          "workload's root file system)");
  if (cmdline.driver[0] != '\0' && !cmdline.gpu)
    gi_warn("kernel command line: vfiod.driver with vfiod.gpu=off is ignored");
  if (cmdline.overlay[0] != '\0' && (cmdline.root[0] == '\0' || !cmdline.root_ro))
    fatal("kernel command line: vfiod.overlay needs vfiod.root with vfiod.rootflags=ro");
}

/* Reads the fw_cfg payload (vfiod.payload=BYTES; in --test mode from
 * @test_path) into payload_buf and parses it. The size must be exactly
 * what the command line says: anything else was cut or swapped. Stops
 * (VFIOD_FATAL) on any problem: a workload never starts without its
 * arguments, environment or files. */
static void
load_payload(const char *test_path)
{
  static const char sysfs_path[] = GUEST_FW_CFG_BY_NAME "/" VFIOD_PAYLOAD_FW_CFG_NAME "/raw";
  const char *path = test_path ? test_path : sysfs_path;
  uint64_t deadline = gi_now_ms() + PAYLOAD_WAIT_MS;
  size_t want = cmdline.payload_size, got = 0;
  char err[256];
  int fd;

  if (want == 0) {
    if (test_path)
      fatal("--payload needs vfiod.payload=BYTES in --cmdline");
    return;
  }
  /* qemu_fw_cfg registers the files while it probes: a moment after
   * the module is in. */
  while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    if (errno != ENOENT || test_path || gi_now_ms() >= deadline)
      fatal("the workload's payload %s: %s (vfiod.payload=%zu; an image without module qemu_fw_cfg? rebuild it "
            "with vfioctl image build)",
            path, strerror(errno), want);
    usleep(20 * 1000);
  }
  payload_buf = malloc(want + 1);
  if (!payload_buf)
    fatal("the workload's payload: out of memory for %zu bytes", want);
  for (;;) {
    ssize_t n = read(fd, payload_buf + got, want + 1 - got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fatal("read %s: %s", path, strerror(errno));
    if (n == 0)
      break;
    got += (size_t) n;
    if (got > want)
      fatal("the workload's payload %s is larger than the %zu bytes vfiod.payload= says", path, want);
  }
  close(fd);
  if (got != want)
    fatal("the workload's payload %s has %zu bytes, vfiod.payload= says %zu", path, got, want);
  if (!gi_payload_parse(payload_buf, got, &payload, err, sizeof(err)))
    fatal("the workload's payload: %s", err);
  add_timing("payload");
}

/* Where the workload comes from: the payload when there is one, else the
 * command line's vfiod.cmd/arg/env. */
static void
choose_workload(void)
{
  static const char *args[GI_CMDLINE_MAX_ARGS], *env[GI_CMDLINE_MAX_ENV];

  if (cmdline.payload_size > 0) {
    wl_cmd = payload.cmd;
    wl_args = payload.args;
    wl_n_args = payload.n_args;
    wl_env = payload.env;
    wl_n_env = payload.n_env;
  } else if (cmdline.cmd[0] != '\0') {
    for (size_t i = 0; i < cmdline.n_args; i++)
      args[i] = cmdline.args[i];
    for (size_t i = 0; i < cmdline.n_env; i++)
      env[i] = cmdline.env[i];
    wl_cmd = cmdline.cmd;
    wl_args = args;
    wl_n_args = cmdline.n_args;
    wl_env = env;
    wl_n_env = cmdline.n_env;
  }
  if (!wl_cmd && cmdline.payload_size > 0 && cmdline.root[0] != '\0')
    gi_warn("vfiod.root without a workload: the disk is mounted on %s only", NEWROOT);
}

/* Opens (creating it 0755 when missing) each directory of @path's parent
 * under @dirfd, never following a symbolic link. Returns the parent's fd
 * and points *@ret_base at @path's last component, or -errno. @path is
 * absolute and gi_payload_path_valid(). */
static int
open_parent(int dirfd, const char *path, const char **ret_base)
{
  char part[VFIOD_PAYLOAD_MAX_PATH + 1];
  const char *p = path + 1;
  int fd = dup(dirfd);

  if (fd < 0)
    return -errno;
  for (;;) {
    const char *slash = strchr(p, '/');
    int next;

    if (!slash) {
      *ret_base = p;
      return fd;
    }
    memcpy(part, p, (size_t) (slash - p));
    part[slash - p] = '\0';
    if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST) {
      int e = errno;
      close(fd);
      return -e;
    }
    next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    if (next < 0)
      return errno == ELOOP ? -ELOOP : -errno;
    fd = next;
    p = slash + 1;
  }
}

/* Writes the payload's files into the workload's root (NEWROOT with
 * vfiod.root=, else /; --files-root in --test mode), each with its mode,
 * owned by root, missing directories made 0755, no symbolic link followed
 * (one on the way is an error). Stops (VFIOD_FATAL) on any failure: the
 * workload would run without its credentials or spec. */
static void
write_payload_files(void)
{
  const char *root = files_root ? files_root : cmdline.root[0] != '\0' ? NEWROOT : "/";
  int rootfd;

  if (payload.n_files == 0)
    return;
  if (test_mode && !files_root)
    fatal("the payload has files: --test needs --files-root DIR");
  rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    fatal("open %s: %s", root, strerror(errno));
  for (size_t i = 0; i < payload.n_files; i++) {
    const GiPayloadFile *f = &payload.files[i];
    const char *base = NULL;
    size_t done = 0;
    int dfd = open_parent(rootfd, f->path, &base), fd;

    if (dfd < 0)
      fatal("file %s: its directory: %s%s", f->path, strerror(-dfd),
            dfd == -EROFS ? " (the root is read-only: use a path under /run or /tmp)" : "");
    fd = openat(dfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, f->mode);
    if (fd < 0)
      fatal("file %s: %s%s", f->path, strerror(errno),
            errno == EROFS ? " (the root is read-only: use a path under /run or /tmp)" : "");
    if (fchmod(fd, f->mode) < 0)
      fatal("file %s: chmod %04o: %s", f->path, f->mode, strerror(errno));
    while (done < f->len) {
      ssize_t n = write(fd, f->data + done, f->len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        fatal("file %s: write: %s", f->path, strerror(errno));
      done += (size_t) n;
    }
    if (close(fd) < 0)
      fatal("file %s: close: %s", f->path, strerror(errno));
    close(dfd);
  }
  close(rootfd);
  printf("guest-init: wrote %zu file(s) from the payload into %s\n", payload.n_files, root);
  fflush(stdout);
  add_timing("files");
}

static void network_go(void *unused);

/* Reads and checks the staged manifest, points firmware_class at the staged
 * firmware, and loads the modules. No manifest (an image packed without the
 * stager) means nothing to load. */
static void
setup_modules(void)
{
  static char text[MANIFEST_BUF_SIZE];
  struct utsname uts;
  char err[512];
  bool truncated;
  ssize_t n;
  int r;

  n = gi_read_file(GI_MANIFEST_PATH, text, sizeof(text), &truncated);
  if (n == -ENOENT)
    return;
  if (n < 0)
    fatal("read %s: %s", GI_MANIFEST_PATH, strerror((int) -n));
  if (truncated)
    fatal("%s is larger than %d bytes", GI_MANIFEST_PATH, MANIFEST_BUF_SIZE - 1);
  if (gi_manifest_parse(text, &boot.manifest, err, sizeof(err)) < 0)
    fatal("%s: %s", GI_MANIFEST_PATH, err);
  boot.has_manifest = true;
  for (size_t i = 0; i < boot.manifest.n_unknown && i < GI_MANIFEST_MAX_UNKNOWN; i++)
    gi_warn("%s: line %u: unknown entry kind, ignored", GI_MANIFEST_PATH, boot.manifest.unknown_lines[i]);

  if (uname(&uts) < 0)
    fatal("uname: %s", strerror(errno));
  if (strcmp(boot.manifest.kernel, uts.release) != 0)
    fatal("%s: staged for kernel %s, but this kernel is %s", GI_MANIFEST_PATH, boot.manifest.kernel,
          uts.release);

  if (boot.manifest.firmware) {
    struct stat st;

    if (stat(boot.manifest.firmware, &st) < 0)
      fatal("staged firmware directory %s: %s", boot.manifest.firmware, strerror(errno));
    if (!S_ISDIR(st.st_mode))
      fatal("staged firmware directory %s: not a directory", boot.manifest.firmware);
    r = gi_firmware_set_path(boot.manifest.firmware);
    if (r < 0)
      fatal("write %s to %s: %s", boot.manifest.firmware, GI_FIRMWARE_CLASS_PATH, strerror(-r));
  }

  /* Independent modules at the same time; the network set-up goes on as
   * soon as every non-NVIDIA module is in (network_go()). */
  r = gi_modules_load_parallel(&boot.manifest, &cmdline, &boot.modules, network_go, NULL, err, sizeof(err));
  if (r < 0)
    fatal("%s", err);
}

/* The NVIDIA GPUs the guest has, normalised, no duplicates, at most
 * GI_GPU_MAX (more are warned about): the NVIDIA display functions on its
 * PCI bus (what the host passed) and the GPUs nvidia.ko lists
 * (/proc/driver/nvidia/gpus/<bdf>). */
static size_t
requested_gpus(char bdfs[GI_GPU_MAX][GI_GPU_BDF_SIZE])
{
  GiPciDevice *devices = NULL;
  size_t n_devices = 0, n = 0;
  struct dirent *de;
  DIR *d;

  if (pci_scan(GUEST_PCI_ROOT, &devices, &n_devices) < 0)
    gi_warn("cannot list PCI devices in %s: GPUs are taken from nvidia.ko only", GUEST_PCI_ROOT);
  for (size_t i = 0; i < n_devices; i++) {
    if (!gi_pci_is_nvidia_gpu(devices[i].vendor, devices[i].class_code))
      continue;
    if (n == GI_GPU_MAX) {
      gi_warn("more than %d NVIDIA GPUs: %s and later are not checked", GI_GPU_MAX, devices[i].bdf);
      break;
    }
    if (gi_bdf_normalize(devices[i].bdf, bdfs[n]) == 0)
      n++;
  }
  free(devices);
  d = opendir("/proc/driver/nvidia/gpus");
  while (d && (de = readdir(d)) != NULL) {
    char bdf[GI_GPU_BDF_SIZE];
    bool seen = false;

    if (de->d_name[0] == '.' || gi_bdf_normalize(de->d_name, bdf) < 0)
      continue;
    for (size_t i = 0; i < n && !seen; i++)
      seen = strcmp(bdfs[i], bdf) == 0;
    if (seen)
      continue;
    if (n == GI_GPU_MAX) {
      gi_warn("more than %d NVIDIA GPUs: %s is not checked", GI_GPU_MAX, bdf);
      break;
    }
    memcpy(bdfs[n++], bdf, sizeof(bdf));
  }
  if (d)
    closedir(d);
  return n;
}

/* The environment of everything that runs with the driver layer in the
 * root: the clean one, vfiod.env's (@with_user_env), and the layer's
 * directories first in PATH and LD_LIBRARY_PATH. NULL without a layer in
 * use. Built once per @with_user_env; points into static storage. */
static char *const *
layer_env(bool with_user_env)
{
  /* the clean environment's few entries, the workload's, and room for
   * PATH and LD_LIBRARY_PATH values as long as one payload string each */
  static const char *envp[2][VFIOD_PAYLOAD_MAX_ENV + 16];
  static char buf[2][2 * VFIOD_PAYLOAD_MAX_STRING + 4096];
  static bool built[2];
  static const char *const prepends[] = { "PATH=" GI_LAYER_BIN_DIR, "LD_LIBRARY_PATH=" GI_LAYER_LIB_DIR };
  int i = with_user_env ? 1 : 0, r;

  if (!built[i]) {
    r = gi_env_build((const char *const *) gi_clean_env, wl_env, with_user_env ? wl_n_env : 0,
                     boot.has_layer ? prepends : NULL, boot.has_layer ? 2 : 0, envp[i],
                     sizeof(envp[i]) / sizeof(envp[i][0]), buf[i], sizeof(buf[i]));
    if (r < 0)
      fatal("build the workload's environment: %s", strerror(-r));
    built[i] = true;
  }
  return (char *const *) envp[i];
}

/* The parts of the ready report that describe the guest (sandbox, kernel,
 * modules loaded, PCI functions, driver layer, root, timings so far) into
 * @r, for VFIOD_READY and for a GPU's VFIOD_FATAL. Points into static
 * storage and *@ret_devices (malloc'ed, the caller frees it; NULL when
 * there are none or they cannot be listed). Returns 0, or the -errno of
 * listing the PCI functions (the rest is filled in all the same). */
static int
report_context(GiReady *r, const char *pci_root, GiPciDevice **ret_devices)
{
  static const char *modules[GI_MANIFEST_MAX_MODULES], *fw_files[8];
  static struct utsname uts;
  size_t n_devices = 0;
  int e;

  *ret_devices = NULL;
  e = pci_scan(pci_root, ret_devices, &n_devices);
  if (uname(&uts) < 0)
    snprintf(uts.release, sizeof(uts.release), "?");
  for (size_t i = 0; i < boot.modules.n_loaded; i++)
    modules[i] = boot.modules.loaded[i];
  for (size_t i = 0; i < boot.n_firmware_files; i++)
    fw_files[i] = boot.firmware_files[i];
  r->sandbox = cmdline.sandbox;
  r->kernel = uts.release;
  r->modules = modules;
  r->n_modules = boot.modules.n_loaded;
  r->pci = *ret_devices;
  r->n_pci = n_devices;
  if (boot.has_layer) {
    r->layer_dev = boot.layer.dev;
    r->layer_path = VFIOD_DRIVER_LAYER_DIR;
    r->layer_version = boot.layer.version;
    r->layer_key = boot.layer.key[0] != '\0' ? boot.layer.key : NULL;
    r->layer_modules = boot.layer_modules;
    if (boot.firmware_dir[0] != '\0') {
      r->layer_firmware = boot.firmware_dir;
      r->layer_firmware_files = fw_files;
      r->n_layer_firmware_files = boot.n_firmware_files;
    }
  }
  if (cmdline.root[0] != '\0') {
    r->root_dev = root_dev[0] != '\0' ? root_dev : cmdline.root;
    r->root_fstype = cmdline.rootfstype;
  }
  r->timings = boot.timings;
  r->n_timings = boot.n_timings;
  r->uptime_ms = boot.n_timings > 0 ? boot.timings[boot.n_timings - 1].ms : gi_now_ms();
  return e;
}

/* The GPUs are not ready: VFIOD_FATAL with what the probe said per GPU
 * (or @failure for all of them) and the kernel's NVRM lines, then power-off
 * (which stops persistenced and unloads the modules). */
static void __attribute__((noreturn))
fatal_gpu(const char *error, const GiCudaProbe *probe, const char *failure_call, const char *failure)
{
  static char nvrm[GI_NVRM_MAX_LINES][GI_NVRM_LINE_SIZE];
  const char *nvrm_ptrs[GI_NVRM_MAX_LINES], *smi_out[GI_MAX_SMI_OUTPUT];
  char bdfs[GI_GPU_MAX][GI_GPU_BDF_SIZE];
  const char *req[GI_GPU_MAX];
  size_t n_req, n_results = 0, n_nvrm, len;
  const char *persistenced, *smi;
  GiReady ctx = { 0 };
  GiPciDevice *devices = NULL;
  char *line;

  n_req = requested_gpus(bdfs);
  for (size_t i = 0; i < n_req; i++)
    req[i] = bdfs[i];
  (void) gi_gpu_verdict(req, n_req, probe, failure_call, failure, boot.gpu_results, GI_GPU_MAX, &n_results);
  n_nvrm = gi_nvrm_lines(nvrm, GI_NVRM_MAX_LINES);
  for (size_t i = 0; i < n_nvrm; i++)
    nvrm_ptrs[i] = nvrm[i];
  for (size_t i = 0; i < boot.nvidia.n_smi_output; i++)
    smi_out[i] = boot.nvidia.smi_output[i];
  boot.cuda = (GiCudaReport) {
    .version = probe ? probe->version : 0,
    .probe_ran = probe != NULL,
    .probe_call = probe && probe->call[0] != '\0' ? probe->call : NULL,
    .probe_code = probe ? probe->code : 0,
    .probe_error = probe ? probe->error : NULL,
    .error = boot.modules.nvidia_error[0] != '\0' ? boot.modules.nvidia_error : failure,
    .driver = boot.driver_version[0] != '\0' ? boot.driver_version : boot.nvidia_version,
    .gpus = boot.gpu_results,
    .n_gpus = n_results,
    .nvrm = nvrm_ptrs,
    .n_nvrm = n_nvrm,
  };
  persistenced = boot.nvidia.persistenced[0] != '\0' ? boot.nvidia.persistenced : NULL;
  smi = boot.nvidia.smi[0] != '\0' ? boot.nvidia.smi : NULL;
  add_timing("fatal");
  if (report_context(&ctx, GUEST_PCI_ROOT, &devices) < 0)
    gi_warn("cannot list PCI devices in %s", GUEST_PCI_ROOT);
  len = gi_format_fatal_gpu_ctx(NULL, 0, error, &boot.cuda, persistenced, smi, smi_out, boot.nvidia.n_smi_output,
                                &ctx);
  line = malloc(len + 2);
  if (!line)
    fatal("%s", error);
  gi_format_fatal_gpu_ctx(line + 1, len + 1, error, &boot.cuda, persistenced, smi, smi_out,
                          boot.nvidia.n_smi_output, &ctx);
  free(devices);
  emit_line(line, len + 2, len);
  send_to_host(line + 1, len, "VFIOD_FATAL", 1);
  power_off_because("fatal", 1);
}

/* vfiod.driver=: mounts the driver layer read-only on
 * VFIOD_DRIVER_LAYER_DIR (under /run, so the workload's root sees it there
 * once /run is bound into it) and, when the initramfs stages no nvidia.ko,
 * loads the NVIDIA modules and finds the GSP firmware from it. A kernel
 * driver of another version than the layer's user space is fatal: they must
 * be one version. */
static void
setup_driver_layer(void)
{
  struct utsname uts;
  char err[512], version[64];
  int r;

  if (cmdline.driver[0] == '\0' || !cmdline.gpu)
    return;
  r = gi_layer_mount(cmdline.driver, LAYER_WAIT_MS, &boot.layer, err, sizeof(err));
  if (r < 0)
    fatal("%s", err);
  boot.has_layer = true;
  if (uname(&uts) < 0)
    fatal("uname: %s", strerror(errno));
  if (boot.modules.nvidia_staged) {
    boot.layer_modules = "initramfs";
    if (boot.manifest.nvidia_driver && strcmp(boot.manifest.nvidia_driver, boot.layer.version) != 0)
      fatal("the initramfs stages NVIDIA kernel driver %s, the driver layer on %s has user space %s: they must "
            "be one version", boot.manifest.nvidia_driver, cmdline.driver, boot.layer.version);
  } else {
    boot.layer_modules = "layer";
    r = gi_layer_load_modules(&boot.layer, uts.release, &cmdline, &boot.modules, err, sizeof(err));
    if (r < 0)
      fatal("driver layer: %s", err);
  }
  if (!boot.nvidia_version)
    boot.nvidia_version = boot.layer.version;
  /* Where request_firmware() finds nvidia/<version>/gsp_*.bin: the staged
   * directory (firmware_class.path) when the initramfs brings the modules,
   * else the layer's, bind-mounted on /lib/firmware/nvidia. */
  if (boot.modules.nvidia_staged && boot.layer_modules && strcmp(boot.layer_modules, "initramfs") == 0 &&
      boot.manifest.firmware)
    snprintf(boot.firmware_dir, sizeof(boot.firmware_dir), "%s/nvidia/%s", boot.manifest.firmware,
             boot.layer.version);
  else
    snprintf(boot.firmware_dir, sizeof(boot.firmware_dir), "/lib/firmware/nvidia/%s", boot.layer.version);
  r = gi_gsp_firmware_list(boot.firmware_dir, boot.firmware_files, 8);
  if (r < 0)
    gi_warn("driver layer: no GSP firmware in %s: %s", boot.firmware_dir, strerror(-r));
  boot.n_firmware_files = r > 0 ? (size_t) r : 0;
  if (gi_read_file("/sys/module/nvidia/version", version, sizeof(version), NULL) > 0) {
    version[strcspn(version, "\n")] = '\0';
    if (strcmp(version, boot.layer.version) != 0)
      fatal("the loaded nvidia.ko is version %s, the driver layer on %s has user space %s: they must be one "
            "version", version, cmdline.driver, boot.layer.version);
  }
  add_timing("driver");
}

/* NVIDIA: when the manifest or the driver layer stages a driver, vfiod.gpu
 * is on and nvidia.ko was to be loaded: create the device nodes, and
 * without a driver layer start the initramfs's user-space helpers (with a
 * layer they run in the root, setup_cuda()). An NVIDIA module that did not
 * load is fatal here without a layer; with one, after setup_cuda() has
 * gathered what nvidia-smi and the probe say. */
static void
setup_nvidia(void)
{
  char err[512], version[64];

  if (boot.has_manifest && boot.manifest.nvidia_driver && !boot.nvidia_version)
    boot.nvidia_version = boot.manifest.nvidia_driver;
  if (!boot.nvidia_version || !cmdline.gpu)
    return;
  if (gi_read_file("/sys/module/nvidia/version", version, sizeof(version), NULL) > 0) {
    version[strcspn(version, "\n")] = '\0';
    snprintf(boot.driver_version, sizeof(boot.driver_version), "%s", version);
  }
  if (!boot.modules.nvidia_staged) {
    gi_warn("%s names NVIDIA driver %s but stages no nvidia.ko; no GPU set-up", GI_MANIFEST_PATH,
            boot.nvidia_version);
    return;
  }
  boot.has_nvidia = true;
  if (boot.modules.nvidia_error[0] != '\0') {
    if (!boot.has_layer)
      fatal_gpu(boot.modules.nvidia_error, NULL, "nvidia.ko", boot.modules.nvidia_error);
    return;
  }
  if (gi_nvidia_create_nodes(boot.modules.nvidia_modeset, &boot.nvidia, err, sizeof(err)) < 0)
    fatal("NVIDIA set-up: %s", err);
  if (!boot.has_layer) {
    GiHelpers h = { .root = NULL, .bin_dir = "/usr/bin", .envp = NULL, .nvswitches = count_nvswitches() };

    gi_nvidia_start_helpers(&h, &boot.nvidia);
  }
  add_timing("gpu");
}

/* With the driver layer in the root: nvidia-persistenced and nvidia-smi -L
 * from the layer, then the CUDA probe, all chroot()ed in the root with the
 * layer's environment. Ready only when every GPU passed; otherwise
 * fatal_gpu() with the details. */
static void
setup_cuda(void)
{
  static GiCudaProbe probe;
  char bdfs[GI_GPU_MAX][GI_GPU_BDF_SIZE], err[512], error[512];
  const char *req[GI_GPU_MAX];
  GiHelpers h = { .root = NEWROOT, .bin_dir = GI_LAYER_BIN_DIR, .envp = layer_env(false),
                  .nvswitches = count_nvswitches() };
  size_t n_req, n_results = 0;
  int failed, r;

  if (!boot.has_layer || !boot.has_nvidia)
    return;
  gi_nvidia_start_helpers(&h, &boot.nvidia);
  add_timing("helpers");
  r = gi_cuda_probe_run(NEWROOT, layer_env(false), PROBE_TIMEOUT_MS, &probe, err, sizeof(err));
  if (r < 0)
    fatal_gpu(boot.modules.nvidia_error[0] != '\0' ? boot.modules.nvidia_error : err, NULL, "probe", err);
  if (boot.modules.nvidia_error[0] != '\0')
    fatal_gpu(boot.modules.nvidia_error, &probe, NULL, NULL);

  n_req = requested_gpus(bdfs);
  for (size_t i = 0; i < n_req; i++)
    req[i] = bdfs[i];
  failed = gi_gpu_verdict(req, n_req, &probe, NULL, NULL, boot.gpu_results, GI_GPU_MAX, &n_results);
  if (failed != 0) {
    const GiGpuResult *first = NULL;

    for (size_t i = 0; i < n_results && !first; i++)
      if (!boot.gpu_results[i].ok)
        first = &boot.gpu_results[i];
    if (failed < 0 || !first)
      snprintf(error, sizeof(error), "GPU not ready: more than %d GPUs", GI_GPU_MAX);
    else
      snprintf(error, sizeof(error), "GPU not ready: %s: %s: %s%s", first->bdf, first->call, first->error,
               failed > 1 ? " (and others)" : "");
    fatal_gpu(error, &probe, NULL, NULL);
  }
  boot.cuda = (GiCudaReport) {
    .version = probe.version,
    .probe_ran = true,
    .error = NULL,
    .driver = boot.driver_version[0] != '\0' ? boot.driver_version : boot.nvidia_version,
    .gpus = boot.gpu_results,
    .n_gpus = n_results,
  };
  boot.has_cuda = true;
  add_timing("cuda");
}

/* The network set-up runs on its own thread (issue 17): the loopback at
 * once, the rest once the modules it may need are in (network_go(): every
 * non-NVIDIA module of the manifest loaded), while the NVIDIA modules, the
 * driver layer and the GPU set-up go on. Its failure is reported (fatally)
 * by the main thread in setup_network_finish(), with the same messages as
 * when it ran in line. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  bool started;
  bool go;
  int r;             /* 0, or -errno of the step that failed */
  bool resolv;       /* the failure was writing resolv.conf */
  bool has_net;
  char err[512];
} net_job = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void
network_go(void *unused)
{
  pthread_mutex_lock(&net_job.lock);
  net_job.go = true;
  pthread_cond_broadcast(&net_job.cond);
  pthread_mutex_unlock(&net_job.lock);
}

static void *
network_work(void *unused)
{
  int r = gi_net_loopback_up(net_job.err, sizeof(net_job.err));

  if (r < 0) {
    net_job.r = r;
    return NULL;
  }
  pthread_mutex_lock(&net_job.lock);
  while (!net_job.go)
    pthread_cond_wait(&net_job.cond, &net_job.lock);
  pthread_mutex_unlock(&net_job.lock);
  if (cmdline.has_ip) {
    r = gi_net_configure(&cmdline, &boot.net, net_job.err, sizeof(net_job.err));
    if (r < 0) {
      net_job.r = r;
      return NULL;
    }
    net_job.has_net = true;
  }
  if (cmdline.n_dns > 0) {
    r = gi_mkdir_p("/etc", 0755);
    if (r == 0)
      r = gi_net_write_resolv_conf(GUEST_RESOLV_CONF, &cmdline);
    if (r < 0) {
      net_job.r = r;
      net_job.resolv = true;
    }
  }
  return NULL;
}

/* Starts the network thread (before the modules load). */
static void
setup_network_start(void)
{
  net_job.started = pthread_create(&net_job.thread, NULL, network_work, NULL) == 0;
  if (!net_job.started)
    gi_warn("cannot start the network set-up thread; it runs after the modules");
}

/* Waits for the network set-up (runs it here when its thread did not
 * start); a failure is fatal, as before. */
static void
setup_network_finish(void)
{
  network_go(NULL); /* no manifest, or only NVIDIA modules: nothing to wait for */
  if (net_job.started)
    pthread_join(net_job.thread, NULL);
  else
    network_work(NULL);
  if (net_job.r < 0 && net_job.resolv)
    fatal("write %s: %s", GUEST_RESOLV_CONF, strerror(-net_job.r));
  if (net_job.r < 0)
    fatal("network: %s", net_job.err);
  boot.has_net = net_job.has_net;
}

/* Gives the workload the name servers in the new root: bind-mounts our
 * resolv.conf over its own, or writes one where there is none. Not fatal:
 * the workload may not need DNS. */
static void
root_resolv_conf(void)
{
  static const char path[] = NEWROOT GUEST_RESOLV_CONF;
  struct stat st;
  int r;

  if (lstat(path, &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      gi_warn("%s is not a regular file (a symlink?): left alone, vfiod.dns not applied there", path);
      return;
    }
    if (mount(GUEST_RESOLV_CONF, path, NULL, MS_BIND, NULL) < 0)
      gi_warn("bind-mount %s on %s: %s", GUEST_RESOLV_CONF, path, strerror(errno));
    return;
  }
  r = gi_net_write_resolv_conf(path, &cmdline);
  if (r < 0)
    gi_warn("write %s: %s", path, strerror(-r));
}

/* vfiod.root=: waits for the block device, mounts it on NEWROOT and
 * bind-mounts /dev, /proc, /sys, /run and /tmp into it. The workload is
 * chroot()ed there; guest-init itself stays in the initramfs (see README). */
/* Waits (until @deadline, gi_now_ms()) for the block device @spec
 * (vfiod.root= or vfiod.overlay=; @what names it) and puts its node's path
 * in @dev. Stops (VFIOD_FATAL) when it does not appear. */
static void
wait_disk(const char *what, const char *spec, uint64_t deadline, char *dev, size_t dev_size)
{
  struct stat st;
  int r;

  /* virtio:SERIAL: the disk with that serial, whatever vdX the kernel
   * named it (protocol.h, "disks") */
  while ((r = gi_disk_resolve(spec, GI_SYS_BLOCK, dev, dev_size)) < 0 || stat(dev, &st) < 0 || !S_ISBLK(st.st_mode)) {
    if (r == -EINVAL || r == -ENAMETOOLONG)
      fatal("%s device %s: %s", what, spec, strerror(-r));
    if (gi_now_ms() >= deadline)
      fatal("%s device %s did not appear within %d ms (is its driver module staged?)", what, spec, ROOT_WAIT_MS);
    usleep(50 * 1000);
  }
}

/* Links every virtio disk with a serial as VFIOD_DISK_BY_ID_DIR/virtio-SERIAL
 * (udev's name), so that the workload finds its data disks (vfiod-dataN)
 * by name. Problems are warnings: the disks stay usable by vdX. */
static void
link_disks_by_id(void)
{
  DIR *dir = opendir(GI_SYS_BLOCK);
  struct dirent *de;

  if (!dir)
    return;
  if (mkdir("/dev/disk", 0755) < 0 && errno != EEXIST)
    gi_warn("mkdir /dev/disk: %s", strerror(errno));
  if (mkdir(VFIOD_DISK_BY_ID_DIR, 0755) < 0 && errno != EEXIST)
    gi_warn("mkdir %s: %s", VFIOD_DISK_BY_ID_DIR, strerror(errno));
  while ((de = readdir(dir))) {
    char path[PATH_MAX], serial[VFIOD_DISK_SERIAL_MAX + 2], link[PATH_MAX], target[PATH_MAX];
    ssize_t n;
    int fd;

    if (strncmp(de->d_name, "vd", 2) != 0)
      continue;
    snprintf(path, sizeof(path), GI_SYS_BLOCK "/%s/serial", de->d_name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
      continue;
    n = read(fd, serial, sizeof(serial) - 1);
    close(fd);
    if (n <= 0)
      continue;
    serial[n] = '\0';
    serial[strcspn(serial, "\n")] = '\0';
    if (!vfiod_disk_serial_valid(serial))
      continue;
    snprintf(link, sizeof(link), VFIOD_DISK_BY_ID_DIR "/virtio-%s", serial);
    snprintf(target, sizeof(target), "../../%s", de->d_name);
    if (symlink(target, link) < 0 && errno != EEXIST)
      gi_warn("symlink %s: %s", link, strerror(errno));
  }
  closedir(dir);
}

/* Mounts the overlay (vfiod.overlay=) on NEWROOT: the root, mounted
 * read-only on OVERLAY_LOWER, is its lower layer; the upper and work
 * directories are on a tmpfs or on the overlay disk (ext4) mounted on
 * OVERLAY_STORE, made when missing (a StartSandbox finds the disk's). */
static void
mount_overlay(uint64_t deadline)
{
  char opts[256];
  const char *fstype = "tmpfs";

  if (strcmp(cmdline.overlay, VFIOD_OVERLAY_TMPFS) == 0) {
    if (mount("tmpfs", OVERLAY_STORE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
      fatal("mount a tmpfs on %s: %s", OVERLAY_STORE, strerror(errno));
  } else {
    char dev[PATH_MAX];

    fstype = "ext4";
    wait_disk("overlay", cmdline.overlay, deadline, dev, sizeof(dev));
    if (mount(dev, OVERLAY_STORE, fstype, MS_NOSUID | MS_NODEV, NULL) < 0)
      fatal("mount the overlay disk %s (%s, %s) on %s: %s", dev, cmdline.overlay, fstype, OVERLAY_STORE,
            strerror(errno));
  }
  if ((mkdir(OVERLAY_STORE "/" VFIOD_OVERLAY_UPPER, 0755) < 0 && errno != EEXIST) ||
      (mkdir(OVERLAY_STORE "/" VFIOD_OVERLAY_WORK, 0755) < 0 && errno != EEXIST))
    fatal("mkdir the overlay's directories in %s (%s): %s", OVERLAY_STORE, fstype, strerror(errno));
  snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", OVERLAY_LOWER,
           OVERLAY_STORE "/" VFIOD_OVERLAY_UPPER, OVERLAY_STORE "/" VFIOD_OVERLAY_WORK);
  if (mount("overlay", NEWROOT, "overlay", 0, opts) < 0)
    fatal("mount the overlay (%s) on %s: %s (is the overlay module staged?)", opts, NEWROOT, strerror(errno));
}

static void
setup_root(void)
{
  static const char *const binds[] = { "/dev", "/proc", "/sys", "/run", "/tmp" };
  uint64_t deadline = gi_now_ms() + ROOT_WAIT_MS;
  unsigned long flags = cmdline.root_ro ? MS_RDONLY : 0;
  const char *at = cmdline.overlay[0] != '\0' ? OVERLAY_LOWER : NEWROOT;

  if (cmdline.root[0] == '\0')
    return;
  wait_disk("root", cmdline.root, deadline, root_dev, sizeof(root_dev));
  link_disks_by_id();
  if (mkdir(NEWROOT, 0755) < 0 && errno != EEXIST)
    fatal("mkdir %s: %s", NEWROOT, strerror(errno));
  if (cmdline.overlay[0] != '\0' &&
      ((mkdir(OVERLAY_LOWER, 0755) < 0 && errno != EEXIST) || (mkdir(OVERLAY_STORE, 0755) < 0 && errno != EEXIST)))
    fatal("mkdir %s, %s: %s", OVERLAY_LOWER, OVERLAY_STORE, strerror(errno));
  if (mount(root_dev, at, cmdline.rootfstype, flags, NULL) < 0)
    fatal("mount %s (%s, %s) on %s: %s", root_dev, cmdline.root, cmdline.rootfstype, at, strerror(errno));
  if (cmdline.overlay[0] != '\0')
    mount_overlay(deadline);
  for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
    char target[64];

    snprintf(target, sizeof(target), NEWROOT "%s", binds[i]);
    if (mkdir(target, 0755) < 0 && errno != EEXIST)
      fatal("mkdir %s: %s", target, strerror(errno));
    if (mount(binds[i], target, NULL, MS_BIND | MS_REC, NULL) < 0)
      fatal("bind-mount %s on %s: %s", binds[i], target, strerror(errno));
  }
  if (cmdline.n_dns > 0)
    root_resolv_conf();
  add_timing("root");
}

static void
print_ready(const char *pci_root)
{
  const char *nodes[GI_MAX_NVIDIA_NODES], *gpus[GI_MAX_GPUS];
  const char *smi_output[GI_MAX_SMI_OUTPUT];
  const char *dns[GI_CMDLINE_MAX_DNS];
  GiPciDevice *devices = NULL;
  size_t len;
  char report[32];
  GiReady r = { 0 };
  char *line;
  int e;

  if (cmdline.report == GI_REPORT_VSOCK)
    snprintf(report, sizeof(report), "vsock:%u", cmdline.report_port);
  else
    snprintf(report, sizeof(report), "console");

  for (size_t i = 0; i < boot.nvidia.n_nodes; i++)
    nodes[i] = boot.nvidia.nodes[i];
  for (size_t i = 0; i < boot.nvidia.n_gpus; i++)
    gpus[i] = boot.nvidia.gpus[i];
  for (size_t i = 0; i < boot.nvidia.n_smi_output; i++)
    smi_output[i] = boot.nvidia.smi_output[i];
  for (size_t i = 0; i < cmdline.n_dns; i++)
    dns[i] = cmdline.dns[i];

  add_timing("ready");
  e = report_context(&r, pci_root, &devices);
  if (e < 0)
    fatal("cannot list PCI devices in %s: %s", pci_root, strerror(-e));
  r.report = report;
  if (boot.has_nvidia) {
    r.nvidia_driver = boot.nvidia_version;
    r.nvidia_nodes = nodes;
    r.n_nvidia_nodes = boot.nvidia.n_nodes;
    r.persistenced = boot.nvidia.persistenced;
    r.fabricmanager = boot.nvidia.fabricmanager[0] != '\0' ? boot.nvidia.fabricmanager : NULL;
    r.smi = boot.nvidia.smi;
    r.gpus = gpus;
    r.n_gpus = boot.nvidia.n_gpus;
    r.smi_output = smi_output;
    r.n_smi_output = boot.nvidia.n_smi_output;
  }
  if (boot.has_cuda)
    r.cuda = &boot.cuda;
  if (boot.has_net) {
    r.net_if = boot.net.ifname;
    r.net_mac = boot.net.mac[0] != '\0' ? boot.net.mac : NULL;
    r.net_ip = boot.net.ip;
    r.net_gw = cmdline.gw[0] != '\0' ? cmdline.gw : NULL;
    r.dns = dns;
    r.n_dns = cmdline.n_dns;
  }
  r.workload = wl_cmd;

  len = gi_format_ready(NULL, 0, &r);
  line = malloc(len + 2);
  if (!line)
    fatal("out of memory formatting the ready line");
  gi_format_ready(line + 1, len + 1, &r);
  emit_line(line, len + 2, len);
  send_to_host(line + 1, len, "VFIOD_READY", REPORT_ATTEMPTS);
  free(line);
  free(devices);
}

/* Opens every evdev device under GUEST_INPUT_ROOT whose name contains
 * "Power Button" (the ACPI button driver's devices) into @fds. Returns how
 * many. Without the `button` and `evdev` modules there are none. */
static size_t
open_power_buttons(int *fds, size_t max)
{
  size_t n = 0;
  struct dirent *de;
  DIR *d = opendir(GUEST_INPUT_ROOT);

  if (!d)
    return 0;
  while (n < max && (de = readdir(d)) != NULL) {
    char name[256] = "";
    int fd;

    if (strncmp(de->d_name, "event", 5) != 0)
      continue;
    fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
      continue;
    if (ioctl(fd, EVIOCGNAME(sizeof(name) - 1), name) < 0 || !strstr(name, "Power Button")) {
      close(fd);
      continue;
    }
    fds[n++] = fd;
  }
  closedir(d);
  return n;
}

static const char *
signal_name(int sig)
{
  switch (sig) {
  case SIGTERM:
    return "signal:SIGTERM";
  case SIGINT:
    return "signal:SIGINT";
  case SIGHUP:
    return "signal:SIGHUP";
  case SIGPWR:
    return "signal:SIGPWR";
  case SIGUSR1:
    return "signal:SIGUSR1";
  case SIGUSR2:
    return "signal:SIGUSR2";
  default:
    return "signal:unknown";
  }
}

/* Reaps every child that has exited, without blocking. The workload's
 * status is kept; the others are counted. */
static void
reap_children(void)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);

    if (pid <= 0)
      return;
    if (workload.pid > 0 && pid == workload.pid && !workload.done) {
      workload.done = true;
      workload.status = status;
      workload.ended_ms = gi_now_ms();
    } else {
      n_reaped++;
    }
  }
}

/* Counts the processes that are left: as PID 1, every user-space process but
 * ourselves; in --test mode, our own children. *@ret_zombies (may be NULL):
 * how many of those are zombies (they are not in the return value). */
static unsigned
count_processes(unsigned *ret_zombies)
{
  unsigned alive = 0, zombies = 0;
  pid_t self = getpid();
  struct dirent *de;
  DIR *d = opendir("/proc");

  if (!d) {
    gi_warn("cannot list /proc: %s", strerror(errno));
    if (ret_zombies)
      *ret_zombies = 0;
    return 0;
  }
  while ((de = readdir(d)) != NULL) {
    char path[64], text[1024];
    GiProcStat st;
    char *end;
    long pid = strtol(de->d_name, &end, 10);

    if (*end != '\0' || pid <= 0 || pid == self)
      continue;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (gi_read_file(path, text, sizeof(text), NULL) < 0 || gi_proc_stat_parse(text, &st) < 0)
      continue;  /* gone meanwhile */
    if (!gi_proc_stat_is_user(&st) || (test_mode && st.ppid != self))
      continue;
    if (st.state == 'Z' || st.state == 'X')
      zombies++;
    else
      alive++;
  }
  closedir(d);
  if (ret_zombies)
    *ret_zombies = zombies;
  return alive;
}

/* Sends @sig to what count_processes() counts: kill(-1) as PID 1 (every
 * process but us), our children one by one in --test mode. */
static void
signal_leftovers(int sig)
{
  struct dirent *de;
  DIR *d;

  if (!test_mode) {
    kill(-1, sig);
    return;
  }
  d = opendir("/proc");
  if (!d)
    return;
  while ((de = readdir(d)) != NULL) {
    char path[64], text[1024];
    GiProcStat st;
    char *end;
    long pid = strtol(de->d_name, &end, 10);

    if (*end != '\0' || pid <= 0)
      continue;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (gi_read_file(path, text, sizeof(text), NULL) < 0 || gi_proc_stat_parse(text, &st) < 0)
      continue;
    if (st.ppid == getpid())
      kill((pid_t) pid, sig);
  }
  closedir(d);
}

/* Drains the signalfd without acting on anything but SIGCHLD (reaping). */
static void
drain_signals(int sfd)
{
  struct signalfd_siginfo si;

  while (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
    ;
  reap_children();
}

/* Reaps until no process is left or @ms have passed. Returns how many are
 * left. */
static unsigned
wait_for_leftovers(int sfd, int ms)
{
  uint64_t deadline = gi_now_ms() + (uint64_t) ms;
  unsigned left;

  for (;;) {
    struct pollfd pfd = { .fd = sfd, .events = POLLIN };
    uint64_t now;

    reap_children();
    left = count_processes(NULL);
    now = gi_now_ms();
    if (left == 0 || now >= deadline)
      return left;
    /* SIGCHLD wakes us; /proc is looked at again every 50 ms anyway, for
     * processes that are not our children yet. */
    (void) poll(&pfd, 1, deadline - now < 50 ? (int) (deadline - now) : 50);
    drain_signals(sfd);
  }
}

/* The workload has exited: SIGTERM to everything left (with SIGCONT, for
 * stopped processes), SIGKILL after CLEANUP_TERM_MS, reap all, report, power
 * off. */
static void __attribute__((noreturn))
finish_workload(int sfd)
{
  GiExit e = { 0 };
  char line[512];
  size_t len;

  /* nvidia-persistenced first, by its own SIGTERM: it is guest-init's, not
   * the workload's leftover. */
  stop_persistenced();
  reap_children();
  e.killed = count_processes(NULL);
  if (e.killed > 0) {
    signal_leftovers(SIGTERM);
    signal_leftovers(SIGCONT);
    e.sigkilled = wait_for_leftovers(sfd, CLEANUP_TERM_MS);
    if (e.sigkilled > 0) {
      signal_leftovers(SIGKILL);
      (void) wait_for_leftovers(sfd, CLEANUP_KILL_MS);
    }
  }
  reap_children();
  e.left = count_processes(&e.zombies);

  if (WIFEXITED(workload.status)) {
    e.status = WEXITSTATUS(workload.status);
  } else if (WIFSIGNALED(workload.status)) {
    e.signal = WTERMSIG(workload.status);
    e.status = 128 + e.signal;
  }
  if (workload.stop_reason)
    e.reason = workload.stop_reason;
  else if (workload.forwarded)
    e.reason = signal_name(workload.forwarded);
  else
    e.reason = "exit";
  e.runtime_ms = workload.ended_ms - workload.started_ms;
  e.reaped = n_reaped;

  len = gi_format_exit(line + 1, sizeof(line) - 1, &e);
  emit_line(line, sizeof(line), len);
  if (len < sizeof(line) - 1)
    send_to_host(line + 1, len, "VFIOD_EXIT", REPORT_ATTEMPTS);
  power_off_because(workload.stop_reason ? workload.stop_reason : "workload-exit", e.status);
}

/* Before the ready report: the workload must be an executable file (in the
 * root file system with vfiod.root), or the sandbox is not ready. execve()
 * can still fail (e.g. a missing ELF interpreter): start_workload() says so. */
static void
check_workload(void)
{
  char path[sizeof(NEWROOT) + VFIOD_PAYLOAD_MAX_PATH + 1];
  struct stat st;

  snprintf(path, sizeof(path), "%s%s", cmdline.root[0] != '\0' ? NEWROOT : "", wl_cmd);
  if (stat(path, &st) < 0)
    fatal("workload %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
    fatal("workload %s: not an executable file", path);
}

static void
start_workload(void)
{
  static char *argv[VFIOD_PAYLOAD_MAX_ARGS + 2];
  pid_t pid;

  argv[0] = (char *) wl_cmd;
  for (size_t i = 0; i < wl_n_args; i++)
    argv[1 + i] = (char *) wl_args[i];
  argv[1 + wl_n_args] = NULL;

  if (test_mode && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
    gi_warn("PR_SET_CHILD_SUBREAPER: %s; orphans will not come back to us", strerror(errno));
  /* The clean environment with vfiod.env= entries added or replacing, and
   * with the driver layer in the root, its directories first in PATH and
   * LD_LIBRARY_PATH. */
  gi_spawn_env = layer_env(true);
  workload.started_ms = gi_now_ms();
  pid = gi_spawn(argv, cmdline.root[0] != '\0' ? NEWROOT : NULL, -1);
  gi_spawn_env = gi_clean_env;
  if (pid < 0)
    fatal("start workload %s%s: %s", cmdline.root[0] != '\0' ? NEWROOT : "", wl_cmd, strerror(-pid));
  workload.pid = pid;
  if (cmdline.timeout_s > 0)
    workload.timeout_at = workload.started_ms + (uint64_t) cmdline.timeout_s * 1000;
}

/* Asks the workload to stop: SIGTERM to its process group now, SIGKILL after
 * STOP_GRACE_MS. The first reason given is the one reported. */
static void
stop_workload(const char *reason)
{
  if (!workload.stop_reason)
    workload.stop_reason = reason;
  kill(-workload.pid, SIGTERM);
  kill(-workload.pid, SIGCONT);
  if (workload.kill_at == 0)
    workload.kill_at = gi_now_ms() + STOP_GRACE_MS;
}

static bool
workload_running(void)
{
  return workload.pid > 0 && !workload.done;
}

/* Drains the signalfd. Without a workload, termination signals power off;
 * with one, SIGTERM/SIGINT/SIGHUP are forwarded to its process group and
 * SIGPWR/SIGUSR1/SIGUSR2 stop it (SIGTERM, then SIGKILL). */
static void
handle_signals(int sfd)
{
  struct signalfd_siginfo si;

  while (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
    int sig = (int) si.ssi_signo;

    if (sig == SIGCHLD) {
      reap_children();
      continue;
    }
    if (workload_running()) {
      if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
        kill(-workload.pid, sig);
        workload.forwarded = sig;
      } else {
        stop_workload(signal_name(sig));
      }
      continue;
    }
    if (workload.pid > 0)
      continue;  /* it has ended: the exit report is on its way */
    if (sig == SIGHUP) {
      gi_warn("SIGHUP without a workload: ignored");
      continue;
    }
    power_off_because(signal_name(sig), 0);
  }
}

/* Drains an evdev fd. Returns -errno when the device is gone (stop polling
 * it), 1 on a KEY_POWER press, 0 otherwise. */
static int
handle_button(int fd)
{
  struct input_event ev[16];
  bool pressed = false;
  ssize_t n;

  while ((n = read(fd, ev, sizeof(ev))) > 0)
    for (size_t i = 0; i < (size_t) n / sizeof(ev[0]); i++)
      if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
        pressed = true;
  if (n < 0 && errno != EAGAIN && errno != EINTR)
    return -errno;
  return pressed ? 1 : 0;
}

/* Milliseconds until the next workload deadline, or -1 for none. */
static int
next_timeout(void)
{
  uint64_t now = gi_now_ms(), next = 0;

  if (!workload_running())
    return -1;
  if (workload.kill_at)
    next = workload.kill_at;
  if (workload.timeout_at && (!next || workload.timeout_at < next))
    next = workload.timeout_at;
  if (!next)
    return -1;
  return next <= now ? 0 : (next - now > 60000 ? 60000 : (int) (next - now));
}

static void
check_deadlines(void)
{
  uint64_t now = gi_now_ms();

  if (!workload_running())
    return;
  if (workload.kill_at && now >= workload.kill_at) {
    gi_warn("workload did not stop within %d ms of SIGTERM: SIGKILL", STOP_GRACE_MS);
    kill(-workload.pid, SIGKILL);
    workload.kill_at = 0;
  }
  if (workload.timeout_at && now >= workload.timeout_at) {
    gi_warn("workload ran past vfiod.timeout=%u: stopping it", cmdline.timeout_s);
    workload.timeout_at = 0;
    stop_workload("timeout");
  }
}

/* The PID 1 loop, watching the signalfd and the power buttons (@buttons,
 * opened before the ready report so that no press after it is missed).
 * Never returns. */
static void __attribute__((noreturn))
run_loop(int sfd, const int *buttons, size_t n_buttons)
{
  struct pollfd pfds[1 + MAX_POWER_BUTTONS];

  pfds[0] = (struct pollfd) { .fd = sfd, .events = POLLIN };
  for (size_t i = 0; i < n_buttons; i++)
    pfds[1 + i] = (struct pollfd) { .fd = buttons[i], .events = POLLIN };

  /* A child may have exited before the signalfd existed. */
  reap_children();
  for (;;) {
    if (workload.done)
      finish_workload(sfd);
    if (poll(pfds, 1 + n_buttons, next_timeout()) < 0) {
      if (errno == EINTR)
        continue;
      fatal("poll: %s", strerror(errno));
    }
    check_deadlines();
    if (pfds[0].revents & POLLIN)
      handle_signals(sfd);
    for (size_t i = 0; i < n_buttons; i++) {
      int r;

      if (pfds[1 + i].revents == 0)
        continue;
      r = (pfds[1 + i].revents & (POLLERR | POLLHUP | POLLNVAL)) ? -ENODEV : handle_button(pfds[1 + i].fd);
      if (r < 0) {
        gi_warn("power button device went away; no longer watching it");
        close(pfds[1 + i].fd);
        pfds[1 + i].fd = -1;  /* poll() ignores negative fds */
      } else if (r > 0) {
        if (workload_running())
          stop_workload("power-button");
        else if (workload.pid == 0)
          power_off_because("power-button", 0);
      }
    }
  }
}

static void
usage(FILE *f)
{
  fprintf(f,
          "Usage: guest-init                       (as the guest's PID 1)\n"
          "       guest-init --test [--cmdline STRING] [--pci-root DIR] [--payload FILE]\n"
          "                         [--files-root DIR]\n"
          "\n"
          "--test runs as an ordinary process: no mounts, modules, network or\n"
          "power-off; prints the ready line, runs vfiod.cmd if given (as a child\n"
          "subreaper), then waits for it or for SIGTERM/SIGINT/SIGPWR/SIGUSR1/SIGUSR2\n"
          "and exits after printing the power-off line (with the workload's status).\n"
          "--payload reads the workload's payload (guest-init/payload.h) from FILE\n"
          "instead of fw_cfg (the line must say vfiod.payload=BYTES); its files go\n"
          "under --files-root.\n");
}

int
main(int argc, char **argv)
{
  static const struct option options[] = {
    { "test", no_argument, NULL, 't' },
    { "cmdline", required_argument, NULL, 'c' },
    { "pci-root", required_argument, NULL, 'p' },
    { "payload", required_argument, NULL, 'P' },
    { "files-root", required_argument, NULL, 'F' },
    { "help", no_argument, NULL, 'h' },
    { 0 },
  };
  static char cmdline_buf[CMDLINE_BUF_SIZE];
  const char *cmdline_arg = NULL, *pci_root = GUEST_PCI_ROOT, *payload_arg = NULL;
  int buttons[MAX_POWER_BUTTONS];
  size_t n_buttons = 0;
  sigset_t all, wanted;
  int opt, sfd;

  /* Before anything else: no signal may kill or interrupt PID 1. Blocked
   * signals are still queued for PID 1 and read from the signalfd. */
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  add_timing("init_start");

  /* As PID 1, argv holds whatever the kernel passed on (command line words
   * it did not know): never parse it, never exit. */
  if (getpid() == 1)
    argc = 1;
  while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
    switch (opt) {
    case 't':
      test_mode = true;
      break;
    case 'c':
      cmdline_arg = optarg;
      break;
    case 'p':
      pci_root = optarg;
      break;
    case 'P':
      payload_arg = optarg;
      break;
    case 'F':
      files_root = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (getpid() != 1 && !test_mode) {
    fprintf(stderr, "guest-init: not PID 1: this is the guest VM's init; use --test to try it\n");
    return 2;
  }

  if (!test_mode)
    setup_pid1();
  add_timing("mounts");

  sigemptyset(&wanted);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGHUP);
  sigaddset(&wanted, SIGPWR);
  sigaddset(&wanted, SIGUSR1);
  sigaddset(&wanted, SIGUSR2);
  sigaddset(&wanted, SIGCHLD);
  sfd = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0)
    fatal("signalfd: %s", strerror(errno));

  if (!cmdline_arg) {
    bool truncated;
    ssize_t n = gi_read_file(GUEST_CMDLINE_PATH, cmdline_buf, sizeof(cmdline_buf), &truncated);

    if (n < 0)
      fatal("cannot read %s: %s", GUEST_CMDLINE_PATH, strerror((int) -n));
    if (truncated)
      gi_warn("%s longer than %d bytes; the rest is ignored", GUEST_CMDLINE_PATH, CMDLINE_BUF_SIZE - 1);
    cmdline_arg = cmdline_buf;
  }
  gi_cmdline_parse(cmdline_arg, &cmdline);
  report_cmdline_problems();

  if (!test_mode) {
    setup_network_start();
    setup_modules();
    add_timing("modules");
    load_payload(NULL);
    choose_workload();
    setup_driver_layer();
    setup_nvidia();
    setup_network_finish();
    add_timing("network");
    setup_root();
    write_payload_files();
    setup_cuda();
  } else {
    if (payload_arg)
      load_payload(payload_arg);
    else if (cmdline.payload_size > 0)
      fatal("vfiod.payload= in --test mode needs --payload FILE");
    choose_workload();
    write_payload_files();
  }

  if (!test_mode) {
    n_buttons = open_power_buttons(buttons, MAX_POWER_BUTTONS);
    if (n_buttons == 0)
      gi_warn("no ACPI power button input device (modules button, evdev not loaded?); "
              "powering off on signals only");
  }

  if (wl_cmd)
    check_workload();
  print_ready(pci_root);
  if (wl_cmd)
    start_workload();
  run_loop(sfd, buttons, n_buttons);
}
