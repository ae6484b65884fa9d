#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark helper (bench/live.sh): print the live benchmark's results,
# a table of every run, the medians of each contender with their ratios to
# the idle baselines (as text and as a markdown table to paste into
# docs/performance.md), and each stm mirror contender against issue 13's
# targets.
#
#   live-report.py RESULTS.tsv KEY=VALUE...
#
# RESULTS.tsv has one line per run, tab-separated: contender, run,
# total ms, downtime ms, guest write IOPS, p99 write ms, bytes sent, bytes
# the guest wrote, passes, throttle steps (both "-" for QEMU), destination
# check, fio's report lost (1/0), COMMIT-to-flip ms ("-" if unknown), note,
# stm-send's start-to-done ms ("-" for QEMU).
# The KEY=VALUE pairs describe the invocation: size_mib, runs, flip,
# guest, store, mirror (the mirror contenders' options), idle_ms, idle_done_ms, idle_bytes, idle_iops, idle_p99,
# idle_seconds, machine.
#
# "total" is the whole process's wall time (stm-send's run; QEMU's mirror
# start to its cutover's end), "done" stm-send's own start-to-done time
# from its done event: the two differ by what stm-send does after done
# (closing its connections).
import statistics
import sys

MIB = 1 << 20

# Issue 13's targets for the mirror modes.
TARGET_TOTAL_X = 1.5        # of the idle full pass
TARGET_IOPS_X = 0.7         # of the idle guest's IOPS
TARGET_DOWNTIME_MS = 50.0


def num(s):
    """A figure of the results, None when there is none ("-", empty)."""
    try:
        return float(s)
    except ValueError:
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def load(path):
    runs = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 15:
            continue
        runs.append({
            "c": f[0], "run": int(f[1]), "total_ms": num(f[2]), "down_ms": num(f[3]),
            "iops": num(f[4]), "p99": num(f[5]), "bytes": num(f[6]),
            "guest_bytes": num(f[7]), "passes": num(f[8]), "throttles": num(f[9]),
            "check": f[10], "fio_lost": f[11] == "1", "after_ms": num(f[12]),
            "note": f[13], "done_ms": num(f[14]),
        })
    return runs


def summarize(name, rs, p):
    """The medians of contender name's runs rs, with the ratios."""
    kept = [r for r in rs if not r["fio_lost"]]
    s = {
        "c": name, "n": len(rs),
        "total_ms": median(r["total_ms"] for r in rs),
        "down_ms": median(r["down_ms"] for r in rs),
        "downs": [r["down_ms"] for r in rs],
        "iops": median(r["iops"] for r in kept),
        "p99": median(r["p99"] for r in kept),
        "bytes": median(r["bytes"] for r in rs),
        "guest_bytes": median(r["guest_bytes"] for r in kept),
        "passes": median(r["passes"] for r in rs),
        "after_ms": median(r["after_ms"] for r in rs),
        "done_ms": median(r["done_ms"] for r in rs),
        "stm": name.startswith("stm-"),
    }
    s["total_x"] = s["total_ms"] / p["idle_ms"] if s["total_ms"] and p["idle_ms"] else None
    s["done_x"] = (s["done_ms"] / p["idle_done_ms"]
                   if s["done_ms"] is not None and p["idle_done_ms"] else None)
    s["iops_x"] = s["iops"] / p["idle_iops"] if s["iops"] is not None and p["idle_iops"] else None
    s["sent_x"] = s["bytes"] / p["size"] if s["bytes"] is not None else None
    if s["stm"]:
        t = sum(1 for r in rs if (r["throttles"] or 0) > 0)
        s["throttled"] = "no" if t == 0 else "yes (%d of %d runs)" % (t, len(rs))
        same = sum(1 for r in rs if r["check"] == "identical")
        fenced = sum(1 for r in rs if r["check"] == "identical" or "differ" in r["check"])
        if fenced:
            s["dest"] = "identical %d/%d" % (same, len(rs))
        else:
            s["dest"] = "not compared (forward flip: %s)" % rs[0]["check"]
    else:
        s["throttled"] = "-"
        s["dest"] = "not compared"
    # Bytes on the wire against the image plus what the guest wrote, in
    # every run (what the guest wrote counts its first second too).
    s["bytes_ok"] = all(r["bytes"] is not None and r["guest_bytes"] is not None and
                        r["bytes"] <= p["size"] + r["guest_bytes"] for r in kept) and bool(kept)
    return s


