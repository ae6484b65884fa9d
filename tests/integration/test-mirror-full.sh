#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a full mirror ring never holds the guest up.  The
# test consumer takes the smallest ring (1 MiB) and then takes nothing for
# 3 s while fio writes as fast as it can: the ring fills, and the writes
# that do not fit go by the dirty bitmap instead, as without mirroring.
# The guest's writes all complete, STATUS counts the fallbacks, and the
# consumer's final pass (SNAPSHOT after the freeze) makes the copy equal
# to the source.

source ./functions.sh
set -eu
requires_built
requires fio --version
requires qemu-io --version
requires_mirror_consumer

size_mib=32
make_random_image "$tmp/src.img" "$size_mib"
start_nbdkit_migrate "$tmp/src.img"
nbd_touch

spawn "$tmp/consumer.out" "$tmp/consumer.err" "$CONSUMER" \
      --control "$CTL_SOCK" --uri "$NBD_URI" --copy "$tmp/copy.img" \
      --until "$tmp/stop" --ring $(( 1 << 20 )) --stall-ms 3000 \
      --status-out "$tmp/frozen-status"
CONSUMER_PID=$SPAWNED_PID
wait_for 20 "the consumer to start mirroring" grep -q '^OK mirror' "$tmp/consumer.out"

t0=$(date +%s)
start_writer "${size_mib}m" 5
wait_for 10 "the ring to fill" bash -c "[ \"\$(printf 'STATUS\n' | socat -t 5 - UNIX-CONNECT:$CTL_SOCK | sed -n 's/.* mirror_fallbacks=\([0-9]*\).*/\1/p')\" -gt 100 ]"
queued="$(status_field mirror_queued_bytes)"
info "ring full: $queued bytes queued, $(status_field mirror_fallbacks) writes fell back"
[ "$queued" -gt $(( 900 << 10 )) ] || fail "the ring is not full while the consumer stalls ($queued bytes)"
wait_exit "$WRITER_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "the guest's writes failed with a full ring (status $EXIT_STATUS)"
elapsed=$(( $(date +%s) - t0 ))
[ "$elapsed" -le 15 ] || fail "5 s of guest writes took $elapsed s with a full ring"
grep -q 'err= 0' "$tmp/fio.log" || fail "fio reported errors: $(cat "$tmp/fio.log")"

touch "$tmp/stop"
wait_exit "$CONSUMER_PID" 120
[ "$EXIT_STATUS" -eq 0 ] || fail "the consumer failed: $(cat "$tmp/consumer.err")"
cat "$tmp/consumer.out"
frozen="$(cat "$tmp/frozen-status")"
field () { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$frozen"; }
[ "$(field mirror_fallbacks)" -gt 100 ] || fail "no write fell back to the dirty bitmap: $frozen"
[ "$(field mirror_entries)" -gt 100 ] || fail "no write went through the ring: $frozen"
[ "$(field mirror_queued_bytes)" = 0 ] || fail "the ring was not drained at the freeze: $frozen"
cmp "$tmp/src.img" "$tmp/copy.img" || fail "the copy differs from the source"
info "writes went on with a full ring; the copy equals the source"
