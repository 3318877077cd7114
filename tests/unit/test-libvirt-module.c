/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiod-libvirt.so (vfiod/vm/libvirt-module.h), loaded as vfiod loads it,
 * against libvirt's in-process test driver (test:///default: no daemon, a
 * simulated hypervisor with one domain "test" of its own): vfiod's domain
 * XML (vfd_libvirt_domain_xml(), its type made 'test') starts a transient
 * domain that is ours, the lifecycle events reach GLib's main loop
 * (libvirt-glib), shutdown and destroy stop it with their details, a
 * domain that is not ours is never touched, fd groups the driver cannot
 * take leave no definition behind, forget removes a defined leftover. */
#include <fcntl.h>
#include <gmodule.h>
#include <libvirt/libvirt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <unistd.h>

#include "libvirt-module.h"
#include "libvirt-xml.h"

static const VfdLibvirtOps *ops;
static GPtrArray *stopped; /* "name:detail" of each stopped event */

static void
on_stopped(const char *name, int detail, gpointer data)
{
  g_ptr_array_add(stopped, g_strdup_printf("%s:%d", name, detail));
}

static void
on_closed(gpointer data)
{
}

/* Runs the main loop until @want is among the stopped events (5 s at most). */
static gboolean
wait_stopped(const char *want)
{
  gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

  while (g_get_monotonic_time() < end) {
    for (guint i = 0; i < stopped->len; i++)
      if (g_str_equal(g_ptr_array_index(stopped, i), want))
        return TRUE;
    g_main_context_iteration(NULL, FALSE);
    g_usleep(1000);
  }
  return FALSE;
}

/* vfiod's XML for a CPU-only sandbox @name, as the test driver takes it. */
static char *
domain_xml(const char *name)
{
  VfdLibvirtDomain d = { .name = name, .owner_uid = 1000, .emulator = "/usr/bin/qemu-system-x86_64",
                         .memory_mib = 512, .vcpus = 1, .numa_node = -1, .kernel = "/run/k", .initrd = "/run/i",
                         .cmdline = "console=ttyS0", .serial_log = "/run/serial.log", .run_as = TRUE, .run_uid = 3000,
                         .run_gid = 3000 };
  g_autofree char *xml = vfd_libvirt_domain_xml(&d);
  g_auto(GStrv) parts = g_strsplit(xml, "<domain type='qemu'", 2);

  assert_non_null(parts[1]);
  return g_strconcat(parts[0], "<domain type='test'", parts[1], NULL);
}

static const VfdLibvirtDomainInfo *
find(GPtrArray *list, const char *name)
{
  for (guint i = 0; i < list->len; i++) {
    const VfdLibvirtDomainInfo *d = g_ptr_array_index(list, i);
    if (g_str_equal(d->name, name))
      return d;
  }
  return NULL;
}

static void
test_lifecycle(void **state)
{
  VfdLibvirt *lv = ops->new("test:///default", on_stopped, on_closed, NULL);
  g_autofree char *xml1 = domain_xml("sb-00000001");
  g_autofree char *xml2 = domain_xml("sb-00000002");
  g_autofree char *version = NULL;
  g_autoptr(GPtrArray) list = NULL;
  char *error = NULL;

  assert_true(ops->connect(lv, &error));
  assert_true(ops->connect(lv, &error)); /* connected: at once */
  version = ops->version(lv);
  assert_true(g_str_has_prefix(version, "9.") || g_ascii_isdigit(version[0]));
  assert_int_equal(ops->state(lv, "sb-00000001"), -1);

  /* transient, ours, running */
  assert_true(ops->create(lv, xml1, NULL, 0, &error));
  assert_int_equal(ops->state(lv, "sb-00000001"), 1);
  list = ops->list(lv, &error);
  assert_non_null(list);
  assert_true(find(list, "sb-00000001")->ours && find(list, "sb-00000001")->active);
  assert_non_null(strstr(find(list, "sb-00000001")->xml, "<name>sb-00000001</name>"));
  assert_false(find(list, "test")->ours); /* the driver's own domain */
  /* a domain that is not ours is left alone */
  assert_int_equal(ops->state(lv, "test"), -1);
  assert_false(ops->destroy(lv, "test", FALSE, &error));
  assert_non_null(strstr(error, "cannot stop the domain"));
  g_clear_pointer(&error, g_free);
  assert_null(ops->forget(lv, "test"));

  /* graceful power-off: event "shut down" (detail 0); transient: gone */
  assert_true(ops->shutdown(lv, "sb-00000001", &error));
  assert_true(wait_stopped("sb-00000001:0"));
  assert_int_equal(ops->state(lv, "sb-00000001"), -1);

  /* destroy: event "destroyed" (detail 1) */
  assert_true(ops->create(lv, xml2, NULL, 0, &error));
  assert_true(ops->destroy(lv, "sb-00000002", TRUE, &error));
  assert_true(wait_stopped("sb-00000002:1"));
  assert_int_equal(ops->state(lv, "sb-00000002"), -1);
  assert_false(ops->shutdown(lv, "sb-00000002", &error)); /* gone */
  g_clear_pointer(&error, g_free);

  ops->disconnect(lv);
  assert_int_equal(ops->state(lv, "test"), -1);
  assert_false(ops->create(lv, xml1, NULL, 0, &error));
  assert_non_null(strstr(error, "not connected to test:///default"));
  g_clear_pointer(&error, g_free);
  ops->free(lv);
}

