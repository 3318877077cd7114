/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What stage.c (the image: manifest, stamp, cache, writing) and
 * stage-modules.c (the modules and firmware that go in) share. */

#include "stage.h"

#define FIRMWARE_IMAGE_DIR "/lib/firmware"

typedef struct kmod_ctx KmodCtx;
typedef struct kmod_module KmodModule;
typedef struct kmod_list KmodList;

/* One file of the image besides /init. */
typedef struct {
  char *source; /* host path */
  char *dest;   /* image path */
} StagedFile;

/* A module on its way into the image. */
typedef struct {
  char *name;       /* kmod's name, e.g. "nvidia_uvm" */
  char *dest;       /* image path */
  GPtrArray *params; /* "KEY=VALUE" */
} StagedModule;

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

/* Frees a StagedFile (its strings too). */
void vfd_staged_file_free(StagedFile *f);

/* Frees a StagedModule (its strings and params too). */
void vfd_staged_module_free(StagedModule *m);

/* Frees what @s holds and NULLs it; @s itself is the caller's (g_auto). */
void vfd_stager_clear(Stager *s);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Stager, vfd_stager_clear)

/* Resolves the request's modules (with gpu: nvidia, checked against the
 * pinned driver version, and nvidia_modeset, nvidia_uvm when present)
 * under modules_dir with libkmod: dependencies first into @s->order, each
 * checked (an uncompressed .ko inside the tree, vermagic of the pinned
 * release) and added to @s->files. FALSE with @error (G_IO_ERROR):
 * NOT_FOUND (a module or modules.dep.bin missing), INVALID_ARGUMENT (a
 * refused module or tree), FAILED (libkmod), or the tree's I/O error. */
gboolean vfd_stager_stage_modules(Stager *s, GError **error);

/* Attaches the request's "MOD:KEY=VAL" parameters to the staged modules
 * (after vfd_stager_stage_modules()). FALSE with @error
 * G_IO_ERROR_INVALID_ARGUMENT for a malformed one or one for a module that
 * is not staged. */
gboolean vfd_stager_add_params(Stager *s, GError **error);

/* Adds the regular files of the pinned NVIDIA driver's firmware
 * (firmware_dir/nvidia/<version>/) to @s->files under FIRMWARE_IMAGE_DIR.
 * FALSE with @error (G_IO_ERROR): NOT_FOUND (no such directory, or no
 * files in it), INVALID_ARGUMENT (a symlink or special file), or the I/O
 * error. */
gboolean vfd_stager_stage_firmware(Stager *s, GError **error);
