/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "journal.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "failpoint.h"
#include "identity.h"
#include "json-text.h"
#include "netpool.h"

#define JOURNAL_FORMAT "vfiod-journal"
#define JOURNAL_VERSION 1

struct VfdJournal {
  char *dir;
  char *path;
  GPtrArray *devices;   /* VfdJournalDevice, sorted by BDF */
  GPtrArray *sandboxes; /* VfdJournalSandbox, sorted by id */
};

static const char *const state_names[] = { "host", "binding", "bound", "releasing", "stuck" };

const char *
vfd_device_state_to_string(VfdDeviceState state)
{
  if ((guint) state < G_N_ELEMENTS(state_names))
    return state_names[state];
  return "unknown";
}

int
vfd_device_state_from_string(const char *s, VfdDeviceState *ret)
{
  for (guint i = 0; s && i < G_N_ELEMENTS(state_names); i++)
    if (g_str_equal(s, state_names[i])) {
      *ret = (VfdDeviceState) i;
      return 0;
    }
  return -EINVAL;
}

void
vfd_journal_free_originals(char *driver, char *override, char *d3cold, char *reset_method)
{
  g_free(driver);
  g_free(override);
  g_free(d3cold);
  g_free(reset_method);
}

static void
device_free(gpointer p)
{
  VfdJournalDevice *d = p;

  g_free(d->owner);
  vfd_journal_free_originals(d->original_driver, d->original_override, d->original_d3cold,
                             d->original_reset_method);
  g_free(d);
}

static VfdJournalDevice *
device_copy(const VfdJournalDevice *d)
{
  VfdJournalDevice *c = g_new0(VfdJournalDevice, 1);

  *c = *d;
  c->owner = g_strdup(d->owner ? d->owner : "");
  c->original_driver = g_strdup(d->original_driver);
  c->original_override = g_strdup(d->original_override ? d->original_override : "");
  c->original_d3cold = g_strdup(d->original_d3cold);
  c->original_reset_method = g_strdup(d->original_reset_method);
  return c;
}

static void
sandbox_free(gpointer p)
{
  VfdJournalSandbox *s = p;

  g_free(s->id);
  g_strfreev(s->devices);
  g_free(s->dir);
  g_free(s->subnet);
  g_free(s->tap);
  g_free(s->mac);
  g_free(s->name);
  g_strfreev(s->labels);
  g_free(s->spec);
  g_free(s->failure_reason);
  g_free(s);
}

static VfdJournalSandbox *
sandbox_copy(const VfdJournalSandbox *s)
{
  VfdJournalSandbox *c = g_new0(VfdJournalSandbox, 1);

  *c = *s;
  c->id = g_strdup(s->id);
  c->devices = g_strdupv(s->devices);
  c->dir = g_strdup(s->dir);
  c->subnet = g_strdup(s->subnet);
  c->tap = g_strdup(s->tap);
  c->mac = g_strdup(s->mac);
  c->name = g_strdup(s->name);
  c->labels = g_strdupv(s->labels);
  c->spec = g_strdup(s->spec);
  c->failure_reason = g_strdup(s->failure_reason);
  return c;
}

void
vfd_journal_free(VfdJournal *j)
{
  if (!j)
    return;
  g_free(j->dir);
  g_free(j->path);
  g_ptr_array_unref(j->devices);
  g_ptr_array_unref(j->sandboxes);
  g_free(j);
}

const char *
vfd_journal_path(const VfdJournal *j)
{
  return j->path;
}

/* Parsing: every problem is reported as one message; the caller wraps it.
 * The file may have been tampered with: a member of the wrong JSON type or
 * out of range is refused, never read as a default (json-glib's getters
 * return 0 or NULL for those, some with a critical). */

/* json-glib parses recursively and overflows the stack at some 80,000
 * levels; a journal is 4 deep. The text is checked first
 * (vfd_json_text_check(): one object, nesting, escapes). */
#define JOURNAL_MAX_DEPTH 32

