/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Compatibility for manager.c only: sandbox.c became qemu-argv.c and
 * procfs.c (and the console scanner went to ready-report.c). This header
 * goes away when manager.c's split lands and includes those directly. */
#include "procfs.h"
#include "qemu-argv.h"
#include "ready-report.h"
