/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The fixture of the device layer's cmocka tests (test-device.c,
 * test-gpu.c, test-owner.c, test-concurrency.c): a VfdHost over a fake
 * kernel with its journal in a temporary state dir. */

#include "bdf.h"
#include "device.h"
#include "fake-sysfs.h"

typedef struct {
  FakeSysfs *fs;
  char *state_dir;
  VfdHost *host;
} HostFixture;

/* A host over @f's fake kernel with the policy of @ids and @classes and the
 * journal in @f's state dir (both must open). */
VfdHost *host_fixture_open(HostFixture *f, const char *ids, const char *classes);

/* Removes @f's state dir with what is in it (the journal, its corrupt
 * copies and the like) and frees its name. */
void host_fixture_remove_state_dir(HostFixture *f);

/* A teardown: frees the host, removes the state dir, checks that nothing
 * was written outside the fake kernel's tree, frees the fake kernel and
 * @f. */
void host_fixture_free(HostFixture *f);

/* @s as a BDF (it must parse). */
VfdBdf test_bdf(const char *s);
