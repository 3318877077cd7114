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
  { VFD_ERROR_ALREADY_EXISTS, "org.vfiod.Error.AlreadyExists" },
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

static VfdErrorCode
code_for_api(const GError *e)
{
  if (e->domain == VFD_ERROR && e->code >= 0 && e->code < VFD_ERROR_N_ERRORS)
    return (VfdErrorCode) e->code;
  if (e->domain == G_IO_ERROR) {
    switch (e->code) {
    case G_IO_ERROR_NOT_FOUND:
      return VFD_ERROR_NOT_FOUND;
    case G_IO_ERROR_PERMISSION_DENIED:
      return VFD_ERROR_PERMISSION_DENIED;
    case G_IO_ERROR_TIMED_OUT:
      return VFD_ERROR_TIMED_OUT;
    case G_IO_ERROR_BUSY:
    case G_IO_ERROR_WOULD_BLOCK:
      return VFD_ERROR_BUSY;
    case G_IO_ERROR_INVALID_ARGUMENT:
    case G_IO_ERROR_INVALID_FILENAME:
    case G_IO_ERROR_INVALID_DATA:
      return VFD_ERROR_INVALID_ARGUMENT;
    case G_IO_ERROR_NO_SPACE:
    case G_IO_ERROR_TOO_MANY_OPEN_FILES:
    case G_IO_ERROR_MESSAGE_TOO_LARGE:
      return VFD_ERROR_LIMIT_EXCEEDED;
    default:
      return VFD_ERROR_FAILED;
    }
  }
  if (e->domain == G_FILE_ERROR) {
    switch (e->code) {
    case G_FILE_ERROR_NOENT:
    case G_FILE_ERROR_NOTDIR:
    case G_FILE_ERROR_NODEV:
    case G_FILE_ERROR_NXIO:
      return VFD_ERROR_NOT_FOUND;
    case G_FILE_ERROR_ACCES:
    case G_FILE_ERROR_PERM:
    case G_FILE_ERROR_ROFS:
      return VFD_ERROR_PERMISSION_DENIED;
    case G_FILE_ERROR_INVAL:
    case G_FILE_ERROR_NAMETOOLONG:
    case G_FILE_ERROR_LOOP:
      return VFD_ERROR_INVALID_ARGUMENT;
    case G_FILE_ERROR_AGAIN:
      return VFD_ERROR_BUSY;
    case G_FILE_ERROR_NOSPC:
    case G_FILE_ERROR_NOMEM:
    case G_FILE_ERROR_MFILE:
    case G_FILE_ERROR_NFILE:
      return VFD_ERROR_LIMIT_EXCEEDED;
    default:
      return VFD_ERROR_FAILED;
    }
  }
  if (e->domain == G_SPAWN_ERROR) {
    switch (e->code) {
    case G_SPAWN_ERROR_NOENT:
    case G_SPAWN_ERROR_NOTDIR:
      return VFD_ERROR_NOT_FOUND;
    case G_SPAWN_ERROR_ACCES:
    case G_SPAWN_ERROR_PERM:
      return VFD_ERROR_PERMISSION_DENIED;
    case G_SPAWN_ERROR_NOMEM:
    case G_SPAWN_ERROR_TOO_BIG:
    case G_SPAWN_ERROR_MFILE:
    case G_SPAWN_ERROR_NFILE:
      return VFD_ERROR_LIMIT_EXCEEDED;
    default:
      return VFD_ERROR_FAILED;
    }
  }
  return VFD_ERROR_FAILED;
}

GError *
vfd_error_for_api(const GError *error)
{
  return g_error_new_literal(VFD_ERROR, code_for_api(error), error->message);
}
