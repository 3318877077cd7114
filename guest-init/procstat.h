/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* /proc/<pid>/stat, the few fields guest-init needs to count what is left
 * when the workload has ended. Pure code. */

#define GI_PF_KTHREAD 0x00200000u  /* include/linux/sched.h: a kernel thread */

typedef struct {
  char state;          /* 'R', 'S', 'D', 'Z', ... */
  int ppid;
  unsigned flags;      /* task flags (PF_*) */
} GiProcStat;

/* Parses the text of /proc/<pid>/stat: "pid (comm) state ppid pgrp session
 * tty_nr tpgid flags ...". comm may hold spaces and parentheses: the fields
 * are read after the last ')'. Returns 0, or -EINVAL. */
int gi_proc_stat_parse(const char *text, GiProcStat *ret);

/* A user-space process other than a kernel thread. */
bool gi_proc_stat_is_user(const GiProcStat *st);
