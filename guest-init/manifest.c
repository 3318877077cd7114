/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64  /* a module line with more parameters is refused */

static int __attribute__((format(printf, 4, 5)))
fail(char *error, size_t size, unsigned line, const char *fmt, ...)
{
  va_list ap;
  int n = 0;

  if (size == 0)
    return -EINVAL;
  if (line > 0)
    n = snprintf(error, size, "line %u: ", line);
  if (n >= 0 && (size_t) n < size) {
    va_start(ap, fmt);
    vsnprintf(error + n, size - (size_t) n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* Absolute, no empty, "." or ".." component, not "/" alone. */
static bool
is_clean_abs_path(const char *p)
{
  size_t len = strlen(p);

  if (p[0] != '/' || len < 2 || len > GI_MANIFEST_MAX_PATH)
    return false;
  for (const char *c = p + 1;; ) {
    const char *slash = strchr(c, '/');
    size_t n = slash ? (size_t) (slash - c) : strlen(c);

    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (!slash)
      return true;
    c = slash + 1;
  }
}

static bool
ends_with(const char *s, const char *suffix)
{
  size_t ls = strlen(s), lx = strlen(suffix);

  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Splits the line @s (no '\n') at single spaces into @fields. Returns the
 * number of fields, or -1 for an empty field (leading, trailing or double
 * space), a non-printable byte, or too many fields. */
static int
split_fields(char *s, char **fields, int max)
{
  int n = 0;

  for (const char *c = s; *c != '\0'; c++)
    if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
      return -1;
  for (char *p = s;; ) {
    char *sp = strchr(p, ' ');

    if (n == max || (sp ? sp == p : *p == '\0'))
      return -1;
    fields[n++] = p;
    if (!sp)
      return n;
    *sp = '\0';
    p = sp + 1;
  }
}

/* Sets *@slot to @value unless it was set before. */
static int
set_once(const char **slot, bool *seen, const char *value, const char *kind, unsigned line,
         char *error, size_t size)
{
  if (*seen)
    return fail(error, size, line, "'%s' given twice", kind);
  *seen = true;
  *slot = value;
  return 0;
}

int
gi_manifest_parse(char *text, GiManifest *ret, char *error, size_t error_size)
{
  bool seen_header = false, seen_kernel = false, seen_nvidia = false, seen_stamp = false,
       seen_firmware = false;
  unsigned line = 0;
  char *p = text;

  memset(ret, 0, sizeof(*ret));
  if (error_size > 0)
    error[0] = '\0';

  while (*p != '\0') {
    char *nl = strchr(p, '\n');
    char *fields[MAX_FIELDS];
    char *s = p;
    const char *kind;
    int n, r;

    line++;
    if (nl) {
      *nl = '\0';
      p = nl + 1;
    } else {
      p += strlen(p);
    }
    if (s[0] == '\0' || s[0] == '#')
      continue;

    n = split_fields(s, fields, MAX_FIELDS);
    if (n < 0)
      return fail(error, error_size, line,
                  "malformed (fields must be printable and separated by single spaces)");
    kind = fields[0];

    if (!seen_header) {
      unsigned long v;
      char *end;

      if (strcmp(kind, "vfiod-manifest") != 0 || n != 2)
        return fail(error, error_size, line, "not a vfiod manifest (no 'vfiod-manifest N' first line)");
      errno = 0;
      v = strtoul(fields[1], &end, 10);
      if (errno != 0 || *end != '\0' || fields[1][0] < '0' || fields[1][0] > '9')
        return fail(error, error_size, line, "bad manifest version '%s'", fields[1]);
      if (v != GI_MANIFEST_VERSION)
        return fail(error, error_size, line, "manifest version %lu is not supported (this guest-init reads %d)",
                    v, GI_MANIFEST_VERSION);
      ret->version = (unsigned) v;
      seen_header = true;
      continue;
    }

    if (strcmp(kind, "vfiod-manifest") == 0)
      return fail(error, error_size, line, "'vfiod-manifest' given twice");
    if (strcmp(kind, "kernel") == 0) {
      if (n != 2)
        return fail(error, error_size, line, "'kernel' takes one field");
      r = set_once(&ret->kernel, &seen_kernel, fields[1], kind, line, error, error_size);
    } else if (strcmp(kind, "nvidia-driver") == 0) {
      if (n != 2)
        return fail(error, error_size, line, "'nvidia-driver' takes one field");
      r = set_once(&ret->nvidia_driver, &seen_nvidia, fields[1], kind, line, error, error_size);
      if (r == 0 && strcmp(fields[1], "-") == 0)
        ret->nvidia_driver = NULL;
    } else if (strcmp(kind, "stamp") == 0) {
      if (n != 2)
        return fail(error, error_size, line, "'stamp' takes one field");
      r = set_once(&ret->stamp, &seen_stamp, fields[1], kind, line, error, error_size);
    } else if (strcmp(kind, "firmware") == 0) {
      if (n != 2)
        return fail(error, error_size, line, "'firmware' takes one directory");
      if (!is_clean_abs_path(fields[1]))
        return fail(error, error_size, line,
                    "firmware directory '%s' is not a clean absolute path "
                    "(no empty, '.' or '..' components, at most %d bytes)", fields[1], GI_MANIFEST_MAX_PATH);
      r = set_once(&ret->firmware, &seen_firmware, fields[1], kind, line, error, error_size);
    } else if (strcmp(kind, "module") == 0) {
      GiManifestModule *m;

      if (n < 2)
        return fail(error, error_size, line, "'module' needs a path");
      if (!is_clean_abs_path(fields[1]))
        return fail(error, error_size, line, "module path '%s' is not a clean absolute path "
                    "(no empty, '.' or '..' components, at most %d bytes)", fields[1], GI_MANIFEST_MAX_PATH);
      if (!ends_with(fields[1], ".ko") || strlen(strrchr(fields[1], '/')) <= strlen("/.ko"))
        return fail(error, error_size, line, "module path '%s' is not an uncompressed .ko", fields[1]);
      if (ret->n_modules == GI_MANIFEST_MAX_MODULES)
        return fail(error, error_size, line, "more than %d modules", GI_MANIFEST_MAX_MODULES);
      m = &ret->modules[ret->n_modules++];
      m->path = fields[1];
      m->line = line;
      m->params = "";
      if (n > 2) {
        /* Undo the split between the parameters: they go to the kernel
         * joined by spaces. The fields are contiguous in @text. */
        for (int i = 3; i < n; i++)
          fields[i][-1] = ' ';
        m->params = fields[2];
      }
      r = 0;
    } else {
      if (ret->n_unknown < GI_MANIFEST_MAX_UNKNOWN)
        ret->unknown_lines[ret->n_unknown] = line;
      ret->n_unknown++;
      r = 0;
    }
    if (r < 0)
      return r;
  }

  if (!seen_header)
    return fail(error, error_size, 0, "empty manifest (no 'vfiod-manifest N' line)");
  if (!seen_kernel)
    return fail(error, error_size, 0, "no 'kernel' line");
  return 0;
}

void
gi_module_name(const char *path, char *buf, size_t size)
{
  const char *base = strrchr(path, '/');
  size_t len, i;

  if (size == 0)
    return;
  base = base ? base + 1 : path;
  len = strlen(base);
  if (ends_with(base, ".ko"))
    len -= 3;
  for (i = 0; i < len && i + 1 < size; i++)
    buf[i] = base[i] == '-' ? '_' : base[i];
  buf[i] = '\0';
}

int
gi_modinfo_parse(const char *data, size_t len, GiModinfo *ret)
{
  size_t i = 0;

  memset(ret, 0, sizeof(*ret));
  while (i < len) {
    const char *str = data + i;
    size_t n = strnlen(str, len - i);

    i += n + 1;
    if (n >= 8 && strncmp(str, "softdep=", 8) == 0) {
      ret->softdep = true;
    } else if (n >= 8 && strncmp(str, "depends=", 8) == 0) {
      const char *p = str + 8, *end = str + n;

      ret->has_depends = true;
      while (p < end) {
        const char *comma = memchr(p, ',', (size_t) (end - p));
        size_t w = comma ? (size_t) (comma - p) : (size_t) (end - p);

        if (w > 0) {
          if (w >= sizeof(ret->depends[0]) || ret->n_depends == GI_MODINFO_MAX_DEPENDS)
            return -E2BIG;
          for (size_t k = 0; k < w; k++)
            ret->depends[ret->n_depends][k] = p[k] == '-' ? '_' : p[k];
          ret->depends[ret->n_depends][w] = '\0';
          ret->n_depends++;
        }
        p += w + 1;
      }
    }
  }
  return 0;
}
