/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

/* The daemon/API layer's one error currency (GError with this domain).
 * Low layers (sysfs, PCI) return negative errno; the layer that calls them
 * converts once, with context, into one of these codes. Each code is
 * registered as a D-Bus error name "org.vfiod.Error.<Name>" so clients see a
 * stable name. */
#define VFD_ERROR (vfd_error_quark())

typedef enum {
  VFD_ERROR_FAILED,            /* org.vfiod.Error.Failed: operation failed */
  VFD_ERROR_INVALID_ARGUMENT,  /* org.vfiod.Error.InvalidArgument: malformed input */
  VFD_ERROR_NOT_FOUND,         /* org.vfiod.Error.NotFound: unknown device / sandbox */
  VFD_ERROR_NOT_ALLOWED,       /* org.vfiod.Error.NotAllowed: refused by device policy */
  VFD_ERROR_BUSY,              /* org.vfiod.Error.Busy: owned by someone else / in use */
  VFD_ERROR_PERMISSION_DENIED, /* org.vfiod.Error.PermissionDenied: peer not authorised */
  VFD_ERROR_STUCK,             /* org.vfiod.Error.Stuck: a sysfs write never returned */
  VFD_ERROR_CORRUPT,           /* org.vfiod.Error.Corrupt: journal unreadable */
  VFD_ERROR_TIMED_OUT,         /* org.vfiod.Error.TimedOut: a bounded wait ran out */
  VFD_ERROR_LIMIT_EXCEEDED,    /* org.vfiod.Error.LimitExceeded: a size, count or rate cap */
  VFD_ERROR_ALREADY_EXISTS,    /* org.vfiod.Error.AlreadyExists: a sandbox of that name has another spec */
  VFD_ERROR_N_ERRORS
} VfdErrorCode;

GQuark vfd_error_quark(void);

/* Converts a negative errno from a low layer into a VFD_ERROR code:
 * -EINVAL -> INVALID_ARGUMENT, -ENOENT/-ENODEV -> NOT_FOUND, -EBUSY -> BUSY,
 * -EPERM/-EACCES -> PERMISSION_DENIED, anything else -> FAILED. */
VfdErrorCode vfd_error_from_errno(int negative_errno);

/* The error a D-Bus client sees for @error: a new GError in VFD_ERROR (so
 * its D-Bus name is one of org.vfiod.Error.*), with @error's message. An
 * error already in VFD_ERROR is copied; G_IO_ERROR, G_FILE_ERROR and
 * G_SPAWN_ERROR codes are mapped (not found, permission denied, timed out,
 * busy, invalid argument, too big -> LimitExceeded); anything else is
 * Failed. Never NULL for a non-NULL @error. */
GError *vfd_error_for_api(const GError *error);
