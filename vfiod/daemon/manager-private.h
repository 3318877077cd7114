/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The manager's insides, shared by its files (not installed): manager.c
 * (life cycle, reload), sandbox-object.c (the Sandbox), ops.c (work off the
 * main loop), create.c, stop.c, sandbox-net.c, api-handlers.c,
 * api-variant.c, pool-sync.c, reconcile-run.c, report-listener.c. Unless a
 * prototype says otherwise: main loop only; errors are GErrors of
 * VFD_ERROR. */

#include <gio/gio.h>
#include <gmodule.h>
#include <net/if.h>
#include <sys/types.h>

#include "api-server.h"
#include "caller.h"
#include "config.h"
#include "device.h"
#include "error.h"
#include "firewall.h"
#include "guest-disks.h"
#include "journal.h"
#include "manager.h"
#include "metrics.h"
#include "netpool.h"
#include "pool.h"
#include "procfs.h"
#include "qemu-argv.h"
#include "ready-report.h"
#include "reconcile.h"
#include "report-conn.h"
#include "tap.h"
#include "vfd-dbus.h"

typedef enum {
  SANDBOX_CREATING,
  SANDBOX_RUNNING,
  SANDBOX_STOPPING,
  SANDBOX_STOPPED,
  SANDBOX_FAILED, /* QEMU exited by itself with an error, or guest-init reported VFIOD_FATAL */
  SANDBOX_EXITED, /* the workload ended (guest-init reported VFIOD_EXIT) and QEMU exited */
} SandboxState;

/* Names of the states, as the API and the metrics give them. */
extern const char *const sandbox_state_names[];

/* What a create was asked for, kept by the sandbox so that StartSandbox
 * can launch it again after a StopSandbox (issue 15, item 8): in memory
 * only, never journaled (it holds the workload's files and secrets), so a
 * sandbox adopted after a vfiod restart has none and cannot be started
 * again. Its disks stay open (the client's fds, or opened with its rights
 * at the first create): a start attaches the very same files. */
typedef struct {
  char *kernel; /* the client's (kernel_from_client) or [qemu] kernel */
  char *initrd;
  gboolean kernel_from_client;
  gboolean initrd_from_client;
  GPtrArray *disks; /* VfdDisk (guest-disks.h) */
  char *cmd;        /* NULL: none */
  GStrv args;
  GVariant *env;   /* a{ss}, or NULL */
  GVariant *files; /* aa{sv}, or NULL */
  guint gpus;         /* "any N": picked anew at each start */
  GArray *requested;  /* VfdBdf the client named (empty with @gpus) */
  VfdCaller caller;   /* the creating client, whose rights open the files it named */
} SandboxLaunch;

void sandbox_launch_free(SandboxLaunch *l);

/* A sandbox. Reference-counted (issue 14, defect 3): the manager's table
 * holds one reference while the sandbox is known, and every operation
 * (Op) that works on it holds one until its completion has run on the main
 * loop, so a delete that finishes first cannot free it under a pending
 * stop step. References are taken and dropped on the main loop only. When
 * the table drops it (deleted, or vfiod stopping), sandbox_dispose() ends
 * what would act on it later (timers, watches, fds, its QEMU uid); the
 * memory goes with the last reference. */
