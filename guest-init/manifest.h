/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The staged initramfs manifest, /etc/vfiod/manifest: the contract between
 * the stager and guest-init, described in doc/guest-manifest.md. Pure code:
 * the text is parsed in place (fields are cut out of it with NULs), nothing
 * is allocated, nothing is read or written. */

#define GI_MANIFEST_PATH "/etc/vfiod/manifest"
#define GI_MANIFEST_VERSION 1
#define GI_MANIFEST_MAX_MODULES 256
#define GI_MANIFEST_MAX_UNKNOWN 8    /* line numbers of unknown kinds that are kept */
#define GI_MANIFEST_MAX_PATH 255     /* bytes of a module path or firmware directory */

/* One `module PATH [PARAM]...` line. */
typedef struct {
  const char *path;    /* absolute, clean (no "", "." or ".." components), ends in ".ko" */
  const char *params;  /* the parameters as given, joined by single spaces; "" for none */
  unsigned line;       /* 1-based line number in the manifest */
} GiManifestModule;

typedef struct {
  unsigned version;           /* GI_MANIFEST_VERSION */
  const char *kernel;         /* `kernel R`: the release the modules are for (required) */
  const char *nvidia_driver;  /* `nvidia-driver V`: NULL when absent or "-" */
  const char *stamp;          /* `stamp S`: NULL when absent */
  const char *firmware;       /* `firmware DIR`: NULL when absent */
  GiManifestModule modules[GI_MANIFEST_MAX_MODULES];
  size_t n_modules;           /* in file order: the load order */
  unsigned unknown_lines[GI_MANIFEST_MAX_UNKNOWN];
  size_t n_unknown;           /* lines of an unknown kind (ignored); only the first
                               * GI_MANIFEST_MAX_UNKNOWN line numbers are kept */
} GiManifest;

/* Parses the manifest @text (NUL-terminated, modified in place: @ret points
 * into it, so it must outlive @ret) into @ret.
 *
 * Format (doc/guest-manifest.md): lines end with '\n' (the last one may not);
 * lines starting with '#' and empty lines are skipped; otherwise fields are
 * separated by single spaces, with no empty field and only printable ASCII.
 * The first entry must be `vfiod-manifest N` with N = GI_MANIFEST_VERSION.
 * `kernel` is required; `kernel`, `nvidia-driver`, `stamp` and `firmware`
 * may appear at most once. Paths must be absolute without "", "." or ".."
 * components and at most GI_MANIFEST_MAX_PATH bytes; module paths must end in
 * ".ko" (uncompressed). Unknown kinds are counted in n_unknown, not errors.
 *
 * Returns 0, or -EINVAL with an English message in @error (@error_size bytes,
 * NUL-terminated, starting with "line N: " when a line is at fault); @ret is
 * then unspecified. */
int gi_manifest_parse(char *text, GiManifest *ret, char *error, size_t error_size);

/* The module name of a manifest module path: its last component without
 * ".ko", with '-' turned into '_' as the kernel does ("nvidia-uvm.ko" ->
 * "nvidia_uvm"). Writes at most @size bytes including the NUL into @buf. */
void gi_module_name(const char *path, char *buf, size_t size);

#define GI_MODINFO_MAX_DEPENDS 32

/* What a module's .modinfo section (NUL-separated "key=value" strings, as
 * modpost writes them) says about its load order. */
typedef struct {
  char depends[GI_MODINFO_MAX_DEPENDS][64]; /* "depends=": module names ('-' turned into '_'), in order */
  size_t n_depends;
  bool has_depends;                         /* a "depends=" string was there (modpost always writes one) */
  bool softdep;                             /* a "softdep=": order constraints the kernel does not check */
} GiModinfo;

/* Parses @len bytes of a .modinfo section. Returns 0, or -E2BIG when a
 * module names more than GI_MODINFO_MAX_DEPENDS dependencies or a name
 * longer than 63 bytes (the caller then loads it after every module before
 * it). Pure: no I/O. */
int gi_modinfo_parse(const char *data, size_t len, GiModinfo *ret);
