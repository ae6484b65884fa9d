#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --converge mirror, and the receiver killed
# (SIGKILL) in the middle of the first pass while the guest writes, then
# restarted on the same output and address.  The same stm-send reconnects
# within its --retry-timeout, the receiver answers RESUME, and the
# migration finishes byte-identical to the fenced source.
#
# Ring records that stm-send had sent and the killed receiver had not made
# durable are still in the filter's ring (no dirty bit covers them):
# stm-send must send them again from the ring's durable position (its
# rewind) or the destination misses those writes.  The rewind shows in
# the counts: stm-send sent more records than the filter put in its ring.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
# The guest writes all over the image, slower than the link drains.
start_writer_and_wait "${size_mib}m" 120 0 --rate=,4m

reconnecting () { grep -q '"event":"reconnecting"' "$tmp/send.out"; }

start_psk_recv
# At 8 MiB/s the first pass takes about 8 s.
start_stm_send send --tls-psk "$tmp/keys.psk" --converge mirror \
    --rate 8388608 --retry-timeout 30 --max-passes 10
wait_for 30 "stm-send to send a quarter of the image" sent_at_least $(( size / 4 ))
alive "$SEND_PID" || fail "stm-send ended before the receiver could be killed"
[ "$(status_field generation)" -eq 1 ] ||
    fail "stm-send is past its first pass already: $(ctl STATUS)"
[ "$(status_field mirror)" = mirror ] ||
    fail "the filter is not mirroring during the pass: $(ctl STATUS)"
info "killing stm-recv (pid $RECV_PID) in the first pass, $(json_field "$tmp/send.out" progress bytes_sent) bytes sent"
{ kill -KILL "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
wait_for 20 "stm-send to say it is reconnecting" reconnecting
alive "$SEND_PID" || fail "stm-send gave up instead of reconnecting"
state_is tracking || fail "the source is not tracking while stm-send reconnects"

# The sender identifies the migration by its destination: the restarted
# receiver listens where the first one did.
RECV_LISTEN="127.0.0.1:$RECV_PORT" start_psk_recv --once

wait_exit "$SEND_PID" 45
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 0 ] ||
    fail "stm-send exited with $EXIT_STATUS after the receiver restarted: $(tail -n 3 "$tmp/send.err")"
grep '"event":"resumed"' "$tmp/send.out" | head -n 1 | grep -q '"mode":"resume"' ||
    fail "the restarted receiver did not resume the migration: $(grep '"event":"resumed"' "$tmp/send.out")"
wait_recv_once_done "after the resumed migration"
state_is fenced || fail "the source is not fenced after the migration: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source after the receiver restarted"
info "destination identical to the fenced source"

records="$(json_field "$tmp/send.out" done mirror_records)"
entries="$(status_field mirror_entries)"
fallbacks="$(status_field mirror_fallbacks)"
info "stm-send sent $records records; the filter put $entries in its ring ($fallbacks fallbacks)," \
     "bytes_sent=$(json_field "$tmp/send.out" done bytes_sent) for a $size-byte image"
[ -n "$records" ] && [ -n "$entries" ] && [ "$entries" -gt 0 ] ||
    fail "no mirrored records to judge (records=$records, entries=$entries)"
[ "$records" -gt "$entries" ] ||
    fail "stm-send sent $records records for the ring's $entries: none was sent again after the receiver was lost"
info "PASS"
