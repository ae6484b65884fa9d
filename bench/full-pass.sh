#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: one full copy of a random image, stm against the usual
# ways of copying a disk, side by side in one run.
#
#   bench/full-pass.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# Contenders, each timed as a whole process with the image in the page
# cache, as for the comparison figures in the project's issues:
#   cp                  cp src.img dst.img
#   nbdcopy-local       nbdcopy -- [ nbdkit file src.img ] dst.img
#   nbdcopy-nbd         the same into a plain nbdkit on 127.0.0.1
#   nbdcopy-nbds-psk    the same into nbdkit --tls=require with a PSK
#   qemu-mirror-nbd     qemu-storage-daemon blockdev-mirror (sync=full) into
#                       a plain nbdkit, from job start to BLOCK_JOB_READY
#   stm-insecure        stm-send --insecure into stm-recv --once
#   stm-psk             stm-send --tls-psk into stm-recv --once (TLS 1.3),
#                       with the default --compress auto
#   stm-psk-off         the same with --compress off
#   stm-psk-zstd        the same with --compress zstd (its default level, -1)
# stm's source is nbdkit --filter=migrate file src.img on a Unix socket;
# its time is stm-send's whole run: connect, handshake, full pass, final
# pass, COMMIT (fdatasync on the receiver) and the flip.  Every stm run's
# output is compared with the source (cmp): a difference fails the run.
#
# A second table gives the CPU time of each contender, all its processes
# together (for stm: the source nbdkit, stm-send and stm-recv, also each
# on its own), in ms and in CPU seconds per GiB copied, since on a
# machine with few CPUs that bounds the wall time from below.
#
# Environment: SIZE_MIB (default 1024), RUNS (default 3), SKIP (names of
# contenders to leave out, space separated), DATA (random, the default, or
# text: 8 MiB of generated text lines repeated, which zstd level 1
# shrinks to about a third), BENCH_DIR, KEEP.
source "$(dirname "$0")/bench-lib.sh"

SIZE_MIB="${SIZE_MIB:-1024}"
SKIP=" ${SKIP:-} "
size=$(( SIZE_MIB * 1024 * 1024 ))
need nbdkit; need nbdcopy; need psktool; need cmp; need ss

wanted () { [[ "$SKIP" != *" $1 "* ]]; }

# QEMU's mirror is one contender among several: without its tools the
# others still run, and the results say it was left out and why.
qemu_skipped=
if wanted qemu-mirror-nbd && m="$(missing qemu-storage-daemon socat)"; then
    qemu_skipped="qemu-mirror-nbd (QEMU's blockdev-mirror) skipped: $m is not installed"
    note "$qemu_skipped"
    SKIP="$SKIP qemu-mirror-nbd "
fi

note "build $build; $RUNS runs of $SIZE_MIB MiB; images in $tmp"
DATA="${DATA:-random}"
case "$DATA" in
    random) make_random "$tmp/src.img" "$SIZE_MIB" ;;
    text)
        need python3
        python3 - "$tmp/src.img" "$SIZE_MIB" <<'EOF' || die "could not write the text image"
import random, sys
rnd = random.Random(17)
words = ("migration block dirty durable receiver sender freeze flip the of "
         "a image source guest write pass sync commit outcome").split()
text = bytearray()
while len(text) < 8 << 20:
    line = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14)))
    text += ("%08d %s\n" % (len(text), line)).encode()
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(text[(i % 8) << 20:((i % 8) + 1) << 20])
EOF
        ;;
    *) die "DATA=$DATA: expected random or text" ;;
esac
make_psk "$tmp/keys.psk"
dst="$tmp/dst.img"

run_cp ()
{
    rm -f "$dst"
    time_cmd "${CPU_TIMES[@]}" "$tmp/cmd.cpu" cp "$tmp/src.img" "$dst"
    record cp "$MS"
    record_cpu cp "$(cat "$tmp/cmd.cpu")"
}

run_nbdcopy_local ()
{
    rm -f "$dst"
    time_cmd "${CPU_TIMES[@]}" "$tmp/cmd.cpu" \
        nbdcopy -- [ nbdkit file "$tmp/src.img" ] "$dst"
    record nbdcopy-local "$MS"
    record_cpu nbdcopy-local "$(cat "$tmp/cmd.cpu")"
}

run_nbdcopy_target ()   # NAME TLS(0|1)
{
    local port; port="$(free_port)"
    rm -f "$dst"; truncate -s "$size" "$dst"
    if [ "$2" -eq 1 ]; then
        start_nbdkit_target "$port" --tls=require --tls-psk="$tmp/keys.psk" file "$dst"
        time_cmd "${CPU_TIMES[@]}" "$tmp/cmd.cpu" \
            nbdcopy -- [ nbdkit file "$tmp/src.img" ] \
            "nbds://stm@127.0.0.1:$port/?tls-psk-file=$tmp/keys.psk"
    else
        start_nbdkit_target "$port" file "$dst"
        time_cmd "${CPU_TIMES[@]}" "$tmp/cmd.cpu" \
            nbdcopy -- [ nbdkit file "$tmp/src.img" ] "nbd://127.0.0.1:$port/"
    fi
    # nbdcopy's CPU time includes the nbdkit it started for the source.
    local target_cpu; target_cpu="$(cpu_ms_of_pid "$(cat "$tmp/tgt.pid")")"
    stop "$TGT_PID"
    record "$1" "$MS"
    record_cpu "$1" $(( $(cat "$tmp/cmd.cpu") + target_cpu ))
}

