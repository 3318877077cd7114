/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "bdf.h"

/* The durable journal: what vfiod changed on the host, so that every change
 * can be undone exactly, even after a crash. One JSON document (json-glib)
 * at <state_dir>/journal.json:
 *
 *   {"format":"vfiod-journal","version":1,
 *    "devices":[{"bdf":"0000:01:00.0","iommu_group":12,"state":"bound",
 *                "owner":"sb-1a2b3c4d","original_driver":"nvidia"|null,
 *                "original_override":"",
 *                "original_d3cold_allowed":"1", "original_reset_method":"flr bus"}],
 *    "sandboxes":[{"id":"sb-1a2b3c4d","pid":1234,"start_time":5678,
 *                  "devices":["0000:01:00.0"],"dir":"/run/vfiod/sandboxes/sb-1a2b3c4d",
 *                  "subnet":"10.0.128.4/30","tap":"vfd1a2b3c4d","mac":"02:..","cid":3,"nat":false,
 *                  "name":"web","labels":{"app":"x"},"spec":"<sha256 hex>",
 *                  "workload_exit_status":3,"workload_signal":0,"failure_reason":"..."}]}
 * (the network members are optional: absent when the sandbox has none;
 * so are the identity and workload members: absent in records written
 * before them, or when there is none;
 * original_d3cold_allowed and original_reset_method are absent when the bind
 * leaves that attribute as it is).
 *
 * Commit writes a temp file, fsyncs it, renames it over the journal and
 * fsyncs the directory, so a reader sees either the old or the new state. */

typedef enum {
  VFD_DEVICE_STATE_HOST,      /* on its host driver; not in the journal */
  VFD_DEVICE_STATE_BINDING,   /* journaled, sysfs writes towards vfio-pci under way */
  VFD_DEVICE_STATE_BOUND,     /* on vfio-pci, owned by `owner` */
  VFD_DEVICE_STATE_RELEASING, /* sysfs writes back to the original driver under way */
  VFD_DEVICE_STATE_STUCK,     /* a sysfs write never returned; needs an operator */
} VfdDeviceState;

/* "host", "binding", "bound", "releasing", "stuck". */
const char *vfd_device_state_to_string(VfdDeviceState state);
/* -EINVAL for an unknown name. */
int vfd_device_state_from_string(const char *s, VfdDeviceState *ret);

typedef struct {
  VfdBdf bdf;
  int iommu_group;
  VfdDeviceState state;
  char *owner;             /* sandbox id or operator-given name; never NULL */
  char *original_driver;   /* NULL: the device had no driver */
  char *original_override; /* "" when there was none */
  char *original_d3cold;   /* sysfs d3cold_allowed before the bind wrote 0 ("1"); NULL: not changed */
  char *original_reset_method; /* sysfs reset_method before the bind took bus resets out of it
                                * (NO_BUS_RESET device); NULL: not changed */
  guint32 owner_uid;       /* uid of the API client that bound it (for a sandbox's devices, the
                            * sandbox's owner); 0: root, also for records written before owners */
} VfdJournalDevice;

/* Frees the strings a bind keeps to put a device back: a record's
 * original_* members, or a bind's own copies of them. */
void vfd_journal_free_originals(char *driver, char *override, char *d3cold, char *reset_method);

