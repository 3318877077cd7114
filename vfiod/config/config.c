/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>

#include "api-limits.h"
#include "error.h"
#include "guest-init/protocol.h"
#include "firewall.h"
#include "image.h"
#include "netpool.h"
#include "policy.h"
#include "pool.h"

VfdConfig *
vfd_config_ref(VfdConfig *c)
{
  g_atomic_ref_count_inc(&c->refs);
  return c;
}

void
vfd_config_unref(VfdConfig *c)
{
  if (!c || !g_atomic_ref_count_dec(&c->refs))
    return;
  g_free(c->state_dir);
  g_free(c->runtime_dir);
  g_free(c->allowed_group);
  g_free(c->ids);
  g_free(c->classes);
  g_free(c->libvirt_uri);
  g_free(c->qemu_binary);
  g_free(c->qemu_accel);
  g_free(c->qemu_kernel);
  g_free(c->qemu_user);
  g_free(c->metrics_file);
  g_free(c->qemu_initrd);
  g_free(c->qemu_driver_layer);
  g_free(c->sys_root);
  g_free(c->dev_root);
  g_free(c->proc_root);
  g_free(c->modules_dir);
  g_free(c->pool_devices);
  g_free(c->pool_match);
  g_free(c->pool_mode);
  g_free(c->cdi_dir);
  g_free(c->net_pool);
  g_free(c->net_host_ports);
  g_free(c->net_nat_uplink);
  g_free(c->net_dns);
  g_free(c->net_gateway);
  g_free(c);
}

/* First entry of a systemd ':'-separated directory list, or NULL. */
static char *
systemd_dir(const char *env)
{
  const char *v = g_getenv(env);
  g_auto(GStrv) parts = NULL;

  if (!v || !*v)
    return NULL;
  parts = g_strsplit(v, ":", 2);
  return g_strdup(parts[0]);
}

static const char *const known_keys[] = {
  "daemon/state_dir", "daemon/runtime_dir", "daemon/allowed_group", "daemon/metrics_file",
  "daemon/max_connections", "daemon/max_connections_per_uid", "daemon/auth_timeout",
  "devices/ids", "devices/classes",
  "devices/write_timeout", "devices/allow_boot_vga", "devices/allow_storage", "devices/allow_network",
  "devices/reset_on_release", "devices/variant_drivers",
  "pool/devices", "pool/match", "pool/mode", "pool/cdi_dir",
  "qemu/binary", "qemu/accel", "qemu/stop_timeout", "qemu/hugepages", "qemu/seccomp", "qemu/kernel", "qemu/initrd", "qemu/driver_layer", "qemu/user",
  "qemu/pci_nocrs", "qemu/hugepage_size", "qemu/test_present_as", "qemu/prealloc_threads", "qemu/max_phys_bits", "qemu/uid_range", "qemu/serial_log_max_mib",
  "vm/backend", "libvirt/uri",
  "network/enabled", "network/pool", "network/prefix", "network/host_ports", "network/nat_uplink", "network/dns",
  "network/gateway_address",
  "network/report_port",
  "testing/sys_root", "testing/dev_root", "testing/proc_root", "testing/modules_dir",
  NULL,
};

static void
collect_unknown(GKeyFile *kf, GPtrArray *warnings)
{
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

  for (char **g = groups; *g; g++) {
    g_auto(GStrv) keys = g_key_file_get_keys(kf, *g, NULL, NULL);
    for (char **k = keys; k && *k; k++) {
      g_autofree char *full = g_strdup_printf("%s/%s", *g, *k);
      if (!g_strv_contains(known_keys, full))
        g_ptr_array_add(warnings, g_strdup_printf("unknown config key [%s] %s ignored", *g, *k));
    }
  }
}

/* Sets *@field from [group] key when present (string, trimmed). */
static void
take_string(GKeyFile *kf, const char *group, const char *key, char **field)
{
  char *v = g_key_file_get_string(kf, group, key, NULL);

  if (!v)
    return;
  g_free(*field);
  *field = g_strstrip(v);
}

/* Reads [group] key as a boolean into *@field when present. */
static gboolean
take_bool(GKeyFile *kf, const char *group, const char *key, bool *field, GError **error)
{
  g_autoptr(GError) local = NULL;
  gboolean v;

  if (!g_key_file_has_key(kf, group, key, NULL))
    return TRUE;
  v = g_key_file_get_boolean(kf, group, key, &local);
  if (local) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "config key [%s] %s must be true or false", group,
                key);
    return FALSE;
  }
  *field = v;
  return TRUE;
}

