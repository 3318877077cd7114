/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stage.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <libkmod.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "initramfs.h"

#define MANIFEST_PATH "/etc/vfiod/manifest"
#define VERSION_PATH "/etc/vfiod/version"
#define FIRMWARE_IMAGE_DIR "/lib/firmware"
#define READ_CHUNK (256 * 1024)

typedef struct kmod_ctx KmodCtx;
typedef struct kmod_module KmodModule;
typedef struct kmod_list KmodList;

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

/* One file of the image besides /init. */
typedef struct {
  char *source; /* host path */
  char *dest;   /* image path */
} StagedFile;

static void
staged_file_free(StagedFile *f)
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

/* A module on its way into the image. */
typedef struct {
  char *name;       /* kmod's name, e.g. "nvidia_uvm" */
  char *dest;       /* image path */
  GPtrArray *params; /* "KEY=VALUE" */
} StagedModule;

static void
staged_module_free(StagedModule *m)
{
  g_free(m->name);
  g_free(m->dest);
  g_ptr_array_unref(m->params);
  g_free(m);
}

typedef enum { VISITING = 1, DONE = 2 } VisitState;

typedef struct {
  const VfdStageRequest *req;
  KmodCtx *kmod;
  char *modules_root;   /* real path of modules_dir */
  GHashTable *state;    /* module name -> VisitState */
  GHashTable *by_name;  /* module name -> StagedModule* (in @order) */
  GPtrArray *order;     /* StagedModule*, dependencies first */
  GPtrArray *files;     /* StagedFile*: modules then firmware */
} Stager;

static void
stager_clear(Stager *s)
{
  g_clear_pointer(&s->kmod, kmod_unref);
  g_clear_pointer(&s->modules_root, g_free);
  g_clear_pointer(&s->state, g_hash_table_unref);
  g_clear_pointer(&s->by_name, g_hash_table_unref);
  g_clear_pointer(&s->order, g_ptr_array_unref);
  g_clear_pointer(&s->files, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Stager, stager_clear)

void
vfd_stage_result_free(VfdStageResult *result)
{
  if (!result)
    return;
  g_free(result->path);
  g_free(result->stamp);
  g_strfreev(result->modules);
  g_free(result->manifest);
  g_free(result);
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
      staged_module_free(m);
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

static gboolean
stage_modules(Stager *s, GError **error)
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
static gboolean
add_params(Stager *s, GError **error)
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

static gboolean
stage_firmware(Stager *s, GError **error)
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

/* The manifest; with @stamp NULL, without its stamp line (what is hashed). */
static char *
make_manifest(Stager *s, const char *stamp, gboolean firmware)
{
  GString *m = g_string_new("vfiod-manifest 1\n");

  g_string_append_printf(m, "kernel %s\n", s->req->kernel_release);
  g_string_append_printf(m, "nvidia-driver %s\n", s->req->gpu ? s->req->nvidia_version : "-");
  if (stamp)
    g_string_append_printf(m, "stamp %s\n", stamp);
  for (guint i = 0; s->order && i < s->order->len; i++) {
    StagedModule *mod = s->order->pdata[i];

    g_string_append_printf(m, "module %s", mod->dest);
    for (guint j = 0; j < mod->params->len; j++)
      g_string_append_printf(m, " %s", (const char *) mod->params->pdata[j]);
    g_string_append_c(m, '\n');
  }
  if (firmware)
    g_string_append(m, "firmware " FIRMWARE_IMAGE_DIR "\n");
  return g_string_free(m, FALSE);
}

/* Feeds "<dest>\0<size>\0<bytes>" of @source into @sum. */
static gboolean
hash_file(GChecksum *sum, const char *source, const char *dest, GError **error)
{
  g_autofree guchar *buf = NULL;
  g_autofree char *size = NULL;
  struct stat st;
  goffset done = 0;
  int fd = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0 || fstat(fd, &st) < 0) {
    int errsv = errno;
    if (fd >= 0)
      close(fd);
    g_set_error(error, G_IO_ERROR, errsv == ELOOP ? G_IO_ERROR_INVALID_ARGUMENT : g_io_error_from_errno(errsv),
                "cannot read '%s': %s", source, errsv == ELOOP ? "it is a symlink" : g_strerror(errsv));
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not a regular file", source);
    return FALSE;
  }
  size = g_strdup_printf("%" G_GOFFSET_FORMAT, (goffset) st.st_size);
  g_checksum_update(sum, (const guchar *) dest, (gssize) strlen(dest) + 1);
  g_checksum_update(sum, (const guchar *) size, (gssize) strlen(size) + 1);
  buf = g_malloc(READ_CHUNK);
  for (;;) {
    ssize_t n = read(fd, buf, READ_CHUNK);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      close(fd);
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot read '%s': %s", source,
                  g_strerror(errsv));
      return FALSE;
    }
    if (n == 0)
      break;
    g_checksum_update(sum, buf, n);
    done += n;
  }
  close(fd);
  if (done != st.st_size) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "'%s' changed size while being read", source);
    return FALSE;
  }
  return TRUE;
}

