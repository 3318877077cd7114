/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One error domain at the API (issue 14): vfd_error_for_api() turns every
 * error a handler may hold (the journal's GFileError, QEMU's GSpawnError,
 * GIO's GIOError, vfiod's own) into an org.vfiod.Error.* D-Bus name with
 * the same message. Without it, GDBus sends the foreign ones as
 * org.gtk.GDBus.UnmappedGError.*, which a client cannot act on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <gio/gio.h>

#include "error.h"

static void
expect_name(GQuark domain, int code, const char *want)
{
  g_autoptr(GError) in = g_error_new(domain, code, "message %d", code);
  g_autoptr(GError) out = vfd_error_for_api(in);
  g_autofree char *raw = g_dbus_error_encode_gerror(in);
  g_autofree char *name = g_dbus_error_encode_gerror(out);

  if (domain != VFD_ERROR)
    assert_true(g_str_has_prefix(raw, "org.gtk.GDBus.UnmappedGError."));
  assert_string_equal(name, want);
  assert_string_equal(out->message, in->message);
}

static void
test_mapping(void **state)
{
  (void) vfd_error_quark(); /* registers the D-Bus names */
  /* vfiod's own: unchanged */
  expect_name(VFD_ERROR, VFD_ERROR_BUSY, "org.vfiod.Error.Busy");
  expect_name(VFD_ERROR, VFD_ERROR_STUCK, "org.vfiod.Error.Stuck");
  /* a journal commit (g_file_set_contents, fsync) */
  expect_name(G_FILE_ERROR, G_FILE_ERROR_NOSPC, "org.vfiod.Error.LimitExceeded");
  expect_name(G_FILE_ERROR, G_FILE_ERROR_ACCES, "org.vfiod.Error.PermissionDenied");
  expect_name(G_FILE_ERROR, G_FILE_ERROR_IO, "org.vfiod.Error.Failed");
  expect_name(G_FILE_ERROR, G_FILE_ERROR_NOENT, "org.vfiod.Error.NotFound");
  /* QEMU's spawn */
  expect_name(G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT, "org.vfiod.Error.NotFound");
  expect_name(G_SPAWN_ERROR, G_SPAWN_ERROR_ACCES, "org.vfiod.Error.PermissionDenied");
  expect_name(G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "org.vfiod.Error.Failed");
  /* GIO (sockets, files, QMP) */
  expect_name(G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "org.vfiod.Error.TimedOut");
  expect_name(G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "org.vfiod.Error.NotFound");
  expect_name(G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "org.vfiod.Error.InvalidArgument");
  expect_name(G_IO_ERROR, G_IO_ERROR_CLOSED, "org.vfiod.Error.Failed");
  /* anything else */
  expect_name(G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, "org.vfiod.Error.Failed");
  expect_name(G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE, "org.vfiod.Error.Failed");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
