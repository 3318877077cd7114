/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "api-limits.h"

#include <errno.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "error.h"

/* ---- rate-limited logging ------------------------------------------------ */

static GMutex limit_lock;

static gboolean
limit_allow(VfdLogLimit *limit, guint *ret_suppressed)
{
  gboolean ok;

  g_mutex_lock(&limit_lock);
  ok = vfd_log_limit_allow(limit, g_get_monotonic_time(), ret_suppressed);
  g_mutex_unlock(&limit_lock);
  return ok;
}

void
vfd_log_limited(VfdLogLimit *limit, GLogLevelFlags level, const char *format, ...)
{
  g_autofree char *msg = NULL;
  guint suppressed = 0;
  va_list ap;

  if (!limit_allow(limit, &suppressed))
    return;
  va_start(ap, format);
  msg = g_strdup_vprintf(format, ap);
  va_end(ap);
  if (suppressed)
    g_log(G_LOG_DOMAIN, level, "%s (%u similar messages suppressed before)", msg, suppressed);
  else
    g_log(G_LOG_DOMAIN, level, "%s", msg);
}

static gint trim_scheduled; /* atomic */
static guint trim_runs;     /* main thread */

static gboolean
on_trim(gpointer data)
{
  malloc_trim(0);
  if (++trim_runs < 3)
    return G_SOURCE_CONTINUE;
  trim_runs = 0;
  g_atomic_int_set(&trim_scheduled, 0);
  return G_SOURCE_REMOVE;
}

void
vfd_heap_trim_later(void)
{
  GSource *src;

  if (!g_atomic_int_compare_and_exchange(&trim_scheduled, 0, 1))
    return;
  src = g_timeout_source_new_seconds(1);
  g_source_set_callback(src, on_trim, NULL, NULL);
  g_source_set_static_name(src, "[vfiod] malloc_trim after a large request");
  g_source_attach(src, g_main_context_default());
  g_source_unref(src);
}

#define DOMAIN_MESSAGE_MAX 1024

typedef struct {
  char *domain;
  VfdLogLimit limit;
} DomainLimit;

static GPtrArray *limited_domains; /* DomainLimit; under limit_lock while set up */

static void
on_domain_message(const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
  DomainLimit *dl = data;
  guint suppressed = 0;
  gboolean always = (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) != 0;
  gsize len = message ? strlen(message) : 0;

  if (len > DOMAIN_MESSAGE_MAX)
    vfd_heap_trim_later(); /* its caller made this text (and copies) on the heap */
  if (!limit_allow(&dl->limit, &suppressed) && !always)
    return;
  if (suppressed) {
    g_autofree char *note = g_strdup_printf("(%u similar messages suppressed before)", suppressed);
    g_log_default_handler(domain, G_LOG_LEVEL_WARNING, note, NULL);
  }
  if (len > DOMAIN_MESSAGE_MAX) {
    g_autofree char *cut = g_strdup_printf("%.*s... (%" G_GSIZE_FORMAT " bytes, cut)", DOMAIN_MESSAGE_MAX, message,
                                           len);
    g_log_default_handler(domain, level, cut, NULL);
    return;
  }
  g_log_default_handler(domain, level, message, NULL);
}

void
vfd_log_limit_domain(const char *domain)
{
  DomainLimit *dl;

  g_mutex_lock(&limit_lock);
  if (!limited_domains)
    limited_domains = g_ptr_array_new();
  for (guint i = 0; i < limited_domains->len; i++)
    if (g_str_equal(((DomainLimit *) g_ptr_array_index(limited_domains, i))->domain, domain)) {
      g_mutex_unlock(&limit_lock);
      return;
    }
  /* Lives as long as the process: GLib may call the handler at any time. */
  dl = g_new0(DomainLimit, 1);
  dl->domain = g_strdup(domain);
  dl->limit = (VfdLogLimit){ .burst = 20, .interval_us = 10 * G_USEC_PER_SEC };
  g_ptr_array_add(limited_domains, dl);
  g_mutex_unlock(&limit_lock);
  g_log_set_handler(domain, G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION, on_domain_message, dl);
}

