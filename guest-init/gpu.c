/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gpu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

/* ---- PCI addresses ---- */

/* Parses 1..@max_digits hex digits at *@p into *@ret; advances *@p. */
static bool
hex_field(const char **p, unsigned max_digits, unsigned long *ret)
{
  unsigned long v = 0;
  unsigned n = 0;

  for (; n < max_digits; n++, (*p)++) {
    int d = gi_hex_digit(**p);

    if (d < 0)
      break;
    v = v * 16 + (unsigned) d;
  }
  if (n == 0)
    return false;
  *ret = v;
  return true;
}

int
gi_bdf_normalize(const char *s, char ret[GI_GPU_BDF_SIZE])
{
  unsigned long f[4] = { 0 };
  const char *p = s;
  const char *colon2;

  if (!s)
    return -EINVAL;
  /* Two colons: a domain first. */
  colon2 = strchr(s, ':');
  colon2 = colon2 ? strchr(colon2 + 1, ':') : NULL;
  if (colon2) {
    if (!hex_field(&p, 8, &f[0]) || *p++ != ':')
      return -EINVAL;
  }
  if (!hex_field(&p, 2, &f[1]) || *p++ != ':' || !hex_field(&p, 2, &f[2]) || *p++ != '.' ||
      !hex_field(&p, 1, &f[3]) || *p != '\0')
    return -EINVAL;
  if (f[0] > 0xffff || f[1] > 0xff || f[2] > 0x1f || f[3] > 7)
    return -EINVAL;
  snprintf(ret, GI_GPU_BDF_SIZE, "%04lx:%02lx:%02lx.%lx", f[0], f[1], f[2], f[3]);
  return 0;
}

bool
gi_pci_is_nvidia_gpu(uint16_t vendor, uint32_t class_code)
{
  uint32_t cls = (class_code >> 8) & 0xffff;

  return vendor == 0x10de && (cls == 0x0300 || cls == 0x0302);
}

bool
gi_pci_is_nvswitch(uint16_t vendor, uint32_t class_code)
{
  return vendor == 0x10de && ((class_code >> 8) & 0xffff) == 0x0680;
}

/* ---- a small JSON reader for the probe's line ---- */

#define JSON_MAX_DEPTH 4

typedef struct {
  const char *s;
  size_t pos;
  char *err;
  size_t err_size;
  bool failed;
} Json;

static bool __attribute__((format(printf, 2, 3)))
json_fail(Json *j, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (j->failed)
    return false;
  j->failed = true;
  if (j->err_size == 0)
    return false;
  n = snprintf(j->err, j->err_size, "byte %zu: ", j->pos);
  if (n >= 0 && (size_t) n < j->err_size) {
    va_start(ap, fmt);
    vsnprintf(j->err + n, j->err_size - (size_t) n, fmt, ap);
    va_end(ap);
  }
  return false;
}

static void
json_ws(Json *j)
{
  while (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' || j->s[j->pos] == '\n' || j->s[j->pos] == '\r')
    j->pos++;
}

static bool
json_expect(Json *j, char c)
{
  json_ws(j);
  if (j->s[j->pos] != c)
    return json_fail(j, "expected '%c'", c);
  j->pos++;
  return true;
}

/* The literal @word (true, false, null) at the current byte. */
static bool
json_literal(Json *j, const char *word)
{
  size_t len = strlen(word);

  if (strncmp(j->s + j->pos, word, len) != 0)
    return json_fail(j, "expected %s", word);
  j->pos += len;
  return true;
}

/* A string at the current byte (after blanks), unescaped into @buf (@size
 * bytes, NUL-terminated, cut; NULL to skip it). Bytes >= 0x80 and escapes
 * outside printable ASCII are stored as '?'. */
static bool
json_string(Json *j, char *buf, size_t size)
{
  size_t n = 0;

  json_ws(j);
  if (j->s[j->pos] != '"')
    return json_fail(j, "expected a string");
  j->pos++;
  for (;;) {
    unsigned char c = (unsigned char) j->s[j->pos];
    char out;

    if (c == '\0')
      return json_fail(j, "unterminated string");
    if (c == '"') {
      j->pos++;
      break;
    }
    if (c < 0x20)
      return json_fail(j, "control byte 0x%02x in a string", c);
    if (c == '\\') {
      char e = j->s[j->pos + 1];

      j->pos += 2;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out = e;
        break;
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        out = '?';
        break;
      case 'u': {
        int v = 0;

        for (int i = 0; i < 4; i++) {
          int d = gi_hex_digit(j->s[j->pos + (size_t) i]);
          if (d < 0) {
            j->pos -= 2;
            return json_fail(j, "bad \\u escape");
          }
          v = v * 16 + d;
        }
        j->pos += 4;
        out = v >= 0x20 && v < 0x7f ? (char) v : '?';
        break;
      }
      default:
        j->pos -= 2;
        return json_fail(j, "bad escape");
      }
    } else {
      out = c < 0x80 ? (char) c : '?';
      j->pos++;
    }
    if (buf && n + 1 < size)
      buf[n++] = out;
  }
  if (buf && size > 0)
    buf[n] = '\0';
  return true;
}

