/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "guest-payload.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"

/* @s for a message: C-escaped (ASCII only, so valid UTF-8 for D-Bus) and
 * cut at 48 bytes. */
static char *
shown(const char *s)
{
  g_autofree char *head = g_strndup(s, 48);
  g_autofree char *esc = g_strescape(head, NULL);

  return g_strdup_printf("\"%s\"%s", esc, strlen(s) > 48 ? "..." : "");
}

static gboolean
check_path(const char *what, const char *p, GError **error)
{
  if (!gi_payload_path_valid(p)) {
    g_autofree char *show = shown(p);
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "%s must be an absolute path in the guest without empty, '.' or '..' components, a trailing '/' "
                "or control bytes, at most %d bytes, got %s",
                what, VFIOD_PAYLOAD_MAX_PATH, show);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_string(const char *what, gsize len, GError **error)
{
  if (len > VFIOD_PAYLOAD_MAX_STRING) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: %zu bytes, at most %u", what, len,
                VFIOD_PAYLOAD_MAX_STRING);
    return FALSE;
  }
  return TRUE;
}

/* One file of the "files" option: its path, mode and contents. */
static gboolean
file_entry(GVariant *entry, gsize i, const char **ret_path, guint32 *ret_mode, GBytes **ret_data, GError **error)
{
  g_autoptr(GVariant) path = NULL, mode = NULL, contents = NULL;
  g_autofree char *what = NULL;
  GVariantIter it;
  const char *key;
  GVariant *value;

  g_variant_iter_init(&it, entry);
  while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
    g_autoptr(GVariant) v = value;

    if (g_str_equal(key, "path") && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING))
      path = g_steal_pointer(&v);
    else if (g_str_equal(key, "mode") && g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
      mode = g_steal_pointer(&v);
    else if (g_str_equal(key, "contents") && g_variant_is_of_type(v, G_VARIANT_TYPE_BYTESTRING))
      contents = g_steal_pointer(&v);
    else {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "files[%zu]: unknown key '%s' or wrong type %s (path s, contents ay, mode u)", i, key,
                  g_variant_get_type_string(v));
      return FALSE;
    }
  }
  if (!path || !contents) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "files[%zu]: needs a path (s) and contents (ay)", i);
    return FALSE;
  }
  *ret_path = g_variant_get_string(path, NULL);
  what = g_strdup_printf("files[%zu] path", i);
  if (!check_path(what, *ret_path, error))
    return FALSE;
  *ret_mode = mode ? g_variant_get_uint32(mode) : VFIOD_PAYLOAD_DEFAULT_MODE;
  if (*ret_mode > VFIOD_PAYLOAD_MAX_MODE) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "files[%zu] (%s): mode %04o: only permission bits (at most 0777; no set-id or sticky bit)", i,
                *ret_path, *ret_mode);
    return FALSE;
  }
  /* @path and @contents point into @entry, which the caller keeps */
  *ret_data = g_variant_get_data_as_bytes(contents);
  return TRUE;
}

/* Appends the record "KIND LEN\n" DATA "\n" to @out (NULL: nothing). */
static void
append_record(GByteArray *out, const char *kind, const void *data, gsize len)
{
  g_autofree char *head = NULL;

  if (!out)
    return;
  head = g_strdup_printf("%s %zu\n", kind, len);
  g_byte_array_append(out, (const guint8 *) head, strlen(head));
  g_byte_array_append(out, data, len);
  g_byte_array_append(out, (const guint8 *) "\n", 1);
}

