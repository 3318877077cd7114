/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pins.h"

#include <gio/gio.h>
#include <string.h>

static gboolean
is_key(const char *s, gsize n)
{
  if (n == 0 || !(g_ascii_isalpha(s[0]) || s[0] == '_'))
    return FALSE;
  for (gsize i = 1; i < n; i++)
    if (!(g_ascii_isalnum(s[i]) || s[i] == '_'))
      return FALSE;
  return TRUE;
}

/* Characters a shell takes literally in the value of an assignment
 * (no quoting, expansion, globbing, splitting, tilde or comment). */
static gboolean
is_value_char(char c)
{
  return g_ascii_isalnum(c) || strchr("._+-:/@%,=", c) != NULL;
}

gboolean
vfd_pins_parse(const char *data, gssize len, const char *name, GHashTable **ret, GError **error)
{
  g_autoptr(GHashTable) pins = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  gsize n = len < 0 ? strlen(data) : (gsize) len;
  const char *p = data, *end = data + n;
  guint lineno = 0;

  g_return_val_if_fail(data != NULL && name != NULL && ret != NULL, FALSE);

  if (memchr(data, '\0', n)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: contains a NUL byte", name);
    return FALSE;
  }
  while (p < end) {
    const char *nl = memchr(p, '\n', (gsize) (end - p));
    const char *eol = nl ? nl : end;
    gsize llen = (gsize) (eol - p);
    const char *eq;

    lineno++;
    if (llen == 0 || p[0] == '#')
      goto next;
    eq = memchr(p, '=', llen);
    if (!eq || !is_key(p, (gsize) (eq - p))) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "%s:%u: expected KEY=value (KEY of letters, digits and '_', nothing before it) "
                  "or a '#' comment line", name, lineno);
      return FALSE;
    }
    if (eq + 1 == eol) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: empty value for %.*s", name,
                  lineno, (int) (eq - p), p);
      return FALSE;
    }
    for (const char *c = eq + 1; c < eol; c++) {
      if (!is_value_char(*c)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "%s:%u: character %s%c%s (0x%02x) in the value of %.*s; values are plain "
                    "tokens of letters, digits and ._+-:/@%%,= (no quotes, spaces or shell syntax)",
                    name, lineno, g_ascii_isprint(*c) ? "'" : "", g_ascii_isprint(*c) ? *c : '?',
                    g_ascii_isprint(*c) ? "'" : "", (guchar) *c, (int) (eq - p), p);
        return FALSE;
      }
    }
    {
      g_autofree char *key = g_strndup(p, (gsize) (eq - p));

      if (g_hash_table_contains(pins, key)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: %s is set twice", name,
                    lineno, key);
        return FALSE;
      }
      g_hash_table_insert(pins, g_steal_pointer(&key), g_strndup(eq + 1, (gsize) (eol - eq - 1)));
    }
  next:
    p = nl ? nl + 1 : end;
  }
  *ret = g_steal_pointer(&pins);
  return TRUE;
}

gboolean
vfd_pins_load(const char *path, GHashTable **ret, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail(path != NULL && ret != NULL, FALSE);
  if (!g_file_get_contents(path, &data, &len, &local)) {
    /* g_file_get_contents reports G_FILE_ERROR; give callers one domain. */
    g_set_error(error, G_IO_ERROR,
                local->domain == G_FILE_ERROR ? g_io_error_from_file_error(local->code) : G_IO_ERROR_FAILED,
                "%s", local->message);
    return FALSE;
  }
  return vfd_pins_parse(data, (gssize) len, path, ret, error);
}

const char *
vfd_pins_require(GHashTable *pins, const char *key, const char *name, GError **error)
{
  const char *v = g_hash_table_lookup(pins, key);

  if (!v)
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: %s is not set", name, key);
  return v;
}
