#!/usr/bin/env python3
"""Checks N concurrent `vfioctl sandbox create --wait --json` results.

Usage: check-created.py DIR N JOURNAL
DIR holds, per create i (1..N): c<i>.rc (exit status), c<i>.json (stdout),
c<i>.err (stderr), c<i>.ms (client wall time). JOURNAL is vfiod's
journal.json, read while the sandboxes run. Prints `ok - `/`not ok - ` lines
and `# ` notes, and writes DIR/sandboxes.txt: one line per sandbox,
"id pid tap subnet host_address guest_address".
"""
import ipaddress
import json
import statistics
import sys
from pathlib import Path

d, n, journal_path = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
results = []


def ok(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
    return cond


def read(name, default=""):
    try:
        return (d / name).read_text()
    except OSError:
        return default


rcs, objs = [], []
for i in range(1, n + 1):
    rc = read(f"c{i}.rc", "?").strip()
    rcs.append(rc)
    try:
        objs.append(json.loads(read(f"c{i}.json")))
    except ValueError:
        objs.append(None)
        err = read(f"c{i}.err").replace("\r", "\n").strip().splitlines()
        print(f"# create {i}: exit {rc}, no JSON; stderr: {err[-3:]}")

ok(all(rc == "0" for rc in rcs), f"{n} concurrent creates all exit 0 (got {' '.join(rcs)})")
good = [o for o in objs if o]
ok(len(good) == n and all(o.get("ready") is True and o.get("state") == "running" for o in good),
   f"{n} sandboxes running with ready: true")
ids = [o.get("id") for o in good]
ok(len(set(ids)) == n, f"{n} distinct ids ({' '.join(sorted(map(str, ids)))})")
pids = [o.get("pid") for o in good]
ok(len(set(pids)) == n and all(isinstance(p, int) and p > 0 for p in pids), f"{n} distinct QEMU pids")
ok(all(o.get("devices") == [] for o in good), "CPU-only: no device passed to any sandbox")

try:
    journal = json.load(open(journal_path))
except (OSError, ValueError) as e:
    journal = {"sandboxes": [], "devices": []}
    print(f"# cannot read {journal_path}: {e}")
js = {s["id"]: s for s in journal.get("sandboxes", [])}
ok(sorted(js) == sorted(ids), f"the journal holds exactly these {n} sandboxes ({len(js)} there)")
subnets = [js.get(i, {}).get("subnet") for i in ids]
taps = [js.get(i, {}).get("tap") for i in ids]
ok(len(set(subnets)) == n and None not in subnets, f"{n} distinct subnets ({' '.join(map(str, subnets))})")
ok(len(set(taps)) == n and None not in taps, f"{n} distinct TAP names")
ok(all(js.get(i, {}).get("pid") == o.get("pid") for i, o in zip(ids, good)), "journaled pids match the QEMU pids")
ok(all(t == "vfd" + i[3:] for i, t in zip(ids, taps) if t and i), "each TAP is named vfd<id without sb->")

nets_ok, mismatches = True, []
with open(d / "sandboxes.txt", "w") as out:
    for o in good:
        sid = o.get("id")
        j = js.get(sid, {})
        try:
            net = ipaddress.ip_network(j.get("subnet"))
            hosts = list(net.hosts())
            host, guest = hosts[0], hosts[1]
        except (TypeError, ValueError):
            nets_ok = False
            mismatches.append(f"{sid}: bad subnet {j.get('subnet')}")
            continue
        rep = o.get("ready_report")
        if isinstance(rep, str):
            rep = json.loads(rep)
        rep = rep or {}
        got = (rep.get("net") or {}).get("ip")
        want = f"{guest}/{net.prefixlen}"
        if got != want or (rep.get("net") or {}).get("gw") != str(host) or rep.get("sandbox") != sid:
            nets_ok = False
            mismatches.append(f"{sid}: report ip {got} gw {(rep.get('net') or {}).get('gw')} "
                              f"sandbox {rep.get('sandbox')}, want {want} gw {host}")
        out.write(f"{sid} {o.get('pid')} {j.get('tap')} {net} {host}/{net.prefixlen} {guest}\n")
ok(nets_ok, "each ready_report names its sandbox, and its net.ip/gw are its subnet's guest/host addresses"
   + ("" if nets_ok else ": " + "; ".join(mismatches)))

ready = sorted(o["ready_ms"] for o in good if isinstance(o.get("ready_ms"), int))
wall = sorted(int(read(f"c{i}.ms", "0") or 0) for i in range(1, n + 1))
if ready:
    print(f"# create-to-ready (ready_ms, vfiod): min {ready[0]} ms, median {statistics.median(ready):.0f} ms, "
          f"max {ready[-1]} ms; all: {' '.join(map(str, ready))}")
print(f"# client wall time of the {n} creates: min {wall[0]} ms, median {statistics.median(wall):.0f} ms, "
      f"max {wall[-1]} ms")
uptimes = sorted((o.get("ready_report") or {}).get("uptime_ms", 0) if isinstance(o.get("ready_report"), dict)
                 else 0 for o in good)
if uptimes:
    print(f"# guest uptime at ready (guest clock): min {uptimes[0]} ms, max {uptimes[-1]} ms")