def print_runs(runs, p):
    print("\n%d MiB image, fio 4k random writes iodepth 8 %s, flip %s, images %s"
          % (p["size_mib"], p["guest"], p["flip"], p["store"]))
    print("machine: %s" % p["machine"])
    print("mirror contenders: %s" % p["mirror"])
    print("idle full pass (stm, no guest): %.2f s (%s s to done), %.0f MiB sent; idle guest "
          "(fio alone %s s through the filter): %.0f IOPS, p99 %.2f ms"
          % (p["idle_ms"] / 1000, fmt(p["idle_done_ms"] and p["idle_done_ms"] / 1000, ".2f"),
             p["idle_bytes"] / MIB, p["idle_seconds"], p["idle_iops"], p["idle_p99"]))
    print("%-22s %4s %8s %8s %7s %11s %9s %8s %9s %10s %6s %9s  %s"
          % ("contender", "run", "total s", "x idle", "done s", "downtime ms", "IOPS", "x idle",
             "p99 ms", "sent MiB", "passes", "throttle", "notes"))
    for r in runs:
        if r["fio_lost"]:
            # No report from fio: its figures are unknown, not zero.
            r = dict(r, iops=None, p99=None, guest_bytes=None)
        tx = r["total_ms"] / p["idle_ms"] if r["total_ms"] and p["idle_ms"] else None
        ix = r["iops"] / p["idle_iops"] if r["iops"] and p["idle_iops"] else None
        print("%-22s %4d %8s %8s %7s %11s %9s %8s %9s %10s %6s %9s  %s"
              % (r["c"], r["run"], fmt(r["total_ms"] and r["total_ms"] / 1000, ".2f"),
                 fmt(tx, ".2f"), fmt(r["done_ms"] and r["done_ms"] / 1000, ".2f"),
                 fmt(r["down_ms"], ".1f"), fmt(r["iops"], ".0f"),
                 fmt(ix, ".2f"), fmt(r["p99"], ".2f"), fmt(r["bytes"] and r["bytes"] / MIB, ".0f"),
                 fmt(r["passes"], ".0f"), fmt(r["throttles"], ".0f"),
                 "guest wrote %s MiB, %s" % (fmt(r["guest_bytes"] and r["guest_bytes"] / MIB, ".0f"),
                                             r["note"])))


def print_medians(sums, p):
    print("\nmedians of %d run(s)" % p["runs"])
    print("%-22s %8s %8s %7s %11s %9s %8s %9s %10s %6s %15s  %s"
          % ("contender", "total s", "x idle", "done s", "downtime ms", "IOPS", "x idle", "p99 ms",
             "sent MiB", "passes", "COMMIT-flip ms", "downtime of each run, ms"))
    for s in sums:
        print("%-22s %8s %8s %7s %11s %9s %8s %9s %10s %6s %15s  %s"
              % (s["c"], fmt(s["total_ms"] and s["total_ms"] / 1000, ".2f"),
                 fmt(s["total_x"], ".2f"), fmt(s["done_ms"] and s["done_ms"] / 1000, ".2f"),
                 fmt(s["down_ms"], ".1f"), fmt(s["iops"], ".0f"),
                 fmt(s["iops_x"], ".2f"), fmt(s["p99"], ".2f"),
                 fmt(s["bytes"] and s["bytes"] / MIB, ".0f"), fmt(s["passes"], ".0f"),
                 fmt(s["after_ms"], ".0f"), " / ".join(fmt(d, ".1f") for d in s["downs"])))
    # Each mode's forward flip against its fence flip (issue 11).
    by = {s["c"]: s for s in sums}
    for s in sums:
        if s["c"].endswith("-forward") and s["c"][:-8] + "-fence" in by:
            fence = by[s["c"][:-8] + "-fence"]
            if s["down_ms"] is not None and fence["down_ms"] is not None:
                d = s["down_ms"] - fence["down_ms"]
                print("%s: forward minus fence, median downtime: %+.1f ms "
                      "(target: at most +10 ms: %s)"
                      % (s["c"][:-8], d, "met" if d <= 10 else "NOT met"))


