#!/bin/bash
# stm integration test: the network is cut during the cutover, while the
# source is frozen.  stm-send must thaw the source first (the guest is
# never held while it waits for the network), then reconnect through the
# relay once it is back, go on with passes, cut over again and finish
# with a destination byte-identical to the fenced source.
#
# A large --max-downtime makes stm-send cut over right after the full
# pass, and --rate makes the final pass (the 16 MiB the guest dirtied)
# last seconds, long enough to be hit.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires fio --version
requires psktool --version

size_mib=32
size=$(( size_mib * 1024 * 1024 ))
make_random_image "$tmp/src.img" "$size_mib"
make_psk "$tmp/keys.psk"

start_nbdkit_migrate "$tmp/src.img"
start_writer 16m 120 --rate=,1m
wait_for 30 "the guest writer to start writing" writes_above 0

start_stm_recv --output "$tmp/dst.img" --tls-psk "$tmp/keys.psk" --once --json
start_relay
spawn "$tmp/send.out" "$tmp/send.err" \
      "$STM_SEND" --source "$NBD_URI" --control "$CTL_SOCK" \
      --dest "127.0.0.1:$RELAY_PORT" --tls-psk "$tmp/keys.psk" \
      --rate 4M --max-downtime 60s --retry-timeout 60 --json --no-progress
SEND_PID=$SPAWNED_PID

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
wait_exit "$RECV_PID" 30
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --once exited with $EXIT_STATUS"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source after a cut during the cutover"
info "PASS"
