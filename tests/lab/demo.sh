#!/bin/bash
# demo.sh BUILD_DIR: the "main job" of vfiod, narrated, on a real kernel.
# Boots the lab VM (L1, see tests/lab/README.md) and runs demo-l1.sh there:
# list, bind, list, release, sandbox create (showing the guest's ready line),
# delete, with vfioctl's human-readable output; then the real NVIDIA driver
# path: a sandbox with the display-class stand-in presented as an NVIDIA
# GPU, a plain Debian root and the NVIDIA driver layer, whose real nvidia.ko
# probes the stand-in. Before L1 boots, on the host: the driver layer is
# built from Debian's packages or reused from its cache, with the workload
# root and the sandbox image (prep-gpu.sh). Needs root and QEMU.
#   LAB_CACHE  the lab's cache (default <repo>/build-lab-cache)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[[ $# -eq 1 ]] || { echo "usage: ${0##*/} BUILD_DIR" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "${0##*/}: the lab needs root" >&2; exit 77; }
build=$(cd "$1" && pwd)
cache=${LAB_CACHE:-$repo/build-lab-cache}
mkdir -p "$cache"
export LAB_CACHE=$(cd "$cache" && pwd)
"$here/fetch-kernel.sh" "$LAB_CACHE"
echo "== Before the lab VM boots: the NVIDIA driver layer, a plain Debian root and the sandbox image"
rc=0
"$here/prep-gpu.sh" "$build" "$LAB_CACHE" || rc=$?
if [[ $rc -eq 0 ]]; then
    # shellcheck source=/dev/null
    . "$LAB_CACHE/gpu.env"
    export "${!LAB_GPU_@}"
else
    echo "   (prep-gpu.sh failed, exit $rc: the demo leaves out the NVIDIA part)"
fi
exec "$here/run-lab.sh" --script "$here/demo-l1.sh" "$build"
