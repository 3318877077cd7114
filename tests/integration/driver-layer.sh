#!/bin/bash
# integration suite: the NVIDIA driver layer attached by vfiod (issue 11,
# item 4/3) and the lab's stand-in IDs ([qemu] test_present_as). vfiod on a
# fake kernel (tests/crash/vfiod-fake on a tree made by fake-tree: IOMMU
# group 12 = 0000:01:00.0 VGA + 0000:01:00.1 HD audio, group 13 =
# 0000:02:00.0 VGA), the stand-in QEMU (its argv and fds are read from
# /proc), [qemu] driver_layer = a real EROFS image (mkfs.erofs):
#  1. `sandbox create --gpus 1 --disk ROOT`: QEMU gets the layer as an fd
#     (-add-fd fd=N,set=3,opaque=driver-layer; fd N is the image, read-only),
#     -drive file=/dev/fdset/3,...,readonly=on and a virtio-blk-pci after the
#     root disk's, each with its serial (vfiod-root, vfiod-driver), and
#     vfiod.root=virtio:vfiod-root vfiod.driver=virtio:vfiod-driver on the
#     kernel command line, the layer's path nowhere in its argv; the VGA
#     function gets x-pci-vendor-id=0x10de,x-pci-device-id=0x2335, the audio
#     function not;
#  2. `sandbox create --gpus 1` without a disk: no layer, no vfiod.driver;
#  3. the layer as a symbolic link, a directory, a missing file, a file that
#     is no EROFS image: the create fails naming [qemu] driver_layer and the
#     reason; no QEMU started, no device bound, the journal empty;
# Usage: driver-layer.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root or
# mkfs.erofs (erofs-utils) is missing.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
command -v mkfs.erofs > /dev/null || { echo "SKIP: mkfs.erofs missing (erofs-utils)"; exit 77; }
itest_init driver-layer "$@"
use_fake_vfiod

truncate -s 16M "$work/root.img"
mkdir -p "$work/layer-tree/etc/vfiod"
echo "NVIDIA_DRIVER_VERSION=550.163.01" > "$work/layer-tree/etc/vfiod/driver-layer.env"
mkfs.erofs "$work/layer.erofs" "$work/layer-tree" > "$work/mkfs.log" 2>&1 ||
  { nok "mkfs.erofs: $(cat "$work/mkfs.log")"; exit 1; }
layer=$work/layer.erofs

