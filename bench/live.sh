#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: live migration under a writing guest, stm's convergence
# modes against QEMU's mirror job, side by side in one run, each set
# against the same image's idle full pass and the idle guest.
#
#   bench/live.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# The guest stand-in is fio's nbd engine doing 4k random writes at
# iodepth 8 over the whole image (see /work/shared/anchors.md),
# unthrottled unless RATE is set.
# It starts one second before each migration and is stopped (SIGINT) as
# soon as the migration has ended.  Its IOPS and p99 write latency are
# taken over the migration window only: fio logs every write's completion
# time and latency, and the report counts the writes completed within the
# contender's total (stm: from just before stm-send starts to just after
# it exits; QEMU: from blockdev-mirror to the cutover's end), so that a
# guest stalled by the migration is not hidden by its first second at
# full speed.  IOPS: those writes
# divided by the window's length; p99: of those writes' completion
# latencies (a write still held when the window closes is not counted).
# fio's own figures over its whole run are kept as "run IOPS".
#
# Baselines, measured once per invocation (one image size, one STORE),
# before the contenders:
#   idle full pass       an stm migration of the same image with no guest
#                        writing (nbdkit --filter=migrate, stm-send
#                        --tls-psk into stm-recv, fence flip): stm-send's
#                        whole run, destination compared (cmp)
#   idle guest           fio alone for IDLE_SECONDS against the filter's
#                        export, no migration: its IOPS and p99 over its
#                        run from its first completion plus 0.5 s to its
#                        last completion
# Every contender's total is given as a multiple of the idle full pass,
# and its guest IOPS as a multiple of the idle guest's.
#
# Contenders:
#   stm-throttle         nbdkit --filter=migrate file src.img; stm-send
#                        --tls-psk (TLS 1.3) into stm-recv with today's
#                        convergence (--converge throttle, the default)
#   stm-mirror           the same with --converge mirror (every guest
#                        write queued to the destination, acknowledged
#                        once queued)
#   stm-mirror-sync      the same with --converge mirror-sync
#                        (acknowledged once durable on the destination)
#   qemu-background      qemu-storage-daemon blockdev-mirror
#                        copy-mode=background into a plain nbdkit
#   qemu-write-blocking  the same with copy-mode=write-blocking
# Every stm contender flips with --flip fence, or with FLIP=forward with
# a forward flip (stm-recv --export: the guest keeps writing through it);
# with FLIP=both each runs both, one after the other (stm-MODE-fence,
# stm-MODE-forward), and each mode's median forward downtime minus its
# fence downtime is printed (issue 11: at most 10 ms).
#
# Measured: total (stm: stm-send's whole run, as a process; QEMU: mirror
# start to BLOCK_JOB_COMPLETED after block-job-cancel), for stm also its
# own time from its start event to its done event ("done": what it does
# after done, closing its connections, is the difference), downtime (stm: guest
# writes held, as the filter measures it; QEMU: block-job-cancel to
# COMPLETED, which drains guest I/O), guest write IOPS and p99 write
# latency over the migration window (fio's per-I/O log), fio's IOPS over
# its whole run and the bytes it wrote (fio's JSON), bytes sent (stm: the
# done event's bytes_sent; QEMU: bytes written to the target, from
# nbdkit's stats filter), and for stm the passes, whether it throttled the
# guest (any throttle event) and the mirror records and bytes.  With the fence flip,
# every stm run's destination is compared with the fenced source (cmp): a
# difference fails the benchmark.  A QEMU job that is not READY within
# READY_TIMEOUT seconds is cancelled and reported as not converged; one
# whose cancel (QEMU's cutover) has not completed within CUTOVER_TIMEOUT
# seconds is force-cancelled and reported so, its times lower bounds.
#
# Storage (STORE):
#   disk    (default) the images in BENCH_DIR (default /var/tmp), a
#           directory on a disk file system (ext4 on the machine's virtio
#           disk here; a tmpfs there is refused).  Writes go to the page
#           cache and the kernel writes them back; an fdatasync (stm-recv
#           at each SYNC and at COMMIT, nbdkit's flush for QEMU's target)
#           waits for the disk.  Nothing drops the caches first.
#   tmpfs   the images in memory only: under /dev/shm, or, when BENCH_DIR
#           is set to a directory that is not a tmpfs, in a tmpfs mounted
#           in the run's directory there (root needed; unmounted at the
#           end).  fdatasync returns at once.
#
# After the runs: a table of every run, one of the medians of each
# contender (with the ratios to the baselines), the same medians as a
# markdown table, and each stm mirror contender against issue 13's
# targets.  bench/live-report.py prints them.
#
# Every run's stm-send events, fio report and QEMU timings are copied to
# send-MODE-FLIP-RUN.json, fio-...json, qemu-...json in the run's
# directory, kept with KEEP=1, as are fio's per-I/O latency logs
# (lat-MODE-FLIP-RUN.log, lat-qemu-MODE-RUN.log, lat-idle.log); without
# KEEP each log is deleted as soon as its window is counted (about 3 MB
# a second of guest at 100k IOPS).
#
# Environment: SIZE_MIB (default 512; 2048 for issue 13's second size),
# RUNS (default 1), STORE (disk or tmpfs), FLIP (fence, forward or both),
# RATE (the guest's write rate, fio's --rate, e.g. 20m for 20 MiB/s;
# default unthrottled), IDLE_SECONDS (the idle guest's fio, default 6),
# MIRROR_RING and MIRROR_WAIT (stm-send's --mirror-ring and --mirror-wait
# for the mirror contenders; default stm-send's), READY_TIMEOUT and
# CUTOVER_TIMEOUT (default 120 each), SKIP (contenders to leave out;
# "stm" is stm-throttle, "stm-fence" and "stm-forward" are
# stm-throttle-fence and stm-throttle-forward), MIGRATE_BLOCK (the
# filter's migrate-block for stm, default the filter's 64K), BENCH_DIR,
# KEEP.
#
# For example (about 3-4 minutes each for 512 MiB on 2 cores, more when
# QEMU's background mirror is slow to converge):
#   RUNS=1 SIZE_MIB=512 bench/live.sh _build
#   RUNS=1 SIZE_MIB=512 STORE=tmpfs bench/live.sh _build
#   RUNS=1 SIZE_MIB=2048 bench/live.sh _build
_live_runs="${RUNS:-1}"
STORE="${STORE:-disk}"
case "$STORE" in
    disk) BENCH_DIR="${BENCH_DIR:-/var/tmp}" ;;
    tmpfs) ;;
    *) echo "live: STORE must be disk or tmpfs" >&2; exit 2 ;;
