#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a receiver killed (SIGKILL) during the second pass
# and restarted on the same output and address costs no full recopy.  The
# same stm-send keeps running: it reconnects by itself within its
# --retry-timeout, the restarted receiver recognises the migration from
# its state file and answers RESUME, and the migration finishes
# byte-identical to the fenced source, having sent less than 1.6 times the
# image in all.
#
# The guest writes only to the first 4 MiB, so every pass after the first
# is small, and stm-send's --rate keeps the passes slow enough to be hit.
#
# --converge throttle: the scenario needs passes after the first, slow enough to restart the receiver in,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
rate=$(( 8 * 1024 * 1024 ))
start_psk_source "$size_mib"
start_writer_and_wait 4m 120 0 --rate=,1m

# reconnecting: has stm-send said it is reconnecting?
reconnecting () { grep -q '"event":"reconnecting"' "$tmp/send.out"; }

start_psk_recv
start_stm_send send --tls-psk "$tmp/keys.psk" --rate "$rate" --retry-timeout 60 \
    --converge throttle

wait_for 60 "stm-send to start its second pass" generation_at_least 2
alive "$SEND_PID" || fail "stm-send finished before the receiver could be killed"
info "killing stm-recv (pid $RECV_PID) in pass $(status_field generation)"
{ kill -KILL "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
wait_for 30 "stm-send to say it is reconnecting" reconnecting
alive "$SEND_PID" || fail "stm-send gave up instead of reconnecting"
state_is tracking || fail "the source is not tracking while stm-send reconnects"

# The sender identifies the migration by the destination it was given,
# so the restarted receiver listens where the first one did.
sleep 1
RECV_LISTEN="127.0.0.1:$RECV_PORT" start_psk_recv --once

wait_exit "$SEND_PID" 120
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS after the receiver restarted"
grep '"event":"resumed"' "$tmp/send.out" | head -n 1 | grep -q '"mode":"resume"' ||
    fail "the restarted receiver did not resume the migration: $(grep '"event":"resumed"' "$tmp/send.out")"
sent="$(json_field "$tmp/send.out" done bytes_sent)"
[ -n "$sent" ] || fail "no done summary from stm-send"
info "sent $sent bytes for a $size-byte image ($(( sent * 100 / size ))%)"
[ "$sent" -lt $(( size * 16 / 10 )) ] ||
    fail "stm-send sent $sent bytes, not less than 1.6 x the image: a full recopy"
wait_recv_once_done
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source after a resumed migration"
info "resumed after the receiver was killed and restarted; identical"
info "PASS"
