/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sandbox names, labels and specs (identity.h). */
#include "identity.h"

#include <string.h>

#include "error.h"

#define SB_PREFIX "sb-"

static gboolean
name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

gboolean
vfd_sandbox_name_check(const char *name, GError **error)
{
  size_t len = name ? strlen(name) : 0;

  if (len == 0 || len > VFD_SANDBOX_NAME_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "name: %zu bytes; a name has 1 to %d", len,
                VFD_SANDBOX_NAME_MAX);
    return FALSE;
  }
  for (size_t i = 0; i < len; i++)
    if (!name_char(name[i]) && name[i] != '.' && name[i] != '-') {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "name: byte %zu is not one of a-z 0-9 . - (a name is like a DNS label)", i);
      return FALSE;
    }
  if (!name_char(name[0]) || !name_char(name[len - 1])) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "name: must begin and end with a-z or 0-9");
    return FALSE;
  }
  if (g_str_has_prefix(name, SB_PREFIX)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                        "name: names starting with 'sb-' are reserved for sandbox ids");
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_sandbox_label_check(const char *key, const char *value, GError **error)
{
  size_t klen = key ? strlen(key) : 0;
  size_t vlen = value ? strlen(value) : 0;

  if (klen == 0 || klen > VFD_SANDBOX_LABEL_KEY_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: a key has 1 to %d bytes, got %zu",
                VFD_SANDBOX_LABEL_KEY_MAX, klen);
    return FALSE;
  }
  for (size_t i = 0; i < klen; i++)
    if (!g_ascii_isalnum(key[i]) && !strchr("._/-", key[i])) {
      g_autofree char *shown = g_strescape(key, NULL);
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "labels: key '%.80s': byte %zu is not one of A-Z a-z 0-9 . _ / -", shown, i);
      return FALSE;
    }
  if (!value || vlen > VFD_SANDBOX_LABEL_VALUE_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: the value of '%s' has %zu bytes, at most %d",
                key, vlen, VFD_SANDBOX_LABEL_VALUE_MAX);
    return FALSE;
  }
  if (!g_utf8_validate(value, (gssize) vlen, NULL)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: the value of '%s' is not UTF-8", key);
    return FALSE;
  }
  for (const char *p = value; *p; p = g_utf8_next_char(p))
    if (g_unichar_iscntrl(g_utf8_get_char(p))) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "labels: the value of '%s' holds a control character at byte %zu", key, (size_t) (p - value));
      return FALSE;
    }
  return TRUE;
}

gboolean
vfd_sandbox_labels_check(GVariant *labels, GError **error)
{
  g_autoptr(GHashTable) seen = NULL;
  GVariantIter iter;
  const char *k, *v;

  if (!labels)
    return TRUE;
  if (!g_variant_is_of_type(labels, G_VARIANT_TYPE("a{ss}"))) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: must be a{ss}");
    return FALSE;
  }
  if (g_variant_n_children(labels) > VFD_SANDBOX_LABELS_MAX) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: %zu entries, at most %d",
                g_variant_n_children(labels), VFD_SANDBOX_LABELS_MAX);
    return FALSE;
  }
  seen = g_hash_table_new(g_str_hash, g_str_equal);
  g_variant_iter_init(&iter, labels);
  while (g_variant_iter_next(&iter, "{&s&s}", &k, &v)) {
    if (!vfd_sandbox_label_check(k, v, error))
      return FALSE;
    if (!g_hash_table_add(seen, (gpointer) k)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "labels: key '%s' is given twice", k);
      return FALSE;
    }
  }
  return TRUE;
}

static gint
entry_cmp(gconstpointer a, gconstpointer b)
{
  GVariant *ea = *(GVariant *const *) a, *eb = *(GVariant *const *) b;
  g_autoptr(GVariant) ka = g_variant_get_child_value(ea, 0);
  g_autoptr(GVariant) kb = g_variant_get_child_value(eb, 0);

  /* Keys of one dictionary have one type; strings and numbers compare
   * by their printed form, which is enough for an order. */
  if (g_variant_is_of_type(ka, G_VARIANT_TYPE_STRING))
    return strcmp(g_variant_get_string(ka, NULL), g_variant_get_string(kb, NULL));
  {
    g_autofree char *pa = g_variant_print(ka, TRUE);
    g_autofree char *pb = g_variant_print(kb, TRUE);
    return strcmp(pa, pb);
  }
}

/* @v with every dictionary ordered by key, @skip_key left out of the top
 * level (floating). */
static GVariant *
canonical(GVariant *v, const char *skip_key)
{
  const GVariantType *t = g_variant_get_type(v);

  if (g_variant_type_is_variant(t)) {
    g_autoptr(GVariant) inner = g_variant_get_variant(v);
    return g_variant_new_variant(canonical(inner, NULL));
  }
  if (g_variant_type_is_array(t) && g_variant_type_is_dict_entry(g_variant_type_element(t))) {
    g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func((GDestroyNotify) g_variant_unref);
    GVariantBuilder b;
    gsize n = g_variant_n_children(v);

    for (gsize i = 0; i < n; i++) {
      g_autoptr(GVariant) e = g_variant_get_child_value(v, i);
      g_autoptr(GVariant) k = g_variant_get_child_value(e, 0);
      g_autoptr(GVariant) val = g_variant_get_child_value(e, 1);
      if (skip_key && g_variant_is_of_type(k, G_VARIANT_TYPE_STRING) && strcmp(g_variant_get_string(k, NULL), skip_key) == 0)
        continue;
      g_ptr_array_add(entries, g_variant_ref_sink(g_variant_new_dict_entry(k, canonical(val, NULL))));
    }
    g_ptr_array_sort(entries, entry_cmp);
    g_variant_builder_init(&b, t);
    for (guint i = 0; i < entries->len; i++)
      g_variant_builder_add_value(&b, g_ptr_array_index(entries, i));
    return g_variant_builder_end(&b);
  }
  if (g_variant_type_is_container(t)) {
    GVariantBuilder b;
    gsize n = g_variant_n_children(v);

    g_variant_builder_init(&b, t);
    for (gsize i = 0; i < n; i++) {
      g_autoptr(GVariant) c = g_variant_get_child_value(v, i);
      g_variant_builder_add_value(&b, canonical(c, NULL));
    }
    return g_variant_builder_end(&b);
  }
  /* a basic value: a new (floating) copy of it */
  {
    g_autoptr(GBytes) bytes = g_variant_get_data_as_bytes(v);
    return g_variant_new_from_bytes(t, bytes, TRUE);
  }
}

char *
vfd_sandbox_spec_hash(GVariant *options)
{
  g_autoptr(GVariant) c = NULL;
  g_autoptr(GVariant) normal = NULL;

  c = g_variant_ref_sink(canonical(options, "name"));
  normal = g_variant_get_normal_form(c);
  return g_compute_checksum_for_data(G_CHECKSUM_SHA256, g_variant_get_data(normal), g_variant_get_size(normal));
}

gboolean
vfd_sandbox_spec_hash_valid(const char *s)
{
  if (!s || strlen(s) != 64)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isxdigit(*p) || g_ascii_isupper(*p))
      return FALSE;
  return TRUE;
}
