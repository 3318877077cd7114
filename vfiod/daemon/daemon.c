/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "daemon.h"

#include <glib-unix.h>
#include <systemd/sd-daemon.h>

typedef struct {
  VfdManager *manager;
  const char *config_path;
  GMainLoop *loop;
} Daemon;

static gboolean
on_quit_signal(gpointer data)
{
  Daemon *d = data;

  g_message("stopping (running sandboxes keep running and are adopted at next start)");
  sd_notify(0, "STOPPING=1");
  g_main_loop_quit(d->loop);
  return G_SOURCE_CONTINUE;
}

/* SIGHUP: re-read the configuration; a bad one is refused and the old one
 * stays in force. */
static gboolean
on_hangup(gpointer data)
{
  Daemon *d = data;
  g_autoptr(GError) error = NULL;

  if (!d->config_path) {
    g_warning("SIGHUP: vfiod runs without --config; nothing to reload");
    return G_SOURCE_CONTINUE;
  }
  sd_notify(0, "RELOADING=1");
  if (!vfd_manager_reload(d->manager, d->config_path, &error))
    g_warning("SIGHUP: configuration not reloaded: %s", error->message);
  sd_notify(0, "READY=1");
  return G_SOURCE_CONTINUE;
}

int
vfd_daemon_run(VfdManager *manager, const char *config_path)
{
  Daemon d = { .manager = manager, .config_path = config_path, .loop = g_main_loop_new(NULL, FALSE) };
  guint sources[3];

  sources[0] = g_unix_signal_add(SIGTERM, on_quit_signal, &d);
  sources[1] = g_unix_signal_add(SIGINT, on_quit_signal, &d);
  sources[2] = g_unix_signal_add(SIGHUP, on_hangup, &d);
  /* The API is up: tell systemd (Type=notify). */
  sd_notify(0, "READY=1");
  g_main_loop_run(d.loop);
  for (guint i = 0; i < G_N_ELEMENTS(sources); i++)
    g_source_remove(sources[i]);
  g_main_loop_unref(d.loop);
  return 0;
}
