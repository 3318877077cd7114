#!/bin/bash
# shellcheck shell=bash
# nvidia-apt.sh: Debian's NVIDIA packages through a private apt configuration.
#
# Debian ships the NVIDIA stack in contrib, non-free and non-free-firmware of
# the suite named by NVIDIA_DEBIAN_SUITE (versions.env; trixie for 550.x).
# This machine's apt sources list `main` of bookworm only, and stay as they
# are: everything here runs apt with APT_CONFIG pointing at a configuration
# of its own under a cache directory (its own sources list, package lists,
# download cache and an empty dpkg status). /etc/apt is never written.
#
# Sourced (bash), after scripts/archive.sh:
#   . "$repo/scripts/archive.sh"; . "$repo/kernel-modules/nvidia-apt.sh"
#
# Functions (errors on stderr, non-zero status; none exits):
#   nvidia_apt_init DIR [SUITE [COMPONENTS]]
#                      create the configuration in DIR (DIR/apt.conf,
#                      sources.list, lists/, cache/, status); sets
#                      NVIDIA_APT_CONFIG. SUITE: default NVIDIA_DEBIAN_SUITE,
#                      else trixie. COMPONENTS: default "contrib non-free
#                      non-free-firmware" (the lab's large-BAR host uses
#                      "bookworm-backports main": tests/lab/fetch-backports.sh).
#                      Mirror: $VFIOD_NVIDIA_MIRROR, default
#                      http://deb.debian.org/debian.
#   nvidia_apt_update [--force]
#                      `apt-get update` under the private configuration when
#                      its lists are missing, older than a day, or were made
#                      for another sources list (or always with --force).
#                      When it fails but older lists exist: one warning, and
#                      the old lists are used. VFIOD_APT_NO_UPDATE=1: never.
#   nvidia_apt CMD...  run CMD (a program, or a function such as archive_pick
#                      or archive_download from scripts/archive.sh) in a
#                      subshell with APT_CONFIG set to the private file.
#   nvidia_apt_lists_state
#                      one line per package list (name size mtime): changes
#                      whenever the lists change (for callers' caches).
#   nvidia_pick_version PKG UPSTREAM REVISION [VERSION...]
#                      out of VERSION... (the versions an archive, or a
#                      directory of .debs, has for PKG) print the one to use:
#                      UPSTREAM-REVISION when present; else the newest
#                      UPSTREAM-* with one warning line (no warning when
#                      REVISION is empty); else fail, naming what there is.
#   nvidia_upstream_version VERSION
#                      VERSION without epoch and Debian revision.
#
# Run as a program: nvidia-apt.sh DIR [update [--force] | CMD...]
#   (init + update DIR, then run CMD under the private configuration, e.g.
#    nvidia-apt.sh build/nvidia-apt apt-cache madison nvidia-smi)

