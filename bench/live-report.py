#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark helper (bench/live.sh): print the live benchmark's results,
# a table of every run, the medians of each contender with their ratios to
# the idle baselines (as text and as a markdown table to paste into
# docs/performance.md), and each stm mirror contender against issue 13's
# targets.  It also counts, for live.sh, the guest's writes in a window
# of fio's per-I/O latency log.
#
#   live-report.py RESULTS.tsv KEY=VALUE...
#   live-report.py window LOG FROM_MS TO_MS
#   live-report.py window LOG idle SKIP_MS
#
# RESULTS.tsv has one line per run, tab-separated: contender, run,
# total ms, downtime ms, guest write IOPS and p99 write ms over fio's whole
# run (its JSON), bytes sent, bytes the guest wrote, passes, throttle steps
# (both "-" for QEMU), destination check, fio's report lost (1/0),
# COMMIT-to-flip ms ("-" if unknown), note, stm-send's start-to-done ms
# ("-" for QEMU), then the guest over the migration window: write IOPS,
# p99 write ms, writes completed, the window's length in ms ("-" each when
# fio left no log).
# The KEY=VALUE pairs describe the invocation: size_mib, runs, flip,
# guest, store, mirror (the mirror contenders' options), idle_ms,
# idle_done_ms, idle_bytes, idle_iops and idle_p99 (the idle guest after
# its first 0.5 s, from its log), idle_run_iops and idle_run_p99 (its
# whole run, from its JSON), idle_seconds, machine.
#
# The window form reads LOG, fio's per-I/O completion latency log
# (--write_lat_log with --log_avg_msec=0 and --log_unix_epoch=1: lines
# "time, clat, direction, block size, priority", the time in Unix ms, clat
# in ns), as a stream, and prints the write IOPS, p99 write latency in ms,
# writes and window length in ms of the writes completed from FROM_MS to
# TO_MS (Unix ms, both included), or, with idle, from the first
# completion plus SKIP_MS to the last completion.  The p99 comes from a
# histogram of latencies rounded to 3 significant digits (within 0.5%),
# so that memory stays bounded whatever the log's length.
#
# "total" is the whole process's wall time (stm-send's run; QEMU's mirror
# start to its cutover's end), "done" stm-send's own start-to-done time
# from its done event: the two differ by what stm-send does after done
# (closing its connections).
import math
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


