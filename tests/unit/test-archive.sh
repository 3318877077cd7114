#!/bin/bash
# test-archive.sh SOURCE_ROOT [real]
#
# scripts/archive.sh (the pins resolved against a moving Debian archive) and
# the scripts built on it, against a fake archive: apt-cache and apt-get
# stand-ins on PATH that serve a package table and .deb files this test
# builds with dpkg-deb. The archive of the bug report: the pinned ABI gone
# (or still there), the headers' "linux-kbuild-6.1 (>= V)" served only at a
# newer revision. Needs no root and no network.
#
# With "real": the same resolution against this machine's real apt lists
# (pins naming an ABI the archive has long dropped must resolve to what
# linux-image-amd64 depends on, with the warning); skips (77) when apt has
# no package lists.
set -uo pipefail

src=$(cd "${1:?usage: $0 SOURCE_ROOT [real]}" && pwd)
mode=${2:-fake}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { if [[ $1 -eq 0 ]]; then ok "$2"; else nok "$2"; fi; }
finish() {
    echo "# archive ($mode): $pass passed, $fail failed"
    [[ $fail -eq 0 && $pass -gt 0 ]]
    exit $?
}

work=$(mktemp -d "${TMPDIR:-/tmp}/vfiod-archive.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ $mode == real ]]; then
    meta=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
    if [[ -z $meta ]]; then
        echo "SKIP: apt knows no linux-image-amd64 (no package lists: run apt-get update as root)"
        exit 77
    fi
    printf 'GUEST_KERNEL_PACKAGE=linux-image-6.1.0-1-amd64\nGUEST_KERNEL_RELEASE=6.1.0-1-amd64\n' >"$work/pins.env"
    out=$(VFIOD_APT_NO_UPDATE=1 VFIOD_PINS=$work/pins.env bash -c '. "$1/scripts/archive.sh" && pins_load &&
        pins_write "$2" && echo "$GUEST_KERNEL_PACKAGE"' _ "$src" "$work/resolved.env" 2>"$work/err")
    rc=$?
    [[ $rc -eq 0 && $out == "$meta" ]]
    check $? "pins naming linux-image-6.1.0-1-amd64 resolve to the archive's current $meta (got '$out', exit $rc)"
    grep -qx "archive: WARNING: pins.env names linux-image-6.1.0-1-amd64, the archive has $meta: using $meta; run scripts/dev pins to update" "$work/err"
    check $? "one warning line says so: $(cat "$work/err")"
    grep -qx "GUEST_KERNEL_RELEASE=${meta#linux-image-}" "$work/resolved.env" && grep -qx PINS_RESOLVED=yes "$work/resolved.env"
    check $? "the resolved pins file names ${meta#linux-image-} and is marked resolved"
    hdr=linux-headers-${meta#linux-image-}
    kb=$(VFIOD_APT_NO_UPDATE=1 bash -c '. "$1/scripts/archive.sh" && v=$(archive_pick "$2") &&
        archive_depends "$2" "$v" | grep "^linux-kbuild-" | { read -r n op w; echo "$n $(archive_pick "$n" "$op" "$w")"; }' _ "$src" "$hdr")
    [[ $kb == linux-kbuild-*" "[0-9]* ]]
    check $? "$hdr's kbuild dependency resolves to a version the archive has ($kb)"
    finish
fi

# ---- the fake archive ---------------------------------------------------------
# $work/archive/table: "PACKAGE VERSION DEPENDS" (DEPENDS: the Depends line, or -)
# $work/archive/debs/PACKAGE_VERSION.deb: what `apt-get download PACKAGE=VERSION` gets
mkdir -p "$work/bin" "$work/archive/debs"
table=$work/archive/table
cat >"$work/bin/apt-cache" <<'EOF'
#!/bin/bash
# fake apt-cache: madison PKG..., show PKG[=VER], depends PKG
t=$FAKE_ARCHIVE/table
echo "apt-cache $*" >>"$FAKE_ARCHIVE/calls"
cmd=$1; shift
[[ $cmd != show ]] || { [[ $1 != --no-all-versions ]] || shift; }
for a in "$@"; do
    p=${a%%=*} v=''
    [[ $a != *=* ]] || v=${a#*=}
    while read -r name ver deps; do
        [[ $name == "$p" && ( -z $v || $v == "$ver" ) ]] || continue
        case $cmd in
            madison) echo " $name | $ver | http://fake.invalid fake/main amd64 Packages" ;;
            show) echo "Package: $name"; echo "Version: $ver"; [[ $deps == - ]] || echo "Depends: $deps"; echo ;;
        esac
    done <"$t"
done
exit 0
EOF
cat >"$work/bin/apt-get" <<'EOF'
#!/bin/bash
# fake apt-get: [-q] [-o X] download PKG=VER..., update
echo "apt-get $*" >>"$FAKE_ARCHIVE/calls"
while [[ $1 == -* ]]; do [[ $1 == -o ]] && shift; shift; done
case $1 in
    update) exit 0 ;;
    download) shift ;;
    *) echo "fake apt-get: unsupported: $*" >&2; exit 100 ;;
