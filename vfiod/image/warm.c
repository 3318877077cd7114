/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Warm memos of image build's script steps (warm.h). */
#include "warm.h"

#include <errno.h>
#include <gio/gio.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMO_MAGIC "vfiod-warm 1 " VFIOD_VERSION
/* A memo is a few lines and a script's answer (build-driver-layer.sh
 * --json: about 2 KiB). */
#define MEMO_MAX (1 << 20)

struct VfdWarmInputs {
  GChecksum *sum;
  char *fingerprint;
};

/* The identity of @path (lstat; a link's target too), or "absent". */
static char *
file_identity(const char *path)
{
  struct stat st;
  g_autofree char *target = NULL;

  if (lstat(path, &st) < 0)
    return g_strdup_printf("absent %d", errno);
  if (S_ISLNK(st.st_mode))
    target = g_file_read_link(path, NULL);
  return g_strdup_printf("%ju %ju %jd %o %jd.%09ld %jd.%09ld%s%s", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino,
                         (intmax_t) st.st_size, (unsigned) st.st_mode, (intmax_t) st.st_mtim.tv_sec,
                         st.st_mtim.tv_nsec, (intmax_t) st.st_ctim.tv_sec, st.st_ctim.tv_nsec, target ? " -> " : "",
                         target ? target : "");
}

static void
add_line(VfdWarmInputs *in, const char *kind, const char *a, const char *b)
{
  g_checksum_update(in->sum, (const guchar *) kind, -1);
  g_checksum_update(in->sum, (const guchar *) "\0", 1);
  g_checksum_update(in->sum, (const guchar *) a, -1);
  g_checksum_update(in->sum, (const guchar *) "\0", 1);
  g_checksum_update(in->sum, (const guchar *) (b ? b : "(unset)"), -1);
  g_checksum_update(in->sum, (const guchar *) (b ? "\n" : "\0\n"), 2);
}

VfdWarmInputs *
vfd_warm_inputs_new(const char *what)
{
  VfdWarmInputs *in = g_new0(VfdWarmInputs, 1);

  in->sum = g_checksum_new(G_CHECKSUM_SHA256);
  add_line(in, MEMO_MAGIC, "step", what);
  return in;
}

void
vfd_warm_inputs_free(VfdWarmInputs *in)
{
  if (!in)
    return;
  g_checksum_free(in->sum);
  g_free(in->fingerprint);
  g_free(in);
}

void
vfd_warm_inputs_add_value(VfdWarmInputs *in, const char *name, const char *value)
{
  g_return_if_fail(!in->fingerprint);
  add_line(in, "value", name, value);
}

void
vfd_warm_inputs_add_file(VfdWarmInputs *in, const char *path)
{
  g_autofree char *id = file_identity(path);

  g_return_if_fail(!in->fingerprint);
  add_line(in, "file", path, id);
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *) a, *(const char *const *) b);
}

void
vfd_warm_inputs_add_dir(VfdWarmInputs *in, const char *dir, const char *infix)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;

  vfd_warm_inputs_add_file(in, dir);
  while (d && (name = g_dir_read_name(d)))
    if (!infix || strstr(name, infix))
      g_ptr_array_add(names, g_strdup(name));
  g_ptr_array_sort(names, compare_names);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *path = g_build_filename(dir, g_ptr_array_index(names, i), NULL);
    vfd_warm_inputs_add_file(in, path);
  }
}

const char *
vfd_warm_inputs_fingerprint(VfdWarmInputs *in)
{
  if (!in->fingerprint)
    in->fingerprint = g_strdup(g_checksum_get_string(in->sum));
  return in->fingerprint;
}

char *
vfd_warm_load(const char *memo_path, const char *fingerprint)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  char *p, *nl;
  gint64 expires = -1;

  if (!g_file_get_contents(memo_path, &text, &len, NULL) || len > MEMO_MAX || strlen(text) != len)
    return NULL;
  p = text;
  /* header lines, up to "answer" */
  for (guint line = 0; (nl = strchr(p, '\n')); line++, p = nl + 1) {
    *nl = '\0';
    if (line == 0) {
      if (!g_str_equal(p, MEMO_MAGIC))
        return NULL;
    } else if (line == 1) {
      if (!g_str_has_prefix(p, "fingerprint ") || !g_str_equal(p + strlen("fingerprint "), fingerprint))
        return NULL;
    } else if (line == 2) {
      if (!g_str_has_prefix(p, "expires ") ||
          !g_ascii_string_to_signed(p + strlen("expires "), 10, 0, G_MAXINT64, &expires, NULL))
        return NULL;
      if (expires != 0 && g_get_real_time() / G_USEC_PER_SEC >= expires)
        return NULL;
    } else if (g_str_equal(p, "answer")) {
      return expires >= 0 ? g_strdup(nl + 1) : NULL;
    } else if (g_str_has_prefix(p, "output\t")) {
      g_auto(GStrv) f = g_strsplit(p + strlen("output\t"), "\t", 3);
      g_autofree char *id = NULL, *path = NULL, *now = NULL;

      if (g_strv_length(f) != 2)
        return NULL;
      id = g_strcompress(f[0]);
      path = g_strcompress(f[1]);
      now = file_identity(path);
      if (!g_str_equal(id, now))
        return NULL;
    } else {
      return NULL;
    }
  }
  return NULL;
}

gboolean
vfd_warm_store(const char *memo_path, const char *fingerprint, gint64 expires, const char *const *outputs,
               const char *answer, GError **error)
{
  g_autoptr(GString) s = g_string_new(MEMO_MAGIC "\n");
  g_autofree char *dir = g_path_get_dirname(memo_path);

  g_string_append_printf(s, "fingerprint %s\nexpires %" G_GINT64_FORMAT "\n", fingerprint, expires);
  for (const char *const *o = outputs; o && *o; o++) {
    g_autofree char *id = file_identity(*o);
    g_autofree char *eid = g_strescape(id, NULL), *epath = g_strescape(*o, NULL);
    g_string_append_printf(s, "output\t%s\t%s\n", eid, epath);
  }
  g_string_append_printf(s, "answer\n%s", answer ? answer : "");
  if (g_mkdir_with_parents(dir, 0755) < 0) {
    int e = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot create %s: %s", dir, g_strerror(e));
    return FALSE;
  }
  return g_file_set_contents_full(memo_path, s->str, (gssize) s->len, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}

void
vfd_warm_forget(const char *memo_path)
{
  (void) unlink(memo_path);
}
