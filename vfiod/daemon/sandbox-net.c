/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A sandbox's network: subnet and CID, its TAP and firewall rules, and the
 * QEMU arguments for them. Worker threads; the pools and the firewall state
 * under m->net_lock. */
#include "manager-private.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "guest-init/protocol.h"
#include "tap.h"

/* Network of a sandbox, part 1 (worker): subnet, CID, names. Nothing on
 * the host changes yet; the caller journals the result first. */
gboolean
vfd_mgr_net_allocate(VfdManager *m, Sandbox *s, GError **error)
{
  gboolean ok;

  if (!s->config->net_enabled)
    return TRUE;
  if (vfd_tap_name_for(s->id, s->tap) < 0 || vfd_guest_mac_for(s->id, s->mac) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot derive network names for %s", s->id);
    return FALSE;
  }
  g_mutex_lock(&m->net_lock);
  ok = vfd_subnet_pool_alloc(m->pool, &s->subnet, error);
  if (ok && m->have_vsock && !vfd_cid_pool_alloc(m->cids, &s->cid, error)) {
    vfd_subnet_pool_release(m->pool, &s->subnet);
    ok = FALSE;
  }
  g_mutex_unlock(&m->net_lock);
  s->has_net = ok;
  return ok;
}

/* ValidateSandbox's part 1 (worker): whether vfd_mgr_net_allocate() would
 * get a subnet now, with its error when not; nothing changes (the subnet
 * is taken and given back under the lock). The CID is not tried: its
 * probe binds a vhost-vsock CID in the kernel. */
gboolean
vfd_mgr_net_check(VfdManager *m, Sandbox *s, GError **error)
{
  VfdSubnet subnet;
  char tap[IFNAMSIZ];
  char mac[VFD_MAC_STRLEN];
  gboolean ok;

  if (!s->config->net_enabled)
    return TRUE;
  if (vfd_tap_name_for(s->id, tap) < 0 || vfd_guest_mac_for(s->id, mac) < 0) {
    g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot derive network names for %s", s->id);
    return FALSE;
  }
  g_mutex_lock(&m->net_lock);
  ok = vfd_subnet_pool_alloc(m->pool, &subnet, error);
  if (ok)
    vfd_subnet_pool_release(m->pool, &subnet);
  g_mutex_unlock(&m->net_lock);
  return ok;
}

/* Part 2 (worker): the TAP with the host address, and the firewall. */
gboolean
vfd_mgr_net_setup(VfdManager *m, Sandbox *s, GError **error)
{
  gboolean ok;

  if (!s->has_net)
    return TRUE;
  if (!vfd_tap_create(s->tap, s->qemu_uid, (gid_t) -1, &s->subnet, s->config->proc_root, error))
    return FALSE;
  s->tap_created = TRUE;
  if (s->config->net_gateway_addr && !vfd_tap_add_gateway(s->tap, s->config->net_gateway_addr, error))
    return FALSE;
  g_mutex_lock(&m->net_lock);
  ok = vfd_firewall_state_add(m->fw, s->tap, &s->subnet, FALSE, error) && vfd_firewall_apply(m->fw, error);
  g_mutex_unlock(&m->net_lock);
  return ok;
}

/* Undoes vfd_mgr_net_allocate/vfd_mgr_net_setup, whatever of it was done (worker). */
void
vfd_mgr_net_teardown(VfdManager *m, Sandbox *s)
{
  g_autoptr(GError) error = NULL;
  int r;

  if (!s->has_net)
    return;
  g_mutex_lock(&m->net_lock);
  if (vfd_firewall_state_remove(m->fw, s->tap) && !vfd_firewall_apply(m->fw, &error))
    g_warning("sandbox %s: firewall: %s", s->id, error->message);
  g_mutex_unlock(&m->net_lock);
  r = vfd_tap_delete(s->tap);
  if (r < 0 && r != -ENODEV && r != -ENOENT)
    g_warning("sandbox %s: cannot delete TAP %s: %s", s->id, s->tap, g_strerror(-r));
  g_mutex_lock(&m->net_lock);
  vfd_subnet_pool_release(m->pool, &s->subnet);
  if (s->cid)
    vfd_cid_pool_release(m->cids, s->cid);
  g_mutex_unlock(&m->net_lock);
  s->has_net = FALSE;
  s->tap_created = FALSE;
}

