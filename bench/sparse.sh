#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: sparse images.
#
#   bench/sparse.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# 1. The same 1 GiB of random data, once as a dense 1 GiB image and once
#    spread over a 64 GiB virtual image (1 MiB pieces 64 MiB apart, the rest
#    holes), migrated by stm over TLS (PSK).  Target: the sparse image takes
#    at most 1.3x the dense time, and the destination stays sparse (its
#    allocated size is checked with du).  nbdcopy into a TLS nbdkit and
#    cp (which skips holes too) run alongside for comparison.
# 2. A 1 TiB virtual image (nbdkit memory 1T behind the filter) holding a
#    few written ranges migrates over TLS; the resident peak (VmHWM, from
#    /usr/bin/time) of stm-send and stm-recv is reported and must stay
#    under 64 MiB, and the destination is compared with a reference built
#    with the same writes.
# Every stm destination is compared with its source (qemu-img compare,
# which reads holes cheaply): a difference fails the benchmark.
#
# Environment: RUNS (default 3), VIRT_GIB (default 64), BENCH_DIR, KEEP,
# SKIP_TIB=1 to leave out part 2.
source "$(dirname "$0")/bench-lib.sh"

VIRT_GIB="${VIRT_GIB:-64}"
DATA_MIB=1024
need nbdkit; need nbdcopy; need psktool; need qemu-img; need qemu-io; need ss

note "build $build; $RUNS runs; images in $tmp"
make_random "$tmp/dense.img" "$DATA_MIB"
make_psk "$tmp/keys.psk"
# The sparse image: the dense image's MiB number i at i * stride MiB.
stride=$(( VIRT_GIB * 1024 / DATA_MIB ))
truncate -s "${VIRT_GIB}G" "$tmp/sparse.img"
for (( i = 0; i < DATA_MIB; i++ )); do
    dd if="$tmp/dense.img" of="$tmp/sparse.img" bs=1M count=1 skip="$i" \
       seek=$(( i * stride )) conv=notrunc status=none
done
note "sparse image: $(du -h --apparent-size "$tmp/sparse.img" | cut -f1) virtual," \
     "$(du -h "$tmp/sparse.img" | cut -f1) allocated"
dst="$tmp/dst.img"

# alloc_mib FILE: allocated MiB.
alloc_mib () { echo $(( $(du -k "$1" | cut -f1) / 1024 )); }

run_stm ()   # NAME SRC
{
    rm -f "$dst"
    start_source file file="$2"
    start_recv "$dst" --tls-psk "$tmp/keys.psk"
    time_stm_send --tls-psk "$tmp/keys.psk"
    stop "$SRC_PID"
    qemu-img compare -q -f raw -F raw "$2" "$dst" ||
        die "$1: the destination differs from the source"
    local a; a="$(alloc_mib "$dst")"
    [ "$a" -le $(( DATA_MIB + DATA_MIB / 8 )) ] ||
        die "$1: the destination holds $a MiB allocated for $DATA_MIB MiB of data: not sparse"
    record "$1" "$MS"
    LAST_ALLOC="$a"
}

run_nbdcopy ()   # NAME SRC
{
    local port; port="$(free_port)"
    rm -f "$dst"; truncate -s "$(stat -c %s "$2")" "$dst"
    start_nbdkit_target "$port" --tls=require --tls-psk="$tmp/keys.psk" file "$dst"
    time_cmd nbdcopy -- [ nbdkit file "$2" ] \
        "nbds://stm@127.0.0.1:$port/?tls-psk-file=$tmp/keys.psk"
    stop "$TGT_PID"
    record "$1" "$MS"
}

run_cp ()   # NAME SRC
{
    rm -f "$dst"
    time_cmd cp --sparse=always "$2" "$dst"
    record "$1" "$MS"
}

for (( run = 1; run <= RUNS; run++ )); do
    note "run $run of $RUNS"
    run_stm stm-psk-dense "$tmp/dense.img"
    run_stm stm-psk-sparse "$tmp/sparse.img"
    sparse_alloc="$LAST_ALLOC"
    run_nbdcopy nbdcopy-nbds-dense "$tmp/dense.img"
    run_nbdcopy nbdcopy-nbds-sparse "$tmp/sparse.img"
    run_cp cp-dense "$tmp/dense.img"
    run_cp cp-sparse "$tmp/sparse.img"
done
rm -f "$dst"

echo
echo "1 GiB of random data, dense (1 GiB) and sparse (${VIRT_GIB} GiB virtual), $RUNS runs, medians"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "kernel $(uname -r); images in $BENCH_DIR"
printf '\n%-22s %10s   %s\n' contender "median ms" "runs (ms)"
for n in "${_names[@]}"; do
    printf '%-22s %10d   %s\n' "$n" "$(median_of "$n")" "${_results[$n]}"
done
awk -v s="$(median_of stm-psk-sparse)" -v d="$(median_of stm-psk-dense)" \
    'BEGIN { printf "\nstm sparse / dense time (target <= 1.30): %.2f\n", (d > 0 ? s / d : 0) }'
echo "stm destination of the sparse image: ${sparse_alloc} MiB allocated of ${VIRT_GIB} GiB"

[ -n "${SKIP_TIB:-}" ] && exit 0

# ---- part 2: 1 TiB virtual ------------------------------------------
note "1 TiB: nbdkit memory 1T with a few written ranges"
need /usr/bin/time
start_source memory 1T
# A few ranges of data: at the start, in the middle, at the very end.
offsets=(0 $(( 300 * 1024 * 1024 * 1024 )) $(( 1024 * 1024 * 1024 * 1024 - 16 * 1024 * 1024 )))
truncate -s 1T "$tmp/ref.img"
for off in "${offsets[@]}"; do
    for img in "$SRC_URI" "$tmp/ref.img"; do
        qemu-io -f raw -c "write -P 0x5a $off 16M" "$img" >/dev/null 2>&1 ||
            die "cannot write 16M at $off to $img"
    done
done
rm -f "$dst"
RECV_WRAP=(/usr/bin/time -f '%M' -o "$tmp/recv.rss")
start_recv "$dst" --tls-psk "$tmp/keys.psk"
t0=$(now_ms)
/usr/bin/time -f '%M' -o "$tmp/send.rss" "$STM_SEND" --source "$SRC_URI" \
    --control "$SRC_CTL" --dest "127.0.0.1:$RECV_PORT" --no-progress \
    --tls-psk "$tmp/keys.psk" >"$tmp/send.log" 2>&1 </dev/null ||
    { cat "$tmp/send.log" "$tmp/recv.log" >&2; die "stm-send of 1 TiB failed"; }
t1=$(now_ms)
wait_pid "$RECV_PID" 30 || die "stm-recv did not exit 0 after the 1 TiB migration"
recv_hwm="$(cat "$tmp/recv.rss")"
stop "$SRC_PID"
qemu-img compare -q -f raw -F raw "$tmp/ref.img" "$dst" ||
    die "1 TiB: the destination differs from the reference"
send_kib="$(cat "$tmp/send.rss")"
echo
echo "1 TiB virtual (48 MiB of data): $(( t1 - t0 )) ms; destination $(alloc_mib "$dst") MiB allocated;" \
     "identical to the reference"
echo "peak resident: stm-send $(( send_kib / 1024 )) MiB, stm-recv $(( ${recv_hwm:-0} / 1024 )) MiB" \
     "(limit 64 MiB)"
[ "$send_kib" -le $(( 64 * 1024 )) ] || die "stm-send grew past 64 MiB"
[ "${recv_hwm:-0}" -le $(( 64 * 1024 )) ] || die "stm-recv grew past 64 MiB"