/* A string or null (stored as ""). */
static bool
json_string_or_null(Json *j, char *buf, size_t size)
{
  json_ws(j);
  if (j->s[j->pos] == 'n') {
    if (size > 0)
      buf[0] = '\0';
    return json_literal(j, "null");
  }
  return json_string(j, buf, size);
}

/* A number; integers only when @ret is not NULL (at most 18 digits). */
static bool
json_number(Json *j, long *ret)
{
  const char *p = j->s + j->pos;
  bool neg = false;
  long v = 0;
  int digits = 0;

  json_ws(j);
  p = j->s + j->pos;
  if (*p == '-') {
    neg = true;
    p++;
  }
  if (*p < '0' || *p > '9')
    return json_fail(j, "expected a number");
  if (*p == '0' && p[1] >= '0' && p[1] <= '9')
    return json_fail(j, "leading zero");
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (digits == 18)
      return json_fail(j, "number too long");
    v = v * 10 + (*p - '0');
  }
  if (*p == '.' || *p == 'e' || *p == 'E') {
    if (ret)
      return json_fail(j, "expected an integer");
    if (*p == '.') {
      p++;
      if (*p < '0' || *p > '9')
        return json_fail(j, "bad number");
      while (*p >= '0' && *p <= '9')
        p++;
    }
    if (*p == 'e' || *p == 'E') {
      p++;
      if (*p == '+' || *p == '-')
        p++;
      if (*p < '0' || *p > '9')
        return json_fail(j, "bad number");
      while (*p >= '0' && *p <= '9')
        p++;
    }
  }
  j->pos = (size_t) (p - j->s);
  if (ret)
    *ret = neg ? -v : v;
  return true;
}

/* The elements of the list that opens with @open ('{' or '[') at the
 * current byte: @item(j, ctx) reads each (an object's key too), then the
 * closing byte is checked. */
static bool
json_list(Json *j, char open, bool (*item)(Json *j, void *ctx), void *ctx)
{
  char close = open == '{' ? '}' : ']';

  if (!json_expect(j, open))
    return false;
  json_ws(j);
  if (j->s[j->pos] == close) {
    j->pos++;
    return true;
  }
  for (;;) {
    if (!item(j, ctx))
      return false;
    json_ws(j);
    if (j->s[j->pos] == ',') {
      j->pos++;
      continue;
    }
    return json_expect(j, close);
  }
}

static bool json_skip(Json *j, int depth);

typedef struct {
  char open;
  int depth;
} SkipCtx;

static bool
skip_element(Json *j, void *ctx)
{
  SkipCtx *s = ctx;

  if (s->open == '{' && (!json_string(j, NULL, 0) || !json_expect(j, ':')))
    return false;
  return json_skip(j, s->depth - 1);
}

/* Skips any value, nested at most @depth more levels. */
static bool
json_skip(Json *j, int depth)
{
  SkipCtx s = { 0, depth };
  char c;

  json_ws(j);
  c = j->s[j->pos];
  if (c == '"')
    return json_string(j, NULL, 0);
  if (c == 't')
    return json_literal(j, "true");
  if (c == 'f')
    return json_literal(j, "false");
  if (c == 'n')
    return json_literal(j, "null");
  if (c == '-' || (c >= '0' && c <= '9'))
    return json_number(j, NULL);
  if (c != '{' && c != '[')
    return json_fail(j, "expected a value");
  if (depth <= 0)
    return json_fail(j, "nested too deep");
  s.open = c;
  return json_list(j, c, skip_element, &s);
}

typedef struct {
  bool (*member)(Json *j, const char *key, void *ctx);
  void *ctx;
} ObjectCtx;

