/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cmdline.h"

#include <string.h>

/* The kernel's isspace() set, without depending on the C locale. */
static bool
is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool
is_printable(unsigned char c)
{
  return c >= 0x20 && c <= 0x7e;
}

/* State of the token being scanned: key and value are collected after quote
 * removal; the lengths count every byte, stored or not. */
typedef struct {
  char key[GI_CMDLINE_MAX_KEY + 1];
  char value[GI_CMDLINE_MAX_VALUE + 1];
  size_t key_len;
  size_t value_len;
  bool has_equals;
  bool bad_char;
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
    /* Keys have no spaces: only a quoted space could get here. */
    bool ok = is_printable(c) && c != ' ';
    if (!ok)
      t->bad_char = true;
    if (t->key_len < GI_CMDLINE_MAX_KEY)
      t->key[t->key_len] = ok ? (char) c : '?';
    t->key_len++;
  } else {
    if (!is_printable(c))
      t->bad_char = true;
    if (t->value_len < GI_CMDLINE_MAX_VALUE)
      t->value[t->value_len] = (char) c;
    t->value_len++;
  }
}

/* Scans one token starting at *@p (not whitespace, not NUL) into @t and
 * advances *@p past it. */
static void
token_scan(const char **p, Token *t)
{
  const char *s = *p;

  memset(t, 0, sizeof(*t));
  for (; *s != '\0'; s++) {
    if (is_space(*s) && !t->in_quote)
      break;
    if (*s == '"') {
      t->in_quote = !t->in_quote;
      continue;
    }
    token_add(t, (unsigned char) *s);
  }
  *p = s;
}

static GiCmdlineKey
key_lookup(const char *key)
{
  if (strcmp(key, GI_CMDLINE_PREFIX "sandbox") == 0)
    return GI_CMDLINE_KEY_SANDBOX;
  if (strcmp(key, GI_CMDLINE_PREFIX "ready") == 0)
    return GI_CMDLINE_KEY_READY;
  return GI_CMDLINE_KEY_UNKNOWN;
}

static GiCmdlineStatus
token_status(const Token *t)
{
  if (t->in_quote)
    return GI_CMDLINE_UNTERMINATED;
  if (t->bad_char)
    return GI_CMDLINE_BAD_CHAR;
  if (t->key_len > GI_CMDLINE_MAX_KEY || t->value_len > GI_CMDLINE_MAX_VALUE)
    return GI_CMDLINE_TOO_LONG;
  if (!t->has_equals)
    return GI_CMDLINE_NO_VALUE;
  return GI_CMDLINE_OK;
}

/* Checks a known key's value and applies it to @ret; returns the status. */
static GiCmdlineStatus
apply_known(GiCmdline *ret, const GiCmdlineEntry *e)
{
  switch (e->id) {
  case GI_CMDLINE_KEY_SANDBOX:
    if (e->value[0] == '\0')
      return GI_CMDLINE_BAD_VALUE;
    memcpy(ret->sandbox, e->value, sizeof(ret->sandbox));
    ret->has_sandbox = true;
    return GI_CMDLINE_OK;
  case GI_CMDLINE_KEY_READY:
    if (strcmp(e->value, "console") != 0)
      return GI_CMDLINE_BAD_VALUE;
    ret->ready = GI_READY_CONSOLE;
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

  memset(ret, 0, sizeof(*ret));
  ret->ready = GI_READY_CONSOLE;

  for (;;) {
    Token t;
    GiCmdlineEntry *e;
    GiCmdlineStatus status;

    while (is_space(*p))
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
    status = token_status(&t);
    if (status == GI_CMDLINE_OK) {
      memcpy(e->value, t.value, sizeof(e->value));
      status = apply_known(ret, e);
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
    return "control or non-ASCII character";
  case GI_CMDLINE_TOO_LONG:
    return "key or value too long";
  case GI_CMDLINE_UNTERMINATED:
    return "unterminated double quote";
  case GI_CMDLINE_BAD_VALUE:
    return "value not accepted";
  default:
    return "invalid status";
  }
}

bool
gi_cmdline_status_is_error(GiCmdlineStatus status)
{
  return status != GI_CMDLINE_OK && status != GI_CMDLINE_UNKNOWN;
}