typedef struct {
  int refs;
  gboolean disposed; /* dropped by the manager: operations still holding it do nothing more */
  VfdManager *manager;
  VfdConfig *config; /* a reference: the configuration when it was created or adopted (workers read this one) */
  char *id;
  char *dir;        /* <runtime>/sandboxes/<id>: root's, 0711 */
  char *qemu_dir;   /* <dir>/qemu: the QEMU uid's, 0700 (QMP socket, pidfile) */
  char *serial_log; /* <dir>/serial.log: root's, 0600; QEMU writes it through an fd */
  int serial_fd;    /* vfiod's own fd of it (read, cut back), -1: none */
  uid_t qemu_uid;   /* QEMU runs as (0: root) */
  gid_t qemu_gid;
  gboolean qemu_uid_held; /* qemu_uid is one of [qemu] uid_range, held in the manager's qemu_uids */
  guint memory_mib;
  guint vcpus;
  GArray *devices; /* VfdBdf, sorted */
  SandboxState state;
  gint64 pid;
  int exit_status; /* valid when STOPPED; -1 unknown */
  GSubprocess *proc; /* NULL when adopted after a restart */
  int pidfd;         /* adopted: watched for exit */
  guint pidfd_source;
  gboolean vm_gone;  /* QEMU's end was seen (pidfd, child watch or libvirt event): handled once per run */
  guint kill_timeout;
  guint stop_stage; /* 0: asked the guest; 1: asked QEMU to quit; 2: SIGKILL sent */
  GPtrArray *waiters; /* GDBusMethodInvocation of pending DeleteSandbox calls */
  gint64 created_us;  /* monotonic */
  gboolean ready;     /* guest-init printed VFIOD_READY */
  char *ready_report; /* its JSON */
  gint64 ready_ms;
  GFileMonitor *serial_monitor;
  guint serial_recheck; /* fallback timer next to the monitor */
  goffset serial_offset;
  GString *serial_pending;
  gboolean deleting; /* a delete asked for the stop */
  uid_t owner_uid;   /* the API client that created it (0: root); journaled; only it and root may delete it */
  /* network ([network] enabled) */
  gboolean has_net;
  VfdSubnet subnet;
  char tap[IFNAMSIZ];
  char mac[VFD_MAC_STRLEN];
  guint32 cid; /* 0: no vsock */
  gboolean tap_created;
  int numa_node; /* all passed devices on this node, else -1 */
  VfdAddressPlan plan; /* Q35: the guest's 64-bit PCI window and address width */
  /* identity (issue 15, item 1): set before the create goes to a worker, journaled */
  char *name;       /* the client's name (identity.h), NULL: none; held in the manager's names */
  GVariant *labels; /* a{ss}, NULL: none */
  char *spec;       /* vfd_sandbox_spec_hash() of the create's options */
  /* the workload's result from the console (issue 15, item 4), journaled */
  gboolean workload_exited; /* VFIOD_EXIT seen: the two below hold */
  int workload_exit_status;
  int workload_signal;
  char *failure_reason; /* VFIOD_FATAL's error, NULL: none seen */
  /* StopSandbox / StartSandbox (issue 15, item 8) */
  SandboxLaunch *launch;    /* NULL when adopted after a restart */
  gboolean stop_requested;  /* a StopSandbox asked for the stop under way: it ends "stopped" */
  GPtrArray *stop_waiters;  /* GDBusMethodInvocation of pending StopSandbox calls */
  guint starts;             /* StartSandbox calls that launched it again */
} Sandbox;

struct VfdManager {
  VfdConfig *config;
  VfdHost *host;
  char *socket_path;
  char *sandboxes_dir;
  GHashTable *sandboxes; /* id -> Sandbox */
  VfdApiServer *api; /* the API on socket_path (api-server.c) */
  GDBusAuthObserver *observer;
  VfdManager1 *skeleton;
  gid_t allowed_gid;
  gboolean have_allowed_gid;
  char *allowed_group; /* its name, for the authentication thread (which must not read m->config) */
  char *journal_corrupt; /* non-NULL: the journal could not be read; no device is touched */
  /* network: pools and firewall state, shared with worker threads */
  GMutex net_lock;
  VfdSubnetPool *pool;
  VfdCidPool *cids;
  VfdFirewallState *fw;
  gboolean have_vsock;   /* /dev/vhost-vsock exists: CIDs, vsock device, report listener */
  GSocketService *report_service;
  VfdReportConns *report_conns; /* guests' report connections (bounded) */
  uid_t qemu_uid;         /* [qemu] user's uid, 0: root (QEMU runs as root) */
  gid_t qemu_gid;         /* [qemu] user's group: every QEMU's gid */
  gid_t kvm_gid;          /* the kvm group (/dev/kvm) for QEMUs under KVM; (gid_t) -1: none */
  guint serial_cap_timer; /* cuts console logs back ([qemu] serial_log_max), writes [daemon] metrics_file */
  VfdMetrics metrics;     /* operation counters (main loop); gauges are counted when written */
  GHashTable *qemu_uids;  /* uids of [qemu] uid_range sandboxes hold (GUINT_TO_POINTER) */
  GHashTable *creating;   /* ids of sandboxes whose create is under way (main loop): live for reconcile */
  GHashTable *names;      /* name -> Sandbox (borrowed) of every sandbox in sandboxes or creating that has a name */
  int host_cpu_read;      /* GetCapabilities: 0 not read yet, 1 host_cpu holds /proc/cpuinfo's, -1 unreadable */
  VfdHostCpu host_cpu;    /* address widths do not change while the host runs: read once */
  VfdConfig *pool_config; /* the start-up configuration, a reference: [pool] keys apply at start-up (read on any
                           * thread: pool lending, CDI, reconcile) */
  /* [vm] backend = libvirt (vm-libvirt.c) */
  GModule *lv_module;      /* vfiod-libvirt.so (libvirt-module.h), NULL: not loaded */
  const void *lv_ops;      /* its VfdLibvirtOps */
  struct VfdLibvirt *lv;   /* its handle for [libvirt] uri (any thread; NULL: no module) */
  guint lv_retry;          /* reconnect timer */
};