/* Reads [group] key as a number of seconds in 1..3600 into *@field when
 * present. */
static gboolean
take_seconds(GKeyFile *kf, const char *group, const char *key, guint *field, GError **error)
{
  g_autoptr(GError) local = NULL;
  gint v;

  if (!g_key_file_has_key(kf, group, key, NULL))
    return TRUE;
  v = g_key_file_get_integer(kf, group, key, &local);
  if (local || v < 1 || v > 3600) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [%s] %s must be a number of seconds from 1 to 3600", group, key);
    return FALSE;
  }
  *field = (guint) v;
  return TRUE;
}

/* Reads [group] key as a count in @min..@max into *@field when present. */
static gboolean
take_count(GKeyFile *kf, const char *group, const char *key, guint min, guint max, guint *field, GError **error)
{
  g_autoptr(GError) local = NULL;
  gint v;

  if (!g_key_file_has_key(kf, group, key, NULL))
    return TRUE;
  v = g_key_file_get_integer(kf, group, key, &local);
  if (local || v < (gint) min || v > (gint) max) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "config key [%s] %s must be a number from %u to %u",
                group, key, min, max);
    return FALSE;
  }
  *field = (guint) v;
  return TRUE;
}

static gboolean
check_dir(const char *key, const char *value, GError **error)
{
  if (!g_path_is_absolute(value) || strstr(value, "/../") || g_str_has_suffix(value, "/..")) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key %s must be an absolute path without '..', got '%s'", key, value);
    return FALSE;
  }
  return TRUE;
}

int
vfd_config_parse_uid_range(const char *text, guint32 *ret_first, guint32 *ret_count)
{
  guint64 first, last;
  char *end = NULL;

  if (!text || !*text || g_str_equal(text, "none")) {
    *ret_first = 0;
    *ret_count = 0;
    return 0;
  }
  if (!g_ascii_isdigit(text[0]))
    return -EINVAL;
  first = g_ascii_strtoull(text, &end, 10);
  if (!end || *end != '-' || !g_ascii_isdigit(end[1]))
    return -EINVAL;
  last = g_ascii_strtoull(end + 1, &end, 10);
  if (!end || *end || first < 1000 || last < first || last >= G_MAXINT32)
    return -EINVAL;
  *ret_first = (guint32) first;
  *ret_count = (guint32) (last - first + 1);
  return 0;
}

gboolean
vfd_config_libvirt_uri_local(const char *uri)
{
  const char *q;

  if (!uri)
    return FALSE;
  if (g_str_equal(uri, "qemu:///system"))
    return TRUE;
  if (!g_str_has_prefix(uri, "qemu+unix:///system"))
    return FALSE;
  q = uri + strlen("qemu+unix:///system");
  return *q == '\0' || *q == '?';
}

int
vfd_config_parse_present_as(const char *text, guint16 *ret_vendor, guint16 *ret_device)
{
  guint v = 0, d = 0;

  if (!text || !*text) {
    *ret_vendor = *ret_device = 0;
    return 0;
  }
  if (strlen(text) != 9 || text[4] != ':')
    return -EINVAL;
  for (int i = 0; i < 9; i++) {
    if (i == 4)
      continue;
    if (!g_ascii_isxdigit(text[i]))
      return -EINVAL;
    if (i < 4)
      v = v << 4 | (guint) g_ascii_xdigit_value(text[i]);
    else
      d = d << 4 | (guint) g_ascii_xdigit_value(text[i]);
  }
  if (v == 0 || v == 0xffff || d == 0xffff)
    return -EINVAL;
  *ret_vendor = (guint16) v;
  *ret_device = (guint16) d;
  return 0;
}

