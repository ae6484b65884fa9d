#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: live migration under a writing guest, stm against QEMU's
# mirror job, side by side in one run.
#
#   bench/live.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# The guest stand-in is fio's nbd engine doing 4k random writes at
# iodepth 8 over the whole image (see /work/shared/anchors.md),
# unthrottled unless RATE is set.
# It starts one second before each migration and is stopped (SIGINT) as
# soon as the migration has ended, so its IOPS and p99 write latency cover
# the migration (plus that first second, the same for every contender).
#
# Contenders:
#   stm                  nbdkit --filter=migrate file src.img; stm-send
#                        --tls-psk (TLS 1.3) into stm-recv; --flip fence
#                        (FLIP=forward: stm-recv --export and a forward
#                        flip, so the guest keeps writing through it)
#   stm-fence, stm-forward   with FLIP=both: both of those, in every run,
#                        one after the other, so their downtimes compare;
#                        the medians are followed by forward's downtime
#                        minus fence's (issue 11: at most 10 ms)
#   qemu-background      qemu-storage-daemon blockdev-mirror
#                        copy-mode=background into a plain nbdkit
#   qemu-write-blocking  the same with copy-mode=write-blocking
# Measured: total (stm: stm-send's run; QEMU: mirror start to
# BLOCK_JOB_COMPLETED after block-job-cancel), downtime (stm: guest
# writes held, as the filter measures it; QEMU: block-job-cancel to
# COMPLETED, which drains guest I/O), guest write IOPS and p99 write
# latency (fio's JSON), bytes sent (stm: its summary; QEMU: bytes written
# to the target, from nbdkit's stats filter).  With the fence flip, every
# stm run's destination is compared with the fenced source (cmp): a
# difference fails the benchmark.  A QEMU job that is not READY within
# READY_TIMEOUT seconds is cancelled and reported as not converged; one
# whose cancel (QEMU's cutover) has not completed within CUTOVER_TIMEOUT
# seconds is force-cancelled and reported so, its times lower bounds.
#
# After the runs, a table of every run and one of the medians of each
# contender over its runs.
#
# Environment: SIZE_MIB (default 512), RUNS (default 1), FLIP (fence,
# forward or both), RATE (the guest's write rate, fio's --rate, e.g. 20m
# for 20 MiB/s; default unthrottled), READY_TIMEOUT and CUTOVER_TIMEOUT
# (default 120 each), SKIP (contenders to leave out), MIGRATE_BLOCK (the
# filter's migrate-block for stm, default the filter's 64K), BENCH_DIR,
# KEEP.
_live_runs="${RUNS:-1}"
source "$(dirname "$0")/bench-lib.sh"

SIZE_MIB="${SIZE_MIB:-512}"
RUNS="$_live_runs"
FLIP="${FLIP:-fence}"
RATE="${RATE:-}"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
CUTOVER_TIMEOUT="${CUTOVER_TIMEOUT:-120}"
SKIP=" ${SKIP:-} "
need nbdkit; need fio; need psktool; need python3
# QEMU is needed only when one of its contenders runs.
for c in qemu-background qemu-write-blocking; do
    case "$SKIP" in *" $c "*) ;; *) need qemu-storage-daemon ;; esac
done
case "$FLIP" in
    fence|forward) stm_contenders="stm" ;;
    both) stm_contenders="stm-fence stm-forward" ;;
    *) die "FLIP must be fence, forward or both" ;;
esac

make_random "$tmp/orig.img" "$SIZE_MIB"
make_psk "$tmp/keys.psk"

# start_guest URI: fio writing through URI; sets FIO_PID.
start_guest ()
{
    rm -f "$tmp/fio.json"
    spawn "$tmp/fio.log" fio --thread --name=guest --ioengine=nbd --uri="$1" \
          --rw=randwrite --bs=4k --iodepth=8 --size="${SIZE_MIB}m" \
          ${RATE:+--rate="$RATE"} --time_based --runtime=900 --output-format=json --output="$tmp/fio.json"
    FIO_PID=$SPAWNED
    sleep 1
    kill -0 "$FIO_PID" 2>/dev/null || { cat "$tmp/fio.log" >&2; die "fio exited at start"; }
}

