/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cmdline.h"

#include <ctype.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State of the token being scanned: key and value are collected after quote
 * removal; the lengths count every byte, stored or not. */
typedef struct {
  char key[GI_CMDLINE_MAX_KEY + 1];
  char value[GI_CMDLINE_MAX_VALUE + 1];
  size_t key_len;
  size_t value_len;
  bool has_equals;
  bool bad_char;
  bool bad_quote;
  bool in_quote;
} Token;

static void
token_add(Token *t, unsigned char c)
{
  if (!t->has_equals && c == '=') {
    t->has_equals = true;
    return;
  }
  if (!t->has_equals) {
    /* Keys have no blanks: only a quoted one could get here. */
    bool ok = vfiod_cmdline_word_char_ok(c);
    if (!ok)
      t->bad_char = true;
    if (t->key_len < GI_CMDLINE_MAX_KEY)
      t->key[t->key_len] = ok ? (char) c : '?';
    t->key_len++;
  } else {
    if (!vfiod_cmdline_value_char_ok(c))
      t->bad_char = true;
    if (t->value_len < GI_CMDLINE_MAX_VALUE)
      t->value[t->value_len] = (char) c;
    t->value_len++;
  }
}

/* Scans one token starting at *@p (not a blank, not NUL) into @t and
 * advances *@p past it. The token ends where next_arg() ends it: at the
 * first isspace() byte outside quotes. Its quotes are dropped; they are only
 * fine where the kernel drops them too (protocol.h). */
static void
token_scan(const char **p, Token *t)
{
  const char *s = *p, *end;
  size_t len, n_quotes = 0, eq = 0;
  bool has_eq = false, in_quote = false;

  memset(t, 0, sizeof(*t));
  for (end = s; *end != '\0'; end++) {
    if (vfiod_cmdline_is_space((unsigned char) *end) && !in_quote)
      break;
    if (*end == '"') {
      in_quote = !in_quote;
      n_quotes++;
    } else if (*end == '=' && !has_eq) {
      has_eq = true;
      eq = (size_t) (end - s);
    }
  }
  len = (size_t) (end - s);
  t->in_quote = in_quote;
  if (n_quotes > 0 && !in_quote) {
    /* "key=value" or key="value": the two places next_arg() removes quotes. */
    bool whole_word = n_quotes == 2 && len >= 2 && s[0] == '"' && s[len - 1] == '"';
    bool whole_value = n_quotes == 2 && has_eq && eq + 2 < len && s[eq + 1] == '"' && s[len - 1] == '"';
    t->bad_quote = !whole_word && !whole_value;
  }
  for (const char *c = s; c < end; c++)
    if (*c != '"')
      token_add(t, (unsigned char) *c);
  *p = end;
}

static const struct {
  const char *name;           /* protocol.h's, "vfiod." included */
  GiCmdlineKey id;
} known_keys[] = {
  { VFIOD_KEY_SANDBOX, GI_CMDLINE_KEY_SANDBOX },
  { VFIOD_KEY_READY, GI_CMDLINE_KEY_READY },
  { VFIOD_KEY_REPORT, GI_CMDLINE_KEY_REPORT },
  { VFIOD_KEY_IP, GI_CMDLINE_KEY_IP },
  { VFIOD_KEY_GW, GI_CMDLINE_KEY_GW },
  { VFIOD_KEY_DNS, GI_CMDLINE_KEY_DNS },
  { VFIOD_KEY_IF, GI_CMDLINE_KEY_IF },
  { VFIOD_KEY_CMD, GI_CMDLINE_KEY_CMD },
  { VFIOD_KEY_ARG, GI_CMDLINE_KEY_ARG },
  { VFIOD_KEY_MAC, GI_CMDLINE_KEY_MAC },
  { VFIOD_KEY_ENV, GI_CMDLINE_KEY_ENV },
  { VFIOD_KEY_ROOT, GI_CMDLINE_KEY_ROOT },
  { VFIOD_KEY_ROOTFSTYPE, GI_CMDLINE_KEY_ROOTFSTYPE },
  { VFIOD_KEY_ROOTFLAGS, GI_CMDLINE_KEY_ROOTFLAGS },
  { VFIOD_KEY_GPU, GI_CMDLINE_KEY_GPU },
  { VFIOD_KEY_NVIDIA, GI_CMDLINE_KEY_NVIDIA },
  { VFIOD_KEY_TIMEOUT, GI_CMDLINE_KEY_TIMEOUT },
  { VFIOD_KEY_DRIVER, GI_CMDLINE_KEY_DRIVER },
  { VFIOD_KEY_PAYLOAD, GI_CMDLINE_KEY_PAYLOAD },
  { VFIOD_KEY_OVERLAY, GI_CMDLINE_KEY_OVERLAY },
};