/* Member @name of @o: TRUE with *@ret NULL when it is absent or null, TRUE
 * with the node when it is a value of @type (G_TYPE_STRING, G_TYPE_INT64,
 * G_TYPE_BOOLEAN), FALSE for any other type. */
static gboolean
get_value(JsonObject *o, const char *name, GType type, JsonNode **ret)
{
  JsonNode *n = json_object_get_member(o, name);

  *ret = NULL;
  if (!n || JSON_NODE_HOLDS_NULL(n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != type)
    return FALSE;
  *ret = n;
  return TRUE;
}

/* A string member; *@ret is @def when absent or null. Refused when not
 * UTF-8 once unescaped (a lone "\ud800"): the journal written from it
 * could not be read back. */
static gboolean
get_string(JsonObject *o, const char *name, const char *def, const char **ret)
{
  JsonNode *n;

  if (!get_value(o, name, G_TYPE_STRING, &n) || (n && !g_utf8_validate(json_node_get_string(n), -1, NULL)))
    return FALSE;
  *ret = n ? json_node_get_string(n) : def;
  return TRUE;
}

/* An integer member in [@min, @max]; *@ret is 0 when absent or null,
 * which is refused when @required. */
static gboolean
get_int(JsonObject *o, const char *name, gboolean required, gint64 min, gint64 max, gint64 *ret)
{
  JsonNode *n;

  if (!get_value(o, name, G_TYPE_INT64, &n) || (!n && required) ||
      (n && (json_node_get_int(n) < min || json_node_get_int(n) > max)))
    return FALSE;
  *ret = n ? json_node_get_int(n) : 0;
  return TRUE;
}

/* An array member, or NULL when absent or not an array. */
static JsonArray *
get_array(JsonObject *o, const char *name)
{
  JsonNode *n = json_object_get_member(o, name);

  return n && JSON_NODE_HOLDS_ARRAY(n) ? json_node_get_array(n) : NULL;
}

/* A refusal naming the record and the member: "malformed sandbox record
 * sb-1a2b3c4d: \"dir\" is not ...". @who (an id or BDF) is left out when
 * it is not known to be well-formed itself. */
static gboolean
bad_member(GError **error, const char *record, const char *who, const char *member, const char *why)
{
  g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT, "malformed %s record%s%s: \"%s\" %s", record, who ? " " : "",
              who ? who : "", member, why);
  return FALSE;
}

gboolean
vfd_journal_sandbox_id_valid(const char *id)
{
  gsize n = id ? strlen(id) : 0;

  if (n != strlen(VFD_SANDBOX_ID_PREFIX) + VFD_SANDBOX_ID_DIGITS || !g_str_has_prefix(id, VFD_SANDBOX_ID_PREFIX))
    return FALSE;
  for (const char *p = id + strlen(VFD_SANDBOX_ID_PREFIX); *p; p++)
    if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
      return FALSE;
  return TRUE;
}

/* "vfd" + 1..12 lower-case hex digits: what vfd_tap_name_for() makes of an
 * id vfiod generates, and shorter than IFNAMSIZ (16). */
static gboolean
tap_name_valid(const char *tap)
{
  gsize n = strlen(tap);

  if (!g_str_has_prefix(tap, "vfd") || n < 4 || n > 15)
    return FALSE;
  for (const char *p = tap + 3; *p; p++)
    if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
      return FALSE;
  return TRUE;
}

/* "xx:xx:xx:xx:xx:xx", lower-case hex (vfd_guest_mac_for()). */
static gboolean
mac_valid(const char *mac)
{
  if (strlen(mac) != 17)
    return FALSE;
  for (int i = 0; i < 17; i++)
    if (i % 3 == 2 ? mac[i] != ':' : !(g_ascii_isdigit(mac[i]) || (mac[i] >= 'a' && mac[i] <= 'f')))
      return FALSE;
  return TRUE;
}