# stop_guest: SIGINT (fio then writes its report), wait; sets IOPS, P99_MS,
# FIO_ERR from the report.  After the fenced source fails its writes,
# fio's nbd engine sometimes hangs (and is killed without a report) or
# crashes (leaving a report that does not parse): then FIO_LOST=1 and
# IOPS, P99_MS are 0 (left out of the medians).
stop_guest ()
{
    local i
    FIO_LOST=0
    kill -INT "$FIO_PID" 2>/dev/null
    for (( i = 0; i < 300; i++ )); do kill -0 "$FIO_PID" 2>/dev/null || break; sleep 0.1; done
    stop "$FIO_PID"
    if ! grep -q '{' "$tmp/fio.json" 2>/dev/null; then
        note "fio was killed without a report (see $tmp/fio.log)"
        IOPS=0 P99_MS=0 FIO_ERR=-1 FIO_LOST=1
        return 0
    fi
    if ! read -r IOPS P99_MS FIO_ERR < <(python3 - "$tmp/fio.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
d = json.loads(text[text.index("{"):])
j = d["jobs"][0]
w = j["write"]
p99 = w["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1e6
print("%.0f %.2f %d" % (w["iops"], p99, j["error"]))
PY
    ); then
        note "fio's report $tmp/fio.json does not parse (see $tmp/fio.log)"
        IOPS=0 P99_MS=0 FIO_ERR=-1 FIO_LOST=1
    fi
}

# The stm contender, flipping $1 (fence or forward): sets TOTAL_MS
# DOWN_MS BYTES NOTE.
run_stm ()
{
    local flip="$1" export_port="" extra=() rc=0 t0 t1 i
    cp "$tmp/orig.img" "$tmp/src.img"
    rm -f "$tmp/dst.img" "$tmp/dst.img.stm-state"
    start_source file file="$tmp/src.img" ${MIGRATE_BLOCK:+migrate-block=$MIGRATE_BLOCK}
    if [ "$flip" = forward ]; then
        export_port="$(free_port)"
        extra=(--export "127.0.0.1:$export_port")
    fi
    # A fresh log: the port is read from it as soon as stm-recv writes it.
    rm -f "$tmp/recv.log"
    spawn "$tmp/recv.log" "$STM_RECV" --listen 127.0.0.1:0 --output "$tmp/dst.img" \
          --tls-psk "$tmp/keys.psk" --once "${extra[@]}"
    RECV_PID=$SPAWNED
    RECV_PORT=
    for (( i = 0; i < 600; i++ )); do
        RECV_PORT="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/recv.log" 2>/dev/null | head -n 1)"
        [ -n "$RECV_PORT" ] && break
        sleep 0.05
    done
    [ -n "$RECV_PORT" ] || die "stm-recv did not say its port"

    start_guest "$SRC_URI"
    t0=$(now_ms)
    "$STM_SEND" --source "$SRC_URI" --control "$SRC_CTL" --dest "127.0.0.1:$RECV_PORT" \
        --tls-psk "$tmp/keys.psk" --flip "$flip" --json --no-progress \
        >"$tmp/send.json" 2>"$tmp/send.log" </dev/null || rc=$?
    t1=$(now_ms)
    stop_guest
    [ "$rc" -eq 0 ] || { cat "$tmp/send.log" >&2; die "stm-send failed with status $rc"; }
    TOTAL_MS=$(( t1 - t0 ))
    DOWN_MS="$(grep '"event":"downtime"' "$tmp/send.json" | sed -n 's/.*"downtime_ms":\([0-9.]*\).*/\1/p')"
    BYTES="$(tail -n 1 "$tmp/send.json" | sed -n 's/.*"bytes_sent":\([0-9]*\).*/\1/p')"
    PASSES="$(tail -n 1 "$tmp/send.json" | sed -n 's/.*"passes":\([0-9]*\).*/\1/p')"
    THROTTLES="$(grep -c '"event":"throttle"' "$tmp/send.json" || true)"
    # Where the downtime went: from the last freeze to COMMIT sent (the
    # final pass and its sync), and the rest: the COMMIT round trip (the
    # receiver's fdatasync and state file, and before the export moved to
    # HELLO, for a forward flip, the start of its nbdkit) and the FLIP
    # (for a forward flip, the filter's connection to the export).
    SPLIT="$(python3 - "$tmp/send.json" "$DOWN_MS" <<'PY'
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
    print("freeze to COMMIT %.0f ms, COMMIT to the flip %.0f ms" %
          (before, max(0.0, float(sys.argv[2]) - before)))
PY
    )"
    if [ "$flip" = fence ]; then
        cmp -s "$tmp/src.img" "$tmp/dst.img" ||
            die "stm: the destination differs from the fenced source"
        CHECK="identical"
    else
        [ "$FIO_LOST" = 0 ] || die "stm: fio left no report after a forward flip"
        [ "$FIO_ERR" = 0 ] || die "stm: fio saw errors across the forward flip"
        CHECK="no guest errors"
        # Whether the filter's connection to the export was made before
        # the freeze (PRECONNECT) or inside it, if stm-send's flip event
        # says so.
        if grep '"event":"flip"' "$tmp/send.json" | grep -Eq '"preconnected":(true|1)'; then
            CHECK="$CHECK, preconnected"
        elif grep '"event":"flip"' "$tmp/send.json" | grep -Eq '"preconnected":(false|0)'; then
            CHECK="$CHECK, connected inside the freeze"
        fi
    fi
    stop "$RECV_PID"
    stop "$SRC_PID"
    NOTE="$PASSES passes, $THROTTLES throttle steps, $CHECK${SPLIT:+, $SPLIT}"
    [ "$FIO_LOST" = 0 ] || NOTE="$NOTE, fio's report lost"
}

