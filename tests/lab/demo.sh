#!/bin/bash
# demo.sh BUILD_DIR: the "main job" of vfiod, narrated, on a real kernel.
# Boots the lab VM (L1, see tests/lab/README.md) and runs demo-l1.sh there:
# list, bind, list, release, sandbox create (showing the guest's ready line),
# delete, with vfioctl's human-readable output. Needs root and QEMU.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -eq 1 ]] || { echo "usage: ${0##*/} BUILD_DIR" >&2; exit 2; }
exec "$here/run-lab.sh" --script "$here/demo-l1.sh" "$1"
