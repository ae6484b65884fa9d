#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the source's nbdkit restarts in the middle of a
# migration (a host reboot, an upgrade), so its change tracking is gone:
# the new filter knows nothing and calls every block dirty, and its new
# instance makes a new migration.  stm-recv takes the incomplete output
# over for it and keeps its data, and the restarted stm-send compares
# instead of copying everything: it copies about what had not arrived,
# and the destination ends byte-identical.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
rate=$(( 8 * 1024 * 1024 ))
start_psk_source "$size_mib"
# Without --once: the first stm-send aborts when its source dies, and
# stm-recv must stay for the second.
start_psk_recv

# A slow first pass, to be cut short by the source's restart once more
# than half of it is durable on the destination.
start_stm_send send1 --tls-psk "$tmp/keys.psk" --rate "$rate"
copied_half () { sent_at_least_in send1 $(( size / 2 )); }
sent_at_least_in ()
{
    local b
    b="$(json_field "$tmp/$1.out" progress bytes_copied)"
    [ -n "$b" ] && [ "$b" -ge "$2" ]
}
wait_for 60 "stm-send to copy half the image" copied_half
# A SYNC goes out at least every 50 ms in a pass: give the copied half a
# moment to become durable.
sleep 0.5
info "killing the source's nbdkit (pid $NBDKIT_PID) in the first pass"
kill -KILL "$NBDKIT_PID"
wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS when its source died, not 1"
copied1="$(json_field "$tmp/send1.out" progress bytes_copied)"

rm -f "$NBD_SOCK" "$CTL_SOCK" "$tmp/nbdkit.pid"
start_nbdkit_migrate "$tmp/src.img"
run_stm_send send2 120 --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the restarted stm-send exited with $EXIT_STATUS"
grep -q "comparing the first pass" "$tmp/send2.err" ||
    fail "the restarted stm-send did not compare its first pass"
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source"

copied2="$(json_field "$tmp/send2.out" done bytes_copied)"
compared2="$(json_field "$tmp/send2.out" done bytes_compared)"
info "before the restart: copied $copied1; after: compared $compared2, copied $copied2 of $size"
[ "$compared2" -ge $(( size / 2 )) ] || fail "the restarted stm-send compared only $compared2 bytes"
[ "$copied2" -le $(( size - size / 4 )) ] ||
    fail "the restarted stm-send copied $copied2 bytes: most of the image again"
info "PASS"
