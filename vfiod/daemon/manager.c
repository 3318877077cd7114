/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon object (manager.h): start-up (journal, host, pools, the
 * restore of sandboxes), serving the API, SIGHUP reload, shut-down; the
 * metrics file and the console logs' size on a timer; who may connect. */
#include "manager-private.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-limits.h"
#include "api-server.h"
#include "caller.h"
#include "log-limit.h"
#include "pool.h"
#include "variant.h"

/* Refuses device work while the journal is corrupt. */
gboolean
vfd_mgr_check_journal_ok(VfdManager *m, GError **error)
{
  if (!m->journal_corrupt)
    return TRUE;
  g_set_error(error, VFD_ERROR, VFD_ERROR_CORRUPT,
              "%s. Inspect the devices (vfioctl list), then run 'vfioctl reconcile --force' to start a new journal",
              m->journal_corrupt);
  return FALSE;
}

/* Writes [daemon] metrics_file (when set): the counters, and the devices
 * and sandboxes counted now. A failure is logged, at most once per
 * distinct message. */
static void
write_metrics(VfdManager *m)
{
  static char *last_error;
  VfdMetrics now = m->metrics;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  GHashTableIter it;
  Sandbox *s;
  GPtrArray *devs;

  if (!m->config->metrics_file || !*m->config->metrics_file)
    return;
  vfd_host_lock_journal(m->host);
  devs = vfd_journal_devices(vfd_host_journal(m->host));
  for (guint i = 0; i < devs->len; i++) {
    VfdJournalDevice *d = g_ptr_array_index(devs, i);
    if (d->state <= VFD_DEVICE_STATE_STUCK)
      now.devices[d->state]++;
  }
  vfd_host_unlock_journal(m->host);
  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    now.sandboxes[s->state]++;
  text = vfd_metrics_format(&now);
  if (!vfd_metrics_write(m->config->metrics_file, text, &error) && g_strcmp0(last_error, error->message) != 0) {
    g_warning("[daemon] metrics_file: %s", error->message);
    g_free(last_error);
    last_error = g_strdup(error->message);
  }
}

static gboolean
on_serial_cap_timer(gpointer data)
{
  VfdManager *m = data;
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    sandbox_cap_serial(s, m->config->qemu_serial_log_max);
  write_metrics(m);
  return G_SOURCE_CONTINUE;
}

/* ---- D-Bus server ------------------------------------------------------- */

/* GDBus calls this on an authentication thread (api-server.c): only
 * reentrant work. A client is root, or its process holds [daemon]
 * allowed_group as its primary or a supplementary group when it connects
 * (SO_PEERCRED, SO_PEERGROUPS: the kernel's record of the process, not the
 * host's group database), so a client in a container given the group
 * (`--group-add`) is a member without an entry in this host's /etc/group,
 * and a user removed from the group stops being one once its processes
 * drop it. The socket's mode (0660 root:group) already keeps everyone else
 * from connecting. */
static gboolean
on_authorize_peer(GDBusAuthObserver *observer, GIOStream *stream, GCredentials *credentials, gpointer data)
{
  static VfdLogLimit limit = { .burst = 10, .interval_us = 10 * G_USEC_PER_SEC };
  VfdManager *m = data;
  VfdCaller caller;
  gboolean member;
  uid_t uid;

  if (!credentials)
    return FALSE;
  uid = g_credentials_get_unix_user(credentials, NULL);
  if (uid == 0)
    return TRUE;
  if (uid == (uid_t) -1 || !m->have_allowed_gid || !vfd_caller_from_stream(stream, &caller, NULL))
    goto deny;
  member = caller.uid == uid && vfd_caller_in_group(&caller, m->allowed_gid);
  vfd_caller_clear(&caller);
  if (member)
    return TRUE;
deny:
  vfd_log_limited(&limit, G_LOG_LEVEL_MESSAGE, "refused API client uid %d: not root and its process does not hold group '%s'",
                  (int) uid, m->allowed_group);
  return FALSE;
}

static gboolean
on_allow_mechanism(GDBusAuthObserver *observer, const char *mechanism, gpointer data)
{
  return g_strcmp0(mechanism, "EXTERNAL") == 0;
}

/* ---- the manager -------------------------------------------------------- */