esac
source "$(dirname "$0")/bench-lib.sh"

SIZE_MIB="${SIZE_MIB:-512}"
RUNS="$_live_runs"
FLIP="${FLIP:-fence}"
RATE="${RATE:-}"
IDLE_SECONDS="${IDLE_SECONDS:-6}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
CUTOVER_TIMEOUT="${CUTOVER_TIMEOUT:-120}"
SKIP=" ${SKIP:-} "
need nbdkit; need fio; need psktool; need python3; need cmp

# img: where the images go, per STORE.
img="$tmp"
if [ "$STORE" = disk ]; then
    [ "$(fs_type "$tmp")" != tmpfs ] ||
        die "STORE=disk but $BENCH_DIR is a tmpfs: set BENCH_DIR to a directory on disk"
elif [ "$(fs_type "$tmp")" != tmpfs ]; then
    # Three images (the original, the source, the destination) and slack.
    mount_tmpfs "$tmp/store" $(( SIZE_MIB * 3 + 256 ))
    img="$tmp/store"
fi
# What the images sit on, for the report: "on disk (ext4 on /dev/vda,
# /var/tmp/stm-bench.X)" or "in tmpfs (...)".
fs_desc="$(findmnt -n -o FSTYPE,SOURCE -T "$img" 2>/dev/null | awk '{ print $1 " on " $2 }')"
[ -n "$fs_desc" ] || fs_desc="$(fs_type "$img")"
if [ "$STORE" = disk ]; then
    store_desc="on disk ($fs_desc, $img)"
else
    store_desc="in tmpfs (the page cache only: $img)"
fi

case "$FLIP" in
    fence|forward) flips="$FLIP" ;;
    both) flips="fence forward" ;;
    *) die "FLIP must be fence, forward or both" ;;
esac

