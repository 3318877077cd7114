/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The libvirt backend's calls into libvirt, in a module of their own
 * (vfiod-libvirt.so, built from libvirt-module.c): libvirt and what it
 * links (libxml2, GnuTLS, ...) are about 9 MiB of resident pages, which a
 * daemon that does not use libvirt must not carry. vfiod loads the module
 * (GModule) only with [vm] backend = libvirt and calls it through
 * VfdLibvirtOps. The module uses GLib and libvirt only, none of vfiod's
 * own code; every call is safe on any thread (the connection is
 * reference-counted under a lock). Names are libvirt domain names (vfiod's
 * sandbox ids); "ours" means the domain's <metadata> has an element in
 * VFD_LIBVIRT_XMLNS (the domain XML is libvirt-xml.c's). */

#include <glib.h>

#define VFD_LIBVIRT_MODULE_FILE "vfiod-libvirt.so"
#define VFD_LIBVIRT_MODULE_SYMBOL "vfd_libvirt_module_ops" /* a const VfdLibvirtOps */
#define VFD_LIBVIRT_MODULE_ABI 1                          /* VfdLibvirtOps.abi: bumped on any change */
#define VFD_LIBVIRT_XMLNS "https://vfiod.org/xmlns/libvirt-domain/1" /* vfiod's <metadata> element's namespace */

typedef struct VfdLibvirt VfdLibvirt;

/* A group of open fds handed to a domain for one disk (virDomainFDAssociate). */
typedef struct {
  const char *name;
  const int *fds;
  guint n_fds;
} VfdLibvirtFdGroup;

/* A domain as reconciliation sees it. */
typedef struct {
  char *name;
  gboolean ours;   /* vfiod's metadata */
  gboolean active; /* running */
  char *xml;       /* its live XML (active domains only; NULL otherwise or when unreadable) */
} VfdLibvirtDomainInfo;

typedef struct {
  guint abi; /* VFD_LIBVIRT_MODULE_ABI */
  /* A handle for @uri, not connected yet; registers libvirt-glib's event
   * loop on GLib's default main context (once per process).
   * @on_stopped(name, detail, data): a domain stopped
   * (VIR_DOMAIN_EVENT_STOPPED_* detail); @on_closed(data): the connection
   * closed (libvirtd went away): call @disconnect, then @connect again
   * later. Both run on the main loop. */
  VfdLibvirt *(*new)(const char *uri, void (*on_stopped)(const char *name, int detail, gpointer data),
                     void (*on_closed)(gpointer data), gpointer data);
  /* Connects (read-write) with lifecycle events and keepalives; TRUE at
   * once when connected. FALSE with *@error (a new string). Main loop. */
  gboolean (*connect)(VfdLibvirt *lv, char **error);
  /* Drops the connection (calls on other threads finish on the references
   * they took). Main loop. */
  void (*disconnect)(VfdLibvirt *lv);
  /* Disconnects and frees the handle (shut-down: nothing else uses it). */
  void (*free)(VfdLibvirt *lv);
  /* libvirt's version, "9.0.0" (a new string). */
  char *(*version)(VfdLibvirt *lv);
  /* Starts a domain from @xml: transient from the start when @n_groups is
   * 0; else defined, given the fd groups, started and undefined (transient
   * while it runs). The fds stay the caller's. FALSE with *@error. */
  gboolean (*create)(VfdLibvirt *lv, const char *xml, const VfdLibvirtFdGroup *groups, guint n_groups, char **error);
  /* Asks domain @name (ours) to power off: the ACPI power button and
   * Ctrl-Alt-Del (Linux key codes). FALSE with *@error. */
  gboolean (*shutdown)(VfdLibvirt *lv, const char *name, char **error);
  /* Stops domain @name (ours): @graceful sends SIGTERM only
   * (VIR_DOMAIN_DESTROY_GRACEFUL). FALSE with *@error. */
  gboolean (*destroy)(VfdLibvirt *lv, const char *name, gboolean graceful, char **error);
  /* 1: domain @name is ours and runs; 0: ours, not running; -1: none of ours. */
  int (*state)(VfdLibvirt *lv, const char *name);
  /* Destroys (if running) and undefines (if defined) domain @name when it is
   * ours. Returns what it did ("destroyed its libvirt domain", ...), a
   * static string, or NULL when nothing. */
  const char *(*forget)(VfdLibvirt *lv, const char *name);
  /* Every domain (running or defined): a GPtrArray of VfdLibvirtDomainInfo
   * (free func set), or NULL with *@error. */
  GPtrArray *(*list)(VfdLibvirt *lv, char **error);
} VfdLibvirtOps;
