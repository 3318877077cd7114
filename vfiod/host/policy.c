/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy.h"

#include "error.h"

typedef struct {
  int vendor; /* -1: any */
  int device; /* -1: any */
} IdRule;

typedef struct {
  guint32 prefix; /* value of the hex digits */
  guint digits;   /* 2, 4 or 6 */
} ClassRule;

struct VfdPolicy {
  gatomicrefcount refs;
  GArray *ids;     /* IdRule */
  GArray *classes; /* ClassRule */
  VfdPolicyGuards guards;
};

static bool
parse_hex(const char *s, guint ndigits, guint32 *ret)
{
  guint32 v = 0;

  if (strlen(s) != ndigits)
    return false;
  for (guint i = 0; i < ndigits; i++) {
    int d = g_ascii_xdigit_value(s[i]);
    if (d < 0)
      return false;
    v = v * 16 + (guint32) d;
  }
  *ret = v;
  return true;
}

static bool
parse_id_side(const char *s, int *ret)
{
  guint32 v;

  if (g_str_equal(s, "*")) {
    *ret = -1;
    return true;
  }
  if (!parse_hex(s, 4, &v))
    return false;
  *ret = (int) v;
  return true;
}

VfdPolicy *
vfd_policy_ref(VfdPolicy *policy)
{
  g_atomic_ref_count_inc(&policy->refs);
  return policy;
}

void
vfd_policy_unref(VfdPolicy *policy)
{
  if (!policy || !g_atomic_ref_count_dec(&policy->refs))
    return;
  g_array_unref(policy->ids);
  g_array_unref(policy->classes);
  g_free(policy);
}

VfdPolicy *
vfd_policy_new(const char *ids, const char *classes, GError **error)
{
  g_autoptr(VfdPolicy) p = g_new0(VfdPolicy, 1);
  /* A value of only blanks is an empty key: no items. */
  g_autofree char *ids_s = g_strstrip(g_strdup(ids ? ids : ""));
  g_autofree char *classes_s = g_strstrip(g_strdup(classes ? classes : ""));
  g_auto(GStrv) id_items = g_strsplit(ids_s, ";", -1);
  g_auto(GStrv) class_items = g_strsplit(classes_s, ";", -1);

  g_atomic_ref_count_init(&p->refs);
  p->ids = g_array_new(FALSE, FALSE, sizeof(IdRule));
  p->classes = g_array_new(FALSE, FALSE, sizeof(ClassRule));

  for (char **it = id_items; *it; it++) {
    char *item = g_strstrip(*it);
    g_auto(GStrv) sides = NULL;
    IdRule rule;

    if (!*item) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "empty item in [devices] ids '%s' (leave the key empty to allow any device)", ids);
      return NULL;
    }
    sides = g_strsplit(item, ":", -1);
    if (g_strv_length(sides) != 2 || !parse_id_side(sides[0], &rule.vendor) ||
        !parse_id_side(sides[1], &rule.device)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "invalid device id pattern '%s' in [devices] ids: expected VVVV:DDDD (hex or *)", item);
      return NULL;
    }
    g_array_append_val(p->ids, rule);
  }

  for (char **it = class_items; *it; it++) {
    char *item = g_strstrip(*it);
    ClassRule rule;
    guint len = (guint) strlen(item);

    if (!*item) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "empty item in [devices] classes '%s' (leave the key empty to allow any class)", classes);
      return NULL;
    }
    if ((len != 2 && len != 4 && len != 6) || !parse_hex(item, len, &rule.prefix)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "invalid class prefix '%s' in [devices] classes: expected 2, 4 or 6 hex digits", item);
      return NULL;
    }
    rule.digits = len;
    g_array_append_val(p->classes, rule);
  }
  return g_steal_pointer(&p);
}

bool
vfd_policy_allows(const VfdPolicy *policy, guint16 vendor, guint16 device, guint32 class_code)
{
  bool id_ok = policy->ids->len == 0;
  bool class_ok = policy->classes->len == 0;

  for (guint i = 0; i < policy->ids->len && !id_ok; i++) {
    const IdRule *r = &g_array_index(policy->ids, IdRule, i);
    id_ok = (r->vendor < 0 || r->vendor == vendor) && (r->device < 0 || r->device == device);
  }
  for (guint i = 0; i < policy->classes->len && !class_ok; i++) {
    const ClassRule *r = &g_array_index(policy->classes, ClassRule, i);
    class_ok = ((class_code & 0xffffff) >> (4 * (6 - r->digits))) == r->prefix;
  }
  return id_ok && class_ok;
}

void
vfd_policy_set_guards(VfdPolicy *policy, const VfdPolicyGuards *guards)
{
  policy->guards = *guards;
}

const char *
vfd_policy_refusal(const VfdPolicy *policy, guint16 vendor, guint16 device, guint32 class_code, bool boot_vga)
{
  guint8 base = (class_code >> 16) & 0xff;

  if (!vfd_policy_allows(policy, vendor, device, class_code))
    return "not matched by [devices] ids/classes";
  if (boot_vga && !policy->guards.allow_boot_vga)
    return "the boot VGA device (set [devices] allow_boot_vga=true to allow)";
  if (base == 0x01 && !policy->guards.allow_storage)
    return "a storage controller (set [devices] allow_storage=true to allow)";
  if (base == 0x02 && !policy->guards.allow_network)
    return "a network controller (set [devices] allow_network=true to allow)";
  return NULL;
}

bool
vfd_reset_policy_wants(VfdResetPolicy policy, guint16 vendor, guint32 class_code)
{
  switch (policy) {
  case VFD_RESET_ALWAYS:
    return true;
  case VFD_RESET_NEVER:
    return false;
  case VFD_RESET_AUTO:
  default:
    return vendor == 0x10de && ((class_code >> 16) & 0xff) == 0x03;
  }
}