# skipped NAME: whether SKIP names the contender NAME, by its name, its
# name without the flip, or its name from before the mirror modes (stm,
# stm-fence, stm-forward for stm-throttle...).
skipped ()
{
    local base="${1%-fence}"; base="${base%-forward}"
    local n
    for n in "$1" "$base" "${1/stm-throttle/stm}" "${base/stm-throttle/stm}"; do
        case "$SKIP" in *" $n "*) return 0 ;; esac
    done
    return 1
}

contenders=()
for mode in throttle mirror mirror-sync; do
    for f in $flips; do
        c="stm-$mode"
        [ "$FLIP" = both ] && c="$c-$f"
        skipped "$c" || contenders+=("$c")
    done
done
for c in qemu-background qemu-write-blocking; do
    skipped "$c" || contenders+=("$c")
done
[ "${#contenders[@]}" -gt 0 ] || die "SKIP leaves no contender"
# QEMU is needed only when one of its contenders runs.
case " ${contenders[*]} " in *" qemu-"*) need qemu-storage-daemon ;; esac

note "build $build; $RUNS run(s) of $SIZE_MIB MiB; images: $store_desc"
make_random "$img/orig.img" "$SIZE_MIB"
make_psk "$tmp/keys.psk"

# fio_guest URI OUTPUT RUNTIME: fio's arguments for the guest stand-in.
# Besides its JSON report, fio logs every write's completion in
# $tmp/lat_clat.1.log (see window_guest): one line per I/O, "time, clat,
# direction, block size, priority", the time in Unix ms (--log_unix_epoch),
# the completion latency in ns (fio 3.33).  The total and submission
# latency logs are not wanted, so those measurements are off.
fio_guest ()
{
    rm -f "$tmp/lat_clat.1.log"
    FIO_ARGS=(fio --thread --name=guest --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k
              --iodepth=8 --size="${SIZE_MIB}m" ${RATE:+--rate="$RATE"} --time_based
              --runtime="$3" --output-format=json --output="$2"
              --write_lat_log="$tmp/lat" --log_avg_msec=0 --log_unix_epoch=1
              --disable_lat=1 --disable_slat=1)
}

# window_guest FROM_MS TO_MS NAME: the guest's writes completed from
# FROM_MS to TO_MS (Unix ms; "idle" and a skip in ms instead: from the
# first completion plus the skip to the last), from fio's per-I/O log:
# sets WIN_IOPS, WIN_P99 (ms), WIN_WRITES, WIN_MS ("-" each, and 0
# writes, when fio left no log).  The log is then kept as
# lat-NAME.log with KEEP=1, else deleted: at 100k IOPS it grows by
# about 3 MB a second.
window_guest ()
{
    local log="$tmp/lat_clat.1.log"
    WIN_IOPS=- WIN_P99=- WIN_WRITES=0 WIN_MS=-
    if [ -f "$log" ]; then
        read -r WIN_IOPS WIN_P99 WIN_WRITES WIN_MS < <(
            python3 "$srcdir/bench/live-report.py" window "$log" "$1" "$2") ||
            die "could not read the guest's latency log $log (window $1 to $2)"
        if [ -n "${KEEP:-}" ]; then mv "$log" "$tmp/lat-$3.log"; else rm -f "$log"; fi
    else
        note "fio left no latency log ($log): no guest figures over the window of $3"
    fi
}

