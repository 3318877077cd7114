/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a guest image holds besides /init: kernel modules resolved with
 * libkmod (dependencies first, each checked against the pinned kernel),
 * their parameters, and the NVIDIA driver's firmware. */
#include "stage-private.h"
#include "path.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libkmod.h>
#include <string.h>
#include <sys/stat.h>

static void
kmod_module_unref_list_(KmodList *l)
{
  kmod_module_unref_list(l);
}

static void
kmod_module_info_free_list_(KmodList *l)
{
  kmod_module_info_free_list(l);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmodCtx, kmod_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmodModule, kmod_module_unref)

/* Two list types share struct kmod_list; distinct cleanups via wrappers. */
typedef KmodList KmodModuleList;
typedef KmodList KmodInfoList;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmodModuleList, kmod_module_unref_list_)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmodInfoList, kmod_module_info_free_list_)

void
vfd_staged_file_free(StagedFile *f)
{
  g_free(f->source);
  g_free(f->dest);
  g_free(f);
}

static StagedFile *
staged_file_new(const char *source, const char *dest)
{
  StagedFile *f = g_new0(StagedFile, 1);

  f->source = g_strdup(source);
  f->dest = g_strdup(dest);
  return f;
}

void
vfd_staged_module_free(StagedModule *m)
{
  g_free(m->name);
  g_free(m->dest);
  g_ptr_array_unref(m->params);
  g_free(m);
}

void
vfd_stager_clear(Stager *s)
{
  g_clear_pointer(&s->kmod, kmod_unref);
  g_clear_pointer(&s->modules_root, g_free);
  g_clear_pointer(&s->state, g_hash_table_unref);
  g_clear_pointer(&s->by_name, g_hash_table_unref);
  g_clear_pointer(&s->order, g_ptr_array_unref);
  g_clear_pointer(&s->files, g_ptr_array_unref);
}

/* libkmod's messages go to the debug log, not to stderr. */
static void
kmod_log(void *data, int priority, const char *file, int line, const char *fn, const char *format,
         va_list args)
{
  g_autofree char *msg = g_strdup_vprintf(format, args);

  g_debug("libkmod: %s", g_strchomp(msg));
}

/* The real path of a source tree's root, which must be a directory. */
static char *
tree_root(const char *dir, const char *what, GError **error)
{
  g_autofree char *real = NULL;
  struct stat st;

  if (!vfd_path_check(dir, VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s '%s' has a '..' path component",
                what, dir);
    return NULL;
  }
  real = realpath(dir, NULL);
  if (!real || stat(real, &st) < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "%s '%s': %s", what, dir,
                g_strerror(errsv));
    return NULL;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s '%s' is not a directory", what, dir);
    return NULL;
  }
  return g_steal_pointer(&real);
}

/* Checks that @path (a module or firmware file under @root) is a regular
 * file, not a symlink, without "..", and really inside @root; returns its
 * path relative to @root. */
static const char *
check_source(const char *root, const char *path, const char *what, GError **error)
{
  g_autofree char *real = NULL;
  gsize rlen = strlen(root);
  struct stat st;

  if (!vfd_path_check(path, VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "%s '%s' has a '..' path component: refused", what, path);
    return NULL;
  }
  if (lstat(path, &st) < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "%s '%s': %s", what, path,
                g_strerror(errsv));
    return NULL;
  }
  if (S_ISLNK(st.st_mode)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s '%s' is a symlink: refused", what, path);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s '%s' is not a regular file: refused",
                what, path);
    return NULL;
  }
  real = realpath(path, NULL);
  if (!real || strncmp(path, root, rlen) != 0 || path[rlen] != '/' || strncmp(real, root, rlen) != 0 ||
      real[rlen] != '/') {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "%s '%s' leaves its source tree '%s' (real path '%s'): refused", what, path, root,
                real ? real : "?");
    return NULL;
  }
  /* The image path goes into the manifest: fields separated by spaces,
   * printable ASCII only. */
  for (const char *c = path + rlen + 1; *c; c++) {
    if (!g_ascii_isgraph(*c)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "%s '%s' has a space, control or non-ASCII character in its name: refused", what, path);
      return NULL;
    }
  }
  return path + rlen + 1;
}