GPtrArray *
vfd_config_image_problems(const VfdConfig *c)
{
  GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
  const char *build = "vfioctl image build --gpu --output " VFIOD_IMAGE_DIR;
  const struct {
    const char *key;
    const char *path;
    bool set;
    const char *what;
  } files[] = {
    { "kernel", c->qemu_kernel, c->qemu_kernel_set, "sandboxes that name no --kernel cannot start" },
    { "initrd", c->qemu_initrd, c->qemu_initrd_set, "sandboxes that name no --initrd cannot start" },
    { "driver_layer", c->qemu_driver_layer, c->qemu_driver_layer_set,
      "GPU sandboxes start without the NVIDIA driver layer" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(files); i++)
    if (!files[i].set && files[i].path && *files[i].path && !g_file_test(files[i].path, G_FILE_TEST_EXISTS))
      g_ptr_array_add(problems,
                      g_strdup_printf("[qemu] %s is unset and the default image has no %s: %s; build it with "
                                      "'%s' (without --gpu: no driver layer), or set [qemu] %s",
                                      files[i].key, files[i].path, files[i].what, build, files[i].key));
  return problems;
}

VfdConfig *
vfd_config_load(const char *path, GPtrArray **ret_warnings, GError **error)
{
  g_autoptr(VfdConfig) c = g_new0(VfdConfig, 1);
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(VfdPolicy) policy = NULL;

  g_atomic_ref_count_init(&c->refs);

  c->state_dir = systemd_dir("STATE_DIRECTORY");
  if (!c->state_dir)
    c->state_dir = g_strdup("/var/lib/vfiod");
  c->runtime_dir = systemd_dir("RUNTIME_DIRECTORY");
  if (!c->runtime_dir)
    c->runtime_dir = g_strdup("/run/vfiod");
  c->allowed_group = g_strdup("vfiod");
  c->metrics_file = g_strdup("");
  c->api_max_connections = VFD_API_MAX_CONNECTIONS_DEFAULT;
  c->api_max_connections_per_uid = VFD_API_MAX_CONNECTIONS_PER_UID_DEFAULT;
  c->api_auth_timeout_s = VFD_API_AUTH_TIMEOUT_DEFAULT;
  c->ids = g_strdup(VFD_POLICY_DEFAULT_IDS);
  c->classes = g_strdup(VFD_POLICY_DEFAULT_CLASSES);
  c->qemu_binary = g_strdup("qemu-system-x86_64");
  c->qemu_accel = g_strdup("kvm");
  c->qemu_stop_timeout_s = 10;
  c->qemu_seccomp = true;
  vfd_config_parse_uid_range(VFD_QEMU_UID_RANGE_DEFAULT, &c->qemu_uid_first, &c->qemu_uid_count);
  c->qemu_serial_log_max = 16 * 1024 * 1024;
  c->qemu_kernel = g_build_filename(VFIOD_IMAGE_DIR, VFD_IMAGE_KERNEL, NULL);
  c->qemu_initrd = g_build_filename(VFIOD_IMAGE_DIR, VFD_IMAGE_INITRD, NULL);
  c->qemu_driver_layer = g_build_filename(VFIOD_IMAGE_DIR, VFD_IMAGE_DRIVER_LAYER, NULL);
  c->write_timeout_s = 15;
  c->sys_root = g_strdup("/sys");
  c->dev_root = g_strdup("/dev");
  c->proc_root = g_strdup("/proc");
  c->modules_dir = g_strdup("");
  c->variant_drivers = true;
  c->pool_devices = g_strdup("");
  c->pool_match = g_strdup("");
  c->pool_mode = g_strdup("external");
  c->cdi_dir = g_strdup("/run/cdi");
  c->libvirt_uri = g_strdup("qemu:///system");
  c->net_enabled = true;
  c->net_pool = g_strdup(VFD_SUBNET_POOL_DEFAULT);
  c->net_prefix = VFD_SUBNET_PREFIX_DEFAULT;
  c->net_host_ports = g_strdup("");
  c->net_nat_uplink = g_strdup("");
  c->net_dns = g_strdup("");
  c->net_gateway = g_strdup("");
  c->report_port = 10000;

  if (path) {
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, error)) {
      g_prefix_error(error, "cannot load config %s: ", path);
      return NULL;
    }
    collect_unknown(kf, warnings);
    take_string(kf, "daemon", "state_dir", &c->state_dir);
    take_string(kf, "daemon", "runtime_dir", &c->runtime_dir);
    take_string(kf, "daemon", "allowed_group", &c->allowed_group);
    take_string(kf, "daemon", "metrics_file", &c->metrics_file);
    take_string(kf, "devices", "ids", &c->ids);
    take_string(kf, "devices", "classes", &c->classes);
    take_string(kf, "qemu", "binary", &c->qemu_binary);
    take_string(kf, "qemu", "accel", &c->qemu_accel);
    c->qemu_kernel_set = g_key_file_has_key(kf, "qemu", "kernel", NULL);
    c->qemu_initrd_set = g_key_file_has_key(kf, "qemu", "initrd", NULL);
    take_string(kf, "qemu", "kernel", &c->qemu_kernel);
    take_string(kf, "qemu", "user", &c->qemu_user);
    take_string(kf, "qemu", "initrd", &c->qemu_initrd);
    c->qemu_driver_layer_set = g_key_file_has_key(kf, "qemu", "driver_layer", NULL);
    take_string(kf, "qemu", "driver_layer", &c->qemu_driver_layer);
    take_string(kf, "testing", "sys_root", &c->sys_root);
    take_string(kf, "testing", "dev_root", &c->dev_root);
    take_string(kf, "testing", "proc_root", &c->proc_root);
    take_string(kf, "testing", "modules_dir", &c->modules_dir);
    take_string(kf, "pool", "devices", &c->pool_devices);
    take_string(kf, "pool", "match", &c->pool_match);
    take_string(kf, "pool", "mode", &c->pool_mode);
    take_string(kf, "pool", "cdi_dir", &c->cdi_dir);
    take_string(kf, "libvirt", "uri", &c->libvirt_uri);
    if (g_key_file_has_key(kf, "vm", "backend", NULL)) {
      g_autofree char *v = g_key_file_get_string(kf, "vm", "backend", NULL);
      const char *b = v ? g_strstrip(v) : "";
      if (g_str_equal(b, "libvirt"))
        c->vm_libvirt = true;
      else if (!g_str_equal(b, "qemu")) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [vm] backend must be qemu or libvirt, got '%s'", b);
        return NULL;
      }
    }
    if (!vfd_config_libvirt_uri_local(c->libvirt_uri)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                  "config key [libvirt] uri must name this host's system QEMU driver (qemu:///system, or "
                  "qemu+unix:///system with a socket=PATH query), got '%s': vfiod binds the devices here, so "
                  "their QEMU must run here too (one vfiod per host)",
                  c->libvirt_uri);
      return NULL;
    }
    take_string(kf, "network", "pool", &c->net_pool);
    take_string(kf, "network", "host_ports", &c->net_host_ports);
    take_string(kf, "network", "nat_uplink", &c->net_nat_uplink);
    take_string(kf, "network", "dns", &c->net_dns);
    take_string(kf, "network", "gateway_address", &c->net_gateway);
    if (!take_bool(kf, "network", "enabled", &c->net_enabled, error))
      return NULL;
    if (g_key_file_has_key(kf, "network", "prefix", NULL)) {
      g_autoptr(GError) local = NULL;
      gint v = g_key_file_get_integer(kf, "network", "prefix", &local);
      if (local || v < 1 || v > 30) {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [network] prefix must be a prefix length from 1 to 30");
        return NULL;
      }
      c->net_prefix = (guint) v;
    }
    if (g_key_file_has_key(kf, "network", "report_port", NULL)) {
      g_autoptr(GError) local = NULL;
      gint v = g_key_file_get_integer(kf, "network", "report_port", &local);
      if (local || v < 1 || v > 65535) {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [network] report_port must be a port number from 1 to 65535");
        return NULL;
      }
      c->report_port = (guint) v;
    }
    if (!take_count(kf, "daemon", "max_connections", 1, 4096, &c->api_max_connections, error) ||
        !take_count(kf, "daemon", "max_connections_per_uid", 1, 4096, &c->api_max_connections_per_uid, error) ||
        !take_count(kf, "daemon", "auth_timeout", 1, 300, &c->api_auth_timeout_s, error) ||
        !take_seconds(kf, "qemu", "stop_timeout", &c->qemu_stop_timeout_s, error) ||
        !take_seconds(kf, "devices", "write_timeout", &c->write_timeout_s, error) ||
        !take_bool(kf, "devices", "allow_boot_vga", &c->allow_boot_vga, error) ||
        !take_bool(kf, "devices", "allow_storage", &c->allow_storage, error) ||
        !take_bool(kf, "devices", "allow_network", &c->allow_network, error) ||
        !take_bool(kf, "devices", "variant_drivers", &c->variant_drivers, error) ||
        !take_bool(kf, "qemu", "hugepages", &c->qemu_hugepages, error) ||
        !take_bool(kf, "qemu", "seccomp", &c->qemu_seccomp, error) ||
        !take_bool(kf, "qemu", "pci_nocrs", &c->qemu_pci_nocrs, error))
      return NULL;
    if (g_key_file_has_key(kf, "qemu", "hugepage_size", NULL)) {
      g_autofree char *v = g_key_file_get_string(kf, "qemu", "hugepage_size", NULL);
      const char *size = v ? g_strstrip(v) : "";
      if (g_ascii_strcasecmp(size, "2M") == 0) {
        c->qemu_hugepage_kib = 2048;
      } else if (g_ascii_strcasecmp(size, "1G") == 0) {
        c->qemu_hugepage_kib = 1024 * 1024;
      } else if (*size) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [qemu] hugepage_size must be 2M or 1G, got '%s'", size);
        return NULL;
      }
    }
    if (g_key_file_has_key(kf, "qemu", "uid_range", NULL)) {
      g_autofree char *v = g_key_file_get_string(kf, "qemu", "uid_range", NULL);
      if (vfd_config_parse_uid_range(v ? g_strstrip(v) : "", &c->qemu_uid_first, &c->qemu_uid_count) < 0) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [qemu] uid_range must be FIRST-LAST (uids >= 1000, below 2147483647) or none, "
                    "got '%s'", v ? v : "");
        return NULL;
      }
    }
    if (g_key_file_has_key(kf, "qemu", "test_present_as", NULL)) {
      g_autofree char *v = g_key_file_get_string(kf, "qemu", "test_present_as", NULL);
      if (vfd_config_parse_present_as(v ? g_strstrip(v) : "", &c->qemu_present_vendor, &c->qemu_present_device) <
          0) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [qemu] test_present_as must be VVVV:DDDD (four hex digits each, vendor not "
                    "0000 or ffff, device not ffff) or empty, got '%s'", v ? v : "");
        return NULL;
      }
    }
    if (g_key_file_has_key(kf, "qemu", "serial_log_max_mib", NULL)) {
      g_autoptr(GError) local = NULL;
      gint v = g_key_file_get_integer(kf, "qemu", "serial_log_max_mib", &local);
      if (local || v < 1 || v > 4096) {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [qemu] serial_log_max_mib must be 1 to 4096 (MiB)");
        return NULL;
      }
      c->qemu_serial_log_max = (guint64) v * 1024 * 1024;
    }
    if (g_key_file_has_key(kf, "qemu", "prealloc_threads", NULL)) {
      g_autoptr(GError) local = NULL;
      gint v = g_key_file_get_integer(kf, "qemu", "prealloc_threads", &local);
      if (local || v < 0 || v > 256) {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [qemu] prealloc_threads must be a number of threads from 0 to 256");
        return NULL;
      }
      c->qemu_prealloc_threads = (guint) v;
    }
    if (g_key_file_has_key(kf, "qemu", "max_phys_bits", NULL)) {
      g_autoptr(GError) local = NULL;
      gint v = g_key_file_get_integer(kf, "qemu", "max_phys_bits", &local);
      if (local || (v != 0 && (v < 36 || v > 52))) {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [qemu] max_phys_bits must be 0 (no cap) or 36 to 52 (address bits)");
        return NULL;
      }
      c->qemu_max_phys_bits = (guint) v;
    }
    if (g_key_file_has_key(kf, "devices", "reset_on_release", NULL)) {
      g_autofree char *v = g_key_file_get_string(kf, "devices", "reset_on_release", NULL);
      bool on = false;
      if (v && g_str_equal(g_strstrip(v), "auto")) {
        c->reset_on_release = VFD_RESET_AUTO;
      } else if (take_bool(kf, "devices", "reset_on_release", &on, NULL)) {
        c->reset_on_release = on ? VFD_RESET_ALWAYS : VFD_RESET_NEVER;
      } else {
        g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                            "config key [devices] reset_on_release must be auto, true or false");
        return NULL;
      }
    }
  }

  if (!check_dir("[daemon] state_dir", c->state_dir, error) ||
      !check_dir("[daemon] runtime_dir", c->runtime_dir, error) ||
      !check_dir("[testing] sys_root", c->sys_root, error) ||
      !check_dir("[testing] dev_root", c->dev_root, error) ||
      !check_dir("[testing] proc_root", c->proc_root, error))
    return NULL;
  if (*c->metrics_file && !g_path_is_absolute(c->metrics_file)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [daemon] metrics_file must be an absolute path, got '%s'", c->metrics_file);
    return NULL;
  }
  if (*c->qemu_driver_layer && !g_path_is_absolute(c->qemu_driver_layer)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [qemu] driver_layer must be an absolute path, got '%s'", c->qemu_driver_layer);
    return NULL;
  }
  if (!g_str_equal(c->qemu_accel, "kvm") && !g_str_equal(c->qemu_accel, "tcg")) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [qemu] accel must be 'kvm' or 'tcg', got '%s'", c->qemu_accel);
    return NULL;
  }
  if (!*c->qemu_binary) {
    g_set_error_literal(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "config key [qemu] binary is empty");
    return NULL;
  }
  policy = vfd_policy_new(c->ids, c->classes, error);
  if (!policy)
    return NULL;
  {
    g_autoptr(VfdPoolRules) rules = vfd_pool_rules_new(c->pool_devices, c->pool_match, c->pool_mode, error);
    if (!rules)
      return NULL;
  }
  if (*c->cdi_dir && !g_path_is_absolute(c->cdi_dir)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [pool] cdi_dir must be an absolute path or empty, got '%s'", c->cdi_dir);
    return NULL;
  }
  if (*c->modules_dir && !g_path_is_absolute(c->modules_dir)) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "config key [testing] modules_dir must be an absolute path or empty, got '%s'", c->modules_dir);
    return NULL;
  }
  {
    g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(c->net_pool, c->net_prefix, error);
    g_autoptr(VfdFirewallState) fw = vfd_firewall_state_new();
    if (!pool) {
      g_prefix_error(error, "config key [network] pool/prefix: ");
      return NULL;
    }
    if (*c->net_gateway) {
      /* One address for every guest's gateway: a unicast host address
       * outside the pool (the pool's blocks are the guests'). */
      g_autofree char *cidr = vfd_subnet_pool_to_string(pool);
      guint32 a = 0;
      VfdSubnet whole;

      if (vfd_ipv4_parse(c->net_gateway, &a) < 0 || (a >> 24) == 0 || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
          (a >> 29) == 7) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [network] gateway_address: '%s' is not a unicast IPv4 address (not in 0/8, 127/8, "
                    "169.254/16 or 224/3)",
                    c->net_gateway);
        return NULL;
      }
      if (vfd_subnet_parse(cidr, &whole) == 0 && (a & ~(0xffffffffu >> whole.prefix)) == whole.network) {
        g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                    "config key [network] gateway_address: %s is inside the pool %s", c->net_gateway, cidr);
        return NULL;
      }
      c->net_gateway_addr = a;
    }
    if (!vfd_firewall_state_set_ports(fw, c->net_host_ports, error)) {
      g_prefix_error(error, "config key [network] host_ports: ");
      return NULL;
    }
    {
      /* It goes on the guest kernel command line as vfiod.dns=A,B,C: at
       * most VFIOD_CMDLINE_MAX_DNS servers (what guest-init takes, and what
       * VFIOD_CMDLINE_RESERVED counts with), written without blanks. */
      g_auto(GStrv) servers = g_strsplit(c->net_dns, ",", -1);
      g_autoptr(GStrvBuilder) clean = g_strv_builder_new();
      g_auto(GStrv) list = NULL;
      guint n = 0;
      for (char **it = servers; *it; it++) {
        guint32 a;
        if (!*g_strstrip(*it))
          continue;
        if (vfd_ipv4_parse(*it, &a) < 0) {
          g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                      "config key [network] dns: '%s' is not an IPv4 address", *it);
          return NULL;
        }
        if (++n > VFIOD_CMDLINE_MAX_DNS) {
          g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                      "config key [network] dns: at most %d servers (resolv.conf's limit)", VFIOD_CMDLINE_MAX_DNS);
          return NULL;
        }
        g_strv_builder_add(clean, *it);
      }
      list = g_strv_builder_end(clean);
      g_free(c->net_dns);
      c->net_dns = g_strjoinv(",", list);
    }
  }

  if (ret_warnings)
    *ret_warnings = g_steal_pointer(&warnings);
  return g_steal_pointer(&c);
}
