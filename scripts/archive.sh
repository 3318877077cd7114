# shellcheck shell=bash
# archive.sh: the one place that turns pins into packages the Debian archive
# has today. Sourced (bash) by every script that downloads a Debian package:
#   . "$repo/scripts/archive.sh"
#
# The archive moves: the security suite keeps only the newest kernel ABI, and
# a package's dependencies name versions with a relation (">= V"), not the
# version that happens to be there. So nothing here asks for an exact version
# unless the dependency itself says "=".
#
# Functions (all print errors on stderr and return non-zero; none exits):
#   pins_load          read the pins file ($VFIOD_PINS, else the repository's
#                      pins.env) and resolve the guest kernel against the
#                      archive (pins_resolve_kernel) unless the file says
#                      PINS_RESOLVED=yes. Sets GUEST_KERNEL_PACKAGE,
#                      GUEST_KERNEL_RELEASE and PINS_FILE.
#   pins_resolve_kernel [--current]
#                      keep the pinned ABI when the archive has it; else (or
#                      always with --current) take the ABI that the flavour's
#                      meta-package (linux-image-amd64, linux-image-cloud-amd64)
#                      depends on, with one warning line on stderr.
#   pins_write FILE    write the pins file with the resolved kernel and
#                      PINS_RESOLVED=yes (atomically), for the rest of a run.
#   pins_export FILE   pins_write FILE and export VFIOD_PINS=FILE, so that
#                      child scripts use this resolution (no-op when the
#                      pins are already a resolved file).
#   archive_pick PKG [OP VER]
#                      print the highest version of PKG the archive has that
#                      satisfies "OP VER" (OP: = >= <= >> <<; none: any).
#   archive_depends PKG VER
#                      print PKG VER's Depends, one "NAME OP VER" or "NAME"
#                      per line (alternatives: the first one).
#   archive_download DIR PKG=VER...
#                      apt-get download into DIR (log in DIR/apt.log).
#   archive_update_once
#                      apt-get update, at most once per process (root only;
#                      VFIOD_APT_NO_UPDATE=1 turns it off, for tests).
# Environment: VFIOD_PINS (pins file), VFIOD_APT_NO_UPDATE.

_archive_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_archive_updated=0

archive_update_once() {
    [[ $_archive_updated -eq 0 ]] || return 0
    _archive_updated=1
    [[ ${VFIOD_APT_NO_UPDATE:-0} != 1 ]] || return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "archive: not root: cannot run apt-get update (the package lists may be old)" >&2
        return 0
    fi
    echo "archive: running apt-get update" >&2
    local log
    log=$(apt-get -q update 2>&1) || { printf '%s\n' "$log" >&2; echo "archive: apt-get update failed" >&2; return 1; }
}

# _archive_versions PKG: every version apt knows for PKG, one a line.
_archive_versions() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' -v p="$1" '{ gsub(/ /, "", $1); gsub(/ /, "", $2); if ($1 == p) print $2 }' | sort -u
}

archive_pick() {
    local pkg=$1 op=${2:-} want=${3:-} best='' v
    case $op in
        '') ;;
        '=') op=eq ;; '>=') op=ge ;; '<=') op=le ;; '>>') op=gt ;; '<<') op=lt ;;
        *) echo "archive: unknown version relation '$op' for $pkg" >&2; return 2 ;;
    esac
    while read -r v; do
        [[ -n $v ]] || continue
        if [[ -n $op ]] && ! dpkg --compare-versions "$v" "$op" "$want"; then continue; fi
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done < <(_archive_versions "$pkg")
    [[ -n $best ]] || return 1
    echo "$best"
}

archive_depends() {
    local pkg=$1 ver=$2
    apt-cache show "$pkg=$ver" 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1 | tr ',' '\n' |
        sed -e 's/|.*//' -e 's/^ *//' -e 's/ *$//' |
        sed -n 's/^\([^ (]*\) *(\([<>=]*\) *\([^)]*\))$/\1 \2 \3/p; s/^\([^ (]*\)$/\1/p'
}

archive_download() {
    local dir=$1
    shift
    # As root, apt drops to the _apt user for downloads, which cannot write
    # to a private temp dir: download as root (no sandbox) into it.
    (cd "$dir" && apt-get -q -o APT::Sandbox::User=root download "$@") >"$dir/apt.log" 2>&1
}

# _pins_flavour RELEASE: "amd64" or "cloud-amd64" (the meta-package suffix).
_pins_flavour() {
    case $1 in
        *-cloud-amd64) echo cloud-amd64 ;;
        *-amd64) echo amd64 ;;
        *) return 1 ;;
    esac
}

