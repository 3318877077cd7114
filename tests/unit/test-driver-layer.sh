#!/bin/bash
# test-driver-layer.sh SOURCE_ROOT CACHE_DIR
#
# kernel-modules/build-driver-layer.sh: the NVIDIA driver layer (issue 11).
#
# 1. Refusals, with fake .debs (dpkg-deb) passed by --debs: no network, no
#    build. A package of another upstream version, a broken "=" dependency
#    between the layer's packages, a missing package and a pinned version
#    nobody has are refused with a clear error; a pinned revision that is
#    gone falls back to the newest <version>-* with one warning; the key
#    follows the .debs' content.
# 2. The real layer, from Debian's packages (apt, network on a cold cache),
#    built into CACHE_DIR or reused from it, then run again (warm: cached,
#    fast). The artefact: every .ko has the guest kernel's vermagic,
#    nvidia.ko's version is the pinned one, libcuda.so.<v> and nvidia-smi are
#    of that version, the GSP firmware for it is there, no symlink leaves
#    the layer, nvidia-persistenced finds its libraries inside the layer, the
#    manifest describes the tree, and the EROFS image holds exactly the
#    manifest's files (fsck.erofs --extract).
#
# Needs root (the image's owners), network on a cold cache, and: dpkg
# (dpkg-deb) erofs-utils patchelf binutils kmod make gcc-12 xz-utils patch
# python3 apt. Never skips: a missing tool is a failure.
# Environment: VFIOD_PINS (a resolved pins file; else resolved here).
set -uo pipefail

src=$(cd "${1:?usage: $0 SOURCE_ROOT CACHE_DIR}" && pwd)
cache=${2:?usage: $0 SOURCE_ROOT CACHE_DIR}
builder=$src/kernel-modules/build-driver-layer.sh
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { if [[ $1 -eq 0 ]]; then ok "$2"; else nok "$2"; fi; }
finish() {
    echo "# driver-layer: $pass passed, $fail failed"
    [[ $fail -eq 0 && $pass -gt 0 ]]
    exit $?
}

missing=()
for t in dpkg-deb python3 mkfs.erofs fsck.erofs patchelf readelf strip modinfo depmod make gcc-12 xz patch \
         apt-get apt-cache flock ldd; do
    command -v "$t" >/dev/null || missing+=("$t")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    nok "tools missing: ${missing[*]} (apt-get install dpkg erofs-utils patchelf binutils kmod make gcc-12 xz-utils patch python3 libc-bin)"
    finish
fi
if [[ $(id -u) -ne 0 ]]; then
    nok "must run as root (the layer's image is owned by root; extraction keeps owners and modes)"
    finish
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vfiod-driver-layer.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The guest kernel: resolved once for every run below.
if [[ -z ${VFIOD_PINS:-} ]] || ! grep -qx 'PINS_RESOLVED=yes' "$VFIOD_PINS" 2>/dev/null; then
    bash -c '. "$1/scripts/archive.sh" && pins_load && pins_write "$2"' _ "$src" "$work/pins.env" ||
        { nok "cannot resolve the guest kernel (scripts/archive.sh pins_load)"; finish; }
    VFIOD_PINS=$work/pins.env
fi
export VFIOD_PINS
rel=$(sed -n 's/^GUEST_KERNEL_RELEASE=//p' "$VFIOD_PINS")
ver=$(sed -n 's/^NVIDIA_DRIVER_VERSION=//p' "$src/versions.env")
grev=$(sed -n 's/^NVIDIA_DEBIAN_REVISION=//p' "$src/versions.env")
krev=$(sed -n 's/^NVIDIA_KERNEL_DEBIAN_REVISION=//p' "$src/versions.env")
prev=$(sed -n 's/^NVIDIA_PERSISTENCED_DEBIAN_REVISION=//p' "$src/versions.env")
[[ -n $rel && -n $ver && -n $grev && -n $krev && -n $prev ]]
check $? "pins: guest kernel '$rel', NVIDIA '$ver' (Debian revisions $grev, $krev, persistenced $prev)"
[[ $fail -eq 0 ]] || finish