/* ---- device work off the main loop --------------------------------------
 * Binds and releases can block in the kernel (up to the write timeout, or
 * forever for the parked write itself); they run on worker threads so that
 * the API keeps answering. `work` runs on a worker, `done` back on the main
 * loop with the error (NULL on success). */
typedef struct Op Op;
typedef gboolean (*OpWork)(Op *op, GError **error);
typedef void (*OpDone)(Op *op, GError *error);

struct Op {
  VfdManager *m;
  VfdConfig *config; /* a reference: the configuration when the op was made; workers read this one */
  GDBusMethodInvocation *inv; /* may be NULL */
  OpWork work;
  OpDone done;
  VfdBdf bdf;
  char *owner;
  uid_t uid;       /* bind, release: the API client's uid (0: root) */
  GArray *members; /* result: VfdBdf */
  int group;
  Sandbox *sandbox; /* a reference (op_finished drops it), or NULL */
  char *kernel;
  char *initrd;
  gboolean kernel_from_client; /* create: named by the client (else [qemu] kernel/initrd) */
  gboolean initrd_from_client;
  VfdCaller caller;  /* create: the client, whose rights open the files it names */
  int kernel_fd;     /* create: opened in stage 0, -1 when not (yet) or handed to QEMU */
  int initrd_fd;
  int layer_fd;      /* create: [qemu] driver_layer, read-only; -1 when none */
  GArray *requested; /* VfdBdf */
  VfdBindFlags flags;
  gint64 started_us; /* monotonic, when the op was made: for the metrics */
  guint gpus;   /* create: pick this many units */
  GPtrArray *disks; /* create: VfdDisk (guest-disks.h), shared with the request and the sandbox's launch */
  char *cmd;    /* create: workload */
  GStrv args;
  GVariant *env; /* create: a{ss} for the workload */
  GVariant *files; /* create: aa{sv} files for the workload's root, or NULL */
  GHashTable *live; /* reconcile: ids of running sandboxes */
  GPtrArray *report; /* reconcile: VfdReconcileItem */
  gboolean force;
  gboolean restart; /* create: a StartSandbox of a stopped sandbox (it is in the manager's table) */
};

/* A create's request as CreateSandbox checked it (api-handlers.c) and
 * vfd_mgr_create_begin() takes it. Strings and @env are borrowed from the
 * call (copied by the create). */
typedef struct {
  const char *kernel; /* the client's (kernel_from_client) or [qemu] kernel */
  const char *initrd;
  gboolean kernel_from_client;
  gboolean initrd_from_client;
  GPtrArray *disks; /* VfdDisk (guest-disks.h): a reference, never NULL */
  const char *cmd;  /* NULL: none */
  const char *const *args;
  GVariant *env; /* a{ss}, or NULL */
  GVariant *files; /* aa{sv}, or NULL */
  const char *name;  /* NULL: none */
  GVariant *labels;  /* a{ss}, or NULL */
  const char *spec;  /* vfd_sandbox_spec_hash() of the options */
  guint memory_mib;
  guint vcpus;
  guint gpus;          /* "any N" units; 0 when @requested names the functions */
  GArray *requested;   /* VfdBdf the client named: taken */
  VfdCaller caller;    /* the client: taken */
} CreateRequest;

/* ---- manager.c ---------------------------------------------------------- */

/* FALSE with VFD_ERROR_CORRUPT (saying what to do) while the journal could
 * not be read: no device work then. */
