/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl initramfs build and image build: the guest's images, built on
 * this host (local, no daemon). */
#include "cli-private.h"

#include <stdio.h>
#include <unistd.h>

#include "image.h"
#include "initramfs.h"
#include "pins.h"
#include "stage.h"

/* ---- initramfs build ---------------------------------------------------- */

/* Reads KEY from a pins file given by @path_opt, else $@env, else the
 * compiled-in @builtin (NULL when none). Returns a new string, or NULL
 * with *@error set when a file was named but cannot be used; NULL without
 * error when no file is known. */
static char *
pin_value(const char *path_opt, const char *env, const char *builtin, const char *key, GError **error)
{
  const char *path = path_opt;
  g_autoptr(GHashTable) pins = NULL;
  const char *v;

  if (!path || !*path)
    path = g_getenv(env);
  if (!path || !*path)
    path = builtin;
  if (!path)
    return NULL;
  if (!vfd_pins_load(path, &pins, error)) {
    g_prefix_error(error, "cannot use %s as %s: ", path, key);
    return NULL;
  }
  v = vfd_pins_require(pins, key, path, error);
  return v ? g_strdup(v) : NULL;
}

static int
initramfs_error(const GError *error)
{
  fprintf(stderr, "vfioctl: %s\n", error->message);
  return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
                 g_error_matches(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
                 g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)
             ? VFD_EXIT_USAGE
             : VFD_EXIT_FAILED;
}

static void
print_stage_result(Cli *cli, const char *output, const VfdStageResult *res)
{
  if (cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "output");
    json_builder_add_string_value(b, output);
    json_builder_set_member_name(b, "stamp");
    if (res)
      json_builder_add_string_value(b, res->stamp);
    else
      json_builder_add_null_value(b);
    json_builder_set_member_name(b, "cached");
    json_builder_add_boolean_value(b, res && res->cached);
    json_builder_set_member_name(b, "modules");
    json_builder_begin_array(b);
    for (char **m = res ? res->modules : NULL; m && *m; m++)
      json_builder_add_string_value(b, *m);
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    vfd_cli_print_json(root);
    return;
  }
  if (!res) {
    printf("wrote %s\n", output);
    return;
  }
  printf("%s %s (stamp %s)\n", res->cached ? "reused" : "wrote", output, res->stamp);
  for (char **m = res->modules; m && *m; m++)
    printf("  module %s\n", *m);
}

typedef struct {
  char *init, *output, *modules_dir, *firmware_dir;
  char *cache_dir, *release, *nvidia_version;
  char *pins, *versions;
  char **modules, **params;
  gboolean gpu;
} InitramfsOpts;

static const GOptionEntry initramfs_options[] = {
  { "guest-init", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, init),
    "The static guest-init binary (stored as /init)", "PATH" },
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, output),
    "Where to write the gzip'd cpio image", "PATH" },
  { "modules-dir", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, modules_dir),
    "The guest kernel's lib/modules/<release> tree (depmod'ed)", "DIR" },
  { "module", 0, 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(InitramfsOpts, modules),
    "Stage this module and its dependencies (repeatable)", "NAME" },
  { "param", 0, 0, G_OPTION_ARG_STRING_ARRAY, VFD_CLI_OPT(InitramfsOpts, params),
    "A parameter for a staged module (repeatable)", "MOD:KEY=VAL" },
  { "gpu", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(InitramfsOpts, gpu),
    "Stage nvidia.ko (+ nvidia-modeset, nvidia-uvm) and its firmware", NULL },
  { "firmware-dir", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, firmware_dir),
    "Firmware tree holding nvidia/<version>/ (default with --gpu: /lib/firmware)", "DIR" },
  { "cache-dir", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, cache_dir),
    "Keep images here by content stamp and reuse them", "DIR" },
  { "kernel-release", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(InitramfsOpts, release),
    "Guest kernel release (default: GUEST_KERNEL_RELEASE from the pins file)", "R" },
  { "nvidia-version", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(InitramfsOpts, nvidia_version),
    "NVIDIA driver version (default: NVIDIA_DRIVER_VERSION from the versions file)", "V" },
  { "pins", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, pins),
    "pins.env to read (default $VFIOD_PINS)", "FILE" },
  { "versions", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(InitramfsOpts, versions),
    "versions.env to read (default $VFIOD_VERSIONS)", "FILE" },
  { NULL },
};

