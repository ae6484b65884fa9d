#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-send --converge mirror while a guest stand-in
# (fio, unthrottled 4k random writes, iodepth 8; and qemu-io's 16 MiB
# writes and zeroes, when it is there) writes to the source.
# Every guest write goes through the filter's mirror ring to the
# destination, so the migration converges without throttling the guest:
# the destination must equal the fenced source, no throttle event may
# appear, and the filter must have mirrored the guest's writes.
# MODE=mirror-sync runs the same with writes acknowledged once durable.

source ./functions.sh
set -eu
requires_psk_migration

mode="${MODE:-mirror}"
size_mib=128
start_psk_source "$size_mib"
cp "$tmp/src.img" "$tmp/orig.img"
start_writer_and_wait "${size_mib}m" 120 0
# And writes larger than a DATA message (16 MiB, at 1 MiB alignment) and
# zeroes, which a record carries whole.
large=""
if qemu-io --version >/dev/null 2>&1; then
    spawn "$tmp/large.out" "$tmp/large.err" bash -c '
        for i in $(seq 1 40); do
            qemu-io -f raw -c "write -P $(( i % 200 + 1 )) $(( (RANDOM % 112) << 20 )) 16M" \
                -c "write -z $(( (RANDOM % 127) << 20 )) 1M" "$0" >/dev/null || exit 1
            sleep 0.1
        done' "$NBD_URI"
    large=$SPAWNED_PID
fi
writes_before="$(status_writes)"

migrate_psk_once 180 --converge "$mode" --mirror-ring "${RING:-64M}" --max-passes 10

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
writes_after="$(status_writes)"
info "guest writes during the migration: $(( writes_after - writes_before ))"
[ "$writes_after" -gt "$writes_before" ] ||
    fail "no guest write reached the source during the migration"
wait_exit "$WRITER_PID" 30
[ -z "$large" ] || wait_exit "$large" 30
cmp -s "$tmp/src.img" "$tmp/orig.img" &&
    fail "the source file never changed: the writer did not write"
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source"
info "destination identical to the fenced source"

out="$tmp/send.out"
if grep -q '"event":"throttle"' "$out"; then
    fail "the guest was throttled under --converge $mode: $(grep '"event":"throttle"' "$out" | head -n 1)"
fi
passes="$(json_field "$out" done passes)"
records="$(json_field "$out" done mirror_records)"
info "summary: passes=$passes mirror_records=$records downtime_ms=$(json_field "$out" downtime downtime_ms) predicted_ms=$(json_field "$out" downtime predicted_ms)"
grep '"event":"pass_end"' "$out" |
    sed 's/.*"pass":\([0-9]*\),"bytes":\([0-9]*\),"seconds":\([0-9.]*\).*"dirty_bytes":\([0-9]*\),"predicted_ms":\([0-9]*\),"decision":"\([a-z-]*\)".*/pass \1: \2 bytes in \3 s, dirty after \4, predicted \5 ms, \6/' |
    while read -r line; do info "$line"; done
info "filter: $(ctl STATUS | tr ' ' '\n' | grep -E '^(mirror_(entries|fallbacks|sync_timeouts|requeued)|write_overlaps|writes)=' | tr '\n' ' ')"
[ -n "$records" ] && [ "$records" -gt 0 ] ||
    fail "stm-send sent no mirrored write: $(tail -n 1 "$out")"
info "PASS"
