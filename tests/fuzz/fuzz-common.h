/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the harnesses: libFuzzer's entry points, and what counts as a
 * bug besides a sanitizer report. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant: says which, then aborts so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

/* The input as a C string in a heap block of exactly @size + 1 bytes, so
 * ASan sees any read past the terminating NUL. Bytes after an embedded NUL
 * are kept (a parser must stop at the first one). */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);

  if (!s)
    abort();
  if (size > 0)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

#ifdef FUZZ_GLIB
#include <glib.h>

static inline void
fuzz_glib_log(const char *domain, GLogLevelFlags level, const char *message)
{
  if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)))
    return; /* quiet: debug and info output would only slow the fuzzer down */
  fprintf(stderr, "%s%sGLib %s: %s\n", domain ? domain : "", domain ? ": " : "",
          (level & G_LOG_LEVEL_ERROR) ? "error" : (level & G_LOG_LEVEL_CRITICAL) ? "critical" : "warning", message);
  abort();
}

static inline void
fuzz_glib_log_handler(const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  fuzz_glib_log(domain, level, message);
}

static inline GLogWriterOutput
fuzz_glib_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const char *domain = NULL, *message = "";

  for (gsize i = 0; i < n_fields; i++) {
    if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].length < 0)
      domain = fields[i].value;
    else if (g_strcmp0(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
      message = fields[i].value;
  }
  fuzz_glib_log(domain, level, message);
  return G_LOG_WRITER_HANDLED;
}

/* A GLib critical (g_return_if_fail(): a precondition the caller did not
 * check) or warning on hostile input is a bug too: it aborts, so libFuzzer
 * keeps the input (GLib's own fatal mode raises SIGTRAP, which libFuzzer
 * does not catch). */
static inline void
fuzz_glib_init(void)
{
  g_setenv("G_SLICE", "always-malloc", FALSE); /* every block a malloc() that ASan tracks */
  g_log_set_default_handler(fuzz_glib_log_handler, NULL);
  g_log_set_writer_func(fuzz_glib_log_writer, NULL, NULL);
}
#endif
