#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: MIRROR START ... wait MS.  A write that finds the
# mirror ring full waits, at most MS, for the consumer to free room, and
# only then falls back to its dirty bits; so a guest that writes faster
# than the consumer drains is paced by it instead of overflowing the ring.
#
#   stalled  a consumer that takes nothing for 3 s, wait 200: the writes
#            wait about 200 ms each, then fall back; no write takes much
#            longer than the bound; STATUS counts the waits and their
#            timeouts; the copy still ends equal to the source.
#   paced    a 1 MiB ring, a consumer that keeps up but more slowly than
#            fio writes (20 ms per report of records durable), wait 1000:
#            writes wait for room and none falls back; the copy equals the
#            source.
#   freeze   a consumer that never reports anything durable, wait 30000:
#            writes wait for room when FREEZE comes, and FREEZE ends their
#            waits at once (they fall back to dirty bits) instead of
#            waiting them out: its drain is short.
# And MIRROR START refuses a wait over 24 h.

source ./functions.sh
set -eu
requires_built
requires fio --version
requires qemu-io --version
requires socat -V
requires python3 --version
requires_mirror_consumer

size_mib=32
make_random_image "$tmp/src.img" "$size_mib"

# fio_result: the longest write latency (ms), the writes done, and the
# error fio reported (0: none), from the JSON fio wrote.
fio_result ()
{
    sed -n '/^{/,$p' "$tmp/fio.log" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
w = j["write"]
print(int(w["clat_ns"]["max"] / 1e6), int(w["total_ios"]), int(j["error"]))'
}

field () { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$FROZEN"; }

# start_case NAME WAIT-MS FIO-SECONDS [CONSUMER-OPTION...]: nbdkit, the
# consumer (1 MiB ring, MIRROR START ... wait WAIT-MS) and fio.
start_case ()
{
    local name="$1" wait_ms="$2" secs="$3"
    shift 3
    rm -f "$tmp/stop" "$tmp/copy.img" "$tmp/frozen-status"
    CASE="$name"
    start_nbdkit_migrate "$tmp/src.img"
    nbd_touch
    spawn "$tmp/consumer.out" "$tmp/consumer.err" "$CONSUMER" \
          --control "$CTL_SOCK" --uri "$NBD_URI" --copy "$tmp/copy.img" \
          --until "$tmp/stop" --ring $(( 1 << 20 )) --wait "$wait_ms" \
          --status-out "$tmp/frozen-status" "$@"
    CONSUMER_PID=$SPAWNED_PID
    # The whole reply line (a grep may catch it half written).
    wait_for 20 "$name: the consumer to start mirroring" grep -q '^OK mirror .* full_wait_ms=[0-9]* ' "$tmp/consumer.out"
    grep -q "^OK mirror mode=mirror .* full_wait_ms=$wait_ms " "$tmp/consumer.out" ||
        fail "$name: MIRROR START's reply does not say full_wait_ms=$wait_ms: $(head -n 1 "$tmp/consumer.out")"
    start_writer "${size_mib}m" "$secs" --output-format=json
}

# end_case: fio ends (if it has not), then the consumer freezes, drains,
# copies what is dirty and thaws.  Sets MAX_MS, IOS, FROZEN.
end_case ()
{
    wait_exit "$WRITER_PID" 60
    [ "$EXIT_STATUS" -eq 0 ] || fail "$CASE: fio failed (status $EXIT_STATUS)"
    read -r MAX_MS IOS FIO_ERR <<<"$(fio_result)"
    [ "$FIO_ERR" = 0 ] || fail "$CASE: fio reported error $FIO_ERR"
    touch "$tmp/stop"
    wait_exit "$CONSUMER_PID" 120
    [ "$EXIT_STATUS" -eq 0 ] || fail "$CASE: the consumer failed: $(cat "$tmp/consumer.err")"
    FROZEN="$(cat "$tmp/frozen-status")"
    info "$CASE: $IOS writes, the longest took $MAX_MS ms;" \
         "full_waits=$(field mirror_full_waits) full_wait_ms=$(field mirror_full_wait_ms)" \
         "full_timeouts=$(field mirror_full_timeouts) fallbacks=$(field mirror_fallbacks)" \
         "entries=$(field mirror_entries)"
}

# 0. The bound: as long as a freeze may last (24 h), no longer.  A refused
# MIRROR START changes nothing.
start_nbdkit_migrate "$tmp/src.img"
nbd_touch
reply="$(ctl 'MIRROR START 1048576 wait 86400001')"
case "$reply" in
    "ERR EINVAL MIRROR START wait 86400001 ms is longer than the limit of 24h"*) ;;
    *) fail "a wait over 24 h was not refused: $reply" ;;
