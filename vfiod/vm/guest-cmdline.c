/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "guest-cmdline.h"

#include <string.h>

#include "error.h"

#define RULE_VALUE "printable ASCII 0x20-0x7e except '\"' and '\\'"
#define RULE_WORD "printable ASCII 0x21-0x7e except '\"' and '\\' (no blank)"
#define WHY "; it travels on the guest kernel command line"

/* @s for a message: C-escaped (ASCII only, so valid UTF-8 for D-Bus) and
 * cut at 48 bytes. */
static char *
shown(const char *s)
{
  g_autofree char *head = g_strndup(s, 48);
  g_autofree char *esc = g_strescape(head, NULL);

  return g_strdup_printf("\"%s\"%s", esc, strlen(s) > 48 ? "..." : "");
}

/* The first byte of @s that @ok refuses, or NULL. */
static const char *
first_bad(const char *s, bool (*ok)(unsigned char c))
{
  for (; *s != '\0'; s++)
    if (!ok((unsigned char) *s))
      return s;
  return NULL;
}

static gboolean
check_cmd(const char *cmd, GError **error)
{
  g_autofree char *show = shown(cmd);
  const char *bad;

  if (cmd[0] != '/') {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "cmd must be an absolute path in the guest, got %s",
                show);
    return FALSE;
  }
  if ((bad = first_bad(cmd, vfiod_cmdline_word_char_ok))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "cmd: byte 0x%02x at offset %td is not allowed: only " RULE_WORD WHY ", got %s",
                (unsigned char) *bad, bad - cmd, show);
    return FALSE;
  }
  if (strlen(cmd) > VFIOD_CMDLINE_MAX_VALUE) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "cmd: %zu bytes, at most %d" WHY ", got %s",
                strlen(cmd), VFIOD_CMDLINE_MAX_VALUE, show);
    return FALSE;
  }
  if (!vfiod_cmdline_cmd_valid(cmd)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "cmd must be a clean absolute path: no empty, '.' or '..' component, no trailing '/', got %s", show);
    return FALSE;
  }
  return TRUE;
}

/* One argument, or an environment VALUE: @what names it ("args[3]",
 * "env FOO"); @len_limit: its most bytes (for env, what NAME= leaves of
 * VFIOD_CMDLINE_MAX_VALUE). Offsets in messages count from @v's start. */
static gboolean
check_value(const char *what, const char *v, gsize len_limit, GError **error)
{
  const char *bad = first_bad(v, vfiod_cmdline_value_char_ok);

  if (bad) {
    g_autofree char *show = shown(v);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "%s: byte 0x%02x at offset %td is not allowed: only " RULE_VALUE WHY ", got %s", what,
                (unsigned char) *bad, bad - v, show);
    return FALSE;
  }
  if (strlen(v) > len_limit) {
    g_autofree char *show = shown(v);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: %zu bytes, at most %zu" WHY ", got %s", what,
                strlen(v), len_limit, show);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_env_name(const char *name, GError **error)
{
  gboolean ok = name[0] != '\0';

  for (const char *c = name; ok && *c; c++)
    ok = vfiod_cmdline_env_name_char_ok((unsigned char) *c, c == name);
  if (!ok) {
    g_autofree char *show = shown(name);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "env: the name %s is not allowed: names are [A-Za-z_][A-Za-z0-9_]*", show);
    return FALSE;
  }
  return TRUE;
}

gsize
vfd_guest_cmdline_workload_len(const char *cmd, const char *const *args, GVariant *env)
{
  gsize total = 0;

  /* ' ' vfiod.cmd=CMD */
  if (cmd)
    total += 1 + strlen(VFIOD_KEY_CMD "=") + strlen(cmd);
  /* ' ' "vfiod.arg=ARG" */
  for (gsize i = 0; args && args[i]; i++)
    total += 1 + 2 + strlen(VFIOD_KEY_ARG "=") + strlen(args[i]);
  /* ' ' "vfiod.env=NAME=VALUE" */
  if (env) {
    GVariantIter it;
    const char *k, *v;

    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v))
      total += 1 + 2 + strlen(VFIOD_KEY_ENV "=") + strlen(k) + 1 + strlen(v);
  }
  return total;
}