/* True when something accepts connections on @path. */
static gboolean
socket_in_use(const char *path)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
  g_autoptr(GSocketConnection) conn =
      g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, NULL);

  return conn != NULL;
}

gboolean
vfd_manager_start(VfdManager *m, GError **error)
{
  VfdApiLimits limits;

  if (g_file_test(m->socket_path, G_FILE_TEST_EXISTS)) {
    if (socket_in_use(m->socket_path)) {
      g_set_error(error, VFD_ERROR, VFD_ERROR_BUSY, "another vfiod is serving %s", m->socket_path);
      return FALSE;
    }
    g_unlink(m->socket_path);
  }
  /* GDBus logs a hex dump of each message it cannot decode: 5 bytes of
   * log per byte a client sends. Cut and rate-limit GIO's messages. */
  vfd_log_limit_domain("GLib-GIO");
  vfd_api_limits_init(&limits);
  limits.max_connections = m->config->api_max_connections;
  limits.max_connections_per_uid = m->config->api_max_connections_per_uid;
  limits.auth_timeout_s = m->config->api_auth_timeout_s;
  m->api = vfd_api_server_new(m->socket_path, &limits, m->observer, G_DBUS_INTERFACE_SKELETON(m->skeleton),
                              VFD_MANAGER_OBJECT_PATH, error);
  if (!m->api) {
    g_prefix_error(error, "cannot listen on %s: ", m->socket_path);
    return FALSE;
  }
  /* Root and the allowed group may connect; credentials are checked too. */
  if (chmod(m->socket_path, m->have_allowed_gid ? 0660 : 0600) < 0 ||
      (m->have_allowed_gid && chown(m->socket_path, 0, m->allowed_gid) < 0 && geteuid() == 0))
    g_warning("cannot set permissions of %s: %s", m->socket_path, g_strerror(errno));
  g_message("serving the API on %s", m->socket_path);
  vfd_mgr_report_listener_start(m);
  m->serial_cap_timer = g_timeout_add_seconds(5, on_serial_cap_timer, m);
  write_metrics(m);
  return TRUE;
}

gboolean
vfd_manager_reload(VfdManager *m, const char *path, GError **error)
{
  g_autoptr(VfdConfig) c = vfd_config_load(path, NULL, error);
  VfdPolicy *policy;
  const VfdConfig *o = m->config;
  const char *fixed = NULL;

  if (!c)
    return FALSE;
  if (g_strcmp0(c->state_dir, o->state_dir))
    fixed = "[daemon] state_dir";
  else if (g_strcmp0(c->runtime_dir, o->runtime_dir))
    fixed = "[daemon] runtime_dir";
  else if (g_strcmp0(c->allowed_group, o->allowed_group))
    fixed = "[daemon] allowed_group";
  else if (c->net_enabled != o->net_enabled || g_strcmp0(c->net_pool, o->net_pool) || c->net_prefix != o->net_prefix ||
           g_strcmp0(c->net_nat_uplink, o->net_nat_uplink) || c->report_port != o->report_port ||
           c->net_gateway_addr != o->net_gateway_addr)
    fixed = "[network] enabled/pool/prefix/nat_uplink/report_port/gateway_address";
  else if (c->vm_libvirt != o->vm_libvirt || g_strcmp0(c->libvirt_uri, o->libvirt_uri))
    fixed = "[vm] backend or [libvirt] uri";
  else if (g_strcmp0(c->sys_root, o->sys_root) || g_strcmp0(c->dev_root, o->dev_root) ||
           g_strcmp0(c->proc_root, o->proc_root))
    fixed = "[testing] roots";
  if (fixed) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT, "%s changed: that needs a restart; nothing reloaded",
                fixed);
    return FALSE;
  }
  policy = vfd_policy_new(c->ids, c->classes, error);
  if (!policy)
    return FALSE;
  vfd_policy_set_guards(policy, &(VfdPolicyGuards){ .allow_boot_vga = c->allow_boot_vga,
                                                    .allow_storage = c->allow_storage,
                                                    .allow_network = c->allow_network });
  if (c->net_enabled) {
    g_mutex_lock(&m->net_lock);
    if (!vfd_firewall_state_set_ports(m->fw, c->net_host_ports, error) || !vfd_firewall_apply(m->fw, error)) {
      g_mutex_unlock(&m->net_lock);
      vfd_policy_unref(policy);
      return FALSE;
    }
    g_mutex_unlock(&m->net_lock);
  }
  vfd_host_set_policy(m->host, policy);
  vfd_host_set_reset_policy(m->host, c->reset_on_release);
  vfd_sysfs_set_write_timeout(vfd_host_sysfs(m->host), c->write_timeout_s * 1000);
  /* Operations and sandboxes made before keep the old configuration
   * through their references; it is freed with the last of them. */
  vfd_config_unref(m->config);
  m->config = g_steal_pointer(&c);
  g_message("configuration reloaded from %s", path);
  return TRUE;
}