nvidia_apt_init() {
    local dir=$1 suite=${2:-${NVIDIA_DEBIAN_SUITE:-trixie}} components=${3:-contrib non-free non-free-firmware}
    local mirror=${VFIOD_NVIDIA_MIRROR:-http://deb.debian.org/debian}
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg line
    [[ -n $dir ]] || { echo "nvidia-apt: nvidia_apt_init needs a DIR" >&2; return 2; }
    if [[ ! -r $keyring ]]; then
        echo "nvidia-apt: $keyring is missing (apt-get install debian-archive-keyring)" >&2
        return 1
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/preferences.d" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    [[ -e $dir/status ]] || : >"$dir/status" || return 1
    # Nothing is installed from here (apt-get download only), so no
    # dependency has to be resolved against the machine's own suites.
    line="deb [signed-by=$keyring] $mirror $suite $components"
    if [[ ! -f $dir/sources.list || $(<"$dir/sources.list") != "$line" ]]; then
        echo "$line" >"$dir/sources.list.new" && mv "$dir/sources.list.new" "$dir/sources.list" || return 1
    fi
    cat >"$dir/apt.conf.new" <<EOF || return 1
// Private apt configuration of vfiod's NVIDIA driver build (kernel-modules/nvidia-apt.sh).
Dir::Etc::sourcelist "$dir/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferences "$dir/preferences";
Dir::Etc::preferencesparts "$dir/preferences.d";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::State::extended_states "$dir/extended_states";
Dir::Cache "$dir/cache";
Dir::Cache::archives "$dir/cache/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
    if cmp -s "$dir/apt.conf.new" "$dir/apt.conf"; then rm -f "$dir/apt.conf.new"; else mv "$dir/apt.conf.new" "$dir/apt.conf" || return 1; fi
    NVIDIA_APT_DIR=$dir
    NVIDIA_APT_CONFIG=$dir/apt.conf
}

nvidia_apt() {
    [[ -n ${NVIDIA_APT_CONFIG:-} ]] || { echo "nvidia-apt: nvidia_apt_init was not called" >&2; return 2; }
    (
        APT_CONFIG=$NVIDIA_APT_CONFIG
        export APT_CONFIG
        "$@"
    )
}

nvidia_apt_lists_state() {
    [[ -n ${NVIDIA_APT_DIR:-} ]] || return 2
    stat -c '%n %s %Y' "$NVIDIA_APT_DIR"/lists/*_Packages* 2>/dev/null || true
}

nvidia_apt_update() {
    local force=0 dir=${NVIDIA_APT_DIR:-} stamp have log
    [[ ${1:-} != --force ]] || force=1
    [[ -n $dir ]] || { echo "nvidia-apt: nvidia_apt_init was not called" >&2; return 2; }
    stamp=$dir/lists.stamp
    have=$(nvidia_apt_lists_state)
    if [[ $force -eq 0 && -n $have && -f $stamp && $(<"$stamp") == "$(<"$dir/sources.list")" &&
          -n $(find "$stamp" -mmin -1440 2>/dev/null) ]]; then
        return 0
    fi
    if [[ ${VFIOD_APT_NO_UPDATE:-0} == 1 ]]; then
        [[ -n $have ]] && return 0
        echo "nvidia-apt: no package lists in $dir/lists and VFIOD_APT_NO_UPDATE=1" >&2
        return 1
    fi
    echo "nvidia-apt: apt-get update for $(cut -d' ' -f3- "$dir/sources.list") (private lists in $dir)" >&2
    if log=$(nvidia_apt apt-get -q update 2>&1) && [[ -n $(nvidia_apt_lists_state) ]] &&
            ! grep -q '^\(E:\|Err:\|W: Failed\)' <<<"$log"; then
        cp "$dir/sources.list" "$stamp"
        return 0
    fi
    printf '%s\n' "$log" | tail -n 20 >&2
    if [[ -n $have && -f $stamp ]]; then
        echo "nvidia-apt: WARNING: apt-get update failed; using the package lists of $(date -r "$stamp" -u +%Y-%m-%dT%H:%MZ)" >&2
        return 0
    fi
    echo "nvidia-apt: apt-get update failed (no network, or the suite is gone from $(cut -d' ' -f3 "$dir/sources.list"))" >&2
    return 1
}

nvidia_upstream_version() {
    local v=$1
    [[ $v != *:* ]] || v=${v#*:}
    [[ $v != *-* ]] || v=${v%-*}
    echo "$v"
}

nvidia_pick_version() {
    local pkg=$1 up=$2 rev=$3 v best='' all=''
    shift 3
    if [[ -z $rev ]]; then rev='(none pinned)'; fi
    for v in "$@"; do
        [[ -n $v ]] || continue
        all+=" $v"
        [[ $(nvidia_upstream_version "$v") == "$up" ]] || continue
        if [[ ${v#*:} == "$up-$rev" ]]; then
            echo "$v"
            return 0
        fi
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    if [[ -z $best ]]; then
        echo "nvidia-apt: $pkg: no version $up-* (there is:${all:- nothing}); versions.env pins NVIDIA_DRIVER_VERSION=$up: pin a version the archive has (or pass the packages of $up)" >&2
        return 1
    fi
    if [[ $rev != '(none pinned)' ]]; then
        echo "nvidia-apt: WARNING: $pkg $up-$rev is gone, using $best (update the revision in versions.env)" >&2
    fi
    echo "$best"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    [[ $# -ge 1 && $1 != -h && $1 != --help ]] || {
        sed -n '3,/^nvidia_apt_init()/{/^nvidia_apt_init()/d;s/^# \{0,1\}//;p}' "$0"
        [[ $# -ge 1 ]] && exit 0 || exit 2
    }
    _here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    _versions=${VFIOD_VERSIONS:-$_here/../versions.env}
    # shellcheck source=../versions.env
    [[ ! -r $_versions ]] || . "$_versions"
    nvidia_apt_init "$1"
    shift
    if [[ ${1:-} == update ]]; then
        shift
        nvidia_apt_update "$@"
        exit
    fi
    nvidia_apt_update
    [[ $# -eq 0 ]] || nvidia_apt "$@"
fi