# A QEMU contender (copy mode $1): sets TOTAL_MS DOWN_MS BYTES NOTE.
run_qemu ()
{
    local mode="$1" port
    cp "$tmp/orig.img" "$tmp/src.img"
    rm -f "$tmp/dst.img" "$tmp/stats.txt" "$tmp/qmp.sock" "$tmp/exp.sock"
    truncate -s "${SIZE_MIB}M" "$tmp/dst.img"
    port="$(free_port)"
    start_nbdkit_target "$port" --filter=stats file "$tmp/dst.img" statsfile="$tmp/stats.txt"
    spawn "$tmp/qsd.log" qemu-storage-daemon \
        --blockdev driver=file,node-name=f0,filename="$tmp/src.img" \
        --blockdev driver=raw,node-name=src,file=f0 \
        --nbd-server addr.type=unix,addr.path="$tmp/exp.sock" \
        --export type=nbd,id=e0,node-name=src,name=,writable=on \
        --chardev socket,path="$tmp/qmp.sock",server=on,wait=off,id=c0 --monitor chardev=c0
    QSD_PID=$SPAWNED
    wait_file "$tmp/exp.sock" "$QSD_PID"
    wait_file "$tmp/qmp.sock" "$QSD_PID"
    start_guest "nbd+unix:///?socket=$tmp/exp.sock"
    python3 "$srcdir/bench/live-qemu-mirror.py" "$tmp/qmp.sock" "$port" "$mode" \
        "$READY_TIMEOUT" "$CUTOVER_TIMEOUT" >"$tmp/qemu.json" 2>"$tmp/qemu.err" ||
        { cat "$tmp/qemu.err" "$tmp/qsd.log" >&2; die "the QEMU mirror ($mode) failed"; }
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
    NOTE="converged: $CONVERGED"
    [ "$COMPLETED" = yes ] ||
        NOTE="$NOTE; cutover not done after ${CUTOVER_TIMEOUT} s (force-cancelled; times are lower bounds)"
}