run_stm ()   # NAME TLS_ARGS... [-- STM_SEND_ARGS...]
{
    local name="$1" tls=() extra=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do tls+=("$1"); shift; done
    [ $# -gt 0 ] && { shift; extra=("$@"); }
    rm -f "$dst"
    start_source file file="$tmp/src.img"
    RECV_WRAP=("${CPU_TIMES[@]}" "$tmp/recv.cpu")
    start_recv "$dst" "${tls[@]}"
    SEND_WRAP=("${CPU_TIMES[@]}" "$tmp/send.cpu")
    time_stm_send "${tls[@]}" ${extra[@]+"${extra[@]}"}
    unset RECV_WRAP SEND_WRAP
    local source_cpu; source_cpu="$(cpu_ms_of_pid "$(cat "$tmp/src.pid")")"
    stop "$SRC_PID"
    cmp -s "$tmp/src.img" "$dst" || die "$name: the destination differs from the source"
    record "$name" "$MS"
    record_cpu "$name" "$source_cpu" "$(cat "$tmp/send.cpu")" "$(cat "$tmp/recv.cpu")"
}

# qemu-storage-daemon mirrors src.img into a plain nbdkit; the time runs
# from blockdev-mirror to BLOCK_JOB_READY (the full copy is done then).
run_qemu_mirror ()
{
    local port qmp t0 t1 i
    port="$(free_port)"
    rm -f "$dst"; truncate -s "$size" "$dst"
    start_nbdkit_target "$port" file "$dst"
    qmp="$tmp/qmp.sock"; rm -f "$qmp"
    spawn "$tmp/qsd.log" qemu-storage-daemon \
        --blockdev "driver=file,node-name=f0,filename=$tmp/src.img" \
        --blockdev driver=raw,node-name=src,file=f0 \
        --chardev "socket,path=$qmp,server=on,wait=off,id=c0" --monitor chardev=c0
    local qsd=$SPAWNED
    wait_file "$qmp" "$qsd"
    # One QMP session: the requests are written with pauses, the replies
    # and events are collected in qmp.out; READY ends it.
    rm -f "$tmp/qmp.out"
    {
        echo '{"execute":"qmp_capabilities"}'
        echo "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"nbd\",\"node-name\":\"tgt\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"$port\"}}}"
        sleep 0.5
        now_ms >"$tmp/qmp.t0"
        echo '{"execute":"blockdev-mirror","arguments":{"job-id":"m0","device":"src","target":"tgt","sync":"full"}}'
        for (( i = 0; i < 1200; i++ )); do
            grep -q BLOCK_JOB_READY "$tmp/qmp.out" 2>/dev/null && break
            sleep 0.05
        done
        echo '{"execute":"block-job-cancel","arguments":{"device":"m0"}}'
        sleep 0.5
    } | socat - "UNIX-CONNECT:$qmp" | while IFS= read -r line; do
        echo "$(now_ms) $line" >>"$tmp/qmp.out"
    done
    stop "$qsd"; stop "$TGT_PID"
    t0="$(cat "$tmp/qmp.t0" 2>/dev/null)"
    t1="$(awk '/BLOCK_JOB_READY/ { print $1; exit }' "$tmp/qmp.out")"
    [ -n "$t0" ] && [ -n "$t1" ] || { cat "$tmp/qmp.out" >&2; die "qemu mirror: no READY"; }
    record qemu-mirror-nbd $(( t1 - t0 ))
}

for (( run = 1; run <= RUNS; run++ )); do
    note "run $run of $RUNS"
    wanted cp && run_cp
    wanted nbdcopy-local && run_nbdcopy_local
    wanted nbdcopy-nbd && run_nbdcopy_target nbdcopy-nbd 0
    wanted nbdcopy-nbds-psk && run_nbdcopy_target nbdcopy-nbds-psk 1
    wanted qemu-mirror-nbd && run_qemu_mirror
    wanted stm-insecure && run_stm stm-insecure --insecure
    wanted stm-psk && run_stm stm-psk --tls-psk "$tmp/keys.psk"
    wanted stm-psk-off && run_stm stm-psk-off --tls-psk "$tmp/keys.psk" -- --compress off
    wanted stm-psk-zstd && run_stm stm-psk-zstd --tls-psk "$tmp/keys.psk" -- --compress zstd
done

echo
echo "full pass of $SIZE_MIB MiB of $DATA data, $RUNS runs, medians"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "kernel $(uname -r); images in $BENCH_DIR"
print_table "$size" stm-psk
[ -z "$qemu_skipped" ] || echo "$qemu_skipped"
print_cpu_table "source nbdkit / stm-send / stm-recv" "$size"
echo
if wanted stm-psk; then
    s="$(median_of stm-psk)"
    wanted nbdcopy-nbds-psk &&
        awk -v a="$(median_of nbdcopy-nbds-psk)" -v s="$s" \
            'BEGIN { printf "stm-psk vs nbdcopy into nbds:// (target >= 2.50x): %.2fx\n", a / s }'
    wanted cp &&
        awk -v a="$(median_of cp)" -v s="$s" \
            'BEGIN { printf "stm-psk speed / cp speed       (target >= 0.60x): %.2fx\n", a / s }'
    # What 0.6x cp would take, against the CPU time stm uses: on N CPUs a
    # run cannot be shorter than its CPU time / N, however it is pipelined.
    wanted cp &&
        awk -v a="$(median_of cp)" -v c="$(median ${_cpu[stm-psk]})" -v n="$(nproc)" \
            'BEGIN { w = a / 0.6;
                     printf "  0.60x cp means at most %d ms, so at most %d CPU ms on %d CPUs;" \
                            " stm-psk used %d CPU ms\n", w, w * n, n, c }'
fi
echo "destination byte-identical (cmp) in every stm run"
