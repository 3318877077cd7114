#!/bin/bash
# integration suite: `vfioctl image build` (issue 11, item 4), the whole
# guest in one command, run inside the test's network namespace (no route
# out: only caches can serve it):
#  1. a bad --output (a '..' component, a symbolic link, a regular file):
#     exit 2 naming the rule, nothing created or changed;
#  2. no network and a cold kernel cache: exit 1 naming the step (the guest
#     kernel) and the script; the output dir not created;
#  3. `image build --output DIR --json` with the kernel cache the suite
#     fetched: DIR holds vmlinuz (the pinned kernel's bytes), initramfs (a
#     gzip'd newc cpio whose /init is this build's guest-init, with the
#     modules of a sandbox: virtio_mmio, virtio_pci, virtio_blk, ext4,
#     vsock, button) and image.json (= the --json output: release from
#     kernel.env, the initramfs stamp, no driver layer); a second run is
#     cached (nothing copied: same inodes) and faster;
#  4. `image build --gpu` with the driver layer cache of the unit test
#     driver-layer (BUILD/driver-layer-cache; a cold build needs network):
#     DIR/driver-layer.erofs is that layer's image (same bytes, a regular
#     file), image.json names its key and NVIDIA version, the initramfs
#     also stages erofs, crc32c_generic, drm and video; a second --gpu
#     build starts no script (warm memos, issue 17), one after an input of
#     the layer changed runs the layer's script only; then a build without
#     --gpu removes the layer from DIR.
# Usage: image-build.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init image-build "$@"

