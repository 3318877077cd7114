/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest reports over vsock: the listener, and what a live sandbox's guest
 * reports on it. Main loop. */
#include "manager-private.h"

#include <errno.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <unistd.h>

#include "ready-report.h"
#include "report-conn.h"

/* ---- guest reports over vsock --------------------------------------------- */

/* The guests' report connections (m->report_conns, report-conn.h): each
 * bounded in size (a line of 64 KiB + 256, twice that in all), lines and time
 * (30 s); one per live sandbox CID at a time; at most
 * VFD_REPORT_MAX_CONNS in all; a peer whose CID is not a live sandbox's is
 * closed at once, nothing read. The peer's CID says which sandbox is
 * talking: a guest cannot speak for another. */

static Sandbox *
sandbox_by_cid(VfdManager *m, guint32 cid)
{
  GHashTableIter it;
  Sandbox *s;

  g_hash_table_iter_init(&it, m->sandboxes);
  while (g_hash_table_iter_next(&it, NULL, (gpointer *) &s))
    if (s->cid == cid && cid != 0)
      return s;
  return NULL;
}

/* The sandbox that owns @cid while it is live (creating, running,
 * stopping), else NULL. */
static Sandbox *
live_sandbox_by_cid(VfdManager *m, guint32 cid)
{
  Sandbox *s = sandbox_by_cid(m, cid);

  return s && s->state != SANDBOX_STOPPED && s->state != SANDBOX_FAILED && s->state != SANDBOX_EXITED ? s : NULL;
}

static gboolean
on_report_admit(guint32 cid, char **ret_label, gpointer data)
{
  Sandbox *s = live_sandbox_by_cid(data, cid);

  if (!s)
    return FALSE;
  *ret_label = g_strdup(s->id);
  return TRUE;
}

/* A line from the guest with @cid, on a connection admitted for sandbox
 * @id. Only "VFIOD_READY <report>" matters; other lines (VFIOD_EXIT) are
 * ignored. */
static void
on_report_line(guint32 cid, const char *id, const char *line, gsize len, gpointer data)
{
  VfdManager *m = data;
  Sandbox *s = live_sandbox_by_cid(m, cid);
  const char *at = memmem(line, len, VFD_REPORT_TAG, strlen(VFD_REPORT_TAG));
  const char *report;
  gsize n;

  /* The CID may have gone to another sandbox since the connection came. */
  if (!s || g_strcmp0(s->id, id) != 0 || !at || s->ready)
    return;
  report = at + strlen(VFD_REPORT_TAG);
  n = len - (gsize) (report - line);
  if (memchr(report, '\0', n)) {
    vfd_mgr_guest_warning("sandbox %s: ignored the guest's ready report (vsock): it holds a NUL byte", s->id);
    return;
  }
  sandbox_mark_ready(s, g_strchomp(g_strndup(report, n)), "vsock");
}

static void
on_report_closed(guint32 cid, const char *id, const GError *error, gpointer data)
{
  if (error)
    vfd_mgr_guest_warning("sandbox %s: closed the report connection from vsock CID %u: %s", id ? id : "?", cid,
                  error->message);
}

static gboolean
on_report_incoming(GSocketService *service, GSocketConnection *conn, GObject *source, gpointer data)
{
  VfdManager *m = data;
  struct sockaddr_vm peer = { 0 };
  socklen_t len = sizeof peer;
  g_autoptr(GError) error = NULL;

  if (getpeername(g_socket_get_fd(g_socket_connection_get_socket(conn)), (struct sockaddr *) &peer, &len) < 0 ||
      peer.svm_family != AF_VSOCK) {
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    return TRUE;
  }
  if (!vfd_report_conns_add(m->report_conns, peer.svm_cid, conn, &error))
    vfd_mgr_guest_warning("refused a report connection from vsock CID %u: %s", peer.svm_cid, error->message);
  return TRUE;
}

/* Listens on AF_VSOCK (any CID, [network] report_port) for guest-init's
 * reports, read only from live sandboxes' CIDs and bounded (above).
 * Failure is not fatal: the console remains. */
void
vfd_mgr_report_listener_start(VfdManager *m)
{
  struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = m->config->report_port };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) sock = NULL;
  int fd;

  if (!m->have_vsock)
    return;
  fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
    g_warning("cannot listen for guest reports on vsock port %u: %s; using the console only",
              m->config->report_port, g_strerror(errno));
    if (fd >= 0)
      close(fd);
    return;
  }
  sock = g_socket_new_from_fd(fd, &error);
  m->report_service = g_socket_service_new();
  if (!sock || !g_socket_listener_add_socket(G_SOCKET_LISTENER(m->report_service), sock, NULL, &error)) {
    g_warning("cannot listen for guest reports: %s", error->message);
    g_clear_object(&m->report_service);
    return;
  }
  if (!m->report_conns) {
    VfdReportLimits limits;
    vfd_report_limits_init_default(&limits);
    m->report_conns = vfd_report_conns_new(VFD_REPORT_MAX_CONNS, &limits, on_report_admit, on_report_line,
                                           on_report_closed, m);
  }
  g_signal_connect(m->report_service, "incoming", G_CALLBACK(on_report_incoming), m);
  g_socket_service_start(m->report_service);
  g_message("listening for guest reports on vsock port %u", m->config->report_port);
}
