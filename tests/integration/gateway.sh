#!/bin/bash
# integration suite: one stable gateway address for every guest (issue 15,
# item 7), against the real vfiod, real QEMU (TCG) and the pinned guest
# kernel, inside a network namespace this test creates (see lib.sh).
# [network] gateway_address=10.255.255.1, host_ports=8080:
#  1. at start vfiod makes the dummy link vfiodgw0 with 10.255.255.1/32 (on
#     a kernel without dummy links, as this machine's kind: lo gets it); a
#     gateway_address inside the pool is refused at start-up.
#  2. one HTTP listener bound to 10.255.255.1:8080 only (the platform's
#     gateway binds one address, not one per sandbox); another on :9090.
#  3. two sandboxes (microvm, busybox root disk): each TAP holds
#     10.255.255.1/32 besides its own address; the firewall's gateways set
#     holds (TAP . 10.255.255.1) for both; each guest's default route is
#     via 10.255.255.1 on-link; each guest fetches from 10.255.255.1:8080
#     and the listener saw both guests' own addresses; port 9090 on the same
#     address is not reachable (not in host_ports).
#  4. after delete: the TAPs and rules are gone, the address stays (the
#     platform may still bind it).
# Usage: gateway.sh BUILD_DIR SOURCE_DIR. Exit 77 when not root.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
itest_init gateway "$@"

for tool in busybox mkfs.ext4; do
  command -v "$tool" > /dev/null || { nok "$tool missing (busybox-static, e2fsprogs)"; exit 1; }
done
build_root_image || { nok "guest image built"; exit 1; }
busybox_disk || { nok "busybox root disk"; exit 1; }
gw=10.255.255.1

# ---- 1. the gateway link -----------------------------------------------------
bad=$work/bad
write_conf "$bad"
sed -i 's/^enabled=true$/enabled=true\ngateway_address=10.0.128.9/' "$bad/vfiod.conf"
out=$(timeout 20 "$vfiod" --config "$bad/vfiod.conf" 2>&1)
rc=$?
[ "$rc" != 0 ] && [[ $out == *"gateway_address: 10.0.128.9 is inside the pool 10.0.128.0/17"* ]] &&
  ok "1: a gateway_address inside the pool: vfiod refuses to start (exit $rc)" ||
  nok "1: gateway inside the pool: exit $rc: $(tail -2 <<< "$out")"
d=$work/d
write_conf "$d"
sed -i "s/^enabled=true\$/enabled=true\ngateway_address=$gw\nhost_ports=8080/" "$d/vfiod.conf"
start_vfiod "$d" || exit 1
# On a kernel without dummy links (this machine's kind has none) the
# address goes on lo: vfiod's log says which.
held=vfiodgw0
grep -q "gateway_address $gw: on link lo " "$d/vfiod.log" && held=lo
link=$(ip -o -4 addr show dev "$held" 2> /dev/null)
kind=$(ip -d -o link show dev "$held" 2> /dev/null | grep -o 'dummy\|loopback' | head -1)
[[ $link == *"inet $gw/32"* ]] && { [ "$held" = lo ] || [ "$kind" = dummy ]; } &&
  ok "1: $held ($kind) holds $gw/32 ($(grep -o 'gateway_address .*' "$d/vfiod.log" | head -1))" ||
  nok "1: $held: '$link' kind '$kind'"

# ---- 2. one listener on the one address ----------------------------------------
cat > "$work/server.py" << 'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello %s from the gateway\n" % self.client_address[0]).encode()
        with open(sys.argv[3], "a") as f:
            f.write("%s %s\n" % (self.client_address[0], self.path))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
PY
python3 "$work/server.py" "$gw" 8080 "$work/seen8080" &
python3 "$work/server.py" "$gw" 9090 "$work/seen9090" &
for _ in $(seq 50); do
  ss -ltn | grep -q "$gw:8080" && ss -ltn | grep -q "$gw:9090" && break
  sleep 0.1
done
ss -ltn | grep -q "$gw:8080 " && ok "2: listeners on $gw:8080 and :9090 (bound to that address only)" ||
  nok "2: listeners: $(ss -ltn)"