static GiCmdlineKey
key_lookup(const char *key)
{
  for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
    if (strcmp(key, known_keys[i].name) == 0)
      return known_keys[i].id;
  return GI_CMDLINE_KEY_UNKNOWN;
}

/* The setting a key id stands for when counting repeats: vfiod.ready is
 * vfiod.report. GI_CMDLINE_KEY_UNKNOWN for the ones that may repeat
 * (vfiod.arg, vfiod.env) and for unknown keys. */
static GiCmdlineKey
key_slot(GiCmdlineKey id)
{
  switch (id) {
  case GI_CMDLINE_KEY_READY:
    return GI_CMDLINE_KEY_REPORT;
  case GI_CMDLINE_KEY_ARG:
  case GI_CMDLINE_KEY_ENV:
    return GI_CMDLINE_KEY_UNKNOWN;
  default:
    return id;
  }
}

static GiCmdlineStatus
token_status(const Token *t)
{
  if (t->in_quote)
    return GI_CMDLINE_UNTERMINATED;
  if (t->bad_char)
    return GI_CMDLINE_BAD_CHAR;
  if (t->bad_quote)
    return GI_CMDLINE_BAD_QUOTE;
  if (t->key_len > GI_CMDLINE_MAX_KEY || t->value_len > GI_CMDLINE_MAX_VALUE)
    return GI_CMDLINE_TOO_LONG;
  if (!t->has_equals)
    return GI_CMDLINE_NO_VALUE;
  return GI_CMDLINE_OK;
}

/* Parses a decimal number without sign, leading zeros allowed, into
 * *@ret when it is in [@min, @max]. Returns false otherwise. */
static bool
parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret)
{
  unsigned long v = 0;

  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return false;
    if (v > (max - (unsigned long) (*s - '0')) / 10)
      return false;
    v = v * 10 + (unsigned long) (*s - '0');
  }
  if (v < min)
    return false;
  *ret = v;
  return true;
}

/* An IPv4 address in dotted-quad form, as inet_pton() takes it. */
static bool
is_ipv4(const char *s)
{
  struct in_addr a;

  return strlen(s) < 16 && inet_pton(AF_INET, s, &a) == 1;
}

static bool
is_ip_any(const char *s)
{
  struct in6_addr a;

  return is_ipv4(s) || (strlen(s) < 46 && inet_pton(AF_INET6, s, &a) == 1);
}

/* "A.B.C.D/N", N in 1..32. */
static bool
parse_ip_prefix(const char *v, char ret_ip[16], unsigned *ret_prefix)
{
  const char *slash = strchr(v, '/');
  char ip[16] = { 0 }; /* copied whole into @ret_ip: no stack bytes after the NUL */
  unsigned long prefix;

  if (!slash || (size_t) (slash - v) >= sizeof(ip))
    return false;
  memcpy(ip, v, (size_t) (slash - v));
  ip[slash - v] = '\0';
  if (!is_ipv4(ip) || !parse_uint(slash + 1, 1, 32, &prefix) || strlen(slash + 1) > 2)
    return false;
  memcpy(ret_ip, ip, sizeof(ip));
  *ret_prefix = (unsigned) prefix;
  return true;
}

