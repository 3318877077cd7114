#!/bin/bash
# build-tools.sh SOURCE_DIR BUILD_DIR: compiles the benchmark's helper
# programs into BUILD_DIR/bench/ against the main build's static libraries
# (vfiod's layer libraries, fake-sysfs-standalone) and its generated D-Bus header.
# bench/ is not part of the meson tree: this keeps it self-contained.
# Rebuilds a program only when its source or a library is newer.
set -euo pipefail
src=$1 build=$2
out=$build/bench
mkdir -p "$out"
# vfiod's layers (vfiod/meson.build), linked as one group: each folder's
# static library, the API's interface (vfd-dbus) among them.
layers=(common net host image vm api config daemon cli)
libs=()
incs=(-I"$src" -I"$build/vfiod/api")
for l in "${layers[@]}"; do
  libs+=("$build/vfiod/libvfiod-$l.a")
  incs+=(-I"$src/vfiod/$l")
done
libs+=("$build/vfiod/api/libvfiod-api-proto.a")
fake=$build/tests/crash/libfake-sysfs-standalone.a
for f in "${libs[@]}" "$fake" "$build/vfiod/api/vfd-dbus.h"; do
  [ -e "$f" ] || { echo "build-tools: $f missing (meson compile -C $build first)" >&2; exit 1; }
done
pkgs="glib-2.0 gio-2.0 gio-unix-2.0 gmodule-2.0 json-glib-1.0 libpci libarchive libkmod libnl-3.0 libnl-route-3.0 libnftables libsystemd"
cflags=(-O2 -g -std=gnu11 -D_GNU_SOURCE -DFAKE_SYSFS_NO_CMOCKA -Wall -Wno-unused-parameter
  "${incs[@]}" -I"$src/tests/unit")
# shellcheck disable=SC2086
read -r -a pc_cflags <<<"$(pkg-config --cflags $pkgs)"
# shellcheck disable=SC2086
read -r -a pc_libs <<<"$(pkg-config --libs $pkgs)"
read -r -a gio_libs <<<"$(pkg-config --libs gio-2.0)"
read -r -a gio_cflags <<<"$(pkg-config --cflags gio-2.0)"

stale() { # stale OUT INPUT...
  local o=$1 i
  shift
  [ -e "$o" ] || return 0
  for i in "$@"; do [ "$i" -nt "$o" ] && return 0; done
  return 1
}
for prog in mk-fake-host bench-daemon; do
  if stale "$out/$prog" "$src/bench/$prog.c" "${libs[@]}" "$fake"; then
    cc "${cflags[@]}" "${pc_cflags[@]}" -o "$out/$prog" "$src/bench/$prog.c" "$fake" \
      -Wl,--start-group "${libs[@]}" -Wl,--end-group "${pc_libs[@]}" -lm
  fi
done
for prog in api-latency floor-daemon; do
  if stale "$out/$prog" "$src/bench/$prog.c"; then
    cc -O2 -g -std=gnu11 -Wall "${gio_cflags[@]}" -o "$out/$prog" "$src/bench/$prog.c" "${gio_libs[@]}" -lm
  fi
done
