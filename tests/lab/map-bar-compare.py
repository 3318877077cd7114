#!/usr/bin/env python3
"""map-bar-compare.py NEW_LOG OLD_LOG: check 7 of lab-bigbar.

Reads the "# map-bar: {...}" lines (vfio-hold --map-bar, checks-l1-bigbar.sh
check 6) of the boot on the recommended host (kernel >= 6.12, the BAR mapped
aligned as QEMU >= 9.2 maps it) and of the boot on the older host (the lab's
pinned kernel, mapped 4 KiB-aligned as older QEMU did), and prints one TAP
line: ok when the older host's first fault on the BAR (which maps all of it:
4 KiB at a time before huge pfnmap, 1 GiB at a time with it) takes 3x the
recommended one's or more, or stalled past its bound. The DMA mapping of the
whole BAR (VFIO_IOMMU_MAP_DMA, which QEMU does for peer-to-peer) is printed
for both: vfio's type1 IOMMU driver walks the BAR 4 KiB at a time on both
kernels, so it is the floor neither version removes.

Then a second line from the "# boot: {...}" records: the same sandbox
(vfioctl sandbox create --wait) on both hosts, the older one on the
machine's own QEMU. The time before the guest's kernel starts (vfiod's
ready_ms minus the guest's uptime at ready: QEMU's start, the BAR's
mappings, the firmware) is what the BAR costs; ok when the older host's is
1.5x the recommended one's or more, or it was not ready within a bound
longer than the recommended host needed to be ready.
"""
import json
import sys


def lines(path, tag="# map-bar: "):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(tag):
                try:
                    out.append(json.loads(line[len(tag):]))
                except ValueError:
                    pass
    return out


def boots(new_log, old_log):
    new = lines(new_log, "# boot: ")
    old = lines(old_log, "# boot: ")
    if not new or not old or new[0].get("ready_ms") is None or new[0].get("uptime_ms") is None:
        print("not ok - 8: boot records: one is missing (recommended host: %d, older host: %d)"
              % (len(new), len(old)))
        return
    n = new[0]["ready_ms"] - new[0]["uptime_ms"]
    if "stalled_s" in old[0]:
        # Stalled for longer than the recommended host needed to be ready.
        good = old[0]["stalled_s"] * 1000 > new[0]["ready_ms"]
        old_text = "no ready report within %d s" % old[0]["stalled_s"]
    else:
        o = old[0]["ready_ms"] - old[0]["uptime_ms"]
        good = o >= 1.5 * n
        old_text = "%.0f s to the guest's kernel (%.1fx), ready after %.0f s" % (
            o / 1000, o / n if n else 0, old[0]["ready_ms"] / 1000)
    print("%s - 8: the sandbox with the 64 GiB BAR, create to the guest's kernel: older host (kernel %s, "
          "the machine's QEMU): %s; recommended host (kernel %s, backports' QEMU): %.0f s, ready after %.0f s"
          % ("ok" if good else "not ok", old[0].get("kernel"), old_text, new[0].get("kernel"), n / 1000,
             new[0]["ready_ms"] / 1000))


def fault(d):
    if "stalled_s" in d:
        return d["stalled_s"] * 1000.0, True
    return d["fault_ms"], False


def dma(d):
    if "stalled_s" in d:
        return "stalled"
    if d.get("map_dma_ms") is None:
        return "refused (%s)" % d.get("map_dma_error")
    return "%.0f ms" % d["map_dma_ms"]


def main():
    new = [d for d in lines(sys.argv[1]) if d.get("aligned")]
    old = [d for d in lines(sys.argv[2]) if not d.get("aligned")]
    if not new or not old:
        print("not ok - 7: map timing: a figure is missing (recommended host: %d, older host: %d)"
              % (len(new), len(old)))
        return
    n, n_stalled = fault(new[0])
    o, o_stalled = fault(old[0])
    good = not n_stalled and (o_stalled or o >= 3 * n)
    old_text = ("more than %.0f s (stalled, killed)" % (o / 1000)) if o_stalled else "%.0f ms" % o
    new_text = ("more than %.0f s (stalled)" % (n / 1000)) if n_stalled else "%.0f ms" % n
    ratio = "" if n_stalled or o_stalled or not n else " (%.0fx)" % (o / n)
    print("%s - 7: first fault on the 64 GiB BAR (maps all of it): %s on the older host (pinned kernel, "
          "4 KiB-aligned as QEMU < 9.2 maps) vs %s on the recommended one (>= 6.12, aligned as QEMU >= 9.2 "
          "maps)%s; DMA map of the whole BAR: %s vs %s (4 KiB steps on both)"
          % ("ok" if good else "not ok", old_text, new_text, ratio, dma(old[0]), dma(new[0])))


if __name__ == "__main__":
    main()
    boots(sys.argv[1], sys.argv[2])
