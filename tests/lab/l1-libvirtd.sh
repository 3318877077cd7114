#!/bin/bash
# l1-libvirtd.sh: sourced inside L1 by the scripts that start this machine's
# libvirtd there (tests/lab/checks-l1-libvirt.sh, bench/lab-bind.sh).
#
# l1_libvirtd_config QEMU_CONF: L1 runs the host's root read-only (9p,
# chrooted), so /etc/libvirt, /var/lib/libvirt and /var/cache/libvirt each
# get a tmpfs (/run and /var/log are tmpfs already); writes libvirtd.conf
# (root only, no auth on the local socket, log to
# /var/log/libvirt/libvirtd.log; no network is autostarted: the tmpfs
# /etc/libvirt has none) and qemu.conf = QEMU_CONF. Returns 1, saying which
# on stderr, when a tmpfs cannot be mounted.
l1_libvirtd_config() {
    local d rc=0
    if [[ ${LAB_L1:-} != 1 ]]; then
        echo "l1-libvirtd.sh: refusing to run outside the lab VM" >&2
        return 2
    fi
    for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt; do
        mkdir -p "$d"
        mount -t tmpfs -o mode=0755 tmpfs "$d" || { echo "cannot mount a tmpfs on $d" >&2; rc=1; }
    done
    mkdir -p /var/log/libvirt/qemu /run/libvirt
    cat >/etc/libvirt/libvirtd.conf <<'CONF'
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
    printf '%s\n' "$1" >/etc/libvirt/qemu.conf
    return $rc
}
