#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: what mirroring costs a guest.  fio's nbd engine writes 4k
# blocks at random (iodepth 8) to an nbdkit file export behind the migrate
# filter, RUNS times each way, alternately:
#
#   filter         the filter, no mirror ring (as bench/filter-overhead.sh)
#   mirror-discard a ring (MIRROR START, 64 MiB) whose consumer takes every
#                  record and reports it durable at once: the filter's own
#                  cost (one copy into the ring, the CAS, the commit)
#   mirror-apply   the same, the consumer writing every record to a copy
#                  file (a stand-in for stm-send's sending; it shares the
#                  machine's CPUs with fio and nbdkit)
#   mirror-sync    the same as mirror-apply, in mirror-sync: each write
#                  waits for the consumer's durable position
#
# The consumer is the tests' mirror-consumer (built by make check, or here)
# with --no-copy: it reads nothing from the source, only the ring.  The
# table shows median IOPS, p99 completion latency, and each ratio to
# "filter" (bench/filter-overhead.sh gives filter / no filter).
#
#   bench/mirror-overhead.sh [BUILD_DIR]     (default $STM_BUILD, else _build/)
#
# Environment: RUNS (default 3), RUNTIME seconds per fio run (default 10),
# SIZE_MIB of the image (default 256), RING bytes (default 64 MiB),
# BENCH_DIR, KEEP.
source "$(dirname "$0")/bench-lib.sh"

RUNTIME="${RUNTIME:-10}"
SIZE_MIB="${SIZE_MIB:-256}"
RING="${RING:-$(( 64 << 20 ))}"
need nbdkit; need fio; need python3
CONSUMER="$build/tests/integration/mirror-consumer"
[ -x "$CONSUMER" ] || make -C "$build/tests/integration" mirror-consumer >/dev/null ||
    die "cannot build $CONSUMER"

note "build $build; $RUNS runs of ${RUNTIME}s each; image of $SIZE_MIB MiB in $tmp"
make_random "$tmp/img" "$SIZE_MIB"

# fio_run URI: run the guest stand-in; prints "IOPS P99_US".
fio_run ()
{
    fio --name=w --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth=8 \
        --size="${SIZE_MIB}m" --time_based --runtime="$RUNTIME" \
        --output-format=json >"$tmp/fio.out" 2>"$tmp/fio.err" ||
        { cat "$tmp/fio.err" >&2; die "fio failed"; }
    sed -n '/^{/,$p' "$tmp/fio.out" | python3 -c '
import json, sys
w = json.load(sys.stdin)["jobs"][0]["write"]
print(int(w["iops"]), int(w["clat_ns"]["percentile"]["99.000000"] / 1000))'
}

declare -A p99s
run_one ()   # NAME [CONSUMER-OPTION...] (none: no ring)
{
    local name="$1"; shift
    rm -f "$tmp/nbd.sock" "$tmp/ctl.sock" "$tmp/nbd.pid" "$tmp/stop" "$tmp/copy"
    spawn "$tmp/nbdkit.log" nbdkit -f -U "$tmp/nbd.sock" -P "$tmp/nbd.pid" \
          --filter="$MIGRATE_FILTER" file file="$tmp/img" migrate-control="$tmp/ctl.sock"
    local pid=$SPAWNED cpid=""
    wait_file "$tmp/nbd.pid" "$pid"
    local uri="nbd+unix:///?socket=$tmp/nbd.sock"
    if [ "$name" != filter ]; then
        spawn "$tmp/consumer.log" "$CONSUMER" --control "$tmp/ctl.sock" --uri "$uri" \
              --copy "$tmp/copy" --until "$tmp/stop" --ring "$RING" --no-copy "$@"
        cpid=$SPAWNED
        local i
        for (( i = 0; i < 100; i++ )); do
            grep -q '^OK mirror' "$tmp/consumer.log" 2>/dev/null && break
            sleep 0.1
        done
        grep -q '^OK mirror' "$tmp/consumer.log" || die "the consumer did not start: $(cat "$tmp/consumer.log")"
    fi
    local out; out="$(fio_run "$uri")"
    if [ -n "$cpid" ]; then
        touch "$tmp/stop"
        for (( i = 0; i < 300; i++ )); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
        grep -q 'mirror-stopped' "$tmp/consumer.log" || die "the consumer did not finish: $(cat "$tmp/consumer.log")"
        stop "$cpid"
    fi
    stop "$pid"
    record "$name" "${out% *}"
    p99s[$name]="${p99s[$name]:-} ${out#* }"
}

setups=(filter mirror-discard mirror-apply mirror-sync)
for (( run = 1; run <= RUNS; run++ )); do
    note "run $run of $RUNS"
    order=("${setups[@]}")
    (( run % 2 )) || order=(mirror-sync mirror-apply mirror-discard filter)
    for s in "${order[@]}"; do
        case "$s" in
            filter) run_one filter ;;
            mirror-discard) run_one mirror-discard --discard ;;
            mirror-apply) run_one mirror-apply ;;
            mirror-sync) run_one mirror-sync --sync 1000 ;;
        esac
    done
done

base="$(median_of filter)"
echo
echo "fio 4k randwrite, iodepth 8, ${RUNTIME}s, nbdkit file (${SIZE_MIB} MiB in $BENCH_DIR)" \
     "behind the migrate filter, ring $RING bytes, $RUNS runs, medians"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "kernel $(uname -r)"
printf '\n%-16s %12s %10s %9s   %s\n' setup "median IOPS" "p99 us" "/ filter" "runs (IOPS)"
for n in "${setups[@]}"; do
    m="$(median_of "$n")"
    printf '%-16s %12d %10d %9s   %s\n' "$n" "$m" "$(median ${p99s[$n]})" \
        "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')" \
        "${_results[$n]}"
done