/* "A[,B[,C]]": IPv4 or IPv6 name server addresses. */
static bool
parse_dns(const char *v, GiCmdline *ret)
{
  char dns[GI_CMDLINE_MAX_DNS][46] = { { 0 } }; /* copied whole into @ret: no stack bytes after the NULs */
  size_t n = 0;

  for (const char *p = v;; ) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t) (comma - p) : strlen(p);

    if (n == GI_CMDLINE_MAX_DNS || len == 0 || len >= sizeof(dns[0]))
      return false;
    memcpy(dns[n], p, len);
    dns[n][len] = '\0';
    if (!is_ip_any(dns[n]))
      return false;
    n++;
    if (!comma)
      break;
    p = comma + 1;
  }
  memcpy(ret->dns, dns, sizeof(dns));
  ret->n_dns = n;
  return true;
}

/* A network interface name as the kernel takes it (dev_valid_name()). */
static bool
is_ifname(const char *v)
{
  size_t len = strlen(v);

  if (len == 0 || len >= 16 || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
    return false;
  for (const char *p = v; *p != '\0'; p++)
    if (*p == '/' || *p == ':' || *p == ' ')
      return false;
  return true;
}

/* An absolute path without "." or ".." components or empty components. */
static bool
is_clean_abs_path(const char *v)
{
  if (v[0] != '/' || v[1] == '\0')
    return false;
  for (const char *p = v + 1;; ) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t) (slash - p) : strlen(p);

    if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
      return false;
    if (!slash)
      return true;
    p = slash + 1;
  }
}

/* "console" or "vsock:PORT". */
static bool
parse_report(const char *v, GiReportTarget *ret_target, unsigned *ret_port)
{
  unsigned long port;

  if (strcmp(v, "console") == 0) {
    *ret_target = GI_REPORT_CONSOLE;
    *ret_port = 0;
    return true;
  }
  if (strncmp(v, "vsock:", 6) == 0 && parse_uint(v + 6, 1, 0xfffffffeUL, &port)) {
    *ret_target = GI_REPORT_VSOCK;
    *ret_port = (unsigned) port;
    return true;
  }
  return false;
}

/* "none" or a comma-separated subset of uvm, modeset, drm, peermem. */
static bool
parse_nvidia(const char *v, unsigned *ret)
{
  unsigned mask = 0;

  if (strcmp(v, "none") == 0) {
    *ret = 0;
    return true;
  }
  for (const char *p = v;; ) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t) (comma - p) : strlen(p);

    if (len == 3 && strncmp(p, "uvm", 3) == 0)
      mask |= GI_NVIDIA_UVM;
    else if (len == 7 && strncmp(p, "modeset", 7) == 0)
      mask |= GI_NVIDIA_MODESET;
    else if (len == 3 && strncmp(p, "drm", 3) == 0)
      mask |= GI_NVIDIA_DRM | GI_NVIDIA_MODESET;
    else if (len == 7 && strncmp(p, "peermem", 7) == 0)
      mask |= GI_NVIDIA_PEERMEM;
    else
      return false;
    if (!comma)
      break;
    p = comma + 1;
  }
  *ret = mask;
  return true;
}