/* Absolute, and no "." or ".." component: a directory vfiod deletes
 * recursively at start-up (reconcile-run.c also checks it is exactly
 * <runtime dir>/sandboxes/<id>). */
static gboolean
dir_valid(const char *dir)
{
  return vfd_path_check(dir, VFD_PATH_ABSOLUTE | VFD_PATH_NO_DOT | VFD_PATH_NO_DOTDOT);
}

static gboolean
parse_device(JsonObject *o, VfdJournalDevice *ret, GError **error)
{
  const char *bdf = NULL, *state = NULL, *who = NULL;
  JsonNode *drv = json_object_get_member(o, "original_driver");
  gint64 group = 0, owner_uid = 0;

#define BAD(member, why) bad_member(error, "device", who, member, why)
  if (!get_string(o, "bdf", NULL, &bdf) || !bdf || vfd_bdf_parse(bdf, &ret->bdf) < 0)
    return BAD("bdf", "is not a PCI address DDDD:BB:DD.F");
  who = bdf;
  if (!get_string(o, "state", NULL, &state) || !state || vfd_device_state_from_string(state, &ret->state) < 0)
    return BAD("state", "is not one of host, binding, bound, releasing, stuck");
  if (!get_int(o, "iommu_group", TRUE, -1, G_MAXINT, &group))
    return BAD("iommu_group", "is not an integer in [-1, 2147483647]");
  if (!drv || !get_string(o, "original_driver", NULL, (const char **) &ret->original_driver))
    return BAD("original_driver", "is not a string or null");
  if (!get_string(o, "owner", "", (const char **) &ret->owner))
    return BAD("owner", "is not a string");
  if (!get_string(o, "original_override", "", (const char **) &ret->original_override))
    return BAD("original_override", "is not a string");
  if (!get_string(o, "original_d3cold_allowed", NULL, (const char **) &ret->original_d3cold))
    return BAD("original_d3cold_allowed", "is not a string");
  if (!get_string(o, "original_reset_method", NULL, (const char **) &ret->original_reset_method))
    return BAD("original_reset_method", "is not a string");
  if (!get_int(o, "owner_uid", FALSE, 0, G_MAXUINT32 - 1, &owner_uid))
    return BAD("owner_uid", "is not a uid");
#undef BAD
  ret->iommu_group = (int) group;
  ret->owner_uid = (guint32) owner_uid;
  return TRUE;
}

/* One sandbox record into @s (strings point into @so; s->devices is newly
 * allocated on success, NULL on failure: the caller frees it). */