esac
for a in "$@"; do
    [[ $a == *=* ]] || { echo "E: fake: wants PKG=VER, got $a" >&2; exit 100; }
    f=$FAKE_ARCHIVE/debs/${a%%=*}_${a#*=}.deb
    [[ -f $f ]] || { echo "E: Version '${a#*=}' for '${a%%=*}' was not found" >&2; exit 100; }
    cp "$f" .
done
EOF
chmod +x "$work/bin/apt-cache" "$work/bin/apt-get"
export FAKE_ARCHIVE=$work/archive PATH=$work/bin:$PATH VFIOD_APT_NO_UPDATE=1

# mkdeb NAME VERSION [PATH CONTENTS]...: a .deb in the fake archive
mkdeb() {
    local name=$1 ver=$2 root
    shift 2
    root=$work/debroot/${name}_$ver
    mkdir -p "$root/DEBIAN"
    printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: test <t@t>\nDescription: fake\n' \
        "$name" "$ver" >"$root/DEBIAN/control"
    while [[ $# -ge 2 ]]; do
        mkdir -p "$root/$(dirname "$1")"
        printf '%s\n' "$2" >"$root/$1"
        shift 2
    done
    dpkg-deb -Zgzip -b "$root" "$work/archive/debs/${name}_$ver.deb" >/dev/null || { echo "dpkg-deb failed" >&2; exit 1; }
}

# The archive of 2026-12-02: ABI 56 still served at -2, ABI 57 current at -3,
# linux-kbuild-6.1 only at -3 while the 56 headers ask for >= -2.
cat >"$table" <<'EOF'
linux-image-amd64 6.1.192-3 linux-image-6.1.0-57-amd64 (= 6.1.192-3)
linux-image-cloud-amd64 6.1.192-3 linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)
linux-image-6.1.0-56-amd64 6.1.192-2 -
linux-image-6.1.0-57-amd64 6.1.192-3 -
linux-image-6.1.0-57-cloud-amd64 6.1.192-3 -
linux-headers-6.1.0-56-amd64 6.1.192-2 linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86
linux-headers-6.1.0-56-common 6.1.192-2 -
linux-headers-6.1.0-57-amd64 6.1.192-3 linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), linux-compiler-gcc-12-x86
linux-headers-6.1.0-57-common 6.1.192-3 -
linux-kbuild-6.1 6.1.176-1 -
linux-kbuild-6.1 6.1.192-3 -
EOF
for abi in 56:2 57:3; do
    n=${abi%%:*} r=${abi#*:}
    mkdeb "linux-headers-6.1.0-$n-amd64" "6.1.192-$r" \
        "usr/src/linux-headers-6.1.0-$n-amd64/Makefile" "include /usr/src/linux-headers-6.1.0-$n-common/Makefile"
    mkdeb "linux-headers-6.1.0-$n-common" "6.1.192-$r" "usr/src/linux-headers-6.1.0-$n-common/Makefile" "# common $n"
done
mkdeb linux-kbuild-6.1 6.1.176-1 usr/lib/linux-kbuild-6.1/version "6.1.176-1"
mkdeb linux-kbuild-6.1 6.1.192-3 usr/lib/linux-kbuild-6.1/version "6.1.192-3"

# resolve PINS_CONTENT: runs pins_load on a pins file with that content;
# prints the resolved package; stderr in $work/err.
resolve() {
    printf '%s\n' "$1" >"$work/pins.env"
    : >"$work/archive/calls"
    VFIOD_PINS=$work/pins.env bash -c '. "$1/scripts/archive.sh" && pins_load && echo "$GUEST_KERNEL_PACKAGE $GUEST_KERNEL_RELEASE"' \
        _ "$src" 2>"$work/err"
}
pins() { printf 'GUEST_KERNEL_PACKAGE=linux-image-%s\nGUEST_KERNEL_RELEASE=%s' "$1" "$1"; }

# ---- archive_pick: the relation is the dependency's own -------------------------
pick() { bash -c '. "$1/scripts/archive.sh" && archive_pick "$2" "$3" "$4"' _ "$src" "$@"; }
[[ $(pick linux-kbuild-6.1 '>=' 6.1.192-2) == 6.1.192-3 ]]
check $? "archive_pick linux-kbuild-6.1 '>= 6.1.192-2' takes 6.1.192-3 (the bug: '=6.1.192-2' is gone)"
[[ $(pick linux-kbuild-6.1 '<<' 6.1.192-2) == 6.1.176-1 ]]
check $? "archive_pick '<< 6.1.192-2' takes 6.1.176-1"
pick linux-kbuild-6.1 '=' 6.1.192-2 >/dev/null
[[ $? -eq 1 ]]
check $? "archive_pick '= 6.1.192-2' fails when only -3 is served"
pick linux-kbuild-6.1 '~' 1 >/dev/null 2>&1
[[ $? -eq 2 ]]
check $? "archive_pick refuses an unknown relation"
[[ $(pick linux-kbuild-6.1) == 6.1.192-3 ]]
check $? "archive_pick with no relation takes the highest version"

# ---- pins_load -----------------------------------------------------------------
out=$(resolve "$(pins 6.1.0-56-amd64)")
[[ $out == "linux-image-6.1.0-56-amd64 6.1.0-56-amd64" && ! -s $work/err ]]
check $? "a pinned ABI the archive still serves is kept, silently (got '$out'; stderr '$(cat "$work/err")')"

out=$(resolve "$(pins 6.1.0-1-amd64)")
[[ $out == "linux-image-6.1.0-57-amd64 6.1.0-57-amd64" ]]
check $? "a pinned ABI the archive dropped resolves to the current ABI of linux-image-amd64 (got '$out')"
[[ $(wc -l <"$work/err") -eq 1 ]] &&
    grep -qx 'archive: WARNING: pins.env names linux-image-6.1.0-1-amd64, the archive has linux-image-6.1.0-57-amd64: using linux-image-6.1.0-57-amd64; run scripts/dev pins to update' "$work/err"
check $? "... with one warning line on stderr ($(cat "$work/err"))"

out=$(resolve "$(pins 6.1.0-1-cloud-amd64)")
[[ $out == "linux-image-6.1.0-57-cloud-amd64 6.1.0-57-cloud-amd64" ]]
check $? "the cloud flavour resolves through linux-image-cloud-amd64 (got '$out')"

out=$(resolve "$(printf 'GUEST_KERNEL_PACKAGE=linux-image-6.1.0-56-amd64\nGUEST_KERNEL_RELEASE=6.1.0-57-amd64')")
[[ $? -ne 0 && -z $out ]] && grep -q 'does not match' "$work/err"
check $? "a package that does not match the release is refused ($(cat "$work/err"))"
out=$(resolve "$(pins 6.1.0-56-arm64)")
[[ $? -ne 0 && -z $out ]] && grep -q 'not a Debian amd64' "$work/err"
check $? "a release of another flavour is refused with a clear error ($(cat "$work/err"))"
out=$(resolve 'GUEST_KERNEL_PACKAGE=linux-image-6.1.0-56-amd64')
[[ $? -ne 0 && -z $out ]] && grep -q 'GUEST_KERNEL_RELEASE' "$work/err"
check $? "pins without GUEST_KERNEL_RELEASE are refused ($(tr '\n' ' ' <"$work/err"))"

# pins_write: the rest of the run reads the resolution, and does not redo it
printf '# comment\n%s\nOTHER_PIN=x\n' "$(pins 6.1.0-1-amd64)" >"$work/pins.env"
VFIOD_PINS=$work/pins.env bash -c '. "$1/scripts/archive.sh" && pins_load && pins_write "$2"' _ "$src" "$work/resolved.env" 2>/dev/null
grep -qx GUEST_KERNEL_RELEASE=6.1.0-57-amd64 "$work/resolved.env" && grep -qx OTHER_PIN=x "$work/resolved.env" &&
    grep -qx PINS_RESOLVED=yes "$work/resolved.env" && [[ $(grep -c '^GUEST_KERNEL_RELEASE=' "$work/resolved.env") -eq 1 ]]
check $? "pins_write keeps the other pins and names the resolved release once"
: >"$work/archive/calls"
out=$(VFIOD_PINS=$work/resolved.env bash -c '. "$1/scripts/archive.sh" && pins_load && echo "$GUEST_KERNEL_RELEASE"' _ "$src" 2>"$work/err")
[[ $out == 6.1.0-57-amd64 && ! -s $work/archive/calls && ! -s $work/err ]]
check $? "a resolved pins file is used as it is: no archive query, no warning"

# ---- the fetch of the bug report: headers with kbuild (>=) ------------------------
printf '%s\n' "$(pins 6.1.0-56-amd64)" >"$work/pins.env"
kdir=$(VFIOD_PINS=$work/pins.env "$src/kernel-modules/fetch-kernel-headers.sh" "$work/headers" 2>"$work/err")
rc=$?
[[ $rc -eq 0 && $kdir == "$work/headers/root/usr/src/linux-headers-6.1.0-56-amd64" ]] &&
    grep -q 'apt-get .*download linux-headers-6.1.0-56-amd64=6.1.192-2 linux-headers-6.1.0-56-common=6.1.192-2 linux-kbuild-6.1=6.1.192-3' "$work/archive/calls"
check $? "fetch-kernel-headers.sh takes linux-kbuild-6.1 6.1.192-3 for '>= 6.1.192-2' (exit $rc; $(grep download "$work/archive/calls"); $(tail -n 2 "$work/err" | tr '\n' ' '))"
grep -qx "include $work/headers/root/usr/src/linux-headers-6.1.0-56-common/Makefile" "$kdir/Makefile" 2>/dev/null &&
    [[ $(cat "$work/headers/root/usr/lib/linux-kbuild-6.1/version" 2>/dev/null) == 6.1.192-3 ]]
check $? "the unpacked headers include the unpacked -common Makefile, with kbuild 6.1.192-3"

printf '%s\n' "$(pins 6.1.0-1-amd64)" >"$work/pins.env"
kdir=$(VFIOD_PINS=$work/pins.env "$src/kernel-modules/fetch-kernel-headers.sh" "$work/headers" 2>"$work/err")
rc=$?
[[ $rc -eq 0 && $kdir == */linux-headers-6.1.0-57-amd64 && -f $kdir/Makefile ]] && grep -q 'WARNING: pins.env names linux-image-6.1.0-1-amd64' "$work/err"
check $? "with a dropped pinned ABI the headers of the current ABI are fetched, with the warning (exit $rc, $kdir)"

# ---- scripts/dev pins: pins.env rewritten to the current ABI -----------------------
mkdir -p "$work/tree/scripts"
cp "$src/scripts/dev" "$src/scripts/archive.sh" "$work/tree/scripts/"
printf '# the pins\n%s\n' "$(pins 6.1.0-56-amd64)" >"$work/tree/pins.env"
out=$("$work/tree/scripts/dev" pins 2>&1)
rc=$?
[[ $rc -eq 0 ]] && grep -qx GUEST_KERNEL_PACKAGE=linux-image-6.1.0-57-amd64 "$work/tree/pins.env" &&
    grep -qx GUEST_KERNEL_RELEASE=6.1.0-57-amd64 "$work/tree/pins.env" && grep -qx '# the pins' "$work/tree/pins.env" &&
    grep -q '^+GUEST_KERNEL_RELEASE=6.1.0-57-amd64' <<<"$out" && grep -q '^-GUEST_KERNEL_RELEASE=6.1.0-56-amd64' <<<"$out"
check $? "scripts/dev pins moves pins.env from 56 (still served) to the current 57 and prints the diff (exit $rc)"
out=$("$work/tree/scripts/dev" pins 2>&1) && grep -q 'already names' <<<"$out"
check $? "scripts/dev pins again: nothing to change ($out)"

finish
