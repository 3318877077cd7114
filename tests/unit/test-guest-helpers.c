/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-init's NVIDIA user-space helpers (guest-init/modules.c,
 * gi_nvidia_start_helpers()): the fabric manager hook for HGX boards passed
 * whole (issue 12, item 4). Fake helpers in a temporary bin directory,
 * no chroot (root NULL), so no root needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu.h"
#include "modules.h"
#include "util.h"

static char dir[64];
static char bin[96];
static char out[128];

static void
write_helper(const char *name, const char *body)
{
  char path[160];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", bin, name);
  f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\n%s\n", body);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, 0755), 0);
}

static int
setup(void **state)
{
  (void) state;
  snprintf(dir, sizeof(dir), "/tmp/vfiod-helpers-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(bin, sizeof(bin), "%s/bin", dir);
  snprintf(out, sizeof(out), "%s/fm.args", dir);
  return mkdir(bin, 0755);
}

static int
teardown(void **state)
{
  char cmd[128];

  (void) state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void
test_nvswitch_class(void **state)
{
  (void) state;
  assert_true(gi_pci_is_nvswitch(0x10de, 0x068000));
  assert_false(gi_pci_is_nvswitch(0x10de, 0x030200)); /* a GPU */
  assert_false(gi_pci_is_nvswitch(0x10de, 0x060400)); /* a PCI bridge */
  assert_false(gi_pci_is_nvswitch(0x8086, 0x068000)); /* not NVIDIA */
  assert_false(gi_pci_is_nvidia_gpu(0x10de, 0x068000));
}

static void
test_fabricmanager_hook(void **state)
{
  char env0[200], line[256] = "";
  char *envp[] = { env0, "PATH=/usr/bin:/bin", NULL };
  GiHelpers h = { .root = NULL, .bin_dir = bin, .envp = envp, .nvswitches = 4 };
  GiNvidiaState st;
  FILE *f;

  (void) state;
  snprintf(env0, sizeof(env0), "FM_OUT=%s", out);

  /* No NVSwitch: the hook does nothing, even with a fabric manager there. */
  write_helper(GI_FABRICMANAGER_NAME, "echo \"$@\" > \"$FM_OUT\"; exit 0");
  h.nvswitches = 0;
  memset(&st, 0, sizeof(st));
  gi_nvidia_start_helpers(&h, &st);
  assert_string_equal(st.fabricmanager, "");
  assert_int_equal(access(out, F_OK), -1);
  /* The others are reported absent (the fake bin dir has none). */
  assert_string_equal(st.persistenced, "absent");
  assert_string_equal(st.smi, "absent");

  /* NVSwitches: started with NVIDIA's configuration, before the others. */
  h.nvswitches = 4;
  gi_nvidia_start_helpers(&h, &st);
  assert_string_equal(st.fabricmanager, "running");
  assert_int_equal(st.fabricmanager_pid, 0); /* it wrote no pid file */
  f = fopen(out, "r");
  assert_non_null(f);
  assert_non_null(fgets(line, sizeof(line), f));
  fclose(f);
  assert_string_equal(line, "-c " GI_FABRICMANAGER_CONFIG "\n");

  /* It fails: the exit status is reported. */
  write_helper(GI_FABRICMANAGER_NAME, "exit 3");
  gi_nvidia_start_helpers(&h, &st);
  assert_string_equal(st.fabricmanager, "exit:3");

  /* None supplied (and none in /usr/bin on this machine): "absent". */
  {
    char path[160];

    snprintf(path, sizeof(path), "%s/%s", bin, GI_FABRICMANAGER_NAME);
    assert_int_equal(unlink(path), 0);
  }
  if (access("/usr/bin/" GI_FABRICMANAGER_NAME, F_OK) == 0)
    skip();
  gi_nvidia_start_helpers(&h, &st);
  assert_string_equal(st.fabricmanager, "absent");
}

int
main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_nvswitch_class),
    cmocka_unit_test_setup_teardown(test_fabricmanager_hook, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