static gboolean
is_module_name(const char *s)
{
  if (!s || !*s || strlen(s) > 64)
    return FALSE;
  for (; *s; s++)
    if (!(g_ascii_isalnum(*s) || *s == '_' || *s == '-'))
      return FALSE;
  return TRUE;
}

static char *
normalize_name(const char *s)
{
  char *n = g_strdup(s);

  g_strdelimit(n, "-", '_');
  return n;
}

/* The value of @key in @mod's modinfo (the first one), or NULL. */
static char *
module_info(KmodModule *mod, const char *key, GError **error)
{
  g_autoptr(KmodInfoList) info = NULL;
  KmodList *l;
  int r = kmod_module_get_info(mod, &info);

  if (r < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "module '%s': cannot read its modinfo: %s",
                kmod_module_get_path(mod), g_strerror(-r));
    return NULL;
  }
  kmod_list_foreach(l, info) {
    if (g_str_equal(kmod_module_info_get_key(l), key))
      return g_strdup(kmod_module_info_get_value(l));
  }
  return g_strdup("");
}

/* Checks one module file and records it (not yet in order). */
static StagedModule *
check_module(Stager *s, KmodModule *mod, GError **error)
{
  const char *path = kmod_module_get_path(mod);
  const char *rel;
  g_autofree char *vermagic = NULL;
  const char *release = s->req->kernel_release;
  gsize rlen = strlen(release);
  StagedModule *m;

  rel = check_source(s->modules_root, path, "module", error);
  if (!rel)
    return NULL;
  if (!g_str_has_suffix(rel, ".ko")) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "module '%s' is not an uncompressed .ko (guest-init loads .ko files as they are)", path);
    return NULL;
  }
  vermagic = module_info(mod, "vermagic", error);
  if (!vermagic)
    return NULL;
  if (strncmp(vermagic, release, rlen) != 0 || (vermagic[rlen] != '\0' && vermagic[rlen] != ' ')) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "module '%s' was built for another kernel: vermagic '%s', the pinned guest kernel is '%s'",
                path, *vermagic ? g_strchomp(vermagic) : "(none)", release);
    return NULL;
  }
  m = g_new0(StagedModule, 1);
  m->name = g_strdup(kmod_module_get_name(mod));
  m->dest = g_strdup_printf("/lib/modules/%s/%s", release, rel);
  m->params = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(s->files, staged_file_new(path, m->dest));
  return m;
}

/* Depth-first: @mod's dependencies (modules.dep order), then @mod. */
static gboolean
visit(Stager *s, KmodModule *mod, const char *needed_by, GError **error)
{
  const char *name = kmod_module_get_name(mod);
  VisitState st = GPOINTER_TO_INT(g_hash_table_lookup(s->state, name));
  g_autoptr(KmodModuleList) deps = NULL;
  StagedModule *m;
  KmodList *l;

  if (st == DONE)
    return TRUE;
  if (st == VISITING) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "module '%s' depends on itself (a dependency cycle in modules.dep)", name);
    return FALSE;
  }
  if (!kmod_module_get_path(mod)) {
    if (needed_by)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                  "module '%s' (needed by '%s') is not in %s", name, needed_by, s->modules_root);
    else
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "module '%s' is not in %s", name, s->modules_root);
    return FALSE;
  }
  g_hash_table_insert(s->state, g_strdup(name), GINT_TO_POINTER(VISITING));
  /* Check the module itself before reading anything of its dependencies. */
  m = check_module(s, mod, error);
  if (!m)
    return FALSE;
  deps = kmod_module_get_dependencies(mod);
  kmod_list_foreach(l, deps) {
    g_autoptr(KmodModule) dep = kmod_module_get_module(l);

    if (!visit(s, dep, name, error)) {
      vfd_staged_module_free(m);
      return FALSE;
    }
  }
  g_hash_table_insert(s->state, g_strdup(name), GINT_TO_POINTER(DONE));
  g_hash_table_insert(s->by_name, g_strdup(name), m);
  g_ptr_array_add(s->order, m);
  return TRUE;
}

