/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-init's payload parser, gi_payload_parse() (guest-init/payload.c):
 * the fw_cfg file the host wrote (or whoever got at QEMU's fw_cfg), read
 * into a heap block of exactly its size.
 *
 * Checks: reads stay inside the input (ASan: the copy has no slack); a
 * refusal has a NUL-terminated, non-empty message, also with a tiny error
 * buffer; an accepted payload has the shapes payload.h promises: counts
 * within their limits, every string NUL-terminated inside the input with no
 * NUL before it, cmd and file paths gi_payload_path_valid(), environment
 * entries gi_payload_env_valid(), modes <= 0777, file data inside the
 * input, no path twice, arguments only with a cmd; the outcome does not
 * depend on the error buffer's size. */
#include <stdbool.h>

#include "fuzz-common.h"
#include "payload.h"

static GiPayload parsed, again; /* large: off the stack */

static bool
inside(const void *p, size_t len, const char *buf, size_t size)
{
  return (const char *) p >= buf && (const char *) p + len <= buf + size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size ? size : 1), *buf2 = malloc(size ? size : 1);
  char err[256], tiny[4];
  bool ok, ok2;

  memcpy(buf, data, size);
  memcpy(buf2, data, size);
  ok = gi_payload_parse(buf, size, &parsed, err, sizeof err);
  ok2 = gi_payload_parse(buf2, size, &again, tiny, sizeof tiny);
  FUZZ_CHECK(ok == ok2);
  if (!ok) {
    FUZZ_CHECK(strnlen(err, sizeof err) < sizeof err && err[0] != '\0');
    FUZZ_CHECK(strnlen(tiny, sizeof tiny) < sizeof tiny);
  } else {
    FUZZ_CHECK(parsed.n_args <= VFIOD_PAYLOAD_MAX_ARGS && parsed.n_env <= VFIOD_PAYLOAD_MAX_ENV &&
               parsed.n_files <= VFIOD_PAYLOAD_MAX_FILES);
    FUZZ_CHECK(parsed.cmd || (parsed.n_args == 0 && parsed.n_env == 0));
    if (parsed.cmd) {
      FUZZ_CHECK(inside(parsed.cmd, strlen(parsed.cmd) + 1, buf, size));
      FUZZ_CHECK(gi_payload_path_valid(parsed.cmd));
    }
    for (size_t i = 0; i < parsed.n_args; i++)
      FUZZ_CHECK(inside(parsed.args[i], strlen(parsed.args[i]) + 1, buf, size) &&
                 strlen(parsed.args[i]) <= VFIOD_PAYLOAD_MAX_STRING);
    for (size_t i = 0; i < parsed.n_env; i++)
      FUZZ_CHECK(inside(parsed.env[i], strlen(parsed.env[i]) + 1, buf, size) && gi_payload_env_valid(parsed.env[i]));
    for (size_t i = 0; i < parsed.n_files; i++) {
      const GiPayloadFile *f = &parsed.files[i];

      FUZZ_CHECK(inside(f->path, strlen(f->path) + 1, buf, size) && gi_payload_path_valid(f->path));
      FUZZ_CHECK(f->mode <= VFIOD_PAYLOAD_MAX_MODE);
      FUZZ_CHECK(inside(f->data, f->len, buf, size));
      for (size_t k = 0; k < i; k++)
        FUZZ_CHECK(strcmp(parsed.files[k].path, f->path) != 0);
    }
    FUZZ_CHECK(again.n_args == parsed.n_args && again.n_env == parsed.n_env && again.n_files == parsed.n_files);
  }
  free(buf);
  free(buf2);
  return 0;
}
