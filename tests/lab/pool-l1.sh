#!/bin/bash
# pool-l1.sh BUILD CACHE PHASE STATE_TAG: the pool checks (issue 16, items
# 1-3), inside L1; run-lab-pool.sh boots L1 twice, PHASE 1 then 2, with a
# writable 9p share (mount tag STATE_TAG) that holds what a host keeps on
# disk across a reboot: vfiod's state dir (the journal) and the root that
# `vfioctl pool install-boot --root` writes the boot configuration into.
#
# Phase 1 (first boot): vfiod with [pool] devices=A keeps A's IOMMU group
#   (A, B) on vfio-pci for 'pool'; `pool status` says so; the CDI specs name
#   the group and A, and Podman (a real CDI consumer) gives a container
#   /dev/vfio/<group> and /dev/vfio/vfio through `--device vfiod.io/group=N`
#   and `--device vfiod.io/gpu=A`; a vfiod restart keeps the group without a
#   write; `bind --persist C` adds C's group and the CDI spec, its release
#   takes both away; `pool install-boot` writes the udev rule and softdeps.
# Phase 2 ("reboot"): L1's init has loaded the host drivers (e1000e,
#   virtio-pci) first, so A and B come up on them; the host's systemd-udevd
#   runs with the generated rule installed in a tmpfs /etc/udev/rules.d and
#   the coldplug trigger a boot makes: A and B go to vfio-pci, C stays on
#   e1000e, also when e1000e is loaded again; then vfiod (same journal)
#   keeps the group ('pool-kept', no write), `pool status` exits 0, the CDI
#   spec names it; a function unbound by hand is reported and `--fix` puts
#   it back.
# Output: ok/not ok lines and "# lab-pool: N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lab/l1-lib.sh
. "$here/l1-lib.sh" "$1" "$2"
phase=$3
tag=$4

pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else nok "$what"; fi
}
finish() {
    stop_vfiod >/dev/null 2>&1
    if ((fail)); then
        echo "# vfiod log:"
        sed 's/^/#   /' "$vlog" 2>/dev/null | tail -n 80
    fi
    echo "# lab-pool phase $phase: $pass passed, $fail failed"
    exit $((fail ? 1 : 0))
}

persist=/run/labstate
mkdir -p "$persist" 2>/dev/null || true
if ! mount -t 9p -o trans=virtio,version=9p2000.L "$tag" "$persist"; then
    nok "mount the persistent share $tag"
    finish
fi
state=$persist/state
bootroot=$persist/root
cdi=/run/cdi
write_pool_config() {
    rm -rf "$work" "$runtime"
    mkdir -p "$work" "$state"
    write_config_file
    cat >>"$conf" <<EOF
[pool]
devices=$A
cdi_dir=$cdi
EOF
    # write_config_file put state_dir=$work/state: the persistent one instead
    sed -i "s|^state_dir=.*|state_dir=$state|" "$conf"
}
writes_of() { grep -c -E "pool-(bound|adopted)" "$vlog" || true; }
GROUP=$(group_of "$A")
GROUP_C=$(group_of "$C")
echo "# phase $phase: A=$A B=$B (IOMMU group $GROUP), C=$C (group $GROUP_C); drivers: A $(driver_of "$A"), B $(driver_of "$B"), C $(driver_of "$C")"

both_vfio() { on_driver "$A" vfio-pci && on_driver "$B" vfio-pci; }
status_json() { "$VFIOCTL" pool status --config "$conf" --json >"$work/status.json" 2>"$work/status.err"; }
cdi_names() { json "$cdi/vfiod-$1.json" '" ".join(x["name"] for x in d["devices"])'; }

# podman_devices NAME...: /dev/vfio in a container given those CDI devices
# (Podman 4.3 reads /etc/cdi and /var/run/cdi). Prints `ls /dev/vfio`.
podman_devices() {
    local args=() n
    for n in "$@"; do args+=(--device "$n"); done
    # Podman's network configuration in a writable place too: its default,
    # /etc/containers/networks, is on L1's read-only root, and a host where
    # podman never ran has no such directory for it to find (--network none
    # still opens the network backend).
    mkdir -p /tmp/pm-root /run/pm-run /run/pm-net
    # The container's root: a tmpfs with the static busybox of the lab's
    # host (busybox-static), writable so that the runtime can add its files.
    if [[ ! -x /run/pm-rootfs/bin/busybox ]]; then
        mkdir -p /run/pm-rootfs
        mount -t tmpfs -o mode=0755 tmpfs /run/pm-rootfs
        mkdir -p /run/pm-rootfs/{bin,dev,proc,sys,run,tmp,etc}
        cp /bin/busybox /run/pm-rootfs/bin/busybox
        ln -s busybox /run/pm-rootfs/bin/ls
        ln -s busybox /run/pm-rootfs/bin/sh
    fi
    timeout "$(scaled 180)" podman --root /tmp/pm-root --runroot /run/pm-run --storage-driver vfs \
        --network-config-dir /run/pm-net --cgroup-manager cgroupfs --events-backend file \
        run --rm --network none "${args[@]}" --rootfs /run/pm-rootfs /bin/ls /dev/vfio 2>"$work/podman.err"
}

