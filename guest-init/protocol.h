/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host <-> guest protocol on the guest kernel's command line: the one
 * definition of what vfiod writes (vfiod/vm/guest-cmdline.c, and the network,
 * report and root keys of sandbox-net.c, create.c, qemu-argv.c and procfs.c)
 * and what guest-init reads (guest-init/cmdline.c). Plain C99, no GLib,
 * nothing to link: the daemon, the static PID 1, the unit tests and the
 * fuzzers all include it.
 *
 * How the guest kernel reads the line (Linux lib/cmdline.c next_arg() and
 * lib/ctype.c, unchanged since 2.6; checked against 6.1, the pinned guest):
 *  - words are separated by isspace() bytes: '\t' '\n' '\v' '\f' '\r' ' '
 *    and 0xa0 (Latin-1 no-break space);
 *  - a '"' toggles quoting anywhere in a word, and blanks inside quotes do
 *    not split; only a quote opening the word (with its closing partner at
 *    the word's end) or opening the value is removed, other quotes stay in
 *    the value; there are no escapes;
 *  - the first "--" word ends the kernel's parameters (the rest goes to
 *    init); a word with a '.' in its key is a module parameter and neither
 *    reaches init's argv nor its environment;
 *  - x86 keeps COMMAND_LINE_SIZE (2048) bytes with the NUL and cuts the rest
 *    without a word: a cut can split a quoted word, so vfiod never sends
 *    more than VFIOD_CMDLINE_MAX_LEN bytes.
 * So a byte in a value that the kernel takes as a separator, or a quote,
 * would start a word of the caller's choosing (`rdinit=/evil`, another
 * `vfiod.root=`). vfiod therefore sends values from an allow-list of bytes
 * (below), never a '"', and quotes a whole word ("vfiod.arg=a b") when its
 * value may hold a space; guest-init refuses what the allow-list refuses, so
 * both ends and the kernel agree on every word.
 *
 * The workload's data (cmd, args, env, files) does not travel on this line:
 * vfiod sends it as a QEMU fw_cfg file (the payload, guest-init/payload.h),
 * which has none of these limits and is not visible in the host's ps. The
 * line only says that there is one and its size (vfiod.payload=BYTES). The
 * vfiod.cmd/arg/env keys remain for hand-written lines (tests, debugging). */

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* ---- sizes ---- */

/* x86 COMMAND_LINE_SIZE: bytes the guest kernel keeps, NUL included. */
#define VFIOD_CMDLINE_SIZE 2048
/* Bytes of the whole line vfiod may hand QEMU's -append (without the NUL). */
#define VFIOD_CMDLINE_MAX_LEN (VFIOD_CMDLINE_SIZE - 1)
/* Bytes of the line reserved for vfiod's own words: console=, panic=,
 * pci=realloc pci=nocrs, tsc_early_khz=, vfiod.sandbox=, the network keys
 * (vfiod.ip= vfiod.gw= vfiod.mac= vfiod.dns= with at most VFIOD_CMDLINE_MAX_DNS
 * IPv4 servers), vfiod.report=vsock:PORT, vfiod.root= and vfiod.driver=
 * (the NVIDIA driver layer's disk). Their longest form takes 321 bytes
 * (asserted by tests/unit/test-workload-cmdline.c, which
 * builds it with vfd_qemu_build_argv()); the rest is room for keys to come
 * (vfiod.timeout=, vfiod.gpu=, vfiod.nvidia=, vfiod.rootfstype=, ...).
 * QEMU adds nothing of its own: microvm appends virtio_mmio.device= words only
 * with acpi=off, which vfiod never sets. */
#define VFIOD_CMDLINE_RESERVED 512
/* Bytes left for the workload's words (vfiod.cmd=, vfiod.arg=, vfiod.env=),
 * each counted with its quotes and the blank before it: 1535. */
#define VFIOD_CMDLINE_WORKLOAD_MAX (VFIOD_CMDLINE_MAX_LEN - VFIOD_CMDLINE_RESERVED)

#define VFIOD_CMDLINE_MAX_KEY 64     /* bytes of a key, "vfiod." included */
#define VFIOD_CMDLINE_MAX_VALUE 256  /* bytes of a value, after quote removal (vfiod.env=: NAME=VALUE) */
#define VFIOD_CMDLINE_MAX_ARGS 16    /* vfiod.arg= words: the workload's argv[1..] */
#define VFIOD_CMDLINE_MAX_ENV 16     /* vfiod.env= words */
#define VFIOD_CMDLINE_MAX_DNS 3      /* servers in vfiod.dns= (resolv.conf's MAXNS) */
/* vfiod.* words guest-init keeps. Every key but vfiod.arg and vfiod.env may
 * appear once (15 such keys today, vfiod.ready and vfiod.report being one),
 * those two VFIOD_CMDLINE_MAX_ARGS/_ENV times: 47 words at most; vfiod
 * sends 41 at most (40 before vfiod.driver). More is an error in the guest,
 * never a silent drop. */
