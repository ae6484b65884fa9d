#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the filter's mirror ring hands every guest write
# to its consumer.  A test consumer (mirror-consumer, standing in for
# stm-send) takes the ring with MIRROR START, copies the image through the
# filter while fio writes (4k random writes, and writes of random sizes
# and alignments, and zeroes through qemu-io), applies every record in the
# ring's order with the ordering rule of docs/architecture.md, then
# freezes, drains the ring, copies what fell back to dirty bits and
# thaws.  The copy must equal the source, the ring must be empty at the
# freeze, and most writes must have gone through the ring.

source ./functions.sh
set -eu
requires_built
requires fio --version
requires qemu-io --version
requires_mirror_consumer

size_mib=64
make_random_image "$tmp/src.img" "$size_mib"
start_nbdkit_migrate "$tmp/src.img"
nbd_touch

# The guest: 4k random writes, and writes of any size at any 512-byte
# alignment, and zeroes, during the copy pass and after it.
start_writer "${size_mib}m" 10
W1=$WRITER_PID
spawn "$tmp/fio2.log" "$tmp/fio2.err" \
      fio --name=odd --ioengine=nbd --uri="$NBD_URI" --rw=randwrite \
      --bsrange=512-192k --blockalign=512 --iodepth=4 --size="${size_mib}m" \
      --time_based --runtime=10
W2=$SPAWNED_PID
spawn "$tmp/zero.out" "$tmp/zero.err" bash -c '
    for i in $(seq 1 60); do
        qemu-io -f raw -c "write -z $(( (RANDOM % 1000) * 65536 )) 128k" "$0" || exit 1
        sleep 0.1
    done' "$NBD_URI"
W3=$SPAWNED_PID
# The copy pass starts under the writes and is slowed down (10 ms a
# chunk: about 3 s of the 10 s of writes) so that its reads race them.
wait_for 20 "the guest's writes to start" writes_above 1000
spawn "$tmp/consumer.out" "$tmp/consumer.err" "$CONSUMER" \
      --control "$CTL_SOCK" --uri "$NBD_URI" --copy "$tmp/copy.img" \
      --until "$tmp/stop" --ring $(( 64 << 20 )) --status-out "$tmp/frozen-status" \
      --chunk-delay-ms 10
CONSUMER_PID=$SPAWNED_PID
wait_for 20 "the consumer to start mirroring" grep -q '^OK mirror' "$tmp/consumer.out"
[ "$(status_field mirror)" = mirror ] || fail "STATUS does not say mirror=mirror"

for pid in "$W1" "$W2" "$W3"; do
    wait_exit "$pid" 60
    [ "$EXIT_STATUS" -eq 0 ] || fail "a guest writer failed (status $EXIT_STATUS)"
done
grep -q 'records so far' "$tmp/consumer.out" ||
    fail "the copy pass did not end while the guest wrote (the reads did not race the writes)"
n="$(sed -n 's/full pass: .*, \([0-9]*\) records so far/\1/p' "$tmp/consumer.out")"
[ "$n" -gt 1000 ] || fail "only $n records arrived during the copy pass"

touch "$tmp/stop"
wait_exit "$CONSUMER_PID" 120
[ "$EXIT_STATUS" -eq 0 ] || fail "the consumer failed: $(cat "$tmp/consumer.err")"
cat "$tmp/consumer.out"

frozen="$(cat "$tmp/frozen-status")"
field () { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$frozen"; }
info "frozen: entries=$(field mirror_entries) bytes=$(field mirror_bytes)" \
     "fallbacks=$(field mirror_fallbacks) overlaps=$(field write_overlaps)"
[ "$(field state)" = frozen ] || fail "the status taken after the drain is not frozen"
[ "$(field mirror_queued_bytes)" = 0 ] || fail "the ring still held records after the drain: $frozen"
[ "$(field mirror_unsynced_bytes)" = 0 ] || fail "records were not durable after the drain: $frozen"
[ "$(field mirror_entries)" -gt 1000 ] || fail "few writes went through the ring: $frozen"
[ "$(field mirror_bytes)" -gt $(( 4 << 20 )) ] || fail "little data went through the ring: $frozen"

[ "$(status_field mirror)" = off ] || fail "STATUS does not say mirror=off after MIRROR STOP"
state_is tracking || fail "the source is not tracking after THAW"
cmp "$tmp/src.img" "$tmp/copy.img" || fail "the copy differs from the source"
info "the copy equals the source"