if [[ $phase == 1 ]]; then
    rm -rf "${persist:?}"/state "${persist:?}"/root
    write_pool_config
    check "vfiod starts with [pool] devices=$A" start_vfiod
    check "A and B ($GROUP) are on vfio-pci for the pool" both_vfio
    check "journal: A and B bound for 'pool'" \
        test "$(json "$state/journal.json" '" ".join(x["owner"] + ":" + x["state"] for x in d["devices"])')" == "pool:bound pool:bound"
    grep -q "reconcile: $A pool-bound" "$vlog" && ok "vfiod logged 'pool-bound' for A" || nok "no pool-bound line"
    if status_json; then
        ok "pool status exits 0: $(json "$work/status.json" '" ".join(x["bdf"] + "=" + str(x["driver"]) + "/" + x["status"] for x in d)')"
    else
        nok "pool status: $(cat "$work/status.err")"
    fi
    check "CDI vfiod.io/group names group $GROUP" test "$(cdi_names group)" == "$GROUP"
    check "CDI vfiod.io/gpu names $A" test "$(cdi_names gpu)" == "$A"
    cat "$cdi/vfiod-group.json" | sed 's/^/# /'

    # A real CDI consumer: Podman (Debian 12: 4.3).
    if ! command -v podman >/dev/null; then
        nok "podman is missing (install podman)"
    else
        out=$(podman_devices "vfiod.io/group=$GROUP") || true
        if [[ " $(echo $out) " == *" $GROUP "* && " $(echo $out) " == *" vfio "* ]]; then
            ok "podman run --device vfiod.io/group=$GROUP: the container has /dev/vfio/{$(echo $out | tr ' ' ',')}"
        else
            nok "podman --device vfiod.io/group=$GROUP: got '$(echo $out)'; $(tail -n 5 "$work/podman.err")"
        fi
        out=$(podman_devices "vfiod.io/gpu=$A") || true
        if [[ " $(echo $out) " == *" $GROUP "* ]]; then
            ok "podman run --device vfiod.io/gpu=$A: the container has /dev/vfio/{$(echo $out | tr ' ' ',')}"
        else
            nok "podman --device vfiod.io/gpu=$A: got '$(echo $out)'; $(tail -n 5 "$work/podman.err")"
        fi
        out=$(podman_devices "vfiod.io/group=999") || true
        if [[ -z $out ]] && grep -q -i "unresolvable CDI devices" "$work/podman.err"; then
            ok "podman refuses an unknown vfiod.io/group=999: $(tail -n 1 "$work/podman.err")"
        else
            nok "podman with vfiod.io/group=999 gave '$(echo $out)'; $(tail -n 3 "$work/podman.err")"
        fi
    fi

    # A vfiod restart keeps the pool without a write.
    stop_vfiod
    : >"$vlog"
    check "vfiod restarts" start_vfiod
    check "after the restart A and B are still on vfio-pci" both_vfio
    grep -q "reconcile: $A pool-kept" "$vlog" && [[ $(writes_of) == 0 ]] &&
        ok "the restarted vfiod logged 'pool-kept' and bound nothing" || nok "restart: $(grep reconcile "$vlog")"

    # bind --persist adds C's group to the pool and the CDI spec; release takes it away.
    if out=$("$VFIOCTL" --socket "$sock" bind --persist "$C" 2>&1) && on_driver "$C" vfio-pci; then
        ok "bind --persist $C: $out"
    else
        nok "bind --persist $C: $out"
    fi
    check "CDI now names groups $GROUP and $GROUP_C" test "$(cdi_names group | tr ' ' '\n' | sort -n | tr '\n' ' ')" == "$(printf '%s\n' "$GROUP" "$GROUP_C" | sort -n | tr '\n' ' ')"
    "$VFIOCTL" --socket "$sock" release "$C" >/dev/null 2>&1
    check "release $C: back on e1000e, gone from the CDI spec" \
        test "$(driver_of "$C") $(cdi_names group)" == "e1000e $GROUP"

    out=$("$VFIOCTL" pool install-boot --config "$conf" --root "$bootroot" 2>&1)
    echo "$out" | sed 's/^/# /'
    if grep -q "KERNEL==\"$A\", ATTR{driver_override}=\"vfio-pci\"" "$bootroot/etc/udev/rules.d/70-vfiod-pool.rules" &&
        grep -q "KERNEL==\"$B\"" "$bootroot/etc/udev/rules.d/70-vfiod-pool.rules" &&
        ! grep -q "$C" "$bootroot/etc/udev/rules.d/70-vfiod-pool.rules" &&
        grep -q "^softdep e1000e pre: vfio_pci" "$bootroot/etc/modprobe.d/vfiod-pool.conf"; then
        ok "pool install-boot wrote the udev rule for A and B and 'softdep e1000e pre: vfio_pci'"
    else
        nok "install-boot: $out"
    fi
    sed 's/^/# /' "$bootroot/etc/udev/rules.d/70-vfiod-pool.rules" "$bootroot/etc/modprobe.d/vfiod-pool.conf"
    stop_vfiod
    finish