const char *
vfd_manager_socket_path(VfdManager *m)
{
  return m->socket_path;
}

/* Who QEMU runs as ([qemu] user, see VfdConfig): sets m->qemu_uid/gid
 * (0/0: root) and m->kvm_gid. INVALID_ARGUMENT when a user named in the
 * config does not exist. */
static gboolean
resolve_qemu_user(VfdManager *m, const VfdConfig *config, GError **error)
{
  const char *name = config->qemu_user;
  struct passwd *pw;
  struct group *kvm;

  if (geteuid() != 0) {
    /* Tests: vfiod cannot switch users; QEMU runs as vfiod's own. */
    m->qemu_uid = 0;
    m->qemu_gid = 0;
    return TRUE;
  }
  if (name && g_str_equal(name, "root")) {
    g_warning("[qemu] user=root: QEMU runs as root, with every right on this host");
    return TRUE;
  }
  if (!name || !*name) {
    name = getpwnam(VFD_QEMU_USER_DEFAULT) ? VFD_QEMU_USER_DEFAULT : "nobody";
    if (!g_str_equal(name, VFD_QEMU_USER_DEFAULT))
      g_warning("[qemu] user: no user '%s' (the package creates it: systemd-sysusers); QEMU runs in nobody's group",
                VFD_QEMU_USER_DEFAULT);
  }
  pw = getpwnam(name);
  if (!pw || pw->pw_uid == 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_INVALID_ARGUMENT,
                "[qemu] user '%s' %s (say user=root to run QEMU as root)", name,
                pw ? "is root" : "does not exist");
    return FALSE;
  }
  m->qemu_uid = pw->pw_uid;
  m->qemu_gid = pw->pw_gid;
  kvm = getgrnam("kvm");
  if (kvm)
    m->kvm_gid = kvm->gr_gid;
  g_message("QEMU runs as %s in group %u%s", config->qemu_uid_count ? "a uid of its own per sandbox" : name,
            (guint) m->qemu_gid, config->qemu_uid_count ? " ([qemu] uid_range)" : "");
  return TRUE;
}

VfdManager *
vfd_manager_new(VfdConfig *config, GError **error)
{
  return vfd_manager_new_with_sysfs(config, vfd_sysfs_new(config->sys_root, config->dev_root), error);
}