declare -a rows
# Each contender's figures over its runs, space-separated, for the medians.
declare -A all_total all_down all_iops all_p99 all_after
contenders=()
for c in $stm_contenders qemu-background qemu-write-blocking; do
    case "$SKIP" in *" $c "*) continue ;; esac
    contenders+=("$c")
done
for (( run = 1; run <= RUNS; run++ )); do
    for c in "${contenders[@]}"; do
        note "run $run: $c (${SIZE_MIB} MiB)"
        case "$c" in
            stm) run_stm "$FLIP" ;;
            stm-fence) run_stm fence ;;
            stm-forward) run_stm forward ;;
            qemu-background) run_qemu background ;;
            qemu-write-blocking) run_qemu write-blocking ;;
        esac
        rows+=("$(printf '%-20s %4d %9.2f %11.1f %9.0f %10.2f %9.0f  %s' "$c" "$run" \
                  "$(awk -v m="$TOTAL_MS" 'BEGIN { print m / 1000 }')" "$DOWN_MS" "$IOPS" \
                  "$P99_MS" "$(awk -v b="$BYTES" 'BEGIN { print b / 1048576 }')" "$NOTE")")
        note "${rows[-1]}"
        all_total[$c]+=" $TOTAL_MS"
        all_after[$c]+=" $(echo "$SPLIT" | sed -n 's/.*COMMIT to the flip \([0-9]*\) ms.*/\1/p')"
        all_down[$c]+=" $DOWN_MS"
        if [ "$FIO_LOST" = 0 ]; then
            all_iops[$c]+=" $IOPS"
            all_p99[$c]+=" $P99_MS"
        fi
    done
done

# fmedian N...: the median of decimal numbers.
fmedian ()
{
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

guest_rate="unthrottled"
[ -n "$RATE" ] && guest_rate="at --rate=$RATE"
printf '\n%s MiB image, fio 4k random writes iodepth 8 %s, flip %s\n' "$SIZE_MIB" \
       "$guest_rate" "$FLIP"
printf '%-20s %4s %9s %11s %9s %10s %9s  %s\n' contender run "total s" "downtime ms" \
       "write IOPS" "p99 ms" "sent MiB" notes
printf '%s\n' "${rows[@]}"
printf '\nmedians of %d run(s)\n' "$RUNS"
printf '%-20s %9s %11s %9s %10s %15s  %s\n' contender "total s" "downtime ms" "write IOPS" \
       "p99 ms" "COMMIT-flip ms" "downtime of each run, ms"
for c in "${contenders[@]}"; do
    # shellcheck disable=SC2086
    printf '%-20s %9.2f %11.1f %9.0f %10.2f %15s  %s\n' "$c" \
           "$(awk -v m="$(fmedian ${all_total[$c]})" 'BEGIN { print m / 1000 }')" \
           "$(fmedian ${all_down[$c]})" "$(fmedian ${all_iops[$c]})" \
           "$(fmedian ${all_p99[$c]})" "$(fmedian ${all_after[$c]:-})" \
           "$(echo ${all_down[$c]} | sed 's/ / \/ /g')"
done
if [ -n "${all_down[stm-fence]:-}" ] && [ -n "${all_down[stm-forward]:-}" ]; then
    # shellcheck disable=SC2086
    awk -v fwd="$(fmedian ${all_down[stm-forward]})" -v fence="$(fmedian ${all_down[stm-fence]})" \
        'BEGIN { d = fwd - fence;
                 printf "\nforward minus fence, median downtime: %+.1f ms (target: at most +10 ms: %s)\n",
                        d, d <= 10 ? "met" : "NOT met" }'
fi