static bool
is_fstype(const char *v)
{
  size_t len = strlen(v);

  if (len == 0 || len >= 32)
    return false;
  for (const char *p = v; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'))
      return false;
  return true;
}

/* Checks a known key's value and applies it to @ret; returns the status. */
static GiCmdlineStatus
apply_known(GiCmdline *ret, const GiCmdlineEntry *e)
{
  const char *v = e->value;
  unsigned long n;

  switch (e->id) {
  case GI_CMDLINE_KEY_SANDBOX:
    if (v[0] == '\0')
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->sandbox, v, sizeof(ret->sandbox));
    ret->has_sandbox = true;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_READY:
  case GI_CMDLINE_KEY_REPORT:
    if (!parse_report(v, &ret->report, &ret->report_port))
      return GI_CMDLINE_BAD_VALUE;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_IP:
    if (!parse_ip_prefix(v, ret->ip, &ret->prefix))
      return GI_CMDLINE_BAD_VALUE;
    ret->has_ip = true;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_GW:
    if (!is_ipv4(v))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->gw, v, strlen(v) + 1);
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_DNS:
    return parse_dns(v, ret) ? GI_CMDLINE_OK : GI_CMDLINE_BAD_VALUE;
  case GI_CMDLINE_KEY_IF:
    if (!is_ifname(v))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->ifname, v, strlen(v) + 1);
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_CMD:
    if (!vfiod_cmdline_cmd_valid(v))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->cmd, v, sizeof(ret->cmd));
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_ARG:
    /* Any printable value, the empty string included. */
    if (ret->n_args == GI_CMDLINE_MAX_ARGS)
      return GI_CMDLINE_TOO_MANY;
    memcpy(ret->args[ret->n_args++], v, sizeof(ret->args[0]));
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_MAC:
    /* six hex pairs separated by ':' */
    if (strlen(v) != 17)
      return GI_CMDLINE_BAD_VALUE;
    for (int i = 0; i < 17; i++)
      if ((i % 3 == 2) ? v[i] != ':' : !isxdigit((unsigned char) v[i]))
        return GI_CMDLINE_BAD_VALUE;
    for (int i = 0; i < 17; i++)
      ret->mac[i] = (char) tolower((unsigned char) v[i]);
    ret->mac[17] = '\0';
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_ENV: {
    const char *eq = strchr(v, '=');
    if (!eq || eq == v)
      return GI_CMDLINE_BAD_VALUE;
    for (const char *c = v; c < eq; c++)
      if (!vfiod_cmdline_env_name_char_ok((unsigned char) *c, c == v))
        return GI_CMDLINE_BAD_VALUE;
    if (ret->n_env == GI_CMDLINE_MAX_ENV)
      return GI_CMDLINE_TOO_MANY;
    memcpy(ret->env[ret->n_env++], v, sizeof(ret->env[0]));
    return GI_CMDLINE_OK;
  }
  case GI_CMDLINE_KEY_ROOT:
    if (!vfiod_cmdline_disk_valid(v) || (v[0] == '/' && !is_clean_abs_path(v)))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->root, v, sizeof(ret->root));
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_ROOTFSTYPE:
    if (!is_fstype(v))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->rootfstype, v, strlen(v) + 1);
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_ROOTFLAGS:
    if (strcmp(v, "ro") != 0 && strcmp(v, "rw") != 0)
      return GI_CMDLINE_BAD_VALUE;
    ret->root_ro = strcmp(v, "ro") == 0;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_GPU:
    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
      return GI_CMDLINE_BAD_VALUE;
    ret->gpu = strcmp(v, "on") == 0;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_NVIDIA:
    return parse_nvidia(v, &ret->nvidia) ? GI_CMDLINE_OK : GI_CMDLINE_BAD_VALUE;
  case GI_CMDLINE_KEY_TIMEOUT:
    if (!parse_uint(v, 0, GI_CMDLINE_MAX_TIMEOUT, &n))
      return GI_CMDLINE_BAD_VALUE;
    ret->timeout_s = (unsigned) n;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_PAYLOAD:
    if (!parse_uint(v, 1, VFIOD_PAYLOAD_MAX, &n))
      return GI_CMDLINE_BAD_VALUE;
    ret->payload_size = (size_t) n;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_DRIVER:
    if (!vfiod_cmdline_disk_valid(v))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->driver, v, sizeof(ret->driver));
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_OVERLAY:
    if (strcmp(v, VFIOD_OVERLAY_TMPFS) != 0 && (!vfiod_cmdline_disk_valid(v) || (v[0] == '/' && !is_clean_abs_path(v))))
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->overlay, v, sizeof(ret->overlay));
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_UNKNOWN:
  default:
    return GI_CMDLINE_UNKNOWN;
  }
}

