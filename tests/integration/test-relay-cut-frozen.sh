#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the network is cut during the cutover, while the
# source is frozen.  stm-send must thaw the source first (the guest is
# never held while it waits for the network), then reconnect through the
# relay once it is back, go on with passes, cut over again and finish
# with a destination byte-identical to the fenced source.
#
# A large --max-downtime makes stm-send cut over right after the full
# pass, and --rate makes the final pass (the 16 MiB the guest dirtied)
# last seconds, long enough to be hit.
#
# --converge throttle: the scenario needs a final pass long enough to cut
# the network in, which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=32
size=$(( size_mib * 1024 * 1024 ))
start_psk_source "$size_mib"
start_writer_and_wait 16m 120 0 --rate=,1m

start_psk_recv --once
start_relay
SEND_DEST_PORT=$RELAY_PORT start_stm_send send --tls-psk "$tmp/keys.psk" \
    --rate 4M --max-downtime 60s --retry-timeout 60 --converge throttle

frozen () { grep -q '"event":"freeze"' "$tmp/send.out" && state_is frozen; }
reconnecting () { grep -q '"event":"reconnecting"' "$tmp/send.out"; }
wait_for 60 "stm-send to freeze the source" frozen
alive "$SEND_PID" || fail "stm-send ended before the network could be cut while frozen"
w="$(status_writes)"
info "cutting the network while the source is frozen ($w writes so far)"
cut_relay

# With the relay still down: thawed, writes flowing, stm-send waiting.
wait_for 10 "stm-send to say it is reconnecting" reconnecting
wait_for 5 "the source to be thawed while stm-send reconnects" state_is tracking
wait_for 20 "guest writes to complete while stm-send reconnects" writes_above "$w"
[ "$(status_field owner)" = other ] || fail "stm-send no longer owns the filter while reconnecting"
alive "$SEND_PID" || fail "stm-send gave up instead of reconnecting"
sleep 2
start_relay

wait_exit "$SEND_PID" 120
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS after the cut during the cutover"
[ "$(grep -c '"event":"freeze"' "$tmp/send.out")" -ge 2 ] ||
    fail "stm-send did not freeze again after reconnecting"
sent="$(json_field "$tmp/send.out" done bytes_sent)"
info "sent $sent bytes for a $size-byte image"
state_is fenced || fail "the source is not fenced after the migration"
wait_recv_once_done
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source after a cut during the cutover"
info "PASS"