VfdManager *
vfd_manager_new_with_sysfs(VfdConfig *config, VfdSysfs *sysfs_in, GError **error)
{
  g_autoptr(VfdSysfs) sysfs = sysfs_in;
  g_autoptr(VfdManager) m = g_new0(VfdManager, 1);
  g_autoptr(VfdJournal) journal = NULL;
  VfdPolicy *policy;
  gint64 t_start = 0, t_journal = 0, t_restore = 0;
  guint n_journal_devices = 0, n_journal_sandboxes = 0;

  m->config = config;
  m->allowed_group = g_strdup(config->allowed_group ? config->allowed_group : "");
  m->qemu_uids = g_hash_table_new(NULL, NULL);
  m->creating = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  m->names = g_hash_table_new(g_str_hash, g_str_equal);
  m->kvm_gid = (gid_t) -1;
  m->sandboxes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, sandbox_drop);
  m->socket_path = g_build_filename(config->runtime_dir, VFD_SOCKET_NAME, NULL);
  m->sandboxes_dir = g_build_filename(config->runtime_dir, "sandboxes", NULL);

  if (config->allowed_group && *config->allowed_group) {
    struct group *gr = getgrnam(config->allowed_group);
    if (gr) {
      m->allowed_gid = gr->gr_gid;
      m->have_allowed_gid = TRUE;
    } else {
      g_warning("allowed_group '%s' does not exist; only root may use the API", config->allowed_group);
    }
  }
  /* 0755 even when it existed: members of allowed_group must reach the
   * socket (which itself is 0660 root:group). */
  if (g_mkdir_with_parents(config->runtime_dir, 0755) < 0 || chmod(config->runtime_dir, 0755) < 0 || g_mkdir_with_parents(m->sandboxes_dir, 0711) < 0) {
    int e = errno;
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot create runtime directory %s: %s",
                config->runtime_dir, g_strerror(e));
    return NULL;
  }
  {
    g_autoptr(GError) jerror = NULL;
    t_start = g_get_monotonic_time();
    journal = vfd_journal_open(config->state_dir, &jerror);
    if (!journal && g_error_matches(jerror, VFD_ERROR, VFD_ERROR_CORRUPT)) {
      /* Serve the API, but touch no device until an operator acts. */
      g_warning("%s", jerror->message);
      m->journal_corrupt = g_strdup(jerror->message);
      journal = vfd_journal_new_empty(config->state_dir);
    } else if (!journal) {
      g_propagate_error(error, g_steal_pointer(&jerror));
      return NULL;
    }
    t_journal = g_get_monotonic_time();
    n_journal_devices = vfd_journal_devices(journal)->len;
    n_journal_sandboxes = vfd_journal_sandboxes(journal)->len;
  }
  policy = vfd_policy_new(config->ids, config->classes, error);
  if (!policy)
    return NULL;
  vfd_policy_set_guards(policy, &(VfdPolicyGuards){ .allow_boot_vga = config->allow_boot_vga,
                                                    .allow_storage = config->allow_storage,
                                                    .allow_network = config->allow_network });
  if (!resolve_qemu_user(m, config, error)) {
    vfd_policy_unref(policy);
    return NULL;
  }
  g_mutex_init(&m->net_lock);
  m->fw = vfd_firewall_state_new();
  m->cids = vfd_cid_pool_new(VFD_CID_FIRST, VFD_CID_LAST);
  if (config->net_enabled) {
    if (!vfd_firewall_state_set_ports(m->fw, config->net_host_ports, error)) {
      vfd_policy_unref(policy);
      return NULL;
    }
    g_free(m->fw->nat_uplink);
    m->fw->nat_uplink = g_strdup(config->net_nat_uplink);
    g_free(m->fw->proc_root);
    m->fw->proc_root = g_strdup(config->proc_root);
    m->pool = vfd_subnet_pool_new(config->net_pool, config->net_prefix, error);
    /* A pool that overlaps an address of the host would route sandboxes
     * into the host's own networks: refuse to start. */
    if (!m->pool || !vfd_subnet_pool_check_host_overlap(m->pool, VFD_TAP_PREFIX, error)) {
      g_prefix_error(error, "[network] pool %s: ", config->net_pool);
      vfd_policy_unref(policy);
      return NULL;
    }
    /* [network] gateway_address: the one address every guest's gateway
     * is, held by a dummy link so the platform can bind it any time. */
    if (config->net_gateway_addr) {
      const char *held_by = NULL;
      if (!vfd_gateway_link_ensure(config->net_gateway_addr, &held_by, error)) {
        g_prefix_error(error, "[network] gateway_address %s: ", config->net_gateway);
        vfd_policy_unref(policy);
        return NULL;
      }
      g_message("[network] gateway_address %s: on link %s%s, and on every sandbox TAP", config->net_gateway,
                held_by, g_str_equal(held_by, "lo") ? " (this kernel has no dummy links)" : "");
      m->fw->gateway = config->net_gateway_addr;
    }
    m->have_vsock = g_file_test("/dev/vhost-vsock", G_FILE_TEST_EXISTS);
    if (m->have_vsock)
      vfd_cid_pool_set_probe(m->cids, vfd_cid_probe_vhost_vsock, NULL);
  }
  vfd_sysfs_set_write_timeout(sysfs, config->write_timeout_s * 1000);
  m->host = vfd_host_new(g_steal_pointer(&sysfs), policy, g_steal_pointer(&journal));
  vfd_host_set_proc_root(m->host, config->proc_root);
  vfd_host_set_reset_policy(m->host, config->reset_on_release);
  if (config->variant_drivers) {
    /* A test's module tree: its aliases only, not the host's modprobe.d. */
    static const char *const no_config[] = { NULL };
    g_autoptr(GError) verr = NULL;
    VfdVariant *variant = vfd_variant_new(*config->modules_dir ? config->modules_dir : NULL,
                                          *config->modules_dir ? no_config : NULL, &verr);
    if (!variant)
      g_warning("[devices] variant_drivers: %s; every device goes to vfio-pci", verr->message);
    vfd_host_set_variant(m->host, variant);
  }
  m->pool_config = vfd_config_ref(config);
  {
    /* Before the first reconcile: a lent group whose sandbox is gone goes
     * back to the pool, not to its host drivers. */
    g_autoptr(VfdPoolRules) rules = vfd_mgr_pool_rules(m);
    vfd_host_set_pool_lending(m->host, vfd_pool_rules_lend(rules) ? vfd_mgr_pool_member : NULL, m);
  }

  m->observer = g_dbus_auth_observer_new();
  g_signal_connect(m->observer, "authorize-authenticated-peer", G_CALLBACK(on_authorize_peer), m);
  g_signal_connect(m->observer, "allow-mechanism", G_CALLBACK(on_allow_mechanism), m);
  m->skeleton = vfd_manager1_skeleton_new();
  vfd_manager1_set_version(m->skeleton, VFIOD_VERSION);
  vfd_mgr_api_connect(m);

  /* libvirt before reconciliation: it destroys leftover domains */
  vfd_mgr_libvirt_init(m);
  if (!m->journal_corrupt) {
    g_autoptr(GPtrArray) report = vfd_reconcile_report_new();
    g_autoptr(GHashTable) live = NULL;

    gint64 t1, t2, t3, scan_us = 0;
    guint restored = 0;

    vfd_mgr_reconcile_sandboxes(m, report, &restored, &t_restore);
    t1 = g_get_monotonic_time();
    live = vfd_mgr_live_sandbox_ids(m);
    vfd_mgr_libvirt_reconcile(m, live, report, TRUE);
    vfd_reconcile_devices(m->host, live, report, &scan_us);
    vfd_mgr_pool_sync(m, report);
    t2 = g_get_monotonic_time();
    vfd_mgr_reconcile_network(m, report);
    t3 = g_get_monotonic_time();
    vfd_mgr_log_report(report);
    /* Where start-up went (issue 17, figure 9 of bench/run). */
    g_message("start-up: journal %.1f ms (%u devices, %u sandboxes); sandboxes %.1f ms (%u adopted, %u restored, "
              "restore %.1f ms); devices %.1f ms (PCI scan %.1f ms); network %.1f ms",
              (t_journal - t_start) / 1000.0, n_journal_devices, n_journal_sandboxes, (t1 - t_journal) / 1000.0,
              g_hash_table_size(m->sandboxes), restored, t_restore / 1000.0, (t2 - t1) / 1000.0, scan_us / 1000.0,
              (t3 - t2) / 1000.0);
  }
  return g_steal_pointer(&m);
}

