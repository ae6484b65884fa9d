#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: mirror-sync.  A guest write is acknowledged once
# the consumer reports it durable, and never waits longer than the
# timeout MIRROR START gave: with a consumer that acknowledges, no wait
# times out; with one that never does, every write still completes
# within the timeout (and once the ring is full, writes fall back at once),
# STATUS counts the timeouts, and the records the consumer never made
# durable go back to the dirty bitmap at MIRROR STOP, so the copy still
# ends equal to the source.  While they are not durable, FLIP is refused
# and the source stays frozen.

source ./functions.sh
set -eu
requires_built
requires fio --version
requires qemu-io --version
requires python3 --version
requires_mirror_consumer

size_mib=32
make_random_image "$tmp/src.img" "$size_mib"

# fio_max_ms: the longest write latency in the JSON fio wrote.
fio_max_ms ()
{
    sed -n '/^{/,$p' "$tmp/fio.log" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]["write"]
print(int(j["clat_ns"]["max"] / 1e6), int(j["total_ios"]), j.get("io_bytes", 0))'
}

# run_case NAME TIMEOUT-MS [CONSUMER-OPTION...]
run_case ()
{
    local name="$1" timeout_ms="$2"
    shift 2
    rm -f "$tmp/stop" "$tmp/copy.img"
    start_nbdkit_migrate "$tmp/src.img"
    nbd_touch
    spawn "$tmp/consumer.out" "$tmp/consumer.err" "$CONSUMER" \
          --control "$CTL_SOCK" --uri "$NBD_URI" --copy "$tmp/copy.img" \
          --until "$tmp/stop" --ring $(( 1 << 20 )) --sync "$timeout_ms" \
          --status-out "$tmp/frozen-status" "$@"
    CONSUMER_PID=$SPAWNED_PID
    wait_for 20 "the consumer to start mirroring" grep -q '^OK mirror' "$tmp/consumer.out"
    [ "$(status_field mirror)" = mirror-sync ] || fail "$name: STATUS does not say mirror=mirror-sync"
    start_writer "${size_mib}m" 4 --output-format=json
    wait_exit "$WRITER_PID" 60
    [ "$EXIT_STATUS" -eq 0 ] || fail "$name: the guest's writes failed (status $EXIT_STATUS)"
    read -r MAX_MS IOS _ <<<"$(fio_max_ms)"
    touch "$tmp/stop"
    wait_exit "$CONSUMER_PID" 120
    [ "$EXIT_STATUS" -eq 0 ] || fail "$name: the consumer failed: $(cat "$tmp/consumer.err")"
    FROZEN="$(cat "$tmp/frozen-status")"
    cmp "$tmp/src.img" "$tmp/copy.img" || fail "$name: the copy differs from the source"
    stop_nbdkit
    info "$name: $IOS writes, the longest took $MAX_MS ms;" \
         "sync_timeouts=$(field mirror_sync_timeouts) fallbacks=$(field mirror_fallbacks)" \
         "entries=$(field mirror_entries)"
}
field () { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$FROZEN"; }

# 1. A consumer that acknowledges: the writes wait for it, none times out.
run_case acked 5000
[ "$(field mirror_sync_timeouts)" = 0 ] || fail "acked: a mirror-sync wait timed out: $FROZEN"
[ "$(field mirror_entries)" -gt 100 ] || fail "acked: few writes went through the ring: $FROZEN"
[ "$MAX_MS" -lt 5000 ] || fail "acked: a write took $MAX_MS ms"

# 2. A consumer that never acknowledges: each write waits the 300 ms at
# most (plus scheduling), then goes by the dirty bitmap.
run_case never-acked 300 --no-ack --expect-flip-refused
[ "$(field mirror_sync_timeouts)" -gt 0 ] || fail "never-acked: no wait timed out: $FROZEN"
[ "$MAX_MS" -lt 1500 ] || fail "never-acked: a write took $MAX_MS ms, beyond the 300 ms timeout"
[ "$(field mirror_unsynced_bytes)" -gt 0 ] || fail "never-acked: nothing was left unsynced: $FROZEN"
grep -q '^ERR EBUSY FLIP refused: .* mirrored records' "$tmp/consumer.out" ||
    fail "never-acked: FLIP was not refused: $(cat "$tmp/consumer.out")"
grep -q 'requeued_entries=[1-9]' "$tmp/consumer.out" ||
    fail "never-acked: MIRROR STOP requeued nothing: $(cat "$tmp/consumer.out")"
info "mirror-sync waits for the consumer, and at most its timeout"