static gboolean
parse_sandbox(JsonObject *so, VfdJournalSandbox *s, GError **error)
{
  JsonArray *sdevs = get_array(so, "devices");
  JsonNode *nat;
  gint64 start_time, cid, owner_uid, qemu_uid, memory_mib, vcpus, numa_node, wstatus, wsignal;
  const char *who = NULL;
  JsonNode *labels_node = json_object_get_member(so, "labels");
  g_autoptr(GStrvBuilder) b = g_strv_builder_new();

#define BAD(member, why) bad_member(error, "sandbox", who, member, why)
  if (!get_string(so, "id", NULL, (const char **) &s->id) || !s->id ||
      !vfd_journal_sandbox_id_valid(s->id))
    return BAD("id", "is not a sandbox id (\"" VFD_SANDBOX_ID_PREFIX "\" and 8 lower-case hex digits)");
  who = s->id;
  if (!get_string(so, "dir", NULL, (const char **) &s->dir) || !s->dir || !dir_valid(s->dir))
    return BAD("dir", "is not an absolute path without \".\" or \"..\" components");
  if (!sdevs)
    return BAD("devices", "is not an array");
  if (!get_int(so, "pid", FALSE, 0, G_MAXINT32, &s->pid))
    return BAD("pid", "is not a pid");
  if (!get_int(so, "start_time", FALSE, 0, G_MAXINT64, &start_time))
    return BAD("start_time", "is not a non-negative integer");
  if (!get_int(so, "cid", FALSE, 0, VFD_CID_LAST, &cid) || (cid != 0 && cid < VFD_CID_FIRST))
    return BAD("cid", "is not a guest vsock CID (3 to 4294967294)");
  if (!get_value(so, "nat", G_TYPE_BOOLEAN, &nat))
    return BAD("nat", "is not a boolean");
  if (!get_int(so, "owner_uid", FALSE, 0, G_MAXUINT32 - 1, &owner_uid))
    return BAD("owner_uid", "is not a uid");
  if (!get_int(so, "qemu_uid", FALSE, 0, G_MAXUINT32 - 1, &qemu_uid))
    return BAD("qemu_uid", "is not a uid");
  if (!get_int(so, "memory_mib", FALSE, 0, 1024 * 1024, &memory_mib))
    return BAD("memory_mib", "is not a size in MiB (0 to 1048576)");
  if (!get_int(so, "vcpus", FALSE, 0, 255, &vcpus))
    return BAD("vcpus", "is not a vCPU count (0 to 255)");
  if (!get_int(so, "numa_node", FALSE, -1, 1023, &numa_node))
    return BAD("numa_node", "is not a NUMA node (-1 to 1023)");
  if (!json_object_has_member(so, "numa_node"))
    numa_node = -1;
  if (!get_string(so, "name", NULL, (const char **) &s->name) || (s->name && !vfd_sandbox_name_check(s->name, NULL)))
    return BAD("name", "is not a sandbox name (1 to 63 bytes of a-z 0-9 . -, not \"sb-...\")");
  if (!get_string(so, "spec", NULL, (const char **) &s->spec) || (s->spec && !vfd_sandbox_spec_hash_valid(s->spec)))
    return BAD("spec", "is not a spec hash (64 lower-case hex digits)");
  if (!get_int(so, "workload_exit_status", FALSE, 0, 255, &wstatus))
    return BAD("workload_exit_status", "is not an exit status (0 to 255)");
  if (!get_int(so, "workload_signal", FALSE, 0, 127, &wsignal))
    return BAD("workload_signal", "is not a signal number (0 to 127)");
  if (!get_string(so, "failure_reason", NULL, (const char **) &s->failure_reason) ||
      (s->failure_reason && strlen(s->failure_reason) > 4096))
    return BAD("failure_reason", "is not a string of at most 4096 bytes");
  if (labels_node && !JSON_NODE_HOLDS_NULL(labels_node)) {
    g_autoptr(GStrvBuilder) lb = g_strv_builder_new();
    JsonObject *lo;
    GList *members;

    if (!JSON_NODE_HOLDS_OBJECT(labels_node))
      return BAD("labels", "is not an object");
    lo = json_node_get_object(labels_node);
    if (json_object_get_size(lo) > VFD_SANDBOX_LABELS_MAX)
      return BAD("labels", "has more than 64 entries");
    members = json_object_get_members(lo);
    members = g_list_sort(members, (GCompareFunc) strcmp);
    for (GList *l = members; l; l = l->next) {
      const char *v = NULL;
      if (!get_string(lo, l->data, NULL, &v) || !v || !vfd_sandbox_label_check(l->data, v, NULL)) {
        g_list_free(members);
        return BAD("labels", "holds a key or value that is not a label's");
      }
      g_strv_builder_add(lb, l->data);
      g_strv_builder_add(lb, v);
    }
    g_list_free(members);
    s->labels = g_strv_builder_end(lb);
  }
  if (!get_string(so, "subnet", NULL, (const char **) &s->subnet) ||
      (s->subnet && vfd_subnet_parse(s->subnet, &(VfdSubnet){ 0 }) < 0))
    return BAD("subnet", "is not an IPv4 subnet a.b.c.d/prefix (prefix 1 to 30, host bits 0)");
  if (!get_string(so, "tap", NULL, (const char **) &s->tap) || (s->tap && !tap_name_valid(s->tap)))
    return BAD("tap", "is not a vfiod TAP name (\"vfd\" and 1 to 12 lower-case hex digits)");
  if (!get_string(so, "mac", NULL, (const char **) &s->mac) || (s->mac && !mac_valid(s->mac)))
    return BAD("mac", "is not a MAC address xx:xx:xx:xx:xx:xx (lower-case hex)");
  /* vfiod journals the three together (journal_sandbox()). */
  if (!s->subnet != !s->tap || !s->subnet != !s->mac)
    return BAD(s->subnet ? (s->tap ? "mac" : "tap") : "subnet",
               "is missing: subnet, tap and mac come together or not at all");
  for (guint k = 0; k < json_array_get_length(sdevs); k++) {
    JsonNode *el = json_array_get_element(sdevs, k);
    const char *bdf = JSON_NODE_HOLDS_VALUE(el) && json_node_get_value_type(el) == G_TYPE_STRING
                          ? json_node_get_string(el)
                          : NULL;
    VfdBdf tmp;
    if (!bdf || vfd_bdf_parse(bdf, &tmp) < 0)
      return BAD("devices", "holds something that is not a PCI address DDDD:BB:DD.F");
    g_strv_builder_add(b, bdf);
  }
#undef BAD
  s->start_time = (guint64) start_time;
  s->cid = (guint32) cid;
  s->owner_uid = (guint32) owner_uid;
  s->qemu_uid = (guint32) qemu_uid;
  s->memory_mib = (guint32) memory_mib;
  s->vcpus = (guint32) vcpus;
  s->numa_node = (int) numa_node;
  s->workload_exited = json_object_has_member(so, "workload_exit_status");
  s->workload_exit_status = (int) wstatus;
  s->workload_signal = (int) wsignal;
  s->nat = nat ? json_node_get_boolean(nat) : FALSE;
  s->devices = g_strv_builder_end(b);
  return TRUE;
}