# parse_fio FILE: sets IOPS, P99_MS, GUEST_BYTES (bytes written), FIO_ERR
# from fio's JSON report FILE; FIO_LOST=1 (and zeros) if there is none or
# it does not parse.
parse_fio ()
{
    FIO_LOST=0
    if grep -q '{' "$1" 2>/dev/null &&
       read -r IOPS P99_MS GUEST_BYTES FIO_ERR < <(python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
d = json.loads(text[text.index("{"):])
j = d["jobs"][0]
w = j["write"]
p99 = w["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1e6
print("%.0f %.2f %d %d" % (w["iops"], p99, w["io_bytes"], j["error"]))
PY
       ); then
        return 0
    fi
    IOPS=0 P99_MS=0 GUEST_BYTES=0 FIO_ERR=-1 FIO_LOST=1
}

# start_guest URI: fio writing through URI; sets FIO_PID.
start_guest ()
{
    rm -f "$tmp/fio.json"
    fio_guest "$1" "$tmp/fio.json" 900
    spawn "$tmp/fio.log" "${FIO_ARGS[@]}"
    FIO_PID=$SPAWNED
    sleep 1
    kill -0 "$FIO_PID" 2>/dev/null || { cat "$tmp/fio.log" >&2; die "fio exited at start"; }
}

# stop_guest: SIGINT (fio then writes its report), wait, parse_fio.
# After the fenced source fails its writes, fio's nbd engine sometimes
# hangs (and is killed without a report) or crashes (leaving a report
# that does not parse): then FIO_LOST=1 and the run's whole-run figures
# are left out of the medians; its figures over the window come from
# fio's latency log, if fio lived to write it.
stop_guest ()
{
    local i
    kill -INT "$FIO_PID" 2>/dev/null
    for (( i = 0; i < 300; i++ )); do kill -0 "$FIO_PID" 2>/dev/null || break; sleep 0.1; done
    stop "$FIO_PID"
    parse_fio "$tmp/fio.json"
    [ "$FIO_LOST" = 0 ] || note "fio left no usable report (see $tmp/fio.log, $tmp/fio.json)"
}

# idle_guest URI: fio alone for IDLE_SECONDS through URI; sets IOPS,
# P99_MS from its report and the WIN_ figures from its log, minus its
# first 0.5 s (the benchmark fails without either).
idle_guest ()
{
    rm -f "$tmp/fio-idle.json"
    fio_guest "$1" "$tmp/fio-idle.json" "$IDLE_SECONDS"
    "${FIO_ARGS[@]}" >"$tmp/fio-idle.log" 2>&1 </dev/null ||
        { cat "$tmp/fio-idle.log" >&2; die "the idle guest's fio failed on $1"; }
    parse_fio "$tmp/fio-idle.json"
    [ "$FIO_LOST" = 0 ] || die "the idle guest's fio left no usable report ($tmp/fio-idle.json)"
    # Its first half second (connecting, filling the queue) is left out.
    window_guest idle 500 idle
    [ "$WIN_WRITES" -gt 0 ] || die "the idle guest's latency log has no write after its first 0.5 s"
}

# start_stm_recv FLIP: a fresh destination and stm-recv (with --export
# for a forward flip); sets RECV_PID, RECV_PORT.
start_stm_recv ()
{
    local extra=()
    rm -f "$img/dst.img" "$img/dst.img.stm-state"
    [ "$1" = forward ] && extra=(--export "127.0.0.1:$(free_port)")
    # A fresh log: start_recv reads the port from it.
    rm -f "$tmp/recv.log"
    start_recv "$img/dst.img" --tls-psk "$tmp/keys.psk" "${extra[@]}"
}

# stm_events FILE: from stm-send's --json output FILE, sets DOWN_MS,
# BYTES, PASSES, DONE_MS, THROTTLES, MIRROR (records/MiB/zero MiB, or empty), SPLIT
# (where the downtime went: from the last freeze to COMMIT sent, the final
# pass and its sync; the rest is the COMMIT round trip (the receiver's
# fdatasync and state file) and the FLIP (for a forward flip, the
# filter's switch to the export)) and AFTER_MS (that rest).
stm_events ()
{
    local done_line
    done_line="$(grep '"event":"done"' "$1" | tail -n 1)"
    DOWN_MS="$(grep '"event":"downtime"' "$1" | sed -n 's/.*"downtime_ms":\([0-9.]*\).*/\1/p' | tail -n 1)"
    DOWN_MS="${DOWN_MS:-0}"
    BYTES="$(grep -o '"bytes_sent":[0-9]*' <<< "$done_line" | head -n 1 | cut -d: -f2)"
    PASSES="$(grep -o '"passes":[0-9]*' <<< "$done_line" | cut -d: -f2)"
    # stm-send's own time from its start event to its done event: the
    # whole process's wall time also counts what it does after done.
    DONE_MS="$(grep -o '"seconds":[0-9.]*' <<< "$done_line" | tail -n 1 | cut -d: -f2 |
               awk '{ printf "%.0f", $1 * 1000 }')"
    DONE_MS="${DONE_MS:--}"
    THROTTLES="$(grep -c '"event":"throttle"' "$1" || true)"
    MIRROR="$(python3 - "$done_line" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
if "mirror_records" in d:
    print("%d/%.1f/%.1f" % (d["mirror_records"], d["mirror_bytes"] / 2**20,
                            d["mirror_zero_bytes"] / 2**20))
PY
    )"
    read -r SPLIT_BEFORE AFTER_MS < <(python3 - "$1" "$DOWN_MS" <<'PY'
import json, sys
ts = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") in ("freeze", "commit"):
        ts[e["event"]] = e["ts"]
if len(ts) == 2:
    before = (ts["commit"] - ts["freeze"]) * 1000
    # The event times have millisecond resolution: no negative rest.
    print("%.0f %.0f" % (before, max(0.0, float(sys.argv[2]) - before)))
else:
    print("- -")
PY
    )
    SPLIT=
    [ "$SPLIT_BEFORE" = - ] ||
        SPLIT="freeze to COMMIT $SPLIT_BEFORE ms, COMMIT to the flip $AFTER_MS ms"
}

