/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* Which devices vfiod may manage, from the config's [devices] section.
 *
 * @ids: ';'-separated "vendor:device" patterns, each side 4 hex digits or
 *   "*" (e.g. "10de:*;8086:10d3"). Empty or NULL: any vendor/device.
 * @classes: ';'-separated PCI class prefixes of 2, 4 or 6 hex digits
 *   (class, class+subclass, class+subclass+prog-if), e.g. "03;0403;0c03".
 *   Empty or NULL: any class.
 * Whitespace around items is ignored. A device is allowed when it matches
 * @ids AND @classes. Returns NULL with VFD_ERROR_INVALID_ARGUMENT naming the
 * bad item on malformed input. */
typedef struct VfdPolicy VfdPolicy;

/* Device rules, reference-counted (atomic; ref/unref from any thread): a
 * reload replaces the host's policy while workers still hold the one they
 * started with (vfd_host_dup_policy()). */
VfdPolicy *vfd_policy_new(const char *ids, const char *classes, GError **error);
VfdPolicy *vfd_policy_ref(VfdPolicy *policy);
/* Drops a reference; the last one frees. NULL: nothing. */
void vfd_policy_unref(VfdPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdPolicy, vfd_policy_unref)

/* @class_code: the 24-bit sysfs `class` value (class<<16 | subclass<<8 |
 * prog-if), e.g. 0x030000 for a VGA controller. */
bool vfd_policy_allows(const VfdPolicy *policy, guint16 vendor, guint16 device, guint32 class_code);

/* Host-safety guards on top of the match rules ([devices] allow_* keys).
 * All false by default: the boot VGA device (sysfs boot_vga = 1, the
 * console), storage controllers (class 01) and network controllers
 * (class 02) are refused even when the rules match, because taking them
 * away can cut the host off its disk, network or screen. */
typedef struct {
  bool allow_boot_vga;
  bool allow_storage;
  bool allow_network;
} VfdPolicyGuards;

void vfd_policy_set_guards(VfdPolicy *policy, const VfdPolicyGuards *guards);

/* Why a device may not be bound: NULL when it may; otherwise a short
 * reason naming the config key that would allow it (static string). */
const char *vfd_policy_refusal(const VfdPolicy *policy, guint16 vendor, guint16 device, guint32 class_code,
                               bool boot_vga);

/* When a release resets a function before giving it back ([devices]
 * reset_on_release: absent or "auto", true, false). */
typedef enum {
  VFD_RESET_AUTO,   /* NVIDIA (vendor 0x10de) display/3D functions (class 03xxxx) only: a GPU
                     * whose GSP firmware still runs refuses its next driver ("WPR2 already up") */
  VFD_RESET_ALWAYS, /* every function */
  VFD_RESET_NEVER,  /* none */
} VfdResetPolicy;

/* Whether @policy resets a function of @vendor and 24-bit @class_code. The
 * reset itself still needs a method the kernel offers (sysfs
 * `reset_method`). */
bool vfd_reset_policy_wants(VfdResetPolicy policy, guint16 vendor, guint32 class_code);

/* Default rules: NVIDIA (10de:*) display (03), audio (0403), USB (0c03) and
 * serial-bus/UCSI (0c80) functions. */
#define VFD_POLICY_DEFAULT_IDS "10de:*"
#define VFD_POLICY_DEFAULT_CLASSES "03;0403;0c03;0c80"