def print_markdown(sums, p):
    print("\nmarkdown, for docs/performance.md:\n")
    print("%d MiB, images %s, fio 4k random writes iodepth 8 %s, TLS 1.3 (PSK), "
          "flip %s, %s, medians of %d run(s). Idle full pass %.2f s (%s s to done); idle guest "
          "%.0f IOPS, p99 %.2f ms. Total: the whole process; to done: stm-send's start "
          "to done event."
          % (p["size_mib"], p["store"], p["guest"], p["flip"], p["mirror"], p["runs"],
             p["idle_ms"] / 1000, fmt(p["idle_done_ms"] and p["idle_done_ms"] / 1000, ".2f"),
             p["idle_iops"], p["idle_p99"]))
    print()
    print("| contender | total s | x idle pass | to done s | x idle | downtime ms | guest write IOPS | x idle IOPS "
          "| p99 write ms | sent MiB | x image | guest wrote MiB | passes | throttled "
          "| destination |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sums:
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
              % (s["c"], fmt(s["total_ms"] and s["total_ms"] / 1000, ".2f"),
                 fmt(s["total_x"], ".2f"), fmt(s["done_ms"] and s["done_ms"] / 1000, ".2f"),
                 fmt(s["done_x"], ".2f"), fmt(s["down_ms"], ".1f"), fmt(s["iops"], ".0f"),
                 fmt(s["iops_x"], ".2f"), fmt(s["p99"], ".2f"),
                 fmt(s["bytes"] and s["bytes"] / MIB, ".0f"), fmt(s["sent_x"], ".2f"),
                 fmt(s["guest_bytes"] and s["guest_bytes"] / MIB, ".0f"),
                 fmt(s["passes"], ".0f"), s["throttled"], s["dest"]))


def print_targets(sums, p):
    mirrors = [s for s in sums if s["c"].startswith("stm-mirror")]
    if not mirrors:
        return
    wb = next((s for s in sums if s["c"] == "qemu-write-blocking"), None)
    print("\nissue 13's targets (medians; bytes in every run):")
    for s in mirrors:
        def mark(ok):
            return "met" if ok else "NOT met"
        items = [
            "total %s x idle pass (<= %.1f: %s)" % (fmt(s["total_x"], ".2f"), TARGET_TOTAL_X,
                                                     mark(s["total_x"] is not None and
                                                          s["total_x"] <= TARGET_TOTAL_X)),
            "to done %s x idle pass's" % fmt(s["done_x"], ".2f"),
            "IOPS %s x idle (>= %.1f: %s)" % (fmt(s["iops_x"], ".2f"), TARGET_IOPS_X,
                                               mark(s["iops_x"] is not None and
                                                    s["iops_x"] >= TARGET_IOPS_X)),
            "downtime %s ms (<= %.0f: %s)" % (fmt(s["down_ms"], ".1f"), TARGET_DOWNTIME_MS,
                                               mark(s["down_ms"] is not None and
                                                    s["down_ms"] <= TARGET_DOWNTIME_MS)),
            "sent <= image + guest writes: %s" % mark(s["bytes_ok"]),
            "throttled: %s" % s["throttled"],
            "destination: %s" % s["dest"],
        ]
        if wb and wb["total_ms"] and s["total_ms"]:
            items.append("total / qemu-write-blocking's %.2f (moonshot <= 1)"
                         % (s["total_ms"] / wb["total_ms"]))
        print("  %s: %s" % (s["c"], "; ".join(items)))


def main():
    runs = load(sys.argv[1])
    kv = dict(a.split("=", 1) for a in sys.argv[2:])
    p = {
        "size_mib": int(kv["size_mib"]), "runs": int(kv["runs"]), "flip": kv["flip"],
        "guest": kv["guest"], "store": kv["store"], "mirror": kv.get("mirror", "?"), "machine": kv.get("machine", "?"),
        "idle_ms": float(kv["idle_ms"]), "idle_done_ms": num(kv.get("idle_done_ms", "-")), "idle_bytes": float(kv["idle_bytes"]),
        "idle_iops": float(kv["idle_iops"]), "idle_p99": float(kv["idle_p99"]),
        "idle_seconds": kv["idle_seconds"],
    }
    p["size"] = p["size_mib"] * MIB
    names = []
    for r in runs:
        if r["c"] not in names:
            names.append(r["c"])
    sums = [summarize(n, [r for r in runs if r["c"] == n], p) for n in names]
    print_runs(runs, p)
    print_medians(sums, p)
    print_markdown(sums, p)
    print_targets(sums, p)


if __name__ == "__main__":
    main()
