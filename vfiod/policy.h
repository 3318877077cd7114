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

VfdPolicy *vfd_policy_new(const char *ids, const char *classes, GError **error);
void vfd_policy_free(VfdPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdPolicy, vfd_policy_free)

/* @class_code: the 24-bit sysfs `class` value (class<<16 | subclass<<8 |
 * prog-if), e.g. 0x030000 for a VGA controller. */
bool vfd_policy_allows(const VfdPolicy *policy, guint16 vendor, guint16 device, guint32 class_code);

/* Default rules: NVIDIA (10de:*) display (03), audio (0403), USB (0c03) and
 * serial-bus/UCSI (0c80) functions. */
#define VFD_POLICY_DEFAULT_IDS "10de:*"
#define VFD_POLICY_DEFAULT_CLASSES "03;0403;0c03;0c80"