esac
reply="$(ctl 'MIRROR START 1048576 wait 5 wait 5')"
case "$reply" in ERR\ EINVAL*) ;; *) fail "a second wait was not refused: $reply" ;; esac
[ "$(status_field mirror)" = off ] || fail "a refused MIRROR START left a ring"
[ "$(status_field mirror_full_waits)" = 0 ] || fail "STATUS has no mirror_full_waits=0"
stop_nbdkit

# 1. stalled: each write waits at most about 200 ms, then falls back.
start_case stalled 200 4 --stall-ms 3000
end_case
[ "$(field mirror_full_waits)" -gt 0 ] || fail "stalled: no write waited for room: $FROZEN"
[ "$(field mirror_full_timeouts)" -gt 0 ] || fail "stalled: no wait gave up: $FROZEN"
[ "$(field mirror_fallbacks)" -gt 0 ] || fail "stalled: no write fell back: $FROZEN"
[ "$(field mirror_entries)" -gt 100 ] || fail "stalled: few writes went through the ring: $FROZEN"
# Each wait is bounded: on average not far over 200 ms, and no write
# took longer than the bound and a second (generous, on a busy machine).
[ "$(field mirror_full_wait_ms)" -le $(( $(field mirror_full_waits) * 400 )) ] ||
    fail "stalled: the waits took longer than 200 ms on average: $FROZEN"
[ "$MAX_MS" -lt 1200 ] || fail "stalled: a write took $MAX_MS ms with wait 200"
[ "$(field mirror_queued_bytes)" = 0 ] || fail "stalled: the ring was not drained at the freeze: $FROZEN"
cmp "$tmp/src.img" "$tmp/copy.img" || fail "stalled: the copy differs from the source"
stop_nbdkit

# 2. paced: the consumer keeps up, more slowly than fio would write; the
# writes wait for room, none falls back.
start_case paced 1000 4 --ack-delay-ms 20
end_case
[ "$(field mirror_full_waits)" -gt 0 ] || fail "paced: no write waited for room (the ring never filled): $FROZEN"
[ "$(field mirror_fallbacks)" = 0 ] || fail "paced: writes fell back to dirty bits: $FROZEN"
[ "$(field mirror_full_timeouts)" = 0 ] || fail "paced: a wait for room timed out: $FROZEN"
[ "$MAX_MS" -lt 2000 ] || fail "paced: a write took $MAX_MS ms with wait 1000"
cmp "$tmp/src.img" "$tmp/copy.img" || fail "paced: the copy differs from the source"
grep -q '^final pass: 0 bytes dirty' "$tmp/consumer.out" ||
    fail "paced: blocks were dirty at the freeze: $(cat "$tmp/consumer.out")"
stop_nbdkit

# 3. freeze: nothing is ever made durable, so once the ring is full every
# write waits for room, for up to 30 s; FREEZE ends those waits at once.
start_case freeze 30000 8 --no-ack
wait_for 20 "freeze: writes to wait for room" bash -c \
    "[ \"\$(printf 'STATUS\n' | socat -t 5 - UNIX-CONNECT:$CTL_SOCK | sed -n 's/.* mirror_full_waits=\([0-9]*\).*/\1/p')\" -gt 0 ]"
sleep 1
t0=$(date +%s%N)
touch "$tmp/stop"
wait_for 20 "freeze: the consumer's FREEZE" grep -q '^OK frozen' "$tmp/consumer.out"
freeze_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
drain_ms="$(sed -n 's/^OK frozen drain_ms=\([0-9]*\).*/\1/p' "$tmp/consumer.out")"
info "freeze: FREEZE answered $freeze_ms ms after it was asked for, drain_ms=$drain_ms"
[ "$drain_ms" -lt 3000 ] || fail "freeze: writes waiting for room held the drain for $drain_ms ms"
wait_exit "$CONSUMER_PID" 120
[ "$EXIT_STATUS" -eq 0 ] || fail "freeze: the consumer failed: $(cat "$tmp/consumer.err")"
FROZEN="$(cat "$tmp/frozen-status")"
[ "$(field mirror_full_timeouts)" -gt 0 ] || fail "freeze: no wait for room ended: $FROZEN"
wait_exit "$WRITER_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "freeze: fio failed (status $EXIT_STATUS)"
read -r MAX_MS IOS FIO_ERR <<<"$(fio_result)"
[ "$FIO_ERR" = 0 ] || fail "freeze: fio reported error $FIO_ERR"
info "freeze: $IOS writes, the longest took $MAX_MS ms (the wait was 30000)"
[ "$MAX_MS" -lt 15000 ] || fail "freeze: a write waited $MAX_MS ms: FREEZE did not end its wait"
stop_nbdkit
info "a full ring makes writes wait, at most the bound, and FREEZE ends the waits"
