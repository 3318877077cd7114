#!/bin/bash
# build-nvidia-modules.sh [--source TARBALL] [--out DIR] [--work DIR]
#                         [--kernel-tree ROOT] [-j N]
#
# Builds NVIDIA's open GPU kernel modules (nvidia.ko, nvidia-modeset.ko,
# nvidia-uvm.ko, nvidia-drm.ko, ...) at the driver version pinned in
# versions.env (NVIDIA_DRIVER_VERSION) for the guest kernel pinned in
# pins.env (GUEST_KERNEL_RELEASE), and installs them into a modules tree
# that `vfioctl initramfs build --modules-dir` takes:
#   OUT/lib/modules/<release>/updates/*.ko     (depmod'ed)
#
# Source, first that applies:
#   --source TARBALL   a local tarball (hosts without network): NVIDIA's
#                      open-gpu-kernel-modules-<ver>.tar.gz (GitHub),
#                      NVIDIA-kernel-module-source-<ver>.tar.xz (NVIDIA), or
#                      Debian's nvidia-open-kernel-source .deb / its
#                      usr/src/nvidia-open-kernel.tar.xz
#   Debian             nvidia-open-kernel-source of the pinned version from
#                      the suite in versions.env (NVIDIA_DEBIAN_SUITE, contrib),
#                      through a private apt configuration (nvidia-apt.sh, in
#                      WORK/apt or $VFIOD_NVIDIA_APT_DIR): the pinned revision
#                      (NVIDIA_KERNEL_DEBIAN_REVISION) while the archive has
#                      it, else the newest <version>-* with one warning
#   NVIDIA             download.nvidia.com, then GitHub (network)
# With none of them: exit 2, saying so. The source's own version
# (NV_VERSION_STRING in kernel-open/Kbuild) must equal the pinned one.
#
# Patches: kernel-modules/patches/nvidia-<version>-*.patch for the source's
# version, in name order, `patch -p1` in the directory holding conftest.sh;
# one whose "Skip-If-Present: FILE STRING" header line finds STRING in FILE
# is skipped (the source already carries the fix). A patch that does not
# apply stops the build (exit 1).
#
# Headers: linux-headers-<release> (+ -common, linux-kbuild) fetched with
# apt-get download + dpkg -x by fetch-kernel-headers.sh into WORK/headers
# (cached there). Build: make modules -jN SYSSRC=<common> SYSOUT=<arch>,
# with the kernel's compiler (gcc-12 for Debian 12's 6.1). Every built
# module's vermagic is checked with modinfo against the pinned release, and
# nvidia.ko's version against the pinned version, before anything is
# installed.
#
# --kernel-tree ROOT   also put the pinned kernel's own modules
#                      (ROOT/lib/modules/<release>, e.g. the package
#                      unpacked with dpkg -x) into OUT, hard-linked where
#                      possible, so OUT is one tree for every guest module
# --out DIR            default ./nvidia-modules
# --work DIR           scratch and caches (default OUT/.work)
# -j N                 parallel jobs (default: nproc)
#
# Exit status: 0 built and installed; 1 a step failed (headers, patch, build,
# vermagic); 2 bad usage, no source (no tarball and no network), or a
# source of another version.
# Environment: VFIOD_PINS, VFIOD_VERSIONS (default: the repository's files),
# VFIOD_NVIDIA_APT_DIR (the private apt configuration's directory),
# VFIOD_APT_NO_UPDATE=1 (no apt-get update).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }
usage_die() { echo "$prog: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions=${VFIOD_VERSIONS:-$here/../versions.env}

source_arg= out=nvidia-modules work= kernel_tree= jobs=$(nproc 2>/dev/null || echo 2)
while [[ $# -gt 0 ]]; do
    case $1 in
        --source) [[ $# -ge 2 ]] || usage_die "--source needs a TARBALL"; source_arg=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage_die "--out needs a DIR"; out=$2; shift 2 ;;
        --work) [[ $# -ge 2 ]] || usage_die "--work needs a DIR"; work=$2; shift 2 ;;
        --kernel-tree) [[ $# -ge 2 ]] || usage_die "--kernel-tree needs a ROOT"; kernel_tree=$2; shift 2 ;;
        -j) [[ $# -ge 2 ]] || usage_die "-j needs N"; jobs=$2; shift 2 ;;
        -j*) jobs=${1#-j}; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) usage_die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage_die "-j wants a positive number, not '$jobs'"

[[ -r $versions ]] || usage_die "cannot read $versions"
# The guest kernel: the pins resolved against the archive (scripts/archive.sh).
# shellcheck source=../scripts/archive.sh
. "$here/../scripts/archive.sh"
# shellcheck source=nvidia-apt.sh
. "$here/nvidia-apt.sh"
pins_load || die "cannot resolve the guest kernel"
# shellcheck source=../versions.env
. "$versions"
rel=$GUEST_KERNEL_RELEASE
ver=${NVIDIA_DRIVER_VERSION:?NVIDIA_DRIVER_VERSION missing from $versions}

for tool in tar xz make modinfo depmod sha256sum patch; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install tar xz-utils make kmod coreutils patch)"
done
if [[ -n $source_arg && ! -f $source_arg ]]; then
    usage_die "--source '$source_arg' is not a file"
fi
if [[ -n $kernel_tree && ! -d $kernel_tree/lib/modules/$rel ]]; then
    usage_die "--kernel-tree '$kernel_tree' has no lib/modules/$rel"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${work:-$out/.work}
mkdir -p "$work"
work=$(cd "$work" && pwd)
[[ -n $source_arg ]] && source_arg=$(cd "$(dirname "$source_arg")" && pwd)/$(basename "$source_arg")

echo "$prog: NVIDIA open kernel modules $ver for $rel -> $out/lib/modules/$rel/updates" >&2

# ---- 1. the source ----------------------------------------------------------
fetch_debian() { # -> path of the .deb, or nothing
    local v deb
    local -a vers
    command -v apt-get >/dev/null || return 1
    nvidia_apt_init "${VFIOD_NVIDIA_APT_DIR:-$work/apt}" && nvidia_apt_update || return 1
    mapfile -t vers < <(nvidia_apt _archive_versions nvidia-open-kernel-source)
    v=$(nvidia_pick_version nvidia-open-kernel-source "$ver" "${NVIDIA_KERNEL_DEBIAN_REVISION:-}" "${vers[@]}") ||
        return 1
    deb=$work/download/nvidia-open-kernel-source_${v#*:}_amd64.deb
    if [[ ! -s $deb ]]; then
        rm -rf "$work/download/.apt"
        mkdir -p "$work/download/.apt"
        nvidia_apt archive_download "$work/download/.apt" "nvidia-open-kernel-source=$v" ||
            { cat "$work/download/.apt/apt.log" >&2; return 1; }
        mv "$work/download/.apt"/nvidia-open-kernel-source_*.deb "$deb" || return 1
        rm -rf "$work/download/.apt"
    fi
    echo "$deb"
}

fetch_nvidia() { # -> path of the tarball, or nothing
    local url dest
    mkdir -p "$work/download"
    for url in "https://download.nvidia.com/XFree86/NVIDIA-kernel-module-source/NVIDIA-kernel-module-source-$ver.tar.xz" \
               "https://github.com/NVIDIA/open-gpu-kernel-modules/archive/refs/tags/$ver.tar.gz"; do
        dest=$work/download/${url##*/}
        [[ $dest == */$ver.tar.gz ]] && dest=$work/download/open-gpu-kernel-modules-$ver.tar.gz
        if [[ -s $dest ]]; then echo "$dest"; return 0; fi
        echo "$prog: trying $url" >&2
        if command -v curl >/dev/null; then
            curl -fsSL --connect-timeout 15 -o "$dest.part" "$url" >&2 2>/dev/null || { rm -f "$dest.part"; continue; }
        elif command -v wget >/dev/null; then
            wget -q -T 15 -O "$dest.part" "$url" >&2 || { rm -f "$dest.part"; continue; }
        else
            return 1
        fi
        mv "$dest.part" "$dest"
        echo "$dest"
        return 0
    done
    return 1
}

src=$source_arg
if [[ -z $src ]]; then
    src=$(fetch_debian) || src=
    [[ -n $src ]] && echo "$prog: source: Debian's nvidia-open-kernel-source ($src)" >&2
fi
if [[ -z $src ]]; then
    src=$(fetch_nvidia) || src=
    [[ -n $src ]] && echo "$prog: source: downloaded $src" >&2
fi
if [[ -z $src ]]; then
    usage_die "no source for the NVIDIA open kernel modules $ver: no --source TARBALL was given,
apt has no nvidia-open-kernel-source at $ver, and NVIDIA's download could not be reached.
On a host without network, pass --source with open-gpu-kernel-modules-$ver.tar.gz or
NVIDIA-kernel-module-source-$ver.tar.xz copied from a machine that has it."
fi
echo "$prog: source sha256 $(sha256sum "$src" | cut -d' ' -f1)  $src" >&2

rm -rf "$work/src"
mkdir -p "$work/src"
case $src in
    *.deb)
        command -v dpkg >/dev/null || die "'dpkg' not found (needed to unpack $src)"
        dpkg -x "$src" "$work/src/deb"
        inner=$(ls "$work"/src/deb/usr/src/nvidia-open-kernel*.tar.xz 2>/dev/null | head -n1)
        [[ -n $inner ]] || usage_die "$src holds no usr/src/nvidia-open-kernel*.tar.xz"
        tar -xf "$inner" -C "$work/src"
        ;;
    *) tar -xf "$src" -C "$work/src" || usage_die "cannot unpack '$src' as a tarball" ;;
esac

# Upstream layout: <top>/{Makefile,version.mk,kernel-open/,src/}: `make modules`
# at the top builds the OS-agnostic core, then kernel-open. Debian's: a bare
# kernel-open directory with the core prebuilt (nv-kernel.o_binary).
kbuild=$(find "$work/src" -maxdepth 4 -name Kbuild -path '*kernel-open/Kbuild' | head -n1)
if [[ -n $kbuild ]]; then
    top=$(dirname "$(dirname "$kbuild")")
    kopen=$(dirname "$kbuild")
    [[ -f $top/Makefile && -f $top/version.mk ]] || usage_die "$src: $top is not an open-gpu-kernel-modules tree"
else
    kbuild=$(find "$work/src" -maxdepth 4 -name Kbuild -path '*nvidia-open-kernel/Kbuild' | head -n1)
    [[ -n $kbuild ]] || usage_die "$src is not NVIDIA's open GPU kernel module source (no kernel-open/Kbuild)"
    kopen=$(dirname "$kbuild")
    top=$kopen
    ls "$kopen"/nvidia/nv-kernel.o_binary >/dev/null 2>&1 ||
        usage_die "$src: $kopen has no nvidia/nv-kernel.o_binary"
fi
src_ver=$(sed -n 's/.*-DNV_VERSION_STRING=\\"\([^\\"]*\)\\".*/\1/p' "$kbuild" | head -n1)
[[ -n $src_ver ]] || usage_die "$src: no NV_VERSION_STRING in $kbuild"
[[ $src_ver == "$ver" ]] ||
    usage_die "$src is NVIDIA driver $src_ver, but versions.env pins $ver (use the matching source, or change versions.env)"

# ---- 1b. this version's patches ---------------------------------------------
for patch in "$here"/patches/nvidia-"$src_ver"-*.patch; do
    [[ -f $patch ]] || continue
    skip_file='' skip_string=''
    read -r skip_file skip_string < <(sed -n 's/^Skip-If-Present: *//p' "$patch" | head -n1) || true
    if [[ -n ${skip_string:-} && -f $kopen/$skip_file ]] && grep -qF -- "$skip_string" "$kopen/$skip_file"; then
        echo "$prog: patch ${patch##*/} skipped: the source's $skip_file already has $skip_string" >&2
        continue
    fi
    if ! plog=$(patch -d "$kopen" -p1 --forward --batch --dry-run <"$patch" 2>&1); then
        printf '%s\n' "$plog" >&2
        die "patch ${patch##*/} does not apply to $src (see above)"
    fi
    patch -d "$kopen" -p1 --forward --batch --silent <"$patch" || die "patch ${patch##*/} failed on $src"
    echo "$prog: applied ${patch##*/} (sha256 $(sha256sum "$patch" | cut -d' ' -f1))" >&2
done

# ---- 2. the pinned kernel's headers -----------------------------------------
pins_export "$work/pins.env" || die "cannot write $work/pins.env"
kdir=$("$here/fetch-kernel-headers.sh" "$work/headers") ||
    die "cannot fetch the headers of $rel (linux-headers-$rel; see above)"
common=$(sed -n 's|^include \(.*\)/Makefile$|\1|p' "$kdir/Makefile" | head -n1)
[[ -d $common ]] || die "cannot find the -common headers that $kdir/Makefile includes"
cc=$(sed -n 's/^CC = .*gcc-\([0-9][0-9]*\).*/gcc-\1/p' "$kdir/.kernelvariables" 2>/dev/null | head -n1)
cc=${cc:-gcc}
command -v "$cc" >/dev/null || die "'$cc' not found: $rel was built with it (apt-get install $cc)"

# ---- 3. build -----------------------------------------------------------------
echo "$prog: building in $top (make modules -j$jobs, CC=$cc; log $work/build.log)" >&2
if ! make -C "$top" modules -j"$jobs" SYSSRC="$common" SYSOUT="$kdir" KERNEL_UNAME="$rel" CC="$cc" \
        >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    die "the build failed (full log: $work/build.log)"
fi

mapfile -t built < <(find "$kopen" -maxdepth 1 -name '*.ko' | sort)
[[ ${#built[@]} -gt 0 ]] || die "the build produced no .ko in $kopen"
[[ -f $kopen/nvidia.ko ]] || die "the build produced no nvidia.ko"

# ---- 4. verify -------------------------------------------------------------------
for ko in "${built[@]}"; do
    vm=$(modinfo -F vermagic "$ko")
    [[ ${vm%% *} == "$rel" ]] || die "$ko has vermagic '$vm', not for $rel"
done
kv=$(modinfo -F version "$kopen/nvidia.ko")
[[ $kv == "$ver" ]] || die "$kopen/nvidia.ko is version '$kv', not $ver"

# ---- 5. install ------------------------------------------------------------------
dest=$out/lib/modules/$rel
if [[ -n $kernel_tree ]]; then
    ktree=$(cd "$kernel_tree/lib/modules/$rel" && pwd)
    echo "$prog: adding the kernel's own modules from $ktree" >&2
    mkdir -p "$dest"
    cp -al "$ktree/." "$dest/" 2>/dev/null || cp -a "$ktree/." "$dest/"
    # depmod rewrites these; do not write through hard links into ROOT.
    rm -f "$dest"/modules.*.bin "$dest"/modules.{dep,alias,symbols,softdep,devname}
fi
rm -rf "$dest/updates"
mkdir -p "$dest/updates"
cp "${built[@]}" "$dest/updates/"
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [[ -e $dest/$f ]] || : >"$dest/$f"
done
depmod -b "$out" "$rel"

echo "$prog: ok: $(cd "$dest/updates" && echo *.ko) in $dest/updates (vermagic $rel, version $ver)" >&2
echo "$dest"