static gboolean
parse_document(VfdJournal *j, JsonNode *root, GError **error)
{
  JsonObject *o;
  JsonArray *devs, *sbs;
  const char *format = NULL;
  gint64 version = 0;

  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_CORRUPT, "not a JSON object");
    return FALSE;
  }
  o = json_node_get_object(root);
  if (!get_string(o, "format", NULL, &format) || g_strcmp0(format, JOURNAL_FORMAT) != 0 ||
      !get_int(o, "version", TRUE, G_MININT64, G_MAXINT64, &version) || version != JOURNAL_VERSION) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT, "not a version %d vfiod journal", JOURNAL_VERSION);
    return FALSE;
  }
  devs = get_array(o, "devices");
  sbs = get_array(o, "sandboxes");
  if (!devs || !sbs) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_CORRUPT, "missing devices or sandboxes array");
    return FALSE;
  }
  for (guint i = 0; i < json_array_get_length(devs); i++) {
    JsonNode *n = json_array_get_element(devs, i);
    VfdJournalDevice d = { 0 };
    if (!JSON_NODE_HOLDS_OBJECT(n) || !parse_device(json_node_get_object(n), &d, error)) {
      if (error && !*error)
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_CORRUPT, "device record is not an object");
      return FALSE;
    }
    if (vfd_journal_lookup(j, &d.bdf)) {
      g_set_error_literal(error, VFD_ERROR, VFD_ERROR_CORRUPT, "duplicate device record");
      return FALSE;
    }
    vfd_journal_put(j, &d);
  }
  for (guint i = 0; i < json_array_get_length(sbs); i++) {
    JsonNode *n = json_array_get_element(sbs, i);
    VfdJournalSandbox s = { 0 };
    gboolean ok;

    if (!JSON_NODE_HOLDS_OBJECT(n)) {
      g_set_error_literal(error, VFD_ERROR, VFD_ERROR_CORRUPT, "sandbox record is not an object");
      return FALSE;
    }
    ok = parse_sandbox(json_node_get_object(n), &s, error);
    if (ok && vfd_journal_lookup_sandbox(j, s.id)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT, "duplicate sandbox record %s", s.id);
      ok = FALSE;
    }
    if (ok)
      vfd_journal_put_sandbox(j, &s);
    g_strfreev(s.devices);
    g_strfreev(s.labels);
    if (!ok)
      return FALSE;
  }
  return TRUE;
}

