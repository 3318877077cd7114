/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void
out_putc(GiOut *o, char c)
{
  if (o->len + 1 < o->size)
    o->buf[o->len] = c;
  o->len++;
}

void
gi_out_puts(GiOut *o, const char *s)
{
  for (; *s != '\0'; s++)
    out_putc(o, *s);
}

static void __attribute__((format(printf, 2, 3)))
out_printf(GiOut *o, const char *fmt, ...)
{
  char tmp[64];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(tmp, sizeof(tmp), fmt, ap);  /* only used for short numbers */
  va_end(ap);
  gi_out_puts(o, tmp);
}

void
gi_out_json_string(GiOut *o, const char *s)
{
  out_putc(o, '"');
  for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p != '\0'; p++) {
    if (*p == '"' || *p == '\\') {
      out_putc(o, '\\');
      out_putc(o, (char) *p);
    } else if (*p == '\n') {
      gi_out_puts(o, "\\n");
    } else if (*p < 0x20 || *p == 0x7f) {
      out_printf(o, "\\u%04x", *p);
    } else if (*p >= 0x80) {
      gi_out_puts(o, "\\ufffd");
    } else {
      out_putc(o, (char) *p);
    }
  }
  out_putc(o, '"');
}

void
gi_out_json_string_or_null(GiOut *o, const char *s)
{
  if (s)
    gi_out_json_string(o, s);
  else
    gi_out_puts(o, "null");
}

size_t
gi_out_finish(GiOut *o)
{
  out_putc(o, '\n');
  if (o->size > 0)
    o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
  return o->len;
}

/* ,"<key>": */
static void
out_key(GiOut *o, const char *key, bool first)
{
  if (!first)
    out_putc(o, ',');
  gi_out_json_string(o, key);
  out_putc(o, ':');
}

