/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "error.h"
#include "firewall.h"
#include "netpool.h"
#include "policy.h"

void
vfd_config_free(VfdConfig *c)
{
  if (!c)
    return;
  g_free(c->state_dir);
  g_free(c->runtime_dir);
  g_free(c->allowed_group);
  g_free(c->ids);
  g_free(c->classes);
  g_free(c->qemu_binary);
  g_free(c->qemu_accel);
  g_free(c->qemu_kernel);
  g_free(c->qemu_user);
  g_free(c->qemu_initrd);
  g_free(c->sys_root);
  g_free(c->dev_root);
  g_free(c->proc_root);
  g_free(c->net_pool);
  g_free(c->net_host_ports);
  g_free(c->net_nat_uplink);
  g_free(c->net_dns);
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
  "daemon/state_dir", "daemon/runtime_dir", "daemon/allowed_group",
  "devices/ids", "devices/classes",
  "devices/write_timeout", "devices/allow_boot_vga", "devices/allow_storage", "devices/allow_network",
  "devices/reset_on_release",
  "qemu/binary", "qemu/accel", "qemu/stop_timeout", "qemu/hugepages", "qemu/seccomp", "qemu/kernel", "qemu/initrd", "qemu/user",
  "qemu/pci_nocrs", "qemu/hugepage_size", "qemu/prealloc_threads",
  "network/enabled", "network/pool", "network/prefix", "network/host_ports", "network/nat_uplink", "network/dns",
  "network/report_port",
  "testing/sys_root", "testing/dev_root", "testing/proc_root",
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

VfdConfig *
vfd_config_load(const char *path, GPtrArray **ret_warnings, GError **error)
{
  g_autoptr(VfdConfig) c = g_new0(VfdConfig, 1);
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(VfdPolicy) policy = NULL;

  c->state_dir = systemd_dir("STATE_DIRECTORY");
  if (!c->state_dir)
    c->state_dir = g_strdup("/var/lib/vfiod");
  c->runtime_dir = systemd_dir("RUNTIME_DIRECTORY");
  if (!c->runtime_dir)
    c->runtime_dir = g_strdup("/run/vfiod");
  c->allowed_group = g_strdup("vfiod");
  c->ids = g_strdup(VFD_POLICY_DEFAULT_IDS);
  c->classes = g_strdup(VFD_POLICY_DEFAULT_CLASSES);
  c->qemu_binary = g_strdup("qemu-system-x86_64");
  c->qemu_accel = g_strdup("kvm");
  c->qemu_stop_timeout_s = 10;
  c->qemu_seccomp = true;
  c->write_timeout_s = 15;
  c->sys_root = g_strdup("/sys");
  c->dev_root = g_strdup("/dev");
  c->proc_root = g_strdup("/proc");
  c->net_enabled = true;
  c->net_pool = g_strdup(VFD_SUBNET_POOL_DEFAULT);
  c->net_prefix = VFD_SUBNET_PREFIX_DEFAULT;
  c->net_host_ports = g_strdup("");
  c->net_nat_uplink = g_strdup("");
  c->net_dns = g_strdup("");
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
    take_string(kf, "devices", "ids", &c->ids);
    take_string(kf, "devices", "classes", &c->classes);
    take_string(kf, "qemu", "binary", &c->qemu_binary);
    take_string(kf, "qemu", "accel", &c->qemu_accel);
    take_string(kf, "qemu", "kernel", &c->qemu_kernel);
    take_string(kf, "qemu", "user", &c->qemu_user);
    take_string(kf, "qemu", "initrd", &c->qemu_initrd);
    take_string(kf, "testing", "sys_root", &c->sys_root);
    take_string(kf, "testing", "dev_root", &c->dev_root);
    take_string(kf, "testing", "proc_root", &c->proc_root);
    take_string(kf, "network", "pool", &c->net_pool);
    take_string(kf, "network", "host_ports", &c->net_host_ports);
    take_string(kf, "network", "nat_uplink", &c->net_nat_uplink);
    take_string(kf, "network", "dns", &c->net_dns);
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
    if (!take_seconds(kf, "qemu", "stop_timeout", &c->qemu_stop_timeout_s, error) ||
        !take_seconds(kf, "devices", "write_timeout", &c->write_timeout_s, error) ||
        !take_bool(kf, "devices", "allow_boot_vga", &c->allow_boot_vga, error) ||
        !take_bool(kf, "devices", "allow_storage", &c->allow_storage, error) ||
        !take_bool(kf, "devices", "allow_network", &c->allow_network, error) ||
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
    g_autoptr(VfdSubnetPool) pool = vfd_subnet_pool_new(c->net_pool, c->net_prefix, error);
    g_autoptr(VfdFirewallState) fw = vfd_firewall_state_new();
    if (!pool) {
      g_prefix_error(error, "config key [network] pool/prefix: ");
      return NULL;
    }
    if (!vfd_firewall_state_set_ports(fw, c->net_host_ports, error)) {
      g_prefix_error(error, "config key [network] host_ports: ");
      return NULL;
    }
    {
      g_auto(GStrv) servers = g_strsplit(c->net_dns, ",", -1);
      for (char **it = servers; *it; it++) {
        guint32 a;
        if (*g_strstrip(*it) && vfd_ipv4_parse(*it, &a) < 0) {
          g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                      "config key [network] dns: '%s' is not an IPv4 address", *it);
          return NULL;
        }
      }
    }
  }

  if (ret_warnings)
    *ret_warnings = g_steal_pointer(&warnings);
  return g_steal_pointer(&c);
}
