#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: what the migrate filter costs a guest while no migration
# runs.  fio's nbd engine writes 4k blocks at random (iodepth 8) to an
# nbdkit file export, once without and once with --filter=migrate,
# alternately, RUNS times each; the table shows the median IOPS and their
# ratio (target: at least 0.95).
#
#   bench/filter-overhead.sh [BUILD_DIR]     (default $STM_BUILD, else _build/)
#
# Environment: RUNS (default 3), RUNTIME seconds per fio run (default 10),
# SIZE_MIB of the image (default 256), BLOCK (migrate-block, default the
# filter's), BENCH_DIR, KEEP.
source "$(dirname "$0")/bench-lib.sh"

RUNTIME="${RUNTIME:-10}"
SIZE_MIB="${SIZE_MIB:-256}"
need nbdkit; need fio; need python3

note "build $build; $RUNS runs of ${RUNTIME}s each; image of $SIZE_MIB MiB in $tmp"
make_random "$tmp/img" "$SIZE_MIB"

# fio_iops URI: run the guest stand-in, print its write IOPS (integer).
fio_iops ()
{
    fio --name=w --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth=8 \
        --size="${SIZE_MIB}m" --time_based --runtime="$RUNTIME" \
        --output-format=json >"$tmp/fio.out" 2>"$tmp/fio.err" ||
        { cat "$tmp/fio.err" >&2; die "fio failed"; }
    # fio may print a line before the JSON: skip to the first "{".
    sed -n '/^{/,$p' "$tmp/fio.out" |
        python3 -c 'import json, sys; print(int(json.load(sys.stdin)["jobs"][0]["write"]["iops"]))'
}

run_one ()   # NAME [--filter=... PARAMS...]
{
    local name="$1"; shift
    local opts=() params=() a
    for a in "$@"; do
        case "$a" in --*) opts+=("$a") ;; *) params+=("$a") ;; esac
    done
    rm -f "$tmp/nbd.sock" "$tmp/ctl.sock" "$tmp/nbd.pid"
    spawn "$tmp/nbdkit.log" nbdkit -f -U "$tmp/nbd.sock" -P "$tmp/nbd.pid" \
          ${opts[@]+"${opts[@]}"} file file="$tmp/img" ${params[@]+"${params[@]}"}
    local pid=$SPAWNED
    wait_file "$tmp/nbd.pid" "$pid"
    local iops; iops="$(fio_iops "nbd+unix:///?socket=$tmp/nbd.sock")"
    stop "$pid"
    record "$name" "$iops"
}

filter_args=(--filter="$MIGRATE_FILTER" migrate-control="$tmp/ctl.sock")
[ -n "${BLOCK:-}" ] && filter_args+=(migrate-block="$BLOCK")

for (( run = 1; run <= RUNS; run++ )); do
    note "run $run of $RUNS"
    # Alternate the order so neither side always runs on a warmer machine.
    if (( run % 2 )); then
        run_one no-filter
        run_one migrate-filter "${filter_args[@]}"
    else
        run_one migrate-filter "${filter_args[@]}"
        run_one no-filter
    fi
done

base="$(median_of no-filter)"
with="$(median_of migrate-filter)"
echo
echo "fio 4k randwrite, iodepth 8, ${RUNTIME}s, nbdkit file (${SIZE_MIB} MiB in $BENCH_DIR)," \
     "$RUNS runs, medians"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "kernel $(uname -r)"
printf '\n%-16s %12s   %s\n' setup "median IOPS" "runs"
for n in no-filter migrate-filter; do
    printf '%-16s %12d   %s\n' "$n" "$(median_of "$n")" "${_results[$n]}"
done
awk -v a="$with" -v b="$base" \
    'BEGIN { printf "\nmigrate-filter / no-filter (target >= 0.95): %.3f\n", (b > 0 ? a / b : 0) }'