void
gi_cmdline_parse(const char *cmdline, GiCmdline *ret)
{
  const char *p = cmdline ? cmdline : "";
  bool seen[GI_CMDLINE_KEY_COUNT_] = { false };

  memset(ret, 0, sizeof(*ret));
  ret->report = GI_REPORT_CONSOLE;
  memcpy(ret->rootfstype, "ext4", sizeof("ext4"));
  ret->gpu = true;
  ret->nvidia = GI_NVIDIA_DEFAULT;

  for (;;) {
    Token t;
    GiCmdlineEntry *e;
    GiCmdlineStatus status;
    GiCmdlineKey slot;
    bool repeated;

    while (vfiod_cmdline_is_space((unsigned char) *p))
      p++;
    if (*p == '\0')
      break;
    token_scan(&p, &t);

    /* The stored key holds the first GI_CMDLINE_MAX_KEY bytes at least, so
     * the prefix test is exact even when the key is too long. */
    if (t.key_len < strlen(GI_CMDLINE_PREFIX) ||
        strncmp(t.key, GI_CMDLINE_PREFIX, strlen(GI_CMDLINE_PREFIX)) != 0)
      continue;
    if (ret->n_entries == GI_CMDLINE_MAX_ENTRIES) {
      ret->n_dropped++;
      continue;
    }

    e = &ret->entries[ret->n_entries++];
    memcpy(e->key, t.key, sizeof(e->key));  /* NUL-terminated: t is zeroed */
    e->id = key_lookup(e->key);
    /* A key that counts once, seen before (accepted or not): refused,
     * whatever its value, and the first one stays. */
    slot = key_slot(e->id);
    repeated = slot != GI_CMDLINE_KEY_UNKNOWN && seen[slot];
    if (slot != GI_CMDLINE_KEY_UNKNOWN)
      seen[slot] = true;
    status = token_status(&t);
    if (status == GI_CMDLINE_OK) {
      memcpy(e->value, t.value, sizeof(e->value));
      status = repeated ? GI_CMDLINE_DUPLICATE : apply_known(ret, e);
    }
    e->status = status;
  }
}

const char *
gi_cmdline_status_to_string(GiCmdlineStatus status)
{
  switch (status) {
  case GI_CMDLINE_OK:
    return "ok";
  case GI_CMDLINE_UNKNOWN:
    return "unknown key, ignored";
  case GI_CMDLINE_NO_VALUE:
    return "missing '='";
  case GI_CMDLINE_BAD_CHAR:
    return "byte not allowed (control, non-ASCII or '\\')";
  case GI_CMDLINE_TOO_LONG:
    return "key or value too long";
  case GI_CMDLINE_UNTERMINATED:
    return "unterminated double quote";
  case GI_CMDLINE_BAD_VALUE:
    return "value not accepted";
  case GI_CMDLINE_TOO_MANY:
    return "given too many times";
  case GI_CMDLINE_BAD_QUOTE:
    return "double quote not around the whole word or value";
  case GI_CMDLINE_DUPLICATE:
    return "given more than once";
  default:
    return "invalid status";
  }
}

bool
gi_cmdline_status_is_error(GiCmdlineStatus status)
{
  return status != GI_CMDLINE_OK && status != GI_CMDLINE_UNKNOWN;
}

bool
gi_cmdline_check(const GiCmdline *c, char *err, size_t err_size)
{
  if (c->n_dropped > 0) {
    snprintf(err, err_size, "%zu vfiod.* words, at most %d are allowed", c->n_entries + c->n_dropped,
             GI_CMDLINE_MAX_ENTRIES);
    return false;
  }
  for (size_t i = 0; i < c->n_entries; i++) {
    const GiCmdlineEntry *e = &c->entries[i];

    if (gi_cmdline_status_is_error(e->status)) {
      snprintf(err, err_size, "%s: %s", e->key, gi_cmdline_status_to_string(e->status));
      return false;
    }
  }
  if (err_size > 0)
    err[0] = '\0';
  return true;
}