gboolean
vfd_guest_cmdline_check_workload(const char *cmd, const char *const *args, GVariant *env, GError **error)
{
  gsize n_args = args ? g_strv_length((char **) args) : 0;
  gsize n_env = 0, total;

  if (env && !g_variant_is_of_type(env, G_VARIANT_TYPE("a{ss}"))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env must be of type a{ss}, got %s",
                g_variant_get_type_string(env));
    return FALSE;
  }
  if (!cmd && n_args > 0) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "args need a cmd");
    return FALSE;
  }
  if (cmd && !check_cmd(cmd, error))
    return FALSE;
  if (n_args > VFIOD_CMDLINE_MAX_ARGS) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "args: %zu given, at most %d" WHY, n_args,
                VFIOD_CMDLINE_MAX_ARGS);
    return FALSE;
  }
  for (gsize i = 0; i < n_args; i++) {
    char what[32];

    g_snprintf(what, sizeof what, "args[%zu]", i);
    if (!check_value(what, args[i], VFIOD_CMDLINE_MAX_VALUE, error))
      return FALSE;
  }
  if (env) {
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    GVariantIter it;
    const char *k, *v;

    n_env = g_variant_n_children(env);
    if (n_env > VFIOD_CMDLINE_MAX_ENV) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env: %zu entries, at most %d" WHY, n_env,
                  VFIOD_CMDLINE_MAX_ENV);
      return FALSE;
    }
    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v)) {
      g_autofree char *what = NULL;

      if (!check_env_name(k, error))
        return FALSE;
      if (!g_hash_table_add(names, (gpointer) k)) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env: %s given more than once", k);
        return FALSE;
      }
      /* NAME=VALUE is one value of at most VFIOD_CMDLINE_MAX_VALUE bytes. */
      what = g_strdup_printf("env %s", k);
      if (strlen(k) + 1 > VFIOD_CMDLINE_MAX_VALUE) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env: the name %s is longer than %d bytes", k,
                    VFIOD_CMDLINE_MAX_VALUE - 1);
        return FALSE;
      }
      if (!check_value(what, v, VFIOD_CMDLINE_MAX_VALUE - strlen(k) - 1, error))
        return FALSE;
    }
  }
  total = vfd_guest_cmdline_workload_len(cmd, args, env);
  if (total > VFIOD_CMDLINE_WORKLOAD_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "cmd, args and env take %zu bytes of the guest kernel command line, at most %d: it holds %d "
                "bytes on x86, %d of them reserved for vfiod's own keys",
                total, VFIOD_CMDLINE_WORKLOAD_MAX, VFIOD_CMDLINE_MAX_LEN, VFIOD_CMDLINE_RESERVED);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_guest_cmdline_add_workload(GStrvBuilder *words, const char *cmd, const char *const *args, GVariant *env,
                               GError **error)
{
  if (!vfd_guest_cmdline_check_workload(cmd, args, env, error))
    return FALSE;
  if (cmd) {
    g_autofree char *w = g_strdup_printf(VFIOD_KEY_CMD "=%s", cmd);
    g_strv_builder_add(words, w);
  }
  for (gsize i = 0; args && args[i]; i++) {
    g_autofree char *w = g_strdup_printf("\"" VFIOD_KEY_ARG "=%s\"", args[i]);
    g_strv_builder_add(words, w);
  }
  if (env) {
    GVariantIter it;
    const char *k, *v;

    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v)) {
      g_autofree char *w = g_strdup_printf("\"" VFIOD_KEY_ENV "=%s=%s\"", k, v);
      g_strv_builder_add(words, w);
    }
  }
  return TRUE;
}