# shellcheck disable=SC2120  # --current is used by scripts/dev pins
pins_resolve_kernel() {
    local current=0 flavour meta mver dep abi_pkg abi_rel
    [[ ${1:-} != --current ]] || current=1
    local k
    for k in GUEST_KERNEL_PACKAGE GUEST_KERNEL_RELEASE; do
        [[ -n ${!k:-} ]] || { echo "archive: ${PINS_FILE:-the pins file} sets no $k" >&2; return 1; }
    done
    if [[ $GUEST_KERNEL_PACKAGE != "linux-image-$GUEST_KERNEL_RELEASE" ]]; then
        echo "archive: ${PINS_FILE:-pins.env}: GUEST_KERNEL_PACKAGE=$GUEST_KERNEL_PACKAGE does not match GUEST_KERNEL_RELEASE=$GUEST_KERNEL_RELEASE (want linux-image-<release>)" >&2
        return 1
    fi
    if ! flavour=$(_pins_flavour "$GUEST_KERNEL_RELEASE"); then
        echo "archive: GUEST_KERNEL_RELEASE '$GUEST_KERNEL_RELEASE' is not a Debian amd64 or cloud-amd64 kernel" >&2
        return 1
    fi
    meta=linux-image-$flavour
    if [[ $current -eq 0 ]]; then
        if [[ -z $(_archive_versions "$GUEST_KERNEL_PACKAGE") && -z $(_archive_versions "$meta") ]]; then
            archive_update_once || return 1
        fi
        [[ -z $(_archive_versions "$GUEST_KERNEL_PACKAGE") ]] || return 0
    fi
    if ! mver=$(archive_pick "$meta"); then
        archive_update_once || return 1
        mver=$(archive_pick "$meta") || {
            echo "archive: the configured apt archives have no $meta: cannot find the current kernel ABI" >&2
            return 1
        }
    fi
    dep=$(archive_depends "$meta" "$mver" | awk -v f="$flavour" '$1 ~ "^linux-image-[0-9].*-" f "$" { print $1; exit }')
    if [[ -z $dep ]]; then
        echo "archive: $meta $mver depends on no linux-image-<abi>-$flavour package" >&2
        return 1
    fi
    abi_pkg=$dep abi_rel=${dep#linux-image-}
    if [[ $abi_pkg != "$GUEST_KERNEL_PACKAGE" ]]; then
        if [[ $current -eq 0 ]]; then
            echo "archive: WARNING: $(basename "${PINS_FILE:-pins.env}") names $GUEST_KERNEL_PACKAGE, the archive has $abi_pkg: using $abi_pkg; run scripts/dev pins to update" >&2
        fi
        GUEST_KERNEL_PACKAGE=$abi_pkg
        GUEST_KERNEL_RELEASE=$abi_rel
    fi
}

pins_load() {
    PINS_FILE=${VFIOD_PINS:-$_archive_repo/pins.env}
    [[ -r $PINS_FILE ]] || { echo "archive: cannot read the pins file $PINS_FILE" >&2; return 1; }
    PINS_RESOLVED=''
    # shellcheck disable=SC1090
    . "$PINS_FILE"
    # shellcheck disable=SC2119  # the pinned ABI while the archive has it
    [[ ${PINS_RESOLVED:-} == yes ]] || pins_resolve_kernel
}

pins_write() {
    local out=$1 tmp
    tmp=$(mktemp "$out.XXXXXX") || return 1
    {
        echo "# $PINS_FILE resolved against the Debian archive on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "# by scripts/archive.sh: the release this run uses. Do not edit."
        grep -v -e '^GUEST_KERNEL_PACKAGE=' -e '^GUEST_KERNEL_RELEASE=' -e '^PINS_RESOLVED=' \
            -e '^# .* resolved against the Debian archive on ' -e '^# by scripts/archive.sh: ' "$PINS_FILE"
        echo "GUEST_KERNEL_PACKAGE=$GUEST_KERNEL_PACKAGE"
        echo "GUEST_KERNEL_RELEASE=$GUEST_KERNEL_RELEASE"
        echo "PINS_RESOLVED=yes"
    } >"$tmp" || { rm -f "$tmp"; return 1; }
    mv "$tmp" "$out"
}

pins_export() {
    [[ ${PINS_RESOLVED:-} != yes ]] || return 0
    pins_write "$1" || return 1
    VFIOD_PINS=$1
    export VFIOD_PINS
}
