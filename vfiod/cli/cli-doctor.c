/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl doctor: the host checks of doctor.c, printed (vfioctl-tool; local,
 * no daemon). */
#include "cli-private.h"

#include <stdio.h>

#include "doctor.h"

/* ---- doctor ------------------------------------------------------------------- */

typedef struct {
  char *pins, *versions, *qemu, *libvirt_uri;
} DoctorOpts;

static const GOptionEntry doctor_options[] = {
  { "qemu", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(DoctorOpts, qemu),
    "QEMU binary to check (default qemu-system-x86_64)", "PATH" },
  { "pins", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(DoctorOpts, pins), "pins.env to check", "FILE" },
  { "versions", 0, 0, G_OPTION_ARG_FILENAME, VFD_CLI_OPT(DoctorOpts, versions), "versions.env to check", "FILE" },
  { "libvirt-uri", 0, 0, G_OPTION_ARG_STRING, VFD_CLI_OPT(DoctorOpts, libvirt_uri),
    "libvirt connection to check for domains that manage PCI devices themselves (default qemu:///system; "
    "\"\": none)", "URI" },
  { NULL },
};

static int
doctor_run(VfdCliCall *call, GError **error)
{
  DoctorOpts *d = call->opts;
  const char *pins = d->pins, *versions = d->versions, *qemu = d->qemu;
  g_autoptr(GPtrArray) checks = NULL;
  VfdDoctorOptions o = { .sys_root = "/sys", .dev_root = "/dev", .proc_root = "/proc" };
  gboolean failed = FALSE;

  o.qemu_binary = qemu ? qemu : "qemu-system-x86_64";
  o.pins_file = pins ? pins : DEFAULT_PINS_FILE;
  o.versions_file = versions ? versions : DEFAULT_VERSIONS_FILE;
  o.image_dir = VFIOD_IMAGE_DIR;
  o.libvirt_uri = !d->libvirt_uri ? "qemu:///system" : *d->libvirt_uri ? d->libvirt_uri : NULL;
  checks = vfd_doctor_run(&o);
  if (call->cli->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_array(b);
    for (guint i = 0; i < checks->len; i++) {
      VfdDoctorCheck *c = g_ptr_array_index(checks, i);
      json_builder_begin_object(b);
      json_builder_set_member_name(b, "check");
      json_builder_add_string_value(b, c->name);
      json_builder_set_member_name(b, "status");
      json_builder_add_string_value(b, vfd_doctor_status_to_string(c->status));
      json_builder_set_member_name(b, "detail");
      json_builder_add_string_value(b, c->detail);
      json_builder_end_object(b);
    }
    json_builder_end_array(b);
    root = json_builder_get_root(b);
    vfd_cli_print_json(root);
  }
  for (guint i = 0; i < checks->len; i++) {
    VfdDoctorCheck *c = g_ptr_array_index(checks, i);
    failed = failed || c->status == VFD_DOCTOR_FAIL;
    if (!call->cli->json)
      printf("%-5s %-12s %s\n", vfd_doctor_status_to_string(c->status), c->name, c->detail);
  }
  return failed ? VFD_EXIT_FAILED : VFD_EXIT_OK;
}

const VfdCliVerb vfd_cli_tool_doctor = {
  .name = "doctor",
  .params = "",
  .args = VFD_CLI_ARGS_NONE,
  .local = TRUE,
  .opts_size = sizeof(DoctorOpts),
  .options = doctor_options,
  .run = doctor_run,
};