# run_stm MODE FLIP [idle]: one stm migration with --converge MODE and
# --flip FLIP, under the guest unless idle.  Sets TOTAL_MS DOWN_MS BYTES
# PASSES THROTTLES MIRROR CHECK NOTE AFTER_MS, and IOPS P99_MS GUEST_BYTES
# FIO_LOST (zeros when idle) and the WIN_ figures over the migration,
# stm-send's run ("-" when idle).
run_stm ()
{
    local mode="$1" flip="$2" idle="${3:-}" rc=0 t0 t1 mopts=()
    cp "$img/orig.img" "$img/src.img"
    start_source file file="$img/src.img" ${MIGRATE_BLOCK:+migrate-block=$MIGRATE_BLOCK}
    start_stm_recv "$flip"
    case "$mode" in
        mirror|mirror-sync)
            mopts=(${MIRROR_RING:+--mirror-ring "$MIRROR_RING"}
                   ${MIRROR_WAIT:+--mirror-wait "$MIRROR_WAIT"}) ;;
    esac
    [ -n "$idle" ] || start_guest "$SRC_URI"
    t0=$(now_ms)
    "$STM_SEND" --source "$SRC_URI" --control "$SRC_CTL" --dest "127.0.0.1:$RECV_PORT" \
        --tls-psk "$tmp/keys.psk" --flip "$flip" --converge "$mode" ${mopts[@]+"${mopts[@]}"} \
        --json --no-progress >"$tmp/send.json" 2>"$tmp/send.log" </dev/null || rc=$?
    t1=$(now_ms)
    if [ -n "$idle" ]; then
        IOPS=0 P99_MS=0 GUEST_BYTES=0 FIO_ERR=0 FIO_LOST=0
        WIN_IOPS=- WIN_P99=- WIN_WRITES=0 WIN_MS=-
    else
        stop_guest
        window_guest "$t0" "$t1" "$mode-$flip-$RUN_TAG"
    fi
    [ "$rc" -eq 0 ] || { cat "$tmp/send.log" >&2; die "stm-send --converge $mode failed with status $rc"; }
    TOTAL_MS=$(( t1 - t0 ))
    stm_events "$tmp/send.json"
    if [ "$flip" = fence ]; then
        cmp -s "$img/src.img" "$img/dst.img" ||
            die "stm-$mode: the destination differs from the fenced source"
        CHECK="identical"
    else
        [ "$FIO_LOST" = 0 ] || die "stm-$mode: fio left no report after a forward flip"
        [ "$FIO_ERR" = 0 ] || die "stm-$mode: fio saw errors across the forward flip"
        CHECK="no guest errors"
        # Whether the filter's connection to the export was made before
        # the freeze (PRECONNECT) or inside it, as the flip event says.
        if grep '"event":"flip"' "$tmp/send.json" | grep -Eq '"preconnected":(true|1)'; then
            CHECK="$CHECK, preconnected"
        elif grep '"event":"flip"' "$tmp/send.json" | grep -Eq '"preconnected":(false|0)'; then
            CHECK="$CHECK, connected inside the freeze"
        fi
    fi
    stop "$RECV_PID"
    stop "$SRC_PID"
    # Each run's events and guest report stay in the run's directory (KEEP=1).
    cp "$tmp/send.json" "$tmp/send-$mode-$flip${idle:+-idle}-$RUN_TAG.json"
    [ -n "$idle" ] || cp "$tmp/fio.json" "$tmp/fio-$mode-$flip-$RUN_TAG.json" 2>/dev/null
    NOTE="$CHECK${MIRROR:+, mirror records/MiB/zero MiB $MIRROR}${SPLIT:+, $SPLIT}"
    [ "$FIO_LOST" = 0 ] || NOTE="$NOTE, fio's report lost"
}

