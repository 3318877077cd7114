/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vfioctl's verbs and the one skeleton they run in (cli.c): parse the
 * verb's options (and --json), check its positional arguments, its own
 * checks, connect to vfiod (unless the verb is local), call, print, map
 * the error to the exit status. A verb (cli-host.c, cli-sandbox.c,
 * cli-image.c, pool-cli.c) holds only what is its own. Single-threaded. */

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "cli.h"
#include "vfd-dbus.h"

typedef struct {
  const char *socket_path;
  gboolean json;
} Cli;

/* What a verb's positional arguments may be (argv[0] is the verb); each
 * kind has its own usage message. */
typedef enum {
  VFD_CLI_ARGS_NONE,       /* "<verb> takes no arguments" */
  VFD_CLI_ARGS_NONE_NAMED, /* "<verb>: unexpected argument '<arg>'" */
  VFD_CLI_ARGS_BDF,        /* exactly one BDF, checked: VfdCliCall.arg */
  VFD_CLI_ARGS_ID,         /* exactly one sandbox id: VfdCliCall.arg */
  VFD_CLI_ARGS_ANY,        /* the verb's check() looks at them */
} VfdCliArgs;

typedef struct VfdCliVerb VfdCliVerb;

/* One run of a verb. */
typedef struct {
  Cli *cli;
  const VfdCliVerb *verb;
  int argc;          /* after option parsing */
  char **argv;
  const char *arg;   /* the positional argument of VFD_CLI_ARGS_BDF/_ID */
  VfdManager1 *api;  /* connected before run() unless the verb is local */
  void *opts;        /* the verb's option values: opts_size bytes, zeroed */
} VfdCliCall;

/* The arg_data of an option of a verb: where its value is in the verb's
 * option values, a struct @type. */
#define VFD_CLI_OPT(type, field) GSIZE_TO_POINTER(G_STRUCT_OFFSET(type, field))

/* check() returns this to go on. */
#define VFD_CLI_GO_ON (-1)
/* run() returns this when it failed with its GError set: the skeleton
 * prints it and maps it to the exit status (map_error, else the API's). */
#define VFD_CLI_ERROR (-2)

struct VfdCliVerb {
  const char *name;    /* "list", "sandbox create": prgname "vfioctl <name>", messages */
  const char *summary; /* its lines of `vfioctl --help` (after "Commands:"), exactly */
  const char *params;  /* GOptionContext parameter string of its --help: "", "BDF", "ID" */
  VfdCliArgs args;
  gboolean local;      /* no daemon: run() gets no api */
  /* Runs in vfioctl-tool (<libexecdir>/vfiod; the verbs that need libarchive,
   * libkmod, libpci, libnl or libnftables): vfioctl has only this entry's
   * name and summary and execs the tool with its own argv, which runs the
   * entry of vfd_cli_tool_verbs[] by the same name. Nothing else is set. */
  gboolean tool;
  int timeout_ms;      /* the API's call timeout when > 0 (GDBus' default otherwise) */
  gsize opts_size;     /* bytes of the verb's option values (VfdCliCall.opts) */
  /* The verb's options, ending with { NULL }: arg_data is the offset of
   * the value in the verb's option values (VFD_CLI_OPT()); the strings and
   * string arrays left there are freed after the run. NULL: none but
   * --json. */
  const GOptionEntry *options;
  /* Presets the option values (zeroed before) ahead of parsing; NULL: none. */
  void (*init)(void *opts);
  /* Frees what else the verb keeps in its option values; NULL: nothing. */
  void (*clear)(void *opts);
  /* Checks before connecting (usage errors); VFD_CLI_GO_ON or an exit
   * status. NULL: none. */
  int (*check)(VfdCliCall *call);
  /* Does the verb's work and prints; an exit status, or VFD_CLI_ERROR
   * with @error set. */
  int (*run)(VfdCliCall *call, GError **error);
  /* Prints @error and returns the exit status for it; NULL:
   * vfd_cli_report_error(). */
  int (*map_error)(const GError *error);
  /* Printed after an option parsing error instead of "Try 'vfioctl
   * --help'." (pool's own usage); NULL: that line. */
  const char *parse_usage;
};

