/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A fake kernel for the unit tests: a temporary directory tree laid out like
 * Linux's /sys and /dev for PCI, plus a VfdSysfsWriteFunc that performs on
 * that tree what the kernel does on each sysfs write. Nothing here ever
 * touches the real /sys: writes to paths outside the fake tree are refused
 * (-EACCES) and counted (fake_sysfs_outside_writes()).
 *
 * Tree (all under one mkdtemp() directory <tmp>; sys root = <tmp>/sys, dev
 * root = <tmp>/dev; both returned as canonical absolute paths):
 *   sys/devices/pci<DDDD>:00/<BDF>/           real directory per device, with
 *       vendor "0x10de\n", device, class "0x030000\n", revision,
 *       subsystem_vendor, subsystem_device, irq, resource (13 lines of
 *       "start end flags"), config (256 bytes: IDs, class, revision, header
 *       type 1 for bridges (class 0604xx) else 0, subsystem IDs),
 *       driver_override ("(null)\n" when unset, as the kernel shows it),
 *       numa_node "-1\n", modalias, reset_method "flr bus\n", d3cold_allowed
 *       "1\n", boot_vga "0\n" (VGA class 0300xx only), enable, and the
 *       write-only reset/remove;
 *       driver -> ../../../bus/pci/drivers/<name>             (when bound)
 *       iommu_group -> ../../../kernel/iommu_groups/<N>        (when N >= 0)
 *   sys/bus/pci/devices/<BDF> -> ../../../devices/pci<DDDD>:00/<BDF>
 *   sys/bus/pci/drivers/<name>/{bind,unbind,new_id,remove_id}
 *   sys/bus/pci/drivers/<name>/<BDF> -> ../../../../devices/pci<DDDD>:00/<BDF>
 *   sys/bus/pci/{drivers_probe,drivers_autoprobe,rescan}
 *   sys/kernel/iommu_groups/<N>/devices/<BDF> -> ../../../../devices/...
 *   dev/vfio/vfio                             (always; empty regular file)
 *   dev/vfio/<N>   exists exactly while at least one device of group N is
 *                  bound to vfio-pci (empty regular file)
 *   model.ini      the model (see "Persistence" below)
 *   writes.log     every write through the writer, appended
 * libpci (method PCI_ACCESS_SYS_BUS_PCI, param "sysfs.path" =
 * "<sys root>/bus/pci") enumerates this tree.
 *
 * Persistence (for tests where the daemon is a separate process that is
 * killed and started again, tests/crash): the in-memory model is the source
 * of truth, and after every change (each write through the writer, each
 * set-up helper) it is saved to <tmp>/model.ini, a GLib key file written to
 * a temp file and renamed, so a process killed at any instant leaves the
 * old or the new model, never a torn one:
 *   [fake-sysfs]           format=vfiod-fake-sysfs, version=1
 *   [driver <name>]        dynids=VVVV:DDDD;...  (new_id entries)
 *   [device <BDF>]         dir=devices/pci0000:00/<BDF>, vendor=0x10de,
 *                          device=0x2204, class=0x030000, iommu_group=12,
 *                          native_driver=, driver=, override= (absent: none)
 * fake_sysfs_load() rebuilds a FakeSysfs from an existing tree: the model
 * from model.ini, and it re-mirrors drivers, overrides and /dev/vfio/<N>
 * into the tree (a device directory that is missing is recreated). Faults,
 * the in-memory write log and its counters are per process and start empty.
 * <tmp>/writes.log gets one line per write, "<pid> <path>=<value> -> <r>"
 * (path relative to the sys root, value C-escaped, r 0 or -errno), across
 * processes, for post-mortems. Only one process at a time may use a tree
 * through a FakeSysfs; others may read the tree (links, driver_override
 * files) meanwhile.
 *
 * Kernel semantics of the writer (path relative to the sys root; a value may
 * end in "\n" or not, both are accepted, as by the kernel):
 *   - A zero-length value ("") is a successful no-op on every sysfs file
 *     (fs/sysfs/file.c sysfs_kf_write: `if (!count) return 0;`). In
 *     particular writing "" to driver_override does NOT clear it; "\n" does.
 *   - .../<BDF>/driver_override: stores the value up to its first "\n";
 *     "\n" clears (reads "(null)\n"). Does not rebind. >= 4095 bytes: -EINVAL.
 *   - bus/pci/drivers/<name>/unbind <BDF>: -ENODEV unless <BDF> is bound to
 *     <name>; else unbinds (links removed, dev/vfio/<N> removed with the
 *     group's last vfio-pci device). VFIO variant drivers (names ending in
 *     "_vfio_pci" or "-vfio-pci") count as vfio-pci for dev/vfio/<N>.
 *   - bus/pci/drivers_probe <BDF>: -ENODEV for an unknown BDF; bound already:
 *     success, no change; override set: binds to that driver if it exists,
 *     else stays unbound (success); no override: binds to the native driver
 *     if it exists, else to a driver that has a matching new_id entry, else
 *     stays unbound (success). vfio-pci never binds a bridge (header type 1):
 *     the probe succeeds and the device stays unbound (vfio_pci_probe
 *     returns -EINVAL, which drivers_probe swallows).
 *   - bus/pci/drivers/<name>/bind <BDF>: -ENODEV for an unknown BDF or when
 *     <name> does not match the device (override names another driver, or no
 *     override and <name> is neither native nor a new_id match); -EBUSY when
 *     bound; -EINVAL for vfio-pci on a bridge; else binds.
 *   - bus/pci/drivers/<name>/new_id "VVVV DDDD ...": adds a dynamic ID and,
 *     as the kernel does, immediately binds <name> to every unbound device
 *     with those IDs whose override is unset or names <name> (this is why
 *     vfiod must never use it). Fewer than two hex fields: -EINVAL.
 *     remove_id drops the dynamic ID.
 *   - .../<BDF>/remove "1": hot-unplug of the device.
 *   - .../<BDF>/reset: a value other than "1" is -EINVAL (reset_store());
 *     -ENOTTY when the device's reset_method file is empty (no method, or
 *     all disabled); else success (logged, nothing else changes). Faultable
 *     as FAKE_OP_RESET.
 *   - reset_method and d3cold_allowed are plain files: a write replaces the
 *     content (the kernel's validation of method names is not modelled).
 *   - BDFs written are compared exactly as the kernel does (sysfs_streq: one
 *     trailing "\n" ignored; no case folding, no short forms).
 *   - Anything else: a plain open(O_WRONLY|O_TRUNC) + write() of the file
 *     in the fake tree (-ENOENT if it does not exist).
 *
 * Every write is logged ("path=value", path relative to the sys root,
 * value exactly as written, e.g. "bus/pci/drivers_probe=0000:01:00.0"),
 * also writes that then fail. All functions are thread-safe (the writer may
 * run on worker threads); the helpers that set up the tree fail the current
 * cmocka test when something goes wrong and must be called from the test's
 * thread. Built with -DFAKE_SYSFS_NO_CMOCKA (programs that are not cmocka
 * tests, such as tests/crash/vfiod-fake) they abort with g_error() instead. */

#include <glib.h>

#include "sysfs.h"

typedef struct FakeSysfs FakeSysfs;

typedef enum {
  FAKE_OP_OVERRIDE, /* a write to <BDF>/driver_override */
  FAKE_OP_UNBIND,   /* <BDF> written to bus/pci/drivers/<any>/unbind */
  FAKE_OP_PROBE,    /* <BDF> written to bus/pci/drivers_probe */
  FAKE_OP_BIND,     /* <BDF> written to bus/pci/drivers/<any>/bind */
  FAKE_OP_RESET,    /* a write to <BDF>/reset */
} FakeOp;

#define FAKE_VFIO_DRIVER "vfio-pci"

/* Creates the empty tree (mkdtemp under g_get_tmp_dir()). */
FakeSysfs *fake_sysfs_new(void);
/* Creates the empty tree at @dir (absolute; created if missing, and must
 * be empty). Like fake_sysfs_new(), freeing removes it unless kept. */
FakeSysfs *fake_sysfs_new_in(const char *dir);
/* Rebuilds the fake from the tree at @dir (the <tmp> of an earlier fake,
 * possibly of another, dead process): see "Persistence". The result keeps
 * the tree on free (fake_sysfs_set_keep(TRUE)). Fails like the set-up
 * helpers when @dir holds no valid model; fake_sysfs_try_load() returns
 * NULL with @error instead. */
FakeSysfs *fake_sysfs_load(const char *dir);
FakeSysfs *fake_sysfs_try_load(const char *dir, GError **error);
/* Whether fake_sysfs_free() leaves the tree on disk (default: FALSE for
 * new trees, TRUE for loaded ones). */
void fake_sysfs_set_keep(FakeSysfs *fs, gboolean keep);
/* The tree's directory <tmp> (canonical, absolute). */
const char *fake_sysfs_dir(FakeSysfs *fs);
/* Releases any hung writer, waits for writers still running, removes the
 * whole tree (unless kept). NULL is allowed. */
void fake_sysfs_free(FakeSysfs *fs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeSysfs, fake_sysfs_free)

/* "<tmp>/sys": pass to vfd_sysfs_new(). */
const char *fake_sysfs_sys_root(FakeSysfs *fs);
/* "<tmp>/dev". */
const char *fake_sysfs_dev_root(FakeSysfs *fs);

/* vfd_sysfs_new(sys_root, dev_root) with fake_sysfs_writer() installed. */
VfdSysfs *fake_sysfs_open(FakeSysfs *fs);

/* The writer itself (VfdSysfsWriteFunc; @fake is the FakeSysfs), for tests
 * that build their own VfdSysfs. */
int fake_sysfs_writer(const char *path, const char *value, void *fake);

/* Adds driver <name> (a loaded module): sys/bus/pci/drivers/<name>/... .
 * Adding an existing driver is a no-op. */
void fake_sysfs_add_driver(FakeSysfs *fs, const char *name);

/* Adds a device. @bdf: any case, canonicalised to lower case. @class_code:
 * 24-bit (0x030000). @iommu_group: -1 for none (IOMMU off). @driver: bound
 * now (added as a driver if missing; NULL: unbound). @native_driver: what
 * drivers_probe binds when there is no override, if that driver exists
 * (NULL: none). Subsystem IDs are vendor:0000. */
void fake_sysfs_add_device(FakeSysfs *fs, const char *bdf, guint16 vendor, guint16 device, guint32 class_code,
                           int iommu_group, const char *driver, const char *native_driver);

/* Removes a device now (hot-unplug): its directory, links, group entry (and
 * the group when it was the last member), dev/vfio/<N> if it was the last
 * vfio-pci device of the group. */
void fake_sysfs_remove_device(FakeSysfs *fs, const char *bdf);

/* Sets the override directly (no write logged), e.g. a stale override left
 * behind by someone else. NULL or "" clears. */
void fake_sysfs_set_override(FakeSysfs *fs, const char *bdf, const char *value);

/* Replaces the contents of attribute file <BDF>/@attr (creating it), e.g. a
 * corrupt "vendor" or an empty "reset_method". Not logged. */
void fake_sysfs_set_attr(FakeSysfs *fs, const char *bdf, const char *attr, const char *contents);

/* Reads attribute file <BDF>/@attr as it is now (newly allocated, NULL when
 * missing), e.g. to see what a write left in "d3cold_allowed". */
char *fake_sysfs_get_attr(FakeSysfs *fs, const char *bdf, const char *attr);

/* Sets line @index (0-5: BAR, 6: ROM) of <BDF>/resource as the kernel shows
 * a BAR of @size bytes at host address @start with IORESOURCE_* @flags
 * ("0x%016x 0x%016x 0x%016x": start, start + size - 1, flags; all zero when
 * @size is 0). Common flags: FAKE_BAR_MEM32 (32-bit, non-prefetchable),
 * FAKE_BAR_MEM64_PREF (64-bit prefetchable). Not logged. */
#define FAKE_BAR_MEM32 0x0000000000040200ULL
#define FAKE_BAR_MEM64_PREF 0x000000000014220cULL
void fake_sysfs_set_bar(FakeSysfs *fs, const char *bdf, guint index, guint64 start, guint64 size, guint64 flags);

/* Faults. Each fires once, on the next matching write, and is then gone;
 * queued twice, it fires twice.
 * fail_next: the next @op write for @bdf fails with -@err (@err > 0, e.g.
 *   EBUSY) and changes nothing. */
void fake_sysfs_fail_next(FakeSysfs *fs, const char *bdf, FakeOp op, int err);
/* After the next successful unbind of @bdf, @driver (added if missing)
 * immediately binds it again: a driver racing us. */
void fake_sysfs_regrab_after_unbind(FakeSysfs *fs, const char *bdf, const char *driver);
/* The next drivers_probe of @bdf succeeds but binds nothing (as when the
 * driver's probe fails, or vfio-pci is not loaded). */
void fake_sysfs_probe_binds_nothing(FakeSysfs *fs, const char *bdf);
/* After the next @op write for @bdf (whatever its result), the device is
 * removed as by fake_sysfs_remove_device(). */
void fake_sysfs_vanish_after(FakeSysfs *fs, const char *bdf, FakeOp op);
/* The next @op write for @bdf blocks (like an unbind from nvidia with open
 * handles) until fake_sysfs_unhang(); it then completes normally. */
void fake_sysfs_hang_next(FakeSysfs *fs, const char *bdf, FakeOp op);
/* Lets every currently hung write continue. */
void fake_sysfs_unhang(FakeSysfs *fs);
/* Waits until at least @n writes are hung, up to @timeout_ms. */
gboolean fake_sysfs_wait_hung(FakeSysfs *fs, guint n, guint timeout_ms);

/* Model state (not re-read from the tree; the tree is kept identical; to
 * see what another process did, fake_sysfs_load() the tree again). */
gboolean fake_sysfs_has_device(FakeSysfs *fs, const char *bdf);
/* Bound driver, NULL if unbound or no such device. */
char *fake_sysfs_get_driver(FakeSysfs *fs, const char *bdf);
/* Override, "" if none (NULL if no such device). */
char *fake_sysfs_get_override(FakeSysfs *fs, const char *bdf);
/* True when <dev root>/vfio/<group> exists (checked on disk). */
gboolean fake_sysfs_vfio_node_exists(FakeSysfs *fs, int group);

/* Every write seen (logged), including failed and refused ones. */
guint fake_sysfs_write_count(FakeSysfs *fs);
/* The log, "path=value" in order (new array; caller unrefs). */
GPtrArray *fake_sysfs_write_log(FakeSysfs *fs);
/* Writes whose relative path matches the glob @path_glob (NULL: any; e.g.
 * "bus/pci/drivers/ * /new_id" without the spaces) and whose value equals
 * @value ignoring one trailing "\n" (NULL: any). */
guint fake_sysfs_count_writes(FakeSysfs *fs, const char *path_glob, const char *value);
/* Forgets the log and the count (e.g. after setting up a scenario). */
void fake_sysfs_clear_log(FakeSysfs *fs);
/* Writes refused because their path was outside the fake tree. */
guint fake_sysfs_outside_writes(FakeSysfs *fs);
