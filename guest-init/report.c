/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A bounded output that keeps counting once full, like snprintf(). */
typedef struct {
  char *buf;
  size_t size;
  size_t len;
} Out;

static void
out_putc(Out *o, char c)
{
  if (o->len + 1 < o->size)
    o->buf[o->len] = c;
  o->len++;
}

static void
out_puts(Out *o, const char *s)
{
  for (; *s != '\0'; s++)
    out_putc(o, *s);
}

static void __attribute__((format(printf, 2, 3)))
out_printf(Out *o, const char *fmt, ...)
{
  char tmp[64];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(tmp, sizeof(tmp), fmt, ap);  /* only used for short numbers */
  va_end(ap);
  out_puts(o, tmp);
}

/* Appends @s as a JSON string, quotes included. */
static void
out_json_string(Out *o, const char *s)
{
  out_putc(o, '"');
  for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p != '\0'; p++) {
    if (*p == '"' || *p == '\\') {
      out_putc(o, '\\');
      out_putc(o, (char) *p);
    } else if (*p == '\n') {
      out_puts(o, "\\n");
    } else if (*p < 0x20 || *p == 0x7f) {
      out_printf(o, "\\u%04x", *p);
    } else if (*p >= 0x80) {
      out_puts(o, "\\ufffd");
    } else {
      out_putc(o, (char) *p);
    }
  }
  out_putc(o, '"');
}

static size_t
out_finish(Out *o)
{
  out_putc(o, '\n');
  if (o->size > 0)
    o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
  return o->len;
}

/* Parses "DDDD:BB:DD.F" (hex, any number of domain digits); 0 on success. */
static int
bdf_parse(const char *s, unsigned v[4])
{
  char tail;

  if (sscanf(s, "%x:%x:%x.%x%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4)
    return -1;
  return 0;
}

int
gi_pci_device_compare(const void *a, const void *b)
{
  const GiPciDevice *x = a, *y = b;
  unsigned vx[4], vy[4];
  bool okx = bdf_parse(x->bdf, vx) == 0, oky = bdf_parse(y->bdf, vy) == 0;

  if (okx != oky)
    return okx ? -1 : 1;
  if (okx)
    for (int i = 0; i < 4; i++)
      if (vx[i] != vy[i])
        return vx[i] < vy[i] ? -1 : 1;
  return strcmp(x->bdf, y->bdf);
}

size_t
gi_format_ready(char *buf, size_t size, const char *sandbox, const char *kernel,
                uint64_t uptime_ms, const GiPciDevice *devices, size_t n_devices)
{
  Out o = { buf, size, 0 };

  out_puts(&o, "VFIOD_READY {\"v\":1,\"sandbox\":");
  out_json_string(&o, sandbox);
  out_puts(&o, ",\"kernel\":");
  out_json_string(&o, kernel);
  out_printf(&o, ",\"uptime_ms\":%" PRIu64 ",\"pci\":[", uptime_ms);
  for (size_t i = 0; i < n_devices; i++) {
    char id[16];

    snprintf(id, sizeof(id), "%04x:%04x", devices[i].vendor, devices[i].device);
    out_puts(&o, i == 0 ? "{\"bdf\":" : ",{\"bdf\":");
    out_json_string(&o, devices[i].bdf);
    out_puts(&o, ",\"id\":");
    out_json_string(&o, id);
    out_putc(&o, '}');
  }
  out_puts(&o, "]}");
  return out_finish(&o);
}

/* "<tag> {"<field>":"<value>"}" */
static size_t
format_one(char *buf, size_t size, const char *tag, const char *field, const char *value)
{
  Out o = { buf, size, 0 };

  out_puts(&o, tag);
  out_puts(&o, " {");
  out_json_string(&o, field);
  out_putc(&o, ':');
  out_json_string(&o, value);
  out_putc(&o, '}');
  return out_finish(&o);
}

size_t
gi_format_poweroff(char *buf, size_t size, const char *reason)
{
  return format_one(buf, size, "VFIOD_POWEROFF", "reason", reason);
}

size_t
gi_format_fatal(char *buf, size_t size, const char *error)
{
  return format_one(buf, size, "VFIOD_FATAL", "error", error);
}