/* ---- connection caps ------------------------------------------------------ */

struct VfdConnLimits {
  guint max_total;
  guint max_per_uid;
  guint root_reserved;
  guint total;
  GHashTable *per_uid; /* uid -> count (both GUINT_TO_POINTER) */
};

VfdConnLimits *
vfd_conn_limits_new(guint max_total, guint max_per_uid, guint root_reserved)
{
  VfdConnLimits *l = g_new0(VfdConnLimits, 1);

  l->max_total = max_total;
  l->max_per_uid = max_per_uid;
  l->root_reserved = root_reserved;
  l->per_uid = g_hash_table_new(g_direct_hash, g_direct_equal);
  return l;
}

void
vfd_conn_limits_free(VfdConnLimits *limits)
{
  if (!limits)
    return;
  g_hash_table_unref(limits->per_uid);
  g_free(limits);
}

guint
vfd_conn_limits_total(const VfdConnLimits *limits)
{
  return limits->total;
}

guint
vfd_conn_limits_of_uid(const VfdConnLimits *limits, uid_t uid)
{
  return GPOINTER_TO_UINT(g_hash_table_lookup(limits->per_uid, GUINT_TO_POINTER(uid)));
}

gboolean
vfd_conn_limits_admit(VfdConnLimits *limits, uid_t uid, GError **error)
{
  guint mine = vfd_conn_limits_of_uid(limits, uid);

  if (uid == 0) {
    if (limits->total >= limits->max_total + limits->root_reserved) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                  "%u API connections are open, the most there may be ([daemon] max_connections %u, "
                  "plus %u kept for root)",
                  limits->total, limits->max_total, limits->root_reserved);
      return FALSE;
    }
  } else {
    if (mine >= limits->max_per_uid) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                  "uid %u has %u API connections open, the most one user may have "
                  "([daemon] max_connections_per_uid)",
                  (guint) uid, mine);
      return FALSE;
    }
    if (limits->total >= limits->max_total) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED,
                  "%u API connections are open, the most there may be ([daemon] max_connections)",
                  limits->total);
      return FALSE;
    }
  }
  limits->total++;
  g_hash_table_insert(limits->per_uid, GUINT_TO_POINTER(uid), GUINT_TO_POINTER(mine + 1));
  return TRUE;
}

void
vfd_conn_limits_release(VfdConnLimits *limits, uid_t uid)
{
  guint mine = vfd_conn_limits_of_uid(limits, uid);

  g_return_if_fail(mine > 0 && limits->total > 0);
  limits->total--;
  if (mine == 1)
    g_hash_table_remove(limits->per_uid, GUINT_TO_POINTER(uid));
  else
    g_hash_table_insert(limits->per_uid, GUINT_TO_POINTER(uid), GUINT_TO_POINTER(mine - 1));
}

/* ---- requests --------------------------------------------------------------- */

typedef struct {
  guint max_entries;
  guint values;
  GString *where; /* "argument 1, key 'devices'" */
} Walk;

/* Arrays of these are bounded by the request size alone. */
static gboolean
is_fixed_number(const GVariantType *t)
{
  return g_variant_type_is_basic(t) && !g_variant_type_equal(t, G_VARIANT_TYPE_STRING) &&
         !g_variant_type_equal(t, G_VARIANT_TYPE_OBJECT_PATH) && !g_variant_type_equal(t, G_VARIANT_TYPE_SIGNATURE);
}