static bool
object_member(Json *j, void *ctx)
{
  ObjectCtx *o = ctx;
  char key[32];

  return json_string(j, key, sizeof(key)) && json_expect(j, ':') && o->member(j, key, o->ctx);
}

/* Calls @member(j, key, ctx) for each member of an object at the current
 * byte; @member reads the value. */
static bool
json_object(Json *j, bool (*member)(Json *j, const char *key, void *ctx), void *ctx)
{
  ObjectCtx o = { member, ctx };

  return json_list(j, '{', object_member, &o);
}

/* "call", "code" and "error": where the probe or a device failed. TRUE,
 * with *@ok the reading's result, when @key is one of them. */
static bool
failure_member(Json *j, const char *key, char call[GI_GPU_CALL_SIZE], long *code, char error[GI_GPU_ERROR_SIZE],
               bool *ok)
{
  if (strcmp(key, "call") == 0)
    *ok = json_string_or_null(j, call, GI_GPU_CALL_SIZE);
  else if (strcmp(key, "code") == 0)
    *ok = json_number(j, code);
  else if (strcmp(key, "error") == 0)
    *ok = json_string_or_null(j, error, GI_GPU_ERROR_SIZE);
  else
    return false;
  return true;
}

static bool
device_member(Json *j, const char *key, void *ctx)
{
  GiCudaDevice *d = ctx;
  bool ok;
  long v;

  if (strcmp(key, "ordinal") == 0) {
    if (!json_number(j, &v))
      return false;
    if (v < 0 || v > 1 << 20)
      return json_fail(j, "ordinal out of range");
    d->ordinal = (int) v;
    return true;
  }
  if (strcmp(key, "bdf") == 0) {
    char text[64];
    size_t at = j->pos;

    if (!json_string_or_null(j, text, sizeof(text)))
      return false;
    if (text[0] != '\0' && gi_bdf_normalize(text, d->bdf) < 0) {
      j->pos = at;
      return json_fail(j, "not a PCI address: \"%s\"", text);
    }
    return true;
  }
  if (strcmp(key, "name") == 0)
    return json_string_or_null(j, d->name, sizeof(d->name));
  if (failure_member(j, key, d->call, &d->code, d->error, &ok))
    return ok;
  return json_skip(j, JSON_MAX_DEPTH - 3);
}

/* One element of "devices": a device object. */
static bool
device_element(Json *j, void *ctx)
{
  GiCudaProbe *p = ctx;
  GiCudaDevice *d;

  if (p->n_devices == GI_GPU_MAX)
    return json_fail(j, "more than %d devices", GI_GPU_MAX);
  d = &p->devices[p->n_devices++];
  memset(d, 0, sizeof(*d));
  d->ordinal = (int) p->n_devices - 1;
  return json_object(j, device_member, d);
}

typedef struct {
  GiCudaProbe *probe;
  bool has_v;
} TopCtx;

static bool
top_member(Json *j, const char *key, void *ctx)
{
  TopCtx *t = ctx;
  GiCudaProbe *p = t->probe;
  bool ok;
  long v;

  if (strcmp(key, "v") == 0) {
    if (!json_number(j, &v))
      return false;
    if (v != GI_CUDA_PROBE_VERSION)
      return json_fail(j, "probe format %ld, this guest-init reads %d", v, GI_CUDA_PROBE_VERSION);
    t->has_v = true;
    return true;
  }
  if (failure_member(j, key, p->call, &p->code, p->error, &ok))
    return ok;
  if (strcmp(key, "version") == 0)
    return json_number(j, &p->version);
  if (strcmp(key, "devices") == 0) {
    p->n_devices = 0;
    return json_list(j, '[', device_element, p);
  }
  return json_skip(j, JSON_MAX_DEPTH - 1);
}

int
gi_cuda_probe_parse(const char *text, GiCudaProbe *ret, char *err, size_t err_size)
{
  Json j = { text ? text : "", 0, err, err_size, false };
  TopCtx t = { ret, false };
  const char *start = NULL;

  memset(ret, 0, sizeof(*ret));
  if (err_size > 0)
    err[0] = '\0';
  /* The last line that starts with '{': the probe prints its line last,
   * after anything libcuda itself may have written on stdout. */
  for (const char *line = j.s; line; ) {
    const char *p = line, *nl;

    while (*p == ' ' || *p == '\t' || *p == '\r')
      p++;
    if (*p == '{')
      start = p;
    nl = strchr(line, '\n');
    line = nl ? nl + 1 : NULL;
  }
  if (!start) {
    json_fail(&j, "no line starting with '{'");
    return -EINVAL;
  }
  j.pos = (size_t) (start - j.s);
  if (!json_object(&j, top_member, &t))
    return -EINVAL;
  json_ws(&j);
  if (j.s[j.pos] != '\0') {
    json_fail(&j, "trailing bytes after the object");
    return -EINVAL;
  }
  if (!t.has_v) {
    json_fail(&j, "no \"v\"");
    return -EINVAL;
  }
  return 0;
}

