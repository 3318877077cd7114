#!/bin/bash
# mk-workload-root.sh CACHE_DIR
#
# A plain Debian workload root for the lab's GPU sandbox: Debian 12
# (bookworm, the suite this machine's archive serves), variant minbase, made
# by mmdebstrap, with no NVIDIA file at all, as an ext4 disk image (what a
# client passes with `vfioctl sandbox create --disk`). The driver layer
# guest-init injects is what brings nvidia-smi and libcuda.so.1 into it.
# Trimmed for size: no documentation, manual pages, locales or apt lists
# (dpkg path-exclude), so that its copy in L1's tmpfs stays small.
#
# Cached by content: KEY = sha256 over this script, the suite, the variant,
# the architecture and the mirror. The image lives in
# CACHE_DIR/workload-root/KEY/root.ext4 (with os-release, packages.txt: the
# installed packages and versions, and build-info), reused when
# CACHE_DIR/workload-root/KEY/complete exists; older keys are removed.
# Prints the image's path on stdout. Network on a cold cache (mmdebstrap
# downloads ~40 MB from the Debian archive; about a minute).
#
# Environment: LAB_ROOT_SUITE (default bookworm), LAB_ROOT_MIRROR (default
# mmdebstrap's own: the Debian archive), LAB_ROOT_SIZE_MB (ext4 size,
# default 400; sparse, the files take ~160 MB).
# Exit status: 0 built or reused; 1 failed; 2 bad usage or a missing tool
# (mmdebstrap, mkfs.ext4).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $prog CACHE_DIR" >&2; exit 2; }
for tool in mmdebstrap sha256sum flock; do
    command -v "$tool" >/dev/null || { echo "$prog: '$tool' not found (apt-get install mmdebstrap)" >&2; exit 2; }
done
mkfs=$(command -v mkfs.ext4 || echo /usr/sbin/mkfs.ext4)
[[ -x $mkfs ]] || { echo "$prog: mkfs.ext4 not found (apt-get install e2fsprogs)" >&2; exit 2; }

suite=${LAB_ROOT_SUITE:-bookworm}
mirror=${LAB_ROOT_MIRROR:-}
size_mb=${LAB_ROOT_SIZE_MB:-400}
[[ $suite =~ ^[a-z]+$ ]] || die "LAB_ROOT_SUITE: want a Debian suite name, got '$suite'"
[[ $size_mb =~ ^[1-9][0-9]*$ ]] || die "LAB_ROOT_SIZE_MB: want a number of MB, got '$size_mb'"
arch=$(dpkg --print-architecture)

mkdir -p "$1/workload-root"
top=$(cd "$1/workload-root" && pwd)
key=$( {
    sha256sum <"${BASH_SOURCE[0]}"
    printf 'suite=%s\nvariant=minbase\narch=%s\nmirror=%s\nsize=%s\n' "$suite" "$arch" "$mirror" "$size_mb"
} | sha256sum | cut -c1-64)
dir=$top/$key

exec 9>"$top/.lock"
flock 9
if [[ -f $dir/complete && -s $dir/root.ext4 ]]; then
    echo "$prog: reused $dir/root.ext4 ($(sed -n 's/^PRETTY_NAME=//p' "$dir/os-release" | tr -d '"'), $(wc -l <"$dir/packages.txt") packages)" >&2
    echo "$dir/root.ext4"
    exit 0
fi

t0=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir"
tmp=$(mktemp -d "$top/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
args=(--variant=minbase --mode=root --format=directory
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/cache/ldconfig/aux-cache'
    "$suite" "$tmp/root")
[[ -z $mirror ]] || args+=("$mirror")
echo "$prog: mmdebstrap ${args[*]}" >&2
mmdebstrap "${args[@]}" >"$tmp/mmdebstrap.log" 2>&1 || { tail -n 40 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed"; }

# No NVIDIA file: the driver must come from the layer.
nv=$(find "$tmp/root" -xdev \( -iname '*nvidia*' -o -name 'libcuda*' \) -print | head -n 5)
[[ -z $nv ]] || die "the minbase root has NVIDIA files?! $nv"

chroot "$tmp/root" dpkg-query -W -f '${Package} ${Version}\n' >"$tmp/packages.txt"
cp "$tmp/root/etc/os-release" "$tmp/os-release" 2>/dev/null || cp "$tmp/root/usr/lib/os-release" "$tmp/os-release"
used_kb=$(du -sk "$tmp/root" | cut -f1)
# ext4 as the guest's default vfiod.rootfstype; -d copies the tree in (owners
# and modes kept: we are root). Sparse: only the used blocks take space.
"$mkfs" -q -F -t ext4 -L workload -d "$tmp/root" "$tmp/root.ext4" "${size_mb}M" >&2 ||
    die "mkfs.ext4 -d failed"
mv "$tmp/root.ext4" "$tmp/os-release" "$tmp/packages.txt" "$dir/"
printf 'suite=%s variant=minbase arch=%s mirror=%s\nfiles=%s kB image=%s MB (sparse: %s kB used)\nbuilt=%s in %s s\n' \
    "$suite" "$arch" "${mirror:-default}" "$used_kb" "$size_mb" "$(du -k "$dir/root.ext4" | cut -f1)" \
    "$(date -u +%FT%TZ)" $(($(date +%s) - t0)) >"$dir/build-info"
touch "$dir/complete"
# Older keys (an edited script or other settings) go.
find "$top" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' -exec rm -rf {} +
echo "$prog: built $dir/root.ext4 in $(($(date +%s) - t0)) s ($(sed -n 's/^PRETTY_NAME=//p' "$dir/os-release" | tr -d '"'), $(wc -l <"$dir/packages.txt") packages, $used_kb kB of files)" >&2
echo "$dir/root.ext4"