# A QEMU contender (copy mode $1): sets TOTAL_MS DOWN_MS BYTES NOTE, and
# the guest's figures (the WIN_ ones over QEMU's total).
run_qemu ()
{
    local mode="$1" port t0 t1 rc line
    cp "$img/orig.img" "$img/src.img"
    rm -f "$img/dst.img" "$tmp/stats.txt" "$tmp/qmp.sock" "$tmp/exp.sock"
    truncate -s "${SIZE_MIB}M" "$img/dst.img"
    port="$(free_port)"
    start_nbdkit_target "$port" --filter=stats file "$img/dst.img" statsfile="$tmp/stats.txt"
    spawn "$tmp/qsd.log" qemu-storage-daemon \
        --blockdev driver=file,node-name=f0,filename="$img/src.img" \
        --blockdev driver=raw,node-name=src,file=f0 \
        --nbd-server addr.type=unix,addr.path="$tmp/exp.sock" \
        --export type=nbd,id=e0,node-name=src,name=,writable=on \
        --chardev socket,path="$tmp/qmp.sock",server=on,wait=off,id=c0 --monitor chardev=c0
    QSD_PID=$SPAWNED
    wait_file "$tmp/exp.sock" "$QSD_PID"
    wait_file "$tmp/qmp.sock" "$QSD_PID"
    start_guest "nbd+unix:///?socket=$tmp/exp.sock"
    # The guest's window is QEMU's total: from the mirror's start to the
    # cutover's end (or the forced cancel).  The driver measures it on its
    # own clock and prints it as soon as the cutover has ended, so the
    # window ends when its line arrives (unbuffered), and starts its
    # total_ms before: the driver's start-up, QMP handshake and
    # blockdev-add, with the guest at full speed, stay out of it.  (After
    # a cutover that timed out, the line follows the forced cancel's end,
    # and the window ends there.)
    python3 -u "$srcdir/bench/live-qemu-mirror.py" "$tmp/qmp.sock" "$port" "$mode" \
        "$READY_TIMEOUT" "$CUTOVER_TIMEOUT" 2>"$tmp/qemu.err" |
        { IFS= read -r line && { now_ms; printf '%s\n' "$line"; }; cat; } >"$tmp/qemu.out"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] ||
        { cat "$tmp/qemu.err" "$tmp/qsd.log" >&2; die "the QEMU mirror ($mode) failed with status $rc"; }
    t1="$(head -n 1 "$tmp/qemu.out")"
    sed 1d "$tmp/qemu.out" >"$tmp/qemu.json"
    stop_guest
    stop "$QSD_PID"
    stop "$TGT_PID"
    read -r TOTAL_MS DOWN_MS CONVERGED COMPLETED < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["total_ms"], d["cutover_ms"], "yes" if d["converged"] else "no",
      "yes" if d["completed"] else "no")' "$tmp/qemu.json")
    BYTES="$(python3 -c '
import re, sys
m = re.search(r"^write: \d+ ops, [0-9.]+ s, ([0-9.]+) (B|KiB|MiB|GiB|TiB)", open(sys.argv[1]).read(), re.M)
units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
print(int(float(m.group(1)) * units[m.group(2)]) if m else 0)' "$tmp/stats.txt")"
    PASSES=- THROTTLES=- CHECK="not checked" AFTER_MS=- DONE_MS=-
    t0=$(( t1 - ${TOTAL_MS%.*} ))
    window_guest "$t0" "$t1" "qemu-$mode-$RUN_TAG"
    cp "$tmp/qemu.json" "$tmp/qemu-$mode-$RUN_TAG.json"
    cp "$tmp/fio.json" "$tmp/fio-qemu-$mode-$RUN_TAG.json" 2>/dev/null
    NOTE="converged: $CONVERGED"
    [ "$COMPLETED" = yes ] ||
        NOTE="$NOTE; cutover not done after ${CUTOVER_TIMEOUT} s (force-cancelled; times are lower bounds)"
    [ "$FIO_LOST" = 0 ] || NOTE="$NOTE, fio's report lost"
}