VfdJournal *
vfd_journal_new_empty(const char *state_dir)
{
  VfdJournal *j = g_new0(VfdJournal, 1);

  j->dir = g_strdup(state_dir);
  j->path = g_build_filename(state_dir, "journal.json", NULL);
  j->devices = g_ptr_array_new_with_free_func(device_free);
  j->sandboxes = g_ptr_array_new_with_free_func(sandbox_free);
  return j;
}

VfdJournal *
vfd_journal_open(const char *state_dir, GError **error)
{
  g_autoptr(VfdJournal) j = vfd_journal_new_empty(state_dir);
  g_autofree char *contents = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;

  if (g_mkdir_with_parents(state_dir, 0700) < 0) {
    int e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot create state directory %s: %s",
                state_dir, g_strerror(e));
    return NULL;
  }
  if (!g_file_get_contents(j->path, &contents, &len, &local)) {
    if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_steal_pointer(&j);
    g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT, "journal %s is unreadable: %s", j->path, local->message);
    return NULL;
  }

  {
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) perr = NULL;

    if (!vfd_json_text_check(contents, len, JOURNAL_MAX_DEPTH, &perr) ||
        !json_parser_load_from_data(parser, contents, (gssize) len, &perr) ||
        !parse_document(j, json_parser_get_root(parser), &perr)) {
      g_autofree char *copy = g_strdup_printf("%s.corrupt-%" G_GINT64_FORMAT, j->path, g_get_real_time() / G_USEC_PER_SEC);
      gboolean kept = g_file_set_contents(copy, contents, (gssize) len, NULL);
      g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT,
                  "journal %s is corrupt (%s); %s%s; no device will be touched until an operator acts",
                  j->path, perr ? perr->message : "parse error", kept ? "a copy was kept as " : "could not keep a copy",
                  kept ? copy : "");
      return NULL;
    }
  }
  return g_steal_pointer(&j);
}

