/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* Warm memos of `vfioctl image build`'s script steps (issue 17: a warm
 * `image build --gpu` in <= 100 ms). A step (fetch-kernel.sh,
 * build-driver-layer.sh) is a pure function of the state of its inputs:
 * the scripts, pins.env and versions.env, this machine's apt state, the
 * step's own cache. After a run that succeeded, its answer (the script's
 * stdout, or a value derived from its outputs) is kept in a memo file
 * with a fingerprint of that input state, the identity of the output
 * files it names and an expiry; the next run whose inputs have the same
 * fingerprint and whose outputs are unchanged and not expired takes the
 * answer from the memo instead of starting the script. Anything else
 * (a changed, added or removed input file, an output gone or rewritten,
 * the expiry passed, a memo unreadable or of another format) runs the
 * script as before.
 *
 * The fingerprint is over file identities (lstat: device, inode, size,
 * mode, mtime and ctime in ns; a symbolic link's target), not contents:
 * any write to a file changes its ctime. */

typedef struct VfdWarmInputs VfdWarmInputs;

/* A new, empty input state for the step @what ("kernel", "driver-layer"). */
VfdWarmInputs *vfd_warm_inputs_new(const char *what);
void vfd_warm_inputs_free(VfdWarmInputs *in);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdWarmInputs, vfd_warm_inputs_free)

/* Adds a named value (an argument, an environment variable; NULL: unset). */
void vfd_warm_inputs_add_value(VfdWarmInputs *in, const char *name, const char *value);

/* Adds the identity of the file or directory @path (lstat; "absent" when it
 * does not exist, which is a state too). */
void vfd_warm_inputs_add_file(VfdWarmInputs *in, const char *path);

/* Adds the directory @dir (its identity: an entry added, removed or
 * renamed changes its mtime) and each entry whose name contains @infix
 * (NULL: every entry), in name order. */
void vfd_warm_inputs_add_dir(VfdWarmInputs *in, const char *dir, const char *infix);

/* The fingerprint: SHA-256 (64 hex digits) over everything added. The
 * string belongs to @in. */
const char *vfd_warm_inputs_fingerprint(VfdWarmInputs *in);

/* The answer kept in the memo file @memo_path when it was stored with
 * @fingerprint, its expiry (wall clock, seconds since the epoch) has not
 * passed and every output it names has the identity it had then: a new
 * string. NULL otherwise (no memo, another fingerprint, expired, an output
 * changed, unreadable: the caller runs the step). */
char *vfd_warm_load(const char *memo_path, const char *fingerprint);

/* Writes the memo @memo_path (through a temporary file and rename, mode
 * 0644, its directory created): @fingerprint, @expires (seconds since the
 * epoch, 0: never), the identities of @outputs (NULL-terminated paths)
 * now, and @answer. FALSE with @error when it cannot be written (the
 * caller goes on without: the next run runs the step). */
gboolean vfd_warm_store(const char *memo_path, const char *fingerprint, gint64 expires, const char *const *outputs,
                        const char *answer, GError **error);

/* Removes the memo @memo_path (a step that failed leaves none); no error
 * when it is absent. */
void vfd_warm_forget(const char *memo_path);