/* Looks @given up (a name; kmod also maps '-' to '_'). Returns the module,
 * or NULL without error when it is built into the kernel, or NULL with
 * G_IO_ERROR_NOT_FOUND when unknown and @required. */
static KmodModule *
lookup(Stager *s, const char *given, gboolean required, gboolean *ret_builtin, GError **error)
{
  g_autoptr(KmodModuleList) list = NULL;
  int r;

  *ret_builtin = FALSE;
  if (!is_module_name(given)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "'%s' is not a module name (letters, digits, '_' and '-')", given);
    return NULL;
  }
  r = kmod_module_new_from_lookup(s->kmod, given, &list);
  if (r < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "looking up module '%s' in %s: %s", given,
                s->modules_root, g_strerror(-r));
    return NULL;
  }
  if (!list) {
    if (required)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "module '%s' is not in %s", given,
                  s->modules_root);
    return NULL;
  }
  {
    KmodModule *mod = kmod_module_get_module(list);

    if (!kmod_module_get_path(mod)) {
      /* Known to the indexes but without a file: built into the kernel. */
      kmod_module_unref(mod);
      *ret_builtin = TRUE;
      return NULL;
    }
    return mod;
  }
}

static gboolean
stage_named(Stager *s, const char *given, gboolean required, GError **error)
{
  gboolean builtin = FALSE;
  g_autoptr(KmodModule) mod = lookup(s, given, required, &builtin, error);

  if (!mod) {
    if (builtin)
      g_info("module '%s' is built into %s: nothing to stage", given, s->req->kernel_release);
    return builtin || !required;
  }
  return visit(s, mod, NULL, error);
}

gboolean
vfd_stager_stage_modules(Stager *s, GError **error)
{
  const VfdStageRequest *req = s->req;
  static const char *const nvidia_extra[] = { "nvidia_modeset", "nvidia_uvm" };
  const char *null_config[] = { NULL };
  g_autofree char *dep_index = NULL;

  s->modules_root = tree_root(req->modules_dir, "modules directory", error);
  if (!s->modules_root)
    return FALSE;
  dep_index = g_build_filename(s->modules_root, "modules.dep.bin", NULL);
  if (!g_file_test(dep_index, G_FILE_TEST_IS_REGULAR)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "%s has no modules.dep.bin: run 'depmod -b ROOT %s' on the tree (ROOT holding lib/modules)",
                s->modules_root, req->kernel_release);
    return FALSE;
  }
  /* No configuration paths: the host's /etc/modprobe.d has no say. */
  s->kmod = kmod_new(s->modules_root, null_config);
  if (!s->kmod) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "libkmod cannot open %s", s->modules_root);
    return FALSE;
  }
  kmod_set_log_fn(s->kmod, kmod_log, NULL);

  if (req->gpu) {
    gboolean builtin = FALSE;
    g_autoptr(GError) local = NULL;
    g_autoptr(KmodModule) nvidia = lookup(s, "nvidia", FALSE, &builtin, &local);
    g_autofree char *version = NULL;

    if (!nvidia) {
      if (local) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                  "GPU support needs nvidia.ko, but it is not in %s (build it with "
                  "kernel-modules/build-nvidia-modules.sh)", s->modules_root);
      return FALSE;
    }
    if (!visit(s, nvidia, NULL, error))
      return FALSE;
    version = module_info(nvidia, "version", error);
    if (!version)
      return FALSE;
    if (!g_str_equal(version, req->nvidia_version)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "'%s' is NVIDIA driver version '%s', the pinned version is '%s'",
                  kmod_module_get_path(nvidia), version, req->nvidia_version);
      return FALSE;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(nvidia_extra); i++)
      if (!stage_named(s, nvidia_extra[i], FALSE, error))
        return FALSE;
  }
  for (const char *const *n = req->modules; n && *n; n++)
    if (!stage_named(s, *n, TRUE, error))
      return FALSE;
  return TRUE;
}

/* "MODULE:KEY=VALUE": a staged module, a non-empty KEY, printable ASCII
 * without spaces (the manifest separates fields with single spaces). */