static JsonNode *
build_document(VfdJournal *j)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  char buf[VFD_BDF_STRLEN];

  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_string_value(b, JOURNAL_FORMAT);
  json_builder_set_member_name(b, "version");
  json_builder_add_int_value(b, JOURNAL_VERSION);
  json_builder_set_member_name(b, "devices");
  json_builder_begin_array(b);
  for (guint i = 0; i < j->devices->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(j->devices, i);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "bdf");
    json_builder_add_string_value(b, vfd_bdf_format(&d->bdf, buf));
    json_builder_set_member_name(b, "iommu_group");
    json_builder_add_int_value(b, d->iommu_group);
    json_builder_set_member_name(b, "state");
    json_builder_add_string_value(b, vfd_device_state_to_string(d->state));
    json_builder_set_member_name(b, "owner");
    json_builder_add_string_value(b, d->owner);
    json_builder_set_member_name(b, "original_driver");
    if (d->original_driver)
      json_builder_add_string_value(b, d->original_driver);
    else
      json_builder_add_null_value(b);
    json_builder_set_member_name(b, "original_override");
    json_builder_add_string_value(b, d->original_override);
    if (d->original_d3cold) {
      json_builder_set_member_name(b, "original_d3cold_allowed");
      json_builder_add_string_value(b, d->original_d3cold);
    }
    if (d->original_reset_method) {
      json_builder_set_member_name(b, "original_reset_method");
      json_builder_add_string_value(b, d->original_reset_method);
    }
    if (d->owner_uid) {
      json_builder_set_member_name(b, "owner_uid");
      json_builder_add_int_value(b, d->owner_uid);
    }
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_set_member_name(b, "sandboxes");
  json_builder_begin_array(b);
  for (guint i = 0; i < j->sandboxes->len; i++) {
    VfdJournalSandbox *s = g_ptr_array_index(j->sandboxes, i);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, s->id);
    json_builder_set_member_name(b, "pid");
    json_builder_add_int_value(b, s->pid);
    json_builder_set_member_name(b, "start_time");
    json_builder_add_int_value(b, (gint64) s->start_time);
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (char **d = s->devices; d && *d; d++)
      json_builder_add_string_value(b, *d);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "dir");
    json_builder_add_string_value(b, s->dir);
    if (s->subnet) {
      json_builder_set_member_name(b, "subnet");
      json_builder_add_string_value(b, s->subnet);
    }
    if (s->tap) {
      json_builder_set_member_name(b, "tap");
      json_builder_add_string_value(b, s->tap);
    }
    if (s->mac) {
      json_builder_set_member_name(b, "mac");
      json_builder_add_string_value(b, s->mac);
    }
    if (s->cid) {
      json_builder_set_member_name(b, "cid");
      json_builder_add_int_value(b, s->cid);
    }
    if (s->subnet) {
      json_builder_set_member_name(b, "nat");
      json_builder_add_boolean_value(b, s->nat);
    }
    if (s->owner_uid) {
      json_builder_set_member_name(b, "owner_uid");
      json_builder_add_int_value(b, s->owner_uid);
    }
    if (s->qemu_uid) {
      json_builder_set_member_name(b, "qemu_uid");
      json_builder_add_int_value(b, s->qemu_uid);
    }
    if (s->memory_mib) {
      json_builder_set_member_name(b, "memory_mib");
      json_builder_add_int_value(b, s->memory_mib);
    }
    if (s->vcpus) {
      json_builder_set_member_name(b, "vcpus");
      json_builder_add_int_value(b, s->vcpus);
    }
    if (s->numa_node >= 0) {
      json_builder_set_member_name(b, "numa_node");
      json_builder_add_int_value(b, s->numa_node);
    }
    if (s->name) {
      json_builder_set_member_name(b, "name");
      json_builder_add_string_value(b, s->name);
    }
    if (s->labels && s->labels[0]) {
      json_builder_set_member_name(b, "labels");
      json_builder_begin_object(b);
      for (char **l = s->labels; l[0] && l[1]; l += 2) {
        json_builder_set_member_name(b, l[0]);
        json_builder_add_string_value(b, l[1]);
      }
      json_builder_end_object(b);
    }
    if (s->spec) {
      json_builder_set_member_name(b, "spec");
      json_builder_add_string_value(b, s->spec);
    }
    if (s->workload_exited) {
      json_builder_set_member_name(b, "workload_exit_status");
      json_builder_add_int_value(b, s->workload_exit_status);
    }
    if (s->workload_exited && s->workload_signal > 0) {
      json_builder_set_member_name(b, "workload_signal");
      json_builder_add_int_value(b, s->workload_signal);
    }
    if (s->failure_reason) {
      json_builder_set_member_name(b, "failure_reason");
      json_builder_add_string_value(b, s->failure_reason);
    }
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
  return json_builder_get_root(b);
}

gboolean
vfd_journal_commit(VfdJournal *j, GError **error)
{
  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = build_document(j);
  g_autofree char *data = NULL;
  gsize len = 0;
  int dfd;

  vfd_failpoint("journal commit");
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  data = json_generator_to_data(gen, &len);

  /* temp file + fsync + rename (GLib), then fsync the directory so the
   * rename itself is durable. */
  if (!g_file_set_contents_full(j->path, data, (gssize) len,
                                G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0600, error)) {
    g_prefix_error(error, "cannot write journal: ");
    return FALSE;
  }
  dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) < 0) {
    int e = errno;
    if (dfd >= 0)
      close(dfd);
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e), "cannot sync journal directory %s: %s",
                j->dir, g_strerror(e));
    return FALSE;
  }
  close(dfd);
  return TRUE;
}