# ---- 1. refusals with fake packages --------------------------------------------------
# make_deb DIR NAME VERSION [DEPENDS]
make_deb() {
    local d=$work/pkg/$2_$3 dir=$1
    rm -rf "$d"
    mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$2" "$dir"
    {
        echo "Package: $2"
        echo "Version: $3"
        echo "Architecture: amd64"
        echo "Maintainer: vfiod test <test@invalid>"
        [[ -z ${4:-} ]] || echo "Depends: $4"
        echo "Description: stand-in for the driver layer test"
    } >"$d/DEBIAN/control"
    echo "$2 $3" >"$d/usr/share/doc/$2/stand-in"
    dpkg-deb --root-owner-group -Zgzip --build "$d" "$dir/$2_$3_amd64.deb" >/dev/null
}
nv_pkgs=(nvidia-open-kernel-source firmware-nvidia-gsp nvidia-smi libcuda1 libnvidia-ml1 libnvidia-cfg1
         libnvidia-ptxjitcompiler1 nvidia-persistenced)
host_pkgs=(libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0
           libkeyutils1)
rev_for() {
    case $1 in
        nvidia-open-kernel-source) echo "$krev" ;;
        nvidia-persistenced) echo "$prev" ;;
        *) echo "$grev" ;;
    esac
}
# Every package at its pinned version (the libtirpc closure at 1.0-1).
for p in "${nv_pkgs[@]}" "${host_pkgs[@]}"; do
    v=$ver-$(rev_for "$p")
    [[ " ${host_pkgs[*]} " != *" $p "* ]] || v=1.0-1
    make_deb "$work/debs-base" "$p" "$v"
done
# fake_set DIR [PKG=VERSION ...]: the base set, but PKG at VERSION (- : none)
fake_set() {
    local dir=$1 o
    shift
    mkdir -p "$dir"
    cp "$work"/debs-base/*.deb "$dir/"
    for o in "$@"; do
        rm -f "$dir/${o%%=*}"_*.deb
        [[ ${o#*=} == - ]] || make_deb "$dir" "${o%%=*}" "${o#*=}"
    done
}
# run_fake NAME ARGS...: the builder on a fake set, stdout/stderr/exit status kept
run_fake() {
    local name=$1
    shift
    VFIOD_APT_NO_UPDATE=1 "$builder" --out "$work/out-$name" --cache "$work/cache-fake" "$@" \
        >"$work/$name.out" 2>"$work/$name.err"
    echo $? >"$work/$name.rc"
}

fake_set "$work/debs-good"
run_fake good --debs "$work/debs-good" --dry-run --json
[[ $(<"$work/good.rc") -eq 0 ]] &&
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["packages"]["libcuda1"] == sys.argv[2] and not j["cached"] else 1)' \
        "$work/good.out" "$ver-$grev"
check $? "fake packages at the pinned versions resolve (--dry-run): $(tr '\n' ' ' <"$work/good.err")"
key_good=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$work/good.out" 2>/dev/null)

fake_set "$work/debs-mismatch" "libcuda1=550.120-1"
run_fake mismatch --debs "$work/debs-mismatch" --dry-run
[[ $(<"$work/mismatch.rc") -eq 1 ]] && grep -q "libcuda1: no version $ver-\* (there is: 550.120-1)" "$work/mismatch.err" &&
    grep -q "refusing to build: .*no libcuda1 at $ver" "$work/mismatch.err"
check $? "libcuda1 of another version (550.120-1) is refused, exit 1: $(tr '\n' ' ' <"$work/mismatch.err")"

fake_set "$work/debs-fwmismatch" "firmware-nvidia-gsp=535.261.03-1"
run_fake fwmismatch --debs "$work/debs-fwmismatch"
[[ $(<"$work/fwmismatch.rc") -eq 1 ]] && grep -q "no firmware-nvidia-gsp at $ver" "$work/fwmismatch.err"
check $? "GSP firmware of another version (535.261.03) is refused, not built: $(tr '\n' ' ' <"$work/fwmismatch.err")"

fake_set "$work/debs-dep" "libnvidia-ptxjitcompiler1=-"
make_deb "$work/debs-dep" libnvidia-ptxjitcompiler1 "$ver-$grev"
make_deb "$work/debs-dep" libcuda1 "$ver-$grev" "libnvidia-ptxjitcompiler1 (= $ver-9), libc6 (>= 2.34)"
run_fake dep --debs "$work/debs-dep" --dry-run
[[ $(<"$work/dep.rc") -eq 1 ]] &&
    grep -q "refusing to build: libcuda1 $ver-$grev depends on libnvidia-ptxjitcompiler1 (= $ver-9), but the layer's libnvidia-ptxjitcompiler1 is $ver-$grev" "$work/dep.err"
check $? "a broken '=' dependency between the layer's packages is refused: $(tr '\n' ' ' <"$work/dep.err")"

fake_set "$work/debs-missing" "firmware-nvidia-gsp=-"
run_fake missing --debs "$work/debs-missing" --dry-run
[[ $(<"$work/missing.rc") -eq 1 ]] && grep -q "has no firmware-nvidia-gsp" "$work/missing.err"
check $? "a missing package is refused: $(tr '\n' ' ' <"$work/missing.err")"

sed "s/^NVIDIA_DRIVER_VERSION=.*/NVIDIA_DRIVER_VERSION=999.1.2/" "$src/versions.env" >"$work/versions-gone.env"
VFIOD_VERSIONS=$work/versions-gone.env run_fake gone --debs "$work/debs-good" --dry-run
[[ $(<"$work/gone.rc") -eq 1 ]] && grep -q "no version 999.1.2-\*" "$work/gone.err"
check $? "a pinned driver version nobody has (999.1.2) is refused: $(head -n 1 "$work/gone.err")"

fake_set "$work/debs-rev" "nvidia-smi=$ver-$((grev + 1))" "libcuda1=-"
make_deb "$work/debs-rev" libcuda1 "$ver-$((grev + 1))"
make_deb "$work/debs-rev" libcuda1 "$ver-$((grev + 2))"
run_fake rev --debs "$work/debs-rev" --dry-run --json
[[ $(<"$work/rev.rc") -eq 0 ]] &&
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); p=j["packages"]; sys.exit(0 if p["nvidia-smi"] == sys.argv[2] and p["libcuda1"] == sys.argv[3] else 1)' \
        "$work/rev.out" "$ver-$((grev + 1))" "$ver-$((grev + 2))" &&
    [[ $(grep -c WARNING "$work/rev.err") -eq 2 ]] &&
    grep -q "WARNING: nvidia-smi $ver-$grev is gone, using $ver-$((grev + 1))" "$work/rev.err"
