/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's manifest parser, gi_manifest_parse() (guest-init/manifest.c):
 * /etc/vfiod/manifest of the staged initramfs, read into a 64 KiB buffer.
 *
 * Checks: a refusal is -EINVAL with a NUL-terminated message inside the
 * error buffer, also when that buffer is tiny or empty, and the outcome does
 * not depend on the buffer's size; an accepted manifest has the shapes
 * manifest.h promises, every string pointing into the parsed text; module
 * names derived from the paths fit the buffer guest-init gives them. */
#include <errno.h>
#include <stdbool.h>

#include "fuzz-common.h"
#include "manifest.h"

/* @p is a NUL-terminated string inside the @size + 1 bytes at @text. */
static bool
inside(const char *p, const char *text, size_t size)
{
  return p >= text && p <= text + size && strnlen(p, (size_t) (text + size - p) + 1) <= (size_t) (text + size - p);
}

static bool
ends_with(const char *s, const char *suffix)
{
  size_t ls = strlen(s), lx = strlen(suffix);

  return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static bool
clean_abs_path(const char *p)
{
  size_t len = strlen(p);

  return p[0] == '/' && len >= 2 && len <= GI_MANIFEST_MAX_PATH && !strstr(p, "//") && !strstr(p, "/./") &&
         !strstr(p, "/../") && !ends_with(p, "/") && !ends_with(p, "/.") && !ends_with(p, "/..");
}

static bool
printable_or_space(const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
      return false;
  return true;
}

static void
check_manifest(const GiManifest *m, const char *text, size_t size)
{
  unsigned last_line = 0;

  FUZZ_CHECK(m->version == GI_MANIFEST_VERSION);
  FUZZ_CHECK(m->kernel && inside(m->kernel, text, size) && m->kernel[0] && !strchr(m->kernel, ' '));
  FUZZ_CHECK(!m->nvidia_driver || (inside(m->nvidia_driver, text, size) && strcmp(m->nvidia_driver, "-") != 0));
  FUZZ_CHECK(!m->stamp || inside(m->stamp, text, size));
  FUZZ_CHECK(!m->firmware || (inside(m->firmware, text, size) && clean_abs_path(m->firmware)));
  FUZZ_CHECK(m->n_modules <= GI_MANIFEST_MAX_MODULES);
  for (size_t i = 0; i < m->n_modules; i++) {
    const GiManifestModule *mod = &m->modules[i];
    char name[64];

    FUZZ_CHECK(inside(mod->path, text, size) && clean_abs_path(mod->path) && ends_with(mod->path, ".ko"));
    FUZZ_CHECK(mod->params && printable_or_space(mod->params));
    FUZZ_CHECK(mod->params[0] == '\0' || (inside(mod->params, text, size) && mod->params[0] != ' ' &&
                                          !ends_with(mod->params, " ") && !strstr(mod->params, "  ")));
    FUZZ_CHECK(mod->line > last_line);
    last_line = mod->line;
    memset(name, 0x5a, sizeof name);
    gi_module_name(mod->path, name, sizeof name);
    FUZZ_CHECK(strnlen(name, sizeof name) < sizeof name && name[0] != '\0' && !strchr(name, '-') &&
               !strchr(name, '/'));
  }
  for (size_t i = 0; i < m->n_unknown && i < GI_MANIFEST_MAX_UNKNOWN; i++)
    FUZZ_CHECK(m->unknown_lines[i] >= 1 && (i == 0 || m->unknown_lines[i] > m->unknown_lines[i - 1]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static GiManifest m, m_small, m_none;
  char *text = fuzz_strndup(data, size);
  char *text_small = fuzz_strndup(data, size);
  char *text_none = fuzz_strndup(data, size);
  char error[512], small[7], none = 'x';
  int r, r_small, r_none;

  memset(error, 0x5a, sizeof error);
  memset(small, 0x5a, sizeof small);
  r = gi_manifest_parse(text, &m, error, sizeof error);
  FUZZ_CHECK(r == 0 || r == -EINVAL);
  FUZZ_CHECK(strnlen(error, sizeof error) < sizeof error);
  if (r < 0)
    FUZZ_CHECK(error[0] != '\0');
  else
    check_manifest(&m, text, size);

  /* The error buffer's size changes nothing but the message's length. */
  r_small = gi_manifest_parse(text_small, &m_small, small, sizeof small);
  FUZZ_CHECK(r_small == r && strnlen(small, sizeof small) < sizeof small);
  FUZZ_CHECK(r < 0 || (m_small.n_modules == m.n_modules && strcmp(m_small.kernel, m.kernel) == 0));
  r_none = gi_manifest_parse(text_none, &m_none, &none, 0);
  FUZZ_CHECK(r_none == r && none == 'x');

  free(text);
  free(text_small);
  free(text_none);
  return 0;
}
