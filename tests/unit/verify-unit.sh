#!/bin/bash
# systemd-analyze verify must accept vfiod.service. The unit names the
# installed binary; verify a copy that points at the build's binary instead
# (verify checks that ExecStart exists). SYSUSERS: the sysusers.d file, applied
# to an empty root: it must create the QEMU account and the API group.
set -u
unit=$1 vfiod=$2 sysusers=${3:-}
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing (apt-get install systemd)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed -e "s|^ExecStart=[^ ]*|ExecStart=$vfiod|" -e "s|^ExecStartPre=[^ ]*|ExecStartPre=$vfiod|" "$unit" > "$dir/vfiod.service"
grep -q '^Type=notify' "$dir/vfiod.service" || { echo "not ok - Type=notify missing"; exit 1; }
for off in ProtectKernelTunables ProtectKernelModules PrivateDevices; do
  if grep -q "^$off=yes" "$dir/vfiod.service"; then echo "not ok - $off=yes would break VFIO"; exit 1; fi
done
out=$(systemd-analyze verify "$dir/vfiod.service" 2>&1)
rc=$?
echo "$out"
if [ $rc -ne 0 ] || [ -n "$out" ]; then echo "not ok - systemd-analyze verify complained"; exit 1; fi
echo "ok - systemd-analyze verify accepts vfiod.service (Type=notify, VFIO-safe hardening)"
if grep -q '^ProtectHome=yes\|^PrivateTmp=yes\|^ProtectSystem=strict' "$dir/vfiod.service"; then
  echo "not ok - the unit hides /home, /tmp or makes /var read-only: files clients name would not be found or writable"
  exit 1
fi
echo "ok - clients' files are visible to vfiod (ProtectHome=no, PrivateTmp=no, ProtectSystem=full)"
if [ -n "$sysusers" ]; then
  command -v systemd-sysusers >/dev/null || { echo "not ok - systemd-sysusers missing (apt-get install systemd)"; exit 1; }
  mkdir -p "$dir/root/etc"
  out=$(systemd-sysusers --root="$dir/root" "$sysusers" 2>&1) || { echo "$out"; echo "not ok - systemd-sysusers refused $sysusers"; exit 1; }
  if grep -q '^vfiod-qemu:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$dir/root/etc/passwd" && grep -q '^vfiod:' "$dir/root/etc/group"; then
    echo "ok - $(basename "$sysusers") creates the QEMU account (nologin) and the API group: $(grep '^vfiod-qemu:' "$dir/root/etc/passwd")"
  else
    echo "not ok - $(basename "$sysusers") made: $(cat "$dir/root/etc/passwd" "$dir/root/etc/group" 2>&1 | tr '\n' ' ')"
    exit 1
  fi
fi
