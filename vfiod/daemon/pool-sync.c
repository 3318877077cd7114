/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool (issue 16) as the manager keeps it: the rules of the start-up
 * configuration, pool lending, the CDI specs. */
#include "manager-private.h"

#include "pool.h"
#include "variant.h"

/* The pool (issue 16): [pool] rules of the start-up configuration. */
VfdPoolRules *
vfd_mgr_pool_rules(VfdManager *m)
{
  /* Validated when the config was loaded. */
  return vfd_pool_rules_new(m->pool_config->pool_devices, m->pool_config->pool_match, m->pool_config->pool_mode,
                            NULL);
}

/* Rewrites the CDI specs ([pool] cdi_dir) from the pool as it is now;
 * a failure is logged (the specs keep their last content). Any thread. */
void
vfd_mgr_pool_write_cdi(VfdManager *m)
{
  g_autoptr(VfdPoolRules) rules = vfd_mgr_pool_rules(m);
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(GError) error = NULL;

  if (!*m->pool_config->cdi_dir)
    return;
  /* mode=sandboxes: the pool is vfiod's own, nothing for other consumers;
   * no pool: no PCI scan (the main loop calls this after every bind). */
  entries = vfd_pool_rules_lend(rules) || vfd_pool_is_empty(m->host, rules)
                ? g_ptr_array_new()
                : vfd_pool_collect(m->host, rules, vfd_host_variant(m->host), &error);
  if (!entries || !vfd_cdi_write(m->pool_config->cdi_dir, entries, &error))
    g_warning("[pool] cdi_dir %s: %s", m->pool_config->cdi_dir, error->message);
}

/* Pool lending (vfd_host_set_pool_lending()): @bdf is in the pool by the
 * config's rules. */
bool
vfd_mgr_pool_member(VfdHost *host, const VfdBdf *bdf, void *data)
{
  VfdManager *m = data;
  g_autoptr(VfdPoolRules) rules = vfd_mgr_pool_rules(m);
  g_autoptr(VfdPciDevice) dev = NULL;

  g_autoptr(GArray) fns = NULL;

  if (!vfd_pool_rules_lend(rules) || !vfd_host_group_functions(host, bdf, &fns, NULL))
    return false;
  /* The group is the pool's when any of its functions is. */
  for (guint i = 0; i < fns->len; i++) {
    g_clear_pointer(&dev, vfd_pci_device_free);
    dev = vfd_host_get_device(host, &g_array_index(fns, VfdBdf, i), NULL);
    if (dev && vfd_pool_rules_match(rules, dev))
      return true;
  }
  return false;
}

/* Brings the pool to its state and writes the CDI specs (start-up,
 * reconcile). Any thread. */
void
vfd_mgr_pool_sync(VfdManager *m, GPtrArray *report)
{
  g_autoptr(VfdPoolRules) rules = vfd_mgr_pool_rules(m);

  vfd_host_set_pool_lending(m->host, vfd_pool_rules_lend(rules) ? vfd_mgr_pool_member : NULL, m);

  vfd_pool_apply(m->host, rules, report);
  vfd_mgr_pool_write_cdi(m);
}
