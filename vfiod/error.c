/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "error.h"

#include <errno.h>

static const GDBusErrorEntry vfd_error_entries[] = {
  { VFD_ERROR_FAILED, "org.vfiod.Error.Failed" },
  { VFD_ERROR_INVALID_ARGUMENT, "org.vfiod.Error.InvalidArgument" },
  { VFD_ERROR_NOT_FOUND, "org.vfiod.Error.NotFound" },
  { VFD_ERROR_NOT_ALLOWED, "org.vfiod.Error.NotAllowed" },
  { VFD_ERROR_BUSY, "org.vfiod.Error.Busy" },
  { VFD_ERROR_PERMISSION_DENIED, "org.vfiod.Error.PermissionDenied" },
  { VFD_ERROR_STUCK, "org.vfiod.Error.Stuck" },
  { VFD_ERROR_CORRUPT, "org.vfiod.Error.Corrupt" },
  { VFD_ERROR_TIMED_OUT, "org.vfiod.Error.TimedOut" },
  { VFD_ERROR_LIMIT_EXCEEDED, "org.vfiod.Error.LimitExceeded" },
};

G_STATIC_ASSERT(G_N_ELEMENTS(vfd_error_entries) == VFD_ERROR_N_ERRORS);

GQuark
vfd_error_quark(void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain("vfd-error-quark", &quark, vfd_error_entries,
                                     G_N_ELEMENTS(vfd_error_entries));
  return (GQuark) quark;
}

VfdErrorCode
vfd_error_from_errno(int negative_errno)
{
  switch (-negative_errno) {
  case EINVAL:
    return VFD_ERROR_INVALID_ARGUMENT;
  case ENOENT:
  case ENODEV:
    return VFD_ERROR_NOT_FOUND;
  case EBUSY:
    return VFD_ERROR_BUSY;
  case EPERM:
  case EACCES:
    return VFD_ERROR_PERMISSION_DENIED;
  default:
    return VFD_ERROR_FAILED;
  }
}
