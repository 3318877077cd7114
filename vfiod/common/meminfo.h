/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* What vfiod reads of <proc_root>/meminfo: its "Key:   N kB"-style lines
 * (the numbers as written, in the line's unit). A key that is absent reads
 * 0. */
typedef struct {
  guint64 mem_total_kib;   /* MemTotal */
  guint64 hugepages_total; /* HugePages_Total: hugepages of the default size, reserved */
  guint64 hugepages_free;  /* HugePages_Free */
  guint64 hugepage_kib;    /* Hugepagesize: the default hugepage size */
} VfdMeminfo;

/* Reads <@proc_root>/meminfo ("/proc" on a real host; [testing] proc_root)
 * into *@ret. FALSE when it cannot be read: *@ret is all 0 then. */
gboolean vfd_meminfo_read(const char *proc_root, VfdMeminfo *ret);