gboolean vfd_mgr_check_journal_ok(VfdManager *m, GError **error);

/* ---- sandbox-object.c --------------------------------------------------- */

/* A new sandbox @id (one reference, state CREATING, nothing on the host
 * yet), with the manager's current configuration (a reference) and its
 * paths under <runtime>/sandboxes/<id>. */
Sandbox *sandbox_new(VfdManager *m, const char *id);

/* Takes a reference to @s; returns @s. */
Sandbox *sandbox_ref(Sandbox *s);

/* Drops a reference; the last one disposes of @s and frees it. NULL is
 * fine. */
void sandbox_unref(Sandbox *s);

/* The manager's table lets go of @p (a Sandbox): the table's free
 * function. Ends what would act on it later; operations holding a
 * reference keep its memory until they finish. */
void sandbox_drop(gpointer p);

/* The sandbox named @id_or_name: an id ("sb-...") in the table or being
 * created, or a name; NULL when none. *@ret_creating (may be NULL): it is
 * being created. */
Sandbox *vfd_mgr_find_sandbox(VfdManager *m, const char *id_or_name, gboolean *ret_creating);

/* @s lets go of its name (no longer found by it); nothing when it has
 * none or another sandbox holds it. */
void sandbox_forget_name(Sandbox *s);

/* Clears what the last run of @s left (QEMU's process and watches, the
 * console's reading state, readiness, the workload's result, devices,
 * plan, CID) before a StartSandbox runs the create's stages on it again;
 * the directory is the caller's. */
void sandbox_reset_for_start(Sandbox *s);

/* Scans the rest of the console log of @s (ready line, the workload's
 * result); called once more when QEMU has exited. */
void sandbox_check_serial(Sandbox *s);

/* Sets the state and emits SandboxStateChanged (slow clients are kicked
 * first). */
void sandbox_set_state(Sandbox *s, SandboxState state);

/* SandboxEvent (org.vfiod.Manager1.xml has the stages): sandbox @id's
 * @stage at @timestamp_usec (CLOCK_REALTIME, g_get_real_time()), with
 * @reason and @message (NULL: ""; cut to 1024 bytes, made valid UTF-8),
 * sent to the connections of root and of @owner_uid only (a failed
 * create's message can name the owner's files). */
void vfd_mgr_emit_event(VfdManager *m, const char *id, uid_t owner_uid, const char *stage, gint64 timestamp_usec,
                        const char *reason, const char *message);

