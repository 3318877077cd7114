/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "image.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pins.h"
#include "stage.h"
#include "warm.h"

const char *const vfd_image_modules[] = {
  "virtio_mmio", "virtio_pci", "virtio_net", "vmw_vsock_virtio_transport", "virtio_blk", "ext4",
  "button",      "evdev",      "qemu_fw_cfg", "overlay", NULL,
};
const char *const vfd_image_gpu_modules[] = { "crc32c_generic", "erofs", "drm", "video", NULL };

void
vfd_image_result_free(VfdImageResult *r)
{
  if (!r)
    return;
  if (r->image)
    json_node_unref(r->image);
  g_free(r);
}

gboolean
vfd_image_check_output_dir(const char *dir, GError **error)
{
  struct stat st;
  g_autofree char *trimmed = NULL;

  if (!dir || !*dir) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "--output: an empty directory name");
    return FALSE;
  }
  if (!vfd_path_check(dir, VFD_PATH_NO_DOTDOT)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "--output '%s': a '..' component is not allowed (name the directory itself)", dir);
    return FALSE;
  }
  /* "DIR/" would make lstat() follow a link named DIR */
  trimmed = g_strdup(dir);
  while (strlen(trimmed) > 1 && g_str_has_suffix(trimmed, "/"))
    trimmed[strlen(trimmed) - 1] = '\0';
  if (lstat(trimmed, &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "--output '%s' is a symbolic link: name the directory itself", dir);
      return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "--output '%s' exists and is not a directory",
                  dir);
      return FALSE;
    }
  } else if (errno != ENOENT) {
    int e = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "--output '%s': %s", dir, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

/* Runs @argv (a script) with @env_pins as VFIOD_PINS when set; its stdout
 * into *@ret_stdout when asked, its stderr shown (or, @quiet, kept for the
 * error). @what names the step in errors. */
static gboolean
run_script(const char *what, const char *const *argv, const char *env_pins, gboolean quiet, char **ret_stdout,
           GError **error)
{
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_NONE;
  g_autoptr(GSubprocessLauncher) l = NULL;
  g_autoptr(GSubprocess) p = NULL;
  g_autofree char *out = NULL, *err = NULL;
  int status;

  if (!g_file_test(argv[0], G_FILE_TEST_IS_EXECUTABLE)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: %s is missing or not executable", what, argv[0]);
    return FALSE;
  }
  if (ret_stdout)
    flags |= G_SUBPROCESS_FLAGS_STDOUT_PIPE;
  else
    flags |= G_SUBPROCESS_FLAGS_STDOUT_SILENCE;
  if (quiet)
    flags |= G_SUBPROCESS_FLAGS_STDERR_PIPE;
  l = g_subprocess_launcher_new(flags);
  if (env_pins)
    g_subprocess_launcher_setenv(l, "VFIOD_PINS", env_pins, TRUE);
  p = g_subprocess_launcher_spawnv(l, argv, error);
  if (!p || !g_subprocess_communicate_utf8(p, NULL, NULL, ret_stdout ? &out : NULL, quiet ? &err : NULL, error)) {
    g_prefix_error(error, "%s: ", what);
    return FALSE;
  }
  status = g_subprocess_get_if_exited(p) ? g_subprocess_get_exit_status(p) : 128 + g_subprocess_get_term_sig(p);
  if (status != 0) {
    /* the scripts: 2 is bad usage or a missing tool, 1 a step that failed
     * (a download without network, a refused version) */
    g_set_error(error, G_IO_ERROR, status == 2 ? G_IO_ERROR_NOT_FOUND : G_IO_ERROR_FAILED,
                "%s: %s failed (exit %d)%s%s%s", what, argv[0], status,
                status == 2 ? ": a missing tool or bad usage" : "",
                err && *err ? ":\n" : " (see its messages above)", err && *err ? g_strchomp(err) : "");
    return FALSE;
  }
  if (ret_stdout)
    *ret_stdout = g_steal_pointer(&out);
  return TRUE;
}

static gint64
ms_since(gint64 t0)
{
  return (g_get_monotonic_time() - t0) / 1000;
}

/* SHA-256 (hex) of the file at @path. */
static char *
file_sha256(const char *path, goffset *ret_size, GError **error)
{
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_autofree guchar *buf = g_malloc(1 << 20);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  goffset size = 0;
  ssize_t n;

  if (fd < 0) {
    int e = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s: %s", path, g_strerror(e));
    return NULL;
  }
  while ((n = read(fd, buf, 1 << 20)) > 0) {
    g_checksum_update(sum, buf, (gsize) n);
    size += n;
  }
  close(fd);
  if (n < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "reading %s failed", path);
    return NULL;
  }
  if (ret_size)
    *ret_size = size;
  return g_strdup(g_checksum_get_string(sum));
}