/* A JSON array of strings. */
static void
out_string_array(GiOut *o, const char *const *v, size_t n)
{
  out_putc(o, '[');
  for (size_t i = 0; i < n; i++) {
    if (i > 0)
      out_putc(o, ',');
    gi_out_json_string(o, v[i]);
  }
  out_putc(o, ']');
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

int
gi_pci_parse_resource(const char *text, GiPciBar bars[GI_PCI_NUM_BARS])
{
  const char *p = text;
  int parsed = 0;

  memset(bars, 0, GI_PCI_NUM_BARS * sizeof(*bars));
  for (int i = 0; i < GI_PCI_NUM_BARS && p && *p; i++) {
    unsigned long long start, end, flags;
    const char *nl = strchr(p, '\n');

    if (sscanf(p, "%llx %llx %llx", &start, &end, &flags) == 3) {
      parsed++;
      if (end != 0 && end >= start && !(start == 0 && end == UINT64_MAX)) {
        bars[i].start = start;
        bars[i].size = end - start + 1;
        bars[i].flags = flags;
      }
    }
    p = nl ? nl + 1 : NULL;
  }
  return parsed;
}

bool
gi_pci_bar_assigned(const GiPciBar *bar)
{
  return bar->size > 0 && bar->start != 0 && !(bar->flags & GI_IORESOURCE_UNSET);
}

/* The "bars" array of @d: the BARs it implements. */
static void
out_bars(GiOut *o, const GiPciDevice *d)
{
  bool first = true;

  out_putc(o, '[');
  for (int i = 0; i < GI_PCI_NUM_BARS; i++) {
    const GiPciBar *b = &d->bars[i];
    const char *type;

    if (b->size == 0)
      continue;
    if (b->flags & GI_IORESOURCE_IO)
      type = "io";
    else
      type = (b->flags & GI_IORESOURCE_MEM_64) ? "mem64" : "mem32";
    gi_out_puts(o, first ? "{" : ",{");
    first = false;
    out_key(o, "bar", true);
    out_printf(o, "%d", i);
    out_key(o, "size", false);
    out_printf(o, "%" PRIu64, b->size);
    out_key(o, "type", false);
    gi_out_json_string(o, type);
    out_key(o, "prefetch", false);
    gi_out_puts(o, (b->flags & GI_IORESOURCE_PREFETCH) ? "true" : "false");
    out_key(o, "assigned", false);
    gi_out_puts(o, gi_pci_bar_assigned(b) ? "true" : "false");
    out_putc(o, '}');
  }
  out_putc(o, ']');
}

/* The "pci" array of @r. */
static void
out_pci(GiOut *o, const GiReady *r)
{
  out_putc(o, '[');
  for (size_t i = 0; i < r->n_pci; i++) {
    const GiPciDevice *d = &r->pci[i];
    char id[16], class_code[16];

    snprintf(id, sizeof(id), "%04x:%04x", d->vendor, d->device);
    snprintf(class_code, sizeof(class_code), "%06x", d->class_code & 0xffffffu);
    gi_out_puts(o, i == 0 ? "{" : ",{");
    out_key(o, "bdf", true);
    gi_out_json_string(o, d->bdf);
    out_key(o, "id", false);
    gi_out_json_string(o, id);
    out_key(o, "class", false);
    gi_out_json_string(o, class_code);
    out_key(o, "driver", false);
    gi_out_json_string_or_null(o, d->driver[0] != '\0' ? d->driver : NULL);
    out_key(o, "bars", false);
    out_bars(o, d);
    out_putc(o, '}');
  }
  out_putc(o, ']');
}

/* The "driver_layer" object of @r, or null. */
static void
out_driver_layer(GiOut *o, const GiReady *r)
{
  if (!r->layer_dev) {
    gi_out_puts(o, "null");
    return;
  }
  out_putc(o, '{');
  out_key(o, "dev", true);
  gi_out_json_string(o, r->layer_dev);
  out_key(o, "path", false);
  gi_out_json_string_or_null(o, r->layer_path);
  out_key(o, "version", false);
  gi_out_json_string_or_null(o, r->layer_version);
  out_key(o, "key", false);
  gi_out_json_string_or_null(o, r->layer_key);
  out_key(o, "modules", false);
  gi_out_json_string_or_null(o, r->layer_modules);
  if (r->layer_firmware) {
    out_key(o, "firmware", false);
    out_putc(o, '{');
    out_key(o, "path", true);
    gi_out_json_string(o, r->layer_firmware);
    out_key(o, "files", false);
    out_string_array(o, r->layer_firmware_files, r->n_layer_firmware_files);
    out_putc(o, '}');
  }
  out_putc(o, '}');
}

/* The "root" object of @r, or null. */
static void
out_root(GiOut *o, const GiReady *r)
{
  if (!r->root_dev) {
    gi_out_puts(o, "null");
    return;
  }
  out_putc(o, '{');
  out_key(o, "dev", true);
  gi_out_json_string(o, r->root_dev);
  out_key(o, "fstype", false);
  gi_out_json_string_or_null(o, r->root_fstype);
  out_putc(o, '}');
}

/* The "timings_ms" object of @r. */
static void
out_timings(GiOut *o, const GiReady *r)
{
  out_putc(o, '{');
  for (size_t i = 0; i < r->n_timings; i++) {
    out_key(o, r->timings[i].name, i == 0);
    out_printf(o, "%" PRIu64, r->timings[i].ms);
  }
  out_putc(o, '}');
}

size_t
gi_format_ready(char *buf, size_t size, const GiReady *r)
{
  GiOut o = { buf, size, 0 };

  gi_out_puts(&o, "VFIOD_READY {\"v\":1");
  out_key(&o, "sandbox", false);
  gi_out_json_string(&o, r->sandbox);
  out_key(&o, "kernel", false);
  gi_out_json_string(&o, r->kernel);
  out_key(&o, "uptime_ms", false);
  out_printf(&o, "%" PRIu64, r->uptime_ms);
  out_key(&o, "report", false);
  gi_out_json_string(&o, r->report);
  out_key(&o, "modules", false);
  out_string_array(&o, r->modules, r->n_modules);

  out_key(&o, "pci", false);
  out_pci(&o, r);

  out_key(&o, "nvidia", false);
  if (r->nvidia_driver) {
    out_putc(&o, '{');
    out_key(&o, "driver", true);
    gi_out_json_string(&o, r->nvidia_driver);
    out_key(&o, "nodes", false);
    out_string_array(&o, r->nvidia_nodes, r->n_nvidia_nodes);
    out_key(&o, "persistenced", false);
    gi_out_json_string_or_null(&o, r->persistenced);
    out_key(&o, "fabricmanager", false);
    gi_out_json_string_or_null(&o, r->fabricmanager);
    out_key(&o, "smi", false);
    gi_out_json_string_or_null(&o, r->smi);
    out_putc(&o, '}');
  } else {
    gi_out_puts(&o, "null");
  }
  out_key(&o, "gpus", false);
  out_string_array(&o, r->gpus, r->n_gpus);
  if (r->n_smi_output > 0) {
    out_key(&o, "smi_output", false);
    out_string_array(&o, r->smi_output, r->n_smi_output);
  }

  out_key(&o, "driver_layer", false);
  out_driver_layer(&o, r);
  out_key(&o, "cuda", false);
  if (r->cuda)
    gi_out_cuda(&o, r->cuda);
  else
    gi_out_puts(&o, "null");

  out_key(&o, "net", false);
  if (r->net_if) {
    out_putc(&o, '{');
    out_key(&o, "if", true);
    gi_out_json_string(&o, r->net_if);
    out_key(&o, "mac", false);
    gi_out_json_string_or_null(&o, r->net_mac);
    out_key(&o, "ip", false);
    gi_out_json_string_or_null(&o, r->net_ip);
    out_key(&o, "gw", false);
    gi_out_json_string_or_null(&o, r->net_gw);
    out_key(&o, "dns", false);
    out_string_array(&o, r->dns, r->n_dns);
    out_putc(&o, '}');
  } else {
    gi_out_puts(&o, "null");
  }

  out_key(&o, "root", false);
  out_root(&o, r);
  out_key(&o, "workload", false);
  gi_out_json_string_or_null(&o, r->workload);

  out_key(&o, "timings_ms", false);
  out_timings(&o, r);
  out_putc(&o, '}');
  return gi_out_finish(&o);
}

void
gi_out_cuda(GiOut *o, const GiCudaReport *c)
{
  out_putc(o, '{');
  out_key(o, "version", true);
  if (c->version > 0)
    out_printf(o, "%ld", c->version);
  else
    gi_out_puts(o, "null");
  out_key(o, "error", false);
  gi_out_json_string_or_null(o, c->error);
  out_key(o, "probe", false);
  if (c->probe_ran) {
    out_putc(o, '{');
    out_key(o, "call", true);
    gi_out_json_string_or_null(o, c->probe_call);
    out_key(o, "code", false);
    out_printf(o, "%ld", c->probe_call ? c->probe_code : 0);
    out_key(o, "error", false);
    gi_out_json_string_or_null(o, c->probe_call ? c->probe_error : NULL);
    out_putc(o, '}');
  } else {
    gi_out_puts(o, "null");
  }
  out_key(o, "gpus", false);
  out_putc(o, '[');
  for (size_t i = 0; i < c->n_gpus; i++) {
    const GiGpuResult *g = &c->gpus[i];

    gi_out_puts(o, i == 0 ? "{" : ",{");
    out_key(o, "bdf", true);
    gi_out_json_string(o, g->bdf);
    out_key(o, "name", false);
    gi_out_json_string_or_null(o, g->name[0] != '\0' ? g->name : NULL);
    out_key(o, "driver", false);
    gi_out_json_string_or_null(o, c->driver);
    out_key(o, "probe", false);
    gi_out_json_string(o, g->ok ? "ok" : "failed");
    out_key(o, "call", false);
    gi_out_json_string_or_null(o, g->ok ? NULL : g->call);
    out_key(o, "error", false);
    gi_out_json_string_or_null(o, g->ok ? NULL : g->error);
    out_putc(o, '}');
  }
  out_putc(o, ']');
  out_key(o, "nvrm", false);
  out_string_array(o, c->nvrm, c->n_nvrm);
  out_putc(o, '}');
}

size_t
gi_format_exit(char *buf, size_t size, const GiExit *e)
{
  GiOut o = { buf, size, 0 };

  gi_out_puts(&o, "VFIOD_EXIT {");
  out_key(&o, "status", true);
  out_printf(&o, "%d", e->status);
  out_key(&o, "signal", false);
  out_printf(&o, "%d", e->signal);
  out_key(&o, "reason", false);
  gi_out_json_string(&o, e->reason);
  out_key(&o, "runtime_ms", false);
  out_printf(&o, "%" PRIu64, e->runtime_ms);
  out_key(&o, "reaped", false);
  out_printf(&o, "%u", e->reaped);
  out_key(&o, "killed", false);
  out_printf(&o, "%u", e->killed);
  out_key(&o, "sigkilled", false);
  out_printf(&o, "%u", e->sigkilled);
  out_key(&o, "left", false);
  out_printf(&o, "%u", e->left);
  out_key(&o, "zombies", false);
  out_printf(&o, "%u", e->zombies);
  out_putc(&o, '}');
  return gi_out_finish(&o);
}

size_t
gi_format_report_status(char *buf, size_t size, const char *to, const char *line_tag, bool ok,
                        unsigned attempts, const char *error)
{
  GiOut o = { buf, size, 0 };

  gi_out_puts(&o, "VFIOD_REPORT {");
  out_key(&o, "to", true);
  gi_out_json_string(&o, to);
  out_key(&o, "line", false);
  gi_out_json_string(&o, line_tag);
  out_key(&o, "ok", false);
  gi_out_puts(&o, ok ? "true" : "false");
  out_key(&o, "attempts", false);
  out_printf(&o, "%u", attempts);
  out_key(&o, "error", false);
  gi_out_json_string_or_null(&o, error);
  out_putc(&o, '}');
  return gi_out_finish(&o);
}

/* "<tag> {"<field>":"<value>"}" */
static size_t
format_one(char *buf, size_t size, const char *tag, const char *field, const char *value)
{
  GiOut o = { buf, size, 0 };

  gi_out_puts(&o, tag);
  gi_out_puts(&o, " {");
  gi_out_json_string(&o, field);
  out_putc(&o, ':');
  gi_out_json_string(&o, value);
  out_putc(&o, '}');
  return gi_out_finish(&o);
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

size_t
gi_format_fatal_gpu(char *buf, size_t size, const char *error, const GiCudaReport *cuda, const char *persistenced,
                    const char *smi, const char *const *smi_output, size_t n_smi_output)
{
  return gi_format_fatal_gpu_ctx(buf, size, error, cuda, persistenced, smi, smi_output, n_smi_output, NULL);
}

size_t
gi_format_fatal_gpu_ctx(char *buf, size_t size, const char *error, const GiCudaReport *cuda,
                        const char *persistenced, const char *smi, const char *const *smi_output,
                        size_t n_smi_output, const GiReady *ctx)
{
  GiOut o = { buf, size, 0 };

  gi_out_puts(&o, "VFIOD_FATAL {");
  out_key(&o, "error", true);
  gi_out_json_string(&o, error);
  out_key(&o, "cuda", false);
  gi_out_cuda(&o, cuda);
  out_key(&o, "persistenced", false);
  gi_out_json_string_or_null(&o, persistenced);
  out_key(&o, "smi", false);
  gi_out_json_string_or_null(&o, smi);
  out_key(&o, "smi_output", false);
  out_string_array(&o, smi_output, n_smi_output);
  if (ctx) {
    out_key(&o, "sandbox", false);
    gi_out_json_string(&o, ctx->sandbox);
    out_key(&o, "kernel", false);
    gi_out_json_string(&o, ctx->kernel);
    out_key(&o, "uptime_ms", false);
    out_printf(&o, "%" PRIu64, ctx->uptime_ms);
    out_key(&o, "modules", false);
    out_string_array(&o, ctx->modules, ctx->n_modules);
    out_key(&o, "pci", false);
    out_pci(&o, ctx);
    out_key(&o, "driver_layer", false);
    out_driver_layer(&o, ctx);
    out_key(&o, "root", false);
    out_root(&o, ctx);
    out_key(&o, "timings_ms", false);
    out_timings(&o, ctx);
  }
  out_putc(&o, '}');
  return gi_out_finish(&o);
}

size_t
gi_format_poweroff_gpu(char *buf, size_t size, const char *reason, const GiTeardown *t)
{
  GiOut o = { buf, size, 0 };

  if (!t)
    return gi_format_poweroff(buf, size, reason);
  gi_out_puts(&o, "VFIOD_POWEROFF {");
  out_key(&o, "reason", true);
  gi_out_json_string(&o, reason);
  out_key(&o, "gpu", false);
  out_putc(&o, '{');
  out_key(&o, "persistenced", true);
  gi_out_json_string_or_null(&o, t->persistenced);
  out_key(&o, "unloaded", false);
  out_string_array(&o, t->unloaded, t->n_unloaded);
  out_key(&o, "error", false);
  gi_out_json_string_or_null(&o, t->error);
  gi_out_puts(&o, "}}");
  return gi_out_finish(&o);
}
