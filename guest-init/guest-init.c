/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init: the sandbox guest's PID 1. Static, libc only.
 *
 * Mounts /dev (devtmpfs), /proc and /sys, reads the vfiod.* keys of the
 * kernel command line, prints one VFIOD_READY line listing the PCI functions
 * it sees, then waits for a termination signal or an ACPI power button press
 * and powers the VM off. It never returns from main(). The console protocol
 * is described in guest-init/README.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "report.h"

/* The guest's own sysfs, devtmpfs and procfs; guest-init only reads them.
 * (In --test mode on a development machine, --pci-root can point elsewhere.) */
#define GUEST_PCI_ROOT "/sys/bus/pci/devices"
#define GUEST_INPUT_ROOT "/dev/input"
#define GUEST_CMDLINE_PATH "/proc/cmdline"

#define CMDLINE_BUF_SIZE 16384      /* x86 COMMAND_LINE_SIZE is 2048 */
#define MAX_POWER_BUTTONS 8

/* --test: run as an ordinary process (no mounts, no reboot; exits instead of
 * powering off). For trying guest-init on a development machine. */
static bool test_mode;

/* Writes all of @buf to @fd in as few write(2) calls as possible (one, for a
 * console line, so that kernel messages do not cut it). Errors are dropped:
 * there is nowhere else to report them. */
static void
write_all(int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    buf += n;
    len -= (size_t) n;
  }
}

static void __attribute__((format(printf, 1, 2)))
warn(const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  int n;

  /* Leading newline: see emit_line(). */
  n = snprintf(buf, sizeof(buf), "\nguest-init: warning: ");
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof(buf) - (size_t) n, fmt, ap);
  va_end(ap);
  if ((size_t) n >= sizeof(buf) - 1)
    n = sizeof(buf) - 2;
  buf[n++] = '\n';
  write_all(STDERR_FILENO, buf, (size_t) n);
}

/* Console lines: a formatter from report.h writes into @buf + 1, and the
 * line goes out with a newline in front, in one write(2). The newline makes
 * it start at column 0 even after firmware output without a final newline
 * (SeaBIOS leaves terminal escapes there). @len: the formatter's result. */
static void
emit_line(char *buf, size_t size, size_t len)
{
  buf[0] = '\n';
  write_all(STDOUT_FILENO, buf, 1 + (len < size - 1 ? len : size - 2));
}

static void __attribute__((noreturn))
power_off(void)
{
  sync();
  if (test_mode)
    exit(0);
  reboot(RB_POWER_OFF);
  warn("reboot(RB_POWER_OFF) failed: %s; halting here", strerror(errno));
  for (;;)
    sleep(3600);
}

static void __attribute__((noreturn))
power_off_because(const char *reason)
{
  char line[256];

  emit_line(line, sizeof(line), gi_format_poweroff(line + 1, sizeof(line) - 1, reason));
  power_off();
}

/* Prints VFIOD_FATAL with the formatted message and powers off (in --test
 * mode: exits 1). */