void
vfd_manager_free(VfdManager *m)
{
  if (!m)
    return;
  if (m->api) {
    /* Closes every connection and unexports the skeleton from it. */
    g_clear_pointer(&m->api, vfd_api_server_free);
    g_unlink(m->socket_path);
  }
  g_clear_object(&m->skeleton);
  g_clear_object(&m->observer);
  vfd_mgr_libvirt_free(m); /* its events look sandboxes up */
  g_hash_table_unref(m->sandboxes);
  g_hash_table_unref(m->qemu_uids);
  g_hash_table_unref(m->creating);
  g_clear_pointer(&m->names, g_hash_table_unref);
  if (m->serial_cap_timer)
    g_source_remove(m->serial_cap_timer);
  vfd_host_free(m->host);
  if (m->pool_config)
    vfd_config_unref(m->pool_config);
  vfd_config_unref(m->config);
  g_free(m->allowed_group);
  g_free(m->socket_path);
  g_free(m->sandboxes_dir);
  g_free(m->journal_corrupt);
  if (m->report_service) {
    g_socket_service_stop(m->report_service);
    g_object_unref(m->report_service);
  }
  vfd_report_conns_free(m->report_conns);
  vfd_subnet_pool_free(m->pool);
  vfd_cid_pool_free(m->cids);
  vfd_firewall_state_free(m->fw);
  g_mutex_clear(&m->net_lock);

  g_free(m);
}
