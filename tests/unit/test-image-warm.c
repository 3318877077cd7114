/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfd_image_build()'s warm memos (issue 17: a warm `image build --gpu` in
 * <= 100 ms, image/warm.h): with stand-in fetch-kernel.sh and
 * build-driver-layer.sh that record each run, a second build starts
 * neither script and installs the same image; a change of a key input
 * (versions.env, a patch, a script, pins.env, the layer's files in the
 * cache, the private apt lists' age) runs the script of the step it
 * belongs to again, and only that one; a failed run leaves no memo.
 * The initramfs is staged from the real guest kernel's modules of
 * $VFIOD_KERNEL_CACHE (tests/lab/fetch-kernel.sh's cache, as the
 * integration suite); without it the test exits 77. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib/gstdio.h>

#include "image.h"

static const char *kernel_src;

/* The stand-ins: each appends its step's name to $VFIOD_TEST_RUNS. */
static const char fake_fetch[] =
    "#!/bin/bash\n"
    "# stand-in fetch-kernel.sh CACHE: the kernel of $VFIOD_TEST_KERNEL_SRC\n"
    "set -eu\n"
    "echo kernel >> \"$VFIOD_TEST_RUNS\"\n"
    "here=$(cd \"$(dirname \"$0\")\" && pwd)\n"
    ". \"$here/../../pins.env\"\n"
    "mkdir -p \"$1\"\n"
    "{ cat \"$VFIOD_TEST_KERNEL_SRC/kernel.env\"; echo \"# pins ${PIN_MARK:-}\"; } > \"$1/kernel.env\"\n"
    "ln -sfn \"$VFIOD_TEST_KERNEL_SRC/vmlinuz\" \"$1/vmlinuz\"\n"
    "ln -sfn \"$VFIOD_TEST_KERNEL_SRC/modules\" \"$1/modules\"\n";

static const char fake_layer[] =
    "#!/bin/bash\n"
    "# stand-in build-driver-layer.sh --out O --cache C --json: the layer's key is\n"
    "# over versions.env and the patches; CACHE/KEY/complete marks it built\n"
    "set -eu\n"
    "echo layer >> \"$VFIOD_TEST_RUNS\"\n"
    "[ -z \"${VFIOD_TEST_FAIL:-}\" ] || { echo 'stand-in: failing' >&2; exit 1; }\n"
    "while [ $# -gt 0 ]; do case $1 in --out) out=$2; shift 2;; --cache) cache=$2; shift 2;; *) shift;; esac; done\n"
    "here=$(cd \"$(dirname \"$0\")\" && pwd)\n"
    ". \"$VFIOD_PINS\"\n"
    "key=$(cat \"$here/../versions.env\" \"$here\"/patches/* 2> /dev/null | sha256sum | cut -d' ' -f1)\n"
    "mkdir -p \"$cache/$key\" \"$out\"\n"
    "[ -f \"$cache/$key/complete\" ] || { echo \"layer $key\" > \"$cache/$key/driver-layer.erofs\"; touch \"$cache/$key/complete\"; }\n"
    "ln -sfn \"$cache/$key/driver-layer.erofs\" \"$out/driver-layer.erofs\"\n"
    "printf '{\"key\":\"%s\",\"cached\":false,\"image\":\"%s\",\"cache\":\"%s\",\"kernel_release\":\"%s\",'"
    "'\"driver_version\":\"550.1\",\"packages\":{}}\\n' \"$key\" \"$out/driver-layer.erofs\" \"$cache/$key\" "
    "\"$GUEST_KERNEL_RELEASE\"\n";

typedef struct {
  char *dir, *scripts, *cache, *output, *runs, *guest_init;
} Fixture;

static void
write_file(const char *path, const char *text, int mode)
{
  g_autofree char *dir = g_path_get_dirname(path);

  assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
  assert_true(g_file_set_contents(path, text, -1, NULL));
  assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
  Fixture *f = g_new0(Fixture, 1);
  g_autofree char *p = NULL;

  f->dir = g_dir_make_tmp("vfiod-image-warm-XXXXXX", NULL);
  assert_non_null(f->dir);
  f->scripts = g_build_filename(f->dir, "scripts", NULL);
  f->cache = g_build_filename(f->dir, "cache", NULL);
  f->output = g_build_filename(f->dir, "image", NULL);
  f->runs = g_build_filename(f->dir, "runs", NULL);
  f->guest_init = g_build_filename(f->dir, "guest-init", NULL);
  write_file(f->guest_init, "stand-in guest-init\n", 0755);
  p = g_build_filename(f->scripts, "tests", "lab", "fetch-kernel.sh", NULL);
  write_file(p, fake_fetch, 0755);
  g_free(p);
  p = g_build_filename(f->scripts, "kernel-modules", "build-driver-layer.sh", NULL);
  write_file(p, fake_layer, 0755);
  g_free(p);
  p = g_build_filename(f->scripts, "kernel-modules", "patches", "README", NULL);
  write_file(p, "patches\n", 0644);
  g_free(p);
  p = g_build_filename(f->scripts, "scripts", "archive.sh", NULL);
  write_file(p, "# stand-in archive.sh\n", 0644);
  g_free(p);
  p = g_build_filename(f->scripts, "pins.env", NULL);
  write_file(p, "PIN_MARK=one\n", 0644);
  g_free(p);
  p = g_build_filename(f->scripts, "versions.env", NULL);
  write_file(p, "NVIDIA_DRIVER_VERSION=550.1\n", 0644);
  write_file(f->runs, "", 0644);
  g_setenv("VFIOD_TEST_RUNS", f->runs, TRUE);
  g_setenv("VFIOD_TEST_KERNEL_SRC", kernel_src, TRUE);
  g_setenv("VFIOD_APT_NO_UPDATE", "1", TRUE);
  g_unsetenv("VFIOD_TEST_FAIL");
  g_unsetenv("VFIOD_PINS");
  g_unsetenv("VFIOD_VERSIONS");
  *state = f;
  return 0;
}

static int
teardown(void **state)
{
  Fixture *f = *state;
  g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

  assert_int_equal(system(cmd), 0);
  g_free(f->dir);
  g_free(f->scripts);
  g_free(f->cache);
  g_free(f->output);
  g_free(f->runs);
  g_free(f->guest_init);
  g_free(f);
  return 0;
}

/* Builds with --gpu; returns the steps the scripts ran since the last
 * call ("kernel layer ", "" ...), *@ret the result. */
static char *
build(Fixture *f, VfdImageResult **ret)
{
  VfdImageRequest req = {
    .output_dir = f->output,
    .cache_dir = f->cache,
    .guest_init = f->guest_init,
    .scripts_dir = f->scripts,
    .gpu = TRUE,
    .quiet = TRUE,
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *runs = NULL;
  gboolean ok = vfd_image_build(&req, ret, &error);

  if (!ok)
    print_message("vfd_image_build: %s\n", error->message);
  assert_true(ok);
  assert_true(g_file_get_contents(f->runs, &runs, NULL, NULL));
  assert_true(g_file_set_contents(f->runs, "", 0, NULL));
  g_strdelimit(runs, "\n", ' ');
  return g_steal_pointer(&runs);
}

static const char *
layer_key(VfdImageResult *r)
{
  JsonObject *o = json_node_get_object(r->image);
  return json_object_get_string_member(json_object_get_object_member(o, "driver_layer"), "key");
}

/* Replaces @rel (under the scripts) with @text: a new inode, as an editor
 * or a package upgrade does. */
static void
rewrite(Fixture *f, const char *rel, const char *text)
{
  g_autofree char *p = g_build_filename(f->scripts, rel, NULL);
  struct stat st;

  assert_int_equal(stat(p, &st), 0);
  write_file(p, text, st.st_mode & 07777);
}

static void
test_warm_and_invalidated(void **state)
{
  Fixture *f = *state;
  g_autoptr(VfdImageResult) r1 = NULL, r2 = NULL, r3 = NULL, r4 = NULL, r5 = NULL, r6 = NULL, r7 = NULL, r8 = NULL;
  g_autofree char *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL, *s5 = NULL, *s6 = NULL, *s7 = NULL, *s8 = NULL;
  g_autofree char *key1 = NULL, *complete = NULL, *layer_sh = NULL;

  /* cold: both scripts */
  s1 = build(f, &r1);
  assert_string_equal(s1, "kernel layer ");
  assert_false(r1->warm_kernel);
  assert_false(r1->warm_layer);
  assert_false(r1->cached);
  key1 = g_strdup(layer_key(r1));

  /* warm: neither script, the same image, nothing copied */
  s2 = build(f, &r2);
  assert_string_equal(s2, "");
  assert_true(r2->warm_kernel);
  assert_true(r2->warm_layer);
  assert_true(r2->cached);
  assert_string_equal(layer_key(r2), key1);
  assert_string_equal(json_object_get_string_member(json_node_get_object(r2->image), "key"),
                      json_object_get_string_member(json_node_get_object(r1->image), "key"));

  /* versions.env changed: the layer is built again (another key), not the kernel */
  rewrite(f, "versions.env", "NVIDIA_DRIVER_VERSION=550.2\n");
  s3 = build(f, &r3);
  assert_string_equal(s3, "layer ");
  assert_true(r3->warm_kernel);
  assert_false(r3->warm_layer);
  assert_string_not_equal(layer_key(r3), key1);
  assert_false(r3->cached);

  /* a patch added: the layer again */
  {
    g_autofree char *p = g_build_filename(f->scripts, "kernel-modules", "patches", "nvidia-550.2-fix.patch", NULL);
    write_file(p, "--- a\n+++ b\n", 0644);
  }
  s4 = build(f, &r4);
  assert_string_equal(s4, "layer ");
  assert_string_not_equal(layer_key(r4), layer_key(r3));

  /* the layer's CACHE/KEY/complete gone: the script runs (and rebuilds it) */
  complete = g_build_filename(f->cache, "driver-layer", layer_key(r4), "complete", NULL);
  assert_int_equal(g_unlink(complete), 0);
  s5 = build(f, &r5);
  assert_string_equal(s5, "layer ");
  assert_true(g_file_test(complete, G_FILE_TEST_EXISTS));
  assert_string_equal(layer_key(r5), layer_key(r4));

  /* the layer script itself changed */
  layer_sh = g_build_filename(f->scripts, "kernel-modules", "build-driver-layer.sh", NULL);
  {
    g_autofree char *text = g_strconcat(fake_layer, "# changed\n", NULL);
    rewrite(f, "kernel-modules/build-driver-layer.sh", text);
  }
  s6 = build(f, &r6);
  assert_string_equal(s6, "layer ");

  /* pins.env changed: the kernel step, and the layer (its pins, kernel.env, are new) */
  rewrite(f, "pins.env", "PIN_MARK=two\n");
  s7 = build(f, &r7);
  assert_string_equal(s7, "kernel layer ");
  assert_false(r7->warm_kernel);

  /* and warm again */
  s8 = build(f, &r8);
  assert_string_equal(s8, "");
  assert_true(r8->cached);
}

static void
test_failure_leaves_no_memo(void **state)
{
  Fixture *f = *state;
  VfdImageRequest req = {
    .output_dir = f->output, .cache_dir = f->cache, .guest_init = f->guest_init, .scripts_dir = f->scripts,
    .gpu = TRUE, .quiet = TRUE,
  };
  g_autoptr(VfdImageResult) r1 = NULL, r2 = NULL, r3 = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *s1 = NULL, *s3 = NULL;

  s1 = build(f, &r1);
  assert_string_equal(s1, "kernel layer ");
  /* a changed input whose run fails: an error, and no answer kept */
  rewrite(f, "versions.env", "NVIDIA_DRIVER_VERSION=550.3\n");
  g_setenv("VFIOD_TEST_FAIL", "1", TRUE);
  assert_false(vfd_image_build(&req, &r2, &error));
  assert_non_null(strstr(error->message, "the NVIDIA driver layer"));
  g_unsetenv("VFIOD_TEST_FAIL");
  assert_true(g_file_set_contents(f->runs, "", 0, NULL));
  /* the same inputs again: the script runs (no memo of the failed run, the old one is gone) */
  s3 = build(f, &r3);
  assert_string_equal(s3, "layer ");
}

static void
set_mtime(const char *path, time_t t)
{
  struct timeval tv[2] = { { t, 0 }, { t, 0 } };
  assert_int_equal(utimes(path, tv), 0);
}

static void
test_apt_lists_age(void **state)
{
  Fixture *f = *state;
  g_autoptr(VfdImageResult) r1 = NULL, r2 = NULL, r3 = NULL, r4 = NULL, r5 = NULL, r6 = NULL;
  g_autofree char *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL, *s5 = NULL, *s6 = NULL;
  g_autofree char *stamp = g_build_filename(f->cache, "driver-layer", "apt", "lists.stamp", NULL);

  /* the script refreshes its package lists when they are a day old: with
   * updates on (no VFIOD_APT_NO_UPDATE) and no lists stamp, no memo */
  g_unsetenv("VFIOD_APT_NO_UPDATE");
  s1 = build(f, &r1);
  assert_string_equal(s1, "kernel layer ");
  s2 = build(f, &r2);
  assert_string_equal(s2, "layer ");
  /* lists of 25 hours ago: the script runs (it would update them) */
  write_file(stamp, "deb stand-in\n", 0644);
  set_mtime(stamp, time(NULL) - 25 * 3600);
  s3 = build(f, &r3);
  assert_string_equal(s3, "layer ");
  s4 = build(f, &r4);
  assert_string_equal(s4, "layer ");
  /* fresh lists (the stamp touched: a new input state, one run), then the memo holds */
  set_mtime(stamp, time(NULL) - 3600);
  s6 = build(f, &r6);
  assert_string_equal(s6, "layer ");
  s5 = build(f, &r5);
  assert_string_equal(s5, "");
  assert_true(r5->warm_layer);
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_warm_and_invalidated, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failure_leaves_no_memo, setup, teardown),
    cmocka_unit_test_setup_teardown(test_apt_lists_age, setup, teardown),
  };
  g_autofree char *env = NULL;

  kernel_src = g_getenv("VFIOD_KERNEL_CACHE");
  env = kernel_src ? g_build_filename(kernel_src, "kernel.env", NULL) : NULL;
  if (!env || !g_file_test(env, G_FILE_TEST_IS_REGULAR)) {
    fprintf(stderr, "SKIP: no guest kernel cache (%s): tests/lab/fetch-kernel.sh BUILD/lab-cache fetches it\n",
            env ? env : "VFIOD_KERNEL_CACHE is not set");
    return 77;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