# The baselines.  The idle guest writes to the filter's export with no
# migration (a fresh copy of the image, as for every contender); the idle
# full pass follows, on a fresh copy again.
# Other work on the machine moves every figure: the report gives the load.
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
note "baseline: the idle guest (fio alone for ${IDLE_SECONDS} s through the filter)"
cp "$img/orig.img" "$img/src.img"
start_source file file="$img/src.img" ${MIGRATE_BLOCK:+migrate-block=$MIGRATE_BLOCK}
idle_guest "$SRC_URI"
stop "$SRC_PID"
IDLE_IOPS="$WIN_IOPS" IDLE_P99="$WIN_P99" IDLE_RUN_IOPS="$IOPS" IDLE_RUN_P99="$P99_MS"
note "baseline: the idle full pass (stm, no guest)"
RUN_TAG=0
run_stm throttle fence idle
IDLE_MS="$TOTAL_MS" IDLE_BYTES="$BYTES" IDLE_DONE_MS="$DONE_MS"
note "idle guest $IDLE_IOPS IOPS, p99 $IDLE_P99 ms (after its first 0.5 s; $IDLE_RUN_IOPS IOPS, p99 $IDLE_RUN_P99 ms over its whole run); idle full pass $IDLE_MS ms, $IDLE_BYTES bytes sent"

# One line per run for the report, tab-separated.
results="$tmp/results.tsv"
: >"$results"
for (( run = 1; run <= RUNS; run++ )); do
    for c in "${contenders[@]}"; do
        note "run $run: $c (${SIZE_MIB} MiB, $STORE)"
        RUN_TAG="$run"
        case "$c" in
            stm-*)
                rest="${c#stm-}"
                case "$rest" in
                    *-fence) flip=fence; mode="${rest%-fence}" ;;
                    *-forward) flip=forward; mode="${rest%-forward}" ;;
                    *) flip="$FLIP"; mode="$rest" ;;
                esac
                run_stm "$mode" "$flip" ;;
            qemu-background) run_qemu background ;;
            qemu-write-blocking) run_qemu write-blocking ;;
        esac
        printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
               "$c" "$run" "$TOTAL_MS" "$DOWN_MS" "$IOPS" "$P99_MS" "$BYTES" "$GUEST_BYTES" \
               "$PASSES" "$THROTTLES" "$CHECK" "$FIO_LOST" "$AFTER_MS" "$NOTE" "$DONE_MS" \
               "$WIN_IOPS" "$WIN_P99" "$WIN_WRITES" "$WIN_MS" >>"$results"
        note "$c: total $TOTAL_MS ms, downtime $DOWN_MS ms, over the migration $WIN_IOPS IOPS" \
             "($WIN_WRITES writes in $WIN_MS ms), p99 $WIN_P99 ms (fio's whole run $IOPS IOPS," \
             "p99 $P99_MS ms), sent $BYTES bytes, passes $PASSES, throttle steps $THROTTLES; $NOTE"
    done
done

guest_rate="unthrottled"
[ -n "$RATE" ] && guest_rate="at --rate=$RATE"
mirror_desc="stm-send's default mirror ring and wait"
[ -z "${MIRROR_RING:-}${MIRROR_WAIT:-}" ] ||
    mirror_desc="--mirror-ring ${MIRROR_RING:-(default)} --mirror-wait ${MIRROR_WAIT:-(default)}"
python3 "$srcdir/bench/live-report.py" "$results" \
    "size_mib=$SIZE_MIB" "runs=$RUNS" "flip=$FLIP" "guest=$guest_rate" \
    "store=$store_desc" "mirror=$mirror_desc" "idle_ms=$IDLE_MS" "idle_done_ms=$IDLE_DONE_MS" "idle_bytes=$IDLE_BYTES" \
    "idle_iops=$IDLE_IOPS" "idle_p99=$IDLE_P99" "idle_run_iops=$IDLE_RUN_IOPS" \
    "idle_run_p99=$IDLE_RUN_P99" "idle_seconds=$IDLE_SECONDS" \
    "machine=$(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r), load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" ||
    die "the report failed (the results are in $results; KEEP=1 keeps them)"