GPtrArray *
vfd_journal_devices(VfdJournal *j)
{
  return j->devices;
}

/* The devices and the sandboxes are each a GPtrArray kept sorted by
 * @cmp (an element against a key: BDF, id), searched in two: lookups,
 * puts and removals were linear scans plus a sort per put, quadratic at
 * start-up with a journal of 1000 devices (issue 17). */
typedef int (*SortedCmp)(gconstpointer element, gconstpointer key);

/* Binary search of @array: TRUE with *@ret_index at the element equal to
 * @key, or FALSE with *@ret_index where it would go. */
static gboolean
sorted_index(GPtrArray *array, gconstpointer key, SortedCmp cmp, guint *ret_index)
{
  guint lo = 0, hi = array->len;

  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    int c = cmp(g_ptr_array_index(array, mid), key);
    if (c == 0) {
      *ret_index = mid;
      return TRUE;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *ret_index = lo;
  return FALSE;
}

/* @key's element of @array, else NULL. */
static gpointer
sorted_lookup(GPtrArray *array, gconstpointer key, SortedCmp cmp)
{
  guint i;

  return sorted_index(array, key, cmp, &i) ? g_ptr_array_index(array, i) : NULL;
}

/* Puts @copy (@array takes it) in @key's place: a record already there
 * goes, as a removal would (@free_fn, the array's own). Returns @copy. */
static gpointer
sorted_put(GPtrArray *array, gconstpointer key, SortedCmp cmp, gpointer copy, GDestroyNotify free_fn)
{
  guint i;

  if (sorted_index(array, key, cmp, &i)) {
    free_fn(g_ptr_array_index(array, i));
    array->pdata[i] = copy;
  } else {
    g_ptr_array_insert(array, (gint) i, copy);
  }
  return copy;
}

/* Removes (and frees) @key's element of @array, if any. */
static void
sorted_remove(GPtrArray *array, gconstpointer key, SortedCmp cmp)
{
  guint i;

  if (sorted_index(array, key, cmp, &i))
    g_ptr_array_remove_index(array, i);
}

/* The devices, sorted by BDF. */
static int
device_cmp_bdf(gconstpointer element, gconstpointer bdf)
{
  return vfd_bdf_compare(&((const VfdJournalDevice *) element)->bdf, bdf);
}

VfdJournalDevice *
vfd_journal_lookup(VfdJournal *j, const VfdBdf *bdf)
{
  return sorted_lookup(j->devices, bdf, device_cmp_bdf);
}

VfdJournalDevice *
vfd_journal_put(VfdJournal *j, const VfdJournalDevice *dev)
{
  return sorted_put(j->devices, &dev->bdf, device_cmp_bdf, device_copy(dev), device_free);
}

void
vfd_journal_remove(VfdJournal *j, const VfdBdf *bdf)
{
  sorted_remove(j->devices, bdf, device_cmp_bdf);
}

GPtrArray *
vfd_journal_sandboxes(VfdJournal *j)
{
  return j->sandboxes;
}

/* The sandboxes, sorted by id (g_strcmp0). */
static int
sandbox_cmp_id(gconstpointer element, gconstpointer id)
{
  return g_strcmp0(((const VfdJournalSandbox *) element)->id, id);
}

VfdJournalSandbox *
vfd_journal_lookup_sandbox(VfdJournal *j, const char *id)
{
  return sorted_lookup(j->sandboxes, id, sandbox_cmp_id);
}

VfdJournalSandbox *
vfd_journal_put_sandbox(VfdJournal *j, const VfdJournalSandbox *sb)
{
  return sorted_put(j->sandboxes, sb->id, sandbox_cmp_id, sandbox_copy(sb), sandbox_free);
}

void
vfd_journal_remove_sandbox(VfdJournal *j, const char *id)
{
  sorted_remove(j->sandboxes, id, sandbox_cmp_id);
}