gboolean
vfd_stager_add_params(Stager *s, GError **error)
{
  for (const char *const *p = s->req->params; p && *p; p++) {
    const char *colon = strchr(*p, ':');
    g_autofree char *mod = colon ? g_strndup(*p, (gsize) (colon - *p)) : NULL;
    g_autofree char *name = NULL;
    const char *kv = colon ? colon + 1 : NULL;
    const char *eq = kv ? strchr(kv, '=') : NULL;
    StagedModule *m;

    if (!mod || !is_module_name(mod) || !eq || eq == kv) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "module parameter '%s' is not MODULE:KEY=VALUE", *p);
      return FALSE;
    }
    for (const char *c = kv; *c; c++) {
      if (!g_ascii_isgraph(*c)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "module parameter '%s' has a space, control or non-ASCII character", *p);
        return FALSE;
      }
    }
    for (const char *c = kv; c < eq; c++) {
      if (!(g_ascii_isalnum(*c) || *c == '_' || *c == '-' || *c == '.')) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "module parameter '%s': '%.*s' is not a parameter name", *p, (int) (eq - kv), kv);
        return FALSE;
      }
    }
    name = normalize_name(mod);
    m = g_hash_table_lookup(s->by_name, name);
    if (!m) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "module parameter '%s' is for module '%s', which is not staged", *p, mod);
      return FALSE;
    }
    g_ptr_array_add(m->params, g_strdup(kv));
  }
  return TRUE;
}

static int
compare_strings(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Adds the regular files under @dir (real path inside @root) to @out,
 * sorted; refuses symlinks and special files anywhere below. */
static gboolean
collect_firmware(const char *root, const char *dir, GPtrArray *out, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = NULL;
  g_autoptr(GError) local = NULL;
  const char *n;

  d = g_dir_open(dir, 0, &local);
  if (!d) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "firmware directory '%s': %s", dir, local->message);
    return FALSE;
  }
  while ((n = g_dir_read_name(d)))
    g_ptr_array_add(names, g_strdup(n));
  g_ptr_array_sort(names, compare_strings);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
    struct stat st;

    if (lstat(path, &st) < 0) {
      int errsv = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "firmware '%s': %s", path,
                  g_strerror(errsv));
      return FALSE;
    }
    if (S_ISDIR(st.st_mode)) {
      if (!collect_firmware(root, path, out, error))
        return FALSE;
      continue;
    }
    if (!check_source(root, path, "firmware", error))
      return FALSE;
    g_ptr_array_add(out, g_steal_pointer(&path));
  }
  return TRUE;
}

gboolean
vfd_stager_stage_firmware(Stager *s, GError **error)
{
  const VfdStageRequest *req = s->req;
  g_autofree char *root = NULL;
  g_autofree char *vendor_dir = NULL;
  g_autofree char *version_dir = NULL;
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
  struct stat st;

  root = tree_root(req->firmware_dir, "firmware directory", error);
  if (!root)
    return FALSE;
  vendor_dir = g_build_filename(root, "nvidia", NULL);
  version_dir = g_build_filename(vendor_dir, req->nvidia_version, NULL);
  /* The two directories below the root must be real directories too. */
  for (const char *d = vendor_dir; d; d = d == vendor_dir ? version_dir : NULL) {
    if (lstat(d, &st) < 0) {
      int errsv = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
                  "no firmware for NVIDIA driver %s: '%s': %s", req->nvidia_version, d, g_strerror(errsv));
      return FALSE;
    }
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "firmware directory '%s' is %s: refused", d,
                  S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
      return FALSE;
    }
  }
  if (!collect_firmware(root, version_dir, found, error))
    return FALSE;
  if (found->len == 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no firmware files in '%s' (NVIDIA driver %s)",
                version_dir, req->nvidia_version);
    return FALSE;
  }
  for (guint i = 0; i < found->len; i++) {
    const char *path = found->pdata[i];
    g_autofree char *dest = g_strdup_printf(FIRMWARE_IMAGE_DIR "/%s", path + strlen(root) + 1);

    g_ptr_array_add(s->files, staged_file_new(path, dest));
  }
  return TRUE;
}
