/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "payload.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool __attribute__((format(printf, 3, 4)))
fail(char *err, size_t err_size, const char *fmt, ...)
{
  va_list ap;

  if (err_size > 0) {
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return false;
}

bool
gi_payload_path_valid(const char *p)
{
  size_t n = strnlen(p, VFIOD_PAYLOAD_MAX_PATH + 1);

  if (n < 2 || n > VFIOD_PAYLOAD_MAX_PATH || p[0] != '/')
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
      return false;
  for (const char *c = p + 1;;) {
    size_t len = 0;

    while (c[len] != '\0' && c[len] != '/')
      len++;
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    if (c[len] == '\0')
      return true;
    c += len + 1;
  }
}

bool
gi_payload_env_valid(const char *e)
{
  size_t i = 0;

  for (; e[i] != '\0' && e[i] != '='; i++) {
    unsigned char c = (unsigned char) e[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
      return false;
  }
  return i > 0 && e[i] == '=';
}

/* Reads a decimal count at *@pos ending in @end (' ' or '\n'): no sign, no
 * leading zero (but "0"), at most @max. */
static bool
read_count(const char *buf, size_t len, size_t *pos, char end, size_t max, size_t *ret)
{
  size_t p = *pos, v = 0, digits = 0;

  while (p < len && buf[p] >= '0' && buf[p] <= '9') {
    if (digits == 1 && v == 0)
      return false; /* leading zero */
    v = v * 10 + (size_t) (buf[p] - '0');
    if (v > max)
      return false;
    p++;
    digits++;
  }
  if (digits == 0 || p >= len || buf[p] != end)
    return false;
  *pos = p + 1;
  *ret = v;
  return true;
}

/* Takes @n bytes at *@pos followed by '\n' as a string: no NUL inside, the
 * '\n' replaced by NUL. */
static const char *
take_string(char *buf, size_t len, size_t *pos, size_t n)
{
  char *s = buf + *pos;

  if (n > len - *pos || n + 1 > len - *pos || s[n] != '\n' || memchr(s, '\0', n))
    return NULL;
  s[n] = '\0';
  *pos += n + 1;
  return s;
}

bool
gi_payload_parse(char *buf, size_t len, GiPayload *ret, char *err, size_t err_size)
{
  const size_t magic_len = sizeof(VFIOD_PAYLOAD_MAGIC) - 1;
  size_t pos = magic_len, exec_bytes = 0;
  unsigned rec = 0;

  memset(ret, 0, sizeof(*ret));
  if (len > VFIOD_PAYLOAD_MAX)
    return fail(err, err_size, "%zu bytes, more than the %u allowed", len, VFIOD_PAYLOAD_MAX);
  if (len < magic_len || memcmp(buf, VFIOD_PAYLOAD_MAGIC, magic_len) != 0)
    return fail(err, err_size, "not a version 1 payload (no '%.*s' header)", (int) magic_len - 1,
                VFIOD_PAYLOAD_MAGIC);
  for (;;) {
    const char *kind = buf + pos;
    size_t n = 0;

    rec++;
    if (len - pos >= 4 && memcmp(kind, "end\n", 4) == 0) {
      if (pos + 4 != len)
        return fail(err, err_size, "%zu bytes after the end record", len - pos - 4);
      if (ret->cmd == NULL && (ret->n_args > 0 || ret->n_env > 0))
        return fail(err, err_size, "arguments or environment without a command");
      return true;
    }
    if (len - pos >= 4 && (memcmp(kind, "cmd ", 4) == 0 || memcmp(kind, "arg ", 4) == 0 ||
                           memcmp(kind, "env ", 4) == 0)) {
      char k = kind[0];
      const char *s;

      pos += 4;
      if (!read_count(buf, len, &pos, '\n', k == 'c' ? VFIOD_PAYLOAD_MAX_PATH : VFIOD_PAYLOAD_MAX_STRING, &n))
        return fail(err, err_size, "record %u (%.3s): a bad or too large length", rec, kind);
      s = take_string(buf, len, &pos, n);
      if (!s)
        return fail(err, err_size, "record %u (%.3s): cut short, not followed by a newline, or holds a NUL", rec,
                    kind);
      exec_bytes += n + 1;
      if (exec_bytes > VFIOD_PAYLOAD_MAX_EXEC)
        return fail(err, err_size, "record %u (%.3s): command, arguments and environment over %u bytes", rec, kind,
                    VFIOD_PAYLOAD_MAX_EXEC);
      if (k == 'c') {
        if (ret->cmd)
          return fail(err, err_size, "record %u (cmd): a second command", rec);
        if (!gi_payload_path_valid(s))
          return fail(err, err_size, "record %u (cmd): not an absolute path without '.', '..' or empty parts",
                      rec);
        ret->cmd = s;
      } else if (k == 'a') {
        if (ret->n_args >= VFIOD_PAYLOAD_MAX_ARGS)
          return fail(err, err_size, "record %u (arg): more than %u arguments", rec, VFIOD_PAYLOAD_MAX_ARGS);
        ret->args[ret->n_args++] = s;
      } else {
        if (ret->n_env >= VFIOD_PAYLOAD_MAX_ENV)
          return fail(err, err_size, "record %u (env): more than %u entries", rec, VFIOD_PAYLOAD_MAX_ENV);
        if (!gi_payload_env_valid(s))
          return fail(err, err_size, "record %u (env): not NAME=VALUE with NAME [A-Za-z_][A-Za-z0-9_]*", rec);
        ret->env[ret->n_env++] = s;
      }
      continue;
    }
    if (len - pos >= 5 && memcmp(kind, "file ", 5) == 0) {
      size_t mode = 0, plen = 0, dlen = 0, p = pos + 5;
      GiPayloadFile *f;
      const char *path;

      if (ret->n_files >= VFIOD_PAYLOAD_MAX_FILES)
        return fail(err, err_size, "record %u (file): more than %u files", rec, VFIOD_PAYLOAD_MAX_FILES);
      /* MODE is octal: read its digits as decimal, then check each. */
      {
        size_t q = p, digits = 0;
        while (q < len && buf[q] >= '0' && buf[q] <= '7' && digits < 4) {
          mode = mode * 8 + (size_t) (buf[q] - '0');
          q++;
          digits++;
        }
        if (digits == 0 || q >= len || buf[q] != ' ' || mode > VFIOD_PAYLOAD_MAX_MODE)
          return fail(err, err_size, "record %u (file): a bad mode (octal, at most 0777)", rec);
        p = q + 1;
      }
      if (!read_count(buf, len, &p, ' ', VFIOD_PAYLOAD_MAX_PATH, &plen) ||
          !read_count(buf, len, &p, '\n', VFIOD_PAYLOAD_MAX, &dlen))
        return fail(err, err_size, "record %u (file): bad or too large lengths", rec);
      pos = p;
      path = take_string(buf, len, &pos, plen);
      if (!path || !gi_payload_path_valid(path))
        return fail(err, err_size, "record %u (file): the path is cut short or not an absolute path without '.', "
                    "'..', empty parts or control bytes", rec);
      for (size_t i = 0; i < ret->n_files; i++)
        if (strcmp(ret->files[i].path, path) == 0)
          return fail(err, err_size, "record %u (file): %s given twice", rec, path);
      if (dlen > len - pos || dlen + 1 > len - pos || buf[pos + dlen] != '\n')
        return fail(err, err_size, "record %u (file %s): the contents are cut short", rec, path);
      f = &ret->files[ret->n_files++];
      f->path = path;
      f->mode = (unsigned) mode;
      f->data = (const unsigned char *) buf + pos;
      f->len = dlen;
      pos += dlen + 1;
      continue;
    }
    return fail(err, err_size, "record %u: unknown or cut short (at byte %zu)", rec, pos);
  }
}