check $? "a pinned revision that is gone: the newest $ver-* is taken, one warning line each: $(grep WARNING "$work/rev.err" | tr '\n' ' ')"

fake_set "$work/debs-good2"
run_fake good2 --debs "$work/debs-good2" --dry-run --json
make_deb "$work/debs-good2" libnvidia-cfg1 "$ver-$grev" "libc6 (>= 2.34)"   # same version, other bytes
run_fake changed --debs "$work/debs-good2" --dry-run --json
k2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$work/good2.out" 2>/dev/null)
k3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$work/changed.out" 2>/dev/null)
[[ -n $key_good && $k2 == "$key_good" && -n $k3 && $k3 != "$key_good" ]]
check $? "the key is the packages' content: same .debs, same key ($k2); one .deb's bytes changed, another key ($k3)"

# ---- 2. the real layer ------------------------------------------------------------------
mkdir -p "$cache"
echo "# building (or reusing) the driver layer in $cache; a cold build takes minutes" >&2
t0=$(date +%s%N)
nice -n 19 "$builder" --out "$work/out" --cache "$cache" --json >"$work/build.json" 2>"$work/build.err"
rc=$?
t1=$(date +%s%N)
sed 's/^/# /' "$work/build.err"
if [[ $rc -ne 0 ]]; then
    nok "build-driver-layer.sh failed (exit $rc)"
    finish