#define VFIOD_CMDLINE_MAX_ENTRIES 64
#define VFIOD_CMDLINE_MAX_TIMEOUT 31536000u  /* vfiod.timeout= upper bound, seconds (a year) */

/* ---- keys ---- */

#define VFIOD_CMDLINE_PREFIX "vfiod."
#define VFIOD_KEY_SANDBOX "vfiod.sandbox"       /* sandbox id, printed back in VFIOD_READY */
#define VFIOD_KEY_REPORT "vfiod.report"         /* console | vsock:PORT */
#define VFIOD_KEY_READY "vfiod.ready"           /* older spelling of vfiod.report (same key) */
#define VFIOD_KEY_IP "vfiod.ip"                 /* A.B.C.D/PREFIX */
#define VFIOD_KEY_GW "vfiod.gw"                 /* A.B.C.D */
#define VFIOD_KEY_DNS "vfiod.dns"               /* ADDR[,ADDR[,ADDR]] */
#define VFIOD_KEY_IF "vfiod.if"                 /* interface name */
#define VFIOD_KEY_MAC "vfiod.mac"               /* xx:xx:xx:xx:xx:xx */
#define VFIOD_KEY_CMD "vfiod.cmd"               /* the workload: an absolute path */
#define VFIOD_KEY_ARG "vfiod.arg"               /* one argument, repeatable, in order */
#define VFIOD_KEY_ENV "vfiod.env"               /* NAME=VALUE, repeatable */
#define VFIOD_KEY_ROOT "vfiod.root"             /* virtio:SERIAL or /dev/NAME */
#define VFIOD_KEY_ROOTFSTYPE "vfiod.rootfstype" /* ext4, ... */
#define VFIOD_KEY_ROOTFLAGS "vfiod.rootflags"   /* ro | rw */
#define VFIOD_KEY_GPU "vfiod.gpu"               /* on | off */
#define VFIOD_KEY_NVIDIA "vfiod.nvidia"         /* none | uvm,modeset,drm,peermem */
#define VFIOD_KEY_TIMEOUT "vfiod.timeout"       /* seconds */
#define VFIOD_KEY_PAYLOAD "vfiod.payload"       /* bytes of the fw_cfg payload (guest-init/payload.h) */
/* tmpfs | virtio:SERIAL | /dev/NAME: the root (vfiod.rootflags=ro) is the
 * lower layer of an overlay whose upper and work directories are on a tmpfs
 * or on that disk (ext4: VFIOD_OVERLAY_UPPER and VFIOD_OVERLAY_WORK at its
 * top, made when missing). */
#define VFIOD_KEY_OVERLAY "vfiod.overlay"
#define VFIOD_OVERLAY_TMPFS "tmpfs"
#define VFIOD_OVERLAY_UPPER "upper"
#define VFIOD_OVERLAY_WORK "work"
/* virtio:SERIAL or /dev/NAME (vfiod_cmdline_disk_valid()): a read-only
 * block device holding the NVIDIA driver layer, an EROFS image made by
 * kernel-modules/build-driver-layer.sh. guest-init mounts it read-only at
 * VFIOD_DRIVER_LAYER_DIR and makes it visible in the workload's root
 * (vfiod.root= is required with it; guest-init/README.md "Driver layer").
 * vfiod attaches the image read-only after the root disk, with the serial
 * VFIOD_DISK_SERIAL_DRIVER. */
#define VFIOD_KEY_DRIVER "vfiod.driver"

/* ---- disks ----
 * vfiod names the disks it attaches by their virtio-blk serial, never by
 * the guest kernel's vdX names: those follow the order in which virtio_blk
 * probes the disks, and modules loaded in parallel (guest-init) or
 * asynchronous probing do not keep the order of QEMU's command line. */
#define VFIOD_DISK_BY_SERIAL "virtio:"          /* vfiod.root=virtio:SERIAL */
#define VFIOD_DISK_SERIAL_MAX 20                /* VIRTIO_BLK_ID_BYTES */
#define VFIOD_DISK_SERIAL_ROOT "vfiod-root"     /* the workload's root disk */
#define VFIOD_DISK_SERIAL_DRIVER "vfiod-driver" /* the NVIDIA driver layer */
#define VFIOD_DISK_SERIAL_OVERLAY "vfiod-overlay" /* the root's overlay (vfiod.overlay=) */
#define VFIOD_DISK_SERIAL_DATA "vfiod-data"     /* + N: the sandbox's data disks, in order */
/* guest-init links every virtio disk with a serial as
 * VFIOD_DISK_BY_ID_DIR/virtio-SERIAL (as udev does), for the workload to
 * find its data disks by name. */
