/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "procstat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int
gi_proc_stat_parse(const char *text, GiProcStat *ret)
{
  const char *p = text ? strrchr(text, ')') : NULL;
  int pgrp, session, tty, tpgid;
  unsigned flags;
  int ppid;
  char state;

  if (!p)
    return -EINVAL;
  if (sscanf(p + 1, " %c %d %d %d %d %d %u", &state, &ppid, &pgrp, &session, &tty, &tpgid, &flags) != 7)
    return -EINVAL;
  ret->state = state;
  ret->ppid = ppid;
  ret->flags = flags;
  return 0;
}

bool
gi_proc_stat_is_user(const GiProcStat *st)
{
  return (st->flags & GI_PF_KTHREAD) == 0;
}