/* Walks the request, checking it; with @out, also writes the records. */
static gboolean
walk(const char *cmd, const char *const *args, GVariant *env, GVariant *files, GByteArray *out, GError **error)
{
  gsize exec_bytes = 0, total = sizeof(VFIOD_PAYLOAD_MAGIC) - 1 + 4;
  gsize n_args = args ? g_strv_length((char **) args) : 0;

  if (env && !g_variant_is_of_type(env, G_VARIANT_TYPE("a{ss}"))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env must be of type a{ss}, got %s",
                g_variant_get_type_string(env));
    return FALSE;
  }
  if (files && !g_variant_is_of_type(files, G_VARIANT_TYPE("aa{sv}"))) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "files must be of type aa{sv}, got %s",
                g_variant_get_type_string(files));
    return FALSE;
  }
  if (!cmd && (n_args > 0 || (env && g_variant_n_children(env) > 0))) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "args and env need a cmd");
    return FALSE;
  }
  if (out)
    g_byte_array_append(out, (const guint8 *) VFIOD_PAYLOAD_MAGIC, sizeof(VFIOD_PAYLOAD_MAGIC) - 1);
  if (cmd) {
    if (!check_path("cmd", cmd, error))
      return FALSE;
    exec_bytes += strlen(cmd) + 1;
    total += 16 + strlen(cmd);
    append_record(out, "cmd", cmd, strlen(cmd));
  }
  if (n_args > VFIOD_PAYLOAD_MAX_ARGS) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "args: %zu given, at most %d", n_args,
                VFIOD_PAYLOAD_MAX_ARGS);
    return FALSE;
  }
  for (gsize i = 0; i < n_args; i++) {
    char what[32];
    gsize len = strlen(args[i]);

    g_snprintf(what, sizeof what, "args[%zu]", i);
    if (!check_string(what, len, error))
      return FALSE;
    exec_bytes += len + 1;
    total += 16 + len;
    append_record(out, "arg", args[i], len);
  }
  if (env) {
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    GVariantIter it;
    const char *k, *v;

    if (g_variant_n_children(env) > VFIOD_PAYLOAD_MAX_ENV) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env: %zu entries, at most %d",
                  g_variant_n_children(env), VFIOD_PAYLOAD_MAX_ENV);
      return FALSE;
    }
    g_variant_iter_init(&it, env);
    while (g_variant_iter_next(&it, "{&s&s}", &k, &v)) {
      g_autofree char *entry = g_strdup_printf("%s=%s", k, v);
      g_autofree char *what = g_strdup_printf("env %s", k);
      gsize len = strlen(entry);

      if (strchr(k, '=') || !gi_payload_env_valid(entry)) {
        g_autofree char *show = shown(k);
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "env: the name %s is not allowed: names are [A-Za-z_][A-Za-z0-9_]*", show);
        return FALSE;
      }
      if (!g_hash_table_add(names, (gpointer) k)) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "env: %s given more than once", k);
        return FALSE;
      }
      if (!check_string(what, len, error))
        return FALSE;
      exec_bytes += len + 1;
      total += 16 + len;
      append_record(out, "env", entry, len);
    }
  }
  if (exec_bytes > VFIOD_PAYLOAD_MAX_EXEC) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "cmd, args and env take %zu bytes, at most %u",
                exec_bytes, VFIOD_PAYLOAD_MAX_EXEC);
    return FALSE;
  }
  if (files) {
    g_autoptr(GHashTable) paths = g_hash_table_new(g_str_hash, g_str_equal);
    gsize n = g_variant_n_children(files);

    if (n > VFIOD_PAYLOAD_MAX_FILES) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "files: %zu given, at most %d", n,
                  VFIOD_PAYLOAD_MAX_FILES);
      return FALSE;
    }
    for (gsize i = 0; i < n; i++) {
      g_autoptr(GVariant) entry = g_variant_get_child_value(files, i);
      g_autoptr(GBytes) data = NULL;
      const char *path = NULL;
      guint32 mode = 0;
      gsize len;

      if (!file_entry(entry, i, &path, &mode, &data, error))
        return FALSE;
      if (!g_hash_table_add(paths, (gpointer) path)) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "files[%zu]: %s given more than once", i, path);
        return FALSE;
      }
      len = g_bytes_get_size(data);
      total += 32 + strlen(path) + len;
      if (total > VFIOD_PAYLOAD_MAX) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "files[%zu] (%s): the payload would exceed %u bytes",
                    i, path, VFIOD_PAYLOAD_MAX);
        return FALSE;
      }
      if (out) {
        g_autofree char *head = g_strdup_printf("file %o %zu %zu\n", mode, strlen(path), len);
        g_byte_array_append(out, (const guint8 *) head, strlen(head));
        g_byte_array_append(out, (const guint8 *) path, strlen(path));
        g_byte_array_append(out, (const guint8 *) "\n", 1);
        g_byte_array_append(out, g_bytes_get_data(data, NULL), len);
        g_byte_array_append(out, (const guint8 *) "\n", 1);
      }
    }
  }
  if (out)
    g_byte_array_append(out, (const guint8 *) "end\n", 4);
  return TRUE;
}

gboolean
vfd_guest_payload_check(const char *cmd, const char *const *args, GVariant *env, GVariant *files, GError **error)
{
  return walk(cmd, args, env, files, NULL, error);
}

GBytes *
vfd_guest_payload_build(const char *cmd, const char *const *args, GVariant *env, GVariant *files, GError **error)
{
  g_autoptr(GByteArray) out = g_byte_array_new();

  if (!walk(cmd, args, env, files, out, error))
    return NULL;
  if (!cmd && (!files || g_variant_n_children(files) == 0))
    return NULL;
  return g_byte_array_free_to_bytes(g_steal_pointer(&out));
}

int
vfd_guest_payload_memfd(GBytes *payload, GError **error)
{
  gsize len = 0, done = 0;
  const guint8 *data = g_bytes_get_data(payload, &len);
  int fd = memfd_create("vfiod-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  if (fd < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "the workload's payload: memfd_create: %s", g_strerror(errno));
    return -1;
  }
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "the workload's payload: write: %s", g_strerror(errno));
      close(fd);
      return -1;
    }
    done += (gsize) n;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
      lseek(fd, 0, SEEK_SET) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "the workload's payload: seal: %s", g_strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}