#define VFIOD_DISK_BY_ID_DIR "/dev/disk/by-id"
/* Where the driver layer is mounted in the guest, and seen by the workload:
 * under /run (guest-init's tmpfs, bind-mounted into the root), at the path
 * NVIDIA's GPU operator uses for its driver root. */
#define VFIOD_DRIVER_LAYER_DIR "/run/nvidia/driver"

/* ---- bytes ---- */

/* The kernel's isspace() (lib/ctype.c: 0x09-0x0d, 0x20, 0xa0): where it
 * splits words outside quotes. */
static inline bool
vfiod_cmdline_is_space(unsigned char c)
{
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0;
}

/* The allow-list for a value in a quoted word ("vfiod.arg=...",
 * "vfiod.env=..."): printable ASCII 0x20-0x7e but '"' (it would end the
 * quoting) and '\\' (reserved: no layer interprets it today, none may
 * tomorrow). A blank is safe only inside quotes: vfiod quotes every word
 * whose value may hold one. */
static inline bool
vfiod_cmdline_value_char_ok(unsigned char c)
{
  return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

/* The allow-list for a value in an unquoted word (vfiod.cmd= and the keys
 * vfiod writes itself): as above without the blank, 0x21-0x7e. */
static inline bool
vfiod_cmdline_word_char_ok(unsigned char c)
{
  return c != ' ' && vfiod_cmdline_value_char_ok(c);
}

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]* (POSIX's portable
 * names). @first: the name's first byte. */
static inline bool
vfiod_cmdline_env_name_char_ok(unsigned char c, bool first)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* vfiod.cmd's value: an absolute path, no empty, "." or ".." component, no
 * trailing '/', every byte vfiod_cmdline_word_char_ok(), at most
 * VFIOD_CMDLINE_MAX_VALUE bytes. @v is NUL-terminated. */
static inline bool
vfiod_cmdline_cmd_valid(const char *v)
{
  size_t n = 0;

  if (v[0] != '/' || v[1] == '\0')
    return false;
  for (const char *p = v; *p != '\0'; p++, n++)
    if (n >= VFIOD_CMDLINE_MAX_VALUE || !vfiod_cmdline_word_char_ok((unsigned char) *p))
      return false;
  for (const char *p = v + 1;;) {
    size_t len = 0;

    while (p[len] != '\0' && p[len] != '/')
      len++;
    if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    if (p[len] == '\0')
      return true;
    p += len + 1;
  }
}

/* A block device path: "/dev/" and at least one more byte, no empty, "."
 * or ".." component, no trailing '/', every byte
 * vfiod_cmdline_word_char_ok() (no blank: never quoted), at most
 * VFIOD_CMDLINE_MAX_VALUE bytes. @v is NUL-terminated. */
static inline bool
vfiod_cmdline_dev_valid(const char *v)
{
  return v[0] == '/' && v[1] == 'd' && v[2] == 'e' && v[3] == 'v' && v[4] == '/' && v[5] != '\0' &&
         vfiod_cmdline_cmd_valid(v);
}

/* A virtio-blk serial as vfiod sets it on the disks it attaches (QEMU's
 * "serial=" property; the guest reads it in /sys/block/NAME/serial): 1 to
 * VFIOD_DISK_SERIAL_MAX bytes of [A-Za-z0-9._-]. @v is NUL-terminated. */
static inline bool
vfiod_disk_serial_valid(const char *v)
{
  size_t n = 0;

  for (; v[n] != '\0'; n++) {
    unsigned char c = (unsigned char) v[n];
    if (n >= VFIOD_DISK_SERIAL_MAX ||
        !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  }
  return n > 0;
}

/* A disk as vfiod.root= and vfiod.driver= name it: a block device path
 * (vfiod_cmdline_dev_valid(), for hand-written command lines) or
 * VFIOD_DISK_BY_SERIAL followed by a virtio-blk serial
 * (vfiod_disk_serial_valid()). @v is NUL-terminated. */
static inline bool
vfiod_cmdline_disk_valid(const char *v)
{
  size_t p = sizeof(VFIOD_DISK_BY_SERIAL) - 1;

  if (v[0] == '/')
    return vfiod_cmdline_dev_valid(v);
  return strncmp(v, VFIOD_DISK_BY_SERIAL, p) == 0 && vfiod_disk_serial_valid(v + p);
}