static char *
compute_stamp(Stager *s, const char *manifest_body, GError **error)
{
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);

  g_checksum_update(sum, (const guchar *) "vfiod-stamp 1\nvfiod " VFIOD_VERSION "\n", -1);
  g_checksum_update(sum, (const guchar *) manifest_body, (gssize) strlen(manifest_body) + 1);
  if (!hash_file(sum, s->req->guest_init, "/init", error))
    return NULL;
  for (guint i = 0; i < s->files->len; i++) {
    StagedFile *f = s->files->pdata[i];

    if (!hash_file(sum, f->source, f->dest, error))
      return NULL;
  }
  return g_strdup(g_checksum_get_string(sum));
}

/* A temporary directory removed (with its files) when cleared. */
typedef struct {
  char *path;
  GPtrArray *files;
} TmpDir;

static void
tmp_dir_clear(TmpDir *t)
{
  for (guint i = 0; t->files && i < t->files->len; i++)
    g_unlink(t->files->pdata[i]);
  if (t->path)
    g_rmdir(t->path);
  g_clear_pointer(&t->path, g_free);
  g_clear_pointer(&t->files, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TmpDir, tmp_dir_clear)

static char *
tmp_dir_write(TmpDir *t, const char *name, const char *content, GError **error)
{
  char *path = g_build_filename(t->path, name, NULL);

  g_ptr_array_add(t->files, path);
  if (!g_file_set_contents_full(path, content, -1, G_FILE_SET_CONTENTS_NONE, 0644, error))
    return NULL;
  return path;
}

/* Copies @from to @to through a temporary file and a rename. */
static gboolean
copy_atomically(const char *from, const char *to, GError **error)
{
  g_autoptr(GFile) src = g_file_new_for_path(from);
  g_autofree char *dir = g_path_get_dirname(to);
  g_autofree char *base = g_path_get_basename(to);
  g_autofree char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
  g_autoptr(GFile) dst = NULL;
  int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);

  if (fd < 0) {
    int errsv = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create a temporary file in '%s': %s",
                dir, g_strerror(errsv));
    return FALSE;
  }
  close(fd);
  dst = g_file_new_for_path(tmp);
  if (!g_file_copy(src, dst, G_FILE_COPY_OVERWRITE | G_FILE_COPY_NOFOLLOW_SYMLINKS, NULL, NULL, NULL, error) ||
      g_chmod(tmp, 0644) < 0 || g_rename(tmp, to) < 0) {
    int errsv = errno;
    g_unlink(tmp);
    if (error && !*error)
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot write '%s': %s", to,
                  g_strerror(errsv));
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_request(const VfdStageRequest *req, GError **error)
{
  const char *missing = NULL;
  gboolean want_modules = req->gpu || (req->modules && req->modules[0]);

  if (!req->guest_init)
    missing = "the guest-init path";
  else if (!req->kernel_release || !*req->kernel_release)
    missing = "the guest kernel release";
  else if (want_modules && !req->modules_dir)
    missing = "a modules directory";
  else if (req->gpu && (!req->nvidia_version || !*req->nvidia_version))
    missing = "the NVIDIA driver version (GPU support)";
  else if (req->gpu && !req->firmware_dir)
    missing = "a firmware directory (GPU support)";
  else if (!req->cache_dir && !req->output)
    missing = "a cache directory or an output path";
  if (missing) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "staging an initramfs needs %s", missing);
    return FALSE;
  }
  if (strpbrk(req->kernel_release, " /\n\t") || g_str_equal(req->kernel_release, ".") ||
      g_str_equal(req->kernel_release, "..")) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not a kernel release",
                req->kernel_release);
    return FALSE;
  }
  if (req->gpu && (strpbrk(req->nvidia_version, " /\n\t") || g_str_equal(req->nvidia_version, ".") ||
                   g_str_equal(req->nvidia_version, ".."))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not an NVIDIA driver version",
                req->nvidia_version);
    return FALSE;
  }
  if (!req->gpu && req->firmware_dir) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "a firmware directory is only used with GPU support (firmware of the pinned NVIDIA driver)");
    return FALSE;
  }
  if (!want_modules && req->params && req->params[0]) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "module parameter '%s' given, but no module is staged", req->params[0]);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfd_stage_build(const VfdStageRequest *req, VfdStageResult **ret, GError **error)
{
  g_auto(Stager) s = { 0 };
  g_auto(TmpDir) tmp = { 0 };
  g_autofree char *body = NULL;
  g_autofree char *stamp = NULL;
  g_autofree char *manifest = NULL;
  g_autofree char *version = NULL;
  g_autofree char *image = NULL;
  g_autoptr(VfdStageResult) result = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  gboolean want_modules;
  struct stat st;

  g_return_val_if_fail(req != NULL && ret != NULL, FALSE);
  g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

  if (!check_request(req, error))
    return FALSE;
  want_modules = req->gpu || (req->modules && req->modules[0]);
  s.req = req;
  s.state = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  s.by_name = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  s.order = g_ptr_array_new_with_free_func((GDestroyNotify) staged_module_free);
  s.files = g_ptr_array_new_with_free_func((GDestroyNotify) staged_file_free);

  if (lstat(req->guest_init, &st) < 0 || !S_ISREG(st.st_mode)) {
    int errsv = errno;
    gboolean exists = g_file_test(req->guest_init, G_FILE_TEST_EXISTS) ||
                      g_file_test(req->guest_init, G_FILE_TEST_IS_SYMLINK);
    g_set_error(error, G_IO_ERROR, exists ? G_IO_ERROR_INVALID_ARGUMENT : g_io_error_from_errno(errsv),
                "guest-init '%s': %s", req->guest_init,
                exists ? "not a regular file (symlinks are refused)" : g_strerror(errsv));
    return FALSE;
  }
  if (want_modules && !stage_modules(&s, error))
    return FALSE;
  if (!add_params(&s, error))
    return FALSE;
  if (req->gpu && !stage_firmware(&s, error))
    return FALSE;

  body = make_manifest(&s, NULL, req->gpu);
  stamp = compute_stamp(&s, body, error);
  if (!stamp)
    return FALSE;
  manifest = make_manifest(&s, stamp, req->gpu);
  version = g_strdup_printf("stamp %s\nvfiod %s\n", stamp, VFIOD_VERSION);

  result = g_new0(VfdStageResult, 1);
  result->stamp = g_strdup(stamp);
  result->manifest = g_strdup(manifest);
  for (guint i = 0; i < s.order->len; i++)
    g_ptr_array_add(names, g_strdup(((StagedModule *) s.order->pdata[i])->name));
  g_ptr_array_add(names, NULL);
  result->modules = (GStrv) g_ptr_array_free(g_steal_pointer(&names), FALSE);

  if (req->cache_dir) {
    if (g_mkdir_with_parents(req->cache_dir, 0755) < 0) {
      int errsv = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create cache directory '%s': %s",
                  req->cache_dir, g_strerror(errsv));
      return FALSE;
    }
    image = g_strdup_printf("%s/%s.cpio.gz", req->cache_dir, stamp);
    if (lstat(image, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
      result->cached = TRUE;
  } else {
    image = g_strdup(req->output);
  }

  if (!result->cached) {
    g_autoptr(GArray) extra = g_array_new(FALSE, TRUE, sizeof(VfdInitramfsFile));
    g_autofree char *dir = g_path_get_dirname(image);
    const char *manifest_file, *version_file;

    tmp.files = g_ptr_array_new_with_free_func(g_free);
    tmp.path = g_strdup_printf("%s/.stage.XXXXXX", dir);
    if (!g_mkdtemp_full(tmp.path, 0700)) {
      int errsv = errno;
      g_clear_pointer(&tmp.path, g_free);
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot create a temporary directory in '%s': %s",
                  dir, g_strerror(errsv));
      return FALSE;
    }
    if (!(manifest_file = tmp_dir_write(&tmp, "manifest", manifest, error)) ||
        !(version_file = tmp_dir_write(&tmp, "version", version, error)))
      return FALSE;
    for (guint i = 0; i < s.files->len; i++) {
      StagedFile *f = s.files->pdata[i];
      VfdInitramfsFile e = { f->source, f->dest, 0644 };
      g_array_append_val(extra, e);
    }
    {
      VfdInitramfsFile m = { manifest_file, MANIFEST_PATH, 0644 };
      VfdInitramfsFile v = { version_file, VERSION_PATH, 0644 };
      g_array_append_val(extra, m);
      g_array_append_val(extra, v);
    }
    if (!vfd_initramfs_build(image, req->guest_init, (const VfdInitramfsFile *) (void *) extra->data, extra->len,
                             error))
      return FALSE;
  }

  if (req->cache_dir && req->output) {
    if (!copy_atomically(image, req->output, error))
      return FALSE;
    result->path = g_strdup(req->output);
  } else {
    result->path = g_steal_pointer(&image);
  }
  *ret = g_steal_pointer(&result);
  return TRUE;
}