# setup NAME [--no-guest] [KEY=VALUE lines for [qemu]]: a fresh fake tree
# and vfiod-fake with that config in $work/NAME ([qemu] kernel and initrd
# set unless --no-guest); sets d.
setup() {
  local kernel=$work/vmlinuz initrd=$work/initrd
  d=$work/$1
  shift
  [ "${1:-}" = --no-guest ] && { kernel='' initrd=''; shift; }
  write_fake_conf "$d" "$kernel" "$initrd" "allowed_group=" -- "$@"
  start_fake_vfiod "$d" || exit 1
}
teardown() {
  local p
  for p in $(cat "$d/qemu.pids" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
  stop_vfiod "$1"
}
id_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$1" 2> /dev/null; }
# qemu_argv PID: the stand-in QEMU's arguments (its argv[0] is "fake-qemu ARGS...")
qemu_argv() { [ -n "$1" ] && tr '\0' '\n' < "/proc/$1/cmdline" | head -1; }
qemu_pid() { [ -n "$1" ] && our_qemu_pids "$1" | head -1; }
driver_of() { local l; l=$(readlink "$d/fake/sys/bus/pci/devices/$1/driver" 2> /dev/null); echo "${l##*/}"; }

# ---- 1. a GPU sandbox with a root disk gets the layer, as an fd ----------
setup one "driver_layer=$layer" "test_present_as=10de:2335"
out=$(ctl sandbox create --gpus 1 --disk "$work/root.img" --json 2> "$work/one.err")
rc=$?
echo "$out" > "$work/one.json"
id=$(id_of "$work/one.json")
qpid=$(qemu_pid "$id")
argv=$(qemu_argv "$qpid")
[ "$rc" = 0 ] && [ -n "$id" ] && [ -n "$argv" ] && ok "1: create --gpus 1 --disk: $id, stand-in QEMU pid $qpid" ||
  nok "1: create --gpus 1 --disk: exit $rc: $(cat "$work/one.err")"
fdn=$(grep -o ' -add-fd fd=[0-9]*,set=3,opaque=driver-layer ' <<< "$argv" | sed 's/.*fd=\([0-9]*\),.*/\1/')
[ -n "$fdn" ] && ok "1: -add-fd fd=$fdn,set=3,opaque=driver-layer" || nok "1: no driver-layer fd set: $argv"
target=$(readlink "/proc/$qpid/fd/${fdn:-x}" 2> /dev/null)
flags=$(awk '/^flags:/ {print $2}' "/proc/$qpid/fdinfo/${fdn:-x}" 2> /dev/null)
[ "$target" = "$layer" ] && [ -n "$flags" ] && [ $((8#$flags & 3)) = 0 ] &&
  ok "1: QEMU's fd $fdn is the layer image, opened read-only (flags $flags)" ||
  nok "1: QEMU's fd ${fdn:-?}: '$target' flags '$flags' (want $layer, O_RDONLY)"
[[ $argv == *" -drive file=/dev/fdset/3,if=none,id=driver,format=raw,readonly=on "* ]] &&
  ok "1: -drive file=/dev/fdset/3,if=none,id=driver,format=raw,readonly=on" || nok "1: no read-only driver drive: $argv"
root_at=$(grep -bo ' -device virtio-blk-pci,drive=vfiod-root' <<< "$argv" | cut -d: -f1)
drv_at=$(grep -bo ' -device virtio-blk-pci,drive=driver' <<< "$argv" | cut -d: -f1)
[ -n "$root_at" ] && [ -n "$drv_at" ] && [ "$drv_at" -gt "$root_at" ] &&
  ok "1: the layer's virtio-blk-pci comes after the root disk's" ||
  nok "1: virtio-blk devices: root at '$root_at', driver at '$drv_at': $argv"
[[ $argv == *" -device virtio-blk-pci,drive=vfiod-root,serial=vfiod-root "* ]] &&
  [[ "$argv " == *" -device virtio-blk-pci,drive=driver,serial=vfiod-driver "* ]] &&
  ok "1: the disks carry their serials (vfiod-root, vfiod-driver): guest-init finds them by serial, whatever vdX they get" ||
  nok "1: virtio-blk devices without the serials: $argv"
[[ $argv == *" vfiod.root=virtio:vfiod-root "* ]] && [[ $argv == *" vfiod.driver=virtio:vfiod-driver"* ]] &&
  ok "1: kernel command line: vfiod.root=virtio:vfiod-root vfiod.driver=virtio:vfiod-driver" ||
  nok "1: -append lacks the keys: $argv"
[[ $argv != *"$layer"* ]] && [[ $argv != *"$work/root.img"* ]] &&
  ok "1: neither the layer's nor the disk's path is in QEMU's argv" || nok "1: a path in QEMU's argv: $argv"
[[ $argv == *" -device vfio-pci,host=0000:01:00.0,bus=rp0,x-pci-vendor-id=0x10de,x-pci-device-id=0x2335 "* ]] &&
  [[ $argv == *" -device vfio-pci,host=0000:01:00.1,bus=rp1 "* ]] &&
  ok "1: test_present_as: the VGA function shown as 10de:2335, the audio function as it is" ||
  nok "1: vfio-pci devices: $(grep -o 'vfio-pci,[^ ]*' <<< "$argv" | tr '\n' ' ')"
[ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1

# ---- 2. without a root disk: no layer ---------------------------------
out=$(ctl sandbox create --gpus 1 --json 2> "$work/two.err")
rc=$?
echo "$out" > "$work/two.json"
id=$(id_of "$work/two.json")
qpid=$(qemu_pid "$id")
argv=$(qemu_argv "$qpid")
[ "$rc" = 0 ] && [ -n "$argv" ] && [[ $argv != *vfiod.driver* ]] && [[ $argv != *opaque=driver-layer* ]] && [[ $argv != *id=driver,* ]] &&
  ok "2: create --gpus 1 without --disk: no layer, no vfiod.driver (QEMU pid $qpid)" ||
  nok "2: create without a disk: exit $rc: $(cat "$work/two.err"): $argv"
[ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1
teardown "1-2"

# ---- 3. a bad layer: a clear error, nothing started -----------------------
ln -s layer.erofs "$work/layer-link.erofs"
mkdir -p "$work/layer-dir.erofs"
head -c 4096 /dev/zero > "$work/zeros.erofs"
bad() { # bad LABEL PATH NEEDLE
  local label=$1 path=$2 needle=$3 out rc qemus
  setup "bad-$label" "driver_layer=$path"
  out=$(ctl sandbox create --gpus 1 --disk "$work/root.img" 2>&1)
  rc=$?
  qemus=$(grep -c . "$d/qemu.pids" 2> /dev/null)
  [ "$rc" != 0 ] && [[ $out == *"[qemu] driver_layer '$path'"* ]] && [[ $out == *"$needle"* ]] &&
    ok "3: $label: create refused (exit $rc): $out" || nok "3: $label: exit $rc, want '$needle': $out"
  [ "${qemus:-0}" = 0 ] && [ "$(journal_counts "$d")" = "0 0" ] && [ "$(driver_of 0000:01:00.0)" != vfio-pci ] &&
    [ "$(driver_of 0000:02:00.0)" != vfio-pci ] && [ -z "$(ls -A "$d/run/sandboxes" 2>&1)" ] &&
    ok "3: $label: no QEMU started, no device bound, journal and sandboxes/ empty" ||
    nok "3: $label: $qemus QEMU, journal $(journal_counts "$d"), drivers $(driver_of 0000:01:00.0)/$(driver_of 0000:02:00.0), sandboxes/ $(ls -A "$d/run/sandboxes" 2>&1)"
  teardown "3: $label"
}
bad symlink "$work/layer-link.erofs" "is a symbolic link"
bad directory "$work/layer-dir.erofs" "is not a regular file"
bad missing "$work/no-such-layer.erofs" "No such file or directory"
bad not-erofs "$work/zeros.erofs" "is not an EROFS image"


# ---- 4. the defaults: the image of `vfioctl image build` ----------------------
# [qemu] kernel, initrd and driver_layer unset: vfiod takes them from the
# default image dir (/var/lib/vfiod/image unless meson's image_dir says
# otherwise); a missing default layer only means no layer, a missing
# default kernel a create error saying how to build the image.
default_dir=$("$vfioctl" --help | sed -n 's/.*default to DIR=\(.*\)$/\1/p')
note "default image dir: ${default_dir:-?}"
setup defaults-layer
if [ -e "$default_dir/driver-layer.erofs" ]; then
  note "4: $default_dir/driver-layer.erofs exists on this host: the missing-default case is not checked"
else
  out=$(ctl sandbox create --gpus 1 --disk "$work/root.img" --json 2> "$work/four.err")
  rc=$?
  echo "$out" > "$work/four.json"
  id=$(id_of "$work/four.json")
  qpid=$(qemu_pid "$id")
  argv=$(qemu_argv "$qpid")
  [ "$rc" = 0 ] && [ -n "$argv" ] && [[ $argv != *vfiod.driver* ]] && [[ $argv == *"vfiod.root=virtio:vfiod-root"* ]] &&
    grep -q "no driver layer: the default $default_dir/driver-layer.erofs is missing" "$vlog" &&
    ok "4: driver_layer unset, the default image has none: the GPU sandbox starts without a layer (logged)" ||
    nok "4: default layer missing: exit $rc: $(cat "$work/four.err"): $argv"
  [ -z "$id" ] || ctl sandbox delete "$id" > /dev/null 2>&1
fi
teardown "4: layer default"
if [ -e "$default_dir/vmlinuz" ]; then
  note "4: $default_dir/vmlinuz exists on this host: the missing-default kernel case is not checked"
else
  setup defaults-kernel --no-guest
  out=$(ctl sandbox create --gpus 1 --disk "$work/root.img" 2>&1)
  rc=$?
  qemus=$(grep -c . "$d/qemu.pids" 2> /dev/null)
  [ "$rc" = 2 ] && [[ $out == *"no guest kernel: the sandbox names none, [qemu] kernel is unset and the default image has no $default_dir/vmlinuz; build it with 'vfioctl image build [--gpu] --output $default_dir'"* ]] &&
    [ "${qemus:-0}" = 0 ] && [ "$(journal_counts "$d")" = "0 0" ] && [ "$(driver_of 0000:01:00.0)" != vfio-pci ] &&
    ok "4: kernel unset, no default image: refused saying how to build it, nothing started: $out" ||
    nok "4: no default kernel: exit $rc, $qemus QEMU, journal $(journal_counts "$d"): $out"
  teardown "4: kernel default"
fi
itest_finish