# ---- 3. two sandboxes --------------------------------------------------------------
script="
busybox ip route | busybox sed 's/^/ROUTE /'
busybox ip -4 -o addr show | busybox sed 's/^/ADDR /'
printf 'GET /from-guest HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 10 $gw 8080 > /tmp/got 2> /tmp/nc.log; echo NC-RC \$?
busybox sed 's/^/GET8080 /' /tmp/got /tmp/nc.log
busybox ip neigh | busybox sed 's/^/NEIGH /'
if busybox nc -w 3 $gw 9090 < /dev/null > /dev/null 2> /tmp/nc9090.log; then echo PORT9090 open; else echo PORT9090 closed: \$(busybox cat /tmp/nc9090.log); fi
echo GATEWAY-CHECKS-DONE
busybox sleep 600"
ids=()
for n in 1 2; do
  # a disk each: QEMU locks its image for writing
  cp --sparse=always "$disk" "$work/root-$n.ext4"
  out=$(ctl sandbox create --kernel "$kernel" --initrd "$image" --disk "$work/root-$n.ext4" --memory 256 --cmd /bin/busybox \
    --arg sh --arg -c --arg "$script" --wait --timeout 240 --json 2>&1)
  rc=$?
  id=$(grep -o 'sb-[0-9a-f]*' <<< "$out" | head -1)
  [ "$rc" = 0 ] && [ -n "$id" ] && ok "3: sandbox $n: $id ready" || nok "3: sandbox $n: exit $rc: $out"
  ids+=("$id")
  logs+=("$d/run/sandboxes/$id/serial.log")
done
for id in "${ids[@]}"; do
  log=$d/run/sandboxes/$id/serial.log
  for _ in $(seq 600); do grep -q GATEWAY-CHECKS-DONE "$log" 2> /dev/null && break; sleep 0.1; done
  console=$(tr -d '\r' < "$log" 2> /dev/null)
  tap=vfd${id#sb-}
  guest=$(grep -o '^ADDR .*eth0 *inet [0-9.]*' <<< "$console" | grep -o '[0-9.]*$')
  ip -o -4 addr show dev "$tap" 2> /dev/null | grep -q "inet $gw/32" && ok "3: $id: TAP $tap holds $gw/32" ||
    nok "3: $id: TAP $tap: $(ip -o -4 addr show dev "$tap" 2>&1)"
  grep -q "^ROUTE default via $gw dev eth0 onlink" <<< "$console" && ok "3: $id: the guest's default route is via $gw on-link" ||
    nok "3: $id: routes: $(grep '^ROUTE' <<< "$console" | tr '\n' ' ')"
  grep -q "^GET8080 hello $guest from the gateway" <<< "$console" && grep -q "^$guest /from-guest" "$work/seen8080" &&
    ok "3: $id: guest $guest fetched from $gw:8080; the listener saw $guest" ||
    nok "3: $id: guest '$guest': $(grep '^GET8080\|^NC-RC\|^NEIGH\|^ROUTE\|^ADDR' <<< "$console" | tr '\n' ' '); seen: $(tr '\n' ' ' < "$work/seen8080" 2> /dev/null)"
  # (nc works in this guest: it fetched from :8080 above)
  grep -q "^PORT9090 closed" <<< "$console" && [ ! -s "$work/seen9090" ] && grep -q "^GET8080 hello" <<< "$console" &&
    ok "3: $id: $gw:9090 (not in host_ports) is not reachable from the guest ($(grep '^PORT9090' <<< "$console"))" ||
    nok "3: $id: port 9090: $(grep '^PORT9090' <<< "$console")"
done
set_elems=$(nft list set inet vfiod gateways 2> /dev/null | tr -d '\n\t ')
n=0
for id in "${ids[@]}"; do [[ $set_elems == *"\"vfd${id#sb-}\".$gw"* ]] && n=$((n + 1)); done
[ "$n" = 2 ] && ok "3: the firewall's gateways set holds (TAP . $gw) for both sandboxes" ||
  nok "3: gateways set: $set_elems"
[ "$(sort -u "$work/seen8080" | wc -l)" = 2 ] && ok "3: one listener on one address served both guests" ||
  nok "3: listener saw: $(tr '\n' ' ' < "$work/seen8080")"

# ---- 4. delete ------------------------------------------------------------------------
for id in "${ids[@]}"; do
  out=$(ctl sandbox delete "$id" 2>&1) || nok "4: delete $id: $out"
done
expect_clean "$d" "4: after delete" "${ids[@]}"
ip -o -4 addr show dev "$held" 2> /dev/null | grep -q "inet $gw/32" && ok "4: $held keeps $gw/32" ||
  nok "4: $held lost $gw/32"
stop_vfiod "gateway"
itest_finish