def bucket(ns):
    """ns rounded to 3 significant digits: a histogram key within 0.5%."""
    if ns < 1000:
        return ns
    scale = 10 ** (len(str(ns)) - 3)
    return (ns + scale // 2) // scale * scale


def percentile(hist, n, q):
    """The smallest key of hist (key: count) with at least q of the n
    samples at or below it, as fio reports its percentiles."""
    rank = max(1, math.ceil(q * n))
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return key
    return None


def window(path, first, second):
    """The writes of fio's per-I/O log path completed in a window: from
    first to second (Unix ms), or with first "idle" from the first
    completion plus second ms to the last completion.  Returns (IOPS, p99
    ms, writes, window ms), None for the figures there are not."""
    idle = first == "idle"
    start = None if idle else int(first)
    end = None if idle else int(second)
    hist = {}
    n = 0
    last = None
    with open(path) as log:
        for line in log:
            f = line.split(",")
            if len(f) < 3 or f[2].strip() != "1":       # writes only
                continue
            t = int(f[0])
            if idle and start is None:
                start = t + int(second)
            if t < start or (end is not None and t > end):
                continue
            key = bucket(int(f[1]))
            hist[key] = hist.get(key, 0) + 1
            n += 1
            last = t
    if idle:
        end = last
    if start is None or end is None or end <= start:
        return None, None, n, None
    ms = end - start
    p99 = percentile(hist, n, 0.99)
    return n / (ms / 1000), (p99 / 1e6 if p99 is not None else None), n, ms


def load(path):
    runs = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 19:
            continue
        runs.append({
            "c": f[0], "run": int(f[1]), "total_ms": num(f[2]), "down_ms": num(f[3]),
            "run_iops": num(f[4]), "run_p99": num(f[5]), "bytes": num(f[6]),
            "guest_bytes": num(f[7]), "passes": num(f[8]), "throttles": num(f[9]),
            "check": f[10], "fio_lost": f[11] == "1", "after_ms": num(f[12]),
            "note": f[13], "done_ms": num(f[14]),
            "iops": num(f[15]), "p99": num(f[16]), "writes": num(f[17]), "win_ms": num(f[18]),
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
        "iops": median(r["iops"] for r in rs),
        "p99": median(r["p99"] for r in rs),
        "run_iops": median(r["run_iops"] for r in kept),
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


WINDOW_NOTE = ("IOPS, p99, writes: the guest's writes completed within the migration window "
               "(the contender's total: stm-send's run; QEMU's mirror start to its cutover's "
               "end), against the idle guest's after its first 0.5 s; run IOPS: fio's whole run (its JSON), which adds the second before the "
               "migration at full speed; fio's whole-run p99 is left out")


def print_runs(runs, p):
    print("\n%d MiB image, fio 4k random writes iodepth 8 %s, flip %s, images %s"
          % (p["size_mib"], p["guest"], p["flip"], p["store"]))
    print("machine: %s" % p["machine"])
    print("mirror contenders: %s" % p["mirror"])
    print("idle full pass (stm, no guest): %.2f s (%s s to done), %.0f MiB sent; idle guest "
          "(fio alone %s s through the filter, after its first 0.5 s): %.0f IOPS, p99 %.2f ms "
          "(whole run: %.0f IOPS, p99 %.2f ms)"
          % (p["idle_ms"] / 1000, fmt(p["idle_done_ms"] and p["idle_done_ms"] / 1000, ".2f"),
             p["idle_bytes"] / MIB, p["idle_seconds"], p["idle_iops"], p["idle_p99"],
             p["idle_run_iops"], p["idle_run_p99"]))
    print(WINDOW_NOTE)
    print("%-22s %4s %8s %8s %7s %11s %9s %8s %9s %8s %9s %10s %6s %9s  %s"
          % ("contender", "run", "total s", "x idle", "done s", "downtime ms", "IOPS", "x idle",
             "p99 ms", "writes", "run IOPS", "sent MiB", "passes", "throttle", "notes"))
    for r in runs:
        if r["fio_lost"]:
            # No report from fio: its figures are unknown, not zero.
            r = dict(r, run_iops=None, guest_bytes=None)
        tx = r["total_ms"] / p["idle_ms"] if r["total_ms"] and p["idle_ms"] else None
        ix = r["iops"] / p["idle_iops"] if r["iops"] is not None and p["idle_iops"] else None
        print("%-22s %4d %8s %8s %7s %11s %9s %8s %9s %8s %9s %10s %6s %9s  %s"
              % (r["c"], r["run"], fmt(r["total_ms"] and r["total_ms"] / 1000, ".2f"),
                 fmt(tx, ".2f"), fmt(r["done_ms"] and r["done_ms"] / 1000, ".2f"),
                 fmt(r["down_ms"], ".1f"), fmt(r["iops"], ".0f"),
                 fmt(ix, ".2f"), fmt(r["p99"], ".2f"), fmt(r["writes"], ".0f"),
                 fmt(r["run_iops"], ".0f"), fmt(r["bytes"] and r["bytes"] / MIB, ".0f"),
                 fmt(r["passes"], ".0f"), fmt(r["throttles"], ".0f"),
                 "window %s s, guest wrote %s MiB in its whole run, %s"
                 % (fmt(r["win_ms"] and r["win_ms"] / 1000, ".2f"),
                    fmt(r["guest_bytes"] and r["guest_bytes"] / MIB, ".0f"), r["note"])))


def print_medians(sums, p):
    print("\nmedians of %d run(s); IOPS and p99 over the migration window, run IOPS over "
          "fio's whole run" % p["runs"])
    print("%-22s %8s %8s %7s %11s %9s %8s %9s %9s %10s %6s %15s  %s"
          % ("contender", "total s", "x idle", "done s", "downtime ms", "IOPS", "x idle", "p99 ms",
             "run IOPS", "sent MiB", "passes", "COMMIT-flip ms", "downtime of each run, ms"))
    for s in sums:
        print("%-22s %8s %8s %7s %11s %9s %8s %9s %9s %10s %6s %15s  %s"
              % (s["c"], fmt(s["total_ms"] and s["total_ms"] / 1000, ".2f"),
                 fmt(s["total_x"], ".2f"), fmt(s["done_ms"] and s["done_ms"] / 1000, ".2f"),
                 fmt(s["down_ms"], ".1f"), fmt(s["iops"], ".0f"),
                 fmt(s["iops_x"], ".2f"), fmt(s["p99"], ".2f"), fmt(s["run_iops"], ".0f"),
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
          "%.0f IOPS, p99 %.2f ms (after its first 0.5 s). Total: the whole process; to done: "
          "stm-send's start to done event. Guest write IOPS and p99: the writes completed "
          "within the migration window (the contender's total), from fio's "
          "per-I/O log; fio's figures over its whole run, which add the second before the "
          "migration, are left out. Guest wrote: its whole run."
          % (p["size_mib"], p["store"], p["guest"], p["flip"], p["mirror"], p["runs"],
             p["idle_ms"] / 1000, fmt(p["idle_done_ms"] and p["idle_done_ms"] / 1000, ".2f"),
             p["idle_iops"], p["idle_p99"]))
    print()
    print("| contender | total s | x idle pass | to done s | x idle | downtime ms "
          "| guest write IOPS (migration) | x idle IOPS | p99 write ms (migration) "
          "| sent MiB | x image | guest wrote MiB | passes | throttled | destination |")
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
            "IOPS over the migration %s x idle (>= %.1f: %s)"
            % (fmt(s["iops_x"], ".2f"), TARGET_IOPS_X,
               mark(s["iops_x"] is not None and s["iops_x"] >= TARGET_IOPS_X)),
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
    if len(sys.argv) == 5 and sys.argv[1] == "window":
        iops, p99, n, ms = window(sys.argv[2], sys.argv[3], sys.argv[4])
        print("%s %s %d %s" % (fmt(iops, ".0f"), fmt(p99, ".3f"), n, fmt(ms, ".0f")))
        return
    runs = load(sys.argv[1])
    kv = dict(a.split("=", 1) for a in sys.argv[2:])
    p = {
        "size_mib": int(kv["size_mib"]), "runs": int(kv["runs"]), "flip": kv["flip"],
        "guest": kv["guest"], "store": kv["store"], "mirror": kv.get("mirror", "?"), "machine": kv.get("machine", "?"),
        "idle_ms": float(kv["idle_ms"]), "idle_done_ms": num(kv.get("idle_done_ms", "-")), "idle_bytes": float(kv["idle_bytes"]),
        "idle_iops": float(kv["idle_iops"]), "idle_p99": float(kv["idle_p99"]),
        "idle_run_iops": float(kv["idle_run_iops"]), "idle_run_p99": float(kv["idle_run_p99"]),
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
