/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The console scanner, vfd_serial_scan() (vfiod/vm/ready-report.c): vfiod
 * reads a hostile guest's serial console for the "VFIOD_READY <json>" line.
 *
 * Input: the first byte picks the read size (the daemon reads 16 KiB at a
 * time, a slow guest yields smaller reads), the rest is console output. The
 * output is fed in reads of that size, each from a heap block of exactly
 * that size, until a ready line is found, as sandbox_check_serial() does.
 *
 * Checks: between calls at most 64 KiB of partial line are kept; no report
 * unless TRUE is returned; a report is text of the input (the rest of one
 * line after the tag) without a newline or trailing whitespace; and while the
 * whole output fits in those 64 KiB (nothing is dropped), the result does not
 * depend on how the output was split into reads. */
#define FUZZ_GLIB
#include "fuzz-common.h"
#include "ready-report.h"

#define PENDING_MAX (64 * 1024) /* vfd_serial_scan()'s documented bound */

static const gsize read_sizes[] = { 16384, 4096, 1021, 61 };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_glib_init();
  return 0;
}

/* Scans @data in reads of @chunk bytes; returns the report or NULL. */
static char *
scan(const uint8_t *data, size_t size, gsize chunk)
{
  g_autoptr(GString) pending = g_string_new(NULL);

  for (size_t off = 0; off < size; off += chunk) {
    gsize n = MIN(chunk, size - off);
    char *buf = g_memdup2(data + off, n);
    char *report = NULL;
    gboolean found = vfd_serial_scan(pending, buf, n, &report);

    g_free(buf);
    if (found) {
      FUZZ_CHECK(report != NULL);
      return report;
    }
    FUZZ_CHECK(report == NULL);
    FUZZ_CHECK(pending->len <= PENDING_MAX);
  }
  return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree char *report = NULL;
  gsize chunk;

  if (size < 1)
    return 0;
  chunk = read_sizes[data[0] % G_N_ELEMENTS(read_sizes)];
  data++;
  size--;

  report = scan(data, size, chunk);
  if (report) {
    size_t len = strlen(report);

    FUZZ_CHECK(strchr(report, '\n') == NULL);
    FUZZ_CHECK(len == 0 || !g_ascii_isspace(report[len - 1]));
    /* always UTF-8 (it becomes a D-Bus string); a report that was UTF-8
     * on the console is passed on unchanged */
    FUZZ_CHECK(g_utf8_validate(report, -1, NULL));
    FUZZ_CHECK(len == 0 || memmem(data, size, report, len) != NULL || strstr(report, "\xef\xbf\xbd") != NULL);
  }
  if (size <= PENDING_MAX) {
    g_autofree char *whole = scan(data, size, MAX(size, 1));
    FUZZ_CHECK((report == NULL) == (whole == NULL));
    FUZZ_CHECK(report == NULL || strcmp(report, whole) == 0);
  }
  return 0;
}