static int
initramfs_check(VfdCliCall *call)
{
  InitramfsOpts *o = call->opts;
  const char *init = o->init, *output = o->output, *modules_dir = o->modules_dir, *firmware_dir = o->firmware_dir;
  const char *cache_dir = o->cache_dir;
  char **modules = o->modules, **params = o->params;
  gboolean gpu = o->gpu, want_modules;

  if (!init || (!output && !cache_dir))
    return vfd_cli_usage_error("initramfs build needs --guest-init PATH and --output PATH (or --cache-dir DIR)");
  want_modules = gpu || (modules && modules[0]);
  if (!want_modules && (params || modules_dir))
    return vfd_cli_usage_error("initramfs build: --param and --modules-dir need --module or --gpu");
  if (want_modules && !modules_dir)
    return vfd_cli_usage_error(
        "initramfs build: --module and --gpu need --modules-dir DIR (the guest kernel's modules)");
  if (firmware_dir && !gpu)
    return vfd_cli_usage_error("initramfs build: --firmware-dir is only used with --gpu");
  return VFD_CLI_GO_ON;
}

static int
initramfs_run(VfdCliCall *call, GError **error)
{
  InitramfsOpts *o = call->opts;
  const char *init = o->init, *output = o->output, *modules_dir = o->modules_dir, *cache_dir = o->cache_dir;
  const char *pins = o->pins, *versions = o->versions;
  g_autofree char *release = g_steal_pointer(&o->release), *nvidia_version = g_steal_pointer(&o->nvidia_version);
  g_autofree char *firmware_dir = g_steal_pointer(&o->firmware_dir);
  char **modules = o->modules, **params = o->params;
  gboolean gpu = o->gpu, want_modules = gpu || (modules && modules[0]);
  g_autoptr(VfdStageResult) res = NULL;

  if (!release) {
    release = pin_value(pins, "VFIOD_PINS", DEFAULT_PINS_FILE, "GUEST_KERNEL_RELEASE", error);
    if (*error)
      return VFD_CLI_ERROR;
  }
  if (gpu && !nvidia_version) {
    nvidia_version = pin_value(versions, "VFIOD_VERSIONS", DEFAULT_VERSIONS_FILE, "NVIDIA_DRIVER_VERSION", error);
    if (*error)
      return VFD_CLI_ERROR;
    if (!nvidia_version)
      return vfd_cli_usage_error("initramfs build --gpu needs the NVIDIA driver version: --nvidia-version V or "
                                 "--versions FILE (or $VFIOD_VERSIONS)");
  }
  if (!release) {
    if (want_modules || cache_dir)
      return vfd_cli_usage_error("initramfs build needs the guest kernel release: --kernel-release R or --pins "
                                 "FILE (or $VFIOD_PINS)");
    /* Nothing to stage and no pins: the plain image of before, /init only. */
    fprintf(stderr, "vfioctl: note: no guest kernel release known (--kernel-release, --pins or $VFIOD_PINS): "
                    "the image has no /etc/vfiod/manifest\n");
    if (!vfd_initramfs_build(output, init, NULL, 0, error))
      return VFD_CLI_ERROR;
    print_stage_result(call->cli, output, NULL);
    return VFD_EXIT_OK;
  }
  if (gpu && !firmware_dir)
    firmware_dir = g_strdup("/lib/firmware");

  {
    VfdStageRequest req = {
      .guest_init = init,
      .kernel_release = release,
      .modules_dir = modules_dir,
      .modules = (const char *const *) modules,
      .params = (const char *const *) params,
      .gpu = gpu,
      .nvidia_version = nvidia_version,
      .firmware_dir = firmware_dir,
      .cache_dir = cache_dir,
      .output = output,
    };
    if (!vfd_stage_build(&req, &res, error))
      return VFD_CLI_ERROR;
  }
  print_stage_result(call->cli, res->path, res);
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_tool_initramfs_build = {
  .name = "initramfs build",
  .params = "",
  .args = VFD_CLI_ARGS_NONE_NAMED,
  .local = TRUE,
  .opts_size = sizeof(InitramfsOpts),
  .options = initramfs_options,
  .check = initramfs_check,
  .run = initramfs_run,
  .map_error = initramfs_error,
};

/* ---- image build ---------------------------------------------------------- */

/* The scripts `image build` runs: the installed copies (<datadir>/vfiod,
 * the source tree's layout), else the source tree of this build. */
static const char *
image_scripts_dir(void)
{
  g_autofree char *installed = g_build_filename(VFIOD_DATADIR, "kernel-modules", "build-driver-layer.sh", NULL);

  return g_file_test(installed, G_FILE_TEST_IS_REGULAR) ? VFIOD_DATADIR : VFIOD_SOURCE_ROOT;
}

/* guest-init: the installed one (<libexecdir>/vfiod), else this build's. */
static char *
image_guest_init(void)
{
  g_autofree char *installed = g_build_filename(VFIOD_LIBEXECDIR, "guest-init", NULL);

  if (g_file_test(installed, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer(&installed);
  return g_build_filename(VFIOD_BUILD_ROOT, "guest-init", "guest-init", NULL);
}

typedef struct {
  char *output, *cache, *guest_init, *debs;
  gboolean gpu;
} ImageOpts;

static const GOptionEntry image_options[] = {
  { "gpu", 0, 0, G_OPTION_ARG_NONE, VFD_CLI_OPT(ImageOpts, gpu),
    "Also build the NVIDIA driver layer (and stage what it needs at boot)", NULL },
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(ImageOpts, output),
    "Install the image here (e.g. " VFIOD_IMAGE_DIR ")", "DIR" },
  { "cache", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(ImageOpts, cache),
    "Caches (default /var/cache/vfiod as root, else $XDG_CACHE_HOME/vfiod)", "DIR" },
  { "guest-init", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(ImageOpts, guest_init),
    "The static guest-init (default: the installed one)", "PATH" },
  { "debs", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(ImageOpts, debs),
    "With --gpu: take the NVIDIA packages from the .debs in DIR (no apt for them)", "DIR" },
  { NULL },
};

static int
image_check(VfdCliCall *call)
{
  ImageOpts *o = call->opts;
  const char *output = o->output, *debs = o->debs;
  gboolean gpu = o->gpu;

  if (!output)
    return vfd_cli_usage_error("image build needs --output DIR (vfiod's default image: " VFIOD_IMAGE_DIR ")");
  if (debs && !gpu)
    return vfd_cli_usage_error("image build: --debs is only used with --gpu");
  return VFD_CLI_GO_ON;
}

static int
image_run(VfdCliCall *call, GError **error)
{
  ImageOpts *opts = call->opts;
  const char *output = opts->output, *debs = opts->debs;
  g_autofree char *cache = g_steal_pointer(&opts->cache), *guest_init = g_steal_pointer(&opts->guest_init);
  g_autoptr(VfdImageResult) res = NULL;
  gboolean gpu = opts->gpu;

  if (!vfd_image_check_output_dir(output, error))
    return VFD_CLI_ERROR;
  if (!cache) {
    if (geteuid() == 0)
      cache = g_strdup("/var/cache/vfiod");
    else
      cache = g_build_filename(g_get_user_cache_dir(), "vfiod", NULL);
  }
  if (!guest_init)
    guest_init = image_guest_init();
  {
    VfdImageRequest req = {
      .output_dir = output,
      .cache_dir = cache,
      .guest_init = guest_init,
      .scripts_dir = image_scripts_dir(),
      .debs_dir = debs,
      .gpu = gpu,
    };
    if (!vfd_image_build(&req, &res, error))
      return VFD_CLI_ERROR;
  }
  if (call->cli->json) {
    g_autoptr(JsonNode) out = json_node_copy(res->image);
    JsonObject *o = json_node_get_object(out);
    JsonObject *ms = json_object_new();
    json_object_set_boolean_member(o, "cached", res->cached);
    json_object_set_int_member(ms, "kernel", res->ms_kernel);
    if (res->ms_layer >= 0)
      json_object_set_int_member(ms, "driver_layer", res->ms_layer);
    json_object_set_int_member(ms, "initramfs", res->ms_initramfs);
    json_object_set_int_member(ms, "install", res->ms_install);
    json_object_set_int_member(ms, "total", res->ms_total);
    json_object_set_object_member(o, "ms", ms);
    vfd_cli_print_json(out);
  } else {
    JsonObject *o = json_node_get_object(res->image);
    JsonObject *k = json_object_get_object_member(o, "kernel");
    JsonObject *i = json_object_get_object_member(o, "initramfs");
    JsonNode *ln = json_object_get_member(o, "driver_layer");
    JsonObject *l = ln && JSON_NODE_HOLDS_OBJECT(ln) ? json_node_get_object(ln) : NULL;

    printf("kernel        %s (%s %s)  %" G_GINT64_FORMAT " ms\n", json_object_get_string_member(k, "release"),
           json_object_get_string_member(k, "package"), json_object_get_string_member(k, "version"), res->ms_kernel);
    if (l)
      printf("driver layer  NVIDIA %s, key %.12s  %" G_GINT64_FORMAT " ms\n",
             json_object_get_string_member(l, "driver_version"), json_object_get_string_member(l, "key"),
             res->ms_layer);
    printf("initramfs     stamp %.12s, %u modules  %" G_GINT64_FORMAT " ms\n", json_object_get_string_member(i, "stamp"),
           json_array_get_length(json_object_get_array_member(i, "modules")), res->ms_initramfs);
    printf("%s %s (key %.12s)  %" G_GINT64_FORMAT " ms\n", res->cached ? "up to date   " : "installed    ", output,
           json_object_get_string_member(o, "key"), res->ms_install);
    printf("total         %" G_GINT64_FORMAT " ms\n", res->ms_total);
  }
  return VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_tool_image_build = {
  .name = "image build",
  .params = "",
  .args = VFD_CLI_ARGS_NONE_NAMED,
  .local = TRUE,
  .opts_size = sizeof(ImageOpts),
  .options = image_options,
  .check = image_check,
  .run = image_run,
  .map_error = initramfs_error,
};
