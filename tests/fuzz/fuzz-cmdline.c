/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's kernel command line parser, gi_cmdline_parse()
 * (guest-init/cmdline.c): /proc/cmdline as the host (or whoever could
 * inject into it) wrote it, read into a 16 KiB buffer by PID 1.
 *
 * Checks: every stored string is NUL-terminated inside its array; keys are
 * printable ASCII; a value is only kept for the statuses that keep one;
 * counts stay within their limits; the effective settings have the shapes
 * cmdline.h promises; no kept value holds a '"' or '\\' (protocol.h's
 * allow-list); gi_cmdline_check() says "usable" exactly when no token was
 * refused or dropped, with an empty message then and a message otherwise;
 * parsing is deterministic (a second parse gives the same bytes, so nothing
 * uninitialised leaks into the result). */
#include <arpa/inet.h>
#include <stdbool.h>

#include "cmdline.h"
#include "fuzz-common.h"

#define TERMINATED(a) (strnlen((a), sizeof(a)) < sizeof(a))

static bool
all_printable(const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
      return false;
  return true;
}

static void
check(const GiCmdline *c)
{
  FUZZ_CHECK(c->n_entries <= GI_CMDLINE_MAX_ENTRIES);
  FUZZ_CHECK(c->n_dropped == 0 || c->n_entries == GI_CMDLINE_MAX_ENTRIES);
  for (size_t i = 0; i < c->n_entries; i++) {
    const GiCmdlineEntry *e = &c->entries[i];

    FUZZ_CHECK(TERMINATED(e->key) && TERMINATED(e->value));
    FUZZ_CHECK(strncmp(e->key, GI_CMDLINE_PREFIX, strlen(GI_CMDLINE_PREFIX)) == 0);
    FUZZ_CHECK(all_printable(e->key) && strchr(e->key, ' ') == NULL);
    FUZZ_CHECK(e->status >= GI_CMDLINE_OK && e->status <= GI_CMDLINE_STATUS_LAST);
    FUZZ_CHECK(gi_cmdline_status_to_string(e->status) != NULL);
    FUZZ_CHECK(gi_cmdline_status_is_error(e->status) == (e->status != GI_CMDLINE_OK && e->status != GI_CMDLINE_UNKNOWN));
    if (e->status == GI_CMDLINE_OK || e->status == GI_CMDLINE_UNKNOWN || e->status == GI_CMDLINE_BAD_VALUE ||
        e->status == GI_CMDLINE_TOO_MANY || e->status == GI_CMDLINE_DUPLICATE)
      FUZZ_CHECK(all_printable(e->value) && strchr(e->value, '"') == NULL && strchr(e->value, '\\') == NULL);
    else
      FUZZ_CHECK(e->value[0] == '\0');
    if (e->status == GI_CMDLINE_UNKNOWN)
      FUZZ_CHECK(e->id == GI_CMDLINE_KEY_UNKNOWN);
  }

  {
    /* gi_cmdline_check(): usable exactly when nothing was refused or dropped */
    char err[GI_CMDLINE_MAX_KEY + 128];
    bool refused = c->n_dropped > 0;
    for (size_t i = 0; i < c->n_entries; i++)
      refused |= gi_cmdline_status_is_error(c->entries[i].status);
    FUZZ_CHECK(gi_cmdline_check(c, err, sizeof err) == !refused && TERMINATED(err) && (err[0] == '\0') == !refused);
  }
  FUZZ_CHECK(TERMINATED(c->sandbox) && c->has_sandbox == (c->sandbox[0] != '\0'));
  FUZZ_CHECK(c->report == GI_REPORT_CONSOLE || c->report == GI_REPORT_VSOCK);
  if (c->report == GI_REPORT_VSOCK)
    FUZZ_CHECK(c->report_port >= 1 && c->report_port <= 0xfffffffeu);
  FUZZ_CHECK(TERMINATED(c->ip) && TERMINATED(c->gw) && TERMINATED(c->ifname) && TERMINATED(c->mac));
  if (c->has_ip) {
    struct in_addr a;
    FUZZ_CHECK(inet_pton(AF_INET, c->ip, &a) == 1 && c->prefix >= 1 && c->prefix <= 32);
  }
  if (c->gw[0]) {
    struct in_addr a;
    FUZZ_CHECK(inet_pton(AF_INET, c->gw, &a) == 1);
  }
  FUZZ_CHECK(c->n_dns <= GI_CMDLINE_MAX_DNS);
  for (size_t i = 0; i < c->n_dns; i++)
    FUZZ_CHECK(TERMINATED(c->dns[i]) && c->dns[i][0] != '\0');
  FUZZ_CHECK(c->mac[0] == '\0' || strlen(c->mac) == 17);
  FUZZ_CHECK(TERMINATED(c->cmd) && (c->cmd[0] == '\0' || c->cmd[0] == '/'));
  FUZZ_CHECK(c->n_args <= GI_CMDLINE_MAX_ARGS && c->n_env <= GI_CMDLINE_MAX_ENV);
  for (size_t i = 0; i < c->n_args; i++)
    FUZZ_CHECK(TERMINATED(c->args[i]) && all_printable(c->args[i]));
  for (size_t i = 0; i < c->n_env; i++)
    FUZZ_CHECK(TERMINATED(c->env[i]) && strchr(c->env[i], '=') > c->env[i] && all_printable(c->env[i]));
  /* vfiod.root= is /dev/NAME or virtio:SERIAL (the disk with that serial) */
  FUZZ_CHECK(TERMINATED(c->root) &&
             (c->root[0] == '\0' || strncmp(c->root, "/dev/", 5) == 0 ||
              (strncmp(c->root, VFIOD_DISK_BY_SERIAL, strlen(VFIOD_DISK_BY_SERIAL)) == 0 &&
               vfiod_cmdline_disk_valid(c->root))));
  FUZZ_CHECK(TERMINATED(c->rootfstype) && c->rootfstype[0] != '\0');
  FUZZ_CHECK((c->nvidia & ~(unsigned) (GI_NVIDIA_UVM | GI_NVIDIA_MODESET | GI_NVIDIA_DRM | GI_NVIDIA_PEERMEM)) == 0);
  FUZZ_CHECK(!(c->nvidia & GI_NVIDIA_DRM) || (c->nvidia & GI_NVIDIA_MODESET));
  FUZZ_CHECK(c->timeout_s <= GI_CMDLINE_MAX_TIMEOUT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static GiCmdline first, second;
  char *s = fuzz_strndup(data, size);

  memset(&first, 0xa5, sizeof first);
  memset(&second, 0x5a, sizeof second);
  gi_cmdline_parse(s, &first);
  check(&first);
  gi_cmdline_parse(s, &second);
  FUZZ_CHECK(memcmp(&first, &second, sizeof first) == 0);
  free(s);
  return 0;
}