typedef struct {
  char *id;
  gint64 pid;
  guint64 start_time; /* /proc/<pid>/stat field 22, clock ticks since boot */
  GStrv devices;      /* BDFs passed through, sorted */
  char *dir;          /* per-sandbox runtime directory */
  /* Network ([network] enabled); NULL / 0 when the sandbox has none. */
  char *subnet; /* "10.0.128.4/30": host gets .5, guest .6 */
  char *tap;    /* "vfd1a2b3c4d" */
  char *mac;    /* the guest side's MAC, "02:..." */
  guint32 cid;  /* vsock CID, 0: none */
  gboolean nat; /* egress NAT through [network] nat_uplink */
  guint32 owner_uid; /* uid of the API client that created it; 0: root (also older records) */
  guint32 qemu_uid;  /* uid its QEMU runs as ([qemu] user / uid_range); 0: root */
  guint32 memory_mib; /* guest RAM, MiB; 0: not recorded (older records) */
  guint32 vcpus;      /* 0: not recorded */
  int numa_node;      /* host node its RAM and devices are bound to; -1: none (also when absent) */
  /* Identity (issue 15, item 1); absent in older records. */
  char *name;   /* the client's name for it (identity.h rules); NULL: none */
  GStrv labels; /* key, value, key, value, ... (identity.h rules); NULL or empty: none */
  char *spec;   /* vfd_sandbox_spec_hash() of its create's options; NULL: not recorded */
  /* The workload's result as guest-init reported it (issue 15, item 4). */
  gboolean workload_exited; /* guest-init reported VFIOD_EXIT: the two below hold */
  int workload_exit_status; /* VFIOD_EXIT's status (0-255) */
  int workload_signal;      /* VFIOD_EXIT's signal; 0: none */
  char *failure_reason;     /* VFIOD_FATAL's error; NULL: none */
} VfdJournalSandbox;

typedef struct VfdJournal VfdJournal;

/* Sandbox ids as vfiod generates them (create.c new_sandbox_id(),
 * "sb-%08x"): "sb-" and 8 lower-case hex digits. */
#define VFD_SANDBOX_ID_PREFIX "sb-"
#define VFD_SANDBOX_ID_DIGITS 8

/* True when @id (may be NULL) has exactly that form. */
gboolean vfd_journal_sandbox_id_valid(const char *id);

/* Opens the journal in @state_dir (created 0700 if missing). A missing
 * journal file is an empty journal. An unreadable, unparsable or
 * unknown-version file fails with VFD_ERROR_CORRUPT; a copy of it is kept
 * as journal.json.corrupt-<unix time> and the message names that copy.
 * The file is not trusted (it may have been tampered with): the text is
 * checked before json-glib parses it (vfd_json_text_check(): one object,
 * nested at most 32 deep), and every member is checked for its type, range
 * and form, never read as a default. Besides types and ranges: BDFs parse;
 * a sandbox's id has the form above and is unique; its dir is absolute
 * without "." or ".." components; subnet is an IPv4 CIDR
 * (vfd_subnet_parse()); tap is "vfd" + 1..12 lower-case hex digits; mac is
 * "xx:xx:xx:xx:xx:xx" in lower-case hex; subnet, tap and mac are all
 * present or all absent; cid is 0 or a guest CID (>= 3). Any violation is
 * VFD_ERROR_CORRUPT with a message naming the record and the member, e.g.
 * 'malformed sandbox record sb-1a2b3c4d: "tap" is not a vfiod TAP name'. */
VfdJournal *vfd_journal_open(const char *state_dir, GError **error);
void vfd_journal_free(VfdJournal *journal);

/* An empty journal for @state_dir that has not read the file there: the
 * next commit replaces it. For starting over after a corrupt journal
 * (the corrupt file was kept aside by vfd_journal_open). */
VfdJournal *vfd_journal_new_empty(const char *state_dir);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfdJournal, vfd_journal_free)

const char *vfd_journal_path(const VfdJournal *journal);

/* Durably writes the in-memory state (see above). G_FILE_ERROR on failure;
 * the in-memory state is kept either way. */
gboolean vfd_journal_commit(VfdJournal *journal, GError **error);

/* Device records, sorted by BDF; the journal owns them. */
GPtrArray *vfd_journal_devices(VfdJournal *journal);
VfdJournalDevice *vfd_journal_lookup(VfdJournal *journal, const VfdBdf *bdf);
/* Inserts a copy of @dev, replacing any record with the same BDF; returns
 * the journal's record. */
VfdJournalDevice *vfd_journal_put(VfdJournal *journal, const VfdJournalDevice *dev);
void vfd_journal_remove(VfdJournal *journal, const VfdBdf *bdf);

GPtrArray *vfd_journal_sandboxes(VfdJournal *journal);
VfdJournalSandbox *vfd_journal_lookup_sandbox(VfdJournal *journal, const char *id);
VfdJournalSandbox *vfd_journal_put_sandbox(VfdJournal *journal, const VfdJournalSandbox *sb);
void vfd_journal_remove_sandbox(VfdJournal *journal, const char *id);