/* The verbs, in `vfioctl --help` order (cli.c puts them in its table);
 * doctor, pool, initramfs build and image build are the tool's
 * (cli-tool-verbs.c: name and summary only). */
extern const VfdCliVerb vfd_cli_verb_list, vfd_cli_verb_bind, vfd_cli_verb_release, vfd_cli_verb_open_group,
    vfd_cli_verb_pool,
    vfd_cli_verb_doctor, vfd_cli_verb_capabilities, vfd_cli_verb_reconcile, vfd_cli_verb_sandbox_create,
    vfd_cli_verb_sandbox_list, vfd_cli_verb_sandbox_show, vfd_cli_verb_sandbox_console, vfd_cli_verb_sandbox_delete, vfd_cli_verb_sandbox_stop, vfd_cli_verb_sandbox_start,
    vfd_cli_verb_sandbox_watch,
    vfd_cli_verb_initramfs_build, vfd_cli_verb_image_build;

/* The tool verbs' implementations (cli-tool.c, linked into vfioctl-tool
 * only), NULL-terminated; each has the name of a tool entry of the table. */
extern const VfdCliVerb *const vfd_cli_tool_verbs[];

/* vfioctl's main with its global options; a tool verb is run from
 * @tool_verbs (NULL: vfioctl-tool is exec'd with @argv, and this returns
 * only when that fails: VFD_EXIT_FAILED, said on stderr). Returns the exit
 * status. */
int vfd_cli_run(int argc, char **argv, const VfdCliVerb *const *tool_verbs);

/* Prints "vfioctl: <message>" and "Try 'vfioctl --help'." to stderr;
 * returns VFD_EXIT_USAGE. */
int vfd_cli_usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Prints an API error (without its D-Bus remote name) to stderr; returns
 * VFD_EXIT_USAGE for INVALID_ARGUMENT and NOT_FOUND, else
 * VFD_EXIT_FAILED. */
int vfd_cli_report_error(const GError *error);

/* Checks @s as a BDF; on failure prints why (escaped, at most 64 bytes of
 * it) and returns FALSE. */
gboolean vfd_cli_check_bdf(const char *s);

/* pins.env / versions.env: the installed copies (<datadir>/vfiod), else
 * the source tree's (a build that is not installed); @name is one of
 * those two. The string is kept for the process' life. */
const char *vfd_cli_default_pins_path(const char *name);
#define DEFAULT_PINS_FILE vfd_cli_default_pins_path("pins.env")
#define DEFAULT_VERSIONS_FILE vfd_cli_default_pins_path("versions.env")

/* ---- output (--json and text) ---- */

/* Prints @node as pretty JSON and a newline to stdout. */
void vfd_cli_print_json(JsonNode *node);

/* Adds the a{sv} @dict_v to @b as a JSON object of @keys (NULL-terminated,
 * in that order): iommu_group -1 and absent driver, owner, owner_uid and
 * name as null; ready_report embedded as JSON when it parses. */
void vfd_cli_add_object(JsonBuilder *b, GVariant *dict_v, const char *const *keys);

/* Prints the aa{sv} @list as a JSON array of vfd_cli_add_object()s. */
void vfd_cli_print_object_list(GVariant *list, const char *const *keys);

/* Prints the a{sv} @dict as one vfd_cli_add_object(). */
void vfd_cli_print_object(GVariant *dict, const char *const *keys);

/* Adds the member @name to @b: the string @value, or null when NULL. */
void vfd_cli_add_string_member(JsonBuilder *b, const char *name, const char *value);

/* The string @key of @d, else @fallback. */
const char *vfd_cli_dict_str(GVariantDict *d, const char *key, const char *fallback);

/* The JSON keys of a device and of a sandbox (ListDevices, GetSandbox). */
extern const char *const vfd_cli_device_keys[];
extern const char *const vfd_cli_sandbox_keys[];
