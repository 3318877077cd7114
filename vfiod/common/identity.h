/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* A sandbox's identity as a client gives it to CreateSandbox (issue 15,
 * item 1): a name, labels, and the spec the name stands for. */

/* Names: 1 to 63 bytes of [a-z0-9.-], beginning and ending with [a-z0-9]
 * (a DNS label, dots allowed inside), and not beginning with "sb-" (ids
 * do: GetSandbox and DeleteSandbox take either, without ambiguity). */
#define VFD_SANDBOX_NAME_MAX 63
/* Labels: at most 64 entries; a key 1 to 63 bytes of [A-Za-z0-9._/-]; a
 * value at most 256 bytes of UTF-8 without control characters (may be
 * empty). */
#define VFD_SANDBOX_LABELS_MAX 64
#define VFD_SANDBOX_LABEL_KEY_MAX 63
#define VFD_SANDBOX_LABEL_VALUE_MAX 256

/* TRUE when @name (may be NULL) follows the rule above; else FALSE with
 * VFD_ERROR_INVALID_ARGUMENT saying which part of it does not. */
gboolean vfd_sandbox_name_check(const char *name, GError **error);

/* The same for labels: @labels an a{ss} GVariant (NULL: none). */
gboolean vfd_sandbox_labels_check(GVariant *labels, GError **error);

/* The same for one label (key, value), e.g. from the journal. */
gboolean vfd_sandbox_label_check(const char *key, const char *value, GError **error);

/* The spec of a create: a SHA-256 (64 lower-case hex digits, newly
 * allocated) of @options (a{sv}) without "name", in a canonical form:
 * dictionaries (at any depth) ordered by key, the serialised normal form
 * hashed. Two creates have the same spec when every option but the name
 * is given the same: an option left out and one given with its default
 * value differ. */
char *vfd_sandbox_spec_hash(GVariant *options);

/* TRUE when @s (may be NULL) is a spec hash as above. */
gboolean vfd_sandbox_spec_hash_valid(const char *s);