fi

# --- phase 2: the reboot ------------------------------------------------------
mkdir -p "$work"
: >"$vlog"
if on_driver "$A" e1000e && on_driver "$B" virtio-pci; then
    ok "after the reboot the host drivers came first: A on e1000e, B on virtio-pci"
else
    nok "after the reboot: A $(driver_of "$A"), B $(driver_of "$B") (want e1000e, virtio-pci)"
fi
# The generated rule in a tmpfs /etc/udev/rules.d (L1's /etc is the build
# host's, read-only), then udevd and the coldplug a boot makes
# (systemd-udev-trigger: `udevadm trigger --action=add`).
udevd=/lib/systemd/systemd-udevd
[[ -x $udevd ]] || udevd=/usr/lib/systemd/systemd-udevd
if [[ ! -x $udevd ]]; then
    nok "systemd-udevd is missing (install udev)"
    finish
fi
mount -t tmpfs -o mode=0755 tmpfs /etc/udev/rules.d &&
    cp "$bootroot/etc/udev/rules.d/70-vfiod-pool.rules" /etc/udev/rules.d/ || nok "install the rule"
mkdir -p /run/udev
# udevadm ignores requests in a chroot (this job runs chrooted into the
# host's root, L1's init being PID 1): say it is meant.
export SYSTEMD_IGNORE_CHROOT=1
t0=$(now_ms)
"$udevd" --daemon --debug >"$work/udevd.log" 2>&1 || nok "udevd: $(tail -n 3 "$work/udevd.log")"
udevadm trigger --action=add --subsystem-match=pci
udevadm settle --timeout="$(scaled 60)"
t1=$(now_ms)
if both_vfio; then
    ok "udev (the generated rule) moved A and B to vfio-pci in $((t1 - t0)) ms; overrides: $(override_of "$A") $(override_of "$B")"
else
    nok "after udev: A $(driver_of "$A"), B $(driver_of "$B"), overrides $(override_of "$A") $(override_of "$B")"
    grep -a -E "$A|$B|vfiod-pool" "$work/udevd.log" | tail -n 40 | sed 's/^/#   /'
fi
check "C (not in the pool) stays on e1000e" on_driver "$C" e1000e
udevadm control --exit
# The host driver loaded again (as when it is loaded after udev): it takes C, not A.
modprobe -r e1000e && modprobe e1000e
sleep 1
check "e1000e loaded again: A stays on vfio-pci, C on e1000e" eval 'on_driver "$A" vfio-pci && on_driver "$C" e1000e'

write_pool_config
check "vfiod starts with the journal of the first boot" start_vfiod
grep -q "reconcile: $A pool-kept" "$vlog" && [[ $(writes_of) == 0 ]] &&
    ok "vfiod kept the group bound at boot ('pool-kept', nothing bound again)" || nok "start: $(grep reconcile "$vlog")"
if status_json; then
    ok "pool status exits 0 after the reboot: $(json "$work/status.json" '" ".join(x["bdf"] + "=" + str(x["driver"]) + "/" + x["status"] for x in d)')"
else
    nok "pool status after the reboot: $(cat "$work/status.err") $(cat "$work/status.json")"
fi
check "CDI vfiod.io/group names group $GROUP after the reboot" test "$(cdi_names group)" == "$GROUP"

# A function off its driver: reported, and --fix puts it back.
echo "$B" >"$dev/$B/driver/unbind"
"$VFIOCTL" pool status --config "$conf" >"$work/st.txt" 2>&1
rc=$?
sed 's/^/# /' "$work/st.txt"
check "pool status exits 1 and says wrong-driver for B" eval '[[ $rc == 1 ]] && grep -q "^$B .*wrong-driver" "$work/st.txt"'
"$VFIOCTL" --socket "$sock" pool status --config "$conf" --fix >"$work/fix.txt" 2>&1
rc=$?
sed 's/^/# /' "$work/fix.txt"
check "pool status --fix: exit 0, A and B on vfio-pci again" eval '[[ $rc == 0 ]] && both_vfio'
finish