/* vfd_mgr_emit_event() for @s now; the message from @fmt. */
void sandbox_event(Sandbox *s, const char *stage, const char *reason, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* The same from a worker that owns @s (a create's): the time is taken
 * now, the signal is sent from the main loop, before the operation's
 * completion. */
void sandbox_event_from_worker(Sandbox *s, const char *stage, const char *reason, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* @s is gone from vfiod (deleted, or its create rolled back): the
 * "removed" SandboxEvent, then SandboxRemoved(id, name). */
void sandbox_removed(Sandbox *s);

/* g_warning() for refusals a guest can cause at will: at most 5 per 10 s,
 * all callers together. */
void vfd_mgr_guest_warning(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* guest-init reported ready on @channel ("console", "vsock"); @report (the
 * text after "VFIOD_READY ") is taken. A report that fails validation is
 * logged (rate-limited) and dropped. */
void sandbox_mark_ready(Sandbox *s, char *report, const char *channel);

/* Cuts the console log of @s back to nothing once it is larger than @max
 * bytes (the ready line is looked for first). Failures are logged. */
void sandbox_cap_serial(Sandbox *s, guint64 max);

/* Opens <dir>/serial.log of @s without following links: created (@create,
 * O_EXCL) or existing; keeps vfiod's fd in s->serial_fd. Any thread that
 * owns @s (a create's worker, or the main loop). */
gboolean sandbox_open_serial(Sandbox *s, gboolean create, GError **error);

/* A write-only, append fd of the console log for QEMU (taken by the
 * caller); -1 with errno. Worker. */
int sandbox_open_serial_for_qemu(Sandbox *s);

/* Follows the console log of @s for guest-init's ready line: check,
 * subscribe (file monitor and a 2 s re-check), check again. */
void sandbox_watch_serial(Sandbox *s);

/* The BDFs of @bdfs (VfdBdf) as a NULL-terminated string array (the
 * caller's). */
GStrv vfd_mgr_bdf_strv(GArray *bdfs);

/* Releases every IOMMU group the sandbox holds (a worker: it can block in
 * the kernel); logs what it could not, and returns the first error. */
gboolean sandbox_release_devices(Sandbox *s, GError **error);

/* Removes a sandbox directory @dir and what it holds, never following a
 * link or crossing a mount. Nothing when @dir is not a directory. Any
 * thread. */
void vfd_mgr_remove_dir_tree(const char *dir);

/* Console logs kept after a sandbox is gone, for post-mortems: at most
 * this many, the newest, in <runtime_dir>/consoles (root's, 0700). */
#define VFD_CONSOLES_KEPT 32

/* Moves @dir's serial.log (sandbox @id's, owned by uid @owner) to
 * <runtime_dir>/consoles/<id>.<owner>.log before @dir is removed, and
 * removes the oldest kept logs beyond VFD_CONSOLES_KEPT. Best effort (a
 * failure is logged, nothing else); nothing for a bad id or no log. */
void vfd_mgr_keep_console(VfdManager *m, const char *id, uid_t owner, const char *dir);

/* The kept console log of the removed sandbox @id (newly allocated path)
 * and its owner's uid, or NULL when none is kept. */
char *vfd_mgr_kept_console_path(VfdManager *m, const char *id, uid_t *ret_owner);

/* ---- ops.c -------------------------------------------------------------- */

/* A new operation with a reference to the manager's current configuration;
 * takes the handler's reference to @inv (may be NULL). Run it with
 * vfd_mgr_op_run(), or free it with vfd_mgr_op_free() after setting
 * op->inv to NULL (the caller answers @inv itself then). */
Op *vfd_mgr_op_new(VfdManager *m, GDBusMethodInvocation *inv, OpWork work, OpDone done);

/* Frees @p (an Op): its fds, strings, configuration and invocation
 * references. The sandbox reference is dropped by the completion, not
 * here. */
void vfd_mgr_op_free(gpointer p);

/* Runs op->work on a worker thread, then op->done on the main loop; takes
 * @op (freed after done, and op->sandbox's reference dropped). */
void vfd_mgr_op_run(Op *op);

/* Seconds since @op was made (for the metrics). */
double vfd_mgr_op_seconds(Op *op);

/* ---- stop.c ------------------------------------------------------------- */

/* Starts the graceful stop of running @s (state STOPPING already): the
 * guest is asked to power off, then QEMU to quit, then it is killed; the
 * QMP requests run on workers. */
void vfd_mgr_stop_begin(Sandbox *s);

/* g_subprocess_wait_async() callback for a QEMU vfiod started (@data: the
 * VfdManager): its sandbox's exit is handled (devices released on a
 * worker, deletes answered). */
void vfd_mgr_on_qemu_wait(GObject *source, GAsyncResult *res, gpointer data);

/* g_unix_fd_add() callback on the pidfd of an adopted QEMU (@data: the
 * Sandbox): the same on its exit. */
gboolean vfd_mgr_on_pidfd_ready(gint fd, GIOCondition cond, gpointer data);

/* DeleteSandbox for @s, the caller checked: takes the handler's reference
 * to @inv (answered once the sandbox is gone, or with the error). A
 * sandbox being created (@creating) is stopped by its create's completion;
 * a running one is stopped; a stopped one has its release retried, then
 * goes. */
void vfd_mgr_delete_begin(Sandbox *s, GDBusMethodInvocation *inv, gboolean creating);

/* StopSandbox for @s, the caller checked: takes the handler's reference to
 * @inv, answered with the sandbox (state "stopped") once QEMU is gone and
 * the devices and network are given back; at once when it is stopped
 * already. Busy while it is being created, started or deleted. The
 * sandbox, its name, its directory (console) and its disks stay. */
void vfd_mgr_stop_request(Sandbox *s, GDBusMethodInvocation *inv);

/* The deletes waiting on @s answered (with @error, or done: @s leaves the
 * table, its console kept, its directory removed). */
void vfd_mgr_finish_deletes(Sandbox *s, GError *error);

/* ---- sandbox-net.c ------------------------------------------------------ */

/* Network of a sandbox, part 1 (worker): subnet, CID, TAP and MAC names;
 * nothing on the host changes. TRUE without network ([network] off). */
gboolean vfd_mgr_net_allocate(VfdManager *m, Sandbox *s, GError **error);

/* Part 1 without effects (ValidateSandbox, worker): a subnet would be
 * free now (its error otherwise); the CID is not tried. */
gboolean vfd_mgr_net_check(VfdManager *m, Sandbox *s, GError **error);

/* Part 2 (worker): the TAP with the host address, and the firewall. */
gboolean vfd_mgr_net_setup(VfdManager *m, Sandbox *s, GError **error);

/* Undoes parts 1 and 2, whatever of them was done (worker; also the main
 * thread at start-up). Failures are logged. */
void vfd_mgr_net_teardown(VfdManager *m, Sandbox *s);

/* The guest kernel's command line words for the sandbox's network and
 * report channel (what vfd_mgr_net_qemu_args() adds to @append). */
void vfd_mgr_net_guest_words(Sandbox *s, GStrvBuilder *append);
/* QEMU arguments (@args) and kernel command line words (@append) for the
 * network and vsock devices of @s; the device fds opened here are appended
 * to @fds (QEMU's fds from 3; the caller closes them on failure). Worker. */
gboolean vfd_mgr_net_qemu_args(VfdManager *m, Sandbox *s, gboolean microvm, GStrvBuilder *args, GStrvBuilder *append,
                               GArray *fds, GError **error);

/* ---- create.c ----------------------------------------------------------- */

/* CreateSandbox after its checks: picks the id and the QEMU uid, then runs
 * the create (create.c's stages, on a worker) and answers @inv (the
 * handler's reference, taken). Takes req->requested and req->caller. */
void vfd_mgr_create_begin(VfdManager *m, GDBusMethodInvocation *inv, CreateRequest *req);

/* StartSandbox for @s, the caller checked: launches a stopped (or exited,
 * or failed) sandbox again from its launch (same id, name, disks, files,
 * memory; devices re-selected: the same BDFs, or any N free units picked
 * anew; a new subnet and CID), through the create's stages, and answers
 * @inv (taken) as CreateSandbox does. A running sandbox is answered as it
 * is. Errors: Busy (being created, stopped or deleted), Failed (no launch:
 * adopted after a vfiod restart; the create's own errors). A failed start
 * leaves the sandbox "failed", still there. */
void vfd_mgr_start_begin(Sandbox *s, GDBusMethodInvocation *inv);

/* ValidateSandbox after the same checks as CreateSandbox's handler (and
 * the name free): the QEMU uid a create would get (not held), then on a
 * worker create.c's create_checks() without effects (files opened with
 * the caller's rights and closed, units selected not reserved, plan,
 * hugepages, bind checks); answers @inv (the handler's reference, taken)
 * with the result (org.vfiod.Manager1.xml) or the create's error. Takes
 * req->requested and req->caller. */
void vfd_mgr_validate_begin(VfdManager *m, GDBusMethodInvocation *inv, CreateRequest *req);

/* ---- api-handlers.c ----------------------------------------------------- */

/* Connects the org.vfiod.Manager1 method handlers to m->skeleton. */
void vfd_mgr_api_connect(VfdManager *m);

/* ---- api-variant.c ------------------------------------------------------ */

/* Answers @inv (the reference is taken) with @error, mapped to the API's
 * org.vfiod.Error.* names; logged, rate-limited. */
void vfd_mgr_return_error(GDBusMethodInvocation *inv, GError *error);

/* The caller's uid into *@ret_uid; FALSE with the error returned to @inv
 * (taken then) when it cannot be read. */
gboolean vfd_mgr_caller_uid(GDBusMethodInvocation *inv, uid_t *ret_uid);

/* TRUE for root; else FALSE with PermissionDenied for @what returned to
 * @inv (taken then). */
gboolean vfd_mgr_check_root_only(GDBusMethodInvocation *inv, uid_t uid, const char *what);

/* A client's BDF string into *@ret; INVALID_ARGUMENT saying the form. */
gboolean vfd_mgr_parse_bdf_arg(const char *s, VfdBdf *ret, GError **error);

/* An owner name for BindDevice: 1-64 of [A-Za-z0-9._-@], not "sb-...";
 * else INVALID_ARGUMENT. */
gboolean vfd_mgr_check_owner_name(const char *owner, GError **error);

/* The workload (cmd, args, a{ss} env, aa{sv} files) fits the guest's
 * payload (guest-payload.h has the rules); else an error saying why. */
gboolean vfd_mgr_check_workload(const char *cmd, const char *const *args, GVariant *env, GVariant *files,
                                GError **error);

/* A path a client names (@what: "disk", "kernel"...): absolute, at most
 * 4096 bytes, no "." or ".." component; else INVALID_ARGUMENT. */
gboolean vfd_mgr_check_client_path(const char *what, const char *path, GError **error);

/* A sandbox as GetSandbox and ListSandboxes show it: a floating a{sv}. */
GVariant *vfd_mgr_sandbox_to_variant(Sandbox *s);

/* The same for a sandbox being created: only what its create's worker does
 * not write. */
GVariant *vfd_mgr_sandbox_creating_to_variant(Sandbox *s);

/* Orders Sandbox pointers (GPtrArray sort) by id. */
gint vfd_mgr_sandbox_id_cmp(gconstpointer a, gconstpointer b);

/* The device list of ListDevices and GetCapabilities from @devs (from
 * vfd_host_enumerate()): a floating aa{sv}. Takes the journal lock. */
GVariant *vfd_mgr_device_inventory_from(VfdManager *m, GPtrArray *devs);

/* Every PCI device with vfiod's view of it (floating aa{sv}); NULL with
 * @error when enumeration fails. */
GVariant *vfd_mgr_device_inventory(VfdManager *m, GError **error);

/* ---- pool-sync.c -------------------------------------------------------- */

/* The [pool] rules of the start-up configuration (the caller's). Any
 * thread. */
VfdPoolRules *vfd_mgr_pool_rules(VfdManager *m);

/* Rewrites the CDI specs ([pool] cdi_dir) from the pool as it is now; a
 * failure is logged. Any thread. */
void vfd_mgr_pool_write_cdi(VfdManager *m);

/* Pool lending (vfd_host_set_pool_lending(), @data: the VfdManager):
 * @bdf's group is in the pool by the config's rules. Any thread. */
bool vfd_mgr_pool_member(VfdHost *host, const VfdBdf *bdf, void *data);

/* Brings the pool to its state (items added to @report) and writes the CDI
 * specs. Start-up and reconcile; any thread. */
void vfd_mgr_pool_sync(VfdManager *m, GPtrArray *report);

/* ---- reconcile-run.c ---------------------------------------------------- */

/* Start-up (main thread, before the API is served): adopts journaled
 * sandboxes whose QEMU still runs, restores the devices of the others in
 * one batch, removes directories nothing refers to; items added to
 * @report. *@ret_restored, *@ret_restore_us: the batch (set only when
 * there was one). */
void vfd_mgr_reconcile_sandboxes(VfdManager *m, GPtrArray *report, guint *ret_restored, gint64 *ret_restore_us);

/* Ids of the live sandboxes (not stopped or failed, and those being
 * created): a new set of strings, the caller's. */
GHashTable *vfd_mgr_live_sandbox_ids(VfdManager *m);

/* Logs each item of a reconcile @report. */
void vfd_mgr_log_report(GPtrArray *report);

/* Removes TAPs and firewall rules of no live sandbox (items added to
 * @report). Any thread; takes m->net_lock. */
void vfd_mgr_reconcile_network(VfdManager *m, GPtrArray *report);

/* The Reconcile call's work (worker: devices against op->live, pool,
 * network into op->report) and its completion (main loop: logs and
 * answers op->inv). */
gboolean vfd_mgr_reconcile_work(Op *op, GError **error);
void vfd_mgr_reconcile_done(Op *op, GError *error);

/* ---- report-listener.c -------------------------------------------------- */

/* Listens on vsock ([network] report_port) for the guests' reports when
 * the host has vhost-vsock; a failure is logged (the console remains). */
void vfd_mgr_report_listener_start(VfdManager *m);

/* ---- vm-libvirt.c: the libvirt backend ([vm] backend = libvirt) ---------- */

/* One group of fds libvirt hands QEMU for a disk (virDomainFDAssociate()):
 * the domain XML names it in the disk's fdgroup. */
typedef struct {
  char *name;  /* "<sandbox id>-<disk serial>" */
  GArray *fds; /* int, open; closed by vfd_fd_group_free() */
} VfdFdGroup;
void vfd_fd_group_free(gpointer group);

/* Start-up, main thread, before reconciliation: with [vm] backend =
 * libvirt, loads vfiod-libvirt.so (next to vfiod's binary, else
 * VFIOD_MODULEDIR), which registers libvirt-glib's event loop on GLib's
 * default main context, and connects to [libvirt] uri with lifecycle
 * events and keepalives; a connection that fails or closes (libvirtd
 * restarted) is retried every 2 s. A module that does not load is logged
 * (creates then fail saying so). Does nothing for the qemu backend. */
void vfd_mgr_libvirt_init(VfdManager *m);
/* Closes the connection (shut-down); the module stays loaded. */
void vfd_mgr_libvirt_free(VfdManager *m);

/* Worker: writes the contents of @src_fd (a regular file, from its start
 * offset 0) as @name in directory @dfd (new, 0400, never through a link),
 * owned by @uid:@gid when @uid != 0: the kernel and initramfs QEMU opens by
 * path under libvirt. FALSE with VFD_ERROR_FAILED. */
gboolean vfd_mgr_libvirt_copy_file(int dfd, const char *name, int src_fd, uid_t uid, gid_t gid, GError **error);

/* Worker: starts the sandbox's domain from @xml (vfd_libvirt_domain_xml()):
 * transient from the start when @fd_groups is empty, else defined, given
 * @fd_groups (VfdFdGroup; the fds stay the caller's), started and
 * undefined. Returns the pid of its QEMU (libvirt's pidfile under
 * /run/libvirt/qemu, checked against the process's command line), or 0
 * with VFD_ERROR_FAILED (libvirt unreachable, the domain refused, no QEMU
 * found here: the domain is destroyed then). */
gint64 vfd_mgr_libvirt_create(VfdManager *m, Sandbox *s, const char *xml, GPtrArray *fd_groups, GError **error);

/* Worker: the graceful stop's first step under libvirt: the ACPI power
 * button (virDomainShutdownFlags) and Ctrl-Alt-Del (virDomainSendKey).
 * FALSE with VFD_ERROR_FAILED when libvirt cannot be asked. */
gboolean vfd_mgr_libvirt_shutdown(VfdManager *m, Sandbox *s, GError **error);
/* Worker: stops the domain (virDomainDestroyFlags: @graceful sends
 * SIGTERM only). FALSE with VFD_ERROR_FAILED. */
gboolean vfd_mgr_libvirt_destroy(VfdManager *m, Sandbox *s, gboolean graceful, GError **error);

/* Main thread: a domain named @id with vfiod's metadata is destroyed
 * and undefined when it exists (a sandbox that reconciliation found gone
 * or never started). Returns what was done ("destroyed its libvirt
 * domain", ...), NULL when there was nothing (or no connection). */
const char *vfd_mgr_libvirt_forget(VfdManager *m, const char *id);
/* TRUE when a running domain named @id with vfiod's metadata exists. */
gboolean vfd_mgr_libvirt_has_domain(VfdManager *m, const char *id);

/* Reconciliation with libvirt (nothing for the qemu backend): every domain
 * carrying vfiod's metadata whose name is not in @live (ids of live
 * sandboxes) is destroyed and undefined when @act (start-up, main thread,
 * before the API: nothing is being created) or reported as "unknown"
 * (the Reconcile call, a worker: a create may be under way); every PCI
 * function a running domain has (<hostdev>) that the journal does not hold
 * for that domain's name is reported "in-use". Items go to @report; an
 * unreachable libvirt is one "unknown" item. */
void vfd_mgr_libvirt_reconcile(VfdManager *m, GHashTable *live, GPtrArray *report, gboolean act);

/* QEMU of @s is gone (its child watch, pidfd or libvirt's event), exit
 * status @exit_status (-1: unknown): the devices go back on a worker, the
 * record leaves the journal, pending stops and deletes are answered. Acts
 * once per run of the sandbox; later calls do nothing. Main loop. */
void vfd_mgr_vm_gone(Sandbox *s, int exit_status);