jq_() { python3 -c 'import json, sys
o = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    o = o[k] if o is not None else None
print(json.dumps(o) if isinstance(o, (list, dict, bool)) or o is None else o)' "$@" 2> /dev/null; }
# cpio_has IMAGE PATH...: the gzip'd newc cpio holds each PATH
cpio_list() { python3 - "$1" << 'PY'
import gzip, sys
d = gzip.open(sys.argv[1]).read()
o = 0
while o + 110 <= len(d):
    h = d[o:o + 110]
    size, nlen = int(h[54:62], 16), int(h[94:102], 16)
    name = d[o + 110:o + 110 + nlen - 1].decode()
    if name == "TRAILER!!!":
        break
    o = (o + 110 + nlen + 3) & ~3
    print(name)
    o = (o + size + 3) & ~3
PY
}
cpio_file() { python3 - "$1" "$2" << 'PY'
import gzip, sys
d = gzip.open(sys.argv[1]).read()
o = 0
while o + 110 <= len(d):
    h = d[o:o + 110]
    size, nlen = int(h[54:62], 16), int(h[94:102], 16)
    name = d[o + 110:o + 110 + nlen - 1].decode()
    o = (o + 110 + nlen + 3) & ~3
    if name == sys.argv[2]:
        sys.stdout.buffer.write(d[o:o + size])
        break
    o = (o + size + 3) & ~3
PY
}

# ---- 1. bad --output -------------------------------------------------------
mkdir -p "$work/real"
ln -s real "$work/link"
echo x > "$work/file"
bad() { # bad LABEL DIR NEEDLE
  local out rc
  out=$("$vfioctl" image build --output "$2" --cache "$work/cache1" 2>&1)
  rc=$?
  [ "$rc" = 2 ] && [[ $out == *"$3"* ]] && [ ! -e "$work/cache1" ] && [ -z "$(ls -A "$work/real")" ] &&
    ok "1: $1: exit 2: $out" || nok "1: $1: exit $rc, want 2 and '$3', nothing made: $out"
}
bad "'..' in DIR" "$work/real/../real" "a '..' component is not allowed"
bad "DIR a symbolic link" "$work/link" "is a symbolic link"
bad "DIR a symbolic link (trailing /)" "$work/link/" "is a symbolic link"
bad "DIR a regular file" "$work/file" "exists and is not a directory"

# ---- 2. no network, cold cache ----------------------------------------------
t=$(now_ms)
out=$(VFIOD_APT_NO_UPDATE=1 "$vfioctl" image build --output "$work/cold-out" --cache "$work/cold" 2>&1)
rc=$?
[ "$rc" = 1 ] && [[ $out == *"the guest kernel: "*"fetch-kernel.sh failed (exit 1)"* ]] && [ ! -e "$work/cold-out" ] &&
  ok "2: no network, cold cache: exit 1 naming the step, no output dir ($(($(now_ms) - t)) ms): $(tail -1 <<< "$out")" ||
  nok "2: no network: exit $rc, output dir $([ -e "$work/cold-out" ] && echo made || echo absent): $out"

# ---- 3. the image from the suite's kernel cache --------------------------------
mkdir -p "$work/cache"
ln -s "$cache" "$work/cache/kernel"
img=$work/image
t=$(now_ms)
"$vfioctl" image build --output "$img" --cache "$work/cache" --json > "$work/one.json" 2> "$work/one.err"
rc=$? t1=$(($(now_ms) - t))
[ "$rc" = 0 ] && ok "3: image build --output DIR --json: exit 0 in $t1 ms" ||
  nok "3: image build: exit $rc: $(cat "$work/one.err")"
listing=$(cd "$img" 2> /dev/null && ls -A | tr '\n' ' ')
[ "$listing" = "image.json initramfs vmlinuz " ] && [ ! -L "$img/vmlinuz" ] && [ ! -L "$img/initramfs" ] &&
  ok "3: DIR holds image.json, initramfs, vmlinuz (regular files)" || nok "3: DIR holds: $listing"
cmp -s "$img/vmlinuz" "$cache/vmlinuz" && [ "$(jq_ "$work/one.json" kernel.release)" = "$release" ] &&
  [ "$(jq_ "$work/one.json" kernel.sha256)" = "$(sha256sum < "$cache/vmlinuz" | cut -d' ' -f1)" ] &&
  ok "3: vmlinuz is the pinned kernel $release (sha256 in image.json)" ||
  nok "3: vmlinuz/release: $(jq_ "$work/one.json" kernel)"
files=$(cpio_list "$img/initramfs")
cmp -s <(cpio_file "$img/initramfs" init) "$guest_init" && ok "3: the initramfs's /init is this build's guest-init" ||
  nok "3: /init differs from $guest_init"
want_ok=1
for m in virtio_mmio virtio_pci virtio_blk ext4 vmw_vsock_virtio_transport virtio_net button evdev; do
  grep -q "/$m.ko" <<< "$files" || { want_ok=0; nok "3: the initramfs lacks $m.ko"; }
done
[ "$want_ok" = 1 ] && ! grep -q '/erofs.ko\|/nvidia' <<< "$files" &&
  ok "3: the initramfs stages a sandbox's modules, no erofs or NVIDIA module without --gpu" ||
  nok "3: initramfs modules: $(grep '\.ko' <<< "$files" | tr '\n' ' ')"
python3 -c 'import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
for k in ("cached", "ms"): a.pop(k)
sys.exit(0 if a == b and b["driver_layer"] is None and b["gpu"] is False and len(b["key"]) == 64 else 1)' \
  "$work/one.json" "$img/image.json" 2> /dev/null &&
  ok "3: image.json is what --json printed (key $(jq_ "$img/image.json" key | cut -c1-12), driver_layer null)" ||
  nok "3: image.json: $(cat "$img/image.json" 2>&1 | head -c 600)"
ino1=$(stat -c '%i %Y' "$img/vmlinuz" "$img/initramfs" "$img/image.json" | tr '\n' ' ')
t=$(now_ms)
"$vfioctl" image build --output "$img" --cache "$work/cache" --json > "$work/two.json" 2> "$work/two.err"
rc=$? t2=$(($(now_ms) - t))
ino2=$(stat -c '%i %Y' "$img/vmlinuz" "$img/initramfs" "$img/image.json" | tr '\n' ' ')
[ "$rc" = 0 ] && [ "$(jq_ "$work/two.json" cached)" = true ] && [ "$ino1" = "$ino2" ] &&
  [ "$(jq_ "$work/two.json" key)" = "$(jq_ "$work/one.json" key)" ] &&
  ok "3: second run: cached, nothing copied (same inodes), $t2 ms (first $t1 ms; steps $(jq_ "$work/two.json" ms | tr -d ' \n'))" ||
  nok "3: second run: exit $rc, cached $(jq_ "$work/two.json" cached), files '$ino1' -> '$ino2': $(cat "$work/two.err")"

# ---- 4. --gpu, with the unit test's driver layer cache --------------------------
lcache=$build/driver-layer-cache
if ! ls "$lcache"/*/complete > /dev/null 2>&1; then
  nok "4: no built driver layer in $lcache (the unit test driver-layer builds it, with network): --gpu not checked"
else
  ln -s "$lcache" "$work/cache/driver-layer"
  t=$(now_ms)
  "$vfioctl" image build --gpu --output "$img" --cache "$work/cache" --json > "$work/gpu.json" 2> "$work/gpu.err"
  rc=$?
  limg=$(readlink -f "$work/cache/layer-out/driver-layer.erofs")
  [ "$rc" = 0 ] && [ -f "$img/driver-layer.erofs" ] && [ ! -L "$img/driver-layer.erofs" ] &&
    cmp -s "$img/driver-layer.erofs" "$limg" &&
    ok "4: image build --gpu ($(($(now_ms) - t)) ms): DIR/driver-layer.erofs is the layer's image ($(stat -c %s "$limg") bytes, a regular file)" ||
    nok "4: image build --gpu: exit $rc: $(tail -5 "$work/gpu.err")"
  key=$(basename "$(dirname "$limg")")
  [ "$(jq_ "$img/image.json" driver_layer.key)" = "$key" ] &&
    [ "$(jq_ "$img/image.json" driver_layer.driver_version)" = "$(sed -n 's/^NVIDIA_DRIVER_VERSION=//p' "$src/versions.env")" ] &&
    [ "$(jq_ "$img/image.json" driver_layer.path)" = "$img/driver-layer.erofs" ] && [ "$(jq_ "$img/image.json" gpu)" = true ] &&
    ok "4: image.json: driver layer $key, NVIDIA $(jq_ "$img/image.json" driver_layer.driver_version)" ||
    nok "4: image.json driver_layer: $(jq_ "$img/image.json" driver_layer | head -c 400)"
  files=$(cpio_list "$img/initramfs")
  want_ok=1
  for m in erofs crc32c_generic drm video virtio_blk ext4; do
    grep -q "/$m.ko" <<< "$files" || { want_ok=0; nok "4: the --gpu initramfs lacks $m.ko"; }
  done
  [ "$want_ok" = 1 ] && ! grep -q '/nvidia' <<< "$files" &&
    ok "4: the --gpu initramfs stages erofs, crc32c_generic, drm, video (no NVIDIA module: they come from the layer)" ||
    nok "4: --gpu initramfs: $(grep '\.ko' <<< "$files" | tr '\n' ' ')"
  # warm (issue 17): a second --gpu build answers from the steps' memos in
  # CACHE/warm/: neither fetch-kernel.sh nor build-driver-layer.sh starts
  # (each opens its lock file for writing, which sets its mtime), the same
  # image, nothing copied.
  locks() { stat -c '%y %n' "$work/cache/kernel/.fetch-kernel.lock" "$lcache/.lock" 2>&1 | tr '\n' ' '; }
  l1=$(locks)
  t=$(now_ms)
  "$vfioctl" image build --gpu --output "$img" --cache "$work/cache" --json > "$work/gpu2.json" 2> "$work/gpu2.err"
  rc=$? t2=$(($(now_ms) - t))
  l2=$(locks)
  [ "$rc" = 0 ] && [ "$l1" = "$l2" ] && [ "$(jq_ "$work/gpu2.json" cached)" = true ] &&
    [ "$(jq_ "$work/gpu2.json" key)" = "$(jq_ "$img/image.json" key)" ] && [ -s "$work/cache/warm/kernel" ] &&
    [ -s "$work/cache/warm/driver-layer" ] &&
    ok "4: second --gpu build: from the warm memos, no script started, cached, $t2 ms (steps $(jq_ "$work/gpu2.json" ms | tr -d ' \n'))" ||
    nok "4: second --gpu build: exit $rc, locks '$l1' -> '$l2', cached $(jq_ "$work/gpu2.json" cached): $(tail -3 "$work/gpu2.err")"
  # an input of the layer changed (VFIOD_VERSIONS names another file, with
  # the same content: the same layer key, nothing in the shared caches
  # touched): the layer's script runs again, the kernel's does not
  cp "$src/versions.env" "$work/versions.env"
  VFIOD_VERSIONS=$work/versions.env "$vfioctl" image build --gpu --output "$img" --cache "$work/cache" --json \
    > "$work/gpu3.json" 2> "$work/gpu3.err"
  rc=$?
  l3=$(locks)
  [ "$rc" = 0 ] && [ "${l3%% *}" = "${l2%% *}" ] && [ "$l3" != "$l2" ] &&
    [ "$(jq_ "$work/gpu3.json" key)" = "$(jq_ "$img/image.json" key)" ] &&
    ok "4: an input of the layer changed: build-driver-layer.sh ran again (its lock written), fetch-kernel.sh did not, same image" ||
    nok "4: after a changed input: exit $rc, locks '$l2' -> '$l3': $(tail -3 "$work/gpu3.err")"
  "$vfioctl" image build --output "$img" --cache "$work/cache" > "$work/nogpu.out" 2>&1
  rc=$?
  [ "$rc" = 0 ] && [ ! -e "$img/driver-layer.erofs" ] && [ "$(jq_ "$img/image.json" driver_layer)" = null ] &&
    ok "4: a build without --gpu removes the layer from DIR" || nok "4: without --gpu: exit $rc: $(cat "$work/nogpu.out")"
fi
itest_finish
