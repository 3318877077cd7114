/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "config.h"
#include "device.h"
#include "interface.h"

/* The daemon object: configuration, device layer, sandboxes, and the D-Bus
 * API served on <runtime_dir>/vfiod.sock. */
typedef struct VfdManager VfdManager;


/* Takes ownership of @config. Opens the journal (a corrupt journal fails
 * with VFD_ERROR_CORRUPT: nothing is touched), creates the runtime
 * directory, and reconciles sandboxes recorded in the journal: a sandbox
 * whose QEMU (pid + start time) is alive is adopted, one whose QEMU is gone
 * has its devices restored; devices left half-way (binding/releasing) are
 * restored. */
VfdManager *vfd_manager_new(VfdConfig *config, GError **error);

/* The same, with a prepared VfdSysfs (ownership taken) instead of one made
 * from the config's sys_root/dev_root: tests pass one whose writer is a fake
 * kernel. */
VfdManager *vfd_manager_new_with_sysfs(VfdConfig *config, VfdSysfs *sysfs, GError **error);

/* Starts serving the API. Fails when another vfiod answers on the socket. */
gboolean vfd_manager_start(VfdManager *manager, GError **error);

/* Path of the API socket. */
const char *vfd_manager_socket_path(VfdManager *manager);

/* Re-reads the configuration from @path (SIGHUP). Applied at once: device
 * rules and guards, reset_on_release, write_timeout, [qemu] settings,
 * [network] host_ports. The rest (directories, allowed_group, the network
 * pool) needs a restart: those changes are refused with the key named, and
 * nothing is applied. */
gboolean vfd_manager_reload(VfdManager *manager, const char *path, GError **error);

/* Stops serving; sandboxes keep running (they are adopted at next start). */
void vfd_manager_free(VfdManager *manager);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdManager, vfd_manager_free)

/* For [vm] backend = libvirt: TRUE when vfiod's libvirt module
 * (vfiod-libvirt.so, next to vfiod's binary or in VFIOD_MODULEDIR) loads
 * and is this vfiod's (its ABI); FALSE with VFD_ERROR_FAILED saying why.
 * Loads nothing of libvirt for long: the module is closed again (for
 * --check-config). */
gboolean vfd_manager_libvirt_module_check(GError **error);