fi
jget() { python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"; }
key=$(jget "$work/build.json" key)
cached=$(jget "$work/build.json" cached)
cold=$(jget "$work/build.json" build_seconds)
ok "the layer $key: $([[ $cached == True ]] && echo "reused from the cache (its cold build took $cold s)" || echo "built cold in $cold s") ($(( (t1 - t0) / 1000000 )) ms this run)"

t0=$(date +%s%N)
"$builder" --out "$work/out" --cache "$cache" --json >"$work/warm.json" 2>"$work/warm.err"
rc=$?
t1=$(date +%s%N)
warm_ms=$(( (t1 - t0) / 1000000 ))
[[ $rc -eq 0 && $(jget "$work/warm.json" key) == "$key" && $(jget "$work/warm.json" cached) == True && $warm_ms -lt 3000 ]]
check $? "a warm run with the same inputs reuses it: same key, cached, $warm_ms ms (< 3000)"

out=$work/out
tree=$(readlink -f "$out/tree")   # OUT/tree is a symlink into the cache
manifest=$out/manifest.json
image=$out/driver-layer.erofs
[[ -d $tree && -f $manifest && -f $image && -d $out/modules && -d $out/firmware ]]
check $? "OUT has driver-layer.erofs, manifest.json, tree, modules, firmware"
[[ $(readlink -f "$out/modules") == "$(readlink -f "$tree/lib/modules/$rel")" ]]
check $? "OUT/modules is the tree's lib/modules/$rel"

# modules: vermagic and version
n=0 bad=''
while IFS= read -r -d '' ko; do
    n=$((n + 1))
    vm=$(modinfo -F vermagic "$ko")
    [[ $vm == "$rel "* ]] || bad+=" ${ko##*/}($vm)"
done < <(find "$tree/lib/modules" -name '*.ko' -print0)
[[ $n -gt 0 && -z $bad ]]
check $? "every .ko's vermagic starts with $rel ($n modules)${bad:+; not:$bad}"
for m in nvidia nvidia-modeset nvidia-uvm; do
    ko=$tree/lib/modules/$rel/updates/$m.ko
    [[ -f $ko && $(modinfo -F version "$ko") == "$ver" ]]
    check $? "$m.ko is there, version $(modinfo -F version "$ko" 2>/dev/null) (pinned $ver)"
done
grep -q "^updates/nvidia-uvm.ko: updates/nvidia.ko" "$tree/lib/modules/$rel/modules.dep"
check $? "depmod'ed: modules.dep has nvidia-uvm after nvidia"

# userspace of the same version
lib=$tree/usr/lib/x86_64-linux-gnu
[[ -f $lib/libcuda.so.$ver && ! -L $lib/libcuda.so.$ver && $(readlink -f "$lib/libcuda.so.1") == "$(readlink -f "$lib/libcuda.so.$ver")" ]]
check $? "libcuda.so.$ver is a file and libcuda.so.1 leads to it"
for l in libnvidia-ml libnvidia-cfg libnvidia-ptxjitcompiler; do
    [[ -f $lib/$l.so.$ver && $(readlink -f "$lib/$l.so.1") == "$(readlink -f "$lib/$l.so.$ver")" ]]
    check $? "$l.so.1 -> $l.so.$ver"
done
pv() { python3 -c 'import json,sys; print({p["name"]: p["version"] for p in json.load(open(sys.argv[1]))["packages"]}[sys.argv[2]])' "$manifest" "$1"; }
for p in "${nv_pkgs[@]}"; do
    v=$(pv "$p")
    [[ $v == "$ver-"* ]]
    check $? "package $p is $v: NVIDIA $ver"
done
smi_head=$(env -i LD_LIBRARY_PATH="$lib" "$tree/usr/bin/nvidia-smi" -h 2>&1 | head -n 1)
[[ $smi_head == *"v$ver"* ]]
check $? "the layer's nvidia-smi says it is $ver: '$smi_head'"
pd=$(env -i "$tree/usr/bin/nvidia-persistenced" --version 2>&1 | grep -m1 version)
[[ $pd == *"$ver"* ]]
check $? "nvidia-persistenced runs from the layer with its own libtirpc: '$pd'"
ldd_out=$(env -i ldd "$tree/usr/bin/nvidia-persistenced" 2>&1)
bad=''
for l in libtirpc.so.3 libgssapi_krb5.so.2 libkrb5.so.3 libk5crypto.so.3 libcom_err.so.2 libkrb5support.so.0 libkeyutils.so.1; do
    p=$(sed -n "s|^[[:space:]]*$l => \([^ ]*\) .*|\1|p" <<<"$ldd_out")
    [[ -n $p && $(realpath "$p") == "$(realpath "$lib")/nvidia-layer/"* ]] || bad+=" $l(${p:-none})"
done
[[ $ldd_out != *"not found"* && -z $bad ]]
check $? "nvidia-persistenced's libtirpc closure resolves inside the layer (RUNPATH \$ORIGIN)${bad:+; not:$bad}"

# firmware
fw=$tree/lib/firmware/nvidia/$ver
[[ -s $fw/gsp_ga10x.bin && -s $fw/gsp_tu10x.bin ]]
check $? "GSP firmware for $ver: $(find "$fw" -mindepth 1 -printf '%f ' 2>/dev/null)"
others=$(find "$tree/lib/firmware/nvidia" -mindepth 1 -maxdepth 1 ! -name "$ver" -printf '%f ')
[[ -z $others ]]
check $? "no firmware of another version${others:+: $others}"

# symlinks stay inside the layer
bad=''
n=0
while IFS= read -r -d '' l; do
    n=$((n + 1))
    t=$(readlink "$l")
    rel_path=${l#"$tree"/}
    if [[ $t == /* ]]; then bad+=" $rel_path->$t(absolute)"; continue; fi
    resolved=$(realpath -m "$(dirname "$l")/$t")
    case $resolved in
        "$(realpath "$tree")"/*) [[ -e $l ]] || bad+=" $rel_path->$t(dangling)" ;;
        *) bad+=" $rel_path->$t(escapes)" ;;
    esac
done < <(find "$tree" -type l -print0)
[[ -z $bad ]]
check $? "no symlink leaves the layer ($n symlinks, all relative and inside)${bad:+; bad:$bad}"

# manifest
python3 "$src/kernel-modules/driver-layer-manifest.py" check "$tree" "$manifest" >"$work/check-tree" 2>&1
check $? "the manifest describes the tree: $(tail -n 1 "$work/check-tree")"
python3 - "$manifest" "$key" "$ver" "$rel" "$image" <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
key, ver, rel, image = sys.argv[2:]
h = hashlib.sha256(open(image, 'rb').read()).hexdigest()
errs = []
if m.get("key") != key: errs.append("key %s" % m.get("key"))
if m.get("driver_version") != ver: errs.append("driver_version")
if m.get("kernel_release") != rel: errs.append("kernel_release")
if m["image"]["sha256"] != h: errs.append("image sha256")
if sorted(x["name"] for x in m["modules"]) != ["nvidia", "nvidia-modeset", "nvidia-uvm"]: errs.append("modules")
if any(x["version"] != ver or not x["vermagic"].startswith(rel + " ") for x in m["modules"]): errs.append("module versions")
if not all(f.startswith("lib/firmware/nvidia/%s/" % ver) for f in m["firmware"]) or not m["firmware"]: errs.append("firmware")
if any(len(p["sha256"]) != 64 for p in m["packages"]): errs.append("package sha256")
if errs:
    print("manifest: " + "; ".join(errs))
sys.exit(1 if errs else 0)
PY
check $? "the manifest names the key, versions, modules, firmware, packages and the image's sha256"
grep -qx "DRIVER_LAYER_KEY=$key" "$tree/etc/vfiod/driver-layer.env" && grep -qx "NVIDIA_DRIVER_VERSION=$ver" "$tree/etc/vfiod/driver-layer.env"
check $? "etc/vfiod/driver-layer.env inside the layer names the key and version"
res=$(jget "$work/build.json" cache)
[[ $(sha256sum <"$res/key.txt" | cut -d' ' -f1) == "$key" && ${res##*/} == "$key" ]]
check $? "content-addressed: the key is the sha256 of key.txt, and names the directory"

# the image: the same files as the tree, byte for byte
fsck.erofs "--extract=$work/extracted" "$image" >"$work/fsck.log" 2>&1
check $? "fsck.erofs --extract unpacks the image"
python3 "$src/kernel-modules/driver-layer-manifest.py" check "$work/extracted" "$manifest" >"$work/check-image" 2>&1
check $? "the image holds exactly the manifest's files, modes, sha256s and links: $(tail -n 1 "$work/check-image")"
[[ $fail -eq 0 ]] || { sed 's/^/# /' "$work/check-image" | head -n 20; }
finish
