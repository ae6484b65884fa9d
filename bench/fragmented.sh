#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: a fragmented source and a scattered dirty set.
#
#   bench/fragmented.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# An 8 GiB sparse file holds 512 MiB of random data; the filter tracks 4K
# blocks (migrate-block=4K).  One second into the migration (stm-send
# --rate 80M, so the first pass takes a while) a guest stand-in writes
# every other 4K block of the 2 GiB from 1 GiB on (fio, --rw=write:4k).
# That leaves the source file fragmented hole by hole (the block status
# the sender asks for has hundreds of thousands of runs) and hands the
# second pass 262144 separate dirty extents.  Printed: stm-send's wall
# time and peak resident size, each pass's size, and whether the
# destination equals the fenced source (cmp).  This is the run behind
# "Block status on fragmented sources" and "A snapshot's extent list is
# bounded" in docs/performance.md.  Environment: RATE (default 80M),
# BENCH_DIR (default /dev/shm; the images need about 2 GiB), KEEP.
source "$(dirname "$0")/bench-lib.sh"

RATE="${RATE:-80M}"
need nbdkit; need fio; need psktool

truncate -s 8G "$tmp/src.img"
dd if=/dev/urandom of="$tmp/src.img" bs=1M count=512 conv=notrunc status=none ||
    die "cannot write the source image"
make_psk "$tmp/keys.psk"
start_source file file="$tmp/src.img" migrate-block=4K
start_recv "$tmp/dst.img" --tls-psk "$tmp/keys.psk"

spawn "$tmp/fio.log" sh -c 'sleep 1; exec fio --name=scatter --ioengine=nbd \
    --uri="$0" --rw=write:4k --bs=4k --offset=1g --size=2g --iodepth=8' "$SRC_URI"
FIO_PID=$SPAWNED

rc=0
/usr/bin/time -f "%M" -o "$tmp/rss" "$STM_SEND" --source "$SRC_URI" --control "$SRC_CTL" \
    --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" --rate "$RATE" \
    --json --no-progress >"$tmp/send.json" 2>"$tmp/send.log" </dev/null || rc=$?
[ "$rc" -eq 0 ] || { cat "$tmp/send.log" >&2; die "stm-send failed with status $rc"; }
wait_pid "$RECV_PID" 30 || die "stm-recv --once did not exit 0 after the migration"
wait_pid "$FIO_PID" 60 || die "the fio writer failed (see $tmp/fio.log)"

seconds="$(tail -n 1 "$tmp/send.json" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')"
echo "fragmented source, scattered dirty set: 8 GiB image, migrate-block=4K, --rate $RATE"
echo "stm-send: ${seconds} s, peak resident $(( $(cat "$tmp/rss") / 1024 )) MiB (limit 64 MiB)"
grep '"event":"pass_begin"' "$tmp/send.json" |
    sed -n 's/.*"pass":\([0-9]*\),"bytes":\([0-9]*\),"final":\([a-z]*\).*/  pass \1: \2 bytes (final: \3)/p'
stop "$SRC_PID"
if cmp -s "$tmp/src.img" "$tmp/dst.img"; then
    echo "destination identical to the fenced source (cmp)"
else
    die "the destination differs from the fenced source"
fi