/* Copies @src (a regular file, followed: cache entries may be links) into
 * @dirfd as @name, through a temporary name renamed over it; mode 0644. */
static gboolean
install_file(int dirfd, const char *dir, const char *src, const char *name, GError **error)
{
  g_autofree char *tmp = g_strdup_printf(".%s.tmp-%d", name, (int) getpid());
  g_autofree guchar *buf = NULL;
  int in = open(src, O_RDONLY | O_CLOEXEC);
  int out = -1;
  struct stat st;
  ssize_t n = 0;
  int e = 0;

  if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
    e = in < 0 ? errno : EINVAL;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s: %s", src,
                e == EINVAL ? "not a regular file" : g_strerror(e));
    if (in >= 0)
      close(in);
    return FALSE;
  }
  (void) unlinkat(dirfd, tmp, 0);
  out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0)
    goto fail;
  /* copy_file_range (reflinks on filesystems that can), else read/write */
  for (;;) {
    n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
    if (n <= 0)
      break;
  }
  if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
    buf = g_malloc(1 << 20);
    while ((n = read(in, buf, 1 << 20)) > 0)
      if (write(out, buf, (size_t) n) != n) {
        n = -1;
        break;
      }
  }
  if (n < 0 || fchmod(out, 0644) < 0 || fsync(out) < 0 || close(out) < 0) {
    out = -1;
    goto fail;
  }
  out = -1;
  if (renameat(dirfd, tmp, dirfd, name) < 0)
    goto fail;
  close(in);
  return TRUE;

fail:
  e = errno;
  if (out >= 0)
    close(out);
  close(in);
  (void) unlinkat(dirfd, tmp, 0);
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot install %s as %s/%s: %s", src, dir, name,
              g_strerror(e));
  return FALSE;
}

/* Writes @text to @dirfd/@name through a temporary name. */
static gboolean
install_text(int dirfd, const char *dir, const char *name, const char *text, GError **error)
{
  g_autofree char *tmp = g_strdup_printf(".%s.tmp-%d", name, (int) getpid());
  gsize len = strlen(text);
  int fd;

  (void) unlinkat(dirfd, tmp, 0);
  fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, len) != (ssize_t) len || fsync(fd) < 0 || close(fd) < 0 ||
      renameat(dirfd, tmp, dirfd, name) < 0) {
    int e = errno;
    (void) unlinkat(dirfd, tmp, 0);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot write %s/%s: %s", dir, name, g_strerror(e));
    return FALSE;
  }
  return TRUE;
}

/* TRUE when @dirfd holds image.json with @key and each of @names with the
 * size @sizes says: the very image, nothing to copy. */
