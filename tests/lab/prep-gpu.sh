#!/bin/bash
# prep-gpu.sh BUILD_DIR CACHE_DIR
#
# On the host, before L1 boots (inside L1 the build and cache dirs are
# read-only): what the lab's GPU sandbox needs to run the real NVIDIA driver
# against the display-class stand-in (tests/lab/README.md, "The real driver
# path"):
#   1. the NVIDIA driver layer, kernel-modules/build-driver-layer.sh into
#      LAB_DRIVER_LAYER_CACHE (default BUILD_DIR/driver-layer-cache, the
#      unit test's cache): reused when cached, else built from Debian's
#      packages (minutes); it must be built for the lab's guest kernel;
#   2. a plain Debian workload root with no NVIDIA file
#      (mk-workload-root.sh, cached by content in CACHE_DIR);
#   3. the sandbox's initramfs, staged by the project's stager into
#      CACHE_DIR/guest-gpu.cpio.gz: guest-init and the modules the driver
#      layer needs before nvidia.ko (virtio_blk, erofs with crc32c_generic;
#      drm for nvidia.ko, video for nvidia-modeset.ko), ext4 for the root,
#      virtio_net and vsock for the sandbox network and report, button and
#      evdev; no NVIDIA module (they come from the layer).
# Writes CACHE_DIR/gpu.env (LAB_GPU_* lines, shell syntax) and prints what it
# did on stderr. Exit status: 0, 1 on failure, 77 when a tool is missing
# (mmdebstrap, mkfs.erofs: the skip says which package).
#   LAB_DRIVER_LAYER_CACHE   the driver layer's cache dir
#   LAB_GPU_STAGE_MODULES    the --module list (space-separated)
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { echo "$prog: error: $*" >&2; exit 1; }
skip() { echo "$prog: SKIP: $*" >&2; exit 77; }

[[ $# -eq 2 ]] || { echo "usage: $prog BUILD_DIR CACHE_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
cache=$(cd "$2" && pwd)
command -v mmdebstrap >/dev/null || skip "mmdebstrap not found (apt-get install mmdebstrap): it builds the plain Debian workload root"
command -v mkfs.erofs >/dev/null || skip "mkfs.erofs not found (apt-get install erofs-utils): it packs the driver layer"
# shellcheck source=/dev/null
. "$cache/kernel.env"
rel=$GUEST_KERNEL_RELEASE
moddir=$cache/kernel/lib/modules/$rel
vfioctl=$build/vfiod/vfioctl
guest_init=$build/guest-init/guest-init

# --- 1. the driver layer ---------------------------------------------------------
layer_cache=${LAB_DRIVER_LAYER_CACHE:-$build/driver-layer-cache}
mkdir -p "$layer_cache"
layer_out=$cache/driver-layer
t0=$(date +%s)
echo "$prog: the NVIDIA driver layer (kernel-modules/build-driver-layer.sh, cache $layer_cache; a cold build takes minutes)" >&2
VFIOD_PINS=$cache/kernel.env "$repo/kernel-modules/build-driver-layer.sh" --out "$layer_out" --cache "$layer_cache" --json \
    >"$cache/driver-layer.json" || die "build-driver-layer.sh failed"
j() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$cache/driver-layer.json" "$1"; }
layer_rel=$(j kernel_release)
[[ $layer_rel == "$rel" ]] || die "the driver layer is built for $layer_rel, the lab's guest kernel is $rel"
layer_img=$(readlink -f "$(j image)")
layer_tree=$(readlink -f "$(j tree)")
layer_key=$(j key)
layer_ver=$(j driver_version)
echo "$prog: driver layer $layer_ver for $rel: $([[ $(j cached) == True ]] && echo "cached (cold build $(j build_seconds) s)" || echo "built in $(($(date +%s) - t0)) s"): $layer_img ($(du -k "$layer_img" | cut -f1) kB), key $layer_key" >&2

# --- 2. the workload root --------------------------------------------------------
root_img=$("$here/mk-workload-root.sh" "$cache") || die "mk-workload-root.sh failed"

# --- 3. the sandbox's initramfs --------------------------------------------------
out=$cache/guest-gpu.cpio.gz
stage=(initramfs build --guest-init "$guest_init" --output "$out.tmp" --modules-dir "$moddir")
for m in ${LAB_GPU_STAGE_MODULES:-virtio_pci virtio_net vmw_vsock_virtio_transport virtio_blk ext4 crc32c_generic erofs drm video button evdev}; do
    stage+=(--module "$m")
done
stage+=(--pins "$cache/kernel.env" --json)
rm -f "$out.tmp"
if ! "$vfioctl" "${stage[@]}" >"$cache/guest-gpu.json"; then
    rm -f "$out.tmp"
    die "vfioctl ${stage[*]} failed"
fi
mv "$out.tmp" "$out"
modules=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["modules"]))' "$cache/guest-gpu.json")
echo "$prog: staged $out ($(stat -c %s "$out") bytes): $modules" >&2

sq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
    echo "# written by $prog: the lab's GPU sandbox"
    echo "LAB_GPU_LAYER=$(sq "$layer_img")"
    echo "LAB_GPU_LAYER_TREE=$(sq "$layer_tree")"
    echo "LAB_GPU_LAYER_KEY=$(sq "$layer_key")"
    echo "LAB_GPU_DRIVER_VERSION=$(sq "$layer_ver")"
    echo "LAB_GPU_ROOT=$(sq "$root_img")"
    echo "LAB_GPU_INITRD=$(sq "$out")"
    echo "LAB_GPU_MODULES=$(sq "$modules")"
} >"$cache/gpu.env.tmp"
mv "$cache/gpu.env.tmp" "$cache/gpu.env"