static void __attribute__((noreturn, format(printf, 1, 2)))
fatal(const char *fmt, ...)
{
  char msg[512], line[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  emit_line(line, sizeof(line), gi_format_fatal(line + 1, sizeof(line) - 1, msg));
  if (test_mode)
    exit(1);
  power_off();
}

/* True when something is mounted on @dir (a directory directly below "/"):
 * it is then on another device than "/". */
static bool
is_mountpoint(const char *dir)
{
  struct stat st, root;

  return stat(dir, &st) == 0 && stat("/", &root) == 0 && st.st_dev != root.st_dev;
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

static void
setup_pid1(void)
{
  int r;

  /* Ctrl-Alt-Del becomes SIGINT to us instead of an immediate reboot. */
  if (reboot(RB_DISABLE_CAD) < 0)
    warn("reboot(RB_DISABLE_CAD) failed: %s", strerror(errno));

  /* /dev first, so that a console exists for the error messages. */
  r = mount_fs("devtmpfs", "/dev", MS_NOSUID, "mode=0755");
  /* Best effort: without a console there is nowhere to say it failed. */
  (void) setup_console();
  if (r < 0)
    fatal("mount devtmpfs on /dev: %s", strerror(-r));
  r = mount_fs("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (r < 0)
    fatal("mount proc on /proc: %s", strerror(-r));
  r = mount_fs("sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (r < 0)
    fatal("mount sysfs on /sys: %s", strerror(-r));
}

/* Reads @path into @buf (NUL-terminated, at most @size - 1 bytes). Returns
 * the length, or -errno. *@truncated says whether the file was longer. */
static ssize_t
read_file(const char *path, char *buf, size_t size, bool *truncated)
{
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  *truncated = false;
  for (;;) {
    ssize_t n;
    char extra;

    if (len == size - 1) {
      n = read(fd, &extra, 1);
      *truncated = n > 0;
      break;
    }
    n = read(fd, buf + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0)
      break;
    len += (size_t) n;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t) len;
}

/* Parses a sysfs ID attribute ("0x10de\n") into @ret. Returns 0 or -EINVAL. */
static int
parse_id(const char *s, uint16_t *ret)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 16);
  if (errno != 0 || end == s || v > 0xffff || (*end != '\0' && *end != '\n'))
    return -EINVAL;
  *ret = (uint16_t) v;
  return 0;
}

static int
read_id(const char *root, const char *bdf, const char *attr, uint16_t *ret)
{
  char path[512], buf[32];
  bool truncated;
  ssize_t n;

  snprintf(path, sizeof(path), "%s/%s/%s", root, bdf, attr);
  n = read_file(path, buf, sizeof(buf), &truncated);
  if (n < 0)
    return (int) n;
  if (truncated)
    return -EINVAL;
  return parse_id(buf, ret);
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
    int r;

    if (de->d_name[0] == '.')
      continue;
    if (strlen(de->d_name) >= sizeof(dev.bdf)) {
      warn("skipping PCI entry with an overlong name");
      continue;
    }
    strcpy(dev.bdf, de->d_name);
    r = read_id(root, dev.bdf, "vendor", &dev.vendor);
    if (r == 0)
      r = read_id(root, dev.bdf, "device", &dev.device);
    if (r < 0) {
      warn("skipping PCI function %s: cannot read its IDs: %s", dev.bdf, strerror(-r));
      continue;
    }
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

static void
report_cmdline_problems(const GiCmdline *cmdline)
{
  for (size_t i = 0; i < cmdline->n_entries; i++) {
    const GiCmdlineEntry *e = &cmdline->entries[i];

    if (e->status != GI_CMDLINE_OK)
      warn("kernel command line: %s: %s", e->key, gi_cmdline_status_to_string(e->status));
  }
  if (cmdline->n_dropped > 0)
    warn("kernel command line: %zu vfiod.* keys beyond the first %d ignored",
         cmdline->n_dropped, GI_CMDLINE_MAX_ENTRIES);
}

static void
print_ready(const GiCmdline *cmdline, const char *pci_root)
{
  GiPciDevice *devices = NULL;
  size_t n_devices = 0, len;
  struct utsname uts;
  struct timespec ts;
  uint64_t uptime_ms;
  char *line;
  int r;

  r = pci_scan(pci_root, &devices, &n_devices);
  if (r < 0)
    fatal("cannot list PCI devices in %s: %s", pci_root, strerror(-r));
  if (uname(&uts) < 0)
    fatal("uname: %s", strerror(errno));
  if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
    fatal("clock_gettime(CLOCK_BOOTTIME): %s", strerror(errno));
  uptime_ms = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;

  len = gi_format_ready(NULL, 0, cmdline->sandbox, uts.release, uptime_ms, devices, n_devices);
  line = malloc(len + 2);
  if (!line)
    fatal("out of memory formatting the ready line");
  gi_format_ready(line + 1, len + 1, cmdline->sandbox, uts.release, uptime_ms, devices, n_devices);
  /* GI_READY_CONSOLE is the only target: our stdout is the console. */
  emit_line(line, len + 2, len);
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

static void
reap_children(void)
{
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
}

/* Drains the signalfd. Powers off on a termination signal. */
static void
handle_signals(int sfd)
{
  struct signalfd_siginfo si;

  while (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
    if (si.ssi_signo == SIGCHLD)
      reap_children();
    else
      power_off_because(signal_name((int) si.ssi_signo));
  }
}

/* Drains an evdev fd. Returns -errno when the device is gone (stop polling
 * it), 0 otherwise. Powers off on a KEY_POWER press. */
static int
handle_button(int fd)
{
  struct input_event ev[16];
  ssize_t n;

  while ((n = read(fd, ev, sizeof(ev))) > 0)
    for (size_t i = 0; i < (size_t) n / sizeof(ev[0]); i++)
      if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
        power_off_because("power-button");
  if (n < 0 && errno != EAGAIN && errno != EINTR)
    return -errno;
  return 0;
}

/* The PID 1 loop: termination signals and power button presses power off,
 * SIGCHLD reaps. Never returns. */
static void __attribute__((noreturn))
run_loop(int sfd)
{
  struct pollfd pfds[1 + MAX_POWER_BUTTONS];
  int buttons[MAX_POWER_BUTTONS];
  size_t n_buttons = test_mode ? 0 : open_power_buttons(buttons, MAX_POWER_BUTTONS);

  if (!test_mode && n_buttons == 0)
    warn("no ACPI power button input device (modules button, evdev not loaded?); "
         "powering off on signals only");
  pfds[0] = (struct pollfd) { .fd = sfd, .events = POLLIN };
  for (size_t i = 0; i < n_buttons; i++)
    pfds[1 + i] = (struct pollfd) { .fd = buttons[i], .events = POLLIN };

  /* A child may have exited before the signalfd existed. */
  reap_children();
  for (;;) {
    if (poll(pfds, 1 + n_buttons, -1) < 0) {
      if (errno == EINTR)
        continue;
      fatal("poll: %s", strerror(errno));
    }
    if (pfds[0].revents & POLLIN)
      handle_signals(sfd);
    for (size_t i = 0; i < n_buttons; i++) {
      if (pfds[1 + i].revents == 0)
        continue;
      if ((pfds[1 + i].revents & (POLLERR | POLLHUP | POLLNVAL)) || handle_button(pfds[1 + i].fd) < 0) {
        warn("power button device went away; no longer watching it");
        close(pfds[1 + i].fd);
        pfds[1 + i].fd = -1;  /* poll() ignores negative fds */
      }
    }
  }
}

static void
usage(FILE *f)
{
  fprintf(f,
          "Usage: guest-init                       (as the guest's PID 1)\n"
          "       guest-init --test [--cmdline STRING] [--pci-root DIR]\n"
          "\n"
          "--test runs as an ordinary process: no mounts, no power-off; prints the\n"
          "ready line, then waits for SIGTERM/SIGINT/SIGPWR/SIGUSR1/SIGUSR2 and\n"
          "exits 0 after printing the power-off line.\n");
}

int
main(int argc, char **argv)
{
  static const struct option options[] = {
    { "test", no_argument, NULL, 't' },
    { "cmdline", required_argument, NULL, 'c' },
    { "pci-root", required_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { 0 },
  };
  static char cmdline_buf[CMDLINE_BUF_SIZE];
  const char *cmdline_arg = NULL, *pci_root = GUEST_PCI_ROOT;
  GiCmdline cmdline;
  sigset_t all, wanted;
  int opt, sfd;

  /* Before anything else: no signal may kill or interrupt PID 1. Blocked
   * signals are still queued for PID 1 and read from the signalfd. */
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);

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

  sigemptyset(&wanted);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGPWR);
  sigaddset(&wanted, SIGUSR1);
  sigaddset(&wanted, SIGUSR2);
  sigaddset(&wanted, SIGCHLD);
  sfd = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0)
    fatal("signalfd: %s", strerror(errno));

  if (!cmdline_arg) {
    bool truncated;
    ssize_t n = read_file(GUEST_CMDLINE_PATH, cmdline_buf, sizeof(cmdline_buf), &truncated);

    if (n < 0)
      fatal("cannot read %s: %s", GUEST_CMDLINE_PATH, strerror((int) -n));
    if (truncated)
      warn("%s longer than %d bytes; the rest is ignored", GUEST_CMDLINE_PATH, CMDLINE_BUF_SIZE - 1);
    cmdline_arg = cmdline_buf;
  }
  gi_cmdline_parse(cmdline_arg, &cmdline);
  report_cmdline_problems(&cmdline);

  print_ready(&cmdline, pci_root);
  run_loop(sfd);
}
