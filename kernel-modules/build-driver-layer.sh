#!/bin/bash
# build-driver-layer.sh --out DIR [--cache DIR] [--debs DIR] [--dry-run]
#                       [-j N] [--json] [--help]
#
# Builds the guest's NVIDIA driver layer: one read-only EROFS image holding
# the kernel modules, GSP firmware and userspace of exactly one driver
# version (versions.env: NVIDIA_DRIVER_VERSION) for the pinned guest kernel
# (pins.env, resolved by scripts/archive.sh), all from Debian's packages:
#   nvidia-open-kernel-source   -> nvidia.ko, nvidia-modeset.ko, nvidia-uvm.ko
#                                  (built by build-nvidia-modules.sh against
#                                  the guest kernel's headers, this version's
#                                  patches applied, debug info stripped)
#   firmware-nvidia-gsp         -> lib/firmware/nvidia/<version>/gsp_*.bin
#   nvidia-smi, libcuda1, libnvidia-ml1, libnvidia-cfg1,
#   libnvidia-ptxjitcompiler1, nvidia-persistenced
#                               -> usr/bin, usr/lib/x86_64-linux-gnu
# from NVIDIA_DEBIAN_SUITE (trixie; contrib, non-free, non-free-firmware,
# through the private apt configuration of nvidia-apt.sh), and
# nvidia-persistenced's libtirpc with its closure (libtirpc3 libtirpc-common
# libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0
# libkeyutils1) from this machine's own (Debian 12) archive, so that the
# layer needs glibc >= 2.34 only, not trixie's.
#
# Versions: each NVIDIA package at <version>-<revision pinned in
# versions.env>; when the archive no longer has that revision, the newest
# <version>-* with one warning line; when it has no <version>-* at all, or a
# package (or a file in it: nvidia.ko, libcuda.so.<v>, the firmware
# directory) is of another version, nothing is built (exit 1). Module,
# firmware and userspace are one version.
#
# The layer's tree (the image's root; bind or overlay it onto a workload root):
#   usr/bin/nvidia-smi, usr/bin/nvidia-persistenced
#   usr/lib/x86_64-linux-gnu/lib{cuda,nvidia-ml,nvidia-cfg,nvidia-ptxjitcompiler}.so.<v>
#       + their SONAME links (libcuda.so.1 ...) and libcuda.so, libnvidia-ml.so
#   usr/lib/x86_64-linux-gnu/nvidia-layer/   libtirpc & closure (bookworm);
#       nvidia-persistenced's RUNPATH is $ORIGIN/../lib/x86_64-linux-gnu/nvidia-layer,
#       the private libraries' is $ORIGIN (patchelf)
#   etc/netconfig                            (libtirpc-common; libtirpc reads it)
#   lib/firmware/nvidia/<v>/gsp_ga10x.bin, gsp_tu10x.bin
#   lib/modules/<release>/updates/nvidia{,-modeset,-uvm}.ko + depmod indexes
#   etc/vfiod/driver-layer.env               key, versions (pins.env format)
#
# Content-addressed: KEY = sha256 over the kernel release, the driver
# version, each package's version and .deb sha256, the patches applied, and
# these scripts. The result lives in CACHE/KEY/ (tree/, driver-layer.erofs,
# manifest.json, key.txt, build-info) and is reused, not rebuilt, when
# CACHE/KEY/complete exists. Downloads are kept in CACHE/debs/, the resolved
# versions in CACHE/resolved/ (keyed by versions.env and the state of the
# package lists), so a warm run runs no apt at all. OUT gets symlinks:
#   OUT/driver-layer.erofs  OUT/manifest.json  OUT/tree
#   OUT/modules  (= tree/lib/modules/<release>, for vfioctl initramfs build --modules-dir)
#   OUT/firmware (= tree/lib/firmware, for --firmware-dir)
#
# --out DIR      where the symlinks go (required)
# --cache DIR    default /var/cache/vfiod/driver-layer as root, else
#                ${XDG_CACHE_HOME:-~/.cache}/vfiod/driver-layer
# --debs DIR     take the packages from the .debs in DIR (no apt for them:
#                hosts without network; the kernel headers still come from
#                apt unless cached); the same version rules apply
# --dry-run      resolve, fetch and check the packages, print the key and
#                whether it is cached; build nothing
# -j N           parallel jobs for the module build (default: nproc)
# --json         print {key, cached, build_seconds, out, image, tree,
#                manifest, modules_dir, firmware_dir, kernel_release,
#                driver_version, packages} on stdout (else OUT's path)
#
# Exit status: 0 built or reused; 1 refused (versions) or a step failed;
# 2 bad usage or a missing tool.
# Environment: VFIOD_PINS, VFIOD_VERSIONS, VFIOD_NVIDIA_MIRROR,
# VFIOD_APT_NO_UPDATE=1 (no apt-get update).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: error: $*" >&2; exit 1; }
usage_die() { echo "$prog: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
versions=${VFIOD_VERSIONS:-$repo/versions.env}

out='' cache='' debs_dir='' dry_run=0 json=0 jobs=$(nproc 2>/dev/null || echo 2)
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) [[ $# -ge 2 ]] || usage_die "--out needs a DIR"; out=$2; shift 2 ;;
        --cache) [[ $# -ge 2 ]] || usage_die "--cache needs a DIR"; cache=$2; shift 2 ;;
        --debs) [[ $# -ge 2 ]] || usage_die "--debs needs a DIR"; debs_dir=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --json) json=1; shift ;;
        -j) [[ $# -ge 2 ]] || usage_die "-j needs N"; jobs=$2; shift 2 ;;
        -j*) jobs=${1#-j}; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) usage_die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n $out ]] || usage_die "--out DIR is required (see --help)"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage_die "-j wants a positive number, not '$jobs'"
if [[ -z $cache ]]; then
    if [[ $(id -u) -eq 0 ]]; then cache=/var/cache/vfiod/driver-layer
    else cache=${XDG_CACHE_HOME:-$HOME/.cache}/vfiod/driver-layer; fi
fi
[[ -z $debs_dir || -d $debs_dir ]] || usage_die "--debs '$debs_dir' is not a directory"
[[ -r $versions ]] || usage_die "cannot read $versions"

need_tools=(dpkg dpkg-deb sha256sum flock python3)
for tool in "${need_tools[@]}"; do
    command -v "$tool" >/dev/null || usage_die "'$tool' not found (apt-get install dpkg coreutils util-linux python3)"
done

mkdir -p "$cache" "$out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)
[[ -z $debs_dir ]] || debs_dir=$(cd "$debs_dir" && pwd)
exec 9>"$cache/.lock"
flock 9

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
sha256_str() { sha256sum | cut -d' ' -f1; }

# shellcheck source=../scripts/archive.sh
. "$repo/scripts/archive.sh"
# shellcheck source=nvidia-apt.sh
. "$here/nvidia-apt.sh"

# The state of this machine's package lists: resolutions made against them
# are reused until they change.
host_lists_state() {
    local L=''
    eval "$(apt-config shell L Dir::State::lists/d 2>/dev/null)" || true
    [[ -n $L ]] || return 0
    stat -c '%n %s %Y' "$L"*_Packages* 2>/dev/null || true
}
host_state=$(host_lists_state | sha256_str)

# ---- 1. the guest kernel -------------------------------------------------------
# pins_load resolves an unresolved pins file against the archive (apt-cache,
# seconds); the result is kept per (pins file, package lists).
pins_src=${VFIOD_PINS:-$repo/pins.env}
[[ -r $pins_src ]] || usage_die "cannot read the pins file $pins_src"
if ! grep -qx 'PINS_RESOLVED=yes' "$pins_src"; then
    memo=$cache/pins/$( { cat "$pins_src"; echo "$host_state"; } | sha256_str).env
    if [[ -f $memo ]]; then
        VFIOD_PINS=$memo
    else
        pins_load || die "cannot resolve the guest kernel"
        mkdir -p "$cache/pins"
        pins_write "$memo" || die "cannot write $memo"
        VFIOD_PINS=$memo
    fi
    export VFIOD_PINS
fi
pins_load || die "cannot resolve the guest kernel"
rel=$GUEST_KERNEL_RELEASE

# ---- 2. versions -------------------------------------------------------------------
# shellcheck source=../versions.env
. "$versions"
ver=${NVIDIA_DRIVER_VERSION:-}
[[ -n $ver ]] || usage_die "$versions sets no NVIDIA_DRIVER_VERSION"
suite=${NVIDIA_DEBIAN_SUITE:-trixie}

# package -> the versions.env revision that pins it
declare -A rev_of=(
    [nvidia-open-kernel-source]=${NVIDIA_KERNEL_DEBIAN_REVISION:-}
    [firmware-nvidia-gsp]=${NVIDIA_DEBIAN_REVISION:-}
    [nvidia-smi]=${NVIDIA_DEBIAN_REVISION:-}
    [libcuda1]=${NVIDIA_DEBIAN_REVISION:-}
    [libnvidia-ml1]=${NVIDIA_DEBIAN_REVISION:-}
    [libnvidia-cfg1]=${NVIDIA_DEBIAN_REVISION:-}
    [libnvidia-ptxjitcompiler1]=${NVIDIA_DEBIAN_REVISION:-}
    [nvidia-persistenced]=${NVIDIA_PERSISTENCED_DEBIAN_REVISION:-}
)
nv_pkgs=(nvidia-open-kernel-source firmware-nvidia-gsp nvidia-smi libcuda1 libnvidia-ml1
         libnvidia-cfg1 libnvidia-ptxjitcompiler1 nvidia-persistenced)
# nvidia-persistenced's libtirpc and its closure, from this machine's archive.
host_pkgs=(libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2
           libkrb5support0 libkeyutils1)
all_pkgs=("${nv_pkgs[@]}" "${host_pkgs[@]}")

# The files that make the layer: they enter the key.
patches=()
for p in "$here"/patches/nvidia-"$ver"-*.patch; do
    [[ -f $p ]] && patches+=("$p")
done
scripts=(build-driver-layer.sh build-nvidia-modules.sh fetch-kernel-headers.sh nvidia-apt.sh
         driver-layer-manifest.py)

# ---- 3. the packages: resolve, fetch, check -----------------------------------------
declare -A pkg_ver=() pkg_deb=() pkg_sha=() pkg_from=()
# the control fields of the .debs looked at (one dpkg-deb call each)
declare -A ctl_pkg=() ctl_ver=() ctl_dep=()
read_control() {
    local f=$1 ctl line field='' p='' v='' d=''
    [[ -z ${ctl_pkg[$f]+set} ]] || return 0
    ctl=$(dpkg-deb -f "$f" Package Version Depends 2>/dev/null) || return 1
    while IFS= read -r line; do
        case $line in
            Package:*) field=p; p=${line#Package:} ;;
            Version:*) field=v; v=${line#Version:} ;;
            Depends:*) field=d; d=${line#Depends:} ;;
            ' '*) [[ $field != d ]] || d+=$line ;;
        esac
    done <<<"$ctl"
    p=${p// /} v=${v// /}
    [[ -n $p && -n $v ]] || return 1
    ctl_pkg[$f]=$p ctl_ver[$f]=$v ctl_dep[$f]=$d
}

# A run with the same versions.env, the same source of packages and unchanged
# package lists resolves to the same .debs: kept in CACHE/resolved/.
if [[ -n $debs_dir ]]; then
    src_state="debs $debs_dir"$'\n'$(stat -c '%n %s %Y %i' "$debs_dir"/*.deb 2>/dev/null || true)
else
    nvidia_apt_init "$cache/apt" "$suite" || die "cannot set up the private apt configuration in $cache/apt"
    nvidia_apt_update || die "no package lists for $suite (contrib, non-free, non-free-firmware)"
    src_state="apt $suite"$'\n'$(nvidia_apt_lists_state)
fi
resolve_key=$( { echo "resolve 1"; cat "$versions"; echo "$rel"; echo "$src_state"; echo "$host_state"; } | sha256_str)
memo=$cache/resolved/$resolve_key

load_memo() {
    local name v sha path from
    [[ -f $memo ]] || return 1
    while read -r name v sha path from; do
        [[ -f $path ]] || return 1
        pkg_ver[$name]=$v pkg_sha[$name]=$sha pkg_deb[$name]=$path pkg_from[$name]=$from
    done <"$memo"
    for name in "${all_pkgs[@]}"; do
        [[ -n ${pkg_ver[$name]:-} ]] || return 1
    done
}

# madison_versions PKG < madison output: PKG's versions, one a line
madison_versions() {
    awk -F'|' -v p="$1" '{ gsub(/ /, "", $1); gsub(/ /, "", $2); if ($1 == p) print $2 }' | sort -u
}

resolve_apt() {
    local madison name v tmp f got_pkg got_ver
    local -a vers want_nv=() want_host=()
    madison=$(nvidia_apt apt-cache madison "${nv_pkgs[@]}" 2>/dev/null) || true
    for name in "${nv_pkgs[@]}"; do
        mapfile -t vers < <(madison_versions "$name" <<<"$madison")
        v=$(nvidia_pick_version "$name" "$ver" "${rev_of[$name]}" "${vers[@]}") ||
            die "refusing to build: the archive ($suite) has no $name at $ver; every package of the layer must be NVIDIA $ver"
        pkg_ver[$name]=$v pkg_from[$name]=$suite
    done
    madison=$(apt-cache madison "${host_pkgs[@]}" 2>/dev/null) || true
    for name in "${host_pkgs[@]}"; do
        mapfile -t vers < <(madison_versions "$name" <<<"$madison")
        v=''
        for f in "${vers[@]}"; do
            if [[ -z $v ]] || dpkg --compare-versions "$f" gt "$v"; then v=$f; fi
        done
        [[ -n $v ]] || die "this machine's apt archives have no $name (nvidia-persistenced's libtirpc closure comes from Debian 12 bookworm's main; run apt-get update)"
        pkg_ver[$name]=$v pkg_from[$name]=host
    done
    # Fetch what the cache does not have.
    mkdir -p "$cache/debs"
    for name in "${all_pkgs[@]}"; do
        f=$cache/debs/${name}_${pkg_ver[$name]#*:}.deb
        if [[ -s $f && -s $f.sha256 ]]; then
            pkg_deb[$name]=$f
        elif [[ ${pkg_from[$name]} == host ]]; then
            want_host+=("$name=${pkg_ver[$name]}")
        else
            want_nv+=("$name=${pkg_ver[$name]}")
        fi
    done
    if [[ ${#want_nv[@]} -gt 0 || ${#want_host[@]} -gt 0 ]]; then
        tmp=$(mktemp -d "$cache/debs/.download.XXXXXX")
        if [[ ${#want_nv[@]} -gt 0 ]]; then
            echo "$prog: downloading from $suite: ${want_nv[*]}" >&2
            nvidia_apt archive_download "$tmp" "${want_nv[@]}" ||
                { cat "$tmp/apt.log" >&2; rm -rf "$tmp"; die "apt-get download from $suite failed"; }
        fi
        if [[ ${#want_host[@]} -gt 0 ]]; then
            echo "$prog: downloading from this machine's archive: ${want_host[*]}" >&2
            archive_download "$tmp" "${want_host[@]}" ||
                { cat "$tmp/apt.log" >&2; rm -rf "$tmp"; die "apt-get download failed"; }
        fi
        for f in "$tmp"/*.deb; do
            [[ -e $f ]] || continue
            got_pkg=$(dpkg-deb -f "$f" Package) got_ver=$(dpkg-deb -f "$f" Version)
            sha256_of "$f" >"$cache/debs/${got_pkg}_${got_ver#*:}.deb.sha256"
            mv "$f" "$cache/debs/${got_pkg}_${got_ver#*:}.deb"
        done
        rm -rf "$tmp"
    fi
    for name in "${all_pkgs[@]}"; do
        f=$cache/debs/${name}_${pkg_ver[$name]#*:}.deb
        [[ -s $f && -s $f.sha256 ]] || die "apt-get download did not bring $name ${pkg_ver[$name]}"
        pkg_deb[$name]=$f pkg_sha[$name]=$(<"$f.sha256")
    done
}

resolve_debs() {
    local f name v
    local -A have=() deb_at=()
    for f in "$debs_dir"/*.deb; do
        [[ -e $f ]] || continue
        read_control "$f" || die "$f is not a Debian package"
        name=${ctl_pkg[$f]} v=${ctl_ver[$f]}
        have[$name]+="$v "
        deb_at["$name=$v"]=$f
    done
    for name in "${all_pkgs[@]}"; do
        if [[ -z ${have[$name]:-} ]]; then
            die "--debs $debs_dir has no $name (needed: ${all_pkgs[*]})"
        fi
        if [[ -n ${rev_of[$name]+set} ]]; then
            # shellcheck disable=SC2086
            v=$(nvidia_pick_version "$name" "$ver" "${rev_of[$name]}" ${have[$name]}) ||
                die "refusing to build: --debs $debs_dir has no $name at $ver; every package of the layer must be NVIDIA $ver"
            pkg_from[$name]=debs
        else
            v=''
            # shellcheck disable=SC2086  # the versions, split on spaces
            for f in ${have[$name]}; do
                if [[ -z $v ]] || dpkg --compare-versions "$f" gt "$v"; then v=$f; fi
            done
            pkg_from[$name]=debs
        fi
        pkg_ver[$name]=$v
        pkg_deb[$name]=${deb_at["$name=$v"]}
        pkg_sha[$name]=$(sha256_of "${pkg_deb[$name]}")
    done
}

# check_one_version: the .debs are what they claim, NVIDIA's are all $ver,
# and their "=" dependencies on each other hold.
check_one_version() {
    local name f v dep dname rel_op dver dep_re='^([^ (]+) *\(([<>=]+) *([^)]+)\)$'
    for name in "${all_pkgs[@]}"; do
        f=${pkg_deb[$name]}
        read_control "$f" || die "$f is not a Debian package"
        [[ ${ctl_pkg[$f]} == "$name" ]] || die "$f is not $name"
        v=${ctl_ver[$f]}
        [[ $v == "${pkg_ver[$name]}" ]] || die "$f is $name $v, not ${pkg_ver[$name]}"
        if [[ -n ${rev_of[$name]+set} && $(nvidia_upstream_version "$v") != "$ver" ]]; then
            die "refusing to build: $name $v is not NVIDIA $ver (module, firmware and userspace must be one version)"
        fi
    done
    for name in "${all_pkgs[@]}"; do
        while read -r dep; do
            [[ $dep =~ $dep_re ]] || continue
            dname=${BASH_REMATCH[1]} rel_op=${BASH_REMATCH[2]} dver=${BASH_REMATCH[3]}
            [[ -n ${pkg_ver[$dname]:-} ]] || continue
            case $rel_op in '=') rel_op=eq ;; '>=') rel_op=ge ;; '<=') rel_op=le ;; '>>') rel_op=gt ;; '<<') rel_op=lt ;; *) continue ;; esac
            dpkg --compare-versions "${pkg_ver[$dname]}" "$rel_op" "$dver" ||
                die "refusing to build: $name ${pkg_ver[$name]} depends on $dep, but the layer's $dname is ${pkg_ver[$dname]}"
        done < <(tr ',|' '\n' <<<"${ctl_dep[${pkg_deb[$name]}]}" | sed 's/^ *//; s/ *$//')
    done
}

if load_memo; then
    :
else
    pkg_ver=() pkg_deb=() pkg_sha=() pkg_from=()
    if [[ -n $debs_dir ]]; then resolve_debs; else resolve_apt; fi
    check_one_version
    mkdir -p "$cache/resolved"
    for name in "${all_pkgs[@]}"; do
        echo "$name ${pkg_ver[$name]} ${pkg_sha[$name]} ${pkg_deb[$name]} ${pkg_from[$name]}"
    done >"$memo.tmp"
    mv "$memo.tmp" "$memo"
fi

# ---- 4. the key -------------------------------------------------------------------------
declare -A file_sha=()
while read -r sha f; do file_sha[$f]=$sha; done < <(sha256sum "${patches[@]}" "${scripts[@]/#/$here/}")
key_text=$(
    echo "vfiod-driver-layer 1"
    echo "kernel $rel"
    echo "driver $ver"
    for name in "${all_pkgs[@]}"; do echo "deb $name ${pkg_ver[$name]} ${pkg_sha[$name]}"; done
    for p in "${patches[@]}"; do echo "patch ${p##*/} ${file_sha[$p]}"; done
    for s in "${scripts[@]}"; do echo "file kernel-modules/$s ${file_sha[$here/$s]}"; done
)
key=$(sha256_str <<<"$key_text")
res=$cache/$key
cached=0
[[ -f $res/complete ]] && cached=1

# json_str S: S as a JSON string
json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

print_result() {
    local build_seconds=null name sep=''
    [[ ! -f $res/build-info ]] || build_seconds=$(sed -n 's/^build_seconds=//p' "$res/build-info")
    if [[ $json -eq 0 ]]; then
        if [[ $dry_run -eq 1 ]]; then echo "$key"; else echo "$out"; fi
        return 0
    fi
    # By hand, not python: a warm run stays well under a second.
    echo "{"
    echo " \"key\": \"$key\","
    echo " \"cached\": $([[ $cached -eq 1 ]] && echo true || echo false),"
    echo " \"build_seconds\": ${build_seconds:-null},"
    if [[ $dry_run -eq 0 ]]; then
        echo " \"out\": $(json_str "$out"),"
        echo " \"image\": $(json_str "$out/driver-layer.erofs"),"
        echo " \"tree\": $(json_str "$out/tree"),"
        echo " \"manifest\": $(json_str "$out/manifest.json"),"
        echo " \"modules_dir\": $(json_str "$out/modules"),"
        echo " \"firmware_dir\": $(json_str "$out/firmware"),"
        echo " \"cache\": $(json_str "$res"),"
    fi
    echo " \"kernel_release\": $(json_str "$rel"),"
    echo " \"driver_version\": $(json_str "$ver"),"
    echo " \"packages\": {"
    for name in "${all_pkgs[@]}"; do
        printf '%s  "%s": %s' "$sep" "$name" "$(json_str "${pkg_ver[$name]}")"
        sep=$',\n'
    done
    printf '\n }\n}\n'
}

if [[ $dry_run -eq 1 ]]; then
    echo "$prog: key $key ($([[ $cached -eq 1 ]] && echo cached || echo not built yet)): NVIDIA $ver for $rel" >&2
    print_result
    exit 0
fi

link_out() {
    local name target
    for name in driver-layer.erofs manifest.json tree modules firmware; do
        case $name in
            modules) target=$res/tree/lib/modules/$rel ;;
            firmware) target=$res/tree/lib/firmware ;;
            *) target=$res/$name ;;
        esac
        if [[ -e $out/$name && ! -L $out/$name ]]; then
            die "$out/$name exists and is not a symlink: not replacing it"
        fi
        ln -sfn "$target" "$out/$name"
    done
}

if [[ $cached -eq 1 ]]; then
    echo "$prog: NVIDIA $ver for $rel: cached ($res; $(sed -n 's/^build_seconds=\(.*\)/cold build took \1 s/p' "$res/build-info" 2>/dev/null))" >&2
    link_out
    print_result
    exit 0
fi

# ---- 5. build ------------------------------------------------------------------------
for tool in mkfs.erofs fsck.erofs patchelf readelf strip modinfo depmod make xz patch; do
    command -v "$tool" >/dev/null ||
        usage_die "'$tool' not found (apt-get install erofs-utils patchelf binutils kmod make xz-utils patch gcc-12)"
done
start=$(date +%s%N)
echo "$prog: building the driver layer $key: NVIDIA $ver for $rel" >&2
build=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$build"' EXIT
tree=$build/tree
x=$build/x
mkdir -p "$tree" "$x"

# 5a. the modules, stripped of debug info; kept in CACHE/modules/MKEY by the
# inputs of the module build alone (a change in the assembly does not
# rebuild them)
mkey=$(
    echo "kernel $rel"
    echo "source ${pkg_sha[nvidia-open-kernel-source]}"
    for p in "${patches[@]}"; do echo "patch ${p##*/} ${file_sha[$p]}"; done
    for s in build-nvidia-modules.sh fetch-kernel-headers.sh; do echo "file $s ${file_sha[$here/$s]}"; done
)
mkey=$(sha256_str <<<"$mkey")
mcache=$cache/modules/$mkey
modules_were=reused
if [[ ! -f $mcache/complete ]]; then
    modules_were=built
    modules_out=$build/modules
    "$here/build-nvidia-modules.sh" --source "${pkg_deb[nvidia-open-kernel-source]}" --out "$modules_out" \
        --work "$cache/work" -j "$jobs" >/dev/null || die "building the modules failed (see above)"
    rm -rf "$cache/work/src"   # the module build's objects (GBs); the headers stay
    rm -rf "$mcache" "$mcache.tmp"
    mkdir -p "$mcache.tmp"
    for m in nvidia nvidia-modeset nvidia-uvm; do
        ko=$modules_out/lib/modules/$rel/updates/$m.ko
        [[ -f $ko ]] || die "the module build produced no $m.ko"
        strip --strip-debug -o "$mcache.tmp/$m.ko" "$ko"
    done
    : >"$mcache.tmp/complete"
    mv "$mcache.tmp" "$mcache"
    rm -rf "$modules_out"
else
    echo "$prog: modules: reusing $mcache" >&2
fi
mdir=$tree/lib/modules/$rel/updates
mkdir -p "$mdir"
for m in nvidia nvidia-modeset nvidia-uvm; do
    cp "$mcache/$m.ko" "$mdir/$m.ko"
    vm=$(modinfo -F vermagic "$mdir/$m.ko")
    [[ ${vm%% *} == "$rel" ]] || die "$m.ko has vermagic '$vm', not $rel"
    mv_=$(modinfo -F version "$mdir/$m.ko")
    [[ $mv_ == "$ver" ]] || die "refusing: $m.ko is version '$mv_', not $ver"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do : >"$tree/lib/modules/$rel/$f"; done
depmod -b "$tree" "$rel" || die "depmod failed"

# 5b. unpack the packages
for name in "${all_pkgs[@]}"; do
    [[ $name == nvidia-open-kernel-source ]] && continue
    dpkg-deb -x "${pkg_deb[$name]}" "$x/$name"
done

# 5c. firmware: exactly this version's directory
fwsrc=''
for d in "$x"/firmware-nvidia-gsp/{usr/lib,lib}/firmware/nvidia; do
    [[ -d $d ]] && fwsrc=$d
done
[[ -n $fwsrc && -d $fwsrc/$ver ]] ||
    die "refusing: firmware-nvidia-gsp ${pkg_ver[firmware-nvidia-gsp]} has no firmware/nvidia/$ver (it has: $(find "$fwsrc" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null))"
mkdir -p "$tree/lib/firmware/nvidia/$ver"
n=0
for f in "$fwsrc/$ver"/*.bin; do
    [[ -f $f && ! -L $f ]] || continue
    install -m 0644 "$f" "$tree/lib/firmware/nvidia/$ver/"
    n=$((n + 1))
done
[[ $n -gt 0 && -f $tree/lib/firmware/nvidia/$ver/gsp_ga10x.bin ]] || die "firmware-nvidia-gsp has no gsp_*.bin for $ver"

# 5d. NVIDIA's libraries: lib*.so.<ver> and the package's own links to them
libdir=$tree/usr/lib/x86_64-linux-gnu
mkdir -p "$libdir" "$tree/usr/bin"
soname_of() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
for name in libcuda1 libnvidia-ml1 libnvidia-cfg1 libnvidia-ptxjitcompiler1; do
    d=$x/$name/usr/lib/x86_64-linux-gnu/nvidia/current
    n=0
    for f in "$d"/lib*.so.*; do
        [[ -e $f || -L $f ]] || continue
        b=${f##*/}
        if [[ -L $f ]]; then
            t=$(readlink "$f")
            [[ $t != */* ]] || die "$name: $b -> $t leaves its directory"
            ln -sfn "$t" "$libdir/$b"
        elif [[ -f $f ]]; then
            [[ $b == *.so."$ver" ]] || die "refusing: $name ${pkg_ver[$name]} has $b, not a *.so.$ver"
            install -m 0644 "$f" "$libdir/$b"
            n=$((n + 1))
        fi
    done
    [[ $n -gt 0 ]] || die "refusing: $name ${pkg_ver[$name]} has no lib*.so.$ver"
    for f in "$d"/lib*.so; do   # libcuda.so, libnvidia-ml.so -> the SONAME link
        [[ -L $f ]] || continue
        t=$(readlink "$f")
        [[ $t != */* ]] && ln -sfn "$t" "$libdir/${f##*/}"
    done
done
for f in "$libdir"/lib*.so."$ver"; do
    s=$(soname_of "$f")
    [[ -n $s ]] || die "${f##*/} has no SONAME"
    [[ -e $libdir/$s ]] || ln -s "${f##*/}" "$libdir/$s"
done
[[ -f $libdir/libcuda.so.$ver && $(readlink -f "$libdir/libcuda.so.1") == "$libdir/libcuda.so.$ver" ]] ||
    die "libcuda.so.1 does not lead to libcuda.so.$ver"

# 5e. the programs
smi=$x/nvidia-smi/usr/lib/nvidia/current/nvidia-smi
[[ -f $smi && ! -L $smi ]] || smi=$x/nvidia-smi/usr/bin/nvidia-smi
[[ -f $smi && ! -L $smi ]] || die "nvidia-smi ${pkg_ver[nvidia-smi]} has no nvidia-smi program"
install -m 0755 "$smi" "$tree/usr/bin/nvidia-smi"
install -m 0755 "$x/nvidia-persistenced/usr/bin/nvidia-persistenced" "$tree/usr/bin/nvidia-persistenced"

# 5f. nvidia-persistenced's libtirpc closure (bookworm), private to the layer
priv=$libdir/nvidia-layer
mkdir -p "$priv"
for name in "${host_pkgs[@]}"; do
    [[ $name == libtirpc-common ]] && continue
    n=0
    for d in "$x/$name/lib/x86_64-linux-gnu" "$x/$name/usr/lib/x86_64-linux-gnu"; do
        for f in "$d"/lib*.so.*; do
            [[ -e $f || -L $f ]] || continue
            if [[ -L $f ]]; then
                t=$(readlink "$f")
                [[ $t != */* ]] || die "$name: ${f##*/} -> $t leaves its directory"
                ln -sfn "$t" "$priv/${f##*/}"
            else
                install -m 0644 "$f" "$priv/${f##*/}"
                # shellcheck disable=SC2016  # $ORIGIN is for ld.so
                patchelf --set-rpath '$ORIGIN' "$priv/${f##*/}"
                n=$((n + 1))
            fi
        done
    done
    [[ $n -gt 0 ]] || die "$name ${pkg_ver[$name]} has no shared library"
done
install -D -m 0644 "$x/libtirpc-common/etc/netconfig" "$tree/etc/netconfig"
# shellcheck disable=SC2016  # $ORIGIN is for ld.so
patchelf --set-rpath '$ORIGIN/../lib/x86_64-linux-gnu/nvidia-layer' "$tree/usr/bin/nvidia-persistenced"

# 5g. every ELF's libraries are glibc's or the layer's; the glibc it needs
glibc_libs=' libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 ld-linux-x86-64.so.2 '
glibc_min=2.0
while IFS= read -r -d '' f; do
    [[ $(head -c 4 "$f" | od -An -c | tr -d ' ') == 177ELF ]] || continue
    dir=${f%/*}
    runpath=$(readelf -d "$f" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
    while read -r lib; do
        [[ -n $lib ]] || continue
        [[ $glibc_libs == *" $lib "* ]] && continue
        found=0
        for d in "$dir" ${runpath//:/ } "$libdir"; do
            d=${d//\$ORIGIN/$dir}
            [[ -e $d/$lib ]] && found=1 && break
        done
        [[ $found -eq 1 ]] || die "${f#"$tree"/} needs $lib, which neither glibc nor the layer has"
    done < <(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    while read -r g; do
        dpkg --compare-versions "$g" gt "$glibc_min" && glibc_min=$g
    done < <(readelf -V "$f" | sed -n 's/.*Name: GLIBC_\([0-9.]*\).*/\1/p' | sort -uV)
done < <(find "$tree/usr" -type f -print0)

# 5h. what the layer is, inside it (pins.env format)
mkdir -p "$tree/etc/vfiod"
{
    echo "# vfiod driver layer (kernel-modules/build-driver-layer.sh); the full manifest is next to the image."
    echo "DRIVER_LAYER_KEY=$key"
    echo "NVIDIA_DRIVER_VERSION=$ver"
    echo "GUEST_KERNEL_RELEASE=$rel"
    echo "GLIBC_MIN=$glibc_min"
    for name in "${nv_pkgs[@]}"; do
        echo "DEBIAN_$(tr 'a-z-' 'A-Z_' <<<"$name")=${pkg_ver[$name]}"
    done
} >"$tree/etc/vfiod/driver-layer.env"

# 5i. modes: directories 0755, programs 0755, the rest 0644 (owners: root, in the image)
find "$tree" -type d -exec chmod 0755 {} +
find "$tree" -type f -exec chmod 0644 {} +
chmod 0755 "$tree/usr/bin"/*

# 5j. the image: EROFS, lz4hc, fixed timestamps, owner root, UUID from the key
image=$build/driver-layer.erofs
uuid=${key:0:8}-${key:8:4}-${key:12:4}-${key:16:4}-${key:20:12}
mkfs.erofs -zlz4hc -T0 --all-root -U"$uuid" --quiet "$image" "$tree" >"$build/mkfs.log" 2>&1 ||
    { cat "$build/mkfs.log" >&2; die "mkfs.erofs failed"; }
fsck.erofs "$image" >"$build/fsck.log" 2>&1 || { cat "$build/fsck.log" >&2; die "fsck.erofs: the image is broken"; }

# 5k. the manifest
{
    echo "key=$key"
    echo "driver_version=$ver"
    echo "kernel_release=$rel"
    echo "debian_suite=$suite"
    echo "glibc_min=$glibc_min"
    echo "erofs_utils=$(fsck.erofs -V 2>/dev/null | sed -n 's/^fsck.erofs \([0-9][^ ]*\).*/\1/p' | head -n1)"
    for p in "${patches[@]}"; do echo "patch=${p##*/} $(sha256_of "$p")"; done
} >"$build/info"
for name in "${all_pkgs[@]}"; do
    echo "$name ${pkg_ver[$name]} ${pkg_sha[$name]} ${pkg_from[$name]}"
done >"$build/packages"
python3 "$here/driver-layer-manifest.py" write "$tree" --out "$build/manifest.json" --info "$build/info" \
    --packages "$build/packages" --image "$image"

# 5l. into the cache
mkdir -p "$build/res"
mv "$tree" "$image" "$build/manifest.json" "$build/res/"
echo "$key_text" >"$build/res/key.txt"
ms=$((($(date +%s%N) - start) / 1000000))
secs=$((ms / 1000)).$((ms % 1000 / 100))
printf 'build_seconds=%s\nmodules=%s\nbuilt=%s\n' "$secs" "$modules_were" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$build/res/build-info"
: >"$build/res/complete"
rm -rf "$res"
mv "$build/res" "$res"
echo "$prog: built $key in $secs s ($((ms / 60000))m$((ms / 1000 % 60))s, cold; modules $modules_were): $(du -sh "$res/driver-layer.erofs" | cut -f1) image, NVIDIA $ver for $rel" >&2
link_out
print_result
