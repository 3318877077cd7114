#!/bin/bash
# systemd-analyze verify must accept vfiod.service. The unit names the
# installed binary; verify a copy that points at the build's binary instead
# (verify checks that ExecStart exists).
set -u
unit=$1 vfiod=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing (apt-get install systemd)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$vfiod|" "$unit" > "$dir/vfiod.service"
grep -q '^Type=notify' "$dir/vfiod.service" || { echo "not ok - Type=notify missing"; exit 1; }
for off in ProtectKernelTunables ProtectKernelModules PrivateDevices; do
  if grep -q "^$off=yes" "$dir/vfiod.service"; then echo "not ok - $off=yes would break VFIO"; exit 1; fi
done
out=$(systemd-analyze verify "$dir/vfiod.service" 2>&1)
rc=$?
echo "$out"
if [ $rc -ne 0 ] || [ -n "$out" ]; then echo "not ok - systemd-analyze verify complained"; exit 1; fi
echo "ok - systemd-analyze verify accepts vfiod.service (Type=notify, VFIO-safe hardening)"