/* The guest kernel's command line words for the sandbox's network and
 * report channel (vfiod.ip, vfiod.gw, vfiod.mac, vfiod.dns,
 * vfiod.report), added to @append. */
void
vfd_mgr_net_guest_words(Sandbox *s, GStrvBuilder *append)
{
  char host[VFD_IPV4_STRLEN], guest[VFD_IPV4_STRLEN];

  if (s->has_net) {
    g_autofree char *ip = g_strdup_printf(VFIOD_KEY_IP "=%s/%u", vfd_ipv4_format(s->subnet.guest, guest), s->subnet.prefix);
    /* the stable gateway address when there is one (guest-init routes
     * to it on-link), else the TAP's own */
    g_autofree char *gw = g_strdup_printf(
        VFIOD_KEY_GW "=%s", vfd_ipv4_format(s->config->net_gateway_addr ? s->config->net_gateway_addr : s->subnet.host, host));
    g_autofree char *mac = g_strdup_printf(VFIOD_KEY_MAC "=%s", s->mac);

    g_strv_builder_add_many(append, ip, gw, mac, NULL);
    if (*s->config->net_dns) {
      g_autofree char *dns = g_strdup_printf(VFIOD_KEY_DNS "=%s", s->config->net_dns);
      g_strv_builder_add(append, dns);
    }
  }
  if (s->cid) {
    g_autofree char *report = g_strdup_printf(VFIOD_KEY_REPORT "=vsock:%u", s->config->report_port);
    g_strv_builder_add(append, report);
  }
}

/* QEMU arguments and kernel command line words for the sandbox's network
 * and vsock device. The device files are opened here, as root, and handed
 * to QEMU as fds 3, 4, ... (appended to @fds): QEMU, possibly unprivileged,
 * needs no access to /dev/net/tun, /dev/vhost-net or /dev/vhost-vsock. */
gboolean
vfd_mgr_net_qemu_args(VfdManager *m, Sandbox *s, gboolean microvm, GStrvBuilder *args, GStrvBuilder *append, GArray *fds,
              GError **error)
{
  if (s->has_net) {
    g_autofree char *netdev = NULL;
    g_autofree char *nic = g_strdup_printf("%s,netdev=net0,mac=%s", microvm ? "virtio-net-device" : "virtio-net-pci",
                                           s->mac);
    int tap_fd = vfd_tap_open(s->tap);
    int vhost_fd = g_file_test("/dev/vhost-net", G_FILE_TEST_EXISTS) ? open("/dev/vhost-net", O_RDWR | O_CLOEXEC)
                                                                       : -1;

    if (tap_fd < 0) {
      if (vhost_fd >= 0)
        close(vhost_fd);
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open TAP %s: %s", s->tap, g_strerror(-tap_fd));
      return FALSE;
    }
    g_array_append_val(fds, tap_fd);
    if (vhost_fd >= 0) {
      netdev = g_strdup_printf("tap,id=net0,fd=%u,vhost=on,vhostfd=%u", 3 + fds->len - 1, 3 + fds->len);
      g_array_append_val(fds, vhost_fd);
    } else {
      netdev = g_strdup_printf("tap,id=net0,fd=%u", 3 + fds->len - 1);
    }
    g_strv_builder_add_many(args, "-netdev", netdev, "-device", nic, NULL);
  }
  if (s->cid) {
    int vsock_fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);
    g_autofree char *vsock = NULL;

    if (vsock_fd < 0) {
      int e = errno;
      g_set_error(error, VFD_ERROR, VFD_ERROR_FAILED, "cannot open /dev/vhost-vsock: %s", g_strerror(e));
      return FALSE;
    }
    g_array_append_val(fds, vsock_fd);
    vsock = g_strdup_printf("%s,guest-cid=%u,vhostfd=%u", microvm ? "vhost-vsock-device" : "vhost-vsock-pci", s->cid,
                            3 + fds->len - 1);
    g_strv_builder_add_many(args, "-device", vsock, NULL);
  }
  vfd_mgr_net_guest_words(s, append);
  return TRUE;
}