/* ---- the kernel log ---- */

static bool
dec_field(const char **p, const char *end, unsigned long long *ret)
{
  unsigned long long v = 0;
  int n = 0;

  for (; *p < end && **p >= '0' && **p <= '9'; (*p)++, n++) {
    if (n == 20)
      return false;
    v = v * 10 + (unsigned long long) (**p - '0');
  }
  *ret = v;
  return n > 0;
}

int
gi_kmsg_parse(const char *rec, size_t len, GiKmsgRecord *ret)
{
  const char *p = rec, *end = rec + len, *semi, *nl;
  unsigned long long prio, seq, usec;

  if (!rec || !dec_field(&p, end, &prio) || p == end || *p++ != ',' || !dec_field(&p, end, &seq) ||
      p == end || *p++ != ',' || !dec_field(&p, end, &usec) || p == end || (*p != ',' && *p != ';'))
    return -EINVAL;
  semi = memchr(p, ';', (size_t) (end - p));
  if (!semi)
    return -EINVAL;
  /* Only more prefix fields (flags, caller id) between: no newline. */
  if (memchr(p, '\n', (size_t) (semi - p)))
    return -EINVAL;
  semi++;
  nl = memchr(semi, '\n', (size_t) (end - semi));
  ret->level = (unsigned) (prio & 7);
  ret->seq = seq;
  ret->usec = usec;
  ret->message = semi;
  ret->message_len = (size_t) ((nl ? nl : end) - semi);
  return 0;
}

bool
gi_kmsg_is_nvrm(const char *message, size_t len)
{
  return len >= 5 && memcmp(message, "NVRM:", 5) == 0;
}

/* ---- the verdict ---- */

static void
result_fail(GiGpuResult *r, const char *call, const char *error)
{
  r->ok = false;
  snprintf(r->call, sizeof(r->call), "%s", call && call[0] ? call : "probe");
  snprintf(r->error, sizeof(r->error), "%s", error && error[0] ? error : "failed");
}

/* @r from what CUDA said of @d (its name, ok or the failed call): 1 when
 * it failed, else 0. */
static int
result_of_device(GiGpuResult *r, const GiCudaDevice *d)
{
  snprintf(r->name, sizeof(r->name), "%s", d->name);
  if (d->call[0] != '\0') {
    result_fail(r, d->call, d->error);
    return 1;
  }
  r->ok = true;
  return 0;
}

int
gi_gpu_verdict(const char *const *requested, size_t n_requested, const GiCudaProbe *probe, const char *failure_call,
               const char *failure, GiGpuResult *ret, size_t max, size_t *ret_n)
{
  bool matched[GI_GPU_MAX] = { false };
  size_t n = 0;
  int failed = 0;
  bool overflow = false;

  for (size_t i = 0; i < n_requested; i++) {
    GiGpuResult *r;
    const GiCudaDevice *d = NULL;

    if (n == max) {
      overflow = true;
      break;
    }
    r = &ret[n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->bdf, sizeof(r->bdf), "%s", requested[i]);
    if (!probe) {
      result_fail(r, failure_call, failure ? failure : "the CUDA probe did not run");
      failed++;
      continue;
    }
    if (probe->call[0] != '\0') {
      result_fail(r, probe->call, probe->error);
      failed++;
      continue;
    }
    for (size_t k = 0; k < probe->n_devices && k < GI_GPU_MAX; k++) {
      if (!matched[k] && strcmp(probe->devices[k].bdf, requested[i]) == 0) {
        d = &probe->devices[k];
        matched[k] = true;
        break;
      }
    }
    if (!d) {
      char why[GI_GPU_ERROR_SIZE];

      snprintf(why, sizeof(why), "not among the %zu CUDA devices", probe->n_devices);
      result_fail(r, "cuDeviceGetCount", why);
      failed++;
      continue;
    }
    failed += result_of_device(r, d);
  }
  /* Devices CUDA lists that no one asked for: reported, and they count. */
  for (size_t k = 0; probe && probe->call[0] == '\0' && k < probe->n_devices && k < GI_GPU_MAX; k++) {
    const GiCudaDevice *d = &probe->devices[k];
    GiGpuResult *r;

    if (matched[k])
      continue;
    if (n == max) {
      overflow = true;
      break;
    }
    r = &ret[n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->bdf, sizeof(r->bdf), "%s", d->bdf);
    failed += result_of_device(r, d);
  }
  *ret_n = n;
  if (overflow) {
    for (size_t i = 0; i < n; i++)
      if (ret[i].ok)
        result_fail(&ret[i], "probe", "more GPUs than guest-init checks");
    return -E2BIG;
  }
  return failed;
}