static gboolean
already_installed(int dirfd, const char *key, const char *const *names, const goffset *sizes)
{
  g_autoptr(JsonParser) p = json_parser_new();
  g_autofree char *text = NULL;
  JsonObject *o;
  int fd = openat(dirfd, VFD_IMAGE_JSON, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  char buf[65536];
  ssize_t n;

  if (fd < 0)
    return FALSE;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return FALSE;
  buf[n] = '\0';
  if (!json_parser_load_from_data(p, buf, n, NULL) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
    return FALSE;
  o = json_node_get_object(json_parser_get_root(p));
  if (g_strcmp0(json_object_get_string_member_with_default(o, "key", ""), key) != 0)
    return FALSE;
  for (guint i = 0; names[i]; i++) {
    struct stat st;
    if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_size != sizes[i])
      return FALSE;
  }
  return TRUE;
}

static const char *
member_string(JsonObject *o, const char *name)
{
  return json_object_get_string_member_with_default(o, name, NULL);
}

/* ---- warm memos of the script steps (warm.h) ------------------------------- */

/* This machine's apt state, which the scripts resolve the pins and the
 * host packages against (apt-cache madison: the package lists, not dpkg's
 * status): the lists, the sources and the configuration. */
static void
add_host_apt_state(VfdWarmInputs *in)
{
  vfd_warm_inputs_add_value(in, "APT_CONFIG", g_getenv("APT_CONFIG"));
  vfd_warm_inputs_add_dir(in, "/var/lib/apt/lists", "_Packages");
  vfd_warm_inputs_add_file(in, "/etc/apt/sources.list");
  vfd_warm_inputs_add_dir(in, "/etc/apt/sources.list.d", NULL);
  vfd_warm_inputs_add_dir(in, "/etc/apt/apt.conf.d", NULL);
  vfd_warm_inputs_add_dir(in, "/etc/apt/preferences.d", NULL);
}

/* The pins file the scripts read: $VFIOD_PINS, else the scripts' pins.env. */
static char *
pins_file(const VfdImageRequest *req)
{
  const char *env = g_getenv("VFIOD_PINS");

  return env && *env ? g_strdup(env) : g_build_filename(req->scripts_dir, "pins.env", NULL);
}

/* What fetch-kernel.sh's answer depends on: itself, archive.sh, the pins,
 * the apt state (the pins resolve against it) and where it keeps the
 * kernel. Its outputs (kernel.env, vmlinuz, modules.dep) are the memo's. */
static VfdWarmInputs *
kernel_inputs(const VfdImageRequest *req, const char *kcache, const char *fetch)
{
  g_autoptr(VfdWarmInputs) in = vfd_warm_inputs_new("kernel");
  g_autofree char *archive = g_build_filename(req->scripts_dir, "scripts", "archive.sh", NULL);
  g_autofree char *pins = pins_file(req);

  vfd_warm_inputs_add_value(in, "cache", kcache);
  vfd_warm_inputs_add_value(in, "VFIOD_PINS", g_getenv("VFIOD_PINS"));
  vfd_warm_inputs_add_value(in, "VFIOD_APT_NO_UPDATE", g_getenv("VFIOD_APT_NO_UPDATE"));
  vfd_warm_inputs_add_file(in, fetch);
  vfd_warm_inputs_add_file(in, archive);
  vfd_warm_inputs_add_file(in, pins);
  add_host_apt_state(in);
  return g_steal_pointer(&in);
}

/* What build-driver-layer.sh's answer depends on (its header: the key is
 * over the kernel, the versions, the packages' versions and .debs, the
 * patches and the scripts; the package resolution over the package
 * lists): its arguments and environment, every file of kernel-modules/
 * and its patches/, archive.sh, versions.env, the kernel's pins
 * (@kernel_env), this machine's apt state, the private apt lists (or the
 * --debs directory). */
static VfdWarmInputs *
layer_inputs(const VfdImageRequest *req, const char *lcache, const char *lout, const char *kernel_env)
{
  g_autoptr(VfdWarmInputs) in = vfd_warm_inputs_new("driver-layer");
  g_autofree char *km = g_build_filename(req->scripts_dir, "kernel-modules", NULL);
  g_autofree char *patches = g_build_filename(km, "patches", NULL);
  g_autofree char *archive = g_build_filename(req->scripts_dir, "scripts", "archive.sh", NULL);
  const char *venv = g_getenv("VFIOD_VERSIONS");
  g_autofree char *versions = venv && *venv ? g_strdup(venv) : g_build_filename(req->scripts_dir, "versions.env", NULL);

  vfd_warm_inputs_add_value(in, "out", lout);
  vfd_warm_inputs_add_value(in, "cache", lcache);
  vfd_warm_inputs_add_value(in, "debs", req->debs_dir);
  vfd_warm_inputs_add_value(in, "VFIOD_VERSIONS", venv);
  vfd_warm_inputs_add_value(in, "VFIOD_NVIDIA_MIRROR", g_getenv("VFIOD_NVIDIA_MIRROR"));
  vfd_warm_inputs_add_value(in, "VFIOD_APT_NO_UPDATE", g_getenv("VFIOD_APT_NO_UPDATE"));
  vfd_warm_inputs_add_file(in, kernel_env);
  vfd_warm_inputs_add_file(in, versions);
  vfd_warm_inputs_add_file(in, archive);
  vfd_warm_inputs_add_dir(in, km, NULL);
  vfd_warm_inputs_add_dir(in, patches, NULL);
  add_host_apt_state(in);
  if (req->debs_dir) {
    vfd_warm_inputs_add_dir(in, req->debs_dir, NULL);
  } else {
    g_autofree char *apt = g_build_filename(lcache, "apt", NULL);
    g_autofree char *lists = g_build_filename(apt, "lists", NULL);
    g_autofree char *sources = g_build_filename(apt, "sources.list", NULL);
    g_autofree char *stamp = g_build_filename(apt, "lists.stamp", NULL);
    vfd_warm_inputs_add_dir(in, lists, "_Packages");
    vfd_warm_inputs_add_file(in, sources);
    vfd_warm_inputs_add_file(in, stamp);
  }
  return g_steal_pointer(&in);
}

/* When the layer's memo must expire: build-driver-layer.sh refreshes its
 * private package lists (apt-get update) once they are a day old
 * (nvidia-apt.sh, lists.stamp), so the answer holds until then; 0 (never)
 * with --debs or VFIOD_APT_NO_UPDATE=1; -1 when there is no stamp (no
 * memo). */
static gint64
layer_expiry(const VfdImageRequest *req, const char *lcache)
{
  g_autofree char *stamp = g_build_filename(lcache, "apt", "lists.stamp", NULL);
  struct stat st;

  if (req->debs_dir || g_strcmp0(g_getenv("VFIOD_APT_NO_UPDATE"), "1") == 0)
    return 0;
  if (stat(stamp, &st) < 0)
    return -1;
  return (gint64) st.st_mtime + 24 * 3600;
}

/* The files a layer answer (build-driver-layer.sh --json) names: OUT's
 * links and what they point to in CACHE/KEY, and CACHE/KEY/complete. */
static GPtrArray *
layer_outputs(JsonObject *layer)
{
  static const char *const links[] = { "image", "tree", "manifest", "modules_dir", "firmware_dir" };
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  const char *res = json_object_get_string_member_with_default(layer, "cache", NULL);

  for (guint i = 0; i < G_N_ELEMENTS(links); i++) {
    const char *p = json_object_get_string_member_with_default(layer, links[i], NULL);
    char *real = p ? realpath(p, NULL) : NULL;
    if (p)
      g_ptr_array_add(out, g_strdup(p));
    if (real)
      g_ptr_array_add(out, g_strdup(real));
    free(real);
  }
  if (res)
    g_ptr_array_add(out, g_build_filename(res, "complete", NULL));
  g_ptr_array_add(out, NULL);
  return out;
}

gboolean
vfd_image_build(const VfdImageRequest *req, VfdImageResult **ret, GError **error)
{
  g_autoptr(VfdImageResult) res = g_new0(VfdImageResult, 1);
  g_autofree char *kcache = g_build_filename(req->cache_dir, "kernel", NULL);
  g_autofree char *lcache = g_build_filename(req->cache_dir, "driver-layer", NULL);
  g_autofree char *lout = g_build_filename(req->cache_dir, "layer-out", NULL);
  g_autofree char *icache = g_build_filename(req->cache_dir, "initramfs", NULL);
  g_autofree char *kernel_env = g_build_filename(kcache, "kernel.env", NULL);
  g_autofree char *vmlinuz = g_build_filename(kcache, "vmlinuz", NULL);
  g_autofree char *fetch = g_build_filename(req->scripts_dir, "tests", "lab", "fetch-kernel.sh", NULL);
  g_autofree char *layer_sh = g_build_filename(req->scripts_dir, "kernel-modules", "build-driver-layer.sh", NULL);
  g_autofree char *kmemo = g_build_filename(req->cache_dir, "warm", "kernel", NULL);
  g_autofree char *lmemo = g_build_filename(req->cache_dir, "warm", "driver-layer", NULL);
  g_autofree char *dir = NULL, *modules_dir = NULL, *layer_json = NULL, *layer_image = NULL;
  g_autofree char *ksha = NULL, *key = NULL;
  g_autoptr(GHashTable) kpins = NULL;
  g_autoptr(JsonParser) lparser = json_parser_new();
  g_autoptr(VfdStageResult) staged = NULL;
  g_autoptr(GPtrArray) modules = g_ptr_array_new();
  g_autoptr(JsonBuilder) b = json_builder_new();
  JsonObject *layer = NULL;
  const char *release, *package, *kversion;
  goffset sizes[4] = { 0 };
  const char *names[4] = { VFD_IMAGE_KERNEL, VFD_IMAGE_INITRD, NULL, NULL };
  gint64 t0 = g_get_monotonic_time(), t;
  int dirfd;

  if (!vfd_image_check_output_dir(req->output_dir, error))
    return FALSE;
  if (!g_file_test(req->guest_init, G_FILE_TEST_IS_REGULAR)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "guest-init '%s' not found (--guest-init PATH)",
                req->guest_init);
    return FALSE;
  }
  if (g_mkdir_with_parents(req->cache_dir, 0755) < 0) {
    int e = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cache dir '%s': %s", req->cache_dir, g_strerror(e));
    return FALSE;
  }

  /* 1. the guest kernel: the pins resolved against the archive, fetched
   * (apt-get download + dpkg -x) unless cached */
  t = g_get_monotonic_time();
  {
    g_autoptr(VfdWarmInputs) in = kernel_inputs(req, kcache, fetch);
    struct stat st;

    /* warm: the same inputs, the same kernel.env, vmlinuz and modules.dep
     * as after the last run: its answer (vmlinuz's SHA-256), no script */
    ksha = vfd_warm_load(kmemo, vfd_warm_inputs_fingerprint(in));
    if (ksha && (stat(vmlinuz, &st) < 0 || !S_ISREG(st.st_mode)))
      g_clear_pointer(&ksha, g_free);
    if (ksha) {
      sizes[0] = st.st_size;
      res->warm_kernel = TRUE;
    } else {
      const char *argv[] = { fetch, kcache, NULL };
      vfd_warm_forget(kmemo);
      if (!run_script("the guest kernel", argv, NULL, req->quiet, NULL, error))
        return FALSE;
    }
  }
  if (!vfd_pins_load(kernel_env, &kpins, error))
    return FALSE;
  if (!(release = vfd_pins_require(kpins, "GUEST_KERNEL_RELEASE", kernel_env, error)) ||
      !(package = vfd_pins_require(kpins, "GUEST_KERNEL_PACKAGE", kernel_env, error)))
    return FALSE;
  kversion = g_hash_table_lookup(kpins, "GUEST_KERNEL_VERSION");
  modules_dir = g_build_filename(kcache, "modules", release, NULL);
  if (!ksha) {
    g_autoptr(VfdWarmInputs) in = kernel_inputs(req, kcache, fetch);
    g_autofree char *dep = g_build_filename(modules_dir, "modules.dep", NULL);
    const char *outputs[] = { kernel_env, vmlinuz, dep, NULL };
    g_autoptr(GError) werr = NULL;

    if (!(ksha = file_sha256(vmlinuz, &sizes[0], error)))
      return FALSE;
    /* after the run: the state it left is what the next run compares */
    if (!vfd_warm_store(kmemo, vfd_warm_inputs_fingerprint(in), 0, outputs, ksha, &werr) && !req->quiet)
      fprintf(stderr, "vfioctl: note: no warm memo of the guest kernel (the next build runs its script): %s\n",
              werr->message);
  }
  res->ms_kernel = ms_since(t);

  /* 2. the driver layer, for the same kernel (VFIOD_PINS = what was fetched) */
  res->ms_layer = -1;
  if (req->gpu) {
    const char *argv[] = { layer_sh, "--out", lout, "--cache", lcache, "--json", NULL, NULL, NULL };
    JsonNode *root;
    const char *lrel;

    if (req->debs_dir) {
      argv[6] = "--debs";
      argv[7] = req->debs_dir;
    }
    t = g_get_monotonic_time();
    {
      g_autoptr(VfdWarmInputs) in = layer_inputs(req, lcache, lout, kernel_env);
      layer_json = vfd_warm_load(lmemo, vfd_warm_inputs_fingerprint(in));
    }
    res->warm_layer = layer_json != NULL;
    if (!layer_json) {
      vfd_warm_forget(lmemo);
      if (!run_script("the NVIDIA driver layer", argv, kernel_env, req->quiet, &layer_json, error))
        return FALSE;
    }
    if (!json_parser_load_from_data(lparser, layer_json, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(root = json_parser_get_root(lparser))) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the NVIDIA driver layer: %s --json printed no JSON object",
                  layer_sh);
      return FALSE;
    }
    layer = json_node_get_object(root);
    lrel = member_string(layer, "kernel_release");
    if (g_strcmp0(lrel, release) != 0) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                  "the NVIDIA driver layer is built for kernel %s, the guest kernel is %s", lrel ? lrel : "(none)",
                  release);
      return FALSE;
    }
    if (!member_string(layer, "image") || !member_string(layer, "key") || !member_string(layer, "driver_version") ||
        !(layer_image = realpath(member_string(layer, "image"), NULL))) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the NVIDIA driver layer: %s --json names no usable image",
                  layer_sh);
      return FALSE;
    }
    {
      struct stat st;
      if (stat(layer_image, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the NVIDIA driver layer %s is not a regular file",
                    layer_image);
        return FALSE;
      }
      sizes[2] = st.st_size;
      names[2] = VFD_IMAGE_DRIVER_LAYER;
    }
    if (!res->warm_layer) {
      /* the state the run left: the next run's inputs compare to it */
      g_autoptr(VfdWarmInputs) in = layer_inputs(req, lcache, lout, kernel_env);
      g_autoptr(GPtrArray) outputs = layer_outputs(layer);
      g_autoptr(GError) werr = NULL;
      gint64 expires = layer_expiry(req, lcache);

      if (expires >= 0 &&
          !vfd_warm_store(lmemo, vfd_warm_inputs_fingerprint(in), expires, (const char *const *) outputs->pdata,
                          layer_json, &werr) &&
          !req->quiet)
        fprintf(stderr, "vfioctl: note: no warm memo of the driver layer (the next build runs its script): %s\n",
                werr->message);
    }
    res->ms_layer = ms_since(t);
  }

  /* 3. the initramfs: guest-init and the modules, cached by stamp */
  t = g_get_monotonic_time();
  for (guint i = 0; vfd_image_modules[i]; i++)
    g_ptr_array_add(modules, (gpointer) vfd_image_modules[i]);
  for (guint i = 0; req->gpu && vfd_image_gpu_modules[i]; i++)
    g_ptr_array_add(modules, (gpointer) vfd_image_gpu_modules[i]);
  g_ptr_array_add(modules, NULL);
  {
    VfdStageRequest sr = {
      .guest_init = req->guest_init,
      .kernel_release = release,
      .modules_dir = modules_dir,
      .modules = (const char *const *) modules->pdata,
      .cache_dir = icache,
    };
    struct stat st;
    if (!vfd_stage_build(&sr, &staged, error)) {
      g_prefix_error(error, "the initramfs: ");
      return FALSE;
    }
    if (stat(staged->path, &st) < 0) {
      int e = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "%s: %s", staged->path, g_strerror(e));
      return FALSE;
    }
    sizes[1] = st.st_size;
  }
  res->ms_initramfs = ms_since(t);

  /* 4. the image's key, image.json, and DIR */
  {
    g_autofree char *text =
        g_strdup_printf("vfiod-image 1\nkernel %s %s %s\ninitramfs %s\nlayer %s\n", package, kversion ? kversion : "-",
                        ksha, staged->stamp, layer ? member_string(layer, "key") : "-");
    key = g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
  }
  if (g_path_is_absolute(req->output_dir)) {
    dir = g_strdup(req->output_dir);
  } else {
    g_autofree char *cwd = g_get_current_dir();
    dir = g_build_filename(cwd, req->output_dir, NULL);
  }
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_int_value(b, 1);
  json_builder_set_member_name(b, "key");
  json_builder_add_string_value(b, key);
  json_builder_set_member_name(b, "gpu");
  json_builder_add_boolean_value(b, req->gpu);
  json_builder_set_member_name(b, "kernel");
  json_builder_begin_object(b);
  {
    g_autofree char *p = g_build_filename(dir, VFD_IMAGE_KERNEL, NULL);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, p);
  }
  json_builder_set_member_name(b, "release");
  json_builder_add_string_value(b, release);
  json_builder_set_member_name(b, "package");
  json_builder_add_string_value(b, package);
  json_builder_set_member_name(b, "version");
  json_builder_add_string_value(b, kversion);
  json_builder_set_member_name(b, "sha256");
  json_builder_add_string_value(b, ksha);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "initramfs");
  json_builder_begin_object(b);
  {
    g_autofree char *p = g_build_filename(dir, VFD_IMAGE_INITRD, NULL);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, p);
  }
  json_builder_set_member_name(b, "stamp");
  json_builder_add_string_value(b, staged->stamp);
  json_builder_set_member_name(b, "modules");
  json_builder_begin_array(b);
  for (char **m = staged->modules; m && *m; m++)
    json_builder_add_string_value(b, *m);
  json_builder_end_array(b);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "driver_layer");
  if (layer) {
    g_autofree char *p = g_build_filename(dir, VFD_IMAGE_DRIVER_LAYER, NULL);
    JsonNode *pk = json_object_get_member(layer, "packages");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, p);
    json_builder_set_member_name(b, "key");
    json_builder_add_string_value(b, member_string(layer, "key"));
    json_builder_set_member_name(b, "driver_version");
    json_builder_add_string_value(b, member_string(layer, "driver_version"));
    json_builder_set_member_name(b, "kernel_release");
    json_builder_add_string_value(b, release);
    json_builder_set_member_name(b, "packages");
    if (pk && JSON_NODE_HOLDS_OBJECT(pk))
      json_builder_add_value(b, json_node_copy(pk));
    else
      json_builder_add_null_value(b);
    json_builder_end_object(b);
  } else {
    json_builder_add_null_value(b);
  }
  json_builder_end_object(b);
  res->image = json_builder_get_root(b);

  t = g_get_monotonic_time();
  if (g_mkdir_with_parents(dir, 0755) < 0 ||
      (dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
    int e = errno;
    g_set_error(error, G_IO_ERROR, e == ELOOP || e == ENOTDIR ? G_IO_ERROR_INVALID_ARGUMENT : g_io_error_from_errno(e),
                "--output '%s': %s", req->output_dir, g_strerror(e));
    return FALSE;
  }
  if (!req->gpu && unlinkat(dirfd, VFD_IMAGE_DRIVER_LAYER, 0) < 0 && errno != ENOENT) {
    int e = errno;
    close(dirfd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot remove the old %s/%s: %s", dir,
                VFD_IMAGE_DRIVER_LAYER, g_strerror(e));
    return FALSE;
  }
  res->cached = already_installed(dirfd, key, names, sizes);
  if (!res->cached) {
    g_autofree char *text = json_to_string(res->image, TRUE);
    g_autofree char *line = g_strconcat(text, "\n", NULL);
    /* image.json first goes (a reader never sees a new key with old files), last comes back */
    (void) unlinkat(dirfd, VFD_IMAGE_JSON, 0);
    if (!install_file(dirfd, dir, vmlinuz, VFD_IMAGE_KERNEL, error) ||
        !install_file(dirfd, dir, staged->path, VFD_IMAGE_INITRD, error) ||
        (layer_image && !install_file(dirfd, dir, layer_image, VFD_IMAGE_DRIVER_LAYER, error)) ||
        !install_text(dirfd, dir, VFD_IMAGE_JSON, line, error)) {
      close(dirfd);
      return FALSE;
    }
    (void) fsync(dirfd);
  }
  close(dirfd);
  res->ms_install = ms_since(t);
  res->ms_total = ms_since(t0);
  *ret = g_steal_pointer(&res);
  return TRUE;
}