static gboolean
walk_value(GVariant *v, Walk *w, GError **error)
{
  const GVariantType *t = g_variant_get_type(v);
  gsize n;

  if (++w->values > VFD_API_MAX_VALUES) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "the request holds more than %u values",
                VFD_API_MAX_VALUES);
    return FALSE;
  }
  if (g_variant_type_is_basic(t))
    return TRUE;
  if (g_variant_type_is_variant(t)) {
    g_autoptr(GVariant) inner = g_variant_get_variant(v);
    return walk_value(inner, w, error);
  }
  n = g_variant_n_children(v);
  if (g_variant_type_is_array(t)) {
    const GVariantType *elem = g_variant_type_element(t);

    if (is_fixed_number(elem))
      return TRUE;
    if (n > w->max_entries) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "%s: %" G_GSIZE_FORMAT " entries, at most %u",
                  w->where->str, n, w->max_entries);
      return FALSE;
    }
    if (g_variant_type_is_dict_entry(elem)) {
      g_autoptr(GHashTable) keys = g_hash_table_new_full(g_variant_hash, g_variant_equal,
                                                         (GDestroyNotify) g_variant_unref, NULL);
      for (gsize i = 0; i < n; i++) {
        g_autoptr(GVariant) entry = g_variant_get_child_value(v, i);
        GVariant *key = g_variant_get_child_value(entry, 0);
        g_autoptr(GVariant) value = g_variant_get_child_value(entry, 1);
        gsize at = w->where->len;
        gboolean ok;

        if (!g_hash_table_add(keys, key)) {
          g_autofree char *shown = g_variant_print(key, FALSE);
          g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s: key %.64s given twice", w->where->str,
                      shown);
          return FALSE;
        }
        if (g_variant_is_of_type(key, G_VARIANT_TYPE_STRING))
          g_string_append_printf(w->where, ", key '%.64s'", g_variant_get_string(key, NULL));
        w->values++;
        ok = walk_value(value, w, error);
        g_string_truncate(w->where, at);
        if (!ok)
          return FALSE;
      }
      return TRUE;
    }
  }
  for (gsize i = 0; i < n; i++) {
    g_autoptr(GVariant) child = g_variant_get_child_value(v, i);
    if (!walk_value(child, w, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
vfd_api_check_args(GVariant *body, guint max_entries, gsize max_bytes, GError **error)
{
  g_autoptr(GString) where = g_string_new(NULL);
  Walk w = { .max_entries = max_entries, .where = where };
  gsize size;

  if (!body)
    return TRUE;
  if (!g_variant_is_of_type(body, G_VARIANT_TYPE_TUPLE)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "the arguments are not a tuple");
    return FALSE;
  }
  for (gsize i = 0; i < g_variant_n_children(body); i++) {
    g_autoptr(GVariant) arg = g_variant_get_child_value(body, i);

    g_string_printf(where, "argument %" G_GSIZE_FORMAT, i + 1);
    if (!walk_value(arg, &w, error))
      return FALSE;
  }
  /* After the walk: the values are few, so computing the size is cheap. */
  size = g_variant_get_size(body);
  if (size > max_bytes) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_LIMIT_EXCEEDED, "the request has %" G_GSIZE_FORMAT
                " bytes of arguments, at most %" G_GSIZE_FORMAT, size, max_bytes);
    return FALSE;
  }
  return TRUE;
}

/* ---- unread backlog --------------------------------------------------------- */

int
vfd_socket_backlog(int fd, guint *ret_queued, guint *ret_sndbuf)
{
  int queued = 0, sndbuf = 0;
  socklen_t len = sizeof sndbuf;

  if (ioctl(fd, SIOCOUTQ, &queued) < 0)
    return -errno;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0)
    return -errno;
  *ret_queued = (guint) MAX(queued, 0);
  *ret_sndbuf = (guint) MAX(sndbuf, 0);
  return 0;
}

gboolean
vfd_backlog_is_slow(guint queued, guint sndbuf)
{
  return sndbuf > 0 && (guint64) queued * 2 >= sndbuf;
}

char *
vfd_uid_describe(uid_t uid)
{
  struct passwd pw, *res = NULL;
  char buf[4096];

  if (uid == 0)
    return g_strdup("root");
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res)
    return g_strdup_printf("uid %u (%s)", (guint) uid, res->pw_name);
  return g_strdup_printf("uid %u", (guint) uid);
}
