#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --compress zstd under mirroring, where compression
# runs on stm-send's worker thread and every message must still reach the
# receiver in the order it was sent (sender/send_stage.c).
# The source holds 96 MiB of compressible text and 32 MiB of random
# bytes; a guest stand-in (fio) writes 4 KiB blocks of half-compressible
# data at random, and qemu-io 16 MiB pattern writes and zeroes, while
# stm-send --compress zstd --converge mirror copies it.  So the pass's
# 1 MiB chunks and a stream of small mirror records go to the worker,
# interleaved with ZERO, SYNC and the pass's messages that wait behind
# them.  The destination must equal the fenced source, stm-send must
# report chunks compressed, and mirrored records must have been sent.

source ./functions.sh
set -eu
requires_psk_migration
requires python3 --version

size_mib=128
python3 - "$tmp/src.img" <<'PY'
import random, sys
rnd = random.Random(23)
words = ("mirror record ring order stage worker thread zstd frame sync "
         "durable pass data zero guest write").split()
text = bytearray()
while len(text) < 4 << 20:
    line = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 12)))
    text += ("%08d %s\n" % (len(text), line)).encode()
with open(sys.argv[1], "wb") as f:
    for i in range(24):
        f.write(text[:4 << 20])
    f.write(rnd.randbytes(32 << 20))
PY
start_nbdkit_migrate "$tmp/src.img"
make_psk "$tmp/keys.psk"
cp "$tmp/src.img" "$tmp/orig.img"
start_writer_and_wait "${size_mib}m" 60 0 --buffer_compress_percentage=50 \
    --buffer_compress_chunk=4k --refill_buffers
spawn "$tmp/large.out" "$tmp/large.err" bash -c '
    for i in $(seq 1 20); do
        qemu-io -f raw -c "write -P $(( i % 200 + 1 )) $(( (RANDOM % 112) << 20 )) 16M" \
            -c "write -z $(( (RANDOM % 127) << 20 )) 1M" "$0" >/dev/null || exit 1
        sleep 0.1
    done' "$NBD_URI"
large=$SPAWNED_PID

migrate_psk_once 180 --compress zstd --converge mirror --mirror-ring 64M --max-passes 10

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
wait_exit "$WRITER_PID" 90
wait_exit "$large" 30
cmp -s "$tmp/src.img" "$tmp/orig.img" &&
    fail "the source file never changed: the writers did not write"
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source"
info "destination identical to the fenced source"

info "stm-send: $(grep compression "$tmp/send.err" || true)"
grep -q 'chunks compressed' "$tmp/send.err" ||
    fail "stm-send did not report compression: $(tail -n 3 "$tmp/send.err")"
grep -q ' 0 chunks compressed' "$tmp/send.err" &&
    fail "stm-send compressed no chunk"
records="$(json_field "$tmp/send.out" done mirror_records)"
info "mirror records sent: $records"
[ -n "$records" ] && [ "$records" -gt 0 ] ||
    fail "stm-send sent no mirrored write: $(tail -n 1 "$tmp/send.out")"
info "PASS"