/* Disks as fd groups: the test driver cannot take fds; the definition made
 * for them is removed again. forget removes a leftover definition. */
static void
test_fd_groups_and_forget(void **state)
{
  VfdLibvirt *lv = ops->new("test:///default", on_stopped, on_closed, NULL);
  g_autofree char *xml = domain_xml("sb-00000003");
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  VfdLibvirtFdGroup g = { .name = "sb-00000003-vfiod-root", .fds = &fd, .n_fds = 1 };
  g_autoptr(GPtrArray) list = NULL;
  char *error = NULL;

  assert_true(fd >= 0);
  assert_true(ops->connect(lv, &error));
  assert_false(ops->create(lv, xml, &g, 1, &error));
  assert_non_null(error);
  g_clear_pointer(&error, g_free);
  assert_int_equal(ops->state(lv, "sb-00000003"), -1); /* not left defined */
  list = ops->list(lv, &error);
  assert_null(find(list, "sb-00000003"));
  close(fd);

  /* a definition left by a crash between define and undefine: forget
   * removes it (and a running one is destroyed first) */
  {
    virConnectPtr c = virConnectOpen("test:///default");
    virDomainPtr dom;

    assert_non_null(c);
    dom = virDomainDefineXML(c, xml);
    assert_non_null(dom);
    assert_int_equal(ops->state(lv, "sb-00000003"), 0); /* ours, not running */
    assert_string_equal(ops->forget(lv, "sb-00000003"), "undefined its libvirt domain");
    assert_int_equal(ops->state(lv, "sb-00000003"), -1);
    virDomainFree(dom);
    dom = virDomainDefineXML(c, xml);
    assert_int_equal(virDomainCreate(dom), 0);
    assert_int_equal(ops->state(lv, "sb-00000003"), 1);
    assert_string_equal(ops->forget(lv, "sb-00000003"), "destroyed and undefined its libvirt domain");
    assert_int_equal(ops->state(lv, "sb-00000003"), -1);
    assert_null(ops->forget(lv, "sb-00000003"));
    virDomainFree(dom);
    virConnectClose(c);
  }
  ops->free(lv);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_lifecycle),
    cmocka_unit_test(test_fd_groups_and_forget),
  };
  const char *path = g_getenv("VFIOD_LIBVIRT_MODULE");
  GModule *mod;

  if (!path) {
    printf("# SKIP: VFIOD_LIBVIRT_MODULE is not set (meson test sets it)\n");
    return 77;
  }
  mod = g_module_open(path, G_MODULE_BIND_LOCAL);
  if (!mod || !g_module_symbol(mod, VFD_LIBVIRT_MODULE_SYMBOL, (gpointer *) &ops) || ops->abi != VFD_LIBVIRT_MODULE_ABI) {
    printf("cannot load %s: %s\n", path, g_module_error());
    return 1;
  }
  stopped = g_ptr_array_new_with_free_func(g_free);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