/* ---- the driver layer ---- */

int
gi_env_file_get(const char *text, const char *key, char *buf, size_t size)
{
  size_t key_len = strlen(key);

  for (const char *p = text ? text : ""; *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t) (nl - p) : strlen(p);

    if (len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
      const char *v = p + key_len + 1;
      size_t vlen = len - key_len - 1;

      if (vlen > 0 && v[vlen - 1] == '\r')
        vlen--;
      if (vlen == 0)
        return -EINVAL;
      for (size_t i = 0; i < vlen; i++)
        if ((unsigned char) v[i] < 0x20 || (unsigned char) v[i] > 0x7e)
          return -EINVAL;
      if (size > 0) {
        size_t take = vlen < size - 1 ? vlen : size - 1;
        memcpy(buf, v, take);
        buf[take] = '\0';
      }
      return 0;
    }
    if (!nl)
      break;
    p = nl + 1;
  }
  return -ENOENT;
}

/* The length of NAME in "NAME=VALUE", or -1 without '='. */
static long
env_name_len(const char *entry)
{
  const char *eq = strchr(entry, '=');

  return eq && eq != entry ? (long) (eq - entry) : -1;
}

static bool
same_name(const char *a, const char *b)
{
  long la = env_name_len(a), lb = env_name_len(b);

  return la >= 0 && la == lb && strncmp(a, b, (size_t) la) == 0;
}

int
gi_env_build(const char *const *base, const char *const *overrides, size_t n_overrides,
             const char *const *prepends, size_t n_prepends, const char **ret, size_t max, char *buf,
             size_t size)
{
  size_t n = 0, used = 0;

  for (size_t i = 0; i < n_overrides; i++)
    if (env_name_len(overrides[i]) < 0)
      return -EINVAL;
  for (size_t i = 0; i < n_prepends; i++)
    if (env_name_len(prepends[i]) < 0)
      return -EINVAL;
  for (size_t i = 0; base && base[i]; i++) {
    const char *e = base[i];

    if (env_name_len(e) < 0)
      return -EINVAL;
    for (size_t k = 0; k < n_overrides; k++)
      if (same_name(e, overrides[k])) {
        e = overrides[k];
        break;
      }
    if (n + 1 >= max)
      return -E2BIG;
    ret[n++] = e;
  }
  for (size_t k = 0; k < n_overrides; k++) {
    bool present = false;

    for (size_t i = 0; i < n && !present; i++)
      present = same_name(ret[i], overrides[k]);
    if (present)
      continue;
    if (n + 1 >= max)
      return -E2BIG;
    ret[n++] = overrides[k];
  }
  for (size_t k = 0; k < n_prepends; k++) {
    const char *p = prepends[k];
    size_t name_len = (size_t) env_name_len(p);
    const char *dir = p + name_len + 1;
    size_t at = n, need;
    const char *old = "";
    int w;

    for (size_t i = 0; i < n; i++)
      if (same_name(ret[i], p)) {
        at = i;
        old = ret[i] + name_len + 1;
        break;
      }
    need = name_len + 1 + strlen(dir) + (old[0] != '\0' ? 1 + strlen(old) : 0) + 1;
    if (used + need > size)
      return -E2BIG;
    w = snprintf(buf + used, size - used, "%.*s=%s%s%s", (int) name_len, p, dir, old[0] != '\0' ? ":" : "", old);
    if (w < 0 || (size_t) w + 1 != need)
      return -E2BIG;
    if (at == n) {
      if (n + 1 >= max)
        return -E2BIG;
      n++;
    }
    ret[at] = buf + used;
    used += need;
  }
  if (n >= max)
    return -E2BIG;
  ret[n] = NULL;
  return (int) n;
}
