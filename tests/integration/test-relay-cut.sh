#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the network between sender and receiver is cut
# twice in the middle of a pass, and comes back.  stm-send talks to the
# receiver through a TCP relay (socat); the relay is killed (with every
# connection it carries) and started again on the same port, twice, while
# the guest writes.  stm-send must reconnect by itself, resume (only what
# was not durable plus what was dirtied is sent again), and finish with a
# destination byte-identical to the fenced source, having sent less than
# 1.6 times the image in all.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=128
size=$(( size_mib * 1024 * 1024 ))
rate=$(( 16 * 1024 * 1024 ))
start_psk_source "$size_mib"
start_writer_and_wait 4m 120 0 --rate=,1m

start_psk_recv --once

start_relay
info "relay 127.0.0.1:$RELAY_PORT -> stm-recv 127.0.0.1:$RECV_PORT"

SEND_DEST_PORT=$RELAY_PORT start_stm_send send --tls-psk "$tmp/keys.psk" \
    --rate "$rate" --retry-timeout 60

# events_at_least EVENT N: has stm-send printed N EVENT events?
events_at_least () { [ "$(grep -c "\"event\":\"$1\"" "$tmp/send.out")" -ge "$2" ]; }

# Cut 1: a third of the way through the full pass.
wait_for 60 "stm-send to send 40 MiB" sent_at_least $(( 40 * 1024 * 1024 ))
alive "$SEND_PID" || fail "stm-send ended before the first cut"
info "cut 1 at $(json_field "$tmp/send.out" progress bytes_sent) bytes sent"
cut_relay
wait_for 30 "stm-send to say it is reconnecting" events_at_least reconnecting 1
state_is tracking || fail "the source is not tracking while stm-send reconnects"
sleep 1
start_relay
wait_for 60 "stm-send to resume after cut 1" events_at_least resumed 1
grep '"event":"resumed"' "$tmp/send.out" | head -n 1 | grep -q '"mode":"resume"' ||
    fail "stm-send's first resumed event does not say mode resume"

# Cut 2: two seconds into the pass after the resume.
sleep 2
alive "$SEND_PID" || fail "stm-send ended before the second cut"
info "cut 2 at $(json_field "$tmp/send.out" progress bytes_sent) bytes sent"
cut_relay
wait_for 30 "stm-send to say it is reconnecting again" events_at_least reconnecting 2
sleep 2
start_relay

wait_exit "$SEND_PID" 120
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS after two cuts"
events_at_least resumed 2 || fail "stm-send did not report two resumptions"
sent="$(json_field "$tmp/send.out" done bytes_sent)"
[ -n "$sent" ] || fail "no done summary from stm-send"
info "sent $sent bytes for a $size-byte image ($(( sent * 100 / size ))%)"
[ "$sent" -lt $(( size * 16 / 10 )) ] ||
    fail "stm-send sent $sent bytes, not less than 1.6 x the image: the cuts cost a recopy"
state_is fenced || fail "the source is not fenced after the migration"
wait_recv_once_done
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source after two cuts"
info "PASS"
