/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The verbs that run in vfioctl-tool, as vfioctl's table has them: a name
 * and the lines of `vfioctl --help`. Their code needs libarchive, libkmod,
 * libpci, libnl or libnftables (cli-doctor.c, pool-cli.c, cli-image.c);
 * vfioctl links none of those and execs vfioctl-tool for them (cli.c,
 * dispatch()), which keeps its start-up to GLib/GIO and json-glib. */
#include "cli-private.h"

const VfdCliVerb vfd_cli_verb_doctor = {
  .name = "doctor",
  .summary = "  doctor                        check this host: IOMMU, vfio-pci, memlock, hugepages, QEMU, KVM,\n"
             "                                vhost-vsock, pins (local, no daemon; exit 1 when a check fails)\n",
  .tool = TRUE,
};

const VfdCliVerb vfd_cli_verb_pool = {
  .name = "pool",
  .summary = "  pool status [--fix] [--config FILE]   the pool's functions, their drivers, those not in place\n"
             "                                (local; --fix: vfiod rebinds them; exit 1 when any is not in place)\n"
             "  pool install-boot [--root DIR] [--config FILE]   write the boot configuration binding the pool\n"
             "                                before host drivers (udev rule, modprobe.d softdeps)\n",
  .tool = TRUE,
};

const VfdCliVerb vfd_cli_verb_initramfs_build = {
  .name = "initramfs build",
  .summary = "  initramfs build --guest-init PATH --output PATH   pack a guest initramfs (local, no daemon)\n"
             "      [--modules-dir DIR] [--module NAME]... [--param MOD:KEY=VAL]... [--gpu [--firmware-dir DIR]]\n"
             "      [--cache-dir DIR] [--kernel-release R | --pins FILE] [--nvidia-version V | --versions FILE]\n"
             "                                stage modules (dependencies first, vermagic checked), NVIDIA firmware\n"
             "                                and /etc/vfiod/manifest; --cache-dir reuses an image by content stamp\n",
  .tool = TRUE,
};

const VfdCliVerb vfd_cli_verb_image_build = {
  .name = "image build",
  .summary = "  image build [--gpu] --output DIR [--cache DIR] [--guest-init PATH] [--debs DIR]\n"
             "                                the whole guest (local, no daemon): the pinned kernel, the initramfs\n"
             "                                and with --gpu the NVIDIA driver layer, cached by content, into DIR\n"
             "                                (vmlinuz, initramfs, driver-layer.erofs, image.json); vfiod's\n"
             "                                [qemu] kernel/initrd/driver_layer default to DIR=" VFIOD_IMAGE_DIR "\n",
  .tool = TRUE,
};
